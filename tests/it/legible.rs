//! What people read, legible at a glance (issue 22, item 6): the backup bar
//! names the table being copied and its row count moves; sizes in one unit
//! (decimal MB); the text log in the configured time zone; "N closure rows"
//! beside a schema-only or windowed table in `plan` and the report; and
//! `scripts/demo` finds the binary wherever cargo puts it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use lifeboat::config::{resolve, Overrides};
use lifeboat::events::{CancelToken, Event};
use lifeboat::store::LocalStore;

use crate::support::{self, fresh_db, toml_string};
use crate::support::{assert_exit, run, stderr, Seeded};

/// Rows in `big`: enough bytes (~9 MB of CSV) for many 256 KiB chunks.
const BIG_ROWS: i64 = 120_000;

/// A database with one big table and one small one, and its config text.
fn big_table(hint: &str, storage: &Path) -> (support::TestDb, String) {
    let db = fresh_db(hint);
    db.exec(&format!(
        "CREATE TABLE big (id int PRIMARY KEY, payload text); \
         INSERT INTO big SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, {BIG_ROWS}) g; \
         CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small SELECT generate_series(1, 10); ANALYZE"
    ));
    let text = format!(
        "[database]\nurl = {}\n[storage]\ndir = {}\n[scope]\ndefault = \"full\"\n[monitor]\nmin_size_mb = 0\n",
        toml_string(&db.url),
        toml_string(&storage.to_string_lossy())
    );
    (db, text)
}

// covers: FR-27.1
#[test]
fn the_backup_names_the_table_being_copied_and_counts_rows_as_they_go() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("backups");
    let (_db, text) = big_table("bar_events", &storage);
    let config = resolve(Some((&tmp.path().join("c.toml"), &text)), &BTreeMap::new(), &Overrides::default()).unwrap();
    let events = Mutex::new(Vec::new());
    let record = |e: Event| {
        if matches!(e, Event::Rows(_) | Event::Copying(_) | Event::Table { .. }) {
            events.lock().unwrap().push(e);
        }
    };
    let store = LocalStore::new(&storage, "critical_backup");
    lifeboat::backup::run(&config, &store, &record, &CancelToken::new()).unwrap();
    let events = events.into_inner().unwrap();

    let start = events.iter().position(|e| matches!(e, Event::Copying(t) if t == "public.big")).expect("big named");
    let end = events.iter().position(|e| matches!(e, Event::Table { name, .. } if name == "public.big")).unwrap();
    let moving: Vec<u64> = events[start..end]
        .iter()
        .take_while(|e| !matches!(e, Event::Copying(t) if t != "public.big"))
        .filter_map(|e| match e {
            Event::Rows(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert!(moving.len() >= 5, "the count moves while big is copied, not once at the end: {moving:?}");
    assert_eq!(moving.iter().sum::<u64>(), BIG_ROWS as u64, "every row counted once");
    let all_rows: u64 = events.iter().filter_map(|e| if let Event::Rows(n) = e { Some(*n) } else { None }).sum();
    assert_eq!(all_rows, BIG_ROWS as u64 + 10);
}

/// `lifeboat ARGS` on a pseudo-terminal, and the terminal's text.
fn on_a_terminal(args: &[&str]) -> (std::process::Output, String) {
    let o = support::on_a_terminal(args);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    (o, text)
}

// covers: FR-27.1, FR-24.4
#[test]
fn the_bar_on_a_terminal_shows_the_table_decimal_sizes_and_a_row_count_below_the_total() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("backups");
    let (_db, text) = big_table("bar_tty", &storage);
    let config = support::write_config(tmp.path(), &text);
    let (o, tty) = on_a_terminal(&["--config", config.to_str().unwrap(), "backup"]);
    assert_exit(&o, 0);
    assert!(tty.contains("public.big · "), "the bar names the table:\n{tty}");
    assert!(!tty.contains("MiB") && !tty.contains("KiB"), "one unit, decimal:\n{tty}");
    assert!(tty.contains(" MB/") || tty.contains(" KB/"), "{tty}");
    // A frame drawn mid-copy: some rows counted, not yet all.
    let total = BIG_ROWS + 10;
    let counts: Vec<i64> =
        tty.split("public.big · ").skip(1).filter_map(|rest| rest.split('/').next()?.trim().parse().ok()).collect();
    assert!(counts.iter().any(|&n| n > 0 && n < total), "no frame with a moving count: {counts:?}\n{tty}");
}

// covers: FR-9.2, FR-8.1
#[test]
fn plan_and_report_say_the_closure_rows_beside_schema_only_and_windowed_tables() {
    let s = Seeded::new("closure_note");
    let cfg = s.config.to_str().unwrap();
    let o = run(&["--config", cfg, "plan"]);
    assert_exit(&o, 0);
    let plan = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = |text: &str, table: &str| -> String {
        text.lines().find(|l| l.starts_with(table)).unwrap_or_else(|| panic!("no {table} in:\n{text}")).to_string()
    };
    let usage = line(&plan, "public.usage_logs ");
    assert!(usage.contains("structure only; + 1320 closure rows (referenced by rows kept elsewhere)"), "{usage}");
    assert!(line(&plan, "public.conversations ").contains("+ 39 closure rows"), "{plan}");
    assert!(!line(&plan, "public.users ").contains("closure rows"), "a full table needs no note");

    let o = run(&["--config", cfg, "backup", "--no-deliver"]);
    assert_exit(&o, 0);
    let report = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(line(&report, "public.usage_logs ").contains("+ 1320 closure rows"), "{report}");
    assert!(line(&report, "public.conversations ").contains("+ 39 closure rows"), "{report}");
}

// covers: FR-25.2, FR-25.5
#[test]
fn the_text_log_is_in_the_configured_time_zone_and_json_lines_stay_utc() {
    let s = Seeded::new("log_zone");
    let (text_log, json_log) = (s.dir.path().join("text.log"), s.dir.path().join("json.log"));
    let base = std::fs::read_to_string(&s.config).unwrap();
    for (log, format) in [(&text_log, "text"), (&json_log, "json")] {
        let toml = format!(
            "{base}\n[schedule]\ntimezone = \"Asia/Bangkok\"\n[log]\nfile = {}\nformat = \"{format}\"\n",
            toml_string(&log.to_string_lossy())
        );
        std::fs::write(&s.config, toml).unwrap();
        let o = run(&["--config", s.config.to_str().unwrap(), "backup", "--no-deliver"]);
        assert_exit(&o, 0);
    }
    let text = std::fs::read_to_string(&text_log).unwrap();
    let first = text.lines().next().unwrap();
    // 2026-12-07T09:00:00.123456+07:00  INFO lifeboat::run: …
    let stamp = first.split_whitespace().next().unwrap();
    assert!(stamp.ends_with("+07:00"), "{first}");
    assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "{first}");
    let json = std::fs::read_to_string(&json_log).unwrap();
    let line: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
}

// covers: FR-24.4
#[test]
fn scripts_demo_runs_the_binary_cargo_built_wherever_the_target_dir_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let demo = std::fs::read_to_string(root.join("scripts/demo")).unwrap();
    // The script's own lines, verbatim: where the target dir is, and the binary in it.
    let resolve: Vec<&str> = demo.lines().filter(|l| l.starts_with("target_dir=") || l.starts_with("lb=")).collect();
    assert_eq!(resolve.len(), 2, "scripts/demo resolves target_dir, then lb: {resolve:?}");
    let script = format!("set -euo pipefail\n{}\necho \"$lb\"\n", resolve.join("\n"));
    let elsewhere = tempfile::tempdir().unwrap();
    for (target, expected) in [
        (Some(elsewhere.path().to_path_buf()), elsewhere.path().join("release/lifeboat")),
        (None, root.join("target/release/lifeboat")),
    ] {
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script]).current_dir(root).env_remove("CARGO_TARGET_DIR");
        if let Some(t) = &target {
            cmd.env("CARGO_TARGET_DIR", t);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            expected.to_str().unwrap(),
            "CARGO_TARGET_DIR={target:?}"
        );
    }
}
