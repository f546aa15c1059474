//! Incidents (FR-4): opened, alerted once, re-alerted, closed with one
//! recovery notice. The daemon's monitor loop calls [`tick`].

// placeholder: the monitor helper's module replaces this file at merge

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::events::Progress;

/// One look at the backups' health at `now` (blocking: call it through
/// `spawn_blocking`).
pub fn tick(config: &Config, now: DateTime<Utc>, progress: Progress) -> crate::Result<()> {
    let _ = (config, now, progress);
    Ok(())
}
