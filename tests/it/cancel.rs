//! Cancellation: `backup::run` and `restore` take a `CancelToken`; a tripped
//! token stops the run with a "cancelled" error, kills pg_dump and leaves no
//! partial archive. Runs the engine in-process (the token is a library
//! argument the CLI does not expose).

use std::collections::BTreeMap;
use std::path::Path;

use lifeboat::config::{resolve, Config, Overrides};
use lifeboat::events::{CancelToken, Event};
use lifeboat::store::LocalStore;

use crate::support::{fresh_db, pg_bin, saas_config, seed_saas, TestDb};

fn config(db: &TestDb, storage: &Path) -> Config {
    let text = saas_config(&db.url, storage);
    resolve(Some((&storage.with_extension("toml"), &text)), &BTreeMap::new(), &Overrides::default()).unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // The lock and the store's key directory stay by design.
            .filter(|n| n != ".lifeboat.lock" && n != ".lifeboat")
            .collect(),
        Err(_) => Vec::new(),
    }
}

// covers: FR-14.11
#[test]
fn a_pre_tripped_token_stops_a_backup_before_it_touches_anything() {
    let db = fresh_db("cancel_pre");
    seed_saas(&db);
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("backups");
    let config = config(&db, &storage);
    let token = CancelToken::new();
    token.cancel();
    let store = LocalStore::new(&storage, "critical_backup");
    let err = lifeboat::backup::run(&config, &store, &lifeboat::events::silent, &token).unwrap_err();
    assert!(matches!(err, lifeboat::Error::Cancelled { .. }), "{err}");
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(!storage.exists(), "nothing was created");
}

// covers: FR-14.11, FR-14.4
#[test]
fn a_token_tripped_mid_backup_kills_pg_dump_and_leaves_no_partial() {
    let db = fresh_db("cancel_mid");
    seed_saas(&db);
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("backups");
    // A real pg_dump behind a wrapper that records its pid and holds the
    // post-data dump back for up to 20 s (bash builtins only: `read -t` on a
    // FIFO opened read-write), so it is certainly running when the token is
    // tripped. Killing the wrapper's pid is killing that pg_dump.
    let pids = tmp.path().join("pids");
    let fifo = tmp.path().join("hold");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let wrapper = tmp.path().join("pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/bash\necho $$ >> '{}'\ncase \"$*\" in *post-data*) read -t 20 <> '{}' ;; esac\nexec '{}' \"$@\"\n",
            pids.display(),
            fifo.display(),
            pg_bin("pg_dump").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = config(&db, &storage);
    config.database.pg_dump = Some(wrapper);

    let token = CancelToken::new();
    let trip = token.clone();
    // Tripped while the run waits for the held post-data dump (both pg_dumps
    // exit before the rows are copied): once the wrapper has started both
    // sections after the --version probe.
    let recorded = pids.clone();
    let progress = move |e: Event| {
        if matches!(e, Event::Step("schema")) {
            let (trip, recorded) = (trip.clone(), recorded.clone());
            std::thread::spawn(move || {
                let started = || std::fs::read_to_string(&recorded).map(|p| p.lines().count()).unwrap_or(0);
                let t = std::time::Instant::now();
                while started() < 3 && t.elapsed() < std::time::Duration::from_secs(10) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
                trip.cancel();
            });
        }
    };
    let store = LocalStore::new(&storage, "critical_backup");
    let started = std::time::Instant::now();
    let err = lifeboat::backup::run(&config, &store, &progress, &token).unwrap_err();
    assert!(matches!(err, lifeboat::Error::Cancelled { .. }), "{err}");
    assert!(err.to_string().starts_with("cancelled while"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "did not wait for the held pg_dump");
    assert_eq!(leftovers(&storage), Vec::<String>::new(), "no .partial, no pg_dump temp file");

    let pids = std::fs::read_to_string(&pids).unwrap();
    let started: Vec<&str> = pids.lines().collect();
    assert!(started.len() >= 3, "--version probe plus two sections: {started:?}");
    for pid in started {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "pg_dump {pid} is still running (or unreaped)");
    }
}
