//! `lifeboat init` on a schema it has never seen (the SaaS fixture): the
//! config it writes passes `plan`, and the backup it drives restores with
//! every foreign key valid; an existing file is never replaced unasked.

use std::path::Path;

use crate::flow::{self, assert_exit, stderr};
use crate::support::{self, fk_report, fresh_db, lifeboat};

fn init(url: &str, output: &Path, extra: &[&str]) -> std::process::Output {
    lifeboat()
        .args(["init", "--database-url", url, "--output", output.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("cannot run lifeboat")
}

// covers: FR-26.1, FR-26.2, FR-26.4, FR-8.1
#[test]
fn init_writes_a_config_whose_backup_restores_with_every_fk_valid() {
    let source = fresh_db("init_src");
    support::seed_saas(&source);
    let dir = tempfile::tempdir().unwrap();
    // The defaults (small tables in full) and a zero size limit, which
    // windows every table it can and so exercises the closure.
    for (variant, extra) in [("default", &[][..]), ("windows", &["--full-below-mb", "0"][..])] {
        let config = dir.path().join(format!("{variant}.toml"));
        let o = init(&source.url, &config, extra);
        assert_exit(&o, 0);
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains("\"usage_logs\", # the name (\"logs\") says a log"), "{variant}:\n{text}");
        assert!(text.contains("\"sessions\", # sessions:"), "{variant}:\n{text}");
        assert!(text.contains("\"users\", # referenced by"), "{variant}:\n{text}");
        assert!(text.contains("\"_prisma_migrations\", # migration history"), "{variant}:\n{text}");
        assert!(text.contains("# Estimated archive size: ~"), "{variant}:\n{text}");
        if variant == "windows" {
            assert!(text.contains("tables = [\"promo_code_usages\"]\ncolumn = \"used_at\""), "{text}");
            assert!(text.contains("tables = [\"payments\"]\ncolumn = \"created_at\""), "{text}");
        }

        let cfg = config.to_str().unwrap();
        let o = flow::run(&["--config", cfg, "--json", "plan"]);
        assert_exit(&o, 0);
        let plan = flow::json(&o);
        let unclassified: Vec<_> =
            plan["tables"].as_array().unwrap().iter().filter(|t| t["unclassified"] == true).collect();
        assert!(unclassified.is_empty(), "{variant}: init classifies every table: {unclassified:?}");

        let out = dir.path().join(format!("{variant}-backups"));
        let o = flow::run(&["--config", cfg, "--json", "backup", "--output-dir", out.to_str().unwrap()]);
        assert_exit(&o, 0);
        let archive = flow::json(&o)["archive"].as_str().unwrap().to_string();
        let target = fresh_db(&format!("init_{variant}"));
        // Made with --output-dir, not into the config's store: its key is named.
        let key = flow::its_store_key(&archive);
        let o = flow::run(&["--config", cfg, "restore", &archive, "--db", &target.url, "--trusted-key", &key]);
        assert_exit(&o, 0);
        let fks = fk_report(&mut target.client());
        assert_eq!(fks.len(), 31, "{variant}: every foreign key of the fixture: {fks:?}");
        assert!(fks.iter().all(|(_, valid)| *valid), "{variant}: {fks:?}");
        // Full tables arrive whole.
        assert_eq!(target.count("users"), 200, "{variant}");
        assert_eq!(target.count("_prisma_migrations"), 12, "{variant}");
        assert_eq!(target.count("sessions"), 0, "{variant}");
    }
}

// covers: FR-26.3
#[test]
fn init_never_replaces_an_existing_file_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lifeboat.toml");
    std::fs::write(&config, "# mine\n").unwrap();
    // Port 1: the refusal comes before any connection.
    let o = init("postgres://postgres@127.0.0.1:1/x", &config, &[]);
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("already exists") && err.contains("--force") && err.contains("lifeboat.toml"), "{err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n");

    let db = fresh_db("init_force");
    db.exec("CREATE TABLE t (id int PRIMARY KEY); ANALYZE t;");
    let o = init(&db.url, &config, &["--force"]);
    assert_exit(&o, 0);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("full = [\n  \"t\", #"), "{text}");
}
