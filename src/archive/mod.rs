//! The archive format (v1): member names, the manifest, `SHA256SUMS`, and
//! the two halves that write and read it. See DESIGN.md §4 and the spec's
//! Data Models section.
//!
//! Member order is part of the format: `database/schema.sql` first, then the
//! data, `sequences.sql`, `constraints.sql`, `restore.sql`, `config/…`,
//! `manifest.json`, `BACKUP_INFO.txt`, `SHA256SUMS`, and its signature
//! `SHA256SUMS.minisig` last, so a restore can stream the archive once
//! without extracting it.

pub mod reader;
pub mod signature;
pub mod texts;
pub mod writer;

use serde::{Deserialize, Serialize};

use crate::config::Mode;

pub const FORMAT: &str = "lifeboat-archive";
pub const FORMAT_VERSION: u32 = 1;

pub const SCHEMA: &str = "database/schema.sql";
pub const SEQUENCES: &str = "database/sequences.sql";
pub const CONSTRAINTS: &str = "database/constraints.sql";
pub const RESTORE_SQL: &str = "database/restore.sql";
pub const DATA_DIR: &str = "database/data/";
pub const CONFIG_DIR: &str = "config/";
pub const MANIFEST: &str = "manifest.json";
pub const INFO: &str = "BACKUP_INFO.txt";
pub const SUMS: &str = "SHA256SUMS";

/// `database/data/<schema>.<table>.csv`, each part percent-encoded outside
/// `[A-Za-z0-9_-]` so the name is portable and `.` stays a separator.
pub fn data_member(schema: &str, table: &str) -> String {
    format!("{DATA_DIR}{}.{}.csv", encode(schema), encode(table))
}

/// The COPY text-format twin of a data member (see `ManifestTable::psql_file`).
pub fn psql_member(schema: &str, table: &str) -> String {
    format!("{DATA_DIR}{}.{}.copy", encode(schema), encode(table))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `archive name` → `critical_backup_20261124_020000.tar.gz`.
pub fn archive_name(prefix: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{prefix}_{}.tar.gz", at.format("%Y%m%d_%H%M%S"))
}

/// Whether `name` is an archive name of a store with this prefix:
/// `<prefix>_YYYYMMDD_HHMMSS.tar.gz`, nothing more (no `/`, no suffix).
pub fn is_archive_name(prefix: &str, name: &str) -> bool {
    let Some(stamp) =
        name.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')).and_then(|r| r.strip_suffix(".tar.gz"))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 15 && b[8] == b'_' && b.iter().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit())
}

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
    pub foreign_keys: Vec<crate::plan::FkPlan>,
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
        let cols: Vec<String> = self.columns.iter().map(|c| crate::db::quote_ident(c)).collect();
        format!("{} ({})", self.qualified(), cols.join(", "))
    }

    pub fn qualified(&self) -> String {
        crate::db::qualified(&self.schema, &self.name)
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

/// `sha256sum -c` format: `<hex>  <path>` per line.
pub fn format_sums(sums: &[(String, String)]) -> String {
    sums.iter().map(|(path, sha)| format!("{sha}  {path}\n")).collect()
}

pub fn parse_sums(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            let (sha, path) = l.split_once("  ").ok_or_else(|| format!("SHA256SUMS line {} is malformed", i + 1))?;
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("SHA256SUMS line {} has no valid SHA-256", i + 1));
            }
            Ok((path.to_string(), sha.to_ascii_lowercase()))
        })
        .collect()
}

/// Counts CSV records as PostgreSQL writes them (`FORMAT csv`): a newline
/// ends a record only outside quotes, since fields may contain newlines.
///
/// It also notices a physical line that is exactly `\.` (inside a quoted
/// multi-line field): psql up to 17 ends `\copy … FROM 'file'` at such a
/// line even in CSV mode, so the manual restore path needs another format
/// for that table (see `ManifestTable::psql_file`).
#[derive(Debug, Default, Clone)]
pub struct CsvCounter {
    in_quotes: bool,
    records: u64,
    pending: bool,
    /// The current physical line's first bytes (up to 3) and its length.
    line: [u8; 3],
    line_len: usize,
    pub psql_unsafe: bool,
}

impl CsvCounter {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let l = &self.line[..self.line_len.min(3)];
                if l == b"\\." || l == b"\\.\r" {
                    self.psql_unsafe = true;
                }
                self.line_len = 0;
            } else {
                if self.line_len < 3 {
                    self.line[self.line_len] = b;
                }
                self.line_len = self.line_len.saturating_add(1);
            }
            match b {
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => {
                    self.records += 1;
                    self.pending = false;
                    continue;
                }
                _ => {}
            }
            self.pending = true;
        }
    }

    /// Data rows, the header excluded.
    pub fn rows(&self) -> u64 {
        (self.records + u64::from(self.pending)).saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: TS-1.3
    #[test]
    fn csv_counter_respects_quoted_newlines() {
        let mut c = CsvCounter::default();
        c.feed(b"id,note\n1,\"multi\nline, \"\"quoted\"\"\"\n2,");
        c.feed(b"plain\n");
        assert_eq!(c.rows(), 2);
        let mut h = CsvCounter::default();
        h.feed(b"id\n");
        assert_eq!(h.rows(), 0);
        assert!(!c.psql_unsafe && !h.psql_unsafe);
    }

    // covers: TS-1.3, FR-12.4
    #[test]
    fn csv_counter_flags_lines_psql_would_take_for_end_of_data() {
        let mut c = CsvCounter::default();
        c.feed(b"id,body\n1,\"first\n\\");
        c.feed(b".\nlast\"\n");
        assert_eq!(c.rows(), 1);
        assert!(c.psql_unsafe);
        let mut ok = CsvCounter::default();
        ok.feed(b"id,body\n1,\"\\.x\n \\.\"\n2,\\.\n");
        assert!(!ok.psql_unsafe, "only a line that is exactly \\. matters");
    }

    // covers: FR-12.4, TS-1.2
    #[test]
    fn data_member_names_are_unambiguous() {
        assert_eq!(data_member("public", "users"), "database/data/public.users.csv");
        assert_eq!(data_member("a.b", "c"), "database/data/a%2Eb.c.csv");
        assert_ne!(data_member("a.b", "c"), data_member("a", "b.c"));
        assert!(!data_member("public", "ผู้ใช้/x")[DATA_DIR.len()..].contains('/'));
    }

    // covers: FR-18.5, FR-6.6
    #[test]
    fn archive_names_follow_the_pattern_exactly() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T02:00:00Z").unwrap().to_utc();
        assert!(is_archive_name("critical_backup", &archive_name("critical_backup", at)));
        for bad in [
            "critical_backup_20261124_020000.tar.gz.partial",
            "critical_backup_20261124_02000.tar.gz",
            "critical_backup_2026112x_020000.tar.gz",
            "other_20261124_020000.tar.gz",
            "../critical_backup_20261124_020000.tar.gz",
            "critical_backup_20261124_020000.tar.gz/x",
            "critical_backup_20261124-020000.tar.gz",
            ".lifeboat.lock",
        ] {
            assert!(!is_archive_name("critical_backup", bad), "{bad}");
        }
    }

    // covers: TS-1.2
    #[test]
    fn sums_round_trip_and_reject_garbage() {
        let s = vec![("a/b.csv".to_string(), "0".repeat(64))];
        assert_eq!(parse_sums(&format_sums(&s)).unwrap(), s);
        assert!(parse_sums("xyz  a\n").is_err());
    }
}
