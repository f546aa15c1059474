//! One backup run, the one place that knows the order of a run; the
//! engine `lifeboat backup` and the daemon both call ([`run`]):
//!
//! 1. the start ping, then the seal (`backup::run`: plan → snapshot →
//!    copy → archive → verify → [`Sealed`]), recorded in the run history
//!    (and, when it succeeded, the marker files);
//! 2. the offsite copy ([`offsite`], `[remote]`), before the mail, whose
//!    download link may be the offsite copy's;
//! 3. delivery (the success mail, unless switched off);
//! 4. the restore rehearsal ([`rehearsal`], `[verify] restore_test_url`),
//!    before retention, which must see a failed rehearsal (FR-6.7);
//! 5. retention (`retention::prune`), then the success ping.
//!
//! Steps return values; only this module writes the history
//! ([`record`]: the history is opened once per run and lent to the steps
//! that read it) and raises or resolves incidents (`monitor::incidents`),
//! with the alerts of [`alerts`]: on any failure an alert that names the
//! step, the error and the last log lines. The run's failures open their
//! incidents, so the monitor loop does not alert them a second time, and
//! its successes close them again.
//!
//! A process out of descriptors (FR-23.4) cannot record, mail, post or
//! ping: every channel needs one. The HTTP side's limits keep a reserve so
//! this should not happen, but when it does the run does not just fail
//! silently: it waits up to [`DESCRIPTOR_WAIT`] for descriptors (the HTTP
//! side closes idle connections within its header-read timeout) before it
//! starts, and again before it records its failure and alerts.

pub mod alerts;
pub mod offsite;
pub mod record;
pub mod rehearsal;

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::backup::{BackupReport, Sealed};
use crate::config::Config;
use crate::deliver::{self, DeliveryReport, Status};
use crate::error::Error;
use crate::events::{CancelToken, Event, Progress};
use crate::history::{History, Trigger};
use crate::monitor::channels::{self, Ping};
use crate::monitor::checks::Kind;
use crate::monitor::incidents;
use crate::retention::Decision;
use offsite::OffsiteReport;
use record::{Recorder, Recording};
use rehearsal::Rehearsed;

/// How long a run waits for a free descriptor, before it starts and before
/// it records and alerts a failure: longer than the default
/// `[http] header_read_timeout` (10 s), after which idle connections are gone.
pub const DESCRIPTOR_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Descriptors that recording a run and alerting it need at once: the
/// history (database, WAL, shared memory), a socket per channel, a spare.
const DESCRIPTORS_TO_RECORD: usize = 8;

/// Whether this process lacks the descriptors to record and alert a run
/// (EMFILE/ENFILE when opening [`DESCRIPTORS_TO_RECORD`] handles of `/dev/null` at once).
fn out_of_descriptors() -> bool {
    let mut probes = Vec::with_capacity(DESCRIPTORS_TO_RECORD);
    while probes.len() < DESCRIPTORS_TO_RECORD {
        match std::fs::File::open("/dev/null") {
            Ok(f) => probes.push(f),
            Err(e) => return matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)),
        }
    }
    false
}

/// Waits (bounded by `limit`) until enough descriptors are free; says so
/// when it had to wait, and when waiting did not help.
fn wait_for_descriptors(limit: std::time::Duration, why: &str, progress: Progress) {
    if !out_of_descriptors() {
        return;
    }
    let start = std::time::Instant::now();
    while out_of_descriptors() && start.elapsed() < limit {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let waited = crate::events::humantime(start.elapsed());
    if out_of_descriptors() {
        tracing::error!(
            "out of open files for {waited} {why}; raise the open-files limit (ulimit -n, the container's nofile)"
        );
    } else {
        progress(Event::Warning(format!(
            "this process was out of open files: waited {waited} {why}; raise the open-files limit (ulimit -n, the \
             container's nofile) or lower [http] max_connections"
        )));
    }
}

/// What a run is asked to do besides the backup itself.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub trigger: Trigger,
    /// Mail the archive (failure alerts and pings go out either way).
    pub deliver: bool,
    /// This attempt (1 = the first) of `attempts`: the daemon retries a
    /// [`retry_worthy`] failure (FR-1.7), and only the last attempt alerts.
    pub attempt: u32,
    pub attempts: u32,
    /// When the caller cancels the run for taking too long, and that limit
    /// (`[schedule] run_timeout`): a run cancelled at or past it is recorded
    /// `failed` and alerted (FR-1.6), not `aborted`.
    pub deadline: Option<(std::time::Instant, std::time::Duration)>,
}

impl RunOptions {
    /// `lifeboat backup`: one attempt, no timeout.
    pub fn manual(deliver: bool) -> RunOptions {
        RunOptions { trigger: Trigger::Manual, deliver, attempt: 1, attempts: 1, deadline: None }
    }
}

/// Whether the daemon tries a run that failed with `e` again (FR-1.7): the
/// error's own retryability, except a run that found the lock taken (it is
/// `skipped`: the other run is the backup) or was cancelled (shutdown or
/// timeout).
pub fn retry_worthy(e: &Error) -> bool {
    e.is_retryable() && !matches!(e, Error::Busy(_) | Error::Cancelled { .. })
}

/// A run whose backup succeeded (its delivery may still have failed).
#[derive(Debug)]
pub struct RunReport {
    pub backup: BackupReport,
    pub sealed: Sealed,
    pub delivery: DeliveryReport,
    /// What retention deleted after the run.
    pub pruned: Vec<Decision>,
    /// The offsite copy (`[remote]`): uploaded, caught up, or why not.
    pub offsite: OffsiteReport,
    /// The restore rehearsal, when one ran to its end.
    pub rehearsed: Option<Rehearsed>,
}

/// One recorded, delivered, rehearsed, pruned and alerted backup run (see
/// the module for the order). `Err` is the backup's own failure (already
/// alerted and recorded); a failed delivery is `Ok` with `delivery.status
/// == Failed` (also alerted).
pub fn run(config: &Config, opts: RunOptions, progress: Progress, cancel: &CancelToken) -> Result<RunReport, Error> {
    let recorder = Recorder::new(progress);
    let progress = &|e| recorder.record(e);
    wait_for_descriptors(DESCRIPTOR_WAIT, "before the run could start", progress);
    let _ = channels::ping(&config.alerts, Ping::Start, None, progress);

    let store = crate::store::open(config);
    let started = Utc::now();
    let mut recording = Recording::new(&config.storage.dir, opts.trigger, opts.attempt, started, progress);
    let steps = Mutex::new(Vec::<(&'static str, DateTime<Utc>)>::new());
    let tracking = |e: Event| {
        if let Event::Step(s) = &e {
            steps.lock().expect("not poisoned").push((s, Utc::now()));
        }
        progress(e);
    };
    let result = timed_out(crate::backup::run(config, &store, &tracking, cancel), opts.deadline);
    if result.is_err() {
        // A run that failed for want of descriptors still leaves its row and its alert.
        wait_for_descriptors(DESCRIPTOR_WAIT, "to record and alert the failed run", progress);
    }
    recording.finish(&result, steps.into_inner().expect("not poisoned"));
    let sealed = match result {
        Ok(s) => s,
        Err(e) => {
            let retried = opts.attempt < opts.attempts && retry_worthy(&e);
            if retried {
                progress(Event::Warning(format!(
                    "attempt {} of {} failed with an error worth retrying; trying again after the back-off",
                    opts.attempt, opts.attempts
                )));
            } else if record::status_of(&e).counts_for_health() {
                let alert = alerts::backup_failed(config, &e, &opts, recorder.step(), recorder.lines());
                incidents::raise(config, recording.history(), &alert, true, progress);
            }
            // Otherwise the run is `aborted` (stopped on purpose: SIGTERM
            // after the grace period, Ctrl-C; the daemon's next start catches
            // the slot up) or `skipped` (refused: another run holds the store
            // and is the backup). Neither is a failure: no alert, no `/fail`
            // ping, no incident (FR-4.2). A run timeout is not `aborted`: it
            // arrives as its own error.
            return Err(e);
        }
    };
    let history = || recording.history();
    let name = sealed.name();
    let mut backup = sealed.report();
    // A good run with an archive outside the size band says so in its
    // report (the mail and `check` use the same rule, FR-4.3).
    for p in crate::monitor::checks::size_band_of(&config.storage.dir, &name, sealed.size, &config.monitor) {
        // In the log (the daemon's `RUN_LOG` target); on a terminal the report prints its warnings itself.
        tracing::warn!(target: "lifeboat::run", "{}", p.reason);
        backup.warnings.push(p.reason);
    }

    // Before the mail: its download link may be the offsite copy's.
    let offsite = offsite::upload(config, &sealed.path, history(), progress);
    recording.offsite(&name, &offsite);
    match (&offsite.error, &offsite.endpoint) {
        (Some(error), endpoint) => {
            let endpoint = endpoint.clone().unwrap_or_else(|| config.remote.display_endpoint());
            // An incident: alerted once (then every `realert_hours`) while the store stays down.
            incidents::raise(
                config,
                history(),
                &alerts::offsite_failed(&sealed.path, &endpoint, error),
                true,
                progress,
            );
        }
        (None, _) if !offsite.off => incidents::resolve(config, history(), Kind::OffsiteFailed, progress),
        (None, _) => {}
    }
    let delivery = if opts.deliver {
        deliver::deliver_sealed(config, &sealed, progress)
    } else {
        DeliveryReport::skipped("--no-deliver")
    };
    recording.delivery(&delivery);
    incidents::resolve(config, history(), Kind::BackupFailed, progress);
    // Before retention, which must see a failed rehearsal (FR-6.7).
    let rehearsed = rehearsal::rehearse(config, &sealed, progress, cancel);
    if let Some(r) = &rehearsed {
        recording.rehearsal(&name, r);
        if r.ok {
            incidents::resolve(config, recording.history(), Kind::RestoreTestFailed, progress);
        } else {
            let alert = alerts::restore_test_failed(config, &sealed.path, r);
            incidents::raise(config, recording.history(), &alert, true, progress);
        }
    }
    let history = || recording.history();
    let pruning = Utc::now();
    let pruned = prune_after_success(config, &store, history(), &name, progress);
    recording.retention(&pruned, &offsite.pruned, pruning);
    if delivery.status == Status::Failed {
        let alert = alerts::delivery_failed(config, &sealed.path, &delivery, recorder.lines());
        // Mail is what failed: the other channels carry this alert.
        incidents::raise(config, history(), &alert, false, progress);
    } else {
        if delivery.status == Status::Delivered {
            incidents::resolve(config, history(), Kind::DeliveryFailed, progress);
        }
        // A run whose offsite copy failed has pinged /fail with its alert:
        // a success ping after it would clear that check at once.
        if offsite.ok() {
            let _ = channels::ping(&config.alerts, Ping::Success, None, progress);
        }
    }
    Ok(RunReport { backup, sealed, delivery, pruned, offsite, rehearsed })
}

/// Retention after a successful run (FR-6.1), the same decision as
/// `lifeboat prune`. The backup itself succeeded: a retention problem is a
/// warning, never a failed run. `archive`, verified by the backup before
/// it was sealed, is not read again.
fn prune_after_success(
    config: &Config,
    store: &dyn crate::store::Store,
    history: Option<&History>,
    archive: &str,
    progress: Progress,
) -> Vec<Decision> {
    if history.is_none() && History::path_in(&config.storage.dir).is_file() {
        // Without it, retention cannot see failed runs and rehearsals.
        progress(Event::Warning("retention skipped: the run history could not be opened".into()));
        return Vec::new();
    }
    let now = Utc::now();
    match crate::retention::prune(
        store,
        &config.storage.name_prefix,
        history,
        &config.retention,
        now,
        Some(archive),
        progress,
    ) {
        Ok(plan) => plan.deletes().cloned().collect(),
        Err(e) => {
            progress(Event::Warning(format!("retention skipped after the successful backup: {e:#}")));
            Vec::new()
        }
    }
}

/// A run cancelled at or past its deadline took too long (FR-1.6): that is
/// a failure of the run, not a shutdown.
fn timed_out(
    result: Result<Sealed, Error>,
    deadline: Option<(std::time::Instant, std::time::Duration)>,
) -> Result<Sealed, Error> {
    match (result, deadline) {
        (Err(Error::Cancelled { doing }), Some((at, limit))) if std::time::Instant::now() >= at => {
            Err(Error::TimedOut { limit: crate::events::humantime(limit), doing })
        }
        (r, _) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD: &str = "LIFEBOAT_TEST_OUT_OF_DESCRIPTORS_DIR";

    /// Runs `out_of_descriptors_child` in a process of its own: it lowers its
    /// open-files limit, which must not touch the tests running beside it.
    // covers: FR-23.4
    #[test]
    fn a_run_that_starts_out_of_descriptors_waits_then_records_its_failure_and_alerts() {
        let d = tempfile::tempdir().unwrap();
        let o = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "run::tests::out_of_descriptors_child", "--ignored", "--nocapture"])
            .env(CHILD, d.path())
            .output()
            .unwrap();
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success() && out.contains("1 passed"), "{out}");
    }

    /// The run starts while every descriptor is taken (they come free 2 s
    /// later, as idle HTTP connections would): it must still leave its
    /// history row and post its alert. The database is unreachable, so the
    /// run fails; the webhook is a plain listener in this process.
    #[test]
    #[ignore = "run by a_run_that_starts_out_of_descriptors_waits_then_records_its_failure_and_alerts in a child"]
    fn out_of_descriptors_child() {
        use std::io::{Read, Write};
        let Some(dir) = std::env::var_os(CHILD).map(std::path::PathBuf::from) else { return };
        let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let text = format!(
            "[database]\nurl = \"postgres://lifeboat@127.0.0.1:1/app\"\nconnect_timeout = \"2s\"\n\
             [storage]\ndir = {:?}\n[alerts]\nwebhook_url = \"http://{}/hook\"\n",
            dir.to_string_lossy(),
            hook.local_addr().unwrap()
        );
        let config =
            crate::config::resolve(Some((&dir.join("lifeboat.toml"), &text)), &Default::default(), &Default::default())
                .unwrap();
        let posted = std::thread::spawn(move || {
            // Linux takes the new descriptor's number before it waits: while
            // the process is out of them, accept fails at once; try again
            // (for 30 s: no alert at all is a failure, not a hang).
            hook.set_nonblocking(true).unwrap();
            let start = std::time::Instant::now();
            let mut c = loop {
                match hook.accept() {
                    Ok((c, _)) => break c,
                    Err(_) if start.elapsed() < std::time::Duration::from_secs(30) => {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    }
                    Err(e) => return format!("no alert within 30 s: {e}"),
                }
            };
            c.set_nonblocking(false).unwrap();
            c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
            let (mut seen, mut buf) = (Vec::new(), [0u8; 8192]);
            while !String::from_utf8_lossy(&seen).contains("backup_failed") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            String::from_utf8_lossy(&seen).into_owned()
        });
        // Every descriptor taken, given back after 2 s.
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let limit = rustix::process::Rlimit { current: Some(open + 64), maximum: None };
        let limit = rustix::process::Rlimit {
            maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
            ..limit
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
        let mut held = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            held.push(f);
        }
        assert!(out_of_descriptors());
        let freed = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(2));
            drop(held);
        });
        let t0 = std::time::Instant::now();
        let result = run(
            &config,
            RunOptions { trigger: Trigger::Schedule, ..RunOptions::manual(true) },
            &|_| {},
            &CancelToken::new(),
        );
        let took = t0.elapsed();
        freed.join().unwrap();
        let request = posted.join().unwrap();
        let runs = History::open_existing(&dir).ok().flatten().map(|h| h.recent(5).unwrap()).unwrap_or_default();
        assert_eq!(
            runs.iter().map(|r| r.status).collect::<Vec<_>>(),
            [crate::history::RunStatus::Failed],
            "{runs:?} {result:?}"
        );
        assert!(request.starts_with("POST /hook") && request.contains("backup_failed"), "{request}");
        assert!(took >= std::time::Duration::from_millis(1500), "it waited for descriptors: {took:?}");
        println!("recorded and alerted");
    }
}
