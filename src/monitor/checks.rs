//! The health checks (FR-4.2), shared by `lifeboat check` and `/healthz`:
//! [`gather`] reads the storage directory's markers and history (never the
//! database); [`evaluate`] turns those [`Facts`] into a [`Health`] with one
//! reason per problem.
//!
//! Problems: no successful backup ever; the last success older than
//! `max_age_hours`; the last run failed; the last archive outside
//! `min_size_mb`–`max_size_mb`, or below half the median of the 7 good runs
//! before it ("the dump suddenly got tiny").
//!
//! The last success's time comes from `.last_backup_success` when it
//! exists (it is what scripts read, and is written after the same verified
//! success as the history row), else from the history; sizes come from the
//! history (bytes), else from `.last_backup_size_mb`.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::MonitorConfig;
use crate::error::Result;
use crate::history::{markers, History, RunRecord};

const MIB: u64 = 1024 * 1024;
/// How many good runs before the last one make the median (FR-4.3).
pub const ANOMALY_WINDOW: usize = 7;
pub const ANOMALY_RATIO: f64 = 0.5;

/// What the storage directory says about the backups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub last_success: Option<DateTime<Utc>>,
    pub last_size_bytes: Option<u64>,
    /// The newest run that ended, when it did not succeed.
    pub last_failure: Option<RunRecord>,
    /// Sizes of the good runs before the last one, newest first (up to [`ANOMALY_WINDOW`]).
    pub previous_sizes: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub healthy: bool,
    pub reasons: Vec<String>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_size_bytes: Option<u64>,
}

/// Reads markers and history of `storage_dir` (creating nothing).
pub fn gather(storage_dir: &Path) -> Result<Facts> {
    let m = markers::read(storage_dir)?;
    let mut facts = Facts::default();
    if let Some(h) = History::open_existing(storage_dir)? {
        let good = h.successes(ANOMALY_WINDOW + 1)?;
        if let Some(last) = good.first() {
            facts.last_success = last.finished_at;
            facts.last_size_bytes = last.size_bytes;
        }
        facts.previous_sizes = good.iter().skip(1).filter_map(|r| r.size_bytes).collect();
        facts.last_failure = h.latest_finished()?.filter(|r| r.status != "success");
    }
    if let Some(t) = m.success_unix.and_then(|s| DateTime::from_timestamp(s, 0)) {
        facts.last_success = Some(t);
    }
    if facts.last_size_bytes.is_none() {
        facts.last_size_bytes = m.size_mb.map(|mb| mb * MIB);
    }
    Ok(facts)
}

/// [`gather`] then [`evaluate`] at `now`: what `lifeboat check` and
/// `/healthz` answer.
pub fn check(storage_dir: &Path, limits: &MonitorConfig, now: DateTime<Utc>) -> Result<Health> {
    Ok(evaluate(&gather(storage_dir)?, limits, now))
}

fn median(v: &[u64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] as f64 } else { (s[n / 2 - 1] as f64 + s[n / 2] as f64) / 2.0 })
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / MIB as f64)
}

/// The verdict at `now`.
pub fn evaluate(f: &Facts, limits: &MonitorConfig, now: DateTime<Utc>) -> Health {
    let mut reasons = Vec::new();
    match f.last_success {
        None => reasons.push("no successful backup yet: run `lifeboat backup` (or start the daemon)".to_string()),
        Some(t) => {
            let age = now.signed_duration_since(t);
            if age > chrono::Duration::hours(i64::from(limits.max_age_hours)) {
                reasons.push(format!(
                    "the last successful backup is {} hours old ({}), more than max_age_hours = {}: check that \
                     the scheduler runs and why runs fail",
                    age.num_hours(),
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    limits.max_age_hours
                ));
            }
        }
    }
    if let Some(r) = &f.last_failure {
        reasons.push(format!(
            "the last run (started {}) {}",
            r.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            r.summary()
        ));
    }
    if let Some(size) = f.last_size_bytes {
        let (min, max) = (u64::from(limits.min_size_mb) * MIB, u64::from(limits.max_size_mb) * MIB);
        if size < min {
            reasons.push(format!(
                "the last archive is {}, below min_size_mb = {}: check that the dump is not empty",
                mb(size),
                limits.min_size_mb
            ));
        } else if size > max {
            reasons.push(format!(
                "the last archive is {}, above max_size_mb = {}: check the scope (or raise max_size_mb)",
                mb(size),
                limits.max_size_mb
            ));
        }
        if let Some(m) = median(&f.previous_sizes) {
            if (size as f64) < ANOMALY_RATIO * m {
                reasons.push(format!(
                    "the last archive is {}, less than half the median {} of the {} good runs before it: \
                     check what the dump lost",
                    mb(size),
                    mb(m as u64),
                    f.previous_sizes.len()
                ));
            }
        }
    }
    Health { healthy: reasons.is_empty(), reasons, last_success: f.last_success, last_size_bytes: f.last_size_bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T03:00:00Z").unwrap().to_utc()
    }

    fn fresh(size: u64) -> Facts {
        Facts {
            last_success: Some(now() - chrono::Duration::hours(1)),
            last_size_bytes: Some(size),
            ..Default::default()
        }
    }

    // covers: FR-4.2, FR-4.3, FR-4.8
    #[test]
    fn a_sudden_drop_below_half_the_median_is_unhealthy_and_the_band_is_in_bytes() {
        let limits = MonitorConfig::default();
        assert!(evaluate(&fresh(40 * MIB), &limits, now()).healthy);
        let mut f = fresh(15 * MIB);
        f.previous_sizes = vec![40 * MIB, 41 * MIB, 39 * MIB, 2 * MIB];
        let h = evaluate(&f, &limits, now());
        assert!(!h.healthy);
        assert!(h.reasons[0].contains("less than half the median 39.5 MB of the 4 good runs"), "{:?}", h.reasons);
        // A 10 KB archive rounds up to a 1 MB marker, but it is still below 1 MB.
        let h = evaluate(&fresh(10_000), &limits, now());
        assert!(h.reasons[0].contains("below min_size_mb = 1"), "{:?}", h.reasons);
        let h = evaluate(&Facts::default(), &limits, now());
        assert_eq!(h.reasons.len(), 1);
        assert!(h.reasons[0].starts_with("no successful backup yet"));
    }
}
