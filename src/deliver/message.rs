//! Building the messages: `multipart/mixed` holding a
//! `multipart/alternative` (text + HTML, UTF-8) and, when the whole
//! *encoded* message fits `[email] attach_limit_mb`, the archive; otherwise
//! the body carries a signed download link (or, without `[links]`, says
//! where the archive is kept). lettre writes `MIME-Version: 1.0` and encodes
//! a UTF-8 subject per RFC 2047.
//!
//! The attached archive is never in memory: lettre builds the message around
//! a one-line placeholder body, and [`Streamed`] puts the archive's base64
//! lines in its place while the message is sent, read from the file in
//! small blocks. Peak memory is the same for a 1 MB and a 40 MB attachment
//! (PR-5).

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart};
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

/// A message ready to go: built whole by lettre (notices, a success mail
/// without attachment), or with the archive attached and streamed.
pub enum Outgoing {
    Built(Message),
    Streamed(Streamed),
}

/// A message whose attachment is read from its file while it is sent: the
/// formatted message up to the attachment's body (`head`), the file's
/// base64 lines (76 characters, CRLF between them, as lettre writes them),
/// then the rest (`tail`: the closing boundary).
pub struct Streamed {
    pub(super) envelope: Envelope,
    head: Vec<u8>,
    file: PathBuf,
    /// Bytes of the file that are sent: its size when the message was
    /// built (and checked against the limit).
    size: u64,
    tail: Vec<u8>,
}

/// Input bytes per block read from the attachment: whole 57-byte groups,
/// so every block is whole base64 lines.
const BLOCK: usize = 57 * 1024;

impl Streamed {
    /// The size of the whole message on the wire (before dot-stuffing).
    fn wire_len(&self) -> u64 {
        self.head.len() as u64 + base64_len(self.size) + self.tail.len() as u64
    }

    /// Whether every byte is ASCII (else the server must offer 8BITMIME);
    /// base64 is.
    pub(super) fn is_ascii(&self) -> bool {
        self.head.is_ascii() && self.tail.is_ascii()
    }

    /// The message's bytes, block by block, the attachment read as it goes.
    pub(super) fn body(&self) -> Result<BodyParts<'_>, DeliverError> {
        let f = std::fs::File::open(&self.file).map_err(|e| DeliverError::Io(self.file.clone(), e))?;
        Ok(BodyParts { m: self, file: f.take(self.size), left: self.size, step: 0 })
    }
}

/// The parts of a [`Streamed`] message: head, base64 blocks, tail.
pub(super) struct BodyParts<'a> {
    m: &'a Streamed,
    file: std::io::Take<std::fs::File>,
    left: u64,
    /// 0: head next; 1: blocks; 2: tail next; 3: done.
    step: u8,
}

impl BodyParts<'_> {
    /// The next part, `None` at the end; an error when the file cannot be
    /// read or ends before the size the message was built for.
    pub(super) fn next_part(&mut self) -> Result<Option<Vec<u8>>, DeliverError> {
        match self.step {
            0 => {
                self.step = if self.left == 0 { 2 } else { 1 };
                Ok(Some(self.m.head.clone()))
            }
            1 => {
                let mut buf = vec![0u8; BLOCK.min(usize::try_from(self.left).unwrap_or(BLOCK))];
                self.file.read_exact(&mut buf).map_err(|e| DeliverError::Io(self.m.file.clone(), e))?;
                let first = self.left == self.m.size;
                self.left -= buf.len() as u64;
                if self.left == 0 {
                    self.step = 2;
                }
                let mut out = Vec::with_capacity(buf.len() / 57 * 78 + 80);
                for line in buf.chunks(57) {
                    if !(first && out.is_empty()) {
                        out.extend_from_slice(b"\r\n");
                    }
                    let at = out.len();
                    out.resize(at + 76, 0);
                    let n = base64::engine::general_purpose::STANDARD
                        .encode_slice(line, &mut out[at..])
                        .expect("76 bytes hold the base64 of 57");
                    out.truncate(at + n);
                }
                Ok(Some(out))
            }
            2 => {
                self.step = 3;
                Ok(Some(self.m.tail.clone()))
            }
            _ => Ok(None),
        }
    }
}

/// The length of [`BodyParts`]' base64 lines for `n` bytes.
fn base64_len(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    n.div_ceil(3) * 4 + (n.div_ceil(57) - 1) * 2
}

/// The body lettre formats in place of the archive: 57 bytes, one base64
/// line of 76 characters, found again (the last occurrence: the attachment
/// is the message's last part) to split the formatted message around it.
const PLACEHOLDER: &[u8; 57] = b"lifeboat: the archive's base64 lines go here, streamed...";

/// The success message for `artifact` (the archive or its `.age`): with
/// the file attached when the encoded message fits the limit, else with
/// `link()` (`(url, expires_unix)`, `None` without `[links]`). The file is
/// not read here: an attached one is streamed when the message is sent.
pub fn success(
    cfg: &EmailConfig,
    templates: &Templates,
    mut ctx: SuccessContext,
    artifact: &Path,
    link: impl FnOnce() -> Result<Option<(String, i64)>, DeliverError>,
) -> Result<(Outgoing, Method), DeliverError> {
    let limit = (cfg.attach_limit_mb * 1e6) as u64;
    let size = std::fs::metadata(artifact).map_err(|e| DeliverError::Io(artifact.to_path_buf(), e))?.len();
    // base64 is 4/3 of the data plus line breaks; smaller cannot fit.
    if size.saturating_mul(4) / 3 <= limit {
        ctx.delivery.method = Method::Attachment;
        let subject = templates.subject("success.subject.j2", &ctx)?;
        let (text, html) = (templates.render("success.txt.j2", &ctx)?, templates.render("success.html.j2", &ctx)?);
        let kind = if ctx.archive_file.ends_with(".age") { "application/octet-stream" } else { "application/gzip" };
        let body = Body::new_with_encoding(PLACEHOLDER.to_vec(), ContentTransferEncoding::Base64)
            .map_err(|_| DeliverError::Build("the attachment placeholder cannot be base64-encoded".into()))?;
        let attachment =
            Attachment::new(ctx.archive_file.clone()).body(body, ContentType::parse(kind).expect("valid content type"));
        let m = build(
            envelope(cfg, subject)?,
            MultiPart::mixed().multipart(MultiPart::alternative_plain_html(text, html)).singlepart(attachment),
        )?;
        let streamed = split_at_placeholder(&m, artifact, size)?;
        if streamed.wire_len() <= limit {
            return Ok((Outgoing::Streamed(streamed), Method::Attachment));
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
    Ok((Outgoing::Built(m), method))
}

/// `m` split around its placeholder body, to send with `file`'s `size`
/// bytes in its place.
fn split_at_placeholder(m: &Message, file: &Path, size: u64) -> Result<Streamed, DeliverError> {
    let formatted = m.formatted();
    let line = base64::engine::general_purpose::STANDARD.encode(PLACEHOLDER);
    let at = formatted
        .windows(line.len())
        .rposition(|w| w == line.as_bytes())
        .ok_or_else(|| DeliverError::Build("the attachment's place was not found in the formatted message".into()))?;
    Ok(Streamed {
        envelope: m.envelope().clone(),
        head: formatted[..at].to_vec(),
        file: file.to_path_buf(),
        size,
        tail: formatted[at + line.len()..].to_vec(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What lettre itself writes for `data` as a base64 attachment body.
    fn lettre_lines(data: &[u8]) -> Vec<u8> {
        let body = Body::new_with_encoding(data.to_vec(), ContentTransferEncoding::Base64).unwrap();
        body.into_vec()
    }

    // covers: FR-3.5, PR-5
    #[test]
    fn the_streamed_attachment_is_byte_for_byte_what_lettre_would_write() {
        let dir = tempfile::tempdir().unwrap();
        for n in [0, 1, 2, 3, 56, 57, 58, 114, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 57 * 7 + 5] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7919 % 251) as u8).collect();
            let file = dir.path().join(format!("a{n}"));
            std::fs::write(&file, &data).unwrap();
            let m = Streamed {
                envelope: Envelope::new(None, vec!["a@example.com".parse().unwrap()]).unwrap(),
                head: b"HEAD\r\n".to_vec(),
                file,
                size: n as u64,
                tail: b"\r\nTAIL".to_vec(),
            };
            let mut parts = m.body().unwrap();
            let mut all = Vec::new();
            while let Some(p) = parts.next_part().unwrap() {
                assert!(p.len() <= BLOCK / 57 * 78 + 8, "a part of {} bytes for n = {n}", p.len());
                all.extend_from_slice(&p);
            }
            let mut want = b"HEAD\r\n".to_vec();
            want.extend_from_slice(&lettre_lines(&data));
            want.extend_from_slice(b"\r\nTAIL");
            assert_eq!(String::from_utf8_lossy(&all), String::from_utf8_lossy(&want), "n = {n}");
            assert_eq!(m.wire_len(), want.len() as u64, "n = {n}");
        }
    }

    // covers: FR-3.5
    #[test]
    fn a_file_shorter_than_when_the_message_was_built_is_an_error_not_a_short_mail() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, vec![7u8; 1000]).unwrap();
        let m = Streamed {
            envelope: Envelope::new(None, vec!["a@example.com".parse().unwrap()]).unwrap(),
            head: Vec::new(),
            file: file.clone(),
            size: 2000,
            tail: Vec::new(),
        };
        let mut parts = m.body().unwrap();
        assert!(parts.next_part().unwrap().is_some(), "the head");
        let e = parts.next_part().unwrap_err();
        assert!(matches!(&e, DeliverError::Io(p, _) if *p == file), "{e}");
    }
}
