//! The HDFS key-value store (`dataknobs::kv::HdfsKeyValueStore`: one JSON file per record,
//! `<base>/<schema>/<key>`) and its connector against the real HDFS of scripts/services.sh
//! (`start_hdfs`: a MiniDFSCluster at `DK_TEST_HDFS_URL`, default hdfs://127.0.0.1:9000; this
//! process's user, root, is the superuser).
//!
//! The store-generic tests (modelled on redis_kv.rs: typed records, batches all or none,
//! filter_record semantics, scans, concurrent writers, compare-and-set, bad values, moves)
//! are async functions over `Arc<dyn KeyValueStore>` run for HDFS, for the memory store and
//! for Redis (modules `on_hdfs`, `on_memory`, `on_redis`), with fewer records on HDFS: on a
//! cluster of one datanode a file close often waits 500 ms (hdfs-native's retry of
//! `complete`). The rest is HDFS's own: where the files are, keys and schema names that look
//! like paths, torn reads, lock files, corrupt files, connection managers and errors.
//!
//! Every test works in a directory of its own, `/volnux/dkt-<unique>` (its store's base is
//! `kv` in it), removed at the end. No test ever skips: without HDFS (or Redis, for
//! `on_redis`) they fail, in CI and out of it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dataknobs::kv::hdfs::process_user;
use dataknobs::kv::{
    ConnectionMode, Connector, ConnectorConfig, ConnectorManagerFactory, HdfsConnector,
    HdfsKeyValueStore, KeyValueStore, KeyValueStoreExt, KvRecord, MemoryKeyValueStore,
    MoveConflict, PoolSettings, RedisKeyValueStore,
};
use dataknobs::{ErrorKind, Filter, FilterExpr, Operand, Operator};
use futures::TryStreamExt;
use hdfs_native::{Client, WriteOptions};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Barrier;

use crate::common::unique_name;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn hdfs_url() -> String {
    env_or("DK_TEST_HDFS_URL", "hdfs://127.0.0.1:9000")
}

const HDFS_HINT: &str = "start it with `source scripts/services.sh && start_hdfs`";

/// Host and port of [`hdfs_url`].
fn hdfs_host_port() -> (String, u16) {
    let url = url::Url::parse(&hdfs_url()).expect("DK_TEST_HDFS_URL is a URL");
    (
        url.host_str().expect("a namenode host").to_string(),
        url.port().unwrap_or(8020),
    )
}

fn hdfs_config() -> ConnectorConfig {
    let (host, port) = hdfs_host_port();
    ConnectorConfig::new(host, port)
}

/// A plain hdfs-native client, to look at and tamper with what the store wrote.
fn admin() -> Client {
    dataknobs::kv::hdfs::client_builder()
        .with_url(hdfs_url())
        .build()
        .unwrap_or_else(|e| panic!("an hdfs-native client for {}: {e}", hdfs_url()))
}

/// The names in `dir` (not recursive), sorted.
async fn names_in(c: &Client, dir: &str) -> Vec<String> {
    let mut names: Vec<String> = c
        .list_status(dir, false)
        .await
        .unwrap_or_else(|e| panic!("listing {dir}: {e}"))
        .into_iter()
        .map(|s| s.path.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// A whole file's bytes.
async fn read_all(c: &Client, path: &str) -> Bytes {
    let mut r = c
        .read(path)
        .await
        .unwrap_or_else(|e| panic!("opening {path}: {e}"));
    let len = r.file_length();
    r.read(len)
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Writes `bytes` as a new file `path` (parents created).
async fn write_raw(c: &Client, path: &str, bytes: &[u8]) {
    let mut w = c
        .create(path, WriteOptions::default().create_parent(true))
        .await
        .unwrap_or_else(|e| panic!("creating {path}: {e}"));
    w.write(Bytes::copy_from_slice(bytes))
        .await
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
    w.close()
        .await
        .unwrap_or_else(|e| panic!("closing {path}: {e}"));
}

/// Does `path` exist?
async fn exists(c: &Client, path: &str) -> bool {
    match c.get_file_info(path).await {
        Ok(_) => true,
        Err(hdfs_native::HdfsError::FileNotFound(_)) => false,
        Err(e) => panic!("looking up {path}: {e}"),
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// A directory of one test's own, `/volnux/dkt-<unique>`; its stores' base is `kv` in it.
struct Dir {
    root: String,
    base: String,
}

impl Dir {
    fn new() -> Self {
        let root = format!("/volnux/dkt-{}", unique_name("kv"));
        let base = format!("{root}/kv");
        Dir { root, base }
    }

    /// The directory of `schema` (a plain name, stored as it is).
    fn schema_dir(&self, schema: &str) -> String {
        format!("{}/{schema}", self.base)
    }

    /// A connected store on one shared connection.
    async fn store(&self) -> HdfsKeyValueStore {
        self.store_with(ConnectionMode::Single, PoolSettings::default())
            .await
    }

    async fn store_with(&self, mode: ConnectionMode, pool: PoolSettings) -> HdfsKeyValueStore {
        HdfsKeyValueStore::connect(hdfs_config(), mode, pool, &self.base)
            .await
            .unwrap_or_else(|e| panic!("no HDFS at {} ({e}); {HDFS_HINT}", hdfs_url()))
    }

    /// Removes the directory and everything in it.
    async fn remove(&self) {
        if let Err(e) = admin().delete(&self.root, true).await {
            eprintln!("removing {}: {e}", self.root);
        }
    }
}

fn redis_host_port() -> (String, u16) {
    let url = url::Url::parse(&env_or("DK_TEST_REDIS_URL", "redis://127.0.0.1:6390"))
        .expect("DK_TEST_REDIS_URL is a URL");
    (
        url.host_str().expect("a host").to_string(),
        url.port().unwrap_or(6379),
    )
}

/// Where a store-generic test runs.
enum Target {
    Memory(Arc<MemoryKeyValueStore>),
    Hdfs(Dir),
    Redis,
}

impl Target {
    fn memory() -> Self {
        Target::Memory(Arc::new(MemoryKeyValueStore::new()))
    }

    fn hdfs() -> Self {
        Target::Hdfs(Dir::new())
    }

    fn redis() -> Self {
        Target::Redis
    }

    /// `fast` for the memory store and Redis, `hdfs` on HDFS (where a write takes up to
    /// half a second).
    fn n<T>(&self, fast: T, hdfs: T) -> T {
        match self {
            Target::Hdfs(_) => hdfs,
            _ => fast,
        }
    }

    /// Does an insert_many refused by a concurrent batch always find that batch's key held
    /// at the end? (One script or lock: yes. On HDFS two overlapping batches may each find
    /// one key of the other's and both undo themselves: both are refused, neither written.)
    fn atomic_batches(&self) -> bool {
        !matches!(self, Target::Hdfs(_))
    }

    /// A store over the same records, on a connection of its own (the memory store: itself).
    async fn store(&self) -> Arc<dyn KeyValueStore> {
        match self {
            Target::Memory(m) => m.clone(),
            Target::Hdfs(dir) => Arc::new(dir.store().await),
            Target::Redis => {
                let (host, port) = redis_host_port();
                let store = RedisKeyValueStore::connect(
                    ConnectorConfig::new(host, port),
                    ConnectionMode::Single,
                    PoolSettings::default(),
                )
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "no Redis ({e}); start it with `source scripts/services.sh && start_redis`"
                    )
                });
                Arc::new(store)
            }
        }
    }

    async fn finish(&self) {
        if let Target::Hdfs(dir) = self {
            dir.remove().await;
        }
    }
}

/// A small deterministic pseudo-random sequence (reproducible).
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

/// The bytes of a JSON value, as the stores write them.
fn json_bytes(v: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("JSON"))
}

/// Runs each named store-generic test (an `async fn(&Target)` of this module) on HDFS, on
/// the memory store and on Redis.
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod on_hdfs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = super::Target::hdfs();
                    super::$test(&t).await;
                    t.finish().await;
                }
            )*
        }
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = super::Target::memory();
                    super::$test(&t).await;
                    t.finish().await;
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let t = super::Target::redis();
                    super::$test(&t).await;
                    t.finish().await;
                }
            )*
        }
    };
}

on_every_store!(
    typed_records_round_trip,
    batch_operations_are_all_or_none_and_in_order,
    filter_record_has_sql_semantics,
    scan_yields_every_key_once_in_batches,
    concurrent_inserts_of_one_key_take_it_once,
    concurrent_insert_many_batches_are_all_or_none,
    concurrent_update_never_resurrects_a_deleted_key,
    replace_compare_and_set_needs_the_current_bytes,
    foreign_values_are_type_errors_naming_the_key,
    move_many_is_all_or_nothing,
);

// ---------------------------------------------------------------------------------------
// Store-generic tests (the conformance of every key-value store)
// ---------------------------------------------------------------------------------------

/// The typed API round-trips a record: insert, exists, count, get, AlreadyExists /
/// NotFound, update, reload, delete.
async fn typed_records_round_trip(t: &Target) {
    let kv = t.store().await;
    let people = unique_name("people");
    let other = unique_name("other");

    let ada = person("1", "Ada", Some(36));
    kv.insert_record(&people, "1", &ada).await.expect("insert");
    assert!(kv.exists(&people, "1").await.expect("exists"));
    assert!(!kv.exists(&people, "2").await.expect("exists"));
    assert!(!kv.exists(&other, "1").await.expect("exists"));
    assert_eq!(kv.count(&people).await.expect("count"), 1);
    assert_eq!(kv.count(&other).await.expect("count"), 0);
    let got: Person = kv.get_record(&people, "1").await.expect("get");
    assert_eq!(got, ada);
    assert_eq!(
        kv.get(&people, "1").await.expect("get"),
        Some(json!({"id": "1", "name": "Ada", "age": 36}))
    );
    assert_eq!(kv.get(&people, "2").await.expect("get"), None);
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
    assert!(!kv.delete(&people, "1").await.expect("delete"));
    assert_eq!(kv.count(&people).await.expect("count"), 0);
    assert!(!kv.exists(&people, "1").await.expect("exists"));

    // schemas() lists the schemas that hold records: not one whose last record is gone, nor
    // one where update, delete and compare-and-set found nothing.
    let never = unique_name("never");
    let err = kv
        .update(&never, "k", &json!({"a": 1}))
        .await
        .expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(!kv.delete(&never, "k").await.expect("delete"));
    assert!(
        !kv.replace(&never, "k", Some(b"{}"), json_bytes(&json!({})))
            .await
            .expect("cas")
    );
    assert_eq!(
        kv.delete_many(&never, &["k".into(), "l".into()])
            .await
            .expect("delete_many"),
        [false, false]
    );
    assert_eq!(
        kv.delete_exact(&never, &[("k".into(), json_bytes(&json!({})))])
            .await
            .expect("delete_exact"),
        0
    );
    assert_eq!(kv.count(&never).await.expect("count"), 0);
    let listed = kv.schemas().await.expect("schemas");
    assert!(!listed.contains(&never), "{never} listed: {listed:?}");
    assert!(!listed.contains(&people), "{people} listed: {listed:?}");
    kv.drop_schema(&people).await.expect("drop");
    kv.drop_schema(&never).await.expect("drop");
}

/// The bytes-level batch operations: insert_many all or none (a taken key at the end of a
/// batch, a key given twice), get_many in order with misses, put_many upserts, put_new
/// writes only free keys, delete_exact only matching values, delete_many per key (a key
/// given twice: true once), drop_schema counts.
async fn batch_operations_are_all_or_none_and_in_order(t: &Target) {
    let kv = t.store().await;
    let s = unique_name("batch");
    let n = t.n(5000, 40);
    let key = |i: usize| format!("k{i:05}");
    let entries: Vec<(String, Bytes)> = (0..n)
        .map(|i| (key(i), json_bytes(&json!({"i": i}))))
        .collect();
    kv.insert_many(&s, &entries).await.expect("insert_many");
    assert_eq!(kv.count(&s).await.expect("count"), n as u64);

    // A batch whose last key is taken writes nothing.
    let last = key(n - 1);
    let mut fresh: Vec<(String, Bytes)> = (0..t.n(3000, 30))
        .map(|i| (format!("new{i:05}"), json_bytes(&json!({"new": i}))))
        .collect();
    fresh.push((last.clone(), json_bytes(&json!({"new": "clobber"}))));
    let err = kv.insert_many(&s, &fresh).await.expect_err("last taken");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains(&format!("'{last}'")), "{err}");
    assert_eq!(
        kv.count(&s).await.expect("count"),
        n as u64,
        "a partial batch"
    );
    assert!(!kv.exists(&s, "new00000").await.expect("exists"));
    assert_eq!(
        kv.get(&s, &last).await.expect("get"),
        Some(json!({"i": n - 1}))
    );

    // A key given twice in one batch: refused, nothing written.
    let twice = vec![
        ("dup".to_string(), json_bytes(&json!({"a": 1}))),
        ("dup2".to_string(), json_bytes(&json!({"a": 2}))),
        ("dup".to_string(), json_bytes(&json!({"a": 3}))),
    ];
    let err = kv.insert_many(&s, &twice).await.expect_err("dup twice");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(!kv.exists(&s, "dup").await.expect("exists"));
    assert!(!kv.exists(&s, "dup2").await.expect("exists"));
    kv.insert_many(&s, &[]).await.expect("an empty batch");

    // get_many in the order asked, with misses.
    let mut keys: Vec<String> = (0..n).rev().map(key).collect();
    keys.insert(n.min(100) / 2, "missing-a".into());
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
    let extra = json_bytes(&json!({"i": "extra"}));
    kv.put_many(
        &s,
        &[
            (key(0), json_bytes(&json!({"i": "zero"}))),
            ("extra".into(), extra.clone()),
        ],
    )
    .await
    .expect("put_many");
    assert_eq!(kv.count(&s).await.expect("count"), n as u64 + 1);
    assert_eq!(
        kv.get(&s, &key(0)).await.expect("get"),
        Some(json!({"i": "zero"}))
    );

    // put_new writes free keys only.
    let written = kv
        .put_new(
            &s,
            &[
                (key(0), json_bytes(&json!({"i": "not written"}))),
                ("fresh".into(), json_bytes(&json!({"i": "fresh"}))),
            ],
        )
        .await
        .expect("put_new");
    assert_eq!(written, [false, true]);
    assert_eq!(
        kv.get(&s, &key(0)).await.expect("get"),
        Some(json!({"i": "zero"}))
    );
    assert_eq!(kv.count(&s).await.expect("count"), n as u64 + 2);

    // delete_exact removes a record only while it holds the given bytes.
    let removed = kv
        .delete_exact(
            &s,
            &[
                ("fresh".into(), json_bytes(&json!({"i": "other"}))),
                ("extra".into(), extra),
                ("absent".into(), json_bytes(&json!({}))),
            ],
        )
        .await
        .expect("delete_exact");
    assert_eq!(removed, 1);
    assert!(kv.exists(&s, "fresh").await.expect("exists"));
    assert!(!kv.exists(&s, "extra").await.expect("exists"));

    let deleted = kv
        .delete_many(&s, &[key(1), "nope".into(), key(1), "fresh".into()])
        .await
        .expect("delete_many");
    assert_eq!(deleted, [true, false, false, true]);
    assert_eq!(kv.count(&s).await.expect("count"), n as u64 - 1);

    assert_eq!(kv.drop_schema(&s).await.expect("drop"), n as u64 - 1);
    assert_eq!(kv.count(&s).await.expect("count"), 0);
    assert_eq!(kv.drop_schema(&s).await.expect("drop again"), 0);
}

/// filter_record has SQL semantics: a NULL age matches neither `age > 30` nor
/// `NOT age > 30`; a field no record has is NULL; filters are ANDed.
async fn filter_record_has_sql_semantics(t: &Target) {
    let kv = t.store().await;
    let s = unique_name("filter");
    // More than two scan batches (1024) where writes are cheap.
    let n = t.n(2500, 50);
    let mut ages = HashMap::new();
    let entries: Vec<(String, Bytes)> = (0..n)
        .map(|i| {
            let id = format!("p{i:04}");
            let age = (i % 5 != 0).then_some((i % 60) as i64);
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
    assert!(!want.is_empty());
    assert_eq!(got, want);

    let not_over_30 = FilterExpr::Not(Box::new(over_30.clone()));
    let got = sorted_keys(
        kv.filter_record::<Person>(&s, &[not_over_30])
            .await
            .expect("NOT age > 30"),
    );
    assert_eq!(got, expect(&|a| a.is_some_and(|a| a <= 30)));
    let nulls = expect(&|a| a.is_none());
    assert_eq!(nulls.len(), n / 5);

    let got = sorted_keys(
        kv.filter_record::<Person>(&s, &[cond("age", Operator::NotExists, Operand::None)])
            .await
            .expect("age IS NULL"),
    );
    assert_eq!(got, nulls);

    let got = sorted_keys(
        kv.filter_record::<Person>(&s, &[over_30.clone(), cond("age", Operator::Lt, 33i64)])
            .await
            .expect("30 < age < 33"),
    );
    assert_eq!(got, expect(&|a| a.is_some_and(|a| a == 31 || a == 32)));
    assert!(!got.is_empty());

    assert!(
        kv.filter_record::<Person>(&s, &[cond("zip", Operator::Eq, "x")])
            .await
            .expect("zip = x")
            .is_empty()
    );
    assert_eq!(
        kv.filter_record::<Person>(&s, &[])
            .await
            .expect("all")
            .len(),
        n
    );

    // A schema whose ages are all NULL.
    let all_null = unique_name("filter_null");
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
    // A schema never written has no records.
    assert!(
        kv.filter_record::<Person>(&unique_name("none"), &[over_30])
            .await
            .expect("no schema")
            .is_empty()
    );
    kv.drop_schema(&s).await.expect("drop");
    kv.drop_schema(&all_null).await.expect("drop");
}

/// scan yields every key exactly once, with its value, in batches of about the size asked.
async fn scan_yields_every_key_once_in_batches(t: &Target) {
    let kv = t.store().await;
    let s = unique_name("scan");
    let n = t.n(5000, 60);
    let batch = t.n(100, 7);
    let entries: Vec<(String, Bytes)> = (0..n)
        .map(|i| (format!("k{i}"), json_bytes(&json!({"i": i}))))
        .collect();
    kv.put_many(&s, &entries).await.expect("put");

    let batches: Vec<Vec<(String, Bytes)>> = kv
        .scan(&s, batch)
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
    assert_eq!(keys.len(), n);
    assert_eq!(total, n);
    assert_eq!(kv.count(&s).await.expect("count"), n as u64);
    assert!(
        batches.len() >= n / batch / 3,
        "{} batches of {n} records",
        batches.len()
    );
    let biggest = batches.iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        biggest <= batch * 10 && biggest < n / 2,
        "a batch of {biggest}"
    );

    let none: Vec<Vec<(String, Bytes)>> = kv
        .scan(&unique_name("none"), batch)
        .await
        .expect("scan")
        .try_collect()
        .await
        .expect("no batches");
    assert!(none.iter().all(Vec::is_empty), "{none:?}");
    kv.drop_schema(&s).await.expect("drop");
}

/// Eight writers, each on a connection of its own, insert the same keys at once: each key
/// is taken exactly once, and holds the value of the writer whose insert succeeded.
async fn concurrent_inserts_of_one_key_take_it_once(t: &Target) {
    let s = unique_name("race");
    let keys = t.n(200usize, 16);
    let writers = 8usize;
    let start = Arc::new(Barrier::new(writers));
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let kv = t.store().await;
        let s = s.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut won = Vec::new();
            for k in 0..keys {
                // Writers walk the keys from different starting points.
                let k = ((k + writer * keys / 8) % keys).to_string();
                match kv.insert(&s, &k, &json!({"writer": writer})).await {
                    Ok(()) => won.push(k),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => panic!("writer {writer}, key {k}: {e}"),
                }
            }
            (writer, won)
        }));
    }
    let mut winner = HashMap::new();
    for task in tasks {
        let (writer, won) = task.await.expect("task");
        for k in won {
            assert!(
                winner.insert(k.clone(), writer).is_none(),
                "{k} taken twice"
            );
        }
    }
    assert_eq!(winner.len(), keys);
    let kv = t.store().await;
    assert_eq!(kv.count(&s).await.expect("count"), keys as u64);
    let names: Vec<String> = (0..keys).map(|k| k.to_string()).collect();
    for (k, v) in names
        .iter()
        .zip(kv.get_many(&s, &names).await.expect("get"))
    {
        let v: serde_json::Value = serde_json::from_slice(&v.expect("value")).expect("JSON");
        assert_eq!(v, json!({"writer": winner[k]}), "{k}");
    }
    kv.drop_schema(&s).await.expect("drop");
}

/// Writers insert overlapping batches at once: every batch is written whole or refused
/// whole (no key holds a refused batch's value, every key of a written batch holds its
/// value), and a refusal names one of the batch's keys, held by another batch if any.
async fn concurrent_insert_many_batches_are_all_or_none(t: &Target) {
    let s = unique_name("batches");
    let universe = t.n(300u64, 60);
    let per_writer = t.n(30u64, 15);
    let key = |i: u64| format!("k{i:03}");
    let mut tasks = Vec::new();
    for writer in 0..6u64 {
        let kv = t.store().await;
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = writer + 1;
            let mut outcomes = Vec::new();
            for batch in 0..per_writer {
                // 2 to 10 keys, contiguous or strided.
                let len = 2 + next_rand(&mut rng) % 9;
                let start = next_rand(&mut rng) % universe;
                let stride = 1 + next_rand(&mut rng) % 3;
                let mut keys: Vec<String> = (0..len)
                    .map(|j| key((start + j * stride) % universe))
                    .collect();
                keys.dedup();
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
    for task in tasks {
        outcomes.extend(task.await.expect("task"));
    }

    let kv = t.store().await;
    let all: Vec<String> = (0..universe).map(key).collect();
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
                match held.get(named) {
                    Some(holder) => assert_ne!(holder, id, "{msg}"),
                    None => assert!(!t.atomic_batches(), "{msg}: {named} is free"),
                }
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
    let written_keys: usize = written.values().map(Vec::len).sum();
    assert_eq!(kv.count(&s).await.expect("count") as usize, written_keys);
    assert_eq!(held.len(), written_keys);
    assert!(ok > 0 && refused > 0, "{ok} written, {refused} refused");
    kv.drop_schema(&s).await.expect("drop");
}

/// Updaters and deleters race on the same keys: an update never brings back a deleted key,
/// each key is deleted once, and every key left holds a value a successful update wrote.
/// (The updaters keep going until the deleters are done, so that updates do meet deleted
/// keys.)
async fn concurrent_update_never_resurrects_a_deleted_key(t: &Target) {
    let s = unique_name("upd_del");
    let n = t.n(200u64, 10);
    let rounds = t.n(5i64, 2);
    let pause = t.n(Duration::from_micros(300), Duration::from_millis(150));
    let setup = t.store().await;
    let initial: Vec<(String, Bytes)> = (0..n)
        .map(|k| {
            (
                k.to_string(),
                json_bytes(&json!({"writer": -1, "round": -1})),
            )
        })
        .collect();
    setup.insert_many(&s, &initial).await.expect("insert");

    let deleting = Arc::new(AtomicBool::new(true));
    let mut updaters = Vec::new();
    for writer in 0..4i64 {
        let kv = t.store().await;
        let s = s.clone();
        let deleting = deleting.clone();
        updaters.push(tokio::spawn(async move {
            let mut ok = HashSet::new();
            let mut missing = 0;
            let mut round = 0;
            while round < rounds || deleting.load(Ordering::SeqCst) {
                round += 1;
                for k in 0..n {
                    // Give the deleters a turn (the memory store never waits).
                    tokio::task::yield_now().await;
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
        let kv = t.store().await;
        let s = s.clone();
        deleters.push(tokio::spawn(async move {
            let mut evens: Vec<u64> = (0..n).filter(|k| k % 2 == 0).collect();
            if d == 1 {
                evens.reverse();
            }
            let mut deleted = Vec::new();
            for k in evens {
                // Let the updaters get going on the key first.
                tokio::time::sleep(pause).await;
                if kv.delete(&s, &k.to_string()).await.expect("delete") {
                    deleted.push(k);
                }
            }
            deleted
        }));
    }
    let mut deleted = Vec::new();
    for task in deleters {
        deleted.extend(task.await.expect("deleter"));
    }
    deleting.store(false, Ordering::SeqCst);
    let mut ok = HashSet::new();
    let mut missing = 0;
    for task in updaters {
        let (o, m) = task.await.expect("updater");
        ok.extend(o);
        missing += m;
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
    setup.drop_schema(&s).await.expect("drop");
}

/// replace with an expected value is a compare-and-set on the exact bytes: it writes only
/// while the record holds them, never creates a record; concurrent read-modify-CAS
/// incrementers lose no increment.
async fn replace_compare_and_set_needs_the_current_bytes(t: &Target) {
    let kv = t.store().await;
    let s = unique_name("cas");
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
    assert!(
        !kv.replace(&s, "c", Some(&v0), json_bytes(&json!({"n": 99})))
            .await
            .expect("stale cas")
    );
    assert_eq!(kv.get(&s, "c").await.expect("get"), Some(json!({"n": 1})));
    assert!(
        kv.replace(&s, "c", None, v0.clone())
            .await
            .expect("replace")
    );
    // A missing record is never created, with or without `expected`.
    for expected in [None, Some(&b""[..]), Some(&v0[..])] {
        assert!(
            !kv.replace(&s, "absent", expected, v1.clone())
                .await
                .expect("replace")
        );
    }
    assert!(!kv.exists(&s, "absent").await.expect("exists"));
    assert_eq!(kv.count(&s).await.expect("count"), 1);

    // Concurrent incrementers, each on a connection of its own.
    let (incrementers, each) = t.n((8i64, 25), (4, 4));
    let mut tasks = Vec::new();
    for _ in 0..incrementers {
        let kv = t.store().await;
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            for _ in 0..each {
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
    for task in tasks {
        conflicts += task.await.expect("task");
    }
    assert_eq!(
        kv.get(&s, "c").await.expect("get"),
        Some(json!({"n": incrementers * each}))
    );
    println!("compare-and-set: {conflicts} conflicts retried");
    kv.drop_schema(&s).await.expect("drop");
}

/// A stored value that is not JSON, or JSON of another shape, is a Type error naming the
/// key for get, get_record and filter_record; the bytes API hands it back as it is; a
/// JSON value that is not an object is not inserted.
async fn foreign_values_are_type_errors_naming_the_key(t: &Target) {
    let kv = t.store().await;
    let s = unique_name("foreign");
    kv.put_many(&s, &[("junk".into(), Bytes::from_static(b"not json"))])
        .await
        .expect("put bytes");

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
    assert_eq!(
        kv.get_many(&s, &["junk".into()]).await.expect("raw")[0].as_deref(),
        Some(&b"not json"[..])
    );

    let s2 = unique_name("shape");
    kv.put_many(
        &s2,
        &[("x".into(), Bytes::from_static(br#"{"id":"x","name":5}"#))],
    )
    .await
    .expect("put");
    let err = kv
        .get_record::<Person>(&s2, "x")
        .await
        .expect_err("wrong shape");
    assert_eq!(err.kind(), ErrorKind::Type, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("'x'") && msg.contains("Person"), "{msg}");
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

    let err = kv
        .insert(&s2, "y", &json!([1, 2]))
        .await
        .expect_err("array");
    assert_eq!(err.kind(), ErrorKind::Type, "{err}");
    assert!(!kv.exists(&s2, "y").await.expect("exists"));
    kv.drop_schema(&s).await.expect("drop");
    kv.drop_schema(&s2).await.expect("drop");
}

/// move_many moves records to new keys all or nothing: a changed old record or a taken new
/// key writes nothing; two records can swap keys.
async fn move_many_is_all_or_nothing(t: &Target) {
    let kv = t.store().await;
    let s = unique_name("moves");
    let v = |n: i64| json_bytes(&json!({"n": n}));
    kv.insert_many(
        &s,
        &[("a".into(), v(1)), ("b".into(), v(2)), ("c".into(), v(3))],
    )
    .await
    .expect("insert");
    let state = || async {
        let keys: Vec<String> = ["a", "b", "c", "x", "y"].map(String::from).to_vec();
        kv.get_many(&s, &keys).await.expect("get")
    };
    let before = state().await;

    // `b` does not hold what the mover expects: nothing moves, `a` included.
    let conflict = kv
        .move_many(
            &s,
            &[
                ("a".into(), v(1), "x".into(), v(10)),
                ("b".into(), v(99), "y".into(), v(20)),
            ],
        )
        .await
        .expect("move");
    assert_eq!(conflict, Some(MoveConflict::Changed("b".into())));
    assert_eq!(state().await, before);

    // `c` is taken and not moving.
    let conflict = kv
        .move_many(
            &s,
            &[
                ("a".into(), v(1), "x".into(), v(10)),
                ("b".into(), v(2), "c".into(), v(20)),
            ],
        )
        .await
        .expect("move");
    assert_eq!(conflict, Some(MoveConflict::Taken("c".into())));
    assert_eq!(state().await, before);

    // A move, and a swap of two keys, in one call.
    let conflict = kv
        .move_many(
            &s,
            &[
                ("a".into(), v(1), "x".into(), v(10)),
                ("b".into(), v(2), "c".into(), v(30)),
                ("c".into(), v(3), "b".into(), v(20)),
            ],
        )
        .await
        .expect("move");
    assert_eq!(conflict, None);
    assert_eq!(
        state().await,
        [None, Some(v(20)), Some(v(30)), Some(v(10)), None]
    );
    assert_eq!(kv.count(&s).await.expect("count"), 3);
    kv.drop_schema(&s).await.expect("drop");
}

// ---------------------------------------------------------------------------------------
// HDFS: files and names
// ---------------------------------------------------------------------------------------

/// Each record is one file `<base>/<schema>/<key>` holding its JSON, readable by any HDFS
/// client; no temporary or lock file is left behind; drop_schema removes the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_json_files_under_base_and_schema() {
    let dir = Dir::new();
    let kv = dir.store().await;
    let admin = admin();
    assert_eq!(kv.kind(), "hdfs");
    assert_eq!(dataknobs::kv::hdfs::DEFAULT_BASE, "/volnux");
    assert_eq!(kv.base(), dir.base);
    assert_eq!(
        kv.location(),
        format!("{}{}", hdfs_url().trim_end_matches('/'), dir.base)
    );

    let s = "people";
    let records = [
        ("1", json!({"id": "1", "name": "Ada", "age": 36})),
        ("b", json!({"id": "b", "name": "Bob", "age": null})),
        ("it's", json!({"id": "it's", "name": "Quote"})),
    ];
    for (k, v) in &records {
        kv.insert(s, k, v).await.expect("insert");
    }
    let folder = dir.schema_dir(s);
    let statuses = admin.list_status(&folder, false).await.expect("list");
    assert!(statuses.iter().all(|st| !st.isdir), "{statuses:?}");
    // One file per key, named by the key (percent-encoded where it must be).
    assert_eq!(names_in(&admin, &folder).await, ["1", "b", "it%27s"]);
    for (k, v) in &records {
        let file = if *k == "it's" { "it%27s" } else { k };
        let bytes = read_all(&admin, &format!("{folder}/{file}")).await;
        assert_eq!(bytes, json_bytes(v), "{k}");
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(&parsed, v);
    }

    // An update replaces the file's content; nothing else is left in the directory.
    kv.update(s, "1", &json!({"id": "1", "name": "Ada", "age": 37}))
        .await
        .expect("update");
    kv.replace(
        s,
        "b",
        Some(&json_bytes(&records[1].1)),
        json_bytes(&json!({"n": 2})),
    )
    .await
    .expect("cas");
    assert_eq!(
        read_all(&admin, &format!("{folder}/1")).await,
        json_bytes(&json!({"id": "1", "name": "Ada", "age": 37}))
    );
    assert_eq!(
        read_all(&admin, &format!("{folder}/b")).await,
        json_bytes(&json!({"n": 2}))
    );
    assert_eq!(names_in(&admin, &folder).await, ["1", "b", "it%27s"]);
    assert_eq!(kv.schemas().await.expect("schemas"), [s]);

    // A file another client writes is a record of the store.
    write_raw(&admin, &format!("{folder}/from%20outside"), br#"{"x":1}"#).await;
    assert_eq!(
        kv.get(s, "from outside").await.expect("get"),
        Some(json!({"x": 1}))
    );
    assert_eq!(kv.count(s).await.expect("count"), 4);
    // Hidden files (a writer's temporary or lock files) are not records.
    write_raw(&admin, &format!("{folder}/.tmp.left-behind"), b"{}").await;
    assert_eq!(kv.count(s).await.expect("count"), 4);
    let scanned: Vec<Vec<(String, Bytes)>> = kv
        .scan(s, 10)
        .await
        .expect("scan")
        .try_collect()
        .await
        .expect("scan");
    let mut keys: Vec<String> = scanned.into_iter().flatten().map(|(k, _)| k).collect();
    keys.sort();
    assert_eq!(keys, ["1", "b", "from outside", "it's"]);

    assert_eq!(kv.drop_schema(s).await.expect("drop"), 4);
    assert!(!exists(&admin, &folder).await, "{folder} is still there");
    assert!(kv.schemas().await.expect("schemas").is_empty());
    dir.remove().await;
}

/// A record file that fits in 1 MiB is written with 1 MiB blocks (insert, insert_many,
/// update): while a block is open the namenode and the datanode count a whole block as taken,
/// and with the default 128 MiB a batch of 1024 small records in flight was refused for want
/// of 128 GiB free. A larger record keeps the server's default block size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_record_files_are_written_with_small_blocks() {
    let dir = Dir::new();
    let kv = dir.store().await;
    let admin = admin();
    let s = "blocks";
    kv.insert(s, "one", &json!({"n": 1})).await.expect("insert");
    let batch: Vec<(String, Bytes)> = (0..3)
        .map(|i| (format!("many{i}"), json_bytes(&json!({"n": i}))))
        .collect();
    kv.insert_many(s, &batch).await.expect("insert_many");
    kv.update(s, "one", &json!({"n": 2})).await.expect("update");
    let big = json!({"text": "x".repeat(3 << 19)});
    kv.insert(s, "big", &big).await.expect("a 1.5 MiB record");

    let folder = dir.schema_dir(s);
    let statuses = admin.list_status(&folder, false).await.expect("list");
    let block = |name: &str| {
        let st = statuses
            .iter()
            .find(|st| st.path.ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("{name} in {statuses:?}"));
        st.blocksize
            .unwrap_or_else(|| panic!("no block size: {st:?}"))
    };
    for name in ["one", "many0", "many1", "many2"] {
        assert_eq!(block(name), dataknobs::kv::hdfs::RECORD_BLOCK, "{name}");
    }
    assert!(
        block("big") > dataknobs::kv::hdfs::RECORD_BLOCK,
        "{statuses:?}"
    );
    assert_eq!(kv.get(s, "big").await.expect("get"), Some(big));
    assert_eq!(kv.get(s, "one").await.expect("get"), Some(json!({"n": 2})));
    dir.remove().await;
}

/// Concurrent batches over two stores share one cap of record transfers in flight
/// (`WRITERS`): eight `insert_many` calls of 128 writes each once opened 1024 datanode
/// connections at once, overflowed the datanode's accept queue and failed with "Datanode
/// connection closed while waiting for ack". Every batch here goes through whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_share_one_cap_of_transfers_in_flight() {
    use dataknobs::kv::hdfs::{WRITERS, peak_transfers};
    let dir = Dir::new();
    let stores = [dir.store().await, dir.store().await];
    let s = "burst";
    let batches: Vec<Vec<(String, Bytes)>> = (0..4)
        .map(|b| {
            (0..160)
                .map(|i| (format!("b{b}r{i:03}"), json_bytes(&json!({"b": b, "i": i}))))
                .collect()
        })
        .collect();
    let inserted = futures::future::join_all(
        batches
            .iter()
            .enumerate()
            .map(|(b, batch)| stores[b % 2].insert_many(s, batch)),
    )
    .await;
    for (b, r) in inserted.into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("batch {b}: {e}"));
    }
    let peak = peak_transfers();
    assert!(
        peak <= WRITERS,
        "{peak} transfers in flight at once, more than {WRITERS}"
    );
    assert!(peak > 1, "the batches ran one write at a time ({peak})");
    let keys: Vec<String> = batches.iter().flatten().map(|(k, _)| k.clone()).collect();
    let got = futures::future::join_all(
        keys.chunks(160)
            .enumerate()
            .map(|(b, chunk)| stores[b % 2].get_many(s, chunk)),
    )
    .await;
    let got: Vec<Option<Bytes>> = got.into_iter().flat_map(|r| r.expect("get_many")).collect();
    let want: Vec<Option<Bytes>> = batches
        .iter()
        .flatten()
        .map(|(_, v)| Some(v.clone()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(stores[0].count(s).await.expect("count"), 640);
    assert!(peak_transfers() <= WRITERS, "{}", peak_transfers());
    dir.remove().await;
}

/// Keys that look like paths are ordinary keys: each is one file inside its schema's
/// directory, round-trips through insert, get, exists, scan, update and delete, and nothing
/// is written anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_look_like_paths_stay_in_their_directory() {
    let dir = Dir::new();
    let kv = dir.store().await;
    let admin = admin();
    let s = "paths";
    let keys = [
        "../escape",
        "a/b/../c",
        "%2e%2e",
        "/etc/passwd",
        ".",
        "..",
        ".hidden",
    ];
    for k in keys {
        kv.insert(s, k, &json!({"key": k}))
            .await
            .unwrap_or_else(|e| panic!("insert {k:?}: {e}"));
    }
    for k in keys {
        assert!(kv.exists(s, k).await.expect("exists"), "{k:?}");
        assert_eq!(
            kv.get(s, k).await.expect("get"),
            Some(json!({"key": k})),
            "{k:?}"
        );
        let err = kv
            .insert(s, k, &json!({"again": true}))
            .await
            .expect_err("taken");
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{k:?}: {err}");
    }
    assert_eq!(kv.count(s).await.expect("count"), keys.len() as u64);
    let scanned: Vec<Vec<(String, Bytes)>> = kv
        .scan(s, 3)
        .await
        .expect("scan")
        .try_collect()
        .await
        .expect("scan");
    let got: BTreeSet<String> = scanned.into_iter().flatten().map(|(k, _)| k).collect();
    let want: BTreeSet<String> = keys.iter().map(|k| k.to_string()).collect();
    assert_eq!(got, want);
    kv.update(s, "..", &json!({"updated": true}))
        .await
        .expect("update ..");
    assert_eq!(
        kv.get(s, "..").await.expect("get"),
        Some(json!({"updated": true}))
    );

    // One visible file per key in the schema's directory.
    let folder = dir.schema_dir(s);
    let files = names_in(&admin, &folder).await;
    assert_eq!(files.len(), keys.len(), "{files:?}");
    for f in &files {
        assert!(
            !f.starts_with('.') && !f.contains('/'),
            "file {f:?} in {folder}"
        );
    }

    // Nothing outside <base>/<schema>/, in the test's directory or anywhere else.
    let check_listing = |paths: Vec<String>| {
        for p in paths {
            if p == dir.root || p.starts_with(&format!("{}/", dir.root)) {
                let inside = p == dir.root
                    || p == dir.base
                    || p == folder
                    || p.strip_prefix(&format!("{folder}/"))
                        .is_some_and(|f| !f.contains('/'));
                assert!(inside, "{p} is outside {folder}");
            } else {
                let name = p.rsplit('/').next().unwrap_or_default();
                assert!(
                    !["escape", "passwd", ".hidden", "%2e%2e"].contains(&name),
                    "{p} written outside {}",
                    dir.base
                );
                assert_ne!(p, "/etc", "{p}");
            }
        }
    };
    let parent = admin
        .list_status(&dir.root, true)
        .await
        .expect("list the base's parent");
    check_listing(parent.into_iter().map(|st| st.path).collect());
    let everything = admin.list_status("/", true).await.expect("list /");
    check_listing(everything.into_iter().map(|st| st.path).collect());
    assert!(!exists(&admin, "/etc/passwd").await);
    assert!(!exists(&admin, "/volnux/escape").await);
    assert!(!exists(&admin, &format!("{}/escape", dir.base)).await);

    for k in keys {
        assert!(kv.delete(s, k).await.expect("delete"), "{k:?}");
        assert!(!kv.exists(s, k).await.expect("exists"), "{k:?}");
        assert!(!kv.delete(s, k).await.expect("delete"), "{k:?} twice");
    }
    assert_eq!(kv.count(s).await.expect("count"), 0);
    assert!(names_in(&admin, &folder).await.is_empty());
    dir.remove().await;
}

/// Schema names that look like paths are refused by every operation, with an error naming
/// the store's location, and create nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_names_that_look_like_paths_are_refused() {
    let dir = Dir::new();
    let kv = dir.store().await;
    let admin = admin();
    kv.insert("ok", "k", &json!({"a": 1}))
        .await
        .expect("insert");
    let at = kv.location();
    for bad in ["..", "a/b", "/abs", "%2e%2e", ".x", "", "a\\b"] {
        let scanned = match kv.scan(bad, 10).await {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.map(drop),
            Err(e) => Err(e),
        };
        let outcomes: Vec<(&str, dataknobs::Result<()>)> = vec![
            ("insert", kv.insert(bad, "k", &json!({"a": 1})).await),
            ("get", kv.get(bad, "k").await.map(drop)),
            ("exists", kv.exists(bad, "k").await.map(drop)),
            ("count", kv.count(bad).await.map(drop)),
            ("update", kv.update(bad, "k", &json!({"a": 2})).await),
            ("delete", kv.delete(bad, "k").await.map(drop)),
            (
                "put_many",
                kv.put_many(bad, &[("k".into(), json_bytes(&json!({})))])
                    .await,
            ),
            ("drop_schema", kv.drop_schema(bad).await.map(drop)),
            ("scan", scanned),
        ];
        for (what, got) in outcomes {
            let err = got.expect_err(&format!("{what} in schema {bad:?}"));
            let msg = err.to_string();
            assert!(msg.contains(&at), "{what} {bad:?}: {msg}");
            assert!(msg.contains(&format!("'{bad}'")), "{what} {bad:?}: {msg}");
        }
    }
    // Only the good schema's directory and file exist.
    let paths: Vec<String> = admin
        .list_status(&dir.root, true)
        .await
        .expect("list")
        .into_iter()
        .map(|st| st.path)
        .collect();
    let mut paths = paths;
    paths.sort();
    assert_eq!(
        paths,
        [
            dir.base.clone(),
            format!("{}/ok", dir.base),
            format!("{}/ok/k", dir.base)
        ]
    );
    assert_eq!(kv.schemas().await.expect("schemas"), ["ok"]);
    dir.remove().await;
}

/// A base directory with `..` (or relative) is refused, by new and by connect, before
/// anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_path_with_dot_dot_is_refused() {
    for base in ["/volnux/../etc", "/volnux/./x", "volnux", "/volnux/%2e%2e"] {
        let manager = ConnectorManagerFactory::create_manager::<HdfsConnector>(
            hdfs_config(),
            ConnectionMode::Single,
            PoolSettings::default(),
        )
        .expect("manager");
        let err = HdfsKeyValueStore::new(manager, base).expect_err(base);
        assert_eq!(err.kind(), ErrorKind::Config, "{base}: {err}");
        assert!(err.to_string().contains(base), "{err}");
        let err = HdfsKeyValueStore::connect(
            hdfs_config(),
            ConnectionMode::Single,
            PoolSettings::default(),
            base,
        )
        .await
        .expect_err(base);
        assert_eq!(err.kind(), ErrorKind::Config, "{base}: {err}");
        assert!(err.to_string().contains(base), "{err}");
    }
    assert!(!exists(&admin(), "/etc").await);
    // A trailing slash is fine.
    let dir = Dir::new();
    let kv = HdfsKeyValueStore::connect(
        hdfs_config(),
        ConnectionMode::Single,
        PoolSettings::default(),
        &format!("{}/", dir.base),
    )
    .await
    .expect("a base with a trailing /");
    assert_eq!(kv.base(), dir.base);
}

// ---------------------------------------------------------------------------------------
// HDFS: writers
// ---------------------------------------------------------------------------------------

/// Updates write a temporary file and rename it over the record: a reader looping on get
/// while a writer updates one key 30 times always sees a complete value that was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_never_sees_a_torn_update() {
    let dir = Dir::new();
    let writer = dir.store().await;
    let reader = dir.store().await;
    let s = "torn";
    // Values of different lengths, so that a partial read cannot pass for another.
    let value = |i: u64| json!({"v": i, "pad": "x".repeat((i as usize % 7) * 700)});
    writer.insert(s, "k", &value(0)).await.expect("insert");
    let updates = 30u64;
    let done = Arc::new(AtomicBool::new(false));
    let reads = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut reads = 0usize;
            let mut seen = BTreeSet::new();
            while !done.load(Ordering::SeqCst) {
                // A torn or empty file would be a Type error (not JSON) or a missing record.
                let v = reader
                    .get(s, "k")
                    .await
                    .unwrap_or_else(|e| panic!("read {reads}: {e}"))
                    .unwrap_or_else(|| panic!("read {reads}: the record is missing"));
                let i = v["v"].as_u64().expect("v");
                assert!(i <= updates, "{v}");
                assert_eq!(v, value(i), "read {reads}");
                seen.insert(i);
                reads += 1;
            }
            (reads, seen)
        })
    };
    let started = Instant::now();
    for i in 1..=updates {
        writer.update(s, "k", &value(i)).await.expect("update");
    }
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let (reads, seen) = reads.await.expect("reader");
    println!(
        "{updates} updates in {took:?}; {reads} reads saw {} versions",
        seen.len()
    );
    assert!(reads >= 10, "only {reads} reads");
    assert!(seen.len() >= 3, "the reader saw versions {seen:?}");
    assert_eq!(writer.get(s, "k").await.expect("get"), Some(value(updates)));
    // No temporary or lock file left.
    assert_eq!(names_in(&admin(), &dir.schema_dir(s)).await, ["k"]);
    dir.remove().await;
}

/// Eight tasks, each with a store of its own, insert one key at the same moment: exactly
/// one succeeds, the others get AlreadyExists, and the file holds the winner's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_inserts_of_one_key_one_wins() {
    let dir = Dir::new();
    let s = "solo";
    let start = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let kv = dir.store().await;
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            kv.insert(s, "one", &json!({"writer": i})).await
        }));
    }
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(()) => winners.push(i),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "writer {i}: {e}");
                assert!(e.to_string().contains("'one'"), "{e}");
            }
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let admin = admin();
    let folder = dir.schema_dir(s);
    assert_eq!(
        read_all(&admin, &format!("{folder}/one")).await,
        json_bytes(&json!({"writer": winners[0]}))
    );
    // The losers' temporary files are gone.
    assert_eq!(names_in(&admin, &folder).await, ["one"]);
    dir.remove().await;
}

/// A record file that is not JSON (written by another client) is a Type error naming the
/// key, for get and get_record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_file_is_a_type_error_naming_the_key() {
    let dir = Dir::new();
    let kv = dir.store().await;
    let admin = admin();
    let s = "corrupt";
    kv.insert(s, "good", &json!({"id": "good", "name": "G"}))
        .await
        .expect("insert");
    let folder = dir.schema_dir(s);
    write_raw(&admin, &format!("{folder}/bad"), b"{\"id\": \"bad\", \"na").await;
    write_raw(
        &admin,
        &format!("{folder}/bin%20ary"),
        &[0xff, 0xfe, 0x00, 0x01],
    )
    .await;
    for key in ["bad", "bin ary"] {
        let err = kv.get(s, key).await.expect_err("not JSON");
        assert_eq!(err.kind(), ErrorKind::Type, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("'{key}'")) && msg.contains("not JSON"),
            "{msg}"
        );
        let err = kv.get_record::<Person>(s, key).await.expect_err("not JSON");
        assert_eq!(err.kind(), ErrorKind::Type, "{err}");
        assert!(err.to_string().contains(&format!("'{key}'")), "{err}");
    }
    let err = kv
        .filter_record::<Person>(s, &[])
        .await
        .expect_err("a scan over the corrupt file");
    assert_eq!(err.kind(), ErrorKind::Type, "{err}");
    // The other record is still fine, and the corrupt one can be replaced.
    assert_eq!(
        kv.get_record::<Person>(s, "good").await.expect("good"),
        person("good", "G", None)
    );
    kv.update(s, "bad", &json!({"id": "bad", "name": "B"}))
        .await
        .expect("update the corrupt record");
    assert_eq!(
        kv.get_record::<Person>(s, "bad").await.expect("fixed"),
        person("bad", "B", None)
    );
    dir.remove().await;
}

/// Keys no file can be named after (empty, or longer than HDFS's 255-byte names once
/// percent-encoded) are Query errors naming the key, and a batch holding one writes
/// nothing; the longest key that fits round-trips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_too_long_for_a_file_name_are_refused() {
    let dir = Dir::new();
    let kv = dir.store().await;
    let s = "long";
    let longest = "k".repeat(255);
    // Three bytes a character once encoded.
    let too_long = "\u{e9}".repeat(128);
    for bad in ["", "x".repeat(256).as_str(), too_long.as_str()] {
        let err = kv
            .insert(s, bad, &json!({"a": 1}))
            .await
            .expect_err("no such file name");
        assert_eq!(err.kind(), ErrorKind::Query, "{err}");
        assert!(err.to_string().contains(&format!("'{bad}'")), "{err}");
        assert!(kv.get(s, bad).await.is_err(), "get {bad:?}");
    }
    let batch = vec![
        ("fine".to_string(), json_bytes(&json!({"a": 1}))),
        ("x".repeat(300), json_bytes(&json!({"a": 2}))),
    ];
    assert!(kv.insert_many(s, &batch).await.is_err());
    assert!(kv.put_many(s, &batch).await.is_err());
    assert!(!kv.exists(s, "fine").await.expect("exists"));
    kv.insert(s, &longest, &json!({"long": true}))
        .await
        .expect("255 bytes");
    assert_eq!(
        kv.get(s, &longest).await.expect("get"),
        Some(json!({"long": true}))
    );
    let unicode = "\u{4e2d}\u{6587} key/with?odd&chars";
    kv.insert(s, unicode, &json!({"u": 1}))
        .await
        .expect("insert");
    assert_eq!(
        kv.get(s, unicode).await.expect("get"),
        Some(json!({"u": 1}))
    );
    assert_eq!(kv.count(s).await.expect("count"), 2);
    dir.remove().await;
}

/// A schema name with characters HDFS names avoid is stored percent-encoded and listed as
/// it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_names_are_encoded_and_listed_as_given() {
    let dir = Dir::new();
    let kv = dir.store().await;
    let admin = admin();
    let schemas = ["_dataknobs:tables", "caf\u{e9} au lait", "plain"];
    for s in schemas {
        kv.insert(s, "k", &json!({"s": s})).await.expect("insert");
    }
    assert_eq!(kv.schemas().await.expect("schemas"), schemas);
    assert_eq!(
        names_in(&admin, &dir.base).await,
        ["_dataknobs%3Atables", "caf%C3%A9%20au%20lait", "plain"]
    );
    for s in schemas {
        assert_eq!(kv.get(s, "k").await.expect("get"), Some(json!({"s": s})));
    }
    dir.remove().await;
}

/// A scan lists the directory when it starts: records deleted before they are read are left
/// out (not errors), and those left are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_leaves_out_records_deleted_meanwhile() {
    let dir = Dir::new();
    let kv = dir.store().await;
    let s = "shrinking";
    let entries: Vec<(String, Bytes)> = (0..20)
        .map(|i| (format!("k{i:02}"), json_bytes(&json!({"i": i}))))
        .collect();
    kv.insert_many(s, &entries).await.expect("insert");
    let stream = kv.scan(s, 5).await.expect("scan");
    let gone: Vec<String> = (0..20).step_by(2).map(|i| format!("k{i:02}")).collect();
    assert!(
        kv.delete_many(s, &gone)
            .await
            .expect("delete")
            .iter()
            .all(|d| *d)
    );
    let batches: Vec<Vec<(String, Bytes)>> = stream.try_collect().await.expect("the scan");
    let mut keys: Vec<String> = batches.into_iter().flatten().map(|(k, _)| k).collect();
    keys.sort();
    let want: Vec<String> = (1..20).step_by(2).map(|i| format!("k{i:02}")).collect();
    assert_eq!(keys, want);
    dir.remove().await;
}

/// A lock file left by a writer that died (older than STALE_LOCK) is removed by the next
/// writer, whose update succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lock_file_is_removed() {
    let dir = Dir::new();
    let kv = dir.store().await;
    let admin = admin();
    let s = "stale";
    kv.insert(s, "k", &json!({"v": 1})).await.expect("insert");
    let lock = format!("{}/.lock.k", dir.schema_dir(s));
    write_raw(&admin, &lock, b"").await;
    let old = now_millis() - 120_000;
    admin.set_times(&lock, old, old).await.expect("set_times");
    let st = admin.get_file_info(&lock).await.expect("the lock");
    assert_eq!(st.modification_time, old);
    assert!(Duration::from_secs(120) > dataknobs::kv::hdfs::STALE_LOCK);

    let started = Instant::now();
    kv.update(s, "k", &json!({"v": 2}))
        .await
        .expect("update past a stale lock");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(kv.get(s, "k").await.expect("get"), Some(json!({"v": 2})));
    assert!(
        !exists(&admin, &lock).await,
        "the stale lock is still there"
    );
    // Delete and compare-and-set go past one too.
    write_raw(&admin, &lock, b"").await;
    admin.set_times(&lock, old, old).await.expect("set_times");
    assert!(kv.delete(s, "k").await.expect("delete past a stale lock"));
    assert!(!exists(&admin, &lock).await);
    dir.remove().await;
}

/// Eight writers meet one stale lock at once: one of them takes it over at a time, so
/// that their read-modify-compare-and-set increments lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_meeting_a_stale_lock_take_it_over_one_at_a_time() {
    let dir = Dir::new();
    let admin = admin();
    let s = "stale_race";
    let setup = dir.store().await;
    setup
        .insert(s, "c", &json!({"n": 0}))
        .await
        .expect("insert");
    let lock = format!("{}/.lock.c", dir.schema_dir(s));
    let writers = 8i64;
    let mut stores = Vec::new();
    for _ in 0..writers {
        stores.push(Arc::new(dir.store().await));
    }
    // A few rounds: the race is between a handful of requests.
    for round in 0..3 {
        write_raw(&admin, &lock, b"").await;
        let old = now_millis() - 120_000;
        admin.set_times(&lock, old, old).await.expect("set_times");
        let start = Arc::new(Barrier::new(stores.len()));
        let mut tasks = Vec::new();
        for kv in &stores {
            let (kv, start) = (kv.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                loop {
                    let cur = kv.get_many(s, &["c".into()]).await.expect("get")[0]
                        .clone()
                        .expect("c");
                    let n = serde_json::from_slice::<serde_json::Value>(&cur).expect("JSON")["n"]
                        .as_i64()
                        .expect("n");
                    let next = json_bytes(&json!({"n": n + 1}));
                    match kv.replace(s, "c", Some(&cur), next).await {
                        Ok(true) => return Ok(n),
                        Ok(false) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }));
        }
        let mut from = Vec::new();
        for task in tasks {
            from.push(task.await.expect("task"));
        }
        let mut from: Vec<i64> = from
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("round {round}: {e}")))
            .collect();
        from.sort();
        // Each increment started from another value: no two writers held the lock at once.
        let first = round * writers;
        assert_eq!(
            from,
            (first..first + writers).collect::<Vec<_>>(),
            "round {round}"
        );
        assert_eq!(
            setup.get(s, "c").await.expect("get"),
            Some(json!({"n": first + writers}))
        );
        // No lock, guard or temporary file left.
        assert_eq!(names_in(&admin, &dir.schema_dir(s)).await, ["c"]);
    }
    dir.remove().await;
}

/// A fresh lock file (another writer at work) makes an update wait, then fail after the
/// lock wait (10 s) with an error saying the record is locked; the record and the lock are
/// left as they were. (Slow: the one test that waits out the lock.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_lock_file_makes_an_update_fail_after_waiting() {
    let dir = Dir::new();
    let kv = dir.store().await;
    let admin = admin();
    let s = "fresh";
    kv.insert(s, "k", &json!({"v": 1})).await.expect("insert");
    let lock = format!("{}/.lock.k", dir.schema_dir(s));
    write_raw(&admin, &lock, b"").await;

    let started = Instant::now();
    let err = kv
        .update(s, "k", &json!({"v": 2}))
        .await
        .expect_err("locked");
    let waited = started.elapsed();
    let msg = err.to_string();
    assert!(msg.contains("locked"), "{msg}");
    assert!(msg.contains(".lock.k"), "{msg}");
    // The message says how long a writer waits ("for longer than 10s"); it waited that long.
    let wait: f64 = msg
        .split("longer than ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("no wait in {msg}"));
    let wait = Duration::from_secs_f64(wait);
    assert!(
        waited + Duration::from_millis(100) >= wait && waited < wait + Duration::from_secs(10),
        "waited {waited:?} for a lock wait of {wait:?}"
    );
    assert_eq!(kv.get(s, "k").await.expect("get"), Some(json!({"v": 1})));
    assert!(
        exists(&admin, &lock).await,
        "the store removed a fresh lock"
    );
    // A read does not wait for the lock; once it is gone, writes go through.
    assert!(kv.exists(s, "k").await.expect("exists"));
    admin.delete(&lock, false).await.expect("unlock");
    kv.update(s, "k", &json!({"v": 3})).await.expect("update");
    assert_eq!(kv.get(s, "k").await.expect("get"), Some(json!({"v": 3})));
    dir.remove().await;
}

// ---------------------------------------------------------------------------------------
// HDFS: connectors and connection managers
// ---------------------------------------------------------------------------------------

/// is_connected is true after connect (a round trip to the namenode) and false after
/// disconnect, when client() is a Connection error too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_connected_follows_connect_and_disconnect() {
    let mut c = HdfsConnector::new(hdfs_config()).expect("connector");
    assert!(!c.is_connected().await);
    assert_eq!(
        c.client().expect_err("not connected").kind(),
        ErrorKind::Connection
    );
    c.connect()
        .await
        .unwrap_or_else(|e| panic!("no HDFS at {} ({e}); {HDFS_HINT}", hdfs_url()));
    assert!(c.is_connected().await);
    let client = c.client().expect("client");
    assert!(client.get_file_info("/").await.expect("/").isdir);
    c.disconnect().await.expect("disconnect");
    assert!(!c.is_connected().await);
    let err = c.client().expect_err("disconnected");
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.to_string().contains("hdfs://"), "{err}");
    c.connect().await.expect("connect again");
    assert!(c.is_connected().await);
}

/// Single mode: nothing connects before first use; then concurrent operations share one
/// connector (one client); close() drops it and the next call connects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_mode_shares_one_client() {
    let dir = Dir::new();
    let manager = ConnectorManagerFactory::create_manager::<HdfsConnector>(
        hdfs_config(),
        ConnectionMode::Single,
        PoolSettings::default(),
    )
    .expect("manager");
    let kv = Arc::new(HdfsKeyValueStore::new(manager, &dir.base).expect("store"));
    assert_eq!(kv.manager().mode(), ConnectionMode::Single);
    assert_eq!(kv.manager().connections(), 0);

    let mut tasks = Vec::new();
    for i in 0..12 {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            let k = i.to_string();
            kv.insert("single", &k, &json!({"i": i}))
                .await
                .expect("insert");
            assert!(kv.exists("single", &k).await.expect("exists"));
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(kv.count("single").await.expect("count"), 12);
    assert_eq!(kv.manager().connections(), 1);
    {
        let a = kv.manager().get().await.expect("a");
        let b = kv.manager().get().await.expect("b");
        assert!(std::ptr::eq(a.connector(), b.connector()), "two connectors");
        assert_eq!(kv.manager().connections(), 1);
    }
    kv.manager().close().await;
    assert_eq!(kv.manager().connections(), 0);
    assert_eq!(kv.count("single").await.expect("count"), 12);
    assert_eq!(kv.manager().connections(), 1);
    dir.remove().await;
}

/// Pooled mode with max_connections = 3: concurrent work never holds more than three
/// connections, and does hold three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_mode_holds_at_most_max_connections() {
    let dir = Dir::new();
    let settings = PoolSettings {
        max_connections: 3,
        connection_timeout: Duration::from_secs(20),
        idle_timeout: None,
    };
    let kv = Arc::new(dir.store_with(ConnectionMode::Pooled, settings).await);
    assert_eq!(kv.manager().mode(), ConnectionMode::Pooled);
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, most, kv) = (done.clone(), most.clone(), kv.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                most.fetch_max(kv.manager().connections(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for i in 0..12 {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            // A slow piece of work on a held lease…
            {
                let lease = kv.manager().get().await.expect("lease");
                lease
                    .client()
                    .get_file_info("/")
                    .await
                    .expect("a request on the lease");
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            // …and ordinary operations through the store.
            assert!(!kv.exists("pool", &i.to_string()).await.expect("exists"));
            kv.count("pool").await.expect("count")
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    done.store(true, Ordering::SeqCst);
    sampler.await.expect("sampler");
    let most = most.load(Ordering::SeqCst);
    assert_eq!(most, 3, "connections held at most");
    assert!(kv.manager().connections() <= 3);
    dir.remove().await;
}

/// With every connection leased, get() and the store's operations give up after about
/// connection_timeout with a Connection error naming max_connections; a released
/// connection is handed out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_mode_waits_at_most_connection_timeout() {
    let dir = Dir::new();
    let settings = PoolSettings {
        max_connections: 2,
        connection_timeout: Duration::from_millis(500),
        idle_timeout: None,
    };
    let kv = dir.store_with(ConnectionMode::Pooled, settings).await;
    let a = kv.manager().get().await.expect("first");
    let b = kv.manager().get().await.expect("second");
    assert!(!std::ptr::eq(a.connector(), b.connector()));
    assert_eq!(kv.manager().connections(), 2);

    let started = Instant::now();
    let err = kv.manager().get().await.expect_err("all in use");
    let waited = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains("max_connections"), "{err}");
    assert!(
        waited >= Duration::from_millis(490) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    let started = Instant::now();
    let err = kv.count("none").await.expect_err("all in use");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(started.elapsed() >= Duration::from_millis(490));

    // A released connection is handed out again (no third one is made).
    drop(a);
    let again = kv.manager().get().await.expect("released");
    assert_eq!(kv.manager().connections(), 2);
    drop(again);
    assert_eq!(kv.count("none").await.expect("count"), 0);
    assert_eq!(kv.manager().connections(), 2);
    drop(b);
    dir.remove().await;
}

/// Pooled connections idle longer than idle_timeout are closed; the pool connects again
/// when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_mode_closes_idle_connections() {
    let dir = Dir::new();
    let settings = PoolSettings {
        max_connections: 5,
        connection_timeout: Duration::from_secs(5),
        idle_timeout: Some(Duration::from_secs(1)),
    };
    let kv = dir.store_with(ConnectionMode::Pooled, settings).await;
    {
        let leases = [
            kv.manager().get().await.expect("1"),
            kv.manager().get().await.expect("2"),
            kv.manager().get().await.expect("3"),
        ];
        let distinct: HashSet<*const HdfsConnector> = leases
            .iter()
            .map(|l| l.connector() as *const HdfsConnector)
            .collect();
        assert_eq!(distinct.len(), 3, "three connections");
        assert_eq!(kv.manager().connections(), 3);
    }
    // Released, they stay for a while…
    let released = Instant::now();
    assert_eq!(kv.manager().connections(), 3);
    // …and are closed once idle longer than idle_timeout (the reaper runs every
    // idle_timeout / 4).
    while kv.manager().connections() > 0 && released.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closed_after = released.elapsed();
    assert_eq!(kv.manager().connections(), 0, "after {closed_after:?}");
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}, before idle_timeout"
    );
    assert_eq!(kv.count("none").await.expect("count"), 0);
    assert_eq!(kv.manager().connections(), 1);
    dir.remove().await;
}

// ---------------------------------------------------------------------------------------
// HDFS: configuration and connection errors
// ---------------------------------------------------------------------------------------

/// No namenode on the port: a Connection error naming hdfs://127.0.0.1:1 within a few
/// seconds, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_namenode_is_a_connection_error() {
    for mode in [ConnectionMode::Single, ConnectionMode::Pooled] {
        let mut c = ConnectorConfig::new("127.0.0.1", 1);
        c.connect_timeout = Duration::from_secs(2);
        let settings = PoolSettings {
            max_connections: 2,
            connection_timeout: Duration::from_secs(2),
            idle_timeout: None,
        };
        let started = Instant::now();
        let err = tokio::time::timeout(
            Duration::from_secs(20),
            HdfsKeyValueStore::connect(c, mode, settings, "/volnux"),
        )
        .await
        .unwrap_or_else(|_| panic!("{mode:?}: connect to port 1 did not return"))
        .expect_err("port 1");
        let took = started.elapsed();
        assert_eq!(err.kind(), ErrorKind::Connection, "{mode:?}: {err}");
        assert!(
            err.to_string().contains("hdfs://127.0.0.1:1"),
            "{mode:?}: {err}"
        );
        assert!(took < Duration::from_secs(5), "{mode:?}: {took:?}");
    }
}

/// Simple authentication takes no password: a Config error before anything connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_a_config_error() {
    let mut c = hdfs_config();
    c.password = Some(SecretString::from("hunter2".to_string()));
    let err = HdfsConnector::new(c.clone()).expect_err("a password");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("password"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    for mode in [ConnectionMode::Single, ConnectionMode::Pooled] {
        let err = HdfsKeyValueStore::connect(c.clone(), mode, PoolSettings::default(), "/volnux")
            .await
            .expect_err("a password");
        assert_eq!(err.kind(), ErrorKind::Config, "{mode:?}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

/// A username other than the process's is a Config error saying to set HADOOP_USER_NAME;
/// the process's own user is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_other_than_the_process_user_is_a_config_error() {
    let me = process_user();
    let mut c = hdfs_config();
    c.username = Some(format!("{me}-someone-else"));
    for mode in [ConnectionMode::Single, ConnectionMode::Pooled] {
        let err = HdfsKeyValueStore::connect(c.clone(), mode, PoolSettings::default(), "/volnux")
            .await
            .expect_err("another user");
        assert_eq!(err.kind(), ErrorKind::Config, "{mode:?}: {err}");
        let msg = err.to_string();
        assert!(msg.contains("HADOOP_USER_NAME"), "{msg}");
        assert!(msg.contains(&format!("{me}-someone-else")), "{msg}");
    }
    let dir = Dir::new();
    let mut c = hdfs_config();
    c.username = Some(me.clone());
    let kv = HdfsKeyValueStore::connect(
        c,
        ConnectionMode::Single,
        PoolSettings::default(),
        &dir.base,
    )
    .await
    .expect("the process's own user");
    kv.insert("u", "k", &json!({"a": 1})).await.expect("insert");
    let st = admin()
        .get_file_info(&format!("{}/u/k", dir.base))
        .await
        .expect("the record");
    assert_eq!(st.owner, me);
    dir.remove().await;
}

/// hdfs-native keeps DataNode connections in one process-wide cache: a read that takes a
/// connection another runtime opened must survive that runtime shutting down in the middle
/// of the read. `kv::hdfs::client_builder` (every client of ours) opens the connections on a
/// runtime of its own; with a plain `ClientBuilder` the rest of this read fails with "A Tokio
/// 1.x context was found, but it is being shutdown" (as a CI run of
/// `hdfs_sql::differential_on_parquet_datasets` did, on a connection of a finished test).
#[test]
fn a_read_survives_the_runtime_that_opened_its_connection() {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime")
    };
    let client = || {
        dataknobs::kv::hdfs::client_builder()
            .with_url(hdfs_url())
            .build()
            .expect("an hdfs-native client")
    };
    let path = format!("/dk_rt_tests/{}/big.bin", unique_name("dk_hdfs_rt"));
    let len: usize = 24 << 20;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let first = runtime();
    first.block_on(async {
        let c = client();
        write_raw(&c, &path, &data).await;
        let r = c.read(&path).await.expect("open");
        assert_eq!(r.read_range(0, len).await.expect("read").len(), len);
        // Its DataNode connection is now in hdfs-native's cache.
    });

    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (gone_tx, gone_rx) = std::sync::mpsc::channel::<()>();
    let at = path.clone();
    let reader = std::thread::spawn(move || {
        runtime().block_on(async move {
            let c = client();
            let r = c.read(&at).await.expect("open");
            let mut stream = Box::pin(r.read_range_stream(0, len));
            let mut got = Vec::with_capacity(len);
            let head = stream
                .try_next()
                .await
                .expect("the first bytes")
                .expect("some bytes");
            got.extend_from_slice(&head);
            started_tx.send(()).expect("tell the test");
            tokio::task::spawn_blocking(move || gone_rx.recv())
                .await
                .expect("waiting")
                .expect("the first runtime is gone");
            while let Some(b) = stream
                .try_next()
                .await
                .expect("the rest, after the first runtime shut down")
            {
                got.extend_from_slice(&b);
            }
            got
        })
    });
    started_rx.recv().expect("the reader started");
    drop(first);
    gone_tx.send(()).expect("tell the reader");
    let got = reader.join().expect("the reader thread");
    assert_eq!(got.len(), len);
    assert!(got == data, "the bytes read differ from those written");
    runtime().block_on(async {
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or(&path);
        let _ = client().delete(dir, true).await;
    });
}
