//! One PostgreSQL table or view as a [`Database`]: binary-COPY scans, COPY-in inserts in one
//! transaction, native DELETE/UPDATE, and the record API (`id` = the single-column primary
//! key).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator as DfOp};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{SinkExt, StreamExt};
use parking_lot::RwLock;

use super::decode::{BATCH_ROWS, CopyReader, finish_batch};
use super::sql::{self, Columns, Literals, Params};
use super::types::{ColumnDecoder, ColumnEncoder, Kind, PgColumn};
use super::{BACKEND, Inner, pg_error};
use crate::database::{Database, FilterSupport, Partition};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{Filter, FilterExpr, Operator, Query, ROW_ID, SortSpec};
use crate::record::{Record, Value, batch_to_records, infer_schema, records_to_batch};

/// Rows per Arrow batch produced by a scan.
/// Tables smaller than this many pages are read by one connection.
const MIN_PAGES_PER_PARTITION: u64 = 1024;
/// At most this many estimated rows for a selective scan read through the row protocol.
const SELECTIVE_MAX_ROWS: f64 = 200_000.0;
/// Bytes buffered before a COPY-in chunk is sent.
const COPY_CHUNK: usize = 1 << 20;

const PGCOPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// What `describe` found.
#[derive(Debug, Clone)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    pub columns: Vec<PgColumn>,
    pub key: Option<String>,
    /// `r` table, `v` view, `m` materialized view, `p` partitioned table, `f` foreign table.
    pub relkind: String,
    pub pages: u64,
    /// The table has dataknobs' hidden row id column (tables created without a key).
    pub rowid: bool,
}

/// The hidden identity column that gives rows of a keyless dataknobs table stable ids.
pub const ROWID: &str = "_dk_rowid";

/// How rows of a table are addressed by record id: the SQL naming the id in the table, the
/// PostgreSQL type an id (text) is cast to, and whether it can address rows at all.
struct RowIdSql {
    column: String,
    type_name: String,
}

impl Relation {
    /// The row id: the primary key, dataknobs' hidden row id, or the row address (ctid) of a
    /// plain table; None where none is unique (views, partitioned tables without a key).
    fn row_id(&self) -> Option<RowIdSql> {
        if let Some(key) = &self.key {
            let c = self.columns.iter().find(|c| &c.name == key)?;
            return Some(RowIdSql {
                column: sql::ident(key),
                type_name: c.type_name.clone(),
            });
        }
        if self.rowid {
            return Some(RowIdSql {
                column: sql::ident(ROWID),
                type_name: "bigint".into(),
            });
        }
        (self.relkind == "r").then(|| RowIdSql {
            column: "ctid".into(),
            type_name: "tid".into(),
        })
    }

    fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(PgColumn::arrow_field)
                .collect::<Vec<_>>(),
        ))
    }

    fn by_name(&self) -> Columns<'_> {
        self.columns.iter().map(|c| (c.name.as_str(), c)).collect()
    }

    fn qualified(&self) -> String {
        sql::qualified(&self.schema, &self.name)
    }
}

/// A snapshot exported by one connection and imported by every partition of a scan.
pub struct SharedSnapshot {
    name: tokio::sync::OnceCell<std::result::Result<String, String>>,
    holder: tokio::sync::Mutex<Option<deadpool_postgres::Object>>,
    joined: AtomicUsize,
    count: usize,
}

impl SharedSnapshot {
    fn new(count: usize) -> Self {
        SharedSnapshot {
            name: tokio::sync::OnceCell::new(),
            holder: tokio::sync::Mutex::new(None),
            joined: AtomicUsize::new(0),
            count,
        }
    }

    async fn release(&self) {
        if let Some(c) = self.holder.lock().await.take() {
            let _ = c.batch_execute("COMMIT").await;
        }
    }
}

/// A PostgreSQL table as a dataknobs collection.
pub struct PgTable {
    inner: Arc<Inner>,
    rel: RwLock<Arc<Relation>>,
    stable_name: String,
    /// Plain SELECTs (by their SQL) that PostgreSQL estimated to return a small part of a large
    /// table: read as one query through the row protocol, so that PostgreSQL may run it with
    /// parallel workers (it never does for COPY), instead of ctid-range COPY partitions.
    selective: parking_lot::Mutex<HashMap<String, bool>>,
}

impl std::fmt::Debug for PgTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rel = self.rel.read();
        f.debug_struct("PgTable")
            .field("table", &format!("{}.{}", rel.schema, rel.name))
            .finish()
    }
}

/// The SQL of one scan.
struct ScanPlan {
    /// `SELECT … FROM … [WHERE …] [ORDER BY …] [LIMIT …]` (no partition range).
    select: String,
    where_sql: Vec<String>,
    tail: String,
    columns: Vec<PgColumn>,
    schema: SchemaRef,
    /// Filters evaluated here (record-API queries PostgreSQL cannot answer exactly), and the
    /// sort/offset/limit that must then follow them.
    residual: Vec<FilterExpr>,
    post: Option<Query>,
    /// The columns the caller asked for, when extra ones were fetched for the residual.
    output: Option<Vec<String>>,
}

impl PgTable {
    pub(crate) fn new(inner: Arc<Inner>, rel: Relation) -> Self {
        PgTable {
            inner,
            stable_name: rel.name.clone(),
            rel: RwLock::new(Arc::new(rel)),
            selective: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    fn rel(&self) -> Arc<Relation> {
        self.rel.read().clone()
    }

    fn name(&self) -> String {
        let r = self.rel();
        format!("{}.{}", r.schema, r.name)
    }

    fn err(&self, e: Error) -> Error {
        e.with_backend(BACKEND)
    }

    fn key(&self) -> Result<String> {
        self.rel().key.clone().ok_or_else(|| {
            Error::unsupported(format!(
                "table {} has no single-column primary key, so records cannot be addressed by id; \
                 add one (ALTER TABLE … ADD PRIMARY KEY) or use SQL",
                self.name()
            ))
            .with_backend(BACKEND)
        })
    }

    /// A record id as a value of the key column's type.
    fn id_value(&self, id: &str) -> Result<Value> {
        let rel = self.rel();
        let key = self.key()?;
        let col = rel.columns.iter().find(|c| c.name == key);
        Ok(match col.map(|c| &c.kind) {
            Some(Kind::Int2 | Kind::Int4 | Kind::Int8) => match id.trim().parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => {
                    return Err(Error::type_error(format!(
                        "id '{id}' is not an integer, but the key column '{key}' of {} is",
                        self.name()
                    ))
                    .with_backend(BACKEND));
                }
            },
            _ => Value::String(id.to_string()),
        })
    }

    fn select_list(&self, columns: &[PgColumn]) -> Result<String> {
        if columns.is_empty() {
            return Ok(String::new());
        }
        let mut out = Vec::with_capacity(columns.len());
        for c in columns {
            let id = sql::ident(&c.name);
            if c.name == ROW_ID && matches!(c.kind, Kind::Text) {
                let row_id = self.rel().row_id().ok_or_else(|| self.no_row_ids())?;
                out.push(format!("{}::text", row_id.column));
                continue;
            }
            if c.kind.is_unknown() {
                if !self.inner.unknown_as_text {
                    return Err(Error::type_error(format!(
                        "column '{}' of {} has PostgreSQL type {}, which dataknobs cannot map; \
                         leave it out of the query, or attach with ?unknown_types=text to read it as text",
                        c.name,
                        self.name(),
                        c.type_name
                    ))
                    .with_backend(BACKEND));
                }
                out.push(if matches!(c.kind, Kind::Array(_)) {
                    format!(
                        "CASE WHEN {id} IS NULL THEN NULL ELSE ARRAY(SELECT CASE WHEN x IS NULL THEN NULL \
                         ELSE format('%s', x) END FROM unnest({id}) WITH ORDINALITY AS u(x, n) ORDER BY n) END"
                    )
                } else {
                    // The type's own output text, as psql shows it (`::text` differs for some
                    // types, e.g. inet adds the netmask).
                    format!("CASE WHEN {id} IS NULL THEN NULL ELSE format('%s', {id}) END")
                });
            } else {
                out.push(id);
            }
        }
        Ok(out.join(", "))
    }

    /// Checks record-API filters against the columns (a wrong value type is a Type error)
    /// and turns date strings into datetimes. SQL filters pass unchanged.
    fn checked(&self, query: &Query) -> Result<Query> {
        let schema = self.rel().arrow_schema();
        let mut q = query.clone();
        for f in &mut q.filters {
            crate::pushdown::eval::check_filter(f, &schema, &self.name())
                .map_err(|e| self.err(e))?;
            *f = crate::pushdown::eval::normalize_filter(f, &schema);
        }
        Ok(q)
    }

    fn plan(&self, query: &Query) -> Result<ScanPlan> {
        let query = &self.checked(query)?;
        let rel = self.rel();
        let cols = rel.by_name();
        let mut exact = Vec::new();
        let mut residual = Vec::new();
        for f in &query.filters {
            if sql::support(f, &cols) == FilterSupport::Exact {
                exact.push(f);
            } else {
                residual.push(f.clone());
            }
        }
        let wanted: Vec<String> = match &query.fields {
            Some(f) => f.clone(),
            None => rel.columns.iter().map(|c| c.name.clone()).collect(),
        };
        let mut fetch = wanted.clone();
        let mut output = None;
        if !residual.is_empty() {
            for f in &residual {
                for name in f.fields() {
                    if !fetch.iter().any(|n| n == name) {
                        fetch.push(name.to_string());
                    }
                }
            }
            for s in &query.sort {
                if !fetch.contains(&s.field) {
                    fetch.push(s.field.clone());
                }
            }
            if fetch.len() != wanted.len() {
                output = Some(wanted.clone());
            }
        }
        let columns = fetch
            .iter()
            .map(|n| {
                cols.get(n.as_str()).map(|c| (*c).clone()).ok_or_else(|| {
                    Error::query(format!(
                        "unknown column '{n}' in {} (columns: {})",
                        self.name(),
                        rel.columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .with_backend(BACKEND)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut columns = columns;
        if query.row_ids {
            columns.push(PgColumn {
                name: ROW_ID.to_string(),
                kind: Kind::Text,
                type_name: "text".into(),
                not_null: true,
            });
            if let Some(out) = &mut output {
                out.push(ROW_ID.to_string());
            }
        }
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| {
                    if c.name == ROW_ID {
                        datafusion::arrow::datatypes::Field::new(
                            ROW_ID,
                            datafusion::arrow::datatypes::DataType::Utf8,
                            false,
                        )
                    } else {
                        c.arrow_field()
                    }
                })
                .collect::<Vec<_>>(),
        ));
        let mut where_sql = Vec::new();
        for f in exact {
            where_sql.push(sql::render_filter(f, &cols, &mut Literals)?);
        }
        let mut tail = String::new();
        let post = if residual.is_empty() {
            if !query.sort.is_empty() {
                tail.push_str(&format!(
                    " ORDER BY {}",
                    sql::render_sort(&query.sort, &cols)?
                ));
            }
            if let Some(l) = query.limit {
                tail.push_str(&format!(" LIMIT {l}"));
            }
            if let Some(o) = query.offset {
                tail.push_str(&format!(" OFFSET {o}"));
            }
            None
        } else if query.sort.is_empty() && query.limit.is_none() && query.offset.is_none() {
            None
        } else {
            Some(query.clone())
        };
        Ok(ScanPlan {
            select: format!(
                "SELECT {} FROM {}",
                self.select_list(&columns)?,
                rel.qualified()
            ),
            where_sql,
            tail,
            columns,
            schema,
            residual,
            post,
            output,
        })
    }

    fn copy_sql(plan: &ScanPlan, range: Option<String>) -> String {
        format!(
            "COPY ({}) TO STDOUT (FORMAT binary)",
            Self::query_sql(plan, range)
        )
    }

    /// The scan's SELECT, restricted to a ctid range if given.
    fn query_sql(plan: &ScanPlan, range: Option<String>) -> String {
        let mut conds = plan.where_sql.clone();
        if let Some(r) = range {
            conds.push(r);
        }
        let mut s = plan.select.clone();
        if !conds.is_empty() {
            s.push_str(" WHERE ");
            s.push_str(&conds.join(" AND "));
        }
        s.push_str(&plan.tail);
        s
    }

    /// The whole scan as one SELECT.
    fn select_sql(plan: &ScanPlan) -> String {
        Self::query_sql(plan, None)
    }

    /// Was this scan's SELECT estimated (by [`PgTable::estimate_selective`]) to keep little of
    /// the table?
    fn is_selective(&self, plan: &ScanPlan) -> bool {
        self.selective
            .lock()
            .get(&Self::select_sql(plan))
            .copied()
            .unwrap_or(false)
    }

    /// Asks PostgreSQL's planner how much of the table the scan's WHERE keeps: selective when
    /// the estimated output is under a tenth of the table's size and at most
    /// [`SELECTIVE_MAX_ROWS`] rows (the row protocol costs more per row than COPY). Any
    /// failure means "not selective" (the scan then uses COPY partitions).
    async fn estimate_selective(&self, plan: &ScanPlan, pages: u64) -> bool {
        let sql = Self::select_sql(plan);
        if let Some(&known) = self.selective.lock().get(&sql) {
            return known;
        }
        let estimate = async {
            let client = self.inner.client().await.ok()?;
            let messages = client
                .simple_query(&format!("EXPLAIN (FORMAT JSON) {sql}"))
                .await
                .ok()?;
            let text = messages.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            let top = json.get(0)?.get("Plan")?;
            Some((
                top.get("Plan Rows")?.as_f64()?,
                top.get("Plan Width")?.as_f64()?,
            ))
        }
        .await;
        let selective = estimate.is_some_and(|(rows, width)| {
            rows <= SELECTIVE_MAX_ROWS && rows * width * 10.0 < (pages * 8192) as f64
        });
        self.selective.lock().insert(sql, selective);
        selective
    }

    /// The ctid page range of one partition.
    fn range(&self, partition: Partition) -> Option<String> {
        if partition.count <= 1 {
            return None;
        }
        let pages = self.rel().pages;
        let per = pages.div_ceil(partition.count as u64).max(1);
        let lo = per * partition.index as u64;
        let hi = lo + per;
        Some(if partition.index + 1 == partition.count {
            format!("ctid >= '({lo},0)'::tid")
        } else if partition.index == 0 {
            format!("ctid < '({hi},0)'::tid")
        } else {
            format!("ctid >= '({lo},0)'::tid AND ctid < '({hi},0)'::tid")
        })
    }

    /// A connection that sees the scan's shared snapshot.
    async fn snapshot_client(&self, partition: Partition) -> Result<deadpool_postgres::Object> {
        let shared = {
            let mut map = self.inner.snapshots.lock();
            map.entry(partition.scan)
                .or_insert_with(|| Arc::new(SharedSnapshot::new(partition.count)))
                .clone()
        };
        let inner = self.inner.clone();
        let name = shared
            .name
            .get_or_init(|| async {
                let export = async {
                    let c = inner.client().await?;
                    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        .await
                        .map_err(|e| pg_error("cannot start the scan's snapshot", &e))?;
                    let row = c
                        .query_one("SELECT pg_export_snapshot()", &[])
                        .await
                        .map_err(|e| pg_error("cannot export the scan's snapshot", &e))?;
                    let name: String = row.get(0);
                    *shared.holder.lock().await = Some(c);
                    // Never hold the snapshot open longer than a minute, even if some
                    // partitions are never read.
                    let weak = Arc::downgrade(&shared);
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        if let Some(s) = weak.upgrade() {
                            s.release().await;
                        }
                    });
                    Ok::<_, Error>(name)
                };
                export.await.map_err(|e| e.to_string())
            })
            .await
            .clone()
            .map_err(|m| Error::new(ErrorKind::Connection, m).with_backend(BACKEND))?;
        let client = self.inner.client().await?;
        let joined = client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                sql::string_literal(&name)?
            ))
            .await
            .map_err(|e| {
                pg_error(
                    &format!("cannot join the scan's snapshot of {}", self.name()),
                    &e,
                )
            });
        if shared.joined.fetch_add(1, Ordering::SeqCst) + 1 >= shared.count {
            shared.release().await;
            self.inner.snapshots.lock().remove(&partition.scan);
        }
        joined?;
        Ok(client)
    }

    /// Streams one partition of a plan through binary COPY.
    async fn copy_stream(
        &self,
        plan: &ScanPlan,
        partition: Partition,
    ) -> Result<SendableRecordBatchStream> {
        let split = partition.count > 1
            && plan.tail.is_empty()
            && matches!(self.rel().relkind.as_str(), "r" | "m");
        if partition.count > 1 && !split && partition.index > 0 {
            // Only the first partition reads an unsplittable scan.
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                plan.schema.clone(),
                futures::stream::empty(),
            )));
        }
        let (client, in_tx) = if split {
            (self.snapshot_client(partition).await?, true)
        } else {
            (self.inner.client().await?, false)
        };
        let selective = !split && self.is_selective(plan);
        let sql = if selective {
            Self::select_sql(plan)
        } else {
            Self::copy_sql(plan, if split { self.range(partition) } else { None })
        };
        let schema = plan.schema.clone();
        let columns = plan.columns.clone();
        let table = self.name();
        let (tx, rx) = tokio::sync::mpsc::channel::<datafusion::error::Result<RecordBatch>>(2);
        tokio::spawn(async move {
            let result = if selective {
                decode_rows(&client, &sql, &columns, &schema, &table, &tx).await
            } else {
                decode_copy(&client, &sql, &columns, &schema, &table, &tx).await
            };
            match result {
                Ok(true) => {
                    if in_tx {
                        let _ = client.batch_execute("COMMIT").await;
                    }
                }
                Ok(false) => {
                    // The reader went away: close this connection rather than wait for the
                    // rest of the COPY.
                    let _ = deadpool_postgres::Object::take(client);
                }
                Err(e) => {
                    let _ = deadpool_postgres::Object::take(client);
                    let _ = tx.send(Err(e.into_datafusion())).await;
                }
            }
        });
        let stream = tokio_stream_from(rx);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            plan.schema.clone(),
            stream,
        )))
    }

    /// Adds columns for record fields the table does not have yet.
    async fn grow(&self, records: &[Record]) -> Result<()> {
        let rel = self.rel();
        let inferred = infer_schema(records);
        let mut adds = Vec::new();
        for f in inferred.fields() {
            if rel.columns.iter().any(|c| &c.name == f.name()) {
                continue;
            }
            // A field that is only ever an untyped NULL does not decide a column type.
            let typed = records
                .iter()
                .any(|r| r.field(f.name()).is_some_and(|x| x.has_type()));
            if !typed {
                continue;
            }
            sql::check_ident(f.name())?;
            adds.push(format!(
                "ADD COLUMN IF NOT EXISTS {} {}",
                sql::ident(f.name()),
                super::types::pg_type_for(f)?
            ));
        }
        if adds.is_empty() {
            return Ok(());
        }
        let client = self.inner.client().await?;
        client
            .batch_execute(&format!(
                "ALTER TABLE {} {}",
                rel.qualified(),
                adds.join(", ")
            ))
            .await
            .map_err(|e| pg_error(&format!("cannot add columns to {}", self.name()), &e))?;
        drop(client);
        self.reload().await
    }

    async fn reload(&self) -> Result<()> {
        let rel = self.rel();
        let fresh = self
            .inner
            .describe(&rel.schema, &rel.name)
            .await?
            .ok_or_else(|| Error::not_found(format!("table {} vanished", self.name())))?;
        *self.rel.write() = Arc::new(fresh);
        Ok(())
    }

    /// Records → one batch of the table's schema, with ids in the key column.
    fn to_batch(&self, records: Vec<Record>) -> Result<(RecordBatch, Vec<String>)> {
        let rel = self.rel();
        let key = self.key()?;
        let mut ids = Vec::with_capacity(records.len());
        let mut rows = Vec::with_capacity(records.len());
        for mut r in records {
            let id = match (r.id(), r.get(&key)) {
                (Some(id), Some(v)) if !v.is_null() && v.to_text() != id => {
                    return Err(Error::query(format!(
                        "record id '{id}' disagrees with its key field {key} = {v} in {}",
                        self.name()
                    ))
                    .with_backend(BACKEND));
                }
                (Some(id), _) => id.to_string(),
                (None, Some(v)) if !v.is_null() => v.to_text(),
                _ => uuid::Uuid::new_v4().to_string(),
            };
            strip_untyped_fields(&mut r, &rel);
            let v = self.id_value(&id)?;
            r.set(key.clone(), v);
            ids.push(id);
            rows.push(r);
        }
        let batch = records_to_batch(&rows, &rel.arrow_schema())?;
        Ok((batch, ids))
    }

    /// COPY one batch in, in its own transaction (record API batches).
    async fn copy_in_batches(&self, batches: Vec<RecordBatch>) -> Result<u64> {
        let schema = self.rel().arrow_schema();
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        self.insert(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
            .await
    }

    fn key_filter(&self, id: &str) -> Result<FilterExpr> {
        let key = self.key()?;
        Ok(FilterExpr::Cond(Filter {
            field: key,
            op: Operator::Eq,
            operand: crate::query::Operand::One(self.id_value(id)?),
        }))
    }

    fn render_where(
        &self,
        filter: Option<&FilterExpr>,
        params: &mut Params,
        what: &str,
    ) -> Result<String> {
        let Some(f) = filter else {
            return Ok(String::new());
        };
        let rel = self.rel();
        let cols = rel.by_name();
        if sql::support(f, &cols) != FilterSupport::Exact {
            return Err(Error::unsupported(format!(
                "{what} on {}: the condition `{f}` cannot be evaluated exactly by PostgreSQL; \
                 rewrite it with simple column comparisons",
                self.name()
            ))
            .with_backend(BACKEND));
        }
        Ok(format!(" WHERE {}", sql::render_filter(f, &cols, params)?))
    }

    async fn run(&self, stmt: &str, params: &Params, what: &str) -> Result<u64> {
        let client = self.inner.client().await?;
        client
            .execute(stmt, &params.refs())
            .await
            .map_err(|e| pg_error(&format!("{what} in {} failed", self.name()), &e))
    }

    /// The SQL condition selecting the row of a keyless table by id: dataknobs' hidden row id
    /// when the table has one, else the row address (ctid).
    fn row_ref(&self, id: &str) -> Result<String> {
        if self.rel().rowid {
            let n: i64 = id.trim().parse().map_err(|_| {
                Error::query(format!("'{id}' is not a record id of {}", self.name()))
                    .with_backend(BACKEND)
            })?;
            Ok(format!("\"{ROWID}\" = {n}"))
        } else {
            Ok(format!("ctid = {}", tid(id)?))
        }
    }

    /// Records of a table without a primary key get dataknobs' hidden row id (tables it
    /// created) or their row address (ctid: valid until the row is updated) as id.
    async fn keyless_create(&self, records: Vec<Record>) -> Result<Vec<String>> {
        let rel = self.rel();
        let batch = records_to_batch(&strip_untyped(records, &rel), &rel.arrow_schema())?;
        let rows = batch_to_records(&batch, None)?;
        let names: Vec<String> = rel.columns.iter().map(|c| sql::ident(&c.name)).collect();
        let mut client = self.inner.client().await?;
        let txn = client
            .transaction()
            .await
            .map_err(|e| pg_error("cannot start a transaction", &e))?;
        let mut ids = Vec::with_capacity(rows.len());
        for r in rows {
            let mut params = Params::default();
            let mut vals = Vec::new();
            for c in &rel.columns {
                params
                    .values
                    .push(sql::Param(r.get(&c.name).cloned().unwrap_or(Value::Null)));
                vals.push(format!("${}", params.values.len()));
            }
            let stmt = format!(
                "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
                rel.qualified(),
                names.join(", "),
                vals.join(", "),
                if rel.rowid {
                    "\"_dk_rowid\"::text"
                } else {
                    "ctid::text"
                }
            );
            let row = txn
                .query_one(&stmt, &params.refs())
                .await
                .map_err(|e| pg_error(&format!("cannot create a record in {}", self.name()), &e))?;
            ids.push(row.get::<_, String>(0));
        }
        txn.commit()
            .await
            .map_err(|e| pg_error("COMMIT failed; no record was created", &e))?;
        Ok(ids)
    }

    async fn keyless_read(&self, id: &str) -> Result<Option<Record>> {
        let mut plan = self.plan(&Query::new())?;
        plan.where_sql.push(self.row_ref(id)?);
        let stream = self.copy_stream(&plan, Partition::ALL).await?;
        use futures::TryStreamExt;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(Error::from)?;
        for b in &batches {
            if let Some(mut r) = batch_to_records(b, None)?.into_iter().next() {
                r.set_id(id);
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    async fn keyless_update(&self, id: &str, record: Record) -> Result<bool> {
        self.grow(std::slice::from_ref(&record)).await?;
        let rel = self.rel();
        let batch = records_to_batch(&strip_untyped(vec![record], &rel), &rel.arrow_schema())?;
        let mut params = Params::default();
        let sets = set_list(&rel, &batch, None, &mut params)?;
        let stmt = format!(
            "UPDATE {} SET {} WHERE {}",
            rel.qualified(),
            sets.join(", "),
            self.row_ref(id)?
        );
        Ok(self.run(&stmt, &params, "update").await? > 0)
    }

    /// UPDATE whose new values DataFusion computes (expressions PostgreSQL would evaluate
    /// differently, e.g. upper() under a locale): in one transaction, read the key and the
    /// needed columns of the matching rows, compute, COPY the results into a temporary table
    /// and update from it.
    async fn update_computed(
        &self,
        assignments: &[(String, Expr)],
        filter: Option<&FilterExpr>,
    ) -> Result<u64> {
        let rel = self.rel();
        let key = self.key().map_err(|_| {
            Error::unsupported(format!(
                "UPDATE of {}: the SET expressions cannot run in PostgreSQL and the table has no primary key to compute them by",
                self.name()
            ))
            .with_backend(BACKEND)
        })?;
        let cols = rel.by_name();
        if let Some(f) = filter
            && sql::support(f, &cols) != FilterSupport::Exact
        {
            return Err(Error::unsupported(format!(
                "UPDATE on {}: the condition `{f}` cannot be evaluated exactly by PostgreSQL",
                self.name()
            ))
            .with_backend(BACKEND));
        }
        // Read every column (the expressions may use any) of the matching rows, locked.
        let mut plan = self.plan(&Query::new())?;
        if let Some(f) = filter {
            plan.where_sql
                .push(sql::render_filter(f, &cols, &mut Literals)?);
        }
        let schema = plan.schema.clone();
        let mut exprs = Vec::new();
        for (c, e) in assignments {
            let target = cols.get(c.as_str()).ok_or_else(|| {
                Error::query(format!("{} has no column '{c}'", self.name())).with_backend(BACKEND)
            })?;
            let typed = Expr::Cast(datafusion::logical_expr::Cast::new(
                Box::new(e.clone()),
                target.kind.arrow_type(),
            ));
            exprs.push((
                (*target).clone(),
                crate::pushdown::eval::compile_expr(typed, &schema)?,
            ));
        }
        let key_col = cols
            .get(key.as_str())
            .map(|c| (*c).clone())
            .ok_or_else(|| Error::internal("key column missing"))?;
        let client = self.inner.client().await?;
        let fail = |e: tokio_postgres::Error| {
            pg_error(
                &format!("UPDATE of {} failed; nothing was changed", self.name()),
                &e,
            )
        };
        self.in_transaction(client, async |client| {
            // Lock the rows first so the values we compute from stay current.
            let lock = format!(
                "SELECT 1 FROM {}{} FOR UPDATE",
                rel.qualified(),
                if plan.where_sql.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", plan.where_sql.join(" AND "))
                }
            );
            client.execute(&lock, &[]).await.map_err(fail)?;
            let (tx, mut rx) = tokio::sync::mpsc::channel(4);
            let copy = Self::copy_sql(&plan, None);
            let table = self.name();
            let reader = async {
                let tx = tx;
                decode_copy(client, &copy, &plan.columns, &schema, &table, &tx).await
            };
            let mut batches = Vec::new();
            let collect = async {
                while let Some(b) = rx.recv().await {
                    batches.push(b);
                }
            };
            let (read, _) = futures::join!(reader, collect);
            read?;
            let key_idx = schema.index_of(&key)?;
            let mut rows = Vec::with_capacity(batches.len());
            for b in batches {
                let b = b?;
                let mut values = Vec::with_capacity(exprs.len());
                for (_, e) in &exprs {
                    values.push(e.evaluate(&b)?.into_array(b.num_rows())?);
                }
                rows.push((b.column(key_idx).clone(), values));
            }
            let targets: Vec<PgColumn> = exprs.iter().map(|(c, _)| c.clone()).collect();
            let join = format!("t.{k} = s.{k}", k = sql::ident(&key));
            self.update_from_rows(client, &key_col, &join, &targets, rows)
                .await
        })
        .await
    }

    /// Runs `body` in a transaction on `client` (BEGIN … COMMIT; the statement is an UPDATE);
    /// on an error rolls back, and takes the connection out of the pool if even that fails.
    async fn in_transaction<T>(
        &self,
        client: deadpool_postgres::Object,
        body: impl AsyncFnOnce(&deadpool_postgres::Object) -> Result<T>,
    ) -> Result<T> {
        let fail = |e: tokio_postgres::Error| {
            pg_error(
                &format!("UPDATE of {} failed; nothing was changed", self.name()),
                &e,
            )
        };
        client.batch_execute("BEGIN").await.map_err(fail)?;
        let result = match body(&client).await {
            Ok(v) => client
                .batch_execute("COMMIT")
                .await
                .map(|_| v)
                .map_err(fail),
            Err(e) => Err(e),
        };
        if result.is_err() && client.batch_execute("ROLLBACK").await.is_err() {
            let _ = deadpool_postgres::Object::take(client);
        }
        result
    }

    /// In the transaction open on `client`: copies rows of (id, new values of `targets`) into
    /// a temporary table (dropped at commit) and updates the rows of this table that `join`
    /// matches (`t` is this table, `s` the temporary one, whose id column is `id`). The values
    /// reach PostgreSQL as values of the target columns' own types, so its assignment rules
    /// (lengths, ranges) apply. Returns how many rows changed.
    async fn update_from_rows(
        &self,
        client: &deadpool_postgres::Object,
        id: &PgColumn,
        join: &str,
        targets: &[PgColumn],
        rows: Vec<(
            datafusion::arrow::array::ArrayRef,
            Vec<datafusion::arrow::array::ArrayRef>,
        )>,
    ) -> Result<u64> {
        let fail = |e: tokio_postgres::Error| {
            pg_error(
                &format!("UPDATE of {} failed; nothing was changed", self.name()),
                &e,
            )
        };
        let rel = self.rel();
        let tmp = format!("dk_upd_{}", uuid::Uuid::new_v4().simple());
        let mut defs = vec![format!("{} {}", sql::ident(&id.name), id.type_name)];
        for c in targets {
            defs.push(format!("{} {}", sql::ident(&c.name), c.type_name));
        }
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE {} ({}) ON COMMIT DROP",
                sql::ident(&tmp),
                defs.join(", ")
            ))
            .await
            .map_err(fail)?;
        let mut names = vec![sql::ident(&id.name)];
        names.extend(targets.iter().map(|c| sql::ident(&c.name)));
        let sink = client
            .copy_in::<_, Bytes>(&format!(
                "COPY {} ({}) FROM STDIN (FORMAT binary)",
                sql::ident(&tmp),
                names.join(", ")
            ))
            .await
            .map_err(fail)?;
        let mut sink = std::pin::pin!(sink);
        let mut buf = BytesMut::new();
        buf.put_slice(PGCOPY_HEADER);
        for (ids, values) in rows {
            let mut encoders = vec![ColumnEncoder::new(&ids, &id.kind, &id.name)?];
            for (c, v) in targets.iter().zip(&values) {
                encoders.push(ColumnEncoder::new(v, &c.kind, &c.name)?);
            }
            encode_rows(&encoders, ids.len(), &mut buf, |i, m| {
                Error::type_error(format!(
                    "UPDATE of {}, column {}: {m}",
                    self.name(),
                    names[i]
                ))
                .with_backend(BACKEND)
            })?;
        }
        buf.put_i16(-1);
        sink.send(buf.freeze()).await.map_err(fail)?;
        sink.as_mut().finish().await.map_err(fail)?;
        let sets: Vec<String> = targets
            .iter()
            .map(|c| format!("{0} = s.{0}", sql::ident(&c.name)))
            .collect();
        client
            .execute(
                &format!(
                    "UPDATE {} AS t SET {} FROM {} AS s WHERE {join}",
                    rel.qualified(),
                    sets.join(", "),
                    sql::ident(&tmp),
                ),
                &[],
            )
            .await
            .map_err(fail)
    }

    /// The error for DML by row id on a relation without a unique row address.
    fn no_row_ids(&self) -> Error {
        Error::unsupported(format!(
            "{} has no primary key and no row address dataknobs can use (a view or a \
             partitioned table), so this DELETE/UPDATE cannot select its rows by id; \
             use a WHERE made of simple column comparisons, or add a primary key",
            self.name()
        ))
        .with_backend(BACKEND)
    }

    /// A DataFusion expression (an UPDATE assignment) as PostgreSQL SQL.
    fn render_expr(&self, e: &Expr, target: &PgColumn, params: &mut Params) -> Result<String> {
        let rel = self.rel();
        let unsupported = || {
            Error::unsupported(format!(
                "UPDATE {} SET {} = {e}: this expression cannot be run in PostgreSQL; \
                 use literals, columns and + - * / %",
                self.name(),
                target.name
            ))
            .with_backend(BACKEND)
        };
        Ok(match e {
            Expr::Column(c) => {
                if !rel.columns.iter().any(|x| x.name == c.name) {
                    return Err(unsupported());
                }
                sql::ident(&c.name)
            }
            Expr::Literal(s, _) => {
                if s.is_null() {
                    return Ok(format!("NULL::{}", target.type_name));
                }
                let v = match s {
                    ScalarValue::Decimal128(Some(_), _, _)
                    | ScalarValue::Decimal256(Some(_), _, _) => Value::String(s.to_string()),
                    ScalarValue::Date32(Some(d)) => Value::DateTime(
                        chrono::DateTime::from_timestamp(i64::from(*d) * 86_400, 0)
                            .ok_or_else(unsupported)?,
                    ),
                    other => crate::pushdown::scalar_to_value(other).ok_or_else(unsupported)?,
                };
                params.values.push(sql::Param(v));
                format!("${}::{}", params.values.len(), target.type_name)
            }
            Expr::Cast(c) => {
                let ty = super::types::pg_type_for(&datafusion::arrow::datatypes::Field::new(
                    "cast",
                    c.field.data_type().clone(),
                    true,
                ))
                .map_err(|_| unsupported())?;
                format!("({})::{ty}", self.render_expr(&c.expr, target, params)?)
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let sym = match op {
                    DfOp::Plus => "+",
                    DfOp::Minus => "-",
                    DfOp::Multiply => "*",
                    DfOp::Divide => "/",
                    DfOp::Modulo => "%",
                    DfOp::StringConcat => "||",
                    _ => return Err(unsupported()),
                };
                format!(
                    "({} {sym} {})",
                    self.render_expr(left, target, params)?,
                    self.render_expr(right, target, params)?
                )
            }
            _ => return Err(unsupported()),
        })
    }
}

/// Encodes a stream of batches as binary COPY data (header, tuples, trailer) in chunks of
/// about [`COPY_CHUNK`] bytes.
async fn encode_stream(
    data: &mut SendableRecordBatchStream,
    targets: &[PgColumn],
    context: &str,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    let mut buf = BytesMut::with_capacity(COPY_CHUNK + (64 << 10));
    buf.put_slice(PGCOPY_HEADER);
    while let Some(batch) = data.next().await {
        let batch = batch.map_err(Error::from)?;
        let encoders = batch
            .columns()
            .iter()
            .zip(targets)
            .map(|(a, c)| ColumnEncoder::new(a, &c.kind, &c.name))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.with_backend(BACKEND))?;
        encode_rows(&encoders, batch.num_rows(), &mut buf, |i, m| {
            Error::type_error(format!(
                "{context}, column '{}': {m}; nothing was inserted",
                targets[i].name
            ))
            .with_backend(BACKEND)
        })?;
        if buf.len() >= COPY_CHUNK {
            if tx.send(Ok(buf.split().freeze())).await.is_err() {
                return Ok(());
            }
            buf.reserve(COPY_CHUNK + (64 << 10));
        }
    }
    buf.put_i16(-1);
    let _ = tx.send(Ok(buf.freeze())).await;
    Ok(())
}

/// A keyless record id (a row address) as a tid literal.
fn tid(id: &str) -> Result<String> {
    let bad = || {
        Error::query(format!(
            "'{id}' is not a record id of a table without a primary key (expected a row address like (0,1))"
        ))
        .with_backend(BACKEND)
    };
    let inner = id
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (block, off) = inner.split_once(',').ok_or_else(bad)?;
    let block: u32 = block.trim().parse().map_err(|_| bad())?;
    let off: u16 = off.trim().parse().map_err(|_| bad())?;
    Ok(format!("'({block},{off})'::tid"))
}

/// Drops untyped NULL fields that are not columns (they do not create one).
fn strip_untyped(records: Vec<Record>, rel: &Relation) -> Vec<Record> {
    records
        .into_iter()
        .map(|mut r| {
            strip_untyped_fields(&mut r, rel);
            r
        })
        .collect()
}

/// Drops a record's untyped NULL fields that are not columns.
fn strip_untyped_fields(r: &mut Record, rel: &Relation) {
    let absent: Vec<String> = r
        .fields()
        .iter()
        .filter(|f| !f.has_type() && !rel.columns.iter().any(|c| c.name == f.name))
        .map(|f| f.name.clone())
        .collect();
    for n in absent {
        r.remove(&n);
    }
}

/// Appends every row of the encoders' batch as a binary COPY tuple; `fail` turns an encoding
/// problem in column `i` into the caller's error.
fn encode_rows(
    encoders: &[ColumnEncoder],
    rows: usize,
    buf: &mut BytesMut,
    fail: impl Fn(usize, String) -> Error,
) -> Result<()> {
    let ncols = encoders.len() as i16;
    for row in 0..rows {
        buf.put_i16(ncols);
        for (i, e) in encoders.iter().enumerate() {
            e.encode(row, buf).map_err(|m| fail(i, m))?;
        }
    }
    Ok(())
}

/// `"col" = $n` for every column of `rel` but `skip`, the values taken from the one row of
/// `batch` (a record already converted to the table's types) and bound in `params`.
fn set_list(
    rel: &Relation,
    batch: &RecordBatch,
    skip: Option<&str>,
    params: &mut Params,
) -> Result<Vec<String>> {
    let record = batch_to_records(batch, None)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("update produced no row"))?;
    let mut sets = Vec::new();
    for c in rel.columns.iter().filter(|c| Some(c.name.as_str()) != skip) {
        let v = record.get(&c.name).cloned().unwrap_or(Value::Null);
        params.values.push(sql::Param(v));
        sets.push(format!(
            "{} = ${}",
            sql::ident(&c.name),
            params.values.len()
        ));
    }
    Ok(sets)
}

/// One field's value exactly as PostgreSQL sent it in binary (the bytes binary COPY carries).
struct RawField<'a>(&'a [u8]);

impl<'a> tokio_postgres::types::FromSql<'a> for RawField<'a> {
    fn from_sql(
        _ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawField(raw))
    }

    fn accepts(_ty: &tokio_postgres::types::Type) -> bool {
        true
    }
}

/// Runs `sql` as one query (binary rows, so PostgreSQL may use parallel workers) and sends
/// Arrow batches decoded by the same column decoders as COPY; Ok(false) if the receiver went
/// away.
async fn decode_rows(
    client: &tokio_postgres::Client,
    sql: &str,
    columns: &[PgColumn],
    schema: &SchemaRef,
    table: &str,
    tx: &tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
) -> Result<bool> {
    let no_params: [&(dyn tokio_postgres::types::ToSql + Sync); 0] = [];
    let stream = client
        .query_raw(sql, no_params)
        .await
        .map_err(|e| pg_error(&format!("cannot read {table}"), &e))?;
    let mut stream = std::pin::pin!(stream);
    let mut out = Batches::new(columns, schema, table, tx);
    while let Some(row) = stream.next().await {
        let row = row.map_err(|e| pg_error(&format!("reading {table} failed"), &e))?;
        for (i, (c, d)) in columns.iter().zip(out.decoders.iter_mut()).enumerate() {
            let bad = |m: String| {
                Error::type_error(format!("reading {table}, column '{}': {m}", c.name))
                    .with_backend(BACKEND)
            };
            let v: Option<RawField> = row.try_get(i).map_err(|e| bad(e.to_string()))?;
            d.append(v.map(|r| r.0), &c.kind).map_err(bad)?;
        }
        if !out.row_done().await? {
            return Ok(false);
        }
    }
    out.flush().await
}

/// Column decoders filling one Arrow batch at a time, each full batch sent on.
struct Batches<'a> {
    decoders: Vec<ColumnDecoder>,
    rows: usize,
    columns: &'a [PgColumn],
    schema: &'a SchemaRef,
    table: &'a str,
    tx: &'a tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
}

impl<'a> Batches<'a> {
    fn new(
        columns: &'a [PgColumn],
        schema: &'a SchemaRef,
        table: &'a str,
        tx: &'a tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
    ) -> Self {
        Batches {
            decoders: columns
                .iter()
                .map(|c| ColumnDecoder::new(&c.kind, BATCH_ROWS))
                .collect(),
            rows: 0,
            columns,
            schema,
            table,
            tx,
        }
    }

    /// Counts a row the decoders took; sends the batch when it is full. Ok(false): the
    /// receiver went away.
    async fn row_done(&mut self) -> Result<bool> {
        self.rows += 1;
        if self.rows < BATCH_ROWS {
            return Ok(true);
        }
        self.flush().await
    }

    /// Sends the rows decoded so far, if any. Ok(false): the receiver went away.
    async fn flush(&mut self) -> Result<bool> {
        if self.rows == 0 {
            return Ok(true);
        }
        let batch = finish_batch(
            &mut self.decoders,
            self.schema,
            self.rows,
            self.columns,
            self.table,
        )?;
        self.rows = 0;
        Ok(self.tx.send(Ok(batch)).await.is_ok())
    }
}

/// Reads the COPY stream and sends Arrow batches; Ok(false) if the receiver went away.
async fn decode_copy(
    client: &tokio_postgres::Client,
    copy: &str,
    columns: &[PgColumn],
    schema: &SchemaRef,
    table: &str,
    tx: &tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
) -> Result<bool> {
    let stream = client
        .copy_out(copy)
        .await
        .map_err(|e| pg_error(&format!("cannot read {table}"), &e))?;
    let mut stream = std::pin::pin!(stream);
    let mut reader = CopyReader::new(columns, schema.clone(), table);
    let mut ready = Vec::new();
    loop {
        let next = stream.next().await;
        match &next {
            Some(chunk) => {
                let chunk = chunk
                    .as_ref()
                    .map_err(|e| pg_error(&format!("reading {table} failed"), e))?;
                reader.feed(chunk, &mut ready)?;
            }
            None => reader.finish(&mut ready)?,
        }
        for batch in ready.drain(..) {
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(false);
            }
        }
        if next.is_none() {
            return Ok(true);
        }
    }
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<datafusion::error::Result<RecordBatch>>,
) -> futures::stream::BoxStream<'static, datafusion::error::Result<RecordBatch>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Applies what PostgreSQL could not: residual filters, then sort/offset/limit, then the
/// requested projection.
async fn post_process(
    stream: SendableRecordBatchStream,
    plan: &ScanPlan,
) -> Result<SendableRecordBatchStream> {
    use futures::TryStreamExt;
    let predicate = crate::pushdown::eval::compile_predicate(&plan.residual, &plan.schema)?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(Error::from)?;
    let mut kept = Vec::with_capacity(batches.len());
    for b in batches {
        match &predicate {
            Some(p) => {
                let mask = crate::pushdown::eval::evaluate_mask(p, &b)?;
                kept.push(filter_record_batch(&b, &mask)?);
            }
            None => kept.push(b),
        }
    }
    let mut batch = datafusion::arrow::compute::concat_batches(&plan.schema, &kept)?;
    if let Some(q) = &plan.post {
        batch = crate::store::scan::sort_offset_limit(&batch, q)?;
    }
    if let Some(out) = &plan.output {
        let idx = out
            .iter()
            .map(|n| plan.schema.index_of(n))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let rows = batch.num_rows();
        let projected = batch.project(&idx)?;
        batch = RecordBatch::try_new_with_options(
            projected.schema(),
            projected.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
    }
    let schema = batch.schema();
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(vec![Ok(batch)]),
    )))
}

#[async_trait]
impl Database for PgTable {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn collection_name(&self) -> &str {
        &self.stable_name
    }

    fn schema(&self) -> SchemaRef {
        self.rel().arrow_schema()
    }

    fn key_column(&self) -> Option<String> {
        self.rel().key.clone()
    }

    async fn create(&self, record: Record) -> Result<String> {
        let ids = self.batch_create(vec![record]).await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| Error::internal("no id returned"))
    }

    async fn read(&self, id: &str) -> Result<Option<Record>> {
        if self.rel().key.is_none() {
            return self.keyless_read(id).await;
        }
        let q = Query::new().where_expr(self.key_filter(id)?);
        Ok(self.search(&q).await?.into_iter().next())
    }

    async fn update(&self, id: &str, record: Record) -> Result<bool> {
        if self.rel().key.is_none() {
            return self.keyless_update(id, record).await;
        }
        self.grow(std::slice::from_ref(&record)).await?;
        let rel = self.rel();
        let key = self.key()?;
        // Through a batch: values are checked and converted to the column types first.
        let mut record = record;
        if let Some(v) = record.get(&key)
            && !v.is_null()
            && v.to_text() != id
        {
            return Err(Error::query(format!(
                "update of record '{id}' in {}: its key field {key} = {v} names another record; \
                 change keys with SQL UPDATE",
                self.name()
            ))
            .with_backend(BACKEND));
        }
        record.set(key.clone(), self.id_value(id)?);
        let (batch, _) = self.to_batch(vec![record.with_id(id)])?;
        let mut params = Params::default();
        let sets = set_list(&rel, &batch, Some(&key), &mut params)?;
        if sets.is_empty() {
            return self.exists(id).await;
        }
        let where_sql = self.render_where(Some(&self.key_filter(id)?), &mut params, "UPDATE")?;
        let stmt = format!(
            "UPDATE {} SET {}{where_sql}",
            rel.qualified(),
            sets.join(", ")
        );
        let client = self.inner.client().await?;
        let n = client.execute(&stmt, &params.refs()).await.map_err(|e| {
            pg_error(
                &format!("cannot update record '{id}' in {}", self.name()),
                &e,
            )
        })?;
        Ok(n > 0)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        if self.rel().key.is_none() {
            let stmt = format!(
                "DELETE FROM {} WHERE {}",
                self.rel().qualified(),
                self.row_ref(id)?
            );
            return Ok(self.run(&stmt, &Params::default(), "delete").await? > 0);
        }
        let f = self.key_filter(id)?;
        Ok(self.delete_where(Some(&f)).await? > 0)
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        if self.rel().key.is_none() {
            return Ok(self.keyless_read(id).await?.is_some());
        }
        let f = self.key_filter(id)?;
        Ok(self.count(Some(&Query::new().where_expr(f))).await? > 0)
    }

    async fn upsert(&self, id: &str, record: Record) -> Result<String> {
        self.grow(std::slice::from_ref(&record)).await?;
        let rel = self.rel();
        let key = self.key()?;
        let (batch, _) = self.to_batch(vec![record.with_id(id)])?;
        let recs = batch_to_records(&batch, None)?;
        let Some(rec) = recs.into_iter().next() else {
            return Err(Error::internal("upsert produced no row"));
        };
        let mut params = Params::default();
        let mut names = Vec::new();
        let mut vals = Vec::new();
        let mut sets = Vec::new();
        for c in &rel.columns {
            let v = rec.get(&c.name).cloned().unwrap_or(Value::Null);
            params.values.push(sql::Param(v));
            names.push(sql::ident(&c.name));
            vals.push(format!("${}", params.values.len()));
            if c.name != key {
                sets.push(format!("{0} = EXCLUDED.{0}", sql::ident(&c.name)));
            }
        }
        let conflict = if sets.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", sets.join(", "))
        };
        let stmt = format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {conflict}",
            rel.qualified(),
            names.join(", "),
            vals.join(", "),
            sql::ident(&key)
        );
        let client = self.inner.client().await?;
        client.execute(&stmt, &params.refs()).await.map_err(|e| {
            pg_error(
                &format!("cannot upsert record '{id}' in {}", self.name()),
                &e,
            )
        })?;
        Ok(id.to_string())
    }

    async fn count(&self, query: Option<&Query>) -> Result<u64> {
        let rel = self.rel();
        let mut params = Params::default();
        let filter = query.and_then(Query::filter_expr);
        let exact = filter
            .as_ref()
            .is_none_or(|f| sql::support(f, &rel.by_name()) == FilterSupport::Exact);
        let plain = query.is_none_or(|q| q.limit.is_none() && q.offset.is_none());
        if !exact || !plain {
            let mut q = query.cloned().unwrap_or_default();
            q.fields = Some(vec![]);
            let stream = self.scan(&q, Partition::ALL).await?;
            use futures::TryStreamExt;
            let batches: Vec<_> = stream.try_collect().await.map_err(Error::from)?;
            return Ok(batches.iter().map(|b| b.num_rows() as u64).sum());
        }
        let where_sql = self.render_where(filter.as_ref(), &mut params, "count")?;
        let stmt = format!("SELECT count(*) FROM {}{where_sql}", rel.qualified());
        let client = self.inner.client().await?;
        let row = client
            .query_one(&stmt, &params.refs())
            .await
            .map_err(|e| pg_error(&format!("cannot count {}", self.name()), &e))?;
        let n: i64 = row.get(0);
        Ok(n.max(0) as u64)
    }

    async fn clear(&self) -> Result<u64> {
        self.delete_where(None).await
    }

    async fn batch_create(&self, records: Vec<Record>) -> Result<Vec<String>> {
        if records.is_empty() {
            return Ok(vec![]);
        }
        self.grow(&records).await?;
        if self.rel().key.is_none() {
            return self.keyless_create(records).await;
        }
        let (batch, ids) = self.to_batch(records)?;
        self.copy_in_batches(vec![batch]).await.map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                Error::already_exists(format!(
                    "a record with one of these ids exists already in {}: {}",
                    self.name(),
                    e.message()
                ))
                .with_backend(BACKEND)
            } else {
                e
            }
        })?;
        Ok(ids)
    }

    fn filter_support(&self, filter: &FilterExpr) -> FilterSupport {
        sql::support(filter, &self.rel().by_name())
    }

    fn sort_support(&self, sort: &[SortSpec]) -> bool {
        sql::sort_support(sort, &self.rel().by_name())
    }

    async fn scan_partitions(&self, query: &Query, target: usize) -> usize {
        let rel = self.rel();
        if !matches!(rel.relkind.as_str(), "r" | "m")
            || query.limit.is_some()
            || query.offset.is_some()
            || !query.sort.is_empty()
        {
            return 1;
        }
        // A WHERE that keeps little of a large table: one plain SELECT, which PostgreSQL may
        // scan with its own parallel workers (and its bulk-read buffer ring, which a ctid
        // range scan does not use).
        if rel.pages >= MIN_PAGES_PER_PARTITION
            && let Ok(plan) = self.plan(query)
            && !plan.where_sql.is_empty()
            && plan.tail.is_empty()
            && self.estimate_selective(&plan, rel.pages).await
        {
            return 1;
        }
        let by_size = (rel.pages / MIN_PAGES_PER_PARTITION).max(1) as usize;
        // One connection holds the snapshot; leave one for other work.
        let by_pool = self.inner.pool_size.saturating_sub(2).max(1);
        target.max(1).min(by_size).min(by_pool)
    }

    async fn scan(&self, query: &Query, partition: Partition) -> Result<SendableRecordBatchStream> {
        let plan = self.plan(query)?;
        if plan.residual.is_empty() {
            return self.copy_stream(&plan, partition).await;
        }
        if partition.index > 0 {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                plan.output
                    .as_ref()
                    .map(|o| {
                        let idx: Vec<usize> = o
                            .iter()
                            .filter_map(|n| plan.schema.index_of(n).ok())
                            .collect();
                        plan.schema
                            .project(&idx)
                            .map(Arc::new)
                            .unwrap_or(plan.schema.clone())
                    })
                    .unwrap_or(plan.schema.clone()),
                futures::stream::empty(),
            )));
        }
        let stream = self.copy_stream(&plan, Partition::ALL).await?;
        post_process(stream, &plan).await
    }

    fn describe_scan(&self, query: &Query) -> String {
        match self.plan(query) {
            Ok(plan) => {
                let mut s = if self.is_selective(&plan) {
                    format!(
                        "{} (rows; PostgreSQL may use parallel workers)",
                        Self::select_sql(&plan)
                    )
                } else {
                    Self::copy_sql(&plan, None)
                };
                if !plan.residual.is_empty() {
                    s.push_str(" + local filter");
                }
                s
            }
            Err(e) => format!("(cannot plan: {e})"),
        }
    }

    async fn insert(&self, mut data: SendableRecordBatchStream) -> Result<u64> {
        let rel = self.rel();
        let input = data.schema();
        let mut targets = Vec::with_capacity(input.fields().len());
        for f in input.fields() {
            let c = rel
                .columns
                .iter()
                .find(|c| &c.name == f.name())
                .ok_or_else(|| {
                    Error::query(format!("{} has no column '{}'", self.name(), f.name()))
                        .with_backend(BACKEND)
                })?;
            targets.push(c.clone());
        }
        let copy = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            rel.qualified(),
            targets
                .iter()
                .map(|c| sql::ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let context = format!("INSERT into {}", self.name());
        let mut client = self.inner.client().await?;
        let txn = client
            .transaction()
            .await
            .map_err(|e| pg_error(&context, &e))?;
        let sink = txn
            .copy_in::<_, Bytes>(&copy)
            .await
            .map_err(|e| pg_error(&context, &e))?;
        let mut sink = std::pin::pin!(sink);
        // Encoding runs on its own task so it overlaps with PostgreSQL ingesting the previous
        // chunk (the server's COPY is the bottleneck; this uses the other core).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(4);
        let encoder = {
            let targets = targets.clone();
            let context = context.clone();
            tokio::spawn(async move {
                let result = encode_stream(&mut data, &targets, &context, &tx).await;
                if let Err(e) = result {
                    let _ = tx.send(Err(e)).await;
                }
            })
        };
        while let Some(chunk) = rx.recv().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    encoder.abort();
                    return Err(e);
                }
            };
            if let Err(e) = sink.send(chunk).await {
                encoder.abort();
                return Err(pg_error(
                    &format!("{context} failed; nothing was inserted"),
                    &e,
                ));
            }
        }
        let n = sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| pg_error(&format!("{context} failed; nothing was inserted"), &e))?;
        txn.commit().await.map_err(|e| {
            pg_error(
                &format!("{context}: COMMIT failed; nothing was inserted"),
                &e,
            )
        })?;
        Ok(n)
    }

    fn supports_row_ids(&self) -> bool {
        self.rel().row_id().is_some()
    }

    async fn delete_ids(&self, ids: &[String]) -> Result<u64> {
        let rel = self.rel();
        let row_id = rel.row_id().ok_or_else(|| self.no_row_ids())?;
        if ids.is_empty() {
            return Ok(0);
        }
        let stmt = format!(
            "DELETE FROM {} WHERE {} = ANY($1::text[]::{}[])",
            rel.qualified(),
            row_id.column,
            row_id.type_name
        );
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let client = self.inner.client().await?;
        client
            .execute(&stmt, &[&ids])
            .await
            .map_err(|e| pg_error(&format!("DELETE from {} failed", self.name()), &e))
    }

    async fn update_ids(&self, ids: &[String], values: RecordBatch) -> Result<u64> {
        let rel = self.rel();
        let row_id = rel.row_id().ok_or_else(|| self.no_row_ids())?;
        if ids.is_empty() {
            return Ok(0);
        }
        let by_name = rel.by_name();
        let mut targets = Vec::with_capacity(values.num_columns());
        for f in values.schema().fields() {
            let c = by_name.get(f.name().as_str()).ok_or_else(|| {
                Error::query(format!("{} has no column '{}'", self.name(), f.name()))
                    .with_backend(BACKEND)
            })?;
            targets.push((*c).clone());
        }
        let id = PgColumn {
            name: "_dk_id".into(),
            kind: Kind::Text,
            type_name: "text".into(),
            not_null: true,
        };
        let join = format!("t.{} = s.\"_dk_id\"::{}", row_id.column, row_id.type_name);
        let ids: datafusion::arrow::array::ArrayRef = Arc::new(
            datafusion::arrow::array::StringArray::from_iter_values(ids.iter()),
        );
        let client = self.inner.client().await?;
        let rows = vec![(ids, values.columns().to_vec())];
        self.in_transaction(client, async |client| {
            self.update_from_rows(client, &id, &join, &targets, rows)
                .await
        })
        .await
    }

    async fn delete_where(&self, filter: Option<&FilterExpr>) -> Result<u64> {
        let rel = self.rel();
        let mut params = Params::default();
        let where_sql = self.render_where(filter, &mut params, "DELETE")?;
        let stmt = format!("DELETE FROM {}{where_sql}", rel.qualified());
        let client = self.inner.client().await?;
        client
            .execute(&stmt, &params.refs())
            .await
            .map_err(|e| pg_error(&format!("DELETE from {} failed", self.name()), &e))
    }

    async fn update_where(
        &self,
        assignments: &[(String, Expr)],
        filter: Option<&FilterExpr>,
    ) -> Result<u64> {
        let rel = self.rel();
        if assignments.is_empty() {
            return self
                .count(Some(&Query {
                    filters: filter.cloned().into_iter().collect(),
                    ..Query::default()
                }))
                .await;
        }
        let mut params = Params::default();
        let mut sets = Vec::new();
        let by_name: HashMap<&str, &PgColumn> = rel.by_name();
        for (col, e) in assignments {
            let target = by_name.get(col.as_str()).ok_or_else(|| {
                Error::query(format!("{} has no column '{col}'", self.name())).with_backend(BACKEND)
            })?;
            match self.render_expr(e, target, &mut params) {
                Ok(rendered) => sets.push(format!("{} = {rendered}", sql::ident(col))),
                Err(err) if err.kind() == ErrorKind::Unsupported => {
                    return self.update_computed(assignments, filter).await;
                }
                Err(err) => return Err(err),
            }
        }
        let where_sql = self.render_where(filter, &mut params, "UPDATE")?;
        let stmt = format!(
            "UPDATE {} SET {}{where_sql}",
            rel.qualified(),
            sets.join(", ")
        );
        let client = self.inner.client().await?;
        client
            .execute(&stmt, &params.refs())
            .await
            .map_err(|e| pg_error(&format!("UPDATE of {} failed", self.name()), &e))
    }
}
