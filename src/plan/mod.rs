//! The plan: every table's mode, filter and closure rows, the config files,
//! and the warnings, computed inside the backup's snapshot. [`build`] has no
//! side effects; `lifeboat plan` prints its result and `lifeboat backup`
//! executes it, so the two can never disagree.

pub mod closure;
pub mod files;
mod scope;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{Event, Progress, Watchdog};
pub use crate::model::FkPlan;
use crate::model::{DefaultMode, Mode, Span, TableName};
use crate::pg::catalog::{self, Catalog, ForeignKey};
use crate::pg::{self, db_err, quote_ident, quote_literal, Snapshot};
use files::FileSelection;

/// Above this many on-disk bytes a table gets a "large table" warning.
pub const LARGE_TABLE_BYTES: i64 = 50 * 1024 * 1024;
/// The archive budget of the service (US-2): warn above it.
pub const BUDGET_BYTES: i64 = 100 * 1024 * 1024;
/// CSV inside gzip is typically this fraction of the heap size; only used for
/// the estimate, never for a decision.
const COMPRESSED_FRACTION: f64 = 0.3;

#[derive(Debug, Clone, Serialize)]
pub struct WindowPlan {
    pub column: String,
    pub keep: Span,
    /// UTC instant: rows at or after it are in the window.
    pub cutoff: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TablePlan {
    #[serde(skip)]
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub mode: Mode,
    /// Not named by the config: backed up per `scope.default` and flagged.
    pub unclassified: bool,
    /// Columns copied out and in (generated columns excluded).
    pub columns: Vec<String>,
    pub window: Option<WindowPlan>,
    /// Partitioned parents hold no rows of their own.
    pub has_rows: bool,
    pub estimated_rows: i64,
    pub estimated_bytes: i64,
    /// Rows outside the mode pulled in so every foreign key restores valid.
    pub closure_rows: u64,
    /// Their `ctid`s in the snapshot (stable while the snapshot holds the
    /// table's ACCESS SHARE lock).
    #[serde(skip)]
    pub closure_ctids: Vec<String>,
}

impl TablePlan {
    pub fn table_name(&self) -> TableName {
        TableName::new(&self.schema, &self.name)
    }

    pub fn qualified(&self) -> String {
        pg::qualified(&self.schema, &self.name)
    }

    /// The rows the mode selects, as a predicate on `alias`; `None` = all.
    pub fn base_predicate(&self, alias: &str) -> Option<String> {
        match (self.mode, &self.window) {
            (Mode::Full, _) => None,
            (Mode::Window, Some(w)) => {
                Some(format!("{alias}.{} >= {}::timestamptz", quote_ident(&w.column), quote_literal(&w.cutoff)))
            }
            _ => Some("false".into()),
        }
    }

    /// The SQL filter recorded in the manifest (and used by COPY).
    pub fn filter(&self) -> Option<String> {
        let base = self.base_predicate("t")?;
        if self.closure_ctids.is_empty() {
            return Some(base);
        }
        Some(format!("{base} OR t.ctid = ANY({}::tid[])", tid_array_literal(&self.closure_ctids)))
    }

    /// Whether the archive carries a CSV for this table.
    pub fn has_data_file(&self) -> bool {
        self.has_rows && (self.mode != Mode::Schema || self.closure_rows > 0)
    }

    pub fn copy_sql(&self) -> String {
        self.copy_sql_with("(FORMAT csv, HEADER)")
    }

    /// The same rows in COPY text format.
    pub fn copy_sql_text(&self) -> String {
        self.copy_sql_with("(FORMAT text)")
    }

    fn copy_sql_with(&self, options: &str) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        let cols = if cols.is_empty() { String::new() } else { cols.join(", ") };
        let filter = self.filter().map(|f| format!(" WHERE {f}")).unwrap_or_default();
        format!("COPY (SELECT {cols} FROM ONLY {} t{filter}) TO STDOUT {options}", self.qualified())
    }
}

/// ctids come from the server as `(block,offset)`; the check keeps the
/// literal safe to embed even so.
pub fn tid_array_literal(ctids: &[String]) -> String {
    let body: Vec<String> = ctids
        .iter()
        .map(|c| {
            assert!(c.chars().all(|ch| ch.is_ascii_digit() || ch == '(' || ch == ')' || ch == ','), "ctid {c:?}");
            format!("\"{c}\"")
        })
        .collect();
    quote_literal(&format!("{{{}}}", body.join(",")))
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub database: String,
    pub server_version: String,
    pub snapshot_time: String,
    pub tables: Vec<TablePlan>,
    pub foreign_keys: Vec<FkPlan>,
    pub sequences: Vec<TableName>,
    pub files: FileSelection,
    pub estimated_archive_bytes: i64,
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn unclassified(&self) -> impl Iterator<Item = &TablePlan> {
        self.tables.iter().filter(|t| t.unclassified)
    }
}

/// Resolves the scope against the catalog read inside `snap`, locks every
/// table (ACCESS SHARE, so nothing can rewrite them under the snapshot and a
/// lock timeout names the table), and computes the referential closure.
pub fn build(snap: &mut Snapshot, config: &Config, watchdog: &Watchdog, progress: Progress) -> Result<Plan> {
    progress(Event::Step("plan"));
    watchdog.doing("reading the catalog");
    let catalog = catalog::read(&mut snap.client)?;
    let mut tables = scope::resolve_modes(&catalog, config)?;

    for t in &catalog.tables {
        watchdog.doing(format!("locking {}", t.name));
        snap.client
            .batch_execute(&format!(
                "LOCK TABLE ONLY {} IN ACCESS SHARE MODE",
                pg::qualified(&t.name.schema, &t.name.name)
            ))
            .map_err(|e| match pg::sqlstate(&e) {
                Some("55P03") => {
                    Error::LockTimeout { table: t.name.to_string(), timeout: config.database.lock_timeout.to_string() }
                }
                _ => db_err(format!("locking table {}", t.name))(e),
            })?;
    }

    // One cutoff per distinct `keep`, from the snapshot's own now().
    let mut cutoffs: BTreeMap<String, String> = BTreeMap::new();
    for t in tables.iter_mut() {
        if let Some(w) = &mut t.window {
            let key = w.keep.sql_interval();
            if !cutoffs.contains_key(&key) {
                let row = snap
                    .client
                    .query_one(
                        "SELECT to_char((now() - $1::text::interval) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                        &[&key],
                    )
                    .map_err(db_err("computing the window cutoff"))?;
                cutoffs.insert(key.clone(), row.get(0));
            }
            w.cutoff = cutoffs[&key].clone();
        }
    }

    for t in tables.iter_mut().filter(|t| t.mode == Mode::Window && t.has_rows) {
        watchdog.doing(format!("estimating {}", t.qualified()));
        let pred = t.base_predicate("t").expect("window");
        let rows = snap
            .client
            .query(&format!("EXPLAIN SELECT 1 FROM ONLY {} t WHERE {pred}", t.qualified()), &[])
            .map_err(db_err(format!("estimating rows of {}", t.qualified())))?;
        let first: String = rows.first().map(|r| r.get(0)).unwrap_or_default();
        let estimate =
            first.split("rows=").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|s| s.parse::<i64>().ok());
        let total = catalog.table(t.oid).estimated_rows.unwrap_or(0).max(1);
        if let Some(rows) = estimate {
            t.estimated_bytes = (t.estimated_bytes as f64 * (rows.min(total) as f64 / total as f64)) as i64;
            t.estimated_rows = rows.min(total);
        }
    }

    let foreign_keys: Vec<FkPlan> = catalog.foreign_keys.iter().map(|fk| fk_plan(&catalog, fk)).collect();
    let sources: Vec<closure::Source> = tables
        .iter()
        .map(|t| closure::Source {
            oid: t.oid,
            qualified: t.qualified(),
            mode: t.mode,
            has_rows: t.has_rows,
            child_predicate: t.base_predicate("c"),
            parent_predicate: t.base_predicate("p"),
        })
        .collect();
    let added = closure::compute(&mut snap.client, &sources, &catalog.row_foreign_keys(), watchdog, progress)?;
    for (t, set) in tables.iter_mut().zip(added) {
        t.closure_rows = set.len() as u64;
        t.closure_ctids = set.into_iter().collect();
    }

    let files = files::collect(&config.files)?;
    let mut warnings = config.warnings.clone();
    let unclassified: Vec<String> =
        tables.iter().filter(|t| t.unclassified).map(|t| format!("{}.{}", t.schema, t.name)).collect();
    if !unclassified.is_empty() {
        let how = match config.scope.default {
            DefaultMode::Full => "backed up in full",
            DefaultMode::Schema => "backed up schema-only",
        };
        warnings.push(format!(
            "{} table(s) not named in [scope] are {how} (scope.default): {}; classify them in the config",
            unclassified.len(),
            unclassified.join(", ")
        ));
    }
    for t in &tables {
        if t.mode != Mode::Schema && t.estimated_bytes > LARGE_TABLE_BYTES {
            warnings.push(format!(
                "large table {}.{}: ~{} MB in {} mode; consider a window or schema_only",
                t.schema,
                t.name,
                t.estimated_bytes / 1_048_576,
                t.mode
            ));
        }
    }
    if catalog.large_objects > 0 {
        warnings
            .push(format!("{} large object(s) (pg_largeobject) exist and are not backed up", catalog.large_objects));
    }
    for m in &files.missing {
        warnings.push(if m.required {
            format!(
                "config file pattern {:?} matches nothing under {}: the backup will fail",
                m.pattern,
                base_dir(config)
            )
        } else {
            format!("optional config file pattern {:?} matches nothing", m.pattern)
        });
    }
    let estimated: i64 = tables.iter().filter(|t| t.has_data_file()).map(|t| t.estimated_bytes).sum();
    let estimated_archive_bytes =
        (estimated as f64 * COMPRESSED_FRACTION) as i64 + files.files.iter().map(|f| f.bytes as i64).sum::<i64>();
    if estimated_archive_bytes > BUDGET_BYTES {
        warnings.push(format!(
            "estimated archive size ~{} MB is over the 100 MB budget; narrow the windows or move tables to schema_only",
            estimated_archive_bytes / 1_048_576
        ));
    }

    Ok(Plan {
        database: snap.database.clone(),
        server_version: snap.server_version.clone(),
        snapshot_time: snap.now.clone(),
        tables,
        foreign_keys,
        sequences: catalog.sequences.iter().map(|s| s.name.clone()).collect(),
        files,
        estimated_archive_bytes,
        warnings,
    })
}

fn base_dir(config: &Config) -> String {
    config.files.base_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
}

fn fk_plan(catalog: &Catalog, fk: &ForeignKey) -> FkPlan {
    let (c, p) = (catalog.table(fk.child), catalog.table(fk.parent));
    FkPlan {
        name: fk.name.clone(),
        schema: c.name.schema.clone(),
        table: c.name.name.clone(),
        columns: fk.columns.clone(),
        ref_schema: p.name.schema.clone(),
        ref_table: p.name.name.clone(),
        ref_columns: fk.ref_columns.clone(),
    }
}
