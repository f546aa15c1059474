//! `lifeboat verify`: a good archive passes; a flipped byte, a truncation, a
//! removed member or a CSV that lost a row fails with exit 1 and names the
//! member; an archive that cannot be opened exits 2.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support;
use crate::support::{assert_exit, run, stderr, Seeded};

/// One real archive of the SaaS fixture, shared by the tests in this module
/// (each works on its own copy).
fn good_archive() -> &'static Path {
    static ARCHIVE: OnceLock<(Seeded, PathBuf)> = OnceLock::new();
    let (_, path) = ARCHIVE.get_or_init(|| {
        let s = Seeded::new("verify");
        let report = s.backup();
        let path = PathBuf::from(report["archive"].as_str().unwrap());
        (s, path)
    });
    path
}

/// `lifeboat verify PATH`, trusting the key of the store that made the
/// good archive (the copies tests edit keep their stale signature, so
/// only what they edit can fail them before the signature check).
fn verify(path: &Path) -> std::process::Output {
    run(&["verify", path.to_str().unwrap(), "--trusted-key", &support::its_store_key(good_archive())])
}

// covers: FR-5.1, FR-5.3, FR-5.5, FR-12.8, US-4/AC-8, US-4/AC-9, NFR-6.2
#[test]
fn a_fresh_archive_verifies_and_sha256sum_agrees() {
    let o = verify(good_archive());
    assert_exit(&o, 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("row counts match"));
    let j = support::json(&run(&[
        "--json",
        "verify",
        good_archive().to_str().unwrap(),
        "--trusted-key",
        &support::its_store_key(good_archive()),
    ]));
    assert_eq!(j["tables"], 22);
    // The checksums are `sha256sum -c` compatible.
    let x = tempfile::tempdir().unwrap();
    support::extract(good_archive(), x.path());
    let c = std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(x.path())
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stdout));
    let info = std::fs::read_to_string(x.path().join("BACKUP_INFO.txt")).unwrap();
    assert!(
        info.contains("psql -X -v ON_ERROR_STOP=1 -d NEW_DB -f database/restore.sql")
            && info.contains("lifeboat restore")
    );
}

fn copy_with(name: &str, bytes: Vec<u8>) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (d, p)
}

// covers: FR-5.2, FR-5.3, TS-2.7
#[test]
fn a_flipped_byte_anywhere_in_the_stream_is_caught() {
    let bytes = std::fs::read(good_archive()).unwrap();
    for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 12] {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        let (_d, p) = copy_with("flipped.tar.gz", b);
        let o = verify(&p);
        assert_exit(&o, 1);
        assert!(stderr(&o).contains("damaged") || stderr(&o).contains("SHA-256"), "{}", stderr(&o));
    }
}

// covers: FR-5.2, TS-2.7
#[test]
fn a_truncated_archive_is_caught() {
    let bytes = std::fs::read(good_archive()).unwrap();
    for keep in [bytes.len() - 1, bytes.len() / 2, 10] {
        let (_d, p) = copy_with("short.tar.gz", bytes[..keep].to_vec());
        let o = verify(&p);
        assert_exit(&o, 1);
        assert!(stderr(&o).contains("damaged or truncated"), "{}", stderr(&o));
    }
}

// covers: FR-5.2, TS-2.7
#[test]
fn a_removed_member_is_named() {
    let mut members = support::members(good_archive());
    members.retain(|(p, _)| p != "database/data/public.payments.csv");
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("removed.tar.gz");
    support::write_archive(&p, &members);
    let o = verify(&p);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("database/data/public.payments.csv") && stderr(&o).contains("missing"),
        "{}",
        stderr(&o)
    );
}

// covers: FR-5.2, US-4/AC-9, TS-2.7
#[test]
fn a_csv_that_lost_a_row_is_caught_by_counting_csv_records_even_with_matching_checksums() {
    let mut members = support::members(good_archive());
    let member = "database/data/public.messages.csv";
    let csv = &members.iter().find(|(p, _)| p == member).unwrap().1;
    // Drop the last record; records contain quoted newlines, so cut at the
    // last newline that ends a record (the file ends with one).
    let body = &csv[..csv.len() - 1];
    let mut in_quotes = false;
    let mut cut = 0;
    for (i, b) in body.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes => cut = i + 1,
            _ => {}
        }
    }
    let shorter = csv[..cut].to_vec();
    support::rewrite_consistently(&mut members, member, shorter, None);
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("lost_row.tar.gz");
    support::write_archive(&p, &members);
    let o = verify(&p);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains(member) && stderr(&o).contains("CSV rows"), "{}", stderr(&o));
}

// covers: FR-5.2, FR-12.5
#[test]
fn a_member_not_listed_in_the_checksums_is_refused() {
    let mut members = support::members(good_archive());
    members.insert(1, ("database/data/public.smuggled.csv".into(), b"id\n1\n".to_vec()));
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("extra.tar.gz");
    support::write_archive(&p, &members);
    let o = verify(&p);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("public.smuggled.csv") && stderr(&o).contains("not listed"), "{}", stderr(&o));
}

// covers: FR-5.3, FR-24.2
#[test]
fn a_missing_archive_file_cannot_be_verified_exit_2() {
    let o = verify(Path::new("/nonexistent/critical_backup_20260101_000000.tar.gz"));
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("cannot open archive"), "{}", stderr(&o));
}

// covers: FR-12.9
#[test]
fn an_age_encrypted_file_is_named_as_such_not_as_damaged() {
    let (_d, p) = copy_with("critical_backup_x.tar.gz.age", b"age-encryption.org/v1\n-> X25519 abc\n".to_vec());
    let o = verify(&p);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("age-encrypted") && stderr(&o).contains("age -d"), "{}", stderr(&o));
}

// covers: FR-12.9, FR-12.1
#[test]
fn an_archive_of_a_newer_format_version_is_refused_with_both_versions_named() {
    let name = good_archive().file_name().unwrap().to_str().unwrap();
    let ok = name.strip_prefix("critical_backup_").and_then(|r| r.strip_suffix(".tar.gz")).unwrap();
    assert!(
        ok.len() == 15 && ok.as_bytes()[8] == b'_' && ok.replace('_', "").bytes().all(|b| b.is_ascii_digit()),
        "{name}"
    );

    let mut members = support::members(good_archive());
    let (_, manifest) = members.iter_mut().find(|(p, _)| p == "manifest.json").unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    m["format_version"] = 2.into();
    *manifest = serde_json::to_vec_pretty(&m).unwrap();
    support::reseal(&mut members);
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("future.tar.gz");
    support::write_archive(&p, &members);
    let o = verify(&p);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("lifeboat-archive v2") && stderr(&o).contains("reads lifeboat-archive v1"),
        "{}",
        stderr(&o)
    );
}
