//! Secrets: the [`Secret`] type that never shows its value, and reading a
//! secret from a file (`password_file`, `*_FILE`, Docker secrets).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// A value that must never be shown: `Debug`, `Display` and `Serialize` all
/// print `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub(super) String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Docker secrets and similar files end with a newline that is not part of
/// the secret.
pub(super) fn read_secret_file(path: &Path, origin: &str) -> Result<Secret, ConfigError> {
    let s = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        origin: origin.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Secret(s.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&s).to_string()))
}
