//! End-to-end tests of the `dataknobs` binary: -c / -f ordering, output formats, --attach,
//! EXPLAIN pushdown, error reporting, persistence through a memory file, and the REPL.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

/// The binary with stdin closed and HOME pointed away from the user's history file.
fn dk() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dataknobs"));
    cmd.stdin(Stdio::null());
    cmd.env("HOME", std::env::temp_dir());
    cmd.env_remove("DATABASE_URL")
        .env_remove("DATAKNOBS_CONFIG");
    cmd.env("XDG_CONFIG_HOME", std::env::temp_dir().join("dk-no-config"));
    cmd
}

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            ok: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    dk().args(args)
        .output()
        .expect("cannot start the dataknobs binary")
        .into()
}

/// Succeeded, printed nothing on stderr.
#[track_caller]
fn assert_ok(r: &Run) {
    assert!(r.ok, "expected success, got:\n{r:?}");
    assert!(
        r.stderr.trim().is_empty(),
        "expected an empty stderr:\n{r:?}"
    );
}

/// Failed cleanly: non-zero exit, exactly one stderr line starting with `Error:` that
/// contains every needle (case-insensitive), and no panic.
#[track_caller]
fn assert_error(r: &Run, needles: &[&str]) {
    assert!(!r.ok, "expected failure, got success:\n{r:?}");
    assert_eq!(
        r.code,
        Some(1),
        "expected exit code 1 (not a signal or panic):\n{r:?}"
    );
    assert!(
        !r.stderr.contains("panicked"),
        "the binary panicked:\n{r:?}"
    );
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected exactly one stderr line:\n{r:?}");
    assert!(
        lines[0].starts_with("Error: "),
        "stderr must start with 'Error: ':\n{r:?}"
    );
    let lower = lines[0].to_lowercase();
    for n in needles {
        assert!(
            lower.contains(&n.to_lowercase()),
            "the error should mention '{n}':\n{r:?}"
        );
    }
}

/// The data rows of every table printed in `--format table` output, as trimmed cells
/// (header rows are the first `|` line after each top border and are skipped).
fn table_rows(out: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut border_count = 0;
    for line in out.lines() {
        if line.starts_with('+') {
            border_count += 1;
            continue;
        }
        // Border 1 opens a table, the header follows; border 2 closes the header;
        // border 3 closes the table.
        if line.starts_with('|') && border_count % 3 == 2 {
            let inner = &line[1..line.len() - 1];
            rows.push(inner.split('|').map(|c| c.trim().to_string()).collect());
        }
    }
    rows
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

// ---------------------------------------------------------------- -c and -f

#[test]
fn several_commands_run_in_order_in_one_session() {
    let r = run(&[
        "--format",
        "csv",
        "-c",
        "CREATE TABLE t (a INT, b VARCHAR)",
        "-c",
        "INSERT INTO t VALUES (2, 'y'), (1, 'x'), (3, 'z')",
        "-c",
        "SELECT a, b FROM t ORDER BY a",
        "-c",
        "INSERT INTO t VALUES (4, 'w'); SELECT count(*) AS n FROM t",
    ]);
    assert_ok(&r);
    let select = r
        .stdout
        .find("a,b\n1,x\n2,y\n3,z\n")
        .unwrap_or_else(|| panic!("SELECT output missing:\n{r:?}"));
    let inserted = r
        .stdout
        .find("count\n3\n")
        .unwrap_or_else(|| panic!("INSERT count missing:\n{r:?}"));
    assert!(
        inserted < select,
        "INSERT's output must come before SELECT's:\n{r:?}"
    );
    assert!(
        r.stdout.ends_with("count\n1\nn\n4\n"),
        "two statements in one -c run in order:\n{r:?}"
    );
}

#[test]
fn default_table_format_shows_header_rows_and_blank_null() {
    let r = run(&[
        "-c",
        "CREATE TABLE t (a INT, b VARCHAR)",
        "-c",
        "INSERT INTO t VALUES (1, 'one'), (2, NULL)",
        "-c",
        "SELECT a, b AS label FROM t ORDER BY a",
    ]);
    assert_ok(&r);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("| a ") && l.contains("| label"))
        .unwrap_or_else(|| panic!("no header line:\n{r:?}"));
    assert!(
        lines[header - 1].starts_with("+---"),
        "table border expected:\n{r:?}"
    );
    let rows = table_rows(&r.stdout);
    let last_two: Vec<Vec<String>> = rows[rows.len() - 2..].to_vec();
    assert_eq!(
        last_two,
        vec![
            vec!["1".to_string(), "one".to_string()],
            vec!["2".to_string(), String::new()]
        ],
        "{r:?}"
    );
}

#[test]
fn file_script_with_comments_and_semicolons_in_strings() {
    let dir = tempfile::tempdir().unwrap();
    let script = "-- leading comment; with a semicolon\n\
        CREATE TABLE s (id INT, v VARCHAR); /* block; comment */\n\
        INSERT INTO s VALUES\n\
        \x20 (1, 'a;b'),   -- trailing comment; here\n\
        \x20 (2, 'it''s; fine'),\n\
        \x20 (3, '/* not; a comment */'),\n\
        \x20 (4, '-- not; a comment either');\n\
        \n\
        SELECT id, v AS \"v;alias\" FROM s ORDER BY id;\n\
        -- final comment; nothing after\n";
    let path = write_file(dir.path(), "script.sql", script);
    let r = run(&["--format", "csv", "-f", &path]);
    assert_ok(&r);
    assert!(
        r.stdout.ends_with(
            "id,v;alias\n1,a;b\n2,it's; fine\n3,/* not; a comment */\n4,-- not; a comment either\n"
        ),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("count\n4\n"),
        "INSERT reports 4 rows:\n{r:?}"
    );
}

#[test]
fn file_script_ending_with_block_comment() {
    // A comment-only "statement" after the last ';' must be ignored, as `-- …` is.
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "s.sql",
        "SELECT 1 AS a;\n/* the end; really */\n",
    );
    let r = run(&["--format", "csv", "-f", &path]);
    assert_ok(&r);
    assert_eq!(r.stdout, "a\n1\n");
}

#[test]
fn semicolon_after_escaped_quote_in_e_string() {
    // E'…' strings escape quotes with a backslash; the splitter must not end the string there.
    let r = run(&["--format", "csv", "-c", r"SELECT E'x\';y' AS e"]);
    assert_ok(&r);
    assert_eq!(r.stdout, "e\nx';y\n");
}

#[test]
fn commands_and_files_interleave_in_command_line_order() {
    let dir = tempfile::tempdir().unwrap();
    let f1 = write_file(
        dir.path(),
        "f1.sql",
        "INSERT INTO o VALUES (2, 'f1');\nSELECT 'f1' AS m;\n",
    );
    let f2 = write_file(
        dir.path(),
        "f2.sql",
        "INSERT INTO o VALUES (4, 'f2');\nSELECT 'f2' AS m;\nSELECT string_agg(who, ' ' ORDER BY step) AS seq FROM o;",
    );
    let r = run(&[
        "-c",
        "CREATE TABLE o (step INT, who VARCHAR)",
        "-f",
        &f1,
        "--format",
        "csv",
        "-c",
        "INSERT INTO o VALUES (3, 'c2'); SELECT 'c2' AS m",
        "-f",
        &f2,
        "-c",
        "SELECT 'c3' AS m",
    ]);
    assert_ok(&r);
    let markers: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| ["f1", "c2", "f2", "c3"].contains(l))
        .collect();
    assert_eq!(markers, ["f1", "c2", "f2", "c3"], "{r:?}");
    assert!(
        r.stdout.contains("seq\nf1 c2 f2\n"),
        "each input saw the earlier ones' rows:\n{r:?}"
    );
}

#[test]
fn long_and_attached_forms_of_c_and_f_keep_order() {
    let dir = tempfile::tempdir().unwrap();
    let f1 = write_file(dir.path(), "f1.sql", "SELECT 'f1' AS m;");
    let f2 = write_file(dir.path(), "f2.sql", "SELECT 'f2' AS m;");
    let file_eq = format!("--file={f2}");
    let r = run(&[
        "--format=csv",
        "--file",
        &f1,
        "--command=SELECT 'c1' AS m",
        &file_eq,
        "-cSELECT 'c2' AS m",
        "--command",
        "SELECT 'c3' AS m",
    ]);
    assert_ok(&r);
    assert_eq!(r.stdout, "m\nf1\nm\nc1\nm\nf2\nm\nc2\nm\nc3\n");
}

// ---------------------------------------------------------------- formats

const SETUP: [&str; 4] = [
    "-c",
    "CREATE TABLE t (a INT, b VARCHAR)",
    "-c",
    "INSERT INTO t VALUES (1, 'x,y'), (2, 'say \"hi\"'), (3, NULL), (4, 'two\nlines')",
];

fn with_setup(format: &str, select: &str) -> Run {
    let mut args = vec!["--format", format];
    args.extend(SETUP);
    args.extend(["-c", select]);
    run(&args)
}

#[test]
fn csv_has_header_quotes_commas_and_quotes_and_empty_null() {
    let r = with_setup("csv", "SELECT a, b FROM t ORDER BY a");
    assert_ok(&r);
    let expected = "a,b\n1,\"x,y\"\n2,\"say \"\"hi\"\"\"\n3,\n4,\"two\nlines\"\n";
    assert!(
        r.stdout.ends_with(expected),
        "expected to end with:\n{expected}\n{r:?}"
    );
}

#[test]
fn csv_empty_result_prints_header_only() {
    let r = with_setup("csv", "SELECT a, b FROM t WHERE a > 100");
    assert_ok(&r);
    assert!(r.stdout.ends_with("count\n4\na,b\n"), "{r:?}");
}

fn last_json_line(r: &Run) -> Value {
    let line = r
        .stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output:\n{r:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{r:?}"))
}

#[test]
fn json_is_an_array_of_objects() {
    let r = with_setup("json", "SELECT a, b FROM t WHERE b IS NOT NULL ORDER BY a");
    assert_ok(&r);
    // Every result (CREATE's and INSERT's counts too) is one parseable array.
    for line in r.stdout.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{r:?}"));
        assert!(v.is_array(), "{line}");
    }
    assert_eq!(
        last_json_line(&r),
        json!([{"a": 1, "b": "x,y"}, {"a": 2, "b": "say \"hi\""}, {"a": 4, "b": "two\nlines"}])
    );
}

#[test]
fn json_null_is_an_explicit_null() {
    let r = with_setup("json", "SELECT a, b FROM t WHERE a = 3");
    assert_ok(&r);
    assert_eq!(
        last_json_line(&r),
        json!([{"a": 3, "b": null}]),
        "NULL columns must not be dropped:\n{r:?}"
    );
}

#[test]
fn json_empty_result_is_one_empty_array() {
    let r = with_setup("json", "SELECT a, b FROM t WHERE a > 100");
    assert_ok(&r);
    assert_eq!(r.stdout.lines().last(), Some("[]"), "{r:?}");
    assert_eq!(last_json_line(&r), json!([]));
}

#[test]
fn ndjson_is_one_object_per_line() {
    let r = with_setup(
        "ndjson",
        "SELECT a, b FROM t WHERE b IS NOT NULL ORDER BY a",
    );
    assert_ok(&r);
    let objects: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{r:?}")))
        .collect();
    assert!(objects.iter().all(Value::is_object), "{r:?}");
    assert_eq!(
        objects,
        vec![
            json!({"count": 4}),
            json!({"a": 1, "b": "x,y"}),
            json!({"a": 2, "b": "say \"hi\""}),
            json!({"a": 4, "b": "two\nlines"}),
        ]
    );
}

#[test]
fn ndjson_null_is_an_explicit_null() {
    let r = with_setup("ndjson", "SELECT a, b FROM t WHERE a = 3");
    assert_ok(&r);
    assert_eq!(
        last_json_line(&r),
        json!({"a": 3, "b": null}),
        "NULL columns must not be dropped:\n{r:?}"
    );
}

#[test]
fn ndjson_empty_result_prints_no_line() {
    let r = with_setup("ndjson", "SELECT a, b FROM t WHERE a > 100");
    assert_ok(&r);
    assert_eq!(r.stdout, "{\"count\":4}\n", "CREATE prints nothing");
}

#[test]
fn invalid_format_is_rejected_without_panic() {
    let r = run(&["--format", "xml", "-c", "SELECT 1"]);
    assert!(!r.ok, "{r:?}");
    assert!(!r.stderr.contains("panicked"), "{r:?}");
    assert!(r.stderr.contains("xml"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
}

// ---------------------------------------------------------------- --attach, EXPLAIN

#[test]
fn attach_memory_backend_and_query_by_two_and_three_part_names() {
    let r = run(&[
        "--attach",
        "m2=memory://",
        "--format",
        "csv",
        "-c",
        "CREATE TABLE m2.t (a INT, b VARCHAR)",
        "-c",
        "INSERT INTO m2.t VALUES (4, 'p'), (5, 'q')",
        "-c",
        "SELECT sum(a) AS s FROM m2.t",
        "-c",
        "SELECT b FROM m2.public.t ORDER BY b",
        "-c",
        "INSERT INTO m2.public.t VALUES (6, 'r')",
        "-c",
        "SELECT count(*) AS n FROM m2.t",
    ]);
    assert_ok(&r);
    assert!(r.stdout.contains("s\n9\n"), "{r:?}");
    assert!(r.stdout.contains("b\np\nq\n"), "{r:?}");
    assert!(r.stdout.ends_with("n\n3\n"), "{r:?}");
}

#[test]
fn attached_table_is_not_in_the_default_backend() {
    let r = run(&[
        "--attach",
        "m2=memory://",
        "-c",
        "CREATE TABLE m2.only_here (a INT)",
        "-c",
        "SELECT * FROM only_here",
    ]);
    assert_error(&r, &["only_here"]);
}

#[test]
fn default_option_makes_unqualified_names_use_the_attached_backend() {
    let r = run(&[
        "--attach",
        "m2=memory://",
        "--default",
        "m2",
        "--format",
        "csv",
        "-c",
        "CREATE TABLE d (a INT)",
        "-c",
        "INSERT INTO d VALUES (7)",
        "-c",
        "SELECT a FROM m2.public.d",
    ]);
    assert_ok(&r);
    assert!(r.stdout.ends_with("a\n7\n"), "{r:?}");
}

#[test]
fn explain_shows_filter_pushed_into_the_scan() {
    let r = run(&[
        "-c",
        "CREATE TABLE t (x INT, y VARCHAR)",
        "-c",
        "INSERT INTO t VALUES (1, 'a'), (7, 'b')",
        "-c",
        "EXPLAIN SELECT y FROM t WHERE x > 5",
    ]);
    assert_ok(&r);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("DataknobsScanExec"))
        .unwrap_or_else(|| panic!("no DataknobsScanExec in the plan:\n{r:?}"));
    // The scan's line, folded at 110 characters onto the lines under it.
    let scan = lines[at..(at + 4).min(lines.len())].join("\n");
    assert!(
        scan.contains("x > 5"),
        "the scan should carry the filter: {scan}"
    );
    assert!(
        lines.iter().all(|l| l.chars().count() <= 130),
        "EXPLAIN lines stay readable:\n{r:?}"
    );
    assert!(
        !r.stdout.contains("FilterExec"),
        "the filter should not be re-applied:\n{r:?}"
    );
}

#[test]
fn explain_without_pushdown_keeps_filter_exec() {
    // The contrast case: proves the assertion above can fail.
    let r = run(&[
        "-c",
        "CREATE TABLE t (x INT, y VARCHAR)",
        "-c",
        "SET dataknobs.pushdown = false",
        "-c",
        "EXPLAIN SELECT y FROM t WHERE x > 5",
    ]);
    assert_ok(&r);
    assert!(r.stdout.contains("DataknobsScanExec"), "{r:?}");
    assert!(r.stdout.contains("FilterExec"), "{r:?}");
}

// ---------------------------------------------------------------- errors

#[test]
fn error_malformed_sql() {
    let r = run(&["-c", "SELEC 1"]);
    assert_error(&r, &["SELEC"]);
    assert!(r.stdout.is_empty(), "{r:?}");
}

#[test]
fn error_unknown_table() {
    let r = run(&["-c", "SELECT * FROM no_such_table_xyz"]);
    assert_error(&r, &["no_such_table_xyz"]);
    assert!(r.stdout.is_empty(), "{r:?}");
}

#[test]
fn error_unknown_column() {
    let r = run(&[
        "--format",
        "csv",
        "-c",
        "CREATE TABLE t (a INT)",
        "-c",
        "SELECT no_such_col FROM t",
    ]);
    assert_error(&r, &["no_such_col"]);
    assert_eq!(r.stdout, "", "CREATE TABLE prints nothing:\n{r:?}");
}

#[test]
fn error_unknown_attach_scheme() {
    let r = run(&["--attach", "x=nosuch://x", "-c", "SELECT 1 AS a"]);
    assert_error(&r, &["nosuch://"]);
    assert!(
        r.stdout.is_empty(),
        "no statement runs after a bad --attach:\n{r:?}"
    );
}

#[test]
fn error_attach_without_equals() {
    let r = run(&["--attach", "memory://", "-c", "SELECT 1 AS a"]);
    assert_error(&r, &["--attach", "NAME=URL", "memory://"]);
    assert!(r.stdout.is_empty(), "{r:?}");
}

#[test]
fn error_attach_invalid_name() {
    let r = run(&["--attach", "Bad-Name=memory://", "-c", "SELECT 1 AS a"]);
    assert_error(&r, &["Bad-Name"]);
}

#[test]
fn error_missing_sql_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing_script.sql");
    let r = run(&[
        "-c",
        "SELECT 'before' AS m",
        "-f",
        missing.to_str().unwrap(),
        "-c",
        "SELECT 'after' AS m",
    ]);
    assert_error(&r, &["missing_script.sql"]);
    assert!(
        r.stdout.contains("before") && !r.stdout.contains("after"),
        "{r:?}"
    );
}

#[test]
fn error_divide_by_zero() {
    let r = run(&["-c", "SELECT 1 / 0 AS q"]);
    assert_error(&r, &["divide by zero"]);
}

#[test]
fn error_bad_cast() {
    let r = run(&["-c", "SELECT CAST('abc' AS INT) AS q"]);
    assert_error(&r, &["abc"]);
}

#[test]
fn error_operator_type_mismatch() {
    let r = run(&[
        "-c",
        "CREATE TABLE t (s VARCHAR)",
        "-c",
        "SELECT s + 1 FROM t",
    ]);
    assert_error(&r, &["Utf8"]);
}

#[test]
fn error_duplicate_create_table() {
    let r = run(&[
        "-c",
        "CREATE TABLE dup_t (a INT)",
        "-c",
        "CREATE TABLE dup_t (a INT)",
    ]);
    assert_error(&r, &["dup_t", "already exists"]);
}

#[cfg(unix)]
#[test]
fn error_non_utf8_file_path_does_not_panic() {
    use std::os::unix::ffi::OsStringExt;
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = dir.path().as_os_str().to_owned().into_vec();
    bytes.extend_from_slice(b"/missing_\xff.sql");
    let path = OsString::from_vec(bytes);
    let r = run(&[OsString::from("-f"), path]);
    assert_error(&r, &["missing_"]);
}

#[test]
fn failure_stops_the_sequence_after_printing_earlier_output() {
    let r = run(&[
        "--format",
        "csv",
        "-c",
        "SELECT 'before' AS m",
        "-c",
        "SELECT * FROM missing_in_sequence",
        "-c",
        "SELECT 'after' AS m",
    ]);
    assert_error(&r, &["missing_in_sequence"]);
    assert_eq!(r.stdout, "m\nbefore\n", "{r:?}");
}

#[test]
fn failure_inside_a_file_stops_the_file_and_later_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        dir.path(),
        "s.sql",
        "SELECT 'one' AS m;\nSELECT * FROM missing_in_file;\nSELECT 'three' AS m;\n",
    );
    let r = run(&["--format", "csv", "-f", &f, "-c", "SELECT 'four' AS m"]);
    assert_error(&r, &["missing_in_file"]);
    assert_eq!(r.stdout, "m\none\n", "{r:?}");
}

// ---------------------------------------------------------------- persistence

#[test]
fn memory_file_persists_and_failed_duplicate_insert_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.json");
    let attach = format!("p=memory://{}", db.to_str().unwrap());
    assert!(attach.starts_with("p=memory:///"), "{attach}");

    let r = run(&[
        "--attach",
        &attach,
        "-c",
        "CREATE TABLE p.k (id INT PRIMARY KEY, v VARCHAR)",
        "-c",
        "INSERT INTO p.k VALUES (1, 'one'), (2, 'two')",
    ]);
    assert_ok(&r);
    assert!(db.exists(), "the memory file should have been written");

    let select = [
        "--attach",
        &attach,
        "--format",
        "csv",
        "-c",
        "SELECT id, v FROM p.k ORDER BY id",
    ];
    let r = run(&select);
    assert_ok(&r);
    assert_eq!(r.stdout, "id,v\n1,one\n2,two\n", "rows survive the process");

    // A batch with a new key and a duplicate one: all or nothing.
    let r = run(&[
        "--attach",
        &attach,
        "-c",
        "INSERT INTO p.k VALUES (3, 'three'), (1, 'dup')",
    ]);
    assert_error(&r, &["duplicate"]);

    let r = run(&select);
    assert_ok(&r);
    assert_eq!(
        r.stdout, "id,v\n1,one\n2,two\n",
        "the failed insert must leave the rows unchanged"
    );

    // Statements after a failure do not run (and so are not saved).
    let r = run(&[
        "--attach",
        &attach,
        "-c",
        "INSERT INTO p.k VALUES (4, 'four')",
        "-c",
        "INSERT INTO p.k VALUES (2, 'again')",
        "-c",
        "INSERT INTO p.k VALUES (5, 'five')",
    ]);
    assert_error(&r, &["duplicate"]);
    let r = run(&select);
    assert_ok(&r);
    assert_eq!(r.stdout, "id,v\n1,one\n2,two\n4,four\n", "{r:?}");
}

#[test]
fn memory_file_path_with_a_space() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("with space");
    std::fs::create_dir(&sub).unwrap();
    let db = sub.join("db.json");
    let attach = format!("p=memory://{}", db.to_str().unwrap());
    let r = run(&[
        "--attach",
        &attach,
        "-c",
        "CREATE TABLE p.t (a INT)",
        "-c",
        "INSERT INTO p.t VALUES (1)",
    ]);
    assert_ok(&r);
    assert!(db.exists(), "expected the file at {}", db.display());
}

// ---------------------------------------------------------------- output robustness

#[test]
fn closed_stdout_ends_quietly() {
    let mut child = dk()
        .args([
            "-c",
            "SELECT * FROM generate_series(1, 300000)",
            "-c",
            "SELECT 1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let r: Run = out.into();
    assert!(!r.stderr.contains("panicked"), "{r:?}");
    assert!(r.ok, "a closed pipe (| head) is not an error:\n{r:?}");
}

// ---------------------------------------------------------------- SQL piped on stdin

fn piped(input: &str, args: &[&str]) -> Run {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dataknobs"))
        .args(args)
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", home.path().join("state"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let r: Run = child.wait_with_output().unwrap().into();
    assert!(
        !home.path().join("state/dataknobs/history").exists(),
        "piped SQL must not land in the history file:\n{r:?}"
    );
    r
}

#[test]
fn piped_stdin_is_a_script_without_banner_or_timing() {
    let r = piped(
        "CREATE TABLE r (a INT);\nINSERT INTO r VALUES (1),\n(2);\nSELECT sum(a) AS s FROM r;\nSELECT 7 AS last",
        &["--format", "csv"],
    );
    assert_ok(&r);
    assert_eq!(r.stdout, "count\n2\ns\n3\nlast\n7\n", "{r:?}");
    // The same through -f -.
    let r = piped("SELECT 1 AS one;", &["--format", "csv", "-f", "-"]);
    assert_ok(&r);
    assert_eq!(r.stdout, "one\n1\n", "{r:?}");
}

#[test]
fn piped_stdin_stops_at_the_first_error_with_its_line() {
    let r = piped(
        "SELECT 1 AS a;\n\nSELECT * FROM piped_missing;\nSELECT 2 AS b;\n",
        &["--format", "csv"],
    );
    assert_error(&r, &["<stdin>:3:", "piped_missing"]);
    assert_eq!(r.stdout, "a\n1\n", "nothing after the error runs:\n{r:?}");
    let r = piped(
        "SELECT * FROM piped_missing;\nSELECT 2 AS b;\n",
        &["--format", "csv", "--continue-on-error"],
    );
    assert!(!r.ok, "a failed statement still fails the run:\n{r:?}");
    assert_eq!(r.stdout, "b\n2\n", "--continue-on-error goes on:\n{r:?}");
}

#[test]
fn parse_errors_name_the_file_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "bad.sql",
        "SELECT 1;\n-- a comment\nSELECT a\nFROM t\nWHERE = 3;\n",
    );
    let r = run(&["-f", &path]);
    assert_error(&r, &["bad.sql:3:", "syntax error", "at line 5"]);
    assert!(!r.stderr.contains("ParserError"), "{r:?}");
    assert!(!r.stderr.contains("query error"), "{r:?}");
}

#[test]
fn plain_messages_for_casts_and_missing_tables() {
    let r = run(&["-c", "SELECT 'abc'::int"]);
    assert_error(&r, &["abc"]);
    assert!(!r.stderr.contains("Optimizer rule"), "{r:?}");
    let r = run(&["-c", "SELECT * FROM plain_missing"]);
    assert_error(&r, &["'plain_missing' not found"]);
    assert!(!r.stderr.contains("dataknobs.public"), "{r:?}");
    assert!(!r.stderr.contains("Error during planning"), "{r:?}");
}

#[test]
fn meta_commands_work_in_c_and_f() {
    let dir = tempfile::tempdir().unwrap();
    let inner = write_file(dir.path(), "inner.sql", "INSERT INTO m VALUES (2, 'b');\n");
    let path = write_file(
        dir.path(),
        "outer.sql",
        "CREATE TABLE m (id INT PRIMARY KEY, name TEXT);\nINSERT INTO m VALUES (1, 'a');\n\\i inner.sql\n\\format csv\nSELECT count(*) FROM m;\n\\d m\n",
    );
    let _ = inner;
    let r = run(&["-f", &path]);
    assert_ok(&r);
    assert!(r.stdout.contains("count(*)\n2\n"), "{r:?}");
    assert!(
        r.stdout
            .contains("column_name,column_type,null,key\nid,INTEGER,NO,PRI\n"),
        "\\d TABLE shows SQL types and the key as NOT NULL, in the chosen format:\n{r:?}"
    );
    let r = run(&["-c", "\\d"]);
    assert_ok(&r);
    assert!(r.stdout.contains("backend"), "{r:?}");
    let r = run(&["-c", "\\nope"]);
    assert_error(&r, &["unknown command '\\nope'"]);
}

#[test]
fn show_tables_lists_each_table_once() {
    let r = run(&[
        "--format",
        "csv",
        "-c",
        "CREATE TABLE st_a (id INT PRIMARY KEY, v TEXT)",
        "-c",
        "SHOW TABLES",
        "-c",
        "SHOW COLUMNS FROM st_a",
        "-c",
        "DESCRIBE st_a",
    ]);
    assert_ok(&r);
    let describe = "column_name,column_type,null,key\nid,INTEGER,NO,PRI\nv,TEXT,YES,\n";
    assert_eq!(
        r.stdout,
        format!("backend,schema,name,type\nmemory,public,st_a,table\n{describe}{describe}"),
        "{r:?}"
    );
}

#[test]
fn unnamed_columns_are_titled_as_written() {
    let r = run(&[
        "--format",
        "csv",
        "-c",
        "SELECT 42, 'x', count(1) FROM (VALUES (1))",
    ]);
    assert_ok(&r);
    assert!(r.stdout.starts_with("42,'x',count(1)\n"), "{r:?}");
}

#[test]
fn the_table_format_caps_rows_and_counts_the_rest() {
    let r = run(&["-c", "SELECT * FROM generate_series(1, 100)"]);
    assert_ok(&r);
    assert_eq!(table_rows(&r.stdout).len(), 40, "{r:?}");
    assert!(r.stdout.contains("(first 40 of 100 rows shown"), "{r:?}");
    let r = run(&[
        "--max-rows",
        "0",
        "-c",
        "SELECT * FROM generate_series(1, 100)",
    ]);
    assert_eq!(table_rows(&r.stdout).len(), 100, "{r:?}");
}

#[test]
fn other_formats_tsv_markdown_vertical() {
    let sql = "SELECT 1 AS a, 'x|y' AS b";
    let r = run(&["--format", "tsv", "-c", sql]);
    assert_ok(&r);
    assert_eq!(r.stdout, "a\tb\n1\tx|y\n");
    let r = run(&["--format", "markdown", "-c", sql]);
    assert_eq!(r.stdout, "| a | b |\n|---:|---|\n| 1 | x\\|y |\n", "{r:?}");
    let r = run(&["--format", "vertical", "-c", sql]);
    assert!(r.stdout.contains("-[ RECORD 1 ]"), "{r:?}");
    assert!(r.stdout.contains("a | 1\nb | x|y\n"), "{r:?}");
}

/// Batch output streams: 100M generated rows piped to a slow reader keep the process's own
/// memory (anonymous pages, sampled while it writes; the mapped binary is not counted) well
/// under 100 MB, where holding the result first took gigabytes before the first line.
#[test]
fn batch_output_streams_in_bounded_memory() {
    let mut child = dk()
        .args([
            "--format",
            "csv",
            "-c",
            "SELECT value, value * 2 AS twice FROM generate_series(1, 100000000)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let anon_kib = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut chunk = vec![0u8; 256 << 10];
    stdout.read_exact(&mut chunk).unwrap();
    assert!(
        chunk.starts_with(b"value,twice\n"),
        "{}",
        String::from_utf8_lossy(&chunk[..64])
    );
    let mut peak = 0;
    for _ in 0..64 {
        stdout.read_exact(&mut chunk).unwrap();
        peak = peak.max(anon_kib(child.id()));
    }
    drop(stdout);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "a closed pipe ends the run quietly ({status})"
    );
    assert!(peak > 0, "RssAnon was read");
    assert!(
        peak < 100 * 1024,
        "{} MiB of anonymous memory while streaming",
        peak / 1024
    );
}

// ---------------------------------------------------------------- bad input corpus

/// Every bad input is one `Error:` line, exit code 1, no panic — in batch mode.
#[test]
fn bad_input_corpus_gives_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |name: &str, text: &str| write_file(dir.path(), name, text);
    let bad_syntax = cfg("syntax.toml", "[backends.pg\nurl = 1\n");
    let unset = cfg(
        "unset.toml",
        "[backends.pg]\nurl = \"postgres://u@h/db\"\npassword = \"${DK_SURELY_UNSET_VAR}\"\n",
    );
    let unknown_kind = cfg("kind.toml", "[backends.x]\nkind = \"nosuch\"\n");
    let bad_option = cfg(
        "option.toml",
        "[backends.x]\nurl = \"memory://\"\nflavour = \"sweet\"\n",
    );
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec!["--config".into(), bad_syntax],
            vec!["syntax.toml", "line 1"],
        ),
        (
            vec!["--config".into(), unset],
            vec!["DK_SURELY_UNSET_VAR is not set"],
        ),
        (
            vec!["--config".into(), unknown_kind],
            vec!["unknown backend 'nosuch'"],
        ),
        (
            vec!["--config".into(), bad_option],
            vec!["unknown memory URL option 'flavour'"],
        ),
        (
            vec!["--config".into(), "/nonexistent/dk.toml".into()],
            vec!["cannot read config file"],
        ),
        (
            vec!["--attach".into(), "x=nosuch://h".into()],
            vec!["nosuch://"],
        ),
        (
            vec!["--attach".into(), "x=postgres://u:pw@[bad".into()],
            vec!["invalid backend URL"],
        ),
        (
            vec![
                "--attach".into(),
                "postgres://app:pw@db/shop?sslmode=require".into(),
            ],
            vec!["NAME=URL"],
        ),
        (
            vec![
                "-c".into(),
                "\\attach postgres://app:pw@db/shop?sslmode=require".into(),
            ],
            vec!["NAME=URL"],
        ),
        (
            vec!["-c".into(), "\\frobnicate".into()],
            vec!["unknown command"],
        ),
        (vec!["-c".into(), "SELEC 1".into()], vec!["syntax error"]),
        (
            vec!["-c".into(), "SELECT 'unterminated".into()],
            vec!["syntax error"],
        ),
    ];
    for (args, needles) in cases {
        let r = run(&args);
        assert_error(&r, &needles);
        assert!(!r.stderr.contains("pw@"), "no password in errors: {r:?}");
    }
    // Corrupt and truncated files of every format, each a table of a file backend.
    let data = tempfile::tempdir().unwrap();
    let good = run(&[
        "-c",
        &format!(
            "COPY (SELECT value AS id, 'n' || value AS s FROM generate_series(1, 5000)) TO '{}' STORED AS PARQUET",
            data.path().join("good.parquet").display()
        ),
    ]);
    assert!(good.ok, "{good:?}");
    let parquet = std::fs::read(data.path().join("good.parquet")).unwrap();
    std::fs::remove_file(data.path().join("good.parquet")).unwrap();
    let mut corrupt = parquet.clone();
    let n = corrupt.len();
    for i in (8..n / 2).step_by(97) {
        corrupt[i] ^= 0x5a;
    }
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.parquet", parquet[..n / 2].to_vec()),
        ("corrupt.parquet", corrupt),
        ("tiny.parquet", b"PAR".to_vec()),
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n\"open\n".to_vec()),
        ("ragged_tab.tsv", b"a\tb\n1\t2\t3\n".to_vec()),
        ("cut_off.json", b"[{\"a\": 1}, {\"a\": ".to_vec()),
        ("broken.ndjson", b"{\"a\": 1}\n{\"a\": \n".to_vec()),
        ("binary.csv.gz", b"\x1f\x8bnot really gzip".to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(data.path().join(name), bytes).unwrap();
    }
    let attach = format!("bad=file://{}", data.path().display());
    for (name, _) in &files {
        let table = name.split('.').next().unwrap();
        let r = run(&[
            "--attach",
            &attach,
            "-c",
            &format!("SELECT * FROM bad.\"{table}\""),
        ]);
        // Every error names the file, a bad Parquet data page too.
        assert_error(&r, &[*name]);
        assert!(!r.stderr.contains("query error"), "{r:?}");
    }
    // Listing the folder's tables never panics, whatever the files hold.
    let r = run(&["--attach", &attach, "-c", "\\d"]);
    assert!(!r.stderr.contains("panicked"), "{r:?}");
    assert!(r.code == Some(0) || r.code == Some(1), "{r:?}");
}

#[test]
fn database_url_attaches_the_default_backend() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.json");
    let r = dk()
        .env("DATABASE_URL", format!("memory://{}", db.display()))
        .args([
            "--format",
            "csv",
            "-c",
            "CREATE TABLE du (a INT)",
            "-c",
            "\\d",
        ])
        .output()
        .unwrap();
    let r: Run = r.into();
    assert_ok(&r);
    assert!(r.stdout.contains("default,public,du,table"), "{r:?}");
    assert!(db.exists(), "the table went to DATABASE_URL's backend");
}

#[test]
fn a_config_file_attaches_its_backends() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("people.csv"), "id,name\n1,Ada\n2,Alan\n").unwrap();
    let config = write_file(
        dir.path(),
        "dk.toml",
        &format!(
            "default = \"lake\"\n[vars]\nroot = \"{}\"\n[backends.lake]\nkind = \"file\"\npath = \"${{vars.root}}/data\"\n\
             [backends.scratch]\nurl = \"memory://\"\n",
            dir.path().display()
        ),
    );
    let r = run(&[
        "--config",
        &config,
        "--format",
        "csv",
        "-c",
        "SELECT name FROM people ORDER BY id",
        "-c",
        "\\backends",
    ]);
    assert_ok(&r);
    assert!(r.stdout.starts_with("name\nAda\nAlan\n"), "{r:?}");
    assert!(r.stdout.contains("\nlake,file,"), "{r:?}");
    assert!(r.stdout.contains("\nscratch,memory,"), "{r:?}");
    // DATAKNOBS_CONFIG finds it too.
    let r: Run = dk()
        .env("DATAKNOBS_CONFIG", &config)
        .args([
            "--format",
            "csv",
            "-c",
            "SELECT count(*) AS n FROM lake.people",
        ])
        .output()
        .unwrap()
        .into();
    assert_ok(&r);
    assert_eq!(r.stdout, "n\n2\n", "{r:?}");
}
