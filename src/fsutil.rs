//! Small files written and read with care: [`write_atomic`] (a temporary
//! file beside the target, fsynced, renamed over it, then the directory
//! fsynced, so a reader sees the old file or the new one, never half of
//! one), and secret key files: regular files only, size-capped, created
//! once with mode 0600 in a 0700 directory without following a symlink,
//! refused when others can read them. The one home of these steps: the
//! markers, the signing keys, the link key and encrypted copies use them.

use std::fs::File;
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
    let tmp = written_temp(path, 0o600, what, |f| f.write_all(&bytes))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {
            sync_dir(&dir)?;
            tracing::info!(path = %path.display(), "created {what}");
            Ok(bytes)
        }
        // Another process created it first: use theirs.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read_own_secret(path, what),
        Err(e) => Err(Error::io(format!("creating {what}"), path, e.error)),
    }
}

/// Writes `dst` atomically (FR-20.2's "never half a file"): `write` fills a
/// new temporary file beside it (`<name>.<random>.partial`, created
/// exclusively, so no planted link is followed; mode `mode`), which is
/// fsynced, renamed over `dst`, and the directory fsynced. On an error
/// nothing is left behind and `dst` is untouched. `what` names the file in
/// errors ("marker", "the encrypted copy").
pub fn write_atomic_with(
    dst: &Path,
    mode: u32,
    what: &str,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = written_temp(dst, mode, what, write)?;
    tmp.persist(dst).map_err(|e| Error::io(format!("renaming {what} to"), dst, e.error))?;
    sync_dir(parent(dst))
}

/// [`write_atomic_with`] for bytes at hand.
pub fn write_atomic(dst: &Path, bytes: &[u8], mode: u32, what: &str) -> Result<()> {
    write_atomic_with(dst, mode, what, |f| f.write_all(bytes))
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("syncing directory", dir, e))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temporary file beside `dst`, mode `mode` (set explicitly, whatever the
/// umask), filled by `write` and fsynced: what [`write_atomic_with`] and
/// [`read_or_create_secret`] rename into place. The name ends in `.partial`
/// and starts with `dst`'s, so the storage directory's cleanup of
/// `<prefix>_*.partial` also removes one a crash left there.
fn written_temp(
    dst: &Path,
    mode: u32,
    what: &str,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent(dst);
    let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{name}."))
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| Error::io(format!("creating {what} in"), dir, e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| write(tmp.as_file_mut()))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io(format!("writing {what}"), dst, e))?;
    Ok(tmp)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// A link planted where a marker or public key goes is replaced, never
    /// written through; the new file has the asked-for mode whatever the
    /// umask, and no temporary file is left.
    // covers: FR-20.2, NFR-3
    #[test]
    fn write_atomic_replaces_a_planted_link_instead_of_writing_through_it() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        let dst = d.path().join(".last_backup_success");
        std::os::unix::fs::symlink(&victim, &dst).unwrap();
        write_atomic(&dst, b"42\n", 0o644, "marker").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert!(std::fs::symlink_metadata(&dst).unwrap().is_file());
        assert_eq!((std::fs::read_to_string(&dst).unwrap().as_str(), mode(&dst)), ("42\n", 0o644));
        write_atomic(&dst, b"43\n", 0o600, "marker").unwrap();
        assert_eq!((std::fs::read_to_string(&dst).unwrap().as_str(), mode(&dst)), ("43\n", 0o600));
        let failed = write_atomic_with(&dst, 0o600, "marker", |_| Err(std::io::Error::other("disk full")));
        assert!(failed.unwrap_err().to_string().contains("disk full"));
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), "43\n", "a failed write leaves the old file");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2, "no temporary file is left");
    }

    // covers: NFR-3
    #[test]
    fn a_secret_is_made_once_0600_in_a_0700_directory_and_a_planted_link_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join(".lifeboat/link.key");
        let first = read_or_create_secret(&key, "the link key", || Ok(b"secret-1".to_vec())).unwrap();
        let again = read_or_create_secret(&key, "the link key", || Ok(b"secret-2".to_vec())).unwrap();
        assert_eq!((first.as_slice(), again.as_slice()), (&b"secret-1"[..], &b"secret-1"[..]));
        assert_eq!((mode(&key), mode(key.parent().unwrap())), (0o600, 0o700));

        std::fs::remove_file(&key).unwrap();
        let elsewhere = d.path().join("elsewhere");
        std::fs::write(&elsewhere, "planted").unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &key).unwrap();
        let e = read_or_create_secret(&key, "the link key", || Ok(b"x".to_vec())).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link") && e.contains("rm "), "{e}");
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "planted");
    }
}
