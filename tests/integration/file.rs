//! The file backend: the conformance suite, the .slt files and the differential test once per
//! format, plus file-specific behaviour (directories, Hive partitions, path safety, exports,
//! bad files, a writer killed mid-write).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dataknobs::backends::file::{FileBackend, FileOptions, Format};
use dataknobs::{Backend, Engine};

use crate::conformance::Fixture;

/// This process's directory for test files, `<tmp>/dataknobs-tests/run-<pid>`. Made on first
/// use, after removing the directories of earlier runs whose process is gone, so files a test
/// leaves for inspection last until the next run instead of filling the disk.
fn run_dir() -> &'static PathBuf {
    static DIR: std::sync::LazyLock<PathBuf> = std::sync::LazyLock::new(|| {
        let parent = std::env::temp_dir().join("dataknobs-tests");
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let gone = name
                    .strip_prefix("run-")
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
                if gone {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = parent.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test run directory");
        dir
    });
    &DIR
}

/// A fresh directory that outlives the test (in this run's directory, see [`run_dir`]).
pub fn temp_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("dataknobs-file-")
        .tempdir_in(run_dir())
        .expect("temp dir")
        .keep()
}

pub struct FileFixture(pub Format);

#[async_trait]
impl Fixture for FileFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        let options = FileOptions {
            default_format: self.0,
            ..FileOptions::default()
        };
        Arc::new(FileBackend::new(temp_dir(), options).expect("file backend"))
    }
}

/// An engine whose default backend is a fresh directory with tables in `format`.
pub async fn engine_with_default(format: Format) -> Engine {
    let engine = Engine::new();
    let url = format!(
        "file://{}?format={}",
        temp_dir().display(),
        format.extension()
    );
    engine
        .attach("files", &url)
        .await
        .expect("attach file backend");
    engine.set_default_backend("files").expect("default");
    engine
}

macro_rules! per_format {
    ($($module:ident => $format:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            crate::backend_suite! {
                fixture: FileFixture($format),
                name: format!("file-{}", $format.extension()),
                engine: || engine_with_default($format),
                // DataFusion's own file scans decide what they prune; results must match.
                differential: { rows: 300, share: None },
            }
        }
    )*};
}

per_format!(
    json => Format::Json,
    ndjson => Format::NdJson,
    csv => Format::Csv,
    tsv => Format::Tsv,
    parquet => Format::Parquet,
);

mod behaviour {
    use super::*;
    use crate::common::rows;

    async fn attach(dir: &std::path::Path) -> Engine {
        let engine = Engine::new();
        engine
            .attach("data", &format!("file://{}", dir.display()))
            .await
            .expect("attach");
        engine
    }

    #[tokio::test]
    async fn every_file_and_partitioned_directory_is_a_table() {
        let dir = temp_dir();
        let setup = Engine::new();
        let d = dir.display();
        for (sql, _) in [
            (
                format!(
                    "COPY (SELECT 1 AS id, 'a' AS name) TO '{d}/people.csv' STORED AS CSV OPTIONS ('format.has_header' 'true')"
                ),
                0,
            ),
            (
                format!("COPY (SELECT 2 AS id, 'b' AS name) TO '{d}/more.json' STORED AS JSON"),
                0,
            ),
            (
                format!("COPY (SELECT 3 AS id, 'c' AS name) TO '{d}/pq.parquet' STORED AS PARQUET"),
                0,
            ),
            (
                format!(
                    "COPY (SELECT 10 AS v) TO '{d}/events/year=2023/a.parquet' STORED AS PARQUET"
                ),
                0,
            ),
            (
                format!(
                    "COPY (SELECT 20 AS v UNION ALL SELECT 21) TO '{d}/events/year=2024/b.parquet' STORED AS PARQUET"
                ),
                0,
            ),
        ] {
            setup
                .execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        std::fs::write(dir.join("notes.txt"), "not a table").unwrap();
        let engine = attach(&dir).await;
        let names = rows(
            &engine
                .execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'data' AND table_schema = 'public' ORDER BY 1")
                .await
                .unwrap(),
        );
        assert_eq!(
            names,
            [
                "| events     |",
                "| more       |",
                "| people     |",
                "| pq         |"
            ]
        );
        assert_eq!(
            rows(
                &engine
                    .execute("SELECT name FROM data.people")
                    .await
                    .unwrap()
            ),
            ["| a    |"]
        );
        assert_eq!(
            rows(
                &engine
                    .execute("SELECT name FROM data.public.pq")
                    .await
                    .unwrap()
            ),
            ["| c    |"]
        );
        let by_year = rows(
            &engine
                .execute("SELECT year, count(*) AS n, sum(v) AS s FROM data.events GROUP BY year ORDER BY year")
                .await
                .unwrap(),
        );
        assert_eq!(by_year, ["| 2023 | 1 | 10 |", "| 2024 | 2 | 41 |"]);
        // A partition filter prunes directories: only the 2024 file is read.
        let plan = rows(
            &engine
                .execute("EXPLAIN SELECT v FROM data.events WHERE year = '2024'")
                .await
                .unwrap(),
        )
        .join("\n");
        assert!(
            plan.contains("year=2024") && !plan.contains("year=2023"),
            "{plan}"
        );
        // A join across a file table and a memory table.
        engine
            .execute("CREATE TABLE names (id BIGINT, label TEXT)")
            .await
            .unwrap();
        engine
            .execute("INSERT INTO names VALUES (1, 'one'), (3, 'three')")
            .await
            .unwrap();
        let joined = rows(
            &engine
                .execute("SELECT n.label, p.name FROM names n JOIN data.pq p ON p.id = n.id")
                .await
                .unwrap(),
        );
        assert_eq!(joined, ["| three | c    |"]);
    }

    #[tokio::test]
    async fn copy_exports_any_result_and_files_can_be_queried_by_path() {
        let dir = temp_dir();
        let engine = Engine::new();
        engine
            .execute("CREATE TABLE t (a BIGINT, b TEXT)")
            .await
            .unwrap();
        engine
            .execute("INSERT INTO t VALUES (1, 'x'), (2, NULL)")
            .await
            .unwrap();
        for ext in ["parquet", "csv", "json"] {
            let path = dir.join(format!("out.{ext}"));
            engine
                .execute(&format!(
                    "COPY (SELECT * FROM t ORDER BY a) TO '{}'",
                    path.display()
                ))
                .await
                .unwrap();
            assert!(path.exists(), "{ext}");
            let back = rows(
                &engine
                    .execute(&format!("SELECT count(*) FROM '{}'", path.display()))
                    .await
                    .unwrap(),
            );
            assert_eq!(back, ["| 2        |"], "{ext}");
        }
    }

    #[tokio::test]
    async fn create_insert_select_drop_stay_inside_the_directory() {
        let dir = temp_dir();
        let engine = Engine::new();
        engine
            .attach("data", &format!("file://{}?format=csv", dir.display()))
            .await
            .unwrap();
        engine
            .execute("CREATE TABLE data.t (id BIGINT PRIMARY KEY, s TEXT)")
            .await
            .unwrap();
        assert!(dir.join("t.csv").exists());
        engine
            .execute("INSERT INTO data.t VALUES (1, 'a,b'), (2, 'say \"hi\"')")
            .await
            .unwrap();
        engine
            .execute("INSERT INTO data.t SELECT id + 10, s FROM data.t")
            .await
            .unwrap();
        assert_eq!(
            rows(&engine.execute("SELECT count(*) FROM data.t").await.unwrap()),
            ["| 4        |"]
        );
        let e = engine
            .execute("INSERT INTO data.t VALUES (1, 'dup')")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("duplicate key '1'"), "{e}");
        assert_eq!(
            rows(&engine.execute("SELECT count(*) FROM data.t").await.unwrap()),
            ["| 4        |"]
        );
        engine
            .execute("CREATE TABLE data.c AS SELECT * FROM data.t WHERE id > 10")
            .await
            .unwrap();
        assert_eq!(
            rows(&engine.execute("SELECT count(*) FROM data.c").await.unwrap()),
            ["| 2        |"]
        );
        engine
            .execute("DELETE FROM data.t WHERE id = 2")
            .await
            .unwrap();
        engine
            .execute("UPDATE data.t SET s = 'z' WHERE id = 1")
            .await
            .unwrap();
        assert_eq!(
            rows(
                &engine
                    .execute("SELECT id, s FROM data.t ORDER BY id")
                    .await
                    .unwrap()
            ),
            [
                "| 1  | z        |",
                "| 11 | a,b      |",
                "| 12 | say \"hi\" |"
            ]
        );
        engine.execute("DROP TABLE data.c").await.unwrap();
        assert!(!dir.join("c.csv").exists());
        // Names that would leave the directory are refused.
        for bad in ["\"../evil\"", "\"/tmp/evil\"", "\"a/b\"", "\".hidden\""] {
            let e = engine
                .execute(&format!("CREATE TABLE data.{bad} (a INT)"))
                .await
                .unwrap_err();
            assert!(e.to_string().contains("invalid table name"), "{bad}: {e}");
        }
        assert!(!dir.parent().unwrap().join("evil.csv").exists());
        let e = engine
            .execute("DROP TABLE data.\"../t\"")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("invalid table name"), "{e}");
        assert!(dir.join("t.csv").exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_out_of_the_directory_are_not_tables() {
        let outside = temp_dir();
        std::fs::write(outside.join("secret.csv"), "a\n1\n").unwrap();
        let dir = temp_dir();
        std::os::unix::fs::symlink(outside.join("secret.csv"), dir.join("secret.csv")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("linked")).unwrap();
        let engine = attach(&dir).await;
        let e = engine
            .execute("SELECT * FROM data.secret")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("secret"), "{e}");
        assert!(engine.execute("SELECT * FROM data.linked").await.is_err());
        engine
            .execute("DROP TABLE IF EXISTS data.secret")
            .await
            .unwrap();
        assert!(outside.join("secret.csv").exists());
    }

    #[tokio::test]
    async fn bad_files_give_errors_that_name_the_file() {
        let dir = temp_dir();
        std::fs::write(dir.join("broken.parquet"), b"PAR1 this is not parquet").unwrap();
        std::fs::write(dir.join("ragged.csv"), "a,b\n1,2\n3\n4,5\n").unwrap();
        std::fs::write(dir.join("typed.ndjson"), "{\"a\": 1}\n{\"a\": \"x\"}\n").unwrap();
        let engine = attach(&dir).await;
        let e = engine
            .execute("SELECT * FROM data.broken")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("broken.parquet"), "{e}");
        let e = engine
            .execute("SELECT * FROM data.ragged")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("ragged.csv"), "{e}");
        assert!(
            e.contains("line 3") || e.contains("row 3") || e.contains("line: 3"),
            "{e}"
        );
        let e = engine
            .execute("SELECT * FROM data.typed")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("typed.ndjson"), "{e}");
        let e = engine
            .execute("SELECT * FROM data.missing")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }

    /// Writes the result of `query` to `path` with a throwaway engine (so nothing of ours
    /// knows about the write).
    async fn write_file(query: &str, path: &std::path::Path) {
        let stored = match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => "PARQUET OPTIONS ('format.compression' 'uncompressed')",
            Some("csv") => "CSV OPTIONS ('format.has_header' 'true')",
            other => panic!("no COPY format for {other:?}"),
        };
        let sql = format!("COPY ({query}) TO '{}' STORED AS {stored}", path.display());
        Engine::new()
            .execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(path.is_file(), "{sql} wrote no file");
    }

    /// Sets a file's modification time back to `t` (as tools that preserve times do).
    fn set_modified(path: &std::path::Path, t: std::time::SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), t);
    }

    async fn query(engine: &Engine, sql: &str) -> Vec<String> {
        rows(
            &engine
                .execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        )
    }

    /// Tables are cached between statements; a file replaced in place by another program, with
    /// another schema and its old modification time, is read afresh by the next statement.
    #[tokio::test]
    async fn a_file_rewritten_by_another_program_is_read_afresh() {
        let dir = temp_dir();
        let scratch = temp_dir();
        let t = dir.join("t.parquet");
        write_file("SELECT 1 AS a, 'x' AS b", &t).await;
        let engine = attach(&dir).await;
        for _ in 0..2 {
            assert_eq!(
                query(&engine, "SELECT a, b FROM data.t").await,
                ["| 1 | x |"]
            );
        }
        let before = std::fs::metadata(&t).unwrap();
        let replacement = scratch.join("t.parquet");
        write_file(
            "SELECT c FROM (VALUES (10), (20), (30)) AS v(c)",
            &replacement,
        )
        .await;
        let bytes = std::fs::read(&replacement).unwrap();
        assert_ne!(
            bytes.len() as u64,
            before.len(),
            "the test needs another length"
        );
        // In place (same inode), then the old modification time back.
        std::fs::write(&t, bytes).unwrap();
        set_modified(&t, before.modified().unwrap());
        assert_eq!(
            query(&engine, "SELECT c FROM data.t ORDER BY c").await,
            ["| 10 |", "| 20 |", "| 30 |"]
        );
        let e = engine.execute("SELECT b FROM data.t").await.unwrap_err();
        assert!(e.to_string().contains('b'), "{e}");
        // Replaced by rename (a new inode), as editors and our own writer do.
        write_file("SELECT 'renamed' AS d", &replacement).await;
        std::fs::rename(&replacement, &t).unwrap();
        assert_eq!(
            query(&engine, "SELECT d FROM data.t").await,
            ["| renamed |"]
        );
    }

    /// Even a rewrite that keeps the length and the modification time is seen (CSV: a new
    /// header, same size), through the file's change time.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_same_size_rewrite_with_the_old_modification_time_is_seen() {
        let dir = temp_dir();
        let t = dir.join("t.csv");
        std::fs::write(&t, "a,b\n1,2\n").unwrap();
        let engine = attach(&dir).await;
        assert_eq!(
            query(&engine, "SELECT a, b FROM data.t").await,
            ["| 1 | 2 |"]
        );
        let modified = std::fs::metadata(&t).unwrap().modified().unwrap();
        // Let the (coarse) file-system clock move on, so the change time differs.
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::write(&t, "x,y\n3,4\n").unwrap();
        set_modified(&t, modified);
        assert_eq!(
            query(&engine, "SELECT x, y FROM data.t").await,
            ["| 3 | 4 |"]
        );
    }

    /// A file added to (or removed from) a directory table, in an existing or a new Hive
    /// partition, is seen by the next statement.
    #[tokio::test]
    async fn files_added_to_a_directory_table_are_seen() {
        let dir = temp_dir();
        let events = dir.join("events");
        write_file("SELECT 10 AS v", &events.join("year=2023/a.parquet")).await;
        let engine = attach(&dir).await;
        let by_year =
            "SELECT year, count(*) AS n, sum(v) AS s FROM data.events GROUP BY year ORDER BY year";
        for _ in 0..2 {
            assert_eq!(query(&engine, by_year).await, ["| 2023 | 1 | 10 |"]);
        }
        write_file(
            "SELECT 20 AS v UNION ALL SELECT 21",
            &events.join("year=2024/b.parquet"),
        )
        .await;
        assert_eq!(
            query(&engine, by_year).await,
            ["| 2023 | 1 | 10 |", "| 2024 | 2 | 41 |"]
        );
        write_file("SELECT 5 AS v", &events.join("year=2023/c.parquet")).await;
        assert_eq!(
            query(&engine, by_year).await,
            ["| 2023 | 2 | 15 |", "| 2024 | 2 | 41 |"]
        );
        assert_eq!(
            query(
                &engine,
                "SELECT sum(v) AS s FROM data.events WHERE year = '2023'"
            )
            .await,
            ["| 15 |"]
        );
        std::fs::remove_file(events.join("year=2024/b.parquet")).unwrap();
        assert_eq!(query(&engine, by_year).await, ["| 2023 | 2 | 15 |"]);
        // A plain directory (no partitions) of CSV files.
        let logs = dir.join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("1.csv"), "n\n1\n").unwrap();
        let total = "SELECT count(*) AS c, sum(n) AS s FROM data.logs";
        assert_eq!(query(&engine, total).await, ["| 1 | 1 |"]);
        std::fs::write(logs.join("2.csv"), "n\n2\n3\n").unwrap();
        assert_eq!(query(&engine, total).await, ["| 3 | 6 |"]);
    }

    /// DROP, CREATE, INSERT and record-API writes through dataknobs are seen at once, also when
    /// a table is dropped and created again with the same name and another schema.
    #[tokio::test]
    async fn writes_through_dataknobs_are_seen_by_the_next_statement() {
        for format in ["parquet", "csv"] {
            let dir = temp_dir();
            let engine = Engine::new();
            engine
                .attach("data", &format!("file://{}?format={format}", dir.display()))
                .await
                .unwrap();
            engine
                .execute("CREATE TABLE data.t (id BIGINT PRIMARY KEY, s TEXT)")
                .await
                .unwrap();
            engine
                .execute("INSERT INTO data.t VALUES (1, 'a')")
                .await
                .unwrap();
            assert_eq!(
                query(&engine, "SELECT id, s FROM data.t").await,
                ["| 1  | a |"],
                "{format}"
            );
            engine
                .execute("INSERT INTO data.t VALUES (2, 'b')")
                .await
                .unwrap();
            assert_eq!(
                query(&engine, "SELECT count(*) AS n FROM data.t").await,
                ["| 2 |"],
                "{format}"
            );
            let db = engine.database("data.t").await.unwrap();
            db.create(dataknobs::Record::from_pairs([
                ("id", dataknobs::Value::from(3_i64)),
                ("s", dataknobs::Value::from("c")),
            ]))
            .await
            .unwrap();
            assert_eq!(
                query(&engine, "SELECT count(*) AS n FROM data.t").await,
                ["| 3 |"],
                "{format}"
            );
            engine.execute("DROP TABLE data.t").await.unwrap();
            engine
                .execute("CREATE TABLE data.t (z DOUBLE)")
                .await
                .unwrap();
            assert_eq!(
                query(&engine, "SELECT count(*) AS n FROM data.t").await,
                ["| 0 |"],
                "{format}"
            );
            engine
                .execute("INSERT INTO data.t VALUES (1.5)")
                .await
                .unwrap();
            assert_eq!(
                query(&engine, "SELECT z FROM data.t").await,
                ["| 1.5 |"],
                "{format}"
            );
            assert!(
                engine.execute("SELECT s FROM data.t").await.is_err(),
                "{format}"
            );
        }
    }

    /// Parquet filter pushdown can be turned on per attached directory (URL option) or for the
    /// session (`SET datafusion.execution.parquet.pushdown_filters`): the filter then runs inside
    /// the scan (no FilterExec above it), with the same answers.
    #[tokio::test]
    async fn parquet_filter_pushdown_per_directory_or_session() {
        let dir = temp_dir();
        write_file(
            "SELECT value AS k, value % 7 AS m FROM generate_series(1, 1000)",
            &dir.join("nums.parquet"),
        )
        .await;
        let sql = "SELECT count(*) AS n, sum(k) AS s FROM data.nums WHERE m = 3 AND k > 500";
        async fn plan(engine: &Engine, sql: &str) -> String {
            query(engine, &format!("EXPLAIN {sql}")).await.join("\n")
        }
        let plain = attach(&dir).await;
        let expected = query(&plain, sql).await;
        assert_eq!(expected, ["| 71 | 53392 |"]);
        let p = plan(&plain, sql).await;
        assert!(
            p.contains("FilterExec"),
            "default: no pushdown expected\n{p}"
        );

        let tuned = Engine::new();
        tuned
            .attach(
                "data",
                &format!(
                    "file://{}?pushdown_filters=true&reorder_filters=true&enable_page_index=true",
                    dir.display()
                ),
            )
            .await
            .unwrap();
        let p = plan(&tuned, sql).await;
        assert!(
            !p.contains("FilterExec"),
            "URL option: pushdown expected\n{p}"
        );
        assert_eq!(query(&tuned, sql).await, expected);

        plain
            .execute("SET datafusion.execution.parquet.pushdown_filters = true")
            .await
            .unwrap();
        let p = plan(&plain, sql).await;
        assert!(
            !p.contains("FilterExec"),
            "session setting: pushdown expected\n{p}"
        );
        assert_eq!(query(&plain, sql).await, expected);

        let e = Engine::new()
            .attach(
                "bad",
                &format!("file://{}?pushdown_filters=maybe", dir.display()),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("pushdown_filters") && e.contains("maybe"), "{e}");
    }

    /// A writer killed with SIGKILL in the middle of a large write leaves the previous file
    /// exactly as it was, and the temporary file it was writing is no table and no rows.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_killed_writer_leaves_the_previous_file_intact() {
        use std::os::unix::process::ExitStatusExt;
        use std::time::{Duration, Instant};

        let dir = temp_dir();
        let url = format!("data=file://{}?format=csv", dir.display());
        let bin = env!("CARGO_BIN_EXE_dataknobs");
        let ok = std::process::Command::new(bin)
            .args([
                "--attach",
                &url,
                "-c",
                "CREATE TABLE data.big (id BIGINT PRIMARY KEY, s TEXT)",
            ])
            .args(["-c", "INSERT INTO data.big VALUES (1, 'one'), (2, 'two')"])
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let before = std::fs::read(dir.join("big.csv")).unwrap();
        // The writer's temporary file (src/store/atomic.rs): `.big.csv.tmp-XXXXXX`.
        let temp_files = || -> Vec<String> {
            std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".big.csv.tmp-"))
                .collect()
        };
        assert_eq!(
            temp_files(),
            Vec::<String>::new(),
            "a temporary file before the write"
        );
        let mut child = std::process::Command::new(bin)
            .args(["--attach", &url, "-c"])
            .arg("INSERT INTO data.big SELECT value + 100, repeat('x', 200) FROM generate_series(1, 3000000)")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill as soon as the writer has created its temporary file: it then writes the whole
        // new file (about 600 MB) into it, which takes far longer than the poll interval.
        let started = Instant::now();
        while temp_files().is_empty() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the writer ended ({status}) before its temporary file was seen");
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no temporary file appeared within 120 s: the kill would not land mid-write"
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the writer had already ended when it was to be killed"
        );
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "the writer did not end by SIGKILL: {status}"
        );
        // The kill landed before the rename: the temporary file is left behind, unrenamed.
        let left = temp_files();
        assert_eq!(left.len(), 1, "the temporary file after the kill: {left:?}");
        eprintln!(
            "killed {:?} after the start, {} bytes into the temporary file",
            started.elapsed(),
            std::fs::metadata(dir.join(&left[0])).unwrap().len()
        );
        assert_eq!(
            std::fs::read(dir.join("big.csv")).unwrap(),
            before,
            "the file changed"
        );
        // The leftover temporary file is neither a table nor rows of one.
        let engine = attach(&dir).await;
        assert_eq!(
            query(
                &engine,
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_catalog = 'data' AND table_schema = 'public' ORDER BY 1"
            )
            .await,
            ["| big        |"]
        );
        assert_eq!(
            rows(
                &engine
                    .execute("SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM data.big")
                    .await
                    .unwrap()
            ),
            ["| 2 | 1  | 2  |"]
        );
    }
}

/// A DATE filter on a table holding dates outside 1677–2262 (the range of nanosecond
/// timestamps) answers, pushed or not: the pushed comparison stays a DATE comparison. On the
/// memory backend and every file format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_filters_over_dates_far_from_now() {
    let mut engines = vec![("memory".to_string(), Engine::new())];
    for f in [
        Format::Csv,
        Format::Tsv,
        Format::Json,
        Format::NdJson,
        Format::Parquet,
    ] {
        engines.push((f.extension().to_string(), engine_with_default(f).await));
    }
    for (name, engine) in engines {
        let t = crate::common::unique_name("dates");
        engine
            .execute(&format!("CREATE TABLE {t} (id INT, d DATE)"))
            .await
            .unwrap_or_else(|e| panic!("{name}: create: {e}"));
        engine
            .execute(&format!(
                "INSERT INTO {t} VALUES (1, DATE '0001-01-01'), (2, DATE '2024-01-01'), \
                 (3, DATE '9999-12-31'), (4, NULL)"
            ))
            .await
            .unwrap_or_else(|e| panic!("{name}: insert: {e}"));
        for (cond, want) in [
            ("d = DATE '2024-01-01'", vec!["2"]),
            ("d < DATE '2000-01-01'", vec!["1"]),
            ("d >= DATE '2024-01-01'", vec!["2", "3"]),
            (
                "d IN (DATE '0001-01-01', DATE '9999-12-31')",
                vec!["1", "3"],
            ),
            ("d <> DATE '0001-01-01'", vec!["2", "3"]),
        ] {
            for pushdown in [true, false] {
                let got = crate::common::ids_where(&engine, &t, cond, pushdown).await;
                assert_eq!(got, want, "{name}: WHERE {cond} (pushdown {pushdown})");
            }
        }
    }
}

/// A string a user stores comes back as stored in CSV/TSV files dataknobs writes, even when it
/// looks like the NULL marker `\N` (such strings are written with one more backslash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_like_the_null_marker_read_back_as_stored() {
    for format in [Format::Csv, Format::Tsv] {
        let dir = temp_dir();
        let url = format!("file://{}?format={}", dir.display(), format.extension());
        let values = r"(1, '\N'), (2, '\\N'), (3, NULL), (4, ''), (5, 'N'), (6, '\'), (7, 'a\N'), (8, '\\\N')";
        let want = vec![
            r"1|\N".to_string(),
            r"2|\\N".to_string(),
            "3|NULL".to_string(),
            "4|".to_string(),
            "5|N".to_string(),
            r"6|\".to_string(),
            r"7|a\N".to_string(),
            r"8|\\\N".to_string(),
        ];
        let read = |engine: Engine| async move {
            let b = engine
                .execute("SELECT id, s, s IS NULL AS null FROM f.t ORDER BY id")
                .await
                .expect("select");
            let mut out = Vec::new();
            for batch in &b {
                for i in 0..batch.num_rows() {
                    let id =
                        datafusion::arrow::util::display::array_value_to_string(batch.column(0), i)
                            .unwrap();
                    let null =
                        datafusion::arrow::util::display::array_value_to_string(batch.column(2), i)
                            .unwrap();
                    let s = if null == "true" {
                        "NULL".to_string()
                    } else {
                        datafusion::arrow::util::display::array_value_to_string(batch.column(1), i)
                            .unwrap()
                    };
                    out.push(format!("{id}|{s}"));
                }
            }
            out
        };
        {
            let engine = Engine::new();
            engine.attach("f", &url).await.expect("attach");
            engine
                .execute("CREATE TABLE f.t (id INT, s VARCHAR)")
                .await
                .expect("create");
            engine
                .execute(&format!("INSERT INTO f.t VALUES {values}"))
                .await
                .expect("insert");
            assert_eq!(read(engine).await, want, "{format:?}, same session");
        }
        // A new session reads the file afresh.
        let engine = Engine::new();
        engine.attach("f", &url).await.expect("attach again");
        assert_eq!(read(engine).await, want, "{format:?}, new session");
    }
}

/// JSON and NDJSON columns come back in the order the file names them, not sorted by name.
#[tokio::test]
async fn json_columns_keep_the_file_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.json"),
        r#"[{"zeta": 1, "alpha": "x", "mid": true}, {"zeta": 2, "late": 1.5}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("n.ndjson"),
        "{\"zeta\": 1, \"alpha\": \"x\"}\n{\"mid\": false, \"zeta\": 3}\n",
    )
    .unwrap();
    let engine = engine_over(dir.path()).await;
    for (table, want) in [
        ("f.t", vec!["zeta", "alpha", "mid", "late"]),
        ("f.n", vec!["zeta", "alpha", "mid"]),
    ] {
        let df = engine.sql(&format!("SELECT * FROM {table}")).await.unwrap();
        let names: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, want, "{table}");
    }
}

/// A CSV file another program made keeps its conventions when dataknobs writes it: empty
/// fields for NULL (not dataknobs' own `\N`), its column order.
#[tokio::test]
async fn insert_into_a_foreign_csv_keeps_its_null_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.csv");
    std::fs::write(&file, "zeta,alpha,mid\n1,a,true\n2,,false\n").unwrap();
    let engine = engine_over(dir.path()).await;
    engine
        .execute("INSERT INTO f.people VALUES (3, NULL, NULL), (4, 'd', true)")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "zeta,alpha,mid\n1,a,true\n2,,false\n3,,\n4,d,true\n"
    );
    let nulls = engine
        .execute("SELECT count(*) AS n FROM f.people WHERE alpha IS NULL")
        .await
        .unwrap();
    assert_eq!(
        crate::common::compact_rows(&nulls),
        vec!["2".to_string()],
        "empty fields still read as NULL"
    );
    // A file dataknobs creates keeps `\N`, which tells NULL from an empty string.
    engine
        .attach("g", &format!("file://{}?format=csv", dir.path().display()))
        .await
        .unwrap();
    engine
        .execute("CREATE TABLE g.made (a TEXT, b TEXT)")
        .await
        .unwrap();
    engine
        .execute("INSERT INTO g.made VALUES ('', NULL)")
        .await
        .unwrap();
    let made = std::fs::read_to_string(dir.path().join("made.csv")).unwrap();
    assert!(made.contains("\\N"), "{made}");
}

/// A column with no value in the whole file (all empty fields, all JSON nulls) reads as
/// nullable text, as DuckDB reads it, so text can be inserted into it.
#[tokio::test]
async fn a_column_without_values_reads_as_text() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.csv"), "id,note\n1,\n2,\n").unwrap();
    std::fs::write(
        dir.path().join("events.ndjson"),
        "{\"id\":1,\"tag\":null}\n{\"id\":2,\"tag\":null}\n",
    )
    .unwrap();
    let engine = engine_over(dir.path()).await;
    for (table, column) in [("notes", "note"), ("events", "tag")] {
        let types = engine
            .execute(&format!(
                "SELECT arrow_typeof({column}) AS t FROM f.{table} LIMIT 1"
            ))
            .await
            .unwrap();
        assert_eq!(
            crate::common::compact_rows(&types),
            vec!["Utf8".to_string()],
            "{table}.{column}"
        );
        engine
            .execute(&format!(
                "INSERT INTO f.{table} (id, {column}) VALUES (3, 'written')"
            ))
            .await
            .unwrap_or_else(|e| panic!("insert into {table}: {e}"));
        let back = engine
            .execute(&format!("SELECT {column} FROM f.{table} WHERE id = 3"))
            .await
            .unwrap();
        assert_eq!(
            crate::common::compact_rows(&back),
            vec!["written".to_string()],
            "{table}"
        );
    }
}

/// A CSV file whose writer quoted every field gets its new rows quoted the same way, and its
/// old rows keep their quotes; a file quoting only where needed stays so.
#[tokio::test]
async fn insert_into_a_fully_quoted_csv_keeps_its_quoting() {
    let dir = tempfile::tempdir().unwrap();
    let quoted = dir.path().join("quoted.csv");
    std::fs::write(&quoted, "\"id\",\"name\"\n\"1\",\"Ann\"\n\"2\",\"x, y\"\n").unwrap();
    let plain = dir.path().join("plain.csv");
    std::fs::write(&plain, "id,name\n1,Ann\n").unwrap();
    let engine = engine_over(dir.path()).await;
    engine
        .execute("INSERT INTO f.quoted VALUES (3, 'Cy')")
        .await
        .unwrap();
    engine
        .execute("INSERT INTO f.plain VALUES (2, 'Bo, b')")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&quoted).unwrap(),
        "\"id\",\"name\"\n\"1\",\"Ann\"\n\"2\",\"x, y\"\n\"3\",\"Cy\"\n"
    );
    assert_eq!(
        std::fs::read_to_string(&plain).unwrap(),
        "id,name\n1,Ann\n2,\"Bo, b\"\n"
    );
    // A later write (the style now comes from the schema file) keeps it.
    engine
        .execute("DELETE FROM f.quoted WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&quoted).unwrap(),
        "\"id\",\"name\"\n\"2\",\"x, y\"\n\"3\",\"Cy\"\n"
    );
}

/// An engine with the folder attached as the file backend `f`.
async fn engine_over(dir: &std::path::Path) -> dataknobs::Engine {
    let engine = dataknobs::Engine::new();
    engine
        .attach("f", &format!("file://{}", dir.display()))
        .await
        .unwrap_or_else(|e| panic!("attach {}: {e}", dir.display()));
    engine
}
