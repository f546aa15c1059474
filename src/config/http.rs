//! `[http]`: where `lifeboat serve` and the daemon listen, the separate
//! metrics listener, basic auth for the status page and `/metrics`, and
//! the connection limits (FR-17).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::read_secret_file;
use super::{ConfigError, Secret};
use crate::model::Span;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` that `lifeboat serve` binds.
    pub listen: String,
    /// A second `host:port` that alone serves `/metrics` (FR-17.1), so a
    /// public listener never shows them by accident.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Basic auth for the status page and `/metrics` (not `/healthz`, which
    /// Docker's HEALTHCHECK calls, nor the download route, which the
    /// link's signature guards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth_user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth_password: Option<Secret>,
    /// Read into `basic_auth_password` when the config is loaded; always `None` afterwards.
    #[serde(skip_serializing)]
    pub basic_auth_password_file: Option<PathBuf>,
    /// At most this many connections at once, over both listeners (FR-17.6);
    /// the daemon lowers it further so descriptors stay in reserve for a run.
    pub max_connections: u32,
    /// A connection must send a whole request head within this, the first
    /// one and each next one on a kept-alive connection (FR-17.6).
    pub header_read_timeout: Span,
    /// A response the client takes no byte of for this long ends its
    /// connection (FR-17.6).
    pub idle_timeout: Span,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            metrics_listen: None,
            basic_auth_user: None,
            basic_auth_password: None,
            basic_auth_password_file: None,
            max_connections: 256,
            header_read_timeout: "10s".parse().expect("valid"),
            idle_timeout: "60s".parse().expect("valid"),
        }
    }
}

impl HttpConfig {
    /// The basic-auth credentials, when both are set.
    pub fn basic_auth(&self) -> Option<(&str, &Secret)> {
        Some((self.basic_auth_user.as_deref()?, self.basic_auth_password.as_ref()?))
    }
}

/// Reads `basic_auth_password_file` and checks that user and password come together.
pub(super) fn finish(http: &mut HttpConfig) -> Result<(), ConfigError> {
    if let Some(p) = http.basic_auth_password_file.take() {
        http.basic_auth_password = Some(read_secret_file(&p, "http.basic_auth_password_file")?);
    }
    if http.max_connections == 0 {
        return Err(ConfigError::Invalid(
            "[http] max_connections must be at least 1 (default 256): with 0 nothing could connect".into(),
        ));
    }
    match (&http.basic_auth_user, &http.basic_auth_password) {
        (Some(u), Some(_)) if u.is_empty() || u.contains(':') => {
            Err(ConfigError::Invalid("[http] basic_auth_user must be non-empty and must not contain ':'".into()))
        }
        (Some(_), None) | (None, Some(_)) => Err(ConfigError::Invalid(
            "[http] basic auth needs both basic_auth_user and basic_auth_password (or basic_auth_password_file); \
             set both or neither"
                .into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    // covers: FR-17.4, SC-2.4
    #[test]
    fn basic_auth_needs_user_and_password_and_reads_the_password_file() {
        let resolve = |text: &str| {
            crate::config::resolve(
                Some((std::path::Path::new("/x/lifeboat.toml"), text)),
                &Default::default(),
                &Default::default(),
            )
        };
        let c = resolve("[http]\nbasic_auth_user = \"ops\"\nbasic_auth_password = \"pw-71c3\"\n").unwrap();
        let (user, pw) = c.http.basic_auth().unwrap();
        assert_eq!((user, pw.expose()), ("ops", "pw-71c3"));
        assert!(!format!("{:?} {}", c.http, toml::to_string(&c.http).unwrap()).contains("pw-71c3"));
        for half in ["basic_auth_user = \"ops\"", "basic_auth_password = \"pw\""] {
            let err = resolve(&format!("[http]\n{half}\n")).unwrap_err().to_string();
            assert!(err.contains("needs both basic_auth_user and basic_auth_password"), "{err}");
        }
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("pw");
        std::fs::write(&file, "from-file-9a\n").unwrap();
        let text = format!("[http]\nbasic_auth_user = \"ops\"\nbasic_auth_password_file = {:?}\n", file);
        let c = resolve(&text).unwrap();
        assert_eq!(c.http.basic_auth().unwrap().1.expose(), "from-file-9a");
        assert!(c.http.basic_auth_password_file.is_none());
        let both = format!("{text}basic_auth_password = \"x\"\n");
        assert!(resolve(&both)
            .unwrap_err()
            .to_string()
            .contains("sets both basic_auth_password and basic_auth_password_file"));
    }
}
