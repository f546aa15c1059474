//! The command line as a user meets it: configuration errors are clear and
//! exit 2, the effective config never shows secrets, `--json` everywhere.

use crate::support::{self, fresh_db};
use crate::support::{assert_exit, run, stderr, Seeded};

fn with_config(toml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = support::write_config(d.path(), toml);
    (d, p)
}

// covers: FR-9.3, FR-11.2, FR-10.4, US-6/AC-3, US-7/AC-3, TS-2.8
#[test]
fn config_and_scope_errors_are_explained_and_exit_2() {
    let db = fresh_db("cli_errors");
    support::seed_saas(&db);
    let base = support::saas_config(&db.url, std::path::Path::new("/tmp/unused"));
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        (
            base.replace("[storage]", "[storage]\nbogus_key = 1"),
            "unknown key",
            vec!["bogus_key", "line", "name_prefix"],
        ),
        (
            base.replace("\"sessions\"]", "\"sessions\", \"no_such_table\"]"),
            "unknown table",
            vec!["public.no_such_table", "does not exist", "Tables that exist"],
        ),
        (
            base.replacen("column = \"created_at\"", "column = \"createdAt\"", 1),
            "unknown column",
            vec!["createdAt", "credit_transactions", "its columns are"],
        ),
        (
            base.replacen("column = \"created_at\"", "column = \"amount\"", 1),
            "not a time column",
            vec!["amount", "numeric", "timestamp"],
        ),
        (base.replacen("keep = \"3 months\"", "keep = \"3 mnths\"", 1), "bad duration", vec!["3 mnths", "90 days"]),
    ];
    for (toml, what, needles) in cases {
        let (_d, p) = with_config(&toml);
        for cmd in ["plan", "backup"] {
            let o = run(&["--config", p.to_str().unwrap(), cmd]);
            assert_exit(&o, 2);
            let err = stderr(&o);
            for n in &needles {
                assert!(err.contains(n), "{what} ({cmd}): {n:?} missing from:\n{err}");
            }
        }
    }
}

// covers: FR-24.2, FR-24.3, FR-11.1
#[test]
fn an_unreachable_database_is_a_connection_error_exit_2() {
    let (_d, p) = with_config("[database]\nhost = \"127.0.0.1\"\nport = 1\nconnect_timeout = \"2s\"\n");
    let o = run(&["--config", p.to_str().unwrap(), "--json", "plan"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("cannot connect to PostgreSQL at 127.0.0.1:1"), "{}", stderr(&o));
    assert_eq!(support::json(&o)["exit_code"], 2);
    // storage.dir defaults to ./backups: nothing may appear there.
    let cwd = tempfile::tempdir().unwrap();
    let o =
        support::lifeboat().args(["--config", p.to_str().unwrap(), "backup"]).current_dir(cwd.path()).output().unwrap();
    assert_exit(&o, 2);
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "no storage directory before a connection exists");
    let o = run(&["--config", "/nonexistent/lifeboat.toml", "plan"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("/nonexistent/lifeboat.toml"), "{}", stderr(&o));
}

// covers: FR-11.7, SC-2.4, SC-4.2, TS-2.12
#[test]
fn secrets_never_appear_in_config_output_errors_or_logs() {
    let secret = "Zq9-very-secret-pw";
    let d = tempfile::tempdir().unwrap();
    let pwfile = d.path().join("db_password");
    std::fs::write(&pwfile, format!("{secret}\n")).unwrap();
    let p = support::write_config(d.path(), "[database]\nhost = \"127.0.0.1\"\nport = 1\nconnect_timeout = \"1s\"\n");
    let runs = [
        support::lifeboat()
            .args(["--config", p.to_str().unwrap(), "config"])
            .env("POSTGRES_PASSWORD_FILE", &pwfile)
            .output()
            .unwrap(),
        support::lifeboat()
            .args(["--config", p.to_str().unwrap(), "--json", "config"])
            .env("POSTGRES_PASSWORD", secret)
            .output()
            .unwrap(),
        support::lifeboat()
            .args(["--config", p.to_str().unwrap(), "-v", "--json", "backup"])
            .env("POSTGRES_PASSWORD", secret)
            .env("LIFEBOAT_LOG", "trace")
            .output()
            .unwrap(),
        support::lifeboat()
            .args(["--config", p.to_str().unwrap(), "plan"])
            .env("DATABASE_URL", format!("postgresql://app:{secret}@127.0.0.1:1/app?schema=public"))
            .output()
            .unwrap(),
        support::lifeboat()
            .args([
                "--config",
                p.to_str().unwrap(),
                "plan",
                "--database-url",
                &format!("postgres://u:{secret}@127.0.0.1:1/x?bad_option=1"),
            ])
            .output()
            .unwrap(),
    ];
    for o in &runs {
        let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o));
        assert!(!all.contains(secret) && !all.contains("Zq9"), "secret leaked:\n{all}");
    }
    assert_exit(&runs[0], 0);
    assert!(String::from_utf8_lossy(&runs[0].stdout).contains("password = \"***\""));
    assert_exit(&runs[2], 2);
}

// covers: FR-11.6, FR-11.8
#[test]
fn config_shows_the_effective_values_after_precedence() {
    let (_d, p) = with_config("[database]\nhost = \"from-file\"\nname = \"filedb\"\n[storage]\ndir = \"/from/file\"\n");
    let o = support::lifeboat()
        .args(["--config", p.to_str().unwrap(), "--json", "config"])
        .env("POSTGRES_HOST", "from-env")
        .env("LIFEBOAT_STORAGE__NAME_PREFIX", "nightly")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let c = support::json(&o);
    assert_eq!(c["database"]["host"], "from-env");
    assert_eq!(c["database"]["name"], "filedb");
    assert_eq!(c["storage"]["name_prefix"], "nightly");
    assert_eq!(c["storage"]["dir"], "/from/file");
}

// covers: FR-9.1, FR-9.6, FR-9.7, US-6/AC-2, US-6/AC-4, US-6/AC-5
#[test]
fn plan_changes_nothing_and_matches_what_backup_does() {
    let s = Seeded::new("plan_matches");
    let before = support::all_fingerprints(&s.db.url, "true");
    let o = run(&["--config", s.config.to_str().unwrap(), "--json", "plan"]);
    assert_exit(&o, 0);
    let plan = support::json(&o);
    assert_eq!(support::all_fingerprints(&s.db.url, "true"), before, "plan wrote nothing");
    assert!(s.stored().is_empty(), "plan creates no files");
    let report = s.backup();
    for t in plan["tables"].as_array().unwrap() {
        let r = report["tables"].as_array().unwrap().iter().find(|r| r["name"] == t["name"]).unwrap();
        assert_eq!((&t["mode"], &t["closure_rows"]), (&r["mode"], &r["closure_rows"]), "{}", t["name"]);
    }
}

// covers: TS-2.13
#[test]
fn every_example_config_shipped_in_the_repository_loads() {
    // The examples name Docker secrets under /run/secrets/, which do not exist
    // here: point the same setting at a real file, so the example is loaded
    // and validated in full (an error from the missing secret would stop the
    // load before anything else is checked).
    let secrets = tempfile::tempdir().unwrap();
    let pw = secrets.path().join("db_password");
    std::fs::write(&pw, "example-secret\n").unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "toml") {
            let o = support::lifeboat()
                .args(["--config", e.path().to_str().unwrap(), "--json", "config"])
                .env("LIFEBOAT_DATABASE__PASSWORD_FILE", &pw)
                .env("LIFEBOAT_EMAIL__PASSWORD_FILE", &pw)
                .output()
                .unwrap();
            assert_exit(&o, 0);
            let shown = support::json(&o);
            let text = std::fs::read_to_string(e.path()).unwrap();
            let file: toml::Table = text.parse().unwrap();
            // What the file says is what was loaded (spot checks per section).
            for (section, key) in
                [("database", "host"), ("database", "name"), ("storage", "dir"), ("files", "base_dir")]
            {
                if let Some(v) = file.get(section).and_then(|s| s.get(key)) {
                    assert_eq!(shown[section][key].as_str(), v.as_str(), "{}: {section}.{key}", e.path().display());
                }
            }
            assert_eq!(shown["database"]["password"], "***", "{}: the secret file was read", e.path().display());
            n += 1;
        }
    }
    assert!(n >= 1);
}

// covers: FR-24.1, FR-24.2
#[test]
fn help_documents_the_exit_codes() {
    let o = run(&["--help"]);
    assert_exit(&o, 0);
    let h = String::from_utf8_lossy(&o.stdout);
    assert!(h.contains("Exit codes") && h.contains("could not run"), "{h}");
    assert_exit(&run(&["no-such-command"]), 2);
}

// covers: FR-24.3
#[test]
fn a_reader_that_goes_away_does_not_crash_lifeboat() {
    let mut child = support::lifeboat()
        .args(["--json", "config"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

// covers: US-6/AC-1, FR-9.2, FR-9.4, FR-9.5
#[test]
fn plan_shows_every_table_with_mode_cutoff_closure_and_the_config_files() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join(".env.production"), "A=1\n").unwrap();
    let section = format!(
        "[files]\nbase_dir = {}\ninclude = [\".env.production\"]\noptional = [\"monitoring/**\"]\n",
        support::toml_string(&files.path().to_string_lossy())
    );
    let s = Seeded::with_config("plan_text", &section);
    let o = run(&["--config", s.config.to_str().unwrap(), "plan"]);
    assert_exit(&o, 0);
    let text = String::from_utf8_lossy(&o.stdout);
    let line = |table: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("public.{table} ")))
            .unwrap_or_else(|| panic!("{table} missing:\n{text}"))
    };
    for (table, _, _) in support::SAAS_EXPECTED_ROWS {
        line(table);
    }
    let ct = line("credit_transactions");
    assert!(
        ct.contains("window") && ct.contains("created_at >= ") && ct.contains("(3 months)") && ct.contains(" 35 "),
        "{ct}"
    );
    assert!(line("usage_logs").contains("structure only") && line("usage_logs").contains(" 1320 "));
    assert!(line("feature_flags").contains("[unclassified]"));
    assert!(text.contains(".env.production  (4 B)"), "{text}");
    assert!(text.contains("monitoring/**  MISSING (optional)"), "{text}");
    assert!(text.contains("Estimated archive size"), "{text}");
    // Progress goes to stderr, the plan to stdout.
    assert!(stderr(&o).contains("lifeboat: plan") && !text.contains("lifeboat: plan"));
}

// covers: FR-11.3, US-13/AC-2
#[test]
fn a_stray_lifeboat_variable_is_ignored_but_a_typo_in_an_override_is_an_error() {
    // docker-compose `env_file` lines of other tools share the prefix.
    let o = support::lifeboat()
        .args(["config"])
        .env("LIFEBOAT_VERSION", "1")
        .env("LIFEBOAT_IMAGE_TAG", "v2-secret-tag")
        .env("LIFEBOAT_LOG", "lifeboat=debug")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("LIFEBOAT_VERSION") && err.contains("ignored"), "a debug log names it:\n{err}");
    assert!(!err.contains("v2-secret-tag"), "the value is never logged:\n{err}");

    let o = support::lifeboat().args(["config"]).env("LIFEBOAT_STORAGE__DIRR", "x").output().unwrap();
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("LIFEBOAT_STORAGE__DIRR") && err.contains("`dir`"), "names the valid keys:\n{err}");

    let o = support::lifeboat().args(["config"]).env("LIFEBOAT_STORAGEE__DIR", "x").output().unwrap();
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("LIFEBOAT_STORAGEE__DIR") && err.contains("`storage`"), "names the valid sections:\n{err}");
}

// covers: FR-24.1
#[test]
fn the_command_line_definition_passes_clap_s_own_checks() {
    // clap's recommended test: duplicate flags, conflicting `global` args,
    // bad defaults and the like panic here instead of at a user's first
    // unusual command line.
    use clap::CommandFactory;
    lifeboat::cli::Cli::command().debug_assert();
}
