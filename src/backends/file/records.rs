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

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, StringBuilder};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, FieldRef, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{
    Encoder, EncoderFactory, EncoderOptions, JsonFormat, LineDelimited, NullableEncoder,
};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::util::display::FormatOptions;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::format::{self, Compression, Format};
use crate::error::{Error, ErrorKind, Result};
use crate::record::{FieldType, Value, column_list, values_to_array};
use crate::store::atomic::{write_atomically, write_atomically_with};
use crate::store::chunks::{Chunk, State, scan_chunk};
use crate::store::collection::{ChunkCollection, StateAccess};
use crate::store::columns::{self, ColumnDesc};

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

/// Removes a data file with its schema sidecar and lock file (DROP TABLE), holding the
/// file's exclusive lock while the data and the sidecar go. A missing file is not an error.
pub fn remove_file_and_sidecars(path: &Path) -> Result<()> {
    let (lock_path, sidecar_path) = sidecar_paths(path)?;
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .ok();
    let _held = match &lock {
        Some(f) => {
            f.lock()
                .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?;
            LockGuard(Some(f))
        }
        None => LockGuard(None),
    };
    for p in [path, sidecar_path.as_path()] {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(format!("removing {}", p.display()), e).with_backend(KIND));
            }
        }
    }
    if let Some(f) = &lock {
        // Bump the generation first: a handle that still has the old lock file open reloads.
        let g = read_generation(f).wrapping_add(1);
        let _ = write_generation(f, &lock_path, g);
        let _ = fs::remove_file(&lock_path);
    }
    Ok(())
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

// =============================================================================================
// Locking, freshness and atomic writes
// =============================================================================================

struct Shared {
    path: PathBuf,
    lock_path: PathBuf,
    sidecar_path: PathBuf,
    format: Format,
    compression: Compression,
    inner: Mutex<Inner>,
    /// Test hook: make the next data-file rename fail (after the temporary file is written).
    #[cfg(test)]
    fail_next_rename: std::sync::atomic::AtomicBool,
}

struct Inner {
    state: State,
    /// What `state` was loaded from (or last written as); None: reload before the next use.
    seen: Option<Seen>,
    /// The lock file, opened on first use.
    lock: Option<File>,
    lock_writable: bool,
}

/// The version of the data file a state corresponds to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// The counter in the lock file, bumped by every writer.
    generation: u64,
    /// None: the file does not exist.
    file: Option<FileId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileId {
    len: u64,
    modified: Option<SystemTime>,
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(m: &fs::Metadata) -> FileId {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        FileId {
            len: m.len(),
            modified: m.modified().ok(),
            dev,
            ino,
        }
    }
}

/// Releases a file lock when dropped.
struct LockGuard<'a>(Option<&'a File>);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.0
            && let Err(e) = f.unlock()
        {
            tracing::warn!("file backend: unlocking failed: {e}");
        }
    }
}

fn read_generation(lock: &File) -> u64 {
    let mut text = String::new();
    let mut f = lock;
    if f.seek(SeekFrom::Start(0)).is_err() || f.read_to_string(&mut text).is_err() {
        return 0;
    }
    text.trim().parse().unwrap_or(0)
}

fn write_generation(lock: &File, lock_path: &Path, generation: u64) -> Result<()> {
    let mut f = lock;
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.write_all(format!("{generation:020}\n").as_bytes()))
        .map_err(|e| Error::io(format!("writing the lock file {}", lock_path.display()), e))
}

impl Inner {
    /// Opens the lock file. For reads it may be missing (read-only directory): then reads go
    /// without a lock.
    fn open_lock(&mut self, lock_path: &Path, for_write: bool) -> Result<()> {
        if let Some(f) = &self.lock
            && (self.lock_writable || !for_write)
        {
            // Still the lock file at that path (not removed by a DROP and made again)?
            let same = match (f.metadata(), fs::metadata(lock_path)) {
                (Ok(a), Ok(b)) => {
                    let (a, b) = (FileId::of(&a), FileId::of(&b));
                    a.dev == b.dev && a.ino == b.ino
                }
                _ => false,
            };
            if same {
                return Ok(());
            }
            self.lock = None;
        }
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path)
        {
            Ok(f) => {
                self.lock = Some(f);
                self.lock_writable = true;
                Ok(())
            }
            Err(e) if for_write => Err(Error::io(
                format!("cannot create the lock file {}", lock_path.display()),
                e,
            )),
            Err(_) => {
                if let Ok(f) = File::open(lock_path) {
                    self.lock = Some(f);
                    self.lock_writable = false;
                }
                Ok(())
            }
        }
    }
}

impl Shared {
    #[cfg(test)]
    fn injected_failure(&self) -> bool {
        self.fail_next_rename
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    #[cfg(not(test))]
    fn injected_failure(&self) -> bool {
        false
    }

    fn lock_error(&self, e: std::io::Error) -> Error {
        Error::io(format!("locking {}", self.lock_path.display()), e)
    }

    /// The data file's identity now (None if it does not exist).
    fn file_id(&self) -> Result<Option<FileId>> {
        match fs::metadata(&self.path) {
            Ok(m) => Ok(Some(FileId::of(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", self.path.display()), e)),
        }
    }

    /// Reloads the state if the file changed since it was loaded. Call with the lock held.
    fn refresh(
        &self,
        state: &mut State,
        seen: &mut Option<Seen>,
        lock: Option<&File>,
    ) -> Result<()> {
        let now = Seen {
            generation: lock.map(read_generation).unwrap_or(0),
            file: self.file_id()?,
        };
        if seen.as_ref() == Some(&now) {
            return Ok(());
        }
        *state = self.load()?;
        *seen = Some(now);
        Ok(())
    }

    /// Runs `f` on a fresh state under a shared lock.
    fn read_section<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.open_lock(&self.lock_path, false)?;
        let Inner {
            state, seen, lock, ..
        } = inner;
        let _held = match lock.as_ref() {
            Some(file) => {
                file.lock_shared().map_err(|e| self.lock_error(e))?;
                LockGuard(Some(file))
            }
            None => LockGuard(None),
        };
        self.refresh(state, seen, lock.as_ref())?;
        f(state)
    }

    /// Like [`Self::read_section`] but never waits for the file lock: when another process
    /// holds it, the loaded state is used as it is. For the synchronous `schema()` calls.
    fn peek<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if let Err(e) = inner.open_lock(&self.lock_path, false) {
            tracing::warn!("file backend: {e}");
        }
        let Inner {
            state, seen, lock, ..
        } = inner;
        let held = match lock.as_ref() {
            Some(file) => file
                .try_lock_shared()
                .is_ok()
                .then_some(LockGuard(Some(file))),
            None => Some(LockGuard(None)),
        };
        if held.is_some()
            && let Err(e) = self.refresh(state, seen, lock.as_ref())
        {
            tracing::warn!("file backend: {e}");
        }
        let out = f(state);
        drop(held);
        out
    }

    /// Runs `f` on a fresh state under the exclusive lock; when it reports a change, writes
    /// the file. `f` returns its result and whether it changed the state. When the write fails
    /// (or `f` fails and `dirty_on_error` says it may have changed the state half-way), the
    /// state is reloaded from the file before its next use: the file is the truth.
    fn write_section<T>(
        &self,
        dirty_on_error: bool,
        f: impl FnOnce(&mut State) -> Result<(T, bool)>,
    ) -> Result<T> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.open_lock(&self.lock_path, true)?;
        let Inner {
            state, seen, lock, ..
        } = inner;
        let file = lock
            .as_ref()
            .ok_or_else(|| Error::internal("the lock file is not open"))?;
        file.lock().map_err(|e| self.lock_error(e))?;
        let _held = LockGuard(Some(file));
        self.refresh(state, seen, Some(file))?;
        let (out, changed) = match f(state) {
            Ok(r) => r,
            Err(e) => {
                if dirty_on_error {
                    *seen = None;
                }
                return Err(e);
            }
        };
        if changed {
            match self.persist(state, file) {
                Ok(s) => *seen = Some(s),
                Err(e) => {
                    *seen = None;
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// Writes the (new) state to a file that must not exist yet.
    fn create_file(&self) -> Result<()> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.open_lock(&self.lock_path, true)?;
        let Inner {
            state, seen, lock, ..
        } = inner;
        let file = lock
            .as_ref()
            .ok_or_else(|| Error::internal("the lock file is not open"))?;
        file.lock().map_err(|e| self.lock_error(e))?;
        let _held = LockGuard(Some(file));
        if fs::symlink_metadata(&self.path).is_ok() {
            return Err(Error::already_exists(format!(
                "{} exists already",
                self.path.display()
            )));
        }
        *seen = Some(self.persist(state, file)?);
        Ok(())
    }

    /// Writes the whole state: data file, generation, then (text formats) the schema sidecar.
    fn persist(&self, state: &mut State, lock: &File) -> Result<Seen> {
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
        let data = encode(
            self.format,
            self.compression,
            &schema,
            key.as_deref(),
            &batches,
        )
        .map_err(|e| {
            Error::new(
                e.kind(),
                format!("{}: cannot write: {}", self.path.display(), e.message()),
            )
        })?;
        let fail = self.injected_failure();
        write_atomically_with(&self.path, |f| {
            f.write_all(&data)?;
            if fail {
                return Err(std::io::Error::other("injected failure"));
            }
            Ok(())
        })?;
        let generation = read_generation(lock).wrapping_add(1);
        write_generation(lock, &self.lock_path, generation)?;
        if self.format != Format::Parquet {
            let sidecar = Sidecar::describe(self.format, &schema, key.as_deref(), &data);
            let json = serde_json::to_vec_pretty(&sidecar)
                .map_err(|e| Error::internal(format!("serializing the schema file: {e}")))?;
            write_atomically(&self.sidecar_path, &json).map_err(|e| {
                Error::new(
                    e.kind(),
                    format!(
                        "{} was saved, but its schema file could not be: {e}",
                        self.path.display()
                    ),
                )
            })?;
        }
        Ok(Seen {
            generation,
            file: self.file_id()?,
        })
    }

    /// Loads the file into a new state (the default empty collection if it does not exist).
    fn load(&self) -> Result<State> {
        let data = match self.format {
            Format::Parquet => read_parquet(&self.path)?,
            _ => self.read_text()?,
        };
        build_state(&self.path, data)
    }

    fn read_text(&self) -> Result<Option<Loaded>> {
        let raw = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", self.path.display()), e)),
        };
        let sidecar = self.read_sidecar();
        let hint = match &sidecar {
            Some(s) if !s.matches(&raw) => format!(
                " (the column types come from {}, which describes an earlier version of this file; if another program changed the file, delete that schema file to infer the types from the data)",
                self.sidecar_path.display()
            ),
            _ => String::new(),
        };
        let data = if raw.is_empty() {
            Cow::Borrowed(&raw[..])
        } else {
            decompress(self.compression, &raw).map_err(|e| {
                Error::io(
                    format!(
                        "{}: cannot decompress ({:?} expected)",
                        self.path.display(),
                        self.compression
                    ),
                    e,
                )
            })?
        };
        let data = data
            .strip_prefix(b"\xEF\xBB\xBF".as_slice())
            .unwrap_or(&data);
        let columns = match &sidecar {
            Some(s) => s.fields(),
            None => None,
        };
        let null_marker = sidecar.as_ref().and_then(|s| s.null.as_deref());
        let ctx = TextCtx {
            path: &self.path,
            known: columns.as_deref().unwrap_or(&[]),
            hint: &hint,
        };
        let (schema, batches) = match self.format {
            Format::Csv => read_csv(&ctx, data, b',', null_marker)?,
            Format::Tsv => read_csv(&ctx, data, b'\t', null_marker)?,
            Format::Json => read_json(&ctx, data, false)?,
            Format::NdJson => read_json(&ctx, data, true)?,
            Format::Parquet => return Err(Error::internal("parquet is not a text format")),
        };
        let key = match (&sidecar, &columns) {
            (Some(s), Some(_)) => match s.columns.iter().find(|c| c.key) {
                None => KeyChoice::Declared(None),
                Some(c) if schema.index_of(&c.name).is_ok() => {
                    KeyChoice::Declared(Some(c.name.clone()))
                }
                Some(_) => KeyChoice::Guess,
            },
            _ => KeyChoice::Guess,
        };
        Ok(Some(Loaded {
            schema,
            key,
            batches,
        }))
    }

    fn read_sidecar(&self) -> Option<Sidecar> {
        let bytes = match fs::read(&self.sidecar_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(
                    "file backend: ignoring {}: {e}",
                    self.sidecar_path.display()
                );
                return None;
            }
        };
        match serde_json::from_slice::<Sidecar>(&bytes) {
            Ok(s) if s.version == SIDECAR_VERSION => Some(s),
            Ok(s) => {
                tracing::warn!(
                    "file backend: ignoring {}: unknown version {}",
                    self.sidecar_path.display(),
                    s.version
                );
                None
            }
            Err(e) => {
                tracing::warn!(
                    "file backend: ignoring {}: {e}",
                    self.sidecar_path.display()
                );
                None
            }
        }
    }
}

// =============================================================================================
// Loading
// =============================================================================================

/// A file's content before it becomes a [`State`].
struct Loaded {
    schema: SchemaRef,
    key: KeyChoice,
    batches: Vec<RecordBatch>,
}

enum KeyChoice {
    /// The file says which column is the key (or that there is none).
    Declared(Option<String>),
    /// It does not: use `id` when it can be a key.
    Guess,
}

fn file_error(path: &Path, kind: ErrorKind, msg: impl fmt::Display) -> Error {
    Error::new(kind, format!("{}: {msg}", path.display()))
}

fn build_state(path: &Path, loaded: Option<Loaded>) -> Result<State> {
    let Some(loaded) = loaded else {
        return Ok(default_state());
    };
    if loaded.schema.fields().is_empty() {
        // An empty file (no header, no rows): a new collection.
        return Ok(default_state());
    }
    let schema = loaded.schema;
    let mut key = match &loaded.key {
        KeyChoice::Declared(Some(k)) => Some(schema.index_of(k).map_err(|_| {
            file_error(
                path,
                ErrorKind::Io,
                format!("the key column '{k}' is missing"),
            )
        })?),
        KeyChoice::Declared(None) => None,
        KeyChoice::Guess => schema.index_of(DEFAULT_KEY).ok(),
    };
    let mut ids = Vec::new();
    if let Some(k) = key {
        match key_ids(path, &schema, k, &loaded.batches) {
            Ok(v) => ids = v,
            Err(e) if matches!(loaded.key, KeyChoice::Guess) => {
                tracing::warn!("file backend: {e}; the collection has no key");
                key = None;
            }
            Err(e) => return Err(e),
        }
    }
    if key.is_none() {
        let mut n = 0u64;
        ids = loaded
            .batches
            .iter()
            .map(|b| {
                (0..b.num_rows())
                    .map(|_| {
                        n += 1;
                        n.to_string()
                    })
                    .collect()
            })
            .collect();
    }
    let mut state = State::new(schema, key);
    for (batch, ids) in loaded.batches.into_iter().zip(ids) {
        state
            .insert_loaded(batch, ids)
            .map_err(|e| file_error(path, e.kind(), e.message()))?;
    }
    Ok(state)
}

/// The record ids of each batch: the key column as text, unique and non-empty.
fn key_ids(
    path: &Path,
    schema: &SchemaRef,
    key: usize,
    batches: &[RecordBatch],
) -> Result<Vec<Vec<String>>> {
    let name = schema.field(key).name();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(batches.len());
    let mut row = 0usize;
    for b in batches {
        let text = cast_with_options(b.column(key), &DataType::Utf8, &cast_opts())?;
        let text = text.as_string::<i32>();
        let mut ids = Vec::with_capacity(text.len());
        for v in text.iter() {
            row += 1;
            let Some(id) = v else {
                return Err(file_error(
                    path,
                    ErrorKind::Io,
                    format!("row {row}: the key column '{name}' is empty"),
                ));
            };
            if let Some(first) = seen.insert(id.to_string(), row) {
                return Err(file_error(
                    path,
                    ErrorKind::Io,
                    format!("rows {first} and {row} have the same key '{id}' in column '{name}'"),
                ));
            }
            ids.push(id.to_string());
        }
        out.push(ids);
    }
    Ok(out)
}

fn cast_opts() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

fn read_parquet(path: &Path) -> Result<Option<Loaded>> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let bad = |e: &dyn fmt::Display| {
        file_error(
            path,
            ErrorKind::Io,
            format!("not a readable Parquet file: {e}"),
        )
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?;
    let file_schema = builder.schema().clone();
    let key = match file_schema.metadata().get(KEY_METADATA) {
        Some(k) if k.is_empty() => KeyChoice::Declared(None),
        Some(k) => KeyChoice::Declared(Some(k.clone())),
        None => KeyChoice::Guess,
    };
    let schema = Arc::new(Schema::new(file_schema.fields().clone()));
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| bad(&e))?;
    let mut batches = Vec::new();
    for b in reader {
        let b = b.map_err(|e| bad(&e))?;
        batches.push(RecordBatch::try_new_with_options(
            schema.clone(),
            b.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
        )?);
    }
    Ok(Some(Loaded {
        schema,
        key,
        batches,
    }))
}

fn decompress(c: Compression, raw: &[u8]) -> std::io::Result<Cow<'_, [u8]>> {
    match c {
        Compression::None => Ok(Cow::Borrowed(raw)),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out)?;
            Ok(Cow::Owned(out))
        }
        Compression::Zstd => zstd::stream::decode_all(raw).map(Cow::Owned),
    }
}

/// What a text reader needs to know.
struct TextCtx<'a> {
    path: &'a Path,
    /// Columns whose types the sidecar gives.
    known: &'a [ArrowField],
    /// Appended to type errors: where the types came from.
    hint: &'a str,
}

impl TextCtx<'_> {
    fn known(&self, name: &str) -> Option<&ArrowField> {
        self.known.iter().find(|f| f.name() == name)
    }

    fn error(&self, kind: ErrorKind, msg: impl fmt::Display) -> Error {
        Error::new(kind, format!("{}: {msg}{}", self.path.display(), self.hint))
    }
}

/// The type the Arrow CSV reader parses a column as (the rest is converted afterwards).
fn csv_reader_type(dt: &DataType) -> DataType {
    use DataType::*;
    match dt {
        Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float32
        | Float64 | Decimal128(..) | Decimal256(..) | Date32 | Date64 | Timestamp(..) | Utf8
        | Utf8View => dt.clone(),
        _ => Utf8,
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

fn read_csv(
    ctx: &TextCtx<'_>,
    data: &[u8],
    delimiter: u8,
    null_marker: Option<&str>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    use datafusion::arrow::csv::ReaderBuilder;
    use datafusion::arrow::csv::reader::Format as CsvFormat;
    let bad = |e: ArrowError| ctx.error(ErrorKind::Io, one_line(&e.to_string()));
    if data.iter().all(u8::is_ascii_whitespace) {
        // No header at all: the sidecar's columns, or none.
        return Ok((Arc::new(Schema::new(ctx.known.to_vec())), Vec::new()));
    }
    let mut fmt = CsvFormat::default()
        .with_header(true)
        .with_delimiter(delimiter);
    if let Some(marker) = null_marker {
        let re = regex::Regex::new(&null_regex(marker))
            .map_err(|e| ctx.error(ErrorKind::Io, format!("invalid NULL marker: {e}")))?;
        fmt = fmt.with_null_regex(re);
    }
    let (header, _) = fmt.infer_schema(Cursor::new(data), Some(0)).map_err(bad)?;
    let mut names = HashSet::new();
    for f in header.fields() {
        if !names.insert(f.name().as_str()) {
            return Err(ctx.error(
                ErrorKind::Io,
                format!("the header names column '{}' twice", f.name()),
            ));
        }
    }
    let inferred = if header
        .fields()
        .iter()
        .any(|f| ctx.known(f.name()).is_none())
    {
        Some(fmt.infer_schema(Cursor::new(data), None).map_err(bad)?.0)
    } else {
        None
    };
    let fields: Vec<ArrowField> = header
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match (ctx.known(f.name()), &inferred) {
            (Some(k), _) => k.clone(),
            (None, Some(s)) => {
                let dt = match s.field(i).data_type() {
                    DataType::Null => DataType::Utf8,
                    dt => dt.clone(),
                };
                ArrowField::new(f.name(), dt, true)
            }
            (None, None) => ArrowField::new(f.name(), DataType::Utf8, true),
        })
        .collect();
    let target = Arc::new(Schema::new(fields));
    let reading = Arc::new(Schema::new(
        target
            .fields()
            .iter()
            .map(|f| ArrowField::new(f.name(), csv_reader_type(f.data_type()), true))
            .collect::<Vec<_>>(),
    ));
    let reader = ReaderBuilder::new(reading)
        .with_format(fmt)
        .with_batch_size(BATCH_ROWS)
        .build(Cursor::new(data))
        .map_err(bad)?;
    let mut batches = Vec::new();
    let mut first_row = 0usize;
    for b in reader {
        let b = b.map_err(bad)?;
        let n = b.num_rows();
        batches.push(conform_csv_batch(ctx, &target, &b, first_row)?);
        first_row += n;
    }
    Ok((target, batches))
}

/// Converts a batch as the CSV reader parsed it to the target types: base64 for BINARY,
/// a JSON check for JSON, checked casts for the rest, NOT NULL checks.
fn conform_csv_batch(
    ctx: &TextCtx<'_>,
    target: &SchemaRef,
    batch: &RecordBatch,
    first_row: usize,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, col) in target.fields().iter().zip(batch.columns()) {
        let name = field.name();
        let col: ArrayRef = if is_binary(field.data_type()) {
            let text = cast_with_options(col, &DataType::Utf8, &cast_opts())?;
            let text = text.as_string::<i32>();
            let mut b = BinaryBuilder::with_capacity(text.len(), text.len() * 8);
            for (r, v) in text.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .map_err(|e| {
                                ctx.error(
                                    ErrorKind::Type,
                                    format!(
                                        "data row {}: column '{name}' is BINARY but holds invalid base64: {e}",
                                        first_row + r + 1
                                    ),
                                )
                            })?;
                        b.append_value(bytes);
                    }
                }
            }
            let arr: ArrayRef = Arc::new(b.finish());
            cast_to(ctx, field, &arr)?
        } else {
            cast_to(ctx, field, col)?
        };
        if FieldType::from_arrow(field) == FieldType::Json {
            let text = cast_with_options(&col, &DataType::Utf8, &cast_opts())?;
            for (r, v) in text.as_string::<i32>().iter().enumerate() {
                if let Some(s) = v
                    && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(s)
                {
                    return Err(ctx.error(
                        ErrorKind::Type,
                        format!(
                            "data row {}: column '{name}' is JSON but holds invalid JSON: {e}",
                            first_row + r + 1
                        ),
                    ));
                }
            }
        }
        if !field.is_nullable() && col.null_count() > 0 {
            let r = (0..col.len()).find(|&i| col.is_null(i)).unwrap_or(0);
            return Err(ctx.error(
                ErrorKind::Type,
                format!(
                    "data row {}: column '{name}' is NOT NULL but empty",
                    first_row + r + 1
                ),
            ));
        }
        columns.push(col);
    }
    Ok(RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

fn cast_to(ctx: &TextCtx<'_>, field: &ArrowField, col: &ArrayRef) -> Result<ArrayRef> {
    if col.data_type() == field.data_type() {
        return Ok(col.clone());
    }
    cast_with_options(col, field.data_type(), &cast_opts()).map_err(|e| {
        ctx.error(
            ErrorKind::Type,
            format!(
                "column '{}' cannot be read as {}: {e}",
                field.name(),
                field.data_type()
            ),
        )
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One JSON object with its keys in file order.
struct JsonRow(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for JsonRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = JsonRow;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object (one record)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<JsonRow, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    out.push(entry);
                }
                Ok(JsonRow(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The kind of values a JSON column holds, for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonKind {
    Unknown,
    Bool,
    Int,
    Float,
    Str,
    Nested,
}

impl JsonKind {
    fn of(v: &serde_json::Value) -> JsonKind {
        match v {
            serde_json::Value::Null => JsonKind::Unknown,
            serde_json::Value::Bool(_) => JsonKind::Bool,
            serde_json::Value::Number(n) if n.is_i64() => JsonKind::Int,
            serde_json::Value::Number(_) => JsonKind::Float,
            serde_json::Value::String(_) => JsonKind::Str,
            _ => JsonKind::Nested,
        }
    }

    fn merge(self, other: JsonKind) -> JsonKind {
        use JsonKind::*;
        match (self, other) {
            (a, Unknown) => a,
            (Unknown, b) => b,
            (a, b) if a == b => a,
            (Int, Float) | (Float, Int) => Float,
            (Nested, _) | (_, Nested) => Nested,
            _ => Str,
        }
    }

    fn field_type(self) -> FieldType {
        match self {
            JsonKind::Unknown | JsonKind::Str => FieldType::String,
            JsonKind::Bool => FieldType::Boolean,
            JsonKind::Int => FieldType::Integer,
            JsonKind::Float => FieldType::Float,
            JsonKind::Nested => FieldType::Json,
        }
    }
}

fn read_json(
    ctx: &TextCtx<'_>,
    data: &[u8],
    ndjson: bool,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let first = data.iter().find(|b| !b.is_ascii_whitespace()).copied();
    // Rows, and where each came from (line numbers when known).
    let (rows, lines): (Vec<JsonRow>, Option<Vec<usize>>) = match first {
        None => (Vec::new(), None),
        Some(b'[') if !ndjson => {
            let rows: Vec<JsonRow> = serde_json::from_slice(data).map_err(|e| {
                ctx.error(ErrorKind::Io, format!("not a JSON array of objects: {e}"))
            })?;
            (rows, None)
        }
        Some(b'{') => {
            // NDJSON (also accepted for a .json file holding one object per line).
            let mut rows = Vec::new();
            let mut lines = Vec::new();
            let ends_with_newline = data.ends_with(b"\n");
            let parts: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
            let last_nonempty = parts.iter().rposition(|l| !l.trim_ascii().is_empty());
            for (i, line) in parts.iter().enumerate() {
                let t = line.trim_ascii();
                if t.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<JsonRow>(t) {
                    Ok(r) => {
                        rows.push(r);
                        lines.push(i + 1);
                    }
                    Err(e) if e.is_eof() && Some(i) == last_nonempty && !ends_with_newline => {
                        return Err(ctx.error(
                            ErrorKind::Io,
                            format!(
                                "line {} is cut off (the file ends inside a record; was a write interrupted?): {e}",
                                i + 1
                            ),
                        ));
                    }
                    Err(e) => {
                        return Err(ctx.error(
                            ErrorKind::Io,
                            format!("line {}: not a JSON object: {e}", i + 1),
                        ));
                    }
                }
            }
            (rows, Some(lines))
        }
        Some(_) => {
            return Err(ctx.error(
                ErrorKind::Io,
                if ndjson {
                    "line 1: expected a JSON object per line"
                } else {
                    "expected a JSON array of objects"
                },
            ));
        }
    };
    let place = |r: usize| match &lines {
        Some(l) => format!("line {}", l.get(r).copied().unwrap_or(r + 1)),
        None => format!("record {}", r + 1),
    };
    // Columns: the known ones, then new keys in order of first appearance (inferred).
    let mut fields: Vec<ArrowField> = ctx.known.to_vec();
    let mut index: HashMap<String, usize> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().clone(), i))
        .collect();
    let mut extra: Vec<(String, JsonKind)> = Vec::new();
    let mut extra_index: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        for (k, v) in &row.0 {
            if index.contains_key(k) {
                continue;
            }
            match extra_index.get(k) {
                Some(&i) => extra[i].1 = extra[i].1.merge(JsonKind::of(v)),
                None => {
                    extra_index.insert(k.clone(), extra.len());
                    extra.push((k.clone(), JsonKind::of(v)));
                }
            }
        }
    }
    for (name, kind) in extra {
        index.insert(name.clone(), fields.len());
        fields.push(kind.field_type().arrow_field(&name));
    }
    let types: Vec<FieldType> = fields.iter().map(FieldType::from_arrow).collect();
    let n = rows.len();
    let mut columns: Vec<Vec<Value>> = vec![vec![Value::Null; n]; fields.len()];
    for (r, row) in rows.into_iter().enumerate() {
        for (k, v) in row.0 {
            let Some(&c) = index.get(&k) else { continue };
            columns[c][r] = Value::from_typed_json(&v, types[c]).map_err(|e| {
                ctx.error(
                    ErrorKind::Type,
                    format!(
                        "{}: column '{k}' is {}: {}",
                        place(r),
                        types[c],
                        e.message()
                    ),
                )
            })?;
        }
    }
    let mut arrays = Vec::with_capacity(fields.len());
    for (field, values) in fields.iter().zip(&columns) {
        if !field.is_nullable()
            && let Some(r) = values.iter().position(Value::is_null)
        {
            return Err(ctx.error(
                ErrorKind::Type,
                format!(
                    "{}: column '{}' is NOT NULL but has no value",
                    place(r),
                    field.name()
                ),
            ));
        }
        arrays.push(
            values_to_array(field, values.iter()).map_err(|e| ctx.error(e.kind(), e.message()))?,
        );
    }
    let schema = Arc::new(Schema::new(fields));
    let batches = if n == 0 {
        Vec::new()
    } else {
        vec![RecordBatch::try_new_with_options(
            schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?]
    };
    Ok((schema, batches))
}

// =============================================================================================
// Writing
// =============================================================================================

fn encode(
    format: Format,
    compression: Compression,
    schema: &SchemaRef,
    key: Option<&str>,
    batches: &[RecordBatch],
) -> Result<Vec<u8>> {
    let plain = match format {
        Format::Parquet => return encode_parquet(compression, schema, key, batches),
        Format::Csv => encode_csv(b',', schema, batches)?,
        Format::Tsv => encode_csv(b'\t', schema, batches)?,
        Format::Json => encode_json::<LinesArray>(batches)?,
        Format::NdJson => encode_json::<LineDelimited>(batches)?,
    };
    compress(compression, plain).map_err(|e| Error::io("compressing", e))
}

fn compress(c: Compression, data: Vec<u8>) -> std::io::Result<Vec<u8>> {
    match c {
        Compression::None => Ok(data),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&data)?;
            enc.finish()
        }
        Compression::Zstd => zstd::stream::encode_all(&data[..], 0),
    }
}

fn encode_parquet(
    compression: Compression,
    schema: &SchemaRef,
    key: Option<&str>,
    batches: &[RecordBatch],
) -> Result<Vec<u8>> {
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::{Compression as Codec, GzipLevel, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let codec = match compression {
        Compression::None => Codec::SNAPPY,
        Compression::Gzip => Codec::GZIP(GzipLevel::default()),
        Compression::Zstd => Codec::ZSTD(ZstdLevel::default()),
    };
    let mut metadata = schema.metadata().clone();
    metadata.insert(KEY_METADATA.to_string(), key.unwrap_or("").to_string());
    let file_schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), metadata));
    let props = WriterProperties::builder().set_compression(codec).build();
    let perr = |e: datafusion::parquet::errors::ParquetError| {
        Error::new(ErrorKind::Io, format!("writing Parquet: {e}"))
    };
    let mut writer =
        ArrowWriter::try_new(Vec::new(), file_schema.clone(), Some(props)).map_err(perr)?;
    for b in batches {
        let b = RecordBatch::try_new_with_options(
            file_schema.clone(),
            b.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
        )?;
        writer.write(&b).map_err(perr)?;
    }
    writer.into_inner().map_err(perr)
}

/// A batch for a text format: BINARY columns as base64 text.
fn text_batch(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| is_binary(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (f, col) in batch.schema().fields().iter().zip(batch.columns()) {
        if is_binary(f.data_type()) {
            let bin = cast_with_options(col, &DataType::Binary, &cast_opts())?;
            let bin = bin.as_binary::<i32>();
            let mut b = StringBuilder::with_capacity(bin.len(), bin.len() * 12);
            for v in bin.iter() {
                match v {
                    Some(bytes) => {
                        b.append_value(base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                    None => b.append_null(),
                }
            }
            fields.push(ArrowField::new(f.name(), DataType::Utf8, f.is_nullable()));
            columns.push(Arc::new(b.finish()) as ArrayRef);
        } else {
            fields.push(f.as_ref().clone());
            columns.push(col.clone());
        }
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// How NULL is written in CSV/TSV (PostgreSQL's text convention), so that an empty field
/// reads back as an empty string.
pub const CSV_NULL: &str = "\\N";

/// The regular expression matching exactly `marker` (for CSV readers' null_regex).
pub fn null_regex(marker: &str) -> String {
    format!("^{}$", regex::escape(marker))
}

fn encode_csv(delimiter: u8, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    use datafusion::arrow::csv::WriterBuilder;
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new()
            .with_header(true)
            .with_delimiter(delimiter)
            .with_null(CSV_NULL.to_string())
            .build(&mut buf);
        if batches.is_empty() {
            w.write(&text_batch(&RecordBatch::new_empty(schema.clone()))?)?;
        }
        for b in batches {
            w.write(&text_batch(b)?)?;
        }
    }
    Ok(buf)
}

fn encode_json<F: JsonFormat>(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    use datafusion::arrow::json::WriterBuilder;
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new()
            .with_explicit_nulls(true)
            .with_encoder_factory(Arc::new(JsonEncoders))
            .build::<_, F>(&mut buf);
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    Ok(buf)
}

/// A JSON array with one record per line: `[\n{…},\n{…}\n]\n` (`[]\n` when empty).
#[derive(Debug, Default)]
struct LinesArray {
    wrote_row: std::cell::Cell<bool>,
}

impl JsonFormat for LinesArray {
    fn start_stream<W: Write>(&self, w: &mut W) -> std::result::Result<(), ArrowError> {
        w.write_all(b"[")?;
        Ok(())
    }

    fn start_row<W: Write>(&self, w: &mut W, first: bool) -> std::result::Result<(), ArrowError> {
        w.write_all(if first { b"\n" } else { b",\n" })?;
        self.wrote_row.set(true);
        Ok(())
    }

    fn end_stream<W: Write>(&self, w: &mut W) -> std::result::Result<(), ArrowError> {
        w.write_all(if self.wrote_row.get() {
            b"\n]\n"
        } else {
            b"]\n"
        })?;
        Ok(())
    }
}

/// JSON encodings that read back losslessly: BINARY as base64, JSON columns as nested JSON,
/// FLOAT NaN/infinity as strings (what [`Value::to_json`] does).
#[derive(Debug)]
struct JsonEncoders;

impl EncoderFactory for JsonEncoders {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> std::result::Result<Option<NullableEncoder<'a>>, ArrowError> {
        let nulls = array.nulls().cloned();
        let encoder: Box<dyn Encoder + 'a> = match array.data_type() {
            DataType::Binary => Box::new(Base64Encoder(array.as_binary::<i32>())),
            DataType::LargeBinary => Box::new(Base64Encoder(array.as_binary::<i64>())),
            DataType::Float64 => Box::new(FloatEncoder(array.as_primitive())),
            DataType::Utf8 if FieldType::from_arrow(field) == FieldType::Json => {
                Box::new(RawJsonEncoder(array.as_string::<i32>()))
            }
            _ => return Ok(None),
        };
        Ok(Some(NullableEncoder::new(encoder, nulls)))
    }
}

struct Base64Encoder<'a, O: datafusion::arrow::array::OffsetSizeTrait>(
    &'a datafusion::arrow::array::GenericBinaryArray<O>,
);

impl<O: datafusion::arrow::array::OffsetSizeTrait> Encoder for Base64Encoder<'_, O> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(self.0.value(idx))
                .as_bytes(),
        );
        out.push(b'"');
    }
}

struct FloatEncoder<'a>(&'a datafusion::arrow::array::Float64Array);

impl Encoder for FloatEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = self.0.value(idx);
        if v.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if v == f64::INFINITY {
            out.extend_from_slice(b"\"inf\"");
        } else if v == f64::NEG_INFINITY {
            out.extend_from_slice(b"\"-inf\"");
        } else if serde_json::to_writer(&mut *out, &v).is_err() {
            out.extend_from_slice(b"null");
        }
    }
}

struct RawJsonEncoder<'a>(&'a datafusion::arrow::array::StringArray);

impl Encoder for RawJsonEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let s = self.0.value(idx);
        // Re-serialized compactly (one record per line); text that is not JSON stays a string.
        let written = match serde_json::from_str::<serde_json::Value>(s) {
            Ok(v) => serde_json::to_writer(&mut *out, &v),
            Err(_) => serde_json::to_writer(&mut *out, s),
        };
        if written.is_err() {
            out.extend_from_slice(b"null");
        }
    }
}

/// The schema sidecar of a text file: `.<file name>.schema.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    version: u32,
    format: String,
    /// Length and CRC-32 of the data file (as stored, compressed) this describes.
    data_len: u64,
    data_crc32: u32,
    columns: Vec<ColumnDesc>,
    /// How NULL is written in CSV/TSV files we wrote (`\N`), so an empty field is an empty
    /// string. Absent for other formats and files written before this was recorded.
    #[serde(default)]
    null: Option<String>,
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

impl Sidecar {
    fn describe(format: Format, schema: &Schema, key: Option<&str>, data: &[u8]) -> Sidecar {
        Sidecar {
            version: SIDECAR_VERSION,
            format: format.to_string(),
            data_len: data.len() as u64,
            data_crc32: crc32(data),
            null: matches!(format, Format::Csv | Format::Tsv).then(|| CSV_NULL.to_string()),
            columns: columns::describe(schema, key),
        }
    }

    fn matches(&self, raw: &[u8]) -> bool {
        self.data_len == raw.len() as u64 && self.data_crc32 == crc32(raw)
    }

    /// The columns as Arrow fields; None (with a warning) if the sidecar is unusable.
    fn fields(&self) -> Option<Vec<ArrowField>> {
        columns::fields(&self.columns)
            .map_err(|e| tracing::warn!("file backend: ignoring a schema file: {e}"))
            .ok()
    }
}

// =============================================================================================
// The state access of the shared Database implementation
// =============================================================================================

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::{BlockingDatabase, Database, FilterSupport, Partition};
    use crate::query::{FilterExpr, Query};
    use crate::query::{Operator, SortOrder};
    use crate::record::Field;
    use crate::record::Record;
    use chrono::DateTime;
    use datafusion::arrow::compute::concat_batches;
    use datafusion::execution::SendableRecordBatchStream;
    use datafusion::logical_expr::{col, lit};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::TryStreamExt;
    use std::sync::atomic::Ordering;

    fn all_types_record(i: i64) -> Record {
        let id = format!("r{i}");
        let mut r = Record::new().with("id", id.as_str()).with_id(id.as_str());
        let typed = |n: &str, v: Value, t: FieldType| Field::typed(n, v, t).unwrap();
        r.set_field(typed(
            "s",
            format!("s{i} ünï 中文 🎉 \"dq\" 'sq', comma\ttab").into(),
            FieldType::String,
        ));
        r.set_field(typed(
            "i",
            Value::Int(i * 1_000_000_007 - 3),
            FieldType::Integer,
        ));
        let f = match i {
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => 1e300,
            _ => i as f64 / 3.0,
        };
        r.set_field(typed("f", Value::Float(f), FieldType::Float));
        r.set_field(typed("b", Value::Bool(i % 2 == 0), FieldType::Boolean));
        r.set_field(typed(
            "d",
            Value::DateTime(DateTime::from_timestamp_micros(1_700_000_000_123_456 + i).unwrap()),
            FieldType::DateTime,
        ));
        r.set_field(typed(
            "j",
            Value::Json(serde_json::json!({"k": [i, "x\"y", {"ü": null}], "n": 1.5})),
            FieldType::Json,
        ));
        r.set_field(typed(
            "bin",
            Value::Binary(vec![0u8, 255, i as u8, b',', b'\n']),
            FieldType::Binary,
        ));
        r.set_field(typed(
            "t",
            Value::String(format!("line1\nline2 \"q\", 'x'\tz {i}")),
            FieldType::Text,
        ));
        r
    }

    fn null_record() -> Record {
        let mut r = Record::new().with("id", "nulls").with_id("nulls");
        for t in FieldType::ALL {
            let name = match t {
                FieldType::String => "s",
                FieldType::Integer => "i",
                FieldType::Float => "f",
                FieldType::Boolean => "b",
                FieldType::DateTime => "d",
                FieldType::Json => "j",
                FieldType::Binary => "bin",
                FieldType::Text => "t",
            };
            r.set_field(Field::typed(name, Value::Null, t).unwrap());
        }
        r
    }

    fn blocking(db: &FileDatabase) -> BlockingDatabase {
        BlockingDatabase::new(Arc::new(db.clone())).unwrap()
    }

    fn leftover_temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn every_format_and_compression_round_trips_all_types() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected: Vec<Record> = (0..6).map(all_types_record).collect();
        expected.push(null_record());
        for format in Format::ALL {
            for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
                let name = if format == Format::Parquet {
                    format!("t-{compression:?}.parquet")
                } else {
                    format::file_name("t", format, compression)
                };
                let path = dir.path().join(&name);
                let db = FileDatabase::open(&path, None, Some(compression)).unwrap();
                assert_eq!(db.format(), format);
                let b = blocking(&db);
                // One single create (tail buffer), then a batch.
                b.create(expected[0].clone()).unwrap();
                b.batch_create(expected[1..].to_vec()).unwrap();
                drop(b);
                // A fresh handle reads what the file holds.
                let again = FileDatabase::open(&path, None, Some(compression)).unwrap();
                let b2 = blocking(&again);
                assert_eq!(b2.count(None).unwrap(), expected.len() as u64, "{name}");
                for rec in &expected {
                    let got = b2.read(rec.id().unwrap()).unwrap();
                    assert_eq!(got.as_ref(), Some(rec), "{name}: record {:?}", rec.id());
                }
                let types: Vec<FieldType> = again
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| FieldType::from_arrow(f))
                    .collect();
                assert_eq!(
                    types,
                    vec![
                        FieldType::String,
                        FieldType::String,
                        FieldType::Integer,
                        FieldType::Float,
                        FieldType::Boolean,
                        FieldType::DateTime,
                        FieldType::Json,
                        FieldType::Binary,
                        FieldType::Text
                    ],
                    "{name}"
                );
                assert_eq!(again.key_column().as_deref(), Some("id"));
                // Updates go through a rewrite too.
                let mut changed = expected[2].clone();
                changed.set("s", "changed");
                assert!(b2.update("r2", changed.clone()).unwrap());
                let third = FileDatabase::open(&path, None, Some(compression)).unwrap();
                assert_eq!(
                    blocking(&third).read("r2").unwrap(),
                    Some(changed),
                    "{name}"
                );
                assert!(leftover_temp_files(dir.path()).is_empty());
            }
        }
    }

    #[test]
    fn text_files_are_plain_and_readable_by_other_tools() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("p.csv");
        let b = blocking(&FileDatabase::open(&csv, None, None).unwrap());
        b.create(
            Record::new()
                .with("id", "1")
                .with("name", "Ada, \"the\" first")
                .with("age", 36),
        )
        .unwrap();
        let text = fs::read_to_string(&csv).unwrap();
        assert_eq!(text, "id,name,age\n1,\"Ada, \"\"the\"\" first\",36\n");
        assert!(dir.path().join(".p.csv.schema.json").exists());

        let json = dir.path().join("p.json");
        let b = blocking(&FileDatabase::open(&json, None, None).unwrap());
        b.create(
            Record::new()
                .with("id", "1")
                .with("j", serde_json::json!({"a": [1]})),
        )
        .unwrap();
        b.create(Record::new().with("id", "2")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"id": "1", "j": {"a": [1]}}, {"id": "2", "j": null}])
        );
    }

    #[test]
    fn create_new_writes_an_empty_file_of_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            FieldType::String.arrow_field("id").with_nullable(false),
            FieldType::Integer.arrow_field("n"),
            FieldType::Json.arrow_field("j"),
        ]));
        for (name, content) in [
            ("a.csv", Some("id,n,j\n")),
            ("a.tsv", Some("id\tn\tj\n")),
            ("a.json", Some("[]\n")),
            ("a.ndjson", Some("")),
            ("a.parquet", None),
            ("a.csv.gz", None),
        ] {
            let path = dir.path().join(name);
            let db =
                FileDatabase::create_new(&path, None, None, schema.clone(), Some("id".to_string()))
                    .unwrap();
            if let Some(c) = content {
                assert_eq!(fs::read_to_string(&path).unwrap(), c, "{name}");
            }
            let again = FileDatabase::open(&path, None, None).unwrap();
            assert_eq!(again.schema().fields(), schema.fields(), "{name}");
            assert_eq!(again.key_column().as_deref(), Some("id"), "{name}");
            assert_eq!(blocking(&again).count(None).unwrap(), 0);
            drop(db);
            let e = FileDatabase::create_new(&path, None, None, schema.clone(), None).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{name}: {e}");
            assert!(e.to_string().contains(name), "{e}");
        }
        // Keyless collections stay keyless.
        let path = dir.path().join("k.parquet");
        FileDatabase::create_new(&path, None, None, schema.clone(), None).unwrap();
        assert_eq!(
            FileDatabase::open(&path, None, None).unwrap().key_column(),
            None
        );
        let path = dir.path().join("k.csv");
        FileDatabase::create_new(&path, None, None, schema.clone(), None).unwrap();
        assert_eq!(
            FileDatabase::open(&path, None, None).unwrap().key_column(),
            None
        );
        let e = FileDatabase::create_new(
            dir.path().join("bad.csv"),
            None,
            None,
            schema,
            Some("nope".into()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        assert!(!dir.path().join("bad.csv").exists());
    }

    #[tokio::test]
    async fn crud_and_search_with_filters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.ndjson");
        let db = FileDatabase::open(&path, None, None).unwrap();
        assert_eq!(db.collection_name(), "people");
        assert!(
            !path.exists(),
            "a missing file is created on the first write"
        );
        assert_eq!(db.count(None).await.unwrap(), 0);
        for (id, name, age) in [("1", "Ada", 36), ("2", "Alan", 41), ("3", "Grace", 45)] {
            db.create(
                Record::new()
                    .with("id", id)
                    .with("name", name)
                    .with("age", age),
            )
            .await
            .unwrap();
        }
        assert!(path.exists());
        let dup = db.create(Record::new().with("id", "1")).await.unwrap_err();
        assert_eq!(dup.kind(), ErrorKind::AlreadyExists);
        assert_eq!(dup.backend(), Some("file"));
        let generated = db.create(Record::new().with("name", "Anon")).await.unwrap();
        assert_eq!(generated.len(), 36, "a UUID");
        assert!(db.exists("2").await.unwrap());
        assert_eq!(
            db.read("2").await.unwrap().unwrap().get("name"),
            Some(&Value::from("Alan"))
        );
        assert!(
            db.update("2", Record::new().with("name", "Alan T").with("age", 42))
                .await
                .unwrap()
        );
        assert!(
            !db.update("nope", Record::new().with("age", 1))
                .await
                .unwrap()
        );
        assert!(db.delete(&generated).await.unwrap());
        assert!(!db.delete(&generated).await.unwrap());
        assert_eq!(
            db.upsert("4", Record::new().with("name", "Barbara").with("age", 30))
                .await
                .unwrap(),
            "4"
        );
        assert_eq!(
            db.upsert("4", Record::new().with("name", "Barbara L").with("age", 31))
                .await
                .unwrap(),
            "4"
        );

        let q = Query::new()
            .filter("age", Operator::Ge, 35)
            .unwrap()
            .sort("age", SortOrder::Desc)
            .limit(2);
        let found = db.search(&q).await.unwrap();
        let ids: Vec<&str> = found.iter().map(|r| r.id().unwrap()).collect();
        assert_eq!(ids, ["3", "2"]);
        let q = Query::new().filter("name", Operator::Like, "A%").unwrap();
        assert_eq!(db.count(Some(&q)).await.unwrap(), 2);
        let q = Query::new()
            .filter("id", Operator::In, vec!["1", "4"])
            .unwrap()
            .sort("id", SortOrder::Asc)
            .offset(1)
            .project(["name"]);
        let found = db.search(&q).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].get("name"), Some(&Value::from("Barbara L")));
        let bad = db
            .search(&Query::new().filter("nope", Operator::Eq, 1).unwrap())
            .await
            .unwrap_err();
        assert!(bad.to_string().contains("nope"), "{bad}");

        // Everything is in the file.
        let again = FileDatabase::open(&path, None, None).unwrap();
        assert_eq!(again.count(None).await.unwrap(), 4);
        assert_eq!(
            again.read("4").await.unwrap().unwrap().get("age"),
            Some(&Value::Int(31))
        );
        let updates = vec![
            ("1".to_string(), Record::new().with("age", 37)),
            ("2".to_string(), Record::new().with("age", "not a number")),
        ];
        assert!(again.batch_update(updates).await.is_err());
        assert_eq!(
            again.read("1").await.unwrap().unwrap().get("age"),
            Some(&Value::Int(36)),
            "a failed batch update writes nothing"
        );
        assert_eq!(
            again.batch_delete(&["1".into(), "x".into()]).await.unwrap(),
            [true, false]
        );
        assert_eq!(again.clear().await.unwrap(), 3);
        assert_eq!(db.count(None).await.unwrap(), 0, "the other handle reloads");
    }

    #[tokio::test]
    async fn sql_side_insert_delete_update_where_and_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let schema = Arc::new(Schema::new(vec![
            ArrowField::new("k", DataType::Int64, false),
            ArrowField::new("v", DataType::Utf8View, true),
        ]));
        let db =
            FileDatabase::create_new(&path, None, None, schema.clone(), Some("k".into())).unwrap();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(datafusion::arrow::array::Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(datafusion::arrow::array::StringViewArray::from(vec![
                    Some("a"),
                    None,
                    Some("c"),
                    Some("d"),
                ])),
            ],
        )
        .unwrap();
        let stream = |b: RecordBatch| -> SendableRecordBatchStream {
            Box::pin(RecordBatchStreamAdapter::new(
                b.schema(),
                futures::stream::iter(vec![Ok(b)]),
            ))
        };
        assert_eq!(db.insert(stream(batch.clone())).await.unwrap(), 4);
        let e = db.insert(stream(batch.slice(0, 1))).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
        let gt2 = FilterExpr::Cond(crate::query::Filter::new("k", Operator::Gt, 2).unwrap());
        assert_eq!(db.filter_support(&gt2), FilterSupport::Exact);
        assert_eq!(
            db.update_where(&[("k".into(), col("t.k") + lit(10i64))], Some(&gt2))
                .await
                .unwrap(),
            2
        );
        let lt2 = FilterExpr::Cond(crate::query::Filter::new("k", Operator::Lt, 2).unwrap());
        assert_eq!(db.delete_where(Some(&lt2)).await.unwrap(), 1);
        let again = FileDatabase::open(&path, None, None).unwrap();
        let q = Query::new().sort("k", SortOrder::Asc);
        let batches: Vec<RecordBatch> = again
            .scan(&q, Partition::ALL)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let all = concat_batches(&batches[0].schema(), &batches).unwrap();
        let keys: Vec<i64> = all
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        assert_eq!(keys, [2, 13, 14]);
        assert_eq!(again.schema().field(1).data_type(), &DataType::Utf8View);
        assert_eq!(again.delete_where(None).await.unwrap(), 3);
        assert_eq!(db.count(None).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn two_handles_on_one_file_lose_no_update() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["shared.csv", "shared.ndjson.gz", "shared.parquet"] {
            let path = dir.path().join(name);
            let a = FileDatabase::open(&path, None, None).unwrap();
            let b = FileDatabase::open(&path, None, None).unwrap();
            for i in 0..15 {
                a.create(Record::new().with("id", format!("a{i}")).with("n", i))
                    .await
                    .unwrap();
                b.create(Record::new().with("id", format!("b{i}")).with("n", i))
                    .await
                    .unwrap();
            }
            // Updates of the other handle's records, interleaved.
            assert!(a.update("b3", Record::new().with("n", 100)).await.unwrap());
            assert!(b.update("a3", Record::new().with("n", 200)).await.unwrap());
            assert_eq!(a.count(None).await.unwrap(), 30, "{name}");
            assert_eq!(b.count(None).await.unwrap(), 30, "{name}");
            let c = FileDatabase::open(&path, None, None).unwrap();
            assert_eq!(c.count(None).await.unwrap(), 30, "{name}");
            assert_eq!(
                c.read("b3").await.unwrap().unwrap().get("n"),
                Some(&Value::Int(100))
            );
            assert_eq!(
                c.read("a3").await.unwrap().unwrap().get("n"),
                Some(&Value::Int(200))
            );
        }
    }

    #[test]
    fn concurrent_writers_in_threads_lose_no_update() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.json");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    // Each thread has its own handle (its own lock file descriptor), like a
                    // separate process.
                    let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
                    for i in 0..20 {
                        db.create(Record::new().with("id", format!("{t}-{i}")).with("t", t))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
        assert_eq!(db.count(None).unwrap(), 80);
        assert!(leftover_temp_files(dir.path()).is_empty());
    }

    #[test]
    fn changes_by_other_programs_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ext.csv");
        let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
        db.create(Record::new().with("id", "1").with("n", 5))
            .unwrap();
        // Another program appends a row without taking the lock.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"2,6\n").unwrap();
        drop(f);
        assert_eq!(db.count(None).unwrap(), 2);
        assert_eq!(
            db.read("2").unwrap().unwrap().get("n"),
            Some(&Value::Int(6))
        );
    }

    #[test]
    fn files_from_other_tools_are_inferred() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foreign.csv");
        fs::write(&path, "id,name,score,ok\n7,x,1.5,true\n8,,2,false\n").unwrap();
        let db = FileDatabase::open(&path, None, None).unwrap();
        let types: Vec<FieldType> = db
            .schema()
            .fields()
            .iter()
            .map(|f| FieldType::from_arrow(f))
            .collect();
        assert_eq!(
            types,
            [
                FieldType::Integer,
                FieldType::String,
                FieldType::Float,
                FieldType::Boolean
            ]
        );
        assert_eq!(db.key_column().as_deref(), Some("id"));
        let b = blocking(&db);
        assert_eq!(
            b.read("8").unwrap().unwrap().get("name"),
            Some(&Value::Null)
        );
        b.create(Record::new().with("id", 9).with("name", "y"))
            .unwrap();
        assert!(dir.path().join(".foreign.csv.schema.json").exists());

        // No usable id column: no key, row numbers are the ids.
        let path = dir.path().join("rows.ndjson");
        fs::write(
            &path,
            "{\"b\": 1, \"a\": \"x\"}\n{\"b\": 2.5, \"a\": {\"n\": 1}}\n",
        )
        .unwrap();
        let db = FileDatabase::open(&path, None, None).unwrap();
        assert_eq!(db.key_column(), None);
        let names: Vec<&str> = vec!["b", "a"];
        let schema = db.schema();
        assert_eq!(
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>(),
            names
        );
        assert_eq!(FieldType::from_arrow(schema.field(0)), FieldType::Float);
        assert_eq!(FieldType::from_arrow(schema.field(1)), FieldType::Json);
        let r = blocking(&db).read("2").unwrap().unwrap();
        assert_eq!(r.get("a"), Some(&Value::Json(serde_json::json!({"n": 1}))));
        // Duplicate ids: no key either.
        let path = dir.path().join("dups.json");
        fs::write(&path, "[{\"id\": 1}, {\"id\": 1}]").unwrap();
        assert_eq!(
            FileDatabase::open(&path, None, None).unwrap().key_column(),
            None
        );
    }

    #[test]
    fn corrupt_files_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in [
            ("bad.parquet", b"PAR1 this is not parquet".as_slice()),
            ("bad.csv.gz", b"not gzip".as_slice()),
            ("bad.csv.zst", b"not zstd".as_slice()),
            ("bad.json", b"[{\"a\": 1}, {\"a\": ".as_slice()),
            ("bad2.json", b"42".as_slice()),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, content).unwrap();
            let e = FileDatabase::open(&path, None, None).unwrap_err();
            assert!(
                e.to_string().contains(&path.display().to_string()),
                "{name}: {e}"
            );
            assert_eq!(e.backend(), Some("file"));
        }
        // A directory where the file should be.
        let path = dir.path().join("dir.csv");
        fs::create_dir(&path).unwrap();
        let e = FileDatabase::open(&path, None, None).unwrap_err();
        assert!(e.to_string().contains("dir.csv"), "{e}");
        let e = FileDatabase::open(dir.path().join("x.unknown"), None, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn a_csv_row_with_the_wrong_number_of_fields_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        fs::write(&path, "id,a\n1,2\n3,4,5\n6,7\n").unwrap();
        let e = FileDatabase::open(&path, None, None).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
        // The same with a sidecar (no inference pass): the reader reports it.
        let path = dir.path().join("typed.csv");
        let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
        db.create(Record::new().with("id", "1").with("a", 2))
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"3,4,5\n").unwrap();
        drop(f);
        let msg = FileDatabase::open(&path, None, None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("typed.csv") && msg.contains("line 3"), "{msg}");
        assert!(
            msg.contains("schema.json"),
            "names the stale sidecar: {msg}"
        );
    }

    #[test]
    fn json_that_conflicts_with_the_schema_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typed.ndjson");
        let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
        db.create(Record::new().with("id", "1").with("age", 30))
            .unwrap();
        db.create(Record::new().with("id", "2").with("age", 31))
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\": \"3\", \"age\": \"abc\"}\n").unwrap();
        drop(f);
        let e = db.count(None).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.kind(), ErrorKind::Type, "{msg}");
        assert!(
            msg.contains("typed.ndjson") && msg.contains("line 3"),
            "{msg}"
        );
        assert!(msg.contains("'age'") && msg.contains("INTEGER"), "{msg}");
        // A torn last line (no newline, cut inside the object).
        let path = dir.path().join("torn.ndjson");
        fs::write(&path, "{\"id\": \"1\"}\n{\"id\": \"2\", \"na").unwrap();
        let msg = FileDatabase::open(&path, None, None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("torn.ndjson") && msg.contains("line 2 is cut off"),
            "{msg}"
        );
    }

    #[test]
    fn a_failed_write_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["w.csv", "w.parquet", "w.json.zst"] {
            let path = dir.path().join(name);
            let db = FileDatabase::open(&path, None, None).unwrap();
            let b = blocking(&db);
            b.create(Record::new().with("id", "1").with("v", "one"))
                .unwrap();
            let before = fs::read(&path).unwrap();
            db.access
                .shared
                .fail_next_rename
                .store(true, Ordering::SeqCst);
            let e = b
                .create(Record::new().with("id", "2").with("v", "two"))
                .unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
            assert_eq!(fs::read(&path).unwrap(), before, "{name}: untouched");
            assert!(
                leftover_temp_files(dir.path()).is_empty(),
                "{name}: temp removed"
            );
            // The handle reloads from the file: the failed record is not there.
            assert_eq!(b.count(None).unwrap(), 1);
            assert!(b.read("2").unwrap().is_none());
            b.create(Record::new().with("id", "2").with("v", "two"))
                .unwrap();
            assert_eq!(
                blocking(&FileDatabase::open(&path, None, None).unwrap())
                    .count(None)
                    .unwrap(),
                2
            );
        }
    }

    #[test]
    fn removing_a_file_removes_its_sidecars() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.tsv");
        let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
        db.create(Record::new().with("id", "1")).unwrap();
        remove_file_and_sidecars(&path).unwrap();
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(
            db.count(None).unwrap(),
            0,
            "an open handle sees the file is gone"
        );
        remove_file_and_sidecars(&path).unwrap();
    }
}
