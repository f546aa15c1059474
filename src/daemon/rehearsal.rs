//! The nightly restore rehearsal (FR-15.5): with `[verify]
//! restore_test_url` set, every successful backup run (the daemon's and
//! `lifeboat backup`'s) restores its new archive into a throwaway database
//! on that scratch server, as `lifeboat verify --restore-test` does, and
//! records the outcome and the measured restore time (the real RTO) with
//! the run. A rehearsal that does not pass, for whatever reason (the
//! archive, or a scratch server that cannot be reached), is `failed`: the
//! archive then does not count as good for retention (FR-6.7) and the
//! `restore_test_failed` incident alerts. A passing one closes it.

use std::path::Path;
use std::time::Instant;

use chrono::Utc;

use crate::config::Config;
use crate::events::{CancelToken, Event, Progress};
use crate::history::{History, RehearsalStatus};
use crate::monitor::channels::Alert;
use crate::monitor::checks::Kind;
use crate::monitor::incidents;
use crate::verify::VerifyOptions;

/// How a rehearsal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rehearsed {
    pub ok: bool,
    pub duration_ms: u64,
    /// What went wrong (empty when it passed).
    pub problems: Vec<String>,
}

/// Rehearses `archive` when `[verify] restore_test_url` is set, records
/// it and alerts on failure; `None` when not configured or cancelled (a
/// cancelled rehearsal says nothing about the archive and is not recorded).
pub fn after_backup(config: &Config, archive: &Path, progress: Progress, cancel: &CancelToken) -> Option<Rehearsed> {
    let url = config.verify.restore_test_url.as_ref()?;
    progress(Event::Step("restore_test"));
    let started_at = Utc::now();
    let started = Instant::now();
    // The archive the run just sealed, checked with the store's key.
    let opts = VerifyOptions { trust: crate::verify::config_trust(config), ..VerifyOptions::default() };
    let outcome = crate::verify::verify_with(archive, &opts, progress)
        .map_err(crate::Error::from)
        .and_then(|verified| crate::restore::rehearse(archive, &verified, url.expose(), &opts, progress, cancel));
    let r = match outcome {
        Ok(report) => Rehearsed { ok: report.ok, duration_ms: report.duration_ms, problems: report.problems },
        Err(e) if cancel.is_cancelled() => {
            progress(Event::Warning(format!("the restore rehearsal was interrupted and is not recorded: {e}")));
            return None;
        }
        Err(e) => {
            Rehearsed { ok: false, duration_ms: started.elapsed().as_millis() as u64, problems: vec![format!("{e:#}")] }
        }
    };
    record(config, archive, &r, started_at, progress);
    if r.ok {
        progress(Event::Detail(format!("restore rehearsal passed in {:.1} s", r.duration_ms as f64 / 1000.0)));
        incidents::resolve(config, Kind::RestoreTestFailed, progress);
    } else {
        progress(Event::Warning(format!("the restore rehearsal failed: {}", r.problems.join("; "))));
        incidents::raise(config, &alert(config, archive, &r), true, progress);
    }
    Some(r)
}

fn record(config: &Config, archive: &Path, r: &Rehearsed, started: chrono::DateTime<Utc>, progress: Progress) {
    let name = archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let status = if r.ok { RehearsalStatus::Success } else { RehearsalStatus::Failed };
    let detail = (!r.ok).then(|| r.problems.join("\n"));
    let recorded = History::open(&config.storage.dir)
        .and_then(|mut h| h.set_restore_test(&name, status, r.duration_ms, started, Utc::now(), detail.as_deref()));
    match recorded {
        Ok(true) => {}
        Ok(false) => progress(Event::Warning(format!(
            "the restore rehearsal of {name} is not recorded: no run in the history wrote it"
        ))),
        Err(e) => progress(Event::Warning(format!("the restore rehearsal of {name} is not recorded: {e:#}"))),
    }
}

fn alert(config: &Config, archive: &Path, r: &Rehearsed) -> Alert {
    let archive = archive.display().to_string();
    Alert {
        kind: Kind::RestoreTestFailed.as_str(),
        title: "restore rehearsal failed".into(),
        step: "restore_test".into(),
        error: r.problems.join("\n"),
        retried: "Nothing: the next successful backup is rehearsed again.".into(),
        next_steps: vec![
            format!("The archive is kept, but it no longer counts as good for retention: {archive}"),
            "Check that the scratch server of [verify] restore_test_url is up and its role has CREATEDB.".into(),
            format!("Rehearse it by hand to see every problem: lifeboat verify {archive} --restore-test <url>"),
            format!("Other archives are untouched in {}.", config.storage.dir.display()),
        ],
        log_lines: Vec::new(),
        archive: Some(archive),
        host: crate::deliver::host_name(),
        time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}
