//! Single-object tables with the whole record API and SQL DML: [`ObjectDatabase`] keeps one
//! data object (`prefix/t.parquet`, `.csv`, `.tsv`, `.json`, `.ndjson`) as the shared chunk
//! store's collection state ([`crate::store::collection`]), like the file backend keeps one
//! local file, with the file backend's formats, key rules and (for the text formats) schema
//! sidecar, stored beside it as `prefix/_dataknobs/<object name>.schema.json`.
//!
//! Every operation first makes sure the state is the object's current version: a GET with
//! `If-None-Match: <ETag>` (one request; `304 Not Modified` when nothing changed, else the new
//! bytes). A change is encoded into the whole object again and written with a conditional PUT
//! (`If-Match: <ETag>` of the version it was computed from; `If-None-Match: *` for a new
//! table), so the object is replaced atomically and a concurrent writer's change is never
//! overwritten: the loser gets a conflict error, nothing of its change is written, and the
//! next operation reads the winner's version. Operations through one handle run one at a
//! time.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use object_store::path::Path as StorePath;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStoreExt, PutMode, PutOptions,
    UpdateVersion,
};
use parking_lot::Mutex;

use super::{BACKEND, Bucket};
use crate::backends::file::format::{Compression, Format};
use crate::backends::file::records::{
    KEY_METADATA, decode_state, encode_state, new_state, plain_types,
};
use crate::error::{Error, ErrorKind, Result};
use crate::store::chunks::{Chunk, State};
use crate::store::collection::{ChunkCollection, StateAccess};

/// One table stored in one object, with the whole record API (see the module documentation).
pub(super) type ObjectDatabase = ChunkCollection<ObjectAccess>;

/// The key of the schema sidecar of the text object at `key`:
/// `<dir>/_dataknobs/<name>.schema.json` (a name no table listing takes for a table).
pub(super) fn sidecar_key(key: &str) -> String {
    let (dir, name) = match key.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), key),
    };
    format!("{dir}_dataknobs/{name}.schema.json")
}

/// How an [`ObjectDatabase`] reaches its state. Cheap to clone (clones share the state).
#[derive(Clone)]
pub(super) struct ObjectAccess {
    shared: Arc<Shared>,
}

struct Shared {
    b: Arc<Bucket>,
    table: String,
    key: StorePath,
    sidecar: Option<StorePath>,
    format: Format,
    compression: Compression,
    /// `s3://bucket/key`, naming the object in errors.
    label: PathBuf,
    /// One operation at a time (held across the requests of an operation).
    op: tokio::sync::Mutex<()>,
    inner: Mutex<Inner>,
}

struct Inner {
    state: State,
    /// The ETag of the object version `state` was loaded from or written as; None: load it
    /// again before the next use.
    etag: Option<String>,
}

impl fmt::Debug for ObjectAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectAccess")
            .field("object", &self.shared.label)
            .field("format", &self.shared.format)
            .finish()
    }
}

impl ObjectAccess {
    fn new(
        b: Arc<Bucket>,
        table: &str,
        key: &str,
        format: Format,
        compression: Compression,
        state: State,
    ) -> ObjectAccess {
        let label = PathBuf::from(b.url_of(key));
        ObjectAccess {
            shared: Arc::new(Shared {
                table: table.to_string(),
                key: StorePath::from(key),
                sidecar: (format != Format::Parquet).then(|| StorePath::from(sidecar_key(key))),
                format,
                compression,
                label,
                b,
                op: tokio::sync::Mutex::new(()),
                inner: Mutex::new(Inner { state, etag: None }),
            }),
        }
    }
}

/// Opens the table stored in the object `key` (loaded now, so a bad object is reported here).
pub(super) async fn open(
    b: Arc<Bucket>,
    table: &str,
    key: &str,
    format: Format,
    compression: Compression,
) -> Result<ObjectDatabase> {
    // Replaced by the object's content before `open` returns.
    let empty = State::new(Arc::new(Schema::empty()), None);
    let access = ObjectAccess::new(b, table, key, format, compression, empty);
    {
        let _op = access.shared.op.lock().await;
        access.shared.refresh().await?;
    }
    Ok(ChunkCollection::new(table, access))
}

/// The table stored in the object `key`, loaded at its first operation; until then its
/// columns are `schema` (the listing's, read from the object's footer or inferred) and its
/// key the one Parquet metadata names. For SQL over big objects that statements mostly read.
pub(super) fn lazy(
    b: Arc<Bucket>,
    table: &str,
    key: &str,
    format: Format,
    compression: Compression,
    schema: &SchemaRef,
) -> ObjectDatabase {
    let schema = plain_types(schema);
    let key_column = schema
        .metadata()
        .get(KEY_METADATA)
        .filter(|k| !k.is_empty())
        .cloned();
    let label = PathBuf::from(b.url_of(key));
    let state = new_state(&label, schema, key_column.as_deref())
        .unwrap_or_else(|_| State::new(Arc::new(Schema::empty()), None));
    ChunkCollection::new(
        table,
        ObjectAccess::new(b, table, key, format, compression, state),
    )
}

/// Does the text object at `key` have a schema sidecar (was it written here)?
pub(super) async fn has_sidecar(b: &Bucket, key: &str) -> Result<bool> {
    let at = StorePath::from(sidecar_key(key));
    match b.store.head(&at).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(b.connection_error(format!("cannot read {}", b.url_of(at.as_ref())), e)),
    }
}

/// Creates the table `table` as a new object `key` holding no rows (`If-None-Match: *`: an
/// object already there is an error, and is left as it is).
pub(super) async fn create(
    b: Arc<Bucket>,
    table: &str,
    key: &str,
    format: Format,
    compression: Compression,
    schema: SchemaRef,
    key_column: Option<&str>,
) -> Result<ObjectDatabase> {
    let label = PathBuf::from(b.url_of(key));
    let state =
        new_state(&label, plain_types(&schema), key_column).map_err(|e| e.with_backend(BACKEND))?;
    let access = ObjectAccess::new(b, table, key, format, compression, state);
    {
        let _op = access.shared.op.lock().await;
        access.shared.save(true).await?;
    }
    Ok(ChunkCollection::new(table, access))
}

impl Shared {
    fn err(&self, e: Error) -> Error {
        e.with_backend(BACKEND)
    }

    fn shown(&self) -> String {
        self.label.display().to_string()
    }

    /// Makes the state the object's current version (see the module documentation).
    async fn refresh(&self) -> Result<()> {
        let known = self.inner.lock().etag.clone();
        let options = GetOptions {
            if_none_match: known.clone(),
            ..Default::default()
        };
        let got = match self.b.store.get_opts(&self.key, options).await {
            Ok(got) => got,
            Err(object_store::Error::NotModified { .. }) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {
                self.inner.lock().etag = None;
                return Err(self.err(Error::not_found(format!(
                    "table '{}': its object {} is gone (dropped by another session?)",
                    self.table,
                    self.shown()
                ))));
            }
            Err(e) => {
                return Err(self
                    .b
                    .connection_error(format!("cannot read {}", self.shown()), e));
            }
        };
        let etag = got.meta.e_tag.clone();
        if etag.is_some() && etag == known {
            // A server that ignores If-None-Match on GET: the same version again.
            return Ok(());
        }
        let bytes = got.bytes().await.map_err(|e| {
            self.b
                .connection_error(format!("cannot read {}", self.shown()), e)
        })?;
        let sidecar = match &self.sidecar {
            Some(at) => match self.b.store.get(at).await {
                Ok(got) => Some(got.bytes().await.map_err(|e| {
                    self.b
                        .connection_error(format!("cannot read {}", self.b.url_of(at.as_ref())), e)
                })?),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => {
                    return Err(self.b.connection_error(
                        format!("cannot read {}", self.b.url_of(at.as_ref())),
                        e,
                    ));
                }
            },
            None => None,
        };
        let (label, format, compression) = (self.label.clone(), self.format, self.compression);
        let sidecar_shown = self
            .sidecar
            .as_ref()
            .map(|s| self.b.url_of(s.as_ref()))
            .unwrap_or_default();
        let state = tokio::task::spawn_blocking(move || {
            decode_state(
                &label,
                format,
                compression,
                bytes,
                sidecar.as_deref(),
                &sidecar_shown,
            )
        })
        .await
        .map_err(|e| Error::internal(format!("decoding an S3 object failed: {e}")))?
        .map_err(|e| self.err(e))?;
        let mut inner = self.inner.lock();
        inner.state = state;
        inner.etag = etag;
        Ok(())
    }

    /// Writes the state as the object's new version: conditional on the version it was
    /// computed from (`new`: on there being none). Any failure leaves the state to be loaded
    /// again.
    async fn save(&self, new: bool) -> Result<()> {
        let (data, sidecar, etag) = {
            let mut inner = self.inner.lock();
            let etag = inner.etag.take();
            let (data, sidecar) = encode_state(
                self.format,
                self.compression,
                &mut inner.state,
                &crate::backends::file::records::TextStyle::dataknobs(),
            )
            .map_err(|e| {
                self.err(Error::new(
                    e.kind(),
                    format!("{}: cannot write: {}", self.shown(), e.message()),
                ))
            })?;
            (data, sidecar, etag)
        };
        let mode = match (new, etag) {
            (true, _) => PutMode::Create,
            (false, Some(e_tag)) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag),
                version: None,
            }),
            (false, None) => {
                return Err(self.err(Error::internal(format!(
                    "{}: no version to write over (the state was not loaded)",
                    self.shown()
                ))));
            }
        };
        let options = PutOptions {
            mode,
            attributes: Attributes::from_iter([(
                Attribute::ContentType,
                AttributeValue::from(super::dataset::content_type(self.format)),
            )]),
            ..Default::default()
        };
        let put = self.b.store.put_opts(&self.key, data.into(), options).await;
        let written = match put {
            Ok(r) => r,
            Err(object_store::Error::AlreadyExists { .. }) if new => {
                return Err(self.err(Error::already_exists(format!(
                    "table '{}' exists: {}",
                    self.table,
                    self.shown()
                ))));
            }
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => {
                return Err(self.err(Error::new(
                    ErrorKind::Query,
                    format!(
                        "table '{}': {} was changed by another writer while this statement \
                         ran; nothing of it was written (run it again)",
                        self.table,
                        self.shown()
                    ),
                )));
            }
            Err(e) => {
                return Err(self.b.connection_error(
                    format!(
                        "writing {} (the table is as it was before this statement)",
                        self.shown()
                    ),
                    e,
                ));
            }
        };
        if let Some(json) = sidecar
            && let Some(at) = &self.sidecar
        {
            self.b.store.put(at, json.into()).await.map_err(|e| {
                self.b.connection_error(
                    format!(
                        "{} was saved, but its schema file {} could not be",
                        self.shown(),
                        self.b.url_of(at.as_ref())
                    ),
                    e,
                )
            })?;
        }
        // Without an ETag in the answer the next operation loads the object again.
        self.inner.lock().etag = written.e_tag;
        Ok(())
    }
}

impl StateAccess for ObjectAccess {
    const KIND: &'static str = BACKEND;

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&State) -> Result<T> + Send + 'static,
    {
        let sh = &self.shared;
        let _op = sh.op.lock().await;
        sh.refresh().await?;
        let inner = sh.inner.lock();
        f(&inner.state)
    }

    async fn write<T, F>(&self, dirty_on_error: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut State) -> Result<(T, bool)> + Send + 'static,
    {
        let sh = &self.shared;
        let _op = sh.op.lock().await;
        sh.refresh().await?;
        let out = {
            let mut inner = sh.inner.lock();
            match f(&mut inner.state) {
                Ok((out, changed)) => {
                    if !changed {
                        return Ok(out);
                    }
                    out
                }
                Err(e) => {
                    if dirty_on_error {
                        inner.etag = None;
                    }
                    return Err(e);
                }
            }
        };
        sh.save(false).await?;
        Ok(out)
    }

    async fn snapshot(&self) -> Result<(SchemaRef, Vec<Arc<Chunk>>)> {
        let sh = &self.shared;
        let _op = sh.op.lock().await;
        sh.refresh().await?;
        let mut inner = sh.inner.lock();
        if inner.state.has_pending() {
            inner.state.flush();
        }
        Ok((inner.state.schema.clone(), inner.state.chunks.clone()))
    }

    fn peek<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.shared.inner.lock().state)
    }

    fn scan_label(&self) -> String {
        format!("s3 {}", self.shared.shown())
    }
}
