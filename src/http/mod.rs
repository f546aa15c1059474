//! The HTTP service (FR-17, FR-18): `router` (the table of routes and
//! their state), `health` (`/healthz`), `metrics` (`/metrics`), `status`
//! (the status page), `auth` (optional basic auth) and `download` (signed
//! links). `lifeboat serve` runs [`app`] now; the daemon runs the same. The
//! only module that knows axum.
//!
//! Shape (mini-redis): [`serve`] takes a bound listener and a shutdown
//! future, so tests bind `127.0.0.1:0` and nothing waits on a timer. The
//! engine stays synchronous; nothing here calls the blocking PostgreSQL
//! client.

mod auth;
pub mod download;
mod health;
pub mod metrics;
mod router;
mod status;

use std::future::Future;
use std::net::SocketAddr;

pub use router::{app, metrics_app, no_schedule, AppState};

/// Runs blocking engine code (rusqlite reads of the history) off the tokio
/// workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(crate::Error::Failed(format!("a history read did not finish: {e}"))))
}

/// 500 with the engine's message (which names what failed and never holds
/// a secret), logged too.
pub(crate) fn internal_error(what: &str, e: &crate::Error) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::warn!(error = %e, "cannot answer {what}");
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{what} cannot be shown: {e}\n"),
    )
        .into_response()
}

/// Serves `app` on `listener` until `shutdown` completes; requests in
/// flight are finished first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on SIGTERM (docker stop) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the process still dies by the signal.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping: finishing requests in flight");
}
