//! Prints results as a table, CSV (with header), JSON or NDJSON with Arrow's writers.

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::args::Format;
use crate::error::{Error, Result};

/// Writes batches in `format`. Broken pipes (`| head`) end output quietly.
pub fn print_batches(
    out: &mut dyn Write,
    schema: &Schema,
    batches: &[RecordBatch],
    format: Format,
) -> Result<()> {
    let r = write_batches(out, schema, batches, format);
    match r {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(e: &Error) -> bool {
    use std::error::Error as _;
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::BrokenPipe;
        }
        src = s.source();
    }
    e.to_string().contains("Broken pipe")
}

fn write_batches(
    out: &mut dyn Write,
    schema: &Schema,
    batches: &[RecordBatch],
    format: Format,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("writing output", e);
    match format {
        Format::Table => {
            let empty;
            let shown: &[RecordBatch] = if batches.is_empty() {
                empty = [RecordBatch::new_empty(Arc::new(schema.clone()))];
                &empty
            } else {
                batches
            };
            let table = pretty_format_batches(shown)?;
            writeln!(out, "{table}").map_err(io)?;
        }
        Format::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(Arc::new(schema.clone())))?;
            }
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .with_encoder_factory(Arc::new(crate::record::FloatsAsText))
                .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            drop(w);
            writeln!(out).map_err(io)?;
        }
        Format::Ndjson => {
            let mut w = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .with_encoder_factory(Arc::new(crate::record::FloatsAsText))
                .build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    out.flush().map_err(io)
}

/// Collapses an error message to one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
