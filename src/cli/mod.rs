//! The command line: parses arguments with clap, loads the config, calls one
//! engine function per subcommand and renders its result (text or `--json`).
//! The only module that prints.

mod render;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::{self, ConfigPath, Overrides};
use crate::error::Error;
use crate::progress::Event;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a backup would contain: modes, rows, closure, files, warnings (read-only)
    Plan {
        /// Database to inspect (beats the config and environment; prefer DATABASE_URL to keep passwords out of `ps`)
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
    /// Take a verified backup into the storage directory
    Backup {
        /// Where to write the archive [default: storage.dir]
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Database to back up (beats the config and environment)
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
    /// Check an archive's structure, checksums, row counts and signature
    Verify {
        archive: PathBuf,
        /// Also restore it into a throwaway database on this server (a rehearsal)
        #[arg(long, value_name = "URL")]
        restore_test: Option<String>,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Restore an archive into a database, in one transaction
    Restore {
        archive: PathBuf,
        /// Target database
        #[arg(long, value_name = "URL")]
        db: String,
        /// Also restore the configuration files into this directory
        #[arg(long, value_name = "DIR")]
        config_dir: Option<PathBuf>,
        /// Restore only these tables (plus the tables they reference)
        #[arg(long, value_delimiter = ',', value_name = "TABLES")]
        tables: Vec<String>,
        /// Replace a non-empty target (drops what it lists first)
        #[arg(long)]
        force: bool,
        /// Load tables over N connections in parallel. Faster on big archives, but
        /// not one transaction: a failure empties the target instead of rolling back
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Serve signed download links ([links]) until SIGTERM or Ctrl-C
    Serve {
        /// Address to listen on [default: [http] listen, 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Print the effective configuration (secrets shown as ***)
    Config,
}

/// How `verify` and `restore` read and trust an archive.
#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    /// age identity file, to read a .tar.gz.age archive
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// minisign public key that must have signed the archive (refuses unsigned or
    /// otherwise-signed archives) [default: the .lifeboat/signing.pub of the archive's store]
    #[arg(long, value_name = "FILE")]
    pub trusted_key: Option<PathBuf>,
}

impl TrustArgs {
    fn options(&self) -> crate::verify::VerifyOptions {
        crate::verify::VerifyOptions { identity: self.identity.clone(), trusted_key: self.trusted_key.clone() }
    }
}

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    let json = cli.json;
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let code = e.exit_code();
            let message = format!("{e:#}");
            eprintln!("error: {message}");
            if json {
                out(&format!("{}\n", serde_json::json!({ "ok": false, "error": message, "exit_code": code })));
            }
            code
        }
    }
}

/// `lifeboat config`: the configuration and the store's signing key.
#[derive(Serialize)]
struct ShownConfig {
    #[serde(flatten)]
    config: config::Config,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_key_id: Option<String>,
}

fn load(cli: &Cli, flags: &Overrides) -> Result<config::Config, Error> {
    Ok(load_with_path(cli, flags)?.0)
}

/// The config and the file it came from (`None`: defaults and environment only).
fn load_with_path(cli: &Cli, flags: &Overrides) -> Result<(config::Config, Option<PathBuf>), Error> {
    let path = match (&cli.config, std::env::var_os("LIFEBOAT_CONFIG")) {
        (Some(p), _) => ConfigPath::Explicit(p.clone()),
        (None, Some(p)) => ConfigPath::Explicit(p.into()),
        (None, None) => ConfigPath::Default("lifeboat.toml".into()),
    };
    Ok(config::load(path, flags)?)
}

fn progress_printer(verbose: bool) -> impl Fn(Event) + Sync {
    move |e| match e {
        Event::Step(s) => eprintln!("lifeboat: {s}"),
        Event::Warning(w) => eprintln!("warning: {w}"),
        Event::Table { name, rows, closure_rows, bytes } if verbose => {
            eprintln!("  {name}: {rows} rows ({closure_rows} closure), {}", render::bytes(bytes))
        }
        Event::Detail(d) if verbose => eprintln!("  {d}"),
        _ => {}
    }
}

/// Writes to stdout. A reader that went away (`lifeboat … | head`) is not
/// an error of the operation, whose outcome the exit code still reports.
fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes()).and_then(|()| o.flush());
}

fn emit<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) {
    if json {
        out(&format!("{}\n", serde_json::to_string_pretty(value).expect("serializable")));
    } else {
        out(&text(value));
    }
}

fn dispatch(cli: Cli) -> Result<u8, Error> {
    let progress = progress_printer(cli.verbose);
    match &cli.command {
        Command::Plan { database_url } => {
            let config = load(&cli, &Overrides { database_url: database_url.clone(), ..Default::default() })?;
            let plan = crate::backup::plan_only(&config, &progress)?;
            emit(cli.json, &plan, render::plan);
            Ok(0)
        }
        Command::Backup { output_dir, database_url } => {
            let config = load(&cli, &Overrides { database_url: database_url.clone(), output_dir: output_dir.clone() })?;
            let report = crate::backup::run(&config, &progress)?;
            emit(cli.json, &report, render::backup);
            Ok(0)
        }
        Command::Verify { archive, restore_test, trust } => {
            let opts = trust.options();
            let report = crate::verify::verify_with(archive, &opts, &progress)?;
            if let Some(url) = restore_test {
                let rt = crate::restore::rehearse(archive, &report, url, &opts, &progress)?;
                emit(cli.json, &rt, render::rehearsal);
                return Ok(if rt.ok { 0 } else { 1 });
            }
            emit(cli.json, &report, render::verify);
            Ok(0)
        }
        Command::Restore { archive, db, config_dir, tables, force, jobs, trust } => {
            // A config file, when there is one, names the source database that
            // a restore must not overwrite by accident. Without a file there is
            // no source to protect (the defaults name no real database).
            let (config, file) = load_with_path(&cli, &Overrides::default())?;
            let opts = crate::restore::RestoreOptions {
                target: db.clone(),
                config_dir: config_dir.clone(),
                tables: tables.clone(),
                force: *force,
                jobs: usize::from(*jobs),
                source: file.map(|_| config.database),
                verify: trust.options(),
            };
            let report = crate::restore::restore(archive, &opts, &progress)?;
            emit(cli.json, &report, render::restore);
            Ok(if report.ok { 0 } else { 1 })
        }
        Command::Config => {
            let config = load(&cli, &Overrides::default())?;
            let key = crate::archive::signature::read_store_public_key(&config.storage.dir);
            let shown = ShownConfig {
                signing_public_key: key.as_ref().map(|k| k.0.clone()),
                signing_key_id: key.map(|k| k.1),
                config,
            };
            emit(cli.json, &shown, render::config);
            Ok(0)
        }
        Command::Serve { listen } => serve::run(&load(&cli, &Overrides::default())?, listen.as_deref()),
    }
}
