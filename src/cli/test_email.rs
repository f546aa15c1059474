//! `lifeboat test-email`: sends a test message with the real `[email]`
//! settings and reports the SMTP outcome (exit 0 delivered, 1 not, 2 when
//! it cannot even be tried: no `[email]`, a bad address or template).

use super::{emit, load, Cli};
use crate::config::{Overrides, SmtpTls};
use crate::error::Error;
use crate::events::Progress;

pub(super) fn run(cli: &Cli, progress: Progress) -> Result<u8, Error> {
    let config = load(cli, &Overrides::default())?;
    let report = crate::deliver::test_email(&config, progress).map_err(|e| Error::Refused(e.to_string()))?;
    emit(cli.json, &report, |r| match (&r.reply, &r.error) {
        (Some(reply), _) => format!(
            "Test message delivered by {} ({}) to {} after {} attempt(s): {reply}\n",
            r.server,
            match r.tls {
                SmtpTls::Starttls => "STARTTLS",
                SmtpTls::Tls => "implicit TLS",
                SmtpTls::None => "no TLS",
            },
            r.recipients.join(", "),
            r.attempts
        ),
        (None, e) => format!(
            "Test message NOT delivered by {} after {} attempt(s): {}\n",
            r.server,
            r.attempts,
            e.as_deref().unwrap_or("unknown error")
        ),
    });
    Ok(if report.ok { 0 } else { 1 })
}
