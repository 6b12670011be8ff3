//! The key-value store API of the seed (`KeyValueStoreBackendBase`): records kept by schema
//! and key, each record's value its JSON. [`KeyValueStore`] is the object-safe store (JSON
//! values); [`KeyValueStoreExt`] adds the seed's typed methods (`insert_record`,
//! `get_record`, `reload_record`, `filter_record`, …) over any [`KvRecord`] — the part the
//! seed's `BackendIntegrationMixin` plays: anything serde can turn into a JSON object and
//! back, with the key it is stored under.
//!
//! Implementations: [`memory::MemoryKeyValueStore`] (the seed's in-memory store). Redis (one
//! hash per schema) and HDFS (one JSON file per record under a directory per schema) are
//! each one more module implementing [`KeyValueStore`].
//!
//! `insert` fails when the key exists and `update` when it does not, atomically: a store
//! must never let two concurrent inserts of one key both succeed.

pub mod connect;
#[cfg(feature = "hdfs")]
pub mod hdfs;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "redis")]
mod resp;
pub mod table;

use std::fmt::Debug;

use bytes::Bytes;

use async_trait::async_trait;
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use futures::TryStreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;
use serde::Serialize;
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::query::FilterExpr;
use crate::record::{FieldType, Value, values_to_array};

pub use connect::{
    ConnectionMode, Connector, ConnectorConfig, ConnectorManager, ConnectorManagerFactory, Lease,
    PoolSettings, TlsSettings,
};
#[cfg(feature = "hdfs")]
pub use hdfs::{HdfsConnector, HdfsKeyValueStore};
pub use memory::MemoryKeyValueStore;
#[cfg(feature = "redis")]
pub use redis::{RedisConnector, RedisKeyValueStore, WholeHash};

/// A JSON value stored under a key (a record's value).
pub type Json = serde_json::Value;

/// Records read per batch by [`KeyValueStore::scan`].
pub const SCAN_BATCH: usize = 1024;

/// A store of records by schema (a namespace: a Redis hash, a directory) and key. Values
/// are kept as the bytes of their JSON text, so that scans hand them to Arrow's JSON decoder
/// without a detour through `serde_json::Value`; [`KeyValueStoreExt`] adds the JSON and typed
/// methods of the seed on top.
#[async_trait]
pub trait KeyValueStore: Debug + Send + Sync {
    /// The store's kind, named in errors (`memory`, `redis`, `hdfs`).
    fn kind(&self) -> &str;

    /// Where the store is, for messages and EXPLAIN (never a password).
    fn location(&self) -> String;

    /// The schemas that hold records.
    async fn schemas(&self) -> Result<Vec<String>>;

    /// Is there a record under `key`?
    async fn exists(&self, schema: &str, key: &str) -> Result<bool>;

    /// How many records `schema` holds (0 for a schema never written).
    async fn count(&self, schema: &str) -> Result<u64>;

    /// The values under `keys`, in order (None where there is none), in one request where
    /// the store can.
    async fn get_many(&self, schema: &str, keys: &[String]) -> Result<Vec<Option<Bytes>>>;

    /// Stores new records, all or none: [`ErrorKind::AlreadyExists`] naming the first key
    /// that is taken (also by another writer at the same moment), and nothing written.
    async fn insert_many(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<()>;

    /// Stores each record whose key is free, one by one (atomic per record, not as a whole:
    /// the fast path for large writes that undo themselves on failure); true where written.
    async fn put_new(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<Vec<bool>>;

    /// Stores records whether or not their keys are taken (an upsert).
    async fn put_many(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<()>;

    /// Replaces the record under `key` when there is one and, with `expected`, only while it
    /// still holds exactly those bytes (a compare-and-set); false when nothing was written.
    async fn replace(
        &self,
        schema: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: Bytes,
    ) -> Result<bool>;

    /// Moves records to new keys, all or nothing: each `(old, expected, new, value)` removes
    /// `old`, which must still hold exactly `expected`, and stores `value` under `new`, which
    /// must be free or one of the moved `old`s. On a conflict nothing is written.
    async fn move_many(
        &self,
        schema: &str,
        moves: &[(String, Bytes, String, Bytes)],
    ) -> Result<Option<MoveConflict>>;

    /// Removes records; true for each that existed (a key given twice: true once).
    async fn delete_many(&self, schema: &str, keys: &[String]) -> Result<Vec<bool>>;

    /// Removes each record only while it holds exactly the given value (undoing one's own
    /// writes without touching another writer's); returns how many were removed.
    async fn delete_exact(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<u64>;

    /// Removes every record of `schema`; returns how many there were.
    async fn drop_schema(&self, schema: &str) -> Result<u64>;

    /// Every record of `schema` as (key, value), in batches of about `batch` (at most
    /// [`SCAN_BATCH`] when the store cannot tell), as the store yields them (no order).
    async fn scan(
        &self,
        schema: &str,
        batch: usize,
    ) -> Result<BoxStream<'static, Result<Vec<(String, Bytes)>>>>;

    /// The native requests a scan of `schema` sends, for EXPLAIN.
    fn describe_scan(&self, schema: &str, batch: usize) -> String {
        format!(
            "scan of {} schema '{schema}' in batches of {batch}",
            self.kind()
        )
    }

    /// The native request that reads `keys` of `schema`, for EXPLAIN.
    fn describe_get(&self, schema: &str, keys: &[String]) -> String {
        format!(
            "read of {} keys of {} schema '{schema}'",
            keys.len(),
            self.kind()
        )
    }
}

/// Why [`KeyValueStore::move_many`] wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveConflict {
    /// This old key no longer holds what was expected (changed or deleted).
    Changed(String),
    /// This new key is taken by a record that is not moving.
    Taken(String),
}

/// A typed record of a key-value store (the seed's `BackendIntegrationMixin`): serde turns it
/// into a JSON object and back, and it knows its key.
pub trait KvRecord: Serialize + DeserializeOwned + Send + Sync {
    /// The key the record is stored under.
    fn kv_key(&self) -> String;
}

/// The seed's methods over any [`KeyValueStore`]: single records as JSON values, and typed
/// records ([`KvRecord`]).
#[async_trait]
pub trait KeyValueStoreExt: KeyValueStore {
    /// Stores a new JSON record; [`ErrorKind::AlreadyExists`] (and nothing written) when
    /// `key` is taken, also when another writer takes it at the same moment.
    async fn insert(&self, schema: &str, key: &str, value: &Json) -> Result<()> {
        let bytes = json_bytes(self.kind(), schema, key, value)?;
        self.insert_many(schema, &[(key.to_string(), bytes)]).await
    }

    /// Replaces a record; [`ErrorKind::NotFound`] (and nothing written) when there is none.
    async fn update(&self, schema: &str, key: &str, value: &Json) -> Result<()> {
        let bytes = json_bytes(self.kind(), schema, key, value)?;
        if self.replace(schema, key, None, bytes).await? {
            Ok(())
        } else {
            Err(not_found(self.kind(), schema, key))
        }
    }

    /// Removes a record; false when there was none.
    async fn delete(&self, schema: &str, key: &str) -> Result<bool> {
        Ok(self
            .delete_many(schema, &[key.to_string()])
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// The record under `key` as JSON, if any; [`ErrorKind::Type`] naming the key when the
    /// stored value is not JSON.
    async fn get(&self, schema: &str, key: &str) -> Result<Option<Json>> {
        let got = self.get_many(schema, &[key.to_string()]).await?;
        match got.into_iter().next().flatten() {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::type_error(format!(
                    "the value of '{key}' in {} schema '{schema}' is not JSON: {e}",
                    self.kind()
                ))
                .with_backend(self.kind())
            }),
        }
    }

    /// Stores `record` under `key`; fails when the key is taken.
    async fn insert_record<T: KvRecord>(&self, schema: &str, key: &str, record: &T) -> Result<()> {
        let bytes = record_bytes(self.kind(), schema, key, record)?;
        self.insert_many(schema, &[(key.to_string(), bytes)]).await
    }

    /// Replaces the record under `key`; fails when there is none.
    async fn update_record<T: KvRecord>(&self, schema: &str, key: &str, record: &T) -> Result<()> {
        let bytes = record_bytes(self.kind(), schema, key, record)?;
        if self.replace(schema, key, None, bytes).await? {
            Ok(())
        } else {
            Err(not_found(self.kind(), schema, key))
        }
    }

    /// Removes the record under `key`; fails when there is none.
    async fn delete_record(&self, schema: &str, key: &str) -> Result<()> {
        if KeyValueStoreExt::delete(self, schema, key).await? {
            Ok(())
        } else {
            Err(not_found(self.kind(), schema, key))
        }
    }

    /// The record under `key` as a `T`; [`ErrorKind::NotFound`] when there is none, and
    /// [`ErrorKind::Type`] naming the key when the stored value is not a `T`.
    async fn get_record<T: KvRecord>(&self, schema: &str, key: &str) -> Result<T> {
        let got = self.get_many(schema, &[key.to_string()]).await?;
        match got.into_iter().next().flatten() {
            Some(bytes) => from_json_bytes(self.kind(), schema, key, &bytes),
            None => Err(not_found(self.kind(), schema, key)),
        }
    }

    /// Reads `record` again from the store, under its own key.
    async fn reload_record<T: KvRecord>(&self, schema: &str, record: &mut T) -> Result<()> {
        let key = record.kv_key();
        *record = self.get_record(schema, &key).await?;
        Ok(())
    }

    /// The records of `schema` matching every filter, as (key, record), with DataFusion's
    /// semantics (a missing field is NULL). Evaluated batch by batch as the store yields
    /// them: only the filtered fields of each value are decoded for the test, and only the
    /// records that pass become `T`s.
    async fn filter_record<T: KvRecord>(
        &self,
        schema: &str,
        filters: &[FilterExpr],
    ) -> Result<Vec<(String, T)>> {
        let kind = self.kind().to_string();
        let mut batches = self.scan(schema, SCAN_BATCH).await?;
        let mut filter = Matcher::new(filters);
        let mut out = Vec::new();
        while let Some(batch) = batches.try_next().await? {
            let keep = filter.mask(&kind, schema, &batch)?;
            for ((key, bytes), keep) in batch.into_iter().zip(keep) {
                if keep {
                    let record = from_json_bytes(&kind, schema, &key, &bytes)?;
                    out.push((key, record));
                }
            }
        }
        Ok(out)
    }
}

impl<S: KeyValueStore + ?Sized> KeyValueStoreExt for S {}

/// The JSON text of a record's value (an object).
fn json_bytes(kind: &str, schema: &str, key: &str, value: &Json) -> Result<Bytes> {
    if !value.is_object() {
        return Err(Error::type_error(format!(
            "record '{key}' for {kind} schema '{schema}' must be a JSON object, not {value}"
        ))
        .with_backend(kind));
    }
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
        Error::type_error(format!(
            "record '{key}' for {kind} schema '{schema}' cannot be written as JSON: {e}"
        ))
        .with_backend(kind)
    })
}

/// Tests stored values against filters with DataFusion's semantics (a missing field is NULL),
/// batch by batch: each value is read for the filtered fields only (the rest of its text is
/// checked, not kept), the batch's column types are inferred from those fields, and the
/// compiled predicate is kept while the types stay the same.
pub struct Matcher<'f> {
    filters: &'f [FilterExpr],
    /// The fields the filters read, each once.
    fields: Vec<&'f str>,
    compiled: Option<(
        Arc<Schema>,
        Arc<dyn datafusion::physical_plan::PhysicalExpr>,
    )>,
}

impl<'f> Matcher<'f> {
    pub fn new(filters: &'f [FilterExpr]) -> Self {
        let mut fields: Vec<&str> = Vec::new();
        for f in filters.iter().flat_map(|e| e.fields()) {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        Matcher {
            filters,
            fields,
            compiled: None,
        }
    }

    /// For each (key, value) of `batch`, whether the value satisfies every filter; an error
    /// names the first value that is not a JSON object.
    pub fn mask(
        &mut self,
        kind: &str,
        schema: &str,
        batch: &[(String, Bytes)],
    ) -> Result<Vec<bool>> {
        if self.filters.is_empty() {
            return Ok(vec![true; batch.len()]);
        }
        // One column of values per filtered field (NULL where a record lacks the field).
        let mut columns: Vec<Vec<Value>> = self
            .fields
            .iter()
            .map(|_| Vec::with_capacity(batch.len()))
            .collect();
        let mut slots: Vec<Value> = vec![Value::Null; self.fields.len()];
        for (key, bytes) in batch {
            picked_fields(kind, schema, key, bytes, &self.fields, &mut slots)?;
            for (column, slot) in columns.iter_mut().zip(slots.iter_mut()) {
                column.push(std::mem::replace(slot, Value::Null));
            }
        }
        // Each column's type as the record API infers it (the first typed value's, an
        // integer column with a float becomes float; text when all are NULL).
        let mut fields = Vec::with_capacity(columns.len());
        let mut arrays = Vec::with_capacity(columns.len());
        for (name, values) in self.fields.iter().zip(&columns) {
            let mut ty: Option<FieldType> = None;
            for t in values.iter().filter_map(Value::field_type) {
                ty = match (ty, t) {
                    (None, t) => Some(t),
                    (Some(FieldType::Integer), FieldType::Float) => Some(FieldType::Float),
                    (c, _) => c,
                };
            }
            let field = ty.unwrap_or(FieldType::String).arrow_field(name);
            arrays.push(values_to_array(&field, values.iter()).map_err(|e| {
                Error::type_error(format!(
                    "records of {kind} schema '{schema}' do not share field types: {e}"
                ))
                .with_backend(kind)
            })?);
            fields.push(field);
        }
        let columns = Arc::new(Schema::new(fields));
        let rows = RecordBatch::try_new_with_options(
            columns.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(batch.len())),
        )?;
        let predicate = match &self.compiled {
            Some((s, p)) if *s == columns => p.clone(),
            _ => {
                let Some(p) = crate::pushdown::eval::compile_predicate(self.filters, &columns)?
                else {
                    return Ok(vec![true; batch.len()]);
                };
                self.compiled = Some((columns, p.clone()));
                p
            }
        };
        let mask = crate::pushdown::eval::evaluate_mask(&predicate, &rows)?;
        Ok((0..batch.len())
            .map(|i| mask.is_valid(i) && mask.value(i))
            .collect())
    }
}

/// Reads the top-level `fields` of the JSON object `bytes` into `slots` (by position; the
/// other keys' values are read for their syntax only, the last of a repeated key wins).
fn picked_fields(
    kind: &str,
    schema: &str,
    key: &str,
    bytes: &[u8],
    fields: &[&str],
    slots: &mut [Value],
) -> Result<()> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let picked = PickFields { fields, slots }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    picked.map_err(|e| {
        let msg = if e.is_data() {
            format!("record '{key}' of {kind} schema '{schema}' is not a JSON object: {e}")
        } else {
            format!("the value of '{key}' in {kind} schema '{schema}' is not JSON: {e}")
        };
        Error::type_error(msg).with_backend(kind)
    })
}

/// Reads a JSON object keeping only some of its top-level fields.
struct PickFields<'a> {
    fields: &'a [&'a str],
    slots: &'a mut [Value],
}

impl<'de> DeserializeSeed<'de> for PickFields<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PickFields<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(at) = map.next_key_seed(FieldAt(self.fields))? {
            match at {
                Some(i) => self.slots[i] = map.next_value_seed(ValueSeed)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A key of an object: its position among the wanted fields, if it is one (no allocation).
struct FieldAt<'a>(&'a [&'a str]);

impl<'de> DeserializeSeed<'de> for FieldAt<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldAt<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Option<usize>, E> {
        Ok(self.0.iter().position(|w| *w == v))
    }
}

/// A JSON value as the record API reads it ([`Value::from_json`]): scalars as themselves,
/// arrays and objects as JSON.
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Value, A::Error> {
        Json::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Value::Json)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Value, A::Error> {
        Json::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Value::Json)
    }
}

/// A record's JSON text (an object).
fn record_bytes<T: KvRecord>(kind: &str, schema: &str, key: &str, record: &T) -> Result<Bytes> {
    let bytes = serde_json::to_vec(record).map_err(|e| {
        Error::type_error(format!(
            "record '{key}' for {kind} schema '{schema}' cannot be serialized: {e}"
        ))
        .with_backend(kind)
    })?;
    // Compact JSON: an object and nothing else starts with '{'.
    if bytes.first() != Some(&b'{') {
        let mut shown = String::from_utf8_lossy(&bytes).into_owned();
        if shown.len() > 200 {
            let mut end = 200;
            while !shown.is_char_boundary(end) {
                end -= 1;
            }
            shown.truncate(end);
            shown.push('…');
        }
        return Err(Error::type_error(format!(
            "record '{key}' for {kind} schema '{schema}' must serialize to a JSON object, not {shown}"
        ))
        .with_backend(kind));
    }
    Ok(Bytes::from(bytes))
}

/// A stored value as a `T`: a type error naming the key when it is not JSON or not a `T`.
fn from_json_bytes<T: KvRecord>(kind: &str, schema: &str, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let msg = if e.is_data() {
            format!(
                "record '{key}' of {kind} schema '{schema}' does not deserialize into {}: {e}",
                std::any::type_name::<T>()
            )
        } else {
            format!("the value of '{key}' in {kind} schema '{schema}' is not JSON: {e}")
        };
        Error::type_error(msg).with_backend(kind)
    })
}

/// "no record 'k' in memory schema 's'".
pub fn not_found(kind: &str, schema: &str, key: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("no record '{key}' in {kind} schema '{schema}'"),
    )
    .with_backend(kind)
}

/// "record 'k' already exists in memory schema 's'".
pub fn already_exists(kind: &str, schema: &str, key: &str) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("record '{key}' already exists in {kind} schema '{schema}' (use update)"),
    )
    .with_backend(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{Filter, Operator};

    fn cond(field: &str, op: Operator, v: impl Into<crate::query::Operand>) -> FilterExpr {
        FilterExpr::Cond(Filter::new(field, op, v).expect("filter"))
    }

    fn batch(values: &[(&str, &str)]) -> Vec<(String, Bytes)> {
        values
            .iter()
            .map(|(k, v)| (k.to_string(), Bytes::from(v.to_string())))
            .collect()
    }

    #[test]
    fn the_mask_has_sql_semantics_over_the_filtered_fields_only() {
        let filters = [
            cond("age", Operator::Gt, 30i64),
            cond("city", Operator::Eq, "Oslo"),
        ];
        let mut m = Matcher::new(&filters);
        let b = batch(&[
            ("a", r#"{"age": 40, "city": "Oslo", "x": 1}"#),
            ("b", r#"{"age": 20, "city": "Oslo", "x": "text"}"#),
            ("c", r#"{"city": "Oslo", "x": [1, {"y": 2}]}"#), // no age: NULL, not matched
            ("d", r#"{"age": null, "city": "Oslo"}"#),
            ("e", r#"{"age": 31.5, "city": "Oslo"}"#), // a float among integers
            ("f", r#"{"ci\u0074y": "Oslo", "age": 99}"#), // an escaped key
            ("g", r#"{"age": 50, "city": "Lima", "age": 10}"#), // the last of a key wins
            (
                "h",
                r#"{"age": 50, "city": "Oslo", "nested": {"age": 1, "city": "x"}}"#,
            ),
        ]);
        // x has a different type in each record: it is not filtered, so it does not matter.
        let mask = m.mask("memory", "s", &b).expect("mask");
        assert_eq!(
            mask,
            vec![true, false, false, false, true, true, false, true]
        );
        // The negation leaves the NULLs out too.
        let not = [FilterExpr::Not(Box::new(cond("age", Operator::Gt, 30i64)))];
        let mask = Matcher::new(&not).mask("memory", "s", &b).expect("mask");
        assert_eq!(
            mask,
            vec![false, true, false, false, false, false, true, false]
        );
    }

    #[test]
    fn the_predicate_is_compiled_again_when_a_batch_has_other_types() {
        let filters = [cond("n", Operator::Ge, 2i64)];
        let mut m = Matcher::new(&filters);
        let ints = batch(&[("a", r#"{"n": 1}"#), ("b", r#"{"n": 2}"#)]);
        assert_eq!(m.mask("m", "s", &ints).expect("ints"), vec![false, true]);
        let floats = batch(&[("c", r#"{"n": 1.5}"#), ("d", r#"{"n": 2.5}"#)]);
        assert_eq!(
            m.mask("m", "s", &floats).expect("floats"),
            vec![false, true]
        );
        // No record has the field: an all-NULL column, nothing matches.
        let none = batch(&[("e", r#"{"m": 5}"#)]);
        assert_eq!(m.mask("m", "s", &none).expect("none"), vec![false]);
        assert_eq!(
            m.mask("m", "s", &ints).expect("ints again"),
            vec![false, true]
        );
    }

    #[test]
    fn values_that_are_not_json_objects_are_type_errors_naming_the_key() {
        let filters = [cond("age", Operator::Gt, 30i64)];
        for (value, says) in [
            ("not json", "is not JSON"),
            (r#"{"age": 40"#, "is not JSON"),
            (r#"{"age": 40} trailing"#, "is not JSON"),
            ("[1, 2]", "is not a JSON object"),
            ("\"text\"", "is not a JSON object"),
        ] {
            let b = batch(&[("ok", r#"{"age": 40}"#), ("bad", value)]);
            let err = Matcher::new(&filters)
                .mask("redis", "people", &b)
                .expect_err(value);
            assert_eq!(err.kind(), ErrorKind::Type, "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains("'bad'") && msg.contains("'people'") && msg.contains(says),
                "{value}: {msg}"
            );
        }
        // Without filters nothing is decoded here (the caller decodes each record).
        let b = batch(&[("bad", "not json")]);
        assert_eq!(
            Matcher::new(&[]).mask("m", "s", &b).expect("none"),
            vec![true]
        );
    }

    #[derive(Debug, Serialize, serde::Deserialize)]
    struct Tagged(Vec<i64>);

    impl KvRecord for Tagged {
        fn kv_key(&self) -> String {
            String::new()
        }
    }

    #[test]
    fn records_must_serialize_to_json_objects() {
        let err = record_bytes("memory", "s", "k", &Tagged(vec![1, 2])).expect_err("array");
        assert_eq!(err.kind(), ErrorKind::Type);
        assert!(
            err.to_string()
                .contains("must serialize to a JSON object, not [1,2]"),
            "{err}"
        );
        let err = from_json_bytes::<Tagged>("memory", "s", "k", b"{\"a\":1}").expect_err("shape");
        assert!(
            err.to_string().contains("does not deserialize into"),
            "{err}"
        );
        let err = from_json_bytes::<Tagged>("memory", "s", "k", b"[1,").expect_err("syntax");
        assert!(err.to_string().contains("is not JSON"), "{err}");
    }
}
