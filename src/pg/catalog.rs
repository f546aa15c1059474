//! What the database contains, read from the system catalogs inside the
//! snapshot: tables and their columns, foreign keys, sequences and a few
//! facts worth a warning (large objects). No decisions are made here.

use crate::pg::Client;
use serde::Serialize;

use crate::error::Result;
use crate::model::TableName;
use crate::pg::db_err;

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    pub type_name: String,
    /// `GENERATED ALWAYS AS (…) STORED`: never copied (the server computes it).
    pub generated: bool,
}

impl Column {
    /// Whether a window can be measured on this column.
    pub fn is_time(&self) -> bool {
        let t = self.type_name.as_str();
        t == "date" || t.starts_with("timestamp")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub oid: u32,
    pub name: TableName,
    /// `r` ordinary (incl. partitions), `p` partitioned parent.
    pub kind: char,
    pub columns: Vec<Column>,
    /// Planner estimate; `None` when the table was never analyzed.
    pub estimated_rows: Option<i64>,
    /// For a partition: the table it is a partition of.
    pub partition_of: Option<u32>,
    /// Heap + TOAST bytes on disk as of the last VACUUM/ANALYZE. Read from
    /// `relpages`, not `pg_table_size()`, which locks the table: a table
    /// locked by a migration must fail at our named `LOCK TABLE`, not here.
    pub bytes: i64,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Columns whose values are stored (copied out and back in).
    pub fn stored_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.generated)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ForeignKey {
    pub name: String,
    pub child: u32,
    pub parent: u32,
    pub columns: Vec<String>,
    pub ref_columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sequence {
    pub name: TableName,
}

#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub tables: Vec<Table>,
    pub foreign_keys: Vec<ForeignKey>,
    pub sequences: Vec<Sequence>,
    pub large_objects: i64,
}

impl Catalog {
    pub fn table(&self, oid: u32) -> &Table {
        self.tables.iter().find(|t| t.oid == oid).expect("oid from this catalog")
    }

    /// The foreign keys as rows see them: a key declared on or to a
    /// partitioned table holds for the rows of each of its leaf partitions
    /// (the parent itself has none), so it is listed once per pair of
    /// leaves. A referenced row lives in exactly one leaf (the partition key
    /// is part of every unique key of a partitioned table).
    pub fn row_foreign_keys(&self) -> Vec<ForeignKey> {
        let mut out = Vec::new();
        for fk in &self.foreign_keys {
            for child in self.leaves(fk.child) {
                for parent in self.leaves(fk.parent) {
                    out.push(ForeignKey { child, parent, ..fk.clone() });
                }
            }
        }
        out
    }

    /// `oid` itself when it holds rows, else its leaf partitions.
    pub fn leaves(&self, oid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut stack = vec![oid];
        while let Some(oid) = stack.pop() {
            if self.table(oid).kind != 'p' {
                out.push(oid);
            }
            stack.extend(self.tables.iter().filter(|t| t.partition_of == Some(oid)).map(|t| t.oid));
        }
        out
    }

    pub fn find(&self, name: &TableName) -> Option<&Table> {
        self.tables.iter().find(|t| &t.name == name)
    }
}

/// Schemas that belong to the system, never to the application.
const SYSTEM_SCHEMAS: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'";

/// Objects owned by an extension are recreated by `CREATE EXTENSION`.
const NOT_EXTENSION_MEMBER: &str =
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')";

pub fn read(client: &mut Client) -> Result<Catalog> {
    let rows = client
        .query(
            &format!(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, \
                        CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::int8 END, \
                        (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition), \
                        (c.relpages::int8 + coalesce(t.relpages, 0)) * current_setting('block_size')::int8 \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_class t ON t.oid = c.reltoastrelid \
                 WHERE c.relkind IN ('r', 'p') AND {SYSTEM_SCHEMAS} AND {NOT_EXTENSION_MEMBER} \
                 ORDER BY n.nspname, c.relname"
            ),
            &[],
        )
        .map_err(db_err("reading the table list"))?;
    let mut tables: Vec<Table> = rows
        .iter()
        .map(|r| Table {
            oid: r.get(0),
            name: TableName::new(r.get(1), r.get(2)),
            kind: r.get::<_, String>(3).chars().next().unwrap_or('r'),
            columns: Vec::new(),
            estimated_rows: r.get(4),
            partition_of: r.get(5),
            bytes: r.get(6),
        })
        .collect();
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();

    let cols = client
        .query(
            "SELECT attrelid, attname::text, format_type(atttypid, atttypmod), attgenerated <> '' \
             FROM pg_attribute WHERE attrelid = ANY($1) AND attnum > 0 AND NOT attisdropped \
             ORDER BY attrelid, attnum",
            &[&oids],
        )
        .map_err(db_err("reading columns"))?;
    for r in cols {
        let oid: u32 = r.get(0);
        if let Some(t) = tables.iter_mut().find(|t| t.oid == oid) {
            t.columns.push(Column { name: r.get(1), type_name: r.get(2), generated: r.get(3) });
        }
    }

    let fks = client
        .query(
            "SELECT con.conname::text, con.conrelid, con.confrelid, \
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i), \
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) \
             FROM pg_constraint con \
             WHERE con.contype = 'f' AND con.conrelid = ANY($1) AND con.conparentid = 0 \
             ORDER BY con.conrelid, con.conname",
            &[&oids],
        )
        .map_err(db_err("reading foreign keys"))?;
    let foreign_keys = fks
        .iter()
        .map(|r| ForeignKey {
            name: r.get(0),
            child: r.get(1),
            parent: r.get(2),
            columns: r.get(3),
            ref_columns: r.get(4),
        })
        .filter(|fk| oids.contains(&fk.parent))
        .collect();

    let seqs = client
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'S' AND {SYSTEM_SCHEMAS} AND {NOT_EXTENSION_MEMBER} ORDER BY 1, 2"
            ),
            &[],
        )
        .map_err(db_err("reading sequences"))?;
    let sequences = seqs.iter().map(|r| Sequence { name: TableName::new(r.get(0), r.get(1)) }).collect();

    let large_objects: i64 = client
        .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
        .map_err(db_err("counting large objects"))?
        .get(0);

    Ok(Catalog { tables, foreign_keys, sequences, large_objects })
}

/// The connected database's encoding and locale (`pg_database`), for the
/// manifest: `restore --create` makes its database the same. The locale
/// provider exists from PostgreSQL 15 (`libc` before), its locale is
/// `daticulocale` in 15 and 16, `datlocale` from 17.
pub fn database_encoding(
    client: &mut Client,
    server_version_num: i32,
) -> Result<crate::archive::manifest::DatabaseEncoding> {
    let provider = match server_version_num {
        ..=149_999 => "'c'::text, NULL::text",
        150_000..=169_999 => "datlocprovider::text, daticulocale::text",
        _ => "datlocprovider::text, datlocale::text",
    };
    let row = client
        .query_one(
            &format!(
                "SELECT pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text, {provider} \
                 FROM pg_database WHERE datname = current_database()"
            ),
            &[],
        )
        .map_err(db_err("reading the database's encoding and locale"))?;
    let provider: String = row.get(3);
    let locale_provider = match provider.as_str() {
        "i" => "icu",
        "b" => "builtin",
        _ => "libc",
    };
    Ok(crate::archive::manifest::DatabaseEncoding {
        encoding: row.get(0),
        collate: row.get(1),
        ctype: row.get(2),
        locale_provider: locale_provider.into(),
        provider_locale: if locale_provider == "libc" { None } else { row.get(4) },
    })
}
