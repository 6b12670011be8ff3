//! The field types of the seed API and the values records hold.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, TimeUnit};

use crate::error::{Error, Result};

/// Field metadata key that marks a UTF-8 column as TEXT.
pub const TYPE_METADATA_KEY: &str = "dataknobs.type";
/// Arrow's canonical extension-name key; `arrow.json` marks JSON text.
pub const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";
/// Arrow's canonical JSON extension type name.
pub const JSON_EXTENSION: &str = "arrow.json";

/// The eight field types of the seed API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldType {
    String,
    Integer,
    Float,
    Boolean,
    DateTime,
    Json,
    Binary,
    Text,
}

impl FieldType {
    /// All field types, in the seed's order.
    pub const ALL: [FieldType; 8] = [
        FieldType::String,
        FieldType::Integer,
        FieldType::Float,
        FieldType::Boolean,
        FieldType::DateTime,
        FieldType::Json,
        FieldType::Binary,
        FieldType::Text,
    ];

    /// The seed's name: `STRING`, `INTEGER`, …
    pub fn name(self) -> &'static str {
        match self {
            FieldType::String => "STRING",
            FieldType::Integer => "INTEGER",
            FieldType::Float => "FLOAT",
            FieldType::Boolean => "BOOLEAN",
            FieldType::DateTime => "DATETIME",
            FieldType::Json => "JSON",
            FieldType::Binary => "BINARY",
            FieldType::Text => "TEXT",
        }
    }

    /// Parses a seed type name (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        FieldType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::type_error(format!(
                    "unknown field type '{s}'; expected one of STRING, INTEGER, FLOAT, BOOLEAN, DATETIME, JSON, BINARY, TEXT"
                ))
            })
    }

    /// The canonical Arrow type.
    pub fn arrow_type(self) -> DataType {
        match self {
            FieldType::String | FieldType::Text | FieldType::Json => DataType::Utf8,
            FieldType::Integer => DataType::Int64,
            FieldType::Float => DataType::Float64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            FieldType::Binary => DataType::Binary,
        }
    }

    /// A nullable Arrow field of this type, with the metadata that keeps TEXT and JSON apart.
    pub fn arrow_field(self, name: &str) -> ArrowField {
        let field = ArrowField::new(name, self.arrow_type(), true);
        match self {
            FieldType::Text => {
                field.with_metadata([(TYPE_METADATA_KEY.to_string(), "TEXT".to_string())].into())
            }
            FieldType::Json => field.with_metadata(
                [(EXTENSION_NAME_KEY.to_string(), JSON_EXTENSION.to_string())].into(),
            ),
            _ => field,
        }
    }

    /// The field type a column of this Arrow field reads as.
    pub fn from_arrow(field: &ArrowField) -> FieldType {
        use DataType::*;
        match field.data_type() {
            Boolean => FieldType::Boolean,
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => FieldType::Integer,
            Float16 | Float32 | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..)
            | Decimal256(..) => FieldType::Float,
            Timestamp(..) | Date32 | Date64 => FieldType::DateTime,
            Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => FieldType::Binary,
            Utf8 | LargeUtf8 | Utf8View => {
                let md = field.metadata();
                if md.get(EXTENSION_NAME_KEY).map(String::as_str) == Some(JSON_EXTENSION) {
                    FieldType::Json
                } else if md.get(TYPE_METADATA_KEY).map(String::as_str) == Some("TEXT") {
                    FieldType::Text
                } else {
                    FieldType::String
                }
            }
            List(_) | LargeList(_) | Struct(_) | Map(..) => FieldType::Json,
            _ => FieldType::String,
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One value of a field. `Null` follows SQL semantics in queries. Serialized (serde) with its
/// variant, so an `Int` stays an `Int` and a `DateTime` a `DateTime`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "value")]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Both STRING and TEXT fields hold strings; the [`Field`]'s type tells them apart.
    String(String),
    DateTime(DateTime<Utc>),
    Json(serde_json::Value),
    Binary(Vec<u8>),
    /// An exact decimal number (a SQL `DECIMAL`/`NUMERIC` literal). Its field type is FLOAT;
    /// filters keep it exact so backends that compare decimals exactly can take them.
    Decimal(Decimal),
    /// A calendar date (a SQL `DATE`). Its field type is DATETIME (its midnight, UTC).
    Date(NaiveDate),
}

/// An exact decimal number: `unscaled × 10^-scale` (Arrow's `Decimal128` form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Decimal {
    pub unscaled: i128,
    pub scale: i8,
}

impl Decimal {
    /// `unscaled × 10^-scale`.
    pub fn new(unscaled: i128, scale: i8) -> Self {
        Decimal { unscaled, scale }
    }

    /// The number of significant digits the unscaled value has (at least 1).
    pub fn digits(&self) -> u8 {
        let mut n = self.unscaled.unsigned_abs();
        let mut d = 1;
        while n >= 10 {
            n /= 10;
            d += 1;
        }
        d
    }

    /// The nearest f64 (exact for up to 15 significant digits).
    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// The value as an integer, if it is a whole number in range.
    pub fn to_i64(&self) -> Option<i64> {
        if self.scale <= 0 {
            let factor = 10i128.checked_pow(u32::from(self.scale.unsigned_abs()))?;
            return i64::try_from(self.unscaled.checked_mul(factor)?).ok();
        }
        let factor = 10i128.checked_pow(u32::from(self.scale.unsigned_abs()))?;
        (self.unscaled % factor == 0)
            .then(|| i64::try_from(self.unscaled / factor).ok())
            .flatten()
    }
}

impl fmt::Display for Decimal {
    /// Plain decimal notation with exactly `scale` digits after the point: `-12.50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.unscaled < 0 { "-" } else { "" };
        let digits = self.unscaled.unsigned_abs().to_string();
        if self.scale <= 0 {
            let zeros = if self.unscaled == 0 {
                0
            } else {
                usize::from(self.scale.unsigned_abs())
            };
            return write!(f, "{sign}{digits}{}", "0".repeat(zeros));
        }
        let scale = usize::from(self.scale.unsigned_abs());
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

impl Value {
    /// Is this SQL NULL?
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The field type this value has on its own (None for NULL).
    pub fn field_type(&self) -> Option<FieldType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => FieldType::Boolean,
            Value::Int(_) => FieldType::Integer,
            Value::Float(_) => FieldType::Float,
            Value::String(_) => FieldType::String,
            Value::DateTime(_) => FieldType::DateTime,
            Value::Json(_) => FieldType::Json,
            Value::Binary(_) => FieldType::Binary,
            Value::Decimal(_) => FieldType::Float,
            Value::Date(_) => FieldType::DateTime,
        })
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        self.field_type().map(FieldType::name).unwrap_or("NULL")
    }

    /// Like [`Value::convert_to`], but borrows the value when it already is what `target`
    /// holds (no copy of its text or bytes): the common case of storing typed records.
    pub fn convert_ref(&self, target: FieldType) -> Result<Cow<'_, Value>> {
        let same = match (self, target) {
            (Value::Null, _)
            | (Value::Int(_), FieldType::Integer)
            | (Value::Float(_), FieldType::Float)
            | (Value::Bool(_), FieldType::Boolean)
            | (Value::String(_), FieldType::String | FieldType::Text)
            | (Value::Json(_), FieldType::Json)
            | (Value::Binary(_), FieldType::Binary) => true,
            // Already whole microseconds (what `convert_to` truncates to).
            (Value::DateTime(d), FieldType::DateTime) => {
                let nanos = d.timestamp_subsec_nanos();
                nanos < 1_000_000_000 && nanos % 1000 == 0
            }
            _ => false,
        };
        if same {
            Ok(Cow::Borrowed(self))
        } else {
            self.convert_to(target).map(Cow::Owned)
        }
    }

    /// Converts to `target`, or says why it cannot.
    pub fn convert_to(&self, target: FieldType) -> Result<Value> {
        let fail = |why: &str| {
            Error::type_error(format!(
                "cannot convert {} value {} to {target}{why}",
                self.kind_name(),
                self.short()
            ))
        };
        Ok(match (self, target) {
            (Value::Null, _) => Value::Null,
            (Value::Int(i), FieldType::Integer) => Value::Int(*i),
            (Value::Float(f), FieldType::Integer) => {
                if f.fract() == 0.0
                    && *f >= -9.223_372_036_854_776e18
                    && *f < 9.223_372_036_854_776e18
                {
                    Value::Int(*f as i64)
                } else {
                    return Err(fail(": it is not a whole number in range"));
                }
            }
            (Value::Bool(b), FieldType::Integer) => Value::Int(i64::from(*b)),
            (Value::String(s), FieldType::Integer) => Value::Int(
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| fail(": not an integer"))?,
            ),
            (Value::Decimal(d), FieldType::Integer) => Value::Int(
                d.to_i64()
                    .ok_or_else(|| fail(": it is not a whole number in range"))?,
            ),
            (Value::Decimal(d), FieldType::Float) => Value::Float(d.to_f64()),
            (Value::Date(d), FieldType::DateTime) => {
                Value::DateTime(Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN)))
            }
            (Value::Int(i), FieldType::Float) => Value::Float(*i as f64),
            (Value::Float(f), FieldType::Float) => Value::Float(*f),
            (Value::String(s), FieldType::Float) => Value::Float(
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| fail(": not a number"))?,
            ),
            (Value::Bool(b), FieldType::Boolean) => Value::Bool(*b),
            (Value::Int(0), FieldType::Boolean) => Value::Bool(false),
            (Value::Int(1), FieldType::Boolean) => Value::Bool(true),
            (Value::String(s), FieldType::Boolean) => {
                match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "t" | "yes" | "y" | "1" => Value::Bool(true),
                    "false" | "f" | "no" | "n" | "0" => Value::Bool(false),
                    _ => return Err(fail(": expected true or false")),
                }
            }
            (Value::DateTime(d), FieldType::DateTime) => Value::DateTime(truncate_to_micros(d)),
            (Value::String(s), FieldType::DateTime) => {
                Value::DateTime(truncate_to_micros(&parse_datetime(s).ok_or_else(|| {
                    fail(": expected RFC 3339 or 'YYYY-MM-DD[ HH:MM:SS[.ffffff]]' (UTC)")
                })?))
            }
            (Value::Json(j), FieldType::Json) => Value::Json(j.clone()),
            (Value::String(s), FieldType::Json) => Value::Json(
                serde_json::from_str(s).map_err(|e| fail(&format!(": not valid JSON ({e})")))?,
            ),
            (Value::Int(i), FieldType::Json) => Value::Json((*i).into()),
            (Value::Float(f), FieldType::Json) => Value::Json(
                serde_json::Number::from_f64(*f)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| fail(": JSON has no NaN or infinity"))?,
            ),
            (Value::Bool(b), FieldType::Json) => Value::Json((*b).into()),
            (Value::DateTime(d), FieldType::Json) => Value::Json(format_datetime(d).into()),
            (Value::Binary(b), FieldType::Binary) => Value::Binary(b.clone()),
            (Value::Binary(_), FieldType::String | FieldType::Text) => {
                return Err(fail(": binary data is not text"));
            }
            (v, FieldType::String | FieldType::Text) => Value::String(v.to_text()),
            _ => return Err(fail("")),
        })
    }

    /// The value as text (what a STRING column would hold). Binary becomes base64.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::String(s) => s.clone(),
            Value::DateTime(d) => format_datetime(d),
            Value::Json(j) => j.to_string(),
            Value::Binary(b) => base64::engine::general_purpose::STANDARD.encode(b),
            Value::Decimal(d) => d.to_string(),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        }
    }

    fn short(&self) -> String {
        let t = match self {
            Value::String(s) => format!("'{s}'"),
            Value::Null => "NULL".into(),
            v => v.to_text(),
        };
        if t.chars().count() > 40 {
            format!("{}…", t.chars().take(40).collect::<String>())
        } else {
            t
        }
    }

    /// The plain JSON form (datetime as RFC 3339, binary as base64).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
            Value::String(s) => s.clone().into(),
            Value::DateTime(d) => format_datetime(d).into(),
            Value::Json(j) => j.clone(),
            Value::Binary(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
            // As text: a JSON number would be read back as a float and lose digits.
            Value::Decimal(d) => d.to_string().into(),
            Value::Date(d) => d.format("%Y-%m-%d").to_string().into(),
        }
    }

    /// A value from plain JSON: numbers become Int or Float, objects and arrays Json.
    pub fn from_json(j: &serde_json::Value) -> Value {
        match j {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::String(s.clone()),
            other => Value::Json(other.clone()),
        }
    }

    /// A value from its JSON form when the field type is known (lossless inverse of
    /// [`Value::to_json`] for every type).
    pub fn from_typed_json(j: &serde_json::Value, ty: FieldType) -> Result<Value> {
        match (j, ty) {
            (serde_json::Value::Null, _) => Ok(Value::Null),
            (_, FieldType::Json) => Ok(Value::Json(j.clone())),
            (serde_json::Value::String(s), FieldType::Binary) => {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map(Value::Binary)
                    .map_err(|e| {
                        Error::type_error(format!("invalid base64 for a BINARY value: {e}"))
                    })
            }
            (serde_json::Value::String(s), FieldType::Float) => match s.as_str() {
                "NaN" => Ok(Value::Float(f64::NAN)),
                "inf" => Ok(Value::Float(f64::INFINITY)),
                "-inf" => Ok(Value::Float(f64::NEG_INFINITY)),
                _ => Value::from_json(j).convert_to(ty),
            },
            _ => Value::from_json(j).convert_to(ty),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Value::Binary(b) => {
                f.write_str("X'")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                f.write_str("'")
            }
            Value::DateTime(d) => write!(f, "TIMESTAMP '{}'", format_datetime(d)),
            Value::Date(d) => write!(f, "DATE '{}'", d.format("%Y-%m-%d")),
            Value::Json(j) => write!(f, "JSON '{}'", j.to_string().replace('\'', "''")),
            Value::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 => {
                write!(f, "{x:.1}")
            }
            v => f.write_str(&v.to_text()),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident via $conv:expr),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::$variant($conv(v)) }
        }
    )*};
}
value_from!(
    bool => Bool via |v| v,
    i64 => Int via |v| v,
    i32 => Int via i64::from,
    u32 => Int via i64::from,
    f64 => Float via |v| v,
    String => String via |v| v,
    &str => String via |v: &str| v.to_string(),
    DateTime<Utc> => DateTime via |v| v,
    serde_json::Value => Json via |v| v,
    Vec<u8> => Binary via |v| v,
    NaiveDate => Date via |v| v,
    Decimal => Decimal via |v| v,
);

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// DATETIME values are stored with microsecond precision.
fn truncate_to_micros(d: &DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(d.timestamp_micros()).unwrap_or(*d)
}

/// Formats a UTC datetime as RFC 3339 with microseconds.
pub fn format_datetime(d: &DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The days since 1970-01-01 of a timestamp that falls exactly on a midnight (UTC), else None:
/// the timestamps that equal a date.
pub fn whole_epoch_days(t: &DateTime<Utc>) -> Option<i64> {
    (t.timestamp().rem_euclid(86_400) == 0 && t.timestamp_subsec_nanos() == 0)
        .then(|| t.timestamp().div_euclid(86_400))
}

/// Parses RFC 3339, or `YYYY-MM-DD[ HH:MM:SS[.f]]` / `YYYY-MM-DDTHH:MM:SS[.f]` taken as UTC.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| Utc.from_utc_datetime(&n))
}
