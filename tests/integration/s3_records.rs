//! S3 record objects (one JSON object per record, the seed's S3Database) against the moto
//! server of scripts/services.sh: the shared conformance scenarios, `.slt` files and
//! differential pushdown test on buckets attached with `format=records`, and the layout,
//! tags, ids and listing cache checked on the objects themselves.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema};
use dataknobs::{Backend, CollectionSpec, Engine, ErrorKind, Query, Record};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::conformance::Fixture;
use crate::s3::{bucket, lake_url, put, rows};

/// A backend over a fresh bucket whose CREATE TABLE makes record collections.
async fn records_backend(extra: &str) -> (Arc<dyn Backend>, Arc<dyn ObjectStore>) {
    let (name, store) = bucket().await;
    let url = format!("{}&format=records{extra}", lake_url(&name, "recs/"));
    let backend = dataknobs::DatabaseFactory::with_builtin()
        .open(&url)
        .await
        .expect("attach s3 records");
    (backend, store)
}

pub struct S3RecordsFixture;

#[async_trait]
impl Fixture for S3RecordsFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        records_backend("").await.0
    }
}

/// An engine whose default backend is a fresh bucket of record collections.
async fn engine() -> Engine {
    let (name, _) = bucket().await;
    let engine = Engine::new();
    engine
        .attach(
            "lake",
            &format!("{}&format=records", lake_url(&name, "recs/")),
        )
        .await
        .expect("attach");
    engine.set_default_backend("lake").expect("default");
    engine
}

crate::backend_suite! {
    fixture: S3RecordsFixture,
    name: "s3",
    engine: engine,
    // Every filter over the columns is evaluated by DataFusion's kernels as objects arrive.
    differential: { rows: 24, share: Some(0.8) },
}

fn people_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        ArrowField::new("id", DataType::Utf8, false),
        ArrowField::new("name", DataType::Utf8, true),
        ArrowField::new("age", DataType::Int64, true),
    ]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_object_per_record_with_metadata_as_tags() {
    let (backend, store) = records_backend("").await;
    let db = backend
        .create_collection(
            "public",
            "people",
            CollectionSpec {
                schema: people_schema(),
                key: Some("id".into()),
                record_ids: true,
            },
            false,
        )
        .await
        .expect("create");
    let mut ada = Record::new()
        .with("id", "ada")
        .with("name", "Ada")
        .with("age", 36);
    ada.metadata
        .insert("source".into(), "import 2026-12".into());
    ada.metadata.insert("version".into(), 3.into());
    db.create(ada).await.expect("create ada");
    let ids = db
        .batch_create(
            (0..50)
                .map(|i| Record::new().with("id", format!("p{i:02}")).with("age", i))
                .collect(),
        )
        .await
        .expect("batch");
    assert_eq!(ids.len(), 50);

    // The object is the record's JSON; the tags are its metadata.
    let body = store
        .get(&StorePath::from("recs/people/ada.json"))
        .await
        .expect("object")
        .bytes()
        .await
        .expect("bytes");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({"id": "ada", "name": "Ada", "age": 36})
    );
    let back = db.read("ada").await.expect("read").expect("exists");
    assert_eq!(back.get("age"), Some(&dataknobs::Value::Int(36)));
    assert_eq!(back.metadata["source"], "import 2026-12");
    assert_eq!(back.metadata["version"], 3);

    // A duplicate id, an id that leaves the prefix, metadata S3 tags cannot hold.
    let err = db
        .create(Record::new().with("id", "ada"))
        .await
        .expect_err("duplicate");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let err = db
        .create(Record::new().with("id", ""))
        .await
        .expect_err("empty id");
    assert!(err.to_string().contains("empty record id"), "{err}");
    // Any other id is one key segment under the collection: '/' and a leading '.' are
    // percent-encoded, so `../escape` cannot leave the prefix.
    db.create(Record::new().with("id", "../escape"))
        .await
        .expect("an id with ../");
    assert!(
        store
            .head(&StorePath::parse("recs/people/%2E.%2Fescape.json").expect("path"))
            .await
            .is_ok()
    );
    assert_eq!(
        db.read("../escape")
            .await
            .expect("read")
            .and_then(|r| r.id().map(str::to_string)),
        Some("../escape".to_string())
    );
    let mut odd = Record::new().with("id", "odd");
    odd.metadata
        .insert("note".into(), serde_json::json!({"nested": true}));
    let err = db.create(odd).await.expect_err("nested metadata");
    assert!(err.to_string().contains("object tags"), "{err}");
    let listed: Vec<String> = {
        use futures::TryStreamExt;
        store
            .list(None)
            .map_ok(|o| o.location.to_string())
            .try_collect()
            .await
            .expect("list")
    };
    assert_eq!(
        listed.len(),
        53,
        "sidecar + 52 records, nothing else: {listed:?}"
    );
    assert!(listed.iter().all(|k| k.starts_with("recs/people/")));

    // Search streams the objects through the filter; batch reads keep the order asked.
    let found = db
        .search(
            &Query::new()
                .filter("age", dataknobs::Operator::Ge, 45)
                .expect("filter"),
        )
        .await
        .expect("search");
    let mut names: Vec<String> = found
        .iter()
        .filter_map(|r| r.id().map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, ["p45", "p46", "p47", "p48", "p49"]);
    let read = db
        .batch_read(&["p03".into(), "nope".into(), "ada".into()])
        .await
        .expect("batch read");
    assert_eq!(read[0].as_ref().and_then(|r| r.id()), Some("p03"));
    assert!(read[1].is_none());
    assert_eq!(read[2].as_ref().and_then(|r| r.id()), Some("ada"));
    assert_eq!(db.count(None).await.expect("count"), 52);
}

/// An engine with a fresh bucket of record collections attached as `lake` with no listing
/// cache, and an empty table `lake.t (id VARCHAR PRIMARY KEY, n BIGINT)`.
async fn uncached_lake() -> (Engine, Arc<dyn ObjectStore>) {
    let (name, store) = bucket().await;
    let engine = Engine::new();
    engine
        .attach(
            "lake",
            &format!("{}&format=records&list_cache=0", lake_url(&name, "")),
        )
        .await
        .expect("attach");
    rows(
        &engine,
        "CREATE TABLE lake.t (id VARCHAR PRIMARY KEY, n BIGINT)",
    )
    .await;
    (engine, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_sees_objects_written_by_others_and_names_bad_ones() {
    let (engine, store) = uncached_lake().await;
    assert_eq!(
        rows(&engine, "INSERT INTO lake.t VALUES ('a', 1), ('b', 2)").await,
        ["2"]
    );
    put(
        &store,
        "t/c.json",
        br#"{"id": "c", "n": 3, "extra": "ignored"}"#.to_vec(),
    )
    .await;
    assert_eq!(
        rows(&engine, "SELECT id, n FROM lake.t ORDER BY id").await,
        ["a|1", "b|2", "c|3"]
    );
    assert_eq!(
        rows(&engine, "UPDATE lake.t SET n = n * 10 WHERE n >= 2").await,
        ["2"]
    );
    assert_eq!(
        rows(&engine, "DELETE FROM lake.t WHERE id = 'a'").await,
        ["1"]
    );
    assert_eq!(
        rows(&engine, "SELECT id, n FROM lake.t ORDER BY id").await,
        ["b|20", "c|30"]
    );
    let plan = rows(&engine, "EXPLAIN SELECT * FROM lake.t WHERE n > 5")
        .await
        .join("\n");
    assert!(
        plan.contains("LIST s3://") && plan.contains("GET each object"),
        "{plan}"
    );

    put(&store, "t/bad.json", b"{not json".to_vec()).await;
    let err = engine
        .execute("SELECT * FROM lake.t")
        .await
        .expect_err("bad object");
    let msg = err.to_string();
    assert!(
        msg.contains("t/bad.json"),
        "the error names the object: {msg}"
    );
    // A key that would leave the prefix stays under it, encoded.
    store
        .delete(&StorePath::from("t/bad.json"))
        .await
        .expect("delete");
    rows(&engine, "INSERT INTO lake.t VALUES ('../x', 1)").await;
    assert!(
        store
            .head(&StorePath::parse("t/%2E.%2Fx.json").expect("path"))
            .await
            .is_ok()
    );
    assert_eq!(
        rows(&engine, "SELECT id FROM lake.t WHERE n = 1").await,
        ["../x"]
    );
}

/// A scan of many records runs in partitions that split one listing (every row once, with
/// `max_workers` shared between them), and `count(*)` without a WHERE is the listing's count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_scan_runs_in_partitions_and_counts_from_the_listing() {
    let (engine, store) = uncached_lake().await;
    rows(&engine, "SET datafusion.execution.target_partitions = 4").await;
    assert_eq!(
        rows(
            &engine,
            "INSERT INTO lake.t SELECT CAST(v AS VARCHAR) AS id, v AS n FROM generate_series(1, 700) g(v)"
        )
        .await,
        ["700"]
    );
    // 700 objects: three partitions of at least 256.
    let plan = rows(&engine, "EXPLAIN SELECT id, n FROM lake.t WHERE n % 7 = 0")
        .await
        .join("\n");
    assert!(plan.contains("partitions=3"), "{plan}");
    assert_eq!(
        rows(
            &engine,
            "SELECT count(*), count(DISTINCT id), sum(n), min(n), max(n) FROM lake.t"
        )
        .await,
        ["700|700|245350|1|700"]
    );
    assert_eq!(
        rows(
            &engine,
            "SELECT count(*), sum(n) FROM lake.t WHERE n % 7 = 0"
        )
        .await,
        ["100|35350"]
    );
    // count(*) alone: one LIST, no GET.
    let plan = rows(&engine, "EXPLAIN SELECT count(*) FROM lake.t")
        .await
        .join("\n");
    assert!(plan.contains("count of keys"), "{plan}");
    put(&store, "t/zz.json", br#"{"id": "zz", "n": 0}"#.to_vec()).await;
    assert_eq!(rows(&engine, "SELECT count(*) FROM lake.t").await, ["701"]);
    assert_eq!(
        rows(&engine, "SELECT count(*) FROM lake.t WHERE n = 0").await,
        ["1"]
    );
}
