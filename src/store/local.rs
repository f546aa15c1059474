//! The storage directory: created `0700` when lifeboat creates it (an
//! existing one keeps its mode), locked for one backup at a time with an
//! `flock` on the directory itself, cleaned of what crashed runs left,
//! archives written as `<name>.partial` and renamed (then the directory
//! fsynced) once verified, a second archive of the same second named `_2`.
//! The lock mechanism and the cleanup live only here.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Archives, Partial, RunLock, Store, StoredArchive, Uploaded};
use crate::error::{Error, Result};
use crate::events::{Event, Progress};

pub const PARTIAL_SUFFIX: &str = ".partial";

/// A file in the storage directory that names the run holding the lock (its
/// pid), for the message another run shows. Not the lock itself: deleting
/// it (a cleanup job, `find DIR -mtime +7 -delete`) changes nothing.
pub const LOCK_FILE: &str = ".lifeboat.lock";

/// What a run holds: the directory (the lock) and [`LOCK_FILE`] (locked
/// too, so that a lifeboat from before the directory lock, which locks only
/// the file, still takes turns with this one).
struct DirLock {
    _dir: std::fs::File,
    _file: std::fs::File,
}

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

impl Archives for LocalStore {
    fn place(&self) -> String {
        "the storage directory".into()
    }

    fn url(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
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

    fn size(&self, name: &str) -> Result<u64> {
        let path = self.path_of(name)?;
        Ok(std::fs::metadata(&path).map_err(|e| Error::io("reading archive", &path, e))?.len())
    }

    fn sha256(&self, _name: &str) -> Result<Option<String>> {
        Ok(None)
    }

    /// Copied in through a temporary file that is fsynced and renamed
    /// ([`crate::fsutil::write_atomic_with`]), mode 0600.
    fn put(&self, file: &Path, name: &str, _progress: Progress) -> Result<Uploaded> {
        use sha2::{Digest, Sha256};
        use std::io::Write;
        let path = self.path_of(name)?;
        let mut src = std::fs::File::open(file).map_err(|e| Error::io("opening", file, e))?;
        let (mut bytes, mut hasher) = (0u64, Sha256::new());
        crate::fsutil::write_atomic_with(&path, 0o600, "archive", |out| {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = src.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                bytes += n as u64;
            }
        })?;
        let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(Uploaded { object: self.url(name), bytes, sha256, attempts: 1 })
    }

    fn delete(&self, name: &str) -> Result<()> {
        let path = self.path_of(name)?;
        std::fs::remove_file(&path).map_err(|e| Error::io("deleting archive", &path, e))
    }
}

impl Store for LocalStore {
    /// Creates the storage directory (0700) when it does not exist; an
    /// existing one keeps its mode (lifeboat did not create it), with a
    /// warning when others can read or enter it. Takes the directory's lock
    /// (one backup per directory at a time, across processes): an `flock` on
    /// the directory itself, which no cleanup job can delete from under a
    /// run (a lock file can be, and the next run would then lock a new file
    /// and remove this run's `.partial`). Only then deletes what crashed
    /// runs left: `<prefix>_*.tar.gz.partial` and pg_dump temp files, so no
    /// live run's files go. The lock is released when the returned guard is
    /// dropped (or the process dies).
    fn lock(&self, progress: Progress) -> Result<RunLock> {
        let dir = &self.dir;
        ensure_dir(dir, progress)?;
        let held = lock_dir(dir, progress)?;
        // The key directory is checked before the run does anything, not
        // only when the signer loads at the end (see fsutil::check_store_dir).
        let keys = dir.join(crate::archive::signature::SECRET_KEY_FILE);
        crate::fsutil::check_store_dir(keys.parent().unwrap_or(dir))?;
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
        Ok(RunLock::new(held))
    }

    fn check_writable(&self) -> Result<()> {
        writable(&self.dir)
    }

    fn scratch_dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/.lifeboat/signing.key`, generated once (0600).
    fn signer(&self) -> Result<crate::archive::signature::Signer> {
        crate::archive::signature::Signer::load_or_create(&self.dir)
    }

    /// Runs into one directory take turns under its lock, so nobody takes
    /// the chosen name between this check and the rename.
    fn create_partial(&self, name: &str) -> Result<Partial> {
        let taken = |n: &str| -> Result<bool> {
            Ok(self.path_of(n)?.exists() || self.dir.join(format!("{n}{PARTIAL_SUFFIX}")).exists())
        };
        let mut chosen = name.to_string();
        let mut n = 1;
        while taken(&chosen)? {
            n += 1;
            if n > 9 {
                return Err(Error::Failed(format!(
                    "{name} and 8 more archives of the same second already exist in {}; wait a second and try \
                     again",
                    self.dir.display()
                )));
            }
            chosen = crate::archive::nth_archive_name(name, n);
        }
        Ok(Partial::new(chosen.clone(), self.dir.join(format!("{chosen}{PARTIAL_SUFFIX}"))))
    }

    fn finalize(&self, partial: Partial) -> Result<PathBuf> {
        let final_path = self.path_of(&partial.name)?;
        std::fs::rename(&partial.path, &final_path)
            .map_err(|e| Error::io("renaming the verified archive to", &final_path, e))?;
        partial.disarm();
        crate::fsutil::sync_dir(&self.dir)?;
        Ok(final_path)
    }
}

/// Creates `dir` (0700, with its missing parents) when it does not exist.
/// An existing directory keeps its mode: lifeboat did not create it (think
/// `--output-dir /tmp`), so it only warns when others can read or enter it.
fn ensure_dir(dir: &Path, progress: Progress) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mode = m.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                progress(Event::Warning(format!(
                    "storage directory {} has mode {mode:04o}: other users can see or reach the archives, \
                     which hold secrets; chmod 700 {} (lifeboat does not change the mode of a directory it \
                     did not create)",
                    dir.display(),
                    dir.display()
                )));
            }
        }
        Ok(_) => {
            return Err(Error::Refused(format!(
                "storage directory {} is a file, not a directory; point storage.dir (or --output-dir) at a \
                 directory",
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("creating storage directory", dir, e))?,
        Err(e) => return Err(Error::io("reading storage directory", dir, e)),
    }
    Ok(())
}

/// Whether this process may create files in `dir`, or, when `dir` does not
/// exist yet, in the nearest directory above it that does (where
/// [`ensure_dir`] will create it). Asks the kernel (`faccessat` with the
/// effective uid) rather than trying to write, so nothing is touched; what
/// is not a directory is left to [`ensure_dir`]'s message.
fn writable(dir: &Path) -> Result<()> {
    use rustix::fs::{Access, AtFlags, CWD};
    let mut at = dir;
    while !at.exists() {
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => {
                at = Path::new(".");
                break;
            }
        }
    }
    if !at.is_dir() {
        return Ok(());
    }
    match rustix::fs::accessat(CWD, at, Access::WRITE_OK | Access::EXEC_OK, AtFlags::EACCESS) {
        Ok(()) => Ok(()),
        Err(e) => {
            let uid = rustix::process::geteuid().as_raw();
            let what = if at == dir {
                format!("storage directory {}", dir.display())
            } else {
                format!("{} (where storage directory {} would be created)", at.display(), dir.display())
            };
            Err(Error::Refused(format!(
                "{what} is not writable by the user lifeboat runs as (uid {uid}): {}; make it writable for that \
                 user (`chown {uid} {}` or a group it is in), or point storage.dir (or --output-dir) at a \
                 directory it can write. Nothing was done",
                std::io::Error::from(e),
                at.display()
            )))
        }
    }
}

/// Takes the run's lock: an `flock` on the directory itself, then on
/// [`LOCK_FILE`], which then gets this process's pid.
fn lock_dir(dir: &Path, progress: Progress) -> Result<DirLock> {
    use std::os::unix::fs::OpenOptionsExt;
    let held = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|e| Error::io("opening storage directory", dir, e))?;
    let lock_path = dir.join(LOCK_FILE);
    let busy = || {
        let pid = std::fs::read_to_string(&lock_path).ok().and_then(|s| s.trim().parse::<u32>().ok());
        let who = pid.map_or_else(|| "pid unknown".to_string(), |p| format!("pid {p}"));
        let shown = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Error::Busy(format!(
            "another lifeboat run holds {} ({who}); wait for it to finish (deleting {LOCK_FILE} does not \
             release it)",
            shown.display()
        ))
    };
    match held.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(busy()),
        // NFS emulates flock with byte-range locks, which need a file
        // open for writing (EBADF on a directory): fall back to the
        // file lock alone rather than refuse to back up there.
        Err(std::fs::TryLockError::Error(e)) => progress(Event::Warning(format!(
            "cannot lock the storage directory {} itself ({e}); locking only {LOCK_FILE}, so keep cleanup \
             jobs from deleting it",
            dir.display()
        ))),
    }
    let file = open_lock_file(&lock_path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(busy()),
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("locking", &lock_path, e)),
    }
    {
        use std::io::Write;
        use std::os::unix::fs::MetadataExt;
        // Only for the message of a run that finds the lock taken; and only
        // into a lock file of our own (one another user made is locked, not
        // rewritten).
        if file.metadata().is_ok_and(|m| m.uid() == rustix::process::geteuid().as_raw()) {
            let _ = file.set_len(0);
            let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
        }
    }
    Ok(DirLock { _dir: held, _file: file })
}

/// Opens (creating it 0600) [`LOCK_FILE`] without following a symlink: in a
/// directory others can write to, a link planted there would otherwise have
/// the pid written over (and the file truncated) wherever it points. A hard
/// link to another file is refused for the same reason.
fn open_lock_file(lock_path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let p = lock_path.display();
    let refused = |what: &str| {
        Error::Refused(format!(
            "{p} {what}; lifeboat's lock file is a plain file it makes itself, and it never writes through a \
             link (another user could have planted it to have a file of yours overwritten): remove it \
             (`rm {p}`) and retry"
        ))
    };
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(lock_path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(refused("is a symbolic link")),
        Err(e) => return Err(Error::io("opening lock file", lock_path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("opening lock file", lock_path, e))?;
    if !meta.is_file() {
        return Err(refused("is not a regular file"));
    }
    if meta.nlink() > 1 {
        return Err(refused("has other hard links"));
    }
    Ok(file)
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
        // An existing name is never overwritten: the next run of that second gets `_2`.
        let again = store.create_partial(&listed[0].name).unwrap();
        assert_eq!(again.name, "critical_backup_20260101_000001_2.tar.gz");
        drop(again);
        assert!(store.delete("notes.txt").is_err(), "only archives of this store can be deleted");
        store.delete(&listed[0].name).unwrap();
        assert!(store.list().unwrap().is_empty());
    }

    // covers: FR-12.1
    #[test]
    fn a_second_run_in_the_same_second_gets_the_next_free_name() {
        let d = tempfile::tempdir().unwrap();
        let store = LocalStore::new(d.path(), "p");
        let first = "p_20261124_020000.tar.gz";
        assert_eq!(store.create_partial(first).unwrap().name, first);
        std::fs::write(d.path().join(first), b"").unwrap();
        assert_eq!(store.create_partial(first).unwrap().name, "p_20261124_020000_2.tar.gz");
        std::fs::write(d.path().join("p_20261124_020000_2.tar.gz.partial"), b"").unwrap();
        assert_eq!(store.create_partial(first).unwrap().name, "p_20261124_020000_3.tar.gz");
        for n in 3..=9 {
            std::fs::write(d.path().join(format!("p_20261124_020000_{n}.tar.gz")), b"").unwrap();
        }
        let err = store.create_partial(first).unwrap_err().to_string();
        assert!(err.contains(first) && err.contains("try again"), "{err}");
    }

    // covers: FR-1.5, FR-12.7, NFR-3
    #[test]
    fn the_lock_is_the_directory_and_an_existing_directory_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let warnings = std::sync::Mutex::new(Vec::new());
        let collect = |e: Event| {
            if let Event::Warning(w) = e {
                warnings.lock().unwrap().push(w);
            }
        };
        let store = LocalStore::new(&dir, "p");
        let held = store.lock(&collect).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777, 0o755);
        assert!(warnings.lock().unwrap().iter().any(|w| w.contains("mode 0755") && w.contains("chmod 700")));
        assert_eq!(std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap(), format!("{}\n", std::process::id()));
        // Deleting the file does not free the directory.
        std::fs::remove_file(dir.join(LOCK_FILE)).unwrap();
        let err = store.lock(&crate::events::silent).err().expect("still held").to_string();
        assert!(err.contains("another lifeboat run holds") && err.contains("pid unknown"), "{err}");
        drop(held);
        assert!(store.lock(&crate::events::silent).is_ok());

        let file = d.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = LocalStore::new(&file, "p").lock(&crate::events::silent).err().unwrap().to_string();
        assert!(err.contains("is a file, not a directory"), "{err}");

        let fresh = d.path().join("new/deeper");
        let _held = LocalStore::new(&fresh, "p").lock(&crate::events::silent).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777, 0o700);
    }
}
