//! `lifeboat backup` against a real PostgreSQL: the archive restores with
//! plain psql to the same rows, schema, sequences and valid foreign keys;
//! windows, closure, default-include, one consistent snapshot, and failures
//! that leave nothing behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::support::{self, fresh_db, SAAS_EXPECTED_ROWS};
use crate::support::{assert_exit, run, stderr, Seeded};

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Backs up `db` with `scope` (TOML, may be empty) into a fresh directory;
/// the directory (keep it alive) and the `--json` report.
fn backup_with_scope(db: &support::TestDb, scope: &str) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let config = support::TestConfig::new(&db.url, dir.path().join("b")).section(scope).write(dir.path());
    let o = run(&["--config", config.to_str().unwrap(), "--json", "backup"]);
    assert_exit(&o, 0);
    (dir, support::json(&o))
}

fn restore_with_psql(archive: &Path, hint: &str) -> (support::TestDb, tempfile::TempDir) {
    let x = tempfile::tempdir().unwrap();
    support::extract(archive, x.path());
    let target = fresh_db(hint);
    let o = support::psql_file(&target.url, Path::new("database/restore.sql"), x.path());
    assert!(o.status.success(), "psql restore failed:\n{}", String::from_utf8_lossy(&o.stderr));
    (target, x)
}

// covers: FR-12.2, FR-12.6, FR-13.1, FR-8.4, FR-2.5, FR-13.4, FR-5.4, FR-24.3, US-2/AC-4, US-4/AC-10, SC-1.1, TS-2.2
#[test]
fn psql_restore_of_a_backup_reproduces_every_included_row_the_schema_sequences_and_valid_fks() {
    let s = Seeded::new("roundtrip");
    let mut src = s.db.client();
    let seq_before = support::sequence_values(&mut src);
    let report = s.backup();
    let archive = Path::new(report["archive"].as_str().unwrap());
    assert!(archive.is_absolute() && archive.exists());
    assert_eq!(report["size_bytes"].as_u64().unwrap(), std::fs::metadata(archive).unwrap().len());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(archive).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(s.storage()).unwrap().permissions().mode() & 0o777, 0o700);

    let (target, x) = restore_with_psql(archive, "roundtrip_target");
    let m = manifest(x.path());
    let mut dst = target.client();

    assert_eq!(support::schema_dump(&s.db.url), support::schema_dump(&target.url), "schema differs");
    let fks = support::fk_report(&mut dst);
    assert_eq!(fks, support::fk_report(&mut src), "same foreign keys");
    assert!(fks.len() >= 30 && fks.iter().all(|(_, valid)| *valid), "{fks:?}");
    for (seq, before) in &seq_before {
        let after = support::sequence_values(&mut dst)[seq];
        assert!(after >= *before, "{seq}: {after:?} < {before:?}");
    }

    let expected: BTreeMap<&str, (i64, i64)> = SAAS_EXPECTED_ROWS.iter().map(|(t, r, c)| (*t, (*r, *c))).collect();
    for t in m["tables"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let q = format!("public.{name}");
        let (base, closure) = expected[name];
        assert_eq!(t["rows"].as_i64().unwrap(), base + closure, "{name} rows in manifest");
        assert_eq!(t["closure_rows"].as_i64().unwrap(), closure, "{name} closure rows");
        let restored = support::table_fingerprint(&mut dst, &q);
        assert_eq!(restored.0, base + closure, "{name} restored rows");
        // Every restored row is byte-identical to the source row with its key.
        let same_rows = if t["mode"] == "full" {
            support::table_fingerprint(&mut src, &q)
        } else {
            let ids: Vec<String> =
                dst.query(&format!("SELECT id::text FROM {q}"), &[]).unwrap().iter().map(|r| r.get(0)).collect();
            support::query_fingerprint(
                &mut src,
                &format!("SELECT * FROM {q} WHERE id::text = ANY('{{{}}}')", ids.join(",")),
            )
        };
        assert_eq!(restored, same_rows, "{name}: restored rows differ from the source");
    }
}

// covers: FR-2.2, FR-2.3, FR-8.1, FR-8.3, FR-13.2, US-2/AC-2, US-2/AC-3, TS-2.5, NFR-5.2
#[test]
fn windows_keep_recent_rows_and_closure_pulls_old_parents_across_chains() {
    let s = Seeded::new("closure");
    let report = s.backup();
    let archive = Path::new(report["archive"].as_str().unwrap());
    let (target, x) = restore_with_psql(archive, "closure_target");
    let m = manifest(x.path());
    let ct = m["tables"].as_array().unwrap().iter().find(|t| t["name"] == "credit_transactions").unwrap();
    let cutoff = ct["window"]["cutoff"].as_str().unwrap();
    assert_eq!(ct["window"]["keep"], "3 months");
    // The cutoff is the snapshot's now() minus 3 calendar months.
    let expected_cutoff = s.db.query_one_string(&format!(
        "SELECT to_char(('{}'::timestamptz - interval '3 months') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        m["snapshot_time"].as_str().unwrap()
    ));
    assert_eq!(cutoff, expected_cutoff);

    let old =
        |table: &str| target.query_one_i64(&format!("SELECT count(*) FROM {table} WHERE created_at < '{cutoff}'"));
    assert_eq!(old("credit_transactions"), 35, "only closure rows are older than the cutoff");
    assert_eq!(old("conversations"), 39);
    assert_eq!(old("payments"), 0);
    // The chains that cross the cutoff come back whole: every parent present.
    assert_eq!(target.count("usage_logs"), 1320);
    assert_eq!(target.query_one_i64("SELECT count(*) FROM usage_logs c WHERE parent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM usage_logs p WHERE p.id = c.parent_id)"), 0);
    assert!(target.query_one_i64(&format!("SELECT count(*) FROM usage_logs WHERE created_at < '{cutoff}'")) > 0);
    assert_eq!(target.count("sessions"), 0, "schema-only table restored empty");
    // The report counts them too.
    let closure: i64 = report["tables"].as_array().unwrap().iter().map(|t| t["closure_rows"].as_i64().unwrap()).sum();
    assert_eq!(closure, 35 + 39 + 1320);
    assert_eq!(report["closure_rows"].as_i64().unwrap(), closure);
}

// covers: FR-10.1, FR-10.2, FR-9.5, US-7/AC-1, US-7/AC-2, TS-2.6
#[test]
fn a_table_the_config_does_not_name_is_backed_up_in_full_and_flagged() {
    let s = Seeded::new("unclassified");
    let o = run(&["--config", s.config.to_str().unwrap(), "--json", "plan"]);
    assert_exit(&o, 0);
    let plan = support::json(&o);
    let ff = plan["tables"].as_array().unwrap().iter().find(|t| t["name"] == "feature_flags").unwrap();
    assert_eq!((ff["mode"].as_str(), ff["unclassified"].as_bool()), (Some("full"), Some(true)));
    assert!(plan["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("public.feature_flags")));
    let text = run(&["--config", s.config.to_str().unwrap(), "plan"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("[unclassified]"));

    let report = s.backup();
    let ff = report["tables"].as_array().unwrap().iter().find(|t| t["name"] == "feature_flags").unwrap();
    assert_eq!((ff["rows"].as_i64(), ff["unclassified"].as_bool()), (Some(8), Some(true)));
    assert!(report["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("feature_flags")));
}

// covers: FR-13.3, TS-2.4
#[test]
fn a_writer_moving_money_during_the_backup_restores_to_one_instant() {
    let s = Seeded::new("consistency");
    let (from, to) = ("md5('user:1')::uuid", "md5('user:2')::uuid");
    let balance = |c: &mut postgres::Client, who: &str| -> String {
        c.query_one(&format!("SELECT balance::text FROM credit_accounts WHERE user_id = {who}"), &[]).unwrap().get(0)
    };
    let mut c = s.db.client();
    let (from0, to0) = (balance(&mut c, from), balance(&mut c, to));
    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, moved, url) = (stop.clone(), moved.clone(), s.db.url.clone());
        std::thread::spawn(move || {
            let mut c = support::connect(&url);
            while !stop.load(Ordering::Relaxed) {
                c.batch_execute(&format!("SELECT transfer_money({from}, {to}, 1)")).unwrap();
                moved.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while moved.load(Ordering::Relaxed) < 20 {
        std::thread::yield_now();
    }
    let before = moved.load(Ordering::Relaxed);
    let report = s.backup();
    let after = moved.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(after > before, "the writer kept writing during the backup ({before} transfers before, {after} after)");

    let (target, _x) = restore_with_psql(Path::new(report["archive"].as_str().unwrap()), "consistency_target");
    let mut t = target.client();
    let n = target.query_one_i64("SELECT count(*) FROM transfers WHERE note = 'transfer_money'");
    // `moved` counts a transfer after its commit, so the snapshot saw every
    // transfer counted before the run and at most one more than counted after.
    assert!(
        (before as i64..=after as i64 + 1).contains(&n),
        "the snapshot is one instant during the run: {n} transfers, {before} before the run, {after} after"
    );
    let sum = |c: &mut postgres::Client, sql: &str| -> String { c.query_one(sql, &[]).unwrap().get(0) };
    // Balances (a full table) and transfers (a window table) agree: one instant.
    assert_eq!(balance(&mut t, from), sum(&mut t, &format!("SELECT ({from0}::numeric - {n})::numeric(18,2)::text")));
    assert_eq!(balance(&mut t, to), sum(&mut t, &format!("SELECT ({to0}::numeric + {n})::numeric(18,2)::text")));
    let total = "SELECT sum(balance)::text FROM credit_accounts";
    assert_eq!(sum(&mut t, total), sum(&mut c, total), "money is neither created nor lost");
}

// covers: FR-14.2, US-11/AC-1
#[test]
fn a_table_locked_by_another_session_fails_the_run_naming_it_within_the_lock_timeout() {
    let s = Seeded::with_config("locked", "");
    let toml = std::fs::read_to_string(&s.config).unwrap().replace("[storage]", "[storage]\n");
    let toml = toml.replacen("[database]\n", "[database]\nlock_timeout = \"1s\"\n", 1);
    std::fs::write(&s.config, toml).unwrap();
    let mut holder = s.db.client();
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE payments IN ACCESS EXCLUSIVE MODE").unwrap();
    let started = std::time::Instant::now();
    let o = run(&["--config", s.config.to_str().unwrap(), "backup"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("public.payments") && stderr(&o).contains("lock"), "{}", stderr(&o));
    assert!(started.elapsed().as_secs() < 30);
    tx.rollback().unwrap();
    assert!(s.stored().is_empty(), "nothing left: {:?}", s.stored());
}

// covers: FR-14.8, NFR-2.3
#[test]
fn a_missing_pg_dump_fails_before_writing_anything() {
    let s = Seeded::new("nopgdump");
    let toml = std::fs::read_to_string(&s.config).unwrap().replacen(
        "[database]\n",
        "[database]\npg_dump = \"/nonexistent/pg_dump\"\n",
        1,
    );
    std::fs::write(&s.config, toml).unwrap();
    let o = run(&["--config", s.config.to_str().unwrap(), "backup"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("pg_dump not found") && stderr(&o).contains("postgresql-client-15"), "{}", stderr(&o));
    assert!(s.stored().is_empty(), "{:?}", s.stored());
}

// covers: FR-16.3, FR-16.4, US-2/AC-5
#[test]
fn config_files_are_archived_with_modes_and_a_missing_required_one_fails_the_run() {
    let files = tempfile::tempdir().unwrap();
    let f = files.path();
    std::fs::write(f.join(".env.production"), "DATABASE_URL=postgres://app:pw@db/app\n").unwrap();
    std::fs::create_dir_all(f.join("ssl")).unwrap();
    std::fs::write(f.join("ssl/fullchain.pem"), "CERT").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(f.join(".env.production"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let section = format!(
        "[files]\nbase_dir = {}\ninclude = [\".env.production\", \"ssl/**\"]\noptional = [\"monitoring/**\"]\n",
        support::toml_string(&f.to_string_lossy())
    );
    let s = Seeded::with_config("files", &section);
    let report = s.backup();
    assert_eq!(report["files"], 2);
    let members = support::members(Path::new(report["archive"].as_str().unwrap()));
    let env = members.iter().find(|(p, _)| p == "config/.env.production").expect("env file archived");
    assert_eq!(env.1, b"DATABASE_URL=postgres://app:pw@db/app\n");
    let m: Value = serde_json::from_slice(&members.iter().find(|(p, _)| p == "manifest.json").unwrap().1).unwrap();
    let modes: BTreeMap<String, u64> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_string(), f["mode"].as_u64().unwrap()))
        .collect();
    assert_eq!(modes["config/.env.production"], 0o600);
    assert_eq!(modes["config/ssl/fullchain.pem"] & 0o777, 0o644);

    std::fs::remove_file(f.join("ssl/fullchain.pem")).unwrap();
    let o = run(&["--config", s.config.to_str().unwrap(), "backup"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("ssl/**") && stderr(&o).contains("files.optional"), "{}", stderr(&o));
    assert_eq!(s.stored().len(), 1, "only the earlier archive: {:?}", s.stored());
}

// covers: FR-12.7, NFR-2.2
#[test]
fn a_stale_partial_from_a_crashed_run_is_removed_by_the_next_run() {
    let s = Seeded::new("stale");
    std::fs::create_dir_all(s.storage()).unwrap();
    std::fs::write(s.storage().join("critical_backup_20200101_000000.tar.gz.partial"), b"half").unwrap();
    std::fs::write(s.storage().join("unrelated.txt"), b"keep me").unwrap();
    s.backup();
    let names = s.stored();
    assert!(!names.iter().any(|n| n.ends_with(".partial")), "{names:?}");
    assert!(names.contains(&"unrelated.txt".to_string()));
    assert_eq!(names.iter().filter(|n| n.ends_with(".tar.gz")).count(), 1);
}

// covers: FR-12.7, NFR-2.3, FR-14.10
#[test]
fn the_database_stopping_mid_run_fails_the_backup_and_leaves_no_archive() {
    let cluster = support::Cluster::start();
    let url = cluster.url("postgres");
    support::connect(&url).batch_execute(support::SAAS_SQL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(
        dir.path(),
        &format!("{}\n", support::saas_config(&url, &dir.path().join("backups"))).replacen(
            "[database]\n",
            "[database]\nlock_timeout = \"60s\"\n",
            1,
        ),
    );

    // Hold the run inside pg_dump: our ACCESS EXCLUSIVE request queues behind
    // lifeboat's ACCESS SHARE lock, and pg_dump's lock request queues behind it.
    let child = support::lifeboat()
        .args(["--config", config.to_str().unwrap(), "backup"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut admin = support::connect(&url);
    let wait = |cond: &dyn Fn() -> bool| {
        let t = std::time::Instant::now();
        while !cond() {
            assert!(t.elapsed().as_secs() < 30, "timed out");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait(&|| {
        support::connect(&url)
            .query_one("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'lifeboat' AND l.relation = 'payments'::regclass", &[])
            .unwrap()
            .get::<_, i64>(0)
            > 0
    });
    let blocker = std::thread::spawn(move || {
        let _ = admin.batch_execute("BEGIN; LOCK TABLE payments IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)");
    });
    let storage = dir.path().join("backups");
    wait(&|| {
        std::fs::read_dir(&storage)
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".partial")))
            .unwrap_or(false)
    });
    cluster.stop();
    let out = child.wait_with_output().unwrap();
    let _ = blocker.join();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pg_dump") || err.contains("connection"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&storage)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        // The lock and the store's key directory stay by design.
        .filter(|n| n != ".lifeboat.lock" && n != ".lifeboat")
        .collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

// covers: TS-2.11, NFR-2.3
#[test]
fn a_second_backup_into_the_same_directory_refuses_while_one_runs() {
    let s = Seeded::new("lock");
    std::fs::create_dir_all(s.storage()).unwrap();
    let lock = std::fs::File::create(s.storage().join(".lifeboat.lock")).unwrap();
    lock.try_lock().expect("the test takes the lock first");
    std::fs::write(s.storage().join("critical_backup_20990101_000000.tar.gz.partial"), b"in progress").unwrap();
    let o = run(&["--config", s.config.to_str().unwrap(), "backup"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("another lifeboat run holds"), "{}", stderr(&o));
    assert!(s.stored().iter().any(|n| n.ends_with(".partial")), "the running backup's file is left alone");
    drop(lock);
    s.backup();
}

// covers: FR-12.4, FR-12.6, US-4/AC-10
#[test]
fn psql_restore_loads_a_row_whose_text_has_a_line_that_is_only_backslash_dot() {
    // Everything in full (no [scope]), so the fixture's old chat message whose
    // content has a line `\.` is in the archive: psql <= 17 would end \copy there.
    let db = fresh_db("copy_twin");
    support::seed_saas(&db);
    let (_dir, report) = backup_with_scope(&db, "");
    let archive = std::path::PathBuf::from(report["archive"].as_str().unwrap());
    let (target, x) = restore_with_psql(&archive, "copy_twin_target");
    let m = manifest(x.path());
    let messages = m["tables"].as_array().unwrap().iter().find(|t| t["name"] == "messages").unwrap();
    assert_eq!(messages["psql_file"], "database/data/public.messages.copy");
    let q = "SELECT * FROM public.messages";
    assert_eq!(support::query_fingerprint(&mut target.client(), q), support::query_fingerprint(&mut db.client(), q));
    assert_eq!(target.query_one_i64("SELECT count(*) FROM messages WHERE content ~ '(^|\\n)\\\\\\.(\\n|$)'"), 1);
}

// covers: FR-2.1, FR-12.4
#[test]
fn tables_in_other_schemas_partitions_and_odd_names_round_trip_through_psql() {
    let db = fresh_db("schemas");
    db.exec(
        r#"CREATE SCHEMA audit;
        CREATE TABLE audit."Event Log" (id bigint PRIMARY KEY, "Kind" text, at timestamptz NOT NULL);
        INSERT INTO audit."Event Log" SELECT g, 'k' || g, now() - g * interval '1 day' FROM generate_series(1, 50) g;
        CREATE TABLE public.measurements (id bigint, taken date NOT NULL, v numeric, PRIMARY KEY (id, taken))
            PARTITION BY RANGE (taken);
        CREATE TABLE public.measurements_old PARTITION OF public.measurements FOR VALUES FROM ('2000-01-01') TO ('2026-01-01');
        CREATE TABLE public.measurements_new PARTITION OF public.measurements FOR VALUES FROM ('2026-01-01') TO ('2100-01-01');
        INSERT INTO public.measurements SELECT g, date '2025-06-01' + g, g / 7.0 FROM generate_series(1, 400) g;
        CREATE TABLE public.readings (id bigint PRIMARY KEY, m_id bigint, m_taken date,
            FOREIGN KEY (m_id, m_taken) REFERENCES public.measurements (id, taken));
        INSERT INTO public.readings SELECT g, g, date '2025-06-01' + g FROM generate_series(1, 400, 3) g;
        CREATE TABLE public.no_columns (); INSERT INTO public.no_columns DEFAULT VALUES; INSERT INTO public.no_columns DEFAULT VALUES;"#,
    );
    let (_dir, report) = backup_with_scope(
        &db,
        // No size band: a tiny archive's warning is not what this test is about.
        "[scope]\nfull = [\"audit.Event Log\", \"measurements\", \"readings\", \"no_columns\"]\n\
         [monitor]\nmin_size_mb = 0\n",
    );
    // Partitions take their parent's mode: nothing is unclassified.
    for t in report["tables"].as_array().unwrap() {
        assert_eq!((t["mode"].as_str(), t["unclassified"].as_bool()), (Some("full"), Some(false)), "{t}");
    }
    assert!(report["warnings"].as_array().unwrap().is_empty(), "{}", report["warnings"]);
    let archive = std::path::PathBuf::from(report["archive"].as_str().unwrap());
    let names: Vec<String> = support::members(&archive).into_iter().map(|(p, _)| p).collect();
    assert!(names.contains(&"database/data/audit.Event%20Log.csv".to_string()), "{names:?}");
    let (target, _x) = restore_with_psql(&archive, "schemas_target");
    for t in [
        r#"audit."Event Log""#,
        "public.measurements",
        "public.measurements_new",
        "public.readings",
        "public.no_columns",
    ] {
        let (src, dst) =
            (support::table_fingerprint(&mut db.client(), t), support::table_fingerprint(&mut target.client(), t));
        assert!(src.0 > 0 && src == dst, "{t}: {src:?} vs {dst:?}");
    }
    assert!(support::fk_report(&mut target.client()).iter().all(|(_, v)| *v));
    assert_eq!(support::schema_dump(&db.url), support::schema_dump(&target.url));
    // And through lifeboat restore.
    let again = fresh_db("schemas_again");
    assert_exit(
        &run(&[
            "restore",
            archive.to_str().unwrap(),
            "--db",
            &again.url,
            "--trusted-key",
            &support::its_store_key(&archive),
        ]),
        0,
    );
    assert_eq!(again.count("public.no_columns"), 2);
}

// covers: FR-8.1, FR-8.4, FR-2.1
#[test]
fn closure_follows_foreign_keys_declared_on_a_partitioned_table() {
    let db = fresh_db("part_closure");
    db.exec(
        "CREATE TABLE orders (id bigint PRIMARY KEY, created_at timestamptz NOT NULL);
         INSERT INTO orders SELECT g, now() - g * interval '10 days' FROM generate_series(1, 40) g;
         CREATE TABLE order_lines (id bigint, order_id bigint NOT NULL REFERENCES orders, day date NOT NULL,
             PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
         CREATE TABLE order_lines_a PARTITION OF order_lines FOR VALUES FROM ('2000-01-01') TO ('2026-06-01');
         CREATE TABLE order_lines_b PARTITION OF order_lines FOR VALUES FROM ('2026-06-01') TO ('2100-01-01');
         INSERT INTO order_lines SELECT g, g, date '2026-01-01' + g * 7 FROM generate_series(1, 40) g;",
    );
    let (_dir, report) = backup_with_scope(
        &db,
        "[scope]\nfull = [\"order_lines\"]\n[[scope.window]]\ntables = [\"orders\"]\nkeep = \"3 months\"\n",
    );
    let orders = report["tables"].as_array().unwrap().iter().find(|t| t["name"] == "orders").unwrap();
    // 40 orders every 10 days: 9 or 10 inside 3 months, every other one pulled in by its lines.
    assert_eq!(orders["rows"], 40, "{orders}");
    assert!(orders["closure_rows"].as_u64().unwrap() >= 30, "{orders}");
    let (target, _x) = restore_with_psql(std::path::Path::new(report["archive"].as_str().unwrap()), "part_closure_t");
    assert_eq!(target.count("order_lines"), 40);
    assert!(support::fk_report(&mut target.client()).iter().all(|(_, v)| *v));
    // The rehearsal counts keys as the manifest does (not per partition).
    let o = run(&[
        "verify",
        report["archive"].as_str().unwrap(),
        "--restore-test",
        &support::server().admin_url(),
        "--trusted-key",
        &support::its_store_key(report["archive"].as_str().unwrap()),
    ]);
    assert_exit(&o, 0);
}
