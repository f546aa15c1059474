//! Performance work that a test can hold (issue 24): restore's `ANALYZE`
//! after the commit over parallel connections, and `lifeboat send`
//! streaming its attachment in bounded memory. Timings themselves are
//! measured by `bench/run`, not here.

use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};

use crate::support::rss::run_measured;
use crate::support::smtp::{self, email_section, Mode, TlsServer, USER};
use crate::support::{self, assert_exit, fresh_db, json, run, sha256, toml_string, Seeded};

const PASSWORD: &str = "smtp-perf-5e1d07";

/// Restores `s`'s newest archive into a fresh database with `extra`
/// arguments; the JSON report and the target.
fn restore_json(s: &Seeded, hint: &str, extra: &[&str]) -> (serde_json::Value, support::TestDb) {
    let report = s.backup();
    let archive = report["archive"].as_str().expect("archive path").to_string();
    let target = fresh_db(hint);
    let key = s.storage().join(".lifeboat/signing.pub");
    let key = key.to_str().unwrap();
    let mut args = vec!["--json", "restore", archive.as_str(), "--trusted-key", key, "--db", target.url.as_str()];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_exit(&o, 0);
    (json(&o), target)
}

// covers: FR-7.4, FR-7.8, FR-7.9
#[test]
fn restore_analyzes_every_table_after_the_commit_over_parallel_connections() {
    let s = Seeded::new("perf_analyze");
    for jobs in ["1", "2"] {
        let (report, target) = restore_json(&s, &format!("perf_analyze_t{jobs}"), &["--jobs", jobs]);
        assert_eq!(report["ok"], true, "{report}");
        let phases: Vec<&str> = report["phases"].as_array().unwrap().iter().map(|p| p[0].as_str().unwrap()).collect();
        // The rows are checked and committed first; statistics follow.
        let at = |name: &str| phases.iter().position(|p| *p == name).unwrap_or_else(|| panic!("{name}: {phases:?}"));
        assert!(at("check") < at("commit") && at("commit") < at("analyze"), "{phases:?}");
        assert_eq!(phases.last(), Some(&"analyze"), "{phases:?}");
        // Every table of the target was analyzed (a never-analyzed table has
        // no last_analyze), and the planner has column statistics.
        let tables = target.query_one_i64("SELECT count(*) FROM pg_stat_user_tables");
        assert!(tables > 10, "{tables} tables");
        assert_eq!(report["analyzed"].as_i64(), Some(tables), "{report}");
        let unanalyzed = target.query_one_string(
            "SELECT coalesce(string_agg(relname, ', '), '') FROM pg_stat_user_tables WHERE last_analyze IS NULL",
        );
        assert_eq!(unanalyzed, "", "tables without statistics after --jobs {jobs}");
        let stats =
            target.query_one_i64("SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 'users'");
        assert!(stats > 0, "no column statistics for users after --jobs {jobs}");
    }
}

/// `n` bytes that deflate cannot shrink (xorshift), so the archive is as
/// big as the file.
fn incompressible(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

// covers: PR-5, FR-3.5
#[test]
fn send_streams_a_large_attachment_without_holding_it_in_memory() {
    if !smtp::aiosmtpd_available() {
        return;
    }
    let TlsServer { ca, server } = TlsServer::start(Mode::StartTls, USER, PASSWORD);
    let s = Seeded::new("perf_send");
    let files = s.dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let mut config = std::fs::read_to_string(&s.config).unwrap();
    config.push_str(&format!(
        "\n[files]\nbase_dir = {}\ninclude = [\"blob.bin\"]\n\n{}",
        toml_string(&files.to_string_lossy()),
        email_section(server.port, Mode::StartTls, Some(&ca.ca_file), PASSWORD, s.dir.path(), "attach_limit_mb = 80")
    ));
    std::fs::write(&s.config, config).unwrap();
    // A 2 MiB and a 22 MiB attachment (the larger one's base64 stays below
    // the test server's 32 MiB limit). Built in memory, the message cost
    // ~4.5 × the archive: the second send peaked ~90 MiB above the first.
    let mut peaks = Vec::new();
    for (i, mib) in [2usize, 22].into_iter().enumerate() {
        std::fs::write(files.join("blob.bin"), incompressible(mib << 20)).unwrap();
        let o = run(&["--config", s.config.to_str().unwrap(), "--json", "backup", "--no-deliver"]);
        assert_exit(&o, 0);
        let archive = std::path::PathBuf::from(json(&o)["archive"].as_str().unwrap());
        let archive_mib = std::fs::metadata(&archive).unwrap().len() >> 20;
        assert!(archive_mib >= mib as u64, "archive of {archive_mib} MiB");

        let mut send = support::lifeboat();
        send.args(["--config", s.config.to_str().unwrap(), "--json", "send", archive.to_str().unwrap()]);
        let m = run_measured(&send);
        assert_exit(&m.output, 0);
        assert_eq!(json(&m.output)["method"], "attachment");
        let got = server.wait_for(i + 1, Duration::from_secs(10));
        assert_eq!(got.len(), i + 1);
        let parsed = MessageParser::default().parse(&got[i].raw).expect("a parsable message");
        let a = parsed.attachments().next().expect("the archive attached");
        assert_eq!(a.attachment_name(), archive.file_name().and_then(|n| n.to_str()));
        assert_eq!(sha256(a.contents()), sha256(&std::fs::read(&archive).unwrap()), "attachment is byte-identical");
        eprintln!("lifeboat send of a {archive_mib} MiB archive: peak RSS {} MiB", m.peak_rss_mib());
        peaks.push(m.peak_rss_mib());
    }
    // Flat: 20 MiB more attachment, (almost) no more memory.
    assert!(peaks[1] <= peaks[0] + 4, "peak RSS grew with the attachment: {peaks:?} MiB for 2 and 22 MiB");
}
