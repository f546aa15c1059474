//! Every alert a run sends, built in one place: the backup's failure, the
//! delivery's, the offsite copy's and the restore rehearsal's. Each is an
//! [`Alert::new`] of its incident [`Kind`] with the words that tell the
//! reader what was retried and what to do next. `run` raises them
//! (`monitor::incidents::raise`), which opens the incident and sends them
//! through the channels; recovery notices are the incidents' (`resolve`).

use std::path::Path;

use chrono::Utc;

use super::rehearsal::Rehearsed;
use super::RunOptions;
use crate::config::Config;
use crate::deliver::{self, DeliveryReport};
use crate::error::Error;
use crate::monitor::channels::Alert;
use crate::monitor::checks::Kind;

impl Alert {
    /// An alert of incident `kind` about `step`, from this host, now; the
    /// caller fills in what was retried, the next steps, the log lines and
    /// the archive.
    pub fn new(kind: Kind, title: &str, step: &str, error: String) -> Alert {
        Alert {
            kind: kind.as_str(),
            title: title.into(),
            step: step.into(),
            error,
            retried: String::new(),
            next_steps: Vec::new(),
            log_lines: Vec::new(),
            archive: None,
            host: deliver::host_name(),
            time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// The backup failed at `step` with `e` (on its last attempt).
pub fn backup_failed(config: &Config, e: &Error, opts: &RunOptions, step: &str, log_lines: Vec<String>) -> Alert {
    let dir = config.storage.dir.display();
    let retried = match (opts.attempts > 1, super::retry_worthy(e)) {
        (false, true) => "Nothing: a backup started by hand is not retried. This kind of error is often temporary, so running it again may succeed.".to_string(),
        (true, true) => format!("{} attempt(s), schedule.retry_backoff apart (one attempt plus schedule.retries = {}); this was the last.", opts.attempt, opts.attempts - 1),
        (_, false) => "Nothing: this error does not go away by retrying; fix its cause first.".to_string(),
    };
    Alert {
        retried,
        next_steps: vec![
            "Read the error above: it names what failed and what to change.".into(),
            "Then run `lifeboat backup` by hand and check that it exits 0.".into(),
            format!("The archives made before are untouched in {dir} (`lifeboat verify` checks one)."),
        ],
        log_lines,
        ..Alert::new(Kind::BackupFailed, "backup failed", step, chain(e))
    }
}

/// The backup of `archive` is good but its mail did not go out.
pub fn delivery_failed(config: &Config, archive: &Path, d: &DeliveryReport, log_lines: Vec<String>) -> Alert {
    let archive = archive.display().to_string();
    Alert {
        retried: format!(
            "{} attempt(s) to {}, {} apart.",
            d.attempts,
            config.email.display_server(),
            config.email.backoff
        ),
        next_steps: vec![
            format!("The backup itself is good and kept: {archive}"),
            "Fix the mail settings the error names; `lifeboat test-email` checks them.".into(),
            format!("Then send the archive again: lifeboat send {archive}"),
        ],
        log_lines,
        archive: Some(archive),
        ..Alert::new(Kind::DeliveryFailed, "backup mail not delivered", "deliver", d.error.clone().unwrap_or_default())
    }
}

/// `archive` has no offsite copy: the store at `endpoint` failed with `error`.
pub fn offsite_failed(archive: &Path, endpoint: &str, error: &str) -> Alert {
    let shown = archive.display().to_string();
    Alert {
        retried: format!(
            "{} attempt(s) with back-off; the next run uploads every archive whose offsite copy is missing, oldest first.",
            crate::store::s3::ATTEMPTS
        ),
        next_steps: vec![
            format!("The backup itself is good and kept: {shown}"),
            format!(
                "Fix what the error names (the store at {endpoint} must be reachable, the bucket must exist, the keys must be valid); `lifeboat plan` checks it."
            ),
        ],
        archive: Some(shown),
        ..Alert::new(Kind::OffsiteFailed, "backup not copied offsite", "offsite", error.to_string())
    }
}

/// The restore rehearsal of `archive` did not pass.
pub fn restore_test_failed(config: &Config, archive: &Path, r: &Rehearsed) -> Alert {
    let archive = archive.display().to_string();
    Alert {
        retried: "Nothing: the next successful backup is rehearsed again.".into(),
        next_steps: vec![
            format!("The archive is kept, but it no longer counts as good for retention: {archive}"),
            "Check that the scratch server of [verify] restore_test_url is up and its role has CREATEDB.".into(),
            format!("Rehearse it by hand to see every problem: lifeboat verify {archive} --restore-test <url>"),
            format!("Other archives are untouched in {}.", config.storage.dir.display()),
        ],
        archive: Some(archive),
        ..Alert::new(Kind::RestoreTestFailed, "restore rehearsal failed", "restore_test", r.problems.join("\n"))
    }
}

/// The error and every cause that its message does not already include.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str("\ncaused by: ");
            s.push_str(&text);
        }
        source = c.source();
    }
    s
}
