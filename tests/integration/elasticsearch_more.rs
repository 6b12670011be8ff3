//! Elasticsearch/OpenSearch-specific tests beyond the shared suites, against the OpenSearch
//! node of scripts/services.sh: indexes dataknobs did not create ("foreign" indexes, made here
//! over plain HTTP) with every mapping type, multi-valued fields, aliases, bad input and
//! partial bulk failures, the JSON request EXPLAIN shows, sorts pushed as `sort`, long strings
//! beyond the keyword sub-field, the record API and DML compared with the memory backend.
//! Every test works under its own index prefix (`dkt_<unique>_`).

use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::array_value_to_string;
use dataknobs::{Engine, ErrorKind, Operator, Query, Record, Value};
use serde_json::{Value as Json, json};

use crate::common::{ids_where, rows, unique_name};
use crate::elasticsearch::{engine, url, url_with_prefix};

// ------------------------------------------------------------------ helpers

/// One raw HTTP/1.0 request to the test node (fixtures dataknobs does not make): the status
/// and the body.
async fn http(method: &str, path: &str, body: &str) -> (u16, String) {
    crate::common::raw_http(&crate::opensearch::url(), method, path, body).await
}

/// A request that must succeed (2xx); its reply as JSON.
async fn es(method: &str, path: &str, body: &str) -> Json {
    let (status, reply) = http(method, path, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path} {body}: HTTP {status}: {reply}"
    );
    serde_json::from_str(&reply).unwrap_or(Json::Null)
}

/// Creates index `name` with `mappings` and indexes `docs` (`(id, source)`), refreshed.
async fn foreign_index(name: &str, mappings: Json, docs: &[(&str, Json)]) {
    assert!(name.starts_with("dkt_"), "{name}");
    es(
        "PUT",
        &format!("/{name}"),
        &json!({ "mappings": mappings }).to_string(),
    )
    .await;
    if docs.is_empty() {
        return;
    }
    let mut bulk = String::new();
    for (id, doc) in docs {
        bulk.push_str(&json!({"index": {"_id": id}}).to_string());
        bulk.push('\n');
        bulk.push_str(&doc.to_string());
        bulk.push('\n');
    }
    let reply = es("POST", &format!("/{name}/_bulk?refresh=true"), &bulk).await;
    assert_eq!(reply["errors"], json!(false), "{reply}");
}

/// Deletes this test's indexes (best effort).
async fn cleanup(prefix: &str) {
    assert!(prefix.starts_with("dkt_") && prefix.len() > 8, "{prefix}");
    let _ = http("DELETE", &format!("/{prefix}*"), "").await;
}

/// An engine with the test node attached as `es` (the default backend) at `url`.
async fn attach(url: &str) -> Engine {
    let engine = Engine::new();
    engine.attach("es", url).await.expect("attach opensearch");
    engine.set_default_backend("es").expect("default");
    engine
}

async fn run(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    engine
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn fails(engine: &Engine, sql: &str) -> dataknobs::Error {
    match engine.execute(sql).await {
        Ok(b) => panic!("{sql} must fail, gave {:?}", rows(&b)),
        Err(e) => e,
    }
}

fn one(batches: &[RecordBatch]) -> RecordBatch {
    assert!(!batches.is_empty(), "no batches");
    concat_batches(&batches[0].schema(), batches).expect("concat")
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", b.schema()))
}

/// Every value of a column as display text ("NULL" for null).
fn texts(b: &RecordBatch, name: &str) -> Vec<String> {
    let a = col(b, name);
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                "NULL".to_string()
            } else {
                array_value_to_string(a, i).expect("display")
            }
        })
        .collect()
}

/// The first column of `sql`'s rows as text ("NULL" for null).
async fn column0(engine: &Engine, sql: &str) -> Vec<String> {
    let batches = run(engine, sql).await;
    if batches.iter().all(|b| b.num_rows() == 0) {
        return vec![];
    }
    let b = one(&batches);
    let name = b.schema().field(0).name().clone();
    texts(&b, &name)
}

/// The first column of `sql` with pushdown on and off: must be the same; returned.
async fn same_on_and_off(engine: &Engine, sql: &str) -> Vec<String> {
    let on = column0(engine, sql).await;
    engine.set_pushdown(false);
    let off = column0(engine, sql).await;
    engine.set_pushdown(true);
    assert_eq!(on, off, "pushdown changes the answer of {sql}");
    on
}

/// All text of all batches (EXPLAIN output).
fn all_text(batches: &[RecordBatch]) -> String {
    let mut out = String::new();
    for b in batches {
        for c in b.columns() {
            for i in 0..c.len() {
                out.push_str(&array_value_to_string(c, i).unwrap_or_default());
                out.push('\n');
            }
        }
    }
    out
}

async fn explain(engine: &Engine, sql: &str) -> String {
    all_text(&run(engine, &format!("EXPLAIN {sql}")).await)
}

/// `SELECT count(*)` of a table.
async fn count(engine: &Engine, table: &str) -> String {
    column0(engine, &format!("SELECT count(*) FROM {table}"))
        .await
        .remove(0)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ------------------------------------------------------------------ 1. foreign mappings

fn all_types_mapping() -> Json {
    json!({"properties": {
        "kw": {"type": "keyword"},
        "title": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
        "l": {"type": "long"},
        "i": {"type": "integer"},
        "d": {"type": "double"},
        "f": {"type": "float"},
        "b": {"type": "boolean"},
        "at": {"type": "date"},
        "day": {"type": "date", "format": "yyyy/MM/dd"},
        "addr": {"type": "ip"},
        "user": {"properties": {"name": {"type": "keyword"}, "age": {"type": "integer"}}},
        "items": {"type": "nested", "properties": {"k": {"type": "keyword"}, "q": {"type": "integer"}}}
    }})
}

fn all_types_docs() -> Vec<(&'static str, Json)> {
    vec![
        (
            "d1",
            json!({
                "kw": "alpha", "title": "Hello World", "l": 9_007_199_254_740_993i64, "i": -5,
                "d": 1.5, "f": 0.25, "b": true, "at": "2024-03-01T12:34:56.789Z",
                "day": "2024/03/05", "addr": "192.168.1.10",
                "user": {"name": "ann", "age": 31},
                "items": [{"k": "x", "q": 1}, {"k": "y", "q": 2}]
            }),
        ),
        (
            "d2",
            json!({"kw": "beta", "l": 2, "i": 7, "b": false, "user": {"name": "bob"},
                   "at": 1_700_000_000_000i64, "day": "1999/12/31"}),
        ),
        ("d3", json!({"kw": "gamma", "title": "another title"})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_index_maps_every_type() {
    let (u, prefix) = url_with_prefix("");
    let index = format!("{prefix}foreign");
    foreign_index(&index, all_types_mapping(), &all_types_docs()).await;
    let engine = attach(&u).await;

    // The schema: _id and _score first, objects flattened, nested as JSON text.
    let b = one(&run(&engine, "SELECT * FROM foreign ORDER BY _id").await);
    let got: Vec<String> = b
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}:{}:{}", f.name(), f.data_type(), f.is_nullable()))
        .collect();
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let want: Vec<String> = [
        ("_id", DataType::Utf8, true),
        ("_score", DataType::Float64, true),
        ("addr", DataType::Utf8, true),
        ("at", ts.clone(), true),
        ("b", DataType::Boolean, true),
        ("d", DataType::Float64, true),
        ("day", ts.clone(), true),
        ("f", DataType::Float64, true),
        ("i", DataType::Int32, true),
        ("items", DataType::Utf8, true),
        ("kw", DataType::Utf8, true),
        ("l", DataType::Int64, true),
        ("title", DataType::Utf8, true),
        ("user.age", DataType::Int32, true),
        ("user.name", DataType::Utf8, true),
    ]
    .iter()
    .map(|(n, t, null)| format!("{n}:{t}:{null}"))
    .collect();
    assert_eq!(got, want);

    // DESCRIBE says the same.
    let d = one(&run(&engine, "DESCRIBE foreign").await);
    let described: Vec<String> = texts(&d, "column_name")
        .into_iter()
        .zip(texts(&d, "column_type"))
        .map(|(n, t)| format!("{n}:{t}"))
        .collect();
    assert!(
        described.contains(&"user.name:TEXT".to_string()),
        "{described:?}"
    );
    assert!(
        described.contains(&"i:INTEGER".to_string()),
        "{described:?}"
    );
    assert!(
        described.contains(&"day:TIMESTAMP(3) WITH TIME ZONE".to_string()),
        "{described:?}"
    );

    // Values.
    assert_eq!(texts(&b, "_id"), ["d1", "d2", "d3"]);
    assert_eq!(texts(&b, "_score"), ["NULL", "NULL", "NULL"]);
    assert_eq!(texts(&b, "kw"), ["alpha", "beta", "gamma"]);
    assert_eq!(texts(&b, "title"), ["Hello World", "NULL", "another title"]);
    // A long beyond 2^53 is read exactly.
    assert_eq!(texts(&b, "l"), ["9007199254740993", "2", "NULL"]);
    assert_eq!(texts(&b, "i"), ["-5", "7", "NULL"]);
    assert_eq!(texts(&b, "d"), ["1.5", "NULL", "NULL"]);
    assert_eq!(texts(&b, "f"), ["0.25", "NULL", "NULL"]);
    assert_eq!(texts(&b, "b"), ["true", "false", "NULL"]);
    assert_eq!(
        texts(&b, "at"),
        ["2024-03-01T12:34:56.789Z", "2023-11-14T22:13:20Z", "NULL"]
    );
    // The custom format is read through doc values.
    assert_eq!(
        texts(&b, "day"),
        ["2024-03-05T00:00:00Z", "1999-12-31T00:00:00Z", "NULL"]
    );
    assert_eq!(texts(&b, "addr"), ["192.168.1.10", "NULL", "NULL"]);
    assert_eq!(texts(&b, "user.name"), ["ann", "bob", "NULL"]);
    assert_eq!(texts(&b, "user.age"), ["31", "NULL", "NULL"]);
    let items = texts(&b, "items");
    let parsed: Json = serde_json::from_str(&items[0]).expect("nested as JSON text");
    assert_eq!(parsed, json!([{"k": "x", "q": 1}, {"k": "y", "q": 2}]));
    assert_eq!(items[1..], ["NULL", "NULL"]);
    let items_field = b.schema().field_with_name("items").unwrap().clone();
    assert_eq!(
        items_field
            .metadata()
            .get("ARROW:extension:name")
            .map(String::as_str),
        Some("arrow.json"),
        "{items_field:?}"
    );

    // Dotted columns and typed filters, pushed and not.
    assert_eq!(
        same_on_and_off(
            &engine,
            "SELECT \"user.name\" FROM foreign WHERE \"user.age\" > 30"
        )
        .await,
        ["ann"]
    );
    let filtered = "SELECT _id FROM foreign WHERE day = TIMESTAMP '2024-03-05 00:00:00' \
                    AND at < '2024-03-02T00:00:00Z' AND title = 'Hello World' AND b \
                    AND i = -5 AND l = 9007199254740993 AND d = 1.5";
    assert_eq!(same_on_and_off(&engine, filtered).await, ["d1"]);
    let plan = explain(&engine, filtered).await;
    for part in [
        r#"{"range":{"day":{"format":"epoch_millis","gte":1709596800000,"lte":1709596800000}}}"#,
        r#"{"range":{"at":{"format":"epoch_millis","lt":1709337600000}}}"#,
        r#"{"term":{"title.keyword":{"value":"Hello World"}}}"#,
        r#"{"term":{"b":{"value":true}}}"#,
        r#"{"term":{"l":{"value":9007199254740993}}}"#,
        r#""docvalue_fields":[{"field":"day""#,
    ] {
        assert!(plan.contains(part), "{part} not in {plan}");
    }
    for (sql, want) in [
        ("SELECT _id FROM foreign WHERE _id = 'd2'", strs(&["d2"])),
        (
            "SELECT _id FROM foreign WHERE addr = '192.168.1.10'",
            strs(&["d1"]),
        ),
        (
            "SELECT _id FROM foreign WHERE day < TIMESTAMP '2000-01-01 00:00:00'",
            strs(&["d2"]),
        ),
        (
            "SELECT _id FROM foreign WHERE title IS NULL ORDER BY _id",
            strs(&["d2"]),
        ),
        (
            "SELECT _id FROM foreign WHERE NOT b ORDER BY _id",
            strs(&["d2"]),
        ),
        (
            "SELECT _id FROM foreign WHERE f > 0.2 ORDER BY _id",
            strs(&["d1"]),
        ),
        (
            "SELECT _id FROM foreign WHERE \"user.name\" LIKE 'b%'",
            strs(&["d2"]),
        ),
    ] {
        assert_eq!(same_on_and_off(&engine, sql).await, want, "{sql}");
    }
    cleanup(&prefix).await;
}

// ------------------------------------------------------------------ 2. multi-valued fields

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_valued_fields_read_and_filter_by_their_first_value() {
    let (u, prefix) = url_with_prefix("");
    let index = format!("{prefix}mv");
    foreign_index(
        &index,
        json!({"properties": {
            "id": {"type": "integer"}, "tags": {"type": "keyword"}, "n": {"type": "long"}
        }}),
        &[
            ("1", json!({"id": 1, "tags": ["b", "a"], "n": [5, 1]})),
            ("2", json!({"id": 2, "tags": "a", "n": 1})),
            ("3", json!({"id": 3, "tags": ["c"], "n": 7})),
            ("4", json!({"id": 4})),
            ("5", json!({"id": 5, "tags": [], "n": []})),
            ("6", json!({"id": 6, "tags": [null, "a"], "n": [null, 2]})),
        ],
    )
    .await;
    let engine = attach(&u).await;

    let b = one(&run(&engine, "SELECT id, tags, n FROM mv ORDER BY id").await);
    assert_eq!(texts(&b, "tags"), ["b", "a", "c", "NULL", "NULL", "a"]);
    assert_eq!(texts(&b, "n"), ["5", "1", "7", "NULL", "NULL", "2"]);

    // The answer follows the first value (what SELECT shows), not "any value matches".
    let cases: &[(&str, &[&str])] = &[
        ("tags = 'a'", &["2", "6"]),
        ("tags <> 'a'", &["1", "3"]),
        ("NOT (tags = 'b')", &["2", "3", "6"]),
        ("tags IN ('a', 'c')", &["2", "3", "6"]),
        ("tags NOT IN ('a', 'c')", &["1"]),
        ("tags LIKE 'a%'", &["2", "6"]),
        ("tags IS NULL", &["4", "5"]),
        ("tags IS NOT NULL", &["1", "2", "3", "6"]),
        ("n = 1", &["2"]),
        ("n <> 5", &["2", "3", "6"]),
        ("n < 3", &["2", "6"]),
        ("NOT (n < 3)", &["1", "3"]),
        ("n > 3", &["1", "3"]),
        ("n BETWEEN 1 AND 5", &["1", "2", "6"]),
        ("n IN (1, 7)", &["2", "3"]),
        ("n IS NULL", &["4", "5"]),
        ("n = 1 AND tags = 'b'", &[]),
        ("tags = 'a' OR n = 5", &["1", "2", "6"]),
        ("NOT (tags = 'a' OR n = 7)", &["1"]),
    ];
    let mut problems = Vec::new();
    for (cond, want) in cases {
        for pushdown in [true, false] {
            let got = ids_where(&engine, "mv", cond, pushdown).await;
            if got != strs(want) {
                problems.push(format!(
                    "WHERE {cond} (pushdown {pushdown}): {got:?}, want {want:?}"
                ));
            }
        }
    }
    engine.set_pushdown(true);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Positive conditions are pushed as a superset and checked again; negations are not pushed.
    let plan = explain(&engine, "SELECT id FROM mv WHERE tags = 'a'").await;
    assert!(
        plan.contains(r#"{"term":{"tags":{"value":"a"}}}"#),
        "{plan}"
    );
    assert!(plan.contains("FilterExec"), "{plan}");
    let plan = explain(&engine, "SELECT id FROM mv WHERE tags <> 'a'").await;
    assert!(!plan.contains("must_not"), "{plan}");
    assert!(plan.contains("FilterExec"), "{plan}");
    // Sorts are not pushed either (the server sorts by the smallest value of an array).
    let sql = "SELECT id FROM mv ORDER BY n, id LIMIT 3";
    let plan = explain(&engine, sql).await;
    assert!(!plan.contains(r#""sort":[{"#), "{plan}");
    assert_eq!(same_on_and_off(&engine, sql).await, ["2", "6", "1"]);
    let sql = "SELECT id FROM mv ORDER BY tags DESC, id LIMIT 4";
    assert_eq!(same_on_and_off(&engine, sql).await, ["4", "5", "3", "1"]);

    // single_valued=true: the user promises one value per field, so negations and sorts are
    // pushed.
    let promised = attach(&format!(
        "{}/?index_prefix={prefix}&single_valued=true",
        url().trim_end_matches('/')
    ))
    .await;
    let plan = explain(&promised, "SELECT id FROM mv WHERE tags <> 'a'").await;
    assert!(plan.contains("must_not"), "{plan}");
    assert!(!plan.contains("FilterExec"), "{plan}");
    let plan = explain(&promised, "SELECT id FROM mv ORDER BY n LIMIT 3").await;
    assert!(plan.contains(r#""sort":[{"n":"#), "{plan}");

    // DML on such an index: by the first value too.
    let b = run(&engine, "UPDATE mv SET n = 100 WHERE n = 1").await;
    assert_eq!(column0_of(&b), ["1"]);
    assert_eq!(ids_where(&engine, "mv", "n = 100", true).await, ["2"]);
    let b = run(&engine, "DELETE FROM mv WHERE tags = 'a'").await;
    assert_eq!(column0_of(&b), ["2"]);
    assert_eq!(
        column0(&engine, "SELECT id FROM mv ORDER BY id").await,
        ["1", "3", "4", "5"]
    );
    // Document 1 keeps both of its values.
    let doc = es("GET", &format!("/{index}/_doc/1"), "").await;
    assert_eq!(doc["_source"]["tags"], json!(["b", "a"]), "{doc}");
    cleanup(&prefix).await;
}

fn column0_of(batches: &[RecordBatch]) -> Vec<String> {
    let b = one(batches);
    let name = b.schema().field(0).name().clone();
    texts(&b, &name)
}

// ------------------------------------------------------------------ 3. aliases

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_widen_compatible_mappings_and_read_conflicts_as_text() {
    let (u, prefix) = url_with_prefix("");
    let (a1, a2, a3) = (
        format!("{prefix}a1"),
        format!("{prefix}a2"),
        format!("{prefix}a3"),
    );
    foreign_index(
        &a1,
        json!({"properties": {"v": {"type": "integer"}, "k": {"type": "keyword"}}}),
        &[
            ("x", json!({"v": 1, "k": "one"})),
            ("w", json!({"v": 4, "k": "four"})),
        ],
    )
    .await;
    foreign_index(
        &a2,
        json!({"properties": {"v": {"type": "long"}, "k": {"type": "long"}}}),
        &[("y", json!({"v": 2, "k": 2}))],
    )
    .await;
    foreign_index(
        &a3,
        json!({"properties": {"v": {"type": "long"}, "extra": {"type": "boolean"}}}),
        &[("z", json!({"v": 5_000_000_000i64, "extra": true}))],
    )
    .await;
    es(
        "POST",
        "/_aliases",
        &json!({"actions": [
            {"add": {"index": a1, "alias": format!("{prefix}good")}},
            {"add": {"index": a3, "alias": format!("{prefix}good")}},
            {"add": {"index": a1, "alias": format!("{prefix}bad")}},
            {"add": {"index": a2, "alias": format!("{prefix}bad")}},
        ]})
        .to_string(),
    )
    .await;
    let engine = attach(&u).await;

    // integer + long: a long column with the rows of both indexes.
    let b = one(&run(&engine, "SELECT _id, v, k, extra FROM good ORDER BY v").await);
    assert_eq!(col(&b, "v").data_type(), &DataType::Int64);
    assert_eq!(texts(&b, "_id"), ["x", "w", "z"]);
    assert_eq!(texts(&b, "v"), ["1", "4", "5000000000"]);
    assert_eq!(texts(&b, "k"), ["one", "four", "NULL"]);
    assert_eq!(texts(&b, "extra"), ["NULL", "NULL", "true"]);
    assert_eq!(count(&engine, "good").await, "3");
    assert_eq!(
        same_on_and_off(&engine, "SELECT _id FROM good WHERE v > 3 ORDER BY _id").await,
        ["w", "z"]
    );
    let plan = explain(&engine, "SELECT _id FROM good WHERE v > 3").await;
    assert!(plan.contains(r#"{"range":{"v":{"gt":3}}}"#), "{plan}");
    // Writes go to one index at a time.
    let e = fails(&engine, "INSERT INTO good (_id, v) VALUES ('q', 3)").await;
    assert!(
        e.to_string().contains("names 2 indexes") && e.to_string().contains("one index at a time"),
        "{e}"
    );

    // keyword vs long: the field reads as text (what each document holds) and is not pushed.
    let k = column0(&engine, "SELECT CAST(k AS TEXT) FROM bad ORDER BY 1").await;
    assert_eq!(k, ["2", "four", "one"], "{k:?}");
    let plan = explain(&engine, "SELECT k FROM bad WHERE k = '7'").await;
    assert!(
        plan.contains("FilterExec"),
        "a conflicting field is not pushed: {plan}"
    );
    // The indexes themselves stay usable.
    assert_eq!(count(&engine, "a2").await, "1");
    cleanup(&prefix).await;
}

/// One alias with conflicting mappings must not make the whole cluster unlistable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_tables_survives_a_conflicting_alias() {
    let (u, prefix) = url_with_prefix("");
    let (a1, a2) = (format!("{prefix}c1"), format!("{prefix}c2"));
    foreign_index(&a1, json!({"properties": {"k": {"type": "keyword"}}}), &[]).await;
    foreign_index(&a2, json!({"properties": {"k": {"type": "long"}}}), &[]).await;
    es(
        "POST",
        "/_aliases",
        &json!({"actions": [
            {"add": {"index": a1, "alias": format!("{prefix}bad")}},
            {"add": {"index": a2, "alias": format!("{prefix}bad")}},
        ]})
        .to_string(),
    )
    .await;
    let engine = attach(&u).await;
    let listed = engine
        .execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'es' \
             AND table_schema = 'public' ORDER BY table_name",
        )
        .await;
    let shown = engine.execute("SHOW TABLES").await;
    cleanup(&prefix).await;
    let listed = column0_of(&listed.expect("information_schema.tables"));
    shown.expect("SHOW TABLES");
    assert!(
        listed.contains(&"c1".to_string()) && listed.contains(&"c2".to_string()),
        "{listed:?}"
    );
}

// ------------------------------------------------------------------ 4. bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tables_and_unreachable_hosts_fail_clearly() {
    let engine = engine().await;
    let e = fails(&engine, "SELECT * FROM es.no_such_table").await;
    let msg = e.to_string();
    assert!(msg.contains("no_such_table"), "{msg}");
    assert!(
        msg.contains("not found") || msg.contains("does not exist"),
        "{msg}"
    );
    let e = engine
        .database("es.no_such_table")
        .await
        .expect_err("no such table");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = fails(&engine, "DROP TABLE es.no_such_table").await;
    let msg = e.to_string();
    assert!(msg.contains("no_such_table"), "{msg}");
    assert!(
        msg.contains("not found") || msg.contains("does not exist"),
        "{msg}"
    );
    run(&engine, "DROP TABLE IF EXISTS es.no_such_table").await;

    // Nothing listens on port 1.
    let started = Instant::now();
    let e = Engine::new()
        .attach("x", "es+http://127.0.0.1:1")
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("http://127.0.0.1:1"), "{msg}");
    assert!(msg.contains("cannot reach"), "{msg}");
    assert!(msg.contains("is the server up"), "{msg}");

    // A prefix that cannot start an index name.
    let e = Engine::new()
        .attach("x", &format!("{}/?index_prefix=Bad", url()))
        .await
        .expect_err("upper case prefix");
    assert!(e.to_string().contains("cannot be an index name"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_documents_are_counted_and_named() {
    let (u, prefix) = url_with_prefix("");
    foreign_index(
        &format!("{prefix}ips"),
        json!({"properties": {"name": {"type": "keyword"}, "addr": {"type": "ip"}}}),
        &[],
    )
    .await;
    foreign_index(
        &format!("{prefix}strict"),
        json!({"dynamic": "strict", "properties": {"name": {"type": "keyword"}}}),
        &[],
    )
    .await;
    let engine = attach(&u).await;

    // The server rejects one of three documents: two are written, the error says so.
    let e = fails(
        &engine,
        "INSERT INTO ips (_id, name, addr) VALUES ('a', 'x', '10.0.0.1'), \
         ('b', 'y', 'not-an-ip'), ('c', 'z', '10.0.0.3')",
    )
    .await;
    let msg = e.to_string();
    for part in [
        "1 of 3 documents failed",
        "2 were written",
        "'b'",
        "mapper_parsing_exception",
        "addr",
    ] {
        assert!(msg.contains(part), "'{part}' not in: {msg}");
    }
    assert_eq!(e.kind(), ErrorKind::Type, "{e}");
    assert_eq!(
        column0(&engine, "SELECT _id FROM ips ORDER BY _id").await,
        ["a", "c"]
    );

    // A load with `_id` given is idempotent: the same ids again replace, never duplicate.
    let load = "INSERT INTO ips (_id, name, addr) VALUES ('k1', 'n1', '10.0.0.5'), \
                ('k2', 'n2', '10.0.0.6'), ('k3', 'n3', NULL)";
    assert_eq!(column0_of(&run(&engine, load).await), ["3"]);
    assert_eq!(count(&engine, "ips").await, "5");
    assert_eq!(column0_of(&run(&engine, load).await), ["3"]);
    assert_eq!(count(&engine, "ips").await, "5");
    run(
        &engine,
        "INSERT INTO ips (_id, name, addr) VALUES ('k2', 'changed', '10.0.0.7')",
    )
    .await;
    assert_eq!(count(&engine, "ips").await, "5");
    let b = one(&run(&engine, "SELECT name, addr FROM ips WHERE _id = 'k2'").await);
    assert_eq!(texts(&b, "name"), ["changed"]);
    assert_eq!(texts(&b, "addr"), ["10.0.0.7"]);
    // _score cannot be written.
    let e = fails(
        &engine,
        "INSERT INTO ips (_id, _score, name) VALUES ('s', 1.0, 'x')",
    )
    .await;
    assert!(
        e.to_string().contains("_score is computed by the server"),
        "{e}"
    );
    assert_eq!(count(&engine, "ips").await, "5");

    // A strict mapping refuses a field it does not know: the record API names the record.
    let db = engine.database("es.strict").await.expect("strict index");
    assert_eq!(db.key_column().as_deref(), Some("_id"));
    db.create(Record::new().with_id("ok").with("name", "fine"))
        .await
        .expect("a known field");
    let e = db
        .create(
            Record::new()
                .with_id("r1")
                .with("name", "x")
                .with("surprise", 1i64),
        )
        .await
        .expect_err("strict mapping");
    let msg = e.to_string();
    assert!(
        msg.contains("'r1'") && msg.contains("strict_dynamic_mapping_exception"),
        "{msg}"
    );
    assert!(msg.contains("0 were written"), "{msg}");
    assert!(!db.exists("r1").await.expect("exists"));
    assert_eq!(db.count(None).await.expect("count"), 1);
    cleanup(&prefix).await;
}

/// A timestamp written to a `date` field with a custom format that takes neither epoch
/// milliseconds nor ISO 8601 is refused before anything is sent, naming column and format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_custom_format_dates() {
    let (u, prefix) = url_with_prefix("");
    foreign_index(
        &format!("{prefix}foreign"),
        all_types_mapping(),
        &all_types_docs(),
    )
    .await;
    let engine = attach(&u).await;
    let result = engine
        .execute(
            "INSERT INTO foreign (_id, kw, day) VALUES ('e', 'x', TIMESTAMP '2024-05-06 00:00:00')",
        )
        .await;
    let after = column0(&engine, "SELECT count(*) FROM foreign WHERE _id = 'e'").await;
    cleanup(&prefix).await;
    let e = result
        .expect_err("a custom date format dataknobs cannot write")
        .to_string();
    assert!(
        e.contains("'day'") && e.contains("yyyy/MM/dd") && e.contains("cannot write"),
        "{e}"
    );
    assert_eq!(after, ["0"]);
}

// ------------------------------------------------------------------ 5. EXPLAIN and sorts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_request_and_sorts_are_pushed() {
    let (u, prefix) = url_with_prefix("");
    foreign_index(
        &format!("{prefix}foreign"),
        all_types_mapping(),
        &all_types_docs(),
    )
    .await;
    let engine = attach(&u).await;

    let plan = explain(
        &engine,
        "SELECT _id FROM foreign WHERE l > 3 AND kw = 'alpha'",
    )
    .await;
    assert!(
        plan.contains(&format!("POST /{prefix}foreign/_search")),
        "{plan}"
    );
    assert!(plan.contains(r#"{"range":{"l":{"gt":3}}}"#), "{plan}");
    assert!(
        plan.contains(r#"{"term":{"kw":{"value":"alpha"}}}"#),
        "{plan}"
    );
    assert!(
        plan.contains("DataknobsScanExec: backend=elasticsearch"),
        "{plan}"
    );
    assert_eq!(
        same_on_and_off(
            &engine,
            "SELECT _id FROM foreign WHERE l > 3 AND kw = 'alpha'"
        )
        .await,
        ["d1"]
    );

    // A table dataknobs created: ORDER BY … LIMIT is one request with a sort, and the NULLs
    // fall where DataFusion puts them.
    let values = "(1, 5, 'e'), (2, NULL, NULL), (3, 1, 'a'), (4, 9, 'z'), (5, NULL, 'm'), \
                  (6, 3, 'c'), (7, 7, NULL), (8, 5, 'E'), (9, -2, '')";
    run(&engine, "CREATE TABLE es.s (id INT, x BIGINT, s TEXT)").await;
    run(&engine, "CREATE TABLE memory.s (id INT, x BIGINT, s TEXT)").await;
    run(&engine, &format!("INSERT INTO es.s VALUES {values}")).await;
    run(&engine, &format!("INSERT INTO memory.s VALUES {values}")).await;

    let plan = explain(&engine, "SELECT id, x FROM es.s ORDER BY x LIMIT 5").await;
    assert!(
        plan.contains(r#""sort":[{"x":{"missing":"_last","order":"asc"}}]"#),
        "{plan}"
    );
    assert!(plan.contains(r#""size":5"#), "{plan}");
    assert!(!plan.contains("SortExec"), "{plan}");
    let plan = explain(
        &engine,
        "SELECT id, x FROM es.s ORDER BY x DESC, id LIMIT 5",
    )
    .await;
    assert!(
        plan.contains(
            r#""sort":[{"x":{"missing":"_first","order":"desc"}},{"id":{"missing":"_last","order":"asc"}}]"#
        ),
        "{plan}"
    );
    assert!(!plan.contains("SortExec"), "{plan}");
    let plan = explain(&engine, "SELECT id FROM es.s ORDER BY s DESC LIMIT 2").await;
    assert!(plan.contains(r#""sort":[{"s.keyword":"#), "{plan}");
    assert!(!plan.contains("SortExec"), "{plan}");

    let queries = [
        "SELECT id, x FROM {t} ORDER BY x LIMIT 3",
        "SELECT id, x FROM {t} ORDER BY x, id LIMIT 8",
        "SELECT id, x FROM {t} ORDER BY x DESC, id LIMIT 5",
        "SELECT id, x FROM {t} ORDER BY x ASC NULLS FIRST, id LIMIT 4",
        "SELECT id, x FROM {t} ORDER BY x DESC NULLS LAST, id LIMIT 4",
        "SELECT id, x FROM {t} ORDER BY x DESC, id LIMIT 3 OFFSET 2",
        "SELECT id, s FROM {t} ORDER BY s, id LIMIT 6",
        "SELECT id, s FROM {t} ORDER BY s DESC, id LIMIT 6",
        "SELECT id, s FROM {t} WHERE x > 0 ORDER BY s DESC NULLS LAST, id LIMIT 3",
        "SELECT id, x, s FROM {t} ORDER BY x, s, id",
    ];
    for q in queries {
        let want = rows(&run(&engine, &q.replace("{t}", "memory.s")).await);
        let sql = q.replace("{t}", "es.s");
        let got = rows(&run(&engine, &sql).await);
        assert_eq!(got, want, "{sql}");
        engine.set_pushdown(false);
        let off = rows(&run(&engine, &sql).await);
        engine.set_pushdown(true);
        assert_eq!(off, want, "{sql} without pushdown");
    }
    // Spot-check the answers: NULLs last ascending, first descending.
    assert_eq!(
        column0(&engine, "SELECT id FROM es.s ORDER BY x, id LIMIT 9").await,
        ["9", "3", "6", "1", "8", "7", "4", "2", "5"]
    );
    assert_eq!(
        column0(&engine, "SELECT id FROM es.s ORDER BY x DESC, id LIMIT 3").await,
        ["2", "5", "4"]
    );
    cleanup(&prefix).await;
}

// ------------------------------------------------------------------ 6. long strings

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_strings_turn_string_ranges_inexact() {
    let (u, prefix) = url_with_prefix("");
    let engine = attach(&u).await;
    run(&engine, "CREATE TABLE t (id INT, s TEXT)").await;
    run(&engine, "INSERT INTO t VALUES (1, 'apple'), (2, 'banana')").await;
    let sql = "SELECT id FROM t WHERE s > 'b' ORDER BY id";
    let plan = explain(&engine, "SELECT id FROM t WHERE s > 'b'").await;
    assert!(
        plan.contains(r#"{"range":{"s.keyword":{"gt":"b"}}}"#),
        "{plan}"
    );
    assert!(
        !plan.contains("FilterExec"),
        "exact before a long value: {plan}"
    );
    assert_eq!(same_on_and_off(&engine, sql).await, ["2"]);
    let plan = explain(&engine, "SELECT id FROM t ORDER BY s DESC LIMIT 2").await;
    assert!(!plan.contains("SortExec"), "{plan}");

    // 9,000 characters: beyond the keyword sub-field (8,191).
    run(
        &engine,
        "INSERT INTO t VALUES (3, 'c' || repeat('x', 8999))",
    )
    .await;
    assert_eq!(
        column0(&engine, "SELECT length(s) FROM t WHERE id = 3").await,
        ["9000"]
    );
    assert_eq!(same_on_and_off(&engine, sql).await, ["2", "3"]);
    assert_eq!(
        same_on_and_off(&engine, "SELECT id FROM t WHERE s < 'b' ORDER BY id").await,
        ["1"]
    );
    assert_eq!(
        same_on_and_off(&engine, "SELECT id FROM t WHERE s LIKE 'cx%' ORDER BY id").await,
        ["3"]
    );
    assert_eq!(
        same_on_and_off(&engine, "SELECT id FROM t WHERE NOT (s > 'b') ORDER BY id").await,
        ["1"]
    );
    assert_eq!(
        same_on_and_off(&engine, "SELECT id FROM t ORDER BY s DESC LIMIT 2").await,
        ["3", "2"]
    );
    let plan = explain(&engine, "SELECT id FROM t WHERE s > 'b'").await;
    assert!(
        plan.contains("FilterExec"),
        "a superset now, checked again: {plan}"
    );
    assert!(
        plan.contains(r#""must_not":[{"exists":{"field":"s.keyword"}}]"#),
        "the long values are fetched too: {plan}"
    );
    let plan = explain(&engine, "SELECT id FROM t ORDER BY s DESC LIMIT 2").await;
    assert!(plan.contains("SortExec"), "{plan}");

    // Noted in the mapping, so another session knows it too.
    let m = es("GET", &format!("/{prefix}t/_mapping"), "").await;
    assert_eq!(
        m[format!("{prefix}t")]["mappings"]["_meta"]["dataknobs"]["long_text"],
        json!(["s"]),
        "{m}"
    );
    let other = attach(&u).await;
    let plan = explain(&other, "SELECT id FROM t WHERE s > 'b'").await;
    assert!(plan.contains("FilterExec"), "{plan}");
    assert_eq!(same_on_and_off(&other, sql).await, ["2", "3"]);
    cleanup(&prefix).await;
}

/// `~` and `!~` with the regexes Lucene's `regexp` can answer exactly are pushed (anchored,
/// `.` not matching a newline, classes, alternation) and answer as the memory backend does;
/// the others are evaluated by DataFusion. A value too long for the keyword field is still
/// found (the query widens to long values and DataFusion checks again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regexes_push_down_as_lucene_regexps() {
    let (u, prefix) = url_with_prefix("");
    let engine = attach(&u).await;
    let values = "(1, 'apple'), (2, 'banana'), (3, 'a.b'), (4, 'aXb'), (5, 'a' || chr(10) || 'b'), \
                  (6, 'ab'), (7, ''), (8, NULL), (9, 'A.B'), (10, 'x|y'), (11, 'tab' || chr(9) || 'here'), \
                  (12, 'c-d'), (13, 'c]d'), (14, '123'), (15, 'café'), (16, '日本'), (17, 'a#b@c'), \
                  (18, 'nnn'), (19, 'a\"b'), (20, 'A')";
    run(&engine, "CREATE TABLE es.r (id INT, s TEXT)").await;
    run(&engine, "CREATE TABLE memory.r (id INT, s TEXT)").await;
    run(&engine, &format!("INSERT INTO es.r VALUES {values}")).await;
    run(&engine, &format!("INSERT INTO memory.r VALUES {values}")).await;

    let plan = explain(&engine, "SELECT id FROM es.r WHERE s ~ 'a.[bc]'").await;
    assert!(
        plan.contains(r#"{"regexp":{"s.keyword":{"flags":"NONE","value":".*(a[^\n][bc]).*"}}}"#),
        "{plan}"
    );
    assert!(!plan.contains("FilterExec"), "exact: {plan}");
    let plan = explain(&engine, "SELECT id FROM es.r WHERE s !~ '[0-9]+$'").await;
    assert!(
        plan.contains(r#""regexp""#) && plan.contains("must_not"),
        "{plan}"
    );
    let plan = explain(&engine, "SELECT id FROM es.r WHERE s ~ '\\d'").await;
    assert!(
        !plan.contains(r#""regexp""#) && plan.contains("FilterExec"),
        "{plan}"
    );

    let patterns = [
        "a.[bc]",
        "^a[.X]",
        "[bn]$",
        "[0-9]",
        "^$",
        "p|n",
        "^(ab|a.b)$",
        "[-c]d",
        "c[]-]d",
        "é",
        "^[a-z]{2}$",
        "x\\|y",
        "(?i)a",
        "^\\s",
        "n{2,}",
        "[^a-z]",
        "#b@",
        "a[\"]b",
        "^[^x]*$",
        "(an)+a$",
        "\\d",
        "^.$",
        "本$",
        "a[X.]?b",
        "(?:p|b)[ln]",
    ];
    for p in patterns {
        for op in ["~", "!~"] {
            let q = format!("SELECT id FROM {{t}} WHERE s {op} '{p}' ORDER BY id");
            let want = rows(&run(&engine, &q.replace("{t}", "memory.r")).await);
            let sql = q.replace("{t}", "es.r");
            assert_eq!(rows(&run(&engine, &sql).await), want, "{sql}");
            engine.set_pushdown(false);
            assert_eq!(
                rows(&run(&engine, &sql).await),
                want,
                "{sql} without pushdown"
            );
            engine.set_pushdown(true);
        }
    }
    // Spot checks: `.` does not match a newline; the match is anywhere, not the whole value.
    assert_eq!(
        column0(&engine, "SELECT id FROM es.r WHERE s ~ 'a.b' ORDER BY id").await,
        ["3", "4", "17", "19"]
    );
    assert_eq!(
        column0(&engine, "SELECT id FROM es.r WHERE s ~ 'n{2,}' ORDER BY id").await,
        ["18"]
    );

    // Beyond the keyword sub-field: found, and checked again.
    run(
        &engine,
        "INSERT INTO es.r VALUES (21, repeat('z', 9000) || 'q')",
    )
    .await;
    assert_eq!(
        same_on_and_off(
            &engine,
            "SELECT id FROM es.r WHERE s ~ 'z[qr]$' ORDER BY id"
        )
        .await,
        ["21"]
    );
    let plan = explain(&engine, "SELECT id FROM es.r WHERE s ~ 'z[qr]$'").await;
    assert!(
        plan.contains("FilterExec") && plan.contains(r#""regexp""#),
        "{plan}"
    );
    cleanup(&prefix).await;
}

// ------------------------------------------------------------------ 7. record API

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_api_on_an_index() {
    let (u, prefix) = url_with_prefix("");
    let engine = attach(&u).await;
    run(
        &engine,
        "CREATE TABLE es.people (id TEXT PRIMARY KEY, name TEXT, age BIGINT)",
    )
    .await;
    let db = engine.database("es.people").await.expect("database");
    assert_eq!(db.backend_name(), "elasticsearch");
    assert_eq!(db.key_column().as_deref(), Some("id"));

    let ann = db
        .create(Record::new().with("name", "Ann").with("age", 31i64))
        .await
        .expect("create");
    assert!(!ann.is_empty());
    let bob = db
        .create(
            Record::new()
                .with_id("bob")
                .with("name", "Bob")
                .with("age", 40i64),
        )
        .await
        .expect("create with id");
    assert_eq!(bob, "bob");
    let e = db
        .create(Record::new().with_id("bob").with("name", "Bob2"))
        .await
        .expect_err("duplicate id");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    // The key is the document id.
    let doc = es("GET", &format!("/{prefix}people/_doc/bob"), "").await;
    assert_eq!(doc["_source"]["name"], json!("Bob"), "{doc}");
    assert_eq!(doc["_source"]["id"], json!("bob"), "{doc}");

    let r = db.read(&ann).await.expect("read").expect("ann");
    assert_eq!(r.get("name"), Some(&Value::String("Ann".into())));
    assert_eq!(r.get("age"), Some(&Value::Int(31)));
    assert_eq!(r.get("id"), Some(&Value::String(ann.clone())));
    assert!(db.read("nobody").await.expect("read").is_none());
    assert!(db.exists("bob").await.expect("exists"));
    assert!(!db.exists("nobody").await.expect("exists"));

    assert!(
        db.update(
            "bob",
            Record::new().with("name", "Robert").with("age", 41i64)
        )
        .await
        .expect("update")
    );
    assert!(
        !db.update("nobody", Record::new().with("name", "x"))
            .await
            .expect("update missing")
    );
    let r = db.read("bob").await.expect("read").expect("bob");
    assert_eq!(r.get("name"), Some(&Value::String("Robert".into())));
    assert_eq!(r.get("age"), Some(&Value::Int(41)));

    // Upsert: replaces an existing record, creates a missing one.
    assert_eq!(
        db.upsert(
            "bob",
            Record::new().with("name", "Bobby").with("age", 42i64)
        )
        .await
        .expect("upsert existing"),
        "bob"
    );
    db.upsert("cy", Record::new().with("name", "Cy").with("age", 7i64))
        .await
        .expect("upsert new");
    let r = db.read("bob").await.expect("read").expect("bob");
    assert_eq!(r.get("name"), Some(&Value::String("Bobby".into())));
    assert_eq!(db.count(None).await.expect("count"), 3);
    let young = Query::new().filter("age", Operator::Lt, 35i64).unwrap();
    assert_eq!(db.count(Some(&young)).await.expect("count filtered"), 2);

    let ids = db
        .batch_create(
            (0..20)
                .map(|i| {
                    Record::new()
                        .with_id(format!("b{i:02}"))
                        .with("name", format!("n{i}"))
                        .with("age", i as i64)
                })
                .collect(),
        )
        .await
        .expect("batch_create");
    assert_eq!(ids.len(), 20);
    assert_eq!(ids[7], "b07");
    assert_eq!(db.count(None).await.expect("count"), 23);
    assert_eq!(count(&engine, "es.people").await, "23");
    let found = db
        .search(
            &Query::new()
                .filter("age", Operator::Ge, 15i64)
                .unwrap()
                .sort("age", dataknobs::SortOrder::Desc)
                .limit(3),
        )
        .await
        .expect("search");
    let ages: Vec<Value> = found
        .iter()
        .map(|r| r.get("age").cloned().unwrap())
        .collect();
    assert_eq!(ages, [Value::Int(42), Value::Int(31), Value::Int(19)]);

    // A record with a new field adds a nullable column.
    db.create(
        Record::new()
            .with_id("dee")
            .with("name", "Dee")
            .with("city", "Paris"),
    )
    .await
    .expect("create with a new field");
    let city = db
        .schema()
        .field_with_name("city")
        .expect("city column")
        .clone();
    assert_eq!(city.data_type(), &DataType::Utf8);
    assert!(city.is_nullable());
    let m = es("GET", &format!("/{prefix}people/_mapping"), "").await;
    assert!(
        m[format!("{prefix}people")]["mappings"]["properties"]["city"].is_object(),
        "{m}"
    );
    let b = one(&run(
        &engine,
        "SELECT id, city FROM es.people WHERE id IN ('bob', 'dee') ORDER BY id",
    )
    .await);
    assert_eq!(texts(&b, "city"), ["NULL", "Paris"]);
    let reopened = engine.database("es.people").await.expect("reopen");
    assert!(reopened.schema().field_with_name("city").is_ok());

    assert!(db.delete("bob").await.expect("delete"));
    assert!(!db.delete("bob").await.expect("delete again"));
    assert!(!db.exists("bob").await.expect("exists"));
    assert_eq!(db.count(None).await.expect("count"), 23);
    assert_eq!(db.clear().await.expect("clear"), 23);
    assert_eq!(db.count(None).await.expect("count"), 0);
    assert_eq!(count(&engine, "es.people").await, "0");

    // An index dataknobs did not create: records by `_id`, dotted fields.
    foreign_index(
        &format!("{prefix}foreign"),
        all_types_mapping(),
        &all_types_docs(),
    )
    .await;
    let f = engine.database("es.foreign").await.expect("foreign");
    assert_eq!(f.key_column().as_deref(), Some("_id"));
    let r = f.read("d1").await.expect("read").expect("d1");
    assert_eq!(r.get("kw"), Some(&Value::String("alpha".into())));
    assert_eq!(r.get("user.name"), Some(&Value::String("ann".into())));
    assert_eq!(r.get("l"), Some(&Value::Int(9_007_199_254_740_993)));
    assert_eq!(f.count(None).await.expect("count"), 3);
    let alphas = Query::new().filter("kw", Operator::Eq, "alpha").unwrap();
    assert_eq!(f.count(Some(&alphas)).await.expect("count"), 1);
    assert!(f.delete("d3").await.expect("delete"));
    assert_eq!(f.count(None).await.expect("count"), 2);
    cleanup(&prefix).await;
}

// ------------------------------------------------------------------ 8. DML

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dml_matches_the_memory_backend() {
    let engine = engine().await;
    let name = unique_name("dm").replace('-', "_");
    let (es_t, mem_t) = (format!("es.{name}"), format!("memory.{name}"));
    for t in [&es_t, &mem_t] {
        run(
            &engine,
            &format!("CREATE TABLE {t} (id INT, n BIGINT, v TEXT)"),
        )
        .await;
        run(
            &engine,
            &format!(
                "INSERT INTO {t} SELECT CAST(value AS INT), \
                 CASE WHEN value % 7 = 0 THEN NULL ELSE value END, 'v' || value \
                 FROM generate_series(1, 30)"
            ),
        )
        .await;
    }
    let plan = explain(&engine, &format!("DELETE FROM {es_t} WHERE n > 5")).await;
    assert!(plan.contains("mode=native"), "{plan}");
    let plan = explain(
        &engine,
        &format!("UPDATE {es_t} SET v = 'x' WHERE n % 2 = 0"),
    )
    .await;
    assert!(plan.contains("mode=by_row_id"), "{plan}");

    let statements = [
        "DELETE FROM {t} WHERE n > 25",
        "UPDATE {t} SET v = 'x' WHERE n % 2 = 0",
        "UPDATE {t} SET n = n + 100 WHERE v LIKE 'v1%'",
        "DELETE FROM {t} WHERE NOT (n < 110) AND v <> 'x'",
        "UPDATE {t} SET v = NULL WHERE n IS NULL",
        "DELETE FROM {t} WHERE v IS NULL",
        "UPDATE {t} SET n = NULL, v = 'y' WHERE id IN (3, 5)",
        "DELETE FROM {t} WHERE id % 4 = 1",
        "DELETE FROM {t} WHERE n > 5",
        "UPDATE {t} SET v = 'z' WHERE n IS NULL OR n < 3",
    ];
    for s in statements {
        let want = rows(&run(&engine, &s.replace("{t}", &mem_t)).await);
        let sql = s.replace("{t}", &es_t);
        let got = rows(&run(&engine, &sql).await);
        assert_eq!(got, want, "the count of {sql}");
        let sel = "SELECT id, n, v FROM {t} ORDER BY id";
        assert_eq!(
            rows(&run(&engine, &sel.replace("{t}", &es_t)).await),
            rows(&run(&engine, &sel.replace("{t}", &mem_t)).await),
            "after {sql}"
        );
    }
    assert_eq!(
        column0(&engine, &format!("SELECT id FROM {es_t} ORDER BY id")).await,
        ["2", "3", "4"]
    );
    run(&engine, &format!("DROP TABLE {es_t}")).await;
}
