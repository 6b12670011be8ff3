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
//! | varchar, char(n), name, "char"     | Utf8 (char(n) without trailing blanks)  |
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
//!
//! Decoding lives in `decoder.rs` (with `wire.rs`), encoding in `encoder.rs`, PostgreSQL's
//! numeric in `numeric.rs`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};

use crate::error::{Error, Result};
use crate::record::{EXTENSION_NAME_KEY, JSON_EXTENSION, TYPE_METADATA_KEY};

/// Field metadata key holding the PostgreSQL type of a column.
pub const PG_TYPE_KEY: &str = "dataknobs.pg_type";

/// Microseconds (and days) between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
pub(super) const EPOCH_US: i64 = 946_684_800_000_000;
pub(super) const EPOCH_DAYS: i32 = 10_957;

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
    /// char(n): blank-padded, compared ignoring trailing blanks; read without them (as
    /// `c::text`) and compared as `c::text`.
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
    /// The column's collation is nondeterministic (e.g. ICU case-insensitive): equality on it
    /// is not byte equality.
    pub nondeterministic: bool,
    /// Filled by PostgreSQL when an INSERT leaves it out (DEFAULT, identity, generated).
    pub store_default: Option<crate::database::StoreDefault>,
}

impl PgColumn {
    /// PostgreSQL's one-byte `"char"` type: read as its text (its binary empty value is a NUL
    /// byte), compared as that text, and without a collation of its own.
    pub fn is_one_byte_char(&self) -> bool {
        self.type_name == "\"char\""
    }

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

pub(super) fn pg_type_for_arrow(name: &str, t: &DataType) -> Result<String> {
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
