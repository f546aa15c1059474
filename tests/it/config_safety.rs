//! What a configuration may do to lifeboat and to the machine: secret files
//! that are not small regular files, secrets inside malformed config lines,
//! an existing output directory, a deleted lock file, messages that help,
//! and back-to-back runs that must not collide.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, TestDb};
use crate::support::{assert_exit, run, stderr, Seeded};

const SECRET: &str = "Sup3rS3cret";

/// Waits for `child` at most `limit`; kills it and panics when it is still
/// running (a hang is the defect some of these tests look for).
fn wait_bounded(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what}: still running after {limit:?}, killed; stderr:\n{}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `lifeboat ARGS` with `env`, under a 1 GiB address-space limit (so a
/// reader that grows without bound fails fast instead of eating the
/// machine's memory) and a 20 s time limit.
fn run_limited(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("ulimit -v 1048576 && exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_lifeboat")).args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(support::leaks_into_lifeboat) {
            cmd.env_remove(&name);
        }
    }
    cmd.envs(env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
    wait_bounded(cmd.spawn().unwrap(), Duration::from_secs(20), &format!("lifeboat {args:?} {env:?}"))
}

fn all_output(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o))
}

fn config_in(dir: &Path, toml: &str) -> PathBuf {
    support::write_config(dir, toml)
}

fn tiny_config(db: &TestDb, storage: &Path) -> String {
    support::TestConfig::new(&db.url, storage).toml()
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

// covers: FR-11.5, SC-2.4, NFR-2.5
#[test]
fn a_secret_file_that_is_not_a_small_regular_file_is_refused_promptly() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("pw.fifo");
    let o = Command::new("mkfifo").arg(&fifo).output().unwrap();
    assert!(o.status.success(), "mkfifo: {}", stderr(&o));
    let dir = d.path().join("pw.dir");
    std::fs::create_dir(&dir).unwrap();
    let big = d.path().join("pw.big");
    std::fs::write(&big, vec![b'x'; 64 * 1024 + 1]).unwrap();
    let config = config_in(d.path(), "[database]\nhost = \"127.0.0.1\"\n");
    let cfg = config.to_str().unwrap();

    let cases: [(&Path, &str); 4] = [
        (Path::new("/dev/zero"), "not a regular file"),
        (&fifo, "not a regular file"),
        (&dir, "not a regular file"),
        (&big, "larger than 64 KiB"),
    ];
    for (path, why) in cases {
        let p = path.to_str().unwrap();
        // Every way of naming a secret file goes through the same reader.
        for var in ["POSTGRES_PASSWORD_FILE", "LIFEBOAT_DATABASE__PASSWORD_FILE", "DATABASE_URL_FILE"] {
            let o = run_limited(&["--config", cfg, "config"], &[(var, p)]);
            assert_exit(&o, 2);
            let err = stderr(&o);
            assert!(err.contains(p) && err.contains(var) && err.contains(why), "{var}={p}:\n{err}");
        }
        let file_cfg = config_in(d.path(), &format!("[database]\npassword_file = {}\n", support::toml_string(p)));
        let o = run_limited(&["--config", file_cfg.to_str().unwrap(), "config"], &[]);
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(err.contains(p) && err.contains("password_file") && err.contains(why), "password_file={p}:\n{err}");
    }

    // A Docker secret (a regular file with a trailing newline) still works.
    let ok = d.path().join("pw");
    std::fs::write(&ok, format!("{SECRET}\n")).unwrap();
    let o = run_limited(&["--config", cfg, "--json", "config"], &[("POSTGRES_PASSWORD_FILE", ok.to_str().unwrap())]);
    assert_exit(&o, 0);
    assert!(!all_output(&o).contains(SECRET));
}

// covers: FR-11.2, FR-11.7, SC-2.4
#[test]
fn a_malformed_config_never_echoes_the_secret_it_holds() {
    let d = tempfile::tempdir().unwrap();
    let pw_in_file = d.path().join("port-secret");
    std::fs::write(&pw_in_file, format!("{SECRET}\n")).unwrap();
    let files: [(&str, &str); 5] = [
        // Unquoted: the TOML error excerpt would show the whole line.
        (&format!("[database]\nurl = postgres://app:{SECRET}@db/app\n"), "line 2, column 7"),
        (&format!("[database]\npassword = {SECRET}\n"), "line 2, column 12"),
        // A misspelt key: the excerpt would show the value.
        (&format!("[database]\nhost = \"db\"\npasword = \"{SECRET}\"\n"), "line 3, column 1"),
        (&format!("[database]\nurl = \"postgres://app:{SECRET}@db:99999/app\"\n"), "[database] url"),
        (&format!("[database]\nurl = \"postgres://app:{SECRET}@db/app?sslmode=sometimes\"\n"), "[database] url"),
    ];
    let mut outputs = Vec::new();
    for (toml, needle) in files {
        let p = config_in(d.path(), toml);
        for args in [vec!["config"], vec!["--json", "config"], vec!["--json", "plan"]] {
            let mut a = vec!["--config", p.to_str().unwrap()];
            a.extend(args);
            let o = run(&a);
            assert!(stderr(&o).contains(needle), "{toml}: {needle:?} missing:\n{}", stderr(&o));
            assert!(stderr(&o).contains(p.to_str().unwrap()), "{toml}: the file is named:\n{}", stderr(&o));
            outputs.push((toml.to_string(), o));
        }
    }
    let empty = config_in(d.path(), "");
    let cfg = empty.to_str().unwrap();
    let bad_url = format!("postgres://app:{SECRET}@db:99999/app");
    for (var, value) in [
        ("DATABASE_URL", bad_url.as_str()),
        ("LIFEBOAT_DATABASE__URL", bad_url.as_str()),
        ("POSTGRES_PORT", SECRET),
        ("LIFEBOAT_DATABASE__PORT", SECRET),
        // A value read from a secret file is a secret, whatever key it lands in.
        ("LIFEBOAT_DATABASE__PORT_FILE", pw_in_file.to_str().unwrap()),
    ] {
        for args in [vec!["config"], vec!["--json", "config"]] {
            let mut a = vec!["--config", cfg];
            a.extend(args);
            let o = support::lifeboat().args(&a).env(var, value).output().unwrap();
            assert!(stderr(&o).contains(var), "{var}: the variable is named:\n{}", stderr(&o));
            outputs.push((format!("{var}={value}"), o));
        }
    }
    for args in [
        vec!["--config", cfg, "--json", "plan", "--database-url", &bad_url],
        vec!["--config", cfg, "--json", "backup", "--database-url", &bad_url],
        vec!["--json", "restore", "/nonexistent.tar.gz", "--db", &bad_url],
        vec!["--json", "verify", "/nonexistent.tar.gz", "--restore-test", &bad_url],
    ] {
        let o = run(&args);
        outputs.push((format!("{args:?}"), o));
    }
    for (case, o) in &outputs {
        assert_exit(o, 2);
        let all = all_output(o);
        assert!(!all.contains(SECRET) && !all.contains("S3cret"), "{case}: secret leaked:\n{all}");
    }
}

// covers: FR-12.7, NFR-3, SC-1.1
#[test]
fn an_existing_output_directory_keeps_its_mode_and_a_readable_one_is_warned_about() {
    let db = support::tiny_db("outdir_mode");
    let d = tempfile::tempdir().unwrap();
    let config = config_in(d.path(), &tiny_config(&db, &d.path().join("unused")));
    let cfg = config.to_str().unwrap();
    for mode in [0o755, 0o1777] {
        let out = d.path().join(format!("out-{mode:o}"));
        std::fs::create_dir(&out).unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(mode)).unwrap();
        let o = run(&["--config", cfg, "--json", "backup", "--output-dir", out.to_str().unwrap()]);
        assert_exit(&o, 0);
        assert_eq!(mode_of(&out), mode, "the existing directory's mode is left as it was");
        let err = stderr(&o);
        assert!(err.contains("warning:") && err.contains(out.to_str().unwrap()) && err.contains("chmod 700"), "{err}");
        let archive = PathBuf::from(support::json(&o)["archive"].as_str().unwrap().to_string());
        assert_eq!(mode_of(&archive), 0o600, "the archive itself is private");
    }
    // A directory lifeboat creates is private, and a private one is not warned about.
    let fresh = d.path().join("new/deeper");
    let o = run(&["--config", cfg, "backup", "--output-dir", fresh.to_str().unwrap()]);
    assert_exit(&o, 0);
    assert_eq!(mode_of(&fresh), 0o700);
    let o = run(&["--config", cfg, "backup", "--output-dir", fresh.to_str().unwrap()]);
    assert_exit(&o, 0);
    assert!(!stderr(&o).contains("chmod"), "{}", stderr(&o));
}

/// Archives (`*.tar.gz`) in `dir`.
fn archives_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.gz"))
        .collect()
}

/// A minisign secret key file (unencrypted, as lifeboat writes it) and its public key.
fn planted_key() -> (String, minisign::PublicKey) {
    let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    (kp.sk.to_box(Some("planted")).unwrap().to_string(), kp.pk)
}

// covers: SC-11.1, NFR-3
#[test]
fn a_key_directory_another_user_could_write_to_is_refused_and_its_key_never_signs() {
    use std::os::unix::fs::{chown, symlink};
    const NOBODY: u32 = 65534;
    let db = support::tiny_db("planted_key");
    let d = tempfile::tempdir().unwrap();
    let config = config_in(d.path(), &tiny_config(&db, &d.path().join("unused")));
    let cfg = config.to_str().unwrap();
    let (planted, planted_pk) = planted_key();
    let backup = |out: &Path| run(&["--config", cfg, "backup", "--output-dir", out.to_str().unwrap()]);

    // `.lifeboat/` made by another user, open to all, with a signing key in it.
    let out = d.path().join("shared");
    let keys = out.join(".lifeboat");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("signing.key"), &planted).unwrap();
    std::fs::set_permissions(keys.join("signing.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    chown(keys.join("signing.key"), Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o777)).unwrap();
    chown(&keys, Some(NOBODY), Some(NOBODY)).unwrap();
    let o = backup(&out);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains(keys.to_str().unwrap()) && err.contains("uid 65534") && err.contains("rm -r"), "{err}");
    assert_eq!(archives_in(&out), Vec::<String>::new(), "nothing is written, so nothing is signed");
    assert_eq!(mode_of(&keys), 0o777, "a directory lifeboat did not create keeps its mode");
    // Ours, but writable by others: refused too, with the chmod that fixes it.
    chown(&keys, Some(0), Some(0)).unwrap();
    let o = backup(&out);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("mode 0777") && stderr(&o).contains("chmod 700"), "{}", stderr(&o));
    // A private directory of ours, but the key in it is another user's.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = backup(&out);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("signing.key") && stderr(&o).contains("uid 65534"), "{}", stderr(&o));
    // Or a symlink to a key elsewhere: never followed.
    std::fs::remove_file(keys.join("signing.key")).unwrap();
    let elsewhere = d.path().join("elsewhere.key");
    std::fs::write(&elsewhere, &planted).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    symlink(&elsewhere, keys.join("signing.key")).unwrap();
    let o = backup(&out);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    for name in archives_in(&out) {
        let members = support::members(&out.join(&name));
        let get = |p: &str| members.iter().find(|(n, _)| n == p).map(|(_, d)| d.clone()).unwrap_or_default();
        let sig = String::from_utf8(get(lifeboat::archive::signature::MEMBER)).unwrap();
        let sig = minisign::SignatureBox::from_string(&sig).unwrap();
        let sums = get(lifeboat::archive::SUMS);
        let planted_signed = minisign::verify(&planted_pk, &sig, std::io::Cursor::new(sums), true, false, false);
        assert!(planted_signed.is_err(), "{name} is signed with the planted key");
    }

    // Once removed, lifeboat makes its own, private directory and key.
    std::fs::remove_dir_all(&keys).unwrap();
    assert_exit(&backup(&out), 0);
    assert_eq!(mode_of(&keys), 0o700);
    assert_eq!(mode_of(&keys.join("signing.key")), 0o600);
}

// covers: SC-11.2, FR-1.5
#[test]
fn a_lock_file_that_is_a_link_is_refused_and_what_it_points_at_is_untouched() {
    let db = support::tiny_db("lock_symlink");
    let d = tempfile::tempdir().unwrap();
    let config = config_in(d.path(), &tiny_config(&db, &d.path().join("unused")));
    let cfg = config.to_str().unwrap();
    let victim = d.path().join("precious.conf");
    std::fs::write(&victim, "keep me\n").unwrap();
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    let lock = out.join(".lifeboat.lock");
    let links: [fn(&Path, &Path) -> std::io::Result<()>; 2] =
        [|a, b| std::os::unix::fs::symlink(a, b), |a, b| std::fs::hard_link(a, b)];
    for link in links {
        let _ = std::fs::remove_file(&lock);
        link(&victim, &lock).unwrap();
        let o = run(&["--config", cfg, "backup", "--output-dir", out.to_str().unwrap()]);
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(err.contains(lock.to_str().unwrap()) && err.contains("link") && err.contains("rm "), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n", "the linked file was written to");
        assert_eq!(archives_in(&out), Vec::<String>::new());
    }
}

// covers: FR-1.5, FR-12.7, NFR-2.2, NFR-2.3, FR-14.15
#[test]
fn deleting_the_lock_file_does_not_let_a_second_run_take_the_directory() {
    let s = Seeded::with_config("dirlock", "");
    let toml =
        std::fs::read_to_string(&s.config).unwrap().replacen("[database]\n", "[database]\nlock_timeout = \"60s\"\n", 1);
    std::fs::write(&s.config, toml).unwrap();
    let cfg = s.config.to_str().unwrap().to_string();
    let storage = s.storage();

    // Hold run A inside pg_dump (as in backup.rs): our ACCESS EXCLUSIVE request
    // queues behind A's ACCESS SHARE lock, and pg_dump queues behind ours.
    let a = support::lifeboat()
        .args(["--config", &cfg, "--json", "backup"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !cond() {
            assert!(t.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait("run A to lock payments", &|| {
        s.db.query_one_i64(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'lifeboat' AND l.relation = 'payments'::regclass",
        ) > 0
    });
    let mut blocker = s.db.client();
    let blocker_pid: i32 = blocker.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let blocking = std::thread::spawn(move || {
        let _ = blocker.batch_execute("BEGIN; LOCK TABLE payments IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)");
    });
    let partial = || {
        std::fs::read_dir(&storage)
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".partial")))
            .unwrap_or(false)
    };
    wait("run A's .partial", &partial);

    // What `find DIR -mtime +7 -delete` does to a lock file that never changes.
    let _ = std::fs::remove_file(storage.join(".lifeboat.lock"));
    let b = support::lifeboat()
        .args(["--config", &cfg, "backup"])
        .env("LIFEBOAT_DATABASE__LOCK_TIMEOUT", "2s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = wait_bounded(b, Duration::from_secs(20), "run B");
    let a_partial_survived = partial();

    // Let A go on.
    s.db.exec(&format!("SELECT pg_cancel_backend({blocker_pid})"));
    let _ = blocking.join();
    let a = wait_bounded(a, Duration::from_secs(60), "run A");

    assert_exit(&b, 2);
    let err = stderr(&b);
    let shown = std::fs::canonicalize(s.storage()).unwrap();
    assert!(
        err.contains("another lifeboat run holds") && err.contains(shown.to_str().unwrap()) && err.contains("pid"),
        "{err}"
    );
    assert!(!err.contains("left by an interrupted run"), "B removed nothing: {err}");
    assert!(a_partial_survived, "run A's .partial was left alone");
    assert_exit(&a, 0);
    let archive = support::json(&a)["archive"].as_str().unwrap().to_string();
    assert_exit(&run(&["verify", &archive, "--trusted-key", &support::its_store_key(&archive)]), 0);
}

// covers: FR-12.1
#[test]
fn back_to_back_backups_get_distinct_names_and_all_succeed() {
    let db = support::tiny_db("same_second");
    let d = tempfile::tempdir().unwrap();
    let storage = d.path().join("backups");
    let config = config_in(d.path(), &tiny_config(&db, &storage));
    let backup = || {
        let o = run(&["--config", config.to_str().unwrap(), "--json", "backup"]);
        assert_exit(&o, 0);
        PathBuf::from(support::json(&o)["archive"].as_str().unwrap())
    };
    let first = backup();
    let first_name = first.file_name().unwrap().to_string_lossy().into_owned();
    assert!(documented_name(&first_name), "the first archive keeps the documented pattern: {first_name}");
    // A run here takes about a second, so whether two land in the same second
    // is luck. Make it certain: an archive of every coming second exists
    // already, as if another quick run had just made it.
    let now = chrono::Utc::now();
    let planted: Vec<PathBuf> = (0..60)
        .map(|s| {
            storage.join(format!(
                "critical_backup_{}.tar.gz",
                (now + chrono::Duration::seconds(s)).format("%Y%m%d_%H%M%S")
            ))
        })
        .filter(|p| !p.exists())
        .collect();
    for p in &planted {
        std::fs::copy(&first, p).unwrap();
    }
    let archives: Vec<PathBuf> = (0..5).map(|_| backup()).collect();
    let names: Vec<String> = archives.iter().map(|a| a.file_name().unwrap().to_string_lossy().into_owned()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, names, "names sort in the order the runs were made");
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "five distinct archives: {names:?}");
    for a in &archives {
        assert!(!planted.contains(a), "{} was overwritten", a.display());
        assert_exit(&run(&["verify", a.to_str().unwrap(), "--trusted-key", &support::its_store_key(a)]), 0);
    }
    let original = std::fs::read(&first).unwrap();
    for p in &planted {
        assert_eq!(std::fs::read(p).unwrap(), original, "{} is untouched", p.display());
    }
}

/// `critical_backup_YYYYMMDD_HHMMSS.tar.gz`, the documented pattern.
fn documented_name(name: &str) -> bool {
    let Some(stamp) = name.strip_prefix("critical_backup_").and_then(|r| r.strip_suffix(".tar.gz")) else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 15 && b[8] == b'_' && b.iter().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit())
}

/// `lifeboat config` with a `[scope]` that has one window keeping `keep`.
fn keep(keep: &str) -> Output {
    let d = tempfile::tempdir().unwrap();
    let p = config_in(d.path(), &format!("[[scope.window]]\ntables = [\"t\"]\nkeep = \"{keep}\"\n"));
    run(&["--config", p.to_str().unwrap(), "config"])
}

// covers: FR-11.2, FR-11.9, FR-24.2
#[test]
fn duration_errors_give_the_real_reason_and_happen_at_load() {
    let o = keep("0 days");
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("greater than zero") && stderr(&o).contains("line 3"), "{}", stderr(&o));
    let o = keep("99999999999 days");
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("too large"), "{}", stderr(&o));
    // Fails at load (exit 2), not at run time as `timestamp out of range`.
    let o = keep("1000000 years");
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("1000 years") && stderr(&o).contains("scope.full"), "{}", stderr(&o));
    for timeout in ["stall_timeout", "connect_timeout", "lock_timeout"] {
        let d = tempfile::tempdir().unwrap();
        let p = config_in(d.path(), &format!("[database]\n{timeout} = \"100000 years\"\n"));
        let o = run(&["--config", p.to_str().unwrap(), "config"]);
        assert_exit(&o, 2);
        assert!(stderr(&o).contains(timeout), "{}", stderr(&o));
    }

    // `m` is minutes, which a window rarely means: say so, but accept it.
    let o = keep("3m");
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("warning:") && stderr(&o).contains("3 months") && stderr(&o).contains("3 min"),
        "{}",
        stderr(&o)
    );
    for spelt_out in ["3 min", "3 minutes", "3 months"] {
        let o = keep(spelt_out);
        assert_exit(&o, 0);
        assert!(!stderr(&o).contains("warning"), "{spelt_out}: {}", stderr(&o));
    }
}

// covers: FR-11.2, FR-11.3, FR-11.4
#[test]
fn port_zero_is_refused_the_same_way_from_the_file_and_the_environment() {
    let d = tempfile::tempdir().unwrap();
    let p = config_in(d.path(), "[database]\nport = 0\n");
    let o = run(&["--config", p.to_str().unwrap(), "config"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("1-65535") && stderr(&o).contains("line 2"), "{}", stderr(&o));
    let empty = config_in(d.path(), "");
    for var in ["POSTGRES_PORT", "PGPORT", "LIFEBOAT_DATABASE__PORT"] {
        let o =
            support::lifeboat().args(["--config", empty.to_str().unwrap(), "config"]).env(var, "0").output().unwrap();
        assert_exit(&o, 2);
        assert!(stderr(&o).contains("1-65535") && stderr(&o).contains(var), "{var}: {}", stderr(&o));
    }
    let o = support::lifeboat()
        .args(["--config", empty.to_str().unwrap(), "config"])
        .env("DATABASE_URL", "postgres://u@h:0/d")
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("DATABASE_URL"), "{}", stderr(&o));
}

// covers: FR-12.7, FR-24.2
#[test]
fn a_storage_dir_that_is_a_file_says_so() {
    let db = support::tiny_db("dir_is_file");
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("backups");
    std::fs::write(&file, b"not a directory").unwrap();
    let config = config_in(d.path(), &tiny_config(&db, &file));
    let o = run(&["--config", config.to_str().unwrap(), "backup"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains(&format!("{} is a file, not a directory", file.display())), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

// covers: FR-24.5, FR-24.4
#[test]
fn control_characters_in_names_are_escaped_in_every_message() {
    let db = support::fresh_db("ctrl_names");
    // A table whose name would clear the screen when echoed raw.
    db.exec(
        "CREATE TABLE \"evil\x1b[2J\x07name\" (id int PRIMARY KEY); INSERT INTO \"evil\x1b[2J\x07name\" VALUES (1)",
    );
    let d = tempfile::tempdir().unwrap();
    let storage = d.path().join("backups");
    let base = tiny_config(&db, &storage);
    let cases = [
        // Unclassified table from the database: plan output and warnings.
        (base.clone(), vec!["plan"], 0),
        // A table named in the config that does not exist.
        (format!("{base}\n[scope]\nfull = [\"gone\\u001b[31m\"]\n"), vec!["plan"], 2),
        // An unknown key with a control character.
        (format!("{base}\n[scope]\n\"fu\\u001bll\" = []\n"), vec!["config"], 2),
        // A bad config value.
        (format!("{base}\n[[scope.window]]\ntables = [\"t\"]\nkeep = \"3\\u001b[2Jdays\"\n"), vec!["config"], 2),
    ];
    for (toml, args, code) in cases {
        let p = config_in(d.path(), &toml);
        let mut a = vec!["--config", p.to_str().unwrap()];
        a.extend(args);
        let o = run(&a);
        assert_exit(&o, code);
        let all = all_output(&o);
        assert!(!all.contains('\x1b') && !all.contains('\x07'), "raw control characters:\n{all:?}");
        assert!(all.contains("\\u{1b}"), "the character is shown escaped:\n{all}");
    }
}

// covers: FR-7.6, TS-2.5
#[test]
fn restore_takes_row_counts_from_its_copy_and_scans_no_table_again() {
    let db = support::fresh_db("copy_counts");
    // No index and no constraint: nothing but a count(*) would scan it.
    db.exec("CREATE TABLE heap_only (v text); INSERT INTO heap_only SELECT 'r' || g FROM generate_series(1, 250) g");
    let d = tempfile::tempdir().unwrap();
    let config = config_in(d.path(), &tiny_config(&db, &d.path().join("backups")));
    let o = run(&["--config", config.to_str().unwrap(), "--json", "backup"]);
    assert_exit(&o, 0);
    let archive = support::json(&o)["archive"].as_str().unwrap().to_string();
    for jobs in ["1", "2"] {
        let target = support::fresh_db(&format!("copy_counts_target_{jobs}"));
        let o = run(&[
            "--json",
            "restore",
            &archive,
            "--db",
            &target.url,
            "--jobs",
            jobs,
            "--trusted-key",
            &support::its_store_key(&archive),
        ]);
        assert_exit(&o, 0);
        let report = support::json(&o);
        let t = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.heap_only").unwrap();
        assert_eq!((t["expected"].as_u64(), t["restored"].as_u64()), (Some(250), Some(250)), "{report}");
        // Statistics reach the server when the restoring session ends.
        let started = Instant::now();
        let stats = loop {
            let s = target.query_one_string(
                "SELECT n_tup_ins || ' ' || seq_scan FROM pg_stat_user_tables WHERE relname = 'heap_only'",
            );
            if s.starts_with("250 ") || started.elapsed() > Duration::from_secs(10) {
                break s;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(stats, "250 0", "--jobs {jobs}: rows inserted, and no scan of the table after its COPY");
    }
}
