//! Runs one SQL member of an archive (`schema.sql`, `sequences.sql`,
//! `constraints.sql`) on the target as it streams: one statement at a time
//! (see [`statements`](super::statements)), so memory does not grow with
//! the member, and byte for byte. psql's `\restrict` lines are skipped,
//! owner and privilege statements go through [`Policy`], and the errors
//! keep their kind: the archive's fault (damaged, oversized) is not worth
//! retrying, a dropped connection is.

use std::io::{BufReader, Read};

use postgres::Client;

use super::owners::{self, Policy};
use super::statements::{is_copy_from_stdin, Item, SplitError, Statements};
use crate::archive::reader::ArchiveError;
use crate::error::{Error, Result};
use crate::pg::pg_dump::is_restrict_line;
use crate::pg::{db_err, sqlstate};

pub(super) fn run_member(client: &mut Client, path: &str, input: &mut dyn Read, policy: &mut Policy) -> Result<()> {
    let mut statements = Statements::new(BufReader::with_capacity(256 * 1024, input));
    loop {
        let (sql, line) = match statements.next_item().map_err(|e| split_error(path, e))? {
            None => return Ok(()),
            Some(Item::Meta { text, .. }) if is_restrict_line(text) => continue,
            Some(Item::Meta { text, line }) => {
                let name: String = text.split_whitespace().next().unwrap_or("").chars().take(40).collect();
                return Err(Error::Archive(ArchiveError::Member {
                    path: path.into(),
                    reason: format!(
                        "line {line}: psql meta-command {name} is not SQL, and lifeboat restore runs SQL only; \
                         restore this archive with psql -f database/restore.sql"
                    ),
                }));
            }
            Some(Item::Sql { sql, line }) => (sql, line),
        };
        if policy.skip(sql) {
            continue;
        }
        let context = || format!("executing {path} (statement at line {line})");
        if is_copy_from_stdin(sql) {
            let sql = sql.trim_end().trim_end_matches(';').to_string();
            let mut w = client.copy_in(&sql).map_err(db_err(context()))?;
            statements.copy_data(&mut w).map_err(|e| match e {
                SplitError::Write(e) => write_error(context(), e),
                other => split_error(path, other),
            })?;
            w.finish().map_err(db_err(context()))?;
            continue;
        }
        if let Err(e) = client.batch_execute(sql) {
            let denied = sqlstate(&e) == Some("42501") && owners::classify(sql).is_some();
            return Err(match db_err(context())(e) {
                Error::Db { context, message, retryable } if denied => Error::Db {
                    context,
                    message: format!(
                        "{message}; setting owners and privileges needs a superuser or a member of the roles \
                         they name: restore as one, or pass --no-owner"
                    ),
                    retryable,
                },
                other => other,
            });
        }
    }
}

/// What the splitter refused, as the archive's fault.
fn split_error(path: &str, e: SplitError) -> Error {
    match e {
        SplitError::Io(source) | SplitError::Write(source) => {
            Error::Archive(ArchiveError::Corrupt { at: Some(path.to_string()), source })
        }
        e => Error::Archive(ArchiveError::Member {
            path: path.into(),
            reason: format!(
                "{e}; pg_dump writes no such SQL, so the archive was altered or not written by lifeboat \
                 (if you trust it, restore it with psql -f database/restore.sql)"
            ),
        }),
    }
}

/// A failed write of COPY data to the server: its own error when it sent
/// one (kind and retryability from the SQLSTATE), else the connection
/// failed, which is worth retrying.
pub(super) fn write_error(context: String, e: std::io::Error) -> Error {
    let message = e.to_string();
    match e.into_inner().map(|inner| inner.downcast::<postgres::Error>()) {
        Some(Ok(pg)) => db_err(context)(*pg),
        _ => Error::Db { context, message, retryable: true },
    }
}

/// Copies `from` to `to`, telling a failed read (the archive: damaged,
/// not worth retrying) from a failed write (the server or the connection).
pub(super) fn pump(
    from: &mut dyn Read,
    to: &mut dyn std::io::Write,
    member: &str,
    context: impl Fn() -> String,
) -> Result<u64> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(Error::Archive(ArchiveError::Corrupt { at: Some(member.to_string()), source })),
        };
        to.write_all(&buf[..n]).map_err(|e| write_error(context(), e))?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader or writer that fails: a real broken link or a damaged
    /// member mid-read cannot be produced on demand in a unit test.
    struct Failing(std::io::ErrorKind);

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }
    }

    impl std::io::Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    // covers: FR-7.13
    #[test]
    fn a_failed_write_to_the_server_is_retryable_and_a_failed_read_of_the_archive_is_not() {
        let ctx = || "loading rows of public.t from database/data/public.t.csv".to_string();
        let mut sink = Vec::new();
        let e = pump(&mut Failing(std::io::ErrorKind::InvalidData), &mut sink, "database/data/public.t.csv", ctx)
            .unwrap_err();
        assert!(matches!(e, Error::Archive(ArchiveError::Corrupt { .. })), "{e:?}");
        assert!(!e.is_retryable() && e.exit_code() == 1 && e.to_string().contains("public.t.csv"), "{e}");

        let e = pump(&mut &b"1,a\n"[..], &mut Failing(std::io::ErrorKind::BrokenPipe), "m", ctx).unwrap_err();
        assert!(matches!(e, Error::Db { retryable: true, .. }), "{e:?}");
        assert!(e.is_retryable() && e.to_string().starts_with("loading rows of public.t"), "{e}");
        assert_eq!(pump(&mut &b"abc"[..], &mut sink, "m", ctx).unwrap(), 3);
    }

    // covers: FR-7.12
    #[test]
    fn an_oversized_statement_is_the_archives_fault_and_names_the_member() {
        let e = split_error("database/schema.sql", SplitError::TooLarge { line: 7, limit: 64 << 20 });
        let msg = e.to_string();
        assert!(msg.contains("database/schema.sql") && msg.contains("line 7") && msg.contains("64 MiB"), "{msg}");
        assert!(!e.is_retryable() && e.exit_code() == 1);
    }
}
