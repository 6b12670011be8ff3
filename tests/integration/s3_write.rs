//! Writes to S3 datasets against the moto server of scripts/services.sh: CREATE TABLE (AS),
//! INSERT (one new object per statement under a prefix table; a single-object table written
//! again), DROP TABLE (that table's keys only), COPY TO s3:// URLs. Every result is checked
//! against the same statements on the memory backend; failed statements leave nothing behind.

use std::sync::Arc;

use dataknobs::Engine;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::raw_http;
use crate::s3::{bucket, endpoint, lake_url, lineitem_parquet, object_bytes, put, rows};

/// Every key in the bucket, sorted.
async fn keys_in(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list(None)
        .map_ok(|o| o.location.to_string())
        .try_collect()
        .await
        .expect("list");
    keys.sort();
    keys
}

/// Keys under `prefix`.
async fn keys_under(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    keys_in(store)
        .await
        .into_iter()
        .filter(|k| k.starts_with(prefix))
        .collect()
}

/// Multipart uploads started and neither completed nor aborted.
async fn open_uploads(bucket: &str) -> usize {
    let (status, body) = raw_http(&endpoint(), "GET", &format!("/{bucket}?uploads"), "").await;
    assert_eq!(status, 200, "list multipart uploads: {body}");
    body.matches("<Upload>").count()
}

async fn engine_on(bucket: &str, prefix: &str, extra: &str) -> Engine {
    let engine = Engine::new();
    engine
        .attach("lake", &format!("{}{extra}", lake_url(bucket, prefix)))
        .await
        .expect("attach s3");
    engine
}

/// Runs `sql` on the lake and, with `lake.` replaced by `memory.`, on the memory backend;
/// both must give the same rows.
async fn same_as_memory(engine: &Engine, sql: &str) -> Vec<String> {
    let lake = rows(engine, sql).await;
    let memory = rows(engine, &sql.replace("lake.", "memory.")).await;
    assert_eq!(lake, memory, "{sql}");
    lake
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_insert_and_drop_write_objects_under_the_prefix() {
    let (bucket, store) = bucket().await;
    put(&store, "lake/tt/c.parquet", lineitem_parquet(5)).await;
    put(&store, "lake/other.parquet", lineitem_parquet(3)).await;
    put(&store, "outside/t/x.parquet", lineitem_parquet(2)).await;
    let engine = engine_on(&bucket, "lake/", "").await;

    for sql in [
        "CREATE TABLE lake.t AS SELECT * FROM (VALUES (1, 'a', 1.5), (2, NULL, 2.5)) v(id, name, x)",
        "INSERT INTO lake.t SELECT id + 10, name, x * 2 FROM lake.t",
        "INSERT INTO lake.t VALUES (100, 'z''q', -0.0), (101, 'é\n\"', 3.25)",
    ] {
        let lake = rows(&engine, sql).await;
        let memory = rows(&engine, &sql.replace("lake.", "memory.")).await;
        assert_eq!(lake, memory, "count reported by {sql}");
    }
    assert_eq!(
        same_as_memory(&engine, "SELECT * FROM lake.t ORDER BY id").await,
        [
            "1|a|1.5",
            "2||2.5",
            "11|a|3.0",
            "12||5.0",
            "100|z'q|0.0",
            // (the printed table splits the newline's row)
            "101|é|3.3",
            "\"",
        ]
    );
    // CTAS wrote the table's description and one object, each INSERT one more.
    let objects = keys_under(&store, "lake/t/").await;
    assert_eq!(objects.len(), 4, "{objects:?}");
    assert_eq!(objects[3], "lake/t/_dataknobs.json");
    assert!(
        objects[..3].iter().all(|k| k.ends_with(".parquet")),
        "{objects:?}"
    );

    // A statement failing on its last rows writes nothing.
    let err = engine
        .execute(
            "INSERT INTO lake.t SELECT id + 1000, name, x FROM lake.t WHERE 1 / (id - 101) > -5",
        )
        .await
        .expect_err("division by zero");
    assert!(err.to_string().contains("Divide by zero"), "{err}");
    assert_eq!(keys_under(&store, "lake/t/").await, objects);
    assert_eq!(rows(&engine, "SELECT count(*) FROM lake.t").await, ["6"]);

    // EXPLAIN plans the INSERT without writing.
    let plan = rows(&engine, "EXPLAIN INSERT INTO lake.t VALUES (7, 'q', 1.0)")
        .await
        .join("\n");
    assert!(plan.contains("lake.public.t"), "{plan}");
    assert_eq!(keys_under(&store, "lake/t/").await, objects);

    // CREATE TABLE without rows: the columns are there, read back from the empty object.
    rows(
        &engine,
        "CREATE TABLE lake.empty (a BIGINT, b VARCHAR, c DOUBLE)",
    )
    .await;
    assert_eq!(
        rows(&engine, "SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = 'lake' AND table_name = 'empty' ORDER BY ordinal_position").await,
        ["a|Int64", "b|Utf8", "c|Float64"]
    );
    assert!(rows(&engine, "SELECT * FROM lake.empty").await.is_empty());
    assert_eq!(
        rows(&engine, "INSERT INTO lake.empty VALUES (1, 'x', 0.5)").await,
        ["1"]
    );
    assert_eq!(rows(&engine, "SELECT * FROM lake.empty").await, ["1|x|0.5"]);
    assert_eq!(keys_under(&store, "lake/empty/").await.len(), 2);

    // Existing names, keys and names that would leave the prefix are refused.
    for (sql, want) in [
        ("CREATE TABLE lake.t (a INT)", "already exists"),
        ("CREATE TABLE lake.k (a INT PRIMARY KEY)", "PRIMARY KEY"),
        (
            "CREATE TABLE lake.\"../outside\" AS SELECT 1 AS a",
            "not a table name",
        ),
        (
            "CREATE TABLE lake.\"%2e%2e\" AS SELECT 1 AS a",
            "not a table name",
        ),
        (
            "CREATE TABLE lake.\"a/b\" AS SELECT 1 AS a",
            "not a table name",
        ),
        ("DROP TABLE lake.\"../outside/t\"", "not a table name"),
        ("DROP TABLE lake.nope", "nope"),
    ] {
        let err = engine.execute(sql).await.expect_err(sql);
        assert!(err.to_string().contains(want), "{sql}: {err}");
    }
    rows(&engine, "DROP TABLE IF EXISTS lake.nope").await;

    // DROP removes that table's keys, not `tt/`, `other.parquet` or `outside/t/`.
    rows(&engine, "DROP TABLE lake.t").await;
    rows(&engine, "DROP TABLE lake.empty").await;
    assert_eq!(
        keys_in(&store).await,
        [
            "lake/other.parquet",
            "lake/tt/c.parquet",
            "outside/t/x.parquet"
        ]
    );
    let err = engine
        .execute("SELECT * FROM lake.t")
        .await
        .expect_err("dropped");
    assert!(err.to_string().contains("not found"), "{err}");
    assert_eq!(open_uploads(&bucket).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_large_insert_aborts_its_multipart_upload() {
    let (bucket, store) = bucket().await;
    // CSV encodes as rows arrive: 40 000 rows of 1 kB are parts of a multipart upload
    // before the last batch fails.
    let engine = engine_on(&bucket, "", "&format=csv").await;
    rows(&engine, "CREATE TABLE lake.big (v BIGINT, pad VARCHAR)").await;
    let before = keys_in(&store).await;
    assert_eq!(before, ["big/_dataknobs.json"]);
    let err = engine
        .execute(
            "INSERT INTO lake.big SELECT v / (v - 40000), repeat('x', 1000) \
             FROM generate_series(1, 40000) g(v)",
        )
        .await
        .expect_err("the last row divides by zero");
    let msg = err.to_string();
    assert!(
        msg.contains("Divide by zero") && msg.contains("nothing was written"),
        "{msg}"
    );
    assert_eq!(keys_in(&store).await, before);
    assert_eq!(
        open_uploads(&bucket).await,
        0,
        "the multipart upload was aborted"
    );

    // The same rows without the failure: one object of 40 MB, read back whole.
    assert_eq!(
        rows(
            &engine,
            "INSERT INTO lake.big SELECT v, repeat('x', 1000) FROM generate_series(1, 40000) g(v)"
        )
        .await,
        ["40000"]
    );
    assert_eq!(
        rows(
            &engine,
            "SELECT count(*), sum(v), min(length(pad)) FROM lake.big"
        )
        .await,
        ["40000|800020000|1000"]
    );
    let after = keys_in(&store).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after[0].starts_with("big/") && after[0].ends_with(".csv"));
    let size = store
        .head(&StorePath::from(after[0].as_str()))
        .await
        .expect("head")
        .size;
    assert!(size > 40_000_000, "{size}");
    assert_eq!(open_uploads(&bucket).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_object_table_is_written_again_with_old_and_new_rows() {
    let (bucket, store) = bucket().await;
    put(&store, "people.csv", b"id,name\n1,ada\n2,bo\n".to_vec()).await;
    put(
        &store,
        "events.json",
        b"[{\"id\": 1, \"kind\": \"click\"}]".to_vec(),
    )
    .await;
    let engine = engine_on(&bucket, "", "").await;
    assert_eq!(
        rows(
            &engine,
            "INSERT INTO lake.people VALUES (3, 'cy'), (4, NULL)"
        )
        .await,
        ["2"]
    );
    assert_eq!(
        rows(&engine, "SELECT * FROM lake.people ORDER BY id").await,
        ["1|ada", "2|bo", "3|cy", "4"]
    );
    assert_eq!(
        rows(&engine, "INSERT INTO lake.events VALUES (2, 'view')").await,
        ["1"]
    );
    assert_eq!(
        rows(&engine, "SELECT * FROM lake.events ORDER BY id").await,
        ["1|click", "2|view"]
    );
    // Each object with the schema object that now types its columns.
    assert_eq!(
        keys_in(&store).await,
        [
            "_dataknobs/events.json.schema.json",
            "_dataknobs/people.csv.schema.json",
            "events.json",
            "people.csv"
        ]
    );

    // A failing INSERT leaves the object as it was.
    let before = object_bytes(&store, "people.csv")
        .await
        .expect("people.csv");
    let err = engine
        .execute("INSERT INTO lake.people SELECT id / (id - 4), name FROM lake.people")
        .await
        .expect_err("division by zero");
    assert!(err.to_string().contains("Divide by zero"), "{err}");
    let after = object_bytes(&store, "people.csv")
        .await
        .expect("people.csv");
    assert_eq!(before, after);

    // DELETE and UPDATE replace the object too (tests/integration/s3_objects.rs has more).
    assert_eq!(
        rows(&engine, "DELETE FROM lake.people WHERE id = 1").await,
        ["1"]
    );
    assert_eq!(
        rows(
            &engine,
            "UPDATE lake.people SET name = 'x' WHERE name IS NULL"
        )
        .await,
        ["1"]
    );
    assert_eq!(
        rows(&engine, "SELECT * FROM lake.people ORDER BY id").await,
        ["2|bo", "3|cy", "4|x"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_an_s3_url_exports_through_the_attached_bucket() {
    let (bucket, store) = bucket().await;
    let engine = engine_on(&bucket, "exports/", "").await;
    rows(
        &engine,
        "CREATE TABLE memory.src AS SELECT v AS id, v * 1.5 AS x FROM generate_series(1, 500) g(v)",
    )
    .await;
    rows(
        &engine,
        &format!("COPY (SELECT * FROM memory.src) TO 's3://{bucket}/exports/out.parquet'"),
    )
    .await;
    rows(
        &engine,
        &format!(
            "COPY (SELECT * FROM memory.src WHERE id <= 10) TO 's3://{bucket}/exports/few.csv' STORED AS CSV"
        ),
    )
    .await;
    assert_eq!(
        keys_in(&store).await,
        ["exports/few.csv", "exports/out.parquet"]
    );
    assert_eq!(
        rows(&engine, "SELECT count(*), sum(id), sum(x) FROM lake.out").await,
        ["500|125250|187875.0"]
    );
    assert_eq!(
        rows(&engine, "SELECT count(*), max(id) FROM lake.few").await,
        ["10|10"]
    );
}
