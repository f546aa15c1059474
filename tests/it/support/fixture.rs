//! Seeded databases and stores: the SaaS fixture with its config and a
//! backup at hand, a big table (~10 MB of CSV), a full disk, and the small
//! real archive the hostile-input tests rewrite.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use super::run::{assert_exit, json, run};
use super::{fresh_db, lifeboat, toml_string, write_config, TestDb};

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
        let db = super::fresh_db(hint);
        super::seed_saas(&db);
        let dir = tempfile::tempdir().unwrap();
        let toml = format!("{}\n{extra}", super::saas_config(&db.url, &dir.path().join("backups")));
        let config = super::write_config(dir.path(), &toml);
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

/// A database with one small table, for tests that need real runs but not
/// the SaaS fixture.
pub fn tiny_db(hint: &str) -> TestDb {
    let db = fresh_db(hint);
    db.exec("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 5) g");
    db
}

/// A database with one table big enough that a COPY of it takes many
/// reads (~10 MB of CSV), and a small one that references it.
pub fn big_db(hint: &str) -> TestDb {
    let db = fresh_db(hint);
    db.exec(
        "CREATE TABLE big (id int PRIMARY KEY, pad text NOT NULL); \
         INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 40000) g; \
         CREATE TABLE small (id int PRIMARY KEY, big_id int REFERENCES big (id)); \
         INSERT INTO small SELECT g, g FROM generate_series(1, 10) g; ANALYZE",
    );
    db
}

/// A 2 MiB tmpfs mounted on a temp dir, unmounted on drop.
pub struct SmallFs {
    pub dir: tempfile::TempDir,
}

impl SmallFs {
    pub fn mount() -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(dir.path()).output().ok()?;
        o.status.success().then_some(SmallFs { dir })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A 2 MiB tmpfs and a database with ~13 MB of CSV in table `big` (more
/// than the writer keeps in memory, so it spills); `None` (the test skips)
/// where a tmpfs cannot be mounted outside CI.
pub fn full_disk_and_big_db(hint: &str) -> Option<(SmallFs, TestDb)> {
    let Some(fs) = SmallFs::mount() else {
        // Mounting needs root (CAP_SYS_ADMIN); CI runs as root.
        assert!(std::env::var_os("CI").is_none(), "cannot mount a tmpfs in CI");
        eprintln!("SKIPPED: cannot mount a 2 MiB tmpfs here (not root?)");
        return None;
    };
    let db = fresh_db(hint);
    db.exec(
        "CREATE TABLE big (id int PRIMARY KEY, payload text);
         INSERT INTO big SELECT g, md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text) FROM generate_series(1, 130000) g;
         ANALYZE;",
    );
    Some((fs, db))
}

/// A real archive of a tiny database (two tables with a foreign key, a
/// sequence, quoted CSV values) and one config file, made by `lifeboat
/// backup` once per test process. Small, so that hundreds of mutants are
/// checked in well under a second.
pub fn small_archive() -> &'static [u8] {
    &small().0
}

/// Writes the signing key of the store that made [`small_archive`] into
/// `dir/store/.lifeboat/`; returns that store directory (its
/// `.lifeboat/signing.pub` is the key to trust, [`Crafted::sign_with`] signs with it).
pub fn small_store_in(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    std::fs::create_dir_all(store.join(".lifeboat")).unwrap();
    std::fs::write(store.join(".lifeboat/signing.key"), &small().1).unwrap();
    std::fs::write(store.join(".lifeboat/signing.pub"), &small().2).unwrap();
    store
}

/// The archive's bytes and its store's secret and public key files.
fn small() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static ARCHIVE: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let db = fresh_db("hardening small");
        db.exec(
            "CREATE TABLE owners (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE); \
             CREATE TABLE pets (id serial PRIMARY KEY, owner_id bigint NOT NULL REFERENCES owners, \
                                note text, created_at timestamptz NOT NULL DEFAULT now()); \
             INSERT INTO owners (name) SELECT 'owner ' || g FROM generate_series(1, 6) g; \
             INSERT INTO pets (owner_id, note) VALUES (1, 'plain'), (2, 'comma, \"quotes\"'), \
                 (3, E'two\\nlines'), (1, NULL), (4, ''), (6, E'back\\\\slash');",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/app.env"), "SECRET=1\n").unwrap();
        let config = format!(
            "[database]\nurl = {}\n\n[storage]\ndir = {}\n\n[files]\nbase_dir = {}\ninclude = [\"app.env\"]\n",
            toml_string(&db.url),
            toml_string(&dir.path().join("out").to_string_lossy()),
            toml_string(&dir.path().join("app").to_string_lossy()),
        );
        let config = write_config(dir.path(), &config);
        let out = lifeboat()
            .arg("--config")
            .arg(&config)
            .args(["--json", "backup"])
            .current_dir(dir.path())
            .output()
            .expect("run lifeboat backup");
        assert!(out.status.success(), "backup failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("backup --json");
        let path = PathBuf::from(report["archive"].as_str().expect("archive path"));
        let key = |f: &str| std::fs::read(dir.path().join("out/.lifeboat").join(f)).unwrap();
        (
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            key("signing.key"),
            key("signing.pub"),
        )
    })
}
