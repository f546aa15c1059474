//! Errors whose next step matches what went wrong: a missing database, a
//! refused password, an unknown host each say what to do about it, not
//! "check that the server is running".

use crate::flow::{assert_exit, stderr};
use crate::support::{self, Cluster};

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

// covers: FR-11, FR-14.10
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
