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
use crate::store::chunks::{Chunk, State};
use crate::store::collection::{ChunkCollection, StateAccess};
use lock::{Inner, Shared};

mod lock;
mod read;
mod sidecar;
#[cfg(test)]
mod tests;
mod write;

pub use lock::remove_file_and_sidecars;
pub use write::{CSV_NULL, null_regex};

const KIND: &str = "file";
/// Rows per batch a scan yields and a reader produces.
const BATCH_ROWS: usize = 8192;
/// Parquet schema metadata naming the key column ("" = no key).
const KEY_METADATA: &str = "dataknobs.key";
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
        let err = |m: String| Error::query(m).with_backend(KIND);
        let mut names = HashSet::new();
        for f in schema.fields() {
            if f.name().is_empty() {
                return Err(err(format!(
                    "{}: a column name cannot be empty",
                    path.display()
                )));
            }
            if !names.insert(f.name().as_str()) {
                return Err(err(format!(
                    "{}: column '{}' appears twice",
                    path.display(),
                    f.name()
                )));
            }
        }
        let key_index = match &key {
            Some(k) => Some(schema.index_of(k).map_err(|_| {
                err(format!(
                    "{}: key column '{k}' is not a column (columns: {})",
                    path.display(),
                    column_list(&schema)
                ))
            })?),
            None => None,
        };
        let db = Self::build(
            path,
            format.into(),
            compression.into(),
            State::new(schema, key_index),
        )?;
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
        self.name = name.into();
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
