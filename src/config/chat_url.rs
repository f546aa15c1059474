//! The chat channels' URLs in `[alerts]` (`slack_url`, `discord_url`,
//! `telegram_url`, `ntfy_url`): [`parse`] checks one when the config loads
//! and gives the [`Target`] that `crate::monitor::chat` posts to. Each URL
//! is either the service's own HTTPS URL or a shoutrrr-style short form:
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
//! written. Every URL is a secret (whoever has it can post, or read the
//! ntfy topic): an error names the key, never the URL, and
//! [`Target::redact`] blanks every token, password and path part of it.

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
    /// Where to POST.
    pub endpoint: String,
    /// Telegram's chats.
    pub chats: Vec<String>,
    /// ntfy's `Authorization` header.
    pub auth: Option<String>,
    /// Host (and port) for messages: not a secret.
    pub host: String,
    secrets: Vec<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({}, {})", self.service.name(), self.host)
    }
}

/// Checks `url` as the value of `service`'s key. The error never quotes it.
pub fn parse(service: Service, url: &str) -> Result<Target, String> {
    let bad = |why: &str| format!("[alerts] {} {why}: expected {}", service.key(), service.forms());
    let u = Url::parse(url.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    let secrets = secret_parts(&u, url);
    let user = percent(u.username());
    let password = u.password().map(percent);
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

/// Every part of `u` that may be a token (the words of the services' own
/// paths are not), and the URL itself as written.
fn secret_parts(u: &Url, raw: &str) -> Vec<String> {
    let mut secrets = vec![raw.to_string(), raw.trim().to_string(), percent(u.username())];
    secrets.extend(u.password().map(percent));
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
    secrets
}

fn percent(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

impl Target {
    /// `text` with every secret part of the URL blanked out.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
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
}
