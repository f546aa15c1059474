//! Config files from the archive: staged in a private directory inside
//! `--config-dir` during the stream, checked before the database commit,
//! moved into place after it (an existing file kept as `.bak-<stamp>`).
//! Nothing is ever written outside `--config-dir`.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::RestoredFile;
use crate::error::{Error, Result};

/// Config files written into a hidden directory inside the destination
/// during the stream, moved into place after the database commit.
pub(super) struct Staged {
    dir: tempfile::TempDir,
    files: Vec<(String, u32)>,
}

impl Staged {
    pub(super) fn new(dest: &Path) -> Result<Staged> {
        std::fs::create_dir_all(dest).map_err(|e| Error::io("creating --config-dir", dest, e))?;
        let dir = tempfile::Builder::new()
            .prefix(".lifeboat-restore-")
            // Files wait here before they get their modes: keep them private.
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(dest)
            .map_err(|e| Error::io("staging config files in", dest, e))?;
        Ok(Staged { dir, files: Vec::new() })
    }

    pub(super) fn add(&mut self, rel: &str, mode: u32, data: &mut dyn Read) -> Result<()> {
        // `rel` passed the reader's path check (relative, no `..`).
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        }
        let mut f = std::fs::File::create(&path).map_err(|e| Error::io("writing", &path, e))?;
        std::io::copy(data, &mut f).map_err(|e| Error::io("writing", &path, e))?;
        self.files.push((rel.to_string(), mode));
        Ok(())
    }

    /// Refuses a destination that is a directory or a symlink, or whose
    /// path inside `dest` runs through a symlink or a file, before anything
    /// is created: `create_dir_all` through a symlinked subdirectory would
    /// already write outside `dest`.
    pub(super) fn check(&self, dest: &Path) -> Result<()> {
        for (rel, _) in &self.files {
            let mut at = dest.to_path_buf();
            let parts: Vec<&str> = rel.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                at.push(part);
                let last = i + 1 == parts.len();
                let refuse = match std::fs::symlink_metadata(&at) {
                    Ok(m) if m.file_type().is_symlink() => {
                        format!("is a symlink: restoring through it could write outside {}", dest.display())
                    }
                    Ok(m) if last && m.is_dir() => "is a directory".to_string(),
                    Ok(m) if !last && !m.is_dir() => "is a file where a directory is needed".to_string(),
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) => return Err(Error::io("checking", &at, e)),
                };
                return Err(Error::Refused(format!(
                    "config file {rel}: {} {refuse}; move it away or restore into another --config-dir",
                    at.display()
                )));
            }
        }
        Ok(())
    }

    /// Moves every file into `dest`; an existing file is first renamed to
    /// `<name>.bak-<YYYYMMDDHHMMSS>`. A destination path that is (or runs
    /// through) a symlink is refused: nothing is written outside `dest`.
    pub(super) fn install(self, dest: &Path) -> Result<Vec<RestoredFile>> {
        use std::os::unix::fs::PermissionsExt;
        self.check(dest)?;
        let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
        let root = std::fs::canonicalize(dest).map_err(|e| Error::io("resolving", dest, e))?;
        let mut out = Vec::new();
        for (rel, mode) in &self.files {
            let to = root.join(rel);
            let parent = to.parent().expect("joined path has a parent");
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
            let real_parent = std::fs::canonicalize(parent).map_err(|e| Error::io("resolving", parent, e))?;
            if !real_parent.starts_with(&root) {
                return Err(Error::Refused(format!(
                    "config file {rel}: {} leads outside {} (symlink?); refused",
                    parent.display(),
                    root.display()
                )));
            }
            let mut previous = None;
            match std::fs::symlink_metadata(&to) {
                Ok(m) if m.file_type().is_symlink() || m.is_dir() => {
                    return Err(Error::Refused(format!(
                        "config file {rel}: {} is a symlink or directory; refused",
                        to.display()
                    )));
                }
                Ok(_) => {
                    let bak = PathBuf::from(format!("{}.bak-{stamp}", to.display()));
                    std::fs::rename(&to, &bak).map_err(|e| Error::io("keeping the previous file as", &bak, e))?;
                    previous = Some(bak);
                }
                Err(_) => {}
            }
            let from = self.dir.path().join(rel);
            std::fs::set_permissions(&from, std::fs::Permissions::from_mode(*mode))
                .map_err(|e| Error::io("setting mode of", &from, e))?;
            std::fs::rename(&from, &to).map_err(|e| Error::io("installing", &to, e))?;
            out.push(RestoredFile { path: to, previous, mode: *mode });
        }
        Ok(out)
    }
}
