//! The command line: parses arguments with clap, loads the config, calls one
//! engine function per subcommand and renders its result (text or `--json`).
//! The only module that prints. One file per subcommand (glue: load config →
//! call one engine function → render); `render` holds the text forms.

mod backup;
mod check;
mod config;
mod daemon;
mod init;
mod list;
pub mod logging;
mod plan;
mod progress;
mod prune;
mod render;
mod restore;
mod send;
mod serve;
mod test_email;
mod verify;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::{Config, ConfigPath, Overrides};
use crate::error::{printable, Error};
use crate::events::{CancelToken, Event};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (`check`: healthy)
  1  the operation ran and failed or found a problem (invalid archive,
     signature refused, backup step failed, restore rolled back, row counts
     differ, `check`: unhealthy)
  2  could not run: usage or configuration error, database unreachable,
     archive file missing, encrypted archive without a matching --identity,
     target database refused, serve cannot listen
  3  backup only: the archive is good, verified and kept, but mailing it
     failed after every attempt (`lifeboat send` sends it again)
  130, 143  stopped by SIGINT / SIGTERM (128 + signal) after cleaning up: no
     partial archive, temporary file or pg_dump left, nothing committed
`send` and `test-email` exit 1 when the message was not delivered.";

/// Where a target's password may come from, for `--db` and `--restore-test`.
const TARGET_PASSWORD_HELP: &str = "\
Target password: keep it out of the URL (`ps` and shell history show it). Without one there,
lifeboat uses LIFEBOAT_TARGET_PASSWORD_FILE (a file), LIFEBOAT_TARGET_PASSWORD,
PGPASSWORD / PGPASSWORD_FILE, or libpq's password file ($PGPASSFILE, else ~/.pgpass), in that order.";

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
    /// Check an archive's structure, checksums, row counts and signature
    #[command(after_help = TARGET_PASSWORD_HELP)]
    Verify(verify::VerifyArgs),
    /// Restore an archive into a database, in one transaction
    #[command(after_help = TARGET_PASSWORD_HELP)]
    Restore(restore::RestoreArgs),
    /// Mail an archive to the administrators again (the newest, or ARCHIVE)
    Send(send::SendArgs),
    /// Send a test message with the `[email]` settings and report the SMTP outcome
    TestEmail,
    /// Print the effective configuration (secrets shown as ***) and the signing key
    Config,
    /// Serve signed download links (`[links] public_url`), /healthz, /metrics and the status page until SIGTERM or Ctrl-C
    Serve(serve::ServeArgs),
    /// Health check for Docker HEALTHCHECK: reads history and markers only (exit 1 = unhealthy)
    Check,
    /// The archives in the storage directory with age, size and status
    List(list::ListArgs),
    /// Apply retention: delete old archives, keeping the newest good ones
    Prune(prune::PruneArgs),
    /// Write a commented starting config for the database, from its catalog (read-only)
    Init(init::InitArgs),
    /// Run the service: scheduled backups, monitor, HTTP, until SIGTERM or Ctrl-C (exit 0)
    Daemon,
}

/// The subcommand's name, for log lines.
fn command_name(c: &Command) -> String {
    let debug = format!("{c:?}");
    debug.split(['(', ' ']).next().unwrap_or_default().to_ascii_lowercase()
}

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    let json = cli.json;
    let logged = logging::writes_log_file(&cli.command).then(|| command_name(&cli.command));
    let outcome = dispatch(cli);
    // The end of a command that writes `[log] file`, as the daemon logs a run's.
    match (&logged, &outcome) {
        (Some(name), Ok(code)) => {
            tracing::info!(target: crate::daemon::RUN_LOG, "lifeboat {name} finished, exit {code}")
        }
        (Some(name), Err(e)) => {
            tracing::error!(target: crate::daemon::RUN_LOG, "lifeboat {name} failed (exit {}): {e:#}", e.exit_code())
        }
        (None, _) => {}
    }
    match outcome {
        Ok(code) => code,
        Err(e) => {
            let (code, message) = match SIGNAL.load(Ordering::SeqCst) {
                0 => (e.exit_code(), format!("{e:#}")),
                // Whatever the error says, the signal is why the run ended.
                n => (u8::try_from(128 + n).unwrap_or(1), format!("stopped by {}: {e:#}", signal_name(n))),
            };
            err_line(&format!("error: {}", printable(&message)));
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
    if logging::writes_log_file(&cli.command) {
        logging::init_command(&config);
        tracing::info!(target: crate::daemon::RUN_LOG, "lifeboat {} starts", command_name(&cli.command));
    }
    // Every command that reads the config says what looks wrong in it.
    let progress = progress::plain_printer(cli.verbose);
    for w in &config.warnings {
        progress(Event::Warning(w.clone()));
    }
    Ok((config, file))
}

/// Writes one line to stderr. A closed stderr, or a reader that went away
/// (`lifeboat backup 2>&1 | head -1`), must not fail the run — `eprintln!`
/// panics then — so write errors are ignored.
pub fn err_line(s: &str) {
    use std::io::Write;
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(s.as_bytes()).and_then(|()| e.write_all(b"\n"));
}

/// The first termination signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

fn signal_name(n: i32) -> &'static str {
    if n == signal_hook::consts::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

/// Trips `cancel` on the first SIGTERM or SIGINT, so the run cleans up and
/// exits 128 + the signal's number; a second signal ends the process at
/// once with that code.
fn cancel_on_signals(cancel: &CancelToken) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot handle SIGTERM/SIGINT ({e}); a signal will stop lifeboat without cleaning up");
            return;
        }
    };
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        for n in signals.forever() {
            if SIGNAL.compare_exchange(0, n, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                std::process::exit(128 + n);
            }
            cancel.cancel();
        }
    });
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
    let to_log = logging::writes_log_file(&cli.command);
    let progress = |e: Event| {
        if to_log {
            crate::daemon::log_event(e.clone());
        }
        match &terminal {
            Some(t) => t.handle(e),
            None => plain(e),
        }
    };
    // SIGTERM / SIGINT trip it; the daemon's shutdown will too.
    let cancel = CancelToken::new();
    // The daemon handles the signals itself: a graceful stop, exit 0 (FR-23.2).
    if !matches!(cli.command, Command::Daemon) {
        cancel_on_signals(&cancel);
    }
    match &cli.command {
        Command::Plan(args) => plan::run(&cli, args, &progress, &cancel),
        Command::Backup(args) => backup::run(&cli, args, &progress, &cancel),
        Command::Verify(args) => verify::run(&cli, args, &progress, &cancel),
        Command::Restore(args) => restore::run(&cli, args, &progress, &cancel),
        Command::Send(args) => send::run(&cli, args, &progress),
        Command::TestEmail => test_email::run(&cli, &progress),
        Command::Config => config::run(&cli),
        Command::Serve(args) => serve::run(&cli, args),
        Command::Check => check::run(&cli),
        Command::List(args) => list::run(&cli, args),
        Command::Prune(args) => prune::run(&cli, args, &progress),
        Command::Init(args) => init::run(&cli, args, &progress, &cancel),
        Command::Daemon => daemon::run(&cli),
    }
}
