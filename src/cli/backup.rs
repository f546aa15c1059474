//! `lifeboat backup`: one verified backup into the configured store,
//! recorded in the run history (and, when it succeeded, the marker files).
//!
//! The recording lives here, around `backup::run`, not inside it: the
//! engine stays unaware of where runs are recorded, and the daemon's runner
//! will wrap it the same way. A run is recorded in the storage directory's
//! history once that directory exists; a first run that fails before
//! creating it (say, the database is unreachable) leaves no files at all,
//! and so no record.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{emit, load, render, Cli};
use crate::backup::BackupReport;
use crate::config::Overrides;
use crate::error::Error;
use crate::events::{CancelToken, Event, Progress};
use crate::history::{markers, History, Outcome, StepRecord, Trigger};

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the archive [default: storage.dir]
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Database to back up (beats the config and environment)
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

pub(super) fn run(cli: &Cli, args: &BackupArgs, progress: Progress, cancel: &CancelToken) -> Result<u8, Error> {
    let flags = Overrides { database_url: args.database_url.clone(), output_dir: args.output_dir.clone() };
    let config = load(cli, &flags)?;
    let store = crate::backup::store_for(&config);
    let dir = config.storage.dir.as_path();
    let started = Utc::now();
    let mut recorder = Recorder::new(dir, started, progress);
    let steps = Mutex::new(Vec::<(&'static str, DateTime<Utc>)>::new());
    let tracking = |e: Event| {
        if let Event::Step(s) = &e {
            steps.lock().expect("not poisoned").push((s, Utc::now()));
        }
        progress(e);
    };
    let result = crate::backup::run(&config, &store, &tracking, cancel);
    recorder.finish(&result, steps.into_inner().expect("not poisoned"));
    let report = result?;
    prune_after_success(&config, &store, progress);
    emit(cli.json, &report, render::backup);
    Ok(0)
}

/// Retention after a successful run (FR-6.1), the same decision as
/// `lifeboat prune`. The backup itself succeeded: a retention problem is a
/// warning, never a failed run.
fn prune_after_success(config: &crate::config::Config, store: &dyn crate::store::Store, progress: Progress) {
    let dir = &config.storage.dir;
    let history = match History::open_existing(dir) {
        Ok(h) => h,
        Err(e) => return progress(Event::Warning(format!("retention skipped: {e:#}"))),
    };
    let now = Utc::now();
    match crate::retention::prune(
        store,
        &config.storage.name_prefix,
        history.as_ref(),
        &config.retention,
        now,
        progress,
    ) {
        Ok(plan) => {
            for d in plan.deletes() {
                eprintln!("lifeboat: retention deleted {} ({})", crate::error::printable(&d.name), d.reason);
            }
        }
        Err(e) => progress(Event::Warning(format!("retention skipped after the successful backup: {e:#}"))),
    }
}

/// Records one run: a `running` row as soon as the storage directory
/// exists, then its outcome. Failing to record never fails the backup; it
/// is a warning.
struct Recorder<'a> {
    dir: &'a Path,
    started: DateTime<Utc>,
    progress: Progress<'a>,
    open: Option<(History, i64)>,
}

impl<'a> Recorder<'a> {
    fn new(dir: &'a Path, started: DateTime<Utc>, progress: Progress<'a>) -> Recorder<'a> {
        let mut r = Recorder { dir, started, progress, open: None };
        if dir.is_dir() {
            r.open = r.begin();
        }
        r
    }

    fn warn(&self, what: &str, e: &Error) {
        (self.progress)(Event::Warning(format!("{what}: {e:#}")));
    }

    fn begin(&self) -> Option<(History, i64)> {
        let h = History::open(self.dir).map_err(|e| self.warn("this run is not recorded in the history", &e)).ok()?;
        let id = h
            .start(Trigger::Manual, self.started)
            .map_err(|e| self.warn("this run is not recorded in the history", &e))
            .ok()?;
        Some((h, id))
    }

    fn finish(&mut self, result: &Result<BackupReport, Error>, seen: Vec<(&'static str, DateTime<Utc>)>) {
        let finished = Utc::now();
        if self.open.is_none() && self.dir.is_dir() {
            self.open = self.begin();
        }
        if let Ok(report) = result {
            // The markers first: they are what a HEALTHCHECK script reads.
            if let Err(e) = markers::write(self.dir, finished.timestamp(), report.size_bytes) {
                self.warn("the backup succeeded but the marker files were not written", &e);
            }
        }
        let Some((mut history, id)) = self.open.take() else { return };
        let outcome = outcome(result, (finished - self.started).num_milliseconds().max(0) as u64);
        let failed = outcome.failed_step.clone();
        // Each step ends where the next begins; a failed run's last step is the one that failed.
        let mut steps = Vec::new();
        let mut starts = vec![("connect", self.started)];
        starts.extend(seen);
        for (i, (step, at)) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(finished, |n| n.1);
            let is_last = i + 1 == starts.len();
            let status = if is_last && failed.is_some() { "failed" } else { "ok" };
            steps.push(StepRecord { step: step.to_string(), status: status.into(), started_at: *at, finished_at: end });
        }
        let outcome = Outcome { failed_step: failed.map(|_| starts.last().expect("connect").0.to_string()), ..outcome };
        if let Err(e) = history.finish(id, finished, &outcome, &steps) {
            self.warn("this run's outcome is not recorded in the history", &e);
        }
    }
}

fn outcome(result: &Result<BackupReport, Error>, duration_ms: u64) -> Outcome {
    match result {
        Ok(r) => Outcome {
            status: "success",
            archive: r.archive.file_name().map(|n| n.to_string_lossy().into_owned()),
            size_bytes: Some(r.size_bytes),
            duration_ms,
            tables: Some(r.tables.len() as u64),
            rows: Some(r.rows),
            closure_rows: Some(r.closure_rows),
            warnings: r.warnings.clone(),
            ..Default::default()
        },
        Err(e) => Outcome {
            status: match e {
                Error::Cancelled { .. } => "aborted",
                // Another run holds the directory: this one did nothing.
                Error::Busy(_) => "skipped",
                _ => "failed",
            },
            // Filled in from the steps seen.
            failed_step: Some(String::new()),
            error: Some(format!("{e:#}")),
            duration_ms,
            ..Default::default()
        },
    }
}
