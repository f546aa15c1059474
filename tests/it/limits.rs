//! Small hostile archives against the reader's limits (FR-22.6, FR-22.7),
//! checked through the real binary with a bound on its peak memory: a GNU
//! long name or a PAX header of hundreds of MiB that compresses to a few
//! hundred KB, hundreds of thousands of empty members, names built to flood
//! a terminal. Also what `verify` must not accept (FR-5.2: a second gzip
//! stream after the archive, a member the manifest does not list) and where
//! `restore --jobs` spools its rows (FR-7.9).
//!
//! The archives are generated here, streamed straight into gzip, so each
//! costs a second or two and no memory; none is committed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Output};

use flate2::write::GzEncoder;
use tar::EntryType;

use crate::support::craft::{self, Crafted, Member};
use crate::support::rss::run_measured;
use crate::support::small_archive;
use crate::support::{assert_exit, stderr};
use crate::support::{fresh_db, lifeboat};

const MIB: u64 = 1024 * 1024;

/// The most a `verify` or `restore` of a hostile archive may use. The
/// binary itself needs a few MiB; the limits (4 KiB names, 64 KiB PAX
/// headers, 100 000 members) keep everything else well below this.
const PEAK_RSS_BOUND: u64 = 64 * MIB;

/// A tar stream gzipped into a file as it is written.
struct TarGz {
    gz: GzEncoder<BufWriter<File>>,
}

impl TarGz {
    fn create(path: &Path) -> TarGz {
        TarGz::with_level(path, flate2::Compression::best())
    }

    fn with_level(path: &Path, level: flate2::Compression) -> TarGz {
        let file = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TarGz { gz: GzEncoder::new(BufWriter::with_capacity(1 << 20, file), level) }
    }

    /// A regular member of `body`'s bytes (`size` of them).
    fn member(&mut self, name: &str, size: u64, body: Body<'_>) {
        self.header(name.as_bytes(), EntryType::Regular, size);
        body(&mut |chunk| self.gz.write_all(chunk).unwrap());
        self.pad(size);
    }

    /// A GNU header with a raw name (at most 100 bytes) announcing `size`.
    fn header(&mut self, name: &[u8], kind: EntryType, size: u64) {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().expect("gnu header").name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_mode(0o600);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h.set_cksum();
        self.gz.write_all(h.as_bytes()).unwrap();
    }

    /// `head`, then `fill` up to `size` bytes, then the padding to a block.
    fn data(&mut self, head: &[u8], fill: u8, size: u64) {
        self.gz.write_all(head).unwrap();
        let chunk = vec![fill; MIB as usize];
        let mut left = size - head.len() as u64;
        while left > 0 {
            let n = left.min(MIB) as usize;
            self.gz.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        self.pad(size);
    }

    fn pad(&mut self, size: u64) {
        let rem = (size % 512) as usize;
        if rem != 0 {
            self.gz.write_all(&[0; 512][rem..]).unwrap();
        }
    }

    /// The two zero blocks that end a tar archive, and the gzip trailer.
    fn finish(mut self) {
        self.gz.write_all(&[0; 1024]).unwrap();
        self.gz.finish().unwrap().flush().unwrap();
    }
}

/// A member's bytes, produced in chunks so that a huge one costs no memory.
type Body<'a> = &'a dyn Fn(Sink<'_>);
/// Where a [`Body`] puts its chunks.
type Sink<'a> = &'a mut dyn FnMut(&[u8]);

/// The size and SHA-256 (hex) of a [`Body`].
fn measure(body: Body<'_>) -> (u64, String) {
    use sha2::Digest;
    let (mut sha, mut len) = (sha2::Sha256::new(), 0u64);
    body(&mut |chunk| {
        sha.update(chunk);
        len += chunk.len() as u64;
    });
    (len, format!("{:x}", sha.finalize()))
}

/// `count` copies of `unit`, in chunks of about a MiB.
fn repeat(out: Sink<'_>, unit: &[u8], count: u64) {
    let per_chunk = (MIB as usize / unit.len()).max(1) as u64;
    let chunk = unit.repeat(per_chunk as usize);
    let mut left = count;
    while left > 0 {
        let n = left.min(per_chunk);
        out(&chunk[..n as usize * unit.len()]);
        left -= n;
    }
}

/// The small real archive, sealed again as a forger would (SHA256SUMS
/// recomputed, no signature), with `manifest` (if given) as its
/// manifest.json and `sums_padding` blank lines after SHA256SUMS' lines.
/// Streamed, so a manifest or SHA256SUMS of many MiB costs no memory here.
fn resealed(path: &Path, manifest: Option<Body<'_>>, sums_padding: u64) {
    use lifeboat::archive::{signature, MANIFEST, SUMS};
    let base = Crafted::read(small_archive());
    let members: Vec<&Member> =
        base.members.iter().filter(|m| m.path != SUMS.as_bytes() && m.path != signature::MEMBER.as_bytes()).collect();
    let mut sums = String::new();
    for m in &members {
        let sha = match manifest {
            Some(body) if m.path == MANIFEST.as_bytes() => measure(body).1,
            _ => craft::sha256_hex(&m.data),
        };
        sums.push_str(&format!("{sha}  {}\n", m.path_str()));
    }
    let mut t = TarGz::with_level(path, flate2::Compression::fast());
    for m in &members {
        let name = m.path_str();
        match manifest {
            Some(body) if name == MANIFEST => t.member(&name, measure(body).0, body),
            _ => t.member(&name, m.data.len() as u64, &|out| out(&m.data)),
        }
    }
    let sums_body = |out: Sink<'_>| {
        out(sums.as_bytes());
        repeat(out, b"\n", sums_padding);
    };
    t.member(SUMS, sums.len() as u64 + sums_padding, &sums_body);
    t.finish();
}

/// The small archive's manifest.json with `count` copies of `warning` as
/// its warnings, written as it goes.
fn manifest_with_warnings(warning: &'static str, count: u64) -> impl Fn(Sink<'_>) {
    let base = Crafted::read(small_archive());
    let mut manifest: serde_json::Value = serde_json::from_slice(base.data(lifeboat::archive::MANIFEST)).unwrap();
    manifest["warnings"] = serde_json::json!(["@W@"]);
    let text = serde_json::to_string(&manifest).unwrap();
    let (head, tail) = text.split_once("\"@W@\"").unwrap();
    let (head, tail) = (head.to_string(), tail.to_string());
    let item = serde_json::to_string(warning).unwrap();
    move |out: Sink<'_>| {
        out(head.as_bytes());
        out(item.as_bytes());
        repeat(out, format!(",{item}").as_bytes(), count - 1);
        out(tail.as_bytes());
    }
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// `lifeboat verify ARCHIVE` and `lifeboat restore ARCHIVE --db …`: both
/// read the archive before anything else (restore verifies before it
/// connects, so the URL is never used).
fn readers(archive: &Path) -> Vec<(&'static str, Command)> {
    let mut verify = lifeboat();
    verify.arg("verify").arg(archive);
    let mut restore = lifeboat();
    restore.arg("restore").arg(archive).args(["--db", "postgres://lifeboat@127.0.0.1:1/never_used"]);
    for cmd in [&mut verify, &mut restore] {
        cmd.current_dir(archive.parent().unwrap());
    }
    vec![("verify", verify), ("restore", restore)]
}

/// Runs both readers on `archive`: each must exit 1 (invalid archive) with
/// every `expected` text in a short, printable message, within the memory
/// bound.
fn assert_refused_within_bound(archive: &Path, expected: &[&str]) {
    for (name, cmd) in readers(archive) {
        let measured = run_measured(&cmd);
        let (out, peak) = (measured.output, measured.peak_rss_kib * 1024);
        let err = stderr(&out);
        eprintln!(
            "{name} {}: peak RSS {} MiB\n{}",
            archive.display(),
            peak / MIB,
            err.chars().take(2_000).collect::<String>()
        );
        assert!(peak < PEAK_RSS_BOUND, "{name} peaked at {} MiB (bound {} MiB)", peak / MIB, PEAK_RSS_BOUND / MIB);
        assert_printable_and_short(&err);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        for e in expected {
            assert!(err.contains(e), "{name}: {e:?} not in:\n{err}");
        }
    }
}

/// No raw control characters (they could drive a terminal) besides
/// newlines, and no flood: a member's name is shown truncated.
fn assert_printable_and_short(err: &str) {
    let start: String = err.chars().take(2_000).collect();
    assert!(err.len() < 2_000, "{} bytes of error message, starting:\n{start}", err.len());
    assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "raw control characters in:\n{start:?}");
}

/// A name that tries to clear the screen and recolour the terminal.
const TERMINAL_TRICKS: &[u8] = b"config/\x1b[2J\x1b[31mred\x07";

/// An archive whose first entry is an extension header (`kind`, named
/// `name`) announcing 256 MiB that start with `head`, then one empty member:
/// it compresses to well under 2 MiB.
fn huge_extension(dir: &Path, kind: EntryType, name: &[u8], head: &[u8]) -> std::path::PathBuf {
    let path = dir.join("huge.tar.gz");
    let mut t = TarGz::create(&path);
    let size = 256 * MIB;
    t.header(name, kind, size);
    t.data(head, b'a', size);
    t.header(b"config/x", EntryType::Regular, 0);
    t.finish();
    assert!(size_of(&path) < 2 * MIB, "generator: {} bytes", size_of(&path));
    path
}

// covers: FR-22.6, FR-22.3, SC-5
#[test]
fn a_gnu_long_name_of_256_mib_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = huge_extension(dir.path(), EntryType::GNULongName, b"././@LongLink", TERMINAL_TRICKS);
    // The member is named by the start of its name, escaped.
    assert_refused_within_bound(&path, &["config/\\u{1b}[2J\\u{1b}[31mred\\u{7}aaa", "4096"]);
}

// covers: FR-22.6, FR-22.3, SC-5
#[test]
fn a_pax_header_of_256_mib_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let head = format!("{} comment=", 256 * MIB);
    let path = huge_extension(dir.path(), EntryType::XHeader, b"././@PaxHeader", head.as_bytes());
    assert_refused_within_bound(&path, &["././@PaxHeader", "PAX", "65536"]);
}

// covers: FR-22.7, FR-22.3, SC-5
#[test]
fn an_archive_of_400_000_empty_members_is_refused_at_the_member_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("members.tar.gz");
    let mut t = TarGz::create(&path);
    for i in 0..400_000u32 {
        t.header(format!("config/m{i:07}").as_bytes(), EntryType::Regular, 0);
    }
    t.finish();
    assert!(size_of(&path) < 4 * MIB, "generator: {} bytes", size_of(&path));
    assert_refused_within_bound(&path, &["config/m0100000", "100000 members"]);
}

// covers: FR-22.8, FR-22.4, SC-5
#[test]
fn a_manifest_of_22_million_warnings_and_a_padded_sha256sums_are_refused_within_the_bound() {
    // The archive of issue 19: 66 MB of `"",` in manifest.json and 63 MiB
    // of blank lines in SHA256SUMS, sealed consistently. It once verified
    // (exit 0) at 789 MB of memory.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warnings.tar.gz");
    resealed(&path, Some(&manifest_with_warnings("", 22_000_000)), 63 * MIB);
    assert!(size_of(&path) < 2 * MIB, "generator: {} bytes", size_of(&path));
    assert_refused_within_bound(&path, &["manifest.json", "more than a manifest can be"]);

    // Within the size cap, 4 million empty warnings (12 MB) are refused on
    // what they would take once parsed, before any is built.
    resealed(&path, Some(&manifest_with_warnings("", 4_000_000)), 0);
    assert_refused_within_bound(&path, &["manifest.json", "more values than a manifest of 10 000 tables"]);
    // And a few thousand real-looking ones on their count.
    resealed(&path, Some(&manifest_with_warnings("large table public.t: ~300 MB in full mode", 5_000)), 0);
    assert_refused_within_bound(&path, &["manifest.json", "5000 warnings", "at most 1000"]);

    // SHA256SUMS: one line per member before it, with 64 KiB to spare.
    resealed(&path, None, 63 * MIB);
    assert_refused_within_bound(&path, &["SHA256SUMS", "one line for each of the"]);
    resealed(&path, None, 70_000);
    assert_refused_within_bound(&path, &["SHA256SUMS", "one line for each of the 10 members"]);
}

// covers: FR-22.8, FR-22.7, SC-5
#[test]
fn a_hundred_thousand_members_with_4_kib_names_are_refused_at_the_name_total() {
    // 99 990 members with 4096-byte names (GNU long names): 400 MB of
    // names, once kept twice (840 MB of memory), in a 3 MB archive.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.tar.gz");
    let mut t = TarGz::with_level(&path, flate2::Compression::fast());
    for i in 0..99_990u32 {
        let mut name = format!("config/{i:05}-").into_bytes();
        name.resize(4096, b'n');
        t.header(b"././@LongLink", EntryType::GNULongName, 4097);
        t.gz.write_all(&name).unwrap();
        t.gz.write_all(&[0]).unwrap();
        t.pad(4097);
        t.header(&name[..100], EntryType::Regular, 0);
    }
    t.finish();
    assert!(size_of(&path) < 8 * MIB, "generator: {} bytes", size_of(&path));
    // 8 MiB of names is 2048 of these: the 2049th is refused.
    assert_refused_within_bound(&path, &["config/02048-nnn", "add up to more than 8388608 bytes"]);
}

// covers: FR-22.8, FR-5.2
#[test]
fn a_member_listed_twice_in_sha256sums_is_refused() {
    // The forger replaces BACKUP_INFO.txt's line with a second manifest.json
    // one, so that every line names a member that is there.
    let mut c = Crafted::read(small_archive());
    let sums = String::from_utf8(c.data(lifeboat::archive::SUMS).to_vec()).unwrap();
    let line = |name: &str| sums.lines().find(|l| l.ends_with(&format!("  {name}"))).unwrap().to_string();
    let forged = sums.replace(&line(lifeboat::archive::INFO), &line(lifeboat::archive::MANIFEST));
    *c.data_mut(lifeboat::archive::SUMS) = forged.into_bytes();
    let err = lifeboat::verify::verify_stream(c.gz().as_slice()).unwrap_err().to_string();
    assert!(err.contains("SHA256SUMS") && err.contains("a second time"), "{err}");
}

// covers: FR-22.6, FR-22.1
#[test]
fn member_names_in_errors_are_escaped_and_truncated() {
    let base = Crafted::read(small_archive());
    let dir = tempfile::tempdir().unwrap();
    // A short name with control characters (refused as unsafe), and a valid
    // 3000-byte name that is not listed in SHA256SUMS.
    let long = format!("config/{}", "n".repeat(3_000));
    for (file, name, expected) in [
        ("tricks.tar.gz", TERMINAL_TRICKS.to_vec(), "config/\\u{1b}[2J\\u{1b}[31mred\\u{7}"),
        ("long.tar.gz", long.clone().into_bytes(), "config/nnnnnnnn"),
    ] {
        let mut c = base.clone();
        c.members.insert(1, Member::file(&name, 0o600, "x"));
        let path = dir.path().join(file);
        c.write(&path);
        for (reader, cmd) in readers(&path) {
            let out = run_measured(&cmd).output;
            assert_exit(&out, 1);
            let err = stderr(&out);
            assert!(err.contains(expected), "{reader} {file}: {expected:?} not in:\n{err}");
            assert_printable_and_short(&err);
        }
    }
}

/// `lifeboat verify ARCHIVE`.
fn verify(archive: &Path) -> Output {
    lifeboat().arg("verify").arg(archive).output().expect("run lifeboat verify")
}

// covers: FR-5.2, FR-22.3
#[test]
fn verify_refuses_a_second_gzip_stream_appended_to_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appended.tar.gz");
    let evil = Crafted { members: vec![Member::file("../appended_evil", 0o644, "planted\n")] };
    let mut bytes = small_archive().to_vec();
    bytes.extend(evil.gz());
    std::fs::write(&path, &bytes).unwrap();
    // What makes it dangerous: tar, told to skip zero blocks, lists the
    // appended member as part of the archive.
    let listed = Command::new("tar").arg("-tizf").arg(&path).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("../appended_evil"), "{listed:?}");

    let out = verify(&path);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("after the end of the archive") && err.contains("appended"), "{err}");

    // Data hidden after the end-of-archive blocks inside the one gzip
    // stream is refused too (`tar -i` would read it as members).
    let mut tar = craft::gunzip(small_archive());
    let end = tar.len();
    tar.extend(evil.tar());
    assert!(tar.len() > end);
    std::fs::write(&path, craft::gzip(&tar)).unwrap();
    let out = verify(&path);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("after the end of the archive"), "{}", stderr(&out));
}

// covers: FR-5.2
#[test]
fn verify_refuses_a_data_member_that_the_manifest_does_not_list() {
    let mut c = Crafted::read(small_archive());
    let csv = "database/data/public.pets.csv";
    assert!(!c.data(csv).is_empty());
    let mut manifest: serde_json::Value = serde_json::from_slice(c.data(lifeboat::archive::MANIFEST)).unwrap();
    manifest["tables"].as_array_mut().unwrap().retain(|t| t["file"] != csv);
    *c.data_mut(lifeboat::archive::MANIFEST) = serde_json::to_vec_pretty(&manifest).unwrap();
    c.resum();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unlisted.tar.gz");
    c.write(&path);
    let out = verify(&path);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains(csv) && err.contains("not listed in manifest.json"), "{err}");
}

/// File names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// `lifeboat restore ARCHIVE --db URL --jobs 2 --trusted-key KEY EXTRA…`
/// with `TMPDIR` set; KEY is the key of the store `store` names.
fn restore_jobs(archive: &Path, url: &str, tmpdir: &Path, store: &Path, extra: &[&str]) -> Output {
    lifeboat()
        .arg("restore")
        .arg(archive)
        .args(["--db", url, "--jobs", "2", "--trusted-key"])
        .arg(store.join(".lifeboat/signing.pub"))
        .args(extra)
        .env("TMPDIR", tmpdir)
        .current_dir(archive.parent().unwrap())
        .output()
        .expect("run lifeboat restore")
}

// covers: FR-7.9
#[test]
fn parallel_restore_spools_beside_the_archive_not_in_tmpdir_and_removes_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.tar.gz");
    std::fs::write(&good, small_archive()).unwrap();
    // The first owner twice: the rows load, the primary key then fails.
    let bad = dir.path().join("duplicate.tar.gz");
    let mut c = Crafted::read(small_archive());
    let csv = "database/data/public.owners.csv";
    let data = c.data_mut(csv);
    let start = data.iter().position(|&b| b == b'\n').unwrap() + 1;
    let end = start + data[start..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let row = data[start..end].to_vec();
    data.splice(start..start, row);
    c.refresh_table(csv);
    let keys = tempfile::tempdir().unwrap();
    let store = crate::support::small_store_in(keys.path());
    c.sign_with(&store);
    c.write(&bad);
    // TMPDIR names a directory that does not exist, so any use of it fails
    // the run; its parent must stay empty.
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().join("missing");

    let target = fresh_db("limits spool ok");
    let out = restore_jobs(&good, &target.url, &tmpdir, &store, &[]);
    assert_exit(&out, 0);
    assert_eq!(target.count("owners"), 6);

    let target = fresh_db("limits spool fails");
    let out = restore_jobs(&bad, &target.url, &tmpdir, &store, &[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("emptied again"), "{}", stderr(&out));

    assert_eq!(names(tmp.path()), Vec::<String>::new(), "something was written under TMPDIR");
    assert_eq!(names(dir.path()), ["duplicate.tar.gz", "good.tar.gz"], "a spool was left beside the archive");

    // --spool-dir: used instead, and left empty on success and failure.
    let spool = tmp.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let flag = ["--spool-dir", spool.to_str().unwrap()];
    let target = fresh_db("limits spool dir ok");
    assert_exit(&restore_jobs(&good, &target.url, &tmpdir, &store, &flag), 0);
    let target = fresh_db("limits spool dir fails");
    assert_exit(&restore_jobs(&bad, &target.url, &tmpdir, &store, &flag), 1);
    assert_eq!(names(&spool), Vec::<String>::new(), "a spool was left in --spool-dir");

    // A --spool-dir that cannot be used is named before the target is
    // touched: even with --force, what the target holds is still there.
    let target = fresh_db("limits spool dir missing");
    target.exec("CREATE TABLE keep_me (id int PRIMARY KEY); INSERT INTO keep_me VALUES (1)");
    let out = restore_jobs(&good, &target.url, &tmpdir, &store, &["--force", "--spool-dir", tmpdir.to_str().unwrap()]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains(tmpdir.to_str().unwrap()) && err.contains("--spool-dir"), "{err}");
    assert_eq!(target.count("keep_me"), 1);
}
