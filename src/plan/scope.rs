//! Mode resolution: every table of the catalog gets exactly one mode
//! (`full`, `window`, `schema`) from `[scope]`, partitions not named inherit
//! their nearest named ancestor's, unnamed tables (partitioned ones too) take
//! `scope.default` and are flagged unclassified,
//! and every name the config uses is checked against the database (a name
//! in `scope.optional_tables` may be missing: it is skipped with a warning).

use std::collections::BTreeMap;

use super::keys::KeySet;
use super::{TablePlan, WindowPlan};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{DefaultMode, Mode, Span, TableName};
use crate::pg::catalog::{self, Catalog};

/// Gives every table exactly one mode and checks that everything the config
/// names exists. All problems are reported together. Optional tables the
/// database lacks are pushed to `warnings`.
pub(super) fn resolve_modes(catalog: &Catalog, config: &Config, warnings: &mut Vec<String>) -> Result<Vec<TablePlan>> {
    let scope = &config.scope;
    let mut problems = Vec::new();
    let mut absent_optional = Vec::new();
    // table → (mode, window column and keep)
    type Assigned<'a> = (Mode, Option<(&'a str, Span)>);
    let mut assigned: BTreeMap<&TableName, Assigned> = BTreeMap::new();
    for t in &scope.full {
        assigned.insert(t, (Mode::Full, None));
    }
    for t in &scope.schema_only {
        assigned.insert(t, (Mode::Schema, None));
    }
    for w in &scope.window {
        for t in &w.tables {
            assigned.insert(t, (Mode::Window, Some((w.column.as_str(), w.keep))));
        }
    }
    for (name, (mode, window)) in &assigned {
        let Some(table) = catalog.find(name) else {
            if scope.optional_tables.contains(name) {
                absent_optional.push(format!("{name} ({mode})"));
                continue;
            }
            let mut known: Vec<String> = catalog.tables.iter().map(|t| t.name.to_string()).collect();
            let wanted = name.to_string();
            problems.push(match closest(&wanted, name.name.chars().count(), &known) {
                Some(near) => format!(
                    "table {name} (scope: {mode}) does not exist in the database; did you mean {near}? Fix the name \
                     or remove it"
                ),
                None => {
                    // Closest first: the name meant is at the head, not hidden in "… (N more)".
                    known.sort_by_key(|k| name_distance(&wanted, k));
                    format!(
                        "table {name} (scope: {mode}) does not exist in the database; fix the name or remove it. \
                         Tables that exist (closest first): {}",
                        abbreviate(&known)
                    )
                }
            });
            continue;
        };
        if let Some((column, _)) = window {
            match table.column(column) {
                None => problems.push(format!(
                    "window column {column:?} does not exist in table {name}; its columns are: {}",
                    table.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )),
                Some(c) if !c.is_time() => problems.push(format!(
                    "window column {name}.{column} has type {}; a window needs a date, timestamp or timestamptz column",
                    c.type_name
                )),
                Some(_) => {}
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::Scope(problems.join("\n  - ")));
    }
    if !absent_optional.is_empty() {
        warnings.push(format!(
            "{} optional table(s) of [scope] are not in the database and are skipped: {}; expected before the \
             application's migrations create them (scope.optional_tables)",
            absent_optional.len(),
            absent_optional.join(", ")
        ));
    }

    let mut out = Vec::new();
    // A partition without a mode of its own takes its (root) parent's.
    let named = |t: &catalog::Table| {
        let mut at = t;
        loop {
            if let Some(a) = assigned.get(&at.name) {
                return Some(*a);
            }
            let parent = at.partition_of?;
            at = catalog.tables.iter().find(|p| p.oid == parent)?;
        }
    };
    for t in &catalog.tables {
        let (mode, window, unclassified) = match named(t) {
            Some((m, w)) => (m, w, false),
            None => (
                match scope.default {
                    DefaultMode::Full => Mode::Full,
                    DefaultMode::Schema => Mode::Schema,
                },
                None,
                true,
            ),
        };
        let has_rows = t.kind != 'p';
        let estimated_rows = if mode == Mode::Schema { 0 } else { t.estimated_rows.unwrap_or(0) };
        let estimated_bytes = if mode == Mode::Schema { 0 } else { t.bytes };
        out.push(TablePlan {
            oid: t.oid,
            schema: t.name.schema.clone(),
            name: t.name.name.clone(),
            mode,
            unclassified,
            columns: t.stored_columns().map(|c| c.name.clone()).collect(),
            window: window.map(|(column, keep)| WindowPlan { column: column.to_string(), keep, cutoff: String::new() }),
            has_rows,
            estimated_rows,
            estimated_bytes,
            closure_rows: 0,
            closure: KeySet::default(),
        });
    }
    // Closure follows foreign keys to and from the leaves
    // (Catalog::row_foreign_keys), so every partition may have a mode of its own.
    Ok(out)
}

/// The one name of `known` close enough to `wanted` to be what was meant
/// (a typo: a few edits, case aside, fewer for a short table name of
/// `len` characters), if exactly one is closest.
fn closest<'a>(wanted: &str, len: usize, known: &'a [String]) -> Option<&'a String> {
    let limit = (len / 3).clamp(1, 3);
    let mut by_distance: Vec<(usize, &String)> = known.iter().map(|k| (name_distance(wanted, k), k)).collect();
    by_distance.sort();
    match by_distance.as_slice() {
        [(d, k), rest @ ..] if *d <= limit && rest.first().is_none_or(|(next, _)| next > d) => Some(k),
        _ => None,
    }
}

/// How far apart two `schema.table` names are: the edit distance of the
/// whole, or of the table names plus one for another schema, whichever is less.
fn name_distance(a: &str, b: &str) -> usize {
    let table = |s: &str| s.rsplit('.').next().unwrap_or(s).to_string();
    distance(a, b).min(distance(&table(a), &table(b)) + 1)
}

/// Edit distance (Levenshtein) between `a` and `b`, ignoring case.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.to_lowercase().chars().collect(), b.to_lowercase().chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb)).min(above + 1).min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn abbreviate(names: &[String]) -> String {
    const MAX: usize = 30;
    if names.len() <= MAX {
        names.join(", ")
    } else {
        format!("{}, … ({} more)", names[..MAX].join(", "), names.len() - MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-9.3
    #[test]
    fn a_typo_in_a_table_name_finds_the_one_name_meant() {
        let known: Vec<String> =
            ["public.users", "public.sessions", "public.messages", "billing.invoices"].map(String::from).to_vec();
        let near = |w: &str| closest(w, w.rsplit('.').next().unwrap().len(), &known).map(String::as_str);
        assert_eq!(near("public.sesions"), Some("public.sessions"));
        assert_eq!(near("public.Users"), Some("public.users"));
        assert_eq!(near("public.invoices"), Some("billing.invoices"));
        // Too far from anything, or a short name one edit from nothing.
        assert_eq!(near("public.audit_log"), None);
        assert_eq!(near("public.foo"), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
