//! Arrow columns into binary COPY values for `COPY … FROM STDIN (FORMAT binary)`:
//! [`ColumnEncoder`] casts a column once per batch to the PostgreSQL column's canonical
//! Arrow type and writes each value.

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, StringArray, StringViewArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::FormatOptions;

use super::numeric::{write_numeric_f64, write_numeric_i128, write_numeric_i256};
use super::types::{EPOCH_DAYS, EPOCH_US, Kind};
use crate::error::{Error, Result};

/// Encodes one Arrow column into binary COPY values for a PostgreSQL column.
pub struct ColumnEncoder {
    array: ArrayRef,
    kind: Kind,
    /// The array downcast once per batch for the common types (None: the generic path).
    fast: Fast,
}

/// Typed arrays of the common column types, so encoding a value is a direct read.
pub(super) enum Fast {
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
pub(super) fn canonical(array: &ArrayRef, kind: &Kind, column: &str) -> Result<ArrayRef> {
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
pub(super) fn put_text(out: &mut BytesMut, v: Option<&str>) {
    match v {
        Some(v) => {
            out.put_i32(v.len() as i32);
            out.put_slice(v.as_bytes());
        }
        None => out.put_i32(-1),
    }
}

pub(super) fn encode_value(
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

pub(super) fn elem_oid(k: &Kind) -> Option<u32> {
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
pub(super) fn string_at(a: &dyn Array, row: usize) -> std::result::Result<&str, String> {
    Ok(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(row),
        DataType::LargeUtf8 => a.as_string::<i64>().value(row),
        DataType::Utf8View => a.as_string_view().value(row),
        other => return Err(format!("expected a string column, got {other}")),
    })
}
