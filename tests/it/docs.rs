//! The documents hold what the code does: every command and option of the
//! binary is in the spec's section 8.2 and back, the README's two commands
//! are the ones CI runs, every relative link resolves, the changelog is
//! grouped, and each user document covers the topics the spec asks of it.
//! These read the repository's files, so a doc change that drifts from the
//! code fails here, not in a reader's hands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::run;

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

// ---------------------------------------------------------------------------
// Examples that run: every fenced block of README.md and docs/*.md that shows
// a command is either a ```console block, run here against the real binary
// on a seeded database and a throwaway store with its output compared, or is
// preceded by `<!-- not run: REASON -->` and listed as such.
// ---------------------------------------------------------------------------

/// A fenced block of a document.
struct Block {
    file: String,
    /// 1-based line of the opening fence.
    line: usize,
    /// The fence's indentation, stripped from the body's lines.
    indent: usize,
    info: String,
    body: Vec<String>,
    /// The reason of a `<!-- not run: REASON -->` line just above the fence.
    not_run: Option<String>,
}

impl Block {
    /// Whether the block shows commands a reader would copy.
    fn is_example(&self) -> bool {
        ["console", "sh", "bash", "shell"].contains(&self.info.as_str())
            || self.body.iter().any(|l| l.trim_start().starts_with("$ "))
    }
}

/// The fenced blocks of a document (fences may be indented, as in lists).
fn blocks(rel: &str) -> Vec<Block> {
    let text = read(rel);
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    let mut previous = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        match open.take() {
            Some(b) if trimmed == "```" => out.push(b),
            Some(mut b) => {
                let strip = b.indent.min(line.len() - line.trim_start().len());
                b.body.push(line[strip..].to_string());
                open = Some(b);
            }
            // CommonMark: a backtick fence's info string has no backtick, so
            // "```` ```console ```` examples …" is inline code, not a fence.
            None if trimmed.starts_with("```") && !trimmed.trim_start_matches('`').contains('`') => {
                let not_run =
                    previous.strip_prefix("<!-- not run: ").and_then(|r| r.strip_suffix(" -->")).map(str::to_string);
                open = Some(Block {
                    file: rel.to_string(),
                    line: i + 1,
                    indent: line.len() - line.trim_start().len(),
                    info: trimmed.trim_start_matches('`').trim().to_string(),
                    body: Vec::new(),
                    not_run,
                });
            }
            None => {
                if !trimmed.is_empty() {
                    previous = trimmed.to_string();
                }
            }
        }
    }
    assert!(open.is_none(), "{rel}: a fenced block is never closed");
    out
}

/// README.md and every docs/*.md, sorted.
fn documents() -> Vec<String> {
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    docs.insert(0, "README.md".to_string());
    docs
}

// covers: DR-8
#[test]
fn every_command_example_in_the_docs_is_run_or_marked_not_run() {
    let mut unmarked = Vec::new();
    let mut not_run = Vec::new();
    let mut run = 0;
    for doc in documents() {
        for b in blocks(&doc).into_iter().filter(Block::is_example) {
            match (&b.info[..], &b.not_run) {
                ("console", None) => run += 1,
                ("console", Some(_)) => {
                    unmarked.push(format!("{}:{}: a console block is run: drop the not-run marker", b.file, b.line))
                }
                (_, Some(reason)) if !reason.trim().is_empty() => {
                    not_run.push(format!("{}:{}: {reason}", b.file, b.line))
                }
                _ => unmarked.push(format!(
                    "{}:{}: make it a ```console block (run by the tests) or put `<!-- not run: REASON -->` above it",
                    b.file, b.line
                )),
            }
        }
    }
    // The list a reviewer reads to know what the tests do not check.
    println!("{run} console examples run by docs::the_console_examples_of_*; not run:\n  {}", not_run.join("\n  "));
    assert!(unmarked.is_empty(), "command examples neither run nor marked:\n{}", unmarked.join("\n"));
    assert!(run >= 8, "the central examples (backup, plan, verify, restore, list, check, prune, config) run: {run}");
}

/// What differs between two runs of the same example: timestamps, archive
/// name stamps, sizes, durations, key ids, the server's version, byte counts
/// in JSON; and runs of spaces (columns widen with the numbers).
fn masked(line: &str) -> String {
    use regex::Regex;
    use std::sync::OnceLock;
    static MASKS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let masks = MASKS.get_or_init(|| {
        [
            (r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d| UTC)?", "[TIME]"),
            (r"\d{8}_\d{6}(_\d+)?", "[STAMP]"),
            (r"\b\d{14}\b", "[STAMP]"),
            (r"\b\d+(\.\d+)? ?(B|KB|MB|GB|KiB|MiB|GiB)\b", "[SIZE]"),
            (r"\b\d+(\.\d+)?(ms|s)\b", "[DUR]"),
            (r"\b[0-9A-F]{16}\b", "[KEYID]"),
            // `list`'s age column: a slow machine may cross a minute.
            (r"\b\d+[mhd]\b", "[AGE]"),
            (r"PostgreSQL \d+(\.\d+)?( \([^()]*\))?", "PostgreSQL [VERSION]"),
            (r#""(size_bytes|last_size_bytes|bytes|age_seconds|[a-z_]*_ms)": \d+"#, "\"$1\": [N]"),
            (r"\s+", " "),
        ]
        .into_iter()
        .map(|(re, to)| (Regex::new(re).unwrap(), to))
        .collect()
    });
    let mut s = line.trim().to_string();
    for (re, to) in masks {
        s = re.replace_all(&s, *to).into_owned();
    }
    s
}

/// Whether `actual` lines match `expected` lines: both masked, a line `…`
/// (or `...`) stands for any number of lines and `[..]` for any text
/// within a line.
fn matches(expected: &[String], actual: &[String]) -> bool {
    fn line_matches(e: &str, a: &str) -> bool {
        let parts: Vec<&str> = e.split("[..]").collect();
        if parts.len() == 1 {
            return e == a;
        }
        let pattern = format!("^{}$", parts.iter().map(|p| regex::escape(p)).collect::<Vec<_>>().join(".*"));
        regex::Regex::new(&pattern).unwrap().is_match(a)
    }
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "…" || e == "..." => (0..=actual.len()).any(|skip| matches(rest, &actual[skip..])),
        Some((e, rest)) => actual.split_first().is_some_and(|(a, more)| line_matches(e, a) && matches(rest, more)),
    }
}

/// The world the examples run in, as the documents describe it: a seeded
/// database `smart_ai_hub` on `127.0.0.1:54329`, a working directory
/// `/tmp/lb` holding `lifeboat.toml`, the store `backups/`, the
/// application's config files under `app/`, and `empty/` and `secrets/` directories.
/// Other databases a command names (`…/hub_restored`) are created empty on
/// first use. Commands see these names; their output is mapped back.
struct Sandbox {
    seeded: crate::support::Seeded,
    others: Vec<(String, crate::support::TestDb)>,
    /// `postgres://user@host:port/` of the test server.
    server_prefix: String,
}

const DOC_ROOT: &str = "/tmp/lb";
const DOC_SERVER: &str = "postgres://postgres@127.0.0.1:54329/";
const DOC_DB: &str = "smart_ai_hub";

impl Sandbox {
    fn new(hint: &str) -> Sandbox {
        let files = "[files]\nbase_dir = \"app\"\n\
                     include = [\".env.production\", \"docker-compose.prod.yml\", \"nginx.prod.conf\", \"ssl/**\"]\n\
                     optional = [\"monitoring/**\"]\n\n\
                     [monitor]\nmin_size_mb = 0\n";
        let seeded = crate::support::Seeded::with_config(hint, files);
        let app = seeded.dir.path().join("app");
        for (name, text) in [
            (".env.production", "NODE_ENV=production\n"),
            ("docker-compose.prod.yml", "services: {}\n"),
            ("nginx.prod.conf", "events {}\n"),
            ("ssl/fullchain.pem", "-----BEGIN CERTIFICATE-----\n"),
            ("ssl/privkey.pem", "-----BEGIN PRIVATE KEY-----\n"),
            ("ssl/archive/fullchain1.pem", "-----BEGIN CERTIFICATE-----\n"),
            ("ssl/archive/privkey1.pem", "-----BEGIN PRIVATE KEY-----\n"),
        ] {
            let p = app.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            // Secrets are private, the rest readable: the modes a restore reports.
            let mode = if name.contains("privkey") || name.starts_with(".env") { 0o600 } else { 0o644 };
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        }
        std::fs::create_dir(seeded.dir.path().join("empty")).unwrap();
        std::fs::create_dir(seeded.dir.path().join("secrets")).unwrap();
        let server_prefix = crate::support::server().url("");
        Sandbox { seeded, others: Vec::new(), server_prefix }
    }

    fn root(&self) -> String {
        self.seeded.dir.path().to_string_lossy().into_owned()
    }

    /// The newest archive's name in the store.
    fn newest_archive(&self) -> Option<String> {
        self.seeded.stored().into_iter().filter(|n| n.ends_with(".tar.gz")).max()
    }

    /// The command as it runs here: the documents' server, database, root
    /// and archive names replaced by the sandbox's.
    fn command(&mut self, doc: &str) -> String {
        let url = regex::Regex::new(&format!(r"{}([A-Za-z0-9_]+)", regex::escape(DOC_SERVER))).unwrap();
        let mut cmd = doc.to_string();
        for name in url.captures_iter(doc).map(|c| c[1].to_string()).collect::<Vec<_>>() {
            if name != DOC_DB && !self.others.iter().any(|(n, _)| *n == name) {
                self.others.push((name.clone(), crate::support::fresh_db(&name)));
            }
        }
        cmd = url
            .replace_all(&cmd, |c: &regex::Captures| {
                let name = &c[1];
                if name == DOC_DB {
                    self.seeded.db.url.clone()
                } else {
                    self.others.iter().find(|(n, _)| n == name).unwrap().1.url.clone()
                }
            })
            .into_owned();
        if let Some(newest) = self.newest_archive() {
            let stem = newest.trim_end_matches(".tar.gz");
            cmd =
                regex::Regex::new(r"critical_backup_\d{8}_\d{6}(_\d+)?").unwrap().replace_all(&cmd, stem).into_owned();
        }
        cmd.replace(DOC_ROOT, &self.root())
    }

    /// Output lines as the documents write them.
    fn output(&self, raw: &str) -> Vec<String> {
        let mut text = raw.replace(&self.root(), DOC_ROOT).replace(&self.seeded.db.name, DOC_DB);
        for (doc_name, db) in &self.others {
            text = text.replace(&db.name, doc_name);
        }
        let authority = |url: &str| {
            url.trim_start_matches("postgres://")
                .split_once('@')
                .map_or(url, |(_, h)| h)
                .trim_end_matches('/')
                .to_string()
        };
        text = text
            .replace(&self.server_prefix, DOC_SERVER)
            .replace(&authority(&self.server_prefix), &authority(DOC_SERVER));
        text.lines().map(masked).collect()
    }

    /// Runs one command line with `sh` in the sandbox, stdout and stderr on
    /// one pipe (the order a log or a terminal without colours shows).
    fn run(&mut self, doc_cmd: &str) -> Vec<String> {
        let cmd = self.command(doc_cmd);
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_lifeboat")).parent().unwrap().to_path_buf();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let mut sh = std::process::Command::new("sh");
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(crate::support::leaks_into_lifeboat) || name == "NO_COLOR" {
                sh.env_remove(&name);
            }
        }
        let o = sh
            .arg("-c")
            .arg(format!("exec 2>&1; {cmd}"))
            .env("PATH", path)
            .current_dir(self.seeded.dir.path())
            .output()
            .expect("cannot run sh");
        self.output(&String::from_utf8_lossy(&o.stdout))
    }
}

/// Runs every ```console block of `doc` in order, in one sandbox, and
/// fails listing each example whose output differs.
/// With `backup_first`, the sandbox's store starts with one archive.
fn run_console_examples(doc: &str, backup_first: bool) {
    let mut sandbox = Sandbox::new(&format!("docs_{}", doc.trim_start_matches("docs/").trim_end_matches(".md")));
    if backup_first {
        sandbox.seeded.backup();
    }
    let mut failures = Vec::new();
    let mut ran = 0;
    for b in blocks(doc).into_iter().filter(|b| b.info == "console") {
        let mut i = 0;
        while i < b.body.len() {
            let Some(cmd) = b.body[i].strip_prefix("$ ") else {
                failures.push(format!("{doc}:{}: console blocks start each command with `$ `", b.line + 1 + i));
                break;
            };
            let at = b.line + 1 + i;
            i += 1;
            let start = i;
            while i < b.body.len() && !b.body[i].starts_with("$ ") {
                i += 1;
            }
            let expected: Vec<String> = b.body[start..i].iter().map(|l| masked(l)).collect();
            let actual = sandbox.run(cmd);
            ran += 1;
            if !matches(&expected, &actual) {
                failures.push(format!(
                    "{doc}:{at}: `{cmd}`\n--- expected (masked) ---\n{}\n--- actual (masked) ---\n{}",
                    expected.join("\n"),
                    actual.join("\n")
                ));
            }
        }
    }
    assert!(ran > 0, "{doc} has no console example");
    assert!(
        failures.is_empty(),
        "{} example(s) of {doc} differ from the binary:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn masks_and_wildcards_match_what_differs_between_runs() {
    let e = |l: &[&str]| l.iter().map(|s| masked(s)).collect::<Vec<_>>();
    let doc = e(&[
        "OK backups/critical_backup_20261124_180224.tar.gz: 350.6 KB in 0.1s",
        "…",
        "signature: valid, by key F7EA73916C78B86F [..]",
    ]);
    let real = e(&[
        "OK backups/critical_backup_20261207_100704_2.tar.gz:   362.3 KB in 12s",
        "x",
        "y",
        "signature: valid, by key E7C775A881EFC6D0 (k)",
    ]);
    assert!(matches(&doc, &real));
    assert!(!matches(&doc[..1], &real), "extra lines are a difference");
    assert!(!matches(&e(&["5802 rows"]), &e(&["5803 rows"])), "counts are compared");
}

// covers: DR-8
#[test]
fn the_console_examples_of_the_readme_run() {
    run_console_examples("README.md", false);
}

// covers: DR-8
#[test]
fn the_console_examples_of_the_operations_guide_run() {
    run_console_examples("docs/BACKUP_OPERATIONS.md", false);
}

// covers: DR-8
#[test]
fn the_console_examples_of_the_user_guide_run() {
    run_console_examples("docs/BACKUP_SYSTEM.md", true);
}

/// Sentences that may speak of the future, each with why: `(file, text it contains)`.
/// Everything else in README.md, docs/ and the spec describes the product as it is.
const FUTURE_ALLOWED: &[(&str, &str, &str)] = &[
    ("docs/BACKUP_DEVELOPMENT.md", "the snapshot it will be executed on", "the plan's own future, not a feature"),
    ("docs/BACKUP_OPERATIONS.md", "no schedule: not running as daemon", "quotes what `serve`'s status page says"),
    ("docs/BENCHMARKS.md", "archive not yet proven authentic", "an archive's state, not a feature"),
    ("docs/RELIABILITY.md", "Still to write; they are not faked here", "the open list of drills, a roadmap section"),
];

// covers: DR-9
#[test]
fn no_document_promises_as_future_a_feature_that_exists() {
    let promise = regex::Regex::new(
        r"(?i)\b(not yet|will be|planned|no scheduler|no schedule\b|later releases?|not built yet|still to (write|automate)|once\b[^.]{0,60}\b(lands|is merged|exists))",
    )
    .unwrap();
    let mut docs = documents();
    docs.push("specs/AUTOMATED_BACKUP_SERVICE_SPEC.md".to_string());
    let mut found = Vec::new();
    let mut used = BTreeSet::new();
    for doc in &docs {
        for (i, line) in read(doc).lines().enumerate() {
            // A phrase right after a quote mark or backtick is quoted (program
            // output, or the phrase itself being discussed), not promised.
            let quoted = |at: usize| line[..at].ends_with(['"', '`']);
            let Some(m) = promise.find_iter(line).find(|m| !quoted(m.start())) else { continue };
            match FUTURE_ALLOWED.iter().position(|(f, text, _)| f == doc && line.contains(text)) {
                Some(k) => {
                    used.insert(k);
                }
                None => found.push(format!("{doc}:{}: \"{}\" in: {}", i + 1, m.as_str(), line.trim())),
            }
        }
    }
    assert!(
        found.is_empty(),
        "future-tense promises (describe what exists now, or add the sentence to FUTURE_ALLOWED with why):\n{}",
        found.join("\n")
    );
    let stale: Vec<_> = (0..FUTURE_ALLOWED.len()).filter(|k| !used.contains(k)).map(|k| FUTURE_ALLOWED[k].1).collect();
    assert!(stale.is_empty(), "FUTURE_ALLOWED entries that match nothing any more: {stale:?}");
}

// covers: TS-7
#[test]
fn spec_trace_tells_proven_from_mentioned_and_missed() {
    let d = tempfile::tempdir().unwrap();
    let spec = d.path().join("spec.md");
    let bench = d.path().join("BENCHMARKS.md");
    let tests = d.path().join("tests");
    std::fs::create_dir(&tests).unwrap();
    // Spelled apart so that spec-trace, scanning this file, does not take them for citations.
    let c = concat!("cov", "ers:");
    std::fs::write(
        tests.join("t.rs"),
        format!(
            "// {c} FR-1\n#[test]\nfn proves_it() {{}}\n\n// {c} FR-2\nfn a_helper() {{}}\n\n\
             // {c} FR-3\n#[tokio::test(flavor = \"multi_thread\")]\nasync fn proves_three() {{}}\n\n//! {c} PR-1\n"
        ),
    )
    .unwrap();
    std::fs::write(&bench, "| case | result | target |\n|---|---|---|\n| PR-1 backup | 0.5 | ≤ 0.3 **missed** |\n")
        .unwrap();
    let trace = |spec_text: &str| {
        std::fs::write(&spec, spec_text).unwrap();
        let o = std::process::Command::new(repo().join("scripts/spec-trace"))
            .args(["--strict", "--spec"])
            .arg(&spec)
            .arg("--bench")
            .arg(&bench)
            .arg("--tests")
            .arg(&tests)
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let (code, out) = trace("- **FR-1** a\n- **FR-2** b\n- **FR-3** c\n| **PR-1** | fast |\n");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FR-1           proven"), "{out}");
    assert!(out.contains("FR-3           proven"), "a #[tokio::test] proves: {out}");
    assert!(out.contains("FR-2           mention"), "a citation on a helper only mentions: {out}");
    assert!(out.contains("PR-1           missed"), "{out}");
    // Marked honestly in the spec, the same evidence passes --strict.
    let (code, out) = trace(
        "- **FR-1** a\n- **FR-2** b (manual: checked by hand)\n- **FR-3** c\n| **PR-1** | fast (missed: see BENCHMARKS.md) |\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("FR-2           manual"), "{out}");
}

// covers: DR-3
#[test]
fn the_healthcheck_the_operations_guide_shows_is_the_images() {
    let dockerfile = read("Dockerfile.backup");
    let line = dockerfile.lines().find(|l| l.starts_with("HEALTHCHECK ")).expect("the image has a HEALTHCHECK");
    assert!(line.ends_with(r#"CMD ["lifeboat", "check"]"#), "the image's HEALTHCHECK runs `lifeboat check`: {line}");
    let ops = read("docs/BACKUP_OPERATIONS.md");
    assert!(
        ops.contains(&format!("`{line}`")),
        "docs/BACKUP_OPERATIONS.md shows the image's HEALTHCHECK as it is: {line}"
    );
    assert!(!ops.contains("HEALTHCHECK calls it"), "/healthz is not what the image's HEALTHCHECK calls");
}

/// Every file under `dir` (recursively) with one of the extensions.
fn files_under(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, exts, out);
        } else if p.extension().is_some_and(|x| exts.iter().any(|e| x == *e)) {
            out.push(p);
        }
    }
}

// covers: DR-2
#[test]
fn the_repository_cites_no_design_notes_it_does_not_ship() {
    let mut files = vec![repo().join("README.md")];
    files_under(&repo().join("docs"), &["md"], &mut files);
    files_under(&repo().join("src"), &["rs", "j2", "html"], &mut files);
    let mut cited = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            for name in ["DESIGN.md", "CONVENTIONS.md", "shared/"] {
                let shipped = name.ends_with(".md") && repo().join("docs").join(name).exists();
                if line.contains(name) && !shipped {
                    cited.push(format!("{}:{}: {name}", f.strip_prefix(repo()).unwrap().display(), i + 1));
                }
            }
        }
    }
    assert!(cited.is_empty(), "citations of documents that are not in the repository:\n{}", cited.join("\n"));
}
