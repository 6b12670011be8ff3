//! The Elasticsearch/OpenSearch backend against the real OpenSearch node started by
//! scripts/services.sh (DK_TEST_OPENSEARCH_URL): the conformance suite, the .slt files and the
//! differential test, plus the backend's own scenarios. Every engine gets its own index prefix
//! (`dkt_<unique>_`), so tests run in parallel; scripts/opensearch.sh deletes `dkt_*` indexes
//! of earlier runs.

use std::sync::Arc;

use async_trait::async_trait;
use dataknobs::{Backend, DatabaseFactory, Engine};

use crate::common::unique_name;
use crate::conformance::Fixture;

/// `es+http://…` for the test node.
pub fn url() -> String {
    let http = crate::opensearch::url();
    format!("es+{http}")
}

/// The test node's URL with a fresh index prefix and extra options.
pub fn url_with_prefix(options: &str) -> (String, String) {
    let prefix = format!("{}_", unique_name("dkt"));
    let mut u = format!("{}/?index_prefix={prefix}", url().trim_end_matches('/'));
    if !options.is_empty() {
        u.push('&');
        u.push_str(options);
    }
    (u, prefix)
}

/// A backend with a fresh index prefix.
pub async fn backend() -> Arc<dyn Backend> {
    let (u, _) = url_with_prefix("");
    DatabaseFactory::with_builtin()
        .open(&u)
        .await
        .unwrap_or_else(|e| panic!("OpenSearch at {} is not reachable: {e}", url()))
}

/// An engine whose default backend is the test node (attached as `es`, fresh prefix).
pub async fn engine() -> Engine {
    let engine = Engine::new();
    let (u, _) = url_with_prefix("");
    engine.attach("es", &u).await.expect("attach opensearch");
    engine.set_default_backend("es").expect("default");
    engine
}

pub struct EsFixture;

#[async_trait]
impl Fixture for EsFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        backend().await
    }
}

crate::backend_suite! {
    fixture: EsFixture,
    name: "elasticsearch",
    engine: engine,
    // Not pushed: regular expressions, ILIKE, binary columns, floats meeting decimals.
    // Measured: 77.3% of plain queries fully pushed, 133 of 1,320 statements with ORDER BY
    // pushed as `sort`.
    differential: {
        rows: 300,
        share: Some(0.7),
        check: |outcome| {
            assert!(
                outcome.sort_pushed * 10 >= outcome.queries,
                "only {} of {} queries had their ORDER BY pushed as a sort",
                outcome.sort_pushed,
                outcome.queries
            );
        },
    },
}

/// Each row's cells as text.
fn cells(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Vec<Vec<String>> {
    crate::common::rows(batches)
        .iter()
        .map(|r| {
            r.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn first_column(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Vec<String> {
    cells(batches)
        .into_iter()
        .map(|mut r| r.swap_remove(0))
        .collect()
}

/// Full-text search joined with a table of another backend, as in the README: relevance
/// scores come back, the request EXPLAIN shows is a `match` in query context, and the same
/// function on a memory table is a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_text_search_joins_other_backends() {
    let engine = engine().await;
    let run = |sql: &'static str| {
        let engine = &engine;
        async move {
            engine
                .execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    };
    run("CREATE TABLE articles (id INT PRIMARY KEY, author_id INT, body TEXT, _score DOUBLE)")
        .await;
    run("INSERT INTO articles (id, author_id, body) VALUES \
         (1, 10, 'DataFusion is a query engine written in Rust'), \
         (2, 20, 'Boil the pasta in salted water'), \
         (3, 10, 'Full-text search engines rank documents by relevance'), \
         (4, 30, 'Rust makes search engines fast')")
    .await;
    run("CREATE TABLE memory.authors (id INT, name TEXT)").await;
    run("INSERT INTO memory.authors VALUES (10, 'ada'), (20, 'bo'), (30, 'cy')").await;
    let batches = run(
        "SELECT a.id, w.name, a._score > 0 AS scored FROM articles a \
         JOIN memory.authors w ON w.id = a.author_id \
         WHERE match(a.body, 'rust search') ORDER BY a._score DESC, a.id",
    )
    .await;
    let rows = cells(&batches);
    // Document 4 has both words and ranks first; 1 and 3 have one each; 2 neither.
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0], vec!["4", "cy", "true"], "{rows:?}");
    let mut rest: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    rest.sort();
    assert_eq!(rest, vec!["1", "3"], "{rows:?}");
    assert!(rows.iter().all(|r| r[2] == "true"), "{rows:?}");

    let phrase = first_column(
        &run("SELECT id FROM articles WHERE match_phrase(body, 'salted water')").await,
    );
    assert_eq!(phrase, vec!["2"]);
    let qs = first_column(
        &run("SELECT id FROM articles WHERE query_string('body:pasta OR body:relevance') ORDER BY id")
            .await,
    );
    assert_eq!(qs, vec!["2", "3"]);
    let negated = first_column(
        &run("SELECT id FROM articles WHERE NOT match(body, 'rust') ORDER BY id").await,
    );
    assert_eq!(negated, vec!["2", "3"]);

    let plan = crate::common::rows(
        &run("EXPLAIN SELECT id FROM articles WHERE match(body, 'rust') AND author_id = 10").await,
    )
    .join("\n");
    assert!(
        plan.contains(r#""must":[{"match":{"body":{"query":"rust"}}}]"#),
        "{plan}"
    );
    assert!(!plan.contains("FilterExec"), "{plan}");

    let err = engine
        .execute("SELECT * FROM memory.authors WHERE match(name, 'ada')")
        .await
        .expect_err("match() on a memory table");
    assert!(
        err.to_string()
            .contains("only an Elasticsearch/OpenSearch table can answer"),
        "{err}"
    );
}

/// `count(*)` with a fully pushed WHERE is answered by the server (`_count`), and agrees with
/// the same count over a memory copy; a WHERE DataFusion must check keeps the rows path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_star_is_answered_by_the_server() {
    let engine = engine().await;
    for sql in [
        "CREATE TABLE c (id INT PRIMARY KEY, n INT, s TEXT, f DOUBLE)",
        "INSERT INTO c VALUES (1, 1, 'a', 0.5), (2, NULL, 'b', 1.5), (3, 3, NULL, 2.5), (4, 4, 'a', NULL)",
        "CREATE TABLE memory.c AS SELECT * FROM c",
    ] {
        engine
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for cond in [
        "TRUE",
        "n > 1",
        "n IS NULL",
        "s = 'a' OR n = 3",
        "NOT (s = 'a')",
        "f < 2",
        "s ~ '[ab]'",
    ] {
        let es = format!("SELECT count(*) FROM c WHERE {cond}");
        let plan = crate::common::rows(&engine.execute(&format!("EXPLAIN {es}")).await.unwrap())
            .join("\n");
        assert!(plan.contains("DataknobsCountExec"), "{es}: {plan}");
        assert!(
            plan.contains("request=POST /") && plan.contains(r#"c/_count {"query":"#),
            "{es}: {plan}"
        );
        let mem = format!("SELECT count(*) FROM memory.c WHERE {cond}");
        assert_eq!(
            first_column(&engine.execute(&es).await.unwrap()),
            first_column(&engine.execute(&mem).await.unwrap()),
            "{cond}"
        );
    }
    // A case-insensitive regex stays in DataFusion: the rows are read and counted there.
    let sql = "SELECT count(*) FROM c WHERE s ~ '(?i)[AB]'";
    let plan =
        crate::common::rows(&engine.execute(&format!("EXPLAIN {sql}")).await.unwrap()).join("\n");
    assert!(!plan.contains("DataknobsCountExec"), "{plan}");
    assert_eq!(first_column(&engine.execute(sql).await.unwrap()), vec!["3"]);
}

/// Full scans page the same rows with scroll as with point in time + search_after, past one
/// page of hits, with an OFFSET beyond one page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scroll_and_pit_scans_read_the_same_rows() {
    let (pit_url, prefix) = url_with_prefix("scan=pit");
    let scroll_url = format!(
        "{}/?index_prefix={prefix}&scan=scroll",
        url().trim_end_matches('/')
    );
    let engine = Engine::new();
    engine.attach("es", &pit_url).await.expect("attach pit");
    engine
        .attach("scroll", &scroll_url)
        .await
        .expect("attach scroll");
    engine
        .execute("CREATE TABLE es.big (id BIGINT PRIMARY KEY, g BIGINT)")
        .await
        .expect("create");
    engine
        .execute(
            "INSERT INTO es.big SELECT v AS id, v % 7 AS g FROM generate_series(1, 23456) AS t(v)",
        )
        .await
        .expect("insert");
    for (name, sql) in [
        ("count", "SELECT count(*), sum(id), sum(g) FROM {T}"),
        ("filtered", "SELECT count(*), sum(id) FROM {T} WHERE g = 3"),
        (
            "offset",
            "SELECT id FROM {T} ORDER BY id LIMIT 3 OFFSET 12000",
        ),
    ] {
        let a = first_column(&engine.execute(&sql.replace("{T}", "es.big")).await.unwrap());
        let b = first_column(
            &engine
                .execute(&sql.replace("{T}", "scroll.big"))
                .await
                .unwrap(),
        );
        assert_eq!(a, b, "{name}");
    }
    let sums = cells(
        &engine
            .execute("SELECT count(*), sum(id) FROM scroll.big WHERE id > 0")
            .await
            .unwrap(),
    );
    assert_eq!(sums[0], vec!["23456", &(23456i64 * 23457 / 2).to_string()]);
    let offset = first_column(
        &engine
            .execute("SELECT id FROM scroll.big ORDER BY id LIMIT 3 OFFSET 12000")
            .await
            .unwrap(),
    );
    assert_eq!(offset, vec!["12001", "12002", "12003"]);
}

/// A GET on the test node that must answer 200; its JSON.
async fn get_json(path: &str) -> serde_json::Value {
    let (status, reply) = crate::common::raw_http(&crate::opensearch::url(), "GET", path, "").await;
    assert_eq!(status, 200, "GET {path}: {reply}");
    serde_json::from_str(&reply).unwrap_or_else(|e| panic!("GET {path}: {e}: {reply}"))
}

/// Search counters of one index on the test node: (shard queries, points in time opened).
async fn search_counters(index: &str) -> (u64, u64) {
    let stats = get_json(&format!("/{index}/_stats/search")).await;
    let search = &stats["_all"]["primaries"]["search"];
    (
        search["query_total"].as_u64().expect("query_total"),
        search["point_in_time_total"]
            .as_u64()
            .expect("point_in_time_total (OpenSearch 2.4 or later)"),
    )
}

/// The ids `sql` returns, sorted, with `index`'s search counters before and after it.
async fn counted_ids(
    engine: &Engine,
    index: &str,
    sql: &str,
) -> (Vec<i64>, (u64, u64), (u64, u64)) {
    let before = search_counters(index).await;
    let mut ids: Vec<i64> = first_column(&engine.execute(sql).await.expect(sql))
        .iter()
        .map(|v| v.parse().expect("an id"))
        .collect();
    let after = search_counters(index).await;
    ids.sort_unstable();
    (ids, before, after)
}

/// A scan whose hits fit one page is one plain `_search`: no point in time opened, no page
/// asked for after the short one. A scan with more hits than a page drops that request's
/// page and reads the whole result in a point in time, every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_that_fits_one_page_is_one_request() {
    let (u, prefix) = url_with_prefix("scan=pit");
    let engine = Engine::new();
    engine.attach("es", &u).await.expect("attach");
    engine
        .execute("CREATE TABLE es.pages (id BIGINT PRIMARY KEY, g BIGINT)")
        .await
        .expect("create");
    engine
        .execute(
            "INSERT INTO es.pages SELECT v AS id, v % 7 AS g FROM generate_series(1, 10050) AS t(v)",
        )
        .await
        .expect("insert");
    let index = format!("{prefix}pages");
    let settings = get_json(&format!("/{index}/_settings")).await;
    let shards: u64 = settings[&index]["settings"]["index"]["number_of_shards"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("number_of_shards");
    assert_eq!(
        shards, 1,
        "the test node makes one-shard indexes (one scan partition)"
    );

    // 1436 hits: one request (one query per shard), no point in time.
    let few = "SELECT id FROM es.pages WHERE g = 3";
    let (ids, before, after) = counted_ids(&engine, &index, few).await;
    let want: Vec<i64> = (1..=10050).filter(|v| v % 7 == 3).collect();
    assert_eq!(ids, want);
    assert_eq!(after.0 - before.0, 1, "shard queries for {few}");
    assert_eq!(after.1, before.1, "points in time opened for {few}");

    // 10050 hits: more than a page; every row once, through a point in time.
    let all = "SELECT id FROM es.pages";
    let (ids, before, after) = counted_ids(&engine, &index, all).await;
    assert_eq!(ids, (1..=10050).collect::<Vec<i64>>());
    assert!(after.1 > before.1, "no point in time for {all}");
    engine.execute("DROP TABLE es.pages").await.expect("drop");
}
