//! The engine's error type. Every variant names what failed and what to do
//! next; [`Error::exit_code`] and [`Error::is_retryable`] are what the CLI
//! and (later) the daemon's retry policy read.

use std::path::PathBuf;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error(
        "cannot connect to PostgreSQL at {target}: {message}; check that the server is running, then check {hint}"
    )]
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
    PgDump { section: String, status: String, stderr: String },

    #[error("required config file missing: {pattern} matched nothing under {base}; create it, fix files.include, or move the pattern to files.optional")]
    FileMissing { pattern: String, base: PathBuf },

    #[error("{context} {path}: {source}")]
    Io { context: String, path: PathBuf, source: std::io::Error },

    #[error(transparent)]
    Archive(#[from] crate::archive::reader::ArchiveError),

    #[error("{0}")]
    Invalid(String),

    #[error("{0}")]
    Refused(String),

    /// Another run holds the storage directory: nothing was done, and trying
    /// again after it finishes works.
    #[error("{0}")]
    Busy(String),

    #[error("{0}")]
    Failed(String),

    /// An error and what it left behind (`The restore was rolled back: …`).
    /// Exit code and retryability are the inner error's: wrapping must not
    /// turn a dropped connection into a final failure.
    #[error("{source}\n{outcome}")]
    Outcome { source: Box<Error>, outcome: String },
}

impl Error {
    pub fn io(context: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), path: path.into(), source }
    }

    /// `self`, followed by a line saying what it left behind.
    pub fn with_outcome(self, outcome: impl Into<String>) -> Self {
        Error::Outcome { source: Box::new(self), outcome: outcome.into() }
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
            Error::Outcome { source, .. } => source.exit_code(),
            _ => 1,
        }
    }

    /// Whether trying the same thing again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::LockTimeout { .. }
            | Error::Stalled { .. }
            | Error::Cancelled { .. }
            | Error::PgDump { .. }
            | Error::Busy(_) => true,
            Error::Db { retryable, .. } | Error::Connect { retryable, .. } => *retryable,
            Error::Outcome { source, .. } => source.is_retryable(),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One error of every kind a restore meets, with its exit code and
    /// retryability: the wraps below must keep both.
    pub(crate) fn one_of_each_kind() -> Vec<Error> {
        let io = |k: std::io::ErrorKind| Error::io("writing", "/restore/x", k.into());
        vec![
            Error::Connect {
                target: "db:5432/t".into(),
                message: "connection refused".into(),
                retryable: true,
                hint: "the --db URL".into(),
            },
            Error::Connect {
                target: "db:5432/t".into(),
                message: "FATAL: password authentication failed".into(),
                retryable: false,
                hint: "the --db URL".into(),
            },
            Error::Db { context: "executing x".into(), message: "terminating connection".into(), retryable: true },
            Error::Db { context: "executing x".into(), message: "ERROR: syntax error".into(), retryable: false },
            Error::Refused("config file a: is a symlink".into()),
            Error::Cancelled { doing: "restoring".into() },
            Error::Busy("another run".into()),
            io(std::io::ErrorKind::Other),
            io(std::io::ErrorKind::NotFound),
            Error::Archive(crate::archive::reader::ArchiveError::Corrupt {
                at: Some("database/data/public.t.csv".into()),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            }),
            Error::Failed("row counts differ".into()),
        ]
    }

    // covers: FR-7.13
    #[test]
    fn an_outcome_keeps_the_kind_exit_code_and_retryability_of_its_error() {
        for e in one_of_each_kind() {
            let (code, retry, text) = (e.exit_code(), e.is_retryable(), e.to_string());
            let wrapped = e.with_outcome("The restore was rolled back.").with_outcome("And said so twice.");
            assert_eq!((wrapped.exit_code(), wrapped.is_retryable()), (code, retry), "{text}");
            assert_eq!(wrapped.to_string(), format!("{text}\nThe restore was rolled back.\nAnd said so twice."));
        }
        // The list covers both answers of both questions.
        let all = one_of_each_kind();
        for (code, retry) in [(1, true), (1, false), (2, true), (2, false)] {
            assert!(all.iter().any(|e| (e.exit_code(), e.is_retryable()) == (code, retry)), "{code} {retry}");
        }
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
