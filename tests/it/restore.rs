//! `lifeboat restore` and `lifeboat verify --restore-test` against a real
//! PostgreSQL, through the real binary: the round trip of the SaaS fixture
//! (rows, schema, foreign keys, sequences), `--tables` subsets, the
//! refusals (non-empty target, the configured source), rollback on a bad
//! archive, hostile members, config files, and the rehearsal.
//!
//! One seeded source is backed up once per test process ([`fixture`]); what
//! the tests compare against is read from it then, and the source dropped.
//! Each test works on its own copy of the archive in its own directory
//! ([`work`]), so nothing outlives the test that made it.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use lifeboat::archive::{Manifest, ManifestTable};

use crate::support::craft::with_members;
use crate::support::craft::Crafted;
use crate::support::{
    all_fingerprints, connect, fk_report, fresh_db, lifeboat, psql_file, saas_config, schema_dump, seed_saas,
    sequence_values, server, toml_string, write_config, TestDb,
};

/// The same pinned rendering the harness hashes with, so row texts of two
/// databases compare equal exactly when the values are equal.
const RENDER_SETTINGS: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; \
    SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3; SET LOCAL bytea_output = 'hex'";

/// Deployment config files of the fixture: (relative path, mode, content).
const CONFIG_FILES: &[(&str, u32, &str)] = &[
    (".env.production", 0o600, "DATABASE_URL=postgres://app:s3cret@postgres:5432/smart_ai_hub\nJWT_SECRET=abc\n"),
    ("docker-compose.prod.yml", 0o644, "services:\n  backend:\n    image: smart-ai-hub/backend:1.4\n"),
    (
        "nginx.prod.conf",
        0o644,
        "server {\n  listen 443 ssl;\n  ssl_certificate /etc/nginx/ssl/certs/fullchain.pem;\n}\n",
    ),
    ("ssl/certs/fullchain.pem", 0o644, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
    ("ssl/private/privkey.pem", 0o600, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"),
];

struct Fixture {
    /// The archive's bytes and file name.
    archive: (Vec<u8>, String),
    manifest: Manifest,
    source: Source,
    /// The store's signing key files (secret, public), for [`work`].
    keys: (Vec<u8>, Vec<u8>),
}

/// A test's own directory, holding a copy of the fixture's archive.
struct Work {
    dir: tempfile::TempDir,
    archive: PathBuf,
}

/// The directory also holds the store's signing key (in `store/`) and a
/// `lifeboat.toml` naming that store, which `lifeboat` run there picks up:
/// the archive, and the ones a test crafts and signs, are trusted.
fn work() -> Work {
    let f = fixture();
    let (bytes, name) = &f.archive;
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join(name);
    std::fs::write(&archive, bytes).unwrap();
    let keys = dir.path().join("store/.lifeboat");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("signing.key"), &f.keys.0).unwrap();
    std::fs::write(keys.join("signing.pub"), &f.keys.1).unwrap();
    write_config(
        dir.path(),
        &format!("[storage]\ndir = {}\n", toml_string(&dir.path().join("store").to_string_lossy())),
    );
    Work { dir, archive }
}

impl Work {
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }
}

/// The source database as it was backed up.
struct Source {
    schema: String,
    fks: Vec<(String, bool)>,
    /// Every row's text, sorted, per table (`public.users`).
    rows: BTreeMap<String, Vec<String>>,
    /// The rows the table's mode selects (the manifest's `filter`), for
    /// window and schema-only tables.
    selected: BTreeMap<String, Vec<String>>,
}

/// Seeds the SaaS fixture, writes its deployment config files, takes one
/// backup with the real binary, reads what later comparisons need.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let deploy = dir.path().join("deploy");
        for (rel, mode, content) in CONFIG_FILES {
            let path = deploy.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        let db = fresh_db("restore source");
        seed_saas(&db);
        let config = format!(
            "{}\n[files]\nbase_dir = {}\ninclude = [\".env.production\", \"docker-compose.prod.yml\", \"nginx.prod.conf\", \"ssl/**\"]\n",
            saas_config(&db.url, &dir.path().join("backups")),
            toml_string(&deploy.to_string_lossy())
        );
        let config = write_config(dir.path(), &config);
        let out = run_in(dir.path(), ["--config".as_ref(), config.as_os_str(), "--json".as_ref(), "backup".as_ref()]);
        assert_exit(&out, 0);
        let archive = PathBuf::from(json(&out)["archive"].as_str().expect("archive in the backup report"));
        let trust = lifeboat::archive::signature::Trust {
            store_key: Some(dir.path().join("backups/.lifeboat/signing.pub")),
            ..Default::default()
        };
        let manifest = lifeboat::verify::verify(&archive, trust, &lifeboat::events::silent).expect("verifies").manifest;

        let mut client = db.client();
        let mut source = Source {
            schema: schema_dump(&db.url),
            fks: fk_report(&mut client),
            rows: BTreeMap::new(),
            selected: BTreeMap::new(),
        };
        for t in &manifest.tables {
            source.rows.insert(t.display(), row_texts(&mut client, &format!("SELECT * FROM {}", t.qualified())));
            if let Some(filter) = &t.filter {
                let sql = format!("SELECT * FROM {} t WHERE {filter}", t.qualified());
                source.selected.insert(t.display(), row_texts(&mut client, &sql));
            }
        }
        let bytes = std::fs::read(&archive).unwrap();
        let name = archive.file_name().unwrap().to_string_lossy().into_owned();
        let key = |f: &str| std::fs::read(dir.path().join("backups/.lifeboat").join(f)).unwrap();
        let keys = (key("signing.key"), key("signing.pub"));
        Fixture { archive: (bytes, name), manifest, source, keys }
    })
}

/// The text form of every row `select_sql` returns, under
/// [`RENDER_SETTINGS`], sorted (duplicates kept).
fn row_texts(client: &mut postgres::Client, select_sql: &str) -> Vec<String> {
    let mut tx = client.transaction().expect("begin");
    tx.batch_execute(RENDER_SETTINGS).expect("render settings");
    let sql = format!("SELECT r::text FROM ({select_sql}) r");
    let rows = tx.query(sql.as_str(), &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut texts: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    texts.sort();
    texts
}

fn run_in<I, S>(cwd: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    // An own working directory: no stray ./lifeboat.toml is picked up.
    lifeboat().args(args).current_dir(cwd).output().expect("cannot run lifeboat")
}

/// `lifeboat restore ARCHIVE --db URL EXTRA…`, run in the archive's directory.
fn restore(archive: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args: Vec<&OsStr> = vec!["restore".as_ref(), archive.as_os_str(), "--db".as_ref(), url.as_ref()];
    args.extend(extra.iter().map(OsStr::new));
    run_in(archive.parent().expect("archive in a directory"), args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o));
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(o), stderr(o)))
}

/// Tables, views and sequences outside the system schemas, and user types:
/// zero means nothing was ever created, or it was all rolled back.
fn user_objects(db: &TestDb) -> i64 {
    db.query_one_i64(
        "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%') \
              + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                 WHERE t.typtype IN ('e', 'c', 'd') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_%' AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid))",
    )
}

/// Compares every table of `db` with the source: tables outside `only` are
/// empty; the others hold exactly the archived rows: a full table all of
/// the source's rows, a window or schema-only table exactly the source's
/// rows its filter selects plus `closure_rows` more, each identical to a
/// source row. Row counts agree with the manifest.
fn assert_rows_match_source(db: &TestDb, only: Option<&BTreeSet<String>>) {
    let f = fixture();
    let mut client = db.client();
    for t in &f.manifest.tables {
        let name = t.display();
        let restored = row_texts(&mut client, &format!("SELECT * FROM {}", t.qualified()));
        if only.is_some_and(|o| !o.contains(&name)) {
            assert!(restored.is_empty(), "{name} was not asked for but has {} rows", restored.len());
            continue;
        }
        assert_eq!(restored.len() as u64, t.rows, "{name}: row count differs from the manifest");
        let source = &f.source.rows[&name];
        match &t.filter {
            None => assert!(restored == *source, "{name}: rows differ from the source"),
            Some(filter) => {
                let selected = row_texts(&mut client, &format!("SELECT * FROM {} t WHERE {filter}", t.qualified()));
                assert!(selected == f.source.selected[&name], "{name}: rows where {filter} differ from the source");
                assert_eq!(restored.len() - selected.len(), t.closure_rows as usize, "{name}: closure rows");
                let foreign: Vec<_> = restored.iter().filter(|r| source.binary_search(r).is_err()).take(3).collect();
                assert!(foreign.is_empty(), "{name}: rows that are not in the source: {foreign:?}");
            }
        }
    }
}

/// Every FK of the source present and validated; sequences at least at the
/// snapshot's values.
fn assert_fks_and_sequences(db: &TestDb) {
    let f = fixture();
    let mut client = db.client();
    let fks = fk_report(&mut client);
    assert_eq!(fks, f.source.fks, "foreign keys differ from the source");
    assert!(fks.iter().all(|(_, valid)| *valid), "{fks:?}");
    assert_eq!(fks.len(), f.manifest.foreign_keys.len());
    let restored = sequence_values(&mut client);
    for s in &f.manifest.sequences {
        let name = format!("{}.{}", s.schema, s.name);
        let value = restored.get(&name).copied().flatten();
        if s.is_called {
            assert!(value.is_some_and(|v| v >= s.last_value), "{name}: {value:?} < snapshot {}", s.last_value);
        }
    }
}

/// `schema_dump(url) == expected`, showing only the lines that differ.
fn assert_same_schema(url: &str, expected: &str) {
    let got = schema_dump(url);
    if got != expected {
        let (g, e): (BTreeSet<&str>, BTreeSet<&str>) = (got.lines().collect(), expected.lines().collect());
        panic!(
            "schema of {url} differs\nonly there: {:#?}\nmissing: {:#?}",
            g.difference(&e).collect::<Vec<_>>(),
            e.difference(&g).collect::<Vec<_>>()
        );
    }
}

/// The manifest's tables plus every table they reference, transitively.
fn with_fk_ancestors(manifest: &Manifest, tables: &[&str]) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = tables.iter().map(|t| t.to_string()).collect();
    loop {
        let before = set.len();
        for fk in &manifest.foreign_keys {
            if set.contains(&format!("{}.{}", fk.schema, fk.table)) {
                set.insert(format!("{}.{}", fk.ref_schema, fk.ref_table));
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

fn table<'a>(manifest: &'a Manifest, name: &str) -> &'a ManifestTable {
    manifest.tables.iter().find(|t| t.display() == name).unwrap_or_else(|| panic!("{name} not in the manifest"))
}

/// A copy of the fixture's archive, rewritten by `edit`, in `w`'s directory.
fn crafted(w: &Work, name: &str, edit: impl FnOnce(&mut Crafted)) -> PathBuf {
    let mut c = Crafted::read_file(&w.archive);
    edit(&mut c);
    c.sign_with(&w.store());
    let path = w.dir.path().join(name);
    c.write(&path);
    path
}

/// The byte range of the first data record of a CSV (after the header),
/// without its newline; quoted newlines stay inside the record.
/// A consistent archive whose `csv` member has its first row twice: COPY
/// accepts it (no index yet), the primary key in constraints.sql does not.
fn with_first_row_twice(w: &Work, name: &str, csv: &str) -> PathBuf {
    crafted(w, name, |c| {
        let data = c.data_mut(csv);
        let row = first_record(data);
        let mut copy = data[row.clone()].to_vec();
        copy.push(b'\n');
        data.splice(row.start..row.start, copy);
        c.refresh_table(csv);
    })
}

fn first_record(csv: &[u8]) -> std::ops::Range<usize> {
    let start = csv.iter().position(|&b| b == b'\n').expect("header line") + 1;
    let mut quoted = false;
    for (i, &b) in csv[start..].iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => return start..start + i,
            _ => {}
        }
    }
    panic!("no complete data record")
}

// covers: FR-7.4, FR-7.5, FR-7.6, US-4/AC-1, US-2/AC-4, TS-2.3
#[test]
fn restore_reproduces_every_archived_row_the_schema_valid_fks_and_sequences() {
    let f = fixture();
    let w = work();
    let target = fresh_db("restore round trip");
    let out = restore(&w.archive, &target.url, &[]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("Restore complete"), "{}", stdout(&out));

    assert_rows_match_source(&target, None);
    assert_same_schema(&target.url, &f.source.schema);
    assert_fks_and_sequences(&target);
    // The windows did cut something and the closure did pull rows in, so
    // the comparison above covered both kinds of rows.
    let ct = table(&f.manifest, "public.credit_transactions");
    assert!(ct.rows < f.source.rows["public.credit_transactions"].len() as u64 && ct.closure_rows > 0, "{ct:?}");
}

// covers: FR-12.6, US-4/AC-10, TS-2.2, TS-2.3, NFR-6.2
#[test]
fn restore_and_the_archives_own_psql_script_load_identical_databases() {
    let w = work();
    let by_lifeboat = fresh_db("restore vs psql lifeboat");
    assert_exit(&restore(&w.archive, &by_lifeboat.url, &[]), 0);

    let by_psql = fresh_db("restore vs psql script");
    let unpacked = tempfile::tempdir().unwrap();
    let file = std::fs::File::open(&w.archive).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(file)).unpack(unpacked.path()).expect("unpack");
    let out = psql_file(&by_psql.url, Path::new("database/restore.sql"), unpacked.path());
    assert!(out.status.success(), "psql -f database/restore.sql failed:\n{}", stderr(&out));

    assert_eq!(all_fingerprints(&by_lifeboat.url, "true"), all_fingerprints(&by_psql.url, "true"));
    assert_same_schema(&by_lifeboat.url, &schema_dump(&by_psql.url));
}

// covers: FR-21.1, FR-21.2, FR-21.3, FR-21.4, US-10/AC-1, US-10/AC-2, US-4/AC-1, TS-2.3
#[test]
fn restore_tables_subset_brings_its_fk_ancestors_and_leaves_other_tables_empty() {
    let f = fixture();
    let w = work();
    let wanted = with_fk_ancestors(&f.manifest, &["public.credit_transactions"]);
    for must in ["public.users", "public.credit_accounts", "public.usage_logs", "public.credit_transactions"] {
        assert!(wanted.contains(must), "{must} should be an FK ancestor: {wanted:?}");
    }
    assert!(!wanted.contains("public.messages") && !wanted.contains("public.payments"), "{wanted:?}");

    let target = fresh_db("restore subset");
    let out = restore(&w.archive, &target.url, &["--tables", "credit_transactions", "--json"]);
    assert_exit(&out, 0);
    let report = json(&out);
    for t in report["tables"].as_array().unwrap() {
        let name = t["table"].as_str().unwrap();
        assert_eq!(t["expected"] == 0, !wanted.contains(name), "{t}");
    }
    // Identical to the source (and so to a full restore) where asked for,
    // empty elsewhere; the schema is whole and every FK valid.
    assert_rows_match_source(&target, Some(&wanted));
    assert_same_schema(&target.url, &f.source.schema);
    assert_fks_and_sequences(&target);

    let unknown = fresh_db("restore subset unknown");
    let out = restore(&w.archive, &unknown.url, &["--tables", "no_such_table"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("no_such_table") && stderr(&out).contains("not in this archive"), "{}", stderr(&out));
    assert_eq!(user_objects(&unknown), 0);
}

// covers: FR-7.2, US-4/AC-2, TS-2.7, SC-8
#[test]
fn restore_into_a_non_empty_database_refuses_without_force_and_changes_nothing() {
    let w = work();
    let target = fresh_db("restore non empty");
    target.exec(
        "CREATE TABLE keep_me (id int PRIMARY KEY, note text); INSERT INTO keep_me VALUES (1, 'precious'), (2, NULL); \
         CREATE SCHEMA app; CREATE TABLE app.settings (k text PRIMARY KEY, v text); INSERT INTO app.settings VALUES ('a', 'b')",
    );
    let (rows_before, schema_before) = (all_fingerprints(&target.url, "true"), schema_dump(&target.url));

    let out = restore(&w.archive, &target.url, &[]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    for expected in ["not empty", "public.keep_me", "app.settings", "--force"] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
    assert_eq!(all_fingerprints(&target.url, "true"), rows_before);
    assert_eq!(schema_dump(&target.url), schema_before);

    // With --force: what is dropped is said before acting (stderr) and
    // reported (--json), and nothing else is dropped.
    let out = restore(&w.archive, &target.url, &["--force", "--json"]);
    assert_exit(&out, 0);
    let dropped = ["schema app with 1 object(s): settings", "schema public with 1 object(s): keep_me"];
    assert_eq!(json(&out)["dropped"], serde_json::json!(dropped));
    for d in dropped {
        assert!(stderr(&out).contains(&format!("--force: dropping {d}")), "{}", stderr(&out));
    }
    let stage = stderr(&out).find("lifeboat: schema").expect("schema step");
    assert!(stderr(&out).find("--force: dropping").is_some_and(|i| i < stage), "{}", stderr(&out));
    assert_eq!(target.query_one_string("SELECT coalesce(to_regclass('public.keep_me')::text, 'gone')"), "gone");
    assert_eq!(target.query_one_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'app'"), 0);
    assert_rows_match_source(&target, None);
    assert_fks_and_sequences(&target);
    // `public` was dropped and made again: as it was (owner, privileges,
    // comment), not as the restoring superuser's, or the application's
    // own role could no longer create tables in it (migrations).
    assert_same_schema(&target.url, &fixture().source.schema);
    assert_eq!(public_schema(&target), public_schema(&fresh_db("restore non empty fresh")));
}

/// Owner, privileges and comment of the `public` schema.
fn public_schema(db: &TestDb) -> String {
    db.query_one_string(
        "SELECT concat_ws(' | ', nspowner::regrole::text, coalesce(nspacl::text, 'default'), \
                coalesce(obj_description(oid, 'pg_namespace'), 'no comment')) \
         FROM pg_namespace WHERE nspname = 'public'",
    )
}

// covers: FR-7.1, TS-2.8
#[test]
fn restore_that_cannot_start_exits_2_naming_the_missing_archive_or_database() {
    let w = work();
    let target = fresh_db("restore cannot start");
    let missing = w.dir.path().join("no_such_backup.tar.gz");
    let out = restore(&missing, &target.url, &[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("cannot open archive") && stderr(&out).contains("no_such_backup"),
        "{}",
        stderr(&out)
    );

    // --jobs takes 1 to 64 connections.
    let out = restore(&w.archive, &target.url, &["--jobs", "0"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--jobs"), "{}", stderr(&out));

    let nowhere = format!("{}_missing", target.url);
    let out = restore(&w.archive, &nowhere, &[]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("cannot connect") && stderr(&out).contains("_missing"), "{}", stderr(&out));
}

// covers: FR-7.3, US-4/AC-2, SC-8
#[test]
fn restore_refuses_the_configured_source_database_without_force() {
    let f = fixture();
    let w = work();
    let live = fresh_db("restore configured source");
    live.exec("CREATE TABLE orders (id int PRIMARY KEY, total numeric); INSERT INTO orders VALUES (1, 9.5), (2, 10)");
    let before = all_fingerprints(&live.url, "true");
    let dir = tempfile::tempdir().unwrap();
    // The store is the one whose key signed the archive.
    let config = write_config(dir.path(), &saas_config(&live.url, &w.store()));

    let args = |url: &str| -> Vec<String> {
        ["--config", config.to_str().unwrap(), "restore", w.archive.to_str().unwrap(), "--db", url]
            .map(String::from)
            .to_vec()
    };
    let out = run_in(dir.path(), args(&live.url));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("source database named in the config"), "{}", stderr(&out));
    assert_eq!(all_fingerprints(&live.url, "true"), before, "the source was touched");

    // Refused because it is the source, not because it is non-empty: an
    // empty source is refused too, even when the config spells the host
    // differently; `--force` with the same URL is the explicit way through.
    let empty = fresh_db("restore configured empty source");
    let spelled = empty.url.replacen("@127.0.0.1:", "@localhost:", 1);
    std::fs::write(&config, saas_config(&spelled, &w.store())).unwrap();
    let out = run_in(dir.path(), args(&empty.url));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("source database named in the config"), "{}", stderr(&out));
    assert_eq!(user_objects(&empty), 0);

    let mut forced = args(&empty.url);
    forced.push("--force".into());
    assert_exit(&run_in(dir.path(), forced), 0);
    assert_eq!(empty.count("public.users"), table(&f.manifest, "public.users").rows as i64);
}

// covers: FR-7.1, FR-5.2, US-4/AC-3, TS-2.7
#[test]
fn restore_of_a_corrupted_or_truncated_archive_fails_and_leaves_the_target_untouched() {
    let f = fixture();
    let w = work();
    let target = fresh_db("restore corrupted");
    let schema_before = schema_dump(&target.url);

    // One byte of one CSV changed, nothing else: only the checksums know.
    let csv = table(&f.manifest, "public.users").file.clone().unwrap();
    let flipped = crafted(&w, "flipped.tar.gz", |c| {
        let data = c.data_mut(&csv);
        let i = data.len() / 2;
        data[i] = if data[i] == b'x' { b'y' } else { b'x' };
    });
    let out = restore(&flipped, &target.url, &["--json"]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains(&csv) && stderr(&out).contains("SHA-256"), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!((report["ok"].as_bool(), report["exit_code"].as_i64()), (Some(false), Some(1)), "{report}");
    assert!(report["error"].as_str().unwrap().contains(&csv), "{report}");

    // Cut in the middle of the data: gzip ends early.
    let bytes = std::fs::read(&w.archive).unwrap();
    let truncated = w.dir.path().join("truncated.tar.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() * 3 / 5]).unwrap();
    let out = restore(&truncated, &target.url, &[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("damaged or truncated"), "{}", stderr(&out));

    // A flipped bit inside the compressed stream.
    let mut bits = bytes.clone();
    bits[bytes.len() / 2] ^= 0x10;
    let damaged = w.dir.path().join("bitflip.tar.gz");
    std::fs::write(&damaged, &bits).unwrap();
    let out = restore(&damaged, &target.url, &[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("damaged") || stderr(&out).contains("SHA-256"), "{}", stderr(&out));

    assert_eq!(user_objects(&target), 0);
    assert_eq!(schema_dump(&target.url), schema_before);
}

// covers: FR-7.4, US-4/AC-3, TS-2.7
#[test]
fn restore_of_rows_violating_a_constraint_rolls_back_everything_and_names_table_and_line() {
    let f = fixture();
    let w = work();
    let users = table(&f.manifest, "public.users");
    let csv = users.file.clone().unwrap();
    assert_eq!(users.columns[0], "id");

    // The first row's id emptied (NULL in CSV) in a consistent archive:
    // verify passes, so only the database can catch it, during COPY.
    let null_id = crafted(&w, "null_id.tar.gz", |c| {
        let data = c.data_mut(&csv);
        let row = first_record(data);
        let comma = row.start + data[row.clone()].iter().position(|&b| b == b',').unwrap();
        data.drain(row.start..comma);
        c.refresh_table(&csv);
    });
    assert_exit(&run_in(w.dir.path(), [OsStr::new("verify"), null_id.as_os_str()]), 0);
    let target = fresh_db("restore not null");
    let out = restore(&null_id, &target.url, &[]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    for expected in ["null value in column \"id\"", "users", "line 2", "rolled back"] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
    assert_eq!(user_objects(&target), 0, "a failed restore left objects behind");

    // The first row twice: COPY accepts it (no index yet), the primary key
    // in constraints.sql does not.
    let duplicate = with_first_row_twice(&w, "duplicate.tar.gz", &csv);
    assert_exit(&run_in(w.dir.path(), [OsStr::new("verify"), duplicate.as_os_str()]), 0);
    let out = restore(&duplicate, &target.url, &[]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    for expected in ["constraints.sql", "users", "is duplicated", "rolled back"] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
    assert_eq!(user_objects(&target), 0, "a failed restore left objects behind");
}

// covers: FR-7.4, US-4/AC-1
#[test]
fn restore_loads_a_quoted_field_holding_copys_end_of_data_marker() {
    // A line that is exactly `\.` ends COPY data in text format, and psql's
    // \copy stops at it even inside a quoted CSV field; the server's CSV
    // parser must keep it as data.
    let f = fixture();
    let w = work();
    let messages = table(&f.manifest, "public.messages");
    let csv = messages.file.clone().unwrap();
    assert_eq!(&messages.columns[..4], ["id", "conversation_id", "role", "content"]);
    let tricky = "before\n\\.\nafter, \"quoted\"";
    let archive = crafted(&w, "end_marker.tar.gz", |c| {
        let data = c.data_mut(&csv);
        let row = first_record(data);
        let text = String::from_utf8(data[row.clone()].to_vec()).unwrap();
        let fields: Vec<&str> = text.splitn(4, ',').collect();
        let content = format!("\"{}\",", tricky.replace('"', "\"\""));
        // Keep id, conversation_id, role; replace content and everything
        // after it with the new content and the row's last two fields.
        let tail = text.rsplitn(3, ',').take(2).collect::<Vec<_>>();
        let rebuilt = format!("{},{},{},{content}{},{}", fields[0], fields[1], fields[2], tail[1], tail[0]);
        data.splice(row, rebuilt.into_bytes());
        c.refresh_table(&csv);
    });
    let target = fresh_db("restore end marker");
    assert_exit(&restore(&archive, &target.url, &[]), 0);
    assert_eq!(target.count(&format!("public.messages WHERE content = {}", sql_literal(tricky))), 1);
    assert_eq!(target.count("public.messages"), messages.rows as i64);
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// covers: FR-7.6, FR-7.8, US-4/AC-7
#[test]
fn restore_fails_and_rolls_back_when_loaded_rows_differ_from_the_manifest() {
    // An unquoted `\.` line in a CSV counts as a record for the manifest,
    // while the server's COPY silently stops reading there. In a table that
    // nothing references no constraint notices, and the archive is
    // otherwise consistent (verify passes): only the restore's own row
    // count check stands between this and a "successful" partial restore.
    let f = fixture();
    let w = work();
    let migrations = table(&f.manifest, "public._prisma_migrations");
    assert!(!f.manifest.foreign_keys.iter().any(|k| k.ref_table == "_prisma_migrations"));
    let csv = migrations.file.clone().unwrap();
    let archive = crafted(&w, "short_copy.tar.gz", |c| {
        let data = c.data_mut(&csv);
        let row = first_record(data);
        data.splice(row.end + 1..row.end + 1, b"\\.\n".to_vec());
        c.refresh_table(&csv);
    });
    assert_exit(&run_in(w.dir.path(), [OsStr::new("verify"), archive.as_os_str()]), 0);
    let target = fresh_db("restore short copy");
    let out = restore(&archive, &target.url, &[]);
    assert_exit(&out, 1);
    let said = stdout(&out);
    let line = said.lines().find(|l| l.starts_with("public._prisma_migrations")).unwrap_or_else(|| panic!("{said}"));
    let expected = migrations.rows + 1;
    assert!(line.contains(&expected.to_string()) && line.contains(" 1 ") && line.ends_with("MISMATCH"), "{line}");
    assert!(said.contains("RESTORE FAILED") && said.contains("rolled back"), "{said}");
    assert_eq!(user_objects(&target), 0);
}

/// Every file under `dir` (relative path → content), `skip` excluded.
fn tree(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if p.starts_with(skip) {
                continue;
            } else if meta.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

// covers: FR-22.1, FR-22.2, FR-22.3, US-4/AC-4
#[test]
fn restore_and_verify_refuse_path_traversal_and_write_nothing_outside_the_config_dir() {
    let w = work();
    let sandbox = tempfile::tempdir().unwrap();
    let outside = sandbox.path().join("outside");
    let config_dir = sandbox.path().join("restore/config");
    let cwd = sandbox.path().join("restore/cwd/a");
    let archives = sandbox.path().join("archives");
    for d in [&outside, &cwd, &archives] {
        std::fs::create_dir_all(d).unwrap();
    }
    let passwd_before = std::fs::read("/etc/passwd").ok();
    let target = fresh_db("restore traversal");
    let base = Crafted::read_file(&w.archive);

    let cases = crate::support::craft::unsafe_members(&outside);
    let mut paths = Vec::new();
    for (i, (trick, evil)) in cases.iter().enumerate() {
        let path = archives.join(format!("evil{i}.tar.gz"));
        with_members(&base, evil).write(&path);
        paths.push((trick, path, evil[0].effective_path()));
    }
    let before = tree(sandbox.path(), &archives);

    for (trick, archive, member) in &paths {
        for args in [
            vec![OsStr::new("verify"), archive.as_os_str()],
            vec![
                OsStr::new("restore"),
                archive.as_os_str(),
                OsStr::new("--db"),
                target.url.as_ref(),
                OsStr::new("--config-dir"),
                config_dir.as_os_str(),
            ],
        ] {
            let out = lifeboat().args(&args).current_dir(&cwd).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{trick}: {args:?}\n{}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains("refused"), "{trick}: {err}");
            // Named by its path (non-UTF-8 bytes shown as U+FFFD).
            let shown = member.replace('\\', "\\\\");
            let head: String = shown.chars().take(20).collect();
            assert!(err.contains(&head), "{trick}: {head:?} not in {err}");
        }
    }

    assert_eq!(tree(sandbox.path(), &archives), before, "files appeared or changed outside the archives");
    assert!(!config_dir.exists(), "the config dir was created for a refused archive");
    assert_eq!(std::fs::read("/etc/passwd").ok(), passwd_before);
    assert_eq!(user_objects(&target), 0);
}

// covers: FR-7.7, US-4/AC-5, SC-1.3
#[test]
fn restore_puts_config_files_in_the_config_dir_with_their_modes_and_keeps_existing_ones() {
    let f = fixture();
    let w = work();
    let target = fresh_db("restore config files");
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().join("restored");
    std::fs::create_dir_all(dir.join("ssl/certs")).unwrap();
    std::fs::write(dir.join(".env.production"), "OLD=1\n").unwrap();
    std::fs::set_permissions(dir.join(".env.production"), std::fs::Permissions::from_mode(0o640)).unwrap();

    let out = restore(&w.archive, &target.url, &["--config-dir", dir.to_str().unwrap()]);
    assert_exit(&out, 0);

    for (rel, mode, content) in CONFIG_FILES {
        let path = dir.join(rel);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), *content, "{rel}");
        let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(got, *mode, "{rel}: mode {got:o}, expected {mode:o}");
    }
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let baks: Vec<&String> = names.iter().filter(|n| n.starts_with(".env.production.bak-")).collect();
    assert_eq!(baks.len(), 1, "{names:?}");
    let stamp = baks[0].trim_start_matches(".env.production.bak-");
    assert!(stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()), "{stamp}");
    assert_eq!(std::fs::read_to_string(dir.join(baks[0])).unwrap(), "OLD=1\n");
    let bak_mode = std::fs::metadata(dir.join(baks[0])).unwrap().permissions().mode() & 0o7777;
    assert_eq!(bak_mode, 0o640, "the .bak copy keeps the replaced file's mode (a rename)");
    assert!(stdout(&out).contains(&format!("previous kept as {}", dir.join(baks[0]).display())), "{}", stdout(&out));
    // Only the files and the one backup copy: no staging directory left.
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(table(&f.manifest, "public.users").rows as i64, target.count("public.users"));
}

// covers: FR-22.2, FR-7.7, US-4/AC-4
#[test]
fn restore_refuses_a_config_dir_whose_subdirectory_links_outside_and_changes_nothing() {
    let w = work();
    let target = fresh_db("restore config symlink");
    // `ssl` in the destination is a symlink to a directory elsewhere (as a
    // Let's Encrypt setup might have it): restoring ssl/** through it would
    // write outside --config-dir.
    let outside = w.dir.path().join("outside");
    let dir = w.dir.path().join("restored");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("ssl")).unwrap();
    std::fs::write(dir.join(".env.production"), "OLD=1\n").unwrap();

    let out = restore(&w.archive, &target.url, &["--config-dir", dir.to_str().unwrap()]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("ssl/certs/fullchain.pem") && stderr(&out).contains("symlink"), "{}", stderr(&out));
    assert_eq!(tree(&outside, Path::new("/nonexistent")).len(), 0, "written outside --config-dir");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "created outside --config-dir");
    // All or nothing: no config file installed, the database rolled back.
    let names: BTreeSet<String> =
        std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, BTreeSet::from([".env.production".to_string(), "ssl".to_string()]));
    assert_eq!(std::fs::read_to_string(dir.join(".env.production")).unwrap(), "OLD=1\n");
    assert_eq!(user_objects(&target), 0);
}

// covers: FR-7.7, US-4/AC-5, SC-1.3
#[test]
fn restore_takes_config_file_modes_from_the_checksummed_manifest_not_the_tar_header() {
    // Tar header modes are covered by no checksum (a forger recomputes the
    // header's own sum); manifest.json is covered by SHA256SUMS. Here the
    // headers say world-readable secrets and a setuid file, the content is
    // untouched, and verify passes: the restore must still use the
    // manifest's modes.
    let f = fixture();
    let w = work();
    let archive = crafted(&w, "modes.tar.gz", |c| {
        let env = c.index_of("config/.env.production");
        c.members[env].mode = 0o644;
        let nginx = c.index_of("config/nginx.prod.conf");
        c.members[nginx].mode = 0o4755;
    });
    assert_exit(&run_in(w.dir.path(), [OsStr::new("verify"), archive.as_os_str()]), 0);
    let manifest_mode = |p: &str| f.manifest.files.iter().find(|m| m.path == p).and_then(|m| m.mode);
    assert_eq!(manifest_mode("config/.env.production"), Some(0o600));
    assert_eq!(manifest_mode("config/nginx.prod.conf"), Some(0o644));

    let target = fresh_db("restore config modes");
    let dir = w.dir.path().join("restored");
    assert_exit(&restore(&archive, &target.url, &["--config-dir", dir.to_str().unwrap()]), 0);
    let mode = |rel: &str| format!("{:o}", std::fs::metadata(dir.join(rel)).unwrap().permissions().mode() & 0o7777);
    assert_eq!(mode(".env.production"), "600");
    assert_eq!(mode("nginx.prod.conf"), "644");
}

/// Whether database `name` exists on the test server.
fn database_exists(name: &str) -> bool {
    let rows = connect(&server().admin_url()).query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).unwrap();
    !rows.is_empty()
}

// covers: FR-15.1, FR-15.2, FR-15.3, US-9/AC-1
#[test]
fn verify_restore_test_passes_a_good_archive_and_drops_its_scratch_database() {
    let w = work();
    let admin = server().admin_url();
    let out =
        run_in(w.dir.path(), [OsStr::new("verify"), w.archive.as_os_str(), "--restore-test".as_ref(), admin.as_ref()]);
    assert_exit(&out, 0);
    let said = stdout(&out);
    assert!(said.starts_with("Restore test OK") && said.contains("scratch database dropped"), "{said}");
    let scratch = said.split("scratch database ").nth(1).and_then(|s| s.split(' ').next()).expect("scratch name");
    assert!(scratch.starts_with("lifeboat_rt_"), "{said}");
    assert!(!database_exists(scratch), "{scratch} was left behind");
}

// covers: FR-15.3, FR-15.4, US-9/AC-2, TS-2.7
#[test]
fn verify_restore_test_fails_an_archive_whose_csv_lost_a_row() {
    let f = fixture();
    let w = work();
    let admin = server().admin_url();
    let users = table(&f.manifest, "public.users");
    let csv = users.file.clone().unwrap();
    let drop_first_user = |c: &mut Crafted| {
        let data = c.data_mut(&csv);
        let row = first_record(data);
        data.drain(row.start..row.end + 1);
    };
    let rehearse = |archive: &Path| {
        run_in(
            w.dir.path(),
            [OsStr::new("--json"), "verify".as_ref(), archive.as_os_str(), "--restore-test".as_ref(), admin.as_ref()],
        )
    };

    // Lost, and nothing else changed: the checksums already fail it, before
    // any database is created.
    let lost = crafted(&w, "lost_row.tar.gz", drop_first_user);
    let out = rehearse(&lost);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains(&csv) && stderr(&out).contains("SHA-256"), "{}", stderr(&out));

    // Lost, with the manifest and SHA256SUMS rewritten to match (a bug or
    // a forger upstream of the checksums): verify passes, and the rows that
    // referenced the lost user make the rehearsal's restore fail.
    let consistent = crafted(&w, "lost_row_consistent.tar.gz", |c| {
        drop_first_user(c);
        c.refresh_table(&csv);
    });
    assert_exit(&run_in(w.dir.path(), [OsStr::new("verify"), consistent.as_os_str()]), 0);
    let out = rehearse(&consistent);
    assert_exit(&out, 1);
    let report = json(&out);
    assert_eq!(report["ok"], false, "{report}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("restore failed") && problems.contains("foreign key"), "{problems}");
    let scratch = report["scratch_database"].as_str().unwrap();
    assert!(!database_exists(scratch), "{scratch} was left behind");
}

// covers: FR-7.6, FR-7.8, US-4/AC-7
#[test]
fn restore_json_reports_ok_every_table_and_the_phases() {
    let f = fixture();
    let w = work();
    let target = fresh_db("restore json");
    let out = restore(&w.archive, &target.url, &["--json"]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["ok"], true, "{report}");
    let tables = report["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), f.manifest.tables.len());
    for (t, m) in tables.iter().zip(&f.manifest.tables) {
        assert_eq!(t["table"], m.display().as_str());
        assert_eq!(
            (t["expected"].as_u64(), t["restored"].as_u64(), t["ok"].as_bool()),
            (Some(m.rows), Some(m.rows), Some(true))
        );
    }
    let phases: Vec<&str> =
        report["phases"].as_array().expect("phases").iter().map(|p| p[0].as_str().expect("phase name")).collect();
    assert_eq!(phases, ["verify", "schema", "data", "sequences", "constraints", "check", "commit", "analyze"]);
    assert!(report["phases"].as_array().unwrap().iter().all(|p| p[1].is_u64()), "{report}");
    assert_eq!(report["sequences"].as_u64(), Some(f.manifest.sequences.len() as u64));
}

// covers: FR-7.9, TS-2.3
#[test]
fn restore_with_parallel_jobs_loads_the_same_database_as_the_single_transaction_restore() {
    let f = fixture();
    let w = work();
    let target = fresh_db("restore jobs");
    let out = restore(&w.archive, &target.url, &["--jobs", "3", "--json"]);
    assert_exit(&out, 0);
    let phases: Vec<String> =
        json(&out)["phases"].as_array().unwrap().iter().map(|p| p[0].as_str().unwrap().to_string()).collect();
    assert!(phases.contains(&"parallel data".to_string()), "{phases:?}");
    assert_rows_match_source(&target, None);
    assert_same_schema(&target.url, &f.source.schema);
    assert_fks_and_sequences(&target);
}

// covers: FR-7.9, US-4/AC-3
#[test]
fn a_failed_parallel_restore_empties_the_target_and_says_so() {
    let f = fixture();
    let w = work();
    let csv = table(&f.manifest, "public.users").file.clone().unwrap();
    // The first user twice: every table loads, the primary key then fails.
    let duplicate = with_first_row_twice(&w, "duplicate_jobs.tar.gz", &csv);
    let target = fresh_db("restore jobs fails");
    let out = restore(&duplicate, &target.url, &["--jobs", "2"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    for expected in ["is duplicated", "emptied again", "--jobs"] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
    assert_eq!(user_objects(&target), 0, "the parallel restore left objects behind");
}

// covers: FR-7.9, US-4/AC-3
#[test]
fn a_parallel_load_that_fails_stops_the_restore_with_the_loaders_own_error() {
    let f = fixture();
    let w = work();
    let csv = table(&f.manifest, "public.users").file.clone().unwrap();
    // A consistent, signed archive whose users member has a record COPY
    // refuses: a loader (not the pass) meets the error, while it loads.
    let bad = crafted(&w, "bad_row_jobs.tar.gz", |c| {
        let data = c.data_mut(&csv);
        let row = first_record(data);
        data.splice(row, b"not-a-row".to_vec());
        c.refresh_table(&csv);
    });
    let target = fresh_db("restore jobs bad row");
    let out = restore(&bad, &target.url, &["--jobs", "2"]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    for expected in ["loading rows of public.users", "invalid input syntax", "emptied again"] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
    assert!(!err.contains("a parallel load failed"), "the loader's own error is the one shown:\n{err}");
    assert_eq!(user_objects(&target), 0, "the parallel restore left objects behind");
    let spools: Vec<_> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".lifeboat-spool-"))
        .collect();
    assert!(spools.is_empty(), "spool left behind: {spools:?}");
}

// covers: FR-7.2
#[test]
fn a_target_holding_only_types_or_functions_is_not_empty() {
    let w = work();
    let target = fresh_db("restore only types");
    target.exec("CREATE TYPE mood AS ENUM ('ok'); CREATE FUNCTION hello() RETURNS int LANGUAGE sql AS 'SELECT 1'");
    let out = restore(&w.archive, &target.url, &[]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("not empty") && err.contains("type mood") && err.contains("function hello"), "{err}");
    assert_exit(&restore(&w.archive, &target.url, &["--force"]), 0);
}

// covers: FR-7.4, FR-7.9
#[test]
fn restore_writes_the_rows_frozen_so_nothing_rewrites_the_restored_pages_later() {
    // COPY … FREEZE into the tables the restore's own transaction created:
    // every page is all-visible and all-frozen as loaded. A plain COPY
    // leaves the visibility map empty, and the first reads and VACUUMs
    // after the restore would rewrite every page to set hint bits.
    // With --jobs each loader truncates its table in its own transaction,
    // which lets COPY freeze there too.
    let w = work();
    for jobs in ["1", "2"] {
        let target = fresh_db(&format!("restore frozen {jobs}"));
        assert_exit(&restore(&w.archive, &target.url, &["--jobs", jobs]), 0);
        target.exec("CREATE EXTENSION pg_visibility");
        for table in ["public.credit_transactions", "public.users", "public.messages"] {
            let pages = target.query_one_i64(&format!(
                "SELECT (pg_relation_size('{table}') / current_setting('block_size')::int)::bigint"
            ));
            let frozen = target.query_one_i64(&format!("SELECT all_frozen FROM pg_visibility_map_summary('{table}')"));
            assert!(pages > 0 && frozen == pages, "--jobs {jobs}: {table}: {frozen} of {pages} pages frozen");
        }
    }
}
