//! Small secret files kept in (or named for) the store: the link key and
//! the archive signing key. Regular files only, size-capped, created once
//! with mode 0600 in a 0700 directory, refused when others can read them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A key file is a few hundred bytes at most; anything larger is not a key.
pub const MAX_KEY_BYTES: u64 = 4096;

/// Reads a small secret: a regular file (not a directory, device or FIFO;
/// a symlink to a regular file is fine, Docker secrets are links) of at
/// most [`MAX_KEY_BYTES`]. The opened file is checked, not the path, and it
/// is opened non-blocking, so a FIFO can neither hang nor be swapped in.
pub fn read_key_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| Error::io(format!("reading {what}"), path, e);
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err(Error::Invalid(format!("{what} {} is not a regular file; point it at a key file", path.display())));
    }
    let mut buf = Vec::new();
    file.take(MAX_KEY_BYTES + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > MAX_KEY_BYTES {
        return Err(Error::Invalid(format!(
            "{what} {} is more than a key can be ({MAX_KEY_BYTES} bytes); point it at a key file",
            path.display()
        )));
    }
    Ok(buf)
}

/// Reads the secret at `path`, or writes `make()`'s bytes there first
/// (mode 0600, fsynced, then linked into place only if still absent) when
/// it does not exist. The directory is created 0700 when missing; an
/// existing one is left as is, but refused unless it is the running user's
/// and writable by nobody else ([`check_store_dir`]): whoever can write
/// there could plant the key lifeboat then signs with. The key itself is
/// opened without following a symlink and refused unless it is a regular
/// file of the running user that nobody else can read or write.
pub fn read_or_create_secret(path: &Path, what: &str, make: impl FnOnce() -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    if !check_store_dir(&dir)? {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io("creating storage directory", &dir, e))?;
    }
    match read_own_secret(path, what) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    let bytes = make()?;
    // Written completely into a temp file (0600) first, then linked to its
    // name only if that name is still free: a concurrent reader or creator
    // never sees a half-written key, and two first runs agree on one key.
    let mut tmp =
        tempfile::NamedTempFile::new_in(&dir).map_err(|e| Error::io(format!("creating {what} in"), &dir, e))?;
    tmp.write_all(&bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(format!("writing {what}"), tmp.path(), e))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {
            tracing::info!(path = %path.display(), "created {what}");
            Ok(bytes)
        }
        // Another process created it first: use theirs.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read_own_secret(path, what),
        Err(e) => Err(Error::io(format!("creating {what}"), path, e.error)),
    }
}

/// The user lifeboat runs as (effective uid).
fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Checks a directory that holds the store's keys (`DIR/.lifeboat/`):
/// `Ok(false)` when it does not exist (the caller creates it, 0700), an
/// error when it is not a directory, belongs to another user, or others
/// can write to it. Nothing is changed: lifeboat did not create it, so the
/// message says how to fix it instead.
pub fn check_store_dir(dir: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("reading key directory", dir, e)),
    };
    let d = dir.display();
    if !meta.is_dir() {
        return Err(Error::Refused(format!(
            "{d} holds lifeboat's keys but is not a directory; move it away and retry (lifeboat recreates it, mode 0700)"
        )));
    }
    let me = euid();
    if meta.uid() != me {
        return Err(Error::Refused(format!(
            "{d} belongs to uid {}, not to the user lifeboat runs as (uid {me}): another user could have planted \
             the keys in it, so they are not used. If you did not create it, remove it (`rm -r {d}`) and lifeboat \
             creates a fresh one; if it is yours, `chown -R {me} {d} && chmod 700 {d}`",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Error::Refused(format!(
            "{d} has mode {mode:04o}: other users can write to it and plant keys, so they are not used; check \
             what is inside, then `chmod 700 {d}` and retry"
        )));
    }
    Ok(true)
}

/// Checks a store's public key before it is trusted because of where it
/// lies (`<[storage] dir>/.lifeboat/signing.pub`): the key and its
/// directory must each belong to the running user, root or the store
/// directory's owner, and be writable by nobody else — as ssh's
/// `StrictModes` asks of `authorized_keys`. Otherwise another local user
/// (one who could create `.lifeboat/` in a shared or world-writable
/// store, or write the file) could plant their own key and sign forged
/// archives that `verify` and `restore` would then trust. Nothing is
/// changed; the error says what is wrong and how to fix it.
pub fn check_trust_anchor(key: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dir = key.parent().unwrap_or_else(|| Path::new("."));
    let store_owner = dir.parent().and_then(|s| std::fs::metadata(s).ok()).map(|m| m.uid());
    let me = euid();
    for (path, what) in [(dir, "the key directory"), (key, "the store's public key")] {
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(format!("reading {what}"), path, e))?;
        let p = path.display();
        if meta.file_type().is_symlink() {
            return Err(Error::Refused(format!(
                "{what} {p} is a symbolic link, so it is not trusted: lifeboat writes its keys as plain files; \
                 replace it with the file itself"
            )));
        }
        let uid = meta.uid();
        if uid != me && uid != 0 && Some(uid) != store_owner {
            return Err(Error::Refused(format!(
                "{what} {p} belongs to uid {uid}, neither the user lifeboat runs as (uid {me}), root nor the \
                 store's owner: another user could have planted it, so it is not trusted. Check it, then \
                 `chown` it to the store's owner, or trust the key explicitly with --trusted-key FILE"
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(Error::Refused(format!(
                "{what} {p} has mode {mode:04o}: other users can write to it and plant a key, so it is not \
                 trusted; check it, then `chmod go-w {p}`"
            )));
        }
    }
    Ok(())
}

/// Reads a store secret lifeboat itself made: opened without following a
/// symlink (`O_NOFOLLOW`) and checked on the open file — a regular file of
/// the running user, neither readable nor writable by others. A missing
/// file is the `NotFound` [`Error::Io`].
fn read_own_secret(path: &Path, what: &str) -> Result<Vec<u8>> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let p = path.display();
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::Refused(format!(
                "{what} {p} is a symbolic link; lifeboat makes its keys as plain files and never follows a link \
                 there (another user could have planted it): remove it (`rm {p}`) and retry"
            )))
        }
        Err(e) => return Err(Error::io(format!("reading {what}"), path, e)),
    };
    let io = |e| Error::io(format!("reading {what}"), path, e);
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::Refused(format!("{what} {p} is not a regular file; move it away and retry")));
    }
    let me = euid();
    if meta.uid() != me {
        return Err(Error::Refused(format!(
            "{what} {p} belongs to uid {}, not to the user lifeboat runs as (uid {me}), so it is not used: another \
             user could have planted it. If you did not create it, remove it (`rm {p}`); if it is yours, \
             `chown {me} {p}`",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Refused(format!(
            "{what} {p} can be read or written by other users (mode {mode:o}); run `chmod 600 {p}` and retry"
        )));
    }
    let mut buf = Vec::new();
    file.take(MAX_KEY_BYTES + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > MAX_KEY_BYTES {
        return Err(Error::Invalid(format!(
            "{what} {p} is more than a key can be ({MAX_KEY_BYTES} bytes); move it away and retry"
        )));
    }
    Ok(buf)
}
