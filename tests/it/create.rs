//! `restore --create` against real PostgreSQL: the database it creates has
//! the source's encoding and locale (recorded in the manifest at backup); a
//! locale the server lacks is refused with the next step and nothing is
//! created; a hostile locale in a signed manifest never reaches SQL.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{self, assert_exit, stderr, TestDb};

/// A database made `CREATE DATABASE … TEMPLATE template0 {options}`, with a
/// table holding text outside ASCII (dropped with the value).
fn source_db(hint: &str, options: &str) -> TestDb {
    let name = format!("lb_create_{hint}_{}", std::process::id());
    let server = support::server();
    support::connect(&server.admin_url())
        .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE template0 {options}"))
        .unwrap();
    let db = TestDb { url: server.url(&name), name };
    db.exec("CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL); INSERT INTO notes VALUES (1, 'café'), (2, 'naïve')");
    db
}

/// `lifeboat backup` of `db` into a store in `dir`; the archive's path.
fn backup(db: &TestDb, dir: &Path) -> PathBuf {
    let o = support::lifeboat()
        .args(["--json", "backup", "--database-url", &db.url, "--output-dir", dir.join("b").to_str().unwrap()])
        .current_dir(dir)
        .output()
        .unwrap();
    assert_exit(&o, 0);
    PathBuf::from(support::json(&o)["archive"].as_str().unwrap())
}

/// `lifeboat restore ARCHIVE --db <server>/NAME --create`, trusting the archive's store key.
fn restore_create(archive: &Path, name: &str) -> std::process::Output {
    let url = support::server().url(name);
    support::lifeboat()
        .args(["-v", "restore", archive.to_str().unwrap(), "--db", &url, "--create"])
        .args(["--trusted-key", &support::its_store_key(archive)])
        .current_dir(archive.parent().unwrap())
        .output()
        .unwrap()
}

/// `(encoding, collate, ctype, provider, icu locale)` of database `name`, or
/// `None` when it does not exist.
fn pg_database(name: &str) -> Option<(String, String, String, String, Option<String>)> {
    let mut admin = support::connect(&support::server().admin_url());
    admin
        .query_opt(
            "SELECT pg_encoding_to_char(encoding)::text, datcollate::text, datctype::text, datlocprovider::text, \
             daticulocale::text FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
}

fn drop_db(name: &str) {
    let _ = support::connect(&support::server().admin_url())
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
}

/// The archive at `archive` with its manifest changed by `change`, re-signed with its store's key (as that store would have signed
/// it), written beside it as `name`.
fn with_manifest(archive: &Path, name: &str, change: impl Fn(&mut Value)) -> PathBuf {
    let mut members = support::members(archive);
    let (_, manifest) = members.iter_mut().find(|(p, _)| p == "manifest.json").unwrap();
    let mut m: Value = serde_json::from_slice(manifest).unwrap();
    change(&mut m);
    *manifest = serde_json::to_vec_pretty(&m).unwrap();
    support::reseal_signed(&mut members, archive.parent().unwrap());
    let out = archive.with_file_name(name);
    support::write_archive(&out, &members);
    out
}

// covers: FR-7.1, FR-7.16
#[test]
fn restore_create_gives_the_new_database_the_sources_encoding_and_locale() {
    let dir = tempfile::tempdir().unwrap();
    let src = source_db("latin1", "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'");
    let archive = backup(&src, dir.path());

    let manifest: Value =
        serde_json::from_slice(&support::members(&archive).into_iter().find(|(p, _)| p == "manifest.json").unwrap().1)
            .unwrap();
    assert_eq!(
        manifest["database_encoding"],
        serde_json::json!({"encoding": "LATIN1", "collate": "C", "ctype": "C", "locale_provider": "libc"})
    );

    let name = format!("lb_create_latin1_copy_{}", std::process::id());
    let o = restore_create(&archive, &name);
    let created = pg_database(&name);
    drop_db(&name);
    assert_exit(&o, 0);
    // The server's default here is UTF8 / C.UTF-8: the copy did not take it.
    assert_eq!(created, Some(("LATIN1".into(), "C".into(), "C".into(), "c".into(), None)), "{}", stderr(&o));
    assert!(stderr(&o).contains("encoding LATIN1, locale C)"), "{}", stderr(&o));
}

// covers: FR-7.16
#[test]
fn restore_create_keeps_an_icu_locale() {
    let dir = tempfile::tempdir().unwrap();
    let src = source_db("icu", "ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'und' LC_COLLATE 'C' LC_CTYPE 'C'");
    let archive = backup(&src, dir.path());
    let name = format!("lb_create_icu_copy_{}", std::process::id());
    let o = restore_create(&archive, &name);
    let created = pg_database(&name);
    drop_db(&name);
    assert_exit(&o, 0);
    assert_eq!(created, Some(("UTF8".into(), "C".into(), "C".into(), "i".into(), Some("und".into()))));
}

// covers: FR-7.16, FR-22.8
#[test]
fn a_locale_the_server_lacks_or_a_hostile_one_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = source_db("lacks", "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'");
    let archive = backup(&src, dir.path());

    // A locale this machine does not have (`locale -a`: C, C.utf8, POSIX).
    let missing = with_manifest(&archive, "missing-locale.tar.gz", |m| {
        m["database_encoding"]["collate"] = "xx_XX.UTF-8".into();
        m["database_encoding"]["ctype"] = "xx_XX.UTF-8".into();
    });
    let name = format!("lb_create_lacks_copy_{}", std::process::id());
    let o = restore_create(&missing, &name);
    assert_eq!(pg_database(&name), None, "nothing created");
    drop_db(&name);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("cannot create database {name:?}"))
            && err.contains("with the archive's encoding UTF8 and locale xx_XX.UTF-8")
            && err.contains("install that locale on the server")
            && err.contains("createdb -T template0 -E UTF8 --locale=LOCALE"),
        "{err}"
    );

    // SQL in a signed manifest: refused when the archive is read, before
    // any connection; the server is not asked.
    let hostile = with_manifest(&archive, "hostile-locale.tar.gz", |m| {
        m["database_encoding"]["ctype"] = "C' TEMPLATE template1; DROP DATABASE postgres; --".into();
    });
    let o = restore_create(&hostile, &name);
    assert_eq!(pg_database(&name), None, "nothing created");
    drop_db(&name);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("database_encoding.ctype \"C' TEMPLATE template1; DROP DATABASE postgres; --\""), "{err}");
    assert!(err.contains("which is not an encoding or locale name"), "{err}");
}

// covers: FR-7.16, FR-22.8
#[test]
fn an_archive_without_the_encoding_gets_the_servers_default_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let src = source_db("older", "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'");
    let archive = backup(&src, dir.path());
    // As an archive of a lifeboat that did not record it.
    let older = with_manifest(&archive, "older.tar.gz", |m| {
        m.as_object_mut().unwrap().remove("database_encoding");
    });

    let name = format!("lb_create_older_copy_{}", std::process::id());
    let o = restore_create(&older, &name);
    let created = pg_database(&name);
    drop_db(&name);
    assert_exit(&o, 0);
    let default = pg_database("template0").unwrap();
    assert_eq!(created.map(|c| c.0), Some(default.0));
    assert!(stderr(&o).contains("with the server's default encoding and locale"), "{}", stderr(&o));
}
