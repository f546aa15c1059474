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
/// it does not exist. The
/// directory is created 0700 when missing; an existing one is left as is.
/// A store key readable by others is refused rather than used.
pub fn read_or_create_secret(path: &Path, what: &str, make: impl FnOnce() -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                return Err(Error::Refused(format!(
                    "{what} {} is readable by other users (mode {:o}); run `chmod 600 {}` and retry",
                    path.display(),
                    meta.permissions().mode() & 0o777,
                    path.display()
                )));
            }
            return read_key_file(path, what);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("reading {what}"), path, e)),
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Error::io("creating storage directory", &dir, e))?;
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
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path, what),
        Err(e) => Err(Error::io(format!("creating {what}"), path, e.error)),
    }
}
