//! Runs one SQL member of an archive (`schema.sql`, `sequences.sql`,
//! `constraints.sql`) on the target as it streams: one statement at a time
//! (see [`statements`](super::statements)), so memory does not grow with
//! the member, and byte for byte. psql's `\restrict` lines are skipped,
//! any other meta-command and the statements [`guard`](super::guard)
//! refuses stop the restore before they are sent, owner and privilege
//! statements go through [`Policy`], and the errors
//! keep their kind: the archive's fault (damaged, oversized) is not worth
//! retrying, a dropped connection is.

use std::io::{BufReader, Read};

use crate::pg::Client;

use super::owners::{self, Policy};
use super::statements::{is_copy_from_stdin, Item, SplitError, Statements};
use crate::archive::reader::ArchiveError;
use crate::error::{Error, Result};
use crate::pg::pg_dump::is_restrict_line;
use crate::pg::{copy_err, db_err, sqlstate};

pub(super) fn run_member(client: &mut Client, path: &str, input: &mut dyn Read, policy: &mut Policy) -> Result<()> {
    let mut statements = Statements::new(BufReader::with_capacity(256 * 1024, input));
    loop {
        let (sql, line) = match statements.next_item().map_err(|e| split_error(path, e))? {
            None => return Ok(()),
            Some(Item::Meta { text, .. }) if is_restrict_line(text) => continue,
            Some(Item::Meta { text, line }) => {
                let name: String = text.split_whitespace().next().unwrap_or("").chars().take(40).collect();
                return Err(refused(
                    path,
                    line,
                    &format!(
                        "psql meta-command {name}: pg_dump writes none but \\restrict and \\unrestrict, and one \
                         such as \\! runs a shell command"
                    ),
                ));
            }
            Some(Item::Sql { sql, line }) => (sql, line),
        };
        if let Some(why) = super::guard::refusal(sql) {
            return Err(refused(path, line, &why));
        }
        if policy.skip(sql) {
            continue;
        }
        let context = || format!("executing {path} (statement at line {line})");
        if is_copy_from_stdin(sql) {
            let sql = sql.trim_end().trim_end_matches(';').to_string();
            let mut w = client.copy_in(&sql).map_err(db_err(context()))?;
            statements.copy_data(&mut w).map_err(|e| match e {
                SplitError::Write(e) => copy_err(context())(e),
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

/// A statement the restore will not run, as the archive's fault. It does
/// not point at psql: psql would run the very thing refused.
fn refused(path: &str, line: u64, why: &str) -> Error {
    Error::Archive(ArchiveError::Member {
        path: path.into(),
        reason: format!(
            "line {line}: refused: {why}. The archive was altered or was \
             not written by lifeboat and pg_dump: do not restore it by any other means (psql included) \
             before finding out where it came from"
        ),
    })
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
                "{e}; pg_dump writes no such SQL, so the archive was altered or not written by lifeboat: do not \
                 restore it by any other means (psql included) before finding out where it came from"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-7.12
    #[test]
    fn an_oversized_statement_is_the_archives_fault_and_names_the_member() {
        let e = split_error("database/schema.sql", SplitError::TooLarge { line: 7, limit: 64 << 20 });
        let msg = e.to_string();
        assert!(msg.contains("database/schema.sql") && msg.contains("line 7") && msg.contains("64 MiB"), "{msg}");
        assert!(!e.is_retryable() && e.exit_code() == 1);
    }
}
