//! `lifeboat daemon`: checks everything it will need at start (schedule,
//! mail templates, the link key, the listener) so a mistake is exit 2 now,
//! not a failed run at 02:00 (FR-23.1); then logs to stderr and `[log]
//! file`, builds the tokio runtime and runs `daemon::run` until SIGTERM or
//! SIGINT, which stop it gracefully (FR-23.2): exit 0.

use super::{load, Cli};
use crate::config::{ConfigError, Overrides};
use crate::error::Error;

pub(super) fn run(cli: &Cli) -> Result<u8, Error> {
    let config = load(cli, &Overrides::default())?;
    let schedule = crate::daemon::schedule_of(&config)?;
    crate::deliver::templates::Templates::load(config.email.templates_dir.as_deref()).map_err(|e| {
        Error::Config(ConfigError::Invalid(format!("email.templates_dir: {e}; fix the template or remove the key")))
    })?;
    crate::daemon::downloads(&config)?;
    super::logging::init("warn,lifeboat=info", Some(&config));
    let runtime = super::serve::runtime("the daemon's runtime")?;
    runtime.block_on(async move {
        let addr = config.http.listen.clone();
        let listener = super::serve::bind(&addr, "[http] listen (LIFEBOAT_HTTP__LISTEN)").await?;
        let metrics = match &config.http.metrics_listen {
            Some(a) => Some(super::serve::bind(a, "[http] metrics_listen (LIFEBOAT_HTTP__METRICS_LISTEN)").await?),
            None => None,
        };
        let local = listener.local_addr().map_err(|e| Error::Failed(format!("cannot read the bound address: {e}")))?;
        tracing::info!(
            cron = schedule.cron(),
            timezone = schedule.zone().name(),
            listen = %local,
            storage = %config.storage.dir.display(),
            "lifeboat daemon started"
        );
        crate::daemon::run(config, listener, metrics, crate::http::shutdown_signal()).await
    })?;
    tracing::info!("lifeboat daemon stopped");
    Ok(0)
}
