//! Tests of the harness (`support`) and of the promises the SaaS fixture's
//! header makes. When one of these fails, every other failure is suspect.

use std::collections::BTreeMap;
use std::path::Path;

use postgres::{Client, NoTls};

use crate::support::{
    connect, fk_report, fresh_db, leaks_into_lifeboat, lifeboat, psql_file, query_fingerprint, saas_config,
    saas_sql_path, schema_dump, seed_saas, sequence_values, server, table_fingerprint, Cluster, SAAS_CONFIG_SCOPE,
    SAAS_EXPECTED_ROWS,
};

/// Rows older than this are outside a "3 months" window however it is counted.
const OLD: &str = "now() - interval '95 days'";
/// Rows newer than this are inside it.
const RECENT: &str = "now() - interval '85 days'";

#[test]
fn fresh_databases_are_empty_distinct_and_isolated() {
    let a = fresh_db("Harness: isolation!");
    let b = fresh_db("Harness: isolation!");
    assert_ne!(a.name, b.name);
    assert!(a.name.starts_with("lb_harness__isolation__"), "{}", a.name);
    let user_tables = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')";
    assert_eq!(a.query_one_i64(user_tables), 0);
    assert_eq!(a.query_one_string("SHOW server_encoding"), "UTF8");

    a.exec("CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (1)");
    assert_eq!(a.count("only_in_a"), 1);
    assert_eq!(b.query_one_string("SELECT coalesce(to_regclass('only_in_a')::text, 'absent')"), "absent");
}

#[test]
fn dropping_a_test_db_drops_its_database_despite_open_connections() {
    let db = fresh_db("harness drop");
    let name = db.name.clone();
    let _still_connected = db.client();
    drop(db);
    let rows = connect(&server().admin_url())
        .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .expect("query pg_database");
    assert!(rows.is_empty(), "{name} still exists");
}

#[test]
fn table_fingerprint_sees_every_value_but_not_row_order() {
    let db = fresh_db("harness fingerprint");
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, s text); INSERT INTO t VALUES (1, 'a'), (2, NULL), (3, ''); \
         CREATE TABLE same (id int PRIMARY KEY, s text); INSERT INTO same VALUES (3, ''), (2, NULL), (1, 'a'); \
         CREATE TABLE empty (x int)",
    );
    let mut c = db.client();
    let original = table_fingerprint(&mut c, "public.t");
    assert_eq!(original.0, 3);
    assert_eq!(table_fingerprint(&mut c, "public.same"), original);
    assert_eq!(table_fingerprint(&mut c, "empty"), (0, String::new()));
    assert_eq!(query_fingerprint(&mut c, "SELECT * FROM t WHERE id < 3").0, 2);

    // NULL and '' swapped between two rows: same count, different hash.
    db.exec("UPDATE t SET s = '' WHERE id = 2; UPDATE t SET s = NULL WHERE id = 3");
    let swapped = table_fingerprint(&mut c, "public.t");
    assert_eq!(swapped.0, 3);
    assert_ne!(swapped.1, original.1);
}

#[test]
fn fk_report_shows_a_not_valid_foreign_key_as_unvalidated() {
    let db = fresh_db("harness fk");
    db.exec(
        "CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (parent_id int); \
         INSERT INTO child VALUES (7); \
         ALTER TABLE child ADD CONSTRAINT child_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES parent NOT VALID",
    );
    assert_eq!(fk_report(&mut db.client()), vec![("public.child.child_parent_id_fkey".to_string(), false)]);
}

// covers: TS-2.1
#[test]
fn saas_fixture_has_every_shape_the_closure_must_handle() {
    let db = fresh_db("harness saas shapes");
    seed_saas(&db);

    // Sizes the header promises.
    for (table, rows) in [
        ("users", 200),
        ("user_profiles", 200),
        ("credit_accounts", 200),
        ("point_accounts", 200),
        ("usage_logs", 5000),
        ("conversations", 400),
        ("feature_flags", 8),
    ] {
        assert_eq!(db.count(table), rows, "{table}");
    }
    assert!(db.count("credit_transactions") >= 4500, "credit_transactions");
    assert!(db.count("messages") >= 2000, "messages");

    // No windowed timestamp sits near the cutoff, so closure counts are exact.
    for (table, column) in [
        ("credit_transactions", "created_at"),
        ("point_transactions", "created_at"),
        ("payments", "created_at"),
        ("transfers", "created_at"),
        ("referral_rewards", "created_at"),
        ("conversations", "created_at"),
        ("messages", "created_at"),
        ("usage_logs", "created_at"),
        ("promo_code_usages", "used_at"),
        ("daily_login_rewards", "claimed_at"),
    ] {
        let near = db.count(&format!("{table} WHERE {column} BETWEEN {OLD} AND {RECENT}"));
        assert_eq!(near, 0, "{table}.{column} has rows near the cutoff");
        let recent = db.count(&format!("{table} WHERE {column} > {RECENT}"));
        let old = db.count(&format!("{table} WHERE {column} < {OLD}"));
        assert!(recent > 0 && old > 0, "{table}.{column}: {recent} recent, {old} old");
    }

    // Recent reversals of old transactions: 25 direct, 5 of old reversals.
    let recent_to_old = format!(
        "credit_transactions r JOIN credit_transactions t ON t.id = r.reversal_of \
         WHERE r.created_at > {RECENT} AND t.created_at < {OLD}"
    );
    assert_eq!(db.count(&recent_to_old), 30);
    assert_eq!(db.count(&format!("{recent_to_old} AND t.reversal_of IS NOT NULL")), 5);
    assert_eq!(db.count(&format!("{recent_to_old} AND t.usage_log_id IS NOT NULL")), 12);

    // Usage-log chains of 4 crossing the cutoff, billed by a recent transaction.
    let crossing = format!(
        "credit_transactions ct \
         JOIN usage_logs l3 ON l3.id = ct.usage_log_id JOIN usage_logs l2 ON l2.id = l3.parent_id \
         JOIN usage_logs l1 ON l1.id = l2.parent_id JOIN usage_logs l0 ON l0.id = l1.parent_id \
         WHERE ct.created_at > {RECENT} AND l2.created_at > {RECENT} AND l1.created_at < {OLD} AND l0.parent_id IS NULL"
    );
    assert_eq!(db.count(&crossing), 25);

    // Recent messages in old conversations.
    let revived = db.query_one_i64(&format!(
        "SELECT count(DISTINCT c.id) FROM conversations c JOIN messages m ON m.conversation_id = c.id \
         WHERE c.created_at < {OLD} AND m.created_at > {RECENT}"
    ));
    assert!(revived > 0);

    // Tricky values.
    assert_eq!(db.count("users WHERE display_name IS NULL"), 20);
    assert_eq!(db.count("users WHERE display_name = ''"), 20);
    assert_eq!(db.count("users WHERE display_name LIKE 'สวัสดี%'"), 23);
    assert_eq!(db.count("messages WHERE strpos(content, E'\\n\\\\.\\n') > 0"), 1);
    assert_eq!(db.count("user_profiles WHERE bio LIKE E'%\\r\\n%' AND bio_length > 0"), 1);

    // Every FK valid; sequences ahead of the data.
    let fks = fk_report(&mut db.client());
    assert_eq!(fks.len(), 31, "{fks:?}");
    assert!(fks.iter().all(|(_, valid)| *valid), "{fks:?}");
    let sequences = sequence_values(&mut db.client());
    assert_eq!(sequences["public.invoice_number_seq"], Some(5000));
    assert_eq!(sequences["public.permissions_id_seq"], Some(40));
    assert_eq!(
        sequences["public.daily_login_rewards_id_seq"],
        Some(db.query_one_i64("SELECT max(id) + 25 FROM daily_login_rewards"))
    );
}

#[test]
fn saas_expected_rows_match_an_independent_count() {
    let db = fresh_db("harness saas expected");
    seed_saas(&db);

    // Each table's row filter, read from the config itself.
    let config: toml::Value = toml::from_str(SAAS_CONFIG_SCOPE).expect("SAAS_CONFIG_SCOPE is TOML");
    let scope = &config["scope"];
    let names = |v: &toml::Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
    };
    let mut filter: BTreeMap<String, String> = BTreeMap::new();
    for t in names(&scope["full"]) {
        filter.insert(t, "true".into());
    }
    for t in names(&scope["schema_only"]) {
        filter.insert(t, "false".into());
    }
    for w in scope["window"].as_array().unwrap() {
        let (column, keep) = (w["column"].as_str().unwrap(), w["keep"].as_str().unwrap());
        for t in names(&w["tables"]) {
            filter.insert(t, format!("{column} >= now() - interval '{keep}'"));
        }
    }
    let tables = db.query_one_string(
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'",
    );
    let unclassified: Vec<&str> = tables.split(',').filter(|t| !filter.contains_key(*t)).collect();
    assert_eq!(unclassified, ["feature_flags"]);
    filter.insert("feature_flags".into(), "true".into());
    let expected_tables: Vec<&str> = SAAS_EXPECTED_ROWS.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(tables.split(',').collect::<Vec<_>>(), expected_tables);

    // The closure, by hand: every FK into a windowed or schema-only table.
    let cut = "now() - interval '3 months'";
    let closure_sql = format!(
        "WITH RECURSIVE ct AS ( \
             SELECT id, reversal_of, usage_log_id, created_at FROM credit_transactions \
             WHERE created_at >= {cut} \
                OR id IN (SELECT credit_transaction_id FROM payments WHERE created_at >= {cut}) \
             UNION \
             SELECT t.id, t.reversal_of, t.usage_log_id, t.created_at \
             FROM credit_transactions t JOIN ct ON t.id = ct.reversal_of), \
         ul AS ( \
             SELECT id, parent_id FROM usage_logs WHERE id IN (SELECT usage_log_id FROM ct) \
             UNION \
             SELECT l.id, l.parent_id FROM usage_logs l JOIN ul ON l.id = ul.parent_id), \
         conv AS ( \
             SELECT id, last_message_id, created_at FROM conversations \
             WHERE created_at >= {cut} \
                OR id IN (SELECT conversation_id FROM messages WHERE created_at >= {cut})) \
         SELECT 'credit_transactions', count(*) FROM ct WHERE created_at < {cut} \
         UNION ALL SELECT 'usage_logs', count(*) FROM ul \
         UNION ALL SELECT 'conversations', count(*) FROM conv WHERE created_at < {cut} \
         UNION ALL SELECT 'messages', count(*) FROM messages \
             WHERE created_at < {cut} AND id IN (SELECT last_message_id FROM conv) \
         UNION ALL SELECT 'point_transactions', count(*) FROM point_transactions \
             WHERE created_at < {cut} \
               AND id IN (SELECT point_transaction_id FROM daily_login_rewards WHERE claimed_at >= {cut})"
    );
    let closure: BTreeMap<String, i64> =
        db.client().query(closure_sql.as_str(), &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();

    for (table, selected, pulled) in SAAS_EXPECTED_ROWS {
        assert_eq!(db.count(&format!("{table} WHERE {}", filter[*table])), *selected, "{table}: selected rows");
        assert_eq!(closure.get(*table).copied().unwrap_or(0), *pulled, "{table}: closure rows");
    }
}

#[test]
fn saas_config_is_toml_with_database_storage_and_scope() {
    let text = saas_config("postgres://postgres@127.0.0.1:5/db", Path::new("/tmp/out \"x\""));
    let config: toml::Value = toml::from_str(&text).expect("saas_config is TOML");
    assert_eq!(config["database"]["url"].as_str(), Some("postgres://postgres@127.0.0.1:5/db"));
    assert_eq!(config["storage"]["dir"].as_str(), Some("/tmp/out \"x\""));
    assert_eq!(config["scope"]["window"].as_array().map(Vec::len), Some(3));
}

#[test]
fn test_config_puts_database_keys_in_database_and_sections_after_storage_in_order() {
    let config = crate::support::TestConfig::new("postgres://u@h/db", Path::new("/s \"q\""))
        .database("connect_timeout = \"3s\"")
        .section("keep_last = 2")
        .section("[monitor]\nmin_size_mb = 0")
        .section("[http]\nlisten = \"127.0.0.1:0\"\n")
        .toml();
    let v: toml::Value = toml::from_str(&config).expect("TOML");
    assert_eq!(v["database"]["url"].as_str(), Some("postgres://u@h/db"), "{config}");
    assert_eq!(v["database"]["connect_timeout"].as_str(), Some("3s"), "{config}");
    assert_eq!(v["storage"]["dir"].as_str(), Some("/s \"q\""), "{config}");
    assert_eq!(v["storage"]["keep_last"].as_integer(), Some(2), "a headless section continues [storage]: {config}");
    assert_eq!(v["monitor"]["min_size_mb"].as_integer(), Some(0), "{config}");
    assert_eq!(v["http"]["listen"].as_str(), Some("127.0.0.1:0"), "{config}");
    // Tests edit the text by its headers.
    assert!(config.starts_with("[database]\n") && config.contains("\n[monitor]\n"), "{config}");
}

#[test]
fn saas_fixture_loads_identically_with_plain_psql() {
    let by_driver = fresh_db("harness saas driver");
    seed_saas(&by_driver);
    let by_psql = fresh_db("harness saas psql");
    let out = psql_file(&by_psql.url, &saas_sql_path(), &std::env::temp_dir());
    assert!(out.status.success(), "psql -f saas.sql failed:\n{}", String::from_utf8_lossy(&out.stderr));

    let schema = schema_dump(&by_driver.url);
    assert!(schema.contains("CREATE TABLE public.credit_transactions"), "{schema}");
    assert_eq!(schema, schema_dump(&by_psql.url));

    // Same rows, apart from the timestamps (relative to now()).
    for select in [
        "SELECT id, email, password_hash, display_name, role, is_verified, tags, metadata, referred_by_id FROM users",
        "SELECT id, user_id, bio, avatar, locale, settings, bio_length FROM user_profiles",
        "SELECT id, user_id, account_id, type, amount, description, metadata, reversal_of, usage_log_id \
         FROM credit_transactions",
        "SELECT id, user_id, parent_id, model, endpoint, prompt_tokens, completion_tokens, cost, request FROM usage_logs",
        "SELECT id, conversation_id, role, content, token_count FROM messages",
        "SELECT id, user_id, invoice_no, amount, status, provider_ref, raw_response, credit_transaction_id FROM payments",
        "SELECT * FROM permissions",
        "SELECT id, user_id, point_transaction_id, points, streak FROM daily_login_rewards",
    ] {
        assert_eq!(
            query_fingerprint(&mut by_driver.client(), select),
            query_fingerprint(&mut by_psql.client(), select),
            "{select}"
        );
    }
}

#[test]
fn saas_transfer_money_moves_credits_and_keeps_the_total() {
    let db = fresh_db("harness transfer");
    seed_saas(&db);
    let total = "SELECT sum(balance) FROM credit_accounts";
    let before = db.query_one_string(total);
    let balance_of_2 = "SELECT balance FROM credit_accounts WHERE user_id = md5('user:2')::uuid";
    let before_2: f64 = db.query_one_string(balance_of_2).parse().unwrap();

    db.exec("SELECT transfer_money(md5('user:1')::uuid, md5('user:2')::uuid, 12.34)");

    assert_eq!(db.query_one_string(total), before);
    let after_2: f64 = db.query_one_string(balance_of_2).parse().unwrap();
    assert!((after_2 - before_2 - 12.34).abs() < 1e-6, "{before_2} -> {after_2}");
    assert_eq!(db.count("transfers WHERE note = 'transfer_money'"), 1);
    let err = db.client().batch_execute("SELECT transfer_money(md5('user:1')::uuid, md5('user:1')::uuid, 1)");
    assert!(err.is_err(), "a transfer to oneself must fail");
}

#[test]
fn a_cluster_can_be_stopped_and_started_again_keeping_its_data() {
    let cluster = Cluster::start();
    let url = cluster.url("postgres");
    assert_eq!(url, format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port()));
    connect(&url).batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)").unwrap();

    cluster.stop();
    assert!(Client::connect(&url, NoTls).is_err(), "server still answers after stop()");

    cluster.start_again();
    let x: i32 = connect(&url).query_one("SELECT x FROM kept", &[]).unwrap().get(0);
    assert_eq!(x, 42);

    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(Client::connect(&url, NoTls).is_err(), "server still answers after drop");
}

#[test]
fn lifeboat_command_hides_the_developers_database_settings() {
    for leaky in ["PGHOST", "PGPASSWORD", "POSTGRES_DB", "DATABASE_URL", "LIFEBOAT_CONFIG", "SMTP_PASS", "RUST_LOG"] {
        assert!(leaks_into_lifeboat(leaky), "{leaky} would reach lifeboat");
    }
    for kept in ["PATH", "HOME", "TMPDIR", "LANG"] {
        assert!(!leaks_into_lifeboat(kept), "{kept} is removed");
    }
    let help = lifeboat().arg("--help").output().expect("run lifeboat --help");
    assert!(help.status.success(), "{}", String::from_utf8_lossy(&help.stderr));
}

// covers: NFR-6.1
#[test]
fn ci_tests_against_postgresql_15_server_and_client() {
    // Other majors may be used locally (FR-14.7 decides what works); CI is
    // where the promise "PostgreSQL 15 is tested" is kept.
    let db = fresh_db("harness version");
    let server_major = db.query_one_i64("SELECT current_setting('server_version_num')::int / 10000");
    let out = crate::support::clean_command(crate::support::pg_bin("pg_dump")).arg("--version").output().unwrap();
    let client = String::from_utf8_lossy(&out.stdout).into_owned();
    let client_major: i64 = client.split_whitespace().nth(2).and_then(|v| v.split('.').next()?.parse().ok()).unwrap();
    assert!(client_major >= server_major, "pg_dump {client} must be at least the server's major {server_major}");
    if std::env::var_os("CI").is_some() {
        assert_eq!((server_major, client_major), (15, 15), "CI runs PostgreSQL 15: {client}");
    }
}
