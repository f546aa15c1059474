//! The HTTP service's read side: `/healthz`, `/metrics` (parsed as
//! Prometheus text), the status page (opened in headless Chromium), the
//! idle timeout of a client that stops reading, and
//! basic auth. The app runs in-process on 127.0.0.1:0 through
//! `lifeboat::http::serve`, over a storage directory filled by real
//! `lifeboat backup` runs of the SaaS fixture.
//!
//! Where a run state is hard to produce for real, the history is written
//! through its own API (`History::start`/`finish`/`set_delivery`/
//! `set_restore_test`); each such place says so.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use chrono::Utc;
use lifeboat::config::{Config, Overrides};
use lifeboat::history::{DeliveryStatus, History, Outcome, RehearsalStatus, RunStatus, Trigger};

use crate::support::http::{basic, get, get_with, App, Got};
use crate::support::{self, toml_string};
use crate::support::{assert_exit, run, Seeded};

const SMTP_PASSWORD: &str = "smtp-Pa55-status-5e1d09c7";
const LINK_SECRET: &str = "link-secret-status-0b6a2f7d91c4e8";
const AUTH_USER: &str = "ops";
const AUTH_PASSWORD: &str = "basic-Pa55-status-c83e1f";
const PUBLIC_URL: &str = "https://hub.example.com/backups";

/// The config of `s` (plus `extra`) as the daemon would load it.
fn config_of(s: &Seeded, extra: &str) -> Config {
    let text = std::fs::read_to_string(&s.config).unwrap() + "\n" + extra;
    lifeboat::config::resolve(Some((&s.config, &text)), &BTreeMap::new(), &Overrides::default())
        .unwrap_or_else(|e| panic!("config: {e}\n{text}"))
}

/// `[email]` with a distinctive password, `[links]` with a distinctive key
/// file: the secrets no page may show.
fn secrets_sections(dir: &Path) -> String {
    let key = dir.join("link.key");
    std::fs::write(&key, LINK_SECRET).unwrap();
    format!(
        "[email]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = 2525\nusername = \"backup@example.test\"\npassword = {}\n\
         from = \"backup@example.test\"\nto = [\"admin@example.test\"]\n\n\
         [links]\npublic_url = {}\nsecret_file = {}\n",
        toml_string(SMTP_PASSWORD),
        toml_string(PUBLIC_URL),
        toml_string(&key.to_string_lossy())
    )
}

fn auth_section() -> String {
    format!(
        "[http]\nbasic_auth_user = {}\nbasic_auth_password = {}\n",
        toml_string(AUTH_USER),
        toml_string(AUTH_PASSWORD)
    )
}

fn text(g: &Got) -> String {
    String::from_utf8_lossy(&g.body).into_owned()
}

fn failed_backup(s: &Seeded) {
    let o = run(&[
        "--config",
        s.config.to_str().unwrap(),
        "backup",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/gone",
    ]);
    assert_exit(&o, 2);
}

/// A store with history: 12 older successes written through the History
/// API (weeks of nightly runs cannot be waited for), then real runs: a
/// success, a failure, a success. Delivery outcomes are set through the
/// API (a real SMTP run is tests/it/deliver.rs's job); the newest run's
/// rehearsal by one SQL update (nothing records rehearsals yet).
fn store() -> &'static Seeded {
    static STORE: OnceLock<Seeded> = OnceLock::new();
    STORE.get_or_init(|| {
        let s = Seeded::with_config("status", "[monitor]\nmin_size_mb = 0\n");
        std::fs::create_dir_all(s.storage()).unwrap();
        {
            let mut h = History::open(&s.storage()).unwrap();
            let now = Utc::now();
            for i in 0..12i64 {
                let at = now - chrono::Duration::days(14 - i);
                let id = h.start(Trigger::Schedule, at).unwrap();
                let o = Outcome {
                    status: RunStatus::Success,
                    archive: Some(format!("critical_backup_{}.tar.gz", at.format("%Y%m%d_%H%M%S"))),
                    size_bytes: Some(300_000 + 4_000 * i as u64),
                    duration_ms: 2_000 + 50 * i as u64,
                    ..Default::default()
                };
                h.finish(id, at + chrono::Duration::seconds(2), &o, &[]).unwrap();
                h.set_delivery(id, if i % 4 == 0 { DeliveryStatus::Failed } else { DeliveryStatus::Delivered })
                    .unwrap();
            }
        }
        s.backup();
        failed_backup(&s);
        s.backup();
        let mut h = History::open(&s.storage()).unwrap();
        let newest = h.recent(1).unwrap()[0].clone();
        h.set_delivery(newest.id, DeliveryStatus::Delivered).unwrap();
        let archive = newest.archive.expect("the newest run is a success");
        let now = Utc::now();
        assert!(h.set_restore_test(&archive, RehearsalStatus::Success, 4250, now, now, None).unwrap());
        s
    })
}

fn assert_no_secret(what: &str, body: &str) {
    for secret in [SMTP_PASSWORD, LINK_SECRET, AUTH_PASSWORD] {
        assert!(!body.contains(secret), "{what} shows a secret");
    }
}

/// The keys `/healthz` answers with, whatever the state.
const HEALTHZ_KEYS: [&str; 3] = ["last_success", "last_success_age_seconds", "status"];

fn healthz(app: &App) -> (u16, serde_json::Value) {
    let g = app.get("/healthz");
    assert_eq!(g.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&g.body).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, HEALTHZ_KEYS, "{v}");
    (g.status, v)
}

// covers: FR-17.2, US-5/AC-1, FR-4.2, SC-2.4, SC-10.2
#[test]
fn healthz_is_200_or_503_with_the_age_of_the_last_success_and_no_detail() {
    let s = Seeded::with_config("status_health", "[monitor]\nmin_size_mb = 0\n");
    let app = App::start(config_of(&s, &auth_section()), None);
    // Nothing yet: unhealthy, and no basic auth in the way of a HEALTHCHECK.
    let (status, v) = healthz(&app);
    assert_eq!(status, 503, "{v}");
    assert_eq!((v["status"].as_str(), v["last_success"].is_null()), (Some("unhealthy"), true), "{v}");

    s.backup();
    let (status, v) = healthz(&app);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "ok");
    assert!(v["last_success"].as_str().is_some(), "{v}");
    assert!((0..120).contains(&v["last_success_age_seconds"].as_i64().unwrap()), "{v}");

    // 26 hours ago: simulated by rewriting the marker file.
    let old = Utc::now().timestamp() - 26 * 3600;
    std::fs::write(s.storage().join(".last_backup_success"), format!("{old}\n")).unwrap();
    let (status, v) = healthz(&app);
    assert_eq!((status, v["status"].as_str()), (503, Some("unhealthy")), "{v}");
    let age = v["last_success_age_seconds"].as_i64().unwrap();
    assert!((26 * 3600..26 * 3600 + 120).contains(&age), "{v}");

    // A run that failed names the database's host, port, name and role in
    // its error: the status page (behind basic auth) shows it, /healthz
    // (open to anyone) does not.
    s.backup();
    assert_eq!(healthz(&app).0, 200);
    let (host, port, db, role) = ("127.0.0.1", "1", "payroll_db_7c1", "hub_role_3f9");
    let o = run(&[
        "--config",
        s.config.to_str().unwrap(),
        "backup",
        "--database-url",
        &format!("postgres://{role}@{host}:{port}/{db}"),
    ]);
    assert_exit(&o, 2);
    let g = app.get("/healthz");
    let (status, v) = healthz(&app);
    assert_eq!((status, v["status"].as_str()), (503, Some("unhealthy")), "{v}");
    assert!(v["last_success_age_seconds"].as_i64().is_some(), "{v}");
    let open = text(&g);
    for detail in [role, db, &format!("{host}:{port}"), "cannot connect", "failed at"] {
        assert!(!open.contains(detail), "/healthz tells strangers {detail:?}: {open}");
    }
    assert_eq!(app.get("/").status, 401, "the details are behind basic auth");
    let page = get_with(&format!("{}/", app.origin), &[("Authorization", &basic(AUTH_USER, AUTH_PASSWORD))]);
    assert_eq!(page.status, 200);
    assert!(text(&page).contains("cannot connect") && text(&page).contains(db), "the page keeps the details");
    // `lifeboat check` runs on the host and keeps its reasons.
    let check = run(&["--config", s.config.to_str().unwrap(), "check"]);
    assert_exit(&check, 1);
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("cannot connect"),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

fn sample(m: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    m.samples.iter().filter(|s| s.metric == name).find(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v))).map(
        |s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name}: not a number"),
        },
    )
}

// covers: FR-17.3, FR-17.1, FR-4.4, US-5/AC-5
#[test]
fn metrics_parse_as_prometheus_text_and_match_the_history() {
    let s = store();
    let app = App::start(config_of(s, ""), None);
    let g = app.get("/metrics");
    assert_eq!(g.status, 200, "{}", text(&g));
    assert!(g.header("content-type").unwrap().starts_with("application/openmetrics-text"), "{:?}", g.headers);
    let body = text(&g);
    assert!(body.ends_with("# EOF\n"), "{body}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    // Every series documented, with # HELP and # TYPE.
    for (family, kind) in [
        ("lifeboat_last_success_timestamp_seconds", "gauge"),
        ("lifeboat_last_backup_size_bytes", "gauge"),
        ("lifeboat_last_backup_duration_seconds", "gauge"),
        ("lifeboat_runs", "counter"),
        ("lifeboat_deliveries", "counter"),
        ("lifeboat_backup_age_seconds", "gauge"),
        ("lifeboat_incidents_open", "gauge"),
        ("lifeboat_last_restore_test_duration_seconds", "gauge"),
        ("lifeboat_last_restore_test_success", "gauge"),
    ] {
        assert!(body.contains(&format!("# HELP {family} ")), "no HELP for {family}:\n{body}");
        assert!(body.contains(&format!("# TYPE {family} {kind}\n")), "no TYPE for {family}:\n{body}");
    }

    let h = History::open_existing(&s.storage()).unwrap().unwrap();
    let last = &h.successes(1).unwrap()[0];
    let marker: i64 =
        std::fs::read_to_string(s.storage().join(".last_backup_success")).unwrap().trim().parse().unwrap();
    assert_eq!(sample(&scrape, "lifeboat_last_success_timestamp_seconds", None), Some(marker as f64));
    assert_eq!(sample(&scrape, "lifeboat_last_backup_size_bytes", None), Some(last.size_bytes.unwrap() as f64));
    assert_eq!(
        sample(&scrape, "lifeboat_last_backup_duration_seconds", None),
        Some(last.duration_ms.unwrap() as f64 / 1000.0)
    );
    let age = sample(&scrape, "lifeboat_backup_age_seconds", None).unwrap();
    let expect = (Utc::now().timestamp() - marker) as f64;
    assert!((age - expect).abs() < 30.0, "age {age} vs {expect}");
    assert_eq!(sample(&scrape, "lifeboat_runs_total", Some(("status", "success"))), Some(14.0));
    assert_eq!(sample(&scrape, "lifeboat_runs_total", Some(("status", "failed"))), Some(1.0));
    assert_eq!(sample(&scrape, "lifeboat_deliveries_total", Some(("status", "delivered"))), Some(10.0));
    assert_eq!(sample(&scrape, "lifeboat_deliveries_total", Some(("status", "failed"))), Some(3.0));
    assert_eq!(sample(&scrape, "lifeboat_incidents_open", None), Some(0.0));
    assert_eq!(sample(&scrape, "lifeboat_last_restore_test_duration_seconds", None), Some(4.25));
    assert_eq!(sample(&scrape, "lifeboat_last_restore_test_success", None), Some(1.0));

    // `[http] metrics_listen` moves /metrics off the main listener.
    let moved = config_of(s, "[http]\nmetrics_listen = \"127.0.0.1:0\"\n");
    let main = App::start(moved.clone(), None);
    assert_eq!(main.get("/metrics").status, 404);
    assert_eq!(main.get("/healthz").status, 200);
    let metrics = App::start_with(moved, None, lifeboat::http::metrics_app);
    assert_eq!(metrics.get("/metrics").status, 200);
    assert_eq!(metrics.get("/").status, 404, "the metrics listener serves /metrics only");
}

// covers: FR-17.4, US-5/AC-5, SC-1.2, SC-2.4
#[test]
fn the_status_page_renders_in_chromium_with_health_runs_chart_and_next_run() {
    let Some(chromium) = support::browser::chromium() else { return };
    let s = store();
    let next = Utc::now() + chrono::Duration::hours(9);
    let app = App::start(config_of(s, ""), Some(next));
    let g = app.get("/");
    assert_eq!(g.status, 200);
    assert_eq!(g.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(!text(&g).contains("<script"), "no JS");

    let dom = support::browser::dump_dom(chromium, &format!("{}/", app.origin));
    assert!(dom.contains(r#"id="health-status">healthy</span>"#), "{dom}");
    // In [schedule] timezone (UTC here), with its offset.
    let next_text = next.format("%Y-%m-%d %H:%M:%S +00:00").to_string();
    assert!(dom.contains(&next_text), "next run {next_text} not shown");
    let rows = dom.matches(r#"<tr class="run status-"#).count();
    assert_eq!(rows, 15, "every recorded run is a row");
    assert_eq!(dom.matches(r#"class="run status-failed""#).count(), 1);
    let newest = History::open_existing(&s.storage()).unwrap().unwrap().successes(1).unwrap()[0].clone();
    assert!(dom.contains(newest.archive.as_deref().unwrap()), "the newest archive is named");
    assert!(dom.contains("cannot connect"), "the failed run says why");
    let svg = &dom[dom.find(r#"<svg id="size-chart""#).expect("an inline SVG chart")..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    assert_eq!(svg.matches("<circle").count(), 14, "one point per successful run");
    assert!(svg.contains("<polyline"));
    assert!(dom.contains("No open incidents."));
    assert!(!dom.contains("href="), "no download link of any kind");
    assert_no_secret("the status page", &dom);

    let png = s.dir.path().join("status-page.png");
    support::browser::screenshot(chromium, &format!("{}/", app.origin), &png, "1200,1600");
    // docs/images/status-page.png comes from tests/it/channels.rs (local times, chat channels).

    // `lifeboat serve` has no scheduler: the page says so.
    let idle = App::start(config_of(s, ""), None);
    assert!(text(&idle.get("/")).contains("no schedule: not running as daemon"));
}

// covers: FR-17.4, SC-2.4
#[test]
fn basic_auth_guards_the_page_and_metrics_but_not_healthz() {
    let s = store();
    let app = App::start(config_of(s, &auth_section()), None);
    let url = |p: &str| format!("{}{p}", app.origin);
    for path in ["/", "/metrics"] {
        let g = get(&url(path));
        assert_eq!(g.status, 401, "{path} without credentials");
        assert!(g.header("www-authenticate").unwrap().starts_with("Basic realm="), "{:?}", g.headers);
        for wrong in
            [basic(AUTH_USER, "wrong"), basic("root", AUTH_PASSWORD), basic(AUTH_USER, &format!("{AUTH_PASSWORD}x"))]
        {
            let g = get_with(&url(path), &[("Authorization", &wrong)]);
            assert_eq!(g.status, 401, "{path} with wrong credentials");
            assert_no_secret(path, &text(&g));
        }
        let g = get_with(&url(path), &[("Authorization", &basic(AUTH_USER, AUTH_PASSWORD))]);
        assert_eq!(g.status, 200, "{path} with the right credentials");
        assert_no_secret(path, &text(&g));
    }
    let g = app.get("/healthz");
    assert_eq!(g.status, 200, "the HEALTHCHECK needs no password: {}", text(&g));
    assert_no_secret("/healthz", &text(&g));
}

// covers: SC-2.4, SC-1.2, FR-17.4, FR-17.3, FR-17.2
#[test]
fn no_secret_appears_on_any_page() {
    let s = store();
    let app = App::start(config_of(s, &secrets_sections(s.dir.path())), None);
    for path in ["/", "/metrics", "/healthz", "/nope", "/backups/"] {
        let g = app.get(path);
        assert_no_secret(path, &text(&g));
        assert!(!text(&g).contains("127.0.0.1:2525"), "{path} shows the SMTP server");
    }
    // The download route is mounted with the configured key: a link signed
    // with it works, so the key was in reach of every handler above.
    let archive =
        History::open_existing(&s.storage()).unwrap().unwrap().successes(1).unwrap()[0].archive.clone().unwrap();
    let expires = Utc::now().timestamp() + 600;
    let link = lifeboat::deliver::links::signed_url(PUBLIC_URL, &archive, expires, LINK_SECRET.as_bytes());
    let g = get(&link.replace("https://hub.example.com", &app.origin));
    assert_eq!(g.status, 200, "{}", text(&g));
}

// covers: FR-17.6, SC-10.1
#[test]
fn a_client_that_stops_reading_its_responses_is_cut_off_after_the_idle_timeout() {
    use std::io::Write;
    let s = store();
    let app = App::start(config_of(s, "[http]\nidle_timeout = \"1s\"\n"), None);
    let addr = app.origin.trim_start_matches("http://").to_string();
    // Pipelined requests, never a byte read: once the socket buffers are
    // full, the server's writes wait on this client.
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.set_write_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let batch = b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(1000);
    let started = std::time::Instant::now();
    let ended = loop {
        if let Err(e) = c.write_all(&batch) {
            break e;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "the server still reads after 120 s");
    };
    // Cut off by the server (reset), not our own write timeout expiring.
    assert!(
        matches!(ended.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
        "{ended:?} after {:?}",
        started.elapsed()
    );
}
