//! Referential closure: the rows a table's mode leaves out but an included
//! row points at (an old transaction a recent reversal references, a
//! conversation older than the window, a log row's parent), pulled in
//! transitively so that every foreign key restores valid.
//!
//! Computed with plain queries inside the read-only snapshot (no temp tables:
//! `CREATE TEMP TABLE` is refused in a `READ ONLY` transaction), semi-naively:
//! each round follows every foreign key only from the rows that were added in
//! the previous round, until a round adds nothing. Cycles and self-references
//! end because a row is added at most once. Rows are identified by `ctid`,
//! which is stable for the snapshot's visible rows while the table is locked
//! ACCESS SHARE (no VACUUM FULL/CLUSTER can move them).
//!
//! Foreign keys are followed between leaf tables (a key on or to a
//! partitioned table holds for each of its partitions), so a partition with
//! a mode of its own gets the rows children reference like any table.
//!
//! Memory is bounded whatever the size of the closure: result rows are
//! streamed, keys go to sorted sets on disk ([`super::keys`]), and a round
//! starts from the previous round's keys [`QUERY_BATCH`] at a time.

use std::collections::BTreeMap;
use std::path::Path;

use tokio_postgres::types::ToSql;

use crate::pg::Client;

use super::keys::{self, Collector, KeySet};
use crate::error::{Error, Result};
use crate::events::{Event, Progress, Watchdog};
use crate::model::Mode;
use crate::pg::catalog::ForeignKey;
use crate::pg::{db_err, quote_ident};

/// What the closure needs to know about one table. The plan builds these
/// from its `TablePlan`s; the closure does not know plan types (no cycle).
#[derive(Debug, Clone)]
pub struct Source {
    pub oid: u32,
    /// `"schema"."table"`, quoted.
    pub qualified: String,
    /// `schema.table`, for messages.
    pub display: String,
    pub mode: Mode,
    pub has_rows: bool,
    /// The rows the mode selects, as predicates on the aliases `c` (child
    /// side) and `p` (parent side); `None` = all rows.
    pub child_predicate: Option<String>,
    pub parent_predicate: Option<String>,
}

/// Keys sent with one closure query (a bind parameter of ~150 KB, never
/// statement text).
pub const QUERY_BATCH: usize = 10_000;

/// Which rows of a child table a round starts from.
enum Delta {
    /// The rows its mode selects.
    Base,
    /// Rows pulled in by the previous round.
    Rows(KeySet),
}

/// The `ctid`s each table gains (indexed like `tables`), as sorted sets on
/// disk in `spill`. `fks` are between leaf tables
/// ([`crate::pg::catalog::Catalog::row_foreign_keys`]).
pub fn compute(
    client: &mut Client,
    tables: &[Source],
    fks: &[ForeignKey],
    spill: &Path,
    watchdog: &Watchdog,
    progress: Progress,
) -> Result<Vec<KeySet>> {
    let index = |oid: u32| tables.iter().position(|t| t.oid == oid).expect("table of the catalog");
    // Only edges whose parent is not complete can pull rows in.
    let edges: Vec<(&ForeignKey, usize, usize)> = fks
        .iter()
        .map(|fk| (fk, index(fk.child), index(fk.parent)))
        .filter(|(_, _, p)| tables[*p].mode != Mode::Full && tables[*p].has_rows)
        .collect();
    let mut added: Vec<KeySet> = vec![KeySet::default(); tables.len()];
    if edges.is_empty() {
        return Ok(added);
    }
    let spill_err = |e| Error::io("keeping closure row keys in a temporary file in", spill, e);

    let mut delta: BTreeMap<usize, Delta> = tables
        .iter()
        .enumerate()
        .filter(|(_, t)| t.has_rows && t.mode != Mode::Schema)
        .map(|(i, _)| (i, Delta::Base))
        .collect();
    let mut round = 0;
    while !delta.is_empty() {
        round += 1;
        let mut found: BTreeMap<usize, Collector> = BTreeMap::new();
        for (fk, c, p) in &edges {
            let Some(d) = delta.get(c) else { continue };
            let (child, parent) = (&tables[*c], &tables[*p]);
            let join: Vec<String> = fk
                .columns
                .iter()
                .zip(&fk.ref_columns)
                .map(|(a, b)| format!("p.{} = c.{}", quote_ident(b), quote_ident(a)))
                .collect();
            let parent_base = parent.parent_predicate.clone().unwrap_or_else(|| "true".into());
            let child_filter = match d {
                Delta::Base => child.child_predicate.clone().unwrap_or_else(|| "true".into()),
                // The block range of the (sorted) batch lets the server read
                // only those pages (a TID range scan) instead of the table.
                Delta::Rows(_) => {
                    "c.ctid >= $2::text::tid AND c.ctid <= $3::text::tid AND c.ctid = ANY($1::text[]::tid[])"
                        .to_string()
                }
            };
            let sql = format!(
                "SELECT DISTINCT p.ctid::text FROM ONLY {} c JOIN ONLY {} p ON {} WHERE ({child_filter}) AND NOT coalesce({parent_base}, false)",
                child.qualified,
                parent.qualified,
                join.join(" AND ")
            );
            watchdog.doing(format!("following foreign key {} ({} → {})", fk.name, child.display, parent.display));
            let into = found.entry(*p).or_insert_with(|| Collector::new(spill));
            let context = || {
                format!("computing the referential closure along {} ({} → {})", fk.name, child.display, parent.display)
            };
            let mut rows = 0u64;
            match d {
                Delta::Base => {
                    rows += stream_keys(client, &sql, &[], into, watchdog).map_err(|e| e.context(context(), spill))?
                }
                Delta::Rows(set) => {
                    for batch in set.batches(QUERY_BATCH).map_err(spill_err)? {
                        let batch = batch.map_err(spill_err)?;
                        let (first, last) = keys::block_range(&batch);
                        let texts: Vec<String> = batch.into_iter().map(keys::ctid_text).collect();
                        rows += stream_keys(client, &sql, &[&texts, &first, &last], into, watchdog)
                            .map_err(|e| e.context(context(), spill))?;
                    }
                }
            }
            tracing::debug!(fk = %fk.name, round, rows, "closure step");
        }
        let mut next = BTreeMap::new();
        let mut count = 0;
        for (p, collector) in found {
            let new = collector.finish().map_err(spill_err)?;
            let (fresh, union) = keys::absorb(spill, &added[p], &new).map_err(spill_err)?;
            added[p] = union;
            count += fresh.len();
            if !fresh.is_empty() {
                next.insert(p, Delta::Rows(fresh));
            }
        }
        progress(Event::Detail(format!("closure round {round}: {count} row(s) added")));
        delta = next;
    }
    Ok(added)
}

/// Why a closure query failed: the server, or the temp file of keys.
enum StreamError {
    Db(tokio_postgres::Error),
    Spill(std::io::Error),
    Bad(String),
}

impl StreamError {
    fn context(self, context: String, spill: &Path) -> Error {
        match self {
            StreamError::Db(e) => db_err(context)(e),
            StreamError::Spill(e) => Error::io(format!("{context}: keeping row keys in a temporary file in"), spill, e),
            StreamError::Bad(ctid) => Error::Failed(format!("{context}: the server returned {ctid:?} as a ctid")),
        }
    }
}

/// Runs `sql` (one `ctid::text` column) and adds every row's key to `into`,
/// one row at a time; the number of rows.
fn stream_keys(
    client: &mut Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    into: &mut Collector,
    watchdog: &Watchdog,
) -> std::result::Result<u64, StreamError> {
    let mut rows = client.query_raw(sql, params).map_err(StreamError::Db)?;
    let mut n = 0;
    while let Some(row) = rows.next_row().map_err(StreamError::Db)? {
        let ctid: &str = row.get(0);
        into.push(keys::parse_ctid(ctid).ok_or_else(|| StreamError::Bad(ctid.to_string()))?)
            .map_err(StreamError::Spill)?;
        n += 1;
        if n % 4096 == 0 {
            watchdog.tick(4096);
        }
    }
    Ok(n)
}
