//! The nightly restore rehearsal (FR-15.5): with `[verify]
//! restore_test_url` set, every successful backup run (the daemon's and
//! `lifeboat backup`'s) restores its new archive into a throwaway database
//! on that scratch server, as `lifeboat verify --restore-test` does, and
//! measures the restore time (the real RTO). A rehearsal that does not
//! pass, for whatever reason (the archive, or a scratch server that cannot
//! be reached), is `failed`: `run` records it with the run (the archive
//! then does not count as good for retention, FR-6.7) and raises the
//! `restore_test_failed` incident; a passing one closes it.
//!
//! The archive is the [`Sealed`] one: the seal's verification is reused,
//! it is not read again for its manifest (the restore reads it, of course).

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::backup::Sealed;
use crate::config::Config;
use crate::events::{CancelToken, Event, Progress};
use crate::verify::VerifyOptions;

/// How a rehearsal ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rehearsed {
    pub ok: bool,
    pub duration_ms: u64,
    /// What went wrong (empty when it passed).
    pub problems: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// Rehearses `sealed` when `[verify] restore_test_url` is set; `None` when
/// not configured or cancelled (a cancelled rehearsal says nothing about
/// the archive and is not recorded).
pub fn rehearse(config: &Config, sealed: &Sealed, progress: Progress, cancel: &CancelToken) -> Option<Rehearsed> {
    let url = config.verify.restore_test_url.as_ref()?;
    progress(Event::Step("restore_test"));
    let started_at = Utc::now();
    let started = Instant::now();
    // The archive's contents are checked with the store's key as they are restored.
    let opts = VerifyOptions { trust: crate::verify::config_trust(config), ..VerifyOptions::default() };
    let outcome = crate::restore::rehearse(&sealed.path, &sealed.verified, url.expose(), &opts, progress, cancel);
    let (ok, duration_ms, problems) = match outcome {
        Ok(report) => (report.ok, report.duration_ms, report.problems),
        Err(e) if cancel.is_cancelled() => {
            progress(Event::Warning(format!("the restore rehearsal was interrupted and is not recorded: {e}")));
            return None;
        }
        Err(e) => (false, started.elapsed().as_millis() as u64, vec![format!("{e:#}")]),
    };
    if ok {
        progress(Event::Detail(format!("restore rehearsal passed in {:.1} s", duration_ms as f64 / 1000.0)));
    } else {
        progress(Event::Warning(format!("the restore rehearsal failed: {}", problems.join("; "))));
    }
    Some(Rehearsed { ok, duration_ms, problems, started_at, finished_at: Utc::now() })
}
