//! Every failure reaches a person (issue 22): the chat channels (Slack,
//! Discord, Telegram, ntfy) against a real HTTP listener that checks each
//! service's payload format; a backup mail that a real SMTP server refused
//! keeps `check` unhealthy until a later one is delivered; the daemon and
//! the status page warn when alerts would reach nobody; the status page
//! names its database and host, draws its chart from zero with labelled
//! axes and shows times in the configured zone (headless Chromium).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat::config::{ConfigPath, Overrides};
use serde_json::Value;

use crate::support::http::{get, App};
use crate::support::http_sink::{HttpSink, Seen};
use crate::support::smtp::{self, email_section, free_port, Mode, TlsServer, ADMINS, USER};
use crate::support::{self, assert_exit, json, run_with, stderr, toml_string, TestDb};

const SMTP_PASSWORD: &str = "smtp-Pa55-channels-41c7e0";
const SLACK_TOKEN: &str = "slackS3cretT0ken9d1e";
const DISCORD_TOKEN: &str = "discordS3cretT0ken5b2a";
const TELEGRAM_TOKEN: &str = "123456789:telegramS3cretAAE7";
const NTFY_TOKEN: &str = "tk_ntfyS3cretT0ken77";
const NTFY_TOPIC: &str = "backups-ntfyTopic3c9";

/// A small database, a storage directory and a config file with `extra`.
struct Setup {
    _db: TestDb,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(hint: &str, extra: &str) -> Setup {
        let db = support::fresh_db(hint);
        db.exec("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 5) g");
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[database]\nurl = {}\nconnect_timeout = \"3s\"\n[storage]\ndir = {}\n[monitor]\nmin_size_mb = 0\n\
             [schedule]\ntimezone = \"Asia/Bangkok\"\n{extra}\n",
            toml_string(&db.url),
            toml_string(&dir.path().join("b").to_string_lossy()),
        );
        let config = support::write_config(dir.path(), &toml);
        Setup { _db: db, dir, config }
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("b")
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        run_with(&self.config, args)
    }

    /// A run that fails at connect (a database nobody serves): exit 2, alerted.
    fn failed_backup(&self) -> std::process::Output {
        let o = self.cmd(&["backup", "--database-url", "postgres://nobody@127.0.0.1:1/gone"]);
        assert_exit(&o, 2);
        o
    }

    fn load(&self) -> lifeboat::config::Config {
        lifeboat::config::load(ConfigPath::Explicit(self.config.clone()), &Overrides::default()).unwrap().0
    }
}

/// `[alerts]` with every chat channel pointing at `sink` (Slack and
/// Discord as their webhook URLs, Telegram and ntfy in their short forms
/// with the host carried in the URL).
fn chat_section(sink: &HttpSink, discord: Option<&str>) -> String {
    let host = sink.url.trim_start_matches("http://");
    let discord = discord.map(str::to_string).unwrap_or_else(|| sink.url.clone());
    format!(
        "[alerts]\nslack_url = {}\ndiscord_url = {}\ntelegram_url = {}\nntfy_url = {}\ntimeout = \"5s\"\n",
        toml_string(&format!("{}/services/T0SLACK01/B0SLACK02/{SLACK_TOKEN}", sink.url)),
        toml_string(&format!("{discord}/api/webhooks/112233445566/{DISCORD_TOKEN}")),
        toml_string(&format!("telegram://{TELEGRAM_TOKEN}@{host}?chats=-1001234567,@ops_room&scheme=http")),
        toml_string(&format!("ntfy://:{NTFY_TOKEN}@{host}/{NTFY_TOPIC}?scheme=http")),
    )
}

fn body(s: &Seen) -> Value {
    serde_json::from_str(&s.body).unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", s.path, s.body))
}

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Checks each request as its service would, and returns the text people
/// read, per channel: (slack, discord, telegram chats, ntfy title + body).
fn as_services_take_them(seen: &[Seen]) -> Vec<(&'static str, String)> {
    let mut texts = Vec::new();
    for s in seen {
        assert_eq!(s.method, "POST", "{s:?}");
        if s.path == format!("/services/T0SLACK01/B0SLACK02/{SLACK_TOKEN}") {
            // Slack: a JSON object with `text` (mrkdwn, <>& escaped).
            assert_eq!(s.content_type.as_deref(), Some("application/json"));
            let v = body(s);
            let text = v["text"].as_str().expect("slack needs text").to_string();
            assert!(!text.contains('<') && !text.contains('>'), "unescaped: {text}");
            texts.push(("slack", text));
        } else if s.path == format!("/api/webhooks/112233445566/{DISCORD_TOKEN}") {
            // Discord: `content` of at most 2,000 characters; no mentions.
            assert_eq!(s.content_type.as_deref(), Some("application/json"));
            let v = body(s);
            let text = v["content"].as_str().expect("discord needs content").to_string();
            assert!((1..=2000).contains(&utf16(&text)), "{} characters", utf16(&text));
            assert_eq!(v["allowed_mentions"]["parse"], serde_json::json!([]));
            texts.push(("discord", text));
        } else if s.path == format!("/bot{TELEGRAM_TOKEN}/sendMessage") {
            // Telegram: sendMessage with chat_id and text (at most 4,096).
            assert_eq!(s.content_type.as_deref(), Some("application/json"));
            let v = body(s);
            let chat = v["chat_id"].as_str().expect("chat_id");
            assert!(["-1001234567", "@ops_room"].contains(&chat), "{chat}");
            let text = v["text"].as_str().expect("telegram needs text").to_string();
            assert!((1..=4096).contains(&utf16(&text)));
            texts.push(("telegram", text));
        } else if s.path == format!("/{NTFY_TOPIC}") {
            // ntfy: the message as the body, Title and Priority as headers,
            // the access token as the password of basic auth.
            use base64::Engine;
            let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!(":{NTFY_TOKEN}")));
            assert_eq!(s.header("Authorization"), Some(auth.as_str()));
            assert!(s.body.len() <= 4096 && !s.body.is_empty());
            let title = s.header("Title").expect("a Title header").to_string();
            let priority = s.header("Priority").expect("a Priority header");
            assert!(["high", "default"].contains(&priority), "{priority}");
            texts.push(("ntfy", format!("{title} [{priority}]\n{}", s.body)));
        } else {
            panic!("an unexpected request: {s:?}");
        }
    }
    texts
}

fn assert_no_token(what: &str, text: &str) {
    for secret in [SLACK_TOKEN, DISCORD_TOKEN, TELEGRAM_TOKEN, "telegramS3cret", NTFY_TOKEN, NTFY_TOPIC, SMTP_PASSWORD]
    {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

// covers: FR-4.7, FR-4.5, FR-4.6, US-3/AC-1, SC-2.4
#[test]
fn every_chat_channel_gets_the_alert_and_the_recovery_in_the_format_its_service_takes() {
    let sink = HttpSink::start();
    let s = Setup::new("chat_all", &chat_section(&sink, None));
    // A good run first: the failure after it is recorded as an incident, which the next good run closes.
    assert_exit(&s.cmd(&["backup"]), 0);
    assert!(sink.seen().is_empty(), "a good run posts nothing");
    let failed = s.failed_backup();
    // Slack, Discord, ntfy, and Telegram once per chat.
    let seen = sink.wait_for(5, Duration::from_secs(30));
    let texts = as_services_take_them(&seen);
    let mut channels: Vec<&str> = texts.iter().map(|t| t.0).collect();
    channels.sort();
    assert_eq!(channels, ["discord", "ntfy", "slack", "telegram", "telegram"], "{seen:?}");
    for (channel, text) in &texts {
        assert!(text.contains("FAILED:") && text.contains("backup failed"), "{channel}: {text}");
        assert!(text.contains("127.0.0.1:1"), "{channel} names what failed: {text}");
    }
    let ntfy = &texts.iter().find(|t| t.0 == "ntfy").unwrap().1;
    assert!(ntfy.starts_with("[lifeboat] FAILED: ") && ntfy.contains("[high]"), "{ntfy}");
    assert_no_token("the failed run's stderr", &stderr(&failed));

    // The next good run closes the incident: one recovery notice on every channel.
    let ok = s.cmd(&["--json", "backup"]);
    assert_exit(&ok, 0);
    let seen = sink.wait_for(10, Duration::from_secs(30));
    let recovered = as_services_take_them(&seen[5..]);
    assert_eq!(recovered.len(), 5, "{seen:?}");
    for (channel, text) in &recovered {
        assert!(text.contains("RECOVERED:") && text.contains("backup_failed"), "{channel}: {text}");
    }
    assert!(recovered.iter().any(|t| t.0 == "ntfy" && t.1.contains("[default]")));
    assert_no_token("the good run's output", &format!("{}{}", String::from_utf8_lossy(&ok.stdout), stderr(&ok)));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.seen().len(), 10, "nothing more after the recovery");

    // `lifeboat config` shows the keys, never their values.
    let shown = s.cmd(&["config"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert_no_token("lifeboat config", &text);
    assert!(text.contains("slack_url") && text.contains("ntfy_url"), "{text}");
}

// covers: FR-4.7, SC-2.4, SC-4.2
#[test]
fn a_chat_channel_that_fails_is_a_warning_without_its_token_and_the_others_still_get_the_alert() {
    let sink = HttpSink::start();
    // Nothing listens on this port: Discord's POST is refused.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let s = Setup::new("chat_one_down", &chat_section(&sink, Some(&closed)));
    let failed = s.failed_backup();
    let err = stderr(&failed);
    assert!(err.contains("the alert to discord failed: [alerts] discord_url (POST to 127.0.0.1:"), "{err}");
    assert_no_token("the failed run's stderr", &err);
    let seen = sink.wait_for(4, Duration::from_secs(30));
    let mut channels: Vec<&str> = as_services_take_them(&seen).iter().map(|t| t.0).collect();
    channels.sort();
    assert_eq!(channels, ["ntfy", "slack", "telegram", "telegram"]);

    // A URL of the wrong shape stops the config, naming the key and not the token.
    let bad = s.dir.path().join("bad.toml");
    let text =
        std::fs::read_to_string(&s.config).unwrap().replace("?chats=-1001234567,@ops_room&scheme=http", "?scheme=http");
    std::fs::write(&bad, text).unwrap();
    let o = run_with(&bad, &["plan"]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("[alerts] telegram_url names no chat (?chats=…)"), "{err}");
    assert_no_token("a config error", &err);
}

/// The status page's DOM in headless Chromium (`None`: no Chromium here).
fn page(app: &App) -> Option<String> {
    let chromium = support::browser::chromium()?;
    Some(support::browser::dump_dom(chromium, &format!("{}/", app.origin)))
}

fn check(s: &Setup) -> (i32, Value) {
    let o = s.cmd(&["--json", "check"]);
    (o.status.code().unwrap(), json(&o))
}

// covers: FR-4.2, FR-3.8, FR-4.7, FR-17.2, FR-17.4, US-3/AC-5
#[test]
fn a_mail_refused_after_every_attempt_keeps_check_unhealthy_until_a_later_one_is_delivered() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    // A real SMTP server that refuses the first administrator: the message is not delivered.
    let refusing = TlsServer::start_with(Mode::StartTls, USER, SMTP_PASSWORD, &["localhost"], &[ADMINS[0]]);
    let s = Setup::new("chan_refused", "");
    let section = |port: u16, ca: &Path| {
        email_section(port, Mode::StartTls, Some(ca), SMTP_PASSWORD, s.dir.path(), "attempts = 2\n")
    };
    let base = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("{base}\n{}", section(refusing.server.port, &refusing.ca.ca_file))).unwrap();
    let o = s.cmd(&["--json", "backup"]);
    assert_exit(&o, 3);
    assert_eq!(json(&o)["delivery"]["status"], "failed", "{}", stderr(&o));

    let (code, v) = check(&s);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["problems"][0]["kind"], "delivery_failed", "{v}");
    assert!(v["reasons"][0].as_str().unwrap().contains("was not delivered after every attempt"), "{v}");
    // /healthz (the Docker health status) says the same.
    let app = App::start(s.load(), None);
    let g = get(&format!("{}/healthz", app.origin));
    assert_eq!(g.status, 503);
    // Mail is the only channel and it fails: the page says alerts reach nobody.
    if let Some(dom) = page(&app) {
        assert!(dom.contains("was not delivered after every attempt"), "{dom}");
        assert!(dom.contains(r#"id="unheard""#) && dom.contains("mail is the only alert channel"), "{dom}");
        assert_no_token("the status page", &dom);
    }
    drop(app);

    // The server accepts again (a new one on its own port): the next run is delivered.
    let accepting = TlsServer::start(Mode::StartTls, USER, SMTP_PASSWORD);
    std::fs::write(&s.config, format!("{base}\n{}", section(accepting.server.port, &accepting.ca.ca_file))).unwrap();
    let o = s.cmd(&["--json", "backup"]);
    assert_exit(&o, 0);
    assert_eq!(json(&o)["delivery"]["status"], "delivered", "{}", stderr(&o));
    let (code, v) = check(&s);
    assert_eq!(code, 0, "{v}");
    let app = App::start(s.load(), None);
    assert_eq!(get(&format!("{}/healthz", app.origin)).status, 200);
    if let Some(dom) = page(&app) {
        assert!(!dom.contains(r#"id="unheard""#), "{dom}");
        assert!(dom.contains(r#"id="channels">Alerts go to:"#) && dom.contains("<strong>email</strong>"), "{dom}");
    }
}

// covers: FR-4.7, FR-23.1
#[test]
fn a_daemon_without_any_alert_channel_says_so_when_it_starts() {
    // `extra` continues [schedule]: a cron that is not due for months.
    let s = Setup::new("chan_daemon", "cron = \"0 0 1 1 *\"\n[http]\nlisten = \"127.0.0.1:0\"\n");
    let log = s.dir.path().join("daemon.stderr");
    let mut child = support::lifeboat()
        .args(["--config", s.config.to_str().unwrap(), "daemon"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let found = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("no alert channel is configured") || started.elapsed() > Duration::from_secs(60) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found.contains("WARN") && found.contains("no alert channel is configured: a failed backup reaches nobody"),
        "{found}"
    );
    assert!(found.contains("slack_url, discord_url, telegram_url, ntfy_url"), "{found}");
}

// covers: FR-17.4, US-5/AC-5, SC-2.4
#[test]
fn the_status_page_names_its_database_and_host_charts_from_zero_and_shows_local_times() {
    let Some(chromium) = support::browser::chromium() else { return };
    let sink = HttpSink::start();
    let s = Setup::new("chan_status_page", &chat_section(&sink, None));
    {
        // Two weeks of nightly runs of about the real archive's size (written
        // through the History API: they cannot be waited for), then real runs.
        use lifeboat::history::{History, Outcome, RunStatus, Trigger};
        std::fs::create_dir_all(s.storage()).unwrap();
        let mut h = History::open(&s.storage()).unwrap();
        let now = chrono::Utc::now();
        for i in 0..14i64 {
            let at = now - chrono::Duration::days(14 - i);
            let id = h.start(Trigger::Schedule, at).unwrap();
            let o = Outcome {
                status: RunStatus::Success,
                archive: Some(format!("critical_backup_{}.tar.gz", at.format("%Y%m%d_%H%M%S"))),
                size_bytes: Some(3_600 + 80 * i as u64),
                duration_ms: 2_000,
                ..Default::default()
            };
            h.finish(id, at + chrono::Duration::seconds(2), &o, &[]).unwrap();
        }
    }
    s.failed_backup();
    assert_exit(&s.cmd(&["backup"]), 0);
    let config = s.load();
    let app = App::start(config.clone(), Some(chrono::Utc::now() + chrono::Duration::hours(5)));
    let dom = support::browser::dump_dom(chromium, &format!("{}/", app.origin));
    let db = &config.database;
    assert!(
        dom.contains(&format!("Database <strong>{}</strong> on <strong>{}:{}</strong>", db.name, db.host, db.port)),
        "{dom}"
    );
    assert!(dom.contains(&format!("backed up by <strong>{}</strong>", gethostname())), "{dom}");
    assert!(dom.contains("Times are in Asia/Bangkok (UTC+07:00)"), "{dom}");
    // Every time on the page is Bangkok's, with its offset.
    let runs = &dom[dom.find(r#"<table id="runs""#).unwrap()..];
    let first = &runs[runs.find(r#"<td class="when">"#).unwrap() + 17..];
    assert!(first[..26].ends_with(" +07:00"), "{}", &first[..26]);
    assert!(!dom.contains("Z</td>"), "a UTC time on the page");
    // The chart: a zero line labelled 0, size labels, dates, axis titles.
    let svg = &dom[dom.find(r#"<svg id="size-chart""#).unwrap()..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    assert_eq!(svg.matches("<circle").count(), 15);
    assert!(svg.contains(r#"text-anchor="end">0</text>"#), "no zero label: {svg}");
    assert_eq!(svg.matches(r#"class="y-label""#).count(), 5);
    assert!(svg.matches(r#"class="x-label""#).count() >= 2);
    assert!(
        svg.contains(">archive size</text>") && svg.contains(">run finished (Asia/Bangkok, UTC+07:00)</text>"),
        "{svg}"
    );
    // Where alerts go, by name only.
    assert!(dom.contains("<strong>slack, discord, telegram, ntfy</strong>"), "{dom}");
    assert!(!dom.contains(r#"id="unheard""#));
    assert_no_token("the status page", &dom);
    assert!(!dom.contains(&sink.url), "the sink's address is part of the chat URLs");

    let png = s.dir.path().join("status-page.png");
    support::browser::screenshot(chromium, &format!("{}/", app.origin), &png, "1200,1500");
    support::browser::keep_for_docs(&png, "status-page.png");
}

fn gethostname() -> String {
    std::process::Command::new("hostname")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap()
}
