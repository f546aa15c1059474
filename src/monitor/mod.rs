//! Watching the backups and telling people: for now the alert channels
//! ([`channels`]: alert mail, webhook, ping). The health checks shared by
//! `check` and `/healthz`, and incidents, land here with the daemon.

pub mod channels;
