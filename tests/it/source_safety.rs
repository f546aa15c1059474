//! What a backup may and may not do to the source database: a role that can
//! only read is enough, row-level security fails loudly instead of silently
//! dropping rows, and server-side idle timeouts do not kill the snapshot.

use crate::support;
use crate::support::{assert_exit, run, stderr, Seeded};

/// A login role that can read everything in `db` and write nothing.
struct Reader {
    name: String,
    db_url: String,
}

impl Reader {
    fn create(s: &Seeded) -> Reader {
        let name = format!("{}_reader", s.db.name);
        s.db.exec(&format!(
            "CREATE ROLE {name} LOGIN; GRANT CONNECT ON DATABASE \"{db}\" TO {name}; GRANT USAGE ON SCHEMA public TO {name}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name}; GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}",
            db = s.db.name
        ));
        Reader { name, db_url: s.db.url.clone() }
    }

    fn config(&self, s: &Seeded) {
        let url = s.db.url.replacen("postgres@", &format!("{}@", self.name), 1);
        assert_ne!(url, s.db.url);
        let toml = support::saas_config(&url, &s.storage());
        std::fs::write(&s.config, toml).unwrap();
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Its grants live in the test database; the role itself in the cluster.
        if let Ok(mut c) = postgres::Client::connect(&self.db_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP OWNED BY {}", self.name));
        }
        if let Ok(mut c) = postgres::Client::connect(&support::server().admin_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
        }
    }
}

// covers: FR-14.1, US-11/AC-3, SC-4.3, SC-7, FR-8.2
#[test]
fn a_role_that_can_only_read_takes_a_complete_backup_and_writes_nothing() {
    let s = Seeded::new("readonly");
    let reader = Reader::create(&s);
    reader.config(&s);
    let before = support::all_fingerprints(&s.db.url, "true");
    let report = s.backup();
    assert_eq!(report["tables"].as_array().unwrap().len(), 22);
    // The closure ran too, with read-only queries in the READ ONLY snapshot (no temp tables).
    assert!(report["closure_rows"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(support::all_fingerprints(&s.db.url, "true"), before);
}

// covers: FR-14.6, US-11/AC-4
#[test]
fn row_level_security_that_would_hide_rows_fails_the_backup_loudly() {
    let s = Seeded::new("rls");
    let reader = Reader::create(&s);
    reader.config(&s);
    s.db.exec(
        "ALTER TABLE feature_flags ENABLE ROW LEVEL SECURITY; CREATE POLICY hide_all ON feature_flags USING (false)",
    );
    let o = run(&["--config", s.config.to_str().unwrap(), "backup"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("row-level security") && err.contains("feature_flags"), "{err}");
    assert!(s.stored().is_empty(), "{:?}", s.stored());
}

// covers: FR-14.5
#[test]
fn a_server_idle_in_transaction_timeout_does_not_kill_the_snapshot() {
    let s = Seeded::new("idle");
    // While pg_dump works, the snapshot session sits idle in its transaction.
    s.db.exec(&format!("ALTER DATABASE \"{}\" SET idle_in_transaction_session_timeout = '50ms'", s.db.name));
    let report = s.backup();
    assert_eq!(report["tables"].as_array().unwrap().len(), 22);
}

// covers: FR-14.15
#[test]
fn a_waiting_snapshot_connection_is_kept_alive_and_one_left_idle_is_ended_by_the_server() {
    use std::time::{Duration, Instant};
    let db = support::fresh_db("idle_limit");
    db.exec("CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    // stall_timeout 1 s: the server ends a session idle in its transaction after 1 s + 5 s.
    let text = format!("[database]\nurl = {}\nstall_timeout = \"1s\"\n", support::toml_string(&db.url));
    let config = lifeboat::config::resolve(
        Some((std::path::Path::new("lifeboat.toml"), &text)),
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    let cancel = lifeboat::events::CancelToken::new();
    let mut kept = lifeboat::pg::Snapshot::open(&config.database, &cancel).unwrap();
    let mut left = lifeboat::pg::Snapshot::open(&config.database, &cancel).unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(9) {
        kept.keep_alive().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let n: i64 = kept.client.query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(n, 1, "the kept connection still reads its snapshot");
    assert!(left.client.query_one("SELECT 1", &[]).is_err(), "the server ended the idle one");
    let alive = db.query_one_i64(&format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {}", left.session.pid));
    assert_eq!(alive, 0);
    kept.close().unwrap();
}

// covers: FR-14.15, FR-14.4
#[test]
fn a_healthy_run_whose_snapshot_connection_waits_longer_than_the_server_limit_succeeds() {
    let db = support::fresh_db("long_wait");
    db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)");
    let dir = tempfile::tempdir().unwrap();
    // A real pg_dump behind a wrapper whose pre-data section first writes a
    // SQL comment line every 0.5 s for 11 s: progress for the watchdog
    // (stall_timeout 3 s) while the snapshot connection waits longer than the
    // server's idle limit (3 s + 5 s) before pg_dump even imports the snapshot.
    let wrapper = dir.path().join("pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/bash\ncase \"$*\" in *pre-data*) for i in $(seq 22); do echo \"-- held $i\"; sleep 0.5; done ;; esac\nexec '{}' \"$@\"\n",
            support::pg_bin("pg_dump").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = support::TestConfig::new(&db.url, dir.path().join("b"))
        .database("stall_timeout = \"3s\"")
        .database(format!("pg_dump = {}", support::toml_string(&wrapper.to_string_lossy())))
        .write(dir.path());
    let started = std::time::Instant::now();
    let o = run(&["--config", config.to_str().unwrap(), "--json", "backup"]);
    assert_exit(&o, 0);
    assert!(started.elapsed() > std::time::Duration::from_secs(11), "the wrapper held pre-data");
    assert_eq!(support::json(&o)["rows"], 100, "{}", stderr(&o));
}

// covers: FR-10.3, FR-2.4
#[test]
fn with_default_schema_an_unnamed_table_keeps_only_its_structure_and_says_so() {
    let s = Seeded::new("default_schema");
    let o = support::lifeboat()
        .args(["--config", s.config.to_str().unwrap(), "--json", "plan"])
        .env("LIFEBOAT_SCOPE__DEFAULT", "schema")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let plan = support::json(&o);
    let ff = plan["tables"].as_array().unwrap().iter().find(|t| t["name"] == "feature_flags").unwrap();
    assert_eq!((ff["mode"].as_str(), ff["unclassified"].as_bool()), (Some("schema"), Some(true)));
    let w: Vec<&str> = plan["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert!(w.iter().any(|w| w.contains("feature_flags") && w.contains("schema-only")), "{w:?}");
}

// covers: FR-11.7, SC-4.1, SC-4.2, TS-2.12
#[test]
fn a_password_authenticated_backup_at_trace_level_never_shows_the_password() {
    // The shared test server trusts everyone, so no password would ever be
    // sent; this cluster demands SCRAM for the backup role.
    let secret = "Zq9-trace-level-secret";
    let cluster = support::Cluster::with_password_role(secret, &["app"]);
    support::connect(&cluster.url("app"))
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://lb_pw@127.0.0.1:{}/app", cluster.port());
    let config = support::write_config(
        dir.path(),
        &format!("[storage]\ndir = {}\n", support::toml_string(&dir.path().join("b").to_string_lossy())),
    );
    let run_with = |password: &str| {
        support::lifeboat()
            .args(["--config", config.to_str().unwrap(), "-v", "--json", "backup"])
            .env("DATABASE_URL", &url)
            .env("POSTGRES_PASSWORD", password)
            .env("LIFEBOAT_LOG", "trace")
            .output()
            .unwrap()
    };
    let ok = run_with(secret);
    assert_exit(&ok, 0);
    let wrong = run_with("Zq9-wrong-password");
    assert_exit(&wrong, 2);
    assert!(stderr(&wrong).contains("password authentication failed"), "{}", stderr(&wrong));
    for o in [&ok, &wrong] {
        let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
        assert!(!all.contains("Zq9"), "a password leaked:\n{all}");
    }
}

/// Runs the shipped scripts/backup-role.sql with psql, as the docs say,
/// connected to `url` as a superuser; `vars` are its `-v NAME=VALUE`s.
fn backup_role_sql(url: &str, vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = support::clean_command(support::pg_bin("psql"));
    cmd.args(["-X", "-v", "ON_ERROR_STOP=1", "-d", url]);
    for (k, v) in vars {
        cmd.arg("-v").arg(format!("{k}={v}"));
    }
    cmd.arg("-f").arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/backup-role.sql"));
    cmd.output().expect("cannot run psql")
}

// covers: SC-4.3, FR-14.1, US-11/AC-3
#[test]
fn the_shipped_role_script_makes_a_role_that_backs_up_rehearses_and_sees_tables_added_later() {
    let s = Seeded::new("role_sql");
    let name = format!("{}_lb", s.db.name);
    // The Drop of Reader removes the role and its grants.
    let _reader = Reader { name: name.clone(), db_url: s.db.url.clone() };
    let secret = s.dir.path().join("db_password");
    std::fs::write(&secret, "Rl-backup-Pa55-91c2\n").unwrap();
    let file = secret.to_str().unwrap();

    // Without a role or a password it stops before doing anything.
    let o = backup_role_sql(&s.db.url, &[("password_file", file)]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("division by zero") || !o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("name the role"), "{o:?}");
    let o = backup_role_sql(&s.db.url, &[("role", &name)]);
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("give its password"), "{o:?}");

    let o = backup_role_sql(&s.db.url, &[("role", &name), ("password_file", file)]);
    assert_exit(&o, 0);
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(!all.contains("Rl-backup"), "the password is not echoed:\n{all}");
    let mut admin = postgres::Client::connect(&support::server().admin_url(), postgres::NoTls).unwrap();
    let row = admin
        .query_one(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolpassword IS NOT NULL, \
                    pg_has_role(rolname, 'pg_read_all_data', 'USAGE') \
             FROM pg_authid WHERE rolname = $1",
            &[&name],
        )
        .unwrap();
    let attrs: Vec<bool> = (0..8).map(|i| row.get(i)).collect();
    assert_eq!(attrs, [true, false, false, false, false, false, true, true], "login, read-all, nothing more");

    // A table a migration adds after the grant is read all the same.
    s.db.exec("CREATE TABLE added_after_grant (id int PRIMARY KEY, note text); INSERT INTO added_after_grant VALUES (1, 'a'), (2, 'b')");
    let url = s.db.url.replacen("postgres@", &format!("{name}@"), 1);
    assert_ne!(url, s.db.url);
    std::fs::write(&s.config, support::saas_config(&url, &s.storage())).unwrap();
    let before = support::all_fingerprints(&s.db.url, "true");
    let report = s.backup();
    let added = report["tables"].as_array().unwrap().iter().find(|t| t["name"] == "added_after_grant");
    assert_eq!(added.map(|t| &t["rows"]), Some(&serde_json::json!(2)), "{report}");
    assert_eq!(support::all_fingerprints(&s.db.url, "true"), before, "the backup wrote nothing");
    // It cannot write.
    let mut as_role = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let err = as_role.batch_execute("INSERT INTO added_after_grant VALUES (3, 'c')").unwrap_err();
    assert_eq!(err.code(), Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "{err}");

    // A rehearsal needs CREATEDB: refused without `-v rehearsal=1`, and a
    // second run of the script with it is all it takes.
    let archive = report["archive"].as_str().unwrap().to_string();
    let server = url.rsplit_once('/').unwrap().0.to_string() + "/postgres";
    let rehearse = || {
        run(&["--config", s.config.to_str().unwrap(), "--json", "verify", "-v", &archive, "--restore-test", &server])
    };
    let o = rehearse();
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("CREATEDB"), "{}", stderr(&o));
    assert_exit(&backup_role_sql(&s.db.url, &[("role", &name), ("password_file", file), ("rehearsal", "1")]), 0);
    let o = rehearse();
    assert_exit(&o, 0);
    let rehearsal = support::json(&o);
    assert_eq!(
        (&rehearsal["ok"], &rehearsal["tables"]),
        (&serde_json::json!(true), &serde_json::json!(23)),
        "{rehearsal}"
    );
    assert!(stderr(&o).contains("without the archive's owners"), "{}", stderr(&o));
}
