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

use super::sql::{self, Columns, Literals, Params};
use super::types::{ColumnDecoder, ColumnEncoder, Kind, PgColumn};
use super::{BACKEND, Inner, pg_error};
use crate::database::{Database, FilterSupport, Partition};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{Filter, FilterExpr, Operator, Query};
use crate::record::{Record, Value, batch_to_records, infer_schema, records_to_batch};

/// Rows per Arrow batch produced by a scan.
const BATCH_ROWS: usize = 8192;
/// Tables smaller than this many pages are read by one connection.
const MIN_PAGES_PER_PARTITION: u64 = 1024;
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
}

impl Relation {
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
                    format!("{id}::text[]")
                } else {
                    format!("{id}::text")
                });
            } else {
                out.push(id);
            }
        }
        Ok(out.join(", "))
    }

    fn plan(&self, query: &Query) -> Result<ScanPlan> {
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
        let schema = Arc::new(Schema::new(
            columns.iter().map(PgColumn::arrow_field).collect::<Vec<_>>(),
        ));
        let mut where_sql = Vec::new();
        for f in exact {
            where_sql.push(sql::render_filter(f, &cols, &mut Literals)?);
        }
        let mut tail = String::new();
        let post = if residual.is_empty() {
            if !query.sort.is_empty() {
                tail.push_str(&format!(" ORDER BY {}", sql::render_sort(&query.sort, &cols)?));
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
            select: format!("SELECT {} FROM {}", self.select_list(&columns)?, rel.qualified()),
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
        format!("COPY ({s}) TO STDOUT (FORMAT binary)")
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
            .map_err(|e| pg_error(&format!("cannot join the scan's snapshot of {}", self.name()), &e));
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
        let copy = Self::copy_sql(plan, if split { self.range(partition) } else { None });
        let schema = plan.schema.clone();
        let columns = plan.columns.clone();
        let table = self.name();
        let (tx, rx) = tokio::sync::mpsc::channel::<datafusion::error::Result<RecordBatch>>(2);
        tokio::spawn(async move {
            let result = decode_copy(&client, &copy, &columns, &schema, &table, &tx).await;
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
            .batch_execute(&format!("ALTER TABLE {} {}", rel.qualified(), adds.join(", ")))
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
                (Some(id), _) => id.to_string(),
                (None, Some(v)) if !v.is_null() => v.to_text(),
                _ => uuid::Uuid::new_v4().to_string(),
            };
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

    fn render_where(&self, filter: Option<&FilterExpr>, params: &mut Params, what: &str) -> Result<String> {
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
                    ScalarValue::Decimal128(Some(_), _, _) | ScalarValue::Decimal256(Some(_), _, _) => {
                        Value::String(s.to_string())
                    }
                    ScalarValue::Date32(Some(d)) => Value::DateTime(
                        chrono::DateTime::from_timestamp(i64::from(*d) * 86_400, 0)
                            .ok_or_else(unsupported)?,
                    ),
                    other => crate::pushdown::scalar_to_value(other).ok_or_else(unsupported)?,
                };
                params.values.push(sql::Param(v));
                format!("${}::{}", params.values.len(), target.type_name)
            }
            Expr::Cast(c) => self.render_expr(&c.expr, target, params)?,
            Expr::TryCast(c) => self.render_expr(&c.expr, target, params)?,
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

/// Reads the COPY stream and sends Arrow batches; Ok(false) if the receiver went away.
async fn decode_copy(
    client: &deadpool_postgres::Object,
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
    let mut decoders: Vec<ColumnDecoder> = columns
        .iter()
        .map(|c| ColumnDecoder::new(&c.kind, BATCH_ROWS))
        .collect();
    let mut rows = 0usize;
    let mut pending = BytesMut::new();
    let mut header = false;
    let mut done = false;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| pg_error(&format!("reading {table} failed"), &e))?;
        let data: &[u8] = if pending.is_empty() {
            &chunk
        } else {
            pending.extend_from_slice(&chunk);
            &pending
        };
        let mut pos = 0usize;
        if !header {
            if data.len() < 19 {
                pending = BytesMut::from(data);
                continue;
            }
            if &data[..11] != b"PGCOPY\n\xff\r\n\0" {
                return Err(Error::internal(format!("{table}: unexpected COPY header")));
            }
            let ext = i32::from_be_bytes([data[15], data[16], data[17], data[18]]).max(0) as usize;
            if data.len() < 19 + ext {
                pending = BytesMut::from(data);
                continue;
            }
            pos = 19 + ext;
            header = true;
        }
        loop {
            match parse_tuple(&data[pos..], columns, &mut decoders) {
                Ok(Tuple::Row(n)) => {
                    pos += n;
                    rows += 1;
                    if rows == BATCH_ROWS {
                        let batch = finish(&mut decoders, schema, rows, columns, table)?;
                        rows = 0;
                        if tx.send(Ok(batch)).await.is_err() {
                            return Ok(false);
                        }
                    }
                }
                Ok(Tuple::End) => {
                    done = true;
                    pos = data.len();
                    break;
                }
                Ok(Tuple::Incomplete) => break,
                Err((col, msg)) => {
                    return Err(Error::type_error(format!(
                        "reading {table}, column '{}': {msg}",
                        columns.get(col).map(|c| c.name.as_str()).unwrap_or("?")
                    ))
                    .with_backend(BACKEND));
                }
            }
        }
        let rest = data[pos..].to_vec();
        pending.clear();
        pending.extend_from_slice(&rest);
    }
    if !done && header {
        return Err(Error::new(
            ErrorKind::Connection,
            format!("reading {table}: the COPY stream ended early"),
        )
        .with_backend(BACKEND));
    }
    if rows > 0 {
        let batch = finish(&mut decoders, schema, rows, columns, table)?;
        if tx.send(Ok(batch)).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

enum Tuple {
    Row(usize),
    End,
    Incomplete,
}

/// Parses one tuple into the decoders. A tuple split across chunks is left for later
/// (nothing is appended until the whole tuple is there).
#[inline]
fn parse_tuple(
    data: &[u8],
    columns: &[PgColumn],
    decoders: &mut [ColumnDecoder],
) -> std::result::Result<Tuple, (usize, String)> {
    if data.len() < 2 {
        return Ok(Tuple::Incomplete);
    }
    let n = i16::from_be_bytes([data[0], data[1]]);
    if n == -1 {
        return Ok(Tuple::End);
    }
    if n as usize != columns.len() {
        return Err((0, format!("expected {} fields, got {n}", columns.len())));
    }
    // First check the whole tuple is present.
    let mut pos = 2usize;
    for _ in 0..columns.len() {
        let Some(l) = data.get(pos..pos + 4) else {
            return Ok(Tuple::Incomplete);
        };
        let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
        pos += 4 + len.max(0) as usize;
        if pos > data.len() {
            return Ok(Tuple::Incomplete);
        }
    }
    let mut pos = 2usize;
    for (i, (c, d)) in columns.iter().zip(decoders.iter_mut()).enumerate() {
        let len = i32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        pos += 4;
        if len < 0 {
            d.append(None, &c.kind).map_err(|m| (i, m))?;
        } else {
            let end = pos + len as usize;
            d.append(Some(&data[pos..end]), &c.kind).map_err(|m| (i, m))?;
            pos = end;
        }
    }
    Ok(Tuple::Row(pos))
}

fn finish(
    decoders: &mut [ColumnDecoder],
    schema: &SchemaRef,
    rows: usize,
    columns: &[PgColumn],
    table: &str,
) -> Result<RecordBatch> {
    let mut arrays = Vec::with_capacity(decoders.len());
    for (d, c) in decoders.iter_mut().zip(columns) {
        arrays.push(d.finish().map_err(|m| {
            Error::type_error(format!("reading {table}, column '{}': {m}", c.name)).with_backend(BACKEND)
        })?);
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
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
        batch = crate::backends::memory::sort_offset_limit(&batch, q)?;
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
        let q = Query::new().where_expr(self.key_filter(id)?);
        Ok(self.search(&q).await?.into_iter().next())
    }

    async fn update(&self, id: &str, record: Record) -> Result<bool> {
        self.grow(std::slice::from_ref(&record)).await?;
        let rel = self.rel();
        let key = self.key()?;
        let mut params = Params::default();
        let mut sets = Vec::new();
        for c in &rel.columns {
            if c.name == key {
                continue;
            }
            let v = record.get(&c.name).cloned().unwrap_or(Value::Null);
            params.values.push(sql::Param(v));
            sets.push(format!("{} = ${}", sql::ident(&c.name), params.values.len()));
        }
        if sets.is_empty() {
            return self.exists(id).await;
        }
        let where_sql = self.render_where(Some(&self.key_filter(id)?), &mut params, "UPDATE")?;
        let stmt = format!("UPDATE {} SET {}{where_sql}", rel.qualified(), sets.join(", "));
        let client = self.inner.client().await?;
        let n = client
            .execute(&stmt, &params.refs())
            .await
            .map_err(|e| pg_error(&format!("cannot update record '{id}' in {}", self.name()), &e))?;
        Ok(n > 0)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let f = self.key_filter(id)?;
        Ok(self.delete_where(Some(&f)).await? > 0)
    }

    async fn exists(&self, id: &str) -> Result<bool> {
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
        client
            .execute(&stmt, &params.refs())
            .await
            .map_err(|e| pg_error(&format!("cannot upsert record '{id}' in {}", self.name()), &e))?;
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

    fn scan_partitions(&self, query: &Query, target: usize) -> usize {
        let rel = self.rel();
        if !matches!(rel.relkind.as_str(), "r" | "m")
            || query.limit.is_some()
            || query.offset.is_some()
            || !query.sort.is_empty()
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
                        let idx: Vec<usize> =
                            o.iter().filter_map(|n| plan.schema.index_of(n).ok()).collect();
                        plan.schema.project(&idx).map(Arc::new).unwrap_or(plan.schema.clone())
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
                let mut s = Self::copy_sql(&plan, None);
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
            let c = rel.columns.iter().find(|c| &c.name == f.name()).ok_or_else(|| {
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
        let mut buf = BytesMut::with_capacity(COPY_CHUNK + (64 << 10));
        buf.put_slice(PGCOPY_HEADER);
        let ncols = targets.len() as i16;
        while let Some(batch) = data.next().await {
            let batch = batch.map_err(Error::from)?;
            let encoders = batch
                .columns()
                .iter()
                .zip(&targets)
                .map(|(a, c)| ColumnEncoder::new(a, &c.kind, &c.name))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| self.err(e))?;
            for row in 0..batch.num_rows() {
                buf.put_i16(ncols);
                for (i, e) in encoders.iter().enumerate() {
                    e.encode(row, &mut buf).map_err(|m| {
                        Error::type_error(format!(
                            "{context}, column '{}': {m}; nothing was inserted",
                            targets[i].name
                        ))
                        .with_backend(BACKEND)
                    })?;
                }
                if buf.len() >= COPY_CHUNK {
                    sink.send(buf.split().freeze())
                        .await
                        .map_err(|e| pg_error(&format!("{context} failed; nothing was inserted"), &e))?;
                }
            }
        }
        buf.put_i16(-1);
        sink.send(buf.split().freeze())
            .await
            .map_err(|e| pg_error(&format!("{context} failed; nothing was inserted"), &e))?;
        let n = sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| pg_error(&format!("{context} failed; nothing was inserted"), &e))?;
        txn.commit()
            .await
            .map_err(|e| pg_error(&format!("{context}: COMMIT failed; nothing was inserted"), &e))?;
        Ok(n)
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
            return self.count(Some(&Query {
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
            sets.push(format!(
                "{} = {}",
                sql::ident(col),
                self.render_expr(e, target, &mut params)?
            ));
        }
        let where_sql = self.render_where(filter, &mut params, "UPDATE")?;
        let stmt = format!("UPDATE {} SET {}{where_sql}", rel.qualified(), sets.join(", "));
        let client = self.inner.client().await?;
        client
            .execute(&stmt, &params.refs())
            .await
            .map_err(|e| pg_error(&format!("UPDATE of {} failed", self.name()), &e))
    }
}
