//! `[encryption]`: the age recipients every copy that leaves the host is
//! encrypted to (`crypt`).

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// age X25519 public keys (`age1…`); when set, everything that leaves
    /// the host is a `.tar.gz.age` encrypted to all of them.
    pub recipients: Vec<String>,
}

/// Checks that every recipient is an age X25519 public key; called by the
/// loader's validation.
pub fn validate(encryption: &EncryptionConfig) -> Result<(), ConfigError> {
    crate::crypt::parse_recipients(&encryption.recipients).map_err(ConfigError::Invalid)?;
    Ok(())
}
