//! The shared vocabulary of the engine: table names, backup modes,
//! humane durations and SQL quoting. Config, plan, closure and archive all speak it, and it
//! imports none of them, which keeps the arrows pointing one way
//! (no plan ↔ closure or config ↔ archive cycle).
//!
//! Durations ("3 months", "90 days", "30s") are written in the config.
//! A window's `keep` must become an SQL `interval` literal: a month is a
//! calendar month there, not 30 days, so the parsed value keeps its unit
//! instead of collapsing to seconds. Timeouts only need a `std::time::Duration`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

// ---- SQL quoting (PostgreSQL identifiers and literals)

/// `"name"` with embedded quotes doubled: safe for any identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `schema.table`, both parts quoted.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// `'text'` with embedded quotes doubled (standard_conforming_strings is on
/// in every supported server, and the session sets it explicitly).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// ---- durations

/// A number of calendar or clock units, e.g. 3 months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub amount: u32,
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Minutes => "minutes",
            Unit::Hours => "hours",
            Unit::Days => "days",
            Unit::Weeks => "weeks",
            Unit::Months => "months",
            Unit::Years => "years",
        }
    }
}

/// The longest duration accepted, in any unit. A window reaching further
/// back than this is before any timestamp an application holds (and soon
/// before PostgreSQL's earliest, 4713 BC, which fails the run); a timeout
/// this long is no timeout.
pub const MAX_YEARS: u64 = 1000;

/// Why a duration could not be read: the reason, then what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}; write a whole number and a unit, like \"90 days\", \"3 months\", \"1 year\" or \"30s\" (units: s, min, h, d, w, months, years)")]
pub struct ParseSpanError {
    input: String,
    reason: &'static str,
}

impl Span {
    /// Written with the bare unit `m` (minutes), e.g. `3m`: legal, but in a
    /// window it is far more often a month that was meant.
    pub fn is_terse_minutes(text: &str) -> bool {
        let Some(num) = text.trim().strip_suffix(['m', 'M']) else { return false };
        let num = num.trim_end();
        !num.is_empty() && num.chars().all(|c| c.is_ascii_digit())
    }
}

impl FromStr for Span {
    type Err = ParseSpanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseSpanError { input: s.to_string(), reason };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| err("the unit is missing"))?;
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(err("it does not start with a number"));
        }
        let amount: u32 = num.parse().map_err(|_| err("the number is too large"))?;
        let unit = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => Unit::Seconds,
            "m" | "min" | "mins" | "minute" | "minutes" => Unit::Minutes,
            "h" | "hour" | "hours" => Unit::Hours,
            "d" | "day" | "days" => Unit::Days,
            "w" | "week" | "weeks" => Unit::Weeks,
            "mon" | "month" | "months" => Unit::Months,
            "y" | "year" | "years" => Unit::Years,
            _ => return Err(err("unknown unit")),
        };
        if amount == 0 {
            return Err(err("it must be greater than zero"));
        }
        let span = Span { amount, unit };
        if span.approx_duration() > (Span { amount: MAX_YEARS as u32, unit: Unit::Years }).approx_duration() {
            return Err(err(
                "it is longer than 1000 years, the longest lifeboat accepts (to keep every row of a table, list it in scope.full)",
            ));
        }
        Ok(span)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "1 minute", "2 minutes": both are PostgreSQL interval syntax too.
        let name = self.unit.name();
        let name = if self.amount == 1 { name.strip_suffix('s').unwrap_or(name) } else { name };
        write!(f, "{} {name}", self.amount)
    }
}

impl Span {
    /// The PostgreSQL interval literal text, e.g. `3 months`. Safe to embed in
    /// a quoted literal: it is built from a number and a fixed unit word.
    pub fn sql_interval(&self) -> String {
        self.to_string()
    }

    /// Clock length; calendar units use their average length. Only for
    /// timeouts, never for windows (those go through `sql_interval`).
    pub fn approx_duration(&self) -> std::time::Duration {
        let secs: u64 = match self.unit {
            Unit::Seconds => 1,
            Unit::Minutes => 60,
            Unit::Hours => 3600,
            Unit::Days => 86_400,
            Unit::Weeks => 7 * 86_400,
            Unit::Months => 2_629_746,
            Unit::Years => 31_556_952,
        };
        std::time::Duration::from_secs(secs * u64::from(self.amount))
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How a table's rows are backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every row.
    Full,
    /// Rows whose time column is within the window (plus closure rows).
    Window,
    /// No rows (only closure rows); the table is recreated empty.
    Schema,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Full => "full",
            Mode::Window => "window",
            Mode::Schema => "schema",
        })
    }
}

/// The mode for tables the config does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DefaultMode {
    #[default]
    Full,
    Schema,
}

/// A table as written in the config: `table` (schema `public`) or
/// `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: &str, name: &str) -> Self {
        TableName { schema: schema.to_string(), name: name.to_string() }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

impl std::str::FromStr for TableName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (schema, name) = s.split_once('.').unwrap_or(("public", s));
        if schema.is_empty() || name.is_empty() {
            return Err(format!("invalid table name {s:?}: expected \"table\" or \"schema.table\""));
        }
        Ok(TableName::new(schema, name))
    }
}

impl<'de> Deserialize<'de> for TableName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for TableName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.schema == "public" {
            s.serialize_str(&self.name)
        } else {
            s.collect_str(self)
        }
    }
}

/// A foreign key, by names (the manifest's and the plan's form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FkPlan {
    pub name: String,
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub ref_schema: String,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
}

/// One megabyte as lifeboat counts it everywhere (settings, thresholds,
/// what people read): decimal, 1,000,000 bytes.
pub const MB: u64 = 1_000_000;

/// `512 B`, `1.5 MB`: every size shown to people (the CLI's reports, the
/// progress bar, mails, the status page, messages) comes from here, in
/// decimal units (1 KB = 1,000 B, 1 MB = 1,000,000 B, as `[email]
/// attach_limit_mb` and `[monitor] min_size_mb` count); `--json` has bytes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 999.95 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-24.8
    #[test]
    fn sizes_for_people_are_decimal() {
        let shown: Vec<String> = [999, 1_000, 350_600, 999_960, 3_400_000, 2_500_000_000].map(human_bytes).into();
        assert_eq!(shown, ["999 B", "1.0 KB", "350.6 KB", "1.0 MB", "3.4 MB", "2.5 GB"]);
    }

    // covers: FR-11.9, FR-2.2
    #[test]
    fn parses_humane_durations_keeping_calendar_units() {
        assert_eq!("3 months".parse::<Span>().unwrap().sql_interval(), "3 months");
        assert_eq!("90 days".parse::<Span>().unwrap().unit, Unit::Days);
        assert_eq!("30s".parse::<Span>().unwrap().approx_duration().as_secs(), 30);
        assert_eq!("1 year".parse::<Span>().unwrap().unit, Unit::Years);
        assert_eq!("2 weeks".parse::<Span>().unwrap().approx_duration().as_secs(), 14 * 86_400);
    }

    // covers: FR-11.9, FR-11.2
    #[test]
    fn rejects_bad_durations_with_the_accepted_forms() {
        for bad in ["", "3", "months", "3 fortnights", "-3 days", "0 days", "3 months; drop", "99999999999 days"] {
            let e = bad.parse::<Span>().unwrap_err().to_string();
            assert!(e.contains("90 days"), "{bad}: {e}");
        }
    }

    // covers: FR-11.9, FR-11.2
    #[test]
    fn a_bad_duration_says_what_is_wrong_with_it() {
        let reason = |s: &str| s.parse::<Span>().unwrap_err().to_string();
        assert!(reason("0 days").contains("greater than zero"), "{}", reason("0 days"));
        assert!(reason("99999999999 days").contains("too large"), "{}", reason("99999999999 days"));
        assert!(reason("3 fortnights").contains("unknown unit"), "{}", reason("3 fortnights"));
        assert!(reason("3").contains("unit is missing"), "{}", reason("3"));
        assert!(reason("days").contains("number"), "{}", reason("days"));
        for too_long in ["1001 years", "1000000 years", "12013 months", "4294967295 weeks"] {
            assert!(reason(too_long).contains("1000 years"), "{too_long}: {}", reason(too_long));
        }
        assert_eq!("1000 years".parse::<Span>().unwrap().unit, Unit::Years);
        assert_eq!("12000 months".parse::<Span>().unwrap().amount, 12000);
    }

    // covers: FR-11.9
    #[test]
    fn only_a_bare_m_counts_as_terse_minutes() {
        for terse in ["3m", "3 m", " 10M ", "3  m"] {
            assert!(Span::is_terse_minutes(terse), "{terse}");
        }
        for spelt in ["3 min", "3 minutes", "3 months", "3mon", "m", "3", "3 ms", "-3m"] {
            assert!(!Span::is_terse_minutes(spelt), "{spelt}");
        }
    }
}
