//! The HTTP service: for now the signed download route that `lifeboat
//! serve` runs; the daemon mounts the same [`router`] later. The only
//! module that knows axum.
//!
//! Shape (mini-redis): [`serve`] takes a bound listener and a shutdown
//! future, so tests bind `127.0.0.1:0` and nothing waits on a timer. The
//! engine stays synchronous; nothing here calls the blocking PostgreSQL
//! client.

pub mod download;
mod router;

use std::future::Future;
use std::net::SocketAddr;

pub use router::router;

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
