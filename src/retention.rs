//! Retention (FR-6, FR-29.7): the pure keep/prune decision [`decide`], and
//! [`apply`], which gathers its inputs (the store's archives, the run
//! history, the goodness of the archives whose goodness matters) and
//! applies the decision through the [`Archives`] trait: the local storage
//! directory ([`prune`], under the run's lock) and the `[remote]` S3 store
//! (after the offsite step) alike, each with its own policy and [`Judge`].
//! A dry run is the same call with the store wrapped in
//! [`DryRun`](crate::store::dry_run::DryRun): there is no `if dry_run` here.
//!
//! The rules, in order: when the latest run failed nothing is deleted; the
//! newest `keep_last` *good* archives stay whatever their age (good =
//! verifies now, and its restore rehearsal, if one ran, passed); with GFS the
//! newest good archive of each of the last `keep_daily` days, `keep_weekly`
//! ISO weeks and `keep_monthly` months (UTC) stays; any other archive goes
//! once it is older than `retention_days` (by the time in its name). An
//! archive whose name carries no time is not lifeboat's to judge and stays.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

use crate::config::RetentionConfig;
use crate::error::Result;
use crate::events::{Event, Progress};
use crate::history::{History, RunStatus};
use crate::store::{Archives, Store};

/// One archive as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub name: String,
    /// From the name (`<prefix>_YYYYMMDD_HHMMSS[_N].tar.gz`, UTC); `None` when it has none.
    pub created: Option<DateTime<Utc>>,
    pub bytes: u64,
}

/// Whether an archive counts as good (only good archives are protected by
/// `keep_last` and GFS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goodness {
    Good,
    /// Damaged, unverified or its rehearsal failed: the reason.
    NotGood(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Keep,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub name: String,
    pub action: Action,
    pub reason: String,
    pub size_bytes: u64,
}

/// What retention decided, newest archive first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunePlan {
    pub decisions: Vec<Decision>,
    /// Why nothing may be deleted at all (the latest run failed), if so.
    pub blocked: Option<String>,
}

impl PrunePlan {
    pub fn deletes(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.action == Action::Delete)
    }
}

/// The archive's time from its name: `<prefix>_YYYYMMDD_HHMMSS.tar.gz` or
/// `…_HHMMSS_N.tar.gz` (FR-6.6, FR-12.1).
pub fn created_from_name(prefix: &str, name: &str) -> Option<DateTime<Utc>> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('_')?.strip_suffix(".tar.gz")?;
    let (stamp, n) = match rest.len() {
        15 => (rest, None),
        17 => (&rest[..15], Some(&rest[15..])),
        _ => return None,
    };
    if let Some(n) = n {
        let digit = n.strip_prefix('_')?;
        if !matches!(digit, "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9") {
            return None;
        }
    }
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d_%H%M%S").ok().map(|t| t.and_utc())
}

/// The decision, from its inputs only. `goodness` is asked lazily, newest
/// archive first, and only for archives whose goodness changes the outcome
/// (so a caller that verifies archives verifies few of them).
/// `latest_failed` is the latest run's failure, when it failed.
pub fn decide(
    archives: &[Archive],
    policy: &RetentionConfig,
    now: DateTime<Utc>,
    latest_failed: Option<&str>,
    goodness: &mut dyn FnMut(&Archive) -> Goodness,
) -> PrunePlan {
    let mut sorted: Vec<&Archive> = archives.iter().collect();
    sorted.sort_by(|a, b| (b.created, &b.name).cmp(&(a.created, &a.name)));
    let keep = |a: &Archive, reason: String| Decision {
        name: a.name.clone(),
        action: Action::Keep,
        reason,
        size_bytes: a.bytes,
    };
    if let Some(why) = latest_failed {
        let blocked = format!("the latest run failed ({why}); nothing is deleted until a run succeeds");
        return PrunePlan {
            decisions: sorted.iter().map(|a| keep(a, "the latest run failed".into())).collect(),
            blocked: Some(blocked),
        };
    }

    let mut known: BTreeMap<String, Goodness> = BTreeMap::new();
    let mut is_good =
        |a: &Archive| -> bool { known.entry(a.name.clone()).or_insert_with(|| goodness(a)) == &Goodness::Good };
    let dated: Vec<&Archive> = sorted.iter().copied().filter(|a| a.created.is_some()).collect();
    let mut protected: BTreeMap<String, String> = BTreeMap::new();
    let mut good_seen = 0;
    for a in &dated {
        if good_seen >= policy.keep_last {
            break;
        }
        if is_good(a) {
            good_seen += 1;
            let what = if good_seen == 1 {
                "the newest good archive".to_string()
            } else {
                format!("good archive {good_seen} of the newest {}", policy.keep_last)
            };
            protected.insert(a.name.clone(), format!("{what} (keep_last = {})", policy.keep_last));
        }
    }
    type Bucket = fn(DateTime<Utc>) -> (i32, u32);
    let gfs: [(&str, u32, Bucket); 3] = [
        ("day", policy.keep_daily, |t| (t.year(), t.ordinal())),
        ("ISO week", policy.keep_weekly, |t| (t.iso_week().year(), t.iso_week().week())),
        ("month", policy.keep_monthly, |t| (t.year(), t.month())),
    ];
    for (unit, count, bucket) in gfs {
        let mut buckets = BTreeSet::new();
        for a in &dated {
            if buckets.len() as u32 >= count {
                break;
            }
            let b = bucket(a.created.expect("dated"));
            if !buckets.contains(&b) && is_good(a) {
                buckets.insert(b);
                protected.entry(a.name.clone()).or_insert_with(|| {
                    format!("the newest good archive of its {unit} (keep_{} = {count})", gfs_key(unit))
                });
            }
        }
    }

    let limit = chrono::Duration::days(i64::from(policy.retention_days));
    let decisions = sorted
        .iter()
        .map(|a| {
            if let Some(r) = protected.get(&a.name) {
                return keep(a, r.clone());
            }
            let Some(created) = a.created else {
                return keep(a, "the name carries no time, so retention does not judge it".into());
            };
            let age = now.signed_duration_since(created);
            let days = age.num_days();
            let bad = match known.get(&a.name) {
                Some(Goodness::NotGood(why)) => format!("; not good: {why}"),
                _ => String::new(),
            };
            if age > limit {
                Decision {
                    name: a.name.clone(),
                    action: Action::Delete,
                    reason: format!("{days} days old, older than retention_days = {}{bad}", policy.retention_days),
                    size_bytes: a.bytes,
                }
            } else {
                keep(a, format!("{days} days old, within retention_days = {}{bad}", policy.retention_days))
            }
        })
        .collect();
    PrunePlan { decisions, blocked: None }
}

/// What is wrong with a stored archive, read in full through the store
/// (structure, checksums, manifest, row counts); `None` when it verifies.
/// The one check behind retention's "good" and `lifeboat list --verify`.
pub fn damage(store: &dyn Archives, name: &str) -> Option<String> {
    let checked = store
        .open(name)
        .map_err(|e| e.to_string())
        .and_then(|r| crate::verify::verify_stream(std::io::BufReader::new(r)).map(|_| ()).map_err(|e| e.to_string()));
    checked.err()
}

fn gfs_key(unit: &str) -> &'static str {
    match unit {
        "day" => "daily",
        "ISO week" => "weekly",
        _ => "monthly",
    }
}

/// How [`apply`] tells a good archive from a bad one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge<'a> {
    /// Read it (the local store): an archive whose restore rehearsal failed
    /// (history) is not good; any other is good when it verifies now (read
    /// in full through the store), or is `verified`: the archive the calling
    /// run has just written and verified before sealing it, which need not
    /// be read a second time.
    Read { verified: Option<&'a str> },
    /// Trust a completed put (the remote store): good when the store
    /// recorded its SHA-256, which it does only once an upload completed.
    /// Reading each copy back would download the whole store every run.
    Recorded,
}

/// Retention of the local store: [`apply`] with [`Judge::Read`], holding
/// the store's lock meanwhile, which also removes stale `.partial` files
/// (FR-6.6).
pub fn prune(
    store: &dyn Store,
    prefix: &str,
    history: Option<&History>,
    policy: &RetentionConfig,
    now: DateTime<Utc>,
    verified: Option<&str>,
    progress: Progress,
) -> Result<PrunePlan> {
    let _lock = store.lock(progress)?;
    apply(store, prefix, history, policy, now, Judge::Read { verified }, progress)
}

/// Decides for the archives in `store` and deletes through it what the
/// decision says (nothing when `store` is a dry run), logging each deletion
/// ([`log_deleted`]). An archive's time comes from its name, an `.age`
/// copy's from the name of the archive it encrypts. When the latest run in
/// `history` failed, nothing is deleted.
pub fn apply(
    store: &dyn Archives,
    prefix: &str,
    history: Option<&History>,
    policy: &RetentionConfig,
    now: DateTime<Utc>,
    judge: Judge,
    progress: Progress,
) -> Result<PrunePlan> {
    let archives: Vec<Archive> = store
        .list()?
        .into_iter()
        .map(|s| Archive {
            created: created_from_name(prefix, s.name.strip_suffix(".age").unwrap_or(&s.name)),
            name: s.name,
            bytes: s.bytes,
        })
        .collect();
    let latest_failed = match history {
        Some(h) => h.latest_finished()?.filter(|r| r.status != RunStatus::Success).map(|r| r.summary()),
        None => None,
    };
    let rehearsal_failed: BTreeSet<String> = match (history, judge) {
        (Some(h), Judge::Read { .. }) => h.rehearsal_failed_archives()?,
        _ => BTreeSet::new(),
    };
    let mut goodness = |a: &Archive| match judge {
        Judge::Read { .. } if rehearsal_failed.contains(&a.name) => {
            Goodness::NotGood("its restore rehearsal failed".into())
        }
        Judge::Read { verified } if verified == Some(a.name.as_str()) => Goodness::Good,
        Judge::Read { .. } => {
            progress(Event::Detail(format!("verifying {}", a.name)));
            match damage(store, &a.name) {
                None => Goodness::Good,
                Some(e) => Goodness::NotGood(format!("damaged: {e}")),
            }
        }
        Judge::Recorded => match store.sha256(&a.name) {
            Ok(Some(_)) => Goodness::Good,
            Ok(None) => Goodness::NotGood("its upload did not complete (no SHA-256 recorded)".into()),
            Err(e) => Goodness::NotGood(e.to_string()),
        },
    };
    let plan = decide(&archives, policy, now, latest_failed.as_deref(), &mut goodness);
    for d in plan.deletes() {
        if !store.is_dry_run() {
            progress(Event::Detail(format!("retention: deleting {} ({})", store.url(&d.name), d.reason)));
        }
        store.delete(&d.name)?;
        if !store.is_dry_run() {
            log_deleted(&store.place(), d);
        }
    }
    Ok(plan)
}

/// The one log line of a deletion by retention (FR-6.8), local or remote,
/// by `lifeboat prune`, `lifeboat backup` or the daemon: the archive, the
/// store it left and the rule that removed it. Logged at info, so the
/// daemon's log and `[log] file` always have it.
pub fn log_deleted(place: &str, d: &Decision) {
    tracing::info!("retention deleted {} from {place}: {}", d.name, d.reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "critical_backup";

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// `n` archives, one a day at 02:00, the newest on 2026-12-01.
    fn daily(n: i64) -> Vec<Archive> {
        let newest = at("2026-12-01T02:00:00Z");
        (0..n)
            .map(|d| {
                let t = newest - chrono::Duration::days(d);
                Archive { name: crate::archive::archive_name(PREFIX, t), created: Some(t), bytes: 1000 }
            })
            .collect()
    }

    fn kept(p: &PrunePlan) -> Vec<&str> {
        p.decisions.iter().filter(|d| d.action == Action::Keep).map(|d| d.name.as_str()).collect()
    }

    fn all_good(_: &Archive) -> Goodness {
        Goodness::Good
    }

    const NOW: &str = "2026-12-01T02:05:00Z";

    /// Only the run that has just verified an archive may vouch for it:
    /// every other caller reads it in full.
    // covers: FR-6.2, FR-5.1
    #[test]
    fn the_archive_the_run_just_verified_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let name = crate::archive::archive_name(PREFIX, Utc::now());
        std::fs::write(dir.path().join(&name), b"not a gzip stream").unwrap();
        let store = crate::store::LocalStore::new(dir.path(), PREFIX);
        let policy = RetentionConfig::default();
        let reason = |verified: Option<&str>| {
            let p = prune(&store, PREFIX, None, &policy, Utc::now(), verified, &crate::events::silent).unwrap();
            p.decisions[0].reason.clone()
        };
        assert!(reason(None).contains("not good: damaged"), "{}", reason(None));
        assert!(reason(Some(&name)).starts_with("the newest good archive"), "{}", reason(Some(&name)));
    }

    // covers: FR-6.1, US-12/AC-1, TS-1.6
    #[test]
    fn forty_daily_archives_leave_thirty() {
        let p = decide(&daily(40), &RetentionConfig::default(), at(NOW), None, &mut all_good);
        assert_eq!(kept(&p).len(), 30);
        assert_eq!(p.deletes().count(), 10);
        let d = p.deletes().next().unwrap();
        assert!(d.reason.contains("30 days old, older than retention_days = 30"), "{}", d.reason);
        assert!(p.blocked.is_none());
    }

    // covers: FR-6.3, US-12/AC-3, TS-1.6
    #[test]
    fn nothing_is_deleted_when_the_latest_run_failed() {
        // Every run of the last 40 days failed: the archives are the old ones.
        let archives: Vec<Archive> = daily(80).into_iter().skip(40).collect();
        let mut asked = 0;
        let p = decide(&archives, &RetentionConfig::default(), at(NOW), Some("connect: refused"), &mut |_| {
            asked += 1;
            Goodness::Good
        });
        assert_eq!(p.deletes().count(), 0);
        assert_eq!(kept(&p).len(), 40);
        assert!(p.blocked.as_deref().unwrap().contains("connect: refused"));
        assert_eq!(asked, 0, "no archive needs judging");
    }

    // covers: FR-6.2, US-12/AC-2, TS-1.6
    #[test]
    fn keep_last_is_honoured_when_everything_is_old() {
        let archives: Vec<Archive> = daily(50).into_iter().skip(40).collect();
        let p = decide(&archives, &RetentionConfig::default(), at(NOW), None, &mut all_good);
        assert_eq!(kept(&p), archives.iter().take(3).map(|a| a.name.as_str()).collect::<Vec<_>>());
        assert!(p.decisions[0].reason.contains("the newest good archive"), "{}", p.decisions[0].reason);
        assert!(p.decisions[2].reason.contains("keep_last = 3"), "{}", p.decisions[2].reason);
    }

    // covers: FR-6.2, FR-6.6, TS-1.6
    #[test]
    fn a_corrupted_newest_archive_is_not_counted_as_good() {
        let archives: Vec<Archive> = daily(50).into_iter().skip(40).collect();
        let newest = archives[0].name.clone();
        let mut asked = Vec::new();
        let p = decide(&archives, &RetentionConfig::default(), at(NOW), None, &mut |a| {
            asked.push(a.name.clone());
            if a.name == newest {
                Goodness::NotGood("damaged: SHA-256 mismatch".into())
            } else {
                Goodness::Good
            }
        });
        // The three good ones are the 2nd, 3rd and 4th newest; the damaged one is old, so it goes.
        assert_eq!(kept(&p), archives[1..4].iter().map(|a| a.name.as_str()).collect::<Vec<_>>());
        let d = p.decisions.iter().find(|d| d.name == newest).unwrap();
        assert_eq!(d.action, Action::Delete);
        assert!(d.reason.contains("damaged: SHA-256 mismatch"), "{}", d.reason);
        assert_eq!(asked.len(), 4, "only the archives that decide keep_last are judged: {asked:?}");
    }

    // covers: FR-6.4, TS-1.6
    #[test]
    fn gfs_keeps_the_newest_good_archive_of_each_week_and_month() {
        let policy =
            RetentionConfig { retention_days: 7, keep_last: 1, keep_weekly: 4, keep_monthly: 3, ..Default::default() };
        let p = decide(&daily(100), &policy, at(NOW), None, &mut all_good);
        let kept = kept(&p);
        // Seven days by age, then the newest of ISO weeks 47 and 46 (49 and 48 are within the
        // seven days), then the newest of October (December and November are taken).
        assert_eq!(kept.len(), 7 + 2 + 1, "{kept:?}");
        assert!(kept.contains(&"critical_backup_20261115_020000.tar.gz"), "newest of ISO week 46: {kept:?}");
        assert!(kept.contains(&"critical_backup_20261031_020000.tar.gz"), "newest of October: {kept:?}");
        assert!(!kept.contains(&"critical_backup_20260930_020000.tar.gz"), "only 3 months: {kept:?}");
        let why = &p.decisions.iter().find(|d| d.name == "critical_backup_20261031_020000.tar.gz").unwrap().reason;
        assert!(why.contains("keep_monthly = 3"), "{why}");
    }

    // covers: FR-6.6
    #[test]
    fn names_give_the_time_and_other_names_are_left_alone() {
        assert_eq!(
            created_from_name(PREFIX, "critical_backup_20261124_020000.tar.gz"),
            Some(at("2026-11-24T02:00:00Z"))
        );
        assert_eq!(
            created_from_name(PREFIX, "critical_backup_20261124_020000_2.tar.gz"),
            Some(at("2026-11-24T02:00:00Z"))
        );
        assert_eq!(created_from_name(PREFIX, "critical_backup_20261124_020000_1.tar.gz"), None);
        assert_eq!(created_from_name(PREFIX, "critical_backup_manual.tar.gz"), None);
        assert_eq!(created_from_name(PREFIX, "other_20261124_020000.tar.gz"), None);
        let odd = Archive { name: "critical_backup_manual.tar.gz".into(), created: None, bytes: 1 };
        let p = decide(&[odd], &RetentionConfig::default(), at(NOW), None, &mut all_good);
        assert_eq!(p.decisions[0].action, Action::Keep);
        assert!(p.decisions[0].reason.contains("carries no time"));
    }
}
