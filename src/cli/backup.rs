//! `lifeboat backup`: one verified backup into the configured store.

use std::path::PathBuf;

use super::{emit, load, render, Cli};
use crate::config::Overrides;
use crate::error::Error;
use crate::events::{CancelToken, Progress};

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
    let report = crate::backup::run(&config, &store, progress, cancel)?;
    emit(cli.json, &report, render::backup);
    Ok(0)
}
