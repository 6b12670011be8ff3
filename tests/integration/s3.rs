//! The S3 backend's datasets against the moto server of scripts/services.sh
//! (DK_TEST_S3_ENDPOINT): objects and sub-prefixes under the attached prefix are tables, read
//! through DataFusion's listing tables (Parquet with its predicate pushed), joined with another
//! backend; nothing outside the prefix is reachable; bad objects and missing buckets are clear
//! errors. Every test uses its own bucket.

use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use dataknobs::Engine;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::{compact_rows, parquet_of, raw_http, unique_name};

pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub(crate) fn endpoint() -> String {
    env_or("DK_TEST_S3_ENDPOINT", "http://127.0.0.1:9310")
}

pub(crate) fn keys() -> (String, String) {
    (
        env_or("DK_TEST_S3_ACCESS_KEY", "dk-test-access-key"),
        env_or("DK_TEST_S3_SECRET_KEY", "dk-test-secret-key"),
    )
}

/// A new, empty bucket and a client for it.
pub(crate) async fn bucket() -> (String, Arc<dyn ObjectStore>) {
    let name = unique_name("dkt").replace('_', "-").to_lowercase();
    let (status, body) = raw_http(&endpoint(), "PUT", &format!("/{name}"), "").await;
    assert_eq!(
        status,
        200,
        "creating bucket {name} on {}: {body} (is moto_server of scripts/services.sh up?)",
        endpoint()
    );
    let (key, secret) = keys();
    let store = AmazonS3Builder::new()
        .with_bucket_name(&name)
        .with_region("us-east-1")
        .with_endpoint(endpoint())
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_access_key_id(key)
        .with_secret_access_key(secret)
        .build()
        .expect("S3 client");
    (name, Arc::new(store))
}

pub(crate) async fn put(store: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    store
        .put(&StorePath::from(key), bytes.into())
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// `n` rows (id, qty, flag) as Parquet bytes, in row groups of 100.
pub(crate) fn lineitem_parquet(n: i64) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("qty", DataType::Float64, true),
        Field::new("flag", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(1..=n)),
            Arc::new(Float64Array::from_iter_values(
                (1..=n).map(|i| (i % 50) as f64),
            )),
            Arc::new(StringArray::from_iter_values(
                (1..=n).map(|i| if i % 3 == 0 { "A" } else { "N" }),
            )),
        ],
    )
    .expect("batch");
    let props = datafusion::parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(100))
        .build();
    parquet_of(&batch, Some(props))
}

/// The bytes of the object `key`; None when there is none.
pub(crate) async fn object_bytes(store: &Arc<dyn ObjectStore>, key: &str) -> Option<Vec<u8>> {
    match store.get(&StorePath::from(key)).await {
        Ok(got) => Some(got.bytes().await.expect("body").to_vec()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("get {key}: {e}"),
    }
}

pub(crate) fn lake_url(bucket: &str, prefix: &str) -> String {
    let (key, secret) = keys();
    format!(
        "s3://{key}:{secret}@{bucket}/{prefix}?endpoint={}",
        endpoint()
    )
}

pub(crate) async fn rows(engine: &Engine, sql: &str) -> Vec<String> {
    compact_rows(
        &engine
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_and_prefixes_under_the_prefix_are_tables() {
    let (bucket, store) = bucket().await;
    put(&store, "data/lineitem.parquet", lineitem_parquet(1000)).await;
    put(
        &store,
        "data/people.csv",
        b"id,name\n1,ada\n2,bo\n3,cy\n".to_vec(),
    )
    .await;
    put(
        &store,
        "data/events/part-0.ndjson",
        b"{\"id\": 1, \"kind\": \"click\"}\n{\"id\": 2, \"kind\": \"view\"}\n".to_vec(),
    )
    .await;
    put(
        &store,
        "data/events/part-1.ndjson",
        b"{\"id\": 3, \"kind\": \"click\"}\n".to_vec(),
    )
    .await;
    put(&store, "data/readme.txt", b"not a table".to_vec()).await;
    put(&store, "secret.parquet", lineitem_parquet(10)).await;

    let engine = Engine::new();
    engine
        .attach("lake", &lake_url(&bucket, "data/"))
        .await
        .expect("attach s3");
    assert_eq!(
        rows(
            &engine,
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'lake' AND table_schema = 'public' ORDER BY 1"
        )
        .await,
        ["events", "lineitem", "people"]
    );
    // 1000 rows; flag 'A' on every third: 333 rows.
    let sql = "SELECT count(*), sum(qty) FROM lake.lineitem WHERE flag = 'A' AND id > 10";
    let want: Vec<i64> = (11..=1000).filter(|i| i % 3 == 0).collect();
    let sum: i64 = want.iter().map(|i| i % 50).sum();
    assert_eq!(
        rows(&engine, sql).await,
        [format!("{}|{sum}.0", want.len())]
    );
    let plan = rows(&engine, &format!("EXPLAIN {sql}")).await.join("\n");
    assert!(
        plan.contains("DataSourceExec") && plan.contains("predicate="),
        "the filter reaches the Parquet scan: {plan}"
    );
    // A CSV object joined with the Parquet one and with a directory of NDJSON objects.
    assert_eq!(
        rows(
            &engine,
            "SELECT p.name, e.kind, l.qty FROM lake.people p \
             JOIN lake.events e ON e.id = p.id JOIN lake.lineitem l ON l.id = p.id ORDER BY p.id"
        )
        .await,
        ["ada|click|1.0", "bo|view|2.0", "cy|click|3.0"]
    );
    // And with another backend.
    engine
        .execute("CREATE TABLE memory.tags (id BIGINT, tag TEXT)")
        .await
        .expect("memory table");
    engine
        .execute("INSERT INTO memory.tags VALUES (2, 'vip')")
        .await
        .expect("insert");
    assert_eq!(
        rows(
            &engine,
            "SELECT p.name, t.tag FROM lake.people p JOIN memory.tags t ON t.id = p.id"
        )
        .await,
        ["bo|vip"]
    );

    // An object added to a prefix table meanwhile is read by the next statement.
    assert_eq!(
        rows(&engine, "SELECT count(*) FROM lake.events").await,
        ["3"]
    );
    put(
        &store,
        "data/events/part-2.ndjson",
        b"{\"id\": 4, \"kind\": \"view\"}\n".to_vec(),
    )
    .await;
    assert_eq!(
        rows(&engine, "SELECT count(*) FROM lake.events").await,
        ["4"]
    );

    // Nothing outside the prefix: not listed, not reachable by a crafted name.
    for name in ["secret", "\"../secret\"", "\"..\"", "\"data/lineitem\""] {
        let err = engine
            .execute(&format!("SELECT * FROM lake.{name}"))
            .await
            .expect_err(name);
        let msg = err.to_string();
        assert!(
            msg.contains("not found") || msg.contains("not a table name"),
            "{name}: {msg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_objects_and_missing_buckets_fail_clearly() {
    let (bucket, store) = bucket().await;
    put(&store, "broken.parquet", b"this is not parquet".to_vec()).await;
    let engine = Engine::new();
    engine
        .attach("lake", &lake_url(&bucket, ""))
        .await
        .expect("attach");
    let err = engine
        .execute("SELECT * FROM lake.broken")
        .await
        .expect_err("not Parquet");
    let msg = err.to_string();
    assert!(
        msg.contains("broken.parquet") && msg.contains("s3"),
        "the error names the object: {msg}"
    );

    let missing = format!("{bucket}-missing");
    let err = Engine::new()
        .attach("lake", &lake_url(&missing, ""))
        .await
        .expect_err("missing bucket");
    let msg = format!("{err}");
    assert!(
        msg.contains("cannot list") && msg.contains(&missing),
        "{msg}"
    );
    let (_, secret) = keys();
    assert!(!msg.contains(&secret), "the secret key leaked: {msg}");
}
