//! `lifeboat backup`: the orchestrator, the only place that knows the order
//! of the pipeline (DESIGN.md §1): snapshot → plan → dump → archive →
//! sign → verify → seal. Everything is written to `<name>.partial`, which is
//! removed on any error; only a verified archive gets its final name.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::archive::signature::Signer;
use crate::archive::writer::{Spool, Writer};
use crate::archive::{self, texts, Manifest, ManifestTable, ManifestWindow, SequenceValue};
use crate::config::{Config, Mode};
use crate::db::{db_err, Snapshot};
use crate::dump::{self, Section};
use crate::error::{Error, Result};
use crate::plan::{self, Plan};
use crate::progress::{Event, Progress, Watchdog};

pub const PARTIAL_SUFFIX: &str = ".partial";

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub schema: String,
    pub name: String,
    pub mode: Mode,
    pub unclassified: bool,
    pub rows: u64,
    pub closure_rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub archive: PathBuf,
    pub size_bytes: u64,
    pub duration_ms: u64,
    pub snapshot_time: String,
    pub tables: Vec<TableReport>,
    pub rows: u64,
    pub closure_rows: u64,
    pub files: usize,
    pub warnings: Vec<String>,
}

/// Opens the snapshot and builds the plan, as `lifeboat plan` does.
pub fn plan_only(config: &Config, progress: Progress) -> Result<Plan> {
    let mut snap = Snapshot::open(&config.database)?;
    let cancel = snap.client.cancel_token();
    let watchdog = Watchdog::start(config.database.stall_timeout.approx_duration(), move || {
        let _ = cancel.cancel_query(postgres::NoTls);
    });
    let plan = plan::build(&mut snap, config, &watchdog, progress).map_err(|e| stalled_or(&watchdog, e))?;
    snap.close()?;
    Ok(plan)
}

fn stalled_or(w: &Watchdog, e: Error) -> Error {
    w.check().err().unwrap_or(e)
}

/// Removes the `.partial` file unless the run got as far as renaming it.
struct PartialGuard(Option<PathBuf>);

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub fn run(config: &Config, progress: Progress) -> Result<BackupReport> {
    let started = Instant::now();
    let created = chrono::Utc::now();
    // Connect first: a run that cannot reach the database touches no files.
    let mut snap = Snapshot::open(&config.database)?;
    let (dir, _lock) = prepare_dir(&config.storage.dir, &config.storage.name_prefix, progress)?;
    // Under the lock, so two first runs cannot both create a key.
    let signer = Signer::load_or_create(&dir)?;
    let pg_dump = dump::locate(config.database.pg_dump.as_deref(), &snap.server_version, snap.server_major())?;
    let cancel = snap.client.cancel_token();
    let watchdog = Watchdog::start(config.database.stall_timeout.approx_duration(), move || {
        let _ = cancel.cancel_query(postgres::NoTls);
    });
    let plan = plan::build(&mut snap, config, &watchdog, progress).map_err(|e| stalled_or(&watchdog, e))?;
    if let Some(m) = plan.files.missing.iter().find(|m| m.required) {
        return Err(Error::FileMissing {
            pattern: m.pattern.clone(),
            base: config.files.base_dir.clone().unwrap_or_default(),
        });
    }

    let name = archive::archive_name(&config.storage.name_prefix, created);
    let final_path = dir.join(&name);
    if final_path.exists() {
        return Err(Error::Failed(format!(
            "{} already exists; two backups in the same second? Try again.",
            final_path.display()
        )));
    }
    let partial_path = dir.join(format!("{name}{PARTIAL_SUFFIX}"));
    let mut guard = PartialGuard(None);
    let mtime = chrono::DateTime::parse_from_rfc3339(&snap.now)
        .map(|t| t.timestamp() as u64)
        .unwrap_or(created.timestamp() as u64);
    let mut writer = Writer::create(&partial_path, mtime)?;
    guard.0 = Some(partial_path.clone());

    progress(Event::Step("schema"));
    let pre = dump::start(&pg_dump, &config.database, &snap.id, Section::PreData, &dir)?;
    let post = dump::start(&pg_dump, &config.database, &snap.id, Section::PostData, &dir)?;
    watchdog.doing("pg_dump --section=pre-data");
    let schema = pre.finish(&watchdog)?;
    let mut members = vec![append_file(&mut writer, archive::SCHEMA, schema.path())?];

    progress(Event::Step("data"));
    let mut tables = Vec::new();
    for t in &plan.tables {
        let mut mt = ManifestTable {
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
        };
        if t.has_data_file() {
            watchdog.doing(format!("copying rows of {}", t.qualified()));
            let mut spool = Spool::new(&dir);
            copy_table(&mut snap, &t.copy_sql(), &mut spool, &watchdog).map_err(|e| stalled_or(&watchdog, e))?;
            let (rows, member) = (spool.csv.rows(), archive::data_member(&t.schema, &t.name));
            let psql_unsafe = spool.csv.psql_unsafe;
            let written = writer.append_spool(&member, 0o600, spool)?;
            if psql_unsafe {
                // Same snapshot, same rows: text format escapes newlines, so
                // no line of it can be `\.` (see ManifestTable::psql_file).
                let mut text = Spool::new(&dir);
                copy_table(&mut snap, &t.copy_sql_text(), &mut text, &watchdog)
                    .map_err(|e| stalled_or(&watchdog, e))?;
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
        }
        tables.push(mt);
    }

    watchdog.doing("reading sequence values");
    let mut sequences = Vec::new();
    for s in &plan.sequences {
        let q = crate::db::qualified(&s.schema, &s.name);
        let row = snap
            .client
            .query_one(&format!("SELECT last_value, is_called FROM {q}"), &[])
            .map_err(db_err(format!("reading sequence {q}")))?;
        sequences.push(SequenceValue {
            schema: s.schema.clone(),
            name: s.name.clone(),
            last_value: row.get(0),
            is_called: row.get(1),
        });
    }

    watchdog.doing("pg_dump --section=post-data");
    let constraints = post.finish(&watchdog)?;
    // The snapshot (and its locks) are released as soon as nothing reads it.
    snap.close()?;

    let mut manifest = Manifest {
        format: archive::FORMAT.into(),
        format_version: archive::FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        created_at: created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        snapshot_time: plan.snapshot_time.clone(),
        database: plan.database.clone(),
        server_version: plan.server_version.clone(),
        pg_dump_version: pg_dump.version.clone(),
        tables,
        foreign_keys: plan.foreign_keys.clone(),
        sequences,
        files: Vec::new(),
        members: Vec::new(),
        warnings: plan.warnings.clone(),
    };
    members.push(writer.append_bytes(archive::SEQUENCES, 0o600, texts::sequences_sql(&manifest).as_bytes())?);
    members.push(append_file(&mut writer, archive::CONSTRAINTS, constraints.path())?);
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
    let info = texts::backup_info(&manifest, &name, Some((&signer.public_key(), &signer.key_id())));
    writer.append_bytes(archive::INFO, 0o600, info.as_bytes())?;
    writer.finish(Some((&signer, &name)))?;
    drop(watchdog);

    crate::verify::verify(&partial_path, progress).map_err(|e| {
        Error::Failed(format!("the archive just written failed verification, so it was discarded: {e}"))
    })?;
    std::fs::rename(&partial_path, &final_path)
        .map_err(|e| Error::io("renaming the verified archive to", &final_path, e))?;
    guard.0 = None;
    sync_dir(&dir)?;
    let size_bytes = std::fs::metadata(&final_path).map_err(|e| Error::io("reading", &final_path, e))?.len();

    let tables: Vec<TableReport> = manifest
        .tables
        .iter()
        .map(|t| TableReport {
            schema: t.schema.clone(),
            name: t.name.clone(),
            mode: t.mode,
            unclassified: t.unclassified,
            rows: t.rows,
            closure_rows: t.closure_rows,
            bytes: t.bytes,
        })
        .collect();
    Ok(BackupReport {
        archive: std::fs::canonicalize(&final_path).unwrap_or(final_path),
        size_bytes,
        duration_ms: started.elapsed().as_millis() as u64,
        snapshot_time: manifest.snapshot_time,
        rows: tables.iter().map(|t| t.rows).sum(),
        closure_rows: tables.iter().map(|t| t.closure_rows).sum(),
        tables,
        files: manifest.files.len(),
        warnings: manifest.warnings,
    })
}

fn append_file(writer: &mut Writer, member: &str, path: &Path) -> Result<archive::ManifestFile> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let size = f.metadata().map_err(|e| Error::io("reading", path, e))?.len();
    writer.append(member, 0o600, size, f)
}

fn copy_table(snap: &mut Snapshot, sql: &str, spool: &mut Spool, watchdog: &Watchdog) -> Result<()> {
    use std::io::Write;
    // Closure ctid lists can be long; the start of the statement is enough.
    tracing::debug!(sql = %sql.chars().take(300).collect::<String>(), "COPY out");
    let mut reader = snap.client.copy_out(sql).map_err(db_err("starting COPY"))?;
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                watchdog.check()?;
                return Err(Error::Db {
                    context: "reading COPY output".into(),
                    message: e.to_string(),
                    retryable: true,
                });
            }
        };
        if n == 0 {
            return Ok(());
        }
        spool.write_all(&buf[..n]).map_err(|e| Error::io("spooling rows in", "the storage directory", e))?;
        watchdog.tick(n as u64);
    }
}

/// The lock file that makes backups into one directory take turns.
pub const LOCK_FILE: &str = ".lifeboat.lock";

/// Creates the storage directory (0700), takes its lock (one backup per
/// directory at a time, across processes), then deletes what crashed runs
/// left: `<prefix>_*.tar.gz.partial` and pg_dump temp files. Nothing else is
/// touched. Without the lock a second run would delete the first one's
/// `.partial`. The lock is released when the returned file is dropped (or
/// the process dies).
fn prepare_dir(dir: &Path, prefix: &str, progress: Progress) -> Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating storage directory", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("setting mode 0700 on", dir, e))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("opening lock file", &lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::Busy(format!(
                "another lifeboat backup is running into {} (it holds {LOCK_FILE}); wait for it to finish",
                dir.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("locking", &lock_path, e)),
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = (name.starts_with(&format!("{prefix}_")) && name.ends_with(PARTIAL_SUFFIX))
            || name.starts_with(".lifeboat-pgdump-");
        if stale {
            progress(Event::Warning(format!("removing {name} left by an interrupted run")));
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok((std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()), lock))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("syncing directory", dir, e))
}
