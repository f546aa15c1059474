//! A [`Store`] wrapper that reads through to the real store but records
//! writes and deletes instead of doing them: the seam for `prune --dry-run`
//! and any other "show what would happen" mode (a wrapper, not `if dry_run`
//! branches in the engine).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Archives, Partial, RunLock, Store, StoredArchive, Uploaded};
use crate::error::{Error, Result};
use crate::events::Progress;

/// What a dry run would have changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Store(String),
    Delete(String),
}

pub struct DryRun<S> {
    inner: S,
    scratch: tempfile::TempDir,
    actions: Mutex<Vec<Action>>,
}

impl<S: Archives> DryRun<S> {
    pub fn new(inner: S) -> Result<DryRun<S>> {
        let scratch = tempfile::Builder::new()
            .prefix("lifeboat-dry-run-")
            .tempdir()
            .map_err(|e| Error::io("creating a scratch directory in", std::env::temp_dir(), e))?;
        Ok(DryRun { inner, scratch, actions: Mutex::new(Vec::new()) })
    }

    /// The recorded actions, in order.
    pub fn actions(&self) -> Vec<Action> {
        self.actions.lock().expect("not poisoned").clone()
    }

    fn record(&self, a: Action) {
        self.actions.lock().expect("not poisoned").push(a);
    }
}

impl<S: Archives> Archives for DryRun<S> {
    fn place(&self) -> String {
        self.inner.place()
    }

    fn url(&self, name: &str) -> String {
        self.inner.url(name)
    }

    fn list(&self) -> Result<Vec<StoredArchive>> {
        self.inner.list()
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        self.inner.open(name)
    }

    fn size(&self, name: &str) -> Result<u64> {
        self.inner.size(name)
    }

    fn sha256(&self, name: &str) -> Result<Option<String>> {
        self.inner.sha256(name)
    }

    fn put(&self, file: &Path, name: &str, _progress: Progress) -> Result<Uploaded> {
        let bytes = std::fs::metadata(file).map_err(|e| Error::io("reading", file, e))?.len();
        self.record(Action::Store(name.to_string()));
        Ok(Uploaded { object: self.inner.url(name), bytes, sha256: String::new(), attempts: 0 })
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.record(Action::Delete(name.to_string()));
        Ok(())
    }

    fn is_dry_run(&self) -> bool {
        true
    }
}

impl<S: Store> Store for DryRun<S> {
    /// No lock and no cleanup: a dry run changes nothing, so it need not
    /// wait for (or disturb) a real run.
    fn lock(&self, _progress: Progress) -> Result<RunLock> {
        Ok(RunLock::new(()))
    }

    fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    fn create_partial(&self, name: &str) -> Result<Partial> {
        Ok(Partial::new(name.to_string(), self.scratch.path().join(format!("{name}.partial"))))
    }

    fn finalize(&self, partial: Partial) -> Result<PathBuf> {
        self.record(Action::Store(partial.name.clone()));
        // The scratch copy is dropped (and removed) here.
        Ok(PathBuf::from(&partial.name))
    }

    /// The real store's key: a dry run signs like a real one would (the
    /// key is the store's state, not an archive write).
    fn signer(&self) -> Result<crate::archive::signature::Signer> {
        self.inner.signer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    #[test]
    fn a_dry_run_records_deletes_and_stores_but_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let local = LocalStore::new(d.path(), "critical_backup");
        let name = "critical_backup_20260101_000000.tar.gz";
        std::fs::write(d.path().join(name), "old").unwrap();
        let dry = DryRun::new(local.clone()).unwrap();
        let _lock = dry.lock(&crate::events::silent).unwrap();
        assert_eq!(dry.list().unwrap().len(), 1, "reads go through");
        dry.delete(name).unwrap();
        let p = dry.create_partial("critical_backup_20260102_000000.tar.gz").unwrap();
        std::fs::write(&p.path, "new").unwrap();
        dry.finalize(p).unwrap();
        assert_eq!(
            dry.actions(),
            [Action::Delete(name.into()), Action::Store("critical_backup_20260102_000000.tar.gz".into())]
        );
        let left: Vec<String> = local.list().unwrap().into_iter().map(|a| a.name).collect();
        assert_eq!(left, [name], "nothing was deleted or added");
        assert!(local.lock(&crate::events::silent).is_ok(), "the dry run took no lock");
    }
}
