//! `lifeboat init`: a commented starting config for a database lifeboat has
//! never seen. [`propose`] is the pure decision, from catalog facts to one
//! mode per table with its reason; [`run`] reads the catalog inside a
//! read-only snapshot, proposes, and has the plan estimate the result (so the
//! size at the end of the file is the estimate `lifeboat plan` would print);
//! [`render`] writes the TOML; [`write_new`] never replaces a file unasked.
//!
//! The rules, first match wins:
//! 1. migration history (`_prisma_migrations`, `schema_migrations`, …) → full;
//! 2. logs, audit trails, caches, sessions and job queues, by name (and for
//!    sessions and jobs, by shape) → schema only, unless something in the
//!    table says its rows matter: money-like columns (`amount`, `balance`,
//!    `credits_deducted`, … of a numeric or JSON type), an audit trail or a
//!    log that records who acted (`blocked_by`), a log under
//!    `--full-below-mb`, or a kept table that references it. Such a table
//!    goes on through the rules below, its reason saying why it was kept;
//! 3. referenced by another table → full, unless it is large and has a
//!    creation-time column (then a window; the closure keeps references valid);
//! 4. small (below `--full-below-mb`) or never analyzed → full;
//! 5. large with a timestamp column → window on it (created_at-like first);
//! 6. large without one → full, with the plan's large-table warning.
//!
//! Then a windowed table whose full parent it is part of (named after it:
//! `document_chunks` → `documents`) is kept full too, or older documents
//! would come back without their chunks; any other windowed table with a
//! full parent is flagged in its reason with the rows the window leaves out
//! (counted by the plan in [`run`]).

use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::config::{Config, ScopeConfig, WindowRule};
use crate::error::{Error, Result};
use crate::events::{CancelToken, Progress};
use crate::model::{Mode, Span, TableName};
use crate::pg::catalog;
use crate::pg::Snapshot;

mod propose;
mod render;

use propose::size_of;
pub use propose::{note_losses, propose};
pub use render::render;

/// How `init` judges tables (flattened into `lifeboat init`'s arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct InitOptions {
    /// Tables smaller than this many MB (1 MB = 1,000,000 bytes) on disk are kept in full
    #[arg(long, value_name = "MB", default_value_t = 10)]
    pub full_below_mb: u64,
    /// How much history a window keeps, e.g. "3 months", "90 days"
    #[arg(long, value_name = "DURATION", default_value = "3 months")]
    pub keep: Span,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions { full_below_mb: 10, keep: "3 months".parse().expect("valid") }
    }
}

/// One table's proposed mode and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub table: TableName,
    pub mode: Mode,
    /// The window's time column (window mode only).
    pub column: Option<String>,
    pub reason: String,
    /// A window's parents kept in full, whose older rows come back without
    /// this table's rows ([`note_losses`] counts them).
    #[serde(skip)]
    pub full_parents: Vec<TableName>,
}

/// What `init` proposes, with the plan of that proposal.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    pub decisions: Vec<Decision>,
    pub estimated_archive_bytes: i64,
    pub warnings: Vec<String>,
    /// The config file's text.
    #[serde(skip)]
    pub text: String,
}

/// The `[scope]` that the decisions describe (one window rule per table,
/// so that each keeps its own reason in the file).
pub fn scope(decisions: &[Decision], keep: Span) -> ScopeConfig {
    let pick = |m: Mode| decisions.iter().filter(|d| d.mode == m).map(|d| d.table.clone()).collect();
    ScopeConfig {
        default: Default::default(),
        full: pick(Mode::Full),
        schema_only: pick(Mode::Schema),
        window: decisions
            .iter()
            .filter(|d| d.mode == Mode::Window)
            .map(|d| WindowRule {
                tables: vec![d.table.clone()],
                column: d.column.clone().expect("window decisions have a column"),
                keep,
            })
            .collect(),
        optional_tables: Vec::new(),
    }
}

/// Reads the catalog of the configured database (read-only snapshot),
/// proposes a scope, and lets the plan estimate it.
pub fn run(config: &Config, opts: &InitOptions, progress: Progress, cancel: &CancelToken) -> Result<Proposal> {
    let mut snap = Snapshot::open(&config.database, cancel)?;
    let catalog = catalog::read(&mut snap.client)?;
    snap.close()?;
    let decisions = propose(&catalog, opts);
    let mut proposed = config.clone();
    proposed.scope = scope(&decisions, opts.keep);
    let plan = crate::backup::plan_only(&proposed, progress, cancel)?;
    let mut decisions = decisions;
    note_losses(&mut decisions, |name| {
        let t = catalog.tables.iter().find(|t| &t.name == name)?;
        let p = plan.tables.iter().find(|p| p.oid == t.oid)?;
        Some((size_of(t, &catalog).1?, p.estimated_rows + p.closure_rows as i64))
    });
    let text = render(&config.database, &config.storage.dir, &decisions, &plan, opts);
    Ok(Proposal {
        decisions,
        estimated_archive_bytes: plan.estimated_archive_bytes,
        warnings: plan.warnings.clone(),
        text,
    })
}

/// Writes `text` to `path`; an existing file is replaced only with `force`.
pub fn write_new(path: &Path, text: &str, force: bool) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    let mut f = o.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Refused(format!(
                "{} already exists and was left unchanged; pass --force to replace it, or --output another file",
                path.display()
            ))
        } else {
            Error::io("cannot write the config to", path, e)
        }
    })?;
    f.write_all(text.as_bytes()).map_err(|e| Error::io("cannot write the config to", path, e))
}

#[cfg(test)]
mod tests {
    use super::propose::{named_after, words};
    use super::*;
    use crate::pg::catalog::{Catalog, Column, ForeignKey, Table};

    fn col(name: &str, ty: &str) -> Column {
        Column { name: name.into(), type_name: ty.into(), generated: false }
    }

    fn table(oid: u32, name: &str, mb: i64, cols: &[(&str, &str)]) -> Table {
        Table {
            oid,
            name: TableName::new("public", name),
            kind: 'r',
            columns: cols.iter().map(|(n, t)| col(n, t)).collect(),
            estimated_rows: Some(mb * 10_000),
            partition_of: None,
            bytes: mb * crate::model::MB as i64,
        }
    }

    fn fk(child: u32, parent: u32) -> ForeignKey {
        ForeignKey {
            name: format!("fk_{child}_{parent}"),
            child,
            parent,
            columns: vec!["x".into()],
            ref_columns: vec!["id".into()],
        }
    }

    fn decide(tables: Vec<Table>, fks: Vec<ForeignKey>) -> Vec<Decision> {
        let c = Catalog { tables, foreign_keys: fks, sequences: vec![], large_objects: 0 };
        propose(&c, &InitOptions::default())
    }

    fn mode_of<'a>(d: &'a [Decision], name: &str) -> &'a Decision {
        d.iter().find(|d| d.table.name == name).unwrap()
    }

    const TS: &str = "timestamp with time zone";

    // covers: FR-26.2
    #[test]
    fn big_logs_sessions_caches_and_queues_are_schema_only() {
        let d = decide(
            vec![
                table(1, "sessions", 200, &[("sid", "text"), ("expires_at", TS), ("created_at", TS)]),
                table(2, "request_log", 500, &[("id", "bigint"), ("total_tokens", "integer"), ("created_at", TS)]),
                table(3, "cache_entries", 1, &[("key", "text")]),
                table(4, "delayed_jobs", 1, &[("id", "bigint"), ("attempts", "integer"), ("run_at", TS)]),
                table(5, "jobs", 1, &[("id", "bigint"), ("title", "text")]),
                table(6, "chat_sessions", 1, &[("id", "bigint"), ("title", "text")]),
                table(7, "daily_login_rewards", 1, &[("id", "bigint")]),
                table(8, "users", 1, &[("id", "uuid")]),
            ],
            vec![fk(1, 8), fk(2, 8)],
        );
        for name in ["sessions", "request_log", "cache_entries", "delayed_jobs"] {
            assert_eq!(mode_of(&d, name).mode, Mode::Schema, "{name}: {:?}", mode_of(&d, name));
        }
        assert!(mode_of(&d, "sessions").reason.contains("\"expires_at\""), "{:?}", mode_of(&d, "sessions"));
        assert!(mode_of(&d, "request_log").reason.contains("says a log"), "{:?}", mode_of(&d, "request_log"));
        // Business data that only shares a word: a jobs board, chat sessions, "login".
        for name in ["jobs", "chat_sessions", "daily_login_rewards"] {
            assert_eq!(mode_of(&d, name).mode, Mode::Full, "{name}: {:?}", mode_of(&d, name));
        }
    }

    // covers: FR-26.5
    #[test]
    fn a_ledger_named_like_a_log_is_never_schema_only() {
        // Smart AI Hub's auto_topup_logs: credits deducted, balances before and after.
        let d = decide(
            vec![
                table(
                    1,
                    "auto_topup_logs",
                    500,
                    &[
                        ("id", "uuid"),
                        ("user_id", "uuid"),
                        ("credits_deducted", "integer"),
                        ("trigger_reason", "character varying(50)"),
                        ("balance_before", "jsonb"),
                        ("balanceAfter", "jsonb"),
                        ("created_at", TS),
                    ],
                ),
                // Keys and flags named with a money word are not money.
                table(
                    2,
                    "payment_webhook_logs",
                    500,
                    &[
                        ("payment_id", "bigint"),
                        ("credit_account", "uuid"),
                        ("is_paid", "boolean"),
                        ("paid_at", TS),
                        ("created_at", TS),
                    ],
                ),
                table(3, "AuditLog", 1, &[("id", "bigint"), ("amount", "numeric(12,2)")]),
                table(4, "accounts", 1, &[("id", "bigint")]),
            ],
            vec![fk(1, 4), ForeignKey { columns: vec!["credit_account".into()], ..fk(2, 4) }],
        );
        let a = mode_of(&d, "auto_topup_logs");
        assert_eq!((a.mode, a.column.as_deref()), (Mode::Window, Some("created_at")), "{a:?}");
        assert!(
            a.reason.contains(
                "it holds money-like columns (\"credits_deducted\", \"balance_before\", \"balanceAfter\"): never schema only"
            ),
            "{a:?}"
        );
        assert_eq!(mode_of(&d, "payment_webhook_logs").mode, Mode::Schema, "{:?}", mode_of(&d, "payment_webhook_logs"));
        let s = mode_of(&d, "AuditLog");
        assert_eq!(s.mode, Mode::Full, "{s:?}");
        assert!(s.reason.contains("money-like columns (\"amount\")") && s.reason.contains("small: under"), "{s:?}");
    }

    // covers: FR-26.5
    #[test]
    fn audit_trails_and_logs_that_record_who_acted_are_windowed_not_emptied() {
        let d = decide(
            vec![
                table(1, "audit_logs", 500, &[("id", "bigint"), ("action", "text"), ("created_at", TS)]),
                table(2, "block_logs", 500, &[("user_id", "uuid"), ("blocked_by", "uuid"), ("created_at", TS)]),
                table(3, "AuditEvent", 500, &[("id", "bigint")]),
            ],
            vec![],
        );
        let a = mode_of(&d, "audit_logs");
        assert_eq!(a.mode, Mode::Window, "{a:?}");
        assert!(a.reason.contains("an audit trail is the record of who did what: never schema only"), "{a:?}");
        let b = mode_of(&d, "block_logs");
        assert_eq!(b.mode, Mode::Window, "{b:?}");
        assert!(b.reason.contains("its \"blocked_by\" column records who acted"), "{b:?}");
        // No time column to window on: full.
        assert_eq!(mode_of(&d, "AuditEvent").mode, Mode::Full, "{:?}", mode_of(&d, "AuditEvent"));
    }

    // covers: FR-26.5
    #[test]
    fn a_small_log_stays_full() {
        let d = decide(
            vec![
                table(1, "agent_usage_logs", 2, &[("tokens", "integer"), ("created_at", TS)]),
                table(2, "user_sessions", 2, &[("token", "text")]),
            ],
            vec![],
        );
        let l = mode_of(&d, "agent_usage_logs");
        assert_eq!(l.mode, Mode::Full, "{l:?}");
        assert!(l.reason.starts_with("the name (\"logs\") says a log, but it is small (under 10 MB)"), "{l:?}");
        // Sessions are short-lived whatever their size.
        assert_eq!(mode_of(&d, "user_sessions").mode, Mode::Schema);
    }

    // covers: FR-26.5
    #[test]
    fn a_log_that_a_kept_table_references_is_kept_and_so_is_what_it_references() {
        let d = decide(
            vec![
                table(1, "usage_logs", 500, &[("id", "uuid"), ("tokens", "integer"), ("created_at", TS)]),
                table(2, "credit_transactions", 1, &[("usage_log_id", "uuid")]),
                table(3, "model_cache", 500, &[("id", "uuid")]),
                table(4, "sessions", 500, &[("sid", "text")]),
                table(5, "session_logs", 500, &[("sid", "text"), ("created_at", TS)]),
            ],
            // credit_transactions → usage_logs → model_cache; session_logs → sessions.
            vec![fk(2, 1), fk(1, 3), fk(5, 4)],
        );
        let u = mode_of(&d, "usage_logs");
        assert_ne!(u.mode, Mode::Schema, "{u:?}");
        assert!(u.reason.contains("public.credit_transactions, which is kept, references it"), "{u:?}");
        let c = mode_of(&d, "model_cache");
        assert_eq!(c.mode, Mode::Full, "{c:?}");
        assert!(c.reason.contains("public.usage_logs, which is kept, references it"), "{c:?}");
        // Referenced only by a table that is not kept: still schema only.
        assert_eq!(mode_of(&d, "sessions").mode, Mode::Schema, "{:?}", mode_of(&d, "sessions"));
        assert_eq!(mode_of(&d, "session_logs").mode, Mode::Schema);
    }

    // covers: FR-26.5
    #[test]
    fn a_part_of_a_full_parent_is_kept_full_and_other_windows_under_one_are_flagged() {
        let d = decide(
            vec![
                table(1, "documents", 30, &[("id", "uuid"), ("created_at", TS)]),
                table(2, "document_chunks", 500, &[("document_id", "uuid"), ("created_at", TS)]),
                table(3, "DocumentChunkEmbedding", 500, &[("chunk_id", "uuid"), ("created_at", TS)]),
                table(4, "users", 1, &[("id", "uuid")]),
                table(5, "payments", 500, &[("user_id", "uuid"), ("amount", "numeric"), ("created_at", TS)]),
            ],
            vec![fk(2, 1), fk(3, 2), fk(5, 4)],
        );
        let c = mode_of(&d, "document_chunks");
        assert_eq!(c.mode, Mode::Full, "{c:?}");
        assert!(c.reason.starts_with("part of public.documents"), "{c:?}");
        assert!(c.reason.contains("without their rows here"), "{c:?}");
        // And the part of that part.
        let e = mode_of(&d, "DocumentChunkEmbedding");
        assert_eq!(e.mode, Mode::Full, "{e:?}");
        assert!(e.reason.starts_with("part of public.document_chunks"), "{e:?}");

        // Payments are history, not a part of the user: windowed, flagged, counted.
        let mut d = d;
        let p = mode_of(&d, "payments");
        assert_eq!(p.mode, Mode::Window, "{p:?}");
        assert!(p.reason.contains("older rows are left out although public.users (their parents) are kept in full"));
        assert_eq!(p.full_parents, vec![TableName::new("public", "users")]);
        note_losses(&mut d, |t| (t.name == "payments").then_some((5000, 1200)));
        let p = mode_of(&d, "payments");
        assert!(p.reason.ends_with("(~3800 of its ~5000 rows by the plan's estimate)"), "{p:?}");
        assert!(!mode_of(&d, "documents").reason.contains("rows by the plan"));
    }

    #[test]
    fn parts_are_named_after_their_whole() {
        assert!(named_after("document_chunks", "documents"));
        assert!(named_after("OrderItem", "Order"));
        assert!(named_after("category_translations", "categories"));
        assert!(named_after("user_profiles", "users"));
        assert!(!named_after("documents", "documents"));
        assert!(!named_after("credit_transactions", "credit_accounts"));
        assert!(!named_after("usage_logs", "users"));
        assert!(!named_after("messages", "conversations"));
    }

    // covers: FR-26.2
    #[test]
    fn a_big_events_table_gets_a_window_on_its_creation_time() {
        let d = decide(
            vec![table(
                1,
                "events",
                2000,
                &[("id", "bigint"), ("updated_at", TS), ("happened", "date"), ("created_at", TS)],
            )],
            vec![],
        );
        let e = mode_of(&d, "events");
        assert_eq!((e.mode, e.column.as_deref()), (Mode::Window, Some("created_at")), "{e:?}");
        assert!(e.reason.contains("over 10 MB") && e.reason.contains("3 months"), "{e:?}");

        // No created_at: any time column that is not a later change.
        let d = decide(vec![table(1, "readings", 2000, &[("updated_at", TS), ("measured_at", TS)])], vec![]);
        assert_eq!(mode_of(&d, "readings").column.as_deref(), Some("measured_at"));
        // No time column at all: full, and the reason says why.
        let d = decide(vec![table(1, "blobs", 2000, &[("id", "bigint"), ("data", "bytea")])], vec![]);
        assert_eq!(mode_of(&d, "blobs").mode, Mode::Full);
        assert!(mode_of(&d, "blobs").reason.contains("no creation-time column"));
    }

    // covers: FR-26.2
    #[test]
    fn small_lookup_tables_referenced_tables_and_migrations_are_full() {
        let d = decide(
            vec![
                table(1, "countries", 0, &[("code", "text"), ("created_at", TS)]),
                table(2, "accounts", 40, &[("id", "uuid"), ("created_at", TS)]),
                table(3, "orders", 30, &[("id", "uuid"), ("account_id", "uuid"), ("created_at", TS)]),
                table(4, "_prisma_migrations", 30, &[("started_at", TS)]),
                table(5, "ledger", 900, &[("id", "uuid"), ("created_at", TS)]),
                table(6, "refunds", 1, &[("ledger_id", "uuid")]),
            ],
            vec![fk(3, 2), fk(6, 5)],
        );
        let c = mode_of(&d, "countries");
        assert_eq!(c.mode, Mode::Full);
        assert!(c.reason.starts_with("small"), "{c:?}");
        let a = mode_of(&d, "accounts");
        assert_eq!(a.mode, Mode::Full);
        assert!(a.reason.contains("referenced by public.orders"), "{a:?}");
        assert_eq!(mode_of(&d, "orders").mode, Mode::Window, "30 MB is over the 10 MB default");
        assert_eq!(mode_of(&d, "_prisma_migrations").mode, Mode::Full);
        // A huge referenced table is still windowed: the closure keeps the references.
        let l = mode_of(&d, "ledger");
        assert_eq!(l.mode, Mode::Window, "{l:?}");
        assert!(l.reason.contains("closure"), "{l:?}");
    }

    #[test]
    fn the_scope_has_one_mode_per_table() {
        let d = decide(
            vec![table(1, "events", 2000, &[("created_at", TS)]), table(2, "sessions", 1, &[("token", "text")])],
            vec![],
        );
        let s = scope(&d, "90 days".parse().unwrap());
        assert_eq!(s.window.len(), 1);
        assert_eq!(s.window[0].keep.to_string(), "90 days");
        assert_eq!(s.schema_only, vec![TableName::new("public", "sessions")]);
        assert!(s.full.is_empty());
    }

    #[test]
    fn words_split_snake_and_camel_case() {
        assert_eq!(words("AuditLog"), ["audit", "log"]);
        assert_eq!(words("usage_logs"), ["usage", "logs"]);
        assert_eq!(words("blog_posts"), ["blog", "posts"]);
    }

    // covers: FR-26.3
    #[test]
    fn an_existing_file_is_replaced_only_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lifeboat.toml");
        std::fs::write(&p, "old").unwrap();
        let err = write_new(&p, "new", false).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("already exists") && err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        write_new(&p, "new", true).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
    }
}
