//! Secrets: the [`Secret`] type that never shows its value, reading a
//! secret from a file (`password_file`, `*_FILE`, Docker secrets), and
//! [`SECRET_FILE_KEYS`], the one table of secrets and their `*_file` twins.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// A value that must never be shown: `Debug`, `Display` and `Serialize` all
/// print `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub(super) String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// The most a secret file may hold. A password or a URL is far smaller; a
/// bigger file is the wrong file (and must not be read into memory whole).
pub const SECRET_FILE_MAX: u64 = 64 * 1024;

/// Reads every `*_file` / `*_FILE` secret: only a regular file of at most
/// [`SECRET_FILE_MAX`] bytes (`/dev/zero` would fill memory, a FIFO would
/// hang). Docker secrets and similar files end with a newline that is not
/// part of the secret; it is trimmed.
pub(super) fn read_secret_file(path: &Path, origin: &str) -> Result<Secret, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let err =
        |problem: String| ConfigError::SecretFile { origin: origin.to_string(), path: path.to_path_buf(), problem };
    // O_NONBLOCK: opening a FIFO must not wait for a writer. The file that
    // was opened is checked (not the path, which could change in between)
    // before a byte is read; regular files ignore the flag.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    let kind = file.metadata().map_err(|e| err(e.to_string()))?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "something else"
        };
        return Err(err(format!("it is {what}, not a regular file")));
    }
    let mut bytes = Vec::new();
    file.take(SECRET_FILE_MAX + 1).read_to_end(&mut bytes).map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > SECRET_FILE_MAX {
        return Err(err(format!("it is larger than {} KiB, more than any secret", SECRET_FILE_MAX / 1024)));
    }
    let s = String::from_utf8(bytes).map_err(|_| err("it is not UTF-8 text".into()))?;
    Ok(Secret(s.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&s).to_string()))
}

/// Every secret key with its `*_file` twin, by section: the two are one
/// setting. A file layer may set only one of them ([`check_file_pairs`]),
/// and a layer that sets either replaces both (`layer::overlay`).
pub(super) const SECRET_FILE_KEYS: &[(&str, &str, &str)] = &[
    ("database", "password", "password_file"),
    ("email", "password", "password_file"),
    ("alerts", "webhook_url", "webhook_url_file"),
    ("alerts", "ping_url", "ping_url_file"),
    ("alerts", "slack_url", "slack_url_file"),
    ("alerts", "discord_url", "discord_url_file"),
    ("alerts", "telegram_url", "telegram_url_file"),
    ("alerts", "ntfy_url", "ntfy_url_file"),
    ("http", "basic_auth_password", "basic_auth_password_file"),
    ("verify", "restore_test_url", "restore_test_url_file"),
    ("remote", "access_key_id", "access_key_id_file"),
    ("remote", "secret_access_key", "secret_access_key_file"),
];

/// Checks that a file layer sets at most one of each secret pair.
pub(super) fn check_file_pairs(t: &toml::Table) -> Result<(), String> {
    for (section, plain, file) in SECRET_FILE_KEYS {
        if let Some(toml::Value::Table(s)) = t.get(*section) {
            if s.contains_key(*plain) && s.contains_key(*file) {
                return Err(format!("[{section}] sets both {plain} and {file}; keep only one"));
            }
        }
    }
    Ok(())
}

/// The value of `name`, or of the file named by `name_FILE`.
/// Setting both is ambiguous (which one did the operator mean?) and an error,
/// as in the official postgres image.
pub(super) fn env_secret(env: &BTreeMap<String, String>, name: &str) -> Result<Option<String>, ConfigError> {
    let file_var = format!("{name}_FILE");
    match (env.get(name), env.get(&file_var)) {
        (Some(_), Some(_)) => Err(ConfigError::Env {
            name: format!("{name} and {file_var}"),
            message: "both are set; set only one of them".into(),
        }),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(p)) => Ok(Some(read_secret_file(Path::new(p), &file_var)?.0)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-11.5, SC-2.4, NFR-2.5
    #[test]
    fn secret_files_are_small_regular_files_read_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'x'; SECRET_FILE_MAX as usize + 1]).unwrap();
        for (path, why) in [
            (Path::new("/dev/zero"), "a character device, not a regular file"),
            (fifo.as_path(), "a FIFO, not a regular file"),
            (d.path(), "a directory, not a regular file"),
            (big.as_path(), "larger than 64 KiB"),
            (Path::new("/nonexistent/pw"), "No such file"),
        ] {
            let err = read_secret_file(path, "POSTGRES_PASSWORD_FILE").unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()) && err.contains(why), "{err}");
            assert!(err.contains("point POSTGRES_PASSWORD_FILE at a regular file"), "{err}");
        }
        let exact = d.path().join("exact");
        std::fs::write(&exact, vec![b'y'; SECRET_FILE_MAX as usize]).unwrap();
        assert_eq!(read_secret_file(&exact, "x").unwrap().expose().len(), SECRET_FILE_MAX as usize);
        let crlf = d.path().join("crlf");
        std::fs::write(&crlf, "pw\r\n").unwrap();
        assert_eq!(read_secret_file(&crlf, "x").unwrap().expose(), "pw");
    }
}
