//! Delivery and alerts end to end: the real `lifeboat` binary, lettre's real
//! SMTP transport, and a real SMTP server (aiosmtpd, `support/smtp_server.py`)
//! speaking STARTTLS or implicit TLS with AUTH and a certificate from a test
//! CA; webhook and ping channels against a real HTTP listener.
//!
//! Back-off is kept short through the config (`backoff = "1s"`).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::Value;

use crate::support::http_sink::HttpSink;
use crate::support::smtp::{
    self, email_section, free_port, Mode, SmtpOptions, SmtpServer, TestCa, TlsServer, ADMINS, APP, USER,
};
use crate::support::{self, toml_string};
use crate::support::{assert_exit, json, run, sha256, stderr, Seeded};

const PASSWORD: &str = "smtp-Pa55-7f3c91e2";

/// A CA, a server certificate from it, and a server using them.
struct Mail {
    ca: TestCa,
    server: SmtpServer,
}

/// The SMTP side of a case: the server a test starts and the `[email]`
/// section its config gets. [`STARTTLS`] is the usual one; a case changes
/// the fields it is about.
#[derive(Clone, Copy)]
struct Smtp {
    mode: Mode,
    /// Host names in the server's certificate.
    names: &'static [&'static str],
    /// Recipients the server refuses (550).
    refuse: &'static [&'static str],
    /// The password in the config (the server accepts [`PASSWORD`]).
    password: &'static str,
    /// Whether the config trusts the test CA (`ca_file`).
    trust_ca: bool,
    /// More `[email]` keys.
    extra: &'static str,
}

/// STARTTLS to `localhost` with the right password, the test CA trusted.
const STARTTLS: Smtp =
    Smtp { mode: Mode::StartTls, names: &["localhost"], refuse: &[], password: PASSWORD, trust_ca: true, extra: "" };

impl Smtp {
    /// Starts the server; `None` (the test skips) without aiosmtpd.
    fn start(&self) -> Option<Mail> {
        if !smtp::aiosmtpd_available() {
            return None;
        }
        let TlsServer { ca, server } = TlsServer::start_with(self.mode, USER, PASSWORD, self.names, self.refuse);
        Some(Mail { ca, server })
    }

    /// `[email]` for `mail`, the password in a file in `dir` (as a Docker
    /// secret would be).
    fn section(&self, mail: &Mail, dir: &Path) -> String {
        let ca = self.trust_ca.then_some(mail.ca.ca_file.as_path());
        email_section(mail.server.port, self.mode, ca, self.password, dir, self.extra)
    }

    /// The preamble of most tests here: the server, and a seeded database
    /// whose config mails through it; `None` (the test skips) without aiosmtpd.
    fn seeded(&self, hint: &str) -> Option<(Mail, Seeded)> {
        let mail = self.start()?;
        let s = Seeded::new(hint);
        add_section(&s, &self.section(&mail, s.dir.path()));
        Some((mail, s))
    }
}

/// Appends `section` to the seeded config file.
fn add_section(s: &Seeded, section: &str) {
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text.push('\n');
    text.push_str(section);
    std::fs::write(&s.config, text).unwrap();
}

fn backup_json(s: &Seeded, extra_args: &[&str]) -> std::process::Output {
    let mut args = vec!["--config", s.config.to_str().unwrap(), "--json", "backup"];
    args.extend_from_slice(extra_args);
    run(&args)
}

fn archive_path(report: &Value) -> PathBuf {
    PathBuf::from(report["archive"].as_str().unwrap())
}

fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default().parse(raw).expect("a parsable message")
}

/// The raw header block (before the first empty line).
fn raw_headers(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n\r\n").next().unwrap().to_string()
}

// covers: FR-3.1, FR-3.2, FR-3.3, FR-3.4, FR-3.5, US-1/AC-2, US-1/AC-3, US-1/AC-5, SC-3.1, SC-3.2, FR-12.11
#[test]
fn a_good_backup_mails_the_archive_attached_to_every_admin_over_starttls() {
    let Some((mail, s)) = STARTTLS.seeded("deliver_ok") else { return };
    let o = backup_json(&s, &[]);
    assert_exit(&o, 0);
    let report = json(&o);
    assert_eq!(report["delivery"]["status"], "delivered", "{report}");
    assert_eq!(report["delivery"]["method"], "attachment", "{report}");
    let archive = archive_path(&report);
    let name = archive.file_name().unwrap().to_str().unwrap();

    let got = mail.server.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "exactly one message for all admins");
    let mut rcpt = got[0].rcpt.clone();
    rcpt.sort();
    assert_eq!(rcpt, ADMINS, "one message to every configured administrator");

    let headers = raw_headers(&got[0].raw);
    assert!(headers.contains("MIME-Version: 1.0"), "{headers}");
    assert!(headers.is_ascii(), "headers are 7-bit; the UTF-8 subject is RFC 2047 encoded:\n{headers}");
    let m = parse(&got[0].raw);
    let subject = m.subject().unwrap();
    assert!(subject.contains(APP) && subject.contains("OK"), "status and app name in the subject: {subject}");
    // The one size unit for people (decimal: this archive is some hundred KB).
    let size = lifeboat::model::human_bytes(report["size_bytes"].as_u64().unwrap());
    assert!(size.ends_with(" KB") && subject.contains(&size), "size in the subject: {subject} ({size})");
    let date = &report["snapshot_time"].as_str().unwrap()[..10];
    assert!(subject.contains(date), "date in the subject: {subject}");

    // multipart/mixed ( multipart/alternative ( text/plain, text/html ), application/gzip )
    let root = m.parts[0].content_type().unwrap();
    assert_eq!((root.ctype(), root.subtype()), ("multipart", Some("mixed")));
    let text = got[0].text();
    assert!(text.contains("multipart/alternative"), "an alternative part inside the mixed one");
    let html = m.body_html(0).unwrap();
    let plain = m.body_text(0).unwrap();
    for body in [&html, &plain] {
        for needle in [name, "credit_transactions", "closure", "lifeboat restore", "psql", "window"] {
            assert!(body.contains(needle), "{needle:?} missing from a body:\n{body}");
        }
    }
    assert!(html.contains("<table"), "the HTML body uses tables");
    // Which key signed it and where its public key is, so it can be kept off the host.
    let key_file = std::fs::read_to_string(s.storage().join(".lifeboat/signing.pub")).unwrap();
    let key = key_file.lines().nth(1).unwrap().trim();
    let id = key_file.lines().next().unwrap().rsplit(' ').next().unwrap();
    for needle in
        [key, id, "lifeboat config", ".lifeboat/signing.pub", "minisign -Vm SHA256SUMS", "mkdir -p restore-dir"]
    {
        assert!(plain.contains(needle), "{needle:?} missing from the mail:\n{plain}");
    }

    let attachments: Vec<_> = m.attachments().collect();
    assert_eq!(attachments.len(), 1);
    let a = attachments[0];
    assert_eq!(a.attachment_name(), Some(name));
    let ct = a.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("application", Some("gzip")));
    assert_eq!(sha256(a.contents()), sha256(&std::fs::read(&archive).unwrap()), "attachment is byte-identical");
}

/// `identity.txt` in `dir` holding `id` as `age-keygen` writes it.
fn identity_file(dir: &Path, id: &age::x25519::Identity) -> PathBuf {
    use age::secrecy::ExposeSecret;
    let p = dir.join("identity.txt");
    std::fs::write(&p, format!("# test identity\n{}\n", id.to_string().expose_secret())).unwrap();
    p
}

// covers: FR-19.1, FR-19.2, FR-19.4, FR-5.3, US-8/AC-1, US-8/AC-2
#[test]
fn an_encrypted_attachment_decrypts_with_the_identity_to_the_archive_and_verifies() {
    let Some((mail, s)) = STARTTLS.seeded("deliver_age") else { return };
    let id = age::x25519::Identity::generate();
    add_section(&s, &format!("[encryption]\nrecipients = [{}]\n", toml_string(&id.to_public().to_string())));
    let o = backup_json(&s, &[]);
    assert_exit(&o, 0);
    let report = json(&o);
    assert_eq!(report["delivery"]["status"], "delivered", "{report}");
    assert_eq!(report["delivery"]["method"], "attachment", "{report}");
    let archive = archive_path(&report);
    let name = archive.file_name().unwrap().to_str().unwrap();
    let plaintext = std::fs::read(&archive).unwrap();
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the store keeps the plaintext archive at 0600");

    let got = mail.server.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "exactly one message for all admins");
    let m = parse(&got[0].raw);
    let attachments: Vec<_> = m.attachments().collect();
    assert_eq!(attachments.len(), 1, "exactly one attachment");
    let a = attachments[0];
    let enc_name = format!("{name}.age");
    assert!(enc_name.ends_with(".tar.gz.age"), "{enc_name}");
    assert_eq!(a.attachment_name(), Some(enc_name.as_str()), "the encrypted copy travels, not the archive");
    let ct = a.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("application", Some("octet-stream")));
    let ciphertext = a.contents();
    assert!(ciphertext.starts_with(b"age-encryption.org/v1"), "the attachment is age-encrypted");
    let decrypted = age::decrypt(&id, ciphertext).expect("the matching identity decrypts the attachment");
    assert_eq!(sha256(&decrypted), sha256(&plaintext), "decrypts to the identical archive");

    let saved = tempfile::tempdir().unwrap();
    let file = saved.path().join(&enc_name);
    std::fs::write(&file, ciphertext).unwrap();
    let idf = identity_file(saved.path(), &id);
    // Saved from the mail, outside the store: the store's key is trusted through its config.
    let o = run(&[
        "--config",
        s.config.to_str().unwrap(),
        "verify",
        file.to_str().unwrap(),
        "--identity",
        idf.to_str().unwrap(),
    ]);
    assert_exit(&o, 0);

    let wrong = tempfile::tempdir().unwrap();
    let wrong_id = identity_file(wrong.path(), &age::x25519::Identity::generate());
    let o = run(&["verify", file.to_str().unwrap(), "--identity", wrong_id.to_str().unwrap()]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains(wrong_id.to_str().unwrap()), "names the identity file: {}", stderr(&o));
}

// covers: FR-3.7, FR-3.10, SC-3.1
#[test]
fn test_email_delivers_over_implicit_tls_and_reports_the_smtp_reply() {
    let tls = Smtp { mode: Mode::Tls, ..STARTTLS };
    let Some(mail) = tls.start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), &tls.section(&mail, dir.path()));
    let o = run(&["--config", config.to_str().unwrap(), "test-email"]);
    assert_exit(&o, 0);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("250") && out.contains(ADMINS[0]) && out.contains(ADMINS[1]), "{out}");
    let got = mail.server.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    let m = parse(&got[0].raw);
    assert!(m.subject().unwrap().contains("test"), "{:?}", m.subject());
}

// covers: FR-3.6, FR-18.1, US-1/AC-4, TS-1.7
#[test]
fn a_message_over_the_limit_carries_a_signed_link_instead() {
    // The archive is ~40 kB: a 10 kB limit cannot hold it once encoded.
    let Some((mail, s)) = Smtp { extra: "attach_limit_mb = 0.01", ..STARTTLS }.seeded("deliver_link") else { return };
    let key_file = s.dir.path().join("link_secret");
    std::fs::write(&key_file, "link-Secret-0d7a54c2\n").unwrap();
    add_section(
        &s,
        &format!(
            "[links]\npublic_url = \"https://hub.example.test/backups\"\nsecret_file = {}\nttl = \"7 days\"\n",
            toml_string(&key_file.to_string_lossy())
        ),
    );
    let before = chrono::Utc::now().timestamp();
    let o = backup_json(&s, &[]);
    assert_exit(&o, 0);
    let report = json(&o);
    assert_eq!(report["delivery"]["method"], "link", "{report}");
    let name = archive_path(&report).file_name().unwrap().to_str().unwrap().to_string();

    let got = mail.server.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    let m = parse(&got[0].raw);
    assert_eq!(m.attachments().count(), 0, "no attachment over the limit");
    let plain = m.body_text(0).unwrap().into_owned();
    let prefix = format!("https://hub.example.test/backups/{name}?expires=");
    let start = plain.find(&prefix).unwrap_or_else(|| panic!("no link to {name} in:\n{plain}"));
    let link: String = plain[start..].chars().take_while(|c| !c.is_whitespace() && *c != '<' && *c != '"').collect();
    let expires: i64 = link[prefix.len()..].split('&').next().unwrap().parse().unwrap();
    let week = 7 * 86_400;
    assert!(expires >= before + week && expires <= chrono::Utc::now().timestamp() + week, "expires {expires}");
    assert_eq!(
        link,
        lifeboat::deliver::links::signed_url(
            "https://hub.example.test/backups",
            &name,
            expires,
            b"link-Secret-0d7a54c2"
        ),
        "the link is signed with the configured key"
    );
    // The HTML escapes what it inserts (`&` and `/` too), which browsers undo.
    let html = m.body_html(0).unwrap();
    let sig = link.rsplit("sig=").next().unwrap();
    assert!(
        html.contains(&format!("{name}?expires={expires}&amp;sig={sig}")),
        "the HTML body has the link too:\n{html}"
    );
}

/// Runs a backup whose delivery cannot succeed and checks what every such
/// failure must show: 3 attempts logged, delivery failed, archive kept,
/// exit code 3, the alert through the other channels; returns stderr.
fn assert_delivery_fails(s: &Seeded, sink: &HttpSink, expect: &[&str]) -> String {
    add_section(
        s,
        &format!(
            "[alerts]\nwebhook_url = \"{}/hook/T0KEN-wh-41\"\nping_url = \"{}/ping/uuid-5a\"\n",
            sink.url, sink.url
        ),
    );
    let o = backup_json(s, &[]);
    assert_exit(&o, 3);
    let err = stderr(&o);
    for n in 1..=3 {
        assert!(err.contains(&format!("attempt {n}/3")), "attempt {n} logged:\n{err}");
    }
    for e in expect {
        assert!(err.contains(e), "{e:?} missing from:\n{err}");
    }
    let report = json(&o);
    assert_eq!(report["delivery"]["status"], "failed", "{report}");
    assert_eq!(report["delivery"]["attempts"], 3, "{report}");
    let archive = archive_path(&report);
    assert!(archive.is_file(), "the good archive is kept");
    assert_exit(&run(&["--config", s.config.to_str().unwrap(), "verify", archive.to_str().unwrap()]), 0);

    let seen = sink.wait_for(3, Duration::from_secs(5));
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/ping/uuid-5a/start", "/hook/T0KEN-wh-41", "/ping/uuid-5a/fail"], "{seen:?}");
    let hook: Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(hook["kind"], "delivery_failed", "{hook}");
    assert!(hook["message"].as_str().unwrap().contains("attempt 3/3"), "{hook}");
    for r in &seen {
        assert!(!r.body.contains(PASSWORD) && !r.body.contains("T0KEN"), "{r:?}");
    }
    assert!(!err.contains(PASSWORD) && !String::from_utf8_lossy(&o.stdout).contains(PASSWORD));
    err
}

/// A mail that cannot be delivered: what is wrong on the SMTP side, and
/// what the log must name about it.
struct Undeliverable {
    hint: &'static str,
    smtp: Smtp,
    /// In stderr, besides the three attempts.
    expect: &'static [&'static str],
    /// The server accepts no message (a refused recipient: the others may get it).
    none_accepted: bool,
}

const UNDELIVERABLE: [Undeliverable; 4] = [
    // FR-3.8, FR-3.11: a wrong password is named with the key to check.
    Undeliverable {
        hint: "deliver_badpass",
        smtp: Smtp { password: "not-the-password", ..STARTTLS },
        expect: &["535", "authentication", "[email] username"],
        none_accepted: true,
    },
    // SC-3.2: no ca_file, so the test CA is not trusted; the hint names ca_file.
    Undeliverable {
        hint: "deliver_untrusted",
        smtp: Smtp { trust_ca: false, ..STARTTLS },
        expect: &["certificate", "not issued by a trusted CA", "ca_file"],
        none_accepted: true,
    },
    // SC-3.2: a certificate for another host name.
    Undeliverable {
        hint: "deliver_wrongname",
        smtp: Smtp { mode: Mode::Tls, names: &["mail.other.test"], ..STARTTLS },
        expect: &["certificate", "localhost"],
        none_accepted: true,
    },
    // US-1/AC-5: a refused recipient is reported by address.
    Undeliverable {
        hint: "deliver_refused",
        smtp: Smtp { refuse: &[ADMINS[1]], ..STARTTLS },
        expect: &["550", ADMINS[1]],
        none_accepted: false,
    },
];

// covers: FR-3.8, FR-3.11, US-3/AC-5, FR-4.7, SC-3.2, US-1/AC-5
#[test]
fn an_undeliverable_mail_is_tried_three_times_alerted_and_the_backup_kept() {
    for case in &UNDELIVERABLE {
        eprintln!("case {}", case.hint);
        let sink = HttpSink::start();
        let Some((mail, s)) = case.smtp.seeded(case.hint) else { return };
        assert_delivery_fails(&s, &sink, case.expect);
        if case.none_accepted {
            assert!(mail.server.messages().is_empty(), "{}: a message got through", case.hint);
        }
    }
}

// covers: FR-3.8, FR-3.10, FR-3.1
#[test]
fn smtp_down_at_first_and_up_by_the_third_attempt_delivers() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let ca = TestCa::new();
    let (cert, key) = ca.server_cert(&["localhost"]);
    let port = free_port();
    let s = Seeded::new("deliver_late");
    add_section(
        &s,
        &email_section(port, Mode::StartTls, Some(&ca.ca_file), PASSWORD, s.dir.path(), "backoff = \"2s\""),
    );
    // --no-deliver: nothing is sent (the server is not even up).
    let o = backup_json(&s, &["--no-deliver"]);
    assert_exit(&o, 0);
    let report = json(&o);
    assert_eq!(report["delivery"]["status"], "skipped", "{report}");
    let archive = archive_path(&report);

    let mut child = support::lifeboat()
        .args(["-v", "--config", s.config.to_str().unwrap(), "send", archive.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut server = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("attempt 2/3") && line.contains("failed") && server.is_none() {
            // Up again between the second and the third attempt.
            server = Some(SmtpServer::start(&SmtpOptions {
                mode: Mode::StartTls,
                port,
                cert: Some((&cert, &key)),
                user: USER,
                password: PASSWORD,
                refuse: &[],
            }));
        }
        lines.push(line);
    }
    let status = child.wait().unwrap();
    let log = lines.join("\n");
    assert!(status.success(), "send failed:\n{log}");
    assert!(log.contains("attempt 1/3") && log.contains("attempt 3/3"), "{log}");
    let server = server.unwrap_or_else(|| panic!("the second attempt never failed:\n{log}"));
    let got = server.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    let m = parse(&got[0].raw);
    let a = m.attachments().next().unwrap();
    assert_eq!(sha256(a.contents()), sha256(&std::fs::read(&archive).unwrap()));
}

// covers: FR-4.5, FR-4.7, US-3/AC-1, US-3/AC-2, SC-2.4, SC-3.3
#[test]
fn a_failed_backup_alerts_with_step_and_cause_and_no_secret() {
    let Some(mail) = STARTTLS.start() else { return };
    let sink = HttpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let db_password = "db-Pa55-a1b2c3d4";
    let link_secret = "link-Secret-99e0f1";
    std::fs::write(dir.path().join("link_secret"), link_secret).unwrap();
    let dead = free_port();
    let toml = format!(
        "{}\n{}\n[links]\npublic_url = \"https://hub.example.test/backups\"\nsecret_file = {}\n\
         [alerts]\nwebhook_url = \"{}/hook/T0KEN-wh-77\"\nping_url = \"{}/ping/uuid-9c\"\n",
        support::saas_config(
            &format!("postgres://postgres:{db_password}@127.0.0.1:{dead}/gone"),
            &dir.path().join("b")
        ),
        STARTTLS.section(&mail, dir.path()),
        toml_string(&dir.path().join("link_secret").to_string_lossy()),
        sink.url,
        sink.url,
    );
    let config = support::write_config(dir.path(), &toml);
    let o = run(&["--config", config.to_str().unwrap(), "--json", "backup"]);
    assert_exit(&o, 2);

    let got = mail.server.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "one alert mail");
    let m = parse(&got[0].raw);
    let subject = m.subject().unwrap();
    assert!(subject.contains("FAILED") && subject.contains(APP), "{subject}");
    let body = m.body_text(0).unwrap().into_owned();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    for needle in
        ["connect", "cannot connect to PostgreSQL at 127.0.0.1", "Connection refused", &host, "lifeboat backup"]
    {
        assert!(body.contains(needle), "{needle:?} missing from the alert:\n{body}");
    }
    assert!(body.contains("What to do next") && body.contains("Retried"), "{body}");
    assert!(m.body_html(0).unwrap().contains("cannot connect to PostgreSQL"));

    let seen = sink.wait_for(3, Duration::from_secs(5));
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/ping/uuid-9c/start", "/hook/T0KEN-wh-77", "/ping/uuid-9c/fail"], "{seen:?}");
    let hook: Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(seen[1].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        (&hook["event"], &hook["kind"], &hook["step"]),
        (&"alert".into(), &"backup_failed".into(), &"connect".into())
    );
    assert_eq!(hook["host"], host.as_str());

    let everything = [
        got.iter().map(|r| r.text()).collect::<Vec<_>>().join("\n"),
        seen.iter().map(|r| r.body.clone()).collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr(&o),
    ];
    // The webhook and ping URLs are secrets too (whoever knows them can post):
    // only their own requests' paths carry them, never a body or a message.
    for secret in [db_password, PASSWORD, link_secret, "T0KEN-wh-77", "uuid-9c"] {
        for (i, text) in everything.iter().enumerate() {
            assert!(!text.contains(secret), "secret {secret:?} leaked into output {i}:\n{text}");
        }
    }
}

// covers: FR-4.5, US-3/AC-2
#[test]
fn a_pg_dump_failure_alert_quotes_its_stderr() {
    // A fake pg_dump: the one fault (pg_dump itself failing mid-run) a real
    // pg_dump cannot be made to produce on demand against a healthy server.
    let Some((mail, s)) = STARTTLS.seeded("deliver_pgdump") else { return };
    let real = support::pg_bin("pg_dump");
    let fake = s.dir.path().join("pg_dump");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then exec {} --version; fi\n\
             echo 'pg_dump: error: simulated failure: could not write to output file' >&2\nexit 1\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&s.config).unwrap().replacen(
        "[database]\n",
        &format!("[database]\npg_dump = {}\n", toml_string(&fake.to_string_lossy())),
        1,
    );
    std::fs::write(&s.config, text).unwrap();
    let o = backup_json(&s, &[]);
    assert_exit(&o, 1);
    let got = mail.server.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "{}", stderr(&o));
    let body = parse(&got[0].raw).body_text(0).unwrap().into_owned();
    assert!(body.contains("schema"), "the failed step is named:\n{body}");
    assert!(
        body.contains("----- pg_dump stderr -----") && body.contains("simulated failure: could not write"),
        "pg_dump's stderr is quoted:\n{body}"
    );
    assert!(s.stored().iter().all(|n| !n.ends_with(".partial")), "{:?}", s.stored());
}

// covers: FR-4.7
#[test]
fn a_good_run_pings_start_and_success_and_posts_no_webhook() {
    let Some((mail, s)) = STARTTLS.seeded("deliver_ping") else { return };
    let sink = HttpSink::start();
    add_section(&s, &format!("[alerts]\nwebhook_url = \"{}/hook\"\nping_url = \"{}/ping/abc\"\n", sink.url, sink.url));
    assert_exit(&backup_json(&s, &[]), 0);
    let seen = sink.wait_for(2, Duration::from_secs(5));
    let calls: Vec<(&str, &str)> = seen.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(calls, [("POST", "/ping/abc/start"), ("POST", "/ping/abc")], "{seen:?}");
    assert_eq!(mail.server.wait_for(1, Duration::from_secs(5)).len(), 1);
}

// covers: SC-3.1, FR-3.7
#[test]
fn plain_smtp_is_refused_unless_allow_insecure() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let server = SmtpServer::start(&SmtpOptions {
        mode: Mode::Plain,
        port: 0,
        cert: None,
        user: USER,
        password: PASSWORD,
        refuse: &[],
    });
    let dir = tempfile::tempdir().unwrap();
    let config =
        support::write_config(dir.path(), &email_section(server.port, Mode::Plain, None, PASSWORD, dir.path(), ""));
    let o = run(&["--config", config.to_str().unwrap(), "test-email"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("allow_insecure"), "{}", stderr(&o));

    let config = support::write_config(
        dir.path(),
        &email_section(server.port, Mode::Plain, None, PASSWORD, dir.path(), "allow_insecure = true"),
    );
    let o = run(&["--config", config.to_str().unwrap(), "test-email"]);
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("warning") && stderr(&o).contains("without TLS"), "{}", stderr(&o));
    assert_eq!(server.wait_for(1, Duration::from_secs(5)).len(), 1);
}

// covers: FR-3.3, US-1/AC-6
#[test]
fn the_success_mail_renders_in_a_browser() {
    let Some(chromium) = support::browser::chromium() else { return };
    let Some((mail, s)) = STARTTLS.seeded("deliver_render") else { return };
    assert_exit(&backup_json(&s, &[]), 0);
    let got = mail.server.wait_for(1, Duration::from_secs(5));
    let html = parse(&got[0].raw).body_html(0).unwrap().into_owned();
    let page = s.dir.path().join("mail.html");
    std::fs::write(&page, &html).unwrap();
    let png = s.dir.path().join("success-mail.png");
    support::browser::screenshot(chromium, &format!("file://{}", page.display()), &png, "900,1400");
    // The picture in docs/BACKUP_SYSTEM.md; refreshed on request only.
    support::browser::keep_for_docs(&png, "success-mail.png");
}
