//! `GET /metrics` (FR-17.3, FR-4.4): the history as Prometheus metrics,
//! computed at scrape time (nothing is kept in memory between scrapes, so a
//! restart loses nothing and `lifeboat backup` runs count too). Encoded by
//! prometheus-client in the OpenMetrics text format, which Prometheus
//! scrapes natively.
//!
//! A value the history does not have yet (no success, no rehearsal) is
//! left out rather than reported as 0, so `absent()` alerts work.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::state::AppState;
use crate::history::{History, RehearsalStatus};
use crate::monitor::checks;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What one scrape reports, read from markers and history.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub last_success: Option<DateTime<Utc>>,
    pub last_size_bytes: Option<u64>,
    pub last_duration_ms: Option<u64>,
    pub runs: Vec<(String, u64)>,
    pub deliveries: Vec<(String, u64)>,
    /// The newest rehearsal's status (`failed`, or what a passed one recorded) and restore time.
    pub restore_test: Option<(RehearsalStatus, Option<u64>)>,
    pub incidents_open: u64,
}

/// Reads the snapshot (blocking: rusqlite).
pub fn collect(storage_dir: &std::path::Path) -> crate::Result<Snapshot> {
    let facts = checks::gather(storage_dir)?;
    let mut s =
        Snapshot { last_success: facts.last_success, last_size_bytes: facts.last_size_bytes, ..Default::default() };
    if let Some(h) = History::open_existing(storage_dir)? {
        s.last_duration_ms = h.successes(1)?.first().and_then(|r| r.duration_ms);
        s.runs = h.runs_by_status()?.into_iter().map(|(st, n)| (st.to_string(), n)).collect();
        s.deliveries = h.deliveries_by_status()?.into_iter().map(|(st, n)| (st.to_string(), n)).collect();
        s.restore_test = h.latest_rehearsal()?.and_then(|r| Some((r.restore_test_status?, r.restore_test_duration_ms)));
        s.incidents_open = h.open_incidents()?.len() as u64;
    }
    Ok(s)
}

type Labels = Vec<(String, String)>;

fn gauge(reg: &mut Registry, name: &str, help: &str, value: Option<f64>) {
    if let Some(v) = value {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(v);
        reg.register(name, help, g);
    }
}

fn by_status(reg: &mut Registry, name: &str, help: &str, counts: &[(String, u64)]) {
    let family = Family::<Labels, Counter>::default();
    for (status, n) in counts {
        family.get_or_create(&vec![("status".to_string(), status.clone())]).inc_by(*n);
    }
    reg.register(name, help, family);
}

/// The exposition text of `s` at `now`.
pub fn render(s: &Snapshot, now: DateTime<Utc>) -> String {
    let mut reg = Registry::default();
    let secs = |ms: u64| ms as f64 / 1000.0;
    gauge(
        &mut reg,
        "lifeboat_last_success_timestamp_seconds",
        "Unix time the last verified successful backup ended",
        s.last_success.map(|t| t.timestamp() as f64),
    );
    gauge(
        &mut reg,
        "lifeboat_backup_age_seconds",
        "Seconds since the last verified successful backup ended",
        s.last_success.map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
    );
    gauge(
        &mut reg,
        "lifeboat_last_backup_size_bytes",
        "Size of the last successful backup's archive",
        s.last_size_bytes.map(|b| b as f64),
    );
    gauge(
        &mut reg,
        "lifeboat_last_backup_duration_seconds",
        "How long the last successful backup run took",
        s.last_duration_ms.map(secs),
    );
    // Registered without the suffix: prometheus-client appends `_total` to counters.
    by_status(&mut reg, "lifeboat_runs", "Backup runs recorded in the history, by status", &s.runs);
    by_status(&mut reg, "lifeboat_deliveries", "Deliveries of archives, by outcome", &s.deliveries);
    gauge(&mut reg, "lifeboat_incidents_open", "Monitor incidents open now", Some(s.incidents_open as f64));
    if let Some((status, ms)) = &s.restore_test {
        gauge(
            &mut reg,
            "lifeboat_last_restore_test_duration_seconds",
            "How long the last restore rehearsal's restore took (the measured RTO)",
            ms.map(secs),
        );
        gauge(
            &mut reg,
            "lifeboat_last_restore_test_success",
            "1 when the last restore rehearsal succeeded, else 0",
            Some(if *status == RehearsalStatus::Failed { 0.0 } else { 1.0 }),
        );
    }
    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String cannot fail");
    out
}

pub async fn get(State(state): State<AppState>) -> Response {
    let storage = state.config.storage.dir.clone();
    match super::blocking(move || collect(&storage)).await {
        Ok(s) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], render(&s, Utc::now())).into_response(),
        Err(e) => super::internal_error("/metrics", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-17.3, FR-4.4
    #[test]
    fn what_the_history_does_not_have_is_left_out_not_zero() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T03:00:00Z").unwrap().to_utc();
        let empty = render(&Snapshot::default(), now);
        assert!(!empty.contains("lifeboat_last_success_timestamp_seconds "), "{empty}");
        assert!(!empty.contains("lifeboat_backup_age_seconds "), "{empty}");
        assert!(!empty.contains("lifeboat_last_restore_test"), "{empty}");
        assert!(empty.contains("lifeboat_incidents_open 0"), "{empty}");
        assert!(empty.ends_with("# EOF\n"));

        let s = Snapshot {
            last_success: Some(now - chrono::Duration::seconds(90)),
            restore_test: Some((RehearsalStatus::Failed, None)),
            runs: vec![("success".into(), 3)],
            ..Default::default()
        };
        let text = render(&s, now);
        assert!(text.contains("lifeboat_backup_age_seconds 90.0\n"), "{text}");
        assert!(text.contains("lifeboat_runs_total{status=\"success\"} 3\n"), "{text}");
        assert!(text.contains("lifeboat_last_restore_test_success 0.0\n"), "{text}");
        assert!(!text.contains("lifeboat_last_restore_test_duration_seconds "), "{text}");
    }
}
