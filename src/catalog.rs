//! DataFusion catalogs over attached backends.
//!
//! Each attached backend `name` is a catalog `name` whose schemas are the backend's schemas
//! (`name.schema.table`). The engine's default catalog, `dataknobs`, has one schema per
//! attached backend pointing at that backend's default schema (so `name.table` works) and the
//! schema `public`, which is the default backend's default schema (so a bare `table` works).
//! Session objects that are not backend collections (views, external tables) are kept in a
//! per-schema overlay.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::Result as DfResult;
use parking_lot::RwLock;

use crate::database::Backend;
use crate::error::Error;
use crate::table::{DatabaseTable, Location};

/// One schema of one attached backend.
#[derive(Debug)]
pub struct BackendSchema {
    attached: String,
    schema: String,
    backend: Arc<dyn Backend>,
    overlay: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
}

impl BackendSchema {
    pub fn new(attached: &str, schema: &str, backend: Arc<dyn Backend>) -> Self {
        BackendSchema {
            attached: attached.to_string(),
            schema: schema.to_string(),
            backend,
            overlay: RwLock::new(HashMap::new()),
        }
    }

    /// The attached name, schema name and backend.
    pub fn target(&self) -> (&str, &str, &Arc<dyn Backend>) {
        (&self.attached, &self.schema, &self.backend)
    }

    /// Is `name` a session object (view, external table) rather than a collection?
    pub fn has_overlay(&self, name: &str) -> bool {
        self.overlay.read().contains_key(name)
    }
}

#[async_trait]
impl SchemaProvider for BackendSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.backend.collection_names(&self.schema);
        names.extend(self.overlay.read().keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self.overlay.read().get(name) {
            return Ok(Some(t.clone()));
        }
        let location = Location {
            attached: self.attached.clone(),
            schema: self.schema.clone(),
            collection: name.to_string(),
        };
        if let Some(t) = self
            .backend
            .sql_table(&self.schema, name, location.clone())
            .await?
        {
            return Ok(Some(t));
        }
        let db = self.backend.open(&self.schema, name).await?;
        Ok(db.map(|db| Arc::new(DatabaseTable::new(db, location)) as Arc<dyn TableProvider>))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if self.backend.collection_names(&self.schema).contains(&name) {
            return Err(Error::already_exists(format!(
                "'{}.{}.{name}' is a table of the backend already",
                self.attached, self.schema
            ))
            .into());
        }
        Ok(self.overlay.write().insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.overlay.write().remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.overlay.read().contains_key(name)
            || self
                .backend
                .collection_names(&self.schema)
                .iter()
                .any(|n| n == name)
    }
}

/// An attached backend as a catalog.
#[derive(Debug)]
pub struct BackendCatalog {
    attached: String,
    backend: Arc<dyn Backend>,
    schemas: RwLock<HashMap<String, Arc<BackendSchema>>>,
}

impl BackendCatalog {
    pub fn new(attached: &str, backend: Arc<dyn Backend>) -> Self {
        BackendCatalog {
            attached: attached.to_string(),
            backend,
            schemas: RwLock::new(HashMap::new()),
        }
    }

    /// The schema provider for `name` (made on first use, then shared so overlays persist).
    pub fn backend_schema(&self, name: &str) -> Arc<BackendSchema> {
        self.schemas
            .write()
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(BackendSchema::new(
                    &self.attached,
                    name,
                    self.backend.clone(),
                ))
            })
            .clone()
    }
}

impl CatalogProvider for BackendCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.backend.schema_names();
        names.extend(self.schemas.read().keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        Some(self.backend_schema(name) as Arc<dyn SchemaProvider>)
    }
}

/// The default catalog: `public` plus one alias schema per attached backend.
#[derive(Debug, Default)]
pub struct RootCatalog {
    schemas: RwLock<HashMap<String, Arc<BackendSchema>>>,
}

impl RootCatalog {
    pub fn set(&self, name: &str, schema: Arc<BackendSchema>) {
        self.schemas.write().insert(name.to_string(), schema);
    }

    pub fn remove(&self, name: &str) {
        self.schemas.write().remove(name);
    }

    pub fn get(&self, name: &str) -> Option<Arc<BackendSchema>> {
        self.schemas.read().get(name).cloned()
    }
}

impl CatalogProvider for RootCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.schemas.read().keys().cloned().collect();
        v.sort();
        v
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.get(name).map(|s| s as Arc<dyn SchemaProvider>)
    }
}
