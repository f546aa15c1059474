//! Signed download links: `<public_url>/<archive-name>?expires=<unix>&sig=<hex>`,
//! an HMAC-SHA256 over the name and the expiry, and the key that signs them
//! (`[links] secret_file`, or one generated once and kept 0600 in the store).
//!
//! The HTTP side (`http::download`) calls [`verify`]; the mail side calls
//! [`signed_url`]. Neither ever logs the key or a whole signature.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::fsutil::{read_key_file, read_or_create_secret};

/// The generated link key, relative to the storage directory.
pub const KEY_FILE: &str = ".lifeboat/link_secret";

/// Shorter keys make the HMAC guessable.
const MIN_KEY_BYTES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the download link has expired; ask for a new one (lifeboat send)")]
    Expired,
    #[error("the download link's signature is not valid (it was altered, or signed with another key)")]
    BadSignature,
}

/// The HMAC key that signs download links. `Debug` never shows it.
#[derive(Clone)]
pub struct LinkKey(Vec<u8>);

impl LinkKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(***)")
    }
}

/// The signed message is `<name>\n<expires>` (spec FR-18.1). It is
/// unambiguous: the expiry is digits only, so the last newline splits it.
fn mac(name: &str, expires: i64, key: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(name.as_bytes());
    m.update(b"\n");
    m.update(expires.to_string().as_bytes());
    m
}

/// `<public_url>/<name>?expires=<unix>&sig=<hex>`; a trailing `/` on
/// `public_url` is ignored, and the name is percent-encoded outside
/// `[A-Za-z0-9._-]` (archive names never need it).
pub fn signed_url(public_url: &str, name: &str, expires_unix: i64, key: &[u8]) -> String {
    let sig: String = mac(name, expires_unix, key).finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let mut encoded = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{}/{encoded}?expires={expires_unix}&sig={sig}", public_url.trim_end_matches('/'))
}

/// Checks a link: the signature first (in constant time: `verify_slice`
/// compares with `subtle`, it never stops at the first differing byte),
/// then the expiry,
/// so an altered expiry is a bad signature, not an expired link.
pub fn verify(name: &str, expires: i64, sig_hex: &str, key: &[u8], now_unix: i64) -> Result<(), LinkError> {
    let sig = decode_hex(sig_hex).ok_or(LinkError::BadSignature)?;
    mac(name, expires, key).verify_slice(&sig).map_err(|_| LinkError::BadSignature)?;
    if now_unix >= expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes().chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// The link key: the contents of `secret_file` when set (a regular file; a
/// trailing newline is not part of the key), else the store's
/// [`KEY_FILE`], generated on first use with mode 0600.
pub fn load_or_create_key(secret_file: Option<&Path>, store_dir: &Path) -> Result<LinkKey> {
    let key = match secret_file {
        Some(path) => read_key_file(path, "links.secret_file")?,
        None => read_or_create_secret(&store_dir.join(KEY_FILE), "the link key", || {
            let mut raw = [0u8; 32];
            getrandom::getrandom(&mut raw)
                .map_err(|e| Error::Failed(format!("cannot get random bytes for a new link key: {e}")))?;
            Ok(raw.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes())
        })?,
    };
    let trimmed = trim_newline(&key);
    if trimmed.len() < MIN_KEY_BYTES {
        return Err(Error::Invalid(format!(
            "the link key ({}) is shorter than {MIN_KEY_BYTES} bytes; use a longer one (e.g. `openssl rand -hex 32`)",
            secret_file.map(|p| p.display().to_string()).unwrap_or_else(|| KEY_FILE.into())
        )));
    }
    Ok(LinkKey(trimmed.to_vec()))
}

fn trim_newline(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn parts(url: &str) -> (String, i64, String) {
        let (path, query) = url.split_once('?').unwrap();
        let name = path.rsplit('/').next().unwrap().to_string();
        let mut expires = 0;
        let mut sig = String::new();
        for kv in query.split('&') {
            match kv.split_once('=').unwrap() {
                ("expires", v) => expires = v.parse().unwrap(),
                ("sig", v) => sig = v.to_string(),
                _ => panic!("unexpected query {kv}"),
            }
        }
        (name, expires, sig)
    }

    // covers: FR-18.1
    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let url = signed_url("https://hub.example.com/backups/", "critical_backup_20261124_020000.tar.gz", 1_000, KEY);
        assert!(
            url.starts_with("https://hub.example.com/backups/critical_backup_20261124_020000.tar.gz?expires=1000&sig=")
        );
        let (name, expires, sig) = parts(&url);
        // HMAC-SHA256(key, "<name>\n<expires>"), computed independently
        // (Python's hmac module), so another tool can check links.
        assert_eq!(sig, "d7c175244e0406322a597418295a90a988565f2520c292f59bf70fbe48d8ee8b");
        assert_eq!(verify(&name, expires, &sig, KEY, 999), Ok(()));
        assert_eq!(verify(&name, expires, &sig, KEY, 1_000), Err(LinkError::Expired));
        assert_eq!(verify(&name, expires, &sig, KEY, 5_000), Err(LinkError::Expired));
    }

    // covers: FR-18.2, SC-6.1, TS-1.7
    #[test]
    fn any_change_to_name_expiry_signature_or_key_is_a_bad_signature() {
        let (name, expires, sig) = parts(&signed_url("http://x", "a.tar.gz", 2_000, KEY));
        assert_eq!(verify("b.tar.gz", expires, &sig, KEY, 0), Err(LinkError::BadSignature));
        // A later expiry is not "still valid": it was never signed.
        assert_eq!(verify(&name, expires + 1, &sig, KEY, 0), Err(LinkError::BadSignature));
        assert_eq!(verify(&name, expires, &sig, b"another key, also 32 bytes long!", 0), Err(LinkError::BadSignature));
        let mut flipped = sig.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            verify(&name, expires, std::str::from_utf8(&flipped).unwrap(), KEY, 0),
            Err(LinkError::BadSignature)
        );
        for bad in ["", "zz", &sig[..62], &format!("{sig}00"), &"g".repeat(64)] {
            assert_eq!(verify(&name, expires, bad, KEY, 0), Err(LinkError::BadSignature), "{bad:?}");
        }
        // Upper-case hex is the same signature.
        assert_eq!(verify(&name, expires, &sig.to_uppercase(), KEY, 0), Ok(()));
        // An expired link with a forged signature is reported as forged.
        assert_eq!(verify(&name, 1, &sig, KEY, 10_000), Err(LinkError::BadSignature));
    }

    // covers: FR-18.2
    #[test]
    fn the_signed_message_separates_name_and_expiry() {
        // Without the separator "a1" + 23 and "a" + 123 would both sign "a123".
        let a = parts(&signed_url("http://x", "a1", 23, KEY)).2;
        let b = parts(&signed_url("http://x", "a", 123, KEY)).2;
        assert_ne!(a, b);
        assert!(signed_url("http://x", "a b/../c", 1, KEY).starts_with("http://x/a%20b%2F..%2Fc?"));
    }

    // covers: FR-18.4, SC-6.1, SC-2.4
    #[test]
    fn the_store_key_is_generated_once_with_mode_0600_and_never_shown() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let k1 = load_or_create_key(None, &store).unwrap();
        let k2 = load_or_create_key(None, &store).unwrap();
        assert_eq!(k1.as_bytes(), k2.as_bytes(), "generated once, then reused");
        assert_eq!(k1.as_bytes().len(), 64);
        let meta = std::fs::metadata(store.join(KEY_FILE)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(store.join(".lifeboat")).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(format!("{k1:?}"), "LinkKey(***)");

        std::fs::set_permissions(store.join(KEY_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_key(None, &store).unwrap_err().to_string();
        assert!(err.contains("chmod 600") && !err.contains(std::str::from_utf8(k1.as_bytes()).unwrap()), "{err}");
    }

    // covers: FR-18.4
    #[test]
    fn first_users_racing_to_create_the_key_all_get_the_same_whole_key() {
        // Several `serve`s (or a serve and a mail) starting on a new store:
        // none may read a half-written key, and all must agree on one.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let store = dir.path().join("store");
            let barrier = std::sync::Barrier::new(8);
            let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            load_or_create_key(None, &store).map(|k| k.as_bytes().to_vec())
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap().expect("every racer gets the key")).collect()
            });
            assert!(keys.iter().all(|k| k == &keys[0] && k.len() == 64), "one key for all");
            let left: Vec<_> =
                std::fs::read_dir(store.join(".lifeboat")).unwrap().flatten().map(|e| e.file_name()).collect();
            assert_eq!(left.len(), 1, "no temp files left: {left:?}");
        }
    }

    // covers: FR-18.4
    #[test]
    fn a_secret_file_must_be_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "a-long-enough-operator-secret\n").unwrap();
        let k = load_or_create_key(Some(&f), dir.path()).unwrap();
        assert_eq!(k.as_bytes(), b"a-long-enough-operator-secret");
        assert!(!dir.path().join(KEY_FILE).exists(), "no key generated when one is configured");

        std::fs::write(&f, "short\n").unwrap();
        assert!(load_or_create_key(Some(&f), dir.path()).unwrap_err().to_string().contains("shorter than 16"));
        std::fs::write(&f, vec![b'x'; 5000]).unwrap();
        assert!(load_or_create_key(Some(&f), dir.path()).unwrap_err().to_string().contains("more than a key"));
        let err = load_or_create_key(Some(dir.path()), dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = load_or_create_key(Some(Path::new("/dev/zero")), dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        // A FIFO without a writer would block a plain open: refused at once.
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let err = load_or_create_key(Some(&fifo), dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = load_or_create_key(Some(&dir.path().join("missing")), dir.path()).unwrap_err().to_string();
        assert!(err.contains("links.secret_file") && err.contains("missing"), "{err}");
    }
}
