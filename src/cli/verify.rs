//! `lifeboat verify`: checks an archive (and its signature); with
//! `--restore-test`, rehearses a restore into a throwaway database.

use std::path::PathBuf;

use super::{emit, render, Cli};
use crate::error::Error;
use crate::events::{CancelToken, Progress};
use crate::verify::VerifyOptions;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    archive: PathBuf,
    /// Also restore it into a throwaway database on this server (a rehearsal)
    #[arg(long, value_name = "URL")]
    restore_test: Option<String>,
    #[command(flatten)]
    options: VerifyOptions,
}

pub(super) fn run(cli: &Cli, args: &VerifyArgs, progress: Progress, cancel: &CancelToken) -> Result<u8, Error> {
    let report = crate::verify::verify_with(&args.archive, &args.options, progress)?;
    if let Some(url) = &args.restore_test {
        let rt = crate::restore::rehearse(&args.archive, &report, url, &args.options, progress, cancel)?;
        emit(cli.json, &rt, render::rehearsal);
        return Ok(if rt.ok { 0 } else { 1 });
    }
    emit(cli.json, &report, render::verify);
    Ok(0)
}
