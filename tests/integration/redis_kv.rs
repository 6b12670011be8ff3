//! The Redis key-value store (`dataknobs::kv::RedisKeyValueStore`: one hash per schema, each
//! record's JSON under its key) and its connection managers against the real Redis of
//! scripts/services.sh (`DK_TEST_REDIS_URL`, the ACL user `DK_TEST_REDIS_USER` /
//! `DK_TEST_REDIS_PASSWORD`).
//!
//! Other tests share the server: every test writes only hashes named by
//! [`unique_name`], counts server-side connections by a `client_name` of its own (parsed
//! from `CLIENT LIST`), and kills only its own connections. No test ever skips: without the
//! server they fail.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dataknobs::kv::{
    ConnectionMode, ConnectorConfig, ConnectorManager, ConnectorManagerFactory, KeyValueStore,
    KeyValueStoreExt, KvRecord, PoolSettings, RedisConnector, RedisKeyValueStore, WholeHash,
};
use dataknobs::{ErrorKind, Filter, FilterExpr, Operand, Operator};
use futures::TryStreamExt;
use redis::aio::MultiplexedConnection;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::common::unique_name;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn redis_url() -> String {
    env_or("DK_TEST_REDIS_URL", "redis://127.0.0.1:6390")
}

fn acl_user() -> (String, String) {
    (
        env_or("DK_TEST_REDIS_USER", "dk_test_user"),
        env_or("DK_TEST_REDIS_PASSWORD", "dk-test-redis-password"),
    )
}

/// Host and port of [`redis_url`].
fn host_port() -> (String, u16) {
    let url = url::Url::parse(&redis_url()).expect("DK_TEST_REDIS_URL is a URL");
    (
        url.host_str().expect("a host").to_string(),
        url.port().unwrap_or(6379),
    )
}

/// The test server's configuration, its connections named `client_name`.
fn config(client_name: &str) -> ConnectorConfig {
    let (host, port) = host_port();
    let mut c = ConnectorConfig::new(host, port);
    c.client_name = Some(client_name.to_string());
    c
}

fn pool(max_connections: u32) -> PoolSettings {
    PoolSettings {
        max_connections,
        connection_timeout: Duration::from_secs(10),
        idle_timeout: None,
    }
}

/// A connected store whose connections the server lists as `client_name`.
async fn store_named(
    client_name: &str,
    mode: ConnectionMode,
    pool: PoolSettings,
) -> RedisKeyValueStore {
    RedisKeyValueStore::connect(config(client_name), mode, pool)
        .await
        .unwrap_or_else(|e| panic!("no Redis at {} ({e}); run scripts/services.sh", redis_url()))
}

/// A connected store on one shared connection, with a name of its own.
async fn store() -> RedisKeyValueStore {
    store_named(
        &unique_name("dk_kv"),
        ConnectionMode::Single,
        PoolSettings::default(),
    )
    .await
}

/// A plain redis-rs connection (no name), to look at and tamper with what the store wrote.
async fn admin() -> MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("DK_TEST_REDIS_URL")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("no Redis at {} ({e}); run scripts/services.sh", redis_url()))
}

/// `cmd args…` on `conn`, panicking with the command on failure.
async fn raw<T: redis::FromRedisValue>(conn: &mut MultiplexedConnection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Deletes the test's keys (best effort).
async fn cleanup(admin: &mut MultiplexedConnection, keys: &[&str]) {
    for k in keys {
        let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(*k).query_async(admin).await;
    }
}

/// The ids of the server's connections named `name` (from the `name=` fields of
/// `CLIENT LIST`).
async fn named_connections(admin: &mut MultiplexedConnection, name: &str) -> Vec<u64> {
    let list: String = raw(admin, &["CLIENT", "LIST"]).await;
    let want = format!("name={name}");
    list.lines()
        .filter(|line| line.split(' ').any(|f| f == want))
        .map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("no id in CLIENT LIST line {line}"))
        })
        .collect()
}

/// Polls until the server lists exactly `want` connections named `name` (at most `within`);
/// the last count seen.
async fn wait_for_connections(
    admin: &mut MultiplexedConnection,
    name: &str,
    want: usize,
    within: Duration,
) -> usize {
    let started = Instant::now();
    loop {
        let n = named_connections(admin, name).await.len();
        if n == want || started.elapsed() > within {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `CLIENT ID` of the connection a new lease of `manager` hands out.
async fn leased_client_id(manager: &ConnectorManager<RedisConnector>) -> u64 {
    let lease = manager.get().await.expect("lease");
    let mut c = lease.client();
    raw(&mut c, &["CLIENT", "ID"]).await
}

/// Kills connection `id` (one of the test's own) from the admin connection.
async fn kill(admin: &mut MultiplexedConnection, id: u64) {
    let killed: i64 = raw(admin, &["CLIENT", "KILL", "ID", &id.to_string()]).await;
    assert_eq!(killed, 1, "CLIENT KILL ID {id}");
}

/// A small deterministic pseudo-random sequence (no seed from the clock: reproducible).
fn next_rand(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Person {
    id: String,
    name: String,
    age: Option<i64>,
}

impl KvRecord for Person {
    fn kv_key(&self) -> String {
        self.id.clone()
    }
}

fn person(id: &str, name: &str, age: Option<i64>) -> Person {
    Person {
        id: id.into(),
        name: name.into(),
        age,
    }
}

fn cond(field: &str, op: Operator, value: impl Into<Operand>) -> FilterExpr {
    FilterExpr::Cond(Filter::new(field, op, value).expect("filter"))
}

/// The bytes of a JSON value, as the store writes them.
fn json_bytes(v: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("JSON"))
}

// ---------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------

/// The typed API round-trips a record through a Redis hash: insert, exists, count, get,
/// AlreadyExists / NotFound, update, reload, delete; the hash field holds the record's JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_records_round_trip_through_a_hash() {
    let kv = store().await;
    let mut admin = admin().await;
    let people = unique_name("dk_kv_people");
    let other = unique_name("dk_kv_other");
    assert_eq!(kv.kind(), "redis");

    let ada = person("1", "Ada", Some(36));
    kv.insert_record(&people, "1", &ada).await.expect("insert");
    assert!(kv.exists(&people, "1").await.expect("exists"));
    assert!(!kv.exists(&people, "2").await.expect("exists"));
    assert!(!kv.exists(&other, "1").await.expect("exists"));
    assert_eq!(kv.count(&people).await.expect("count"), 1);
    assert_eq!(kv.count(&other).await.expect("count"), 0);
    let got: Person = kv.get_record(&people, "1").await.expect("get");
    assert_eq!(got, ada);

    // The hash field is the record's JSON, readable by any Redis client.
    let stored: Option<String> = raw(&mut admin, &["HGET", &people, "1"]).await;
    let stored: serde_json::Value =
        serde_json::from_str(&stored.expect("HGET: a field")).expect("the field is JSON");
    assert_eq!(stored, json!({"id": "1", "name": "Ada", "age": 36}));
    let kind: String = raw(&mut admin, &["TYPE", &people]).await;
    assert_eq!(kind, "hash");
    assert!(
        kv.schemas().await.expect("schemas").contains(&people),
        "schemas lists {people}"
    );

    let err = kv
        .insert_record(&people, "1", &person("1", "Imposter", None))
        .await
        .expect_err("taken");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(
        err.to_string().contains("'1'") && err.to_string().contains(&people),
        "{err}"
    );
    assert_eq!(
        kv.get_record::<Person>(&people, "1").await.expect("get"),
        ada
    );

    let err = kv
        .update_record(&people, "9", &ada)
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        !kv.exists(&people, "9").await.expect("exists"),
        "update created '9'"
    );
    assert_eq!(kv.count(&people).await.expect("count"), 1);

    let older = person("1", "Ada", Some(37));
    kv.update_record(&people, "1", &older)
        .await
        .expect("update");
    let mut stale = ada.clone();
    kv.reload_record(&people, &mut stale).await.expect("reload");
    assert_eq!(stale, older);
    let stored: Option<String> = raw(&mut admin, &["HGET", &people, "1"]).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stored.expect("field")).expect("JSON"),
        json!({"id": "1", "name": "Ada", "age": 37})
    );

    let err = kv
        .get_record::<Person>(&people, "nope")
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    let mut ghost = person("ghost", "G", None);
    assert_eq!(
        kv.reload_record(&people, &mut ghost)
            .await
            .expect_err("missing")
            .kind(),
        ErrorKind::NotFound
    );

    kv.delete_record(&people, "1").await.expect("delete");
    let err = kv.delete_record(&people, "1").await.expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(kv.count(&people).await.expect("count"), 0);
    // The last field gone, Redis removes the hash itself.
    let exists: i64 = raw(&mut admin, &["EXISTS", &people]).await;
    assert_eq!(exists, 0);
    cleanup(&mut admin, &[&people, &other]).await;
}

/// The bytes-level batch operations: insert_many of thousands (beyond one Lua `unpack`
/// chunk) in one call, all or none even for a taken key at the end of a big batch or a key
/// given twice; get_many in order across several HMGETs; put_many upserts; delete_many
/// answers per key (a key given twice: true once); drop_schema counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_operations_are_all_or_none_and_in_order() {
    let kv = store().await;
    let mut admin = admin().await;
    let s = unique_name("dk_kv_batch");
    let n = 5000;
    let entries: Vec<(String, Bytes)> = (0..n)
        .map(|i| (format!("k{i:05}"), json_bytes(&json!({"i": i}))))
        .collect();
    kv.insert_many(&s, &entries).await.expect("insert 5000");
    assert_eq!(kv.count(&s).await.expect("count"), n as u64);
    let hlen: u64 = raw(&mut admin, &["HLEN", &s]).await;
    assert_eq!(hlen, n as u64);

    // A big batch whose last key is taken writes nothing.
    let mut fresh: Vec<(String, Bytes)> = (0..3000)
        .map(|i| (format!("new{i:05}"), json_bytes(&json!({"new": i}))))
        .collect();
    fresh.push(("k04999".into(), json_bytes(&json!({"new": "clobber"}))));
    let err = kv.insert_many(&s, &fresh).await.expect_err("k04999 taken");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("'k04999'"), "{err}");
    assert_eq!(
        kv.count(&s).await.expect("count"),
        n as u64,
        "a partial batch"
    );
    assert!(!kv.exists(&s, "new00000").await.expect("exists"));
    let kept: Option<String> = raw(&mut admin, &["HGET", &s, "k04999"]).await;
    assert_eq!(kept.as_deref(), Some(r#"{"i":4999}"#));

    // A key given twice in one batch: refused, nothing written.
    let twice = vec![
        ("dup".to_string(), json_bytes(&json!({"a": 1}))),
        ("dup2".to_string(), json_bytes(&json!({"a": 2}))),
        ("dup".to_string(), json_bytes(&json!({"a": 3}))),
    ];
    let err = kv.insert_many(&s, &twice).await.expect_err("dup twice");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(!kv.exists(&s, "dup2").await.expect("exists"));

    // get_many of more keys than one HMGET carries, in the order asked, with misses.
    let mut keys: Vec<String> = (0..n).rev().map(|i| format!("k{i:05}")).collect();
    keys.insert(100, "missing-a".into());
    keys.push("missing-b".into());
    let got = kv.get_many(&s, &keys).await.expect("get_many");
    assert_eq!(got.len(), keys.len());
    for (k, v) in keys.iter().zip(&got) {
        match k.strip_prefix('k') {
            Some(i) => {
                let i: i64 = i.parse().expect("index");
                assert_eq!(
                    v.as_deref(),
                    Some(format!(r#"{{"i":{i}}}"#).as_bytes()),
                    "{k}"
                );
            }
            None => assert!(v.is_none(), "{k}: {v:?}"),
        }
    }
    assert!(kv.get_many(&s, &[]).await.expect("no keys").is_empty());

    // put_many overwrites and adds.
    kv.put_many(
        &s,
        &[
            ("k00000".into(), json_bytes(&json!({"i": "zero"}))),
            ("extra".into(), json_bytes(&json!({"i": "extra"}))),
        ],
    )
    .await
    .expect("put_many");
    assert_eq!(kv.count(&s).await.expect("count"), n as u64 + 1);
    assert_eq!(
        kv.get(&s, "k00000").await.expect("get"),
        Some(json!({"i": "zero"}))
    );

    let deleted = kv
        .delete_many(
            &s,
            &[
                "k00001".into(),
                "nope".into(),
                "k00001".into(),
                "extra".into(),
            ],
        )
        .await
        .expect("delete_many");
    assert_eq!(deleted, [true, false, false, true]);
    assert_eq!(kv.count(&s).await.expect("count"), n as u64 - 1);

    assert_eq!(kv.drop_schema(&s).await.expect("drop"), n as u64 - 1);
    assert_eq!(kv.count(&s).await.expect("count"), 0);
    assert_eq!(kv.drop_schema(&s).await.expect("drop again"), 0);
    let exists: i64 = raw(&mut admin, &["EXISTS", &s]).await;
    assert_eq!(exists, 0);
}

/// A store on another database (`db`) writes there and only there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_db_setting_selects_the_database() {
    let mut c = config(&unique_name("dk_kv_db"));
    c.db = Some("7".into());
    let kv = RedisKeyValueStore::connect(c, ConnectionMode::Single, PoolSettings::default())
        .await
        .expect("connect to db 7");
    assert!(kv.location().ends_with("/7"), "{}", kv.location());
    let s = unique_name("dk_kv_db7");
    kv.insert(&s, "k", &json!({"db": 7})).await.expect("insert");

    let mut db0 = admin().await;
    let in_0: i64 = raw(&mut db0, &["EXISTS", &s]).await;
    assert_eq!(in_0, 0, "written to db 0");
    let mut db7 = redis::Client::open(format!("{}/7", redis_url().trim_end_matches('/')))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("db 7");
    let v: Option<String> = raw(&mut db7, &["HGET", &s, "k"]).await;
    assert_eq!(v.as_deref(), Some(r#"{"db":7}"#));
    cleanup(&mut db7, &[&s]).await;
}

// ---------------------------------------------------------------------------------------
// Scans and filters
// ---------------------------------------------------------------------------------------

/// filter_record has SQL semantics over more records than one scan batch: a NULL age
/// matches neither `age > 30` nor `NOT age > 30`; a field no record has is NULL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_record_has_sql_semantics_across_scan_batches() {
    let kv = store().await;
    let mut admin = admin().await;
    let s = unique_name("dk_kv_filter");
    let n = 2500; // more than two SCAN_BATCHes (1024)
    let mut ages = HashMap::new();
    let entries: Vec<(String, Bytes)> = (0..n)
        .map(|i| {
            let id = format!("p{i:04}");
            let age = (i % 5 != 0).then_some(i64::from(i % 60));
            ages.insert(id.clone(), age);
            let p = person(&id, &format!("n{i}"), age);
            (id, json_bytes(&serde_json::to_value(&p).expect("JSON")))
        })
        .collect();
    kv.insert_many(&s, &entries).await.expect("insert");

    let sorted_keys = |got: Vec<(String, Person)>| -> Vec<String> {
        let mut keys: Vec<String> = got
            .into_iter()
            .map(|(k, p)| {
                assert_eq!(k, p.id);
                assert_eq!(ages[&k], p.age, "{k}");
                k
            })
            .collect();
        keys.sort();
        keys
    };
    let expect = |f: &dyn Fn(Option<i64>) -> bool| -> Vec<String> {
        let mut keys: Vec<String> = ages
            .iter()
            .filter(|(_, a)| f(**a))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    };

    let over_30 = cond("age", Operator::Gt, 30i64);
    let got = sorted_keys(
        kv.filter_record::<Person>(&s, std::slice::from_ref(&over_30))
            .await
            .expect("age > 30"),
    );
    let want = expect(&|a| a.is_some_and(|a| a > 30));
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);

    let not_over_30 = FilterExpr::Not(Box::new(over_30.clone()));
    let got = sorted_keys(
        kv.filter_record::<Person>(&s, &[not_over_30])
            .await
            .expect("NOT age > 30"),
    );
    assert_eq!(got, expect(&|a| a.is_some_and(|a| a <= 30)));
    // NULL ages (every fifth record) are in neither.
    let nulls = expect(&|a| a.is_none());
    assert_eq!(nulls.len(), 500);

    let got = sorted_keys(
        kv.filter_record::<Person>(&s, &[cond("age", Operator::NotExists, Operand::None)])
            .await
            .expect("age IS NULL"),
    );
    assert_eq!(got, nulls);

    // Two filters are ANDed.
    let got = sorted_keys(
        kv.filter_record::<Person>(&s, &[over_30.clone(), cond("age", Operator::Lt, 33i64)])
            .await
            .expect("30 < age < 33"),
    );
    assert_eq!(got, expect(&|a| a.is_some_and(|a| a == 31 || a == 32)));

    let missing = cond("zip", Operator::Eq, "x");
    assert!(
        kv.filter_record::<Person>(&s, &[missing])
            .await
            .expect("zip = x")
            .is_empty()
    );
    assert_eq!(
        kv.filter_record::<Person>(&s, &[])
            .await
            .expect("all")
            .len(),
        n as usize
    );

    // A schema whose ages are all NULL (a batch with no typed age at all).
    let all_null = unique_name("dk_kv_filter_null");
    for i in 0..5 {
        kv.insert_record(
            &all_null,
            &format!("z{i}"),
            &person(&format!("z{i}"), "Z", None),
        )
        .await
        .expect("insert");
    }
    for filter in [over_30.clone(), FilterExpr::Not(Box::new(over_30.clone()))] {
        let got = kv
            .filter_record::<Person>(&all_null, std::slice::from_ref(&filter))
            .await
            .unwrap_or_else(|e| panic!("{filter:?} over NULL ages: {e}"));
        assert!(got.is_empty(), "{filter:?}: {got:?}");
    }
    // An absent hash has no records.
    assert!(
        kv.filter_record::<Person>(&unique_name("dk_kv_none"), &[over_30])
            .await
            .expect("no hash")
            .is_empty()
    );
    cleanup(&mut admin, &[&s, &all_null]).await;
}

/// scan walks a hash of 5000 records in batches of about 100 and yields every key exactly
/// once, with its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_yields_every_key_once_in_batches() {
    let kv = store().await;
    let mut admin = admin().await;
    let s = unique_name("dk_kv_scan");
    let n = 5000;
    let entries: Vec<(String, Bytes)> = (0..n)
        .map(|i| (format!("k{i}"), json_bytes(&json!({"i": i}))))
        .collect();
    kv.put_many(&s, &entries).await.expect("put");

    let batches: Vec<Vec<(String, Bytes)>> = kv
        .scan(&s, 100)
        .await
        .expect("scan")
        .try_collect()
        .await
        .expect("batches");
    let total: usize = batches.iter().map(Vec::len).sum();
    let mut keys = HashSet::new();
    for (k, v) in batches.iter().flatten() {
        assert!(keys.insert(k.clone()), "{k} twice");
        let i: i64 = k[1..].parse().expect("index");
        assert_eq!(v.as_ref(), format!(r#"{{"i":{i}}}"#).as_bytes(), "{k}");
    }
    let hlen: usize = raw(&mut admin, &["HLEN", &s]).await;
    assert_eq!(hlen, n);
    assert_eq!(keys.len(), hlen);
    assert_eq!(total, hlen);
    // Batches of about 100: many of them, none near the whole hash.
    assert!(batches.len() >= 20, "{} batches", batches.len());
    let biggest = batches.iter().map(Vec::len).max().unwrap_or(0);
    assert!(biggest < 1000, "a batch of {biggest}");

    // A hash that does not exist scans as nothing.
    let none: Vec<Vec<(String, Bytes)>> = kv
        .scan(&unique_name("dk_kv_none"), 100)
        .await
        .expect("scan")
        .try_collect()
        .await
        .expect("no batches");
    assert!(none.iter().all(Vec::is_empty), "{none:?}");
    cleanup(&mut admin, &[&s]).await;
}

/// A scan while another writer grows the hash (so that Redis rehashes it under the
/// cursor) still yields every key present from start to end, and no key twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_during_growth_yields_no_key_twice() {
    let kv = store().await;
    let writer = store().await;
    let mut admin = admin().await;
    let s = unique_name("dk_kv_grow");
    let before: Vec<(String, Bytes)> = (0..3000)
        .map(|i| (format!("old{i}"), json_bytes(&json!({"i": i}))))
        .collect();
    kv.put_many(&s, &before).await.expect("put");

    let schema = s.clone();
    let grow = tokio::spawn(async move {
        for chunk in 0..40 {
            let more: Vec<(String, Bytes)> = (0..500)
                .map(|i| (format!("new{chunk}_{i}"), json_bytes(&json!({"c": chunk}))))
                .collect();
            writer.put_many(&schema, &more).await.expect("grow");
            tokio::task::yield_now().await;
        }
    });
    let mut stream = kv.scan(&s, 20).await.expect("scan");
    let mut seen = HashSet::new();
    while let Some(batch) = stream.try_next().await.expect("batch") {
        for (k, _) in batch {
            assert!(seen.insert(k.clone()), "{k} twice");
        }
        // Slow reader: the writer runs between batches.
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    grow.await.expect("writer");
    for (k, _) in &before {
        assert!(seen.contains(k), "{k} missing from the scan");
    }
    let hlen: usize = raw(&mut admin, &["HLEN", &s]).await;
    assert_eq!(hlen, 3000 + 40 * 500);
    cleanup(&mut admin, &[&s]).await;
}

// ---------------------------------------------------------------------------------------
// Concurrent writers
// ---------------------------------------------------------------------------------------

/// Eight writers, each on its own connection, insert the same 200 keys: each key is taken
/// exactly once, and holds the value of the writer whose insert succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_of_one_key_take_it_once() {
    let name = unique_name("dk_kv_ins");
    let mut admin = admin().await;
    let s = unique_name("dk_kv_race");
    let mut tasks = Vec::new();
    for writer in 0..8i64 {
        let kv = store_named(&name, ConnectionMode::Single, PoolSettings::default()).await;
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for k in 0..200 {
                // Writers walk the keys from different starting points.
                let k = ((k + writer * 25) % 200).to_string();
                match kv.insert(&s, &k, &json!({"writer": writer})).await {
                    Ok(()) => won.push(k),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => panic!("writer {writer}, key {k}: {e}"),
                }
            }
            (writer, won, kv)
        }));
    }
    let mut winner = HashMap::new();
    let mut stores = Vec::new();
    for t in tasks {
        let (writer, won, kv) = t.await.expect("task");
        for k in won {
            assert!(
                winner.insert(k.clone(), writer).is_none(),
                "{k} taken twice"
            );
        }
        stores.push(kv);
    }
    // Eight stores, eight connections.
    assert_eq!(named_connections(&mut admin, &name).await.len(), 8);
    assert_eq!(winner.len(), 200);
    let kv = &stores[0];
    assert_eq!(kv.count(&s).await.expect("count"), 200);
    let keys: Vec<String> = (0..200).map(|k| k.to_string()).collect();
    for (k, v) in keys.iter().zip(kv.get_many(&s, &keys).await.expect("get")) {
        let v: serde_json::Value = serde_json::from_slice(&v.expect("value")).expect("JSON");
        assert_eq!(v, json!({"writer": winner[k]}), "{k}");
    }
    cleanup(&mut admin, &[&s]).await;
}

/// Writers insert overlapping batches at once: every batch is written whole or refused
/// whole (no key holds a refused batch's value, every key of a written batch holds its
/// value), and a refusal names a key another batch holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_insert_many_batches_are_all_or_none() {
    let mut admin = admin().await;
    let s = unique_name("dk_kv_batches");
    let key = |i: u64| format!("k{i:03}");
    let mut tasks = Vec::new();
    for writer in 0..6u64 {
        let kv = store_named(
            &unique_name("dk_kv_batcher"),
            ConnectionMode::Single,
            PoolSettings::default(),
        )
        .await;
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = writer + 1;
            let mut outcomes = Vec::new();
            for batch in 0..30u64 {
                // 2 to 10 keys, contiguous or strided, among 300.
                let len = 2 + next_rand(&mut rng) % 9;
                let start = next_rand(&mut rng) % 300;
                let stride = 1 + next_rand(&mut rng) % 3;
                let keys: Vec<String> = (0..len).map(|j| key((start + j * stride) % 300)).collect();
                let value = json_bytes(&json!({"writer": writer, "batch": batch}));
                let entries: Vec<(String, Bytes)> =
                    keys.iter().map(|k| (k.clone(), value.clone())).collect();
                let outcome = match kv.insert_many(&s, &entries).await {
                    Ok(()) => None,
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => Some(e.to_string()),
                    Err(e) => panic!("writer {writer} batch {batch}: {e}"),
                };
                outcomes.push(((writer, batch), keys, outcome));
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.expect("task"));
    }

    let kv = store().await;
    let all: Vec<String> = (0..300).map(key).collect();
    let held: HashMap<String, (u64, u64)> = all
        .iter()
        .zip(kv.get_many(&s, &all).await.expect("get"))
        .filter_map(|(k, v)| {
            let v: serde_json::Value = serde_json::from_slice(&v?).expect("JSON");
            let id = (
                v["writer"].as_u64().expect("writer"),
                v["batch"].as_u64().expect("batch"),
            );
            Some((k.clone(), id))
        })
        .collect();
    let mut written = HashMap::new();
    let (mut ok, mut refused) = (0, 0);
    for (id, keys, outcome) in &outcomes {
        match outcome {
            None => {
                ok += 1;
                for k in keys {
                    assert_eq!(held.get(k), Some(id), "{k} of written batch {id:?}");
                }
                written.insert(*id, keys.clone());
            }
            Some(msg) => {
                refused += 1;
                let named = keys
                    .iter()
                    .find(|k| msg.contains(&format!("'{k}'")))
                    .unwrap_or_else(|| panic!("{msg} names no key of {keys:?}"));
                let holder = held
                    .get(named)
                    .unwrap_or_else(|| panic!("{msg}: {named} is free"));
                assert_ne!(holder, id, "{msg}");
                for k in keys {
                    assert_ne!(held.get(k), Some(id), "{k} holds refused batch {id:?}");
                }
            }
        }
    }
    for (k, id) in &held {
        let keys = written
            .get(id)
            .unwrap_or_else(|| panic!("{k} holds {id:?}, not a written batch"));
        assert!(keys.contains(k), "{k} holds {id:?}, which did not write it");
    }
    // Written batches are disjoint and make up the whole hash.
    let written_keys: usize = written.values().map(Vec::len).sum();
    assert_eq!(kv.count(&s).await.expect("count") as usize, written_keys);
    assert_eq!(held.len(), written_keys);
    assert!(ok > 0 && refused > 0, "{ok} written, {refused} refused");
    cleanup(&mut admin, &[&s]).await;
}

/// Updaters and deleters race on the same keys: an update never brings back a deleted key
/// (every key deleted is absent at the end), each key is deleted once, and every key left
/// holds a value an update that succeeded wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_update_never_resurrects_a_deleted_key() {
    let mut admin = admin().await;
    let s = unique_name("dk_kv_upd_del");
    let n = 200u64;
    let setup = store().await;
    let initial: Vec<(String, Bytes)> = (0..n)
        .map(|k| {
            (
                k.to_string(),
                json_bytes(&json!({"writer": -1, "round": -1})),
            )
        })
        .collect();
    setup.insert_many(&s, &initial).await.expect("insert");

    let mut updaters = Vec::new();
    for writer in 0..4i64 {
        let kv = store_named(
            &unique_name("dk_kv_updater"),
            ConnectionMode::Single,
            PoolSettings::default(),
        )
        .await;
        let s = s.clone();
        updaters.push(tokio::spawn(async move {
            let mut ok = HashSet::new();
            let mut missing = 0;
            for round in 0..5i64 {
                for k in 0..n {
                    let v = json!({"writer": writer, "round": round});
                    match kv.update(&s, &k.to_string(), &v).await {
                        Ok(()) => {
                            ok.insert((k, writer, round));
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => missing += 1,
                        Err(e) => panic!("update {k}: {e}"),
                    }
                }
            }
            (ok, missing)
        }));
    }
    let mut deleters = Vec::new();
    for d in 0..2 {
        let kv = store_named(
            &unique_name("dk_kv_deleter"),
            ConnectionMode::Single,
            PoolSettings::default(),
        )
        .await;
        let s = s.clone();
        deleters.push(tokio::spawn(async move {
            let mut evens: Vec<u64> = (0..n).filter(|k| k % 2 == 0).collect();
            if d == 1 {
                evens.reverse();
            }
            let mut deleted = Vec::new();
            for k in evens {
                // Let the updaters get going on the key first.
                tokio::time::sleep(Duration::from_micros(300)).await;
                if kv.delete(&s, &k.to_string()).await.expect("delete") {
                    deleted.push(k);
                }
            }
            deleted
        }));
    }
    let mut ok = HashSet::new();
    let mut missing = 0;
    for t in updaters {
        let (o, m) = t.await.expect("updater");
        ok.extend(o);
        missing += m;
    }
    let mut deleted = Vec::new();
    for t in deleters {
        deleted.extend(t.await.expect("deleter"));
    }
    deleted.sort();
    let evens: Vec<u64> = (0..n).filter(|k| k % 2 == 0).collect();
    assert_eq!(deleted, evens, "each even key deleted exactly once");
    assert!(
        missing > 0,
        "no update met a deleted key: the race did not happen"
    );

    let keys: Vec<String> = (0..n).map(|k| k.to_string()).collect();
    let got = setup.get_many(&s, &keys).await.expect("get");
    for (k, v) in (0..n).zip(got) {
        if k % 2 == 0 {
            assert!(
                v.is_none(),
                "deleted key {k} came back: {:?}",
                v.map(|b| String::from_utf8_lossy(&b).into_owned())
            );
        } else {
            let v: serde_json::Value =
                serde_json::from_slice(&v.expect("odd key kept")).expect("JSON");
            let id = (
                k,
                v["writer"].as_i64().expect("writer"),
                v["round"].as_i64().expect("round"),
            );
            assert!(
                ok.contains(&id),
                "{k} holds {v}, which no successful update wrote"
            );
        }
    }
    assert_eq!(setup.count(&s).await.expect("count"), n / 2);
    cleanup(&mut admin, &[&s]).await;
}

/// replace with an expected value is a compare-and-set on the exact bytes: it writes only
/// while the record holds them (not equal JSON spelled otherwise), never creates a record;
/// eight concurrent read-modify-CAS incrementers lose no increment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_compare_and_set_needs_the_current_bytes() {
    let kv = store().await;
    let mut admin = admin().await;
    let s = unique_name("dk_kv_cas");
    let v0 = json_bytes(&json!({"n": 0}));
    kv.insert_many(&s, &[("c".into(), v0.clone())])
        .await
        .expect("insert");

    let v1 = json_bytes(&json!({"n": 1}));
    // The same JSON with other bytes is not the current value.
    assert!(
        !kv.replace(&s, "c", Some(br#"{ "n": 0 }"#), v1.clone())
            .await
            .expect("cas spaced")
    );
    assert!(
        !kv.replace(&s, "c", Some(b""), v1.clone())
            .await
            .expect("cas empty")
    );
    assert_eq!(
        kv.get_many(&s, &["c".into()]).await.expect("get")[0],
        Some(v0.clone())
    );
    assert!(
        kv.replace(&s, "c", Some(&v0), v1.clone())
            .await
            .expect("cas")
    );
    assert_eq!(
        kv.get_many(&s, &["c".into()]).await.expect("get")[0],
        Some(v1.clone())
    );
    // The old bytes are stale now.
    assert!(
        !kv.replace(&s, "c", Some(&v0), json_bytes(&json!({"n": 99})))
            .await
            .expect("stale cas")
    );
    let stored: Option<String> = raw(&mut admin, &["HGET", &s, "c"]).await;
    assert_eq!(stored.as_deref(), Some(r#"{"n":1}"#));
    // Without `expected`, an unconditional replace of an existing record.
    assert!(
        kv.replace(&s, "c", None, v0.clone())
            .await
            .expect("replace")
    );
    // A missing record is never created, with or without `expected`.
    assert!(
        !kv.replace(&s, "absent", None, v1.clone())
            .await
            .expect("replace")
    );
    assert!(
        !kv.replace(&s, "absent", Some(b""), v1.clone())
            .await
            .expect("cas")
    );
    assert!(
        !kv.replace(&s, "absent", Some(&v0), v1.clone())
            .await
            .expect("cas")
    );
    assert!(!kv.exists(&s, "absent").await.expect("exists"));
    assert_eq!(kv.count(&s).await.expect("count"), 1);

    // Concurrent incrementers, each on its own connection.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let kv = store().await;
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..25 {
                loop {
                    let cur = kv.get_many(&s, &["c".into()]).await.expect("get")[0]
                        .clone()
                        .expect("c");
                    let n = serde_json::from_slice::<serde_json::Value>(&cur).expect("JSON")["n"]
                        .as_i64()
                        .expect("n");
                    let next = json_bytes(&json!({"n": n + 1}));
                    if kv.replace(&s, "c", Some(&cur), next).await.expect("cas") {
                        break;
                    }
                    conflicts += 1;
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.expect("task");
    }
    assert_eq!(kv.get(&s, "c").await.expect("get"), Some(json!({"n": 200})));
    println!("compare-and-set: {conflicts} conflicts retried");
    cleanup(&mut admin, &[&s]).await;
}

/// The last command the server ran for the connection named `name` (`cmd=` of `CLIENT
/// LIST`).
async fn last_commands(admin: &mut MultiplexedConnection, name: &str) -> Vec<String> {
    let list: String = raw(admin, &["CLIENT", "LIST"]).await;
    let want = format!("name={name}");
    let cmds: Vec<String> = list
        .lines()
        .filter(|line| line.split(' ').any(|f| f == want))
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("cmd=")))
        .map(str::to_string)
        .collect();
    assert!(
        !cmds.is_empty(),
        "no connection named {name} in CLIENT LIST: {list}"
    );
    cmds
}

/// `n` people as stored values, keys `<prefix>00000`…, ages `i % ages`.
fn people(prefix: &str, n: u32, ages: u32) -> Vec<(String, Bytes)> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}{i:05}");
            let p = person(&id, &format!("n{i}"), Some(i64::from(i % ages)));
            (id, json_bytes(&serde_json::to_value(&p).expect("JSON")))
        })
        .collect()
}

/// Every (key, value) a scan of `schema` yields, checking each batch's size.
async fn scanned(kv: &RedisKeyValueStore, schema: &str, batch: usize) -> Vec<(String, Bytes)> {
    let mut stream = kv.scan(schema, batch).await.expect("scan");
    let mut out = Vec::new();
    while let Some(b) = stream.try_next().await.expect("scan batch") {
        assert!(!b.is_empty(), "an empty batch");
        // HSCAN's COUNT is a hint (it may give a few more); HGETALL's rest is cut to size.
        assert!(b.len() <= 2 * batch, "a batch of {} for {batch}", b.len());
        out.extend(b);
    }
    out.sort();
    out
}

/// A hash larger than a batch is read by one HGETALL after the first HSCAN when it is
/// within the WholeHash limits, by HSCAN otherwise (also when the server will not tell the
/// hash's memory): the same records each way, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_read_small_hashes_whole_and_large_ones_by_hscan() {
    let mut admin = admin().await;
    let s = unique_name("dk_kv_whole");
    let n = 3000;
    let mut want = people("p", n, 70);
    store().await.insert_many(&s, &want).await.expect("insert");
    want.sort();

    let huge = 1 << 40;
    for (limits, command) in [
        (WholeHash::default(), "hgetall"),
        (
            WholeHash {
                fields: 3000,
                bytes: huge,
            },
            "hgetall",
        ),
        (
            WholeHash {
                fields: 2999,
                bytes: huge,
            },
            "hscan",
        ),
        (
            WholeHash {
                fields: huge,
                bytes: 1000,
            },
            "hscan",
        ),
    ] {
        let name = unique_name("dk_kv_whole_c");
        let kv = store_named(&name, ConnectionMode::Single, PoolSettings::default())
            .await
            .with_whole_hash(limits);
        let got = scanned(&kv, &s, 500).await;
        assert_eq!(got.len(), want.len(), "{limits:?}");
        assert_eq!(got, want, "{limits:?}");
        let cmds = last_commands(&mut admin, &name).await;
        assert!(cmds.iter().any(|c| c == command), "{limits:?}: {cmds:?}");
        if command == "hscan" {
            assert!(!cmds.iter().any(|c| c == "hgetall"), "{limits:?}: {cmds:?}");
        }
        // filter_record agrees with the data either way.
        let over_60 = kv
            .filter_record::<Person>(&s, &[cond("age", Operator::Gt, 60i64)])
            .await
            .expect("filter");
        assert_eq!(
            over_60.len(),
            (0..n).filter(|i| i % 70 > 60).count(),
            "{limits:?}"
        );
    }

    // A user that may not run MEMORY: the scan does not know the size, walks by HSCAN.
    let user = unique_name("dk_kv_nomem");
    let _: String = raw(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            &user,
            "on",
            ">dk-nomem-pw",
            "~*",
            "&*",
            "+@all",
            "-memory",
        ],
    )
    .await;
    let mut c = config(&unique_name("dk_kv_nomem_c"));
    c.username = Some(user.clone());
    c.password = Some(SecretString::from("dk-nomem-pw".to_string()));
    let name = c.client_name.clone().expect("a name");
    let kv = RedisKeyValueStore::connect(c, ConnectionMode::Single, PoolSettings::default())
        .await
        .expect("connect as the user without MEMORY");
    let got = scanned(&kv, &s, 500).await;
    assert_eq!(got, want);
    let cmds = last_commands(&mut admin, &name).await;
    assert!(cmds.iter().any(|c| c == "hscan"), "{cmds:?}");
    assert!(!cmds.iter().any(|c| c == "hgetall"), "{cmds:?}");
    let _: i64 = raw(&mut admin, &["ACL", "DELUSER", &user]).await;

    // A hash of one batch is one request (HSCAN 0 with the size), however small the limits.
    let small = unique_name("dk_kv_whole_small");
    store()
        .await
        .insert_many(&small, &want[..10])
        .await
        .expect("insert");
    let name = unique_name("dk_kv_whole_c");
    let kv = store_named(&name, ConnectionMode::Single, PoolSettings::default()).await;
    assert_eq!(scanned(&kv, &small, 500).await, want[..10].to_vec());
    let cmds = last_commands(&mut admin, &name).await;
    assert!(
        cmds.iter().any(|c| c == "memory|usage"),
        "one pipeline: {cmds:?}"
    );
    assert!(
        !cmds.iter().any(|c| c == "hgetall" || c == "hscan"),
        "one pipeline: {cmds:?}"
    );

    cleanup(&mut admin, &[&s, &small]).await;
}

/// Over plain TCP a scan reads on a connection of its own, opened as the store's (its user,
/// database and client name) and kept for the next scan; one killed while idle is replaced
/// without an error; one left in the middle of a reply (the reader stopped) is closed, not
/// handed to the next scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_read_on_a_connection_of_their_own() {
    let mut admin = admin().await;
    let name = unique_name("dk_kv_own_c");
    let (user, password) = acl_user();
    let mut c = config(&name);
    c.username = Some(user);
    c.password = Some(SecretString::from(password));
    c.db = Some("5".into());
    let kv = RedisKeyValueStore::connect(c, ConnectionMode::Single, PoolSettings::default())
        .await
        .expect("connect as the ACL user to db 5");
    let s = unique_name("dk_kv_own");
    let mut want = people("o", 5000, 90);
    kv.insert_many(&s, &want).await.expect("insert");
    want.sort();
    assert_eq!(named_connections(&mut admin, &name).await.len(), 1);
    let shared = leased_client_id(kv.manager()).await;

    assert_eq!(scanned(&kv, &s, 500).await, want);
    let ids = named_connections(&mut admin, &name).await;
    assert_eq!(ids.len(), 2, "the store's and the scan's own: {ids:?}");
    let own = ids
        .iter()
        .copied()
        .find(|id| *id != shared)
        .expect("an own connection");
    // It read database 5 (db 0 has no such hash).
    assert_eq!(store().await.count(&s).await.expect("count in db 0"), 0);
    let cmds = last_commands(&mut admin, &name).await;
    assert!(cmds.iter().any(|c| c == "hgetall"), "{cmds:?}");

    // Kept: the next scan runs on the same connection.
    assert_eq!(scanned(&kv, &s, 500).await, want);
    let mut again = named_connections(&mut admin, &name).await;
    again.sort();
    let mut before = ids.clone();
    before.sort();
    assert_eq!(again, before);

    // Killed while idle: the next scan opens another and reads everything.
    kill(&mut admin, own).await;
    assert_eq!(scanned(&kv, &s, 500).await, want);
    let ids = named_connections(&mut admin, &name).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(!ids.contains(&own), "{ids:?}");

    // A reader that stops after the first batch leaves the HGETALL half read: that
    // connection is closed, and the next scan reads everything on a new one.
    let mut stream = kv.scan(&s, 500).await.expect("scan");
    let first = stream
        .try_next()
        .await
        .expect("a batch")
        .expect("not empty");
    assert!(!first.is_empty() && first.len() < 5000, "{}", first.len());
    drop(stream);
    assert_eq!(
        wait_for_connections(&mut admin, &name, 1, Duration::from_secs(5)).await,
        1,
        "the half-read connection was closed"
    );
    assert_eq!(scanned(&kv, &s, 500).await, want);
    let over_80 = kv
        .filter_record::<Person>(&s, &[cond("age", Operator::Gt, 80i64)])
        .await
        .expect("filter");
    assert_eq!(over_80.len(), (0..5000).filter(|i| i % 90 > 80).count());
    kv.drop_schema(&s).await.expect("drop");
}

/// Over TLS the scan reads on the store's own connections (redis-rs): the same records,
/// and no second connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_over_tls_read_on_the_stores_connections() {
    let ca = env_or(
        "DK_TEST_REDIS_TLS_CA",
        "/var/tmp/dataknobs-redis/tls/ca.pem",
    );
    let tls_url = url::Url::parse(&env_or("DK_TEST_REDIS_TLS_URL", "rediss://127.0.0.1:6391"))
        .expect("DK_TEST_REDIS_TLS_URL is a URL");
    let name = unique_name("dk_kv_tls_c");
    let mut c = ConnectorConfig::new(
        tls_url.host_str().expect("a host"),
        tls_url.port().unwrap_or(6380),
    );
    c.client_name = Some(name.clone());
    c.tls = Some(dataknobs::kv::TlsSettings {
        verify: true,
        ca_file: Some(ca.into()),
    });
    let kv = RedisKeyValueStore::connect(c, ConnectionMode::Single, PoolSettings::default())
        .await
        .expect("connect over TLS");
    let s = unique_name("dk_kv_tls");
    let mut want = people("t", 3000, 70);
    kv.insert_many(&s, &want).await.expect("insert");
    want.sort();
    assert_eq!(scanned(&kv, &s, 500).await, want);
    let mut admin = admin().await;
    assert_eq!(
        last_commands(&mut admin, &name).await,
        vec!["hgetall".to_string()]
    );
    let narrow = kv.with_whole_hash(WholeHash {
        fields: 10,
        bytes: 1 << 30,
    });
    assert_eq!(scanned(&narrow, &s, 500).await, want);
    assert_eq!(
        last_commands(&mut admin, &name).await,
        vec!["hscan".to_string()]
    );
    narrow.drop_schema(&s).await.expect("drop");
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

/// A field another client wrote that is not JSON, or JSON of another shape, is a Type
/// error naming the key (and the Rust type), for get and for filter_record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_values_are_type_errors_naming_the_key() {
    let kv = store().await;
    let mut admin = admin().await;
    let s = unique_name("dk_kv_foreign");
    let _: i64 = raw(&mut admin, &["HSET", &s, "junk", "not json"]).await;

    let err = kv
        .get_record::<Person>(&s, "junk")
        .await
        .expect_err("not JSON");
    assert_eq!(err.kind(), ErrorKind::Type, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("'junk'") && msg.contains("not JSON"), "{msg}");
    assert_eq!(
        kv.get(&s, "junk").await.expect_err("not JSON").kind(),
        ErrorKind::Type
    );
    let err = kv
        .filter_record::<Person>(&s, &[])
        .await
        .expect_err("scan of junk");
    assert_eq!(err.kind(), ErrorKind::Type, "{err}");
    assert!(err.to_string().contains("'junk'"), "{err}");
    // The bytes-level API hands the bytes back as they are.
    assert_eq!(
        kv.get_many(&s, &["junk".into()]).await.expect("raw")[0].as_deref(),
        Some(&b"not json"[..])
    );

    let s2 = unique_name("dk_kv_shape");
    let _: i64 = raw(&mut admin, &["HSET", &s2, "x", r#"{"id":"x","name":5}"#]).await;
    let err = kv
        .get_record::<Person>(&s2, "x")
        .await
        .expect_err("wrong shape");
    assert_eq!(err.kind(), ErrorKind::Type, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("'x'") && msg.contains("Person"), "{msg}");
    // As JSON it is fine.
    assert_eq!(
        kv.get(&s2, "x").await.expect("JSON"),
        Some(json!({"id": "x", "name": 5}))
    );
    let err = kv
        .filter_record::<Person>(&s2, &[])
        .await
        .expect_err("wrong shape");
    assert_eq!(err.kind(), ErrorKind::Type, "{err}");
    assert!(err.to_string().contains("Person"), "{err}");

    // A JSON value that is not an object cannot be inserted.
    let err = kv
        .insert(&s2, "y", &json!([1, 2]))
        .await
        .expect_err("array");
    assert_eq!(err.kind(), ErrorKind::Type, "{err}");
    assert!(!kv.exists(&s2, "y").await.expect("exists"));
    cleanup(&mut admin, &[&s, &s2]).await;
}

/// The operations that fail on a key of another type than a hash, each as (name, result).
type Outcomes<'a> = Vec<(&'a str, dataknobs::Result<()>)>;

/// The outcomes that are not a Type error mentioning a hash, one line each.
fn not_type_errors(outcomes: Outcomes<'_>) -> Vec<String> {
    outcomes
        .into_iter()
        .filter_map(|(what, got)| match got {
            Ok(()) => Some(format!("{what}: succeeded")),
            Err(e) if e.kind() != ErrorKind::Type || !e.to_string().contains("hash") => {
                Some(format!("{what}: {:?}: {e}", e.kind()))
            }
            Err(_) => None,
        })
        .collect()
}

/// A string under a fresh schema name (another client's key where a hash is expected).
async fn string_key(admin: &mut MultiplexedConnection) -> String {
    let s = unique_name("dk_kv_string");
    let _: () = raw(admin, &["SET", &s, "x"]).await;
    s
}

/// The string key is untouched, and the store's connection still works.
async fn string_key_unchanged(kv: &RedisKeyValueStore, admin: &mut MultiplexedConnection, s: &str) {
    let kind: String = raw(admin, &["TYPE", s]).await;
    assert_eq!(kind, "string");
    let v: String = raw(admin, &["GET", s]).await;
    assert_eq!(v, "x");
    assert_eq!(
        kv.count(&unique_name("dk_kv_none")).await.expect("count"),
        0
    );
    cleanup(admin, &[s]).await;
}

/// A key under the schema's name that is not a hash (a string) is a Type error mentioning
/// a hash for count, exists, inserts, updates, drop_schema and scans (single commands and
/// scripts), and is left as it was; schemas() does not list it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_type_is_a_type_error() {
    let kv = store().await;
    let mut admin = admin().await;
    let s = string_key(&mut admin).await;
    let two = [
        ("a".to_string(), json_bytes(&json!({"a": 1}))),
        ("b".to_string(), json_bytes(&json!({"b": 1}))),
    ];
    let scanned = match kv.scan(&s, 100).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.map(drop),
        Err(e) => Err(e),
    };
    let outcomes: Outcomes = vec![
        ("count", kv.count(&s).await.map(drop)),
        ("exists", kv.exists(&s, "k").await.map(drop)),
        ("insert", kv.insert(&s, "k", &json!({"a": 1})).await),
        ("insert_many", kv.insert_many(&s, &two).await),
        ("update", kv.update(&s, "k", &json!({"a": 1})).await),
        (
            "compare-and-set",
            kv.replace(&s, "k", Some(b"x"), Bytes::from_static(b"{}"))
                .await
                .map(drop),
        ),
        ("drop_schema", kv.drop_schema(&s).await.map(drop)),
        ("scan", scanned),
        (
            "filter_record",
            kv.filter_record::<Person>(&s, &[]).await.map(drop),
        ),
    ];
    let wrong = not_type_errors(outcomes);
    assert!(
        wrong.is_empty(),
        "not a Type error mentioning a hash:\n{}",
        wrong.join("\n")
    );
    assert!(
        !kv.schemas().await.expect("schemas").contains(&s),
        "a string listed as a schema"
    );
    string_key_unchanged(&kv, &mut admin, &s).await;
}

/// The same for the operations sent as pipelines (get and get_many: HMGET; put_many:
/// HSET; delete and delete_many: HDEL): a Type error mentioning a hash, not a Query error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_type_is_a_type_error_for_pipelined_commands() {
    let kv = store().await;
    let mut admin = admin().await;
    let s = string_key(&mut admin).await;
    let one = [("a".to_string(), json_bytes(&json!({"a": 1})))];
    let outcomes: Outcomes = vec![
        ("get", kv.get(&s, "k").await.map(drop)),
        (
            "get_many",
            kv.get_many(&s, &["a".into(), "b".into()]).await.map(drop),
        ),
        ("put_many", kv.put_many(&s, &one).await),
        ("delete", kv.delete(&s, "k").await.map(drop)),
        (
            "delete_many",
            kv.delete_many(&s, &["a".into()]).await.map(drop),
        ),
    ];
    let wrong = not_type_errors(outcomes);
    string_key_unchanged(&kv, &mut admin, &s).await;
    assert!(
        wrong.is_empty(),
        "not a Type error mentioning a hash:\n{}",
        wrong.join("\n")
    );
}

/// Connects as the ACL user with a wrong password in `mode`: the error, and how long it took.
async fn connect_with_wrong_password(mode: ConnectionMode) -> (dataknobs::Error, Duration) {
    let (user, _) = acl_user();
    let mut c = config(&unique_name("dk_kv_wrongpw"));
    c.username = Some(user);
    c.password = Some(SecretString::from("not-the-password".to_string()));
    let settings = PoolSettings {
        connection_timeout: Duration::from_secs(3),
        ..pool(2)
    };
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        RedisKeyValueStore::connect(c, mode, settings),
    )
    .await
    .unwrap_or_else(|_| panic!("{mode:?}: connect did not return"))
    .expect_err("wrong password");
    let msg = err.to_string();
    assert!(msg.contains("password"), "{mode:?}: {msg}");
    assert!(!msg.contains("not-the-password"), "{mode:?}: {msg}");
    (err, started.elapsed())
}

/// A wrong password is a Config error when connecting, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_config_error_at_connect() {
    let (err, took) = connect_with_wrong_password(ConnectionMode::Single).await;
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// Pooled, a wrong password is a Config error too, at once (not retried until
/// connection_timeout as if the server were down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_config_error_at_connect_when_pooled() {
    let (err, took) = connect_with_wrong_password(ConnectionMode::Pooled).await;
    assert_eq!(err.kind(), ErrorKind::Config, "after {took:?}: {err}");
    assert!(took < Duration::from_secs(2), "took {took:?}: {err}");
}

/// No server on the port: a Connection error, and connect returns (it does not hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_connection_error() {
    for mode in [ConnectionMode::Single, ConnectionMode::Pooled] {
        let mut c = ConnectorConfig::new("127.0.0.1", 1);
        c.client_name = Some(unique_name("dk_kv_port1"));
        let settings = PoolSettings {
            connection_timeout: Duration::from_secs(1),
            ..pool(2)
        };
        let started = Instant::now();
        let err = tokio::time::timeout(
            Duration::from_secs(20),
            RedisKeyValueStore::connect(c, mode, settings),
        )
        .await
        .unwrap_or_else(|_| panic!("{mode:?}: connect to port 1 did not return"))
        .expect_err("port 1");
        assert_eq!(err.kind(), ErrorKind::Connection, "{mode:?}: {err}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{mode:?}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{mode:?}: {:?}",
            started.elapsed()
        );
    }
}

/// A database that is not a number is a Config error before anything connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_that_is_not_a_number_is_a_config_error() {
    for db in ["abc", "-1", "1.5"] {
        for mode in [ConnectionMode::Single, ConnectionMode::Pooled] {
            let mut c = config(&unique_name("dk_kv_baddb"));
            c.db = Some(db.into());
            let err = RedisKeyValueStore::connect(c, mode, pool(2))
                .await
                .expect_err("bad db");
            assert_eq!(err.kind(), ErrorKind::Config, "{db} {mode:?}: {err}");
            assert!(err.to_string().contains(&format!("'{db}'")), "{err}");
        }
    }
}

/// A database the server does not have (it has 64) fails at connect, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_the_server_does_not_have_fails_at_connect() {
    let mut c = config(&unique_name("dk_kv_db64"));
    c.db = Some("64".into());
    let err = RedisKeyValueStore::connect(c, ConnectionMode::Single, PoolSettings::default())
        .await
        .expect_err("db 64");
    let msg = err.to_string();
    assert!(msg.contains("/64") && msg.contains("out of range"), "{msg}");
    let mut c = config(&unique_name("dk_kv_db63"));
    c.db = Some("63".into());
    let kv = RedisKeyValueStore::connect(c, ConnectionMode::Single, PoolSettings::default())
        .await
        .expect("db 63, the last");
    assert_eq!(
        kv.count(&unique_name("dk_kv_none")).await.expect("count"),
        0
    );
}

// ---------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------

/// The ACL user with its password connects (as that user, in both modes), and the password
/// shows in no Debug output, location or error message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_user_authenticates_and_the_password_never_shows() {
    let (user, password) = acl_user();
    let mut admin = admin().await;
    let with_password = |name: &str| {
        let mut c = config(name);
        c.username = Some(user.clone());
        c.password = Some(SecretString::from(password.clone()));
        c
    };
    let hidden = |what: &str, text: &str| {
        assert!(!text.contains(&password), "the password in {what}: {text}");
    };
    let s = unique_name("dk_kv_acl");
    for mode in [ConnectionMode::Single, ConnectionMode::Pooled] {
        let c = with_password(&unique_name("dk_kv_acl"));
        hidden("config Debug", &format!("{c:?}"));
        let kv = RedisKeyValueStore::connect(c, mode, pool(2))
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: the ACL user connects: {e}"));
        let whoami: String = {
            let lease = kv.manager().get().await.expect("lease");
            let mut c = lease.client();
            raw(&mut c, &["ACL", "WHOAMI"]).await
        };
        assert_eq!(whoami, user, "{mode:?}");
        let key = format!("{mode:?}");
        kv.insert_record(&s, &key, &person(&key, "Acl", Some(1)))
            .await
            .expect("insert as the ACL user");
        assert_eq!(
            kv.get_record::<Person>(&s, &key).await.expect("get").name,
            "Acl"
        );
        hidden("store Debug", &format!("{kv:?}"));
        hidden("manager Debug", &format!("{:?}", kv.manager()));
        hidden("config Debug", &format!("{:?}", kv.manager().config()));
        hidden("location", &kv.location());
        assert!(kv.location().contains(&user), "{}", kv.location());
        let lease = kv.manager().get().await.expect("lease");
        hidden("lease Debug", &format!("{lease:?}"));
    }
    // Errors made with the password configured do not show it.
    let mut c = with_password(&unique_name("dk_kv_acl_port1"));
    c.port = 1;
    let err = RedisKeyValueStore::connect(c, ConnectionMode::Single, PoolSettings::default())
        .await
        .expect_err("port 1");
    hidden("error", &err.to_string());
    hidden("error Debug", &format!("{err:?}"));
    let mut c = with_password(&unique_name("dk_kv_acl_wrong"));
    let wrong = format!("{password}-but-wrong");
    c.password = Some(SecretString::from(wrong.clone()));
    let err = RedisKeyValueStore::connect(c, ConnectionMode::Single, PoolSettings::default())
        .await
        .expect_err("wrong password");
    assert!(!err.to_string().contains(&wrong), "{err}");
    assert!(!format!("{err:?}").contains(&wrong), "{err:?}");
    cleanup(&mut admin, &[&s]).await;
}

// ---------------------------------------------------------------------------------------
// Connection managers
// ---------------------------------------------------------------------------------------

/// Single mode: twenty concurrent operations share exactly one server connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_mode_shares_one_server_connection() {
    let name = unique_name("dk_kv_single");
    let mut admin = admin().await;
    // Not connected before first use: made without connect().
    let manager = ConnectorManagerFactory::create_manager::<RedisConnector>(
        config(&name),
        ConnectionMode::Single,
        PoolSettings::default(),
    )
    .expect("manager");
    let kv = Arc::new(RedisKeyValueStore::new(manager));
    assert_eq!(kv.manager().mode(), ConnectionMode::Single);
    assert_eq!(kv.manager().connections(), 0);
    assert!(named_connections(&mut admin, &name).await.is_empty());

    let s = unique_name("dk_kv_single_s");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let kv = kv.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let k = i.to_string();
            kv.insert(&s, &k, &json!({"i": i})).await.expect("insert");
            assert!(kv.exists(&s, &k).await.expect("exists"));
            kv.count(&s).await.expect("count")
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(kv.count(&s).await.expect("count"), 20);
    assert_eq!(kv.manager().connections(), 1);
    assert_eq!(named_connections(&mut admin, &name).await.len(), 1);
    let a = leased_client_id(kv.manager()).await;
    let b = leased_client_id(kv.manager()).await;
    assert_eq!(a, b, "one shared connection");
    cleanup(&mut admin, &[&s]).await;
}

/// Pooled mode with max_connections = 3: twenty concurrent slow operations never open more
/// than three server connections, and do open three.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pooled_mode_opens_at_most_max_connections() {
    let name = unique_name("dk_kv_pool3");
    let kv = Arc::new(store_named(&name, ConnectionMode::Pooled, pool(3)).await);
    assert_eq!(kv.manager().mode(), ConnectionMode::Pooled);
    let mut admin = admin().await;
    let s = unique_name("dk_kv_pool3_s");
    let list = unique_name("dk_kv_pool3_list");

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut sampler_admin = self::admin().await;
    let sampler = {
        let done = done.clone();
        let kv = kv.clone();
        let name = name.clone();
        tokio::spawn(async move {
            let admin = &mut sampler_admin;
            let (mut server_max, mut pool_max) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                server_max = server_max.max(named_connections(admin, &name).await.len());
                pool_max = pool_max.max(kv.manager().connections());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (server_max, pool_max)
        })
    };
    let mut tasks = Vec::new();
    for i in 0..20 {
        let kv = kv.clone();
        let s = s.clone();
        let list = list.clone();
        tasks.push(tokio::spawn(async move {
            // A slow command (the server blocks this connection 150 ms) on a held lease…
            {
                let lease = kv.manager().get().await.expect("lease");
                let mut c = lease.client();
                let _: Option<(String, String)> = raw(&mut c, &["BLPOP", &list, "0.15"]).await;
            }
            // …and ordinary operations through the store.
            kv.insert(&s, &i.to_string(), &json!({"i": i}))
                .await
                .expect("insert");
            kv.count(&s).await.expect("count")
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (server_max, pool_max) = sampler.await.expect("sampler");
    assert_eq!(server_max, 3, "server-side connections at most");
    assert!(pool_max <= 3, "manager.connections() reached {pool_max}");
    assert!(kv.manager().connections() <= 3);
    assert!(named_connections(&mut admin, &name).await.len() <= 3);
    assert_eq!(kv.count(&s).await.expect("count"), 20);
    cleanup(&mut admin, &[&s, &list]).await;
}

/// With every connection leased, get() gives up after about connection_timeout with a
/// Connection error that names max_connections; a released connection is handed out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_mode_waits_at_most_connection_timeout() {
    let name = unique_name("dk_kv_pool_wait");
    let settings = PoolSettings {
        max_connections: 1,
        connection_timeout: Duration::from_millis(300),
        idle_timeout: None,
    };
    let kv = store_named(&name, ConnectionMode::Pooled, settings).await;
    let held = kv.manager().get().await.expect("the one connection");
    let held_id = {
        let mut c = held.client();
        raw::<u64>(&mut c, &["CLIENT", "ID"]).await
    };

    let started = Instant::now();
    let err = kv.manager().get().await.expect_err("all in use");
    let waited = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains("max_connections"), "{err}");
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    // Operations through the store wait the same way.
    let started = Instant::now();
    let err = kv
        .count(&unique_name("dk_kv_none"))
        .await
        .expect_err("all in use");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(started.elapsed() >= Duration::from_millis(290));

    drop(held);
    assert_eq!(leased_client_id(kv.manager()).await, held_id);
    assert_eq!(
        kv.count(&unique_name("dk_kv_none")).await.expect("count"),
        0
    );
    let mut admin = admin().await;
    assert_eq!(named_connections(&mut admin, &name).await.len(), 1);
}

/// Pooled connections idle longer than idle_timeout are closed, on the server too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_mode_closes_idle_connections() {
    let name = unique_name("dk_kv_pool_idle");
    let settings = PoolSettings {
        max_connections: 5,
        connection_timeout: Duration::from_secs(5),
        idle_timeout: Some(Duration::from_millis(500)),
    };
    let kv = store_named(&name, ConnectionMode::Pooled, settings).await;
    let mut admin = admin().await;
    {
        let leases = [
            kv.manager().get().await.expect("1"),
            kv.manager().get().await.expect("2"),
            kv.manager().get().await.expect("3"),
        ];
        let mut ids = HashSet::new();
        for l in &leases {
            let mut c = l.client();
            ids.insert(raw::<u64>(&mut c, &["CLIENT", "ID"]).await);
        }
        assert_eq!(ids.len(), 3, "three connections");
        assert_eq!(kv.manager().connections(), 3);
        assert_eq!(named_connections(&mut admin, &name).await.len(), 3);
    }
    // Released, they stay for a while…
    assert_eq!(kv.manager().connections(), 3);
    // …and are closed once idle longer than idle_timeout.
    let left = wait_for_connections(&mut admin, &name, 0, Duration::from_secs(5)).await;
    assert_eq!(left, 0, "server-side connections left after idle_timeout");
    assert_eq!(kv.manager().connections(), 0);
    // The pool connects again when asked.
    assert_eq!(
        kv.count(&unique_name("dk_kv_none")).await.expect("count"),
        0
    );
    assert_eq!(named_connections(&mut admin, &name).await.len(), 1);
}

/// Kills the store's connection(s) on the server, then checks that reads, writes and
/// leases go through a new connection.
async fn reconnects_after_kill(mode: ConnectionMode) {
    let name = unique_name("dk_kv_kill");
    let kv = store_named(&name, mode, pool(2)).await;
    let mut admin = admin().await;
    let s = unique_name("dk_kv_kill_s");
    kv.insert(&s, "a", &json!({"a": 1})).await.expect("insert");

    // Read after a kill: succeeds on a new connection.
    let old = leased_client_id(kv.manager()).await;
    let ids = named_connections(&mut admin, &name).await;
    assert_eq!(ids, [old], "{mode:?}: the store's connections");
    kill(&mut admin, old).await;
    assert!(
        kv.exists(&s, "a").await.expect("exists after the kill"),
        "{mode:?}"
    );
    let new = leased_client_id(kv.manager()).await;
    assert_ne!(new, old, "{mode:?}");
    assert_eq!(
        named_connections(&mut admin, &name).await,
        [new],
        "{mode:?}"
    );
    assert_eq!(kv.count(&s).await.expect("count"), 1);
    kill(&mut admin, new).await;
    assert_eq!(
        kv.count(&s).await.expect("count after the kill"),
        1,
        "{mode:?}"
    );
    kill(&mut admin, leased_client_id(kv.manager()).await).await;
    assert_eq!(
        kv.get(&s, "a").await.expect("get after the kill"),
        Some(json!({"a": 1})),
        "{mode:?}"
    );

    // A write after a kill is not retried (it may have been applied): it fails with a
    // Connection error, and the next call connects again.
    kill(&mut admin, leased_client_id(kv.manager()).await).await;
    let err = kv
        .insert(&s, "b", &json!({"b": 1}))
        .await
        .expect_err("the write's connection was killed");
    assert_eq!(err.kind(), ErrorKind::Connection, "{mode:?}: {err}");
    assert!(!kv.exists(&s, "b").await.expect("exists"), "{mode:?}");
    kv.insert(&s, "b", &json!({"b": 1}))
        .await
        .expect("insert again");
    assert_eq!(kv.count(&s).await.expect("count"), 2);
    assert_eq!(
        named_connections(&mut admin, &name).await.len(),
        1,
        "{mode:?}"
    );
    cleanup(&mut admin, &[&s]).await;
}

/// Single mode: a connection killed on the server is replaced on the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_mode_reconnects_after_the_connection_is_killed() {
    reconnects_after_kill(ConnectionMode::Single).await;
}

/// Pooled mode: a connection killed on the server is replaced on the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_mode_reconnects_after_the_connection_is_killed() {
    reconnects_after_kill(ConnectionMode::Pooled).await;
}

/// A scan (and so filter_record) after the connection was killed works too, and does not
/// leave the store on the dead connection.
async fn scan_reconnects_after_kill(mode: ConnectionMode) {
    let name = unique_name("dk_kv_kill_scan");
    let kv = store_named(&name, mode, pool(2)).await;
    let mut admin = admin().await;
    let s = unique_name("dk_kv_kill_scan_s");
    kv.insert(&s, "a", &json!({"id": "a", "name": "A", "age": 1}))
        .await
        .expect("insert");
    kill(&mut admin, leased_client_id(kv.manager()).await).await;
    // Three scans in a row: the first must already go through a new connection.
    let mut attempts = Vec::new();
    for _ in 0..3 {
        attempts.push(
            kv.filter_record::<Person>(&s, &[])
                .await
                .map(|got| got.len())
                .map_err(|e| e.to_string()),
        );
    }
    cleanup(&mut admin, &[&s]).await;
    assert!(
        attempts.iter().all(|a| a == &Ok(1)),
        "{mode:?}: filter_record after the kill: {attempts:#?}"
    );
}

/// Single mode: a scan after the connection was killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_mode_scan_reconnects_after_the_connection_is_killed() {
    scan_reconnects_after_kill(ConnectionMode::Single).await;
}

/// Pooled mode: a scan after the connection was killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_mode_scan_reconnects_after_the_connection_is_killed() {
    scan_reconnects_after_kill(ConnectionMode::Pooled).await;
}

/// close() closes the connections not in use, on the server too, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_closes_the_connections() {
    let mut admin = admin().await;
    for mode in [ConnectionMode::Single, ConnectionMode::Pooled] {
        let name = unique_name("dk_kv_close");
        let kv = store_named(&name, mode, pool(3)).await;
        {
            // Pooled: three connections at once; Single: three leases of one.
            let leases = [
                kv.manager().get().await.expect("1"),
                kv.manager().get().await.expect("2"),
                kv.manager().get().await.expect("3"),
            ];
            for l in &leases {
                let mut c = l.client();
                let _: String = raw(&mut c, &["PING"]).await;
            }
        }
        let open = if mode == ConnectionMode::Single { 1 } else { 3 };
        assert_eq!(kv.manager().connections(), open, "{mode:?}");
        assert_eq!(
            named_connections(&mut admin, &name).await.len(),
            open,
            "{mode:?}"
        );
        kv.manager().close().await;
        assert_eq!(kv.manager().connections(), 0, "{mode:?}");
        let left = wait_for_connections(&mut admin, &name, 0, Duration::from_secs(3)).await;
        assert_eq!(left, 0, "{mode:?}: server-side connections after close()");
    }
}
