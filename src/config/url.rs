//! Database URLs: `postgres://` parsing with ORM-only query parameters
//! (Prisma's `?schema=public`) dropped, libpq's TLS parameters (`sslmode`,
//! `sslrootcert`, `sslcert`, `sslkey`) taken out for lifeboat's own TLS,
//! expansion of a `url` key into host/port/name/user/password and TLS keys,
//! and targets given on the command line.
//! Errors never contain the URL (it may hold a password).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::secret::env_secret;
use super::{pgpass, with_keepalives, ConfigError, DatabaseConfig, Secret, Tls};

/// A database given by a URL on the command line: the client settings and
/// how to use TLS. Derefs to the `tokio_postgres::Config`.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Tls,
}

impl std::ops::Deref for Target {
    type Target = tokio_postgres::Config;
    fn deref(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl std::ops::DerefMut for Target {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }
}

/// [`parse_database_url`] for a target given on the command line (`--db`,
/// `--restore-test`): with the same connect timeout default as the config,
/// `application_name = lifeboat` and keepalives, unless the URL says
/// otherwise, and the URL's TLS settings. Without a password in the URL, it
/// comes from the environment or libpq's password file ([`target_password`]).
pub fn parse_target_url(url: &str, origin: &str) -> Result<Target, ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let tls = parse_url(url, origin)?.1;
    Ok(Target { config: target_config(url, origin, &env)?, tls })
}

fn target_config(
    url: &str,
    origin: &str,
    env: &BTreeMap<String, String>,
) -> Result<tokio_postgres::Config, ConfigError> {
    let mut c = parse_database_url(url, origin)?;
    with_keepalives(&mut c);
    if c.get_password().is_none() {
        if let Some(p) = target_password(&c, env)? {
            c.password(p.expose());
        }
    }
    if c.get_connect_timeout().is_none() {
        let default = DatabaseConfig::default().connect_timeout.approx_duration();
        c.connect_timeout(pgconnect_timeout(env)?.unwrap_or(default));
    }
    if c.get_application_name().is_none() {
        c.application_name("lifeboat");
    }
    Ok(c)
}

/// libpq's `PGCONNECT_TIMEOUT`: whole seconds, at least 2 (as libpq reads
/// it); `None` when unset, 0 or negative (libpq would then wait forever,
/// which lifeboat never does: the default applies).
pub fn pgconnect_timeout(env: &BTreeMap<String, String>) -> Result<Option<std::time::Duration>, ConfigError> {
    let Some(v) = env.get("PGCONNECT_TIMEOUT") else { return Ok(None) };
    let secs: i64 = v.trim().parse().map_err(|_| ConfigError::Env {
        name: "PGCONNECT_TIMEOUT".into(),
        message: format!("{v:?} is not a whole number of seconds"),
    })?;
    Ok((secs > 0).then(|| std::time::Duration::from_secs(secs.max(2) as u64)))
}

/// Whether a database URL carries a password (in its user info or as
/// `?password=`): the command line is the wrong place for one.
pub fn url_has_password(url: &str) -> bool {
    parse_database_url(url, "").is_ok_and(|c| c.get_password().is_some())
}

/// An `@` in the user info beyond the one before the host: an unencoded
/// `@` in the password, whose tail the parser would take for the host
/// (and show in every error about it).
fn check_user_info(url: &str, origin: &str) -> Result<(), ConfigError> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.matches('@').count() > 1 {
        return Err(ConfigError::Url {
            origin: origin.to_string(),
            message: "the user or password holds an unencoded @, so part of it would be taken for the host; \
                      percent-encode special characters (@ # : / ?) in the URL password (@ is %40, # is %23, \
                      : is %3A, / is %2F, ? is %3F)"
                .into(),
        });
    }
    Ok(())
}

/// libpq's TLS parameters, which lifeboat implements itself (the driver's
/// parser knows only disable/prefer/require and no certificate files).
const TLS_URL_PARAMS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// The password of a `--db` / `--restore-test` target whose URL has none,
/// from the most specific source: `LIFEBOAT_TARGET_PASSWORD[_FILE]`, then
/// libpq's `PGPASSWORD[_FILE]`, then libpq's password file (`PGPASSFILE`,
/// else `~/.pgpass`). A password on the command line shows in `ps` and in
/// the shell's history; these do not.
pub fn target_password(
    c: &tokio_postgres::Config,
    env: &BTreeMap<String, String>,
) -> Result<Option<Secret>, ConfigError> {
    for name in ["LIFEBOAT_TARGET_PASSWORD", "PGPASSWORD"] {
        if let Some(p) = env_secret(env, name)? {
            return Ok(Some(Secret::new(p)));
        }
    }
    Ok(pgpass_password(c, env))
}

/// The password libpq's password file (`PGPASSFILE`, else `~/.pgpass`)
/// holds for `c`'s host, port, database and user, if any: the lowest source
/// of a password, for the source database as for restore targets (FR-11).
pub fn pgpass_password(c: &tokio_postgres::Config, env: &BTreeMap<String, String>) -> Option<Secret> {
    let file =
        env.get("PGPASSFILE").map(PathBuf::from).or_else(|| env.get("HOME").map(|h| Path::new(h).join(".pgpass")));
    let text = file.as_deref().and_then(pgpass::read)?;
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        // libpq matches a Unix-socket connection against `localhost`.
        Some(tokio_postgres::config::Host::Unix(_)) | None => "localhost".into(),
    };
    let user = c.get_user().unwrap_or_default();
    let port = c.get_ports().first().copied().unwrap_or(5432);
    pgpass::lookup(&text, &host, port, c.get_dbname().unwrap_or(user), user).map(Secret::new)
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
/// The TLS parameters are in [`parse_target_url`]'s result, not in this one.
pub fn parse_database_url(url: &str, origin: &str) -> Result<tokio_postgres::Config, ConfigError> {
    Ok(parse_url(url, origin)?.0)
}

fn parse_url(url: &str, origin: &str) -> Result<(tokio_postgres::Config, Tls), ConfigError> {
    check_user_info(url, origin)?;
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
    let config: tokio_postgres::Config = cleaned
        .parse()
        .map_err(|e: tokio_postgres::Error| ConfigError::Url { origin: origin.to_string(), message: e.to_string() })?;
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
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::test_env as env;

    // covers: SC-4.4
    #[test]
    fn a_target_password_comes_from_the_most_specific_source_and_never_beats_the_url() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pgpass = dir.path().join("pgpass");
        std::fs::write(&pgpass, "127.0.0.1:5432:*:u:from-pgpass\n").unwrap();
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let (pgpass_s, file_s) = (pgpass.to_str().unwrap(), file.to_str().unwrap());
        let url = "postgres://u@127.0.0.1/db";
        let pw = |url: &str, e: &[(&str, &str)]| {
            target_config(url, "--db", &env(e)).unwrap().get_password().map(|p| String::from_utf8_lossy(p).into_owned())
        };
        assert_eq!(pw(url, &[("PGPASSFILE", pgpass_s)]).as_deref(), Some("from-pgpass"));
        assert_eq!(pw(url, &[("PGPASSFILE", pgpass_s), ("PGPASSWORD", "from-pg")]).as_deref(), Some("from-pg"));
        let all = [("PGPASSFILE", pgpass_s), ("PGPASSWORD", "from-pg"), ("LIFEBOAT_TARGET_PASSWORD_FILE", file_s)];
        assert_eq!(pw(url, &all).as_deref(), Some("from-file"));
        assert_eq!(pw("postgres://u:in-url@127.0.0.1/db", &all).as_deref(), Some("in-url"));
        assert_eq!(pw(url, &[("HOME", dir.path().to_str().unwrap())]), None, "no ~/.pgpass there");
        let both = env(&[("LIFEBOAT_TARGET_PASSWORD", "a"), ("LIFEBOAT_TARGET_PASSWORD_FILE", file_s)]);
        let err = target_config(url, "--db", &both).unwrap_err().to_string();
        assert!(err.contains("LIFEBOAT_TARGET_PASSWORD and LIFEBOAT_TARGET_PASSWORD_FILE"), "{err}");
        // The variables are not config overrides.
        let c = super::super::resolve(None, &env(&[("LIFEBOAT_TARGET_PASSWORD_FILE", file_s)]), &Default::default());
        assert!(c.is_ok(), "{c:?}");
    }

    // covers: FR-14.12
    #[test]
    fn a_target_without_connect_timeout_in_its_url_takes_pgconnect_timeout() {
        let t = |url: &str, e: &[(&str, &str)]| {
            target_config(url, "--db", &env(e)).map(|c| c.get_connect_timeout().copied())
        };
        let secs = |s| Some(std::time::Duration::from_secs(s));
        assert_eq!(t("postgres://u@h/db", &[("PGCONNECT_TIMEOUT", "3")]).unwrap(), secs(3));
        assert_eq!(t("postgres://u@h/db?connect_timeout=7", &[("PGCONNECT_TIMEOUT", "3")]).unwrap(), secs(7));
        assert_eq!(t("postgres://u@h/db", &[("PGCONNECT_TIMEOUT", "0")]).unwrap(), secs(10), "0: the default");
        assert_eq!(t("postgres://u@h/db", &[("PGCONNECT_TIMEOUT", "1")]).unwrap(), secs(2), "libpq's minimum");
        assert_eq!(t("postgres://u@h/db", &[]).unwrap(), secs(10));
        let err = t("postgres://u@h/db", &[("PGCONNECT_TIMEOUT", "soon")]).unwrap_err().to_string();
        assert!(err.contains("PGCONNECT_TIMEOUT") && err.contains("whole number of seconds"), "{err}");
    }

    // covers: SC-4.5
    #[test]
    fn an_unencoded_at_in_a_url_password_is_named_and_never_shown_as_the_host() {
        for url in ["postgres://u:Sec@ret-tail@127.0.0.1:1/db", "postgresql://u:a@b@c@h/db?sslmode=disable"] {
            let err = parse_target_url(url, "--db").unwrap_err().to_string();
            assert!(err.contains("percent-encode special characters (@ # : / ?) in the URL password"), "{err}");
            assert!(!err.contains("ret-tail") && !err.contains("Sec") && !err.contains("b@c"), "{err}");
        }
        // One @ in the user info, others after the host: fine.
        assert!(parse_target_url("postgres://u:p%40ss@h/db?application_name=a@b", "--db").is_ok());
        assert!(url_has_password("postgres://u:p%40ss@h/db") && url_has_password("postgres://u@h/db?password=x"));
        assert!(!url_has_password("postgres://u@h/db") && !url_has_password("not a url"));
    }

    // covers: FR-14.12
    #[test]
    fn every_connection_uses_keepalives_and_a_connect_timeout() {
        use super::super::{KEEPALIVES_IDLE, KEEPALIVES_RETRIES};
        let c = DatabaseConfig::default().client_config();
        assert!(c.get_keepalives());
        assert_eq!((c.get_keepalives_idle(), c.get_keepalives_retries()), (KEEPALIVES_IDLE, Some(KEEPALIVES_RETRIES)));
        let t = target_config("postgres://u@h/db", "--db", &env(&[])).unwrap();
        assert_eq!(t.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert!(t.get_connect_timeout().is_some());
    }
}
