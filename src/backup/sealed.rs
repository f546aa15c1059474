//! What a run's seal hands on: the [`Sealed`] archive (path, size, the
//! verification that read it once, with its manifest) and the
//! [`BackupReport`] `lifeboat backup` prints.

use std::path::PathBuf;

use serde::Serialize;

use crate::archive::Manifest;
use crate::model::Mode;
use crate::verify::VerifyReport;

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub schema: String,
    pub name: String,
    pub mode: Mode,
    pub unclassified: bool,
    pub rows: u64,
    pub closure_rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub archive: PathBuf,
    pub size_bytes: u64,
    pub duration_ms: u64,
    pub snapshot_time: String,
    pub tables: Vec<TableReport>,
    pub rows: u64,
    pub closure_rows: u64,
    pub files: usize,
    pub warnings: Vec<String>,
}

/// A verified archive under its final name: what the later steps of a run
/// (offsite, delivery, rehearsal, retention) receive. `verified` is the one
/// read of the archive that checked it (checksums, manifest, signature); no
/// later step reads the archive again to recover its manifest.
#[derive(Debug)]
pub struct Sealed {
    /// The archive's final path (canonical when it can be).
    pub path: PathBuf,
    pub size: u64,
    /// From the start of the run to the seal.
    pub duration_ms: u64,
    /// The verification of the archive just written, with its manifest.
    pub verified: VerifyReport,
}

impl Sealed {
    pub fn manifest(&self) -> &Manifest {
        &self.verified.manifest
    }

    /// The archive's file name.
    pub fn name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// What `lifeboat backup` reports (`--json` and the text summary).
    pub fn report(&self) -> BackupReport {
        let m = self.manifest();
        let tables: Vec<TableReport> = m
            .tables
            .iter()
            .map(|t| TableReport {
                schema: t.schema.clone(),
                name: t.name.clone(),
                mode: t.mode,
                unclassified: t.unclassified,
                rows: t.rows,
                closure_rows: t.closure_rows,
                bytes: t.bytes,
            })
            .collect();
        BackupReport {
            archive: self.path.clone(),
            size_bytes: self.size,
            duration_ms: self.duration_ms,
            snapshot_time: m.snapshot_time.clone(),
            rows: tables.iter().map(|t| t.rows).sum(),
            closure_rows: tables.iter().map(|t| t.closure_rows).sum(),
            tables,
            files: m.files.len(),
            warnings: m.warnings.clone(),
        }
    }
}
