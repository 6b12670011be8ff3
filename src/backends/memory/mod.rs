//! The in-memory backend: collections of Arrow chunks (see [`crate::store::chunks`]), safe for concurrent
//! use, with optional persistence to one JSON file.
//!
//! Filters are evaluated with DataFusion's own physical expressions
//! ([`crate::pushdown::eval`]), so every filter the query model can express is pushed
//! `Exact`: results are identical to DataFusion's by construction.
//!
//! URL: `memory://` (nothing kept) or `memory:///path/to/file.json` (loaded at attach, saved
//! after each SQL statement and by [`MemoryBackend::save`]).

mod persist;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use std::future::Future;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use parking_lot::RwLock;

use crate::database::{Backend, CollectionSpec, Database};
use crate::error::{Error, Result};
use crate::record::FieldType;
use crate::store::chunks::{Chunk, State};
use crate::store::collection::{ChunkCollection, StateAccess};

const KIND: &str = "memory";

/// One in-memory collection: the shared [`ChunkCollection`] over an in-process lock.
pub type MemoryCollection = ChunkCollection<MemoryState>;

/// The state of an in-memory collection behind a read-write lock.
#[derive(Debug)]
pub struct MemoryState {
    state: RwLock<State>,
}

impl MemoryCollection {
    fn in_memory(name: &str, schema: SchemaRef, key: Option<usize>) -> Self {
        ChunkCollection::new(
            name,
            MemoryState {
                state: RwLock::new(State::new(schema, key)),
            },
        )
    }
}

impl MemoryState {
    /// A consistent snapshot for a scan: schema and chunk list (the tail flushed first).
    fn snapshot_now(&self) -> (SchemaRef, Vec<Arc<Chunk>>) {
        {
            let s = self.state.read();
            if !s.has_pending() {
                return (s.schema.clone(), s.chunks.clone());
            }
        }
        // Flush and copy under one lock: a write between the two would leave a row in
        // neither the chunks copied nor the buffer flushed.
        let mut s = self.state.write();
        s.flush();
        (s.schema.clone(), s.chunks.clone())
    }
}

impl StateAccess for MemoryState {
    const KIND: &'static str = KIND;

    fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&State) -> Result<T> + Send + 'static,
    {
        std::future::ready(f(&self.state.read()))
    }

    fn write<T, F>(&self, _dirty_on_error: bool, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut State) -> Result<(T, bool)> + Send + 'static,
    {
        // Every change bumps the state's version itself; nothing to write here.
        std::future::ready(f(&mut self.state.write()).map(|(out, _)| out))
    }

    fn snapshot(&self) -> impl Future<Output = Result<(SchemaRef, Vec<Arc<Chunk>>)>> + Send {
        std::future::ready(Ok(self.snapshot_now()))
    }

    fn peek<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.read())
    }

    fn scan_label(&self) -> String {
        KIND.to_string()
    }
}

/// An in-memory store of collections, grouped in schemas (`public` by default).
#[derive(Debug, Default)]
pub struct MemoryBackend {
    collections: RwLock<BTreeMap<(String, String), Arc<MemoryCollection>>>,
    path: Option<PathBuf>,
    /// What the file holds: each collection's name and version at the last save or load.
    saved: parking_lot::Mutex<Vec<((String, String), u64)>>,
}

impl MemoryBackend {
    /// An empty backend that keeps nothing on disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend persisted to a JSON file: loaded now if it exists, saved by [`Self::save`].
    pub fn with_file(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let backend = MemoryBackend {
            collections: RwLock::new(BTreeMap::new()),
            path: Some(path.clone()),
            saved: Default::default(),
        };
        if path.exists() {
            persist::load(&backend, &path)?;
            *backend.saved.lock() = backend.versions();
        }
        Ok(backend)
    }

    /// The collection `name` in the default schema, created (keyed by `id`) if missing: the
    /// record API's entry point.
    pub fn collection(&self, name: &str) -> Result<Arc<dyn Database>> {
        self.collection_in("public", name)
    }

    /// Like [`Self::collection`] in a given schema.
    pub fn collection_in(&self, schema: &str, name: &str) -> Result<Arc<dyn Database>> {
        check_name(name)?;
        let mut map = self.collections.write();
        let key = (schema.to_string(), name.to_string());
        let c = map.entry(key).or_insert_with(|| {
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
                FieldType::String.arrow_field("id").with_nullable(false),
            ]));
            Arc::new(MemoryCollection::in_memory(name, schema, Some(0)))
        });
        Ok(c.clone())
    }

    /// Writes all collections to the backend's file (atomically); a no-op without a file.
    pub fn save(&self) -> Result<()> {
        let Some(p) = &self.path else {
            return Ok(());
        };
        let versions = self.versions();
        let mut saved = self.saved.lock();
        if *saved == versions && p.exists() {
            return Ok(());
        }
        persist::save(self, p)?;
        *saved = versions;
        Ok(())
    }

    fn versions(&self) -> Vec<((String, String), u64)> {
        self.collections
            .read()
            .iter()
            .map(|(k, c)| (k.clone(), c.access.state.read().version))
            .collect()
    }

    fn insert_collection(&self, schema: &str, name: &str, c: MemoryCollection) {
        self.collections
            .write()
            .insert((schema.to_string(), name.to_string()), Arc::new(c));
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::query("a collection name cannot be empty").with_backend(KIND));
    }
    Ok(())
}

#[async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> &str {
        KIND
    }

    fn location(&self) -> String {
        match &self.path {
            Some(p) => format!("memory://{}", p.display()),
            None => "memory://".to_string(),
        }
    }

    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .collections
            .read()
            .keys()
            .map(|(s, _)| s.clone())
            .collect();
        names.push("public".to_string());
        names.sort();
        names.dedup();
        names
    }

    fn collection_names(&self, schema: &str) -> Vec<String> {
        self.collections
            .read()
            .keys()
            .filter(|(s, _)| s == schema)
            .map(|(_, n)| n.clone())
            .collect()
    }

    async fn open(&self, schema: &str, name: &str) -> Result<Option<Arc<dyn Database>>> {
        Ok(self
            .collections
            .read()
            .get(&(schema.to_string(), name.to_string()))
            .map(|c| c.clone() as Arc<dyn Database>))
    }

    async fn create_collection(
        &self,
        schema: &str,
        name: &str,
        spec: CollectionSpec,
        if_not_exists: bool,
    ) -> Result<Arc<dyn Database>> {
        check_name(name)?;
        let key = match &spec.key {
            Some(k) => Some(spec.schema.index_of(k).map_err(|_| {
                Error::query(format!("key column '{k}' is not a column of '{name}'"))
                    .with_backend(KIND)
            })?),
            None => None,
        };
        let mut map = self.collections.write();
        let k = (schema.to_string(), name.to_string());
        if let Some(existing) = map.get(&k) {
            if if_not_exists {
                return Ok(existing.clone());
            }
            return Err(
                Error::already_exists(format!("table '{schema}.{name}' already exists"))
                    .with_backend(KIND),
            );
        }
        let c = Arc::new(MemoryCollection::in_memory(name, spec.schema, key));
        map.insert(k, c.clone());
        Ok(c)
    }

    async fn drop_collection(&self, schema: &str, name: &str, if_exists: bool) -> Result<bool> {
        let removed = self
            .collections
            .write()
            .remove(&(schema.to_string(), name.to_string()));
        match removed {
            Some(_) => Ok(true),
            None => crate::database::drop_missing(KIND, &format!("{schema}.{name}"), "", if_exists),
        }
    }

    async fn sync(&self) -> Result<()> {
        self.save()
    }
}

impl Drop for MemoryBackend {
    fn drop(&mut self) {
        if let Err(e) = self.save() {
            tracing::error!("memory backend: saving on close failed: {e}");
        }
    }
}
