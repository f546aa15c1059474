//! `[log]`: where the daemon and the state-changing commands log (FR-25).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::de_count;

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
