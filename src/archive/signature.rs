//! Archive signatures: `SHA256SUMS.minisig`, a minisign signature of the
//! archive's `SHA256SUMS` (which covers every other member), made with a
//! key kept in the store. Anyone can check it with `minisign -V`; lifeboat
//! checks it in `verify` and `restore`.
//!
//! An archive that travels by mail or link can be forged, and restoring it
//! runs its SQL as the restoring role: the checksums prove the archive is
//! intact, the signature proves who made it.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// The signature member, written right after `SHA256SUMS`.
pub const MEMBER: &str = "SHA256SUMS.minisig";
/// The store's signing key (minisign secret key, unencrypted), mode 0600.
pub const SECRET_KEY_FILE: &str = ".lifeboat/signing.key";
/// Its public half, in the format `minisign -p` reads.
pub const PUBLIC_KEY_FILE: &str = ".lifeboat/signing.pub";
/// A minisign signature file is a few hundred bytes.
pub const MAX_SIGNATURE_BYTES: u64 = 4096;

/// The store's signing key.
pub struct Signer {
    sk: minisign::SecretKey,
    pk: minisign::PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(key {}, secret ***)", key_id(self.pk.keynum()))
    }
}

/// A minisign key id as minisign prints it (16 upper-case hex digits).
fn key_id(keynum: &[u8]) -> String {
    let mut b = [0u8; 8];
    b.copy_from_slice(&keynum[..8]);
    format!("{:016X}", u64::from_le_bytes(b))
}

fn key_err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{what} {} is not a usable minisign key: {e}", path.display()))
}

impl Signer {
    /// The key of the store at `store_dir`, generated on first use.
    pub fn load_or_create(store_dir: &Path) -> Result<Signer> {
        let sk_path = store_dir.join(SECRET_KEY_FILE);
        let text = crate::store::keyfile::read_or_create_secret(&sk_path, "the archive signing key", || {
            let kp = minisign::KeyPair::generate_unencrypted_keypair()
                .map_err(|e| Error::Failed(format!("cannot generate an archive signing key: {e}")))?;
            let boxed = kp.sk.to_box(Some("lifeboat archive signing key")).map_err(|e| Error::Failed(e.to_string()))?;
            Ok(boxed.to_string().into_bytes())
        })?;
        let text = String::from_utf8(text).map_err(|e| key_err("the archive signing key", &sk_path, e))?;
        let sk = minisign::SecretKeyBox::from_string(&text)
            .and_then(minisign::SecretKey::from_unencrypted_box)
            .map_err(|e| key_err("the archive signing key", &sk_path, e))?;
        let pk =
            minisign::PublicKey::from_secret_key(&sk).map_err(|e| key_err("the archive signing key", &sk_path, e))?;
        let signer = Signer { sk, pk };
        signer.write_public_key(store_dir)?;
        Ok(signer)
    }

    /// Writes (or repairs) `.lifeboat/signing.pub`, mode 0644: it is public.
    fn write_public_key(&self, store_dir: &Path) -> Result<()> {
        let path = store_dir.join(PUBLIC_KEY_FILE);
        let text = self.public_key_file();
        if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            return Ok(());
        }
        // A temp file of its own, renamed into place: readers see the old
        // file or the new one, never a half-written one.
        let dir = path.parent().unwrap_or(store_dir);
        let io = |e: std::io::Error| Error::io("writing the archive signing public key", &path, e);
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(io)?;
        std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// The public key file's text (`untrusted comment: …` + base64 line).
    pub fn public_key_file(&self) -> String {
        format!("untrusted comment: lifeboat archive signing key {}\n{}\n", self.key_id(), self.public_key())
    }

    /// The base64 public key, as `minisign -P` takes it.
    pub fn public_key(&self) -> String {
        self.pk.to_base64()
    }

    pub fn key_id(&self) -> String {
        key_id(self.pk.keynum())
    }

    /// The signature file for `sums` (the bytes of `SHA256SUMS`).
    pub fn sign(&self, sums: &[u8], archive_name: &str) -> Result<Vec<u8>> {
        let trusted = format!("lifeboat archive {archive_name} SHA256SUMS");
        let sig = minisign::sign(Some(&self.pk), &self.sk, Cursor::new(sums), Some(&trusted), None)
            .map_err(|e| Error::Failed(format!("cannot sign SHA256SUMS of {archive_name}: {e}")))?;
        Ok(sig.to_string().into_bytes())
    }
}

/// The public key of the store that holds `archive`, if it has one
/// (`<archive's dir>/.lifeboat/signing.pub`). `verify` reads no config,
/// so this is how it knows the store's key.
pub fn store_public_key(archive: &Path) -> Option<PathBuf> {
    let p = archive.parent()?.join(PUBLIC_KEY_FILE);
    p.is_file().then_some(p)
}

/// The public key of a store, for `lifeboat config` (`None` before the
/// first backup made one).
pub fn read_store_public_key(store_dir: &Path) -> Option<(String, String)> {
    let key = TrustedKey::from_file(&store_dir.join(PUBLIC_KEY_FILE), KeyOrigin::Store).ok()?;
    Some((key.pk.to_base64(), key_id(key.pk.keynum())))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyOrigin {
    /// The archive's own store (`.lifeboat/signing.pub` beside it).
    Store,
    /// `--trusted-key FILE`.
    Flag,
}

/// A public key the operator trusts.
pub struct TrustedKey {
    pk: minisign::PublicKey,
    pub path: PathBuf,
    pub origin: KeyOrigin,
}

impl TrustedKey {
    /// A minisign public key file (`minisign -G` writes one) or a file
    /// holding only the base64 line.
    pub fn from_file(path: &Path, origin: KeyOrigin) -> Result<TrustedKey> {
        let raw = crate::store::keyfile::read_key_file(path, "the trusted public key")?;
        let text = String::from_utf8_lossy(&raw);
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or_default();
        let pk = minisign::PublicKey::from_base64(line).map_err(|e| key_err("the public key", path, e))?;
        Ok(TrustedKey { pk, path: path.to_path_buf(), origin })
    }

    pub fn key_id(&self) -> String {
        key_id(self.pk.keynum())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Signed by the trusted key, and the signature matches `SHA256SUMS`.
    Valid,
    /// No `SHA256SUMS.minisig`.
    Unsigned,
    /// Signed, but no trusted key to check it with.
    Unchecked,
    /// Signed by a key other than the trusted one.
    OtherKey,
    /// Claims the trusted key, but does not match `SHA256SUMS`: forged or damaged.
    Invalid,
}

/// What `verify` found about the signature (the `signature` object of
/// `verify --json`).
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    pub status: Status,
    /// The key id the signature names.
    pub signed_by: Option<String>,
    /// The key it was checked against.
    pub trusted_key_id: Option<String>,
    /// `store` or `flag` (`--trusted-key`).
    pub trusted_key: Option<KeyOrigin>,
    pub message: String,
}

impl SignatureReport {
    /// Whether the caller must refuse the archive: a signature that does
    /// not match is always refused; with an explicit `--trusted-key`
    /// anything but a valid signature by that key is.
    pub fn refused(&self) -> bool {
        self.status == Status::Invalid || (self.trusted_key == Some(KeyOrigin::Flag) && self.status != Status::Valid)
    }
}

/// Checks `sig` (the signature member's bytes, if any) over `sums`.
pub fn check(sums: &[u8], sig: Option<&[u8]>, trusted: Option<&TrustedKey>) -> SignatureReport {
    let trusted_key_id = trusted.map(TrustedKey::key_id);
    let origin = trusted.map(|t| t.origin);
    let report = |status, signed_by: Option<String>, message: String| SignatureReport {
        status,
        signed_by,
        trusted_key_id: trusted_key_id.clone(),
        trusted_key: origin,
        message,
    };
    let Some(sig) = sig else {
        return report(
            Status::Unsigned,
            None,
            "the archive is unsigned (no SHA256SUMS.minisig): nothing proves who made it; archives made before \
             signing existed look like this"
                .into(),
        );
    };
    let parsed = std::str::from_utf8(sig).ok().and_then(|s| minisign::SignatureBox::from_string(s).ok());
    let Some(sbox) = parsed else {
        return report(Status::Invalid, None, "SHA256SUMS.minisig is not a minisign signature".into());
    };
    let signer = key_id(sbox.keynum());
    let Some(t) = trusted else {
        return report(
            Status::Unchecked,
            Some(signer.clone()),
            format!(
                "signed by key {signer}, not checked: no trusted key (pass --trusted-key FILE, the store's \
                 .lifeboat/signing.pub)"
            ),
        );
    };
    if sbox.keynum() != t.pk.keynum() {
        return report(
            Status::OtherKey,
            Some(signer.clone()),
            format!(
                "signed by another key ({signer}), not by the trusted key {} ({}); an archive from another \
                 store, an old key, or a forgery",
                t.key_id(),
                t.path.display()
            ),
        );
    }
    match minisign::verify(&t.pk, &sbox, Cursor::new(sums), true, false, false) {
        Ok(()) => report(Status::Valid, Some(signer.clone()), format!("valid, by key {signer} ({})", t.path.display())),
        Err(_) => report(
            Status::Invalid,
            Some(signer),
            "the signature does not match SHA256SUMS: the archive was changed after it was signed".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-12.12, FR-12.11
    #[test]
    fn a_store_key_signs_and_verifies_and_any_change_is_caught() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = Signer::load_or_create(dir.path()).unwrap();
        let again = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(s.public_key(), again.public_key(), "generated once");
        assert!(!format!("{s:?}").contains(&std::fs::read_to_string(dir.path().join(SECRET_KEY_FILE)).unwrap()));
        let mode = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(SECRET_KEY_FILE), mode(PUBLIC_KEY_FILE)), (0o600, 0o644));

        let sums = b"abc  database/schema.sql\n";
        let sig = s.sign(sums, "a.tar.gz").unwrap();
        let store = TrustedKey::from_file(&dir.path().join(PUBLIC_KEY_FILE), KeyOrigin::Store).unwrap();
        let r = check(sums, Some(&sig), Some(&store));
        assert_eq!(r.status, Status::Valid, "{}", r.message);
        assert!(!r.refused());

        let r = check(b"abd  database/schema.sql\n", Some(&sig), Some(&store));
        assert_eq!(r.status, Status::Invalid);
        assert!(r.refused(), "a bad signature is refused even with the implicit store key");

        let other_dir = tempfile::tempdir().unwrap();
        let other = Signer::load_or_create(other_dir.path()).unwrap();
        let forged = other.sign(sums, "a.tar.gz").unwrap();
        let r = check(sums, Some(&forged), Some(&store));
        assert_eq!(r.status, Status::OtherKey);
        assert!(r.message.contains(&other.key_id()) && !r.refused());
        let flag = TrustedKey::from_file(&dir.path().join(PUBLIC_KEY_FILE), KeyOrigin::Flag).unwrap();
        assert!(check(sums, Some(&forged), Some(&flag)).refused());
        assert!(check(sums, None, Some(&flag)).refused());
        assert_eq!(check(sums, None, Some(&store)).status, Status::Unsigned);
        assert_eq!(check(sums, Some(&sig), None).status, Status::Unchecked);
        assert_eq!(check(sums, Some(b"garbage"), None).status, Status::Invalid);
    }
}
