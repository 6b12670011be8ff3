//! The S3 backend on the moto server of scripts/services.sh: the dataknobs side of
//! benches/s3.sh, which runs boto3 (the Python seed's S3Database method: one JSON object per
//! record, 10 threads) and curl on the same server and prints the ratios.
//!
//! One mode per process:
//! - `create`: `batch_create` of RECORDS records (id, name, age, city) into a fresh record
//!   collection (`format=records`, key `id`) per run, through the backend's record API;
//! - `read`: `batch_read` of those RECORDS ids from a collection written once (untimed);
//! - `scan`: `SELECT * FROM lake.big` over the Parquet object `ds/big.parquet` that s3.sh
//!   uploads, into Arrow (batches dropped as they come; one warm-up run).
//!
//! Each prints one JSON line `{"engine":"dataknobs","bench":MODE,"seconds":median,"runs":n,…}`
//! with `records_per_s` (create, read) or `rows` and `mb_per_s` (scan). Usage:
//! `cargo bench --bench s3_bench -- MODE`. Environment: `DK_BENCH_S3_ENDPOINT` (default
//! `http://127.0.0.1:9310`), `DK_BENCH_S3_BUCKET` (`dk-bench`), `DK_BENCH_S3_KEY` /
//! `DK_BENCH_S3_SECRET` (`dk-test-access-key` / `dk-test-secret-key`), `RECORDS` (2000), `RUNS`
//! (5 for create and read, 3 for scan), `WORKERS` (64: the URL's `max_workers`),
//! `OBJECT_BYTES` (the Parquet object's size, for `mb_per_s`). Without a mode it prints why
//! and exits 0 (so `cargo test --all-targets`, which runs harness = false benches, needs no
//! server).

/// The `dataknobs` binary's allocator (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use dataknobs::{Backend, CollectionSpec, Database, DatabaseFactory, Engine, Record};
use futures::StreamExt;

/// Keep identical to benches/s3_compare.py.
const CITIES: [&str; 8] = [
    "Paris", "Oslo", "Lima", "Quito", "Rome", "Kyiv", "Baku", "Doha",
];

fn check<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("s3_bench: {what}: {e}");
        std::process::exit(1)
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// `s3://KEY:SECRET@BUCKET/PREFIX?endpoint=…` plus `extra` (`&…`).
fn lake_url(prefix: &str, extra: &str) -> String {
    format!(
        "s3://{}:{}@{}/{prefix}?endpoint={}{extra}",
        env("DK_BENCH_S3_KEY", "dk-test-access-key"),
        env("DK_BENCH_S3_SECRET", "dk-test-secret-key"),
        env("DK_BENCH_S3_BUCKET", "dk-bench"),
        env("DK_BENCH_S3_ENDPOINT", "http://127.0.0.1:9310").trim_end_matches('/'),
    )
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new()
                .with("id", format!("r{i:05}"))
                .with("name", format!("person {i}"))
                .with("age", (i % 90) as i64)
                .with("city", CITIES[i % CITIES.len()])
        })
        .collect()
}

/// A fresh record collection keyed by `id`.
async fn collection(backend: &Arc<dyn Backend>, name: &str) -> Arc<dyn Database> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("age", DataType::Int64, true),
        Field::new("city", DataType::Utf8, true),
    ]));
    check(
        backend
            .create_collection(
                "public",
                name,
                CollectionSpec {
                    schema,
                    key: Some("id".into()),
                    record_ids: true,
                },
                false,
            )
            .await,
        "create collection",
    )
}

/// Runs `sql`, streaming the result; returns the row count.
async fn stream_rows(engine: &Engine, sql: &str) -> usize {
    let df = check(engine.context().sql(sql).await, sql);
    let mut s = check(df.execute_stream().await, sql);
    let mut rows = 0;
    while let Some(b) = s.next().await {
        rows += check(b, sql).num_rows();
    }
    rows
}

#[tokio::main]
async fn main() {
    let Some(mode) = std::env::args()
        .skip(1)
        .find(|a| ["create", "read", "scan"].contains(&a.as_str()))
    else {
        eprintln!(
            "s3_bench: give a mode (create, read, scan); run benches/s3.sh for the comparison"
        );
        return;
    };
    let n: usize = check(env("RECORDS", "2000").parse(), "RECORDS");
    let workers: usize = check(env("WORKERS", "64").parse(), "WORKERS");
    let runs: usize = check(
        env("RUNS", if mode == "scan" { "3" } else { "5" }).parse(),
        "RUNS",
    );
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let engine = Engine::new();
    match mode.as_str() {
        "create" | "read" => {
            let url = lake_url("rec/", &format!("&format=records&max_workers={workers}"));
            check(engine.attach("lake", &url).await, "attach");
            let backend = check(DatabaseFactory::with_builtin().open(&url).await, "open");
            let mut times = Vec::with_capacity(runs);
            if mode == "create" {
                for run in 0..runs {
                    let name = format!("c{stamp}_{run}");
                    let db = collection(&backend, &name).await;
                    if run == 0 {
                        // Untimed: makes the record client (as boto3's is made before timing).
                        check(db.read("warm-up").await, "warm-up read");
                    }
                    let batch = records(n);
                    let t = Instant::now();
                    let ids = check(db.batch_create(batch).await, "batch_create");
                    times.push(t.elapsed().as_secs_f64());
                    assert_eq!(ids.len(), n);
                    // Untimed: keeps the server's bucket small.
                    check(
                        backend.drop_collection("public", &name, true).await,
                        "drop collection",
                    );
                }
            } else {
                let name = format!("r{stamp}");
                let db = collection(&backend, &name).await;
                let ids = check(db.batch_create(records(n)).await, "batch_create");
                assert_eq!(ids.len(), n);
                let ids: Vec<String> = (0..n).map(|i| format!("r{i:05}")).collect();
                for _ in 0..runs {
                    let t = Instant::now();
                    let got = check(db.batch_read(&ids).await, "batch_read");
                    times.push(t.elapsed().as_secs_f64());
                    assert_eq!(got.len(), n);
                    let found = got.iter().filter(|r| r.is_some()).count();
                    if found != n {
                        eprintln!("s3_bench: batch_read found {found} of {n} records");
                        std::process::exit(1);
                    }
                }
                check(
                    backend.drop_collection("public", &name, true).await,
                    "drop collection",
                );
            }
            let seconds = median(times);
            println!(
                "{{\"engine\":\"dataknobs\",\"bench\":\"{mode}\",\"seconds\":{seconds:.4},\"runs\":{runs},\"records\":{n},\"workers\":{workers},\"records_per_s\":{:.0}}}",
                n as f64 / seconds
            );
        }
        "scan" => {
            check(engine.attach("lake", &lake_url("ds/", "")).await, "attach");
            if let Ok(p) = std::env::var("SCAN_PARTITIONS") {
                let set = format!("SET datafusion.execution.target_partitions = {p}");
                check(engine.execute(&set).await, &set);
            }
            let sql = "SELECT * FROM lake.big";
            if std::env::var("SHOW_PLAN").is_ok() {
                let plan = check(engine.execute(&format!("EXPLAIN {sql}")).await, "explain");
                eprintln!(
                    "{}",
                    datafusion::arrow::util::pretty::pretty_format_batches(&plan)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                );
            }
            // One warm-up run (the client, connections, the object's metadata).
            let rows = stream_rows(&engine, sql).await;
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs {
                let t = Instant::now();
                let got = stream_rows(&engine, sql).await;
                times.push(t.elapsed().as_secs_f64());
                assert_eq!(got, rows);
            }
            let seconds = median(times);
            let bytes: Option<u64> = std::env::var("OBJECT_BYTES")
                .ok()
                .and_then(|s| s.parse().ok());
            let (bytes_json, mb_per_s) = match bytes {
                Some(b) => (b.to_string(), format!("{:.1}", b as f64 / seconds / 1e6)),
                None => ("null".to_string(), "null".to_string()),
            };
            println!(
                "{{\"engine\":\"dataknobs\",\"bench\":\"scan\",\"seconds\":{seconds:.4},\"runs\":{runs},\"rows\":{rows},\"bytes\":{bytes_json},\"mb_per_s\":{mb_per_s}}}"
            );
        }
        _ => unreachable!(),
    }
}
