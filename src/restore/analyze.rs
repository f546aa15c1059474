//! `ANALYZE` of the restored database, after the `COMMIT`, one relation at
//! a time over parallel connections.
//!
//! Why after the commit (issue 24): inside the restore's one transaction
//! `ANALYZE` ran on the one connection, table after table, while the
//! server's other cores idled — a third of the wall time after the rows
//! were in. Statistics decide nothing about what is restored: the row
//! counts are checked against the manifest (from the counts `COPY`
//! returned) and every member's hash before the commit, exactly as before,
//! so moving `ANALYZE` behind the commit gives up no safety property. What
//! it changes: a restore reported done has its statistics (the report's
//! `analyze` phase comes after `commit`), gathered over
//! `max(--jobs, 2)` connections, largest relation first; a failure here
//! (the server went away after the commit, a cancellation) leaves the data
//! committed and is reported as a warning naming the fix, not as a failed
//! restore. The same relations are analyzed as a plain `ANALYZE` would: every
//! table, partitioned table and materialized view outside the system schemas.

use crate::config::Target;
use crate::error::Result;
use crate::events::CancelToken;
use crate::pg::{db_err, Client};

use super::parallel;

/// Analyzes every user relation of `target` over `jobs` connections (at
/// least 2); `client` lists them. Returns how many were analyzed.
pub(super) fn analyze(client: &mut Client, target: &Target, jobs: usize, cancel: &CancelToken) -> Result<usize> {
    let relations: Vec<String> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname <> 'information_schema' \
               AND n.nspname !~ '^pg_(catalog$|toast|temp_)' \
             ORDER BY pg_catalog.pg_total_relation_size(c.oid) DESC, 1",
            &[],
        )
        .map_err(db_err("listing the restored relations to ANALYZE"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    parallel::fan_out(target, &relations, jobs.max(2), "", cancel, |c, relation| {
        cancel.check(&format!("analyzing {relation}"))?;
        c.batch_execute(&format!("ANALYZE {relation}")).map_err(db_err(format!("ANALYZE {relation}")))
    })?;
    Ok(relations.len())
}
