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
pub mod table;

use std::fmt::Debug;

use bytes::Bytes;

use async_trait::async_trait;
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema};
use futures::TryStreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::query::FilterExpr;
use crate::record::{Record, infer_schema, records_to_batch};

pub use connect::{
    ConnectionMode, Connector, ConnectorConfig, ConnectorManager, ConnectorManagerFactory, Lease,
    PoolSettings, TlsSettings,
};
#[cfg(feature = "hdfs")]
pub use hdfs::{HdfsConnector, HdfsKeyValueStore};
pub use memory::MemoryKeyValueStore;
#[cfg(feature = "redis")]
pub use redis::{RedisConnector, RedisKeyValueStore};

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
        let value = to_json(self.kind(), schema, key, record)?;
        KeyValueStoreExt::insert(self, schema, key, &value).await
    }

    /// Replaces the record under `key`; fails when there is none.
    async fn update_record<T: KvRecord>(&self, schema: &str, key: &str, record: &T) -> Result<()> {
        let value = to_json(self.kind(), schema, key, record)?;
        KeyValueStoreExt::update(self, schema, key, &value).await
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
        match KeyValueStoreExt::get(self, schema, key).await? {
            Some(v) => from_json(self.kind(), schema, key, v),
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
    /// them.
    async fn filter_record<T: KvRecord>(
        &self,
        schema: &str,
        filters: &[FilterExpr],
    ) -> Result<Vec<(String, T)>> {
        let kind = self.kind().to_string();
        let mut batches = self.scan(schema, SCAN_BATCH).await?;
        let mut out = Vec::new();
        while let Some(batch) = batches.try_next().await? {
            let batch = batch
                .into_iter()
                .map(|(key, bytes)| {
                    let value = serde_json::from_slice(&bytes).map_err(|e| {
                        Error::type_error(format!(
                            "the value of '{key}' in {kind} schema '{schema}' is not JSON: {e}"
                        ))
                        .with_backend(kind.clone())
                    })?;
                    Ok((key, value))
                })
                .collect::<Result<Vec<(String, Json)>>>()?;
            for (key, value) in matching(&kind, schema, batch, filters)? {
                out.push((key.clone(), from_json(&kind, schema, &key, value)?));
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

/// The entries of `batch` whose values satisfy every filter.
pub fn matching(
    kind: &str,
    schema: &str,
    batch: Vec<(String, Json)>,
    filters: &[FilterExpr],
) -> Result<Vec<(String, Json)>> {
    if filters.is_empty() || batch.is_empty() {
        return Ok(batch);
    }
    let records = batch
        .iter()
        .map(|(key, value)| {
            Record::from_json(value).map_err(|e| {
                Error::type_error(format!(
                    "record '{key}' of {kind} schema '{schema}' is not a JSON object: {e}"
                ))
                .with_backend(kind)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // The columns the records have, plus an all-NULL text column for each filtered field none has.
    let inferred = infer_schema(&records);
    let mut fields: Vec<ArrowField> = inferred.fields().iter().map(|f| (**f).clone()).collect();
    for expr in filters {
        for name in expr.fields() {
            if !fields.iter().any(|f| f.name() == name) {
                fields.push(ArrowField::new(name, DataType::Utf8, true));
            }
        }
    }
    let columns = Arc::new(Schema::new(fields));
    let rows = records_to_batch(&records, &columns).map_err(|e| {
        Error::type_error(format!(
            "records of {kind} schema '{schema}' do not share field types: {e}"
        ))
        .with_backend(kind)
    })?;
    let predicate = crate::pushdown::eval::compile_predicate(filters, &columns)?;
    let Some(predicate) = predicate else {
        return Ok(batch);
    };
    let mask = crate::pushdown::eval::evaluate_mask(&predicate, &rows)?;
    Ok(batch
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask.is_valid(*i) && mask.value(*i))
        .map(|(_, e)| e)
        .collect())
}

fn to_json<T: KvRecord>(kind: &str, schema: &str, key: &str, record: &T) -> Result<Json> {
    let value = serde_json::to_value(record).map_err(|e| {
        Error::type_error(format!(
            "record '{key}' for {kind} schema '{schema}' cannot be serialized: {e}"
        ))
        .with_backend(kind)
    })?;
    if !value.is_object() {
        return Err(Error::type_error(format!(
            "record '{key}' for {kind} schema '{schema}' must serialize to a JSON object, not {value}"
        ))
        .with_backend(kind));
    }
    Ok(value)
}

fn from_json<T: KvRecord>(kind: &str, schema: &str, key: &str, value: Json) -> Result<T> {
    serde_json::from_value(value).map_err(|e| {
        Error::type_error(format!(
            "record '{key}' of {kind} schema '{schema}' does not deserialize into {}: {e}",
            std::any::type_name::<T>()
        ))
        .with_backend(kind)
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
