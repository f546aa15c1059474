//! One table's rows: `COPY (SELECT …) TO STDOUT` on the snapshot, streamed
//! into a spool in bounded chunks, feeding the watchdog (and polling the
//! cancellation token through it) as bytes flow. A table's member is the
//! rows its mode selects followed by its closure rows, [`COPY_BATCH`] per
//! statement, all on the snapshot's connection (so from the same instant),
//! with one CSV header.

use std::io::Read;
use std::path::Path;

use crate::archive::writer::Spool;
use crate::error::{Error, Result};
use crate::events::{Event, Progress, Watchdog, BYTES_EVENT_CHUNK};
use crate::pg::{db_err, pg_message, Snapshot};
use crate::plan::{CopyRows, TablePlan, COPY_BATCH};

/// Copies tables' rows out of the snapshot into spools: temp files go to
/// `dir`, every chunk feeds `watchdog` and bytes are reported to `progress`.
pub(super) struct Copier<'a> {
    pub dir: &'a Path,
    pub watchdog: &'a Watchdog,
    pub progress: Progress<'a>,
}

impl Copier<'_> {
    /// Copies `t`'s rows into `spool` (`text`: COPY text format, else CSV):
    /// [`Copier::base`], then [`Copier::closure`].
    pub fn member(&self, snap: &mut Snapshot, t: &TablePlan, text: bool, spool: &mut Spool) -> Result<()> {
        self.base(snap, t, text, spool)?;
        self.closure(snap, t, text, spool)
    }

    /// The rows `t`'s mode selects, with the CSV header: a member's beginning.
    pub fn base(&self, snap: &mut Snapshot, t: &TablePlan, text: bool, spool: &mut Spool) -> Result<()> {
        self.table(snap, &t.copy_sql(CopyRows::Base, text), t, spool)
    }

    /// The rows the closure added to `t`, [`COPY_BATCH`] per statement, after its base rows.
    pub fn closure(&self, snap: &mut Snapshot, t: &TablePlan, text: bool, spool: &mut Spool) -> Result<()> {
        let dir = self.dir;
        let keys_err =
            |e| Error::io(format!("reading the closure row keys of {} from a temporary file in", t.display()), dir, e);
        for batch in t.closure.batches(COPY_BATCH).map_err(keys_err)? {
            let batch = batch.map_err(keys_err)?;
            self.table(snap, &t.copy_sql(CopyRows::Closure(&batch), text), t, spool)?;
        }
        Ok(())
    }

    fn table(&self, snap: &mut Snapshot, sql: &str, t: &TablePlan, spool: &mut Spool) -> Result<()> {
        use std::io::Write;
        let (dir, watchdog, progress) = (self.dir, self.watchdog, self.progress);
        // A closure batch lists ctids; the start of the statement is enough.
        tracing::debug!(sql = %sql.chars().take(300).collect::<String>(), "COPY out");
        let mut reader = snap.client.copy_out(sql).map_err(|e| copy_error(t, "starting COPY of", e))?;
        let mut buf = vec![0u8; 128 * 1024];
        let mut unreported = 0u64;
        progress(Event::Copying(t.display()));
        // Rows are counted as the CSV goes by, so a bar's count moves with its bytes.
        let mut rows_reported = spool.csv.rows();
        let mut report = |bytes: u64, rows: u64| {
            progress(Event::Bytes(bytes));
            if rows > rows_reported {
                progress(Event::Rows(rows - std::mem::replace(&mut rows_reported, rows)));
            }
        };
        loop {
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    watchdog.check()?;
                    // The driver's own error (with the server's message, if it
                    // sent one) travels inside the io::Error.
                    let message = match e.into_inner().map(|inner| inner.downcast::<tokio_postgres::Error>()) {
                        Some(Ok(pg)) => return Err(copy_error(t, "reading rows of", *pg)),
                        Some(Err(other)) => other.to_string(),
                        None => "the connection failed".into(),
                    };
                    return Err(lost(t, "reading rows of", message));
                }
            };
            if n == 0 {
                if unreported > 0 {
                    report(unreported, spool.csv.rows());
                }
                return Ok(());
            }
            spool
                .write_all(&buf[..n])
                .map_err(|e| Error::io(format!("writing rows of {} to a temporary file in", t.display()), dir, e))?;
            watchdog.tick(n as u64);
            unreported += n as u64;
            if unreported >= BYTES_EVENT_CHUNK {
                report(std::mem::take(&mut unreported), spool.csv.rows());
            }
            if watchdog.interrupted() {
                return watchdog.check();
            }
        }
    }
}

/// A COPY that failed: the server's own words when it sent any, else the
/// lost connection said as such.
fn copy_error(t: &TablePlan, doing: &str, e: tokio_postgres::Error) -> Error {
    if e.as_db_error().is_some() {
        return db_err(format!("{doing} {} (COPY)", t.display()))(e);
    }
    lost(t, doing, pg_message(&e))
}

/// The connection went away without a word from the server (a restart,
/// `pg_terminate_backend` while it was sending, a network cut).
fn lost(t: &TablePlan, doing: &str, driver: String) -> Error {
    Error::Db {
        context: format!("{doing} {} (COPY)", t.display()),
        message: format!(
            "the connection to the database was lost ({driver}); the server may have restarted or ended the session: check its log, then run the backup again"
        ),
        retryable: true,
    }
}
