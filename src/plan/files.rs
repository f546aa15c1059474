//! The deployment's configuration files (`.env.production`, compose file,
//! nginx config, certificates): which files the `[files]` patterns select.
//!
//! Symlinks are followed and stored as regular files, because certificate
//! directories (Let's Encrypt's `live/`) are made of symlinks and a restore
//! needs the content — but only while they stay inside `base_dir`: a link
//! that leads out of it (to `/etc/shadow`, to a home directory), or that
//! cannot be followed (a loop, a link to nothing), is refused and listed in
//! [`FileSelection::refused`] (a warning in `plan`, a failure in `backup`,
//! like a missing file). A directory link back to one of its own ancestors
//! is not followed (its files are there already). Anything that is not a
//! regular file (FIFO, socket, device) is refused: reading it could block or
//! leak.

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

/// A symlink the selection does not follow.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedLink {
    /// The link, relative to `base_dir`.
    pub path: String,
    /// Where it leads, or why it cannot be followed, and what to do.
    pub problem: String,
}

impl RefusedLink {
    pub fn describe(&self) -> String {
        format!("config file link {} {}", self.path, self.problem)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FileSelection {
    pub files: Vec<FileEntry>,
    pub missing: Vec<MissingPattern>,
    pub refused: Vec<RefusedLink>,
}

/// Where a walk stands: `base_dir` as written and as resolved.
struct Base<'a> {
    path: &'a Path,
    real: PathBuf,
}

/// What to do with a path met on the way.
enum Link {
    Follow,
    /// A directory link to one of its own ancestors: a loop.
    Skip,
    Refuse(RefusedLink),
}

impl Base<'_> {
    fn check(&self, path: &Path) -> Link {
        if !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Link::Follow;
        }
        let refuse = |problem: String| Link::Refuse(RefusedLink { path: relative(self.path, path), problem });
        match std::fs::canonicalize(path) {
            Err(e) => refuse(format!(
                "cannot be followed ({e}): a symlink loop or a link to nothing; fix or remove the link"
            )),
            Ok(real) if !real.starts_with(&self.real) => refuse(format!(
                "points outside files.base_dir, to {}: it is not archived; copy what it points to into files.base_dir, or remove the link",
                real.display()
            )),
            Ok(real) => {
                let parent = path.parent().and_then(|p| std::fs::canonicalize(p).ok());
                if real.is_dir() && parent.is_some_and(|p| p.starts_with(&real)) {
                    Link::Skip
                } else {
                    Link::Follow
                }
            }
        }
    }

    /// The first link on the way from `base_dir` to `path` that must not be
    /// followed, if any.
    fn check_path(&self, path: &Path) -> Option<RefusedLink> {
        let rel = path.strip_prefix(self.path).ok()?;
        let mut at = self.path.to_path_buf();
        for c in rel.components() {
            at.push(c);
            if let Link::Refuse(r) = self.check(&at) {
                return Some(r);
            }
        }
        None
    }

    /// A walk error that is a link walkdir could not follow (loop, link to
    /// nothing), as a refusal; `None` for any other error.
    fn broken(&self, e: &walkdir::Error) -> Option<RefusedLink> {
        match self.check(e.path()?) {
            Link::Refuse(r) => Some(r),
            _ => None,
        }
    }
}

pub fn collect(cfg: &FilesConfig) -> Result<FileSelection> {
    let mut sel = FileSelection::default();
    let Some(base) = &cfg.base_dir else { return Ok(sel) };
    let base = Base { path: base, real: std::fs::canonicalize(base).unwrap_or_else(|_| base.clone()) };
    let patterns = cfg.include.iter().map(|p| (p, true)).chain(cfg.optional.iter().map(|p| (p, false)));
    for (pattern, required) in patterns {
        let rel = Path::new(pattern);
        if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(Error::Invalid(format!(
                "files pattern {pattern:?} must be relative to files.base_dir and must not contain '..'"
            )));
        }
        let matcher = matcher(pattern)?;
        let (before, refused_before) = (sel.files.len(), sel.refused.len());
        // Only the pattern is a glob: `base_dir` is a plain path, whatever
        // characters its name holds. The walk starts at the pattern's
        // literal prefix and goes only as deep as the pattern can match.
        let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        let literal = parts.iter().take_while(|p| !p.contains(['*', '?', '[', '{'])).count();
        let start = parts[..literal].iter().fold(base.path.to_path_buf(), |at, p| at.join(p));
        let depth = if parts.iter().any(|p| p.contains("**")) { usize::MAX } else { parts.len() - literal };
        if let Some(r) = base.check_path(&start) {
            sel.refused.push(r);
        } else if literal == parts.len() {
            // A plain path: the file itself, or everything under a directory.
            if std::fs::metadata(&start).is_ok() {
                add(&base, &start, &mut sel)?;
            }
        } else if start.is_dir() {
            // Links the walk does not enter, and links it cannot follow.
            let (mut refused, mut broken) = (Vec::new(), Vec::new());
            let walk = WalkDir::new(&start).min_depth(1).max_depth(depth).follow_links(true).sort_by_file_name();
            // A link is refused only where the pattern would take it or
            // walk through it.
            let wanted = |path: &Path, is_dir: bool, at: usize| {
                matcher.is_match(relative(base.path, path)) || (is_dir && at < depth)
            };
            let walk = walk.into_iter().filter_entry(|e| match base.check(e.path()) {
                Link::Follow => true,
                Link::Skip => false,
                Link::Refuse(r) => {
                    if wanted(e.path(), e.file_type().is_dir(), e.depth()) {
                        refused.push(r);
                    }
                    false
                }
            });
            let mut found = Vec::new();
            for entry in walk {
                match entry {
                    Ok(e) => {
                        if matcher.is_match(relative(base.path, e.path())) {
                            found.push(e.into_path());
                        }
                    }
                    // A symlink back to an ancestor: everything under it is
                    // walked already, through the ancestor.
                    Err(e) if e.loop_ancestor().is_some() => continue,
                    Err(e) => match base.broken(&e) {
                        Some(r) => {
                            if wanted(e.path().expect("a link has a path"), false, e.depth()) {
                                broken.push(r);
                            }
                        }
                        None => {
                            let at = e.path().map(Path::to_path_buf).unwrap_or_else(|| start.clone());
                            return Err(Error::io("reading", at, std::io::Error::other(e.to_string())));
                        }
                    },
                }
            }
            sel.refused.extend(refused.into_iter().chain(broken));
            for path in found {
                add(&base, &path, &mut sel)?;
            }
        }
        let refused = sel.refused.len() > refused_before;
        if !refused && sel.files.len() == before && !sel.files.iter().any(|f| matcher.is_match(&f.path)) {
            sel.missing.push(MissingPattern { pattern: pattern.clone(), required });
        }
    }
    sel.files.sort_by(|a, b| a.path.cmp(&b.path));
    sel.files.dedup_by(|a, b| a.path == b.path);
    sel.refused.sort_by(|a, b| a.path.cmp(&b.path));
    sel.refused.dedup_by(|a, b| a.path == b.path);
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

/// Adds a file, or every file under a directory (links followed while they
/// stay inside `base_dir`; a link back to an ancestor is not followed).
fn add(base: &Base, path: &Path, sel: &mut FileSelection) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("reading config file", path, e))?;
    if meta.is_dir() {
        let (mut refused, mut broken) = (Vec::new(), Vec::new());
        let walk = WalkDir::new(path).min_depth(1).follow_links(true).sort_by_file_name();
        let walk = walk.into_iter().filter_entry(|e| match base.check(e.path()) {
            Link::Follow => true,
            Link::Skip => false,
            Link::Refuse(r) => {
                refused.push(r);
                false
            }
        });
        let mut files = Vec::new();
        for entry in walk {
            match entry {
                Ok(e) if e.file_type().is_dir() => {}
                Ok(e) => files.push(e.into_path()),
                Err(e) if e.loop_ancestor().is_some() => {}
                Err(e) => match base.broken(&e) {
                    Some(r) => broken.push(r),
                    None => {
                        let at = e.path().map(Path::to_path_buf).unwrap_or_else(|| path.to_path_buf());
                        return Err(Error::io("listing", at, std::io::Error::other(e.to_string())));
                    }
                },
            }
        }
        sel.refused.extend(refused.into_iter().chain(broken));
        for f in files {
            add_file(base.path, &f, &mut sel.files)?;
        }
        return Ok(());
    }
    add_file(base.path, path, &mut sel.files)
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

    // covers: FR-16.6
    #[test]
    fn links_out_of_base_dir_and_broken_links_are_refused_links_inside_followed() {
        let d = tempfile::tempdir().unwrap();
        let (b, out) = (d.path().join("base"), d.path().join("outside"));
        std::fs::create_dir_all(b.join("ssl")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("key.pem"), "SECRET").unwrap();
        std::fs::write(b.join("ssl/cert.pem"), "CERT").unwrap();
        std::os::unix::fs::symlink(out.join("key.pem"), b.join("ssl/key.pem")).unwrap();
        std::os::unix::fs::symlink("cert.pem", b.join("ssl/live.pem")).unwrap();
        std::os::unix::fs::symlink("nothing", b.join("ssl/gone.pem")).unwrap();
        std::os::unix::fs::symlink(&out, b.join("home")).unwrap();
        let cfg = FilesConfig {
            base_dir: Some(b.clone()),
            include: vec!["ssl/**".into(), "home".into(), "ssl/key.pem".into()],
            optional: vec![],
        };
        let sel = collect(&cfg).unwrap();
        let paths: Vec<&str> = sel.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["ssl/cert.pem", "ssl/live.pem"]);
        let refused: Vec<&str> = sel.refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(refused, ["home", "ssl/gone.pem", "ssl/key.pem"]);
        let key = sel.refused.iter().find(|r| r.path == "ssl/key.pem").unwrap().describe();
        let real = out.canonicalize().unwrap().join("key.pem");
        assert!(key.contains(&format!("points outside files.base_dir, to {}", real.display())), "{key}");
        assert!(sel.missing.is_empty(), "a refused link is not also missing: {:?}", sel.missing);
    }
}
