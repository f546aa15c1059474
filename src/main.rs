//! The `lifeboat` binary: parse arguments, set up logging, call `cli::run`, exit with its code.
//! Everything else lives in the library (see `src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = lifeboat::cli::Cli::parse();
    // `serve` logs every download at info level (FR-18.3).
    let default = match cli.command {
        lifeboat::cli::Command::Serve(_) => "warn,lifeboat=info",
        _ => "warn",
    };
    let filter = match tracing_subscriber::EnvFilter::try_from_env("LIFEBOAT_LOG") {
        Ok(f) => f,
        Err(e) => {
            if std::env::var_os("LIFEBOAT_LOG").is_some() {
                eprintln!("warning: LIFEBOAT_LOG is not a valid filter ({e}); using \"{default}\"");
            }
            default.into()
        }
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    ExitCode::from(lifeboat::cli::run(cli))
}
