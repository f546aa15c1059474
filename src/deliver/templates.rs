//! The mail templates: minijinja files built into the binary
//! (`src/deliver/templates/*.j2`), each overridable by a file of the same
//! name in `[email] templates_dir`. Every template is compiled when the
//! set is loaded, so a broken override fails `test-email` and the start of
//! a run, not the 2 a.m. mail. `.html.j2` templates escape what they
//! insert; text templates do not. Times reach them as RFC 3339 UTC; the
//! `localtime` filter shows one in `[schedule] timezone` with its offset
//! ([`local_time`]), as the built-in templates do.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// (name, built-in source).
const BUILT_IN: &[(&str, &str)] = &[
    ("success.subject.j2", include_str!("templates/success.subject.j2")),
    ("success.txt.j2", include_str!("templates/success.txt.j2")),
    ("success.html.j2", include_str!("templates/success.html.j2")),
    ("alert.subject.j2", include_str!("templates/alert.subject.j2")),
    ("alert.txt.j2", include_str!("templates/alert.txt.j2")),
    ("alert.html.j2", include_str!("templates/alert.html.j2")),
    ("recovery.subject.j2", include_str!("templates/recovery.subject.j2")),
    ("recovery.txt.j2", include_str!("templates/recovery.txt.j2")),
    ("recovery.html.j2", include_str!("templates/recovery.html.j2")),
    ("test.subject.j2", include_str!("templates/test.subject.j2")),
    ("test.txt.j2", include_str!("templates/test.txt.j2")),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read mail template {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("mail template {name} ({origin}): {message}; fix it, or remove it from [email] templates_dir to use the built-in one")]
    Broken { name: String, origin: String, message: String },
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
    origins: Vec<(&'static str, String)>,
}

impl Templates {
    /// The templates `config` names (`[email] templates_dir`), showing
    /// times in its `[schedule] timezone`.
    pub fn for_config(config: &crate::config::Config) -> Result<Templates, TemplateError> {
        Templates::load_in(config.email.templates_dir.as_deref(), zone_of(config))
    }

    /// The built-in templates, with the files of `dir` (if any) in their
    /// place; times in UTC.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        Templates::load_in(dir, Tz::UTC)
    }

    /// [`load`](Templates::load), times shown in `zone`.
    pub fn load_in(dir: Option<&Path>, zone: Tz) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(
            |name| if name.ends_with(".html.j2") { AutoEscape::Html } else { AutoEscape::None },
        );
        env.set_keep_trailing_newline(true);
        env.add_filter("ljust", |v: minijinja::Value, width: usize| format!("{:<width$}", v.to_string()));
        env.add_filter("rjust", |v: minijinja::Value, width: usize| format!("{:>width$}", v.to_string()));
        env.add_filter("localtime", move |v: minijinja::Value| match v.as_str() {
            Some(t) => local_time(t, zone),
            None if v.is_none() || v.is_undefined() => String::new(),
            None => v.to_string(),
        });
        let mut origins = Vec::new();
        for (name, source) in BUILT_IN {
            let custom = dir.map(|d| d.join(name)).filter(|p| p.is_file());
            let (source, origin) = match custom {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|source| TemplateError::Read { path: path.clone(), source })?;
                    (text, path.display().to_string())
                }
                None => (source.to_string(), "built-in".to_string()),
            };
            env.add_template_owned(*name, source).map_err(|e| TemplateError::Broken {
                name: name.to_string(),
                origin: origin.clone(),
                message: describe(&e),
            })?;
            origins.push((*name, origin));
        }
        Ok(Templates { env, origins })
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, TemplateError> {
        let origin = self.origins.iter().find(|(n, _)| *n == name).map_or("built-in", |(_, o)| o.as_str());
        let broken = |e: minijinja::Error| TemplateError::Broken {
            name: name.to_string(),
            origin: origin.to_string(),
            message: describe(&e),
        };
        self.env.get_template(name).map_err(broken)?.render(ctx).map_err(broken)
    }

    /// A subject line: one line, no surrounding space.
    pub fn subject(&self, name: &str, ctx: &impl Serialize) -> Result<String, TemplateError> {
        Ok(self.render(name, ctx)?.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// `[schedule] timezone` (checked when the config loaded; UTC if not):
/// the zone every time shown to people is in.
pub fn zone_of(config: &crate::config::Config) -> Tz {
    config.schedule.zone()
}

/// The zone as a note for times shown without one: `Asia/Bangkok
/// (+07:00)`, its offset at `at`; `UTC` for UTC.
pub fn zone_label(zone: Tz, at: chrono::DateTime<chrono::Utc>) -> String {
    if zone == Tz::UTC {
        return "UTC".into();
    }
    format!("{} ({})", zone.name(), at.with_timezone(&zone).format("%:z"))
}

/// `YYYY-MM-DD` of an RFC 3339 time in `zone` (a backup taken at 20:00
/// UTC is dated the next day in Bangkok); whatever does not parse gives
/// its first ten characters.
pub fn local_date(rfc3339: &str, zone: Tz) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.with_timezone(&zone).format("%Y-%m-%d").to_string(),
        Err(_) => rfc3339.chars().take(10).collect(),
    }
}

/// An RFC 3339 time as a mail shows it: `2026-12-07 09:00:00 +07:00
/// (Asia/Bangkok)`, or `2026-12-07 02:00:00 UTC`; whatever does not parse
/// is shown as it is.
pub fn local_time(rfc3339: &str, zone: Tz) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else { return rfc3339.to_string() };
    if zone == Tz::UTC {
        return t.to_utc().format("%Y-%m-%d %H:%M:%S UTC").to_string();
    }
    format!("{} ({})", t.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %:z"), zone.name())
}

/// minijinja's message with the line it points at.
fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!("line {line}: {}", e.detail().unwrap_or(&e.to_string())),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-3.9
    #[test]
    fn a_template_in_templates_dir_replaces_the_built_in_one_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test.subject.j2"), "Custom {{ app }}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let ctx = serde_json::json!({ "app": "Hub", "host": "h" });
        assert_eq!(t.subject("test.subject.j2", &ctx).unwrap(), "Custom Hub");
        assert!(Templates::load(None).unwrap().subject("test.subject.j2", &ctx).unwrap().contains("test message"));

        std::fs::write(dir.path().join("alert.txt.j2"), "{% if %}").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("alert.txt.j2") && err.contains(&dir.path().display().to_string()), "{err}");
    }

    // covers: FR-3.4
    #[test]
    fn mail_times_are_in_the_configured_zone_with_its_offset() {
        let t = Templates::load_in(None, chrono_tz::Asia::Bangkok).unwrap();
        let ctx = serde_json::json!({ "app": "Hub", "severity": "critical", "title": "t", "step": "data",
            "time": "2026-12-07T02:00:00Z", "error": "e", "retried": "", "next_steps": [], "log_lines": [],
            "archive": null, "host": "h", "version": "0" });
        let text = t.render("alert.txt.j2", &ctx).unwrap();
        assert!(text.contains("2026-12-07 09:00:00 +07:00 (Asia/Bangkok)"), "{text}");
        assert_eq!(local_time("2026-11-24T18:02:24.622267Z", Tz::UTC), "2026-11-24 18:02:24 UTC");
        assert_eq!(local_time("not a time", chrono_tz::Asia::Bangkok), "not a time");
    }

    // covers: FR-3.4, FR-4.2
    #[test]
    fn dates_and_zone_notes_follow_the_configured_zone() {
        let bangkok = chrono_tz::Asia::Bangkok;
        assert_eq!(local_date("2026-12-07T20:30:00Z", bangkok), "2026-12-08");
        assert_eq!(local_date("2026-12-07T20:30:00Z", Tz::UTC), "2026-12-07");
        assert_eq!(local_date("2026-12-07 garbled", bangkok), "2026-12-07");
        let at = chrono::DateTime::parse_from_rfc3339("2026-07-01T00:00:00Z").unwrap().to_utc();
        assert_eq!(zone_label(bangkok, at), "Asia/Bangkok (+07:00)");
        assert_eq!(zone_label(chrono_tz::Europe::Berlin, at), "Europe/Berlin (+02:00)", "the offset at that time");
        assert_eq!(zone_label(Tz::UTC, at), "UTC");
    }

    #[test]
    fn html_templates_escape_what_they_insert_and_text_templates_do_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("success.html.j2"), "{{ app }}").unwrap();
        std::fs::write(dir.path().join("success.txt.j2"), "{{ app }}").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let ctx = serde_json::json!({ "app": "<b>&" });
        assert_eq!(t.render("success.html.j2", &ctx).unwrap(), "&lt;b&gt;&amp;");
        assert_eq!(t.render("success.txt.j2", &ctx).unwrap(), "<b>&");
    }
}
