//! `[alerts]`: the alert channels besides mail: a JSON webhook, a
//! healthchecks.io-style ping URL and the chat channels (Slack, Discord,
//! Telegram, ntfy; [`super::chat_url`]). Every URL is a secret and has a
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
    /// Chat channels (`super::chat_url`, posted by `crate::monitor::chat`): a Slack or Discord incoming
    /// webhook, a Telegram bot (`telegram://TOKEN@telegram?chats=…`), an
    /// ntfy topic. Secrets: their tokens post to the channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack_url: Option<Secret>,
    #[serde(skip_serializing)]
    pub slack_url_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discord_url: Option<Secret>,
    #[serde(skip_serializing)]
    pub discord_url_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram_url: Option<Secret>,
    #[serde(skip_serializing)]
    pub telegram_url_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ntfy_url: Option<Secret>,
    #[serde(skip_serializing)]
    pub ntfy_url_file: Option<PathBuf>,
    /// Limit of each webhook, chat or ping request.
    pub timeout: Span,
}

impl AlertsConfig {
    /// The chat channels set, with their URLs (checked when the config loaded).
    pub fn chats(&self) -> impl Iterator<Item = (super::chat_url::Service, &Secret)> {
        use super::chat_url::Service;
        [
            (Service::Slack, &self.slack_url),
            (Service::Discord, &self.discord_url),
            (Service::Telegram, &self.telegram_url),
            (Service::Ntfy, &self.ntfy_url),
        ]
        .into_iter()
        .filter_map(|(s, u)| u.as_ref().map(|u| (s, u)))
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            webhook_url: None,
            webhook_url_file: None,
            ping_url: None,
            ping_url_file: None,
            slack_url: None,
            slack_url_file: None,
            discord_url: None,
            discord_url_file: None,
            telegram_url: None,
            telegram_url_file: None,
            ntfy_url: None,
            ntfy_url_file: None,
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
    for (url, file, key) in [
        (&mut alerts.slack_url, &mut alerts.slack_url_file, "alerts.slack_url_file"),
        (&mut alerts.discord_url, &mut alerts.discord_url_file, "alerts.discord_url_file"),
        (&mut alerts.telegram_url, &mut alerts.telegram_url_file, "alerts.telegram_url_file"),
        (&mut alerts.ntfy_url, &mut alerts.ntfy_url_file, "alerts.ntfy_url_file"),
    ] {
        if let Some(p) = file.take() {
            *url = Some(read_secret_file(&p, key)?);
        }
    }
    for (service, url) in alerts.chats() {
        super::chat_url::parse(service, url.expose()).map_err(ConfigError::Invalid)?;
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
