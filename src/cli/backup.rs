//! `lifeboat backup`: one verified backup into the configured store, then
//! delivery (the success mail, unless `--no-deliver`) and the alert
//! channels: a ping when the run starts and ends, and on any failure an
//! alert that names the step, the error and the last log lines.
//!
//! Exit codes: the backup's own (0, 1, 2), or 3 when the backup is good and
//! kept but its mail could not be delivered.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;

use super::{emit, load, render, Cli};
use crate::backup::BackupReport;
use crate::config::{Config, Overrides};
use crate::deliver::{self, DeliveryReport, Status};
use crate::error::Error;
use crate::events::{CancelToken, Event, Progress};
use crate::monitor::channels::{self, Alert, Ping};

/// The exit code of a good backup whose delivery failed.
pub const EXIT_DELIVERY_FAILED: u8 = 3;

/// How many of the last progress lines an alert quotes.
const LOG_LINES: usize = 20;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the archive [default: storage.dir]
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Database to back up (beats the config and environment)
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Do not mail the archive (failure alerts and pings still go out)
    #[arg(long)]
    no_deliver: bool,
}

#[derive(Serialize)]
struct Outcome<'a> {
    #[serde(flatten)]
    report: &'a BackupReport,
    delivery: &'a DeliveryReport,
}

/// Passes events on and keeps the current step and the last lines, for
/// the alert of a run that fails.
pub(super) struct Recorder<'a> {
    inner: Progress<'a>,
    step: Mutex<&'static str>,
    lines: Mutex<VecDeque<String>>,
}

impl<'a> Recorder<'a> {
    pub(super) fn new(inner: Progress<'a>) -> Self {
        // Nothing happens before the connection to the source.
        Recorder { inner, step: Mutex::new("connect"), lines: Mutex::new(VecDeque::new()) }
    }

    pub(super) fn record(&self, e: Event) {
        let line = match &e {
            Event::Step(s) => {
                *self.step.lock().expect("not poisoned") = s;
                format!("step: {s}")
            }
            Event::Warning(w) => format!("warning: {w}"),
            Event::Table { name, rows, closure_rows, .. } => format!("  {name}: {rows} rows ({closure_rows} closure)"),
            Event::Detail(d) => format!("  {d}"),
        };
        let mut lines = self.lines.lock().expect("not poisoned");
        if lines.len() == LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(format!("{} {line}", chrono::Utc::now().format("%H:%M:%S")));
        drop(lines);
        (self.inner)(e)
    }

    fn step(&self) -> &'static str {
        *self.step.lock().expect("not poisoned")
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("not poisoned").iter().cloned().collect()
    }
}

pub(super) fn run(cli: &Cli, args: &BackupArgs, progress: Progress, cancel: &CancelToken) -> Result<u8, Error> {
    let flags = Overrides { database_url: args.database_url.clone(), output_dir: args.output_dir.clone() };
    // A config that does not load alerts nobody: its channels are unknown.
    let config = load(cli, &flags)?;
    let recorder = Recorder::new(progress);
    let progress = &|e| recorder.record(e);
    let _ = channels::ping(&config.alerts, Ping::Start, None, progress);

    let store = crate::backup::store_for(&config);
    let report = match crate::backup::run(&config, &store, progress, cancel) {
        Ok(r) => r,
        Err(e) => {
            let alert = backup_failed(&config, &e, recorder.step(), recorder.lines());
            channels::alert(&config, &alert, true, progress);
            return Err(e);
        }
    };

    let delivery = if args.no_deliver {
        DeliveryReport::skipped("--no-deliver")
    } else {
        deliver::deliver(&config, &report.archive, Some(report.duration_ms), progress)
    };
    emit(cli.json, &Outcome { report: &report, delivery: &delivery }, |o| {
        format!("{}{}", render::backup(o.report), render::delivery(o.delivery))
    });
    if delivery.status == Status::Failed {
        let alert = delivery_failed(&config, &report, &delivery, recorder.lines());
        // Mail is what failed: the other channels carry this alert.
        channels::alert(&config, &alert, false, progress);
        return Ok(EXIT_DELIVERY_FAILED);
    }
    let _ = channels::ping(&config.alerts, Ping::Success, None, progress);
    Ok(0)
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

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn backup_failed(config: &Config, e: &Error, step: &str, log_lines: Vec<String>) -> Alert {
    let dir = config.storage.dir.display();
    let retried = if e.is_retryable() {
        "Nothing: a backup started by hand is not retried. This kind of error is often temporary, so running it again may succeed."
    } else {
        "Nothing: this error does not go away by retrying; fix its cause first."
    };
    Alert {
        kind: "backup_failed",
        title: "backup failed".into(),
        step: step.to_string(),
        error: chain(e),
        retried: retried.into(),
        next_steps: vec![
            "Read the error above: it names what failed and what to change.".into(),
            "Then run `lifeboat backup` by hand and check that it exits 0.".into(),
            format!("The archives made before are untouched in {dir} (`lifeboat verify` checks one)."),
        ],
        log_lines,
        archive: None,
        host: deliver::host_name(),
        time: now(),
    }
}

fn delivery_failed(config: &Config, r: &BackupReport, d: &DeliveryReport, log_lines: Vec<String>) -> Alert {
    let archive = r.archive.display().to_string();
    Alert {
        kind: "delivery_failed",
        title: "backup mail not delivered".into(),
        step: "deliver".into(),
        error: d.error.clone().unwrap_or_default(),
        retried: format!(
            "{} attempt(s) to {}, with back-off from {}.",
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
        host: deliver::host_name(),
        time: now(),
    }
}
