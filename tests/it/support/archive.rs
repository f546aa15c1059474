//! Archives from outside lifeboat: unpack with the system tar, list and
//! rewrite members, reseal and re-sign `SHA256SUMS` as a forger (or a test
//! that needs one member changed) would.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

/// `tar -xzf archive -C dir` with the system tar (an independent reader).
pub fn extract(archive: &Path, dir: &Path) {
    let o = std::process::Command::new("tar").arg("-xzf").arg(archive).arg("-C").arg(dir).output().unwrap();
    assert!(o.status.success(), "tar: {}", String::from_utf8_lossy(&o.stderr));
}

/// The archive's members in order, as (path, bytes).
pub fn members(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let f = std::fs::File::open(archive).unwrap();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, data)
        })
        .collect()
}

/// Writes `members` as a new `.tar.gz` (regular files, mode 0600).
pub fn write_archive(path: &Path, members: &[(String, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast()));
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(data))
}

/// Replaces one member's bytes (a table's CSV, with its `rows` when given,
/// or a `database/*.sql` member) and makes the manifest and SHA256SUMS
/// agree, so that only deeper checks (row counts, the database, the
/// signature, which is left as it was) can object.
pub fn rewrite_consistently(members: &mut [(String, Vec<u8>)], member: &str, data: Vec<u8>, rows: Option<u64>) {
    let sha = sha256(&data);
    let len = data.len() as u64;
    members.iter_mut().find(|(p, _)| p == member).expect("member exists").1 = data;
    let (_, manifest) = members.iter_mut().find(|(p, _)| p == "manifest.json").unwrap();
    let mut m: Value = serde_json::from_slice(manifest).unwrap();
    let tables = m["tables"].as_array_mut().unwrap().iter_mut().filter(|t| t["file"] == member);
    for t in tables {
        t["sha256"] = sha.clone().into();
        t["bytes"] = len.into();
        if let Some(r) = rows {
            t["rows"] = r.into();
        }
    }
    for f in m["members"].as_array_mut().unwrap().iter_mut().filter(|f| f["path"] == member) {
        f["sha256"] = sha.clone().into();
        f["bytes"] = len.into();
    }
    *manifest = serde_json::to_vec_pretty(&m).unwrap();
    reseal(members);
}

/// Recomputes SHA256SUMS over every other member but its signature (which
/// a forger cannot remake with the store's key: it is left as it was).
pub fn reseal(members: &mut [(String, Vec<u8>)]) {
    let sums: String = members
        .iter()
        .filter(|(p, _)| p != "SHA256SUMS" && p != "SHA256SUMS.minisig")
        .map(|(p, d)| format!("{}  {p}\n", sha256(d)))
        .collect();
    members.iter_mut().find(|(p, _)| p == "SHA256SUMS").unwrap().1 = sums.into_bytes();
}

/// [`reseal`], then signs SHA256SUMS with the secret key of the store in
/// `storage`, as that store would have: for tests about something other
/// than the signature (a damaged CSV, a refused statement) whose archive
/// must pass the trust check.
pub fn reseal_signed(members: &mut Vec<(String, Vec<u8>)>, storage: &Path) {
    reseal(members);
    let sig = sign_sums(&members.iter().find(|(p, _)| p == "SHA256SUMS").unwrap().1, storage);
    match members.iter_mut().find(|(p, _)| p == "SHA256SUMS.minisig") {
        Some(m) => m.1 = sig,
        None => members.push(("SHA256SUMS.minisig".into(), sig)),
    }
}

/// A `SHA256SUMS.minisig` for `sums`, made with the secret key of the
/// store in `storage`.
pub fn sign_sums(sums: &[u8], storage: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(storage.join(".lifeboat/signing.key")).expect("the store's signing key");
    let sk = minisign::SecretKeyBox::from_string(&text).and_then(minisign::SecretKey::from_unencrypted_box).unwrap();
    let sig = minisign::sign(None, &sk, std::io::Cursor::new(sums), Some("re-signed by a test"), None).unwrap();
    sig.to_string().into_bytes()
}

/// The public key of the store `archive` lies in, for `--trusted-key`: a
/// test that knows the archive is in its own store says so, as an operator
/// would (lifeboat trusts no key merely for lying beside an archive).
pub fn its_store_key(archive: impl AsRef<Path>) -> String {
    archive.as_ref().parent().unwrap().join(".lifeboat/signing.pub").to_string_lossy().into_owned()
}
