//! The deployment's configuration files (`.env.production`, compose file,
//! nginx config, certificates): which files the `[files]` patterns select.
//!
//! Symlinks are followed and stored as regular files, because certificate
//! directories (Let's Encrypt's `live/`) are made of symlinks and a restore
//! needs the content. Anything that is not a regular file (FIFO, socket,
//! device) is refused: reading it could block or leak.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;
use walkdir::WalkDir;

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
        let matcher = matcher(pattern)?;
        let before = sel.files.len();
        // Only the pattern is a glob: `base_dir` is a plain path, whatever
        // characters its name holds. The walk starts at the pattern's
        // literal prefix and goes only as deep as the pattern can match.
        let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        let literal = parts.iter().take_while(|p| !p.contains(['*', '?', '[', '{'])).count();
        let start = parts[..literal].iter().fold(base.clone(), |at, p| at.join(p));
        let depth = if parts.iter().any(|p| p.contains("**")) { usize::MAX } else { parts.len() - literal };
        if literal == parts.len() {
            // A plain path: the file itself, or everything under a directory.
            if std::fs::metadata(&start).is_ok() {
                add(base, &start, &mut sel.files)?;
            }
        } else if start.is_dir() {
            for entry in WalkDir::new(&start).min_depth(1).max_depth(depth).follow_links(true).sort_by_file_name() {
                let entry = match entry {
                    Ok(e) => e,
                    // A symlink back to an ancestor: everything under it is
                    // walked already, through the ancestor.
                    Err(e) if e.loop_ancestor().is_some() => continue,
                    Err(e) => {
                        let at = e.path().map(Path::to_path_buf).unwrap_or_else(|| start.clone());
                        return Err(Error::io("reading", at, std::io::Error::other(e.to_string())));
                    }
                };
                if matcher.is_match(relative(base, entry.path())) {
                    add(base, entry.path(), &mut sel.files)?;
                }
            }
        }
        if sel.files.len() == before && !sel.files.iter().any(|f| matcher.is_match(&f.path)) {
            sel.missing.push(MissingPattern { pattern: pattern.clone(), required });
        }
    }
    sel.files.sort_by(|a, b| a.path.cmp(&b.path));
    sel.files.dedup_by(|a, b| a.path == b.path);
    Ok(sel)
}

/// A `[files]` pattern as a matcher on `/`-separated paths relative to
/// `base_dir`: `*` and `?` stay within one path component, `**` crosses
/// them, and a leading `.` needs no literal dot (so `*` takes `.env`).
pub fn matcher(pattern: &str) -> Result<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::Invalid(format!("files pattern {pattern:?}: {}", e.kind())))
}

/// `path` relative to `base`, with `/` separators.
fn relative(base: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    rel.join("/")
}

/// Adds a file, or every file under a directory (symlinks followed; a
/// symlink back to an ancestor is skipped, not followed forever).
fn add(base: &Path, path: &Path, out: &mut Vec<FileEntry>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("reading config file", path, e))?;
    if meta.is_dir() {
        for entry in WalkDir::new(path).min_depth(1).follow_links(true).sort_by_file_name() {
            match entry {
                Ok(e) if e.file_type().is_dir() => {}
                Ok(e) => add_file(base, e.path(), out)?,
                Err(e) if e.loop_ancestor().is_some() => {}
                Err(e) => {
                    let at = e.path().map(Path::to_path_buf).unwrap_or_else(|| path.to_path_buf());
                    return Err(Error::io("listing", at, std::io::Error::other(e.to_string())));
                }
            }
        }
        return Ok(());
    }
    add_file(base, path, out)
}

fn add_file(base: &Path, path: &Path, out: &mut Vec<FileEntry>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("reading config file", path, e))?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{} is not a regular file (FIFO, socket or device); remove it from files.include",
            path.display()
        )));
    }
    use std::os::unix::fs::PermissionsExt;
    out.push(FileEntry {
        path: relative(base, path),
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

    // covers: FR-16.1, FR-16.2
    #[test]
    fn a_base_dir_with_glob_characters_in_its_name_is_a_plain_path() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("app [prod] *{1}");
        std::fs::create_dir_all(b.join("ssl")).unwrap();
        std::fs::write(b.join(".env.production"), "A=1").unwrap();
        std::fs::write(b.join("ssl/cert.pem"), "CERT").unwrap();
        std::fs::write(d.path().join(".env.production"), "not this one").unwrap();
        let cfg = FilesConfig {
            base_dir: Some(b.clone()),
            include: vec![".env.*".into(), "ssl/**".into()],
            optional: vec![],
        };
        let sel = collect(&cfg).unwrap();
        let paths: Vec<&str> = sel.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, [".env.production", "ssl/cert.pem"]);
        assert!(sel.missing.is_empty());
    }

    // covers: FR-16.2
    #[test]
    fn a_symlink_loop_does_not_hang_and_its_files_are_taken_once() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::create_dir_all(b.join("conf/sub")).unwrap();
        std::fs::write(b.join("conf/sub/a.conf"), "x").unwrap();
        std::os::unix::fs::symlink("..", b.join("conf/sub/up")).unwrap();
        std::os::unix::fs::symlink(".", b.join("loop")).unwrap();
        let cfg = FilesConfig {
            base_dir: Some(b.to_path_buf()),
            include: vec!["conf/**".into(), "conf".into(), "**/*.conf".into()],
            optional: vec![],
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(collect(&cfg).map(|s| s.files.len())).unwrap());
        let n = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("collect finished").unwrap();
        assert_eq!(n, 1, "conf/sub/a.conf, once");
    }
}
