//! age encryption of archives that leave the host (X25519 recipients), and
//! the streaming decryption `verify`/`restore --identity` read through.
//! Both directions stream in fixed-size chunks: memory does not grow with
//! the archive.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use crate::error::DecryptError;
use crate::error::{Error, Result};

/// The first bytes of a binary age file (and of an armored one).
pub fn is_age(head: &[u8]) -> bool {
    head.starts_with(b"age-encryption.org/") || head.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

/// Parses `age1…` recipients; the error names the bad entry (recipients
/// are public keys, safe to show).
pub fn parse_recipients(recipients: &[String]) -> Result<Vec<age::x25519::Recipient>, String> {
    recipients
        .iter()
        .enumerate()
        .map(|(i, r)| {
            age::x25519::Recipient::from_str(r.trim())
                .map_err(|e| format!("encryption.recipients[{i}] {r:?} is not an age X25519 public key (age1…): {e}"))
        })
        .collect()
}

/// Encrypts `src` to `dst` for every recipient, atomically (mode 0600,
/// [`write_atomic_with`](crate::fsutil::write_atomic_with)), so `dst` is
/// always complete.
pub fn encrypt_file(src: &Path, dst: &Path, recipients: &[String]) -> Result<()> {
    let parsed = parse_recipients(recipients).map_err(Error::Invalid)?;
    if parsed.is_empty() {
        return Err(Error::Invalid("encryption needs at least one recipient in [encryption] recipients".into()));
    }
    let encryptor = age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| Error::Failed(format!("cannot encrypt {}: {e}", src.display())))?;
    let mut input = File::open(src).map_err(|e| Error::io("opening the archive to encrypt", src, e))?;
    crate::fsutil::write_atomic_with(dst, 0o600, "the encrypted copy", |out| {
        let mut w = encryptor.wrap_output(io::BufWriter::with_capacity(256 * 1024, out))?;
        io::copy(&mut input, &mut w)?;
        w.finish()?.flush()
    })
}

/// `<archive>.age` beside the archive, made once (kept 0600 and reused
/// while it is newer than the archive).
pub fn encrypted_copy(archive: &Path, recipients: &[String]) -> Result<PathBuf> {
    let dst = PathBuf::from(format!("{}.age", archive.display()));
    let fresh = match (std::fs::metadata(&dst).and_then(|m| m.modified()), std::fs::metadata(archive)) {
        (Ok(enc), Ok(src)) => src.modified().is_ok_and(|s| enc >= s),
        _ => false,
    };
    if !fresh {
        encrypt_file(archive, &dst, recipients)?;
    }
    Ok(dst)
}

/// Why an encrypted archive could not be opened. Exit code 2 (nothing was
/// checked) like an archive that cannot be opened at all.
/// The identities of an age identity file (the file's text is never quoted
/// in errors: the age crate reports a line number only).
pub struct Identities {
    path: PathBuf,
    ids: Vec<Box<dyn age::Identity>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identities({}: ***)", self.path.display())
    }
}

impl Identities {
    pub fn from_file(path: &Path) -> Result<Identities, DecryptError> {
        let err = |message: String| DecryptError::Identity { path: path.display().to_string(), message };
        let file = age::IdentityFile::from_file(path.display().to_string()).map_err(|e| err(e.to_string()))?;
        let ids = file.into_identities().map_err(|e| err(e.to_string()))?;
        if ids.is_empty() {
            return Err(err("it holds no identity".into()));
        }
        Ok(Identities { path: path.to_path_buf(), ids })
    }
}

/// A reader of the plaintext: `input` itself when it is not age-encrypted,
/// else its streaming decryption with `identities`.
pub fn decrypting<R: BufRead + 'static>(
    mut input: R,
    archive: &Path,
    identities: Option<&Identities>,
) -> Result<Box<dyn Read>, DecryptError> {
    let head = input.fill_buf().map(<[u8]>::to_vec).unwrap_or_default();
    if !is_age(&head) {
        return Ok(Box::new(input));
    }
    let archive_s = archive.display().to_string();
    let Some(ids) = identities else {
        return Err(DecryptError::NeedIdentity { archive: archive_s });
    };
    let fail = |message: String| DecryptError::Decrypt {
        archive: archive_s.clone(),
        identity: ids.path.display().to_string(),
        message,
    };
    let reader: Box<dyn BufRead> = if head.starts_with(b"-----BEGIN") {
        Box::new(BufReader::new(age::armor::ArmoredReader::new(input)))
    } else {
        Box::new(input)
    };
    let decryptor = age::Decryptor::new_buffered(reader).map_err(|e| fail(e.to_string()))?;
    if decryptor.is_scrypt() {
        return Err(fail("it is passphrase-encrypted; lifeboat reads archives encrypted to recipients only".into()));
    }
    let r = decryptor.decrypt(ids.ids.iter().map(|i| i.as_ref())).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => fail(
            "none of its identities matches a recipient of the file (wrong identity file, or the archive was \
             encrypted to other recipients)"
                .into(),
        ),
        other => fail(other.to_string()),
    })?;
    Ok(Box::new(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn identity_file(dir: &Path, id: &age::x25519::Identity) -> PathBuf {
        let p = dir.join("id.txt");
        std::fs::write(&p, format!("{}\n", id.to_string().expose_secret())).unwrap();
        p
    }

    // covers: FR-19.1, FR-19.4
    #[test]
    fn encrypt_then_decrypt_gives_the_same_bytes_and_the_copy_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.tar.gz");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let enc = encrypted_copy(&src, &[id.to_public().to_string(), other.to_public().to_string()]).unwrap();
        assert_eq!(enc, dir.path().join("a.tar.gz.age"));
        assert_eq!(std::fs::metadata(&enc).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary file is left");
        for who in [&id, &other] {
            let ids = Identities::from_file(&identity_file(dir.path(), who)).unwrap();
            let mut r = decrypting(BufReader::new(File::open(&enc).unwrap()), &enc, Some(&ids)).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert!(out == data, "every recipient decrypts to the same bytes");
        }
        // A plain file passes through untouched.
        let mut r = decrypting(BufReader::new(File::open(&src).unwrap()), &src, None).unwrap();
        assert_eq!(io::copy(&mut r, &mut io::sink()).unwrap(), data.len() as u64);
    }

    // covers: FR-19.4, FR-7.10
    #[test]
    fn a_missing_or_wrong_identity_is_a_clear_error_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.tar.gz");
        std::fs::write(&src, b"payload").unwrap();
        let id = age::x25519::Identity::generate();
        let enc = encrypted_copy(&src, &[id.to_public().to_string()]).unwrap();
        let open = || BufReader::new(File::open(&enc).unwrap());
        let e = decrypting(open(), &enc, None).err().unwrap().to_string();
        assert!(e.contains("--identity") && e.contains("age -d"), "{e}");

        let wrong = age::x25519::Identity::generate();
        let wf = identity_file(dir.path(), &wrong);
        let ids = Identities::from_file(&wf).unwrap();
        let e = decrypting(open(), &enc, Some(&ids)).err().unwrap().to_string();
        assert!(e.contains("none of its identities matches") && e.contains(wf.to_str().unwrap()), "{e}");
        assert!(!e.contains("AGE-SECRET-KEY") && !format!("{ids:?}").contains("AGE-SECRET-KEY"));

        std::fs::write(&wf, "not a key AGE-SECRET-KEY-1XYZ\n").unwrap();
        let e = Identities::from_file(&wf).unwrap_err().to_string();
        assert!(e.contains("line 1") && !e.contains("XYZ"), "{e}");
        assert!(parse_recipients(&["age1nope".into()]).unwrap_err().contains("recipients[0]"));
    }
}
