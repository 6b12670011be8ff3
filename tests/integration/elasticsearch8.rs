//! The Elasticsearch dialect against a real Elasticsearch 8.19 node (scripts/elasticsearch.sh,
//! DK_TEST_ES8_URL): flavour detection without `GET /` (the node has no rest-root module: 405,
//! the `X-elastic-product` header says who it is), `_pit` / `DELETE /_pit` and scroll paging
//! over a sharded index, pushdown compared with a memory twin (filters, LIKE, regexes, sorts,
//! `_count`), full-text `match`, bulk writes with rejected documents, UPDATE by ids.
//! DELETE is not here: `_delete_by_query` lives in the reindex module, which Maven Central does
//! not have (the OpenSearch suites cover it).

use dataknobs::Engine;
use serde_json::{Value as Json, json};

use crate::common::{raw_http, unique_name};

/// The test node's `http://…`.
pub fn http_url() -> String {
    std::env::var("DK_TEST_ES8_URL").unwrap_or_else(|_| "http://127.0.0.1:9201".into())
}

/// A request that must succeed; the reply as JSON.
async fn es(method: &str, path: &str, body: &str) -> Json {
    let (status, reply) = raw_http(&http_url(), method, path, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: HTTP {status}: {reply} (is the Elasticsearch node of scripts/services.sh up?)"
    );
    serde_json::from_str(&reply).unwrap_or(Json::Null)
}

/// An engine with the node attached as `es` (default backend) under a fresh index prefix.
async fn engine(options: &str) -> (Engine, String) {
    let prefix = format!("{}_", unique_name("dkt"));
    let u = format!(
        "es+{}/?index_prefix={prefix}{}{options}",
        http_url().trim_end_matches('/'),
        if options.is_empty() { "" } else { "&" }
    );
    let engine = Engine::new();
    engine
        .attach("es", &u)
        .await
        .unwrap_or_else(|e| panic!("Elasticsearch at {} is not reachable: {e}", http_url()));
    engine.set_default_backend("es").expect("default");
    (engine, prefix)
}

/// Rows as `a|b|c`.
async fn rows(engine: &Engine, sql: &str) -> Vec<String> {
    let batches = engine
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    crate::common::compact_rows(&batches)
}

async fn explain(engine: &Engine, sql: &str) -> String {
    rows(engine, &format!("EXPLAIN {sql}")).await.join("\n")
}

/// A three-shard index filled through dataknobs, read back with point in time (the
/// Elasticsearch `_pit` API) and with scroll, in several partitions: the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pit_and_scroll_read_a_sharded_index() {
    let (pit, prefix) = engine("scan=pit").await;
    es(
        "PUT",
        &format!("/{prefix}big"),
        &json!({
            "settings": {"number_of_shards": 3, "number_of_replicas": 0},
            "mappings": {"properties": {
                "n": {"type": "long"}, "k": {"type": "keyword"}, "d": {"type": "double"},
                "t": {"type": "text"}
            }}
        })
        .to_string(),
    )
    .await;
    pit.execute(
        "INSERT INTO big (n, k, d, t) SELECT v, 'k' || (v % 97), v * 0.25, 'doc ' || v \
         FROM generate_series(1, 25000) AS g(v)",
    )
    .await
    .expect("insert");
    let scroll = Engine::new();
    scroll
        .attach(
            "es",
            &format!(
                "es+{}/?index_prefix={prefix}&scan=scroll",
                http_url().trim_end_matches('/')
            ),
        )
        .await
        .expect("attach scroll");
    let sql = "SELECT count(*), sum(n), count(DISTINCT k), sum(d), min(t), max(t) FROM es.big";
    let want = vec!["25000|312512500|97|78128125.0|doc 1|doc 9999".to_string()];
    assert_eq!(rows(&pit, sql).await, want);
    assert_eq!(rows(&scroll, sql).await, want);
    // An OFFSET past the first page, and the plans say how they page.
    let page = "SELECT n FROM es.big ORDER BY n LIMIT 3 OFFSET 12000";
    assert_eq!(rows(&pit, page).await, ["12001", "12002", "12003"]);
    assert_eq!(rows(&scroll, page).await, ["12001", "12002", "12003"]);
    let plan = explain(&pit, "SELECT n FROM es.big").await;
    assert!(plan.contains("point in time + search_after"), "{plan}");
    let plan = explain(&scroll, "SELECT n FROM es.big").await;
    assert!(plan.contains("(scroll)"), "{plan}");
    // Every PIT was closed (the last partition closes them): none left open on the node.
    let stats = es("GET", "/_nodes/stats/indices/search", "").await;
    let open: u64 = stats["nodes"]
        .as_object()
        .map(|nodes| {
            nodes
                .values()
                .map(|n| {
                    n["indices"]["search"]["open_contexts"]
                        .as_u64()
                        .unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(open, 0, "search contexts left open: {stats}");
    pit.execute("DROP TABLE big").await.expect("drop");
}

/// Filters, LIKE, regexes, sorts and counts pushed to Elasticsearch answer as a memory twin
/// does, with pushdown on and off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_matches_a_memory_twin() {
    let (engine, _) = engine("").await;
    let values = "(1, 5, 'apple', 1.5), (2, NULL, 'banana', NULL), (3, 1, NULL, 2.5), \
                  (4, 9, 'a.b', -1.0), (5, 3, 'cherry pie', 0.0), (6, 5, 'Apple', 7.25), \
                  (7, NULL, '', 3.0), (8, -2, 'a' || chr(10) || 'b', NULL)";
    for sql in [
        "CREATE TABLE es.t (id INT PRIMARY KEY, x BIGINT, s TEXT, f DOUBLE)".to_string(),
        "CREATE TABLE memory.t (id INT, x BIGINT, s TEXT, f DOUBLE)".to_string(),
        format!("INSERT INTO es.t VALUES {values}"),
        format!("INSERT INTO memory.t VALUES {values}"),
    ] {
        engine
            .execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let queries = [
        "SELECT id FROM {t} WHERE x = 5 ORDER BY id",
        "SELECT id FROM {t} WHERE x IS NULL OR x = 1 ORDER BY id",
        "SELECT id FROM {t} WHERE NOT (x = 5) ORDER BY id",
        "SELECT id FROM {t} WHERE x IN (1, 9, 42) ORDER BY id",
        "SELECT id FROM {t} WHERE x BETWEEN 0 AND 5 AND f > 1 ORDER BY id",
        "SELECT id FROM {t} WHERE s LIKE 'a%' ORDER BY id",
        "SELECT id FROM {t} WHERE s NOT LIKE '%e%' ORDER BY id",
        "SELECT id FROM {t} WHERE s ~ 'a.[bp]' ORDER BY id",
        "SELECT id FROM {t} WHERE s !~ '^[a-c]' ORDER BY id",
        "SELECT id FROM {t} WHERE s IS NOT NULL AND s > 'b' ORDER BY id",
        "SELECT id, x FROM {t} ORDER BY x DESC, id LIMIT 4",
        "SELECT id, s FROM {t} ORDER BY s, id LIMIT 5",
        "SELECT count(*) FROM {t} WHERE x > 0",
        "SELECT count(*) FROM {t} WHERE s LIKE '%a%' OR f IS NULL",
    ];
    for q in queries {
        let want = rows(&engine, &q.replace("{t}", "memory.t")).await;
        let sql = q.replace("{t}", "es.t");
        assert_eq!(rows(&engine, &sql).await, want, "{sql}");
        engine.set_pushdown(false);
        assert_eq!(rows(&engine, &sql).await, want, "{sql} without pushdown");
        engine.set_pushdown(true);
    }
    let plan = explain(&engine, "SELECT count(*) FROM es.t WHERE x > 0").await;
    assert!(plan.contains("_count {\"query\":"), "{plan}");
    let plan = explain(&engine, "SELECT id FROM es.t WHERE s ~ 'a.[bp]'").await;
    assert!(
        plan.contains("\"regexp\"") && !plan.contains("FilterExec"),
        "{plan}"
    );
}

/// Full-text `match`, a bulk load with a document the mapping rejects (counted and named, the
/// rest written), and UPDATE by ids, on Elasticsearch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_text_bulk_errors_and_updates() {
    let (engine, prefix) = engine("").await;
    engine
        .execute("CREATE TABLE docs (id INT PRIMARY KEY, body TEXT)")
        .await
        .expect("create");
    engine
        .execute(
            "INSERT INTO docs VALUES (1, 'Rust makes search engines fast'), \
             (2, 'Boil the pasta'), (3, 'search engines rank documents')",
        )
        .await
        .expect("insert");
    assert_eq!(
        rows(
            &engine,
            "SELECT id FROM docs WHERE match(body, 'search engines') ORDER BY id"
        )
        .await,
        ["1", "3"]
    );
    assert_eq!(
        rows(
            &engine,
            "SELECT id FROM docs WHERE match_phrase(body, 'rank documents') ORDER BY id"
        )
        .await,
        ["3"]
    );
    engine
        .execute("UPDATE docs SET body = 'Boil the rice' WHERE id = 2")
        .await
        .expect("update");
    assert_eq!(
        rows(&engine, "SELECT body FROM docs WHERE id = 2").await,
        ["Boil the rice"]
    );

    // The server rejects one of three documents (not an IP address): two are written, and
    // the error says so and names it; a load with `_id`s given again duplicates nothing.
    es(
        "PUT",
        &format!("/{prefix}ips"),
        &json!({"mappings": {"properties": {
            "name": {"type": "keyword"}, "addr": {"type": "ip"}
        }}})
        .to_string(),
    )
    .await;
    let err = engine
        .execute(
            "INSERT INTO ips (_id, name, addr) VALUES ('a', 'x', '10.0.0.1'), \
             ('b', 'y', 'not-an-ip'), ('c', 'z', '10.0.0.3')",
        )
        .await
        .expect_err("a rejected document");
    let msg = err.to_string();
    for part in ["1 of 3 documents failed", "2 were written", "'b'", "addr"] {
        assert!(msg.contains(part), "'{part}' not in: {msg}");
    }
    assert_eq!(
        rows(&engine, "SELECT _id FROM ips ORDER BY _id").await,
        ["a", "c"]
    );
    let load = "INSERT INTO ips (_id, name, addr) VALUES ('a', 'x2', '10.0.0.9'), ('d', 'w', NULL)";
    engine.execute(load).await.expect("reload");
    engine.execute(load).await.expect("reload again");
    assert_eq!(
        rows(&engine, "SELECT _id, name, addr FROM ips ORDER BY _id").await,
        ["a|x2|10.0.0.9", "c|z|10.0.0.3", "d|w"]
    );
    let _ = raw_http(&http_url(), "DELETE", &format!("/{prefix}*"), "").await;
}
