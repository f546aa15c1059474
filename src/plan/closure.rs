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

use std::collections::{BTreeMap, BTreeSet};

use crate::pg::Client;

use crate::error::Result;
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
    pub mode: Mode,
    pub has_rows: bool,
    /// The rows the mode selects, as predicates on the aliases `c` (child
    /// side) and `p` (parent side); `None` = all rows.
    pub child_predicate: Option<String>,
    pub parent_predicate: Option<String>,
}

/// Which rows of a child table a round starts from.
enum Delta {
    /// The rows its mode selects.
    Base,
    /// Rows pulled in by the previous round.
    Rows(Vec<String>),
}

/// The `ctid`s each table gains (indexed like `tables`, sorted).
pub fn compute(
    client: &mut Client,
    tables: &[Source],
    fks: &[ForeignKey],
    watchdog: &Watchdog,
    progress: Progress,
) -> Result<Vec<BTreeSet<String>>> {
    let index = |oid: u32| tables.iter().position(|t| t.oid == oid).expect("table of the catalog");
    // Only edges whose parent is not complete can pull rows in.
    let edges: Vec<(&ForeignKey, usize, usize)> = fks
        .iter()
        .map(|fk| (fk, index(fk.child), index(fk.parent)))
        .filter(|(_, _, p)| tables[*p].mode != Mode::Full && tables[*p].has_rows)
        .collect();
    let mut added: Vec<BTreeSet<String>> = vec![BTreeSet::new(); tables.len()];
    if edges.is_empty() {
        return Ok(added);
    }
    progress(Event::Step("closure"));

    let mut delta: BTreeMap<usize, Delta> = tables
        .iter()
        .enumerate()
        .filter(|(_, t)| t.has_rows && t.mode != Mode::Schema)
        .map(|(i, _)| (i, Delta::Base))
        .collect();
    let mut round = 0;
    while !delta.is_empty() {
        round += 1;
        let mut next: BTreeMap<usize, Vec<String>> = BTreeMap::new();
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
            let (child_filter, ctids) = match d {
                Delta::Base => (child.child_predicate.clone().unwrap_or_else(|| "true".into()), None),
                Delta::Rows(ctids) => ("c.ctid = ANY($1::text[]::tid[])".to_string(), Some(ctids)),
            };
            let sql = format!(
                "SELECT DISTINCT p.ctid::text FROM ONLY {} c JOIN ONLY {} p ON {} WHERE ({child_filter}) AND NOT coalesce({parent_base}, false)",
                child.qualified,
                parent.qualified,
                join.join(" AND ")
            );
            watchdog.doing(format!("following foreign key {} ({} → {})", fk.name, child.qualified, parent.qualified));
            let rows = match ctids {
                Some(ctids) => client.query(&sql, &[ctids]),
                None => client.query(&sql, &[]),
            }
            .map_err(db_err(format!("computing the referential closure along {}", fk.name)))?;
            watchdog.tick(rows.len() as u64);
            tracing::debug!(fk = %fk.name, round, rows = rows.len(), "closure step");
            for r in rows {
                let ctid: String = r.get(0);
                if added[*p].insert(ctid.clone()) {
                    next.entry(*p).or_default().push(ctid);
                }
            }
        }
        progress(Event::Detail(format!(
            "closure round {round}: {} row(s) added",
            next.values().map(Vec::len).sum::<usize>()
        )));
        delta = next.into_iter().map(|(i, v)| (i, Delta::Rows(v))).collect();
    }
    Ok(added)
}
