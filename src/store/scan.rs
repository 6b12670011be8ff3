//! Scans of a snapshot of Arrow chunks, shared by the memory backend and the file backend's
//! record store: validation of the query, the pushed filter and projection applied per
//! 8192-row slice, slices dealt round-robin to partitions, and sort / offset / limit done
//! locally when the query asks for them.

use std::sync::Arc;

use datafusion::arrow::compute::{
    SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;

use super::chunks::{Chunk, row_id_field, scan_chunk_rows};
use crate::database::Partition;
use crate::error::{Error, Result};
use crate::pushdown::eval;
use crate::query::{Query, SortOrder};
use crate::record::column_list;

/// Rows per scanned slice (and per batch a scan yields at most).
pub(crate) const SCAN_BATCH_ROWS: usize = 8192;

/// The query with its filters normalized and checked against `schema`, and the projection as
/// column indices; errors name the collection and list its fields.
pub(crate) fn validate(
    name: &str,
    schema: &SchemaRef,
    query: &Query,
) -> Result<(Query, Vec<usize>)> {
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
    let projection = match &q.fields {
        None => (0..schema.fields().len()).collect(),
        Some(fields) => fields
            .iter()
            .map(|f| {
                schema.index_of(f).map_err(|_| {
                    Error::query(format!(
                        "unknown field '{f}' in projection on '{name}' (fields: {})",
                        column_list(schema)
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?,
    };
    Ok((q, projection))
}

/// Streams one partition of a scan of `chunks` (`backend` names the backend in errors).
pub(crate) fn scan_snapshot(
    name: &str,
    backend: &'static str,
    schema: SchemaRef,
    chunks: Vec<Arc<Chunk>>,
    query: &Query,
    partition: Partition,
) -> Result<SendableRecordBatchStream> {
    let (query, projection) =
        validate(name, &schema, query).map_err(|e| e.with_backend(backend))?;
    let predicate =
        eval::compile_predicate(&query.filters, &schema).map_err(|e| e.with_backend(backend))?;
    let with_ids = query.row_ids;
    // With row ids, every batch below has the id column after the table's columns.
    let (scanned_schema, out_projection) = if with_ids {
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(row_id_field()));
        let mut out = projection.clone();
        out.push(schema.fields().len());
        (Arc::new(Schema::new(fields)), out)
    } else {
        (schema.clone(), projection.clone())
    };
    let out_schema = Arc::new(scanned_schema.project(&out_projection)?);
    let sorted = !query.sort.is_empty() || query.offset.is_some();
    if sorted && partition.index > 0 {
        let empty = RecordBatchStreamAdapter::new(out_schema, futures::stream::empty());
        return Ok(Box::pin(empty));
    }
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
            batches.push(scan_chunk_rows(
                &schema,
                chunk,
                *off,
                *len,
                predicate.as_ref(),
                &full,
                with_ids,
            )?);
        }
        let all = concat_batches(&scanned_schema, &batches)?;
        let result = sort_offset_limit(&all, &query)?.project(&out_projection)?;
        let stream = futures::stream::iter(vec![Ok(result)]);
        return Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, stream)));
    }
    let limit = query.limit;
    let mut produced = 0usize;
    let iter = slices.into_iter().map_while(move |(chunk, off, len)| {
        if limit.is_some_and(|l| produced >= l) {
            return None;
        }
        let batch = scan_chunk_rows(
            &schema,
            &chunk,
            off,
            len,
            predicate.as_ref(),
            &projection,
            with_ids,
        )
        .map_err(|e| e.with_backend(backend).into_datafusion());
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

/// Sorts, offsets and limits one batch as `query` says (also used by backends that finish a
/// query locally).
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
