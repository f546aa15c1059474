//! The `lifeboat` binary: parse arguments, set up logging, call `cli::run`, exit with its code.
//! Everything else lives in the library (see `src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = lifeboat::cli::Cli::parse();
    let filter = match tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG") {
        Ok(f) => f,
        Err(e) => {
            if std::env::var_os("LIFEBOAT_LOG").is_some() {
                lifeboat::cli::err_line(&format!("warning: LIFEBOAT_LOG is not a valid filter ({e}); using \"warn\""));
            }
            "warn".into()
        }
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        // Its own write errors would go to stderr through eprintln!, which
        // panics on a broken pipe: progress must never kill a run.
        .log_internal_errors(false)
        .init();
    ExitCode::from(lifeboat::cli::run(cli))
}
