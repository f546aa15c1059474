//! The run history in SQLite (`<storage.dir>/.lifeboat/history.db`, spec
//! 7.5). The schema version lives in `PRAGMA user_version`; opening the file
//! applies the missing migrations in order, in one transaction each, so an
//! older history is upgraded in place and a newer one is refused.
//!
//! Times are RFC 3339 UTC text. Error texts stored here are the messages
//! lifeboat prints, which never hold secrets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, Result};

/// The directory under the storage directory that holds lifeboat's own state.
pub const STATE_DIR: &str = ".lifeboat";
pub const FILE: &str = "history.db";

/// Each entry brings the schema from version `i` to `i + 1`. Never edit a
/// released entry: add one.
const MIGRATIONS: &[&str] = &[
    // 1: runs and their steps (spec 7.5).
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        trigger TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        status TEXT NOT NULL,
        failed_step TEXT,
        error TEXT,
        archive TEXT,
        size_bytes INTEGER,
        duration_ms INTEGER,
        tables INTEGER,
        rows INTEGER,
        closure_rows INTEGER,
        warnings TEXT NOT NULL DEFAULT '[]',
        delivery_status TEXT,
        restore_test_status TEXT,
        restore_test_duration_ms INTEGER
    );
    CREATE INDEX runs_archive ON runs (archive);
    CREATE TABLE run_steps (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        step TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        detail TEXT
    );",
    // 2: incidents (spec 7.5, FR-4.6): at most one open incident per kind,
    // so two processes that see the same problem cannot both open (and
    // alert) it; `monitor_state` keeps when the monitor first looked.
    "CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        last_alert_at TEXT,
        alerts_sent INTEGER NOT NULL DEFAULT 0,
        closed_at TEXT,
        detail TEXT
    );
    CREATE UNIQUE INDEX incidents_one_open ON incidents (kind) WHERE closed_at IS NULL;
    CREATE TABLE monitor_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    // 3 (offsite, issue 11): whether the run's archive has its offsite copy
    // (`uploaded`, `failed`, `caught_up`), where, and the copy's SHA-256.
    "ALTER TABLE runs ADD COLUMN offsite_status TEXT;
    ALTER TABLE runs ADD COLUMN offsite_object TEXT;
    ALTER TABLE runs ADD COLUMN offsite_sha256 TEXT;",
];

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Manual,
    Schedule,
    CatchUp,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch-up",
        }
    }
}

/// One step of a run as recorded (`status`: `ok` or `failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub step: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// The statuses of runs that count for health (FR-4.2, FR-20.1): a run that
/// finished, well (`success`) or not (`failed`, or `interrupted`: its
/// process died). A run stopped on purpose (`aborted`: SIGTERM, Ctrl-C) and
/// a run refused because another one held the store (`skipped`) are
/// neither failures nor successes: they open no incident, send no alert
/// and `check` looks past them (they stay in `list` and on the status
/// page). `running` has not ended. The one rule: `check`, `/healthz`, the
/// monitor, `/metrics` and retention's "prune only after a success" all
/// read it through [`History::latest_finished`].
pub const HEALTH_STATUSES: &[&str] = &["success", "failed", "interrupted"];

/// Whether a run with `status` counts for health: see [`HEALTH_STATUSES`].
pub fn counts_for_health(status: &str) -> bool {
    HEALTH_STATUSES.contains(&status)
}

/// How a run ended, as [`History::finish`] records it.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// `success` | `failed` | `aborted` | `skipped` (spec 7.5).
    pub status: &'static str,
    pub failed_step: Option<String>,
    pub error: Option<String>,
    pub archive: Option<String>,
    pub size_bytes: Option<u64>,
    pub duration_ms: u64,
    pub tables: Option<u64>,
    pub rows: Option<u64>,
    pub closure_rows: Option<u64>,
    pub warnings: Vec<String>,
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub trigger: String,
    pub status: String,
    pub failed_step: Option<String>,
    pub error: Option<String>,
    pub archive: Option<String>,
    pub size_bytes: Option<u64>,
    pub duration_ms: Option<u64>,
    pub rows: Option<u64>,
    pub delivery_status: Option<String>,
    pub restore_test_status: Option<String>,
    pub restore_test_duration_ms: Option<u64>,
    /// `uploaded`, `caught_up` or `failed` with `[remote]` (FR-29.4).
    pub offsite_status: Option<String>,
}

/// An incident (FR-4.6) as recorded: open while `closed_at` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    pub id: i64,
    /// `stale`, `backup_failed`, … ([`crate::monitor::checks::Kind`]).
    pub kind: String,
    pub opened_at: DateTime<Utc>,
    /// `None` while the alert of an open incident is still to be sent.
    pub last_alert_at: Option<DateTime<Utc>>,
    pub alerts_sent: u32,
    pub closed_at: Option<DateTime<Utc>>,
    /// The latest reason, for people (no secrets).
    pub detail: Option<String>,
}

impl RunRecord {
    /// `failed at connect: <error>` (or the status when there is no error).
    pub fn summary(&self) -> String {
        match (&self.failed_step, &self.error) {
            (Some(step), Some(e)) => format!("{} at {step}: {e}", self.status),
            (None, Some(e)) => format!("{}: {e}", self.status),
            _ => self.status.clone(),
        }
    }
}

pub struct History {
    conn: Connection,
    path: PathBuf,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

const COLUMNS: &str = "id, started_at, finished_at, trigger, status, failed_step, error, archive, size_bytes, \
                       duration_ms, rows, delivery_status, restore_test_status, restore_test_duration_ms, \
                       offsite_status";

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let n = |i: usize| -> rusqlite::Result<Option<u64>> { Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64)) };
    Ok(RunRecord {
        id: r.get(0)?,
        started_at: parse_ts(&r.get::<_, String>(1)?),
        finished_at: r.get::<_, Option<String>>(2)?.as_deref().map(parse_ts),
        trigger: r.get(3)?,
        status: r.get(4)?,
        failed_step: r.get(5)?,
        error: r.get(6)?,
        archive: r.get(7)?,
        size_bytes: n(8)?,
        duration_ms: n(9)?,
        rows: n(10)?,
        delivery_status: r.get(11)?,
        restore_test_status: r.get(12)?,
        restore_test_duration_ms: n(13)?,
        offsite_status: r.get(14)?,
    })
}

const INCIDENT_COLUMNS: &str = "id, kind, opened_at, last_alert_at, alerts_sent, closed_at, detail";

fn incident(r: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        kind: r.get(1)?,
        opened_at: parse_ts(&r.get::<_, String>(2)?),
        last_alert_at: r.get::<_, Option<String>>(3)?.as_deref().map(parse_ts),
        alerts_sent: r.get::<_, i64>(4)?.max(0) as u32,
        closed_at: r.get::<_, Option<String>>(5)?.as_deref().map(parse_ts),
        detail: r.get(6)?,
    })
}

impl History {
    /// `<storage_dir>/.lifeboat/history.db`.
    pub fn path_in(storage_dir: &Path) -> PathBuf {
        storage_dir.join(STATE_DIR).join(FILE)
    }

    /// Opens (creating `.lifeboat/` with mode 0700 and the file when
    /// missing) and migrates the history of `storage_dir`.
    pub fn open(storage_dir: &Path) -> Result<History> {
        use std::os::unix::fs::DirBuilderExt;
        let state = storage_dir.join(STATE_DIR);
        if !state.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&state)
                .map_err(|e| Error::io("creating the history directory", &state, e))?;
        }
        Self::open_file(&Self::path_in(storage_dir), true)
    }

    /// Opens the history of `storage_dir` only when it exists (`check`,
    /// `list`, `prune` read it; they never create one). A current schema is
    /// opened read-only, so a HEALTHCHECK that may only read the storage
    /// directory works; an older one is migrated first.
    pub fn open_existing(storage_dir: &Path) -> Result<Option<History>> {
        use rusqlite::OpenFlags as F;
        let path = Self::path_in(storage_dir);
        if !path.is_file() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(&path, F::SQLITE_OPEN_READ_ONLY | F::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| sql_err(&path, e))?;
        let h = History { conn, path: path.clone() };
        h.conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| h.err(e))?;
        if h.version()? == MIGRATIONS.len() {
            return Ok(Some(h));
        }
        drop(h);
        Self::open_file(&path, false).map(Some)
    }

    fn version(&self) -> Result<usize> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).map_err(|e| self.err(e))? as usize)
    }

    fn open_file(path: &Path, create: bool) -> Result<History> {
        use rusqlite::OpenFlags as F;
        let mut flags = F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= F::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(|e| sql_err(path, e))?;
        let mut h = History { conn, path: path.to_path_buf() };
        // Runs of two processes (a manual backup refused while the daemon
        // runs) write here at about the same time.
        h.conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| h.err(e))?;
        h.migrate()?;
        if create {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(h)
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        sql_err(&self.path, e)
    }

    /// The schema version this lifeboat writes.
    pub const VERSION: usize = MIGRATIONS.len();

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let version = self.version()?;
        if version > MIGRATIONS.len() {
            return Err(Error::History {
                path,
                message: format!(
                    "schema version {version} is newer than this lifeboat knows ({}); upgrade lifeboat",
                    MIGRATIONS.len()
                ),
                retryable: false,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            // The write lock first, then the version again: another
            // connection (the daemon's first monitor look beside its first
            // run) may have applied this step in between, and running it
            // twice fails on `CREATE TABLE`.
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| sql_err(&path, e))?;
            let applied: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| sql_err(&path, e))?;
            if applied as usize > i {
                continue;
            }
            tx.execute_batch(sql).map_err(|e| sql_err(&path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(|e| sql_err(&path, e))?;
            tx.commit().map_err(|e| sql_err(&path, e))?;
        }
        Ok(())
    }

    /// Records the start of a run (`running`); returns its id.
    pub fn start(&self, trigger: Trigger, at: DateTime<Utc>) -> Result<i64> {
        self.start_attempt(trigger, at, 1)
    }

    /// [`start`](History::start) of attempt `attempt` (1 = the first) of a run the daemon retries (FR-1.7).
    pub fn start_attempt(&self, trigger: Trigger, at: DateTime<Utc>, attempt: u32) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO runs (started_at, trigger, status, attempt) VALUES (?1, ?2, 'running', ?3)",
                params![ts(at), trigger.as_str(), attempt],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Closes the runs left `running` by a process that died (`kill -9`, a
    /// power cut) as `interrupted` at `at` (FR-20.3, FR-23.3). Only call it
    /// while holding the store's lock: then no live run can own such a row.
    /// Returns how many were closed.
    pub fn mark_interrupted(&self, at: DateTime<Utc>) -> Result<usize> {
        self.conn
            .execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?1,
                     error = 'the process running this backup ended without finishing it (killed, or the host \
                              stopped); no archive of this run was kept'
                 WHERE status = 'running'",
                params![ts(at)],
            )
            .map_err(|e| self.err(e))
    }

    /// The newest success that started at or after `t` (catch-up, FR-1.4).
    pub fn success_since(&self, t: DateTime<Utc>) -> Result<Option<RunRecord>> {
        Ok(self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM runs WHERE status = 'success' AND started_at >= ?1 \
                     ORDER BY id DESC LIMIT 1"
                ),
                params![ts(t)],
            )?
            .pop())
    }

    /// Records how run `id` ended, with its steps.
    pub fn finish(&mut self, id: i64, at: DateTime<Utc>, o: &Outcome, steps: &[StepRecord]) -> Result<()> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql_err(&path, e))?;
        let opt = |v: Option<u64>| v.map(|v| v as i64);
        tx.execute(
            "UPDATE runs SET finished_at = ?2, status = ?3, failed_step = ?4, error = ?5, archive = ?6,
                 size_bytes = ?7, duration_ms = ?8, tables = ?9, rows = ?10, closure_rows = ?11, warnings = ?12
             WHERE id = ?1",
            params![
                id,
                ts(at),
                o.status,
                o.failed_step,
                o.error,
                o.archive,
                opt(o.size_bytes),
                o.duration_ms as i64,
                opt(o.tables),
                opt(o.rows),
                opt(o.closure_rows),
                serde_json::to_string(&o.warnings).expect("strings serialize"),
            ],
        )
        .map_err(|e| sql_err(&path, e))?;
        for s in steps {
            tx.execute(
                "INSERT INTO run_steps (run_id, step, status, started_at, finished_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, s.step, s.status, ts(s.started_at), ts(s.finished_at)],
            )
            .map_err(|e| sql_err(&path, e))?;
        }
        tx.commit().map_err(|e| sql_err(&path, e))
    }

    /// Adds a step to run `id` after it was recorded (retention, which
    /// runs after the run's outcome is written), with its detail.
    pub fn add_step(&self, id: i64, s: &StepRecord, detail: Option<&str>) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO run_steps (run_id, step, status, started_at, finished_at, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, s.step, s.status, ts(s.started_at), ts(s.finished_at), detail],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records run `id`'s delivery outcome (`attached`, `link`, `failed`, …).
    pub fn set_delivery(&self, id: i64, status: &str) -> Result<()> {
        self.conn
            .execute("UPDATE runs SET delivery_status = ?2 WHERE id = ?1", params![id, status])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records the offsite copy of `archive` on the newest run that wrote it
    /// (`object` and `sha256` only when it was uploaded). Returns whether
    /// such a run is recorded.
    pub fn set_offsite(&self, archive: &str, status: &str, object: Option<&str>, sha256: Option<&str>) -> Result<bool> {
        self.conn
            .execute(
                "UPDATE runs SET offsite_status = ?2, offsite_object = ?3, offsite_sha256 = ?4
                 WHERE id = (SELECT max(id) FROM runs WHERE archive = ?1)",
                params![archive, status, object, sha256],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// The offsite status recorded for `archive`'s newest run, if any.
    pub fn offsite_status(&self, archive: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT offsite_status FROM runs WHERE archive = ?1 ORDER BY id DESC LIMIT 1",
                params![archive],
                |r| r.get::<_, Option<String>>(0),
            )
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(|e| self.err(e))
    }

    /// The newest `limit` runs, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.query(&format!("SELECT {COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"), params![limit as i64])
    }

    /// The newest run that counts for health ([`counts_for_health`]): the
    /// last run that finished, looking past runs stopped on purpose
    /// (`aborted`) and runs refused because another one held the store
    /// (`skipped`).
    pub fn latest_finished(&self) -> Result<Option<RunRecord>> {
        let counted = HEALTH_STATUSES.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        Ok(self
            .query(&format!("SELECT {COLUMNS} FROM runs WHERE status IN ({counted}) ORDER BY id DESC LIMIT 1"), [])?
            .pop())
    }

    /// The newest `limit` successes, newest first.
    pub fn successes(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.query(
            &format!("SELECT {COLUMNS} FROM runs WHERE status = 'success' ORDER BY id DESC LIMIT ?1"),
            params![limit as i64],
        )
    }

    /// The run that wrote `archive`, if recorded.
    pub fn by_archive(&self, archive: &str) -> Result<Option<RunRecord>> {
        Ok(self
            .query(
                &format!("SELECT {COLUMNS} FROM runs WHERE archive = ?1 ORDER BY id DESC LIMIT 1"),
                params![archive],
            )?
            .pop())
    }

    /// Archives whose restore rehearsal failed: never good for retention.
    pub fn rehearsal_failed_archives(&self) -> Result<BTreeSet<String>> {
        let mut st = self
            .conn
            .prepare("SELECT archive FROM runs WHERE restore_test_status = 'failed' AND archive IS NOT NULL")
            .map_err(|e| self.err(e))?;
        let names = st.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        names.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// The newest run with a delivery outcome (`skipped` does not count).
    pub fn latest_delivery(&self) -> Result<Option<RunRecord>> {
        Ok(self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM runs WHERE delivery_status IS NOT NULL AND delivery_status != 'skipped' \
                     ORDER BY id DESC LIMIT 1"
                ),
                [],
            )?
            .pop())
    }

    /// The newest run with an offsite outcome (FR-29.4).
    pub fn latest_offsite(&self) -> Result<Option<RunRecord>> {
        Ok(self
            .query(
                &format!("SELECT {COLUMNS} FROM runs WHERE offsite_status IS NOT NULL ORDER BY id DESC LIMIT 1"),
                [],
            )?
            .pop())
    }

    /// The newest run whose archive was rehearsed (`success` or `failed`).
    pub fn latest_rehearsal(&self) -> Result<Option<RunRecord>> {
        Ok(self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM runs WHERE restore_test_status IN ('success', 'failed') \
                     ORDER BY id DESC LIMIT 1"
                ),
                [],
            )?
            .pop())
    }

    /// Records the restore rehearsal of the run that wrote `archive`
    /// (`status`: `success` | `failed`), with a `restore_test` step whose
    /// detail is what went wrong. `false` when no run wrote `archive`.
    pub fn set_restore_test(
        &mut self,
        archive: &str,
        status: &str,
        duration_ms: u64,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
        detail: Option<&str>,
    ) -> Result<bool> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql_err(&path, e))?;
        let id: Option<i64> = tx
            .query_row("SELECT id FROM runs WHERE archive = ?1 ORDER BY id DESC LIMIT 1", params![archive], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| sql_err(&path, e))?;
        let Some(id) = id else { return Ok(false) };
        tx.execute(
            "UPDATE runs SET restore_test_status = ?2, restore_test_duration_ms = ?3 WHERE id = ?1",
            params![id, status, duration_ms as i64],
        )
        .map_err(|e| sql_err(&path, e))?;
        let step_status = if status == "success" { "ok" } else { "failed" };
        tx.execute(
            "INSERT INTO run_steps (run_id, step, status, started_at, finished_at, detail) \
             VALUES (?1, 'restore_test', ?2, ?3, ?4, ?5)",
            params![id, step_status, ts(started), ts(finished), detail],
        )
        .map_err(|e| sql_err(&path, e))?;
        tx.commit().map_err(|e| sql_err(&path, e))?;
        Ok(true)
    }

    /// The open incidents, oldest first. A history from before incidents
    /// existed (opened read-only, not migrated) has none.
    pub fn open_incidents(&self) -> Result<Vec<Incident>> {
        if self.version()? < 2 {
            return Ok(Vec::new());
        }
        self.incidents(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE closed_at IS NULL ORDER BY id"), [])
    }

    /// The newest `limit` incidents, open or closed, newest first.
    pub fn recent_incidents(&self, limit: usize) -> Result<Vec<Incident>> {
        self.incidents(
            &format!("SELECT {INCIDENT_COLUMNS} FROM incidents ORDER BY id DESC LIMIT ?1"),
            params![limit as i64],
        )
    }

    fn incidents(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Incident>> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = st.query_map(p, incident).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Opens an incident of `kind` whose alert is being sent (`last_alert_at
    /// = at`, one alert); `None` when one of that kind is already open
    /// (another process or an earlier tick opened it and alerts for it).
    pub fn open_incident(&self, kind: &str, at: DateTime<Utc>, detail: &str) -> Result<Option<i64>> {
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO incidents (kind, opened_at, last_alert_at, alerts_sent, detail) \
                 VALUES (?1, ?2, ?2, 1, ?3)",
                params![kind, ts(at), detail],
            )
            .map_err(|e| self.err(e))?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }

    /// Claims the next alert of open incident `id` whose last alert is
    /// `previous`: `true` for exactly one caller (compare and set).
    pub fn claim_alert(
        &self,
        id: i64,
        previous: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        detail: &str,
    ) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE incidents SET last_alert_at = ?3, alerts_sent = alerts_sent + 1, detail = ?4 \
                 WHERE id = ?1 AND closed_at IS NULL AND last_alert_at IS ?2",
                params![id, previous.map(ts), ts(at), detail],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// An alert of incident `id` that reached no channel: the next look
    /// sends it again instead of waiting `realert_hours`.
    pub fn alert_not_sent(&self, id: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE incidents SET last_alert_at = NULL, alerts_sent = max(alerts_sent - 1, 0) WHERE id = ?1",
                params![id],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Closes incident `id`: `true` for exactly one caller, who sends the
    /// recovery notice.
    pub fn close_incident(&self, id: i64, at: DateTime<Utc>) -> Result<bool> {
        let n = self
            .conn
            .execute("UPDATE incidents SET closed_at = ?2 WHERE id = ?1 AND closed_at IS NULL", params![id, ts(at)])
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// When the monitor first looked at this storage directory (recorded
    /// as `now` on the first call): "no success yet" becomes `stale` only
    /// `max_age_hours` after that.
    pub fn monitor_since(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        self.conn
            .execute("INSERT OR IGNORE INTO monitor_state (key, value) VALUES ('first_look', ?1)", params![ts(now)])
            .map_err(|e| self.err(e))?;
        let v: String = self
            .conn
            .query_row("SELECT value FROM monitor_state WHERE key = 'first_look'", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(parse_ts(&v))
    }

    /// The recorded steps of run `id`, in order.
    pub fn steps(&self, id: i64) -> Result<Vec<StepRecord>> {
        let mut st = self
            .conn
            .prepare("SELECT step, status, started_at, finished_at FROM run_steps WHERE run_id = ?1 ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![id], |r| {
                Ok(StepRecord {
                    step: r.get(0)?,
                    status: r.get(1)?,
                    started_at: parse_ts(&r.get::<_, String>(2)?),
                    finished_at: parse_ts(&r.get::<_, Option<String>>(3)?.unwrap_or_default()),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    fn query(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<RunRecord>> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = st.query_map(p, record).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// How many runs ended with each status (`success`, `failed`, …), by status.
    pub fn runs_by_status(&self) -> Result<Vec<(String, u64)>> {
        self.counts("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status")
    }

    /// How many runs had each delivery outcome (`attached`, `link`, `failed`, …).
    pub fn deliveries_by_status(&self) -> Result<Vec<(String, u64)>> {
        self.counts(
            "SELECT delivery_status, count(*) FROM runs WHERE delivery_status IS NOT NULL \
             GROUP BY delivery_status ORDER BY delivery_status",
        )
    }

    fn counts(&self, sql: &str) -> Result<Vec<(String, u64)>> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows =
            st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// A run by id.
    pub fn get(&self, id: i64) -> Result<Option<RunRecord>> {
        self.conn
            .query_row(&format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"), params![id], record)
            .optional()
            .map_err(|e| self.err(e))
    }
}

fn sql_err(path: &Path, e: rusqlite::Error) -> Error {
    let retryable =
        matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked));
    Error::History { path: path.to_path_buf(), message: e.to_string(), retryable }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-20.1, FR-20.3, FR-23.3
    #[test]
    fn a_run_is_recorded_with_its_steps_and_the_schema_is_versioned() {
        let d = tempfile::tempdir().unwrap();
        assert!(History::open_existing(d.path()).unwrap().is_none(), "reading never creates a history");
        let mut h = History::open(d.path()).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z").unwrap().to_utc();
        let id = h.start(Trigger::Manual, t0).unwrap();
        assert_eq!(h.get(id).unwrap().unwrap().status, "running");
        let steps = [StepRecord { step: "plan".into(), status: "ok".into(), started_at: t0, finished_at: t0 }];
        let o = Outcome {
            status: "success",
            archive: Some("critical_backup_20261201_020000.tar.gz".into()),
            size_bytes: Some(1234),
            rows: Some(7),
            ..Default::default()
        };
        h.finish(id, t0 + chrono::Duration::seconds(3), &o, &steps).unwrap();
        h.set_delivery(id, "attached").unwrap();
        drop(h);

        let h = History::open_existing(d.path()).unwrap().expect("exists now");
        let r = h.by_archive("critical_backup_20261201_020000.tar.gz").unwrap().unwrap();
        assert_eq!((r.status.as_str(), r.size_bytes, r.rows), ("success", Some(1234), Some(7)));
        assert_eq!(r.delivery_status.as_deref(), Some("attached"));
        assert_eq!(r.finished_at, Some(t0 + chrono::Duration::seconds(3)));
        assert_eq!(h.steps(id).unwrap(), steps);
        assert_eq!(h.latest_finished().unwrap().unwrap().id, id);
        let v: i64 = h.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v as usize, History::VERSION);

        drop(h);
        // A current history is opened read-only (a HEALTHCHECK user may only read).
        let ro = History::open_existing(d.path()).unwrap().unwrap();
        assert_eq!(ro.latest_finished().unwrap().unwrap().id, id);
        let write = ro.start(Trigger::Manual, t0).unwrap_err().to_string();
        assert!(write.contains("readonly"), "{write}");
        drop(ro);

        let h = History::open(d.path()).unwrap();
        // A run left `running` by a dead process is closed as interrupted (FR-23.3).
        let dead = h.start_attempt(Trigger::Schedule, t0, 2).unwrap();
        assert!(
            h.success_since(t0).unwrap().is_some()
                && h.success_since(t0 + chrono::Duration::hours(1)).unwrap().is_none()
        );
        assert_eq!(h.mark_interrupted(t0).unwrap(), 1);
        let r = h.get(dead).unwrap().unwrap();
        assert_eq!((r.status.as_str(), r.finished_at), ("interrupted", Some(t0)));
        assert!(r.error.unwrap().contains("ended without finishing"));
        assert_eq!(h.mark_interrupted(t0).unwrap(), 0, "finished runs are left alone");
        // Two connections opening a new history at once both migrate it.
        let fresh = tempfile::tempdir().unwrap();
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let p = fresh.path().to_path_buf();
                std::thread::spawn(move || History::open(&p).map(drop))
            })
            .collect();
        for o in openers {
            o.join().unwrap().unwrap();
        }
        h.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(h);
        let err = History::open(d.path()).err().unwrap().to_string();
        assert!(err.contains("schema version 99 is newer") && err.contains("upgrade lifeboat"), "{err}");

        // An older file (here: version 0, empty) is migrated when opened for reading.
        let old = tempfile::tempdir().unwrap();
        std::fs::create_dir(old.path().join(STATE_DIR)).unwrap();
        Connection::open(History::path_in(old.path())).unwrap().execute_batch("CREATE TABLE x (a)").unwrap();
        let h = History::open_existing(old.path()).unwrap().unwrap();
        assert!(h.recent(5).unwrap().is_empty());
        assert_eq!(h.version().unwrap(), History::VERSION);
    }

    // covers: FR-4.4, FR-17.3
    #[test]
    fn counts_by_status_the_last_rehearsal_and_open_incidents_are_read_back() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(d.path()).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z").unwrap().to_utc();
        for status in ["success", "failed", "success"] {
            let id = h.start(Trigger::Schedule, t0).unwrap();
            h.finish(id, t0, &Outcome { status, ..Default::default() }, &[]).unwrap();
            if status == "success" {
                h.set_delivery(id, "attached").unwrap();
            }
        }
        assert_eq!(h.runs_by_status().unwrap(), [("failed".to_string(), 1), ("success".to_string(), 2)]);
        assert_eq!(h.deliveries_by_status().unwrap(), [("attached".to_string(), 2)]);
        assert!(h.latest_rehearsal().unwrap().is_none());
        h.conn
            .execute("UPDATE runs SET restore_test_status = 'failed', restore_test_duration_ms = 900 WHERE id = 3", [])
            .unwrap();
        let r = h.latest_rehearsal().unwrap().unwrap();
        assert_eq!(
            (r.id, r.restore_test_status.as_deref(), r.restore_test_duration_ms),
            (3, Some("failed"), Some(900))
        );
    }

    // covers: FR-4.6, FR-15.5, FR-6.7
    #[test]
    fn one_open_incident_per_kind_claimed_once_and_rehearsals_recorded_with_the_run() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(d.path()).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z").unwrap().to_utc();
        let t1 = t0 + chrono::Duration::hours(1);
        let id = h.open_incident("stale", t0, "old").unwrap().expect("opened");
        assert_eq!(h.open_incident("stale", t1, "again").unwrap(), None, "one open incident per kind");
        assert!(h.open_incident("low_disk", t0, "full").unwrap().is_some());
        let open = h.open_incidents().unwrap();
        assert_eq!(open.iter().map(|i| i.kind.as_str()).collect::<Vec<_>>(), ["stale", "low_disk"]);
        assert_eq!((open[0].last_alert_at, open[0].alerts_sent), (Some(t0), 1));
        assert!(h.claim_alert(id, Some(t0), t1, "newer").unwrap());
        assert!(!h.claim_alert(id, Some(t0), t1, "newer").unwrap(), "a second claimer loses");
        h.alert_not_sent(id).unwrap();
        let i = &h.open_incidents().unwrap()[0];
        assert_eq!((i.last_alert_at, i.alerts_sent, i.detail.as_deref()), (None, 1, Some("newer")));
        assert!(h.claim_alert(id, None, t1, "sent").unwrap());
        assert!(h.close_incident(id, t1).unwrap());
        assert!(!h.close_incident(id, t1).unwrap(), "closed once");
        assert!(h.open_incident("stale", t1, "new").unwrap().is_some(), "a closed kind can open again");
        assert_eq!(h.recent_incidents(10).unwrap().len(), 3);
        assert_eq!(h.monitor_since(t0).unwrap(), t0);
        assert_eq!(h.monitor_since(t1).unwrap(), t0, "the first look is kept");

        let run = h.start(Trigger::Manual, t0).unwrap();
        let o = Outcome { status: "success", archive: Some("a.tar.gz".into()), ..Default::default() };
        h.finish(run, t0, &o, &[]).unwrap();
        assert!(!h.set_restore_test("other.tar.gz", "failed", 5, t0, t1, None).unwrap());
        assert!(h.set_restore_test("a.tar.gz", "failed", 1234, t0, t1, Some("3 foreign keys restored")).unwrap());
        let r = h.latest_rehearsal().unwrap().unwrap();
        assert_eq!((r.restore_test_status.as_deref(), r.restore_test_duration_ms), (Some("failed"), Some(1234)));
        assert!(h.rehearsal_failed_archives().unwrap().contains("a.tar.gz"));
        let steps = h.steps(run).unwrap();
        assert_eq!((steps[0].step.as_str(), steps[0].status.as_str()), ("restore_test", "failed"));
        assert!(h.latest_delivery().unwrap().is_none());
        h.set_delivery(run, "skipped").unwrap();
        assert!(h.latest_delivery().unwrap().is_none(), "a skipped delivery is no outcome");
        h.set_delivery(run, "failed").unwrap();
        assert_eq!(h.latest_delivery().unwrap().unwrap().id, run);
    }
}
