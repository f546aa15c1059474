//! `lifeboat list`: the archives in the storage directory, newest first,
//! with age, size and what the history knows of them (verified when
//! written, delivery, restore rehearsal). An archive whose size differs
//! from the size the history recorded when it was verified is flagged as
//! damaged; `--verify` reads every archive in full and flags any damage.

use serde::Serialize;

use super::{emit, load, render, Cli};
use crate::config::Overrides;
use crate::error::Error;
use crate::history::History;
use crate::store::Store;

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
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Also read every archive in full (checksums, manifest, row counts) and flag the damaged ones
    #[arg(long)]
    verify: bool,
}

#[derive(Serialize)]
struct ListReport {
    archives: Vec<Listed>,
}

pub(super) fn run(cli: &Cli, args: &ListArgs) -> Result<u8, Error> {
    let config = load(cli, &Overrides::default())?;
    let store = crate::backup::store_for(&config);
    let history = History::open_existing(&config.storage.dir)?;
    let now = chrono::Utc::now();
    let mut archives = Vec::new();
    for a in store.list()?.into_iter().rev() {
        let created = crate::retention::created_from_name(&config.storage.name_prefix, &a.name);
        let run = match &history {
            Some(h) => h.by_archive(&a.name)?,
            None => None,
        };
        let recorded = run.as_ref().filter(|r| r.status == "success").and_then(|r| r.size_bytes);
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
            verified: run.as_ref().map(|r| r.status == "success"),
            delivery: run.as_ref().and_then(|r| r.delivery_status.clone()),
            rehearsal: run.as_ref().and_then(|r| r.restore_test_status.clone()),
            name: a.name,
        });
    }
    emit(cli.json, &ListReport { archives }, |r| {
        let mut s =
            format!("{:<44} {:>10} {:>10}  {:<9} {:<9} rehearsal\n", "archive", "age", "size", "verified", "delivery");
        for a in &r.archives {
            let age = a.age_seconds.map(age).unwrap_or_else(|| "?".into());
            let verified = match a.verified {
                _ if a.damaged.is_some() => "DAMAGED",
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            };
            s.push_str(&format!(
                "{:<44} {:>10} {:>10}  {:<9} {:<9} {}\n",
                a.name,
                age,
                render::bytes(a.size_bytes),
                verified,
                a.delivery.as_deref().unwrap_or("-"),
                a.rehearsal.as_deref().unwrap_or("-")
            ));
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
        s
    });
    Ok(0)
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 3600 => format!("{}m", s.max(0) / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
