//! The service's config sections: `[retention]` (what `prune` keeps,
//! FR-6) and `[monitor]` (what `check` calls unhealthy, FR-4.2). Integers
//! also arrive as strings from the environment (`BACKUP_RETENTION_DAYS`,
//! `LIFEBOAT_MONITOR__MAX_AGE_HOURS`), so they accept both.

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// The last success may be at most this old.
    #[serde(deserialize_with = "de_count")]
    pub max_age_hours: u32,
    /// The last archive must be at least this big (MiB; 0 = no lower bound).
    #[serde(deserialize_with = "de_count")]
    pub min_size_mb: u32,
    /// … and at most this big (MiB).
    #[serde(deserialize_with = "de_count")]
    pub max_size_mb: u32,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig { max_age_hours: 25, min_size_mb: 1, max_size_mb: 100 }
    }
}

/// A whole number ≥ 0, as a TOML integer or (from the environment) a string.
pub(super) fn de_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        N(i64),
        S(String),
    }
    let n = match N::deserialize(d)? {
        N::N(n) => n,
        N::S(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a whole number (expected e.g. 30)")))?,
    };
    u32::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is out of range (expected 0 or more)")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::config::{resolve, Overrides};

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

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
