//! lifeboat: consistent, lightweight, verified backups of PostgreSQL-backed
//! web applications, and one-command restores.
//!
//! # Layout
//!
//! - [`config`]: the TOML file, environment and flags, merged with one precedence rule.
//! - [`duration`]: humane durations (`"3 months"`) for windows and timeouts.
//! - [`db`]: connections, quoting, the exported REPEATABLE READ snapshot.
//! - [`catalog`]: tables, columns, foreign keys and sequences read from the system catalogs.
//! - [`plan`]: each table's mode, filter and estimates; the side-effect-free first half of a backup.
//! - [`closure`]: rows pulled in so every foreign key restores valid.
//! - [`files`]: which deployment config files the `[files]` patterns select.
//! - [`dump`]: pg_dump for the schema and constraints, on the snapshot.
//! - [`archive`]: the archive format: names, manifest, writer, hardened reader, signatures.
//! - [`backup`]: the orchestrator: plan → dump → archive → verify → seal.
//! - [`deliver`]: getting archives to the administrators: signed download links.
//! - [`crypt`]: age encryption of copies that leave the host, and streaming decryption.
//! - [`http`]: the HTTP service (signed download route), the only axum code.
//! - [`verify`]: checks an archive against its checksums, manifest and row counts.
//! - [`restore`]: loads an archive into a database in one transaction; rehearsals.
//! - [`progress`]: events the engine reports, and the stall watchdog.
//! - [`error`]: the engine's error type with exit codes and retryability.
//! - [`cli`]: the command line (the only module that prints).

pub mod archive;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod closure;
pub mod config;
pub mod crypt;
pub mod db;
pub mod deliver;
pub mod dump;
pub mod duration;
pub mod error;
pub mod files;
pub mod http;
pub mod plan;
pub mod progress;
pub mod restore;
pub mod verify;

pub use error::{Error, Result};
