//! SQL over a key-value store: every schema of the store (a Redis hash) is a table of the
//! attached backend, with the record's key as a column and the record's JSON fields as the
//! others. One implementation for every store ([`KvBackend`], [`KvTable`]); a store is one
//! more [`KeyValueStore`].
//!
//! * **Columns.** A table made here (`CREATE TABLE`, `CREATE TABLE … AS SELECT`, the record
//!   API) has its columns declared in the store itself, in the reserved schema
//!   [`TABLES`] (its JSON column description under the table's name), so the next process
//!   sees them. A schema nobody declared gets a `key` column (the record's key, text) plus
//!   the fields of a sample of its records ([`KvSettings::sample`]).
//! * **Key.** The declared key column (`PRIMARY KEY`), else a column named `key`, else the
//!   first column. Its text is the record's key; the JSON value holds every column,
//!   the key too, so the seed's typed records read what SQL wrote. Reading, the key column
//!   comes from the store's key, not from the JSON.
//! * **Scans.** `key = …` and `key IN (…)` read just those keys (one request); anything else
//!   scans the store in batches. Every filter over the columns is evaluated with
//!   DataFusion's kernels on each decoded batch, so all are exact.
//! * **Writes.** `INSERT` writes its rows in chunks of [`KvSettings::write_batch`], each key
//!   only while it is free (Redis `HSETNX`, pipelined), so nothing another writer stored is
//!   overwritten; when a key is taken (or a row does not fit), the rows the statement wrote
//!   are removed again and nothing is left. UPDATE changes a record only while it still holds
//!   what was read (compare-and-set).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::KeyValueStore;
use crate::database::{Backend, Capabilities, CollectionSpec, Database, FilterSupport, Partition};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{FilterExpr, Operand, Operator, Query};
use crate::record::{
    Record, Value, array_to_values, batch_to_records, column_list, decode_json_objects,
    infer_schema, json_objects, records_to_batch,
};
use crate::store::columns::{self, ColumnDesc};
use crate::store::records as shared;

/// The reserved schema holding the declared tables (field: table name, value: columns).
pub const TABLES: &str = "_dataknobs:tables";

/// Names starting with this are the backend's own, never tables.
const RESERVED: &str = "_dataknobs:";

/// The schema tables are in.
const SCHEMA: &str = "public";

/// How tables over a key-value store read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSettings {
    /// Put before every table's name to make the store's schema name (a namespace in a
    /// shared database, e.g. `app1:`); only schemas starting with it are tables.
    pub prefix: String,
    /// Records read to infer the columns of a schema nobody declared.
    pub sample: usize,
    /// Records asked for per scan request (`HSCAN … COUNT n`).
    pub scan_batch: usize,
    /// Rows INSERT writes per request (one pipeline of `HSETNX`s).
    pub write_batch: usize,
}

impl Default for KvSettings {
    fn default() -> Self {
        KvSettings {
            prefix: String::new(),
            sample: 1000,
            scan_batch: 4096,
            write_batch: 1000,
        }
    }
}

/// A declared table, as kept in [`TABLES`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Declared {
    columns: Vec<ColumnDesc>,
}

impl KvSettings {
    /// The table settings of an attach URL's options (`sample`, `scan_batch`, `write_batch`).
    pub fn from_options(
        options: &crate::config::UrlOptions,
        prefix: String,
        scan_batch: usize,
    ) -> Result<Self> {
        let int = |name: &str, default: usize| -> Result<usize> {
            Ok(options
                .integer(name)?
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .unwrap_or(default))
        };
        Ok(KvSettings {
            prefix,
            sample: int("sample", 1000)?,
            scan_batch: int("scan_batch", scan_batch)?,
            write_batch: int("write_batch", 1000)?,
        })
    }
}

/// The connection mode and pool of an attach URL's options (`mode`, `max_connections`,
/// `connection_timeout`, `idle_timeout`; 0 idle: never closed).
pub fn manager_options(
    options: &crate::config::UrlOptions,
) -> Result<(super::ConnectionMode, super::PoolSettings)> {
    let duration = |name: &str, default: u64| -> Result<std::time::Duration> {
        Ok(options
            .duration(name)?
            .unwrap_or(std::time::Duration::from_secs(default)))
    };
    let mode = match options.text("mode")?.as_deref() {
        Some("pooled") => super::ConnectionMode::Pooled,
        _ => super::ConnectionMode::Single,
    };
    let idle = duration("idle_timeout", 600)?;
    let pool = super::PoolSettings {
        max_connections: options
            .integer("max_connections")?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(10),
        connection_timeout: duration("connection_timeout", 30)?,
        idle_timeout: (!idle.is_zero()).then_some(idle),
    };
    Ok((mode, pool))
}

/// The tables of one key-value store (one attached database).
#[derive(Debug)]
pub struct KvBackend {
    store: Arc<dyn KeyValueStore>,
    settings: KvSettings,
    /// Table names as last listed.
    tables: RwLock<BTreeSet<String>>,
}

impl KvBackend {
    /// The tables of `store`, listed now.
    pub async fn open(store: Arc<dyn KeyValueStore>, settings: KvSettings) -> Result<Self> {
        let b = KvBackend {
            store,
            settings,
            tables: RwLock::new(BTreeSet::new()),
        };
        b.refresh().await?;
        Ok(b)
    }

    /// The store's schema holding table `name`.
    fn hash(&self, name: &str) -> String {
        format!("{}{name}", self.settings.prefix)
    }

    /// The store's schema holding the declared tables.
    fn tables_hash(&self) -> String {
        self.hash(TABLES)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn KeyValueStore> {
        &self.store
    }

    fn err(&self, e: Error) -> Error {
        e.with_backend(self.store.kind().to_string())
    }

    /// Lists the tables again: the store's schemas and the declared tables.
    pub async fn refresh(&self) -> Result<()> {
        let prefix = &self.settings.prefix;
        let mut names: BTreeSet<String> = self
            .store
            .schemas()
            .await?
            .into_iter()
            .filter_map(|n| n.strip_prefix(prefix.as_str()).map(str::to_string))
            .filter(|n| !n.is_empty() && !n.starts_with(RESERVED))
            .collect();
        let mut declared = self.store.scan(&self.tables_hash(), 1024).await?;
        while let Some(batch) = declared.try_next().await? {
            names.extend(batch.into_iter().map(|(k, _)| k));
        }
        *self.tables.write() = names;
        Ok(())
    }

    fn check_name(&self, name: &str) -> Result<()> {
        if name.is_empty() || name.starts_with(RESERVED) {
            return Err(self.err(Error::query(format!(
                "'{name}' is not a table name here: names starting with '{RESERVED}' are \
                 reserved"
            ))));
        }
        Ok(())
    }

    /// The declared columns and key of `name`, if it was declared.
    async fn declared(&self, name: &str) -> Result<Option<(SchemaRef, Option<String>)>> {
        let got = self
            .store
            .get_many(&self.tables_hash(), &[name.to_string()])
            .await?;
        let Some(bytes) = got.into_iter().next().flatten() else {
            return Ok(None);
        };
        let decl: Declared = serde_json::from_slice(&bytes).map_err(|e| {
            self.err(Error::query(format!(
                "the description of table '{name}' in '{TABLES}' at {} is not valid: {e}",
                self.store.location()
            )))
        })?;
        let fields = columns::fields(&decl.columns).map_err(|e| {
            self.err(Error::query(format!(
                "the description of table '{name}' in '{TABLES}': {e}"
            )))
        })?;
        let key = decl.columns.iter().find(|c| c.key).map(|c| c.name.clone());
        Ok(Some((Arc::new(Schema::new(fields)), key)))
    }

    /// `key` plus the fields of a sample of `name`'s records; None when it has none.
    async fn sampled(&self, name: &str) -> Result<Option<SchemaRef>> {
        let hash = self.hash(name);
        if self.store.count(&hash).await? == 0 {
            return Ok(None);
        }
        let mut records = Vec::new();
        let mut stream = self
            .store
            .scan(&hash, self.settings.sample.clamp(1, 10_000))
            .await?;
        while let Some(batch) = stream.try_next().await? {
            for (k, v) in batch {
                let json: serde_json::Value = serde_json::from_slice(&v).map_err(|e| {
                    self.err(Error::type_error(format!(
                        "the value of '{k}' in {} hash '{name}' is not JSON ({e}); a table's \
                         records are JSON objects",
                        self.store.kind()
                    )))
                })?;
                let mut r = Record::from_json(&json).map_err(|e| {
                    self.err(Error::type_error(format!(
                        "the value of '{k}' in {} hash '{name}' is not a JSON object: {e}",
                        self.store.kind()
                    )))
                })?;
                r.remove("key");
                records.push(r);
            }
            if records.len() >= self.settings.sample {
                break;
            }
        }
        let inferred = infer_schema(&records);
        let mut fields = vec![ArrowField::new("key", DataType::Utf8, false)];
        fields.extend(
            inferred
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true)),
        );
        Ok(Some(Arc::new(Schema::new(fields))))
    }

    fn table(&self, name: &str, schema: SchemaRef, key: Option<String>, declared: bool) -> KvTable {
        KvTable {
            store: self.store.clone(),
            name: name.to_string(),
            hash: self.hash(name),
            tables_hash: self.tables_hash(),
            schema: RwLock::new(schema),
            key,
            declared,
            settings: self.settings.clone(),
        }
    }

    async fn find(&self, name: &str) -> Result<Option<KvTable>> {
        self.check_name(name)?;
        if let Some((schema, key)) = self.declared(name).await? {
            return Ok(Some(self.table(name, schema, key, true)));
        }
        match self.sampled(name).await? {
            Some(schema) => Ok(Some(self.table(
                name,
                schema,
                Some("key".to_string()),
                false,
            ))),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl Backend for KvBackend {
    fn kind(&self) -> &str {
        self.store.kind()
    }

    fn location(&self) -> String {
        self.store.location()
    }

    fn schema_names(&self) -> Vec<String> {
        vec![SCHEMA.to_string()]
    }

    fn collection_names(&self, schema: &str) -> Vec<String> {
        if schema != SCHEMA {
            return Vec::new();
        }
        self.tables.read().iter().cloned().collect()
    }

    async fn open(&self, schema: &str, name: &str) -> Result<Option<Arc<dyn Database>>> {
        if schema != SCHEMA {
            return Ok(None);
        }
        let found = self.find(name).await?;
        if found.is_some() {
            self.tables.write().insert(name.to_string());
        }
        Ok(found.map(|t| Arc::new(t) as Arc<dyn Database>))
    }

    async fn create_collection(
        &self,
        schema: &str,
        name: &str,
        spec: CollectionSpec,
        if_not_exists: bool,
    ) -> Result<Arc<dyn Database>> {
        if schema != SCHEMA {
            return Err(self.err(Error::unsupported(format!(
                "a {} database has one schema, '{SCHEMA}'",
                self.store.kind()
            ))));
        }
        if let Some(t) = self.find(name).await? {
            if if_not_exists {
                self.tables.write().insert(name.to_string());
                return Ok(Arc::new(t));
            }
            return Err(self.err(Error::already_exists(format!(
                "table '{name}' exists in {}",
                self.store.location()
            ))));
        }
        let columns = crate::backends::file::records::plain_types(&spec.schema);
        if columns.fields().is_empty() {
            return Err(self.err(Error::query(format!(
                "table '{name}' needs at least one column (its key)"
            ))));
        }
        let key = match &spec.key {
            Some(k) => {
                if columns.field_with_name(k).is_err() {
                    return Err(self.err(Error::query(format!(
                        "the key '{k}' of '{name}' is not one of its columns ({})",
                        column_list(&columns)
                    ))));
                }
                Some(k.clone())
            }
            None if columns.field_with_name("key").is_ok() => Some("key".to_string()),
            // Without a key column, each row is stored under an id of its own.
            None => None,
        };
        if let Some(k) = &key
            && let Ok(f) = columns.field_with_name(k)
            && !exact_key_type(f.data_type())
        {
            return Err(self.err(Error::unsupported(format!(
                "the key column '{k}' of '{name}' is {}: a {} table's key is text or an \
                 integer (its text is the record's key)",
                f.data_type(),
                self.store.kind()
            ))));
        }
        // The key column is never NULL: it is the record's key.
        let fields: Vec<ArrowField> = columns
            .fields()
            .iter()
            .map(|f| {
                let f = f.as_ref().clone();
                if Some(f.name()) == key.as_ref() {
                    f.with_nullable(false)
                } else {
                    f
                }
            })
            .collect();
        let columns: SchemaRef = Arc::new(Schema::new(fields));
        let decl = Declared {
            columns: columns::describe(&columns, key.as_deref()),
        };
        let bytes = serde_json::to_vec(&decl)
            .map_err(|e| Error::internal(format!("describing table '{name}': {e}")))?;
        self.store
            .insert_many(
                &self.tables_hash(),
                &[(name.to_string(), Bytes::from(bytes))],
            )
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::AlreadyExists {
                    self.err(Error::already_exists(format!(
                        "table '{name}' was created in {} at the same time by another client",
                        self.store.location()
                    )))
                } else {
                    e
                }
            })?;
        self.tables.write().insert(name.to_string());
        Ok(Arc::new(self.table(name, columns, key, true)))
    }

    fn ctas_key(&self, schema: &Schema) -> Option<String> {
        // The rule: a `key` column, else the first column is the record's key.
        // Only a text or integer column can be the key; otherwise rows get ids of their own.
        schema
            .field_with_name("key")
            .ok()
            .or_else(|| schema.fields().first().map(|f| f.as_ref()))
            .filter(|f| exact_key_type(&crate::backends::file::records::plain_type(f.data_type())))
            .map(|f| f.name().clone())
    }

    async fn drop_collection(&self, schema: &str, name: &str, if_exists: bool) -> Result<bool> {
        if schema != SCHEMA {
            return Ok(false);
        }
        self.check_name(name)?;
        let declared = self.declared(name).await?.is_some();
        let records = self.store.count(&self.hash(name)).await?;
        if !declared && records == 0 {
            self.tables.write().remove(name);
            return crate::database::drop_missing(
                self.store.kind(),
                name,
                &format!("in {}", self.store.location()),
                if_exists,
            );
        }
        self.store.drop_schema(&self.hash(name)).await?;
        if declared {
            self.store
                .delete_many(&self.tables_hash(), &[name.to_string()])
                .await?;
        }
        self.tables.write().remove(name);
        Ok(true)
    }
}

/// One schema of a key-value store as a table.
#[derive(Debug)]
pub struct KvTable {
    store: Arc<dyn KeyValueStore>,
    name: String,
    /// The store's schema holding the records (the prefix and the name).
    hash: String,
    /// The store's schema holding the declared tables.
    tables_hash: String,
    schema: RwLock<SchemaRef>,
    /// The key column: its text is the record's key. None: each row has an id of its own
    /// (a new UUID when inserted), and duplicate rows are allowed.
    key: Option<String>,
    /// Are the columns declared in [`TABLES`] (else sampled)?
    declared: bool,
    settings: KvSettings,
}

/// Is `t` a type whose values have one text form (so a key lookup finds every match)?
fn exact_key_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Does `v` have the kind of the key column `t` (text for text, an integer for integers)?
fn literal_fits(t: &DataType, v: &Value) -> bool {
    match v {
        Value::String(_) => matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
        Value::Int(_) => t.is_integer(),
        _ => false,
    }
}

/// The keys `expr` can be true for, when it pins the key column `key` (of type `t`): `key =
/// v`, `key IN (…)`, an OR of such, an AND with at least one such. NULL matches nothing; a
/// literal of another kind than the key's gives None (a scan decides).
fn key_set(expr: &FilterExpr, key: &str, t: &DataType) -> Option<Vec<String>> {
    match expr {
        FilterExpr::Cond(c) if c.field == key => {
            let values: Vec<&Value> = match (&c.op, &c.operand) {
                (Operator::Eq, Operand::One(v)) => vec![v],
                (Operator::In, Operand::List(vs)) => vs.iter().collect(),
                _ => return None,
            };
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                if v.is_null() {
                    continue;
                }
                if !literal_fits(t, v) {
                    return None;
                }
                out.push(v.to_text());
            }
            Some(out)
        }
        FilterExpr::Or(children) => {
            let mut out = Vec::new();
            for c in children {
                out.extend(key_set(c, key, t)?);
            }
            Some(out)
        }
        FilterExpr::And(children) => {
            let mut sets = children.iter().filter_map(|c| key_set(c, key, t));
            let first = sets.next()?;
            Some(sets.fold(first, |acc, other| {
                let other: HashSet<String> = other.into_iter().collect();
                acc.into_iter().filter(|k| other.contains(k)).collect()
            }))
        }
        FilterExpr::Const(Some(false)) | FilterExpr::Const(None) => Some(Vec::new()),
        _ => None,
    }
}

impl KvTable {
    fn kind(&self) -> &str {
        self.store.kind()
    }

    fn err(&self, e: Error) -> Error {
        e.with_backend(self.store.kind().to_string())
    }

    fn columns(&self) -> SchemaRef {
        self.schema.read().clone()
    }

    /// The index of the key column, if there is one.
    fn key_index(&self, schema: &Schema) -> Result<Option<usize>> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        schema.index_of(key).map(Some).map_err(|_| {
            Error::internal(format!(
                "the key column '{key}' of '{}' is not a column",
                self.name
            ))
        })
    }

    /// The keys a query reads when its filters pin the key (`key = v`, `key IN (…)`, ORs of
    /// those, ANDed with anything); None when it must scan.
    fn lookup_keys(&self, filters: &[FilterExpr]) -> Option<Vec<String>> {
        let schema = self.columns();
        let key = self.key.as_ref()?;
        let key_type = schema.field_with_name(key).ok()?.data_type().clone();
        if !exact_key_type(&key_type) {
            return None;
        }
        let keys = key_set(&FilterExpr::And(filters.to_vec()), key, &key_type)?;
        let mut seen = HashSet::new();
        Some(
            keys.into_iter()
                .filter(|k| seen.insert(k.clone()))
                .collect(),
        )
    }

    /// Decodes records' values into a batch of the table's columns, the key column made from
    /// the keys. An error names the record that does not fit.
    fn decode(&self, schema: &SchemaRef, keys: &[String], values: &[Bytes]) -> Result<RecordBatch> {
        let ki = self.key_index(schema)?;
        let value_fields: Vec<ArrowField> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != ki)
            .map(|(_, f)| f.as_ref().clone().with_nullable(true))
            .collect();
        let value_schema: SchemaRef = Arc::new(Schema::new(value_fields));
        let decoded = match decode_json_objects(&value_schema, values) {
            Ok(b) => b,
            Err(e) => {
                for (k, v) in keys.iter().zip(values) {
                    if let Err(one) = decode_json_objects(&value_schema, std::slice::from_ref(v)) {
                        return Err(self.err(Error::type_error(format!(
                            "record '{k}' of {} table '{}' at {} does not fit its columns ({}): \
                             {}",
                            self.kind(),
                            self.name,
                            self.store.location(),
                            column_list(schema),
                            one.message()
                        ))));
                    }
                }
                return Err(self.err(e));
            }
        };
        let Some(ki) = ki else {
            return Ok(RecordBatch::try_new_with_options(
                schema.clone(),
                decoded.columns().to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(keys.len())),
            )?);
        };
        let key_field = schema.field(ki);
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(keys.iter()));
        let key_col = if key_field.data_type() == &DataType::Utf8 {
            text
        } else {
            let cast = datafusion::arrow::compute::cast_with_options(
                &text,
                key_field.data_type(),
                &datafusion::arrow::compute::CastOptions {
                    safe: true,
                    ..Default::default()
                },
            )?;
            // A key that is not a value of the key's type, or not in its one text form
            // (`05` for an integer key), would be missed by key lookups: refused.
            let back = datafusion::arrow::compute::cast(&cast, &DataType::Utf8)?;
            let back = back
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| Error::internal("a cast to Utf8 gave no strings"))?;
            for (i, k) in keys.iter().enumerate() {
                if back.is_null(i) || back.value(i) != k {
                    return Err(self.err(Error::type_error(format!(
                        "key '{k}' of {} table '{}' at {} is not a {} in its plain form \
                         (the key column '{}')",
                        self.kind(),
                        self.name,
                        self.store.location(),
                        key_field.data_type(),
                        key_field.name()
                    ))));
                }
            }
            cast
        };
        let mut cols = decoded.columns().to_vec();
        cols.insert(ki, key_col);
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(keys.len())),
        )?)
    }

    /// The key (record id) of a record to write: `forced`, its id, its key field, or new;
    /// the key field is set to it.
    fn id_of(&self, record: &mut Record, forced: Option<&str>) -> Result<String> {
        let id = shared::record_id(record, self.key.as_deref(), forced, &self.name)
            .map_err(|e| self.err(e))?;
        if id.is_empty() {
            return Err(self.err(Error::query(format!(
                "an empty key is not usable in '{}'",
                self.name
            ))));
        }
        Ok(id)
    }

    /// Adds a column for each typed field of `records` the table lacks: in the declaration
    /// (a compare-and-set on it, again if another writer changed it first) for a declared
    /// table, here for a sampled one.
    async fn grow_for(&self, records: &[Record]) -> Result<()> {
        let schema = self.columns();
        let new_fields =
            shared::new_fields(&schema, records, &self.name).map_err(|e| self.err(e))?;
        if new_fields.is_empty() {
            return Ok(());
        }
        let grow = |current: &Schema| shared::grown(current, &new_fields);
        if !self.declared {
            let grown = grow(&schema);
            *self.schema.write() = grown;
            return Ok(());
        }
        for _ in 0..20 {
            let got = self
                .store
                .get_many(&self.tables_hash, std::slice::from_ref(&self.name))
                .await?
                .into_iter()
                .next()
                .flatten()
                .ok_or_else(|| {
                    self.err(Error::not_found(format!(
                        "table '{}' was dropped meanwhile",
                        self.name
                    )))
                })?;
            let decl: Declared = serde_json::from_slice(&got).map_err(|e| {
                self.err(Error::query(format!(
                    "the description of table '{}' is not valid: {e}",
                    self.name
                )))
            })?;
            let current =
                Schema::new(columns::fields(&decl.columns).map_err(|e| self.err(Error::query(e)))?);
            let grown = grow(&current);
            let next = Declared {
                // The key as the description says (another client may have made the table
                // anew since this one was opened).
                columns: columns::describe(
                    &grown,
                    decl.columns.iter().find(|c| c.key).map(|c| c.name.as_str()),
                ),
            };
            let bytes = serde_json::to_vec(&next)
                .map_err(|e| Error::internal(format!("describing '{}': {e}", self.name)))?;
            if self
                .store
                .replace(
                    &self.tables_hash,
                    &self.name,
                    Some(&got),
                    Bytes::from(bytes),
                )
                .await?
            {
                *self.schema.write() = grown;
                return Ok(());
            }
        }
        Err(self.err(Error::query(format!(
            "adding columns to '{}': its description kept changing under 20 attempts (other \
             clients are changing it); run the statement again",
            self.name
        ))))
    }

    /// Checks and encodes records (all before anything is written): (key, JSON).
    fn prepare(
        &self,
        records: Vec<Record>,
        forced: Option<&[String]>,
    ) -> Result<Vec<(String, Bytes)>> {
        let schema = self.columns();
        let mut ids = Vec::with_capacity(records.len());
        let mut rows = Vec::with_capacity(records.len());
        for (i, mut r) in records.into_iter().enumerate() {
            shared::fit_columns(&schema, &mut r, &self.name, "")
                .map_err(|e| self.err(Error::query(e.message().to_string())))?;
            let id = self.id_of(&mut r, forced.and_then(|f| f.get(i)).map(String::as_str))?;
            ids.push(id);
            rows.push(r);
        }
        let batch = records_to_batch(&rows, &schema).map_err(|e| self.err(e))?;
        self.encode(&batch, Some(ids))
    }

    /// (key, JSON) of each row of `batch` (of the table's columns); the keys are the key
    /// column's text unless given.
    fn encode(
        &self,
        batch: &RecordBatch,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<(String, Bytes)>> {
        let bodies = json_objects(batch)?;
        let ids = match ids {
            Some(ids) => ids,
            None => {
                let schema = batch.schema();
                let Some(ki) = self.key_index(&schema)? else {
                    return Ok((0..batch.num_rows())
                        .map(|_| crate::record::new_record_id())
                        .zip(bodies)
                        .collect());
                };
                let col = batch.column(ki);
                if col.null_count() == 0
                    && (col.data_type().is_integer()
                        || matches!(
                            col.data_type(),
                            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                        ))
                {
                    // Strings as they are, integers in their decimal form (as to_text).
                    let text = datafusion::arrow::compute::cast(col, &DataType::Utf8)?;
                    let text = text
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .ok_or_else(|| Error::internal("a cast to Utf8 gave no strings"))?;
                    return Ok(text
                        .iter()
                        .map(|k| k.unwrap_or_default().to_string())
                        .zip(bodies)
                        .collect());
                }
                let values = array_to_values(schema.field(ki), col)?;
                values
                    .iter()
                    .map(|v| {
                        if v.is_null() {
                            Err(self.err(Error::query(format!(
                                "INSERT into {}: a row gives NULL to the key column '{}', \
                                 which is NOT NULL",
                                self.name,
                                schema.field(ki).name()
                            ))))
                        } else {
                            Ok(v.to_text())
                        }
                    })
                    .collect::<Result<_>>()?
            }
        };
        Ok(ids.into_iter().zip(bodies).collect())
    }

    /// `batch` as rows of the table: missing trailing columns NULL, each column cast to the
    /// column's type (checked: a value that does not fit is an error naming the column).
    fn conform(&self, schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
        if batch.num_columns() > schema.fields().len() {
            return Err(self.err(Error::query(format!(
                "INSERT into '{}' got {} columns, the table has {} ({})",
                self.name,
                batch.num_columns(),
                schema.fields().len(),
                column_list(schema)
            ))));
        }
        let mut cols = Vec::with_capacity(schema.fields().len());
        for (i, field) in schema.fields().iter().enumerate() {
            let Some(col) = batch.columns().get(i) else {
                cols.push(datafusion::arrow::array::new_null_array(
                    field.data_type(),
                    batch.num_rows(),
                ));
                continue;
            };
            if col.data_type() == field.data_type() {
                cols.push(col.clone());
                continue;
            }
            let cast = datafusion::arrow::compute::cast_with_options(
                col,
                field.data_type(),
                &datafusion::arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .map_err(|e| {
                self.err(Error::type_error(format!(
                    "column '{}' of '{}' ({}): {e}",
                    field.name(),
                    self.name,
                    field.data_type()
                )))
            })?;
            cols.push(cast);
        }
        for (field, col) in schema.fields().iter().zip(&cols) {
            if !field.is_nullable() && col.null_count() > 0 {
                return Err(self.err(Error::type_error(format!(
                    "column '{}' of '{}' is NOT NULL; the inserted rows hold NULL there",
                    field.name(),
                    self.name
                ))));
            }
        }
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)
    }

    fn to_record(&self, id: &str, value: &Bytes) -> Result<Record> {
        let schema = self.columns();
        let batch = self.decode(&schema, &[id.to_string()], std::slice::from_ref(value))?;
        let mut records = batch_to_records(&batch, None)?;
        let mut r = records.pop().ok_or_else(|| {
            self.err(Error::query(format!(
                "record '{id}' of '{}' decoded to nothing",
                self.name
            )))
        })?;
        r.set_id(id);
        Ok(r)
    }

    fn duplicate(&self, key: &str, statement: bool) -> Error {
        self.err(Error::already_exists(if statement {
            format!(
                "INSERT into {} failed; nothing was inserted: a row with id '{key}' exists \
                 already (the key column '{}')",
                self.name,
                self.key.as_deref().unwrap_or_default()
            )
        } else {
            format!(
                "a record with id '{key}' exists in '{}' (or appears twice in the batch)",
                self.name
            )
        }))
    }

    /// Removes the records a failed write added: `written` (known to be ours) and
    /// `unsure` (a request that failed may or may not have stored them: each is removed
    /// only while it holds our value). Tried twice; the error says what may remain.
    async fn undo(&self, written: &[String], unsure: &[(String, Bytes)]) -> Result<()> {
        let mut last = None;
        for _ in 0..2 {
            let mut result = Ok(());
            for chunk in written.chunks(10_000) {
                if let Err(e) = self.store.delete_many(&self.hash, chunk).await {
                    result = Err(e);
                    break;
                }
            }
            if result.is_ok() && !unsure.is_empty() {
                result = self
                    .store
                    .delete_exact(&self.hash, unsure)
                    .await
                    .map(|_| ());
            }
            match result {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| Error::internal("undo failed"));
        tracing::warn!(
            "removing {} records of a failed write to '{}': {e}",
            written.len() + unsure.len(),
            self.name
        );
        Err(e)
    }
}

/// The key in an "record 'k' already exists" message.
fn key_in(e: &Error) -> String {
    e.message()
        .split("record '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_default()
        .to_string()
}

#[async_trait]
impl Database for KvTable {
    fn backend_name(&self) -> &str {
        self.store.kind()
    }

    fn collection_name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> SchemaRef {
        self.columns()
    }

    fn key_column(&self) -> Option<String> {
        self.key.clone()
    }

    async fn create(&self, record: Record) -> Result<String> {
        self.grow_for(std::slice::from_ref(&record)).await?;
        let entries = self.prepare(vec![record], None)?;
        let id = entries
            .first()
            .map(|(k, _)| k.clone())
            .ok_or_else(|| Error::internal("no record prepared"))?;
        self.store
            .insert_many(&self.hash, &entries)
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::AlreadyExists {
                    self.duplicate(&id, false)
                } else {
                    e
                }
            })?;
        Ok(id)
    }

    async fn read(&self, id: &str) -> Result<Option<Record>> {
        let got = self.store.get_many(&self.hash, &[id.to_string()]).await?;
        match got.into_iter().next().flatten() {
            None => Ok(None),
            Some(v) => self.to_record(id, &v).map(Some),
        }
    }

    async fn update(&self, id: &str, record: Record) -> Result<bool> {
        self.grow_for(std::slice::from_ref(&record)).await?;
        let mut entries = self.prepare(vec![record], Some(&[id.to_string()]))?;
        let (_, value) = entries
            .pop()
            .ok_or_else(|| Error::internal("no record prepared"))?;
        self.store.replace(&self.hash, id, None, value).await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        Ok(self
            .store
            .delete_many(&self.hash, &[id.to_string()])
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        self.store.exists(&self.hash, id).await
    }

    async fn upsert(&self, id: &str, record: Record) -> Result<String> {
        self.grow_for(std::slice::from_ref(&record)).await?;
        let entries = self.prepare(vec![record], Some(&[id.to_string()]))?;
        self.store.put_many(&self.hash, &entries).await?;
        Ok(id.to_string())
    }

    async fn clear(&self) -> Result<u64> {
        self.store.drop_schema(&self.hash).await
    }

    async fn batch_create(&self, records: Vec<Record>) -> Result<Vec<String>> {
        self.grow_for(&records).await?;
        let entries = self.prepare(records, None)?;
        let ids = entries.iter().map(|(k, _)| k.clone()).collect();
        let mut seen = HashSet::new();
        for (k, _) in &entries {
            if !seen.insert(k.as_str()) {
                return Err(self.duplicate(k, false));
            }
        }
        // One request: all or nothing.
        self.store
            .insert_many(&self.hash, &entries)
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::AlreadyExists {
                    self.duplicate(&key_in(&e), false)
                } else {
                    e
                }
            })?;
        Ok(ids)
    }

    async fn batch_read(&self, ids: &[String]) -> Result<Vec<Option<Record>>> {
        let got = self.store.get_many(&self.hash, ids).await?;
        ids.iter()
            .zip(got)
            .map(|(id, v)| v.map(|v| self.to_record(id, &v)).transpose())
            .collect()
    }

    async fn batch_update(&self, updates: Vec<(String, Record)>) -> Result<Vec<bool>> {
        let records: Vec<Record> = updates.iter().map(|(_, r)| r.clone()).collect();
        self.grow_for(&records).await?;
        let ids: Vec<String> = updates.iter().map(|(id, _)| id.clone()).collect();
        let entries = self.prepare(records, Some(&ids))?;
        let mut out = Vec::with_capacity(entries.len());
        for (id, value) in entries {
            out.push(self.store.replace(&self.hash, &id, None, value).await?);
        }
        Ok(out)
    }

    async fn batch_delete(&self, ids: &[String]) -> Result<Vec<bool>> {
        self.store.delete_many(&self.hash, ids).await
    }

    fn filter_support(&self, filter: &FilterExpr) -> FilterSupport {
        // Evaluated with DataFusion's kernels on the decoded batches: exact.
        shared::exact_on_columns(&self.columns(), filter)
    }

    fn describe_scan(&self, query: &Query) -> String {
        let request = match self.lookup_keys(&query.filters) {
            Some(keys) => self.store.describe_get(&self.hash, &keys),
            None => self
                .store
                .describe_scan(&self.hash, self.settings.scan_batch),
        };
        if query.filters.is_empty() {
            request
        } else {
            format!("{request}; {query} evaluated on each batch")
        }
    }

    async fn count(&self, query: Option<&Query>) -> Result<u64> {
        if counts_all(query) {
            self.store.count(&self.hash).await
        } else {
            crate::local::count(self, query).await
        }
    }

    fn describe_count(&self, query: Option<&Query>) -> String {
        match query {
            Some(q) if !counts_all(query) => format!("count of {}", self.describe_scan(q)),
            _ => format!(
                "count of the records of {} schema '{}' at {}",
                self.kind(),
                self.name,
                self.store.location()
            ),
        }
    }

    async fn scan(
        &self,
        query: &Query,
        _partition: Partition,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.columns();
        let predicate = crate::pushdown::eval::compile_predicate(&query.filters, &schema)?;
        let shape = shared::ScanShape::of(&schema, query, &self.name).map_err(|e| self.err(e))?;
        let out_schema = shape.schema.clone();
        let (skip, limit) = shared::offset_and_limit(query);
        let batches = match self.lookup_keys(&query.filters) {
            Some(keys) => {
                let values = self.store.get_many(&self.hash, &keys).await?;
                let found: Vec<(String, Bytes)> = keys
                    .into_iter()
                    .zip(values)
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
                futures::stream::iter([Ok(found)]).boxed()
            }
            None => {
                self.store
                    .scan(&self.hash, self.settings.scan_batch)
                    .await?
            }
        };
        let this = Arc::new(KvTable {
            store: self.store.clone(),
            name: self.name.clone(),
            hash: self.hash.clone(),
            tables_hash: self.tables_hash.clone(),
            schema: RwLock::new(schema.clone()),
            key: self.key.clone(),
            declared: self.declared,
            settings: self.settings.clone(),
        });
        let stream = batches
            .try_filter(|b| futures::future::ready(!b.is_empty()))
            .map(move |batch| {
                let (keys, values): (Vec<String>, Vec<Bytes>) = batch?.into_iter().unzip();
                let rows = this.decode(&schema, &keys, &values)?;
                shape.apply(&rows, keys, predicate.as_ref())
            })
            .boxed();
        let limited = shared::skip_and_limit(stream, skip, limit);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            out_schema,
            limited.map_err(|e| e.into_datafusion()),
        )))
    }

    async fn insert(&self, mut data: SendableRecordBatchStream) -> Result<u64> {
        // Written chunk by chunk as the rows arrive, a few chunks in flight while the next
        // ones are encoded. Each key only if free (HSETNX): nothing another writer stored is
        // overwritten, and a key given twice fails on its second row. A failure waits for
        // the writes in flight, then removes everything the statement wrote.
        const IN_FLIGHT: usize = 4;
        let schema = self.columns();
        let chunk = self.settings.write_batch.max(1);
        let mut written: Vec<String> = Vec::new();
        let mut pending: Vec<(String, Bytes)> = Vec::new();
        let mut failure: Option<Error> = None;
        let mut inflight = futures::stream::FuturesOrdered::new();
        // Chunks whose request failed: stored or not, no one can say.
        let mut unsure: Vec<(String, Bytes)> = Vec::new();
        let mut settle =
            |part: Vec<(String, Bytes)>, set: Result<Vec<bool>>, failure: &mut Option<Error>| {
                match set {
                    Ok(set) => {
                        for ((k, _), ok) in part.into_iter().zip(set) {
                            if ok {
                                written.push(k);
                            } else if failure.is_none() {
                                *failure = Some(self.duplicate(&k, true));
                            }
                        }
                    }
                    Err(e) => {
                        unsure.extend(part);
                        failure.get_or_insert(e);
                    }
                }
            };
        let mut done = false;
        while !done && failure.is_none() {
            match data.next().await {
                None => done = true,
                Some(batch) => {
                    let encoded = batch
                        .map_err(Error::from)
                        .and_then(|b| self.conform(&schema, &b))
                        .and_then(|b| self.encode(&b, None));
                    match encoded {
                        Ok(rows) => pending.extend(rows),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            }
            while failure.is_none() && (pending.len() >= chunk || (done && !pending.is_empty())) {
                let rest = pending.split_off(pending.len().min(chunk));
                let part = std::mem::replace(&mut pending, rest);
                let (store, hash) = (self.store.clone(), self.hash.clone());
                inflight.push_back(async move {
                    let set = store.put_new(&hash, &part).await;
                    (part, set)
                });
                while inflight.len() >= IN_FLIGHT {
                    if let Some((part, set)) = inflight.next().await {
                        settle(part, set, &mut failure);
                    }
                }
            }
        }
        while let Some((part, set)) = inflight.next().await {
            settle(part, set, &mut failure);
        }
        if let Some(e) = failure {
            if let Err(undo) = self.undo(&written, &unsure).await {
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "{}; removing the rows it wrote failed too ({}): up to {} rows of this \
                         statement may remain in '{}'",
                        e.message(),
                        undo.message(),
                        written.len() + unsure.len(),
                        self.name
                    ),
                )
                .with_backend(self.kind().to_string()));
            }
            return Err(e);
        }
        Ok(written.len() as u64)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_batches: false,
            schema_growth: true,
            native_dml: true,
            row_ids: true,
            exact_sort: false,
            key_lookup: true,
            native_count: true,
        }
    }

    fn supports_row_ids(&self) -> bool {
        true
    }

    async fn delete_where(&self, filter: Option<&FilterExpr>) -> Result<u64> {
        let ids = shared::matching_ids(self, filter).await?;
        self.delete_ids(&ids).await
    }

    async fn delete_ids(&self, ids: &[String]) -> Result<u64> {
        let mut n = 0;
        for chunk in ids.chunks(10_000) {
            n += self
                .store
                .delete_many(&self.hash, chunk)
                .await?
                .iter()
                .filter(|d| **d)
                .count() as u64;
        }
        Ok(n)
    }

    async fn update_where(
        &self,
        assignments: &[(String, datafusion::logical_expr::Expr)],
        filter: Option<&FilterExpr>,
    ) -> Result<u64> {
        // The candidates from a scan; then, a chunk at a time, each record is read again,
        // the WHERE evaluated on it and the SET computed from it, and written only while
        // it still holds what was read. A record changed meanwhile goes round again (as
        // PostgreSQL re-checks a row another transaction changed).
        let schema = self.columns();
        let compiled = shared::compile_assignments(&schema, assignments, &self.name)
            .map_err(|e| self.err(e))?;
        let filters: Vec<FilterExpr> = filter.cloned().into_iter().collect();
        let predicate = crate::pushdown::eval::compile_predicate(&filters, &schema)?;
        let mut pending = shared::matching_ids(self, filter).await?;
        let mut changed = 0;
        for _round in 0..20 {
            if pending.is_empty() {
                return Ok(changed);
            }
            let mut stale = Vec::new();
            // Key changes all in one request (keys may move onto each other).
            let moves_key = self
                .key
                .as_ref()
                .is_some_and(|k| assignments.iter().any(|(c, _)| c == k));
            let size = if moves_key {
                pending.len().max(1)
            } else {
                1000
            };
            for chunk in pending.chunks(size) {
                let current = self.store.get_many(&self.hash, chunk).await?;
                let (ids, olds): (Vec<String>, Vec<Bytes>) = chunk
                    .iter()
                    .cloned()
                    .zip(current)
                    .filter_map(|(id, v)| v.map(|v| (id, v)))
                    .unzip();
                if ids.is_empty() {
                    continue;
                }
                let rows = self.decode(&schema, &ids, &olds)?;
                let (ids, olds, rows) = match &predicate {
                    None => (ids, olds, rows),
                    Some(p) => {
                        let mask = crate::pushdown::eval::evaluate_mask(p, &rows)?;
                        let keep: Vec<bool> = (0..rows.num_rows())
                            .map(|i| mask.is_valid(i) && mask.value(i))
                            .collect();
                        let ids = ids
                            .into_iter()
                            .zip(&keep)
                            .filter(|(_, k)| **k)
                            .map(|(v, _)| v);
                        let olds = olds
                            .into_iter()
                            .zip(&keep)
                            .filter(|(_, k)| **k)
                            .map(|(v, _)| v);
                        (
                            ids.collect(),
                            olds.collect(),
                            filter_record_batch(&rows, &mask)?,
                        )
                    }
                };
                let values = shared::assigned_values(&compiled, &rows)?;
                let (n, changed_meanwhile) = self.apply_updates(&ids, olds, &values).await?;
                changed += n;
                stale.extend(changed_meanwhile);
            }
            pending = stale;
        }
        Err(self.err(Error::query(format!(
            "UPDATE of {}: {} rows kept changing under other clients' writes (20 rounds); \
             the others were updated, run it again for these",
            self.name,
            pending.len()
        ))))
    }

    async fn update_ids(&self, ids: &[String], values: RecordBatch) -> Result<u64> {
        // The rows were chosen by DataFusion; a record changed since is left as it is.
        let current = self.store.get_many(&self.hash, ids).await?;
        let (mut present, mut olds, mut keep) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (id, v)) in ids.iter().zip(current).enumerate() {
            if let Some(v) = v {
                present.push(id.clone());
                olds.push(v);
                keep.push(i as u32);
            }
        }
        let values = datafusion::arrow::compute::take_record_batch(
            &values,
            &datafusion::arrow::array::UInt32Array::from(keep),
        )?;
        Ok(self.apply_updates(&present, olds, &values).await?.0)
    }
}

impl KvTable {
    /// Writes `values` (one row per id: the changed columns) over the records `olds` (as
    /// read), each only while it still holds those bytes. Returns how many changed and the
    /// ids whose record changed meanwhile (not written).
    async fn apply_updates(
        &self,
        ids: &[String],
        olds: Vec<Bytes>,
        values: &RecordBatch,
    ) -> Result<(u64, Vec<String>)> {
        let (names, changes) = shared::changes(values)?;
        let moves_key = self.key.as_ref().is_some_and(|k| names.contains(k));
        let key = self.key.clone().unwrap_or_default();
        // Every row's new record before anything is written.
        let mut plans = Vec::with_capacity(ids.len());
        let mut new_keys = HashSet::new();
        for ((id, old), change) in ids.iter().zip(olds).zip(changes) {
            let mut record = self.to_record(id, &old)?;
            for n in &names {
                record.set(n.clone(), change.get(n).cloned().unwrap_or(Value::Null));
            }
            let new_id = if moves_key {
                match record.get(&key) {
                    Some(v) if !v.is_null() => v.to_text(),
                    _ => {
                        return Err(self.err(Error::query(format!(
                            "UPDATE would set the key column '{key}' of '{}' to NULL",
                            self.name
                        ))));
                    }
                }
            } else {
                id.clone()
            };
            if moves_key && !new_keys.insert(new_id.clone()) {
                return Err(self.err(Error::already_exists(format!(
                    "UPDATE of {} failed: two rows would have key '{new_id}'",
                    self.name
                ))));
            }
            record.set_id(new_id.clone());
            let mut enc = self.prepare(vec![record], Some(std::slice::from_ref(&new_id)))?;
            let (_, value) = enc
                .pop()
                .ok_or_else(|| Error::internal("no record prepared"))?;
            plans.push((id.clone(), new_id, old, value));
        }
        let (moving, staying): (Vec<_>, Vec<_>) =
            plans.into_iter().partition(|(id, new_id, ..)| id != new_id);
        let mut changed = 0;
        if !moving.is_empty() {
            // One all-or-nothing request: every old record still as read, every new key
            // free (or one of the moving ones); then the moves.
            let moves: Vec<(String, Bytes, String, Bytes)> = moving
                .into_iter()
                .map(|(id, new_id, old, value)| (id, old, new_id, value))
                .collect();
            match self.store.move_many(&self.hash, &moves).await? {
                None => changed += moves.len() as u64,
                Some(super::MoveConflict::Taken(k)) => {
                    return Err(self.err(Error::already_exists(format!(
                        "UPDATE of {} failed: a row with id '{k}' exists already",
                        self.name
                    ))));
                }
                Some(super::MoveConflict::Changed(k)) => {
                    return Err(self.err(Error::query(format!(
                        "UPDATE of {} failed: row '{k}' was changed or deleted by another \
                         client while the statement ran; its key change was not written (run \
                         it again)",
                        self.name
                    ))));
                }
            }
        }
        let mut stale = Vec::new();
        for (id, _, old, value) in staying {
            if self
                .store
                .replace(&self.hash, &id, Some(&old), value)
                .await?
            {
                changed += 1;
            } else {
                stale.push(id);
            }
        }
        Ok((changed, stale))
    }
}

/// Is a count of `query` the number of records (no filter, offset or limit)?
fn counts_all(query: Option<&Query>) -> bool {
    query.is_none_or(|q| q.filters.is_empty() && q.offset.is_none() && q.limit.is_none())
}
