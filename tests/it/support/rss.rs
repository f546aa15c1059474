//! Peak resident memory of a child process, for tests that bound memory:
//! the command runs under GNU time (`/usr/bin/time -f %M`), which reports
//! the child's own `ru_maxrss` from `wait4`, so other tests' children
//! running at the same time cannot inflate it.

use std::path::Path;
use std::process::{Command, Output};

/// What a measured run gives: its output and its peak RSS in KiB.
pub struct Measured {
    pub output: Output,
    pub peak_rss_kib: u64,
}

impl Measured {
    pub fn peak_rss_mib(&self) -> u64 {
        self.peak_rss_kib / 1024
    }
}

/// Runs `cmd` (program, arguments, environment changes and working
/// directory are carried over) under `/usr/bin/time` and returns its
/// output with its peak RSS.
pub fn run_measured(cmd: &Command) -> Measured {
    let time = Path::new("/usr/bin/time");
    assert!(time.is_file(), "peak-RSS tests need GNU time at /usr/bin/time (apt-get install time)");
    let report = tempfile::NamedTempFile::new().expect("temp file for GNU time's report");
    let mut timed = Command::new(time);
    timed.arg("-f").arg("%M").arg("-o").arg(report.path()).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let output = timed.output().expect("cannot run /usr/bin/time");
    let text = std::fs::read_to_string(report.path()).expect("GNU time wrote no report");
    // A failing child adds "Command exited with non-zero status N" first.
    let peak_rss_kib = text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in GNU time's report: {text:?}"));
    Measured { output, peak_rss_kib }
}
