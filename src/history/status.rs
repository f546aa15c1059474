//! The statuses the history records, typed. Each is stored in SQLite as the
//! same lower-case text lifeboat always wrote (`success`, `caught_up`, …), so
//! a history written by an older lifeboat reads the same and no stored value
//! is migrated; `--json`, the status page and `/metrics` show the same text.
//!
//! A stored text this lifeboat does not know (a file edited by hand, or
//! written by a newer lifeboat) is NOT mapped to a catch-all variant: reading
//! that row fails with [`UnknownStatus`], which names the column and the
//! value and says what to do. A guessed status could count a failure as a
//! success (or the reverse) for health and retention; a clear error cannot.
//! Nothing panics on such a row.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// A stored status that this lifeboat does not know (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus {
    /// The column, e.g. `runs.status`.
    pub column: &'static str,
    /// The stored text, cut to 40 characters (the file is not trusted).
    pub value: String,
}

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} holds {:?}, which this lifeboat never writes (was the file edited, or written by a newer \
             lifeboat?); upgrade lifeboat, or move the history file aside to start a new one",
            self.column, self.value
        )
    }
}

impl std::error::Error for UnknownStatus {}

/// One enum per status column: `as_str` (the stored text), `FromStr`,
/// `Display`, `Serialize` (as the text) and the SQLite conversions.
macro_rules! status {
    ($(#[$doc:meta])* $name:ident in $column:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The text stored in the history (and shown by `list`, the status page, `/metrics`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;

            fn from_str(s: &str) -> Result<Self, UnknownStatus> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownStatus { column: $column, value: s.chars().take(40).collect() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|e: UnknownStatus| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

status! {
    /// How a run stands (`runs.status`, spec 7.5).
    RunStatus in "runs.status" {
        /// Started, not ended (or its process died and no one has looked since).
        Running = "running",
        Success = "success",
        Failed = "failed",
        /// Stopped on purpose: SIGTERM after the grace period, Ctrl-C.
        Aborted = "aborted",
        /// Refused: another run held the store.
        Skipped = "skipped",
        /// Its process died (`kill -9`, a power cut), found by the next run (FR-20.3).
        Interrupted = "interrupted",
    }
}

impl RunStatus {
    /// The statuses of runs that count for health (FR-4.2, FR-20.1): a run
    /// that finished, well (`success`) or not (`failed`, or `interrupted`:
    /// its process died). A run stopped on purpose (`aborted`: SIGTERM,
    /// Ctrl-C) and a run refused because another one held the store
    /// (`skipped`) are neither failures nor successes: they open no
    /// incident, send no alert and `check` looks past them (they stay in
    /// `list` and on the status page). `running` has not ended. The one
    /// rule: `check`, `/healthz`, the monitor, `/metrics` and retention's
    /// "prune only after a success" all read it through
    /// [`History::latest_finished`](super::History::latest_finished).
    pub const HEALTH: [RunStatus; 3] = [RunStatus::Success, RunStatus::Failed, RunStatus::Interrupted];

    /// Whether a run with this status counts for health: see [`RunStatus::HEALTH`].
    pub fn counts_for_health(self) -> bool {
        RunStatus::HEALTH.contains(&self)
    }
}

status! {
    /// What became of a run's mail (`runs.delivery_status`).
    DeliveryStatus in "runs.delivery_status" {
        Delivered = "delivered",
        Failed = "failed",
        /// Not sent (`--no-deliver`, no `[email]`): no outcome.
        Skipped = "skipped",
    }
}

status! {
    /// Whether a run's archive has its offsite copy (`runs.offsite_status`, FR-29.4).
    OffsiteStatus in "runs.offsite_status" {
        /// This run uploaded it (or found it already there).
        Uploaded = "uploaded",
        /// A later run uploaded it as a catch-up.
        CaughtUp = "caught_up",
        Failed = "failed",
    }
}

status! {
    /// How the restore rehearsal of a run's archive ended (`runs.restore_test_status`).
    RehearsalStatus in "runs.restore_test_status" {
        Success = "success",
        Failed = "failed",
    }
}

status! {
    /// How one step of a run ended (`run_steps.status`).
    StepStatus in "run_steps.status" {
        Ok = "ok",
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-20.1
    #[test]
    fn every_status_round_trips_through_its_stored_text() {
        fn round_trip<T: FromStr<Err = UnknownStatus> + Copy + PartialEq + fmt::Debug + fmt::Display>(
            all: &[T],
            text: fn(T) -> &'static str,
        ) {
            for &s in all {
                assert_eq!(text(s).parse::<T>(), Ok(s));
                assert_eq!(s.to_string(), text(s));
            }
        }
        round_trip(RunStatus::ALL, RunStatus::as_str);
        round_trip(DeliveryStatus::ALL, DeliveryStatus::as_str);
        round_trip(OffsiteStatus::ALL, OffsiteStatus::as_str);
        round_trip(RehearsalStatus::ALL, RehearsalStatus::as_str);
        round_trip(StepStatus::ALL, StepStatus::as_str);
        // The texts older lifeboats wrote: stored values are never migrated.
        let runs: Vec<_> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(runs, ["running", "success", "failed", "aborted", "skipped", "interrupted"]);
        assert_eq!(OffsiteStatus::CaughtUp.as_str(), "caught_up");
        assert_eq!(serde_json::to_string(&OffsiteStatus::CaughtUp).unwrap(), "\"caught_up\"");
        assert_eq!(
            RunStatus::ALL.iter().filter(|s| s.counts_for_health()).copied().collect::<Vec<_>>(),
            RunStatus::HEALTH
        );
        assert!(!RunStatus::Aborted.counts_for_health() && !RunStatus::Skipped.counts_for_health());
    }

    #[test]
    fn an_unknown_text_is_an_error_naming_the_column_and_the_way_out() {
        let e = "Success".parse::<RunStatus>().unwrap_err();
        assert_eq!(e, UnknownStatus { column: "runs.status", value: "Success".into() });
        let long = format!("{}\n", "x".repeat(500));
        let e = long.parse::<OffsiteStatus>().unwrap_err().to_string();
        assert!(e.starts_with("runs.offsite_status holds \"xxxx") && e.contains("move the history file aside"), "{e}");
        assert!(e.len() < 300, "the stored text is cut: {e}");
    }
}
