//! The seal, the first step of a run: plan → snapshot →
//! copy → archive → verify → [`Sealed`]. Everything is written to the
//! store's partial file, which is removed on any error (or cancellation);
//! only a verified archive gets its final name. What happens to it next
//! (offsite, delivery, rehearsal, retention) and what is recorded of it is
//! [`crate::run`]'s. `copy.rs` streams one table's rows out of the snapshot.

mod copy;
mod sealed;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::archive::writer::{Spool, Writer};
use crate::archive::{self, texts, Manifest, ManifestTable, ManifestWindow, SequenceValue};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{CancelToken, Event, Progress, Watchdog};
use crate::model::Mode;
use crate::pg::pg_dump::{self, Section};
use crate::pg::sessions::Sessions;
use crate::pg::{db_err, Snapshot};
use crate::plan::{self, Plan};
use crate::store::Store;
use copy::Copier;
pub use sealed::{BackupReport, Sealed, TableReport};

/// Opens the snapshot and builds the plan, as `lifeboat plan` does. A
/// stall or `cancel` ends it wherever it is, even blocked on a server that
/// stopped answering.
pub fn plan_only(config: &Config, progress: Progress, cancel: &CancelToken) -> Result<Plan> {
    cancel.check("connecting")?;
    let sessions = Sessions::default();
    let planned = (|| {
        let mut snap = Snapshot::open(&config.database, cancel)?;
        sessions.record(&snap.session);
        let watchdog = stall_watchdog(config, cancel);
        let plan = plan::build(&mut snap, config, &watchdog, progress).map_err(|e| stalled_or(&watchdog, e))?;
        snap.close().map_err(|e| stalled_or(&watchdog, e))?;
        Ok(plan)
    })();
    planned.inspect_err(|e| abandoned(config, &sessions, cancel, e))
}

/// After a failed run whose sessions may be left on the server (a stall,
/// a cancellation, a lost connection: whatever the link may have caused),
/// ends them over a fresh connection, bounded (see `pg::sessions`).
fn abandoned(config: &Config, sessions: &Sessions, cancel: &CancelToken, e: &Error) {
    // Refused because another run holds the store: that run is at work on
    // the same database, and its pg_dump sessions carry the same
    // application name and, with no write in between, the same snapshot
    // xmin as this run's would; ending "ours" could end its pg_dump. This
    // run started no pg_dump, and its own snapshot session closes with it.
    if matches!(e, Error::Busy(_)) {
        return;
    }
    let bound = match e {
        Error::Cancelled { .. } => crate::pg::sessions::SHUTDOWN_END_BOUND,
        _ => crate::pg::sessions::END_BOUND,
    };
    if cancel.is_cancelled() || e.is_retryable() {
        sessions.end_leftovers(&config.database, bound);
    }
}

/// The watchdog on the run's token. Nothing else to do on a stall: the
/// tripped token makes every connection of the run cancel its query and
/// close its socket, and pg_dump is killed where it is awaited.
fn stall_watchdog(config: &Config, cancel: &CancelToken) -> Watchdog {
    Watchdog::with_cancel(config.database.stall_timeout.approx_duration(), cancel.clone(), || {})
}

fn stalled_or(w: &Watchdog, e: Error) -> Error {
    w.check().err().unwrap_or(e)
}

/// Runs one backup into `store`: plan → snapshot → copy → archive → verify
/// → [`Sealed`]. `cancel` stops it at the next poll (every COPY chunk,
/// table and step): the running query is interrupted, pg_dump killed, the
/// partial archive removed, and the error is [`Error::Cancelled`]. The
/// stall watchdog trips the same token.
pub fn run(config: &Config, store: &dyn Store, progress: Progress, cancel: &CancelToken) -> Result<Sealed> {
    let mut needed = None;
    let sessions = Sessions::default();
    seal(config, store, progress, cancel, &mut needed, &sessions)
        .inspect_err(|e| abandoned(config, &sessions, cancel, e))
        .map_err(|e| match needed {
            Some(bytes) => e.with_space_needed(bytes),
            None => e,
        })
}

/// The space a run needs in the storage directory, from the plan's
/// estimates: the archive, plus the largest table's rows, which wait
/// (compressed) in a temporary file until their size is known; counted
/// uncompressed, as an upper bound.
fn space_needed(tables: &[plan::TablePlan], estimated_archive_bytes: i64) -> u64 {
    let spool = tables.iter().filter(|t| t.has_data_file()).map(|t| t.estimated_bytes).max().unwrap_or(0);
    (estimated_archive_bytes.max(0) + spool.max(0)) as u64
}

/// Whether a table's base rows are copied (schema-only tables only get
/// the closure's).
fn base_rows(t: &plan::TablePlan) -> bool {
    t.has_rows && t.mode != Mode::Schema
}

/// [`run`], telling it the plan's space estimate (`needed`) for a full disk
/// and the server sessions it opens (`sessions`). The phases in order; each
/// is a method of [`Sealing`].
fn seal(
    config: &Config,
    store: &dyn Store,
    progress: Progress,
    cancel: &CancelToken,
    needed: &mut Option<u64>,
    sessions: &Sessions,
) -> Result<Sealed> {
    let started = Instant::now();
    let created = chrono::Utc::now();
    cancel.check("connecting")?;
    // A store the run could not write to is told before the database is
    // bothered (FR-4.1); the check itself touches nothing.
    store.check_writable()?;
    // Connect first: a run that cannot reach the database touches no files.
    let snap = Snapshot::open(&config.database, cancel)?;
    sessions.record(&snap.session);
    let _lock = store.lock(progress)?;
    // Under the lock, so two first runs cannot both create a key.
    let signer = store.signer()?;
    let pg_dump = pg_dump::locate(config.database.pg_dump.as_deref(), &snap.server_version, snap.server_major())?;
    let mut s = Sealing {
        config,
        progress,
        sessions,
        dir: store.scratch_dir().to_path_buf(),
        watchdog: stall_watchdog(config, cancel),
        snap,
    };
    // The pg_dumps start before the plan, into the same snapshot, so their
    // catalog reads overlap the plan's queries (issue 24); `schema` awaits
    // them before any row is copied, and an early return kills them.
    let dumps = s.start_dumps(&pg_dump)?;
    let (draft, closure_job) = s.plan()?;

    s.watchdog.check()?;
    // Removed on every early return; only `finalize` keeps it. Its name may
    // carry `_2` when an earlier run of the same second took the plain one.
    let partial = store.create_partial(&archive::archive_name(&config.storage.name_prefix, created))?;
    let name = partial.name.clone();
    let partial_path = partial.path.clone();
    let mtime = chrono::DateTime::parse_from_rfc3339(&s.snap.now)
        .map(|t| t.timestamp() as u64)
        .unwrap_or(created.timestamp() as u64);
    let mut writer = Writer::create(&partial_path, mtime)?;

    let (mut members, schema) = s.schema(dumps, &mut writer)?;
    *needed = Some(space_needed(draft.tables(), draft.estimated_archive_bytes()));
    let (plan, spools) = s.rows(draft, closure_job, &writer, cancel)?;
    *needed = Some(space_needed(&plan.tables, plan.estimated_archive_bytes));
    let tables = s.tables(&plan, spools, &mut writer, &mut members)?;
    let sequences = s.sequences(&plan)?;

    s.watchdog.check()?;
    // The snapshot (and its locks) are released as soon as nothing reads it.
    let Sealing { mut snap, watchdog, .. } = s;
    let encoding = crate::pg::catalog::database_encoding(&mut snap.client, snap.server_version_num)
        .map_err(|e| stalled_or(&watchdog, e))?;
    snap.close().map_err(|e| stalled_or(&watchdog, e))?;
    let mut warnings = plan.warnings.clone();
    let roles = roles(schema.roles, &watchdog, &mut warnings, progress)?;
    let manifest = Manifest {
        format: archive::FORMAT.into(),
        format_version: archive::FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        created_at: created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        snapshot_time: plan.snapshot_time.clone(),
        database: plan.database.clone(),
        server_version: plan.server_version.clone(),
        pg_dump_version: pg_dump.version.clone(),
        database_encoding: Some(encoding),
        tables,
        foreign_keys: plan.foreign_keys.clone(),
        sequences,
        files: Vec::new(),
        members: Vec::new(),
        warnings: archive::manifest::capped_warnings(warnings),
    };
    let rest = Rest { constraints: schema.constraints.path(), roles: roles.as_ref().map(|r| r.path()), members };
    let manifest = write_rest(&mut writer, manifest, rest, &plan, &watchdog, progress)?;
    let info = texts::backup_info(&manifest, &name, Some((&signer.public_key(), &signer.key_id())));
    writer.append_bytes(archive::INFO, 0o600, info.as_bytes())?;
    writer.finish(Some((&signer, &name)))?;
    watchdog.check()?;
    drop(watchdog);

    let own_key = crate::archive::signature::TrustedKey::of_signer(&signer, "the store's signing key");
    let trust = crate::archive::signature::Trust { keys: vec![own_key], ..Default::default() };
    let mut verified = crate::verify::verify(&partial_path, trust, progress).map_err(Error::Unverified)?;
    cancel.check("sealing the verified archive")?;
    let final_path = store.finalize(partial)?;
    let size = std::fs::metadata(&final_path).map_err(|e| Error::io("reading", &final_path, e))?.len();
    let path = std::fs::canonicalize(&final_path).unwrap_or(final_path);
    verified.archive = path.clone();
    Ok(Sealed { path, size, duration_ms: started.elapsed().as_millis() as u64, verified })
}

/// The members written by the schema phase, and its pg_dump outputs still
/// to be appended after the rows.
struct Schema {
    constraints: tempfile::NamedTempFile,
    roles: Result<pg_dump::Running>,
}

/// The run's pg_dump children, started before the plan.
struct Dumps {
    pre: pg_dump::Running,
    post: pg_dump::Running,
    roles: Result<pg_dump::Running>,
}

/// What the last members are made from.
struct Rest<'a> {
    constraints: &'a Path,
    roles: Option<&'a Path>,
    members: Vec<archive::ManifestFile>,
}

/// One run's open snapshot and what every phase reads: the config, the
/// scratch directory, the stall watchdog and the progress sink.
struct Sealing<'a> {
    config: &'a Config,
    progress: Progress<'a>,
    sessions: &'a Sessions,
    dir: PathBuf,
    watchdog: Watchdog,
    snap: Snapshot,
}

impl Sealing<'_> {
    /// The plan without its closure, refusing what must not be backed up.
    fn plan(&mut self) -> Result<(plan::Draft, plan::ClosureJob)> {
        let config = self.config;
        self.watchdog.doing("planning");
        let (draft, closure_job) = plan::build_base(&mut self.snap, config, &self.watchdog, self.progress)
            .map_err(|e| stalled_or(&self.watchdog, e))?;
        if draft.tables().is_empty() {
            // An archive of nothing would read as a good backup (FR-11.1).
            return Err(Error::Failed(format!(
                "database {} has no tables (none in any schema lifeboat reads): nothing to back up; is this the \
                 application's database? Check [database] name (or DATABASE_URL), or run the application's \
                 migrations first",
                config.database.display_target()
            )));
        }
        if let Some(m) = draft.files().missing.iter().find(|m| m.required) {
            return Err(Error::FileMissing {
                pattern: m.pattern.clone(),
                base: config.files.base_dir.clone().unwrap_or_default(),
            });
        }
        if !draft.files().refused.is_empty() {
            let links: Vec<String> = draft.files().refused.iter().map(|r| r.describe()).collect();
            return Err(Error::Failed(format!("refusing to back up config files: {}", links.join("; "))));
        }
        Ok((draft, closure_job))
    }

    /// Starts pg_dump's pre-data and post-data and pg_dumpall's roles into
    /// the run's snapshot.
    fn start_dumps(&self, pg_dump: &pg_dump::PgDump) -> Result<Dumps> {
        let (db, dir) = (&self.config.database, &self.dir);
        let snap_at: (&str, i32) = (&self.snap.id, self.snap.server_version_num);
        Ok(Dumps {
            pre: pg_dump::start(pg_dump, db, snap_at, Section::PreData, dir)?,
            post: pg_dump::start(pg_dump, db, snap_at, Section::PostData, dir)?,
            roles: pg_dump::start(pg_dump, db, snap_at, Section::Roles, dir),
        })
    }

    /// pg_dump's pre-data (the archive's first member) and post-data; the
    /// roles' pg_dumpall keeps running.
    fn schema(&mut self, dumps: Dumps, writer: &mut Writer) -> Result<(Vec<archive::ManifestFile>, Schema)> {
        let Dumps { pre, post, roles } = dumps;
        (self.progress)(Event::Step("schema"));
        let (watchdog, snap) = (&self.watchdog, &mut self.snap);
        watchdog.doing("pg_dump --section=pre-data");
        let schema = pre.finish_keeping(watchdog, &mut || snap.keep_alive()).map_err(|e| stalled_or(watchdog, e))?;
        // post-data too, before the rows: it read the same catalog as pre-data,
        // so it is about done, and once it exits no pg_dump session (which
        // turns the server's idle-in-transaction limit off for itself, see
        // pg::sessions) holds locks through the long part of the run.
        watchdog.doing("pg_dump --section=post-data");
        let constraints =
            post.finish_keeping(watchdog, &mut || snap.keep_alive()).map_err(|e| stalled_or(watchdog, e))?;
        watchdog.check()?;
        let members = vec![append_file(writer, archive::SCHEMA, schema.path())?];
        Ok((members, Schema { constraints, roles }))
    }

    /// Every table's base rows, spooled, while the closure runs on a second
    /// connection into the same snapshot (the closure only adds rows after
    /// them): the plan's queries are the server's work on one core, the
    /// COPY and its compression use the others. Members are written in plan
    /// order once the closure is known ([`Sealing::tables`]).
    fn rows(
        &mut self,
        draft: plan::Draft,
        closure_job: plan::ClosureJob,
        writer: &Writer,
        cancel: &CancelToken,
    ) -> Result<(Plan, Vec<Option<Spool>>)> {
        let progress = self.progress;
        progress(Event::Step("closure"));
        self.watchdog.doing("opening a second connection into the snapshot for the closure");
        let closure_cancel = cancel.child();
        let names: Vec<(String, String)> = draft.tables().iter().map(|t| (t.qualified(), t.display())).collect();
        let mut second = self
            .snap
            .import(&self.config.database, &closure_cancel, &names, progress)
            .map_err(|e| stalled_or(&self.watchdog, e))?;
        self.sessions.record(&second.session);
        progress(Event::Step("data"));
        progress(Event::Totals {
            bytes: draft.tables().iter().filter(|t| base_rows(t)).map(|t| t.estimated_bytes.max(0) as u64).sum(),
            rows: draft.tables().iter().filter(|t| base_rows(t)).map(|t| t.estimated_rows.max(0) as u64).sum(),
        });
        let (watchdog, snap, dir) = (&self.watchdog, &mut self.snap, &self.dir);
        let copier = Copier { dir, watchdog, progress };
        std::thread::scope(|scope| -> Result<_> {
            let closure = scope.spawn(|| {
                let sets = closure_job.compute(&mut second.client, watchdog, progress);
                (sets, second.close())
            });
            let mut spools = Vec::new();
            let copied = (|| -> Result<()> {
                for t in draft.tables() {
                    if !base_rows(t) {
                        spools.push(None);
                        continue;
                    }
                    watchdog.check()?;
                    watchdog.doing(format!("copying rows of {}", t.display()));
                    let mut spool = writer.spool(dir);
                    copier.base(snap, t, false, &mut spool)?;
                    spool.drain().map_err(|e| Error::io(format!("compressing rows of {} in", t.display()), dir, e))?;
                    spools.push(Some(spool));
                }
                Ok(())
            })();
            // While the closure still runs, this connection waits: it is kept
            // alive (see pg::sessions), and a failure to do so ends the run.
            let copied = copied.and_then(|()| {
                while !closure.is_finished() {
                    snap.keep_alive()?;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Ok(())
            });
            if copied.is_err() {
                // The run ends: so does the closure, without ending the run's token.
                closure_cancel.cancel();
            }
            let (sets, closed) = closure.join().expect("the closure thread does not panic");
            copied.map_err(|e| stalled_or(watchdog, e))?;
            let sets = sets.map_err(|e| stalled_or(watchdog, e))?;
            closed.map_err(|e| stalled_or(watchdog, e))?;
            Ok((draft.with_closure(sets), spools))
        })
    }

    /// Each table's member (its spooled base rows and the closure's), in
    /// plan order, and its manifest entry.
    fn tables(
        &mut self,
        plan: &Plan,
        mut spools: Vec<Option<Spool>>,
        writer: &mut Writer,
        members: &mut Vec<archive::ManifestFile>,
    ) -> Result<Vec<ManifestTable>> {
        let mut tables = Vec::new();
        for (t, spool) in plan.tables.iter().zip(spools.iter_mut()) {
            let mut mt = manifest_table(t);
            self.watchdog.check()?;
            if t.has_data_file() {
                self.table_member(t, spool.take(), writer, members, &mut mt)?;
            }
            tables.push(mt);
        }
        Ok(tables)
    }

    /// Writes `t`'s member (and its psql-safe copy when the CSV needs one)
    /// and fills in its manifest entry `mt`.
    fn table_member(
        &mut self,
        t: &plan::TablePlan,
        spool: Option<Spool>,
        writer: &mut Writer,
        members: &mut Vec<archive::ManifestFile>,
        mt: &mut ManifestTable,
    ) -> Result<()> {
        let (watchdog, snap, dir, progress) = (&self.watchdog, &mut self.snap, &self.dir, self.progress);
        let copier = Copier { dir, watchdog, progress };
        watchdog.doing(format!("copying rows of {}", t.display()));
        let spool = match spool {
            Some(mut spool) => {
                copier.closure(snap, t, false, &mut spool).map_err(|e| stalled_or(watchdog, e))?;
                spool
            }
            // Schema only: the closure's rows are its only ones.
            None => {
                let mut spool = writer.spool(dir);
                copier.member(snap, t, false, &mut spool).map_err(|e| stalled_or(watchdog, e))?;
                spool
            }
        };
        let (rows, member) = (spool.csv.rows(), archive::data_member(&t.schema, &t.name));
        let psql_unsafe = spool.csv.psql_unsafe;
        let written = writer.append_spool(&member, 0o600, spool)?;
        if psql_unsafe {
            // Same snapshot, same rows: text format escapes newlines, so
            // no line of it can be `\.` (see ManifestTable::psql_file).
            let mut text = writer.spool(dir);
            let quiet = Copier { dir, watchdog, progress: &crate::events::silent };
            quiet.member(snap, t, true, &mut text).map_err(|e| stalled_or(watchdog, e))?;
            let copy_member = archive::psql_member(&t.schema, &t.name);
            members.push(writer.append_spool(&copy_member, 0o600, text)?);
            mt.psql_file = Some(copy_member);
        }
        mt.rows = rows;
        mt.bytes = written.bytes;
        mt.sha256 = Some(written.sha256);
        mt.file = Some(member);
        progress(Event::Table {
            name: format!("{}.{}", t.schema, t.name),
            rows,
            closure_rows: t.closure_rows,
            bytes: written.bytes,
        });
        Ok(())
    }

    /// Every sequence's value, read in the snapshot.
    fn sequences(&mut self, plan: &Plan) -> Result<Vec<SequenceValue>> {
        self.watchdog.doing("reading sequence values");
        let mut sequences = Vec::new();
        for s in &plan.sequences {
            let q = crate::pg::qualified(&s.schema, &s.name);
            let row = self
                .snap
                .client
                .query_one(&format!("SELECT last_value, is_called FROM {q}"), &[])
                .map_err(db_err(format!("reading sequence {q}")))
                .map_err(|e| stalled_or(&self.watchdog, e))?;
            sequences.push(SequenceValue {
                schema: s.schema.clone(),
                name: s.name.clone(),
                last_value: row.get(0),
                is_called: row.get(1),
            });
        }
        Ok(sequences)
    }
}

/// `t`'s manifest entry before its member is written.
fn manifest_table(t: &plan::TablePlan) -> ManifestTable {
    ManifestTable {
        schema: t.schema.clone(),
        name: t.name.clone(),
        mode: t.mode,
        unclassified: t.unclassified,
        columns: t.columns.clone(),
        filter: t.base_predicate("t"),
        window: t.window.as_ref().map(|w| ManifestWindow {
            column: w.column.clone(),
            keep: w.keep.to_string(),
            cutoff: w.cutoff.clone(),
        }),
        rows: 0,
        closure_rows: t.closure_rows,
        bytes: 0,
        sha256: None,
        file: None,
        psql_file: None,
    }
}

/// pg_dumpall's roles, or a warning why the archive goes without them.
fn roles(
    roles: Result<pg_dump::Running>,
    watchdog: &Watchdog,
    warnings: &mut Vec<String>,
    progress: Progress,
) -> Result<Option<tempfile::NamedTempFile>> {
    watchdog.doing("pg_dumpall --roles-only");
    match roles.and_then(|r| r.finish(watchdog)) {
        Ok(file) => Ok(Some(file)),
        Err(e @ (Error::Stalled { .. } | Error::Cancelled { .. })) => Err(e),
        // The archive is complete without it: the roles are only a help
        // for creating them on another cluster.
        Err(e) => {
            let w = format!(
                "database/roles.sql was left out: pg_dumpall --roles-only did not succeed ({e}); the owners and privileges in schema.sql name roles \
                 that must exist on the target: create them there, or restore with --no-owner"
            );
            progress(Event::Warning(w.clone()));
            warnings.push(w);
            Ok(None)
        }
    }
}

/// The members after the rows: sequences, constraints, roles, restore.sql,
/// the config files and the manifest.
fn write_rest(
    writer: &mut Writer,
    mut manifest: Manifest,
    rest: Rest,
    plan: &Plan,
    watchdog: &Watchdog,
    progress: Progress,
) -> Result<Manifest> {
    let mut members = rest.members;
    members.push(writer.append_bytes(archive::SEQUENCES, 0o600, texts::sequences_sql(&manifest).as_bytes())?);
    members.push(append_file(writer, archive::CONSTRAINTS, rest.constraints)?);
    if let Some(roles) = rest.roles {
        members.push(append_file(writer, archive::ROLES, roles)?);
    }
    members.push(writer.append_bytes(archive::RESTORE_SQL, 0o600, texts::restore_sql(&manifest).as_bytes())?);

    progress(Event::Step("files"));
    for f in &plan.files.files {
        watchdog.doing(format!("reading config file {}", f.source.display()));
        let file = std::fs::File::open(&f.source).map_err(|e| Error::io("reading config file", &f.source, e))?;
        let size = file.metadata().map_err(|e| Error::io("reading config file", &f.source, e))?.len();
        let mut m = writer.append(&format!("{}{}", archive::CONFIG_DIR, f.path), f.mode, size, file)?;
        m.mode = Some(f.mode);
        manifest.files.push(m);
    }
    manifest.members = members;

    let manifest_json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    writer.append_bytes(archive::MANIFEST, 0o600, &manifest_json)?;
    Ok(manifest)
}

fn append_file(writer: &mut Writer, member: &str, path: &Path) -> Result<archive::ManifestFile> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let size = f.metadata().map_err(|e| Error::io("reading", path, e))?.len();
    writer.append(member, 0o600, size, f)
}
