//! Binary COPY values into Arrow columns: [`ColumnDecoder`] appends the fields of one column
//! of a sub-batch of [`Tuples`] (gathered by `decode.rs`'s reader) in one typed loop.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, ListArray, NullBufferBuilder, StringArray, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{Field, IntervalMonthDayNano};

use super::numeric::{numeric_to_f64, numeric_to_i128, numeric_to_i256};
use super::types::Kind;
use super::wire::{at32, bad, be_i16, be_i32, be_i64, date32, take, timestamp_us};

/// Where one field's bytes are in [`Tuples::buf`]; `len` is -1 for NULL.
#[derive(Debug, Clone, Copy)]
pub struct FieldRef {
    pub start: usize,
    pub len: i32,
}

/// Complete tuples of one sub-batch: their bytes back to back, their fields row by row.
#[derive(Debug)]
pub struct Tuples {
    pub buf: Vec<u8>,
    pub(super) fields: Vec<FieldRef>,
    pub(super) ncols: usize,
    pub(super) rows: usize,
}

impl Tuples {
    /// The fields of column `col`, one per row.
    pub fn column(&self, col: usize) -> impl Iterator<Item = &FieldRef> {
        self.fields
            .iter()
            .skip(col)
            .step_by(self.ncols.max(1))
            .take(self.rows)
    }
}

/// Builds one Arrow column from binary COPY values.
pub enum ColumnDecoder {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Oid(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    Dec128(Decimal128Builder, u8, i8),
    Dec256(Decimal256Builder, u8, i8),
    NumericF64(Float64Builder),
    /// Text of any kind: the bytes are collected and validated as UTF-8 once per batch.
    Str(BinaryBuilder),
    /// char(n): text with its trailing blanks removed, as PostgreSQL's cast to text does
    /// (PostgreSQL compares char(n) ignoring them).
    Padded(BinaryBuilder),
    Jsonb(BinaryBuilder),
    Uuid(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Interval(IntervalMonthDayNanoBuilder),
    List {
        field: Arc<Field>,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        child: Box<ColumnDecoder>,
        elem: Kind,
    },
}

impl ColumnDecoder {
    /// A decoder for `kind` (Unknown kinds are decoded as text: the scan casts them).
    pub fn new(kind: &Kind, capacity: usize) -> ColumnDecoder {
        match kind {
            Kind::Bool => ColumnDecoder::Bool(BooleanBuilder::with_capacity(capacity)),
            Kind::Int2 => ColumnDecoder::Int2(Int16Builder::with_capacity(capacity)),
            Kind::Int4 => ColumnDecoder::Int4(Int32Builder::with_capacity(capacity)),
            Kind::Int8 => ColumnDecoder::Int8(Int64Builder::with_capacity(capacity)),
            Kind::Oid => ColumnDecoder::Oid(Int64Builder::with_capacity(capacity)),
            Kind::Float4 => ColumnDecoder::Float4(Float32Builder::with_capacity(capacity)),
            Kind::Float8 => ColumnDecoder::Float8(Float64Builder::with_capacity(capacity)),
            Kind::Numeric(None) => {
                ColumnDecoder::NumericF64(Float64Builder::with_capacity(capacity))
            }
            Kind::Numeric(Some((p, s))) if *p <= 38 => {
                ColumnDecoder::Dec128(Decimal128Builder::with_capacity(capacity), *p, *s)
            }
            Kind::Numeric(Some((p, s))) => {
                ColumnDecoder::Dec256(Decimal256Builder::with_capacity(capacity), *p, *s)
            }
            Kind::Varchar | Kind::Text | Kind::Enum | Kind::Json | Kind::Unknown => {
                ColumnDecoder::Str(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            Kind::Bpchar => {
                ColumnDecoder::Padded(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            Kind::Jsonb => {
                ColumnDecoder::Jsonb(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            Kind::Uuid => {
                ColumnDecoder::Uuid(StringBuilder::with_capacity(capacity, capacity * 36))
            }
            Kind::Bytea => {
                ColumnDecoder::Bytea(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            Kind::Date => ColumnDecoder::Date(Date32Builder::with_capacity(capacity)),
            Kind::Time => ColumnDecoder::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            Kind::Timestamp => {
                ColumnDecoder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity), None)
            }
            Kind::Timestamptz => ColumnDecoder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity),
                Some("UTC".into()),
            ),
            Kind::Interval => {
                ColumnDecoder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            Kind::Array(e) => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                ColumnDecoder::List {
                    field: Arc::new(Field::new("item", e.arrow_type(), true)),
                    offsets,
                    nulls: NullBufferBuilder::new(capacity),
                    child: Box::new(ColumnDecoder::new(e, capacity)),
                    elem: (**e).clone(),
                }
            }
        }
    }

    /// Appends one value (None for NULL).
    pub fn append(&mut self, v: Option<&[u8]>, kind: &Kind) -> std::result::Result<(), String> {
        let Some(b) = v else {
            self.append_null();
            return Ok(());
        };
        match self {
            ColumnDecoder::Bool(x) => x.append_value(*b.first().ok_or_else(|| bad(kind, 0))? != 0),
            ColumnDecoder::Int2(x) => x.append_value(be_i16(b).ok_or_else(|| bad(kind, b.len()))?),
            ColumnDecoder::Int4(x) => x.append_value(be_i32(b).ok_or_else(|| bad(kind, b.len()))?),
            ColumnDecoder::Int8(x) => x.append_value(be_i64(b).ok_or_else(|| bad(kind, b.len()))?),
            ColumnDecoder::Oid(x) => x.append_value(i64::from(
                be_i32(b).ok_or_else(|| bad(kind, b.len()))? as u32,
            )),
            ColumnDecoder::Float4(x) => x.append_value(nan32(f32::from_bits(
                be_i32(b).ok_or_else(|| bad(kind, b.len()))? as u32,
            ))),
            ColumnDecoder::Float8(x) => x.append_value(nan64(f64::from_bits(
                be_i64(b).ok_or_else(|| bad(kind, b.len()))? as u64,
            ))),
            ColumnDecoder::Dec128(x, _, s) => x.append_value(numeric_to_i128(b, *s)?),
            ColumnDecoder::Dec256(x, _, s) => x.append_value(numeric_to_i256(b, *s)?),
            ColumnDecoder::NumericF64(x) => x.append_value(numeric_to_f64(b)?),
            ColumnDecoder::Str(x) => x.append_value(b),
            ColumnDecoder::Padded(x) => x.append_value(trim_blanks(b)),
            ColumnDecoder::Jsonb(x) => {
                let (ver, rest) = b.split_first().ok_or_else(|| bad(kind, 0))?;
                if *ver != 1 {
                    return Err(format!("unknown jsonb version {ver}"));
                }
                x.append_value(rest)
            }
            ColumnDecoder::Uuid(x) => {
                let u = uuid::Uuid::from_slice(b).map_err(|e| e.to_string())?;
                x.append_value(
                    u.hyphenated()
                        .encode_lower(&mut uuid::Uuid::encode_buffer()),
                )
            }
            ColumnDecoder::Bytea(x) => x.append_value(b),
            ColumnDecoder::Date(x) => {
                x.append_value(date32(be_i32(b).ok_or_else(|| bad(kind, b.len()))?)?)
            }
            ColumnDecoder::Time(x) => x.append_value(be_i64(b).ok_or_else(|| bad(kind, b.len()))?),
            ColumnDecoder::Timestamp(x, _) => {
                x.append_value(timestamp_us(be_i64(b).ok_or_else(|| bad(kind, b.len()))?)?)
            }
            ColumnDecoder::Interval(x) => {
                let us = be_i64(b).ok_or_else(|| bad(kind, b.len()))?;
                let days = at32(b, 8).ok_or_else(|| bad(kind, b.len()))?;
                let months = at32(b, 12).ok_or_else(|| bad(kind, b.len()))?;
                x.append_value(IntervalMonthDayNano::new(
                    months,
                    days,
                    us.checked_mul(1000).ok_or("interval out of range")?,
                ))
            }
            ColumnDecoder::List {
                offsets,
                nulls,
                child,
                elem,
                ..
            } => {
                let mut cur = b;
                let head = take(&mut cur, 12).ok_or_else(|| bad(kind, b.len()))?;
                let ndim = be_i32(head).ok_or_else(|| bad(kind, b.len()))?;
                let mut n = 0usize;
                if ndim > 1 {
                    return Err(format!(
                        "{ndim}-dimensional arrays are not supported (only one dimension)"
                    ));
                }
                if ndim == 1 {
                    let dim = take(&mut cur, 8).ok_or_else(|| bad(kind, b.len()))?;
                    n = be_i32(dim).ok_or_else(|| bad(kind, b.len()))?.max(0) as usize;
                }
                for _ in 0..n {
                    let len = be_i32(take(&mut cur, 4).ok_or_else(|| bad(kind, b.len()))?)
                        .ok_or_else(|| bad(kind, b.len()))?;
                    if len < 0 {
                        child.append(None, elem)?;
                    } else {
                        let v = take(&mut cur, len as usize).ok_or_else(|| bad(kind, b.len()))?;
                        child.append(Some(v), elem)?;
                    }
                }
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last + n as i32);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    /// Appends column `col` of every tuple in `t`: one match per column and sub-batch, then
    /// a tight loop over the rows (the per-value [`ColumnDecoder::append`] serves the rarer
    /// kinds).
    pub fn append_column(
        &mut self,
        t: &Tuples,
        col: usize,
        kind: &Kind,
    ) -> std::result::Result<(), String> {
        let buf = t.buf.as_slice();
        let fields = t.column(col);
        // The value of a field (None for NULL); the parser checked every range.
        let value = |f: &FieldRef| -> std::result::Result<Option<&[u8]>, String> {
            match usize::try_from(f.len) {
                Err(_) => Ok(None),
                Ok(n) => buf
                    .get(f.start..f.start + n)
                    .map(Some)
                    .ok_or_else(|| bad(kind, n)),
            }
        };
        macro_rules! fixed {
            ($b:expr, $n:literal, |$a:ident| $conv:expr) => {{
                for f in fields {
                    match value(f)? {
                        None => $b.append_null(),
                        Some(v) => {
                            let $a: [u8; $n] = v.try_into().map_err(|_| bad(kind, v.len()))?;
                            $b.append_value($conv);
                        }
                    }
                }
            }};
        }
        match self {
            ColumnDecoder::Bool(b) => fixed!(b, 1, |a| a[0] != 0),
            ColumnDecoder::Int2(b) => fixed!(b, 2, |a| i16::from_be_bytes(a)),
            ColumnDecoder::Int4(b) => fixed!(b, 4, |a| i32::from_be_bytes(a)),
            ColumnDecoder::Int8(b) => fixed!(b, 8, |a| i64::from_be_bytes(a)),
            ColumnDecoder::Float4(b) => fixed!(b, 4, |a| nan32(f32::from_be_bytes(a))),
            ColumnDecoder::Float8(b) => fixed!(b, 8, |a| nan64(f64::from_be_bytes(a))),
            ColumnDecoder::Time(b) => fixed!(b, 8, |a| i64::from_be_bytes(a)),
            ColumnDecoder::Date(b) => fixed!(b, 4, |a| date32(i32::from_be_bytes(a))?),
            ColumnDecoder::Timestamp(b, _) => {
                fixed!(b, 8, |a| timestamp_us(i64::from_be_bytes(a))?)
            }
            ColumnDecoder::Dec128(b, _, s) => {
                let s = *s;
                for f in fields {
                    match value(f)? {
                        None => b.append_null(),
                        Some(v) => b.append_value(numeric_to_i128(v, s)?),
                    }
                }
            }
            ColumnDecoder::Str(b) | ColumnDecoder::Bytea(b) => {
                for f in fields {
                    match value(f)? {
                        None => b.append_null(),
                        Some(v) => b.append_value(v),
                    }
                }
            }
            ColumnDecoder::Padded(b) => {
                for f in fields {
                    match value(f)? {
                        None => b.append_null(),
                        Some(v) => b.append_value(trim_blanks(v)),
                    }
                }
            }
            _ => {
                for f in fields {
                    self.append(value(f)?, kind)?;
                }
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            ColumnDecoder::Bool(x) => x.append_null(),
            ColumnDecoder::Int2(x) => x.append_null(),
            ColumnDecoder::Int4(x) => x.append_null(),
            ColumnDecoder::Int8(x) | ColumnDecoder::Oid(x) => x.append_null(),
            ColumnDecoder::Float4(x) => x.append_null(),
            ColumnDecoder::Float8(x) | ColumnDecoder::NumericF64(x) => x.append_null(),
            ColumnDecoder::Dec128(x, _, _) => x.append_null(),
            ColumnDecoder::Dec256(x, _, _) => x.append_null(),
            ColumnDecoder::Uuid(x) => x.append_null(),
            ColumnDecoder::Str(x)
            | ColumnDecoder::Padded(x)
            | ColumnDecoder::Jsonb(x)
            | ColumnDecoder::Bytea(x) => x.append_null(),
            ColumnDecoder::Date(x) => x.append_null(),
            ColumnDecoder::Time(x) => x.append_null(),
            ColumnDecoder::Timestamp(x, _) => x.append_null(),
            ColumnDecoder::Interval(x) => x.append_null(),
            ColumnDecoder::List { offsets, nulls, .. } => {
                let last = *offsets.last().unwrap_or(&0);
                offsets.push(last);
                nulls.append_null();
            }
        }
    }

    /// The finished array (the decoder is reset for the next batch).
    pub fn finish(&mut self) -> std::result::Result<ArrayRef, String> {
        Ok(match self {
            ColumnDecoder::Bool(x) => Arc::new(x.finish()),
            ColumnDecoder::Int2(x) => Arc::new(x.finish()),
            ColumnDecoder::Int4(x) => Arc::new(x.finish()),
            ColumnDecoder::Int8(x) | ColumnDecoder::Oid(x) => Arc::new(x.finish()),
            ColumnDecoder::Float4(x) => Arc::new(x.finish()),
            ColumnDecoder::Float8(x) | ColumnDecoder::NumericF64(x) => Arc::new(x.finish()),
            ColumnDecoder::Dec128(x, p, s) => Arc::new(
                x.finish()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            ),
            ColumnDecoder::Dec256(x, p, s) => Arc::new(
                x.finish()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            ),
            ColumnDecoder::Str(x) | ColumnDecoder::Padded(x) | ColumnDecoder::Jsonb(x) => Arc::new(
                StringArray::try_from_binary(x.finish())
                    .map_err(|e| format!("invalid UTF-8 text: {e}"))?,
            ),
            ColumnDecoder::Uuid(x) => Arc::new(x.finish()),
            ColumnDecoder::Bytea(x) => Arc::new(x.finish()),
            ColumnDecoder::Date(x) => Arc::new(x.finish()),
            ColumnDecoder::Time(x) => Arc::new(x.finish()),
            ColumnDecoder::Timestamp(x, tz) => Arc::new(x.finish().with_timezone_opt(tz.clone())),
            ColumnDecoder::Interval(x) => Arc::new(x.finish()),
            ColumnDecoder::List {
                field,
                offsets,
                nulls,
                child,
                ..
            } => {
                let values = child.finish()?;
                let offs = std::mem::replace(offsets, vec![0]);
                let arr = ListArray::try_new(
                    field.clone(),
                    OffsetBuffer::new(offs.into()),
                    values,
                    nulls.finish(),
                )
                .map_err(|e| e.to_string())?;
                Arc::new(arr)
            }
        })
    }
}

/// A char(n) value without its trailing blanks (PostgreSQL's `bpchar::text`).
fn trim_blanks(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &b[..end]
}

/// Every NaN as the one positive NaN. PostgreSQL holds all NaNs equal and above every number;
/// DataFusion orders floats by their bits, which puts a NaN with the sign bit set (e.g.
/// `-('NaN'::float8)`) below every number, so `x < 0` would keep it.
#[inline]
fn nan64(f: f64) -> f64 {
    if f.is_nan() { f64::NAN } else { f }
}

/// [`nan64`] for `real`.
#[inline]
fn nan32(f: f32) -> f32 {
    if f.is_nan() { f32::NAN } else { f }
}
