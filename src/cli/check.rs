//! `lifeboat check`: the Docker HEALTHCHECK. Reads the storage directory's
//! history and markers only (never the database); exit 0 healthy, 1
//! unhealthy with one line per problem.

use super::{emit, load, Cli};
use crate::config::Overrides;
use crate::error::Error;
use crate::monitor::checks;

pub(super) fn run(cli: &Cli) -> Result<u8, Error> {
    let config = load(cli, &Overrides::default())?;
    let health = checks::check(&config.storage.dir, &config.monitor, chrono::Utc::now())?;
    emit(cli.json, &health, |h| {
        if h.healthy {
            let when = h.last_success.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
            let size = h.last_size_bytes.map(super::render::bytes).unwrap_or_else(|| "size unknown".into());
            format!("healthy: last successful backup {when}, {size}\n")
        } else {
            h.reasons.iter().map(|r| format!("unhealthy: {r}\n")).collect()
        }
    });
    Ok(if health.healthy { 0 } else { 1 })
}
