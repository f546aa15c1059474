//! `[email]`: how mail reaches the administrators (SMTP server, TLS, AUTH,
//! recipients, attachment limit, retries, templates). The password also has
//! a `password_file` form; [`finish`] reads it and checks the section once
//! merged. The other alert channels are `[alerts]` (`alerts.rs`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::read_secret_file;
use super::{ConfigError, Secret};
use crate::model::Span;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer
    /// (never downgraded). Port 587.
    #[default]
    Starttls,
    /// TLS from the first byte ("implicit TLS", SMTPS). Port 465.
    Tls,
    /// No TLS at all: refused unless `allow_insecure = true`.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// No host: mail is off (success mails are `skipped`, alerts go only to
    /// the other channels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    #[serde(deserialize_with = "de_lenient")]
    pub smtp_port: u16,
    pub tls: SmtpTls,
    #[serde(deserialize_with = "de_lenient")]
    pub allow_insecure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Read into `password` by `finish`; always `None` afterwards.
    #[serde(skip_serializing)]
    pub password_file: Option<PathBuf>,
    /// `"Name <address>"` or a bare address; default: `username`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: Vec<String>,
    /// The largest *encoded* message (base64 attachment and headers
    /// included) that may carry the archive, in MB of 1,000,000 bytes.
    #[serde(deserialize_with = "de_lenient")]
    pub attach_limit_mb: f64,
    /// An extra trust root (PEM) for a private CA; verification stays on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Files here override the built-in templates of the same name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templates_dir: Option<PathBuf>,
    /// The name in subjects and bodies; default: the database name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// Tries per message, the first included: 4 = one try plus three retries.
    #[serde(deserialize_with = "de_lenient")]
    pub attempts: u32,
    /// The wait before each retry (the same every time).
    pub backoff: Span,
    /// Limit of each SMTP connection and command.
    pub timeout: Span,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_host: None,
            smtp_port: 587,
            tls: SmtpTls::default(),
            allow_insecure: false,
            username: None,
            password: None,
            password_file: None,
            from: None,
            to: Vec::new(),
            attach_limit_mb: 25.0,
            ca_file: None,
            templates_dir: None,
            app_name: None,
            attempts: 4,
            backoff: "1 minute".parse().expect("valid"),
            timeout: "60s".parse().expect("valid"),
        }
    }
}

impl EmailConfig {
    /// Whether mail is configured at all.
    pub fn enabled(&self) -> bool {
        self.smtp_host.is_some()
    }

    /// The sender: `from`, else the SMTP user name.
    pub fn sender(&self) -> Option<&str> {
        self.from.as_deref().or(self.username.as_deref())
    }

    /// `host:port`, for messages.
    pub fn display_server(&self) -> String {
        format!("{}:{}", self.smtp_host.as_deref().unwrap_or("?"), self.smtp_port)
    }
}

/// Numbers and booleans arrive as strings from the environment and as
/// themselves from the file.
fn de_lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + std::str::FromStr,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V<T> {
        Value(T),
        Text(String),
    }
    match V::<T>::deserialize(d)? {
        V::Value(v) => Ok(v),
        V::Text(s) => s.trim().parse().map_err(|_| serde::de::Error::custom(format!("invalid value {s:?}"))),
    }
}

/// Reads `password_file` and checks the merged section.
pub(super) fn finish(email: &mut EmailConfig) -> Result<(), ConfigError> {
    if let Some(p) = email.password_file.take() {
        email.password = Some(read_secret_file(&p, "email.password_file")?);
    }
    if !email.enabled() {
        return Ok(());
    }
    let invalid = |m: String| Err(ConfigError::Invalid(m));
    if email.to.is_empty() {
        return invalid(
            "[email] smtp_host is set but nobody receives mail: set [email] to (or ADMIN_EMAILS=\"a@x, b@y\")".into(),
        );
    }
    if email.sender().is_none() {
        return invalid("[email] needs a sender: set from (or SMTP_FROM), e.g. \"Backup <backup@example.com>\"".into());
    }
    if email.tls == SmtpTls::None && !email.allow_insecure {
        return invalid(
            "[email] tls = \"none\" would send the SMTP password and the backup in clear text; use \"starttls\" \
             (port 587) or \"tls\" (port 465), or set allow_insecure = true for a relay on a trusted network"
                .into(),
        );
    }
    if email.password.is_some() && email.username.is_none() {
        return invalid("[email] has a password but no username (SMTP_USER); set both or neither".into());
    }
    if email.attempts == 0 {
        return invalid("[email] attempts must be at least 1".into());
    }
    if !(email.attach_limit_mb.is_finite() && email.attach_limit_mb >= 0.0) {
        return invalid("[email] attach_limit_mb must be a number of megabytes, 0 or more".into());
    }
    Ok(())
}

/// The deployment's own variable names (`SMTP_*`, `ADMIN_EMAILS`) as an
/// `[email]` table, below the `LIFEBOAT_EMAIL__*` names.
pub(super) fn deployment_env(
    env: &std::collections::BTreeMap<String, String>,
    secret: impl Fn(&str) -> Result<Option<String>, ConfigError>,
) -> Result<toml::Table, ConfigError> {
    let mut t = toml::Table::new();
    for (var, key) in
        [("SMTP_HOST", "smtp_host"), ("SMTP_PORT", "smtp_port"), ("SMTP_USER", "username"), ("SMTP_FROM", "from")]
    {
        if let Some(v) = env.get(var).filter(|v| !v.trim().is_empty()) {
            t.insert(key.into(), toml::Value::String(v.trim().to_string()));
        }
    }
    // nodemailer's `secure`: true is TLS from the first byte (port 465),
    // false is STARTTLS (never a plain connection: that is `tls = "none"`).
    if let Some(v) = env.get("SMTP_SECURE").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let tls = match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => "tls",
            "false" | "no" | "0" | "off" => "starttls",
            _ => {
                return Err(ConfigError::Env {
                    name: "SMTP_SECURE".into(),
                    message: format!(
                        "{v:?} is not a boolean: true means TLS from the first byte (port 465), false STARTTLS \
                         (port 587)"
                    ),
                })
            }
        };
        t.insert("tls".into(), toml::Value::String(tls.into()));
    }
    if let Some(p) = secret("SMTP_PASS")? {
        t.insert("password".into(), toml::Value::String(p));
    }
    if let Some(list) = env.get("ADMIN_EMAILS") {
        let to: Vec<toml::Value> = list
            .split([',', ';'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| toml::Value::String(a.to_string()))
            .collect();
        t.insert("to".into(), toml::Value::Array(to));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{resolve, Overrides};

    use crate::config::test_env as env;

    // covers: FR-11.4, FR-11.5, FR-3.1, SC-2.1, SC-2.4
    #[test]
    fn smtp_variables_and_admin_emails_fill_email_and_the_password_stays_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("smtp_pass");
        std::fs::write(&pass, "smtp-s3cret\n").unwrap();
        let e = env(&[
            ("SMTP_HOST", "smtp.example.com"),
            ("SMTP_PORT", "465"),
            ("SMTP_USER", "backup@example.com"),
            ("SMTP_PASS_FILE", pass.to_str().unwrap()),
            ("SMTP_FROM", "Backup <backup@example.com>"),
            ("ADMIN_EMAILS", "a@x.test, b@y.test;c@z.test"),
        ]);
        let c = resolve(None, &e, &Overrides::default()).unwrap();
        let m = &c.email;
        assert_eq!((m.smtp_host.as_deref(), m.smtp_port), (Some("smtp.example.com"), 465));
        assert_eq!(m.username.as_deref(), Some("backup@example.com"));
        assert_eq!(m.password.as_ref().unwrap().expose(), "smtp-s3cret");
        assert_eq!(m.from.as_deref(), Some("Backup <backup@example.com>"));
        assert_eq!(m.to, ["a@x.test", "b@y.test", "c@z.test"]);
        let shown = format!("{c:?} {} {}", toml::to_string(&c).unwrap(), serde_json::to_string(&c).unwrap());
        assert!(!shown.contains("smtp-s3cret") && shown.contains("***"), "{shown}");

        // LIFEBOAT_EMAIL__* beats SMTP_*, which beats the file.
        let file = "[email]\nsmtp_host = \"file-host\"\nsmtp_port = 25\nfrom = \"f@x.test\"\nto = [\"f@x.test\"]\n";
        let e = env(&[("SMTP_HOST", "env-host"), ("LIFEBOAT_EMAIL__TO", "l@x.test, m@x.test")]);
        let c = resolve(Some((Path::new("x.toml"), file)), &e, &Overrides::default()).unwrap();
        assert_eq!(c.email.smtp_host.as_deref(), Some("env-host"));
        assert_eq!(c.email.smtp_port, 25, "the file's value where the environment is silent");
        assert_eq!(c.email.to, ["l@x.test", "m@x.test"]);

        let err = resolve(None, &env(&[("SMTP_PASS", "a"), ("SMTP_PASS_FILE", "/x")]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("SMTP_PASS and SMTP_PASS_FILE") && !err.contains(": a"), "{err}");
        let text = "[email]\npassword = \"a\"\npassword_file = \"/run/secrets/x\"\n";
        let err = resolve(Some((Path::new("x.toml"), text)), &env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("both password and password_file"), "{err}");
    }

    // covers: SC-3.1, FR-3.7, FR-4.7
    #[test]
    fn tls_none_needs_allow_insecure_mail_needs_recipients_and_alert_urls_are_secret() {
        let base = "[email]\nsmtp_host = \"h\"\nfrom = \"f@x.test\"\n";
        let err = resolve(Some((Path::new("x.toml"), base)), &env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("ADMIN_EMAILS"), "{err}");
        let none = format!("{base}to = [\"a@x.test\"]\ntls = \"none\"\n");
        let err = resolve(Some((Path::new("x.toml"), &none)), &env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("allow_insecure"), "{err}");
        let ok = format!("{none}allow_insecure = true\n");
        assert!(resolve(Some((Path::new("x.toml"), &ok)), &env(&[]), &Overrides::default()).is_ok());

        let dir = tempfile::tempdir().unwrap();
        let hook = dir.path().join("hook");
        std::fs::write(&hook, "https://chat.example/hooks/T0KEN\n").unwrap();
        let e = env(&[("LIFEBOAT_ALERTS__WEBHOOK_URL_FILE", hook.to_str().unwrap())]);
        let c = resolve(None, &e, &Overrides::default()).unwrap();
        assert_eq!(c.alerts.webhook_url.as_ref().unwrap().expose(), "https://chat.example/hooks/T0KEN");
        assert!(!toml::to_string(&c).unwrap().contains("T0KEN"));
        let bad = "[alerts]\nping_url = \"hc-ping.com/SECRET-UUID\"\n";
        let err = resolve(Some((Path::new("x.toml"), bad)), &env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("ping_url") && !err.to_string().contains("SECRET"), "{err}");
    }
}
