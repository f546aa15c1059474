//! Progress on stderr: a bar (bytes, rows, ETA) when a person watches a
//! terminal, the plain step lines everywhere else. The terminal is a real
//! pseudo-terminal made by util-linux `script`.

use std::process::Output;

use crate::support::{self, fresh_db};
use crate::support::{assert_exit, on_a_terminal, stderr, Seeded};

fn terminal_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// covers: FR-27.1, FR-27.2, FR-24.4
#[test]
fn backup_and_restore_show_a_bar_on_a_terminal_and_plain_lines_elsewhere() {
    let s = Seeded::new("progress");
    let cfg = s.config.to_str().unwrap();

    let o = on_a_terminal(&["--config", cfg, "backup"]);
    assert_exit(&o, 0);
    let tty = terminal_text(&o);
    for needle in ["lifeboat: data", "█", " rows · ETA ", " MB", "Backup complete and verified"] {
        assert!(tty.contains(needle), "{needle:?} missing from the terminal:\n{tty}");
    }
    // The step after the rows starts on a line of its own.
    assert!(tty.contains("\nlifeboat: files"), "{tty}");

    // Without a terminal: exactly the plain lines, no bar.
    let o = support::run(&["--config", cfg, "backup"]);
    assert_exit(&o, 0);
    assert_eq!(
        stderr(&o),
        "lifeboat: plan\nlifeboat: schema\nlifeboat: closure\nlifeboat: data\nlifeboat: files\nlifeboat: verify\n"
    );
    // --json on a terminal: plain lines too.
    let o = on_a_terminal(&["--config", cfg, "--json", "backup"]);
    assert_exit(&o, 0);
    let tty = terminal_text(&o);
    assert!(!tty.contains("ETA") && !tty.contains("█") && tty.contains("lifeboat: data"), "{tty}");

    let archive = s.backup()["archive"].as_str().unwrap().to_string();
    let target = fresh_db("progress_target");
    let o =
        on_a_terminal(&["restore", &archive, "--db", &target.url, "--trusted-key", &support::its_store_key(&archive)]);
    assert_exit(&o, 0);
    let tty = terminal_text(&o);
    for needle in ["lifeboat: data", "█", " rows · ETA ", "Restore complete"] {
        assert!(tty.contains(needle), "{needle:?} missing from the terminal:\n{tty}");
    }
    let expected_rows: i64 = support::SAAS_EXPECTED_ROWS.iter().map(|(_, rows, closure)| rows + closure).sum();
    assert!(tty.contains(&format!("{expected_rows}/{expected_rows} rows")), "the restore knows its row count:\n{tty}");

    let again = fresh_db("progress_plain");
    let o =
        support::run(&["restore", &archive, "--db", &again.url, "--trusted-key", &support::its_store_key(&archive)]);
    assert_exit(&o, 0);
    assert!(!stderr(&o).contains("ETA") && !stderr(&o).contains("█"), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("lifeboat: verify\nlifeboat: schema\nlifeboat: data\nlifeboat: sequences\n"),
        "{}",
        stderr(&o)
    );
}
