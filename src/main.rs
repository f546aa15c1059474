//! The `lifeboat` binary: parse arguments, set up logging, call `cli::run`, exit with its code.
//! Everything else lives in the library (see `src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = lifeboat::cli::Cli::parse();
    // `serve` logs every download at info level (FR-18.3); `daemon` sets up
    // its own logging once its config (`[log] file`) is loaded.
    match cli.command {
        lifeboat::cli::Command::Daemon => {}
        lifeboat::cli::Command::Serve(_) => lifeboat::cli::logging::init("warn,lifeboat=info", None),
        _ => lifeboat::cli::logging::init("warn", None),
    }
    ExitCode::from(lifeboat::cli::run(cli))
}
