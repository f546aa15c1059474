//! A real SMTP server for the delivery tests: `smtp_server.py` (aiosmtpd)
//! as a child process speaking STARTTLS, implicit TLS or plain SMTP with
//! AUTH, using a certificate from a test CA made here with `rcgen`. Every
//! message it accepts is saved as the bytes it received.
//!
//! The child is killed and reaped on drop, and exits by itself when its
//! stdin closes (the test process died).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The SMTP account the test servers accept (with the password a test gives).
pub const USER: &str = "backup@example.test";
/// The administrators every test mail goes to.
pub const ADMINS: [&str; 2] = ["admin1@example.test", "admin2@example.test"];
/// The `app_name` of [`email_section`] (Thai: subjects are RFC 2047 encoded).
pub const APP: &str = "ระบบ Smart AI Hub";

/// `[email]` for a test server on `port`: the password in a file in `dir`
/// (as a Docker secret would be), the test CA when given, a short back-off
/// and 3 attempts unless `extra` sets them, and `extra` keys appended.
pub fn email_section(port: u16, mode: Mode, ca: Option<&Path>, password: &str, dir: &Path, extra: &str) -> String {
    let pass_file = dir.join("smtp_pass");
    std::fs::write(&pass_file, format!("{password}\n")).unwrap();
    let ca = ca.map(|c| format!("ca_file = {}\n", super::toml_string(&c.to_string_lossy()))).unwrap_or_default();
    // Short back-off, and 3 tries (not the default 4): the tests count them.
    let backoff = if extra.contains("backoff") { "" } else { "backoff = \"1s\"\n" };
    let backoff = if extra.contains("attempts") { backoff.to_string() } else { format!("{backoff}attempts = 3\n") };
    format!(
        "[email]\nsmtp_host = \"localhost\"\nsmtp_port = {port}\ntls = \"{}\"\nusername = \"{USER}\"\n\
         password_file = {}\nfrom = \"Smart AI Hub Backup <{USER}>\"\nto = [\"{}\", \"{}\"]\n\
 app_name = \"{APP}\"\ntimeout = \"5s\"\n{backoff}{ca}{extra}\n",
        mode.config(),
        super::toml_string(&pass_file.to_string_lossy()),
        ADMINS[0],
        ADMINS[1],
    )
}

/// Whether an external tool the tests need is here. Outside CI a missing
/// tool skips the test (with a note); with `CI` set it fails it, so a CI
/// machine that lacks it can never pass by skipping.
pub fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing and CI is set: run scripts/test, which installs it");
    }
    eprintln!("SKIPPED: {what} is missing (scripts/test installs it; with CI set this fails)");
    false
}

/// Python 3 with aiosmtpd (installed by scripts/test).
pub fn aiosmtpd_available() -> bool {
    require(
        "python3 with aiosmtpd",
        Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    )
}

/// A certificate authority made for one test, and the files it wrote.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca_file: PathBuf,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "lifeboat test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        TestCa { dir, ca_file, ca, ca_key }
    }

    /// A server certificate for these DNS names (and 127.0.0.1), signed by
    /// this CA: (certificate file, key file).
    pub fn server_cert(&self, names: &[&str]) -> (PathBuf, PathBuf) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.subject_alt_names.push(rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let stem = names[0].replace('.', "_");
        let (c, k) = (self.dir.path().join(format!("{stem}.crt")), self.dir.path().join(format!("{stem}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    StartTls,
    Tls,
    Plain,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::StartTls => "starttls",
            Mode::Tls => "tls",
            Mode::Plain => "plain",
        }
    }
    /// The value of `[email] tls` that speaks to this server.
    pub fn config(self) -> &'static str {
        match self {
            Mode::StartTls => "starttls",
            Mode::Tls => "tls",
            Mode::Plain => "none",
        }
    }
}

pub struct SmtpOptions<'a> {
    pub mode: Mode,
    /// 0: any free port.
    pub port: u16,
    pub cert: Option<(&'a Path, &'a Path)>,
    pub user: &'a str,
    pub password: &'a str,
    pub refuse: &'a [&'a str],
}

/// A real SMTP server speaking `mode` with a certificate for `names` from a
/// CA of its own (the client trusts `ca.ca_file`), AUTH as `user`/`password`,
/// refusing the recipients in `refuse`: the set-up of every TLS mail test.
pub struct TlsServer {
    pub ca: TestCa,
    pub server: SmtpServer,
}

impl TlsServer {
    pub fn start(mode: Mode, user: &str, password: &str) -> TlsServer {
        Self::start_with(mode, user, password, &["localhost"], &[])
    }

    pub fn start_with(mode: Mode, user: &str, password: &str, names: &[&str], refuse: &[&str]) -> TlsServer {
        let ca = TestCa::new();
        let (cert, key) = ca.server_cert(names);
        let server =
            SmtpServer::start(&SmtpOptions { mode, port: 0, cert: Some((&cert, &key)), user, password, refuse });
        TlsServer { ca, server }
    }
}

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub raw: Vec<u8>,
    pub rcpt: Vec<String>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

pub struct SmtpServer {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start(o: &SmtpOptions) -> SmtpServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/smtp_server.py");
        let maildir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .args(["--mode", o.mode.arg(), "--port", &o.port.to_string(), "--user", o.user, "--password", o.password])
            .arg("--maildir")
            .arg(maildir.path());
        if let Some((c, k)) = o.cert {
            cmd.arg("--cert").arg(c).arg("--key").arg(k);
        }
        for r in o.refuse {
            cmd.args(["--refuse", r]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start python3 smtp_server.py");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("smtp_server.py did not start: {line:?}")
        });
        SmtpServer { child, _stdin: stdin, port, maildir }
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.maildir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| Received {
                raw: std::fs::read(p).unwrap(),
                rcpt: std::fs::read_to_string(p.with_extension("rcpt"))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect(),
            })
            .collect()
    }

    /// Waits (bounded) until at least `n` messages arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let end = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > end {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (for a server that starts later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
