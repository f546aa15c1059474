//! The configuration: one TOML file, environment variables and flags, merged
//! with the precedence flags > env > file > defaults in [`resolve`] (the only
//! place that knows it).
//!
//! Every layer is first checked on its own against the same serde struct with
//! `deny_unknown_fields`, so a typo in the file is reported with file, line and
//! the valid keys, and a typo in a `LIFEBOAT_*` variable names the variable.
//! The layers are then merged as TOML tables and deserialized once.
//!
//! Within the environment layer the more specific names win:
//! `LIFEBOAT_<SECTION>__<KEY>` > `DATABASE_URL` > `POSTGRES_*` > libpq's `PG*`.
//! A database URL expands into host/port/name/user/password at its own layer;
//! keys set explicitly in the same layer win over the URL's parts. `password`
//! and `password_file` are one setting: a layer that sets either replaces both.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::duration::Span;

mod links;
pub use links::{EncryptionConfig, HttpConfig, LinksConfig};

/// A value that must never be shown: `Debug`, `Display` and `Serialize` all
/// print `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; pass an existing file with --config or LIFEBOAT_CONFIG")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("cannot read secret file {path} (from {origin}): {source}")]
    SecretFile { origin: String, path: PathBuf, source: std::io::Error },
    #[error(
        "invalid database URL (from {origin}): {message}; expected postgres://user[:password]@host[:port]/database"
    )]
    Url { origin: String, message: String },
    #[error("{origin} asks for sslmode=require, but lifeboat cannot use TLS to PostgreSQL yet; connect over a private network (e.g. the docker-compose network) and remove sslmode")]
    NoTls { origin: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// How a table's rows are backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every row.
    Full,
    /// Rows whose time column is within the window (plus closure rows).
    Window,
    /// No rows (only closure rows); the table is recreated empty.
    Schema,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Full => "full",
            Mode::Window => "window",
            Mode::Schema => "schema",
        })
    }
}

/// The mode for tables the config does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DefaultMode {
    #[default]
    Full,
    Schema,
}

/// A table as written in the config: `table` (schema `public`) or
/// `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: &str, name: &str) -> Self {
        TableName { schema: schema.to_string(), name: name.to_string() }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

impl std::str::FromStr for TableName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (schema, name) = s.split_once('.').unwrap_or(("public", s));
        if schema.is_empty() || name.is_empty() {
            return Err(format!("invalid table name {s:?}: expected \"table\" or \"schema.table\""));
        }
        Ok(TableName::new(schema, name))
    }
}

impl<'de> Deserialize<'de> for TableName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for TableName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.schema == "public" {
            s.serialize_str(&self.name)
        } else {
            s.collect_str(self)
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub scope: ScopeConfig,
    pub files: FilesConfig,
    pub storage: StorageConfig,
    pub links: LinksConfig,
    pub http: HttpConfig,
    pub encryption: EncryptionConfig,
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
        }
    }
}

impl DatabaseConfig {
    /// Connection settings for the `postgres` client. No password is logged:
    /// `postgres::Config`'s Debug redacts it.
    pub fn client_config(&self) -> postgres::Config {
        let mut c = postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .dbname(&self.name)
            .user(&self.user)
            .application_name("lifeboat")
            .connect_timeout(self.connect_timeout.approx_duration());
        if let Some(p) = &self.password {
            c.password(p.expose());
        }
        c
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

fn de_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    // Environment values arrive as strings; the file has integers.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum P {
        N(u16),
        S(String),
    }
    match P::deserialize(d)? {
        P::N(n) => Ok(n),
        P::S(s) => {
            s.trim().parse().map_err(|_| serde::de::Error::custom(format!("invalid port {s:?}: expected 1-65535")))
        }
    }
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

/// The one function that knows the precedence flags > env > file > defaults.
pub fn resolve(
    file: Option<(&Path, &str)>,
    env: &BTreeMap<String, String>,
    flags: &Overrides,
) -> Result<Config, ConfigError> {
    let mut merged = toml::Table::new();
    let base_dir = file.and_then(|(p, _)| p.parent()).map(Path::to_path_buf);

    if let Some((path, text)) = file {
        // Deserialize straight from the text first: that error has the line.
        toml::from_str::<Config>(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        let mut t: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        if let Some(toml::Value::Table(d)) = t.get("database") {
            if d.contains_key("password") && d.contains_key("password_file") {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: "[database] sets both password and password_file; keep only one".into(),
                });
            }
        }
        expand_url(&mut t, &format!("{} [database] url", path.display()))?;
        overlay(&mut merged, t);
    }

    overlay(&mut merged, env_layer(env)?);

    if let Some(url) = &flags.database_url {
        let mut t = toml::Table::new();
        t.insert("database".into(), toml::Value::Table(url_fields(url, "--database-url")?));
        overlay(&mut merged, t);
    }
    if let Some(dir) = &flags.output_dir {
        let mut t = toml::Table::new();
        let mut s = toml::Table::new();
        s.insert("dir".into(), toml::Value::String(dir.display().to_string()));
        t.insert("storage".into(), toml::Value::Table(s));
        overlay(&mut merged, t);
    }

    let mut config: Config = toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;

    if let Some(path) = config.database.password_file.take() {
        config.database.password = Some(read_secret_file(&path, "database.password_file")?);
    }
    if let (Some(base), Some(dir)) = (&base_dir, &config.files.base_dir) {
        if dir.is_relative() {
            config.files.base_dir = Some(base.join(dir));
        }
    }
    validate(&config)?;
    Ok(config)
}

/// [`parse_database_url`] for a target given on the command line (`--db`,
/// `--restore-test`): with the same connect timeout default as the config
/// and `application_name = lifeboat`, unless the URL says otherwise.
pub fn parse_target_url(url: &str, origin: &str) -> Result<postgres::Config, ConfigError> {
    let mut c = parse_database_url(url, origin)?;
    let defaults = DatabaseConfig::default();
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(defaults.connect_timeout.approx_duration());
    }
    if c.get_application_name().is_none() {
        c.application_name("lifeboat");
    }
    Ok(c)
}

/// Reads the config file (if any) and the process environment, then resolves.
pub fn load(path: ConfigPath, flags: &Overrides) -> Result<(Config, Option<PathBuf>), ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let (path, required) = match path {
        ConfigPath::Explicit(p) => (p, true),
        ConfigPath::Default(p) => (p, false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => None,
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let file = text.as_deref().map(|t| (path.as_path(), t));
    let config = resolve(file, &env, flags)?;
    Ok((config, text.is_some().then_some(path)))
}

fn validate(c: &Config) -> Result<(), ConfigError> {
    links::validate(&c.links, &c.encryption)?;
    let p = &c.storage.name_prefix;
    if p.is_empty() || !p.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') {
        return Err(ConfigError::Invalid(format!(
            "storage.name_prefix {p:?} must be non-empty and use only letters, digits, '_' and '-'"
        )));
    }
    let mut seen: BTreeMap<&TableName, &str> = BTreeMap::new();
    let named = c
        .scope
        .full
        .iter()
        .map(|t| (t, "scope.full"))
        .chain(c.scope.schema_only.iter().map(|t| (t, "scope.schema_only")))
        .chain(c.scope.window.iter().flat_map(|w| w.tables.iter().map(|t| (t, "scope.window"))));
    for (t, list) in named {
        if let Some(prev) = seen.insert(t, list) {
            return Err(ConfigError::Invalid(format!(
                "table {t} is listed in both {prev} and {list}; give each table exactly one mode"
            )));
        }
    }
    for w in &c.scope.window {
        if w.column.is_empty() {
            return Err(ConfigError::Invalid("scope.window: column must not be empty".into()));
        }
    }
    for p in c.files.include.iter().chain(&c.files.optional) {
        let rel = Path::new(p);
        if rel.is_absolute() || rel.components().any(|x| matches!(x, std::path::Component::ParentDir)) {
            return Err(ConfigError::Invalid(format!(
                "files pattern {p:?} must be relative to files.base_dir and must not contain '..'"
            )));
        }
        glob::Pattern::new(p).map_err(|e| ConfigError::Invalid(format!("files pattern {p:?}: {e}")))?;
    }
    if (!c.files.include.is_empty() || !c.files.optional.is_empty()) && c.files.base_dir.is_none() {
        return Err(ConfigError::Invalid(
            "files.include/optional need files.base_dir (the directory the patterns are relative to)".into(),
        ));
    }
    Ok(())
}

/// Puts every key of `top` over `base`, one level of sections deep.
fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (section, value) in top {
        match (base.get_mut(&section), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => {
                if t.contains_key("password") || t.contains_key("password_file") {
                    b.remove("password");
                    b.remove("password_file");
                }
                for (k, v) in t {
                    b.insert(k, v);
                }
            }
            (_, v) => {
                base.insert(section, v);
            }
        }
    }
}

/// Replaces `[database] url` by the fields it carries (explicit keys win).
fn expand_url(t: &mut toml::Table, origin: &str) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(db)) = t.get_mut("database") else { return Ok(()) };
    let Some(toml::Value::String(url)) = db.remove("url") else { return Ok(()) };
    let mut fields = url_fields(&url, origin)?;
    if db.contains_key("password") || db.contains_key("password_file") {
        fields.remove("password");
    }
    for (k, v) in std::mem::take(db) {
        fields.insert(k, v);
    }
    *db = fields;
    Ok(())
}

/// Query parameters that Prisma (and other ORMs) put into `DATABASE_URL` and
/// that libpq-style parsers reject.
const FOREIGN_URL_PARAMS: &[&str] =
    &["schema", "connection_limit", "pool_timeout", "pgbouncer", "sslaccept", "socket_timeout", "statement_cache_size"];

/// Parses a `postgres://` URL, ignoring ORM-only parameters (Prisma's
/// `?schema=public`). Errors never contain the URL (it may hold a password).
pub fn parse_database_url(url: &str, origin: &str) -> Result<postgres::Config, ConfigError> {
    let cleaned = match url.split_once('?') {
        Some((head, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.is_empty() && !FOREIGN_URL_PARAMS.contains(&kv.split('=').next().unwrap_or("")))
                .collect();
            if kept.is_empty() {
                head.to_string()
            } else {
                format!("{head}?{}", kept.join("&"))
            }
        }
        None => url.to_string(),
    };
    // The parser's error text never contains the URL, so no password leaks.
    let config: postgres::Config = cleaned
        .parse()
        .map_err(|e: postgres::Error| ConfigError::Url { origin: origin.to_string(), message: e.to_string() })?;
    // Connections are not encrypted yet: asking for TLS must not quietly get
    // a plain connection.
    if config.get_ssl_mode() == postgres::config::SslMode::Require {
        return Err(ConfigError::NoTls { origin: origin.to_string() });
    }
    Ok(config)
}

fn url_fields(url: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    let pc = parse_database_url(url, origin)?;
    let mut t = toml::Table::new();
    if let Some(h) = pc.get_hosts().first() {
        let host = match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        t.insert("host".into(), toml::Value::String(host));
    }
    if let Some(p) = pc.get_ports().first() {
        t.insert("port".into(), toml::Value::Integer(i64::from(*p)));
    }
    if let Some(n) = pc.get_dbname() {
        t.insert("name".into(), toml::Value::String(n.to_string()));
    }
    if let Some(u) = pc.get_user() {
        t.insert("user".into(), toml::Value::String(u.to_string()));
    }
    if let Some(p) = pc.get_password() {
        t.insert("password".into(), toml::Value::String(String::from_utf8_lossy(p).into_owned()));
    }
    Ok(t)
}

/// Docker secrets and similar files end with a newline that is not part of
/// the secret.
fn read_secret_file(path: &Path, origin: &str) -> Result<Secret, ConfigError> {
    let s = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        origin: origin.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Secret(s.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&s).to_string()))
}

/// The value of `name`, or of the file named by `name_FILE`.
/// Setting both is ambiguous (which one did the operator mean?) and an error,
/// as in the official postgres image.
fn env_secret(env: &BTreeMap<String, String>, name: &str) -> Result<Option<String>, ConfigError> {
    let file_var = format!("{name}_FILE");
    match (env.get(name), env.get(&file_var)) {
        (Some(_), Some(_)) => Err(ConfigError::Env {
            name: format!("{name} and {file_var}"),
            message: "both are set; set only one of them".into(),
        }),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(p)) => Ok(Some(read_secret_file(Path::new(p), &file_var)?.0)),
        (None, None) => Ok(None),
    }
}

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &["full", "schema_only", "include", "optional", "recipients"];

fn env_layer(env: &BTreeMap<String, String>) -> Result<toml::Table, ConfigError> {
    let mut db = toml::Table::new();
    let s = |v: &str| toml::Value::String(v.to_string());

    // Lowest first: libpq's names, then the deployment's, then DATABASE_URL.
    for (host, port, name, user, pass) in [
        ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD"),
        ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"),
    ] {
        let mut layer = toml::Table::new();
        for (var, key) in [(host, "host"), (port, "port"), (name, "name"), (user, "user")] {
            if let Some(v) = env.get(var) {
                layer.insert(key.into(), s(v));
            }
        }
        if let Some(v) = env_secret(env, pass)? {
            layer.insert("password".into(), s(&v));
        }
        overlay_section(&mut db, layer);
    }
    if let Some(url) = env_secret(env, "DATABASE_URL")? {
        overlay_section(&mut db, url_fields(&url, "DATABASE_URL")?);
    }

    let mut sections: BTreeMap<String, toml::Table> = BTreeMap::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("LIFEBOAT_") else { continue };
        // LIFEBOAT_TEST_*: the test suite's own settings, not config overrides.
        if rest == "CONFIG" || rest == "LOG" || rest.starts_with("TEST_") {
            continue;
        }
        let Some((section, key)) = rest.split_once("__") else {
            return Err(ConfigError::Env {
                name: var.clone(),
                message: "expected LIFEBOAT_<SECTION>__<KEY>, e.g. LIFEBOAT_DATABASE__HOST".into(),
            });
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        if let Some(base) = key.strip_suffix("_file") {
            let plain = format!("LIFEBOAT_{}__{}", section.to_uppercase(), base.to_uppercase());
            if env.contains_key(&plain) {
                return Err(ConfigError::Env {
                    name: format!("{plain} and {var}"),
                    message: "both are set; set only one of them".into(),
                });
            }
        }
        let (key, value) = match key.strip_suffix("_file") {
            // `<key>_FILE` for secrets that have no `_file` key of their own.
            // `password_file`, `base_dir` and `secret_file` are keys of their own.
            Some(k) if k != "password" && k != "base" && k != "secret" => {
                (k.to_string(), read_secret_file(Path::new(value), var)?.0)
            }
            _ => (key, value.clone()),
        };
        let v = if LIST_KEYS.contains(&key.as_str()) {
            toml::Value::Array(value.split(',').map(str::trim).filter(|x| !x.is_empty()).map(s).collect())
        } else {
            s(&value)
        };
        sections.entry(section).or_default().insert(key, v);
    }
    let mut top = toml::Table::new();
    for (section, t) in sections {
        // Checked alone so that the error names the variable.
        let mut probe = toml::Table::new();
        probe.insert(section.clone(), toml::Value::Table(t.clone()));
        if let Err(e) = toml::Value::Table(probe).try_into::<Config>() {
            let keys: Vec<String> =
                t.keys().map(|k| format!("LIFEBOAT_{}__{}", section.to_uppercase(), k.to_uppercase())).collect();
            return Err(ConfigError::Env { name: keys.join(", "), message: e.message().to_string() });
        }
        top.insert(section, toml::Value::Table(t));
    }
    let mut out = toml::Table::new();
    if !db.is_empty() {
        out.insert("database".into(), toml::Value::Table(db));
    }
    expand_url(&mut top, "LIFEBOAT_DATABASE__URL")?;
    overlay(&mut out, top);
    Ok(out)
}

fn overlay_section(base: &mut toml::Table, top: toml::Table) {
    if top.contains_key("password") {
        base.remove("password");
        base.remove("password_file");
    }
    base.extend(top);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const FILE: &str = r#"
[database]
host = "file-host"
port = 5433
name = "file_db"
user = "file_user"
password = "file-secret"
[storage]
dir = "/file/backups"
"#;

    // covers: FR-11.1, FR-11.3, FR-11.4, FR-11.6, TS-1.1
    #[test]
    fn precedence_is_flags_then_env_then_file_then_defaults() {
        let p = Path::new("/etc/lifeboat/lifeboat.toml");
        let c = resolve(Some((p, FILE)), &env(&[]), &Overrides::default()).unwrap();
        assert_eq!((c.database.host.as_str(), c.database.port), ("file-host", 5433));
        assert_eq!(c.storage.name_prefix, "critical_backup", "default");

        let e =
            env(&[("PGHOST", "pg-host"), ("POSTGRES_HOST", "pg-compose"), ("LIFEBOAT_STORAGE__DIR", "/env/backups")]);
        let c = resolve(Some((p, FILE)), &e, &Overrides::default()).unwrap();
        assert_eq!(c.database.host, "pg-compose", "POSTGRES_* beats PG*, env beats file");
        assert_eq!(c.database.port, 5433, "file value kept where env is silent");
        assert_eq!(c.storage.dir, PathBuf::from("/env/backups"));

        let e2 = env(&[
            ("POSTGRES_HOST", "pg-compose"),
            ("DATABASE_URL", "postgresql://u:url-secret@url-host:6000/url_db?schema=public"),
            ("LIFEBOAT_DATABASE__HOST", "lb-host"),
        ]);
        let c = resolve(Some((p, FILE)), &e2, &Overrides::default()).unwrap();
        assert_eq!(c.database.host, "lb-host", "LIFEBOAT_* beats DATABASE_URL");
        assert_eq!(
            (c.database.port, c.database.name.as_str()),
            (6000, "url_db"),
            "DATABASE_URL beats POSTGRES_* and the file; Prisma's ?schema is ignored"
        );
        assert_eq!(c.database.password.as_ref().unwrap().expose(), "url-secret");

        let flags = Overrides {
            database_url: Some("postgres://flag@flag-host/flag_db".into()),
            output_dir: Some("/flag/out".into()),
        };
        let c = resolve(Some((p, FILE)), &e2, &flags).unwrap();
        assert_eq!((c.database.host.as_str(), c.database.user.as_str()), ("flag-host", "flag"));
        assert_eq!(c.storage.dir, PathBuf::from("/flag/out"));
        assert_eq!(
            c.database.password.as_ref().unwrap().expose(),
            "url-secret",
            "a flag URL without password keeps the lower one"
        );

        let c = resolve(None, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(
            (c.database.host.as_str(), c.database.port, c.storage.dir.as_path()),
            ("localhost", 5432, Path::new("backups"))
        );
    }

    // covers: FR-11.5, FR-11.7, SC-2.4, TS-1.1
    #[test]
    fn secrets_come_from_files_and_are_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cr3t-from-file\n").unwrap();
        let e = env(&[("POSTGRES_PASSWORD_FILE", f.to_str().unwrap())]);
        let c = resolve(Some((Path::new("x.toml"), FILE)), &e, &Overrides::default()).unwrap();
        assert_eq!(c.database.password.as_ref().unwrap().expose(), "s3cr3t-from-file");
        let shown = format!("{c:?} {} {}", toml::to_string(&c).unwrap(), serde_json::to_string(&c).unwrap());
        assert!(!shown.contains("s3cr3t") && !shown.contains("file-secret"), "{shown}");
        assert!(shown.contains("***"));

        let file = format!("[database]\npassword_file = {:?}\n", f.to_str().unwrap());
        let c = resolve(Some((Path::new("x.toml"), &file)), &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.database.password.unwrap().expose(), "s3cr3t-from-file");

        let err = resolve(
            Some((Path::new("x.toml"), "[database]\npassword_file = \"/nonexistent/pw\"\n")),
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pw"), "{err}");
    }

    // covers: FR-11.2, TS-1.1
    #[test]
    fn unknown_keys_name_the_file_line_and_valid_keys() {
        let err = resolve(
            Some((Path::new("/etc/lb.toml"), "[database]\nhost = \"x\"\nhots = \"y\"\n")),
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/etc/lb.toml") && err.contains("line 3") && err.contains("hots") && err.contains("host"),
            "{err}"
        );

        let err =
            resolve(None, &env(&[("LIFEBOAT_DATABASE__HOTS", "y")]), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("LIFEBOAT_DATABASE__HOTS") && err.contains("host"), "{err}");

        let err = resolve(
            Some((Path::new("a.toml"), "[scope]\nfull = [\"users\"]\nschema_only = [\"users\"]\n")),
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("public.users") && err.contains("exactly one mode"), "{err}");

        let err = resolve(
            Some((Path::new("a.toml"), "[[scope.window]]\ntables = [\"t\"]\nkeep = \"3 fortnights\"\n")),
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("3 fortnights") && err.contains("line"), "{err}");
    }

    // covers: FR-11.3
    // covers: FR-11.3, FR-11.5
    #[test]
    fn a_lifeboat_database_url_expands_and_a_secret_set_twice_is_an_error() {
        let c = resolve(None, &env(&[("LIFEBOAT_DATABASE__URL", "postgres://u:pw@h:6543/d")]), &Overrides::default())
            .unwrap();
        assert_eq!((c.database.host.as_str(), c.database.port, c.database.name.as_str()), ("h", 6543, "d"));
        assert_eq!(c.database.password.unwrap().expose(), "pw");

        let err = resolve(
            None,
            &env(&[("POSTGRES_PASSWORD", "a"), ("POSTGRES_PASSWORD_FILE", "/run/secrets/pw")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE") && err.contains("only one"), "{err}");
        let err = resolve(
            None,
            &env(&[("LIFEBOAT_DATABASE__PASSWORD", "a"), ("LIFEBOAT_DATABASE__PASSWORD_FILE", "/run/secrets/pw")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("LIFEBOAT_DATABASE__PASSWORD and LIFEBOAT_DATABASE__PASSWORD_FILE"), "{err}");
        let err = resolve(None, &env(&[("DATABASE_URL", "postgres://u@h/d?sslmode=require")]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslmode=require") && err.contains("TLS"), "{err}");
        assert!(!err.contains(": a"), "{err}");
    }

    // covers: FR-16.1, FR-11.2
    #[test]
    fn files_patterns_that_escape_base_dir_are_config_errors() {
        for bad in ["../etc/passwd", "/etc/passwd", "ssl/../../x"] {
            let text = format!("[files]\nbase_dir = \"/config\"\ninclude = [{bad:?}]\n");
            let err = resolve(Some((Path::new("a.toml"), &text)), &env(&[]), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("must not contain '..'"), "{err}");
        }
    }

    // covers: FR-11.5
    #[test]
    fn password_and_password_file_together_in_the_file_is_an_error_and_test_variables_are_ignored() {
        let text = "[database]\npassword = \"a\"\npassword_file = \"/run/secrets/pw\"\n";
        let err = resolve(Some((Path::new("/etc/lb.toml"), text)), &env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("both password and password_file"), "{err}");
        let e = env(&[("LIFEBOAT_TEST_DATABASE_URL", "postgres://x@y/z")]);
        assert!(resolve(None, &e, &Overrides::default()).is_ok());
    }

    #[test]
    fn env_lists_are_comma_separated() {
        let c = resolve(
            None,
            &env(&[("LIFEBOAT_SCOPE__SCHEMA_ONLY", "usage_logs, audit.sessions")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            c.scope.schema_only,
            vec![TableName::new("public", "usage_logs"), TableName::new("audit", "sessions")]
        );
    }
}
