//! Persistence of a memory backend to one JSON file, written atomically
//! ([`crate::store::atomic`]: temporary file in the same directory, fsync, rename), so a crash
//! leaves the previous file intact.
//!
//! Layout: `{"version":1,"collections":[{"schema","name","key","columns":[…],"ids":[…],
//! "rows":[[…],…]}]}`, the columns as [`crate::store::columns`] describes them. Values use
//! [`Value::to_json`]; the column's field type reads them back losslessly.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
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
            for r in batch_to_records(&batch, None)? {
                rows.push(r.fields().iter().map(|f| f.value.to_json()).collect());
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
