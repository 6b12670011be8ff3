//! The Redis backend side by side with Redis's own tools, in one run (issue 15's figures):
//!
//! * **scan**: `SELECT *` of a hash of RECORDS records through SQL (records/s), against the
//!   rate `redis-benchmark -P 16 -t get` reaches on the same server (ops/s), and a plain
//!   redis-rs `HSCAN … COUNT 4096` loop that only collects the replies;
//! * **lookup**: `WHERE key IN (1000 keys)`: its time, and how many `HMGET` commands the
//!   server counted for it (`INFO commandstats`: must be 1), against 1000 `HGET`s in turn;
//! * **insert**: `INSERT INTO cache.t SELECT …` of RECORDS rows from a memory table, against a
//!   plain redis-rs loop of pipelined `HSET`s of the same JSON values with the same batch
//!   size (BATCH, dataknobs' `write_batch`).
//!
//! Each measurement is the best of RUNS. Environment: DK_BENCH_REDIS_URL
//! (redis://127.0.0.1:6390), DK_BENCH_REDIS_DB (15: flushed at the start), RECORDS (100000),
//! BATCH (1000), RUNS (3). Prints one JSON object per figure. Run by benches/redis.sh.

use std::time::{Duration, Instant};

use dataknobs::Engine;
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn best<F: FnMut() -> Duration>(runs: usize, mut f: F) -> Duration {
    (0..runs.max(1)).map(|_| f()).min().unwrap_or_default()
}

fn report(name: &str, fields: &[(&str, String)]) {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    println!("{{\"bench\": \"{name}\", {}}}", body.join(", "));
}

/// `redis-benchmark -P 16 -t get` on the server: requests per second.
fn redis_benchmark(host: &str, port: u16) -> f64 {
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-P",
            "16",
            "-n",
            "2000000",
            "-t",
            "get",
            "-q",
            "--csv",
        ])
        .output()
        .expect("redis-benchmark (Debian package redis-tools) must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("\"GET\""))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim_matches('"').parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no GET rate in redis-benchmark's output: {text}"))
}

async fn hmget_calls(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .expect("INFO");
    info.lines()
        .find(|l| l.starts_with("cmdstat_hmget:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let base = env_or("DK_BENCH_REDIS_URL", "redis://127.0.0.1:6390");
    let db = env_or("DK_BENCH_REDIS_DB", "15");
    let records: usize = env_or("RECORDS", "100000").parse().expect("RECORDS");
    let batch: usize = env_or("BATCH", "1000").parse().expect("BATCH");
    let runs: usize = env_or("RUNS", "3").parse().expect("RUNS");
    let parsed = url::Url::parse(&base).expect("DK_BENCH_REDIS_URL");
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
    let port = parsed.port().unwrap_or(6379);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let bench_rate = redis_benchmark(&host, port);
    report(
        "redis-benchmark",
        &[
            ("command", "\"GET\"".into()),
            ("pipeline", "16".into()),
            ("ops_per_s", format!("{bench_rate:.0}")),
        ],
    );

    rt.block_on(async {
        let url = format!("{base}/{db}");
        let mut c = redis::Client::open(url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let _: () = redis::cmd("FLUSHDB")
            .query_async(&mut c)
            .await
            .expect("FLUSHDB");

        let engine = Engine::new();
        engine.attach("mem", "memory://").await.expect("memory");
        engine
            .attach("cache", &format!("{url}?write_batch={batch}"))
            .await
            .expect("attach redis");
        engine
            .execute(&format!(
                "CREATE TABLE mem.src AS SELECT 'k' || CAST(v AS VARCHAR) AS key, v AS n, \
                 'name ' || CAST(v % 977 AS VARCHAR) AS s, CAST(v AS DOUBLE) * 0.5 AS x \
                 FROM (SELECT unnest(range(0, {records})) AS v)"
            ))
            .await
            .expect("source table");
        // The same JSON values dataknobs writes, for the plain loop.
        let values: Vec<(String, String)> = (0..records)
            .map(|v| {
                (
                    format!("k{v}"),
                    format!(
                        "{{\"key\":\"k{v}\",\"n\":{v},\"s\":\"name {}\",\"x\":{}}}",
                        v % 977,
                        v as f64 * 0.5
                    ),
                )
            })
            .collect();

        // insert: plain pipelined HSET loop vs INSERT … SELECT.
        let mut plain = Duration::MAX;
        let mut ours = Duration::MAX;
        for _ in 0..runs.max(1) {
            let _: () = redis::cmd("DEL")
                .arg("plain")
                .query_async(&mut c)
                .await
                .expect("DEL");
            let t = Instant::now();
            for chunk in values.chunks(batch) {
                let mut pipe = redis::pipe();
                for (k, v) in chunk {
                    pipe.cmd("HSET").arg("plain").arg(k).arg(v).ignore();
                }
                let _: () = pipe.query_async(&mut c).await.expect("HSET loop");
            }
            plain = plain.min(t.elapsed());

            engine
                .execute("DROP TABLE IF EXISTS cache.t")
                .await
                .expect("drop");
            engine
                .execute("CREATE TABLE cache.t (\"key\" VARCHAR, n BIGINT, s VARCHAR, x DOUBLE)")
                .await
                .expect("create");
            let t = Instant::now();
            engine
                .execute("INSERT INTO cache.t SELECT * FROM mem.src")
                .await
                .expect("insert");
            ours = ours.min(t.elapsed());
        }
        let n: u64 = redis::cmd("HLEN")
            .arg("t")
            .query_async(&mut c)
            .await
            .expect("HLEN");
        assert_eq!(n as usize, records, "rows inserted");
        report(
            "insert",
            &[
                ("records", records.to_string()),
                ("batch", batch.to_string()),
                ("dataknobs_s", format!("{:.3}", ours.as_secs_f64())),
                (
                    "redis_rs_hset_loop_s",
                    format!("{:.3}", plain.as_secs_f64()),
                ),
                (
                    "dataknobs_records_per_s",
                    format!("{:.0}", records as f64 / ours.as_secs_f64()),
                ),
                (
                    "ratio",
                    format!("{:.2}", plain.as_secs_f64() / ours.as_secs_f64()),
                ),
            ],
        );

        // scan: SELECT * through SQL vs a plain HSCAN loop.
        let mut rows = 0usize;
        let ours = {
            let mut best_t = Duration::MAX;
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                let batches = engine.execute("SELECT * FROM cache.t").await.expect("scan");
                best_t = best_t.min(t.elapsed());
                rows = batches.iter().map(|b| b.num_rows()).sum();
            }
            best_t
        };
        assert_eq!(rows, records, "rows scanned");
        let mut conn = c.clone();
        let plain = {
            let mut best_t = Duration::MAX;
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                let mut cursor: u64 = 0;
                let mut seen = 0usize;
                loop {
                    let (next, items): (u64, Vec<Vec<u8>>) = redis::cmd("HSCAN")
                        .arg("t")
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(4096)
                        .query_async(&mut conn)
                        .await
                        .expect("HSCAN");
                    seen += items.len() / 2;
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
                assert!(seen >= records);
                best_t = best_t.min(t.elapsed());
            }
            best_t
        };
        let rate = records as f64 / ours.as_secs_f64();
        report(
            "scan",
            &[
                ("records", records.to_string()),
                ("dataknobs_s", format!("{:.3}", ours.as_secs_f64())),
                ("dataknobs_records_per_s", format!("{rate:.0}")),
                (
                    "redis_rs_hscan_loop_s",
                    format!("{:.3}", plain.as_secs_f64()),
                ),
                ("redis_benchmark_ops_per_s", format!("{bench_rate:.0}")),
                (
                    "ratio_to_redis_benchmark",
                    format!("{:.2}", rate / bench_rate),
                ),
                (
                    "ratio_to_hscan_loop",
                    format!("{:.2}", plain.as_secs_f64() / ours.as_secs_f64()),
                ),
            ],
        );

        // lookup: 1000 keys through SQL (one HMGET) vs 1000 HGETs in turn.
        let keys: Vec<String> = (0..1000)
            .map(|i| format!("k{}", i * (records / 1000).max(1)))
            .collect();
        let list: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
        let q = format!(
            "SELECT count(*) FROM cache.t WHERE key IN ({})",
            list.join(",")
        );
        let before = hmget_calls(&mut c).await;
        let once = engine.execute(&q).await.expect("lookup");
        let calls = hmget_calls(&mut c).await - before;
        assert_eq!(once.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        let ours = best(runs, || {
            let t = Instant::now();
            rt_block(&engine, &q);
            t.elapsed()
        });
        let mut plain = Duration::MAX;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            for k in &keys {
                let _: Option<Vec<u8>> = redis::cmd("HGET")
                    .arg("t")
                    .arg(k)
                    .query_async(&mut conn)
                    .await
                    .expect("HGET");
            }
            plain = plain.min(t.elapsed());
        }
        report(
            "lookup",
            &[
                ("keys", "1000".into()),
                ("hmget_commands", calls.to_string()),
                (
                    "dataknobs_ms",
                    format!("{:.2}", ours.as_secs_f64() * 1000.0),
                ),
                (
                    "sequential_hget_ms",
                    format!("{:.2}", plain.as_secs_f64() * 1000.0),
                ),
            ],
        );
        let _: () = redis::cmd("FLUSHDB")
            .query_async(&mut c)
            .await
            .expect("FLUSHDB");
    });
}

/// Runs a query to completion from inside the runtime (the lookup timing closure is sync).
fn rt_block(engine: &Engine, q: &str) {
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(engine.execute(q))
            .expect("query");
    });
}
