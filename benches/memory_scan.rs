//! Filter + aggregate over 1M rows: dataknobs' memory backend through SQL, side by side with
//! the same query over DataFusion's `MemTable` holding the same batches (same partition count).
//! `scripts/bench-report.sh` prints the ratio from criterion's estimates.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::arrow::array::{Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use dataknobs::Engine;

const ROWS: usize = 1_000_000;
const BATCH: usize = 8192;
const QUERY: &str = "SELECT category, round(sum(amount), 2) AS total, count(*) AS n FROM t \
                     WHERE qty > 50 AND amount < 500.0 GROUP BY category ORDER BY category";

fn batches() -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("category", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("qty", DataType::Int32, true),
    ]));
    let cats = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    ];
    let mut out = Vec::new();
    let mut x: u64 = 42;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for start in (0..ROWS).step_by(BATCH) {
        let n = BATCH.min(ROWS - start);
        let ids: Int64Array = (start..start + n).map(|i| i as i64).collect();
        let cat: StringArray = (0..n).map(|_| Some(cats[(next() % 10) as usize])).collect();
        let amount: Float64Array = (0..n)
            .map(|_| Some((next() % 100_000) as f64 / 100.0))
            .collect();
        let qty: Int32Array = (0..n).map(|_| Some((next() % 100) as i32)).collect();
        out.push(
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(ids),
                    Arc::new(cat),
                    Arc::new(amount),
                    Arc::new(qty),
                ],
            )
            .expect("batch"),
        );
    }
    (schema, out)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (schema, data) = batches();

    // Plain DataFusion: MemTable split into target_partitions partitions.
    let ctx = SessionContext::new();
    let parts = ctx.state().config().target_partitions();
    let mut partitions = vec![Vec::new(); parts];
    for (i, b) in data.iter().enumerate() {
        partitions[i % parts].push(b.clone());
    }
    ctx.register_table(
        "t",
        Arc::new(MemTable::try_new(schema.clone(), partitions).expect("memtable")),
    )
    .expect("register");

    // dataknobs: the same rows inserted into the memory backend through SQL.
    let engine = Engine::new();
    rt.block_on(async {
        engine
            .context()
            .register_table(
                "src",
                Arc::new(MemTable::try_new(schema.clone(), vec![data.clone()]).expect("memtable")),
            )
            .expect("register src");
        engine
            .execute(
                "CREATE TABLE t (id BIGINT PRIMARY KEY, category TEXT, amount DOUBLE, qty INT)",
            )
            .await
            .expect("create");
        engine
            .execute("INSERT INTO t SELECT * FROM src")
            .await
            .expect("insert");
        // Same answer from both before timing anything.
        let a = engine.execute(QUERY).await.expect("dataknobs query");
        let b = ctx
            .sql(QUERY)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("datafusion query");
        assert_eq!(
            datafusion::arrow::util::pretty::pretty_format_batches(&a)
                .expect("fmt")
                .to_string(),
            datafusion::arrow::util::pretty::pretty_format_batches(&b)
                .expect("fmt")
                .to_string()
        );
    });

    let mut group = c.benchmark_group("filter_aggregate_1m");
    group.sample_size(20);
    group.bench_function("datafusion_memtable", |b| {
        b.to_async(&rt).iter(|| async {
            ctx.sql(QUERY)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run")
        })
    });
    group.bench_function("dataknobs_memory", |b| {
        b.to_async(&rt).iter(|| async {
            engine
                .sql(QUERY)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
