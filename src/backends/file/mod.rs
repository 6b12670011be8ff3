//! The file backend: a directory of JSON / NDJSON / CSV / TSV / Parquet files as tables.
//!
//! URL: `file:///abs/dir[?format=parquet&compression=gzip&infer_rows=1000]`. Every data file
//! directly in the directory is a table named after its stem (`lineitem.parquet` →
//! `lineitem`); every subdirectory holding data files is a table named after it (Hive
//! partitions such as `year=2024/` become columns). Nothing outside the directory is ever read,
//! written or dropped: names with `/`, `..` or a leading `.` are refused, and symlinks that
//! lead out are skipped.
//!
//! SQL reads go through DataFusion's own `ListingTable` and format readers, so Parquet gets
//! projection, row-group/page pruning and predicate pushdown. The record API
//! ([`FileDatabase`]) works on single files with atomic, locked writes; SQL `INSERT`,
//! `DELETE` and `UPDATE` on a single-file table go through it, and `INSERT` into a directory
//! table writes a new file through DataFusion.

pub mod format;
pub mod records;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

pub use format::{Compression, Format};
pub use records::FileDatabase;

use crate::database::{Backend, CollectionSpec, Database};
use crate::error::{Error, Result};
use crate::table::{DatabaseTable, Location, Settings};

const KIND: &str = "file";
const SCHEMA: &str = "public";

/// Options of a file backend.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// Format of tables created with `CREATE TABLE`.
    pub default_format: Format,
    /// Compression of created text tables.
    pub compression: Compression,
    /// Rows read to infer a schema (CSV/JSON).
    pub infer_rows: usize,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            default_format: Format::Parquet,
            compression: Compression::None,
            infer_rows: 1000,
        }
    }
}

/// One table found in the directory.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    File {
        path: PathBuf,
        format: Format,
        compression: Compression,
    },
    Dir {
        path: PathBuf,
        format: Format,
        compression: Compression,
    },
}

/// A directory of files as a backend.
#[derive(Debug)]
pub struct FileBackend {
    root: PathBuf,
    options: FileOptions,
}

impl FileBackend {
    /// A backend over `root` (which must exist and be a directory).
    pub fn new(root: impl AsRef<Path>, options: FileOptions) -> Result<Self> {
        let root = root.as_ref();
        let canonical = root.canonicalize().map_err(|e| {
            Error::io(
                format!(
                    "cannot open directory '{}' for the file backend",
                    root.display()
                ),
                e,
            )
        })?;
        if !canonical.is_dir() {
            return Err(Error::config(format!(
                "'{}' is not a directory",
                root.display()
            )));
        }
        Ok(FileBackend {
            root: canonical,
            options,
        })
    }

    /// From a `file:///dir?…` URL.
    pub fn from_url(url: &url::Url) -> Result<Self> {
        let root = url.to_file_path().map_err(|_| {
            Error::config(format!(
                "'{url}' does not name a local directory; use file:///absolute/dir"
            ))
        })?;
        let mut options = FileOptions::default();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "format" => options.default_format = v.parse()?,
                "compression" => options.compression = v.parse()?,
                "infer_rows" => {
                    options.infer_rows = v.parse().map_err(|_| {
                        Error::config(format!("infer_rows must be a number, got '{v}'"))
                    })?
                }
                other => {
                    return Err(Error::config(format!(
                        "unknown file backend option '{other}'; known: format, compression, infer_rows"
                    )));
                }
            }
        }
        Self::new(root, options)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn err(&self, e: Error) -> Error {
        e.with_backend(KIND)
    }

    /// Checks a table name: one plain path component.
    fn check_name(&self, name: &str) -> Result<()> {
        let mut comps = Path::new(name).components();
        let plain = matches!(comps.next(), Some(Component::Normal(_))) && comps.next().is_none();
        if !plain || name.starts_with('.') || name.contains('/') || name.contains('\\') {
            return Err(self.err(Error::query(format!(
                "invalid table name '{name}': a file table is one name inside '{}' (no '/', '..' or leading '.')",
                self.root.display()
            ))));
        }
        Ok(())
    }

    /// Is `path` (after resolving symlinks) inside the root?
    fn inside(&self, path: &Path) -> bool {
        path.canonicalize()
            .map(|p| p.starts_with(&self.root))
            .unwrap_or(false)
    }

    fn entries(&self) -> Vec<(String, Entry)> {
        let mut out = Vec::new();
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return out;
        };
        for item in dir.flatten() {
            let path = item.path();
            if !self.inside(&path) {
                continue;
            }
            if path.is_dir() {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if name.starts_with('.') || name.starts_with('_') {
                    continue;
                }
                if let Some((format, compression)) = first_data_file(&path, 4) {
                    out.push((
                        name.to_string(),
                        Entry::Dir {
                            path: path.clone(),
                            format,
                            compression,
                        },
                    ));
                }
            } else if let Some((stem, format, compression)) = format::detect(&path) {
                out.push((
                    stem,
                    Entry::File {
                        path,
                        format,
                        compression,
                    },
                ));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn find(&self, name: &str) -> Result<Option<Entry>> {
        self.check_name(name)?;
        let mut found: Vec<Entry> = self
            .entries()
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, e)| e)
            .collect();
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => Err(self.err(Error::query(format!(
                "table '{name}' is ambiguous: several files in '{}' are named '{name}.*'; rename all but one",
                self.root.display()
            )))),
        }
    }

    /// A DataFusion listing table over an entry, using `schema` when known.
    async fn listing_table(
        &self,
        entry: &Entry,
        schema: Option<datafusion::arrow::datatypes::SchemaRef>,
        null_marker: Option<&str>,
    ) -> Result<ListingTable> {
        let (path, format, compression, is_dir) = match entry {
            Entry::File {
                path,
                format,
                compression,
            } => (path, *format, *compression, false),
            Entry::Dir {
                path,
                format,
                compression,
            } => (path, *format, *compression, true),
        };
        let mut url_text = path.to_string_lossy().into_owned();
        if is_dir && !url_text.ends_with('/') {
            url_text.push('/');
        }
        let url = ListingTableUrl::parse(&url_text).map_err(|e| self.err(Error::from(e)))?;
        let fc = match compression {
            Compression::None => FileCompressionType::UNCOMPRESSED,
            Compression::Gzip => FileCompressionType::GZIP,
            Compression::Zstd => FileCompressionType::ZSTD,
        };
        let file_format: Arc<dyn FileFormat> = match format {
            Format::Parquet => Arc::new(ParquetFormat::default()),
            Format::Csv | Format::Tsv => Arc::new(
                CsvFormat::default()
                    .with_has_header(true)
                    .with_delimiter(if format == Format::Tsv { b'\t' } else { b',' })
                    .with_schema_infer_max_rec(self.options.infer_rows)
                    .with_null_regex(null_marker.map(records::null_regex))
                    .with_file_compression_type(fc),
            ),
            Format::Json | Format::NdJson => Arc::new(
                JsonFormat::default()
                    .with_newline_delimited(format == Format::NdJson)
                    .with_schema_infer_max_rec(self.options.infer_rows)
                    .with_file_compression_type(fc),
            ),
        };
        let extension = format::file_name("", format, compression);
        let mut options = ListingOptions::new(file_format).with_file_extension(extension);
        let state = SessionContext::new().state();
        if is_dir {
            let partitions = options
                .infer_partitions(&state, &url)
                .await
                .map_err(|e| self.err(e.into()))?;
            let cols = partitions
                .into_iter()
                .map(|c| (c, datafusion::arrow::datatypes::DataType::Utf8))
                .collect::<Vec<_>>();
            options = options.with_table_partition_cols(cols);
        }
        let schema = match schema {
            Some(s) => s,
            None => options.infer_schema(&state, &url).await.map_err(|e| {
                self.err(Error::query(format!(
                    "cannot read the schema of '{}': {e}",
                    path.display()
                )))
            })?,
        };
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        ListingTable::try_new(config).map_err(|e| self.err(e.into()))
    }

    /// The SQL table for a collection: DataFusion's listing table, with writes to single files
    /// routed through [`FileDatabase`].
    pub async fn sql_table(
        &self,
        name: &str,
        location: Location,
        settings: Arc<Settings>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(entry) = self.find(name)? else {
            return Ok(None);
        };
        match &entry {
            Entry::File {
                path,
                format,
                compression,
            } => {
                let (_, sidecar) = records::sidecar_paths(path)?;
                if *format == Format::Parquet || !sidecar.exists() {
                    // Parquet carries its schema, and files from other tools have no sidecar:
                    // DataFusion reads them directly; the record store is opened (and the file
                    // loaded) only if a statement writes.
                    let listing = self.listing_table(&entry, None, None).await?;
                    return Ok(Some(Arc::new(FileTable {
                        listing: Arc::new(listing),
                        writer: WriterSource::Lazy {
                            compression: *compression,
                            location,
                            settings,
                        },
                        path: path.clone(),
                        format: *format,
                    })));
                }
                let db = Arc::new(FileDatabase::open(
                    path.clone(),
                    Some(*format),
                    Some(*compression),
                )?);
                let schema = db.schema();
                let writer = DatabaseTable::new(db.clone(), location, settings);
                // DataFusion 55's CSV scan ignores a NULL marker (it only uses it to infer
                // schemas), so CSV/TSV files we wrote (NULL as `\N`, "" as an empty string)
                // read through the record store, as do types DataFusion's text readers cannot
                // parse as we store them (BINARY in CSV/JSON, nested JSON columns).
                if !listing_can_read(*format, &schema) || db.text_null_marker().is_some() {
                    return Ok(Some(Arc::new(writer)));
                }
                let listing = self.listing_table(&entry, Some(schema), None).await?;
                Ok(Some(Arc::new(FileTable {
                    listing: Arc::new(listing),
                    writer: WriterSource::Ready(writer),
                    path: path.clone(),
                    format: *format,
                })))
            }
            Entry::Dir { path, format, .. } => {
                let listing = self.listing_table(&entry, None, None).await?;
                Ok(Some(Arc::new(FileTable {
                    listing: Arc::new(listing),
                    writer: WriterSource::None,
                    path: path.clone(),
                    format: *format,
                })))
            }
        }
    }
}

/// Can DataFusion's reader for `format` parse every column of `schema` as the record store
/// writes it? (CSV has no binary type; the JSON reader expects hex for binary and cannot put a
/// nested value into a text column.)
fn listing_can_read(format: Format, schema: &datafusion::arrow::datatypes::Schema) -> bool {
    use crate::record::FieldType;
    schema
        .fields()
        .iter()
        .all(|f| match FieldType::from_arrow(f) {
            FieldType::Binary => format == Format::Parquet,
            FieldType::Json => matches!(format, Format::Parquet | Format::Csv | Format::Tsv),
            _ => true,
        })
}

/// The first data file under `dir` (searching partition subdirectories), for its format.
fn first_data_file(dir: &Path, depth: usize) -> Option<(Format, Compression)> {
    let mut subdirs = Vec::new();
    for item in std::fs::read_dir(dir).ok()?.flatten() {
        let p = item.path();
        if p.is_dir() {
            subdirs.push(p);
        } else if let Some((_, f, c)) = format::detect(&p) {
            return Some((f, c));
        }
    }
    if depth == 0 {
        return None;
    }
    subdirs.sort();
    subdirs.iter().find_map(|d| first_data_file(d, depth - 1))
}

#[async_trait]
impl Backend for FileBackend {
    fn kind(&self) -> &str {
        KIND
    }

    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn schema_names(&self) -> Vec<String> {
        vec![SCHEMA.to_string()]
    }

    fn collection_names(&self, schema: &str) -> Vec<String> {
        if schema != SCHEMA {
            return Vec::new();
        }
        let mut names: Vec<String> = self.entries().into_iter().map(|(n, _)| n).collect();
        names.dedup();
        names
    }

    async fn open(&self, schema: &str, name: &str) -> Result<Option<Arc<dyn Database>>> {
        if schema != SCHEMA {
            return Ok(None);
        }
        match self.find(name)? {
            None => Ok(None),
            Some(Entry::File { path, format, compression }) => {
                Ok(Some(Arc::new(FileDatabase::open(path, Some(format), Some(compression))?) as Arc<dyn Database>))
            }
            Some(Entry::Dir { path, .. }) => Err(self.err(Error::unsupported(format!(
                "'{name}' is a directory table ({}); the record API works on single-file tables — use SQL for it",
                path.display()
            )))),
        }
    }

    async fn sql_table(
        &self,
        schema: &str,
        name: &str,
        location: Location,
        settings: Arc<Settings>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        if schema != SCHEMA {
            return Ok(None);
        }
        FileBackend::sql_table(self, name, location, settings).await
    }

    async fn create_collection(
        &self,
        schema: &str,
        name: &str,
        spec: CollectionSpec,
        if_not_exists: bool,
    ) -> Result<Arc<dyn Database>> {
        if schema != SCHEMA {
            return Err(self.err(Error::unsupported(format!(
                "the file backend has one schema, '{SCHEMA}'"
            ))));
        }
        if let Some(existing) = self.find(name)? {
            if if_not_exists && let Some(db) = self.open(schema, name).await? {
                return Ok(db);
            }
            let path = match existing {
                Entry::File { path, .. } | Entry::Dir { path, .. } => path,
            };
            return Err(self.err(Error::already_exists(format!(
                "table '{name}' exists: {}",
                path.display()
            ))));
        }
        let file = self.root.join(format::file_name(
            name,
            self.options.default_format,
            self.options.compression,
        ));
        let db = FileDatabase::create_new(
            file,
            self.options.default_format,
            self.options.compression,
            spec.schema,
            spec.key,
        )?;
        Ok(Arc::new(db))
    }

    async fn drop_collection(&self, schema: &str, name: &str, if_exists: bool) -> Result<bool> {
        if schema != SCHEMA {
            return Ok(false);
        }
        match self.find(name)? {
            None if if_exists => Ok(false),
            None => Err(self.err(Error::not_found(format!(
                "table '{name}' does not exist in '{}'",
                self.root.display()
            )))),
            Some(Entry::File { path, .. }) => {
                if !self.inside(&path) {
                    return Err(self.err(Error::query(format!(
                        "refusing to remove '{}': outside the attached directory",
                        path.display()
                    ))));
                }
                records::remove_file_and_sidecars(&path)?;
                Ok(true)
            }
            Some(Entry::Dir { path, .. }) => {
                if !self.inside(&path) || path == self.root {
                    return Err(self.err(Error::query(format!(
                        "refusing to remove '{}': outside the attached directory",
                        path.display()
                    ))));
                }
                std::fs::remove_dir_all(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                Ok(true)
            }
        }
    }
}

/// A file table for SQL: DataFusion's listing table for reads (and for inserts into
/// directories), the record store for writes to a single file.
#[derive(Debug)]
enum WriterSource {
    /// The record store, already open.
    Ready(DatabaseTable),
    /// Opened on the first write (opening loads the file).
    Lazy {
        compression: Compression,
        location: Location,
        settings: Arc<Settings>,
    },
    /// A directory table: DataFusion writes new files.
    None,
}

#[derive(Debug)]
struct FileTable {
    listing: Arc<ListingTable>,
    writer: WriterSource,
    /// The file or directory, named in read errors.
    path: PathBuf,
    format: Format,
}

impl FileTable {
    fn writer(&self) -> Result<Option<DatabaseTable>> {
        Ok(match &self.writer {
            WriterSource::Ready(w) => Some(w.clone()),
            WriterSource::Lazy {
                compression,
                location,
                settings,
            } => {
                let db =
                    FileDatabase::open(self.path.clone(), Some(self.format), Some(*compression))?;
                Some(DatabaseTable::new(
                    Arc::new(db),
                    location.clone(),
                    settings.clone(),
                ))
            }
            WriterSource::None => None,
        })
    }
}

#[async_trait]
impl TableProvider for FileTable {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.listing.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.listing.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let plan = self.listing.scan(state, projection, filters, limit).await?;
        if self.format == Format::Parquet {
            // Parquet names bad files when it opens them; keep the scan node bare so
            // DataFusion's physical optimizer (limit, filter and dynamic-filter pushdown) sees it.
            return Ok(plan);
        }
        // CSV/JSON readers report the line but not the file.
        Ok(Arc::new(crate::table::ErrorContextExec::new(
            plan,
            format!("reading {}", self.path.display()),
        )))
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match self.writer()? {
            Some(w) => w.insert_into(state, input, insert_op).await,
            None => self.listing.insert_into(state, input, insert_op).await,
        }
    }

    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match self.writer()? {
            Some(w) => w.delete_from(state, filters).await,
            None => Err(
                Error::unsupported("DELETE on a directory table is not supported")
                    .with_backend(KIND)
                    .into(),
            ),
        }
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match self.writer()? {
            Some(w) => w.update(state, assignments, filters).await,
            None => Err(
                Error::unsupported("UPDATE on a directory table is not supported")
                    .with_backend(KIND)
                    .into(),
            ),
        }
    }
}
