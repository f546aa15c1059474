//! Misbehaving network paths for fault tests, on 127.0.0.1:0 with std
//! threads: a [`Proxy`] that forwards to a real server until it is told to
//! freeze (it then stops forwarding in both directions without closing
//! anything, like a dead NAT entry or a hung middlebox), and a
//! [`SilentListener`] that accepts connections and never says a word.
//!
//! These are the only fakes in the suite: a real link cannot be made to
//! freeze on command, and the freeze is what the tests are about.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the pump and accept threads look at their flags.
const POLL: Duration = Duration::from_millis(20);

/// When a [`Proxy`] freezes by itself.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// Bytes a client sends (a query's text, an application name in the
    /// startup packet) that arm the trigger.
    pub pattern: Vec<u8>,
    /// Once armed, server → client bytes still forwarded before the freeze
    /// (0: freeze at once, before the chunk with the pattern is forwarded).
    pub then_bytes: u64,
    /// Freeze only each connection that sends the pattern (the trigger stays
    /// armed for later ones; the others keep flowing) instead of every
    /// connection, present and future.
    pub each_connection: bool,
}

impl Trigger {
    /// Freeze everything as soon as a client sends `pattern`.
    pub fn on(pattern: &str) -> Trigger {
        Trigger { pattern: pattern.as_bytes().to_vec(), then_bytes: 0, each_connection: false }
    }
}

#[derive(Default)]
struct Shared {
    /// Every connection frozen (by [`Proxy::freeze`] or a global trigger).
    frozen: AtomicBool,
    stop: AtomicBool,
    /// Set once a trigger fired (for tests that wait for the freeze).
    triggered: AtomicBool,
    /// Server → client bytes forwarded, all connections.
    down_bytes: AtomicU64,
    /// The server → client byte count at which everything freezes (0: none).
    freeze_at: AtomicU64,
    trigger: Mutex<Option<Trigger>>,
    connections: AtomicU64,
}

/// A TCP proxy in front of a real server. Dropping it closes everything.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind the proxy on 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, t, st) = (shared.clone(), threads.clone(), streams.clone());
        let accept = std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(POLL);
                        continue;
                    }
                    Err(_) => continue,
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let this_frozen = Arc::new(AtomicBool::new(false));
                for (from, to, up) in [(&client, &server, true), (&server, &client, false)] {
                    let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    let (s, this_frozen) = (s.clone(), this_frozen.clone());
                    t.lock().unwrap().push(std::thread::spawn(move || pump(from, to, up, &s, &this_frozen)));
                }
                st.lock().unwrap().extend([client, server]);
            }
        });
        Proxy { port, shared, threads, streams, accept: Some(accept) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Freezes when `trigger` fires (replacing any earlier trigger).
    pub fn freeze_on(&self, trigger: Trigger) {
        *self.shared.trigger.lock().unwrap() = Some(trigger);
    }

    /// Stops forwarding now, in both directions, on every connection.
    pub fn freeze(&self) {
        self.shared.frozen.store(true, Ordering::SeqCst);
    }

    /// Whether a trigger fired.
    pub fn triggered(&self) -> bool {
        self.shared.triggered.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for a trigger to fire; whether it did.
    pub fn wait_triggered(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while !self.triggered() {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(POLL);
        }
        true
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

/// Copies `from` → `to` until either side closes or the proxy stops;
/// holds still (reads nothing, writes nothing) while frozen. `up`: client →
/// server, where triggers look for their pattern.
fn pump(mut from: TcpStream, mut to: TcpStream, up: bool, s: &Shared, this_frozen: &AtomicBool) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so a pattern split across two reads is seen.
    let mut tail: Vec<u8> = Vec::new();
    let hold = |s: &Shared| {
        while (s.frozen.load(Ordering::SeqCst) || this_frozen.load(Ordering::SeqCst)) && !s.stop.load(Ordering::SeqCst)
        {
            std::thread::sleep(POLL);
        }
    };
    loop {
        hold(s);
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue
            }
            Err(_) => break,
        };
        let chunk = &buf[..n];
        if up {
            let mut trigger = s.trigger.lock().unwrap();
            if let Some(t) = trigger.as_ref() {
                let mut window = std::mem::take(&mut tail);
                window.extend_from_slice(chunk);
                if window.windows(t.pattern.len()).any(|w| w == t.pattern.as_slice()) {
                    if t.each_connection {
                        // Holds this chunk back: the server never sees it.
                        this_frozen.store(true, Ordering::SeqCst);
                        s.triggered.store(true, Ordering::SeqCst);
                    } else {
                        let then = t.then_bytes;
                        *trigger = None;
                        arm_global(s, then);
                    }
                } else {
                    let keep = window.len().saturating_sub(t.pattern.len());
                    tail = window.split_off(keep);
                }
            }
        }
        hold(s);
        if s.stop.load(Ordering::SeqCst) || to.write_all(chunk).is_err() {
            break;
        }
        if !up {
            let total = s.down_bytes.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            let limit = s.freeze_at.load(Ordering::SeqCst);
            if limit != 0 && total >= limit {
                s.frozen.store(true, Ordering::SeqCst);
                s.triggered.store(true, Ordering::SeqCst);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Freezes every connection now, or after `then_bytes` more server → client bytes.
fn arm_global(s: &Shared, then_bytes: u64) {
    if then_bytes == 0 {
        s.frozen.store(true, Ordering::SeqCst);
        s.triggered.store(true, Ordering::SeqCst);
    } else {
        s.freeze_at.store(s.down_bytes.load(Ordering::SeqCst) + then_bytes, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}

/// Accepts TCP connections and never reads or writes: a server whose
/// kernel completes the handshake but whose process never answers.
pub struct SilentListener {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl SilentListener {
    pub fn start() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let accept = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((c, _)) => held.push(c),
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        });
        SilentListener { port, stop, accept: Some(accept) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
    }
}

/// A proxy in front of the test server, and `db`'s URL through it.
pub fn proxied(db: &super::TestDb) -> (Proxy, String) {
    let proxy = Proxy::start(addr_of(&db.url));
    let url = via(&db.url, proxy.port());
    (proxy, url)
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    format!("{host}:{port}").parse().unwrap_or_else(|e| panic!("cannot use {hostport} as a socket address: {e}"))
}

/// `url` pointed at 127.0.0.1:`port`, keeping user and database.
fn via(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    let user = authority.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
    format!("{scheme}://{user}127.0.0.1:{port}/{path}")
}
