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
