//! Database URLs: `postgres://` parsing with ORM-only query parameters
//! (Prisma's `?schema=public`) dropped, expansion of a `url` key into
//! host/port/name/user/password, and targets given on the command line.
//! Errors never contain the URL (it may hold a password).

use super::{ConfigError, DatabaseConfig};

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
pub fn parse_database_url(url: &str, origin: &str) -> Result<postgres::Config, ConfigError> {
    let cleaned = match url.split_once('?') {
        Some((head, query)) => {
            // Keys are compared decoded (the `form_urlencoded` parser of the `url` project), but
            // kept pairs are passed on byte for byte: re-encoding would turn
            // `%20` into `+`, which the postgres URL parser does not decode.
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| {
                    let key = form_urlencoded::parse(kv.as_bytes()).next().map(|(k, _)| k.into_owned());
                    !kv.is_empty() && !key.is_some_and(|k| FOREIGN_URL_PARAMS.contains(&k.as_str()))
                })
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

pub(super) fn url_fields(url: &str, origin: &str) -> Result<toml::Table, ConfigError> {
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
