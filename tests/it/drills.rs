//! Fault drills (spec TS-5): each drill injects one fault a deployment
//! meets, bounded in time, checks what must happen, and records what it
//! measured (exit codes, seconds, bytes, counts) as one row of the results
//! table in `docs/RELIABILITY.md`.
//!
//! Every drill runs with distinctive secrets (database password, SMTP
//! password, link secret, webhook URL token) and greps everything it saw
//! for them: stdout, stderr, `--json` output, alert webhooks and mails, the
//! run history database (TS-5.9).
//!
//! The table: a drill that passed writes its row to
//! `$CARGO_TARGET_TMPDIR/drills/<name>.txt` (removed when it starts); with
//! `LIFEBOAT_TEST_UPDATE_DOCS` (or `LIFEBOAT_UPDATE_DOCS`) set, it then
//! regenerates the section between the markers of `docs/RELIABILITY.md`,
//! rows sorted by drill name: the recorded ones, and for a drill not
//! recorded yet its row from the last pass. The daemon's and the offsite
//! store's drills (`daemon.rs`, `offsite.rs`) call `support::drill::start` and `record`
//! with their own test paths. Run all drills at once:
//! `LIFEBOAT_TEST_UPDATE_DOCS=1 cargo test --test it -- drills:: daemon:: offsite::`.
//!
//! Drills already proved elsewhere are named in the table's "see also"
//! column instead of being repeated here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::drill::{record, start, BEGIN, DRILLS, END};
use crate::support::full_disk_and_big_db;
use crate::support::http_sink::HttpSink;
use crate::support::rng::Rng;
use crate::support::smtp::{self, free_port, Mode, SmtpOptions, SmtpServer, TestCa};
use crate::support::smtp::{email_section, USER};
use crate::support::{self, fresh_db, toml_string, TestDb};
use crate::support::{assert_exit, json, stderr, stored_in};
use crate::support::{pg_dumps_for, run_bounded_with};

// covers: DR-5
#[test]
fn reliability_md_holds_the_generated_table_of_every_drill() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/RELIABILITY.md")).unwrap();
    let (_, rest) = doc.split_once(BEGIN).expect("the begin marker");
    let (table, _) = rest.split_once(END).expect("the end marker");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| `") && l.contains("::")).collect();
    let mut names: Vec<&str> = DRILLS.iter().map(|d| d.name).collect();
    names.sort();
    let listed: Vec<&str> = rows.iter().map(|r| r.trim_start_matches("| `").split('`').next().unwrap_or("")).collect();
    assert_eq!(listed, names, "one row per drill, sorted: regenerate with LIFEBOAT_TEST_UPDATE_DOCS=1");
    for r in rows {
        assert!(!r.contains("(not run yet)"), "commit a table from a pass that ran every drill: {r}");
    }
}

// ---------------------------------------------------------------------------
// Secrets and the rig every drill uses.

const DB_PW: &str = "Drill-db-pw-5e1f0c93";
const SMTP_PW: &str = "Drill-smtp-pw-77ab30d1";
const LINK_SECRET: &str = "Drill-link-secret-0c9d4e2a81";
const HOOK_TOKEN: &str = "Drill-hook-tok-3b8a6f";
const HTTP_USER: &str = "ops";
const HTTP_PW: &str = "Drill-http-pw-9d1e6b27";
const SECRETS: [&str; 5] = [DB_PW, SMTP_PW, LINK_SECRET, HOOK_TOKEN, HTTP_PW];

/// `url` with `password` for its user.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let (user, host) = authority.rsplit_once('@').expect("a URL with a user");
    let user = user.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}/{path}")
}

/// A drill's directory, config, webhook sink, and everything it saw.
struct Rig {
    /// Kept alive: the config, the link secret and (usually) the storage live here.
    _dir: tempfile::TempDir,
    storage: PathBuf,
    config: PathBuf,
    sink: HttpSink,
    /// (what, text) of everything lifeboat produced, for the secret scan.
    seen: Vec<(String, String)>,
}

impl Rig {
    /// A config for `url` (the password is added) with `database` keys,
    /// storage in `storage` (default `<dir>/b`), alerts to a webhook whose
    /// URL holds a token, a link secret from a file, and `extra` sections.
    fn new(url: &str, database: &str, storage: Option<&Path>, extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let storage = storage.map(Path::to_path_buf).unwrap_or_else(|| dir.path().join("b"));
        let sink = HttpSink::start();
        let link = dir.path().join("link_secret");
        std::fs::write(&link, format!("{LINK_SECRET}\n")).unwrap();
        let toml = format!(
            "[database]\nurl = {}\nconnect_timeout = \"3s\"\n{database}\n[storage]\ndir = {}\n\
             [alerts]\nwebhook_url = \"{}/hook/{HOOK_TOKEN}\"\n\
             [links]\npublic_url = \"https://hub.example.test/backups\"\nsecret_file = {}\n\
             [http]\nbasic_auth_user = \"{HTTP_USER}\"\nbasic_auth_password = \"{HTTP_PW}\"\n{extra}\n",
            toml_string(&with_password(url, DB_PW)),
            toml_string(&storage.to_string_lossy()),
            sink.url,
            toml_string(&link.to_string_lossy()),
        );
        let config = support::write_config(dir.path(), &toml);
        Rig { _dir: dir, storage, config, sink, seen: Vec::new() }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = support::lifeboat();
        c.args(["--config", self.config.to_str().unwrap()]).args(args);
        c
    }

    /// Runs lifeboat with `args`; keeps the output for the secret scan.
    fn run(&mut self, args: &[&str]) -> Output {
        let o = self.cmd(args).output().unwrap();
        self.keep(&format!("{args:?}"), &o);
        o
    }

    fn keep(&mut self, what: &str, o: &Output) {
        self.seen.push((format!("stdout of {what}"), String::from_utf8_lossy(&o.stdout).into_owned()));
        self.seen.push((format!("stderr of {what}"), stderr(o)));
    }

    /// The webhook alerts received so far (JSON bodies).
    fn alerts(&self, at_least: usize) -> Vec<Value> {
        self.sink
            .wait_for(at_least, Duration::from_secs(10))
            .iter()
            .map(|r| serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("webhook body is not JSON ({e}): {r:?}")))
            .collect()
    }

    fn history(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.storage.join(".lifeboat/history.db")).unwrap()
    }

    /// What the HTTP service shows of this storage after the drill: the
    /// status page, `/metrics` (both behind the drill's basic auth) and
    /// `/healthz`, served in-process by `lifeboat::http::app` from the
    /// drill's own config, as the daemon would serve them.
    fn pages(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let config = lifeboat::config::resolve(
            Some((&self.config, &text)),
            &std::collections::BTreeMap::new(),
            &lifeboat::config::Overrides::default(),
        )
        .unwrap_or_else(|e| panic!("the drill's config: {e}"));
        let app = crate::support::http::App::start(config, None);
        let auth = crate::support::http::basic(HTTP_USER, HTTP_PW);
        ["/", "/metrics", "/healthz"]
            .into_iter()
            .map(|path| {
                let g = crate::support::http::get_with(&format!("{}{path}", app.origin), &[("authorization", &auth)]);
                assert!(g.status == 200 || (path == "/healthz" && g.status == 503), "{path}: {}", g.status);
                (format!("the page {path}"), String::from_utf8_lossy(&g.body).into_owned())
            })
            .collect()
    }

    /// Fails if any secret appears in anything lifeboat produced: outputs,
    /// webhook bodies, `extra` (mails), the status page, `/metrics` and
    /// `/healthz`, and the bytes of every file of the history and the
    /// markers. Returns "N texts, B bytes" for the table.
    fn assert_no_secret(&self, extra: &[(String, String)]) -> String {
        let mut texts: Vec<(String, String)> = self.seen.clone();
        texts.extend(extra.iter().cloned());
        texts.extend(self.pages());
        for r in self.sink.seen() {
            texts.push((format!("webhook body to {}", r.path.replace(HOOK_TOKEN, "<token>")), r.body));
        }
        let files = std::fs::read_dir(self.storage.join(".lifeboat")).into_iter().flatten().flatten().map(|e| e.path());
        let markers = std::fs::read_dir(&self.storage)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".last_backup_")));
        for f in files.chain(markers).filter(|p| p.is_file()) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            texts.push((f.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
        }
        for (what, text) in &texts {
            for s in SECRETS {
                assert!(!text.contains(s), "secret {s:?} leaked into {what}:\n{text}");
            }
        }
        let bytes: usize = texts.iter().map(|(_, t)| t.len()).sum();
        format!("no secret in {} texts ({} KiB)", texts.len(), bytes.div_ceil(1024))
    }
}

/// Archive file names (`*.tar.gz`) in `dir`, sorted.
fn archives_in(dir: &Path) -> Vec<String> {
    stored_in(dir).into_iter().filter(|n| n.ends_with(".tar.gz")).collect()
}

/// The first line of `text` (for an error in the table).
fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| l.starts_with("error")).or_else(|| text.lines().next()).unwrap_or("");
    line.chars().take(240).collect()
}

fn code(o: &Output) -> String {
    o.status.code().map_or_else(|| format!("{}", o.status), |c| c.to_string())
}

// ---------------------------------------------------------------------------
// The drills.

// covers: TS-5.2, NFR-2.3, FR-4.5, TS-5.9, SC-2.4
#[test]
fn postgres_stopped_mid_run() {
    let started = start("drills::postgres_stopped_mid_run");
    let cluster = support::Cluster::with_password_role(DB_PW, &["drill_app"]);
    let admin_url = cluster.url("drill_app");
    support::connect(&admin_url)
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text); \
             INSERT INTO users SELECT g, 'u' || g || '@example.test' FROM generate_series(1, 2000) g; \
             CREATE TABLE payments (id int PRIMARY KEY, user_id int REFERENCES users (id), amount int); \
             INSERT INTO payments SELECT g, 1 + g % 2000, g FROM generate_series(1, 5000) g; ANALYZE",
        )
        .unwrap();
    let url = format!("postgres://lb_pw@127.0.0.1:{}/drill_app", cluster.port());
    let mut rig = Rig::new(&url, "lock_timeout = \"60s\"", None, "");

    // Hold the run inside pg_dump (as backup.rs does): an ACCESS EXCLUSIVE
    // request queues behind lifeboat's ACCESS SHARE lock, and pg_dump's own
    // lock request queues behind it. Then stop the server.
    let storage = rig.storage.clone();
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !cond() {
            assert!(t.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut stopped_at = None;
    let mut blocker = None;
    let run = run_bounded_with(&mut rig.cmd(&["--json", "backup"]), Duration::from_secs(60), |_| {
        wait("lifeboat to lock payments", &|| {
            support::connect(&admin_url)
                .query_one(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                     WHERE a.application_name = 'lifeboat' AND l.relation = 'payments'::regclass",
                    &[],
                )
                .unwrap()
                .get::<_, i64>(0)
                > 0
        });
        let mut admin = support::connect(&admin_url);
        blocker = Some(std::thread::spawn(move || {
            let _ = admin.batch_execute("BEGIN; LOCK TABLE payments IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)");
        }));
        wait("the .partial", &|| {
            std::fs::read_dir(&storage)
                .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".partial")))
                .unwrap_or(false)
        });
        stopped_at = Some(Instant::now());
        cluster.stop();
    });
    let _ = blocker.map(|b| b.join());
    rig.keep("the interrupted backup", &run.output);
    run.assert_within(Duration::from_secs(45));
    let after_stop = stopped_at.expect("the server was stopped").elapsed().as_secs_f64();
    assert_ne!(run.output.status.code(), Some(0), "the run cannot succeed without its server");
    let err = stderr(&run.output);
    assert!(err.contains("pg_dump") || err.contains("connection"), "{err}");
    let left = stored_in(&rig.storage);
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    assert_eq!(pg_dumps_for("drill_app", run.pid), Vec::<String>::new(), "pg_dump outlived the run");
    let alerts = rig.alerts(1);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "backup_failed", "{}", alerts[0]);
    let status: String =
        rig.history().query_row("SELECT status FROM runs ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "failed");

    cluster.start_again();
    let next = rig.run(&["--json", "backup"]);
    assert_exit(&next, 0);
    let archive = json(&next)["archive"].as_str().unwrap().to_string();
    let verify = rig.run(&["verify", &archive]);
    assert_exit(&verify, 0);
    let secrets = rig.assert_no_secret(&[]);
    record(
        "drills::postgres_stopped_mid_run",
        started,
        &format!(
            "exit {} {after_stop:.1} s after the stop (run {:.1} s): `{}`; files left in storage: {}; \
             webhook alert kind={} step={}; history: {status}; after restart: backup exit {}, verify exit {}; {secrets}",
            code(&run.output),
            run.took.as_secs_f64(),
            first_line(&err),
            left.len(),
            alerts[0]["kind"].as_str().unwrap_or("?"),
            alerts[0]["step"].as_str().unwrap_or("?"),
            code(&next),
            code(&verify),
        ),
    );
}

/// A small database whose backup takes a few hundred milliseconds.
fn small_db(hint: &str) -> TestDb {
    let db = fresh_db(hint);
    db.exec(
        "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL); \
         INSERT INTO accounts SELECT g, 'account ' || g FROM generate_series(1, 2000) g; \
         CREATE TABLE events (id int PRIMARY KEY, account_id int REFERENCES accounts (id), body text); \
         INSERT INTO events SELECT g, 1 + g % 2000, repeat(md5(g::text), 4) FROM generate_series(1, 20000) g; ANALYZE",
    );
    db
}

// covers: TS-5.3, NFR-2.2, FR-12.7, TS-5.9
#[test]
fn kill_9_at_random_points() {
    const SEED: u64 = 0x5EED_D1A1_0009;
    const KILLS: usize = 20;
    let started = start("drills::kill_9_at_random_points");
    let db = small_db("drill_kill9");
    let mut rig = Rig::new(&db.url, "", None, "");
    let t = Instant::now();
    let first = rig.run(&["backup"]);
    assert_exit(&first, 0);
    // Kill points are drawn within the last measured run's duration.
    let mut one_run = t.elapsed();
    let mut durations = vec![one_run.as_millis()];
    let mut rng = Rng(SEED);
    let (mut killed, mut finished_first, mut cleaned, mut orphans, mut verified) = (0, 0, 0, 0, 0);
    let (mut successes, mut late_kills, mut follow_ups) = (1, 0, 0);
    let mut checked: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut delays = Vec::new();
    let mut round = 0;
    while killed < KILLS {
        round += 1;
        assert!(round <= 2 * KILLS, "only {killed} of {round} runs were killed while running (delays {delays:?})");
        let delay = Duration::from_millis(rng.below(one_run.as_millis() as usize * 9 / 10) as u64);
        delays.push(delay.as_millis());
        let killed_before = killed;
        let mut child = rig.cmd(&["backup"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        if let Some(status) = child.try_wait().unwrap() {
            finished_first += 1;
            successes += usize::from(status.success());
        } else {
            child.kill().unwrap();
            child.wait().unwrap();
            killed += 1;
            // SIGKILL leaves no chance to stop pg_dump: it must end by itself.
            let t = Instant::now();
            let mut seen_orphan = false;
            while !pg_dumps_for(&db.name, child.id()).is_empty() {
                seen_orphan = true;
                assert!(t.elapsed() < Duration::from_secs(15), "round {round}: pg_dump still runs 15 s after the kill");
                std::thread::sleep(Duration::from_millis(20));
            }
            orphans += usize::from(seen_orphan);
        }
        // Every archive under its final name verifies.
        for name in archives_in(&rig.storage) {
            if checked.insert(name.clone()) {
                let path = rig.storage.join(&name);
                let o = rig.run(&["verify", path.to_str().unwrap()]);
                assert_exit(&o, 0);
                verified += 1;
            }
        }
        // History: only runs that ended well say success.
        let recorded: usize =
            rig.history().query_row("SELECT count(*) FROM runs WHERE status = 'success'", [], |r| r.get(0)).unwrap();
        // A run killed after it recorded its success (retention, the ping
        // and the exit were still to come) did succeed: its archive is final
        // and verified below. Any other success would be a false claim.
        let this_round_killed = killed > killed_before;
        assert!(
            recorded == successes || (this_round_killed && recorded == successes + 1),
            "round {round} (delay {delay:?}): the history records {recorded} successes for {successes} runs"
        );
        late_kills += recorded - successes;
        successes = recorded;
        let history = rig.history();
        let mut success_archives = history.prepare("SELECT archive FROM runs WHERE status = 'success'").unwrap();
        let names: Vec<String> = success_archives.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        drop(success_archives);
        drop(history);
        for n in names {
            assert!(checked.contains(&n), "round {round}: history names {n}, which is not a verified archive");
        }
        // The next run cleans up and succeeds: checked after every fourth
        // kill and after the last (the killed runs in between clean up too,
        // and the drill must stay within a minute).
        if killed % 4 != 0 || killed == killed_before {
            continue;
        }
        let t = Instant::now();
        let next = rig.run(&["backup"]);
        assert_exit(&next, 0);
        one_run = t.elapsed();
        durations.push(one_run.as_millis());
        successes += 1;
        cleaned += usize::from(stderr(&next).contains("left by an interrupted run"));
        follow_ups += 1;
        let leftovers: Vec<String> = stored_in(&rig.storage)
            .into_iter()
            .filter(|n| n.ends_with(".partial") || n.starts_with(".lifeboat-pgdump-"))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: left after the next run: {leftovers:?}");
    }
    let running: usize =
        rig.history().query_row("SELECT count(*) FROM runs WHERE status = 'running'", [], |r| r.get(0)).unwrap();
    // The rig's own verify/backup outputs are many; scanning them all is the point.
    let secrets = rig.assert_no_secret(&[]);
    let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
    durations.sort();
    let median = durations[durations.len() / 2];
    record(
        "drills::kill_9_at_random_points",
        started,
        &format!(
            "seed {SEED:#x}, a whole run {median} ms (median), kill delays {min}–{max} ms; {killed} of {round} \
             runs killed mid-run, {finished_first} had already ended; {verified} final archives all verify (exit 0); history: \
             every success row names a verified archive, {late_kills} runs killed after recording their success, \
             killed runs left as `running`: {running}; \
             {follow_ups} checking runs (after every 4th kill) removed leftovers {cleaned} times and always \
             exited 0; orphaned pg_dump seen after \
             {orphans} kills (all ended by themselves); {secrets}"
        ),
    );
}

// covers: TS-5.4, NFR-2.6, NFR-2.3, FR-4.5, TS-5.9
#[test]
fn disk_full_in_storage() {
    let started = start("drills::disk_full_in_storage");
    let Some((fs, db)) = full_disk_and_big_db("drill_disk_full") else { return };
    let storage = fs.dir.path().join("backups");
    let mut rig = Rig::new(&db.url, "", Some(&storage), "");
    let o = rig.run(&["--json", "backup"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    let shown = storage.canonicalize().unwrap().to_string_lossy().into_owned();
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(&shown), "names the directory: {err}");
    assert!(err.contains("public.big"), "names what was being written: {err}");
    let needed = err
        .split("needs about ")
        .nth(1)
        .and_then(|rest| rest.split_once(" MB"))
        .map(|(n, _)| n.trim().to_string())
        .unwrap_or_else(|| panic!("estimates the MB needed: {err}"));
    let left = stored_in(&storage);
    assert!(left.is_empty(), "nothing partial left: {left:?}");
    let alerts = rig.alerts(1);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "backup_failed", "{}", alerts[0]);
    assert!(alerts[0]["message"].as_str().unwrap_or("").contains("No space left"), "{}", alerts[0]);
    let secrets = rig.assert_no_secret(&[]);
    record(
        "drills::disk_full_in_storage",
        started,
        &format!(
            "exit {}: error names the storage path, public.big and says the backup needs about {needed} MB; files left: {}; \
             webhook alert kind={} step={}; {secrets}",
            code(&o),
            left.len(),
            alerts[0]["kind"].as_str().unwrap_or("?"),
            alerts[0]["step"].as_str().unwrap_or("?"),
        ),
    );
}

// covers: TS-5.5, NFR-2.4, FR-3.8, FR-3.10, FR-3.11, FR-4.7, TS-5.9, SC-2.4
#[test]
fn smtp_down_for_the_whole_retry_window() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let started = start("drills::smtp_down_for_the_whole_retry_window");
    let db = small_db("drill_smtp_down");
    let ca = TestCa::new();
    let (cert, key) = ca.server_cert(&["localhost"]);
    let port = free_port();
    let secrets_dir = tempfile::tempdir().unwrap();
    let email = email_section(port, Mode::StartTls, Some(&ca.ca_file), SMTP_PW, secrets_dir.path(), "");
    let mut rig = Rig::new(&db.url, "", None, &email);
    let t = Instant::now();
    let o = rig.run(&["--json", "backup"]);
    let took = t.elapsed().as_secs_f64();
    assert_exit(&o, 3);
    let report = json(&o);
    assert_eq!(report["delivery"]["status"], "failed", "{report}");
    assert_eq!(report["delivery"]["attempts"], 3, "{report}");
    let archive = report["archive"].as_str().unwrap().to_string();
    assert!(Path::new(&archive).is_file(), "the archive is kept");
    assert_exit(&rig.run(&["verify", &archive]), 0);
    let delivery: Option<String> = rig
        .history()
        .query_row("SELECT delivery_status FROM runs WHERE status = 'success' ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(delivery.as_deref(), Some("failed"), "the history marks it undelivered");
    let alerts = rig.alerts(1);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "delivery_failed", "{}", alerts[0]);

    let server = SmtpServer::start(&SmtpOptions {
        mode: Mode::StartTls,
        port,
        cert: Some((&cert, &key)),
        user: USER,
        password: SMTP_PW,
        refuse: &[],
    });
    let send = rig.run(&["--json", "send", &archive]);
    assert_exit(&send, 0);
    // The archive, then the recovery notice of the delivery_failed incident it closes.
    let got = server.wait_for(2, Duration::from_secs(10));
    assert_eq!(got.len(), 2, "two messages after `send`");
    let parsed: Vec<_> =
        got.iter().map(|m| mail_parser::MessageParser::default().parse(&m.raw).expect("a parsable message")).collect();
    let attached: Vec<_> = parsed.iter().filter_map(|p| p.attachments().next()).collect();
    assert_eq!(attached.len(), 1, "one message carries the archive");
    let same = support::sha256(attached[0].contents()) == support::sha256(&std::fs::read(&archive).unwrap());
    assert!(same, "the attachment is the kept archive");
    let notice = parsed.iter().find(|p| p.attachments().next().is_none()).expect("a recovery notice");
    assert!(notice.subject().unwrap_or_default().contains("RECOVERED"), "{:?}", notice.subject());
    assert!(notice.body_text(0).unwrap_or_default().contains("delivery_failed"), "the notice names the incident");
    let after: Option<String> = rig
        .history()
        .query_row("SELECT delivery_status FROM runs WHERE status = 'success' ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(after.as_deref(), Some("delivered"), "`send` records the delivery it made: {}", stderr(&send));
    let mails: Vec<(String, String)> = got.iter().map(|m| ("the mail sent by `send`".to_string(), m.text())).collect();
    let secrets = rig.assert_no_secret(&mails);
    record(
        "drills::smtp_down_for_the_whole_retry_window",
        started,
        &format!(
            "backup exit {} after {took:.1} s, delivery {} after {} attempts, archive kept and verifies; \
             history delivery = {}; webhook alert kind={}; SMTP back: `send` exit {}, {} messages (the archive, \
             attachment SHA-256 equals the archive's, and the incident's recovery notice); history delivery \
             after `send`: {}; {secrets}",
            code(&o),
            report["delivery"]["status"].as_str().unwrap_or("?"),
            report["delivery"]["attempts"],
            delivery.as_deref().unwrap_or("NULL"),
            alerts[0]["kind"].as_str().unwrap_or("?"),
            code(&send),
            got.len(),
            after.as_deref().unwrap_or("NULL"),
        ),
    );
}

// covers: TS-5.6, FR-14.2, US-11/AC-1, NFR-2.3, TS-5.9
#[test]
fn table_locked_access_exclusive() {
    let started = start("drills::table_locked_access_exclusive");
    let db = fresh_db("drill_locked");
    // lifeboat locks tables in catalog order: a_orders before z_migrating,
    // so it holds a_orders while it waits for z_migrating.
    db.exec(
        "CREATE TABLE a_orders (id int PRIMARY KEY, note text); \
         INSERT INTO a_orders SELECT g, 'o' || g FROM generate_series(1, 100) g; \
         CREATE TABLE z_migrating (id int PRIMARY KEY); INSERT INTO z_migrating VALUES (1)",
    );
    let mut rig = Rig::new(&db.url, "lock_timeout = \"2s\"", None, "");
    let mut migration = db.client();
    let mut tx = migration.transaction().unwrap();
    tx.batch_execute("LOCK TABLE z_migrating IN ACCESS EXCLUSIVE MODE").unwrap();

    let (mut insert_wait, mut ddl_wait) = (Duration::ZERO, Duration::ZERO);
    let run = run_bounded_with(&mut rig.cmd(&["backup"]), Duration::from_secs(40), |_| {
        let mut watcher = db.client();
        let t = Instant::now();
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                     WHERE a.application_name = 'lifeboat' AND NOT l.granted AND l.relation = 'z_migrating'::regclass",
                    &[],
                )
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "lifeboat never waited for the lock");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The application writes to the table lifeboat holds: not blocked.
        let mut app = db.client();
        let t = Instant::now();
        app.batch_execute("INSERT INTO a_orders VALUES (1000, 'during the backup')").unwrap();
        insert_wait = t.elapsed();
        // A schema change of it conflicts with lifeboat's ACCESS SHARE: it
        // may wait, but never longer than lifeboat's lock timeout.
        let t = Instant::now();
        app.batch_execute("ALTER TABLE a_orders ADD COLUMN extra int").unwrap();
        ddl_wait = t.elapsed();
    });
    tx.rollback().unwrap();
    rig.keep("the blocked backup", &run.output);
    run.assert_within(Duration::from_secs(15));
    assert_exit(&run.output, 1);
    let err = stderr(&run.output);
    assert!(err.contains("public.z_migrating") && err.contains("lock"), "{err}");
    assert!(insert_wait < Duration::from_secs(1), "an INSERT waited {insert_wait:?}");
    // The lock is released when lifeboat ends its transaction right after
    // the server's lock timeout; the margin is for a loaded machine.
    assert!(ddl_wait < Duration::from_millis(3000), "the ALTER TABLE waited {ddl_wait:?} (lock timeout 2 s)");
    let left = stored_in(&rig.storage);
    assert!(left.iter().all(|n| !n.ends_with(".partial") && !n.ends_with(".tar.gz")), "{left:?}");
    let alerts = rig.alerts(1);
    assert_eq!(alerts.first().map(|a| a["kind"].clone()), Some("backup_failed".into()), "{alerts:?}");
    let secrets = rig.assert_no_secret(&[]);
    record(
        "drills::table_locked_access_exclusive",
        started,
        &format!(
            "exit {} after {:.1} s (lock_timeout 2 s): `{}`; application INSERT into the table lifeboat held \
             waited {:.3} s; ALTER TABLE of it waited {:.2} s; archives left: 0; webhook alert kind={}; {secrets}",
            code(&run.output),
            run.took.as_secs_f64(),
            first_line(&err),
            insert_wait.as_secs_f64(),
            ddl_wait.as_secs_f64(),
            alerts[0]["kind"].as_str().unwrap_or("?"),
        ),
    );
}

// covers: TS-5.7, FR-5.2, FR-6.2, FR-17.5, US-12/AC-2, TS-5.9
#[test]
fn corrupted_archive_in_store() {
    let started = start("drills::corrupted_archive_in_store");
    let db = small_db("drill_corrupt");
    // Three fresh archives: all within retention_days, so the backups' own
    // retention keeps them; the newest is then damaged on disk.
    let mut rig = Rig::new(&db.url, "", None, "[retention]\nkeep_last = 2\n");
    for _ in 0..3 {
        assert_exit(&rig.run(&["backup"]), 0);
    }
    let names = archives_in(&rig.storage);
    assert_eq!(names.len(), 3, "{names:?}");
    let newest = names.last().unwrap().clone();
    let path = rig.storage.join(&newest);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();

    let verify = rig.run(&["verify", path.to_str().unwrap()]);
    assert_exit(&verify, 1);
    let listed = |rig: &mut Rig, args: &[&str], name: &str| -> Value {
        let o = rig.run(args);
        assert_exit(&o, 0);
        let v = json(&o);
        v["archives"].as_array().unwrap().iter().find(|a| a["name"] == name).cloned().expect("listed")
    };
    // The same size as when it was verified: only reading it finds the damage.
    let plain = listed(&mut rig, &["--json", "list"], &newest);
    let read = listed(&mut rig, &["--json", "list", "--verify"], &newest);
    let flagged = read["damaged"].as_str().unwrap_or_else(|| panic!("list --verify flags it: {read}")).to_string();
    assert!(flagged.contains("damaged") || flagged.contains("checksum"), "{read}");
    let text = rig.run(&["list", "--verify"]);
    let shown = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(shown.contains("DAMAGED") && shown.contains(&format!("damaged: {newest}")), "{shown}");
    let prune = rig.run(&["--json", "prune", "--dry-run"]);
    assert_exit(&prune, 0);
    let plan = json(&prune);
    let decisions = plan["decisions"].as_array().unwrap();
    let damaged = decisions.iter().find(|d| d["name"] == newest.as_str()).expect("a decision for the damaged archive");
    let reason = damaged["reason"].as_str().unwrap_or("").to_string();
    assert!(reason.contains("not good: damaged"), "not counted as good: {damaged}");
    let kept_good: Vec<&Value> =
        decisions.iter().filter(|d| d["reason"].as_str().is_some_and(|r| r.contains("keep_last"))).collect();
    assert_eq!(kept_good.len(), 2, "keep_last = 2 good archives besides the damaged one: {plan}");
    assert!(kept_good.iter().all(|d| d["name"] != newest.as_str()));
    // A truncated archive: plain `list` sees that its size is not the verified one.
    let oldest = rig.storage.join(&names[0]);
    let whole = std::fs::read(&oldest).unwrap();
    std::fs::write(&oldest, &whole[..whole.len() - 100]).unwrap();
    let truncated = listed(&mut rig, &["--json", "list"], &names[0]);
    let by_size = truncated["damaged"].as_str().unwrap_or_else(|| panic!("list flags a truncated one: {truncated}"));
    assert!(by_size.contains("when it was verified"), "{truncated}");
    let secrets = rig.assert_no_secret(&[]);
    record(
        "drills::corrupted_archive_in_store",
        started,
        &format!(
            "byte {at} of {} flipped; verify exit {}: `{}`; plain list: damaged={} (same size as verified); \
             list --verify: DAMAGED ({}); an archive truncated by 100 bytes: plain list flags it ({by_size}); \
             prune --dry-run: damaged archive `{}` ({}), {} good archives kept \
             by keep_last = 2; {secrets}",
            bytes.len(),
            code(&verify),
            first_line(&stderr(&verify)),
            plain["damaged"],
            first_line(&flagged),
            damaged["action"].as_str().unwrap_or("?"),
            reason,
            kept_good.len(),
        ),
    );
}

/// Every example config shipped in the repository: examples/*.toml and the
/// fenced blocks of README.md, docs/*.md and the spec that parse as TOML
/// with a known config section. (path-and-block, text).
fn shipped_configs() -> Vec<(String, String)> {
    const SECTIONS: [&str; 11] = [
        "database",
        "scope",
        "files",
        "storage",
        "email",
        "alerts",
        "links",
        "http",
        "encryption",
        "retention",
        "monitor",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for e in std::fs::read_dir(root.join("examples")).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "toml") {
            found.push((
                format!("examples/{}", e.file_name().to_string_lossy()),
                std::fs::read_to_string(e.path()).unwrap(),
            ));
        }
    }
    let mut docs: Vec<PathBuf> = vec![root.join("README.md"), root.join("specs/AUTOMATED_BACKUP_SERVICE_SPEC.md")];
    docs.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "md")),
    );
    docs.sort();
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        let rel = doc.strip_prefix(root).unwrap().display().to_string();
        let mut block: Option<(usize, String)> = None;
        for (i, line) in text.lines().enumerate() {
            let fence = line.trim_start().starts_with("```");
            match (&mut block, fence) {
                (None, true) => block = Some((i + 1, String::new())),
                (Some((start, body)), true) => {
                    let is_config = body
                        .parse::<toml::Table>()
                        .is_ok_and(|t| !t.is_empty() && t.keys().all(|k| SECTIONS.contains(&k.as_str())));
                    if is_config {
                        found.push((format!("{rel}:{start}"), std::mem::take(body)));
                    }
                    block = None;
                }
                // A shell prompt line before a printed config.
                (Some(_), false) if line.starts_with("$ ") => {}
                (Some((_, body)), false) => {
                    body.push_str(line);
                    body.push('\n');
                }
                (None, false) => {}
            }
        }
    }
    found
}

/// One to three random edits of a config's text.
fn mutate_config(rng: &mut Rng, original: &str) -> String {
    const PIECES: [&str; 22] = [
        "\"",
        "'",
        "[",
        "]",
        "[[",
        "]]",
        "=",
        "\n",
        "#",
        "{",
        "}",
        ",",
        "\\",
        "\u{0}",
        "é",
        "0",
        "-1",
        "99999999999999999999",
        "true",
        "\"1 fortnight\"",
        "[database]\n",
        "\"\"\"",
    ];
    const VALUES: [&str; 10] =
        ["\"\"", "-1", "0", "1.5", "true", "[]", "{}", "\"x\"", "\"0 s\"", "\"/nonexistent/dir\""];
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(3) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = rng.below(lines.len());
        match rng.below(7) {
            0 => {
                let line = &mut lines[i];
                if !line.is_empty() {
                    let at = line.char_indices().nth(rng.below(line.chars().count())).unwrap().0;
                    line.remove(at);
                }
            }
            1 => {
                let line = &mut lines[i];
                let at = line.char_indices().nth(rng.below(line.chars().count() + 1)).map_or(line.len(), |c| c.0);
                line.insert_str(at, PIECES[rng.below(PIECES.len())]);
            }
            2 => {
                lines.remove(i);
            }
            3 => {
                let copy = lines[i].clone();
                let j = rng.below(lines.len());
                lines.insert(j, copy);
            }
            4 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            5 => {
                if let Some((key, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{key}= {}", VALUES[rng.below(VALUES.len())]);
                }
            }
            _ => {
                let keep = rng.below(lines.len() + 1);
                lines.truncate(keep);
            }
        }
    }
    lines.join("\n") + "\n"
}

// covers: TS-5.8, NFR-2.5, TS-6, TS-5.9
#[test]
fn malformed_configs() {
    const SEED: u64 = 0xC0F1_6D21;
    const PER_CONFIG: usize = 60;
    let started = start("drills::malformed_configs");
    let configs = shipped_configs();
    assert!(configs.iter().any(|(p, _)| p.starts_with("examples/")), "{configs:?}");
    let dir = tempfile::tempdir().unwrap();
    // The examples name Docker secrets under /run/secrets/ (see cli.rs):
    // point them at real files holding distinctive secrets.
    let db_pw = dir.path().join("db_password");
    std::fs::write(&db_pw, format!("{DB_PW}\n")).unwrap();
    let smtp_pw = dir.path().join("smtp_password");
    std::fs::write(&smtp_pw, format!("{SMTP_PW}\n")).unwrap();
    let file = dir.path().join("lifeboat.toml");
    let load = |text: &str| -> (Output, Duration) {
        std::fs::write(&file, text).unwrap();
        let t = Instant::now();
        let o = support::lifeboat()
            .args(["--config", file.to_str().unwrap(), "--json", "config"])
            .env("LIFEBOAT_DATABASE__PASSWORD_FILE", &db_pw)
            .env("LIFEBOAT_EMAIL__PASSWORD_FILE", &smtp_pw)
            .output()
            .unwrap();
        (o, t.elapsed())
    };
    let mut rng = Rng(SEED);
    let (mut loaded, mut refused, mut runs) = (0, 0, 0);
    let mut slowest = Duration::ZERO;
    let mut sources = Vec::new();
    for (source, text) in &configs {
        let (o, _) = load(text);
        assert_exit(&o, 0);
        sources.push(source.clone());
        for n in 0..PER_CONFIG {
            let mutant = mutate_config(&mut rng, text);
            let (o, took) = load(&mutant);
            runs += 1;
            slowest = slowest.max(took);
            let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
            let case = format!("{source}, mutant {n} (seed {SEED:#x}):\n--- config ---\n{mutant}--- output ---\n{all}");
            assert!(!all.contains("panicked") && o.status.code() != Some(101), "a panic: {case}");
            for s in SECRETS {
                assert!(!all.contains(s), "secret leaked: {case}");
            }
            match o.status.code() {
                Some(0) => loaded += 1,
                Some(2) => {
                    let err = stderr(&o);
                    assert!(err.starts_with("error: ") && err.trim().len() > 20, "not a clear error: {case}");
                    refused += 1;
                }
                _ => panic!("exit {}: {case}", code(&o)),
            }
            assert!(took < Duration::from_secs(10), "took {took:?}: {case}");
        }
    }
    record(
        "drills::malformed_configs",
        started,
        &format!(
            "seed {SEED:#x}: {runs} mutants of {} configs ({}): {loaded} still valid (exit 0), {refused} refused \
             with an `error:` message (exit 2), 0 panics, 0 other exit codes, no secret in any output; slowest \
             load {} ms",
            configs.len(),
            sources.join(", "),
            slowest.as_millis()
        ),
    );
}
