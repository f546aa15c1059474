//! The offsite step of a run (FR-29): after a verified backup, the archive
//! (its `.age` when `[encryption] recipients` are set: nothing unencrypted
//! leaves the host then) goes to `[remote]`, together with every local
//! archive whose offsite copy is missing, oldest first (catch-up after a
//! run whose upload failed). Each upload is recorded in the run history;
//! a failed one leaves the local archive as it is, marks the run "not
//! offsite" and opens the `offsite_failed` incident (alerted once, closed
//! with a recovery notice by the next run whose uploads all succeed). After a run whose
//! uploads all succeeded, remote retention applies the same rules as the
//! local one ([`crate::retention::apply`] over the store) with the
//! `[remote]` policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{Event, Progress};
use crate::history::{History, OffsiteStatus};
use crate::monitor::channels::Alert;
use crate::monitor::checks::Kind;
use crate::monitor::incidents;
use crate::retention::{self, Decision};
use crate::store::s3::RemoteStore;
use crate::store::{Archives, Uploaded};

/// What the offsite step did in one run.
#[derive(Debug, Default)]
pub struct OffsiteReport {
    /// No `[remote]` configured: nothing was done.
    pub off: bool,
    /// What was uploaded, oldest first (this run's archive last).
    pub uploaded: Vec<Uploaded>,
    /// Why the run is "not offsite", when it is.
    pub error: Option<String>,
    /// What remote retention deleted.
    pub pruned: Vec<Decision>,
}

impl OffsiteReport {
    /// This run's archive has its offsite copy (or no `[remote]` is set).
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The object name of a local archive: the archive's, or its `.age`'s.
fn artifact(config: &Config, dir: &Path, name: &str) -> Result<(PathBuf, String)> {
    let path = dir.join(name);
    if config.encryption.recipients.is_empty() {
        return Ok((path, name.to_string()));
    }
    let age = crate::crypt::encrypted_copy(&path, &config.encryption.recipients)?;
    Ok((age, format!("{name}.age")))
}

/// The offsite step after the verified backup `archive` (see the module).
pub fn after_backup(config: &Config, archive: &Path, progress: Progress) -> OffsiteReport {
    match RemoteStore::from_config(&config.remote) {
        Ok(None) => OffsiteReport { off: true, ..Default::default() },
        Ok(Some(remote)) => run_with(config, &remote, archive, progress),
        Err(e) => {
            progress(Event::Step("offsite"));
            let history = open_history(config, progress);
            failed(config, archive, None, history.as_ref(), &e, progress)
        }
    }
}

/// [`after_backup`] once the store is set up.
fn run_with(config: &Config, remote: &RemoteStore, archive: &Path, progress: Progress) -> OffsiteReport {
    progress(Event::Step("offsite"));
    let history = open_history(config, progress);
    let mut report = OffsiteReport::default();
    if let Err(e) = upload_missing(config, remote, archive, history.as_ref(), &mut report, progress) {
        let uploaded = std::mem::take(&mut report.uploaded);
        return OffsiteReport { uploaded, ..failed(config, archive, Some(remote), history.as_ref(), &e, progress) };
    }
    incidents::resolve(config, Kind::OffsiteFailed, progress);
    let (prefix, policy, judge) = (&config.storage.name_prefix, config.remote.retention(), retention::Judge::Recorded);
    match retention::apply(remote, prefix, history.as_ref(), &policy, Utc::now(), judge, progress) {
        Ok(p) => report.pruned = p.deletes().cloned().collect(),
        Err(e) => progress(Event::Warning(format!("remote retention skipped after the successful upload: {e:#}"))),
    }
    report
}

/// The history, writable (the backup just wrote to it); a warning if not.
fn open_history(config: &Config, progress: Progress) -> Option<History> {
    History::open(&config.storage.dir)
        .map_err(|e| progress(Event::Warning(format!("the offsite copy is not recorded in the history: {e}"))))
        .ok()
}

/// Uploads every local archive whose remote copy is missing, oldest first;
/// the current `archive` is among them (it is the newest).
fn upload_missing(
    config: &Config,
    remote: &RemoteStore,
    archive: &Path,
    history: Option<&History>,
    report: &mut OffsiteReport,
    progress: Progress,
) -> Result<()> {
    let dir = &config.storage.dir;
    let current = archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let on_remote: BTreeMap<String, u64> = remote.list()?.into_iter().map(|a| (a.name, a.bytes)).collect();
    let local = crate::store::open(config).list()?;
    for a in &local {
        let (path, object) = artifact(config, dir, &a.name)?;
        let size = std::fs::metadata(&path).map(|m| m.len()).ok();
        if on_remote.get(&object).is_some_and(|b| Some(*b) == size) {
            continue;
        }
        let why = if a.name == current { "this run's archive" } else { "catch-up: its offsite copy is missing" };
        progress(Event::Detail(format!("uploading {object} to {} ({why})", remote.object_url(&object))));
        let up = remote.put(&path, &object, progress)?;
        progress(Event::Detail(format!("uploaded {} ({} bytes, sha256 {})", up.object, up.bytes, up.sha256)));
        if let Some(h) = history {
            let status = if a.name == current { OffsiteStatus::Uploaded } else { OffsiteStatus::CaughtUp };
            if let Err(e) = h.set_offsite(&a.name, status, Some(&up.object), Some(&up.sha256)) {
                progress(Event::Warning(format!("the offsite copy is not recorded in the history: {e}")));
            }
        }
        report.uploaded.push(up);
    }
    if let Some(h) = history {
        // Already there (uploaded by an earlier run): still this run's copy.
        if h.offsite_status(&current).ok().flatten().is_none() {
            let _ = h.set_offsite(&current, OffsiteStatus::Uploaded, None, None);
        }
    }
    Ok(())
}

/// Records and alerts that `archive` has no offsite copy; the report's error.
fn failed(
    config: &Config,
    archive: &Path,
    remote: Option<&RemoteStore>,
    history: Option<&History>,
    e: &Error,
    progress: Progress,
) -> OffsiteReport {
    if let (Some(h), Some(name)) = (history, archive.file_name()) {
        let _ = h.set_offsite(&name.to_string_lossy(), OffsiteStatus::Failed, None, None);
    }
    let shown = archive.display().to_string();
    let alert = Alert {
        kind: "offsite_failed",
        title: "backup not copied offsite".into(),
        step: "offsite".into(),
        error: format!("{e:#}"),
        retried: format!(
            "{} attempt(s) with back-off; the next run uploads every archive whose offsite copy is missing, oldest first.",
            crate::store::s3::ATTEMPTS
        ),
        next_steps: vec![
            format!("The backup itself is good and kept: {shown}"),
            format!(
                "Fix what the error names (the store at {} must be reachable, the bucket must exist, the keys must be valid); `lifeboat plan` checks it.",
                remote.map_or_else(|| config.remote.display_endpoint(), |r| r.endpoint().to_string())
            ),
        ],
        log_lines: Vec::new(),
        archive: Some(shown),
        host: crate::deliver::host_name(),
        time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    progress(Event::Warning(format!("the offsite copy failed, the local archive is kept: {e:#}")));
    // An incident: alerted once (then every `realert_hours`) while the store stays down.
    incidents::raise(config, &alert, true, progress);
    OffsiteReport { error: Some(format!("{e:#}")), ..Default::default() }
}
