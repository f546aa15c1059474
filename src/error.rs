//! The engine's error type. Every variant names what failed and what to do
//! next; [`Error::exit_code`] and [`Error::is_retryable`] are what the CLI
//! and the daemon's retry policy read.
//!
//! This is the bottom floor: it imports nothing from the crate. The error
//! types of the floors above that [`Error`] carries ([`ConfigError`],
//! [`ArchiveError`], [`DecryptError`]) live here too, and their modules
//! re-export them (`config::ConfigError`, `archive::reader::ArchiveError`,
//! `crypt::DecryptError`), so no import circle runs through this file.
//!
//! **One enum of kinds, not `Error { kind, retryable }`.** A struct with a
//! `kind` and a `retryable` flag would let any call site pair any kind with
//! any retryability; here a variant decides both ([`Error::exit_code`],
//! [`Error::is_retryable`] are one `match` each, read in one place), and
//! only the variants whose cause decides (a dropped connection versus a bad
//! password, a failed request versus a refused one) carry a `retryable`
//! field set where that cause is known. [`Error::Noted`] adds context
//! without changing the kind. What this asks of every caller: wrap a typed
//! error in its own variant, never in [`Error::Failed`], which is only for
//! failures no other variant describes (a library's opaque error, a
//! broken invariant).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("cannot connect to PostgreSQL at {target}: {message}; {hint}")]
    /// `hint` is the next step, chosen by what went wrong (server down,
    /// host unknown, password refused, database missing, …).
    Connect { target: String, message: String, retryable: bool, hint: String },

    #[error("{context}: {message}")]
    Db { context: String, message: String, retryable: bool },

    #[error("timed out after {timeout} waiting for a lock on table {table}: another session holds a conflicting lock (a migration or VACUUM FULL?); retry later or raise database.lock_timeout")]
    LockTimeout { table: String, timeout: String },

    #[error("no progress for {timeout} while {doing}; the run was stopped so it cannot hold locks indefinitely (raise database.stall_timeout if this step is legitimately slow)")]
    Stalled { doing: String, timeout: String },

    /// The run's [`CancelToken`](crate::events::CancelToken) was tripped
    /// (shutdown, or an operator): stopped cleanly, nothing half-written kept.
    #[error("cancelled while {doing}: the run was stopped on request; no archive was written and pg_dump was stopped. Start it again when ready")]
    Cancelled { doing: String },

    #[error("the configuration does not match the database: {0}")]
    Scope(String),

    #[error(
        "pg_dump not found (tried: {tried}); install postgresql-client-{major} (or newer) or set database.pg_dump"
    )]
    PgDumpMissing { tried: String, major: u32 },

    #[error("pg_dump {pg_dump} cannot dump server {server}: install postgresql-client-{major} (or newer) in the backup image, or point database.pg_dump at it")]
    PgDumpTooOld { pg_dump: String, server: String, major: u32 },

    #[error(
        "pg_dump ({section}) failed with {status}:\n----- pg_dump stderr -----\n{stderr}\n--------------------------"
    )]
    PgDump { section: String, status: String, stderr: String, retryable: bool },

    #[error("required config file missing: {pattern} matched nothing under {base}; create it, fix files.include, or move the pattern to files.optional")]
    FileMissing { pattern: String, base: PathBuf },

    #[error("{context} {path}: {source}; the backup needs about {needed} MB free there (the plan's estimate: the archive plus the largest table's rows, which wait uncompressed in a temporary file): free space, or point storage.dir at a larger disk")]
    DiskFull { context: String, path: PathBuf, source: std::io::Error, needed: u64 },

    #[error("{context} {path}: {source}")]
    Io { context: String, path: PathBuf, source: std::io::Error },

    #[error(transparent)]
    Archive(#[from] ArchiveError),

    /// The run history (SQLite) could not be opened, read or written.
    #[error("run history {}: {message}; check that the storage directory is writable and has space", path.display())]
    History { path: PathBuf, message: String, retryable: bool },

    #[error("{0}")]
    Invalid(String),

    #[error("{0}")]
    Refused(String),

    /// Another run holds the storage directory: nothing was done, and trying
    /// again after it finishes works.
    #[error("{0}")]
    Busy(String),

    /// A failure no other variant describes (a library's opaque error);
    /// never a wrapper for an error that has a kind of its own.
    #[error("{0}")]
    Failed(String),

    /// The run outlived `schedule.run_timeout` and was stopped while
    /// `doing` (FR-1.6): a failure of the run, not a shutdown.
    #[error(
        "the run took longer than schedule.run_timeout ({limit}) and was stopped while {doing}; no archive of it was \
         kept. Find what made it slow (a lock held by a migration? a stalled network?) or raise schedule.run_timeout"
    )]
    TimedOut { limit: String, doing: String },

    /// The archive just written did not pass its own verification, so it
    /// was discarded: the archive's error, told as the backup's.
    #[error("the archive just written failed verification, so it was discarded: {0}")]
    Unverified(ArchiveError),

    /// The offsite store (S3-compatible) failed a request or could not be
    /// reached: names the object (`s3://bucket/key`) and the endpoint.
    #[error("{doing} {object} at {endpoint}: {message}; {hint}")]
    Remote { doing: String, object: String, endpoint: String, message: String, hint: String, retryable: bool },

    /// `source`, followed by what it left behind (`The restore was rolled
    /// back: …`). The kind is the source's: exit code and retryability are
    /// read through, so wrapping never turns a lost connection into a
    /// permanent failure or a refusal into a crash.
    #[error("{source}\n{note}")]
    Noted { source: Box<Error>, note: String },
}

impl Error {
    pub fn io(context: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), path: path.into(), source }
    }

    /// A full disk (or quota) while writing a backup, told with the space
    /// the plan estimates it needs (`bytes`); any other error unchanged.
    pub fn with_space_needed(self, bytes: u64) -> Self {
        match self {
            Error::Io { context, path, source }
                if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded) =>
            {
                Error::DiskFull { context, path, source, needed: bytes.div_ceil(1_000_000).max(1) }
            }
            e => e,
        }
    }

    /// `self` with `note` on a line of its own after it, keeping its kind.
    pub fn noted(self, note: impl Into<String>) -> Self {
        Error::Noted { source: Box::new(self), note: note.into() }
    }

    /// The process exit code: 2 when nothing could be done (configuration,
    /// connection, refused input), 1 when the operation ran and failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_)
            | Error::Connect { .. }
            | Error::Scope(_)
            | Error::PgDumpMissing { .. }
            | Error::PgDumpTooOld { .. }
            | Error::Refused(_)
            | Error::Busy(_) => 2,
            Error::Archive(a) => a.exit_code(),
            Error::Noted { source, .. } => source.exit_code(),
            _ => 1,
        }
    }

    /// Whether trying the same thing again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::LockTimeout { .. } | Error::Stalled { .. } | Error::Cancelled { .. } | Error::Busy(_) => true,
            Error::Db { retryable, .. }
            | Error::Connect { retryable, .. }
            | Error::PgDump { retryable, .. }
            | Error::History { retryable, .. }
            | Error::Remote { retryable, .. } => *retryable,
            // Someone has to make room first.
            Error::DiskFull { .. } => false,
            Error::Noted { source, .. } => source.is_retryable(),
            Error::Io { source, .. } => {
                !matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied)
            }
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Text as it may reach a terminal: every control character except the
/// newline is escaped (`\u{1b}`, `\t`). Names come from databases, archives
/// and config files, and an ESC in a table name must not recolour or clear
/// the operator's screen. Messages may span lines (pg_dump's stderr), so
/// `\n` stays. The one helper every printed message goes through.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

// ---- the errors of the floors above, kept here so `Error` can hold them
// without importing upward.

/// The configuration cannot be read or is invalid (the `config` module's
/// error; exit code 2, never retryable).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; pass an existing file with --config or LIFEBOAT_CONFIG")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("cannot read secret file {} (from {origin}): {problem}; point {origin} at a regular file that holds only the secret (a Docker secret such as /run/secrets/db_password)", path.display())]
    SecretFile { origin: String, path: PathBuf, problem: String },
    #[error(
        "invalid database URL (from {origin}): {message}; expected postgres://user[:password]@host[:port]/database"
    )]
    Url { origin: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// An archive cannot be opened or read, or is not what a lifeboat archive
/// may be (the hardened reader's error, `archive::reader`).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot open archive {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("archive is damaged or truncated{}: {source}", at.as_ref().map(|m| format!(" (after member {})", shown(m))).unwrap_or_default())]
    Corrupt { at: Option<String>, source: std::io::Error },
    #[error("member \"{}\" is refused: {reason}", shown(path))]
    Unsafe { path: String, reason: String },
    #[error("member {}: {reason}", shown(path))]
    Member { path: String, reason: String },
    #[error("data after the end of the archive: {0}")]
    Trailing(String),
    #[error(transparent)]
    Encrypted(#[from] DecryptError),
    /// The signature check refused the archive (see `archive::signature`).
    #[error("{0}")]
    Signature(String),
    /// `--trusted-key` cannot be used.
    #[error("{0}")]
    Key(String),
    #[error("{0}")]
    Other(String),
}

impl ArchiveError {
    /// 2 when the archive could not be opened at all, 1 when it is bad.
    pub fn exit_code(&self) -> u8 {
        match self {
            ArchiveError::Open { .. } | ArchiveError::Encrypted(_) | ArchiveError::Key(_) => 2,
            _ => 1,
        }
    }
}

/// An age-encrypted archive cannot be decrypted (`crypt`).
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error("{archive} is age-encrypted; pass --identity FILE (the age identity whose public key is in [encryption] recipients), or decrypt it first: age -d -i IDENTITY_FILE -o archive.tar.gz {archive}")]
    NeedIdentity { archive: String },
    #[error(
        "cannot read the age identity file {path}: {message}; pass a file made by age-keygen (lines AGE-SECRET-KEY-1…)"
    )]
    Identity { path: String, message: String },
    #[error("cannot decrypt {archive} with the identity in {identity}: {message}")]
    Decrypt { archive: String, identity: String, message: String },
}

/// How much of a name an error message shows.
pub(crate) const SHOWN_CHARS: usize = 120;

/// A member name as messages show it: control and bidirectional-override
/// characters escaped (`\u{1b}`) so a crafted name cannot drive the
/// terminal, `\` and `"` too so the escapes stay unambiguous, and cut after
/// 120 characters. Other text (Thai, say) is kept as it is.
pub fn shown(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i == SHOWN_CHARS {
            out.push_str(&format!("… ({} bytes in all)", name.len()));
            break;
        }
        let invisible = matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || invisible || c == '\\' || c == '"' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One error of each kind a restore wraps, with its exit code and
    /// retryability.
    pub(crate) fn kinds() -> Vec<(&'static str, Error, u8, bool)> {
        let io = |kind| std::io::Error::new(kind, "x");
        let db = |retryable| Error::Db { context: "loading rows".into(), message: "m".into(), retryable };
        vec![
            (
                "lost connection",
                Error::Connect { target: "t".into(), message: "m".into(), retryable: true, hint: "h".into() },
                2,
                true,
            ),
            ("server closed the connection mid-COPY", db(true), 1, true),
            ("constraint violation", db(false), 1, false),
            ("lock timeout", Error::LockTimeout { table: "t".into(), timeout: "1s".into() }, 1, true),
            ("spool disk full", Error::io("spooling", "/x", io(std::io::ErrorKind::StorageFull)), 1, true),
            ("spool dir missing", Error::io("spooling", "/x", io(std::io::ErrorKind::NotFound)), 1, false),
            ("refused config destination", Error::Refused("r".into()), 2, false),
            ("hostile member", Error::Archive(ArchiveError::Unsafe { path: "p".into(), reason: "r".into() }), 1, false),
            (
                "archive gone",
                Error::Archive(ArchiveError::Open { path: "p".into(), source: io(std::io::ErrorKind::NotFound) }),
                2,
                false,
            ),
            ("damaged member", Error::Failed("f".into()), 1, false),
            // Typed now, but as `Failed` was: exit code 1, not retried.
            ("run timeout", Error::TimedOut { limit: "1h".into(), doing: "copying t".into() }, 1, false),
            (
                "own archive failed its check",
                Error::Unverified(ArchiveError::Open { path: "p".into(), source: io(std::io::ErrorKind::NotFound) }),
                1,
                false,
            ),
        ]
    }

    // covers: FR-7.4, FR-7.9, NFR-4.1
    #[test]
    fn a_noted_error_keeps_the_kind_of_what_it_wraps() {
        for (what, e, code, retryable) in kinds() {
            assert_eq!((e.exit_code(), e.is_retryable()), (code, retryable), "{what} itself");
            let text = e.to_string();
            // Twice, as a failed parallel restore whose cleanup is noted too.
            let noted = e.noted("The restore was rolled back: t is as it was before.").noted("and more");
            assert_eq!((noted.exit_code(), noted.is_retryable()), (code, retryable), "{what} noted");
            assert_eq!(
                noted.to_string(),
                format!("{text}\nThe restore was rolled back: t is as it was before.\nand more")
            );
        }
    }

    // covers: FR-1.6
    #[test]
    fn typed_timeout_and_self_check_errors_read_as_the_text_they_replaced() {
        let e = Error::TimedOut { limit: "2h".into(), doing: "copying public.t".into() };
        assert_eq!(
            e.to_string(),
            "the run took longer than schedule.run_timeout (2h) and was stopped while copying public.t; no archive \
             of it was kept. Find what made it slow (a lock held by a migration? a stalled network?) or raise \
             schedule.run_timeout"
        );
        let e = Error::Unverified(ArchiveError::Member { path: "database/t.csv".into(), reason: "3 rows".into() });
        assert_eq!(
            e.to_string(),
            "the archive just written failed verification, so it was discarded: member database/t.csv: 3 rows"
        );
    }

    // covers: FR-24.5
    #[test]
    fn printable_escapes_control_characters_but_keeps_lines() {
        assert_eq!(printable("plain text\nline two"), "plain text\nline two");
        assert_eq!(printable("evil\x1b[2J\x07name\ttab\r"), "evil\\u{1b}[2J\\u{7}name\\ttab\\r");
        assert_eq!(printable("del\x7f c1\u{9b}"), "del\\u{7f} c1\\u{9b}");
        assert_eq!(printable("ไทย ok"), "ไทย ok");
    }
}
