//! The load itself, inside the transaction `restore_verified` opened: one
//! pass over the compressed stream — schema, rows (COPY FROM STDIN, each
//! member re-hashed on the way), sequences, constraints — then row counts
//! against the manifest (`ANALYZE` follows the commit: see
//! [`analyze`](super::analyze)). With `--jobs N` rows are spooled and
//! handed to [`parallel`](super::parallel).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::Instant;

use crate::pg::Client;

use super::config_files::Staged;
use super::owners::Policy;
use super::{parallel, phase, sql, target, RestoreOptions, TableCheck};
use crate::archive::reader::{for_each_member_of, ArchiveError, Hashing, Source};
use crate::archive::{self, Manifest, ManifestTable};
use crate::error::{Error, Result};
use crate::events::{CancelToken, CountingReader, Event, Progress};
use crate::pg::{copy_err, db_err};

// size: one pass over the archive whose callback shares the pass's state
// (step and phases, the FREEZE set, staged files, counts, deferred members)
// with the scope that owns the --jobs loader threads; split, each piece
// would travel as an argument of its own.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
pub(super) fn load(
    client: &mut Client,
    target: &crate::config::Target,
    source: &Source,
    manifest: &Manifest,
    existing: &BTreeMap<String, Vec<String>>,
    opts: &RestoreOptions,
    spool: Option<parallel::Spool>,
    selected: &dyn Fn(&ManifestTable) -> bool,
    phases: &mut Vec<(String, u64)>,
    since: &mut Instant,
    progress: Progress,
    cancel: &CancelToken,
) -> Result<(Vec<TableCheck>, Option<Staged>, Policy)> {
    let mut policy = Policy::for_target(client, opts.no_owner)?;
    client.batch_execute(BULK_LOAD).map_err(db_err("setting the restore session up for a bulk load"))?;
    if !existing.is_empty() {
        target::drop_existing(client, existing)?;
        phase(phases, "drop", since);
    }

    let by_file: BTreeMap<&str, &ManifestTable> =
        manifest.tables.iter().filter_map(|t| Some((t.file.as_deref()?, t))).collect();
    let expected = expected_hashes(manifest);
    let modes = file_modes(manifest);
    let mut staged = opts.config_dir.as_deref().map(Staged::new).transpose()?;
    let mut copied: BTreeMap<String, u64> = BTreeMap::new();
    // --jobs > 1: the schema is committed at once so other connections see
    // it; each table's rows are spooled and handed to the loaders while the
    // pass goes on; sequences and constraints wait until the rows are in.
    let loaders = spool.as_ref().map(|_| parallel::Loaders::new());
    let mut deferred: Vec<(String, tempfile::TempPath)> = Vec::new();
    let mut step = "";
    // Tables this restore created (see `plain_tables`), known once the schema is in.
    let mut freeze: Option<BTreeSet<(String, String)>> = None;
    let identities = opts.verify.identities().map_err(ArchiveError::from)?;
    let pass = std::thread::scope(|scope| {
        if let Some(l) = &loaders {
            // No more connections than tables to load (a server's max_connections is finite).
            let tables = by_file.values().filter(|t| selected(t)).count();
            l.start(scope, target, usize::from(opts.jobs).min(tables), progress, cancel);
        }
        // The loaders exit once the queue is closed: on every way out of the pass.
        let _closing = loaders.as_ref().map(parallel::Closing);
        let mut run = |member: &archive::reader::Member, r: &mut dyn Read| -> Result<()> {
            let path = member.path.as_str();
            cancel.check(&format!("restoring {path}"))?;
            let Some(sha) = expected.get(path) else { return Ok(()) };
            let mut counted;
            let r: &mut dyn Read = if by_file.contains_key(path) {
                counted = CountingReader::new(r, progress);
                &mut counted
            } else {
                r
            };
            let mut h = Hashing::new(r);
            if path == archive::SCHEMA || path == archive::SEQUENCES || path == archive::CONSTRAINTS {
                let name = sql_step(path);
                if step != name {
                    if !step.is_empty() {
                        phase(phases, step, since);
                    }
                    step = name;
                    progress(Event::Step(name));
                }
                if let (true, Some(spool)) = (path != archive::SCHEMA, spool.as_ref()) {
                    let file = spool.add_sql(path, &mut h)?;
                    check_sha(path, h, sha)?;
                    deferred.push((path.to_string(), file));
                    return Ok(());
                }
                // Streamed, so the hash is known only at the end: a member
                // changed since it was verified fails here, inside the
                // transaction, before anything is committed.
                sql::run_member(client, path, &mut h, &mut policy, &BTreeSet::new())?;
                check_sha(path, h, sha)?;
                if loaders.is_some() {
                    client.batch_execute("COMMIT; BEGIN").map_err(db_err("committing the schema"))?;
                }
            } else if let Some(t) = by_file.get(path) {
                if step != "data" {
                    phase(phases, step, since);
                    step = "data";
                    progress(Event::Step("data"));
                    let with_rows = || by_file.values().filter(|t| selected(t));
                    progress(Event::Totals {
                        bytes: with_rows().map(|t| t.bytes).sum(),
                        rows: with_rows().map(|t| t.rows).sum(),
                    });
                }
                if !selected(t) {
                    return Ok(());
                }
                if freeze.is_none() {
                    freeze = Some(plain_tables(client)?);
                }
                let created_here = freeze.as_ref().is_some_and(|f| f.contains(&(t.schema.clone(), t.name.clone())));
                if let (Some(spool), Some(loaders)) = (spool.as_ref(), loaders.as_ref()) {
                    let rows = spool.add(t, &mut h)?;
                    // Handed to a loader only once its hash is proven.
                    check_sha(path, h, sha)?;
                    return loaders.send(parallel::Job { table: (*t).clone(), rows, created_here });
                }
                let rows = copy_in(client, t, path, created_here, &mut h)?;
                check_sha(path, h, sha)?;
                progress(Event::Table { name: t.display(), rows, closure_rows: t.closure_rows, bytes: t.bytes });
                copied.insert(path.to_string(), rows);
            } else if let (Some(rel), Some(staged)) = (path.strip_prefix(archive::CONFIG_DIR), staged.as_mut()) {
                staged.add(rel, modes.get(path).copied().unwrap_or(0o600), &mut h)?;
                check_sha(path, h, sha)?;
            }
            Ok(())
        };
        let pass = for_each_member_keeping_errors(source, identities.as_ref(), &mut run);
        phase(phases, step, since);
        if pass.is_ok() && loaders.is_some() {
            // What is left: the loads still running when the pass ended.
            progress(Event::Step("parallel data"));
        }
        pass
    });
    match loaders {
        Some(loaders) => {
            copied.extend(loaders.finish(pass)?);
            phase(phases, "parallel data", since);
            run_deferred(client, target, &deferred, &mut policy, usize::from(opts.jobs), progress, cancel)?;
            phase(phases, "sequences and constraints", since);
        }
        None => pass?,
    }
    warn_missing_roles(&policy, progress);
    let checks = row_checks(manifest, selected, &copied);
    phase(phases, "check", since);
    Ok((checks, staged, policy))
}

/// The config files' modes. They come from manifest.json, which SHA256SUMS
/// covers, not from tar headers, which nothing does. Never setuid, setgid or
/// sticky: a config file needs none, and a tampered archive must not plant one.
fn file_modes(manifest: &Manifest) -> BTreeMap<&str, u32> {
    manifest.files.iter().map(|f| (f.path.as_str(), f.mode.unwrap_or(0o600) & 0o777)).collect()
}

/// The restore step an SQL member belongs to.
fn sql_step(path: &str) -> &'static str {
    match path {
        archive::SCHEMA => "schema",
        archive::SEQUENCES => "sequences",
        _ => "constraints",
    }
}

/// Every member's expected SHA-256 by path (members, config files, tables).
fn expected_hashes(manifest: &Manifest) -> BTreeMap<&str, &str> {
    manifest
        .members
        .iter()
        .chain(&manifest.files)
        .map(|m| (m.path.as_str(), m.sha256.as_str()))
        .chain(manifest.tables.iter().filter_map(|t| Some((t.file.as_deref()?, t.sha256.as_deref()?))))
        .collect()
}

/// Streams `t`'s CSV member `path` into the table; the rows COPY loaded.
fn copy_in(client: &mut Client, t: &ManifestTable, path: &str, frozen: bool, rows: &mut dyn Read) -> Result<u64> {
    let sql =
        format!("COPY {} FROM STDIN (FORMAT csv, HEADER{})", t.copy_target(), if frozen { ", FREEZE" } else { "" });
    tracing::debug!(%sql, "COPY in");
    let mut w = client.copy_in(&sql).map_err(db_err(format!("starting COPY into {}", t.display())))?;
    match std::io::copy(rows, &mut w) {
        Ok(_) => w.finish().map_err(db_err(format!("loading rows of {} from {path}", t.display()))),
        Err(e) => Err(copy_err(format!("loading rows of {} from {path}", t.display()))(e)),
    }
}

/// With `--jobs`: sequences and constraints, spooled while the rows were, run
/// once the rows are in; the index builds of constraints over the `--jobs`
/// connections first (see [`sql::IndexBuilds`]).
fn run_deferred(
    client: &mut Client,
    target: &crate::config::Target,
    deferred: &[(String, tempfile::TempPath)],
    policy: &mut Policy,
    jobs: usize,
    progress: Progress,
    cancel: &CancelToken,
) -> Result<()> {
    let open = |file: &tempfile::TempPath| {
        std::fs::File::open(file).map_err(|e| Error::io("reading spool", file.to_path_buf(), e))
    };
    for (path, file) in deferred {
        let mut taken = BTreeSet::new();
        if path == archive::SEQUENCES {
            progress(Event::Step("sequences"));
        } else {
            progress(Event::Step("constraints"));
            let builds = sql::index_builds(path, &mut open(file)?)?;
            parallel::build_indexes(target, path, &builds, jobs, cancel)?;
            taken = builds.taken;
        }
        sql::run_member(client, path, &mut open(file)?, policy, &taken)?;
    }
    Ok(())
}

/// One warning per role the archive names and the target lacks.
fn warn_missing_roles(policy: &Policy, progress: Progress) {
    for (role, statements) in &policy.missing {
        progress(Event::Warning(format!(
            "role {role} does not exist on the target: skipped {statements} owner/privilege statement(s) that name it; \
             create the roles first (e.g. psql -f database/roles.sql from the extracted archive) and restore again, \
             or pass --no-owner to restore without owners and privileges"
        )));
    }
}

/// Each table's restored rows against the manifest. The count each COPY
/// returned is authoritative: a count(*) would scan every table once more
/// for the same number. A table whose rows were not loaded (no data file,
/// or not selected) got none.
fn row_checks(
    manifest: &Manifest,
    selected: &dyn Fn(&ManifestTable) -> bool,
    copied: &BTreeMap<String, u64>,
) -> Vec<TableCheck> {
    manifest
        .tables
        .iter()
        .map(|t| {
            let expected = if selected(t) { t.rows } else { 0 };
            let restored = t.file.as_deref().and_then(|f| copied.get(f)).copied().unwrap_or(0);
            TableCheck { table: t.display(), expected, restored, ok: restored == expected }
        })
        .collect()
}

/// Memory for the index builds (`maintenance_work_mem`) and the foreign-key
/// checks (`work_mem`) of constraints.sql, for this session only, and only
/// raised: a server configured with more keeps its own. The one COMMIT stays
/// synchronous, so a restore reported done is durable.
const BULK_LOAD: &str = "SELECT set_config(s.name, w.kb || 'kB', false) \
     FROM (VALUES ('maintenance_work_mem', 262144), ('work_mem', 65536)) AS w(name, kb) \
     JOIN pg_catalog.pg_settings s ON s.name = w.name WHERE s.setting::bigint < w.kb";

/// The plain tables of the target (not partitioned, not foreign). Every one
/// of them was created by this restore's schema.sql (the target was empty,
/// or `--force` emptied it first): in the single transaction that is what
/// `COPY … FREEZE` asks, and with `--jobs` each loader's transaction
/// truncates the table first, which asks the same. The rows are written frozen
/// and all-visible, so neither the ANALYZE after the commit nor the first VACUUM after
/// the restore has to rewrite every page to set hint bits. In the single
/// transaction nobody can see the rows before the COMMIT, so FREEZE bends no
/// one's snapshot; with `--jobs` a session whose snapshot predates a
/// loader's commit would see that table's rows early (FREEZE's documented
/// exception to MVCC), which matters to no one: a target is not read
/// while it is restored, and `--jobs` is not one transaction anyway.
fn plain_tables(client: &mut Client) -> Result<BTreeSet<(String, String)>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'",
            &[],
        )
        .map_err(db_err("listing the restored tables"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// [`for_each_member`] whose callback returns this crate's errors: they come
/// out as they went in (kind, retryability), not flattened into a message.
pub(super) fn for_each_member_keeping_errors(
    source: &Source,
    identities: Option<&crate::crypt::Identities>,
    f: &mut dyn FnMut(&archive::reader::Member, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let mut inner = None;
    let outer = for_each_member_of(source, identities, |m, r| {
        f(m, r).map_err(|e| {
            let msg = format!("{e:#}");
            inner = Some(e);
            ArchiveError::Other(msg)
        })
    });
    match (outer, inner) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(Error::Archive(e)),
    }
}

fn check_sha(path: &str, h: Hashing<&mut dyn Read>, expected: &str) -> Result<()> {
    if h.hex() != expected {
        return Err(Error::Failed(format!(
            "{path} changed since it was verified (SHA-256 differs); is something writing the archive?"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-7.13
    #[test]
    fn an_error_inside_the_member_loop_comes_out_as_it_went_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        ));
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o600);
        b.append_data(&mut h, archive::SCHEMA, &b"x;\n"[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();

        for (_, e, code, retry) in crate::error::tests::kinds() {
            let text = e.to_string();
            let mut e = Some(e);
            let got = for_each_member_keeping_errors(&Source::from(path.as_path()), None, &mut |_, _| {
                Err(e.take().expect("one member"))
            })
            .unwrap_err();
            assert_eq!((got.exit_code(), got.is_retryable(), got.to_string()), (code, retry, text));
        }
        // The reader's own errors are the archive's.
        let bad = dir.path().join("bad.tar.gz");
        std::fs::write(&bad, b"not gzip").unwrap();
        let got = for_each_member_keeping_errors(&Source::from(bad.as_path()), None, &mut |_, _| Ok(())).unwrap_err();
        assert!(matches!(got, Error::Archive(_)) && !got.is_retryable(), "{got:?}");
    }
}
