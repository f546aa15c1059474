//! The marker files in the storage directory (FR-20.2, spec 7.4), for
//! scripts and HEALTHCHECKs that read them: `.last_backup_success` (unix
//! seconds of the end of the last verified success) and
//! `.last_backup_size_mb` (its archive's size in decimal MB of 1,000,000
//! bytes, rounded up: the MB of every size lifeboat shows). Each is one
//! number and a newline, written atomically (temp file, fsync, rename,
//! fsync of the directory), so a reader never sees half a number.
//!
//! Markers written by 0.1.0 and earlier builds counted MiB of 1,048,576 bytes: read as MB
//! they are at most 4.9 % low (a fallback only: `check` takes sizes from
//! the history first), and the next success rewrites them. A marker with
//! a fraction (`42.5`, written by hand or by a script) is read rounded up.

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

pub const SUCCESS: &str = ".last_backup_success";
pub const SIZE_MB: &str = ".last_backup_size_mb";

/// The MB of the size marker: 1,000,000 bytes, as `model::human_bytes`
/// and `[monitor] min_size_mb`/`max_size_mb` count.
pub const MB: u64 = 1_000_000;

/// Bytes as whole decimal MB, rounded up (a 1-byte archive is 1 MB).
pub fn size_mb(bytes: u64) -> u64 {
    bytes.div_ceil(MB)
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
    fn one<T>(path: &Path, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>> {
        match std::fs::read_to_string(path) {
            Ok(s) => parse(s.trim()).map(Some).ok_or_else(|| {
                Error::Invalid(format!(
                    "marker file {} does not hold a number; delete it (the next successful backup rewrites it)",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading marker", path, e)),
        }
    }
    Ok(Markers {
        success_unix: one(&dir.join(SUCCESS), |s| s.parse().ok())?,
        size_mb: one(&dir.join(SIZE_MB), parse_mb)?,
    })
}

/// A size marker: a whole number of MB, or one with a fraction (rounded up).
fn parse_mb(s: &str) -> Option<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let f: f64 = s.parse().ok()?;
    // `as` saturates; NaN, infinities and negatives are not sizes.
    (f.is_finite() && f >= 0.0).then(|| f.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-20.2, US-5/AC-2, US-5/AC-3
    #[test]
    fn markers_are_one_number_and_a_newline_and_the_size_rounds_up_in_decimal_mb() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(d.path()).unwrap(), Markers::default());
        write(d.path(), 1_795_546_849, 42 * MB + 1).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join(SUCCESS)).unwrap(), "1795546849\n");
        assert_eq!(std::fs::read_to_string(d.path().join(SIZE_MB)).unwrap(), "43\n");
        assert_eq!(read(d.path()).unwrap(), Markers { success_unix: Some(1_795_546_849), size_mb: Some(43) });
        assert_eq!((size_mb(0), size_mb(1), size_mb(MB), size_mb(MB + 1)), (0, 1, 1, 2));
        // 44,040,193 bytes is 42 MiB + 1 byte (the old marker said 43) and 44.04 MB.
        assert_eq!(size_mb(42 * 1024 * 1024 + 1), 45);
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
        std::fs::write(d.path().join(SIZE_MB), "42.1\n").unwrap();
        assert_eq!(read(d.path()).unwrap().size_mb, Some(43), "a fraction is read rounded up");
        for bad in ["lots", "-3", "NaN", "inf"] {
            std::fs::write(d.path().join(SIZE_MB), format!("{bad}\n")).unwrap();
            let err = read(d.path()).unwrap_err().to_string();
            assert!(err.contains(".last_backup_size_mb does not hold a number"), "{bad}: {err}");
        }
    }
}
