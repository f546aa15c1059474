//! `lifeboat config`: the effective configuration, secrets shown as `***`,
//! and the public key that signs this store's archives.

use serde::Serialize;

use super::{emit, load, Cli};
use crate::config::{Config, Overrides};
use crate::error::Error;

/// The configuration and the store's signing key (not a setting: it is
/// read from the store, never created here).
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    config: Config,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_key_id: Option<String>,
}

pub(super) fn run(cli: &Cli) -> Result<u8, Error> {
    let config = load(cli, &Overrides::default())?;
    let key = crate::archive::signature::read_store_public_key(&config.storage.dir);
    let (signing_public_key, signing_key_id) = key.map_or((None, None), |(k, id)| (Some(k), Some(id)));
    emit(cli.json, &Shown { config, signing_public_key, signing_key_id }, text);
    Ok(0)
}

/// The TOML, then the signing key as a comment.
fn text(s: &Shown) -> String {
    let mut out = toml::to_string(&s.config).expect("serializable");
    match (&s.signing_public_key, &s.signing_key_id) {
        (Some(key), Some(id)) => out.push_str(&format!(
            "\n# archive signing key {id} ({}/.lifeboat/signing.pub):\n# {key}\n\
             # Keep a copy off this host; on another host, list it in [restore] trusted_keys.\n",
            s.config.storage.dir.display()
        )),
        _ => out.push_str("\n# archive signing key: none yet (the first backup creates it)\n"),
    }
    out
}
