//! Alert channels: the alert mail to `[email] to` (through
//! [`crate::deliver`]), a JSON webhook POST (`[alerts] webhook_url`), the
//! chat channels of [`super::chat`] (Slack, Discord, Telegram, ntfy) and a
//! healthchecks.io-style ping (`[alerts] ping_url`: `/start` when a run
//! begins, the bare URL on success, `/fail` on failure). A channel that
//! fails is reported and never stops the others. The URLs are secrets: no
//! message, body or log line contains them. An incident's recovery notice
//! ([`recovery`]) goes by mail, webhook and every chat channel.
//!
//! [`unheard`] says when alerts would reach nobody: no channel configured,
//! or mail the only one and the last backup mail failed. The daemon logs
//! it at start and the status page shows it.

use std::time::Duration;

use serde::Serialize;

use super::chat;
use crate::config::{AlertsConfig, Config};
use crate::deliver;
use crate::deliver::message::{AlertContext, RecoveryContext};
use crate::events::{Event, Progress};

/// What went wrong, for every channel.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// The incident kind (spec FR-4.6): `backup_failed`, `delivery_failed`,
    /// `restore_test_failed`, `stale`, `size_out_of_band`, … .
    pub kind: &'static str,
    /// One line for people: "backup failed", "backup mail not delivered".
    pub title: String,
    /// The pipeline step that failed (`connect`, `plan`, `schema`, `data`,
    /// `verify`, `deliver`, …).
    pub step: String,
    /// The error with its cause chain (pg_dump's stderr quoted).
    pub error: String,
    pub retried: String,
    pub next_steps: Vec<String>,
    pub log_lines: Vec<String>,
    pub archive: Option<String>,
    pub host: String,
    /// RFC 3339, UTC.
    pub time: String,
}

/// Where a run stands, for the ping channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
}

/// The outcome of one channel.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelResult {
    pub channel: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(timeout)).build().into()
}

/// ureq's error without the URL (a secret) in it.
fn describe(e: &ureq::Error, url: &str, name: &str) -> String {
    let text = e.to_string();
    let text = text.replace(url, &format!("<{name}>"));
    match url.split_once("://").map(|(_, rest)| rest) {
        Some(rest) if !rest.is_empty() => text.replace(rest, &format!("<{name}>")),
        _ => text,
    }
}

/// Sends the alert through every configured channel: mail (unless `mail`
/// is false, e.g. when mail itself is what failed), webhook, ping `/fail`.
pub fn alert(cfg: &Config, a: &Alert, mail: bool, progress: Progress) -> Vec<ChannelResult> {
    let mut results = Vec::new();
    if mail && cfg.email.enabled() {
        let r = alert_mail(cfg, a, progress);
        if let Err(e) = &r {
            progress(Event::Warning(format!("the alert mail was not sent: {e}")));
        }
        results.push(ChannelResult { channel: "email", ok: r.is_ok(), error: r.err() });
    }
    if let Some(url) = &cfg.alerts.webhook_url {
        let r = webhook(&cfg.alerts, url.expose(), a, &deliver::app_name(cfg));
        if let Err(e) = &r {
            progress(Event::Warning(format!("the alert webhook failed: {e}")));
        }
        results.push(ChannelResult { channel: "webhook", ok: r.is_ok(), error: r.err() });
    }
    let notice = alert_notice(cfg, a);
    results.extend(chats(cfg, &notice, "alert", progress));
    // The ping reports runs: a failed run, delivery or offsite copy, not what
    // the monitor finds between runs (healthchecks.io notices a missing ping itself).
    if cfg.alerts.ping_url.is_some() && matches!(a.kind, "backup_failed" | "delivery_failed" | "offsite_failed") {
        let r = ping(&cfg.alerts, Ping::Fail, Some(&format!("{}: {}\n\n{}", a.title, a.step, a.error)), progress);
        results.push(ChannelResult { channel: "ping", ok: r.is_ok(), error: r.err() });
    }
    results
}

fn alert_mail(cfg: &Config, a: &Alert, progress: Progress) -> Result<(), String> {
    let ctx = AlertContext {
        app: deliver::app_name(cfg),
        host: a.host.clone(),
        version: env!("CARGO_PKG_VERSION"),
        title: a.title.clone(),
        step: a.step.clone(),
        time: a.time.clone(),
        error: a.error.clone(),
        retried: a.retried.clone(),
        next_steps: a.next_steps.clone(),
        log_lines: a.log_lines.clone(),
        archive: a.archive.clone(),
    };
    deliver::send_notice(cfg, "alert mail", progress, |t| deliver::message::alert(&cfg.email, t, &ctx))
}

/// Sends an incident's recovery notice by mail (when configured) and as a
/// webhook POST with `event = "recovery"`.
pub fn recovery(cfg: &Config, r: &RecoveryContext, progress: Progress) -> Vec<ChannelResult> {
    let mut results = Vec::new();
    if cfg.email.enabled() {
        let sent =
            deliver::send_notice(cfg, "recovery mail", progress, |t| deliver::message::recovery(&cfg.email, t, r));
        if let Err(e) = &sent {
            progress(Event::Warning(format!("the recovery mail was not sent: {e}")));
        }
        results.push(ChannelResult { channel: "email", ok: sent.is_ok(), error: sent.err() });
    }
    if let Some(url) = &cfg.alerts.webhook_url {
        let body = serde_json::json!({
            "event": "recovery",
            "incident": r.kind,
            "kind": r.kind,
            "app": r.app,
            "title": r.title,
            "message": r.detail,
            "host": r.host,
            "opened_at": r.opened_at,
            "time": r.closed_at,
        });
        let sent = post_json(&cfg.alerts, url.expose(), &body.to_string());
        if let Err(e) = &sent {
            progress(Event::Warning(format!("the recovery webhook failed: {e}")));
        }
        results.push(ChannelResult { channel: "webhook", ok: sent.is_ok(), error: sent.err() });
    }
    let notice = chat::Notice {
        headline: format!("RECOVERED: {} {} on {}", r.app, r.title, r.host),
        text: format!(
            "The {} incident is closed after {} (open since {}, {} alert(s) sent).\n{}",
            r.kind, r.lasted, r.opened_at, r.alerts_sent, r.detail
        ),
        recovery: true,
    };
    results.extend(chats(cfg, &notice, "recovery", progress));
    results
}

/// Posts `notice` to every chat channel configured; `what` is "alert" or
/// "recovery", for the warnings.
fn chats(cfg: &Config, notice: &chat::Notice, what: &str, progress: Progress) -> Vec<ChannelResult> {
    cfg.alerts
        .chats()
        .map(|(service, url)| {
            let r = chat::parse(service, url.expose())
                .and_then(|t| chat::send(&t, notice, cfg.alerts.timeout.approx_duration()));
            if let Err(e) = &r {
                progress(Event::Warning(format!("the {what} to {} failed: {e}", service.name())));
            }
            ChannelResult { channel: service.name(), ok: r.is_ok(), error: r.err() }
        })
        .collect()
}

/// An alert as chat text: the mail's subject as the headline, then where,
/// the error, what was retried and what to do.
fn alert_notice(cfg: &Config, a: &Alert) -> chat::Notice {
    let mut text = format!("Step: {} · Host: {} · {}\n\n", a.step, a.host, a.time);
    // The whole cause chain, but not pages of pg_dump output.
    let error: Vec<&str> = a.error.lines().take(20).collect();
    text.push_str(&error.join("\n"));
    if let Some(archive) = &a.archive {
        text.push_str(&format!("\n\nArchive: {archive}"));
    }
    if !a.retried.is_empty() {
        text.push_str(&format!("\n\n{}", a.retried));
    }
    if !a.next_steps.is_empty() {
        text.push_str("\n\nWhat to do:");
        for step in &a.next_steps {
            text.push_str(&format!("\n• {step}"));
        }
    }
    chat::Notice {
        headline: format!("FAILED: {} {} on {}", deliver::app_name(cfg), a.title, a.host),
        text,
        recovery: false,
    }
}

/// The alert channels configured, by name (mail first).
pub fn configured(cfg: &Config) -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg.email.enabled() {
        names.push("email");
    }
    if cfg.alerts.webhook_url.is_some() {
        names.push("webhook");
    }
    names.extend(cfg.alerts.chats().map(|(s, _)| s.name()));
    if cfg.alerts.ping_url.is_some() {
        names.push("ping");
    }
    names
}

/// [`unheard`] with the storage directory's newest delivery (an unreadable
/// history counts as mail that works: the history's own error is logged
/// elsewhere).
pub fn unheard_now(cfg: &Config) -> Option<String> {
    let failing = super::checks::gather(&cfg.storage.dir).map(|f| f.failed_delivery.is_some()).unwrap_or(false);
    unheard(cfg, failing)
}

/// Why alerts would reach nobody, when they would: no channel at all, or
/// mail the only one and `mail_failing` (the newest backup mail was not
/// delivered). `None` when some channel can carry them.
pub fn unheard(cfg: &Config, mail_failing: bool) -> Option<String> {
    const OTHERS: &str = "[alerts] slack_url, discord_url, telegram_url, ntfy_url, webhook_url or ping_url";
    match configured(cfg).as_slice() {
        [] => Some(format!(
            "no alert channel is configured: a failed backup reaches nobody. Set [email] (SMTP_HOST, \
             ADMIN_EMAILS) or one of {OTHERS}"
        )),
        ["email"] if mail_failing => Some(format!(
            "mail is the only alert channel and the last backup mail was not delivered: alerts reach nobody. \
             Fix [email] (`lifeboat test-email` checks it) or add one of {OTHERS}"
        )),
        _ => None,
    }
}

#[derive(Serialize)]
struct WebhookBody<'a> {
    event: &'static str,
    incident: &'a str,
    kind: &'a str,
    app: &'a str,
    title: &'a str,
    message: &'a str,
    step: &'a str,
    host: &'a str,
    time: &'a str,
    retried: &'a str,
    next_steps: &'a [String],
    archive: Option<&'a str>,
}

/// POSTs the alert as JSON.
fn webhook(cfg: &AlertsConfig, url: &str, a: &Alert, app: &str) -> Result<(), String> {
    let body = WebhookBody {
        event: "alert",
        incident: a.kind,
        kind: a.kind,
        app,
        title: &a.title,
        message: &a.error,
        step: &a.step,
        host: &a.host,
        time: &a.time,
        retried: &a.retried,
        next_steps: &a.next_steps,
        archive: a.archive.as_deref(),
    };
    post_json(cfg, url, &serde_json::to_string(&body).expect("serializable"))
}

fn post_json(cfg: &AlertsConfig, url: &str, json: &str) -> Result<(), String> {
    agent(cfg.timeout.approx_duration())
        .post(url)
        .header("Content-Type", "application/json")
        .send(json)
        .map(|_| ())
        .map_err(|e| format!("POST to [alerts] webhook_url: {}", describe(&e, url, "webhook_url")))
}

/// Signals the ping URL; `body` (a failure's text) is posted with `/fail`.
/// Without `[alerts] ping_url` this does nothing. A failure is reported
/// as a warning and returned.
pub fn ping(cfg: &AlertsConfig, which: Ping, body: Option<&str>, progress: Progress) -> Result<(), String> {
    let Some(base) = &cfg.ping_url else { return Ok(()) };
    let base = base.expose().trim_end_matches('/');
    let url = match which {
        Ping::Start => format!("{base}/start"),
        Ping::Success => base.to_string(),
        Ping::Fail => format!("{base}/fail"),
    };
    // healthchecks.io keeps the first 100 kB of a ping's body.
    let body: String = body.unwrap_or("").chars().take(100_000).collect();
    let r = agent(cfg.timeout.approx_duration())
        .post(&url)
        .header("Content-Type", "text/plain; charset=utf-8")
        .send(body.as_str())
        .map(|_| ())
        .map_err(|e| format!("ping to [alerts] ping_url failed: {}", describe(&e, base, "ping_url")));
    if let Err(e) = &r {
        progress(Event::Warning(e.clone()));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    // covers: FR-4.7
    #[test]
    fn alerts_reach_nobody_without_a_channel_or_with_failing_mail_alone() {
        let mut cfg = Config::default();
        assert!(configured(&cfg).is_empty());
        assert!(unheard(&cfg, false).unwrap().starts_with("no alert channel is configured"));
        cfg.email.smtp_host = Some("smtp.example.test".into());
        assert_eq!(configured(&cfg), ["email"]);
        assert!(unheard(&cfg, false).is_none(), "mail that works carries alerts");
        assert!(unheard(&cfg, true).unwrap().starts_with("mail is the only alert channel"));
        cfg.alerts.ntfy_url = Some(Secret::new("https://ntfy.sh/topic-8c1"));
        cfg.alerts.ping_url = Some(Secret::new("https://hc-ping.com/uuid"));
        assert_eq!(configured(&cfg), ["email", "ntfy", "ping"]);
        assert!(unheard(&cfg, true).is_none(), "ntfy carries them while mail fails");
    }
}
