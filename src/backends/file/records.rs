//! [`FileDatabase`]: one collection stored in ONE data file (JSON, NDJSON, CSV, TSV or Parquet;
//! the text formats optionally gzip- or zstd-compressed), with the seed's record API and the
//! SQL hooks of [`Database`].
//!
//! # Storage
//!
//! The file is the truth. A `FileDatabase` keeps the shared chunk store's collection state
//! ([`State`]) loaded from the file and
//!
//! * before every operation takes a lock on the sidecar lock file `.<file name>.lock` in the same
//!   directory (shared for reads, exclusive for writes; `flock`-style locks, so two handles in
//!   one process exclude each other too) and reloads the file if it changed since it was loaded.
//!   A change is seen through a generation counter that every writer bumps inside the lock
//!   file, and through the data file's length, modification time and inode (for programs that
//!   do not take the lock);
//! * writes the whole file after every change: to a temporary file in the same directory,
//!   fsync, rename over the original (so a crash or a failed write leaves the previous file
//!   exactly as it was, and the temporary file is removed), all while holding the exclusive
//!   lock. Two processes writing the same file therefore lose no update.
//!
//! # Types
//!
//! Parquet keeps the Arrow schema (and the key column, in the schema metadata
//! `dataknobs.key`). The text formats lose types, so next to `x.csv` a small sidecar
//! `.x.csv.schema.json` lists each column's name, field type, Arrow type, nullability and key
//! flag; it is written atomically in the same locked section as the data. Columns the sidecar
//! does not know (e.g. a file made by another program) are inferred from the data. The sidecar
//! records the length and CRC-32 of the data file it describes, so an error caused by a file
//! edited by another program can say so.
//!
//! Value encodings: BINARY is base64 in CSV/TSV/JSON; JSON columns are nested JSON in the JSON
//! formats and JSON text in CSV/TSV; DATETIME is RFC 3339; a FLOAT NaN or infinity is the
//! string `"NaN"`, `"inf"` or `"-inf"` in the JSON formats. In CSV/TSV an empty field is NULL,
//! so an empty STRING/TEXT/BINARY value reads back as NULL (the format cannot tell them apart).
//!
//! Record ids are the key column's values (`id` by default). A file without a sidecar or
//! Parquet key metadata is keyed by its `id` column when it has one whose values are unique and
//! non-empty; otherwise it has no key and records get their row numbers as ids (which shift
//! when earlier rows are deleted).
//!
//! # Layout
//!
//! This file holds the public API (opening and creating files, [`FileStore`], the
//! [`StateAccess`] that gives [`FileDatabase`] the shared [`Database`] implementation of
//! [`crate::store::collection`]). A read or write goes: `lock.rs` (lock file, freshness check,
//! locked section) → when the file changed, `read.rs` (bytes → Arrow batches → [`State`],
//! with the column types from `sidecar.rs`) → the operation on the state → after a change,
//! `write.rs` (state → bytes) and `lock.rs` again (atomic replace, generation, sidecar).
//!
//! [`Database`]: crate::database::Database

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::compute::CastOptions;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::util::display::FormatOptions;
use parking_lot::Mutex;

use super::format::{self, Compression, Format};
use crate::error::{Error, Result};
use crate::record::{FieldType, column_list};
use crate::store::chunks::{Chunk, State, scan_chunk};
use crate::store::collection::{ChunkCollection, StateAccess};
use lock::{Inner, Shared};

mod lock;
mod read;
pub(crate) use read::{JsonRow, decompressing_reader};
mod sidecar;
#[cfg(test)]
mod tests;
mod write;

pub use lock::remove_file_and_sidecars;
pub use write::{CSV_NULL, null_regex};

/// How a CSV/TSV file spells things: dataknobs' own files write NULL as [`CSV_NULL`] and
/// quote only where needed; a file another program made keeps its conventions (empty fields
/// for NULL; every field quoted when its header line was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextStyle {
    pub(crate) null: Option<String>,
    pub(crate) quote_all: bool,
}

impl TextStyle {
    /// The style of files dataknobs creates.
    pub(crate) fn dataknobs() -> TextStyle {
        TextStyle {
            null: Some(CSV_NULL.to_string()),
            quote_all: false,
        }
    }
}

const KIND: &str = "file";
/// Rows per batch a scan yields and a reader produces.
const BATCH_ROWS: usize = 8192;
/// Parquet schema metadata naming the key column ("" = no key).
pub(crate) const KEY_METADATA: &str = "dataknobs.key";
/// The key column of a new collection.
const DEFAULT_KEY: &str = "id";
const SIDECAR_VERSION: u32 = 1;

// =============================================================================================
// Public API
// =============================================================================================

/// One collection stored in one file: the shared [`ChunkCollection`] over a [`FileStore`].
/// Cheap to clone (clones share the loaded state).
pub type FileDatabase = ChunkCollection<FileStore>;

/// How a [`FileDatabase`] reaches its state: the data file, its lock file and sidecar, and
/// the state loaded from them.
#[derive(Clone)]
pub struct FileStore {
    shared: Arc<Shared>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.shared.path)
            .field("format", &self.shared.format)
            .field("compression", &self.shared.compression)
            .finish()
    }
}

impl FileDatabase {
    /// The NULL marker of a CSV/TSV file written by dataknobs (None: empty fields are NULL).
    pub fn text_null_marker(&self) -> Option<String> {
        self.access.shared.read_sidecar().and_then(|s| s.null)
    }

    /// Opens the collection stored in `path`. Format and compression are taken from the file
    /// name (`orders.csv.gz`) when not given. A missing file is an empty collection keyed by
    /// `id`; the file is created by the first write. The file is loaded now, so a corrupt file
    /// is reported here.
    pub fn open(
        path: impl Into<PathBuf>,
        format: impl Into<Option<Format>>,
        compression: impl Into<Option<Compression>>,
    ) -> Result<FileDatabase> {
        let path = path.into();
        let db = Self::build(path, format.into(), compression.into(), default_state())?;
        db.access
            .shared
            .read_section(|_| Ok(()))
            .map_err(|e| e.with_backend(KIND))?;
        Ok(db)
    }

    /// Creates a new, empty file for a collection of `schema` keyed by `key` (no key for
    /// None): a CSV/TSV header line, `[]` for JSON, an empty NDJSON file, or an empty Parquet
    /// file with the schema. Fails with `AlreadyExists` if the file exists.
    pub fn create_new(
        path: impl Into<PathBuf>,
        format: impl Into<Option<Format>>,
        compression: impl Into<Option<Compression>>,
        schema: SchemaRef,
        key: Option<String>,
    ) -> Result<FileDatabase> {
        let path = path.into();
        let state = new_state(&path, schema, key.as_deref())?;
        let db = Self::build(path, format.into(), compression.into(), state)?;
        db.access
            .shared
            .create_file()
            .map_err(|e| e.with_backend(KIND))?;
        Ok(db)
    }

    fn build(
        path: PathBuf,
        format: Option<Format>,
        compression: Option<Compression>,
        state: State,
    ) -> Result<FileDatabase> {
        let (format, compression) = resolve_format(&path, format, compression)?;
        let (lock_path, sidecar_path) = sidecar_paths(&path)?;
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let name = format::detect(&path)
            .map(|(stem, _, _)| stem)
            .unwrap_or_else(|| {
                file_name
                    .split('.')
                    .find(|s| !s.is_empty())
                    .unwrap_or(&file_name)
                    .to_string()
            });
        let shared = Shared {
            lock_path,
            sidecar_path,
            path,
            format,
            compression,
            inner: Mutex::new(Inner {
                state,
                seen: None,
                lock: None,
                lock_writable: false,
            }),
            text_style: parking_lot::Mutex::new(None),
            #[cfg(test)]
            fail_next_rename: std::sync::atomic::AtomicBool::new(false),
        };
        Ok(ChunkCollection::new(
            name,
            FileStore {
                shared: Arc::new(shared),
            },
        ))
    }

    /// Sets the collection name (by default the file name without extensions).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = std::sync::Arc::from(name.into());
        self
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.access.shared.path
    }

    /// The file format.
    pub fn format(&self) -> Format {
        self.access.shared.format
    }

    /// The compression of a text format (for Parquet: the codec used inside the file).
    pub fn compression(&self) -> Compression {
        self.access.shared.compression
    }
}

/// The lock file and schema sidecar of a data file: `.<name>.lock`, `.<name>.schema.json`.
/// The lock file and the schema sidecar of a data file.
pub(crate) fn sidecar_paths(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let file_name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::config(format!(
            "'{}' does not name a file with a UTF-8 name",
            path.display()
        ))
        .with_backend(KIND)
    })?;
    let dir = path.with_file_name("");
    Ok((
        dir.join(format!(".{file_name}.lock")),
        dir.join(format!(".{file_name}.schema.json")),
    ))
}

/// Format and compression: given, or detected from the file name.
fn resolve_format(
    path: &Path,
    format: Option<Format>,
    compression: Option<Compression>,
) -> Result<(Format, Compression)> {
    let detected = format::detect(path)
        .map(|(_, f, c)| (f, c))
        .or_else(|| detect_any(path));
    let format = match (format, detected) {
        (Some(f), _) => f,
        (None, Some((f, _))) => f,
        (None, None) => {
            return Err(Error::config(format!(
                "cannot tell the format of '{}' from its name; give the format (json, ndjson, csv, tsv or parquet)",
                path.display()
            ))
            .with_backend(KIND));
        }
    };
    let compression = compression.unwrap_or_else(|| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if format == Format::Parquet {
            Compression::None
        } else if name.ends_with(".gz") {
            Compression::Gzip
        } else if name.ends_with(".zst") {
            Compression::Zstd
        } else {
            Compression::None
        }
    });
    Ok((format, compression))
}

/// Like [`format::detect`], but also for names starting with `.` or `_`.
fn detect_any(path: &Path) -> Option<(Format, Compression)> {
    let name = path.file_name()?.to_str()?;
    let (rest, c) = if let Some(r) = name.strip_suffix(".gz") {
        (r, Compression::Gzip)
    } else if let Some(r) = name.strip_suffix(".zst") {
        (r, Compression::Zstd)
    } else {
        (name, Compression::None)
    };
    let (_, ext) = rest.rsplit_once('.')?;
    Some((ext.parse().ok()?, c))
}

/// Encodes a whole collection as the bytes of one data file of `format`, and for the text
/// formats its schema sidecar (JSON). Flushes the state's row buffer first.
pub(crate) fn encode_state(
    format: Format,
    compression: Compression,
    state: &mut State,
    style: &TextStyle,
) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    state.flush();
    let schema = state.schema.clone();
    let key = state.key_name();
    let full: Vec<usize> = (0..schema.fields().len()).collect();
    let mut batches = Vec::with_capacity(state.chunks.len());
    for chunk in &state.chunks {
        if chunk.live > 0 {
            batches.push(scan_chunk(
                &schema,
                chunk,
                0,
                chunk.batch.num_rows(),
                None,
                &full,
            )?);
        }
    }
    let data = write::encode(
        format,
        compression,
        &schema,
        key.as_deref(),
        &batches,
        style,
    )?;
    let sidecar = if format == Format::Parquet {
        None
    } else {
        let s = sidecar::Sidecar::describe(format, &schema, key.as_deref(), &data, style);
        Some(
            serde_json::to_vec_pretty(&s)
                .map_err(|e| Error::internal(format!("serializing the schema file: {e}")))?,
        )
    };
    Ok((data, sidecar))
}

/// Decodes the bytes of one data file of `format` (as stored: compressed when `compression`
/// says so) into a collection, typed and keyed by its schema sidecar's bytes when there is
/// one, else as a local file without one. String and binary views become plain strings and
/// binaries (as [`plain_types`] makes them). `label` names the data in errors,
/// `sidecar_shown` the sidecar. For stores that keep data files elsewhere than on a local
/// disk (S3 objects).
pub(crate) fn decode_state(
    label: &Path,
    format: Format,
    compression: Compression,
    raw: bytes::Bytes,
    sidecar: Option<&[u8]>,
    sidecar_shown: &str,
) -> Result<State> {
    let loaded = if format == Format::Parquet {
        read::parquet_loaded(label, raw)?
    } else {
        let sidecar = sidecar.and_then(|b| sidecar::parse_sidecar(b, sidecar_shown));
        read::decode_text(
            label,
            format,
            compression,
            &raw,
            sidecar.as_ref(),
            sidecar_shown,
        )?
    };
    let schema = plain_types(&loaded.schema);
    let batches = if schema == loaded.schema {
        loaded.batches
    } else {
        let mut out = Vec::with_capacity(loaded.batches.len());
        for b in &loaded.batches {
            let columns = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            out.push(
                datafusion::arrow::record_batch::RecordBatch::try_new_with_options(
                    schema.clone(),
                    columns,
                    &datafusion::arrow::record_batch::RecordBatchOptions::new()
                        .with_row_count(Some(b.num_rows())),
                )?,
            );
        }
        out
    };
    let loaded = read::Loaded {
        schema,
        key: loaded.key,
        batches,
    };
    read::build_state(label, Some(loaded))
}

/// `schema` with string and binary views as plain strings and binaries (nullability and
/// metadata kept): how a collection kept as a data file elsewhere than on a local disk holds
/// them, whether the file came from DataFusion (views) or another writer (plain).
pub(crate) fn plain_types(schema: &SchemaRef) -> SchemaRef {
    if !schema
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Utf8View | DataType::BinaryView))
    {
        return schema.clone();
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(plain_type(f.data_type())))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A string or binary view type as the plain string or binary type; others as they are.
pub(crate) fn plain_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        other => other.clone(),
    }
}

/// An empty collection of `schema` keyed by `key` (no key for None), for a new data file
/// kept elsewhere than on a local disk; errors name `label`.
pub(crate) fn new_state(label: &Path, schema: SchemaRef, key: Option<&str>) -> Result<State> {
    let err = |m: String| Error::query(m).with_backend(KIND);
    let mut names = HashSet::new();
    for f in schema.fields() {
        if f.name().is_empty() {
            return Err(err(format!(
                "{}: a column name cannot be empty",
                label.display()
            )));
        }
        if !names.insert(f.name().as_str()) {
            return Err(err(format!(
                "{}: column '{}' appears twice",
                label.display(),
                f.name()
            )));
        }
    }
    let key_index = match key {
        Some(k) => Some(schema.index_of(k).map_err(|_| {
            err(format!(
                "{}: key column '{k}' is not a column (columns: {})",
                label.display(),
                column_list(&schema)
            ))
        })?),
        None => None,
    };
    Ok(State::new(schema, key_index))
}

fn default_state() -> State {
    let schema = Arc::new(Schema::new(vec![
        FieldType::String
            .arrow_field(DEFAULT_KEY)
            .with_nullable(false),
    ]));
    State::new(schema, Some(0))
}

fn cast_opts() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

fn is_binary(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

impl FileStore {
    /// Runs `f` on the blocking thread pool when inside a Tokio runtime (file I/O and lock
    /// waits must not stall the async workers), inline otherwise.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = Arc::clone(&self.shared);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || f(&shared))
                .await
                .map_err(|e| Error::internal(format!("a file backend task failed: {e}")))?,
            Err(_) => f(&shared),
        }
    }
}

impl StateAccess for FileStore {
    const KIND: &'static str = KIND;

    fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&State) -> Result<T> + Send + 'static,
    {
        self.run(move |sh| sh.read_section(|s| f(s)))
    }

    fn write<T, F>(&self, dirty_on_error: bool, f: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce(&mut State) -> Result<(T, bool)> + Send + 'static,
    {
        self.run(move |sh| sh.write_section(dirty_on_error, f))
    }

    fn snapshot(&self) -> impl Future<Output = Result<(SchemaRef, Vec<Arc<Chunk>>)>> + Send {
        self.run(|sh| {
            sh.read_section(|s| {
                if s.has_pending() {
                    s.flush();
                }
                Ok((s.schema.clone(), s.chunks.clone()))
            })
        })
    }

    fn peek<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        self.shared.peek(f)
    }

    fn scan_label(&self) -> String {
        format!("file {}", self.shared.path.display())
    }
}
