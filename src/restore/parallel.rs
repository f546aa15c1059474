//! `--jobs N`: the tables' rows spooled to disk during the one pass over
//! the archive, then loaded over N connections, each table in its own
//! transaction; the first error (or a cancellation) stops the others from
//! taking more work. Not one transaction, so a failure empties the target
//! instead of rolling back (see `target::emptied`).

use std::io::Read;
use std::path::Path;

use std::collections::BTreeMap;

use crate::archive::ManifestTable;
use crate::error::{Error, Result};
use crate::events::{CancelToken, Event, Progress};
use crate::pg::{self, copy_err, db_err, describe};

/// Where rows wait for the parallel load: a private (0700)
/// `.lifeboat-spool-*` directory in the spool directory (beside the
/// archive, or `--spool-dir`; never `$TMPDIR`, often RAM), one file per
/// table. Everything in it is removed when the spool is dropped, so on
/// success, failure and panic alike.
pub(super) struct Spool {
    dir: tempfile::TempDir,
    /// Closed once written (a file descriptor per table would run into
    /// the process's limit with thousands of tables); deleted on drop.
    tables: Vec<(ManifestTable, tempfile::TempPath)>,
}

impl Spool {
    pub(super) fn create(parent: &Path) -> Result<Spool> {
        let dir = tempfile::Builder::new().prefix(".lifeboat-spool-").tempdir_in(parent).map_err(|e| {
            Error::io(
                "cannot create the --jobs spool (set --spool-dir to a directory with room for the rows) in",
                parent,
                e,
            )
        })?;
        Ok(Spool { dir, tables: Vec::new() })
    }

    /// Copies one table's rows into a file of its own, streamed in small
    /// buffers (never the whole table in memory).
    pub(super) fn add(&mut self, t: &ManifestTable, rows: &mut dyn Read) -> Result<()> {
        let context = format!("spooling the rows of {} ({} bytes uncompressed) in", t.display(), t.bytes);
        let file = self.file(&context, rows)?;
        self.tables.push((t.clone(), file));
        Ok(())
    }

    /// Keeps a SQL member that must wait for the rows (sequences,
    /// constraints) in a file of its own, like the rows: never in memory.
    pub(super) fn add_sql(&mut self, member: &str, sql: &mut dyn Read) -> Result<tempfile::TempPath> {
        self.file(&format!("spooling {member} in"), sql)
    }

    fn file(&self, context: &str, data: &mut dyn Read) -> Result<tempfile::TempPath> {
        let path = self.dir.path();
        let mut f = tempfile::NamedTempFile::new_in(path).map_err(|e| Error::io(context, path, e))?;
        std::io::copy(data, &mut f).map_err(|e| Error::io(context, path, e))?;
        Ok(f.into_temp_path())
    }
}

/// Loads the spooled tables over `jobs` connections, each table in its own
/// transaction; the first error stops the others from taking more work.
/// Returns the rows each COPY loaded, by data file.
pub(super) fn copy_parallel(
    target: &crate::config::Target,
    spool: &Spool,
    jobs: usize,
    progress: Progress,
    cancel: &CancelToken,
) -> Result<BTreeMap<String, u64>> {
    let loaded = std::sync::Mutex::new(BTreeMap::new());
    fan_out(target, &spool.tables, jobs, cancel, |client, (t, file)| {
        cancel.check(&format!("loading rows of {}", t.display()))?;
        let sql = format!("COPY {} FROM STDIN (FORMAT csv, HEADER)", t.copy_target());
        let mut f = std::fs::File::open(file).map_err(|e| Error::io("reading spool", file, e))?;
        let mut w = client.copy_in(&sql).map_err(db_err(format!("starting COPY into {}", t.display())))?;
        std::io::copy(&mut f, &mut w).map_err(copy_err(format!("loading rows of {}", t.display())))?;
        let rows = w.finish().map_err(db_err(format!("loading rows of {}", t.display())))?;
        if let Some(f) = &t.file {
            loaded.lock().expect("not poisoned").insert(f.clone(), rows);
        }
        progress(Event::Table { name: t.display(), rows, closure_rows: t.closure_rows, bytes: t.bytes });
        Ok(())
    })?;
    Ok(loaded.into_inner().expect("not poisoned"))
}

/// Runs `work` on every item, in order, over `jobs` connections to
/// `target` (each with the session settings); the first error stops the
/// others from taking more items and is returned.
pub(super) fn fan_out<T: Sync>(
    target: &crate::config::Target,
    items: &[T],
    jobs: usize,
    cancel: &CancelToken,
    work: impl Fn(&mut pg::Client, &T) -> Result<()> + Sync,
) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None::<Error>);
    let name = describe(target);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(items.len()) {
            s.spawn(|| {
                let worker = || -> Result<()> {
                    let mut client = pg::connect_with(target, &name, super::DB_HINT, cancel)?;
                    client.batch_execute(pg::SESSION_SETTINGS).map_err(db_err("setting up a parallel connection"))?;
                    loop {
                        if failed.lock().expect("not poisoned").is_some() {
                            return Ok(());
                        }
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(item) = items.get(i) else { return Ok(()) };
                        work(&mut client, item)?;
                    }
                };
                if let Err(e) = worker() {
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
