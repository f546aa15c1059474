//! `--jobs N`: the spooled tables loaded over N connections, each table in
//! its own transaction; the first error (or a cancellation) stops the others
//! from taking more work. Not one transaction, so a failure empties the
//! target instead of rolling back (see `target::emptied`).

use crate::archive::ManifestTable;
use crate::error::{Error, Result};
use crate::events::{CancelToken, Event, Progress};
use crate::pg::{self, db_err, describe};

/// Loads the spooled tables over `jobs` connections, each table in its own
/// transaction; the first error stops the others from taking more work.
pub(super) fn copy_parallel(
    target: &crate::config::Target,
    pending: &[(&ManifestTable, tempfile::NamedTempFile)],
    jobs: usize,
    progress: Progress,
    cancel: &CancelToken,
) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None::<Error>);
    let name = describe(target);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(pending.len()) {
            s.spawn(|| {
                let work = || -> Result<()> {
                    let mut client = pg::connect_with(target, &name, "the --db URL")?;
                    client.batch_execute(pg::SESSION_SETTINGS).map_err(db_err("setting up a parallel connection"))?;
                    loop {
                        if failed.lock().expect("not poisoned").is_some() {
                            return Ok(());
                        }
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some((t, file)) = pending.get(i) else { return Ok(()) };
                        cancel.check(&format!("loading rows of {}", t.display()))?;
                        let sql = format!("COPY {} FROM STDIN (FORMAT csv, HEADER)", t.copy_target());
                        let mut f = file.reopen().map_err(|e| Error::io("reading spool", file.path(), e))?;
                        let mut w =
                            client.copy_in(&sql).map_err(db_err(format!("starting COPY into {}", t.display())))?;
                        std::io::copy(&mut f, &mut w)
                            .map_err(|e| Error::Failed(format!("loading rows of {}: {e}", t.display())))?;
                        let rows = w.finish().map_err(db_err(format!("loading rows of {}", t.display())))?;
                        progress(Event::Table {
                            name: t.display(),
                            rows,
                            closure_rows: t.closure_rows,
                            bytes: t.bytes,
                        });
                    }
                };
                if let Err(e) = work() {
                    failed.lock().expect("not poisoned").get_or_insert(e);
                }
            });
        }
    });
    match failed.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
