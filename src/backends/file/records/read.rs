//! Reading a data file into a [`State`]: the raw bytes are decompressed and parsed by format
//! (CSV/TSV through Arrow's CSV reader, JSON/NDJSON as JSON objects, Parquet through the
//! Parquet reader) into Arrow batches typed by the sidecar's columns (or inferred), and
//! `build_state` makes them a chunk store keyed by the declared (or guessed) key column.
//! Errors name the file, the line or record, and the column.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder};
use datafusion::arrow::compute::cast_with_options;
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde::Deserialize;

use super::format::{Compression, Format};
use super::lock::Shared;
use super::sidecar::Sidecar;
use super::write::null_regex;
use super::{BATCH_ROWS, DEFAULT_KEY, KEY_METADATA, cast_opts, default_state, is_binary};
use crate::error::{Error, ErrorKind, Result};
use crate::record::{FieldType, Value, values_to_array};
use crate::store::chunks::State;

impl Shared {
    /// Loads the file into a new state (the default empty collection if it does not exist).
    pub(super) fn load(&self) -> Result<State> {
        let data = match self.format {
            Format::Parquet => read_parquet(&self.path)?,
            _ => self.read_text()?,
        };
        build_state(&self.path, data)
    }

    pub(super) fn read_text(&self) -> Result<Option<Loaded>> {
        let raw = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", self.path.display()), e)),
        };
        let sidecar = self.read_sidecar();
        *self.text_style.lock() = Some(match &sidecar {
            Some(s) => super::TextStyle {
                null: s.null.clone(),
                quote_all: s.quote_all,
            },
            // A file without a schema file was made by another program: keep its empty
            // fields for NULL, and its quoting, when writing it.
            None => super::TextStyle {
                null: None,
                quote_all: header_all_quoted(self.compression, &raw),
            },
        });
        decode_text(
            &self.path,
            self.format,
            self.compression,
            &raw,
            sidecar.as_ref(),
            &self.sidecar_path.display().to_string(),
        )
        .map(Some)
    }
}

/// Is every field of the header line quoted (`"id","name"`)? Then the file's writer quoted
/// every field, and rows dataknobs adds are quoted so too.
fn header_all_quoted(compression: Compression, raw: &[u8]) -> bool {
    use std::io::BufRead;
    // Only the first line is decompressed (the whole file is, once, by `decode_text`).
    let mut line = Vec::new();
    let Ok(reader) = decompressing_reader(compression, raw) else {
        return false;
    };
    if std::io::BufReader::new(reader.take(64 << 10))
        .read_until(b'\n', &mut line)
        .is_err()
    {
        return false;
    }
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return false;
    }
    // Split outside quotes on the delimiter (either one: a quoted header has no bare one).
    let mut fields = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, b) in line.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' | b'\t' if !quoted => {
                fields.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&line[start..]);
    fields
        .iter()
        .all(|f| f.len() >= 2 && f.starts_with(b"\"") && f.ends_with(b"\""))
}

/// Parses the bytes of a text data file (`raw`, as stored: compressed when `compression`
/// says so) typed by its schema sidecar when there is one. `path` names the file in errors,
/// `sidecar_shown` the sidecar.
pub(super) fn decode_text(
    path: &Path,
    format: Format,
    compression: Compression,
    raw: &[u8],
    sidecar: Option<&Sidecar>,
    sidecar_shown: &str,
) -> Result<Loaded> {
    let hint = match sidecar {
        Some(s) if !s.matches(raw) => format!(
            " (the column types come from {sidecar_shown}, which describes an earlier version of this file; if another program changed the file, delete that schema file to infer the types from the data)"
        ),
        _ => String::new(),
    };
    let data = if raw.is_empty() {
        Cow::Borrowed(raw)
    } else {
        decompress(compression, raw).map_err(|e| {
            Error::io(
                format!(
                    "{}: cannot decompress ({compression:?} expected)",
                    path.display()
                ),
                e,
            )
        })?
    };
    let data = data
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(&data);
    let columns = match sidecar {
        Some(s) => s.fields(),
        None => None,
    };
    let null_marker = sidecar.and_then(|s| s.null.as_deref());
    let ctx = TextCtx {
        path,
        known: columns.as_deref().unwrap_or(&[]),
        hint: &hint,
    };
    let (schema, batches) = match format {
        Format::Csv => read_csv(&ctx, data, b',', null_marker)?,
        Format::Tsv => read_csv(&ctx, data, b'\t', null_marker)?,
        Format::Json => read_json(&ctx, data, false)?,
        Format::NdJson => read_json(&ctx, data, true)?,
        Format::Parquet => return Err(Error::internal("parquet is not a text format")),
    };
    let key = match (sidecar, &columns) {
        (Some(s), Some(_)) => match s.columns.iter().find(|c| c.key) {
            None => KeyChoice::Declared(None),
            Some(c) if schema.index_of(&c.name).is_ok() => {
                KeyChoice::Declared(Some(c.name.clone()))
            }
            Some(_) => KeyChoice::Guess,
        },
        _ => KeyChoice::Guess,
    };
    Ok(Loaded {
        schema,
        key,
        batches,
    })
}

/// A file's content before it becomes a [`State`].
pub(super) struct Loaded {
    pub(super) schema: SchemaRef,
    pub(super) key: KeyChoice,
    pub(super) batches: Vec<RecordBatch>,
}

pub(super) enum KeyChoice {
    /// The file says which column is the key (or that there is none).
    Declared(Option<String>),
    /// It does not: use `id` when it can be a key.
    Guess,
}

pub(super) fn file_error(path: &Path, kind: ErrorKind, msg: impl fmt::Display) -> Error {
    Error::new(kind, format!("{}: {msg}", path.display()))
}

pub(super) fn build_state(path: &Path, loaded: Option<Loaded>) -> Result<State> {
    let Some(loaded) = loaded else {
        return Ok(default_state());
    };
    if loaded.schema.fields().is_empty() {
        // An empty file (no header, no rows): a new collection.
        return Ok(default_state());
    }
    let schema = loaded.schema;
    let mut key = match &loaded.key {
        KeyChoice::Declared(Some(k)) => Some(schema.index_of(k).map_err(|_| {
            file_error(
                path,
                ErrorKind::Io,
                format!("the key column '{k}' is missing"),
            )
        })?),
        KeyChoice::Declared(None) => None,
        KeyChoice::Guess => schema.index_of(DEFAULT_KEY).ok(),
    };
    let mut ids = Vec::new();
    if let Some(k) = key {
        match key_ids(path, &schema, k, &loaded.batches) {
            Ok(v) => ids = v,
            Err(e) if matches!(loaded.key, KeyChoice::Guess) => {
                tracing::warn!("file backend: {e}; the collection has no key");
                key = None;
            }
            Err(e) => return Err(e),
        }
    }
    if key.is_none() {
        let mut n = 0u64;
        ids = loaded
            .batches
            .iter()
            .map(|b| {
                (0..b.num_rows())
                    .map(|_| {
                        n += 1;
                        n.to_string()
                    })
                    .collect()
            })
            .collect();
    }
    let mut state = State::new(schema, key);
    for (batch, ids) in loaded.batches.into_iter().zip(ids) {
        state
            .insert_loaded(batch, ids)
            .map_err(|e| file_error(path, e.kind(), e.message()))?;
    }
    Ok(state)
}

/// The record ids of each batch: the key column as text, unique and non-empty.
pub(super) fn key_ids(
    path: &Path,
    schema: &SchemaRef,
    key: usize,
    batches: &[RecordBatch],
) -> Result<Vec<Vec<String>>> {
    let name = schema.field(key).name();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(batches.len());
    let mut row = 0usize;
    for b in batches {
        let text = cast_with_options(b.column(key), &DataType::Utf8, &cast_opts())?;
        let text = text.as_string::<i32>();
        let mut ids = Vec::with_capacity(text.len());
        for v in text.iter() {
            row += 1;
            let Some(id) = v else {
                return Err(file_error(
                    path,
                    ErrorKind::Io,
                    format!("row {row}: the key column '{name}' is empty"),
                ));
            };
            if let Some(first) = seen.insert(id.to_string(), row) {
                return Err(file_error(
                    path,
                    ErrorKind::Io,
                    format!("rows {first} and {row} have the same key '{id}' in column '{name}'"),
                ));
            }
            ids.push(id.to_string());
        }
        out.push(ids);
    }
    Ok(out)
}

pub(super) fn read_parquet(path: &Path) -> Result<Option<Loaded>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    parquet_loaded(path, file).map(Some)
}

/// Reads a whole Parquet file from `reader` (a file, or the bytes of an object); `path` names
/// it in errors.
pub(super) fn parquet_loaded<R>(path: &Path, reader: R) -> Result<Loaded>
where
    R: datafusion::parquet::file::reader::ChunkReader + 'static,
{
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad = |e: &dyn fmt::Display| {
        file_error(
            path,
            ErrorKind::Io,
            format!("not a readable Parquet file: {e}"),
        )
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(reader).map_err(|e| bad(&e))?;
    let file_schema = builder.schema().clone();
    let key = match file_schema.metadata().get(KEY_METADATA) {
        Some(k) if k.is_empty() => KeyChoice::Declared(None),
        Some(k) => KeyChoice::Declared(Some(k.clone())),
        None => KeyChoice::Guess,
    };
    let schema = Arc::new(Schema::new(file_schema.fields().clone()));
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| bad(&e))?;
    let mut batches = Vec::new();
    for b in reader {
        let b = b.map_err(|e| bad(&e))?;
        batches.push(RecordBatch::try_new_with_options(
            schema.clone(),
            b.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
        )?);
    }
    Ok(Loaded {
        schema,
        key,
        batches,
    })
}

/// A reader of `input`'s decompressed bytes, for reading only the start of a file.
pub(crate) fn decompressing_reader<'a, R: Read + 'a>(
    c: Compression,
    input: R,
) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::Decoder::new(input)?),
    })
}

pub(super) fn decompress(c: Compression, raw: &[u8]) -> std::io::Result<Cow<'_, [u8]>> {
    match c {
        Compression::None => Ok(Cow::Borrowed(raw)),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out)?;
            Ok(Cow::Owned(out))
        }
        Compression::Zstd => zstd::stream::decode_all(raw).map(Cow::Owned),
    }
}

/// What a text reader needs to know.
pub(super) struct TextCtx<'a> {
    pub(super) path: &'a Path,
    /// Columns whose types the sidecar gives.
    pub(super) known: &'a [ArrowField],
    /// Appended to type errors: where the types came from.
    pub(super) hint: &'a str,
}

impl TextCtx<'_> {
    pub(super) fn known(&self, name: &str) -> Option<&ArrowField> {
        self.known.iter().find(|f| f.name() == name)
    }

    pub(super) fn error(&self, kind: ErrorKind, msg: impl fmt::Display) -> Error {
        Error::new(kind, format!("{}: {msg}{}", self.path.display(), self.hint))
    }
}

/// The type the Arrow CSV reader parses a column as (the rest is converted afterwards).
pub(super) fn csv_reader_type(dt: &DataType) -> DataType {
    use DataType::*;
    match dt {
        Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float32
        | Float64 | Decimal128(..) | Decimal256(..) | Date32 | Date64 | Timestamp(..) | Utf8
        | Utf8View => dt.clone(),
        _ => Utf8,
    }
}

pub(super) fn read_csv(
    ctx: &TextCtx<'_>,
    data: &[u8],
    delimiter: u8,
    null_marker: Option<&str>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    use datafusion::arrow::csv::ReaderBuilder;
    use datafusion::arrow::csv::reader::Format as CsvFormat;
    let bad = |e: ArrowError| ctx.error(ErrorKind::Io, one_line(&e.to_string()));
    if data.iter().all(u8::is_ascii_whitespace) {
        // No header at all: the sidecar's columns, or none.
        return Ok((Arc::new(Schema::new(ctx.known.to_vec())), Vec::new()));
    }
    let mut fmt = CsvFormat::default()
        .with_header(true)
        .with_delimiter(delimiter);
    if let Some(marker) = null_marker {
        let re = regex::Regex::new(&null_regex(marker))
            .map_err(|e| ctx.error(ErrorKind::Io, format!("invalid NULL marker: {e}")))?;
        fmt = fmt.with_null_regex(re);
    }
    let (header, _) = fmt.infer_schema(Cursor::new(data), Some(0)).map_err(bad)?;
    let mut names = HashSet::new();
    for f in header.fields() {
        if !names.insert(f.name().as_str()) {
            return Err(ctx.error(
                ErrorKind::Io,
                format!("the header names column '{}' twice", f.name()),
            ));
        }
    }
    let inferred = if header
        .fields()
        .iter()
        .any(|f| ctx.known(f.name()).is_none())
    {
        Some(fmt.infer_schema(Cursor::new(data), None).map_err(bad)?.0)
    } else {
        None
    };
    let fields: Vec<ArrowField> = header
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match (ctx.known(f.name()), &inferred) {
            (Some(k), _) => k.clone(),
            (None, Some(s)) => {
                let dt = match s.field(i).data_type() {
                    DataType::Null => DataType::Utf8,
                    dt => dt.clone(),
                };
                ArrowField::new(f.name(), dt, true)
            }
            (None, None) => ArrowField::new(f.name(), DataType::Utf8, true),
        })
        .collect();
    let target = Arc::new(Schema::new(fields));
    let reading = Arc::new(Schema::new(
        target
            .fields()
            .iter()
            .map(|f| ArrowField::new(f.name(), csv_reader_type(f.data_type()), true))
            .collect::<Vec<_>>(),
    ));
    let reader = ReaderBuilder::new(reading)
        .with_format(fmt)
        .with_batch_size(BATCH_ROWS)
        .build(Cursor::new(data))
        .map_err(bad)?;
    let mut batches = Vec::new();
    let mut first_row = 0usize;
    let escaped = null_marker == Some(super::write::CSV_NULL);
    for b in reader {
        let mut b = b.map_err(bad)?;
        if escaped {
            b = super::write::unescape_null_lookalikes(&b)?;
        }
        let n = b.num_rows();
        batches.push(conform_csv_batch(ctx, &target, &b, first_row)?);
        first_row += n;
    }
    Ok((target, batches))
}

/// Converts a batch as the CSV reader parsed it to the target types: base64 for BINARY,
/// a JSON check for JSON, checked casts for the rest, NOT NULL checks.
pub(super) fn conform_csv_batch(
    ctx: &TextCtx<'_>,
    target: &SchemaRef,
    batch: &RecordBatch,
    first_row: usize,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, col) in target.fields().iter().zip(batch.columns()) {
        let name = field.name();
        let col: ArrayRef = if is_binary(field.data_type()) {
            let text = cast_with_options(col, &DataType::Utf8, &cast_opts())?;
            let text = text.as_string::<i32>();
            let mut b = BinaryBuilder::with_capacity(text.len(), text.len() * 8);
            for (r, v) in text.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .map_err(|e| {
                                ctx.error(
                                    ErrorKind::Type,
                                    format!(
                                        "data row {}: column '{name}' is BINARY but holds invalid base64: {e}",
                                        first_row + r + 1
                                    ),
                                )
                            })?;
                        b.append_value(bytes);
                    }
                }
            }
            let arr: ArrayRef = Arc::new(b.finish());
            cast_to(ctx, field, &arr)?
        } else {
            cast_to(ctx, field, col)?
        };
        if FieldType::from_arrow(field) == FieldType::Json {
            let text = cast_with_options(&col, &DataType::Utf8, &cast_opts())?;
            for (r, v) in text.as_string::<i32>().iter().enumerate() {
                if let Some(s) = v
                    && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(s)
                {
                    return Err(ctx.error(
                        ErrorKind::Type,
                        format!(
                            "data row {}: column '{name}' is JSON but holds invalid JSON: {e}",
                            first_row + r + 1
                        ),
                    ));
                }
            }
        }
        if !field.is_nullable() && col.null_count() > 0 {
            let r = (0..col.len()).find(|&i| col.is_null(i)).unwrap_or(0);
            return Err(ctx.error(
                ErrorKind::Type,
                format!(
                    "data row {}: column '{name}' is NOT NULL but empty",
                    first_row + r + 1
                ),
            ));
        }
        columns.push(col);
    }
    Ok(RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

pub(super) fn cast_to(ctx: &TextCtx<'_>, field: &ArrowField, col: &ArrayRef) -> Result<ArrayRef> {
    if col.data_type() == field.data_type() {
        return Ok(col.clone());
    }
    cast_with_options(col, field.data_type(), &cast_opts()).map_err(|e| {
        ctx.error(
            ErrorKind::Type,
            format!(
                "column '{}' cannot be read as {}: {e}",
                field.name(),
                field.data_type()
            ),
        )
    })
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One JSON object with its keys in file order; `V` = `serde::de::IgnoredAny` reads only
/// the keys.
pub(crate) struct JsonRow<V = serde_json::Value>(pub(crate) Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for JsonRow<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = JsonRow<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object (one record)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<JsonRow<V>, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, V>()? {
                    out.push(entry);
                }
                Ok(JsonRow(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// The kind of values a JSON column holds, for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JsonKind {
    Unknown,
    Bool,
    Int,
    Float,
    Str,
    Nested,
}

impl JsonKind {
    pub(super) fn of(v: &serde_json::Value) -> JsonKind {
        match v {
            serde_json::Value::Null => JsonKind::Unknown,
            serde_json::Value::Bool(_) => JsonKind::Bool,
            serde_json::Value::Number(n) if n.is_i64() => JsonKind::Int,
            serde_json::Value::Number(_) => JsonKind::Float,
            serde_json::Value::String(_) => JsonKind::Str,
            _ => JsonKind::Nested,
        }
    }

    pub(super) fn merge(self, other: JsonKind) -> JsonKind {
        use JsonKind::*;
        match (self, other) {
            (a, Unknown) => a,
            (Unknown, b) => b,
            (a, b) if a == b => a,
            (Int, Float) | (Float, Int) => Float,
            (Nested, _) | (_, Nested) => Nested,
            _ => Str,
        }
    }

    pub(super) fn field_type(self) -> FieldType {
        match self {
            JsonKind::Unknown | JsonKind::Str => FieldType::String,
            JsonKind::Bool => FieldType::Boolean,
            JsonKind::Int => FieldType::Integer,
            JsonKind::Float => FieldType::Float,
            JsonKind::Nested => FieldType::Json,
        }
    }
}

pub(super) fn read_json(
    ctx: &TextCtx<'_>,
    data: &[u8],
    ndjson: bool,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let first = data.iter().find(|b| !b.is_ascii_whitespace()).copied();
    // Rows, and where each came from (line numbers when known).
    let (rows, lines): (Vec<JsonRow>, Option<Vec<usize>>) = match first {
        None => (Vec::new(), None),
        Some(b'[') if !ndjson => {
            let rows: Vec<JsonRow> = serde_json::from_slice(data).map_err(|e| {
                ctx.error(ErrorKind::Io, format!("not a JSON array of objects: {e}"))
            })?;
            (rows, None)
        }
        Some(b'{') => {
            // NDJSON (also accepted for a .json file holding one object per line).
            let mut rows = Vec::new();
            let mut lines = Vec::new();
            let ends_with_newline = data.ends_with(b"\n");
            let parts: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
            let last_nonempty = parts.iter().rposition(|l| !l.trim_ascii().is_empty());
            for (i, line) in parts.iter().enumerate() {
                let t = line.trim_ascii();
                if t.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<JsonRow>(t) {
                    Ok(r) => {
                        rows.push(r);
                        lines.push(i + 1);
                    }
                    Err(e) if e.is_eof() && Some(i) == last_nonempty && !ends_with_newline => {
                        return Err(ctx.error(
                            ErrorKind::Io,
                            format!(
                                "line {} is cut off (the file ends inside a record; was a write interrupted?): {e}",
                                i + 1
                            ),
                        ));
                    }
                    Err(e) => {
                        return Err(ctx.error(
                            ErrorKind::Io,
                            format!("line {}: not a JSON object: {e}", i + 1),
                        ));
                    }
                }
            }
            (rows, Some(lines))
        }
        Some(_) => {
            return Err(ctx.error(
                ErrorKind::Io,
                if ndjson {
                    "line 1: expected a JSON object per line"
                } else {
                    "expected a JSON array of objects"
                },
            ));
        }
    };
    let place = |r: usize| match &lines {
        Some(l) => format!("line {}", l.get(r).copied().unwrap_or(r + 1)),
        None => format!("record {}", r + 1),
    };
    // Columns: the known ones, then new keys in order of first appearance (inferred).
    let mut fields: Vec<ArrowField> = ctx.known.to_vec();
    let mut index: HashMap<String, usize> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().clone(), i))
        .collect();
    let mut extra: Vec<(String, JsonKind)> = Vec::new();
    let mut extra_index: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        for (k, v) in &row.0 {
            if index.contains_key(k) {
                continue;
            }
            match extra_index.get(k) {
                Some(&i) => extra[i].1 = extra[i].1.merge(JsonKind::of(v)),
                None => {
                    extra_index.insert(k.clone(), extra.len());
                    extra.push((k.clone(), JsonKind::of(v)));
                }
            }
        }
    }
    for (name, kind) in extra {
        index.insert(name.clone(), fields.len());
        fields.push(kind.field_type().arrow_field(&name));
    }
    let types: Vec<FieldType> = fields.iter().map(FieldType::from_arrow).collect();
    let n = rows.len();
    let mut columns: Vec<Vec<Value>> = vec![vec![Value::Null; n]; fields.len()];
    for (r, row) in rows.into_iter().enumerate() {
        for (k, v) in row.0 {
            let Some(&c) = index.get(&k) else { continue };
            columns[c][r] = Value::from_typed_json(&v, types[c]).map_err(|e| {
                ctx.error(
                    ErrorKind::Type,
                    format!(
                        "{}: column '{k}' is {}: {}",
                        place(r),
                        types[c],
                        e.message()
                    ),
                )
            })?;
        }
    }
    let mut arrays = Vec::with_capacity(fields.len());
    for (field, values) in fields.iter().zip(&columns) {
        if !field.is_nullable()
            && let Some(r) = values.iter().position(Value::is_null)
        {
            return Err(ctx.error(
                ErrorKind::Type,
                format!(
                    "{}: column '{}' is NOT NULL but has no value",
                    place(r),
                    field.name()
                ),
            ));
        }
        arrays.push(
            values_to_array(field, values.iter()).map_err(|e| ctx.error(e.kind(), e.message()))?,
        );
    }
    let schema = Arc::new(Schema::new(fields));
    let batches = if n == 0 {
        Vec::new()
    } else {
        vec![RecordBatch::try_new_with_options(
            schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?]
    };
    Ok((schema, batches))
}
