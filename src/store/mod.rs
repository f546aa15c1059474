//! Where archives live. [`Archives`] is the one interface to a place that
//! keeps complete archives (list, open, put, delete), implemented by the
//! local storage directory ([`local::LocalStore`]) and the `[remote]` S3
//! store ([`s3::RemoteStore`]) alike: retention, `list`, the offsite
//! catch-up and `verify`/`restore` of an `s3://` archive go through it.
//! [`Store`] adds what only the local store does, staging a run's archive
//! (the run's lock, `.partial` → rename, the signing key).
//! [`dry_run::DryRun`] wraps a store and records the writes and deletes
//! instead of doing them (the seam for `prune --dry-run`). [`open`] is the
//! store a config names.
//!
//! The contract keeps the format's promise: an archive is written under a
//! partial name, and only [`Store::finalize`] (after verification) gives it
//! its final name, so a listed archive is always complete; a put archive
//! appears whole or not at all (an atomic rename, a completed multipart
//! upload).

pub mod dry_run;
pub mod local;
pub mod s3;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Result;
use crate::events::Progress;

pub use local::LocalStore;

/// The store a config names: its storage directory (`[storage] dir`,
/// archives named `<[storage] name_prefix>_*`).
pub fn open(config: &Config) -> LocalStore {
    LocalStore::new(&config.storage.dir, &config.storage.name_prefix)
}

/// An archive being written: a local file at [`Partial::path`] that is
/// removed when dropped, unless [`Store::finalize`] took it.
#[derive(Debug)]
pub struct Partial {
    /// The archive's final name, e.g. `critical_backup_20261124_020000.tar.gz`.
    pub name: String,
    /// The file to write (and verify) before finalizing.
    pub path: PathBuf,
    keep: bool,
}

impl Partial {
    pub(crate) fn new(name: String, path: PathBuf) -> Partial {
        Partial { name, path, keep: false }
    }

    /// Hands the file over (after a successful rename): drop no longer removes it.
    pub(crate) fn disarm(mut self) -> PathBuf {
        self.keep = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Held for the length of one run; dropping it releases the store's lock.
pub struct RunLock(#[allow(dead_code)] Box<dyn std::any::Any + Send>);

impl RunLock {
    pub fn new(guard: impl std::any::Any + Send) -> RunLock {
        RunLock(Box::new(guard))
    }
}

/// A stored, complete archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArchive {
    pub name: String,
    pub bytes: u64,
}

/// The archive an argument of `verify` or `restore` names: a local path,
/// or an `s3://bucket/prefix/NAME` read straight from the `[remote]` store
/// ([`s3::remote_source`]).
pub fn source(archive: &Path, config: &Config) -> Result<crate::archive::reader::Source> {
    match archive.to_str().filter(|a| a.starts_with("s3://")) {
        Some(url) => s3::remote_source(config, url),
        None => Ok(crate::archive::reader::Source::from(archive)),
    }
}

/// What a put left in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Where it is: `s3://bucket/prefix/NAME`, or the local path.
    pub object: String,
    pub bytes: u64,
    pub sha256: String,
    pub attempts: u32,
}

/// A place that keeps complete archives: the local storage directory or
/// the `[remote]` S3 store. Names are archive file names (`<prefix>_…tar.gz`,
/// remotely also `….tar.gz.age`, object names under the configured
/// prefix); the local store refuses a name that is not one of its
/// archives, so no name resolves to another path.
pub trait Archives {
    /// The store in log lines, e.g. "retention deleted X from {place}".
    fn place(&self) -> String;
    /// Where archive `name` is, for messages: a path or an `s3://` URL.
    fn url(&self, name: &str) -> String;
    /// The complete archives, oldest name first.
    fn list(&self) -> Result<Vec<StoredArchive>>;
    /// Reads a complete archive (streamed: no local copy first).
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>>;
    /// The size of archive `name`; a missing one is an error that names it.
    fn size(&self, name: &str) -> Result<u64>;
    /// The SHA-256 the store recorded when `name` was put (the S3 store's
    /// `NAME.sha256` sidecar: its upload completed); `None` when it has none.
    /// The local store records none: each archive's `SHA256SUMS` covers it.
    fn sha256(&self, name: &str) -> Result<Option<String>>;
    /// Stores the local `file` as archive `name`, replacing one of that
    /// name; it appears complete or not at all.
    fn put(&self, file: &Path, name: &str, progress: Progress) -> Result<Uploaded>;
    /// Removes a complete archive (and what the store keeps beside it).
    fn delete(&self, name: &str) -> Result<()>;
    /// Whether writes and deletes are only recorded (a dry run): then
    /// nothing is logged as done.
    fn is_dry_run(&self) -> bool {
        false
    }
}

/// What the engine needs to stage a run's archive: only the local store
/// (an archive is written and verified on local disk before any copy of it
/// goes elsewhere).
pub trait Store: Archives {
    /// Takes the store's lock for one run (one backup at a time, across
    /// processes) and removes what interrupted runs left behind. Fails with
    /// [`Error::Busy`](crate::error::Error::Busy) when another run holds it.
    fn lock(&self, progress: Progress) -> Result<RunLock>;
    /// Checks, touching nothing, that a run could write here: called before
    /// the run connects to the database, so a store it cannot use is told
    /// first (with its fix) and costs no database session.
    fn check_writable(&self) -> Result<()> {
        Ok(())
    }
    /// A local directory for spool and pg_dump temporary files of this run.
    fn scratch_dir(&self) -> &Path;
    /// Starts archive `name`, or, when an archive of that name exists (an
    /// earlier run of the same second), the first free
    /// [`nth_archive_name`](crate::archive::nth_archive_name) of it: the
    /// returned [`Partial::name`] is the one to use. Never overwrites.
    fn create_partial(&self, name: &str) -> Result<Partial>;
    /// Makes a written, verified partial durable under its final name (fsync
    /// + rename); returns where it is now.
    fn finalize(&self, partial: Partial) -> Result<PathBuf>;
    /// The key that signs this store's archives (created on first use).
    fn signer(&self) -> Result<crate::archive::signature::Signer>;
}
