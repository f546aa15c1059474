//! Rendering the engine's progress events on stderr. Without a terminal (or
//! with `--json`) they are the plain lines scripts and logs have always
//! seen (`lifeboat: <step>`, `warning: …`); on a terminal the rows step of
//! `backup` and `restore` also gets a progress bar (bytes, rows, rate, ETA)
//! measured against the [`Event::Totals`] the engine announces.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::render;
use crate::error::printable;
use crate::events::Event;

/// The plain line for an event, if it has one (`verbose` adds per-table lines).
/// Names come from databases and archives: control characters are escaped.
fn plain(e: &Event, verbose: bool) -> Option<String> {
    match e {
        Event::Step(s) => Some(format!("lifeboat: {}", printable(s))),
        Event::Warning(w) => Some(format!("warning: {}", printable(w))),
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
}

impl Terminal {
    pub(super) fn new(verbose: bool) -> Terminal {
        Terminal { verbose, bar: Mutex::new(None), rows: AtomicU64::new(0), total_rows: AtomicU64::new(0) }
    }

    fn rows_message(&self) -> String {
        format!("{}/{} rows", self.rows.load(Ordering::Relaxed), self.total_rows.load(Ordering::Relaxed))
    }

    pub(super) fn handle(&self, e: Event) {
        let mut bar = self.bar.lock().expect("not poisoned");
        match &e {
            Event::Totals { bytes, rows } => {
                self.rows.store(0, Ordering::Relaxed);
                self.total_rows.store(*rows, Ordering::Relaxed);
                let b = ProgressBar::with_draw_target(Some((*bytes).max(1)), ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template("{spinner} [{bar:24}] {bytes}/{total_bytes} · {msg} · ETA {eta}")
                        .expect("valid template")
                        .progress_chars("█▓░"),
                );
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
            Event::Table { rows, .. } => {
                self.rows.fetch_add(*rows, Ordering::Relaxed);
                if self.rows.load(Ordering::Relaxed) > self.total_rows.load(Ordering::Relaxed) {
                    self.total_rows.store(self.rows.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                if let Some(b) = bar.as_ref() {
                    b.set_message(self.rows_message());
                }
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
