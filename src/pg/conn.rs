//! PostgreSQL plumbing shared by every step: connecting, quoting, and
//! turning driver errors into messages that name the server's own words.

use super::client::{Client, ConnectError};
use super::tls::Connector;
use crate::config::{DatabaseConfig, SslMode, Target};
use crate::error::{Error, Result};
use crate::events::CancelToken;

/// `"name"` with embedded quotes doubled: safe for any identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `schema.table`, both parts quoted.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// `'text'` with embedded quotes doubled (standard_conforming_strings is on
/// in every supported server, and the session sets it explicitly).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

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
pub fn connect_with(config: &Target, target: &str, hint: &str, cancel: &CancelToken) -> Result<Client> {
    let connector = Connector::new(&config.tls)?;
    let mode = config.tls.mode;
    let failed = |message: String, retryable: bool| {
        // A certificate problem is not fixed by waiting.
        let tls_failure = message.contains("TLS") || message.contains("certificate");
        let hint = match mode {
            _ if !tls_failure => hint.to_string(),
            SslMode::VerifyCa | SslMode::VerifyFull => format!(
                "{hint}: with sslmode={} the server's certificate must be signed by the CA in sslrootcert{}",
                mode.as_str(),
                if mode == SslMode::VerifyFull {
                    " and name the host connected to (or use verify-ca, which does not check the name)"
                } else {
                    ""
                }
            ),
            mode => format!("{hint}: sslmode={} needs a server with TLS enabled (ssl = on)", mode.as_str()),
        };
        Error::Connect { target: target.to_string(), message, retryable: retryable && !tls_failure, hint }
    };
    Client::connect(&config.config, connector, mode, cancel).map_err(|e| match e {
        ConnectError::TimedOut(limit) => failed(
            format!(
                "timed out after {}: the server did not answer (it accepted the connection but never replied, \
                 or never accepted it): is it frozen or overloaded, or is a firewall dropping packets?",
                crate::events::humantime(limit)
            ),
            true,
        ),
        ConnectError::Cancelled => Error::Cancelled { doing: format!("connecting to {target}") },
        ConnectError::Runtime(e) => failed(format!("cannot start the client: {e}"), true),
        ConnectError::Pg(e) if pg_message(&e).ends_with("password missing") => {
            failed("the server asks for a password and none was given".into(), false)
        }
        // Wrong password, unknown role or database: retrying cannot help.
        ConnectError::Pg(e) => failed(pg_message(&e), !matches!(sqlstate(&e), Some("28P01" | "28000" | "3D000"))),
    })
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
