//! The in-memory key-value store (the seed's `InMemoryKeyValueStoreBackend`): a map of
//! schemas to maps of keys to JSON values, behind one lock, so every operation is atomic.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use parking_lot::RwLock;

use super::{KeyValueStore, MoveConflict, SCAN_BATCH, already_exists};
use crate::error::Result;

const KIND: &str = "memory";

/// Records by schema and key, in this process.
#[derive(Debug, Default)]
pub struct MemoryKeyValueStore {
    schemas: RwLock<HashMap<String, HashMap<String, Bytes>>>,
}

impl MemoryKeyValueStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl KeyValueStore for MemoryKeyValueStore {
    fn kind(&self) -> &str {
        KIND
    }

    fn location(&self) -> String {
        "memory".to_string()
    }

    async fn schemas(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.schemas.read().keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn exists(&self, schema: &str, key: &str) -> Result<bool> {
        Ok(self
            .schemas
            .read()
            .get(schema)
            .is_some_and(|s| s.contains_key(key)))
    }

    async fn count(&self, schema: &str) -> Result<u64> {
        Ok(self
            .schemas
            .read()
            .get(schema)
            .map_or(0, |s| s.len() as u64))
    }

    async fn get_many(&self, schema: &str, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let schemas = self.schemas.read();
        let records = schemas.get(schema);
        Ok(keys
            .iter()
            .map(|k| records.and_then(|r| r.get(k)).cloned())
            .collect())
    }

    async fn insert_many(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<()> {
        let mut schemas = self.schemas.write();
        let taken = |k: &String| schemas.get(schema).is_some_and(|r| r.contains_key(k));
        let mut seen = HashSet::new();
        for (k, _) in entries {
            if taken(k) || !seen.insert(k) {
                return Err(already_exists(KIND, schema, k));
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        let records = schemas.entry(schema.to_string()).or_default();
        for (k, v) in entries {
            records.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    async fn put_new(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<Vec<bool>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut schemas = self.schemas.write();
        let records = schemas.entry(schema.to_string()).or_default();
        Ok(entries
            .iter()
            .map(|(k, v)| {
                if records.contains_key(k) {
                    false
                } else {
                    records.insert(k.clone(), v.clone());
                    true
                }
            })
            .collect())
    }

    async fn put_many(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut schemas = self.schemas.write();
        let records = schemas.entry(schema.to_string()).or_default();
        for (k, v) in entries {
            records.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    async fn replace(
        &self,
        schema: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: Bytes,
    ) -> Result<bool> {
        let mut schemas = self.schemas.write();
        match schemas.get_mut(schema).and_then(|s| s.get_mut(key)) {
            Some(slot) if expected.is_none_or(|e| e == slot.as_ref()) => {
                *slot = value;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn move_many(
        &self,
        schema: &str,
        moves: &[(String, Bytes, String, Bytes)],
    ) -> Result<Option<MoveConflict>> {
        let mut schemas = self.schemas.write();
        let records = schemas.entry(schema.to_string()).or_default();
        let olds: HashSet<&String> = moves.iter().map(|(o, ..)| o).collect();
        for (old, expected, new, _) in moves {
            if records.get(old) != Some(expected) {
                return Ok(Some(MoveConflict::Changed(old.clone())));
            }
            if !olds.contains(new) && records.contains_key(new) {
                return Ok(Some(MoveConflict::Taken(new.clone())));
            }
        }
        for (old, ..) in moves {
            records.remove(old);
        }
        for (_, _, new, value) in moves {
            records.insert(new.clone(), value.clone());
        }
        Ok(None)
    }

    async fn delete_many(&self, schema: &str, keys: &[String]) -> Result<Vec<bool>> {
        let mut schemas = self.schemas.write();
        let Some(records) = schemas.get_mut(schema) else {
            return Ok(vec![false; keys.len()]);
        };
        let out = keys.iter().map(|k| records.remove(k).is_some()).collect();
        if records.is_empty() {
            schemas.remove(schema);
        }
        Ok(out)
    }

    async fn delete_exact(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<u64> {
        let mut schemas = self.schemas.write();
        let Some(records) = schemas.get_mut(schema) else {
            return Ok(0);
        };
        let mut n = 0;
        for (k, v) in entries {
            if records.get(k) == Some(v) {
                records.remove(k);
                n += 1;
            }
        }
        if records.is_empty() {
            schemas.remove(schema);
        }
        Ok(n)
    }

    async fn drop_schema(&self, schema: &str) -> Result<u64> {
        Ok(self
            .schemas
            .write()
            .remove(schema)
            .map_or(0, |r| r.len() as u64))
    }

    async fn scan(
        &self,
        schema: &str,
        batch: usize,
    ) -> Result<BoxStream<'static, Result<Vec<(String, Bytes)>>>> {
        // A snapshot: later writes do not show in a scan already started.
        let entries: Vec<(String, Bytes)> = self
            .schemas
            .read()
            .get(schema)
            .map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let batches: Vec<Result<Vec<(String, Bytes)>>> = entries
            .chunks(batch.clamp(1, SCAN_BATCH * 64))
            .map(|c| Ok(c.to_vec()))
            .collect();
        Ok(futures::stream::iter(batches).boxed())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::error::ErrorKind;
    use crate::kv::{KeyValueStoreExt, KvRecord};
    use crate::query::{Filter, FilterExpr, Operator};

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

    #[tokio::test]
    async fn the_seed_api_round_trips_typed_records() {
        let kv = MemoryKeyValueStore::new();
        let ada = person("1", "Ada", Some(36));
        kv.insert_record("people", "1", &ada).await.expect("insert");
        assert!(kv.exists("people", "1").await.expect("exists"));
        assert!(!kv.exists("people", "2").await.expect("exists"));
        assert!(!kv.exists("other", "1").await.expect("exists"));
        assert_eq!(kv.count("people").await.expect("count"), 1);
        assert_eq!(kv.count("nobody").await.expect("count"), 0);
        let got: Person = kv.get_record("people", "1").await.expect("get");
        assert_eq!(got, ada);

        let err = kv
            .insert_record("people", "1", &ada)
            .await
            .expect_err("taken");
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(
            err.to_string().contains("'1'") && err.to_string().contains("people"),
            "{err}"
        );
        let err = kv
            .update_record("people", "9", &ada)
            .await
            .expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(kv.count("people").await.expect("count"), 1);

        let older = person("1", "Ada", Some(37));
        kv.update_record("people", "1", &older)
            .await
            .expect("update");
        let mut stale = ada.clone();
        kv.reload_record("people", &mut stale)
            .await
            .expect("reload");
        assert_eq!(stale, older);

        let err = kv
            .get_record::<Person>("people", "nope")
            .await
            .expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("nope"), "{err}");

        kv.delete_record("people", "1").await.expect("delete");
        assert_eq!(
            kv.delete_record("people", "1")
                .await
                .expect_err("gone")
                .kind(),
            ErrorKind::NotFound
        );
        assert_eq!(kv.count("people").await.expect("count"), 0);
    }

    #[tokio::test]
    async fn a_value_of_another_shape_is_a_clear_error() {
        let kv = MemoryKeyValueStore::new();
        kv.insert("people", "x", &serde_json::json!({"id": "x", "name": 5}))
            .await
            .expect("insert raw");
        let err = kv
            .get_record::<Person>("people", "x")
            .await
            .expect_err("wrong type");
        assert_eq!(err.kind(), ErrorKind::Type);
        let msg = err.to_string();
        assert!(msg.contains("'x'") && msg.contains("Person"), "{msg}");
    }

    #[tokio::test]
    async fn filter_record_has_sql_semantics() {
        let kv = MemoryKeyValueStore::new();
        for (i, p) in [
            person("a", "Ada", Some(36)),
            person("b", "Bob", None),
            person("c", "Cy", Some(20)),
            person("d", "Di", Some(50)),
        ]
        .iter()
        .enumerate()
        {
            kv.insert_record("people", &p.id, p)
                .await
                .unwrap_or_else(|e| panic!("insert {i}: {e}"));
        }
        let over_30 = vec![FilterExpr::Cond(
            Filter::new("age", Operator::Gt, 30i64).expect("filter"),
        )];
        let mut got: Vec<String> = kv
            .filter_record::<Person>("people", &over_30)
            .await
            .expect("filter")
            .into_iter()
            .map(|(k, p)| {
                assert_eq!(k, p.id);
                k
            })
            .collect();
        got.sort();
        // NULL age matches neither `> 30` nor its negation.
        assert_eq!(got, ["a", "d"]);
        let not_over_30 = vec![FilterExpr::Not(Box::new(over_30[0].clone()))];
        let got = kv
            .filter_record::<Person>("people", &not_over_30)
            .await
            .expect("filter");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "c");
        // A field no record has is NULL.
        let missing = vec![FilterExpr::Cond(
            Filter::new("zip", Operator::Eq, "x").expect("filter"),
        )];
        assert!(
            kv.filter_record::<Person>("people", &missing)
                .await
                .expect("filter")
                .is_empty()
        );
        assert_eq!(
            kv.filter_record::<Person>("people", &[])
                .await
                .expect("all")
                .len(),
            4
        );
    }

    #[tokio::test]
    async fn moves_and_exact_deletes_check_what_they_touch() {
        let kv = MemoryKeyValueStore::new();
        let b = |s: &str| Bytes::from(s.to_string());
        kv.put_many(
            "s",
            &[
                ("a".into(), b("1")),
                ("b".into(), b("2")),
                ("c".into(), b("3")),
            ],
        )
        .await
        .expect("put");
        // A key moving onto one that stays is refused; nothing moves.
        let taken = kv
            .move_many("s", &[("a".into(), b("1"), "c".into(), b("x"))])
            .await
            .expect("move");
        assert_eq!(taken, Some(MoveConflict::Taken("c".into())));
        // A stale expected value is refused.
        let changed = kv
            .move_many("s", &[("a".into(), b("9"), "z".into(), b("x"))])
            .await
            .expect("move");
        assert_eq!(changed, Some(MoveConflict::Changed("a".into())));
        // Swapping two keys is fine: both are moving.
        let ok = kv
            .move_many(
                "s",
                &[
                    ("a".into(), b("1"), "b".into(), b("A")),
                    ("b".into(), b("2"), "a".into(), b("B")),
                ],
            )
            .await
            .expect("move");
        assert_eq!(ok, None);
        let got = kv
            .get_many("s", &["a".into(), "b".into()])
            .await
            .expect("get");
        assert_eq!(got, vec![Some(b("B")), Some(b("A"))]);
        // Exact deletes leave what holds another value.
        let n = kv
            .delete_exact("s", &[("a".into(), b("B")), ("b".into(), b("other"))])
            .await
            .expect("delete");
        assert_eq!(n, 1);
        assert_eq!(kv.count("s").await.expect("count"), 2);
    }

    /// Many writers insert the same keys at once: each key is taken exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_inserts_of_one_key_take_it_once() {
        let kv = Arc::new(MemoryKeyValueStore::new());
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let kv = kv.clone();
            tasks.push(tokio::spawn(async move {
                let mut won = 0;
                for k in 0..200 {
                    let value = serde_json::json!({"writer": writer});
                    match kv.insert("s", &k.to_string(), &value).await {
                        Ok(()) => won += 1,
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                won
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("task");
        }
        assert_eq!(total, 200);
        assert_eq!(kv.count("s").await.expect("count"), 200);
    }
}
