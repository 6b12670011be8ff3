//! Persistence of a memory backend to one JSON file, written atomically
//! ([`crate::store::atomic`]: temporary file in the same directory, fsync, rename), so a crash
//! leaves the previous file intact.
//!
//! Layout: `{"version":1,"collections":[{"schema","name","key","columns":[…],"ids":[…],
//! "rows":[[…],…]}]}`, the columns as [`crate::store::columns`] describes them. Values use
//! [`Value::to_json`]; the column's field type reads them back losslessly.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::array_value_to_string;
use serde::{Deserialize, Serialize};

use super::{MemoryBackend, MemoryCollection};
use crate::error::{Error, Result};
use crate::record::{FieldType, Value, batch_to_records, values_to_array};
use crate::store::atomic::write_atomically;
use crate::store::columns::{self, ColumnDesc};

#[derive(Serialize, Deserialize)]
struct FileImage {
    version: u32,
    collections: Vec<CollectionImage>,
}

#[derive(Serialize, Deserialize)]
struct CollectionImage {
    schema: String,
    name: String,
    key: Option<String>,
    columns: Vec<ColumnDesc>,
    ids: Vec<String>,
    rows: Vec<Vec<serde_json::Value>>,
}

pub(super) fn save(backend: &MemoryBackend, path: &Path) -> Result<()> {
    let snapshot: Vec<_> = backend
        .collections
        .read()
        .iter()
        .map(|((s, n), c)| (s.clone(), n.clone(), c.clone()))
        .collect();
    let mut image = FileImage {
        version: 1,
        collections: Vec::new(),
    };
    for (schema_name, name, c) in snapshot {
        let (schema, chunks) = c.access.snapshot_now();
        let key = c.access.state.read().key_name();
        let mut ids = Vec::new();
        let mut rows = Vec::new();
        for chunk in chunks {
            let all: Vec<usize> = (0..schema.fields().len()).collect();
            let batch = crate::store::chunks::scan_chunk(
                &schema,
                &chunk,
                0,
                chunk.batch.num_rows(),
                None,
                &all,
            )?;
            ids.extend(chunk.live_ids().cloned());
            // Decimals are written as their exact text (a record value would go through f64).
            let decimals: Vec<Option<Vec<serde_json::Value>>> = batch
                .columns()
                .iter()
                .map(|a| {
                    is_decimal(a.data_type())
                        .then(|| decimal_texts(a))
                        .transpose()
                })
                .collect::<Result<_>>()?;
            for (row, r) in batch_to_records(&batch, None)?.into_iter().enumerate() {
                rows.push(
                    r.fields()
                        .iter()
                        .enumerate()
                        .map(|(i, f)| match decimals.get(i) {
                            Some(Some(texts)) => texts[row].clone(),
                            _ => f.value.to_json(),
                        })
                        .collect(),
                );
            }
        }
        image.collections.push(CollectionImage {
            schema: schema_name,
            name,
            columns: columns::describe(&schema, key.as_deref()),
            key,
            ids,
            rows,
        });
    }
    let json = serde_json::to_vec(&image)
        .map_err(|e| Error::internal(format!("serializing memory backend: {e}")))?;
    write_atomically(path, &json)
}

pub(super) fn load(backend: &MemoryBackend, path: &Path) -> Result<()> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let image: FileImage = serde_json::from_slice(&bytes).map_err(|e| {
        Error::config(format!(
            "{} is not a dataknobs memory file: {e}",
            path.display()
        ))
    })?;
    for c in image.collections {
        let bad =
            |m: String| Error::config(format!("{}: collection '{}': {m}", path.display(), c.name));
        let schema = Arc::new(Schema::new(columns::fields(&c.columns).map_err(bad)?));
        let key = match &c.key {
            Some(k) => Some(
                schema
                    .index_of(k)
                    .map_err(|_| bad(format!("key column '{k}' missing")))?,
            ),
            None => None,
        };
        let mut columns = Vec::with_capacity(schema.fields().len());
        for (i, f) in schema.fields().iter().enumerate() {
            if is_decimal(f.data_type()) {
                columns.push(decimals_from_json(f, &c.rows, i).map_err(|e| bad(e.to_string()))?);
                continue;
            }
            let ty = FieldType::from_arrow(f);
            let values = c
                .rows
                .iter()
                .map(|r| Value::from_typed_json(r.get(i).unwrap_or(&serde_json::Value::Null), ty))
                .collect::<Result<Vec<_>>>()
                .map_err(|e| bad(e.to_string()))?;
            columns.push(values_to_array(f, values.iter())?);
        }
        let batch = datafusion::arrow::record_batch::RecordBatch::try_new_with_options(
            schema.clone(),
            columns,
            &datafusion::arrow::record_batch::RecordBatchOptions::new()
                .with_row_count(Some(c.rows.len())),
        )?;
        let coll = MemoryCollection::in_memory(&c.name, schema, key);
        {
            let mut s = coll.access.state.write();
            s.insert_loaded(batch, c.ids)
                .map_err(|e| bad(e.to_string()))?;
        }
        backend.insert_collection(&c.schema, &c.name, coll);
    }
    Ok(())
}

fn is_decimal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}

/// Every value of a decimal column as its exact text (null as JSON null).
fn decimal_texts(a: &ArrayRef) -> Result<Vec<serde_json::Value>> {
    (0..a.len())
        .map(|i| {
            Ok(if a.is_null(i) {
                serde_json::Value::Null
            } else {
                serde_json::Value::String(array_value_to_string(a, i)?)
            })
        })
        .collect()
}

/// Column `i` of `rows` as the decimal column `f`: exact text (this layout) or a JSON number
/// (files written before decimals were kept as text).
fn decimals_from_json(f: &Field, rows: &[Vec<serde_json::Value>], i: usize) -> Result<ArrayRef> {
    let texts: Vec<Option<String>> = rows
        .iter()
        .map(|r| match r.get(i) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(Error::config(format!(
                "column '{}': {other} is not a decimal",
                f.name()
            ))),
        })
        .collect::<Result<_>>()?;
    let text: ArrayRef = Arc::new(StringArray::from(texts));
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(&text, f.data_type(), &options).map_err(|e| {
        Error::config(format!(
            "column '{}': a value is not a {}: {e}",
            f.name(),
            f.data_type()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::Backend;

    #[tokio::test]
    async fn a_file_in_the_layout_before_the_shared_column_description_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.json");
        // Written by the code before `key` was recorded per column.
        let old = r#"{"version":1,"collections":[{"schema":"public","name":"t","key":"id",
            "columns":[{"name":"id","type":"STRING","arrow":"Utf8","nullable":false},
                       {"name":"n","type":"INTEGER","arrow":"Int16","nullable":true}],
            "ids":["a","b"],"rows":[["a",1],["b",null]]}]}"#;
        std::fs::write(&path, old).unwrap();
        let backend = MemoryBackend::with_file(&path).unwrap();
        let db = backend.open("public", "t").await.unwrap().unwrap();
        assert_eq!(db.key_column().as_deref(), Some("id"));
        let n = db.schema().field_with_name("n").unwrap().clone();
        assert_eq!(
            n.data_type(),
            &datafusion::arrow::datatypes::DataType::Int16
        );
        let a = db.read("a").await.unwrap().unwrap();
        assert_eq!(a.get("n"), Some(&Value::Int(1)));
        assert_eq!(db.count(None).await.unwrap(), 2);
        // Saved again in the current layout, it loads the same.
        std::fs::remove_file(&path).unwrap();
        backend.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""key":true"#), "{text}");
        drop(backend);
        let again = MemoryBackend::with_file(&path).unwrap();
        let db = again.open("public", "t").await.unwrap().unwrap();
        assert_eq!(db.count(None).await.unwrap(), 2);
        assert_eq!(db.key_column().as_deref(), Some("id"));
    }
}
