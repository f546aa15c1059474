//! Runs one SQL member of an archive (`schema.sql`, `sequences.sql`,
//! `constraints.sql`) on the target as it streams: one statement at a time
//! (see [`statements`](super::statements)), so memory does not grow with
//! the member, and byte for byte. psql's `\restrict` lines are skipped,
//! any other meta-command and the statements [`guard`](super::guard)
//! refuses stop the restore before they are sent, owner and privilege
//! statements go through [`Policy`], and the errors
//! keep their kind: the archive's fault (damaged, oversized) is not worth
//! retrying, a dropped connection is.

use std::collections::BTreeSet;
use std::io::{BufReader, Read};

use crate::pg::Client;

use super::owners::{self, Policy};
use super::statements::{is_copy_from_stdin, Item, SplitError, Statements};
use crate::archive::reader::ArchiveError;
use crate::error::{Error, Result};
use crate::pg::pg_dump::is_restrict_line;
use crate::pg::{copy_err, db_err, sqlstate};

/// Runs `path`'s statements in order, but those whose ordinal (counting
/// SQL statements from 1) is in `taken`: [`index_builds`] ran them already.
pub(super) fn run_member(
    client: &mut Client,
    path: &str,
    input: &mut dyn Read,
    policy: &mut Policy,
    taken: &BTreeSet<u64>,
) -> Result<()> {
    let mut statements = Statements::new(BufReader::with_capacity(256 * 1024, input));
    let mut ordinal = 0u64;
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
        ordinal += 1;
        if let Some(why) = super::guard::refusal(sql) {
            return Err(refused(path, line, &why));
        }
        if taken.contains(&ordinal) || policy.skip(sql) {
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

/// The index builds of a constraints member that `--jobs` runs over its
/// connections before the rest of the member runs in order (issue 24; what
/// `pg_restore --jobs` does too): `CREATE [UNIQUE] INDEX …` and `ALTER
/// TABLE ONLY … ADD CONSTRAINT … PRIMARY KEY | UNIQUE …`. pg_dump writes
/// them first in post-data, and nothing they need comes after them (the
/// foreign keys, triggers, `ATTACH PARTITION`, `CLUSTER ON`, the comments
/// on them all follow), so taking them ahead changes the order of nothing
/// that depends on them; each takes one table's lock, so two cannot
/// deadlock.
#[derive(Debug, Default, PartialEq)]
pub(super) struct IndexBuilds {
    /// The member's leading `SET`s (search_path and the like), for every
    /// connection that runs a build.
    pub preamble: Vec<String>,
    /// Each build with its line in the member.
    pub builds: Vec<(u64, String)>,
    /// Their ordinals, for [`run_member`] to skip.
    pub taken: BTreeSet<u64>,
}

/// At most this much SQL (preamble and index builds) is held for `--jobs`:
/// builds beyond it run in order, and a preamble beyond it makes every
/// build run in order.
const INDEX_BUILDS_BYTES: usize = 16 << 20;

/// `path`'s index builds (see [`IndexBuilds`]). None at all when the member
/// holds anything [`run_member`] refuses (it then refuses it before any
/// statement of the member ran, as without `--jobs`) or a `COPY`; none
/// while pg_dump has set a `default_tablespace` (a build on another
/// connection would not be in it).
pub(super) fn index_builds(path: &str, input: &mut dyn Read) -> Result<IndexBuilds> {
    index_builds_within(path, input, INDEX_BUILDS_BYTES)
}

/// [`index_builds`] holding at most `limit` bytes of SQL.
fn index_builds_within(path: &str, input: &mut dyn Read, limit: usize) -> Result<IndexBuilds> {
    let mut statements = Statements::new(BufReader::with_capacity(256 * 1024, input));
    let mut out = IndexBuilds::default();
    let (mut ordinal, mut bytes, mut preamble, mut tablespace) = (0u64, 0usize, true, false);
    loop {
        let (sql, line) = match statements.next_item().map_err(|e| split_error(path, e))? {
            None => return Ok(out),
            Some(Item::Meta { text, .. }) if is_restrict_line(text) => continue,
            Some(Item::Meta { .. }) => return Ok(IndexBuilds::default()),
            Some(Item::Sql { sql, line }) => (sql, line),
        };
        ordinal += 1;
        if super::guard::refusal(sql).is_some() || is_copy_from_stdin(sql) {
            return Ok(IndexBuilds::default());
        }
        let head: Vec<String> = sql.split_whitespace().take(8).map(str::to_ascii_lowercase).collect();
        let w = |i: usize| head.get(i).map_or("", String::as_str);
        let setting = (w(0) == "set" && owners::classify(sql).is_none())
            || (w(0) == "select" && w(1).starts_with("pg_catalog.set_config("));
        if w(0) == "set" && w(1).starts_with("default_tablespace") {
            // Not for the preamble: the builds taken are those made outside any tablespace.
            tablespace = !sql.trim_end().trim_end_matches(';').trim_end().ends_with("''");
            continue;
        }
        if preamble && setting {
            if bytes + sql.len() > limit {
                return Ok(IndexBuilds::default());
            }
            bytes += sql.len();
            out.preamble.push(sql.to_string());
            continue;
        }
        preamble = false;
        let build = match (w(0), w(1), w(2)) {
            ("create", "index", _) | ("create", "unique", "index") => true,
            ("alter", "table", "only") => {
                w(4) == "add" && w(5) == "constraint" && (w(7) == "primary" || w(7).starts_with("unique"))
            }
            _ => false,
        };
        if build && !tablespace && bytes + sql.len() <= limit {
            bytes += sql.len();
            out.builds.push((line, sql.to_string()));
            out.taken.insert(ordinal);
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

    fn builds(sql: &str) -> IndexBuilds {
        index_builds("database/constraints.sql", &mut sql.as_bytes()).unwrap()
    }

    // covers: FR-7.9
    #[test]
    fn jobs_take_pg_dumps_index_builds_ahead_and_leave_everything_else_in_order() {
        let member = "--\n-- PostgreSQL database dump\n--\n\\restrict abc\n\n\
            SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\
            SET client_min_messages = warning;\nSET default_tablespace = '';\n\n\
            --\n-- Name: users users_pkey; Type: CONSTRAINT; Schema: public; Owner: app\n--\n\n\
            ALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_pkey PRIMARY KEY (id);\n\n\
            ALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_email_key UNIQUE (email);\n\n\
            CREATE UNIQUE INDEX users_lower_email ON public.users USING btree (lower(email));\n\n\
            COMMENT ON INDEX public.users_lower_email IS 'one address, any case';\n\n\
            SET default_tablespace = fast;\n\n\
            CREATE INDEX logs_at ON public.logs USING btree (at);\n\n\
            SET default_tablespace = '';\n\n\
            CREATE INDEX orders_user ON ONLY public.orders USING btree (user_id);\n\n\
            ALTER INDEX public.orders_user ATTACH PARTITION public.orders_2026_user;\n\n\
            CREATE TRIGGER t BEFORE UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.touch();\n\n\
            ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_user_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);\n";
        let b = builds(member);
        // The primary key, the unique constraint and both indexes outside a
        // tablespace; not the one built while pg_dump had set one.
        assert_eq!(b.builds.len(), 4, "{:?}", b.builds);
        assert!(
            b.builds[0].1.contains("users_pkey PRIMARY KEY") && b.builds[1].1.contains("UNIQUE (email)"),
            "{:?}",
            b.builds
        );
        assert!(b.builds[2].1.starts_with("CREATE UNIQUE INDEX users_lower_email"), "{:?}", b.builds[2]);
        assert!(b.builds[3].1.starts_with("CREATE INDEX orders_user ON ONLY"), "{:?}", b.builds[3]);
        assert!(!b.builds.iter().any(|(_, s)| s.contains("logs_at") || s.contains("FOREIGN") || s.contains("TRIGGER")));
        assert_eq!(b.builds[0].0, 15, "the line of the statement");
        // Ordinals count SQL statements: 4 SETs come first.
        assert_eq!(b.taken.iter().copied().collect::<Vec<_>>(), [5, 6, 7, 12]);
        assert_eq!(b.preamble.len(), 3, "no default_tablespace in the preamble: {:?}", b.preamble);
        assert!(b.preamble[1].contains("search_path"));
    }

    // covers: FR-7.9, FR-7.12
    #[test]
    fn what_is_held_for_the_builds_is_bounded() {
        let within =
            |sql: &str, limit| index_builds_within("database/constraints.sql", &mut sql.as_bytes(), limit).unwrap();
        let set = "SET client_min_messages = warning;\n";
        let index = "CREATE INDEX a ON public.t USING btree (x);\n";
        // Held without their newlines: 34 and 43 bytes.
        assert_eq!(within(&format!("{set}{index}"), 77).builds.len(), 1);
        let b = within(&format!("{}{index}", set.repeat(3)), 101);
        assert!(b.preamble.is_empty() && b.builds.is_empty(), "a preamble past the bound takes no build: {b:?}");
        let b = within(&index.repeat(5), 3 * 43);
        assert_eq!(b.taken.iter().copied().collect::<Vec<_>>(), [1, 2, 3], "the builds past the bound run in order");
    }

    // covers: FR-7.9, FR-7.12
    #[test]
    fn a_member_with_anything_refused_or_a_copy_has_no_builds_taken_ahead() {
        let index = "CREATE INDEX a ON public.t USING btree (x);\n";
        assert_eq!(builds(index).builds.len(), 1);
        for bad in ["COPY public.t (x) FROM PROGRAM 'id';\n", "COPY public.t (x) FROM stdin;\n1\n\\.\n", "\\! id\n"] {
            let b = builds(&format!("{index}{bad}"));
            assert_eq!(b, IndexBuilds::default(), "{bad:?}");
        }
    }
}
