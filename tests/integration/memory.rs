//! The memory backend: the conformance suite, the .slt files and the differential test, plus
//! memory-only tests (persistence, plan serialization).

use std::sync::Arc;

use async_trait::async_trait;
use dataknobs::{Backend, Engine, MemoryBackend};

use crate::conformance::Fixture;

pub struct MemoryFixture;

#[async_trait]
impl Fixture for MemoryFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(MemoryBackend::new())
    }
}

crate::backend_suite! {
    fixture: MemoryFixture,
    name: "memory",
    engine: || async { Engine::new() },
    differential: { rows: 400, share: Some(0.8) },
}

mod persistence {
    use std::sync::Arc;

    use dataknobs::{
        Backend, BlockingDatabase, Engine, Field, FieldType, MemoryBackend, Query, Record, Value,
    };

    fn every_type(i: i64) -> Record {
        let mut r = Record::new().with_id(format!("r{i}"));
        r.set_field(Field::typed("s", format!("s{i} 'q' ü"), FieldType::String).unwrap());
        r.set_field(Field::typed("n", i, FieldType::Integer).unwrap());
        r.set_field(Field::typed("f", i as f64 + 0.25, FieldType::Float).unwrap());
        r.set_field(Field::typed("b", i % 2 == 0, FieldType::Boolean).unwrap());
        r.set_field(
            Field::typed(
                "d",
                chrono::DateTime::from_timestamp_micros(1_700_000_000_000_001 + i).unwrap(),
                FieldType::DateTime,
            )
            .unwrap(),
        );
        r.set_field(
            Field::typed(
                "j",
                serde_json::json!({"k": [i, null, "x"]}),
                FieldType::Json,
            )
            .unwrap(),
        );
        r.set_field(Field::typed("bin", vec![0u8, 255, i as u8], FieldType::Binary).unwrap());
        r.set_field(Field::typed("t", "text", FieldType::Text).unwrap());
        if i == 1 {
            r.set_field(Field::typed("f", Value::Null, FieldType::Float).unwrap());
        }
        r
    }

    #[tokio::test]
    async fn decimals_survive_a_save_and_reload_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.json");
        let values = "(1, 1234567890123456.1234, 0.0001), (2, -9999999999999999.9999, NULL), \
                      (3, NULL, 12345678901234567890.123456789012345678)";
        {
            let backend = std::sync::Arc::new(MemoryBackend::with_file(&path).unwrap());
            let engine = Engine::new();
            engine.attach_backend("m", backend.clone()).unwrap();
            engine
                .execute("CREATE TABLE m.d (id INT, a DECIMAL(20,4), b DECIMAL(38,18))")
                .await
                .unwrap();
            engine
                .execute(&format!("INSERT INTO m.d VALUES {values}"))
                .await
                .unwrap();
            backend.save().unwrap();
        }
        let backend = std::sync::Arc::new(MemoryBackend::with_file(&path).unwrap());
        let engine = Engine::new();
        engine.attach_backend("m", backend).unwrap();
        let b = engine
            .execute("SELECT id, a, b FROM m.d ORDER BY id")
            .await
            .unwrap();
        assert_eq!(
            crate::common::rows(&b),
            vec![
                "| 1  | 1234567890123456.1234  | 0.000100000000000000                    |",
                "| 2  | -9999999999999999.9999 |                                         |",
                "| 3  |                        | 12345678901234567890.123456789012345678 |",
            ]
        );
    }

    #[tokio::test]
    async fn records_survive_a_save_and_reload_with_every_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.json");
        let originals: Vec<Record> = (0..3).map(every_type).collect();
        {
            let backend = MemoryBackend::with_file(&path).unwrap();
            let people = backend.collection("people").unwrap();
            people.batch_create(originals.clone()).await.unwrap();
            backend.save().unwrap();
        }
        let backend = MemoryBackend::with_file(&path).unwrap();
        let people = backend.collection("people").unwrap();
        assert_eq!(people.count(None).await.unwrap(), 3);
        for original in &originals {
            let back = people
                .read(original.id().unwrap())
                .await
                .unwrap()
                .expect("record after reload");
            for f in original.fields() {
                assert_eq!(
                    back.get(&f.name),
                    Some(&f.value),
                    "field {} of {:?}",
                    f.name,
                    original.id()
                );
                assert_eq!(
                    back.field(&f.name).unwrap().field_type,
                    f.field_type,
                    "type of {}",
                    f.name
                );
            }
        }
        // New records after the reload do not collide with loaded ones.
        let id = people.create(Record::new().with("s", "new")).await.unwrap();
        assert_eq!(people.count(None).await.unwrap(), 4);
        assert!(people.read(&id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn sql_tables_with_narrow_types_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("memory://{}", dir.path().join("sql.json").display());
        let expected;
        {
            let engine = Engine::new();
            engine.attach("p", &url).await.unwrap();
            engine
                .execute("CREATE TABLE p.t (k INT PRIMARY KEY, s SMALLINT, d DATE, x DECIMAL(10,2), ts TIMESTAMP, r REAL)")
                .await
                .unwrap();
            engine
                .execute("INSERT INTO p.t VALUES (1, 7, DATE '2024-02-29', 12.34, TIMESTAMP '2024-01-01 10:00:00.123456', 1.5), (2, NULL, NULL, NULL, NULL, NULL)")
                .await
                .unwrap();
            expected = crate::common::rows(
                &engine
                    .execute("SELECT * FROM p.t ORDER BY k")
                    .await
                    .unwrap(),
            );
        }
        let engine = Engine::new();
        engine.attach("p", &url).await.unwrap();
        let batches = engine
            .execute("SELECT * FROM p.t ORDER BY k")
            .await
            .unwrap();
        assert_eq!(crate::common::rows(&batches), expected);
        let schema = batches[0].schema();
        assert_eq!(
            schema.field_with_name("s").unwrap().data_type(),
            &datafusion::arrow::datatypes::DataType::Int16
        );
        assert_eq!(
            schema.field_with_name("x").unwrap().data_type(),
            &datafusion::arrow::datatypes::DataType::Decimal128(10, 2)
        );
        // The key still rejects duplicates after the reload.
        let e = engine
            .execute("INSERT INTO p.t VALUES (1, 1, NULL, NULL, NULL, NULL)")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("duplicate key '1'"), "{e}");
    }

    #[tokio::test]
    async fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, b"{not json").unwrap();
        let e = MemoryBackend::with_file(&path).unwrap_err();
        assert!(e.to_string().contains("bad.json"), "{e}");
        assert!(e.to_string().contains("not a dataknobs memory file"), "{e}");
    }

    #[test]
    fn the_blocking_wrapper_works_without_a_runtime() {
        let backend = MemoryBackend::new();
        let db = BlockingDatabase::new(backend.collection("c").unwrap()).unwrap();
        let id = db.create(Record::new().with("age", 3)).unwrap();
        assert!(db.exists(&id).unwrap());
        assert_eq!(
            db.read(&id).unwrap().unwrap().get("age"),
            Some(&Value::Int(3))
        );
        let found = db
            .search(&Query::new().try_filter("age", ">", 2).unwrap())
            .unwrap();
        assert_eq!(found.len(), 1);
        assert!(db.update(&id, Record::new().with("age", 1)).unwrap());
        assert_eq!(
            db.count(Some(&Query::new().try_filter("age", ">", 2).unwrap()))
                .unwrap(),
            0
        );
        assert_eq!(db.clear().unwrap(), 1);
        let _: Arc<dyn Backend> = Arc::new(backend);
    }
}

/// Readers never see a write half-applied. Every write to a memory collection — one SQL
/// statement, one record-API call or batch — runs as one closure under the collection's write
/// lock and replaces chunks copy-on-write, and a scan takes its chunk list under that lock
/// (`src/store/collection.rs`, `src/backends/memory/mod.rs`); record-API reads run under the
/// read lock. So a scan sees each write whole or not at all. (The scan's flush of the row buffer
/// and its copy of the chunk list must be one locked section: between two, a record updated by
/// the record API — old row deleted, new one in the buffer — would be missing from the scan.)
///
/// Three writers, each on its own group of rows, move value between rows: the sum of `v` over
/// each group is the same before and after every write, and different in any state halfway
/// through one. Readers check those sums all the time: SQL through the engine, and the record
/// API (`search`, `count`). The table holds more than 8192 rows, so a SQL scan runs in several
/// partitions, which must all read one snapshot.
mod snapshots {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use dataknobs::{Database, Engine, Query, Record, Value};

    const GROUP: i64 = 3500;
    const START: i64 = 1000;
    const ROUNDS: u64 = 200;

    /// A small deterministic generator (xorshift), one per writer.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: i64) -> i64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as i64
        }
    }

    /// Per group (0, 1, 2): (rows, sum of v); what every consistent state shows.
    fn expected() -> BTreeMap<i64, (i64, i64)> {
        (0..3).map(|g| (g, (GROUP, GROUP * START))).collect()
    }

    /// Group sums from SQL, plus sum(v * v), which changes with nearly every write (so the
    /// readers can show they saw the table between writes).
    async fn sql_state(engine: &Engine) -> (BTreeMap<i64, (i64, i64)>, i64) {
        let batches = engine
            .execute("SELECT g, count(*), sum(v), sum(v * v) FROM snap GROUP BY g")
            .await
            .expect("scan");
        let mut groups = BTreeMap::new();
        let mut squares = 0;
        for b in &batches {
            let col = |i: usize| {
                b.column(i)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .expect("bigint column")
                    .clone()
            };
            let (g, n, sum, sq) = (col(0), col(1), col(2), col(3));
            for r in 0..b.num_rows() {
                groups.insert(g.value(r), (n.value(r), sum.value(r)));
                squares += sq.value(r);
            }
        }
        (groups, squares)
    }

    /// Group sums from the record API.
    async fn record_state(db: &dyn Database) -> BTreeMap<i64, (i64, i64)> {
        let mut groups = BTreeMap::new();
        for r in db.search(&Query::new()).await.expect("search") {
            let int = |name: &str| match r.get(name) {
                Some(Value::Int(i)) => *i,
                other => panic!("{name}: {other:?}"),
            };
            let e = groups.entry(int("g")).or_insert((0, 0));
            e.0 += 1;
            e.1 += int("v");
        }
        groups
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn scans_see_a_consistent_snapshot_while_writers_run() {
        let engine = Arc::new(Engine::new());
        engine
            .execute("CREATE TABLE snap (id BIGINT PRIMARY KEY, g BIGINT, v BIGINT)")
            .await
            .expect("create");
        engine
            .execute(&format!(
                "INSERT INTO snap SELECT value, (value - 1) / {GROUP}, {START} \
                 FROM generate_series(1, {})",
                3 * GROUP
            ))
            .await
            .expect("insert");
        let db = engine.database("snap").await.expect("record api");
        assert_eq!(sql_state(&engine).await.0, expected());
        assert_eq!(record_state(db.as_ref()).await, expected());

        let done = Arc::new(AtomicBool::new(false));
        // Every loop below yields once a round: the memory backend's futures are always ready,
        // so a task that never yields would keep its worker thread and starve the others.
        let mut writers = Vec::new();
        // Group 0: one UPDATE of all its rows, +d on even ids and -d on odd ones.
        writers.push({
            let engine = engine.clone();
            tokio::spawn(async move {
                for round in 0..ROUNDS as i64 {
                    let d = round % 7 + 1;
                    engine
                        .execute(&format!(
                            "UPDATE snap SET v = CASE WHEN id % 2 = 0 THEN v + {d} ELSE v - {d} END \
                             WHERE g = 0"
                        ))
                        .await
                        .expect("group 0 update");
                    tokio::task::yield_now().await;
                }
            })
        });
        // Group 1: one UPDATE moving d from one row to another.
        writers.push({
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
                for _ in 0..ROUNDS {
                    let a = GROUP + 1 + rng.below(GROUP);
                    let b = GROUP + 1 + (a - GROUP - 1 + 1 + rng.below(GROUP - 1)) % GROUP;
                    let d = 1 + rng.below(50);
                    engine
                        .execute(&format!(
                            "UPDATE snap SET v = CASE WHEN id = {a} THEN v - {d} ELSE v + {d} END \
                             WHERE id IN ({a}, {b})"
                        ))
                        .await
                        .expect("group 1 transfer");
                    tokio::task::yield_now().await;
                }
            })
        });
        // Group 2: one record-API batch_update moving d within 20 pairs of rows (the writer
        // owns these rows, so it knows their values).
        writers.push({
            let db = db.clone();
            tokio::spawn(async move {
                let mut rng = Rng(0x2545_f491_4f6c_dd1d);
                let mut v: Vec<i64> = vec![START; GROUP as usize];
                for _ in 0..ROUNDS {
                    let mut touched = Vec::new();
                    for _ in 0..20 {
                        let a = rng.below(GROUP) as usize;
                        let b = (a + 1 + rng.below(GROUP - 1) as usize) % GROUP as usize;
                        let d = 1 + rng.below(50);
                        v[a] -= d;
                        v[b] += d;
                        touched.extend([a, b]);
                    }
                    touched.sort_unstable();
                    touched.dedup();
                    let updates = touched
                        .iter()
                        .map(|&i| {
                            let id = 2 * GROUP + 1 + i as i64;
                            (
                                id.to_string(),
                                Record::new().with("id", id).with("g", 2i64).with("v", v[i]),
                            )
                        })
                        .collect();
                    let found = db.batch_update(updates).await.expect("group 2 batch");
                    assert!(found.iter().all(|f| *f), "a row of group 2 is missing");
                    tokio::task::yield_now().await;
                }
            })
        });
        let mut readers = Vec::new();
        // SQL scans through the engine.
        readers.push({
            let (engine, done) = (engine.clone(), done.clone());
            tokio::spawn(async move {
                let mut states = HashSet::new();
                let mut scans = 0;
                while !done.load(Ordering::Acquire) {
                    let (groups, squares) = sql_state(&engine).await;
                    assert_eq!(
                        groups,
                        expected(),
                        "SQL scan {scans} saw a write half-applied"
                    );
                    states.insert(squares);
                    scans += 1;
                    tokio::task::yield_now().await;
                }
                (scans, states.len())
            })
        });
        // The record API: every record, and a filtered count.
        readers.push({
            let (db, done) = (db.clone(), done.clone());
            tokio::spawn(async move {
                let mut states = HashSet::new();
                let mut reads = 0;
                let all = Query::new().try_filter("v", ">", i64::MIN).expect("filter");
                while !done.load(Ordering::Acquire) {
                    let groups = record_state(db.as_ref()).await;
                    assert_eq!(
                        groups,
                        expected(),
                        "record-API search {reads} saw a write half-applied"
                    );
                    assert_eq!(db.count(Some(&all)).await.expect("count"), 3 * GROUP as u64);
                    states.insert(format!("{groups:?}"));
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                (reads, states.len())
            })
        });
        for w in writers {
            w.await.expect("writer");
        }
        done.store(true, Ordering::Release);
        let (scans, sql_states) = readers.remove(0).await.expect("SQL reader");
        let (reads, _) = readers.remove(0).await.expect("record-API reader");
        // The readers ran between the writes, not only before or after them.
        assert!(
            scans >= 20 && reads >= 20 && sql_states >= 10,
            "{scans} SQL scans saw {sql_states} states; {reads} record-API reads"
        );
        assert_eq!(sql_state(&engine).await.0, expected());
        eprintln!("{scans} SQL scans saw {sql_states} states; {reads} record-API reads");
    }
}

/// A scan plan crosses a process boundary as plain data: its `ScanSpec` serializes to JSON
/// and back, and the rebuilt scan, executed in a session, returns the same rows.
mod plan_serialization {
    use std::sync::Arc;

    use datafusion::physical_plan::{ExecutionPlan, collect};
    use dataknobs::Engine;
    use dataknobs::table::{DatabaseScanExec, ScanSpec, as_scan};

    use crate::common::sorted_rows;

    fn find_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&DatabaseScanExec> {
        if let Some(s) = as_scan(plan.as_ref()) {
            return Some(s);
        }
        plan.children().into_iter().find_map(find_scan)
    }

    #[tokio::test]
    async fn scan_spec_round_trips_and_runs() {
        let engine = Engine::new();
        engine
            .execute("CREATE TABLE t (id INT, s TEXT)")
            .await
            .unwrap();
        engine
            .execute("INSERT INTO t VALUES (1, 'a'), (2, NULL), (3, 'c'), (4, 'd')")
            .await
            .unwrap();
        let df = engine
            .sql("SELECT id, s FROM t WHERE id > 1 AND s IS NOT NULL")
            .await
            .unwrap();
        let expected = sorted_rows(&df.clone().collect().await.unwrap());
        assert_eq!(expected.len(), 2, "{expected:?}");
        let plan = df.create_physical_plan().await.unwrap();
        let scan = find_scan(&plan).expect("a dataknobs scan in the plan");
        assert!(!scan.query().filters.is_empty(), "filters were pushed");
        let json = serde_json::to_string(&scan.spec()).unwrap();
        let spec: ScanSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(spec, scan.spec());
        let rebuilt: Arc<dyn ExecutionPlan> =
            Arc::new(DatabaseScanExec::from_spec(spec, scan.schema()));
        let task = engine.context().task_ctx();
        let batches = collect(rebuilt, task).await.unwrap();
        assert_eq!(sorted_rows(&batches), expected);
    }

    /// A batch larger than the row buffer becomes chunks directly: all of it or none of it,
    /// the schema grown by its later records, every record readable, searchable and counted
    /// beside records created one at a time before and after it.
    #[tokio::test]
    async fn large_batches_are_all_or_nothing_and_read_back() {
        use dataknobs::{MemoryBackend, Query, Record, Value};
        let backend = MemoryBackend::new();
        let db = backend.collection("big").unwrap();
        db.create(Record::new().with_id("first").with("n", 0i64))
            .await
            .unwrap();
        let batch = |bad: bool| {
            (0..20_000i64)
                .map(|i| {
                    let mut r = Record::new().with_id(format!("r{i}")).with("n", i);
                    if i >= 15_000 {
                        r.set("late", format!("x{i}"));
                    }
                    if bad && i == 19_999 {
                        r = Record::new().with_id("r7").with("n", 7i64);
                    }
                    r
                })
                .collect::<Vec<_>>()
        };
        let e = db.batch_create(batch(true)).await.unwrap_err();
        assert_eq!(e.kind(), dataknobs::ErrorKind::AlreadyExists, "{e}");
        assert_eq!(
            db.count(None).await.unwrap(),
            1,
            "nothing of the failed batch"
        );
        let ids = db.batch_create(batch(false)).await.unwrap();
        assert_eq!(ids.len(), 20_000);
        assert_eq!(ids[12_345], "r12345");
        db.create(
            Record::new()
                .with_id("last")
                .with("n", -1i64)
                .with("late", "y"),
        )
        .await
        .unwrap();
        assert_eq!(db.count(None).await.unwrap(), 20_002);
        let r = db.read("r17000").await.unwrap().unwrap();
        assert_eq!(r.get("n"), Some(&Value::Int(17_000)));
        assert_eq!(r.get("late"), Some(&Value::String("x17000".into())));
        let r = db.read("r3").await.unwrap().unwrap();
        assert_eq!(r.get("late"), Some(&Value::Null));
        let q = Query::new().try_filter("n", ">=", 14_998i64).unwrap();
        let found = db.search(&q).await.unwrap();
        assert_eq!(found.len(), 20_000 - 14_998);
        let late = found
            .iter()
            .filter(|r| r.get("late").is_some_and(|v| !v.is_null()));
        assert_eq!(late.count(), 5_000);
        assert!(db.delete("r19999").await.unwrap());
        assert!(
            db.update("r0", Record::new().with("n", 100i64))
                .await
                .unwrap()
        );
        assert_eq!(
            db.read("r0").await.unwrap().unwrap().get("n"),
            Some(&Value::Int(100))
        );
        assert_eq!(db.count(None).await.unwrap(), 20_001);
    }

    /// A large batch whose records bring no new field is stored column by column: it must
    /// store exactly what creating the same records one at a time stores (ids given by
    /// `with_id` or the key field, or generated; values converted to the column types; an
    /// untyped NULL of an unknown field ignored), and a bad record anywhere refuses all of it
    /// with an error naming the field and the record's row.
    #[tokio::test]
    async fn large_batches_of_known_fields_store_what_single_creates_store() {
        use dataknobs::{ErrorKind, MemoryBackend, Query, Record, Value};
        const N: i64 = 10_000;
        let backend = MemoryBackend::new();
        let by_batch = backend.collection("by_batch").unwrap();
        let by_one = backend.collection("by_one").unwrap();
        let first = || {
            Record::new()
                .with_id("first")
                .with("name", "first")
                .with("age", 1i64)
                .with("city", "Oslo")
                .with("score", 0.5)
        };
        by_batch.create(first()).await.unwrap();
        by_one.create(first()).await.unwrap();
        let record = |i: i64| {
            let mut r = Record::new()
                .with("name", format!("person {i}"))
                .with("age", 18 + i % 63)
                .with("score", i as f64 / 4.0);
            if i % 7 != 0 {
                r.set("city", ["Oslo", "Lima", "Rome"][(i % 3) as usize]);
            }
            match i % 1000 {
                1 => r = r.with_id(format!("given-{i}")),
                2 => r.set("id", format!("keyed-{i}")),
                3 => r.set("age", (20 + i % 5) as f64),
                4 => r.set("age", format!("{}", 30 + i % 5)),
                5 => r.set("ghost", Value::Null),
                _ => {}
            }
            r
        };
        let records = || (0..N).map(record).collect::<Vec<_>>();

        // Refused batches leave nothing behind.
        let mut bad = records();
        bad[9_000].set("age", "old");
        let e = by_batch.batch_create(bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Type, "{e}");
        assert!(
            e.message().contains("'age'") && e.message().contains("9001"),
            "{e}"
        );
        let mut bad = records();
        bad[5] = bad[5].clone().with_id("dup");
        bad[9_500] = bad[9_500].clone().with_id("dup");
        let e = by_batch.batch_create(bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        let mut bad = records();
        bad[77] = bad[77].clone().with_id("first");
        let e = by_batch.batch_create(bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        let mut bad = records();
        bad[78] = bad[78].clone().with_id("one").with("id", "other");
        let e = by_batch.batch_create(bad).await.unwrap_err();
        assert!(e.message().contains("disagrees"), "{e}");
        assert_eq!(by_batch.count(None).await.unwrap(), 1);
        let schema_before = by_batch.schema();

        let ids = by_batch.batch_create(records()).await.unwrap();
        let mut one_ids = Vec::new();
        for r in records() {
            one_ids.push(by_one.create(r).await.unwrap());
        }
        assert_eq!(ids.len(), N as usize);
        assert_eq!(ids[1], "given-1");
        assert_eq!(ids[2], "keyed-2");
        assert_eq!(ids[0].len(), 36, "a generated UUID: {}", ids[0]);
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        assert_eq!(
            by_batch.schema(),
            schema_before,
            "no column for the untyped NULL"
        );
        assert_eq!(by_batch.schema(), by_one.schema());
        assert_eq!(by_batch.count(None).await.unwrap(), N as u64 + 1);

        // Same ids where they were given, same rows everywhere.
        for i in [1usize, 2, 1001, 9002] {
            assert_eq!(ids[i], one_ids[i]);
            assert_eq!(
                by_batch.read(&ids[i]).await.unwrap(),
                by_one.read(&one_ids[i]).await.unwrap()
            );
        }
        let rows = |records: Vec<Record>| {
            let mut rows: Vec<String> = records
                .iter()
                .map(|r| {
                    ["id", "name", "age", "city", "score"]
                        .iter()
                        .map(|f| match (*f, r.get(f)) {
                            // Generated ids differ between the two collections.
                            ("id", Some(Value::String(s))) if s.len() == 36 => "uuid".into(),
                            (_, v) => format!("{v:?}"),
                        })
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect();
            rows.sort();
            rows
        };
        let all = Query::new();
        assert_eq!(
            rows(by_batch.search(&all).await.unwrap()),
            rows(by_one.search(&all).await.unwrap())
        );
        let q = Query::new().try_filter("age", "=", 33i64).unwrap();
        let found = by_batch.search(&q).await.unwrap();
        assert!(found.len() > 150, "{}", found.len());
        assert_eq!(rows(found), rows(by_one.search(&q).await.unwrap()));
        let r = by_batch.read(&ids[4]).await.unwrap().unwrap();
        assert_eq!(r.get("age"), Some(&Value::Int(34)), "'34' became a number");
    }
}
