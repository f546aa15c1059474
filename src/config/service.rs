//! The service's config sections: `[retention]` (what `prune` keeps,
//! FR-6), `[monitor]` (what `check` calls unhealthy, FR-4.2, how often
//! an open incident re-alerts, FR-4.6, and how often the daemon looks),
//! `[verify]` (the nightly restore rehearsal's scratch server, FR-15.5),
//! `[schedule]` (when and how the daemon runs, FR-1) and `[log]` (FR-25). Integers
//! also arrive as strings from the environment (`BACKUP_RETENTION_DAYS`,
//! `LIFEBOAT_MONITOR__MAX_AGE_HOURS`), so they accept both.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};
use crate::model::Span;

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
    /// How often the daemon's monitor loop looks (FR-4).
    pub interval: Span,
    /// An open incident alerts again at most this often (0 = never again).
    #[serde(deserialize_with = "de_count")]
    pub realert_hours: u32,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            max_age_hours: 25,
            min_size_mb: 1,
            max_size_mb: 100,
            interval: span("5 minutes"),
            realert_hours: 24,
        }
    }
}

fn span(s: &str) -> Span {
    s.parse().expect("valid")
}

/// `[schedule]`: when the daemon backs up and how it retries (FR-1, FR-23.2).
/// `cron` and `timezone` are checked by `crate::schedule` when the config
/// loads, so a typo is a config error naming the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// 5-field cron or `@daily` etc. (`BACKUP_SCHEDULE`).
    pub cron: String,
    /// IANA zone; default `TZ` when it names one, else `UTC`.
    pub timezone: String,
    /// Run once at start when the most recent due time passed without a success.
    pub catch_up: bool,
    /// A run (with its retries) longer than this is aborted and recorded failed.
    pub run_timeout: Span,
    /// Retries of a scheduled run after a retryable error (the database
    /// unreachable, …): 3 = one attempt plus three retries (0 = no retry).
    #[serde(deserialize_with = "de_count")]
    pub retries: u32,
    /// The wait before each retry (the same every time: the seed's
    /// 02:00, 02:01, 02:02, 02:03).
    pub retry_backoff: Span,
    /// How long an in-flight run may go on after SIGTERM before it is aborted.
    pub shutdown_grace: Span,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            cron: "0 2 * * *".into(),
            timezone: "UTC".into(),
            catch_up: true,
            run_timeout: span("2 hours"),
            retries: 3,
            retry_backoff: span("1 minute"),
            shutdown_grace: span("60s"),
        }
    }
}

/// `[log]`: where the daemon and the state-changing commands log (FR-25).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Appended to; empty = no file.
    pub file: PathBuf,
    pub format: LogFormat,
    /// Past this size the file is rotated to `<file>.1` (one kept).
    #[serde(deserialize_with = "de_count")]
    pub max_size_mb: u32,
    /// Whether a layer (file, environment) set `file`: the commands
    /// (`backup`, `send`, `prune`, `restore`) append to it only then; the
    /// daemon also to the default. Not a key.
    #[serde(skip)]
    pub configured: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            file: PathBuf::from("/var/log/backup.log"),
            format: LogFormat::Text,
            max_size_mb: 50,
            configured: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[verify]`: the restore rehearsal after each successful backup run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// A scratch server (`postgres://user@host:port/postgres`) whose role
    /// may `CREATE DATABASE`; unset = no rehearsal. A secret (it may hold a
    /// password); without a password in it, the password comes from
    /// `LIFEBOAT_TARGET_PASSWORD[_FILE]`, `PGPASSWORD[_FILE]` or the
    /// password file, as for `verify --restore-test`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_test_url: Option<Secret>,
    /// Read into `restore_test_url` when the config is loaded; always `None` afterwards.
    #[serde(skip_serializing)]
    pub restore_test_url_file: Option<PathBuf>,
}

/// `[restore]`: restoring on a host that is not the one that made the backups.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreConfig {
    /// minisign public keys whose signatures `verify` and `restore` accept,
    /// besides the configured store's own key: each entry the base64 line
    /// `lifeboat config` prints on the backup host, or a key file's path
    /// (`LIFEBOAT_RESTORE__TRUSTED_KEYS`: comma-separated). Keys are public.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_keys: Vec<String>,
}

/// Checks every `[restore] trusted_keys` entry is a usable key, so a typo
/// is a config error at start, not a refused restore later.
pub(super) fn finish_restore(r: &RestoreConfig) -> Result<(), ConfigError> {
    for (i, entry) in r.trusted_keys.iter().enumerate() {
        crate::archive::signature::TrustedKey::from_entry(entry, &format!("[restore] trusted_keys entry {}", i + 1))
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// Reads `restore_test_url_file` and checks that the URL parses, so a
/// typo is a config error at start, not a failed rehearsal at 2 a.m.
pub(super) fn finish_verify(v: &mut VerifyConfig) -> Result<(), ConfigError> {
    if let Some(p) = v.restore_test_url_file.take() {
        v.restore_test_url = Some(super::secret::read_secret_file(&p, "verify.restore_test_url_file")?);
    }
    if let Some(url) = &v.restore_test_url {
        super::parse_database_url(url.expose(), "[verify] restore_test_url")?;
    }
    Ok(())
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
    use std::path::Path;

    use crate::config::{resolve, Overrides};

    use crate::config::test_env as env;

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

    // covers: FR-1.1, FR-1.2, FR-11.6, FR-25.1, FR-25.3
    #[test]
    fn schedule_and_log_come_from_file_env_and_defaults() {
        let p = Path::new("x.toml");
        let c = resolve(None, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!((c.schedule.cron.as_str(), c.schedule.timezone.as_str()), ("0 2 * * *", "UTC"));
        assert!(c.schedule.catch_up);
        // The seed: one attempt plus three retries, a minute apart, for the database and for mail.
        assert_eq!((c.email.attempts, c.email.backoff.to_string().as_str()), (4, "1 minute"));
        assert_eq!((c.schedule.retries, c.schedule.retry_backoff.to_string().as_str()), (3, "1 minute"));
        assert_eq!(c.schedule.run_timeout.to_string(), "2 hours");
        assert_eq!(c.monitor.interval.to_string(), "5 minutes");
        assert_eq!((c.log.file.to_str(), c.log.max_size_mb), (Some("/var/log/backup.log"), 50));

        let c = resolve(None, &env(&[("TZ", "Asia/Bangkok"), ("BACKUP_SCHEDULE", "@hourly")]), &Overrides::default())
            .unwrap();
        assert_eq!((c.schedule.cron.as_str(), c.schedule.timezone.as_str()), ("@hourly", "Asia/Bangkok"));
        let file =
            "[schedule]\ntimezone = \"Europe/Berlin\"\ncron = \"30 1 * * *\"\n[log]\nfile = \"\"\nformat = \"json\"\n";
        let c = resolve(Some((p, file)), &env(&[("TZ", "Asia/Bangkok")]), &Overrides::default()).unwrap();
        assert_eq!(c.schedule.timezone, "Europe/Berlin", "TZ is below the file");
        assert_eq!((c.log.file.as_os_str().is_empty(), c.log.format), (true, crate::config::LogFormat::Json));
        let e = env(&[("BACKUP_SCHEDULE", "0 3 * * *"), ("LIFEBOAT_SCHEDULE__TIMEZONE", "America/New_York")]);
        let c = resolve(Some((p, file)), &e, &Overrides::default()).unwrap();
        assert_eq!((c.schedule.cron.as_str(), c.schedule.timezone.as_str()), ("0 3 * * *", "America/New_York"));

        let c = resolve(None, &env(&[("TZ", "EST5EDT,M3.2.0,M11.1.0")]), &Overrides::default()).unwrap();
        assert_eq!(c.schedule.timezone, "UTC");
        assert!(c.warnings.iter().any(|w| w.contains("not an IANA time zone")), "{:?}", c.warnings);

        let err = resolve(None, &env(&[("BACKUP_SCHEDULE", "0 25 * * *")]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("\"0 25 * * *\"") && err.to_string().contains("cron"), "{err}");
        let err = resolve(Some((p, "[schedule]\ntimezone = \"Mars/Olympus\"\n")), &env(&[]), &Overrides::default())
            .unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
        let c = resolve(Some((p, "[schedule]\nretries = 0\n")), &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.schedule.retries, 0, "no retry: one attempt");
    }

    // covers: FR-4.6, FR-15.5
    #[test]
    fn realert_hours_and_the_rehearsal_url_come_from_file_and_env_and_the_url_stays_secret() {
        let c = resolve(None, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.monitor.realert_hours, 24);
        assert!(c.verify.restore_test_url.is_none());
        let p = Path::new("x.toml");
        let file = "[monitor]\nrealert_hours = 6\n[verify]\nrestore_test_url = \"postgres://rt:Rt-Pa55-e9@scratch/postgres\"\n";
        let c = resolve(Some((p, file)), &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.monitor.realert_hours, 6);
        assert_eq!(c.verify.restore_test_url.as_ref().unwrap().expose(), "postgres://rt:Rt-Pa55-e9@scratch/postgres");
        assert!(!format!("{c:?}").contains("Rt-Pa55-e9"));
        assert!(!toml::to_string(&c).unwrap().contains("Rt-Pa55-e9"));

        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("rt_url");
        std::fs::write(&f, "postgres://rt@scratch:6543/postgres\n").unwrap();
        let e = env(&[("LIFEBOAT_VERIFY__RESTORE_TEST_URL_FILE", f.to_str().unwrap())]);
        let c = resolve(Some((p, file)), &e, &Overrides::default()).unwrap();
        assert_eq!(
            c.verify.restore_test_url.unwrap().expose(),
            "postgres://rt@scratch:6543/postgres",
            "env beats file"
        );

        let bad = "[verify]\nrestore_test_url = \"postgres://rt:Rt-Pa55-e9@scratch:99999/postgres\"\n";
        let err = resolve(Some((p, bad)), &env(&[]), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("[verify] restore_test_url") && !err.contains("Rt-Pa55-e9"), "{err}");
        let both = "[verify]\nrestore_test_url = \"postgres://x/y\"\nrestore_test_url_file = \"/run/secrets/u\"\n";
        let err = resolve(Some((p, both)), &env(&[]), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("both restore_test_url and restore_test_url_file"), "{err}");
    }
}
