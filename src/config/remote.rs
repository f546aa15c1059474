//! `[remote]`: the offsite copy on S3-compatible object storage (AWS S3,
//! MinIO, SeaweedFS, R2, B2). The standard `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` (each with `*_FILE`), `AWS_REGION` and
//! `AWS_ENDPOINT_URL` fill it from the environment, below
//! `LIFEBOAT_REMOTE__*`. The keys are [`Secret`]s: `lifeboat config` shows
//! `***`, and [`RemoteConfig::credentials_source`] says where they came from
//! without showing them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::read_secret_file;
use super::{de_count, ConfigError, RetentionConfig, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteConfig {
    /// `s3://bucket/prefix/`; unset: no offsite copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The store's address, e.g. `https://s3.eu-central-1.amazonaws.com`
    /// or `http://minio:9000`; unset: AWS for `region`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<Secret>,
    #[serde(skip_serializing)]
    pub access_key_id_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    #[serde(skip_serializing)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Remote copies older than this many days go (the offsite copy may be
    /// kept longer than the local one).
    #[serde(deserialize_with = "de_count")]
    pub retention_days: u32,
    /// The newest this many good remote copies stay whatever their age.
    #[serde(deserialize_with = "de_count")]
    pub keep_last: u32,
    /// Multipart upload part size (MiB, 5–5120): the memory an upload holds at once.
    #[serde(deserialize_with = "de_count")]
    pub part_size_mb: u32,
    /// Where the keys came from (a key name or variable, never the value). Not a key.
    #[serde(skip_deserializing, skip_serializing_if = "String::is_empty")]
    pub credentials_source: String,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            url: None,
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            access_key_id_file: None,
            secret_access_key: None,
            secret_access_key_file: None,
            retention_days: 90,
            keep_last: 7,
            part_size_mb: 8,
            credentials_source: String::new(),
        }
    }
}

/// `s3://bucket/prefix/` split, the prefix without slashes at either end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub bucket: String,
    pub prefix: String,
}

impl RemoteUrl {
    pub fn parse(url: &str) -> Result<RemoteUrl, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            format!("{url:?} is not an s3:// URL; expected s3://bucket/prefix/ (e.g. s3://my-backups/lifeboat/)")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = bucket.len() >= 3
            && bucket.len() <= 63
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid {
            return Err(format!(
                "{url:?}: bucket {bucket:?} is not a valid bucket name (3-63 characters: a-z, 0-9, '-', '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|s| s == ".." || s == "." || (s.is_empty() && !prefix.is_empty())) {
            return Err(format!("{url:?}: the prefix {prefix:?} has an empty, '.' or '..' segment"));
        }
        Ok(RemoteUrl { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }

    /// `s3://bucket/prefix/name`.
    pub fn object_url(&self, name: &str) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}/{name}", self.bucket),
            p => format!("s3://{}/{p}/{name}", self.bucket),
        }
    }
}

impl RemoteConfig {
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// The parsed `url` (checked by the loader, so only `None` when unset).
    pub fn location(&self) -> Option<RemoteUrl> {
        self.url.as_deref().and_then(|u| RemoteUrl::parse(u).ok())
    }

    /// The remote retention policy: `retention_days` and `keep_last`, no GFS.
    pub fn retention(&self) -> RetentionConfig {
        RetentionConfig {
            retention_days: self.retention_days,
            keep_last: self.keep_last,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
        }
    }

    /// The endpoint as messages name it.
    pub fn display_endpoint(&self) -> String {
        self.endpoint.clone().unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", self.region))
    }
}

/// The standard AWS variables as a `[remote]` table, below `LIFEBOAT_REMOTE__*`.
pub(super) fn deployment_env(
    env: &BTreeMap<String, String>,
    secret: impl Fn(&str) -> Result<Option<String>, ConfigError>,
) -> Result<toml::Table, ConfigError> {
    let mut t = toml::Table::new();
    for (var, key) in [("AWS_REGION", "region"), ("AWS_ENDPOINT_URL", "endpoint")] {
        if let Some(v) = env.get(var).filter(|v| !v.trim().is_empty()) {
            t.insert(key.into(), toml::Value::String(v.trim().to_string()));
        }
    }
    for (var, key) in [("AWS_ACCESS_KEY_ID", "access_key_id"), ("AWS_SECRET_ACCESS_KEY", "secret_access_key")] {
        if let Some(v) = secret(var)? {
            t.insert(key.into(), toml::Value::String(v));
        }
    }
    Ok(t)
}

/// Reads the `*_file` keys, checks the section and notes where the keys
/// came from: `file` is the config file's `[remote]` table, if any.
pub(super) fn finish(
    remote: &mut RemoteConfig,
    env: &BTreeMap<String, String>,
    file: Option<&toml::Table>,
) -> Result<(), ConfigError> {
    let from_file = |key: &str| file.is_some_and(|t| t.contains_key(key));
    let source = if env.contains_key("LIFEBOAT_REMOTE__ACCESS_KEY_ID_FILE") {
        "LIFEBOAT_REMOTE__ACCESS_KEY_ID_FILE".to_string()
    } else if env.contains_key("LIFEBOAT_REMOTE__ACCESS_KEY_ID") {
        "LIFEBOAT_REMOTE__ACCESS_KEY_ID".to_string()
    } else if env.contains_key("AWS_ACCESS_KEY_ID_FILE") {
        "AWS_ACCESS_KEY_ID_FILE / AWS_SECRET_ACCESS_KEY_FILE".to_string()
    } else if env.contains_key("AWS_ACCESS_KEY_ID") {
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY".to_string()
    } else if let Some(p) = &remote.access_key_id_file {
        format!("the config file's [remote] access_key_id_file ({})", p.display())
    } else if from_file("access_key_id") {
        "the config file's [remote] access_key_id".to_string()
    } else {
        "none: anonymous requests".to_string()
    };
    if let Some(p) = remote.access_key_id_file.take() {
        remote.access_key_id = Some(read_secret_file(&p, "remote.access_key_id_file")?);
    }
    if let Some(p) = remote.secret_access_key_file.take() {
        remote.secret_access_key = Some(read_secret_file(&p, "remote.secret_access_key_file")?);
    }
    let Some(url) = &remote.url else { return Ok(()) };
    RemoteUrl::parse(url).map_err(|m| ConfigError::Invalid(format!("[remote] url {m}")))?;
    if remote.access_key_id.is_some() != remote.secret_access_key.is_some() {
        return Err(ConfigError::Invalid(
            "[remote] has only one of access_key_id and secret_access_key; set both (or AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY) or neither"
                .into(),
        ));
    }
    if let Some(e) = &remote.endpoint {
        if !(e.starts_with("https://") || e.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!(
                "[remote] endpoint {e:?} is not an http(s) URL; expected e.g. https://s3.eu-central-1.amazonaws.com"
            )));
        }
    }
    if remote.keep_last == 0 {
        return Err(ConfigError::Invalid("[remote] keep_last must be at least 1".into()));
    }
    if !(5..=5 * 1024).contains(&remote.part_size_mb) {
        return Err(ConfigError::Invalid(
            "[remote] part_size_mb must be between 5 (the smallest S3 part) and 5120 (the largest)".into(),
        ));
    }
    remote.credentials_source = source;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::RemoteUrl;
    use crate::config::{resolve, Overrides};

    use crate::config::test_env as env;

    // covers: FR-29.1
    #[test]
    fn remote_urls_split_into_bucket_and_prefix() {
        let u = RemoteUrl::parse("s3://smart-ai-hub-backups/lifeboat/").unwrap();
        assert_eq!(u, RemoteUrl { bucket: "smart-ai-hub-backups".into(), prefix: "lifeboat".into() });
        assert_eq!(u.object_url("a.tar.gz"), "s3://smart-ai-hub-backups/lifeboat/a.tar.gz");
        assert_eq!(RemoteUrl::parse("s3://bkt").unwrap().object_url("a"), "s3://bkt/a");
        for bad in ["https://x/y", "s3://A_B/", "s3://bk/../x", "s3://bk/a//b"] {
            assert!(RemoteUrl::parse(bad).is_err(), "{bad}");
        }
    }

    // covers: FR-29.1, NFR-2.5
    #[test]
    fn aws_variables_fill_remote_and_the_keys_stay_hidden() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("secret");
        std::fs::write(&key, "file-s3-secret\n").unwrap();
        let file = "[remote]\nurl = \"s3://bkt/lb/\"\nkeep_last = 3\n";
        let c = resolve(
            Some((std::path::Path::new("x.toml"), file)),
            &env(&[
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY_FILE", key.to_str().unwrap()),
                ("AWS_REGION", "eu-central-1"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        let r = &c.remote;
        assert_eq!(r.secret_access_key.as_ref().unwrap().expose(), "file-s3-secret");
        assert_eq!(r.access_key_id.as_ref().unwrap().expose(), "AKIDEXAMPLE");
        assert_eq!((r.region.as_str(), r.endpoint.as_deref()), ("eu-central-1", Some("http://127.0.0.1:9000")));
        assert_eq!((r.keep_last, r.retention_days), (3, 90));
        assert_eq!(r.credentials_source, "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY");
        let shown = format!("{:?} {}", c, toml::to_string(&c).unwrap());
        assert!(!shown.contains("file-s3-secret") && !shown.contains("AKIDEXAMPLE"), "{shown}");

        let err = resolve(
            None,
            &env(&[("AWS_SECRET_ACCESS_KEY", "a"), ("AWS_SECRET_ACCESS_KEY_FILE", "/x")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY and AWS_SECRET_ACCESS_KEY_FILE"), "{err}");
        let err = resolve(
            Some((std::path::Path::new("x.toml"), "[remote]\nurl = \"s3://bkt\"\naccess_key_id = \"only-one\"\n")),
            &BTreeMap::new(),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("only one of access_key_id and secret_access_key") && !err.contains("only-one"), "{err}");
    }
}
