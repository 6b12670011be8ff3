//! Serializing a state's batches into a data file's bytes ([`encode`]): CSV/TSV with `\N`
//! for NULL and BINARY as base64, JSON (an array, one record per line) and NDJSON with
//! lossless encoders (BINARY base64, JSON columns nested, NaN/infinity as strings), Parquet
//! with the key column in the schema metadata; then gzip or zstd when asked.

use std::io::Write;
use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast_with_options;
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, FieldRef, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{
    Encoder, EncoderFactory, EncoderOptions, JsonFormat, LineDelimited, NullableEncoder,
};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::format::{Compression, Format};
use super::{KEY_METADATA, cast_opts, is_binary};
use crate::error::{Error, ErrorKind, Result};
use crate::record::FieldType;

/// `style` is how CSV/TSV spell NULL ([`CSV_NULL`] in files dataknobs made, an empty field in
/// files another program made) and whether every field is quoted.
pub(super) fn encode(
    format: Format,
    compression: Compression,
    schema: &SchemaRef,
    key: Option<&str>,
    batches: &[RecordBatch],
    style: &super::TextStyle,
) -> Result<Vec<u8>> {
    let plain = match format {
        Format::Parquet => return encode_parquet(compression, schema, key, batches),
        Format::Csv => encode_csv(b',', schema, batches, style)?,
        Format::Tsv => encode_csv(b'\t', schema, batches, style)?,
        Format::Json => encode_json::<LinesArray>(batches)?,
        Format::NdJson => encode_json::<LineDelimited>(batches)?,
    };
    compress(compression, plain).map_err(|e| Error::io("compressing", e))
}

pub(super) fn compress(c: Compression, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
    match c {
        Compression::None => Ok(data),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&data)?;
            enc.finish()
        }
        Compression::Zstd => zstd::stream::encode_all(&data[..], 0),
    }
}

pub(super) fn encode_parquet(
    compression: Compression,
    schema: &SchemaRef,
    key: Option<&str>,
    batches: &[RecordBatch],
) -> Result<Vec<u8>> {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::{Compression as Codec, GzipLevel, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let codec = match compression {
        Compression::None => Codec::SNAPPY,
        Compression::Gzip => Codec::GZIP(GzipLevel::default()),
        Compression::Zstd => Codec::ZSTD(ZstdLevel::default()),
    };
    let mut metadata = schema.metadata().clone();
    metadata.insert(KEY_METADATA.to_string(), key.unwrap_or("").to_string());
    let file_schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), metadata));
    let props = WriterProperties::builder().set_compression(codec).build();
    let perr = |e: datafusion::parquet::errors::ParquetError| {
        Error::new(ErrorKind::Io, format!("writing Parquet: {e}"))
    };
    let mut writer =
        ArrowWriter::try_new(Vec::new(), file_schema.clone(), Some(props)).map_err(perr)?;
    for b in batches {
        let b = RecordBatch::try_new_with_options(
            file_schema.clone(),
            b.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
        )?;
        writer.write(&b).map_err(perr)?;
    }
    writer.into_inner().map_err(perr)
}

/// A batch for a text format: BINARY columns as base64 text.
pub(super) fn text_batch(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| is_binary(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (f, col) in batch.schema().fields().iter().zip(batch.columns()) {
        if is_binary(f.data_type()) {
            let bin = cast_with_options(col, &DataType::Binary, &cast_opts())?;
            let bin = bin.as_binary::<i32>();
            let mut b = StringBuilder::with_capacity(bin.len(), bin.len() * 12);
            for v in bin.iter() {
                match v {
                    Some(bytes) => {
                        b.append_value(base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                    None => b.append_null(),
                }
            }
            fields.push(ArrowField::new(f.name(), DataType::Utf8, f.is_nullable()));
            columns.push(Arc::new(b.finish()) as ArrayRef);
        } else {
            fields.push(f.as_ref().clone());
            columns.push(col.clone());
        }
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// How NULL is written in CSV/TSV (PostgreSQL's text convention), so that an empty field
/// reads back as an empty string.
pub const CSV_NULL: &str = "\\N";

/// Is `s` the NULL marker `\N` or one of its escaped forms (`\\N`, `\\\N`, …)? A string
/// value of that shape is written with one more leading backslash and read back with one
/// fewer, so a stored `\N` comes back as the text `\N`, never as NULL.
fn null_lookalike(s: &str) -> bool {
    s.len() >= 2 && s.ends_with('N') && s[..s.len() - 1].bytes().all(|b| b == b'\\')
}

/// `batch` with every string value shaped like the NULL marker given one more backslash.
pub(super) fn escape_null_lookalikes(batch: &RecordBatch) -> Result<RecordBatch> {
    map_strings(batch, |v| null_lookalike(v).then(|| format!("\\{v}")))
}

/// `batch` (as read from a CSV/TSV file dataknobs wrote) with the escaping of
/// [`escape_null_lookalikes`] undone.
pub(super) fn unescape_null_lookalikes(batch: &RecordBatch) -> Result<RecordBatch> {
    map_strings(batch, |v| {
        (v.len() >= 3 && null_lookalike(v)).then(|| v[1..].to_string())
    })
}

/// `batch` with each Utf8 value for which `f` gives a replacement replaced (columns without
/// one are shared, not copied).
fn map_strings(batch: &RecordBatch, f: impl Fn(&str) -> Option<String>) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    let mut fields: Vec<ArrowField> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut changed = false;
    for (col, field) in columns.iter_mut().zip(fields.iter_mut()) {
        let utf8 = match col.data_type() {
            DataType::Utf8 => col.clone(),
            DataType::Utf8View | DataType::LargeUtf8 => {
                cast_with_options(col, &DataType::Utf8, &cast_opts())?
            }
            _ => continue,
        };
        let text = utf8.as_string::<i32>();
        if !text.iter().flatten().any(|v| f(v).is_some()) {
            continue;
        }
        let mut b = StringBuilder::with_capacity(text.len(), text.value_data().len() + 16);
        for v in text.iter() {
            match v {
                Some(v) => match f(v) {
                    Some(r) => b.append_value(r),
                    None => b.append_value(v),
                },
                None => b.append_null(),
            }
        }
        *col = Arc::new(b.finish()) as ArrayRef;
        *field = field.clone().with_data_type(DataType::Utf8);
        changed = true;
    }
    if !changed {
        return Ok(batch.clone());
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new_with_metadata(
            fields,
            batch.schema().metadata().clone(),
        )),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// The regular expression matching exactly `marker` (for CSV readers' null_regex).
pub fn null_regex(marker: &str) -> String {
    format!("^{}$", regex::escape(marker))
}

pub(super) fn encode_csv(
    delimiter: u8,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    style: &super::TextStyle,
) -> Result<Vec<u8>> {
    use datafusion::arrow::csv::{QuoteStyle, WriterBuilder};
    let null = style.null.as_deref();
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new()
            .with_header(true)
            .with_delimiter(delimiter)
            .with_null(null.unwrap_or("").to_string())
            .with_quote_style(if style.quote_all {
                QuoteStyle::Always
            } else {
                QuoteStyle::Necessary
            })
            .build(&mut buf);
        if batches.is_empty() {
            w.write(&text_batch(&RecordBatch::new_empty(schema.clone()))?)?;
        }
        for b in batches {
            let text = text_batch(b)?;
            if null == Some(CSV_NULL) {
                w.write(&escape_null_lookalikes(&text)?)?;
            } else {
                w.write(&text)?;
            }
        }
    }
    Ok(buf)
}

pub(super) fn encode_json<F: JsonFormat>(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    use datafusion::arrow::json::WriterBuilder;
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new()
            .with_explicit_nulls(true)
            .with_encoder_factory(Arc::new(JsonEncoders))
            .build::<_, F>(&mut buf);
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    Ok(buf)
}

/// A JSON array with one record per line: `[\n{…},\n{…}\n]\n` (`[]\n` when empty).
#[derive(Debug, Default)]
pub(super) struct LinesArray {
    pub(super) wrote_row: std::cell::Cell<bool>,
}

impl JsonFormat for LinesArray {
    fn start_stream<W: Write>(&self, w: &mut W) -> std::result::Result<(), ArrowError> {
        w.write_all(b"[")?;
        Ok(())
    }

    fn start_row<W: Write>(&self, w: &mut W, first: bool) -> std::result::Result<(), ArrowError> {
        w.write_all(if first { b"\n" } else { b",\n" })?;
        self.wrote_row.set(true);
        Ok(())
    }

    fn end_stream<W: Write>(&self, w: &mut W) -> std::result::Result<(), ArrowError> {
        w.write_all(if self.wrote_row.get() {
            b"\n]\n"
        } else {
            b"]\n"
        })?;
        Ok(())
    }
}

/// JSON encodings that read back losslessly: BINARY as base64, JSON columns as nested JSON,
/// FLOAT NaN/infinity as strings (what [`Value::to_json`] does).
#[derive(Debug)]
pub(super) struct JsonEncoders;

impl EncoderFactory for JsonEncoders {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> std::result::Result<Option<NullableEncoder<'a>>, ArrowError> {
        let nulls = array.nulls().cloned();
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Binary => Box::new(Base64Encoder(array.as_binary::<i32>())),
            DataType::LargeBinary => Box::new(Base64Encoder(array.as_binary::<i64>())),
            DataType::Float64 => Box::new(FloatEncoder(array.as_primitive())),
            DataType::Utf8 if FieldType::from_arrow(field) == FieldType::Json => {
                Box::new(RawJsonEncoder(array.as_string::<i32>()))
            }
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, nulls)))
    }
}

pub(super) struct Base64Encoder<'a, O: datafusion::arrow::array::OffsetSizeTrait>(
    &'a datafusion::arrow::array::GenericBinaryArray<O>,
);

impl<O: datafusion::arrow::array::OffsetSizeTrait> Encoder for Base64Encoder<'_, O> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(self.0.value(idx))
                .as_bytes(),
        );
        out.push(b'"');
    }
}

pub(super) struct FloatEncoder<'a>(&'a datafusion::arrow::array::Float64Array);

impl Encoder for FloatEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = self.0.value(idx);
        if v.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if v == f64::INFINITY {
            out.extend_from_slice(b"\"inf\"");
        } else if v == f64::NEG_INFINITY {
            out.extend_from_slice(b"\"-inf\"");
        } else if serde_json::to_writer(&mut *out, &v).is_err() {
            out.extend_from_slice(b"null");
        }
    }
}

pub(super) struct RawJsonEncoder<'a>(&'a datafusion::arrow::array::StringArray);

impl Encoder for RawJsonEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let s = self.0.value(idx);
        // Re-serialized compactly (one record per line); text that is not JSON stays a string.
        let written = match serde_json::from_str::<serde_json::Value>(s) {
            Ok(v) => serde_json::to_writer(&mut *out, &v),
            Err(_) => serde_json::to_writer(&mut *out, s),
        };
        if written.is_err() {
            out.extend_from_slice(b"null");
        }
    }
}
