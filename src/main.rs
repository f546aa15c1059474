//! The `lifeboat` binary: parse arguments, set up logging, call `cli::run`, exit with its code.
//! Everything else lives in the library (see `src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = lifeboat::cli::Cli::parse();
    // `serve` logs every download at info level (FR-18.3); `daemon`, and
    // the commands that also write `[log] file`, set up their own logging
    // once their config is loaded.
    match cli.command {
        lifeboat::cli::Command::Daemon => {}
        ref c if lifeboat::cli::logging::writes_log_file(c) => {}
        lifeboat::cli::Command::Serve(_) => lifeboat::cli::logging::init("warn,lifeboat=info", None),
        _ => lifeboat::cli::logging::init("warn", None),
    }
    ExitCode::from(lifeboat::cli::run(cli))
}
