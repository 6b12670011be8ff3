//! Scans of a snapshot of Arrow chunks, shared by the memory backend and the file backend's
//! record store: validation of the query, the pushed filter and projection applied per
//! 8192-row slice as the stream is polled, slices dealt round-robin to partitions, then
//! offset and limit. A store has no order of its own, so it never sorts: the caller does
//! ([`crate::local`] for the record API, DataFusion for SQL).

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;

use super::chunks::{Chunk, row_id_field, scan_chunk_rows};
use crate::database::Partition;
use crate::error::{Error, Result};
use crate::pushdown::eval;
use crate::query::Query;

/// Rows per scanned slice (and per batch a scan yields at most).
pub(crate) const SCAN_BATCH_ROWS: usize = 8192;

/// The query checked against `schema` ([`crate::local::validate`]), and its projection as
/// column indices.
pub(crate) fn validate(
    name: &str,
    schema: &SchemaRef,
    query: &Query,
) -> Result<(Query, Vec<usize>)> {
    let q = crate::local::validate(name, schema, query)?;
    let projection = match &q.fields {
        None => (0..schema.fields().len()).collect(),
        Some(fields) => fields
            .iter()
            .map(|f| Ok(schema.index_of(f)?))
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
    // A store scan gives no order of its own: a sort is done by the caller (the record API's
    // local evaluation, or DataFusion), never asked of it.
    if !query.sort.is_empty() {
        return Err(Error::internal(format!(
            "a scan of '{name}' was asked to sort; the {backend} store does not sort"
        )));
    }
    // An offset counts rows in scan order, which only one partition sees whole.
    if query.offset.is_some() && partition.index > 0 {
        let empty = RecordBatchStreamAdapter::new(out_schema, futures::stream::empty());
        return Ok(Box::pin(empty));
    }
    let all = query.offset.is_some();
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
            if all || k % partition.count.max(1) == partition.index {
                slices.push((chunk.clone(), off, len));
            }
            k += 1;
            off += len;
        }
    }
    let iter = slices.into_iter().map(move |(chunk, off, len)| {
        scan_chunk_rows(
            &schema,
            &chunk,
            off,
            len,
            predicate.as_ref(),
            &projection,
            with_ids,
        )
        .map_err(|e| e.with_backend(backend).into_datafusion())
    });
    // Lazy: a slice is filtered only when the stream is polled, so a limit stops the work.
    let slices =
        futures::stream::iter(iter).try_filter(|b| futures::future::ready(b.num_rows() > 0));
    let stream = crate::local::offset_limit(slices, query.offset, query.limit);
    Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, stream)))
}
