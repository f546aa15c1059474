//! Peak memory of a child process: the command runs under GNU time
//! (`/usr/bin/time -f %M -o FILE`), which reports the maximum resident set
//! size of exactly that process (wait4's rusage). `getrusage(RUSAGE_CHILDREN)`
//! would mix in every other child of this multi-threaded test process.

use std::path::Path;
use std::process::{Command, Output};

const GNU_TIME: &str = "/usr/bin/time";

/// Runs `cmd` (program, arguments, environment and working directory as
/// set) and returns its output and its peak resident set size in bytes.
pub fn run_measuring_peak_rss(cmd: &Command) -> (Output, u64) {
    assert!(
        Path::new(GNU_TIME).exists(),
        "{GNU_TIME} is missing: install GNU time (apt-get install time) to run the memory-bound tests"
    );
    let report = tempfile::NamedTempFile::new().expect("temp file for GNU time's report");
    let mut timed = Command::new(GNU_TIME);
    timed.args(["-f", "%M", "-o"]).arg(report.path()).arg(cmd.get_program()).args(cmd.get_args());
    for (name, value) in cmd.get_envs() {
        match value {
            Some(v) => timed.env(name, v),
            None => timed.env_remove(name),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let out = timed.output().expect("run the command under GNU time");
    let text = std::fs::read_to_string(report.path()).expect("GNU time's report");
    // Exit codes other than 0 add a "Command exited with non-zero status" line.
    let kib: u64 = text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no peak RSS in GNU time's report: {text:?}"));
    (out, kib * 1024)
}
