//! The file backend: the conformance suite, the .slt files and the differential test once per
//! format, plus file-specific behaviour (directories, Hive partitions, path safety, exports,
//! bad files, a writer killed mid-write).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dataknobs::backends::file::{FileBackend, FileOptions, Format};
use dataknobs::{Backend, Engine};

use crate::conformance::Fixture;

/// A fresh directory that outlives the test (under the system temp dir).
pub fn temp_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("dataknobs-file-")
        .tempdir()
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

            mod conformance {
                use super::FileFixture;
                use dataknobs::backends::file::Format;
                crate::all_scenarios!(crate::conformance_suite; FileFixture($format));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn slt() {
                let name = format!("file-{}", $format.extension());
                crate::slt::run_all(&name, || engine_with_default($format)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn differential() {
                let engine = engine_with_default($format).await;
                let seed = crate::differential::seed_from_env();
                crate::differential::load_table(&engine, "diff", 300, seed).await;
                let outcome = crate::differential::run_differential(&engine, "diff", crate::differential::count_from_env(), seed).await;
                // DataFusion's own file scans decide what they prune; results must match.
                crate::differential::check_results(&outcome, &format!("file-{}", $format.extension()));
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

    /// A writer killed with SIGKILL in the middle of a large write leaves the previous file
    /// exactly as it was.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_killed_writer_leaves_the_previous_file_intact() {
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
        let mut child = std::process::Command::new(bin)
            .args(["--attach", &url, "-c"])
            .arg("INSERT INTO data.big SELECT value + 100, repeat('x', 200) FROM generate_series(1, 3000000)")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill once the writer has started its temporary file (or after a bounded wait).
        let started = std::time::Instant::now();
        loop {
            let temp_exists = std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains(".tmp"));
            if temp_exists || started.elapsed() > std::time::Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            std::fs::read(dir.join("big.csv")).unwrap(),
            before,
            "the file changed"
        );
        let engine = attach(&dir).await;
        assert_eq!(
            rows(
                &engine
                    .execute("SELECT count(*) FROM data.big")
                    .await
                    .unwrap()
            ),
            ["| 2        |"]
        );
    }
}
