//! lifeboat: consistent, lightweight, verified backups of PostgreSQL-backed
//! web applications, and one-command restores.
//!
//! # Layout
//!
//! The folder list reads like the pipeline; the arrows point
//! down: `cli` calls the engine, the engine never calls `cli`. Every module
//! is named here (`scripts/module-graph` checks it, with the floors of
//! docs/BACKUP_DEVELOPMENT.md "Layering").
//!
//! - [`error`]: the engine's error type with exit codes and retryability, and the error types it carries (`ConfigError`, `ArchiveError`, `DecryptError`); imports nothing from the crate.
//! - [`model`]: shared vocabulary: `TableName`, `Mode`, `Span` (humane durations).
//! - [`config`]: the config structs; `load` (the one precedence function), `layer` (overlaying layers), `env`, `url`, `chat_url` (the chat channels' URLs in `[alerts]`: their forms, the endpoint and the parts to blank out), `secret` (`Secret`, `*_file` secrets, the one table of secret/`*_file` pairs), `pgpass`; one file per section, named after it: `email`, `alerts`, `links`, `http`, `encryption`, `remote`, `retention`, `monitor`, `schedule`, `log`, `verify`, `restore`.
//! - [`pg`]: PostgreSQL: `client` (blocking, always cancellable), `conn` (connect, quote, errors), `tls` (rustls with libpq's sslmode), `snapshot`, `sessions` (server-side limits of the run's sessions, ending them when it is abandoned), `catalog`, `pg_dump` (the child process).
//! - [`plan`]: each table's mode, filter and estimates; `scope` (modes), `closure` (FK rows), `keys` (closure row keys on disk), `files` (config files).
//! - [`backup`]: the seal: `run(config, &dyn Store, progress, cancel)`: plan → snapshot → copy → archive → verify → `Sealed` (`sealed`, with the report); `copy` (one table's COPY, the `Copier`).
//! - [`archive`]: the format: names, `manifest`, `writer`, hardened `reader`, `texts`, `sums`, `signature` (minisign).
//! - [`verify`]: checks an archive against its checksums, manifest, row counts and signature.
//! - [`restore`]: `target` (safety, --force), `load` (one transaction), `statements` (SQL split as it streams), `sql` (runs a member), `guard` (refuses statements pg_dump never writes), `owners` (owner/privilege statements), `parallel` (--jobs), `analyze` (after the commit, in parallel), `config_files`, `rehearse`.
//! - [`store`]: `Archives` (list/open/put/delete, local and S3 alike), `Store` (local staging), `open(config)`; `local` (dir, lock, `.partial` → rename, cleanup, signing key); `dry_run` (records, writes nothing); `s3` (the offsite copy: multipart upload, presigned GET, streaming reads; `s3://` sources, the plan probe).
//! - [`fsutil`]: atomic writes (temp → fsync → rename → fsync dir) and 0600 key files opened without following links.
//! - [`crypt`]: streaming age encryption of copies that leave the host, and the decrypting reader.
//! - [`deliver`]: getting archives to the administrators: the success mail (`message`, `templates`), SMTP with retries (`mail`), `links` (HMAC-signed download links).
//! - [`history`]: the run history (`.lifeboat/history.db`, versioned migrations): `runs`, `incidents`, `status` (typed statuses), `markers` (`.last_backup_*`).
//! - [`retention`]: the pure keep/prune decision (`PrunePlan`), applied through `Archives` to the local and the remote store alike.
//! - [`monitor`]: `checks` (healthy or not, from history and markers only, shared by `check` and `/healthz`; each problem's kind), `channels` (alert mail, JSON webhook, healthchecks.io-style ping, recovery notices; whether alerts reach anyone), `chat` (Slack, Discord, Telegram and ntfy: their payloads), `incidents` (one alert per incident, reminders, recovery; `tick` for the monitor loop).
//! - [`schedule`]: cron + time zone → the next fire time and the latest due time (pure, no clock).
//! - [`run`]: the one place that knows the order of a run (`lifeboat backup` and the daemon both call `run::run`): seal → offsite → deliver → rehearse → prune; `record` (the history, opened once per run; markers; the log tail), `alerts` (every alert a run sends), `offsite` (upload to `[remote]`, catch-up, remote retention), `rehearsal` (the restore rehearsal of each new archive).
//! - [`daemon`]: the service: wiring (HTTP, start-up), `scheduler` (`Scheduler`, `Clock`), `monitor` (the monitor loop).
//! - [`http`]: the HTTP service: `state` (`AppState`, what handlers read), `router` (every route), `health` (`/healthz`), `metrics`, `status` (the page), `auth` (basic auth), `download`, `limits` (connection cap, header-read and idle timeouts, the descriptor budget); `serve` is its accept loop; the only axum and hyper code.
//! - [`init`]: `lifeboat init`: proposes a commented config from the catalog: `propose` (the pure decision, one mode per table with its reason), then the plan's estimate, then `render` (the commented TOML).
//! - [`events`]: progress events, the stall watchdog, the cancellation token.
//! - [`cli`]: the command line (the only module that prints and knows clap); one file per subcommand (`backup`, `check`, `config`, `daemon`, `init`, `list`, `plan`, `prune`, `restore`, `send`, `serve`, `test_email`, `verify`), `render` (text tables), `progress` (events on stderr), `logging` (tracing, the log file).
//!
//! The engine's option types (e.g. [`restore::RestoreOptions`]) derive
//! clap's `Args` behind the existing clap dependency, so `cli` flattens them
//! instead of declaring the flags twice; the engine still never parses
//! arguments or prints.

pub mod archive;
pub mod backup;
pub mod cli;
pub mod config;
pub mod crypt;
pub mod daemon;
pub mod deliver;
pub mod error;
pub mod events;
pub mod fsutil;
pub mod history;
pub mod http;
pub mod init;
pub mod model;
pub mod monitor;
pub mod pg;
pub mod plan;
pub mod restore;
pub mod retention;
pub mod run;
pub mod schedule;
pub mod store;
pub mod verify;

pub use error::{Error, Result};
