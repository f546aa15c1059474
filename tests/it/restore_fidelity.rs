//! What a restore keeps besides rows: SQL members streamed statement by
//! statement in bounded memory (with a cap on one statement), SQL byte for
//! byte (`\r\n` in function bodies, comments, defaults, views), owners and
//! privileges with the role names in `database/roles.sql`, and
//! `--no-owner`. Every test makes its own small source database; roles are
//! cluster-wide, so they get unique names and are dropped at the end.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use crate::support::rss::run_measured;
use crate::support::{assert_exit, extract, json, members, sha256, stderr};
use crate::support::{connect, fresh_db, lifeboat, psql_file, schema_dump, server, toml_string, TestConfig, TestDb};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Roles made for one test (unique names), dropped when it ends. Declare
/// it before the databases: locals drop in reverse order, and a role can
/// only go once nothing of it is left in any database.
struct Roles(Vec<String>);

impl Roles {
    fn new(bases: &[&str]) -> Roles {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let names: Vec<String> = bases
            .iter()
            .map(|b| format!("lb_{b}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)))
            .collect();
        let mut admin = connect(&server().admin_url());
        for n in &names {
            admin.batch_execute(&format!("CREATE ROLE \"{n}\"")).unwrap_or_else(|e| panic!("CREATE ROLE {n}: {e}"));
        }
        Roles(names)
    }

    fn get(&self, i: usize) -> &str {
        &self.0[i]
    }

    fn drop_role(&self, name: &str) {
        connect(&server().admin_url()).batch_execute(&format!("DROP ROLE \"{name}\"")).expect("DROP ROLE");
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&server().admin_url(), postgres::NoTls) {
            for n in &self.0 {
                let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{n}\""));
            }
        }
    }
}

/// `lifeboat --json backup` of the database at `url` with the default scope (every table in
/// full) into `dir/backups`; `extra` goes into `[database]`. The archive.
fn backup(url: &str, dir: &Path, extra: &str) -> (PathBuf, Value) {
    let config = TestConfig::new(url, dir.join("backups")).database(extra).write(dir);
    let out = lifeboat()
        .args(["--config".as_ref(), config.as_os_str(), "--json".as_ref(), "backup".as_ref()])
        .current_dir(dir)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let report = json(&out);
    (PathBuf::from(report["archive"].as_str().expect("archive in the report")), report)
}

/// `lifeboat restore`, run in the archive's directory. An archive in its
/// store (`dir/backups`) is trusted by that store's key; a crafted copy
/// beside the config (`dir`) by the store the config names, as it is
/// re-signed with that store's key.
fn restore_cmd(archive: &Path, url: &str, extra: &[&str]) -> Command {
    let mut cmd = lifeboat();
    cmd.arg("restore").arg(archive).args(["--db", url]).args(extra).current_dir(archive.parent().unwrap());
    if !archive.parent().unwrap().join("lifeboat.toml").is_file() {
        cmd.args(["--trusted-key", &crate::support::its_store_key(archive)]);
    }
    cmd
}

fn restore(archive: &Path, url: &str, extra: &[&str]) -> Output {
    restore_cmd(archive, url, extra).output().expect("cannot run lifeboat")
}

/// Extracts the archive and runs its `database/restore.sql` with psql.
fn psql_restore(archive: &Path, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    extract(archive, dir.path());
    let out = psql_file(url, Path::new("database/restore.sql"), dir.path());
    assert!(out.status.success(), "psql -f database/restore.sql failed:\n{}", stderr(&out));
}

/// Owner and ACL of every schema, relation and function outside the system
/// schemas, one line each, sorted.
fn ownership(db: &TestDb) -> String {
    db.query_one_string(
        "SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') FROM ( \
           SELECT format('schema %s owner %s acl %s', nspname, nspowner::regrole, coalesce(nspacl::text, '-')) x \
             FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
              AND nspname NOT LIKE 'pg\\_temp%' AND nspname NOT LIKE 'pg\\_toast\\_temp%' \
           UNION ALL \
           SELECT format('%s %s owner %s acl %s', c.relkind, c.oid::regclass, c.relowner::regrole, coalesce(c.relacl::text, '-')) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
              AND n.nspname NOT LIKE 'pg\\_%' \
           UNION ALL \
           SELECT format('function %s owner %s acl %s', p.oid::regprocedure, p.proowner::regrole, coalesce(p.proacl::text, '-')) \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
           UNION ALL \
           SELECT format('default acl %s %s %s', defaclrole::regrole, defaclobjtype, defaclacl) FROM pg_default_acl \
         ) s",
    )
}

/// A source owned by `owner`, read by `reader`, with PUBLIC allowed to
/// create in `public` (the schema ACL a restore used to lose).
fn seed_owned(db: &TestDb, owner: &str, reader: &str) {
    db.exec(&format!(
        "CREATE TABLE public.accounts (id serial PRIMARY KEY, note text); \
         INSERT INTO public.accounts (note) VALUES ('a'), ('b'); \
         ALTER TABLE public.accounts OWNER TO \"{owner}\"; \
         GRANT SELECT, UPDATE (note) ON public.accounts TO \"{reader}\"; \
         GRANT USAGE ON SEQUENCE public.accounts_id_seq TO \"{reader}\"; \
         CREATE SCHEMA app AUTHORIZATION \"{owner}\"; \
         GRANT USAGE ON SCHEMA app TO \"{reader}\"; \
         CREATE TABLE app.items (id int PRIMARY KEY, account int REFERENCES public.accounts); \
         INSERT INTO app.items VALUES (1, 1); \
         ALTER TABLE app.items OWNER TO \"{owner}\"; \
         CREATE VIEW app.item_notes AS SELECT i.id, a.note FROM app.items i JOIN public.accounts a ON a.id = i.account; \
         ALTER VIEW app.item_notes OWNER TO \"{owner}\"; \
         REVOKE ALL ON app.item_notes FROM PUBLIC; GRANT SELECT ON app.item_notes TO \"{reader}\"; \
         CREATE FUNCTION app.touch() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
         ALTER FUNCTION app.touch() OWNER TO \"{owner}\"; \
         REVOKE EXECUTE ON FUNCTION app.touch() FROM PUBLIC; GRANT EXECUTE ON FUNCTION app.touch() TO \"{reader}\"; \
         ALTER DEFAULT PRIVILEGES FOR ROLE \"{owner}\" IN SCHEMA app GRANT SELECT ON TABLES TO \"{reader}\"; \
         GRANT CREATE ON SCHEMA public TO PUBLIC"
    ));
}

// covers: FR-7.11, FR-12.10, US-4/AC-11
#[test]
fn restore_keeps_owners_and_privileges_when_the_roles_exist() {
    let roles = Roles::new(&["owner", "reader"]);
    let (owner, reader) = (roles.get(0), roles.get(1));
    let source = fresh_db("fidelity owners source");
    seed_owned(&source, owner, reader);
    let expected = ownership(&source);
    assert!(expected.contains(&format!("owner {owner}")) && expected.contains("=UC/"), "{expected}");
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = backup(&source.url, dir.path(), "");

    // The roles the owners and grants need travel with the archive, listed
    // in the manifest and SHA256SUMS, without passwords.
    let all = members(&archive);
    let roles_sql =
        all.iter().find(|(p, _)| p == "database/roles.sql").map(|(_, d)| String::from_utf8_lossy(d).into_owned());
    let roles_sql = roles_sql.expect("database/roles.sql in the archive");
    assert!(
        roles_sql.contains(&format!("CREATE ROLE {owner};")) && roles_sql.contains(&format!("CREATE ROLE {reader};")),
        "{roles_sql}"
    );
    assert!(!roles_sql.to_uppercase().contains("PASSWORD '"), "{roles_sql}");
    let manifest: Value = serde_json::from_slice(&all.iter().find(|(p, _)| p == "manifest.json").unwrap().1).unwrap();
    assert!(manifest["members"].as_array().unwrap().iter().any(|m| m["path"] == "database/roles.sql"), "{manifest:#}");
    let sums = String::from_utf8_lossy(&all.iter().find(|(p, _)| p == "SHA256SUMS").unwrap().1).into_owned();
    assert!(sums.contains("  database/roles.sql\n"), "{sums}");
    let info = String::from_utf8_lossy(&all.iter().find(|(p, _)| p == "BACKUP_INFO.txt").unwrap().1).into_owned();
    assert!(info.contains("database/roles.sql") && info.contains("--no-owner"), "{info}");

    let by_lifeboat = fresh_db("fidelity owners lifeboat");
    let out = restore(&archive, &by_lifeboat.url, &["--json"]);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["roles_missing"], serde_json::json!([]));
    assert_eq!(ownership(&by_lifeboat), expected);

    let by_psql = fresh_db("fidelity owners psql");
    psql_restore(&archive, &by_psql.url);
    assert_eq!(ownership(&by_psql), expected);
    drop((by_lifeboat, by_psql, source));
}

// covers: FR-7.11, US-4/AC-11
#[test]
fn restore_without_a_role_on_the_target_skips_only_what_needs_it_and_names_it() {
    let roles = Roles::new(&["kept", "gone"]);
    let (kept, gone) = (roles.get(0), roles.get(1));
    let source = fresh_db("fidelity missing role source");
    source.exec(&format!(
        "CREATE TABLE kept_t (id int PRIMARY KEY); INSERT INTO kept_t VALUES (1), (2); \
         ALTER TABLE kept_t OWNER TO \"{kept}\"; GRANT SELECT ON kept_t TO \"{gone}\"; \
         CREATE TABLE gone_t (id int PRIMARY KEY, k int REFERENCES kept_t); INSERT INTO gone_t VALUES (7, 1); \
         ALTER TABLE gone_t OWNER TO \"{gone}\"; GRANT SELECT, INSERT ON gone_t TO \"{kept}\"; \
         GRANT CREATE ON SCHEMA public TO PUBLIC"
    ));
    let public_acl = source.query_one_string("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'");
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = backup(&source.url, dir.path(), "");
    drop(source);
    roles.drop_role(gone);

    let target = fresh_db("fidelity missing role target");
    let out = restore(&archive, &target.url, &["--json"]);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["roles_missing"], serde_json::json!([gone]));
    assert!(stderr(&out).contains(gone) && stderr(&out).contains("roles.sql"), "{}", stderr(&out));
    // Everything else is there: rows, the kept owner, grants to the kept
    // role, the schema ACL; what needed the missing role is left out.
    assert_eq!(target.count("kept_t"), 2);
    assert_eq!(target.count("gone_t"), 1);
    assert_eq!(target.query_one_string("SELECT relowner::regrole::text FROM pg_class WHERE relname = 'kept_t'"), kept);
    assert_eq!(
        target.query_one_string("SELECT relowner::regrole::text FROM pg_class WHERE relname = 'gone_t'"),
        "postgres"
    );
    assert_eq!(
        target.query_one_string(&format!(
            "SELECT has_table_privilege('{kept}', 'gone_t', 'SELECT')::text || has_table_privilege('{kept}', 'gone_t', 'INSERT')::text"
        )),
        "truetrue"
    );
    assert_eq!(target.query_one_string("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'"), public_acl);
    assert_eq!(target.query_one_i64("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated"), 1);

    // The text report says it too.
    let again = fresh_db("fidelity missing role text");
    let out = restore(&archive, &again.url, &[]);
    assert_exit(&out, 0);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains(&format!("role {gone} does not exist")), "{all}");
}

// covers: FR-7.11
#[test]
fn restore_no_owner_gives_everything_to_the_restoring_role_without_the_archives_grants() {
    let roles = Roles::new(&["owner", "reader"]);
    let source = fresh_db("fidelity no owner source");
    seed_owned(&source, roles.get(0), roles.get(1));
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = backup(&source.url, dir.path(), "");

    let target = fresh_db("fidelity no owner target");
    let untouched = target.query_one_string("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'");
    let out = restore(&archive, &target.url, &["--no-owner"]);
    assert_exit(&out, 0);
    let got = ownership(&target);
    for line in got.lines().filter(|l| !l.starts_with("schema public ")) {
        assert!(line.contains("owner postgres acl -"), "{line}\n{got}");
    }
    assert_eq!(target.query_one_string("SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'"), untouched);
    assert_eq!(target.count("public.accounts"), 2);
}

// covers: FR-12.10, SC-4.3
#[test]
fn a_read_only_backup_role_without_superuser_gets_roles_sql_too() {
    let roles = Roles::new(&["ro"]);
    let ro = roles.get(0);
    let source = fresh_db("fidelity read only roles");
    source.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); \
         ALTER ROLE \"{ro}\" LOGIN NOSUPERUSER; GRANT CONNECT ON DATABASE \"{}\" TO \"{ro}\"; \
         GRANT USAGE ON SCHEMA public TO \"{ro}\"; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{ro}\"",
        source.name
    ));
    let (scheme, rest) = source.url.split_once("://").unwrap();
    let as_ro = format!("{scheme}://{ro}@{}", rest.split_once('@').map_or(rest, |(_, r)| r));
    let dir = tempfile::tempdir().unwrap();
    let (archive, report) = backup(&as_ro, dir.path(), "");
    assert!(!report["warnings"].to_string().contains("roles.sql"), "{report:#}");
    let all = members(&archive);
    let roles_sql = &all.iter().find(|(p, _)| p == "database/roles.sql").expect("roles.sql").1;
    assert!(String::from_utf8_lossy(roles_sql).contains(&format!("CREATE ROLE {ro};")));
}

// covers: FR-12.10, NFR-6.3
#[test]
fn an_archive_without_roles_sql_still_verifies_and_restores() {
    let source = fresh_db("fidelity old archive source");
    source.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'x')");
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = backup(&source.url, dir.path(), "");
    // As written before roles.sql existed: no member, no manifest entry.
    let mut all: Vec<(String, Vec<u8>)> =
        members(&archive).into_iter().filter(|(p, _)| p != "database/roles.sql").collect();
    let m = all.iter_mut().find(|(p, _)| p == "manifest.json").unwrap();
    let mut manifest: Value = serde_json::from_slice(&m.1).unwrap();
    manifest["members"].as_array_mut().unwrap().retain(|x| x["path"] != "database/roles.sql");
    m.1 = serde_json::to_vec_pretty(&manifest).unwrap();
    crate::support::reseal_signed(&mut all, &dir.path().join("backups"));
    let old = dir.path().join("old.tar.gz");
    crate::support::write_archive(&old, &all);

    let target = fresh_db("fidelity old archive target");
    assert_exit(&restore(&old, &target.url, &[]), 0);
    assert_eq!(target.count("t"), 1);
}

// covers: FR-12.10
#[test]
fn backup_without_pg_dumpall_warns_and_leaves_roles_sql_out() {
    let source = fresh_db("fidelity no pg_dumpall");
    source.exec("CREATE TABLE t (id int PRIMARY KEY)");
    let dir = tempfile::tempdir().unwrap();
    // A pg_dump whose directory has no pg_dumpall next to it.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(crate::support::pg_bin("pg_dump"), bin.join("pg_dump")).unwrap();
    let extra = format!("pg_dump = {}", toml_string(&bin.join("pg_dump").to_string_lossy()));
    let (archive, report) = backup(&source.url, dir.path(), &extra);
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("pg_dumpall") && warnings.contains("roles.sql"), "{report:#}");
    assert!(!members(&archive).iter().any(|(p, _)| p == "database/roles.sql"));
    let target = fresh_db("fidelity no pg_dumpall target");
    assert_exit(&restore(&archive, &target.url, &[]), 0);
}

/// Function body, comments, a column default and a view, each with `\r\n`
/// inside: md5 of each, one line per object.
fn crlf_objects(db: &TestDb) -> String {
    db.query_one_string(
        "SELECT concat_ws(E'\\n', \
           'body ' || (SELECT md5(prosrc) FROM pg_proc WHERE proname = 'crlf_fn'), \
           'fn comment ' || md5(obj_description('crlf_fn()'::regprocedure, 'pg_proc')), \
           'table comment ' || md5(obj_description('crlf_t'::regclass, 'pg_class')), \
           'default ' || (SELECT md5(pg_get_expr(adbin, adrelid)) FROM pg_attrdef WHERE adrelid = 'crlf_t'::regclass), \
           'view ' || md5(pg_get_viewdef('crlf_v'::regclass)))",
    )
}

// covers: FR-7.5, FR-12.3, US-4/AC-1
#[test]
fn schema_sql_keeps_crlf_byte_for_byte_through_both_restore_paths() {
    let source = fresh_db("fidelity crlf source");
    source.exec(
        "CREATE FUNCTION crlf_fn() RETURNS text LANGUAGE plpgsql AS E'BEGIN\\r\\n  RETURN ''a\\r\\nb'';\\r\\nEND'; \
         COMMENT ON FUNCTION crlf_fn() IS E'first line\\r\\nsecond line'; \
         CREATE TABLE crlf_t (id int PRIMARY KEY, note text DEFAULT E'x\\r\\ny'); \
         COMMENT ON TABLE crlf_t IS E'table\\r\\ncomment'; \
         INSERT INTO crlf_t (id) VALUES (1); \
         CREATE VIEW crlf_v AS SELECT E'p\\r\\nq'::text AS t",
    );
    let expected = crlf_objects(&source);
    assert_eq!(source.query_one_string("SELECT crlf_fn()"), "a\r\nb");
    let dir = tempfile::tempdir().unwrap();
    let (archive, _) = backup(&source.url, dir.path(), "");
    let schema = members(&archive).into_iter().find(|(p, _)| p == "database/schema.sql").unwrap().1;
    assert!(schema.windows(2).any(|w| w == b"\r\n"), "pg_dump wrote the \\r\\n into schema.sql");

    let by_lifeboat = fresh_db("fidelity crlf lifeboat");
    assert_exit(&restore(&archive, &by_lifeboat.url, &[]), 0);
    assert_eq!(crlf_objects(&by_lifeboat), expected);
    assert_eq!(by_lifeboat.query_one_string("SELECT crlf_fn()"), "a\r\nb");
    assert_eq!(by_lifeboat.query_one_string("SELECT note FROM crlf_t"), "x\r\ny");
    assert_eq!(schema_dump(&by_lifeboat.url), schema_dump(&source.url));

    let by_psql = fresh_db("fidelity crlf psql");
    psql_restore(&archive, &by_psql.url);
    assert_eq!(crlf_objects(&by_psql), expected);
    assert_eq!(schema_dump(&by_psql.url), schema_dump(&source.url));
}

/// `schema.sql` as `head`, then `count` statements made by `statement(i)`,
/// generated on the fly: the test never holds the member in memory.
struct Generated<'a> {
    head: Vec<u8>,
    count: usize,
    statement: &'a dyn Fn(usize) -> Vec<u8>,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a> Generated<'a> {
    fn new(head: Vec<u8>, count: usize, statement: &'a dyn Fn(usize) -> Vec<u8>) -> Self {
        Generated { buf: head.clone(), head, count, statement, next: 0, pos: 0 }
    }

    fn again(&self) -> Self {
        Generated::new(self.head.clone(), self.count, self.statement)
    }
}

impl Read for Generated<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.next == self.count {
                return Ok(0);
            }
            self.buf = (self.statement)(self.next);
            self.pos = 0;
            self.next += 1;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A real backup of a one-table database whose `schema.sql` is replaced by
/// `schema` (streamed), with manifest.json and SHA256SUMS made to agree,
/// so `verify` passes and only the restore can object.
fn archive_with_schema<'g>(dir: &Path, schema: &mut dyn FnMut() -> Box<dyn Read + 'g>) -> PathBuf {
    let source = fresh_db("fidelity big schema source");
    source.exec("CREATE TABLE big_t (id int PRIMARY KEY); INSERT INTO big_t VALUES (1), (2), (3)");
    let (archive, _) = backup(&source.url, dir, "");
    let mut all = members(&archive);

    let (mut hasher, mut len) = (<sha2::Sha256 as sha2::Digest>::new(), 0u64);
    let mut r = schema();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut hasher, &buf[..n]);
        len += n as u64;
    }
    drop(r);
    let sha = format!("{:x}", sha2::Digest::finalize(hasher));
    let m = all.iter_mut().find(|(p, _)| p == "manifest.json").unwrap();
    let mut manifest: Value = serde_json::from_slice(&m.1).unwrap();
    for e in manifest["members"].as_array_mut().unwrap() {
        if e["path"] == "database/schema.sql" {
            e["sha256"] = sha.clone().into();
            e["bytes"] = len.into();
        }
    }
    m.1 = serde_json::to_vec_pretty(&manifest).unwrap();
    let sums: String = all
        .iter()
        .filter(|(p, _)| p != "SHA256SUMS" && p != "SHA256SUMS.minisig")
        .map(|(p, d)| format!("{}  {p}\n", if p == "database/schema.sql" { sha.clone() } else { sha256(d) }))
        .collect();
    // Signed again with the store's own key, and kept in the store: the
    // archive is trusted, so only the restore itself can object.
    let store = archive.parent().unwrap();
    let signature = crate::support::sign_sums(sums.as_bytes(), store);
    all.iter_mut().find(|(p, _)| p == "SHA256SUMS").unwrap().1 = sums.into_bytes();
    all.iter_mut().find(|(p, _)| p == "SHA256SUMS.minisig").unwrap().1 = signature;

    let path = store.join("big_schema.tar.gz");
    let f = std::fs::File::create(&path).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast()));
    for (name, data) in &all {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        if name == "database/schema.sql" {
            h.set_size(len);
            b.append_data(&mut h, name, schema()).unwrap();
        } else {
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
    }
    b.into_inner().unwrap().finish().unwrap();
    path
}

const MIB: usize = 1 << 20;

// covers: FR-7.12, PR-5
#[test]
fn restore_streams_a_large_schema_sql_statement_by_statement_in_bounded_memory() {
    // 128 MiB of SQL in 1 MiB statements: read whole (as it used to be),
    // that is several hundred MiB of RSS; streamed, a few MiB.
    let head = b"SET client_min_messages = warning;\nCREATE TABLE public.big_t (id integer NOT NULL);\n".to_vec();
    let statement = |i: usize| {
        let mut s = format!("-- statement {i}\nCOMMENT ON TABLE public.big_t IS '").into_bytes();
        s.resize(s.len() + MIB, b'x');
        s.extend_from_slice(b"';\n");
        s
    };
    let g = Generated::new(head, 128, &statement);
    let dir = tempfile::tempdir().unwrap();
    let archive = archive_with_schema(dir.path(), &mut || Box::new(g.again()));
    assert!(std::fs::metadata(&archive).unwrap().len() < 8 * MIB as u64, "the archive itself is small");

    let target = fresh_db("fidelity big schema target");
    let run = run_measured(&restore_cmd(&archive, &target.url, &[]));
    assert_exit(&run.output, 0);
    assert_eq!(target.count("big_t"), 3);
    assert_eq!(target.query_one_i64("SELECT length(obj_description('big_t'::regclass, 'pg_class'))"), MIB as i64);
    eprintln!("restore peaked at {} MiB", run.peak_rss_mib());
    assert!(run.peak_rss_mib() < 100, "restore peaked at {} MiB for a 128 MiB schema.sql", run.peak_rss_mib());
}

// covers: FR-7.12, FR-22.8
#[test]
fn restore_refuses_one_statement_over_the_limit_naming_the_member_and_the_limit() {
    // One 96 MiB statement: over the 16 MiB cap. Refused, in bounded
    // memory (under 64 MiB, as for every hostile archive), before anything
    // reaches the server: a string literal, and one huge identifier (which
    // psql's BEGIN … END heuristic once copied word by word, doubling it).
    let literal = |_: usize| {
        let mut s = b"COMMENT ON TABLE public.big_t IS '".to_vec();
        s.resize(s.len() + 96 * MIB, b'y');
        s.extend_from_slice(b"';\n");
        s
    };
    let identifier = |_: usize| {
        let mut s = b"SELECT ".to_vec();
        s.resize(s.len() + 96 * MIB, b'y');
        s.extend_from_slice(b";\n");
        s
    };
    let statements: [&dyn Fn(usize) -> Vec<u8>; 2] = [&literal, &identifier];
    for statement in statements {
        let head = b"CREATE TABLE public.big_t (id integer NOT NULL);\n".to_vec();
        let g = Generated::new(head, 1, statement);
        let dir = tempfile::tempdir().unwrap();
        let archive = archive_with_schema(dir.path(), &mut || Box::new(g.again()));
        let verified = lifeboat()
            .arg("verify")
            .arg(&archive)
            .args(["--trusted-key", &crate::support::its_store_key(&archive)])
            .output()
            .unwrap();
        assert_exit(&verified, 0);

        let target = fresh_db("fidelity huge statement target");
        let run = run_measured(&restore_cmd(&archive, &target.url, &[]));
        assert_exit(&run.output, 1);
        let err = stderr(&run.output);
        for expected in ["database/schema.sql", "16 MiB", "line 2", "rolled back"] {
            assert!(err.contains(expected), "{expected:?} not in:\n{err}");
        }
        assert!(err.len() < 4096, "the statement is not echoed: {} bytes of stderr", err.len());
        eprintln!("restore peaked at {} MiB", run.peak_rss_mib());
        assert!(run.peak_rss_mib() < 64, "restore peaked at {} MiB refusing a 96 MiB statement", run.peak_rss_mib());
        assert_eq!(target.query_one_string("SELECT coalesce(to_regclass('public.big_t')::text, 'absent')"), "absent");
    }
}
