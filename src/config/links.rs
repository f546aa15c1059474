//! `[links]`: signed download links (where administrators download from,
//! the key, how long a link stays valid), shared by the delivery and the
//! HTTP service's download route.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
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

/// Checks the section; called by the loader's validation.
pub fn validate(links: &LinksConfig) -> Result<(), ConfigError> {
    if let Some(url) = &links.public_url {
        url_path(url)?;
    }
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
}
