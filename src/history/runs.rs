//! Runs and their steps in the history (spec 7.5, FR-20): what started a
//! run, how it ended, its delivery, offsite copy and restore rehearsal.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{parse_ts, sql_err, ts, History};
use super::{DeliveryStatus, OffsiteStatus, RehearsalStatus, RunStatus, StepStatus};
use crate::error::Result;

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

/// One step of a run as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub step: String,
    pub status: StepStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// How a run ended, as [`History::finish`] records it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `success` | `failed` | `aborted` | `skipped` (spec 7.5).
    pub status: RunStatus,
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

/// `status` is `failed` unless set: a forgotten status never reads as a success.
impl Default for Outcome {
    fn default() -> Outcome {
        Outcome {
            status: RunStatus::Failed,
            failed_step: None,
            error: None,
            archive: None,
            size_bytes: None,
            duration_ms: 0,
            tables: None,
            rows: None,
            closure_rows: None,
            warnings: Vec::new(),
        }
    }
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub trigger: String,
    pub status: RunStatus,
    pub failed_step: Option<String>,
    pub error: Option<String>,
    pub archive: Option<String>,
    pub size_bytes: Option<u64>,
    pub duration_ms: Option<u64>,
    pub rows: Option<u64>,
    pub delivery_status: Option<DeliveryStatus>,
    pub restore_test_status: Option<RehearsalStatus>,
    pub restore_test_duration_ms: Option<u64>,
    /// `uploaded`, `caught_up` or `failed` with `[remote]` (FR-29.4).
    pub offsite_status: Option<OffsiteStatus>,
}

impl RunRecord {
    /// `failed at connect: <error>` (or the status when there is no error).
    pub fn summary(&self) -> String {
        match (&self.failed_step, &self.error) {
            (Some(step), Some(e)) => format!("{} at {step}: {e}", self.status),
            (None, Some(e)) => format!("{}: {e}", self.status),
            _ => self.status.to_string(),
        }
    }
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

impl History {
    /// Records the start of a run (`running`); returns its id.
    pub fn start(&self, trigger: Trigger, at: DateTime<Utc>) -> Result<i64> {
        self.start_attempt(trigger, at, 1)
    }

    /// [`start`](History::start) of attempt `attempt` (1 = the first) of a run the daemon retries (FR-1.7).
    pub fn start_attempt(&self, trigger: Trigger, at: DateTime<Utc>, attempt: u32) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO runs (started_at, trigger, status, attempt) VALUES (?1, ?2, ?3, ?4)",
                params![ts(at), trigger.as_str(), RunStatus::Running, attempt],
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
                "UPDATE runs SET status = ?2, finished_at = ?1,
                     error = 'the process running this backup ended without finishing it (killed, or the host \
                              stopped); no archive of this run was kept'
                 WHERE status = ?3",
                params![ts(at), RunStatus::Interrupted, RunStatus::Running],
            )
            .map_err(|e| self.err(e))
    }

    /// The newest success that started at or after `t` (catch-up, FR-1.4).
    pub fn success_since(&self, t: DateTime<Utc>) -> Result<Option<RunRecord>> {
        Ok(self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM runs WHERE status = ?2 AND started_at >= ?1 \
                     ORDER BY id DESC LIMIT 1"
                ),
                params![ts(t), RunStatus::Success],
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

    /// Records run `id`'s delivery outcome.
    pub fn set_delivery(&self, id: i64, status: DeliveryStatus) -> Result<()> {
        self.conn
            .execute("UPDATE runs SET delivery_status = ?2 WHERE id = ?1", params![id, status])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records the offsite copy of `archive` on the newest run that wrote it
    /// (`object` and `sha256` only when it was uploaded). Returns whether
    /// such a run is recorded.
    pub fn set_offsite(
        &self,
        archive: &str,
        status: OffsiteStatus,
        object: Option<&str>,
        sha256: Option<&str>,
    ) -> Result<bool> {
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
    pub fn offsite_status(&self, archive: &str) -> Result<Option<OffsiteStatus>> {
        self.conn
            .query_row(
                "SELECT offsite_status FROM runs WHERE archive = ?1 ORDER BY id DESC LIMIT 1",
                params![archive],
                |r| r.get::<_, Option<OffsiteStatus>>(0),
            )
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(|e| self.err(e))
    }

    /// The newest `limit` runs, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.query(&format!("SELECT {COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"), params![limit as i64])
    }

    /// The newest run that counts for health ([`RunStatus::counts_for_health`]): the
    /// last run that finished, looking past runs stopped on purpose
    /// (`aborted`) and runs refused because another one held the store
    /// (`skipped`).
    pub fn latest_finished(&self) -> Result<Option<RunRecord>> {
        // Literals from a closed set (no user text reaches this SQL).
        let counted = RunStatus::HEALTH.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
        Ok(self
            .query(&format!("SELECT {COLUMNS} FROM runs WHERE status IN ({counted}) ORDER BY id DESC LIMIT 1"), [])?
            .pop())
    }

    /// The newest `limit` successes, newest first.
    pub fn successes(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.query(
            &format!("SELECT {COLUMNS} FROM runs WHERE status = ?2 ORDER BY id DESC LIMIT ?1"),
            params![limit as i64, RunStatus::Success],
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
            .prepare("SELECT archive FROM runs WHERE restore_test_status = ?1 AND archive IS NOT NULL")
            .map_err(|e| self.err(e))?;
        let names = st.query_map([RehearsalStatus::Failed], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        names.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// The newest run with a delivery outcome (`skipped` does not count).
    pub fn latest_delivery(&self) -> Result<Option<RunRecord>> {
        Ok(self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM runs WHERE delivery_status IS NOT NULL AND delivery_status != ?1 \
                     ORDER BY id DESC LIMIT 1"
                ),
                [DeliveryStatus::Skipped],
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
                    "SELECT {COLUMNS} FROM runs WHERE restore_test_status IN (?1, ?2) \
                     ORDER BY id DESC LIMIT 1"
                ),
                [RehearsalStatus::Success, RehearsalStatus::Failed],
            )?
            .pop())
    }

    /// Records the restore rehearsal of the run that wrote `archive`
    /// (`success` or `failed`), with a `restore_test` step whose
    /// detail is what went wrong. `false` when no run wrote `archive`.
    pub fn set_restore_test(
        &mut self,
        archive: &str,
        status: RehearsalStatus,
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
        let step_status = match status {
            RehearsalStatus::Success => StepStatus::Ok,
            RehearsalStatus::Failed => StepStatus::Failed,
        };
        tx.execute(
            "INSERT INTO run_steps (run_id, step, status, started_at, finished_at, detail) \
             VALUES (?1, 'restore_test', ?2, ?3, ?4, ?5)",
            params![id, step_status, ts(started), ts(finished), detail],
        )
        .map_err(|e| sql_err(&path, e))?;
        tx.commit().map_err(|e| sql_err(&path, e))?;
        Ok(true)
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

    /// How many runs ended with each status, in the order of their stored text.
    pub fn runs_by_status(&self) -> Result<Vec<(RunStatus, u64)>> {
        self.counts("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status")
    }

    /// How many runs had each delivery outcome, in the order of their stored text.
    pub fn deliveries_by_status(&self) -> Result<Vec<(DeliveryStatus, u64)>> {
        self.counts(
            "SELECT delivery_status, count(*) FROM runs WHERE delivery_status IS NOT NULL \
             GROUP BY delivery_status ORDER BY delivery_status",
        )
    }

    fn counts<S: rusqlite::types::FromSql>(&self, sql: &str) -> Result<Vec<(S, u64)>> {
        let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows =
            st.query_map([], |r| Ok((r.get::<_, S>(0)?, r.get::<_, i64>(1)? as u64))).map_err(|e| self.err(e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-4.4, FR-17.3
    #[test]
    fn counts_by_status_the_last_rehearsal_and_open_incidents_are_read_back() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(d.path()).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z").unwrap().to_utc();
        for status in [RunStatus::Success, RunStatus::Failed, RunStatus::Success] {
            let id = h.start(Trigger::Schedule, t0).unwrap();
            h.finish(id, t0, &Outcome { status, ..Default::default() }, &[]).unwrap();
            if status == RunStatus::Success {
                h.set_delivery(id, DeliveryStatus::Delivered).unwrap();
            }
        }
        assert_eq!(h.runs_by_status().unwrap(), [(RunStatus::Failed, 1), (RunStatus::Success, 2)]);
        assert_eq!(h.deliveries_by_status().unwrap(), [(DeliveryStatus::Delivered, 2)]);
        assert!(h.latest_rehearsal().unwrap().is_none());
        h.conn
            .execute("UPDATE runs SET restore_test_status = 'failed', restore_test_duration_ms = 900 WHERE id = 3", [])
            .unwrap();
        let r = h.latest_rehearsal().unwrap().unwrap();
        assert_eq!(
            (r.id, r.restore_test_status, r.restore_test_duration_ms),
            (3, Some(RehearsalStatus::Failed), Some(900))
        );
    }

    // covers: FR-20.1
    #[test]
    fn statuses_are_stored_as_the_text_older_lifeboats_wrote_and_an_unknown_one_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let mut h = History::open(d.path()).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z").unwrap().to_utc();
        // Rows as an older lifeboat wrote them (plain text, no migration of stored values).
        h.conn
            .execute_batch(
                "INSERT INTO runs (id, started_at, trigger, status, archive, delivery_status, restore_test_status, \
                   offsite_status) VALUES (1, '2026-12-01T02:00:00.000Z', 'schedule', 'success', 'a.tar.gz', \
                   'skipped', 'success', 'caught_up');
                 INSERT INTO run_steps (run_id, step, status, started_at) VALUES (1, 'plan', 'ok', '2026-12-01T02:00:00.000Z');",
            )
            .unwrap();
        let r = h.get(1).unwrap().unwrap();
        assert_eq!(
            (r.status, r.delivery_status, r.restore_test_status, r.offsite_status),
            (
                RunStatus::Success,
                Some(DeliveryStatus::Skipped),
                Some(RehearsalStatus::Success),
                Some(OffsiteStatus::CaughtUp)
            )
        );
        assert_eq!(h.steps(1).unwrap()[0].status, StepStatus::Ok);
        // And written as that same text.
        let id = h.start(Trigger::Manual, t0).unwrap();
        h.finish(id, t0, &Outcome { status: RunStatus::Aborted, ..Default::default() }, &[]).unwrap();
        assert!(h.set_offsite("a.tar.gz", OffsiteStatus::Uploaded, None, None).unwrap());
        let stored: (String, String) = h
            .conn
            .query_row(
                "SELECT (SELECT status FROM runs WHERE id = ?1), offsite_status FROM runs WHERE id = 1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(stored, ("aborted".to_string(), "uploaded".to_string()));

        // A hostile or newer file: the read fails with a message naming the
        // file, the column and the value; nothing panics.
        h.conn.execute("UPDATE runs SET status = 'Succeeded!' WHERE id = 1", []).unwrap();
        let e = h.recent(10).unwrap_err().to_string();
        assert!(
            e.contains("history.db")
                && e.contains("runs.status holds \"Succeeded!\"")
                && e.contains("upgrade lifeboat"),
            "{e}"
        );
        assert!(h.runs_by_status().is_err());
        // Queries that select by status look past the row.
        assert_eq!(h.latest_finished().unwrap(), None);
        h.conn.execute("UPDATE runs SET status = 'success', offsite_status = x'00ff' WHERE id = 1", []).unwrap();
        let e = h.get(1).unwrap_err().to_string();
        assert!(e.contains("history.db"), "a BLOB is refused too: {e}");
    }
}
