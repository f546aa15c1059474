//! `lifeboat serve`: the download route on a tokio runtime until SIGTERM
//! or SIGINT. The engine stays synchronous; only this glue starts tokio.

use crate::config::Config;
use crate::error::Error;

pub fn run(config: &Config, listen: Option<&str>) -> Result<u8, Error> {
    let downloads = crate::http::download::Downloads::from_config(config)?;
    let addr = listen.unwrap_or(&config.http.listen).to_string();
    let (storage, prefix) = (downloads.storage.display().to_string(), downloads.path_prefix.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the HTTP runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
            let msg = format!("cannot listen on {addr}: {e}; choose another address with --listen or [http] listen");
            if e.kind() == std::io::ErrorKind::AddrInUse {
                Error::Busy(msg)
            } else {
                Error::Refused(msg)
            }
        })?;
        let local = listener.local_addr().map_err(|e| Error::Failed(format!("cannot read the bound address: {e}")))?;
        eprintln!("lifeboat: serving downloads from {storage} at http://{local}{prefix}/ (SIGTERM or Ctrl-C stops)");
        crate::http::serve(listener, crate::http::router(downloads), crate::http::shutdown_signal())
            .await
            .map_err(|e| Error::Failed(format!("the HTTP server stopped: {e}")))
    })?;
    Ok(0)
}
