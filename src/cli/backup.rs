//! `lifeboat backup`: one verified backup into the configured store, run
//! through [`crate::run`] (history, markers, offsite, delivery, rehearsal,
//! retention, alerts) exactly as the daemon runs it.
//!
//! Exit codes: the backup's own (0, 1, 2), or 3 when the backup is good and
//! kept but its mail could not be delivered.

use std::path::PathBuf;

use serde::Serialize;

use super::{emit, load, render, Cli};
use crate::backup::BackupReport;
use crate::config::Overrides;
use crate::deliver::{DeliveryReport, Status};
use crate::error::{printable, Error};
use crate::events::{CancelToken, Progress};
use crate::run::{self as runner, RunOptions};

/// The exit code of a good backup whose delivery failed.
pub const EXIT_DELIVERY_FAILED: u8 = 3;

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

pub(super) fn run(cli: &Cli, args: &BackupArgs, progress: Progress, cancel: &CancelToken) -> Result<u8, Error> {
    let flags = Overrides { database_url: args.database_url.clone(), output_dir: args.output_dir.clone() };
    // A config that does not load alerts nobody: its channels are unknown.
    let config = load(cli, &flags)?;
    let opts = RunOptions::manual(!args.no_deliver);
    let r = runner::run(&config, opts, progress, cancel)?;
    for d in &r.pruned {
        super::err_line(&format!("lifeboat: retention deleted {} ({})", printable(&d.name), d.reason));
    }
    emit(cli.json, &Outcome { report: &r.backup, delivery: &r.delivery }, |o| {
        format!("{}{}", render::backup(o.report), render::delivery(o.delivery))
    });
    Ok(if r.delivery.status == Status::Failed { EXIT_DELIVERY_FAILED } else { 0 })
}
