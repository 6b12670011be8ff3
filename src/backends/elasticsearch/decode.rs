//! Search hits into Arrow: one builder per column, filled from each hit's `_id`, `_score`,
//! `_source` (or, for dates with a custom format, the doc-value `fields`).
//!
//! A page is decoded in one pass over the reply's bytes: `_source` is walked by a serde
//! visitor that knows the columns' paths, so a value lands in its column without a map per
//! document, strings are borrowed from the reply, and keys no column wants are skipped.
//!
//! What a document's value reads as:
//! - a field holding several values (an array) reads as its first non-null value; an empty
//!   array or `[null]` reads as NULL; the same holds when a field appears twice in a
//!   document (`"user.name"` and `"user": {"name": …}`): the first non-null value wins;
//! - `user.name` is found as `{"user": {"name": …}}`, as the literal key `"user.name"`, and
//!   through arrays of objects;
//! - a value the field's type cannot hold (what `ignore_malformed` lets in) reads as NULL —
//!   the server did not index it either;
//! - numbers in strings (`"42"`) are read as numbers, as the server coerces them; a fraction in
//!   an integer field is truncated, as the server indexes it;
//! - dates: epoch milliseconds (number or digits) or ISO 8601 text, UTC unless it says otherwise.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
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
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::BACKEND;
use super::mapping::{ID_COLUMN, SCORE_COLUMN};
use crate::error::{Error, Result};
use crate::record::{EXTENSION_NAME_KEY, JSON_EXTENSION};

/// One hit, owned (the document APIs' replies).
#[derive(Debug, Deserialize, Serialize)]
pub struct Hit {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_score", default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(rename = "_source", default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Map<String, Json>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Map<String, Json>>,
}

/// What a page said besides its hits.
#[derive(Debug, Default)]
pub struct PageInfo {
    pub pit_id: Option<String>,
    pub scroll_id: Option<String>,
    /// Hits in the page (skipped ones included).
    pub hits: usize,
    /// The last hit's `sort` values (for `search_after`).
    pub last_sort: Option<Vec<Json>>,
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

fn acc_for(spec: &ColumnSpec, capacity: usize) -> Acc {
    match &spec.data_type {
        _ if spec.json => Acc::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
        _ if spec.epoch => Acc::Int(Vec::with_capacity(capacity)),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            Acc::Int(Vec::with_capacity(capacity))
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => {
            Acc::Int(Vec::with_capacity(capacity))
        }
        DataType::Float32 | DataType::Float64 => Acc::Float(Vec::with_capacity(capacity)),
        DataType::Boolean => Acc::Bool(Vec::with_capacity(capacity)),
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
            Acc::Time(Vec::with_capacity(capacity))
        }
        DataType::Binary | DataType::LargeBinary => Acc::Binary(BinaryBuilder::new()),
        // Utf8 and everything parsed from text at the end (decimals, unsigned longs).
        _ => Acc::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
    }
}

/// One value read from a document, borrowed from the reply where it can be.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    I(i64),
    U(u64),
    F(f64),
    B(bool),
    /// An object (or, for a JSON column, any value) as JSON text.
    Json(String),
}

impl Scalar<'_> {
    fn as_i64(&self) -> Option<i64> {
        let from_f64 = |f: f64| (f.is_finite() && f.abs() < 9.2e18).then(|| f.trunc() as i64);
        match self {
            Scalar::I(i) => Some(*i),
            Scalar::U(u) => i64::try_from(*u).ok(),
            Scalar::F(f) => from_f64(*f),
            Scalar::Str(s) => {
                let s = s.trim();
                s.parse::<i64>()
                    .ok()
                    .or_else(|| s.parse::<f64>().ok().and_then(from_f64))
            }
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::I(i) => Some(*i as f64),
            Scalar::U(u) => Some(*u as f64),
            Scalar::F(f) => Some(*f),
            Scalar::Str(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Scalar::B(b) => Some(*b),
            Scalar::Str(s) if s == "true" => Some(true),
            Scalar::Str(s) if s == "false" || s.is_empty() => Some(false),
            _ => None,
        }
    }

    /// A date as nanoseconds since the epoch.
    fn as_nanos(&self) -> Option<i128> {
        match self {
            Scalar::I(ms) => Some(*ms as i128 * 1_000_000),
            Scalar::U(ms) => i64::try_from(*ms).ok().map(|ms| ms as i128 * 1_000_000),
            Scalar::Str(s) => {
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

    /// The value as text: strings as they are, numbers as JSON writes them.
    fn text(&self) -> Cow<'_, str> {
        match self {
            Scalar::Str(s) => Cow::Borrowed(s.as_ref()),
            Scalar::I(i) => Cow::Owned(i.to_string()),
            Scalar::U(u) => Cow::Owned(u.to_string()),
            Scalar::F(f) => Cow::Owned(
                serde_json::Number::from_f64(*f).map_or_else(|| f.to_string(), |n| n.to_string()),
            ),
            Scalar::B(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Scalar::Json(s) => Cow::Borrowed(s.as_str()),
        }
    }

    /// The value as JSON text (a string quoted).
    fn json_text(&self) -> Cow<'_, str> {
        match self {
            Scalar::Str(s) => Cow::Owned(Json::String(s.to_string()).to_string()),
            other => other.text(),
        }
    }
}

/// The `_source` keys that lead to columns: a key names a column, or an object holding
/// some, or both. `user.name` is reachable as the key `user.name` and as `user` → `name`.
#[derive(Debug, Default)]
struct Paths {
    entries: Vec<(String, PathNode)>,
    /// Key → position in `entries`, when there are many.
    index: Option<HashMap<String, usize>>,
}

#[derive(Debug, Default)]
struct PathNode {
    column: Option<usize>,
    children: Option<Paths>,
}

impl Paths {
    fn get(&self, key: &str) -> Option<&PathNode> {
        match &self.index {
            Some(ix) => ix.get(key).map(|&i| &self.entries[i].1),
            None => self.entries.iter().find(|(k, _)| k == key).map(|(_, n)| n),
        }
    }

    fn entry(&mut self, key: &str) -> &mut PathNode {
        let pos = match self.entries.iter().position(|(k, _)| k == key) {
            Some(p) => p,
            None => {
                self.entries.push((key.to_string(), PathNode::default()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[pos].1
    }

    /// Adds every way of splitting `name` at its dots (all of them up to 8 dots; beyond, the
    /// literal key and the fully split path).
    fn add(&mut self, name: &str, column: usize) {
        let dots: Vec<usize> = name.match_indices('.').map(|(i, _)| i).collect();
        if dots.len() > 8 {
            self.entry(name).column = Some(column);
            self.add_parts(&name.split('.').collect::<Vec<_>>(), column);
            return;
        }
        self.add_splits(name, column);
    }

    fn add_parts(&mut self, parts: &[&str], column: usize) {
        match parts {
            [] => {}
            [last] => self.entry(last).column = Some(column),
            [head, rest @ ..] => self
                .entry(head)
                .children
                .get_or_insert_with(Paths::default)
                .add_parts(rest, column),
        }
    }

    fn add_splits(&mut self, name: &str, column: usize) {
        self.entry(name).column = Some(column);
        for (i, _) in name.match_indices('.') {
            let (head, rest) = (&name[..i], &name[i + 1..]);
            self.entry(head)
                .children
                .get_or_insert_with(Paths::default)
                .add_splits(rest, column);
        }
    }

    fn seal(&mut self) {
        for (_, n) in &mut self.entries {
            if let Some(c) = n.children.as_mut() {
                c.seal();
            }
        }
        if self.entries.len() > 8 {
            self.index = Some(
                self.entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect(),
            );
        }
    }
}

/// Reads one value for a column: the first non-null value of arrays; objects (and, for a
/// JSON column, anything) as JSON text.
struct ScalarSeed {
    json: bool,
}

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Option<Scalar<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        if self.json {
            let v = Json::deserialize(d)?;
            return Ok((!v.is_null()).then(|| Scalar::Json(v.to_string())));
        }
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Option<Scalar<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Self::Value, E> {
        Ok(Some(Scalar::B(v)))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Self::Value, E> {
        Ok(Some(Scalar::I(v)))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Self::Value, E> {
        Ok(Some(match i64::try_from(v) {
            Ok(i) => Scalar::I(i),
            Err(_) => Scalar::U(v),
        }))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Self::Value, E> {
        Ok(Some(Scalar::F(v)))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Owned(v.to_string()))))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Owned(v))))
    }
    fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut found = None;
        while found.is_none() {
            match seq.next_element_seed(ScalarSeed { json: false })? {
                Some(v) => found = v,
                None => return Ok(None),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(found)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Self::Value, A::Error> {
        let v = Json::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Some(Scalar::Json(v.to_string())))
    }
}

/// Walks an object (or arrays of objects) of `_source`, filling the slots of the columns
/// found under `paths`; a slot keeps the first non-null value it gets.
struct ObjectSeed<'p, 's, 'de> {
    paths: &'p Paths,
    specs: &'p [ColumnSpec],
    slots: &'s mut [Option<Scalar<'de>>],
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let ObjectSeed {
            paths,
            specs,
            slots,
        } = self;
        while seq
            .next_element_seed(ObjectSeed {
                paths,
                specs,
                slots: &mut *slots,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let ObjectSeed {
            paths,
            specs,
            slots,
        } = self;
        while let Some(key) = map.next_key::<Text<'de>>()?.map(|t| t.0) {
            let Some(node) = paths.get(&key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            match (node.column, &node.children) {
                (Some(c), None) => {
                    if slots[c].is_none() {
                        slots[c] = map.next_value_seed(ScalarSeed {
                            json: specs[c].json,
                        })?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                (None, Some(children)) => map.next_value_seed(ObjectSeed {
                    paths: children,
                    specs,
                    slots: &mut *slots,
                })?,
                (Some(c), Some(children)) => {
                    // A column and the parent of others: read the value once, walk it twice.
                    let v: Json = map.next_value()?;
                    if slots[c].is_none() {
                        slots[c] = ScalarSeed {
                            json: specs[c].json,
                        }
                        .deserialize(v.clone())
                        .map_err(de::Error::custom)?;
                    }
                    ObjectSeed {
                        paths: children,
                        specs,
                        slots: &mut *slots,
                    }
                    .deserialize(v)
                    .map_err(de::Error::custom)?;
                }
                (None, None) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Builds record batches from hits.
pub struct Decoder {
    schema: SchemaRef,
    /// One accumulator per column of `specs`.
    accs: Vec<Acc>,
    specs: Vec<ColumnSpec>,
    paths: Paths,
    rows: usize,
}

impl Decoder {
    pub fn new(schema: SchemaRef, cols: Vec<ColumnSpec>) -> Decoder {
        let mut paths = Paths::default();
        for (i, c) in cols.iter().enumerate() {
            if matches!(c.from, From::Source) {
                paths.add(&c.name, i);
            }
        }
        paths.seal();
        let accs = cols.iter().map(|c| acc_for(c, 0)).collect();
        let specs = cols;
        Decoder {
            schema,
            accs,
            specs,
            paths,
            rows: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds one hit (of a document API's reply).
    pub fn push(&mut self, hit: &Hit) -> Result<()> {
        let page = serde_json::to_vec(&serde_json::json!({"hits": {"hits": [hit]}}))
            .map_err(|e| Error::internal(format!("cannot re-read a document: {e}")))?;
        self.push_page(&page, &mut 0, &mut None, "a document")
            .map(|_| ())
    }

    /// Decodes a search reply: its hits after the first `skip` become rows, at most `left`
    /// (both counted down).
    pub fn push_page(
        &mut self,
        page: &[u8],
        skip: &mut usize,
        left: &mut Option<usize>,
        what: &str,
    ) -> Result<PageInfo> {
        let mut de = serde_json::Deserializer::from_slice(page);
        let info = PageSeed {
            dec: self,
            skip,
            left,
        }
        .deserialize(&mut de)
        .and_then(|info| de.end().map(|_| info))
        .map_err(|e| {
            Error::internal(format!("cannot read the search reply for {what}: {e}"))
                .with_backend(BACKEND)
        })?;
        Ok(info)
    }

    /// Appends one row from a hit's parts; `slots` are the `_source` values by column.
    fn push_row(
        &mut self,
        id: &str,
        score: Option<f64>,
        slots: &[Option<Scalar<'_>>],
        fields: Option<&Map<String, Json>>,
    ) -> Result<()> {
        self.rows += 1;
        for (i, (spec, acc)) in self.specs.iter().zip(self.accs.iter_mut()).enumerate() {
            let owned: Option<Scalar<'_>>;
            let value: Option<&Scalar<'_>> = match spec.from {
                From::Id | From::RowId => {
                    owned = Some(Scalar::Str(Cow::Borrowed(id)));
                    owned.as_ref()
                }
                From::Score => {
                    owned = score.map(Scalar::F);
                    owned.as_ref()
                }
                From::Source => slots.get(i).and_then(Option::as_ref),
                From::Null => None,
                From::DocValue => {
                    owned = fields
                        .and_then(|f| f.get(&spec.name))
                        .map(|v| ScalarSeed { json: false }.deserialize(v))
                        .transpose()
                        .map_err(|e| Error::internal(e.to_string()))?
                        .flatten();
                    owned.as_ref()
                }
            };
            match acc {
                Acc::Text(b) => match value {
                    Some(v) if spec.json => b.append_value(v.json_text()),
                    Some(v) => b.append_value(v.text()),
                    None => b.append_null(),
                },
                Acc::Int(b) => b.push(value.and_then(Scalar::as_i64)),
                Acc::Float(b) => b.push(value.and_then(Scalar::as_f64)),
                Acc::Bool(b) => b.push(value.and_then(Scalar::as_bool)),
                Acc::Time(b) => {
                    let n = value.and_then(Scalar::as_nanos);
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
                Acc::Binary(b) => match value.and_then(|v| match v {
                    Scalar::Str(s) => {
                        use base64::Engine as _;
                        base64::engine::general_purpose::STANDARD
                            .decode(s.as_bytes())
                            .ok()
                    }
                    _ => None,
                }) {
                    Some(bytes) => b.append_value(bytes),
                    None => b.append_null(),
                },
            }
        }
        Ok(())
    }

    /// The rows added since the last call, as a batch.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(&mut self.rows);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.accs.len());
        for (spec, acc) in self.specs.iter().zip(self.accs.iter_mut()) {
            // The next batch is likely as large as this one.
            let fresh = acc_for(spec, rows);
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

/// A key or string borrowed from the reply when it has no escapes (serde's own `Cow`
/// always copies).
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// The top level of a search reply.
struct PageSeed<'d, 'c> {
    dec: &'d mut Decoder,
    skip: &'c mut usize,
    left: &'c mut Option<usize>,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_, '_> {
    type Value = PageInfo;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<PageInfo, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_, '_> {
    type Value = PageInfo;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a search reply")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<PageInfo, A::Error> {
        let mut info = PageInfo::default();
        let mut saw_hits = false;
        while let Some(key) = map.next_key::<Text<'de>>()?.map(|t| t.0) {
            match key.as_ref() {
                "pit_id" => info.pit_id = map.next_value()?,
                "_scroll_id" => info.scroll_id = map.next_value()?,
                "hits" => {
                    saw_hits = true;
                    map.next_value_seed(HitsSeed {
                        dec: &mut *self.dec,
                        skip: &mut *self.skip,
                        left: &mut *self.left,
                        info: &mut info,
                    })?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !saw_hits {
            return Err(de::Error::missing_field("hits"));
        }
        Ok(info)
    }
}

/// `hits`: `{"hits": [ … ], …}` and then the array itself.
struct HitsSeed<'d, 'c> {
    dec: &'d mut Decoder,
    skip: &'c mut usize,
    left: &'c mut Option<usize>,
    info: &'c mut PageInfo,
}

impl<'de> DeserializeSeed<'de> for HitsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HitsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("search hits")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<Text<'de>>()?.map(|t| t.0) {
            if key == "hits" {
                map.next_value_seed(HitsSeed {
                    dec: &mut *self.dec,
                    skip: &mut *self.skip,
                    left: &mut *self.left,
                    info: &mut *self.info,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let n = self.dec.specs.len();
        let mut slots: Vec<Option<Scalar<'de>>> = vec![None; n];
        loop {
            slots.iter_mut().for_each(|s| *s = None);
            let Some(hit) = seq.next_element_seed(HitSeed {
                paths: &self.dec.paths,
                specs: &self.dec.specs,
                slots: &mut slots,
            })?
            else {
                break;
            };
            self.info.hits += 1;
            self.info.last_sort = hit.sort;
            if *self.skip > 0 {
                *self.skip -= 1;
                continue;
            }
            if *self.left == Some(0) {
                continue;
            }
            self.dec
                .push_row(&hit.id, hit.score, &slots, hit.fields.as_ref())
                .map_err(de::Error::custom)?;
            if let Some(l) = self.left.as_mut() {
                *l -= 1;
            }
        }
        Ok(())
    }
}

/// One hit's metadata; its `_source` goes to the slots.
struct HitParts<'de> {
    id: Cow<'de, str>,
    score: Option<f64>,
    fields: Option<Map<String, Json>>,
    sort: Option<Vec<Json>>,
}

struct HitSeed<'p, 's, 'de> {
    paths: &'p Paths,
    specs: &'p [ColumnSpec],
    slots: &'s mut [Option<Scalar<'de>>],
}

impl<'de> DeserializeSeed<'de> for HitSeed<'_, '_, 'de> {
    type Value = HitParts<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HitSeed<'_, '_, 'de> {
    type Value = HitParts<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a search hit")
    }
    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut id = None;
        let mut score = None;
        let mut fields = None;
        let mut sort = None;
        while let Some(key) = map.next_key::<Text<'de>>()?.map(|t| t.0) {
            match key.as_ref() {
                "_id" => id = Some(map.next_value::<Text<'de>>()?.0),
                "_score" => score = map.next_value::<Option<f64>>()?,
                "_source" => map.next_value_seed(ObjectSeed {
                    paths: self.paths,
                    specs: self.specs,
                    slots: &mut *self.slots,
                })?,
                "fields" => fields = map.next_value()?,
                "sort" => sort = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(HitParts {
            id: id.ok_or_else(|| de::Error::missing_field("_id"))?,
            score,
            fields,
            sort,
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
            dec.push(h).unwrap();
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

    fn page_rows(
        schema: Schema,
        page: &serde_json::Value,
        skip: usize,
        left: Option<usize>,
    ) -> (Vec<String>, PageInfo) {
        let schema = Arc::new(schema);
        let specs = column_specs(&schema, &[], None);
        let mut dec = Decoder::new(schema, specs);
        let bytes = serde_json::to_vec(page).unwrap();
        let (mut skip, mut left) = (skip, left);
        let info = dec.push_page(&bytes, &mut skip, &mut left, "t").unwrap();
        let b = dec.finish().unwrap();
        let rows = crate::record::batch_to_records(&b, None).unwrap();
        (rows.iter().map(|r| r.to_json().to_string()).collect(), info)
    }

    #[test]
    fn a_page_decodes_in_one_pass_with_skip_limit_and_cursor() {
        let schema = Schema::new(vec![
            Field::new("_id", DataType::Utf8, false),
            Field::new("a", DataType::Utf8, true),
            Field::new("a.b", DataType::Int64, true),
            Field::new("big", DataType::Utf8, true),
            Field::new("f", DataType::Utf8, true),
            Field::new("x.y.z", DataType::Float64, true),
        ]);
        let page = json!({
            "pit_id": "PIT1", "took": 3, "_shards": {"total": 1},
            "hits": {"max_score": null, "hits": [
                {"_id": "skipped", "_source": {"a": "s"}, "sort": [1]},
                {"_id": "q\"id", "_source": {"a": {"b": 5}, "big": 18446744073709551615u64, "f": 1.5,
                    "x": [{"y": null}, {"y": {"z": "2.5"}}], "sort": [99]}, "sort": [2]},
                {"_id": "e", "_source": {"a": "tab\there", "a.b": null, "b": {"deep": [1, 2]}, "f": [[null], [true]],
                    "x.y": {"z": 7}}, "sort": [3]},
                {"_id": "over", "_source": {"a": "l"}, "sort": [4]}
            ]}
        });
        let (rows, info) = page_rows(schema, &page, 1, Some(2));
        assert_eq!(info.hits, 4);
        assert_eq!(info.pit_id.as_deref(), Some("PIT1"));
        assert_eq!(info.last_sort, Some(vec![json!(4)]));
        assert_eq!(rows.len(), 2, "{rows:?}");
        // `a` is an object: its JSON text; `a.b` is found inside it.
        assert!(rows[0].contains(r#""_id":"q\"id""#), "{}", rows[0]);
        assert!(rows[0].contains(r#""a":"{\"b\":5}""#), "{}", rows[0]);
        assert!(rows[0].contains(r#""a.b":5"#), "{}", rows[0]);
        assert!(
            rows[0].contains(r#""big":"18446744073709551615""#),
            "{}",
            rows[0]
        );
        assert!(rows[0].contains(r#""f":"1.5""#), "{}", rows[0]);
        assert!(rows[0].contains(r#""x.y.z":2.5"#), "{}", rows[0]);
        assert!(rows[1].contains(r#""a":"tab\there""#), "{}", rows[1]);
        assert!(rows[1].contains(r#""a.b":null"#), "{}", rows[1]);
        assert!(rows[1].contains(r#""f":"true""#), "{}", rows[1]);
        assert!(rows[1].contains(r#""x.y.z":7.0"#), "{}", rows[1]);
    }

    #[test]
    fn a_reply_without_hits_or_not_json_is_an_error() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
        let specs = column_specs(&schema, &[], None);
        let mut dec = Decoder::new(schema, specs);
        for bad in [
            &b"{\"took\": 1}"[..],
            b"<html>",
            b"{\"hits\": {\"hits\": [{\"_source\": {}}]}}",
        ] {
            let e = dec.push_page(bad, &mut 0, &mut None, "'t'").unwrap_err();
            assert!(e.to_string().contains("search reply for 't'"), "{e}");
        }
    }
}
