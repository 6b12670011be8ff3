//! S3 datasets: a table is one object or a sub-prefix of objects, read through DataFusion's
//! listing tables and written by [`write_object`].
//!
//! Every write is one object, uploaded in parts of [`PART_SIZE`] (a single PUT when smaller)
//! and completed only after the last row was encoded, so a reader sees the whole object or
//! none of it; a failed statement aborts its upload. `INSERT` into a prefix table adds a new
//! object under the prefix; into a single-object table it writes the object again with its
//! old rows and the new ones (S3 replaces an object atomically). One statement, one object:
//! an INSERT is all or nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::DefaultParquetFileReaderFactory;
use datafusion::error::Result as DfResult;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression as ParquetCompression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as StorePath;
use object_store::{Attribute, Attributes, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use super::{BACKEND, Bucket, Entry};
use crate::backends::file::format::{Compression, Format};
use crate::backends::file::records::plain_type;
use crate::database::{Capabilities, Database, FilterSupport, Location, Partition};
use crate::error::{Error, Result};
use crate::query::{FilterExpr, Query};
use crate::record::Record;
use crate::table::DatabaseTable;

/// Upload part size: objects below it are one PUT; larger ones a multipart upload of parts
/// this big (S3 allows 10 000 parts: 160 GB per object).
pub(super) const PART_SIZE: usize = 16 * 1024 * 1024;

/// Encoded Parquet bytes are handed to the upload once this much has accumulated.
const PARQUET_FLUSH: usize = 4 * 1024 * 1024;

/// One dataset table.
#[derive(Debug)]
pub(super) struct S3Dataset {
    b: Arc<Bucket>,
    name: String,
    entry: Entry,
    /// The table's columns: inferred by [`S3Dataset::load`], or given to CREATE TABLE.
    schema: SchemaRef,
    /// Built by [`S3Dataset::load`].
    listing: Option<Arc<ListingTable>>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("at", &self.shown).finish()
    }
}

impl S3Dataset {
    pub(super) fn new(b: Arc<Bucket>, name: &str, entry: Entry) -> S3Dataset {
        S3Dataset {
            b,
            name: name.to_string(),
            entry,
            schema: Arc::new(Schema::empty()),
            listing: None,
        }
    }

    /// A new table `name` under `entry`'s prefix. Its columns are kept in the sidecar
    /// object [`SIDECAR`], so the table exists before any row does and text formats (CSV,
    /// JSON) keep their column types.
    pub(super) async fn create(
        b: Arc<Bucket>,
        name: &str,
        entry: Entry,
        schema: SchemaRef,
    ) -> Result<S3Dataset> {
        let mut ds = S3Dataset::new(b, name, entry);
        ds.schema = writing_schema(&schema);
        let Entry::Dir { prefix, format, .. } = &ds.entry else {
            return Err(Error::internal("a new dataset is a prefix"));
        };
        let sidecar = Sidecar::of(*format, &ds.schema);
        write_sidecar(&ds.b, name, prefix, &sidecar).await?;
        Ok(ds)
    }

    /// Where the table is, for messages: `s3://bucket/key` or `s3://bucket/prefix/`.
    fn shown(&self) -> String {
        match &self.entry {
            Entry::Object { key, .. } => self.b.url_of(key),
            Entry::Dir { prefix, .. } | Entry::Records { prefix } => self.b.url_of(prefix),
        }
    }

    fn err(&self, e: Error) -> Error {
        e.with_backend(self.b.kind)
    }

    /// Builds the listing table and learns the schema (from the sidecar when there is one).
    pub(super) async fn load(&mut self) -> Result<()> {
        let listing = self.listing_table().await?;
        self.schema = listing.schema();
        self.listing = Some(Arc::new(listing));
        Ok(())
    }

    async fn listing_table(&self) -> Result<ListingTable> {
        let b = &self.b;
        let (key, is_dir) = match &self.entry {
            Entry::Object { key, .. } => (key, false),
            Entry::Dir { prefix, .. } | Entry::Records { prefix } => (prefix, true),
        };
        let url_text = format!("{}/{key}", b.store_url.as_str().trim_end_matches('/'));
        // DataFusion caches a prefix's listing per (table reference, URL) for the session's
        // life: a reference new for every statement's table lists the prefix afresh, so
        // objects added meanwhile (by anyone) are read.
        static BUILD: AtomicU64 = AtomicU64::new(0);
        let url = ListingTableUrl::parse(&url_text)
            .map_err(|e| self.err(Error::from(e)))?
            .with_table_ref(datafusion::common::TableReference::bare(format!(
                "{url_text}#{}",
                BUILD.fetch_add(1, Ordering::Relaxed)
            )));
        let ctx = match &b.parquet {
            Some(readers) => {
                use datafusion::execution::cache::cache_manager::CacheManagerConfig;
                let caches =
                    CacheManagerConfig::default().with_file_metadata_cache(Some(readers.footers()));
                let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                    .with_cache_manager(caches)
                    .build_arc()
                    .map_err(|e| self.err(e.into()))?;
                SessionContext::new_with_config_rt(
                    datafusion::prelude::SessionConfig::new(),
                    runtime,
                )
            }
            None => SessionContext::new(),
        };
        ctx.runtime_env()
            .register_object_store(&b.store_url, b.store.clone());
        let state = ctx.state();
        let options = crate::backends::file::listing_options(
            self.entry.format(),
            self.entry.compression(),
            b.infer_rows,
            None,
            &state,
            &url,
            is_dir,
        )
        .await
        .map_err(|e| self.err(e.into()))?;
        let declared = match &self.entry {
            Entry::Dir { prefix, .. } | Entry::Records { prefix } => {
                read_sidecar(b, prefix).await?
            }
            Entry::Object { .. } => None,
        };
        let schema = match declared {
            Some(sidecar) => sidecar.schema().map_err(|e| self.err(e))?,
            None => options.infer_schema(&state, &url).await.map_err(|e| {
                self.err(Error::query(format!(
                    "cannot read the schema of {}: {e}",
                    b.url_of(key)
                )))
            })?,
        };
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        ListingTable::try_new(config).map_err(|e| self.err(e.into()))
    }

    /// The key of a new object under a prefix table: a UTC time stamp first, so that
    /// listings come in write order, then a random part.
    fn new_key(&self) -> Result<StorePath> {
        let Entry::Dir { prefix, format, .. } = &self.entry else {
            return Err(self.err(Error::query(format!(
                "{} is a single object, not a prefix",
                self.shown()
            ))));
        };
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let id = uuid::Uuid::new_v4().simple().to_string();
        Ok(StorePath::from(format!(
            "{prefix}{stamp}-{}.{}",
            &id[..12],
            format.extension()
        )))
    }

    /// Checks that rows can be written here.
    fn check_writable(&self) -> Result<()> {
        if self.entry.compression() != Compression::None {
            return Err(self.err(Error::unsupported(format!(
                "writing compressed objects is not supported: {} is {:?}-compressed; \
                 CREATE TABLE … AS SELECT a new, uncompressed table instead",
                self.shown(),
                self.entry.compression()
            ))));
        }
        if let Some(l) = &self.listing
            && !l.options().table_partition_cols.is_empty()
        {
            return Err(self.err(Error::unsupported(format!(
                "INSERT into a Hive-partitioned dataset ({}) is not supported yet; \
                 write to an unpartitioned table",
                self.shown()
            ))));
        }
        Ok(())
    }

    /// Encodes `data` into one object at `key`, completing the upload only at the end.
    async fn write_stream(&self, key: &StorePath, data: SendableRecordBatchStream) -> Result<u64> {
        let url = self.b.url_of(key.as_ref());
        write_object(
            self.b.store.clone(),
            key,
            self.entry.format(),
            self.schema.clone(),
            data,
            &url,
        )
        .await
        .map_err(|e| self.err(e))
    }

    fn record_api(&self) -> Error {
        self.err(Error::unsupported(format!(
            "'{}' is a dataset ({}): read and write it with SQL; the record API is not \
             available on datasets",
            self.name,
            self.shown()
        )))
    }
}

#[async_trait]
impl Database for S3Dataset {
    fn backend_name(&self) -> &str {
        self.b.kind
    }

    fn collection_name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn key_column(&self) -> Option<String> {
        None
    }

    async fn create(&self, _record: Record) -> Result<String> {
        Err(self.record_api())
    }

    async fn read(&self, _id: &str) -> Result<Option<Record>> {
        Err(self.record_api())
    }

    async fn update(&self, _id: &str, _record: Record) -> Result<bool> {
        Err(self.record_api())
    }

    async fn delete(&self, _id: &str) -> Result<bool> {
        Err(self.record_api())
    }

    async fn clear(&self) -> Result<u64> {
        Err(self.record_api())
    }

    fn filter_support(&self, _filter: &FilterExpr) -> FilterSupport {
        FilterSupport::Unsupported
    }

    async fn scan(
        &self,
        _query: &Query,
        _partition: Partition,
    ) -> Result<SendableRecordBatchStream> {
        Err(self.record_api())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_batches: true,
            ..Capabilities::default()
        }
    }

    async fn insert(&self, data: SendableRecordBatchStream) -> Result<u64> {
        self.check_writable()?;
        let rows = match &self.entry {
            Entry::Dir { .. } | Entry::Records { .. } => {
                let key = self.new_key()?;
                self.write_stream(&key, data).await?
            }
            Entry::Object { key, .. } => {
                return Err(self.err(Error::internal(format!(
                    "{}: a single-object table writes through its record store",
                    self.b.url_of(key)
                ))));
            }
        };
        Ok(rows)
    }
}

/// A dataset for SQL: the listing table reads (the store registered in the scanning
/// session), the dataset writes.
#[derive(Debug)]
pub(super) struct S3Table {
    listing: Arc<ListingTable>,
    b: Arc<Bucket>,
    writer: DatabaseTable,
    /// A single-object table: the writer is the object's record store, with DML.
    single: bool,
    format: Format,
    shown: String,
}

impl S3Table {
    /// The table over `ds`. A single-object table writes through the object's record store
    /// (loaded at its first use, so reading does not), a prefix table through `ds` (INSERT
    /// only).
    pub(super) async fn new(mut ds: S3Dataset, location: Location) -> Result<S3Table> {
        ds.load().await?;
        let listing = ds.listing.clone().ok_or_else(|| {
            Error::internal(format!("the listing of {} was not built", ds.shown()))
        })?;
        let b = ds.b.clone();
        let format = ds.entry.format();
        let shown = ds.shown();
        // Single objects are rewritten with conditional PUTs, which only S3 has: elsewhere
        // (HDFS) a file table takes INSERTs (the file replaced whole) but no DML.
        let single = matches!(ds.entry, Entry::Object { .. }) && b.kind == BACKEND;
        let writer: Arc<dyn Database> = match &ds.entry {
            Entry::Object {
                key,
                format,
                compression,
            } if single => Arc::new(super::object::lazy(
                b.clone(),
                &ds.name,
                key,
                *format,
                *compression,
                &listing.schema(),
            )),
            _ => Arc::new(ds),
        };

        Ok(S3Table {
            listing,
            b,
            writer: DatabaseTable::new(writer, location),
            single,
            format,
            shown,
        })
    }

    /// The writer for DELETE/UPDATE/TRUNCATE: single-object tables only.
    pub(super) fn dml_writer(&self) -> DfResult<DatabaseTable> {
        if self.single {
            return Ok(self.writer.clone());
        }
        if self.b.kind != BACKEND {
            return Err(Error::unsupported(format!(
                "DELETE, UPDATE and TRUNCATE on a dataset ({}) are not supported: INSERT adds \
                 files and no file is rewritten in place; attach with layout=kv for records \
                 that take UPDATE and DELETE",
                self.shown
            ))
            .with_backend(self.b.kind)
            .into());
        }
        Err(Error::unsupported(format!(
            "DELETE, UPDATE and TRUNCATE on a prefix table ({}) are not supported: each \
             INSERT adds an object there, and no object is rewritten; they work on \
             single-object tables (CREATE TABLE makes those when the bucket is attached with \
             layout=object)",
            self.shown
        ))
        .with_backend(BACKEND)
        .into())
    }
}

#[async_trait]
impl TableProvider for S3Table {
    fn schema(&self) -> SchemaRef {
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
        state
            .runtime_env()
            .register_object_store(&self.b.store_url, self.b.store.clone());
        if self.format == Format::Parquet
            && let Some(readers) = &self.b.parquet
        {
            // Precise modification times: DataFusion's caches are safe, only the readers
            // change.
            let plan = self.listing.scan(state, projection, filters, limit).await?;
            let plan = with_readers(plan, readers.factory());
            return Ok(more_partitions(plan, state.config_options()));
        }
        if self.format == Format::Parquet {
            // DataFusion's caches of Parquet footers and file statistics tell versions apart
            // by size and modification time only, and S3 keeps the time in whole seconds: an
            // object replaced within a second by one of the same size (an UPDATE swapping two
            // values) would be read with the old footer. So an S3 scan collects no statistics
            // (which also saves a footer request per object while planning) and reads each
            // footer afresh. Parquet names bad objects itself; a bare scan node keeps
            // DataFusion's physical optimizer (limit and dynamic-filter pushdown) working on it.
            let plan = match state.as_any().downcast_ref::<SessionState>() {
                Some(s) if s.config().collect_statistics() => {
                    let mut config = s.config().clone();
                    config.options_mut().execution.collect_statistics = false;
                    let unstated = SessionStateBuilder::new_from_existing(s.clone())
                        .with_config(config)
                        .build();
                    self.listing
                        .scan(&unstated, projection, filters, limit)
                        .await?
                }
                _ => self.listing.scan(state, projection, filters, limit).await?,
            };
            let plan = with_readers(
                plan,
                Arc::new(DefaultParquetFileReaderFactory::new(self.b.store.clone())),
            );
            return Ok(more_partitions(plan, state.config_options()));
        }
        let plan = self.listing.scan(state, projection, filters, limit).await?;
        // CSV/JSON readers report the line but not the object.
        Ok(Arc::new(crate::table::ErrorContextExec::new(
            plan,
            format!("reading {}", self.shown),
        )))
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.writer.insert_into(state, input, insert_op).await
    }
}

/// `plan` with its Parquet scan reading through `readers` (S3: footers from the store, not
/// from the session's cache).
fn with_readers(
    plan: Arc<dyn ExecutionPlan>,
    readers: Arc<dyn ParquetFileReaderFactory>,
) -> Arc<dyn ExecutionPlan> {
    use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
    use datafusion::datasource::source::DataSourceExec;
    let Some(exec) = plan.downcast_ref::<DataSourceExec>() else {
        return plan;
    };
    let Some((conf, source)) = exec.downcast_to_file_source::<ParquetSource>() else {
        return plan;
    };
    let source = source.clone().with_parquet_file_reader_factory(readers);
    let conf = FileScanConfigBuilder::from(conf.clone())
        .with_source(Arc::new(source))
        .build();
    DataSourceExec::from_data_source(conf)
}

/// The fewest partitions an S3 Parquet scan is split into (by byte ranges, objects above
/// `repartition_file_min_size` only): more requests in flight than cores, so that fetching a
/// row group overlaps with decoding another.
const MIN_SCAN_PARTITIONS: usize = 4;

/// `plan` (a Parquet scan) split into at least [`MIN_SCAN_PARTITIONS`] partitions.
fn more_partitions(
    plan: Arc<dyn ExecutionPlan>,
    config: &datafusion::config::ConfigOptions,
) -> Arc<dyn ExecutionPlan> {
    let target = config.execution.target_partitions.max(MIN_SCAN_PARTITIONS);
    if !config.optimizer.repartition_file_scans
        || plan.properties().partitioning.partition_count() >= target
    {
        return plan;
    }
    match plan.repartitioned(target, config) {
        Ok(Some(split)) => split,
        _ => plan,
    }
}

/// Turns record batches into the bytes of one object.
enum Encoder {
    Parquet(Box<ArrowWriter<Vec<u8>>>),
    Csv {
        delimiter: u8,
        header: bool,
    },
    /// NDJSON, or a JSON array (`[` before the first row, `,` between rows, `]` at the end).
    Json {
        array: bool,
        rows: u64,
    },
}

impl Encoder {
    fn new(format: Format, schema: &SchemaRef) -> Result<Encoder> {
        Ok(match format {
            Format::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(ParquetCompression::ZSTD(ZstdLevel::default()))
                    .build();
                let w = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))
                    .map_err(|e| Error::query(format!("cannot start a Parquet object: {e}")))?;
                Encoder::Parquet(Box::new(w))
            }
            Format::Csv => Encoder::Csv {
                delimiter: b',',
                header: true,
            },
            Format::Tsv => Encoder::Csv {
                delimiter: b'\t',
                header: true,
            },
            Format::NdJson => Encoder::Json {
                array: false,
                rows: 0,
            },
            Format::Json => Encoder::Json {
                array: true,
                rows: 0,
            },
        })
    }

    /// Encodes a batch; returns the bytes ready for upload, if any.
    fn encode(&mut self, batch: &RecordBatch) -> Result<Option<Bytes>> {
        match self {
            Encoder::Parquet(w) => {
                w.write(batch)
                    .map_err(|e| Error::query(format!("encoding Parquet: {e}")))?;
                if w.inner().len() >= PARQUET_FLUSH {
                    // The writer counts the bytes it wrote, not the buffer's length.
                    return Ok(Some(Bytes::from(std::mem::take(w.inner_mut()))));
                }
                Ok(None)
            }
            Encoder::Csv { delimiter, header } => {
                let mut buf = Vec::new();
                {
                    let mut w = datafusion::arrow::csv::WriterBuilder::new()
                        .with_header(*header)
                        .with_delimiter(*delimiter)
                        .build(&mut buf);
                    w.write(batch)
                        .map_err(|e| Error::query(format!("encoding CSV: {e}")))?;
                }
                *header = false;
                Ok(Some(Bytes::from(buf)))
            }
            Encoder::Json { array, rows } => {
                let mut lines = Vec::new();
                {
                    let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut lines);
                    w.write(batch)
                        .map_err(|e| Error::query(format!("encoding JSON: {e}")))?;
                    w.finish()
                        .map_err(|e| Error::query(format!("encoding JSON: {e}")))?;
                }
                if !*array {
                    *rows += batch.num_rows() as u64;
                    return Ok(Some(Bytes::from(lines)));
                }
                // Each line is one row (JSON strings escape newlines).
                let mut out = Vec::with_capacity(lines.len() + batch.num_rows() + 2);
                for line in lines.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
                    out.extend_from_slice(if *rows == 0 { b"[\n" } else { b",\n" });
                    out.extend_from_slice(line);
                    *rows += 1;
                }
                Ok(Some(Bytes::from(out)))
            }
        }
    }

    /// The object's last bytes (a Parquet footer, a CSV header when no row came, `]`).
    fn finish(self, schema: &SchemaRef) -> Result<Bytes> {
        match self {
            Encoder::Parquet(w) => w
                .into_inner()
                .map(Bytes::from)
                .map_err(|e| Error::query(format!("finishing a Parquet object: {e}"))),
            mut csv @ Encoder::Csv { header: true, .. } => Ok(csv
                .encode(&RecordBatch::new_empty(schema.clone()))?
                .unwrap_or_default()),
            Encoder::Csv { .. } => Ok(Bytes::new()),
            Encoder::Json { array: true, rows } => Ok(Bytes::from_static(if rows == 0 {
                b"[]\n"
            } else {
                b"\n]\n"
            })),
            Encoder::Json { array: false, .. } => Ok(Bytes::new()),
        }
    }
}

pub(super) fn content_type(format: Format) -> &'static str {
    match format {
        Format::Parquet => "application/vnd.apache.parquet",
        Format::Csv => "text/csv",
        Format::Tsv => "text/tab-separated-values",
        Format::NdJson => "application/x-ndjson",
        Format::Json => "application/json",
    }
}

/// The schema objects are written with: the table's columns, all nullable (a listing reads
/// them back nullable anyway), with string and binary views as plain strings and binaries
/// (how readers other than DataFusion expect them, and what the objects already there hold).
pub(super) fn writing_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), plain_type(f.data_type()), true))
            .collect::<Vec<_>>(),
    ))
}

/// The object beside a dataset's data objects that declares its format and columns (written
/// by CREATE TABLE; data object listings skip names starting with `_`).
pub(super) const SIDECAR: &str = "_dataknobs.json";

/// The sidecar `format` of a record-object collection.
pub(super) const RECORDS: &str = "records";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Sidecar {
    pub(super) format: String,
    columns: Vec<SidecarColumn>,
    /// The key column of a record collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) key: Option<String>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SidecarColumn {
    name: String,
    /// Arrow's text form of the type (`Int64`, `Timestamp(µs, "UTC")`).
    #[serde(rename = "type")]
    data_type: String,
}

impl Sidecar {
    pub(super) fn of(format: Format, schema: &SchemaRef) -> Sidecar {
        Sidecar {
            key: None,
            format: format.extension().to_string(),
            columns: schema
                .fields()
                .iter()
                .map(|f| SidecarColumn {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                })
                .collect(),
        }
    }

    pub(super) fn set_columns(&mut self, schema: &SchemaRef) {
        self.columns = Sidecar::of(Format::NdJson, schema).columns;
    }

    pub(super) fn schema(&self) -> Result<SchemaRef> {
        let fields = self
            .columns
            .iter()
            .map(|c| {
                c.data_type
                    .parse::<DataType>()
                    .map(|t| Field::new(&c.name, t, true))
                    .map_err(|e| {
                        Error::query(format!(
                            "{SIDECAR}: column '{}' has the type '{}', which is not an Arrow type: {e}",
                            c.name, c.data_type
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// Writes the sidecar of table `name` at `prefix` (a single PUT), for CREATE TABLE.
pub(super) async fn write_sidecar(
    b: &Bucket,
    name: &str,
    prefix: &str,
    sidecar: &Sidecar,
) -> Result<()> {
    let key = StorePath::from(format!("{prefix}{SIDECAR}"));
    let body = serde_json::to_vec_pretty(sidecar)
        .map_err(|e| Error::internal(format!("encoding {SIDECAR}: {e}")))?;
    b.store.put(&key, body.into()).await.map_err(|e| {
        b.connection_error(
            format!("CREATE TABLE {name}: writing {}", b.url_of(key.as_ref())),
            e,
        )
    })?;
    Ok(())
}

/// The sidecar of the prefix table at `prefix`, if it has one.
pub(super) async fn read_sidecar(b: &Bucket, prefix: &str) -> Result<Option<Sidecar>> {
    let key = StorePath::from(format!("{prefix}{SIDECAR}"));
    let got = match b.store.get(&key).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => {
            return Err(b.connection_error(format!("cannot read {}", b.url_of(key.as_ref())), e));
        }
    };
    let bytes = got
        .bytes()
        .await
        .map_err(|e| b.connection_error(format!("cannot read {}", b.url_of(key.as_ref())), e))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        b.err(Error::query(format!(
            "{} is not a dataknobs table description: {e}; remove it to have the columns \
             inferred from the data",
            b.url_of(key.as_ref())
        )))
    })
}

/// Writes `data` as one object at `key` in `format`: complete when every row is written, or
/// (on any error) aborted, leaving whatever was at `key` before. Returns the rows written.
pub(super) async fn write_object(
    store: Arc<dyn object_store::ObjectStore>,
    key: &StorePath,
    format: Format,
    schema: SchemaRef,
    mut data: SendableRecordBatchStream,
    shown: &str,
) -> Result<u64> {
    let schema = writing_schema(&schema);
    let attributes = Attributes::from_iter([(
        Attribute::ContentType,
        object_store::AttributeValue::from(content_type(format)),
    )]);
    let mut upload =
        BufWriter::with_capacity(store, key.clone(), PART_SIZE).with_attributes(attributes);
    let encoded: Result<u64> = async {
        let mut encoder = Encoder::new(format, &schema)?;
        let mut rows = 0u64;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        datafusion::arrow::compute::cast(c, f.data_type())
                    }
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::query(format!("a row does not fit the table: {e}")))?;
            let batch = RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| Error::query(format!("a row does not fit the table: {e}")))?;
            rows += batch.num_rows() as u64;
            if let Some(bytes) = encoder.encode(&batch)? {
                upload.put(bytes).await.map_err(|e| {
                    Error::new(crate::ErrorKind::Connection, format!("uploading: {e}"))
                })?;
            }
        }
        let last = encoder.finish(&schema)?;
        upload
            .put(last)
            .await
            .map_err(|e| Error::new(crate::ErrorKind::Connection, format!("uploading: {e}")))?;
        Ok(rows)
    }
    .await;
    match encoded {
        Ok(rows) => {
            upload.shutdown().await.map_err(|e| {
                Error::new(
                    crate::ErrorKind::Connection,
                    format!("completing the upload of {shown}: {e} (the object was not written)"),
                )
            })?;
            Ok(rows)
        }
        Err(e) => {
            // Nothing becomes visible: a multipart upload is abandoned, a buffered one never
            // sent.
            if let Err(abort) = upload.abort().await {
                tracing::warn!("aborting the upload of {shown}: {abort}");
            }
            Err(Error::new(
                e.kind(),
                format!("writing {shown} (nothing was written): {}", e.message()),
            ))
        }
    }
}
