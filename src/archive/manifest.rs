//! `manifest.json`: what the archive holds and how it was made (format and
//! tool versions, snapshot time, per-table mode, filter, rows, closure rows,
//! bytes and SHA-256, foreign keys, sequences, files). Field names and order
//! are the archive format (v1): changing them changes the format.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::model::{FkPlan, Mode};

/// The largest `manifest.json` read (it is read whole, then parsed).
/// Measured: the manifest of 10 000 tables of 10 columns each, every one
/// with a window, a foreign key and a sequence, is 12.3 MB (pretty-printed,
/// as lifeboat writes it); Smart AI Hub's is 20 KB.
pub const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
/// What the parsed manifest may take in memory, estimated from the text
/// before anything is built ([`parse`]): a string of a few bytes costs
/// tens in memory, so 16 MiB of `"",` would otherwise become 130 MB of
/// empty strings. The 10 000-table manifest above is estimated at 29.9 MB
/// (the same tables with 20 columns each, 37.9 MB, are refused: 15 MB of
/// text that would take about as much again in the parsed form).
pub const MAX_MANIFEST_MEMORY: u64 = 32 * 1024 * 1024;
/// The most `warnings` a manifest may list. A backup writes a handful (one
/// per table over the size budget, one per missing optional file pattern,
/// a few more); a longer list is not a lifeboat manifest.
pub const MAX_WARNINGS: usize = 1_000;
/// Columns per table: PostgreSQL's own limit (`MaxHeapAttributeNumber`).
pub const MAX_COLUMNS: usize = 1_600;

/// Parses `manifest.json` within bounds: at most [`MAX_MANIFEST_BYTES`] of
/// text, whose parsed form would take at most [`MAX_MANIFEST_MEMORY`]
/// (estimated in a first pass that keeps nothing), then at most
/// [`MAX_WARNINGS`] warnings and [`MAX_COLUMNS`] columns per table. The
/// error reads after the member's name: `is not a valid manifest: …`.
pub fn parse(text: &[u8]) -> Result<Manifest, String> {
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(format!("is {} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES})", text.len()));
    }
    let mut used = 0u64;
    let mut de = serde_json::Deserializer::from_slice(text);
    Estimate { used: &mut used }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| format!("is not a valid manifest: {e}"))?;
    let manifest: Manifest = serde_json::from_slice(text).map_err(|e| format!("is not a valid manifest: {e}"))?;
    if manifest.warnings.len() > MAX_WARNINGS {
        return Err(format!(
            "lists {} warnings; a lifeboat manifest has at most {MAX_WARNINGS}",
            manifest.warnings.len()
        ));
    }
    if let Some(e) = &manifest.database_encoding {
        e.check()?;
    }
    if let Some(t) = manifest.tables.iter().find(|t| t.columns.len() > MAX_COLUMNS) {
        return Err(format!(
            "lists {} columns for table {}; PostgreSQL allows at most {MAX_COLUMNS}",
            t.columns.len(),
            crate::archive::reader::shown(&t.display())
        ));
    }
    Ok(manifest)
}

/// The warnings a backup writes into its manifest: all of them, or, past
/// [`MAX_WARNINGS`] (which `verify` refuses), the first ones and a last one
/// that counts the rest, so that an unusual database (thousands of large
/// tables) still gets an archive that verifies. The run's own output has them all.
pub fn capped_warnings(mut warnings: Vec<String>) -> Vec<String> {
    if warnings.len() > MAX_WARNINGS {
        let rest = warnings.len() - (MAX_WARNINGS - 1);
        warnings.truncate(MAX_WARNINGS - 1);
        warnings.push(format!("… and {rest} more warnings, left out of the manifest (at most {MAX_WARNINGS})"));
    }
    warnings
}

/// Walks a JSON document keeping nothing, adding up what its values would
/// take once parsed (a slot for each value, with room for the vector it
/// sits in to have doubled, and the heap block of each string), and stops
/// at [`MAX_MANIFEST_MEMORY`]. Object keys are field names and cost nothing.
struct Estimate<'a> {
    used: &'a mut u64,
}

/// A value's slot (a `String` is 24 bytes) and as much again of vector slack.
const SLOT: u64 = 48;

impl Estimate<'_> {
    fn add<E: serde::de::Error>(&mut self, bytes: u64) -> Result<(), E> {
        *self.used += bytes;
        if *self.used > MAX_MANIFEST_MEMORY {
            return Err(E::custom(format_args!(
                "it holds more values than a manifest of 10 000 tables (over {} MiB once parsed)",
                MAX_MANIFEST_MEMORY >> 20
            )));
        }
        Ok(())
    }

    fn nested(&mut self) -> Estimate<'_> {
        Estimate { used: self.used }
    }
}

impl<'de> DeserializeSeed<'de> for Estimate<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Estimate<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(mut self, _: bool) -> Result<(), E> {
        self.add(SLOT)
    }
    fn visit_i64<E: serde::de::Error>(mut self, _: i64) -> Result<(), E> {
        self.add(SLOT)
    }
    fn visit_u64<E: serde::de::Error>(mut self, _: u64) -> Result<(), E> {
        self.add(SLOT)
    }
    fn visit_f64<E: serde::de::Error>(mut self, _: f64) -> Result<(), E> {
        self.add(SLOT)
    }
    fn visit_unit<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.add(SLOT)
    }
    fn visit_str<E: serde::de::Error>(mut self, s: &str) -> Result<(), E> {
        // malloc's smallest block is 32 bytes, then steps of 16.
        let heap = if s.is_empty() { 0 } else { (s.len() as u64 + 8).next_multiple_of(16).max(32) };
        self.add(SLOT + heap)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.add(SLOT)?;
        while seq.next_element_seed(self.nested())?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.add(SLOT)?;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(self.nested())?;
        }
        Ok(())
    }
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
    /// The source database's encoding and locale, which `restore --create`
    /// gives the database it creates. Absent in archives of lifeboat 0.1
    /// before it was recorded: `--create` then takes the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_encoding: Option<DatabaseEncoding>,
    pub tables: Vec<ManifestTable>,
    pub foreign_keys: Vec<FkPlan>,
    pub sequences: Vec<SequenceValue>,
    pub files: Vec<ManifestFile>,
    /// The `database/*.sql` members.
    pub members: Vec<ManifestFile>,
    pub warnings: Vec<String>,
}

/// A database's encoding and locale, as `pg_database` has them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatabaseEncoding {
    /// The server encoding's name, e.g. `UTF8`, `LATIN1`.
    pub encoding: String,
    /// `LC_COLLATE` (`datcollate`).
    pub collate: String,
    /// `LC_CTYPE` (`datctype`).
    pub ctype: String,
    /// `libc`, `icu` or `builtin` (`datlocprovider`; `libc` before PostgreSQL 15).
    pub locale_provider: String,
    /// The ICU or builtin locale (`daticulocale`, `datlocale` from
    /// PostgreSQL 17); absent for `libc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_locale: Option<String>,
}

/// The longest encoding or locale name a manifest may carry.
pub const MAX_LOCALE_NAME: usize = 64;

impl DatabaseEncoding {
    /// Refuses anything but short identifier-like names: the values go into
    /// `CREATE DATABASE` (quoted as literals, but a hostile archive gets no
    /// further than this). The error names the field and the value, shown safely.
    pub fn check(&self) -> Result<(), String> {
        let name_ok = |s: &str, extra: &str| {
            !s.is_empty()
                && s.len() <= MAX_LOCALE_NAME
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(c))
        };
        let bad = |field: &str, value: &str| {
            format!(
                "has database_encoding.{field} \"{}\", which is not an encoding or locale name \
                 (letters, digits and _ . - @ =, at most {MAX_LOCALE_NAME})",
                crate::archive::reader::shown(value)
            )
        };
        if !name_ok(&self.encoding, "") {
            return Err(bad("encoding", &self.encoding));
        }
        for (field, value) in [("collate", &self.collate), ("ctype", &self.ctype)] {
            if !name_ok(value, ".-@=") {
                return Err(bad(field, value));
            }
        }
        match (self.locale_provider.as_str(), &self.provider_locale) {
            ("libc", None) => Ok(()),
            ("icu" | "builtin", Some(l)) if name_ok(l, ".-@=") => Ok(()),
            ("icu" | "builtin", Some(l)) => Err(bad("provider_locale", l)),
            ("icu" | "builtin", None) => {
                Err(format!("has database_encoding.locale_provider {:?} without provider_locale", self.locale_provider))
            }
            ("libc", Some(l)) => Err(bad("provider_locale", l)),
            (other, _) => Err(bad("locale_provider", other)),
        }
    }

    /// The `CREATE DATABASE` options that reproduce it, values quoted as literals.
    pub fn create_options(&self) -> String {
        use crate::model::quote_literal as q;
        let mut sql =
            format!("ENCODING {} LC_COLLATE {} LC_CTYPE {}", q(&self.encoding), q(&self.collate), q(&self.ctype));
        match (self.locale_provider.as_str(), &self.provider_locale) {
            ("icu", Some(l)) => sql.push_str(&format!(" LOCALE_PROVIDER icu ICU_LOCALE {}", q(l))),
            ("builtin", Some(l)) => sql.push_str(&format!(" LOCALE_PROVIDER builtin BUILTIN_LOCALE {}", q(l))),
            _ => {}
        }
        sql
    }
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
        let cols: Vec<String> = self.columns.iter().map(|c| crate::model::quote_ident(c)).collect();
        format!("{} ({})", self.qualified(), cols.join(", "))
    }

    pub fn qualified(&self) -> String {
        crate::model::qualified(&self.schema, &self.name)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest of `tables` tables of `columns` columns, each with a
    /// window, a foreign key and a sequence: the largest kind lifeboat writes.
    fn big_manifest(tables: usize, columns: usize) -> Vec<u8> {
        let table = |i: usize| ManifestTable {
            schema: "public".into(),
            name: format!("table_number_{i}"),
            mode: Mode::Window,
            unclassified: false,
            columns: (0..columns).map(|c| format!("column_name_{c}")).collect(),
            filter: Some("t.\"created_at\" >= '2026-08-24 02:00:00+00'::timestamptz".into()),
            window: Some(ManifestWindow {
                column: "created_at".into(),
                keep: "3 months".into(),
                cutoff: "2026-08-24T02:00:00Z".into(),
            }),
            rows: 123_456,
            closure_rows: 12,
            bytes: 12_345_678,
            sha256: Some("a".repeat(64)),
            file: Some(crate::archive::data_member("public", &format!("table_number_{i}"))),
            psql_file: None,
        };
        let m = Manifest {
            format: crate::archive::FORMAT.into(),
            format_version: 1,
            tool_version: "0.1.0".into(),
            created_at: "2026-11-24T02:00:00Z".into(),
            snapshot_time: "2026-11-24T02:00:00Z".into(),
            database: "app".into(),
            server_version: "16.4".into(),
            pg_dump_version: "16.4".into(),
            database_encoding: Some(DatabaseEncoding {
                encoding: "UTF8".into(),
                collate: "en_US.UTF-8".into(),
                ctype: "en_US.UTF-8".into(),
                locale_provider: "libc".into(),
                provider_locale: None,
            }),
            tables: (0..tables).map(table).collect(),
            foreign_keys: (0..tables)
                .map(|i| FkPlan {
                    name: format!("table_number_{i}_parent_id_fkey"),
                    schema: "public".into(),
                    table: format!("table_number_{i}"),
                    columns: vec!["parent_id".into()],
                    ref_schema: "public".into(),
                    ref_table: "parents".into(),
                    ref_columns: vec!["id".into()],
                })
                .collect(),
            sequences: (0..tables)
                .map(|i| SequenceValue {
                    schema: "public".into(),
                    name: format!("table_number_{i}_id_seq"),
                    last_value: 123_456,
                    is_called: true,
                })
                .collect(),
            files: Vec::new(),
            members: Vec::new(),
            warnings: vec!["a warning".into(); 10],
        };
        serde_json::to_vec_pretty(&m).unwrap()
    }

    // covers: FR-22.8
    #[test]
    fn a_manifest_of_10_000_tables_fits_the_bounds() {
        let text = big_manifest(10_000, 10);
        let mut used = 0;
        Estimate { used: &mut used }.deserialize(&mut serde_json::Deserializer::from_slice(&text)).unwrap();
        eprintln!("10 000 tables x 10 columns: {} bytes of text, {used} bytes estimated", text.len());
        assert!((text.len() as u64) < MAX_MANIFEST_BYTES, "{} bytes", text.len());
        assert!(used < MAX_MANIFEST_MEMORY, "{used} bytes estimated");
        assert_eq!(parse(&text).unwrap().tables.len(), 10_000);
    }

    // covers: FR-22.8, FR-7.16
    #[test]
    fn an_archive_without_database_encoding_still_reads_and_a_present_one_becomes_create_options() {
        let text = big_manifest(1, 1);
        let mut m: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let e = parse(&text).unwrap().database_encoding.unwrap();
        assert_eq!(e.create_options(), "ENCODING 'UTF8' LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8'");
        m.as_object_mut().unwrap().remove("database_encoding");
        assert_eq!(parse(&serde_json::to_vec(&m).unwrap()).unwrap().database_encoding, None);
        let icu =
            DatabaseEncoding { locale_provider: "icu".into(), provider_locale: Some("und-u-ks-level2".into()), ..e };
        icu.check().unwrap();
        assert!(icu.create_options().ends_with(" LOCALE_PROVIDER icu ICU_LOCALE 'und-u-ks-level2'"));
    }

    // covers: FR-22.8
    #[test]
    fn a_backup_caps_its_warnings_so_that_its_manifest_verifies() {
        let few = vec!["w".to_string(); 3];
        assert_eq!(capped_warnings(few.clone()), few);
        let many = capped_warnings(vec!["w".to_string(); 2_500]);
        assert_eq!(many.len(), MAX_WARNINGS);
        assert_eq!(many.last().unwrap(), "… and 1501 more warnings, left out of the manifest (at most 1000)");
    }

    // covers: FR-22.8
    #[test]
    fn a_manifest_past_a_bound_is_refused() {
        let text = big_manifest(1, 3);
        let mut m: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut m = m.clone();
            f(&mut m);
            parse(&serde_json::to_vec(&m).unwrap()).unwrap_err()
        };
        let e = with(&|m| m["warnings"] = vec![""; 4_000_000].into());
        assert!(e.contains("more values than a manifest of 10 000 tables"), "{e}");
        let e = with(&|m| m["warnings"] = vec!["w"; MAX_WARNINGS + 1].into());
        assert!(e.contains("1001 warnings"), "{e}");
        let e = with(&|m| m["tables"][0]["columns"] = vec!["c"; MAX_COLUMNS + 1].into());
        assert!(e.contains("1601 columns for table public.table_number_0"), "{e}");
        let e = parse(&vec![b' '; MAX_MANIFEST_BYTES as usize + 1]).unwrap_err();
        assert!(e.contains("more than a manifest can be"), "{e}");
        let e = with(&|m| m["database_encoding"]["collate"] = "C'; DROP DATABASE app; --".into());
        assert!(e.contains("database_encoding.collate \"C'; DROP DATABASE app; --\", which is not"), "{e}");
        let e = with(&|m| m["database_encoding"]["locale_provider"] = "icu".into());
        assert!(e.contains("without provider_locale"), "{e}");
        let e = with(&|m| m["database_encoding"]["encoding"] = "x".repeat(MAX_LOCALE_NAME + 1).into());
        assert!(e.contains("database_encoding.encoding"), "{e}");
        m["format"] = 1.into();
        assert!(parse(&serde_json::to_vec(&m).unwrap()).unwrap_err().starts_with("is not a valid manifest"));
    }
}
