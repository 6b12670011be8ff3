//! [`ChunkCollection`]: the one [`Database`] implementation for collections kept as a chunk
//! store ([`State`]), generic over how the state is reached ([`StateAccess`]).
//!
//! The memory backend reaches it through an in-process lock; the file backend's record store
//! through its lock file, reloading the state when the file changed and writing the file
//! after each change. Everything else — the record API, scans, SQL inserts, deletes and
//! updates by filter or by record id — is the same and lives here: each operation is one
//! closure run by [`StateAccess::read`] or [`StateAccess::write`], and errors name the
//! backend ([`StateAccess::KIND`]).

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::Expr;
use futures::TryStreamExt;

use super::chunks::{Chunk, State};
use super::scan::{SCAN_BATCH_ROWS, scan_snapshot};
use crate::database::{Database, FilterSupport, Partition};
use crate::error::{Error, Result};
use crate::pushdown::{eval, strip_qualifiers};
use crate::query::{FilterExpr, Query};
use crate::record::Record;

type Snapshot = (SchemaRef, Vec<Arc<Chunk>>);

/// How a [`ChunkCollection`] reaches its state.
pub trait StateAccess: Debug + Send + Sync + 'static {
    /// The backend's name (`backend_name`, and the backend named in errors).
    const KIND: &'static str;

    /// Runs `f` on the current state without changing it.
    fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&State) -> Result<T> + Send + 'static;

    /// Runs `f` on the current state to change it. `f` returns its result and whether it
    /// changed the state. `dirty_on_error`: when `f` fails, it may have changed the state
    /// half-way (a store that can should then go back to its last saved state).
    fn write<T, F>(&self, dirty_on_error: bool, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut State) -> Result<(T, bool)> + Send + 'static;

    /// The schema and chunks for a scan, with the row buffer flushed into a chunk first.
    fn snapshot(&self) -> impl Future<Output = Result<(SchemaRef, Vec<Arc<Chunk>>)>> + Send;

    /// Runs `f` on the state as it is, without waiting (for the synchronous `schema()`).
    fn peek<T>(&self, f: impl FnOnce(&State) -> T) -> T;

    /// What a scan's description starts with (`memory`, `file <path>`).
    fn scan_label(&self) -> String;
}

/// One collection of a chunk store: its name and the way to its state.
#[derive(Debug, Clone)]
pub struct ChunkCollection<A> {
    /// Shared with each operation's closure (for its messages) without a copy.
    pub(crate) name: Arc<str>,
    pub(crate) access: A,
}

impl<A: StateAccess> ChunkCollection<A> {
    pub(crate) fn new(name: impl Into<String>, access: A) -> Self {
        ChunkCollection {
            name: Arc::from(name.into()),
            access,
        }
    }

    async fn read_state<T: Send + 'static>(
        &self,
        f: impl FnOnce(&State) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.access
            .read(f)
            .await
            .map_err(|e| e.with_backend(A::KIND))
    }

    async fn write_state<T: Send + 'static>(
        &self,
        dirty_on_error: bool,
        f: impl FnOnce(&mut State) -> Result<(T, bool)> + Send + 'static,
    ) -> Result<T> {
        self.access
            .write(dirty_on_error, f)
            .await
            .map_err(|e| e.with_backend(A::KIND))
    }
}

#[async_trait]
impl<A: StateAccess> Database for ChunkCollection<A> {
    fn backend_name(&self) -> &str {
        A::KIND
    }

    fn collection_name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> SchemaRef {
        self.access.peek(|s| s.schema.clone())
    }

    fn key_column(&self) -> Option<String> {
        self.access.peek(State::key_name)
    }

    async fn create(&self, record: Record) -> Result<String> {
        let name = self.name.clone();
        self.write_state(false, move |s| Ok((s.create(&name, record)?, true)))
            .await
    }

    async fn read(&self, id: &str) -> Result<Option<Record>> {
        let id = id.to_string();
        self.read_state(move |s| s.read(&id)).await
    }

    async fn update(&self, id: &str, record: Record) -> Result<bool> {
        let (name, id) = (self.name.clone(), id.to_string());
        self.write_state(false, move |s| {
            let found = s.update(&name, &id, record)?;
            Ok((found, found))
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write_state(false, move |s| {
            let found = s.delete(&id);
            Ok((found, found))
        })
        .await
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.read_state(move |s| Ok(s.read(&id)?.is_some())).await
    }

    async fn upsert(&self, id: &str, record: Record) -> Result<String> {
        let (name, id) = (self.name.clone(), id.to_string());
        self.write_state(false, move |s| {
            if s.update(&name, &id, record.clone())? {
                Ok((id, true))
            } else {
                Ok((s.create(&name, record.with_id(&id))?, true))
            }
        })
        .await
    }

    async fn count(&self, query: Option<&Query>) -> Result<u64> {
        match query {
            Some(q) if !(q.filters.is_empty() && q.limit.is_none() && q.offset.is_none()) => {
                crate::local::count(self, Some(q)).await
            }
            Some(q) => {
                // Nothing to filter: the live rows, once the query is known to be valid.
                crate::local::validate(&self.name, &self.schema(), q)
                    .map_err(|e| e.with_backend(self.backend_name()))?;
                self.read_state(|s| Ok(s.len() as u64)).await
            }
            None => self.read_state(|s| Ok(s.len() as u64)).await,
        }
    }

    async fn clear(&self) -> Result<u64> {
        self.write_state(false, |s| {
            let n = s.clear();
            Ok((n, n > 0))
        })
        .await
    }

    async fn batch_create(&self, records: Vec<Record>) -> Result<Vec<String>> {
        let name = self.name.clone();
        self.write_state(false, move |s| {
            let ids = s.create_many(&name, records)?;
            let changed = !ids.is_empty();
            Ok((ids, changed))
        })
        .await
    }

    async fn batch_read(&self, ids: &[String]) -> Result<Vec<Option<Record>>> {
        let ids = ids.to_vec();
        self.read_state(move |s| ids.iter().map(|id| s.read(id)).collect())
            .await
    }

    /// Updates in one write. A store that can go back to its saved state (the file) applies
    /// all or none; in memory, the updates before a failing one stay.
    async fn batch_update(&self, updates: Vec<(String, Record)>) -> Result<Vec<bool>> {
        let name = self.name.clone();
        self.write_state(true, move |s| {
            let mut out = Vec::with_capacity(updates.len());
            for (id, r) in updates {
                out.push(s.update(&name, &id, r)?);
            }
            let changed = out.iter().any(|b| *b);
            Ok((out, changed))
        })
        .await
    }

    async fn batch_delete(&self, ids: &[String]) -> Result<Vec<bool>> {
        let ids = ids.to_vec();
        self.write_state(false, move |s| {
            let out: Vec<bool> = ids.iter().map(|id| s.delete(id)).collect();
            let changed = out.iter().any(|b| *b);
            Ok((out, changed))
        })
        .await
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
        let rows = self.access.peek(State::len);
        target.clamp(1, rows.div_ceil(SCAN_BATCH_ROWS).max(1))
    }

    async fn scan(&self, query: &Query, partition: Partition) -> Result<SendableRecordBatchStream> {
        // Every partition of one scan reads the same snapshot.
        let (schema, chunks) = partition
            .shared::<Snapshot>()
            .get_or_try_init(|| self.access.snapshot())
            .await
            .cloned()
            .map_err(|e| e.with_backend(A::KIND))?;
        scan_snapshot(&self.name, A::KIND, schema, chunks, query, partition)
    }

    fn describe_scan(&self, query: &Query) -> String {
        format!("{} {}", self.access.scan_label(), query)
    }

    async fn insert(&self, data: SendableRecordBatchStream) -> Result<u64> {
        // Collect first: an error mid-stream leaves the collection untouched.
        let batches: Vec<RecordBatch> = data.try_collect().await.map_err(Error::from)?;
        let name = self.name.clone();
        self.write_state(false, move |s| {
            let n = s.insert_batches(&name, batches)?;
            Ok((n, n > 0))
        })
        .await
    }

    fn capabilities(&self) -> crate::database::Capabilities {
        crate::database::Capabilities {
            atomic_batches: true,
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

    async fn delete_ids(&self, ids: &[String]) -> Result<u64> {
        let ids = ids.to_vec();
        self.write_state(false, move |s| {
            let n = s.delete_ids(&ids);
            Ok((n, n > 0))
        })
        .await
    }

    async fn update_ids(&self, ids: &[String], values: RecordBatch) -> Result<u64> {
        let ids = ids.to_vec();
        let name = self.name.clone();
        self.write_state(false, move |s| {
            let n = s.update_ids(&name, &ids, &values)?;
            Ok((n, n > 0))
        })
        .await
    }

    async fn delete_where(&self, filter: Option<&FilterExpr>) -> Result<u64> {
        let filter = filter.cloned();
        self.write_state(false, move |s| {
            // Compiled against the schema under the same lock that deletes.
            let predicate = match &filter {
                Some(f) => eval::compile_predicate(std::slice::from_ref(f), &s.schema)?,
                None => None,
            };
            let n = s.delete_where(predicate.as_ref())?;
            Ok((n, n > 0))
        })
        .await
    }

    async fn update_where(
        &self,
        assignments: &[(String, Expr)],
        filter: Option<&FilterExpr>,
    ) -> Result<u64> {
        let assignments = assignments.to_vec();
        let filter = filter.cloned();
        let name = self.name.clone();
        self.write_state(false, move |s| {
            let schema = s.schema.clone();
            let predicate = match &filter {
                Some(f) => eval::compile_predicate(std::slice::from_ref(f), &schema)?,
                None => None,
            };
            let mut compiled = Vec::with_capacity(assignments.len());
            for (col, expr) in assignments {
                let idx = schema
                    .index_of(&col)
                    .map_err(|_| Error::query(format!("UPDATE: '{name}' has no column '{col}'")))?;
                compiled.push((idx, eval::compile_expr(strip_qualifiers(&expr), &schema)?));
            }
            let n = s.update_where(&name, &compiled, predicate.as_ref())?;
            Ok((n, n > 0))
        })
        .await
    }
}
