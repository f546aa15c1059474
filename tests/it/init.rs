//! `lifeboat init` on a schema it has never seen (the SaaS fixture): the
//! config it writes passes `plan`, and the backup it drives restores with
//! every foreign key valid; an existing file is never replaced unasked.

use std::path::Path;

use crate::support::{self, fk_report, fresh_db, lifeboat};
use crate::support::{assert_exit, stderr};

fn init(url: &str, output: &Path, extra: &[&str]) -> std::process::Output {
    lifeboat()
        .args(["init", "--database-url", url, "--output", output.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("cannot run lifeboat")
}

/// The defaults (small tables in full) and a zero size limit, which windows
/// every table it can and so exercises the closure.
const VARIANTS: [(&str, &[&str]); 2] = [("default", &[]), ("windows", &["--full-below-mb", "0"])];

/// Runs `init` with `extra` into `dir`/`variant`.toml: the file and its text.
fn init_config(url: &str, dir: &Path, variant: &str, extra: &[&str]) -> (std::path::PathBuf, String) {
    let config = dir.join(format!("{variant}.toml"));
    let o = init(url, &config, extra);
    assert_exit(&o, 0);
    let text = std::fs::read_to_string(&config).unwrap();
    (config, text)
}

/// Backs up with the config `cfg` into `out` and restores into a new database named after `target`.
fn backup_and_restore(cfg: &str, out: &Path, target: &str) -> support::TestDb {
    let o = support::run(&["--config", cfg, "--json", "backup", "--output-dir", out.to_str().unwrap()]);
    assert_exit(&o, 0);
    let archive = support::json(&o)["archive"].as_str().unwrap().to_string();
    let target = fresh_db(target);
    // Made with --output-dir, not into the config's store: its key is named.
    let key = support::its_store_key(&archive);
    let o = support::run(&["--config", cfg, "restore", &archive, "--db", &target.url, "--trusted-key", &key]);
    assert_exit(&o, 0);
    target
}

// covers: FR-26.1, FR-26.2, FR-26.4, FR-26.5, FR-8.1, FR-4.8
#[test]
fn init_writes_a_config_whose_backup_restores_with_every_fk_valid() {
    let source = fresh_db("init_src");
    support::seed_saas(&source);
    let dir = tempfile::tempdir().unwrap();
    for (variant, extra) in VARIANTS {
        let (config, text) = init_config(&source.url, dir.path(), variant, extra);
        // A log, but it holds what a user was charged and a ledger references it (FR-26.5).
        assert!(
            text.contains(
                "\"usage_logs\", # the name (\"logs\") says a log, but it holds money-like columns (\"cost\")"
            ),
            "{variant}:\n{text}"
        );
        assert!(text.contains("\"sessions\", # sessions:"), "{variant}:\n{text}");
        assert!(text.contains("\"users\", # referenced by"), "{variant}:\n{text}");
        assert!(text.contains("\"_prisma_migrations\", # migration history"), "{variant}:\n{text}");
        assert!(text.contains("# Estimated archive size: ~"), "{variant}:\n{text}");
        if variant == "windows" {
            assert!(text.contains("tables = [\"daily_login_rewards\"]\ncolumn = \"claimed_at\""), "{text}");
            // Named after the full table it references: windowing it would bring
            // older codes back without their usages (FR-26.5).
            assert!(text.contains("\"promo_code_usages\", # part of public.promo_codes"), "{text}");
            assert!(text.contains("tables = [\"payments\"]\ncolumn = \"created_at\""), "{text}");
        }

        let cfg = config.to_str().unwrap();
        let o = support::run(&["--config", cfg, "--json", "plan"]);
        assert_exit(&o, 0);
        let plan = support::json(&o);
        let unclassified: Vec<_> =
            plan["tables"].as_array().unwrap().iter().filter(|t| t["unclassified"] == true).collect();
        assert!(unclassified.is_empty(), "{variant}: init classifies every table: {unclassified:?}");

        let out = dir.path().join(format!("{variant}-backups"));
        let target = backup_and_restore(cfg, &out, &format!("init_{variant}"));
        // A small database (the fixture's archive is well under 1 MB) gets no fixed lower size
        // bound, so `check` is healthy after its first backup instead of paging (issue 22).
        assert!(text.contains("[monitor]\n# The estimated archive (~"), "{variant}:\n{text}");
        let o = lifeboat().env("LIFEBOAT_STORAGE__DIR", &out).args(["--config", cfg, "check"]).output().unwrap();
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

// covers: FR-26.5, FR-26.4, FR-8.1
#[test]
fn init_keeps_smart_ai_hubs_ledger_moderation_trail_and_document_chunks() {
    let source = fresh_db("init_sah");
    support::seed_saas(&source);
    source.exec(&std::fs::read_to_string("tests/fixtures/smart-ai-hub-extra.sql").unwrap());
    source.exec("ANALYZE");
    let dir = tempfile::tempdir().unwrap();
    for (variant, extra) in VARIANTS {
        let (config, text) = init_config(&source.url, dir.path(), variant, extra);
        let o = init(&source.url, &dir.path().join(format!("{variant}-json.toml")), &[extra, &["--json"]].concat());
        assert_exit(&o, 0);
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let decision = |name: &str| {
            json["decisions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["table"] == name)
                .unwrap_or_else(|| panic!("{variant}: no decision for {name}: {json}"))
                .clone()
        };
        // Neither the ledger nor the moderation trail comes back empty; each
        // says why in the file.
        for (name, why) in [
            (
                "auto_topup_logs",
                "it holds money-like columns (\"credits_deducted\", \"balance_before\", \"balance_after\")",
            ),
            (
                "block_logs",
                if variant == "default" { "it is small" } else { "its \"blocked_by\" column records who acted" },
            ),
        ] {
            let d = decision(name);
            assert_ne!(d["mode"], "schema", "{variant}: {d}");
            assert!(d["reason"].as_str().unwrap().contains(why), "{variant}: {d}");
            assert!(text.contains(why), "{variant}: the reason of {name} is in the file:\n{text}");
        }
        // The chunks of a document kept in full are never windowed away from it.
        assert_eq!(decision("documents")["mode"], "full", "{variant}");
        let chunks = decision("document_chunks");
        assert_eq!(chunks["mode"], "full", "{variant}: {chunks}");
        if variant == "windows" {
            assert!(
                text.contains("\"document_chunks\", # part of public.documents"),
                "{variant}: the reason is in the file:\n{text}"
            );
            // A window under a full parent says what it leaves out, counted.
            for name in ["auto_topup_logs", "block_logs"] {
                let d = decision(name);
                assert_eq!(d["mode"], "window", "{variant}: {d}");
                let r = d["reason"].as_str().unwrap();
                assert!(
                    r.contains("public.users (their parents) are kept in full")
                        && r.contains("rows by the plan's estimate"),
                    "{d}"
                );
            }
        } else {
            assert_eq!(decision("auto_topup_logs")["mode"], "full");
            assert_eq!(decision("block_logs")["mode"], "full");
        }
        // Request logs without money or an actor stay schema only when large.
        let usage = decision("agent_usage_logs");
        assert_eq!(usage["mode"], if variant == "default" { "full" } else { "schema" }, "{variant}: {usage}");

        // The proposal backs up and restores with every row of the three.
        let out = dir.path().join(format!("{variant}-backups"));
        let target = backup_and_restore(config.to_str().unwrap(), &out, &format!("init_sah_{variant}"));
        let fks = fk_report(&mut target.client());
        assert!(fks.iter().all(|(_, valid)| *valid), "{variant}: {fks:?}");
        for (name, rows) in [("auto_topup_logs", 1), ("block_logs", 1), ("documents", 2), ("document_chunks", 2)] {
            assert_eq!(target.count(name), rows, "{variant}: {name}");
        }
    }
}
