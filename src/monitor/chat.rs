//! Chat and push channels beside the generic webhook (FR-4.7): a Slack or
//! Discord incoming webhook, a Telegram bot and an ntfy topic, each one URL
//! in `[alerts]` (`slack_url`, `discord_url`, `telegram_url`, `ntfy_url`).
//! Each URL is either the service's own HTTPS URL or a shoutrrr-style
//! short form:
//!
//! | key | forms |
//! |---|---|
//! | `slack_url` | `https://hooks.slack.com/services/T…/B…/…` (the webhook URL as Slack shows it), `slack://T…/B…/…` |
//! | `discord_url` | `https://discord.com/api/webhooks/ID/TOKEN`, `discord://TOKEN@ID` |
//! | `telegram_url` | `telegram://BOT_TOKEN@telegram?chats=CHAT[,CHAT…]` (api.telegram.org); another host than `telegram` is a self-hosted Bot API server |
//! | `ntfy_url` | `https://ntfy.sh/TOPIC`, `ntfy://[USER:PASSWORD@]HOST[:PORT]/TOPIC` (HTTPS) |
//!
//! The short forms of Telegram and ntfy take `?scheme=http` for a server
//! on a trusted network (shoutrrr's parameter); the long forms are used as
//! written. The payload is what each service accepts: Slack `{"text":…}`,
//! Discord `{"content":…}` (at most 2,000 characters, no mentions),
//! Telegram `sendMessage` with `chat_id` and `text` (at most 4,096
//! characters) to each chat, ntfy the text as the body with `Title`,
//! `Priority` and `Tags` headers.
//!
//! Every URL is a secret (whoever has it can post, or read the ntfy
//! topic): [`parse`] checks a URL without quoting it, and an error names
//! the key (`[alerts] slack_url`) and the service's host, with every
//! token, password and path part of the URL blanked out.

use std::time::Duration;

use base64::Engine as _;
use url::Url;

/// The chat services lifeboat posts to natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Slack,
    Discord,
    Telegram,
    Ntfy,
}

impl Service {
    pub const ALL: [Service; 4] = [Service::Slack, Service::Discord, Service::Telegram, Service::Ntfy];

    /// The channel's name in results and on the status page.
    pub fn name(self) -> &'static str {
        match self {
            Service::Slack => "slack",
            Service::Discord => "discord",
            Service::Telegram => "telegram",
            Service::Ntfy => "ntfy",
        }
    }

    /// Its key in `[alerts]`.
    pub fn key(self) -> &'static str {
        match self {
            Service::Slack => "slack_url",
            Service::Discord => "discord_url",
            Service::Telegram => "telegram_url",
            Service::Ntfy => "ntfy_url",
        }
    }

    fn forms(self) -> &'static str {
        match self {
            Service::Slack => "https://hooks.slack.com/services/T…/B…/… or slack://T…/B…/…",
            Service::Discord => "https://discord.com/api/webhooks/ID/TOKEN or discord://TOKEN@ID",
            Service::Telegram => "telegram://BOT_TOKEN@telegram?chats=CHAT_ID[,CHAT_ID]",
            Service::Ntfy => "https://ntfy.sh/TOPIC or ntfy://[USER:PASSWORD@]HOST[:PORT]/TOPIC",
        }
    }
}

/// A checked channel URL: where to POST, how, and what to blank out of
/// every message about it.
#[derive(Clone)]
pub struct Target {
    pub service: Service,
    endpoint: String,
    /// Telegram's chats.
    chats: Vec<String>,
    /// ntfy's `Authorization` header.
    auth: Option<String>,
    /// Host (and port) for messages: not a secret.
    host: String,
    secrets: Vec<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({}, {})", self.service.name(), self.host)
    }
}

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

/// Checks `url` as the value of `service`'s key. The error never quotes it.
pub fn parse(service: Service, url: &str) -> Result<Target, String> {
    let bad = |why: &str| format!("[alerts] {} {why}: expected {}", service.key(), service.forms());
    let u = Url::parse(url.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    let mut secrets = vec![url.to_string(), url.trim().to_string()];
    let user = percent(u.username());
    let password = u.password().map(percent);
    secrets.extend([user.clone(), password.clone().unwrap_or_default()]);
    // Every part that may be a token; the words of the services' own paths are not.
    for segment in u.path_segments().into_iter().flatten() {
        if !["services", "webhooks", "api"].contains(&segment) {
            secrets.push(percent(segment));
        }
    }
    for (k, v) in u.query_pairs() {
        if k != "scheme" {
            secrets.push(v.into_owned());
        }
    }
    let scheme_param = u.query_pairs().find(|(k, _)| k == "scheme").map(|(_, v)| v.into_owned());
    let web = matches!(u.scheme(), "https" | "http");
    let short = match service {
        Service::Slack => "slack",
        Service::Discord => "discord",
        Service::Telegram => "telegram",
        Service::Ntfy => "ntfy",
    };
    if !web && u.scheme() != short {
        return Err(bad("has an unknown scheme"));
    }
    let host_port = |u: &Url| -> Result<String, String> {
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("has no host"))?;
        Ok(match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        })
    };
    let short_scheme = || -> Result<&'static str, String> {
        match scheme_param.as_deref() {
            None | Some("https") => Ok("https"),
            Some("http") => Ok("http"),
            Some(_) => Err(bad("has a scheme parameter other than https or http")),
        }
    };
    let segments: Vec<String> =
        u.path_segments().into_iter().flatten().filter(|s| !s.is_empty()).map(percent).collect();
    let mut t =
        Target { service, endpoint: String::new(), chats: Vec::new(), auth: None, host: String::new(), secrets };
    match service {
        Service::Slack | Service::Discord if web => {
            t.host = host_port(&u)?;
            if segments.is_empty() {
                return Err(bad("has no path (the webhook's tokens)"));
            }
            t.endpoint = u.to_string();
        }
        Service::Slack => {
            // slack://A/B/C: the host is the first token.
            let first = u.host_str().map(percent).unwrap_or_default();
            if first.is_empty() || segments.len() != 2 {
                return Err(bad("needs the webhook's three tokens"));
            }
            t.secrets.push(first.clone());
            t.host = "hooks.slack.com".into();
            t.endpoint = format!("https://hooks.slack.com/services/{first}/{}/{}", segments[0], segments[1]);
        }
        Service::Discord => {
            let id = u.host_str().map(percent).unwrap_or_default();
            if id.is_empty() || user.is_empty() {
                return Err(bad("needs the webhook's token and id"));
            }
            t.secrets.push(id.clone());
            t.host = "discord.com".into();
            t.endpoint = format!("https://discord.com/api/webhooks/{id}/{user}");
        }
        Service::Telegram => {
            if web {
                return Err(bad("is an https URL"));
            }
            // A bot token is `123456:ABC…`: the URL's user and password.
            let token = match &password {
                Some(p) => format!("{user}:{p}"),
                None => user.clone(),
            };
            if token.is_empty() {
                return Err(bad("has no bot token"));
            }
            t.secrets.push(token.clone());
            t.chats = u
                .query_pairs()
                .filter(|(k, _)| k == "chats" || k == "chat_id")
                .flat_map(|(_, v)| v.split(',').map(|c| c.trim().to_string()).collect::<Vec<_>>())
                .filter(|c| !c.is_empty())
                .collect();
            if t.chats.is_empty() {
                return Err(bad("names no chat (?chats=…)"));
            }
            let host = host_port(&u)?;
            let (scheme, host) =
                if host == "telegram" { ("https", "api.telegram.org".to_string()) } else { (short_scheme()?, host) };
            t.endpoint = format!("{scheme}://{host}/bot{token}/sendMessage");
            t.host = host;
        }
        Service::Ntfy => {
            t.host = host_port(&u)?;
            if segments.len() != 1 {
                return Err(bad("needs exactly one topic in its path"));
            }
            let scheme = if web { u.scheme() } else { short_scheme()? };
            t.endpoint = format!("{scheme}://{}/{}", t.host, segments[0]);
            if !user.is_empty() || password.is_some() {
                // An access token goes as the password with an empty user name.
                let pair = format!("{user}:{}", password.unwrap_or_default());
                t.auth = Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)));
            }
        }
    }
    t.secrets.push(t.endpoint.clone());
    t.secrets.retain(|s| s.len() >= 4);
    t.secrets.sort();
    t.secrets.dedup();
    // The longest first: a token inside the URL is blanked with the URL.
    t.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    Ok(t)
}

fn percent(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

impl Target {
    /// `text` with every secret part of the URL blanked out.
    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// Posts `notice`; the error names the key and the host, nothing secret.
    pub fn send(&self, notice: &Notice, timeout: Duration) -> Result<(), String> {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
        let full = format!("{}\n{}", notice.marked(), notice.text);
        let posts: Vec<(Vec<(&str, String)>, String)> = match self.service {
            Service::Slack => {
                let text = format!("*{}*\n{}", slack_escape(&notice.marked()), slack_escape(&notice.text));
                vec![json(serde_json::json!({ "text": clip(&text, 3_000) }))]
            }
            Service::Discord => vec![json(serde_json::json!({
                "content": clip(&full, 2_000),
                // An error text with "@everyone" in it pings nobody.
                "allowed_mentions": { "parse": [] },
            }))],
            Service::Telegram => self
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
                if let Some(a) = &self.auth {
                    headers.push(("Authorization", a.clone()));
                }
                // ntfy turns a body above 4,096 bytes into an attachment.
                vec![(headers, clip_bytes(&notice.text, 4_000))]
            }
        };
        for (headers, body) in posts {
            let mut req = agent.post(&self.endpoint);
            for (k, v) in &headers {
                req = req.header(*k, v);
            }
            let what = format!("[alerts] {} (POST to {})", self.service.key(), self.host);
            match req.send(body.as_str()) {
                Ok(mut r) if r.status().is_success() => {
                    let _ = r.body_mut().read_to_string();
                }
                Ok(mut r) => {
                    let status = r.status();
                    let answer = r.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
                    let answer: String =
                        answer.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
                    return Err(self.redact(&format!("{what}: HTTP {status}: {answer}")));
                }
                Err(e) => return Err(self.redact(&format!("{what}: {e}"))),
            }
        }
        Ok(())
    }
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

    // covers: FR-4.7, SC-2.4
    #[test]
    fn each_service_has_its_long_and_short_form_and_an_error_never_quotes_the_url() {
        let t = parse(Service::Slack, "slack://T0AAA1111/B0BBB2222/XyZsEcReTtOkEn42").unwrap();
        assert_eq!(t.endpoint, "https://hooks.slack.com/services/T0AAA1111/B0BBB2222/XyZsEcReTtOkEn42");
        let t = parse(Service::Discord, "discord://d1sc0rdT0ken@112233445566").unwrap();
        assert_eq!(t.endpoint, "https://discord.com/api/webhooks/112233445566/d1sc0rdT0ken");
        let t = parse(Service::Telegram, "telegram://123456:AAF-s3cr3t@telegram?chats=-1001,@ops").unwrap();
        assert_eq!(t.endpoint, "https://api.telegram.org/bot123456:AAF-s3cr3t/sendMessage");
        assert_eq!(t.chats, ["-1001", "@ops"]);
        let t = parse(Service::Telegram, "telegram://1:tok@127.0.0.1:9?chats=5&scheme=http").unwrap();
        assert_eq!(t.endpoint, "http://127.0.0.1:9/bot1:tok/sendMessage");
        let t = parse(Service::Ntfy, "ntfy://:tk_acc3ss@ntfy.example.com/backups-8f2").unwrap();
        assert_eq!(t.endpoint, "https://ntfy.example.com/backups-8f2");
        assert_eq!(t.auth.as_deref(), Some("Basic OnRrX2FjYzNzcw=="));
        assert_eq!(parse(Service::Ntfy, "https://ntfy.sh/x-topic").unwrap().endpoint, "https://ntfy.sh/x-topic");

        for (service, url) in [
            (Service::Telegram, "telegram://123456:AAF-s3cr3t@telegram"),
            (Service::Telegram, "https://api.telegram.org/bot123456:AAF-s3cr3t/sendMessage"),
            (Service::Slack, "slack://AAF-s3cr3t"),
            (Service::Discord, "discord://AAF-s3cr3t"),
            (Service::Ntfy, "ftp://AAF-s3cr3t.example/topic"),
            (Service::Ntfy, "ntfy://host/AAF-s3cr3t?scheme=gopher"),
            (Service::Slack, "hooks.slack.com/services/AAF-s3cr3t"),
        ] {
            let e = parse(service, url).unwrap_err();
            assert!(e.starts_with(&format!("[alerts] {} ", service.key())) && !e.contains("s3cr3t"), "{e}");
        }
        let t = parse(Service::Telegram, "telegram://123456:AAF-s3cr3t@telegram?chats=1").unwrap();
        assert_eq!(t.redact("GET /bot123456:AAF-s3cr3t/sendMessage"), "GET /bot***/sendMessage");
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

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
