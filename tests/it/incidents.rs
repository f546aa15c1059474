//! Incidents end to end: real `lifeboat backup` runs of a tiny real
//! database, the monitor's `tick()` called in-process with `now` driven
//! forward (never slept for), and every alert, reminder and recovery
//! notice received by the real SMTP server (aiosmtpd with STARTTLS and
//! AUTH, `support/smtp_server.py`). The restore rehearsal runs against the
//! test PostgreSQL server as its scratch server.
//!
//! Where a history state would take many real runs (seven earlier good
//! runs of a bigger size, an archive as big as the free disk), the earlier
//! runs are written through the history API, and the test says so.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use mail_parser::MessageParser;
use serde_json::Value;

use crate::support::http_sink::HttpSink;
use crate::support::smtp::{self, free_port, Mode, SmtpServer, TestCa, TlsServer};
use crate::support::{self, toml_string, TestDb};
use crate::support::{assert_exit, backup_with, json, run, run_with, stderr};
use lifeboat::config::{Config, ConfigPath, Overrides};
use lifeboat::history::{History, Outcome, RehearsalStatus, RunStatus, StepStatus, Trigger};
use lifeboat::monitor::incidents;

const USER: &str = "backup@example.test";
const SMTP_PASSWORD: &str = "smtp-Inc1dent-Pa55-4e7a";
const RT_PASSWORD: &str = "rt-Scratch-Pa55-91c3";
/// The MB of sizes shown to people and of `min_size_mb` (FR-4.3).
const MB: u64 = 1_000_000;

/// A tiny database, a config with `[email]` for a real SMTP server, and
/// the storage directory in a temp dir.
struct Watched {
    _db: TestDb,
    _dir: tempfile::TempDir,
    config: PathBuf,
    smtp: SmtpServer,
    _ca: TestCa,
}

/// One received mail: its subject and text body.
#[derive(Debug, Clone)]
struct Mail {
    subject: String,
    text: String,
    raw: String,
}

impl Watched {
    /// `extra` is appended to the config (`[monitor]` is given here in full
    /// by each test, as `monitor`).
    fn new(hint: &str, monitor: &str, extra: &str) -> Watched {
        Self::in_dir(hint, monitor, extra, None)
    }

    fn in_dir(hint: &str, monitor: &str, extra: &str, storage: Option<&Path>) -> Watched {
        let db = support::tiny_db(hint);
        let dir = tempfile::tempdir().unwrap();
        let TlsServer { ca, server: smtp } = TlsServer::start(Mode::StartTls, USER, SMTP_PASSWORD);
        let pass_file = dir.path().join("smtp_pass");
        std::fs::write(&pass_file, format!("{SMTP_PASSWORD}\n")).unwrap();
        let storage = storage.map(Path::to_path_buf).unwrap_or_else(|| dir.path().join("backups"));
        let email = format!(
            "[email]\nsmtp_host = \"localhost\"\nsmtp_port = {}\ntls = \"starttls\"\nusername = \"{USER}\"\n\
             password_file = {}\nfrom = \"Hub Backup <{USER}>\"\nto = [\"admin@example.test\"]\n\
             app_name = \"Hub\"\ntimeout = \"5s\"\nbackoff = \"1s\"\nca_file = {}\n",
            smtp.port,
            toml_string(&pass_file.to_string_lossy()),
            toml_string(&ca.ca_file.to_string_lossy()),
        );
        let config = support::TestConfig::new(&db.url, &storage)
            .database("connect_timeout = \"2s\"")
            .section(email)
            .section(format!("[monitor]\n{monitor}"))
            .section(extra)
            .write(dir.path());
        Watched { _db: db, _dir: dir, config, smtp, _ca: ca }
    }

    fn storage(&self) -> PathBuf {
        self.load().storage.dir
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        run_with(&self.config, args)
    }

    fn backup(&self) -> Value {
        backup_with(&self.config)
    }

    fn load(&self) -> Config {
        lifeboat::config::load(ConfigPath::Explicit(self.config.clone()), &Overrides::default()).unwrap().0
    }

    fn tick(&self, now: DateTime<Utc>) {
        incidents::tick(&self.load(), now, &lifeboat::events::silent).unwrap();
    }

    fn mails(&self) -> Vec<Mail> {
        self.smtp
            .messages()
            .iter()
            .map(|m| {
                let p = MessageParser::default().parse(&m.raw).unwrap();
                Mail {
                    subject: p.subject().unwrap_or_default().to_string(),
                    text: p.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                    raw: m.text(),
                }
            })
            .collect()
    }

    /// Alerts, reminders and recovery notices (not the success mails).
    fn notices(&self) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| !m.subject.contains("✅ OK:")).collect()
    }

    fn open_kinds(&self) -> Vec<String> {
        incidents::open_incidents(&self.storage()).unwrap().into_iter().map(|i| i.kind).collect()
    }
}

fn subjects(m: &[Mail]) -> Vec<&str> {
    m.iter().map(|m| m.subject.as_str()).collect()
}

/// Rewrites `.last_backup_success` to `at` (an old success, simulated).
fn plant_success_marker(storage: &Path, at: DateTime<Utc>) {
    std::fs::write(storage.join(".last_backup_success"), format!("{}\n", at.timestamp())).unwrap();
}

/// A recorded success of `size` bytes that ended at `at` (history API).
fn record_success(storage: &Path, at: DateTime<Utc>, size: u64) {
    let mut h = History::open(storage).unwrap();
    let id = h.start(Trigger::Schedule, at).unwrap();
    let name = format!("critical_backup_{}.tar.gz", at.format("%Y%m%d_%H%M%S"));
    let o = Outcome { status: RunStatus::Success, archive: Some(name), size_bytes: Some(size), ..Default::default() };
    h.finish(id, at, &o, &[]).unwrap();
}

fn no_secret_in(mails: &[Mail], secrets: &[&str]) {
    for m in mails {
        for s in secrets {
            assert!(!m.raw.contains(s), "secret {s:?} in the mail {:?}", m.subject);
        }
    }
}

// covers: FR-4.3, FR-4.6, US-3/AC-3, US-3/AC-4, FR-4.2
#[test]
fn a_stale_backup_alerts_once_reminds_after_realert_hours_and_recovers_once() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let w = Watched::new("inc_stale", "min_size_mb = 0\nrealert_hours = 24", "");
    w.backup();
    let storage = w.storage();
    assert_eq!(w.notices().len(), 0, "a good run alerts nothing");
    let now = Utc::now();
    plant_success_marker(&storage, now - Duration::hours(26));

    w.tick(now);
    w.tick(now + Duration::minutes(5));
    let n = w.notices();
    assert_eq!(subjects(&n).len(), 1, "two ticks, one alert: {:?}", subjects(&n));
    assert!(
        n[0].subject.contains("FAILED") && n[0].subject.contains("no recent successful backup"),
        "{}",
        n[0].subject
    );
    assert!(n[0].text.contains("26 hours old") && n[0].text.contains("max_age_hours = 25"), "{}", n[0].text);
    assert!(n[0].text.contains("What to do next") && n[0].text.contains("lifeboat backup"), "{}", n[0].text);
    assert_eq!(w.open_kinds(), ["stale"]);

    // Incidents live in the history: a new process (a fresh Config, a new
    // connection) sees the open one and does not alert again.
    w.tick(now + Duration::hours(23));
    assert_eq!(w.notices().len(), 1, "no reminder before realert_hours");
    w.tick(now + Duration::hours(24));
    w.tick(now + Duration::hours(24) + Duration::minutes(5));
    let n = w.notices();
    assert_eq!(n.len(), 2, "one reminder after realert_hours: {:?}", subjects(&n));
    assert!(n[1].subject.contains("still open since"), "{}", n[1].subject);
    assert!(n[1].text.contains("Reminder 2 of this incident"), "{}", n[1].text);

    // A fresh success: the next look closes the incident with one notice.
    w.backup();
    w.tick(now + Duration::hours(24) + Duration::minutes(10));
    w.tick(now + Duration::hours(24) + Duration::minutes(15));
    let n = w.notices();
    assert_eq!(n.len(), 3, "{:?}", subjects(&n));
    assert!(
        n[2].subject.contains("RECOVERED") && n[2].subject.contains("no recent successful backup"),
        "{}",
        n[2].subject
    );
    assert!(n[2].text.contains("Problem:  stale") && n[2].text.contains("Alerts:   2"), "{}", n[2].text);
    assert!(w.open_kinds().is_empty());
    no_secret_in(&w.mails(), &[SMTP_PASSWORD]);
}

// covers: FR-4.5, FR-4.6, FR-4.7, US-3/AC-1, US-3/AC-4, SC-2.4
#[test]
fn a_failed_run_alerts_once_the_monitor_does_not_repeat_it_and_the_next_success_recovers() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let sink = HttpSink::start();
    let alerts =
        format!("[alerts]\nwebhook_url = \"{0}/hook/T0KEN-inc-5\"\nping_url = \"{0}/ping/uuid-inc\"\n", sink.url);
    let w = Watched::new("inc_failed", "min_size_mb = 0", &alerts);
    w.backup();
    let fail = || {
        let o = w.cmd(&["backup", "--database-url", "postgres://nobody@127.0.0.1:1/gone"]);
        assert_exit(&o, 2);
        stderr(&o)
    };
    fail();
    let n = w.notices();
    assert_eq!(n.len(), 1, "{:?}", subjects(&n));
    assert!(n[0].subject.contains("FAILED") && n[0].subject.contains("backup failed"), "{}", n[0].subject);
    assert!(n[0].text.contains("cannot connect to PostgreSQL at 127.0.0.1:1"), "{}", n[0].text);
    assert_eq!(w.open_kinds(), ["backup_failed"]);

    // The monitor sees the failed run, but the run's alert opened the incident.
    w.tick(Utc::now());
    assert_eq!(w.notices().len(), 1, "{:?}", subjects(&w.notices()));
    // A second failure while it is open is not mailed again (it says why).
    let err = fail();
    assert!(err.contains("not alerted again: the backup_failed incident is open since"), "{err}");
    assert_eq!(w.notices().len(), 1, "{:?}", subjects(&w.notices()));

    // The next good run closes it itself (no daemon needed).
    w.backup();
    let n = w.notices();
    assert_eq!(n.len(), 2, "{:?}", subjects(&n));
    assert!(n[1].subject.contains("RECOVERED") && n[1].subject.contains("backup failed"), "{}", n[1].subject);
    w.tick(Utc::now());
    assert_eq!(w.notices().len(), 2, "nothing more to say");
    assert!(w.open_kinds().is_empty());

    // The webhook saw one alert and one recovery; the ping saw every run,
    // the second failure too.
    let seen = sink.wait_for(10, std::time::Duration::from_secs(5));
    let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
    let (start, ok, fail, hook) =
        ("/ping/uuid-inc/start", "/ping/uuid-inc", "/ping/uuid-inc/fail", "/hook/T0KEN-inc-5");
    assert_eq!(paths, [start, ok, start, hook, fail, start, fail, start, hook, ok], "{seen:?}");
    let events: Vec<Value> =
        seen.iter().filter(|r| r.path == hook).map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    assert_eq!((&events[0]["event"], &events[0]["kind"]), (&"alert".into(), &"backup_failed".into()));
    assert_eq!((&events[1]["event"], &events[1]["kind"]), (&"recovery".into(), &"backup_failed".into()));
    for r in &seen {
        assert!(!r.body.contains("T0KEN") && !r.body.contains("uuid-inc") && !r.body.contains(SMTP_PASSWORD), "{r:?}");
    }
    no_secret_in(&w.mails(), &[SMTP_PASSWORD, "T0KEN", "uuid-inc"]);
}

// covers: FR-4.3, FR-4.6, US-2/AC-6
#[test]
fn a_small_archive_opens_band_and_anomaly_incidents_and_is_kept() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let w = Watched::new("inc_size", "min_size_mb = 1\nmax_size_mb = 100", "");
    let storage = w.storage();
    // Seven earlier good runs of 40 MB, written through the history API
    // (seven real 40 MB dumps would only make the test slow).
    let start = Utc::now() - Duration::days(8);
    for d in 0..7 {
        record_success(&storage, start + Duration::days(d), 40 * MB);
    }
    let report = w.backup();
    let archive = PathBuf::from(report["archive"].as_str().unwrap());
    // The run succeeded, and its report and its mail say what `check` says (one rule).
    let band = ["below min_size_mb = 1 MB", "less than half the median 40.0 MB of the 7 good runs"];
    let warnings = report["warnings"].to_string();
    let success_mail = w.mails().into_iter().find(|m| m.subject.contains("✅ OK:")).expect("the success mail");
    let checked = w.cmd(&["check"]);
    assert_exit(&checked, 1);
    let check = String::from_utf8_lossy(&checked.stdout).into_owned();
    for needle in band {
        assert!(warnings.contains(needle), "{needle:?} missing from the report's warnings: {warnings}");
        assert!(success_mail.text.contains(needle), "{needle:?} missing from the mail:\n{}", success_mail.text);
        assert!(check.contains(needle), "{needle:?} missing from check:\n{check}");
    }
    w.tick(Utc::now());
    w.tick(Utc::now());
    let n = w.notices();
    assert_eq!(n.len(), 2, "one alert per incident: {:?}", subjects(&n));
    assert!(n.iter().any(
        |m| m.subject.contains("backup size out of the expected band") && m.text.contains("below min_size_mb = 1")
    ));
    assert!(n.iter().any(|m| m.subject.contains("backup suddenly much smaller")
        && m.text.contains("less than half the median 40.0 MB of the 7 good runs")));
    let mut kinds = w.open_kinds();
    kinds.sort();
    assert_eq!(kinds, ["size_anomaly", "size_out_of_band"]);
    assert!(archive.is_file(), "a size incident never touches the archive");
    assert_exit(
        &run(&["verify", archive.to_str().unwrap(), "--trusted-key", &crate::support::its_store_key(&archive)]),
        0,
    );
    let o = w.cmd(&["--json", "prune", "--dry-run"]);
    assert_exit(&o, 0);
    let name = archive.file_name().unwrap().to_str().unwrap();
    let d = json(&o)["decisions"].as_array().unwrap().iter().find(|d| d["name"] == name).cloned().unwrap();
    assert!(d["reason"].as_str().unwrap().contains("the newest good archive"), "{d}");
}

/// A small tmpfs mounted on a temp dir (unmounted on drop), when this
/// process may mount (root, as in the CI container).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let d = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(d.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(d))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

// covers: FR-4.3, FR-4.6
#[test]
fn less_free_space_than_twice_the_last_archive_opens_low_disk_until_it_fits_again() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    // Real free space, small and steady: a 4 MiB tmpfs as the storage
    // directory. Without the right to mount, the real file system of a temp
    // dir is measured instead (its free space moves with other writers, so
    // the sizes keep a wide margin).
    let tmpfs = Tmpfs::mount("4m");
    if tmpfs.is_none() {
        eprintln!("NOTE: cannot mount a tmpfs here; measuring the temp dir's file system instead");
    }
    let plain = tempfile::tempdir().unwrap();
    let storage = tmpfs.as_ref().map_or(plain.path().join("backups"), |t| t.0.path().join("backups"));
    let w = Watched::in_dir("inc_disk", "min_size_mb = 0\nmax_size_mb = 4000000000", "", Some(&storage));
    std::fs::create_dir(&storage).unwrap();
    let free = lifeboat::monitor::checks::free_space(&storage).unwrap();
    // The recorded runs stand for archives this big (history API: a real
    // archive as big as the disk cannot be written to it, by definition).
    // Three of a quarter of the free space first, so that neither the big
    // one nor the small one after it is a size anomaly.
    for h in [5, 4, 3] {
        record_success(&storage, Utc::now() - Duration::hours(h), free / 4);
    }
    record_success(&storage, Utc::now() - Duration::hours(2), free);
    w.tick(Utc::now());
    w.tick(Utc::now());
    let n = w.notices();
    assert_eq!(n.len(), 1, "{:?}", subjects(&n));
    assert!(n[0].subject.contains("low disk space for backups"), "{}", n[0].subject);
    assert!(n[0].text.contains("less than 2 × the last archive"), "{}", n[0].text);
    assert_eq!(w.open_kinds(), ["low_disk"]);

    record_success(&storage, Utc::now() - Duration::hours(1), free / 4);
    w.tick(Utc::now());
    let n = w.notices();
    assert_eq!(n.len(), 2, "{:?}", subjects(&n));
    assert!(n[1].subject.contains("RECOVERED") && n[1].subject.contains("low disk space"), "{}", n[1].subject);
    assert!(w.open_kinds().is_empty());
    drop(w);
}

// covers: FR-15.5, US-9/AC-3, FR-20.1
#[test]
fn with_a_scratch_server_each_backup_is_rehearsed_and_its_restore_time_recorded() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let url = support::server().admin_url();
    let w =
        Watched::new("inc_rt_ok", "min_size_mb = 0", &format!("[verify]\nrestore_test_url = {}\n", toml_string(&url)));
    let o = w.cmd(&["--json", "backup"]);
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("lifeboat: restore_test") && !err.contains("rehearsal failed"), "{err}");
    let name = PathBuf::from(json(&o)["archive"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
    let h = History::open_existing(&w.storage()).unwrap().unwrap();
    let r = h.by_archive(&name).unwrap().unwrap();
    assert_eq!(r.restore_test_status, Some(RehearsalStatus::Success), "{r:?}");
    assert!(r.restore_test_duration_ms.is_some_and(|ms| ms > 0), "{r:?}");
    let steps = h.steps(r.id).unwrap();
    assert!(steps.iter().any(|s| s.step == "restore_test" && s.status == StepStatus::Ok), "{steps:?}");
    assert!(w.notices().is_empty(), "{:?}", subjects(&w.notices()));
    let listed = json(&w.cmd(&["--json", "list"]));
    assert!(listed.to_string().contains("\"success\""), "{listed}");
}

// covers: FR-15.5, FR-6.7, US-9/AC-3, FR-4.6, SC-2.4
#[test]
fn a_failed_rehearsal_alerts_and_its_archive_is_not_good_for_retention() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let dead = free_port();
    let refused = format!("postgres://postgres:{RT_PASSWORD}@127.0.0.1:{dead}/postgres");
    let w = Watched::new(
        "inc_rt_fail",
        "min_size_mb = 0",
        &format!("[verify]\nrestore_test_url = {}\n", toml_string(&refused)),
    );
    let o = w.cmd(&["--json", "backup"]);
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("the restore rehearsal failed") && err.contains("Connection refused"), "{err}");
    let archive = PathBuf::from(json(&o)["archive"].as_str().unwrap());
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    let h = History::open_existing(&w.storage()).unwrap().unwrap();
    assert_eq!(h.by_archive(&name).unwrap().unwrap().restore_test_status, Some(RehearsalStatus::Failed));
    drop(h);

    let n = w.notices();
    assert_eq!(n.len(), 1, "{:?}", subjects(&n));
    assert!(n[0].subject.contains("FAILED") && n[0].subject.contains("restore rehearsal failed"), "{}", n[0].subject);
    assert!(n[0].text.contains("Connection refused") && n[0].text.contains(&name), "{}", n[0].text);
    assert_eq!(w.open_kinds(), ["restore_test_failed"]);
    w.tick(Utc::now());
    assert_eq!(w.notices().len(), 1, "the monitor does not repeat the run's alert");

    let o = w.cmd(&["--json", "prune", "--dry-run"]);
    assert_exit(&o, 0);
    let d = json(&o)["decisions"].as_array().unwrap().iter().find(|d| d["name"] == name.as_str()).cloned().unwrap();
    let reason = d["reason"].as_str().unwrap();
    assert!(reason.contains("not good: its restore rehearsal failed") && !reason.contains("newest good"), "{d}");
    assert!(archive.is_file(), "the archive itself is kept");

    // A scratch server that works again: the next run's rehearsal passes
    // and closes the incident.
    let text = std::fs::read_to_string(&w.config).unwrap().replace(&refused, &support::server().admin_url());
    std::fs::write(&w.config, text).unwrap();
    w.backup();
    let n = w.notices();
    assert_eq!(n.len(), 2, "{:?}", subjects(&n));
    assert!(
        n[1].subject.contains("RECOVERED") && n[1].subject.contains("restore rehearsal failed"),
        "{}",
        n[1].subject
    );
    no_secret_in(&w.mails(), &[SMTP_PASSWORD, RT_PASSWORD]);
    assert!(!err.contains(RT_PASSWORD));
}

/// The newest archive truncated after the backup (a full disk, a botched
/// copy, someone's `> file`): `check` names it, and the monitor opens an
/// incident and mails it (issue 19: `check` used to stay healthy).
// covers: FR-4.2, FR-4.3, FR-4.6
#[test]
fn a_truncated_newest_archive_makes_check_unhealthy_and_the_monitor_alerts() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let w = Watched::new("inc_truncated", "min_size_mb = 0", "");
    let archive = PathBuf::from(w.backup()["archive"].as_str().unwrap());
    let name = archive.file_name().unwrap().to_str().unwrap().to_string();
    assert_exit(&w.cmd(&["check"]), 0);
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();

    let o = w.cmd(&["check"]);
    assert_exit(&o, 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&name) && out.contains("not the") && out.contains("bytes its run recorded"), "{out}");

    w.tick(Utc::now());
    w.tick(Utc::now());
    let n = w.notices();
    assert_eq!(subjects(&n).len(), 1, "one alert: {:?}", subjects(&n));
    assert!(n[0].subject.contains("newest archive changed on disk") && n[0].text.contains(&name), "{:?}", n[0]);
    assert_eq!(w.open_kinds(), ["archive_changed"]);
}
