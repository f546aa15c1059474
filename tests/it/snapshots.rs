//! insta snapshots of the texts people read: `lifeboat plan`'s output,
//! BACKUP_INFO.txt, manifest.json, and key error messages. Whatever changes
//! from run to run (times, the random database name, ports, temp paths,
//! versions, estimates, checksums and sizes of data that holds random
//! uuids) is masked by insta filters; everything else must stay as it is.
//! `cargo insta review` (or INSTA_UPDATE=always) accepts a deliberate change.

use std::path::Path;

use crate::support;
use crate::support::{members, run, stderr, Seeded};

/// The filters every snapshot here uses.
fn settings(tmp: Option<&Path>) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    if let Some(tmp) = tmp {
        s.add_filter(&regex_escape(&tmp.display().to_string()), "[TMP]");
    }
    s.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[TIME]");
    s.add_filter(r"critical_backup_\d{8}_\d{6}", "critical_backup_[STAMP]");
    s.add_filter(r"\blb_[a-z0-9_]+", "[DB]");
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    s.add_filter(r"(PostgreSQL |pg_dump |lifeboat )\d+\.\d+(\.\d+)?( \([^)]*\))?", "$1[VERSION]");
    s.add_filter(r#""(server_version|pg_dump_version|tool_version)": "[^"]*""#, r#""$1": "[VERSION]""#);
    s.add_filter(r#""sha256": "[0-9a-f]{64}""#, r#""sha256": "[SHA256]""#);
    s.add_filter(r#""bytes": \d+"#, r#""bytes": "[BYTES]""#);
    // Each store generates its own signing key. No `\b` after it: a key may end in `+` or `/`.
    s.add_filter(r"\bRW[A-Za-z0-9+/]{54}", "[SIGNING KEY]");
    s.add_filter(r"minisign key [0-9A-F]{16}", "minisign key [KEY ID]");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '/' { c.to_string() } else { format!("\\{c}") }).collect()
}

// covers: FR-9.1, FR-9.2
#[test]
fn plan_output_reads_the_same() {
    let s = Seeded::new("snap_plan");
    let o = run(&["--config", s.config.to_str().unwrap(), "plan"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut settings = settings(Some(s.dir.path()));
    // Estimates come from the planner's statistics, which autovacuum may
    // refresh at any moment.
    settings.add_filter(r"(?m)^(\S+\s+(?:full|window|schema))\s+\d+\s+[\d.]+ [KMG]?B", "$1  [EST] [SIZE]");
    settings.add_filter(r"Estimated archive size: ~[\d.]+ [KMG]?B", "Estimated archive size: ~[SIZE]");
    settings.bind(|| insta::assert_snapshot!("plan_text", text));
}

// covers: FR-12.1, FR-12.5, FR-12.8, FR-5.6
#[test]
fn backup_info_and_manifest_read_the_same() {
    let s = Seeded::new("snap_archive");
    let report = s.backup();
    let archive = report["archive"].as_str().unwrap();
    let all = members(Path::new(archive));
    let get = |name: &str| {
        let (_, data) = all.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} in the archive"));
        String::from_utf8(data.clone()).unwrap()
    };
    let settings = settings(Some(s.dir.path()));
    settings.bind(|| {
        insta::assert_snapshot!("backup_info_txt", get(lifeboat::archive::INFO));
        insta::assert_snapshot!("manifest_json", get(lifeboat::archive::MANIFEST));
    });
}

// covers: FR-11.2
#[test]
fn a_config_typo_names_the_file_line_and_valid_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write_config(dir.path(), "[database]\nhost = \"db\"\nhots = \"x\"\n");
    let o = run(&["--config", config.to_str().unwrap(), "config"]);
    assert_eq!(o.status.code(), Some(2));
    settings(Some(dir.path())).bind(|| insta::assert_snapshot!("error_config_typo", stderr(&o)));
}

// covers: FR-14.10
#[test]
fn an_unreachable_database_says_where_and_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens there.
    let config = support::write_config(dir.path(), "[database]\nurl = \"postgres://backup@127.0.0.1:1/app\"\n");
    let o = run(&["--config", config.to_str().unwrap(), "plan"]);
    assert_eq!(o.status.code(), Some(2));
    settings(Some(dir.path())).bind(|| insta::assert_snapshot!("error_unreachable_database", stderr(&o)));
}

// covers: FR-7.2
#[test]
fn a_non_empty_restore_target_is_refused_with_what_it_holds() {
    let s = Seeded::new("snap_refuse");
    let report = s.backup();
    let target = support::fresh_db("snap_refuse_target");
    target.exec("CREATE TABLE keep_me (id int); CREATE TABLE and_me (id int)");
    let o = run(&[
        "--config",
        s.config.to_str().unwrap(),
        "restore",
        report["archive"].as_str().unwrap(),
        "--db",
        &target.url,
    ]);
    assert_eq!(o.status.code(), Some(2));
    settings(Some(s.dir.path())).bind(|| insta::assert_snapshot!("error_non_empty_target", stderr(&o)));
}
