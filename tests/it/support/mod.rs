//! The integration tests' harness: a real PostgreSQL server and a fresh
//! database per test, the `lifeboat` binary with a scrubbed environment,
//! and the helpers a round trip compares with. No mocks.
//!
//! The server is chosen once per test process: `LIFEBOAT_TEST_DATABASE_URL`
//! (a URL to a maintenance database, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`) if set, else a throwaway
//! [`Cluster`] that is stopped and deleted when the process exits.
//!
//! Layout: `cluster` (initdb/pg_ctl, finding the binaries, freezing the
//! postmaster), `proxy` (a TCP path that freezes on command, a listener that
//! never answers), `compare`
//! (fingerprints, schema dump, FK and sequence reports), `rss` (a child's
//! peak resident memory), `saas` (the
//! fixture and its config), `smtp` (a real SMTP server with a test CA),
//! `http_sink` (a real HTTP listener for webhooks and pings), `browser`
//! (headless Chromium: screenshots and the DOM it built).
//!
//! The steps the test files share live here too, so that no test file
//! imports another: `run` (the binary, its output, bounded runs), `fixture`
//! (seeded databases and stores), `archive` (unpack, rewrite, reseal),
//! `craft` (hostile archives, member by member), `http` (`lifeboat serve`,
//! the in-process app, GET), `drill` (the drills' results table), `rng`
//! (seeded mutations), `config` (one builder for test configs).

#![allow(dead_code, unused_imports, reason = "not every test module uses every helper")]

mod archive;
pub mod browser;
mod cluster;
mod compare;
mod config;
pub mod craft;
pub mod drill;
mod fixture;
pub mod http;
pub mod http_sink;
mod proxy;
pub mod rng;
pub mod rss;
mod run;
pub mod s3;
mod saas;
pub mod smtp;

pub use archive::{
    extract, its_store_key, members, reseal, reseal_signed, rewrite_consistently, sha256, sign_sums, write_archive,
};
pub use cluster::{pg_bin, Cluster, Frozen};
pub use compare::{all_fingerprints, fk_report, query_fingerprint, schema_dump, sequence_values, table_fingerprint};
pub use config::TestConfig;
pub use fixture::{big_db, full_disk_and_big_db, small_archive, small_store_in, stored_in, tiny_db, Seeded, SmallFs};
pub use proxy::{proxied, Proxy, SilentListener, Trigger};
pub use run::{
    assert_exit, backup_with, json, on_a_terminal, pg_dumps_for, run, run_bounded, run_bounded_with, run_with, stderr,
    Bounded,
};
pub use saas::{saas_config, saas_sql_path, seed_saas, toml_string, SAAS_CONFIG_SCOPE, SAAS_EXPECTED_ROWS, SAAS_SQL};

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use postgres::{Client, NoTls, SimpleQueryMessage};

/// The server every [`fresh_db`] lives on.
pub struct Server {
    kind: ServerKind,
}

enum ServerKind {
    /// From `LIFEBOAT_TEST_DATABASE_URL`: the maintenance database's URL.
    External(String),
    Throwaway(Cluster),
}

impl Server {
    /// URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        match &self.kind {
            ServerKind::External(url) => with_database(url, db),
            ServerKind::Throwaway(cluster) => cluster.url(db),
        }
    }

    /// URL of the maintenance database (where CREATE/DROP DATABASE run).
    pub fn admin_url(&self) -> String {
        match &self.kind {
            ServerKind::External(url) => url.clone(),
            ServerKind::Throwaway(cluster) => cluster.url("postgres"),
        }
    }
}

/// The test process's server, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("LIFEBOAT_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Server { kind: ServerKind::External(url.trim().to_string()) },
        _ => Server { kind: ServerKind::Throwaway(Cluster::start()) },
    })
}

/// A database of its own for one test, dropped (`WITH (FORCE)`) on Drop.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

/// Creates an empty database `lb_<hint>_<pid>_<n>` (UTF8, C collation, from
/// template0) on [`server()`].
pub fn fresh_db(hint: &str) -> TestDb {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let hint: String =
        hint.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(32).collect();
    let name = format!("lb_{hint}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let server = server();
    // template0: nobody is ever connected to it, so concurrent creates
    // cannot fail with "source database is being accessed by other users".
    let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'");
    connect(&server.admin_url()).batch_execute(&sql).unwrap_or_else(|e| panic!("{}", pg_error(&e, &sql)));
    TestDb { url: server.url(&name), name }
}

impl TestDb {
    /// A new connection (NoTls).
    pub fn client(&self) -> Client {
        connect(&self.url)
    }

    /// Runs one or more statements; panics with the server's error, the
    /// line it points at, and the start of the SQL.
    pub fn exec(&self, sql: &str) {
        if let Err(e) = self.client().batch_execute(sql) {
            let head: String = sql.chars().take(300).collect();
            panic!("SQL failed in {}: {}\n--- SQL (start) ---\n{head}", self.name, pg_error(&e, sql));
        }
    }

    /// The single value of a one-row query, in PostgreSQL's text form (any
    /// type). Panics on zero or several rows, or NULL.
    pub fn query_one_string(&self, sql: &str) -> String {
        let messages =
            self.client().simple_query(sql).unwrap_or_else(|e| panic!("{}\n--- SQL ---\n{sql}", pg_error(&e, sql)));
        let rows: Vec<_> = messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .collect();
        assert_eq!(rows.len(), 1, "expected exactly one row from: {sql}");
        rows[0].get(0).unwrap_or_else(|| panic!("NULL from: {sql}")).to_string()
    }

    /// [`Self::query_one_string`] parsed as an integer (counts, sums).
    pub fn query_one_i64(&self, sql: &str) -> i64 {
        let s = self.query_one_string(sql);
        s.parse().unwrap_or_else(|_| panic!("not an integer: {s:?} from: {sql}"))
    }

    /// `SELECT count(*) FROM <table>`.
    pub fn count(&self, table: &str) -> i64 {
        self.query_one_i64(&format!("SELECT count(*) FROM {table}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Best effort: a throwaway cluster is deleted at exit anyway.
        if let Ok(mut admin) = Client::connect(&server().admin_url(), NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
        }
    }
}

/// Connects (NoTls) or panics with the server's message.
pub fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("cannot connect to {url}: {}", pg_error(&e, "")))
}

/// The `lifeboat` binary, with none of the developer's database, mail,
/// backup or logging settings in its environment: every `PG*`,
/// `POSTGRES_*`, `DATABASE_URL*`, `LIFEBOAT_*`, `SMTP_*`, `BACKUP_*`,
/// `AWS_*`, `ADMIN_EMAILS` and `RUST_LOG` variable is removed. Set what a test needs
/// with `.env()` afterwards.
pub fn lifeboat() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(leaks_into_lifeboat) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// Whether an environment variable of this name would change what
/// `lifeboat` does (see [`lifeboat`]).
pub fn leaks_into_lifeboat(name: &str) -> bool {
    const PREFIXES: [&str; 7] = ["PG", "POSTGRES_", "DATABASE_URL", "LIFEBOAT_", "SMTP_", "BACKUP_", "AWS_"];
    PREFIXES.iter().any(|p| name.starts_with(p)) || name == "ADMIN_EMAILS" || name == "RUST_LOG"
}

/// A command for a PostgreSQL program without libpq's `PG*` variables, so
/// a developer's PGHOST/PGOPTIONS/PGSSLMODE cannot redirect the harness.
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("PG")) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// Runs `psql -X -v ON_ERROR_STOP=1 -d URL -f FILE` in `cwd` (relative
/// `\copy` paths in the script resolve against it).
pub fn psql_file(url: &str, file: &Path, cwd: &Path) -> std::process::Output {
    clean_command(pg_bin("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", url, "-f"])
        .arg(file)
        .current_dir(cwd)
        .output()
        .expect("cannot run psql")
}

/// Writes `dir/lifeboat.toml` and returns its path.
pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("lifeboat.toml");
    std::fs::write(&path, toml).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// The server's message with detail, hint, context and the line of `sql`
/// it points at; the driver's error when there is no server message.
pub fn pg_error(e: &postgres::Error, sql: &str) -> String {
    let Some(db) = e.as_db_error() else {
        return match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
    };
    let mut m = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(d) = db.detail() {
        m.push_str(&format!("\nDETAIL: {d}"));
    }
    if let Some(h) = db.hint() {
        m.push_str(&format!("\nHINT: {h}"));
    }
    if let Some(w) = db.where_() {
        m.push_str(&format!("\nCONTEXT: {w}"));
    }
    if let Some(postgres::error::ErrorPosition::Original(pos)) = db.position() {
        // The position counts characters from 1.
        let before: String = sql.chars().take((*pos as usize).saturating_sub(1)).collect();
        let line = before.matches('\n').count() + 1;
        let text = sql.lines().nth(line - 1).unwrap_or("");
        m.push_str(&format!("\nat line {line}: {text}"));
    }
    m
}

/// `url` with its database replaced by `db`, keeping user, host and query.
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("LIFEBOAT_TEST_DATABASE_URL must be a postgres:// URL, got {url:?}"));
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let authority = path.split_once('/').map_or(path, |(a, _)| a);
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_database() {
        assert_eq!(with_database("postgres://u:p@h:5/postgres", "x"), "postgres://u:p@h:5/x");
        assert_eq!(with_database("postgresql://h", "x"), "postgresql://h/x");
        assert_eq!(with_database("postgres://h/db?sslmode=disable", "x"), "postgres://h/x?sslmode=disable");
    }

    #[test]
    fn dump_normalization_drops_what_differs_between_equal_schemas() {
        let dump = "--\n-- PostgreSQL database dump\n\\restrict abc\nSET x = 1;\n\
                    SELECT pg_catalog.set_config('search_path', '', false);\n\nCREATE TABLE t (a int);\n\\unrestrict abc\n";
        assert_eq!(compare::normalize_dump(dump), "CREATE TABLE t (a int);\n");
        // A carriage return is content, not a line ending to drop.
        assert_ne!(
            compare::normalize_dump("COMMENT ON t IS 'a\r\nb';\n"),
            compare::normalize_dump("COMMENT ON t IS 'a\nb';\n")
        );
    }
}
