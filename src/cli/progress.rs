//! Rendering the engine's progress events on stderr. Without a terminal (or
//! with `--json`) they are the plain lines scripts and logs have always
//! seen (`lifeboat: <step>`, `warning: …`); on a terminal the rows step of
//! `backup` and `restore` also gets a progress bar (size, the table being
//! copied, rows, ETA) measured against the [`Event::Totals`] the engine
//! announces; a backup's row count moves as rows are copied.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::render;
use crate::error::printable;
use crate::events::Event;

/// The plain line for an event, if it has one (`verbose` adds per-table lines).
/// Names come from databases and archives: control characters are escaped.
fn plain(e: &Event, verbose: bool) -> Option<String> {
    match e {
        Event::Step(s) => Some(format!("lifeboat: {}", printable(s))),
        Event::Warning(w) => Some(format!("warning: {}", printable(w))),
        // Always shown: a run that waits must say for whom (US-11).
        Event::LockWait(w) => Some(format!("waiting: {}", printable(&w.describe()))),
        Event::LockGranted { table, waited_ms } => {
            Some(printable(&crate::events::lock_granted(table, *waited_ms)).into_owned())
        }
        Event::Table { name, rows, closure_rows, bytes } if verbose => {
            Some(format!("  {}: {rows} rows ({closure_rows} closure), {}", printable(name), render::bytes(*bytes)))
        }
        Event::Detail(d) if verbose => Some(format!("  {}", printable(d))),
        _ => None,
    }
}

/// Plain lines only: no terminal, or `--json`.
pub(super) fn plain_printer(verbose: bool) -> impl Fn(Event) + Sync {
    move |e| {
        if let Some(line) = plain(&e, verbose) {
            super::err_line(&line);
        }
    }
}

/// The same lines, plus a bar while rows move.
pub(super) struct Terminal {
    verbose: bool,
    bar: Mutex<Option<ProgressBar>>,
    rows: AtomicU64,
    total_rows: AtomicU64,
    /// The table being copied, when the engine says ([`Event::Copying`]).
    table: Mutex<String>,
    /// Rows arrive as they are copied ([`Event::Rows`], a backup): a
    /// table's end then adds none (a restore counts them per table).
    streamed: AtomicBool,
}

/// The bar: sizes in the one unit people see everywhere
/// ([`render::bytes`], decimal MB), the table and rows in the message.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} [{bar:24}] {size}/{total_size} · {msg} · ETA {eta}")
        .expect("valid template")
        .with_key("size", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&render::bytes(s.pos()));
        })
        .with_key("total_size", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&render::bytes(s.len().unwrap_or(0)));
        })
        .progress_chars("█▓░")
}

impl Terminal {
    pub(super) fn new(verbose: bool) -> Terminal {
        Terminal {
            verbose,
            bar: Mutex::new(None),
            rows: AtomicU64::new(0),
            total_rows: AtomicU64::new(0),
            table: Mutex::new(String::new()),
            streamed: AtomicBool::new(false),
        }
    }

    /// `public.orders · 1234/5000 rows` (the table once one is named).
    fn rows_message(&self) -> String {
        let rows = format!("{}/{} rows", self.rows.load(Ordering::Relaxed), self.total_rows.load(Ordering::Relaxed));
        match self.table.lock().expect("not poisoned").as_str() {
            "" => rows,
            table => format!("{} · {rows}", printable(table)),
        }
    }

    fn add_rows(&self, n: u64, bar: Option<&ProgressBar>) {
        let rows = self.rows.fetch_add(n, Ordering::Relaxed) + n;
        // The plan estimates; the closure adds rows: never more than 100 %.
        self.total_rows.fetch_max(rows, Ordering::Relaxed);
        if let Some(b) = bar {
            b.set_message(self.rows_message());
        }
    }

    pub(super) fn handle(&self, e: Event) {
        let mut bar = self.bar.lock().expect("not poisoned");
        match &e {
            Event::Totals { bytes, rows } => {
                self.rows.store(0, Ordering::Relaxed);
                self.total_rows.store(*rows, Ordering::Relaxed);
                self.streamed.store(false, Ordering::Relaxed);
                self.table.lock().expect("not poisoned").clear();
                let b = ProgressBar::with_draw_target(Some((*bytes).max(1)), ProgressDrawTarget::stderr());
                b.set_style(bar_style());
                b.set_message(self.rows_message());
                b.enable_steady_tick(Duration::from_millis(200));
                *bar = Some(b);
                return;
            }
            Event::Bytes(n) => {
                if let Some(b) = bar.as_ref() {
                    // The plan estimates from disk pages; never show more than 100 %.
                    let len = b.length().unwrap_or(0);
                    if b.position() + n > len {
                        b.set_length(b.position() + n);
                    }
                    b.inc(*n);
                }
                return;
            }
            Event::Rows(n) => {
                self.streamed.store(true, Ordering::Relaxed);
                self.add_rows(*n, bar.as_ref());
                return;
            }
            Event::Copying(table) => {
                *self.table.lock().expect("not poisoned") = table.clone();
                if let Some(b) = bar.as_ref() {
                    b.set_message(self.rows_message());
                }
                return;
            }
            Event::Table { rows, .. } if !self.streamed.load(Ordering::Relaxed) => {
                self.add_rows(*rows, bar.as_ref());
            }
            // The rows step is over: leave the finished bar on screen.
            Event::Step(_) => {
                if let Some(b) = bar.take() {
                    b.finish();
                    // indicatif leaves the cursor at the end of the bar's line.
                    super::err_line("");
                }
            }
            _ => {}
        }
        if let Some(line) = plain(&e, self.verbose) {
            match bar.as_ref() {
                Some(b) => b.println(line),
                None => super::err_line(&line),
            }
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(b) = self.bar.get_mut().expect("not poisoned").take() {
            b.abandon();
        }
    }
}
