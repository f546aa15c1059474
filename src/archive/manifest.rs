//! `manifest.json`: what the archive holds and how it was made (format and
//! tool versions, snapshot time, per-table mode, filter, rows, closure rows,
//! bytes and SHA-256, foreign keys, sequences, files). Field names and order
//! are the archive format (v1): changing them changes the format.

use serde::{Deserialize, Serialize};

use crate::model::{FkPlan, Mode};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub tool_version: String,
    pub created_at: String,
    pub snapshot_time: String,
    pub database: String,
    pub server_version: String,
    pub pg_dump_version: String,
    pub tables: Vec<ManifestTable>,
    pub foreign_keys: Vec<FkPlan>,
    pub sequences: Vec<SequenceValue>,
    pub files: Vec<ManifestFile>,
    /// The `database/*.sql` members.
    pub members: Vec<ManifestFile>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestTable {
    pub schema: String,
    pub name: String,
    pub mode: Mode,
    pub unclassified: bool,
    pub columns: Vec<String>,
    /// The mode's row filter (closure rows come on top of it).
    pub filter: Option<String>,
    pub window: Option<ManifestWindow>,
    pub rows: u64,
    pub closure_rows: u64,
    pub bytes: u64,
    pub sha256: Option<String>,
    pub file: Option<String>,
    /// Only for tables whose CSV has a line that is exactly `\.`: the same
    /// rows in COPY text format, which `restore.sql` loads instead because
    /// psql ≤ 17's `\copy` would stop at that line. Listed in `members`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psql_file: Option<String>,
}

impl ManifestTable {
    /// `"schema"."table" ("a", "b")` for COPY FROM; a table without
    /// columns takes no list (`()` is a syntax error).
    pub fn copy_target(&self) -> String {
        if self.columns.is_empty() {
            return self.qualified();
        }
        let cols: Vec<String> = self.columns.iter().map(|c| crate::pg::quote_ident(c)).collect();
        format!("{} ({})", self.qualified(), cols.join(", "))
    }

    pub fn qualified(&self) -> String {
        crate::pg::qualified(&self.schema, &self.name)
    }
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestWindow {
    pub column: String,
    pub keep: String,
    pub cutoff: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SequenceValue {
    pub schema: String,
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestFile {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    pub bytes: u64,
    pub sha256: String,
}
