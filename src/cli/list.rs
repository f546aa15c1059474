//! `lifeboat list`: the archives in the storage directory, newest first,
//! with age, size and what the history knows of them (verified when
//! written, delivery, restore rehearsal).

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
}

#[derive(Serialize)]
struct ListReport {
    archives: Vec<Listed>,
}

pub(super) fn run(cli: &Cli) -> Result<u8, Error> {
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
        archives.push(Listed {
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
