//! Scans of a PostgreSQL table: the SELECT rendered from a `Query`, binary COPY (ctid-range
//! partitions sharing one exported snapshot) or, for selective WHEREs, one plain SELECT read
//! as binary rows; both decoded straight into Arrow batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{FutureExt, StreamExt};

use super::decode::{BATCH_ROWS, CopyReader, EarlyCut, finish_batch};
use super::decoder::ColumnDecoder;
use super::sql::{self, Literals};
use super::table::PgTable;
use super::types::{Kind, PgColumn};
use super::{BACKEND, pg_error};
use crate::database::{FilterSupport, Partition};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{Query, ROW_ID};

/// Tables smaller than this many pages are read by one connection.
pub(super) const MIN_PAGES_PER_PARTITION: u64 = 1024;
/// At most this many estimated rows for a selective scan read through the row protocol.
const SELECTIVE_MAX_ROWS: f64 = 200_000.0;

/// A snapshot exported by one connection and imported by every partition of a scan.
pub struct SharedSnapshot {
    pub(super) name: tokio::sync::OnceCell<std::result::Result<String, String>>,
    pub(super) holder: tokio::sync::Mutex<Option<deadpool_postgres::Object>>,
    pub(super) joined: AtomicUsize,
    pub(super) count: usize,
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

/// The SQL of one scan.
pub(super) struct ScanPlan {
    /// `SELECT … FROM … [WHERE …] [ORDER BY …] [LIMIT …]` (no partition range).
    pub(super) select: String,
    pub(super) where_sql: Vec<String>,
    pub(super) tail: String,
    pub(super) columns: Vec<PgColumn>,
    pub(super) schema: SchemaRef,
}

impl PgTable {
    pub(super) fn select_list(&self, columns: &[PgColumn]) -> Result<String> {
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
            if c.is_one_byte_char() {
                // The one-byte "char": its binary form of the empty value is a NUL byte, and a
                // byte above 127 is not UTF-8; its text form is what psql shows.
                out.push(format!("{id}::text"));
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
    pub(super) fn checked(&self, query: &Query) -> Result<Query> {
        let schema = self.rel().arrow_schema();
        crate::local::validate(&self.name(), &schema, query).map_err(|e| self.err(e))
    }

    pub(super) fn plan(&self, query: &Query) -> Result<ScanPlan> {
        let query = &self.checked(query)?;
        let rel = self.rel();
        let cols = rel.by_name();
        // Only what `filter_support` / `sort_support` accepted reaches a scan (the record
        // API's `crate::local::split` and the SQL path both see to it).
        for f in &query.filters {
            if sql::support(f, &cols) != FilterSupport::Exact {
                return Err(Error::internal(format!(
                    "a scan of {} was asked to evaluate {f}, which PostgreSQL cannot evaluate \
                     exactly; it should have been left to the engine",
                    self.name()
                ))
                .with_backend(BACKEND));
            }
        }
        let fetch: Vec<String> = match &query.fields {
            Some(f) => f.clone(),
            None => rel.columns.iter().map(|c| c.name.clone()).collect(),
        };
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
                nondeterministic: false,
                store_default: None,
            });
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
        for f in &query.filters {
            where_sql.push(sql::render_filter(f, &cols, &mut Literals)?);
        }
        let mut tail = String::new();
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
        })
    }

    pub(super) fn copy_sql(plan: &ScanPlan, range: Option<String>) -> String {
        format!(
            "COPY ({}) TO STDOUT (FORMAT binary)",
            Self::query_sql(plan, range)
        )
    }

    /// The scan's SELECT, restricted to a ctid range if given.
    pub(super) fn query_sql(plan: &ScanPlan, range: Option<String>) -> String {
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
    pub(super) fn select_sql(plan: &ScanPlan) -> String {
        Self::query_sql(plan, None)
    }

    /// Was this scan's SELECT estimated (by [`PgTable::estimate_selective`]) to keep little of
    /// the table?
    pub(super) fn is_selective(&self, plan: &ScanPlan) -> bool {
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
    pub(super) async fn estimate_selective(&self, plan: &ScanPlan, pages: u64) -> bool {
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
    pub(super) fn range(&self, partition: Partition) -> Option<String> {
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
    pub(super) async fn snapshot_client(
        &self,
        partition: Partition,
    ) -> Result<deadpool_postgres::Object> {
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
    pub(super) async fn copy_stream(
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
            let work = async {
                if selective {
                    decode_rows(&client, &sql, &columns, &schema, &table, &tx).await
                } else {
                    // A partition's COPY (its own ctid range, in a snapshot) is not repeated.
                    let cached = if in_tx {
                        None
                    } else {
                        cached_statement(&client, &sql).await
                    };
                    let r = match &cached {
                        Some(stmt) => {
                            decode_copy(&client, stmt, &columns, &schema, &table, &tx).await
                        }
                        None => {
                            decode_copy(&client, sql.as_str(), &columns, &schema, &table, &tx).await
                        }
                    };
                    if cached.is_some() && r.is_err() {
                        client.statement_cache.remove(&sql, &[]);
                    }
                    r
                }
            };
            // A reader that goes away (a cancelled statement, a satisfied LIMIT) cancels the
            // server's work too, even before its first row: the server would otherwise run
            // the query to its end. Best effort: a server that takes TLS only refuses it.
            let result = tokio::select! {
                r = work => r,
                _ = tx.closed() => {
                    let _ = client.cancel_token().cancel_query(tokio_postgres::NoTls).await;
                    Ok(false)
                }
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
pub(super) async fn decode_rows(
    client: &tokio_postgres::Client,
    sql: &str,
    columns: &[PgColumn],
    schema: &SchemaRef,
    table: &str,
    tx: &tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
) -> Result<bool> {
    // One round trip (Parse, Bind, Describe, Execute in one message): `query_raw` would
    // prepare the statement first and close it after.
    let no_params = std::iter::empty::<(
        &(dyn tokio_postgres::types::ToSql + Sync),
        tokio_postgres::types::Type,
    )>();
    let stream = client
        .query_typed_raw(sql, no_params)
        .await
        .map_err(|e| pg_error(&format!("cannot read {table}"), &e))?;
    let mut stream = std::pin::pin!(stream);
    let mut out = Batches::new(columns, schema, table, tx);
    loop {
        let row = match stream.next().now_or_never() {
            Some(row) => row,
            None => {
                // Nothing more has arrived yet: hand on the rows so far (see `flush_early`).
                if !out.flush_early().await? {
                    return Ok(false);
                }
                stream.next().await
            }
        };
        let Some(row) = row else { break };
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
    early: EarlyCut,
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
            early: EarlyCut::default(),
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

    /// The stream has nothing more for now: sends the rows so far if there are at least as
    /// many as the next early batch takes (as [`CopyReader::flush_early`]).
    async fn flush_early(&mut self) -> Result<bool> {
        if !self.early.take(self.rows) {
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

/// Statements each pooled connection keeps prepared (asyncpg keeps 100 too); past that the
/// connection's cache starts again empty.
const STATEMENT_CACHE: usize = 100;

/// `sql` prepared once per connection (a whole-table COPY has no parameters, so a repeated
/// scan is the same text): the scan then takes one round trip, not a prepare and an execute.
/// None when preparing fails (the plain statement then reports the error).
async fn cached_statement(
    client: &deadpool_postgres::Object,
    sql: &str,
) -> Option<tokio_postgres::Statement> {
    if client.statement_cache.size() >= STATEMENT_CACHE {
        client.statement_cache.clear();
    }
    client.prepare_cached(sql).await.ok()
}

/// Reads the COPY stream and sends Arrow batches; Ok(false) if the receiver went away.
pub(super) async fn decode_copy<S: ?Sized + tokio_postgres::ToStatement>(
    client: &tokio_postgres::Client,
    copy: &S,
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
        let next = match stream.next().now_or_never() {
            Some(next) => next,
            None => {
                // Nothing more has arrived yet: hand on what is decoded (in batches growing
                // to BATCH_ROWS), so the reader works while the server still sends.
                reader.flush_early(&mut ready)?;
                if !send_all(tx, &mut ready).await {
                    return Ok(false);
                }
                stream.next().await
            }
        };
        match &next {
            Some(chunk) => {
                let chunk = chunk
                    .as_ref()
                    .map_err(|e| pg_error(&format!("reading {table} failed"), e))?;
                reader.feed(chunk, &mut ready)?;
            }
            None => reader.finish(&mut ready)?,
        }
        if !send_all(tx, &mut ready).await {
            return Ok(false);
        }
        if next.is_none() {
            return Ok(true);
        }
    }
}

/// Sends the batches in `ready`; false if the receiver went away.
async fn send_all(
    tx: &tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
    ready: &mut Vec<RecordBatch>,
) -> bool {
    for batch in ready.drain(..) {
        if tx.send(Ok(batch)).await.is_err() {
            return false;
        }
    }
    true
}

pub(super) fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<datafusion::error::Result<RecordBatch>>,
) -> futures::stream::BoxStream<'static, datafusion::error::Result<RecordBatch>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
