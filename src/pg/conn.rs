//! PostgreSQL plumbing shared by every step: connecting, quoting, and
//! turning driver errors into messages that name the server's own words.

use super::client::{Client, ConnectError};
use super::tls::Connector;
use crate::config::{DatabaseConfig, SslMode, Target};
use crate::error::{Error, Result};
use crate::events::CancelToken;

/// SQL quoting is vocabulary the archive format speaks too: it lives in
/// `model` (the bottom floor) and is named here where connections use it.
pub use crate::model::{qualified, quote_ident, quote_literal};

/// What to check when a restore's target cannot be reached, and where its
/// password may come from (SC-4.4). Here, not in `restore`, because the
/// connection error below recognizes it to suggest `--create`.
pub(crate) const RESTORE_DB_HINT: &str = "the --db URL (and, if the server asks for a password, \
     LIFEBOAT_TARGET_PASSWORD_FILE, LIFEBOAT_TARGET_PASSWORD, PGPASSWORD or ~/.pgpass)";

/// The server's message with detail and hint, or the driver's.
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" (detail: {d})"));
            }
            if let Some(w) = db.where_() {
                m.push_str(&format!(" (context: {w})"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!(" (hint: {h})"));
            }
            m
        }
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

/// SQLSTATE of a server error, if any.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// Wraps a driver error with what was being done.
pub fn db_err(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let context = context.into();
    move |e| db_error(context, &e)
}

fn db_error(context: String, e: &tokio_postgres::Error) -> Error {
    // Connection-level trouble (no SQLSTATE, or class 08 / 57P) is worth retrying.
    let retryable = match sqlstate(e) {
        None => true,
        Some(s) => s.starts_with("08") || s.starts_with("57P") || s == "40001" || s == "55P03",
    };
    Error::Db { context, message: pg_message(e), retryable }
}

/// Wraps an I/O error from feeding a COPY. The client reports a failed send
/// (server gone, connection reset) as an `io::Error` holding its own error,
/// which keeps its kind here through [`db_err`] (a lost connection stays
/// retryable); any other I/O error came from the reading side (archive or
/// spool), which trying again does not fix.
pub fn copy_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |e| match e.get_ref().and_then(|inner| inner.downcast_ref::<tokio_postgres::Error>()) {
        Some(pg) => db_error(context, pg),
        None => Error::Failed(format!("{context}: {e}")),
    }
}

pub fn connect(db: &DatabaseConfig, cancel: &CancelToken) -> Result<Client> {
    if !db.configured {
        // No silent default: a backup of whatever listens on localhost
        // as `postgres` is not what anyone asked for (FR-11.1).
        return Err(Error::Refused(
            "no database is configured: set DATABASE_URL (or POSTGRES_HOST, POSTGRES_DB, POSTGRES_USER, or \
             PGHOST, PGDATABASE, PGUSER), pass --database-url, or write [database] url (or host, name, user) in \
             the config file (./lifeboat.toml, --config FILE or LIFEBOAT_CONFIG); `lifeboat init` proposes one"
                .into(),
        ));
    }
    connect_with(
        &Target { config: db.client_config(), tls: db.tls() },
        &db.display_target(),
        "the [database] settings (or DATABASE_URL / POSTGRES_* variables)",
        cancel,
    )
}

/// `host:port/dbname` of a client config, for messages (no password).
pub fn describe(c: &tokio_postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    format!("{host}:{}/{}", c.get_ports().first().copied().unwrap_or(5432), c.get_dbname().unwrap_or("?"))
}

/// Connects with the whole setup (TCP connect, startup, authentication)
/// bounded by the config's connect timeout, ended early by `cancel`;
/// `hint` names what the user set to point here (for the error message).
/// The error's next step follows from what went wrong (FR-14.10): a server
/// that is down, an unknown host, a refused password, a missing database.
pub fn connect_with(config: &Target, target: &str, hint: &str, cancel: &CancelToken) -> Result<Client> {
    let connector = Connector::new(&config.tls)?;
    let mode = config.tls.mode;
    let failed = |message: String, retryable: bool, cause: Cause| {
        // A certificate problem is not fixed by waiting.
        let tls_failure = message.contains("TLS") || message.contains("certificate");
        let next = match mode {
            _ if !tls_failure => next_step(cause, &config.config, hint),
            SslMode::VerifyCa | SslMode::VerifyFull => format!(
                "check {hint}: with sslmode={} the server's certificate must be signed by the CA in sslrootcert{}",
                mode.as_str(),
                if mode == SslMode::VerifyFull {
                    " and name the host connected to (or use verify-ca, which does not check the name)"
                } else {
                    ""
                }
            ),
            mode => format!("check {hint}: sslmode={} needs a server with TLS enabled (ssl = on)", mode.as_str()),
        };
        Error::Connect { target: target.to_string(), message, retryable: retryable && !tls_failure, hint: next }
    };
    Client::connect(&config.config, connector, mode, cancel).map_err(|e| match e {
        ConnectError::TimedOut(limit) => failed(
            format!(
                "timed out after {}: the server did not answer (it accepted the connection but never replied, \
                 or never accepted it): is it frozen or overloaded, or is a firewall dropping packets?",
                crate::events::humantime(limit)
            ),
            true,
            Cause::Down,
        ),
        ConnectError::Cancelled => Error::Cancelled { doing: format!("connecting to {target}") },
        ConnectError::Runtime(e) => failed(format!("cannot start the client: {e}"), true, Cause::Down),
        ConnectError::Pg(e) if pg_message(&e).ends_with("password missing") => {
            failed("the server asks for a password and none was given".into(), false, Cause::NoPassword)
        }
        ConnectError::Pg(e) => {
            let message = pg_message(&e);
            let cause = match sqlstate(&e) {
                Some("28P01") => Cause::WrongPassword,
                Some("28000") if message.contains("does not exist") => Cause::NoRole,
                Some("28000") => Cause::NotAllowed,
                Some("3D000") => Cause::NoDatabase,
                Some("42501") => Cause::NoConnectPrivilege,
                None if host_unknown(&e) => Cause::HostUnknown,
                _ => Cause::Down,
            };
            // Wrong password, unknown role or database: retrying cannot help.
            let retryable = !matches!(
                cause,
                Cause::WrongPassword
                    | Cause::NoRole
                    | Cause::NotAllowed
                    | Cause::NoDatabase
                    | Cause::NoConnectPrivilege
            );
            failed(message, retryable, cause)
        }
    })
}

/// What went wrong connecting, as far as the next step differs.
#[derive(Clone, Copy)]
enum Cause {
    /// Refused, timed out, reset: the server is not there (yet).
    Down,
    HostUnknown,
    NoPassword,
    WrongPassword,
    NoRole,
    /// No `pg_hba.conf` line lets this role in from here.
    NotAllowed,
    NoDatabase,
    NoConnectPrivilege,
}

/// A name-resolution failure: the driver reports it as an I/O error whose
/// text is the resolver's (glibc, musl and macOS word it differently).
fn host_unknown(e: &tokio_postgres::Error) -> bool {
    let text = pg_message(e).to_ascii_lowercase();
    ["lookup address", "name or service not known", "nodename nor servname", "name does not resolve", "no such host"]
        .iter()
        .any(|m| text.contains(m))
}

/// The next step for `cause`, naming the role, database and host of `c`.
fn next_step(cause: Cause, c: &tokio_postgres::Config, hint: &str) -> String {
    let user = c.get_user().unwrap_or("postgres");
    let db = c.get_dbname().unwrap_or(user);
    let (host, port) = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => (h.clone(), c.get_ports().first().copied().unwrap_or(5432)),
        Some(tokio_postgres::config::Host::Unix(p)) => {
            (p.display().to_string(), c.get_ports().first().copied().unwrap_or(5432))
        }
        None => ("localhost".into(), 5432),
    };
    match cause {
        Cause::Down => format!("check that the server is running, then check {hint}"),
        Cause::HostUnknown => format!(
            "the host name {host:?} is unknown here: check the host in {hint}; if the URL's password holds \
             a special character (@ # : / ?), percent-encode it (@ is %40, # is %23, : is %3A, / is %2F, ? is %3F), \
             or part of the password is read as the host"
        ),
        Cause::NoPassword => format!("set the password in {hint}, or in ~/.pgpass (or the file PGPASSFILE names)"),
        Cause::WrongPassword => format!(
            "the server refused the password of role {user:?}: set the right password in {hint} \
             (or set a new one on the server: ALTER ROLE {} PASSWORD '…')",
            quote_ident(user)
        ),
        Cause::NoRole => format!(
            "role {user:?} does not exist on that server: fix the user in {hint}, or create the role \
             (CREATE ROLE {} LOGIN PASSWORD '…')",
            quote_ident(user)
        ),
        Cause::NotAllowed => format!(
            "the server's pg_hba.conf has no line that lets role {user:?} into database {db:?} from here: \
             add one (e.g. host {db} {user} <this machine's address>/32 scram-sha-256), reload the server, \
             then try again; or check {hint}"
        ),
        Cause::NoDatabase => format!(
            "database {db:?} does not exist on that server: create it (createdb -h {host} -p {port} -U {user} {db}{}), \
             or fix the database name in {hint}",
            // A restore can make its own target.
            if hint == RESTORE_DB_HINT { ", or add --create to the restore" } else { "" }
        ),
        Cause::NoConnectPrivilege => format!(
            "role {user:?} may not connect to database {db:?}: GRANT CONNECT ON DATABASE {} TO {}, or check {hint}",
            quote_ident(db),
            quote_ident(user)
        ),
    }
}

/// Session settings every lifeboat connection uses, so that text forms of
/// values do not depend on server or role defaults.
pub const SESSION_SETTINGS: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
     SET extra_float_digits = 3; SET standard_conforming_strings = on; SET client_min_messages = warning";

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-7.9
    #[test]
    fn a_copy_that_loses_its_server_stays_retryable_and_a_bad_source_does_not() {
        // A real driver error without a server: nothing listens on port 1.
        let refused = postgres::Config::new().host("127.0.0.1").port(1).connect(postgres::NoTls).err().unwrap();
        let lost = copy_err("loading rows of public.users")(std::io::Error::other(refused));
        assert!(matches!(lost, Error::Db { .. }) && lost.is_retryable(), "{lost:?}");
        assert!(lost.to_string().starts_with("loading rows of public.users: "), "{lost}");
        let damaged = std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt deflate stream");
        let damaged = copy_err("loading rows of public.users")(damaged);
        assert!(!damaged.is_retryable() && damaged.exit_code() == 1, "{damaged:?}");
        assert!(damaged.to_string().contains("corrupt deflate stream"), "{damaged}");
    }

    // covers: FR-14.9
    #[test]
    fn quoting_doubles_embedded_quotes() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(qualified("public", "users"), r#""public"."users""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    // covers: FR-14.12
    #[test]
    fn a_server_that_accepts_and_never_answers_is_a_retryable_timeout_and_a_cancel_ends_the_wait() {
        // A real socket whose backlog completes the TCP handshake; nobody
        // ever reads the startup packet.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(silent.local_addr().unwrap().port())
            .user("u")
            .dbname("d")
            .connect_timeout(std::time::Duration::from_millis(500));
        let started = std::time::Instant::now();
        let err = connect_with(
            &Target { config: config.clone(), tls: Default::default() },
            "silent",
            "the test",
            &CancelToken::new(),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
        assert!(err.is_retryable() && err.exit_code() == 2, "{err}");
        assert!(err.to_string().contains("timed out after 0.5s: the server did not answer"), "{err}");

        config.connect_timeout(std::time::Duration::from_secs(600));
        let cancel = CancelToken::new();
        let c = cancel.clone();
        let tripper = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            c.cancel();
        });
        let started = std::time::Instant::now();
        let err =
            connect_with(&Target { config: config.clone(), tls: Default::default() }, "silent", "the test", &cancel)
                .map(|_| ())
                .unwrap_err();
        tripper.join().unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
        assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    }
}
