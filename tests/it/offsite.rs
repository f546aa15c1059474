//! Offsite copies on a real S3-compatible store (SeaweedFS, one server per
//! test process, one bucket per test): multipart upload with bounded memory
//! and a byte-identical copy, presigned links fetched with a plain HTTP
//! client, a store that is down (local archive kept, run not offsite,
//! alert) and the catch-up after it, remote retention, restore and verify
//! straight from the store, and clear errors without secrets.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use crate::support::http_sink::HttpSink;
use crate::support::s3::{self, weed, SECRET_KEY};
use crate::support::{self, TestDb};
use crate::support::{assert_exit, stderr};
use crate::support::{Proxy, Trigger};

/// A database, its config with `[remote]` and the storage directory.
struct Offsite {
    /// Dropped (and the database with it) at the end of the test.
    _db: TestDb,
    dir: tempfile::TempDir,
    config: PathBuf,
    bucket: String,
}

const PREFIX: &str = "hub/lifeboat";

impl Offsite {
    /// `rows` rows of incompressible-ish text; `extra` is appended to the config
    /// (after `[remote]`, whose `extra_remote` keys come first).
    fn new(hint: &str, rows: u32, extra_remote: &str, extra: &str) -> Offsite {
        let db = support::fresh_db(hint);
        db.exec(&format!(
            "CREATE TABLE blobs (id int PRIMARY KEY, body text);
             INSERT INTO blobs SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, {rows}) g"
        ));
        let dir = tempfile::tempdir().unwrap();
        let bucket = weed().bucket(hint);
        let config = support::TestConfig::new(&db.url, dir.path().join("backups"))
            .database("connect_timeout = \"2s\"")
            .section(weed().remote_toml(&bucket, PREFIX, extra_remote))
            .section(extra)
            .write(dir.path());
        Offsite { _db: db, dir, config, bucket }
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = support::lifeboat();
        c.arg("--config").arg(&self.config).args(args);
        c
    }

    fn cmd(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("cannot run lifeboat")
    }

    fn local_archives(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.storage())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tar.gz"))
            .collect();
        v.sort();
        v
    }

    fn remote_names(&self) -> Vec<String> {
        weed().names(&self.bucket, PREFIX)
    }

    fn remote_bytes(&self, name: &str) -> Vec<u8> {
        weed().read(&self.bucket, &format!("{PREFIX}/{name}")).unwrap_or_else(|| panic!("{name} is not in the store"))
    }

    fn offsite_status(&self, archive: &str) -> Option<String> {
        let c = rusqlite::Connection::open(self.storage().join(".lifeboat/history.db")).unwrap();
        c.query_row("SELECT offsite_status FROM runs WHERE archive = ?1", [archive], |r| r.get(0)).unwrap()
    }

    /// `lifeboat backup`, which must succeed and upload its archive: a
    /// failed upload is reported as such, with the run's stderr, not as a
    /// missing object later.
    fn backup_uploaded(&self) -> Output {
        let o = self.cmd(&["backup"]);
        assert_exit(&o, 0);
        let newest = self.local_archives().pop().expect("an archive");
        assert_eq!(self.offsite_status(&newest).as_deref(), Some("uploaded"), "{}", stderr(&o));
        o
    }

    /// Points `[remote] endpoint` somewhere else (a port nobody listens on: the store is down).
    fn set_endpoint(&self, endpoint: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text: String = text
            .lines()
            .map(|l| if l.starts_with("endpoint = ") { format!("endpoint = \"{endpoint}\"") } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&self.config, text + "\n").unwrap();
    }
}

fn sha(data: &[u8]) -> String {
    crate::support::sha256(data)
}

// covers: FR-29.2, FR-29.3, NFR-1.1
#[test]
fn a_backup_uploads_a_multipart_copy_that_is_byte_identical_with_bounded_memory() {
    if !s3::available() {
        return;
    }
    // About 30 MB of archive in 5 MiB parts (S3's smallest): more than two
    // parts, and far more than the memory bound's headroom below.
    let o = Offsite::new("multipart", 850_000, "part_size_mb = 5", "");
    // The same backup without [remote]: the baseline the upload is bounded against.
    let text = std::fs::read_to_string(&o.config).unwrap();
    let plain = o.dir.path().join("plain.toml");
    std::fs::write(&plain, text.split("[remote]").next().unwrap()).unwrap();
    let baseline = support::rss::run_measured(
        support::lifeboat()
            .arg("--config")
            .arg(&plain)
            .arg("backup")
            .arg("--output-dir")
            .arg(o.dir.path().join("plain")),
    );
    assert!(baseline.output.status.success(), "{}", stderr(&baseline.output));
    let measured = support::rss::run_measured(&o.command(&["backup"]));
    assert!(measured.output.status.success(), "{}", stderr(&measured.output));
    eprintln!("--- backup stderr ---\n{}", stderr(&measured.output));
    let local = o.local_archives();
    assert_eq!(local.len(), 1);
    let name = &local[0];
    let bytes = std::fs::read(o.storage().join(name)).unwrap();
    assert!(bytes.len() > 25 * 1024 * 1024, "the archive must span more than two 5 MiB parts: {} bytes", bytes.len());
    let remote = o.remote_bytes(name);
    assert_eq!(sha(&remote), sha(&bytes), "the offsite copy differs from the local archive");
    let sidecar = String::from_utf8(o.remote_bytes(&format!("{name}.sha256"))).unwrap();
    assert_eq!(sidecar, format!("{}  {name}\n", sha(&bytes)));
    assert_eq!(o.remote_names(), vec![name.clone(), format!("{name}.sha256")]);
    assert_eq!(o.offsite_status(name).as_deref(), Some("uploaded"));
    let (peak, base) = (measured.peak_rss_mib(), baseline.peak_rss_mib());
    eprintln!("peak RSS: backup {base} MiB, backup + {} byte multipart upload {peak} MiB", bytes.len());
    // One 5 MiB part in memory (plus the client's copies) — never the archive.
    assert!(
        peak <= base + 20,
        "the upload held {} MiB more than the backup alone ({peak} vs {base} MiB)",
        peak - base.min(peak)
    );
}

// covers: FR-29.4, FR-29.5, FR-4.7, FR-4.6
#[test]
fn a_store_that_is_down_keeps_the_local_archive_alerts_and_the_next_run_uploads_what_is_missing() {
    const DRILL: &str =
        "offsite::a_store_that_is_down_keeps_the_local_archive_alerts_and_the_next_run_uploads_what_is_missing";
    if !s3::available() {
        return;
    }
    let started = crate::support::drill::start(DRILL);
    let sink = HttpSink::start();
    let alerts = format!("[alerts]\nwebhook_url = \"{0}/hook\"\nping_url = \"{0}/ping\"\n", sink.url);
    let o = Offsite::new("down", 50, "", &alerts);
    // A port nobody listens on: the store is down for the whole first run.
    let dead = format!("http://127.0.0.1:{}", support::smtp::free_port());
    o.set_endpoint(&dead);
    let first = o.cmd(&["backup"]);
    assert_exit(&first, 0);
    let err = stderr(&first);
    let local = o.local_archives();
    assert_eq!(local.len(), 1, "the local archive is kept: {err}");
    assert!(err.contains("the offsite copy failed, the local archive is kept"), "{err}");
    assert!(
        err.contains(&format!("s3://{}/{PREFIX}/", o.bucket)) && err.contains(&dead),
        "names bucket and endpoint: {err}"
    );
    assert_eq!(o.offsite_status(&local[0]).as_deref(), Some("failed"));
    let hooks = sink.wait_for(1, Duration::from_secs(10));
    let alert = hooks.iter().find(|h| h.body.contains("offsite_failed")).expect("an offsite_failed alert");
    assert!(alert.body.contains(&local[0]), "{}", alert.body);
    assert!(!err.contains(SECRET_KEY) && !alert.body.contains(SECRET_KEY), "the secret leaked");
    // The healthchecks.io-style ping ends on /fail: no success ping clears it.
    let pings: Vec<String> = sink.seen().into_iter().map(|h| h.path).filter(|p| p.starts_with("/ping")).collect();
    assert_eq!(pings.first().map(String::as_str), Some("/ping/start"), "{pings:?}");
    assert_eq!(pings.last().map(String::as_str), Some("/ping/fail"), "{pings:?}");
    assert!(o.remote_names().is_empty());

    // Still down for the next run: the open offsite_failed incident is not alerted again. (No waiting for
    // the next second: a run of the same second names its archive `…_2`, FR-12.1.)
    let again = o.cmd(&["backup"]);
    assert_exit(&again, 0);
    assert!(stderr(&again).contains("not alerted again: the offsite_failed incident is open"), "{}", stderr(&again));
    let offsite_alerts = |kind: &str| {
        sink.seen()
            .iter()
            .filter(|h| h.path == "/hook" && h.body.contains(kind) && h.body.contains("offsite_failed"))
            .count()
    };
    assert_eq!(offsite_alerts("\"alert\""), 1, "one alert per incident: {:?}", sink.seen());

    // The store is back: the next run uploads the missed archives first, then its own,
    // and closes the incident with one recovery notice.
    o.set_endpoint(&weed().endpoint);
    let second = o.cmd(&["--verbose", "backup"]);
    assert_exit(&second, 0);
    let local = o.local_archives();
    assert_eq!(local.len(), 3);
    assert_eq!(offsite_alerts("\"recovery\""), 1, "{:?}", sink.seen());
    let mut expected: Vec<String> = local.iter().flat_map(|n| [n.clone(), format!("{n}.sha256")]).collect();
    expected.sort();
    assert_eq!(o.remote_names(), expected, "{}", stderr(&second));
    let log = stderr(&second);
    let at: Vec<Option<usize>> = local.iter().map(|n| log.find(&format!("uploading {n}"))).collect();
    assert!(at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]), "oldest first: {log}");
    assert_eq!(o.offsite_status(&local[0]).as_deref(), Some("caught_up"));
    assert_eq!(o.offsite_status(&local[1]).as_deref(), Some("caught_up"));
    assert_eq!(o.offsite_status(&local[2]).as_deref(), Some("uploaded"));
    for n in &local {
        assert_eq!(sha(&o.remote_bytes(n)), sha(&std::fs::read(o.storage().join(n)).unwrap()));
    }
    crate::support::drill::record(
        DRILL,
        started,
        &format!(
            "2 runs with the store down: exit 0 each, local archives kept, offsite `failed`, 1 `offsite_failed` \
             alert naming bucket and endpoint (the second run: `not alerted again`), pings end on /fail; store \
             back: {} objects uploaded oldest first (caught_up, caught_up, uploaded), byte-identical, 1 recovery \
             notice; no access key in stderr or alert",
            local.len()
        ),
    );
}

/// The store goes away in the middle of a multipart upload: the third
/// part's request is held (a proxy in front of the real SeaweedFS stops
/// forwarding when it sees `partNumber=3`), then every connection is cut
/// and the port closed, as when the store's host goes down. The proxy is
/// the fault injector (a real store cannot be stopped at an exact part);
/// the store behind it is real.
// covers: FR-29.4, FR-29.5
#[test]
fn a_store_stopped_mid_multipart_upload_keeps_the_local_archive_and_the_next_run_catches_up() {
    const DRILL: &str =
        "offsite::a_store_stopped_mid_multipart_upload_keeps_the_local_archive_and_the_next_run_catches_up";
    if !s3::available() {
        return;
    }
    let drill = crate::support::drill::start(DRILL);
    let sink = HttpSink::start();
    let alerts = format!("[alerts]\nwebhook_url = \"{0}/hook\"\n", sink.url);
    // ~30 MB of archive in 5 MiB parts: the cut comes with parts already stored.
    let o = Offsite::new("midpart", 850_000, "part_size_mb = 5", &alerts);
    let upstream: std::net::SocketAddr = weed().endpoint.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream);
    let through = format!("http://127.0.0.1:{}", proxy.port());
    o.set_endpoint(&through);
    proxy.freeze_on(Trigger::on("partNumber=3"));
    let started = std::time::Instant::now();
    let child = o
        .command(&["backup"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(proxy.wait_triggered(Duration::from_secs(120)), "the upload never reached its third part");
    drop(proxy);
    let first = child.wait_with_output().unwrap();
    let took = started.elapsed();
    assert_exit(&first, 0);
    let err = stderr(&first);
    let local = o.local_archives();
    assert_eq!(local.len(), 1, "the local archive is kept: {err}");
    assert!(err.contains("the offsite copy failed, the local archive is kept"), "{err}");
    assert!(err.contains(&through), "names the endpoint: {err}");
    assert_eq!(o.offsite_status(&local[0]).as_deref(), Some("failed"));
    let hooks = sink.wait_for(1, Duration::from_secs(10));
    assert!(hooks.iter().any(|h| h.body.contains("offsite_failed") && h.body.contains(&local[0])), "{hooks:?}");
    assert!(!err.contains(SECRET_KEY), "the secret leaked");
    // No object under the archive's name: an interrupted multipart upload is never a copy.
    assert!(o.remote_names().is_empty(), "{:?}", o.remote_names());
    let verify = o.cmd(&["verify", o.storage().join(&local[0]).to_str().unwrap()]);
    assert_exit(&verify, 0);
    assert!(took < Duration::from_secs(120), "the failed upload took {took:?}");

    // The store is back: the next run uploads the interrupted archive, then its own.
    o.set_endpoint(&weed().endpoint);
    let second = o.cmd(&["backup"]);
    assert_exit(&second, 0);
    let local = o.local_archives();
    assert_eq!(local.len(), 2);
    assert_eq!(o.offsite_status(&local[0]).as_deref(), Some("caught_up"));
    assert_eq!(o.offsite_status(&local[1]).as_deref(), Some("uploaded"));
    for n in &local {
        assert_eq!(sha(&o.remote_bytes(n)), sha(&std::fs::read(o.storage().join(n)).unwrap()), "{n}");
    }
    let size = std::fs::metadata(o.storage().join(&local[0])).unwrap().len();
    crate::support::drill::record(
        DRILL,
        drill,
        &format!(
            "a {:.1} MB archive, cut at its third 5 MiB part: backup exit 0 after {:.1} s, local archive kept and \
             verifies, offsite `failed`, `offsite_failed` alert naming the archive, 0 objects in the store; store \
             back: both archives uploaded (caught_up, uploaded), byte-identical",
            size as f64 / 1e6,
            took.as_secs_f64()
        ),
    );
}

fn name_days_ago(days: i64) -> String {
    let t = chrono::Utc::now() - chrono::Duration::days(days);
    format!("critical_backup_{}.tar.gz", t.format("%Y%m%d_%H%M%S"))
}

// covers: FR-29.7
#[test]
fn remote_retention_keeps_the_newest_good_copies_and_deletes_only_after_a_successful_run() {
    if !s3::available() {
        return;
    }
    let o = Offsite::new("retention", 20, "retention_days = 1\nkeep_last = 3", "");
    // Nine older copies in the store (2..=10 days old), each with its SHA-256.
    let planted: Vec<String> = (2..=10).map(name_days_ago).collect();
    for n in &planted {
        weed().put(&o.bucket, &format!("{PREFIX}/{n}"), b"old copy");
        weed().put(&o.bucket, &format!("{PREFIX}/{n}.sha256"), format!("{}  {n}\n", sha(b"old copy")).as_bytes());
    }
    // A failing run deletes nothing.
    let failed = o.cmd(&["backup", "--database-url", "postgres://nobody@127.0.0.1:1/gone"]);
    assert_exit(&failed, 2);
    assert_eq!(o.remote_names().len(), 18);

    let ok = o.backup_uploaded();
    let local = o.local_archives();
    // 10 copies, keep_last = 3: this run's and the two newest planted ones stay.
    let mut expected: Vec<String> = [local[0].clone(), planted[0].clone(), planted[1].clone()]
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}.sha256")])
        .collect();
    expected.sort();
    assert_eq!(o.remote_names(), expected, "{}", stderr(&ok));
}

// covers: FR-29.9
#[test]
fn plan_checks_the_bucket_and_wrong_keys_or_a_missing_bucket_name_bucket_and_endpoint_without_the_secret() {
    if !s3::available() {
        return;
    }
    let o = Offsite::new("plan", 5, "", "");
    let ok = o.cmd(&["plan"]);
    assert_exit(&ok, 0);
    let err = stderr(&ok);
    assert!(
        err.contains(&format!("s3://{}/{PREFIX}/ at {} is reachable and writable", o.bucket, weed().endpoint))
            && err.contains("credentials: the config file's [remote] access_key_id"),
        "{err}"
    );
    assert!(o.remote_names().is_empty(), "the probe object is deleted again");

    let text = std::fs::read_to_string(&o.config).unwrap();
    let wrong = "wrong-secret-9d8c7b";
    for (what, changed) in [
        ("wrong secret", text.replace(SECRET_KEY, wrong)),
        ("missing bucket", text.replace(&format!("s3://{}/", o.bucket), "s3://lb-no-such-bucket-x/")),
    ] {
        std::fs::write(&o.config, &changed).unwrap();
        let bad = o.cmd(&["plan"]);
        let err = stderr(&bad);
        assert_ne!(bad.status.code(), Some(0), "{what}: {err}");
        let bucket = if what == "missing bucket" { "lb-no-such-bucket-x" } else { o.bucket.as_str() };
        assert!(err.contains(&format!("s3://{bucket}/")) && err.contains(&weed().endpoint), "{what}: {err}");
        assert!(!err.contains(SECRET_KEY) && !err.contains(wrong), "{what}: the secret leaked: {err}");
    }
}

// covers: FR-29.6
#[test]
fn a_presigned_link_returns_the_identical_file_and_a_tampered_or_expired_one_is_refused() {
    if !s3::available() {
        return;
    }
    let bucket = weed().bucket("presign");
    let toml = weed().remote_toml(&bucket, PREFIX, "");
    let config = lifeboat::config::resolve(
        Some((std::path::Path::new("x.toml"), &toml)),
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    let store = lifeboat::store::s3::RemoteStore::from_config(&config.remote).unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("critical_backup_20261201_020000.tar.gz");
    let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&file, &data).unwrap();
    let name = "critical_backup_20261201_020000.tar.gz";
    lifeboat::store::Archives::put(&store, &file, name, &|_| {}).unwrap();

    let get = |url: &str| -> (u16, Vec<u8>) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut r = agent.get(url).call().unwrap();
        (r.status().as_u16(), r.body_mut().with_config().limit(u64::MAX).read_to_vec().unwrap())
    };
    let link = store.presigned_get(name, Duration::from_secs(3600)).unwrap();
    assert!(!link.capped && !link.url.contains(SECRET_KEY));
    let (status, body) = get(&link.url);
    assert_eq!(status, 200);
    assert_eq!(sha(&body), sha(&data), "the presigned download differs from the file");

    // One hex digit of the signature changed.
    let at = link.url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = link.url.clone().into_bytes();
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    let (status, _) = get(&String::from_utf8(tampered).unwrap());
    assert_eq!(status, 403, "a tampered link must be refused");

    let short = store.presigned_get(name, Duration::from_secs(1)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (status, _) = get(&short.url);
    assert_eq!(status, 403, "an expired link must be refused");

    let long = store.presigned_get(name, Duration::from_secs(30 * 24 * 3600)).unwrap();
    assert!(long.capped && long.valid_for == Duration::from_secs(7 * 24 * 3600));
}

// covers: FR-29.8, FR-7.14
#[test]
fn verify_and_restore_read_an_s3_archive_straight_from_the_store() {
    if !s3::available() {
        return;
    }
    let o = Offsite::new("from_s3", 300, "", "");
    o._db.exec(
        "CREATE TABLE notes (id int PRIMARY KEY, blob_id int NOT NULL REFERENCES blobs(id), body text);
         INSERT INTO notes SELECT g, 1 + g % 300, 'note ' || g FROM generate_series(1, 120) g",
    );
    o.backup_uploaded();
    let name = o.local_archives().pop().expect("an archive");
    // Only the offsite copy is left; the local store (and its signing key) stays.
    std::fs::remove_file(o.storage().join(&name)).unwrap();
    let url = format!("s3://{}/{PREFIX}/{name}", o.bucket);
    // Run where any local copy would show: nothing may be written there.
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| o.command(args).current_dir(cwd.path()).output().unwrap();

    let verified = run(&["--json", "verify", &url]);
    assert_exit(&verified, 0);
    let v = crate::support::json(&verified);
    assert_eq!(v["archive"], url.as_str(), "{v}");
    assert_eq!(v["signature"]["status"], "valid", "checked against the local store's key: {v}");

    let target = support::fresh_db("from_s3_target");
    let restored = run(&["--json", "restore", &url, "--db", &target.url]);
    assert_exit(&restored, 0);
    let r = crate::support::json(&restored);
    let tables = r["tables"].as_array().expect("table checks");
    assert_eq!(tables.len(), 2, "{r}");
    assert!(tables.iter().all(|t| t["ok"] == true && t["expected"] == t["restored"]), "{r}");
    for t in ["blobs", "notes"] {
        assert_eq!(target.count(t), o._db.count(t), "rows of {t}");
    }
    let fingerprint =
        |db: &TestDb| support::query_fingerprint(&mut db.client(), "SELECT id, body FROM blobs ORDER BY id");
    assert_eq!(fingerprint(&target), fingerprint(&o._db));
    let fks = support::fk_report(&mut target.client());
    assert_eq!(fks.len(), 1, "{fks:?}");
    assert!(fks.iter().all(|(_, valid)| *valid), "{fks:?}");
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "nothing is copied locally");
    assert_eq!(o.local_archives(), Vec::<String>::new());

    // Another bucket than [remote]'s: the credentials are not for it.
    let other = run(&["verify", &format!("s3://some-other-bucket/{PREFIX}/{name}")]);
    assert_exit(&other, 2);
    let err = stderr(&other);
    assert!(err.contains("\"some-other-bucket\"") && err.contains(&format!("\"{}\"", o.bucket)), "{err}");

    // One flipped byte in the stored object: verify refuses it.
    let mut bytes = o.remote_bytes(&name);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    weed().put(&o.bucket, &format!("{PREFIX}/{name}"), &bytes);
    let tampered = run(&["verify", &url]);
    assert_exit(&tampered, 1);
    assert!(stderr(&tampered).contains("archive is damaged"), "{}", stderr(&tampered));

    // A forgery in the bucket (schema.sql runs a program, SHA256SUMS and
    // the manifest recomputed, the signature dropped): refused before the
    // target is touched, with the local store's key trusted through the config.
    let marker = cwd.path().join("pwned");
    let original = tempfile::tempdir().unwrap();
    let copy = original.path().join(&name);
    bytes[mid] ^= 0x01;
    std::fs::write(&copy, &bytes).unwrap();
    let mut m = crate::support::members(&copy);
    let schema = m.iter().find(|(p, _)| p == "database/schema.sql").unwrap().1.clone();
    let mut forged = format!("COPY (SELECT 1) TO PROGRAM 'touch {}';\n", marker.display()).into_bytes();
    forged.extend_from_slice(&schema);
    crate::support::rewrite_consistently(&mut m, "database/schema.sql", forged, None);
    m.retain(|(p, _)| p != "SHA256SUMS.minisig");
    crate::support::write_archive(&copy, &m);
    weed().put(&o.bucket, &format!("{PREFIX}/{name}"), &std::fs::read(&copy).unwrap());
    let forged_target = support::fresh_db("from_s3_forged");
    for args in [vec!["verify", url.as_str()], vec!["restore", url.as_str(), "--db", &forged_target.url]] {
        let o = run(&args);
        assert_exit(&o, 1);
        assert!(stderr(&o).contains("refusing") && stderr(&o).contains("unsigned"), "{args:?}: {}", stderr(&o));
    }
    assert!(!marker.exists(), "the forged COPY … TO PROGRAM ran");
    assert_eq!(forged_target.query_one_i64("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), 0);
}

// covers: FR-29.8
#[test]
fn list_shows_the_remote_copies_beside_the_local_ones() {
    if !s3::available() {
        return;
    }
    let o = Offsite::new("list_remote", 50, "", "");
    o.backup_uploaded();
    // Runs of one second get `…_2`, `…_3` names that sort in run order (FR-12.1): no waiting.
    o.backup_uploaded();
    let [gone, changed]: [String; 2] = o.local_archives().try_into().unwrap();
    // A run while the store is down: its archive has no offsite copy.
    o.set_endpoint(&format!("http://127.0.0.1:{}", support::smtp::free_port()));
    assert_exit(&o.cmd(&["backup"]), 0);
    o.set_endpoint(&weed().endpoint);
    let missing = o.local_archives().pop().unwrap();
    std::fs::remove_file(o.storage().join(&gone)).unwrap();
    let mut bytes = o.remote_bytes(&changed);
    bytes.push(0);
    weed().put(&o.bucket, &format!("{PREFIX}/{changed}"), &bytes);

    let listed = o.cmd(&["--json", "list"]);
    assert_exit(&listed, 0);
    let v = crate::support::json(&listed);
    let row = |name: &str| {
        v["archives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {v}"))
    };
    assert_eq!((row(&gone)["local"].clone(), row(&gone)["remote"].clone()), (false.into(), "present".into()), "{v}");
    assert_eq!(row(&changed)["remote"], "size mismatch", "{v}");
    assert_eq!(row(&changed)["remote_bytes"], bytes.len() as u64, "{v}");
    assert_eq!(row(&missing)["remote"], "missing", "{v}");
    let text = String::from_utf8(o.cmd(&["list"]).stdout).unwrap();
    assert!(text.lines().next().unwrap().ends_with("remote"), "{text}");
    let line = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{text}")).to_string();
    assert!(line(&changed).ends_with("size mismatch") && line(&missing).ends_with("missing"), "{text}");
    assert!(line(&gone).contains("(remote)") && line(&gone).ends_with("present"), "{text}");
}

// covers: FR-29.6, US-1/AC-4
#[test]
fn the_mail_of_an_archive_over_the_attach_limit_links_to_its_presigned_offsite_copy() {
    use crate::support::smtp::{self as mail, Mode, TlsServer};
    if !s3::available() || !mail::require("python3 with aiosmtpd", mail::aiosmtpd_available()) {
        return;
    }
    let password = "Smtp-Offsite-Secret-2w";
    let TlsServer { ca, server } = TlsServer::start(Mode::StartTls, crate::support::smtp::USER, password);
    let secrets = tempfile::tempdir().unwrap();
    // attach_limit_mb = 0: never attached, always linked.
    let email = crate::support::smtp::email_section(
        server.port,
        Mode::StartTls,
        Some(&ca.ca_file),
        password,
        secrets.path(),
        "attach_limit_mb = 0\n",
    );
    let o = Offsite::new("maillink", 2_000, "", &email);
    let b = o.backup_uploaded();
    let local = o.local_archives();
    assert_eq!(local.len(), 1, "{}", stderr(&b));
    let mails = server.wait_for(1, Duration::from_secs(30));
    assert_eq!(mails.len(), 1);
    let parsed = mail_parser::MessageParser::default().parse(&mails[0].raw).unwrap();
    assert!(parsed.attachments().next().is_none(), "over the limit: not attached");
    let text = parsed.body_text(0).expect("a text part").into_owned();
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("http") && w.contains("X-Amz-Signature="))
        .unwrap_or_else(|| panic!("no presigned link in the mail:\n{text}"))
        .trim_end_matches(['.', ',', ')', '>']);
    assert!(url.contains(&o.bucket) && url.contains(&local[0]), "the link names the bucket and the archive: {url}");
    assert!(!text.contains(SECRET_KEY) && !text.contains(password), "no secret in the mail");
    // Fetched with a plain HTTP client, it is the archive, byte for byte,
    // even with the local copy gone (the backup host lost).
    let archive = std::fs::read(o.storage().join(&local[0])).unwrap();
    std::fs::remove_file(o.storage().join(&local[0])).unwrap();
    let mut r = ureq::get(url).call().unwrap();
    let body = r.body_mut().with_config().limit(u64::MAX).read_to_vec().unwrap();
    assert_eq!(sha(&body), sha(&archive), "the linked offsite copy is the archive");
}
