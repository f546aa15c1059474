//! Errors whose next step matches what went wrong: a missing database, a
//! refused password, an unknown host each say what to do about it, not
//! "check that the server is running".

use crate::support::{self, Cluster};
use crate::support::{assert_exit, stderr};

/// `lifeboat plan` in an empty directory against `url`.
fn plan(url: &str, env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = support::lifeboat();
    cmd.args(["plan", "--database-url", url]).current_dir(dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

// covers: FR-14.10, FR-24.1
#[test]
fn connection_errors_name_the_next_step_for_what_went_wrong() {
    let cluster = Cluster::with_password_role("Right-pw-1", &["app"]);
    let port = cluster.port();

    // The database does not exist: create it, not "is the server running".
    let o = plan(&format!("postgres://lb_pw@127.0.0.1:{port}/no_such_db"), &[("PGPASSWORD", "Right-pw-1")]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains(&format!("createdb -h 127.0.0.1 -p {port} -U lb_pw no_such_db")), "{err}");
    assert!(!err.contains("server is running"), "{err}");

    // A refused password: set the right one.
    let o = plan(&format!("postgres://lb_pw@127.0.0.1:{port}/app"), &[("PGPASSWORD", "Zq9-wrong")]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("the server refused the password of role \"lb_pw\": set the right password in"), "{err}");
    assert!(!err.contains("server is running") && !err.contains("Zq9"), "{err}");

    // No password at all: where to put one.
    let o = plan(&format!("postgres://lb_pw@127.0.0.1:{port}/app"), &[]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("or in ~/.pgpass"), "{}", stderr(&o));

    // The server is down: that one still says so.
    let o = plan("postgres://lb_pw@127.0.0.1:1/app", &[]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("check that the server is running"), "{}", stderr(&o));

    // An unknown host (here: what an unencoded character in the password
    // would leave as the host): percent-encode.
    let o = plan("postgres://lb_pw@no-such-host.invalid:5432/app", &[]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("the host name \"no-such-host.invalid\" is unknown here"), "{err}");
    assert!(err.contains("percent-encode it (@ is %40, # is %23"), "{err}");
}

// covers: FR-11.6, FR-14.10
#[test]
fn the_source_password_comes_from_pgpass_when_nothing_else_sets_one() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::with_password_role("Pgpass-pw-7", &["app"]);
    let dir = tempfile::tempdir().unwrap();
    let pgpass = dir.path().join("pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{}:app:lb_pw:Pgpass-pw-7\n", cluster.port())).unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let url = format!("postgres://lb_pw@127.0.0.1:{}/app", cluster.port());
    let o = plan(&url, &[("PGPASSFILE", pgpass.to_str().unwrap())]);
    assert_exit(&o, 0);
    // Through HOME, as libpq does.
    std::fs::rename(&pgpass, dir.path().join(".pgpass")).unwrap();
    let o = plan(&url, &[("HOME", dir.path().to_str().unwrap())]);
    assert_exit(&o, 0);
    // A password set elsewhere wins, as with libpq: the wrong one is refused.
    let o = plan(&url, &[("HOME", dir.path().to_str().unwrap()), ("PGPASSWORD", "Zq9-wrong")]);
    assert_exit(&o, 2);
    assert!(!stderr(&o).contains("Pgpass-pw-7") && !stderr(&o).contains("Zq9"), "{}", stderr(&o));
}

/// `[email]` for a server on `port` (implicit TLS) trusting `ca`, with `extra` keys.
fn email_config(dir: &std::path::Path, port: u16, ca: Option<&std::path::Path>, extra: &str) -> std::path::PathBuf {
    let ca = ca.map(|c| format!("ca_file = {}\n", support::toml_string(&c.to_string_lossy()))).unwrap_or_default();
    support::write_config(
        dir,
        &format!(
            "[email]\nsmtp_host = \"localhost\"\nsmtp_port = {port}\ntls = \"tls\"\nusername = \"u@example.test\"\n\
             password = \"pw-77\"\nfrom = \"b <u@example.test>\"\nto = [\"a@example.test\"]\n{ca}{extra}\n"
        ),
    )
}

fn test_email(config: &std::path::Path) -> (std::process::Output, std::time::Duration) {
    let started = std::time::Instant::now();
    let o = support::lifeboat().args(["--config", config.to_str().unwrap(), "test-email"]).output().unwrap();
    (o, started.elapsed())
}

// covers: FR-3.10
#[test]
fn test_email_makes_one_quick_attempt_whatever_the_retry_settings() {
    let dir = tempfile::tempdir().unwrap();
    let closed = support::smtp::free_port();
    let config = email_config(dir.path(), closed, None, "attempts = 4\nbackoff = \"30s\"\ntimeout = \"5 minutes\"");
    let (o, took) = test_email(&config);
    assert_exit(&o, 1);
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("NOT delivered") && out.contains("after 1 attempt(s)"), "{out}");
}

// covers: FR-3.8, FR-24.1
#[test]
fn smtp_certificate_problems_are_told_in_plain_words() {
    use crate::support::smtp::{self, Mode, SmtpOptions, SmtpServer, TestCa};
    if !smtp::aiosmtpd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let start = |cert: &std::path::Path, key: &std::path::Path| {
        SmtpServer::start(&SmtpOptions {
            mode: Mode::Tls,
            port: 0,
            cert: Some((cert, key)),
            user: "u@example.test",
            password: "pw-77",
            refuse: &[],
        })
    };
    let fails_with = |port: u16, ca: Option<&std::path::Path>, words: &str| {
        let (o, _) = test_email(&email_config(dir.path(), port, ca, ""));
        assert_exit(&o, 1);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(words), "want {words:?} in:\n{out}");
        assert!(!out.contains("pw-77"), "{out}");
    };

    // Self-signed with CA:TRUE (what `openssl req -x509` makes), trusted as its own CA.
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.path().join("self.crt"), dir.path().join("self.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let server = start(&cert_file, &key_file);
    fails_with(server.port, Some(&cert_file), "the server's certificate is self-signed and marked as a CA");
    drop(server);

    // A private CA the client was not told about.
    let ca = TestCa::new();
    let (c, k) = ca.server_cert(&["localhost"]);
    let server = start(&c, &k);
    fails_with(server.port, None, "not issued by a trusted CA: set [email] ca_file");
    drop(server);

    // A certificate for another name.
    let (c, k) = ca.server_cert(&["mail.other.example"]);
    let server = start(&c, &k);
    fails_with(server.port, Some(&ca.ca_file), "the server's certificate is for another name, not localhost");
}

// covers: FR-12.7, FR-24.2
#[test]
fn an_unwritable_storage_directory_is_refused_before_the_database_is_contacted() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let root = rustix::process::geteuid().is_root();
    let dir = tempfile::tempdir().unwrap();
    // Root may write anywhere: run as nobody then, in a directory root owns.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(if root { 0o755 } else { 0o555 })).unwrap();
    for storage in [dir.path().to_path_buf(), dir.path().join("not/yet")] {
        let mut cmd = support::lifeboat();
        // Nothing listens on port 1: a run that tried the database first
        // would fail there instead.
        cmd.args(["backup"])
            .env("DATABASE_URL", "postgres://u@127.0.0.1:1/app")
            .env("LIFEBOAT_STORAGE__DIR", &storage)
            .current_dir("/");
        if root {
            cmd.uid(65534).gid(65534);
        }
        let o = cmd.output().unwrap();
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(err.contains("is not writable by the user lifeboat runs as"), "{err}");
        assert!(err.contains("point storage.dir (or --output-dir) at a directory it can write"), "{err}");
        assert!(!err.contains("cannot connect"), "{err}");
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

// covers: FR-9.3, FR-24.1
#[test]
fn a_misspelt_table_name_is_answered_with_the_name_meant() {
    let db = support::fresh_db("hints_typo");
    support::seed_saas(&db);
    let toml = support::saas_config(&db.url, std::path::Path::new("/tmp/unused"))
        .replace("\"sessions\"]", "\"sessions\", \"point_transaction\"]");
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), &toml);
    let o = crate::support::run(&["--config", config.to_str().unwrap(), "plan"]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("table public.point_transaction (scope: "), "{err}");
    assert!(err.contains("does not exist in the database; did you mean public.point_transactions?"), "{err}");
    assert!(!err.contains("more)"), "{err}");
}

// covers: FR-11.1, FR-24.2
#[test]
fn with_no_database_configured_anywhere_nothing_is_tried_and_the_ways_are_named() {
    let cwd = tempfile::tempdir().unwrap();
    for cmd in ["plan", "backup"] {
        let o = support::lifeboat().arg(cmd).current_dir(cwd.path()).output().unwrap();
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(err.contains("no database is configured: set DATABASE_URL"), "{cmd}: {err}");
        assert!(err.contains("--database-url") && err.contains("lifeboat init"), "{cmd}: {err}");
        assert!(!err.contains("localhost:5432"), "{cmd}: {err}");
    }
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "nothing written");
    // Any one setting names it: the run then tries that database.
    let o = support::lifeboat().arg("plan").env("PGPORT", "1").current_dir(cwd.path()).output().unwrap();
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("cannot connect to PostgreSQL at localhost:1/postgres"), "{}", stderr(&o));
}

// covers: FR-11.1, FR-24.2
#[test]
fn a_database_without_tables_fails_the_backup_instead_of_archiving_nothing() {
    let db = support::fresh_db("hints_empty");
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("b");
    let o = support::lifeboat()
        .args(["backup", "--database-url", &db.url, "--output-dir", storage.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("has no tables") && err.contains("nothing to back up"), "{err}");
    assert!(crate::support::stored_in(&storage).is_empty(), "no archive of nothing");
}

// covers: FR-7.1, FR-14.10
#[test]
fn restore_create_makes_a_missing_target_and_without_it_the_error_says_so() {
    let s = crate::support::Seeded::new("hints_create_src");
    let archive = std::path::PathBuf::from(s.backup()["archive"].as_str().unwrap().to_string());
    let name = format!("hints_created_{}", std::process::id());
    let admin = support::server().admin_url();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let key = s.storage().join(".lifeboat/signing.pub");
    let restore = |extra: &[&str]| {
        support::lifeboat()
            .args(["restore", archive.to_str().unwrap(), "--db", &url, "--trusted-key", key.to_str().unwrap()])
            .args(extra)
            .current_dir(archive.parent().unwrap())
            .output()
            .unwrap()
    };
    let o = restore(&[]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("does not exist on that server: create it (createdb "), "{}", stderr(&o));
    assert!(stderr(&o).contains("or add --create to the restore"), "{}", stderr(&o));

    let o = restore(&["--create"]);
    assert_exit(&o, 0);
    let mut target = support::connect(&url);
    let users: i64 = target.query_one("SELECT count(*) FROM public.users", &[]).unwrap().get(0);
    assert!(users > 0);
    let owner: String = target
        .query_one("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = current_database()", &[])
        .unwrap()
        .get(0);
    assert_eq!(owner, target.query_one("SELECT current_user::text", &[]).unwrap().get::<_, String>(0));
    drop(target);
    // It exists now, with tables: --create leaves it, and the usual refusal holds.
    let o = restore(&["--create"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("is not empty"), "{}", stderr(&o));
    let _ = support::connect(&admin).batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"));
}

// covers: FR-14.1, FR-24.1
#[test]
fn a_role_that_may_not_read_a_table_is_told_the_grant_that_fixes_it() {
    let db = support::fresh_db("hints_noread");
    db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
    let role = format!("{}_noread", db.name);
    db.exec(&format!(
        "CREATE ROLE {role} LOGIN; GRANT CONNECT ON DATABASE \"{}\" TO {role}; GRANT USAGE ON SCHEMA public TO {role}",
        db.name
    ));
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    let dir = tempfile::tempdir().unwrap();
    let o = support::lifeboat()
        .args(["backup", "--database-url", &url, "--output-dir", dir.path().join("b").to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    db.exec(&format!("DROP OWNED BY {role}"));
    let _ = support::connect(&support::server().admin_url()).batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains(&format!("GRANT pg_read_all_data TO \"{role}\"")), "{err}");
}
