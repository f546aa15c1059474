//! The scheduling policy of the daemon, apart from what a run does: the
//! [`Scheduler`] sleeps until each fire time of `[schedule]` (catch-up
//! first), runs one [`Job`] per slot with its retries, bounded by the run
//! timeout and the shutdown grace. The wall clock is read through
//! [`Clock`], so tests drive it with a paused tokio clock instead of real
//! minutes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::stopped;
use crate::events::CancelToken;
use crate::history::{History, Trigger};
use crate::run::RunOptions;
use crate::schedule::Schedule;

/// Where the scheduler reads the time. `Virtual` follows tokio's clock
/// from a fixed start, so a paused test clock moves it too.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Virtual { base: DateTime<Utc>, at: tokio::time::Instant },
}

impl Clock {
    pub fn virtual_at(base: DateTime<Utc>) -> Clock {
        Clock::Virtual { base, at: tokio::time::Instant::now() }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Virtual { base, at } => {
                *base + chrono::Duration::from_std(at.elapsed()).unwrap_or(chrono::Duration::MAX)
            }
        }
    }
}

/// How one attempt ended, as the scheduler needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Success,
    /// Worth another attempt after the back-off (FR-1.7).
    Retry,
    /// Failed for good, skipped (lock taken) or aborted: no retry.
    Done,
}

/// Starts one attempt on a blocking thread; the scheduler only awaits it.
pub type Job = Arc<dyn Fn(RunOptions, CancelToken) -> JoinHandle<Attempt> + Send + Sync>;

/// The scheduling policy, apart from what a run does (the [`Job`]).
pub struct Scheduler {
    schedule: Schedule,
    catch_up: bool,
    attempts: u32,
    backoff: Duration,
    run_timeout: Duration,
    grace: Duration,
    clock: Clock,
    job: Job,
    /// Set from a slot's first attempt to its last (the monitor loop pauses meanwhile).
    busy: Arc<AtomicBool>,
}

/// Whether the daemon is stopping.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl Scheduler {
    pub fn new(cfg: &crate::config::ScheduleConfig, schedule: Schedule, clock: Clock, job: Job) -> Scheduler {
        Scheduler {
            schedule,
            catch_up: cfg.catch_up,
            // One attempt plus `retries`.
            attempts: cfg.retries.saturating_add(1),
            backoff: cfg.retry_backoff.approx_duration(),
            run_timeout: cfg.run_timeout.approx_duration(),
            grace: cfg.shutdown_grace.approx_duration(),
            clock,
            job,
            busy: Arc::default(),
        }
    }

    /// True while a slot's attempts (and the back-off between them) run.
    pub fn busy(&self) -> Arc<AtomicBool> {
        self.busy.clone()
    }

    /// The loop: catch-up first, then sleep until each fire time and run;
    /// publishes the next fire time on `next`; returns once `stop` is true
    /// (after the run in flight finished or was cancelled).
    pub async fn run(
        &self,
        storage_dir: &std::path::Path,
        next: watch::Sender<Option<DateTime<Utc>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        if self.catch_up {
            let now = self.clock.now();
            if let Some(due) = self.schedule.previous_due(now) {
                if !succeeded_since(storage_dir, due).await {
                    tracing::info!(due = %due.to_rfc3339(), "the last due run did not succeed: catching up now");
                    if self.slot(Trigger::CatchUp, &mut stop).await == Flow::Stop {
                        return;
                    }
                }
            }
        }
        loop {
            let now = self.clock.now();
            let Some(at) = self.schedule.next_after(now) else {
                tracing::warn!(cron = self.schedule.cron(), "the schedule never fires again; no more runs");
                let _ = next.send(None);
                stopped(&mut stop).await;
                return;
            };
            let _ = next.send(Some(at));
            tracing::info!(next = %at.to_rfc3339(), "next scheduled run");
            let wait = (at - now).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut stop) => return,
            }
            // A wall clock set back while sleeping: not due yet, sleep again.
            if self.clock.now() < at {
                continue;
            }
            if self.slot(Trigger::Schedule, &mut stop).await == Flow::Stop {
                return;
            }
        }
    }

    /// One scheduled run: attempts `retry_backoff` apart, all within
    /// `run_timeout`; on stop, the attempt in flight gets the grace period.
    async fn slot(&self, trigger: Trigger, stop: &mut watch::Receiver<bool>) -> Flow {
        struct Busy<'a>(&'a AtomicBool);
        impl Drop for Busy<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        self.busy.store(true, Ordering::SeqCst);
        let _busy = Busy(&self.busy);
        let deadline = tokio::time::Instant::now() + self.run_timeout;
        let std_deadline = std::time::Instant::now() + self.run_timeout;
        let cancel = CancelToken::new();
        for attempt in 1..=self.attempts {
            let opts = RunOptions {
                trigger,
                deliver: true,
                attempt,
                attempts: self.attempts,
                deadline: Some((std_deadline, self.run_timeout)),
            };
            let mut handle = (self.job)(opts, cancel.clone());
            let ended = tokio::select! {
                r = &mut handle => r,
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::error!("the run exceeded schedule.run_timeout: cancelling it");
                    cancel.cancel();
                    handle.await
                }
                _ = stopped(stop) => {
                    tokio::select! {
                        _ = &mut handle => {}
                        _ = tokio::time::sleep(self.grace) => {
                            tracing::warn!("the run did not finish within schedule.shutdown_grace: aborting it");
                            cancel.cancel();
                            let _ = handle.await;
                        }
                    }
                    return Flow::Stop;
                }
            };
            let ended = ended.unwrap_or_else(|e| {
                tracing::error!("the backup run panicked: {e}");
                Attempt::Done
            });
            if ended != Attempt::Retry || attempt == self.attempts {
                return Flow::Continue;
            }
            let wait = self.backoff;
            tracing::info!(attempt, wait_seconds = wait.as_secs(), "retrying after the back-off");
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = tokio::time::sleep_until(deadline) => return Flow::Continue,
                _ = stopped(stop) => return Flow::Stop,
            }
        }
        Flow::Continue
    }
}

/// Whether a run that started at or after `due` succeeded (history read on
/// a blocking thread; no history = no).
async fn succeeded_since(storage_dir: &std::path::Path, due: DateTime<Utc>) -> bool {
    let dir = storage_dir.to_path_buf();
    let found = tokio::task::spawn_blocking(move || match History::open_existing(&dir) {
        Ok(Some(h)) => h.success_since(due).map(|r| r.is_some()),
        Ok(None) => Ok(false),
        Err(e) => Err(e),
    })
    .await;
    match found {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::warn!("cannot read the run history for catch-up ({e:#}); catching up to be safe");
            false
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::history::{Outcome, RunStatus};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// A job that records a real history row per attempt, with the outcomes
    /// given in order (then success). The backup itself is not what these
    /// tests are about: the integration tests run real ones.
    fn recording_job(dir: &std::path::Path, clock: Clock, plan: Vec<Attempt>) -> (Job, Arc<Mutex<Vec<RunOptions>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let plan = Arc::new(Mutex::new(plan));
        let (s, dir) = (seen.clone(), dir.to_path_buf());
        let job: Job = Arc::new(move |opts: RunOptions, _cancel: CancelToken| {
            s.lock().unwrap().push(opts);
            let outcome = {
                let mut p = plan.lock().unwrap();
                if p.is_empty() {
                    Attempt::Success
                } else {
                    p.remove(0)
                }
            };
            let (dir, now) = (dir.clone(), clock.now());
            tokio::spawn(async move {
                let mut h = History::open(&dir).unwrap();
                let id = h.start_attempt(opts.trigger, now, opts.attempt).unwrap();
                let status = if outcome == Attempt::Success { RunStatus::Success } else { RunStatus::Failed };
                h.finish(id, now, &Outcome { status, ..Default::default() }, &[]).unwrap();
                outcome
            })
        });
        (job, seen)
    }

    /// Runs `s` on `dir`: its task, the next-run channel and the stop switch.
    fn start(
        s: Scheduler,
        dir: &std::path::Path,
    ) -> (JoinHandle<()>, watch::Receiver<Option<DateTime<Utc>>>, watch::Sender<bool>) {
        let (next_tx, next_rx) = watch::channel(None);
        let (stop_tx, stop_rx) = watch::channel(false);
        let dir = dir.to_path_buf();
        (tokio::spawn(async move { s.run(&dir, next_tx, stop_rx).await }), next_rx, stop_tx)
    }

    /// A scheduled run recorded in `dir`'s history as a success at `at`.
    fn succeeded_at(dir: &std::path::Path, at: DateTime<Utc>) {
        let mut h = History::open(dir).unwrap();
        let id = h.start(Trigger::Schedule, at).unwrap();
        h.finish(id, at, &Outcome { status: RunStatus::Success, ..Default::default() }, &[]).unwrap();
    }

    fn scheduler(cron: &str, zone: &str, clock: Clock, job: Job) -> Scheduler {
        let cfg = crate::config::ScheduleConfig { cron: cron.into(), timezone: zone.into(), ..Default::default() };
        Scheduler::new(&cfg, Schedule::parse(cron, zone).unwrap(), clock, job)
    }

    // covers: FR-1.1, FR-1.4, FR-23.3, TS-1.5
    #[tokio::test(start_paused = true)]
    async fn catch_up_runs_once_however_many_slots_were_missed_then_the_schedule_goes_on() {
        let d = tempfile::tempdir().unwrap();
        // The last success was five days ago: five 02:00 slots were missed.
        succeeded_at(d.path(), utc("2026-11-26T19:00:00Z"));

        let clock = Clock::virtual_at(utc("2026-12-01T12:00:00Z"));
        let (job, seen) = recording_job(d.path(), clock, vec![]);
        let s = scheduler("0 2 * * *", "Asia/Bangkok", clock, job);
        let (task, mut next_rx, stop_tx) = start(s, d.path());
        next_rx.changed().await.unwrap();
        assert_eq!(*next_rx.borrow(), Some(utc("2026-12-01T19:00:00Z")), "02:00 Bangkok");
        let triggers =
            |seen: &Mutex<Vec<RunOptions>>| seen.lock().unwrap().iter().map(|o| o.trigger).collect::<Vec<_>>();
        assert_eq!(triggers(&seen), [Trigger::CatchUp], "one catch-up, not five");

        // Through the next two fire times: one run each, no double run.
        tokio::time::sleep(Duration::from_secs(7 * 3600 + 1)).await;
        next_rx.changed().await.unwrap();
        assert_eq!(*next_rx.borrow(), Some(utc("2026-12-02T19:00:00Z")));
        assert_eq!(triggers(&seen), [Trigger::CatchUp, Trigger::Schedule]);
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
        next_rx.changed().await.unwrap();
        assert_eq!(triggers(&seen), [Trigger::CatchUp, Trigger::Schedule, Trigger::Schedule]);

        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }

    // covers: FR-1.4
    #[tokio::test(start_paused = true)]
    async fn no_catch_up_after_a_success_since_the_last_due_time() {
        let d = tempfile::tempdir().unwrap();
        succeeded_at(d.path(), utc("2026-11-30T19:00:05Z"));
        let clock = Clock::virtual_at(utc("2026-12-01T12:00:00Z"));
        let (job, seen) = recording_job(d.path(), clock, vec![]);
        let s = scheduler("0 2 * * *", "Asia/Bangkok", clock, job);
        let (task, mut next_rx, stop_tx) = start(s, d.path());
        next_rx.changed().await.unwrap();
        assert!(seen.lock().unwrap().is_empty(), "the 02:00 run succeeded: nothing to catch up");
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }

    // covers: FR-1.7, TS-1.5
    #[tokio::test(start_paused = true)]
    async fn retryable_failures_are_retried_three_times_a_minute_apart_by_default() {
        let d = tempfile::tempdir().unwrap();
        let clock = Clock::virtual_at(utc("2026-12-01T18:59:00Z"));
        let (job, seen) = recording_job(d.path(), clock, vec![Attempt::Retry; 4]);
        let mut s = scheduler("0 2 * * *", "Asia/Bangkok", clock, job);
        s.catch_up = false;
        let (task, mut next_rx, stop_tx) = start(s, d.path());
        next_rx.changed().await.unwrap();
        // The seed's example: 02:00 (19:00 UTC) the attempt, 02:01, 02:02
        // and 02:03 the three retries, then the alert; then the next day.
        tokio::time::sleep(Duration::from_secs(60 + 1)).await;
        assert_eq!(seen.lock().unwrap().len(), 1);
        for n in 2..=4 {
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert_eq!(seen.lock().unwrap().len(), n, "retry {} one minute after the attempt before", n - 1);
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
        let attempts: Vec<_> = seen.lock().unwrap().iter().map(|o| (o.attempt, o.attempts)).collect();
        assert_eq!(attempts, [(1, 4), (2, 4), (3, 4), (4, 4)], "one attempt plus three retries");
        next_rx.changed().await.unwrap();
        assert_eq!(*next_rx.borrow(), Some(utc("2026-12-02T19:00:00Z")));
        assert_eq!(seen.lock().unwrap().len(), 4);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }

    // covers: FR-1.6, FR-23.2
    #[tokio::test(start_paused = true)]
    async fn a_run_past_its_timeout_or_the_shutdown_grace_is_cancelled() {
        let d = tempfile::tempdir().unwrap();
        let clock = Clock::virtual_at(utc("2026-12-01T12:00:00Z"));
        // A run that only ends when cancelled.
        let cancelled_at = Arc::new(Mutex::new(Vec::new()));
        let c = cancelled_at.clone();
        let job: Job = Arc::new(move |_opts, cancel: CancelToken| {
            let c = c.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                while !cancel.is_cancelled() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                c.lock().unwrap().push(started.elapsed().as_secs());
                Attempt::Done
            })
        });
        let cfg = crate::config::ScheduleConfig {
            run_timeout: "10 minutes".parse().unwrap(),
            shutdown_grace: "60s".parse().unwrap(),
            ..Default::default()
        };
        let s = Scheduler::new(&cfg, Schedule::parse("0 * * * *", "UTC").unwrap(), clock, job);
        let (task, mut next_rx, stop_tx) = start(s, d.path());
        // The catch-up run (nothing ever succeeded) is cancelled at the timeout.
        next_rx.changed().await.unwrap();
        assert_eq!(cancelled_at.lock().unwrap().first().copied().map(|s| (600..=602).contains(&s)), Some(true));
        // The 13:00 run is in flight when the shutdown comes: 60 s of grace, then cancelled.
        tokio::time::sleep(Duration::from_secs(50 * 60 + 5)).await;
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        let took = cancelled_at.lock().unwrap()[1];
        assert!((60..=70).contains(&took), "{took}");
    }
}
