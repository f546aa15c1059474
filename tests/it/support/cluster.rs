//! A throwaway PostgreSQL cluster (`initdb` + `pg_ctl` in a temp dir, on a
//! random port of 127.0.0.1), and where the PostgreSQL binaries are found.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// A PostgreSQL server of our own, for tests that must stop and start it.
///
/// Dropping it stops the server and removes its directory. So does the end
/// of the test process, however it ends: see [`Cluster::start`].
pub struct Cluster {
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    /// `(uid, gid)` the server runs as when we are root (PostgreSQL refuses
    /// to run as root).
    owner: Option<(u32, u32)>,
    /// Holds the write end of the pipe the watcher waits on.
    watcher: Child,
}

impl Cluster {
    /// initdb (trust auth, superuser `postgres`, UTF8, C locale) and start.
    ///
    /// Cleanup does not rely on `Drop`, which never runs for a `static` and
    /// not at all when the process is killed: a watcher shell, in its own
    /// process group so a terminal's Ctrl-C does not reach it, blocks on
    /// `read` from a pipe whose only write end this process holds
    /// (close-on-exec, so no child inherits it). When this process exits for
    /// any reason the kernel closes the pipe, `read` returns, and the watcher
    /// runs `pg_ctl stop -m immediate` and removes the directory. No pid
    /// polling, so no pid-reuse race. `Drop` just closes the pipe early and
    /// waits for the watcher.
    pub fn start() -> Cluster {
        let owner = if running_as_root() { Some(unprivileged_user()) } else { None };
        // As root the server user must reach the directory: $TMPDIR may be
        // under /root, so use /tmp, which every user can traverse.
        let base = if owner.is_some() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-pg-")
            .tempdir_in(&base)
            .unwrap_or_else(|e| panic!("cannot create a temp dir in {}: {e}", base.display()))
            .keep();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("cannot chown {} to {uid}:{gid}: {e}", dir.display()));
        }
        let data = dir.join("data");

        // Watch first, so that even a failed initdb leaves nothing behind.
        let watcher = admin_command("sh", owner)
            .arg("-c")
            .arg(r#"read -r _; "$1" -D "$2" -m immediate -w stop >/dev/null 2>&1; rm -rf "$3""#)
            .arg("lifeboat-pg-watcher")
            .arg(pg_bin("pg_ctl"))
            .arg(&data)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot spawn the cluster watcher (sh)");
        let mut cluster = Cluster { dir, data, port: 0, owner, watcher };

        let out = admin_command(pg_bin("initdb"), owner)
            .arg("-D")
            .arg(&cluster.data)
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"])
            .output()
            .expect("cannot run initdb");
        check("initdb", &out);
        let conf = format!(
            "\n# lifeboat test cluster\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nfull_page_writes = off\nsynchronous_commit = off\nshared_buffers = 32MB\n\
             max_connections = 100\nlogging_collector = off\n",
            cluster.dir.display()
        );
        fs::OpenOptions::new()
            .append(true)
            .open(cluster.data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .expect("cannot append to postgresql.conf");

        // A free port can be taken between our probe and the server's bind
        // (other test processes do the same): try a few.
        for attempt in 1..=5 {
            cluster.port = free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => return cluster,
                Err(e) if attempt == 5 => panic!("{e}"),
                Err(_) => continue,
            }
        }
        unreachable!()
    }

    /// A started cluster where role `lb_pw` (SUPERUSER, so rehearsals may
    /// create databases) must authenticate over TCP with SCRAM and
    /// `password`; it owns the databases `dbs`. The harness's own
    /// `postgres` role keeps trust auth.
    pub fn with_password_role(password: &str, dbs: &[&str]) -> Cluster {
        let cluster = Cluster::start();
        let mut admin = super::connect(&cluster.url("postgres"));
        admin
            .batch_execute(&format!(
                "SET password_encryption = 'scram-sha-256'; CREATE ROLE lb_pw LOGIN SUPERUSER PASSWORD '{password}'"
            ))
            .unwrap();
        for db in dbs {
            admin.batch_execute(&format!("CREATE DATABASE {db} OWNER lb_pw")).unwrap();
        }
        let hba = cluster.data.join("pg_hba.conf");
        let rest = fs::read_to_string(&hba).unwrap();
        fs::write(&hba, format!("host all lb_pw 127.0.0.1/32 scram-sha-256\n{rest}")).unwrap();
        admin.batch_execute("SELECT pg_reload_conf()").unwrap();
        cluster
    }

    /// `postgres://postgres@127.0.0.1:PORT/db`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory: `data/` (PGDATA), `server.log`, the socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the server (fast shutdown: sessions are disconnected), keeping
    /// its data.
    pub fn stop(&self) {
        let out = admin_command(pg_bin("pg_ctl"), self.owner)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .expect("cannot run pg_ctl stop");
        check("pg_ctl stop", &out);
    }

    /// Starts the stopped server again, on the same port.
    pub fn start_again(&self) {
        self.pg_ctl_start().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Writes `contents` to `data/<name>` with `mode`, owned by the server's
    /// user (PostgreSQL refuses a key file others can read).
    pub fn install_file(&self, name: &str, contents: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.data.join(name);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("cannot chmod");
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("cannot chown");
        }
    }

    /// Appends settings to `postgresql.conf` (take effect at [`Self::reload`]).
    pub fn append_conf(&self, text: &str) {
        fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(format!("\n{text}\n").as_bytes()))
            .expect("cannot append to postgresql.conf");
    }

    /// Replaces `pg_hba.conf` and reloads the server.
    pub fn set_hba(&self, text: &str) {
        self.install_file("pg_hba.conf", text.as_bytes(), 0o600);
        self.reload();
    }

    /// Rereads the configuration files (including the `ssl` settings), with
    /// no restart: the port stays taken, so no other test can grab it.
    pub fn reload(&self) {
        let out = admin_command(pg_bin("pg_ctl"), self.owner)
            .arg("-D")
            .arg(&self.data)
            .arg("reload")
            .output()
            .expect("cannot run pg_ctl reload");
        check("pg_ctl reload", &out);
        // The postmaster rereads the file on SIGHUP, asynchronously.
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    /// Stops the postmaster with SIGSTOP until the guard is dropped (SIGCONT).
    /// New connections then complete their TCP handshake in the kernel's
    /// backlog but never get an answer: a frozen or hopelessly overloaded
    /// server. Sessions that already exist keep working (their backends are
    /// separate processes).
    pub fn freeze(&self) -> Frozen {
        let pid = self.postmaster_pid();
        signal(pid, "STOP");
        Frozen { pid }
    }

    /// The first line of `postmaster.pid`.
    fn postmaster_pid(&self) -> u32 {
        let text = fs::read_to_string(self.data.join("postmaster.pid")).expect("cannot read postmaster.pid");
        text.lines().next().and_then(|l| l.trim().parse().ok()).expect("postmaster.pid starts with the pid")
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let log = self.dir.join("server.log");
        let out = admin_command(pg_bin("pg_ctl"), self.owner)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {}", self.port))
            .arg("start")
            .output()
            .map_err(|e| format!("cannot run pg_ctl start: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let log = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        Err(format!(
            "pg_ctl start on port {} failed ({}):\n{}{}\n--- server.log (last lines) ---\n{}",
            self.port,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop(self.watcher.stdin.take());
        let _ = self.watcher.wait();
    }
}

/// A postmaster stopped by [`Cluster::freeze`]; dropping it lets it run
/// again, so the cluster's own cleanup (`pg_ctl stop`) works even when the
/// test panics.
pub struct Frozen {
    pid: u32,
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.pid, "CONT");
    }
}

fn signal(pid: u32, sig: &str) {
    let out = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).output().expect("cannot run kill");
    check(&format!("kill -{sig} {pid}"), &out);
}

/// The path of a PostgreSQL program (`psql`, `pg_dump`, `initdb`, ...).
///
/// Looks in one installation's bin directory first, so that initdb, pg_ctl
/// and pg_dump agree on the version: the directory of a `pg_ctl` on PATH (a
/// server install on PATH: Homebrew, Nix, CI images), else the newest
/// `/usr/lib/postgresql/*/bin` or `/usr/pgsql-*/bin` (Debian and Red Hat
/// packages, which put only client wrappers on PATH); then PATH itself.
pub fn pg_bin(name: &str) -> PathBuf {
    static INSTALL: OnceLock<Option<PathBuf>> = OnceLock::new();
    let install = INSTALL.get_or_init(|| {
        on_path("pg_ctl").and_then(|p| p.parent().map(Path::to_path_buf)).or_else(newest_packaged_bin_dir)
    });
    install.as_ref().map(|dir| dir.join(name)).filter(|p| p.is_file()).or_else(|| on_path(name)).unwrap_or_else(|| {
        panic!(
            "PostgreSQL program {name:?} not found on PATH nor in /usr/lib/postgresql/*/bin: \
                 install the PostgreSQL server package (e.g. apt-get install postgresql)"
        )
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn newest_packaged_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = Vec::new();
    for (parent, prefix) in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
        let Ok(entries) = fs::read_dir(parent) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(version) = name.strip_prefix(prefix) else { continue };
            // "15", "9.6": compare numerically, so 15 beats 9.6.
            let Ok(key) = version.split('.').map(str::parse).collect::<Result<Vec<u32>, _>>() else { continue };
            let bin = entry.path().join("bin");
            if bin.join("pg_ctl").is_file() {
                found.push((key, bin));
            }
        }
    }
    found.into_iter().max().map(|(_, bin)| bin)
}

/// A command for initdb / pg_ctl / the watcher: run as `owner` when given,
/// from `/` (the server user may not be able to read our working
/// directory), without the developer's libpq environment.
fn admin_command(program: impl AsRef<std::ffi::OsStr>, owner: Option<(u32, u32)>) -> Command {
    let mut cmd = super::clean_command(program);
    cmd.current_dir("/");
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
        .port()
}

/// `/proc/self` belongs to the process's effective user: no libc needed.
fn running_as_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// `(uid, gid)` of `postgres` if that user exists, else `nobody`, read from
/// `/etc/passwd` (name:password:uid:gid:...).
fn unprivileged_user() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("running as root but cannot read /etc/passwd");
    let lookup = |user: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                [name, _, uid, gid, ..] if *name == user => Some((uid.parse().ok()?, gid.parse().ok()?)),
                _ => None,
            }
        })
    };
    lookup("postgres")
        .or_else(|| lookup("nobody"))
        .expect("running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as")
}
