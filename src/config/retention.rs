//! `[retention]`: what `prune` keeps (FR-6). Counts also arrive as
//! strings from the environment (`BACKUP_RETENTION_DAYS`), so they accept both.

use serde::{Deserialize, Serialize};

use super::de_count;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Archives older than this many days (by the time in their name) go.
    #[serde(deserialize_with = "de_count")]
    pub retention_days: u32,
    /// The newest this many good archives stay whatever their age (≥ 1).
    #[serde(deserialize_with = "de_count")]
    pub keep_last: u32,
    /// GFS: also keep the newest good archive of each of the last N days / ISO weeks / months (UTC); 0 = off.
    #[serde(deserialize_with = "de_count")]
    pub keep_daily: u32,
    #[serde(deserialize_with = "de_count")]
    pub keep_weekly: u32,
    #[serde(deserialize_with = "de_count")]
    pub keep_monthly: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { retention_days: 30, keep_last: 3, keep_daily: 0, keep_weekly: 0, keep_monthly: 0 }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::test_env as env;
    use crate::config::{resolve, Overrides};

    // covers: FR-6.1, FR-11.6, FR-4.2
    #[test]
    fn retention_and_monitor_come_from_file_env_and_defaults() {
        let c = resolve(None, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!((c.retention.retention_days, c.retention.keep_last), (30, 3));
        assert_eq!((c.monitor.max_age_hours, c.monitor.min_size_mb, c.monitor.max_size_mb), (25, 1, 100));

        let file = "[retention]\nretention_days = 14\nkeep_weekly = 4\n[monitor]\nmin_size_mb = 0\n";
        let p = Path::new("x.toml");
        let c = resolve(Some((p, file)), &env(&[]), &Overrides::default()).unwrap();
        assert_eq!((c.retention.retention_days, c.retention.keep_weekly, c.monitor.min_size_mb), (14, 4, 0));

        let c = resolve(Some((p, file)), &env(&[("BACKUP_RETENTION_DAYS", "7")]), &Overrides::default()).unwrap();
        assert_eq!(c.retention.retention_days, 7, "BACKUP_RETENTION_DAYS beats the file");
        let e = env(&[("BACKUP_RETENTION_DAYS", "7"), ("LIFEBOAT_RETENTION__RETENTION_DAYS", "9")]);
        assert_eq!(resolve(Some((p, file)), &e, &Overrides::default()).unwrap().retention.retention_days, 9);

        let err = resolve(None, &env(&[("BACKUP_RETENTION_DAYS", "a month")]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("BACKUP_RETENTION_DAYS") && err.to_string().contains("whole number"), "{err}");
        let err = resolve(Some((p, "[retention]\nkeep_last = 0\n")), &env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("keep_last must be at least 1"), "{err}");
    }
}
