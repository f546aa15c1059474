//! Progress events, the stall watchdog and the cancellation token. Engine
//! steps never print; they report through a [`Progress`] callback that the
//! CLI renders and the daemon will record. A [`CancelToken`] is handed to
//! every long run (`backup::run`, `restore`); their loops poll it, the
//! watchdog trips it on a stall, and a tripped token interrupts the running
//! query and kills pg_dump.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum Event {
    /// A pipeline step begins (`plan`, `schema`, `data`, `verify`, …).
    Step(&'static str),
    /// A table's rows were written to the archive.
    Table { name: String, rows: u64, closure_rows: u64, bytes: u64 },
    /// Something the operator should know; never fatal.
    Warning(String),
    /// Free-form detail, shown with `--verbose`.
    Detail(String),
    /// The rows step is about to move about this many bytes and rows (the
    /// plan's estimates for a backup, the manifest's counts for a restore):
    /// what a progress bar's length and ETA are measured against.
    Totals { bytes: u64, rows: u64 },
    /// This many more bytes of rows were copied (sent in chunks of at least
    /// [`BYTES_EVENT_CHUNK`], and at the end of each table).
    Bytes(u64),
    /// This many more rows were copied (a backup's COPY, with its
    /// [`Event::Bytes`]): a bar's row count moves while a table is copied.
    Rows(u64),
    /// The rows of this table (as shown: `public.orders`) are being copied.
    Copying(String),
    /// A table's lock is not free: the run waits for it (at most the lock
    /// timeout) behind the sessions named.
    LockWait(LockWait),
    /// The lock a [`Event::LockWait`] waited for was granted after `waited_ms`.
    LockGranted { table: String, waited_ms: u64 },
}

/// Who a run waits for, and how long it will: what a person watching a
/// silent screen needs to know (a deploy's migration, a `VACUUM FULL`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockWait {
    /// The table, as shown (`public.orders`).
    pub table: String,
    /// The sessions holding (or queued ahead with) a conflicting lock,
    /// holders first. Empty when they were gone before they could be named.
    pub holders: Vec<LockHolder>,
    /// `[database] lock_timeout`, as configured.
    pub timeout: String,
}

/// The line that ends a [`Event::LockWait`].
pub fn lock_granted(table: &str, waited_ms: u64) -> String {
    format!("lock on table {table} granted after {}", humantime(Duration::from_millis(waited_ms)))
}

/// One session in the way of a lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockHolder {
    /// The server process id (`pg_terminate_backend` takes it); `None` for
    /// a prepared transaction, which has no session.
    pub pid: Option<i32>,
    pub application_name: String,
    pub user: String,
    /// The lock mode as the server names it (`AccessExclusiveLock`).
    pub mode: String,
    /// Whether it holds the lock (false: it waits ahead of this run).
    pub granted: bool,
    /// How long its transaction has run: an upper bound of how long it has
    /// held the lock (or waited for it). `None` when the server does not
    /// show it to this role (another role's session, without `pg_read_all_stats`).
    pub for_ms: Option<u64>,
}

impl LockWait {
    /// One line for people: the table, who is in the way, and the limit.
    pub fn describe(&self) -> String {
        let who = match self.holders.split_first() {
            None => "another session (gone before it could be named)".to_string(),
            Some((first, rest)) => {
                let more = match rest.len() {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                format!("{}{more}", first.describe())
            }
        };
        format!(
            "table {} is locked by {who}; waiting up to lock_timeout {} (then this run fails)",
            self.table, self.timeout
        )
    }
}

impl LockHolder {
    pub fn describe(&self) -> String {
        let pid = self.pid.map_or_else(|| "a prepared transaction".to_string(), |p| format!("pid {p}"));
        let app = if self.application_name.is_empty() {
            "no application_name".to_string()
        } else {
            format!("application {:?}", self.application_name)
        };
        let user = if self.user.is_empty() { String::new() } else { format!(", user {:?}", self.user) };
        let verb = if self.granted { "holding" } else { "waiting for" };
        let age = self
            .for_ms
            .map(|ms| format!(", in a transaction begun {} ago", humantime(Duration::from_millis(ms))))
            .unwrap_or_default();
        format!("{pid} ({app}{user}, {verb} {}{age})", self.mode)
    }
}

/// Bytes between two [`Event::Bytes`]: a handful of events per megabyte
/// keeps a bar smooth and the callback off the hot path.
pub const BYTES_EVENT_CHUNK: u64 = 256 * 1024;

/// A reader that reports the bytes read through it as [`Event::Bytes`].
pub struct CountingReader<'a, R> {
    inner: R,
    progress: Progress<'a>,
    pending: u64,
}

impl<'a, R> CountingReader<'a, R> {
    pub fn new(inner: R, progress: Progress<'a>) -> Self {
        CountingReader { inner, progress, pending: 0 }
    }

    /// Reports what is still pending and returns the inner reader.
    pub fn into_inner(mut self) -> R {
        self.flush();
        self.inner
    }

    fn flush(&mut self) {
        if self.pending > 0 {
            (self.progress)(Event::Bytes(std::mem::take(&mut self.pending)));
        }
    }
}

impl<R: std::io::Read> std::io::Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pending += n as u64;
        if n == 0 || self.pending >= BYTES_EVENT_CHUNK {
            self.flush();
        }
        Ok(n)
    }
}

/// Receives events; must be cheap (it is called from hot loops only per table).
pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

/// Ignores every event (tests, `--json` without `--verbose`).
pub fn silent(_: Event) {}

/// A cheap, clonable flag that asks a run to stop. Tripping it is sticky.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>, Option<Arc<CancelToken>>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// A token tripped with this one, or on its own (which leaves this one
    /// as it is): for one part of a run that must stop when the run does,
    /// or alone when the rest of the run failed.
    pub fn child(&self) -> CancelToken {
        CancelToken(Arc::default(), Some(Arc::new(self.clone())))
    }

    /// Asks every holder of a clone to stop at its next poll.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst) || self.1.as_ref().is_some_and(|parent| parent.is_cancelled())
    }

    /// [`Error::Cancelled`](crate::error::Error::Cancelled) if tripped.
    pub fn check(&self, doing: &str) -> crate::error::Result<()> {
        if self.is_cancelled() {
            return Err(crate::error::Error::Cancelled { doing: doing.to_string() });
        }
        Ok(())
    }
}

/// Fails a run whose byte count stops growing. The engine calls [`tick`]
/// as bytes flow; a background thread fires `on_stall` (which cancels the
/// running query) when nothing happened for `timeout`, and [`check`] turns the
/// flag into an error at the next opportunity. It also watches a
/// [`CancelToken`]: a stall trips the token, and a token tripped from
/// outside fires `on_stall` too, so a blocked query is interrupted either way.
///
/// [`tick`]: Watchdog::tick
/// [`check`]: Watchdog::check
pub struct Watchdog {
    bytes: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
    cancel: CancelToken,
    /// Dropping the sender wakes the thread at once.
    done: Option<std::sync::mpsc::Sender<()>>,
    doing: Arc<Mutex<String>>,
    timeout: Duration,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(timeout: Duration, on_stall: impl Fn() + Send + 'static) -> Watchdog {
        Watchdog::with_cancel(timeout, CancelToken::new(), on_stall)
    }

    /// [`start`](Watchdog::start), tied to `cancel` both ways.
    pub fn with_cancel(timeout: Duration, cancel: CancelToken, on_stall: impl Fn() + Send + 'static) -> Watchdog {
        let bytes = Arc::new(AtomicU64::new(0));
        let stalled = Arc::new(AtomicBool::new(false));
        let (done, wake) = std::sync::mpsc::channel::<()>();
        let (b, s, c) = (bytes.clone(), stalled.clone(), cancel.clone());
        // At most 250 ms, so a cancellation from outside is noticed quickly.
        let poll = (timeout / 10).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let thread = std::thread::spawn(move || {
            let mut last = b.load(Ordering::Relaxed);
            let mut since = Instant::now();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wake.recv_timeout(poll) {
                if c.is_cancelled() {
                    on_stall();
                    return;
                }
                let now = b.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    since = Instant::now();
                } else if since.elapsed() >= timeout {
                    s.store(true, Ordering::SeqCst);
                    c.cancel();
                    on_stall();
                    return;
                }
            }
        });
        Watchdog {
            bytes,
            stalled,
            cancel,
            done: Some(done),
            doing: Arc::new(Mutex::new(String::new())),
            timeout,
            thread: Some(thread),
        }
    }

    /// Records progress (any positive amount resets the stall clock).
    pub fn tick(&self, n: u64) {
        self.bytes.fetch_add(n.max(1), Ordering::Relaxed);
    }

    /// Names the current activity for the stall message, and counts as progress.
    pub fn doing(&self, what: impl Into<String>) {
        *self.doing.lock().expect("not poisoned") = what.into();
        self.tick(1);
    }

    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::SeqCst)
    }

    /// Stalled, or cancelled from outside: the run must stop.
    pub fn interrupted(&self) -> bool {
        self.stalled() || self.cancel.is_cancelled()
    }

    /// An error if the watchdog fired or the run was cancelled (a stall
    /// names the stall, not the cancellation it caused).
    pub fn check(&self) -> crate::error::Result<()> {
        let doing = self.doing.lock().expect("not poisoned").clone();
        if self.stalled() {
            return Err(crate::error::Error::Stalled { doing, timeout: humantime(self.timeout) });
        }
        self.cancel.check(&doing)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `1.5s`, `3m 20s`: for messages.
pub fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m {}s", s / 60, s % 60)
    } else {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closure's connection in a backup holds a child of the run's
    /// token: the run's stop ends it, and ending it alone (a failed base
    /// copy) leaves the run's token, whose state decides the run's error.
    // covers: NFR-2.3
    #[test]
    fn a_child_token_stops_with_its_parent_and_alone_without_it() {
        let run = CancelToken::new();
        let (closure, grandchild) = (run.child(), run.child().child());
        closure.cancel();
        assert!(closure.is_cancelled() && !run.is_cancelled() && !grandchild.is_cancelled());
        run.cancel();
        assert!(grandchild.is_cancelled() && run.child().is_cancelled());
    }

    // covers: FR-14.4, US-11/AC-2
    // A stalled COPY cannot be produced on demand by a real server without
    // privileges tricks, so the watchdog is tested with a silent producer.
    #[test]
    fn watchdog_fires_when_nothing_moves_and_not_while_bytes_flow() {
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let w = Watchdog::start(Duration::from_millis(200), move || f.store(true, Ordering::SeqCst));
        w.doing("COPY public.big");
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(50));
            w.tick(100);
        }
        assert!(w.check().is_ok(), "progress kept it alive");
        std::thread::sleep(Duration::from_millis(600));
        let err = w.check().unwrap_err().to_string();
        assert!(fired.load(Ordering::SeqCst));
        assert!(err.contains("COPY public.big") && err.contains("stall_timeout"), "{err}");
    }

    // covers: FR-14.2
    #[test]
    fn a_lock_wait_names_the_table_the_holder_and_the_timeout() {
        let holder = |pid, for_ms, granted| LockHolder {
            pid,
            application_name: "deploy-migration".into(),
            user: "app".into(),
            mode: "AccessExclusiveLock".into(),
            granted,
            for_ms,
        };
        let mut w = LockWait {
            table: "public.payments".into(),
            holders: vec![holder(Some(4242), Some(7_200), true)],
            timeout: "30s".into(),
        };
        assert_eq!(
            w.describe(),
            "table public.payments is locked by pid 4242 (application \"deploy-migration\", user \"app\", holding \
             AccessExclusiveLock, in a transaction begun 7.2s ago); waiting up to lock_timeout 30s (then this run \
             fails)"
        );
        w.holders.push(holder(None, None, false));
        assert!(w.describe().contains("7.2s ago) and 1 more;"), "{}", w.describe());
        assert_eq!(
            w.holders[1].describe(),
            "a prepared transaction (application \"deploy-migration\", user \"app\", waiting for AccessExclusiveLock)"
        );
        w.holders.clear();
        assert!(w.describe().contains("locked by another session (gone before it could be named)"));
        assert_eq!(lock_granted("public.payments", 2_100), "lock on table public.payments granted after 2.1s");
    }

    // covers: FR-27.1
    #[test]
    fn a_counting_reader_reports_every_byte_in_few_events() {
        use std::io::Read;
        let seen = Mutex::new(Vec::new());
        let record = |e: Event| {
            if let Event::Bytes(n) = e {
                seen.lock().unwrap().push(n);
            }
        };
        let data = vec![7u8; 1_000_000];
        let mut r = CountingReader::new(&data[..], &record);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        let _ = r.into_inner();
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.iter().sum::<u64>(), 1_000_000);
        assert!(seen.len() <= 5, "{seen:?}");
    }

    #[test]
    fn a_stall_trips_the_token_and_a_tripped_token_interrupts() {
        let token = CancelToken::new();
        let w = Watchdog::with_cancel(Duration::from_millis(100), token.clone(), || {});
        std::thread::sleep(Duration::from_millis(400));
        assert!(token.is_cancelled(), "the stall tripped the token");
        assert!(w.check().unwrap_err().to_string().contains("no progress"), "the stall is named, not the cancel");

        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let token = CancelToken::new();
        let w = Watchdog::with_cancel(Duration::from_secs(60), token.clone(), move || f.store(true, Ordering::SeqCst));
        w.doing("copying rows of public.users");
        token.cancel();
        std::thread::sleep(Duration::from_millis(700));
        assert!(fired.load(Ordering::SeqCst), "the running query is interrupted");
        let err = w.check().unwrap_err();
        assert!(matches!(err, crate::error::Error::Cancelled { .. }), "{err}");
        assert!(err.to_string().contains("copying rows of public.users"), "{err}");
    }
}
