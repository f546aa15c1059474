//! `lifeboat prune [--dry-run]`: applies retention to the storage directory
//! and shows every archive's keep/delete decision with its reason. The dry
//! run is the same call with the store wrapped in `DryRun`.

use serde::Serialize;

use super::{emit, load, Cli};
use crate::config::Overrides;
use crate::error::Error;
use crate::events::Progress;
use crate::history::History;
use crate::retention::{self, Decision};
use crate::store::dry_run::DryRun;

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Show what would be deleted and why, delete nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Serialize)]
struct PruneReport {
    dry_run: bool,
    blocked: Option<String>,
    decisions: Vec<Decision>,
}

pub(super) fn run(cli: &Cli, args: &PruneArgs, progress: Progress) -> Result<u8, Error> {
    let config = load(cli, &Overrides::default())?;
    let store = crate::store::open(&config);
    if !config.storage.dir.is_dir() {
        // Nothing to prune, and no reason to create the directory (locking would).
        let report = PruneReport { dry_run: args.dry_run, blocked: None, decisions: Vec::new() };
        let dir = config.storage.dir.display().to_string();
        emit(cli.json, &report, |_| format!("no archives: storage directory {dir} does not exist\n"));
        return Ok(0);
    }
    let history = History::open_existing(&config.storage.dir)?;
    let (prefix, now) = (&config.storage.name_prefix, chrono::Utc::now());
    let plan = if args.dry_run {
        let dry = DryRun::new(store)?;
        retention::prune(&dry, prefix, history.as_ref(), &config.retention, now, None, progress)?
    } else {
        retention::prune(&store, prefix, history.as_ref(), &config.retention, now, None, progress)?
    };
    let report = PruneReport { dry_run: args.dry_run, blocked: plan.blocked, decisions: plan.decisions };
    emit(cli.json, &report, |r| {
        let mut s = String::new();
        if let Some(b) = &r.blocked {
            s.push_str(&format!("nothing deleted: {b}\n"));
        }
        let verb = if r.dry_run { "would delete" } else { "deleted" };
        for d in &r.decisions {
            let what = match d.action {
                retention::Action::Keep => "keep",
                retention::Action::Delete => verb,
            };
            s.push_str(&format!("{what:<13} {}  {}\n", d.name, d.reason));
        }
        let n = r.decisions.iter().filter(|d| d.action == retention::Action::Delete).count();
        s.push_str(&format!(
            "{n} {verb}, {} kept{}\n",
            r.decisions.len() - n,
            if r.dry_run { " (dry run: nothing was changed)" } else { "" }
        ));
        s
    });
    Ok(0)
}
