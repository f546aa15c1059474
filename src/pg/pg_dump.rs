//! pg_dump as a child process: finding one that can dump the server, and
//! running it on the exported snapshot for the schema (pre-data) and the
//! constraints (post-data). Its stderr is read concurrently and quoted in
//! any error.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::{DatabaseConfig, KEEPALIVES_IDLE, KEEPALIVES_INTERVAL, KEEPALIVES_RETRIES};
use crate::error::{Error, Result};
use crate::events::Watchdog;

#[derive(Debug, Clone)]
pub struct PgDump {
    pub path: PathBuf,
    /// e.g. `15.20`
    pub version: String,
    pub major: u32,
}

/// Runs `pg_dump --version` and parses `pg_dump (PostgreSQL) 15.20 (Debian …)`.
pub fn probe(path: &Path) -> Option<PgDump> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2)?.to_string();
    let major = version.split(['.', 'b', 'r']).next()?.parse().ok()?;
    Some(PgDump { path: path.to_path_buf(), version, major })
}

/// The configured pg_dump, else the one on PATH when it is new enough, else
/// the newest under `/usr/lib/postgresql/*/bin` (Debian's layout).
pub fn locate(configured: Option<&Path>, server_version: &str, server_major: u32) -> Result<PgDump> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    match configured {
        Some(p) => candidates.push(p.to_path_buf()),
        None => {
            candidates.push(PathBuf::from("pg_dump"));
            let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin/pg_dump"))))
                .collect();
            versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
            candidates.extend(versioned.into_iter().map(|(_, p)| p));
        }
    }
    let found: Vec<PgDump> = candidates.iter().filter_map(|p| probe(p)).collect();
    if let Some(ok) = found.iter().find(|d| d.major >= server_major) {
        return Ok(ok.clone());
    }
    match found.into_iter().max_by_key(|d| d.major) {
        Some(old) => {
            Err(Error::PgDumpTooOld { pg_dump: old.version, server: server_version.to_string(), major: server_major })
        }
        None => Err(Error::PgDumpMissing {
            tried: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            major: server_major,
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Section {
    PreData,
    PostData,
    /// Not a pg_dump section: `pg_dumpall --roles-only --no-role-passwords`
    /// (the pg_dumpall next to the pg_dump), the cluster's roles that the
    /// owners and privileges in the dump name. No snapshot: roles are
    /// cluster-wide, outside any transaction's snapshot.
    Roles,
}

impl Section {
    fn arg(self) -> &'static str {
        match self {
            Section::PreData => "pre-data",
            Section::PostData => "post-data",
            Section::Roles => "roles",
        }
    }
}

/// A pg_dump running in the background, writing into `out`. A guard:
/// dropped before [`Running::finish`] returned (an error or a cancellation
/// elsewhere in the run), it kills and reaps pg_dump, so no path leaves it
/// holding locks on the source.
pub struct Running {
    child: std::process::Child,
    stderr: Option<std::thread::JoinHandle<String>>,
    section: Section,
    out: Option<tempfile::NamedTempFile>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            tracing::debug!(section = self.section.arg(), "stopping pg_dump");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Its stderr ends with it; the thread must not outlive the run.
        if let Some(t) = self.stderr.take() {
            let _ = t.join();
        }
    }
}

/// Starts pg_dump for one section on the snapshot, on a server of
/// `server_version_num`. The password goes through the environment, never
/// the command line (where `ps` would show it).
pub fn start(
    pg_dump: &PgDump,
    db: &DatabaseConfig,
    (snapshot_id, server_version_num): (&str, i32),
    section: Section,
    tmp_dir: &Path,
) -> Result<Running> {
    let out = tempfile::Builder::new()
        .prefix(".lifeboat-pgdump-")
        .tempfile_in(tmp_dir)
        .map_err(|e| Error::io("creating a temporary file in", tmp_dir, e))?;
    let stdout = out.reopen().map_err(|e| Error::io("opening", out.path(), e))?;
    // `pg_dump` alone (found on PATH) gives `pg_dumpall`, found there too.
    let program = match section {
        Section::Roles => pg_dump.path.with_file_name("pg_dumpall"),
        _ => pg_dump.path.clone(),
    };
    let mut cmd = command(&program, db, (snapshot_id, server_version_num), section);
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(Stdio::piped());
    tracing::debug!(program = %program.display(), section = section.arg(), "starting pg_dump");
    let mut child = cmd.spawn().map_err(|e| Error::io("starting", &program, e))?;
    let mut err = child.stderr.take().expect("piped");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Ok(Running { child, stderr: Some(stderr), section, out: Some(out) })
}

/// The pg_dump (or pg_dumpall) command for one section: connection and
/// TLS settings in the environment (the password too, never an argument),
/// with the server-side TCP limits of the run's sessions (`sessions`) as
/// startup options, the snapshot, the section and the lock wait bound
/// (FR-14.3) as arguments.
fn command(program: &Path, db: &DatabaseConfig, (snapshot_id, server_num): (&str, i32), section: Section) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(k);
        }
    }
    cmd.env("PGHOST", &db.host)
        .env("PGPORT", db.port.to_string())
        .env("PGDATABASE", &db.name)
        .env("PGUSER", &db.user)
        .env("PGAPPNAME", super::sessions::PG_DUMP_APP)
        .env("PGOPTIONS", super::sessions::pg_dump_options(db, server_num))
        .env("PGCONNECT_TIMEOUT", connect_timeout_secs(db).to_string())
        // The same TLS as lifeboat's own connection (libpq implements every mode).
        .env("PGSSLMODE", db.sslmode.as_str());
    for (var, path) in [("PGSSLROOTCERT", &db.sslrootcert), ("PGSSLCERT", &db.sslcert), ("PGSSLKEY", &db.sslkey)] {
        if let Some(p) = path {
            cmd.env(var, p);
        }
    }
    if let Some(p) = &db.password {
        cmd.env("PGPASSWORD", p.expose());
    }
    // Host, database and user come from the environment above; these are
    // settings libpq takes from a connection string only. No password.
    cmd.arg(format!("--dbname={}", conninfo(db)));
    if section == Section::Roles {
        // Without passwords it reads pg_roles, which every role may: no
        // superuser needed.
        cmd.arg(format!("--database={}", db.name)).args(["--roles-only", "--no-role-passwords"]);
    } else {
        // Owners and privileges are kept: a restore re-applies them
        // (`restore --no-owner` leaves them out).
        cmd.arg(format!("--snapshot={snapshot_id}"))
            .arg(format!("--section={}", section.arg()))
            .arg(format!("--lock-wait-timeout={}", db.lock_timeout.approx_duration().as_millis()))
            .arg("--format=plain");
    }
    cmd.args(["--no-password", "--encoding=UTF8"]);
    cmd
}

/// libpq's connect_timeout is whole seconds (and 1 is its minimum).
fn connect_timeout_secs(db: &DatabaseConfig) -> u64 {
    db.connect_timeout.approx_duration().as_secs_f64().ceil().max(1.0) as u64
}

/// The connection string pg_dump gets: the whole connection setup bounded
/// by `connect_timeout` (libpq's covers the startup and authentication,
/// not only the TCP connect) and the keepalives of lifeboat's own
/// connections.
fn conninfo(db: &DatabaseConfig) -> String {
    format!(
        "connect_timeout={} keepalives=1 keepalives_idle={} keepalives_interval={} keepalives_count={KEEPALIVES_RETRIES}",
        connect_timeout_secs(db),
        KEEPALIVES_IDLE.as_secs(),
        KEEPALIVES_INTERVAL.as_secs()
    )
}

/// Whether running pg_dump again later may succeed, from what it wrote on
/// stderr. Refusals only a person can fix — rights, a missing object, a
/// wrong or missing password, a server pg_dump cannot handle — are not;
/// anything else (a refused or lost connection, a timeout, a conflicting
/// lock, a server starting up) is.
pub fn retryable(stderr: &str) -> bool {
    const PERMANENT: &[&str] = &[
        "permission denied",
        "must be owner",
        "does not exist",
        "authentication failed",
        "no pg_hba.conf entry",
        "no password supplied",
        "server version mismatch",
    ];
    let s = stderr.to_ascii_lowercase();
    !PERMANENT.iter().any(|p| s.contains(p))
}

impl Running {
    /// Waits for pg_dump, feeding the watchdog with its output size and
    /// killing it if the watchdog fires or the run is cancelled. Returns the
    /// file it wrote.
    pub fn finish(self, watchdog: &Watchdog) -> Result<tempfile::NamedTempFile> {
        self.finish_keeping(watchdog, &mut || Ok(()))
    }

    /// [`finish`](Running::finish), calling `keep` while it waits (to keep
    /// the snapshot connection alive); its error ends the wait, and pg_dump.
    pub fn finish_keeping(
        mut self,
        watchdog: &Watchdog,
        keep: &mut dyn FnMut() -> Result<()>,
    ) -> Result<tempfile::NamedTempFile> {
        let mut seen = 0u64;
        let status = loop {
            if let Some(status) = self.child.try_wait().map_err(|e| Error::io("waiting for", "pg_dump", e))? {
                break status;
            }
            keep()?;
            if watchdog.interrupted() {
                let _ = self.child.kill();
                let _ = self.child.wait();
                watchdog.check()?;
            }
            let len = self.out.as_ref().expect("until finished").as_file().metadata().map(|m| m.len()).unwrap_or(0);
            if len != seen {
                watchdog.tick(len - seen.min(len));
                seen = len;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = self.stderr.take().expect("once").join().unwrap_or_default();
        if !status.success() {
            return Err(Error::PgDump {
                section: self.section.arg().into(),
                status: status.to_string(),
                retryable: retryable(&stderr),
                stderr: stderr.trim_end().to_string(),
            });
        }
        Ok(self.out.take().expect("once"))
    }
}

/// pg_dump ≥ 15.14 (and the matching minors of other majors) brackets plain
/// dumps with `\restrict KEY` / `\unrestrict KEY`: psql meta-commands, not
/// SQL. The archive keeps them (psql needs them for its protection); code
/// that sends a dump to the server as SQL skips exactly these lines.
pub fn is_restrict_line(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    matches!(parts.next(), Some("\\restrict" | "\\unrestrict"))
        && parts.next().is_some_and(|k| k.chars().all(|c| c.is_ascii_alphanumeric()))
        && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: TS-1.4
    #[test]
    fn knows_only_restrict_meta_commands() {
        assert!(is_restrict_line("\\restrict AbC123") && is_restrict_line("\\unrestrict AbC123"));
        for not in ["\\restrict", "\\restrict a b", "\\connect db", "INSERT INTO t VALUES ('\\restrict x')"] {
            assert!(!is_restrict_line(not), "{not}");
        }
    }

    // covers: FR-14.7
    #[test]
    fn a_pg_dump_older_than_the_server_is_named_with_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("pg_dump");
        // A stand-in binary: a real old pg_dump is not installable next to 15 here.
        std::fs::write(&fake, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.9'\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = locate(Some(&fake), "16.2", 16).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(msg.contains("14.9") && msg.contains("16.2") && msg.contains("postgresql-client-16"), "{msg}");
        let err = locate(Some(&dir.path().join("missing")), "15.4", 15).unwrap_err().to_string();
        assert!(err.contains("not found") && err.contains("postgresql-client-15"), "{err}");
    }

    // covers: FR-14.14
    #[test]
    fn pg_dump_failures_are_retryable_only_when_trying_again_can_help() {
        let permanent = [
            "pg_dump: error: query failed: ERROR:  permission denied for table secrets",
            "pg_dump: error: connection to server at \"db\" (10.0.0.2), port 5432 failed: FATAL:  password authentication failed for user \"backup\"",
            "pg_dump: error: connection to server at \"db\", port 5432 failed: FATAL:  database \"gone\" does not exist",
            "pg_dump: error: connection to server at \"db\", port 5432 failed: FATAL:  no pg_hba.conf entry for host \"10.0.0.9\"",
            "pg_dump: error: connection to server at \"db\", port 5432 failed: fe_sendauth: no password supplied",
            "pg_dump: error: aborting because of server version mismatch",
            "pg_dump: error: query failed: ERROR:  must be owner of table t",
        ];
        for s in permanent {
            assert!(!retryable(s), "{s}");
        }
        let transient = [
            "pg_dump: error: connection to server at \"db\" (10.0.0.2), port 5432 failed: Connection refused",
            "pg_dump: error: connection to server at \"db\", port 5432 failed: timeout expired",
            "pg_dump: error: query failed: server closed the connection unexpectedly",
            "pg_dump: error: query failed: ERROR:  canceling statement due to lock timeout",
            "pg_dump: error: connection to server failed: FATAL:  the database system is starting up",
            "pg_dump: error: query failed: FATAL:  terminating connection due to administrator command",
        ];
        for s in transient {
            assert!(retryable(s), "{s}");
        }
        let e = Error::PgDump {
            section: "pre-data".into(),
            status: "exit status: 1".into(),
            stderr: permanent[0].into(),
            retryable: false,
        };
        assert!(!e.is_retryable());
    }

    // covers: FR-14.12
    #[test]
    fn pg_dump_gets_the_connect_timeout_and_keepalives_and_no_password_on_its_command_line() {
        let db = DatabaseConfig {
            connect_timeout: "3s".parse().unwrap(),
            password: Some(crate::config::Secret::new("Sekrit")),
            ..Default::default()
        };
        let c = conninfo(&db);
        assert_eq!(c, "connect_timeout=3 keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3");
        assert!(!c.contains("Sekrit"));
    }

    // covers: FR-14.3, FR-14.12
    #[test]
    fn pg_dump_waits_for_locks_no_longer_than_lock_timeout_and_gets_the_password_only_by_environment() {
        let db = DatabaseConfig {
            lock_timeout: "2s".parse().unwrap(),
            password: Some(crate::config::Secret::new("Sekrit")),
            ..Default::default()
        };
        let cmd = command(Path::new("/usr/bin/pg_dump"), &db, ("00000003-1B", 150004), Section::PreData);
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.contains(&"--lock-wait-timeout=2000".to_string()), "{args:?}");
        assert!(args.contains(&"--snapshot=00000003-1B".to_string()), "{args:?}");
        assert!(!args.iter().any(|a| a.contains("Sekrit")), "no password among the arguments: {args:?}");
        let env: Vec<_> = cmd.get_envs().filter_map(|(k, v)| Some((k.to_str()?, v?.to_str()?))).collect();
        assert!(env.contains(&("PGPASSWORD", "Sekrit")));
        let options = env.iter().find(|(k, _)| *k == "PGOPTIONS").map(|(_, v)| *v).unwrap_or_default();
        assert!(options.contains("-c tcp_user_timeout=305000"), "the server-side limit of FR-14.15: {options}");
        // pg_dumpall (roles) takes no snapshot and no lock wait: it reads only pg_roles.
        let roles = command(Path::new("/usr/bin/pg_dumpall"), &db, ("x", 150004), Section::Roles);
        assert!(!roles.get_args().any(|a| a.to_string_lossy().starts_with("--lock-wait-timeout")));
    }
}
