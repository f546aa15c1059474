//! The command line: parses arguments with clap, loads the config, calls one
//! engine function per subcommand and renders its result (text or `--json`).
//! The only module that prints. One file per subcommand (glue: load config →
//! call one engine function → render); `render` holds the text forms.

mod backup;
mod config;
mod init;
mod plan;
mod progress;
mod render;
mod restore;
mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::{Config, ConfigPath, Overrides};
use crate::error::{printable, Error};
use crate::events::{CancelToken, Event};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation ran and failed or found a problem (invalid archive,
     backup step failed, restore rolled back, row counts differ)
  2  could not run: usage or configuration error, database unreachable,
     archive file missing, target database refused";

#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, about = "Consistent, lightweight, verified PostgreSQL backups and one-command restores", after_help = EXIT_CODES)]
pub struct Cli {
    /// Config file [default: $LIFEBOAT_CONFIG, else ./lifeboat.toml if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the result as JSON on stdout (progress stays on stderr)
    #[arg(long, global = true)]
    pub json: bool,
    /// Show more progress detail on stderr
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the restore variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a backup would contain: modes, rows, closure, files, warnings (read-only)
    Plan(plan::PlanArgs),
    /// Take a verified backup into the storage directory
    Backup(backup::BackupArgs),
    /// Check an archive's structure, checksums and row counts
    Verify(verify::VerifyArgs),
    /// Restore an archive into a database, in one transaction
    Restore(restore::RestoreArgs),
    /// Print the effective configuration (secrets shown as ***)
    Config,
    /// Write a commented starting config for the database, from its catalog (read-only)
    Init(init::InitArgs),
}

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    let json = cli.json;
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            let message = format!("{e:#}");
            eprintln!("error: {}", printable(&message));
            if json {
                out(&format!("{}\n", serde_json::json!({ "ok": false, "error": message, "exit_code": code })));
            }
            code
        }
    }
}

fn load(cli: &Cli, flags: &Overrides) -> Result<Config, Error> {
    Ok(load_with_path(cli, flags)?.0)
}

/// The config and the file it came from (`None`: defaults and environment only).
fn load_with_path(cli: &Cli, flags: &Overrides) -> Result<(Config, Option<PathBuf>), Error> {
    let path = match (&cli.config, std::env::var_os("LIFEBOAT_CONFIG")) {
        (Some(p), _) => ConfigPath::Explicit(p.clone()),
        (None, Some(p)) => ConfigPath::Explicit(p.into()),
        (None, None) => ConfigPath::Default("lifeboat.toml".into()),
    };
    let (config, file) = crate::config::load(path, flags)?;
    // Every command that reads the config says what looks wrong in it.
    let progress = progress::plain_printer(cli.verbose);
    for w in &config.warnings {
        progress(Event::Warning(w.clone()));
    }
    Ok((config, file))
}

/// Writes to stdout. A reader that went away (`lifeboat … | head`) is not
/// an error of the operation, whose outcome the exit code still reports.
fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(printable(s).as_bytes()).and_then(|()| o.flush());
}

fn emit<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) {
    if json {
        out(&format!("{}\n", serde_json::to_string_pretty(value).expect("serializable")));
    } else {
        out(&text(value));
    }
}

fn dispatch(cli: Cli) -> Result<u8, Error> {
    use std::io::IsTerminal;
    // Bars only for a person watching; scripts, logs and --json keep the plain lines.
    let terminal = (!cli.json && std::io::stderr().is_terminal()).then(|| progress::Terminal::new(cli.verbose));
    let plain = progress::plain_printer(cli.verbose);
    let progress = |e: Event| match &terminal {
        Some(t) => t.handle(e),
        None => plain(e),
    };
    // Nothing trips it yet from the command line; the daemon's shutdown will.
    let cancel = CancelToken::new();
    match &cli.command {
        Command::Plan(args) => plan::run(&cli, args, &progress),
        Command::Backup(args) => backup::run(&cli, args, &progress, &cancel),
        Command::Verify(args) => verify::run(&cli, args, &progress, &cancel),
        Command::Restore(args) => restore::run(&cli, args, &progress, &cancel),
        Command::Config => config::run(&cli),
        Command::Init(args) => init::run(&cli, args, &progress),
    }
}
