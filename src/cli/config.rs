//! `lifeboat config`: the effective configuration, secrets shown as `***`.

use super::{emit, load, Cli};
use crate::config::Overrides;
use crate::error::Error;

pub(super) fn run(cli: &Cli) -> Result<u8, Error> {
    let config = load(cli, &Overrides::default())?;
    emit(cli.json, &config, |c| toml::to_string(c).expect("serializable"));
    Ok(0)
}
