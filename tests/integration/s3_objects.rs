//! S3 single-object tables (`layout=object`: CREATE TABLE writes `prefix/t.<format>`, and
//! INSERT/UPDATE/DELETE and the record API replace the object whole with conditional PUTs)
//! against the moto server of scripts/services.sh: the shared conformance scenarios, `.slt`
//! files and differential test on Parquet objects (and the `.slt` files on CSV objects), then
//! what only objects show: a concurrent writer is never overwritten, objects written by other
//! tools take DML, prefix tables refuse it, and reading a big object does not load it.

use std::sync::Arc;

use async_trait::async_trait;
use dataknobs::{Backend, Engine, ErrorKind};
use futures::StreamExt;
use object_store::ObjectStore;

use crate::conformance::Fixture;
use crate::s3::{bucket, lake_url, lineitem_parquet, object_bytes, put, rows};

/// The URL of `bucket`'s prefix `objs/` with single-object tables of `format`.
fn objects_url(bucket: &str, format: &str) -> String {
    format!(
        "{}&layout=object&format={format}",
        lake_url(bucket, "objs/")
    )
}

pub struct S3ObjectsFixture;

#[async_trait]
impl Fixture for S3ObjectsFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        let (name, _) = bucket().await;
        dataknobs::DatabaseFactory::with_builtin()
            .open(&objects_url(&name, "parquet"))
            .await
            .expect("attach s3 objects")
    }
}

/// An engine with `bucket`'s single-object tables of `format` attached as `lake`.
async fn attached(bucket: &str, format: &str) -> Engine {
    let engine = Engine::new();
    engine
        .attach("lake", &objects_url(bucket, format))
        .await
        .expect("attach");
    engine
}

/// An engine whose default backend is a fresh bucket of single-object tables of `format`.
async fn engine_with(format: &str) -> Engine {
    let (name, _) = bucket().await;
    let engine = attached(&name, format).await;
    engine.set_default_backend("lake").expect("default");
    engine
}

async fn engine() -> Engine {
    engine_with("parquet").await
}

crate::backend_suite! {
    fixture: S3ObjectsFixture,
    name: "s3-objects",
    engine: engine,
    // Parquet scans prune what DataFusion decides; results must match.
    differential: { rows: 120, share: None },
}

/// The `.slt` files on CSV objects: types from the schema sidecar, NULL apart from ''.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_on_csv_objects() {
    crate::slt::run_all("s3-objects", || engine_with("csv")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_writes_one_object_and_dml_replaces_it() {
    let (name, store) = bucket().await;
    let engine = attached(&name, "csv").await;
    rows(
        &engine,
        "CREATE TABLE lake.t (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE)",
    )
    .await;
    rows(
        &engine,
        "INSERT INTO lake.t VALUES (1, 'ada', 1.5), (2, '', NULL), (3, NULL, 3.0)",
    )
    .await;
    // One CSV object, its schema sidecar beside it under _dataknobs/, nothing else.
    let mut keys: Vec<String> = store
        .list(None)
        .map(|o| o.expect("list").location.to_string())
        .collect::<Vec<_>>()
        .await;
    keys.sort();
    assert_eq!(keys, ["objs/_dataknobs/t.csv.schema.json", "objs/t.csv"]);
    let csv = String::from_utf8(object_bytes(&store, "objs/t.csv").await.expect("object"))
        .expect("utf-8");
    assert!(csv.starts_with("id,name,score\n1,ada,1.5\n"), "{csv}");

    // The key holds, '' stays apart from NULL, and DML changes exactly its rows.
    let dup = engine
        .execute("INSERT INTO lake.t VALUES (1, 'again', 0)")
        .await
        .expect_err("duplicate key");
    assert_eq!(dup.kind(), ErrorKind::AlreadyExists, "{dup}");
    assert_eq!(
        rows(&engine, "SELECT count(*) FROM lake.t WHERE name = ''").await,
        ["1"]
    );
    assert_eq!(
        rows(&engine, "SELECT count(*) FROM lake.t WHERE name IS NULL").await,
        ["1"]
    );
    assert_eq!(
        rows(
            &engine,
            "UPDATE lake.t SET score = score * 2 WHERE score > 1"
        )
        .await,
        ["2"]
    );
    assert_eq!(
        rows(&engine, "DELETE FROM lake.t WHERE name IS NULL").await,
        ["1"]
    );
    assert_eq!(
        rows(
            &engine,
            "SELECT id, name, name = '', score IS NULL FROM lake.t ORDER BY id"
        )
        .await,
        ["1|ada|false|false", "2||true|true"]
    );
    // A second engine reads the object as written (types from the sidecar).
    let other = attached(&name, "csv").await;
    assert_eq!(
        rows(
            &other,
            "SELECT arrow_typeof(id), arrow_typeof(score), score FROM lake.t WHERE id = 1"
        )
        .await,
        ["Int64|Float64|3.0"]
    );
    rows(&engine, "DROP TABLE lake.t").await;
    let left: Vec<_> = store.list(None).collect::<Vec<_>>().await;
    assert!(left.is_empty(), "DROP TABLE leaves nothing: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_writer_is_never_overwritten() {
    let (name, _store) = bucket().await;
    let url = objects_url(&name, "parquet");
    let factory = dataknobs::DatabaseFactory::with_builtin();
    let a = factory.open(&url).await.expect("a");
    let b = factory.open(&url).await.expect("b");
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "id",
            datafusion::arrow::datatypes::DataType::Utf8,
            false,
        ),
        datafusion::arrow::datatypes::Field::new(
            "n",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
    ]));
    let ta = a
        .create_collection(
            "public",
            "c",
            dataknobs::CollectionSpec {
                schema,
                key: Some("id".into()),
                record_ids: false,
            },
            false,
        )
        .await
        .expect("create");
    let tb = b.open("public", "c").await.expect("open").expect("exists");
    ta.create(dataknobs::Record::new().with("id", "x").with("n", 1i64))
        .await
        .expect("a creates x");
    // b sees a's write (its state follows the object's ETag), then both keep writing.
    assert!(tb.exists("x").await.expect("b reads"), "b sees x");
    tb.create(dataknobs::Record::new().with("id", "y").with("n", 2i64))
        .await
        .expect("b creates y");
    ta.create(dataknobs::Record::new().with("id", "z").with("n", 3i64))
        .await
        .expect("a creates z after reloading");
    let mut ids: Vec<String> = tb
        .search(&dataknobs::Query::new())
        .await
        .expect("search")
        .iter()
        .filter_map(|r| r.id().map(str::to_string))
        .collect();
    ids.sort();
    assert_eq!(ids, ["x", "y", "z"], "no write lost");

    // Many writers at once: every create lands or fails with a conflict, none is lost.
    let mut tasks = Vec::new();
    for (i, db) in [ta.clone(), tb.clone()]
        .into_iter()
        .cycle()
        .take(8)
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            db.create(
                dataknobs::Record::new()
                    .with("id", format!("w{i}"))
                    .with("n", i as i64),
            )
            .await
        }));
    }
    let mut landed = vec!["x".to_string(), "y".into(), "z".into()];
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(_) => landed.push(format!("w{i}")),
            Err(e) => assert!(
                e.to_string().contains("changed by another writer"),
                "only conflicts may fail: {e}"
            ),
        }
    }
    landed.sort();
    let mut now: Vec<String> = ta
        .search(&dataknobs::Query::new())
        .await
        .expect("search")
        .iter()
        .filter_map(|r| r.id().map(str::to_string))
        .collect();
    now.sort();
    assert_eq!(now, landed, "exactly the writes reported done are there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_objects_take_dml_and_prefix_tables_refuse_it() {
    let (name, store) = bucket().await;
    put(&store, "objs/lineitem.parquet", lineitem_parquet(1000)).await;
    put(
        &store,
        "objs/events/part-0.ndjson",
        b"{\"id\": 1, \"kind\": \"click\"}\n".to_vec(),
    )
    .await;
    let engine = Engine::new();
    engine
        .attach("lake", &lake_url(&name, "objs/"))
        .await
        .expect("attach");
    // EXPLAIN and SELECT change nothing; DELETE rewrites the Parquet object.
    let before = object_bytes(&store, "objs/lineitem.parquet").await;
    rows(
        &engine,
        "EXPLAIN DELETE FROM lake.lineitem WHERE flag = 'A'",
    )
    .await;
    assert_eq!(object_bytes(&store, "objs/lineitem.parquet").await, before);
    assert_eq!(
        rows(&engine, "DELETE FROM lake.lineitem WHERE flag = 'A'").await,
        ["333"]
    );
    assert_eq!(
        rows(
            &engine,
            "SELECT count(*), count(*) FILTER (WHERE flag = 'A') FROM lake.lineitem"
        )
        .await,
        ["667|0"]
    );
    assert_eq!(
        rows(&engine, "UPDATE lake.lineitem SET qty = 0 WHERE id <= 10").await,
        ["7"]
    );
    assert_eq!(
        rows(&engine, "SELECT sum(qty) FROM lake.lineitem WHERE id <= 10").await,
        ["0.0"]
    );
    let err = engine
        .execute("DELETE FROM lake.events WHERE id = 1")
        .await
        .expect_err("prefix tables are append-only");
    assert!(
        err.to_string().contains("prefix table") && err.to_string().contains("layout=object"),
        "{err}"
    );
    assert_eq!(
        rows(&engine, "SELECT count(*) FROM lake.events").await,
        ["1"]
    );
}

/// An object replaced within the same second by one of the same size (S3 keeps modification
/// times in whole seconds) is read as it is now, not with the footer or statistics of the
/// version before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_size_rewrite_is_read_fresh() {
    let (name, _) = bucket().await;
    let engine = attached(&name, "parquet").await;
    rows(
        &engine,
        "CREATE TABLE lake.t (id BIGINT, a BIGINT, b BIGINT)",
    )
    .await;
    rows(
        &engine,
        "INSERT INTO lake.t VALUES (1, 10, 20), (2, 30, 40)",
    )
    .await;
    for round in 0..4 {
        assert_eq!(rows(&engine, "UPDATE lake.t SET a = b, b = a").await, ["2"]);
        let want = if round % 2 == 0 {
            ["1|20|10", "2|40|30"]
        } else {
            ["1|10|20", "2|30|40"]
        };
        assert_eq!(
            rows(&engine, "SELECT id, a, b FROM lake.t ORDER BY id").await,
            want,
            "round {round}"
        );
        assert_eq!(
            rows(&engine, "SELECT count(*) FROM lake.t WHERE a > b").await,
            [if round % 2 == 0 { "2" } else { "0" }],
            "round {round}"
        );
    }
}
