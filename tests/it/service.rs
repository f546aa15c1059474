//! The service's synchronous core through the real binary, on real
//! archives of a tiny real database: run history and marker files
//! (`backup`), retention (`prune`, `--dry-run`), the health check (`check`)
//! and `list`.
//!
//! Age is simulated, never waited for: older archives are *planted* as
//! copies of real ones under older names (retention reads the time from the
//! name), and an old success is simulated by rewriting the marker file.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{self, TestDb};
use crate::support::{assert_exit, backup_with, json, run_with, stderr};

/// A tiny database, its config and storage directory in a temp dir.
struct Tiny {
    db: TestDb,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Tiny {
    /// `extra` is appended to the config; `[monitor] min_size_mb = 0` lets a
    /// tiny archive count as a healthy size unless `extra` replaces it.
    fn new(hint: &str, monitor: &str) -> Tiny {
        let db = support::tiny_db(hint);
        let dir = tempfile::tempdir().unwrap();
        let config = support::TestConfig::new(&db.url, dir.path().join("backups"))
            .database("connect_timeout = \"2s\"")
            .section(format!("[monitor]\n{monitor}"))
            .write(dir.path());
        Tiny { db, dir, config }
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        run_with(&self.config, args)
    }

    fn backup(&self) -> Value {
        backup_with(&self.config)
    }

    /// A backup that fails: the database URL points at a port nobody listens on.
    fn failed_backup(&self) -> String {
        let o = self.cmd(&["backup", "--database-url", "postgres://nobody@127.0.0.1:1/gone"]);
        assert_exit(&o, 2);
        stderr(&o)
    }

    fn history(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.storage().join(".lifeboat/history.db")).unwrap()
    }

    fn archives(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.storage())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("critical_backup_"))
            .collect();
        v.sort();
        v
    }
}

fn name_days_ago(days: i64) -> String {
    let t = chrono::Utc::now() - chrono::Duration::days(days);
    format!("critical_backup_{}.tar.gz", t.format("%Y%m%d_%H%M%S"))
}

/// Plants a copy of the real archive `from` as if written `days` ago.
fn plant(storage: &Path, from: &str, days: i64) -> String {
    let name = name_days_ago(days);
    std::fs::copy(storage.join(from), storage.join(&name)).unwrap();
    name
}

fn marker(storage: &Path, name: &str) -> String {
    std::fs::read_to_string(storage.join(name)).unwrap()
}

// covers: FR-20.1, FR-20.2, FR-20.4, US-5/AC-2, US-5/AC-3
#[test]
fn a_backup_is_recorded_in_the_history_and_the_markers_and_a_failed_one_only_in_the_history() {
    let t = Tiny::new("hist", "min_size_mb = 0");
    let report = t.backup();
    let size = report["size_bytes"].as_u64().unwrap();
    let archive = Path::new(report["archive"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
    let (status, name, bytes, rows, trigger): (String, String, i64, i64, String) = t
        .history()
        .query_row("SELECT status, archive, size_bytes, rows, trigger FROM runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap();
    assert_eq!(
        (status.as_str(), name.as_str(), bytes as u64, rows, trigger.as_str()),
        ("success", archive.as_str(), size, 5, "manual")
    );
    let steps: Vec<String> = t
        .history()
        .prepare("SELECT step || '=' || status FROM run_steps ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(steps.first().map(String::as_str), Some("connect=ok"));
    assert!(steps.contains(&"verify=ok".to_string()), "{steps:?}");

    let success: i64 = marker(&t.storage(), ".last_backup_success").strip_suffix('\n').unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - success).abs() < 60, "{success}");
    assert_eq!(marker(&t.storage(), ".last_backup_size_mb"), format!("{}\n", size.div_ceil(1024 * 1024)));
    let before = (marker(&t.storage(), ".last_backup_success"), marker(&t.storage(), ".last_backup_size_mb"));

    let err = t.failed_backup();
    assert!(err.contains("cannot connect"), "{err}");
    let (status, step, error): (String, String, String) = t
        .history()
        .query_row("SELECT status, failed_step, error FROM runs ORDER BY id DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((status.as_str(), step.as_str()), ("failed", "connect"));
    assert!(error.contains("cannot connect to PostgreSQL at 127.0.0.1:1"), "{error}");
    let after = (marker(&t.storage(), ".last_backup_success"), marker(&t.storage(), ".last_backup_size_mb"));
    assert_eq!(before, after, "a failed run leaves the markers alone");
}

// covers: FR-6.1, FR-6.2, FR-6.3, FR-6.5, FR-6.6, FR-6.7, US-12/AC-1, US-12/AC-3, US-12/AC-4
#[test]
fn prune_deletes_what_retention_decides_and_a_dry_run_only_shows_it() {
    let t = Tiny::new("prune", "min_size_mb = 0");
    let o = t.cmd(&["prune"]);
    assert_exit(&o, 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("does not exist"));
    assert!(!t.storage().exists(), "prune creates no storage directory");
    let real = Path::new(t.backup()["archive"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
    let storage = t.storage();
    let old: Vec<String> = [31, 35, 40].iter().map(|d| plant(&storage, &real, *d)).collect();
    let recent: Vec<String> = [5, 10].iter().map(|d| plant(&storage, &real, *d)).collect();
    let partial = storage.join(format!("{}.partial", name_days_ago(1)));
    std::fs::write(&partial, b"left by a crashed run").unwrap();
    let everything = t.archives();

    let o = t.cmd(&["--json", "prune", "--dry-run"]);
    assert_exit(&o, 0);
    let dry = json(&o);
    assert_eq!(dry["dry_run"], true);
    let action = |v: &Value, name: &str| -> (String, String) {
        let d = v["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {v}"));
        (d["action"].as_str().unwrap().to_string(), d["reason"].as_str().unwrap().to_string())
    };
    for n in &old {
        let (a, why) = action(&dry, n);
        assert_eq!(a, "delete", "{n}: {why}");
        assert!(why.contains("older than retention_days = 30"), "{why}");
    }
    assert_eq!(action(&dry, &real).0, "keep");
    for n in &recent {
        assert_eq!(action(&dry, n).0, "keep");
    }
    assert_eq!(t.archives(), everything, "a dry run deletes nothing");
    assert!(partial.exists(), "a dry run removes nothing");
    let text = t.cmd(&["prune", "--dry-run"]);
    assert_exit(&text, 0);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(
        out.contains("would delete") && out.contains("3 would delete, 3 kept (dry run: nothing was changed)"),
        "{out}"
    );

    let o = t.cmd(&["--json", "prune"]);
    assert_exit(&o, 0);
    assert_eq!(json(&o)["decisions"], dry["decisions"], "the same decision");
    let mut left = [vec![real.clone()], recent].concat();
    left.sort();
    assert_eq!(t.archives(), left);
    assert!(!partial.exists(), "stale .partial files are removed");

    // The latest run failed: nothing is deleted, and prune says why.
    let older = plant(&storage, &real, 45);
    t.failed_backup();
    let o = t.cmd(&["prune"]);
    assert_exit(&o, 0);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("nothing deleted: the latest run failed") && out.contains("cannot connect"), "{out}");
    assert!(storage.join(&older).exists());
}

// covers: FR-6.2, FR-6.6, FR-6.7, US-12/AC-2
#[test]
fn prune_keeps_the_newest_good_archives_and_does_not_count_a_corrupted_one() {
    let t = Tiny::new("prune_bad", "min_size_mb = 0");
    let real = Path::new(t.backup()["archive"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
    let storage = t.storage();
    // Every archive is old; the newest one is damaged on disk.
    let names: Vec<String> = [40, 41, 42, 43, 44].iter().map(|d| plant(&storage, &real, *d)).collect();
    std::fs::remove_file(storage.join(&real)).unwrap();
    let bytes = std::fs::read(storage.join(&names[0])).unwrap();
    std::fs::write(storage.join(&names[0]), &bytes[..bytes.len() / 2]).unwrap();

    let o = t.cmd(&["--json", "prune"]);
    assert_exit(&o, 0);
    let mut expected = names[1..4].to_vec();
    expected.sort();
    assert_eq!(t.archives(), expected, "{}", String::from_utf8_lossy(&o.stdout));
    let v = json(&o);
    let damaged = v["decisions"].as_array().unwrap().iter().find(|d| d["name"] == names[0].as_str()).unwrap();
    assert!(damaged["reason"].as_str().unwrap().contains("damaged"), "{damaged}");
}

// covers: FR-4.1, FR-4.2, FR-4.8, US-5/AC-4
#[test]
fn check_is_healthy_after_a_fresh_success_and_names_each_problem() {
    let t = Tiny::new("check", "min_size_mb = 0");
    let o = t.cmd(&["check"]);
    assert_exit(&o, 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no successful backup yet"));

    t.backup();
    let o = t.cmd(&["check"]);
    assert_exit(&o, 0);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("healthy: last successful backup"));
    let o = t.cmd(&["--json", "check"]);
    assert_exit(&o, 0);
    let v = json(&o);
    assert_eq!(v["healthy"], true);
    assert!(v["last_size_bytes"].as_u64().unwrap() > 0);

    // 26 hours ago: simulated by rewriting the marker file.
    let old = chrono::Utc::now().timestamp() - 26 * 3600;
    std::fs::write(t.storage().join(".last_backup_success"), format!("{old}\n")).unwrap();
    let o = t.cmd(&["check"]);
    assert_exit(&o, 1);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("26 hours old") && out.contains("max_age_hours = 25"), "{out}");
    assert_eq!(out.lines().count(), 1, "one line per problem: {out}");

    t.backup();
    t.failed_backup();
    let o = t.cmd(&["--json", "check"]);
    assert_exit(&o, 1);
    let v = json(&o);
    let reasons: Vec<&str> = v["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("failed at connect") && reasons[0].contains("cannot connect"), "{reasons:?}");
}

// covers: FR-4.1, FR-4.2, FR-4.8, US-5/AC-4
#[test]
fn check_flags_an_archive_outside_the_size_band_without_touching_the_database() {
    // The default band is 1-100 MB: the tiny archive is below it.
    let t = Tiny::new("check_size", "");
    t.backup();
    let o = t.cmd(&["check"]);
    assert_exit(&o, 1);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("below min_size_mb = 1"), "{out}");

    // The database is unreachable (a bogus URL): check still answers from the files.
    let bogus = std::fs::read_to_string(&t.config).unwrap().replace(&t.db.url, "postgres://nobody@127.0.0.1:1/gone")
        + "min_size_mb = 0\n";
    std::fs::write(&t.config, bogus).unwrap();
    let started = std::time::Instant::now();
    let o = t.cmd(&["check"]);
    assert_exit(&o, 0);
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "no connection attempt");
    let limits =
        std::fs::read_to_string(&t.config).unwrap().replace("min_size_mb = 0", "min_size_mb = 0\nmax_size_mb = 0");
    std::fs::write(&t.config, limits).unwrap();
    let o = t.cmd(&["check"]);
    assert_exit(&o, 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("above max_size_mb = 0"));
}

// covers: US-5/AC-5, FR-17.5
#[test]
fn list_shows_archives_with_age_size_and_what_the_history_knows() {
    let t = Tiny::new("list", "min_size_mb = 0");
    let report = t.backup();
    let real = Path::new(report["archive"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
    let planted = plant(&t.storage(), &real, 3);
    let o = t.cmd(&["--json", "list"]);
    assert_exit(&o, 0);
    let v = json(&o);
    let a = v["archives"].as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["name"], real.as_str(), "newest first");
    assert_eq!(a[0]["verified"], true);
    assert_eq!(a[0]["size_bytes"], report["size_bytes"]);
    assert!(a[0]["age_seconds"].as_i64().unwrap() < 120);
    assert_eq!(a[1]["name"], planted.as_str());
    assert_eq!(a[1]["verified"], Value::Null, "not in the history");
    assert!((a[1]["age_seconds"].as_i64().unwrap() - 3 * 86400).abs() < 120);
    let o = t.cmd(&["list"]);
    assert_exit(&o, 0);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains(&real) && out.contains(" yes ") && out.contains(" 3d ") && out.contains("unknown"), "{out}");
}

// covers: FR-6.1, FR-6.7, US-12/AC-1
#[test]
fn a_successful_backup_applies_retention_and_a_failed_one_does_not() {
    let t = Tiny::new("autoprune", "min_size_mb = 0");
    let real = Path::new(t.backup()["archive"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
    let storage = t.storage();
    let recent: Vec<String> = [1, 2].iter().map(|d| plant(&storage, &real, *d)).collect();
    let old = plant(&storage, &real, 31);
    t.failed_backup();
    assert!(storage.join(&old).exists(), "no retention after a failed run");
    let o = t.cmd(&["backup"]);
    assert_exit(&o, 0);
    assert!(stderr(&o).contains(&format!("retention deleted {old}")), "{}", stderr(&o));
    assert!(!storage.join(&old).exists());
    assert_eq!(t.archives().len(), 4, "the new archive, the first and the two recent ones: {:?}", t.archives());
    assert!(recent.iter().all(|n| storage.join(n).exists()));
}

/// Every command that changes or reports on the store appends to `[log]
/// file` in the daemon's format, and each deletion by retention is one line
/// there naming the archive and the rule, and a `retention` step of the run.
// covers: FR-6.8, FR-25.5, FR-25.1
#[test]
fn commands_on_the_store_and_every_retention_deletion_are_in_the_log_file_and_the_history() {
    let t = Tiny::new("logfile", "min_size_mb = 0");
    let log_path = t.dir.path().join("logs/backup.log");
    let mut text = std::fs::read_to_string(&t.config).unwrap();
    text.push_str(&format!("[log]\nfile = {}\n", support::toml_string(&log_path.to_string_lossy())));
    std::fs::write(&t.config, text).unwrap();

    let real = Path::new(t.backup()["archive"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
    // keep_last = 3: the two recent ones and the first real one stay.
    for d in [1, 2] {
        plant(&t.storage(), &real, d);
    }
    let old = plant(&t.storage(), &real, 31);
    let failed = t.failed_backup();
    let o = t.cmd(&["backup"]);
    assert_exit(&o, 0);
    assert!(!stderr(&o).contains(" INFO "), "the run's lines go to the file, not twice to stderr:\n{}", stderr(&o));
    assert!(!t.storage().join(&old).exists());
    assert_exit(&t.cmd(&["prune"]), 0);
    let send = t.cmd(&["send"]);
    let restore = t.cmd(&[
        "restore",
        "/nonexistent/critical_backup_20260101_020000.tar.gz",
        "--db",
        "postgres://x@127.0.0.1:1/y",
    ]);
    assert_ne!(restore.status.code(), Some(0));

    let log = std::fs::read_to_string(&log_path).unwrap();
    for line in log.lines() {
        let stamp = line.split_whitespace().next().unwrap_or("");
        assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "no RFC 3339 timestamp: {line}");
    }
    assert_eq!(log.matches("lifeboat backup starts").count(), 3, "{log}");
    assert_eq!(log.matches("lifeboat backup finished, exit 0").count(), 2, "{log}");
    let failure =
        log.lines().find(|l| l.contains("lifeboat backup failed (exit 2)")).unwrap_or_else(|| panic!("{log}"));
    assert!(
        failure.contains(" ERROR ") && failed.contains("cannot connect") && failure.contains("cannot connect"),
        "{failure}"
    );
    let deleted: Vec<&str> = log.lines().filter(|l| l.contains("retention deleted")).collect();
    assert_eq!(deleted.len(), 1, "{log}");
    assert!(
        deleted[0].contains(&format!("retention deleted {old} from the storage directory: "))
            && deleted[0].contains("older than retention_days = 30"),
        "{}",
        deleted[0]
    );
    assert!(log.contains("step step=\"verify\""), "the run's steps: {log}");
    assert!(log.contains("lifeboat prune starts") && log.contains("lifeboat prune finished, exit 0"), "{log}");
    assert!(log.contains(&format!("lifeboat send failed (exit {})", send.status.code().unwrap())), "{log}");
    assert!(log.contains("mail is not configured"), "the cause is in the file: {log}");
    assert!(log.contains("lifeboat restore failed"), "{log}");

    let detail: String =
        t.history().query_row("SELECT detail FROM run_steps WHERE step = 'retention'", [], |r| r.get(0)).unwrap();
    assert!(detail.contains(&format!("deleted {old} (local): ")) && detail.contains("retention_days = 30"), "{detail}");
}
