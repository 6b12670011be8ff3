//! The HDFS backend on the MiniDFSCluster of scripts/hdfs.sh: the dataknobs side of
//! benches/hdfs.sh, which also runs the Python seed's method (benches/hdfs_seed.py) and prints
//! the ratios (issue 16's figures).
//!
//! One mode per process:
//! - `parquet`: `SELECT * FROM lake.dk_bench_parquet` through SQL (`engine.attach("lake",
//!   "hdfs://HOST:PORT/warehouse")`), every batch consumed, against a plain `hdfs-native` loop
//!   that reads the same files whole (`client.read(path)` → `reader.read(file_length)`), as many
//!   files at once as the scan has partitions, and against the same query in a bare
//!   DataFusion session over the same object store (`hdfs-native-object-store`; where the
//!   time goes). One warm-up of each, then RUNS rounds that rotate which side goes first;
//!   medians. The dataset (PARQUET_FILES files,
//!   PARQUET_ROWS rows in all, uncompressed, no dictionaries, row groups of PARQUET_ROW_GROUP
//!   rows) is written once under `/warehouse/dk_bench_parquet/` by this mode and reused while
//!   it is there with the expected files and ≥ 200 MB.
//! - `kv`: RECORDS records `{id, name, age, city}` through `dataknobs::kv::HdfsKeyValueStore`
//!   (single connection; one `insert_many`, then one `get_many` of all keys, each checked),
//!   into a fresh schema per run under `/volnux/dk_bench_<stamp>` (removed at the end); RUNS
//!   runs, medians. FANOUT=1,8 also times 8 `insert_many` / `get_many` calls of 250 records
//!   at once (one line per fan-out). Then a probe of the server: CLOSE_PROBE tiny files
//!   written one after another with `hdfs-native`, counting the closes that waited (≥ 0.3 s:
//!   the client asked again after the namenode had not yet heard from the datanode about the
//!   last block).
//!
//! Each prints JSON lines `{"engine":…,"bench":…,"seconds":median,…}` (the `parquet` mode one
//! per side, with `mb_per_s`, CPU seconds and, for the scan, the planning time; `kv` one for
//! `insert` and one for `get` per fan-out, with `records_per_s`). Usage: `cargo bench --bench
//! hdfs_bench -- MODE`. Environment: `DK_BENCH_HDFS_URL` (`hdfs://127.0.0.1:9000`), RUNS (5),
//! RECORDS (2000), FANOUT (1), CLOSE_PROBE (40; 0 skips it), PARQUET_FILES (4), PARQUET_ROWS
//! (2560000), PARQUET_ROW_GROUP (131072), SCAN_PARTITIONS (sets the session's
//! `target_partitions` first), PLAIN_PARALLEL (the plain loop's files at once; default the
//! scan's partitions), SIDES (the scan's sides to time, e.g. `hdfs-native` alone under
//! `perf`), SHOW_PLAN (prints the scan's plan). Without a mode it prints why and
//! exits 0 (so `cargo test --all-targets`, which runs harness = false benches, needs no
//! server).

/// The `dataknobs` binary's allocator (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use dataknobs::Engine;
use dataknobs::kv::{
    ConnectionMode, ConnectorConfig, HdfsKeyValueStore, KeyValueStore, PoolSettings,
};
use futures::StreamExt;
use hdfs_native::{Client, WriteOptions};

/// Keep identical to benches/hdfs_seed.py.
const CITIES: [&str; 8] = [
    "Paris", "Oslo", "Lima", "Quito", "Rome", "Kyiv", "Baku", "Doha",
];

const DATASET: &str = "/warehouse/dk_bench_parquet";
const MIN_BYTES: u64 = 200_000_000;

fn check<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("hdfs_bench: {what}: {e}");
        std::process::exit(1)
    })
}

/// The median (0 for no values).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_usize(name: &str, default: usize) -> usize {
    check(env(name, &default.to_string()).parse(), name)
}

/// `[min, max]` of the runs, for the JSON lines.
fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("[{lo:.4},{hi:.4}]")
}

/// splitmix64: the dataset's pseudo-random numbers (no seed to keep, the same bytes each time).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn dataset_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("k", DataType::Int32, false),
        Field::new("x", DataType::Float64, false),
        Field::new("y", DataType::Float64, false),
        Field::new("s", DataType::Utf8, false),
        Field::new("t", DataType::Utf8, false),
    ]))
}

/// Rows `start..end`: ints, doubles, a 32-hex-digit string and a ~45-byte sentence, all
/// distinct (nothing for Parquet to squeeze).
fn dataset_batch(schema: &Arc<Schema>, start: u64, end: u64) -> RecordBatch {
    let ids: Vec<i64> = (start..end).map(|i| i as i64).collect();
    let ks: Vec<i32> = (start..end).map(|i| (i % 1000) as i32).collect();
    let xs: Vec<f64> = (start..end)
        .map(|i| (mix(i) >> 11) as f64 / (1u64 << 53) as f64)
        .collect();
    let ys: Vec<f64> = (start..end)
        .map(|i| (mix(i ^ 0x5555) >> 11) as f64 / (1u64 << 53) as f64 * 1e6)
        .collect();
    let ss: Vec<String> = (start..end)
        .map(|i| {
            format!(
                "{:016x}{:016x}",
                mix(i.wrapping_mul(3)),
                mix(i.wrapping_mul(7))
            )
        })
        .collect();
    let ts: Vec<String> = (start..end)
        .zip(&ss)
        .map(|(i, s)| format!("row {i} of the hdfs benchmark {}", &s[..12]))
        .collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Int32Array::from(ks)),
        Arc::new(Float64Array::from(xs)),
        Arc::new(Float64Array::from(ys)),
        Arc::new(StringArray::from(ss)),
        Arc::new(StringArray::from(ts)),
    ];
    check(RecordBatch::try_new(schema.clone(), cols), "batch")
}

/// The dataset's files (path, length), sorted, or None unless it is there as expected.
async fn dataset_files(c: &Client, files: usize) -> Option<Vec<(String, u64)>> {
    let listed = c.list_status(DATASET, false).await.ok()?;
    let mut parts: Vec<(String, u64)> = listed
        .into_iter()
        .filter(|s| !s.isdir && s.path.ends_with(".parquet"))
        .map(|s| {
            let name = s.path.rsplit('/').next().unwrap_or(&s.path).to_string();
            (format!("{DATASET}/{name}"), s.length as u64)
        })
        .collect();
    parts.sort();
    let total: u64 = parts.iter().map(|p| p.1).sum();
    (parts.len() == files && total >= MIN_BYTES).then_some(parts)
}

/// Writes the dataset into a hidden directory beside it, then renames that into place.
async fn write_dataset(c: &Client, files: usize, rows: u64, row_group: usize) {
    let tmp = "/warehouse/.dk_bench_parquet.tmp";
    let _ = c.delete(tmp, true).await;
    let _ = c.delete(DATASET, true).await;
    let schema = dataset_schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let per_file = rows.div_ceil(files as u64);
    for f in 0..files as u64 {
        let (start, end) = (f * per_file, ((f + 1) * per_file).min(rows));
        let mut w = check(
            ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props.clone())),
            "parquet writer",
        );
        let mut at = start;
        while at < end {
            let next = (at + 65_536).min(end);
            check(w.write(&dataset_batch(&schema, at, next)), "parquet write");
            at = next;
        }
        let body = check(w.into_inner(), "parquet finish");
        let path = format!("{tmp}/part-{f:03}.parquet");
        eprintln!("== writing {path} ({} bytes)", body.len());
        let mut out = check(
            c.create(&path, WriteOptions::default().create_parent(true))
                .await,
            "create",
        );
        check(out.write(Bytes::from(body)).await, "write");
        check(out.close().await, "close");
    }
    check(c.rename(tmp, DATASET, false).await, "rename into place");
}

/// Runs `sql`, consuming every batch; returns the row count and the seconds spent before
/// the first batch was asked for (planning: the table's lookup, the physical plan).
async fn stream_rows(ctx: &SessionContext, sql: &str) -> (usize, f64) {
    let t = Instant::now();
    let df = check(ctx.sql(sql).await, sql);
    let mut s = check(df.execute_stream().await, sql);
    let planned = t.elapsed().as_secs_f64();
    let mut rows = 0;
    while let Some(b) = s.next().await {
        rows += check(b, sql).num_rows();
    }
    (rows, planned)
}

/// This process's CPU time so far (user + system), from /proc/self/stat (clock ticks of
/// 10 ms); 0 where there is no /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Reads every file whole, `parallel` files at once; returns the bytes read.
async fn read_files(c: &Client, files: &[(String, u64)], parallel: usize) -> u64 {
    let sizes: Vec<u64> = futures::stream::iter(files.iter().map(|(path, _)| async move {
        let mut r = check(c.read(path).await, "open");
        let len = r.file_length();
        let body = check(r.read(len).await, "read");
        body.len() as u64
    }))
    .buffer_unordered(parallel)
    .collect()
    .await;
    sizes.iter().sum()
}

async fn parquet(url: &str, c: &Client, runs: usize) {
    let files = env_usize("PARQUET_FILES", 4);
    let rows = env_usize("PARQUET_ROWS", 2_560_000) as u64;
    let row_group = env_usize("PARQUET_ROW_GROUP", 131_072);
    let parts = match dataset_files(c, files).await {
        Some(p) => p,
        None => {
            write_dataset(c, files, rows, row_group).await;
            check(
                dataset_files(c, files).await.ok_or("missing after writing"),
                "dataset",
            )
        }
    };
    let bytes: u64 = parts.iter().map(|p| p.1).sum();
    eprintln!(
        "== {DATASET}: {} files, {bytes} bytes ({:.1} MB)",
        parts.len(),
        bytes as f64 / 1e6
    );

    let engine = Engine::new();
    check(
        engine
            .attach("lake", &format!("{}/warehouse", url.trim_end_matches('/')))
            .await,
        "attach",
    );
    if let Ok(p) = std::env::var("SCAN_PARTITIONS") {
        let set = format!("SET datafusion.execution.target_partitions = {p}");
        check(engine.execute(&set).await, &set);
    }
    let sql = "SELECT * FROM lake.dk_bench_parquet";
    let plan = check(
        check(engine.context().sql(sql).await, sql)
            .create_physical_plan()
            .await,
        "plan",
    );
    let partitions = plan.properties().partitioning.partition_count();
    let target = engine
        .context()
        .state()
        .config()
        .options()
        .execution
        .target_partitions;
    if std::env::var("SHOW_PLAN").is_ok() {
        eprintln!(
            "{}",
            datafusion::physical_plan::displayable(plan.as_ref()).indent(true)
        );
    }
    // The plain loop's files in flight: the scan's partitions unless PLAIN_PARALLEL says.
    let parallel = env_usize("PLAIN_PARALLEL", partitions).max(1);
    eprintln!(
        "== the scan has {partitions} partitions (target_partitions {target}); the plain loop \
         reads {parallel} files at once"
    );

    // The same scan in a bare DataFusion session over the same object store
    // (hdfs-native-object-store), for where the time goes: DataFusion's own reading of the
    // files, without dataknobs' catalog and table around it.
    let bare = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(target));
    let root = check(url::Url::parse(url), "url");
    let store = hdfs_native_object_store::HdfsObjectStore::new(c.clone());
    bare.register_object_store(&root, Arc::new(store));
    check(
        bare.register_parquet(
            "t",
            format!("{}{DATASET}/", url.trim_end_matches('/')),
            ParquetReadOptions::default(),
        )
        .await,
        "register the bare table",
    );
    let bare_sql = "SELECT * FROM t";
    let bare_partitions = check(
        check(bare.sql(bare_sql).await, bare_sql)
            .create_physical_plan()
            .await,
        "plan",
    )
    .properties()
    .partitioning
    .partition_count();

    // Warm-up (connections, metadata), untimed.
    let (rows_seen, _) = stream_rows(engine.context(), sql).await;
    assert_eq!(stream_rows(&bare, bare_sql).await.0, rows_seen);
    assert_eq!(read_files(c, &parts, parallel).await, bytes);

    // Each round runs the three sides, starting with a different one each time.
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut cpus: [Vec<f64>; 3] = Default::default();
    let mut planning = Vec::with_capacity(runs);
    // SIDES (e.g. "hdfs-native" under perf): the sides to time, default all three.
    let sides = env("SIDES", "dataknobs,hdfs-native,datafusion");
    let names = ["dataknobs", "hdfs-native", "datafusion"];
    for run in 0..runs {
        for i in 0..3 {
            let side = (run + i) % 3;
            if !sides.split(',').any(|s| s.trim() == names[side]) {
                continue;
            }
            let (t, cpu) = (Instant::now(), cpu_seconds());
            match side {
                0 => {
                    let (rows, planned) = stream_rows(engine.context(), sql).await;
                    assert_eq!(rows, rows_seen);
                    planning.push(planned);
                }
                1 => assert_eq!(read_files(c, &parts, parallel).await, bytes),
                _ => assert_eq!(stream_rows(&bare, bare_sql).await.0, rows_seen),
            }
            times[side].push(t.elapsed().as_secs_f64());
            cpus[side].push(cpu_seconds() - cpu);
        }
    }
    let [ours, plain, bare_df] = &times;
    let [ours_cpu, plain_cpu, bare_cpu] = &cpus;
    // Each round's plain time over its scan time: the two ran back to back, so a slower
    // stretch of the shared machine weighs on both.
    let paired = median(plain.iter().zip(ours).map(|(p, o)| p / o).collect());
    for (engine_name, times, cpu, extra) in [
        (
            "dataknobs",
            ours,
            ours_cpu,
            format!(
                ",\"rows\":{rows_seen},\"partitions\":{partitions},\"target_partitions\":{target},\"planning_s\":{:.4},\"paired_ratio\":{paired:.3}",
                median(planning.clone())
            ),
        ),
        (
            "hdfs-native",
            plain,
            plain_cpu,
            format!(",\"files_at_once\":{parallel}"),
        ),
        (
            "datafusion",
            bare_df,
            bare_cpu,
            format!(",\"rows\":{rows_seen},\"partitions\":{bare_partitions}"),
        ),
    ] {
        if times.is_empty() {
            continue;
        }
        let seconds = median(times.clone());
        println!(
            "{{\"engine\":\"{engine_name}\",\"bench\":\"scan\",\"seconds\":{seconds:.4},\"runs\":{runs},\"spread\":{},\"cpu_s\":{:.2},\"bytes\":{bytes},\"files\":{},\"mb_per_s\":{:.1}{extra}}}",
            spread(times),
            median(cpu.clone()),
            parts.len(),
            bytes as f64 / seconds / 1e6
        );
    }
}

/// The record the seed's bench writes (benches/hdfs_seed.py), as compact JSON.
fn record(i: usize) -> (String, Bytes) {
    let key = format!("r{i:05}");
    let v = serde_json::json!({
        "id": key,
        "name": format!("person {i}"),
        "age": (i % 90) as i64,
        "city": CITIES[i % CITIES.len()],
    });
    (key, Bytes::from(check(serde_json::to_vec(&v), "json")))
}

async fn kv(host: &str, port: u16, c: &Client, runs: usize) {
    let n = env_usize("RECORDS", 2000);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let base = format!("/volnux/dk_bench_{stamp}");
    let store = check(
        HdfsKeyValueStore::connect(
            ConnectorConfig::new(host, port),
            ConnectionMode::Single,
            PoolSettings::default(),
            &base,
        )
        .await,
        "connect",
    );
    let entries: Vec<(String, Bytes)> = (0..n).map(record).collect();
    let keys: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
    // Warm-up, untimed: one record (as the seed's bench does).
    check(
        store.insert_many("warmup", &entries[..1]).await,
        "warm-up insert",
    );
    check(store.get_many("warmup", &keys[..1]).await, "warm-up get");

    // FANOUT: how many insert_many / get_many calls share the records at once (each keeps
    // up to the store's WRITERS / WORKERS requests in flight, all of them together at most
    // WRITERS record transfers); 1 is the plain batch call.
    let fanouts: Vec<usize> = env("FANOUT", "1")
        .split(',')
        .map(|f| check(f.trim().parse::<usize>(), "FANOUT").max(1))
        .collect();
    for fanout in fanouts {
        let chunk = n.div_ceil(fanout).max(1);
        let (mut inserts, mut gets) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
        for run in 0..runs {
            let schema = format!("f{fanout}_s{run}");
            let t = Instant::now();
            let done = futures::future::join_all(
                entries.chunks(chunk).map(|c| store.insert_many(&schema, c)),
            )
            .await;
            inserts.push(t.elapsed().as_secs_f64());
            for r in done {
                check(r, "insert_many");
            }
            let t = Instant::now();
            let got =
                futures::future::join_all(keys.chunks(chunk).map(|c| store.get_many(&schema, c)))
                    .await;
            gets.push(t.elapsed().as_secs_f64());
            let got: Vec<Option<Bytes>> =
                got.into_iter().flat_map(|r| check(r, "get_many")).collect();
            assert_eq!(got.len(), n);
            for ((k, v), g) in entries.iter().zip(&got) {
                if g.as_ref() != Some(v) {
                    eprintln!("hdfs_bench: get_many gave {g:?} for {k}");
                    std::process::exit(1);
                }
            }
        }
        for (bench, times) in [("insert", &inserts), ("get", &gets)] {
            let seconds = median(times.clone());
            let in_flight = if bench == "insert" {
                dataknobs::kv::hdfs::WRITERS
            } else {
                dataknobs::kv::hdfs::WORKERS
            };
            let method = if fanout == 1 {
                format!("one {bench}_many call ({in_flight} requests in flight), one connection")
            } else {
                format!(
                    "{fanout} {bench}_many calls of {chunk} at once ({in_flight} requests in \
                     flight each, {} in all at most), one connection",
                    dataknobs::kv::hdfs::WRITERS
                )
            };
            println!(
                "{{\"engine\":\"dataknobs\",\"bench\":\"{bench}\",\"fanout\":{fanout},\"seconds\":{seconds:.4},\"runs\":{runs},\"spread\":{},\"records\":{n},\"method\":\"{method}\",\"records_per_s\":{:.1}}}",
                spread(times),
                n as f64 / seconds
            );
        }
    }
    check(c.delete(&base, true).await, "remove the bench directory");

    // The server: how often a close waits for the datanode's block report.
    let probes = env_usize("CLOSE_PROBE", 40);
    if probes > 0 {
        let dir = format!("/volnux/dk_bench_probe_{stamp}");
        let mut closes = Vec::with_capacity(probes);
        for i in 0..probes {
            let path = format!("{dir}/f{i}");
            let mut w = check(
                c.create(&path, WriteOptions::default().create_parent(true))
                    .await,
                "probe create",
            );
            check(w.write(entries[i % n].1.clone()).await, "probe write");
            let t = Instant::now();
            check(w.close().await, "probe close");
            closes.push(t.elapsed().as_secs_f64());
        }
        let _ = c.delete(&dir, true).await;
        let waited = closes.iter().filter(|s| **s >= 0.3).count();
        println!(
            "{{\"engine\":\"hdfs-native\",\"bench\":\"close_probe\",\"files\":{probes},\"waited\":{waited},\"median_close_s\":{:.4},\"max_close_s\":{:.4}}}",
            median(closes.clone()),
            closes.iter().copied().fold(0.0, f64::max)
        );
    }
}

#[tokio::main]
async fn main() {
    let Some(mode) = std::env::args()
        .skip(1)
        .find(|a| ["parquet", "kv"].contains(&a.as_str()))
    else {
        eprintln!("hdfs_bench: give a mode (parquet, kv); run benches/hdfs.sh for the comparison");
        return;
    };
    let url = env("DK_BENCH_HDFS_URL", "hdfs://127.0.0.1:9000");
    let parsed = check(url::Url::parse(&url), "DK_BENCH_HDFS_URL");
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
    let port = parsed.port().unwrap_or(9000);
    let runs = env_usize("RUNS", 5).max(1);
    let client = check(
        dataknobs::kv::hdfs::client_builder()
            .with_url(format!("hdfs://{host}:{port}"))
            .build(),
        "hdfs client",
    );
    match mode.as_str() {
        "parquet" => parquet(&format!("hdfs://{host}:{port}"), &client, runs).await,
        "kv" => kv(&host, port, &client, runs).await,
        _ => unreachable!(),
    }
}
