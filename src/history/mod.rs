//! The run history (FR-20): `sqlite` keeps every run in
//! `<storage.dir>/.lifeboat/history.db` (rusqlite, versioned migrations);
//! `markers` writes the classic `.last_backup_success` and
//! `.last_backup_size_mb` files after each verified success.
//!
//! Who records: the command line's `backup` (and later the daemon's runner)
//! wraps `backup::run`, so the engine itself stays unaware of where its runs
//! are recorded.

pub mod markers;
pub mod sqlite;

pub use sqlite::{counts_for_health, History, Incident, Outcome, RunRecord, StepRecord, Trigger, HEALTH_STATUSES};
