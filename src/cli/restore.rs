//! `lifeboat restore`: the engine's [`RestoreOptions`] flattened into the
//! arguments, plus the archive and the source database to protect.

use std::path::PathBuf;

use super::{emit, load_with_path, render, Cli};
use crate::config::Overrides;
use crate::error::Error;
use crate::events::{CancelToken, Progress};
use crate::restore::RestoreOptions;

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The archive: a path, or s3://BUCKET/PREFIX/NAME read through [remote]
    archive: PathBuf,
    #[command(flatten)]
    options: RestoreOptions,
}

pub(super) fn run(cli: &Cli, args: &RestoreArgs, progress: Progress, cancel: &CancelToken) -> Result<u8, Error> {
    warn_password_in_url(&args.options.target, "--db");
    // A config file, when there is one, names the source database that
    // a restore must not overwrite by accident. Without a file there is
    // no source to protect (the defaults name no real database).
    let (config, file) = load_with_path(cli, &Overrides::default())?;
    let source = crate::store::source(&args.archive, &config)?;
    let mut opts = RestoreOptions { source: None, ..args.options.clone() };
    // The keys the config trusts: its store's and [restore] trusted_keys.
    opts.verify.trust = crate::verify::config_trust(&config);
    opts.source = file.map(|_| config.database);
    let report = crate::restore::restore_source(&source, &opts, progress, cancel)?;
    emit(cli.json, &report, render::restore);
    Ok(if report.ok { 0 } else { 1 })
}

/// Warns on stderr when a URL given on the command line (`flag`) holds a
/// password: `ps` shows it to every user of the host, and the shell keeps
/// it in its history. The password itself is never shown.
pub(super) fn warn_password_in_url(url: &str, flag: &str) {
    if crate::config::url_has_password(url) {
        super::err_line(&format!(
            "warning: the {flag} URL holds a password, which other users can see in `ps` and which stays in the \
             shell's history; leave it out of the URL and set LIFEBOAT_TARGET_PASSWORD_FILE (or PGPASSWORD, or \
             ~/.pgpass) instead"
        ));
    }
}
