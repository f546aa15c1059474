//! `lifeboat send [ARCHIVE]`: (re)sends an archive — the newest one in the
//! storage directory, or the one named — by the same rules as the mail
//! after a backup (verified first; attached when it fits, else a link).

use std::path::PathBuf;

use super::{emit, load, render, Cli};
use crate::config::Overrides;
use crate::deliver::{self, Status};
use crate::error::Error;
use crate::events::Progress;
use crate::store::Archives;

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
            let store = crate::store::open(&config);
            let newest = store.list()?.pop().ok_or_else(|| {
                Error::Refused(format!(
                    "no archive in {} to send; run `lifeboat backup` first, or name one",
                    config.storage.dir.display()
                ))
            })?;
            store.dir().join(newest.name)
        }
    };
    let report = deliver::deliver(&config, &archive, progress);
    if report.status == Status::Delivered {
        record_delivery(&config, &archive, progress);
    }
    emit(cli.json, &report, render::delivery);
    Ok(if report.status == Status::Delivered { 0 } else { 1 })
}

/// A delivered archive of this store: its run's delivery becomes
/// `delivered` (a failed re-send changes nothing) and an open
/// `delivery_failed` incident closes with its recovery notice, as after a
/// backup whose mail went out. An archive from elsewhere has no run here.
fn record_delivery(config: &crate::config::Config, archive: &std::path::Path, progress: Progress) {
    let Some(name) = archive.file_name().and_then(|n| n.to_str()) else { return };
    use crate::history::History;
    let dir = &config.storage.dir;
    let recorded = (|| {
        if !History::path_in(dir).is_file() {
            return Ok(None);
        }
        let h = History::open(dir)?;
        match h.by_archive(name)? {
            Some(run) => h.set_delivery(run.id, crate::history::DeliveryStatus::Delivered).map(|()| Some(h)),
            None => Ok(None),
        }
    })();
    match recorded {
        Ok(Some(h)) => {
            crate::monitor::incidents::resolve(config, Some(&h), crate::monitor::checks::Kind::DeliveryFailed, progress)
        }
        Ok(None) => {}
        Err(e) => {
            progress(crate::events::Event::Warning(format!("the delivery is not recorded in the history: {e:#}")))
        }
    }
}
