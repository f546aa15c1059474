//! `[links]` (signed download links), `[http]` (where `lifeboat serve`
//! listens, the separate metrics listener, basic auth, the connection
//! limits) and `[encryption]`
//! (age recipients): the sections the HTTP service and the delivery share.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};
use crate::model::Span;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Where administrators download from, e.g. `https://hub.example.com/backups`
    /// (a reverse proxy forwards that path to `lifeboat serve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The HMAC key's file; unset: a key generated once in the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// How long a link stays valid.
    pub ttl: Span,
}

impl Default for LinksConfig {
    fn default() -> Self {
        LinksConfig { public_url: None, secret_file: None, ttl: "7 days".parse().expect("valid") }
    }
}

impl LinksConfig {
    /// The path of `public_url` without a trailing `/` (`/backups`, or
    /// empty for the root): the prefix the download route is mounted at.
    pub fn path_prefix(&self) -> Result<String, ConfigError> {
        let Some(url) = &self.public_url else {
            return Err(ConfigError::Invalid(
                "links.public_url is not set; set it to the address administrators download from \
                 (e.g. https://hub.example.com/backups)"
                    .into(),
            ));
        };
        url_path(url)
    }
}

fn url_path(url: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| {
        ConfigError::Invalid(format!("links.public_url {url:?} {why}; expected e.g. https://hub.example.com/backups"))
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("is not an http(s) URL"))?;
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let host = &rest[..rest.len() - path.len()];
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if path.contains(['?', '#', '{', '}']) || path.split('/').any(|s| s == ".." || s == ".") {
        return Err(bad("must be a plain path (no query, fragment, '..' or braces)"));
    }
    Ok(path.trim_end_matches('/').to_string())
}

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
    /// Read into `basic_auth_password` by `finish_http`; always `None` afterwards.
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
pub(super) fn finish_http(http: &mut HttpConfig) -> Result<(), ConfigError> {
    if let Some(p) = http.basic_auth_password_file.take() {
        http.basic_auth_password = Some(super::secret::read_secret_file(&p, "http.basic_auth_password_file")?);
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// age X25519 public keys (`age1…`); when set, everything that leaves
    /// the host is a `.tar.gz.age` encrypted to all of them.
    pub recipients: Vec<String>,
}

/// Checks the sections; called by the loader's validation.
pub fn validate(links: &LinksConfig, encryption: &EncryptionConfig) -> Result<(), ConfigError> {
    if let Some(url) = &links.public_url {
        url_path(url)?;
    }
    crate::crypt::parse_recipients(&encryption.recipients).map_err(ConfigError::Invalid)?;
    Ok(())
}

/// What looks wrong in `[links]` without being an error (SC-6.2).
pub fn warnings(links: &LinksConfig) -> Vec<String> {
    match &links.public_url {
        Some(url) if url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")) => vec![format!(
            "links.public_url {url:?} is plain http: download links, and the archives they fetch, cross the \
             network unencrypted; use an https:// address (a TLS reverse proxy in front of lifeboat)"
        )],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: SC-6.2
    #[test]
    fn a_plain_http_public_url_is_warned_about_and_https_is_not() {
        let links = |u: &str| LinksConfig { public_url: Some(u.into()), ..LinksConfig::default() };
        let w = warnings(&links("HTTP://hub.example.com/backups"));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("plain http") && w[0].contains("use an https:// address"), "{w:?}");
        assert!(warnings(&links("https://hub.example.com/backups")).is_empty());
        assert!(warnings(&LinksConfig::default()).is_empty());
    }

    // covers: FR-18.1
    #[test]
    fn the_route_prefix_is_the_public_urls_path() {
        for (url, path) in [
            ("https://hub.example.com/backups", "/backups"),
            ("https://hub.example.com/backups/", "/backups"),
            ("http://10.0.0.5:8080", ""),
            ("https://h/a/b/", "/a/b"),
        ] {
            assert_eq!(url_path(url).unwrap(), path, "{url}");
        }
        for bad in [
            "ftp://h/x",
            "hub.example.com/backups",
            "https:///x",
            "https://h/x?y=1",
            "https://h/../x",
            "https://h/{name}",
        ] {
            assert!(url_path(bad).is_err(), "{bad}");
        }
        assert!(LinksConfig::default().path_prefix().unwrap_err().to_string().contains("links.public_url is not set"));
    }

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
