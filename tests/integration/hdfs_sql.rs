//! HDFS in SQL, against the MiniDFSCluster of scripts/services.sh (DK_TEST_HDFS_URL): the
//! shared conformance scenarios, `.slt` files and differential test on the key-value layout
//! (`layout=kv`, every record a JSON file), the differential test on Parquet datasets, and
//! what is HDFS's own: files and Hive-partitioned directories as tables, INSERT/CTAS/DROP/COPY
//! writing files, joins with other backends, and bad input (truncated Parquet, corrupt
//! records, names leaving the base, a user without permission, an unreachable namenode).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use dataknobs::{Backend, Engine, ErrorKind};
use hdfs_native::{Client, WriteOptions};

use crate::common::{compact_rows, parquet_of, rows, sorted_rows, unique_name};
use crate::conformance::Fixture;

/// The test namenode: `hdfs://host:port`.
pub(crate) fn hdfs_url() -> String {
    std::env::var("DK_TEST_HDFS_URL").unwrap_or_else(|_| "hdfs://127.0.0.1:9000".to_string())
}

/// A plain client, to look at and change what the backend wrote.
pub(crate) fn raw() -> Client {
    dataknobs::kv::hdfs::client_builder()
        .with_url(hdfs_url())
        .build()
        .expect("hdfs client")
}

/// Writes `bytes` to `path` (parents made), replacing it.
async fn put(c: &Client, path: &str, bytes: &[u8]) {
    let mut w = c
        .create(path, WriteOptions::default().overwrite(true))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "writing {path} on {}: {e} (is scripts/services.sh's HDFS up?)",
                hdfs_url()
            )
        });
    w.write(Bytes::copy_from_slice(bytes)).await.expect("write");
    w.close().await.expect("close");
}

/// Every file below `dir`, relative to it.
async fn files_below(c: &Client, dir: &str) -> Vec<String> {
    let mut out: Vec<String> = c
        .list_status(dir, true)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.isdir)
        .map(|s| s.path.trim_start_matches(dir).to_string())
        .collect();
    out.sort();
    out
}

/// A fresh directory under /warehouse (for datasets) and its attach URL.
fn fresh_files(extra: &str) -> (String, String) {
    let dir = format!("/warehouse/{}", unique_name("dkt"));
    (format!("{}{dir}{extra}", hdfs_url()), dir)
}

/// A fresh key-value base under /volnux and its attach URL.
fn fresh_kv() -> (String, String) {
    let dir = format!("/volnux/{}", unique_name("dkt"));
    (format!("{}{dir}?layout=kv", hdfs_url()), dir)
}

async fn engine_at(name: &str, url: &str) -> Engine {
    let engine = Engine::new();
    engine
        .attach(name, url)
        .await
        .unwrap_or_else(|e| panic!("attach {url}: {e}"));
    engine.set_default_backend(name).expect("default");
    engine
}

pub struct HdfsKvFixture;

#[async_trait]
impl Fixture for HdfsKvFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        let (url, _) = fresh_kv();
        dataknobs::DatabaseFactory::with_builtin()
            .open(&url)
            .await
            .unwrap_or_else(|e| panic!("attach {url}: {e}"))
    }
}

async fn kv_engine() -> Engine {
    engine_at("kv", &fresh_kv().0).await
}

async fn files_engine() -> Engine {
    engine_at("lake", &fresh_files("").0).await
}

mod kv {
    crate::backend_suite! {
        fixture: super::HdfsKvFixture,
        name: "hdfs",
        engine: super::kv_engine,
        // Every filter over the columns is evaluated by DataFusion's kernels on each batch.
        differential: { rows: 24, share: Some(0.8) },
    }
}

/// The differential test on Parquet datasets: DataFusion's own Parquet scan decides what it
/// prunes (row groups, predicates); results must match the in-memory reference. Each INSERT
/// adds a file; UPDATE and DELETE are refused on datasets (tested below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_on_parquet_datasets() {
    let engine = files_engine().await;
    crate::differential::run_for_insert_only_backend(&engine, "hdfs-files", 300).await;
}

async fn sql(engine: &Engine, q: &str) -> Vec<String> {
    rows(
        &engine
            .execute(q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}")),
    )
}

async fn sorted(engine: &Engine, q: &str) -> Vec<String> {
    sorted_rows(
        &engine
            .execute(q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}")),
    )
}

async fn sql_err(engine: &Engine, q: &str) -> dataknobs::Error {
    match engine.execute(q).await {
        Ok(b) => panic!("expected {q} to fail, got {:?}", rows(&b)),
        Err(e) => e,
    }
}

fn parquet_bytes(ids: &[i64], names: &[&str]) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .expect("batch");
    parquet_of(&batch, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_hive_partitioned_directories_are_tables() {
    let c = raw();
    let (url, dir) = fresh_files("");
    put(
        &c,
        &format!("{dir}/people.csv"),
        b"id,name\n1,Ada\n2,Grace\n",
    )
    .await;
    put(
        &c,
        &format!("{dir}/events/region=eu/a.parquet"),
        &parquet_bytes(&[1, 2], &["x", "y"]),
    )
    .await;
    put(
        &c,
        &format!("{dir}/events/region=us/b.parquet"),
        &parquet_bytes(&[3], &["z"]),
    )
    .await;
    // Hidden files (a writer's temporary file) are not tables.
    put(&c, &format!("{dir}/.t.parquet.tmp.1"), b"half").await;
    let engine = engine_at("lake", &url).await;
    assert_eq!(
        sorted(
            &engine,
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'lake' \
             AND table_schema = 'public'"
        )
        .await,
        ["| events     |", "| people     |"]
    );
    assert_eq!(
        sql(&engine, "SELECT id, name FROM lake.people ORDER BY id").await,
        ["| 1  | Ada   |", "| 2  | Grace |"]
    );
    assert_eq!(
        sql(
            &engine,
            "SELECT region, count(*) AS n, sum(id) AS s FROM lake.events GROUP BY region \
             ORDER BY region"
        )
        .await,
        ["| eu     | 2 | 3 |", "| us     | 1 | 3 |"]
    );
    // A filter on the partition column prunes whole directories.
    let plan = sql(
        &engine,
        "EXPLAIN SELECT name FROM lake.events WHERE region = 'us' AND id > 0",
    )
    .await
    .join("\n");
    assert!(plan.contains("region=us/b.parquet"), "{plan}");
    assert!(!plan.contains("region=eu"), "{plan}");
    assert!(plan.contains("predicate=id@"), "{plan}");
}

/// Rows `first..first + n` of the many-row-group test table: `(id, name, v)`.
fn striped(first: i64, n: i64) -> Vec<(i64, String, i64)> {
    (first..first + n)
        .map(|i| (i, format!("n{:05}", (i * 37) % 5003), (i * 7) % 101))
        .collect()
}

/// A Parquet file of `rows` in row groups of `group` rows (pages of 50 rows), with page
/// statistics (a page index, so scans may read single pages) or only chunk statistics.
fn striped_parquet(rows: &[(i64, String, i64)], group: usize, pages: bool) -> Vec<u8> {
    use datafusion::arrow::array::Int64Array as I;
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("v", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(I::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
            Arc::new(I::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .expect("batch");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .set_data_page_row_count_limit(50)
        .set_write_batch_size(50)
        .set_statistics_enabled(if pages {
            EnabledStatistics::Page
        } else {
            EnabledStatistics::Chunk
        })
        .build();
    parquet_of(&batch, Some(props))
}

/// HDFS Parquet files are read through one open file each, reading the next row group's
/// chunks ahead: whatever a query asks for (all columns, a projection, row groups pruned by
/// statistics, a row filter, a LIMIT, files split between partitions), the rows are the ones
/// in the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_files_of_many_row_groups_read_the_same_whatever_is_asked() {
    let c = raw();
    let (url, dir) = fresh_files("");
    let (a, b) = (striped(0, 3000), striped(3000, 2000));
    put(
        &c,
        &format!("{dir}/t/a.parquet"),
        &striped_parquet(&a, 250, true),
    )
    .await;
    put(
        &c,
        &format!("{dir}/t/b.parquet"),
        &striped_parquet(&b, 130, false),
    )
    .await;
    let all: Vec<(i64, String, i64)> = a.into_iter().chain(b).collect();
    let engine = engine_at("lake", &url).await;
    for partitions in [1, 2, 7] {
        let set = format!("SET datafusion.execution.target_partitions = {partitions}");
        engine.execute(&set).await.expect("set");
        // Files this small are split between partitions only below this size.
        engine
            .execute("SET datafusion.optimizer.repartition_file_min_size = 1000")
            .await
            .expect("set");
        let q = |sql: &'static str| {
            let engine = &engine;
            async move {
                compact_rows(
                    &engine
                        .execute(sql)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}")),
                )
            }
        };
        let sum: i64 = all.iter().map(|r| r.2).sum();
        let min = all.iter().map(|r| &r.1).min().expect("rows");
        let max = all.iter().map(|r| &r.1).max().expect("rows");
        assert_eq!(
            q("SELECT count(*), sum(v), min(name), max(name), sum(id) FROM lake.t").await,
            [format!(
                "5000|{sum}|{min}|{max}|{}",
                (0..5000i64).sum::<i64>()
            )],
            "{partitions} partitions"
        );
        let want: Vec<String> = all
            .iter()
            .filter(|r| {
                (1130..=1260).contains(&r.0)
                    || (1900..=1950).contains(&r.0)
                    || (3300..=3310).contains(&r.0)
                    || (3600..=3610).contains(&r.0)
                    || (3900..4000).contains(&r.0)
                    || (4300..=4310).contains(&r.0)
            })
            .map(|r| format!("{}|{}", r.0, r.2))
            .collect();
        assert_eq!(
            // Pages of a.parquet (its page index). Row groups of 130 rows in b.parquet: 2
            // then 4 (3 is pruned, so the read-ahead of 3 is dropped and 4 read instead); 6
            // and 7 (7 read ahead); 10.
            q("SELECT id, v FROM lake.t WHERE id BETWEEN 1130 AND 1260 OR id BETWEEN 1900 AND 1950 \
               OR id BETWEEN 3300 AND 3310 OR id BETWEEN 3600 AND 3610 \
               OR (id >= 3900 AND id < 4000) OR id BETWEEN 4300 AND 4310 ORDER BY id")
            .await,
            want,
            "{partitions} partitions"
        );
        let mut want: Vec<String> = all
            .iter()
            .filter(|r| r.2 == 5)
            .map(|r| r.1.clone())
            .collect();
        want.sort();
        assert_eq!(
            q("SELECT name FROM lake.t WHERE v = 5 ORDER BY name").await,
            want,
            "{partitions} partitions"
        );
        let want: Vec<String> = all[2500..2503]
            .iter()
            .map(|r| format!("{}|{}|{}", r.0, r.1, r.2))
            .collect();
        assert_eq!(
            q("SELECT * FROM lake.t ORDER BY id LIMIT 3 OFFSET 2500").await,
            want,
            "{partitions} partitions"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_insert_copy_and_drop_write_files_under_the_directory() {
    let c = raw();
    let (url, dir) = fresh_files("");
    let engine = engine_at("lake", &url).await;
    sql(
        &engine,
        "CREATE TABLE lake.t AS SELECT * FROM (VALUES (1, 'a', 1.5), (2, 'b', NULL)) AS v(id, \
         name, x)",
    )
    .await;
    sql(&engine, "INSERT INTO lake.t VALUES (3, 'c', 3.5)").await;
    let files = files_below(&c, &format!("{dir}/t")).await;
    assert_eq!(
        files.iter().filter(|f| f.ends_with(".parquet")).count(),
        2,
        "one file per statement: {files:?}"
    );
    assert!(
        files.iter().all(|f| !f.contains(".tmp")),
        "no temporary file is left behind: {files:?}"
    );
    assert_eq!(
        sql(&engine, "SELECT id, name, x FROM lake.t ORDER BY id").await,
        [
            "| 1  | a    | 1.5 |",
            "| 2  | b    |     |",
            "| 3  | c    | 3.5 |"
        ]
    );
    // EXPLAIN plans an INSERT and writes nothing.
    sql(&engine, "EXPLAIN INSERT INTO lake.t VALUES (9, 'z', 0.0)").await;
    assert_eq!(
        files_below(&c, &format!("{dir}/t")).await.len(),
        files.len()
    );
    // Another process (a new engine) sees the table and its columns.
    let other = engine_at("lake", &url).await;
    assert_eq!(
        sql(&other, "SELECT count(*), sum(id) FROM lake.t").await,
        ["| 3        | 6              |"]
    );
    // COPY exports through the attached namenode.
    let target = format!("{}{dir}/export/out.parquet", hdfs_url());
    sql(
        &engine,
        &format!("COPY (SELECT id, name FROM lake.t WHERE id > 1) TO '{target}'"),
    )
    .await;
    assert_eq!(
        files_below(&c, &format!("{dir}/export")).await,
        ["/out.parquet"]
    );
    assert_eq!(
        sql(&engine, "SELECT id, name FROM lake.export ORDER BY id").await,
        ["| 2  | b    |", "| 3  | c    |"]
    );
    // DELETE and UPDATE are refused with a reason; nothing changes.
    let e = sql_err(&engine, "DELETE FROM lake.t WHERE id = 1").await;
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("layout=kv"), "{e}");
    sql(&engine, "DROP TABLE lake.t").await;
    assert!(files_below(&c, &format!("{dir}/t")).await.is_empty());
    let e = sql_err(&engine, "SELECT * FROM lake.t").await;
    assert!(e.to_string().contains("t"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_joins_a_kv_table_and_a_memory_table() {
    let (files_url, _) = fresh_files("");
    let (kv_url, _) = fresh_kv();
    let engine = Engine::new();
    engine.attach("lake", &files_url).await.expect("lake");
    engine.attach("kv", &kv_url).await.expect("kv");
    sql(
        &engine,
        "CREATE TABLE lake.orders AS SELECT * FROM (VALUES (1, 'p1', 10), (2, 'p2', 20), (3, \
         'p1', 5)) AS v(id, person, amount)",
    )
    .await;
    sql(
        &engine,
        "CREATE TABLE kv.people (\"key\" VARCHAR PRIMARY KEY, name VARCHAR)",
    )
    .await;
    sql(
        &engine,
        "INSERT INTO kv.people VALUES ('p1', 'Ada'), ('p2', 'Grace')",
    )
    .await;
    sql(
        &engine,
        "CREATE TABLE memory.bonus AS SELECT * FROM (VALUES ('Ada', 100)) AS v(name, b)",
    )
    .await;
    assert_eq!(
        sql(
            &engine,
            "SELECT p.name, sum(o.amount) + coalesce(max(b.b), 0) AS total FROM lake.orders o \
             JOIN kv.people p ON o.person = p.key LEFT JOIN memory.bonus b ON b.name = p.name \
             GROUP BY p.name ORDER BY p.name"
        )
        .await,
        ["| Ada   | 115   |", "| Grace | 20    |"]
    );
    // Key lookups read the files directly; EXPLAIN says so.
    let plan = sql(
        &engine,
        "EXPLAIN SELECT name FROM kv.people WHERE key IN ('p1', 'p9')",
    )
    .await
    .join("\n");
    assert!(plan.contains("direct reads of 2 record file(s)"), "{plan}");
    // Migration: INSERT … SELECT from the key-value table into a dataset.
    sql(
        &engine,
        "CREATE TABLE lake.people_copy AS SELECT key, name FROM kv.people",
    )
    .await;
    assert_eq!(
        sql(
            &engine,
            "SELECT key, name FROM lake.people_copy ORDER BY key"
        )
        .await,
        ["| p1  | Ada   |", "| p2  | Grace |"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_tables_keep_records_as_json_files_under_the_base() {
    let c = raw();
    let (url, base) = fresh_kv();
    let engine = engine_at("kv", &url).await;
    sql(
        &engine,
        "CREATE TABLE kv.people (\"key\" VARCHAR PRIMARY KEY, name VARCHAR, age BIGINT)",
    )
    .await;
    sql(
        &engine,
        "INSERT INTO kv.people VALUES ('p1', 'Ada', 36), ('../x', 'Eve', 1), ('/etc/passwd', \
         'Mallory', 2)",
    )
    .await;
    let files = files_below(&c, &base).await;
    // The declaration of the table, and one file per record: keys that look like paths are
    // file names inside the schema's directory.
    assert!(files.contains(&"/people/p1".to_string()), "{files:?}");
    assert!(files.contains(&"/people/%2E.%2Fx".to_string()), "{files:?}");
    assert!(
        files.contains(&"/people/%2Fetc%2Fpasswd".to_string()),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("/people/") || f.starts_with("/_dataknobs")),
        "{files:?}"
    );
    let mut r = c.read(&format!("{base}/people/p1")).await.expect("read p1");
    let json: serde_json::Value =
        serde_json::from_slice(&r.read(r.file_length()).await.expect("bytes")).expect("json");
    assert_eq!(json["name"], "Ada");
    assert_eq!(json["age"], 36);
    assert_eq!(
        sql(
            &engine,
            "SELECT key, name FROM kv.people WHERE key IN ('../x', '/etc/passwd') ORDER BY key"
        )
        .await,
        ["| ../x        | Eve     |", "| /etc/passwd | Mallory |"]
    );
    // The declared columns are kept in HDFS: another process sees them before any scan.
    let other = engine_at("kv", &url).await;
    assert_eq!(
        sql(&other, "SELECT name, age FROM kv.people WHERE key = 'p1'").await,
        ["| Ada  | 36  |"]
    );
    sql(
        &engine,
        "UPDATE kv.people SET age = age + 1 WHERE name = 'Ada'",
    )
    .await;
    sql(&engine, "DELETE FROM kv.people WHERE key = '../x'").await;
    assert_eq!(
        sql(&other, "SELECT key, age FROM kv.people ORDER BY key").await,
        ["| /etc/passwd | 2   |", "| p1          | 37  |"]
    );
    sql(&engine, "DROP TABLE kv.people").await;
    assert!(
        files_below(&c, &format!("{base}/people")).await.is_empty(),
        "DROP TABLE removes the records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_naming_the_path() {
    let c = raw();
    // A truncated Parquet file.
    let (url, dir) = fresh_files("");
    let whole = parquet_bytes(&[1, 2, 3], &["a", "b", "c"]);
    put(
        &c,
        &format!("{dir}/broken.parquet"),
        &whole[..whole.len() / 2],
    )
    .await;
    let engine = Engine::new();
    let attached = engine.attach("lake", &url).await;
    let e = match attached {
        Err(e) => e,
        Ok(()) => sql_err(&engine, "SELECT * FROM lake.broken").await,
    };
    assert!(e.to_string().contains("broken.parquet"), "{e}");

    // A corrupt JSON record in a key-value schema.
    let (kv_url, base) = fresh_kv();
    let engine = engine_at("kv", &kv_url).await;
    sql(
        &engine,
        "CREATE TABLE kv.things (\"key\" VARCHAR PRIMARY KEY, n BIGINT)",
    )
    .await;
    sql(&engine, "INSERT INTO kv.things VALUES ('ok', 1)").await;
    put(&c, &format!("{base}/things/bad"), b"{\"n\": 1,").await;
    let e = sql_err(&engine, "SELECT * FROM kv.things").await;
    assert!(e.to_string().contains("bad"), "{e}");
    assert!(e.to_string().contains("things"), "{e}");
    assert_eq!(
        sql(&engine, "SELECT n FROM kv.things WHERE key = 'ok'").await,
        ["| 1 |"]
    );

    // Names that try to leave the directory.
    let files = files_engine().await;
    for name in ["\"..\"", "\"../etc\"", "\"%2e%2e\"", "\"/etc\""] {
        let e = sql_err(&files, &format!("CREATE TABLE lake.{name} (a INT)")).await;
        assert!(e.to_string().contains("not a table name"), "{name}: {e}");
    }
    for name in ["\"..\"", "\"a/b\"", "\"%2e%2e\"", "\".x\""] {
        let e = sql_err(&engine, &format!("CREATE TABLE kv.{name} (n BIGINT)")).await;
        assert!(e.to_string().contains("not a"), "{name}: {e}");
        assert!(e.to_string().contains("hdfs://"), "{name}: {e}");
    }

    // An unreachable namenode, both layouts.
    for extra in ["", "?layout=kv"] {
        let url = format!("hdfs://127.0.0.1:1/warehouse{extra}");
        let started = std::time::Instant::now();
        let e = dataknobs::DatabaseFactory::with_builtin()
            .open(&format!(
                "{url}{}connect_timeout=3s",
                if extra.is_empty() { "?" } else { "&" }
            ))
            .await
            .expect_err("nothing listens on port 1");
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}

/// hdfs-native takes its user from HADOOP_USER_NAME once per process: the refusal of a user
/// without rights is checked in a child process (the `dataknobs` command).
#[test]
fn a_user_without_permission_is_refused() {
    let run = |user: &str, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dataknobs"))
            .env("HADOOP_USER_NAME", user)
            .args(args)
            .output()
            .expect("run dataknobs");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let private = format!("lake={}/dk_private", hdfs_url());
    let (ok, text) = run("dk_nobody", &["--attach", &private, "-c", "SELECT 1"]);
    assert!(!ok, "{text}");
    assert!(text.to_lowercase().contains("permission"), "{text}");
    assert!(text.contains("dk_private"), "{text}");
    // The superuser may.
    let owner = std::env::var("DK_TEST_HDFS_USER").unwrap_or_else(|_| "root".to_string());
    let (ok, text) = run(&owner, &["--attach", &private, "-c", "SELECT 1"]);
    assert!(ok, "{text}");
    // A user named in the URL that is not the process's user is refused before any request.
    let other = format!(
        "lake=hdfs://someone@{}/warehouse",
        hdfs_url().trim_start_matches("hdfs://")
    );
    let (ok, text) = run(&owner, &["--attach", &other, "-c", "SELECT 1"]);
    assert!(!ok, "{text}");
    assert!(text.contains("HADOOP_USER_NAME"), "{text}");
}
