//! Everything that talks to PostgreSQL: connections and quoting (`conn`),
//! TLS with libpq's sslmode semantics (`tls`),
//! the exported snapshot (`snapshot`), the system catalogs (`catalog`) and
//! pg_dump as a child process (`pg_dump`), the server-side limits and
//! clean-up of a run's own sessions (`sessions`), and the blocking client
//! whose waits a cancellation always ends (`client`).

pub mod catalog;
pub mod client;
pub mod conn;
pub mod pg_dump;
pub mod sessions;
pub mod snapshot;
mod tls;

pub use client::Client;
pub use conn::{
    connect, connect_with, copy_err, db_err, describe, pg_message, qualified, quote_ident, quote_literal, sqlstate,
    SESSION_SETTINGS,
};
pub use snapshot::Snapshot;
