//! The exported REPEATABLE READ READ ONLY snapshot every part of a backup
//! reads from: pg_dump (`--snapshot`), the plan, the closure and every COPY.

use std::time::{Duration, Instant};

use super::client::Client;
use super::conn::{connect, db_err, SESSION_SETTINGS};
use super::sessions::{self, Session, SESSION_SQL};
use crate::config::DatabaseConfig;
use crate::error::Result;
use crate::events::{CancelToken, Event, LockHolder, LockWait, Progress};

/// One read-only REPEATABLE READ transaction whose snapshot is exported, so
/// pg_dump and every COPY see the same instant.
pub struct Snapshot {
    pub client: Client,
    /// `pg_export_snapshot()`'s id, for `pg_dump --snapshot`.
    pub id: String,
    /// The snapshot's `now()` in UTC, ISO 8601: windows are measured from it.
    pub now: String,
    pub server_version: String,
    pub server_version_num: i32,
    pub database: String,
    /// This connection's session on the server (to end it if it is left behind).
    pub session: Session,
    /// When [`Snapshot::keep_alive`] last pinged, and how often it must.
    pinged: Instant,
    ping_every: Duration,
}

impl Snapshot {
    /// Opens the snapshot on a connection that `cancel` can end at any
    /// moment, even while it waits for a server that stopped answering.
    pub fn open(db: &DatabaseConfig, cancel: &CancelToken) -> Result<Snapshot> {
        let mut client = connect(db, cancel)?;
        begin(&mut client, db, None).map_err(db_err("opening the snapshot transaction"))?;
        let row = client
            .query_one(
                "SELECT pg_export_snapshot(), to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                 current_setting('server_version'), current_setting('server_version_num')::int, current_database()",
                &[],
            )
            .map_err(db_err("exporting the snapshot"))?;
        let id: String = row.get(0);
        tracing::debug!(snapshot = %id, server = %row.get::<_, String>(2), "snapshot exported");
        let session = describe(&mut client)?;
        Ok(Snapshot {
            id,
            now: row.get(1),
            server_version: row.get(2),
            server_version_num: row.get(3),
            database: row.get(4),
            client,
            session,
            pinged: Instant::now(),
            ping_every: sessions::ping_every(db),
        })
    }

    /// A second connection into this snapshot (`SET TRANSACTION SNAPSHOT`),
    /// e.g. for the closure while the first one copies rows. It takes
    /// ACCESS SHARE on `tables` (`(quoted, shown)` names) at once, as pg_dump
    /// does, so none of its queries can queue behind a lock requested after
    /// this moment; `cancel` ends it at any time.
    pub fn import(
        &self,
        db: &DatabaseConfig,
        cancel: &CancelToken,
        tables: &[(String, String)],
        progress: Progress,
    ) -> Result<Snapshot> {
        let mut client = connect(db, cancel)?;
        begin(&mut client, db, Some(&self.id)).map_err(db_err("importing the snapshot on a second connection"))?;
        let session = describe(&mut client)?;
        let mut second = Snapshot {
            client,
            id: self.id.clone(),
            now: self.now.clone(),
            server_version: self.server_version.clone(),
            server_version_num: self.server_version_num,
            database: self.database.clone(),
            session,
            pinged: Instant::now(),
            ping_every: self.ping_every,
        };
        for (quoted, shown) in tables {
            second.lock(db, quoted, shown, progress)?;
        }
        Ok(second)
    }

    /// `LOCK TABLE ONLY quoted IN ACCESS SHARE MODE`, within `[database]
    /// lock_timeout`: a timeout names the table (`shown`). The lock is
    /// first asked for without waiting (`NOWAIT`, in a savepoint so a
    /// refusal leaves the transaction usable); when another session is in
    /// the way, `progress` gets an [`Event::LockWait`] naming it, the lock
    /// is then waited for, and [`Event::LockGranted`] tells when it came.
    pub fn lock(&mut self, db: &DatabaseConfig, quoted: &str, shown: &str, progress: Progress) -> Result<()> {
        let fail = |e: tokio_postgres::Error| lock_error(db, shown, e);
        let free = self.client.batch_execute(&format!(
            "SAVEPOINT lifeboat_lock; LOCK TABLE ONLY {quoted} IN ACCESS SHARE MODE NOWAIT; RELEASE SAVEPOINT lifeboat_lock"
        ));
        match free {
            Ok(()) => return Ok(()),
            Err(e) if super::sqlstate(&e) == Some("55P03") => {}
            Err(e) => return Err(fail(e)),
        }
        self.client
            .batch_execute("ROLLBACK TO SAVEPOINT lifeboat_lock; RELEASE SAVEPOINT lifeboat_lock")
            .map_err(db_err(format!("waiting for the lock on table {shown}")))?;
        let holders =
            lock_holders(&mut self.client, quoted).map_err(db_err(format!("naming who locks table {shown}")))?;
        let wait = LockWait { table: shown.to_string(), holders, timeout: db.lock_timeout.to_string() };
        tracing::debug!(table = shown, "waiting for a lock: {}", wait.describe());
        progress(Event::LockWait(wait));
        let started = Instant::now();
        self.client.batch_execute(&format!("LOCK TABLE ONLY {quoted} IN ACCESS SHARE MODE")).map_err(fail)?;
        progress(Event::LockGranted { table: shown.to_string(), waited_ms: started.elapsed().as_millis() as u64 });
        Ok(())
    }

    /// Tells the server this connection is still wanted while the run
    /// waits for other work (pg_dump, the closure): a round trip at most
    /// every [`sessions::ping_every`], well within the
    /// `idle_in_transaction_session_timeout` that would otherwise end it.
    pub fn keep_alive(&mut self) -> Result<()> {
        if self.pinged.elapsed() >= self.ping_every {
            self.client.batch_execute("").map_err(db_err("keeping the snapshot connection open"))?;
            self.pinged = Instant::now();
        }
        Ok(())
    }

    pub fn server_major(&self) -> u32 {
        (self.server_version_num / 10000) as u32
    }

    /// Ends the transaction (and with it the exported snapshot and locks).
    pub fn close(mut self) -> Result<()> {
        self.client.batch_execute("COMMIT").map_err(db_err("closing the snapshot transaction"))
    }
}

/// The error of a refused `LOCK TABLE` on `shown`.
fn lock_error(db: &DatabaseConfig, shown: &str, e: tokio_postgres::Error) -> crate::error::Error {
    match super::sqlstate(&e) {
        Some("55P03") => {
            crate::error::Error::LockTimeout { table: shown.to_string(), timeout: db.lock_timeout.to_string() }
        }
        // The first statement that touches each table: the place to
        // say how the backup role gets to read it.
        Some("42501") => crate::error::Error::Db {
            context: format!("locking table {shown}"),
            message: format!(
                "{}; role {:?} may not read it: GRANT pg_read_all_data TO {} (PostgreSQL 14+; or run \
                 scripts/backup-role.sql, which grants it), or back up as the tables' owner",
                super::pg_message(&e),
                db.user,
                super::quote_ident(&db.user)
            ),
            retryable: false,
        },
        _ => db_err(format!("locking table {shown}"))(e),
    }
}

/// The sessions in the way of an ACCESS SHARE lock on `quoted`: those
/// holding, or queued ahead with, ACCESS EXCLUSIVE (the only mode it
/// conflicts with), holders first. `pg_stat_clear_snapshot()` first: the
/// transaction's view of `pg_stat_activity` was taken when it first read it
/// and would not know a session that started since.
fn lock_holders(client: &mut Client, quoted: &str) -> std::result::Result<Vec<LockHolder>, tokio_postgres::Error> {
    client.batch_execute("SELECT pg_stat_clear_snapshot()")?;
    let rows = client.query(
        "SELECT l.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), l.mode, l.granted, \
                (extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.backend_start)) * 1000)::int8 \
         FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'relation' AND l.relation = $1::text::regclass \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.mode = 'AccessExclusiveLock' AND l.pid IS DISTINCT FROM pg_backend_pid() \
         ORDER BY l.granted DESC, l.pid",
        &[&quoted],
    )?;
    Ok(rows
        .iter()
        .map(|r| LockHolder {
            pid: r.get(0),
            application_name: r.get(1),
            user: r.get(2),
            mode: r.get(3),
            granted: r.get(4),
            for_ms: r.get::<_, Option<i64>>(5).map(|ms| ms.max(0) as u64),
        })
        .collect())
}

/// This connection's session as the server knows it (see `sessions`).
fn describe(client: &mut Client) -> Result<Session> {
    let row = client.query_one(SESSION_SQL, &[]).map_err(db_err("reading this session's pid"))?;
    Ok(Session::from_row(&row))
}

/// Session settings and the read-only REPEATABLE READ transaction, with no
/// statement timeout, `[database] lock_timeout`, and the server-side limits
/// of `sessions` (an idle-in-transaction and TCP limit of the stall timeout
/// plus a margin, which replace any shorter limit the server or role sets:
/// lifeboat keeps its waiting connections alive itself); into snapshot
/// `import` when given. row_security = off: a role that RLS would filter
/// gets an error instead of a backup silently missing rows.
fn begin(
    client: &mut Client,
    db: &DatabaseConfig,
    import: Option<&str>,
) -> std::result::Result<(), tokio_postgres::Error> {
    let lock_ms = db.lock_timeout.approx_duration().as_millis();
    let idle_ms = sessions::server_limit(db).as_millis();
    let limits = sessions::limits_sql(db);
    let import =
        import.map(|id| format!("SET TRANSACTION SNAPSHOT {}; ", super::conn::quote_literal(id))).unwrap_or_default();
    // Apart: a SELECT in the same simple query would open the implicit
    // transaction that BEGIN … ISOLATION LEVEL must come before.
    client.batch_execute(&limits)?;
    client.batch_execute(&format!(
        "{SESSION_SETTINGS}; SET row_security = off; \
         BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {import}\
         SET LOCAL idle_in_transaction_session_timeout = {idle_ms}; \
         SET LOCAL statement_timeout = 0; \
         SET LOCAL lock_timeout = {lock_ms}"
    ))
}
