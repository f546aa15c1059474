//! Writes an archive as one stream: tar inside gzip into a `.partial` file,
//! hashing every member on the way so `SHA256SUMS` costs no second read.
//!
//! The gzip stream is one member (the reader refuses a second one), but it
//! is not compressed in one pass. Table rows are compressed while COPY
//! still sends them, by a pool of worker threads, the way `pigz` does it:
//! the rows are cut into 1 MiB chunks (`CHUNK`), each deflated on its own
//! (primed with the 32 KiB before it, so the ratio is that of one pass) and
//! ended with a sync flush, so the pieces are byte-aligned deflate blocks
//! that simply follow one another. A table's compressed rows wait in its
//! [`Spool`] until the COPY ends and their size, which the tar header needs
//! first, is known; then header, rows and padding are written in order.
//! Everything else (headers, schema, config files, metadata) goes through
//! the writer's own compressor, reset after every spliced table so that
//! nothing refers back across a piece it did not compress itself. The
//! CRC-32 and length of the gzip trailer are those of the whole tar stream.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use sha2::{Digest, Sha256};

use super::reader::Hashing;
use super::signature::Signer;
use super::{format_sums, ManifestFile, SUMS};
use crate::error::{Error, Result};

/// Compressed rows in memory up to this size, then spilled to a temp file
/// beside the archive (not /tmp, which may be RAM in a container).
const SPOOL_IN_MEMORY: usize = 1024 * 1024;
/// Uncompressed bytes per chunk a worker deflates at once.
const CHUNK: usize = 1024 * 1024;
/// The deflate window: how much of the previous chunk primes the next.
const WINDOW: usize = 32 * 1024;
const LEVEL: u32 = 6;
/// Workers at most; more than the cores only adds memory.
const MAX_WORKERS: usize = 8;

pub struct Writer {
    builder: tar::Builder<Gz>,
    path: PathBuf,
    mtime: u64,
    sums: Vec<(String, String)>,
    /// The pool's queue; the workers end when it and every spool's clone
    /// of it are dropped.
    jobs: Sender<Job>,
    workers: usize,
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
        let gz =
            Gz::new(BufWriter::with_capacity(256 * 1024, file)).map_err(|e| Error::io("creating archive", path, e))?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_WORKERS);
        let jobs = start_workers(workers).map_err(|e| Error::io("starting the compression threads for", path, e))?;
        Ok(Writer { builder: tar::Builder::new(gz), path: path.to_path_buf(), mtime, sums: Vec::new(), jobs, workers })
    }

    /// A spool for one table's rows, compressed by this writer's workers
    /// while they arrive; temp files go to `dir`.
    pub fn spool(&self, dir: &Path) -> Spool {
        Spool {
            file: tempfile::spooled_tempfile_in(SPOOL_IN_MEMORY, dir),
            size: 0,
            csv: Default::default(),
            hasher: Sha256::new(),
            crc: Crc::new(),
            chunk: Vec::with_capacity(CHUNK),
            window: Vec::new(),
            jobs: self.jobs.clone(),
            pending: VecDeque::new(),
            // Enough queued to keep every worker busy while one result is written.
            max_pending: 2 * self.workers,
        }
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

    /// Appends a spool's rows as `member`: its header (now that the size is
    /// known), the rows its workers compressed, and the tar padding.
    pub fn append_spool(&mut self, member: &str, mode: u32, mut spool: Spool) -> Result<ManifestFile> {
        let path = self.path.clone();
        let io = |e| Error::io(format!("writing member {member} to"), &path, e);
        spool.drain().map_err(io)?;
        let mut header = self.header(spool.size, mode);
        // The header alone: tar writes no data (and so no padding) for it.
        self.builder.append_data(&mut header, member, io::empty()).map_err(io)?;
        spool.file.rewind().map_err(io)?;
        let gz = self.builder.get_mut();
        gz.splice(&mut spool.file, &spool.crc).map_err(io)?;
        let pad = (512 - spool.size % 512) % 512;
        gz.write_all(&[0u8; 512][..pad as usize]).map_err(io)?;
        let sha = format!("{:x}", spool.hasher.finalize());
        self.sums.push((member.to_string(), sha.clone()));
        Ok(ManifestFile { path: member.to_string(), mode: Some(mode), bytes: spool.size, sha256: sha })
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

/// The gzip stream under the tar builder: one member, its deflate data
/// written by this compressor and spliced from spools.
struct Gz {
    out: BufWriter<File>,
    deflater: Compress,
    buf: Vec<u8>,
    /// CRC-32 and length (mod 2³²) of everything in the stream, for the trailer.
    crc: Crc,
}

impl Gz {
    fn new(mut out: BufWriter<File>) -> io::Result<Gz> {
        // RFC 1952 header: deflate, no flags, no mtime, unknown OS.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        Ok(Gz { out, deflater: Compress::new(Compression::new(LEVEL), false), buf: Vec::new(), crc: Crc::new() })
    }

    fn write_out(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Ends this compressor's piece byte-aligned, copies `deflated` (whole
    /// sync-flushed pieces of `crc`'s bytes) after it, and starts afresh:
    /// nothing compressed later may refer back into bytes it did not see.
    fn splice(&mut self, deflated: &mut impl Read, crc: &Crc) -> io::Result<()> {
        deflate(&mut self.deflater, &[], &mut self.buf, FlushCompress::Sync)?;
        self.write_out()?;
        io::copy(deflated, &mut self.out)?;
        self.crc.combine(crc);
        self.deflater.reset();
        Ok(())
    }

    fn finish(mut self) -> io::Result<BufWriter<File>> {
        deflate(&mut self.deflater, &[], &mut self.buf, FlushCompress::Finish)?;
        self.write_out()?;
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.out)
    }
}

impl Write for Gz {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.crc.update(data);
        deflate(&mut self.deflater, data, &mut self.buf, FlushCompress::None)?;
        if self.buf.len() >= 64 * 1024 {
            self.write_out()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Deflates all of `input` into `out`; with `Sync` the output ends on a
/// byte boundary with everything emitted, with `Finish` it ends the stream.
fn deflate(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) -> io::Result<()> {
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(input.len() / 2 + 32 * 1024);
        }
        let before = c.total_in();
        let status = c.compress_vec(input, out, flush).map_err(io::Error::other)?;
        input = &input[(c.total_in() - before) as usize..];
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => return Ok(()),
            _ if input.is_empty() && room_left && flush != FlushCompress::Finish => return Ok(()),
            _ => {}
        }
    }
}

struct Job {
    /// The 32 KiB before `data` (empty for a member's first chunk).
    window: Vec<u8>,
    data: Vec<u8>,
    done: SyncSender<io::Result<Vec<u8>>>,
}

fn start_workers(n: usize) -> io::Result<Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = Arc::clone(&rx);
        std::thread::Builder::new().name(format!("lifeboat-gzip-{i}")).spawn(move || compress_jobs(&rx))?;
    }
    Ok(tx)
}

/// A worker: deflates chunks until every sender of the queue is gone.
fn compress_jobs(jobs: &Mutex<Receiver<Job>>) {
    let mut c = Compress::new(Compression::new(LEVEL), false);
    loop {
        let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        c.reset();
        let mut out = Vec::with_capacity(job.data.len() / 3 + 4096);
        let deflated = c
            .set_dictionary(&job.window)
            .map_err(io::Error::other)
            .and_then(|_| deflate(&mut c, &job.data, &mut out, FlushCompress::Sync))
            .map(|()| out);
        // The spool is gone when its run failed: nothing to hand back then.
        let _ = job.done.send(deflated);
    }
}

/// A table's rows, compressed as they arrive and held until their size is
/// known (tar needs it first).
pub struct Spool {
    file: tempfile::SpooledTempFile,
    /// Uncompressed bytes written.
    pub size: u64,
    pub csv: super::CsvCounter,
    hasher: Sha256,
    crc: Crc,
    chunk: Vec<u8>,
    window: Vec<u8>,
    jobs: Sender<Job>,
    /// Chunks handed to the workers, in order.
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
}

impl Spool {
    fn dispatch(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        let window = std::mem::replace(&mut self.window, data[data.len().saturating_sub(WINDOW)..].to_vec());
        let (done, result) = mpsc::sync_channel(1);
        self.jobs.send(Job { window, data, done }).map_err(|_| io::Error::other("the compression threads stopped"))?;
        self.pending.push_back(result);
        while self.pending.len() > self.max_pending {
            self.collect_one()?;
        }
        Ok(())
    }

    fn collect_one(&mut self) -> io::Result<()> {
        if let Some(result) = self.pending.pop_front() {
            let deflated = result.recv().map_err(|_| io::Error::other("a compression thread stopped"))??;
            self.file.write_all(&deflated)?;
        }
        Ok(())
    }

    /// Compresses what is left and waits for every chunk; more rows may
    /// follow. A spool held while others fill (`backup::run` keeps every
    /// table's base rows until the closure is known) settles first, so its
    /// chunks do not wait in memory.
    pub fn drain(&mut self) -> io::Result<()> {
        if !self.chunk.is_empty() {
            self.dispatch()?;
        }
        while !self.pending.is_empty() {
            self.collect_one()?;
        }
        Ok(())
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.csv.feed(buf);
        self.hasher.update(buf);
        self.crc.update(buf);
        self.size += buf.len() as u64;
        let mut rest = buf;
        while !rest.is_empty() {
            let take = (CHUNK - self.chunk.len()).min(rest.len());
            self.chunk.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.chunk.len() == CHUNK {
                self.dispatch()?;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows that repeat across chunk boundaries (so the window priming and
    /// the splices are exercised), a member name long enough for a GNU
    /// long-name entry, an empty table, and members written by the
    /// writer's own compressor after each splice: one gzip member that
    /// GNU gzip checks (CRC-32 and length included) and tar reads back
    /// byte for byte.
    // covers: FR-12.13, FR-12.2, FR-5.2, NFR-6.2
    #[test]
    fn spliced_parallel_chunks_make_one_valid_gzip_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz.partial");
        let mut w = Writer::create(&path, 1_700_000_000).unwrap();
        let rows: Vec<u8> = (0..120_000u32)
            .flat_map(|i| {
                format!("{i},user-{},\"note {}\"\n", i % 977, i.wrapping_mul(2_654_435_761) % 10_007).into_bytes()
            })
            .collect();
        assert!(rows.len() > 3 * CHUNK, "spans several chunks: {}", rows.len());
        let long = format!("database/data/public.{}.csv", "t".repeat(120));
        let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
        w.append_bytes("database/schema.sql", 0o600, b"CREATE TABLE t (id int);\n").unwrap();
        expected.push(("database/schema.sql".into(), b"CREATE TABLE t (id int);\n".to_vec()));
        for (name, data) in [(long.as_str(), &rows[..]), ("database/data/public.empty.csv", &b""[..])] {
            let mut spool = w.spool(dir.path());
            // Odd-sized writes, as COPY delivers them.
            for piece in data.chunks(70_001) {
                spool.write_all(piece).unwrap();
            }
            let m = w.append_spool(name, 0o600, spool).unwrap();
            assert_eq!(
                (m.bytes, m.sha256.as_str()),
                (data.len() as u64, format!("{:x}", Sha256::digest(data)).as_str())
            );
            expected.push((name.into(), data.to_vec()));
            // Compressed by the writer right after a splice: must not refer back into it.
            w.append_bytes("database/sequences.sql", 0o600, &rows[..5000]).unwrap();
            expected.push(("database/sequences.sql".into(), rows[..5000].to_vec()));
        }
        w.finish(None).unwrap();

        let gzip = std::process::Command::new("gzip").arg("-t").arg(&path).status().expect("gzip runs");
        assert!(gzip.success(), "gzip -t rejects the stream");
        let file = std::fs::File::open(&path).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let got: Vec<(String, Vec<u8>)> = tar
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (e.path().unwrap().to_string_lossy().into_owned(), data)
            })
            .filter(|(name, _)| name != SUMS)
            .collect();
        assert_eq!(got.len(), expected.len());
        for ((gn, gd), (en, ed)) in got.iter().zip(&expected) {
            assert_eq!(gn, en);
            assert!(gd == ed, "{gn}: {} bytes read back, {} written", gd.len(), ed.len());
        }
        // Compressed like one pass: the window priming keeps the ratio.
        let size = std::fs::metadata(&path).unwrap().len() as usize;
        let mut one_pass = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        one_pass.write_all(&rows).unwrap();
        let one_pass = one_pass.finish().unwrap().len();
        assert!(size < one_pass + one_pass / 50, "{size} bytes vs {one_pass} in one pass");
    }

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
