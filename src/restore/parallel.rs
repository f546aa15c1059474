//! `--jobs N`: each table's rows are spooled to disk during the one pass
//! over the archive and, as soon as its member's SHA-256 matched, handed to
//! one of N loader connections that copy it in its own transaction while
//! the pass goes on (issue 24: the pass and the loads overlap instead of
//! following each other). A table created by this restore is loaded as
//! `TRUNCATE ONLY` + `COPY … FREEZE` in that transaction, the parallel
//! counterpart of the single transaction's FREEZE. The first error (or a
//! cancellation) stops the loaders from taking more work and the pass from
//! reading further. Not one transaction, so a failure empties the target
//! instead of rolling back (see `target::emptied`).

use std::io::Read;
use std::path::Path;
use std::sync::{mpsc, Mutex};

use std::collections::BTreeMap;

use crate::archive::ManifestTable;
use crate::error::{Error, Result};
use crate::events::{CancelToken, Event, Progress};
use crate::pg::{self, copy_err, db_err, describe};

/// Where rows wait for their loader: a private (0700)
/// `.lifeboat-spool-*` directory in the spool directory (beside the
/// archive, or `--spool-dir`; never `$TMPDIR`, often RAM), one file per
/// table, removed once loaded. Everything in it is removed when the spool
/// is dropped, so on success, failure and panic alike.
pub(super) struct Spool {
    dir: tempfile::TempDir,
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
        Ok(Spool { dir })
    }

    /// Copies one table's rows into a file of its own, streamed in small
    /// buffers (never the whole table in memory); deleted when dropped.
    pub(super) fn add(&self, t: &ManifestTable, rows: &mut dyn Read) -> Result<tempfile::TempPath> {
        self.file(&format!("spooling the rows of {} ({} bytes uncompressed) in", t.display(), t.bytes), rows)
    }

    /// Keeps a SQL member that must wait for the rows (sequences,
    /// constraints) in a file of its own, like the rows: never in memory.
    pub(super) fn add_sql(&self, member: &str, sql: &mut dyn Read) -> Result<tempfile::TempPath> {
        self.file(&format!("spooling {member} in"), sql)
    }

    fn file(&self, context: &str, data: &mut dyn Read) -> Result<tempfile::TempPath> {
        // Closed once written: a file descriptor per waiting table would run
        // into the process's limit with thousands of tables.
        let path = self.dir.path();
        let mut f = tempfile::NamedTempFile::new_in(path).map_err(|e| Error::io(context, path, e))?;
        std::io::copy(data, &mut f).map_err(|e| Error::io(context, path, e))?;
        Ok(f.into_temp_path())
    }
}

/// One spooled table for a loader: its rows' file and whether this restore
/// created it (so `TRUNCATE` + `COPY … FREEZE` may load it).
pub(super) struct Job {
    pub table: ManifestTable,
    pub rows: tempfile::TempPath,
    pub created_here: bool,
}

/// The loaders' shared state: the queue of spooled tables, the first
/// error, and the rows each COPY loaded, by data file.
pub(super) struct Loaders {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    jobs: Mutex<mpsc::Receiver<Job>>,
    failed: Mutex<Option<Error>>,
    loaded: Mutex<BTreeMap<String, u64>>,
}

impl Loaders {
    pub(super) fn new() -> Loaders {
        let (tx, rx) = mpsc::channel();
        Loaders {
            queue: Mutex::new(Some(tx)),
            jobs: Mutex::new(rx),
            failed: Mutex::new(None),
            loaded: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts `jobs` loader threads in `scope`, each on its own connection
    /// to `target`; they run until [`Loaders::close`] and an empty queue, or
    /// the first error.
    pub(super) fn start<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        target: &'scope crate::config::Target,
        jobs: usize,
        progress: Progress<'scope>,
        cancel: &'scope CancelToken,
    ) {
        let name = describe(target);
        for _ in 0..jobs {
            let name = name.clone();
            scope.spawn(move || {
                let worker = || -> Result<()> {
                    let mut client = pg::connect_with(target, &name, super::DB_HINT, cancel)?;
                    client.batch_execute(pg::SESSION_SETTINGS).map_err(db_err("setting up a parallel connection"))?;
                    loop {
                        // The lock is held only to take the next job (or learn there is none).
                        let next = self.jobs.lock().expect("not poisoned").recv();
                        let Ok(job) = next else { return Ok(()) };
                        if self.failed.lock().expect("not poisoned").is_some() {
                            return Ok(());
                        }
                        let rows = load(&mut client, &job, cancel)?;
                        if let Some(f) = &job.table.file {
                            self.loaded.lock().expect("not poisoned").insert(f.clone(), rows);
                        }
                        let t = &job.table;
                        progress(Event::Table {
                            name: t.display(),
                            rows,
                            closure_rows: t.closure_rows,
                            bytes: t.bytes,
                        });
                    }
                };
                if let Err(e) = worker() {
                    self.failed.lock().expect("not poisoned").get_or_insert(e);
                    // The pass learns of it at its next table; nobody waits on the queue.
                    self.close();
                }
            });
        }
    }

    /// Queues a spooled table. An error means a loader failed: the pass
    /// stops reading the archive, and [`Loaders::finish`] gives the loader's
    /// own error, which is the one to report.
    pub(super) fn send(&self, job: Job) -> Result<()> {
        let queued = match self.queue.lock().expect("not poisoned").as_ref() {
            // A send fails only when every loader is gone, which they are only after an error.
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if !queued || self.failed.lock().expect("not poisoned").is_some() {
            return Err(Error::Failed(STOPPED.into()));
        }
        Ok(())
    }

    /// No more tables: the loaders finish the queue and exit. Also on every
    /// early return of the pass ([`Closing`]), or the scope would wait for
    /// them forever.
    pub(super) fn close(&self) {
        self.queue.lock().expect("not poisoned").take();
    }

    /// After the loaders have exited, given how the pass ended: the rows
    /// each COPY loaded, by data file, or the error to report — the pass's
    /// own (a damaged member, a cancellation) unless it only stopped because
    /// a loader had failed, then that loader's.
    pub(super) fn finish(self, pass: Result<()>) -> Result<BTreeMap<String, u64>> {
        let failed = self.failed.into_inner().expect("not poisoned");
        match (pass, failed) {
            (Err(Error::Failed(m)), Some(e)) if m == STOPPED => Err(e),
            (Err(e), _) | (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) => Ok(self.loaded.into_inner().expect("not poisoned")),
        }
    }
}

/// The pass's error when it stopped only because a loader had failed
/// ([`Loaders::finish`] reports the loader's instead; never shown).
const STOPPED: &str = "a parallel load failed";

/// Closes the queue when dropped: the pass's every exit, a panic included.
pub(super) struct Closing<'a>(pub &'a Loaders);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Loads one spooled table in its own transaction: `TRUNCATE ONLY` then
/// `COPY … FREEZE` when this restore created the table (the rows are
/// written frozen and all-visible, as in the single transaction), else a
/// plain `COPY`.
fn load(client: &mut pg::Client, job: &Job, cancel: &CancelToken) -> Result<u64> {
    let t = &job.table;
    cancel.check(&format!("loading rows of {}", t.display()))?;
    let freeze = if job.created_here {
        client
            .batch_execute(&format!("BEGIN; TRUNCATE ONLY {}", t.qualified()))
            .map_err(db_err(format!("starting the load of {}", t.display())))?;
        ", FREEZE"
    } else {
        client.batch_execute("BEGIN").map_err(db_err(format!("starting the load of {}", t.display())))?;
        ""
    };
    let sql = format!("COPY {} FROM STDIN (FORMAT csv, HEADER{freeze})", t.copy_target());
    tracing::debug!(%sql, "COPY in (parallel)");
    let mut f = std::fs::File::open(&job.rows).map_err(|e| Error::io("reading spool", &job.rows, e))?;
    let mut w = client.copy_in(&sql).map_err(db_err(format!("starting COPY into {}", t.display())))?;
    std::io::copy(&mut f, &mut w).map_err(copy_err(format!("loading rows of {}", t.display())))?;
    let rows = w.finish().map_err(db_err(format!("loading rows of {}", t.display())))?;
    client.batch_execute("COMMIT").map_err(db_err(format!("committing the rows of {}", t.display())))?;
    Ok(rows)
}

/// `builds` (the index builds of constraints member `path`) over `jobs`
/// connections, each with the member's own session settings and its share
/// of the index memory; the first error stops the others.
pub(super) fn build_indexes(
    target: &crate::config::Target,
    path: &str,
    builds: &super::sql::IndexBuilds,
    jobs: usize,
    cancel: &CancelToken,
) -> Result<()> {
    let setup = format!("{}\n{};", builds.preamble.join("\n"), index_memory(jobs));
    fan_out(target, &builds.builds, jobs, &setup, cancel, |client, (line, sql)| {
        let context = || format!("executing {path} (statement at line {line})");
        cancel.check(&context())?;
        client.batch_execute(sql).map_err(db_err(context()))
    })
}

/// The index memory (`maintenance_work_mem`, as `load::BULK_LOAD` raises
/// it) of one of `jobs` connections building indexes at once: 512 MB
/// shared, at least 64 MB each, only raised.
fn index_memory(jobs: usize) -> String {
    let kb = (524_288 / jobs.max(1)).max(65_536);
    format!(
        "SELECT set_config('maintenance_work_mem', '{kb}kB', false) FROM pg_catalog.pg_settings \
         WHERE name = 'maintenance_work_mem' AND setting::bigint < {kb}"
    )
}

/// Runs `work` on every item, in order, over `jobs` connections to
/// `target` (each with the session settings, then `setup`, once); the
/// first error stops the others from taking more items and is returned.
pub(super) fn fan_out<T: Sync>(
    target: &crate::config::Target,
    items: &[T],
    jobs: usize,
    setup: &str,
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
                    client
                        .batch_execute(&format!("{};\n{setup}", pg::SESSION_SETTINGS))
                        .map_err(db_err("setting up a parallel connection"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_with(e: Option<Error>) -> Loaders {
        let l = Loaders::new();
        *l.failed.lock().unwrap() = e;
        l
    }

    // covers: FR-7.9
    #[test]
    fn the_error_reported_is_the_passs_own_unless_it_stopped_for_a_loader() {
        let loader = || Some(Error::Failed("loading rows of public.users: bad row".into()));
        // The pass stopped because a loader failed: the loader's error, never the placeholder.
        let e = failed_with(loader()).finish(Err(Error::Failed(STOPPED.into()))).unwrap_err();
        assert!(e.to_string().contains("public.users"), "{e}");
        // A cancelled pass stays cancelled, whatever the loaders met after it.
        let e = failed_with(loader()).finish(Err(Error::Cancelled { doing: "restoring x".into() })).unwrap_err();
        assert!(matches!(e, Error::Cancelled { .. }), "{e}");
        // The pass done, a loader failed: the loader's.
        let e = failed_with(loader()).finish(Ok(())).unwrap_err();
        assert!(e.to_string().contains("public.users"), "{e}");
        // Both fine: what was loaded.
        let l = failed_with(None);
        l.loaded.lock().unwrap().insert("database/data/public.users.csv".into(), 3);
        assert_eq!(l.finish(Ok(())).unwrap().get("database/data/public.users.csv"), Some(&3));
    }
}
