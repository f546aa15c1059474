//! Reads an archive as one stream, refusing anything a lifeboat archive can
//! never contain: absolute paths, `..`, links, devices, duplicate members,
//! files outside the layout.
//! Every problem is an [`ArchiveError`]; malformed input never panics.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path};

use flate2::read::MultiGzDecoder;

use crate::crypt::Identities;
use sha2::{Digest, Sha256};

/// Metadata of one member, after validation.
#[derive(Debug, Clone)]
pub struct Member {
    pub path: String,
    pub size: u64,
    pub mode: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot open archive {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("archive is damaged or truncated{}: {source}", at.as_ref().map(|m| format!(" (after member {m})")).unwrap_or_default())]
    Corrupt { at: Option<String>, source: io::Error },
    #[error("member {path:?} is refused: {reason}")]
    Unsafe { path: String, reason: String },
    #[error("member {path}: {reason}")]
    Member { path: String, reason: String },
    #[error(transparent)]
    Encrypted(#[from] crate::crypt::DecryptError),
    /// The signature check refused the archive (see `archive::signature`).
    #[error("{0}")]
    Signature(String),
    /// `--trusted-key` cannot be used.
    #[error("{0}")]
    Key(String),
    #[error("{0}")]
    Other(String),
}

impl ArchiveError {
    /// 2 when the archive could not be opened at all, 1 when it is bad.
    pub fn exit_code(&self) -> u8 {
        match self {
            ArchiveError::Open { .. } | ArchiveError::Encrypted(_) | ArchiveError::Key(_) => 2,
            _ => 1,
        }
    }
}

/// Checks a member path: relative, plain components only, valid UTF-8.
pub fn safe_path(raw: &[u8]) -> Result<String, String> {
    let s = std::str::from_utf8(raw).map_err(|_| "path is not UTF-8".to_string())?;
    if s.is_empty() {
        return Err("empty path".into());
    }
    if s.starts_with('/') {
        return Err("absolute path".into());
    }
    for c in Path::new(s).components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return Err("path contains '..'".into()),
            Component::CurDir => return Err("path contains '.'".into()),
            _ => return Err("absolute path".into()),
        }
    }
    if s.contains('\\') || s.chars().any(char::is_control) {
        return Err("path contains a backslash or control character".into());
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// Whether a member path belongs to the v1 layout (DESIGN.md §4).
fn in_layout(path: &str) -> bool {
    use crate::archive::{signature, CONFIG_DIR, INFO, MANIFEST, SUMS};
    path.starts_with("database/")
        || path.starts_with(CONFIG_DIR)
        || [MANIFEST, INFO, SUMS, signature::MEMBER].contains(&path)
}

/// Calls `f` for every regular-file member in order, with a reader limited
/// to that member. Directory entries are skipped; anything else is refused.
/// After the last member, the rest of the gzip stream is read so a damaged
/// trailer (CRC, length) is noticed too.
pub fn for_each_member(
    path: &Path,
    identities: Option<&Identities>,
    f: impl FnMut(&Member, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    for_each_member_in(open(path, identities)?, f)
}

/// Opens an archive file for reading: the file itself, or its streaming
/// decryption when it is age-encrypted (which needs `identities`).
pub fn open(path: &Path, identities: Option<&Identities>) -> Result<Box<dyn Read>, ArchiveError> {
    let file = File::open(path).map_err(|source| ArchiveError::Open { path: path.display().to_string(), source })?;
    Ok(crate::crypt::decrypting(BufReader::with_capacity(256 * 1024, file), path, identities)?)
}

/// [`for_each_member`] over any byte stream (the fuzz target's entry point).
pub fn for_each_member_in(
    input: impl Read,
    mut f: impl FnMut(&Member, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let gz = MultiGzDecoder::new(input);
    let mut archive = tar::Archive::new(gz);
    let mut seen = HashSet::new();
    let mut last: Option<String> = None;
    let corrupt = |at: &Option<String>, source| ArchiveError::Corrupt { at: at.clone(), source };
    let entries = archive.entries().map_err(|e| corrupt(&last, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(&last, e))?;
        let raw = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw).into_owned();
        let path = safe_path(&raw).map_err(|reason| ArchiveError::Unsafe { path: display.clone(), reason })?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => {
                return Err(ArchiveError::Unsafe {
                    path: display,
                    reason: format!("entry type {other:?} (only regular files are allowed)"),
                });
            }
        }
        if !in_layout(&path) {
            return Err(ArchiveError::Unsafe {
                path: display,
                reason: "not part of the archive layout (database/, config/, manifest.json, BACKUP_INFO.txt, \
                         SHA256SUMS, SHA256SUMS.minisig)"
                    .into(),
            });
        }
        if !seen.insert(path.clone()) {
            return Err(ArchiveError::Member { path, reason: "appears twice".into() });
        }
        let member = Member {
            size: entry.size(),
            mode: entry.header().mode().map_err(|e| corrupt(&Some(path.clone()), e))? & 0o7777,
            path: path.clone(),
        };
        last = Some(path);
        f(&member, &mut entry)?;
        // Whatever `f` left unread still has to be consumed (and checked).
        io::copy(&mut entry, &mut io::sink()).map_err(|e| corrupt(&last, e))?;
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| corrupt(&last, e))?;
    Ok(())
}

/// A reader that hashes and counts what passes through it.
pub struct Hashing<R> {
    pub inner: R,
    pub hasher: Sha256,
    pub bytes: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing { inner, hasher: Sha256::new(), bytes: 0 }
    }
    pub fn hex(self) -> String {
        format!("{:x}", self.hasher.finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-22.1
    #[test]
    fn member_paths_are_validated() {
        assert_eq!(safe_path(b"config/ssl/cert.pem").unwrap(), "config/ssl/cert.pem");
        for bad in
            [&b"/etc/passwd"[..], b"../../etc/passwd", b"config/../../x", b"./a", b"", b"a\\b", b"\xff\xfe", b"a\nb"]
        {
            assert!(safe_path(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
