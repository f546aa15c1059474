//! `lifeboat verify`: proves an archive is complete and unmodified without
//! a database: gzip and tar structure, member paths, every member against
//! `SHA256SUMS` and `manifest.json`, and CSV row counts (parsed as CSV)
//! against the manifest, and every member listed by the manifest (and the
//! other way round). The same pass guards every restore. Then the
//! signature (`SHA256SUMS.minisig`) is checked against `--trusted-key` or
//! the key of the store the archive sits in (see [`archive::signature`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::reader::{for_each_member_in, shown, ArchiveError, Source};
use crate::archive::signature::{self, KeyOrigin, SignatureReport, TrustedKey};
use crate::archive::{self, CsvCounter, Manifest};
use crate::crypt::Identities;
use crate::events::{Event, Progress};

/// manifest.json and SHA256SUMS are read into memory; a lifeboat archive's
/// are far smaller than this, a hostile one is refused before it is read.
/// SHA256SUMS has a tighter bound still: one line per member before it.
const MAX_META_BYTES: u64 = archive::manifest::MAX_MANIFEST_BYTES;

/// What `SHA256SUMS` may hold beyond one line for each member before it.
const SUMS_SLACK: u64 = 64 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub archive: PathBuf,
    pub size_bytes: u64,
    pub members: usize,
    pub tables: usize,
    pub rows: u64,
    pub files: usize,
    pub signature: SignatureReport,
    #[serde(skip)]
    pub manifest: Manifest,
    /// The bytes of `SHA256SUMS` and of its signature, for the signature check.
    #[serde(skip)]
    sums: Vec<u8>,
    #[serde(skip)]
    sums_signature: Option<Vec<u8>>,
}

/// How `verify` (and `restore`) read and trust an archive; flattened into
/// both commands' arguments (the `///` lines are the `--help` texts).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VerifyOptions {
    /// age identity file (from age-keygen), to read a .tar.gz.age archive
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// minisign public key that must have signed the archive; anything else (unsigned,
    /// another key) is refused [default: the .lifeboat/signing.pub of the archive's store,
    /// where a missing or other signature is only a warning]
    #[arg(long, value_name = "FILE")]
    pub trusted_key: Option<PathBuf>,
}

impl VerifyOptions {
    /// The identities of `--identity`, read once per pass over the archive.
    pub fn identities(&self) -> Result<Option<Identities>, crate::crypt::DecryptError> {
        self.identity.as_deref().map(Identities::from_file).transpose()
    }
}

/// What verify keeps of each member until SHA256SUMS and the manifest come
/// (its name is the key): a fixed few dozen bytes.
struct Seen {
    sha256: [u8; 32],
    bytes: u64,
    rows: Option<u64>,
    /// Found in SHA256SUMS (a second line for it is refused).
    listed: bool,
}

/// Reads a member to its end (keeping its bytes in `keep`): its size,
/// SHA-256 and, for a CSV member, its row count. Inflating is the reading
/// thread's work; hashing and counting, most of the rest, run beside it on
/// a second thread, fed in [`DIGEST_CHUNK`]s.
fn digest(r: &mut dyn Read, is_csv: bool, mut keep: Option<&mut Vec<u8>>) -> std::io::Result<Seen> {
    use sha2::{Digest, Sha256};
    use std::sync::mpsc;
    std::thread::scope(|s| {
        let (full, filled) = mpsc::sync_channel::<Vec<u8>>(4);
        let (empty, emptied) = mpsc::channel::<Vec<u8>>();
        let hasher = s.spawn(move || {
            let (mut sha, mut csv, mut bytes) = (Sha256::new(), CsvCounter::default(), 0u64);
            for buf in filled {
                sha.update(&buf);
                if is_csv {
                    csv.feed(&buf);
                }
                bytes += buf.len() as u64;
                let _ = empty.send(buf);
            }
            Seen { bytes, sha256: sha.finalize().into(), rows: is_csv.then(|| csv.rows()), listed: false }
        });
        loop {
            let mut buf = emptied.try_recv().unwrap_or_default();
            buf.resize(DIGEST_CHUNK, 0);
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if let Some(keep) = keep.as_mut() {
                keep.extend_from_slice(&buf);
            }
            if full.send(buf).is_err() {
                break;
            }
        }
        drop(full);
        Ok(hasher.join().expect("the hashing thread does not panic"))
    })
}

const DIGEST_CHUNK: usize = 256 * 1024;

/// [`verify_with`] a plain archive and the key of its own store.
pub fn verify(path: &Path, progress: Progress) -> Result<VerifyReport, ArchiveError> {
    verify_with(path, &VerifyOptions::default(), progress)
}

pub fn verify_with(path: &Path, opts: &VerifyOptions, progress: Progress) -> Result<VerifyReport, ArchiveError> {
    verify_source(&Source::from(path), opts, progress)
}

/// [`verify_with`] any [`Source`], a remote archive streamed from its store too.
pub fn verify_source(source: &Source, opts: &VerifyOptions, progress: Progress) -> Result<VerifyReport, ArchiveError> {
    progress(Event::Step("verify"));
    let identities = opts.identities()?;
    let trusted = trusted_key(source, opts, progress)?;
    let size_bytes = source.size();
    let reader = crate::archive::reader::open_source(source, identities.as_ref())?;
    let mut report = verify_stream(reader)?;
    report.archive = source.report_path();
    report.size_bytes = size_bytes;
    report.signature = signature::check(&report.sums, report.sums_signature.as_deref(), trusted.as_ref());
    if report.signature.refused() {
        return Err(ArchiveError::Signature(format!(
            "signature check failed for {}: {}",
            source.name(),
            report.signature.message
        )));
    }
    if report.signature.status != signature::Status::Valid {
        progress(Event::Warning(report.signature.message.clone()));
    }
    Ok(report)
}

/// `--trusted-key`, else the archive's store key (for a remote archive: the
/// configured local store's, see [`Source::store_key`]). A store key that is
/// missing or cannot be read only means the signature goes unchecked (and
/// says so).
fn trusted_key(source: &Source, opts: &VerifyOptions, progress: Progress) -> Result<Option<TrustedKey>, ArchiveError> {
    if let Some(p) = &opts.trusted_key {
        return TrustedKey::from_file(p, KeyOrigin::Flag).map(Some).map_err(|e| ArchiveError::Key(e.to_string()));
    }
    let Some(p) = source.store_key() else { return Ok(None) };
    match TrustedKey::from_file(&p, KeyOrigin::Store) {
        Ok(k) => Ok(Some(k)),
        Err(e) => {
            progress(Event::Warning(format!(
                "the store's signing key cannot be read, so the signature is not checked: {e}"
            )));
            Ok(None)
        }
    }
}

/// [`verify`] over any byte stream; `archive` and `size_bytes` are left empty.
pub fn verify_stream(input: impl Read) -> Result<VerifyReport, ArchiveError> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut manifest_text: Option<Vec<u8>> = None;
    let mut sums_text: Option<Vec<u8>> = None;
    let mut sig_bytes: Option<Vec<u8>> = None;
    // What SHA256SUMS can hold: one line for each member before it, and
    // room for the lines of a few hundred that went missing (so that they
    // are named as missing, not as an oversized SHA256SUMS).
    let mut sums_bound = SUMS_SLACK;
    for_each_member_in(input, |m, r| {
        let is_sig = m.path == signature::MEMBER;
        let is_meta = m.path == archive::MANIFEST || m.path == archive::SUMS || is_sig;
        if m.path == archive::SUMS && m.size > sums_bound {
            return Err(ArchiveError::Member {
                path: m.path.clone(),
                reason: format!(
                    "is {} bytes, more than one line for each of the {} members before it can take ({sums_bound} \
                     bytes with {SUMS_SLACK} to spare)",
                    m.size,
                    seen.len()
                ),
            });
        }
        if is_meta && m.size > MAX_META_BYTES {
            return Err(ArchiveError::Member {
                path: m.path.clone(),
                reason: format!("is {} bytes, more than a manifest can be", m.size),
            });
        }
        if is_sig && m.size > signature::MAX_SIGNATURE_BYTES {
            return Err(ArchiveError::Member {
                path: m.path.clone(),
                reason: format!("is {} bytes, more than a signature can be", m.size),
            });
        }
        let is_csv = m.path.starts_with(archive::DATA_DIR);
        // Sized once (the size is bounded above), not grown by doubling.
        let mut keep = if is_meta { Vec::with_capacity(m.size as usize) } else { Vec::new() };
        let digest = digest(r, is_csv, is_meta.then_some(&mut keep))
            .map_err(|e| ArchiveError::Corrupt { at: Some(m.path.clone()), source: e })?;
        if m.path == archive::MANIFEST {
            manifest_text = Some(keep);
        } else if m.path == archive::SUMS {
            sums_text = Some(keep);
        } else if is_sig {
            sig_bytes = Some(keep);
        }
        sums_bound += m.path.len() as u64 + archive::sums::LINE_OVERHEAD;
        seen.insert(m.path.clone(), digest);
        Ok(())
    })?;

    let missing = |p: &str| ArchiveError::Member { path: p.to_string(), reason: "is missing".into() };
    let sums_raw = sums_text.ok_or_else(|| missing(archive::SUMS))?;
    let bad_sums = |reason| ArchiveError::Member { path: archive::SUMS.into(), reason };
    let sums_str = std::str::from_utf8(&sums_raw).map_err(|_| bad_sums("is not UTF-8 text".into()))?;
    // Checked line by line against what was seen, marking each member
    // listed: no second copy of the names, and a name listed twice is found.
    for line in archive::sums::sum_lines(sums_str) {
        let (n, path, sha) = line.map_err(bad_sums)?;
        let s = seen.get_mut(path).ok_or_else(|| missing(path))?;
        if std::mem::replace(&mut s.listed, true) {
            return Err(bad_sums(format!("SHA256SUMS line {n} lists {} a second time", shown(path))));
        }
        if s.sha256 != sha {
            return Err(ArchiveError::Member {
                path: path.to_string(),
                reason: "SHA-256 does not match SHA256SUMS (the member was modified or damaged)".into(),
            });
        }
    }
    let unlisted =
        |(p, s): &(&String, &Seen)| p.as_str() != archive::SUMS && p.as_str() != signature::MEMBER && !s.listed;
    if let Some((extra, _)) = seen.iter().find(unlisted) {
        return Err(ArchiveError::Member { path: extra.clone(), reason: "is not listed in SHA256SUMS".into() });
    }

    let manifest_raw = manifest_text.ok_or_else(|| missing(archive::MANIFEST))?;
    let manifest: Manifest = archive::manifest::parse(&manifest_raw)
        .map_err(|reason| ArchiveError::Member { path: archive::MANIFEST.into(), reason })?;
    drop(manifest_raw);
    if manifest.format != archive::FORMAT || manifest.format_version != archive::FORMAT_VERSION {
        return Err(ArchiveError::Other(format!(
            "unsupported archive format {} v{} (this lifeboat reads {} v{})",
            manifest.format,
            manifest.format_version,
            archive::FORMAT,
            archive::FORMAT_VERSION
        )));
    }
    let check = |path: &str, bytes: u64, sha: &str| -> Result<&Seen, ArchiveError> {
        let s = seen.get(path).ok_or_else(|| missing(path))?;
        if s.bytes != bytes || archive::sums::decode_sha256(sha) != Some(s.sha256) {
            return Err(ArchiveError::Member {
                path: path.into(),
                reason: "size or SHA-256 does not match manifest.json".into(),
            });
        }
        Ok(s)
    };
    for t in &manifest.tables {
        let (Some(file), Some(sha)) = (&t.file, &t.sha256) else { continue };
        if !file.starts_with(archive::DATA_DIR) {
            return Err(ArchiveError::Member {
                path: file.clone(),
                reason: "manifest points a table outside database/data/".into(),
            });
        }
        let s = check(file, t.bytes, sha)?;
        if s.rows != Some(t.rows) {
            return Err(ArchiveError::Member {
                path: file.clone(),
                reason: format!(
                    "has {} CSV rows but manifest.json says {} for {}",
                    s.rows.unwrap_or(0),
                    t.rows,
                    t.display()
                ),
            });
        }
    }
    for f in manifest.files.iter().chain(&manifest.members) {
        check(&f.path, f.bytes, &f.sha256)?;
    }
    for required in [archive::SCHEMA, archive::SEQUENCES, archive::CONSTRAINTS] {
        if !manifest.members.iter().any(|m| m.path == required) {
            return Err(missing(required));
        }
    }
    // And the other way round: every member is one the manifest lists, so
    // no CSV, SQL or config file rides along that restore would not account
    // for (a table dropped from the manifest, a planted file).
    let mut known: BTreeSet<&str> = [archive::MANIFEST, archive::INFO, archive::SUMS, signature::MEMBER].into();
    known.extend(manifest.tables.iter().filter_map(|t| t.file.as_deref()));
    known.extend(manifest.files.iter().chain(&manifest.members).map(|f| f.path.as_str()));
    if let Some(extra) = seen.keys().find(|p| !known.contains(p.as_str())) {
        return Err(ArchiveError::Member {
            path: extra.clone(),
            reason: "is not listed in manifest.json (a table's CSV, a config file or a database/*.sql member)".into(),
        });
    }
    Ok(VerifyReport {
        archive: PathBuf::new(),
        size_bytes: 0,
        members: seen.len(),
        tables: manifest.tables.len(),
        rows: manifest.tables.iter().map(|t| t.rows).sum(),
        files: manifest.files.len(),
        signature: signature::check(&sums_raw, sig_bytes.as_deref(), None),
        manifest,
        sums: sums_raw,
        sums_signature: sig_bytes,
    })
}
