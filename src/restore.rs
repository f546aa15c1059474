//! `lifeboat restore` and `lifeboat verify --restore-test`: load an archive
//! into a database in one transaction, straight from the compressed stream.
//!
//! Order: verify the whole archive → check the target (empty, or `--force`
//! and say what is dropped; never the configured source by accident) →
//! BEGIN → schema → rows (COPY FROM STDIN, each member re-hashed on the way)
//! → sequences → constraints → ANALYZE → row counts against the manifest →
//! COMMIT. Any error or difference rolls back, so the target is left as it
//! was. Config files are staged beside their destination during the stream
//! and moved into place only after the commit.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use postgres::Client;
use serde::Serialize;

use crate::archive::reader::{for_each_member, ArchiveError, Hashing};
use crate::archive::{self, Manifest, ManifestTable};
use crate::config::{parse_target_url, DatabaseConfig};
use crate::db::{self, db_err, describe, quote_ident};
use crate::dump::strip_psql_restrict;
use crate::error::{Error, Result};
use crate::progress::{Event, Progress};
use crate::verify::{verify_with, VerifyOptions, VerifyReport};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Target database URL.
    pub target: String,
    pub config_dir: Option<PathBuf>,
    /// Subset: these tables plus every table they reference (transitively).
    pub tables: Vec<String>,
    pub force: bool,
    /// Parallel COPY connections. 1 (the default) loads everything in one
    /// transaction; more cannot share one, so a failure empties the target.
    pub jobs: usize,
    /// The database the config backs up; restoring over it needs `--force`
    /// and the same URL.
    pub source: Option<DatabaseConfig>,
    /// How the archive is read and whose signature it must carry.
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
}

pub fn restore(archive_path: &Path, opts: &RestoreOptions, progress: Progress) -> Result<RestoreReport> {
    let started = Instant::now();
    let verified = verify_with(archive_path, &opts.verify, progress)?;
    let verify_ms = started.elapsed().as_millis() as u64;
    let target = parse_target_url(&opts.target, "--db")?;
    if let Some(src) = &opts.source {
        if same_database(&target, src) && !opts.force {
            return Err(Error::Refused(format!(
                "{} is the source database named in the config; restoring over it would replace live data. \
                 Restore into another database, or pass --force if that is really intended",
                describe(&target)
            )));
        }
    }
    let mut report = restore_verified(archive_path, &verified, &target, opts, progress)?;
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
            jobs: 1,
            source: None,
            verify: VerifyOptions::default(),
        }
    }
}

fn same_database(target: &postgres::Config, src: &DatabaseConfig) -> bool {
    let norm = |h: &str| if h == "localhost" || h == "::1" { "127.0.0.1".to_string() } else { h.to_string() };
    let host = match target.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => norm(h),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "127.0.0.1".into(),
    };
    host == norm(&src.host)
        && target.get_ports().first().copied().unwrap_or(5432) == src.port
        && target.get_dbname() == Some(src.name.as_str())
}

/// Resolves `--tables` names against the manifest and adds every table they
/// reference, so the restored rows' foreign keys hold.
fn select_tables(manifest: &Manifest, names: &[String]) -> Result<Option<BTreeSet<(String, String)>>> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut want = BTreeSet::new();
    for n in names {
        let t: crate::config::TableName = n.parse().map_err(Error::Refused)?;
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

fn phase(phases: &mut Vec<(String, u64)>, name: &str, since: &mut Instant) {
    phases.push((name.to_string(), since.elapsed().as_millis() as u64));
    *since = Instant::now();
}

pub(crate) fn restore_verified(
    archive_path: &Path,
    verified: &VerifyReport,
    target: &postgres::Config,
    opts: &RestoreOptions,
    progress: Progress,
) -> Result<RestoreReport> {
    let manifest = &verified.manifest;
    let subset = select_tables(manifest, &opts.tables)?;
    let selected = |t: &ManifestTable| subset.as_ref().is_none_or(|s| s.contains(&(t.schema.clone(), t.name.clone())));
    let target_name = describe(target);
    let mut client = db::connect_with(target, &target_name, "the --db URL")?;

    let existing = user_tables(&mut client)?;
    let mut dropped = Vec::new();
    if !existing.is_empty() {
        if !opts.force {
            return Err(Error::Refused(format!(
                "target database {target_name} is not empty ({} object(s): {}); nothing was changed. \
                 Restore into an empty database (createdb), or pass --force to drop its contents first",
                existing.values().map(Vec::len).sum::<usize>(),
                summarize(&existing)
            )));
        }
        for (schema, tables) in &existing {
            dropped.push(format!("schema {schema} with {} object(s): {}", tables.len(), tables.join(", ")));
        }
        for d in &dropped {
            progress(Event::Warning(format!("--force: dropping {d}")));
        }
    }

    let mut phases = Vec::new();
    let mut since = Instant::now();
    client
        .batch_execute(&format!("{}; BEGIN", db::SESSION_SETTINGS))
        .map_err(db_err("starting the restore transaction"))?;
    let outcome = load(
        &mut client,
        target,
        archive_path,
        manifest,
        &existing,
        opts,
        &selected,
        &mut phases,
        &mut since,
        progress,
    );
    let (checks, staged) = match outcome {
        Ok(v) => v,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK");
            if opts.jobs > 1 {
                return Err(emptied(e, &mut client, &target_name));
            }
            return Err(rolled_back(e, &target_name));
        }
    };
    let ok = checks.iter().all(|c| c.ok);
    if !ok {
        client.batch_execute("ROLLBACK").map_err(db_err("rolling back"))?;
        if opts.jobs > 1 {
            return Err(emptied(
                Error::Failed("row counts differ from the manifest".into()),
                &mut client,
                &target_name,
            ));
        }
        drop(staged);
        return Ok(RestoreReport {
            ok,
            archive: archive_path.to_path_buf(),
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

    let files = match (staged, &opts.config_dir) {
        (Some(staged), Some(dir)) => {
            progress(Event::Step("config files"));
            staged.install(dir).map_err(|e| {
                Error::Failed(format!(
                    "the database was restored and committed, but installing the config files failed: {e}"
                ))
            })?
        }
        _ => Vec::new(),
    };
    if !files.is_empty() {
        phase(&mut phases, "config files", &mut since);
    }
    Ok(RestoreReport {
        ok,
        archive: archive_path.to_path_buf(),
        target: target_name,
        dropped,
        tables: checks,
        sequences: manifest.sequences.len(),
        files,
        phases,
        duration_ms: 0,
        problem: None,
    })
}

/// After a failed parallel restore (rows were committed table by table):
/// drops what it created so the target is empty again, and says so.
fn emptied(e: Error, client: &mut Client, target: &str) -> Error {
    let cleanup = user_tables(client).and_then(|left| {
        let setup = if left.contains_key("public") { Some(public_schema_setup(client)?) } else { None };
        for schema in left.keys() {
            client
                .batch_execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(schema)))
                .map_err(db_err("cleaning up"))?;
        }
        if let Some(setup) = setup {
            client.batch_execute(&format!("CREATE SCHEMA public; {setup}")).map_err(db_err("cleaning up"))?;
        }
        Ok(())
    });
    let state = match cleanup {
        Ok(()) => format!("{target} was emptied again (a --jobs restore cannot roll back as one transaction)"),
        Err(c) => format!("cleaning up {target} failed too ({c}); drop its schemas by hand before retrying"),
    };
    Error::Failed(format!("{e}\nThe parallel restore failed: {state}."))
}

fn rolled_back(e: Error, target: &str) -> Error {
    let code = e.exit_code();
    let msg = format!("{e}\nThe restore was rolled back: {target} is as it was before.");
    if code == 2 {
        Error::Refused(msg)
    } else {
        Error::Failed(msg)
    }
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn load(
    client: &mut Client,
    target: &postgres::Config,
    archive_path: &Path,
    manifest: &Manifest,
    existing: &BTreeMap<String, Vec<String>>,
    opts: &RestoreOptions,
    selected: &dyn Fn(&ManifestTable) -> bool,
    phases: &mut Vec<(String, u64)>,
    since: &mut Instant,
    progress: Progress,
) -> Result<(Vec<TableCheck>, Option<Staged>)> {
    if !existing.is_empty() {
        let public = if existing.contains_key("public") { Some(public_schema_setup(client)?) } else { None };
        for schema in existing.keys() {
            client
                .batch_execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(schema)))
                .map_err(db_err(format!("dropping schema {schema}")))?;
        }
        if let Some(setup) = public {
            client
                .batch_execute(&format!("CREATE SCHEMA public; {setup}"))
                .map_err(db_err("recreating schema public"))?;
        }
        phase(phases, "drop", since);
    }

    let by_file: BTreeMap<&str, &ManifestTable> =
        manifest.tables.iter().filter_map(|t| Some((t.file.as_deref()?, t))).collect();
    let expected: BTreeMap<&str, &str> = manifest
        .members
        .iter()
        .chain(&manifest.files)
        .map(|m| (m.path.as_str(), m.sha256.as_str()))
        .chain(manifest.tables.iter().filter_map(|t| Some((t.file.as_deref()?, t.sha256.as_deref()?))))
        .collect();
    // Modes come from manifest.json, which SHA256SUMS covers, not from tar
    // headers, which nothing does. Never setuid, setgid or sticky: a config
    // file needs none, and a tampered archive must not plant one.
    let modes: BTreeMap<&str, u32> =
        manifest.files.iter().map(|f| (f.path.as_str(), f.mode.unwrap_or(0o600) & 0o777)).collect();
    let mut staged = opts.config_dir.as_deref().map(Staged::new).transpose()?;
    let mut copied: BTreeMap<String, u64> = BTreeMap::new();
    // --jobs > 1: the schema is committed at once so other connections see
    // it; rows wait in spool files for the parallel load; sequences and
    // constraints wait until the rows are in.
    let parallel = opts.jobs > 1;
    let spool_dir = if parallel {
        Some(
            tempfile::Builder::new()
                .prefix("lifeboat-restore-")
                .tempdir()
                .map_err(|e| Error::io("creating a spool directory in", std::env::temp_dir(), e))?,
        )
    } else {
        None
    };
    let mut pending: Vec<(&ManifestTable, tempfile::NamedTempFile)> = Vec::new();
    let mut deferred: Vec<(String, String)> = Vec::new();
    let mut step = "";
    let mut run = |member: &archive::reader::Member, r: &mut dyn Read| -> Result<()> {
        let path = member.path.as_str();
        let Some(sha) = expected.get(path) else { return Ok(()) };
        let mut h = Hashing::new(r);
        if path == archive::SCHEMA || path == archive::SEQUENCES || path == archive::CONSTRAINTS {
            let name = match path {
                archive::SCHEMA => "schema",
                archive::SEQUENCES => "sequences",
                _ => "constraints",
            };
            if step != name {
                if !step.is_empty() {
                    phase(phases, step, since);
                }
                step = name;
                progress(Event::Step(name));
            }
            let mut sql = String::new();
            h.read_to_string(&mut sql).map_err(|e| Error::Failed(format!("{path}: {e}")))?;
            check_sha(path, h, sha)?;
            if parallel && path != archive::SCHEMA {
                deferred.push((path.to_string(), sql));
                return Ok(());
            }
            client.batch_execute(&strip_psql_restrict(&sql)).map_err(db_err(format!("executing {path}")))?;
            if parallel {
                client.batch_execute("COMMIT; BEGIN").map_err(db_err("committing the schema"))?;
            }
        } else if let Some(t) = by_file.get(path) {
            if step != "data" {
                phase(phases, step, since);
                step = "data";
                progress(Event::Step("data"));
            }
            if !selected(t) {
                return Ok(());
            }
            if let Some(dir) = &spool_dir {
                let mut f =
                    tempfile::NamedTempFile::new_in(dir.path()).map_err(|e| Error::io("spooling in", dir.path(), e))?;
                std::io::copy(&mut h, &mut f).map_err(|e| Error::io("spooling rows of a table in", dir.path(), e))?;
                check_sha(path, h, sha)?;
                pending.push((t, f));
                return Ok(());
            }
            let sql = format!("COPY {} FROM STDIN (FORMAT csv, HEADER)", t.copy_target());
            tracing::debug!(%sql, "COPY in");
            let mut w = client.copy_in(&sql).map_err(db_err(format!("starting COPY into {}", t.display())))?;
            let copied_io = std::io::copy(&mut h, &mut w);
            let rows = match copied_io {
                Ok(_) => w.finish().map_err(db_err(format!("loading rows of {} from {path}", t.display())))?,
                Err(e) => return Err(Error::Failed(format!("loading rows of {} from {path}: {e}", t.display()))),
            };
            check_sha(path, h, sha)?;
            progress(Event::Table { name: t.display(), rows, closure_rows: t.closure_rows, bytes: t.bytes });
            copied.insert(path.to_string(), rows);
        } else if let (Some(rel), Some(staged)) = (path.strip_prefix(archive::CONFIG_DIR), staged.as_mut()) {
            staged.add(rel, modes.get(path).copied().unwrap_or(0o600), &mut h)?;
            check_sha(path, h, sha)?;
        }
        Ok(())
    };
    let identities = opts
        .verify
        .identity
        .as_deref()
        .map(crate::crypt::Identities::from_file)
        .transpose()
        .map_err(ArchiveError::from)?;
    for_each_member(archive_path, identities.as_ref(), |m, r| {
        run(m, r).map_err(|e| ArchiveError::Other(format!("{e:#}")))
    })
    .map_err(|e| match e {
        ArchiveError::Other(msg) => Error::Failed(msg),
        other => Error::Archive(other),
    })?;
    phase(phases, step, since);

    if parallel {
        progress(Event::Step("parallel data"));
        copy_parallel(target, &pending, opts.jobs, progress)?;
        phase(phases, "parallel data", since);
        for (path, sql) in &deferred {
            progress(Event::Step(if path == archive::SEQUENCES { "sequences" } else { "constraints" }));
            client.batch_execute(&strip_psql_restrict(sql)).map_err(db_err(format!("executing {path}")))?;
        }
        phase(phases, "sequences and constraints", since);
    }

    progress(Event::Step("analyze"));
    client.batch_execute("ANALYZE").map_err(db_err("running ANALYZE"))?;
    phase(phases, "analyze", since);

    let mut checks = Vec::new();
    for t in &manifest.tables {
        let expected = if selected(t) { t.rows } else { 0 };
        let restored: i64 = client
            .query_one(&format!("SELECT count(*) FROM ONLY {}", t.qualified()), &[])
            .map_err(db_err(format!("counting rows of {}", t.display())))?
            .get(0);
        checks.push(TableCheck {
            table: t.display(),
            expected,
            restored: restored as u64,
            ok: restored as u64 == expected,
        });
    }
    phase(phases, "check", since);
    Ok((checks, staged))
}

/// Statements that give a new `public` schema the current one's owner,
/// privileges and comment. Recreated as the restoring role's, `public` would
/// be owned by it (a superuser, typically) instead of `pg_database_owner`,
/// and the application's own role could no longer create tables in it.
fn public_schema_setup(client: &mut Client) -> Result<String> {
    let row = client
        .query_one(
            "SELECT format('ALTER SCHEMA public OWNER TO %I', r.rolname) \
                 || coalesce((SELECT string_agg(format('; GRANT %s ON SCHEMA public TO %s%s', a.privilege_type, \
                                  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.rolname) END, \
                                  CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END), '') \
                              FROM aclexplode(n.nspacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee \
                              WHERE a.grantee <> n.nspowner), '') \
                 || format('; COMMENT ON SCHEMA public IS %L', obj_description(n.oid, 'pg_namespace')) \
             FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'public'",
            &[],
        )
        .map_err(db_err("reading the owner and privileges of schema public"))?;
    Ok(row.get(0))
}

/// Loads the spooled tables over `jobs` connections, each table in its own
/// transaction; the first error stops the others from taking more work.
fn copy_parallel(
    target: &postgres::Config,
    pending: &[(&ManifestTable, tempfile::NamedTempFile)],
    jobs: usize,
    progress: Progress,
) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None::<Error>);
    let name = describe(target);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(pending.len()) {
            s.spawn(|| {
                let work = || -> Result<()> {
                    let mut client = db::connect_with(target, &name, "the --db URL")?;
                    client.batch_execute(db::SESSION_SETTINGS).map_err(db_err("setting up a parallel connection"))?;
                    loop {
                        if failed.lock().expect("not poisoned").is_some() {
                            return Ok(());
                        }
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some((t, file)) = pending.get(i) else { return Ok(()) };
                        let sql = format!("COPY {} FROM STDIN (FORMAT csv, HEADER)", t.copy_target());
                        let mut f = file.reopen().map_err(|e| Error::io("reading spool", file.path(), e))?;
                        let mut w =
                            client.copy_in(&sql).map_err(db_err(format!("starting COPY into {}", t.display())))?;
                        std::io::copy(&mut f, &mut w)
                            .map_err(|e| Error::Failed(format!("loading rows of {}: {e}", t.display())))?;
                        let rows = w.finish().map_err(db_err(format!("loading rows of {}", t.display())))?;
                        progress(Event::Table {
                            name: t.display(),
                            rows,
                            closure_rows: t.closure_rows,
                            bytes: t.bytes,
                        });
                    }
                };
                if let Err(e) = work() {
                    failed.lock().expect("not poisoned").get_or_insert(e);
                }
            });
        }
    });
    match failed.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(()),
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

/// Tables outside the system schemas, by schema.
fn user_tables(client: &mut Client) -> Result<BTreeMap<String, Vec<String>>> {
    let rows = client
        .query(
            // Relations, plus functions and standalone types (not owned by
            // an extension): a schema.sql would collide with those too.
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname !~ '^pg_(toast|temp)' \
             UNION ALL \
             SELECT n.nspname::text, 'function ' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)' \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e') \
             UNION ALL \
             SELECT n.nspname::text, 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.typtype IN ('e', 'd', 'r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname !~ '^pg_(toast|temp)' \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e') \
             ORDER BY 1, 2",
            &[],
        )
        .map_err(db_err("listing the target's tables"))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        out.entry(r.get(0)).or_default().push(r.get(1));
    }
    Ok(out)
}

fn summarize(tables: &BTreeMap<String, Vec<String>>) -> String {
    let all: Vec<String> = tables.iter().flat_map(|(s, ts)| ts.iter().map(move |t| format!("{s}.{t}"))).collect();
    if all.len() > 10 {
        format!("{}, …", all[..10].join(", "))
    } else {
        all.join(", ")
    }
}

/// Config files written into a hidden directory inside the destination
/// during the stream, moved into place after the database commit.
struct Staged {
    dir: tempfile::TempDir,
    files: Vec<(String, u32)>,
}

impl Staged {
    fn new(dest: &Path) -> Result<Staged> {
        std::fs::create_dir_all(dest).map_err(|e| Error::io("creating --config-dir", dest, e))?;
        let dir = tempfile::Builder::new()
            .prefix(".lifeboat-restore-")
            // Files wait here before they get their modes: keep them private.
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(dest)
            .map_err(|e| Error::io("staging config files in", dest, e))?;
        Ok(Staged { dir, files: Vec::new() })
    }

    fn add(&mut self, rel: &str, mode: u32, data: &mut dyn Read) -> Result<()> {
        // `rel` passed the reader's path check (relative, no `..`).
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        }
        let mut f = std::fs::File::create(&path).map_err(|e| Error::io("writing", &path, e))?;
        std::io::copy(data, &mut f).map_err(|e| Error::io("writing", &path, e))?;
        self.files.push((rel.to_string(), mode));
        Ok(())
    }

    /// Refuses a destination that is a directory or a symlink, or whose
    /// path inside `dest` runs through a symlink or a file, before anything
    /// is created: `create_dir_all` through a symlinked subdirectory would
    /// already write outside `dest`.
    fn check(&self, dest: &Path) -> Result<()> {
        for (rel, _) in &self.files {
            let mut at = dest.to_path_buf();
            let parts: Vec<&str> = rel.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                at.push(part);
                let last = i + 1 == parts.len();
                let refuse = match std::fs::symlink_metadata(&at) {
                    Ok(m) if m.file_type().is_symlink() => {
                        format!("is a symlink: restoring through it could write outside {}", dest.display())
                    }
                    Ok(m) if last && m.is_dir() => "is a directory".to_string(),
                    Ok(m) if !last && !m.is_dir() => "is a file where a directory is needed".to_string(),
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) => return Err(Error::io("checking", &at, e)),
                };
                return Err(Error::Refused(format!(
                    "config file {rel}: {} {refuse}; move it away or restore into another --config-dir",
                    at.display()
                )));
            }
        }
        Ok(())
    }

    /// Moves every file into `dest`; an existing file is first renamed to
    /// `<name>.bak-<YYYYMMDDHHMMSS>`. A destination path that is (or runs
    /// through) a symlink is refused: nothing is written outside `dest`.
    fn install(self, dest: &Path) -> Result<Vec<RestoredFile>> {
        use std::os::unix::fs::PermissionsExt;
        self.check(dest)?;
        let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
        let root = std::fs::canonicalize(dest).map_err(|e| Error::io("resolving", dest, e))?;
        let mut out = Vec::new();
        for (rel, mode) in &self.files {
            let to = root.join(rel);
            let parent = to.parent().expect("joined path has a parent");
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
            let real_parent = std::fs::canonicalize(parent).map_err(|e| Error::io("resolving", parent, e))?;
            if !real_parent.starts_with(&root) {
                return Err(Error::Refused(format!(
                    "config file {rel}: {} leads outside {} (symlink?); refused",
                    parent.display(),
                    root.display()
                )));
            }
            let mut previous = None;
            match std::fs::symlink_metadata(&to) {
                Ok(m) if m.file_type().is_symlink() || m.is_dir() => {
                    return Err(Error::Refused(format!(
                        "config file {rel}: {} is a symlink or directory; refused",
                        to.display()
                    )));
                }
                Ok(_) => {
                    let bak = PathBuf::from(format!("{}.bak-{stamp}", to.display()));
                    std::fs::rename(&to, &bak).map_err(|e| Error::io("keeping the previous file as", &bak, e))?;
                    previous = Some(bak);
                }
                Err(_) => {}
            }
            let from = self.dir.path().join(rel);
            std::fs::set_permissions(&from, std::fs::Permissions::from_mode(*mode))
                .map_err(|e| Error::io("setting mode of", &from, e))?;
            std::fs::rename(&from, &to).map_err(|e| Error::io("installing", &to, e))?;
            out.push(RestoredFile { path: to, previous, mode: *mode });
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RehearsalReport {
    pub ok: bool,
    pub archive: PathBuf,
    pub server: String,
    pub scratch_database: String,
    pub duration_ms: u64,
    pub tables: usize,
    pub rows: u64,
    pub foreign_keys_invalid: Vec<String>,
    pub sequences_behind: Vec<String>,
    pub problems: Vec<String>,
}

/// Restores into a throwaway database on `server_url`, checks row counts,
/// foreign key validity and sequence values, then drops it.
pub fn rehearse(
    archive_path: &Path,
    verified: &VerifyReport,
    server_url: &str,
    verify: &VerifyOptions,
    progress: Progress,
) -> Result<RehearsalReport> {
    let started = Instant::now();
    let server = parse_target_url(server_url, "--restore-test")?;
    let server_name = describe(&server);
    let mut admin = db::connect_with(&server, &server_name, "the --restore-test URL")?;
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let scratch = format!("lifeboat_rt_{}_{nanos:08x}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&scratch)))
        .map_err(|e| match db::sqlstate(&e) {
            Some("42501") => Error::Refused(format!(
                "cannot create scratch database {scratch} on {server_name}: {}; the --restore-test URL needs a role with CREATEDB",
                db::pg_message(&e)
            )),
            _ => db_err(format!("creating scratch database {scratch}"))(e),
        })?;
    progress(Event::Detail(format!("rehearsing in scratch database {scratch}")));

    let mut target = server.clone();
    target.dbname(&scratch);
    let result = (|| -> Result<RehearsalReport> {
        let opts = RestoreOptions { verify: verify.clone(), ..RestoreOptions::default() };
        let report = restore_verified(archive_path, verified, &target, &opts, progress);
        let mut problems = Vec::new();
        let (mut fks, mut seqs) = (Vec::new(), Vec::new());
        match report {
            Err(e) => problems.push(format!("restore failed: {e}")),
            Ok(r) => {
                problems.extend(r.problem);
                problems.extend(
                    r.tables
                        .iter()
                        .filter(|c| !c.ok)
                        .map(|c| format!("{}: {} rows restored, manifest says {}", c.table, c.restored, c.expected)),
                );
                let mut client = db::connect_with(&target, &scratch, "the --restore-test URL")?;
                for row in client
                    .query("SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint WHERE contype = 'f' AND NOT convalidated", &[])
                    .map_err(db_err("checking foreign keys"))?
                {
                    fks.push(row.get(0));
                }
                let fk_count: i64 = client
                    .query_one("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conparentid = 0", &[])
                    .map_err(db_err("counting foreign keys"))?
                    .get(0);
                if fk_count as usize != verified.manifest.foreign_keys.len() {
                    problems.push(format!(
                        "{fk_count} foreign keys restored, the archive has {}",
                        verified.manifest.foreign_keys.len()
                    ));
                }
                for s in &verified.manifest.sequences {
                    let q = db::qualified(&s.schema, &s.name);
                    let v: i64 = client
                        .query_one(&format!("SELECT last_value FROM {q}"), &[])
                        .map_err(db_err(format!("reading {q}")))?
                        .get(0);
                    if v < s.last_value {
                        seqs.push(format!("{}.{} is {v}, the snapshot had {}", s.schema, s.name, s.last_value));
                    }
                }
                problems.extend(fks.iter().map(|f| format!("foreign key {f} is not validated")));
                problems.extend(seqs.iter().cloned());
            }
        }
        Ok(RehearsalReport {
            ok: problems.is_empty(),
            archive: archive_path.to_path_buf(),
            server: server_name.clone(),
            scratch_database: scratch.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            tables: verified.tables,
            rows: verified.rows,
            foreign_keys_invalid: fks,
            sequences_behind: seqs,
            problems,
        })
    })();
    let dropped = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&scratch)));
    let mut report = result?;
    if let Err(e) = dropped {
        report.problems.push(format!("could not drop scratch database {scratch}: {}", db::pg_message(&e)));
        report.ok = false;
    }
    Ok(report)
}
