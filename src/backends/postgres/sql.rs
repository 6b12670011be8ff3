//! The one place SQL text is made for PostgreSQL: identifiers are quoted by [`ident`], values
//! go through a [`Binder`] — bound parameters (`$n`) for ordinary statements, or the one
//! audited literal function [`literal`] for `COPY (SELECT …)`, which cannot take parameters.
//!
//! [`support`] decides, per condition, whether PostgreSQL evaluates it exactly as DataFusion
//! would. The traps and what we do:
//! - text ranges depend on the collation: rendered with `COLLATE "C"` (byte order, which is
//!   DataFusion's order for UTF-8);
//! - `char(n)` compares ignoring trailing blanks: it is read as PostgreSQL's own cast to text
//!   reads it (trailing blanks removed), and compared as `(c::text) COLLATE "C"` against text
//!   values, which is exactly what DataFusion does with the value read;
//! - floats: both treat `-0.0 = 0.0`, `NaN = NaN` and NaN as the greatest value (the
//!   differential test's data has -0.0 and NaN);
//! - LIKE: both use `\` as the default escape; a pattern ending in a lone `\` is not pushed;
//! - regular expressions: only the subset [`translate_regex`] renders exactly; JSON, intervals (PostgreSQL normalises
//!   30 days = 1 month), unconstrained numeric and arrays: not pushed;
//! - timestamptz: values are sent as UTC instants; timestamp (no zone) as the naive value;
//! - a text value with a NUL byte cannot be sent (PostgreSQL text cannot hold one): not pushed.

use std::collections::HashMap;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, Timelike, Utc};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::numeric::write_numeric_str;
use super::types::{EPOCH_US, Kind, PgColumn};
use crate::database::FilterSupport;
use crate::error::{Error, Result};
use crate::query::{Filter, FilterExpr, Operator, SortOrder, SortSpec};
use crate::record::Value;

/// A quoted identifier: `"name"` with `"` doubled. NUL bytes are refused by [`check_ident`].
pub fn ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Refuses identifiers PostgreSQL cannot hold.
pub fn check_ident(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('\0') {
        return Err(Error::query(format!(
            "invalid PostgreSQL identifier {name:?}: it must be non-empty and contain no NUL byte"
        )));
    }
    if name.len() > 63 {
        return Err(Error::query(format!(
            "PostgreSQL identifier '{name}' is longer than 63 bytes; PostgreSQL would truncate it"
        )));
    }
    Ok(())
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}

/// An escaped string literal, `E'…'`, safe whatever `standard_conforming_strings` says.
pub fn string_literal(s: &str) -> Result<String> {
    if s.contains('\0') {
        return Err(Error::query(
            "PostgreSQL text cannot contain a NUL byte (\\0)".to_string(),
        ));
    }
    let mut out = String::with_capacity(s.len() + 3);
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

/// The PostgreSQL type a value is sent as when compared with a column of `kind`.
fn value_type(v: &Value, kind: &Kind) -> Option<&'static str> {
    Some(match (v, kind) {
        (Value::Bool(_), _) => "boolean",
        (Value::Int(_), _) => "int8",
        (Value::Float(_), _) => "float8",
        (Value::String(_), _) => "text",
        (Value::DateTime(_), Kind::Date) => "date",
        (Value::DateTime(_), Kind::Timestamp) => "timestamp",
        (Value::DateTime(_), _) => "timestamptz",
        (Value::Binary(_), _) => "bytea",
        (Value::Decimal(_), _) => "numeric",
        (Value::Date(_), _) => "date",
        (Value::Json(_), _) | (Value::Null, _) => return None,
    })
}

/// The date as PostgreSQL reads it: `YYYY-MM-DD`, and for years before 1 AD the year counted
/// back from 1 BC with a trailing ` BC` (chrono counts astronomically: year 0 is 1 BC).
fn date_text(t: &impl Datelike) -> (String, &'static str) {
    let year = t.year();
    if year >= 1 {
        (format!("{year:04}-{:02}-{:02}", t.month(), t.day()), "")
    } else {
        (
            format!("{:04}-{:02}-{:02}", 1 - i64::from(year), t.month(), t.day()),
            " BC",
        )
    }
}

fn ts_text(t: &DateTime<Utc>, zone: bool) -> String {
    let (date, era) = date_text(t);
    format!(
        "{date} {}{}{era}",
        t.format("%H:%M:%S%.6f"),
        if zone { "+00" } else { "" }
    )
}

/// The audited literal function: a value as SQL text of type [`value_type`].
pub fn literal(v: &Value, kind: &Kind) -> Result<String> {
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Int(i) => format!("({i})::int8"),
        Value::Float(f) => {
            if f.is_nan() {
                "'NaN'::float8".into()
            } else if f.is_infinite() {
                if *f > 0.0 {
                    "'Infinity'::float8".into()
                } else {
                    "'-Infinity'::float8".into()
                }
            } else {
                // Rust prints the shortest text that reads back to the same f64.
                format!("'{f:?}'::float8")
            }
        }
        Value::String(s) => format!("{}::text", string_literal(s)?),
        Value::DateTime(t) => match kind {
            Kind::Date => {
                let (date, era) = date_text(t);
                format!("'{date}{era}'::date")
            }
            Kind::Timestamp => format!("'{}'::timestamp", ts_text(t, false)),
            _ => format!("'{}'::timestamptz", ts_text(t, true)),
        },
        Value::Decimal(d) => format!("'{d}'::numeric"),
        Value::Date(d) => {
            let (date, era) = date_text(d);
            format!("'{date}{era}'::date")
        }
        Value::Binary(b) => {
            let mut hex = String::with_capacity(b.len() * 2);
            for byte in b {
                hex.push_str(&format!("{byte:02x}"));
            }
            format!("'\\x{hex}'::bytea")
        }
        Value::Json(_) => {
            return Err(Error::unsupported(
                "JSON values cannot be compared in PostgreSQL filters".to_string(),
            ));
        }
    })
}

/// Where values go: bound parameters or literals.
pub trait Binder {
    fn bind(&mut self, v: &Value, kind: &Kind) -> Result<String>;

    /// The right-hand side of `IN` for `values`: `IN (v1, v2, …)`.
    fn bind_list(&mut self, values: &[Value], kind: &Kind) -> Result<String> {
        bind_each(self, values, kind)
    }
}

/// `IN (v1, v2, …)`, each value bound on its own.
fn bind_each<B: Binder + ?Sized>(b: &mut B, values: &[Value], kind: &Kind) -> Result<String> {
    let vals = values
        .iter()
        .map(|v| b.bind(v, kind))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!("IN ({})", vals.join(", ")))
}

/// Renders values as literals (for COPY).
pub struct Literals;

impl Binder for Literals {
    fn bind(&mut self, v: &Value, kind: &Kind) -> Result<String> {
        literal(v, kind)
    }
}

/// Collects values as bound parameters.
#[derive(Default)]
pub struct Params {
    pub values: Vec<Param>,
}

impl Binder for Params {
    fn bind(&mut self, v: &Value, kind: &Kind) -> Result<String> {
        if v.is_null() {
            return Ok("NULL".into());
        }
        let ty = value_type(v, kind).ok_or_else(|| {
            Error::unsupported(format!("a {} value cannot be a parameter", v.kind_name()))
        })?;
        self.values.push(Param::One(v.clone()));
        Ok(format!("${}::{ty}", self.values.len()))
    }

    /// One array parameter, `= ANY($n::type[])` (the meaning of `IN`, NULLs included), so a
    /// list of any length is one parameter (PostgreSQL takes at most 65,535) and one statement
    /// shape. Lists whose values have different types are bound one by one.
    fn bind_list(&mut self, values: &[Value], kind: &Kind) -> Result<String> {
        let mut types = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| value_type(v, kind));
        let Some(Some(ty)) = types.next() else {
            return Ok("IN (NULL)".into());
        };
        if types.any(|t| t != Some(ty)) {
            return bind_each(self, values, kind);
        }
        self.values.push(Param::Array(values.to_vec()));
        Ok(format!("= ANY(${}::{ty}[])", self.values.len()))
    }
}

impl Params {
    /// The parameters as tokio-postgres wants them.
    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|p| p as &(dyn ToSql + Sync))
            .collect()
    }
}

/// One bound parameter, converted to whatever type the statement's parameter has: a value, or
/// a one-dimensional array of values.
#[derive(Debug, Clone)]
pub enum Param {
    One(Value),
    Array(Vec<Value>),
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::One(v) => encode_param(v, ty, out),
            Param::Array(values) => encode_array(values, ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Encodes values as PostgreSQL's binary one-dimensional array of `ty`'s element type.
fn encode_array(
    values: &[Value],
    ty: &Type,
    out: &mut BytesMut,
) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
    let tokio_postgres::types::Kind::Array(member) = ty.kind() else {
        return Err(format!("a list of values cannot be a PostgreSQL {}", ty.name()).into());
    };
    let len = i32::try_from(values.len()).map_err(|_| "too many values in one list")?;
    out.put_i32(1); // dimensions
    out.put_i32(i32::from(values.iter().any(Value::is_null)));
    out.put_u32(member.oid());
    out.put_i32(len);
    out.put_i32(1); // lower bound
    for v in values {
        let at = out.len();
        out.put_i32(0);
        match encode_param(v, member, out)? {
            IsNull::Yes => out[at..at + 4].copy_from_slice(&(-1i32).to_be_bytes()),
            IsNull::No => {
                let n = i32::try_from(out.len() - at - 4).map_err(|_| "array element too large")?;
                out[at..at + 4].copy_from_slice(&n.to_be_bytes());
            }
        }
    }
    Ok(IsNull::No)
}

fn conv_err(v: &Value, ty: &Type) -> Box<dyn std::error::Error + Sync + Send> {
    format!(
        "cannot store {} value {v} in a PostgreSQL {} column",
        v.kind_name(),
        ty.name()
    )
    .into()
}

/// Encodes a value as the binary form of `ty`.
pub fn encode_param(
    v: &Value,
    ty: &Type,
    out: &mut BytesMut,
) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
    if v.is_null() {
        return Ok(IsNull::Yes);
    }
    let name = ty.name();
    match (v, name) {
        (Value::Bool(b), "bool") => out.put_u8(u8::from(*b)),
        (Value::Int(i), "int8") => out.put_i64(*i),
        (Value::Int(i), "int4") => out.put_i32(i32::try_from(*i).map_err(|_| conv_err(v, ty))?),
        (Value::Int(i), "int2") => out.put_i16(i16::try_from(*i).map_err(|_| conv_err(v, ty))?),
        (Value::Int(i), "float8") => out.put_f64(*i as f64),
        (Value::Int(i), "float4") => out.put_f32(*i as f32),
        (Value::Float(f), "float8") => out.put_f64(*f),
        (Value::Float(f), "float4") => out.put_f32(*f as f32),
        (Value::Float(f), "int8" | "int4" | "int2") if f.fract() == 0.0 && f.is_finite() => {
            return encode_param(&Value::Int(*f as i64), ty, out);
        }
        (Value::Int(_) | Value::Float(_) | Value::String(_) | Value::Decimal(_), "numeric") => {
            let text = match v {
                Value::Int(i) => i.to_string(),
                Value::Decimal(d) => d.to_string(),
                Value::Float(f) if f.is_finite() => format!("{f}"),
                Value::String(s) => s.trim().to_string(),
                _ => return Err(conv_err(v, ty)),
            };
            let mut tmp = BytesMut::new();
            write_numeric_str(&text, &mut tmp)
                .map_err(|e| -> Box<dyn std::error::Error + Sync + Send> { e.into() })?;
            out.put_slice(&tmp[4..]);
        }
        (Value::String(s), _)
            if matches!(
                name,
                "text" | "varchar" | "bpchar" | "name" | "char" | "json" | "unknown"
            ) || matches!(ty.kind(), tokio_postgres::types::Kind::Enum(_)) =>
        {
            if s.contains('\0') {
                return Err("PostgreSQL text cannot contain a NUL byte (\\0)".into());
            }
            out.put_slice(s.as_bytes())
        }
        (Value::String(s), "jsonb") => {
            out.put_u8(1);
            out.put_slice(s.as_bytes())
        }
        (Value::Json(j), "json") => out.put_slice(j.to_string().as_bytes()),
        (Value::Json(j), "jsonb") => {
            out.put_u8(1);
            out.put_slice(j.to_string().as_bytes())
        }
        (Value::Json(j), "text" | "varchar") => out.put_slice(j.to_string().as_bytes()),
        (Value::String(s), "uuid") => {
            let u = uuid::Uuid::parse_str(s).map_err(|e| format!("'{s}' is not a UUID: {e}"))?;
            out.put_slice(u.as_bytes())
        }
        (Value::DateTime(t), "timestamptz" | "timestamp") => {
            out.put_i64(t.timestamp_micros() - EPOCH_US)
        }
        (Value::DateTime(t), "date") => {
            let days = crate::record::whole_epoch_days(t).ok_or_else(|| conv_err(v, ty))? - 10_957;
            out.put_i32(i32::try_from(days).map_err(|_| conv_err(v, ty))?)
        }
        (Value::Date(d), "date") => {
            let days = d
                .signed_duration_since(chrono::DateTime::UNIX_EPOCH.date_naive())
                .num_days()
                - 10_957;
            out.put_i32(i32::try_from(days).map_err(|_| conv_err(v, ty))?)
        }
        (Value::Binary(b), "bytea") => out.put_slice(b),
        _ => return Err(conv_err(v, ty)),
    }
    Ok(IsNull::No)
}

// ------------------------------------------------------------------------------ filters

/// Columns by name.
pub type Columns<'a> = HashMap<&'a str, &'a PgColumn>;

/// The column as text in byte order (`COLLATE "C"`), for ranges, LIKE, regexes and sorting.
/// Types that take no collation (`"char"`, enums, uuid) are cast to text first.
fn byte_ordered(col: &PgColumn) -> String {
    let c = ident(&col.name);
    let collatable = matches!(col.kind, Kind::Varchar | Kind::Text) && !col.is_one_byte_char();
    if collatable {
        format!("{c} COLLATE \"C\"")
    } else {
        format!("({c}::text) COLLATE \"C\"")
    }
}

/// The SQL for a column in a comparison, or None if comparisons on it are not exact.
fn compare_expr(col: &PgColumn, op: Operator, v: Option<&Value>) -> Option<String> {
    let c = ident(&col.name);
    let range = matches!(
        op,
        Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le | Operator::Like
    );
    // The value's type must be one PostgreSQL compares with the column as DataFusion does.
    if let Some(v) = v
        && !v.is_null()
    {
        let ok = match (&col.kind, v) {
            (Kind::Bool, Value::Bool(_)) => true,
            (Kind::Int2 | Kind::Int4 | Kind::Int8 | Kind::Oid, Value::Int(_)) => true,
            // PostgreSQL compares integers and numerics as exact decimals, as DataFusion does
            // after widening both to a common decimal type.
            (Kind::Int2 | Kind::Int4 | Kind::Int8 | Kind::Numeric(Some(_)), Value::Decimal(_)) => {
                true
            }
            (Kind::Numeric(Some(_)), Value::Int(_)) => true,
            (Kind::Int2 | Kind::Int4, Value::Float(f)) => *f != 0.0 && !f.is_nan(),
            // Both treat -0.0 = 0.0, NaN = NaN and NaN as the greatest value (NaNs are read
            // as the positive NaN; a negative NaN value is below every number in DataFusion).
            (Kind::Float4 | Kind::Float8, Value::Float(f)) => !(f.is_nan() && f.is_sign_negative()),
            (Kind::Float8, Value::Int(i)) => *i != 0 && i.unsigned_abs() < (1u64 << 53),
            (
                Kind::Varchar | Kind::Text | Kind::Enum | Kind::Uuid | Kind::Bpchar,
                Value::String(_),
            ) => true,
            (Kind::Bytea, Value::Binary(_)) => true,
            (Kind::Date, Value::Date(_)) => true,
            (Kind::Date, Value::DateTime(t)) => {
                t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0
            }
            (Kind::Timestamp | Kind::Timestamptz, Value::DateTime(t)) => t.nanosecond() % 1000 == 0,
            _ => false,
        };
        if !ok {
            return None;
        }
    }
    match &col.kind {
        // "char" is read as its text (see `select_list`), so it is compared as that; under a
        // nondeterministic collation equality is not byte equality: compared in "C" too.
        Kind::Varchar | Kind::Text => {
            Some(if range || col.nondeterministic || col.is_one_byte_char() {
                byte_ordered(col)
            } else {
                c
            })
        }
        Kind::Enum | Kind::Uuid | Kind::Bpchar => Some(byte_ordered(col)),
        Kind::Bool
        | Kind::Int2
        | Kind::Int4
        | Kind::Int8
        | Kind::Oid
        | Kind::Float4
        | Kind::Float8
        | Kind::Bytea
        | Kind::Date
        | Kind::Time
        | Kind::Timestamp
        | Kind::Timestamptz => (op != Operator::Like).then_some(c),
        // A NaN in the column is an error when read (it has no Decimal128 form); PostgreSQL
        // orders it above every number, so a pushed filter can only skip rows whose reading
        // would have failed.
        Kind::Numeric(Some(_)) => (op != Operator::Like).then_some(c),
        _ => None,
    }
}

/// The character after a backslash, if it is a metacharacter: the only escapes Rust's regex and
/// PostgreSQL's ARE read alike (`\d`, `\w`, `\s` and the like differ on non-ASCII text).
fn escaped_meta(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    const META: &str = "\\.^$|?*+()[]{}-";
    chars.next().filter(|n| META.contains(*n))
}

/// A Rust regular expression as an equivalent PostgreSQL ARE, for the subset where the two
/// agree on which strings match: literal characters, escaped metacharacters, `.` (rendered as
/// `[^\n]`, since Rust's dot does not match a newline), `^`, `$`, `* + ?` and `{n,m}`,
/// groups, alternation, and bracket expressions of literal characters and ASCII ranges.
/// Flags, `\d \w \s \b` (Unicode in Rust, locale-dependent in PostgreSQL) and character
/// classes are not translated.
pub fn translate_regex(p: &str) -> Option<String> {
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    let mut depth = 0i32;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                out.push(escaped_meta(&mut chars)?);
            }
            '.' => out.push_str("[^\n]"),
            '^' | '$' | '|' | '*' | '+' | '?' => out.push(c),
            '(' => {
                if chars.peek() == Some(&'?') {
                    chars.next();
                    if chars.next()? != ':' {
                        return None;
                    }
                    out.push_str("(?:");
                } else {
                    out.push('(');
                }
                depth += 1;
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
                out.push(')');
            }
            '{' => {
                out.push('{');
                let mut body = String::new();
                loop {
                    let d = chars.next()?;
                    if d == '}' {
                        break;
                    }
                    if !(d.is_ascii_digit() || d == ',') {
                        return None;
                    }
                    body.push(d);
                }
                let (lo, hi) = body
                    .split_once(',')
                    .unwrap_or((body.as_str(), body.as_str()));
                let lo: u32 = lo.parse().ok()?;
                if !hi.is_empty() && hi.parse::<u32>().ok()? < lo {
                    return None;
                }
                if lo > 255 || hi.parse::<u32>().is_ok_and(|h| h > 255) {
                    return None;
                }
                out.push_str(&body);
                out.push('}');
            }
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                let mut first = true;
                let mut prev: Option<char> = None;
                loop {
                    let d = chars.next()?;
                    match d {
                        ']' if !first => break,
                        '[' | ']' | '&' | '~' => return None,
                        '\\' => {
                            let n = escaped_meta(&mut chars)?;
                            out.push('\\');
                            out.push(n);
                            prev = Some(n);
                        }
                        '-' => {
                            // A range between two ASCII alphanumerics, or a literal '-' at the end.
                            match (prev, chars.peek().copied()) {
                                (Some(a), Some(b)) if b != ']' => {
                                    if !(a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric())
                                        || b < a
                                    {
                                        return None;
                                    }
                                    chars.next();
                                    out.push('-');
                                    out.push(b);
                                    prev = None;
                                }
                                (_, Some(']')) | (None, _) => {
                                    out.push_str("\\-");
                                    prev = Some('-');
                                }
                                _ => return None,
                            }
                        }
                        d => {
                            out.push(d);
                            prev = Some(d);
                        }
                    }
                    first = false;
                }
                out.push(']');
            }
            ']' | '}' => return None,
            c => out.push(c),
        }
    }
    (depth == 0).then_some(out)
}

fn like_ok(p: &str) -> bool {
    // A trailing unpaired escape is an error in PostgreSQL.
    let trailing = p.chars().rev().take_while(|c| *c == '\\').count();
    trailing % 2 == 0
}

/// Can PostgreSQL evaluate this filter exactly as DataFusion does?
pub fn support(f: &FilterExpr, cols: &Columns) -> FilterSupport {
    if exact(f, cols) {
        FilterSupport::Exact
    } else {
        FilterSupport::Unsupported
    }
}

fn exact(f: &FilterExpr, cols: &Columns) -> bool {
    match f {
        FilterExpr::Const(_) => true,
        FilterExpr::And(v) | FilterExpr::Or(v) => v.iter().all(|e| exact(e, cols)),
        FilterExpr::Not(e) => exact(e, cols),
        FilterExpr::Cond(c) => {
            let Some(col) = cols.get(c.field.as_str()) else {
                return false;
            };
            // PostgreSQL text cannot hold a NUL byte, so it cannot be sent: a value with one
            // (`s <> chr(0)`) is compared by the engine.
            let nul = |v: &Value| matches!(v, Value::String(s) if s.contains('\0'));
            if c.value().is_some_and(nul) || c.values().iter().any(nul) {
                return false;
            }
            match c.op {
                Operator::Exists | Operator::NotExists => true,
                Operator::Regex => match c.value() {
                    Some(Value::String(p)) => {
                        translate_regex(p).is_some()
                            && matches!(col.kind, Kind::Varchar | Kind::Text)
                    }
                    Some(Value::Null) => true,
                    _ => false,
                },
                Operator::Like => match c.value() {
                    Some(Value::String(p)) => like_ok(p) && compare_expr(col, c.op, None).is_some(),
                    Some(Value::Null) => true,
                    _ => false,
                },
                // DataFusion's IN list compares floats by bit pattern once the list is long
                // enough to be hashed (-0.0 is then not 0.0): leave zeros and NaN to it.
                Operator::In | Operator::NotIn => c.values().iter().all(|v| {
                    !matches!(v, Value::Float(f) if *f == 0.0 || f.is_nan())
                        && compare_expr(col, Operator::Eq, Some(v)).is_some()
                }),
                // Full-text search: only a search server answers it.
                op if op.is_fulltext() => false,
                _ => compare_expr(col, c.op, c.value()).is_some(),
            }
        }
    }
}

/// Renders a filter (which [`support`] said is exact) as a SQL condition.
pub fn render_filter(f: &FilterExpr, cols: &Columns, b: &mut dyn Binder) -> Result<String> {
    Ok(match f {
        FilterExpr::Const(Some(true)) => "TRUE".into(),
        FilterExpr::Const(Some(false)) => "FALSE".into(),
        FilterExpr::Const(None) => "NULL".into(),
        FilterExpr::And(v) | FilterExpr::Or(v) => {
            if v.is_empty() {
                return Ok(if matches!(f, FilterExpr::And(_)) {
                    "TRUE"
                } else {
                    "FALSE"
                }
                .into());
            }
            let sep = if matches!(f, FilterExpr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts = v
                .iter()
                .map(|e| render_filter(e, cols, b))
                .collect::<Result<Vec<_>>>()?;
            format!("({})", parts.join(sep))
        }
        FilterExpr::Not(e) => format!("(NOT {})", render_filter(e, cols, b)?),
        FilterExpr::Cond(c) => render_cond(c, cols, b)?,
    })
}

fn render_cond(c: &Filter, cols: &Columns, b: &mut dyn Binder) -> Result<String> {
    let col = cols.get(c.field.as_str()).ok_or_else(|| {
        Error::query(format!(
            "unknown column '{}' in a PostgreSQL filter",
            c.field
        ))
    })?;
    let not_exact = || {
        Error::unsupported(format!(
            "the filter `{c}` cannot be evaluated exactly by PostgreSQL"
        ))
    };
    // A char(n) column is compared as text (`c::text`, trailing blanks removed): its values
    // are bound as text too, so that a value's own trailing blanks count, as in DataFusion.
    let value_kind = match col.kind {
        Kind::Bpchar => &Kind::Text,
        ref k => k,
    };
    Ok(match c.op {
        Operator::Regex => match c.value() {
            Some(Value::String(p)) => {
                let are = translate_regex(p).ok_or_else(not_exact)?;
                format!(
                    "({} ~ {})",
                    byte_ordered(col),
                    b.bind(&Value::String(are), &col.kind)?
                )
            }
            Some(Value::Null) => "NULL".into(),
            _ => return Err(not_exact()),
        },
        Operator::Exists => format!("({} IS NOT NULL)", ident(&col.name)),
        Operator::NotExists => format!("({} IS NULL)", ident(&col.name)),
        Operator::In | Operator::NotIn => {
            let lhs = compare_expr(col, Operator::Eq, None).ok_or_else(not_exact)?;
            let rhs = b.bind_list(c.values(), value_kind)?;
            if c.op == Operator::NotIn {
                format!("(NOT ({lhs} {rhs}))")
            } else {
                format!("({lhs} {rhs})")
            }
        }
        op => {
            let v = c.value().ok_or_else(not_exact)?;
            let lhs = compare_expr(col, op, Some(v)).ok_or_else(not_exact)?;
            let sym = match op {
                Operator::Eq => "=",
                Operator::Ne => "<>",
                Operator::Gt => ">",
                Operator::Ge => ">=",
                Operator::Lt => "<",
                Operator::Le => "<=",
                Operator::Like => "LIKE",
                _ => return Err(not_exact()),
            };
            format!("({lhs} {sym} {})", b.bind(v, value_kind)?)
        }
    })
}

/// `ORDER BY` keys, with text in byte order (DataFusion's).
pub fn render_sort(sort: &[SortSpec], cols: &Columns) -> Result<String> {
    let mut parts = Vec::new();
    for s in sort {
        let col = cols
            .get(s.field.as_str())
            .ok_or_else(|| Error::query(format!("cannot sort by unknown column '{}'", s.field)))?;
        let expr = match col.kind {
            Kind::Varchar | Kind::Text | Kind::Enum | Kind::Uuid | Kind::Bpchar => {
                byte_ordered(col)
            }
            Kind::Json | Kind::Jsonb | Kind::Unknown | Kind::Array(_) | Kind::Interval => {
                return Err(Error::unsupported(format!(
                    "sorting by column '{}' ({}) is not supported in the record API",
                    col.name, col.type_name
                )));
            }
            _ => ident(&col.name),
        };
        parts.push(format!(
            "{expr} {} NULLS {}",
            if s.order == SortOrder::Asc {
                "ASC"
            } else {
                "DESC"
            },
            if s.nulls_first { "FIRST" } else { "LAST" }
        ));
    }
    Ok(parts.join(", "))
}

/// Does PostgreSQL order rows by `sort` exactly as DataFusion orders the Arrow values? Text
/// sorts in byte order (`COLLATE "C"`, as [`render_sort`] writes it), NULL placement is
/// explicit (char(n) sorts as its text, trailing blanks removed, as it is read). Floats are
/// not: PostgreSQL ties -0.0 with 0.0, DataFusion puts -0.0 first. Nor are JSON, intervals,
/// arrays, unconstrained numeric and unmapped types.
pub fn sort_support(sort: &[SortSpec], cols: &Columns) -> bool {
    sort.iter().all(|s| {
        cols.get(s.field.as_str()).is_some_and(|c| {
            matches!(
                c.kind,
                Kind::Bool
                    | Kind::Int2
                    | Kind::Int4
                    | Kind::Int8
                    | Kind::Oid
                    | Kind::Numeric(Some(_))
                    | Kind::Varchar
                    | Kind::Text
                    | Kind::Bpchar
                    | Kind::Enum
                    | Kind::Uuid
                    | Kind::Bytea
                    | Kind::Date
                    | Kind::Time
                    | Kind::Timestamp
                    | Kind::Timestamptz
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: Kind) -> PgColumn {
        PgColumn {
            name: name.into(),
            kind,
            type_name: String::new(),
            not_null: false,
            nondeterministic: false,
            store_default: None,
        }
    }

    #[test]
    fn identifiers_and_literals_are_escaped() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(string_literal(r"it's \ ok").unwrap(), r"E'it''s \\ ok'");
        assert!(string_literal("nul\0").is_err());
        assert_eq!(
            literal(&Value::Float(0.1), &Kind::Float8).unwrap(),
            "'0.1'::float8"
        );
        assert_eq!(literal(&Value::Int(-5), &Kind::Int4).unwrap(), "(-5)::int8");
    }

    #[test]
    fn text_ranges_use_byte_order_and_char_n_compares_as_text() {
        let t = col("t", Kind::Text);
        let p = col("p", Kind::Bpchar);
        let mut cols = Columns::new();
        cols.insert("t", &t);
        cols.insert("p", &p);
        let f = FilterExpr::Cond(Filter::new("t", Operator::Lt, "b").unwrap());
        assert_eq!(support(&f, &cols), FilterSupport::Exact);
        let sql = render_filter(&f, &cols, &mut Literals).unwrap();
        assert_eq!(sql, "(\"t\" COLLATE \"C\" < E'b'::text)");
        let mut params = Params::default();
        let sql = render_filter(&f, &cols, &mut params).unwrap();
        assert_eq!(sql, "(\"t\" COLLATE \"C\" < $1::text)");
        // char(n): its text (trailing blanks removed, as it is read) against a text value.
        let f = FilterExpr::Cond(Filter::new("p", Operator::Eq, "b ").unwrap());
        assert_eq!(support(&f, &cols), FilterSupport::Exact);
        let sql = render_filter(&f, &cols, &mut Literals).unwrap();
        assert_eq!(sql, "((\"p\"::text) COLLATE \"C\" = E'b '::text)");
        assert!(sort_support(&[SortSpec::new("p", SortOrder::Asc)], &cols));
    }

    #[test]
    fn values_with_a_nul_byte_are_left_to_the_engine() {
        let t = col("t", Kind::Text);
        let mut cols = Columns::new();
        cols.insert("t", &t);
        for f in [
            Filter::new("t", Operator::Ne, "\0").unwrap(),
            Filter::new("t", Operator::Eq, "a\0b").unwrap(),
            Filter::new("t", Operator::Like, "%\0%").unwrap(),
            Filter::new("t", Operator::In, vec![Value::from("a"), Value::from("\0")]).unwrap(),
        ] {
            let f = FilterExpr::Cond(f);
            assert_eq!(support(&f, &cols), FilterSupport::Unsupported, "{f}");
        }
        let f = FilterExpr::Cond(Filter::new("t", Operator::Ne, "a").unwrap());
        assert_eq!(support(&f, &cols), FilterSupport::Exact);
    }

    #[test]
    fn dates_before_1_ad_are_spelled_with_bc() {
        let t = DateTime::from_timestamp(-63_000_000_000, 0).unwrap();
        assert_eq!(t.year(), -27, "chrono's astronomical year");
        assert_eq!(
            literal(&Value::DateTime(t), &Kind::Timestamptz).unwrap(),
            "'0028-08-11 08:00:00.000000+00 BC'::timestamptz"
        );
        let d = DateTime::parse_from_rfc3339("0000-03-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            literal(&Value::DateTime(d), &Kind::Date).unwrap(),
            "'0001-03-01 BC'::date"
        );
        let d = DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            literal(&Value::DateTime(d), &Kind::Timestamp).unwrap(),
            "'0001-01-01 00:00:00.000000'::timestamp"
        );
    }

    #[test]
    fn regex_subset_translates_and_the_rest_is_refused() {
        assert_eq!(translate_regex("a.b").unwrap(), "a[^\n]b");
        assert_eq!(translate_regex("^[0-9]+$").unwrap(), "^[0-9]+$");
        assert_eq!(translate_regex("x{2,3}|y\\.").unwrap(), "x{2,3}|y\\.");
        assert_eq!(translate_regex("[^a-z_-]").unwrap(), "[^a-z_\\-]");
        for p in [
            "(?i)abc",
            "\\d",
            "\\w+",
            "[[:alpha:]]",
            "[a-z&&b]",
            "a{3,1}",
            "(a",
            "a)",
        ] {
            assert!(translate_regex(p).is_none(), "{p}");
        }
    }

    #[test]
    fn float_literals_including_zero_and_nan_are_pushed() {
        let x = col("x", Kind::Float8);
        let mut cols = Columns::new();
        cols.insert("x", &x);
        for v in [0.0, -0.0, f64::NAN, 1.5] {
            let f = FilterExpr::Cond(Filter::new("x", Operator::Lt, v).unwrap());
            assert_eq!(support(&f, &cols), FilterSupport::Exact, "{v}");
        }
        let f = FilterExpr::Cond(Filter::new("x", Operator::Eq, f64::NAN).unwrap());
        assert_eq!(
            render_filter(&f, &cols, &mut Literals).unwrap(),
            "(\"x\" = 'NaN'::float8)"
        );
    }
}
