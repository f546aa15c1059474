//! What a round trip compares: ordered row hashes, the normalized schema,
//! foreign-key validity and sequence positions.

use std::collections::BTreeMap;

use postgres::Client;

use super::{clean_command, pg_bin, pg_error};

/// Text forms of values depend on session settings; pin them so two
/// databases (or servers) hash the same rows the same way.
const RENDER_SETTINGS: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; \
    SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'";

/// `(row count, md5 of every row's text form, sorted)` of a table, e.g.
/// `"public.users"` or `"\"Odd\".\"Name\""`. Empty table: `(0, "")`.
pub fn table_fingerprint(client: &mut Client, qualified_table: &str) -> (i64, String) {
    query_fingerprint(client, &format!("SELECT * FROM {qualified_table}"))
}

/// Like [`table_fingerprint`], for the rows of any query, e.g. the rows of
/// a window: `SELECT * FROM payments WHERE created_at >= now() - interval '3 months'`.
pub fn query_fingerprint(client: &mut Client, select_sql: &str) -> (i64, String) {
    // Sorting under "C" makes the hash independent of the database's collation.
    let sql = format!(
        "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE \"C\")), '') \
         FROM ({select_sql}) t"
    );
    let mut tx = client.transaction().expect("cannot begin a transaction");
    tx.batch_execute(RENDER_SETTINGS).expect("cannot pin render settings");
    let row = tx.query_one(sql.as_str(), &[]).unwrap_or_else(|e| panic!("{}\n{sql}", pg_error(&e, &sql)));
    tx.commit().expect("cannot commit");
    (row.get(0), row.get(1))
}

/// [`table_fingerprint`] of every table outside the system schemas for
/// which `filter` holds; `filter` is SQL over `n.nspname` and `c.relname`
/// (`"true"` for all). Keyed by `schema.table`. Partitions are counted in
/// their parent.
pub fn all_fingerprints(url: &str, filter: &str) -> BTreeMap<String, (i64, String)> {
    let mut client = super::connect(url);
    let sql = format!(
        "SELECT n.nspname || '.' || c.relname, format('%I.%I', n.nspname, c.relname) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' \
           AND ({filter}) \
         ORDER BY 1"
    );
    let tables = client.query(sql.as_str(), &[]).unwrap_or_else(|e| panic!("{}\n{sql}", pg_error(&e, &sql)));
    tables.iter().map(|row| (row.get::<_, String>(0), table_fingerprint(&mut client, row.get(1)))).collect()
}

/// `pg_dump --schema-only --no-owner --no-privileges`, without what differs
/// between two databases of the same schema: comments (`--`), `SET` and
/// `set_config` lines, psql's `\restrict`/`\unrestrict` (pg_dump ≥ 15.14),
/// and empty lines. Lines are split at `\n` only, so a `\r` inside a
/// function body, comment or default still counts (`str::lines` would drop
/// it and hide a restore that lost it).
pub fn schema_dump(url: &str) -> String {
    let out = clean_command(pg_bin("pg_dump"))
        .args(["--schema-only", "--no-owner", "--no-privileges", "-d", url])
        .output()
        .expect("cannot run pg_dump");
    assert!(out.status.success(), "pg_dump --schema-only {url} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    normalize_dump(&String::from_utf8(out.stdout).expect("pg_dump output is UTF-8"))
}

pub(super) fn normalize_dump(dump: &str) -> String {
    dump.split('\n')
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("--")
                || l.starts_with("\\restrict")
                || l.starts_with("\\unrestrict")
                || l.starts_with("SET ")
                || l.starts_with("SELECT pg_catalog.set_config"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Every foreign key as `(schema.table.constraint, convalidated)`, sorted.
pub fn fk_report(client: &mut Client) -> Vec<(String, bool)> {
    client
        .query(
            "SELECT n.nspname || '.' || c.relname || '.' || k.conname, k.convalidated \
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE k.contype = 'f' ORDER BY 1",
            &[],
        )
        .expect("cannot list foreign keys")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Every sequence's `last_value` (`None` if never used), keyed by
/// `schema.sequence`: a restore must leave each at least at the source's.
pub fn sequence_values(client: &mut Client) -> BTreeMap<String, Option<i64>> {
    client
        .query("SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences ORDER BY 1", &[])
        .expect("cannot read pg_sequences")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}
