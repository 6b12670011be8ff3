//! Rows as JSON objects, one per record (the form record objects, Redis hash values and
//! HDFS record files keep), written and read with Arrow's JSON writer and decoder.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};

/// Each row of `batch` as one JSON object (Arrow's JSON writer: the form its reader takes
/// back exactly).
pub fn json_objects(batch: &RecordBatch) -> Result<Vec<Bytes>> {
    let mut lines = Vec::new();
    {
        // NaN and infinities as strings ("NaN", "inf"), which the reader takes back.
        let mut w = datafusion::arrow::json::WriterBuilder::new()
            .with_encoder_factory(Arc::new(super::FloatsAsText))
            .build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut lines);
        w.write(batch)
            .map_err(|e| Error::query(format!("encoding records as JSON: {e}")))?;
        w.finish()
            .map_err(|e| Error::query(format!("encoding records as JSON: {e}")))?;
    }
    let bytes = Bytes::from(lines);
    let mut out = Vec::with_capacity(batch.num_rows());
    let mut start = 0;
    for (i, c) in bytes.iter().enumerate() {
        if *c == b'\n' {
            out.push(bytes.slice(start..i));
            start = i + 1;
        }
    }
    if out.len() != batch.num_rows() {
        return Err(Error::internal(format!(
            "{} rows encoded as {} JSON lines",
            batch.num_rows(),
            out.len()
        )));
    }
    Ok(out)
}

/// Decodes JSON objects into one batch of `schema` (fields not in it are ignored).
pub fn decode_json_objects(schema: &SchemaRef, bodies: &[Bytes]) -> Result<RecordBatch> {
    let mut decoder = datafusion::arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(bodies.len().max(1))
        .build_decoder()
        .map_err(|e| Error::query(format!("decoding records: {e}")))?;
    for (i, body) in bodies.iter().enumerate() {
        let before = decoder.len();
        let mut rest: &[u8] = body;
        while !rest.is_empty() {
            let n = decoder
                .decode(rest)
                .map_err(|e| Error::query(format!("not a JSON object of the columns: {e}")))?;
            if n == 0 {
                break;
            }
            rest = &rest[n..];
        }
        // A separator, so that a body without a trailing newline ends its object.
        decoder
            .decode(b"\n")
            .map_err(|e| Error::query(format!("not a JSON object of the columns: {e}")))?;
        // Each body is exactly one object: none, two, or half of one must not shift the
        // values of the others.
        if decoder.len() != before + 1 || decoder.has_partial_record() {
            return Err(Error::query(format!(
                "value {} of {} is not exactly one JSON object",
                i + 1,
                bodies.len()
            )));
        }
    }
    let batch = decoder
        .flush()
        .map_err(|e| Error::query(format!("not a JSON object of the columns: {e}")))?;
    let batch = batch.unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
    if batch.num_rows() != bodies.len() {
        return Err(Error::query(format!(
            "expected one JSON object per record, found {} in {} objects",
            batch.num_rows(),
            bodies.len()
        )));
    }
    Ok(batch)
}
