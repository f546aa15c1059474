//! The pure decision: from catalog facts to one mode per table with its
//! reason, by the rules in the [module documentation](super).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::{human_bytes, Mode, TableName};
use crate::pg::catalog::{Catalog, Table};
use crate::plan::LARGE_TABLE_BYTES;

use super::{Decision, InitOptions};

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
pub(super) fn words(name: &str) -> Vec<String> {
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
pub(super) fn named_after(child: &str, parent: &str) -> bool {
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

pub(super) fn size_of(t: &Table, catalog: &Catalog) -> (i64, Option<i64>) {
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
    let small = i64::try_from(opts.full_below_mb.saturating_mul(crate::model::MB)).unwrap_or(i64::MAX);
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
