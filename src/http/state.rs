//! What every handler reads, [`AppState`]: its own file so the handlers
//! and the route table both import it and neither imports the other.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::auth::Credentials;
use super::download::Downloads;
use crate::config::Config;

/// What every handler reads: the configuration, the next scheduled run
/// (published by the daemon's scheduler; `None` when nothing schedules)
/// and, when `[links]` is configured, the download route's key.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub next_run: watch::Receiver<Option<DateTime<Utc>>>,
    pub downloads: Option<Arc<Downloads>>,
    pub(super) credentials: Option<Credentials>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        next_run: watch::Receiver<Option<DateTime<Utc>>>,
        downloads: Option<Downloads>,
    ) -> AppState {
        let credentials = config.http.basic_auth().map(|(user, pw)| Credentials::new(user, pw.expose()));
        AppState { config, next_run, downloads: downloads.map(Arc::new), credentials }
    }
}

/// A next-run receiver that stays `None` (`lifeboat serve`: nothing schedules).
pub fn no_schedule() -> watch::Receiver<Option<DateTime<Utc>>> {
    let (tx, rx) = watch::channel(None);
    // The sender is dropped: the value stays `None` and `borrow` still works.
    drop(tx);
    rx
}
