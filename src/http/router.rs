//! The table of every HTTP route. Anything not listed here is 404, so no
//! path ever lists the storage directory.
//!
//! | route | what | guard |
//! |---|---|---|
//! | `GET /healthz` | [`health`] | none (Docker HEALTHCHECK) |
//! | `GET /metrics` | [`metrics`], or only on [`metrics_app`] with `[http] metrics_listen` | basic auth when set |
//! | `GET /` | [`status`] page | basic auth when set |
//! | `GET <public_url path>/{name}` | [`download`] (FR-18) | the link's HMAC signature |

use axum::routing::get;
use axum::Router;

use super::state::AppState;
use super::{auth, download, health, metrics, status};

fn guarded(state: &AppState, router: Router<AppState>) -> Router<AppState> {
    router.route_layer(axum::middleware::from_fn_with_state(state.credentials.clone(), auth::require))
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
