//! Small secret files kept in (or named for) the store: the link key and
//! the archive signing key. Regular files only, size-capped, created once
//! with mode 0600 in a 0700 directory, refused when others can read them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A key file is a few hundred bytes at most; anything larger is not a key.
pub const MAX_KEY_BYTES: u64 = 4096;

/// Reads a small secret: a regular file (not a link, device or FIFO) of at
/// most [`MAX_KEY_BYTES`].
pub fn read_key_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(format!("reading {what}"), path, e))?;
    // A symlink is followed only to a regular file (Docker secrets are links).
    let meta = if meta.file_type().is_symlink() {
        std::fs::metadata(path).map_err(|e| Error::io(format!("reading {what}"), path, e))?
    } else {
        meta
    };
    if !meta.is_file() {
        return Err(Error::Invalid(format!("{what} {} is not a regular file; point it at a key file", path.display())));
    }
    if meta.len() > MAX_KEY_BYTES {
        return Err(Error::Invalid(format!(
            "{what} {} is {} bytes, more than a key can be ({MAX_KEY_BYTES}); point it at a key file",
            path.display(),
            meta.len()
        )));
    }
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_BYTES).read_to_end(&mut buf))
        .map_err(|e| Error::io(format!("reading {what}"), path, e))?;
    Ok(buf)
}

/// Reads the secret at `path`, or writes `make()`'s bytes there first
/// (mode 0600, created exclusively, fsynced) when it does not exist. The
/// directory is created 0700 when missing; an existing one is left as is.
/// A store key readable by others is refused rather than used.
pub fn read_or_create_secret(path: &Path, what: &str, make: impl FnOnce() -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    match created {
        Ok(mut f) => {
            f.write_all(&bytes)
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io(format!("writing {what}"), path, e))?;
            tracing::info!(path = %path.display(), "created {what}");
            Ok(bytes)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path, what),
        Err(e) => Err(Error::io(format!("creating {what}"), path, e)),
    }
}
