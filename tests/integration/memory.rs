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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scans_see_a_consistent_snapshot_while_writers_run() {
        let backend = Arc::new(MemoryBackend::new());
        let db = backend.collection("snap").unwrap();
        db.batch_create(
            (0..1000)
                .map(|i| Record::new().with("v", i as i64))
                .collect(),
        )
        .await
        .unwrap();
        let writer = {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    db.create(Record::new().with("v", 10_000 + i as i64))
                        .await
                        .unwrap();
                }
            })
        };
        for _ in 0..20 {
            let n = db
                .count(Some(&Query::new().try_filter("v", ">=", 0).unwrap()))
                .await
                .unwrap();
            assert!((1000..=1200).contains(&n), "count {n}");
        }
        writer.await.unwrap();
        assert_eq!(db.count(None).await.unwrap(), 1200);
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
}
