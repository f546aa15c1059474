//! Faults a real deployment meets: a frozen server, a link that stops
//! answering mid-run, SIGTERM, a closed stderr, pg_dump left behind, and
//! target passwords kept off the command line. Every run here is bounded:
//! a lifeboat that hangs is killed and the test fails saying so.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, fresh_db, SilentListener, TestDb, Trigger};
use crate::support::{assert_exit, big_db, pg_dumps_for, proxied, run_bounded, run_bounded_with, stderr, Bounded};

/// A config in `dir` (created) for `url` with short timeouts; storage in `dir/b`.
fn config(dir: &Path, url: &str) -> PathBuf {
    config_stalling_after(dir, url, "5s")
}

fn config_stalling_after(dir: &Path, url: &str, stall_timeout: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    support::TestConfig::new(url, dir.join("b"))
        .database("connect_timeout = \"3s\"")
        .database(format!("stall_timeout = \"{stall_timeout}\""))
        .write(dir)
}

fn backup_cmd(config: &Path) -> Command {
    let mut c = support::lifeboat();
    c.args(["--config", config.to_str().unwrap(), "backup"]);
    c
}

/// After a failed run: nothing left in the storage directory, no pg_dump
/// alive, and the next run into the same directory starts (and succeeds
/// against the real server) without finding anything to clean up.
fn assert_clean_after(run: &Bounded, db: &TestDb, dir: &Path) {
    let storage = dir.join("b");
    assert_eq!(support::stored_in(&storage), Vec::<String>::new(), "files left in {}", storage.display());
    assert_eq!(pg_dumps_for(&db.name, run.pid), Vec::<String>::new(), "pg_dump outlived the run");
    let direct = config(&dir.join("next"), &db.url);
    let next = support::lifeboat()
        .args(["--config", direct.to_str().unwrap(), "backup", "--output-dir"])
        .arg(&storage)
        .output()
        .unwrap();
    assert_exit(&next, 0);
    assert!(!stderr(&next).contains("left by an interrupted run"), "{}", stderr(&next));
}

// covers: FR-14.10, FR-14.12
#[test]
fn a_frozen_postmaster_fails_the_backup_within_the_connect_timeout() {
    let cluster = support::Cluster::start();
    support::connect(&cluster.url("postgres")).batch_execute("CREATE DATABASE app").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &cluster.url("app"));
    let frozen = cluster.freeze();
    let run = run_bounded(&mut backup_cmd(&cfg), Duration::from_secs(40));
    drop(frozen);
    run.assert_within(Duration::from_secs(12));
    eprintln!("frozen postmaster: the run ended after {:.1}s", run.took.as_secs_f64());
    assert_exit(&run.output, 2);
    let err = stderr(&run.output);
    assert!(err.contains("timed out after 3") && err.contains("did not answer"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{}/app", cluster.port())), "names the server: {err}");
}

// covers: FR-14.12, FR-7.1, FR-15.1
#[test]
fn a_listener_that_never_answers_bounds_backup_restore_and_rehearsal() {
    let silent = SilentListener::start();
    let dead = format!("postgres://postgres@127.0.0.1:{}/app", silent.port());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dead);
    let run = run_bounded(&mut backup_cmd(&cfg), Duration::from_secs(40));
    run.assert_within(Duration::from_secs(12));
    assert_exit(&run.output, 2);
    let err = stderr(&run.output);
    assert!(err.contains("timed out after 3") && err.contains("did not answer"), "{err}");
    assert!(support::stored_in(&dir.path().join("b")).is_empty());

    // A good archive, then a restore and a rehearsal aimed at the silence.
    let src = fresh_db("silent_src");
    src.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
    let good = config(&dir.path().join("good"), &src.url);
    let o = support::run(&["--config", good.to_str().unwrap(), "--json", "backup"]);
    assert_exit(&o, 0);
    let archive = support::json(&o)["archive"].as_str().unwrap().to_string();
    let target = format!("{dead}?connect_timeout=3");
    let (archive, target) = (archive.as_str(), target.as_str());
    let key = support::its_store_key(archive);
    let key = key.as_str();
    for args in [
        ["restore", archive, "--db", target, "--trusted-key", key],
        ["verify", archive, "--restore-test", target, "--trusted-key", key],
    ] {
        let run = run_bounded(support::lifeboat().args(args), Duration::from_secs(40));
        run.assert_within(Duration::from_secs(12));
        assert_exit(&run.output, 2);
        let err = stderr(&run.output);
        assert!(err.contains("timed out after 3") && err.contains("did not answer"), "{args:?}: {err}");
    }
}

/// Backs up a fresh [`big_db`] through a proxy that freezes on `trigger`,
/// with `stall_timeout = "5s"`; checks that the proxy froze and that the run
/// failed (exit 1) on the stall within 5 s + 15 s, and that it left nothing
/// behind. Returns stderr.
fn backup_stalled_by(hint: &str, trigger: Trigger) -> String {
    let db = big_db(hint);
    let (proxy, url) = proxied(&db);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &url);
    proxy.freeze_on(trigger.clone());
    let run = run_bounded(&mut backup_cmd(&cfg), Duration::from_secs(45));
    assert!(proxy.triggered(), "the proxy never froze on {trigger:?}:\n{}", stderr(&run.output));
    run.assert_within(Duration::from_secs(20));
    eprintln!("{hint}: the stalled run ended after {:.1}s", run.took.as_secs_f64());
    assert_exit(&run.output, 1);
    let err = stderr(&run.output);
    assert!(err.contains("no progress for 5"), "{err}");
    assert_clean_after(&run, &db, dir.path());
    err
}

// covers: FR-14.4, NFR-2.3
#[test]
fn a_link_frozen_during_planning_ends_the_run_within_the_stall_timeout() {
    // The catalog's column query is among the first things planning asks.
    let err = backup_stalled_by("frozen_plan", Trigger::on("pg_attribute"));
    assert!(err.contains("while reading the catalog"), "{err}");
}

// covers: FR-14.4, FR-14.13, NFR-2.3
#[test]
fn a_link_frozen_during_a_copy_ends_the_run_and_leaves_nothing_behind() {
    // Mid-stream: 256 KiB into the COPY of the big table.
    let trigger = Trigger { then_bytes: 256 * 1024, ..Trigger::on("FROM ONLY \"public\".\"big\"") };
    let err = backup_stalled_by("frozen_copy", trigger);
    assert!(err.contains("copying rows of") && err.contains("big"), "{err}");
}

// covers: FR-14.13, NFR-2.3
#[test]
fn a_failed_run_leaves_no_pg_dump_running() {
    // Only pg_dump imports the snapshot: both pg_dumps hang there, the run
    // fails on the stall of the first, and the second must not survive it.
    let err =
        backup_stalled_by("pg_dump_left", Trigger { each_connection: true, ..Trigger::on("SET TRANSACTION SNAPSHOT") });
    assert!(err.contains("pg_dump"), "{err}");
}

// covers: FR-24.6, NFR-2.3
#[test]
fn sigterm_mid_backup_removes_the_partial_kills_pg_dump_and_exits_143() {
    let db = big_db("sigterm");
    let (proxy, url) = proxied(&db);
    let dir = tempfile::tempdir().unwrap();
    // A long stall timeout: only the signal may end this run.
    let cfg = config_stalling_after(dir.path(), &url, "10 minutes");
    proxy.freeze_on(Trigger { then_bytes: 256 * 1024, ..Trigger::on("FROM ONLY \"public\".\"big\"") });
    let run = run_bounded_with(&mut backup_cmd(&cfg), Duration::from_secs(45), |pid| {
        assert!(proxy.wait_triggered(Duration::from_secs(30)), "the COPY never started");
        // The .partial exists now; the run is blocked on the frozen link.
        let kill = Command::new("kill").args(["-TERM", &pid.to_string()]).output().unwrap();
        assert!(kill.status.success());
    });
    run.assert_within(Duration::from_secs(40));
    assert_exit(&run.output, 143);
    assert!(stderr(&run.output).contains("SIGTERM"), "{}", stderr(&run.output));
    assert_clean_after(&run, &db, dir.path());
}

// covers: FR-24.7, NFR-2.5
#[test]
fn a_closed_or_broken_stderr_does_not_stop_a_backup() {
    let s = support::Seeded::new("closed_stderr");
    // stderr a pipe whose reader is gone: every write gets EPIPE. Verbose
    // progress and debug logging make sure there is plenty to write.
    let mut child = support::lifeboat()
        .args(["--config", s.config.to_str().unwrap(), "-v", "--json", "backup"])
        .env("LIFEBOAT_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "stdout: {}", String::from_utf8_lossy(&out));
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let archive = report["archive"].as_str().unwrap().to_string();
    assert_exit(&support::run(&["verify", &archive, "--trusted-key", &support::its_store_key(&archive)]), 0);

    // stderr closed outright (`2>&-`).
    let o = Command::new("sh")
        .arg("-c")
        .arg(r#""$0" --config "$1" -v --json backup 2>&-"#)
        .arg(env!("CARGO_BIN_EXE_lifeboat"))
        .arg(&s.config)
        .env_remove("LIFEBOAT_LOG")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let archive = support::json(&o)["archive"].as_str().unwrap().to_string();
    assert_exit(&support::run(&["verify", &archive, "--trusted-key", &support::its_store_key(&archive)]), 0);
}

// covers: SC-4.4, SC-4.2
#[test]
fn restore_and_rehearsal_targets_take_their_password_from_the_environment_pgpass_or_a_file() {
    let secret = "Zq9-target-secret";
    let cluster = support::Cluster::with_password_role(secret, &["t_env", "t_pgpass", "t_file", "t_none"]);
    let src = fresh_db("target_pw_src");
    src.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &src.url);
    let o = support::run(&["--config", cfg.to_str().unwrap(), "--json", "backup"]);
    assert_exit(&o, 0);
    let archive = support::json(&o)["archive"].as_str().unwrap().to_string();
    let target = |db: &str| format!("postgres://lb_pw@127.0.0.1:{}/{db}", cluster.port());

    // An empty home: a developer's own ~/.pgpass must not help.
    let home = tempfile::tempdir().unwrap();
    let pgpass_home = tempfile::tempdir().unwrap();
    let pgpass = pgpass_home.path().join(".pgpass");
    std::fs::write(&pgpass, format!("# comment\nother:1:*:*:nope\n127.0.0.1:{}:*:lb_pw:{secret}\n", cluster.port()))
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = dir.path().join("target_pw");
    std::fs::write(&file, format!("{secret}\n")).unwrap();

    let restore = |db: &str, env: &[(&str, &Path)], home: &Path| {
        let mut c = support::lifeboat();
        c.args(["-v", "restore", &archive, "--db", &target(db), "--trusted-key", &support::its_store_key(&archive)])
            .env("HOME", home)
            .env("LIFEBOAT_LOG", "trace");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let runs = [
        ("t_env", restore("t_env", &[("PGPASSWORD", Path::new(secret))], home.path())),
        ("t_pgpass", restore("t_pgpass", &[], pgpass_home.path())),
        ("t_file", restore("t_file", &[("LIFEBOAT_TARGET_PASSWORD_FILE", &file)], home.path())),
    ];
    for (db, o) in &runs {
        assert_exit(o, 0);
        let n = support::connect(&cluster.url(db)).query_one("SELECT count(*) FROM t", &[]).unwrap().get::<_, i64>(0);
        assert_eq!(n, 2, "{db}");
    }
    let none = restore("t_none", &[], home.path());
    assert_exit(&none, 2);
    assert!(
        stderr(&none).contains("LIFEBOAT_TARGET_PASSWORD_FILE"),
        "says where a password can come from: {}",
        stderr(&none)
    );

    let rehearsal = support::lifeboat()
        .args([
            "-v",
            "verify",
            &archive,
            "--restore-test",
            &target("postgres"),
            "--trusted-key",
            &support::its_store_key(&archive),
        ])
        .env("HOME", home.path())
        .env("LIFEBOAT_TARGET_PASSWORD_FILE", &file)
        .output()
        .unwrap();
    assert_exit(&rehearsal, 0);

    for o in runs.iter().map(|(_, o)| o).chain([&none, &rehearsal]) {
        let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
        assert!(!all.contains("Zq9"), "a password leaked:\n{all}");
    }
    let help = support::run(&["restore", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for source in ["PGPASSWORD", ".pgpass", "LIFEBOAT_TARGET_PASSWORD_FILE"] {
        assert!(help.contains(source), "restore --help names {source}:\n{help}");
    }
}

/// The server sessions of lifeboat (and of its pg_dump) on `db`, as
/// `pid application_name state`.
fn lifeboat_sessions(db: &TestDb) -> Vec<String> {
    let mut admin = support::connect(&support::server().admin_url());
    admin
        .query(
            "SELECT pid::text || ' ' || application_name || ' ' || coalesce(state, '?') FROM pg_stat_activity \
             WHERE datname = $1 AND application_name LIKE 'lifeboat%'",
            &[&db.name],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Waits up to `limit` for lifeboat's sessions on `db` to be gone; how long it took.
fn sessions_gone_within(db: &TestDb, limit: Duration) -> Result<Duration, Vec<String>> {
    let start = Instant::now();
    loop {
        let left = lifeboat_sessions(db);
        if left.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            return Err(left);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A migration's `ALTER TABLE` with a 3 s lock timeout, as a deploy runs it.
fn migration_succeeds(db: &TestDb) {
    support::connect(&db.url)
        .batch_execute("SET lock_timeout = '3s'; ALTER TABLE big ADD COLUMN migrated int")
        .unwrap_or_else(|e| panic!("the migration could not take its lock: {e}"));
}

// covers: FR-14.15, FR-14.4, US-11/AC-2
#[test]
fn a_link_frozen_for_good_leaves_no_session_holding_locks_on_the_server() {
    // The whole path freezes mid-COPY and stays frozen (the proxy lives on,
    // holding its sockets open, so the server's kernel sees a live peer
    // that stopped reading): only the server's own limits can end the
    // sessions, and lifeboat's fresh connection to end them freezes too.
    let db = big_db("frozen_for_good");
    let (proxy, url) = proxied(&db);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &url);
    proxy.freeze_on(Trigger { then_bytes: 256 * 1024, ..Trigger::on("FROM ONLY \"public\".\"big\"") });
    let mut frozen_at = None;
    let run = run_bounded_with(&mut backup_cmd(&cfg), Duration::from_secs(45), |_| {
        assert!(proxy.wait_triggered(Duration::from_secs(30)), "the COPY never started");
        frozen_at = Some(Instant::now());
    });
    let frozen_at = frozen_at.unwrap();
    run.assert_within(Duration::from_secs(25));
    assert_exit(&run.output, 1);
    assert!(stderr(&run.output).contains("no progress for 5"), "{}", stderr(&run.output));
    // stall_timeout (5 s) + the server's margin (5 s) + 8 s: the kernel
    // notices a zero window that outlasted tcp_user_timeout at its next
    // probe, which backs off (seen: 13 s after the freeze).
    let bound = Duration::from_secs(18);
    let gone = sessions_gone_within(&db, bound.saturating_sub(frozen_at.elapsed()));
    let gone = gone.unwrap_or_else(|left| {
        panic!("sessions left {:.1}s after the freeze: {left:?}", frozen_at.elapsed().as_secs_f64())
    });
    let _ = gone;
    eprintln!(
        "frozen for good: the run ended after {:.1}s, the server sessions were gone {:.1}s after the freeze",
        run.took.as_secs_f64(),
        frozen_at.elapsed().as_secs_f64()
    );
    migration_succeeds(&db);
    drop(proxy);
}

// covers: FR-14.15, FR-14.4
#[test]
fn an_abandoned_run_ends_its_own_sessions_over_a_fresh_connection() {
    // Only the connection that asks for the big table's rows freezes (a dead
    // NAT entry): new connections still get through, and lifeboat uses one
    // to end what its run left, long before the server's limit (10 s).
    let db = big_db("abandoned_sessions");
    let (proxy, url) = proxied(&db);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &url);
    proxy.freeze_on(Trigger { each_connection: true, ..Trigger::on("FROM ONLY \"public\".\"big\"") });
    let run = run_bounded(&mut backup_cmd(&cfg), Duration::from_secs(45));
    assert!(proxy.triggered(), "the proxy never froze:\n{}", stderr(&run.output));
    run.assert_within(Duration::from_secs(20));
    assert_exit(&run.output, 1);
    let err = stderr(&run.output);
    assert!(err.contains("no progress for 5"), "{err}");
    assert!(err.contains("server session(s) the abandoned run left on"), "{err}");
    let gone = sessions_gone_within(&db, Duration::from_secs(2));
    assert!(gone.is_ok(), "left behind after lifeboat exited: {gone:?}\n{err}");
    migration_succeeds(&db);
    drop(proxy);
}

// covers: FR-14.12, SC-4.4, SC-4.5
#[test]
fn pgconnect_timeout_bounds_source_and_target_and_url_passwords_are_warned_about_or_refused() {
    let silent = SilentListener::start();
    let src = fresh_db("pgconnect_src");
    src.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
    let dir = tempfile::tempdir().unwrap();
    let good = config(&dir.path().join("good"), &src.url);
    let o = support::run(&["--config", good.to_str().unwrap(), "--json", "backup"]);
    assert_exit(&o, 0);
    let archive = support::json(&o)["archive"].as_str().unwrap().to_string();
    let key = support::its_store_key(&archive);

    // No connect_timeout anywhere but libpq's variable: 2 s, not the default 10 s.
    let secret = "Zq9-url-pw";
    let target = format!("postgres://postgres:{secret}@127.0.0.1:{}/app", silent.port());
    let run = run_bounded(
        support::lifeboat()
            .args(["restore", &archive, "--db", &target, "--trusted-key", &key])
            .env("PGCONNECT_TIMEOUT", "2"),
        Duration::from_secs(30),
    );
    run.assert_within(Duration::from_secs(7));
    assert_exit(&run.output, 2);
    let err = stderr(&run.output);
    assert!(err.contains("timed out after 2.0s"), "{err}");
    assert!(err.contains("warning: the --db URL holds a password") && err.contains("LIFEBOAT_TARGET_PASSWORD_FILE"));
    assert!(!err.contains(secret), "{err}");

    let dead = format!("postgres://postgres@127.0.0.1:{}/app", silent.port());
    std::fs::create_dir_all(dir.path().join("silent")).unwrap();
    let source = support::write_config(
        &dir.path().join("silent"),
        &format!(
            "[database]\nurl = {}\n[storage]\ndir = {}\n",
            support::toml_string(&dead),
            support::toml_string(&dir.path().join("b").to_string_lossy())
        ),
    );
    let run = run_bounded(backup_cmd(&source).env("PGCONNECT_TIMEOUT", "2"), Duration::from_secs(30));
    run.assert_within(Duration::from_secs(7));
    assert_exit(&run.output, 2);
    assert!(stderr(&run.output).contains("timed out after 2.0s"), "{}", stderr(&run.output));

    // An unencoded @ in the password: named, and its tail never shown as the host.
    let o = support::run(&[
        "restore",
        &archive,
        "--db",
        "postgres://postgres:Zq9@tail-of-pw@127.0.0.1:1/app",
        "--trusted-key",
        &key,
    ]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("percent-encode special characters (@ # : / ?) in the URL password"), "{err}");
    assert!(!err.contains("tail-of-pw") && !err.contains("Zq9"), "{err}");
}
