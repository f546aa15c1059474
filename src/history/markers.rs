//! The marker files in the storage directory (FR-20.2, spec 7.4), for
//! scripts and HEALTHCHECKs that read them: `.last_backup_success` (unix
//! seconds of the end of the last verified success) and
//! `.last_backup_size_mb` (its archive's size in MiB, rounded up). Each is
//! one number and a newline, written atomically (temp file, fsync, rename,
//! fsync of the directory), so a reader never sees half a number.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

pub const SUCCESS: &str = ".last_backup_success";
pub const SIZE_MB: &str = ".last_backup_size_mb";

const MIB: u64 = 1024 * 1024;

/// Bytes as whole MiB, rounded up (a 1-byte archive is 1 MB).
pub fn size_mb(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// What the markers say; `None` where a file is missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Markers {
    pub success_unix: Option<i64>,
    pub size_mb: Option<u64>,
}

/// Writes both markers for a success that ended at `finished_unix`.
pub fn write(dir: &Path, finished_unix: i64, size_bytes: u64) -> Result<()> {
    write_atomic(&dir.join(SUCCESS), format!("{finished_unix}\n").as_bytes(), 0o600, "marker")?;
    write_atomic(&dir.join(SIZE_MB), format!("{}\n", size_mb(size_bytes)).as_bytes(), 0o600, "marker")
}

/// Reads the markers; a missing file is `None`, an unreadable or garbled
/// one an error that names it.
pub fn read(dir: &Path) -> Result<Markers> {
    fn one<T: std::str::FromStr>(path: &Path) -> Result<Option<T>> {
        match std::fs::read_to_string(path) {
            Ok(s) => s.trim().parse().map(Some).map_err(|_| {
                Error::Invalid(format!(
                    "marker file {} does not hold a whole number; delete it (the next successful backup \
                     rewrites it)",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading marker", path, e)),
        }
    }
    Ok(Markers { success_unix: one(&dir.join(SUCCESS))?, size_mb: one(&dir.join(SIZE_MB))? })
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-20.2, US-5/AC-2, US-5/AC-3
    #[test]
    fn markers_are_one_number_and_a_newline_and_the_size_rounds_up() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(d.path()).unwrap(), Markers::default());
        write(d.path(), 1_795_546_849, 42 * MIB + 1).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join(SUCCESS)).unwrap(), "1795546849\n");
        assert_eq!(std::fs::read_to_string(d.path().join(SIZE_MB)).unwrap(), "43\n");
        assert_eq!(read(d.path()).unwrap(), Markers { success_unix: Some(1_795_546_849), size_mb: Some(43) });
        assert_eq!((size_mb(0), size_mb(1), size_mb(MIB), size_mb(MIB + 1)), (0, 1, 1, 2));
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
        std::fs::write(d.path().join(SIZE_MB), "lots\n").unwrap();
        assert!(read(d.path()).unwrap_err().to_string().contains(".last_backup_size_mb does not hold a whole number"));
    }
}
