//! `[alerts]`: the alert channels besides mail, a JSON webhook and a
//! healthchecks.io-style ping URL. Both URLs are secrets and have a
//! `*_file` form; [`finish`] reads those files and checks the section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::read_secret_file;
use super::{ConfigError, Secret};
use crate::model::Span;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Receives a JSON POST per alert. A secret: whoever knows a chat
    /// webhook can post to the channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<Secret>,
    #[serde(skip_serializing)]
    pub webhook_url_file: Option<PathBuf>,
    /// healthchecks.io style: `<ping_url>/start`, `<ping_url>`, `<ping_url>/fail`.
    /// A secret for the same reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_url: Option<Secret>,
    #[serde(skip_serializing)]
    pub ping_url_file: Option<PathBuf>,
    /// Limit of each webhook or ping request.
    pub timeout: Span,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            webhook_url: None,
            webhook_url_file: None,
            ping_url: None,
            ping_url_file: None,
            timeout: "10s".parse().expect("valid"),
        }
    }
}

/// Reads the `*_file` secrets and checks the merged section.
pub(super) fn finish(alerts: &mut AlertsConfig) -> Result<(), ConfigError> {
    if let Some(p) = alerts.webhook_url_file.take() {
        alerts.webhook_url = Some(read_secret_file(&p, "alerts.webhook_url_file")?);
    }
    if let Some(p) = alerts.ping_url_file.take() {
        alerts.ping_url = Some(read_secret_file(&p, "alerts.ping_url_file")?);
    }
    for (name, url) in [("webhook_url", &alerts.webhook_url), ("ping_url", &alerts.ping_url)] {
        if let Some(u) = url {
            let u = u.expose();
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                // The value is a secret: name the key, never quote it.
                return Err(ConfigError::Invalid(format!("[alerts] {name} must be an http:// or https:// URL")));
            }
        }
    }
    Ok(())
}
