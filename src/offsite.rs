//! The offsite step of a run (FR-29): after a verified backup, the archive
//! (its `.age` when `[encryption] recipients` are set: nothing unencrypted
//! leaves the host then) goes to `[remote]`, together with every local
//! archive whose offsite copy is missing, oldest first (catch-up after a
//! run whose upload failed). Each upload is recorded in the run history;
//! a failed one leaves the local archive as it is, marks the run "not
//! offsite" and opens the `offsite_failed` incident (alerted once, closed
//! with a recovery notice by the next run whose uploads all succeed). After a run whose
//! uploads all succeeded, remote retention applies the same rules as the
//! local one ([`crate::retention::decide`]) with the
//! `[remote]` policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{Event, Progress};
use crate::history::{History, OffsiteStatus, RunStatus};
use crate::monitor::channels::Alert;
use crate::monitor::checks::Kind;
use crate::monitor::incidents;
use crate::retention::{self, Archive, Decision, Goodness};
use crate::store::s3::{RemoteStore, Uploaded};
use crate::store::Store;

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
    match prune_remote(config, remote, history.as_ref(), progress) {
        Ok(p) => report.pruned = p,
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
    let local = crate::backup::store_for(config).list()?;
    for a in &local {
        let (path, object) = artifact(config, dir, &a.name)?;
        let size = std::fs::metadata(&path).map(|m| m.len()).ok();
        if on_remote.get(&object).is_some_and(|b| Some(*b) == size) {
            continue;
        }
        let why = if a.name == current { "this run's archive" } else { "catch-up: its offsite copy is missing" };
        progress(Event::Detail(format!("uploading {object} to {} ({why})", remote.object_url(&object))));
        let up = remote.upload(&path, &object, progress)?;
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

/// Remote retention after a successful run: `[remote] retention_days` and
/// `keep_last`, through the same decision as the local one. A remote copy is
/// good when its upload completed (its SHA-256 sidecar exists).
pub fn prune_remote(
    config: &Config,
    remote: &RemoteStore,
    history: Option<&History>,
    progress: Progress,
) -> Result<Vec<Decision>> {
    let prefix = &config.storage.name_prefix;
    let archives: Vec<Archive> = remote
        .list()?
        .into_iter()
        .map(|s| Archive {
            created: retention::created_from_name(prefix, s.name.strip_suffix(".age").unwrap_or(&s.name)),
            name: s.name,
            bytes: s.bytes,
        })
        .collect();
    let latest_failed = match history {
        Some(h) => h.latest_finished()?.filter(|r| r.status != RunStatus::Success).map(|r| r.summary()),
        None => None,
    };
    let mut goodness = |a: &Archive| match remote.sha256(&a.name) {
        Ok(Some(_)) => Goodness::Good,
        Ok(None) => Goodness::NotGood("its upload did not complete (no SHA-256 recorded)".into()),
        Err(e) => Goodness::NotGood(e.to_string()),
    };
    let plan =
        retention::decide(&archives, &config.remote.retention(), Utc::now(), latest_failed.as_deref(), &mut goodness);
    let mut deleted = Vec::new();
    for d in plan.deletes() {
        progress(Event::Detail(format!("remote retention: deleting {} ({})", remote.object_url(&d.name), d.reason)));
        remote.delete(&d.name)?;
        retention::log_deleted(&remote.object_url(""), d);
        deleted.push(d.clone());
    }
    Ok(deleted)
}

/// `lifeboat plan`'s check of `[remote]`: the bucket is reachable and
/// writable (a small put + delete under the prefix). The line to show names
/// the credentials' source, never a key; `None` without `[remote]`.
pub fn check(config: &Config) -> Result<Option<String>> {
    let Some(remote) = RemoteStore::from_config(&config.remote)? else { return Ok(None) };
    remote.probe()?;
    Ok(Some(format!(
        "offsite: {} at {} is reachable and writable (credentials: {})",
        remote.object_url(""),
        remote.endpoint(),
        config.remote.credentials_source
    )))
}

/// The archive an `s3://bucket/prefix/NAME` argument names, read straight
/// from the store with the `[remote]` endpoint and credentials (FR-29.8).
/// The bucket must be the configured one (the credentials are for it); the
/// prefix may differ from `[remote] url`'s. The signature is checked as
/// for a local archive: against the configured store's key, `[restore]
/// trusted_keys` and `--trusted-key` (see `verify`).
pub fn remote_source(config: &Config, url: &str) -> Result<crate::archive::reader::Source> {
    let Some(configured) = config.remote.location() else {
        return Err(Error::Refused(format!(
            "{url} is in an S3 store, but no [remote] url is configured; set [remote] url (with endpoint and \
             credentials) in the config to read it, or download the archive and pass its path"
        )));
    };
    let wanted = crate::config::RemoteUrl::parse(url).map_err(Error::Refused)?;
    if wanted.bucket != configured.bucket {
        return Err(Error::Refused(format!(
            "{url} is in bucket {:?}, but [remote] url is in bucket {:?}; the configured endpoint and \
             credentials are only for that one: pass an s3:// URL in it, or point [remote] at the other bucket",
            wanted.bucket, configured.bucket
        )));
    }
    let (prefix, name) = wanted.prefix.rsplit_once('/').unwrap_or(("", wanted.prefix.as_str()));
    if name.is_empty() {
        return Err(Error::Refused(format!(
            "{url} names no archive; expected s3://{}/PREFIX/NAME.tar.gz (`lifeboat list` shows the names)",
            wanted.bucket
        )));
    }
    let mut remote = config.remote.clone();
    remote.url = Some(format!("s3://{}/{prefix}", wanted.bucket));
    let store = RemoteStore::from_config(&remote)?.expect("the url was just set");
    let size = store.size(name)?;
    let name = name.to_string();
    let url = store.object_url(&name);
    let store = std::sync::Arc::new(store);
    Ok(crate::archive::reader::Source::Remote {
        url,
        size,
        open: std::sync::Arc::new(move || store.open(&name).map_err(|e| std::io::Error::other(e.to_string()))),
    })
}
