//! `lifeboat verify --restore-test`: a rehearsal. Restores into a throwaway
//! database, checks row counts, foreign key validity and sequence values,
//! then drops it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::{restore_verified, RestoreOptions, REHEARSAL_HINT};
use crate::archive::reader::Source;
use crate::config::parse_target_url;
use crate::error::{Error, Result};
use crate::events::{CancelToken, Event, Progress};
use crate::pg::{self, db_err, describe, quote_ident};
use crate::verify::{VerifyOptions, VerifyReport};

#[derive(Debug, Clone, Serialize)]
pub struct RehearsalReport {
    pub ok: bool,
    pub archive: PathBuf,
    pub server: String,
    pub scratch_database: String,
    pub duration_ms: u64,
    pub tables: usize,
    pub rows: u64,
    pub foreign_keys_invalid: Vec<String>,
    pub sequences_behind: Vec<String>,
    pub problems: Vec<String>,
}

/// Restores into a throwaway database on `server_url`, checks row counts,
/// foreign key validity and sequence values, then drops it.
pub fn rehearse(
    archive_path: &Path,
    verified: &VerifyReport,
    server_url: &str,
    verify: &VerifyOptions,
    progress: Progress,
    cancel: &CancelToken,
) -> Result<RehearsalReport> {
    let started = Instant::now();
    let server = parse_target_url(server_url, "--restore-test")?;
    let server_name = describe(&server);
    // The admin session drops the scratch database after the rehearsal, a
    // cancelled one too, so it does not share the run's token (its
    // connection setup is bounded by connect_timeout all the same).
    let mut admin = pg::connect_with(&server, &server_name, REHEARSAL_HINT, &CancelToken::new())?;
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let scratch = format!("lifeboat_rt_{}_{nanos:08x}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&scratch)))
        .map_err(|e| match pg::sqlstate(&e) {
            Some("42501") => Error::Refused(format!(
                "cannot create scratch database {scratch} on {server_name}: {}; the --restore-test URL needs a role with CREATEDB",
                pg::pg_message(&e)
            )),
            _ => db_err(format!("creating scratch database {scratch}"))(e),
        })?;
    progress(Event::Detail(format!("rehearsing in scratch database {scratch}")));
    // Only a superuser may give objects to the archive's owners. A role that
    // has CREATEDB but no more (scripts/backup-role.sql -v rehearsal=1)
    // rehearses without owners and privileges: the rows, foreign keys and
    // sequences are what a rehearsal checks.
    let superuser: bool = admin
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .map(|r| r.get(0))
        .unwrap_or(true);
    if !superuser {
        progress(Event::Detail(
            "rehearsing without the archive's owners and privileges (--no-owner): the role is not a superuser".into(),
        ));
    }

    let mut target = server.clone();
    target.dbname(&scratch);
    let result = (|| -> Result<RehearsalReport> {
        let opts = RestoreOptions { verify: verify.clone(), no_owner: !superuser, ..RestoreOptions::default() };
        let report = restore_verified(&Source::from(archive_path), verified, &target, &opts, progress, cancel);
        let mut problems = Vec::new();
        let (mut fks, mut seqs) = (Vec::new(), Vec::new());
        match report {
            Err(e) => problems.push(failed_restore(e)?),
            Ok(r) => {
                problems.extend(r.problem);
                problems.extend(
                    r.tables
                        .iter()
                        .filter(|c| !c.ok)
                        .map(|c| format!("{}: {} rows restored, manifest says {}", c.table, c.restored, c.expected)),
                );
                let mut client = pg::connect_with(&target, &scratch, REHEARSAL_HINT, cancel)?;
                for row in client
                    .query("SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint WHERE contype = 'f' AND NOT convalidated", &[])
                    .map_err(db_err("checking foreign keys"))?
                {
                    fks.push(row.get(0));
                }
                let fk_count: i64 = client
                    .query_one("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conparentid = 0", &[])
                    .map_err(db_err("counting foreign keys"))?
                    .get(0);
                if fk_count as usize != verified.manifest.foreign_keys.len() {
                    problems.push(format!(
                        "{fk_count} foreign keys restored, the archive has {}",
                        verified.manifest.foreign_keys.len()
                    ));
                }
                for s in &verified.manifest.sequences {
                    let q = pg::qualified(&s.schema, &s.name);
                    let v: i64 = client
                        .query_one(&format!("SELECT last_value FROM {q}"), &[])
                        .map_err(db_err(format!("reading {q}")))?
                        .get(0);
                    if v < s.last_value {
                        seqs.push(format!("{}.{} is {v}, the snapshot had {}", s.schema, s.name, s.last_value));
                    }
                }
                problems.extend(fks.iter().map(|f| format!("foreign key {f} is not validated")));
                problems.extend(seqs.iter().cloned());
            }
        }
        Ok(RehearsalReport {
            ok: problems.is_empty(),
            archive: archive_path.to_path_buf(),
            server: server_name.clone(),
            scratch_database: scratch.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            tables: verified.tables,
            rows: verified.rows,
            foreign_keys_invalid: fks,
            sequences_behind: seqs,
            problems,
        })
    })();
    let dropped = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&scratch)));
    // An interrupted rehearsal is not a failed one: it ends as cancelled.
    cancel.check("rehearsing the restore")?;
    let mut report = result?;
    if let Err(e) = dropped {
        report.problems.push(format!("could not drop scratch database {scratch}: {}", pg::pg_message(&e)));
        report.ok = false;
    }
    Ok(report)
}

/// A restore that failed inside the rehearsal: a problem of the archive
/// (reported, the rehearsal fails), or — when the server or the link
/// failed and trying again may work — that error itself, so a retry policy
/// sees it for what it is.
fn failed_restore(e: Error) -> Result<String> {
    if e.is_retryable() {
        return Err(e);
    }
    Ok(format!("restore failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-7.13
    #[test]
    fn a_rehearsal_returns_retryable_failures_as_errors_and_reports_the_rest() {
        for (what, e, code, retry) in crate::error::tests::kinds() {
            let text = e.to_string();
            match failed_restore(e) {
                Err(e) => {
                    assert!(retry, "{what}: only a retryable failure is passed on");
                    assert_eq!((e.exit_code(), e.is_retryable(), e.to_string()), (code, retry, text));
                }
                Ok(problem) => {
                    assert!(!retry, "{what}: a retryable failure is not the archive's problem");
                    assert_eq!(problem, format!("restore failed: {text}"));
                }
            }
        }
    }
}
