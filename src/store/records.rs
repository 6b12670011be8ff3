//! Pieces shared by the collections that keep each record as a JSON object under its id
//! and evaluate queries themselves on decoded batches: S3 record objects
//! (`backends::s3::records`) and key-value tables ([`crate::kv::table`]).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::database::{Database, FilterSupport, Partition};
use crate::error::{Error, Result};
use crate::query::{FilterExpr, Query, ROW_ID};
use crate::record::{Record, Value, batch_to_records};

/// Exact when every field the filter reads is a column (DataFusion's kernels evaluate it on
/// the decoded batches), else unsupported.
pub(crate) fn exact_on_columns(schema: &Schema, filter: &FilterExpr) -> FilterSupport {
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

/// What a scan of `query` returns: the indexes of the projected columns and the output
/// schema (then the row id column when `query.row_ids`).
pub(crate) struct ScanShape {
    pub projection: Vec<usize>,
    pub schema: SchemaRef,
    pub row_ids: bool,
}

impl ScanShape {
    pub fn of(schema: &Schema, query: &Query, collection: &str) -> Result<ScanShape> {
        let projection: Vec<usize> = match &query.fields {
            None => (0..schema.fields().len()).collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    schema
                        .index_of(n)
                        .map_err(|_| Error::query(format!("'{collection}' has no column '{n}'")))
                })
                .collect::<Result<_>>()?,
        };
        let mut fields: Vec<ArrowField> = projection
            .iter()
            .map(|i| schema.field(*i).clone())
            .collect();
        if query.row_ids {
            fields.push(ArrowField::new(ROW_ID, DataType::Utf8, false));
        }
        Ok(ScanShape {
            projection,
            schema: Arc::new(Schema::new(fields)),
            row_ids: query.row_ids,
        })
    }

    /// The rows of `batch` (all the collection's columns) that `predicate` keeps, projected,
    /// with their ids (`ids`, one per row) when asked for.
    pub fn apply(
        &self,
        batch: &RecordBatch,
        ids: Vec<String>,
        predicate: Option<&Arc<dyn PhysicalExpr>>,
    ) -> Result<RecordBatch> {
        let mask = match predicate {
            Some(p) => Some(crate::pushdown::eval::evaluate_mask(p, batch)?),
            None => None,
        };
        let mut columns: Vec<ArrayRef> = self
            .projection
            .iter()
            .map(|i| batch.column(*i).clone())
            .collect();
        if self.row_ids {
            columns.push(Arc::new(StringArray::from(ids)));
        }
        let projected = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?;
        Ok(match mask {
            Some(m) => filter_record_batch(&projected, &m)?,
            None => projected,
        })
    }
}

/// The (offset, limit) a scan applies itself: only when there is no sort (offset and limit
/// arrive only when every filter is the backend's).
pub(crate) fn offset_and_limit(query: &Query) -> (usize, Option<usize>) {
    if query.sort.is_empty() {
        (query.offset.unwrap_or(0), query.limit)
    } else {
        (0, None)
    }
}

/// `stream` without its first `skip` rows and ending after `limit` rows (dropping the
/// source once the limit is reached).
pub(crate) fn skip_and_limit(
    stream: BoxStream<'static, Result<RecordBatch>>,
    skip: usize,
    limit: Option<usize>,
) -> BoxStream<'static, Result<RecordBatch>> {
    if skip == 0 && limit.is_none() {
        return stream;
    }
    stream
        .scan((skip, limit.unwrap_or(usize::MAX)), |(skip, left), b| {
            let out = match b {
                _ if *left == 0 => None,
                Ok(b) => {
                    let from = (*skip).min(b.num_rows());
                    *skip -= from;
                    let n = (b.num_rows() - from).min(*left);
                    *left -= n;
                    Some(Ok(b.slice(from, n)))
                }
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        })
        .boxed()
}

/// The record ids of a batch scanned with [`Query::row_ids`].
pub(crate) fn row_ids(batch: &RecordBatch) -> Result<Vec<String>> {
    Ok(batch
        .column_by_name(ROW_ID)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| Error::internal("a scan with row ids returned none"))?
        .iter()
        .flatten()
        .map(str::to_string)
        .collect())
}

/// The ids of `db`'s rows matching `filter` (all for None), from a scan of no columns.
pub(crate) async fn matching_ids<D: Database + ?Sized>(
    db: &D,
    filter: Option<&FilterExpr>,
) -> Result<Vec<String>> {
    let query = Query {
        filters: filter.cloned().into_iter().collect(),
        fields: Some(vec![]),
        row_ids: true,
        ..Query::default()
    };
    let batches: Vec<RecordBatch> = db
        .scan(&query, Partition::ALL)
        .await?
        .try_collect()
        .await
        .map_err(Error::from)?;
    let mut ids = Vec::new();
    for b in &batches {
        ids.extend(row_ids(b)?);
    }
    Ok(ids)
}

/// The SET expressions of an UPDATE, compiled against `schema`, with their columns.
pub(crate) type Assignments = Vec<(ArrowField, Arc<dyn PhysicalExpr>)>;

/// Compiles UPDATE's SET expressions against the collection's columns.
pub(crate) fn compile_assignments(
    schema: &Schema,
    assignments: &[(String, datafusion::logical_expr::Expr)],
    collection: &str,
) -> Result<Assignments> {
    let mut compiled = Vec::with_capacity(assignments.len());
    for (col, expr) in assignments {
        let field = schema
            .field_with_name(col)
            .map_err(|_| Error::query(format!("UPDATE: '{collection}' has no column '{col}'")))?;
        let e =
            crate::pushdown::eval::compile_expr(crate::pushdown::strip_qualifiers(expr), schema)?;
        compiled.push((field.clone(), e));
    }
    Ok(compiled)
}

/// The new values of the changed columns for each row of `rows` (all the collection's
/// columns), cast to the columns' types.
pub(crate) fn assigned_values(compiled: &Assignments, rows: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(compiled.len());
    let mut columns = Vec::with_capacity(compiled.len());
    for (field, e) in compiled {
        let v = e.evaluate(rows)?.into_array(rows.num_rows())?;
        let v = if v.data_type() == field.data_type() {
            v
        } else {
            datafusion::arrow::compute::cast(&v, field.data_type())?
        };
        fields.push(field.clone());
        columns.push(v);
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
    )?)
}

/// UPDATE … SET … WHERE `filter` on a collection that changes rows by id: the matching rows
/// are scanned with their ids, the SET expressions evaluated on them (cast to the columns'
/// types), and each batch handed to [`Database::update_ids`]. Returns how many changed.
pub(crate) async fn update_by_ids<D: Database + ?Sized>(
    db: &D,
    assignments: &[(String, datafusion::logical_expr::Expr)],
    filter: Option<&FilterExpr>,
) -> Result<u64> {
    let schema = db.schema();
    let query = Query {
        filters: filter.cloned().into_iter().collect(),
        row_ids: true,
        ..Query::default()
    };
    let compiled = compile_assignments(&schema, assignments, db.collection_name())?;
    let batches: Vec<RecordBatch> = db
        .scan(&query, Partition::ALL)
        .await?
        .try_collect()
        .await
        .map_err(Error::from)?;
    let mut changed = 0;
    for b in &batches {
        let ids = row_ids(b)?;
        let rows = b.project(&(0..schema.fields().len()).collect::<Vec<_>>())?;
        let values = assigned_values(&compiled, &rows)?;
        changed += db.update_ids(&ids, values).await?;
    }
    Ok(changed)
}

/// The typed fields of `records` that `schema` lacks, as new nullable columns (untyped NULLs
/// say nothing about a type and add nothing).
pub(crate) fn new_fields(
    schema: &Schema,
    records: &[Record],
    collection: &str,
) -> Result<Vec<ArrowField>> {
    let mut out: Vec<ArrowField> = Vec::new();
    for r in records {
        for f in r.fields() {
            if schema.field_with_name(&f.name).is_ok()
                || !f.has_type()
                || out.iter().any(|n| n.name() == &f.name)
            {
                continue;
            }
            if f.name.is_empty() {
                return Err(Error::query(format!(
                    "a field of a record for '{collection}' has an empty name"
                )));
            }
            out.push(f.field_type.arrow_field(&f.name).with_nullable(true));
        }
    }
    Ok(out)
}

/// `schema` plus those of `fields` it lacks.
pub(crate) fn grown(schema: &Schema, fields: &[ArrowField]) -> SchemaRef {
    let mut all: Vec<ArrowField> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for f in fields {
        if schema.field_with_name(f.name()).is_err() {
            all.push(f.clone());
        }
    }
    Arc::new(Schema::new(all))
}

/// The id of a record to write: `forced` (an update's), its own, its key field's, or a new
/// UUID; the key field is set to it when empty. An id that disagrees with the key field is
/// an error.
pub(crate) fn record_id(
    record: &mut Record,
    key: Option<&str>,
    forced: Option<&str>,
    collection: &str,
) -> Result<String> {
    let given = forced
        .map(str::to_string)
        .or(record.id().map(str::to_string));
    let Some(key) = key else {
        return Ok(given.unwrap_or_else(crate::record::new_record_id));
    };
    let from_field = record.get(key).filter(|v| !v.is_null()).map(Value::to_text);
    let id = match (given, from_field) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::query(format!(
                "record id '{a}' disagrees with its key field '{key}' = '{b}' in '{collection}'"
            )));
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => crate::record::new_record_id(),
    };
    if record.get(key).is_none_or(Value::is_null) {
        record.set(key.to_string(), Value::String(id.clone()));
    }
    Ok(id)
}

/// Records ready to be encoded: untyped fields that are no column dropped, any other field
/// that is no column refused (`why` says why columns are fixed).
pub(crate) fn fit_columns(
    schema: &Schema,
    record: &mut Record,
    collection: &str,
    why: &str,
) -> Result<()> {
    let untyped: Vec<String> = record
        .fields()
        .iter()
        .filter(|f| !f.has_type() && schema.field_with_name(&f.name).is_err())
        .map(|f| f.name.clone())
        .collect();
    for n in untyped {
        record.remove(&n);
    }
    for f in record.fields() {
        if schema.field_with_name(&f.name).is_err() {
            return Err(Error::unsupported(format!(
                "'{collection}' has no column '{}'{why} (columns: {})",
                f.name,
                crate::record::column_list(schema)
            )));
        }
    }
    Ok(())
}

/// Each changed row's record as `batch_to_records` gives it, for [`Database::update_ids`].
pub(crate) fn changes(values: &RecordBatch) -> Result<(Vec<String>, Vec<Record>)> {
    let names = values
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    Ok((names, batch_to_records(values, None)?))
}
