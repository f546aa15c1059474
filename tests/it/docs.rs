//! The documents hold what the code does: every command and option of the
//! binary is in the spec's section 8.2 and back, the README's two commands
//! are the ones CI runs, every relative link resolves, the changelog is
//! grouped, and each user document covers the topics the spec asks of it.
//! These read the repository's files, so a doc change that drifts from the
//! code fails here, not in a reader's hands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::flow::run;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The spec's section between the heading starting with `start` and the next heading of the same level.
fn section<'a>(text: &'a str, start: &str) -> &'a str {
    let at = text.find(start).unwrap_or_else(|| panic!("no section {start:?}"));
    let level = start.chars().take_while(|c| *c == '#').count();
    let rest = &text[at + start.len()..];
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            let line = &rest[i..];
            let hashes = line.chars().take_while(|c| *c == '#').count();
            hashes > 0 && hashes <= level && line[hashes..].starts_with(' ')
        })
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The subcommands `lifeboat --help` lists.
fn help_commands() -> BTreeSet<String> {
    let out = String::from_utf8(run(&["--help"]).stdout).unwrap();
    let commands = out.split("Commands:").nth(1).expect("a Commands: section");
    commands
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The long options of `lifeboat <cmd> --help`, without the global ones.
fn help_options(cmd: &str) -> BTreeSet<String> {
    let out = String::from_utf8(run(&[cmd, "--help"]).stdout).unwrap();
    let globals = ["--config", "--json", "--verbose", "--help", "--version"];
    out.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2 && w[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .filter(|w| !globals.contains(w))
        .map(str::to_string)
        .collect()
}

// covers: DR-7, FR-24.1
#[test]
fn every_command_and_option_of_the_binary_is_in_spec_section_8_2_and_back() {
    let spec = read("specs/AUTOMATED_BACKUP_SERVICE_SPEC.md");
    let commands_8_2 = section(&spec, "### 8.2 Commands");
    // The first table: | `cmd` | `lifeboat cmd …` | M | … |
    let mut spec_commands = BTreeSet::new();
    for line in commands_8_2.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.get(2).is_some_and(|c| c.starts_with("`lifeboat ")) {
            spec_commands.insert(cells[1].trim_matches('`').to_string());
        }
    }
    let binary = help_commands();
    assert_eq!(binary, spec_commands, "`lifeboat --help` commands vs. the table of spec 8.2");

    for cmd in &binary {
        let synopsis = commands_8_2
            .lines()
            .find(|l| l.starts_with(&format!("| `{cmd}` | `lifeboat {cmd}")))
            .unwrap_or_else(|| panic!("spec 8.2 has no synopsis row for {cmd}"));
        for opt in help_options(cmd) {
            assert!(
                synopsis.contains(&format!("{opt} "))
                    || synopsis.contains(&format!("{opt}]"))
                    || synopsis.contains(&format!("{opt}`")),
                "`lifeboat {cmd} --help` has {opt}, but spec 8.2's synopsis of {cmd} does not: {synopsis}"
            );
        }
        // And back: every option the synopsis names exists.
        let named: BTreeSet<String> = synopsis
            .split(|c: char| c.is_whitespace() || c == '[' || c == ']' || c == '`' || c == '|')
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(str::to_string)
            .collect();
        let real = help_options(cmd);
        for opt in named {
            assert!(real.contains(&opt), "spec 8.2 gives {cmd} the option {opt}, which `lifeboat {cmd} --help` lacks");
        }
    }
}

// covers: DR-4, TS-8, TS-7
#[test]
fn the_readme_names_one_test_command_and_ci_runs_exactly_it() {
    let readme = read("README.md");
    let ci = read(".ci/run");
    assert!(readme.contains("```sh\nscripts/test\n```"), "README: the test command is `scripts/test` on its own");
    let last = ci.lines().rev().find(|l| !l.trim().is_empty() && !l.starts_with('#')).unwrap();
    assert!(last.starts_with("scripts/test"), ".ci/run must end by running the README's test command, not {last:?}");
    for step in ["cargo fmt --all -- --check", "cargo clippy --all-targets", "scripts/spec-trace --strict"] {
        assert!(ci.contains(step), ".ci/run runs {step}");
    }
    // The README's main command backs up a database, and says what the tests need.
    assert!(readme.contains("cargo run --release -- backup"), "README: the main job's command");
    let test_script = read("scripts/test");
    assert!(test_script.contains("exec cargo test \"$@\""), "scripts/test ends in cargo test");
    assert!(test_script.contains("CI is set, so a missing test dependency is a failure"));
}

// covers: DR-6
#[test]
fn the_changelog_has_an_unreleased_section_grouped_by_kind() {
    let log = read("CHANGELOG.md");
    let unreleased = section(&log, "## Unreleased");
    let kinds: Vec<&str> = unreleased.lines().filter_map(|l| l.strip_prefix("### ")).collect();
    assert!(!kinds.is_empty(), "Unreleased has kinds");
    let allowed = ["Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"];
    for k in &kinds {
        assert!(allowed.contains(k), "CHANGELOG kind {k:?} is not one of {allowed:?}");
    }
    let unique: BTreeSet<_> = kinds.iter().collect();
    assert_eq!(unique.len(), kinds.len(), "each kind once under Unreleased: {kinds:?}");
    for line in unreleased.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("### ")) {
        assert!(line.starts_with("- ") || line.starts_with("  "), "CHANGELOG: not a list item: {line:?}");
    }
}

/// Markdown links `[text](target)` outside fenced code.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

// covers: DR-1, DR-2, DR-3
#[test]
fn every_relative_link_and_image_in_the_docs_resolves() {
    let mut docs = vec![repo().join("README.md"), repo().join("CHANGELOG.md")];
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    let mut checked = 0;
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for link in links(&text) {
            let target = link.split('#').next().unwrap().split_whitespace().next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let path = doc.parent().unwrap().join(target);
            assert!(path.exists(), "{}: link to {link} does not resolve ({})", doc.display(), path.display());
            checked += 1;
        }
    }
    assert!(checked > 3, "the docs link to each other and to images ({checked} links checked)");
}

/// Whether a document has a heading mentioning every word of `topic` (case-insensitive).
fn has_heading(doc: &str, topic: &str) -> bool {
    doc.lines().filter(|l| l.starts_with('#')).any(|h| {
        let h = h.to_lowercase();
        topic.split_whitespace().all(|w| h.contains(w))
    })
}

fn assert_topics(path: &str, topics: &[&str]) {
    let doc = read(path);
    let missing: Vec<_> = topics.iter().filter(|t| !has_heading(&doc, t)).collect();
    assert!(missing.is_empty(), "{path} has no heading for {missing:?}");
}

// covers: DR-1, DR-2, DR-3
#[test]
fn each_document_covers_the_topics_the_spec_asks_of_it() {
    // DR-1: users and administrators.
    assert_topics("docs/BACKUP_SYSTEM.md", &["overview", "what is backed up", "e-mail", "restore"]);
    let system = read("docs/BACKUP_SYSTEM.md");
    assert!(system.contains("lifeboat restore") && system.contains("psql"), "restore with lifeboat and with psql");
    assert!(system.contains("](images/"), "the mail is shown as an image");
    // DR-2: developers.
    assert_topics("docs/BACKUP_DEVELOPMENT.md", &["architecture", "module map", "scope", "tests"]);
    // DR-3: operators.
    assert_topics(
        "docs/BACKUP_OPERATIONS.md",
        &["check", "list", "backup by hand", "restore", "rehearse", "troubleshooting", "rotating", "postgresql major"],
    );
}

#[test]
fn section_finds_the_text_up_to_the_next_heading_of_its_level() {
    let t = "# A\nx\n## B\ny\n### C\nz\n## D\nw\n";
    assert_eq!(section(t, "## B"), "\ny\n### C\nz\n");
    assert_eq!(section(t, "## D"), "\nw\n");
    assert!(Path::new(&repo()).join("Cargo.toml").exists());
}
