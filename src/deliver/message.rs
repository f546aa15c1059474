//! Building the messages: `multipart/mixed` holding a
//! `multipart/alternative` (text + HTML, UTF-8) and, when the whole
//! *encoded* message fits `[email] attach_limit_mb`, the archive; otherwise
//! the body carries a signed download link (or, without `[links]`, says
//! where the archive is kept). lettre writes `MIME-Version: 1.0` and encodes
//! a UTF-8 subject per RFC 2047.

use std::path::Path;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::Message;
use serde::Serialize;

use super::templates::Templates;
use super::{DeliverError, Method};
use crate::config::EmailConfig;

/// One table's line in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct TableLine {
    pub name: String,
    pub mode: String,
    pub rows: u64,
    pub closure_rows: u64,
    pub filter: String,
    pub unclassified: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileLine {
    pub path: String,
    pub bytes: u64,
}

/// How the archive reaches the reader, as the body tells it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryLine {
    pub method: Method,
    pub link: Option<String>,
    /// When the link stops working (RFC 3339 UTC; the templates show it in the configured zone).
    pub expires: Option<String>,
    /// Where the archive is kept on the host.
    pub path: String,
    pub limit_mb: f64,
}

/// Everything the success templates may use.
#[derive(Debug, Clone, Serialize)]
pub struct SuccessContext {
    pub app: String,
    pub host: String,
    pub version: &'static str,
    /// `YYYY-MM-DD` of the snapshot.
    pub date: String,
    pub archive_name: String,
    /// The file that travels: the archive, or its `.age`.
    pub archive_file: String,
    pub size: String,
    pub size_bytes: u64,
    pub duration: Option<String>,
    pub snapshot_time: String,
    pub database: String,
    pub server_version: String,
    pub tables: Vec<TableLine>,
    pub total_rows: u64,
    pub total_closure_rows: u64,
    pub files: Vec<FileLine>,
    pub warnings: Vec<String>,
    pub restore_steps: String,
    pub delivery: DeliveryLine,
}

/// Everything the alert templates may use.
#[derive(Debug, Clone, Serialize)]
pub struct AlertContext {
    pub app: String,
    pub host: String,
    pub version: &'static str,
    pub title: String,
    pub step: String,
    pub time: String,
    pub error: String,
    pub retried: String,
    pub next_steps: Vec<String>,
    pub log_lines: Vec<String>,
    pub archive: Option<String>,
}

fn mailbox(s: &str, key: &str) -> Result<Mailbox, DeliverError> {
    s.trim().parse().map_err(|e| DeliverError::Address {
        key: key.to_string(),
        value: s.to_string(),
        message: format!("{e}"),
    })
}

/// A builder with From and every recipient.
fn envelope(cfg: &EmailConfig, subject: String) -> Result<lettre::message::MessageBuilder, DeliverError> {
    let from = cfg.sender().ok_or_else(|| DeliverError::Address {
        key: "[email] from".into(),
        value: String::new(),
        message: "no sender configured".into(),
    })?;
    let mut b = Message::builder().from(mailbox(from, "[email] from")?).subject(subject);
    for to in &cfg.to {
        b = b.to(mailbox(to, "[email] to")?);
    }
    Ok(b.user_agent(format!("lifeboat {}", env!("CARGO_PKG_VERSION"))))
}

fn build(b: lettre::message::MessageBuilder, body: MultiPart) -> Result<Message, DeliverError> {
    b.multipart(body).map_err(|e| DeliverError::Build(e.to_string()))
}

/// The success message for `artifact` (the archive or its `.age`): with
/// the file attached when the encoded message fits the limit, else with
/// `link()` (`(url, expires_unix)`, `None` without `[links]`). Only reads
/// the file when an attachment can fit at all.
pub fn success(
    cfg: &EmailConfig,
    templates: &Templates,
    mut ctx: SuccessContext,
    artifact: &Path,
    link: impl FnOnce() -> Result<Option<(String, i64)>, DeliverError>,
) -> Result<(Message, Method), DeliverError> {
    let limit = (cfg.attach_limit_mb * 1e6) as u64;
    let size = std::fs::metadata(artifact).map_err(|e| DeliverError::Io(artifact.to_path_buf(), e))?.len();
    // base64 is 4/3 of the data plus line breaks; smaller cannot fit.
    if size.saturating_mul(4) / 3 <= limit {
        ctx.delivery.method = Method::Attachment;
        let subject = templates.subject("success.subject.j2", &ctx)?;
        let (text, html) = (templates.render("success.txt.j2", &ctx)?, templates.render("success.html.j2", &ctx)?);
        let data = std::fs::read(artifact).map_err(|e| DeliverError::Io(artifact.to_path_buf(), e))?;
        let kind = if ctx.archive_file.ends_with(".age") { "application/octet-stream" } else { "application/gzip" };
        let attachment =
            Attachment::new(ctx.archive_file.clone()).body(data, ContentType::parse(kind).expect("valid content type"));
        let m = build(
            envelope(cfg, subject)?,
            MultiPart::mixed().multipart(MultiPart::alternative_plain_html(text, html)).singlepart(attachment),
        )?;
        if m.formatted().len() as u64 <= limit {
            return Ok((m, Method::Attachment));
        }
    }
    match link()? {
        Some((url, expires)) => {
            ctx.delivery.method = Method::Link;
            ctx.delivery.link = Some(url);
            ctx.delivery.expires = chrono::DateTime::from_timestamp(expires, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        None => ctx.delivery.method = Method::NoLink,
    }
    let method = ctx.delivery.method;
    let subject = templates.subject("success.subject.j2", &ctx)?;
    let (text, html) = (templates.render("success.txt.j2", &ctx)?, templates.render("success.html.j2", &ctx)?);
    let m =
        build(envelope(cfg, subject)?, MultiPart::mixed().multipart(MultiPart::alternative_plain_html(text, html)))?;
    Ok((m, method))
}

/// A failure alert.
pub fn alert(cfg: &EmailConfig, templates: &Templates, ctx: &AlertContext) -> Result<Message, DeliverError> {
    notice(cfg, templates, "alert", ctx)
}

/// What an incident's recovery notice says (FR-4.6).
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryContext {
    pub app: String,
    pub host: String,
    pub version: &'static str,
    pub title: String,
    /// The incident kind (`stale`, `backup_failed`, …).
    pub kind: String,
    pub opened_at: String,
    pub closed_at: String,
    /// How long it lasted, for people ("3 h 20 min").
    pub lasted: String,
    pub alerts_sent: u32,
    /// The last reason recorded while it was open.
    pub detail: String,
}

/// The recovery notice of a closed incident.
pub fn recovery(cfg: &EmailConfig, templates: &Templates, ctx: &RecoveryContext) -> Result<Message, DeliverError> {
    notice(cfg, templates, "recovery", ctx)
}

/// A text + HTML message from the `<name>.subject/.txt/.html.j2` templates.
fn notice(cfg: &EmailConfig, templates: &Templates, name: &str, ctx: &impl Serialize) -> Result<Message, DeliverError> {
    let subject = templates.subject(&format!("{name}.subject.j2"), ctx)?;
    let text = templates.render(&format!("{name}.txt.j2"), ctx)?;
    let html = templates.render(&format!("{name}.html.j2"), ctx)?;
    build(envelope(cfg, subject)?, MultiPart::mixed().multipart(MultiPart::alternative_plain_html(text, html)))
}

/// The `test-email` message (plain text).
pub fn test(cfg: &EmailConfig, templates: &Templates, ctx: &impl Serialize) -> Result<Message, DeliverError> {
    let subject = templates.subject("test.subject.j2", ctx)?;
    let text = templates.render("test.txt.j2", ctx)?;
    envelope(cfg, subject)?.header(ContentType::TEXT_PLAIN).body(text).map_err(|e| DeliverError::Build(e.to_string()))
}
