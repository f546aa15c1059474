//! Delivery of finished archives to the administrators: the success mail
//! with the archive attached when the encoded message fits, else a signed
//! download link ([`links`]); failure alerts and `test-email` go through the
//! same [`mail::Mailer`]. The only module that knows lettre.
//!
//! [`deliver`] never fails the backup: its [`DeliveryReport`] says whether
//! the mail went out, and the caller decides the exit code.

pub mod links;
pub mod mail;
pub mod message;
pub mod templates;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::Manifest;
use crate::config::Config;
use crate::events::{Event, Progress};
use message::{DeliveryLine, FileLine, SuccessContext, TableLine};

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("mail is not configured: set [email] smtp_host (or SMTP_HOST) and [email] to (or ADMIN_EMAILS)")]
    NotConfigured,
    #[error("{key} {value:?} is not a valid mail address ({message}); write \"Name <user@example.com>\" or \"user@example.com\"")]
    Address { key: String, value: String, message: String },
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("[email] ca_file {0}: {1}; it must hold one or more PEM certificates")]
    CaFile(PathBuf, String),
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
    #[error("the archive to send does not verify, so it was not sent: {0}")]
    Verify(String),
    #[error("cannot make the download link: {0}")]
    Link(String),
    #[error("cannot encrypt the archive for sending: {0}")]
    Encrypt(String),
}

/// Builds a notice (an alert or a recovery mail) with the templates,
/// overridden by `[email] templates_dir`, and sends it with the usual
/// attempts; the error is the one to report.
pub fn send_notice(
    cfg: &Config,
    what: &str,
    progress: Progress,
    build: impl FnOnce(&templates::Templates) -> Result<lettre::Message, DeliverError>,
) -> Result<(), String> {
    let templates = templates::Templates::for_config(cfg).map_err(|e| e.to_string())?;
    let mailer = mail::Mailer::new(&cfg.email).map_err(|e| e.to_string())?;
    let msg = build(&templates).map_err(|e| e.to_string())?;
    mailer.send(&msg, what, progress).outcome.map(|_| ())
}

/// How the archive travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Attachment,
    Link,
    /// Too big to attach and no `[links] public_url`: the mail says where
    /// the archive is kept.
    NoLink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Delivered,
    Failed,
    /// `--no-deliver`, or no `[email]` configured.
    Skipped,
}

/// The outcome of delivering one archive.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    pub attempts: u32,
    pub recipients: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The server's reply to the accepted message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The file that travelled (attached or linked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl DeliveryReport {
    pub fn skipped(why: impl Into<String>) -> Self {
        DeliveryReport {
            status: Status::Skipped,
            method: None,
            attempts: 0,
            recipients: Vec::new(),
            server: None,
            reply: None,
            error: Some(why.into()),
            file: None,
        }
    }

    fn failed(cfg: &Config, attempts: u32, error: String) -> Self {
        DeliveryReport {
            status: Status::Failed,
            attempts,
            recipients: cfg.email.to.clone(),
            server: Some(cfg.email.display_server()),
            error: Some(error),
            ..Self::skipped("")
        }
    }
}

/// The name in subjects and bodies.
pub fn app_name(cfg: &Config) -> String {
    cfg.email.app_name.clone().unwrap_or_else(|| cfg.database.name.clone())
}

/// This machine's name, for messages.
pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Mails `archive` (verified again first: nothing that fails verification
/// is ever sent) to `[email] to`: `lifeboat send`, for an archive of any age.
pub fn deliver(cfg: &Config, archive: &Path, progress: Progress) -> DeliveryReport {
    try_deliver(cfg, progress, |templates, mailer| {
        let report = crate::verify::verify(archive, crate::verify::config_trust(cfg), &crate::events::silent)
            .map_err(|e| DeliverError::Verify(e.to_string()))?;
        send_success(cfg, archive, (&report.manifest, report.size_bytes, None), templates, mailer, progress)
    })
}

/// Mails the archive a run just sealed: its verification was the seal's,
/// so it is not read again for its manifest.
pub fn deliver_sealed(cfg: &Config, sealed: &crate::backup::Sealed, progress: Progress) -> DeliveryReport {
    try_deliver(cfg, progress, |templates, mailer| {
        let facts = (sealed.manifest(), sealed.size, Some(sealed.duration_ms));
        send_success(cfg, &sealed.path, facts, templates, mailer, progress)
    })
}

/// The common frame of [`deliver`] and [`deliver_sealed`]: skipped without
/// `[email]`, the templates and the mailer loaded, an error as a failed report.
fn try_deliver(
    cfg: &Config,
    progress: Progress,
    send: impl FnOnce(&templates::Templates, &mail::Mailer) -> Result<DeliveryReport, DeliverError>,
) -> DeliveryReport {
    if !cfg.email.enabled() {
        return DeliveryReport::skipped("no [email] smtp_host configured");
    }
    progress(Event::Step("deliver"));
    let sent = templates::Templates::for_config(cfg)
        .map_err(DeliverError::from)
        .and_then(|templates| Ok((templates, mail::Mailer::new(&cfg.email)?)))
        .and_then(|(templates, mailer)| send(&templates, &mailer));
    match sent {
        Ok(r) => r,
        Err(e) => DeliveryReport::failed(cfg, 0, e.to_string()),
    }
}

/// The success mail of `archive`, from its manifest, size and (when known)
/// the backup's duration.
fn send_success(
    cfg: &Config,
    archive: &Path,
    (manifest, size_bytes, duration_ms): (&Manifest, u64, Option<u64>),
    templates: &templates::Templates,
    mailer: &mail::Mailer,
    progress: Progress,
) -> Result<DeliveryReport, DeliverError> {
    let artifact = artifact_for(cfg, archive)?;
    let ctx = success_context(cfg, archive, &artifact, manifest, size_bytes, duration_ms);
    let artifact_name = file_name(&artifact);
    let (msg, method) =
        message::success(&cfg.email, templates, ctx, &artifact, || link_for(cfg, &artifact_name, progress))?;
    if method == Method::NoLink {
        progress(Event::Warning(format!(
            "{artifact_name} is too big to attach within [email] attach_limit_mb = {} and no [links] public_url is set: the mail says where the archive is kept instead",
            cfg.email.attach_limit_mb
        )));
    }
    let sent = mailer.send_outgoing(&msg, "backup mail", progress);
    let mut r = DeliveryReport {
        status: Status::Delivered,
        method: Some(method),
        attempts: sent.attempts,
        recipients: cfg.email.to.clone(),
        server: Some(mailer.server().to_string()),
        reply: None,
        error: None,
        file: Some(artifact),
    };
    match sent.outcome {
        Ok(reply) => r.reply = Some(reply),
        Err(e) => {
            r.status = Status::Failed;
            r.error = Some(e);
        }
    }
    Ok(r)
}

/// What travels: the archive, or with `[encryption] recipients` its
/// `.age` (made once, by streaming, beside the archive).
fn artifact_for(cfg: &Config, archive: &Path) -> Result<PathBuf, DeliverError> {
    if cfg.encryption.recipients.is_empty() {
        return Ok(archive.to_path_buf());
    }
    crate::crypt::encrypted_copy(archive, &cfg.encryption.recipients).map_err(|e| DeliverError::Encrypt(e.to_string()))
}

/// `(url, expires)`: with `[remote]` and an offsite copy of `name`, a
/// presigned GET URL of that copy (it works with the backup host gone),
/// valid for `[links] ttl` capped at the store's 7 days; else with
/// `[links] public_url` the daemon's signed link; else `None`.
fn link_for(cfg: &Config, name: &str, progress: Progress) -> Result<Option<(String, i64)>, DeliverError> {
    if let Some(remote) = crate::store::s3::RemoteStore::from_config(&cfg.remote).ok().flatten() {
        match crate::store::Archives::sha256(&remote, name) {
            Ok(Some(_)) => {
                let p = remote
                    .presigned_get(name, cfg.links.ttl.approx_duration())
                    .map_err(|e| DeliverError::Link(e.to_string()))?;
                if p.capped {
                    progress(Event::Warning(format!(
                        "[links] ttl = {} is longer than a presigned S3 link may be valid: the link in the mail expires after 7 days",
                        cfg.links.ttl
                    )));
                }
                let expires = chrono::Utc::now().timestamp().saturating_add(p.valid_for.as_secs() as i64);
                return Ok(Some((p.url, expires)));
            }
            Ok(None) => progress(Event::Warning(format!(
                "{name} has no offsite copy in {}: the mail links to this host instead",
                remote.object_url(name)
            ))),
            Err(e) => progress(Event::Warning(format!(
                "cannot link to the offsite copy ({e}); the mail links to this host instead"
            ))),
        }
    }
    let Some(public_url) = &cfg.links.public_url else { return Ok(None) };
    let key = links::load_or_create_key(cfg.links.secret_file.as_deref(), &cfg.storage.dir)
        .map_err(|e| DeliverError::Link(e.to_string()))?;
    let ttl = i64::try_from(cfg.links.ttl.approx_duration().as_secs()).unwrap_or(i64::MAX / 2);
    let expires = chrono::Utc::now().timestamp().saturating_add(ttl);
    Ok(Some((links::signed_url(public_url, name, expires, key.as_bytes()), expires)))
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The restore steps exactly as `BACKUP_INFO.txt` gives them, with the
/// store's signing key id and where its public key is (FR-12.12).
fn restore_steps(cfg: &Config, m: &Manifest, name: &str) -> String {
    let key = crate::archive::signature::read_store_public_key(&cfg.storage.dir);
    let info = crate::archive::texts::backup_info(m, name, key.as_ref().map(|(k, id)| (k.as_str(), id.as_str())));
    match info.find("HOW TO RESTORE") {
        Some(i) => info[i..].trim_end().to_string(),
        None => info,
    }
}

fn success_context(
    cfg: &Config,
    archive: &Path,
    artifact: &Path,
    m: &Manifest,
    size_bytes: u64,
    duration_ms: Option<u64>,
) -> SuccessContext {
    let name = file_name(archive);
    let size_bytes = std::fs::metadata(artifact).map(|x| x.len()).unwrap_or(size_bytes);
    let tables: Vec<TableLine> = m
        .tables
        .iter()
        .map(|t| TableLine {
            name: t.display(),
            mode: t.mode.to_string(),
            rows: t.rows,
            closure_rows: t.closure_rows,
            filter: crate::archive::texts::describe_rows(
                t.mode,
                t.window.as_ref().map(|w| (w.column.as_str(), w.cutoff.as_str(), w.keep.as_str())),
            ),
            unclassified: t.unclassified,
        })
        .collect();
    let mut warnings = m.warnings.clone();
    // The size band's one rule (FR-4.3), as the report and `check` say it.
    let band = crate::monitor::checks::size_band_of(&cfg.storage.dir, &name, size_bytes, &cfg.monitor);
    warnings.extend(band.into_iter().map(|p| p.reason));
    // The manifest's warnings already name unclassified tables (FR-10.2).
    if !m.files.is_empty() && artifact == archive && !warnings.iter().any(|w| w.contains("encrypt")) {
        warnings.push(
            "this archive holds the deployment's config files (secrets such as .env.production) and travels unencrypted; set [encryption] recipients to send it age-encrypted"
                .into(),
        );
    }
    SuccessContext {
        app: app_name(cfg),
        host: host_name(),
        version: env!("CARGO_PKG_VERSION"),
        date: m.snapshot_time.chars().take(10).collect(),
        archive_file: file_name(artifact),
        size: crate::model::human_bytes(size_bytes),
        size_bytes,
        duration: duration_ms.map(|ms| format!("{:.1} s", ms as f64 / 1000.0)),
        snapshot_time: m.snapshot_time.clone(),
        database: m.database.clone(),
        server_version: m.server_version.clone(),
        total_rows: m.tables.iter().map(|t| t.rows).sum(),
        total_closure_rows: m.tables.iter().map(|t| t.closure_rows).sum(),
        tables,
        files: m
            .files
            .iter()
            .map(|f| FileLine {
                path: f.path.trim_start_matches(crate::archive::CONFIG_DIR).to_string(),
                bytes: f.bytes,
            })
            .collect(),
        warnings,
        restore_steps: restore_steps(cfg, m, &name),
        delivery: DeliveryLine {
            method: Method::Attachment,
            link: None,
            expires: None,
            path: archive.display().to_string(),
            limit_mb: cfg.email.attach_limit_mb,
        },
        archive_name: name,
    }
}

/// The outcome of `lifeboat test-email`.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    pub ok: bool,
    pub server: String,
    pub tls: crate::config::SmtpTls,
    pub recipients: Vec<String>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Sends a test message with the real settings. `Err` when it could not
/// even be tried (no `[email]`, a bad address, a broken template).
/// The longest `test-email` waits for the SMTP server at each step.
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub fn test_email(cfg: &Config, progress: Progress) -> Result<TestReport, DeliverError> {
    if !cfg.email.enabled() {
        return Err(DeliverError::NotConfigured);
    }
    let templates = templates::Templates::for_config(cfg)?;
    // A test answers at once (FR-3.7): one attempt, no back-off, and a
    // connection limit of at most TEST_TIMEOUT, whatever the run's settings.
    let mut email = cfg.email.clone();
    email.attempts = 1;
    if email.timeout.approx_duration() > TEST_TIMEOUT {
        email.timeout = crate::model::Span { amount: TEST_TIMEOUT.as_secs() as u32, unit: crate::model::Unit::Seconds };
    }
    let mailer = mail::Mailer::new(&email)?;
    let ctx = serde_json::json!({
        "app": app_name(cfg),
        "host": host_name(),
        "version": env!("CARGO_PKG_VERSION"),
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "server": mailer.server(),
        "tls": cfg.email.tls,
        "from": cfg.email.sender(),
        "to": cfg.email.to,
        "limit_mb": cfg.email.attach_limit_mb,
    });
    let msg = message::test(&cfg.email, &templates, &ctx)?;
    let sent = mailer.send(&msg, "test message", progress);
    Ok(TestReport {
        ok: sent.outcome.is_ok(),
        server: mailer.server().to_string(),
        tls: cfg.email.tls,
        recipients: cfg.email.to.clone(),
        attempts: sent.attempts,
        reply: sent.outcome.as_ref().ok().cloned(),
        error: sent.outcome.err(),
    })
}
