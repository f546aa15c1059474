//! `lifeboat send [ARCHIVE]`: (re)sends an archive — the newest one in the
//! storage directory, or the one named — by the same rules as the mail
//! after a backup (verified first; attached when it fits, else a link).

use std::path::PathBuf;

use super::{emit, load, render, Cli};
use crate::config::Overrides;
use crate::deliver::{self, Status};
use crate::error::Error;
use crate::events::Progress;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The archive to send [default: the newest in storage.dir]
    archive: Option<PathBuf>,
}

pub(super) fn run(cli: &Cli, args: &SendArgs, progress: Progress) -> Result<u8, Error> {
    let config = load(cli, &Overrides::default())?;
    if !config.email.enabled() {
        return Err(Error::Refused(deliver::DeliverError::NotConfigured.to_string()));
    }
    let archive = match &args.archive {
        Some(a) => {
            if !a.is_file() {
                return Err(Error::Refused(format!(
                    "cannot open archive {}: no such file; name an archive, or run `lifeboat send` for the newest",
                    a.display()
                )));
            }
            a.clone()
        }
        None => {
            let store = crate::backup::store_for(&config);
            let newest = store.list()?.pop().ok_or_else(|| {
                Error::Refused(format!(
                    "no archive in {} to send; run `lifeboat backup` first, or name one",
                    config.storage.dir.display()
                ))
            })?;
            store.dir().join(newest.name)
        }
    };
    let report = deliver::deliver(&config, &archive, None, progress);
    emit(cli.json, &report, render::delivery);
    Ok(if report.status == Status::Delivered { 0 } else { 1 })
}
