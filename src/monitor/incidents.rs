//! Incidents (FR-4.3, FR-4.6): a problem opens one incident of its kind,
//! which alerts once through every channel, reminds at most every
//! `[monitor] realert_hours` while it lasts, and sends one recovery notice
//! when it clears. Incidents live in the history (`incidents` table), so
//! they survive restarts, and at most one per kind is open: two processes
//! that see the same problem cannot both alert it (the database decides
//! who opens, reminds or closes).
//!
//! Who opens them: [`tick`] (the daemon's monitor loop, every `[monitor]
//! interval`) for everything [`checks::incidents`] finds; a backup run for
//! its own failure, delivery failure, offsite failure and failed rehearsal
//! ([`raise`], called by `run` only, so the run's detailed alert is the
//! incident's first alert and the next tick does not send a second one),
//! and it closes them again when the same step succeeds ([`resolve`]). An
//! incident about size never touches an archive: it only alerts.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};

use super::channels::{self, Alert, ChannelResult, Ping};
use super::checks::{self, Kind, Problem};
use crate::config::Config;
use crate::deliver::{self, message::RecoveryContext};
use crate::error::Result;
use crate::events::{Event, Progress};
use crate::history::{History, Incident};

/// One look at the storage directory at `now`: opens, reminds and closes
/// incidents, alerting through the channels. Blocking (SQLite, SMTP,
/// HTTP): the daemon calls it through `spawn_blocking`. A channel that
/// fails is a warning; only an unreadable history is an error.
pub fn tick(config: &Config, now: DateTime<Utc>, progress: Progress) -> Result<()> {
    let dir = &config.storage.dir;
    // The daemon owns its storage directory: the first look creates it, so
    // "no success since the monitor started" can be remembered.
    let history = History::open(dir)?;
    let since = history.monitor_since(now)?;
    let facts = checks::gather(dir)?;
    let problems = monitored(checks::incidents(&facts, &config.monitor, now), since, config, now);
    let open = history.open_incidents()?;

    for p in &problems {
        match open.iter().find(|i| i.kind == p.kind.as_str()) {
            None => {
                if let Some(id) = history.open_incident(p.kind.as_str(), now, &p.reason)? {
                    send(config, &history, id, &monitor_alert(config, p, None, now), progress);
                }
            }
            Some(i) if reminder_due(i, config, now) => {
                if history.claim_alert(i.id, i.last_alert_at, now, &p.reason)? {
                    send(config, &history, i.id, &monitor_alert(config, p, Some(i), now), progress);
                }
            }
            Some(_) => {}
        }
    }
    for i in open.iter().filter(|i| !problems.iter().any(|p| p.kind.as_str() == i.kind)) {
        if history.close_incident(i.id, now)? {
            recover(config, i, now, progress);
        }
    }
    Ok(())
}

/// The open incidents of `storage_dir`, oldest first (read-only; none
/// without a history). For the status page and `/metrics`.
pub fn open_incidents(storage_dir: &Path) -> Result<Vec<Incident>> {
    match History::open_existing(storage_dir)? {
        Some(h) => h.open_incidents(),
        None => Ok(Vec::new()),
    }
}

/// A run's own alert (its failure, its delivery's, its rehearsal's): opens
/// the incident `alert.kind` and sends the alert, or, when that incident
/// is already open and was alerted less than `realert_hours` ago, sends
/// nothing but the failure ping (the ping reports every run). Never fails:
/// without a history (a first run that never got as far as the storage
/// directory, or a history that cannot be opened), the alert goes out
/// unrecorded. Called by `run` only, with the run's own handle on the
/// history.
pub fn raise(config: &Config, history: Option<&History>, alert: &Alert, mail: bool, progress: Progress) {
    let unrecorded = || {
        channels::alert(config, alert, mail, progress);
    };
    let Some(history) = history else { return unrecorded() };
    let now = Utc::now();
    let detail = format!("{}: {}", alert.title, alert.error.lines().next().unwrap_or_default());
    let outcome = (|| -> Result<Option<(i64, Option<Incident>)>> {
        if let Some(id) = history.open_incident(alert.kind, now, &detail)? {
            return Ok(Some((id, None)));
        }
        let Some(open) = history.open_incidents()?.into_iter().find(|i| i.kind == alert.kind) else {
            // Closed in between: this alert is as good as a new one.
            return Ok(history.open_incident(alert.kind, now, &detail)?.map(|id| (id, None)));
        };
        if reminder_due(&open, config, now) && history.claim_alert(open.id, open.last_alert_at, now, &detail)? {
            return Ok(Some((open.id, Some(open))));
        }
        let next = match config.monitor.realert_hours {
            0 => "no reminders ([monitor] realert_hours = 0)".to_string(),
            h => format!("a reminder after {h} h"),
        };
        progress(Event::Warning(format!(
            "{}: not alerted again: the {} incident is open since {} (alerted {}; {next})",
            alert.title,
            alert.kind,
            rfc3339(open.opened_at),
            open.last_alert_at.map_or_else(|| "not yet".to_string(), rfc3339),
        )));
        if matches!(alert.kind, "backup_failed" | "delivery_failed" | "offsite_failed")
            && config.alerts.ping_url.is_some()
        {
            let _ = channels::ping(&config.alerts, Ping::Fail, Some(&detail), progress);
        }
        Ok(None)
    })();
    match outcome {
        Ok(Some((id, reminder))) => {
            let mut a = alert.clone();
            if let Some(i) = reminder {
                a.title = format!("{} (still open since {})", a.title, rfc3339(i.opened_at));
            }
            if all_failed(&channels::alert(config, &a, mail, progress)) {
                let _ = history.alert_not_sent(id);
            }
        }
        Ok(None) => {}
        Err(e) => {
            progress(Event::Warning(format!("the {} incident is not recorded: {e:#}", alert.kind)));
            unrecorded();
        }
    }
}

/// The step behind incident `kind` succeeded (a backup, a delivery, a
/// rehearsal): closes the incident if one is open, with its recovery
/// notice. Never fails; without a history there is nothing to close.
pub fn resolve(config: &Config, history: Option<&History>, kind: Kind, progress: Progress) {
    let Some(history) = history else { return };
    let closed = (|| -> Result<()> {
        let now = Utc::now();
        for i in history.open_incidents()?.iter().filter(|i| i.kind == kind.as_str()) {
            if history.close_incident(i.id, now)? {
                recover(config, i, now, progress);
            }
        }
        Ok(())
    })();
    if let Err(e) = closed {
        progress(Event::Warning(format!("the {} incident could not be closed: {e:#}", kind.as_str())));
    }
}

/// What the monitor alerts on: "no success yet" is a problem (`stale`)
/// only `max_age_hours` after the monitor first looked, so a fresh
/// install does not alert before its first scheduled run. One per kind.
fn monitored(problems: Vec<Problem>, since: DateTime<Utc>, config: &Config, now: DateTime<Utc>) -> Vec<Problem> {
    let max_age = config.monitor.max_age_hours;
    let mut out: Vec<Problem> = Vec::new();
    for p in problems {
        let p = match p.kind {
            Kind::NoSuccess if now - since > chrono::Duration::hours(i64::from(max_age)) => Problem {
                kind: Kind::Stale,
                reason: format!(
                    "no successful backup in the {} hours since the monitor started ({}), more than \
                     max_age_hours = {max_age}: check why the runs fail or do not start",
                    (now - since).num_hours(),
                    rfc3339(since)
                ),
            },
            Kind::NoSuccess => continue,
            _ => p,
        };
        if !out.iter().any(|o| o.kind == p.kind) {
            out.push(p);
        }
    }
    out
}

fn reminder_due(i: &Incident, config: &Config, now: DateTime<Utc>) -> bool {
    match (i.last_alert_at, config.monitor.realert_hours) {
        // Its alert reached no channel: try again now.
        (None, _) => true,
        (Some(_), 0) => false,
        (Some(t), h) => now - t >= chrono::Duration::hours(i64::from(h)),
    }
}

/// Every channel tried failed (none configured is not a failure).
fn all_failed(results: &[ChannelResult]) -> bool {
    !results.is_empty() && results.iter().all(|r| !r.ok)
}

fn send(config: &Config, history: &History, id: i64, alert: &Alert, progress: Progress) {
    // Mail is what failed for `delivery_failed`: the other channels carry it.
    let mail = alert.kind != Kind::DeliveryFailed.as_str();
    if all_failed(&channels::alert(config, alert, mail, progress)) {
        if let Err(e) = history.alert_not_sent(id) {
            progress(Event::Warning(format!("the {} incident's unsent alert is not recorded: {e:#}", alert.kind)));
        }
    }
}

fn recover(config: &Config, i: &Incident, now: DateTime<Utc>, progress: Progress) {
    let ctx = RecoveryContext {
        app: deliver::app_name(config),
        host: deliver::host_name(),
        version: env!("CARGO_PKG_VERSION"),
        title: Kind::parse(&i.kind).map_or("problem", title).to_string(),
        kind: i.kind.clone(),
        opened_at: rfc3339(i.opened_at),
        closed_at: rfc3339(now),
        lasted: lasted(now - i.opened_at),
        alerts_sent: i.alerts_sent,
        detail: i.detail.clone().unwrap_or_default(),
    };
    progress(Event::Detail(format!("incident {} closed after {}: recovery notice sent", i.kind, ctx.lasted)));
    channels::recovery(config, &ctx, progress);
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// "3 d 4 h", "2 h 5 min", "7 min".
fn lasted(d: chrono::Duration) -> String {
    let m = d.num_minutes().max(0);
    match (m / 1440, m % 1440 / 60, m % 60) {
        (0, 0, min) => format!("{min} min"),
        (0, h, min) => format!("{h} h {min} min"),
        (days, h, _) => format!("{days} d {h} h"),
    }
}

/// The one line people see first (subjects, titles).
fn title(kind: Kind) -> &'static str {
    match kind {
        Kind::NoSuccess | Kind::Stale => "no recent successful backup",
        Kind::BackupFailed => "backup failed",
        Kind::SizeOutOfBand => "backup size out of the expected band",
        Kind::SizeAnomaly => "backup suddenly much smaller",
        Kind::LowDisk => "low disk space for backups",
        Kind::DeliveryFailed => "backup mail not delivered",
        Kind::RestoreTestFailed => "restore rehearsal failed",
        Kind::OffsiteFailed => "backup not copied offsite",
        Kind::ArchiveChanged => "newest archive changed on disk",
    }
}

/// What to do about each kind (docs/BACKUP_OPERATIONS.md says the same).
fn next_steps(kind: Kind, config: &Config) -> Vec<String> {
    let dir = config.storage.dir.display();
    let steps: &[&str] = match kind {
        Kind::NoSuccess | Kind::Stale => &[
            "Check that the daemon runs (its log, `docker compose ps`) and what its last runs say (`lifeboat list`).",
            "Run `lifeboat backup` by hand and check that it exits 0.",
        ],
        Kind::BackupFailed => &[
            "Read the error above: it names what failed and what to change.",
            "Then run `lifeboat backup` by hand and check that it exits 0.",
        ],
        Kind::SizeOutOfBand | Kind::SizeAnomaly => &[
            "Nothing was deleted: the archive is kept and still counts as good.",
            "Compare its tables and rows with an older archive (`lifeboat list`, BACKUP_INFO.txt inside each).",
            "If the new size is expected, adjust [monitor] min_size_mb / max_size_mb.",
        ],
        Kind::LowDisk => &[
            "Free space in the storage directory, or give it a bigger volume.",
            "Or keep fewer archives: lower [retention] retention_days (`lifeboat prune --dry-run` shows what goes).",
        ],
        Kind::DeliveryFailed => &[
            "The backup itself is good and kept.",
            "Fix the mail settings the error names; `lifeboat test-email` checks them.",
            "Then send the archive again: lifeboat send <archive>",
        ],
        Kind::RestoreTestFailed => &[
            "The archive is kept, but it does not count as good for retention.",
            "Check that the scratch server of [verify] restore_test_url is up and its role has CREATEDB.",
            "Rehearse by hand to see every problem: lifeboat verify <archive> --restore-test <url>",
        ],
        Kind::ArchiveChanged => &[
            "The newest archive no longer is what the backup wrote and verified: do not count on it.",
            "Check the disk (`dmesg`, free space) and who else writes to the storage directory.",
            "Run `lifeboat backup` now for a new verified archive; `lifeboat verify <archive>` checks the others.",
        ],
        Kind::OffsiteFailed => &[
            "The backup itself is good and kept locally; the next run uploads every archive whose offsite copy is missing.",
            "Fix what the error names (the store must be reachable, the bucket must exist, the keys must be valid); `lifeboat plan` checks it.",
        ],
    };
    let mut v: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
    v.push(format!("Archives are in {dir}; this notice repeats while the problem lasts."));
    v
}

/// The alert of a problem the monitor found; `reminder` is the open
/// incident it reminds of.
fn monitor_alert(config: &Config, p: &Problem, reminder: Option<&Incident>, now: DateTime<Utc>) -> Alert {
    let every = match config.monitor.realert_hours {
        0 => "no reminders are sent ([monitor] realert_hours = 0)".to_string(),
        h => format!("a reminder goes out every {h} h while it lasts"),
    };
    let (title, retried) = match reminder {
        None => (
            title(p.kind).to_string(),
            format!("Found by the monitor; {every}, and one recovery notice when it clears."),
        ),
        Some(i) => (
            format!("{} (still open since {})", title(p.kind), rfc3339(i.opened_at)),
            format!("Reminder {} of this incident, open since {}; {every}.", i.alerts_sent + 1, rfc3339(i.opened_at)),
        ),
    };
    Alert {
        kind: p.kind.as_str(),
        title,
        step: "monitor".into(),
        error: p.reason.clone(),
        retried,
        next_steps: next_steps(p.kind, config),
        log_lines: Vec::new(),
        archive: None,
        host: deliver::host_name(),
        time: rfc3339(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    // covers: FR-4.3, FR-4.6
    #[test]
    fn no_success_is_stale_only_max_age_hours_after_the_first_look_and_each_kind_counts_once() {
        let config = Config::default();
        let since = at("2026-12-01T00:00:00Z");
        let p = |kind| Problem { kind, reason: "r".into() };
        let found = vec![p(Kind::NoSuccess), p(Kind::BackupFailed), p(Kind::SizeOutOfBand), p(Kind::SizeOutOfBand)];
        let early = monitored(found.clone(), since, &config, at("2026-12-02T00:59:00Z"));
        assert_eq!(early.iter().map(|p| p.kind).collect::<Vec<_>>(), [Kind::BackupFailed, Kind::SizeOutOfBand]);
        let late = monitored(found, since, &config, at("2026-12-02T01:01:00Z"));
        assert_eq!(late[0].kind, Kind::Stale);
        assert!(late[0].reason.contains("since the monitor started (2026-12-01T00:00:00Z)"), "{}", late[0].reason);
        assert_eq!(late.len(), 3);
    }

    // covers: FR-4.6
    #[test]
    fn a_reminder_is_due_after_realert_hours_or_when_the_last_alert_reached_no_one() {
        let mut config = Config::default();
        let t = at("2026-12-01T00:00:00Z");
        let mut i = Incident {
            id: 1,
            kind: "stale".into(),
            opened_at: t,
            last_alert_at: Some(t),
            alerts_sent: 1,
            closed_at: None,
            detail: None,
        };
        assert!(!reminder_due(&i, &config, t + chrono::Duration::hours(23)));
        assert!(reminder_due(&i, &config, t + chrono::Duration::hours(24)));
        config.monitor.realert_hours = 0;
        assert!(!reminder_due(&i, &config, t + chrono::Duration::days(30)));
        i.last_alert_at = None;
        assert!(reminder_due(&i, &config, t));
        assert_eq!(
            (lasted(chrono::Duration::minutes(7)), lasted(chrono::Duration::minutes(125))),
            ("7 min".into(), "2 h 5 min".into())
        );
        assert_eq!(lasted(chrono::Duration::hours(76)), "3 d 4 h");
    }
}
