//! Peak resident memory of a child process, measured by `/usr/bin/time -f %M`
//! (GNU time reads the child's own `wait4` rusage: only that process and its
//! children, not every process this multi-threaded test binary has waited for,
//! as `getrusage(RUSAGE_CHILDREN)` would).

use std::path::Path;
use std::process::{Command, Output};

/// GNU time, which the benchmark-style memory tests need.
const TIME: &str = "/usr/bin/time";

/// Runs `cmd` (program, arguments, environment changes and directory are
/// kept) under GNU time; its output and its peak RSS in KiB.
pub fn run_measured(cmd: &Command) -> (Output, u64) {
    assert!(Path::new(TIME).exists(), "{TIME} (GNU time) is needed to measure peak memory: apt-get install time");
    let report = tempfile::NamedTempFile::new().expect("temp file for the time report");
    let mut timed = Command::new(TIME);
    timed.arg("-f").arg("%M").arg("-o").arg(report.path()).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        timed.current_dir(d);
    }
    let out = timed.output().expect("cannot run /usr/bin/time");
    let text = std::fs::read_to_string(report.path()).unwrap_or_default();
    // `time` writes "Command exited with non-zero status N" before the figure.
    let kib = text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no peak RSS in the time report: {text:?}"));
    (out, kib)
}
