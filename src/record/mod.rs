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
//!
//! Files: `value.rs` (the field types and values), `arrow.rs` (records ⇄ Arrow batches); the
//! [`Field`] and [`Record`] types live here.

mod arrow;
mod json;
mod value;

pub use arrow::*;
pub use json::*;
pub use value::*;

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// A new record id: a random UUID (version 4) in its hyphenated form, as the seed makes them.
/// The random bytes come from the operating system's source, read 4 KiB at a time per
/// thread: one system call per 256 ids instead of one per id.
pub fn new_record_id() -> String {
    use std::cell::RefCell;
    const POOL: usize = 4096;
    thread_local! {
        static RANDOM: RefCell<(Box<[u8; POOL]>, usize)> = RefCell::new((Box::new([0; POOL]), POOL));
    }
    let bytes = RANDOM.with(|r| {
        let (buf, used) = &mut *r.borrow_mut();
        if *used + 16 > POOL {
            getrandom::fill(&mut buf[..]).ok()?;
            *used = 0;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&buf[*used..*used + 16]);
        // Never hand out the same bytes twice.
        buf[*used..*used + 16].fill(0);
        *used += 16;
        Some(b)
    });
    let id = match bytes {
        Some(b) => uuid::Builder::from_random_bytes(b).into_uuid(),
        None => uuid::Uuid::new_v4(),
    };
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_string()
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

impl Field {
    /// Marks the field as of type `ty` (its value already converted to it).
    pub(crate) fn set_type(&mut self, ty: FieldType) {
        self.field_type = ty;
        self.type_known = true;
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

    /// The fields, to change in place (a store converting values to its column types).
    pub(crate) fn fields_mut(&mut self) -> &mut [Field] {
        &mut self.fields
    }

    /// Keeps only the fields `keep` accepts.
    pub(crate) fn retain_fields(&mut self, keep: impl FnMut(&Field) -> bool) {
        self.fields.retain(keep);
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema};
    use std::sync::Arc;

    #[test]
    fn record_ids_are_distinct_version_4_uuids() {
        // More than one 4 KiB block of random bytes, so the refill is exercised too.
        let ids: Vec<String> = (0..1000).map(|_| new_record_id()).collect();
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id, &u.hyphenated().to_string());
        }
    }

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
