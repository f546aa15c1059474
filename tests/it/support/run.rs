//! Running the real binary: `lifeboat ARGS` and its output, exit-code and
//! JSON checks, runs bounded in time, the pg_dump processes a run left.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs `lifeboat ARGS` and returns the output.
pub fn run(args: &[&str]) -> Output {
    super::lifeboat().args(args).output().expect("cannot run lifeboat")
}

/// `lifeboat --config <config> <args…>`.
pub fn run_with(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all)
}

/// `lifeboat --config <config> --json backup`, asserting exit 0; the report.
pub fn backup_with(config: &Path) -> Value {
    let o = run_with(config, &["--json", "backup"]);
    assert_exit(&o, 0);
    json(&o)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing stderr when it differs.
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), stderr(o));
}

/// Parses `--json` output.
pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), stderr(o)))
}

/// What a bounded run of lifeboat gave.
pub struct Bounded {
    pub output: Output,
    pub took: Duration,
    /// The process had to be killed after the limit.
    pub hung: bool,
    pub pid: u32,
}

/// Spawns `cmd` (stdout and stderr captured), waits up to `limit`, kills it
/// (SIGKILL) if it is still running then.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Bounded {
    run_bounded_with(cmd, limit, |_| {})
}

/// [`run_bounded`], calling `during(pid)` once right after the spawn.
pub fn run_bounded_with(cmd: &mut Command, limit: Duration, during: impl FnOnce(u32)) -> Bounded {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("cannot run lifeboat");
    let pid = child.id();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    during(pid);
    let mut hung = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            hung = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = start.elapsed();
    let output = Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() };
    Bounded { output, took, hung, pid }
}

impl Bounded {
    /// Fails the test if the run hung or took `max` or longer.
    pub fn assert_within(&self, max: Duration) {
        assert!(
            !self.hung && self.took < max,
            "lifeboat {} after {:.1}s (allowed: {max:?})\nstderr:\n{}",
            if self.hung { "was still running and was killed" } else { "ended" },
            self.took.as_secs_f64(),
            stderr(&self.output)
        );
    }
}

/// Live pg_dump processes (zombies included) working on database `db`:
/// lifeboat hands pg_dump its target in the environment (`PGDATABASE`), so
/// that is where they are recognised; a zombie has no environment left, so
/// zombies are recognised by their parent, `lifeboat_pid`.
pub fn pg_dumps_for(db: &str, lifeboat_pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    let needle = format!("PGDATABASE={db}\0");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ").map(|(a, r)| (a.rsplit('(').next().unwrap_or(""), r)) else {
            continue;
        };
        if comm != "pg_dump" {
            continue;
        }
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next().unwrap_or(""), f.next().and_then(|p| p.parse::<u32>().ok()));
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let ours = String::from_utf8_lossy(&environ).contains(&needle);
        if ours || ppid == Some(lifeboat_pid) {
            found.push(format!("pid {pid} state {state} ppid {ppid:?}"));
        }
    }
    found
}

/// Runs `lifeboat ARGS` with stdin, stdout and stderr on a pseudo-terminal
/// (`script -qec CMD /dev/null`, util-linux); the terminal's bytes are its stdout.
pub fn on_a_terminal(args: &[&str]) -> Output {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let line: Vec<String> =
        std::iter::once(env!("CARGO_BIN_EXE_lifeboat")).chain(args.iter().copied()).map(quote).collect();
    let mut cmd = Command::new("script");
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(super::leaks_into_lifeboat) {
            cmd.env_remove(&name);
        }
    }
    cmd.args(["-qec", &line.join(" "), "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .expect("cannot run `script` (util-linux), needed to give lifeboat a terminal")
}
