//! The offsite step of a run (FR-29): after a verified backup, the archive
//! (its `.age` when `[encryption] recipients` are set: nothing unencrypted
//! leaves the host then) goes to `[remote]`, together with every local
//! archive whose offsite copy is missing, oldest first (catch-up after a
//! run whose upload failed). A failed upload leaves the local archive as
//! it is and makes the run "not offsite". After a run whose uploads all
//! succeeded, remote retention applies the same rules as the local one
//! ([`crate::retention::apply`] over the store) with the `[remote]` policy.
//!
//! The step returns an [`OffsiteReport`]; `run` records each upload in the
//! history and raises or closes the `offsite_failed` incident.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{Event, Progress};
use crate::history::History;
use crate::retention::{self, Decision};
use crate::store::s3::RemoteStore;
use crate::store::{Archives, Uploaded};

/// What the offsite step did in one run.
#[derive(Debug, Default)]
pub struct OffsiteReport {
    /// No `[remote]` configured: nothing was done.
    pub off: bool,
    /// What was uploaded, oldest first (this run's archive last), each
    /// with the name of the local archive it copies.
    pub uploaded: Vec<(String, Uploaded)>,
    /// Why the run is "not offsite", when it is.
    pub error: Option<String>,
    /// The store that failed (for the alert), when the step failed.
    pub endpoint: Option<String>,
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
/// `history` is read (not written) by remote retention.
pub fn upload(config: &Config, archive: &Path, history: Option<&History>, progress: Progress) -> OffsiteReport {
    match RemoteStore::from_config(&config.remote) {
        Ok(None) => OffsiteReport { off: true, ..Default::default() },
        Ok(Some(remote)) => run_with(config, &remote, archive, history, progress),
        Err(e) => {
            progress(Event::Step("offsite"));
            failed(config.remote.display_endpoint(), Vec::new(), &e, progress)
        }
    }
}

/// [`upload`] once the store is set up.
fn run_with(
    config: &Config,
    remote: &RemoteStore,
    archive: &Path,
    history: Option<&History>,
    progress: Progress,
) -> OffsiteReport {
    progress(Event::Step("offsite"));
    let mut report = OffsiteReport::default();
    if let Err(e) = upload_missing(config, remote, archive, &mut report, progress) {
        return failed(remote.endpoint().to_string(), std::mem::take(&mut report.uploaded), &e, progress);
    }
    let (prefix, policy, judge) = (&config.storage.name_prefix, config.remote.retention(), retention::Judge::Recorded);
    match retention::apply(remote, prefix, history, &policy, Utc::now(), judge, progress) {
        Ok(p) => report.pruned = p.deletes().cloned().collect(),
        Err(e) => progress(Event::Warning(format!("remote retention skipped after the successful upload: {e:#}"))),
    }
    report
}

/// Uploads every local archive whose remote copy is missing, oldest first;
/// the current `archive` is among them (it is the newest).
fn upload_missing(
    config: &Config,
    remote: &RemoteStore,
    archive: &Path,
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
        report.uploaded.push((a.name.clone(), up));
    }
    Ok(())
}

/// The report of a step that failed with `e` at the store at `endpoint`
/// after uploading `uploaded`.
fn failed(endpoint: String, uploaded: Vec<(String, Uploaded)>, e: &Error, progress: Progress) -> OffsiteReport {
    progress(Event::Warning(format!("the offsite copy failed, the local archive is kept: {e:#}")));
    OffsiteReport { uploaded, error: Some(format!("{e:#}")), endpoint: Some(endpoint), ..Default::default() }
}
