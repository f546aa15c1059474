//! Before/after equality of a whole service cycle (issue 20: one redesign
//! step, behaviour unchanged): on the SaaS fixture, with a real SMTP server
//! (STARTTLS), a webhook and a ping listener and a restore rehearsal on the
//! test cluster, it runs `backup` (success mail), a `backup` that fails
//! (alert), another `backup` (success mail, recovery notice, retention of
//! a planted old archive), `list`, `prune --dry-run`, `prune` and `check`,
//! all with `--json`, and snapshots what a person or a script sees:
//! the archive's members with the SHA-256 of each CSV (timestamps, which
//! the fixture makes relative to now(), masked before hashing), every mail
//! (parsed: headers that vary, boundaries and the attachment's bytes left
//! out), every webhook and ping, every row of the run history, and the
//! `--json` outputs. Times, durations, sizes, ports, temp paths and
//! archive stamps are masked; everything else must stay as it is.
//!
//! The snapshots were generated on the code before the redesign; they are
//! its specification. `cargo insta review` accepts a deliberate change.

use std::path::Path;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::Value;

use crate::support::http_sink::HttpSink;
use crate::support::smtp::{Mode, TlsServer};
use crate::support::{self, toml_string};
use crate::support::{assert_exit, json, members, run_with, sha256, Seeded};

const USER: &str = "backup@example.test";
const PASSWORD: &str = "smtp-Pa55-eq-4b1d";

/// Masks what varies from run to run in every text snapshotted here.
fn settings(tmp: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    let tmp = tmp.display().to_string();
    let escaped: String = tmp
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '/' { c.to_string() } else { format!("\\{c}") })
        .collect();
    s.add_filter(&escaped, "[TMP]");
    s.add_filter(&regex_escape(&gethostname()), "[HOST]");
    s.add_filter(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:\d{2})?)?", "[TIME]");
    s.add_filter(r"\d{4}-\d{2}-\d{2}", "[DATE]");
    s.add_filter(r"\b\d{2}:\d{2}:\d{2}\b", "[HMS]");
    s.add_filter(r"critical_backup_\d{8}_\d{6}", "critical_backup_[STAMP]");
    s.add_filter(r"\blb_[a-z0-9_]+", "[DB]");
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    s.add_filter(r"localhost:\d+", "localhost:[PORT]");
    s.add_filter(r"(PostgreSQL |pg_dump |lifeboat |lifeboat/)\d+\.\d+(\.\d+)?( \([^)]*\))?", "$1[VERSION]");
    s.add_filter(r#""(server_version|pg_dump_version|tool_version|version)": "[^"]*""#, r#""$1": "[VERSION]""#);
    s.add_filter(r"\bRW[A-Za-z0-9+/]{54}", "[SIGNING KEY]");
    s.add_filter(r"\b[0-9A-F]{16}\b", "[KEY ID]");
    // Sizes and durations in prose: "0.4 MB", "1.2 s", "312 ms", "3 s".
    s.add_filter(r"\b\d+(\.\d+)? ?(bytes|[KMG]i?B|B)\b", "[SIZE]");
    s.add_filter(r"\b\d+(\.\d+)? ?(ms|s|min)\b", "[DURATION]");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[SHA256]");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("\\{c}") }).collect()
}

fn gethostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// Keys whose values vary run to run (sizes, durations, ages, the SMTP
/// server's queue id, checksums of archives whose rows hold now()-relative
/// times): replaced by their name before the snapshot.
fn varying(key: &str) -> bool {
    key.ends_with("bytes")
        || key.ends_with("_ms")
        || key.ends_with("seconds")
        || key.ends_with("hours")
        || matches!(key, "size" | "reply" | "sha256")
}

fn mask_json(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if varying(k) && !x.is_null() {
                    *x = Value::String(format!("[{}]", k.to_uppercase()));
                } else {
                    mask_json(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_json),
        _ => {}
    }
}

fn masked(o: &std::process::Output) -> String {
    let mut v = json(o);
    mask_json(&mut v);
    serde_json::to_string_pretty(&v).unwrap()
}

/// Every member in order; for CSV data, the SHA-256 of its rows with the
/// fixture's now()-relative timestamps masked (the rows are otherwise
/// deterministic: keys are md5 of labels).
fn archive_summary(archive: &Path) -> String {
    let ts = regex::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}(:\d{2})?)?").unwrap();
    let mut out = String::new();
    for (name, data) in members(archive) {
        if name.ends_with(".csv") || name.ends_with(".copy") {
            let text = String::from_utf8_lossy(&data);
            let rows = text.lines().count();
            out.push_str(&format!(
                "{name} lines={rows} masked_sha256={}\n",
                sha256(ts.replace_all(&text, "T").as_bytes())
            ));
        } else {
            out.push_str(&format!("{name}\n"));
        }
    }
    out
}

/// One mail as its reader sees it: the headers that do not vary per
/// message, each text part, and the attachments by name and type.
fn mail_summary(raw: &[u8], rcpt: &[String]) -> String {
    let m = MessageParser::default().parse(raw).expect("a parseable mail");
    let mut out = format!(
        "RCPT: {}\nFrom: {:?}\nTo: {:?}\nSubject: {}\n",
        rcpt.join(", "),
        m.from().and_then(|a| a.first()).map(|a| (a.name().map(str::to_string), a.address().map(str::to_string))),
        m.to().map(|t| t.iter().filter_map(|a| a.address().map(str::to_string)).collect::<Vec<_>>()),
        m.subject().unwrap_or_default(),
    );
    for (i, part) in m.parts.iter().enumerate() {
        let ct =
            part.content_type().map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))).unwrap_or_default();
        if ct.starts_with("multipart/") {
            continue;
        }
        match (part.attachment_name(), ct.starts_with("text/")) {
            (Some(name), _) => out.push_str(&format!("--- part {i}: {ct} attachment {name}\n")),
            (None, true) => {
                // HTML escapes undone, so the masks below see paths and keys.
                let body = part.text_contents().unwrap_or_default().replace("&#x2f;", "/").replace("&#x27;", "'");
                out.push_str(&format!("--- part {i}: {ct}\n{}\n", body.trim_end()));
            }
            (None, false) => out.push_str(&format!("--- part {i}: {ct}\n")),
        }
    }
    out
}

/// Every row of every table of the run history, in rowid order.
fn history_summary(storage: &Path) -> String {
    let db = rusqlite::Connection::open(storage.join(".lifeboat/history.db")).unwrap();
    let mut tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.sort();
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("== {t}\n"));
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{t}\" ORDER BY rowid")).unwrap();
        let cols: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let fields: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let v: rusqlite::types::Value = r.get(i).unwrap();
                    let shown = match v {
                        rusqlite::types::Value::Null => "NULL".to_string(),
                        _ if c.ends_with("_ms") || c.ends_with("bytes") || c.ends_with("sha256") => {
                            format!("[{}]", c.to_uppercase())
                        }
                        rusqlite::types::Value::Integer(n) if c.ends_with("_at") || c == "at" || c.contains("time") => {
                            let _ = n;
                            "[EPOCH]".into()
                        }
                        rusqlite::types::Value::Integer(n) => n.to_string(),
                        rusqlite::types::Value::Real(f) => f.to_string(),
                        rusqlite::types::Value::Text(s) => format!("{s:?}"),
                        rusqlite::types::Value::Blob(b) => format!("<{} bytes>", b.len()),
                    };
                    format!("{c}={shown}")
                })
                .collect();
            out.push_str(&fields.join(" | "));
            out.push('\n');
        }
    }
    out
}

fn name_days_ago(days: i64) -> String {
    let t = chrono::Utc::now() - chrono::Duration::days(days);
    format!("critical_backup_{}.tar.gz", t.format("%Y%m%d_%H%M%S"))
}

// covers: FR-1.1, FR-6.1, FR-6.8, FR-15.5, FR-20.1, FR-3.1
#[test]
fn a_service_cycle_reads_the_same_before_and_after_the_redesign() {
    if !crate::support::smtp::aiosmtpd_available() {
        return;
    }
    let TlsServer { ca, server: smtp } = TlsServer::start(Mode::StartTls, USER, PASSWORD);
    let hooks = HttpSink::start();
    let s = Seeded::new("equality");
    let pass_file = s.dir.path().join("smtp_pass");
    std::fs::write(&pass_file, format!("{PASSWORD}\n")).unwrap();
    let extra = format!(
        "[email]\nsmtp_host = \"localhost\"\nsmtp_port = {}\ntls = \"starttls\"\nusername = \"{USER}\"\n\
         password_file = {}\nfrom = \"Hub Backup <{USER}>\"\nto = [\"admin@example.test\"]\n\
         app_name = \"Hub\"\ntimeout = \"5s\"\nbackoff = \"1s\"\nca_file = {}\n\n\
         [alerts]\nwebhook_url = {}\nping_url = {}\n\n[monitor]\nmin_size_mb = 0\n\n\
         [retention]\nkeep_last = 1\n\n\
         [verify]\nrestore_test_url = {}\n",
        smtp.port,
        toml_string(&pass_file.to_string_lossy()),
        toml_string(&ca.ca_file.to_string_lossy()),
        toml_string(&format!("{}/hook", hooks.url)),
        toml_string(&format!("{}/ping", hooks.url)),
        toml_string(&support::server().admin_url()),
    );
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text.push('\n');
    text.push_str(&extra);
    std::fs::write(&s.config, text).unwrap();
    let cmd = |args: &[&str]| run_with(&s.config, args);

    // 1. A good run: success mail, rehearsal, success ping.
    let first = cmd(&["--json", "backup"]);
    assert_exit(&first, 0);
    let archive = json(&first)["archive"].as_str().unwrap().to_string();
    smtp.wait_for(1, Duration::from_secs(10));
    // 2. A failed run: its alert (mail, webhook, /fail ping) and incident.
    let failed = cmd(&["--json", "backup", "--database-url", "postgres://nobody@127.0.0.1:1/gone"]);
    assert_exit(&failed, 2);
    smtp.wait_for(2, Duration::from_secs(10));
    // 3. An old archive for retention (31 days, past retention_days = 30; the
    // first archive is young enough to stay), then a good run: mail,
    // recovery notice, retention.
    std::fs::copy(&archive, s.storage().join(name_days_ago(31))).unwrap();
    let second = cmd(&["--json", "backup"]);
    assert_exit(&second, 0);
    // 4. Another old one for prune; then the read-side commands.
    std::fs::copy(&archive, s.storage().join(name_days_ago(40))).unwrap();
    let list = cmd(&["--json", "list"]);
    assert_exit(&list, 0);
    let dry = cmd(&["--json", "prune", "--dry-run"]);
    assert_exit(&dry, 0);
    let pruned = cmd(&["--json", "prune"]);
    assert_exit(&pruned, 0);
    let check = cmd(&["--json", "check"]);

    // Success, alert, success, recovery notice.
    let mails = smtp.wait_for(4, Duration::from_secs(10));
    let mails: Vec<String> = mails.iter().map(|m| mail_summary(&m.raw, &m.rcpt)).collect();
    let hooks: Vec<String> = hooks
        .seen()
        .iter()
        .map(|h| {
            let body = serde_json::from_str::<Value>(&h.body)
                .map(|mut v| {
                    mask_json(&mut v);
                    serde_json::to_string_pretty(&v).unwrap()
                })
                .unwrap_or_else(|_| h.body.clone());
            format!("{} {} {:?}\n{body}", h.method, h.path, h.content_type)
        })
        .collect();
    let second_archive = json(&second)["archive"].as_str().unwrap().to_string();

    settings(s.dir.path()).bind(|| {
        insta::assert_snapshot!("equality_archive", archive_summary(Path::new(&second_archive)));
        insta::assert_snapshot!("equality_backup_json", masked(&first));
        insta::assert_snapshot!("equality_backup_failed_stdout", String::from_utf8_lossy(&failed.stdout));
        insta::assert_snapshot!("equality_backup_second_json", masked(&second));
        insta::assert_snapshot!("equality_list_json", masked(&list));
        insta::assert_snapshot!("equality_prune_dry_run_json", masked(&dry));
        insta::assert_snapshot!("equality_prune_json", masked(&pruned));
        insta::assert_snapshot!("equality_check_json", format!("exit {:?}\n{}", check.status.code(), masked(&check)));
        insta::assert_snapshot!("equality_mails", mails.join("\n=========\n"));
        insta::assert_snapshot!("equality_hooks", hooks.join("\n=========\n"));
        insta::assert_snapshot!("equality_history", history_summary(&s.storage()));
    });
}
