//! The JSON description of a collection's columns, shared by the memory backend's file
//! (`columns` of each collection) and the file backend's schema sidecar (`columns`).
//!
//! One entry per column: `{"name", "type" (the record field type, e.g. `STRING`), "arrow"
//! (the Arrow type as Arrow prints it, e.g. `Int16`), "nullable", "key"}`. `key` may be
//! absent (files written before it existed): it reads as `false`. A schema is described
//! with [`describe`] and read back with [`ColumnDesc::to_field`] / [`fields`], which keep the
//! exact Arrow type (a SMALLINT column stays `Int16`, not the field type's canonical type).

use std::str::FromStr;

use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema};
use serde::{Deserialize, Serialize};

use crate::record::FieldType;

/// One column, as stored in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ColumnDesc {
    pub name: String,
    /// The record field type's name ([`FieldType::name`]).
    #[serde(rename = "type")]
    pub field_type: String,
    /// The Arrow type, as [`DataType`]'s `Display` writes it.
    pub arrow: String,
    pub nullable: bool,
    /// Is this the collection's key column?
    #[serde(default)]
    pub key: bool,
}

impl ColumnDesc {
    /// The description of `field`.
    pub fn of(field: &ArrowField, key: bool) -> ColumnDesc {
        ColumnDesc {
            name: field.name().clone(),
            field_type: FieldType::from_arrow(field).name().to_string(),
            arrow: field.data_type().to_string(),
            nullable: field.is_nullable(),
            key,
        }
    }

    /// The Arrow field described; the error says which column has which unknown type.
    pub fn to_field(&self) -> Result<ArrowField, String> {
        let ty = FieldType::parse(&self.field_type)
            .map_err(|e| format!("column '{}': {}", self.name, e.message()))?;
        let dt = DataType::from_str(&self.arrow).map_err(|e| {
            format!(
                "column '{}': unknown Arrow type '{}': {e}",
                self.name, self.arrow
            )
        })?;
        Ok(ty
            .arrow_field(&self.name)
            .with_data_type(dt)
            .with_nullable(self.nullable))
    }
}

/// The columns of `schema`, `key` (if any) flagged.
pub(crate) fn describe(schema: &Schema, key: Option<&str>) -> Vec<ColumnDesc> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnDesc::of(f, key == Some(f.name().as_str())))
        .collect()
}

/// The Arrow fields of `columns`, in order.
pub(crate) fn fields(columns: &[ColumnDesc]) -> Result<Vec<ArrowField>, String> {
    columns.iter().map(ColumnDesc::to_field).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_round_trips_with_exact_arrow_types() {
        let schema = Schema::new(vec![
            FieldType::String.arrow_field("id").with_nullable(false),
            FieldType::Integer
                .arrow_field("small")
                .with_data_type(DataType::Int16),
            FieldType::Json.arrow_field("j"),
            FieldType::DateTime.arrow_field("d"),
            FieldType::Float
                .arrow_field("dec")
                .with_data_type(DataType::Decimal128(10, 2)),
        ]);
        let desc = describe(&schema, Some("id"));
        assert_eq!(
            desc.iter().map(|c| c.key).collect::<Vec<_>>(),
            [true, false, false, false, false]
        );
        let json = serde_json::to_string(&desc).unwrap();
        let back: Vec<ColumnDesc> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, desc);
        let again = Schema::new(fields(&back).unwrap());
        assert_eq!(again, schema);
    }

    #[test]
    fn files_written_before_the_key_flag_still_read() {
        // The memory backend's file had no `key` per column.
        let old = r#"{"name":"n","type":"INTEGER","arrow":"Int64","nullable":true}"#;
        let c: ColumnDesc = serde_json::from_str(old).unwrap();
        assert!(!c.key);
        assert_eq!(c.to_field().unwrap(), FieldType::Integer.arrow_field("n"));
    }

    #[test]
    fn unknown_types_name_the_column() {
        let mut c = ColumnDesc::of(&FieldType::Integer.arrow_field("n"), false);
        c.arrow = "Nonsense".into();
        assert!(c.to_field().unwrap_err().contains("column 'n'"));
        c.field_type = "WHATEVER".into();
        assert!(c.to_field().unwrap_err().contains("column 'n'"));
    }
}
