//! Text renderings of the engine's reports, for people at a terminal.

use std::fmt::Write as _;

use crate::backup::BackupReport;
use crate::plan::Plan;
use crate::restore::{RehearsalReport, RestoreReport};
use crate::verify::VerifyReport;

pub use crate::model::human_bytes as bytes;

fn ms(n: u64) -> String {
    crate::events::humantime(std::time::Duration::from_millis(n))
}

/// Beside a schema-only or windowed table that the closure gave rows:
/// `; + 1320 closure rows (referenced by rows kept elsewhere)`, so "structure
/// only" does not read as "no rows". The plan's count is exact for its own
/// snapshot; the backup's report says what its archive holds.
fn closure_note(mode: crate::model::Mode, closure_rows: u64) -> String {
    use crate::model::Mode;
    match (mode, closure_rows) {
        (Mode::Schema | Mode::Window, 1..) => {
            let s = if closure_rows == 1 { "" } else { "s" };
            format!("; + {closure_rows} closure row{s} (referenced by rows kept elsewhere)")
        }
        _ => String::new(),
    }
}

pub fn plan(p: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Plan for database {} (PostgreSQL {}), snapshot at {}",
        p.database, p.server_version, p.snapshot_time
    );
    let _ = writeln!(s);
    let _ =
        writeln!(s, "{:<44} {:<7} {:>12} {:>10} {:>8}  filter", "table", "mode", "est. rows", "est. size", "closure");
    for t in &p.tables {
        let keep = t.window.as_ref().map(|w| w.keep.to_string());
        let window = t.window.as_ref().zip(keep.as_deref()).map(|(w, k)| (w.column.as_str(), w.cutoff.as_str(), k));
        let filter = crate::archive::texts::describe_rows(t.mode, window);
        let flag = if t.unclassified { "  [unclassified]" } else { "" };
        let note = closure_note(t.mode, t.closure_rows);
        let _ = writeln!(
            s,
            "{:<44} {:<7} {:>12} {:>10} {:>8}  {filter}{note}{flag}",
            format!("{}.{}", t.schema, t.name),
            t.mode.to_string(),
            t.estimated_rows,
            bytes(t.estimated_bytes.max(0) as u64),
            t.closure_rows
        );
    }
    let _ = writeln!(s, "\nSequences: {}", p.sequences.len());
    if p.files.files.is_empty() && p.files.missing.is_empty() && p.files.refused.is_empty() {
        let _ = writeln!(s, "Config files: none configured");
    } else {
        let _ = writeln!(s, "Config files:");
        for f in &p.files.files {
            let _ = writeln!(s, "  {}  ({})", f.path, bytes(f.bytes));
        }
        for m in &p.files.missing {
            let _ = writeln!(s, "  {}  MISSING{}", m.pattern, if m.required { " (required)" } else { " (optional)" });
        }
        for r in &p.files.refused {
            let _ = writeln!(s, "  {}  REFUSED (link; see the warning)", r.path);
        }
    }
    let _ = writeln!(s, "Estimated archive size: ~{}", bytes(p.estimated_archive_bytes.max(0) as u64));
    for w in &p.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

pub fn backup(r: &BackupReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{:<44} {:<7} {:>10} {:>8} {:>10}", "table", "mode", "rows", "closure", "csv size");
    for t in &r.tables {
        let flag = if t.unclassified { "  [unclassified]" } else { "" };
        let note = closure_note(t.mode, t.closure_rows);
        let note = note.strip_prefix("; ").map(|n| format!("  {n}")).unwrap_or_default();
        let _ = writeln!(
            s,
            "{:<44} {:<7} {:>10} {:>8} {:>10}{note}{flag}",
            format!("{}.{}", t.schema, t.name),
            t.mode.to_string(),
            t.rows,
            t.closure_rows,
            bytes(t.bytes)
        );
    }
    let _ = writeln!(s, "\nBackup complete and verified: {}", r.archive.display());
    let _ = writeln!(
        s,
        "  {} tables, {} rows ({} closure), {} config files, {} in {}; snapshot at {}",
        r.tables.len(),
        r.rows,
        r.closure_rows,
        r.files,
        bytes(r.size_bytes),
        ms(r.duration_ms),
        r.snapshot_time
    );
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

pub fn verify(r: &VerifyReport) -> String {
    format!(
        "OK {}: {} members, {} tables, {} rows, {} config files, {}; checksums, manifest and row counts match\n\
         signature: {}\n",
        r.archive.display(),
        r.members,
        r.tables,
        r.rows,
        r.files,
        bytes(r.size_bytes),
        if r.signature.accepted_insecurely {
            format!("NOT TRUSTED, used anyway (--insecure-accept-untrusted): {}", r.signature.message)
        } else {
            r.signature.message.clone()
        }
    )
}

pub fn restore(r: &RestoreReport) -> String {
    let mut s = String::new();
    for d in &r.dropped {
        let _ = writeln!(s, "dropped {d}");
    }
    let _ = writeln!(s, "{:<44} {:>10} {:>10}  check", "table", "manifest", "restored");
    for t in &r.tables {
        let _ = writeln!(
            s,
            "{:<44} {:>10} {:>10}  {}",
            t.table,
            t.expected,
            t.restored,
            if t.ok { "ok" } else { "MISMATCH" }
        );
    }
    for f in &r.files {
        match &f.previous {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "config file {} (mode {:o}; previous kept as {})",
                    f.path.display(),
                    f.mode,
                    p.display()
                );
            }
            None => {
                let _ = writeln!(s, "config file {} (mode {:o})", f.path.display(), f.mode);
            }
        }
    }
    if !r.roles_missing.is_empty() {
        let _ = writeln!(
            s,
            "owners and privileges: {} statement(s) skipped, these roles do not exist on the target: {}",
            r.privileges_skipped,
            r.roles_missing.join(", ")
        );
    }
    let phases: Vec<String> = r.phases.iter().map(|(p, t)| format!("{p} {}", ms(*t))).collect();
    let _ = writeln!(s, "phases: {}", phases.join(", "));
    if r.ok {
        let _ = writeln!(
            s,
            "Restore complete into {}: {} tables, {} sequences, in {}",
            r.target,
            r.tables.len(),
            r.sequences,
            ms(r.duration_ms)
        );
    } else {
        let _ = writeln!(s, "RESTORE FAILED into {}: {}", r.target, r.problem.as_deref().unwrap_or("see above"));
    }
    s
}

pub fn rehearsal(r: &RehearsalReport) -> String {
    let mut s = String::new();
    if r.ok {
        let _ = writeln!(
            s,
            "Restore test OK: {} restored into scratch database {} on {} in {} ({} tables, {} rows, foreign keys valid, sequences current); scratch database dropped",
            r.archive.display(),
            r.scratch_database,
            r.server,
            ms(r.duration_ms),
            r.tables,
            r.rows
        );
    } else {
        let _ = writeln!(s, "Restore test FAILED for {} on {}:", r.archive.display(), r.server);
        for p in &r.problems {
            let _ = writeln!(s, "  - {p}");
        }
    }
    s
}

/// The delivery line(s) after a backup, or the result of `send`.
pub fn delivery(d: &crate::deliver::DeliveryReport) -> String {
    use crate::deliver::{Method, Status};
    let how = match d.method {
        Some(Method::Attachment) => "archive attached",
        Some(Method::Link) => "too big to attach: signed download link",
        Some(Method::NoLink) => "too big to attach and no [links] public_url: the mail says where it is kept",
        None => "",
    };
    match d.status {
        Status::Delivered => format!(
            "Mail delivered to {} via {} ({how}) after {} attempt(s): {}\n",
            d.recipients.join(", "),
            d.server.as_deref().unwrap_or("?"),
            d.attempts,
            d.reply.as_deref().unwrap_or("")
        ),
        Status::Failed => format!(
            "Mail NOT delivered after {} attempt(s): {}\n",
            d.attempts,
            d.error.as_deref().unwrap_or("unknown error")
        ),
        Status::Skipped => format!("Mail not sent: {}\n", d.error.as_deref().unwrap_or("skipped")),
    }
}
