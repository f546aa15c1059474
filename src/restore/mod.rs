//! `lifeboat restore` and `lifeboat verify --restore-test`: load an archive
//! into a database in one transaction, straight from the compressed stream.
//!
//! Order: verify the whole archive → check the target (empty, or `--force`
//! and say what is dropped; never the configured source by accident) →
//! BEGIN → schema → rows (COPY FROM STDIN, each member re-hashed on the way)
//! → sequences → constraints → row counts against the manifest → COMMIT →
//! ANALYZE over parallel connections (`analyze.rs`). Any error or difference
//! before the commit rolls back, so the target is left as it was. Config
//! files are staged beside their destination during the stream and moved
//! into place only after the commit.

mod analyze;
mod config_files;
mod guard;
mod load;
mod owners;
mod parallel;
mod rehearse;
mod sql;
mod statements;
mod target;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

pub use rehearse::{rehearse, RehearsalReport};

use crate::archive::reader::Source;
use crate::archive::{Manifest, ManifestTable};
use crate::config::{parse_target_url, DatabaseConfig};
use crate::error::{Error, Result};
use crate::events::{CancelToken, Event, Progress};
use crate::pg::{self, db_err, describe};
use crate::verify::{verify_source, VerifyOptions, VerifyReport};
use config_files::Staged;

/// What to restore where. The engine owns these options; `lifeboat restore`
/// flattens them into its arguments (clap's `Args` derive, behind the
/// existing clap dependency), so the flags are declared once, here. The
/// `///` lines of the fields are the `--help` texts.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreOptions {
    /// Target database
    #[arg(long = "db", value_name = "URL")]
    pub target: String,
    /// Also restore the configuration files into this directory
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Restore only these tables (plus the tables they reference)
    #[arg(long, value_delimiter = ',', value_name = "TABLES")]
    pub tables: Vec<String>,
    /// Replace a non-empty target (drops what it lists first)
    #[arg(long)]
    pub force: bool,
    /// Create the --db database when it does not exist (from template0,
    /// owned by the --db role, which needs CREATEDB; made through the
    /// server's `postgres` database)
    #[arg(long)]
    pub create: bool,
    /// Load tables over N connections in parallel. Faster on big archives, but
    /// not one transaction: a failure empties the target instead of rolling back
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Do not re-apply the archive's owners and privileges (ALTER … OWNER,
    /// GRANT, REVOKE): everything belongs to the --db role. Without it, only
    /// statements naming roles the target lacks are skipped, and reported
    #[arg(long)]
    pub no_owner: bool,
    /// With --jobs: where the rows wait, uncompressed, for the parallel load
    /// [default: the archive's directory, the current one for an s3:// archive; never $TMPDIR]
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// The database the config backs up; restoring over it needs `--force`
    /// and the same URL. Set by the caller from the config, not a flag.
    #[arg(skip)]
    pub source: Option<DatabaseConfig>,
    /// How the archive is read (`--identity`) and whose signature it must
    /// carry (`--trusted-key`).
    #[command(flatten)]
    pub verify: VerifyOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub expected: u64,
    pub restored: u64,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoredFile {
    pub path: PathBuf,
    /// Where the file that was there before was kept.
    pub previous: Option<PathBuf>,
    pub mode: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub ok: bool,
    pub archive: PathBuf,
    pub target: String,
    pub dropped: Vec<String>,
    pub tables: Vec<TableCheck>,
    pub sequences: usize,
    pub files: Vec<RestoredFile>,
    /// (phase, milliseconds)
    pub phases: Vec<(String, u64)>,
    pub duration_ms: u64,
    pub problem: Option<String>,
    /// Roles the archive's owner and privilege statements name that the
    /// target does not have; those statements were skipped.
    pub roles_missing: Vec<String>,
    /// Owner and privilege statements skipped (for missing roles, or all of
    /// them with `--no-owner`).
    pub privileges_skipped: u64,
    /// Relations `ANALYZE`d after the commit; `None` when that failed (the
    /// restore stands; a warning names the fix).
    pub analyzed: Option<usize>,
}

/// Verifies `archive_path`, then restores it per `opts`. `cancel` is polled
/// between archive members and parallel tables; a cancelled restore rolls
/// back like any failed one.
pub fn restore(
    archive_path: &Path,
    opts: &RestoreOptions,
    progress: Progress,
    cancel: &CancelToken,
) -> Result<RestoreReport> {
    restore_source(&Source::from(archive_path), opts, progress, cancel)
}

/// [`restore`] from any [`Source`]: a remote archive is streamed from its
/// store twice (verify pass, load pass), never copied locally first.
pub fn restore_source(
    source: &Source,
    opts: &RestoreOptions,
    progress: Progress,
    cancel: &CancelToken,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let verified = verify_source(source, &opts.verify, progress)?;
    cancel.check("verifying the archive")?;
    let verify_ms = started.elapsed().as_millis() as u64;
    let target = parse_target_url(&opts.target, "--db")?;
    if let Some(src) = &opts.source {
        if target::same_database(&target, src) && !opts.force {
            return Err(Error::Refused(format!(
                "{} is the source database named in the config; restoring over it would replace live data. \
                 Restore into another database, or pass --force if that is really intended",
                describe(&target)
            )));
        }
    }
    if opts.create {
        target::create_if_missing(&target, verified.manifest.database_encoding.as_ref(), progress, cancel)?;
    }
    let mut report = restore_verified(source, &verified, &target, opts, progress, cancel)?;
    report.phases.insert(0, ("verify".into(), verify_ms));
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            target: String::new(),
            config_dir: None,
            tables: Vec::new(),
            force: false,
            create: false,
            jobs: 1,
            no_owner: false,
            spool_dir: None,
            source: None,
            verify: VerifyOptions::default(),
        }
    }
}

/// Resolves `--tables` names against the manifest and adds every table they
/// reference, so the restored rows' foreign keys hold.
fn select_tables(manifest: &Manifest, names: &[String]) -> Result<Option<BTreeSet<(String, String)>>> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut want = BTreeSet::new();
    for n in names {
        let t: crate::model::TableName = n.parse().map_err(Error::Refused)?;
        if !manifest.tables.iter().any(|m| m.schema == t.schema && m.name == t.name) {
            let have: Vec<String> = manifest.tables.iter().map(ManifestTable::display).collect();
            return Err(Error::Refused(format!("--tables: {t} is not in this archive; it has: {}", have.join(", "))));
        }
        want.insert((t.schema, t.name));
    }
    loop {
        let before = want.len();
        for fk in &manifest.foreign_keys {
            if want.contains(&(fk.schema.clone(), fk.table.clone())) {
                want.insert((fk.ref_schema.clone(), fk.ref_table.clone()));
            }
        }
        if want.len() == before {
            return Ok(Some(want));
        }
    }
}

/// What to check when a target cannot be reached, and where its password
/// may come from (SC-4.4).
pub(crate) use crate::pg::conn::RESTORE_DB_HINT as DB_HINT;
pub(super) const REHEARSAL_HINT: &str = "the --restore-test URL (and, if the server asks for a password, \
     LIFEBOAT_TARGET_PASSWORD_FILE, LIFEBOAT_TARGET_PASSWORD, PGPASSWORD or ~/.pgpass)";

pub(super) fn phase(phases: &mut Vec<(String, u64)>, name: &str, since: &mut Instant) {
    phases.push((name.to_string(), since.elapsed().as_millis() as u64));
    *since = Instant::now();
}

pub(crate) fn restore_verified(
    source: &Source,
    verified: &VerifyReport,
    target: &crate::config::Target,
    opts: &RestoreOptions,
    progress: Progress,
    cancel: &CancelToken,
) -> Result<RestoreReport> {
    let manifest = &verified.manifest;
    let subset = select_tables(manifest, &opts.tables)?;
    let selected = |t: &ManifestTable| subset.as_ref().is_none_or(|s| s.contains(&(t.schema.clone(), t.name.clone())));
    let target_name = describe(target);
    // Before the target is touched: a spool that cannot be made must not
    // cost a --force target its contents.
    let spool = if opts.jobs > 1 { Some(parallel::Spool::create(&spool_dir(source, opts))?) } else { None };
    let mut client = pg::connect_with(target, &target_name, DB_HINT, cancel)?;

    let existing = target::user_tables(&mut client)?;
    let dropped = refuse_or_drop(&existing, opts, &target_name, progress)?;

    let mut phases = Vec::new();
    let mut since = Instant::now();
    client
        .batch_execute(&format!("{}; BEGIN", pg::SESSION_SETTINGS))
        .map_err(db_err("starting the restore transaction"))?;
    let outcome = load::load(
        &mut client,
        target,
        source,
        manifest,
        &existing,
        opts,
        spool,
        &selected,
        &mut phases,
        &mut since,
        progress,
        cancel,
    );
    let (checks, staged, policy) = match outcome {
        Ok(v) => v,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK");
            if opts.jobs > 1 {
                return Err(target::emptied(e, &mut client, &target_name));
            }
            return Err(rolled_back(e, &target_name));
        }
    };
    let ok = checks.iter().all(|c| c.ok);
    if !ok {
        client.batch_execute("ROLLBACK").map_err(db_err("rolling back"))?;
        if opts.jobs > 1 {
            return Err(target::emptied(
                Error::Failed("row counts differ from the manifest".into()),
                &mut client,
                &target_name,
            ));
        }
        drop(staged);
        return Ok(RestoreReport {
            ok,
            archive: source.report_path(),
            target: target_name,
            dropped: Vec::new(),
            tables: checks,
            sequences: 0,
            files: Vec::new(),
            phases,
            duration_ms: 0,
            problem: Some(
                "row counts differ from the manifest; the restore was rolled back and the target is unchanged".into(),
            ),
            roles_missing: policy.missing.into_keys().collect(),
            privileges_skipped: policy.skipped,
            analyzed: None,
        });
    }
    // Config destinations are checked before the commit, so a refused one
    // leaves both the database and --config-dir as they were.
    if let (Some(staged), Some(dir)) = (&staged, &opts.config_dir) {
        if let Err(e) = staged.check(dir) {
            let _ = client.batch_execute("ROLLBACK");
            return Err(rolled_back(e, &target_name));
        }
    }
    client.batch_execute("COMMIT").map_err(|e| rolled_back(db_err("committing the restore")(e), &target_name))?;
    phase(&mut phases, "commit", &mut since);

    let files = install_files(staged, opts, &mut phases, &mut since, progress)?;
    let analyzed = analyze_committed(&mut client, target, &target_name, opts, progress, cancel);
    phase(&mut phases, "analyze", &mut since);
    Ok(RestoreReport {
        ok,
        archive: source.report_path(),
        target: target_name,
        dropped,
        tables: checks,
        sequences: manifest.sequences.len(),
        files,
        phases,
        duration_ms: 0,
        problem: None,
        roles_missing: policy.missing.into_keys().collect(),
        privileges_skipped: policy.skipped,
        analyzed,
    })
}

/// What `--force` drops of a target that is not empty (one line per
/// schema, each also a warning), or the refusal when it is not given.
fn refuse_or_drop(
    existing: &BTreeMap<String, Vec<String>>,
    opts: &RestoreOptions,
    target_name: &str,
    progress: Progress,
) -> Result<Vec<String>> {
    if existing.is_empty() {
        return Ok(Vec::new());
    }
    if !opts.force {
        return Err(Error::Refused(format!(
            "target database {target_name} is not empty ({} object(s): {}); nothing was changed. \
             Restore into an empty database (createdb), or pass --force to drop its contents first",
            existing.values().map(Vec::len).sum::<usize>(),
            target::summarize(existing)
        )));
    }
    let dropped: Vec<String> = existing
        .iter()
        .map(|(schema, tables)| format!("schema {schema} with {} object(s): {}", tables.len(), tables.join(", ")))
        .collect();
    for d in &dropped {
        progress(Event::Warning(format!("--force: dropping {d}")));
    }
    Ok(dropped)
}

/// Installs the staged config files into `--config-dir`, after the commit.
fn install_files(
    staged: Option<Staged>,
    opts: &RestoreOptions,
    phases: &mut Vec<(String, u64)>,
    since: &mut Instant,
    progress: Progress,
) -> Result<Vec<RestoredFile>> {
    let files = match (staged, &opts.config_dir) {
        (Some(staged), Some(dir)) => {
            progress(Event::Step("config files"));
            staged.install(dir).map_err(|e| {
                e.noted(
                    "The database was restored and committed, but installing the config files failed: \
                     fix the cause and restore them again with --config-dir into an empty directory",
                )
            })?
        }
        _ => Vec::new(),
    };
    if !files.is_empty() {
        phase(phases, "config files", since);
    }
    Ok(files)
}

/// ANALYZE after the commit (see [`analyze`]): the relations analyzed, or
/// `None` with a warning — the restore stands either way.
fn analyze_committed(
    client: &mut pg::Client,
    target: &crate::config::Target,
    target_name: &str,
    opts: &RestoreOptions,
    progress: Progress,
    cancel: &CancelToken,
) -> Option<usize> {
    progress(Event::Step("analyze"));
    match analyze::analyze(client, target, usize::from(opts.jobs), cancel) {
        Ok(n) => Some(n),
        Err(e) => {
            progress(Event::Warning(format!(
                "the restore is committed, but ANALYZE failed: {e:#}; run ANALYZE in {target_name} \
                 so its queries are planned with statistics"
            )));
            None
        }
    }
}

/// `e`, saying the target was left as it was; kind and retryability stay.
fn rolled_back(e: Error, target: &str) -> Error {
    e.noted(format!("The restore was rolled back: {target} is as it was before."))
}

/// `--spool-dir`, else the archive's own directory: on the disk that holds
/// the backups, not `$TMPDIR` (often RAM in a container). A remote archive
/// has no directory here: the current one, as `--help` says.
fn spool_dir(source: &Source, opts: &RestoreOptions) -> PathBuf {
    match (&opts.spool_dir, source.local().and_then(Path::parent)) {
        (Some(dir), _) => dir.clone(),
        (None, Some(parent)) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        (None, _) => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-7.13
    #[test]
    fn a_rolled_back_restore_fails_with_its_errors_kind() {
        for (what, e, code, retry) in crate::error::tests::kinds() {
            let text = e.to_string();
            let r = rolled_back(e, "db:5432/t");
            assert_eq!((r.exit_code(), r.is_retryable()), (code, retry), "{what}");
            assert!(r.to_string().starts_with(&text) && r.to_string().ends_with("db:5432/t is as it was before."));
        }
    }
}
