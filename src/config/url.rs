//! Database URLs: `postgres://` parsing with ORM-only query parameters
//! (Prisma's `?schema=public`) dropped, libpq's TLS parameters (`sslmode`,
//! `sslrootcert`, `sslcert`, `sslkey`) taken out for lifeboat's own TLS,
//! expansion of a `url` key into host/port/name/user/password and TLS keys,
//! and targets given on the command line.
//! Errors never contain the URL (it may hold a password).

use std::path::PathBuf;

use super::{ConfigError, DatabaseConfig, Tls};

/// A database given by a URL on the command line: the client settings and
/// how to use TLS. Derefs to the `postgres::Config`.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: postgres::Config,
    pub tls: Tls,
}

impl std::ops::Deref for Target {
    type Target = postgres::Config;
    fn deref(&self) -> &postgres::Config {
        &self.config
    }
}

impl std::ops::DerefMut for Target {
    fn deref_mut(&mut self) -> &mut postgres::Config {
        &mut self.config
    }
}

/// [`parse_database_url`] for a target given on the command line (`--db`,
/// `--restore-test`): with the same connect timeout default as the config
/// and `application_name = lifeboat`, unless the URL says otherwise.
pub fn parse_target_url(url: &str, origin: &str) -> Result<Target, ConfigError> {
    let (mut c, tls) = parse_url(url, origin)?;
    let defaults = DatabaseConfig::default();
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(defaults.connect_timeout.approx_duration());
    }
    if c.get_application_name().is_none() {
        c.application_name("lifeboat");
    }
    Ok(Target { config: c, tls })
}

/// libpq's TLS parameters, which lifeboat implements itself (the driver's
/// parser knows only disable/prefer/require and no certificate files).
const TLS_URL_PARAMS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Replaces `[database] url` by the fields it carries (explicit keys win).
pub(super) fn expand_url(t: &mut toml::Table, origin: &str) -> Result<(), ConfigError> {
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
/// The TLS parameters are in [`parse_target_url`]'s result, not in this one.
pub fn parse_database_url(url: &str, origin: &str) -> Result<postgres::Config, ConfigError> {
    Ok(parse_url(url, origin)?.0)
}

fn parse_url(url: &str, origin: &str) -> Result<(postgres::Config, Tls), ConfigError> {
    let mut tls = Tls::default();
    let cleaned = match url.split_once('?') {
        Some((head, query)) => {
            // Keys are compared decoded (the `form_urlencoded` parser of the `url` project), but
            // kept pairs are passed on byte for byte: re-encoding would turn
            // `%20` into `+`, which the postgres URL parser does not decode.
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| {
                    let key = form_urlencoded::parse(kv.as_bytes()).next().map(|(k, _)| k.into_owned());
                    !kv.is_empty()
                        && !key.is_some_and(|k| {
                            FOREIGN_URL_PARAMS.contains(&k.as_str()) || TLS_URL_PARAMS.contains(&k.as_str())
                        })
                })
                .collect();
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                match k.as_ref() {
                    "sslmode" => {
                        tls.mode =
                            v.parse().map_err(|message| ConfigError::Url { origin: origin.to_string(), message })?
                    }
                    "sslrootcert" => tls.rootcert = Some(PathBuf::from(v.as_ref())),
                    "sslcert" => tls.cert = Some(PathBuf::from(v.as_ref())),
                    "sslkey" => tls.key = Some(PathBuf::from(v.as_ref())),
                    _ => {}
                }
            }
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
    Ok((config, tls))
}

pub(super) fn url_fields(url: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    let (pc, tls) = parse_url(url, origin)?;
    let mut t = toml::Table::new();
    // Only what the URL says: a URL without sslmode keeps the lower layer's.
    if url.split_once('?').is_some_and(|(_, q)| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "sslmode")) {
        t.insert("sslmode".into(), toml::Value::String(tls.mode.as_str().into()));
    }
    for (key, path) in [("sslrootcert", &tls.rootcert), ("sslcert", &tls.cert), ("sslkey", &tls.key)] {
        if let Some(p) = path {
            t.insert(key.into(), toml::Value::String(p.display().to_string()));
        }
    }
    if let Some(h) = pc.get_hosts().first() {
        let host = match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        t.insert("host".into(), toml::Value::String(host));
    }
    if let Some(p) = pc.get_ports().first() {
        super::parse_port(&p.to_string())
            .map_err(|message| ConfigError::Url { origin: origin.to_string(), message })?;
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
