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
//!
//! Built tables (inferred schema, listing options, the opened record store) are cached per
//! table path and reused while a fingerprint of the table's files (length, modification time,
//! inode and change time of each file; for directories, of every file below them) is
//! unchanged, so planning does not re-read footers per statement and never sees stale data.
//!
//! Parquet reads can be tuned per attached directory with the URL options
//! `pushdown_filters`, `reorder_filters` and `enable_page_index` (`true`/`false`); an option
//! not given follows the session's `datafusion.execution.parquet.*` setting (so
//! `SET datafusion.execution.parquet.pushdown_filters = true` works too). DataFusion turns
//! filter pushdown on whenever the session asks for it, even where the URL says `false`.

mod cache;
pub mod format;
pub mod names;
pub mod nan;
pub mod records;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::config::ConfigOptions;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::execution::cache::TableScopedPath;
use datafusion::execution::cache::cache_manager::{CachedFileMetadata, FileStatisticsCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

pub use format::{Compression, Format};
pub use records::FileDatabase;

use self::cache::{Built, Fingerprint, TableCache};
use crate::config::{BackendKind, OptionKind, OptionSpec, UrlOptions};
use crate::database::{Backend, CollectionSpec, Database};
use crate::error::{Error, Result};
use crate::table::{DatabaseTable, Location};

const KIND: &str = "file";
const SCHEMA: &str = "public";
/// Memory limit of each cached table's file-statistics cache (an upper bound; a file's
/// statistics take a few KiB).
const STATISTICS_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Options of a file backend.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// Format of tables created with `CREATE TABLE`.
    pub default_format: Format,
    /// Compression of created text tables.
    pub compression: Compression,
    /// Rows read to infer a schema (CSV/JSON).
    pub infer_rows: usize,
    /// Parquet read settings of this directory.
    pub parquet: ParquetTuning,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            default_format: Format::Parquet,
            compression: Compression::None,
            infer_rows: 1000,
            parquet: ParquetTuning::default(),
        }
    }
}

/// Parquet read settings of a file backend; `None` follows the session's
/// `datafusion.execution.parquet.*` value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParquetTuning {
    /// Evaluate filters while decoding (late materialization), skipping rows early.
    /// DataFusion also turns this on whenever the session's setting is true.
    pub pushdown_filters: Option<bool>,
    /// Let the pushed-down filters be reordered to run the cheapest / most selective first.
    pub reorder_filters: Option<bool>,
    /// Read the page index to prune pages inside row groups.
    pub enable_page_index: Option<bool>,
}

impl ParquetTuning {
    /// The settings a scan uses: ours where given, the session's otherwise.
    fn effective(&self, config: &ConfigOptions) -> (bool, bool, bool) {
        let session = &config.execution.parquet;
        (
            self.pushdown_filters.unwrap_or(session.pushdown_filters),
            self.reorder_filters.unwrap_or(session.reorder_filters),
            self.enable_page_index.unwrap_or(session.enable_page_index),
        )
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

impl Entry {
    fn path(&self) -> &Path {
        match self {
            Entry::File { path, .. } | Entry::Dir { path, .. } => path,
        }
    }

    fn format(&self) -> Format {
        match self {
            Entry::File { format, .. } | Entry::Dir { format, .. } => *format,
        }
    }
}

/// A directory of files as a backend.
#[derive(Debug)]
pub struct FileBackend {
    root: PathBuf,
    options: FileOptions,
    /// Built tables by path, reused while their files are unchanged.
    cache: Arc<TableCache>,
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
            cache: Arc::new(TableCache::default()),
        })
    }

    /// From a `file:///dir?…` URL.
    pub fn from_url(url: &url::Url) -> Result<Self> {
        let options = UrlOptions::parse(KIND, url, FILE_OPTIONS)?;
        Self::from_options(url, &options)
    }

    fn from_options(url: &url::Url, o: &UrlOptions) -> Result<Self> {
        let root = url.to_file_path().map_err(|_| {
            Error::config(format!(
                "'{url}' does not name a local directory; use file:///absolute/dir"
            ))
        })?;
        let mut options = FileOptions::default();
        if let Some(v) = o.text("format")? {
            options.default_format = v.parse()?;
        }
        if let Some(v) = o.text("compression")? {
            options.compression = v.parse()?;
        }
        if let Some(n) = o.integer("infer_rows")? {
            options.infer_rows = usize::try_from(n).unwrap_or(usize::MAX);
        }
        options.parquet.pushdown_filters = o.bool("pushdown_filters")?;
        options.parquet.reorder_filters = o.bool("reorder_filters")?;
        options.parquet.enable_page_index = o.bool("enable_page_index")?;
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
        build: u64,
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
        // DataFusion caches directory listings per (table reference, path) for the life of
        // the session: a reference new for every build makes a rebuilt table (the fingerprint
        // changed, e.g. a file was added) list the directory afresh.
        let url = ListingTableUrl::parse(&url_text)
            .map_err(|e| self.err(Error::from(e)))?
            .with_table_ref(TableReference::bare(format!("{url_text}#{build}")));
        let state = SessionContext::new().state();
        let options = listing_options(
            format,
            compression,
            self.options.infer_rows,
            null_marker,
            &state,
            &url,
            is_dir,
        )
        .await
        .map_err(|e| self.err(e.into()))?;
        let schema = match schema {
            Some(s) => s,
            None => {
                let inferred = options.infer_schema(&state, &url).await.map_err(|e| {
                    self.err(Error::query(format!(
                        "cannot read the schema of '{}': {e}",
                        path.display()
                    )))
                })?;
                null_columns_as_text(inferred)
            }
        };
        let schema = if matches!(format, Format::Json | Format::NdJson) && !is_dir {
            in_file_order(schema, path, compression)
        } else {
            schema
        };
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        // The table is cached across statements: give it a statistics cache of its own (as
        // `SessionContext::register_parquet` does with the session's), so the per-file
        // statistics are computed once per file version (entries are checked against the
        // file's length and modification time).
        let statistics: Arc<FileStatisticsCache> = Arc::new(
            DefaultCache::<TableScopedPath, CachedFileMetadata>::new(STATISTICS_CACHE_BYTES)
                .with_name("dataknobs file table statistics"),
        );
        Ok(ListingTable::try_new(config)
            .map_err(|e| self.err(e.into()))?
            .with_cache(Some(statistics)))
    }

    /// Builds what is expensive about a table: schema inference, the listing options and,
    /// for CSV/JSON files written by dataknobs, the loaded record store.
    async fn build(&self, entry: &Entry) -> Result<Built> {
        let build = self.cache.next_build();
        match entry {
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
                    let listing = self.listing_table(entry, None, None, build).await?;
                    return Ok(Built::Listing(Arc::new(listing)));
                }
                let db = FileDatabase::open(path.clone(), Some(*format), Some(*compression))?;
                let schema = db.schema();
                // DataFusion 55's CSV scan ignores a NULL marker (it only uses it to infer
                // schemas), so CSV/TSV files we wrote (NULL as `\N`, "" as an empty string)
                // read through the record store, as do types DataFusion's text readers cannot
                // parse as we store them (BINARY in CSV/JSON, nested JSON columns).
                if !listing_can_read(*format, &schema) || db.text_null_marker().is_some() {
                    return Ok(Built::Store { db, listing: None });
                }
                let listing = self.listing_table(entry, Some(schema), None, build).await?;
                Ok(Built::Store {
                    db,
                    listing: Some(Arc::new(listing)),
                })
            }
            Entry::Dir { .. } => Ok(Built::Listing(Arc::new(
                self.listing_table(entry, None, None, build).await?,
            ))),
        }
    }

    /// The built table for an entry: from the cache while the entry's files are unchanged,
    /// built (and cached) otherwise.
    async fn built(&self, entry: &Entry) -> Result<Built> {
        let path = entry.path();
        // Fingerprint first: a change during the build then makes the next lookup miss.
        let fingerprint = match entry {
            Entry::File { .. } => Fingerprint::of_file(path),
            Entry::Dir { .. } => Fingerprint::of_dir(path),
        }
        .map_err(|e| self.err(e))?;
        if let Some(built) = self.cache.get(path, &fingerprint) {
            return Ok(built);
        }
        let built = self.build(entry).await?;
        self.cache
            .put(path.to_path_buf(), fingerprint, built.clone());
        Ok(built)
    }

    /// The SQL table for a collection: DataFusion's listing table, with writes to single files
    /// routed through [`FileDatabase`].
    pub async fn sql_table(
        &self,
        name: &str,
        location: Location,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(entry) = self.find(name)? else {
            return Ok(None);
        };
        let built = self.built(&entry).await?;
        let table = |listing: Arc<ListingTable>, writer: WriterSource| -> Arc<dyn TableProvider> {
            Arc::new(FileTable {
                listing,
                writer,
                path: entry.path().to_path_buf(),
                format: entry.format(),
                parquet: self.options.parquet,
                cache: self.cache.clone(),
            })
        };
        Ok(Some(match (&entry, built) {
            (Entry::File { compression, .. }, Built::Listing(listing)) => table(
                listing,
                WriterSource::Lazy {
                    compression: *compression,
                    location,
                },
            ),
            (Entry::File { .. }, Built::Store { db, listing }) => {
                let writer = DatabaseTable::new(Arc::new(db), location);
                match listing {
                    Some(listing) => table(listing, WriterSource::Ready(writer)),
                    None => Arc::new(writer),
                }
            }
            (Entry::Dir { .. }, Built::Listing(listing)) => table(listing, WriterSource::None),
            (Entry::Dir { path, .. }, Built::Store { .. }) => {
                return Err(self.err(Error::internal(format!(
                    "directory table '{}' was built as a single file; run the statement again",
                    path.display()
                ))));
            }
        }))
    }
}

/// A `true`/`false` URL option.
/// The file backend's URL options.
pub const FILE_OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "format",
        OptionKind::Choice(&["json", "ndjson", "jsonl", "csv", "tsv", "parquet"]),
        "the format of tables created with CREATE TABLE",
    )
    .default("parquet"),
    OptionSpec::new(
        "compression",
        OptionKind::Choice(&["none", "gzip", "gz", "zstd", "zst"]),
        "the compression of created text tables",
    )
    .default("none"),
    OptionSpec::new(
        "infer_rows",
        OptionKind::Integer {
            min: 1,
            max: 100_000_000,
        },
        "rows read to infer a CSV/JSON schema",
    )
    .default("1000"),
    OptionSpec::new(
        "pushdown_filters",
        OptionKind::Bool,
        "Parquet: evaluate filters while decoding (default: the session's setting)",
    ),
    OptionSpec::new(
        "reorder_filters",
        OptionKind::Bool,
        "Parquet: reorder pushed filters by cost (default: the session's setting)",
    ),
    OptionSpec::new(
        "enable_page_index",
        OptionKind::Bool,
        "Parquet: prune pages with the page index (default: the session's setting)",
    ),
];

/// The file backend kind: `file:///dir?format=…`.
#[derive(Debug)]
pub struct FileKind;

#[async_trait]
impl BackendKind for FileKind {
    fn name(&self) -> &'static str {
        KIND
    }
    fn schemes(&self) -> &'static [&'static str] {
        &["file"]
    }
    fn description(&self) -> &'static str {
        "a directory of JSON, NDJSON, CSV, TSV and Parquet files (file:///dir?format=parquet)"
    }
    fn persistent(&self) -> bool {
        true
    }
    fn example_url(&self) -> &'static str {
        "file:///path/to/dir"
    }
    fn options(&self) -> &'static [OptionSpec] {
        FILE_OPTIONS
    }
    async fn open(&self, url: &url::Url, options: &UrlOptions) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(FileBackend::from_options(url, options)?))
    }
}

/// An inferred JSON schema with its columns in the order the file's first objects name them
/// (Arrow's inference sorts them by name); columns the sample does not name follow in
/// Arrow's order. The sample is the first 256 KiB (decompressed) or 1,000 objects.
/// A text file's column that holds no value at all infers as Arrow's `Null` type, which
/// can hold nothing but NULL (an INSERT of text into it fails): read it as nullable text,
/// as DuckDB reads such a column as VARCHAR.
fn null_columns_as_text(
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> datafusion::arrow::datatypes::SchemaRef {
    use datafusion::arrow::datatypes::DataType;
    if !schema
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::Null)
    {
        return schema;
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Null => Arc::new(
                f.as_ref()
                    .clone()
                    .with_data_type(DataType::Utf8)
                    .with_nullable(true),
            ),
            _ => f.clone(),
        })
        .collect();
    Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

fn in_file_order(
    schema: datafusion::arrow::datatypes::SchemaRef,
    path: &Path,
    compression: Compression,
) -> datafusion::arrow::datatypes::SchemaRef {
    let Some(keys) = json_key_order(path, compression) else {
        return schema;
    };
    let position = |name: &str| keys.iter().position(|k| k == name).unwrap_or(usize::MAX);
    let mut fields: Vec<_> = schema.fields().iter().cloned().enumerate().collect();
    fields.sort_by_key(|(i, f)| (position(f.name()), *i));
    Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
        fields.into_iter().map(|(_, f)| f).collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// The object keys of a JSON or NDJSON file's first objects, in first-seen order.
fn json_key_order(path: &Path, compression: Compression) -> Option<Vec<String>> {
    use std::io::Read;
    type Keys = records::JsonRow<serde::de::IgnoredAny>;
    let file = std::fs::File::open(path).ok()?;
    let reader = records::decompressing_reader(compression, file).ok()?;
    let mut buf = Vec::new();
    reader.take(256 << 10).read_to_end(&mut buf).ok()?;
    let mut pos = buf.iter().position(|b| *b == b'{')?;
    let mut keys: Vec<String> = Vec::new();
    for _ in 0..1000 {
        let mut objects = serde_json::Deserializer::from_slice(&buf[pos..]).into_iter::<Keys>();
        match objects.next() {
            Some(Ok(records::JsonRow(found))) => {
                for (k, _) in found {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            _ => break,
        }
        pos += objects.byte_offset();
        match buf[pos..].iter().position(|b| *b == b'{') {
            Some(next) => pos += next,
            None => break,
        }
    }
    (!keys.is_empty()).then_some(keys)
}

/// The listing options for data files of `format` and `compression` (the file extension
/// included; CSV/TSV with a header; `infer_rows` rows for schema inference; `null_marker` as
/// CSV's NULL), with the Hive partition columns of a directory table inferred (`state` must
/// reach the table's object store). Shared with the S3 backend's datasets.
pub(crate) async fn listing_options(
    format: Format,
    compression: Compression,
    infer_rows: usize,
    null_marker: Option<&str>,
    state: &datafusion::execution::SessionState,
    url: &ListingTableUrl,
    is_dir: bool,
) -> DfResult<ListingOptions> {
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
                .with_schema_infer_max_rec(infer_rows)
                .with_null_regex(null_marker.map(records::null_regex))
                .with_file_compression_type(fc),
        ),
        Format::Json | Format::NdJson => Arc::new(
            JsonFormat::default()
                .with_newline_delimited(format == Format::NdJson)
                .with_schema_infer_max_rec(infer_rows)
                .with_file_compression_type(fc),
        ),
    };
    let extension = format::file_name("", format, compression);
    let mut options = ListingOptions::new(file_format).with_file_extension(extension);
    if is_dir {
        let cols = options
            .infer_partitions(state, url)
            .await?
            .into_iter()
            .map(|c| (c, datafusion::arrow::datatypes::DataType::Utf8))
            .collect::<Vec<_>>();
        options = options.with_table_partition_cols(cols);
    }
    Ok(options)
}

/// Applies the effective Parquet read settings (the backend's where given, the session's
/// otherwise) to a Parquet scan made by a listing table. Plans that are not a Parquet scan
/// (e.g. an empty table) are returned unchanged.
fn tune_parquet(
    plan: Arc<dyn ExecutionPlan>,
    tuning: &ParquetTuning,
    config: &ConfigOptions,
) -> Arc<dyn ExecutionPlan> {
    let (pushdown, reorder, page_index) = tuning.effective(config);
    let Some(exec) = plan.downcast_ref::<DataSourceExec>() else {
        return plan;
    };
    let Some((conf, source)) = exec.downcast_to_file_source::<ParquetSource>() else {
        return plan;
    };
    let current = &source.table_parquet_options().global;
    if (
        current.pushdown_filters,
        current.reorder_filters,
        current.enable_page_index,
    ) == (pushdown, reorder, page_index)
    {
        return plan;
    }
    let source = source
        .clone()
        .with_pushdown_filters(pushdown)
        .with_reorder_filters(reorder)
        .with_enable_page_index(page_index);
    let conf = FileScanConfigBuilder::from(conf.clone())
        .with_source(Arc::new(source))
        .build();
    DataSourceExec::from_data_source(conf)
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
                // A record store built for SQL reads is shared while the file is unchanged
                // (it also reloads by itself when another writer changed the file).
                let fingerprint = Fingerprint::of_file(&path).map_err(|e| self.err(e))?;
                if let Some(Built::Store { db, .. }) = self.cache.get(&path, &fingerprint) {
                    return Ok(Some(Arc::new(db)));
                }
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
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        if schema != SCHEMA {
            return Ok(None);
        }
        FileBackend::sql_table(self, name, location).await
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
            file.clone(),
            self.options.default_format,
            self.options.compression,
            spec.schema,
            spec.key,
        );
        // Nothing built for a table of the same name (dropped behind our back) may survive.
        self.cache.forget(&file);
        Ok(Arc::new(db?))
    }

    async fn drop_collection(&self, schema: &str, name: &str, if_exists: bool) -> Result<bool> {
        if schema != SCHEMA {
            return Ok(false);
        }
        match self.find(name)? {
            None => crate::database::drop_missing(
                KIND,
                name,
                &format!("in '{}'", self.root.display()),
                if_exists,
            ),
            Some(Entry::File { path, .. }) => {
                if !self.inside(&path) {
                    return Err(self.err(Error::query(format!(
                        "refusing to remove '{}': outside the attached directory",
                        path.display()
                    ))));
                }
                let removed = records::remove_file_and_sidecars(&path);
                self.cache.forget(&path);
                removed?;
                Ok(true)
            }
            Some(Entry::Dir { path, .. }) => {
                if !self.inside(&path) || path == self.root {
                    return Err(self.err(Error::query(format!(
                        "refusing to remove '{}': outside the attached directory",
                        path.display()
                    ))));
                }
                let removed = std::fs::remove_dir_all(&path);
                self.cache.forget(&path);
                removed.map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
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
    /// The backend's Parquet read settings.
    parquet: ParquetTuning,
    /// The backend's table cache: writes planned here forget the table.
    cache: Arc<TableCache>,
}

impl FileTable {
    fn writer(&self) -> Result<Option<DatabaseTable>> {
        // The fingerprint sees the write once it is done; forgetting now also drops the
        // built table of a statement that fails half-way.
        self.cache.forget(&self.path);
        Ok(match &self.writer {
            WriterSource::Ready(w) => Some(w.clone()),
            WriterSource::Lazy {
                compression,
                location,
            } => {
                let db =
                    FileDatabase::open(self.path.clone(), Some(self.format), Some(*compression))?;
                Some(DatabaseTable::new(Arc::new(db), location.clone()))
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
            // Keep the scan node bare so DataFusion's physical optimizer (limit, filter and
            // dynamic-filter pushdown) sees it; `names::ParquetFileNamesRule` names the file.
            return Ok(tune_parquet(plan, &self.parquet, state.config_options()));
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
}

/// The record store behind a file table, for DELETE/UPDATE/TRUNCATE ([`crate::dml`]); None
/// when `provider` is not a file table.
pub(crate) fn dml_table(provider: &dyn std::any::Any) -> DfResult<Option<DatabaseTable>> {
    let Some(table) = provider.downcast_ref::<FileTable>() else {
        return Ok(None);
    };
    match table.writer()? {
        Some(w) => Ok(Some(w)),
        None => Err(Error::unsupported(format!(
            "DELETE, UPDATE and TRUNCATE on a directory table ({}) are not supported; \
             they work on single-file tables",
            table.path.display()
        ))
        .with_backend(KIND)
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionConfig;

    async fn write_parquet(path: &Path, rows: u32) {
        let sql = format!(
            "COPY (SELECT value AS k FROM generate_series(1, {rows})) TO '{}' STORED AS PARQUET",
            path.display()
        );
        SessionContext::new()
            .sql(&sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
    }

    async fn table(backend: &FileBackend, name: &str) -> Arc<dyn TableProvider> {
        let location = Location {
            attached: "data".into(),
            schema: SCHEMA.into(),
            collection: name.into(),
        };
        backend.sql_table(name, location).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_table_is_built_once_per_version_of_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.parquet");
        write_parquet(&file, 10).await;
        std::fs::create_dir(dir.path().join("d")).unwrap();
        write_parquet(&dir.path().join("d/1.parquet"), 10).await;
        let backend = FileBackend::new(dir.path(), FileOptions::default()).unwrap();
        for _ in 0..3 {
            table(&backend, "t").await;
            table(&backend, "d").await;
        }
        assert_eq!(backend.cache.builds(), 2);
        write_parquet(&file, 20).await;
        write_parquet(&dir.path().join("d/2.parquet"), 10).await;
        for _ in 0..3 {
            table(&backend, "t").await;
            table(&backend, "d").await;
        }
        assert_eq!(backend.cache.builds(), 4);
        assert_eq!(backend.cache.len(), 2);
        backend.drop_collection(SCHEMA, "t", false).await.unwrap();
        backend.drop_collection(SCHEMA, "d", false).await.unwrap();
        assert_eq!(backend.cache.len(), 0);
    }

    /// The Parquet settings a scan ends up with: the URL's where given, the session's
    /// otherwise.
    #[tokio::test]
    async fn parquet_scans_take_url_settings_then_session_settings() {
        let dir = tempfile::tempdir().unwrap();
        write_parquet(&dir.path().join("t.parquet"), 10).await;
        let scan_options = async |url_query: &str, session: &[(&str, bool)]| {
            let url =
                url::Url::parse(&format!("file://{}?{url_query}", dir.path().display())).unwrap();
            let backend = FileBackend::from_url(&url).unwrap();
            let mut config = SessionConfig::new();
            for (k, v) in session {
                config = config.set_bool(&format!("datafusion.execution.parquet.{k}"), *v);
            }
            let state = SessionContext::new_with_config(config).state();
            let plan = table(&backend, "t")
                .await
                .scan(&state, None, &[], None)
                .await
                .unwrap();
            let exec = plan.downcast_ref::<DataSourceExec>().unwrap();
            let (_, source) = exec.downcast_to_file_source::<ParquetSource>().unwrap();
            let g = &source.table_parquet_options().global;
            (g.pushdown_filters, g.reorder_filters, g.enable_page_index)
        };
        assert_eq!(scan_options("", &[]).await, (false, false, true));
        assert_eq!(
            scan_options("", &[("pushdown_filters", true), ("reorder_filters", true)]).await,
            (true, true, true)
        );
        assert_eq!(
            scan_options(
                "pushdown_filters=true&reorder_filters=on&enable_page_index=false",
                &[]
            )
            .await,
            (true, true, false)
        );
        assert_eq!(
            scan_options(
                "reorder_filters=false",
                &[("reorder_filters", true), ("enable_page_index", false)]
            )
            .await,
            (false, false, false)
        );
        let e = FileBackend::from_url(
            &url::Url::parse(&format!(
                "file://{}?enable_page_index=yes",
                dir.path().display()
            ))
            .unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("enable_page_index") && e.contains("'yes'"),
            "{e}"
        );
    }
}
