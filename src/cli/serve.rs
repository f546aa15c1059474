//! `lifeboat serve`: the HTTP service (signed downloads, `/healthz`,
//! `/metrics`, the status page) on a tokio runtime until SIGTERM or
//! SIGINT, without the scheduler (the status page says so). The engine
//! stays synchronous; only this glue starts tokio.

use super::{load, Cli};
use crate::config::Overrides;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, host:port [default: [http] listen, 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

pub(super) fn run(cli: &Cli, args: &ServeArgs) -> Result<u8, Error> {
    let config = load(cli, &Overrides::default())?;
    // Without `[links] public_url` there are no signed links to serve, but
    // `/healthz`, `/metrics` and the status page are still worth serving.
    let downloads = crate::daemon::downloads(&config)?;
    let addr = args.listen.clone().unwrap_or_else(|| config.http.listen.clone());
    let serving = downloads.as_ref().map(|d| (d.storage.display().to_string(), d.path_prefix.clone()));
    let metrics_addr = config.http.metrics_listen.clone();
    let state = crate::http::AppState::new(std::sync::Arc::new(config), crate::http::no_schedule(), downloads);
    let runtime = runtime("the HTTP runtime")?;
    runtime.block_on(async move {
        let listener = bind(&addr, "--listen or [http] listen").await?;
        let local = listener.local_addr().map_err(|e| Error::Failed(format!("cannot read the bound address: {e}")))?;
        let metrics = match &metrics_addr {
            Some(a) => Some(bind(a, "[http] metrics_listen").await?),
            None => None,
        };
        match &serving {
            Some((storage, prefix)) => eprintln!("lifeboat: serving downloads from {storage} at http://{local}{prefix}/ and the status page at http://{local}/ (SIGTERM or Ctrl-C stops)"),
            None => eprintln!("lifeboat: serving the status page at http://{local}/ and no downloads ([links] public_url is not set; SIGTERM or Ctrl-C stops)"),
        }
        if let Some(a) = metrics.as_ref().and_then(|l| l.local_addr().ok()) {
            eprintln!("lifeboat: serving /metrics at http://{a}/metrics");
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let service = crate::http::Service::spawn(state, listener, metrics, &stopped);
        tokio::spawn(async move {
            crate::http::shutdown_signal().await;
            let _ = stop.send(true);
        });
        service.finish().await
    })?;
    Ok(0)
}

/// Connections the kernel queues for `accept` while `[http] max_connections`
/// are held (std's and tokio's default is 128): a crowd of idle peers then
/// waits there, holding no descriptor of ours, instead of pushing
/// `/healthz` out with dropped SYNs. The kernel caps it at `somaxconn`.
const BACKLOG: u32 = 1024;

/// Binds `addr`; the error names it and `setting`, where to choose another.
pub(super) async fn bind(addr: &str, setting: &str) -> Result<tokio::net::TcpListener, Error> {
    let failed = |e: std::io::Error| {
        let msg = format!("cannot listen on {addr}: {e}; choose another address with {setting}");
        if e.kind() == std::io::ErrorKind::AddrInUse {
            Error::Busy(msg)
        } else {
            Error::Refused(msg)
        }
    };
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await.map_err(failed)? {
        let socket = if a.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() };
        match socket.and_then(|s| s.set_reuseaddr(true).and(s.bind(a)).map(|()| s)).and_then(|s| s.listen(BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(failed(last.unwrap_or_else(|| std::io::Error::other("the address resolves to nothing"))))
}

/// The tokio runtime of a long-lived command (two workers: the engine's
/// work runs on blocking threads).
pub(super) fn runtime(what: &str) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start {what}: {e}")))
}
