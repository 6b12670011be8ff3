//! One PostgreSQL table or view as a [`Database`]: binary-COPY scans, COPY-in inserts in one
//! transaction, native DELETE/UPDATE, and the record API (`id` = the single-column primary
//! key).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::Expr;
use futures::StreamExt;
use parking_lot::RwLock;

pub use super::relation::{ROWID, Relation};
use super::scan::MIN_PAGES_PER_PARTITION;
pub use super::scan::SharedSnapshot;
use super::sql::{self, Params};
use super::types::{Kind, PgColumn};
use super::write::set_list;
use super::{BACKEND, Inner, pg_error};
use crate::database::{Database, FilterSupport, Partition};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{FilterExpr, Query, SortSpec};
use crate::record::{Record, Value, batch_to_records, records_to_batch_at};

/// Records converted at a time by a batch create, so that the first rows reach the server
/// while the rest are being converted.
const BATCH_PART: usize = 2048;

/// A PostgreSQL table as a dataknobs collection.
pub struct PgTable {
    pub(super) inner: Arc<Inner>,
    pub(super) rel: RwLock<Arc<Relation>>,
    pub(super) stable_name: String,
    /// Plain SELECTs (by their SQL) that PostgreSQL estimated to return a small part of a large
    /// table: read as one query through the row protocol, so that PostgreSQL may run it with
    /// parallel workers (it never does for COPY), instead of ctid-range COPY partitions.
    pub(super) selective: parking_lot::Mutex<HashMap<String, bool>>,
}

impl std::fmt::Debug for PgTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rel = self.rel.read();
        f.debug_struct("PgTable")
            .field("table", &format!("{}.{}", rel.schema, rel.name))
            .finish()
    }
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

    pub(super) fn rel(&self) -> Arc<Relation> {
        self.rel.read().clone()
    }

    pub(super) fn name(&self) -> String {
        let r = self.rel();
        format!("{}.{}", r.schema, r.name)
    }

    pub(super) fn err(&self, e: Error) -> Error {
        e.with_backend(BACKEND)
    }

    /// The table's column for each field of `schema` (a batch written into it), in order.
    pub(super) fn targets(&self, rel: &Relation, schema: &SchemaRef) -> Result<Vec<PgColumn>> {
        let by_name = rel.by_name();
        schema
            .fields()
            .iter()
            .map(|f| {
                by_name
                    .get(f.name().as_str())
                    .map(|c| (*c).clone())
                    .ok_or_else(|| {
                        Error::query(format!("{} has no column '{}'", self.name(), f.name()))
                            .with_backend(BACKEND)
                    })
            })
            .collect()
    }

    /// `INSERT INTO t (columns of batch) VALUES ($1, …)` and the one row of `batch` as its
    /// parameters, each in the binary form `COPY` sends. The parameters take the types of
    /// their columns, fixed when a connection prepares the statement; the statement names
    /// the column types it was encoded for (a comment), so a table whose columns change type
    /// gets a new statement rather than values bound to the old types.
    fn insert_one(&self, batch: &RecordBatch) -> Result<(String, Vec<Encoded>)> {
        let rel = self.rel();
        let targets = self.targets(&rel, &batch.schema())?;
        let mut names = Vec::with_capacity(batch.num_columns());
        let mut types = Vec::with_capacity(batch.num_columns());
        let mut values = Vec::with_capacity(batch.num_columns());
        let mut buf = bytes::BytesMut::new();
        for (c, array) in targets.iter().zip(batch.columns()) {
            let encoder = super::encoder::ColumnEncoder::new(array, &c.kind, &c.name)
                .map_err(|e| e.with_backend(BACKEND))?;
            encoder.encode(0, &mut buf).map_err(|m| {
                Error::type_error(format!(
                    "cannot create a record in {}, column '{}': {m}",
                    self.name(),
                    c.name
                ))
                .with_backend(BACKEND)
            })?;
            // A COPY field: its length (-1: NULL), then its bytes.
            let field = buf.split().freeze();
            let len = field
                .get(..4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            values.push(Encoded(match len {
                Some(n) if n >= 0 => Some(field.slice(4..)),
                _ => None,
            }));
            names.push(sql::ident(&c.name));
            types.push(c.type_name.as_str());
        }
        let marks: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
        let stmt = format!(
            "INSERT INTO {} ({}) VALUES ({}) /* dataknobs: {:016x} */",
            rel.qualified(),
            names.join(", "),
            marks.join(", "),
            fingerprint(&types)
        );
        Ok((stmt, values))
    }
}

/// A stable 64-bit digest (FNV-1a) of column type names.
fn fingerprint(types: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for t in types {
        for b in t.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A parameter already in PostgreSQL's binary form for its column's type (None: NULL).
#[derive(Debug)]
struct Encoded(Option<Bytes>);

impl tokio_postgres::types::ToSql for Encoded {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        match &self.0 {
            None => Ok(tokio_postgres::types::IsNull::Yes),
            Some(v) => {
                out.extend_from_slice(v);
                Ok(tokio_postgres::types::IsNull::No)
            }
        }
    }

    /// Encoded for the column the server typed the parameter as.
    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
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

    fn assigns_values(&self) -> bool {
        true
    }

    fn store_defaults(&self) -> Vec<(String, crate::database::StoreDefault)> {
        self.rel()
            .columns
            .iter()
            .filter_map(|c| c.store_default.map(|d| (c.name.clone(), d)))
            .collect()
    }

    /// One record: one round trip, an `INSERT` prepared once per connection whose values are
    /// the bytes a batch's `COPY` would send for the same record (so both store the same).
    async fn create(&self, record: Record) -> Result<String> {
        self.grow(std::slice::from_ref(&record)).await?;
        if self.rel().key.is_none() {
            let ids = self.keyless_create(vec![record]).await?;
            return ids
                .into_iter()
                .next()
                .ok_or_else(|| Error::internal("no id returned"));
        }
        let (batch, mut ids) = self.to_batch(vec![record])?;
        let id = ids.pop().ok_or_else(|| Error::internal("no id returned"))?;
        let (stmt, values) = self.insert_one(&batch)?;
        let client = self.inner.client().await?;
        let context = format!("cannot create record '{id}' in {}", self.name());
        let prepared = client
            .prepare_cached(&stmt)
            .await
            .map_err(|e| pg_error(&context, &e))?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        client.execute(&prepared, &params).await.map_err(|e| {
            let e = pg_error(&context, &e);
            if e.kind() == ErrorKind::AlreadyExists {
                Error::already_exists(format!(
                    "a record with id '{id}' exists already in {}",
                    self.name()
                ))
                .with_backend(BACKEND)
            } else {
                e
            }
        })?;
        Ok(id)
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
            params.values.push(sql::Param::One(v));
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
            return crate::local::count(self, query).await;
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
        // Converted to the column types a part at a time, on the encoding task, while
        // PostgreSQL ingests the parts before (the server is the bottleneck).
        let rel = self.rel();
        let (rows, ids) = self.prepare_rows(&rel, records)?;
        let schema = rel.arrow_schema();
        let n = rows.len();
        let parts = futures::stream::iter((0..n).step_by(BATCH_PART).map({
            let schema = schema.clone();
            move |at| records_to_batch_at(&rows[at..(at + BATCH_PART).min(n)], &schema, at)
        }));
        self.copy_in(schema, parts.boxed()).await.map_err(|e| {
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
        self.copy_stream(&plan, partition).await
    }

    fn describe_count(&self, query: Option<&Query>) -> String {
        let rel = self.rel();
        let filter = query.and_then(Query::filter_expr);
        let plain = query.is_none_or(|q| q.limit.is_none() && q.offset.is_none());
        match filter {
            _ if !plain => "(counted from a scan)".to_string(),
            None => format!("SELECT count(*) FROM {}", rel.qualified()),
            Some(f) if sql::support(&f, &rel.by_name()) == FilterSupport::Exact => {
                match sql::render_filter(&f, &rel.by_name(), &mut sql::Literals) {
                    Ok(w) => format!("SELECT count(*) FROM {} WHERE {w}", rel.qualified()),
                    Err(e) => format!("(cannot plan: {e})"),
                }
            }
            Some(_) => "(counted from a scan)".to_string(),
        }
    }

    fn describe_scan(&self, query: &Query) -> String {
        match self.plan(query) {
            Ok(plan) if self.is_selective(&plan) => format!(
                "{} (rows; PostgreSQL may use parallel workers)",
                Self::select_sql(&plan)
            ),
            Ok(plan) => Self::copy_sql(&plan, None),
            Err(e) => format!("(cannot plan: {e})"),
        }
    }

    async fn insert(&self, data: SendableRecordBatchStream) -> Result<u64> {
        let schema = data.schema();
        self.copy_in(schema, data.map(|b| b.map_err(Error::from)).boxed())
            .await
    }

    fn capabilities(&self) -> crate::database::Capabilities {
        crate::database::Capabilities {
            atomic_batches: true,
            schema_growth: true,
            native_dml: true,
            row_ids: self.supports_row_ids(),
            exact_sort: true,
            key_lookup: self.rel().key.is_some(),
            native_count: true,
        }
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
        let targets = self.targets(&rel, &values.schema())?;
        let id = PgColumn {
            name: "_dk_id".into(),
            kind: Kind::Text,
            type_name: "text".into(),
            not_null: true,
            nondeterministic: false,
            store_default: None,
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
            match self.render_assignment(e, target, &mut params) {
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
