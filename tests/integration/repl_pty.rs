//! The interactive prompt driven through a pseudo-terminal (rexpect), as a user types:
//! completion from the live catalog, meta commands, a failing query that leaves the prompt
//! alive, Ctrl-C cancelling a long query, and history written as entries are made.

use std::process::Command;

use rexpect::session::{PtySession, spawn_command};

struct Prompt {
    p: PtySession,
    home: tempfile::TempDir,
}

const PROMPT: &str = "dataknobs> ";

fn start() -> Prompt {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dataknobs"));
    cmd.env("HOME", home.path())
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("DATAKNOBS_CONFIG")
        .env_remove("DATABASE_URL")
        .env("PAGER", "")
        .env("TERM", "xterm");
    let mut p = spawn_command(cmd, Some(30_000)).expect("cannot start dataknobs in a PTY");
    p.exp_string("type \\? for help").expect("banner");
    p.exp_string(PROMPT).expect("first prompt");
    Prompt { p, home }
}

impl Prompt {
    /// Types a line and waits for `want`, then the next prompt.
    fn run(&mut self, line: &str, want: &str) -> String {
        self.p.send_line(line).unwrap();
        let before = self
            .p
            .exp_string(want)
            .unwrap_or_else(|e| panic!("after `{line}`, expected `{want}`: {e}"));
        self.p
            .exp_string(PROMPT)
            .unwrap_or_else(|e| panic!("no prompt after `{line}`: {e}"));
        before
    }

    /// `\q` ends the process.
    fn quit(mut self) {
        self.p.send_line("\\q").unwrap();
        self.p.exp_eof().expect("\\q ends dataknobs");
    }
}

#[test]
fn a_failing_query_leaves_the_prompt_alive() {
    let mut s = start();
    s.run("SELECT * FROM pty_missing;", "'pty_missing' not found");
    s.run("SELECT 40 + 2 AS answer;", "42");
    s.run("\\nope", "unknown command");
    s.quit();
}

#[test]
fn meta_commands_and_completion_from_the_catalog() {
    let mut s = start();
    s.run(
        "CREATE TABLE pty_orders (id INT PRIMARY KEY, total DOUBLE);",
        "OK",
    );
    s.run("\\d pty_orders", "DOUBLE PRECISION");
    s.run("\\timing on", "Timing is on.");
    s.run("INSERT INTO pty_orders VALUES (1, 9.5);", " ms)");
    // Tab completes the table's name from the catalog.
    s.p.send("SELECT total FROM pty_ord").unwrap();
    s.p.send("\t").unwrap();
    s.p.flush().unwrap();
    s.p.exp_string("ers").expect("the completed name is echoed");
    s.run(";", "9.5");
    s.run("\\backends", "memory://");
}

#[test]
fn ctrl_c_cancels_the_running_query_and_keeps_the_prompt() {
    let mut s = start();
    s.p.send_line("SELECT count(*) FROM generate_series(1, 100000000000);")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    s.p.send_control('c').unwrap();
    s.p.exp_string("Cancelled.").expect("Ctrl-C cancels");
    s.p.exp_string(PROMPT).expect("the prompt comes back");
    s.run("SELECT 'still here' AS s;", "still here");
}

#[test]
fn history_is_written_as_entries_are_made() {
    let mut s = start();
    s.run("SELECT 1 AS pty_history_marker;", "1 row");
    s.run("\\attach h2 memory://", "attached h2");
    let file = s.home.path().join("state/dataknobs/history");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("history at {} before exit: {e}", file.display()));
    assert!(text.contains("pty_history_marker"), "{text}");
    assert!(text.contains("\\attach h2 memory://"), "{text}");
    s.quit();
}

#[test]
fn insert_select_ends_with_a_summary_per_target() {
    let mut s = start();
    s.run("CREATE TABLE pty_moved (v BIGINT);", "OK");
    let shown = s.run(
        "INSERT INTO pty_moved SELECT value FROM generate_series(1, 50000);",
        "1 row",
    );
    assert!(
        shown.contains("pty_moved: 50000 rows read, 50000 written, 0 failed"),
        "{shown}"
    );
    s.quit();
}
