//! The run history (FR-20) in SQLite (`<storage.dir>/.lifeboat/history.db`,
//! spec 7.5). The schema version lives in `PRAGMA user_version`; opening the
//! file applies the missing migrations in order, in one transaction each, so
//! an older history is upgraded in place and a newer one is refused.
//!
//! - this file: opening, the migrations, [`History`];
//! - `runs`: runs and their steps ([`RunRecord`], [`Outcome`]);
//! - `incidents`: incidents (FR-4.6) and the monitor's first look;
//! - `status`: the typed statuses, stored as the text lifeboat always wrote;
//! - `markers`: the classic `.last_backup_success` and
//!   `.last_backup_size_mb` files written after each verified success.
//!
//! Times are RFC 3339 UTC text. Error texts stored here are the messages
//! lifeboat prints, which never hold secrets.
//!
//! Who records: the command line's `backup` and the daemon's runner wrap
//! `backup::run`, so the engine itself stays unaware of where its runs are
//! recorded.

pub mod incidents;
pub mod markers;
pub mod runs;
pub mod status;

pub use incidents::Incident;
pub use runs::{Outcome, RunRecord, StepRecord, Trigger};
pub use status::{DeliveryStatus, OffsiteStatus, RehearsalStatus, RunStatus, StepStatus, UnknownStatus};

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;

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

/// An open history file. Its methods live with what they record: runs in
/// `runs`, incidents in `incidents`.
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
        assert_eq!(h.get(id).unwrap().unwrap().status, RunStatus::Running);
        let steps = [StepRecord { step: "plan".into(), status: StepStatus::Ok, started_at: t0, finished_at: t0 }];
        let o = Outcome {
            status: RunStatus::Success,
            archive: Some("critical_backup_20261201_020000.tar.gz".into()),
            size_bytes: Some(1234),
            rows: Some(7),
            ..Default::default()
        };
        h.finish(id, t0 + chrono::Duration::seconds(3), &o, &steps).unwrap();
        h.set_delivery(id, DeliveryStatus::Delivered).unwrap();
        drop(h);

        let h = History::open_existing(d.path()).unwrap().expect("exists now");
        let r = h.by_archive("critical_backup_20261201_020000.tar.gz").unwrap().unwrap();
        assert_eq!((r.status, r.size_bytes, r.rows), (RunStatus::Success, Some(1234), Some(7)));
        assert_eq!(r.delivery_status, Some(DeliveryStatus::Delivered));
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
        assert_eq!((r.status, r.finished_at), (RunStatus::Interrupted, Some(t0)));
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
}
