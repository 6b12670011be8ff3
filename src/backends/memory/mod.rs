//! The in-memory backend: collections of Arrow chunks (see [`crate::store::chunks`]), safe
//! for concurrent use, with optional persistence to one JSON file.
//!
//! Filters are evaluated with DataFusion's own physical expressions
//! ([`crate::pushdown::eval`]), so every filter the query model can express is pushed
//! `Exact`: results are identical to DataFusion's by construction.
//!
//! URL: `memory://` (nothing kept) or `memory:///path/to/file.json` (loaded at attach, saved
//! after each SQL statement and by [`MemoryBackend::save`]).

mod persist;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::Expr;
use futures::TryStreamExt;
use parking_lot::RwLock;

use crate::database::{Backend, CollectionSpec, Database, FilterSupport, Partition};
use crate::error::{Error, Result};
use crate::pushdown::eval;
use crate::pushdown::strip_qualifiers;
use crate::query::{FilterExpr, Query};
use crate::record::{FieldType, Record};
use crate::store::chunks::{Chunk, State};
use crate::store::scan;

const KIND: &str = "memory";
/// Rows per batch a scan yields.
use scan::SCAN_BATCH_ROWS;

/// One in-memory collection.
#[derive(Debug)]
pub struct MemoryCollection {
    name: String,
    state: RwLock<State>,
}

impl MemoryCollection {
    fn new(name: &str, schema: SchemaRef, key: Option<usize>) -> Self {
        MemoryCollection {
            name: name.to_string(),
            state: RwLock::new(State::new(schema, key)),
        }
    }

    fn err(&self, e: Error) -> Error {
        e.with_backend(KIND)
    }

    /// A consistent snapshot for a scan: schema and chunk list (the tail flushed first).
    fn snapshot(&self) -> (SchemaRef, Vec<Arc<Chunk>>) {
        if self.state.read().has_pending() {
            self.state.write().flush();
        }
        let s = self.state.read();
        (s.schema.clone(), s.chunks.clone())
    }
}

#[async_trait]
impl Database for MemoryCollection {
    fn backend_name(&self) -> &str {
        KIND
    }

    fn collection_name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> SchemaRef {
        self.state.read().schema.clone()
    }

    fn key_column(&self) -> Option<String> {
        self.state.read().key_name()
    }

    async fn create(&self, record: Record) -> Result<String> {
        self.state
            .write()
            .create(&self.name, record)
            .map_err(|e| self.err(e))
    }

    async fn read(&self, id: &str) -> Result<Option<Record>> {
        self.state.read().read(id).map_err(|e| self.err(e))
    }

    async fn update(&self, id: &str, record: Record) -> Result<bool> {
        self.state
            .write()
            .update(&self.name, id, record)
            .map_err(|e| self.err(e))
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        Ok(self.state.write().delete(id))
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .state
            .read()
            .read(id)
            .map_err(|e| self.err(e))?
            .is_some())
    }

    async fn upsert(&self, id: &str, record: Record) -> Result<String> {
        let mut s = self.state.write();
        if s.update(&self.name, id, record.clone())
            .map_err(|e| self.err(e))?
        {
            Ok(id.to_string())
        } else {
            s.create(&self.name, record.with_id(id))
                .map_err(|e| self.err(e))
        }
    }

    async fn count(&self, query: Option<&Query>) -> Result<u64> {
        match query {
            None => Ok(self.state.read().len() as u64),
            Some(q) if q.filters.is_empty() && q.limit.is_none() && q.offset.is_none() => {
                Ok(self.state.read().len() as u64)
            }
            Some(q) => {
                let mut q = q.clone();
                q.fields = Some(vec![]);
                let batches: Vec<RecordBatch> =
                    self.scan(&q, Partition::ALL).await?.try_collect().await?;
                Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
            }
        }
    }

    async fn clear(&self) -> Result<u64> {
        Ok(self.state.write().clear())
    }

    async fn batch_create(&self, records: Vec<Record>) -> Result<Vec<String>> {
        self.state
            .write()
            .create_many(&self.name, records)
            .map_err(|e| self.err(e))
    }

    async fn batch_read(&self, ids: &[String]) -> Result<Vec<Option<Record>>> {
        let s = self.state.read();
        ids.iter()
            .map(|id| s.read(id))
            .collect::<Result<_>>()
            .map_err(|e| self.err(e))
    }

    async fn batch_delete(&self, ids: &[String]) -> Result<Vec<bool>> {
        let mut s = self.state.write();
        Ok(ids.iter().map(|id| s.delete(id)).collect())
    }

    fn filter_support(&self, filter: &FilterExpr) -> FilterSupport {
        // Evaluated by DataFusion's kernels: exact whenever every field is a column.
        let schema = self.schema();
        if filter
            .fields()
            .iter()
            .all(|f| schema.field_with_name(f).is_ok())
        {
            FilterSupport::Exact
        } else {
            FilterSupport::Unsupported
        }
    }

    async fn scan_partitions(&self, query: &Query, target: usize) -> usize {
        if !query.sort.is_empty() || query.offset.is_some() {
            return 1;
        }
        let rows = self.state.read().len();
        target.clamp(1, rows.div_ceil(SCAN_BATCH_ROWS).max(1))
    }

    async fn scan(&self, query: &Query, partition: Partition) -> Result<SendableRecordBatchStream> {
        let (schema, chunks) = self.snapshot();
        scan::scan_snapshot(&self.name, KIND, schema, chunks, query, partition)
    }

    fn describe_scan(&self, query: &Query) -> String {
        format!("memory {}", query)
    }

    async fn insert(&self, data: SendableRecordBatchStream) -> Result<u64> {
        // Collect first: an error mid-stream leaves the collection untouched.
        let batches: Vec<RecordBatch> = data.try_collect().await.map_err(Error::from)?;
        self.state
            .write()
            .insert_batches(&self.name, batches)
            .map_err(|e| self.err(e))
    }

    fn supports_row_ids(&self) -> bool {
        true
    }

    async fn delete_ids(&self, ids: &[String]) -> Result<u64> {
        Ok(self.state.write().delete_ids(ids))
    }

    async fn update_ids(&self, ids: &[String], values: RecordBatch) -> Result<u64> {
        self.state
            .write()
            .update_ids(&self.name, ids, &values)
            .map_err(|e| self.err(e))
    }

    async fn delete_where(&self, filter: Option<&FilterExpr>) -> Result<u64> {
        let schema = self.schema();
        let predicate = match filter {
            Some(f) => eval::compile_predicate(std::slice::from_ref(f), &schema)
                .map_err(|e| self.err(e))?,
            None => None,
        };
        let mut s = self.state.write();
        if s.schema != schema {
            return Err(self.err(Error::query(
                "the table changed while the DELETE was planned; run it again",
            )));
        }
        s.delete_where(predicate.as_ref()).map_err(|e| self.err(e))
    }

    async fn update_where(
        &self,
        assignments: &[(String, Expr)],
        filter: Option<&FilterExpr>,
    ) -> Result<u64> {
        let schema = self.schema();
        let predicate = match filter {
            Some(f) => eval::compile_predicate(std::slice::from_ref(f), &schema)
                .map_err(|e| self.err(e))?,
            None => None,
        };
        let mut compiled = Vec::with_capacity(assignments.len());
        for (col, expr) in assignments {
            let idx = schema.index_of(col).map_err(|_| {
                self.err(Error::query(format!(
                    "UPDATE: '{}' has no column '{col}'",
                    self.name
                )))
            })?;
            compiled.push((
                idx,
                eval::compile_expr(strip_qualifiers(expr), &schema).map_err(|e| self.err(e))?,
            ));
        }
        let mut s = self.state.write();
        if s.schema != schema {
            return Err(self.err(Error::query(
                "the table changed while the UPDATE was planned; run it again",
            )));
        }
        s.update_where(&self.name, &compiled, predicate.as_ref())
            .map_err(|e| self.err(e))
    }
}

/// An in-memory store of collections, grouped in schemas (`public` by default).
#[derive(Debug, Default)]
pub struct MemoryBackend {
    collections: RwLock<BTreeMap<(String, String), Arc<MemoryCollection>>>,
    path: Option<PathBuf>,
    /// What the file holds: each collection's name and version at the last save or load.
    saved: parking_lot::Mutex<Vec<((String, String), u64)>>,
}

impl MemoryBackend {
    /// An empty backend that keeps nothing on disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend persisted to a JSON file: loaded now if it exists, saved by [`Self::save`].
    pub fn with_file(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let backend = MemoryBackend {
            collections: RwLock::new(BTreeMap::new()),
            path: Some(path.clone()),
            saved: Default::default(),
        };
        if path.exists() {
            persist::load(&backend, &path)?;
            *backend.saved.lock() = backend.versions();
        }
        Ok(backend)
    }

    /// The collection `name` in the default schema, created (keyed by `id`) if missing: the
    /// record API's entry point.
    pub fn collection(&self, name: &str) -> Result<Arc<dyn Database>> {
        self.collection_in("public", name)
    }

    /// Like [`Self::collection`] in a given schema.
    pub fn collection_in(&self, schema: &str, name: &str) -> Result<Arc<dyn Database>> {
        check_name(name)?;
        let mut map = self.collections.write();
        let key = (schema.to_string(), name.to_string());
        let c = map.entry(key).or_insert_with(|| {
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
                FieldType::String.arrow_field("id").with_nullable(false),
            ]));
            Arc::new(MemoryCollection::new(name, schema, Some(0)))
        });
        Ok(c.clone())
    }

    /// Writes all collections to the backend's file (atomically); a no-op without a file.
    pub fn save(&self) -> Result<()> {
        let Some(p) = &self.path else {
            return Ok(());
        };
        let versions = self.versions();
        let mut saved = self.saved.lock();
        if *saved == versions && p.exists() {
            return Ok(());
        }
        persist::save(self, p)?;
        *saved = versions;
        Ok(())
    }

    fn versions(&self) -> Vec<((String, String), u64)> {
        self.collections
            .read()
            .iter()
            .map(|(k, c)| (k.clone(), c.state.read().version))
            .collect()
    }

    fn insert_collection(&self, schema: &str, name: &str, c: MemoryCollection) {
        self.collections
            .write()
            .insert((schema.to_string(), name.to_string()), Arc::new(c));
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::query("a collection name cannot be empty").with_backend(KIND));
    }
    Ok(())
}

#[async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> &str {
        KIND
    }

    fn location(&self) -> String {
        match &self.path {
            Some(p) => format!("memory://{}", p.display()),
            None => "memory://".to_string(),
        }
    }

    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .collections
            .read()
            .keys()
            .map(|(s, _)| s.clone())
            .collect();
        names.push("public".to_string());
        names.sort();
        names.dedup();
        names
    }

    fn collection_names(&self, schema: &str) -> Vec<String> {
        self.collections
            .read()
            .keys()
            .filter(|(s, _)| s == schema)
            .map(|(_, n)| n.clone())
            .collect()
    }

    async fn open(&self, schema: &str, name: &str) -> Result<Option<Arc<dyn Database>>> {
        Ok(self
            .collections
            .read()
            .get(&(schema.to_string(), name.to_string()))
            .map(|c| c.clone() as Arc<dyn Database>))
    }

    async fn create_collection(
        &self,
        schema: &str,
        name: &str,
        spec: CollectionSpec,
        if_not_exists: bool,
    ) -> Result<Arc<dyn Database>> {
        check_name(name)?;
        let key = match &spec.key {
            Some(k) => Some(spec.schema.index_of(k).map_err(|_| {
                Error::query(format!("key column '{k}' is not a column of '{name}'"))
                    .with_backend(KIND)
            })?),
            None => None,
        };
        let mut map = self.collections.write();
        let k = (schema.to_string(), name.to_string());
        if let Some(existing) = map.get(&k) {
            if if_not_exists {
                return Ok(existing.clone());
            }
            return Err(
                Error::already_exists(format!("table '{schema}.{name}' already exists"))
                    .with_backend(KIND),
            );
        }
        let c = Arc::new(MemoryCollection::new(name, spec.schema, key));
        map.insert(k, c.clone());
        Ok(c)
    }

    async fn drop_collection(&self, schema: &str, name: &str, if_exists: bool) -> Result<bool> {
        let removed = self
            .collections
            .write()
            .remove(&(schema.to_string(), name.to_string()));
        match removed {
            Some(_) => Ok(true),
            None => crate::database::drop_missing(KIND, &format!("{schema}.{name}"), "", if_exists),
        }
    }

    async fn sync(&self) -> Result<()> {
        self.save()
    }
}

impl Drop for MemoryBackend {
    fn drop(&mut self) {
        if let Err(e) = self.save() {
            tracing::error!("memory backend: saving on close failed: {e}");
        }
    }
}
