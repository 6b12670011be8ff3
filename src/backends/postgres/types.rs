//! PostgreSQL types ↔ Arrow: the column model, the binary COPY decoder (COPY … TO STDOUT
//! (FORMAT binary) straight into Arrow builders) and the binary COPY encoder (Arrow arrays
//! straight into COPY … FROM STDIN (FORMAT binary)).
//!
//! | PostgreSQL                         | Arrow                                   |
//! |------------------------------------|-----------------------------------------|
//! | boolean                            | Boolean                                 |
//! | smallint / integer / bigint / oid  | Int16 / Int32 / Int64 / Int64           |
//! | real / double precision            | Float32 / Float64                       |
//! | numeric(p,s)                       | Decimal128(p,s) (p ≤ 38), Decimal256    |
//! | numeric (no precision)             | Float64 (filters on it are not pushed)  |
//! | varchar, char(n), name, "char"     | Utf8                                    |
//! | text                               | Utf8 (field type TEXT)                  |
//! | enum                               | Utf8                                    |
//! | json / jsonb                       | Utf8 (`arrow.json` extension)           |
//! | uuid                               | Utf8 (lower-case, hyphenated)           |
//! | bytea                              | Binary                                  |
//! | date / time                        | Date32 / Time64(µs)                     |
//! | timestamp / timestamptz            | Timestamp(µs) / Timestamp(µs, "UTC")    |
//! | interval                           | Interval(MonthDayNano)                  |
//! | T[] (one dimension)                | List(T)                                 |
//! | anything else                      | an error naming the column, or text     |
//! |                                    | with `?unknown_types=text`              |

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array,
    Date32Builder, Decimal128Array, Decimal128Builder, Decimal256Builder, Float32Array,
    Float32Builder, Float64Array, Float64Builder, Int16Array, Int16Builder, Int32Array,
    Int32Builder, Int64Array, Int64Builder, IntervalMonthDayNanoBuilder, ListArray,
    NullBufferBuilder, StringArray, StringBuilder, StringViewArray, Time64MicrosecondBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DataType, Field, IntervalMonthDayNano, IntervalUnit, TimeUnit, i256,
};
use datafusion::arrow::util::display::FormatOptions;

use super::decode::{FieldRef, Tuples};
use crate::error::{Error, Result};
use crate::record::{EXTENSION_NAME_KEY, JSON_EXTENSION, TYPE_METADATA_KEY};

/// Field metadata key holding the PostgreSQL type of a column.
pub const PG_TYPE_KEY: &str = "dataknobs.pg_type";

/// Microseconds (and days) between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
pub(super) const EPOCH_US: i64 = 946_684_800_000_000;
const EPOCH_DAYS: i32 = 10_957;

/// The kinds of PostgreSQL type dataknobs maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    /// numeric(p, s); None for unconstrained numeric.
    Numeric(Option<(u8, i8)>),
    /// varchar, name, "char" (no blank padding, compared like Arrow strings).
    Varchar,
    Text,
    /// char(n): blank-padded, compared ignoring trailing blanks (not pushed).
    Bpchar,
    Enum,
    Json,
    Jsonb,
    Uuid,
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    Array(Box<Kind>),
    /// A type without a mapping (read as text when the user allows it).
    Unknown,
}

impl Kind {
    /// The kind for a type oid (element kinds and enums are resolved by the caller).
    pub fn from_oid(oid: u32, typmod: i32) -> Kind {
        match oid {
            16 => Kind::Bool,
            17 => Kind::Bytea,
            18 | 19 | 1043 => Kind::Varchar,
            20 => Kind::Int8,
            21 => Kind::Int2,
            23 => Kind::Int4,
            25 => Kind::Text,
            26 => Kind::Oid,
            114 => Kind::Json,
            700 => Kind::Float4,
            701 => Kind::Float8,
            1042 => Kind::Bpchar,
            1082 => Kind::Date,
            1083 => Kind::Time,
            1114 => Kind::Timestamp,
            1184 => Kind::Timestamptz,
            1186 => Kind::Interval,
            1700 => {
                if typmod >= 4 {
                    let p = ((typmod - 4) >> 16) & 0xffff;
                    let s = (typmod - 4) & 0x7ff;
                    // Negative scales (PostgreSQL 15) are stored in 11 bits.
                    let s = if s > 1000 { s - 2048 } else { s };
                    match (u8::try_from(p), i8::try_from(s)) {
                        (Ok(p), Ok(s)) if (1..=76).contains(&p) && s >= 0 => {
                            Kind::Numeric(Some((p, s)))
                        }
                        _ => Kind::Numeric(None),
                    }
                } else {
                    Kind::Numeric(None)
                }
            }
            2950 => Kind::Uuid,
            3802 => Kind::Jsonb,
            _ => Kind::Unknown,
        }
    }

    /// The Arrow type values of this kind are read as.
    pub fn arrow_type(&self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int2 => DataType::Int16,
            Kind::Int4 => DataType::Int32,
            Kind::Int8 | Kind::Oid => DataType::Int64,
            Kind::Float4 => DataType::Float32,
            Kind::Float8 | Kind::Numeric(None) => DataType::Float64,
            Kind::Numeric(Some((p, s))) if *p <= 38 => DataType::Decimal128(*p, *s),
            Kind::Numeric(Some((p, s))) => DataType::Decimal256(*p, *s),
            Kind::Varchar
            | Kind::Text
            | Kind::Bpchar
            | Kind::Enum
            | Kind::Json
            | Kind::Jsonb
            | Kind::Uuid
            | Kind::Unknown => DataType::Utf8,
            Kind::Bytea => DataType::Binary,
            Kind::Date => DataType::Date32,
            Kind::Time => DataType::Time64(TimeUnit::Microsecond),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            Kind::Array(e) => DataType::List(Arc::new(Field::new("item", e.arrow_type(), true))),
        }
    }

    /// Is this kind (or its element) unmapped?
    pub fn is_unknown(&self) -> bool {
        match self {
            Kind::Unknown => true,
            Kind::Array(e) => e.is_unknown(),
            _ => false,
        }
    }
}

/// One column of a PostgreSQL table.
#[derive(Debug, Clone)]
pub struct PgColumn {
    pub name: String,
    pub kind: Kind,
    /// `format_type` of the column, e.g. `numeric(15,2)`.
    pub type_name: String,
    pub not_null: bool,
}

impl PgColumn {
    /// The Arrow field for this column.
    pub fn arrow_field(&self) -> Field {
        let mut meta = std::collections::HashMap::new();
        meta.insert(PG_TYPE_KEY.to_string(), self.type_name.clone());
        match self.kind {
            Kind::Text => {
                meta.insert(TYPE_METADATA_KEY.to_string(), "TEXT".to_string());
            }
            Kind::Json | Kind::Jsonb => {
                meta.insert(EXTENSION_NAME_KEY.to_string(), JSON_EXTENSION.to_string());
            }
            _ => {}
        }
        Field::new(&self.name, self.kind.arrow_type(), !self.not_null).with_metadata(meta)
    }
}

/// The PostgreSQL column type for an Arrow field (CREATE TABLE, CTAS, record collections).
pub fn pg_type_for(field: &Field) -> Result<String> {
    let meta = field.metadata();
    if let Some(t) = meta.get(PG_TYPE_KEY) {
        return Ok(t.clone());
    }
    if meta.get(EXTENSION_NAME_KEY).map(String::as_str) == Some(JSON_EXTENSION) {
        return Ok("json".into());
    }
    if meta.get(TYPE_METADATA_KEY).map(String::as_str) == Some("TEXT") {
        return Ok("text".into());
    }
    pg_type_for_arrow(field.name(), field.data_type())
}

fn pg_type_for_arrow(name: &str, t: &DataType) -> Result<String> {
    Ok(match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "numeric(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            if *s < 0 {
                format!("numeric({},0)", i16::from(*p) - i16::from(*s))
            } else {
                format!("numeric({p},{s})")
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            let inner = pg_type_for(f)?;
            if inner.ends_with("[]") {
                return Err(Error::type_error(format!(
                    "column '{name}': nested lists have no PostgreSQL column type"
                )));
            }
            format!("{inner}[]")
        }
        DataType::Dictionary(_, v) => pg_type_for_arrow(name, v)?,
        DataType::Null => "text".into(),
        other => {
            return Err(Error::type_error(format!(
                "column '{name}': Arrow type {other} has no PostgreSQL column type; cast it in the SELECT"
            )));
        }
    })
}

// ------------------------------------------------------------------------------ decoding

/// Reads the next `n` bytes.
#[inline]
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Some(head)
}

#[inline]
fn at16(b: &[u8], off: usize) -> Option<i16> {
    be_i16(b.get(off..)?)
}
#[inline]
fn at32(b: &[u8], off: usize) -> Option<i32> {
    be_i32(b.get(off..)?)
}

#[inline]
fn be_i16(b: &[u8]) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(..2)?.try_into().ok()?))
}
#[inline]
fn be_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}
#[inline]
fn be_i64(b: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// A PostgreSQL date (days since 2000-01-01) as Arrow's Date32; infinities have no value.
#[inline]
fn date32(d: i32) -> std::result::Result<i32, String> {
    if d == i32::MAX || d == i32::MIN {
        return Err("date 'infinity' has no Arrow value".into());
    }
    d.checked_add(EPOCH_DAYS)
        .ok_or_else(|| "date out of range".into())
}

/// A PostgreSQL timestamp (µs since 2000-01-01) as Arrow's µs since 1970; infinities have no
/// value.
#[inline]
fn timestamp_us(t: i64) -> std::result::Result<i64, String> {
    if t == i64::MAX || t == i64::MIN {
        return Err("timestamp 'infinity' has no Arrow value".into());
    }
    t.checked_add(EPOCH_US)
        .ok_or_else(|| "timestamp out of range".into())
}

fn bad(kind: &Kind, len: usize) -> String {
    format!("malformed binary value of type {kind:?} ({len} bytes)")
}

/// The header of a binary numeric headed for a decimal column: digit count, weight and sign
/// (NaN and infinities are errors; the digits are checked to be present).
fn decimal_header(b: &[u8]) -> std::result::Result<(usize, i32, bool), String> {
    let ndigits = be_i16(b).ok_or("short numeric")? as usize;
    let weight = i32::from(at16(b, 2).ok_or("short numeric")?);
    let sign = at16(b, 4).ok_or("short numeric")? as u16;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("NaN cannot be stored in a decimal column".into()),
        _ => return Err("Infinity cannot be stored in a decimal column".into()),
    }
    if b.len() < 8 + 2 * ndigits {
        return Err("short numeric".into());
    }
    Ok((ndigits, weight, sign == 0x4000))
}

/// Decodes PostgreSQL's binary numeric into an unscaled integer at `scale`.
#[inline]
fn numeric_to_i128(b: &[u8], scale: i8) -> std::result::Result<i128, String> {
    match numeric_to_i64_fast(b, scale) {
        Some(v) => Ok(i128::from(v)),
        None => numeric_to_i128_exact(b, scale),
    }
}

/// The common case of [`numeric_to_i128`]: at most five base-10000 digit groups whose value
/// fits an i64 at the column's scale, in 64-bit arithmetic with constant divisors. None sends
/// everything else, errors included, to [`numeric_to_i128_exact`].
#[inline]
fn numeric_to_i64_fast(b: &[u8], scale: i8) -> Option<i64> {
    let h = b.get(..8)?;
    let ndigits = usize::try_from(i16::from_be_bytes([h[0], h[1]])).ok()?;
    let digits = b.get(8..8 + 2 * ndigits)?;
    if ndigits > 5 {
        return None;
    }
    let weight = i32::from(i16::from_be_bytes([h[2], h[3]]));
    let negative = match u16::from_be_bytes([h[4], h[5]]) {
        0x0000 => false,
        0x4000 => true,
        _ => return None,
    };
    let scale = i32::from(scale);
    let mut acc: i64 = 0;
    for (i, d) in digits.chunks_exact(2).enumerate() {
        let d = i64::from(i16::from_be_bytes([d[0], d[1]]));
        let e = 4 * (weight - i as i32) + scale;
        let v = match e {
            // 10^e ≤ 10^18 fits an i64, so the cast is exact.
            0..=18 => d.checked_mul(*POW10_I128.get(e as usize)? as i64)?,
            _ if d == 0 => 0,
            -1 if d % 10 == 0 => d / 10,
            -2 if d % 100 == 0 => d / 100,
            -3 if d % 1000 == 0 => d / 1000,
            _ => return None,
        };
        acc = acc.checked_add(v)?;
    }
    if negative {
        acc.checked_neg()
    } else {
        Some(acc)
    }
}

/// [`numeric_to_i128`] for any value: 128-bit arithmetic, and the errors.
fn numeric_to_i128_exact(b: &[u8], scale: i8) -> std::result::Result<i128, String> {
    let (ndigits, weight, negative) = decimal_header(b)?;
    // Each base-10000 digit group is worth 10^e at the column's scale; no division, and
    // 64-bit arithmetic until a value needs more (numeric(p ≤ 18, s) always fits).
    let scale = i32::from(scale);
    let mut small: i64 = 0;
    let mut wide: Option<i128> = None;
    for i in 0..ndigits {
        let d = at16(b, 8 + 2 * i).ok_or("short numeric")?;
        if d == 0 {
            continue;
        }
        let e = 4 * (weight - i as i32) + scale;
        let v: i128 = if e >= 0 {
            let p = POW10_I128
                .get(e as usize)
                .ok_or("numeric value overflows the decimal type")?;
            i128::from(d)
                .checked_mul(*p)
                .ok_or("numeric value overflows the decimal type")?
        } else {
            // Only the last group may hold digits below the scale, and they must be zeros.
            let p = match -e {
                1 => 10,
                2 => 100,
                3 => 1000,
                _ => return Err("numeric value has more digits than the column's scale".into()),
            };
            if d % p != 0 {
                return Err("numeric value has more digits than the column's scale".into());
            }
            i128::from(d / p)
        };
        match wide {
            None => match i64::try_from(v).ok().and_then(|v| small.checked_add(v)) {
                Some(s) => small = s,
                None => wide = Some(i128::from(small) + v),
            },
            Some(w) => {
                wide = Some(
                    w.checked_add(v)
                        .ok_or("numeric value overflows the decimal type")?,
                )
            }
        }
    }
    let acc = wide.unwrap_or(i128::from(small));
    Ok(if negative { -acc } else { acc })
}

/// 10^i for i in 0..=38 (the largest power of ten in an i128).
const POW10_I128: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Decodes PostgreSQL's binary numeric into a 256-bit unscaled integer at `scale`
/// (numeric(p > 38, s)).
fn numeric_to_i256(b: &[u8], scale: i8) -> std::result::Result<i256, String> {
    let (ndigits, weight, negative) = decimal_header(b)?;
    if ndigits == 0 {
        return Ok(i256::ZERO);
    }
    let overflow = || "numeric value overflows the decimal type".to_string();
    let ten_k = i256::from_i128(10_000);
    let mut acc = i256::ZERO;
    for i in 0..ndigits {
        let d = i256::from_i128(i128::from(at16(b, 8 + 2 * i).ok_or("short numeric")?));
        acc = acc
            .checked_mul(ten_k)
            .and_then(|a| a.checked_add(d))
            .ok_or_else(overflow)?;
    }
    let exp10 = 4 * (weight - ndigits as i32 + 1) + i32::from(scale);
    let ten = i256::from_i128(10);
    if exp10 >= 0 {
        for _ in 0..exp10 {
            acc = acc.checked_mul(ten).ok_or_else(overflow)?;
        }
    } else {
        for _ in 0..(-exp10) {
            if acc.checked_rem(ten) != Some(i256::ZERO) {
                return Err("numeric value has more digits than the column's scale".into());
            }
            acc = acc.checked_div(ten).ok_or_else(overflow)?;
        }
    }
    Ok(if negative {
        acc.checked_neg().ok_or_else(overflow)?
    } else {
        acc
    })
}

/// Writes an unscaled 256-bit decimal as PostgreSQL binary numeric.
fn write_numeric_i256(v: i256, scale: i8, out: &mut BytesMut) -> std::result::Result<(), String> {
    if let Some(small) = v.to_i128() {
        return write_numeric_i128(small, scale, out);
    }
    // Through the exact decimal text (rare: more than 38 digits).
    let neg = v < i256::ZERO;
    let mut digits = v.to_string();
    if neg {
        digits.remove(0);
    }
    let scale = scale.max(0) as usize;
    while digits.len() <= scale {
        digits.insert(0, '0');
    }
    let (int, frac) = digits.split_at(digits.len() - scale);
    // Base-10000 groups, aligned on the decimal point.
    let pad = (4 - scale % 4) % 4;
    let frac = format!("{frac}{}", "0".repeat(pad));
    let lead = (4 - int.len() % 4) % 4;
    let int = format!("{}{int}", "0".repeat(lead));
    let mut groups: Vec<i16> = Vec::new();
    for chunk in int.as_bytes().chunks(4).chain(frac.as_bytes().chunks(4)) {
        let g = std::str::from_utf8(chunk).map_err(|e| e.to_string())?;
        groups.push(g.parse::<i16>().map_err(|e| e.to_string())?);
    }
    let int_groups = int.len() / 4;
    let mut first = 0;
    while first < groups.len() && groups[first] == 0 {
        first += 1;
    }
    let mut last = groups.len();
    while last > first && groups[last - 1] == 0 {
        last -= 1;
    }
    let digits = &groups[first..last];
    let weight = if digits.is_empty() {
        0
    } else {
        int_groups as i32 - 1 - first as i32
    };
    out.put_i32(8 + 2 * digits.len() as i32);
    out.put_i16(digits.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(if neg && !digits.is_empty() { 0x4000 } else { 0 });
    out.put_i16(scale as i16);
    for d in digits {
        out.put_i16(*d);
    }
    Ok(())
}

/// Decodes a binary numeric into f64 (for unconstrained numeric).
fn numeric_to_f64(b: &[u8]) -> std::result::Result<f64, String> {
    let ndigits = be_i16(b).ok_or("short numeric")? as usize;
    let weight = i32::from(at16(b, 2).ok_or("short numeric")?);
    let sign = at16(b, 4).ok_or("short numeric")? as u16;
    match sign {
        0xC000 => return Ok(f64::NAN),
        0xD000 => return Ok(f64::INFINITY),
        0xF000 => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    // Exact decimal text, then one correctly rounded parse.
    let mut s = String::with_capacity(8 + 4 * ndigits);
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str("0.");
    for i in 0..ndigits {
        let d = at16(b, 8 + 2 * i).ok_or("short numeric")?;
        s.push_str(&format!("{d:04}"));
    }
    if ndigits == 0 {
        s.push('0');
    }
    s.push_str(&format!("e{}", 4 * (weight + 1)));
    s.parse::<f64>().map_err(|e| e.to_string())
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
            Kind::Varchar | Kind::Text | Kind::Bpchar | Kind::Enum | Kind::Json | Kind::Unknown => {
                ColumnDecoder::Str(BinaryBuilder::with_capacity(capacity, capacity * 16))
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
            ColumnDecoder::Float4(x) => x.append_value(f32::from_bits(
                be_i32(b).ok_or_else(|| bad(kind, b.len()))? as u32,
            )),
            ColumnDecoder::Float8(x) => x.append_value(f64::from_bits(
                be_i64(b).ok_or_else(|| bad(kind, b.len()))? as u64,
            )),
            ColumnDecoder::Dec128(x, _, s) => x.append_value(numeric_to_i128(b, *s)?),
            ColumnDecoder::Dec256(x, _, s) => x.append_value(numeric_to_i256(b, *s)?),
            ColumnDecoder::NumericF64(x) => x.append_value(numeric_to_f64(b)?),
            ColumnDecoder::Str(x) => x.append_value(b),
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
            ColumnDecoder::Float4(b) => fixed!(b, 4, |a| f32::from_be_bytes(a)),
            ColumnDecoder::Float8(b) => fixed!(b, 8, |a| f64::from_be_bytes(a)),
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
            ColumnDecoder::Str(x) | ColumnDecoder::Jsonb(x) | ColumnDecoder::Bytea(x) => {
                x.append_null()
            }
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
            ColumnDecoder::Str(x) | ColumnDecoder::Jsonb(x) => Arc::new(
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

// ------------------------------------------------------------------------------ encoding

/// Encodes one Arrow column into binary COPY values for a PostgreSQL column.
pub struct ColumnEncoder {
    array: ArrayRef,
    kind: Kind,
    /// The array downcast once per batch for the common types (None: the generic path).
    fast: Fast,
}

/// Typed arrays of the common column types, so encoding a value is a direct read.
enum Fast {
    Bool(BooleanArray),
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    F32(Float32Array),
    F64(Float64Array),
    Dec128(Decimal128Array, i8),
    Utf8(StringArray),
    Utf8View(StringViewArray),
    Date(Date32Array),
    Timestamp(TimestampMicrosecondArray),
    None,
}

impl Fast {
    fn of(a: &ArrayRef, kind: &Kind) -> Fast {
        use datafusion::arrow::datatypes as t;
        match (kind, a.data_type()) {
            (Kind::Bool, DataType::Boolean) => Fast::Bool(a.as_boolean().clone()),
            (Kind::Int2, DataType::Int16) => Fast::I16(a.as_primitive::<t::Int16Type>().clone()),
            (Kind::Int4, DataType::Int32) => Fast::I32(a.as_primitive::<t::Int32Type>().clone()),
            (Kind::Int8, DataType::Int64) => Fast::I64(a.as_primitive::<t::Int64Type>().clone()),
            (Kind::Float4, DataType::Float32) => {
                Fast::F32(a.as_primitive::<t::Float32Type>().clone())
            }
            (Kind::Float8, DataType::Float64) => {
                Fast::F64(a.as_primitive::<t::Float64Type>().clone())
            }
            (Kind::Numeric(Some((p, s))), DataType::Decimal128(..)) if *p <= 38 => {
                Fast::Dec128(a.as_primitive::<t::Decimal128Type>().clone(), *s)
            }
            (
                Kind::Varchar | Kind::Text | Kind::Bpchar | Kind::Enum | Kind::Json,
                DataType::Utf8,
            ) => Fast::Utf8(a.as_string::<i32>().clone()),
            (
                Kind::Varchar | Kind::Text | Kind::Bpchar | Kind::Enum | Kind::Json,
                DataType::Utf8View,
            ) => Fast::Utf8View(a.as_string_view().clone()),
            (Kind::Date, DataType::Date32) => Fast::Date(a.as_primitive::<t::Date32Type>().clone()),
            (
                Kind::Timestamp | Kind::Timestamptz,
                DataType::Timestamp(TimeUnit::Microsecond, _),
            ) => Fast::Timestamp(a.as_primitive::<t::TimestampMicrosecondType>().clone()),
            _ => Fast::None,
        }
    }
}

/// Casts `array` to the Arrow type a column of `kind` is read as (checked: an out-of-range
/// value is an error, never a silent wrap).
fn canonical(array: &ArrayRef, kind: &Kind, column: &str) -> Result<ArrayRef> {
    let target = kind.arrow_type();
    let is_string = matches!(
        array.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if array.data_type() == &target || (is_string && target == DataType::Utf8) {
        return Ok(array.clone());
    }
    let opts = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    cast_with_options(array, &target, &opts).map_err(|e| {
        Error::type_error(format!(
            "column '{column}': cannot convert {} to the PostgreSQL column's type: {e}",
            array.data_type()
        ))
    })
}

impl ColumnEncoder {
    pub fn new(array: &ArrayRef, kind: &Kind, column: &str) -> Result<ColumnEncoder> {
        if kind.is_unknown() {
            return Err(Error::type_error(format!(
                "column '{column}' has a PostgreSQL type dataknobs cannot write; insert into it with SQL in PostgreSQL"
            )));
        }
        if let Kind::Array(e) = kind
            && matches!(**e, Kind::Array(_))
        {
            return Err(Error::type_error(format!(
                "column '{column}': nested arrays are not supported"
            )));
        }
        let array = canonical(array, kind, column)?;
        Ok(ColumnEncoder {
            fast: Fast::of(&array, kind),
            array,
            kind: kind.clone(),
        })
    }

    /// Writes the value at `row` (length prefix and bytes, or -1 for NULL).
    #[inline]
    pub fn encode(&self, row: usize, out: &mut BytesMut) -> std::result::Result<(), String> {
        macro_rules! fixed {
            ($a:expr, $len:expr, $put:ident, $v:expr) => {{
                if $a.is_null(row) {
                    out.put_i32(-1);
                } else {
                    out.put_i32($len);
                    out.$put($v);
                }
            }};
        }
        match &self.fast {
            Fast::Bool(a) => fixed!(a, 1, put_u8, u8::from(a.value(row))),
            Fast::I16(a) => fixed!(a, 2, put_i16, a.value(row)),
            Fast::I32(a) => fixed!(a, 4, put_i32, a.value(row)),
            Fast::I64(a) => fixed!(a, 8, put_i64, a.value(row)),
            Fast::F32(a) => fixed!(a, 4, put_f32, a.value(row)),
            Fast::F64(a) => fixed!(a, 8, put_f64, a.value(row)),
            Fast::Date(a) => fixed!(
                a,
                4,
                put_i32,
                a.value(row)
                    .checked_sub(EPOCH_DAYS)
                    .ok_or("date out of range")?
            ),
            Fast::Dec128(a, scale) => {
                if a.is_null(row) {
                    out.put_i32(-1);
                } else {
                    write_numeric_i128(a.value(row), *scale, out)?;
                }
            }
            Fast::Timestamp(a) => {
                if a.is_null(row) {
                    out.put_i32(-1);
                } else {
                    let v = a.value(row);
                    out.put_i32(8);
                    out.put_i64(v.checked_sub(EPOCH_US).ok_or("timestamp out of range")?);
                }
            }
            Fast::Utf8(a) => put_text(out, a.is_valid(row).then(|| a.value(row))),
            Fast::Utf8View(a) => put_text(out, a.is_valid(row).then(|| a.value(row))),
            Fast::None => encode_value(self.array.as_ref(), &self.kind, row, out)?,
        }
        Ok(())
    }
}

/// Writes a text value (length prefix and bytes) or -1 for NULL.
#[inline]
fn put_text(out: &mut BytesMut, v: Option<&str>) {
    match v {
        Some(v) => {
            out.put_i32(v.len() as i32);
            out.put_slice(v.as_bytes());
        }
        None => out.put_i32(-1),
    }
}

fn encode_value(
    a: &dyn Array,
    kind: &Kind,
    row: usize,
    out: &mut BytesMut,
) -> std::result::Result<(), String> {
    use datafusion::arrow::datatypes as t;
    if a.is_null(row) {
        out.put_i32(-1);
        return Ok(());
    }
    match kind {
        Kind::Bool => {
            out.put_i32(1);
            out.put_u8(u8::from(a.as_boolean().value(row)));
        }
        Kind::Int2 => {
            out.put_i32(2);
            out.put_i16(a.as_primitive::<t::Int16Type>().value(row));
        }
        Kind::Int4 => {
            out.put_i32(4);
            out.put_i32(a.as_primitive::<t::Int32Type>().value(row));
        }
        Kind::Int8 => {
            out.put_i32(8);
            out.put_i64(a.as_primitive::<t::Int64Type>().value(row));
        }
        Kind::Oid => {
            let v = a.as_primitive::<t::Int64Type>().value(row);
            let v = u32::try_from(v).map_err(|_| format!("{v} is not a valid oid"))?;
            out.put_i32(4);
            out.put_u32(v);
        }
        Kind::Float4 => {
            out.put_i32(4);
            out.put_f32(a.as_primitive::<t::Float32Type>().value(row));
        }
        Kind::Float8 => {
            out.put_i32(8);
            out.put_f64(a.as_primitive::<t::Float64Type>().value(row));
        }
        Kind::Numeric(None) => {
            let v = a.as_primitive::<t::Float64Type>().value(row);
            write_numeric_f64(v, out)?;
        }
        Kind::Numeric(Some((p, s))) if *p <= 38 => {
            let v = a.as_primitive::<t::Decimal128Type>().value(row);
            write_numeric_i128(v, *s, out)?;
        }
        Kind::Numeric(Some((_, s))) => {
            let v = a.as_primitive::<t::Decimal256Type>().value(row);
            write_numeric_i256(v, *s, out)?;
        }
        Kind::Varchar | Kind::Text | Kind::Bpchar | Kind::Enum | Kind::Json => {
            let s = string_at(a, row)?;
            out.put_i32(s.len() as i32);
            out.put_slice(s.as_bytes());
        }
        Kind::Jsonb => {
            let s = string_at(a, row)?;
            out.put_i32(s.len() as i32 + 1);
            out.put_u8(1);
            out.put_slice(s.as_bytes());
        }
        Kind::Uuid => {
            let s = string_at(a, row)?;
            let u = uuid::Uuid::parse_str(s).map_err(|e| format!("'{s}' is not a UUID: {e}"))?;
            out.put_i32(16);
            out.put_slice(u.as_bytes());
        }
        Kind::Bytea => {
            let b = a.as_binary::<i32>().value(row);
            out.put_i32(b.len() as i32);
            out.put_slice(b);
        }
        Kind::Date => {
            let d = a.as_primitive::<t::Date32Type>().value(row);
            out.put_i32(4);
            out.put_i32(d.checked_sub(EPOCH_DAYS).ok_or("date out of range")?);
        }
        Kind::Time => {
            out.put_i32(8);
            out.put_i64(a.as_primitive::<t::Time64MicrosecondType>().value(row));
        }
        Kind::Timestamp | Kind::Timestamptz => {
            let v = a.as_primitive::<t::TimestampMicrosecondType>().value(row);
            out.put_i32(8);
            out.put_i64(v.checked_sub(EPOCH_US).ok_or("timestamp out of range")?);
        }
        Kind::Interval => {
            let v = a.as_primitive::<t::IntervalMonthDayNanoType>().value(row);
            if v.nanoseconds % 1000 != 0 {
                return Err("interval with sub-microsecond precision".into());
            }
            out.put_i32(16);
            out.put_i64(v.nanoseconds / 1000);
            out.put_i32(v.days);
            out.put_i32(v.months);
        }
        Kind::Array(elem) => {
            let list = a.as_list::<i32>();
            let values = list.value(row);
            let len_pos = out.len();
            out.put_i32(0);
            let start = out.len();
            out.put_i32(1);
            out.put_i32(i32::from(values.null_count() > 0));
            out.put_u32(elem_oid(elem).ok_or("arrays of this element type cannot be written")?);
            out.put_i32(values.len() as i32);
            out.put_i32(1);
            for i in 0..values.len() {
                encode_value(values.as_ref(), elem, i, out)?;
            }
            let total = (out.len() - start) as i32;
            out[len_pos..len_pos + 4].copy_from_slice(&total.to_be_bytes());
        }
        Kind::Unknown => return Err("a column of an unmapped type cannot be written".into()),
    }
    Ok(())
}

fn elem_oid(k: &Kind) -> Option<u32> {
    Some(match k {
        Kind::Bool => 16,
        Kind::Bytea => 17,
        Kind::Int8 => 20,
        Kind::Int2 => 21,
        Kind::Int4 => 23,
        Kind::Text => 25,
        Kind::Oid => 26,
        Kind::Json => 114,
        Kind::Float4 => 700,
        Kind::Float8 => 701,
        Kind::Bpchar => 1042,
        Kind::Varchar => 1043,
        Kind::Date => 1082,
        Kind::Time => 1083,
        Kind::Timestamp => 1114,
        Kind::Timestamptz => 1184,
        Kind::Interval => 1186,
        Kind::Numeric(_) => 1700,
        Kind::Uuid => 2950,
        Kind::Jsonb => 3802,
        _ => return None,
    })
}

#[inline]
fn string_at(a: &dyn Array, row: usize) -> std::result::Result<&str, String> {
    Ok(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(row),
        DataType::LargeUtf8 => a.as_string::<i64>().value(row),
        DataType::Utf8View => a.as_string_view().value(row),
        other => return Err(format!("expected a string column, got {other}")),
    })
}

/// Writes an unscaled decimal as PostgreSQL binary numeric.
pub fn write_numeric_i128(
    v: i128,
    scale: i8,
    out: &mut BytesMut,
) -> std::result::Result<(), String> {
    let neg = v < 0;
    // A negative scale (Arrow allows it) means v * 10^-scale: write that integer.
    let (mag, scale) = if scale < 0 {
        let m = 10u128
            .checked_pow(u32::from(scale.unsigned_abs()))
            .and_then(|p| v.unsigned_abs().checked_mul(p))
            .ok_or("decimal value too large to write")?;
        (m, 0u32)
    } else {
        (v.unsigned_abs(), scale as u32)
    };
    let div = 10u128
        .checked_pow(scale)
        .ok_or("decimal scale too large to write")?;
    let (int, frac) = match (u64::try_from(mag), u64::try_from(div)) {
        (Ok(m), Ok(d)) => (u128::from(m / d), u128::from(m % d)),
        _ => (mag / div, mag % div),
    };
    // Base-10000 digit groups, lowest first: the fraction (its lowest group padded with zeros
    // on the right), then the integer part. 64-bit arithmetic when both parts fit.
    let mut groups = [0i16; 24];
    let mut n = 0usize;
    let r = scale % 4;
    macro_rules! split {
        ($t:ty, $int:expr, $frac:expr) => {{
            let (mut int, mut frac): ($t, $t) = ($int, $frac);
            if r > 0 {
                let p: $t = (10 as $t).pow(r);
                groups[n] = ((frac % p) as i16) * 10i16.pow(4 - r);
                frac /= p;
                n += 1;
            }
            for _ in 0..scale / 4 {
                groups[n] = (frac % 10_000) as i16;
                frac /= 10_000;
                n += 1;
            }
            let frac_groups = n;
            while int > 0 && n < groups.len() {
                groups[n] = (int % 10_000) as i16;
                int /= 10_000;
                n += 1;
            }
            frac_groups
        }};
    }
    let frac_groups = match (u64::try_from(int), u64::try_from(frac)) {
        (Ok(i), Ok(f)) => split!(u64, i, f),
        _ => split!(u128, int, frac),
    };
    // PostgreSQL's canonical form: no zero groups at either end.
    let mut hi = n;
    while hi > 0 && groups[hi - 1] == 0 {
        hi -= 1;
    }
    let mut lo = 0;
    while lo < hi && groups[lo] == 0 {
        lo += 1;
    }
    let digits = &groups[lo..hi];
    let weight = if digits.is_empty() {
        0
    } else {
        hi as i32 - frac_groups as i32 - 1
    };
    out.put_i32(8 + 2 * digits.len() as i32);
    out.put_i16(digits.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(if neg && !digits.is_empty() { 0x4000 } else { 0 });
    out.put_i16(scale as i16);
    for d in digits.iter().rev() {
        out.put_i16(*d);
    }
    Ok(())
}

/// Writes an f64 as binary numeric (NaN allowed; infinities are an error in PostgreSQL < 14).
fn write_numeric_f64(v: f64, out: &mut BytesMut) -> std::result::Result<(), String> {
    if v.is_nan() {
        out.put_i32(8);
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(0xC000);
        out.put_i16(0);
        return Ok(());
    }
    if v.is_infinite() {
        out.put_i32(8);
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(if v > 0.0 { 0xD000 } else { 0xF000 });
        out.put_i16(0);
        return Ok(());
    }
    write_numeric_str(&format!("{v}"), out)
}

/// Writes a plain decimal string (`-123.4500`, `1e-7` is not accepted) as binary numeric.
pub fn write_numeric_str(s: &str, out: &mut BytesMut) -> std::result::Result<(), String> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let scale = frac.len().min(i8::MAX as usize) as i8;
    let digits: String = format!("{int}{frac}");
    let v: i128 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a plain decimal number"))?;
    write_numeric_i128(if neg { -v } else { v }, scale, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: i128, scale: i8) -> i128 {
        let mut b = BytesMut::new();
        write_numeric_i128(v, scale, &mut b).unwrap();
        numeric_to_i128(&b[4..], scale).unwrap()
    }

    #[test]
    fn numeric_roundtrips_across_the_i64_boundary_and_every_scale() {
        let max38 = 10i128.pow(38) - 1;
        let mut values = vec![
            max38,
            -max38,
            i128::from(i64::MAX) + 1,
            i128::from(i64::MIN) - 1,
        ];
        let mut x: i128 = 7;
        for _ in 0..200 {
            x = x
                .wrapping_mul(6_364_136_223_846_793)
                .wrapping_add(1_442_695_040_888_963)
                .rem_euclid(max38);
            values.push(x);
            values.push(-(x / 1_000_003));
        }
        for v in values {
            for s in [-3i8, 0, 1, 2, 3, 4, 5, 9, 17, 20] {
                if s < 0 && v.unsigned_abs() >= 10u128.pow(35) {
                    continue; // v * 1000 does not fit 38 digits
                }
                assert_eq!(roundtrip(v, s), v, "{v} scale {s}");
            }
        }
        // Fewer fractional digits than the value has: an error, never a silent rounding.
        let mut b = BytesMut::new();
        write_numeric_i128(12345, 3, &mut b).unwrap();
        assert!(numeric_to_i128(&b[4..], 2).is_err());
        assert_eq!(numeric_to_i128(&b[4..], 5).unwrap(), 1234500);
    }

    #[test]
    fn numeric_fast_path_agrees_with_the_exact_path() {
        let mut checked = 0;
        let mut x: i128 = 3;
        for _ in 0..3000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793)
                .wrapping_add(1_442_695_040_888_963)
                .rem_euclid(10i128.pow(20));
            for v in [x, -x, x % 100_000, x % 1_000, 0] {
                for write_scale in [0i8, 1, 2, 3, 4, 6] {
                    let mut b = BytesMut::new();
                    write_numeric_i128(v, write_scale, &mut b).unwrap();
                    for read_scale in [0i8, 1, 2, 3, 5, 8, 15] {
                        let exact = numeric_to_i128_exact(&b[4..], read_scale);
                        if let Some(fast) = numeric_to_i64_fast(&b[4..], read_scale) {
                            assert_eq!(
                                Ok(i128::from(fast)),
                                exact,
                                "{v} at {write_scale}/{read_scale}"
                            );
                            checked += 1;
                        }
                        assert_eq!(numeric_to_i128(&b[4..], read_scale), exact);
                    }
                }
            }
        }
        assert!(checked > 10_000, "the fast path took only {checked} values");
    }

    #[test]
    fn numeric_roundtrips() {
        for (v, s) in [
            (0i128, 2i8),
            (1, 2),
            (-1, 2),
            (2116823, 2),
            (-99999999, 4),
            (123456789012345678, 0),
            (10000, 0),
            (5, 7),
            (i128::from(i64::MAX), 3),
        ] {
            assert_eq!(roundtrip(v, s), v, "{v} scale {s}");
        }
    }

    #[test]
    fn wide_numeric_roundtrips() {
        let v = i256::from_string("-1234567890123456789012345678901234512345").unwrap();
        let mut b = BytesMut::new();
        write_numeric_i256(v, 5, &mut b).unwrap();
        assert_eq!(numeric_to_i256(&b[4..], 5).unwrap(), v);
        let mut b = BytesMut::new();
        write_numeric_i128(12345, 2, &mut b).unwrap();
        assert_eq!(numeric_to_i256(&b[4..], 2).unwrap(), i256::from_i128(12345));
    }

    #[test]
    fn numeric_rejects_extra_digits_and_nan() {
        let mut b = BytesMut::new();
        write_numeric_i128(12345, 3, &mut b).unwrap(); // 12.345
        assert!(numeric_to_i128(&b[4..], 2).is_err());
        let mut n = BytesMut::new();
        write_numeric_f64(f64::NAN, &mut n).unwrap();
        assert!(numeric_to_i128(&n[4..], 2).unwrap_err().contains("NaN"));
        assert!(numeric_to_f64(&n[4..]).unwrap().is_nan());
    }

    #[test]
    fn typmod_gives_precision_and_scale() {
        assert_eq!(
            Kind::from_oid(1700, (15 << 16) + 2 + 4),
            Kind::Numeric(Some((15, 2)))
        );
        assert_eq!(Kind::from_oid(1700, -1), Kind::Numeric(None));
        assert_eq!(
            Kind::from_oid(1700, (40 << 16) + 4).arrow_type(),
            DataType::Decimal256(40, 0)
        );
    }
}
