//! Persistence of a memory backend to one JSON file, written atomically
//! ([`crate::store::atomic`]: temporary file in the same directory, fsync, rename), so a crash
//! leaves the previous file intact.
//!
//! Layout: `{"version":1,"collections":[{"schema","name","key","columns":[{"name","type",
//! "arrow","nullable"}],"rows":[[…],…]}]}`. Values use [`Value::to_json`]; the column's field
//! type reads them back losslessly.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use serde::{Deserialize, Serialize};

use super::{MemoryBackend, MemoryCollection};
use crate::error::{Error, Result};
use crate::record::{FieldType, Value, batch_to_records, values_to_array};
use crate::store::atomic::write_atomically;

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
    columns: Vec<ColumnImage>,
    ids: Vec<String>,
    rows: Vec<Vec<serde_json::Value>>,
}

#[derive(Serialize, Deserialize)]
struct ColumnImage {
    name: String,
    #[serde(rename = "type")]
    field_type: String,
    arrow: String,
    nullable: bool,
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
        let (schema, chunks) = c.snapshot();
        let key = c.state.read().key_name();
        let mut ids = Vec::new();
        let mut rows = Vec::new();
        for chunk in chunks {
            let all: Vec<usize> = (0..schema.fields().len()).collect();
            let batch =
                super::store::scan_chunk(&schema, &chunk, 0, chunk.batch.num_rows(), None, &all)?;
            if let Some(k) = &chunk.keep {
                ids.extend(
                    chunk
                        .ids
                        .iter()
                        .zip(k.values().iter())
                        .filter(|(_, keep)| *keep)
                        .map(|(id, _)| id.clone()),
                );
            } else {
                ids.extend(chunk.ids.iter().cloned());
            }
            for r in batch_to_records(&batch, None)? {
                rows.push(r.fields().iter().map(|f| f.value.to_json()).collect());
            }
        }
        image.collections.push(CollectionImage {
            schema: schema_name,
            name,
            key,
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnImage {
                    name: f.name().clone(),
                    field_type: FieldType::from_arrow(f).name().to_string(),
                    arrow: f.data_type().to_string(),
                    nullable: f.is_nullable(),
                })
                .collect(),
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
        let mut fields = Vec::new();
        for col in &c.columns {
            let ty = FieldType::parse(&col.field_type).map_err(|e| bad(e.to_string()))?;
            let dt = DataType::from_str(&col.arrow).map_err(|e| bad(e.to_string()))?;
            let f = ty
                .arrow_field(&col.name)
                .with_data_type(dt)
                .with_nullable(col.nullable);
            fields.push(f);
        }
        let schema = Arc::new(Schema::new(fields));
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
        let coll = MemoryCollection::new(&c.name, schema, key);
        {
            let mut s = coll.state.write();
            s.insert_loaded(batch, c.ids)
                .map_err(|e| bad(e.to_string()))?;
        }
        backend.insert_collection(&c.schema, &c.name, coll);
    }
    Ok(())
}
