//! `lifeboat plan`: opens the snapshot, builds the plan, prints it; with
//! `[remote]`, checks that the bucket is reachable and writable.

use super::{emit, load, render, Cli};
use crate::config::Overrides;
use crate::error::Error;
use crate::events::{CancelToken, Progress};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Database to inspect (beats the config and environment; prefer DATABASE_URL to keep passwords out of `ps`)
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

pub(super) fn run(cli: &Cli, args: &PlanArgs, progress: Progress, cancel: &CancelToken) -> Result<u8, Error> {
    let config = load(cli, &Overrides { database_url: args.database_url.clone(), ..Default::default() })?;
    let plan = crate::backup::plan_only(&config, progress, cancel)?;
    if let Some(line) = crate::store::s3::check(&config)? {
        eprintln!("lifeboat: {}", crate::error::printable(&line));
    }
    // The config's own warnings were printed once when it was read (on
    // stderr, like every command's); the text plan does not repeat them.
    // `--json` keeps them: a reader of the JSON sees one stream.
    let mut plan = plan;
    if !cli.json {
        plan.warnings.retain(|w| !config.warnings.contains(w));
    }
    emit(cli.json, &plan, render::plan);
    Ok(0)
}
