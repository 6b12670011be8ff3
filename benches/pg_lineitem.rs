//! TPC-H SF1 `lineitem` through the PostgreSQL backend: the dataknobs side of
//! benches/pg_lineitem.sh, which runs DuckDB, ConnectorX and psql (benches/pg_compare.py) on the
//! same tables and prints the ratios.
//!
//! One mode per process (so the peak RSS belongs to that mode):
//! - `load`: `CREATE TABLE pg.<T> AS SELECT * FROM data.lineitem` (the whole statement timed),
//!   `data` = the file backend on `$TPCH_DIR/parquet`. `DK_BENCH_LOAD=insert` times
//!   `INSERT INTO pg.<T> SELECT * FROM data.lineitem` into a table made by a `LIMIT 0` CTAS.
//! - `scan`: an aggregate that needs the values of every column (`SCAN`), pulled into Arrow.
//! - `scan_arrow`: `SELECT * FROM pg.<T>` streamed, batches dropped as they come.
//! - `filter`: `SELECT * FROM pg.<T> WHERE l_orderkey < 6000` (6018 rows at SF1).
//!
//! Each prints one JSON line `{"engine":"dataknobs","bench":MODE,"seconds":median,"runs":n,
//! "rss_mb":VmHWM,"rows":n}`.
//!
//! Usage: `TPCH_DIR=DIR cargo bench --bench pg_lineitem -- MODE`. Environment:
//! `DK_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! `DK_BENCH_TABLE` (default `lineitem_bench`), `RUNS` (default: load 1, scan 3, filter 5).
//! Without `TPCH_DIR` or a mode it prints why and exits 0, so that
//! `cargo test --all-targets` (which runs harness = false benches) passes without a database.

use std::fmt::Display;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::arrow::util::pretty::pretty_format_batches;
use dataknobs::Engine;
use futures::StreamExt;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MODES: [&str; 4] = ["load", "scan", "scan_arrow", "filter"];

// Keep these identical to benches/pg_compare.py ({T} = the table).
const SCAN: &str = "SELECT count(*) AS n, max(l_orderkey), max(l_partkey), max(l_suppkey), \
    max(l_linenumber), sum(l_quantity), sum(l_extendedprice), sum(l_discount), sum(l_tax), \
    max(l_returnflag), max(l_linestatus), max(l_shipdate), max(l_commitdate), \
    max(l_receiptdate), max(l_shipinstruct), max(l_shipmode), sum(length(l_comment)) \
    FROM {T}";
const FILTER: &str = "SELECT * FROM {T} WHERE l_orderkey < 6000";

/// The value or, on error, a message naming the step and exit code 1.
fn check<T, E: Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("pg_lineitem: {what}: {e}");
            std::process::exit(1);
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Peak resident set size of this process in MB (VmHWM), 0 if unknown.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The first cell of the first batch as a number (a `count` result).
fn first_number(batches: &[RecordBatch]) -> u64 {
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .expect("a result row");
    let text = check(array_value_to_string(batch.column(0), 0), "format result");
    check(text.parse::<u64>(), "count is not a number")
}

async fn run_sql(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    check(engine.execute(sql).await, sql)
}

async fn load(engine: &Engine, table: &str, runs: usize) -> (f64, u64) {
    let insert = std::env::var("DK_BENCH_LOAD").is_ok_and(|v| v == "insert");
    let (mut times, mut rows) = (Vec::new(), 0);
    for _ in 0..runs {
        run_sql(engine, &format!("DROP TABLE IF EXISTS pg.{table}")).await;
        let sql = if insert {
            run_sql(
                engine,
                &format!("CREATE TABLE pg.{table} AS SELECT * FROM data.lineitem LIMIT 0"),
            )
            .await;
            format!("INSERT INTO pg.{table} SELECT * FROM data.lineitem")
        } else {
            format!("CREATE TABLE pg.{table} AS SELECT * FROM data.lineitem")
        };
        let start = Instant::now();
        let batches = run_sql(engine, &sql).await;
        times.push(start.elapsed().as_secs_f64());
        rows = first_number(&batches);
    }
    (median(times), rows)
}

async fn collect_runs(engine: &Engine, sql: &str, runs: usize, count_col: bool) -> (f64, u64) {
    let (mut times, mut rows) = (Vec::new(), 0);
    for run in 0..runs {
        let start = Instant::now();
        let df = check(engine.sql(sql).await, sql);
        let batches = check(df.collect().await, sql);
        times.push(start.elapsed().as_secs_f64());
        rows = if count_col {
            first_number(&batches)
        } else {
            batches.iter().map(|b| b.num_rows() as u64).sum()
        };
        if run == 0 && count_col {
            eprintln!(
                "dataknobs result:\n{}",
                check(pretty_format_batches(&batches), "format result")
            );
        }
    }
    (median(times), rows)
}

async fn stream_runs(engine: &Engine, sql: &str, runs: usize) -> (f64, u64) {
    let (mut times, mut rows) = (Vec::new(), 0);
    for _ in 0..runs {
        let start = Instant::now();
        let df = check(engine.sql(sql).await, sql);
        let mut stream = check(df.execute_stream().await, sql);
        let mut n = 0u64;
        while let Some(batch) = stream.next().await {
            n += check(batch, sql).num_rows() as u64;
        }
        times.push(start.elapsed().as_secs_f64());
        rows = n;
    }
    (median(times), rows)
}

#[tokio::main]
async fn main() {
    // `cargo bench -- MODE` runs `pg_lineitem MODE --bench`: the mode is the first free argument.
    let mode = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let Ok(dir) = std::env::var("TPCH_DIR") else {
        eprintln!("TPCH_DIR is not set: run benches/pg_lineitem.sh (skipping)");
        return;
    };
    let Some(mode) = mode.filter(|m| MODES.contains(&m.as_str())) else {
        eprintln!(
            "pg_lineitem: no mode given (one of {}): run benches/pg_lineitem.sh (skipping)",
            MODES.join(", ")
        );
        return;
    };
    let url = std::env::var("DK_BENCH_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
    let table = std::env::var("DK_BENCH_TABLE").unwrap_or_else(|_| "lineitem_bench".to_string());
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(match mode.as_str() {
            "load" => 1,
            "filter" => 5,
            _ => 3,
        });

    let engine = Engine::new();
    check(engine.attach("pg", &url).await, "attach PostgreSQL");
    let pg_table = format!("pg.{table}");
    let (seconds, rows) = match mode.as_str() {
        "load" => {
            let parquet = check(std::fs::canonicalize(format!("{dir}/parquet")), "TPCH_DIR");
            check(
                engine
                    .attach("data", &format!("file://{}", parquet.display()))
                    .await,
                "attach the Parquet directory",
            );
            load(&engine, &table, runs).await
        }
        "scan" => collect_runs(&engine, &SCAN.replace("{T}", &pg_table), runs, true).await,
        "scan_arrow" => stream_runs(&engine, &format!("SELECT * FROM {pg_table}"), runs).await,
        "filter" => collect_runs(&engine, &FILTER.replace("{T}", &pg_table), runs, false).await,
        _ => unreachable!("checked above"),
    };
    println!(
        "{}",
        serde_json::json!({
            "engine": "dataknobs",
            "bench": mode,
            "seconds": (seconds * 10_000.0).round() / 10_000.0,
            "runs": runs,
            "rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
            "rows": rows,
        })
    );
}
