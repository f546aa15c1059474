//! The environment layer: libpq's `PG*` (with `PGSSLMODE`/`PGSSLROOTCERT`/
//! `PGSSLCERT`/`PGSSLKEY`), the application's `DATABASE_URL`, the
//! deployment's `POSTGRES_*`, `SMTP_*`, `SMTP_SECURE`, `ADMIN_EMAILS` and
//! `BACKUP_*`, lifeboat's `BACKUP_DATABASE_URL` and
//! `LIFEBOAT_<SECTION>__<KEY>`, mapped onto config keys (lifeboat's names
//! win, then the backup's over the application's), with `*_FILE` variants
//! for secrets, and warnings for look-alike variables lifeboat does not read.

use std::collections::BTreeMap;
use std::path::Path;

use super::layer::overlay;
use super::secret::{env_secret, read_secret_file};
use super::url::{expand_url, url_fields};
use super::{Config, ConfigError};

/// The keys of the config struct's `section` (`None` for `section` itself
/// at the top: the section names), read from the struct: serde's
/// `deny_unknown_fields` error lists every field, whatever its type or
/// default, so a new key needs no list here. `None`: no such section.
pub(crate) fn keys_of(section: Option<&str>) -> Option<Vec<String>> {
    // A name no key has: the error lists the ones that exist.
    const PROBE: &str = "\u{1}probe";
    let mut inner = toml::Table::new();
    inner.insert(PROBE.into(), toml::Value::Integer(0));
    let probe = match section {
        None => inner,
        Some(s) => toml::Table::from_iter([(s.to_string(), toml::Value::Table(inner))]),
    };
    let err = toml::Value::Table(probe).try_into::<Config>().err()?;
    let message = err.message();
    let listed = message.split_once("expected ")?.1;
    let keys: Vec<String> = listed.split('`').skip(1).step_by(2).map(str::to_string).collect();
    (!keys.is_empty()).then_some(keys)
}

/// What an environment value means for `[section] key`: the type of the
/// key's default decides (a boolean from `true/false/yes/no/1/0/on/off`,
/// a number, a comma-separated list, or a TOML inline array for a list of
/// tables). A key the defaults do not show (optional, or an empty list)
/// is probed: what the struct expects of a text says its type.
fn typed(defaults: &toml::Table, section: &str, key: &str, value: &str) -> Result<toml::Value, String> {
    use toml::Value as V;
    let v = value.trim();
    let shown = defaults.get(section).and_then(|s| s.get(key)).cloned().or_else(|| {
        let probe = toml::Table::from_iter([(
            section.to_string(),
            V::Table(toml::Table::from_iter([(key.to_string(), V::String(String::new()))])),
        )]);
        let err = V::Table(probe).try_into::<Config>().err()?;
        let m = err.message();
        if m.contains("expected a sequence") {
            Some(V::Array(Vec::new()))
        } else if m.contains("expected a boolean") {
            Some(V::Boolean(false))
        } else if m.contains("expected i") || m.contains("expected u") {
            Some(V::Integer(0))
        } else {
            None
        }
    });
    Ok(match shown {
        Some(V::Boolean(_)) => V::Boolean(match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => true,
            "false" | "no" | "0" | "off" => false,
            _ => return Err("not a boolean (expected true/false, yes/no, 1/0 or on/off)".into()),
        }),
        // A text that is no number goes on as it is: the key's own
        // deserializer says what it expects (a port: 1-65535).
        Some(V::Integer(_)) => v.parse::<i64>().map_or_else(|_| V::String(value.to_string()), V::Integer),
        Some(V::Float(_)) => v.parse::<f64>().map_or_else(|_| V::String(value.to_string()), V::Float),
        Some(V::Array(_)) if v.starts_with('[') => {
            let t: toml::Table = format!("v = {v}")
                .parse()
                .map_err(|e: toml::de::Error| format!("not a TOML inline array: {}", e.message().trim_end()))?;
            t["v"].clone()
        }
        Some(V::Array(_)) => V::Array(
            value.split(',').map(str::trim).filter(|x| !x.is_empty()).map(|x| V::String(x.to_string())).collect(),
        ),
        _ => V::String(value.to_string()),
    })
}

/// The deployment's names for lifeboat's settings, each below its
/// `LIFEBOAT_<SECTION>__<KEY>`: (variable, section, key).
const DEPLOYMENT_NAMES: &[(&str, &str, &str)] = &[
    ("BACKUP_RETENTION_DAYS", "retention", "retention_days"),
    ("BACKUP_SCHEDULE", "schedule", "cron"),
    ("BACKUP_MAX_SIZE_MB", "monitor", "max_size_mb"),
    ("BACKUP_MIN_SIZE_MB", "monitor", "min_size_mb"),
    ("BACKUP_MAX_AGE_HOURS", "monitor", "max_age_hours"),
];

/// Variables that look like lifeboat's but are not read: (variable, the
/// one to use instead). Set, they are a warning, never silently ignored.
pub(crate) const LOOKALIKES: &[(&str, &str)] = &[
    ("BACKUP_KEEP_DAYS", "BACKUP_RETENTION_DAYS (or LIFEBOAT_RETENTION__RETENTION_DAYS)"),
    ("BACKUP_DIR", "LIFEBOAT_STORAGE__DIR (or [storage] dir in the config file)"),
    ("SCHEDULE", "BACKUP_SCHEDULE (or LIFEBOAT_SCHEDULE__CRON)"),
];

/// A connection field as text: a port is a number from a URL and a text
/// from `POSTGRES_PORT`, and the two must compare equal.
fn field(t: &toml::Table, k: &str) -> Option<String> {
    t.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
}

/// `user@host:port/name` of the connection fields a layer sets (the
/// missing ones left out), for the warning: never the password.
fn target_of(t: &toml::Table) -> String {
    let f = |k: &str| field(t, k);
    let mut out = String::new();
    if let Some(u) = f("user") {
        out.push_str(&format!("{u}@"));
    }
    out.push_str(&f("host").unwrap_or_default());
    if let Some(p) = f("port") {
        out.push_str(&format!(":{p}"));
    }
    if let Some(n) = f("name") {
        out.push_str(&format!("/{n}"));
    }
    out
}

/// The database layers of the environment, lowest first: libpq's `PG*`,
/// the application's `DATABASE_URL`, the backup's `POSTGRES_*`, then
/// lifeboat's own `BACKUP_DATABASE_URL` (`LIFEBOAT_DATABASE__*` goes on
/// top later). When `DATABASE_URL` and `POSTGRES_*` name different
/// databases (or users), a warning says which one the backup uses and why.
fn database_layer(env: &BTreeMap<String, String>, warnings: &mut Vec<String>) -> Result<toml::Table, ConfigError> {
    let mut db = toml::Table::new();
    let s = |v: &str| toml::Value::String(v.to_string());
    let mut named = |host: &str, port: &str, name: &str, user: &str, pass: &str| -> Result<toml::Table, ConfigError> {
        let mut layer = toml::Table::new();
        for (var, key) in [(host, "host"), (port, "port"), (name, "name"), (user, "user")] {
            let Some(v) = env.get(var) else { continue };
            if key == "port" {
                super::parse_port(v).map_err(|message| ConfigError::Env { name: var.to_string(), message })?;
            }
            if key == "name" && v.contains(',') {
                // The postgres image's init scripts take a list; a backup
                // is of one database.
                warnings.push(format!(
                    "{var} lists several databases ({v:?}), and lifeboat backs up one, so it is not used; set \
                     LIFEBOAT_DATABASE__NAME (or BACKUP_DATABASE_URL) to the database to back up"
                ));
                continue;
            }
            layer.insert(key.into(), s(v));
        }
        if let Some(v) = env_secret(env, pass)? {
            layer.insert("password".into(), s(&v));
        }
        Ok(layer)
    };
    let libpq = named("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD")?;
    let backup = named("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD")?;
    overlay_section(&mut db, libpq);
    // libpq's TLS variables, below the URLs' own sslmode.
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
    let app = match env_secret(env, "DATABASE_URL")? {
        Some(url) => url_fields(&url, "DATABASE_URL")?,
        None => toml::Table::new(),
    };
    let differs = ["host", "port", "name", "user"]
        .iter()
        .any(|k| matches!((field(&app, k), field(&backup, k)), (Some(a), Some(b)) if a != b));
    let (app_target, backup_target) = (target_of(&app), target_of(&backup));
    overlay_section(&mut db, app);
    overlay_section(&mut db, backup);
    let chosen = env.contains_key("BACKUP_DATABASE_URL")
        || env.contains_key("BACKUP_DATABASE_URL_FILE")
        || env.contains_key("LIFEBOAT_DATABASE__URL")
        || env.contains_key("LIFEBOAT_DATABASE__URL_FILE");
    if let Some(url) = env_secret(env, "BACKUP_DATABASE_URL")? {
        overlay_section(&mut db, url_fields(&url, "BACKUP_DATABASE_URL")?);
    }
    if differs && !chosen {
        warnings.push(format!(
            "DATABASE_URL ({app_target}) and POSTGRES_* ({backup_target}) name different databases or users; the \
             backup uses POSTGRES_*: the backup's own names win over the application's connection (and \
             LIFEBOAT_DATABASE__* over both); set BACKUP_DATABASE_URL to choose explicitly"
        ));
    }
    Ok(db)
}

pub(super) fn env_layer(
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<toml::Table, ConfigError> {
    let db = database_layer(env, warnings)?;
    for (var, instead) in LOOKALIKES {
        if env.contains_key(*var) {
            warnings.push(format!("{var} is set but lifeboat does not read it; use {instead}"));
        }
    }

    let mut sections: BTreeMap<String, toml::Table> = BTreeMap::new();
    // (section, key) → the variable that set it, and whether its value came
    // from a secret file (then no message may show it).
    let mut origins: BTreeMap<(String, String), (String, bool)> = BTreeMap::new();
    let defaults = toml::Table::try_from(Config::default()).expect("the defaults serialize");
    // The deployment's names; LIFEBOAT_<SECTION>__<KEY> (below) beats each.
    for (var, section, key) in DEPLOYMENT_NAMES {
        let Some(v) = env.get(*var).filter(|v| !v.trim().is_empty()) else { continue };
        let v =
            typed(&defaults, section, key, v).map_err(|message| ConfigError::Env { name: var.to_string(), message })?;
        sections.entry(section.to_string()).or_default().insert(key.to_string(), v);
        origins.insert((section.to_string(), key.to_string()), (var.to_string(), false));
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
        // The one rule for which key a variable sets: a key of the section
        // is set as it reads (`CA_FILE` sets `ca_file`, `PASSWORD_FILE`
        // sets `password_file`); `<KEY>_FILE` for a key that has no
        // `<key>_file` of its own reads `<key>` from that file (a secret).
        let keys = keys_of(Some(&section)).unwrap_or_default();
        let is_key = |k: &str| keys.iter().any(|x| x == k);
        let base = key.strip_suffix("_file").filter(|b| is_key(b));
        if let Some(base) = base {
            let plain = format!("LIFEBOAT_{}__{}", section.to_uppercase(), base.to_uppercase());
            if env.contains_key(&plain) {
                return Err(ConfigError::Env {
                    name: format!("{plain} and {var}"),
                    message: "both are set; set only one of them".into(),
                });
            }
        }
        let (key, value, secret) = match base {
            Some(k) if !is_key(&key) => (k.to_string(), read_secret_file(Path::new(value), var)?.0, true),
            _ => (key, value.clone(), false),
        };
        let v = typed(&defaults, &section, &key, &value).map_err(|message| ConfigError::Env {
            name: var.clone(),
            message: if secret { format!("the file's content is not a valid {section}.{key}") } else { message },
        })?;
        origins.insert((section.clone(), key.clone()), (var.clone(), secret));
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
    // A password belongs to its user: LIFEBOAT_DATABASE__USER naming
    // another user than POSTGRES_* (or DATABASE_URL) does not take theirs.
    if let (Some(toml::Value::Table(low)), Some(toml::Value::Table(high))) =
        (out.get_mut("database"), top.get("database"))
    {
        let other_user = matches!((low.get("user"), high.get("user")), (Some(l), Some(h)) if l != h);
        if other_user && !high.contains_key("password") && !high.contains_key("password_file") {
            low.remove("password");
        }
    }
    overlay(&mut out, top);
    Ok(out)
}

/// A layer's database fields over the lower ones'. A password belongs to
/// its user: a layer that names another user without a password drops
/// the lower password too (it would be the wrong user's).
fn overlay_section(base: &mut toml::Table, top: toml::Table) {
    let other_user = matches!((base.get("user"), top.get("user")), (Some(b), Some(t)) if b != t);
    if top.contains_key("password") || other_user {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{resolve, test_env as env, Overrides};

    // covers: FR-11.6, FR-11.5
    #[test]
    fn ca_file_sets_ca_file_and_booleans_and_numbers_parse_from_their_usual_spellings() {
        let d = tempfile::tempdir().unwrap();
        let pem = d.path().join("ca.pem");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let e = env(&[
            ("LIFEBOAT_EMAIL__CA_FILE", pem.to_str().unwrap()),
            ("LIFEBOAT_SCHEDULE__CATCH_UP", "false"),
            ("LIFEBOAT_EMAIL__ALLOW_INSECURE", "yes"),
            ("LIFEBOAT_EMAIL__ATTACH_LIMIT_MB", "10"),
        ]);
        let c = resolve(None, &e, &Overrides::default()).unwrap();
        assert_eq!(c.email.ca_file.as_deref(), Some(pem.as_path()));
        assert!(!c.schedule.catch_up && c.email.allow_insecure);
        assert_eq!(c.email.attach_limit_mb, 10.0);
        for (v, want) in [("0", false), ("NO", false), ("off", false), ("1", true), ("True", true), ("on", true)] {
            let c = resolve(None, &env(&[("LIFEBOAT_SCHEDULE__CATCH_UP", v)]), &Overrides::default()).unwrap();
            assert_eq!(c.schedule.catch_up, want, "{v}");
        }
        let err = resolve(None, &env(&[("LIFEBOAT_SCHEDULE__CATCH_UP", "maybe")]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("LIFEBOAT_SCHEDULE__CATCH_UP") && err.to_string().contains("not a boolean"));
        // A `<key>_FILE` whose key has no `_file` twin is still a secret file.
        let hook = d.path().join("hook");
        std::fs::write(&hook, "https://hooks.example/T0k3n\n").unwrap();
        let c = resolve(
            None,
            &env(&[("LIFEBOAT_ALERTS__WEBHOOK_URL_FILE", hook.to_str().unwrap())]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.alerts.webhook_url.unwrap().expose(), "https://hooks.example/T0k3n");
    }

    /// Values for keys whose default says nothing (no default, or a value
    /// that must be valid in a particular way). `{dir}` is a temporary
    /// directory holding `secret` (a password) and `url` (a database URL).
    const SAMPLES: &[(&str, &str, &str)] = &[
        ("database", "url", "postgres://u:pw@url-host:6000/db"),
        // Two entries: a key file's path and, after the comma, a base64 key line.
        ("restore", "trusted_keys", "{dir}/trusted.pub,{pk}"),
        ("database", "host", "db.example"),
        ("database", "name", "app"),
        ("database", "user", "backup"),
        ("database", "password", "pw"),
        ("database", "password_file", "{dir}/secret"),
        ("database", "pg_dump", "/usr/lib/postgresql/16/bin/pg_dump"),
        ("database", "sslmode", "require"),
        ("database", "sslrootcert", "{dir}/root.pem"),
        ("database", "sslcert", "{dir}/client.pem"),
        ("database", "sslkey", "{dir}/client.key"),
        ("scope", "default", "schema"),
        ("scope", "full", "users, roles"),
        ("scope", "schema_only", "logs"),
        ("scope", "window", "[{ tables = [\"payments\"], column = \"paid_at\", keep = \"2 months\" }]"),
        ("scope", "optional_tables", "users"),
        ("files", "base_dir", "{dir}"),
        ("files", "include", ".env.production, ssl/**"),
        ("files", "optional", "nginx.prod.conf"),
        ("storage", "dir", "{dir}/backups"),
        ("storage", "name_prefix", "nightly"),
        ("email", "smtp_host", "smtp.example"),
        ("email", "tls", "tls"),
        ("email", "username", "backup@example.com"),
        ("email", "password", "pw"),
        ("email", "password_file", "{dir}/secret"),
        ("email", "from", "Backup <backup@example.com>"),
        ("email", "to", "a@example.com, b@example.com"),
        ("email", "ca_file", "{dir}/ca.pem"),
        ("email", "templates_dir", "{dir}/templates"),
        ("email", "app_name", "Smart AI Hub"),
        ("email", "backoff", "2 minutes"),
        ("email", "timeout", "90s"),
        ("alerts", "webhook_url", "https://hooks.example/x"),
        ("alerts", "webhook_url_file", "{dir}/url"),
        ("alerts", "ping_url", "https://hc-ping.example/uuid"),
        ("alerts", "ping_url_file", "{dir}/url"),
        ("alerts", "slack_url", "slack://T0/B0/x-token"),
        ("alerts", "slack_url_file", "{dir}/url"),
        ("alerts", "discord_url", "discord://token@1234"),
        ("alerts", "discord_url_file", "{dir}/url"),
        ("alerts", "telegram_url", "telegram://1:token@telegram?chats=5"),
        ("alerts", "telegram_url_file", "{dir}/telegram"),
        ("alerts", "ntfy_url", "ntfy://ntfy.example/topic"),
        ("alerts", "ntfy_url_file", "{dir}/url"),
        ("alerts", "timeout", "20s"),
        ("retention", "keep_last", "5"),
        ("schedule", "cron", "30 3 * * *"),
        ("schedule", "timezone", "Asia/Bangkok"),
        ("schedule", "run_timeout", "3 hours"),
        ("schedule", "retry_backoff", "2 minutes"),
        ("schedule", "shutdown_grace", "30s"),
        ("monitor", "interval", "10 minutes"),
        ("log", "file", "{dir}/backup.log"),
        ("log", "format", "json"),
        ("verify", "restore_test_url", "postgres://rt@scratch/postgres"),
        ("verify", "restore_test_url_file", "{dir}/dburl"),
        ("links", "public_url", "https://backup.example"),
        ("links", "secret_file", "{dir}/link.key"),
        ("http", "metrics_listen", "127.0.0.1:9187"),
        ("http", "basic_auth_user", "admin"),
        ("http", "basic_auth_password", "pw"),
        ("http", "basic_auth_password_file", "{dir}/secret"),
        ("encryption", "recipients", "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"),
        ("remote", "url", "s3://bucket/prefix"),
        ("remote", "endpoint", "http://127.0.0.1:8333"),
        ("remote", "access_key_id", "AKIAEXAMPLE"),
        ("remote", "access_key_id_file", "{dir}/secret"),
        ("remote", "secret_access_key", "pw"),
        ("remote", "secret_access_key_file", "{dir}/secret"),
    ];

    /// Keys that are valid only beside another: (section, key, variable, value).
    const COMPANIONS: &[(&str, &str, &str, &str)] = &[
        ("scope", "optional_tables", "LIFEBOAT_SCOPE__FULL", "users"),
        ("files", "include", "LIFEBOAT_FILES__BASE_DIR", "{dir}"),
        ("files", "optional", "LIFEBOAT_FILES__BASE_DIR", "{dir}"),
        ("email", "smtp_host", "LIFEBOAT_EMAIL__TO", "a@example.com"),
        ("email", "smtp_host", "LIFEBOAT_EMAIL__FROM", "backup@example.com"),
        ("http", "basic_auth_user", "LIFEBOAT_HTTP__BASIC_AUTH_PASSWORD", "pw"),
        ("http", "basic_auth_password", "LIFEBOAT_HTTP__BASIC_AUTH_USER", "admin"),
        ("http", "basic_auth_password_file", "LIFEBOAT_HTTP__BASIC_AUTH_USER", "admin"),
        ("remote", "access_key_id", "LIFEBOAT_REMOTE__SECRET_ACCESS_KEY", "pw"),
        ("remote", "access_key_id_file", "LIFEBOAT_REMOTE__SECRET_ACCESS_KEY", "pw"),
        ("remote", "secret_access_key", "LIFEBOAT_REMOTE__ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("remote", "secret_access_key_file", "LIFEBOAT_REMOTE__ACCESS_KEY_ID", "AKIAEXAMPLE"),
    ];

    /// Every key of every section of the config struct (the list comes
    /// from the struct itself) is set from `LIFEBOAT_<SECTION>__<KEY>`
    /// alone, and, where the resolved config shows it, to that value.
    // covers: FR-11.6
    #[test]
    fn every_key_of_the_config_struct_is_settable_from_the_environment() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("secret"), "pw\n").unwrap();
        std::fs::write(d.path().join("url"), "https://hooks.example/from-file\n").unwrap();
        std::fs::write(d.path().join("telegram"), "telegram://1:token@telegram?chats=5\n").unwrap();
        std::fs::write(d.path().join("dburl"), "postgres://rt@scratch:6543/postgres\n").unwrap();
        std::fs::create_dir(d.path().join("templates")).unwrap();
        let pk = minisign::KeyPair::generate_unencrypted_keypair().unwrap().pk.to_base64();
        std::fs::write(d.path().join("trusted.pub"), format!("untrusted comment: a test key\n{pk}\n")).unwrap();
        let dir = d.path().to_str().unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let sections = keys_of(None).expect("the top-level keys");
        assert!(sections.len() >= 15 && sections.contains(&"remote".to_string()), "{sections:?}");
        let mut failures = Vec::new();
        let mut set = 0;
        for section in &sections {
            let keys = keys_of(Some(section)).unwrap_or_else(|| panic!("[{section}] lists no keys"));
            for key in keys {
                let var = format!("LIFEBOAT_{}__{}", section.to_uppercase(), key.to_uppercase());
                let sample = SAMPLES
                    .iter()
                    .find(|(s, k, _)| s == section && *k == key)
                    .map(|x| x.2.replace("{dir}", dir).replace("{pk}", &pk));
                let (value, expect) = match (defaults.get(section).and_then(|s| s.get(&key)), sample) {
                    (_, Some(v)) => (v.clone(), None),
                    (Some(toml::Value::Boolean(b)), None) => {
                        ((if *b { "no" } else { "yes" }).to_string(), Some(toml::Value::Boolean(!b)))
                    }
                    (Some(toml::Value::Integer(n)), None) => ((n + 1).to_string(), Some(toml::Value::Integer(n + 1))),
                    (Some(toml::Value::Float(f)), None) => ((f + 1.0).to_string(), Some(toml::Value::Float(f + 1.0))),
                    (Some(toml::Value::String(v)), None) => (v.clone(), None),
                    (other, None) => {
                        failures.push(format!("{var}: add a sample value to SAMPLES (default {other:?})"));
                        continue;
                    }
                };
                let mut e: BTreeMap<String, String> = env(&[(var.as_str(), value.as_str())]);
                if section == "remote" && key != "url" {
                    e.insert("LIFEBOAT_REMOTE__URL".into(), "s3://bucket/prefix".into());
                }
                for (_, _, var, v) in COMPANIONS.iter().filter(|(s, k, ..)| s == section && *k == key) {
                    e.insert(var.to_string(), v.replace("{dir}", dir));
                }
                match resolve(None, &e, &Overrides::default()) {
                    Err(err) => failures.push(format!("{var}={value:?}: {err}")),
                    Ok(c) => {
                        set += 1;
                        let shown = toml::Table::try_from(&c).unwrap();
                        let got = shown.get(section).and_then(|s| s.get(&key)).cloned();
                        let want = expect.or_else(|| typed(&defaults, section, &key, &value).ok());
                        match (got, want) {
                            // Secrets show as ***; `*_file` keys are read and cleared.
                            (None, _) | (Some(toml::Value::String(_)), _) if value.is_empty() => {}
                            (Some(toml::Value::String(g)), _) if g == "***" => {}
                            (Some(g), Some(w)) if g != w && !matches!(g, toml::Value::String(_)) => {
                                failures.push(format!("{var}={value:?} resolved to {g:?}, not {w:?}"))
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{} of the keys failed:\n{}", failures.len(), failures.join("\n"));
        assert!(set > 80, "only {set} keys");
    }
}

#[cfg(test)]
mod shared_env_file {
    use crate::config::email::SmtpTls;
    use crate::config::{resolve, test_env as env, Config, Overrides};

    fn ok(pairs: &[(&str, &str)]) -> Config {
        resolve(None, &env(pairs), &Overrides::default()).unwrap()
    }

    /// Smart AI Hub's `.env.production`: the application's DATABASE_URL
    /// beside the backup's POSTGRES_*.
    const THEIRS: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgresql://username:app-pw@localhost:5432/smartaihub_prod"),
        ("POSTGRES_HOST", "postgres"),
        ("POSTGRES_PORT", "5432"),
        ("POSTGRES_DB", "smart_ai_hub"),
        ("POSTGRES_USER", "postgres"),
        ("POSTGRES_PASSWORD", "pg-pw"),
    ];

    // covers: FR-11.4, FR-11.6
    #[test]
    fn the_backups_postgres_names_beat_the_applications_database_url_and_say_so_once() {
        let c = ok(THEIRS);
        let d = &c.database;
        assert_eq!((d.host.as_str(), d.name.as_str(), d.user.as_str()), ("postgres", "smart_ai_hub", "postgres"));
        assert_eq!(d.password.as_ref().unwrap().expose(), "pg-pw");
        let w: Vec<&String> = c.warnings.iter().filter(|w| w.contains("DATABASE_URL")).collect();
        assert_eq!(w.len(), 1, "{:?}", c.warnings);
        assert!(w[0].contains("username@localhost:5432/smartaihub_prod"), "{}", w[0]);
        assert!(w[0].contains("postgres@postgres:5432/smart_ai_hub") && w[0].contains("uses POSTGRES_*"), "{}", w[0]);
        assert!(!w[0].contains("app-pw") && !w[0].contains("pg-pw"), "{}", w[0]);

        // The same database: no warning.
        let same = ok(&[
            ("DATABASE_URL", "postgres://app:pw@db:5432/app"),
            ("POSTGRES_HOST", "db"),
            ("POSTGRES_PORT", "5432"),
            ("POSTGRES_DB", "app"),
        ]);
        assert!(same.warnings.is_empty(), "{:?}", same.warnings);

        // Lifeboat's own names beat both; BACKUP_DATABASE_URL is a choice: no warning.
        let mut e = THEIRS.to_vec();
        e.push(("BACKUP_DATABASE_URL", "postgres://lifeboat_backup:b-pw@postgres:5432/smart_ai_hub"));
        let c = ok(&e);
        assert_eq!(c.database.user, "lifeboat_backup");
        assert_eq!(c.database.password.as_ref().unwrap().expose(), "b-pw");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        e.push(("LIFEBOAT_DATABASE__USER", "other"));
        let c = ok(&e);
        assert_eq!(c.database.user, "other", "LIFEBOAT_DATABASE__* beats BACKUP_DATABASE_URL");
        assert!(c.database.password.is_none(), "another user's password");

        // A password belongs to its user: POSTGRES_USER without a password
        // does not take the application's.
        let c = ok(&[("DATABASE_URL", "postgres://app:app-pw@db/app"), ("POSTGRES_USER", "postgres")]);
        assert_eq!(c.database.user, "postgres");
        assert!(c.database.password.is_none(), "the application's password for another user");
    }

    // covers: FR-11.5, FR-11.6
    #[test]
    fn a_secret_set_directly_and_as_a_lifeboat_file_is_lifeboats_and_a_conflict_in_one_name_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("db_password");
        std::fs::write(&f, "from-the-secret\n").unwrap();
        let mut e = THEIRS.to_vec();
        e.push(("LIFEBOAT_DATABASE__PASSWORD_FILE", f.to_str().unwrap()));
        let c = ok(&e);
        assert_eq!(c.database.password.as_ref().unwrap().expose(), "from-the-secret");
        let err = resolve(
            None,
            &env(&[("POSTGRES_PASSWORD", "pw"), ("POSTGRES_PASSWORD_FILE", f.to_str().unwrap())]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE") && err.contains("set only one"), "{err}");
    }

    // covers: FR-11.4, FR-11.6, FR-4.2
    #[test]
    fn backup_size_and_age_limits_and_smtp_secure_are_honoured_below_lifeboats_names() {
        let c = ok(&[
            ("BACKUP_MAX_SIZE_MB", "300"),
            ("BACKUP_MIN_SIZE_MB", "2"),
            ("BACKUP_MAX_AGE_HOURS", "49"),
            ("SMTP_SECURE", "true"),
        ]);
        assert_eq!((c.monitor.max_size_mb, c.monitor.min_size_mb, c.monitor.max_age_hours), (300, 2, 49));
        assert_eq!(c.email.tls, SmtpTls::Tls);
        assert_eq!(ok(&[("SMTP_SECURE", "false")]).email.tls, SmtpTls::Starttls);
        let c = ok(&[
            ("BACKUP_MAX_SIZE_MB", "300"),
            ("LIFEBOAT_MONITOR__MAX_SIZE_MB", "400"),
            ("SMTP_SECURE", "false"),
            ("LIFEBOAT_EMAIL__TLS", "tls"),
        ]);
        assert_eq!((c.monitor.max_size_mb, c.email.tls), (400, SmtpTls::Tls));
        for (var, value) in [("BACKUP_MIN_SIZE_MB", "one"), ("SMTP_SECURE", "maybe")] {
            let err = resolve(None, &env(&[(var, value)]), &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains(var), "{err}");
        }
    }

    // covers: FR-11.6
    #[test]
    fn a_variable_that_looks_like_lifeboats_but_is_not_is_a_warning_naming_the_one_to_use() {
        let c = ok(&[
            ("BACKUP_KEEP_DAYS", "7"),
            ("BACKUP_DIR", "/srv/backups"),
            ("SCHEDULE", "0 3 * * *"),
            ("POSTGRES_DB", "smart_ai_hub,analytics"),
        ]);
        let all = c.warnings.join("\n");
        for (var, instead) in [
            ("BACKUP_KEEP_DAYS", "BACKUP_RETENTION_DAYS"),
            ("BACKUP_DIR", "LIFEBOAT_STORAGE__DIR"),
            ("SCHEDULE", "BACKUP_SCHEDULE"),
            ("POSTGRES_DB", "LIFEBOAT_DATABASE__NAME"),
        ] {
            assert!(c.warnings.iter().any(|w| w.starts_with(var) && w.contains(instead)), "{var}: {all}");
        }
        assert_eq!(c.database.name, crate::config::DatabaseConfig::default().name, "a list is not a database name");
        assert_eq!(c.storage.dir, std::path::PathBuf::from("backups"), "BACKUP_DIR is not read");
    }
}
