//! A blocking PostgreSQL client that can always be stopped.
//!
//! The `postgres` crate runs tokio-postgres on a runtime of its own and
//! blocks in it; a read from a server or link that stopped answering then
//! never returns, and its `connect_timeout` covers only the TCP connect, not
//! the startup and authentication that follow. This client does the same
//! blocking (the engine stays synchronous), but every wait is
//! raced against the run's [`CancelToken`] and the whole connection setup
//! against `connect_timeout`. When the token trips (stall watchdog, SIGTERM,
//! the daemon's shutdown) the server is asked to cancel the query (bounded
//! in time, since the link may be dead) and the connection is dropped,
//! which closes the socket: the blocked call returns at once with a
//! "connection closed" error, and the caller turns it into the token's
//! reason.

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, CopyInSink, CopyOutStream, Row};

use super::tls::{self, Connector};
use crate::config::SslMode;

use crate::events::CancelToken;

/// How often a wait looks at the cancellation token.
const POLL: Duration = Duration::from_millis(50);
/// At most this long is spent asking the server to cancel before the
/// connection is dropped anyway.
const CANCEL_BOUND: Duration = Duration::from_secs(5);

pub struct Client {
    rt: tokio::runtime::Runtime,
    /// Always `Some` until dropped: dropping it first lets the connection
    /// task say goodbye (Terminate) instead of vanishing.
    inner: Option<tokio_postgres::Client>,
    conn: Option<tokio::task::JoinHandle<()>>,
    cancel: CancelToken,
    /// Cancel requests use the connection's own TLS (a server that accepts
    /// only TLS refuses a plain one).
    tls: Connector,
}

/// Why a connection could not be set up.
#[derive(Debug)]
pub enum ConnectError {
    /// TCP connect, startup and authentication together took longer than this.
    TimedOut(Duration),
    /// The run was cancelled while connecting.
    Cancelled,
    Pg(tokio_postgres::Error),
    /// The client's runtime could not start (out of threads or file descriptors).
    Runtime(std::io::Error),
}

impl Client {
    /// Connects, bounding the whole setup by the config's connect timeout
    /// (which tokio-postgres applies to the TCP connect only).
    /// `tls` and `mode` say how TLS is used (see `pg::tls`).
    pub(crate) fn connect(
        config: &Config,
        tls: Connector,
        mode: SslMode,
        cancel: &CancelToken,
    ) -> Result<Client, ConnectError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ConnectError::Runtime)?;
        let mut config = config.clone();
        config.ssl_mode(tls::driver_mode(mode));
        let config = &config;
        let limit = config.get_connect_timeout().copied();
        let outcome = rt.block_on(async {
            let connect = async {
                match limit {
                    Some(limit) => tokio::time::timeout(limit, tls.connect(config)).await.ok(),
                    None => Some(tls.connect(config).await),
                }
            };
            tokio::select! {
                biased;
                r = connect => Some(r),
                () = tripped(cancel) => None,
            }
        });
        let (inner, connection) = match outcome {
            None => return Err(ConnectError::Cancelled),
            Some(None) => return Err(ConnectError::TimedOut(limit.unwrap_or_default())),
            Some(Some(r)) => r.map_err(ConnectError::Pg)?,
        };
        let conn = rt.spawn(connection);
        Ok(Client { rt, inner: Some(inner), conn: Some(conn), cancel: cancel.clone(), tls })
    }

    fn inner(&self) -> &tokio_postgres::Client {
        self.inner.as_ref().expect("present until drop")
    }

    /// Runs `op` on this client's runtime; `None` when the token tripped first.
    fn wait<T>(&self, op: impl Future<Output = T>) -> Option<T> {
        block(&self.rt, &self.cancel, op)
    }

    /// Ends the connection after a cancellation: asks the server to cancel
    /// what runs (bounded), then drops the connection. Returns the error a
    /// closed connection gives, for the caller to map.
    fn stop(&mut self) -> tokio_postgres::Error {
        let token = self.inner().cancel_token();
        self.rt.block_on(async {
            let _ = tokio::time::timeout(CANCEL_BOUND, self.tls.cancel_query(&token)).await;
        });
        if let Some(conn) = self.conn.take() {
            conn.abort();
            let _ = self.rt.block_on(conn);
        }
        match self.rt.block_on(self.inner().batch_execute("")) {
            Err(e) => e,
            Ok(()) => unreachable!("a client whose connection was dropped cannot run a query"),
        }
    }

    pub fn batch_execute(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        match self.wait(self.inner().batch_execute(sql)) {
            Some(r) => r,
            None => Err(self.stop()),
        }
    }

    pub fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, tokio_postgres::Error> {
        match self.wait(self.inner().query(sql, params)) {
            Some(r) => r,
            None => Err(self.stop()),
        }
    }

    pub fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, tokio_postgres::Error> {
        match self.wait(self.inner().query_one(sql, params)) {
            Some(r) => r,
            None => Err(self.stop()),
        }
    }

    /// `COPY … TO STDOUT` as a reader.
    pub fn copy_out(&mut self, sql: &str) -> Result<CopyOut<'_>, tokio_postgres::Error> {
        let stream = match self.wait(self.inner().copy_out(sql)) {
            Some(r) => r?,
            None => return Err(self.stop()),
        };
        Ok(CopyOut { client: self, stream: Box::pin(stream), buf: Bytes::new() })
    }

    /// The rows of a query one at a time, so memory does not grow with the
    /// result (the closure streams its row keys this way).
    pub fn query_raw(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Rows<'_>, tokio_postgres::Error> {
        let stream = match self.wait(self.inner().query_raw(sql, params.iter().copied())) {
            Some(r) => r?,
            None => return Err(self.stop()),
        };
        Ok(Rows { client: self, stream: Box::pin(stream) })
    }

    /// `COPY … FROM STDIN` as a writer; [`CopyIn::finish`] returns the row count.
    pub fn copy_in(&mut self, sql: &str) -> Result<CopyIn<'_>, tokio_postgres::Error> {
        let sink = match self.wait(self.inner().copy_in::<_, Bytes>(sql)) {
            Some(r) => r?,
            None => return Err(self.stop()),
        };
        Ok(CopyIn { client: self, sink: Box::pin(sink), buf: BytesMut::new() })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        drop(self.inner.take());
        if let Some(conn) = self.conn.take() {
            if self.cancel.is_cancelled() {
                conn.abort();
                return;
            }
            // Lets the connection send Terminate and close; a link that
            // stopped answering gets a second at most.
            let _ = self.rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), conn).await });
        }
    }
}

/// Runs `op` to completion on `rt` unless `cancel` trips first.
fn block<T>(rt: &tokio::runtime::Runtime, cancel: &CancelToken, op: impl Future<Output = T>) -> Option<T> {
    rt.block_on(async {
        tokio::select! {
            // The operation first: one already done costs no timer.
            biased;
            r = op => Some(r),
            () = tripped(cancel) => None,
        }
    })
}

async fn tripped(cancel: &CancelToken) {
    while !cancel.is_cancelled() {
        tokio::time::sleep(POLL).await;
    }
}

/// The rows of [`Client::query_raw`], fetched as they are read.
pub struct Rows<'a> {
    client: &'a mut Client,
    stream: Pin<Box<tokio_postgres::RowStream>>,
}

impl Rows<'_> {
    /// The next row, `None` at the end.
    pub fn next_row(&mut self) -> Result<Option<Row>, tokio_postgres::Error> {
        match block(&self.client.rt, &self.client.cancel, self.stream.next()) {
            Some(Some(r)) => r.map(Some),
            Some(None) => Ok(None),
            None => Err(self.client.stop()),
        }
    }
}

/// Reads the rows of a `COPY … TO STDOUT`.
pub struct CopyOut<'a> {
    client: &'a mut Client,
    stream: Pin<Box<CopyOutStream>>,
    buf: Bytes,
}

impl Read for CopyOut<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match block(&self.client.rt, &self.client.cancel, self.stream.next()) {
                Some(Some(Ok(b))) => self.buf = b,
                Some(Some(Err(e))) => return Err(std::io::Error::other(e)),
                Some(None) => return Ok(0),
                None => return Err(std::io::Error::other(self.client.stop())),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        Ok(n)
    }
}

/// Feeds a `COPY … FROM STDIN`; dropping it without [`CopyIn::finish`]
/// aborts the COPY.
pub struct CopyIn<'a> {
    client: &'a mut Client,
    sink: Pin<Box<CopyInSink<Bytes>>>,
    buf: BytesMut,
}

/// Bytes collected before they are sent as one CopyData message.
const COPY_CHUNK: usize = 64 * 1024;

impl CopyIn<'_> {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        match block(&self.client.rt, &self.client.cancel, self.sink.send(chunk)) {
            Some(r) => r.map_err(std::io::Error::other),
            None => Err(std::io::Error::other(self.client.stop())),
        }
    }

    /// Ends the COPY; the number of rows the server loaded.
    pub fn finish(mut self) -> Result<u64, tokio_postgres::Error> {
        if let Err(e) = self.send() {
            return Err(match e.into_inner().map(|e| e.downcast::<tokio_postgres::Error>()) {
                Some(Ok(pg)) => *pg,
                _ => self.client.stop(),
            });
        }
        match block(&self.client.rt, &self.client.cancel, self.sink.as_mut().finish()) {
            Some(r) => r,
            None => Err(self.client.stop()),
        }
    }
}

impl Write for CopyIn<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= COPY_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
