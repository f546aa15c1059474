//! Logging (FR-24.4, FR-25): tracing to stderr for every command, filtered
//! by `LIFEBOAT_LOG`; the daemon also appends to `[log] file` as text or
//! JSON lines. Every line carries an RFC 3339 timestamp and its level: in
//! the text format (for people) in `[schedule] timezone` with its offset
//! (`2026-12-07T09:00:00.000000+07:00`; `Z` for UTC), in JSON lines (for
//! machines) always UTC.
//!
//! Rotation is `file-rotate`'s: past `max_size_mb` the file becomes
//! `<file>.1` (one kept) and a new one starts, so the log cannot fill the
//! disk. (tracing-appender only rotates by time.) A file that cannot be
//! opened is a warning: logging never stops a backup.
//!
//! No level shows a secret: the HTTP, TLS and mail client crates print
//! whole URLs (a webhook's or ping's token is in its path), headers and SMTP
//! commands at debug and trace, so they are capped at `warn` by a filter of
//! their own ([`CAPPED`]) that `LIFEBOAT_LOG` cannot lift.

use std::path::Path;
use std::sync::Mutex;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{Config, LogFormat};

/// The text format's clock: RFC 3339 in a time zone, with its offset.
#[derive(Clone, Copy)]
pub struct ZonedTime(pub chrono_tz::Tz);

impl ZonedTime {
    /// `[schedule] timezone` (validated when the config loaded; UTC if not).
    pub fn of(config: &Config) -> ZonedTime {
        ZonedTime(config.schedule.zone())
    }

    /// `t` as the text log shows it.
    pub fn format(&self, t: chrono::DateTime<chrono::Utc>) -> String {
        if self.0 == chrono_tz::Tz::UTC {
            return t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        }
        t.with_timezone(&self.0).format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
    }
}

impl tracing_subscriber::fmt::time::FormatTime for ZonedTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        w.write_str(&self.format(chrono::Utc::now()))
    }
}

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

/// Crates whose debug and trace lines print what may be a secret: request
/// URLs with their path and query (ureq prints `POST http://…/hook/<token>`
/// at trace), headers, presigned queries, SMTP commands (`AUTH PLAIN …`).
/// They are capped at `warn` whatever `LIFEBOAT_LOG` says; their warnings
/// and errors name no URL path. A target matches by prefix (`ureq` covers
/// `ureq_proto`, `hyper` covers `hyper_util`).
pub const CAPPED: &[&str] =
    &["ureq", "reqwest", "hyper", "h2", "rustls", "tokio_rustls", "lettre", "object_store", "tower_http", "axum"];

/// The filter that keeps [`CAPPED`] crates at `warn` and lets everything
/// else through to the `LIFEBOAT_LOG` filter.
fn caps() -> Targets {
    CAPPED.iter().fold(Targets::new().with_default(LevelFilter::TRACE), |t, c| t.with_target(*c, LevelFilter::WARN))
}

/// Installs the global subscriber: stderr, plus `[log] file` of `config`
/// when given and not empty (its text lines and stderr's in `[schedule]
/// timezone`). `default` is the filter when `LIFEBOAT_LOG` is unset.
pub fn init(default: &str, config: Option<&Config>) {
    use std::io::IsTerminal;
    let filter = match EnvFilter::try_from_env("LIFEBOAT_LOG") {
        Ok(f) => f,
        Err(e) => {
            if std::env::var_os("LIFEBOAT_LOG").is_some() {
                super::err_line(&format!("warning: LIFEBOAT_LOG is not a valid filter ({e}); using \"{default}\""));
            }
            EnvFilter::new(default)
        }
    };
    let zone = config.map_or(ZonedTime(chrono_tz::Tz::UTC), ZonedTime::of);
    let mut layers: Vec<Boxed> = vec![tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_timer(zone)
        // Its own write errors would go to stderr through eprintln!, which
        // panics on a broken pipe: progress must never kill a run.
        .log_internal_errors(false)
        .boxed()];
    if let Some(log) = config.map(|c| &c.log).filter(|l| !l.file.as_os_str().is_empty()) {
        match file_writer(&log.file, u64::from(log.max_size_mb.max(1)) * 1024 * 1024) {
            Ok(w) => {
                let layer = tracing_subscriber::fmt::layer().with_writer(w).with_ansi(false).log_internal_errors(false);
                layers.push(match log.format {
                    LogFormat::Text => layer.with_timer(zone).boxed(),
                    LogFormat::Json => layer.json().boxed(),
                });
            }
            Err(e) => super::err_line(&format!("warning: {e}; logging to stderr only")),
        }
    }
    let _ = tracing_subscriber::registry().with(layers).with(filter).with(caps()).try_init();
}

/// The commands that change or report on the store, and so write `[log]
/// file` like the daemon (FR-25.5): one file tells the whole story.
pub fn writes_log_file(command: &super::Command) -> bool {
    use super::Command as C;
    matches!(command, C::Backup(_) | C::Send(_) | C::Prune(_) | C::Restore(_))
}

/// The logging of [`writes_log_file`] commands, installed once their
/// config is loaded: stderr as for every command (`LIFEBOAT_LOG`, default
/// `warn`) but without the run's event lines, which the command prints
/// itself; and, when `[log] file` is configured, the file in the daemon's
/// format at the daemon's level (`warn,lifeboat=info`, or `LIFEBOAT_LOG`).
/// A file that cannot be opened is a warning; the command goes on.
pub fn init_command(config: &Config) {
    use std::io::IsTerminal;
    let (log, zone) = (&config.log, ZonedTime::of(config));
    // The HTTP clients' own lines can carry webhook and ping URLs (tokens):
    // capped at warn whatever LIFEBOAT_LOG asks (merge with `init`'s caps).
    let chosen = || {
        EnvFilter::try_from_env("LIFEBOAT_LOG").ok().map(|f| {
            ["ureq=warn", "ureq_proto=warn", "reqwest=warn", "hyper_util=warn"]
                .iter()
                .fold(f, |f, d| f.add_directive(d.parse().expect("valid")))
        })
    };
    let run_lines_off = format!("{}=off", crate::daemon::RUN_LOG).parse().expect("a valid directive");
    let stderr_filter = chosen().unwrap_or_else(|| EnvFilter::new("warn")).add_directive(run_lines_off);
    let mut layers: Vec<Boxed> = vec![tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_timer(zone)
        .log_internal_errors(false)
        .with_filter(stderr_filter)
        .boxed()];
    if log.configured && !log.file.as_os_str().is_empty() {
        match file_writer(&log.file, u64::from(log.max_size_mb.max(1)) * 1024 * 1024) {
            Ok(w) => {
                let filter = chosen().unwrap_or_else(|| EnvFilter::new("warn,lifeboat=info"));
                let layer = tracing_subscriber::fmt::layer().with_writer(w).with_ansi(false).log_internal_errors(false);
                layers.push(match log.format {
                    LogFormat::Text => layer.with_timer(zone).with_filter(filter).boxed(),
                    LogFormat::Json => layer.json().with_filter(filter).boxed(),
                });
            }
            Err(e) => super::err_line(&format!("warning: {e}; logging to stderr only")),
        }
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

/// `path` opened for appending, rotated to `<path>.1` once it grows past
/// `max_bytes`. Checked first, because `FileRotate` panics on a directory
/// it cannot create.
pub fn file_writer(path: &Path, max_bytes: u64) -> Result<Mutex<FileRotate<AppendCount>>, String> {
    let fail = |e: std::io::Error| {
        format!(
            "cannot write the log file {} ({e}); make its directory writable, or set [log] file to another path \
             (\"\" = no file)",
            path.display()
        )
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(fail)?;
    let limit = ContentLimit::BytesSurpassed(usize::try_from(max_bytes).unwrap_or(usize::MAX).max(1));
    Ok(Mutex::new(FileRotate::new(path, AppendCount::new(1), limit, Compression::None, None)))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    // covers: FR-25.2
    #[test]
    fn text_log_times_are_in_the_zone_with_its_offset_and_utc_keeps_z() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-07T02:00:00.5Z").unwrap().to_utc();
        assert_eq!(ZonedTime(chrono_tz::Asia::Bangkok).format(t), "2026-12-07T09:00:00.500000+07:00");
        assert_eq!(ZonedTime(chrono_tz::America::New_York).format(t), "2026-12-06T21:00:00.500000-05:00");
        assert_eq!(ZonedTime(chrono_tz::Tz::UTC).format(t), "2026-12-07T02:00:00.500000Z");
    }

    // covers: FR-25.4
    #[test]
    fn http_and_mail_crates_stay_at_warn_whatever_the_filter_says() {
        let caps = caps();
        for target in ["ureq::run", "ureq_proto::client", "hyper_util::client", "reqwest::connect", "lettre::transport"]
        {
            assert!(!caps.would_enable(target, &tracing::Level::INFO), "{target}");
            assert!(caps.would_enable(target, &tracing::Level::WARN), "{target}");
        }
        assert!(caps.would_enable("lifeboat::backup", &tracing::Level::TRACE));
        assert!(caps.would_enable("tokio_postgres::query", &tracing::Level::DEBUG));
    }

    // covers: FR-25.3
    #[test]
    fn the_log_file_is_rotated_to_dot_one_past_its_size_and_one_copy_is_kept() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("logs/backup.log");
        let w = file_writer(&path, 1000).unwrap();
        for i in 0..100 {
            writeln!(w.lock().unwrap(), "2026-12-01T02:00:00.000000Z  INFO line {i:03} of the run").unwrap();
        }
        drop(w);
        let current = std::fs::metadata(&path).unwrap().len();
        let rotated = std::fs::read_to_string(d.path().join("logs/backup.log.1")).unwrap();
        assert!(current <= 1100 && rotated.len() <= 1100, "{current} {}", rotated.len());
        assert!(!d.path().join("logs/backup.log.2").exists(), "one rotated copy is kept");
        assert!(std::fs::read_to_string(&path).unwrap().contains("line 099"), "the newest lines are in the file");

        let blocked = d.path().join("file");
        std::fs::write(&blocked, "").unwrap();
        let err = file_writer(&blocked.join("backup.log"), 1000).err().unwrap();
        assert!(err.contains("cannot write the log file") && err.contains("[log] file"), "{err}");
    }
}
