//! Redis hashes as SQL tables, against the Redis server of scripts/services.sh
//! (DK_TEST_REDIS_URL): the shared conformance scenarios, `.slt` files and differential
//! pushdown test, each on its own key prefix; then what is Redis's own: hashes written by
//! others read with a sampled schema, key lookups as HMGET, declared schemas kept in Redis,
//! CTAS, DROP, INSERT … SELECT all or nothing, a join with another backend, bad input.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use dataknobs::kv::table::{KvBackend, KvSettings};
use dataknobs::kv::{
    ConnectionMode, ConnectorConfig, KeyValueStore, PoolSettings, RedisKeyValueStore,
};
use dataknobs::{Backend, Engine, ErrorKind};
use futures::stream::BoxStream;

use crate::common::{rows, sorted_rows, unique_name};
use crate::conformance::Fixture;

/// The test server: `redis://host:port`, no database.
pub(crate) fn redis_url() -> String {
    std::env::var("DK_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390".to_string())
}

/// A plain connection to database 0, to look at and change what the backend wrote.
pub(crate) async fn raw() -> redis::aio::MultiplexedConnection {
    let url = format!("{}/0", redis_url());
    redis::Client::open(url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e} (is scripts/services.sh's Redis up?)"))
}

/// An attach URL for database 0 with a fresh key prefix; returns (url, prefix).
fn fresh_url(extra: &str) -> (String, String) {
    let prefix = format!("{}:", unique_name("dkt"));
    (format!("{}/0?prefix={prefix}{extra}", redis_url()), prefix)
}

pub struct RedisFixture;

#[async_trait]
impl Fixture for RedisFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        let (url, _) = fresh_url("");
        dataknobs::DatabaseFactory::with_builtin()
            .open(&url)
            .await
            .unwrap_or_else(|e| panic!("attach {url}: {e}"))
    }
}

/// An engine whose default backend is Redis under a fresh prefix.
async fn engine() -> Engine {
    engine_at(&fresh_url("").0).await
}

async fn engine_at(url: &str) -> Engine {
    let engine = Engine::new();
    engine
        .attach("cache", url)
        .await
        .unwrap_or_else(|e| panic!("attach {url}: {e}"));
    engine.set_default_backend("cache").expect("default");
    engine
}

crate::backend_suite! {
    fixture: RedisFixture,
    name: "redis",
    engine: engine,
    // Every filter over the columns is evaluated by DataFusion's kernels on each batch.
    differential: { rows: 24, share: Some(0.8) },
}

async fn sql(engine: &Engine, q: &str) -> Vec<String> {
    rows(
        &engine
            .execute(q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}")),
    )
}

async fn sorted(engine: &Engine, q: &str) -> Vec<String> {
    sorted_rows(
        &engine
            .execute(q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}")),
    )
}

async fn sql_err(engine: &Engine, q: &str) -> dataknobs::Error {
    match engine.execute(q).await {
        Ok(b) => panic!("expected {q} to fail, got {:?}", rows(&b)),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_written_by_others_is_a_table_with_sampled_columns() {
    let (url, prefix) = fresh_url("");
    let mut c = raw().await;
    let hash = format!("{prefix}users");
    let _: () = redis::cmd("HSET")
        .arg(&hash)
        .arg("u1")
        .arg(r#"{"name":"Ada","age":36,"key":"ignored"}"#)
        .arg("u2")
        .arg(r#"{"name":"Bob","age":null}"#)
        .arg("u3")
        .arg(r#"{"name":"Cy","age":20,"city":"Oslo"}"#)
        .query_async(&mut c)
        .await
        .expect("HSET");
    let engine = engine_at(&url).await;
    // The key is the hash field (a `key` inside the JSON does not override it).
    assert_eq!(
        sorted(&engine, "SELECT key, name, age, city FROM cache.users").await,
        [
            "| u1  | Ada  | 36  |      |",
            "| u2  | Bob  |     |      |",
            "| u3  | Cy   | 20  | Oslo |",
        ]
    );
    assert_eq!(
        sql(&engine, "SELECT name FROM cache.users WHERE key = 'u3'").await,
        ["| Cy   |"]
    );
    assert_eq!(
        sorted(
            &engine,
            "SELECT name FROM cache.users WHERE age > 30 OR age IS NULL"
        )
        .await,
        ["| Ada  |", "| Bob  |"]
    );
    assert_eq!(
        sql(&engine, "SELECT count(*) FROM cache.users").await,
        ["| 3        |"]
    );
    // Only hashes under the prefix are tables.
    let names = sql(&engine, "SHOW TABLES").await.join("\n");
    assert!(names.contains("users"), "{names}");
    assert!(!names.contains(&prefix), "{names}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_lookups_are_hmget_and_explain_shows_the_commands() {
    let engine = engine().await;
    sql(
        &engine,
        "CREATE TABLE cache.t AS SELECT CAST(v AS VARCHAR) AS key, v AS n \
         FROM (SELECT unnest(range(0, 3000)) AS v)",
    )
    .await;
    let plan = sql(&engine, "EXPLAIN SELECT n FROM cache.t WHERE key = '17'")
        .await
        .join("\n");
    assert!(plan.contains("HGET") && plan.contains("17"), "{plan}");
    assert!(!plan.contains("HSCAN"), "{plan}");
    let keys: Vec<String> = (0..1000).map(|i| format!("'{}'", i * 3)).collect();
    let q = format!(
        "SELECT count(*), sum(n) AS s FROM cache.t WHERE key IN ({})",
        keys.join(",")
    );
    let plan = sql(&engine, &format!("EXPLAIN {q}")).await.join("\n");
    assert!(plan.contains("1000 keys, one round trip"), "{plan}");
    let expected: i64 = (0..1000).map(|i| i * 3).sum();
    assert_eq!(
        sql(&engine, &q).await,
        [format!("| 1000     | {expected:<6} |")]
    );
    let plan = sql(&engine, "EXPLAIN SELECT * FROM cache.t WHERE n > 5")
        .await
        .join("\n");
    assert!(plan.contains("HSCAN"), "{plan}");
    // A missing key, NULL and an empty list find nothing.
    assert!(
        sql(&engine, "SELECT n FROM cache.t WHERE key = 'nope'")
            .await
            .is_empty()
    );
    assert!(
        sql(
            &engine,
            "SELECT n FROM cache.t WHERE key IN ('1', NULL) AND n > 1"
        )
        .await
        .is_empty()
    );
}

/// A store that counts the requests a scan makes, over the real Redis store.
#[derive(Debug)]
struct Counting {
    inner: RedisKeyValueStore,
    gets: AtomicUsize,
    scans: AtomicUsize,
}

#[async_trait]
impl KeyValueStore for Counting {
    fn kind(&self) -> &str {
        self.inner.kind()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn schemas(&self) -> dataknobs::Result<Vec<String>> {
        self.inner.schemas().await
    }
    async fn exists(&self, s: &str, k: &str) -> dataknobs::Result<bool> {
        self.inner.exists(s, k).await
    }
    async fn count(&self, s: &str) -> dataknobs::Result<u64> {
        self.inner.count(s).await
    }
    async fn get_many(&self, s: &str, k: &[String]) -> dataknobs::Result<Vec<Option<Bytes>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_many(s, k).await
    }
    async fn insert_many(&self, s: &str, e: &[(String, Bytes)]) -> dataknobs::Result<()> {
        self.inner.insert_many(s, e).await
    }
    async fn put_new(&self, s: &str, e: &[(String, Bytes)]) -> dataknobs::Result<Vec<bool>> {
        self.inner.put_new(s, e).await
    }
    async fn put_many(&self, s: &str, e: &[(String, Bytes)]) -> dataknobs::Result<()> {
        self.inner.put_many(s, e).await
    }
    async fn replace(
        &self,
        s: &str,
        k: &str,
        x: Option<&[u8]>,
        v: Bytes,
    ) -> dataknobs::Result<bool> {
        self.inner.replace(s, k, x, v).await
    }
    async fn move_many(
        &self,
        s: &str,
        m: &[(String, Bytes, String, Bytes)],
    ) -> dataknobs::Result<Option<dataknobs::kv::MoveConflict>> {
        self.inner.move_many(s, m).await
    }
    async fn delete_exact(&self, s: &str, e: &[(String, Bytes)]) -> dataknobs::Result<u64> {
        self.inner.delete_exact(s, e).await
    }
    async fn delete_many(&self, s: &str, k: &[String]) -> dataknobs::Result<Vec<bool>> {
        self.inner.delete_many(s, k).await
    }
    async fn drop_schema(&self, s: &str) -> dataknobs::Result<u64> {
        self.inner.drop_schema(s).await
    }
    async fn scan(
        &self,
        s: &str,
        b: usize,
    ) -> dataknobs::Result<BoxStream<'static, dataknobs::Result<Vec<(String, Bytes)>>>> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        self.inner.scan(s, b).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_reads_a_thousand_keys() {
    let (host, port) = {
        let u = url::Url::parse(&redis_url()).expect("url");
        (
            u.host_str().unwrap_or("127.0.0.1").to_string(),
            u.port().unwrap_or(6379),
        )
    };
    let inner = RedisKeyValueStore::connect(
        ConnectorConfig::new(host, port),
        ConnectionMode::Single,
        PoolSettings::default(),
    )
    .await
    .expect("connect");
    let store = Arc::new(Counting {
        inner,
        gets: AtomicUsize::new(0),
        scans: AtomicUsize::new(0),
    });
    let settings = KvSettings {
        prefix: format!("{}:", unique_name("dkt")),
        ..KvSettings::default()
    };
    let backend = KvBackend::open(store.clone(), settings)
        .await
        .expect("open");
    let engine = Engine::new();
    engine
        .attach_backend("cache", Arc::new(backend))
        .expect("attach");
    sql(
        &engine,
        "CREATE TABLE cache.t AS SELECT CAST(v AS VARCHAR) AS key, v AS n \
         FROM (SELECT unnest(range(0, 5000)) AS v)",
    )
    .await;
    let (gets, scans) = (
        store.gets.load(Ordering::SeqCst),
        store.scans.load(Ordering::SeqCst),
    );
    let keys: Vec<String> = (0..1000).map(|i| format!("'{}'", i * 5)).collect();
    let got = sql(
        &engine,
        &format!(
            "SELECT count(*) FROM cache.t WHERE key IN ({})",
            keys.join(",")
        ),
    )
    .await;
    assert_eq!(got, ["| 1000     |"]);
    // Planning reads the table's description (one get); the scan is one HMGET request.
    let table_reads = store.gets.load(Ordering::SeqCst) - gets;
    assert!(table_reads <= 2, "{table_reads} get requests for 1000 keys");
    assert_eq!(store.scans.load(Ordering::SeqCst), scans, "no HSCAN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_declares_columns_that_the_next_process_sees() {
    let (url, prefix) = fresh_url("");
    let engine = engine_at(&url).await;
    sql(
        &engine,
        "CREATE TABLE cache.orders (id BIGINT PRIMARY KEY, item VARCHAR, qty INT, price DOUBLE)",
    )
    .await;
    sql(
        &engine,
        "INSERT INTO cache.orders VALUES (1, 'pen', 2, 1.5), (2, 'ink', NULL, 7.25)",
    )
    .await;
    // The record is its JSON under its key, the key included.
    let mut c = raw().await;
    let v: String = redis::cmd("HGET")
        .arg(format!("{prefix}orders"))
        .arg("1")
        .query_async(&mut c)
        .await
        .expect("HGET");
    let json: serde_json::Value = serde_json::from_str(&v).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({"id": 1, "item": "pen", "qty": 2, "price": 1.5})
    );
    // Another process: same columns and types, the key is `id`.
    let other = engine_at(&url).await;
    assert_eq!(
        sql(
            &other,
            "SELECT id + 1, qty, price FROM cache.orders ORDER BY id"
        )
        .await,
        [
            "| 2                          | 2   | 1.5   |",
            "| 3                          |     | 7.25  |"
        ]
    );
    let plan = sql(
        &other,
        "EXPLAIN SELECT * FROM cache.orders WHERE id = 2 OR qty = 2",
    )
    .await
    .join("\n");
    assert!(
        plan.contains("HSCAN"),
        "an OR with another column scans: {plan}"
    );
    let plan = sql(
        &other,
        "EXPLAIN SELECT * FROM cache.orders WHERE id IN (2, 5)",
    )
    .await
    .join("\n");
    assert!(plan.contains("HMGET") && plan.contains("2 keys"), "{plan}");
    // A duplicate key: nothing of the statement is written.
    let err = sql_err(
        &other,
        "INSERT INTO cache.orders VALUES (3, 'cap', 1, 1.0), (1, 'dup', 1, 1.0)",
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("'1'"), "{err}");
    assert_eq!(
        sql(&other, "SELECT count(*) FROM cache.orders").await,
        ["| 2        |"]
    );
    // CREATE TABLE of an existing name.
    let err = sql_err(&other, "CREATE TABLE cache.orders (id INT)").await;
    assert!(err.to_string().contains("exists"), "{err}");
    // DROP removes hash and declaration.
    sql(&other, "DROP TABLE cache.orders").await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("{prefix}orders"))
        .query_async(&mut c)
        .await
        .expect("EXISTS");
    assert_eq!(exists, 0);
    let declared: i64 = redis::cmd("HEXISTS")
        .arg(format!("{prefix}_dataknobs:tables"))
        .arg("orders")
        .query_async(&mut c)
        .await
        .expect("HEXISTS");
    assert_eq!(declared, 0);
    let err = sql_err(&engine_at(&url).await, "SELECT * FROM cache.orders").await;
    assert!(err.to_string().contains("orders"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctas_keys_by_the_key_column_or_the_first_one_and_explain_writes_nothing() {
    let engine = engine().await;
    sql(
        &engine,
        "CREATE TABLE cache.a AS SELECT 'x' || CAST(v AS VARCHAR) AS name, v AS key \
         FROM (SELECT unnest(range(0, 10)) AS v)",
    )
    .await;
    let plan = sql(&engine, "EXPLAIN SELECT name FROM cache.a WHERE key = 4")
        .await
        .join("\n");
    assert!(plan.contains("HGET"), "{plan}");
    assert_eq!(
        sql(&engine, "SELECT name FROM cache.a WHERE key = 4").await,
        ["| x4   |"]
    );
    sql(
        &engine,
        "CREATE TABLE cache.b AS SELECT v * 10 AS id, 'y' AS tag FROM (SELECT unnest(range(0, 5)) AS v)",
    )
    .await;
    assert_eq!(
        sql(&engine, "SELECT tag FROM cache.b WHERE id = 40").await,
        ["| y   |"]
    );
    // A key repeated in the SELECT fails the CTAS, leaving no rows.
    let err = sql_err(
        &engine,
        "CREATE TABLE cache.c AS SELECT 1 AS id UNION ALL SELECT 1 AS id",
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    // EXPLAIN of an INSERT writes nothing.
    sql(&engine, "EXPLAIN INSERT INTO cache.b VALUES (99, 'z')").await;
    assert_eq!(
        sql(&engine, "SELECT count(*) FROM cache.b").await,
        ["| 5        |"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_table_joins_a_table_of_another_backend() {
    let engine = engine().await;
    engine.attach("mem", "memory://").await.expect("memory");
    sql(
        &engine,
        "CREATE TABLE mem.customers AS SELECT * FROM (VALUES ('c1', 'Ada'), ('c2', 'Bob')) \
         AS t(id, name)",
    )
    .await;
    sql(
        &engine,
        "CREATE TABLE cache.sessions (\"key\" VARCHAR, customer VARCHAR, minutes INT)",
    )
    .await;
    sql(
        &engine,
        "INSERT INTO cache.sessions VALUES ('s1', 'c1', 5), ('s2', 'c1', 7), ('s3', 'c2', 1)",
    )
    .await;
    assert_eq!(
        sql(
            &engine,
            "SELECT c.name, sum(s.minutes) AS total FROM cache.sessions s \
             JOIN mem.customers c ON c.id = s.customer GROUP BY c.name ORDER BY c.name",
        )
        .await,
        ["| Ada  | 12    |", "| Bob  | 1     |"]
    );
    // And data moves the other way with INSERT … SELECT.
    sql(
        &engine,
        "CREATE TABLE mem.copy AS SELECT key, minutes FROM cache.sessions",
    )
    .await;
    assert_eq!(
        sql(&engine, "SELECT sum(minutes) FROM mem.copy").await,
        ["| 13                    |"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_and_bad_credentials_are_clear_errors() {
    let (url, prefix) = fresh_url("");
    let engine = engine_at(&url).await;
    sql(&engine, "CREATE TABLE cache.t (\"key\" VARCHAR, n INT)").await;
    sql(&engine, "INSERT INTO cache.t VALUES ('a', 1)").await;
    let mut c = raw().await;
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}t"))
        .arg("b")
        .arg("not json")
        .query_async(&mut c)
        .await
        .expect("HSET");
    let err = sql_err(&engine, "SELECT * FROM cache.t").await;
    assert!(err.to_string().contains("'b'"), "{err}");
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}t"))
        .arg("b")
        .arg(r#"{"n": "many"}"#)
        .query_async(&mut c)
        .await
        .expect("HSET");
    let err = sql_err(&engine, "SELECT * FROM cache.t").await;
    assert!(err.to_string().contains("'b'"), "{err}");
    // A key of another type under a table's name.
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}s"))
        .arg("a string")
        .query_async(&mut c)
        .await
        .expect("SET");
    let err = sql_err(&engine, "SELECT * FROM cache.s").await;
    assert_eq!(err.kind(), ErrorKind::Type, "{err}");
    // A wrong password: refused at attach, the password nowhere in the message.
    let user = std::env::var("DK_TEST_REDIS_USER").unwrap_or_else(|_| "dk_test_user".into());
    let base = redis_url().replace("redis://", "");
    let bad = format!("redis://{user}:wrong-secret-9@{base}/0");
    let err = Engine::new()
        .attach("x", &bad)
        .await
        .expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(!err.to_string().contains("wrong-secret-9"), "{err}");
    let password =
        std::env::var("DK_TEST_REDIS_PASSWORD").unwrap_or_else(|_| "dk-test-redis-password".into());
    let good = format!("redis://{user}:{password}@{base}/0?prefix={prefix}");
    let e2 = Engine::new();
    e2.attach("cache", &good).await.expect("right password");
    assert_eq!(
        sql(&e2, "SELECT n FROM cache.t WHERE key = 'a'").await,
        ["| 1 |"]
    );
    // Unreachable.
    let err = Engine::new()
        .attach("x", "redis://127.0.0.1:1/0?connect_timeout=2s")
        .await
        .expect_err("unreachable");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_api_works_on_a_hash() {
    let (url, _) = fresh_url("");
    let backend = dataknobs::DatabaseFactory::with_builtin()
        .open(&url)
        .await
        .expect("open");
    let engine = Engine::new();
    engine
        .attach_backend("cache", backend.clone())
        .expect("attach");
    sql(
        &engine,
        "CREATE TABLE cache.people (\"key\" VARCHAR, name VARCHAR, age BIGINT)",
    )
    .await;
    let db = backend
        .open("public", "people")
        .await
        .expect("open")
        .expect("exists");
    let id = db
        .create(
            dataknobs::Record::new()
                .with("key", "p1")
                .with("name", "Ada")
                .with("age", 36),
        )
        .await
        .expect("create");
    assert_eq!(id, "p1");
    let r = db.read("p1").await.expect("read").expect("exists");
    assert_eq!(r.get("age"), Some(&dataknobs::Value::Int(36)));
    assert!(
        db.update(
            "p1",
            dataknobs::Record::new()
                .with("name", "Ada L")
                .with("age", 37)
        )
        .await
        .expect("update")
    );
    assert!(
        !db.update("p9", dataknobs::Record::new().with("name", "x"))
            .await
            .expect("update")
    );
    assert_eq!(
        sql(&engine, "SELECT key, name, age FROM cache.people").await,
        ["| p1  | Ada L | 37  |"]
    );
    let q = dataknobs::Query::new()
        .filter("age", dataknobs::Operator::Gt, 30i64)
        .expect("filter");
    assert_eq!(db.search(&q).await.expect("search").len(), 1);
    assert!(db.delete("p1").await.expect("delete"));
    assert_eq!(db.count(None).await.expect("count"), 0);
}

/// `rediss://`: the TLS port of the test server (scripts/redis.sh), its certificate signed by a
/// throwaway CA. Trusted through `ca_file` or with `verify_tls=false`; without either the
/// handshake fails with an error saying what to do; TLS options on `redis://` are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_connects_over_tls_with_the_ca_file() {
    let tls = std::env::var("DK_TEST_REDIS_TLS_URL")
        .unwrap_or_else(|_| "rediss://127.0.0.1:6391".to_string());
    let ca = std::env::var("DK_TEST_REDIS_TLS_CA")
        .unwrap_or_else(|_| "/var/tmp/dataknobs-redis/tls/ca.pem".to_string());
    assert!(
        std::path::Path::new(&ca).exists(),
        "no CA file at {ca}: start the services with scripts/services.sh (start_redis)"
    );
    let prefix = format!("{}:", unique_name("dkt"));
    let trusted = format!("{tls}/0?prefix={prefix}&ca_file={ca}");
    let engine = engine_at(&trusted).await;
    sql(&engine, "CREATE TABLE secure (id BIGINT, name TEXT)").await;
    sql(&engine, "INSERT INTO secure VALUES (1, 'one'), (2, 'two')").await;
    assert_eq!(
        compact(&engine, "SELECT id, name FROM secure ORDER BY id").await,
        vec!["1|one".to_string(), "2|two".to_string()]
    );
    // What went over TLS is in the server: the plain port sees the same hash.
    let mut conn = raw().await;
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("{prefix}secure"))
        .query_async(&mut conn)
        .await
        .expect("HKEYS");
    assert_eq!(fields.len(), 2, "{fields:?}");

    // Without the CA, the self-signed chain is refused, and the error says what to do.
    let untrusted = format!("{tls}/0?prefix={prefix}");
    let err = Engine::new()
        .attach("bad", &untrusted)
        .await
        .expect_err("an untrusted certificate");
    let text = err.to_string();
    assert!(
        text.contains("ca_file") && text.contains("verify_tls=false"),
        "{text}"
    );
    assert!(text.contains("rediss://127.0.0.1"), "{text}");

    // verify_tls=false accepts it.
    let insecure = engine_at(&format!("{tls}/0?prefix={prefix}&verify_tls=false")).await;
    assert_eq!(
        compact(&insecure, "SELECT name FROM secure ORDER BY name").await,
        vec!["one".to_string(), "two".to_string()]
    );

    // TLS settings on a plain URL are a configuration error.
    let err = Engine::new()
        .attach("plain", &format!("{}/0?ca_file={ca}", redis_url()))
        .await
        .expect_err("ca_file on redis://");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("rediss://"), "{err}");
}

async fn compact(engine: &Engine, q: &str) -> Vec<String> {
    crate::common::compact_rows(
        &engine
            .execute(q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}")),
    )
}
