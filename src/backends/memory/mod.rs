//! The in-memory backend: collections of Arrow chunks (see [`store`]), safe for concurrent
//! use, with optional persistence to one JSON file.
//!
//! Filters are evaluated with DataFusion's own physical expressions
//! ([`crate::pushdown::eval`]), so every filter the query model can express is pushed
//! `Exact`: results are identical to DataFusion's by construction.
//!
//! URL: `memory://` (nothing kept) or `memory:///path/to/file.json` (loaded at attach, saved
//! after each SQL statement and by [`MemoryBackend::save`]).

mod persist;
pub(crate) mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::compute::{
    SortColumn, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;
use parking_lot::RwLock;

use crate::database::{Backend, CollectionSpec, Database, FilterSupport, Partition};
use crate::error::{Error, Result};
use crate::pushdown::eval;
use crate::query::{FilterExpr, Query, SortOrder};
use crate::record::{FieldType, Record, column_list};
use store::{State, scan_chunk};

const KIND: &str = "memory";
/// Rows per batch a scan yields.
const SCAN_BATCH_ROWS: usize = 8192;

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
    fn snapshot(&self) -> (SchemaRef, Vec<Arc<store::Chunk>>) {
        if self.state.read().has_pending() {
            self.state.write().flush();
        }
        let s = self.state.read();
        (s.schema.clone(), s.chunks.clone())
    }

    fn validate(&self, schema: &SchemaRef, query: &Query) -> Result<(Query, Vec<usize>)> {
        let mut q = query.clone();
        q.filters = q
            .filters
            .iter()
            .map(|f| eval::normalize_filter(f, schema))
            .collect();
        for f in &q.filters {
            eval::check_filter(f, schema, &self.name)?;
        }
        for s in &q.sort {
            if schema.field_with_name(&s.field).is_err() {
                return Err(Error::query(format!(
                    "unknown sort field '{}' in '{}' (fields: {})",
                    s.field,
                    self.name,
                    column_list(schema)
                )));
            }
        }
        let projection = match &q.fields {
            None => (0..schema.fields().len()).collect(),
            Some(fields) => fields
                .iter()
                .map(|f| {
                    schema.index_of(f).map_err(|_| {
                        Error::query(format!(
                            "unknown field '{f}' in projection on '{}' (fields: {})",
                            self.name,
                            column_list(schema)
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        Ok((q, projection))
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

    fn scan_partitions(&self, query: &Query, target: usize) -> usize {
        if !query.sort.is_empty() || query.offset.is_some() {
            return 1;
        }
        let rows = self.state.read().len();
        target.clamp(1, rows.div_ceil(SCAN_BATCH_ROWS).max(1))
    }

    async fn scan(&self, query: &Query, partition: Partition) -> Result<SendableRecordBatchStream> {
        let (schema, chunks) = self.snapshot();
        let (query, projection) = self.validate(&schema, query).map_err(|e| self.err(e))?;
        let predicate =
            eval::compile_predicate(&query.filters, &schema).map_err(|e| self.err(e))?;
        let out_schema = Arc::new(schema.project(&projection)?);
        let sorted = !query.sort.is_empty() || query.offset.is_some();
        if sorted && partition.index > 0 {
            let empty = RecordBatchStreamAdapter::new(out_schema, futures::stream::empty());
            return Ok(Box::pin(empty));
        }
        // Slices of at most SCAN_BATCH_ROWS rows, dealt round-robin to partitions.
        let mut slices = Vec::new();
        let mut k = 0usize;
        for chunk in &chunks {
            if chunk.live == 0 {
                continue;
            }
            let n = chunk.batch.num_rows();
            let mut off = 0;
            while off < n {
                let len = SCAN_BATCH_ROWS.min(n - off);
                if sorted || k % partition.count.max(1) == partition.index {
                    slices.push((chunk.clone(), off, len));
                }
                k += 1;
                off += len;
            }
        }
        if sorted {
            let full: Vec<usize> = (0..schema.fields().len()).collect();
            let mut batches = Vec::new();
            for (chunk, off, len) in &slices {
                batches.push(scan_chunk(
                    &schema,
                    chunk,
                    *off,
                    *len,
                    predicate.as_ref(),
                    &full,
                )?);
            }
            let all = concat_batches(&schema, &batches)?;
            let result = sort_offset_limit(&all, &query)?.project(&projection)?;
            let stream = futures::stream::iter(vec![Ok(result)]);
            return Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, stream)));
        }
        let limit = query.limit;
        let stream_schema = schema.clone();
        let mut produced = 0usize;
        let iter = slices.into_iter().map_while(move |(chunk, off, len)| {
            if limit.is_some_and(|l| produced >= l) {
                return None;
            }
            let batch = scan_chunk(
                &stream_schema,
                &chunk,
                off,
                len,
                predicate.as_ref(),
                &projection,
            )
            .map_err(|e| e.with_backend(KIND).into_datafusion());
            Some(batch.map(|b| {
                let b = match limit {
                    Some(l) if produced + b.num_rows() > l => b.slice(0, l - produced),
                    _ => b,
                };
                produced += b.num_rows();
                b
            }))
        });
        let stream =
            futures::stream::iter(iter).try_filter(|b| futures::future::ready(b.num_rows() > 0));
        Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, stream)))
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
                eval::compile_expr(strip_qualifiers(expr.clone()), &schema)
                    .map_err(|e| self.err(e))?,
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

/// Removes table qualifiers from column references (`t.a` → `a`).
fn strip_qualifiers(expr: Expr) -> Expr {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            datafusion::common::Column::new_unqualified(c.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .unwrap_or_else(|e| {
        Expr::Literal(
            datafusion::common::ScalarValue::Utf8(Some(e.to_string())),
            None,
        )
    })
}

/// Sorts, offsets and limits one batch as `query` says (shared with other backends that
/// finish a query locally).
pub(crate) fn sort_offset_limit(batch: &RecordBatch, query: &Query) -> Result<RecordBatch> {
    let offset = query.offset.unwrap_or(0);
    let batch = if query.sort.is_empty() {
        batch.clone()
    } else {
        let schema = batch.schema();
        let columns = query
            .sort
            .iter()
            .map(|s| {
                let idx = schema.index_of(&s.field)?;
                Ok(SortColumn {
                    values: batch.column(idx).clone(),
                    options: Some(SortOptions {
                        descending: s.order == SortOrder::Desc,
                        nulls_first: s.nulls_first,
                    }),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let fetch = query.limit.map(|l| l.saturating_add(offset));
        let indices = lexsort_to_indices(&columns, fetch)?;
        take_record_batch(batch, &indices)?
    };
    let start = offset.min(batch.num_rows());
    let len = query
        .limit
        .unwrap_or(usize::MAX)
        .min(batch.num_rows() - start);
    let sliced = batch.slice(start, len);
    Ok(RecordBatch::try_new_with_options(
        sliced.schema(),
        sliced.columns().to_vec(),
        &RecordBatchOptions::new().with_row_count(Some(sliced.num_rows())),
    )?)
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
        match (removed, if_exists) {
            (Some(_), _) => Ok(true),
            (None, true) => Ok(false),
            (None, false) => Err(Error::not_found(format!(
                "table '{schema}.{name}' does not exist"
            ))
            .with_backend(KIND)),
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
