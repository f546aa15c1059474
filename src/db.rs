//! PostgreSQL plumbing shared by every step: connecting, quoting, turning
//! driver errors into messages that name the server's own words, and the
//! exported snapshot every part of a backup reads from.

use postgres::{Client, NoTls};

use crate::config::DatabaseConfig;
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
    move |e| {
        // Connection-level trouble (no SQLSTATE, or class 08 / 57P) is worth retrying.
        let retryable = match sqlstate(&e) {
            None => true,
            Some(s) => s.starts_with("08") || s.starts_with("57P") || s == "40001" || s == "55P03",
        };
        Error::Db { context, message: pg_message(&e), retryable }
    }
}

pub fn connect(db: &DatabaseConfig) -> Result<Client> {
    connect_with(
        &db.client_config(),
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
pub fn connect_with(config: &postgres::Config, target: &str, hint: &str) -> Result<Client> {
    config.connect(NoTls).map_err(|e| Error::Connect {
        target: target.to_string(),
        message: pg_message(&e),
        // Wrong password, unknown role or database: retrying cannot help.
        retryable: !matches!(sqlstate(&e), Some("28P01" | "28000" | "3D000")),
        hint: hint.to_string(),
    })
}

/// Session settings every lifeboat connection uses, so that text forms of
/// values do not depend on server or role defaults.
pub const SESSION_SETTINGS: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
     SET extra_float_digits = 3; SET standard_conforming_strings = on; SET client_min_messages = warning";

/// One read-only REPEATABLE READ transaction whose snapshot is exported, so
/// pg_dump and every COPY see the same instant.
pub struct Snapshot {
    pub client: Client,
    /// `pg_export_snapshot()`'s id, for `pg_dump --snapshot`.
    pub id: String,
    /// The snapshot's `now()` in UTC, ISO 8601: windows are measured from it.
    pub now: String,
    pub server_version: String,
    pub server_version_num: i32,
    pub database: String,
}

impl Snapshot {
    pub fn open(db: &DatabaseConfig) -> Result<Snapshot> {
        let mut client = connect(db)?;
        let lock_ms = db.lock_timeout.approx_duration().as_millis();
        // row_security = off: a role that RLS would filter gets an error
        // instead of a backup silently missing rows.
        client
            .batch_execute(&format!(
                "{SESSION_SETTINGS}; SET row_security = off; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                 SET LOCAL idle_in_transaction_session_timeout = 0; \
                 SET LOCAL statement_timeout = 0; \
                 SET LOCAL lock_timeout = {lock_ms}"
            ))
            .map_err(db_err("opening the snapshot transaction"))?;
        let row = client
            .query_one(
                "SELECT pg_export_snapshot(), to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                 current_setting('server_version'), current_setting('server_version_num')::int, current_database()",
                &[],
            )
            .map_err(db_err("exporting the snapshot"))?;
        let id: String = row.get(0);
        tracing::debug!(snapshot = %id, server = %row.get::<_, String>(2), "snapshot exported");
        Ok(Snapshot {
            id,
            now: row.get(1),
            server_version: row.get(2),
            server_version_num: row.get(3),
            database: row.get(4),
            client,
        })
    }

    pub fn server_major(&self) -> u32 {
        (self.server_version_num / 10000) as u32
    }

    /// Ends the transaction (and with it the exported snapshot and locks).
    pub fn close(mut self) -> Result<()> {
        self.client.batch_execute("COMMIT").map_err(db_err("closing the snapshot transaction"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-14.9
    #[test]
    fn quoting_doubles_embedded_quotes() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(qualified("public", "users"), r#""public"."users""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
