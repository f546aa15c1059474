//! The fault drills' results table (spec TS-5) in `docs/RELIABILITY.md`:
//! every drill is described in [`DRILLS`]; a drill calls [`start`], and
//! [`record`] once it passed (see the module docs of `drills.rs`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

// ---------------------------------------------------------------------------
// The results table.

/// One drill: what it injects and what must happen (the table's fixed
/// columns); "observed" is what the drill measured.
pub struct Drill {
    pub name: &'static str,
    pub spec: &'static str,
    pub fault: &'static str,
    pub expected: &'static str,
    pub see_also: &'static str,
}

pub const DRILLS: &[Drill] = &[
    Drill {
        name: "drills::corrupted_archive_in_store",
        spec: "TS-5.7",
        fault: "one byte flipped in the middle of the newest of three archives; later the oldest truncated",
        expected: "`verify` exits 1 naming the damage; `list --verify` flags it (plain `list` flags a size change); \
                   retention keeps `keep_last` good archives without counting it",
        see_also: "verify::a_flipped_byte_anywhere_in_the_stream_is_caught, \
                   service::prune_keeps_the_newest_good_archives_and_does_not_count_a_corrupted_one",
    },
    Drill {
        name: "drills::disk_full_in_storage",
        spec: "TS-5.4, NFR-2.6",
        fault: "storage.dir on a 2 MiB tmpfs, ~13 MB of rows to back up",
        expected: "exit 1, `No space left on device` naming the path and the MB needed; nothing partial left; webhook alert",
        see_also: "closure_scale::a_full_disk_names_the_path_what_was_written_and_the_space_needed",
    },
    Drill {
        name: "drills::kill_9_at_random_points",
        spec: "TS-5.3, NFR-2.2",
        fault: "SIGKILL of `lifeboat backup` after a seeded random delay within one run's measured duration, 20 times",
        expected: "no final archive fails `verify`; history never records success for a killed run; the next run cleans up and succeeds",
        see_also: "backup::a_stale_partial_from_a_crashed_run_is_removed_by_the_next_run",
    },
    Drill {
        name: "drills::malformed_configs",
        spec: "TS-5.8, NFR-2.5",
        fault: "seeded random edits of every shipped example config (examples/*.toml, TOML blocks of README, docs, spec)",
        expected: "`lifeboat config` exits 0 or 2 with an `error:` message; never a panic (exit 101)",
        see_also: "cli::every_example_config_shipped_in_the_repository_loads, \
                   config_safety::a_malformed_config_never_echoes_the_secret_it_holds",
    },
    Drill {
        name: "drills::postgres_stopped_mid_run",
        spec: "TS-5.2, NFR-2.3",
        fault: "the throwaway cluster stopped (`pg_ctl stop -m fast`) while the run is inside pg_dump with a `.partial` written",
        expected: "the run fails, `.partial` and temp files removed, webhook alert; after a restart the next run succeeds",
        see_also: "backup::the_database_stopping_mid_run_fails_the_backup_and_leaves_no_archive, \
                   closure_scale::a_database_lost_during_copy_names_the_table_and_the_lost_connection",
    },
    Drill {
        name: "drills::smtp_down_for_the_whole_retry_window",
        spec: "TS-5.5, NFR-2.4",
        fault: "nothing listens on the SMTP port for all 3 attempts (back-off 1 s)",
        expected: "exit 3, archive kept and verified, history delivery = failed, alert by webhook; SMTP back: `lifeboat send` delivers, records it (history delivery = delivered) and closes the incident with a recovery notice",
        see_also: "deliver::smtp_down_at_first_and_up_by_the_third_attempt_delivers",
    },
    Drill {
        name: "drills::table_locked_access_exclusive",
        spec: "TS-5.6, FR-14.2",
        fault: "another session holds ACCESS EXCLUSIVE on a table (a migration); `lock_timeout = \"2s\"`",
        expected: "the run fails after the lock timeout naming the table; the application is never blocked by lifeboat longer than the lock timeout",
        see_also: "backup::a_table_locked_by_another_session_fails_the_run_naming_it_within_the_lock_timeout",
    },
    Drill {
        name: "daemon::postgres_down_before_the_run_is_tried_three_times_with_back_off_then_alerted_once",
        spec: "TS-5.1, FR-1.7",
        fault: "nothing listens on the database port when the daemon's scheduled (catch-up) run starts; `retries = 2`, `retry_backoff = \"1s\"`; `LIFEBOAT_LOG=trace`, webhook and ping URLs with tokens",
        expected: "3 attempts (one plus 2 retries) 1 s apart, then one `backup_failed` alert naming the refused connection; no archive, nothing partial, no secret (password, webhook or ping token) in alert or log",
        see_also: "deliver::a_failed_backup_alerts_with_step_and_cause_and_no_secret",
    },
    Drill {
        name: "daemon::half_open_connections_under_a_low_open_files_limit_are_timed_out_and_never_starve_the_scheduled_run",
        spec: "SC-10.1, FR-17.6",
        fault: "the daemon runs with an open-files limit of 256 (`prlimit --nofile=256:256`) while 300 connections that never finish a request (nothing sent, or half a head) are held open and reopened as the server closes them; a run every minute",
        expected: "the connection cap is lowered to leave a run's reserve; silent connections closed after `header_read_timeout`; the scheduled run succeeds; `/healthz` answers; no \"Too many open files\", no alert",
        see_also: "status::healthz_is_200_or_503_with_the_age_of_the_last_success_and_no_detail",
    },
    Drill {
        name: "daemon::sigterm_mid_backup_aborts_cleanly_and_kill_9_is_recovered_by_the_next_start",
        spec: "TS-5.3, FR-23.3",
        fault: "the daemon's run held inside a COPY (a proxy stops forwarding), then SIGTERM; again, then SIGKILL",
        expected: "SIGTERM: exit 0 after the grace, run `aborted`, nothing kept, no alert; SIGKILL: the next start removes the `.partial`, records the run `interrupted` and catches up",
        see_also: "drills::kill_9_at_random_points",
    },
    Drill {
        name: "offsite::a_store_that_is_down_keeps_the_local_archive_alerts_and_the_next_run_uploads_what_is_missing",
        spec: "FR-29.4, FR-29.5, FR-4.6",
        fault: "nothing listens at the S3 endpoint for two runs",
        expected: "backups exit 0 with the local archive kept, runs offsite `failed`, one `offsite_failed` alert for both; the store back: the missed archives uploaded oldest first, one recovery notice",
        see_also: "offsite::a_store_stopped_mid_multipart_upload_keeps_the_local_archive_and_the_next_run_catches_up",
    },
    Drill {
        name: "offsite::a_store_stopped_mid_multipart_upload_keeps_the_local_archive_and_the_next_run_catches_up",
        spec: "FR-29.4, FR-29.5",
        fault: "the third 5 MiB part of the upload held at a proxy before the real SeaweedFS, then every connection cut and the port closed",
        expected: "backup exit 0, local archive kept and verified, run offsite `failed`, `offsite_failed` alert, no object under the archive's name; the store back: caught up byte-identical",
        see_also: "offsite::a_backup_uploads_a_multipart_copy_that_is_byte_identical_with_bounded_memory",
    },
];

pub const BEGIN: &str = "<!-- drills:begin (generated by tests/it/drills.rs; do not edit) -->";
pub const END: &str = "<!-- drills:end -->";

fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("drills")
}

/// Forgets the last result of drill `name` (its test's path, e.g.
/// `drills::kill_9_at_random_points`: drills of other modules write their
/// rows too) — it is about to run again.
pub fn start(name: &str) -> Instant {
    assert!(DRILLS.iter().any(|d| d.name == name), "drill {name} is not in DRILLS");
    let _ = std::fs::remove_file(results_dir().join(format!("{name}.txt")));
    Instant::now()
}

/// Records what drill `name` observed (it passed), and regenerates the
/// table when asked to.
pub fn record(name: &str, started: Instant, observed: &str) {
    let observed = format!("{observed}; drill took {:.1} s", started.elapsed().as_secs_f64());
    eprintln!("drill {name}: {observed}");
    std::fs::create_dir_all(results_dir()).unwrap();
    std::fs::write(results_dir().join(format!("{name}.txt")), &observed).unwrap();
    let asked = ["LIFEBOAT_TEST_UPDATE_DOCS", "LIFEBOAT_UPDATE_DOCS"].iter().any(|v| std::env::var_os(v).is_some());
    if asked {
        static DOC: Mutex<()> = Mutex::new(());
        let _one_writer = DOC.lock().unwrap_or_else(|p| p.into_inner());
        regenerate_table();
    }
}

fn cell(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn regenerate_table() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/RELIABILITY.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    let (head, rest) = text.split_once(BEGIN).expect("docs/RELIABILITY.md has the begin marker");
    let (old_table, tail) = rest.split_once(END).expect("docs/RELIABILITY.md has the end marker");
    // A drill with no result yet in this pass keeps its row from the last
    // pass, so the file is complete at every moment of a pass.
    let old_row = |name: &str| {
        let start = format!("| `{name}` |");
        old_table.lines().find(|l| l.starts_with(&start)).map(|l| format!("{l}\n"))
    };
    let mut drills: Vec<&Drill> = DRILLS.iter().collect();
    drills.sort_by_key(|d| d.name);
    let mut table = String::from(
        "\n| Drill | Spec | Injected fault | Expected | Observed (last recorded run) | See also |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for d in drills {
        let observed = match std::fs::read_to_string(results_dir().join(format!("{}.txt", d.name))) {
            Ok(o) => o,
            Err(_) => match old_row(d.name) {
                Some(row) => {
                    table.push_str(&row);
                    continue;
                }
                None => "(not run yet)".into(),
            },
        };
        table.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            d.name,
            d.spec,
            cell(d.fault),
            cell(d.expected),
            cell(&observed),
            cell(d.see_also)
        ));
    }
    // Write and rename: a reader never sees half a file.
    let tmp = doc.with_extension("md.tmp");
    std::fs::write(&tmp, format!("{head}{BEGIN}\n{table}\n{END}{tail}")).unwrap();
    std::fs::rename(&tmp, &doc).unwrap();
}
