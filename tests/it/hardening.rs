//! The archive reader against hostile and damaged input (FR-22): crafted
//! members that try to leave the target directory, and a bounded,
//! deterministic mutation fuzz over a real archive that runs in every test
//! pass (the `cargo fuzz` target in `fuzz/` explores further, off CI).
//!
//! `support::craft` rewrites real archives member by member; `restore.rs` uses it
//! too, for archives that only one specific check can catch.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use lifeboat::archive::reader::{for_each_member_in, ArchiveError, Hashing};
use lifeboat::verify::verify_stream;

use crate::support::craft::{self, unsafe_members, with_members, Crafted, Member};
use crate::support::rng::Rng;
use crate::support::small_archive;

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
