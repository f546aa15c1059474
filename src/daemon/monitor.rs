//! The daemon's monitor loop: `monitor::incidents::tick` every `[monitor]
//! interval`, paused while a scheduled run is under way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::{log_event, stopped};
use crate::config::Config;

/// The monitor every `[monitor] interval`, except while a scheduled run
/// (with its retries) is under way: that run alerts its own failure once its
/// last attempt failed, and a look between two attempts would alert the
/// first one (or close the incident as the retry starts).
pub(super) async fn monitor_loop(config: Arc<Config>, busy: Arc<AtomicBool>, mut stop: watch::Receiver<bool>) {
    let every = config.monitor.interval.approx_duration();
    loop {
        while busy.load(Ordering::SeqCst) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stopped(&mut stop) => return,
            }
        }
        let c = config.clone();
        let tick = tokio::task::spawn_blocking(move || crate::monitor::incidents::tick(&c, Utc::now(), &log_event));
        match tick.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("monitor: {e:#}"),
            Err(e) => tracing::warn!("monitor: the check did not finish: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped(&mut stop) => return,
        }
    }
}
