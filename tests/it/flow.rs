//! Steps most end-to-end tests share: run the real binary, take a backup of
//! a seeded database, unpack or rewrite an archive.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{self, TestDb};

/// Runs `lifeboat ARGS` and returns the output.
pub fn run(args: &[&str]) -> Output {
    support::lifeboat().args(args).output().expect("cannot run lifeboat")
}

/// `lifeboat --config <config> <args…>`.
pub fn run_with(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all)
}

/// `lifeboat --config <config> --json backup`, asserting exit 0; the report.
pub fn backup_with(config: &Path) -> Value {
    let o = run_with(config, &["--json", "backup"]);
    assert_exit(&o, 0);
    json(&o)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing stderr when it differs.
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), stderr(o));
}

/// Parses `--json` output.
pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), stderr(o)))
}

/// A seeded SaaS database with a config file in its own temp dir.
pub struct Seeded {
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Seeded {
    pub fn new(hint: &str) -> Seeded {
        Self::with_config(hint, "")
    }

    /// `extra` is appended to the SaaS config (more sections).
    pub fn with_config(hint: &str, extra: &str) -> Seeded {
        let db = support::fresh_db(hint);
        support::seed_saas(&db);
        let dir = tempfile::tempdir().unwrap();
        let toml = format!("{}\n{extra}", support::saas_config(&db.url, &dir.path().join("backups")));
        let config = support::write_config(dir.path(), &toml);
        Seeded { db, dir, config }
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    /// `lifeboat --config … --json backup`, asserting success; the report.
    pub fn backup(&self) -> Value {
        let o = run(&["--config", self.config.to_str().unwrap(), "--json", "backup"]);
        assert_exit(&o, 0);
        json(&o)
    }

    /// Files in the storage directory (names), without what stays there by
    /// design: the lock file, the run history (`.lifeboat/`) and the
    /// marker files (`.last_backup_*`).
    pub fn stored(&self) -> Vec<String> {
        stored_in(&self.storage())
    }
}

/// Names in a storage directory (sorted), without the lock file that stays
/// there by design; empty when the directory does not exist.
pub fn stored_in(dir: &Path) -> Vec<String> {
    let Ok(d) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<String> = d
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lifeboat.lock" && n != ".lifeboat" && !n.starts_with(".last_backup_"))
        .collect();
    v.sort();
    v
}

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

/// Replaces one member's bytes and makes the manifest and SHA256SUMS agree,
/// so that only deeper checks (row counts, the database) can object.
pub fn rewrite_consistently(members: &mut [(String, Vec<u8>)], member: &str, data: Vec<u8>, rows: Option<u64>) {
    let sha = sha256(&data);
    let len = data.len() as u64;
    members.iter_mut().find(|(p, _)| p == member).expect("member exists").1 = data;
    let (_, manifest) = members.iter_mut().find(|(p, _)| p == "manifest.json").unwrap();
    let mut m: Value = serde_json::from_slice(manifest).unwrap();
    for t in m["tables"].as_array_mut().unwrap() {
        if t["file"] == member {
            t["sha256"] = sha.clone().into();
            t["bytes"] = len.into();
            if let Some(r) = rows {
                t["rows"] = r.into();
            }
        }
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

/// A `SHA256SUMS.minisig` for `sums`, made with the signing key of the
/// store in `store_dir` (`.lifeboat/signing.key`, as lifeboat made it):
/// what a rewritten archive needs to be trusted like one the store wrote.
pub fn store_signature(store_dir: &Path, sums: &[u8]) -> Vec<u8> {
    let text = std::fs::read_to_string(store_dir.join(lifeboat::archive::signature::SECRET_KEY_FILE)).unwrap();
    let sk = minisign::SecretKeyBox::from_string(&text).and_then(minisign::SecretKey::from_unencrypted_box).unwrap();
    let pk = minisign::PublicKey::from_secret_key(&sk).unwrap();
    let sig = minisign::sign(Some(&pk), &sk, std::io::Cursor::new(sums), Some("resigned by a test"), None).unwrap();
    sig.to_string().into_bytes()
}
