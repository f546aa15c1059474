//! Where archives live. [`Store`] is the seam between the engine and a
//! storage backend: the local directory today ([`local::LocalStore`]), an
//! object store later. [`dry_run::DryRun`] wraps any store and records the
//! writes and deletes instead of doing them (the seam for `prune --dry-run`).
//!
//! The contract keeps the format's promise: an archive is written under a
//! partial name, and only [`Store::finalize`] (after verification) gives it
//! its final name, so a listed archive is always complete.

pub mod dry_run;
pub mod keyfile;
pub mod local;
pub mod s3;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::events::Progress;

pub use local::LocalStore;

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

/// What the engine needs from a place that keeps archives.
pub trait Store {
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
    /// The complete archives, oldest name first.
    fn list(&self) -> Result<Vec<StoredArchive>>;
    /// Reads a complete archive.
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>>;
    /// Removes a complete archive.
    fn delete(&self, name: &str) -> Result<()>;
    /// The key that signs this store's archives (created on first use).
    fn signer(&self) -> Result<crate::archive::signature::Signer>;
    /// Whether writes and deletes are only recorded (a dry run): then
    /// nothing is logged as done.
    fn is_dry_run(&self) -> bool {
        false
    }
}
