//! `lifeboat verify`: proves an archive is complete and unmodified without
//! a database: gzip and tar structure, member paths, every member against
//! `SHA256SUMS` and `manifest.json`, and CSV row counts (parsed as CSV)
//! against the manifest, and every member listed by the manifest (and the
//! other way round). The same pass guards every restore.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::reader::{for_each_member_in, ArchiveError, Hashing};
use crate::archive::{self, CsvCounter, Manifest};
use crate::events::{Event, Progress};

/// manifest.json and SHA256SUMS are read into memory; a lifeboat archive's
/// are far smaller than this, a hostile one is refused.
const MAX_META_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub archive: PathBuf,
    pub size_bytes: u64,
    pub members: usize,
    pub tables: usize,
    pub rows: u64,
    pub files: usize,
    #[serde(skip)]
    pub manifest: Manifest,
}

struct Seen {
    sha256: String,
    bytes: u64,
    rows: Option<u64>,
}

pub fn verify(path: &Path, progress: Progress) -> Result<VerifyReport, ArchiveError> {
    progress(Event::Step("verify"));
    let reader = crate::archive::reader::open(path)?;
    let size_bytes = reader.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
    let mut report = verify_stream(reader)?;
    report.archive = path.to_path_buf();
    report.size_bytes = size_bytes;
    Ok(report)
}

/// [`verify`] over any byte stream; `archive` and `size_bytes` are left empty.
pub fn verify_stream(input: impl Read) -> Result<VerifyReport, ArchiveError> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut manifest_text: Option<Vec<u8>> = None;
    let mut sums_text: Option<Vec<u8>> = None;
    for_each_member_in(input, |m, r| {
        let is_meta = m.path == archive::MANIFEST || m.path == archive::SUMS;
        if is_meta && m.size > MAX_META_BYTES {
            return Err(ArchiveError::Member {
                path: m.path.clone(),
                reason: format!("is {} bytes, more than a manifest can be", m.size),
            });
        }
        let is_csv = m.path.starts_with(archive::DATA_DIR);
        let mut h = Hashing::new(r);
        let mut csv = CsvCounter::default();
        let mut keep = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = h.read(&mut buf).map_err(|e| ArchiveError::Corrupt { at: Some(m.path.clone()), source: e })?;
            if n == 0 {
                break;
            }
            if is_csv {
                csv.feed(&buf[..n]);
            }
            if is_meta {
                keep.extend_from_slice(&buf[..n]);
            }
        }
        if m.path == archive::MANIFEST {
            manifest_text = Some(keep);
        } else if m.path == archive::SUMS {
            sums_text = Some(keep);
        }
        seen.insert(m.path.clone(), Seen { bytes: h.bytes, sha256: h.hex(), rows: is_csv.then(|| csv.rows()) });
        Ok(())
    })?;

    let missing = |p: &str| ArchiveError::Member { path: p.to_string(), reason: "is missing".into() };
    let sums = sums_text.ok_or_else(|| missing(archive::SUMS))?;
    let sums = archive::parse_sums(&String::from_utf8_lossy(&sums))
        .map_err(|r| ArchiveError::Member { path: archive::SUMS.into(), reason: r })?;
    let listed: BTreeMap<&str, &str> = sums.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
    for (path, sha) in &listed {
        let s = seen.get(*path).ok_or_else(|| missing(path))?;
        if s.sha256 != *sha {
            return Err(ArchiveError::Member {
                path: path.to_string(),
                reason: "SHA-256 does not match SHA256SUMS (the member was modified or damaged)".into(),
            });
        }
    }
    if let Some(extra) = seen.keys().find(|p| p.as_str() != archive::SUMS && !listed.contains_key(p.as_str())) {
        return Err(ArchiveError::Member { path: extra.clone(), reason: "is not listed in SHA256SUMS".into() });
    }

    let manifest = manifest_text.ok_or_else(|| missing(archive::MANIFEST))?;
    let manifest: Manifest = serde_json::from_slice(&manifest).map_err(|e| ArchiveError::Member {
        path: archive::MANIFEST.into(),
        reason: format!("is not a valid manifest: {e}"),
    })?;
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
        if s.bytes != bytes || s.sha256 != sha {
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
    let mut known: BTreeSet<&str> = [archive::MANIFEST, archive::INFO, archive::SUMS].into();
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
        manifest,
    })
}
