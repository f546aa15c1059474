//! The HTTP service (FR-17, FR-18): `state` ([`AppState`], what every
//! handler reads), `router` (the table of routes), `health` (`/healthz`), `metrics` (`/metrics`), `status`
//! (the status page), `auth` (optional basic auth) and `download` (signed
//! links), `limits` (what a peer may hold: connections, header-read and
//! idle timeouts, FR-17.6). `lifeboat serve` runs [`app`] now; the daemon
//! runs the same. The only module that knows axum and hyper.
//!
//! Shape (mini-redis): [`serve`] takes a bound listener and a shutdown
//! future, so tests bind `127.0.0.1:0` and nothing waits on a timer. The
//! engine stays synchronous; nothing here calls the blocking PostgreSQL
//! client.

mod auth;
pub mod download;
mod health;
pub mod limits;
pub mod metrics;
mod router;
mod state;
mod status;

use std::future::Future;
use std::net::SocketAddr;

pub use limits::Limits;
pub use router::{app, metrics_app};
pub use state::{no_schedule, AppState};

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

/// The HTTP side of `lifeboat serve` and the daemon alike: [`app`] on one
/// listener and, when `[http] metrics_listen` is set, [`metrics_app`] alone
/// on another, both within one connection budget ([`limits::for_process`]),
/// until `stop` turns true. One wiring, so the two commands cannot drift.
pub struct Service {
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    metrics: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Service {
    /// Starts serving on the current tokio runtime.
    pub fn spawn(
        state: AppState,
        listener: tokio::net::TcpListener,
        metrics: Option<tokio::net::TcpListener>,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> Service {
        let limits = limits::for_process(&state.config.http);
        let stopped = |stop: &tokio::sync::watch::Receiver<bool>| {
            let mut stop = stop.clone();
            async move {
                let _ = stop.wait_for(|s| *s).await;
            }
        };
        let metrics =
            metrics.map(|l| tokio::spawn(serve(l, metrics_app(state.clone()), limits.clone(), stopped(stop))));
        let http = tokio::spawn(serve(listener, app(state), limits, stopped(stop)));
        Service { http, metrics }
    }

    /// Waits until both listeners have stopped (after `stop`); the main
    /// listener's failure is the error, the metrics listener's is logged.
    pub async fn finish(self) -> crate::Result<()> {
        if let Some(m) = self.metrics {
            if let Ok(Err(e)) = m.await {
                tracing::warn!("the metrics listener stopped: {e}");
            }
        }
        match self.http.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(crate::Error::Failed(format!("the HTTP server stopped: {e}"))),
            Err(e) => Err(crate::Error::Failed(format!("the HTTP server task failed: {e}"))),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; requests in
/// flight are finished first.
///
/// Not `axum::serve`, which gives hyper neither a timer nor a header-read
/// timeout and accepts every connection it can: this loop takes a slot of
/// `limits` before it accepts (beyond the cap, peers wait in the kernel's
/// backlog, holding none of our descriptors), serves each connection with
/// hyper's HTTP/1 builder and `header_read_timeout`, and fails a write that
/// the peer takes nothing of within `idle_timeout`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let mut shutdown = std::pin::pin!(shutdown);
    // Connections watch `stopping`; the loop waits until all dropped `done`.
    let (stopping, _) = tokio::sync::watch::channel(false);
    let (done, all_done) = tokio::sync::mpsc::channel::<()>(1);
    let mut all_done = all_done;
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    loop {
        let slot = tokio::select! {
            s = limits.slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) if accept_failed(&e, &mut shutdown).await => break,
                Err(_) => continue,
            },
            _ = &mut shutdown => break,
        };
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.idle_timeout));
        let io = TokioIo::new(Box::pin(stream));
        let service = TowerToHyperService::new(app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer))));
        let connection = http1.serve_connection(io, service);
        let (mut stop, done) = (stopping.subscribe(), done.clone());
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                r = connection.as_mut() => log_closed(peer, r),
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    connection.as_mut().graceful_shutdown();
                    log_closed(peer, connection.await);
                }
            }
            drop((slot, done));
        });
    }
    let _ = stopping.send(true);
    drop(done);
    let _ = all_done.recv().await;
    Ok(())
}

/// A connection that ended with an error (a header-read or idle timeout, a
/// reset) is the peer's business: a debug line, never a warning a crowd of
/// peers could flood the log with.
fn log_closed(peer: SocketAddr, result: hyper::Result<()>) {
    if let Err(e) = result {
        tracing::debug!(%peer, "connection closed: {e}");
    }
}

/// An `accept` that failed: a peer that left meanwhile is nothing; out of
/// descriptors (which the limits should prevent) waits a second so the
/// loop does not spin, and says so. True when `shutdown` came meanwhile.
async fn accept_failed(e: &std::io::Error, shutdown: &mut (impl Future<Output = ()> + Unpin)) -> bool {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        return false;
    }
    tracing::warn!("cannot accept an HTTP connection: {e}; trying again in 1 s");
    tokio::select! {
        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => false,
        _ = shutdown => true,
    }
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
