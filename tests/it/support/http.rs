//! HTTP from the client side: `lifeboat serve` as a process, the HTTP app
//! in-process (`lifeboat::http::serve` on 127.0.0.1:0), GET with ureq
//! (statuses are results, not errors), basic auth.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat::config::Config;

/// A running `lifeboat serve`; SIGTERM and reaped on drop.
pub struct Serve {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`
    pub origin: String,
    log: Arc<Mutex<String>>,
}

impl Serve {
    pub fn start(config: &Path) -> Serve {
        let mut child = super::lifeboat()
            .args(["--config", config.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start lifeboat serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("http://127.0.0.1:") {
                    let port: String = line[at + 17..].chars().take_while(char::is_ascii_digit).collect();
                    let _ = tx.send(format!("http://127.0.0.1:{port}"));
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let origin = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("lifeboat serve did not report its address:\n{}", log.lock().unwrap());
            }
        };
        Serve { child: Some(child), origin, log }
    }

    /// stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) for a stderr line with every one of `parts`: the
    /// server writes its log line while the client may already be done.
    pub fn wait_for_line(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.to_string();
            }
            assert!(Instant::now() < deadline, "no log line with {parts:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status (within 10 s).
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        terminate(&mut child).unwrap_or_else(|| panic!("lifeboat serve did not stop on SIGTERM:\n{}", self.log()))
    }
}

fn terminate(child: &mut Child) -> Option<std::process::ExitStatus> {
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
    }
}

pub struct Got {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// GET with ureq; statuses are results, not errors.
pub fn get(url: &str) -> Got {
    get_with(url, &[])
}

/// GET with extra request headers (`Authorization`, …).
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Got {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut req = agent.get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let headers =
        resp.headers().iter().map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = resp.body_mut().with_config().limit(u64::MAX).read_to_vec().unwrap();
    Got { status: resp.status().as_u16(), headers, body }
}

/// The app on 127.0.0.1:0 in its own runtime thread; stopped on drop.
pub struct App {
    pub origin: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl App {
    pub fn start(config: Config, next_run: Option<DateTime<Utc>>) -> App {
        Self::start_with(config, next_run, lifeboat::http::app)
    }

    /// `routes` is `http::app` or `http::metrics_app`.
    pub fn start_with(
        config: Config,
        next_run: Option<DateTime<Utc>>,
        routes: fn(lifeboat::http::AppState) -> axum::Router,
    ) -> App {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let downloads = lifeboat::http::download::Downloads::from_config(&config).ok();
                // The sender lives as long as the server: a daemon's scheduler would publish here.
                let (_next_tx, next_rx) = tokio::sync::watch::channel(next_run);
                let limits = lifeboat::http::Limits::new(&config.http, None);
                let state = lifeboat::http::AppState::new(std::sync::Arc::new(config), next_rx, downloads);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                lifeboat::http::serve(listener, routes(state), limits, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the app did not bind");
        App { origin: format!("http://{addr}"), stop: Some(stop), thread: Some(thread) }
    }

    pub fn get(&self, path: &str) -> Got {
        get(&format!("{}{path}", self.origin))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(|t| t.join());
    }
}

pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}
