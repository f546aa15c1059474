//! The two members written for people: `database/restore.sql` (the manual
//! restore path, psql only) and `BACKUP_INFO.txt` (summary and exact steps).

use std::fmt::Write as _;

use super::{Manifest, CONSTRAINTS, ROLES, SCHEMA, SEQUENCES};
use crate::model::{qualified, quote_literal};

/// A psql script run from the extracted archive's root. One transaction:
/// with `ON_ERROR_STOP` psql exits at the first error and the server rolls
/// everything back, so the target is never left half restored.
pub fn restore_sql(m: &Manifest) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "-- lifeboat archive restore script (format {}).", m.format_version);
    let _ = writeln!(s, "-- Run it from the directory the archive was extracted into:");
    let _ = writeln!(s, "--   createdb target && psql -X -v ON_ERROR_STOP=1 -d target -f database/restore.sql");
    let _ = writeln!(s, "-- Everything happens in one transaction: on any error nothing is kept.");
    let _ = writeln!(s, "-- Owners and GRANTs need their roles on the target: database/roles.sql (if present)");
    let _ = writeln!(s, "-- creates them; run it first with psql, once per cluster.");
    s.push_str("\\set ON_ERROR_STOP on\n\\echo 'lifeboat: creating schema'\nBEGIN;\n");
    let _ = writeln!(s, "\\i {SCHEMA}");
    // The CSV files are UTF-8 whatever the database encoding is.
    s.push_str("SET client_encoding = 'UTF8';\n\\echo 'lifeboat: loading rows'\n");
    for t in &m.tables {
        let (file, options) = match (&t.psql_file, &t.file) {
            (Some(copy), _) => {
                let _ = writeln!(
                    s,
                    "-- {}: COPY text format, its CSV has a line psql <= 17 takes for end-of-data",
                    t.display()
                );
                (copy, "")
            }
            (None, Some(csv)) => (csv, " WITH (FORMAT csv, HEADER)"),
            (None, None) => continue,
        };
        let _ = writeln!(s, "\\copy {} FROM {}{options}", t.copy_target(), quote_literal(file));
    }
    s.push_str("\\echo 'lifeboat: setting sequences'\n");
    let _ = writeln!(s, "\\i {SEQUENCES}");
    s.push_str("\\echo 'lifeboat: adding constraints and indexes'\n");
    let _ = writeln!(s, "\\i {CONSTRAINTS}");
    s.push_str("COMMIT;\nANALYZE;\n\\echo 'lifeboat: restore complete'\n");
    s
}

/// `setval` for every sequence, at the values read inside the snapshot.
pub fn sequences_sql(m: &Manifest) -> String {
    let mut s = String::from("-- Sequence values captured by lifeboat inside the backup snapshot.\n");
    for q in &m.sequences {
        let _ = writeln!(
            s,
            "SELECT pg_catalog.setval({}, {}, {});",
            quote_literal(&qualified(&q.schema, &q.name)),
            q.last_value,
            q.is_called
        );
    }
    s
}

/// Which rows a table's mode keeps, for people: `created_at >= … (3 months)`.
/// `window` is (column, cutoff, keep).
pub fn describe_rows(mode: crate::model::Mode, window: Option<(&str, &str, &str)>) -> String {
    match window {
        Some((column, cutoff, keep)) => format!("{column} >= {cutoff} ({keep})"),
        None if mode == crate::model::Mode::Schema => "structure only".into(),
        None => "all rows".into(),
    }
}

/// `signing`: the store key's base64 public key and id, when the archive
/// is signed.
pub fn backup_info(m: &Manifest, archive_name: &str, signing: Option<(&str, &str)>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "LIFEBOAT BACKUP  {archive_name}");
    let _ = writeln!(s, "==========================================================================");
    let _ = writeln!(s, "Created (UTC):     {}", m.created_at);
    let _ = writeln!(s, "Snapshot time:     {}  (all tables are from this one instant)", m.snapshot_time);
    let _ = writeln!(s, "Database:          {}  (PostgreSQL {})", m.database, m.server_version);
    let _ = writeln!(s, "Made with:         lifeboat {}, pg_dump {}", m.tool_version, m.pg_dump_version);
    let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
    let _ = writeln!(s, "Tables:            {} ({} rows in the archive)", m.tables.len(), rows);
    let _ = writeln!(s);
    let _ = writeln!(s, "{:<44} {:<7} {:>10} {:>8}  filter", "table", "mode", "rows", "closure");
    for t in &m.tables {
        let filter =
            describe_rows(t.mode, t.window.as_ref().map(|w| (w.column.as_str(), w.cutoff.as_str(), w.keep.as_str())));
        let flag = if t.unclassified { "  [unclassified]" } else { "" };
        let _ = writeln!(
            s,
            "{:<44} {:<7} {:>10} {:>8}  {filter}{flag}",
            t.display(),
            t.mode.to_string(),
            t.rows,
            t.closure_rows
        );
    }
    if !m.files.is_empty() {
        let _ = writeln!(s, "\nConfiguration files (under config/):");
        for f in &m.files {
            let _ = writeln!(
                s,
                "  {}  ({} bytes, mode {:o})",
                f.path.trim_start_matches(super::CONFIG_DIR),
                f.bytes,
                f.mode.unwrap_or(0o644)
            );
        }
    }
    if !m.warnings.is_empty() {
        let _ = writeln!(s, "\nWarnings:");
        for w in &m.warnings {
            let _ = writeln!(s, "  - {w}");
        }
    }
    let roles_step = if m.members.iter().any(|f| f.path == ROLES) {
        "     psql -X -d postgres -f database/roles.sql   # optional, first: the roles\n"
    } else {
        "     # no database/roles.sql in this archive (see Warnings): create the roles\n     \
         # schema.sql names (OWNER TO, GRANT ... TO) first, or use --no-owner\n"
    };
    let _ = writeln!(
        s,
        r#"
HOW TO RESTORE
--------------
{trust}
1. Check the archive, before anything from it runs (either way):
     lifeboat verify {archive_name}
   lifeboat trusts the key of the store its config names, [restore]
   trusted_keys and --trusted-key FILE, and refuses an archive none of
   them signed. Without lifeboat, check the signature first, then the sums:
     mkdir -p restore-dir && tar -xzf {archive_name} -C restore-dir
     cd restore-dir && minisign -Vm SHA256SUMS -p /path/to/signing.pub && sha256sum -c SHA256SUMS
   /path/to/signing.pub is your copy of the store's public key, never a
   file that came with the archive.

2a. With lifeboat (verifies, loads in one transaction, checks row counts):
     lifeboat restore {archive_name} --db postgres://USER@HOST:5432/NEW_DB
     lifeboat restore {archive_name} --db ... --config-dir ./restored-config   # config files too
     lifeboat restore {archive_name} --db ... --no-owner   # all owned by the --db role, no GRANTs
   Owners and privileges (GRANTs) are re-applied where their roles exist on
   the target; statements naming a role it lacks are skipped and reported.

2b. With nothing but psql, in restore-dir, once minisign and sha256sum
    above both passed (restore.sql runs what the archive holds, psql
    commands included):
{roles_step}     createdb NEW_DB
     psql -X -v ON_ERROR_STOP=1 -d NEW_DB -f database/restore.sql
   The script runs in one transaction and stops at the first error.
   Which file does what:
     database/roles.sql        the cluster's roles (pg_dumpall --roles-only, no
                               passwords): optional, once per cluster, for the
                               owners and GRANTs; "already exists" is harmless
     database/schema.sql       types, tables, functions, views: owners, GRANTs
     database/data/            the rows, one CSV per table (restore.sql \copy's them)
     database/sequences.sql    every sequence's value at the snapshot
     database/constraints.sql  keys, indexes, foreign keys, triggers
     database/restore.sql      all of the above but roles.sql, in one transaction
   The roles that own objects or hold GRANTs must exist on the target, or
   restore.sql stops at the first "role ... does not exist": create them
   (roles.sql, or by hand), or restore with lifeboat restore --no-owner.
   schema.sql and constraints.sql are pg_dump output; if they contain
   \restrict lines, use psql 15.14 / 16.10 / 17.6 or newer.

3. Configuration files are in config/ with their original relative paths
   (.env.production holds secrets: keep this archive private).

Rows of window tables are those at or after the cutoff shown above, plus
"closure" rows: older rows that kept rows reference, so every foreign key
is valid after the restore."#,
        trust = trust_note(signing)
    );
    s
}

/// Why the signature matters and which key made it. A forger rewrites
/// this file too, so it says where the real key is kept, not to trust the
/// one printed here.
fn trust_note(signing: Option<(&str, &str)>) -> String {
    let Some((key, id)) = signing else {
        return "This archive is UNSIGNED: nothing proves who made it, and lifeboat\n\
                refuses it unless told --insecure-accept-untrusted.\n"
            .into();
    };
    format!(
        r#"Restoring runs the archive's SQL, and the psql path runs psql commands
too (shell commands included). SHA256SUMS only shows the files agree with
each other: a forger recomputes it. SHA256SUMS.minisig shows that the store
which made this backup signed them, with its minisign key {id}:
     {key}
Do not trust that key because this file shows it (a forger rewrites this
file too): compare it with the copy of the store's public key you keep off
the backup host (`lifeboat config` prints it there; the file is
.lifeboat/signing.pub in the storage directory).
"#
    )
}
