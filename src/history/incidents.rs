//! Incidents in the history (spec 7.5, FR-4.6): at most one open incident
//! per kind, alerts claimed by exactly one process, and when the monitor
//! first looked at the storage directory.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{parse_ts, ts, History};
use crate::error::Result;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{DeliveryStatus, Outcome, RehearsalStatus, RunStatus, StepStatus, Trigger};

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
        let o = Outcome { status: RunStatus::Success, archive: Some("a.tar.gz".into()), ..Default::default() };
        h.finish(run, t0, &o, &[]).unwrap();
        assert!(!h.set_restore_test("other.tar.gz", RehearsalStatus::Failed, 5, t0, t1, None).unwrap());
        assert!(h
            .set_restore_test("a.tar.gz", RehearsalStatus::Failed, 1234, t0, t1, Some("3 foreign keys restored"))
            .unwrap());
        let r = h.latest_rehearsal().unwrap().unwrap();
        assert_eq!((r.restore_test_status, r.restore_test_duration_ms), (Some(RehearsalStatus::Failed), Some(1234)));
        assert!(h.rehearsal_failed_archives().unwrap().contains("a.tar.gz"));
        let steps = h.steps(run).unwrap();
        assert_eq!((steps[0].step.as_str(), steps[0].status), ("restore_test", StepStatus::Failed));
        assert!(h.latest_delivery().unwrap().is_none());
        h.set_delivery(run, DeliveryStatus::Skipped).unwrap();
        assert!(h.latest_delivery().unwrap().is_none(), "a skipped delivery is no outcome");
        h.set_delivery(run, DeliveryStatus::Failed).unwrap();
        assert_eq!(h.latest_delivery().unwrap().unwrap().id, run);
    }
}
