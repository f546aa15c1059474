//! libpq's password file (`~/.pgpass`, or `$PGPASSFILE`), read for the
//! targets of `restore --db` and `verify --restore-test` so their password
//! need not be on the command line. The `postgres` client does not read it.

use std::path::Path;

/// The password libpq's password file gives for a connection: the first
/// line of `hostname:port:database:username:password` whose fields match
/// (`*` matches anything; `\:` and `\\` are a literal colon and backslash;
/// `#` starts a comment line). `host` is the host as written in the URL
/// (`localhost` also stands for a Unix-socket connection, as in libpq).
pub fn lookup(text: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
    text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l)).filter(|l| !l.starts_with('#')).find_map(|line| {
        let [h, p, d, u, password] = <[String; 5]>::try_from(split_line(line)?).ok()?;
        (matches(&h, host) && matches(&p, &port) && matches(&d, database) && matches(&u, user)).then_some(password)
    })
}

/// The five fields of a line, unescaped; `None` when it has fewer. As in
/// libpq, everything after the fourth separator is the password (a colon
/// in it needs no escape, but may have one).
fn split_line(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

/// The password file's text, when it may be used: a regular file that
/// group and others cannot access. libpq ignores any other, and so does
/// lifeboat, with the same warning.
pub fn read(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        tracing::warn!("password file {} is not a plain file; it is ignored", path.display());
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file {} has group or world access; it is ignored (permissions should be u=rw: chmod 0600)",
            path.display()
        );
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("cannot read password file {}: {e}; it is ignored", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: SC-4.4
    #[test]
    fn lines_match_field_by_field_with_wildcards_escapes_and_comments() {
        let text = "# a comment\n\
                    db.example:5432:app:alice:first\n\
                    *:5433:*:bob:wild:card\n\
                    h\\:x:5432:*:carol:back\\\\slash\n\
                    localhost:*:*:*:sock\r\n\
                    short:line\n";
        assert_eq!(lookup(text, "db.example", 5432, "app", "alice").as_deref(), Some("first"));
        assert_eq!(lookup(text, "db.example", 5432, "other", "alice"), None, "the database must match");
        assert_eq!(lookup(text, "anyhost", 5433, "x", "bob").as_deref(), Some("wild:card"), "the rest is the password");
        assert_eq!(lookup(text, "h:x", 5432, "d", "carol").as_deref(), Some("back\\slash"));
        assert_eq!(lookup(text, "localhost", 1, "d", "u").as_deref(), Some("sock"));
        assert_eq!(lookup(text, "short", 5432, "line", "x"), None);
        assert_eq!(lookup("#db.example:5432:app:alice:no\n", "db.example", 5432, "app", "alice"), None);
    }

    // covers: SC-4.4
    #[test]
    fn a_file_others_can_read_is_ignored_like_libpq_does() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(&f, "*:*:*:*:pw\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read(&f).is_some());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read(&f).is_none());
        assert!(read(dir.path()).is_none(), "a directory");
        assert!(read(&dir.path().join("missing")).is_none());
    }
}
