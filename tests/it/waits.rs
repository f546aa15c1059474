//! Waits are visible (issue 22, item 3): a backup that waits for a table's
//! lock says which table, which session holds it (pid, application name, how
//! long) and the lock timeout, on stderr and in the JSON log. The holder is
//! a real second session holding ACCESS EXCLUSIVE, released while the
//! backup waits.

use std::time::{Duration, Instant};

use crate::support::{assert_exit, run, stderr, Seeded};

// covers: FR-14.2, FR-24.4, FR-25.2, US-11/AC-1
#[test]
fn a_backup_waiting_for_a_lock_names_the_table_the_holder_and_the_timeout() {
    let s = Seeded::new("waits");
    let log = s.dir.path().join("backup.log");
    let toml =
        std::fs::read_to_string(&s.config).unwrap().replacen("[database]\n", "[database]\nlock_timeout = \"40s\"\n", 1);
    let toml = format!("{toml}\n[log]\nfile = {:?}\nformat = \"json\"\n", log.to_str().unwrap());
    std::fs::write(&s.config, toml).unwrap();

    let mut holder = s.db.client();
    holder.batch_execute("SET application_name = 'deploy-migration'").unwrap();
    let pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE payments IN ACCESS EXCLUSIVE MODE").unwrap();

    let config = s.config.clone();
    let started = Instant::now();
    let backup = std::thread::spawn(move || run(&["--config", config.to_str().unwrap(), "backup"]));
    // Long enough for the run to reach the lock and say so.
    std::thread::sleep(Duration::from_secs(4));
    tx.rollback().unwrap();
    let o = backup.join().unwrap();
    assert_exit(&o, 0);
    assert!(started.elapsed() < Duration::from_secs(40), "the run went on once the lock was free");

    let err = stderr(&o);
    let line = err.lines().find(|l| l.starts_with("waiting: ")).unwrap_or_else(|| panic!("no waiting line:\n{err}"));
    for needle in [
        "table public.payments is locked by",
        &format!("pid {pid} "),
        "application \"deploy-migration\"",
        "holding AccessExclusiveLock",
        "lock_timeout 40 seconds",
    ] {
        assert!(line.contains(needle), "{needle:?} missing from {line:?}");
    }
    assert!(err.contains("lock on table public.payments granted after "), "{err}");
    // The wait comes during the plan, before the schema is dumped.
    let (wait_at, schema_at) = (err.find("waiting: ").unwrap(), err.find("lifeboat: schema").unwrap());
    assert!(wait_at < schema_at, "{err}");

    // The same as a structured event in the JSON log.
    let text = std::fs::read_to_string(&log).unwrap();
    let event: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"].as_str().is_some_and(|m| m.starts_with("waiting: ")))
        .unwrap_or_else(|| panic!("no waiting event in the JSON log:\n{text}"));
    let fields = &event["fields"];
    assert_eq!(fields["table"], "public.payments", "{event}");
    assert_eq!(fields["holder_pid"], pid, "{event}");
    assert_eq!(fields["holder_application"], "deploy-migration", "{event}");
    assert_eq!(fields["lock_timeout"], "40 seconds", "{event}");
    assert!(fields["holder_for_ms"].as_u64().is_some(), "{event}");
}
