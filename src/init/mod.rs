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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::config::{Config, DatabaseConfig, ScopeConfig, WindowRule};
use crate::error::{Error, Result};
use crate::events::{CancelToken, Progress};
use crate::model::{human_bytes, Mode, Span, TableName};
use crate::pg::catalog::{self, Catalog, Table};
use crate::pg::Snapshot;
use crate::plan::{Plan, LARGE_TABLE_BYTES};

/// How `init` judges tables (flattened into `lifeboat init`'s arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct InitOptions {
    /// Tables smaller than this many MB on disk are kept in full
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

/// What a table's name or shape says it is, when it says data an
/// application can lose.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Noise {
    Log,
    Audit,
    /// Caches, job queues, sessions.
    Transient,
}

/// Table-name words of data an application can lose: logs, audit trails,
/// caches. Matched against whole words of the name (`usage_logs`, `AuditLog`).
const EPHEMERAL_WORDS: &[(&str, &str, Noise)] = &[
    // An audit log is an audit trail first.
    ("audit", "an audit trail", Noise::Audit),
    ("audits", "an audit trail", Noise::Audit),
    ("log", "a log", Noise::Log),
    ("logs", "a log", Noise::Log),
    ("logging", "a log", Noise::Log),
    ("cache", "a cache", Noise::Transient),
    ("caches", "a cache", Noise::Transient),
    ("cached", "a cache", Noise::Transient),
    ("queue", "a job queue", Noise::Transient),
    ("queues", "a job queue", Noise::Transient),
    ("queued", "a job queue", Noise::Transient),
];

/// Column-name words of money: a column of a numeric or JSON type named
/// with one (`amount`, `credits_deducted`, `balance_before`) makes its
/// table a ledger, never schema-only.
const MONEY_WORDS: &[&str] = &[
    "amount",
    "amounts",
    "balance",
    "balances",
    "credit",
    "credits",
    "debit",
    "debits",
    "price",
    "prices",
    "cost",
    "costs",
    "fee",
    "fees",
    "paid",
    "refund",
    "refunds",
    "refunded",
    "charge",
    "charges",
    "charged",
    "payment",
    "payments",
    "payout",
    "payouts",
    "subtotal",
    "tax",
    "commission",
    "revenue",
    "wallet",
];

/// Migration bookkeeping of common frameworks: small and vital (the
/// application reads it to know its schema version).
const MIGRATION_TABLES: &[&str] = &[
    "_prisma_migrations",
    "schema_migrations",
    "ar_internal_metadata",
    "__efmigrationshistory",
    "flyway_schema_history",
    "knex_migrations",
    "knex_migrations_lock",
    "alembic_version",
    "django_migrations",
    "goose_db_version",
    "typeorm_metadata",
    "migrations",
    "sequelizemeta",
];

/// Preferred window columns, best first: when a row was created.
const CREATION_COLUMNS: &[&str] = &[
    "created_at",
    "createdat",
    "created",
    "created_on",
    "creation_date",
    "date_created",
    "inserted_at",
    "occurred_at",
    "recorded_at",
    "timestamp",
];

/// Name words; `AuditLog` → `audit`, `log`; `daily_login_rewards` → `daily`, `login`, `rewards`.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if !ch.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        cur.extend(ch.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn has_column(t: &Table, pred: impl Fn(&str) -> bool) -> Option<String> {
    t.columns.iter().map(|c| c.name.to_ascii_lowercase()).find(|c| pred(c))
}

/// Why a table looks like data the application can lose, if it does.
fn ephemeral(t: &Table) -> Option<(Noise, String)> {
    let w = words(&t.name.name);
    if let Some((word, what, kind)) = EPHEMERAL_WORDS.iter().find(|(x, _, _)| w.iter().any(|y| y == x)) {
        return Some((*kind, format!("the name ({word:?}) says {what}")));
    }
    let expiry = || has_column(t, |c| c.starts_with("expire") || c == "expiry" || c == "expires_at" || c == "ttl");
    if w.iter().any(|x| x == "session" || x == "sessions") {
        let token = has_column(t, |c| c == "sid" || c.contains("token") || c == "data" || c == "sess");
        if let Some(c) = expiry().or(token) {
            return Some((
                Noise::Transient,
                format!("sessions: the name and its {c:?} column say short-lived login state"),
            ));
        }
    }
    if w.iter().any(|x| x == "job" || x == "jobs") {
        let queue = has_column(t, |c| {
            matches!(c, "attempts" | "attempt" | "run_at" | "locked_at" | "scheduled_at" | "available_at" | "queue")
        });
        if let Some(c) = queue {
            return Some((Noise::Transient, format!("a job queue: the name and its {c:?} column")));
        }
    }
    None
}

/// Columns that hold money: named with a money word, of a numeric or JSON
/// type, and neither a key (`payment_id`) nor a foreign key.
fn money_columns(t: &Table, catalog: &Catalog) -> Vec<String> {
    let fk_columns: Vec<&str> = catalog
        .foreign_keys
        .iter()
        .filter(|fk| fk.child == t.oid)
        .flat_map(|fk| fk.columns.iter().map(String::as_str))
        .collect();
    t.columns
        .iter()
        .filter(|c| {
            let ty = c.type_name.as_str();
            let valued = ty.starts_with("numeric")
                || matches!(
                    ty,
                    "smallint" | "integer" | "bigint" | "real" | "double precision" | "money" | "json" | "jsonb"
                );
            let w = words(&c.name);
            valued
                && !fk_columns.contains(&c.name.as_str())
                && !matches!(w.last().map(String::as_str), Some("id" | "ids"))
                && w.iter().any(|x| MONEY_WORDS.contains(&x.as_str()))
        })
        .map(|c| c.name.clone())
        .collect()
}

/// A column that records who acted (`blocked_by`, `actor_id`): a log with
/// one is an accountability trail.
fn actor_column(t: &Table) -> Option<String> {
    t.columns
        .iter()
        .find(|c| {
            let w = words(&c.name);
            w.len() > 1 && (w.last().is_some_and(|x| x == "by") || matches!(w[0].as_str(), "actor" | "moderator"))
        })
        .map(|c| c.name.clone())
}

fn singular(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ies") {
        format!("{stem}y")
    } else if ["sses", "xes", "ches", "shes", "uses"].iter().any(|e| word.ends_with(e)) {
        word[..word.len() - 2].to_string()
    } else if word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_string()
    } else {
        word.to_string()
    }
}

/// Whether `child` is named as a part of `parent`: `document_chunks` of
/// `documents`, `OrderItem` of `Order`, `user_profiles` of `users`.
fn named_after(child: &str, parent: &str) -> bool {
    let c = words(child);
    let mut p = words(parent);
    if let Some(last) = p.last_mut() {
        *last = singular(last);
    }
    !p.is_empty() && c.len() > p.len() && c[..p.len()] == p[..]
}

fn quoted(names: &[String]) -> String {
    abbreviate(names.iter().map(|n| format!("{n:?}")).collect()).join(", ")
}

/// The best window column: created_at-like names first, then any other
/// date/timestamp column that does not record a later change.
fn window_column(t: &Table) -> Option<String> {
    let times: Vec<&str> = t.columns.iter().filter(|c| c.is_time() && !c.generated).map(|c| c.name.as_str()).collect();
    for want in CREATION_COLUMNS {
        if let Some(c) = times.iter().find(|c| c.to_ascii_lowercase() == *want) {
            return Some(c.to_string());
        }
    }
    let later = ["updat", "modif", "delet", "expir", "until", "ends", "finish", "last", "archiv"];
    times.iter().find(|c| !later.iter().any(|l| c.to_ascii_lowercase().contains(l))).map(|c| c.to_string())
}

fn size_of(t: &Table, catalog: &Catalog) -> (i64, Option<i64>) {
    // A partitioned parent holds nothing itself: sum its partitions.
    let mut bytes = 0;
    let mut rows: Option<i64> = None;
    let mut stack = vec![t.oid];
    while let Some(oid) = stack.pop() {
        let x = catalog.table(oid);
        bytes += x.bytes;
        if let Some(r) = x.estimated_rows {
            rows = Some(rows.unwrap_or(0) + r);
        }
        stack.extend(catalog.tables.iter().filter(|p| p.partition_of == Some(oid)).map(|p| p.oid));
    }
    (bytes, rows)
}

/// At most three names, then how many more.
fn abbreviate(mut names: Vec<String>) -> Vec<String> {
    if names.len() > 3 {
        let more = names.len() - 3;
        names.truncate(3);
        names.push(format!("{more} more"));
    }
    names
}

fn describe_size(bytes: i64, rows: Option<i64>) -> String {
    match rows {
        Some(r) => format!("~{} on disk, ~{r} rows", human_bytes(bytes.max(0) as u64)),
        None => format!("~{} on disk", human_bytes(bytes.max(0) as u64)),
    }
}

/// The foreign keys between the tables that get a mode (a partition's
/// counts as its top parent's), built once: lookups in the catalog are
/// linear, and a schema may have thousands of tables.
struct Edges {
    /// Table → the tables whose foreign keys point at it, itself excluded.
    referrers: HashMap<u32, Vec<u32>>,
    /// Table → the tables its foreign keys point at, itself excluded.
    parents: HashMap<u32, Vec<u32>>,
}

impl Edges {
    fn new(catalog: &Catalog) -> Edges {
        let partition_of: HashMap<u32, u32> =
            catalog.tables.iter().filter_map(|t| t.partition_of.map(|p| (t.oid, p))).collect();
        let root = |mut oid: u32| {
            while let Some(p) = partition_of.get(&oid) {
                oid = *p;
            }
            oid
        };
        let mut edges = Edges { referrers: HashMap::new(), parents: HashMap::new() };
        for fk in &catalog.foreign_keys {
            let (child, parent) = (root(fk.child), root(fk.parent));
            if child != parent {
                edges.referrers.entry(parent).or_default().push(child);
                edges.parents.entry(child).or_default().push(parent);
            }
        }
        for list in edges.referrers.values_mut().chain(edges.parents.values_mut()) {
            list.sort_unstable();
            list.dedup();
        }
        edges
    }

    fn referrers(&self, oid: u32) -> &[u32] {
        self.referrers.get(&oid).map_or(&[], Vec::as_slice)
    }

    fn parents(&self, oid: u32) -> &[u32] {
        self.parents.get(&oid).map_or(&[], Vec::as_slice)
    }
}

fn names_of(catalog: &Catalog, oids: &[u32]) -> Vec<String> {
    let mut names: Vec<String> = oids.iter().map(|o| catalog.table(*o).name.to_string()).collect();
    names.sort();
    names
}

/// One mode per table, with its reason. Partitions are left out: they take
/// their parent's mode.
pub fn propose(catalog: &Catalog, opts: &InitOptions) -> Vec<Decision> {
    let small = i64::try_from(opts.full_below_mb.saturating_mul(1_048_576)).unwrap_or(i64::MAX);
    let tops: Vec<&Table> = catalog.tables.iter().filter(|t| t.partition_of.is_none()).collect();
    let edges = Edges::new(catalog);
    let is_migration = |t: &Table| MIGRATION_TABLES.contains(&t.name.name.to_ascii_lowercase().as_str());

    // Tables named or shaped like data the application can lose, with what
    // in them says their rows matter after all (no reason: schema only).
    let mut noise: BTreeMap<u32, (String, Vec<String>)> = BTreeMap::new();
    for t in tops.iter().filter(|t| !is_migration(t)) {
        let Some((kind, why)) = ephemeral(t) else { continue };
        let mut keeps = Vec::new();
        let money = money_columns(t, catalog);
        if !money.is_empty() {
            keeps.push(format!("it holds money-like columns ({})", quoted(&money)));
        }
        if kind == Noise::Audit {
            keeps.push("an audit trail is the record of who did what".to_string());
        } else if let Some(c) = actor_column(t).filter(|_| kind == Noise::Log) {
            keeps.push(format!("its {c:?} column records who acted (an accountability trail)"));
        }
        if kind == Noise::Log && size_of(t, catalog).0 < small {
            keeps.push(format!("it is small (under {} MB)", opts.full_below_mb));
        }
        noise.insert(t.oid, (why, keeps));
    }
    // A table that a kept table references is kept: until nothing changes,
    // as keeping one can keep the tables it references.
    loop {
        let schema: HashSet<u32> = noise.iter().filter(|(_, (_, k))| k.is_empty()).map(|(o, _)| *o).collect();
        let mut changed = false;
        for oid in &schema {
            let kept: Vec<u32> = edges.referrers(*oid).iter().copied().filter(|r| !schema.contains(r)).collect();
            if !kept.is_empty() {
                let by = abbreviate(names_of(catalog, &kept)).join(", ");
                noise.get_mut(oid).expect("listed").1.push(format!("{by}, which is kept, references it"));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    let mut out: Vec<(u32, Decision)> = Vec::new();
    for t in tops.iter().copied() {
        let (bytes, rows) = size_of(t, catalog);
        let size = describe_size(bytes, rows);
        let referrers = abbreviate(names_of(catalog, edges.referrers(t.oid)));
        let decide = |mode, column: Option<String>, reason: String| Decision {
            table: t.name.clone(),
            mode,
            column,
            reason,
            full_parents: Vec::new(),
        };
        let column = window_column(t);
        // Partitioned parents that others reference must stay full (plan::scope).
        let huge_and_windowable = bytes > LARGE_TABLE_BYTES && column.is_some() && t.kind != 'p';
        // Why a table named like a log is kept after all, before its reason.
        let kept_noise = match noise.get(&t.oid) {
            Some((why, keeps)) if !keeps.is_empty() => {
                format!("{why}, but {}: never schema only; ", keeps.join(", and "))
            }
            _ => String::new(),
        };
        let d = if is_migration(t) {
            decide(
                Mode::Full,
                None,
                "migration history: the application needs every row to know its schema version".into(),
            )
        } else if let Some((why, _)) = noise.get(&t.oid).filter(|(_, keeps)| keeps.is_empty()) {
            let also = if referrers.is_empty() {
                String::new()
            } else {
                format!("; rows that {} reference are still kept (closure)", referrers.join(", "))
            };
            decide(Mode::Schema, None, format!("{why}; the table is recreated empty{also}"))
        } else if !referrers.is_empty() && !huge_and_windowable {
            decide(Mode::Full, None, format!("{kept_noise}referenced by {} ({size})", referrers.join(", ")))
        } else if rows.is_none() && bytes == 0 {
            decide(
                Mode::Full,
                None,
                format!("{kept_noise}never analyzed, size unknown: kept whole (run ANALYZE, then init again)"),
            )
        } else if bytes < small {
            decide(Mode::Full, None, format!("{kept_noise}small: under {} MB ({size})", opts.full_below_mb))
        } else if let Some(c) = column {
            let refs = if referrers.is_empty() {
                String::new()
            } else {
                format!("; referenced by {}: older rows they point at are kept (closure)", referrers.join(", "))
            };
            let reason = format!(
                "{kept_noise}over {} MB ({size}); rows of the last {} by {c:?}{refs}",
                opts.full_below_mb, opts.keep
            );
            decide(Mode::Window, Some(c), reason)
        } else {
            decide(
                Mode::Full,
                None,
                format!("{kept_noise}over {} MB ({size}) but no creation-time column to window on", opts.full_below_mb),
            )
        };
        out.push((t.oid, d));
    }
    keep_parts_whole(catalog, &edges, &mut out);
    out.into_iter().map(|(_, d)| d).collect()
}

/// A windowed table and its parents kept in full: a part of one (named
/// after it) is kept full too, or older parent rows would come back
/// without their parts; any other such window is marked with its full
/// parents (the rows it leaves out are counted once the plan has run).
fn keep_parts_whole(catalog: &Catalog, edges: &Edges, out: &mut [(u32, Decision)]) {
    let full = |out: &[(u32, Decision)]| -> HashSet<u32> {
        out.iter().filter(|(_, d)| d.mode == Mode::Full).map(|(o, _)| *o).collect()
    };
    // Keeping a part full can make it the full parent of a part of its own.
    loop {
        let kept_full = full(out);
        let mut changed = false;
        for (oid, d) in out.iter_mut().filter(|(_, d)| d.mode == Mode::Window) {
            let t = catalog.table(*oid);
            let whole = edges
                .parents(*oid)
                .iter()
                .map(|p| catalog.table(*p))
                .find(|p| kept_full.contains(&p.oid) && named_after(&t.name.name, &p.name.name));
            if let Some(p) = whole {
                let (bytes, rows) = size_of(t, catalog);
                let parent = &p.name;
                *d = Decision {
                    table: t.name.clone(),
                    mode: Mode::Full,
                    column: None,
                    reason: format!(
                        "part of {parent} (named after it, references it), which is kept in full: a window would \
                         bring older {parent} rows back without their rows here ({})",
                        describe_size(bytes, rows)
                    ),
                    full_parents: Vec::new(),
                };
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let kept_full = full(out);
    for (oid, d) in out.iter_mut().filter(|(_, d)| d.mode == Mode::Window) {
        let parents: Vec<u32> = edges.parents(*oid).iter().copied().filter(|p| kept_full.contains(p)).collect();
        if parents.is_empty() {
            continue;
        }
        let names = abbreviate(names_of(catalog, &parents)).join(", ");
        d.reason.push_str(&format!(
            "; older rows are left out although {names} (their parents) are kept in full: move it to `full` to keep them"
        ));
        d.full_parents = parents.iter().map(|p| catalog.table(*p).name.clone()).collect();
    }
}

/// Adds to each window flagged by `keep_parts_whole` how many rows it
/// leaves out: `rows` gives a table's estimated total and the rows the
/// plan keeps (window and closure).
pub fn note_losses(decisions: &mut [Decision], rows: impl Fn(&TableName) -> Option<(i64, i64)>) {
    for d in decisions.iter_mut().filter(|d| !d.full_parents.is_empty()) {
        if let Some((total, kept)) = rows(&d.table) {
            let left = (total - kept).max(0);
            d.reason.push_str(&format!(" (~{left} of its ~{total} rows by the plan's estimate)"));
        }
    }
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

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn table_str(t: &TableName) -> String {
    toml_str(&if t.schema == "public" { t.name.clone() } else { t.to_string() })
}

/// The config file: `[database]` (never a password), `[storage]`, `[scope]`
/// with one comment per table, a commented `[files]`, and the plan's
/// estimate and warnings at the end.
pub fn render(db: &DatabaseConfig, storage: &Path, decisions: &[Decision], plan: &Plan, opts: &InitOptions) -> String {
    let mut s = String::new();
    let count = |m: Mode| decisions.iter().filter(|d| d.mode == m).count();
    s.push_str(&format!(
        "# lifeboat configuration proposed by `lifeboat init` for {} (PostgreSQL {}).\n\
         # {} tables: {} full, {} window, {} schema only. Each table's mode and the reason for it\n\
         # are below: review them, then run `lifeboat plan` to see the effect.\n\n",
        db.display_target(),
        plan.server_version,
        decisions.len(),
        count(Mode::Full),
        count(Mode::Window),
        count(Mode::Schema)
    ));
    s.push_str("[database]\n");
    s.push_str(&format!(
        "host = {}\nport = {}\nname = {}\nuser = {}\n",
        toml_str(&db.host),
        db.port,
        toml_str(&db.name),
        toml_str(&db.user)
    ));
    if db.sslmode != crate::config::SslMode::Prefer {
        s.push_str(&format!("sslmode = {}\n", toml_str(db.sslmode.as_str())));
    }
    for (key, path) in [("sslrootcert", &db.sslrootcert), ("sslcert", &db.sslcert), ("sslkey", &db.sslkey)] {
        if let Some(p) = path {
            s.push_str(&format!("{key} = {}\n", toml_str(&p.display().to_string())));
        }
    }
    s.push_str(
        "# The password is never written here: set POSTGRES_PASSWORD or DATABASE_URL, or\n\
         # password_file = \"/run/secrets/db_password\"\n\n",
    );
    s.push_str(&format!("[storage]\ndir = {}\n\n", toml_str(&storage.display().to_string())));
    s.push_str(
        "# Deployment files to keep with the database (relative to base_dir), e.g.:\n\
         # [files]\n# base_dir = \"/app\"\n# include = [\".env.production\", \"docker-compose.prod.yml\"]\n\n",
    );

    s.push_str("[scope]\n# A table named nowhere below is backed up in full and flagged by `lifeboat plan`.\ndefault = \"full\"\n");
    for (key, mode) in [("full", Mode::Full), ("schema_only", Mode::Schema)] {
        let list: Vec<&Decision> = decisions.iter().filter(|d| d.mode == mode).collect();
        if list.is_empty() {
            s.push_str(&format!("{key} = []\n"));
            continue;
        }
        s.push_str(&format!("{key} = [\n"));
        for d in list {
            s.push_str(&format!("  {}, # {}\n", table_str(&d.table), d.reason));
        }
        s.push_str("]\n");
    }
    for d in decisions.iter().filter(|d| d.mode == Mode::Window) {
        s.push_str(&format!(
            "\n# {}: {}\n[[scope.window]]\ntables = [{}]\ncolumn = {}\nkeep = {}\n",
            d.table,
            d.reason,
            table_str(&d.table),
            toml_str(d.column.as_deref().unwrap_or_default()),
            toml_str(&opts.keep.to_string())
        ));
    }
    let closure: u64 = plan.tables.iter().map(|t| t.closure_rows).sum();
    s.push_str(&format!(
        "\n# Estimated archive size: ~{} (the plan's estimate with these modes; closure adds {closure} rows).\n",
        human_bytes(plan.estimated_archive_bytes.max(0) as u64)
    ));
    for w in &plan.warnings {
        s.push_str(&format!("# warning: {w}\n"));
    }
    s
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
    use super::*;
    use crate::pg::catalog::{Column, ForeignKey};

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
            bytes: mb * 1_048_576,
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
