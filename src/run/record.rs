//! What a run leaves behind besides its archive: its row in the run
//! history (with its steps, delivery, offsite copy, rehearsal and what
//! retention deleted), the marker files, and the last log lines its alert
//! quotes. The history is opened once per run, here ([`Recording`]), and
//! lent to the steps that read it and to the incidents.
//!
//! A run is recorded once the storage directory exists; a first run that
//! fails before creating it (say, the database is unreachable) leaves no
//! files at all, and so no record. Failing to record never fails the
//! backup: it is a warning.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::offsite::OffsiteReport;
use super::rehearsal::Rehearsed;
use crate::backup::Sealed;
use crate::deliver::{DeliveryReport, Status};
use crate::error::Error;
use crate::events::{Event, Progress};
use crate::history::{
    markers, DeliveryStatus, History, OffsiteStatus, Outcome as RunOutcome, RehearsalStatus, RunStatus, StepRecord,
    StepStatus, Trigger,
};
use crate::retention::Decision;

/// How many of the last progress lines an alert quotes.
const LOG_LINES: usize = 20;

/// Passes events on and keeps the current step and the last lines, for
/// the alert of a run that fails.
pub struct Recorder<'a> {
    inner: Progress<'a>,
    step: Mutex<&'static str>,
    lines: Mutex<VecDeque<String>>,
}

impl<'a> Recorder<'a> {
    pub fn new(inner: Progress<'a>) -> Self {
        // Nothing happens before the connection to the source.
        Recorder { inner, step: Mutex::new("connect"), lines: Mutex::new(VecDeque::new()) }
    }

    pub fn record(&self, e: Event) {
        let line = match &e {
            Event::Step(s) => {
                *self.step.lock().expect("not poisoned") = s;
                format!("step: {s}")
            }
            Event::Warning(w) => format!("warning: {w}"),
            Event::Table { name, rows, closure_rows, .. } => format!("  {name}: {rows} rows ({closure_rows} closure)"),
            Event::Detail(d) => format!("  {d}"),
            // Progress counters: the bar's business, not the alert's.
            Event::LockWait(w) => format!("waiting: {}", w.describe()),
            Event::LockGranted { table, waited_ms } => crate::events::lock_granted(table, *waited_ms),
            Event::Totals { .. } | Event::Bytes(_) | Event::Rows(_) | Event::Copying(_) => return (self.inner)(e),
        };
        let mut lines = self.lines.lock().expect("not poisoned");
        if lines.len() == LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(format!("{} {line}", chrono::Utc::now().format("%H:%M:%S")));
        drop(lines);
        (self.inner)(e)
    }

    pub fn step(&self) -> &'static str {
        *self.step.lock().expect("not poisoned")
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("not poisoned").iter().cloned().collect()
    }
}

/// Records one run: a `running` row as soon as the storage directory
/// exists, then its outcome and what the later steps did.
pub struct Recording<'a> {
    dir: &'a Path,
    trigger: Trigger,
    attempt: u32,
    started: DateTime<Utc>,
    progress: Progress<'a>,
    /// The run's one handle on the history, and its row.
    history: Option<History>,
    id: Option<i64>,
}

impl<'a> Recording<'a> {
    pub fn new(
        dir: &'a Path,
        trigger: Trigger,
        attempt: u32,
        started: DateTime<Utc>,
        progress: Progress<'a>,
    ) -> Recording<'a> {
        let mut r = Recording { dir, trigger, attempt, started, progress, history: None, id: None };
        if dir.is_dir() {
            r.begin();
        }
        r
    }

    /// The history, for the steps that read it and for the incidents;
    /// `None` without a storage directory or when it cannot be opened.
    pub fn history(&self) -> Option<&History> {
        self.history.as_ref()
    }

    fn warn(&self, what: &str, e: &Error) {
        (self.progress)(Event::Warning(format!("{what}: {e:#}")));
    }

    fn begin(&mut self) {
        let unrecorded = "this run is not recorded in the history";
        let h = match History::open(self.dir) {
            Ok(h) => h,
            Err(e) => return self.warn(unrecorded, &e),
        };
        match h.start_attempt(self.trigger, self.started, self.attempt) {
            Ok(id) => self.id = Some(id),
            Err(e) => self.warn(unrecorded, &e),
        }
        self.history = Some(h);
    }

    /// The backup's outcome, with the steps `seen` (each with its start).
    pub fn finish(&mut self, result: &Result<Sealed, Error>, seen: Vec<(&'static str, DateTime<Utc>)>) {
        let finished = Utc::now();
        if self.history.is_none() && self.dir.is_dir() {
            self.begin();
        }
        if let Ok(sealed) = result {
            // The markers first: they are what a HEALTHCHECK script reads.
            if let Err(e) = markers::write(self.dir, finished.timestamp(), sealed.size) {
                self.warn("the backup succeeded but the marker files were not written", &e);
            }
        }
        let (Some(history), Some(id)) = (self.history.as_mut(), self.id) else { return };
        let outcome = outcome(result, (finished - self.started).num_milliseconds().max(0) as u64);
        let failed = outcome.failed_step.clone();
        // Each step ends where the next begins; a failed run's last step is the one that failed.
        let mut steps = Vec::new();
        let mut starts = vec![("connect", self.started)];
        starts.extend(seen);
        for (i, (step, at)) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(finished, |n| n.1);
            let is_last = i + 1 == starts.len();
            let status = if is_last && failed.is_some() { StepStatus::Failed } else { StepStatus::Ok };
            steps.push(StepRecord { step: step.to_string(), status, started_at: *at, finished_at: end });
        }
        let outcome =
            RunOutcome { failed_step: failed.map(|_| starts.last().expect("connect").0.to_string()), ..outcome };
        if let Err(e) = history.finish(id, finished, &outcome, &steps) {
            let e = e.to_string();
            (self.progress)(Event::Warning(format!("this run's outcome is not recorded in the history: {e}")));
        }
    }

    /// Each offsite upload of the run, on the run that wrote its archive;
    /// `current` (this run's archive) is marked `uploaded` even when its
    /// copy was already there, and `failed` when the step failed.
    pub fn offsite(&self, current: &str, report: &OffsiteReport) {
        let Some(h) = self.history.as_ref() else { return };
        if report.off {
            return;
        }
        for (archive, up) in &report.uploaded {
            let status = if archive == current { OffsiteStatus::Uploaded } else { OffsiteStatus::CaughtUp };
            if let Err(e) = h.set_offsite(archive, status, Some(&up.object), Some(&up.sha256)) {
                (self.progress)(Event::Warning(format!("the offsite copy is not recorded in the history: {e}")));
            }
        }
        if report.ok() {
            // Already there (uploaded by an earlier run): still this run's copy.
            if h.offsite_status(current).ok().flatten().is_none() {
                let _ = h.set_offsite(current, OffsiteStatus::Uploaded, None, None);
            }
        } else {
            let _ = h.set_offsite(current, OffsiteStatus::Failed, None, None);
        }
    }

    /// The delivery's outcome of a recorded run.
    pub fn delivery(&self, d: &DeliveryReport) {
        let (Some(history), Some(id)) = (self.history.as_ref(), self.id) else { return };
        let status = match d.status {
            Status::Delivered => DeliveryStatus::Delivered,
            Status::Failed => DeliveryStatus::Failed,
            Status::Skipped => DeliveryStatus::Skipped,
        };
        if let Err(e) = history.set_delivery(id, status) {
            self.warn("the delivery is not recorded in the history", &e);
        }
    }

    /// The rehearsal of `archive`, on the run that wrote it, as its
    /// `restore_test` step.
    pub fn rehearsal(&mut self, archive: &str, r: &Rehearsed) {
        let status = if r.ok { RehearsalStatus::Success } else { RehearsalStatus::Failed };
        let detail = (!r.ok).then(|| r.problems.join("\n"));
        let Some(h) = self.history.as_mut() else { return };
        let recorded =
            h.set_restore_test(archive, status, r.duration_ms, r.started_at, r.finished_at, detail.as_deref());
        match recorded {
            Ok(true) => {}
            Ok(false) => (self.progress)(Event::Warning(format!(
                "the restore rehearsal of {archive} is not recorded: no run in the history wrote it"
            ))),
            Err(e) => {
                (self.progress)(Event::Warning(format!("the restore rehearsal of {archive} is not recorded: {e:#}")))
            }
        }
    }

    /// What retention deleted after the run (locally and offsite), as its
    /// `retention` step: one line per archive with the rule (FR-6.8).
    pub fn retention(&self, local: &[Decision], remote: &[Decision], started: DateTime<Utc>) {
        let (Some(history), Some(id)) = (self.history.as_ref(), self.id) else { return };
        let lines: Vec<String> = local
            .iter()
            .map(|d| ("local", d))
            .chain(remote.iter().map(|d| ("offsite", d)))
            .map(|(place, d)| format!("deleted {} ({place}): {}", d.name, d.reason))
            .collect();
        if lines.is_empty() {
            return;
        }
        let step = StepRecord {
            step: "retention".into(),
            status: StepStatus::Ok,
            started_at: started,
            finished_at: Utc::now(),
        };
        if let Err(e) = history.add_step(id, &step, Some(&lines.join("\n"))) {
            self.warn("what retention deleted is not recorded in the history", &e);
        }
    }
}

fn outcome(result: &Result<Sealed, Error>, duration_ms: u64) -> RunOutcome {
    match result {
        Ok(sealed) => {
            let r = sealed.report();
            RunOutcome {
                status: RunStatus::Success,
                archive: Some(sealed.name()),
                size_bytes: Some(r.size_bytes),
                duration_ms,
                tables: Some(r.tables.len() as u64),
                rows: Some(r.rows),
                closure_rows: Some(r.closure_rows),
                warnings: r.warnings,
                ..Default::default()
            }
        }
        Err(e) => RunOutcome {
            status: status_of(e),
            // Filled in from the steps seen.
            failed_step: Some(String::new()),
            error: Some(format!("{e:#}")),
            duration_ms,
            ..Default::default()
        },
    }
}

/// The status recorded for a run that ended with `e`.
pub fn status_of(e: &Error) -> RunStatus {
    match e {
        Error::Cancelled { .. } => RunStatus::Aborted,
        // Another run holds the directory: this one did nothing.
        Error::Busy(_) => RunStatus::Skipped,
        _ => RunStatus::Failed,
    }
}
