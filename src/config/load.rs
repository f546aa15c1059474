//! The one place that knows the precedence flags > env > file > defaults:
//! [`resolve`] overlays the layers as TOML tables and deserializes once;
//! [`load`] reads the file and the process environment first. `validate`
//! checks what serde cannot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::env::env_layer;
use super::layer::overlay;
use super::secret::{check_file_pairs, read_secret_file};
use super::url::{expand_url, url_fields};
use super::{Config, ConfigError, ConfigPath, Overrides};
use crate::model::TableName;

/// The one function that knows the precedence flags > env > file > defaults.
pub fn resolve(
    file: Option<(&Path, &str)>,
    env: &BTreeMap<String, String>,
    flags: &Overrides,
) -> Result<Config, ConfigError> {
    let mut merged = toml::Table::new();
    let base_dir = file.and_then(|(p, _)| p.parent()).map(Path::to_path_buf);
    let mut tz_warnings = Vec::new();
    overlay(&mut merged, super::env::tz_layer(env, &mut tz_warnings));
    let mut file_remote = None;

    if let Some((path, text)) = file {
        // Deserialize straight from the text first: that error has the line.
        toml::from_str::<Config>(text).map_err(|e| parse_error(path, text, &e))?;
        let mut t: toml::Table = text.parse().map_err(|e: toml::de::Error| parse_error(path, text, &e))?;
        check_file_pairs(&t).map_err(|message| ConfigError::Parse { path: path.to_path_buf(), message })?;
        expand_url(&mut t, &format!("{} [database] url", path.display()))?;
        file_remote = t.get("remote").and_then(|r| r.as_table()).cloned();
        overlay(&mut merged, t);
    }

    let mut env_warnings = Vec::new();
    overlay(&mut merged, env_layer(env, &mut env_warnings)?);

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

    let log_configured = merged.get("log").and_then(|l| l.get("file")).is_some();
    let database_configured = super::database_named(&merged);
    let mut warnings = terse_minute_windows(&merged);
    warnings.extend(tz_warnings);
    warnings.extend(env_warnings);
    let mut config: Config = toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
    config.warnings = warnings;
    config.log.configured = log_configured;
    config.database.configured = database_configured;
    config.warnings.extend(super::links::warnings(&config.links));

    if let Some(path) = config.database.password_file.take() {
        // Name the layer the path came from: the environment's variable when
        // it holds this path, else the file (a flag cannot set it).
        const VAR: &str = "LIFEBOAT_DATABASE__PASSWORD_FILE";
        let origin = match (env.get(VAR), file) {
            (Some(v), _) if Path::new(v) == path => VAR.to_string(),
            (_, Some((p, _))) => format!("{} [database] password_file", p.display()),
            _ => "database.password_file".to_string(),
        };
        config.database.password = Some(read_secret_file(&path, &origin)?);
    }
    if config.database.password.is_none() {
        // As libpq: the password file only when nothing else set one.
        config.database.password = super::url::pgpass_password(&config.database.client_config(), env);
    }
    super::email::finish(&mut config.email)?;
    super::alerts::finish(&mut config.alerts)?;
    super::http::finish(&mut config.http)?;
    super::verify::finish(&mut config.verify)?;
    super::restore::finish(&config.restore)?;
    super::remote::finish(&mut config.remote, env, file_remote.as_ref())?;
    if let (Some(base), Some(dir)) = (&base_dir, &config.files.base_dir) {
        if dir.is_relative() {
            config.files.base_dir = Some(base.join(dir));
        }
    }
    validate(&config)?;
    Ok(config)
}

/// A TOML error as file, line, column, key and the bare message. toml's own
/// `Display` quotes the offending line, and that line may hold a secret
/// (`url = postgres://app:pw@db/app` without quotes), so it is never shown.
fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim_end().to_string();
    let Some(span) = e.span() else { return ConfigError::Parse { path: path.to_path_buf(), message } };
    let before = text.get(..span.start).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    let this_line = text[line_start..].lines().next().unwrap_or("");
    // The key is safe to show when the line starts with a plain key: key
    // names are not secrets, values may be.
    let key = this_line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)));
    let at = match key {
        Some(k) => format!("line {line}, column {column} (key {k})"),
        None => format!("line {line}, column {column}"),
    };
    ConfigError::Parse { path: path.to_path_buf(), message: format!("{at}: {message}") }
}

/// `keep = "3m"` is 3 minutes, a window nobody means: warn, but keep the
/// documented meaning (`m` is minutes, FR-11.9).
fn terse_minute_windows(merged: &toml::Table) -> Vec<String> {
    let windows = merged.get("scope").and_then(|s| s.get("window")).and_then(|w| w.as_array());
    windows
        .into_iter()
        .flatten()
        .filter_map(|w| w.get("keep")?.as_str())
        .filter(|k| crate::model::Span::is_terse_minutes(k))
        .map(|k| {
            let n = k.trim().trim_end_matches(['m', 'M']).trim_end();
            format!(
                "scope.window keep = {k:?} keeps {n} minutes of rows; did you mean {n} months? \
                 write \"{n} months\", or \"{n} min\" if minutes are meant"
            )
        })
        .collect()
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
    super::links::validate(&c.links)?;
    super::encryption::validate(&c.encryption)?;
    let p = &c.storage.name_prefix;
    if p.is_empty() || !p.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') {
        return Err(ConfigError::Invalid(format!(
            "storage.name_prefix {p:?} must be non-empty and use only letters, digits, '_' and '-'"
        )));
    }
    crate::schedule::Schedule::parse(&c.schedule.cron, &c.schedule.timezone).map_err(ConfigError::Invalid)?;
    if c.retention.keep_last == 0 {
        return Err(ConfigError::Invalid(
            "retention.keep_last must be at least 1: the newest good archive is never deleted".into(),
        ));
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
    for t in &c.scope.optional_tables {
        if !seen.contains_key(t) {
            return Err(ConfigError::Invalid(format!(
                "scope.optional_tables names {t}, which has no mode; list it in scope.full, scope.schema_only or a \
                 scope.window too (optional_tables only says it may be missing)"
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
        // The same syntax `plan::files::matcher` compiles (kept here so that
        // config does not depend on plan).
        globset::GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| ConfigError::Invalid(format!("files pattern {p:?}: {}", e.kind())))?;
    }
    if (!c.files.include.is_empty() || !c.files.optional.is_empty()) && c.files.base_dir.is_none() {
        return Err(ConfigError::Invalid(
            "files.include/optional need files.base_dir (the directory the patterns are relative to)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::test_env as env;

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
            "DATABASE_URL fills what POSTGRES_* leaves out, and beats the file; Prisma's ?schema is ignored"
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

    // covers: FR-10.4
    #[test]
    fn an_optional_table_needs_a_mode_of_its_own() {
        let err = resolve(
            Some((Path::new("a.toml"), "[scope]\nfull = [\"users\"]\noptional_tables = [\"_prisma_migrations\"]\n")),
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("public._prisma_migrations") && err.contains("has no mode"), "{err}");

        let c = resolve(
            Some((Path::new("a.toml"), "[scope]\nfull = [\"users\", \"_prisma_migrations\"]\n")),
            &env(&[("LIFEBOAT_SCOPE__OPTIONAL_TABLES", "_prisma_migrations")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.scope.optional_tables, vec![TableName::new("public", "_prisma_migrations")]);
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
        assert!(!err.contains(": a"), "{err}");
    }

    // covers: FR-11.4, FR-11.6, FR-28.2
    #[test]
    fn tls_settings_come_from_urls_config_keys_and_pgssl_variables_with_the_usual_precedence() {
        use crate::config::SslMode;
        let c = resolve(None, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.database.sslmode, SslMode::Prefer, "libpq's default");
        let e = env(&[("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", "/etc/ca.pem")]);
        let c = resolve(None, &e, &Overrides::default()).unwrap();
        assert_eq!(
            (c.database.sslmode, c.database.sslrootcert.as_deref()),
            (SslMode::VerifyCa, Some(Path::new("/etc/ca.pem")))
        );
        let mut e2 = e.clone();
        e2.insert(
            "DATABASE_URL".into(),
            "postgres://u@h/d?sslmode=require&sslcert=/c.pem&sslkey=/k.pem&schema=public".into(),
        );
        let c = resolve(None, &e2, &Overrides::default()).unwrap();
        assert_eq!(c.database.sslmode, SslMode::Require, "DATABASE_URL beats PGSSLMODE");
        assert_eq!(c.database.sslrootcert.as_deref(), Some(Path::new("/etc/ca.pem")), "kept from PGSSLROOTCERT");
        assert_eq!(
            (c.database.sslcert.as_deref(), c.database.sslkey.as_deref()),
            (Some(Path::new("/c.pem")), Some(Path::new("/k.pem")))
        );
        e2.insert("LIFEBOAT_DATABASE__SSLMODE".into(), "verify-full".into());
        let c = resolve(Some((Path::new("a.toml"), "[database]\nsslmode = \"disable\"\n")), &e2, &Overrides::default())
            .unwrap();
        assert_eq!(c.database.sslmode, SslMode::VerifyFull);
        let c = resolve(
            Some((Path::new("a.toml"), "[database]\nsslmode = \"disable\"\n")),
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.database.sslmode, SslMode::Disable);

        let err =
            resolve(None, &env(&[("DATABASE_URL", "postgres://u:pw@h/d?sslmode=verify-fulll")]), &Overrides::default())
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("verify-fulll") && err.contains("verify-ca, verify-full") && !err.contains("pw@"),
            "{err}"
        );
        let err =
            resolve(Some((Path::new("a.toml"), "[database]\nsslmode = \"allow\"\n")), &env(&[]), &Overrides::default())
                .unwrap_err()
                .to_string();
        assert!(err.contains("allow") && err.contains("verify-full"), "{err}");
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

    // covers: FR-11.3
    #[test]
    fn lifeboat_names_without_a_section_are_not_overrides() {
        let e = env(&[("LIFEBOAT_VERSION", "1"), ("LIFEBOAT_HOST", "elsewhere")]);
        let c = resolve(None, &e, &Overrides::default()).unwrap();
        assert_eq!(c.database.host, "localhost", "LIFEBOAT_HOST is not LIFEBOAT_DATABASE__HOST");
        let err = resolve(None, &env(&[("LIFEBOAT_SCOPEE__FULL", "a")]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("LIFEBOAT_SCOPEE__FULL") && err.to_string().contains("`scope`"), "{err}");
    }

    // covers: FR-11.2, FR-11.7, SC-2.4
    #[test]
    fn a_parse_error_shows_position_key_and_message_but_never_the_line() {
        let p = Path::new("/etc/lb.toml");
        for (text, at) in [
            ("[database]\nurl = postgres://app:Sup3rS3cret@db/app\n", "line 2, column 7 (key url)"),
            ("[database]\n  password = Sup3rS3cret\n", "line 2, column 14 (key password)"),
            ("[database]\npostgres://app:Sup3rS3cret@db/app\n", "line 2, column"),
            ("[database]\nhost = \"x\"\npasword = \"Sup3rS3cret\"\n", "line 3, column 1 (key pasword)"),
        ] {
            let err = resolve(Some((p, text)), &env(&[]), &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("/etc/lb.toml") && err.contains(at), "{at}: {err}");
            assert!(!err.contains("S3cret") && !err.contains(" | "), "{err}");
        }
    }

    // covers: FR-11.2, FR-11.3, FR-11.4
    #[test]
    fn one_port_rule_for_every_layer() {
        let file = |t: &str| resolve(Some((Path::new("a.toml"), t)), &env(&[]), &Overrides::default());
        assert_eq!(file("[database]\nport = 6543\n").unwrap().database.port, 6543);
        for bad in ["0", "65536", "-1", "\"0\""] {
            let err = file(&format!("[database]\nport = {bad}\n")).unwrap_err().to_string();
            assert!(err.contains("1-65535") && err.contains("line 2"), "{bad}: {err}");
        }
        for var in ["PGPORT", "POSTGRES_PORT", "LIFEBOAT_DATABASE__PORT"] {
            assert_eq!(resolve(None, &env(&[(var, " 6543 ")]), &Overrides::default()).unwrap().database.port, 6543);
            for bad in ["0", "Sup3rS3cret"] {
                let err = resolve(None, &env(&[(var, bad)]), &Overrides::default()).unwrap_err().to_string();
                assert!(err.contains(var) && err.contains("1-65535") && !err.contains("S3cret"), "{err}");
            }
        }
        let err = resolve(None, &env(&[("DATABASE_URL", "postgres://u@h:0/d")]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL") && err.to_string().contains("1-65535"), "{err}");
    }

    // covers: FR-11.5, SC-2.4
    #[test]
    fn a_value_from_a_secret_file_is_never_shown_in_an_error() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("s");
        std::fs::write(&f, "Sup3rS3cret\n").unwrap();
        let e = env(&[("LIFEBOAT_DATABASE__LOCK_TIMEOUT_FILE", f.to_str().unwrap())]);
        let err = resolve(None, &e, &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("LIFEBOAT_DATABASE__LOCK_TIMEOUT_FILE") && !err.contains("S3cret"), "{err}");
        // Only the variable that is wrong is named.
        let e = env(&[("LIFEBOAT_DATABASE__HOST", "h"), ("LIFEBOAT_DATABASE__LOCK_TIMEOUT", "soon")]);
        let err = resolve(None, &e, &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("LIFEBOAT_DATABASE__LOCK_TIMEOUT:") && !err.contains("__HOST"), "{err}");
    }

    // covers: FR-11.9
    #[test]
    fn a_window_in_bare_minutes_is_kept_but_warned_about() {
        let c = resolve(
            Some((Path::new("a.toml"), "[[scope.window]]\ntables = [\"t\"]\nkeep = \"3m\"\n")),
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.scope.window[0].keep.to_string(), "3 minutes");
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].contains("did you mean 3 months") && c.warnings[0].contains("\"3 min\""),
            "{:?}",
            c.warnings
        );
        let c = resolve(None, &env(&[("LIFEBOAT_STORAGE__DIR", "/b")]), &Overrides::default()).unwrap();
        assert!(c.warnings.is_empty());
        // A timeout in minutes is what minutes are for.
        let c = resolve(
            Some((Path::new("a.toml"), "[database]\nlock_timeout = \"3m\"\n")),
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
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
