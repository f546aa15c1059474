//! The configuration structs: one TOML file, environment variables and flags,
//! merged with the precedence flags > env > file > defaults in [`resolve`]
//! (`load.rs`, the only place that knows it). `env.rs` maps the environment,
//! `url.rs` parses and expands database URLs, `secret.rs` holds [`Secret`]
//! and reads `*_file` / `*_FILE` secrets.
//!
//! Every layer is first checked on its own against the same serde struct with
//! `deny_unknown_fields`, so a typo in the file is reported with file, line and
//! the valid keys, and a typo in a `LIFEBOAT_*` variable names the variable.
//! The layers are then merged as TOML tables and deserialized once.
//!
//! Within the environment layer lifeboat's own names win, then the backup's
//! over the application's: `LIFEBOAT_<SECTION>__<KEY>`, then
//! `BACKUP_DATABASE_URL`, then `POSTGRES_*`, then `DATABASE_URL` (the
//! application's, in a shared env file), then libpq's `PG*`.
//! A database URL expands into host/port/name/user/password at its own layer;
//! keys set explicitly in the same layer win over the URL's parts. `password`
//! and `password_file` are one setting: a layer that sets either replaces both.

mod alerts;
pub mod chat_url;
mod email;
mod encryption;
mod env;
mod http;
mod layer;
mod links;
mod load;
mod log;
mod monitor;
mod pgpass;
mod remote;
mod restore;
mod retention;
mod schedule;
mod secret;
mod url;
mod verify;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::error::ConfigError;
pub use alerts::AlertsConfig;
pub use email::{EmailConfig, SmtpTls};
pub use encryption::EncryptionConfig;
pub use http::HttpConfig;
pub use links::LinksConfig;
pub use load::{load, resolve};
pub use log::{LogConfig, LogFormat};
pub use monitor::MonitorConfig;
pub use remote::{RemoteConfig, RemoteUrl};
pub use restore::RestoreConfig;
pub use retention::RetentionConfig;
pub use schedule::ScheduleConfig;
pub use secret::Secret;
pub use url::{parse_database_url, parse_target_url, pgconnect_timeout, target_password, url_has_password, Target};
pub use verify::VerifyConfig;

use crate::model::{DefaultMode, Span, TableName};

/// An environment for the config tests, from `(name, value)` pairs.
#[cfg(test)]
pub(crate) fn test_env(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub scope: ScopeConfig,
    pub files: FilesConfig,
    pub storage: StorageConfig,
    pub email: EmailConfig,
    pub alerts: AlertsConfig,
    pub links: LinksConfig,
    pub http: HttpConfig,
    pub encryption: EncryptionConfig,
    pub retention: RetentionConfig,
    pub monitor: MonitorConfig,
    pub schedule: ScheduleConfig,
    pub log: LogConfig,
    pub verify: VerifyConfig,
    pub restore: RestoreConfig,
    pub remote: RemoteConfig,
    /// What looks unintended in a valid config (a window in bare minutes);
    /// every command shows these and the plan records them. Not a key.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Expanded into the other keys by [`resolve`]; always `None` afterwards.
    #[serde(skip_serializing)]
    pub url: Option<String>,
    pub host: String,
    #[serde(deserialize_with = "de_port")]
    pub port: u16,
    pub name: String,
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Read into `password` by [`resolve`]; always `None` afterwards.
    #[serde(skip_serializing)]
    pub password_file: Option<PathBuf>,
    /// pg_dump to run; `None` finds one (see `dump::locate_pg_dump`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_dump: Option<PathBuf>,
    pub lock_timeout: Span,
    pub stall_timeout: Span,
    pub connect_timeout: Span,
    /// TLS to the server, as libpq's `sslmode` (and `PGSSLMODE`).
    pub sslmode: SslMode,
    /// PEM file of the CA(s) that sign the server's certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<PathBuf>,
    /// PEM client certificate (and `sslkey`, its private key) for `cert` authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslcert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslkey: Option<PathBuf>,
    /// Whether any layer named the database (host, port, name, user or a
    /// URL): there is no built-in database to fall back on (FR-11.1).
    #[serde(skip)]
    pub configured: bool,
}

/// libpq's `sslmode` values that lifeboat implements (`allow` is not one:
/// it would prefer plain text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it, else plain text; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS or fail; the certificate is checked only when `sslrootcert` is set (as libpq).
    Require,
    /// TLS, and the certificate must chain to `sslrootcert`.
    VerifyCa,
    /// `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static str = "disable, prefer, require, verify-ca, verify-full";

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl std::str::FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            _ => Err(format!("sslmode {s:?} is not one of {}", SslMode::NAMES)),
        }
    }
}

/// How one connection uses TLS: the mode and the files it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    pub rootcert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Whether the merged layers name a database: any of `[database]` host,
/// port, name or user (a URL is expanded into them).
pub(crate) fn database_named(merged: &toml::Table) -> bool {
    merged
        .get("database")
        .and_then(|d| d.as_table())
        .is_some_and(|d| ["host", "port", "name", "user", "url"].iter().any(|k| d.contains_key(*k)))
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            host: "localhost".into(),
            port: 5432,
            name: "postgres".into(),
            user: "postgres".into(),
            password: None,
            password_file: None,
            pg_dump: None,
            lock_timeout: "30s".parse().expect("valid"),
            stall_timeout: "5 minutes".parse().expect("valid"),
            connect_timeout: "10s".parse().expect("valid"),
            sslmode: SslMode::default(),
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            // A config made in code names its database; only [`resolve`]
            // finds that none of its layers did.
            configured: true,
        }
    }
}

/// TCP keepalives after 30 s of silence, every 10 s, 3 tries, on every
/// connection (pg_dump's too): a peer that vanished from the network is
/// noticed in about a minute.
pub const KEEPALIVES_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
pub const KEEPALIVES_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
pub const KEEPALIVES_RETRIES: u32 = 3;

fn with_keepalives(c: &mut tokio_postgres::Config) {
    c.keepalives(true)
        .keepalives_idle(KEEPALIVES_IDLE)
        .keepalives_interval(KEEPALIVES_INTERVAL)
        .keepalives_retries(KEEPALIVES_RETRIES);
}

impl DatabaseConfig {
    /// Connection settings for the `postgres` client. No password is logged:
    /// `tokio_postgres::Config`'s Debug redacts it.
    pub fn client_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.name)
            .user(&self.user)
            .application_name("lifeboat")
            .connect_timeout(self.connect_timeout.approx_duration());
        with_keepalives(&mut c);
        if let Some(p) = &self.password {
            c.password(p.expose());
        }
        c
    }

    /// The TLS settings of the source connection (and pg_dump's).
    pub fn tls(&self) -> Tls {
        Tls {
            mode: self.sslmode,
            rootcert: self.sslrootcert.clone(),
            cert: self.sslcert.clone(),
            key: self.sslkey.clone(),
        }
    }

    /// `host:port/name`, for messages (never contains the password).
    pub fn display_target(&self) -> String {
        format!("{}:{}/{} as {}", self.host, self.port, self.name, self.user)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeConfig {
    pub default: DefaultMode,
    pub full: Vec<TableName>,
    pub schema_only: Vec<TableName>,
    pub window: Vec<WindowRule>,
    /// Tables named above that a deployment may not have yet (a preset used
    /// before its migrations ran): missing ones are skipped with a warning
    /// instead of failing the config (FR-10.4). Default: strict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub optional_tables: Vec<TableName>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowRule {
    pub tables: Vec<TableName>,
    #[serde(default = "default_window_column")]
    pub column: String,
    #[serde(default = "default_window_keep")]
    pub keep: Span,
}

fn default_window_column() -> String {
    "created_at".into()
}

fn default_window_keep() -> Span {
    "3 months".parse().expect("valid")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Directory the globs are relative to; relative paths are relative to the
    /// config file's directory.
    pub base_dir: Option<PathBuf>,
    /// Files that must exist: a missing one fails the backup.
    pub include: Vec<String>,
    /// Files taken when present.
    pub optional: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub dir: PathBuf,
    pub name_prefix: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { dir: PathBuf::from("backups"), name_prefix: "critical_backup".into() }
    }
}

/// The one rule for a port, wherever it comes from (the file,
/// `LIFEBOAT_DATABASE__PORT`, `POSTGRES_PORT`, `PGPORT`, a URL): a whole
/// number 1-65535. The text is not echoed: a port variable is one place a
/// misplaced password ends up in.
pub(crate) fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(0) => Err("port 0 is not a port PostgreSQL can listen on: expected 1-65535 (usually 5432)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("invalid port: expected a whole number 1-65535 (usually 5432)".into()),
    }
}

/// A parsed default duration (`"5 minutes"`), for the sections' `Default`s.
fn span(s: &str) -> Span {
    s.parse().expect("valid")
}

/// A whole number ≥ 0, as a TOML integer or (from the environment) a string.
fn de_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        N(i64),
        S(String),
    }
    let n = match N::deserialize(d)? {
        N::N(n) => n,
        N::S(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a whole number (expected e.g. 30)")))?,
    };
    u32::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is out of range (expected 0 or more)")))
}

fn de_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    // Environment values arrive as strings; the file has integers.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum P {
        N(i64),
        S(String),
    }
    match P::deserialize(d)? {
        P::N(n) => parse_port(&n.to_string()),
        P::S(s) => parse_port(&s),
    }
    .map_err(serde::de::Error::custom)
}

/// Values given on the command line; they beat every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub output_dir: Option<PathBuf>,
}

/// Where the config file comes from.
#[derive(Debug, Clone)]
pub enum ConfigPath {
    /// Named by `--config` or `LIFEBOAT_CONFIG`: it must exist.
    Explicit(PathBuf),
    /// `./lifeboat.toml`: used when present.
    Default(PathBuf),
}
