//! `lifeboat list`: the archives in the storage directory, newest first,
//! with age, size and what the history knows of them (verified when
//! written, delivery, restore rehearsal). An archive whose size differs
//! from the size the history recorded when it was verified is flagged as
//! damaged; `--verify` reads every archive in full and flags any damage.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{emit, load, render, Cli};
use crate::config::Overrides;
use crate::error::Error;
use crate::history::{History, RunStatus};
use crate::store::Archives;

#[derive(Serialize)]
struct Listed {
    name: String,
    created_at: Option<String>,
    age_seconds: Option<i64>,
    size_bytes: u64,
    /// `true` when the history shows the run that wrote and verified it; `null` when it is not in the history.
    verified: Option<bool>,
    delivery: Option<String>,
    rehearsal: Option<String>,
    /// What is wrong with the file as it is now (a size that differs from the verified one; with `--verify`, any damage); `null`: nothing found.
    damaged: Option<String>,
    /// `false` for a copy only the `[remote]` store has.
    local: bool,
    /// With `[remote]`: `present`, `missing`, `size mismatch` or `unknown` (the store could not be listed); `null` without `[remote]`.
    remote: Option<&'static str>,
    remote_bytes: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Also read every archive in full (checksums, manifest, row counts) and flag the damaged ones
    #[arg(long)]
    verify: bool,
}

/// A run stopped on purpose (`aborted`: SIGTERM, `docker stop`) since the
/// last success. It left no archive and pages nobody, but an operator
/// reading the list should see that a slot was made up by a later run (or
/// is still to be).
#[derive(Serialize)]
struct Stopped {
    run: i64,
    started_at: String,
    /// The step it was stopped in.
    step: Option<String>,
}

#[derive(Serialize)]
struct ListReport {
    archives: Vec<Listed>,
    /// Runs aborted on purpose since the last successful one, newest first.
    stopped: Vec<Stopped>,
}

pub(super) fn run(cli: &Cli, args: &ListArgs) -> Result<u8, Error> {
    let config = load(cli, &Overrides::default())?;
    let store = crate::store::open(&config);
    let history = History::open_existing(&config.storage.dir)?;
    let now = chrono::Utc::now();
    let mut remote = remote_copies(&config);
    let mut archives = Vec::new();
    for a in store.list()?.into_iter().rev() {
        let copy = remote.as_mut().map(|r| r.as_mut().map(|m| m.remove(&a.name)).map_err(|_| ()));
        let created = crate::retention::created_from_name(&config.storage.name_prefix, &a.name);
        let run = match &history {
            Some(h) => h.by_archive(&a.name)?,
            None => None,
        };
        let recorded = run.as_ref().filter(|r| r.status == RunStatus::Success).and_then(|r| r.size_bytes);
        let damaged = match recorded {
            Some(size) if size != a.bytes => {
                Some(format!("{} bytes on disk, {size} bytes when it was verified", a.bytes))
            }
            _ if args.verify => crate::retention::damage(&store, &a.name),
            _ => None,
        };
        archives.push(Listed {
            damaged,
            created_at: created.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            age_seconds: created.map(|t| now.signed_duration_since(t).num_seconds()),
            size_bytes: a.bytes,
            verified: run.as_ref().map(|r| r.status == RunStatus::Success),
            delivery: run.as_ref().and_then(|r| r.delivery_status).map(|s| s.to_string()),
            rehearsal: run.as_ref().and_then(|r| r.restore_test_status).map(|s| s.to_string()),
            local: true,
            remote: copy.map(|c| match c {
                Err(()) => "unknown",
                Ok(None) => "missing",
                Ok(Some(b)) if b != a.bytes => "size mismatch",
                Ok(Some(_)) => "present",
            }),
            remote_bytes: copy.and_then(|c| c.ok().flatten()),
            name: a.name,
        });
    }
    // Copies only the store has (the local one was pruned or lost), newest first.
    for (name, bytes) in remote.and_then(Result::ok).unwrap_or_default().into_iter().rev() {
        let created = crate::retention::created_from_name(&config.storage.name_prefix, &name);
        archives.push(Listed {
            created_at: created.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            age_seconds: created.map(|t| now.signed_duration_since(t).num_seconds()),
            size_bytes: 0,
            verified: None,
            delivery: None,
            rehearsal: None,
            damaged: None,
            local: false,
            remote: Some("present"),
            remote_bytes: Some(bytes),
            name,
        });
    }
    let stopped = stopped(history.as_ref())?;
    emit(cli.json, &ListReport { archives, stopped }, text);
    Ok(0)
}

/// Runs aborted on purpose since the last success, newest first. Only the
/// newest few runs are looked at: what matters is the gap since the last
/// success.
fn stopped(history: Option<&History>) -> Result<Vec<Stopped>, Error> {
    let Some(h) = history else { return Ok(Vec::new()) };
    Ok(h.recent(20)?
        .into_iter()
        .take_while(|r| r.status != RunStatus::Success)
        .filter(|r| r.status == RunStatus::Aborted)
        .map(|r| Stopped {
            run: r.id,
            started_at: r.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            step: r.failed_step,
        })
        .collect())
}

/// The text of `lifeboat list` (without `--json`).
fn text(r: &ListReport) -> String {
    let remote_col = r.archives.iter().any(|a| a.remote.is_some());
    let mut s =
        format!("{:<44} {:>10} {:>10}  {:<9} {:<9} rehearsal\n", "archive", "age", "size", "verified", "delivery");
    if remote_col {
        s = format!("{}  remote\n", s.trim_end());
    }
    for a in &r.archives {
        let age = a.age_seconds.map(age).unwrap_or_else(|| "?".into());
        let verified = match a.verified {
            _ if a.damaged.is_some() => "DAMAGED",
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        };
        let line = format!(
            "{:<44} {:>10} {:>10}  {:<9} {:<9} {:<9}",
            a.name,
            age,
            if a.local { render::bytes(a.size_bytes) } else { "-".into() },
            if a.local { verified } else { "(remote)" },
            a.delivery.as_deref().unwrap_or("-"),
            a.rehearsal.as_deref().unwrap_or("-")
        );
        match a.remote {
            Some(remote) if remote_col => s.push_str(&format!("{line}  {remote}\n")),
            _ => s.push_str(&format!("{}\n", line.trim_end())),
        }
    }
    for a in r.archives.iter().filter(|a| a.damaged.is_some()) {
        s.push_str(&format!(
            "damaged: {}: {}; do not rely on it: `lifeboat verify` it, and take a new backup\n",
            a.name,
            a.damaged.as_deref().unwrap_or_default()
        ));
    }
    if r.archives.is_empty() {
        s.push_str("(no archives)\n");
    }
    for st in &r.stopped {
        s.push_str(&format!(
            "stopped: run {} started {} was stopped on purpose{} and left no archive (not a failure: the next run \
             makes up for it)\n",
            st.run,
            st.started_at,
            st.step.as_deref().map(|step| format!(" during {step}")).unwrap_or_default()
        ));
    }
    s
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 3600 => format!("{}m", s.max(0) / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The `[remote]` copies by name and size: `None` without `[remote]`,
/// `Err` (warned about) when the store cannot be listed, so the local
/// listing still shows.
fn remote_copies(config: &crate::config::Config) -> Option<Result<BTreeMap<String, u64>, ()>> {
    let listed = crate::store::s3::RemoteStore::from_config(&config.remote).and_then(|s| match s {
        Some(s) => s.list().map(Some),
        None => Ok(None),
    });
    match listed {
        Ok(None) => None,
        Ok(Some(v)) => Some(Ok(v.into_iter().map(|a| (a.name, a.bytes)).collect())),
        Err(e) => {
            super::err_line(&format!("warning: the remote copies are not shown: {e}"));
            Some(Err(()))
        }
    }
}
