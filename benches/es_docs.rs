//! 200,000 documents (keyword, long, double, text) through the Elasticsearch/OpenSearch
//! backend: the dataknobs side of benches/es_docs.sh, which runs the Python client
//! (opensearch-py `helpers.bulk` / `helpers.scan`) and curl on the same server and prints the
//! ratios.
//!
//! One mode per process:
//! - `load`: `INSERT INTO es.<T> SELECT * FROM memory.src` (200k generated rows; the table is
//!   made first by `CREATE TABLE`; one `_refresh` at the end is part of the statement);
//! - `scan`: `SELECT * FROM es.<T>` into Arrow (batches dropped as they come);
//! - `filter`: `SELECT * FROM es.<T> WHERE n >= 100000 AND n < 100200` (200 rows, 0.1%).
//!
//! Each prints one JSON line `{"engine":"dataknobs","bench":MODE,"seconds":median,"runs":n,
//! "rows":n,"docs_per_s":…}`. Usage: `cargo bench --bench es_docs -- MODE`. Environment:
//! `DK_BENCH_ES_URL` (default `es+http://127.0.0.1:9200`), `DK_BENCH_INDEX` (default
//! `dk_bench_docs`), `DOCS` (default 200000), `RUNS`. Without a mode it prints why and exits 0
//! (so `cargo test --all-targets`, which runs harness = false benches, needs no server).

use std::time::Instant;

use dataknobs::Engine;
use futures::StreamExt;

fn check<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("es_docs: {what}: {e}");
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
        .find(|a| ["load", "scan", "filter"].contains(&a.as_str()))
    else {
        eprintln!(
            "es_docs: give a mode (load, scan, filter); run benches/es_docs.sh for the comparison"
        );
        return;
    };
    let url = env("DK_BENCH_ES_URL", "es+http://127.0.0.1:9200");
    let table = env("DK_BENCH_INDEX", "dk_bench_docs");
    let docs: usize = check(env("DOCS", "200000").parse(), "DOCS");
    let engine = Engine::new();
    check(engine.attach("es", &url).await, "attach");
    let (seconds, rows, runs) = match mode.as_str() {
        "load" => {
            check(
                engine
                    .execute(&format!(
                        "CREATE TABLE memory.src AS SELECT 'k' || (v % 1000) AS kw, v AS n, \
                         v * 0.5 AS d, 'document number ' || v || ' about search engines and rust' AS t \
                         FROM generate_series(1, {docs}) AS g(v)"
                    ))
                    .await,
                "generate rows",
            );
            check(
                engine
                    .execute(&format!("DROP TABLE IF EXISTS es.{table}"))
                    .await,
                "drop",
            );
            check(
                engine
                    .execute(&format!(
                        "CREATE TABLE es.{table} (kw TEXT, n BIGINT, d DOUBLE, t TEXT)"
                    ))
                    .await,
                "create",
            );
            let t = Instant::now();
            check(
                engine
                    .execute(&format!("INSERT INTO es.{table} SELECT * FROM memory.src"))
                    .await,
                "insert",
            );
            (t.elapsed().as_secs_f64(), docs, 1)
        }
        "scan" | "filter" => {
            let runs: usize = check(
                env("RUNS", if mode == "scan" { "3" } else { "10" }).parse(),
                "RUNS",
            );
            let sql = if mode == "scan" {
                format!("SELECT * FROM es.{table}")
            } else {
                format!("SELECT * FROM es.{table} WHERE n >= 100000 AND n < 100200")
            };
            // One warm-up run (JIT on the server, connections).
            let rows = stream_rows(&engine, &sql).await;
            let mut times = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                let n = stream_rows(&engine, &sql).await;
                times.push(t.elapsed().as_secs_f64());
                assert_eq!(n, rows);
            }
            (median(times), rows, runs)
        }
        _ => unreachable!(),
    };
    println!(
        "{{\"engine\":\"dataknobs\",\"bench\":\"{mode}\",\"seconds\":{seconds:.4},\"runs\":{runs},\"rows\":{rows},\"docs_per_s\":{:.0}}}",
        rows as f64 / seconds
    );
}
