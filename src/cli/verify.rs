//! `lifeboat verify`: checks an archive (and its signature); with
//! `--restore-test`, rehearses a restore into a throwaway database.

use std::path::PathBuf;

use crate::config::Overrides;

use super::{emit, render, Cli};
use crate::error::Error;
use crate::events::{CancelToken, Progress};
use crate::verify::VerifyOptions;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The archive: a path, or s3://BUCKET/PREFIX/NAME read through [remote]
    archive: PathBuf,
    /// Also restore it into a throwaway database on this server (a rehearsal)
    #[arg(long, value_name = "URL")]
    restore_test: Option<String>,
    #[command(flatten)]
    options: VerifyOptions,
}

pub(super) fn run(cli: &Cli, args: &VerifyArgs, progress: Progress, cancel: &CancelToken) -> Result<u8, Error> {
    // The config names the keys to trust (its store's, [restore]
    // trusted_keys) and, for an s3:// archive, the store to read.
    let config = super::load(cli, &Overrides::default())?;
    let source = crate::store::source(&args.archive, &config)?;
    let options = VerifyOptions { trust: crate::verify::config_trust(&config), ..args.options.clone() };
    let report = crate::verify::verify_source(&source, &options, progress)?;
    if let Some(url) = &args.restore_test {
        super::restore::warn_password_in_url(url, "--restore-test");
        let Some(path) = source.local() else {
            return Err(Error::Refused(format!(
                "--restore-test reads a local archive; for {} run `lifeboat restore {} --db URL` into a \
                 throwaway database instead",
                source.name(),
                source.name()
            )));
        };
        let rt = crate::restore::rehearse(path, &report, url, &options, progress, cancel)?;
        emit(cli.json, &rt, render::rehearsal);
        return Ok(if rt.ok { 0 } else { 1 });
    }
    emit(cli.json, &report, render::verify);
    Ok(0)
}
