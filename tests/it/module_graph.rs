//! `scripts/module-graph`, the layout check CI runs first: it fails on an
//! import circle between files, an arrow up the floors, an over-long file or
//! function and a module the lib.rs Layout does not name; and it passes on
//! this repository with its allow-list. Fake crates are written to a
//! temporary directory (no cargo build: the script reads source only).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the script over `root` (with `args`): exit code and stdout.
fn check(root: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("python3")
        .arg(repo().join("scripts/module-graph"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("python3 runs scripts/module-graph");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "module-graph wrote to stderr: {stderr}");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A fake crate: `files` as (path under src/, text).
fn fake_crate(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join("src").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

const LIB: &str = "//! # Layout\n//!\n//! - [`error`]: errors.\n//! - [`model`]: words.\n\
                   //! - [`config`]: `load`, `env`.\n//! - [`cli`]: `backup`.\n\n\
                   pub mod cli;\npub mod config;\npub mod error;\npub mod model;\n";

/// A small crate that keeps every rule: arrows down, children using their
/// parent, a parent composing its children, test code free to import anything.
fn clean() -> Vec<(&'static str, &'static str)> {
    vec![
        ("lib.rs", LIB),
        ("error.rs", "//! Errors.\npub enum Error { A }\n"),
        ("model.rs", "//! Words.\nuse crate::error::Error;\npub struct Word;\n"),
        ("config/mod.rs", "mod env;\nmod load;\npub use load::resolve;\npub struct Config;\n"),
        (
            "config/load.rs",
            "use super::env::layer;\nuse super::Config;\npub fn resolve() -> Config { layer(); Config }\n",
        ),
        (
            "config/env.rs",
            "use crate::model::Word;\npub(super) fn layer() {}\n\
             #[cfg(test)]\nmod tests {\n    use crate::config::resolve;\n    use crate::cli::run;\n}\n",
        ),
        ("cli/mod.rs", "mod backup;\npub fn run() { backup::run(); }\npub(crate) fn emit() {}\n"),
        ("cli/backup.rs", "use super::emit;\nuse crate::config::{resolve, Config};\npub fn run() { emit(); }\n"),
    ]
}

fn with(mut files: Vec<(&'static str, &'static str)>, path: &'static str, text: &'static str) -> tempfile::TempDir {
    files.retain(|(p, _)| *p != path);
    files.push((path, text));
    fake_crate(&files)
}

#[test]
fn a_crate_that_keeps_the_rules_passes() {
    let dir = fake_crate(&clean());
    let (code, out) = check(dir.path(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 violations"), "{out}");
}

#[test]
fn an_import_circle_between_files_fails_and_is_printed_with_its_lines() {
    // load → env (the clean crate), and now env → load.
    let dir = with(clean(), "config/env.rs", "use super::load::resolve;\npub(super) fn layer() {}\n");
    let (code, out) = check(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("VIOLATION cycle: import circle among 2 files: src/config/env.rs:1 -> src/config/load.rs:1 -> src/config/env.rs"),
        "{out}"
    );
    assert!(out.contains("(allow-list key: cycle: src/config/env.rs src/config/load.rs)"), "{out}");
}

#[test]
fn an_arrow_up_the_floors_fails_even_through_a_re_export() {
    // error (floor 0) naming config (floor 2): directly, and in code through
    // config's `pub use load::resolve`, which is defined in config/load.rs.
    let dir = with(
        clean(),
        "error.rs",
        "use crate::config::Config;\npub enum Error { A }\npub fn f() { crate::config::resolve(); }\n",
    );
    let (code, out) = check(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "VIOLATION upward: src/error.rs:1 imports src/config/mod.rs: error (floor 0) may not import config"
        ),
        "{out}"
    );
    assert!(out.contains("VIOLATION upward: src/error.rs:3 imports src/config/load.rs"), "{out}");
    assert!(out.contains("(allow-list key: upward: error -> config)"), "{out}");
    // Paths in comments and strings are not arrows.
    let dir = with(
        clean(),
        "error.rs",
        "//! See [`crate::config::Config`].\npub enum Error { A }\n\
         pub fn f() -> &'static str { /* crate::cli::run() */ \"crate::cli::run()\" }\n",
    );
    let (code, out) = check(dir.path(), &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn long_functions_and_files_fail_unless_a_comment_says_why() {
    let body = "    let _ = 1;\n".repeat(125);
    let long_fn: &'static str = format!("pub fn long() {{\n{body}}}\n").leak();
    let dir = with(clean(), "model.rs", long_fn);
    let (code, out) = check(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("VIOLATION fn-size: src/model.rs::long: 127 lines from line 1 (most 120)"), "{out}");

    let marked: &'static str = format!("// size: one table of every case reads best whole\n{long_fn}").leak();
    let (code, out) = check(with(clean(), "model.rs", marked).path(), &[]);
    assert_eq!(code, 0, "{out}");

    // A file: test code does not count, production code does.
    let many = "pub fn f() {}\n".repeat(601);
    let tests = format!("#[cfg(test)]\nmod tests {{\n{}}}\n", "    fn t() {}\n".repeat(700));
    let (code, out) = check(with(clean(), "model.rs", format!("//! Words.\n{tests}").leak()).path(), &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = check(with(clean(), "model.rs", format!("//! Words.\n{many}").leak()).path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("VIOLATION file-size: src/model.rs: 602 lines of production code (most 600)"), "{out}");
    let header = format!("//! Words.\n// size: generated tables, one per line\n{many}");
    let (code, out) = check(with(clean(), "model.rs", header.leak()).path(), &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_module_the_layout_does_not_name_fails() {
    let mut files = clean();
    files.push(("config/url.rs", "pub fn parse() {}\n"));
    files.push(("schedule.rs", "pub fn next() {}\n"));
    let dir = with(files, "config/mod.rs", "mod env;\nmod load;\nmod url;\npub struct Config;\n");
    let (code, out) = check(dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the Layout line of config does not name `url` (config::url)"), "{out}");
    assert!(out.contains("the Layout has no line `//! - [`schedule`]: …`"), "{out}");
}

#[test]
fn the_allow_list_lets_known_violations_pass_and_names_stale_lines() {
    let dir = with(clean(), "config/env.rs", "use super::load::resolve;\npub(super) fn layer() {}\n");
    let allow = dir.path().join("allow");
    std::fs::write(
        &allow,
        "# known\ncycle: src/config/env.rs src/config/load.rs src/config/url.rs  # branch x\n\
         upward: model -> cli  # branch y\n",
    )
    .unwrap();
    let (code, out) = check(dir.path(), &["--allow", allow.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("allowed  cycle: import circle among 2 files"), "{out}");
    assert!(out.contains("stale    upward: model -> cli (line 3 of"), "{out}");
}

// covers: DR-2
#[test]
fn this_repository_passes_and_ci_runs_the_check_before_building() {
    let (code, out) = check(&repo(), &["--allow", repo().join("scripts/module-graph.allow").to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let graph = ci.find("scripts/module-graph").expect(".ci/run runs scripts/module-graph");
    let fmt = ci.find("cargo fmt").expect(".ci/run runs cargo fmt");
    assert!(graph < fmt, ".ci/run checks the module graph before anything builds");
}
