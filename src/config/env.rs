//! The environment layer: libpq's `PG*` (with `PGSSLMODE`/`PGSSLROOTCERT`/
//! `PGSSLCERT`/`PGSSLKEY`), the deployment's `POSTGRES_*`, `SMTP_*` and
//! `ADMIN_EMAILS`, `DATABASE_URL` and `LIFEBOAT_<SECTION>__<KEY>`, mapped
//! onto config keys (more specific names win), with `*_FILE` variants for
//! secrets.

use std::collections::BTreeMap;
use std::path::Path;

use super::load::overlay;
use super::secret::read_secret_file;
use super::url::{expand_url, url_fields};
use super::{Config, ConfigError};

/// The value of `name`, or of the file named by `name_FILE`.
/// Setting both is ambiguous (which one did the operator mean?) and an error,
/// as in the official postgres image.
pub(super) fn env_secret(env: &BTreeMap<String, String>, name: &str) -> Result<Option<String>, ConfigError> {
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
const LIST_KEYS: &[&str] =
    &["full", "schema_only", "optional_tables", "include", "optional", "to", "recipients", "trusted_keys"];

pub(super) fn env_layer(env: &BTreeMap<String, String>) -> Result<toml::Table, ConfigError> {
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
                if key == "port" {
                    super::parse_port(v).map_err(|message| ConfigError::Env { name: var.to_string(), message })?;
                }
                layer.insert(key.into(), s(v));
            }
        }
        if let Some(v) = env_secret(env, pass)? {
            layer.insert("password".into(), s(&v));
        }
        overlay_section(&mut db, layer);
    }
    // libpq's TLS variables, below DATABASE_URL's own sslmode.
    let mut tls = toml::Table::new();
    for (var, key) in
        [("PGSSLMODE", "sslmode"), ("PGSSLROOTCERT", "sslrootcert"), ("PGSSLCERT", "sslcert"), ("PGSSLKEY", "sslkey")]
    {
        if let Some(v) = env.get(var) {
            tls.insert(key.into(), s(v));
        }
    }
    overlay_section(&mut db, tls);
    // libpq's connect timeout (whole seconds), as pg_dump and psql read it.
    if let Some(t) = super::url::pgconnect_timeout(env)? {
        db.insert("connect_timeout".into(), s(&format!("{}s", t.as_secs())));
    }
    if let Some(url) = env_secret(env, "DATABASE_URL")? {
        overlay_section(&mut db, url_fields(&url, "DATABASE_URL")?);
    }

    let mut sections: BTreeMap<String, toml::Table> = BTreeMap::new();
    // (section, key) → the variable that set it, and whether its value came
    // from a secret file (then no message may show it).
    let mut origins: BTreeMap<(String, String), (String, bool)> = BTreeMap::new();
    // The deployment's name; LIFEBOAT_RETENTION__RETENTION_DAYS (below) beats it.
    if let Some(v) = env.get("BACKUP_RETENTION_DAYS") {
        sections.entry("retention".into()).or_default().insert("retention_days".into(), s(v));
        origins.insert(("retention".into(), "retention_days".into()), ("BACKUP_RETENTION_DAYS".into(), false));
    }
    // The deployment's name for the schedule; LIFEBOAT_SCHEDULE__CRON beats it.
    if let Some(v) = env.get("BACKUP_SCHEDULE") {
        sections.entry("schedule".into()).or_default().insert("cron".into(), s(v));
        origins.insert(("schedule".into(), "cron".into()), ("BACKUP_SCHEDULE".into(), false));
    }
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("LIFEBOAT_") else { continue };
        // LIFEBOAT_TEST_*: the test suite's own settings, not config overrides.
        // LIFEBOAT_TARGET_PASSWORD[_FILE]: for targets (url::target_password).
        if rest == "CONFIG" || rest == "LOG" || rest.starts_with("TEST_") || rest.starts_with("TARGET_PASSWORD") {
            continue;
        }
        // Not an override: another program's variable that shares the
        // prefix (docker-compose `env_file` lines, `LIFEBOAT_VERSION`). Only
        // the `__` form is ours, and a typo in it is still an error below.
        let Some((section, key)) = rest.split_once("__") else {
            tracing::debug!(variable = %var, "ignored: not LIFEBOAT_<SECTION>__<KEY>");
            continue;
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
        let (key, value, secret) = match key.strip_suffix("_file") {
            // `<key>_FILE` for secrets that have no `_file` key of their own.
            // `password_file` and `secret_file` are keys of their own.
            Some(k) if k != "password" && k != "base" && k != "secret" => {
                (k.to_string(), read_secret_file(Path::new(value), var)?.0, true)
            }
            _ => (key, value.clone(), false),
        };
        origins.insert((section.clone(), key.clone()), (var.clone(), secret));
        let v = if LIST_KEYS.contains(&key.as_str()) {
            toml::Value::Array(value.split(',').map(str::trim).filter(|x| !x.is_empty()).map(s).collect())
        } else {
            s(&value)
        };
        sections.entry(section).or_default().insert(key, v);
    }
    let mut top = toml::Table::new();
    for (section, t) in sections {
        // Each variable is checked alone, so that the error names it.
        for (key, value) in &t {
            let mut probe = toml::Table::new();
            probe.insert(section.clone(), toml::Value::Table(toml::Table::from_iter([(key.clone(), value.clone())])));
            if let Err(e) = toml::Value::Table(probe).try_into::<Config>() {
                let (name, secret) = origins.get(&(section.clone(), key.clone())).cloned().unwrap_or_default();
                let message = if secret {
                    format!("the file's content is not a valid {section}.{key} (not shown: it came from a secret file)")
                } else {
                    e.message().to_string()
                };
                return Err(ConfigError::Env { name, message });
            }
        }
        top.insert(section, toml::Value::Table(t));
    }
    let mut out = toml::Table::new();
    if !db.is_empty() {
        out.insert("database".into(), toml::Value::Table(db));
    }
    // The deployment's SMTP_* and ADMIN_EMAILS, below LIFEBOAT_EMAIL__*.
    let email = super::email::deployment_env(env, |name| env_secret(env, name))?;
    if !email.is_empty() {
        out.insert("email".into(), toml::Value::Table(email));
    }
    // The standard AWS_* variables, below LIFEBOAT_REMOTE__*.
    let remote = super::remote::deployment_env(env, |name| env_secret(env, name))?;
    if !remote.is_empty() {
        out.insert("remote".into(), toml::Value::Table(remote));
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

/// `TZ` as the default of `[schedule] timezone`: *below* the file (the
/// image always sets `TZ`, which must not beat a zone written in the
/// config). A `TZ` that is no IANA name (`EST5EDT`-style POSIX rules, a
/// path) is left out with a warning rather than failing every command.
pub(super) fn tz_layer(env: &BTreeMap<String, String>, warnings: &mut Vec<String>) -> toml::Table {
    let mut out = toml::Table::new();
    let Some(tz) = env.get("TZ").map(|t| t.trim()).filter(|t| !t.is_empty()) else { return out };
    match crate::schedule::parse_zone(tz) {
        Ok(zone) => {
            let mut t = toml::Table::new();
            t.insert("timezone".into(), toml::Value::String(zone.name().to_string()));
            out.insert("schedule".into(), toml::Value::Table(t));
        }
        Err(_) => warnings.push(format!(
            "TZ={tz:?} is not an IANA time zone name, so the schedule uses UTC; set [schedule] timezone \
             (or LIFEBOAT_SCHEDULE__TIMEZONE) to a name such as \"Asia/Bangkok\""
        )),
    }
    out
}
