//! The health checks (FR-4.2), shared by `lifeboat check` and `/healthz`:
//! [`gather`] reads the storage directory's markers and history (never the
//! database); [`evaluate`] turns those [`Facts`] into a [`Health`] with one
//! reason per problem.
//!
//! Problems, each with a machine [`Kind`] (the incident kinds of FR-4.6):
//! no successful backup ever (`no_success`); the last success older than
//! `max_age_hours` (`stale`); the last run failed (`backup_failed`); the
//! last archive outside `min_size_mb`–`max_size_mb` (`size_out_of_band`),
//! or below half the median of the 7 good runs before it ("the dump
//! suddenly got tiny", `size_anomaly`); less free space in the storage
//! directory than twice the last archive (`low_disk`); the newest good
//! archive no longer of the size its run recorded (`archive_changed`:
//! truncated, overwritten); the newest delivery failed after every
//! attempt (`delivery_failed`: the backup mail reached nobody, and with
//! mail as the only alert channel nothing else would say so; a later
//! delivered run, or `lifeboat send` of that archive, clears it).
//! [`incidents`] adds what only the monitor alerts on, from the runs
//! recorded: the last restore rehearsal failed (`restore_test_failed`),
//! the last offsite copy failed (`offsite_failed`).
//!
//! Which runs count: the newest run that *finished* (`success`, `failed`,
//! `interrupted`); a run stopped on purpose (`aborted`) or refused because
//! another run held the store (`skipped`) is looked past, by the one rule
//! [`counts_for_health`](crate::history::RunStatus::counts_for_health) that
//! `/healthz`, the monitor and `/metrics` share through [`gather`].
//!
//! The archive check is the size only, on every `check` and every monitor
//! look: one `stat`, cheap enough for a HEALTHCHECK every 30 s. Reading
//! the whole archive to compare its hash is `lifeboat verify` (and the
//! nightly restore rehearsal), not a health check's job. A newest archive
//! that is gone altogether is not reported here (the history may describe
//! an archive an operator moved on purpose); `lifeboat list` shows what
//! the directory holds.
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
use crate::history::{markers, DeliveryStatus, History, OffsiteStatus, RehearsalStatus, RunRecord, RunStatus};

/// The MB of `min_size_mb`, `max_size_mb` and `.last_backup_size_mb`, as
/// every size shown to people.
const MB: u64 = markers::MB;
/// How many good runs before the last one make the median (FR-4.3).
pub const ANOMALY_WINDOW: usize = 7;
pub const ANOMALY_RATIO: f64 = 0.5;

/// Free space needed in the storage directory, as a multiple of the last
/// archive's size (the next archive, and its `.partial` beside the old one).
pub const FREE_SPACE_FACTOR: u64 = 2;

/// What the storage directory says about the backups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub last_success: Option<DateTime<Utc>>,
    pub last_size_bytes: Option<u64>,
    /// The newest run that counts for health, when it did not succeed.
    pub last_failure: Option<RunRecord>,
    /// The newest good archive, when its file in the storage directory is no
    /// longer of its recorded size: (name, recorded bytes, bytes on disk).
    pub changed_archive: Option<(String, u64, u64)>,
    /// Sizes of the good runs before the last one, newest first (up to [`ANOMALY_WINDOW`]).
    pub previous_sizes: Vec<u64>,
    /// Bytes an unprivileged writer may still use in the storage directory.
    pub free_bytes: Option<u64>,
    /// The newest run with a delivery outcome, when that outcome is `failed`.
    pub failed_delivery: Option<RunRecord>,
    /// The newest rehearsed run, when its rehearsal failed.
    pub failed_rehearsal: Option<RunRecord>,
    /// The newest run with an offsite outcome, when its upload failed.
    pub failed_offsite: Option<RunRecord>,
}

/// A problem's machine name: the incident kind it opens (FR-4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// No successful backup at all (the monitor calls it `stale` once
    /// `max_age_hours` have passed since it first looked).
    NoSuccess,
    Stale,
    BackupFailed,
    SizeOutOfBand,
    SizeAnomaly,
    LowDisk,
    DeliveryFailed,
    RestoreTestFailed,
    OffsiteFailed,
    ArchiveChanged,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::NoSuccess,
        Kind::Stale,
        Kind::BackupFailed,
        Kind::SizeOutOfBand,
        Kind::SizeAnomaly,
        Kind::LowDisk,
        Kind::DeliveryFailed,
        Kind::RestoreTestFailed,
        Kind::OffsiteFailed,
        Kind::ArchiveChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NoSuccess => "no_success",
            Kind::Stale => "stale",
            Kind::BackupFailed => "backup_failed",
            Kind::SizeOutOfBand => "size_out_of_band",
            Kind::SizeAnomaly => "size_anomaly",
            Kind::LowDisk => "low_disk",
            Kind::DeliveryFailed => "delivery_failed",
            Kind::RestoreTestFailed => "restore_test_failed",
            Kind::OffsiteFailed => "offsite_failed",
            Kind::ArchiveChanged => "archive_changed",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One problem: its kind and one line for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: Kind,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub healthy: bool,
    /// The problems' reasons, in order (what `check` prints).
    pub reasons: Vec<String>,
    pub problems: Vec<Problem>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_size_bytes: Option<u64>,
}

/// Free bytes for unprivileged writers in the file system of `dir`.
pub fn free_space(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
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
            facts.changed_archive = changed(storage_dir, last);
        }
        facts.previous_sizes = good.iter().skip(1).filter_map(|r| r.size_bytes).collect();
        facts.last_failure = h.latest_finished()?.filter(|r| r.status != RunStatus::Success);
        facts.failed_delivery = h.latest_delivery()?.filter(|r| r.delivery_status == Some(DeliveryStatus::Failed));
        facts.failed_rehearsal =
            h.latest_rehearsal()?.filter(|r| r.restore_test_status == Some(RehearsalStatus::Failed));
        facts.failed_offsite = h.latest_offsite()?.filter(|r| r.offsite_status == Some(OffsiteStatus::Failed));
    }
    // A storage directory that does not exist yet has no space problem to report.
    facts.free_bytes = free_space(storage_dir).ok();
    if let Some(t) = m.success_unix.and_then(|s| DateTime::from_timestamp(s, 0)) {
        facts.last_success = Some(t);
    }
    if facts.last_size_bytes.is_none() {
        facts.last_size_bytes = m.size_mb.map(|mb| mb.saturating_mul(MB));
    }
    Ok(facts)
}

/// The newest good archive `run` wrote, when its file is no longer of the
/// recorded size (one `stat`; see the module's notes).
fn changed(storage_dir: &Path, run: &RunRecord) -> Option<(String, u64, u64)> {
    let (name, recorded) = (run.archive.as_ref()?, run.size_bytes?);
    // Only a plain file name is looked up: the history is input too.
    if name.contains('/') || name.starts_with('.') {
        return None;
    }
    // Gone, or unreadable metadata: not evidence of a change.
    let on_disk = std::fs::symlink_metadata(storage_dir.join(name)).ok()?.len();
    (on_disk != recorded).then(|| (name.clone(), recorded, on_disk))
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

use crate::model::human_bytes as mb;

/// The one size-band rule (FR-4.3), for `check`, the backup's report and
/// its mail alike: an archive of `size` bytes outside `[monitor]
/// min_size_mb`–`max_size_mb` (MB of 1,000,000 bytes) is out of band; one
/// below [`ANOMALY_RATIO`] of the median of `previous` (the sizes of the
/// good runs before it, newest first) "suddenly got tiny". The run that
/// made it still succeeded: these are problems to look at, not failures.
pub fn size_band(size: u64, previous: &[u64], limits: &MonitorConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let (min, max) = (u64::from(limits.min_size_mb) * MB, u64::from(limits.max_size_mb) * MB);
    if size < min {
        problems.push(Problem {
            kind: Kind::SizeOutOfBand,
            reason: format!(
                "the last archive is {}, below min_size_mb = {} MB: check that the dump is not empty",
                mb(size),
                limits.min_size_mb
            ),
        });
    } else if size > max {
        problems.push(Problem {
            kind: Kind::SizeOutOfBand,
            reason: format!(
                "the last archive is {}, above max_size_mb = {} MB: check the scope (or raise max_size_mb)",
                mb(size),
                limits.max_size_mb
            ),
        });
    }
    let previous = &previous[..previous.len().min(ANOMALY_WINDOW)];
    if let Some(m) = median(previous) {
        if (size as f64) < ANOMALY_RATIO * m {
            problems.push(Problem {
                kind: Kind::SizeAnomaly,
                reason: format!(
                    "the last archive is {}, less than half the median {} of the {} good runs before it: \
                     check what the dump lost",
                    mb(size),
                    mb(m as u64),
                    previous.len()
                ),
            });
        }
    }
    problems
}

/// [`size_band`] for the archive `name` of `size` bytes, against the good
/// runs recorded in `storage_dir`'s history besides it (the newest
/// [`ANOMALY_WINDOW`]): what the backup's report and its mail say. A
/// history that cannot be read leaves the median out, not the band.
pub fn size_band_of(storage_dir: &Path, name: &str, size: u64, limits: &MonitorConfig) -> Vec<Problem> {
    let previous: Vec<u64> = History::open_existing(storage_dir)
        .ok()
        .flatten()
        .and_then(|h| h.successes(ANOMALY_WINDOW + 1).ok())
        .unwrap_or_default()
        .iter()
        .filter(|r| r.archive.as_deref() != Some(name))
        .filter_map(|r| r.size_bytes)
        .take(ANOMALY_WINDOW)
        .collect();
    size_band(size, &previous, limits)
}

/// The verdict at `now`.
pub fn evaluate(f: &Facts, limits: &MonitorConfig, now: DateTime<Utc>) -> Health {
    let mut problems = Vec::new();
    let mut push = |kind: Kind, reason: String| problems.push(Problem { kind, reason });
    match f.last_success {
        None => {
            push(Kind::NoSuccess, "no successful backup yet: run `lifeboat backup` (or start the daemon)".to_string())
        }
        Some(t) => {
            let age = now.signed_duration_since(t);
            if age > chrono::Duration::hours(i64::from(limits.max_age_hours)) {
                push(
                    Kind::Stale,
                    format!(
                        "the last successful backup is {} hours old ({}), more than max_age_hours = {}: check that \
                     the scheduler runs and why runs fail",
                        age.num_hours(),
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        limits.max_age_hours
                    ),
                );
            }
        }
    }
    if let Some(r) = &f.last_failure {
        push(
            Kind::BackupFailed,
            format!(
                "the last run (started {}) {}",
                r.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.summary()
            ),
        );
    }
    if let Some((name, recorded, on_disk)) = &f.changed_archive {
        push(
            Kind::ArchiveChanged,
            format!(
                "the newest archive {name} is {on_disk} bytes on disk, not the {recorded} bytes its run recorded: \
                 it was truncated or replaced after the backup. Check the disk and who writes there, \
                 `lifeboat verify` it, and run `lifeboat backup` now"
            ),
        );
    }
    if let Some(size) = f.last_size_bytes {
        for p in size_band(size, &f.previous_sizes, limits) {
            push(p.kind, p.reason);
        }
        if let Some(free) = f.free_bytes {
            let needed = size.saturating_mul(FREE_SPACE_FACTOR);
            if free < needed {
                push(
                    Kind::LowDisk,
                    format!(
                        "the storage directory has {} free, less than {FREE_SPACE_FACTOR} × the last archive ({}): \
                         free space there (or lower retention_days) before the next backup",
                        mb(free),
                        mb(size)
                    ),
                );
            }
        }
    }
    if let Some(r) = &f.failed_delivery {
        push(
            Kind::DeliveryFailed,
            format!(
                "the backup mail of the run started {} ({}) was not delivered after every attempt: fix [email] \
                 (`lifeboat test-email` checks it), then `lifeboat send` the archive",
                r.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.archive.as_deref().unwrap_or("no archive")
            ),
        );
    }
    let reasons = problems.iter().map(|p| p.reason.clone()).collect::<Vec<_>>();
    Health {
        healthy: problems.is_empty(),
        reasons,
        problems,
        last_success: f.last_success,
        last_size_bytes: f.last_size_bytes,
    }
}

/// What the monitor opens incidents for (FR-4.3): the health problems and
/// the failures recorded with runs (a restore rehearsal, an offsite copy)
/// that do not make the backups unhealthy but need someone to act.
pub fn incidents(f: &Facts, limits: &MonitorConfig, now: DateTime<Utc>) -> Vec<Problem> {
    let mut problems = evaluate(f, limits, now).problems;
    let when = |r: &RunRecord| r.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if let Some(r) = &f.failed_rehearsal {
        problems.push(Problem {
            kind: Kind::RestoreTestFailed,
            reason: format!(
                "the restore rehearsal of {} (run started {}) failed: see `lifeboat list`, then run \
                 `lifeboat verify <archive> --restore-test <url>` by hand",
                r.archive.as_deref().unwrap_or("the last archive"),
                when(r)
            ),
        });
    }
    if let Some(r) = &f.failed_offsite {
        problems.push(Problem {
            kind: Kind::OffsiteFailed,
            reason: format!(
                "the offsite copy of {} (run started {}) failed: the archive is kept locally and the next run \
                 uploads it; fix what `lifeboat plan` says about [remote]",
                r.archive.as_deref().unwrap_or("the last archive"),
                when(r)
            ),
        });
    }
    problems
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
        assert!(evaluate(&fresh(40 * MB), &limits, now()).healthy);
        let mut f = fresh(15 * MB);
        f.previous_sizes = vec![40 * MB, 41 * MB, 39 * MB, 2 * MB];
        let h = evaluate(&f, &limits, now());
        assert!(!h.healthy);
        assert!(h.reasons[0].contains("less than half the median 39.5 MB of the 4 good runs"), "{:?}", h.reasons);
        // A 10 KB archive rounds up to a 1 MB marker, but it is still below 1 MB.
        let h = evaluate(&fresh(10_000), &limits, now());
        assert!(h.reasons[0].contains("below min_size_mb = 1 MB"), "{:?}", h.reasons);
        let h = evaluate(&Facts::default(), &limits, now());
        assert_eq!(h.reasons.len(), 1);
        assert!(h.reasons[0].starts_with("no successful backup yet"));
    }

    // covers: FR-4.8, FR-20.2
    #[test]
    fn without_a_history_the_size_comes_from_the_marker_in_decimal_mb() {
        let d = tempfile::tempdir().unwrap();
        markers::write(d.path(), 1_795_546_849, 42_300_000).unwrap();
        let f = gather(d.path()).unwrap();
        assert_eq!(f.last_size_bytes, Some(43 * MB), "the 43 MB marker, as 43,000,000 bytes");
        assert_eq!(f.last_success.map(|t| t.timestamp()), Some(1_795_546_849));
        // A marker of the size band's edge reads as exactly that edge: 1 MB is not below min_size_mb = 1.
        std::fs::write(d.path().join(markers::SIZE_MB), "1\n").unwrap();
        let h = evaluate(&gather(d.path()).unwrap(), &MonitorConfig::default(), now());
        assert!(!h.reasons.iter().any(|r| r.contains("min_size_mb")), "{:?}", h.reasons);
    }

    // covers: FR-4.3, FR-4.6
    #[test]
    fn every_problem_has_its_kind_and_low_disk_is_less_than_twice_the_last_archive() {
        let limits = MonitorConfig::default();
        let kinds = |f: &Facts| incidents(f, &limits, now()).iter().map(|p| p.kind).collect::<Vec<_>>();
        let mut f = fresh(40 * MB);
        f.free_bytes = Some(80 * MB);
        assert_eq!(kinds(&f), [], "exactly twice is enough");
        f.free_bytes = Some(80 * MB - 1);
        assert_eq!(kinds(&f), [Kind::LowDisk]);
        let h = evaluate(&f, &limits, now());
        assert!(!h.healthy && h.reasons[0].contains("less than 2 × the last archive (40.0 MB)"), "{:?}", h.reasons);
        assert_eq!(h.problems[0].reason, h.reasons[0]);

        let run = |status: RunStatus| RunRecord {
            id: 1,
            started_at: now(),
            finished_at: Some(now()),
            trigger: "manual".into(),
            status,
            failed_step: None,
            error: None,
            archive: Some("critical_backup_20261201_020000.tar.gz".into()),
            size_bytes: None,
            duration_ms: None,
            rows: None,
            delivery_status: None,
            restore_test_status: None,
            restore_test_duration_ms: None,
            offsite_status: None,
        };
        let mut f = fresh(200 * MB);
        f.previous_sizes = vec![900 * MB; 3];
        f.last_failure = Some(run(RunStatus::Failed));
        f.failed_delivery = Some(run(RunStatus::Success));
        f.failed_rehearsal = Some(run(RunStatus::Success));
        f.failed_offsite = Some(run(RunStatus::Success));
        f.last_success = Some(now() - chrono::Duration::hours(26));
        assert_eq!(
            kinds(&f),
            [
                Kind::Stale,
                Kind::BackupFailed,
                Kind::SizeOutOfBand,
                Kind::SizeAnomaly,
                Kind::DeliveryFailed,
                Kind::RestoreTestFailed,
                Kind::OffsiteFailed
            ]
        );
        // A failed rehearsal or offsite copy alerts, but the backups are not
        // unhealthy for it; a backup mail that reached nobody is (issue 22).
        let h = evaluate(&f, &limits, now());
        assert!(!h.problems.iter().any(|p| matches!(p.kind, Kind::RestoreTestFailed | Kind::OffsiteFailed)));
        assert!(h.problems.iter().any(|p| p.kind == Kind::DeliveryFailed));
        assert_eq!(Kind::ALL.map(|k| Kind::parse(k.as_str())), Kind::ALL.map(Some));
        assert_eq!(serde_json::to_value(Kind::SizeOutOfBand).unwrap(), "size_out_of_band");
        let d = tempfile::tempdir().unwrap();
        assert!(free_space(d.path()).unwrap() > 0);
    }

    /// Records one finished run in `dir`'s history.
    fn record(h: &mut History, status: RunStatus, archive: Option<(&str, u64)>, at: DateTime<Utc>) {
        let id = h.start(crate::history::Trigger::Schedule, at).unwrap();
        let o = crate::history::Outcome {
            status,
            archive: archive.map(|a| a.0.to_string()),
            size_bytes: archive.map(|a| a.1),
            error: (status != RunStatus::Success).then(|| format!("the run ended {status}")),
            ..Default::default()
        };
        h.finish(id, at + chrono::Duration::seconds(5), &o, &[]).unwrap();
    }

    // covers: FR-4.2, FR-20.1, FR-23.2
    #[test]
    fn check_looks_past_aborted_and_skipped_runs_to_the_last_run_that_finished() {
        let d = tempfile::tempdir().unwrap();
        let limits = MonitorConfig { min_size_mb: 0, ..Default::default() };
        let name = "critical_backup_20261201_020000.tar.gz";
        std::fs::write(d.path().join(name), vec![7u8; 1000]).unwrap();
        let t = Utc::now() - chrono::Duration::hours(2);
        let mut h = History::open(d.path()).unwrap();
        record(&mut h, RunStatus::Success, Some((name, 1000)), t);
        record(&mut h, RunStatus::Aborted, None, t + chrono::Duration::minutes(30));
        record(&mut h, RunStatus::Skipped, None, t + chrono::Duration::minutes(31));
        let health = check(d.path(), &limits, Utc::now()).unwrap();
        assert!(health.healthy, "aborted and skipped are neither failures nor successes: {:?}", health.reasons);
        assert!(RunStatus::Failed.counts_for_health() && RunStatus::Interrupted.counts_for_health());
        assert!(!RunStatus::Aborted.counts_for_health() && !RunStatus::Skipped.counts_for_health());

        // A run that finished badly after them is the one that counts.
        record(&mut h, RunStatus::Failed, None, t + chrono::Duration::minutes(40));
        record(&mut h, RunStatus::Aborted, None, t + chrono::Duration::minutes(50));
        let health = check(d.path(), &limits, Utc::now()).unwrap();
        assert_eq!(health.problems.iter().map(|p| p.kind).collect::<Vec<_>>(), [Kind::BackupFailed]);
        assert!(health.reasons[0].contains("the run ended failed"), "{:?}", health.reasons);
    }

    // covers: FR-4.2, FR-3.8, FR-4.7
    #[test]
    fn a_failed_delivery_is_unhealthy_until_a_later_delivery_succeeds() {
        let d = tempfile::tempdir().unwrap();
        let limits = MonitorConfig { min_size_mb: 0, ..Default::default() };
        let t = Utc::now() - chrono::Duration::hours(3);
        let mut h = History::open(d.path()).unwrap();
        record(&mut h, RunStatus::Success, Some(("critical_backup_20261201_020000.tar.gz", 10)), t);
        let first = h.recent(1).unwrap()[0].id;
        h.set_delivery(first, DeliveryStatus::Failed).unwrap();
        let health = check(d.path(), &limits, Utc::now()).unwrap();
        assert_eq!(health.problems.iter().map(|p| p.kind).collect::<Vec<_>>(), [Kind::DeliveryFailed]);
        assert!(health.reasons[0].contains("critical_backup_20261201_020000.tar.gz"), "{:?}", health.reasons);

        // A run whose mail was skipped (mail off, --no-deliver) is no delivery: still unhealthy.
        record(
            &mut h,
            RunStatus::Success,
            Some(("critical_backup_20261201_030000.tar.gz", 10)),
            t + chrono::Duration::hours(1),
        );
        h.set_delivery(h.recent(1).unwrap()[0].id, DeliveryStatus::Skipped).unwrap();
        assert!(!check(d.path(), &limits, Utc::now()).unwrap().healthy);
        record(
            &mut h,
            RunStatus::Success,
            Some(("critical_backup_20261201_040000.tar.gz", 10)),
            t + chrono::Duration::hours(2),
        );
        h.set_delivery(h.recent(1).unwrap()[0].id, DeliveryStatus::Delivered).unwrap();
        assert!(check(d.path(), &limits, Utc::now()).unwrap().healthy);
    }

    // covers: FR-4.2, FR-4.3
    #[test]
    fn a_truncated_newest_archive_is_unhealthy_and_named() {
        let d = tempfile::tempdir().unwrap();
        let limits = MonitorConfig { min_size_mb: 0, ..Default::default() };
        let name = "critical_backup_20261201_020000.tar.gz";
        std::fs::write(d.path().join(name), vec![7u8; 1000]).unwrap();
        let mut h = History::open(d.path()).unwrap();
        record(&mut h, RunStatus::Success, Some((name, 1000)), Utc::now() - chrono::Duration::hours(1));
        assert!(check(d.path(), &limits, Utc::now()).unwrap().healthy);

        std::fs::write(d.path().join(name), vec![7u8; 600]).unwrap();
        let health = check(d.path(), &limits, Utc::now()).unwrap();
        assert_eq!(health.problems.iter().map(|p| p.kind).collect::<Vec<_>>(), [Kind::ArchiveChanged]);
        assert!(
            health.reasons[0].contains(name) && health.reasons[0].contains("600 bytes on disk, not the 1000"),
            "{:?}",
            health.reasons
        );
        std::fs::remove_file(d.path().join(name)).unwrap();
        assert!(check(d.path(), &limits, Utc::now()).unwrap().healthy, "gone is not reported (see the module)");
    }
}
