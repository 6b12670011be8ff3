//! The [`Database`] trait (one collection of records in one backend) and the [`Backend`] trait
//! (a store holding collections, attached to the engine as a catalog).
//!
//! The record API (`create`, `read`, `search`, …) is what the seed package offers. The SQL side
//! (`schema`, `scan`, `filter_support`, `insert`, `delete_where`, `update_where`) is what the
//! DataFusion bridge in `crate::table` calls. Optional capabilities have default
//! implementations that return [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) with
//! the backend's name — never a silent no-op.

use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::Expr;

use crate::error::{Error, Result};
use crate::query::{FilterExpr, Query, SortSpec};
use crate::record::Record;

/// Can a backend evaluate a filter with exactly DataFusion's semantics?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterSupport {
    /// Yes: DataFusion will not filter again.
    Exact,
    /// The backend narrows the rows, DataFusion filters again.
    Inexact,
    /// The backend cannot use it; DataFusion filters.
    Unsupported,
}

/// Which slice of a scan to produce: partition `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: usize,
    pub count: usize,
    /// Identifies one execution of a scan (the same for all its partitions), so backends can
    /// share state between them, e.g. one database snapshot. 0 for unpartitioned scans.
    pub scan: u64,
}

impl Partition {
    /// The whole scan.
    pub const ALL: Partition = Partition {
        index: 0,
        count: 1,
        scan: 0,
    };

    /// A cell that every partition of this scan shares (one per value type), for what they
    /// must agree on: one snapshot of a store, one listing of a prefix. The first partition
    /// fills it, the others take it. An unpartitioned scan gets a fresh cell of its own.
    ///
    /// The entry is dropped once every partition has asked (or after a minute, for partitions
    /// that never run); a partition asking again starts a new execution of the scan.
    pub fn shared<T: Send + Sync + 'static>(&self) -> Arc<tokio::sync::OnceCell<T>> {
        if self.scan == 0 || self.count <= 1 {
            return Arc::new(tokio::sync::OnceCell::new());
        }
        let mut map = SHARED.lock();
        map.retain(|_, e| e.since.elapsed() < std::time::Duration::from_secs(60));
        let fresh = || SharedCell {
            cell: Arc::new(tokio::sync::OnceCell::<T>::new()),
            taken: Default::default(),
            since: std::time::Instant::now(),
        };
        let entry = map
            .entry((self.scan, std::any::TypeId::of::<T>()))
            .or_insert_with(fresh);
        if entry.taken.contains(&self.index) {
            *entry = fresh();
        }
        entry.taken.insert(self.index);
        let cell = entry.cell.clone();
        if entry.taken.len() >= self.count {
            map.remove(&(self.scan, std::any::TypeId::of::<T>()));
        }
        // The key holds T's type id, so the cell is T's.
        cell.downcast::<tokio::sync::OnceCell<T>>()
            .unwrap_or_else(|_| Arc::new(tokio::sync::OnceCell::new()))
    }
}

/// One scan's shared cell ([`Partition::shared`]).
struct SharedCell {
    cell: Arc<dyn std::any::Any + Send + Sync>,
    /// Partitions that have taken it.
    taken: std::collections::HashSet<usize>,
    since: std::time::Instant,
}

type SharedKey = (u64, std::any::TypeId);

static SHARED: std::sync::LazyLock<
    parking_lot::Mutex<std::collections::HashMap<SharedKey, SharedCell>>,
> = std::sync::LazyLock::new(Default::default);

/// Where a collection lives: the attached backend's name, the schema and the collection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub attached: String,
    pub schema: String,
    pub collection: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.attached, self.schema, self.collection)
    }
}

/// What a collection can do, declared by its backend so that callers (the engine, the
/// conformance suite, users through `backend_info`) can tell a missing capability from a bug.
/// A capability a backend lacks is answered with a clear `ErrorKind::Unsupported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// A batch of writes (INSERT, batch_create, DML) is all or nothing.
    pub atomic_batches: bool,
    /// A record with a new field adds a column.
    pub schema_growth: bool,
    /// DELETE/UPDATE with a WHERE the store evaluates itself (`delete_where`, `update_where`).
    pub native_dml: bool,
    /// Scans return record ids, so DML whose WHERE the store cannot evaluate works
    /// (`supports_row_ids`, `delete_ids`, `update_ids`).
    pub row_ids: bool,
    /// Some `ORDER BY` reaches the store (see `sort_support`).
    pub exact_sort: bool,
    /// `read(id)` is a direct lookup, not a scan.
    pub key_lookup: bool,
    /// `count` without reading the rows.
    pub native_count: bool,
}

/// A description of a new collection.
#[derive(Debug, Clone)]
pub struct CollectionSpec {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The key column: record ids are its values, unique per collection.
    pub key: Option<String>,
    /// Without a key, will rows be addressed by record id (the record API)? Backends with no
    /// stable row identity of their own may then add a hidden one (PostgreSQL adds an
    /// identity column). False for SQL `CREATE TABLE`, which gets exactly its columns.
    pub record_ids: bool,
}

/// How a store fills a column an INSERT leaves out ([`Database::store_defaults`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreDefault {
    /// The store computes a value (a DEFAULT expression, an identity `BY DEFAULT`); an
    /// INSERT may give one instead.
    Default,
    /// Only the store gives it (an identity `GENERATED ALWAYS`): an INSERT that gives a value
    /// is refused.
    Always,
    /// Computed from the other columns (`GENERATED ALWAYS AS (…) STORED`): never written.
    Generated,
}

/// One collection (table, index, bucket prefix, …) of records in a backend.
#[async_trait]
pub trait Database: Send + Sync + Debug {
    /// The backend kind, e.g. `memory` (used in errors and EXPLAIN).
    fn backend_name(&self) -> &str;

    /// The collection's name.
    fn collection_name(&self) -> &str;

    /// The collection's current Arrow schema.
    fn schema(&self) -> SchemaRef;

    /// The column holding record ids, if any.
    fn key_column(&self) -> Option<String>;

    /// Columns the store fills itself when an INSERT leaves them out (a column DEFAULT, an
    /// identity, a generated column), and whether an INSERT may give them a value.
    fn store_defaults(&self) -> Vec<(String, StoreDefault)> {
        Vec::new()
    }

    /// Does the store convert UPDATE values to the column's type by its own assignment
    /// rules (as PostgreSQL rounds 2.5 into an int column to 3)? Then
    /// [`Database::update_where`] gets the SET expressions and [`Database::update_ids`] the
    /// values as the statement computes them, not cast to the column's Arrow type by
    /// DataFusion.
    fn assigns_values(&self) -> bool {
        false
    }

    /// Can [`Database::update_where`] run an UPDATE whose WHERE the backend evaluates exactly?
    /// When false, such an UPDATE selects its rows with DataFusion and changes them by row id
    /// ([`Database::update_ids`]).
    fn native_update(&self) -> bool {
        true
    }

    // ---------------------------------------------------------------- record API

    /// Creates a record and returns its id (the record's own id, its key field, or a new UUID).
    /// Fails with `AlreadyExists` if the id is taken.
    async fn create(&self, record: Record) -> Result<String>;

    /// Reads a record by id.
    async fn read(&self, id: &str) -> Result<Option<Record>>;

    /// Replaces the record `id`; false if there is none.
    async fn update(&self, id: &str, record: Record) -> Result<bool>;

    /// Deletes the record `id`; false if there is none.
    async fn delete(&self, id: &str) -> Result<bool>;

    /// Does record `id` exist?
    async fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.read(id).await?.is_some())
    }

    /// Creates or replaces record `id`; returns the id.
    async fn upsert(&self, id: &str, record: Record) -> Result<String> {
        if self.update(id, record.clone()).await? {
            Ok(id.to_string())
        } else {
            self.create(record.with_id(id)).await
        }
    }

    /// The records matching a query, sorted, offset and limited as it says. Provided once
    /// for every backend: [`crate::local::search`] asks [`Database::scan`] for what the
    /// backend evaluates and does the rest locally.
    async fn search(&self, query: &Query) -> Result<Vec<Record>> {
        crate::local::search(self, query).await
    }

    /// Counts the records matching a query (all records for None). Provided
    /// ([`crate::local::count`]); a backend with a native count may answer the cases it can
    /// and call `local::count` for the rest.
    async fn count(&self, query: Option<&Query>) -> Result<u64> {
        crate::local::count(self, query).await
    }

    /// Removes every record; returns how many.
    async fn clear(&self) -> Result<u64>;

    /// Creates many records; a backend may override with a native bulk call.
    async fn batch_create(&self, records: Vec<Record>) -> Result<Vec<String>> {
        let mut ids = Vec::with_capacity(records.len());
        for r in records {
            ids.push(self.create(r).await?);
        }
        Ok(ids)
    }

    /// Reads many records (None where absent).
    async fn batch_read(&self, ids: &[String]) -> Result<Vec<Option<Record>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.read(id).await?);
        }
        Ok(out)
    }

    /// Updates many records; one flag per update.
    async fn batch_update(&self, updates: Vec<(String, Record)>) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(updates.len());
        for (id, r) in updates {
            out.push(self.update(&id, r).await?);
        }
        Ok(out)
    }

    /// Deletes many records; one flag per id.
    async fn batch_delete(&self, ids: &[String]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.delete(id).await?);
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- SQL side

    /// Can this backend evaluate `filter` with exactly DataFusion's semantics?
    fn filter_support(&self, filter: &FilterExpr) -> FilterSupport;

    /// Can this backend return rows ordered by `sort` exactly as DataFusion orders them (NULL
    /// placement, string collation, float ordering), so that `ORDER BY … LIMIT n` can run
    /// natively? Ties may come in any order. False unless a backend says so.
    fn sort_support(&self, _sort: &[SortSpec]) -> bool {
        false
    }

    /// How many partitions a scan of `query` can be split into, at most `target`. Called once
    /// per scan while planning (a backend may ask its server, e.g. for an estimate).
    async fn scan_partitions(&self, _query: &Query, _target: usize) -> usize {
        1
    }

    /// Streams the rows matching `query` (filters, sort, offset, limit), with the columns in
    /// `query.fields` (all columns when None), for one partition of the scan. The stream's
    /// schema is the projected schema (then the row id column when `query.row_ids`).
    ///
    /// The query holds only what this backend accepted: filters it answered `Exact` or
    /// `Inexact` for in [`Database::filter_support`], a sort only when
    /// [`Database::sort_support`] said yes, offset and limit only when every filter is exact.
    /// The SQL path ([`crate::table::DatabaseTable`]) and the record API
    /// ([`crate::local::split`]) both guarantee it; a backend may refuse anything else.
    async fn scan(&self, query: &Query, partition: Partition) -> Result<SendableRecordBatchStream>;

    /// The native request a scan of `query` sends, for EXPLAIN (no secrets).
    fn describe_scan(&self, query: &Query) -> String {
        query.to_string()
    }

    /// The native request [`Database::count`] sends for `query`, for EXPLAIN (no secrets).
    fn describe_count(&self, query: Option<&Query>) -> String {
        match query {
            Some(q) => format!("count of {q}"),
            None => "count".to_string(),
        }
    }

    /// Appends rows (SQL INSERT). All rows or none: on error nothing was added.
    async fn insert(&self, _data: SendableRecordBatchStream) -> Result<u64> {
        Err(Error::unsupported(format!(
            "INSERT into '{}' is not supported by this backend",
            self.collection_name()
        ))
        .with_backend(self.backend_name()))
    }

    /// Deletes the rows matching `filter` (all rows for None); returns how many.
    async fn delete_where(&self, _filter: Option<&FilterExpr>) -> Result<u64> {
        Err(Error::unsupported(format!(
            "DELETE from '{}' is not supported by this backend",
            self.collection_name()
        ))
        .with_backend(self.backend_name()))
    }

    /// What this collection can do (see [`Capabilities`]). The default claims only what the
    /// trait's defaults provide: row ids as [`Database::supports_row_ids`] says.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            row_ids: self.supports_row_ids(),
            ..Capabilities::default()
        }
    }

    /// Can [`Database::scan`] return each row's record id ([`Query::row_ids`]), and do
    /// [`Database::delete_ids`] / [`Database::update_ids`] work? A DELETE or UPDATE whose WHERE
    /// the backend cannot evaluate exactly (a subquery, a function) selects its rows with
    /// DataFusion and then changes them by id; without row ids it is refused.
    fn supports_row_ids(&self) -> bool {
        false
    }

    /// Deletes the rows with these record ids (as a scan with [`Query::row_ids`] returned
    /// them), all or none; ids no longer present are skipped. Returns how many were deleted.
    async fn delete_ids(&self, _ids: &[String]) -> Result<u64> {
        Err(Error::unsupported(format!(
            "DELETE by row id from '{}' is not supported by this backend",
            self.collection_name()
        ))
        .with_backend(self.backend_name()))
    }

    /// Sets columns of the rows with these record ids, all or none: `values` has one row per
    /// id (in the same order) and one column per changed table column, already of the column's
    /// type. Ids no longer present are skipped. Returns how many rows changed.
    async fn update_ids(&self, _ids: &[String], _values: RecordBatch) -> Result<u64> {
        Err(Error::unsupported(format!(
            "UPDATE by row id of '{}' is not supported by this backend",
            self.collection_name()
        ))
        .with_backend(self.backend_name()))
    }

    /// Sets columns on the rows matching `filter`; each assignment is a DataFusion expression
    /// over the row's columns. Returns how many rows changed.
    async fn update_where(
        &self,
        _assignments: &[(String, Expr)],
        _filter: Option<&FilterExpr>,
    ) -> Result<u64> {
        Err(Error::unsupported(format!(
            "UPDATE of '{}' is not supported by this backend",
            self.collection_name()
        ))
        .with_backend(self.backend_name()))
    }
}

/// A store that holds collections, grouped in schemas (a schemaless store has one).
#[async_trait]
pub trait Backend: Send + Sync + Debug {
    /// The backend kind, e.g. `memory`.
    fn kind(&self) -> &str;

    /// Where it is, for display (a URL with any password removed).
    fn location(&self) -> String;

    /// The schema that `name.table` refers to.
    fn default_schema(&self) -> String {
        "public".to_string()
    }

    /// The schema names (sync: backends keep a cache they refresh on DDL).
    fn schema_names(&self) -> Vec<String>;

    /// The collection names in `schema`.
    fn collection_names(&self, schema: &str) -> Vec<String>;

    /// Opens a collection, or None if it does not exist.
    async fn open(&self, schema: &str, name: &str) -> Result<Option<Arc<dyn Database>>>;

    /// Creates a collection. With `if_not_exists`, an existing one is returned unchanged.
    async fn create_collection(
        &self,
        schema: &str,
        name: &str,
        spec: CollectionSpec,
        if_not_exists: bool,
    ) -> Result<Arc<dyn Database>>;

    /// The key column `CREATE TABLE … AS SELECT` gives a new table when the statement names
    /// none (for a key-value store: a column named `key`, else the first one). Default: None
    /// (the table has no key).
    fn ctas_key(&self, _schema: &datafusion::arrow::datatypes::Schema) -> Option<String> {
        None
    }

    /// Drops a collection; false if it did not exist (an error unless `if_exists`).
    async fn drop_collection(&self, schema: &str, name: &str, if_exists: bool) -> Result<bool>;

    /// A backend's own SQL table for a collection, when it has a better one than the generic
    /// `crate::table::DatabaseTable` (files use DataFusion's listing tables). Default: None.
    async fn sql_table(
        &self,
        _schema: &str,
        _name: &str,
        _location: Location,
    ) -> Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        Ok(None)
    }

    /// An object store this backend reaches, with the URL users write for it (`s3://bucket`),
    /// so that `COPY … TO 's3://bucket/key'` and URL tables can use it (the engine registers
    /// it at attach, unless a store is registered for that URL already). Default: None.
    fn object_store(&self) -> Option<(url::Url, Arc<dyn datafusion::object_store::ObjectStore>)> {
        None
    }

    /// Makes changes durable where the backend buffers them (called after each SQL statement).
    async fn sync(&self) -> Result<()> {
        Ok(())
    }
}

/// A blocking wrapper around a [`Database`] for callers without an async runtime.
///
/// It owns a small current-thread Tokio runtime. Do not use it from inside an async context.
pub struct BlockingDatabase {
    inner: Arc<dyn Database>,
    runtime: tokio::runtime::Runtime,
}

impl Debug for BlockingDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingDatabase")
            .field("inner", &self.inner)
            .finish()
    }
}

impl BlockingDatabase {
    /// Wraps `db`.
    pub fn new(db: Arc<dyn Database>) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start a Tokio runtime for the blocking API", e))?;
        Ok(Self { inner: db, runtime })
    }

    /// The wrapped async database.
    pub fn inner(&self) -> &Arc<dyn Database> {
        &self.inner
    }

    pub fn create(&self, record: Record) -> Result<String> {
        self.runtime.block_on(self.inner.create(record))
    }
    pub fn read(&self, id: &str) -> Result<Option<Record>> {
        self.runtime.block_on(self.inner.read(id))
    }
    pub fn update(&self, id: &str, record: Record) -> Result<bool> {
        self.runtime.block_on(self.inner.update(id, record))
    }
    pub fn delete(&self, id: &str) -> Result<bool> {
        self.runtime.block_on(self.inner.delete(id))
    }
    pub fn exists(&self, id: &str) -> Result<bool> {
        self.runtime.block_on(self.inner.exists(id))
    }
    pub fn upsert(&self, id: &str, record: Record) -> Result<String> {
        self.runtime.block_on(self.inner.upsert(id, record))
    }
    pub fn search(&self, query: &Query) -> Result<Vec<Record>> {
        self.runtime.block_on(self.inner.search(query))
    }
    pub fn count(&self, query: Option<&Query>) -> Result<u64> {
        self.runtime.block_on(self.inner.count(query))
    }
    pub fn clear(&self) -> Result<u64> {
        self.runtime.block_on(self.inner.clear())
    }
    pub fn batch_create(&self, records: Vec<Record>) -> Result<Vec<String>> {
        self.runtime.block_on(self.inner.batch_create(records))
    }
    pub fn batch_read(&self, ids: &[String]) -> Result<Vec<Option<Record>>> {
        self.runtime.block_on(self.inner.batch_read(ids))
    }
    pub fn batch_update(&self, updates: Vec<(String, Record)>) -> Result<Vec<bool>> {
        self.runtime.block_on(self.inner.batch_update(updates))
    }
    pub fn batch_delete(&self, ids: &[String]) -> Result<Vec<bool>> {
        self.runtime.block_on(self.inner.batch_delete(ids))
    }
}

/// What `drop_collection` answers for a collection that does not exist: `false` under
/// `IF EXISTS`, else a not-found error saying which table (`where_` names the place, e.g.
/// "in PostgreSQL").
pub fn drop_missing(backend: &str, table: &str, where_: &str, if_exists: bool) -> Result<bool> {
    if if_exists {
        return Ok(false);
    }
    let place = if where_.is_empty() {
        String::new()
    } else {
        format!(" {where_}")
    };
    Err(Error::not_found(format!("table '{table}' does not exist{place}")).with_backend(backend))
}
