//! Sending: lettre's blocking SMTP transport over rustls (STARTTLS that
//! the server must offer, or implicit TLS), certificate and host name always
//! verified (`ca_file` only adds a trust root), AUTH with the configured
//! user, and `[email] attempts` tries, `[email] backoff` apart. Every
//! attempt and the server's reply are reported; the password never is.
//!
//! A message with an attached archive ([`Streamed`]) goes out over lettre's
//! connection API instead of its transport, so its base64 body is read
//! from the file while the DATA is written: lettre's transport wants the
//! whole formatted message as one byte slice (and copies it twice more on
//! the way), which made `lifeboat send` of a 20 MB archive peak at ~96 MB.

use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::{Message, SmtpTransport, Transport};

use super::message::{Outgoing, Streamed};
use super::DeliverError;
use crate::config::{EmailConfig, SmtpTls};
use crate::events::{Event, Progress};

/// A configured SMTP client.
pub struct Mailer {
    transport: SmtpTransport,
    server: String,
    host: String,
    port: u16,
    tls: Tls,
    timeout: Option<Duration>,
    credentials: Option<Credentials>,
    attempts: u32,
    backoff: Duration,
    insecure: bool,
}

/// The result of sending one message.
#[derive(Debug, Clone)]
pub struct Sent {
    pub attempts: u32,
    /// The server's final reply (`250 …`), or the last error.
    pub outcome: Result<String, String>,
}

impl Mailer {
    pub fn new(cfg: &EmailConfig) -> Result<Mailer, DeliverError> {
        let host = cfg.smtp_host.clone().ok_or(DeliverError::NotConfigured)?;
        let tls_params = || -> Result<TlsParameters, DeliverError> {
            let mut b = TlsParameters::builder(host.clone());
            if let Some(path) = &cfg.ca_file {
                let pem = std::fs::read(path).map_err(|e| DeliverError::Io(path.clone(), e))?;
                let cert =
                    Certificate::from_pem(&pem).map_err(|e| DeliverError::CaFile(path.clone(), e.to_string()))?;
                b = b.add_root_certificate(cert);
            }
            b.build().map_err(|e| DeliverError::CaFile(cfg.ca_file.clone().unwrap_or_default(), e.to_string()))
        };
        let tls = match cfg.tls {
            SmtpTls::Starttls => Tls::Required(tls_params()?),
            SmtpTls::Tls => Tls::Wrapper(tls_params()?),
            SmtpTls::None => Tls::None,
        };
        let timeout = Some(cfg.timeout.approx_duration());
        let credentials = cfg.username.as_ref().map(|user| {
            Credentials::new(user.clone(), cfg.password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default())
        });
        let mut b = SmtpTransport::builder_dangerous(&host).port(cfg.smtp_port).tls(tls.clone()).timeout(timeout);
        if let Some(c) = &credentials {
            b = b.credentials(c.clone());
        }
        Ok(Mailer {
            transport: b.build(),
            server: cfg.display_server(),
            host,
            port: cfg.smtp_port,
            tls,
            timeout,
            credentials,
            attempts: cfg.attempts.max(1),
            backoff: cfg.backoff.approx_duration(),
            insecure: cfg.tls == SmtpTls::None,
        })
    }

    /// `host:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends `message`, trying up to `attempts` times; `what` names it in
    /// the log ("backup mail", "alert").
    pub fn send(&self, message: &Message, what: &str, progress: Progress) -> Sent {
        self.try_send(what, progress, || self.transport.send(message).map_err(|e| explain(&e, &self.host)))
    }

    /// [`send`](Self::send) for a built or a streamed message.
    pub fn send_outgoing(&self, message: &Outgoing, what: &str, progress: Progress) -> Sent {
        match message {
            Outgoing::Built(m) => self.send(m, what, progress),
            Outgoing::Streamed(m) => self.try_send(what, progress, || self.send_streamed(m)),
        }
    }

    fn try_send(&self, what: &str, progress: Progress, attempt: impl Fn() -> Result<Response, String>) -> Sent {
        if self.insecure {
            progress(Event::Warning(format!(
                "sending the {what} to {} without TLS (tls = \"none\", allow_insecure = true): the SMTP password and the message travel in clear text",
                self.server
            )));
        }
        let delay = self.backoff;
        let mut last = String::new();
        for n in 1..=self.attempts {
            tracing::info!(attempt = n, of = self.attempts, server = %self.server, "sending the {what}");
            match attempt() {
                Ok(reply) => {
                    let text = format!("{} {}", reply.code(), reply.message().collect::<Vec<_>>().join(" "));
                    progress(Event::Detail(format!(
                        "{what}: attempt {n}/{} to {}: delivered ({text})",
                        self.attempts, self.server
                    )));
                    return Sent { attempts: n, outcome: Ok(text) };
                }
                Err(e) => {
                    last = format!("SMTP {}: {e} (attempt {n}/{})", self.server, self.attempts);
                    if n < self.attempts {
                        progress(Event::Warning(format!(
                            "{what}: attempt {n}/{} failed: {last}; retrying in {}s",
                            self.attempts,
                            delay.as_secs()
                        )));
                        std::thread::sleep(delay);
                    } else {
                        progress(Event::Warning(format!("{what}: attempt {n}/{} failed: {last}", self.attempts)));
                    }
                }
            }
        }
        Sent { attempts: self.attempts, outcome: Err(last) }
    }

    /// One attempt at a [`Streamed`] message: the session lettre's transport
    /// would hold (TLS as configured, AUTH, MAIL, RCPT, DATA), with the
    /// attachment's base64 lines encoded from the file as they are written.
    /// A read error mid-way drops the connection before the final `.`, so
    /// the server discards the message instead of delivering it cut short.
    fn send_streamed(&self, m: &Streamed) -> Result<Response, String> {
        let smtp = |e: lettre::transport::smtp::Error| explain(&e, &self.host);
        let hello = ClientId::default();
        let wrapper = match &self.tls {
            Tls::Wrapper(p) => Some(p),
            _ => None,
        };
        let mut conn = SmtpConnection::connect((self.host.as_str(), self.port), self.timeout, &hello, wrapper, None)
            .map_err(smtp)?;
        if let Tls::Required(p) = &self.tls {
            conn.starttls(p, &hello).map_err(smtp)?;
        }
        if let Some(c) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, c).map_err(smtp)?;
        }
        let mut options = Vec::new();
        if !m.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err("the message is not ASCII and the server does not offer 8BITMIME".into());
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        conn.command(Mail::new(m.envelope.from().cloned(), options)).map_err(smtp)?;
        for to in m.envelope.to() {
            conn.command(Rcpt::new(to.clone(), Vec::new())).map_err(smtp)?;
        }
        conn.command(Data).map_err(smtp)?;
        let mut body = m.body().map_err(|e| e.to_string())?;
        let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            // message_iter ends the DATA with "." whatever the iterator
            // does; unwinding out of it (resume_unwind, no panic hook) is
            // the one way to leave before that, dropping the connection.
            let parts = std::iter::from_fn(|| match body.next_part() {
                Ok(part) => part,
                Err(e) => std::panic::resume_unwind(Box::new(e)),
            });
            let reply = conn.message_iter(parts);
            let _ = conn.quit();
            reply
        }));
        match sent {
            Ok(reply) => reply.map_err(smtp),
            Err(payload) => match payload.downcast::<DeliverError>() {
                Ok(e) => Err(format!("{e}; the message was abandoned before its end, so nothing was delivered")),
                Err(payload) => std::panic::resume_unwind(payload),
            },
        }
    }
}

/// lettre's error with its causes and what to do about it.
fn explain(e: &lettre::transport::smtp::Error, host: &str) -> String {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !chain.contains(&s_text) {
            chain.push_str(": ");
            chain.push_str(&s_text);
        }
        source = s.source();
    }
    let hint = if chain.contains("CaUsedAsEndEntity") || chain.contains("SelfSigned") {
        " — the server's certificate is self-signed and marked as a CA, so it cannot be trusted as the server's own \
         certificate: issue the server a certificate signed by that CA (or any CA) and keep [email] ca_file set to \
         the CA's PEM; verification cannot be switched off"
            .to_string()
    } else if chain.contains("UnknownIssuer") || chain.contains("unknown issuer") || chain.contains("BadSignature") {
        " — the server's certificate is self-signed or not issued by a trusted CA: set [email] ca_file to the PEM \
         of the CA that issued it (a private CA; a self-signed server certificate needs a CA of its own); \
         verification cannot be switched off"
            .to_string()
    } else if chain.contains("NotValidForName") || chain.contains("not valid for name") {
        format!(
            " — the server's certificate is for another name, not {host}: set [email] smtp_host to a name the \
             certificate lists"
        )
    } else if chain.contains("Expired") || chain.contains("NotValidYet") {
        " — the server's certificate has expired (or is not valid yet): renew it on the SMTP server, and check this \
         machine's clock"
            .into()
    } else if e.status().is_some_and(|c| c.to_string().starts_with("535")) || chain.contains("authentication") {
        " — authentication failed: check [email] username and password (SMTP_USER / SMTP_PASS); Gmail needs an app password"
            .into()
    } else if chain.contains("Connection refused") || chain.contains("timed out") || chain.contains("lookup") {
        " — is the SMTP server up, and are [email] smtp_host and smtp_port right?".into()
    } else if e.is_permanent() && chain.contains("<") {
        " — the server refused the address above: fix [email] to (ADMIN_EMAILS)".into()
    } else {
        String::new()
    };
    format!("{chain}{hint}")
}
