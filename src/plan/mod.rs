//! The plan: every table's mode, filter and closure rows, the config files,
//! and the warnings, computed inside the backup's snapshot. [`build`] has no
//! side effects; `lifeboat plan` prints its result and `lifeboat backup`
//! executes it, so the two can never disagree.

pub mod closure;
pub mod files;
pub mod keys;
mod scope;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::events::{Event, Progress, Watchdog};
pub use crate::model::FkPlan;
use crate::model::{DefaultMode, Mode, Span, TableName};
use crate::pg::catalog::{self, Catalog, ForeignKey};
use crate::pg::{self, db_err, quote_ident, quote_literal, Snapshot};
use files::FileSelection;
use keys::{Key, KeySet};

/// Above this many on-disk bytes a table gets a "large table" warning.
pub const LARGE_TABLE_BYTES: i64 = 50_000_000;
/// The archive budget of the service (US-2): warn above it.
pub const BUDGET_BYTES: i64 = 100_000_000;
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
    /// table's ACCESS SHARE lock), sorted, on disk.
    #[serde(skip)]
    pub closure: KeySet,
}

/// Closure rows copied by one COPY statement: the statement stays below
/// ~45 KB whatever the closure's size (see `copy_statement_stays_small`).
pub const COPY_BATCH: usize = 2_000;

/// Which rows one COPY statement reads.
#[derive(Clone, Copy)]
pub enum CopyRows<'a> {
    /// The rows the mode selects (CSV: with the header line).
    Base,
    /// These closure rows, ascending (CSV: no header; the base COPY wrote it).
    Closure(&'a [Key]),
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

    /// `schema.name` for messages.
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Whether the archive carries a CSV for this table.
    pub fn has_data_file(&self) -> bool {
        self.has_rows && (self.mode != Mode::Schema || self.closure_rows > 0)
    }

    /// One COPY statement of this table's member: the base rows, then
    /// [`COPY_BATCH`] closure rows at a time, all from the same snapshot
    /// into the same member. `text`: COPY text format instead of CSV.
    pub fn copy_sql(&self, rows: CopyRows, text: bool) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        let cols = cols.join(", ");
        let filter = match rows {
            CopyRows::Base => self.base_predicate("t"),
            CopyRows::Closure(keys) => {
                // Digits, commas and parentheses only (keys::ctid_text).
                let tids: Vec<String> = keys.iter().map(|k| format!("\"{}\"", keys::ctid_text(*k))).collect();
                // The batch is sorted: its block range lets the server read
                // only those pages (a TID range scan) instead of the table.
                let (first, last) = keys::block_range(keys);
                Some(format!(
                    "t.ctid >= '{first}'::tid AND t.ctid <= '{last}'::tid AND t.ctid = ANY({}::tid[])",
                    quote_literal(&format!("{{{}}}", tids.join(",")))
                ))
            }
        };
        let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
        let options = match (text, rows) {
            (true, _) => "(FORMAT text)",
            (false, CopyRows::Base) => "(FORMAT csv, HEADER)",
            (false, CopyRows::Closure(_)) => "(FORMAT csv)",
        };
        format!("COPY (SELECT {cols} FROM ONLY {} t{filter}) TO STDOUT {options}", self.qualified())
    }
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
    let (draft, job) = build_base(snap, config, watchdog, progress)?;
    progress(Event::Step("closure"));
    let sets = job.compute(&mut snap.client, watchdog, progress)?;
    Ok(draft.with_closure(sets))
}

/// What the referential closure needs, owned, so it can run on another
/// connection into the same snapshot while the base rows are copied
/// (`backup::run`).
pub struct ClosureJob {
    sources: Vec<closure::Source>,
    fks: Vec<pg::catalog::ForeignKey>,
    spill: std::path::PathBuf,
}

impl ClosureJob {
    /// The closure's added rows, one set per table of the plan, in order.
    pub fn compute(
        &self,
        client: &mut pg::client::Client,
        watchdog: &Watchdog,
        progress: Progress,
    ) -> Result<Vec<KeySet>> {
        closure::compute(client, &self.sources, &self.fks, &self.spill, watchdog, progress)
    }
}

/// A plan before its closure: every table's base rows are known, the rows
/// the closure adds are not.
pub struct Draft {
    plan: Plan,
}

impl Draft {
    /// The tables (closure rows still 0: [`TablePlan::has_data_file`] is not final).
    pub fn tables(&self) -> &[TablePlan] {
        &self.plan.tables
    }

    pub fn files(&self) -> &FileSelection {
        &self.plan.files
    }

    /// The archive's estimated size from the rows known so far.
    pub fn estimated_archive_bytes(&self) -> i64 {
        let estimated: i64 = self.plan.tables.iter().filter(|t| t.has_data_file()).map(|t| t.estimated_bytes).sum();
        (estimated as f64 * COMPRESSED_FRACTION) as i64
            + self.plan.files.files.iter().map(|f| f.bytes as i64).sum::<i64>()
    }

    /// The plan, with the closure's sets (indexed like the tables).
    pub fn with_closure(mut self, sets: Vec<KeySet>) -> Plan {
        for (t, set) in self.plan.tables.iter_mut().zip(sets) {
            t.closure_rows = set.len();
            t.closure = set;
        }
        let estimated_archive_bytes = self.estimated_archive_bytes();
        let mut plan = self.plan;
        plan.estimated_archive_bytes = estimated_archive_bytes;
        if plan.estimated_archive_bytes > BUDGET_BYTES {
            plan.warnings.push(format!(
                "estimated archive size ~{} is over the {} budget; narrow the windows or move tables to schema_only",
                crate::model::human_bytes(plan.estimated_archive_bytes.max(0) as u64),
                crate::model::human_bytes(BUDGET_BYTES as u64)
            ));
        }
        plan
    }
}

/// [`build`] without the closure: the scope resolved, every table locked,
/// windows cut, rows estimated, config files collected; and the closure's
/// job, to run on this snapshot's connection or one that imports it.
pub fn build_base(
    snap: &mut Snapshot,
    config: &Config,
    watchdog: &Watchdog,
    progress: Progress,
) -> Result<(Draft, ClosureJob)> {
    progress(Event::Step("plan"));
    watchdog.doing("reading the catalog");
    let catalog = catalog::read(&mut snap.client)?;
    let mut warnings = config.warnings.clone();
    let mut tables = scope::resolve_modes(&catalog, config, &mut warnings)?;

    for t in &catalog.tables {
        watchdog.doing(format!("locking {}", t.name));
        snap.lock(&config.database, &pg::qualified(&t.name.schema, &t.name.name), &t.name.to_string(), progress)?;
    }

    cut_windows(snap, &mut tables)?;
    estimate_windows(snap, watchdog, &catalog, &mut tables)?;
    sum_partitions(&catalog, &mut tables);
    let foreign_keys: Vec<FkPlan> = catalog.foreign_keys.iter().map(|fk| fk_plan(&catalog, fk)).collect();

    let sources: Vec<closure::Source> = tables
        .iter()
        .map(|t| closure::Source {
            oid: t.oid,
            qualified: t.qualified(),
            display: t.display(),
            mode: t.mode,
            has_rows: t.has_rows,
            child_predicate: t.base_predicate("c"),
            parent_predicate: t.base_predicate("p"),
        })
        .collect();
    let job = ClosureJob { sources, fks: catalog.row_foreign_keys(), spill: spill_dir(config) };

    let files = files::collect(&config.files)?;
    warn_about(config, &catalog, &tables, &files, &mut warnings);
    let plan = Plan {
        database: snap.database.clone(),
        server_version: snap.server_version.clone(),
        snapshot_time: snap.now.clone(),
        tables,
        foreign_keys,
        sequences: catalog.sequences.iter().map(|s| s.name.clone()).collect(),
        files,
        estimated_archive_bytes: 0,
        warnings,
    };
    Ok((Draft { plan }, job))
}

/// Sets each window's cutoff: one per distinct `keep`, from the snapshot's
/// own now().
fn cut_windows(snap: &mut Snapshot, tables: &mut [TablePlan]) -> Result<()> {
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
    Ok(())
}

/// Narrows each windowed table's row and byte estimates to its window,
/// from the planner's estimate (`EXPLAIN`).
fn estimate_windows(
    snap: &mut Snapshot,
    watchdog: &Watchdog,
    catalog: &Catalog,
    tables: &mut [TablePlan],
) -> Result<()> {
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
    Ok(())
}

/// A partitioned parent holds no rows of their own: its figures are the
/// sum of its leaves', each filtered by its own mode.
fn sum_partitions(catalog: &Catalog, tables: &mut [TablePlan]) {
    let mut sums: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
    for t in tables.iter().filter(|t| t.has_rows) {
        let mut at = catalog.table(t.oid).partition_of;
        while let Some(parent) = at {
            let sum = sums.entry(parent).or_default();
            sum.0 += t.estimated_rows;
            sum.1 += t.estimated_bytes;
            at = catalog.table(parent).partition_of;
        }
    }
    for t in tables.iter_mut().filter(|t| !t.has_rows) {
        (t.estimated_rows, t.estimated_bytes) = sums.get(&t.oid).copied().unwrap_or_default();
    }
}

/// The plan's warnings about what it found: unclassified tables, large
/// tables, large objects, config files missing, refused or unencrypted.
fn warn_about(
    config: &Config,
    catalog: &Catalog,
    tables: &[TablePlan],
    files: &FileSelection,
    warnings: &mut Vec<String>,
) {
    // A partitioned table is named once, with how many partitions it has.
    let unclassified_parent = |t: &TablePlan| {
        catalog.table(t.oid).partition_of.is_some_and(|p| tables.iter().any(|u| u.oid == p && u.unclassified))
    };
    let unclassified: Vec<String> = tables
        .iter()
        .filter(|t| t.unclassified && !unclassified_parent(t))
        .map(|t| match catalog.leaves(t.oid).len() {
            _ if t.has_rows => t.display(),
            n => format!("{} (partitioned, {n} partition(s))", t.display()),
        })
        .collect();
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
    // Partitions are counted in their parent's figure.
    for t in tables.iter().filter(|t| catalog.table(t.oid).partition_of.is_none()) {
        if t.mode != Mode::Schema && t.estimated_bytes > LARGE_TABLE_BYTES {
            warnings.push(format!(
                "large table {}.{}: ~{} in {} mode; consider a window or schema_only",
                t.schema,
                t.name,
                crate::model::human_bytes(t.estimated_bytes.max(0) as u64),
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
    for r in &files.refused {
        warnings.push(format!("{}; the backup will fail", r.describe()));
    }
    if !files.files.is_empty() && config.encryption.recipients.is_empty() {
        warnings.push(format!(
            "{} config file(s) (e.g. {}) will travel in the archive not encrypted: whoever gets the mail or the \
             link can read their secrets; set [encryption] recipients",
            files.files.len(),
            files.files[0].path
        ));
    }
}

/// Where the closure keeps its sorted row keys: the storage directory when
/// it exists (a backup has created it; /tmp may be RAM in a container), else
/// the system's temp directory (`lifeboat plan` creates nothing). The files
/// are deleted with the plan.
fn spill_dir(config: &Config) -> std::path::PathBuf {
    let dir = &config.storage.dir;
    if dir.is_dir() {
        dir.clone()
    } else {
        std::env::temp_dir()
    }
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
#[cfg(test)]
mod tests {
    use super::*;

    fn table(columns: usize) -> TablePlan {
        TablePlan {
            oid: 1,
            schema: "public".into(),
            name: "credit_transactions".into(),
            mode: Mode::Window,
            unclassified: false,
            columns: (0..columns).map(|i| format!("column_{i}")).collect(),
            window: Some(WindowPlan {
                column: "created_at".into(),
                keep: "3 months".parse().unwrap(),
                cutoff: "2026-09-01T00:00:00.000000Z".into(),
            }),
            has_rows: true,
            estimated_rows: 0,
            estimated_bytes: 0,
            closure_rows: 0,
            closure: KeySet::default(),
        }
    }

    // covers: FR-8.6
    #[test]
    fn copy_statement_stays_small_whatever_the_closure() {
        // The longest ctids there are, a full batch of them.
        let worst: Vec<Key> = (0..COPY_BATCH as u64).map(|i| (u32::MAX as u64 - i) << 16 | 0xffff).rev().collect();
        let t = table(20);
        let sql = t.copy_sql(CopyRows::Closure(&worst), false);
        assert!(sql.len() < 48 * 1024, "a closure COPY statement is {} bytes", sql.len());
        assert!(
            sql.contains("t.ctid >= '(4294965296,0)'::tid AND t.ctid <= '(4294967295,65535)'::tid"),
            "{}",
            &sql[..300]
        );
        assert!(sql.ends_with("(FORMAT csv)"), "no second header");
        assert!(t.copy_sql(CopyRows::Base, false).ends_with("(FORMAT csv, HEADER)"));
        assert!(t.copy_sql(CopyRows::Base, true).ends_with("(FORMAT text)"));
        assert!(t.copy_sql(CopyRows::Closure(&worst[..1]), true).ends_with("(FORMAT text)"));
    }
}
