//! TPC-H Q1 and Q6 over `lineitem` files: dataknobs (the file backend attached once per
//! format) side by side with a bare DataFusion `SessionContext` registering the same files, in
//! one run. Prints one JSON line per (format, variant, query) with the median of the runs
//! (RUNS, default 5; the two sides alternate run by run).
//!
//! Variants: `default` (DataFusion's default settings on both sides) for every format, and for
//! Parquet also `tuned`: filter pushdown into the Parquet decoder with filter reordering
//! (`datafusion.execution.parquet.pushdown_filters` / `reorder_filters` set on the bare
//! DataFusion session before registering; the directory attached with
//! `?pushdown_filters=true&reorder_filters=true` for dataknobs).
//!
//! Usage: `TPCH_DIR=DIR cargo bench --bench tpch_files` with DIR/parquet/lineitem.parquet and
//! DIR/csv/lineitem.csv
//! (benches/tpch_files.sh generates the data, runs this and DuckDB, and prints ratios).

use std::time::Instant;

use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use dataknobs::Engine;

const Q1: &str = "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, \
    sum(l_extendedprice) AS sum_base_price, \
    sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, \
    sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, \
    avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, \
    count(*) AS count_order FROM {T} \
    WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY \
    GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus";
const Q6: &str = "SELECT sum(l_extendedprice * l_discount) AS revenue FROM {T} \
    WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' \
    AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn time_df(ctx: &SessionContext, sql: &str, runs: usize) -> f64 {
    let mut t = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        ctx.sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        t.push(start.elapsed().as_secs_f64());
    }
    median(t)
}

async fn time_dk(engine: &Engine, sql: &str, runs: usize) -> f64 {
    let mut t = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        engine
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        t.push(start.elapsed().as_secs_f64());
    }
    median(t)
}

#[tokio::main]
async fn main() {
    let Ok(dir) = std::env::var("TPCH_DIR") else {
        eprintln!("TPCH_DIR is not set: run benches/tpch_files.sh (skipping)");
        return;
    };
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let engine = Engine::new();
    // (format, file, variant, dataknobs attach name, URL query, DataFusion session config)
    let tuned_config = || {
        SessionConfig::new()
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.reorder_filters", true)
    };
    let cases = [
        (
            "parquet",
            "parquet/lineitem.parquet",
            "default",
            "parquet",
            "",
            SessionConfig::new(),
        ),
        (
            "parquet",
            "parquet/lineitem.parquet",
            "tuned",
            "parquet_tuned",
            "?pushdown_filters=true&reorder_filters=true",
            tuned_config(),
        ),
        (
            "csv",
            "csv/lineitem.csv",
            "default",
            "csv",
            "",
            SessionConfig::new(),
        ),
    ];
    for (format, file, variant, attach_as, url_query, config) in cases {
        let path = format!("{dir}/{file}");
        if !std::path::Path::new(&path).exists() {
            continue;
        }
        // Bare DataFusion: the file registered on a session with the variant's settings
        // (registration copies the session's Parquet options into the table).
        let ctx = SessionContext::new_with_config(config);
        if format == "parquet" {
            ctx.register_parquet("lineitem", &path, ParquetReadOptions::default())
                .await
                .expect("register");
        } else {
            ctx.register_csv("lineitem", &path, CsvReadOptions::new().has_header(true))
                .await
                .expect("register");
        }
        // dataknobs: the directory attached as a file backend (one per format and variant).
        engine
            .attach(attach_as, &format!("file://{dir}/{format}{url_query}"))
            .await
            .expect("attach");
        let dk_table = format!("{attach_as}.lineitem");
        for (name, q) in [("q1", Q1), ("q6", Q6)] {
            let df_sql = q.replace("{T}", "lineitem");
            let dk_sql = q.replace("{T}", &dk_table);
            // Warm the OS cache and each side's metadata caches once.
            time_df(&ctx, &df_sql, 1).await;
            time_dk(&engine, &dk_sql, 1).await;
            // Alternating runs, so that a slow phase of the machine hits both sides alike.
            let (mut df_runs, mut dk_runs) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                df_runs.push(time_df(&ctx, &df_sql, 1).await);
                dk_runs.push(time_dk(&engine, &dk_sql, 1).await);
            }
            let (df, dk) = (median(df_runs), median(dk_runs));
            println!(
                "{{\"format\":\"{format}\",\"variant\":\"{variant}\",\"query\":\"{name}\",\"datafusion_s\":{df:.4},\"dataknobs_s\":{dk:.4},\"ratio\":{:.3}}}",
                dk / df
            );
        }
    }
}
