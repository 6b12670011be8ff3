//! Records ⇄ Arrow: schema inference, columns from values, values from columns.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::DateTime;
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::array::{
    AsArray, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::util::display::FormatOptions;

use super::{Field, FieldType, Record, Value};
use crate::error::{Error, Result};

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
    values_to_array_at(field, values, 0)
}

/// [`values_to_array`] for values that start at row `first_row` of what the caller builds
/// (errors name the row counted from there).
pub(crate) fn values_to_array_at<'a>(
    field: &ArrowField,
    values: impl ExactSizeIterator<Item = &'a Value>,
    first_row: usize,
) -> Result<ArrayRef> {
    let ty = canonical(field);
    let n = values.len();
    let name = field.name();
    let conv = |i: usize, v: &'a Value| -> Result<Cow<'a, Value>> {
        v.convert_ref(ty).map_err(|e| {
            Error::type_error(format!(
                "column '{name}', row {}: {}",
                first_row + i + 1,
                e.message()
            ))
        })
    };
    let array: ArrayRef = match ty {
        FieldType::Integer => {
            let mut b = Int64Builder::with_capacity(n);
            for (i, v) in values.enumerate() {
                match conv(i, v)?.as_ref() {
                    Value::Int(x) => b.append_value(*x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::Float => {
            let mut b = Float64Builder::with_capacity(n);
            for (i, v) in values.enumerate() {
                match conv(i, v)?.as_ref() {
                    Value::Float(x) => b.append_value(*x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for (i, v) in values.enumerate() {
                match conv(i, v)?.as_ref() {
                    Value::Bool(x) => b.append_value(*x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::DateTime => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n);
            for (i, v) in values.enumerate() {
                match conv(i, v)?.as_ref() {
                    Value::DateTime(d) => b.append_value(d.timestamp_micros()),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish().with_timezone("UTC"))
        }
        FieldType::Binary => {
            let mut b = BinaryBuilder::with_capacity(n, n * 8);
            for (i, v) in values.enumerate() {
                match conv(i, v)?.as_ref() {
                    Value::Binary(x) => b.append_value(x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::String | FieldType::Text | FieldType::Json => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for (i, v) in values.enumerate() {
                match conv(i, v)?.as_ref() {
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
    records_to_batch_at(records, schema, 0)
}

/// [`records_to_batch`] for records that start at row `first_row` of what the caller writes
/// (errors name the row counted from there).
pub(crate) fn records_to_batch_at(
    records: &[Record],
    schema: &SchemaRef,
    first_row: usize,
) -> Result<RecordBatch> {
    for r in records {
        for f in r.fields() {
            if schema.fields().find(&f.name).is_none() {
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
                first_row + i + 1
            )));
        }
        columns.push(values_to_array_at(field, values.into_iter(), first_row)?);
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
    // Each column's values are moved into the records, not cloned; each record's fields are
    // allocated once, at their final size.
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        columns.push((
            field.name().as_str(),
            FieldType::from_arrow(field),
            id_column == Some(field.name().as_str()),
            array_to_values(field, array)?.into_iter(),
        ));
    }
    let width = columns.len();
    let mut records = Vec::with_capacity(batch.num_rows());
    for _ in 0..batch.num_rows() {
        let mut fields = Vec::with_capacity(width);
        let mut id = None;
        for (name, ty, is_id, values) in &mut columns {
            let value = values.next().unwrap_or(Value::Null);
            if *is_id && !value.is_null() {
                id = Some(value.to_text());
            }
            fields.push(Field {
                name: (*name).to_string(),
                value,
                field_type: *ty,
                metadata: BTreeMap::new(),
                type_known: true,
            });
        }
        records.push(Record {
            fields,
            metadata: BTreeMap::new(),
            id,
        });
    }
    Ok(records)
}

/// JSON has no NaN or infinity: the JSON formats print them as the strings `"NaN"`, `"inf"`
/// and `"-inf"` (as the table format shows them), so they never look like NULL.
#[derive(Debug)]
pub struct FloatsAsText;

impl datafusion::arrow::json::writer::EncoderFactory for FloatsAsText {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a datafusion::arrow::datatypes::FieldRef,
        array: &'a dyn datafusion::arrow::array::Array,
        _options: &'a datafusion::arrow::json::writer::EncoderOptions,
    ) -> std::result::Result<
        Option<datafusion::arrow::json::writer::NullableEncoder<'a>>,
        datafusion::arrow::error::ArrowError,
    > {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
        let encoder: Box<dyn datafusion::arrow::json::writer::Encoder + 'a> =
            match array.data_type() {
                DataType::Float64 => {
                    let a = array.as_primitive::<Float64Type>();
                    Box::new(FloatText(move |i| a.value(i)))
                }
                DataType::Float32 => {
                    let a = array.as_primitive::<Float32Type>();
                    Box::new(FloatText(move |i| a.value(i)))
                }
                _ => return Ok(None),
            };
        Ok(Some(datafusion::arrow::json::writer::NullableEncoder::new(
            encoder,
            array.nulls().cloned(),
        )))
    }
}

struct FloatText<F>(F);

impl<T, F> datafusion::arrow::json::writer::Encoder for FloatText<F>
where
    T: Into<f64> + serde::Serialize,
    F: Fn(usize) -> T,
{
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let value = (self.0)(idx);
        let v: f64 = value.into();
        if v.is_finite() {
            // serde_json writes an f32 with its own shortest digits (0.1, not 0.100000001…).
            if serde_json::to_writer(&mut *out, &(self.0)(idx)).is_err() {
                out.extend_from_slice(b"null");
            }
        } else if v.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if v == f64::INFINITY {
            out.extend_from_slice(b"\"inf\"");
        } else {
            out.extend_from_slice(b"\"-inf\"");
        }
    }
}
