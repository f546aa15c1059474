//! `lifeboat init`: proposes a commented config for the database and writes
//! it to a new file (an existing one only with `--force`).

use std::path::PathBuf;

use super::{emit, load, Cli};
use crate::config::Overrides;
use crate::error::Error;
use crate::events::{CancelToken, Progress};
use crate::init::InitOptions;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Database to read the catalog of (beats the config and environment)
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Where to write the config
    #[arg(long, short, value_name = "FILE", default_value = "lifeboat.toml")]
    output: PathBuf,
    /// Replace the output file if it exists
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    options: InitOptions,
}

pub(super) fn run(cli: &Cli, args: &InitArgs, progress: Progress, cancel: &CancelToken) -> Result<u8, Error> {
    if args.output.exists() && !args.force {
        // Checked before connecting too, so the refusal does not wait on the database.
        crate::init::write_new(&args.output, "", false)?;
    }
    let config = load(cli, &Overrides { database_url: args.database_url.clone(), ..Default::default() })?;
    let proposal = crate::init::run(&config, &args.options, progress, cancel)?;
    crate::init::write_new(&args.output, &proposal.text, args.force)?;
    emit(cli.json, &proposal, |p| {
        let count = |m| p.decisions.iter().filter(|d| d.mode == m).count();
        use crate::model::Mode;
        format!(
            "Wrote {}: {} tables ({} full, {} window, {} schema only), estimated archive ~{}\n\
             Review the reasons in the file, then run: lifeboat --config {} plan\n",
            args.output.display(),
            p.decisions.len(),
            count(Mode::Full),
            count(Mode::Window),
            count(Mode::Schema),
            super::render::bytes(p.estimated_archive_bytes.max(0) as u64),
            args.output.display()
        )
    });
    Ok(0)
}
