//! Archives that travel: minisign signatures over `SHA256SUMS` (checked by
//! lifeboat and by the real `minisign` tool) and age encryption (checked by
//! the age crate, and by the real `age` tool when it is installed).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use crate::support::{self, fresh_db, toml_string};
use crate::support::{assert_exit, json, members, reseal, run, sha256, stderr, write_archive, Seeded};

const SIG_MEMBER: &str = "SHA256SUMS.minisig";

struct Signed {
    seeded: Seeded,
    archive: PathBuf,
    _files: tempfile::TempDir,
}

/// One backup of the SaaS fixture with a config file in it, signed by its
/// store's key.
fn signed() -> &'static Signed {
    static S: OnceLock<Signed> = OnceLock::new();
    S.get_or_init(|| {
        let files = tempfile::tempdir().unwrap();
        std::fs::write(files.path().join(".env.production"), "SMTP_PASS=change-me\n").unwrap();
        let section = format!(
            "[files]\nbase_dir = {}\ninclude = [\".env.production\"]\n",
            toml_string(&files.path().to_string_lossy())
        );
        let seeded = Seeded::with_config("trust", &section);
        let archive = PathBuf::from(seeded.backup()["archive"].as_str().unwrap());
        Signed { seeded, archive, _files: files }
    })
}

fn pub_key(storage: &Path) -> PathBuf {
    storage.join(".lifeboat/signing.pub")
}

/// The base64 line of a minisign public key file.
fn key_line(pub_file: &Path) -> String {
    std::fs::read_to_string(pub_file).unwrap().lines().nth(1).unwrap().trim().to_string()
}

/// A copy of the signed archive outside its store, edited by `edit`.
fn copy_outside(edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> (tempfile::TempDir, PathBuf) {
    let s = signed();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(s.archive.file_name().unwrap());
    let mut m = members(&s.archive);
    edit(&mut m);
    write_archive(&path, &m);
    (dir, path)
}

fn args_with(base: &[&str], extra: &[&str]) -> Vec<String> {
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn lb(args: &[String]) -> Output {
    support::lifeboat().args(args).output().unwrap()
}

/// minisign is required on CI (scripts/test installs Debian's package).
fn minisign_available() -> bool {
    let ok = std::process::Command::new("minisign").arg("-v").output().is_ok();
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "minisign is not installed (apt-get install minisign)");
        eprintln!("minisign not installed: skipping the independent signature check");
    }
    ok
}

// covers: FR-12.12, FR-12.11, FR-7.14, SC-5
#[test]
fn every_archive_is_signed_and_minisign_agrees() {
    use std::os::unix::fs::PermissionsExt;
    let s = signed();
    let storage = s.seeded.storage();
    let m = members(&s.archive);
    let names: Vec<&str> = m.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(&names[names.len() - 2..], ["SHA256SUMS", SIG_MEMBER], "the signature follows SHA256SUMS");

    for (file, mode) in [(".lifeboat/signing.key", 0o600), (".lifeboat/signing.pub", 0o644)] {
        let meta = std::fs::metadata(storage.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    let key = key_line(&pub_key(&storage));
    let info = String::from_utf8(m.iter().find(|(p, _)| p == "BACKUP_INFO.txt").unwrap().1.clone()).unwrap();
    assert!(info.contains(&key), "BACKUP_INFO.txt names the public key:\n{info}");
    let config = run(&["--config", s.seeded.config.to_str().unwrap(), "config"]);
    assert_exit(&config, 0);
    assert!(String::from_utf8_lossy(&config.stdout).contains(&key), "lifeboat config shows the public key");

    // The key of the store the config names is trusted.
    let cfg = s.seeded.config.to_str().unwrap();
    let v = json(&run(&["--config", cfg, "--json", "verify", s.archive.to_str().unwrap()]));
    assert_eq!(v["signature"]["status"], "valid", "{v}");
    assert_eq!(v["signature"]["trusted_key"], "store");
    let text = run(&["--config", cfg, "verify", s.archive.to_str().unwrap()]);
    assert_exit(&text, 0);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("signature: valid"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    // Without a config, the key beside the archive is no trust anchor: the
    // refusal names it and the ways on.
    let o = run(&["verify", s.archive.to_str().unwrap()]);
    assert_exit(&o, 1);
    let e = stderr(&o);
    for says in
        ["signing.pub lies beside the archive", "--trusted-key", "--insecure-accept-untrusted", "lifeboat config"]
    {
        assert!(e.contains(says), "{says}: {e}");
    }

    // A copy elsewhere: checked with --trusted-key or the config's store.
    let (_d, copy) = copy_outside(|_| {});
    let pk = pub_key(&storage);
    let v =
        json(&lb(&args_with(&["--json", "verify", copy.to_str().unwrap()], &["--trusted-key", pk.to_str().unwrap()])));
    assert_eq!(v["signature"]["status"], "valid", "{v}");
    assert_eq!(v["signature"]["trusted_key"], "flag");
    assert_exit(&run(&["--config", cfg, "verify", copy.to_str().unwrap()]), 0);

    if minisign_available() {
        let x = tempfile::tempdir().unwrap();
        support::extract(&s.archive, x.path());
        let o = std::process::Command::new("minisign")
            .args(["-Vm", "SHA256SUMS", "-p"])
            .arg(&pk)
            .current_dir(x.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "minisign -V: {}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    }
}

/// SHA256SUMS signed with a key that is not the store's.
fn resign_with_other_key(m: &mut [(String, Vec<u8>)]) -> minisign::PublicKey {
    let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let sums = m.iter().find(|(p, _)| p == "SHA256SUMS").unwrap().1.clone();
    let sig = minisign::sign(Some(&kp.pk), &kp.sk, std::io::Cursor::new(sums), Some("forged"), None).unwrap();
    m.iter_mut().find(|(p, _)| p == SIG_MEMBER).unwrap().1 = sig.to_string().into_bytes();
    kp.pk
}

fn restore_trusted(archive: &Path, trusted: &Path) -> (Output, crate::support::TestDb) {
    let db = fresh_db("trust_restore");
    let o = run(&["restore", archive.to_str().unwrap(), "--db", &db.url, "--trusted-key", trusted.to_str().unwrap()]);
    (o, db)
}

fn no_tables(db: &crate::support::TestDb) -> bool {
    db.query_one_i64("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
}

// covers: FR-7.14, US-4/AC-12, SC-5
#[test]
fn restore_with_trusted_key_refuses_an_edited_or_resigned_archive() {
    let s = signed();
    let pk = pub_key(&s.seeded.storage());

    // A forger edits rows and recomputes SHA256SUMS, but cannot sign it.
    let (_d1, edited) = copy_outside(|m| {
        let csv = m.iter().find(|(p, _)| p == "database/data/public.users.csv").unwrap().1.clone();
        let text = String::from_utf8(csv).unwrap().replacen("@", "@evil.", 1);
        support::rewrite_consistently(m, "database/data/public.users.csv", text.into_bytes(), None);
    });
    let o = lb(&args_with(&["verify", edited.to_str().unwrap()], &["--trusted-key", pk.to_str().unwrap()]));
    assert_exit(&o, 1);
    let (o, db) = restore_trusted(&edited, &pk);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("signature") && stderr(&o).contains("SHA256SUMS"), "{}", stderr(&o));
    assert!(no_tables(&db), "nothing restored from a forged archive");

    // Re-signed with another key: valid minisign, wrong signer.
    let mut other = None;
    let (_d2, resigned) = copy_outside(|m| {
        let csv = m.iter().find(|(p, _)| p == "database/data/public.users.csv").unwrap().1.clone();
        let text = String::from_utf8(csv).unwrap().replacen("@", "@evil.", 1);
        support::rewrite_consistently(m, "database/data/public.users.csv", text.into_bytes(), None);
        other = Some(resign_with_other_key(m));
    });
    let (o, db) = restore_trusted(&resigned, &pk);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("not a trusted key"), "{}", stderr(&o));
    assert!(no_tables(&db));
    // Without a trusted key it is refused too, naming the signer.
    let o = run(&["verify", resigned.to_str().unwrap()]);
    assert_exit(&o, 1);
    let id = format!("{:016X}", u64::from_le_bytes(other.unwrap().keynum().try_into().unwrap()));
    assert!(stderr(&o).contains(&id) && stderr(&o).contains("no key is trusted"), "{id}: {}", stderr(&o));

    // The genuine archive restores with the same flag.
    let (o, db) = restore_trusted(&s.archive, &pk);
    assert_exit(&o, 0);
    assert_eq!(db.count("public.users"), 200);
}

// covers: FR-7.14, US-4/AC-12
#[test]
fn an_unsigned_archive_is_refused_unless_accepted_insecurely() {
    let s = signed();
    let pk = pub_key(&s.seeded.storage());
    let (_d, unsigned) = copy_outside(|m| {
        m.retain(|(p, _)| p != SIG_MEMBER);
        reseal(m);
    });
    let o = run(&["verify", unsigned.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("unsigned"), "{}", stderr(&o));
    let o = lb(&args_with(&["verify", unsigned.to_str().unwrap()], &["--trusted-key", pk.to_str().unwrap()]));
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("unsigned"), "{}", stderr(&o));
    let (o, db) = restore_trusted(&unsigned, &pk);
    assert_exit(&o, 1);
    assert!(no_tables(&db));

    // The operator's explicit, loudly named decision lets it through, loudly.
    let o = run(&["--json", "verify", unsigned.to_str().unwrap(), "--insecure-accept-untrusted"]);
    assert_exit(&o, 0);
    let v = json(&o);
    assert_eq!(
        (v["signature"]["status"].as_str(), v["signature"]["accepted_insecurely"].as_bool()),
        (Some("unsigned"), Some(true))
    );
    assert!(stderr(&o).contains("INSECURE"), "{}", stderr(&o));
    let db = fresh_db("trust_insecure");
    let o = run(&["restore", unsigned.to_str().unwrap(), "--db", &db.url, "--insecure-accept-untrusted"]);
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("INSECURE"), "{}", stderr(&o));
    assert_eq!(db.count("public.users"), 200);

    // A --trusted-key that is not a key cannot check anything: exit 2.
    let o = run(&["verify", s.archive.to_str().unwrap(), "--trusted-key", "/nonexistent/signing.pub"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("/nonexistent/signing.pub"), "{}", stderr(&o));
    let o = run(&["verify", s.archive.to_str().unwrap(), "--trusted-key", s.seeded.config.to_str().unwrap()]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("not a usable minisign key"), "{}", stderr(&o));
}

fn identity_file(dir: &Path, id: &age::x25519::Identity) -> PathBuf {
    use age::secrecy::ExposeSecret;
    let p = dir.join("identity.txt");
    std::fs::write(&p, format!("# test identity\n{}\n", id.to_string().expose_secret())).unwrap();
    p
}

// covers: FR-19.4, FR-7.10, US-8/AC-2, TS-2.9
#[test]
fn an_encrypted_archive_decrypts_to_the_same_bytes_and_verifies_and_restores_with_identity() {
    let s = signed();
    let dir = tempfile::tempdir().unwrap();
    let id = age::x25519::Identity::generate();
    let enc = dir.path().join(format!("{}.age", s.archive.file_name().unwrap().to_str().unwrap()));
    lifeboat::crypt::encrypt_file(&s.archive, &enc, &[id.to_public().to_string()]).unwrap();
    let original = std::fs::read(&s.archive).unwrap();
    let ciphertext = std::fs::read(&enc).unwrap();
    assert!(ciphertext.starts_with(b"age-encryption.org/v1"));
    assert_eq!(sha256(&age::decrypt(&id, &ciphertext).unwrap()), sha256(&original));
    let idf = identity_file(dir.path(), &id);

    if std::process::Command::new("age").arg("--version").output().is_ok() {
        let out = dir.path().join("decrypted.tar.gz");
        let o = std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&idf)
            .arg("-o")
            .arg(&out)
            .arg(&enc)
            .output()
            .unwrap();
        assert!(o.status.success(), "age -d: {}", stderr(&o));
        assert_eq!(sha256(&std::fs::read(&out).unwrap()), sha256(&original), "age -d gives the archive back");
    } else {
        // scripts/test installs it; only a hand-run `cargo test` may lack it.
        assert!(std::env::var_os("CI").is_none(), "the age CLI is missing (apt-get install age; scripts/test does)");
        eprintln!("age CLI not installed: checked with the age crate only");
    }

    let pk = pub_key(&s.seeded.storage());
    let trust = ["--trusted-key", pk.to_str().unwrap()];
    let v = lb(&args_with(
        &["--json", "verify", enc.to_str().unwrap()],
        &["--identity", idf.to_str().unwrap(), trust[0], trust[1]],
    ));
    assert_exit(&v, 0);
    assert_eq!(json(&v)["tables"], 22);

    let o = run(&["verify", enc.to_str().unwrap()]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("--identity"), "{}", stderr(&o));

    let wrong = tempfile::tempdir().unwrap();
    let wrong_id = identity_file(wrong.path(), &age::x25519::Identity::generate());
    let o = lb(&args_with(&["verify", enc.to_str().unwrap()], &["--identity", wrong_id.to_str().unwrap()]));
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("identity") && stderr(&o).contains(wrong_id.to_str().unwrap()), "{}", stderr(&o));
    assert!(!stderr(&o).contains("AGE-SECRET-KEY"), "the identity is never shown");

    let db = fresh_db("trust_age");
    let o = run(&[
        "restore",
        enc.to_str().unwrap(),
        "--db",
        &db.url,
        "--identity",
        idf.to_str().unwrap(),
        trust[0],
        trust[1],
    ]);
    assert_exit(&o, 0);
    assert_eq!(db.count("public.users"), 200);
}

// covers: FR-19.3, US-8/AC-3
#[test]
fn plan_warns_that_config_files_travel_in_clear_without_recipients() {
    let s = signed();
    let o = run(&["--config", s.seeded.config.to_str().unwrap(), "plan"]);
    assert_exit(&o, 0);
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(all.contains("not encrypted") && all.contains("[encryption]"), "{all}");

    let with = format!(
        "{}\n[encryption]\nrecipients = [{}]\n",
        std::fs::read_to_string(&s.seeded.config).unwrap(),
        toml_string(&age::x25519::Identity::generate().to_public().to_string())
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::write_config(dir.path(), &with);
    let o = run(&["--config", cfg.to_str().unwrap(), "plan"]);
    assert_exit(&o, 0);
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(!all.contains("not encrypted"), "{all}");
}

/// The three forgeries of issue 19 of an archive whose schema.sql starts
/// with `COPY (SELECT 1) TO PROGRAM 'touch MARKER'`: signature dropped,
/// re-signed with another minisign key, original signature kept.
fn forgeries(marker: &Path) -> Vec<(&'static str, tempfile::TempDir, PathBuf)> {
    let evil = |m: &mut Vec<(String, Vec<u8>)>| plant_program_copy(m, marker);
    let (d1, dropped) = copy_outside(|m| {
        evil(m);
        m.retain(|(p, _)| p != SIG_MEMBER);
    });
    let (d2, resigned) = copy_outside(|m| {
        evil(m);
        resign_with_other_key(m);
    });
    let (d3, stale) = copy_outside(evil);
    vec![
        ("signature dropped", d1, dropped),
        ("re-signed with another key", d2, resigned),
        ("signature kept", d3, stale),
    ]
}

/// Puts `COPY (SELECT 1) TO PROGRAM 'touch MARKER'` first in schema.sql
/// and makes the manifest and SHA256SUMS agree (the signature is left).
fn plant_program_copy(m: &mut [(String, Vec<u8>)], marker: &Path) {
    let schema = m.iter().find(|(p, _)| p == "database/schema.sql").unwrap().1.clone();
    let mut forged = format!("COPY (SELECT 1) TO PROGRAM 'touch {}';\n", marker.display()).into_bytes();
    forged.extend_from_slice(&schema);
    support::rewrite_consistently(m, "database/schema.sql", forged, None);
}

/// A config for "another host": an empty store of its own, and the real
/// store's public key in `[restore] trusted_keys` (`entry`: base64 or path).
fn other_host_config(dir: &Path, entry: &str) -> PathBuf {
    let toml = format!(
        "[storage]\ndir = {}\n\n[restore]\ntrusted_keys = [{}]\n",
        toml_string(&dir.join("store").to_string_lossy()),
        toml_string(entry)
    );
    support::write_config(dir, &toml)
}

// covers: FR-7.14, FR-7.15, SC-5, US-4/AC-12
#[test]
fn forged_archives_are_refused_whichever_way_the_key_is_trusted_and_nothing_runs() {
    let s = signed();
    let storage = s.seeded.storage();
    let pk = pub_key(&storage);
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("pwned");
    let other_host = other_host_config(scratch.path(), &key_line(&pk));
    let ways: Vec<(&str, Vec<String>)> = vec![
        ("no trusted key at all", vec![]),
        ("--trusted-key", args_with(&["--trusted-key"], &[pk.to_str().unwrap()])),
        ("--config naming the store", args_with(&["--config"], &[s.seeded.config.to_str().unwrap()])),
        ("[restore] trusted_keys", args_with(&["--config"], &[other_host.to_str().unwrap()])),
    ];
    for (forgery, _dir, archive) in forgeries(&marker) {
        for (way, trust) in &ways {
            let what = format!("{forgery}, {way}");
            let o = lb(&[args_with(&["verify", archive.to_str().unwrap()], &[]), trust.clone()].concat());
            assert_exit(&o, 1);
            assert!(stderr(&o).contains("refusing"), "{what}: {}", stderr(&o));
            let db = fresh_db("trust_forged");
            let o =
                lb(&[args_with(&["restore", archive.to_str().unwrap(), "--db", &db.url], &[]), trust.clone()].concat());
            assert_exit(&o, 1);
            assert!(!stderr(&o).contains("psql -f"), "{what}: never advise psql: {}", stderr(&o));
            assert!(!marker.exists(), "{what}: the forged COPY … TO PROGRAM ran");
            assert!(no_tables(&db), "{what}: the target was changed");
        }
    }
    // The insecure flag accepts the signature, but the guard still refuses
    // the statement before it is sent.
    let (_, _d, dropped) = forgeries(&marker).remove(0);
    let db = fresh_db("trust_forged_insecure");
    let o = run(&["restore", dropped.to_str().unwrap(), "--db", &db.url, "--insecure-accept-untrusted"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("PROGRAM") && !stderr(&o).contains("psql -f"), "{}", stderr(&o));
    assert!(!marker.exists() && no_tables(&db));
}

// covers: FR-7.14
#[test]
fn a_key_planted_beside_a_forged_archive_is_not_trusted() {
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("pwned");
    // The forger hands over a directory that looks like a store: the
    // archive re-signed with their key, and that key's signing.pub.
    let mut forger = None;
    let (dir, resigned) = copy_outside(|m| {
        plant_program_copy(m, &marker);
        forger = Some(resign_with_other_key(m));
    });
    std::fs::create_dir_all(dir.path().join(".lifeboat")).unwrap();
    std::fs::write(
        dir.path().join(".lifeboat/signing.pub"),
        format!("untrusted comment: planted\n{}\n", forger.unwrap().to_base64()),
    )
    .unwrap();
    let db = fresh_db("trust_planted");
    let o = run(&["restore", resigned.to_str().unwrap(), "--db", &db.url]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("lies beside the archive"), "{}", stderr(&o));
    assert!(!marker.exists() && no_tables(&db));
}

// covers: FR-7.14, SC-11.3
#[test]
fn a_key_planted_in_the_configured_stores_key_directory_by_another_user_is_not_trusted() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("pwned");
    let mut forger = None;
    let (_d, forged) = copy_outside(|m| {
        plant_program_copy(m, &marker);
        forger = Some(resign_with_other_key(m));
    });
    let forger = forger.unwrap();
    // The configured store, where another local user got to create
    // `.lifeboat/` first (a shared or world-writable backup directory) and
    // put their own public key in it.
    let host = tempfile::tempdir().unwrap();
    let store = host.path().join("store");
    let keys = store.join(".lifeboat");
    std::fs::create_dir_all(&keys).unwrap();
    let planted = keys.join("signing.pub");
    std::fs::write(&planted, format!("untrusted comment: planted\n{}\n", forger.to_base64())).unwrap();
    let config =
        support::write_config(host.path(), &format!("[storage]\ndir = {}\n", toml_string(&store.to_string_lossy())));
    let verify = || run(&["--config", config.to_str().unwrap(), "verify", forged.to_str().unwrap()]);
    let set_mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();

    // Owned by another user (nobody), writable by all.
    chown(&keys, Some(65534), Some(65534)).unwrap();
    set_mode(&keys, 0o777);
    let o = verify();
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("belongs to uid 65534") && err.contains("not trusted"), "{err}");

    // Ours again, but the key file is writable by everyone.
    chown(&keys, Some(0), Some(0)).unwrap();
    set_mode(&keys, 0o700);
    set_mode(&planted, 0o666);
    let o = verify();
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("mode 0666"), "{}", stderr(&o));

    // The same key, kept as lifeboat keeps it: trusted, so the forger's
    // signature checks (the test's control: only the ownership refused it).
    set_mode(&planted, 0o644);
    let o = verify();
    assert_exit(&o, 0);
    assert!(!marker.exists());
}

// covers: FR-7.14, US-4/AC-12
#[test]
fn another_host_restores_with_only_restore_trusted_keys() {
    let s = signed();
    let pk = pub_key(&s.seeded.storage());
    let (_d, copy) = copy_outside(|_| {});
    let host = tempfile::tempdir().unwrap();
    // The base64 line, as `lifeboat config` prints it.
    let config = other_host_config(host.path(), &key_line(&pk));
    let db = fresh_db("trust_other_host");
    let o = run(&["--config", config.to_str().unwrap(), "restore", copy.to_str().unwrap(), "--db", &db.url]);
    assert_exit(&o, 0);
    assert_eq!(db.count("public.users"), 200);
    // A key file's path, from the environment.
    let copied = host.path().join("store.pub");
    std::fs::copy(&pk, &copied).unwrap();
    let o = support::lifeboat()
        .args(["--json", "verify", copy.to_str().unwrap()])
        .current_dir(host.path())
        .env("LIFEBOAT_RESTORE__TRUSTED_KEYS", &copied)
        .output()
        .unwrap();
    assert_exit(&o, 0);
    assert_eq!(json(&o)["signature"]["trusted_key"], "config");
    // A typo in the list is a config error naming the entry.
    let bad = other_host_config(host.path(), "RWQnot-a-key");
    let o = run(&["--config", bad.to_str().unwrap(), "verify", copy.to_str().unwrap()]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("[restore] trusted_keys entry 1"), "{}", stderr(&o));
}

// covers: FR-7.15, SC-5
#[test]
fn a_signed_archive_with_statements_that_reach_outside_is_refused_and_nothing_runs() {
    let s = signed();
    let storage = s.seeded.storage();
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("pwned");
    let cases = [
        ("database/schema.sql", format!("COPY (SELECT 1) TO PROGRAM 'touch {}';\n", marker.display()), "PROGRAM"),
        ("database/constraints.sql", "COPY public.users FROM '/etc/passwd';\n".to_string(), "file"),
        ("database/schema.sql", format!("\\! touch {}\n", marker.display()), "meta-command"),
    ];
    for (member, evil, says) in cases {
        let (_d, archive) = copy_outside(|m| {
            let sql = m.iter().find(|(p, _)| p == member).unwrap().1.clone();
            let text = String::from_utf8(sql).unwrap();
            // After the first statement, so the refusal has to roll back.
            let at = text.find(";\n").map_or(0, |i| i + 2);
            let forged = format!("{}{evil}{}", &text[..at], &text[at..]);
            support::rewrite_consistently(m, member, forged.into_bytes(), None);
            support::reseal_signed(m, &storage);
        });
        let pk = pub_key(&storage);
        let trust = ["--trusted-key", pk.to_str().unwrap()];
        let db = fresh_db("trust_guard");
        let o = lb(&args_with(&["restore", archive.to_str().unwrap(), "--db", &db.url], &trust));
        assert_exit(&o, 1);
        let e = stderr(&o);
        assert!(e.contains(member) && e.contains(says) && e.contains("refused"), "{member}: {e}");
        assert!(!e.contains("psql -f") && !e.contains("restore it with psql"), "never advise psql: {e}");
        assert!(!marker.exists(), "{member}: {evil} ran");
        assert!(no_tables(&db), "{member}: the target was changed");
    }
    // restore.sql is generated from the manifest: a signed forgery of it
    // fails verify, so the psql path never gets it.
    let (_d, archive) = copy_outside(|m| {
        let sql = m.iter().find(|(p, _)| p == "database/restore.sql").unwrap().1.clone();
        let forged = format!("\\! touch {}\n{}", marker.display(), String::from_utf8(sql).unwrap());
        support::rewrite_consistently(m, "database/restore.sql", forged.into_bytes(), None);
        support::reseal_signed(m, &storage);
    });
    let o = run(&["--config", s.seeded.config.to_str().unwrap(), "verify", archive.to_str().unwrap()]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("database/restore.sql") && stderr(&o).contains("not what lifeboat generates"),
        "{}",
        stderr(&o)
    );
}

// covers: FR-12.5, FR-12.12, US-4/AC-12
#[test]
fn backup_info_check_steps_run_verbatim_and_catch_a_forged_sha256sums() {
    if !minisign_available() {
        return;
    }
    let s = signed();
    let m = members(&s.archive);
    let info = String::from_utf8(m.iter().find(|(p, _)| p == "BACKUP_INFO.txt").unwrap().1.clone()).unwrap();
    let step = |start: &str| {
        info.lines()
            .map(str::trim)
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` step in:\n{info}"))
            .to_string()
    };
    let extract = step("mkdir -p restore-dir && tar -xzf");
    // The operator's own copy of the store's public key stands in for /path/to/signing.pub.
    let check = step("cd restore-dir && minisign -Vm SHA256SUMS -p /path/to/signing.pub")
        .replace("/path/to/signing.pub", pub_key(&s.seeded.storage()).to_str().unwrap());
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(&s.archive, work.path().join(s.archive.file_name().unwrap())).unwrap();
    let sh = |script: &str| {
        std::process::Command::new("sh").args(["-ec", script]).current_dir(work.path()).output().unwrap()
    };
    let o = sh(&format!("{extract}\n{check}"));
    assert!(o.status.success(), "{extract}\n{check}\n{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    // Then the psql path, from restore-dir.
    let db = fresh_db("trust_info_psql");
    let o = support::psql_file(&db.url, Path::new("database/restore.sql"), &work.path().join("restore-dir"));
    assert!(o.status.success(), "psql -f database/restore.sql: {}", stderr(&o));
    assert_eq!(db.count("public.users"), 200);

    // A forger's recomputed SHA256SUMS fails the minisign step.
    let sums = work.path().join("restore-dir/SHA256SUMS");
    let mut text = std::fs::read_to_string(&sums).unwrap();
    text.push_str(&format!("{}  database/extra.sql\n", sha256(b"")));
    std::fs::write(&sums, text).unwrap();
    assert!(!sh(&check).status.success(), "minisign accepted an altered SHA256SUMS");
}
