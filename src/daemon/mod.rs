//! The long-lived service (`lifeboat daemon`, FR-23): [`run`] takes its
//! config, a bound listener and a shutdown future (mini-redis shape), and
//! runs three tasks until the future completes: the scheduler (one loop:
//! sleep until the next fire time of `[schedule]`, then one run with its
//! retries: [`scheduler`]), the monitor loop (`monitor::incidents::tick`
//! every `[monitor] interval`: `monitor.rs`) and the HTTP server. This file
//! is the wiring; what one run does is [`crate::run`], shared with
//! `lifeboat backup`.
//!
//! Sync engine, async service: a run is `run::run` on a blocking thread
//! (`spawn_blocking`) with a [`CancelToken`]; tokio only waits for it, for
//! the run timeout and for the shutdown. All waiting is `tokio::time`, and
//! the wall clock is read through [`Clock`], so tests drive the scheduler
//! with a paused tokio clock instead of real minutes.
//!
//! On start (FR-23.3), under the store's lock: stale `.partial` files are
//! removed (the lock does that) and history rows left `running` by a dead
//! process become `interrupted`; then catch-up (FR-1.4) runs once when the
//! most recent due time passed without a success after it.

mod monitor;
pub mod scheduler;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::error::Error;
use crate::events::{CancelToken, Event};
use crate::history::History;
use crate::run::RunOptions;
use crate::schedule::Schedule;
use crate::store::Store;
pub use scheduler::{Attempt, Clock, Job, Scheduler};

/// The next scheduled run, for the status page and `/metrics`.
pub type NextRun = watch::Receiver<Option<DateTime<Utc>>>;

/// Runs the service until `shutdown` completes, then stops scheduling,
/// gives a run in flight `[schedule] shutdown_grace` to finish (then
/// cancels it cleanly) and returns. Errors only when it cannot start.
/// `metrics` is the listener of `[http] metrics_listen`, when set: `/metrics`
/// is then served there only.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::Result<()> {
    let schedule = schedule_of(&config)?;
    let downloads = downloads(&config)?;
    let config = Arc::new(config);
    let (next_tx, next_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);

    let state = crate::http::AppState::new(config.clone(), next_rx, downloads);
    let http = crate::http::Service::spawn(state, listener, metrics, &stop_rx);
    let c = config.clone();
    let startup = tokio::task::spawn_blocking(move || startup(&c)).await;
    if let Err(e) = startup {
        tracing::warn!("the start-up cleanup did not finish: {e}");
    }
    // Issue 22: a daemon whose alerts would reach nobody says so at once.
    let c = config.clone();
    if let Ok(Some(w)) = tokio::task::spawn_blocking(move || crate::monitor::channels::unheard_now(&c)).await {
        tracing::warn!("{w}");
    }
    let scheduler = Scheduler::new(&config.schedule, schedule, Clock::System, real_job(config.clone()));
    let monitor = tokio::spawn(monitor::monitor_loop(config.clone(), scheduler.busy(), stop_rx.clone()));
    let history_dir = config.storage.dir.clone();
    let scheduled = tokio::spawn(async move { scheduler.run(&history_dir, next_tx, stop_rx).await });

    shutdown.await;
    tracing::info!("stopping: no new runs; a run in flight gets schedule.shutdown_grace to finish");
    let _ = stop_tx.send(true);
    let _ = scheduled.await;
    let _ = monitor.await;
    http.finish().await
}

/// The download route's settings when `[links] public_url` is set (signed
/// links need it); without it the daemon serves no downloads.
pub fn downloads(config: &Config) -> crate::Result<Option<crate::http::download::Downloads>> {
    match config.links.public_url {
        Some(_) => crate::http::download::Downloads::from_config(config).map(Some),
        None => Ok(None),
    }
}

/// The parsed `[schedule]` (already checked when the config loaded).
pub fn schedule_of(config: &Config) -> crate::Result<Schedule> {
    Schedule::parse(&config.schedule.cron, &config.schedule.timezone)
        .map_err(|m| Error::Config(ConfigError::Invalid(m)))
}

/// The target of [`log_event`]'s lines: the commands that also print the
/// same events on stderr keep them out of their stderr log.
pub const RUN_LOG: &str = "lifeboat::run";

/// Engine events as log lines: steps and details at info/debug, warnings
/// at warn. Counters (bytes, totals) are the progress bar's, not the log's.
/// The daemon's log, and `[log] file` of `backup`, `send`, `prune` and
/// `restore` (`cli::logging::init_command`), are made of these.
pub fn log_event(e: Event) {
    match e {
        Event::Step(s) => tracing::info!(target: RUN_LOG, step = s, "step"),
        Event::Warning(w) => tracing::warn!(target: RUN_LOG, "{w}"),
        Event::Table { name, rows, closure_rows, bytes } => {
            tracing::info!(target: RUN_LOG, table = %name, rows, closure_rows, bytes, "table written")
        }
        Event::Detail(d) => tracing::debug!(target: RUN_LOG, "{d}"),
        Event::LockWait(w) => {
            let h = w.holders.first();
            tracing::warn!(target: RUN_LOG, table = %w.table, holder_pid = h.and_then(|h| h.pid),
                holder_application = h.map(|h| h.application_name.as_str()), holder_mode = h.map(|h| h.mode.as_str()),
                holder_for_ms = h.and_then(|h| h.for_ms), lock_timeout = %w.timeout, "waiting: {}", w.describe())
        }
        Event::LockGranted { table, waited_ms } => {
            tracing::info!(target: RUN_LOG, table = %table, waited_ms, "{}", crate::events::lock_granted(&table, waited_ms))
        }
        Event::Totals { .. } | Event::Bytes(_) | Event::Rows(_) | Event::Copying(_) => {}
    }
}

/// FR-23.3: under the store's lock (which removes stale `.partial`s),
/// closes the runs a dead process left `running`. When another run holds
/// the lock, its rows are live: nothing is touched.
fn startup(config: &Config) {
    let store = crate::store::open(config);
    let lock = match store.lock(&log_event) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("start-up cleanup skipped: {e:#}");
            return;
        }
    };
    match History::open_existing(&config.storage.dir).and_then(|h| match h {
        Some(_) => History::open(&config.storage.dir).and_then(|h| h.mark_interrupted(Utc::now())),
        None => Ok(0),
    }) {
        Ok(0) => {}
        Ok(n) => tracing::warn!("{n} run(s) left running by a process that died are recorded as interrupted"),
        Err(e) => tracing::warn!("cannot close the runs a dead process left running: {e:#}"),
    }
    drop(lock);
}

/// The real job: `run::run`, logged.
fn real_job(config: Arc<Config>) -> Job {
    Arc::new(move |opts: RunOptions, cancel: CancelToken| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let trigger = opts.trigger.as_str();
            tracing::info!(trigger, attempt = opts.attempt, "backup run starts");
            match crate::run::run(&config, opts, &log_event, &cancel) {
                Ok(r) => {
                    tracing::info!(archive = %r.backup.archive.display(), bytes = r.backup.size_bytes, "backup run succeeded");
                    Attempt::Success
                }
                Err(e) => {
                    let retry = opts.attempt < opts.attempts && crate::run::retry_worthy(&e);
                    match &e {
                        Error::Busy(_) => tracing::warn!("scheduled run skipped: {e:#}"),
                        Error::Cancelled { .. } => tracing::warn!("backup run aborted: {e:#}"),
                        _ => tracing::error!(attempt = opts.attempt, "backup run failed: {e:#}"),
                    }
                    if retry {
                        Attempt::Retry
                    } else {
                        Attempt::Done
                    }
                }
            }
        })
    })
}

/// Completes once the daemon is stopping (the guard `wait_for` returns is
/// not `Send`, so it must not live across an await of the caller).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
