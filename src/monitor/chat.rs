//! Chat and push channels beside the generic webhook (FR-4.7): a Slack or
//! Discord incoming webhook, a Telegram bot and an ntfy topic, each one URL
//! in `[alerts]`, checked when the config loads into a
//! [`Target`] (its forms are listed in
//! [`crate::config::chat_url`]). [`send`] posts a [`Notice`] in the payload
//! each service accepts: Slack `{"text":…}`, Discord `{"content":…}` (at
//! most 2,000 characters, no mentions), Telegram `sendMessage` with
//! `chat_id` and `text` (at most 4,096 characters) to each chat, ntfy the
//! text as the body with `Title`, `Priority` and `Tags` headers. An error
//! names the key (`[alerts] slack_url`) and the service's host, with every
//! token, password and path part of the URL blanked out.

use std::time::Duration;

use base64::Engine as _;

pub use crate::config::chat_url::{parse, Service, Target};

/// One notice for people: a headline and its text.
#[derive(Debug, Clone)]
pub struct Notice {
    /// `FAILED: <app> <what> on <host>` or `RECOVERED: …`, as the mail's
    /// subject says it (without its mark).
    pub headline: String,
    pub text: String,
    /// A recovery (✅, default priority) rather than an alert (❌, high).
    pub recovery: bool,
}

impl Notice {
    /// The headline as the mail's subject: `[lifeboat] ❌ FAILED: …`.
    fn marked(&self) -> String {
        format!("[lifeboat] {} {}", if self.recovery { "✅" } else { "❌" }, self.headline)
    }
}

/// Posts `notice` to `target`; the error names the key and the host, nothing secret.
pub fn send(target: &Target, notice: &Notice, timeout: Duration) -> Result<(), String> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
    let full = format!("{}\n{}", notice.marked(), notice.text);
    let posts: Vec<(Vec<(&str, String)>, String)> = match target.service {
        Service::Slack => {
            let text = format!("*{}*\n{}", slack_escape(&notice.marked()), slack_escape(&notice.text));
            vec![json(serde_json::json!({ "text": clip(&text, 3_000) }))]
        }
        Service::Discord => vec![json(serde_json::json!({
            "content": clip(&full, 2_000),
            // An error text with "@everyone" in it pings nobody.
            "allowed_mentions": { "parse": [] },
        }))],
        Service::Telegram => target
            .chats
            .iter()
            .map(|chat| {
                json(serde_json::json!({
                    "chat_id": chat,
                    "text": clip(&full, 4_096),
                    "disable_web_page_preview": true,
                }))
            })
            .collect(),
        Service::Ntfy => {
            let mut headers = vec![
                ("Content-Type", "text/plain; charset=utf-8".to_string()),
                // The mark is the tag's emoji: an ASCII title stays readable everywhere.
                ("Title", header_text(&format!("[lifeboat] {}", notice.headline))),
                ("Priority", if notice.recovery { "default" } else { "high" }.to_string()),
                ("Tags", if notice.recovery { "white_check_mark" } else { "rotating_light" }.to_string()),
            ];
            if let Some(a) = &target.auth {
                headers.push(("Authorization", a.clone()));
            }
            // ntfy turns a body above 4,096 bytes into an attachment.
            vec![(headers, clip_bytes(&notice.text, 4_000))]
        }
    };
    for (headers, body) in posts {
        let mut req = agent.post(&target.endpoint);
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let what = format!("[alerts] {} (POST to {})", target.service.key(), target.host);
        match req.send(body.as_str()) {
            Ok(mut r) if r.status().is_success() => {
                let _ = r.body_mut().read_to_string();
            }
            Ok(mut r) => {
                let status = r.status();
                let answer = r.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
                let answer: String =
                    answer.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
                return Err(target.redact(&format!("{what}: HTTP {status}: {answer}")));
            }
            Err(e) => return Err(target.redact(&format!("{what}: {e}"))),
        }
    }
    Ok(())
}

fn json(v: serde_json::Value) -> (Vec<(&'static str, String)>, String) {
    (vec![("Content-Type", "application/json".to_string())], v.to_string())
}

/// Slack's three control characters (its formatting guide).
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most `max` UTF-16 units (how Discord and Telegram count), ending in
/// "…" when cut.
fn clip(s: &str, max: usize) -> String {
    if s.encode_utf16().count() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut n = 0;
    for c in s.chars() {
        if n + c.len_utf16() > max - 1 {
            break;
        }
        n += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

/// At most `max` bytes of UTF-8, cut at a character boundary.
fn clip_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A header value: ASCII as is, anything else as an RFC 2047 encoded word
/// (ntfy decodes those since 2.4).
fn header_text(s: &str) -> String {
    let one_line = s.replace(['\r', '\n'], " ");
    if one_line.is_ascii() {
        one_line
    } else {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(one_line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-4.7
    #[test]
    fn texts_are_clipped_to_what_each_service_takes() {
        let long = "é".repeat(5000);
        assert_eq!(clip(&long, 2000).chars().count(), 2000);
        assert!(clip(&long, 2000).ends_with('…'));
        assert_eq!(clip("short", 2000), "short");
        let emoji = "😀".repeat(1500);
        assert!(clip(&emoji, 2000).encode_utf16().count() <= 2000, "UTF-16 units, as Discord counts");
        assert!(clip_bytes(&long, 4000).len() <= 4000);
        assert_eq!(header_text("a\nb"), "a b");
        assert_eq!(header_text("✅ ok"), "=?UTF-8?B?4pyFIG9r?=");
        assert_eq!(slack_escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
    }
}
