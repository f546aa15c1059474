//! A real HTTP listener on 127.0.0.1 that records every request (method,
//! path, body) and answers 200: the receiving end of webhook and ping
//! channels in the tests.

use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    /// Every header, as (name, value).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct HttpSink {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpSink {
    pub fn start() -> HttpSink {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("cannot bind 127.0.0.1:0"));
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, log) = (server.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            for mut req in s.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let content_type =
                    req.headers().iter().find(|h| h.field.equiv("Content-Type")).map(|h| h.value.as_str().to_string());
                let headers =
                    req.headers().iter().map(|h| (h.field.to_string(), h.value.as_str().to_string())).collect();
                log.lock().unwrap().push(Seen {
                    method: req.method().to_string(),
                    path: req.url().to_string(),
                    content_type,
                    headers,
                    body,
                });
                let _ = req.respond(tiny_http::Response::from_string("OK"));
            }
        });
        HttpSink { url, seen, server, thread: Some(thread) }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` requests arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Seen> {
        let end = Instant::now() + timeout;
        loop {
            let s = self.seen();
            if s.len() >= n || Instant::now() > end {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
