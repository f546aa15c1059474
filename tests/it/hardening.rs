//! The archive reader against hostile and damaged input (FR-22): crafted
//! members that try to leave the target directory, and a bounded,
//! deterministic mutation fuzz over a real archive that runs in every test
//! pass (the `cargo fuzz` target in `fuzz/` explores further, off CI).
//!
//! [`craft`] rewrites real archives member by member; `restore.rs` uses it
//! too, for archives that only one specific check can catch.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lifeboat::archive::reader::{for_each_member_in, ArchiveError, Hashing};
use lifeboat::verify::verify_stream;

use crate::support::{fresh_db, lifeboat, toml_string, write_config};

use craft::{Crafted, Member};

/// Rewrites archives: read every member of a `.tar.gz`, change, add or
/// remove members (including ones the tar crate's safe API refuses to
/// write), recompute what a careful forger would recompute, write it back.
pub(crate) mod craft {
    use std::io::{Read, Write};
    use std::path::Path;

    use flate2::read::GzDecoder;
    use flate2::write::GzEncoder;
    use lifeboat::archive::reader::Hashing;
    use lifeboat::archive::{format_sums, signature, CsvCounter, MANIFEST, SUMS};
    use tar::EntryType;

    /// One tar member, with its path as raw bytes so anything can be written.
    #[derive(Debug, Clone)]
    pub struct Member {
        pub path: Vec<u8>,
        pub kind: EntryType,
        pub mode: u32,
        pub mtime: u64,
        pub data: Vec<u8>,
        /// Target of a symlink or hardlink.
        pub link: Vec<u8>,
        /// (major, minor) of a device.
        pub device: (u32, u32),
        /// Records of a pax extended header written just before this member
        /// (`path=…` overrides the header's name for readers that honour pax).
        pub pax: Vec<(String, Vec<u8>)>,
    }

    impl Member {
        pub fn file(path: impl AsRef<[u8]>, mode: u32, data: impl AsRef<[u8]>) -> Member {
            Member {
                path: path.as_ref().to_vec(),
                kind: EntryType::Regular,
                mode,
                mtime: 1_700_000_000,
                data: data.as_ref().to_vec(),
                link: Vec::new(),
                device: (0, 0),
                pax: Vec::new(),
            }
        }

        pub fn link(kind: EntryType, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Member {
            Member { kind, link: target.as_ref().to_vec(), mode: 0o777, ..Member::file(path, 0o644, b"") }
        }

        pub fn special(kind: EntryType, path: impl AsRef<[u8]>, device: (u32, u32)) -> Member {
            Member { kind, device, ..Member::file(path, 0o666, b"") }
        }

        pub fn path_str(&self) -> String {
            String::from_utf8_lossy(&self.path).into_owned()
        }

        /// The path a pax-honouring reader sees.
        pub fn effective_path(&self) -> String {
            match self.pax.iter().find(|(k, _)| k == "path") {
                Some((_, v)) => String::from_utf8_lossy(v).into_owned(),
                None => self.path_str(),
            }
        }
    }

    /// An archive as an ordered list of members.
    #[derive(Debug, Clone)]
    pub struct Crafted {
        pub members: Vec<Member>,
    }

    impl Crafted {
        pub fn read(gz: &[u8]) -> Crafted {
            let mut archive = tar::Archive::new(GzDecoder::new(gz));
            let mut members = Vec::new();
            for entry in archive.entries().expect("readable tar") {
                let mut entry = entry.expect("readable tar entry");
                let h = entry.header();
                let mut m = Member {
                    path: entry.path_bytes().into_owned(),
                    kind: h.entry_type(),
                    mode: h.mode().expect("mode"),
                    mtime: h.mtime().expect("mtime"),
                    data: Vec::new(),
                    link: entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default(),
                    device: (0, 0),
                    pax: Vec::new(),
                };
                entry.read_to_end(&mut m.data).expect("member data");
                members.push(m);
            }
            Crafted { members }
        }

        pub fn read_file(path: &Path) -> Crafted {
            Crafted::read(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        }

        pub fn index_of(&self, path: &str) -> usize {
            self.members
                .iter()
                .position(|m| m.path == path.as_bytes())
                .unwrap_or_else(|| panic!("no member {path} in {:?}", self.paths()))
        }

        pub fn paths(&self) -> Vec<String> {
            self.members.iter().map(Member::path_str).collect()
        }

        pub fn data(&self, path: &str) -> &[u8] {
            &self.members[self.index_of(path)].data
        }

        pub fn data_mut(&mut self, path: &str) -> &mut Vec<u8> {
            let i = self.index_of(path);
            &mut self.members[i].data
        }

        /// Recomputes `SHA256SUMS` over every other member, as the writer does.
        pub fn resum(&mut self) {
            let sums: Vec<(String, String)> = self
                .members
                .iter()
                .filter(|m| m.path != SUMS.as_bytes() && m.path != signature::MEMBER.as_bytes())
                .map(|m| (m.path_str(), sha256_hex(&m.data)))
                .collect();
            *self.data_mut(SUMS) = format_sums(&sums).into_bytes();
        }

        /// Makes manifest.json agree with the CSV member `csv` (rows, bytes,
        /// sha256) and then recomputes SHA256SUMS: the archive is internally
        /// consistent again, so `verify` passes whatever the CSV now holds.
        pub fn refresh_table(&mut self, csv: &str) {
            let data = self.data(csv).to_vec();
            let mut counter = CsvCounter::default();
            counter.feed(&data);
            let mut manifest: serde_json::Value = serde_json::from_slice(self.data(MANIFEST)).expect("manifest");
            let table = manifest["tables"]
                .as_array_mut()
                .expect("tables")
                .iter_mut()
                .find(|t| t["file"] == csv)
                .unwrap_or_else(|| panic!("no table with file {csv} in the manifest"));
            table["rows"] = counter.rows().into();
            table["bytes"] = (data.len() as u64).into();
            table["sha256"] = sha256_hex(&data).into();
            *self.data_mut(MANIFEST) = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
            self.resum();
        }

        /// Signs `SHA256SUMS` as it now is with the key of the store in
        /// `storage`, so the archive passes the trust check and only the
        /// edit under test can fail it.
        pub fn sign_with(&mut self, storage: &Path) {
            let sig = crate::flow::sign_sums(self.data(SUMS), storage);
            *self.data_mut(signature::MEMBER) = sig;
        }

        pub fn tar(&self) -> Vec<u8> {
            let mut b = tar::Builder::new(Vec::new());
            for m in &self.members {
                if !m.pax.is_empty() {
                    let mut body = Vec::new();
                    for (key, value) in &m.pax {
                        body.extend(pax_record(key, value));
                    }
                    let h = header(b"././@PaxHeader", EntryType::XHeader, 0o644, 0, body.len() as u64, b"", (0, 0));
                    b.append(&h, body.as_slice()).expect("append pax header");
                }
                if m.path.len() > 100 {
                    let mut name = m.path.clone();
                    name.push(0);
                    let h = header(b"././@LongLink", EntryType::GNULongName, 0o644, 0, name.len() as u64, b"", (0, 0));
                    b.append(&h, name.as_slice()).expect("append long name");
                }
                let h = header(&m.path, m.kind, m.mode, m.mtime, m.data.len() as u64, &m.link, m.device);
                b.append(&h, m.data.as_slice()).expect("append member");
            }
            b.into_inner().expect("finish tar")
        }

        pub fn gz(&self) -> Vec<u8> {
            gzip(&self.tar())
        }

        pub fn write(&self, path: &Path) {
            std::fs::write(path, self.gz()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(bytes).expect("gzip");
        gz.finish().expect("gzip")
    }

    pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out).expect("gunzip");
        out
    }

    pub fn sha256_hex(bytes: &[u8]) -> String {
        let mut h = Hashing::new(bytes);
        std::io::copy(&mut h, &mut std::io::sink()).expect("hash");
        h.hex()
    }

    /// A GNU header with raw name and link bytes (truncated at 100: longer
    /// names go in a preceding GNU long-name member).
    fn header(
        path: &[u8],
        kind: EntryType,
        mode: u32,
        mtime: u64,
        size: u64,
        link: &[u8],
        dev: (u32, u32),
    ) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().expect("gnu header");
            let n = path.len().min(gnu.name.len());
            gnu.name[..n].copy_from_slice(&path[..n]);
            let n = link.len().min(gnu.linkname.len());
            gnu.linkname[..n].copy_from_slice(&link[..n]);
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h.set_size(size);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(dev.0).expect("device major");
            h.set_device_minor(dev.1).expect("device minor");
        }
        h.set_cksum();
        h
    }

    /// `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
    fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        let mut r = format!("{len} {key}=").into_bytes();
        r.extend_from_slice(value);
        r.push(b'\n');
        r
    }
}

/// A real archive of a tiny database (two tables with a foreign key, a
/// sequence, quoted CSV values) and one config file, made by `lifeboat
/// backup` once per test process. Small, so that hundreds of mutants are
/// checked in well under a second.
pub(crate) fn small_archive() -> &'static [u8] {
    &small().0
}

/// Writes the signing key of the store that made [`small_archive`] into
/// `dir/store/.lifeboat/`; returns that store directory (its
/// `.lifeboat/signing.pub` is the key to trust, [`Crafted::sign_with`] signs with it).
pub(crate) fn small_store_in(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    std::fs::create_dir_all(store.join(".lifeboat")).unwrap();
    std::fs::write(store.join(".lifeboat/signing.key"), &small().1).unwrap();
    std::fs::write(store.join(".lifeboat/signing.pub"), &small().2).unwrap();
    store
}

/// The archive's bytes and its store's secret and public key files.
fn small() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static ARCHIVE: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let db = fresh_db("hardening small");
        db.exec(
            "CREATE TABLE owners (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE); \
             CREATE TABLE pets (id serial PRIMARY KEY, owner_id bigint NOT NULL REFERENCES owners, \
                                note text, created_at timestamptz NOT NULL DEFAULT now()); \
             INSERT INTO owners (name) SELECT 'owner ' || g FROM generate_series(1, 6) g; \
             INSERT INTO pets (owner_id, note) VALUES (1, 'plain'), (2, 'comma, \"quotes\"'), \
                 (3, E'two\\nlines'), (1, NULL), (4, ''), (6, E'back\\\\slash');",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/app.env"), "SECRET=1\n").unwrap();
        let config = format!(
            "[database]\nurl = {}\n\n[storage]\ndir = {}\n\n[files]\nbase_dir = {}\ninclude = [\"app.env\"]\n",
            toml_string(&db.url),
            toml_string(&dir.path().join("out").to_string_lossy()),
            toml_string(&dir.path().join("app").to_string_lossy()),
        );
        let config = write_config(dir.path(), &config);
        let out = lifeboat()
            .arg("--config")
            .arg(&config)
            .args(["--json", "backup"])
            .current_dir(dir.path())
            .output()
            .expect("run lifeboat backup");
        assert!(out.status.success(), "backup failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("backup --json");
        let path = PathBuf::from(report["archive"].as_str().expect("archive path"));
        let key = |f: &str| std::fs::read(dir.path().join("out/.lifeboat").join(f)).unwrap();
        (
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            key("signing.key"),
            key("signing.pub"),
        )
    })
}

/// What a reader delivers: every member's (path, size, mode, sha256).
type Listing = Vec<(String, u64, u32, String)>;

fn listing(bytes: &[u8]) -> Result<Listing, ArchiveError> {
    let mut out = Vec::new();
    for_each_member_in(bytes, |m, r| {
        let mut h = Hashing::new(r);
        std::io::copy(&mut h, &mut std::io::sink())
            .map_err(|e| ArchiveError::Corrupt { at: Some(m.path.clone()), source: e })?;
        out.push((m.path.clone(), m.size, m.mode, h.hex()));
        Ok(())
    })?;
    Ok(out)
}

/// Inserts `evil` right after the schema (so a reader that acted on members
/// as it met them would act on it before any data), recomputes SHA256SUMS
/// so that only the member check can catch it.
pub(crate) fn with_members(base: &Crafted, evil: &[Member]) -> Crafted {
    let mut c = base.clone();
    for (i, m) in evil.iter().enumerate() {
        c.members.insert(1 + i, m.clone());
    }
    c.resum();
    c
}

/// The members no lifeboat archive can contain, each named for its trick.
pub(crate) fn unsafe_members(outside: &Path) -> Vec<(&'static str, Vec<Member>)> {
    use tar::EntryType::{Block, Char, Fifo, Link, Symlink};
    let abs = outside.join("absolute_sentinel");
    let long_traversal = format!("config/{}../../../../../../long_sentinel", "deep/".repeat(20));
    let mut pax = Member::file("config/innocent.txt", 0o644, "pax");
    pax.pax = vec![("path".into(), b"../../pax_sentinel".to_vec())];
    vec![
        ("parent traversal", vec![Member::file("../../etc/passwd", 0o644, "root::0:0::/root:/bin/sh\n")]),
        ("traversal inside config/", vec![Member::file("config/../../../../dotdot_sentinel", 0o644, "x")]),
        ("absolute path", vec![Member::file(abs.to_string_lossy().as_bytes(), 0o644, "x")]),
        ("long GNU name with ..", vec![Member::file(long_traversal, 0o644, "x")]),
        ("pax path with ..", vec![pax]),
        (
            "symlink out, then a file through it",
            vec![
                Member::link(Symlink, "config/escape", outside.to_string_lossy().as_bytes()),
                Member::file("config/escape/symlink_sentinel", 0o644, "x"),
            ],
        ),
        ("relative symlink", vec![Member::link(Symlink, "config/up", "../../../..")]),
        ("hardlink to /etc/passwd", vec![Member::link(Link, "config/hard", "/etc/passwd")]),
        ("hardlink with ..", vec![Member::link(Link, "config/hard2", "../../etc/passwd")]),
        ("character device", vec![Member::special(Char, "config/null", (1, 3))]),
        ("block device", vec![Member::special(Block, "config/disk", (8, 0))]),
        ("fifo", vec![Member::special(Fifo, "config/fifo", (0, 0))]),
        ("non-UTF-8 path", vec![Member::file(b"config/\xff\xfe", 0o644, "x")]),
        ("backslash path", vec![Member::file("config\\..\\..\\x", 0o644, "x")]),
        ("unknown top-level file", vec![Member::file("README.md", 0o644, "x")]),
        ("outside the known directories", vec![Member::file("databases/extra.sql", 0o644, "x")]),
    ]
}

// covers: FR-22.1, FR-22.3, US-4/AC-4
#[test]
fn reader_refuses_every_member_that_could_escape_the_target_before_delivering_it() {
    let base = Crafted::read(small_archive());
    let outside = tempfile::tempdir().unwrap();
    for (trick, evil) in unsafe_members(outside.path()) {
        let bytes = with_members(&base, &evil).gz();
        let err = verify_stream(bytes.as_slice()).err().unwrap_or_else(|| panic!("{trick}: verify accepted it"));
        assert!(matches!(err, ArchiveError::Unsafe { .. }), "{trick}: {err:?}");
        assert_eq!(err.exit_code(), 1, "{trick}");
        assert!(err.to_string().contains("refused"), "{trick}: {err}");

        // The reader stops at the bad member: everything it delivered is a
        // path of the real archive.
        let mut delivered = Vec::new();
        let res = for_each_member_in(bytes.as_slice(), |m, _| {
            delivered.push(m.path.clone());
            Ok(())
        });
        assert!(res.is_err(), "{trick}");
        let real = base.paths();
        assert!(delivered.iter().all(|p| real.contains(p)), "{trick}: delivered {delivered:?}");
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "something was written outside");
}

// covers: FR-22.1, FR-5.2
#[test]
fn reader_refuses_a_duplicate_member_that_would_shadow_a_verified_one() {
    let base = Crafted::read(small_archive());
    // A second config/app.env after the first: a reader keeping the last one
    // would restore content no checksum vouches for.
    let mut c = base.clone();
    c.members.insert(c.index_of("config/app.env") + 1, Member::file("config/app.env", 0o600, "SECRET=evil\n"));
    c.resum();
    let err = verify_stream(c.gz().as_slice()).unwrap_err();
    assert!(err.to_string().contains("config/app.env") && err.to_string().contains("twice"), "{err}");
}

// covers: FR-22.4
#[test]
fn reader_refuses_an_oversized_manifest_before_reading_it() {
    // A header that announces a 1 GiB manifest.json, followed by almost
    // nothing: refused on the announced size, not after buffering it.
    let mut h = tar::Header::new_gnu();
    h.set_path(lifeboat::archive::MANIFEST).unwrap();
    h.set_size(1 << 30);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(b"{\"format\": ");
    let err = verify_stream(craft::gzip(&tar).as_slice()).unwrap_err();
    assert!(err.to_string().contains("manifest.json") && err.to_string().contains("1073741824 bytes"), "{err}");
}

/// Every committed input of `targets`, as (target, path, bytes): the
/// seeds, and the inputs that once broke a parser (`fuzz/regressions/
/// <target>/`, where a finding goes once it is fixed).
fn committed_inputs(targets: &[&'static str]) -> Vec<(&'static str, PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        for &target in targets {
            let Ok(dir) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
            for entry in dir.flatten() {
                out.push((target, entry.path(), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The archive targets' committed inputs as archives: `archive_tar` inputs
/// are tar streams, gzipped as the target does.
fn fuzz_inputs() -> Vec<(PathBuf, Vec<u8>)> {
    committed_inputs(&["archive_reader", "archive_tar"])
        .into_iter()
        .map(|(target, path, bytes)| (path, if target == "archive_tar" { craft::gzip(&bytes) } else { bytes }))
        .collect()
}

// covers: FR-22.5, FR-22.8, TS-6
#[test]
fn committed_parser_fuzz_inputs_replay_without_panicking() {
    let inputs = committed_inputs(&["manifest_json", "sha256sums"]);
    assert!(inputs.len() >= 2, "fuzz seeds missing: {inputs:?}");
    for (target, path, bytes) in &inputs {
        let verdict = catch_unwind(AssertUnwindSafe(|| match *target {
            "manifest_json" => lifeboat::archive::manifest::parse(bytes).map(|_| ()),
            _ => std::str::from_utf8(bytes)
                .map_err(|e| e.to_string())
                .and_then(|t| lifeboat::archive::parse_sums(t).map(|_| ())),
        }))
        .unwrap_or_else(|_| panic!("{} panics the {target} parser", path.display()));
        if path.file_name().unwrap().to_string_lossy().starts_with("small.") {
            assert!(verdict.is_ok(), "{}: {verdict:?}", path.display());
        }
    }
}

// covers: FR-22.5, FR-22.3, TS-6
#[test]
fn committed_fuzz_inputs_replay_without_panicking() {
    let inputs = fuzz_inputs();
    assert!(inputs.len() >= 8, "fuzz seeds missing: {inputs:?}");
    for (path, bytes) in &inputs {
        let name = path.file_name().unwrap().to_string_lossy();
        let verdict = catch_unwind(AssertUnwindSafe(|| verify_stream(bytes.as_slice()).map(|_| ())))
            .unwrap_or_else(|_| panic!("{} panics the verifier", path.display()));
        // The seeds are the small real archive and crafted variants of it.
        if name.starts_with("small.") {
            let hint = "after an archive format change: cargo test --test it hardening::write_fuzz_seeds -- --ignored";
            assert!(verdict.is_ok(), "{}: {verdict:?}\nregenerate the seeds {hint}", path.display());
        } else if path.components().any(|c| c.as_os_str() == "seeds") {
            assert!(matches!(verdict, Err(ArchiveError::Unsafe { .. })), "{}: {verdict:?}", path.display());
        }
    }
}

/// xorshift64: deterministic and good enough to pick positions.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to three random edits: bit flip, random byte, truncation, a chunk
/// duplicated elsewhere, a chunk zeroed, a chunk deleted.
fn mutate(rng: &mut Rng, original: &[u8]) -> (Vec<u8>, Vec<String>) {
    let mut b = original.to_vec();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(3) {
        if b.is_empty() {
            break;
        }
        let pos = rng.below(b.len());
        let len = 1 + rng.below(64.min(b.len() - pos));
        match rng.below(6) {
            0 => {
                let bit = rng.below(8);
                b[pos] ^= 1 << bit;
                what.push(format!("flip bit {bit} of byte {pos}"));
            }
            1 => {
                let v = rng.next() as u8;
                b[pos] = v;
                what.push(format!("byte {pos} = {v:#04x}"));
            }
            2 => {
                b.truncate(pos);
                what.push(format!("truncate to {pos}"));
            }
            3 => {
                let chunk = b[pos..pos + len].to_vec();
                let at = rng.below(b.len() + 1);
                b.splice(at..at, chunk);
                what.push(format!("copy {len} bytes from {pos} to {at}"));
            }
            4 => {
                b[pos..pos + len].fill(0);
                what.push(format!("zero {len} bytes at {pos}"));
            }
            _ => {
                b.drain(pos..pos + len);
                what.push(format!("delete {len} bytes at {pos}"));
            }
        }
    }
    (b, what)
}

/// The property the checksums give: an archive that verifies delivers
/// exactly the verified content. Every member's path, size, mode and bytes
/// are the original's; the exceptions are SHA256SUMS itself, which
/// nothing hashes, so it may differ only in ways that parse to the same
/// sums (e.g. a hex digit's case), and its signature, which `verify_stream`
/// reads but only checks against a trusted key (see `trust.rs`).
fn same_content(original: &Listing, original_sums: &str, mutant: &[u8]) -> Result<(), String> {
    let got = listing(mutant).map_err(|e| format!("verify passed but the reader fails: {e}"))?;
    let unhashed = [lifeboat::archive::SUMS, lifeboat::archive::signature::MEMBER];
    let strip = |l: &Listing| -> Listing { l.iter().filter(|m| !unhashed.contains(&m.0.as_str())).cloned().collect() };
    if strip(&got) != strip(original) {
        return Err(format!("verify passed with different members:\n{got:#?}"));
    }
    let sums = Crafted::read(mutant).data(lifeboat::archive::SUMS).to_vec();
    let parse = |t: &str| lifeboat::archive::parse_sums(t).map_err(|e| e.to_string());
    if parse(&String::from_utf8_lossy(&sums))? != parse(original_sums)? {
        return Err("verify passed with different SHA256SUMS".into());
    }
    Ok(())
}

/// Feeds `rounds` mutants of `original` (gzip bytes, or tar bytes that are
/// gzipped after mutation) to the verifier and the reader; returns how many
/// mutants verified (all with unchanged content) and every violation.
fn mutation_round(seed: u64, rounds: usize, original: &[u8], tar_level: bool) -> (usize, Vec<String>) {
    let gz = |b: &[u8]| if tar_level { craft::gzip(b) } else { b.to_vec() };
    let reference = gz(original);
    let base_listing = listing(&reference).expect("the original archive reads");
    let base_sums = String::from_utf8(Crafted::read(&reference).data(lifeboat::archive::SUMS).to_vec()).unwrap();
    verify_stream(reference.as_slice()).expect("the original archive verifies");

    let mut rng = Rng(seed);
    let (mut accepted, mut problems) = (0, Vec::new());
    for i in 0..rounds {
        let (mutated, what) = mutate(&mut rng, original);
        if mutated == original {
            continue;
        }
        let bytes = gz(&mutated);
        let verdict = catch_unwind(AssertUnwindSafe(|| verify_stream(bytes.as_slice()).is_ok()));
        let read = catch_unwind(AssertUnwindSafe(|| listing(&bytes).is_ok()));
        let label = format!("seed {seed:#x} round {i} ({}): {}", if tar_level { "tar" } else { "gz" }, what.join(", "));
        match (verdict, read) {
            (Ok(true), Ok(_)) => {
                accepted += 1;
                if let Err(e) = same_content(&base_listing, &base_sums, &bytes) {
                    problems.push(format!("{label}: {e}"));
                }
            }
            (Ok(false), Ok(_)) => {}
            _ => problems.push(format!("{label}: panicked")),
        }
    }
    (accepted, problems)
}

// covers: FR-22.3, FR-5.2, TS-6
#[test]
fn mutated_archives_never_panic_and_never_verify_with_altered_content() {
    let original = small_archive();
    let (accepted, problems) = mutation_round(0x5eed_0001_b0a7, 300, original, false);
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
    eprintln!("{accepted} of 300 gzip-level mutants verified with unchanged content");
    // Mutants that verify changed only bytes that carry no content (gzip
    // header mtime/OS bytes, padding bits): a handful at most.
    assert!(accepted < 30, "{accepted} of 300 gzip-level mutants verified; the checks look too lax");
}

// covers: FR-22.3, FR-5.2, TS-6
#[test]
fn mutated_tar_streams_never_panic_and_never_verify_with_altered_content() {
    // Mutating the tar inside and compressing again gets past gzip's CRC,
    // so the tar checksums, SHA256SUMS and the manifest are what must hold.
    let original = craft::gunzip(small_archive());
    let (accepted, problems) = mutation_round(0x7a2_5eed, 300, &original, true);
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
    // Edits in tar padding and after the end-of-archive blocks are harmless,
    // and the archive is mostly padding at this size: many verify.
    eprintln!("{accepted} of 300 tar-level mutants verified with unchanged content");
}

/// Writes the fuzz targets' seeds: the small archive and four crafted
/// variants, as `fuzz/seeds/archive_reader/*.tar.gz` and, uncompressed
/// (without BACKUP_INFO.txt), as `fuzz/seeds/archive_tar/*.tar`, and its
/// manifest.json and SHA256SUMS for the parsers' targets, so the fuzzer
/// starts from the real format. Run by hand after a format change:
/// `cargo test --test it hardening::write_fuzz_seeds -- --ignored`.
#[test]
#[ignore = "writes fuzz/seeds; run by hand after an archive format change"]
fn write_fuzz_seeds() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let base = Crafted::read(small_archive());
    let tricks: BTreeMap<_, _> = unsafe_members(Path::new("/tmp/outside")).into_iter().collect();
    let archives = [
        ("small", base.clone()),
        ("symlink", with_members(&base, &tricks["symlink out, then a file through it"])),
        ("longname", with_members(&base, &tricks["long GNU name with .."])),
        ("pax", with_members(&base, &tricks["pax path with .."])),
        // Just over the name limit (FR-22.6): the fuzzer starts at the cap.
        ("toolong", with_members(&base, &[Member::file(format!("config/{}", "x".repeat(4_100)), 0o600, "x")])),
    ];
    for (target, ext) in [("archive_reader", "tar.gz"), ("archive_tar", "tar")] {
        let dir = seeds.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, archive) in &archives {
            let bytes = if ext == "tar" {
                // Uncompressed, the human-readable BACKUP_INFO.txt would push
                // a seed past 20 KB; nothing checks more than its checksum.
                let mut slim = archive.clone();
                slim.members.retain(|m| m.path != lifeboat::archive::INFO.as_bytes());
                slim.resum();
                slim.tar()
            } else {
                archive.gz()
            };
            assert!(bytes.len() < 28_000, "{name}.{ext} is {} bytes", bytes.len());
            std::fs::write(dir.join(format!("{name}.{ext}")), bytes).unwrap();
        }
    }
    // The parsers' targets start from the small archive's own members.
    for (target, file, member) in [
        ("manifest_json", "small.json", lifeboat::archive::MANIFEST),
        ("sha256sums", "small.txt", lifeboat::archive::SUMS),
    ] {
        let dir = seeds.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), base.data(member)).unwrap();
    }
}
