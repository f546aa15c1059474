//! The storage directory: created `0700`, locked with `.lifeboat.lock` for
//! one backup at a time, cleaned of what crashed runs left, archives written
//! as `<name>.partial` and renamed (then the directory fsynced) once
//! verified. The lock mechanism and the cleanup live only here.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Partial, RunLock, Store, StoredArchive};
use crate::error::{Error, Result};
use crate::events::{Event, Progress};

pub const PARTIAL_SUFFIX: &str = ".partial";

/// The lock file that makes backups into one directory take turns.
pub const LOCK_FILE: &str = ".lifeboat.lock";

/// Archives as files in one local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
    prefix: String,
}

impl LocalStore {
    /// `prefix` is `storage.name_prefix`: only `<prefix>_*` files are ours.
    pub fn new(dir: impl Into<PathBuf>, prefix: impl Into<String>) -> LocalStore {
        LocalStore { dir: dir.into(), prefix: prefix.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn is_archive(&self, name: &str) -> bool {
        name.starts_with(&format!("{}_", self.prefix)) && name.ends_with(".tar.gz")
    }

    fn path_of(&self, name: &str) -> Result<PathBuf> {
        if !self.is_archive(name) || name.contains('/') {
            return Err(Error::Invalid(format!(
                "{name:?} is not an archive name of this store ({}_*.tar.gz)",
                self.prefix
            )));
        }
        Ok(self.dir.join(name))
    }
}

impl Store for LocalStore {
    /// Creates the storage directory (0700), takes its lock (one backup per
    /// directory at a time, across processes), then deletes what crashed runs
    /// left: `<prefix>_*.tar.gz.partial` and pg_dump temp files. Nothing else is
    /// touched. Without the lock a second run would delete the first one's
    /// `.partial`. The lock is released when the returned guard is dropped (or
    /// the process dies).
    fn lock(&self, progress: Progress) -> Result<RunLock> {
        use std::os::unix::fs::PermissionsExt;
        let dir = &self.dir;
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating storage directory", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("setting mode 0700 on", dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("opening lock file", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Busy(format!(
                    "another lifeboat backup is running into {} (it holds {LOCK_FILE}); wait for it to finish",
                    dir.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("locking", &lock_path, e)),
        }
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = (name.starts_with(&format!("{}_", self.prefix)) && name.ends_with(PARTIAL_SUFFIX))
                || name.starts_with(".lifeboat-pgdump-");
            if stale {
                progress(Event::Warning(format!("removing {name} left by an interrupted run")));
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(RunLock::new(lock))
    }

    fn scratch_dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/.lifeboat/signing.key`, generated once (0600).
    fn signer(&self) -> Result<crate::archive::signature::Signer> {
        crate::archive::signature::Signer::load_or_create(&self.dir)
    }

    fn create_partial(&self, name: &str) -> Result<Partial> {
        let final_path = self.path_of(name)?;
        if final_path.exists() {
            return Err(Error::Failed(format!(
                "{} already exists; two backups in the same second? Try again.",
                final_path.display()
            )));
        }
        Ok(Partial::new(name.to_string(), self.dir.join(format!("{name}{PARTIAL_SUFFIX}"))))
    }

    fn finalize(&self, partial: Partial) -> Result<PathBuf> {
        let final_path = self.path_of(&partial.name)?;
        std::fs::rename(&partial.path, &final_path)
            .map_err(|e| Error::io("renaming the verified archive to", &final_path, e))?;
        partial.disarm();
        sync_dir(&self.dir)?;
        Ok(final_path)
    }

    fn list(&self) -> Result<Vec<StoredArchive>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &self.dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|e| Error::io("listing", &self.dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if self.is_archive(&name) {
                let meta = e.metadata().map_err(|err| Error::io("reading", e.path(), err))?;
                if meta.is_file() {
                    out.push(StoredArchive { name, bytes: meta.len() });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        let path = self.path_of(name)?;
        let f = std::fs::File::open(&path).map_err(|e| Error::io("opening archive", &path, e))?;
        Ok(Box::new(f))
    }

    fn delete(&self, name: &str) -> Result<()> {
        let path = self.path_of(name)?;
        std::fs::remove_file(&path).map_err(|e| Error::io("deleting archive", &path, e))
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("syncing directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_are_removed_unless_finalized_and_only_archives_are_listed() {
        let d = tempfile::tempdir().unwrap();
        let store = LocalStore::new(d.path().join("b"), "critical_backup");
        let _lock = store.lock(&crate::events::silent).unwrap();
        assert!(matches!(store.lock(&crate::events::silent), Err(Error::Busy(_))), "one run at a time");

        let p = store.create_partial("critical_backup_20260101_000000.tar.gz").unwrap();
        std::fs::write(&p.path, "x").unwrap();
        let path = p.path.clone();
        drop(p);
        assert!(!path.exists(), "an abandoned partial is removed");

        let p = store.create_partial("critical_backup_20260101_000001.tar.gz").unwrap();
        std::fs::write(&p.path, "archive").unwrap();
        let at = store.finalize(p).unwrap();
        assert!(at.exists());
        std::fs::write(store.dir().join("notes.txt"), "not ours").unwrap();
        let listed = store.list().unwrap();
        assert_eq!(listed, [StoredArchive { name: "critical_backup_20260101_000001.tar.gz".into(), bytes: 7 }]);
        let mut s = String::new();
        store.open(&listed[0].name).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "archive");
        assert!(store.create_partial(&listed[0].name).is_err(), "an existing name is refused");
        assert!(store.delete("notes.txt").is_err(), "only archives of this store can be deleted");
        store.delete(&listed[0].name).unwrap();
        assert!(store.list().unwrap().is_empty());
    }
}
