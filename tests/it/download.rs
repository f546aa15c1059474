//! `lifeboat serve`: the signed download route, driven by a real HTTP
//! client (ureq) and, for paths a client would normalize away, by raw
//! HTTP/1.1 over a TCP socket. The server is the real binary on
//! 127.0.0.1:0; the port is read from its "serving" line.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use lifeboat::deliver::links;

use crate::support::http::{get, Serve};
use crate::support::{self, toml_string};
use crate::support::{sha256, Seeded};

const PUBLIC_URL: &str = "https://hub.example.com/backups";

/// One real backup in a store with `[links]` configured, shared by this
/// module's tests (none of them changes the archive).
fn store() -> &'static (Seeded, PathBuf) {
    static STORE: OnceLock<(Seeded, PathBuf)> = OnceLock::new();
    STORE.get_or_init(|| {
        let s = Seeded::with_config("download", &format!("[links]\npublic_url = {}\n", toml_string(PUBLIC_URL)));
        let report = s.backup();
        let archive = PathBuf::from(report["archive"].as_str().unwrap());
        (s, archive)
    })
}

/// A raw `GET <target> HTTP/1.1`: the target goes on the wire exactly as
/// written (an HTTP client would resolve `..` before sending).
fn raw_status(origin: &str, target: &str) -> (u16, String) {
    let addr = origin.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

/// The store's link key, as the server reads it.
fn link_key(storage: &Path) -> Vec<u8> {
    links::load_or_create_key(None, storage).unwrap().as_bytes().to_vec()
}

fn link_sig_of(url: &str) -> String {
    url.split("sig=").nth(1).unwrap_or_default().to_string()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `origin` + the path of a link signed with the store's key.
fn link(origin: &str, storage: &Path, name: &str, expires: i64) -> String {
    let signed = links::signed_url(PUBLIC_URL, name, expires, &link_key(storage));
    signed.replacen("https://hub.example.com", origin, 1)
}

// covers: FR-18.3, FR-18.6, US-1/AC-4, TS-2.10
#[test]
fn a_signed_link_downloads_the_identical_archive() {
    let (s, archive) = store();
    let name = archive.file_name().unwrap().to_str().unwrap();
    let serve = Serve::start(&s.config);
    let got_url = link(&serve.origin, &s.storage(), name, now() + 600);
    let got = get(&got_url);
    assert_eq!(got.status, 200, "{}", serve.log());
    let bytes = std::fs::read(archive).unwrap();
    assert_eq!(sha256(&got.body), sha256(&bytes), "byte-identical download");
    assert_eq!(got.header("content-length"), Some(bytes.len().to_string().as_str()));
    assert_eq!(got.header("content-disposition"), Some(format!("attachment; filename=\"{name}\"").as_str()));
    assert_eq!(got.header("content-type"), Some("application/gzip"));
    let line = serve.wait_for_line(&[name, "status=200", "client=127.0.0.1:"]);
    assert!(line.contains(&format!("bytes={}", bytes.len())), "{line}");
    let log = serve.log();
    assert!(!log.contains("sig=") && !log.contains(&link_sig_of(&got_url)), "the signature is not logged:\n{log}");
    let status = serve.stop();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
}

// covers: FR-18.2, SC-6.3, TS-2.10
#[test]
fn a_tampered_or_missing_signature_is_403_and_an_expired_link_410() {
    let (s, archive) = store();
    let name = archive.file_name().unwrap().to_str().unwrap();
    let serve = Serve::start(&s.config);
    let good = link(&serve.origin, &s.storage(), name, now() + 600);
    let (path, query) = good.split_once('?').unwrap();
    let sig = query.split("sig=").nth(1).unwrap();
    let expires: i64 = query.trim_start_matches("expires=").split('&').next().unwrap().parse().unwrap();

    let mut flipped = sig.to_string().into_bytes();
    flipped[0] = if flipped[0] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        format!("{path}?expires={expires}&sig={flipped}"),
        format!("{path}?expires={}&sig={sig}", expires + 3600),
        format!("{path}?expires={expires}"),
        format!("{path}?sig={sig}"),
        path.to_string(),
        format!("{path}?expires=soon&sig={sig}"),
    ] {
        let got = get(&bad);
        assert_eq!(got.status, 403, "{bad}");
        assert!(!got.body.starts_with(b"\x1f\x8b"), "no archive bytes with a 403");
    }
    // Properly signed, but in the past.
    let got = get(&link(&serve.origin, &s.storage(), name, now() - 1));
    assert_eq!(got.status, 410);
    assert!(String::from_utf8_lossy(&got.body).contains("expired"));
    serve.wait_for_line(&[name, "status=403", "client=127.0.0.1:"]);
    serve.wait_for_line(&[name, "status=410"]);
}

// covers: FR-18.2, FR-18.5
#[test]
fn only_archives_in_the_store_can_be_served() {
    let (s, archive) = store();
    let storage = s.storage();
    let name = archive.file_name().unwrap().to_str().unwrap();
    // Things in the store that are not archives, and one outside it.
    std::fs::write(storage.join(format!("{name}.partial")), b"half").unwrap();
    std::fs::write(s.dir.path().join("outside.tar.gz"), b"secret").unwrap();
    let serve = Serve::start(&s.config);
    let o = &serve.origin;
    let valid = |n: &str| link(o, &storage, n, now() + 600);

    for n in [
        ".lifeboat.lock",
        ".lifeboat",
        "link_secret",
        ".lifeboat/link_secret",
        &format!("{name}.partial"),
        "../outside.tar.gz",
        "critical_backup_20000101_000000.tar.gz",
        "lifeboat.toml",
        "../lifeboat.toml",
    ] {
        // Signed with the real key: the 404 comes from the name, not the signature.
        let got = get(&valid(n));
        assert_eq!(got.status, 404, "{n}: {}", String::from_utf8_lossy(&got.body));
    }
    // Paths an HTTP client would normalize, sent as they are.
    let q = valid(name).split_once('?').unwrap().1.to_string();
    for target in [
        "/backups/../lifeboat.toml".to_string(),
        format!("/backups/../backups/{name}x?{q}"),
        "/backups/%2e%2e/lifeboat.toml".to_string(),
        "/backups/%2e%2e%2flifeboat.toml".to_string(),
        format!("/backups/..%2F{name}?{q}"),
        "/backups/".to_string(),
        "/backups".to_string(),
        // `/` is the status page (FR-17.4; tests/it/status.rs): it names
        // recorded runs but lists no file and links no archive.
        "/backups/?C=M;O=D".to_string(),
        format!("/{name}?{q}"),
    ] {
        let (status, text) = raw_status(o, &target);
        assert_eq!(status, 404, "{target}: {text}");
        assert!(!text.contains(name), "no listing at {target}: {text}");
    }
    let _ = std::fs::remove_file(storage.join(format!("{name}.partial")));
}

// covers: FR-18.6
#[test]
fn serve_without_public_url_serves_health_but_no_downloads_and_refuses_a_taken_address() {
    let dir = tempfile::tempdir().unwrap();
    let storage = toml_string(&dir.path().join("store").to_string_lossy());
    let config = support::write_config(dir.path(), &format!("[storage]\ndir = {storage}\n"));
    let serve = Serve::start(&config);
    serve.wait_for_line(&["the status page at http://127.0.0.1:", "no downloads ([links] public_url is not set"]);
    let (status, body) = raw_status(&serve.origin, "/healthz");
    assert!(status == 200 || status == 503, "{status}: {body}");
    assert!(body.contains("\"status\""), "{body}");
    let (status, _) = raw_status(&serve.origin, "/backups/critical_backup_20261124_020000.tar.gz");
    assert_eq!(status, 404, "no download route without public_url");
    drop(serve);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = support::write_config(
        dir.path(),
        &format!("[storage]\ndir = {storage}\n[links]\npublic_url = {}\n", toml_string(PUBLIC_URL)),
    );
    let o =
        support::lifeboat().args(["--config", config.to_str().unwrap(), "serve", "--listen", &addr]).output().unwrap();
    crate::support::assert_exit(&o, 2);
    let err = crate::support::stderr(&o);
    assert!(err.contains(&format!("cannot listen on {addr}")) && err.contains("--listen"), "{err}");
}

// covers: FR-18.5, FR-19.1, US-8/AC-1
#[test]
fn with_recipients_only_the_encrypted_copy_is_served() {
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    let s = Seeded::with_config(
        "download_age",
        &format!(
            "[links]\npublic_url = {}\n[encryption]\nrecipients = [{}]\n",
            toml_string(PUBLIC_URL),
            toml_string(&recipient)
        ),
    );
    let archive = PathBuf::from(s.backup()["archive"].as_str().unwrap());
    let name = archive.file_name().unwrap().to_str().unwrap().to_string();
    let age_name = format!("{name}.age");
    lifeboat::crypt::encrypt_file(&archive, &s.storage().join(&age_name), &[recipient]).unwrap();
    let serve = Serve::start(&s.config);

    let plain = get(&link(&serve.origin, &s.storage(), &name, now() + 600));
    assert_eq!(plain.status, 404, "the plaintext archive never leaves the host when encryption is on");
    let got = get(&link(&serve.origin, &s.storage(), &age_name, now() + 600));
    assert_eq!(got.status, 200, "{}", serve.log());
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(got.header("content-disposition"), Some(format!("attachment; filename=\"{age_name}\"").as_str()));
    let plain_bytes = age::decrypt(&id, &got.body).expect("decrypts with the matching identity");
    assert_eq!(sha256(&plain_bytes), sha256(&std::fs::read(&archive).unwrap()));
}
