//! `GET /healthz` (FR-17.2): 200 `{"status":"ok",…}` or 503
//! `{"status":"unhealthy","reasons":[…]}`, from the same
//! [`checks::check`](crate::monitor::checks::check) as `lifeboat check`.
//! Never behind basic auth: Docker's HEALTHCHECK calls it.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::router::AppState;
use crate::monitor::checks;

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string() + "\n")
        .into_response()
}

pub async fn get(State(state): State<AppState>) -> Response {
    let config = state.config.clone();
    let health = super::blocking(move || checks::check(&config.storage.dir, &config.monitor, chrono::Utc::now())).await;
    match health {
        Ok(h) if h.healthy => json(
            StatusCode::OK,
            serde_json::json!({
                "status": "ok",
                "last_success": h.last_success,
                "last_size_bytes": h.last_size_bytes,
            }),
        ),
        Ok(h) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "status": "unhealthy",
                "reasons": h.reasons,
                "last_success": h.last_success,
                "last_size_bytes": h.last_size_bytes,
            }),
        ),
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "unhealthy", "reasons": [e.to_string()] }),
        ),
    }
}
