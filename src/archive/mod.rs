//! The archive format (v1): member names, the manifest, `SHA256SUMS`, and
//! the two halves that write and read it. See the spec's
//! Data Models section.
//!
//! Member order is part of the format: `database/schema.sql` first, then the
//! data, `sequences.sql`, `constraints.sql`, `restore.sql`, `config/…`,
//! `manifest.json`, `BACKUP_INFO.txt`, `SHA256SUMS`, and its signature
//! `SHA256SUMS.minisig` last, so a restore can stream the archive once
//! without extracting it.

pub mod manifest;
pub mod reader;
pub mod signature;
pub mod sums;
pub mod texts;
pub mod writer;

pub use manifest::{Manifest, ManifestFile, ManifestTable, ManifestWindow, SequenceValue};
pub use sums::{format_sums, parse_sums};

pub const FORMAT: &str = "lifeboat-archive";
pub const FORMAT_VERSION: u32 = 1;

pub const SCHEMA: &str = "database/schema.sql";
pub const SEQUENCES: &str = "database/sequences.sql";
pub const CONSTRAINTS: &str = "database/constraints.sql";
pub const RESTORE_SQL: &str = "database/restore.sql";
/// `pg_dumpall --roles-only --no-role-passwords`: optional (absent in older
/// archives, or when pg_dumpall failed), applied by people, never by
/// `lifeboat restore`.
pub const ROLES: &str = "database/roles.sql";
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

/// Everything but `[A-Za-z0-9_-]` is encoded, as `%XX` per UTF-8 byte
/// (upper-case hex): part of the archive format.
const MEMBER_NAME: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'_').remove(b'-');

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, MEMBER_NAME).to_string()
}

/// `archive name` → `critical_backup_20261124_020000.tar.gz`: the name of
/// the first archive of a second (see [`nth_archive_name`] for the others).
pub fn archive_name(prefix: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{prefix}_{}.tar.gz", at.format("%Y%m%d_%H%M%S"))
}

/// Whether `name` is an archive name of a store with this prefix:
/// `<prefix>_YYYYMMDD_HHMMSS.tar.gz` or its [`nth_archive_name`]
/// `…_HHMMSS_N.tar.gz` (N = 2–9), nothing more (no `/`, no other suffix).
pub fn is_archive_name(prefix: &str, name: &str) -> bool {
    let Some(stamp) =
        name.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')).and_then(|r| r.strip_suffix(".tar.gz"))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    let nth_ok = match b.len() {
        15 => true,
        17 => b[15] == b'_' && (b'2'..=b'9').contains(&b[16]),
        _ => false,
    };
    nth_ok && b[8] == b'_' && b[..15].iter().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit())
}

/// The name of the `n`th archive of the same second (n ≥ 2):
/// `critical_backup_20261124_020000.tar.gz` → `…_020000_2.tar.gz`. Up to 9,
/// names of one second sort in the order they were made, and before the
/// next second's.
pub fn nth_archive_name(first: &str, n: u32) -> String {
    let stem = first.strip_suffix(".tar.gz").unwrap_or(first);
    format!("{stem}_{n}.tar.gz")
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
    /// Most bytes are neither a quote nor a newline: those runs are skipped
    /// with `memchr2` (SIMD), and only a line's first three bytes and the
    /// two special bytes go through `step`. Same counts as
    /// feeding every byte to `step`, however the input is chunked.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some((&b, tail)) = rest.split_first() {
            if self.line_len < 3 {
                self.step(b);
                rest = tail;
                continue;
            }
            let run = memchr::memchr2(b'"', b'\n', rest).unwrap_or(rest.len());
            if run > 0 {
                self.line_len = self.line_len.saturating_add(run);
                self.pending = true;
            }
            if let Some(&special) = rest.get(run) {
                self.step(special);
                rest = &rest[run + 1..];
            } else {
                rest = &[];
            }
        }
    }

    fn step(&mut self, b: u8) {
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
                return;
            }
            _ => {}
        }
        self.pending = true;
    }

    /// Data rows, the header excluded.
    pub fn rows(&self) -> u64 {
        (self.records + u64::from(self.pending)).saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-18.5, FR-6.6
    #[test]
    fn archive_names_follow_the_pattern_exactly() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T02:00:00Z").unwrap().to_utc();
        let first = archive_name("critical_backup", at);
        assert!(is_archive_name("critical_backup", &first));
        assert!(is_archive_name("critical_backup", &nth_archive_name(&first, 2)));
        assert!(is_archive_name("critical_backup", &nth_archive_name(&first, 9)));
        for bad in [
            "critical_backup_20261124_020000_1.tar.gz",
            "critical_backup_20261124_020000_10.tar.gz",
            "critical_backup_20261124_020000_x.tar.gz",
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

    // covers: FR-12.1
    #[test]
    fn archive_names_of_one_second_sort_in_run_order() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T02:00:00Z").unwrap().to_utc();
        let first = archive_name("critical_backup", at);
        assert_eq!(first, "critical_backup_20261124_020000.tar.gz");
        assert_eq!(nth_archive_name(&first, 2), "critical_backup_20261124_020000_2.tar.gz");
        let names: Vec<String> = std::iter::once(first.clone())
            .chain((2..=9).map(|n| nth_archive_name(&first, n)))
            .chain(std::iter::once(archive_name("critical_backup", at + chrono::Duration::seconds(1))))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
    }

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

    // covers: TS-1.3, FR-12.4
    #[test]
    fn csv_counter_skipping_runs_counts_as_byte_by_byte_whatever_the_chunks() {
        // Inputs rich in the bytes that matter (quotes, newlines, `\.`, CR),
        // from a fixed xorshift, fed whole and in random chunks, against
        // `step` on every byte.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"ab,\"\n\\.\r x";
        for _ in 0..300 {
            let len = (next() % 400) as usize;
            let data: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            let mut reference = CsvCounter::default();
            data.iter().for_each(|&b| reference.step(b));
            let mut whole = CsvCounter::default();
            whole.feed(&data);
            let mut chunked = CsvCounter::default();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = 1 + (next() % 9) as usize;
                let (a, b) = rest.split_at(n.min(rest.len()));
                chunked.feed(a);
                rest = b;
            }
            for c in [&whole, &chunked] {
                assert_eq!(
                    (c.rows(), c.psql_unsafe, c.in_quotes),
                    (reference.rows(), reference.psql_unsafe, reference.in_quotes),
                    "{:?}",
                    String::from_utf8_lossy(&data)
                );
            }
        }
    }

    // covers: FR-12.4, TS-1.2
    #[test]
    fn data_member_names_are_unambiguous() {
        assert_eq!(data_member("public", "users"), "database/data/public.users.csv");
        assert_eq!(data_member("a.b", "c"), "database/data/a%2Eb.c.csv");
        assert_ne!(data_member("a.b", "c"), data_member("a", "b.c"));
        assert!(!data_member("public", "ผู้ใช้/x")[DATA_DIR.len()..].contains('/'));
        // The encoding is part of the format: byte for byte what v1 wrote.
        assert_eq!(data_member("My Schema", "ผ.x-y_z"), "database/data/My%20Schema.%E0%B8%9C%2Ex-y_z.csv");
    }
}
