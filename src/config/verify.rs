//! `[verify]`: the nightly restore rehearsal's scratch server (FR-15.5), a
//! secret with a `*_file` form.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::read_secret_file;
use super::{ConfigError, Secret};

/// `[verify]`: the restore rehearsal after each successful backup run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// A scratch server (`postgres://user@host:port/postgres`) whose role
    /// may `CREATE DATABASE`; unset = no rehearsal. A secret (it may hold a
    /// password); without a password in it, the password comes from
    /// `LIFEBOAT_TARGET_PASSWORD[_FILE]`, `PGPASSWORD[_FILE]` or the
    /// password file, as for `verify --restore-test`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_test_url: Option<Secret>,
    /// Read into `restore_test_url` when the config is loaded; always `None` afterwards.
    #[serde(skip_serializing)]
    pub restore_test_url_file: Option<PathBuf>,
}

/// Reads `restore_test_url_file` and checks that the URL parses, so a
/// typo is a config error at start, not a failed rehearsal at 2 a.m.
pub(super) fn finish(v: &mut VerifyConfig) -> Result<(), ConfigError> {
    if let Some(p) = v.restore_test_url_file.take() {
        v.restore_test_url = Some(read_secret_file(&p, "verify.restore_test_url_file")?);
    }
    if let Some(url) = &v.restore_test_url {
        super::parse_database_url(url.expose(), "[verify] restore_test_url")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::test_env as env;
    use crate::config::{resolve, Overrides};

    // covers: FR-4.6, FR-15.5
    #[test]
    fn realert_hours_and_the_rehearsal_url_come_from_file_and_env_and_the_url_stays_secret() {
        let c = resolve(None, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.monitor.realert_hours, 24);
        assert!(c.verify.restore_test_url.is_none());
        let p = Path::new("x.toml");
        let file = "[monitor]\nrealert_hours = 6\n[verify]\nrestore_test_url = \"postgres://rt:Rt-Pa55-e9@scratch/postgres\"\n";
        let c = resolve(Some((p, file)), &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.monitor.realert_hours, 6);
        assert_eq!(c.verify.restore_test_url.as_ref().unwrap().expose(), "postgres://rt:Rt-Pa55-e9@scratch/postgres");
        assert!(!format!("{c:?}").contains("Rt-Pa55-e9"));
        assert!(!toml::to_string(&c).unwrap().contains("Rt-Pa55-e9"));

        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("rt_url");
        std::fs::write(&f, "postgres://rt@scratch:6543/postgres\n").unwrap();
        let e = env(&[("LIFEBOAT_VERIFY__RESTORE_TEST_URL_FILE", f.to_str().unwrap())]);
        let c = resolve(Some((p, file)), &e, &Overrides::default()).unwrap();
        assert_eq!(
            c.verify.restore_test_url.unwrap().expose(),
            "postgres://rt@scratch:6543/postgres",
            "env beats file"
        );

        let bad = "[verify]\nrestore_test_url = \"postgres://rt:Rt-Pa55-e9@scratch:99999/postgres\"\n";
        let err = resolve(Some((p, bad)), &env(&[]), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("[verify] restore_test_url") && !err.contains("Rt-Pa55-e9"), "{err}");
        let both = "[verify]\nrestore_test_url = \"postgres://x/y\"\nrestore_test_url_file = \"/run/secrets/u\"\n";
        let err = resolve(Some((p, both)), &env(&[]), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("both restore_test_url and restore_test_url_file"), "{err}");
    }
}
