//! Times for people in the configured zone, UTC for machines; one size
//! unit (issue 22, item 6): a real backup, its mail through a real SMTP
//! server (STARTTLS), then a failure whose alert goes by mail, to a Slack
//! webhook and to the generic webhook, both real HTTP listeners.
//!
//! The zone is picked so that its date differs from UTC's at the time the
//! test runs (Pacific/Kiritimati, UTC+14, from 10:00 UTC; else
//! Pacific/Pago_Pago, UTC-11): a subject dated in UTC fails the test.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use mail_parser::MessageParser;
use serde_json::Value;

use crate::support::http_sink::HttpSink;
use crate::support::smtp::{self, email_section, Mode, TlsServer, USER};
use crate::support::{self, assert_exit, run_with, stderr, toml_string};

const SMTP_PASSWORD: &str = "smtp-Pa55-times-7e21";
const SLACK_TOKEN: &str = "slackT1mesT0ken4f0a";

/// A zone whose date is not UTC's now (and for the next hour).
fn zone_off_utc_date() -> (Tz, &'static str) {
    if Utc::now().hour() >= 10 {
        (chrono_tz::Pacific::Kiritimati, "+14:00")
    } else {
        (chrono_tz::Pacific::Pago_Pago, "-11:00")
    }
}

/// (subject, text part) of a received mail.
fn subject_and_text(raw: &[u8]) -> (String, String) {
    let m = MessageParser::default().parse(raw).expect("a parsable message");
    (m.subject().unwrap_or_default().to_string(), m.body_text(0).map(|t| t.into_owned()).unwrap_or_default())
}

fn archive_size(storage: &Path) -> u64 {
    let archives: Vec<_> = std::fs::read_dir(storage)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz"))
        .collect();
    assert_eq!(archives.len(), 1, "{archives:?}");
    archives[0].metadata().unwrap().len()
}

// covers: FR-3.2, FR-3.4, FR-4.5, FR-4.7, FR-20.2, US-5/AC-3
#[test]
fn mail_subject_alert_log_lines_and_chat_show_the_configured_zone_and_the_webhook_keeps_utc() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let (zone, offset) = zone_off_utc_date();
    let TlsServer { ca, server } = TlsServer::start(Mode::StartTls, USER, SMTP_PASSWORD);
    let sink = HttpSink::start();
    let db = support::fresh_db("times_zone");
    db.exec("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 5) g");
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("b");
    let toml = format!(
        "[database]\nurl = {}\nconnect_timeout = \"3s\"\n[storage]\ndir = {}\n[monitor]\nmin_size_mb = 0\n\
         [schedule]\ntimezone = \"{}\"\n{}\n[alerts]\nwebhook_url = {}\nslack_url = {}\ntimeout = \"5s\"\n",
        toml_string(&db.url),
        toml_string(&storage.to_string_lossy()),
        zone.name(),
        email_section(server.port, Mode::StartTls, Some(&ca.ca_file), SMTP_PASSWORD, dir.path(), ""),
        toml_string(&format!("{}/hook", sink.url)),
        toml_string(&format!("{}/services/T0TIMES1/B0TIMES2/{SLACK_TOKEN}", sink.url)),
    );
    let config = support::write_config(dir.path(), &toml);

    // A good run: the success mail's subject is dated in the zone, not in UTC.
    assert_exit(&run_with(&config, &["backup"]), 0);
    let after = Utc::now();
    let mails = server.wait_for(1, Duration::from_secs(30));
    assert_eq!(mails.len(), 1, "one success mail");
    let (subject, _) = subject_and_text(&mails[0].raw);
    let local_date = after.with_timezone(&zone).format("%Y-%m-%d").to_string();
    assert!(subject.contains(&format!("backup {local_date} — ")), "dated in {}: {subject}", zone.name());
    assert!(!subject.contains(&after.format("%Y-%m-%d").to_string()), "not the UTC date: {subject}");
    // The size marker counts decimal MB (1,000,000 bytes), as every size shown.
    let size = archive_size(&storage);
    let marker = std::fs::read_to_string(storage.join(".last_backup_size_mb")).unwrap();
    assert_eq!(marker, format!("{}\n", size.div_ceil(1_000_000)));

    // A failing run (a role that may not read the table): the alert.
    let role = format!("{}_noread", db.name);
    db.exec(&format!(
        "CREATE ROLE {role} LOGIN; GRANT CONNECT ON DATABASE \"{}\" TO {role}; GRANT USAGE ON SCHEMA public TO {role}",
        db.name
    ));
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    let before = Utc::now();
    let failed = run_with(&config, &["backup", "--database-url", &url]);
    let after = Utc::now();
    db.exec(&format!("DROP OWNED BY {role}"));
    let _ = support::connect(&support::server().admin_url()).batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
    assert_exit(&failed, 1);
    assert!(!stderr(&failed).contains(SLACK_TOKEN));

    // The alert mail: its time and its log lines' stamps in the zone, the zone named once.
    let mails = server.wait_for(2, Duration::from_secs(30));
    assert_eq!(mails.len(), 2, "the success mail and the alert");
    let (subject, text) = subject_and_text(&mails[1].raw);
    assert!(subject.contains("FAILED"), "{subject}");
    let time_line = text.lines().find(|l| l.starts_with("Time:")).unwrap_or_else(|| panic!("no Time line:\n{text}"));
    assert!(time_line.ends_with(&format!("{offset} ({})", zone.name())), "{time_line}");
    let heading = format!("Last log lines (times in {} ({offset}))", zone.name());
    let lines: Vec<&str> = text
        .split_once(&heading)
        .unwrap_or_else(|| panic!("no {heading:?} in the alert:\n{text}"))
        .1
        .lines()
        .skip(2) // the rest of the heading's line, its underline
        .take_while(|l| !l.is_empty() && !l.starts_with("--"))
        .collect();
    assert!(!lines.is_empty(), "the alert quotes the run's last lines:\n{text}");
    let hours: Vec<String> = [before, after].iter().map(|t| t.with_timezone(&zone).format("%H").to_string()).collect();
    for l in &lines {
        let stamp = l.split_whitespace().next().unwrap_or_default();
        assert!(stamp.len() == 8 && stamp.as_bytes()[2] == b':', "an HH:MM:SS stamp: {l}");
        assert!(hours.iter().any(|h| stamp.starts_with(h.as_str())), "{l}: not local time (hours {hours:?})");
    }

    // Slack (for people) shows the zone; the webhook (for machines) keeps UTC.
    let seen = sink.wait_for(2, Duration::from_secs(30));
    assert_eq!(seen.len(), 2, "{seen:?}");
    let slack = seen.iter().find(|s| s.path.contains(SLACK_TOKEN)).expect("the Slack post");
    let slack: Value = serde_json::from_str(&slack.body).unwrap();
    let slack = slack["text"].as_str().unwrap();
    assert!(slack.contains(&format!("{offset} ({})", zone.name())), "{slack}");
    let hook = seen.iter().find(|s| s.path == "/hook").expect("the webhook post");
    let hook: Value = serde_json::from_str(&hook.body).unwrap();
    let time = hook["time"].as_str().unwrap();
    assert!(time.ends_with('Z'), "UTC RFC 3339: {time}");
    let t: DateTime<Utc> = time.parse().unwrap();
    assert!(t >= before - chrono::Duration::seconds(1) && t <= after, "{time}");
}
