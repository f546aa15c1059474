//! `[monitor]`: what `check` calls unhealthy (FR-4.2), how often an open
//! incident re-alerts (FR-4.6) and how often the daemon looks.

use serde::{Deserialize, Serialize};

use super::{de_count, span};
use crate::model::Span;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// The last success may be at most this old.
    #[serde(deserialize_with = "de_count")]
    pub max_age_hours: u32,
    /// The last archive must be at least this big (MB of 1,000,000 bytes; 0 = no lower bound).
    #[serde(deserialize_with = "de_count")]
    pub min_size_mb: u32,
    /// … and at most this big (MB).
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
