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
        let text = crate::fsutil::read_or_create_secret(&sk_path, "the archive signing key", || {
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
        // Readers see the old file or the new one, never a half-written one.
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644, "the archive signing public key")
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

/// The `.lifeboat/signing.pub` beside `archive`, if there is one. It is
/// NOT a trust anchor: whoever handed over the directory could have put it
/// there. Refusal messages name it, so an operator who knows it is their
/// store's can say so (`--config`, `--trusted-key`).
pub fn key_beside(archive: &Path) -> Option<PathBuf> {
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
    /// The key of the store the config names (`[storage] dir`'s
    /// `.lifeboat/signing.pub`), wherever the archive itself lies.
    Store,
    /// `--trusted-key FILE`.
    Flag,
    /// `[restore] trusted_keys`.
    Config,
}

/// Where the keys an archive may be signed by come from, besides
/// `--trusted-key`. Filled from the config by the CLI (and the daemon);
/// never from the archive or its directory.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The configured store's public key file; trusted when it exists.
    pub store_key: Option<PathBuf>,
    /// `[restore] trusted_keys`: base64 public keys or key files.
    pub listed: Vec<String>,
    /// Keys already in hand (a backup checks its new archive with the key
    /// that just signed it).
    pub keys: Vec<TrustedKey>,
}

/// A public key the operator trusts.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pk: minisign::PublicKey,
    /// Where it came from, for messages: a file, or `[restore] trusted_keys`.
    pub from: String,
    pub origin: KeyOrigin,
}

impl TrustedKey {
    /// A minisign public key file (`minisign -G` writes one) or a file
    /// holding only the base64 line.
    pub fn from_file(path: &Path, origin: KeyOrigin) -> Result<TrustedKey> {
        let raw = crate::fsutil::read_key_file(path, "the trusted public key")?;
        let text = String::from_utf8_lossy(&raw);
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or_default();
        let pk = minisign::PublicKey::from_base64(line).map_err(|e| key_err("the public key", path, e))?;
        Ok(TrustedKey { pk, from: path.display().to_string(), origin })
    }

    /// One `[restore] trusted_keys` entry: a base64 public key (what
    /// `lifeboat config` and `minisign -P` show), else a key file's path.
    /// A base64 key decodes to exactly 42 bytes that start with `Ed`; no
    /// real path does, so the two cannot be confused.
    pub fn from_entry(entry: &str, what: &str) -> Result<TrustedKey> {
        let entry = entry.trim();
        if let Ok(pk) = minisign::PublicKey::from_base64(entry) {
            return Ok(TrustedKey { pk, from: what.to_string(), origin: KeyOrigin::Config });
        }
        TrustedKey::from_file(Path::new(entry), KeyOrigin::Config).map_err(|e| {
            Error::Invalid(format!(
                "{what} is neither a minisign public key (the base64 line `lifeboat config` prints) nor a \
                 readable key file: {e}"
            ))
        })
    }

    /// A key held by a [`Signer`] (the store's own).
    pub fn of_signer(signer: &Signer, from: &str) -> TrustedKey {
        TrustedKey { pk: signer.pk.clone(), from: from.to_string(), origin: KeyOrigin::Store }
    }

    pub fn key_id(&self) -> String {
        key_id(self.pk.keynum())
    }

    /// `ID (where from)`, for messages.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.key_id(), self.from)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Signed by a trusted key, and the signature matches `SHA256SUMS`.
    Valid,
    /// No `SHA256SUMS.minisig`.
    Unsigned,
    /// Signed, but no key is trusted to check it with.
    Unchecked,
    /// Signed by a key that is not a trusted one.
    OtherKey,
    /// Claims a trusted key but does not match `SHA256SUMS` (forged or
    /// damaged), or is not a minisign signature at all.
    Invalid,
}

/// What `verify` found about the signature (the `signature` object of
/// `verify --json`).
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    pub status: Status,
    /// The key id the signature names.
    pub signed_by: Option<String>,
    /// The trusted key that signed it (`None` unless `valid`, or `invalid`
    /// by a trusted key).
    pub trusted_key_id: Option<String>,
    /// Where that key came from: `store`, `flag` (`--trusted-key`) or
    /// `config` (`[restore] trusted_keys`).
    pub trusted_key: Option<KeyOrigin>,
    /// Every key that was trusted for this check, as `ID (where from)`.
    pub trusted_keys: Vec<String>,
    /// Not valid, used anyway because of `--insecure-accept-untrusted`.
    pub accepted_insecurely: bool,
    pub message: String,
}

impl SignatureReport {
    /// Whether the caller must refuse the archive: anything but a valid
    /// signature by a trusted key is, unless the operator accepted that
    /// insecurely (`--insecure-accept-untrusted`).
    pub fn refused(&self) -> bool {
        self.status != Status::Valid && !self.accepted_insecurely
    }
}

/// Checks `sig` (the signature member's bytes, if any) over `sums` against
/// every key in `trusted`.
pub fn check(sums: &[u8], sig: Option<&[u8]>, trusted: &[TrustedKey]) -> SignatureReport {
    let report = |status, signed_by: Option<String>, by: Option<&TrustedKey>, message: String| SignatureReport {
        status,
        signed_by,
        trusted_key_id: by.map(TrustedKey::key_id),
        trusted_key: by.map(|t| t.origin),
        trusted_keys: trusted.iter().map(TrustedKey::describe).collect(),
        accepted_insecurely: false,
        message,
    };
    let Some(sig) = sig else {
        return report(
            Status::Unsigned,
            None,
            None,
            "the archive is unsigned (no SHA256SUMS.minisig): nothing proves who made it or that its SQL is \
             what the backup wrote"
                .into(),
        );
    };
    let parsed = std::str::from_utf8(sig).ok().and_then(|s| minisign::SignatureBox::from_string(s).ok());
    let Some(sbox) = parsed else {
        return report(Status::Invalid, None, None, "SHA256SUMS.minisig is not a minisign signature".into());
    };
    let signer = key_id(sbox.keynum());
    if trusted.is_empty() {
        return report(
            Status::Unchecked,
            Some(signer.clone()),
            None,
            format!("signed by key {signer}, which cannot be checked: no key is trusted"),
        );
    }
    let Some(t) = trusted.iter().find(|t| t.pk.keynum() == sbox.keynum()) else {
        let ids: Vec<String> = trusted.iter().map(TrustedKey::describe).collect();
        return report(
            Status::OtherKey,
            Some(signer.clone()),
            None,
            format!(
                "signed by key {signer}, which is not a trusted key (trusted: {}): an archive from another \
                 store, an old key, or a forgery",
                ids.join(", ")
            ),
        );
    };
    match minisign::verify(&t.pk, &sbox, Cursor::new(sums), true, false, false) {
        Ok(()) => report(Status::Valid, Some(signer), Some(t), format!("valid, by key {}", t.describe())),
        Err(_) => report(
            Status::Invalid,
            Some(signer),
            Some(t),
            format!(
                "the signature by key {} does not match SHA256SUMS: the archive was changed after it was signed",
                t.describe()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // covers: FR-12.12, FR-12.11, FR-7.14
    #[test]
    fn a_store_key_signs_and_verifies_and_anything_else_is_refused() {
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
        let r = check(sums, Some(&sig), std::slice::from_ref(&store));
        assert_eq!(r.status, Status::Valid, "{}", r.message);
        assert_eq!(r.trusted_key, Some(KeyOrigin::Store));
        assert!(!r.refused());

        let r = check(b"abd  database/schema.sql\n", Some(&sig), std::slice::from_ref(&store));
        assert_eq!(r.status, Status::Invalid);
        assert!(r.refused(), "a bad signature is refused");

        let other_dir = tempfile::tempdir().unwrap();
        let other = Signer::load_or_create(other_dir.path()).unwrap();
        let forged = other.sign(sums, "a.tar.gz").unwrap();
        let r = check(sums, Some(&forged), std::slice::from_ref(&store));
        assert_eq!(r.status, Status::OtherKey);
        assert!(r.message.contains(&other.key_id()) && r.refused(), "{}", r.message);
        // Any of several trusted keys will do: the other store's, listed by base64.
        let listed = TrustedKey::from_entry(&other.public_key(), "[restore] trusted_keys entry 1").unwrap();
        let r = check(sums, Some(&forged), &[store.clone(), listed]);
        assert_eq!((r.status, r.trusted_key), (Status::Valid, Some(KeyOrigin::Config)), "{}", r.message);
        assert_eq!(r.trusted_keys.len(), 2);

        assert!(check(sums, None, std::slice::from_ref(&store)).refused());
        assert_eq!(check(sums, None, std::slice::from_ref(&store)).status, Status::Unsigned);
        assert_eq!(check(sums, Some(&sig), &[]).status, Status::Unchecked);
        assert!(check(sums, Some(&sig), &[]).refused(), "no trusted key: nothing is accepted");
        assert_eq!(check(sums, Some(b"garbage"), &[]).status, Status::Invalid);
        let mut insecure = check(sums, None, &[]);
        insecure.accepted_insecurely = true;
        assert!(!insecure.refused());
    }

    // covers: FR-7.14
    #[test]
    fn a_trusted_keys_entry_is_a_base64_key_or_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = Signer::load_or_create(dir.path()).unwrap();
        let file = dir.path().join(PUBLIC_KEY_FILE);
        let by_file = TrustedKey::from_entry(file.to_str().unwrap(), "entry 1").unwrap();
        let by_line = TrustedKey::from_entry(&format!(" {} ", s.public_key()), "entry 2").unwrap();
        assert_eq!((by_file.key_id(), by_line.key_id()), (s.key_id(), s.key_id()));
        assert_eq!(by_file.origin, KeyOrigin::Config);
        let e = TrustedKey::from_entry("RWQnot-a-key", "[restore] trusted_keys entry 3").unwrap_err().to_string();
        assert!(e.contains("[restore] trusted_keys entry 3") && e.contains("lifeboat config"), "{e}");
    }
}
