//! What a peer may hold (FR-17.6): at most [`Limits::max_connections`]
//! connections at once over every listener that shares these limits, a
//! request head within `[http] header_read_timeout` (the first one and each
//! next one on a kept-alive connection, so an idle connection is closed
//! too), and a response the client keeps taking bytes of (`[http]
//! idle_timeout`). `serve` applies them.
//!
//! The daemon runs its backups in the same process, so the connections get
//! only what the descriptor limit leaves after a run's reserve
//! ([`Descriptors::budget`]): a crowd of half-open connections can slow the
//! HTTP side down, never make a backup fail with "Too many open files".

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::HttpConfig;

/// Descriptors kept for one run whatever the HTTP side holds: the source
/// connections and pg_dump's pipes, the archive and its `.partial`, the
/// history (database, WAL, shared memory), SMTP, the object store's
/// connections, the rehearsal's psql, the alert channels; measured runs
/// open well under half of it.
pub const RUN_RESERVE: u64 = 64;

/// Descriptors one HTTP connection may take: its socket, and while its
/// request runs, the history it reads (three files) or the archive it sends.
pub const PER_CONNECTION: u64 = 4;

/// The connection limits, shared by the listeners of one process.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub(super) slots: Arc<Semaphore>,
}

impl Limits {
    /// `[http]`'s limits, with `max_connections` lowered to `cap` when one
    /// is given (the descriptor budget).
    pub fn new(http: &HttpConfig, cap: Option<u64>) -> Limits {
        let configured = u64::from(http.max_connections);
        let max = cap.map_or(configured, |c| c.min(configured)).max(1) as usize;
        Limits {
            header_read_timeout: http.header_read_timeout.approx_duration(),
            idle_timeout: http.idle_timeout.approx_duration(),
            max_connections: max,
            slots: Arc::new(Semaphore::new(max)),
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max_connections - self.slots.available_permits()
    }
}

/// The process's descriptor limit and what it leaves for HTTP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptors {
    /// The soft limit in force (after [`Descriptors::raise`]), and the hard one.
    pub soft: u64,
    pub hard: Option<u64>,
    /// Descriptors open when measured (log file, listeners, runtime).
    pub open: u64,
}

impl Descriptors {
    /// Raises the soft `RLIMIT_NOFILE` to the hard limit (a low soft limit
    /// protects nothing here: every descriptor is bounded by these limits)
    /// and measures what is open. `None` where the limit cannot be read.
    pub fn raise() -> Option<Descriptors> {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
            if soft < hard {
                let raised = rustix::process::Rlimit { current: Some(hard), maximum: Some(hard) };
                match setrlimit(Resource::Nofile, raised) {
                    Ok(()) => limit = getrlimit(Resource::Nofile),
                    Err(e) => tracing::warn!("cannot raise the open-files limit from {soft} to {hard}: {e}"),
                }
            }
        }
        let soft = limit.current?;
        let open = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(16);
        Some(Descriptors { soft, hard: limit.maximum, open })
    }

    /// How many HTTP connections fit beside [`RUN_RESERVE`] (at least 1:
    /// with less, `max_connections = 1` is the best there is, and is logged).
    pub fn budget(&self) -> u64 {
        (self.soft.saturating_sub(self.open).saturating_sub(RUN_RESERVE) / PER_CONNECTION).max(1)
    }
}

/// The limits for this process: `[http]`'s, within the descriptor budget;
/// logs the numbers (an operator reading "max 40 connections" next to
/// "open files 256" knows what to raise).
pub fn for_process(http: &HttpConfig) -> Limits {
    let fds = Descriptors::raise();
    let limits = Limits::new(http, fds.map(|d| d.budget()));
    match fds {
        Some(d) => {
            let lowered = (limits.max_connections as u64) < u64::from(http.max_connections);
            let line = format!(
                "HTTP: at most {} connection(s) (http.max_connections = {}), header read timeout {:?}, idle \
                 timeout {:?}; open-files limit {} (hard {}), {} open, {} kept for a run",
                limits.max_connections,
                http.max_connections,
                limits.header_read_timeout,
                limits.idle_timeout,
                d.soft,
                d.hard.map_or_else(|| "unlimited".to_string(), |h| h.to_string()),
                d.open,
                RUN_RESERVE
            );
            if lowered {
                tracing::warn!(
                    "{line}: the open-files limit lowers max_connections; raise it (ulimit -n, \
                                the container's nofile) to serve more"
                );
            } else {
                tracing::info!("{line}");
            }
        }
        None => tracing::warn!(
            max_connections = limits.max_connections,
            "the open-files limit cannot be read: HTTP connections are capped by http.max_connections only"
        ),
    }
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-17.6
    #[test]
    fn connections_get_what_the_descriptor_limit_leaves_after_a_runs_reserve() {
        let d = Descriptors { soft: 256, hard: Some(256), open: 12 };
        assert_eq!(d.budget(), (256 - 12 - RUN_RESERVE) / PER_CONNECTION);
        let http = HttpConfig::default();
        assert_eq!(Limits::new(&http, Some(d.budget())).max_connections, 45);
        // A generous limit leaves http.max_connections as configured.
        let big = Descriptors { soft: 1 << 20, hard: None, open: 12 };
        assert_eq!(Limits::new(&http, Some(big.budget())).max_connections, 256);
        // A limit below the reserve still lets one connection through.
        assert_eq!(Descriptors { soft: 50, hard: Some(50), open: 10 }.budget(), 1);
        let l = Limits::new(&http, None);
        assert_eq!((l.max_connections, l.open()), (256, 0));
        assert_eq!(l.header_read_timeout, Duration::from_secs(10));
        assert_eq!(l.idle_timeout, Duration::from_secs(60));
    }
}
