//! Reads an archive as one stream, refusing anything a lifeboat archive can
//! never contain: absolute paths, `..`, links, devices, duplicate members,
//! files outside the layout, a second gzip stream or data hidden after the
//! end of the tar archive.
//!
//! What a hostile archive could make it hold in memory is capped before it
//! is read (FR-22.6, FR-22.7, FR-22.8): member names at [`MAX_NAME_BYTES`]
//! each and [`MAX_NAME_BYTES_TOTAL`] together, PAX headers at
//! [`MAX_PAX_BYTES`], the member count at [`MAX_MEMBERS`]; duplicates are
//! found by a digest of each name, so the names themselves are not kept. The
//! tar crate would read GNU long names and PAX headers whole, so the
//! entries are iterated raw and those two extension headers handled here.
//! Names in messages go through [`shown`]: escaped and truncated.
//! Every problem is an [`ArchiveError`]; malformed input never panics.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use flate2::bufread::GzDecoder;
use sha2::{Digest, Sha256};

use crate::crypt::Identities;
/// Moved to the bottom floor (`error` imports nothing above it); named
/// here too, where readers of archives look for them.
pub use crate::error::{shown, ArchiveError};

/// The longest member name accepted (GNU long name or PAX `path`). Every
/// name lifeboat writes is far shorter; PostgreSQL identifiers are ≤ 63 bytes.
pub const MAX_NAME_BYTES: usize = 4096;
/// The largest PAX extended header accepted (lifeboat writes none).
pub const MAX_PAX_BYTES: u64 = 64 * 1024;
/// The most members (files and directory entries) an archive may have: one
/// per table (two with a `.copy` twin), one per config file, and a few fixed
/// ones. What verify keeps per member stays in the tens of MB at this count.
pub const MAX_MEMBERS: usize = 100_000;
/// The most bytes all member names may add up to. What lifeboat writes
/// stays far below: a data member's name is at most ~400 bytes (two
/// 63-byte identifiers, each byte percent-encoded), so 10 000 tables with
/// such names and their `.copy` twins come to 8 MB; typical names are
/// under 60 bytes. Without it, 100 000 names of 4 KiB each (a 3 MB
/// archive) would hold 400 MB of names in memory.
pub const MAX_NAME_BYTES_TOTAL: u64 = 8 * 1024 * 1024;
/// Zero padding accepted after the end-of-archive blocks: tar pads to its
/// record size, 10 KiB by default and 1 MiB at GNU tar's largest blocking.
const MAX_TRAILING_ZEROS: u64 = 1024 * 1024;
/// How much of an over-long name is read, to name the member by its start.
const HEAD_BYTES: u64 = 64;

/// Metadata of one member, after validation.
#[derive(Debug, Clone)]
pub struct Member {
    pub path: String,
    pub size: u64,
    pub mode: u32,
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

/// Whether a member path belongs to the v1 layout (the spec, section 7.1).
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
    for_each_member_of(&Source::from(path), identities, f)
}

/// [`for_each_member`] over any [`Source`]: one fresh stream per call.
pub fn for_each_member_of(
    source: &Source,
    identities: Option<&Identities>,
    f: impl FnMut(&Member, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    for_each_member_in(open_source(source, identities)?, f)
}

/// Opens an archive file for reading: the file itself, or its streaming
/// decryption when it is age-encrypted (which needs `identities`).
pub fn open(path: &Path, identities: Option<&Identities>) -> Result<Box<dyn Read>, ArchiveError> {
    open_source(&Source::from(path), identities)
}

/// [`open`] over any [`Source`].
pub fn open_source(source: &Source, identities: Option<&Identities>) -> Result<Box<dyn Read>, ArchiveError> {
    let raw = source.open_raw()?;
    Ok(crate::crypt::decrypting(BufReader::with_capacity(256 * 1024, raw), Path::new(&source.name()), identities)?)
}

/// Opens a fresh byte stream of a remote archive (one per pass over it).
pub type Opener = Arc<dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync>;

/// Where an archive's bytes come from: a local file, or an object store
/// that is asked for a new stream on every pass (verify, then load), so a
/// remote archive is never copied to a local file first (FR-29.8).
#[derive(Clone)]
pub enum Source {
    Path(PathBuf),
    Remote {
        /// `s3://bucket/prefix/NAME`, as messages and reports show it.
        url: String,
        size: u64,
        open: Opener,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl From<&Path> for Source {
    fn from(p: &Path) -> Source {
        Source::Path(p.to_path_buf())
    }
}

impl Source {
    /// The path, or the `s3://` URL.
    pub fn name(&self) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Remote { url, .. } => url.clone(),
        }
    }

    /// What reports record as the archive: the path, or the URL.
    pub fn report_path(&self) -> PathBuf {
        match self {
            Source::Path(p) => p.clone(),
            Source::Remote { url, .. } => PathBuf::from(url),
        }
    }

    /// The local file, if it is one.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Source::Path(p) => Some(p),
            Source::Remote { .. } => None,
        }
    }

    /// Bytes as stored (0 when a local file cannot be read; opening says why).
    pub fn size(&self) -> u64 {
        match self {
            Source::Path(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Source::Remote { size, .. } => *size,
        }
    }

    fn open_raw(&self) -> Result<Box<dyn Read>, ArchiveError> {
        let failed = |source| ArchiveError::Open { path: self.name(), source };
        match self {
            Source::Path(p) => Ok(Box::new(File::open(p).map_err(failed)?)),
            Source::Remote { open, .. } => Ok(open().map_err(failed)?),
        }
    }
}

/// [`for_each_member`] over any byte stream (the fuzz target's entry point).
pub fn for_each_member_in(
    input: impl Read,
    mut f: impl FnMut(&Member, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    // One gzip stream, not `MultiGzDecoder`: a stream appended to the file
    // must be noticed, not read as more of the archive.
    let mut archive = tar::Archive::new(GzDecoder::new(&mut input));
    // SHA-256 of each name, cut to 128 bits: a fixed 16 bytes per member
    // whatever the name's length, and no collision to craft.
    let mut seen: HashSet<[u8; 16]> = HashSet::new();
    let mut name_bytes = 0u64;
    let digest = |name: &str| -> [u8; 16] { Sha256::digest(name.as_bytes())[..16].try_into().expect("16 bytes") };
    let mut last: Option<String> = None;
    let corrupt = |at: &Option<String>, source| ArchiveError::Corrupt { at: at.clone(), source };
    // Raw: GNU long names and PAX headers come as entries of their own, so
    // their sizes are checked before anything is read.
    let entries = archive.entries().map_err(|e| corrupt(&last, e))?.raw(true);
    let mut ext = Extensions::default();
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(&last, e))?;
        if ext.take(&mut entry).map_err(|e| e.or_corrupt(&last))? {
            continue;
        }
        let raw = ext.name.take().unwrap_or_else(|| entry.header().path_bytes().into_owned());
        let display = String::from_utf8_lossy(&raw).into_owned();
        if let Some(size) = ext.size.take() {
            if size != entry.size() {
                return Err(ArchiveError::Unsafe {
                    path: display,
                    reason: format!("its PAX header says {size} bytes, its tar header {}", entry.size()),
                });
            }
        }
        if seen.len() == MAX_MEMBERS {
            return Err(ArchiveError::Unsafe {
                path: display,
                reason: format!(
                    "the archive has more than {MAX_MEMBERS} members; a lifeboat archive has one per table and \
                     config file"
                ),
            });
        }
        name_bytes += raw.len() as u64;
        if name_bytes > MAX_NAME_BYTES_TOTAL {
            return Err(ArchiveError::Unsafe {
                path: display,
                reason: format!(
                    "the member names add up to more than {MAX_NAME_BYTES_TOTAL} bytes (after {} members); a \
                     lifeboat archive's names are far shorter",
                    seen.len()
                ),
            });
        }
        let path = safe_path(&raw).map_err(|reason| ArchiveError::Unsafe { path: display.clone(), reason })?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                seen.insert(digest(&format!("{path}/")));
                continue;
            }
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
        if !seen.insert(digest(&path)) {
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
    if ext.name.is_some() || ext.size.is_some() {
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "an extended header describes no member");
        return Err(corrupt(&last, e));
    }
    check_end(archive.into_inner(), &last)
}

/// What may follow the last member: zero padding after the tar
/// end-of-archive blocks, then the gzip trailer (CRC and length, checked on
/// the way to EOF), then nothing: no hidden data, no second gzip stream.
fn check_end<R: Read>(gz: GzDecoder<&mut BufReader<R>>, last: &Option<String>) -> Result<(), ArchiveError> {
    let mut rest = gz.take(MAX_TRAILING_ZEROS + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut padding, mut hidden) = (0u64, false);
    // Read to the end first: damage (a bad CRC) is reported as damage.
    loop {
        let n = rest.read(&mut buf).map_err(|e| ArchiveError::Corrupt { at: last.clone(), source: e })?;
        if n == 0 {
            break;
        }
        hidden |= buf[..n].iter().any(|&b| b != 0);
        padding += n as u64;
    }
    let input = rest.into_inner().into_inner();
    if padding > MAX_TRAILING_ZEROS {
        return Err(ArchiveError::Trailing(format!(
            "more than {MAX_TRAILING_ZEROS} bytes follow the tar end-of-archive blocks"
        )));
    }
    if hidden {
        return Err(ArchiveError::Trailing(
            "non-zero bytes follow the tar end-of-archive blocks (members hidden where `tar -i` would find them?)"
                .into(),
        ));
    }
    let after = input.fill_buf().map_err(|e| ArchiveError::Corrupt { at: last.clone(), source: e })?.len();
    if after > 0 {
        return Err(ArchiveError::Trailing(format!(
            "{after}{} byte(s) follow the gzip stream (a second stream appended to the file?); a lifeboat archive \
             is exactly one gzip stream",
            if after == input.capacity() { "+" } else { "" }
        )));
    }
    Ok(())
}

/// The GNU long name or PAX records read for the next member.
#[derive(Default)]
struct Extensions {
    name: Option<Vec<u8>>,
    size: Option<u64>,
}

/// An error while reading an extension header: refused, or a read error
/// (reported as damage after the last good member).
enum ExtError {
    Refused(ArchiveError),
    Io(io::Error),
}

impl ExtError {
    fn or_corrupt(self, last: &Option<String>) -> ArchiveError {
        match self {
            ExtError::Refused(e) => e,
            ExtError::Io(source) => ArchiveError::Corrupt { at: last.clone(), source },
        }
    }
}

impl Extensions {
    /// Reads `entry` if it is a GNU long name or a PAX header (within the
    /// limits) and returns true; false for any other entry.
    fn take(&mut self, entry: &mut tar::Entry<'_, impl Read>) -> Result<bool, ExtError> {
        let kind = entry.header().entry_type();
        let size = entry.size();
        let name_of_header = String::from_utf8_lossy(&entry.header().path_bytes()).into_owned();
        let header_name = || name_of_header.clone();
        let refused = |path: String, reason: String| ExtError::Refused(ArchiveError::Unsafe { path, reason });
        if kind.is_gnu_longname() {
            if self.name.is_some() {
                return Err(refused(header_name(), "a second long name for the same member".into()));
            }
            // The name plus its terminating NUL.
            if size > MAX_NAME_BYTES as u64 + 1 {
                // Named by its start only: the rest is never read.
                let mut head = Vec::new();
                entry.take(HEAD_BYTES).read_to_end(&mut head).map_err(ExtError::Io)?;
                return Err(refused(
                    format!("{}…", String::from_utf8_lossy(&head)),
                    format!("its GNU long name is {size} bytes; member names are limited to {MAX_NAME_BYTES} bytes"),
                ));
            }
            let mut name = Vec::new();
            entry.read_to_end(&mut name).map_err(ExtError::Io)?;
            if name.last() == Some(&0) {
                name.pop();
            }
            self.name = Some(name);
            return Ok(true);
        }
        if kind.is_pax_local_extensions() {
            if size > MAX_PAX_BYTES {
                return Err(refused(
                    header_name(),
                    format!("a PAX extended header of {size} bytes; at most {MAX_PAX_BYTES} are accepted"),
                ));
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(ExtError::Io)?;
            for record in tar::PaxExtensions::new(&data) {
                let malformed = |_| refused(header_name(), "a malformed PAX extended header".into());
                let record = record.map_err(malformed)?;
                match record.key_bytes() {
                    b"path" => {
                        if self.name.is_some() {
                            return Err(refused(header_name(), "a second name for the same member".into()));
                        }
                        if record.value_bytes().len() > MAX_NAME_BYTES {
                            return Err(refused(
                                format!("{}…", String::from_utf8_lossy(&record.value_bytes()[..HEAD_BYTES as usize])),
                                format!(
                                    "its PAX path is {} bytes; member names are limited to {MAX_NAME_BYTES} bytes",
                                    record.value_bytes().len()
                                ),
                            ));
                        }
                        self.name = Some(record.value_bytes().to_vec());
                    }
                    b"size" => {
                        let size = record.value().ok().and_then(|v| v.parse().ok());
                        self.size =
                            Some(size.ok_or_else(|| refused(header_name(), "a PAX size that is not a number".into()))?);
                    }
                    k if k.starts_with(b"GNU.sparse") => {
                        return Err(refused(header_name(), "a sparse file (only regular files are allowed)".into()));
                    }
                    // Times, owners, charset: nothing lifeboat reads.
                    _ => {}
                }
            }
            return Ok(true);
        }
        Ok(false)
    }
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

    // covers: FR-22.6
    #[test]
    fn names_in_messages_are_escaped_and_truncated() {
        assert_eq!(shown("config/ssl/cert.pem"), "config/ssl/cert.pem");
        assert_eq!(shown("ผู้ใช้.csv"), "ผู้ใช้.csv");
        assert_eq!(shown("a\x1b[2Jb\x07\n"), "a\\u{1b}[2Jb\\u{7}\\n");
        assert_eq!(shown("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(shown(r#"a\u{1b}"b"#), r#"a\\u{1b}\"b"#);
        let long = shown(&"n".repeat(5_000));
        assert!(
            long.starts_with(&"n".repeat(crate::error::SHOWN_CHARS)) && long.ends_with("… (5000 bytes in all)"),
            "{long}"
        );
        assert!(long.len() < 200);
    }

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
