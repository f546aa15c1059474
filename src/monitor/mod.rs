//! Watching the backups and telling people: `checks` decides healthy or
//! not from the history and the marker files only (no database, no
//! network), for `lifeboat check` (the Docker HEALTHCHECK) and the
//! daemon's `/healthz`; `channels` carries alerts (mail, webhook, ping,
//! and the chat services of `chat`: Slack, Discord, Telegram, ntfy);
//! `incidents` turns problems into one alert each, reminders and recovery
//! notices (the daemon's monitor loop, and each backup run's own failures).

pub mod channels;
pub mod chat;
pub mod checks;
pub mod incidents;
