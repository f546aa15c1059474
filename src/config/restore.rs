//! `[restore]`: restoring on a host that is not the one that made the
//! backups (the signing keys it trusts).

use serde::{Deserialize, Serialize};

use super::ConfigError;

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
pub(super) fn finish(r: &RestoreConfig) -> Result<(), ConfigError> {
    for (i, entry) in r.trusted_keys.iter().enumerate() {
        crate::archive::signature::TrustedKey::from_entry(entry, &format!("[restore] trusted_keys entry {}", i + 1))
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    }
    Ok(())
}
