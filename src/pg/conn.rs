//! PostgreSQL plumbing shared by every step: connecting, quoting, and
//! turning driver errors into messages that name the server's own words.

use postgres::Client;

use super::tls::Connector;
use crate::config::{DatabaseConfig, SslMode, Target, Tls};
use crate::error::{Error, Result};

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
pub fn pg_message(e: &postgres::Error) -> String {
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
pub fn sqlstate(e: &postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

/// Wraps a driver error with what was being done.
pub fn db_err(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> Error {
    let context = context.into();
    move |e| db_error(context, &e)
}

fn db_error(context: String, e: &postgres::Error) -> Error {
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
    move |e| match e.get_ref().and_then(|inner| inner.downcast_ref::<postgres::Error>()) {
        Some(pg) => db_error(context, pg),
        None => Error::Failed(format!("{context}: {e}")),
    }
}

pub fn connect(db: &DatabaseConfig) -> Result<Client> {
    connect_with(
        &Target { config: db.client_config(), tls: db.tls() },
        &db.display_target(),
        "the [database] settings (or DATABASE_URL / POSTGRES_* variables)",
    )
}

/// `host:port/dbname` of a client config, for messages (no password).
pub fn describe(c: &postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    format!("{host}:{}/{}", c.get_ports().first().copied().unwrap_or(5432), c.get_dbname().unwrap_or("?"))
}

/// `hint` names what the user set to point here (for the error message).
pub fn connect_with(config: &Target, target: &str, hint: &str) -> Result<Client> {
    let connector = Connector::new(&config.tls)?;
    connector.connect(&config.config, config.tls.mode).map_err(|e| {
        let message = pg_message(&e);
        // A certificate problem is not fixed by waiting.
        let tls_failure = message.contains("TLS") || message.contains("certificate");
        let hint = match config.tls.mode {
            _ if !tls_failure => hint.to_string(),
            SslMode::VerifyCa | SslMode::VerifyFull => format!(
                "{hint}: with sslmode={} the server's certificate must be signed by the CA in sslrootcert{}",
                config.tls.mode.as_str(),
                if config.tls.mode == SslMode::VerifyFull {
                    " and name the host connected to (or use verify-ca, which does not check the name)"
                } else {
                    ""
                }
            ),
            mode => format!("{hint}: sslmode={} needs a server with TLS enabled (ssl = on)", mode.as_str()),
        };
        Error::Connect {
            target: target.to_string(),
            message,
            // Wrong password, unknown role or database: retrying cannot help.
            retryable: !tls_failure && !matches!(sqlstate(&e), Some("28P01" | "28000" | "3D000")),
            hint,
        }
    })
}

/// A function that cancels the query running on `client`'s connection, over
/// the same TLS (a server that accepts only TLS refuses a plain cancel request).
pub fn query_canceller(client: &Client, tls: &Tls) -> Result<impl Fn() + Send + 'static> {
    let token = client.cancel_token();
    let connector = Connector::new(tls)?;
    Ok(move || connector.cancel(&token))
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
}
