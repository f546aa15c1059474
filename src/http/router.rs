//! The table of every HTTP route. Anything not listed here is 404, so no
//! path ever lists the storage directory.
//!
//! | route | what | guard |
//! |---|---|---|
//! | `GET /healthz` | [`health`] | none (Docker HEALTHCHECK) |
//! | `GET /metrics` | [`metrics`], or only on [`metrics_app`] with `[http] metrics_listen` | basic auth when set |
//! | `GET /` | [`status`] page | basic auth when set |
//! | `GET <public_url path>/{name}` | [`download`] (FR-18) | the link's HMAC signature |

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::auth::{self, Credentials};
use super::download::{self, Downloads};
use super::{health, metrics, status};
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

fn guarded(state: &AppState, router: Router<AppState>) -> Router<AppState> {
    router.route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require))
}

/// Every route of the main listener. With `[http] metrics_listen` set,
/// `/metrics` is not here but on [`metrics_app`].
pub fn app(state: AppState) -> Router {
    let mut pages = Router::new().route("/", get(status::get));
    if state.config.http.metrics_listen.is_none() {
        pages = pages.route("/metrics", get(metrics::get));
    }
    let mut app =
        Router::new().route("/healthz", get(health::get)).merge(guarded(&state, pages)).with_state(state.clone());
    if let Some(d) = &state.downloads {
        let route = format!("{}/{{name}}", d.path_prefix);
        app = app.merge(Router::new().route(&route, get(download::get)).with_state(d.clone()));
    }
    app.fallback(download::not_found)
}

/// The separate metrics listener (`[http] metrics_listen`): `/metrics` only.
pub fn metrics_app(state: AppState) -> Router {
    guarded(&state, Router::new().route("/metrics", get(metrics::get))).with_state(state).fallback(download::not_found)
}
