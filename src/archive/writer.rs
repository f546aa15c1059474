//! Writes an archive as one stream: tar inside gzip into a `.partial` file,
//! hashing every member on the way so `SHA256SUMS` costs no second read.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;

use super::reader::Hashing;
use super::signature::Signer;
use super::{format_sums, ManifestFile, SUMS};
use crate::error::{Error, Result};

/// Data in memory up to this size, then spilled to a temp file beside the
/// archive (not /tmp, which may be RAM in a container).
const SPOOL_IN_MEMORY: usize = 8 * 1024 * 1024;

pub struct Writer {
    builder: tar::Builder<GzEncoder<BufWriter<File>>>,
    path: PathBuf,
    mtime: u64,
    sums: Vec<(String, String)>,
}

impl Writer {
    pub fn create(path: &Path, mtime: u64) -> Result<Writer> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("creating archive", path, e))?;
        let gz = GzEncoder::new(BufWriter::with_capacity(256 * 1024, file), flate2::Compression::new(6));
        let builder = tar::Builder::new(gz);
        Ok(Writer { builder, path: path.to_path_buf(), mtime, sums: Vec::new() })
    }

    fn header(&self, size: u64, mode: u32) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(mode);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        header
    }

    /// Appends `size` bytes from `data`; returns the member's size and hash.
    /// A source that turns out shorter or longer than `size` (a config file
    /// changed while it was read) fails the member, and so the run (FR-16.5);
    /// a growing one is read no further than one byte past `size`.
    pub fn append(&mut self, member: &str, mode: u32, size: u64, data: impl Read) -> Result<ManifestFile> {
        let mut header = self.header(size, mode);
        let mut hashing = Hashing::new(data.take(size.saturating_add(1)));
        self.builder
            .append_data(&mut header, member, &mut hashing)
            .map_err(|e| Error::io(format!("writing member {member} to"), &self.path, e))?;
        if hashing.bytes != size {
            return Err(Error::Failed(format!("member {member}: expected {size} bytes, read {}", hashing.bytes)));
        }
        let sha = hashing.hex();
        self.sums.push((member.to_string(), sha.clone()));
        Ok(ManifestFile { path: member.to_string(), mode: Some(mode), bytes: size, sha256: sha })
    }

    fn append_unlisted(&mut self, member: &str, mode: u32, bytes: &[u8]) -> Result<()> {
        let mut header = self.header(bytes.len() as u64, mode);
        self.builder
            .append_data(&mut header, member, bytes)
            .map_err(|e| Error::io(format!("writing member {member} to"), &self.path, e))
    }

    pub fn append_bytes(&mut self, member: &str, mode: u32, bytes: &[u8]) -> Result<ManifestFile> {
        self.append(member, mode, bytes.len() as u64, bytes)
    }

    pub fn append_spool(&mut self, member: &str, mode: u32, spool: Spool) -> Result<ManifestFile> {
        let mut f = spool.file;
        f.rewind().map_err(|e| Error::io("rewinding spool for", &self.path, e))?;
        self.append(member, mode, spool.size, f)
    }

    /// Writes `SHA256SUMS` and, with a signer, its signature
    /// `SHA256SUMS.minisig` (for `archive_name`); ends the gzip stream and
    /// fsyncs the file.
    pub fn finish(mut self, signer: Option<(&Signer, &str)>) -> Result<u64> {
        let sums = format_sums(&self.sums);
        self.append_bytes(SUMS, 0o644, sums.as_bytes())?;
        if let Some((signer, archive_name)) = signer {
            let sig = signer.sign(sums.as_bytes(), archive_name)?;
            // Not added to `sums`: it is written after SHA256SUMS, about it.
            self.append_unlisted(super::signature::MEMBER, 0o644, &sig)?;
        }
        let path = self.path.clone();
        let io = |e| Error::io("finishing archive", &path, e);
        let gz = self.builder.into_inner().map_err(io)?;
        let buf = gz.finish().map_err(io)?;
        let file = buf.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(file.metadata().map_err(io)?.len())
    }
}

/// A member's bytes held until their size is known (tar needs it first).
pub struct Spool {
    file: tempfile::SpooledTempFile,
    pub size: u64,
    pub csv: super::CsvCounter,
}

impl Spool {
    pub fn new(dir: &Path) -> Spool {
        Spool { file: tempfile::spooled_tempfile_in(SPOOL_IN_MEMORY, dir), size: 0, csv: Default::default() }
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.csv.feed(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-16.5
    #[test]
    fn a_source_that_changed_size_while_read_fails_the_member() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::create(&dir.path().join("a.partial"), 0).unwrap();
        let m = w.append("config/ok", 0o600, 3, &b"abc"[..]).unwrap();
        assert_eq!(m.bytes, 3);
        let shrunk = w.append("config/shrunk", 0o600, 10, &b"abc"[..]).unwrap_err();
        assert!(shrunk.to_string().contains("member config/shrunk: expected 10 bytes, read 3"), "{shrunk}");
        let mut w = Writer::create(&dir.path().join("b.partial"), 0).unwrap();
        // A file that keeps growing is not read to its end.
        let grown = w.append("config/grown", 0o600, 3, std::io::repeat(b'x')).unwrap_err();
        assert!(grown.to_string().contains("member config/grown: expected 3 bytes, read 4"), "{grown}");
    }
}
