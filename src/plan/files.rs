//! The deployment's configuration files (`.env.production`, compose file,
//! nginx config, certificates): which files the `[files]` patterns select.
//!
//! Symlinks are followed and stored as regular files, because certificate
//! directories (Let's Encrypt's `live/`) are made of symlinks and a restore
//! needs the content. Anything that is not a regular file (FIFO, socket,
//! device) is refused: reading it could block or leak.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::config::FilesConfig;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    /// Path relative to `base_dir`, with `/` separators.
    pub path: String,
    #[serde(skip)]
    pub source: PathBuf,
    pub mode: u32,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MissingPattern {
    pub pattern: String,
    pub required: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FileSelection {
    pub files: Vec<FileEntry>,
    pub missing: Vec<MissingPattern>,
}

pub fn collect(cfg: &FilesConfig) -> Result<FileSelection> {
    let mut sel = FileSelection::default();
    let Some(base) = &cfg.base_dir else { return Ok(sel) };
    let patterns = cfg.include.iter().map(|p| (p, true)).chain(cfg.optional.iter().map(|p| (p, false)));
    for (pattern, required) in patterns {
        let rel = Path::new(pattern);
        if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(Error::Invalid(format!(
                "files pattern {pattern:?} must be relative to files.base_dir and must not contain '..'"
            )));
        }
        let full = base.join(pattern);
        let paths = glob::glob(&full.to_string_lossy())
            .map_err(|e| Error::Invalid(format!("files pattern {pattern:?}: {e}")))?;
        let before = sel.files.len();
        // The glob crate's `dir/**` yields what is below `dir` but skips
        // symlinked files at its top level; walking `dir` itself is exact.
        if let Some(dir) = pattern.strip_suffix("/**").filter(|d| !d.contains(['*', '?', '['])) {
            if base.join(dir).is_dir() {
                add(base, &base.join(dir), &mut sel.files)?;
            }
        }
        for p in paths {
            let p =
                p.map_err(|e| Error::io("reading", e.path().to_path_buf(), std::io::Error::other(e.to_string())))?;
            add(base, &p, &mut sel.files)?;
        }
        if sel.files.len() == before && !sel.files.iter().any(|f| glob_matches(pattern, &f.path)) {
            sel.missing.push(MissingPattern { pattern: pattern.clone(), required });
        }
    }
    sel.files.sort_by(|a, b| a.path.cmp(&b.path));
    sel.files.dedup_by(|a, b| a.path == b.path);
    Ok(sel)
}

fn glob_matches(pattern: &str, path: &str) -> bool {
    glob::Pattern::new(pattern).map(|p| p.matches(path)).unwrap_or(false)
}

fn add(base: &Path, path: &Path, out: &mut Vec<FileEntry>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("reading config file", path, e))?;
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| Error::io("listing", path, e))?
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io("listing", path, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            add(base, &e.path(), out)?;
        }
        return Ok(());
    }
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{} is not a regular file (FIFO, socket or device); remove it from files.include",
            path.display()
        )));
    }
    let rel = path.strip_prefix(base).unwrap_or(path);
    let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    use std::os::unix::fs::PermissionsExt;
    out.push(FileEntry {
        path: rel.join("/"),
        source: path.to_path_buf(),
        mode: meta.permissions().mode() & 0o7777,
        bytes: meta.len(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-16.1, FR-16.2, FR-16.3
    #[test]
    fn selects_globs_follows_symlinks_and_reports_missing() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::write(b.join(".env.production"), "A=1").unwrap();
        std::fs::create_dir_all(b.join("ssl/archive")).unwrap();
        std::fs::write(b.join("ssl/archive/cert1.pem"), "CERT").unwrap();
        std::os::unix::fs::symlink("archive/cert1.pem", b.join("ssl/cert.pem")).unwrap();
        let cfg = FilesConfig {
            base_dir: Some(b.to_path_buf()),
            include: vec![".env.production".into(), "ssl/**".into(), "nginx.prod.conf".into()],
            optional: vec!["monitoring/**".into()],
        };
        let sel = collect(&cfg).unwrap();
        let paths: Vec<&str> = sel.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, [".env.production", "ssl/archive/cert1.pem", "ssl/cert.pem"]);
        assert_eq!(sel.files[2].bytes, 4, "symlink followed");
        let missing: Vec<(&str, bool)> = sel.missing.iter().map(|m| (m.pattern.as_str(), m.required)).collect();
        assert_eq!(missing, [("nginx.prod.conf", true), ("monitoring/**", false)]);
    }

    // covers: FR-16.1
    #[test]
    fn refuses_escaping_patterns() {
        let cfg =
            FilesConfig { base_dir: Some("/tmp".into()), include: vec!["../etc/passwd".into()], optional: vec![] };
        assert!(collect(&cfg).unwrap_err().to_string().contains("'..'"));
    }
}
