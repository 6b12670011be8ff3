//! Writes to a PostgreSQL table: COPY-in inserts in one transaction, native DELETE/UPDATE,
//! the computed UPDATE and UPDATE by row id through a temporary table.

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::common::runtime::SpawnedTask;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator as DfOp};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};

use super::encoder::ColumnEncoder;
use super::relation::Relation;
use super::scan::decode_copy;
use super::sql::{self, Literals, Params};
use super::table::PgTable;
use super::types::{Kind, PgColumn};
use super::{BACKEND, pg_error};
use crate::database::FilterSupport;
use crate::error::{Error, Result};
use crate::query::{FilterExpr, Query};
use crate::record::{Value, batch_to_records};

/// Bytes buffered before a COPY-in chunk is sent: a chunk goes out after the first batch
/// that fills this much, so the server starts on a large write early.
const COPY_CHUNK_MIN: usize = 64 << 10;

const PGCOPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

impl PgTable {
    /// COPY batches in, in one transaction: all of them or (on any error) none. Encoding
    /// (and whatever produces `data`) runs on its own task from the start, so it overlaps
    /// with the round trips that open the COPY and then with PostgreSQL ingesting the chunks
    /// before (the server's COPY is the bottleneck; this uses the other core). The first
    /// error of `data` ends the COPY and is returned as it is.
    pub(super) async fn copy_in(
        &self,
        schema: SchemaRef,
        mut data: BoxStream<'static, Result<RecordBatch>>,
    ) -> Result<u64> {
        let rel = self.rel();
        let targets = self.targets(&rel, &schema)?;
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
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(4);
        // Aborted when dropped, so on every early return (it may wait on a full channel).
        let _encoder = {
            let targets = targets.clone();
            let context = context.clone();
            SpawnedTask::spawn(async move {
                let result = encode_stream(&mut data, &targets, &context, &tx).await;
                if let Err(e) = result {
                    let _ = tx.send(Err(e)).await;
                }
            })
        };
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
        while let Some(chunk) = rx.recv().await {
            // An error of the data ends here; dropping the sink aborts the COPY (CopyFail)
            // and dropping the transaction rolls it back: nothing is inserted.
            if let Err(e) = sink.send(chunk?).await {
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

    pub(super) fn render_where(
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

    pub(super) async fn run(&self, stmt: &str, params: &Params, what: &str) -> Result<u64> {
        let client = self.inner.client().await?;
        client
            .execute(stmt, &params.refs())
            .await
            .map_err(|e| pg_error(&format!("{what} in {} failed", self.name()), &e))
    }

    /// UPDATE whose new values DataFusion computes (expressions PostgreSQL would evaluate
    /// differently, e.g. upper() under a locale): in one transaction, read the key and the
    /// needed columns of the matching rows, compute, COPY the results into a temporary table
    /// and update from it.
    pub(super) async fn update_computed(
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
                decode_copy(client, copy.as_str(), &plan.columns, &schema, &table, &tx).await
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
    pub(super) async fn in_transaction<T>(
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
    pub(super) async fn update_from_rows(
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
        // Numbers that are not of the column's type yet (an int column set to `a + 1.5`)
        // travel as what they are; `SET c = s.c` then converts them by PostgreSQL's
        // assignment rules. Anything else is converted to the column's type here.
        let value_types: Vec<DataType> = rows
            .first()
            .map(|(_, v)| v.iter().map(|a| a.data_type().clone()).collect())
            .unwrap_or_default();
        let carriers: Vec<PgColumn> = targets
            .iter()
            .enumerate()
            .map(|(i, c)| match value_types.get(i) {
                Some(t) if *t != c.kind.arrow_type() => as_computed(c, t),
                _ => c.clone(),
            })
            .collect();
        let targets = carriers.as_slice();
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
            let mut converted = Vec::with_capacity(values.len());
            for (c, v) in targets.iter().zip(&values) {
                let want = c.kind.arrow_type();
                converted.push(if *v.data_type() == want {
                    v.clone()
                } else {
                    datafusion::arrow::compute::cast(v, &want)?
                });
            }
            for (c, v) in targets.iter().zip(&converted) {
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
    pub(super) fn no_row_ids(&self) -> Error {
        Error::unsupported(format!(
            "{} has no primary key and no row address dataknobs can use (a view or a \
             partitioned table), so this DELETE/UPDATE cannot select its rows by id; \
             use a WHERE made of simple column comparisons, or add a primary key",
            self.name()
        ))
        .with_backend(BACKEND)
    }

    /// An UPDATE assignment `target = e` as PostgreSQL SQL that PostgreSQL assigns by its own
    /// rules. `e` comes without DataFusion's cast to the column's Arrow type
    /// ([`Database::assigns_values`]), so PostgreSQL applies its assignment cast to the
    /// column's own type (a value too long for varchar(n) or char(n) is an error, not a
    /// truncation; numeric(p,s) rounds as PostgreSQL rounds). A string literal is sent untyped,
    /// so PostgreSQL takes it as a value of the column's type (uuid, json, char(n) …).
    pub(super) fn render_assignment(
        &self,
        e: &Expr,
        target: &PgColumn,
        params: &mut Params,
    ) -> Result<String> {
        match e {
            Expr::Literal(s, _) if s.is_null() => Ok("NULL".to_string()),
            Expr::Literal(
                ScalarValue::Utf8(Some(v))
                | ScalarValue::LargeUtf8(Some(v))
                | ScalarValue::Utf8View(Some(v)),
                _,
            ) => {
                params
                    .values
                    .push(sql::Param::One(Value::String(v.clone())));
                Ok(format!("${}", params.values.len()))
            }
            _ => self.render_expr(e, target, params),
        }
    }

    /// A DataFusion expression (part of an UPDATE assignment) as PostgreSQL SQL with the same
    /// meaning: every literal is a parameter of the literal's own type (so `a / 2` on
    /// integers stays integer division, whatever the target column's type).
    pub(super) fn render_expr(
        &self,
        e: &Expr,
        target: &PgColumn,
        params: &mut Params,
    ) -> Result<String> {
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
                let own_type = super::types::pg_type_for_arrow("literal", &s.data_type())
                    .map_err(|_| unsupported())?;
                if s.is_null() {
                    return Ok(format!("NULL::{own_type}"));
                }
                let v = match crate::pushdown::scalar_to_value(s) {
                    Some(v) => v,
                    // A decimal wider than i128 travels as its exact text.
                    None if matches!(s, ScalarValue::Decimal256(..)) => {
                        Value::String(s.to_string())
                    }
                    None => return Err(unsupported()),
                };
                params.values.push(sql::Param::One(v));
                format!("${}::{own_type}", params.values.len())
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

/// Encodes a stream of batches as binary COPY data (header, tuples, trailer), sending a chunk
/// after each batch that brings it to [`COPY_CHUNK_MIN`] bytes.
pub(super) async fn encode_stream(
    data: &mut BoxStream<'static, Result<RecordBatch>>,
    targets: &[PgColumn],
    context: &str,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    // Sized for the first chunk; after each chunk sent, for one like it (a sent chunk keeps
    // its allocation alive until the server has it, so a larger buffer would be kept idle).
    let mut buf = BytesMut::with_capacity(2 * COPY_CHUNK_MIN);
    buf.put_slice(PGCOPY_HEADER);
    while let Some(batch) = data.next().await {
        let batch = batch?;
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
        if buf.len() >= COPY_CHUNK_MIN {
            let chunk = buf.split().freeze();
            let sent = chunk.len();
            if tx.send(Ok(chunk)).await.is_err() {
                return Ok(());
            }
            buf.reserve(sent + sent / 8);
        }
    }
    buf.put_i16(-1);
    let _ = tx.send(Ok(buf.freeze())).await;
    Ok(())
}

/// Appends every row of the encoders' batch as a binary COPY tuple; `fail` turns an encoding
/// problem in column `i` into the caller's error.
pub(super) fn encode_rows(
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
pub(super) fn set_list(
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
        params.values.push(sql::Param::One(v));
        sets.push(format!(
            "{} = ${}",
            sql::ident(&c.name),
            params.values.len()
        ));
    }
    Ok(sets)
}

/// The temporary column that carries a computed number of type `t` to `target` unchanged (a
/// numeric, float or integer of its own type), or `target` itself for anything else.
fn as_computed(target: &PgColumn, t: &DataType) -> PgColumn {
    let (kind, type_name) = match t {
        DataType::Decimal128(p, s) if *s >= 0 => {
            (Kind::Numeric(Some((*p, *s))), format!("numeric({p},{s})"))
        }
        DataType::Float64 => (Kind::Float8, "double precision".to_string()),
        DataType::Float32 => (Kind::Float4, "real".to_string()),
        DataType::Int64 => (Kind::Int8, "bigint".to_string()),
        DataType::Int32 => (Kind::Int4, "integer".to_string()),
        DataType::Int16 => (Kind::Int2, "smallint".to_string()),
        _ => return target.clone(),
    };
    PgColumn {
        kind,
        type_name,
        ..target.clone()
    }
}
