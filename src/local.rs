//! Local evaluation: the part of a record-API [`Query`] that a backend does not evaluate
//! itself, done by the engine on the backend's stream.
//!
//! [`split`] checks a query against the collection's schema and divides it, from the
//! backend's own answers ([`Database::filter_support`], [`Database::sort_support`]), into
//! what the backend is asked for ([`Split::pushed`], the only query [`Database::scan`] ever
//! receives) and what is left ([`Residual`]): filters it cannot evaluate exactly (an
//! `Inexact` one is asked of the backend and applied again here), a sort it cannot give,
//! offset and limit when either of those remains, and the projection when the residual needs
//! extra columns. [`apply`] runs the residual over the backend's stream: filter, offset,
//! limit and projection batch by batch; only a sort buffers the rows.
//!
//! The record API's [`Database::search`] and [`Database::count`] are built on
//! [`scan`] = `split` + [`Database::scan`] + `apply`, once for every backend. (The SQL path
//! splits in [`crate::table::DatabaseTable`] instead, where DataFusion's own operators apply
//! the residual.)

use std::sync::Arc;

use datafusion::arrow::compute::{
    SortColumn, SortOptions, filter_record_batch, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};

use crate::database::{Database, FilterSupport, Partition};
use crate::error::{Error, Result};
use crate::pushdown::eval;
use crate::query::{FilterExpr, Query, ROW_ID, SortOrder, SortSpec};
use crate::record::{Record, batch_to_records, column_list};

/// What the engine does after the backend's scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Residual {
    /// Filters applied to every batch (AND-ed).
    pub filters: Vec<FilterExpr>,
    /// A sort the backend does not give (buffers the rows).
    pub sort: Vec<SortSpec>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    /// The columns to return, by name, when the backend was asked for more (columns the
    /// residual filters or sort need); the row id stays last when the query asked for it.
    pub output: Option<Vec<String>>,
}

impl Residual {
    /// Nothing to do: the backend's stream is the answer.
    pub fn is_empty(&self) -> bool {
        self == &Residual::default()
    }
}

/// A query divided between a backend and the engine.
#[derive(Debug, Clone)]
pub struct Split {
    /// What the backend evaluates: filters it answers `Exact` or `Inexact` for, the sort when
    /// it gives it exactly, offset and limit only when nothing before them is left to do.
    pub pushed: Query,
    pub residual: Residual,
}

/// Checks `query` against `schema` (the collection `name`): every filter field exists and its
/// values fit the column (date strings become datetimes), sort and projection fields exist.
/// Errors name the collection and list its fields.
pub fn validate(name: &str, schema: &Schema, query: &Query) -> Result<Query> {
    let mut q = query.clone();
    q.filters = q
        .filters
        .iter()
        .map(|f| eval::normalize_filter(f, schema))
        .collect();
    for f in &q.filters {
        eval::check_filter(f, schema, name)?;
    }
    for s in &q.sort {
        if schema.field_with_name(&s.field).is_err() {
            return Err(Error::query(format!(
                "unknown sort field '{}' in '{name}' (fields: {})",
                s.field,
                column_list(schema)
            )));
        }
    }
    if let Some(fields) = &q.fields {
        for f in fields {
            if schema.field_with_name(f).is_err() {
                return Err(Error::query(format!(
                    "unknown field '{f}' in projection on '{name}' (fields: {})",
                    column_list(schema)
                )));
            }
        }
    }
    Ok(q)
}

/// Validates `query` and divides it between `db` and the engine (see the module docs).
pub fn split<D: Database + ?Sized>(db: &D, query: &Query) -> Result<Split> {
    let schema = db.schema();
    let query = validate(db.collection_name(), &schema, query)
        .map_err(|e| e.with_backend(db.backend_name()))?;
    let mut pushed = Query {
        row_ids: query.row_ids,
        ..Query::default()
    };
    let mut residual = Residual::default();
    for f in &query.filters {
        match db.filter_support(f) {
            FilterSupport::Exact => pushed.filters.push(f.clone()),
            FilterSupport::Inexact => {
                pushed.filters.push(f.clone());
                residual.filters.push(f.clone());
            }
            FilterSupport::Unsupported => residual.filters.push(f.clone()),
        }
    }
    let sort_pushed = query.sort.is_empty() || db.sort_support(&query.sort);
    if sort_pushed {
        pushed.sort = query.sort.clone();
    } else {
        residual.sort = query.sort.clone();
    }
    if residual.filters.is_empty() && sort_pushed {
        pushed.offset = query.offset;
        pushed.limit = query.limit;
    } else {
        residual.offset = query.offset;
        residual.limit = query.limit;
    }
    let wanted: Vec<String> = match &query.fields {
        Some(f) => f.clone(),
        None => schema.fields().iter().map(|f| f.name().clone()).collect(),
    };
    let mut fetch = wanted.clone();
    let needed = residual
        .filters
        .iter()
        .flat_map(|f| f.fields())
        .chain(residual.sort.iter().map(|s| s.field.as_str()));
    for name in needed {
        if !fetch.iter().any(|n| n == name) {
            fetch.push(name.to_string());
        }
    }
    if fetch.len() != wanted.len() {
        let mut output = wanted;
        if query.row_ids {
            output.push(ROW_ID.to_string());
        }
        residual.output = Some(output);
        pushed.fields = Some(fetch);
    } else {
        pushed.fields = query.fields.clone();
    }
    Ok(Split { pushed, residual })
}

/// Applies `residual` to a stream: batch by batch for filters, offset, limit and projection;
/// a sort collects the filtered rows first.
pub fn apply(
    stream: SendableRecordBatchStream,
    residual: &Residual,
) -> Result<SendableRecordBatchStream> {
    if residual.is_empty() {
        return Ok(stream);
    }
    let input_schema = stream.schema();
    let predicate = eval::compile_predicate(&residual.filters, &input_schema)?;
    let projection = match &residual.output {
        Some(names) => Some(
            names
                .iter()
                .map(|n| input_schema.index_of(n))
                .collect::<std::result::Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let out_schema: SchemaRef = match &projection {
        Some(p) => Arc::new(input_schema.project(p)?),
        None => input_schema.clone(),
    };
    let filtered = stream.map(move |b| {
        let b = b?;
        match &predicate {
            Some(p) => {
                let mask = eval::evaluate_mask(p, &b).map_err(Error::into_datafusion)?;
                Ok(filter_record_batch(&b, &mask)?)
            }
            None => Ok(b),
        }
    });
    let project = move |b: RecordBatch| -> datafusion::error::Result<RecordBatch> {
        match &projection {
            Some(p) => with_rows(b.project(p)?, b.num_rows()),
            None => Ok(b),
        }
    };
    if !residual.sort.is_empty() {
        let sort = residual.sort.clone();
        let (offset, limit) = (residual.offset, residual.limit);
        let schema = input_schema.clone();
        let sorted = futures::stream::once(async move {
            let batches: Vec<RecordBatch> = filtered.try_collect().await?;
            let all = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
            let batch =
                sort_offset_limit(&all, &sort, offset, limit).map_err(Error::into_datafusion)?;
            project(batch)
        });
        return Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, sorted)));
    }
    let limited = offset_limit(filtered, residual.offset, residual.limit);
    let projected = limited.map(move |b| b.and_then(&project));
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        out_schema, projected,
    )))
}

/// Skips `offset` rows, then passes at most `limit`, batch by batch; stops pulling from
/// `stream` once the limit is reached.
pub fn offset_limit<S>(
    stream: S,
    offset: Option<usize>,
    limit: Option<usize>,
) -> futures::stream::BoxStream<'static, datafusion::error::Result<RecordBatch>>
where
    S: futures::Stream<Item = datafusion::error::Result<RecordBatch>> + Send + 'static,
{
    if offset.is_none() && limit.is_none() {
        return stream.boxed();
    }
    let state = (
        stream.boxed(),
        offset.unwrap_or(0),
        limit.unwrap_or(usize::MAX),
    );
    futures::stream::unfold(state, |(mut stream, mut skip, left)| async move {
        loop {
            if left == 0 {
                return None;
            }
            match stream.next().await? {
                // The error ends the stream.
                Err(e) => return Some((Err(e), (stream, skip, 0))),
                Ok(b) => {
                    let n = b.num_rows();
                    if skip >= n {
                        skip -= n;
                        continue;
                    }
                    let len = (n - skip).min(left);
                    let out = b.slice(skip, len);
                    return Some((Ok(out), (stream, 0, left - len)));
                }
            }
        }
    })
    .boxed()
}

/// Sorts one batch by `sort`, then offsets and limits it.
pub fn sort_offset_limit(
    batch: &RecordBatch,
    sort: &[SortSpec],
    offset: Option<usize>,
    limit: Option<usize>,
) -> Result<RecordBatch> {
    let offset = offset.unwrap_or(0);
    let batch = if sort.is_empty() {
        batch.clone()
    } else {
        let schema = batch.schema();
        let columns = sort
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
        let fetch = limit.map(|l| l.saturating_add(offset));
        let indices = lexsort_to_indices(&columns, fetch)?;
        take_record_batch(batch, &indices)?
    };
    let start = offset.min(batch.num_rows());
    let len = limit.unwrap_or(usize::MAX).min(batch.num_rows() - start);
    Ok(with_rows(batch.slice(start, len), len)?)
}

/// `batch` with its row count kept even when it has no columns.
fn with_rows(batch: RecordBatch, rows: usize) -> datafusion::error::Result<RecordBatch> {
    if batch.num_columns() > 0 {
        return Ok(batch);
    }
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// Streams the rows matching `query` from `db`: the backend's part of it, then the rest here.
pub async fn scan<D: Database + ?Sized>(
    db: &D,
    query: &Query,
) -> Result<SendableRecordBatchStream> {
    let split = split(db, query)?;
    let stream = db.scan(&split.pushed, Partition::ALL).await?;
    apply(stream, &split.residual).map_err(|e| e.with_backend(db.backend_name()))
}

/// The records matching `query`, sorted, offset and limited as it says.
pub async fn search<D: Database + ?Sized>(db: &D, query: &Query) -> Result<Vec<Record>> {
    let key = db.key_column();
    let mut stream = scan(db, query).await?;
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        out.extend(batch_to_records(&b.map_err(Error::from)?, key.as_deref())?);
    }
    Ok(out)
}

/// How many records match `query` (all for None), counted from a scan of no columns.
pub async fn count<D: Database + ?Sized>(db: &D, query: Option<&Query>) -> Result<u64> {
    let mut q = query.cloned().unwrap_or_default();
    q.fields = Some(vec![]);
    q.sort.clear();
    let mut stream = scan(db, &q).await?;
    let mut n = 0u64;
    while let Some(b) = stream.next().await {
        n += b.map_err(Error::from)?.num_rows() as u64;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    //! A real memory collection behind a wrapper that declines every filter on `b` and every
    //! sort: each query answered through the wrapper (backend part + local part) must equal
    //! the answer of the memory collection itself, and the wrapper checks that its scan only
    //! ever receives what it accepted.
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::backends::memory::MemoryBackend;
    use crate::query::{Filter, Operator};

    #[derive(Debug)]
    struct Picky {
        inner: Arc<dyn Database>,
        seen: Mutex<Vec<Query>>,
    }

    fn on_b(f: &FilterExpr) -> bool {
        f.fields().contains(&"b")
    }

    #[async_trait]
    impl Database for Picky {
        fn backend_name(&self) -> &str {
            "picky"
        }
        fn collection_name(&self) -> &str {
            self.inner.collection_name()
        }
        fn schema(&self) -> SchemaRef {
            self.inner.schema()
        }
        fn key_column(&self) -> Option<String> {
            self.inner.key_column()
        }
        async fn create(&self, record: Record) -> Result<String> {
            self.inner.create(record).await
        }
        async fn read(&self, id: &str) -> Result<Option<Record>> {
            self.inner.read(id).await
        }
        async fn update(&self, id: &str, record: Record) -> Result<bool> {
            self.inner.update(id, record).await
        }
        async fn delete(&self, id: &str) -> Result<bool> {
            self.inner.delete(id).await
        }
        async fn clear(&self) -> Result<u64> {
            self.inner.clear().await
        }
        fn filter_support(&self, f: &FilterExpr) -> FilterSupport {
            if !on_b(f) {
                FilterSupport::Exact
            } else if matches!(f, FilterExpr::Cond(c) if c.op == Operator::Gt) {
                // `b > x` is asked of the backend as a superset (`b >= x`) and applied again.
                FilterSupport::Inexact
            } else {
                FilterSupport::Unsupported
            }
        }
        async fn scan(&self, query: &Query, p: Partition) -> Result<SendableRecordBatchStream> {
            self.seen.lock().unwrap().push(query.clone());
            assert!(query.sort.is_empty(), "a sort reached the scan: {query}");
            let mut q = query.clone();
            for f in &mut q.filters {
                match self.filter_support(f) {
                    FilterSupport::Exact => {}
                    FilterSupport::Inexact => {
                        if let FilterExpr::Cond(c) = f {
                            c.op = Operator::Ge;
                        }
                    }
                    FilterSupport::Unsupported => {
                        panic!("unsupported filter reached the scan: {f}")
                    }
                }
            }
            self.inner.scan(&q, p).await
        }
    }

    async fn fixture() -> (Arc<dyn Database>, Picky) {
        let backend = MemoryBackend::new();
        let db = backend.collection("local_split").unwrap();
        for i in 0..40i64 {
            let mut r = Record::new()
                .with("a", i % 7)
                .with("c", format!("row{i:02}"));
            if i % 5 != 0 {
                r.set("b", (i * 13) % 11);
            } else {
                r.set("b", Value::Null);
            }
            db.create(r.with_id(format!("{i:02}"))).await.unwrap();
        }
        let picky = Picky {
            inner: db.clone(),
            seen: Mutex::new(vec![]),
        };
        (db, picky)
    }

    fn cond(field: &str, op: Operator, v: i64) -> FilterExpr {
        FilterExpr::Cond(Filter::new(field, op, v).unwrap())
    }

    use crate::record::Value;

    fn queries() -> Vec<Query> {
        let base = Query::new();
        let mut out = vec![
            base.clone(),
            base.clone()
                .sort("b", SortOrder::Desc)
                .sort("id", SortOrder::Asc),
            base.clone().sort("c", SortOrder::Asc).offset(3).limit(5),
            base.clone().limit(7),
            base.clone().offset(35),
            base.clone().offset(38).limit(10),
        ];
        let filters = [
            vec![cond("a", Operator::Lt, 3)],
            vec![cond("b", Operator::Le, 4)],
            vec![cond("b", Operator::Gt, 5)],
            vec![cond("a", Operator::Ge, 2), cond("b", Operator::Ne, 3)],
            vec![FilterExpr::Or(vec![
                cond("a", Operator::Eq, 1),
                cond("b", Operator::Eq, 2),
            ])],
        ];
        for f in filters {
            for mut q in [
                base.clone(),
                base.clone().project(["c"]),
                base.clone().project(Vec::<String>::new()),
                base.clone().sort("c", SortOrder::Desc).limit(4),
                base.clone()
                    .sort("a", SortOrder::Asc)
                    .sort("c", SortOrder::Asc)
                    .offset(2)
                    .project(["id"]),
                base.clone().limit(3).project(["a"]),
                base.clone().offset(4).limit(2),
            ] {
                q.filters = f.clone();
                out.push(q);
            }
        }
        out
    }

    #[tokio::test]
    async fn backend_part_plus_local_part_equals_the_whole_query() {
        let (db, picky) = fixture().await;
        for q in queries() {
            let whole = db.search(&q).await.unwrap();
            let split = picky.search(&q).await.unwrap();
            // Without a sort, rows come in scan order on both sides.
            assert_eq!(split, whole, "query {q}");
            assert!(
                !whole.is_empty() || q.offset.is_some() || !q.filters.is_empty(),
                "{q}"
            );
            assert_eq!(
                picky.count(Some(&q)).await.unwrap(),
                db.count(Some(&q)).await.unwrap(),
                "count {q}"
            );
        }
    }

    #[tokio::test]
    async fn the_scan_receives_only_what_the_backend_accepted() {
        let (_db, picky) = fixture().await;
        let q = Query {
            filters: vec![
                cond("a", Operator::Lt, 3),
                cond("b", Operator::Gt, 5),
                cond("b", Operator::Eq, 1),
            ],
            fields: Some(vec!["c".into()]),
            limit: Some(2),
            ..Query::default()
        };
        let s = split(&picky, &q).unwrap();
        assert_eq!(
            s.pushed.filters,
            vec![cond("a", Operator::Lt, 3), cond("b", Operator::Gt, 5)]
        );
        assert_eq!(
            s.pushed.limit, None,
            "a limit cannot be pushed below a local filter"
        );
        assert_eq!(s.pushed.fields, Some(vec!["c".into(), "b".into()]));
        assert_eq!(
            s.residual.filters,
            vec![cond("b", Operator::Gt, 5), cond("b", Operator::Eq, 1)]
        );
        assert_eq!(s.residual.limit, Some(2));
        assert_eq!(s.residual.output, Some(vec!["c".into()]));
        // Exact filters and no sort: everything is pushed, nothing is left.
        let q = Query::new()
            .try_filter("a", "<", 3)
            .unwrap()
            .offset(1)
            .limit(2);
        let s = split(&picky, &q).unwrap();
        assert!(s.residual.is_empty(), "{:?}", s.residual);
        assert_eq!((s.pushed.offset, s.pushed.limit), (Some(1), Some(2)));
        let found = picky.search(&q).await.unwrap();
        assert_eq!(found.len(), 2);
        let seen = picky.seen.lock().unwrap();
        assert_eq!(seen.last().unwrap(), &s.pushed);
    }

    #[tokio::test]
    async fn bad_queries_are_refused_before_the_backend_is_asked() {
        let (_db, picky) = fixture().await;
        for (q, want) in [
            (
                Query::new().sort("nope", SortOrder::Asc),
                "unknown sort field 'nope'",
            ),
            (
                Query::new().project(["nope"]),
                "unknown field 'nope' in projection",
            ),
            (
                Query::new().try_filter("nope", "=", 1).unwrap(),
                "unknown field 'nope' in filter",
            ),
            (
                Query::new().try_filter("a", "=", "x").unwrap(),
                "does not fit column 'a'",
            ),
        ] {
            let e = picky.search(&q).await.unwrap_err();
            assert!(e.to_string().contains(want), "{q}: {e}");
            assert!(
                e.to_string().contains("fields: ") || want.contains("fit"),
                "{e}"
            );
        }
        assert!(picky.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_limit_stops_pulling_batches() {
        let batches: Vec<datafusion::error::Result<RecordBatch>> = (0..5)
            .map(|i| {
                let a = datafusion::arrow::array::Int64Array::from(vec![i; 10]);
                Ok(RecordBatch::try_from_iter([("a", Arc::new(a) as _)]).unwrap())
            })
            .collect();
        let pulled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let p = pulled.clone();
        let stream = futures::stream::iter(batches).inspect(move |_| {
            p.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let out: Vec<RecordBatch> = offset_limit(stream, Some(15), Some(10))
            .try_collect()
            .await
            .unwrap();
        let rows: Vec<usize> = out.iter().map(|b| b.num_rows()).collect();
        assert_eq!(rows, [5, 5]);
        assert_eq!(pulled.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
