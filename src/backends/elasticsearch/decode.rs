//! Search hits into Arrow: one builder per column, filled from each hit's `_id`, `_score`,
//! `_source` (or, for dates with a custom format, the doc-value `fields`).
//!
//! What a document's value reads as:
//! - a field holding several values (an array) reads as its first non-null value; an empty
//!   array or `[null]` reads as NULL;
//! - `user.name` is found as `{"user": {"name": …}}` or as the literal key `"user.name"`;
//! - a value the field's type cannot hold (what `ignore_malformed` lets in) reads as NULL —
//!   the server did not index it either;
//! - numbers in strings (`"42"`) are read as numbers, as the server coerces them; a fraction in
//!   an integer field is truncated, as the server indexes it;
//! - dates: epoch milliseconds (number or digits) or ISO 8601 text, UTC unless it says otherwise.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanArray, Date32Array, Float32Array, Float64Array, Int64Array,
    PrimitiveArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::BACKEND;
use super::mapping::{ID_COLUMN, SCORE_COLUMN};
use crate::error::{Error, Result};
use crate::record::{EXTENSION_NAME_KEY, JSON_EXTENSION};

/// One page of a search reply.
#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default)]
    pub pit_id: Option<String>,
    #[serde(default, rename = "_scroll_id")]
    pub scroll_id: Option<String>,
    pub hits: Hits,
}

#[derive(Debug, Deserialize)]
pub struct Hits {
    pub hits: Vec<Hit>,
}

#[derive(Debug, Deserialize)]
pub struct Hit {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_score", default)]
    pub score: Option<f64>,
    #[serde(rename = "_source", default)]
    pub source: Option<Map<String, Json>>,
    #[serde(default)]
    pub fields: Option<Map<String, Json>>,
    #[serde(default)]
    pub sort: Option<Vec<Json>>,
}

/// Where a column's value comes from.
#[derive(Debug, Clone)]
pub enum From {
    Id,
    Score,
    Source,
    /// The doc-value `fields` entry (dates with a custom format, read as ISO text).
    DocValue,
    /// The row id (`_id`) for DML.
    RowId,
    /// Always NULL (`_score` without a full-text condition).
    Null,
}

/// One output column.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    pub from: From,
    pub data_type: DataType,
    pub json: bool,
    /// A timestamp stored as an integer in the column's unit.
    pub epoch: bool,
}

enum Acc {
    Text(StringBuilder),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    /// Timestamps in the column's unit; dates in days.
    Time(Vec<Option<i64>>),
    Binary(BinaryBuilder),
}

/// Builds record batches from hits.
pub struct Decoder {
    schema: SchemaRef,
    cols: Vec<(ColumnSpec, Acc)>,
    rows: usize,
}

fn acc_for(spec: &ColumnSpec) -> Acc {
    match &spec.data_type {
        _ if spec.json => Acc::Text(StringBuilder::new()),
        _ if spec.epoch => Acc::Int(Vec::new()),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            Acc::Int(Vec::new())
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Acc::Int(Vec::new()),
        DataType::Float32 | DataType::Float64 => Acc::Float(Vec::new()),
        DataType::Boolean => Acc::Bool(Vec::new()),
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => Acc::Time(Vec::new()),
        DataType::Binary | DataType::LargeBinary => Acc::Binary(BinaryBuilder::new()),
        // Utf8 and everything parsed from text at the end (decimals, unsigned longs).
        _ => Acc::Text(StringBuilder::new()),
    }
}

/// The first non-null value of `v` (arrays flattened).
fn first(v: &Json) -> Option<&Json> {
    match v {
        Json::Null => None,
        Json::Array(a) => a.iter().find_map(first),
        other => Some(other),
    }
}

/// The value at a dotted path in `_source`: nested objects or a literal dotted key, through
/// arrays of objects (first non-null).
pub fn lookup<'a>(obj: &'a Map<String, Json>, path: &str) -> Option<&'a Json> {
    if let Some(v) = obj.get(path)
        && !v.is_null()
    {
        return Some(v);
    }
    for (i, _) in path.match_indices('.') {
        let (head, rest) = (&path[..i], &path[i + 1..]);
        let Some(v) = obj.get(head) else { continue };
        let found = match v {
            Json::Object(o) => lookup(o, rest),
            Json::Array(a) => a.iter().find_map(|x| match x {
                Json::Object(o) => lookup(o, rest),
                _ => None,
            }),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn as_i64(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                .map(|f| f.trunc() as i64)
        }),
        Json::String(s) => s.trim().parse::<i64>().ok().or_else(|| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                .map(|f| f.trunc() as i64)
        }),
        _ => None,
    }
}

fn as_f64(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn as_bool(v: &Json) -> Option<bool> {
    match v {
        Json::Bool(b) => Some(*b),
        Json::String(s) if s == "true" => Some(true),
        Json::String(s) if s == "false" || s.is_empty() => Some(false),
        _ => None,
    }
}

/// A date value as nanoseconds since the epoch.
fn as_nanos(v: &Json) -> Option<i128> {
    match v {
        Json::Number(n) => n.as_i64().map(|ms| ms as i128 * 1_000_000),
        Json::String(s) => {
            let s = s.trim();
            let digits = s.strip_prefix('-').unwrap_or(s);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                // `strict_date_optional_time` first: four digits are a year.
                if s.len() == 4 {
                    return crate::record::parse_datetime(&format!("{s}-01-01"))
                        .and_then(|d| d.timestamp_nanos_opt().map(i128::from));
                }
                return s.parse::<i64>().ok().map(|ms| ms as i128 * 1_000_000);
            }
            crate::record::parse_datetime(s).and_then(|d| {
                d.timestamp_nanos_opt()
                    .map(i128::from)
                    .or_else(|| Some(d.timestamp_micros() as i128 * 1000))
            })
        }
        _ => None,
    }
}

fn text_of(v: &Json, json: bool) -> String {
    match v {
        Json::String(s) if !json => s.clone(),
        other => other.to_string(),
    }
}

impl Decoder {
    pub fn new(schema: SchemaRef, cols: Vec<ColumnSpec>) -> Decoder {
        let cols = cols
            .into_iter()
            .map(|c| {
                let a = acc_for(&c);
                (c, a)
            })
            .collect();
        Decoder {
            schema,
            cols,
            rows: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds one hit.
    pub fn push(&mut self, hit: &Hit) {
        self.rows += 1;
        let empty = Map::new();
        let source = hit.source.as_ref().unwrap_or(&empty);
        for (spec, acc) in &mut self.cols {
            let raw: Option<Json>;
            let value: Option<&Json> = match spec.from {
                From::Id | From::RowId => {
                    raw = Some(Json::String(hit.id.clone()));
                    raw.as_ref()
                }
                From::Score => {
                    raw = hit.score.map(Json::from);
                    raw.as_ref()
                }
                From::Source => {
                    let v = lookup(source, &spec.name);
                    if spec.json {
                        v.filter(|v| !v.is_null())
                    } else {
                        v.and_then(first)
                    }
                }
                From::Null => None,
                From::DocValue => hit
                    .fields
                    .as_ref()
                    .and_then(|f| f.get(&spec.name))
                    .and_then(first),
            };
            match acc {
                Acc::Text(b) => match value {
                    Some(v) => b.append_value(text_of(v, spec.json)),
                    None => b.append_null(),
                },
                Acc::Int(b) => b.push(value.and_then(as_i64)),
                Acc::Float(b) => b.push(value.and_then(as_f64)),
                Acc::Bool(b) => b.push(value.and_then(as_bool)),
                Acc::Time(b) => {
                    let n = value.and_then(as_nanos);
                    let per = match &spec.data_type {
                        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000i128,
                        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Date64 => {
                            1_000_000
                        }
                        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
                        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1,
                        _ => 86_400_000_000_000,
                    };
                    b.push(n.and_then(|n| i64::try_from(n.div_euclid(per)).ok()));
                }
                Acc::Binary(b) => match value.and_then(Json::as_str).and_then(|s| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(s).ok()
                }) {
                    Some(bytes) => b.append_value(bytes),
                    None => b.append_null(),
                },
            }
        }
    }

    /// The rows added since the last call, as a batch.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(&mut self.rows);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.cols.len());
        for (spec, acc) in &mut self.cols {
            let fresh = acc_for(spec);
            let taken = std::mem::replace(acc, fresh);
            let arr: ArrayRef = match taken {
                Acc::Text(mut b) => Arc::new(b.finish()) as ArrayRef,
                Acc::Int(v) => Arc::new(Int64Array::from(v)),
                Acc::Float(v) => match spec.data_type {
                    DataType::Float32 => Arc::new(Float32Array::from_iter(
                        v.into_iter().map(|x| x.map(|f| f as f32)),
                    )),
                    _ => Arc::new(Float64Array::from(v)),
                },
                Acc::Bool(v) => Arc::new(BooleanArray::from(v)),
                Acc::Time(v) => match &spec.data_type {
                    DataType::Timestamp(unit, tz) => match unit {
                        TimeUnit::Second => Arc::new(
                            PrimitiveArray::<TimestampSecondType>::from(v)
                                .with_timezone_opt(tz.clone()),
                        ),
                        TimeUnit::Millisecond => Arc::new(
                            PrimitiveArray::<TimestampMillisecondType>::from(v)
                                .with_timezone_opt(tz.clone()),
                        ),
                        TimeUnit::Microsecond => Arc::new(
                            PrimitiveArray::<TimestampMicrosecondType>::from(v)
                                .with_timezone_opt(tz.clone()),
                        ),
                        TimeUnit::Nanosecond => Arc::new(
                            PrimitiveArray::<TimestampNanosecondType>::from(v)
                                .with_timezone_opt(tz.clone()),
                        ),
                    },
                    DataType::Date32 => Arc::new(Date32Array::from_iter(
                        v.into_iter().map(|d| d.and_then(|d| i32::try_from(d).ok())),
                    )),
                    _ => Arc::new(Int64Array::from(v)),
                },
                Acc::Binary(mut b) => Arc::new(b.finish()),
            };
            let arr = if arr.data_type() == &spec.data_type {
                arr
            } else {
                cast(&arr, &spec.data_type).map_err(|e| {
                    Error::type_error(format!(
                        "cannot read column '{}' as {}: {e}",
                        spec.name, spec.data_type
                    ))
                    .with_backend(BACKEND)
                })?
            };
            arrays.push(arr);
        }
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| {
            Error::internal(format!("cannot build a batch of search hits: {e}"))
                .with_backend(BACKEND)
        })
    }
}

/// The column specs for an output schema: `_id`, `_score` and the row id by name, dates with
/// a custom format from doc values, the rest from `_source`.
pub fn column_specs(
    schema: &SchemaRef,
    doc_value_dates: &[String],
    row_id: Option<&str>,
) -> Vec<ColumnSpec> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let name = f.name().clone();
            let from = if Some(name.as_str()) == row_id {
                From::RowId
            } else if name == ID_COLUMN {
                From::Id
            } else if name == SCORE_COLUMN {
                From::Score
            } else if doc_value_dates.contains(&name) {
                From::DocValue
            } else {
                From::Source
            };
            ColumnSpec {
                json: f.metadata().get(EXTENSION_NAME_KEY).map(String::as_str)
                    == Some(JSON_EXTENSION),
                name,
                from,
                data_type: f.data_type().clone(),
                epoch: false,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use serde_json::json;

    #[test]
    fn hits_decode_with_arrays_dotted_paths_and_coercions() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("_id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
            Field::new("user.name", DataType::Utf8, true),
            Field::new("tags", DataType::Utf8, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("ok", DataType::Boolean, true),
            Field::new("d", DataType::Decimal128(10, 2), true),
        ]));
        let specs = column_specs(&schema, &[], None);
        let mut dec = Decoder::new(schema, specs);
        let hits: Vec<Hit> = serde_json::from_value(json!([
            {"_id": "a", "_source": {"n": "42", "user": {"name": "ann"}, "tags": [null, "x", "y"], "at": "2024-01-02T03:04:05.006Z", "ok": true, "d": 12.34}},
            {"_id": "b", "_source": {"n": 7.9, "user.name": "bob", "tags": [], "at": 1700000000000i64, "ok": "false", "d": "0.5"}},
            {"_id": "c", "_source": {"n": "x", "user": [{"name": null}, {"name": "cy"}], "at": "2024-01-02"}},
        ]))
        .unwrap();
        for h in &hits {
            dec.push(h);
        }
        let b = dec.finish().unwrap();
        let rows = crate::record::batch_to_records(&b, None).unwrap();
        let show: Vec<String> = rows.iter().map(|r| r.to_json().to_string()).collect();
        assert!(
            show[0].contains("\"n\":42")
                && show[0].contains("\"tags\":\"x\"")
                && show[0].contains("ann"),
            "{}",
            show[0]
        );
        assert!(
            show[1].contains("\"n\":7")
                && show[1].contains("\"tags\":null")
                && show[1].contains("bob")
                && show[1].contains("\"ok\":false"),
            "{}",
            show[1]
        );
        assert!(
            show[2].contains("\"n\":null") && show[2].contains("cy"),
            "{}",
            show[2]
        );
        assert_eq!(b.num_rows(), 3);
    }
}
