//! `GET /healthz` (FR-17.2): 200 `{"status":"ok",…}` or 503
//! `{"status":"unhealthy",…}`, from the same
//! [`checks::check`](crate::monitor::checks::check) as `lifeboat check`.
//! Never behind basic auth: Docker's HEALTHCHECK calls it. So it tells
//! whoever asks no more than healthy or not and when the last backup
//! succeeded (`last_success`, `last_success_age_seconds`): the reasons
//! quote run errors, which name the database's host, port, name and role;
//! they are on the status page (behind basic auth when configured), in
//! `lifeboat check` and in the log.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::state::AppState;
use crate::monitor::checks;

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string() + "\n")
        .into_response()
}

/// The whole answer: the verdict and the last success's time and age.
fn body(status: &str, last_success: Option<DateTime<Utc>>, now: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "status": status,
        "last_success": last_success,
        "last_success_age_seconds": last_success.map(|t| (now - t).num_seconds().max(0)),
    })
}

pub async fn get(State(state): State<AppState>) -> Response {
    let config = state.config.clone();
    let now = Utc::now();
    let health = super::blocking(move || checks::check(&config.storage.dir, &config.monitor, now)).await;
    match health {
        Ok(h) if h.healthy => json(StatusCode::OK, body("ok", h.last_success, now)),
        Ok(h) => json(StatusCode::SERVICE_UNAVAILABLE, body("unhealthy", h.last_success, now)),
        Err(e) => {
            tracing::warn!("/healthz: cannot read the run history: {e:#}");
            json(StatusCode::SERVICE_UNAVAILABLE, body("unhealthy", None, now))
        }
    }
}
