//! Records: [`Value`], [`FieldType`], [`Field`] and [`Record`], and their lossless conversion
//! to and from Arrow [`RecordBatch`]es.
//!
//! The eight seed field types map onto Arrow like this (the field metadata keeps the
//! distinction between STRING, TEXT and JSON, which all travel as UTF-8):
//!
//! | FieldType | Arrow type                          | metadata                               |
//! |-----------|-------------------------------------|----------------------------------------|
//! | STRING    | `Utf8`                              |                                        |
//! | TEXT      | `Utf8`                              | `dataknobs.type = TEXT`                |
//! | JSON      | `Utf8`                              | `ARROW:extension:name = arrow.json`    |
//! | INTEGER   | `Int64`                             |                                        |
//! | FLOAT     | `Float64`                           |                                        |
//! | BOOLEAN   | `Boolean`                           |                                        |
//! | DATETIME  | `Timestamp(Microsecond, "UTC")`     |                                        |
//! | BINARY    | `Binary`                            |                                        |
//!
//! Other Arrow types (a SQL `SMALLINT`, `DATE`, `DECIMAL`, …) are read as the nearest field
//! type and written back through Arrow's checked casts, so an out-of-range value is an error,
//! never a silent wrap.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::array::{
    AsArray, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::util::display::FormatOptions;

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
        })
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        self.field_type().map(FieldType::name).unwrap_or("NULL")
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

/// A named, typed value with its own metadata.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub value: Value,
    pub field_type: FieldType,
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// False for a NULL made without a type ([`Field::new`] with `Value::Null`): such a field
    /// does not decide a new column's type.
    type_known: bool,
}

impl PartialEq for Field {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.value == other.value
            && self.field_type == other.field_type
            && self.metadata == other.metadata
    }
}

impl Field {
    /// A field whose type is taken from the value (STRING for NULL).
    pub fn new(name: impl Into<String>, value: impl Into<Value>) -> Self {
        let value = value.into();
        let field_type = value.field_type().unwrap_or(FieldType::String);
        Field {
            name: name.into(),
            type_known: !value.is_null(),
            value,
            field_type,
            metadata: BTreeMap::new(),
        }
    }

    /// A field of an explicit type; the value is converted to it.
    /// Does this field carry a type (anything but an untyped NULL)?
    pub fn has_type(&self) -> bool {
        self.type_known
    }

    pub fn typed(name: impl Into<String>, value: impl Into<Value>, ty: FieldType) -> Result<Self> {
        let name = name.into();
        let value = value
            .into()
            .convert_to(ty)
            .map_err(|e| Error::type_error(format!("field '{name}': {}", e.message())))?;
        Ok(Field {
            name,
            value,
            field_type: ty,
            metadata: BTreeMap::new(),
            type_known: true,
        })
    }
}

/// An ordered set of fields plus record metadata; the record id lives in [`Record::id`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    fields: Vec<Field>,
    /// Free-form metadata (not stored as columns).
    pub metadata: BTreeMap<String, serde_json::Value>,
    id: Option<String>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// A record from `(name, value)` pairs, in order.
    pub fn from_pairs<K: Into<String>, V: Into<Value>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut r = Record::new();
        for (k, v) in pairs {
            r.set(k, v);
        }
        r
    }

    /// Builder form of [`Record::set`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    /// The record id, if it has one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Sets the record id.
    pub fn set_id(&mut self, id: impl Into<String>) {
        self.id = Some(id.into());
    }

    /// Builder form of [`Record::set_id`].
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.set_id(id);
        self
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Has no fields?
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The field names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The value of field `name` (None if absent).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.field(name).map(|f| &f.value)
    }

    /// The value of field `name`, or `default`.
    pub fn get_or<'a>(&'a self, name: &str, default: &'a Value) -> &'a Value {
        self.get(name).unwrap_or(default)
    }

    /// The field at position `index`.
    pub fn get_index(&self, index: usize) -> Option<&Field> {
        self.fields.get(index)
    }

    /// Sets field `name`. A new field takes the value's type; an existing one keeps its type
    /// when the value is NULL or of that type, and otherwise takes the new value's type.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        match self.fields.iter_mut().find(|f| f.name == name) {
            Some(f) => {
                if let Some(t) = value.field_type() {
                    let same_family = t == f.field_type
                        || (t == FieldType::String && f.field_type == FieldType::Text);
                    if !same_family {
                        f.field_type = t;
                    }
                    f.type_known = true;
                }
                f.value = value;
            }
            None => self.fields.push(Field::new(name, value)),
        }
    }

    /// Sets a whole field (replacing one of the same name, keeping its position).
    pub fn set_field(&mut self, field: Field) {
        match self.fields.iter_mut().find(|f| f.name == field.name) {
            Some(f) => *f = field,
            None => self.fields.push(field),
        }
    }

    /// Sets the value at position `index`.
    pub fn set_index(&mut self, index: usize, value: impl Into<Value>) -> Result<()> {
        let len = self.fields.len();
        let f = self.fields.get_mut(index).ok_or_else(|| {
            Error::query(format!(
                "field index {index} out of range (record has {len} fields)"
            ))
        })?;
        let value = value.into();
        if let Some(t) = value.field_type() {
            f.field_type = t;
            f.type_known = true;
        }
        f.value = value;
        Ok(())
    }

    /// Removes field `name`, returning it.
    pub fn remove(&mut self, name: &str) -> Option<Field> {
        let pos = self.fields.iter().position(|f| f.name == name)?;
        Some(self.fields.remove(pos))
    }

    /// Converts field `name` to type `ty` in place.
    pub fn convert(&mut self, name: &str, ty: FieldType) -> Result<()> {
        let f = self
            .fields
            .iter_mut()
            .find(|f| f.name == name)
            .ok_or_else(|| Error::not_found(format!("record has no field '{name}'")))?;
        f.value = f
            .value
            .convert_to(ty)
            .map_err(|e| Error::type_error(format!("field '{name}': {}", e.message())))?;
        f.field_type = ty;
        f.type_known = true;
        Ok(())
    }

    /// The record as a JSON object of its fields (the seed's `to_dict`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.fields
                .iter()
                .map(|f| (f.name.clone(), f.value.to_json()))
                .collect(),
        )
    }

    /// A record from a JSON object (the seed's `from_dict`).
    pub fn from_json(j: &serde_json::Value) -> Result<Record> {
        let obj = j.as_object().ok_or_else(|| {
            Error::type_error(format!(
                "a record must be a JSON object, got {}",
                match j {
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            ))
        })?;
        let mut r = Record::new();
        for (k, v) in obj {
            r.set(k.clone(), Value::from_json(v));
        }
        Ok(r)
    }
}

// ---------------------------------------------------------------------------------------------
// Arrow conversion
// ---------------------------------------------------------------------------------------------

/// The canonical Arrow field type of a column: the type the record API builds before any cast.
fn canonical(field: &ArrowField) -> FieldType {
    FieldType::from_arrow(field)
}

/// Infers a schema from records: fields in order of first appearance, each nullable, typed by
/// its first non-null value (INTEGER and FLOAT together widen to FLOAT).
pub fn infer_schema(records: &[Record]) -> Schema {
    let mut order: Vec<(String, Option<FieldType>)> = Vec::new();
    for r in records {
        for f in r.fields() {
            let t = if !f.has_type() {
                None
            } else {
                Some(f.field_type)
            };
            match order.iter_mut().find(|(n, _)| *n == f.name) {
                Some((_, cur)) => {
                    *cur = match (*cur, t) {
                        (None, t) => t,
                        (Some(FieldType::Integer), Some(FieldType::Float)) => {
                            Some(FieldType::Float)
                        }
                        (c, _) => c,
                    }
                }
                None => order.push((f.name.clone(), t)),
            }
        }
    }
    Schema::new(
        order
            .into_iter()
            .map(|(n, t)| t.unwrap_or(FieldType::String).arrow_field(&n))
            .collect::<Vec<_>>(),
    )
}

/// Builds one column of `field`'s type from values, converting each (with a clear error naming
/// the column and row on failure).
pub fn values_to_array<'a>(
    field: &ArrowField,
    values: impl ExactSizeIterator<Item = &'a Value>,
) -> Result<ArrayRef> {
    let ty = canonical(field);
    let n = values.len();
    let name = field.name();
    let conv = |i: usize, v: &Value| -> Result<Value> {
        v.convert_to(ty).map_err(|e| {
            Error::type_error(format!("column '{name}', row {}: {}", i + 1, e.message()))
        })
    };
    let array: ArrayRef = match ty {
        FieldType::Integer => {
            let mut b = Int64Builder::with_capacity(n);
            for (i, v) in values.enumerate() {
                match conv(i, v)? {
                    Value::Int(x) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::Float => {
            let mut b = Float64Builder::with_capacity(n);
            for (i, v) in values.enumerate() {
                match conv(i, v)? {
                    Value::Float(x) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for (i, v) in values.enumerate() {
                match conv(i, v)? {
                    Value::Bool(x) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::DateTime => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n);
            for (i, v) in values.enumerate() {
                match conv(i, v)? {
                    Value::DateTime(d) => b.append_value(d.timestamp_micros()),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish().with_timezone("UTC"))
        }
        FieldType::Binary => {
            let mut b = BinaryBuilder::with_capacity(n, n * 8);
            for (i, v) in values.enumerate() {
                match conv(i, v)? {
                    Value::Binary(x) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::String | FieldType::Text | FieldType::Json => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for (i, v) in values.enumerate() {
                match conv(i, v)? {
                    Value::String(s) => b.append_value(s),
                    Value::Json(j) => b.append_value(j.to_string()),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    };
    if array.data_type() == field.data_type() {
        return Ok(array);
    }
    let opts = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    cast_with_options(&array, field.data_type(), &opts)
        .map_err(|e| Error::type_error(format!("column '{name}' ({}): {e}", field.data_type())))
}

/// Converts records to a batch of `schema`. A record field not in the schema is an error; a
/// schema column missing from a record is NULL.
pub fn records_to_batch(records: &[Record], schema: &SchemaRef) -> Result<RecordBatch> {
    for r in records {
        for f in r.fields() {
            if schema.field_with_name(&f.name).is_err() {
                return Err(Error::query(format!(
                    "field '{}' is not a column (columns: {})",
                    f.name,
                    column_list(schema)
                )));
            }
        }
    }
    let null = Value::Null;
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let values: Vec<&Value> = records
            .iter()
            .map(|r| r.get(field.name()).unwrap_or(&null))
            .collect();
        if !field.is_nullable()
            && let Some(i) = values.iter().position(|v| v.is_null())
        {
            return Err(Error::type_error(format!(
                "column '{}' is NOT NULL but row {} has no value",
                field.name(),
                i + 1
            )));
        }
        columns.push(values_to_array(field, values.into_iter())?);
    }
    let opts = RecordBatchOptions::new().with_row_count(Some(records.len()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &opts,
    )?)
}

/// Comma-separated column names of a schema, for messages.
pub fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads one column as values of its field type.
pub fn array_to_values(field: &ArrowField, array: &ArrayRef) -> Result<Vec<Value>> {
    let ty = canonical(field);
    let target = ty.arrow_type();
    let array = if array.data_type() == &target {
        array.clone()
    } else if matches!(
        array.data_type(),
        DataType::List(_) | DataType::LargeList(_) | DataType::Struct(_) | DataType::Map(..)
    ) {
        // Nested values travel as JSON.
        return nested_to_json(array);
    } else {
        let opts = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        cast_with_options(array, &target, &opts).map_err(|e| {
            Error::type_error(format!(
                "column '{}' of type {} cannot be read as {ty}: {e}",
                field.name(),
                array.data_type()
            ))
        })?
    };
    let n = array.len();
    let mut out = Vec::with_capacity(n);
    match ty {
        FieldType::Integer => {
            let a: &Int64Array = array.as_primitive();
            out.extend(a.iter().map(Value::from));
        }
        FieldType::Float => {
            let a: &Float64Array = array.as_primitive();
            out.extend(a.iter().map(Value::from));
        }
        FieldType::Boolean => {
            let a: &BooleanArray = array.as_boolean();
            out.extend(a.iter().map(Value::from));
        }
        FieldType::DateTime => {
            let a: &TimestampMicrosecondArray = array.as_primitive();
            for v in a.iter() {
                out.push(match v {
                    None => Value::Null,
                    Some(us) => {
                        Value::DateTime(DateTime::from_timestamp_micros(us).ok_or_else(|| {
                            Error::type_error(format!(
                                "column '{}': timestamp {us} µs out of range",
                                field.name()
                            ))
                        })?)
                    }
                });
            }
        }
        FieldType::Binary => {
            let a: &BinaryArray = array.as_binary();
            out.extend(a.iter().map(|v| Value::from(v.map(<[u8]>::to_vec))));
        }
        FieldType::String | FieldType::Text => {
            let a: &StringArray = array.as_string();
            out.extend(a.iter().map(Value::from));
        }
        FieldType::Json => {
            let a: &StringArray = array.as_string();
            for (i, v) in a.iter().enumerate() {
                out.push(match v {
                    None => Value::Null,
                    Some(s) => Value::Json(serde_json::from_str(s).map_err(|e| {
                        Error::type_error(format!(
                            "column '{}', row {}: invalid JSON: {e}",
                            field.name(),
                            i + 1
                        ))
                    })?),
                });
            }
        }
    }
    Ok(out)
}

fn nested_to_json(array: &ArrayRef) -> Result<Vec<Value>> {
    let field = ArrowField::new("v", array.data_type().clone(), true);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array.clone()])?;
    let mut buf = Vec::new();
    {
        let mut w = datafusion::arrow::json::ArrayWriter::new(&mut buf);
        w.write(&batch)?;
        w.finish()?;
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&buf)
        .map_err(|e| Error::internal(format!("nested value to JSON: {e}")))?;
    Ok(rows
        .into_iter()
        .map(|mut r| match r.get_mut("v").map(serde_json::Value::take) {
            None | Some(serde_json::Value::Null) => Value::Null,
            Some(j) => Value::Json(j),
        })
        .collect())
}

/// Converts a batch to records; `id_column`, when given, also sets each record's id.
pub fn batch_to_records(batch: &RecordBatch, id_column: Option<&str>) -> Result<Vec<Record>> {
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        columns.push((
            field,
            FieldType::from_arrow(field),
            array_to_values(field, array)?,
        ));
    }
    let mut records = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut r = Record::new();
        for (field, ty, values) in &columns {
            let value = values[row].clone();
            if id_column == Some(field.name().as_str()) && !value.is_null() {
                r.set_id(value.to_text());
            }
            r.fields.push(Field {
                name: field.name().clone(),
                value,
                field_type: *ty,
                metadata: BTreeMap::new(),
                type_known: true,
            });
        }
        records.push(r);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_types_record(i: i64) -> Record {
        let mut r = Record::new();
        r.set_field(Field::typed("s", format!("s{i} ünï 'q'"), FieldType::String).unwrap());
        r.set_field(Field::typed("i", i, FieldType::Integer).unwrap());
        r.set_field(Field::typed("f", i as f64 / 3.0, FieldType::Float).unwrap());
        r.set_field(Field::typed("b", i % 2 == 0, FieldType::Boolean).unwrap());
        r.set_field(
            Field::typed(
                "d",
                DateTime::from_timestamp_micros(1_700_000_000_123_456 + i).unwrap(),
                FieldType::DateTime,
            )
            .unwrap(),
        );
        r.set_field(
            Field::typed("j", serde_json::json!({"k": [i, "x"]}), FieldType::Json).unwrap(),
        );
        r.set_field(Field::typed("bin", vec![0u8, 255, i as u8], FieldType::Binary).unwrap());
        r.set_field(Field::typed("t", "long text", FieldType::Text).unwrap());
        r
    }

    #[test]
    fn arrow_round_trip_every_type_with_nulls() {
        let mut records: Vec<Record> = (0..5).map(all_types_record).collect();
        let mut nulls = Record::new();
        for f in records[0].fields() {
            nulls.set_field(Field::typed(f.name.clone(), Value::Null, f.field_type).unwrap());
        }
        records.push(nulls);
        let schema = Arc::new(infer_schema(&records));
        for (f, t) in schema.fields().iter().zip(records[0].fields()) {
            assert_eq!(
                FieldType::from_arrow(f),
                t.field_type,
                "column {}",
                f.name()
            );
        }
        let batch = records_to_batch(&records, &schema).unwrap();
        let back = batch_to_records(&batch, None).unwrap();
        assert_eq!(back, records);
    }

    #[test]
    fn conversion_errors_name_the_problem() {
        let e = Value::from("thirty")
            .convert_to(FieldType::Integer)
            .unwrap_err();
        assert!(e.to_string().contains("'thirty'"), "{e}");
        assert!(e.to_string().contains("INTEGER"), "{e}");
        let schema = Arc::new(Schema::new(vec![FieldType::Integer.arrow_field("age")]));
        let r = Record::new().with("age", "x");
        let e = records_to_batch(&[r], &schema).unwrap_err();
        assert!(e.to_string().contains("column 'age', row 1"), "{e}");
        assert_eq!(
            Value::from("42").convert_to(FieldType::Integer).unwrap(),
            Value::Int(42)
        );
        assert!(FieldType::parse("nope").is_err());
        assert_eq!(FieldType::parse("datetime").unwrap(), FieldType::DateTime);
    }

    #[test]
    fn record_access_by_name_and_index_and_json() {
        let mut r = Record::from_pairs([("a", Value::Int(1)), ("b", Value::from("x"))]);
        assert_eq!(r.get("a"), Some(&Value::Int(1)));
        assert_eq!(r.get_index(1).unwrap().name, "b");
        r.set_index(0, 2.5).unwrap();
        assert_eq!(r.field("a").unwrap().field_type, FieldType::Float);
        assert!(r.set_index(9, 1).is_err());
        let j = r.to_json();
        assert_eq!(j, serde_json::json!({"a": 2.5, "b": "x"}));
        assert_eq!(Record::from_json(&j).unwrap(), r);
        assert!(Record::from_json(&serde_json::json!([1])).is_err());
        r.convert("a", FieldType::String).unwrap();
        assert_eq!(r.get("a"), Some(&Value::from("2.5")));
    }

    #[test]
    fn narrower_arrow_types_use_checked_casts() {
        let field = ArrowField::new("x", DataType::Int16, true);
        let ok = values_to_array(&field, [Value::Int(7), Value::Null].iter()).unwrap();
        assert_eq!(ok.data_type(), &DataType::Int16);
        let err = values_to_array(&field, [Value::Int(70000)].iter()).unwrap_err();
        assert!(err.to_string().contains("column 'x'"), "{err}");
    }
}
