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
                .with_encoder_factory(Arc::new(FloatsAsText))
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
                .with_encoder_factory(Arc::new(FloatsAsText))
                .build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    out.flush().map_err(io)
}

/// JSON has no NaN or infinity: the JSON formats print them as the strings `"NaN"`, `"inf"`
/// and `"-inf"` (as the table format shows them), so they never look like NULL.
#[derive(Debug)]
struct FloatsAsText;

impl datafusion::arrow::json::writer::EncoderFactory for FloatsAsText {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a datafusion::arrow::datatypes::FieldRef,
        array: &'a dyn datafusion::arrow::array::Array,
        _options: &'a datafusion::arrow::json::writer::EncoderOptions,
    ) -> std::result::Result<
        Option<datafusion::arrow::json::writer::NullableEncoder<'a>>,
        datafusion::arrow::error::ArrowError,
    > {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
        let encoder: Box<dyn datafusion::arrow::json::writer::Encoder + 'a> =
            match array.data_type() {
                DataType::Float64 => {
                    let a = array.as_primitive::<Float64Type>();
                    Box::new(FloatText(move |i| a.value(i)))
                }
                DataType::Float32 => {
                    let a = array.as_primitive::<Float32Type>();
                    Box::new(FloatText(move |i| a.value(i)))
                }
                _ => return Ok(None),
            };
        Ok(Some(datafusion::arrow::json::writer::NullableEncoder::new(
            encoder,
            array.nulls().cloned(),
        )))
    }
}

struct FloatText<F>(F);

impl<T, F> datafusion::arrow::json::writer::Encoder for FloatText<F>
where
    T: Into<f64> + serde::Serialize,
    F: Fn(usize) -> T,
{
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let value = (self.0)(idx);
        let v: f64 = value.into();
        if v.is_finite() {
            // serde_json writes an f32 with its own shortest digits (0.1, not 0.100000001…).
            if serde_json::to_writer(&mut *out, &(self.0)(idx)).is_err() {
                out.extend_from_slice(b"null");
            }
        } else if v.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if v == f64::INFINITY {
            out.extend_from_slice(b"\"inf\"");
        } else {
            out.extend_from_slice(b"\"-inf\"");
        }
    }
}

/// Collapses an error message to one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
