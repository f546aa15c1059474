//! When the daemon runs (FR-1.2, FR-1.3): a cron expression (5 fields, or
//! `@yearly`/`@monthly`/`@weekly`/`@daily`/`@hourly`) in an IANA time zone
//! → the next fire time after an instant, and the most recent due time at
//! or before one (for catch-up, FR-1.4). Pure: no clock, no I/O.
//!
//! The calendar work is croner's and the zone rules chrono-tz's. croner
//! treats a pattern with fixed minute and hour as a fixed-time job, which
//! gives FR-1.3's DST rules: a local time that does not exist
//! (spring-forward) fires once at the first instant after the gap, and a
//! local time that happens twice (fall-back) fires once, at the first.
//! The tests below pin that on real zone data.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
    text: String,
}

impl Schedule {
    /// `cron` in `zone` (an IANA name such as `Asia/Bangkok`). The error
    /// names the value and what is expected.
    pub fn parse(cron: &str, zone: &str) -> Result<Schedule, String> {
        let zone = parse_zone(zone)?;
        let text = cron.trim();
        let parsed =
            CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build().parse(text).map_err(
                |e| {
                    format!(
                        "schedule.cron {text:?} is not a valid cron expression ({e}); expected 5 fields \
                     \"minute hour day-of-month month day-of-week\" such as \"0 2 * * *\", or @daily, @hourly, \
                     @weekly, @monthly, @yearly"
                    )
                },
            )?;
        Ok(Schedule { cron: parsed, zone, text: text.to_string() })
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The expression as written (trimmed).
    pub fn cron(&self) -> &str {
        &self.text
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.zone);
        self.cron.find_next_occurrence(&local, false).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The most recent fire time at or before `t` (the slot a catch-up
    /// looks at), or `None` when the expression never fired before `t`.
    pub fn previous_due(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.zone);
        self.cron.find_previous_occurrence(&local, true).ok().map(|d| d.with_timezone(&Utc))
    }
}

/// An IANA zone name; `:Asia/Bangkok` (glibc's TZ form) is accepted too.
pub fn parse_zone(zone: &str) -> Result<Tz, String> {
    let name = zone.trim().trim_start_matches(':');
    Tz::from_str(name).map_err(|_| {
        format!(
            "schedule.timezone {zone:?} is not an IANA time zone name; use one such as \"Asia/Bangkok\", \
             \"Europe/Berlin\" or \"UTC\""
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn next(s: &Schedule, t: &str) -> String {
        s.next_after(utc(t)).unwrap().to_rfc3339()
    }

    // covers: FR-1.1, FR-1.2
    #[test]
    fn daily_at_two_in_bangkok_and_the_nicknames() {
        let s = Schedule::parse("0 2 * * *", "Asia/Bangkok").unwrap();
        // 02:00 in Bangkok (UTC+7) is 19:00 UTC the day before.
        assert_eq!(next(&s, "2026-12-01T12:00:00Z"), "2026-12-01T19:00:00+00:00");
        assert_eq!(next(&s, "2026-12-01T19:00:00Z"), "2026-12-02T19:00:00+00:00", "strictly after");
        assert_eq!(s.previous_due(utc("2026-12-01T19:00:00Z")).unwrap().to_rfc3339(), "2026-12-01T19:00:00+00:00");
        assert_eq!(s.previous_due(utc("2026-12-01T18:59:59Z")).unwrap().to_rfc3339(), "2026-11-30T19:00:00+00:00");

        let h = Schedule::parse("@hourly", "UTC").unwrap();
        assert_eq!(next(&h, "2026-12-01T12:34:56Z"), "2026-12-01T13:00:00+00:00");
        let d = Schedule::parse("@daily", ":Europe/Berlin").unwrap();
        assert_eq!(next(&d, "2026-12-01T12:00:00Z"), "2026-12-01T23:00:00+00:00");
        let w = Schedule::parse("@weekly", "UTC").unwrap();
        assert_eq!(next(&w, "2026-12-01T12:00:00Z"), "2026-12-06T00:00:00+00:00", "Sunday midnight");
        assert!(Schedule::parse("@monthly", "UTC").is_ok() && Schedule::parse("@yearly", "UTC").is_ok());
    }

    // covers: FR-1.2
    #[test]
    fn a_bad_cron_or_zone_names_the_value() {
        for bad in ["0 2 * *", "61 2 * * *", "0 2 * * * *", "every night", ""] {
            let e = Schedule::parse(bad, "UTC").unwrap_err();
            assert!(e.contains(&format!("{:?}", bad.trim())) && e.contains("5 fields"), "{bad}: {e}");
        }
        let e = Schedule::parse("0 2 * * *", "Asia/Bangkk").unwrap_err();
        assert!(e.contains("\"Asia/Bangkk\"") && e.contains("IANA"), "{e}");
    }

    // covers: FR-1.3, TS-1.5
    #[test]
    fn spring_forward_fires_once_at_the_first_instant_after_the_gap() {
        // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
        let s = Schedule::parse("30 2 * * *", "America/New_York").unwrap();
        assert_eq!(next(&s, "2026-03-07T08:00:00Z"), "2026-03-08T07:00:00+00:00", "03:00 EDT, once");
        assert_eq!(next(&s, "2026-03-08T07:00:00Z"), "2026-03-09T06:30:00+00:00", "then 02:30 EDT again");
        // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        let b = Schedule::parse("0 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(next(&b, "2026-03-28T12:00:00Z"), "2026-03-29T01:00:00+00:00", "03:00 CEST");
        assert_eq!(next(&b, "2026-03-29T01:00:00Z"), "2026-03-30T00:00:00+00:00");
        assert_eq!(b.previous_due(utc("2026-03-29T05:00:00Z")).unwrap().to_rfc3339(), "2026-03-29T01:00:00+00:00");
    }

    // covers: FR-1.3, TS-1.5
    #[test]
    fn fall_back_fires_once_at_the_first_occurrence() {
        // New York, 2026-11-01: 01:00-02:00 happens twice (EDT, then EST).
        let s = Schedule::parse("30 1 * * *", "America/New_York").unwrap();
        let first = next(&s, "2026-10-31T12:00:00Z");
        assert_eq!(first, "2026-11-01T05:30:00+00:00", "01:30 EDT");
        assert_eq!(next(&s, &first), "2026-11-02T06:30:00+00:00", "not 01:30 EST the same night");
        assert_eq!(s.previous_due(utc("2026-11-01T07:00:00Z")).unwrap().to_rfc3339(), first);
        // Berlin, 2026-10-25: 02:00-03:00 happens twice.
        let b = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let first = next(&b, "2026-10-24T12:00:00Z");
        assert_eq!(first, "2026-10-25T00:30:00+00:00", "02:30 CEST");
        assert_eq!(next(&b, &first), "2026-10-26T01:30:00+00:00");
    }
}
