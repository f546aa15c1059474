//! `lifeboat daemon` as a real process against a real database: catch-up
//! on start, the log file, `check` afterwards, SIGTERM (exit 0) when idle
//! and mid-backup (aborted, nothing half-written kept), a manual backup
//! refused while the daemon's run holds the lock, and `kill -9` recovered
//! by the next start. The scheduler's timing itself (fire times, retries,
//! no double run) is tested on a paused tokio clock in `src/daemon`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{assert_exit, json, run, stderr};
use crate::support::{big_db, proxied};

use crate::support::{self, TestDb, Trigger};

/// A config for `url` in `dir`: a schedule that is due long ago (so the
/// start catches up) and not again for months, an ephemeral HTTP port and
/// a log file in `dir/logs`.
fn config(dir: &Path, url: &str, extra: &str) -> PathBuf {
    support::TestConfig::new(url, dir.join("b"))
        .database("connect_timeout = \"3s\"")
        .database("stall_timeout = \"10 minutes\"")
        .section("[monitor]\nmin_size_mb = 0\n[http]\nlisten = \"127.0.0.1:0\"")
        .section(format!("[log]\nfile = {}", support::toml_string(&dir.join("logs/backup.log").to_string_lossy())))
        .section(format!(
            "[schedule]\ncron = \"0 0 1 1 *\"\ntimezone = \"Asia/Bangkok\"\nshutdown_grace = \"1s\"\n{extra}"
        ))
        .write(dir)
}

/// A started daemon, killed and reaped when dropped: a failed assertion
/// must not leave it running.
struct Daemon(Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn start(config: &Path, stderr_to: &Path) -> Daemon {
    start_with(config, stderr_to, &[])
}

/// [`start`] with extra environment variables.
fn start_with(config: &Path, stderr_to: &Path, env: &[(&str, &str)]) -> Daemon {
    let err = std::fs::File::create(stderr_to).unwrap();
    Daemon(
        support::lifeboat()
            .args(["--config", config.to_str().unwrap(), "daemon"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("cannot start lifeboat daemon"),
    )
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, sig: &str) {
    let o = Command::new("kill").args([sig, &child.id().to_string()]).output().unwrap();
    assert!(o.status.success());
}

/// Waits (bounded) for the daemon to exit and returns its code.
fn exit_code(mut daemon: Daemon, limit: Duration) -> Option<i32> {
    let child = &mut daemon.0;
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the daemon did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn archives(dir: &Path) -> Vec<String> {
    files(dir).into_iter().filter(|n| n.starts_with("critical_backup_") && n.ends_with(".tar.gz")).collect()
}

fn runs(storage: &Path) -> Vec<(String, String)> {
    let Ok(c) = rusqlite::Connection::open(storage.join(".lifeboat/history.db")) else { return Vec::new() };
    let Ok(mut st) = c.prepare("SELECT trigger, status FROM runs ORDER BY id") else { return Vec::new() };
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().flatten().collect()
}

fn tiny_db(hint: &str) -> TestDb {
    let db = support::fresh_db(hint);
    db.exec("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 5) g");
    db
}

// covers: FR-1.1, FR-1.4, FR-23.1, FR-23.2, FR-25.1, FR-25.2, FR-20.1, NFR-4.2, US-1/AC-1
#[test]
fn the_daemon_catches_up_at_start_mails_the_archive_logs_with_timestamps_and_stops_on_sigterm_with_exit_0() {
    use crate::support::smtp::{self, Mode, TlsServer};
    if !smtp::require("python3 with aiosmtpd", smtp::aiosmtpd_available()) {
        return;
    }
    let db = tiny_db("daemon_catch_up");
    let dir = tempfile::tempdir().unwrap();
    let password = "Smtp-Daemon-Secret-4k";
    let TlsServer { ca, server } = TlsServer::start(Mode::StartTls, crate::support::smtp::USER, password);
    let email =
        crate::support::smtp::email_section(server.port, Mode::StartTls, Some(&ca.ca_file), password, dir.path(), "");
    let cfg = config(dir.path(), &db.url, &email);
    let storage = dir.path().join("b");
    let daemon = start(&cfg, &dir.path().join("stderr"));
    wait_for("the catch-up backup", Duration::from_secs(60), || runs(&storage).iter().any(|(_, s)| s != "running"));
    assert_eq!(runs(&storage), [("catch-up".to_string(), "success".to_string())]);
    assert_eq!(archives(&storage).len(), 1, "one catch-up run, however many slots were missed");
    let check = run(&["--config", cfg.to_str().unwrap(), "check"]);
    assert_exit(&check, 0);
    // The verified archive is mailed to every administrator, attached.
    let mails = server.wait_for(1, Duration::from_secs(30));
    assert_eq!(mails.len(), 1);
    let mut rcpt = mails[0].rcpt.clone();
    rcpt.sort();
    assert_eq!(rcpt, crate::support::smtp::ADMINS);
    let parsed = mail_parser::MessageParser::default().parse(&mails[0].raw).unwrap();
    let attached = parsed.attachments().next().expect("the archive is attached");
    let archive = std::fs::read(storage.join(&archives(&storage)[0])).unwrap();
    assert_eq!(attached.contents(), &archive[..], "the attachment is the archive");

    signal(&daemon, "-TERM");
    assert_eq!(exit_code(daemon, Duration::from_secs(20)), Some(0));
    let log = std::fs::read_to_string(dir.path().join("logs/backup.log")).unwrap();
    assert!(log.contains("backup run succeeded") && log.contains("step"), "{log}");
    for line in log.lines() {
        let stamp = line.split_whitespace().next().unwrap_or("");
        assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "no RFC 3339 timestamp: {line}");
    }
    assert!(!log.contains(&db.url), "no connection string in the log");
    assert!(!log.contains(password), "no SMTP password in the log");
}

// covers: FR-1.5, FR-23.2, FR-23.3, FR-20.3, FR-12.7, FR-4.5
#[test]
fn sigterm_mid_backup_aborts_cleanly_and_kill_9_is_recovered_by_the_next_start() {
    let started = crate::support::drill::start(
        "daemon::sigterm_mid_backup_aborts_cleanly_and_kill_9_is_recovered_by_the_next_start",
    );
    let db = big_db("daemon_abort");
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("b");
    let copy_of_big = || Trigger { then_bytes: 256 * 1024, ..Trigger::on("FROM ONLY \"public\".\"big\"") };

    // 1. SIGTERM while the catch-up run is stuck in a COPY: 1 s of grace, then aborted.
    let (proxy, url) = proxied(&db);
    let sink = crate::support::http_sink::HttpSink::start();
    let cfg = config(dir.path(), &url, &format!("[alerts]\nwebhook_url = \"{}/hook\"\n", sink.url));
    proxy.freeze_on(copy_of_big());
    let daemon = start(&cfg, &dir.path().join("stderr1"));
    assert!(proxy.wait_triggered(Duration::from_secs(60)), "the COPY never started");
    wait_for("the .partial", Duration::from_secs(10), || files(&storage).iter().any(|n| n.ends_with(".partial")));
    // A manual backup meanwhile: the daemon's run holds the directory.
    let manual = run(&["--config", cfg.to_str().unwrap(), "backup", "--database-url", &db.url]);
    assert_exit(&manual, 2);
    assert!(stderr(&manual).contains("another lifeboat run holds"), "{}", stderr(&manual));
    let termed = std::time::Instant::now();
    signal(&daemon, "-TERM");
    let code = exit_code(daemon, Duration::from_secs(40));
    let term_took = termed.elapsed().as_secs_f64();
    let err1 = std::fs::read_to_string(dir.path().join("stderr1")).unwrap();
    assert_eq!(code, Some(0), "{err1}");
    assert!(archives(&storage).is_empty(), "no archive from the aborted run: {:?}", files(&storage));
    assert!(!files(&storage).iter().any(|n| n.ends_with(".partial")), "{:?}", files(&storage));
    let history = runs(&storage);
    assert!(history.contains(&("catch-up".into(), "aborted".into())), "{history:?}");
    // Neither the refused manual run nor the run stopped on purpose alerts (FR-4.2).
    let hooks: Vec<String> = sink.seen().into_iter().map(|h| h.body).collect();
    assert!(hooks.is_empty(), "{hooks:?}");
    drop(proxy);

    // 2. kill -9 mid-backup: the .partial and a `running` row stay behind.
    let (proxy, url) = proxied(&db);
    let cfg = config(dir.path(), &url, "");
    proxy.freeze_on(copy_of_big());
    let daemon = start(&cfg, &dir.path().join("stderr2"));
    assert!(proxy.wait_triggered(Duration::from_secs(60)), "the COPY never started");
    wait_for("the .partial", Duration::from_secs(10), || files(&storage).iter().any(|n| n.ends_with(".partial")));
    signal(&daemon, "-KILL");
    let _ = exit_code(daemon, Duration::from_secs(10));
    assert!(runs(&storage).iter().any(|(_, s)| s == "running"), "{:?}", runs(&storage));
    drop(proxy);

    // 3. The next start cleans up, records the dead run as interrupted and catches up.
    let cfg = config(dir.path(), &db.url, "");
    let restarted = std::time::Instant::now();
    let daemon = start(&cfg, &dir.path().join("stderr3"));
    wait_for("the catch-up after kill -9", Duration::from_secs(90), || archives(&storage).len() == 1);
    let catch_up_took = restarted.elapsed().as_secs_f64();
    signal(&daemon, "-TERM");
    assert_eq!(exit_code(daemon, Duration::from_secs(30)), Some(0));
    let history = runs(&storage);
    assert!(history.contains(&("manual".into(), "skipped".into())), "the refused manual run: {history:?}");
    let daemon_runs: Vec<String> = history.into_iter().filter(|(t, _)| t != "manual").map(|(_, s)| s).collect();
    assert_eq!(daemon_runs, ["aborted", "interrupted", "success"], "every run recorded, none claimed good");
    assert!(!files(&storage).iter().any(|n| n.ends_with(".partial")), "{:?}", files(&storage));
    assert_exit(&run(&["--config", cfg.to_str().unwrap(), "check"]), 0);
    crate::support::drill::record(
        "daemon::sigterm_mid_backup_aborts_cleanly_and_kill_9_is_recovered_by_the_next_start",
        started,
        &format!(
            "SIGTERM: exit 0 {term_took:.1} s after the signal (shutdown_grace 1 s), run `aborted`, 0 files left, \
             no webhook alert for the manual run refused meanwhile nor for the aborted run; SIGKILL: `.partial` and \
             a `running` row left; next start: catch-up archive after {catch_up_took:.1} s, no `.partial`, runs \
             {}, `check` exit 0",
            daemon_runs.join(" → ")
        ),
    );
}

/// `(attempt, status, started_at)` of every recorded run, in order.
fn attempts(storage: &Path) -> Vec<(i64, String, String)> {
    let Ok(c) = rusqlite::Connection::open(storage.join(".lifeboat/history.db")) else { return Vec::new() };
    let Ok(mut st) = c.prepare("SELECT attempt, status, started_at FROM runs ORDER BY id") else { return Vec::new() };
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().flatten().collect()
}

// covers: TS-5.1, FR-1.7, NFR-2.4, FR-4.5, FR-4.3, FR-25.4
#[test]
fn postgres_down_before_the_run_is_tried_three_times_with_back_off_then_alerted_once() {
    let started = crate::support::drill::start(
        "daemon::postgres_down_before_the_run_is_tried_three_times_with_back_off_then_alerted_once",
    );
    // Nothing listens on this port: the server is "stopped" (connection refused).
    let port = crate::support::smtp::free_port();
    let url = format!("postgres://lifeboat:Pg-Drill-Secret-7q@127.0.0.1:{port}/app");
    let sink = crate::support::http_sink::HttpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "retries = 2\nretry_backoff = \"1s\"\n[alerts]\nwebhook_url = \"{0}/hook/Hook-Token-9z\"\n\
         ping_url = \"{0}/ping/Ping-Token-4k\"\n",
        sink.url
    );
    let cfg = config(dir.path(), &url, &extra);
    // The monitor looks every second, so it looks between the attempts: it
    // must leave the alert to the last one.
    let text = std::fs::read_to_string(&cfg).unwrap().replacen("[monitor]\n", "[monitor]\ninterval = \"1s\"\n", 1);
    std::fs::write(&cfg, text).unwrap();
    let storage = dir.path().join("b");
    // The storage directory exists, so the attempts are recorded.
    std::fs::create_dir_all(&storage).unwrap();
    // At trace level, where the HTTP client would print whole URLs.
    let daemon = start_with(&cfg, &dir.path().join("stderr"), &[("LIFEBOAT_LOG", "trace")]);
    let alerts = sink.wait_for(1, Duration::from_secs(60));
    wait_for("three recorded attempts", Duration::from_secs(30), || {
        attempts(&storage).iter().filter(|(_, s, _)| s != "running").count() == 3
    });
    // Nothing more is tried until the next slot (months away).
    std::thread::sleep(Duration::from_millis(1500));
    signal(&daemon, "-TERM");
    assert_eq!(exit_code(daemon, Duration::from_secs(20)), Some(0));

    let runs = attempts(&storage);
    assert_eq!(
        runs.iter().map(|r| (r.0, r.1.as_str())).collect::<Vec<_>>(),
        [(1, "failed"), (2, "failed"), (3, "failed")]
    );
    let at = |i: usize| chrono::DateTime::parse_from_rfc3339(&runs[i].2).unwrap();
    assert!((at(1) - at(0)).num_milliseconds() >= 1000, "1 s back-off before the 2nd attempt: {runs:?}");
    assert!((at(2) - at(1)).num_milliseconds() >= 1000, "1 s again before the 3rd: {runs:?}");
    assert!(archives(&storage).is_empty(), "no archive");
    assert!(!files(&storage).iter().any(|f| f.ends_with(".partial")));

    // One alert, after the last attempt, with the reason; no secret in it.
    let hooks: Vec<_> = sink.seen().into_iter().filter(|s| s.path.starts_with("/hook/")).collect();
    assert_eq!(hooks.len(), 1, "only the last attempt alerts: {alerts:?}");
    let a: serde_json::Value = serde_json::from_str(&hooks[0].body).unwrap();
    assert_eq!(a["kind"], "backup_failed");
    assert_eq!(a["step"], "connect");
    let message = a["message"].as_str().unwrap();
    assert!(message.contains("cannot connect to PostgreSQL") && message.contains("Connection refused"), "{message}");
    let log = std::fs::read_to_string(dir.path().join("logs/backup.log")).unwrap()
        + &std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    for secret in ["Pg-Drill-Secret-7q", "Hook-Token-9z", "Ping-Token-4k"] {
        assert!(!hooks[0].body.contains(secret) && !log.contains(secret), "{secret} leaked");
    }
    crate::support::drill::record(
        "daemon::postgres_down_before_the_run_is_tried_three_times_with_back_off_then_alerted_once",
        started,
        &format!(
            "3 attempts, all `failed`, {:.1} s then {:.1} s apart; 1 webhook alert kind=backup_failed step=connect: \
             `{}`; 0 archives, 0 `.partial`; no secret in the alert or the log ({} KiB)",
            (at(1) - at(0)).num_milliseconds() as f64 / 1000.0,
            (at(2) - at(1)).num_milliseconds() as f64 / 1000.0,
            message.lines().next().unwrap_or("").chars().take(160).collect::<String>(),
            log.len().div_ceil(1024)
        ),
    );
}

// covers: FR-17.1, FR-17.3, FR-25.2
#[test]
fn the_daemon_serves_metrics_on_metrics_listen_alone_and_logs_json_lines() {
    let db = tiny_db("daemon_metrics");
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::smtp::free_port();
    let cfg = config(dir.path(), &db.url, "");
    // [http] is already in the file: add the key there.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replacen("[http]\n", &format!("[http]\nmetrics_listen = \"127.0.0.1:{port}\"\n"), 1)
        .replacen("[log]\n", "[log]\nformat = \"json\"\n", 1);
    std::fs::write(&cfg, text).unwrap();
    let storage = dir.path().join("b");
    let daemon = start(&cfg, &dir.path().join("stderr"));
    wait_for("the catch-up backup", Duration::from_secs(60), || runs(&storage).iter().any(|(_, s)| s != "running"));
    let body =
        ureq::get(&format!("http://127.0.0.1:{port}/metrics")).call().unwrap().into_body().read_to_string().unwrap();
    assert!(body.contains("lifeboat_runs_total{status=\"success\"} 1"), "{body}");
    assert!(body.contains("lifeboat_last_success_timestamp_seconds"), "{body}");
    let page = ureq::get(&format!("http://127.0.0.1:{port}/")).call();
    assert!(matches!(page, Err(ureq::Error::StatusCode(404))), "the metrics listener serves /metrics only");
    signal(&daemon, "-TERM");
    assert_eq!(exit_code(daemon, Duration::from_secs(20)), Some(0));
    // format = "json": one object per line, each with an RFC 3339 timestamp and a level.
    let log = std::fs::read_to_string(dir.path().join("logs/backup.log")).unwrap();
    assert!(log.lines().count() >= 3, "{log}");
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let stamp = v["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {line}"));
        assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "not RFC 3339: {line}");
        assert!(v["level"].is_string(), "no level: {line}");
    }
    assert!(log.contains("backup run succeeded"), "{log}");
}

/// `lifeboat daemon` with its open-files limit (soft and hard) set to `nofile` by util-linux `prlimit`,
/// which execs it: the pid is the daemon's.
fn start_with_nofile(config: &Path, stderr_to: &Path, nofile: u32) -> Daemon {
    let lifeboat = support::lifeboat();
    let mut cmd = Command::new("prlimit");
    for (k, v) in lifeboat.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let err = std::fs::File::create(stderr_to).unwrap();
    cmd.arg(format!("--nofile={nofile}:{nofile}"))
        .arg("--")
        .arg(lifeboat.get_program())
        .args(["--config", config.to_str().unwrap(), "daemon"])
        .stdout(Stdio::null())
        .stderr(err);
    Daemon(cmd.spawn().expect("cannot start prlimit … lifeboat daemon"))
}

/// Holds `n` connections to `addr` that never finish a request (half of them
/// send nothing, half a partial head), opening a new one for each the server
/// closes, until dropped; counts the closes.
struct HalfOpen {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    closed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HalfOpen {
    fn hold(addr: std::net::SocketAddr, n: usize) -> HalfOpen {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let (stop, closed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (s, c) = (stop.clone(), closed.clone());
        let thread = std::thread::spawn(move || {
            let open = |i: usize| {
                let mut t = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
                if i % 2 == 1 {
                    let _ = t.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
                }
                t.set_nonblocking(true).ok()?;
                Some(t)
            };
            let mut held: Vec<Option<std::net::TcpStream>> = (0..n).map(open).collect();
            while !s.load(Ordering::SeqCst) {
                for (i, slot) in held.iter_mut().enumerate() {
                    let gone = match slot {
                        Some(t) => match t.read(&mut [0u8; 512]) {
                            Ok(_) => true,
                            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                        },
                        None => true,
                    };
                    if gone {
                        if slot.is_some() {
                            c.fetch_add(1, Ordering::SeqCst);
                        }
                        *slot = open(i);
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        HalfOpen { stop, closed, thread: Some(thread) }
    }

    fn closed(&self) -> usize {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for HalfOpen {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.thread.take().map(|t| t.join());
    }
}

/// One plain HTTP/1.1 GET with a bound on the whole exchange: (status, body).
fn get_within(addr: std::net::SocketAddr, path: &str, limit: Duration) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut t = std::net::TcpStream::connect_timeout(&addr, limit)?;
    t.set_read_timeout(Some(limit))?;
    t.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut answer = String::new();
    t.read_to_string(&mut answer)?;
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, answer.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string())))
}

// covers: FR-17.6, NFR-3, SC-10.1
#[test]
fn half_open_connections_under_a_low_open_files_limit_are_timed_out_and_never_starve_the_scheduled_run() {
    let started = crate::support::drill::start(
        "daemon::half_open_connections_under_a_low_open_files_limit_are_timed_out_and_never_starve_the_scheduled_run",
    );
    const NOFILE: u32 = 256;
    const HALF_OPEN: usize = 300;
    let db = tiny_db("daemon_half_open");
    let dir = tempfile::tempdir().unwrap();
    let sink = crate::support::http_sink::HttpSink::start();
    let port = crate::support::smtp::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg =
        config(dir.path(), &db.url, &format!("catch_up = false\n[alerts]\nwebhook_url = \"{}/hook\"\n", sink.url));
    // Every minute, no catch-up: the run comes while the connections are held.
    let text =
        std::fs::read_to_string(&cfg).unwrap().replacen("cron = \"0 0 1 1 *\"", "cron = \"* * * * *\"", 1).replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\"\nheader_read_timeout = \"2s\"\nidle_timeout = \"5s\""),
            1,
        );
    std::fs::write(&cfg, text).unwrap();
    let storage = dir.path().join("b");
    let stderr_path = dir.path().join("stderr");
    let daemon = start_with_nofile(&cfg, &stderr_path, NOFILE);
    wait_for("the listener", Duration::from_secs(30), || std::net::TcpStream::connect(addr).is_ok());

    // A connection that sends nothing is closed after the header-read timeout.
    let mut probe = std::net::TcpStream::connect(addr).unwrap();
    let flood = HalfOpen::hold(addr, HALF_OPEN);
    probe.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let opened = Instant::now();
    let eof = std::io::Read::read(&mut probe, &mut [0u8; 64]);
    let probe_closed_after = opened.elapsed();
    assert!(
        matches!(eof, Ok(0)),
        "a silent connection is not closed by the server: {eof:?} after {probe_closed_after:?}"
    );

    // The next minute's run succeeds with the flood still on.
    wait_for("the scheduled run under the flood", Duration::from_secs(150), || {
        runs(&storage).iter().any(|(t, s)| t == "schedule" && s != "running")
    });
    let history = runs(&storage);
    let log = std::fs::read_to_string(dir.path().join("logs/backup.log")).unwrap_or_default()
        + &std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(history.first(), Some(&("schedule".to_string(), "success".to_string())), "{history:?}\n{log}");
    assert_eq!(archives(&storage).len(), 1, "{:?}", files(&storage));
    // /healthz still answers (after the connections queued before it).
    let t = Instant::now();
    let (status, body) = get_within(addr, "/healthz", Duration::from_secs(60)).unwrap_or_else(|e| {
        let ss = Command::new("ss").args(["-tanH", &format!("( sport = :{port} or dport = :{port} )")]).output();
        let ss = ss.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let mut states = std::collections::BTreeMap::<String, usize>::new();
        for l in ss.lines() {
            *states.entry(l.split_whitespace().next().unwrap_or("").to_string()).or_default() += 1;
        }
        let listen: Vec<&str> = ss.lines().filter(|l| l.starts_with("LISTEN")).collect();
        panic!("/healthz does not answer under the flood after {:?}: {e}; sockets {states:?} {listen:?}", t.elapsed())
    });
    let healthz_took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    let closed = flood.closed();
    assert!(closed > 0, "the server closed {closed} half-open connections");
    drop(flood);
    drop(daemon);

    let log = std::fs::read_to_string(dir.path().join("logs/backup.log")).unwrap()
        + &std::fs::read_to_string(&stderr_path).unwrap();
    assert!(!log.contains("Too many open files"), "{log}");
    let cap = log
        .split("HTTP: at most ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("the connection cap is not logged: {log}"));
    assert!(cap < NOFILE / 4, "max_connections lowered for a {NOFILE} open-files limit: {cap}");
    assert!(sink.seen().is_empty(), "nothing failed, nothing alerted: {:?}", sink.seen());
    crate::support::drill::record(
        "daemon::half_open_connections_under_a_low_open_files_limit_are_timed_out_and_never_starve_the_scheduled_run",
        started,
        &format!(
            "open-files limit {NOFILE}, {HALF_OPEN} half-open connections held (and reopened as closed): cap \
             lowered to {cap} connections; a silent connection closed after {:.1} s (header_read_timeout 2 s); \
             {closed} closed by the server in all; the scheduled run `success`; /healthz 200 after {:.1} s in \
             the queue; no \"Too many open files\", no alert",
            probe_closed_after.as_secs_f64(),
            healthz_took.as_secs_f64()
        ),
    );
}

/// Every request the sink saw that is an alert: webhooks and `/fail` pings.
fn alerts_seen(sink: &crate::support::http_sink::HttpSink) -> Vec<String> {
    sink.seen()
        .into_iter()
        .filter(|h| h.path.starts_with("/hook") || h.path.ends_with("/fail"))
        .map(|h| format!("{} {}", h.path, h.body))
        .collect()
}

// covers: FR-4.2, FR-4.3, FR-20.1, FR-20.3, FR-23.2, FR-1.4
#[test]
fn a_graceful_stop_and_a_refused_manual_run_page_nobody_and_check_looks_past_them() {
    use crate::support::smtp::{self, Mode, TlsServer};
    if !smtp::require("python3 with aiosmtpd", smtp::aiosmtpd_available()) {
        return;
    }
    let db = big_db("daemon_no_page");
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("b");
    let password = "Smtp-NoPage-Secret-3v";
    let TlsServer { ca, server } = TlsServer::start(Mode::StartTls, crate::support::smtp::USER, password);
    let sink = crate::support::http_sink::HttpSink::start();
    let channels = format!(
        "{}[alerts]\nwebhook_url = \"{1}/hook\"\nping_url = \"{1}/ping/uuid\"\n",
        crate::support::smtp::email_section(server.port, Mode::StartTls, Some(&ca.ca_file), password, dir.path(), ""),
        sink.url
    );
    // `every_minute`: the daemon's run comes at the next minute (or at
    // once, as a catch-up); `looking`: the monitor looks every second.
    let cfg_for = |url: &str, schedule: &str, every_minute: bool| {
        let cfg = config(dir.path(), url, &format!("{schedule}{channels}"));
        let mut text =
            std::fs::read_to_string(&cfg).unwrap().replacen("[monitor]\n", "[monitor]\ninterval = \"1s\"\n", 1);
        if every_minute {
            text = text.replacen("cron = \"0 0 1 1 *\"", "cron = \"* * * * *\"", 1);
        }
        std::fs::write(&cfg, &text).unwrap();
        cfg
    };
    // Every mail that is not a success mail (failure alerts, recovery notices).
    let alert_mails = || {
        server
            .messages()
            .iter()
            .filter_map(|m| mail_parser::MessageParser::default().parse(&m.raw)?.subject().map(str::to_string))
            .filter(|s| !s.contains("✅ OK:"))
            .collect::<Vec<_>>()
    };

    // 1. A good run first, by hand, without mail.
    let cfg = cfg_for(&db.url, "", false);
    assert_exit(&run(&["--config", cfg.to_str().unwrap(), "backup", "--no-deliver"]), 0);

    // 2. The daemon's scheduled run is stuck in a COPY; a manual backup is
    //    refused meanwhile (exit 2, `skipped`); SIGTERM stops the run (`aborted`).
    let (proxy, url) = proxied(&db);
    proxy.freeze_on(Trigger { then_bytes: 256 * 1024, ..Trigger::on("FROM ONLY \"public\".\"big\"") });
    let cfg = cfg_for(&url, "catch_up = false\n", true);
    let daemon = start(&cfg, &dir.path().join("stderr1"));
    assert!(proxy.wait_triggered(Duration::from_secs(90)), "the scheduled run's COPY never started");
    let manual = run(&["--config", cfg.to_str().unwrap(), "backup", "--database-url", &db.url]);
    assert_exit(&manual, 2);
    assert!(stderr(&manual).contains("another lifeboat run holds"), "{}", stderr(&manual));
    signal(&daemon, "-TERM");
    assert_eq!(exit_code(daemon, Duration::from_secs(40)), Some(0));
    drop(proxy);
    let statuses: Vec<String> = runs(&storage).into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, ["success", "aborted", "skipped"]);

    // 3. `check` right after: the last run that finished was good; `list`
    //    still shows the stopped run (it left no archive), as not a failure.
    let check = run(&["--config", cfg.to_str().unwrap(), "check"]);
    assert_exit(&check, 0);
    let list = run(&["--config", cfg.to_str().unwrap(), "list"]);
    assert_exit(&list, 0);
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(listed.contains("stopped: run 2 ") && listed.contains("not a failure"), "{listed}");

    // 4. Restart without catch-up: the monitor looks (every second) and finds nothing to page about.
    let cfg = cfg_for(&db.url, "catch_up = false\n", false);
    let daemon = start(&cfg, &dir.path().join("stderr2"));
    std::thread::sleep(Duration::from_secs(4));
    signal(&daemon, "-TERM");
    assert_eq!(exit_code(daemon, Duration::from_secs(20)), Some(0));
    let log = std::fs::read_to_string(dir.path().join("logs/backup.log")).unwrap();
    assert!(log.contains("monitor") || log.contains("next scheduled run"), "{log}");

    // 5. Restart with catch-up: the missed slot is caught up, which is the normal path.
    let cfg = cfg_for(&db.url, "", true);
    let daemon = start(&cfg, &dir.path().join("stderr3"));
    wait_for("the catch-up run", Duration::from_secs(90), || {
        runs(&storage).len() >= 4 && runs(&storage)[3].1 != "running"
    });
    std::thread::sleep(Duration::from_secs(2));
    signal(&daemon, "-TERM");
    assert_eq!(exit_code(daemon, Duration::from_secs(30)), Some(0));
    let statuses: Vec<(String, String)> = runs(&storage);
    assert_eq!(statuses[3], ("catch-up".to_string(), "success".to_string()), "{statuses:?}");
    let list = run(&["--json", "--config", cfg.to_str().unwrap(), "list"]);
    assert_eq!(json(&list)["stopped"], serde_json::json!([]), "made up by the catch-up: nothing left to show");

    assert_eq!(alert_mails(), Vec::<String>::new(), "no failure mail, no recovery notice");
    assert_eq!(server.messages().len(), 1, "the catch-up's success mail only");
    assert_eq!(alerts_seen(&sink), Vec::<String>::new(), "no webhook, no /fail ping");
    let open: i64 = rusqlite::Connection::open(storage.join(".lifeboat/history.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(open, 0, "no incident was ever opened");
}
