//! The server side of a run's own sessions on the source: the limits the
//! server applies to them, so that a session whose lifeboat died or whose
//! link froze ends by itself, and ending them over a fresh connection when a
//! run is abandoned.
//!
//! Why both: a backup's sessions hold an exported snapshot and ACCESS SHARE
//! locks on every table it reads. When the path to the server freezes,
//! lifeboat's stall watchdog ends the run, but closing a socket on a dead
//! path tells the server nothing: without limits of its own, the server
//! keeps the session (and its locks, which make a deploy's `ALTER TABLE`
//! wait) for as long as its kernel keeps the dead connection.
//!
//! * **The server's own limits** (set on each of lifeboat's sessions, pg_dump's
//!   through `PGOPTIONS`): `tcp_user_timeout` and server-side TCP keepalives
//!   end a session whose peer stopped acknowledging (data unacknowledged or
//!   a zero window for that long); `idle_in_transaction_session_timeout` ends
//!   one that waits in its transaction for a command that never comes, and
//!   `idle_session_timeout` one whose goodbye was lost after its transaction.
//!   Both are [`server_limit`]: the stall timeout plus [`MARGIN`]. A healthy
//!   run is never that quiet on a connection: whatever lifeboat waits for
//!   feeds the watchdog, which fails the run after the stall timeout, and
//!   where the snapshot connection itself waits while other work goes on
//!   (pg_dump, the closure), lifeboat pings it (`Snapshot::keep_alive`).
//!   pg_dump resets `idle_in_transaction_session_timeout` to 0 on its own
//!   sessions; they get the TCP limits only, which a peer that still
//!   acknowledges but never forwards (a hung middlebox) defeats, so a backup
//!   waits for both pg_dumps to exit before it copies any rows.
//! * **Ending them** ([`Sessions::end_leftovers`]): when a run is abandoned,
//!   a fresh connection terminates the sessions the run recorded (its own by
//!   pid and start time, pg_dump's by application name and the snapshot's
//!   xmin), bounded by [`END_BOUND`] ([`SHUTDOWN_END_BOUND`] after a signal),
//!   best effort: it helps when only the
//!   run's connections froze (a dead NAT entry, a hung proxy connection) and
//!   cannot when the whole path is down, which the limits above cover.

use std::sync::Mutex;
use std::time::Duration;

use crate::config::{DatabaseConfig, KEEPALIVES_IDLE, KEEPALIVES_INTERVAL, KEEPALIVES_RETRIES};
use crate::events::{humantime, CancelToken};

/// Added to the stall timeout for the server's limits, so that while
/// lifeboat lives its watchdog fires first and names the stall.
pub const MARGIN: Duration = Duration::from_secs(5);

/// At most this long (or the connect timeout, when shorter) is spent ending
/// an abandoned run's sessions.
pub const END_BOUND: Duration = Duration::from_secs(5);

/// The same for a run stopped by a signal or the daemon's shutdown, which
/// an orchestrator's stop timeout is counting.
pub const SHUTDOWN_END_BOUND: Duration = Duration::from_secs(2);

/// The application name pg_dump's sessions carry (`PGAPPNAME`).
pub const PG_DUMP_APP: &str = "lifeboat-pg_dump";

/// `tcp_user_timeout` and `idle_in_transaction_session_timeout` of the run's
/// sessions: the stall timeout plus [`MARGIN`].
pub fn server_limit(db: &DatabaseConfig) -> Duration {
    db.stall_timeout.approx_duration() + MARGIN
}

/// How often a snapshot connection that waits is pinged: well within
/// [`server_limit`].
pub fn ping_every(db: &DatabaseConfig) -> Duration {
    (server_limit(db) / 3).max(Duration::from_millis(500))
}

/// Session settings for the server's side of the socket: keepalives as
/// lifeboat's own side has them, `tcp_user_timeout` (PostgreSQL ≥ 12), and
/// `idle_session_timeout` (≥ 14) for a session left idle outside its
/// transaction (one whose goodbye was lost on a frozen link; lifeboat's
/// snapshot sessions are never idle outside it). Each is skipped on a
/// server too old to know it.
pub fn limits_sql(db: &DatabaseConfig) -> String {
    let ms = server_limit(db).as_millis();
    format!(
        "SET tcp_keepalives_idle = {}; SET tcp_keepalives_interval = {}; SET tcp_keepalives_count = {KEEPALIVES_RETRIES}; \
         SELECT set_config('tcp_user_timeout', '{ms}', false) WHERE current_setting('server_version_num')::int >= 120000; \
         SELECT set_config('idle_session_timeout', '{ms}', false) WHERE current_setting('server_version_num')::int >= 140000",
        KEEPALIVES_IDLE.as_secs(),
        KEEPALIVES_INTERVAL.as_secs(),
    )
}

/// The same limits as startup options, for pg_dump (`PGOPTIONS`), on a
/// server of `server_version_num`.
pub fn pg_dump_options(db: &DatabaseConfig, server_version_num: i32) -> String {
    let mut o = format!(
        "-c tcp_keepalives_idle={} -c tcp_keepalives_interval={} -c tcp_keepalives_count={KEEPALIVES_RETRIES}",
        KEEPALIVES_IDLE.as_secs(),
        KEEPALIVES_INTERVAL.as_secs()
    );
    if server_version_num >= 120000 {
        o.push_str(&format!(" -c tcp_user_timeout={}", server_limit(db).as_millis()));
    }
    o
}

/// One of the run's own sessions, as the server knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub pid: i32,
    /// `backend_start` in microseconds since the epoch: with the pid, it
    /// names this session and no later one that reuses the pid.
    pub started_us: i64,
    /// The transaction's `backend_xmin`: pg_dump's sessions, which import
    /// the snapshot, have the same.
    pub xmin: Option<String>,
}

/// The query that describes the current session, in its transaction.
pub const SESSION_SQL: &str = "SELECT pid, (extract(epoch FROM backend_start) * 1000000)::bigint, backend_xmin::text \
     FROM pg_stat_activity WHERE pid = pg_backend_pid()";

impl Session {
    pub fn from_row(row: &tokio_postgres::Row) -> Session {
        Session { pid: row.get(0), started_us: row.get(1), xmin: row.get(2) }
    }
}

/// The sessions a run opened, recorded as they open.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<Vec<Session>>);

impl Sessions {
    pub fn record(&self, s: &Session) {
        self.0.lock().expect("not poisoned").push(s.clone());
    }

    /// Ends, over a fresh connection, whatever is left of the recorded
    /// sessions and of pg_dump's sessions on the same snapshot; bounded by
    /// `bound` ([`END_BOUND`] or [`SHUTDOWN_END_BOUND`]; the connect timeout,
    /// when shorter). Best effort: says in the log what it did or why it
    /// could not, and returns the pids it ended.
    pub fn end_leftovers(&self, db: &DatabaseConfig, bound: Duration) -> Vec<i32> {
        let recorded = self.0.lock().expect("not poisoned").clone();
        if recorded.is_empty() {
            return Vec::new();
        }
        let bound = bound.min(db.connect_timeout.approx_duration().max(Duration::from_secs(1)));
        let limit = humantime(server_limit(db));
        match end(db, &recorded, bound) {
            Ok(ended) if ended.is_empty() => {
                tracing::debug!("the abandoned run left no session on the server");
                ended
            }
            Ok(ended) => {
                tracing::warn!(
                    "ended {} server session(s) the abandoned run left on {} (pids {ended:?}), releasing their snapshot and locks",
                    ended.len(),
                    db.display_target()
                );
                ended
            }
            Err(e) => {
                tracing::warn!(
                    "could not end the server sessions the abandoned run may have left on {} ({e}); \
                     the server ends them itself within {limit} (tcp_user_timeout, idle_in_transaction_session_timeout)",
                    db.display_target()
                );
                Vec::new()
            }
        }
    }
}

fn end(db: &DatabaseConfig, recorded: &[Session], bound: Duration) -> crate::error::Result<Vec<i32>> {
    let cancel = CancelToken::new();
    let timer = {
        let cancel = cancel.clone();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(bound) {
                cancel.cancel();
            }
        });
        (done, t)
    };
    let result = (|| {
        let mut client = super::conn::connect(db, &cancel)?;
        let pids: Vec<i32> = recorded.iter().map(|s| s.pid).collect();
        let starts: Vec<i64> = recorded.iter().map(|s| s.started_us).collect();
        let xmins: Vec<String> = recorded.iter().filter_map(|s| s.xmin.clone()).collect();
        let since = recorded.iter().map(|s| s.started_us).min().unwrap_or(0);
        let rows = client
            .query(
                // OFFSET 0 keeps the selection a subquery of its own, so the
                // planner cannot call pg_terminate_backend before it.
                "SELECT pid FROM (SELECT a.pid FROM pg_stat_activity a \
                 WHERE a.pid <> pg_backend_pid() AND a.datname = current_database() AND a.usename = current_user \
                 AND ((a.pid, (extract(epoch FROM a.backend_start) * 1000000)::bigint) IN \
                        (SELECT * FROM unnest($1::int[], $2::bigint[])) \
                      OR (a.application_name = $3 AND a.backend_xmin::text = ANY($4::text[]) \
                          AND (extract(epoch FROM a.backend_start) * 1000000)::bigint >= $5)) \
                 OFFSET 0) ours WHERE pg_terminate_backend(pid)",
                &[&pids, &starts, &PG_DUMP_APP, &xmins, &since],
            )
            .map_err(super::db_err("ending the abandoned run's sessions"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    })();
    drop(timer.0);
    let _ = timer.1.join();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-14.15
    #[test]
    fn the_server_limits_follow_the_stall_timeout_and_pg_dump_gets_tcp_user_timeout_only_from_12() {
        let db = DatabaseConfig { stall_timeout: "2m".parse().unwrap(), ..Default::default() };
        assert_eq!(server_limit(&db), Duration::from_secs(125));
        assert!(ping_every(&db) < server_limit(&db) / 2);
        assert!(limits_sql(&db).contains("'tcp_user_timeout', '125000'"), "{}", limits_sql(&db));
        assert!(pg_dump_options(&db, 150004).ends_with("-c tcp_user_timeout=125000"));
        assert!(!pg_dump_options(&db, 110020).contains("tcp_user_timeout"));
        assert!(pg_dump_options(&db, 110020).contains("-c tcp_keepalives_idle=30"));
    }
}
