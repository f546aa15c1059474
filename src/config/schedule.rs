//! `[schedule]`: when and how the daemon runs (FR-1).

use serde::{Deserialize, Serialize};

use super::{de_count, span};
use crate::model::Span;

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

impl ScheduleConfig {
    /// The zone every time shown to people is in (logs, mails, alerts, the
    /// status page): `timezone` as the schedule reads it (a leading `:` of
    /// the `TZ` form allowed), UTC when it names none (a config that loaded
    /// has a valid one). One function, so no two places disagree.
    pub fn zone(&self) -> chrono_tz::Tz {
        crate::schedule::parse_zone(&self.timezone).unwrap_or(chrono_tz::Tz::UTC)
    }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::test_env as env;
    use crate::config::{resolve, Overrides};

    // covers: FR-17.4, FR-25.2
    #[test]
    fn every_time_shown_to_people_uses_the_schedule_s_zone_as_the_schedule_reads_it() {
        let with = |tz: &str| super::ScheduleConfig { timezone: tz.into(), ..Default::default() }.zone();
        assert_eq!(with("Asia/Bangkok"), chrono_tz::Tz::Asia__Bangkok);
        // The `TZ` form with a leading colon: the status page used to read it as UTC.
        assert_eq!(with(":Asia/Bangkok"), chrono_tz::Tz::Asia__Bangkok);
        assert_eq!(with("not/a zone"), chrono_tz::Tz::UTC);
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
}
