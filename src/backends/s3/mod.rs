//! The S3 backend (issue 14): Parquet / CSV / TSV / JSON / NDJSON datasets under a bucket
//! prefix, as tables, read through DataFusion's listing tables over `object_store`'s Amazon S3
//! client (projection, row-group pruning and predicate pushdown for Parquet, range reads
//! coalesced), and the seed's record objects ([`records`], `format=records`).
//!
//! URL: `s3://[ACCESS_KEY:SECRET@]bucket[/prefix/][?region=…&endpoint=…&path_style=…]`.
//! Credentials come from the URL's user info, else the usual `AWS_*` environment variables
//! and the standard AWS chain (profiles, SSO, `credential_process`, instance roles).
//! Tables follow the file backend's naming rule: under the prefix, the object
//! `lineitem.parquet` is the table `lineitem`, and a sub-prefix `events/` holding data objects
//! is the table `events`. Nothing outside the prefix is listed or read: table names with `/`,
//! `..` or a leading `.` are refused.
//!
//! Each backend registers its store in a session under a URL of its own
//! (`dks3-<n>://bucket`), when a scan is planned, so two attachments of one bucket with
//! different endpoints or credentials never share a client; the store is also registered in
//! the engine under `s3://bucket` (the first attachment of a bucket wins), for
//! `COPY … TO 's3://bucket/key'`.
//!
//! Writes ([`dataset`]): `INSERT` adds one new object per statement to a prefix table;
//! `CREATE TABLE` makes `prefix/t/` (or `prefix/t.<format>` with `layout=object`); `DROP
//! TABLE` deletes that table's keys only. A single-object table ([`object`]) takes INSERT,
//! UPDATE, DELETE and the record API, each written whole with a conditional PUT on the ETag
//! it read.

mod dataset;
mod object;
mod records;

pub use records::RecordScanPart;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use parking_lot::RwLock;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::backends::file::format::{self, Compression, Format};
use crate::config::{BackendKind, OptionKind, OptionSpec, UrlOptions};
use crate::database::{Backend, CollectionSpec, Database, Location};
use crate::error::{Error, Result};
use dataset::{S3Dataset, S3Table};
use records::{ClientSettings, S3Records};

pub const BACKEND: &str = "s3";
const SCHEMA: &str = "public";

/// The `s3://` backend kind.
#[derive(Debug)]
pub struct S3Kind;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "region",
        OptionKind::Text,
        "the bucket's region (default: AWS_REGION, else us-east-1)",
    ),
    OptionSpec::new(
        "endpoint",
        OptionKind::Text,
        "an S3-compatible server instead of AWS (MinIO, Ceph, Garage, moto): http(s)://host:port",
    ),
    OptionSpec::new(
        "path_style",
        OptionKind::Bool,
        "address buckets as host/bucket instead of bucket.host (default: true with an endpoint)",
    ),
    OptionSpec::new(
        "infer_rows",
        OptionKind::Integer {
            min: 1,
            max: 10_000_000,
        },
        "rows read to infer the schema of CSV and JSON objects",
    )
    .default("1000"),
    OptionSpec::new(
        "format",
        OptionKind::Choice(&["parquet", "csv", "tsv", "ndjson", "json", "records"]),
        "the format of tables made by CREATE TABLE (records: one JSON object per row, with \
         UPDATE and DELETE)",
    )
    .default("parquet"),
    OptionSpec::new(
        "layout",
        OptionKind::Choice(&["prefix", "object"]),
        "what CREATE TABLE makes for a dataset: prefix (a sub-prefix t/ that each INSERT adds \
         an object to) or object (one object t.<format> that INSERT, UPDATE and DELETE \
         replace whole, with conditional PUTs, and that has PRIMARY KEYs)",
    )
    .default("prefix"),
    OptionSpec::new(
        "max_workers",
        OptionKind::Integer { min: 1, max: 1024 },
        "record objects: requests in flight at once in batch operations and scans",
    )
    .default("64"),
    OptionSpec::new(
        "list_cache",
        OptionKind::Duration,
        "record objects: how long a collection's listing of ids is reused (writes made here \
         drop it at once; 0 lists every time)",
    )
    .default("5s"),
    OptionSpec::new(
        "retries",
        OptionKind::Integer { min: 0, max: 100 },
        "retries of a request that was throttled, timed out or got a 5xx, with exponential backoff",
    )
    .default("10"),
    OptionSpec::new(
        "retry_timeout",
        OptionKind::Duration,
        "no retry starts later than this after the first attempt",
    )
    .default("3m"),
    OptionSpec::new(
        "timeout",
        OptionKind::Duration,
        "the longest a single request may take",
    )
    .default("30s"),
    OptionSpec::new(
        "connect_timeout",
        OptionKind::Duration,
        "the longest connecting to the server may take",
    )
    .default("5s"),
];

#[async_trait]
impl BackendKind for S3Kind {
    fn name(&self) -> &'static str {
        BACKEND
    }
    fn schemes(&self) -> &'static [&'static str] {
        &["s3"]
    }
    fn description(&self) -> &'static str {
        "Parquet, CSV and JSON datasets under an S3 bucket prefix (AWS or any S3-compatible server)"
    }
    fn persistent(&self) -> bool {
        true
    }
    fn example_url(&self) -> &'static str {
        "s3://bucket/prefix/?region=eu-west-1"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    async fn open(&self, url: &Url, options: &UrlOptions) -> Result<Arc<dyn Backend>> {
        let backend = S3Backend::from_url(url, options)?;
        backend.refresh().await?;
        Ok(Arc::new(backend))
    }
}

/// A table under the prefix: one object, or a sub-prefix of objects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Object {
        key: String,
        format: Format,
        compression: Compression,
    },
    Dir {
        prefix: String,
        format: Format,
        compression: Compression,
    },
    /// A record-object collection (its sidecar says so).
    Records { prefix: String },
}

impl Entry {
    fn format(&self) -> Format {
        match self {
            Entry::Object { format, .. } | Entry::Dir { format, .. } => *format,
            Entry::Records { .. } => Format::NdJson,
        }
    }
    fn compression(&self) -> Compression {
        match self {
            Entry::Object { compression, .. } | Entry::Dir { compression, .. } => *compression,
            Entry::Records { .. } => Compression::None,
        }
    }
}

/// A record collection's ids and when they were listed.
type Listed = (Instant, Arc<Vec<String>>);

/// One attached bucket prefix: the client and what names it. Shared by the backend and the
/// datasets it opens.
struct Bucket {
    /// The backend's name in errors (`s3`, `hdfs`) and the scheme of its URLs.
    kind: &'static str,
    /// The bucket (S3) or the namenode's `host:port` (HDFS).
    bucket: String,
    /// The key prefix, empty or ending with `/`.
    prefix: String,
    store: Arc<dyn ObjectStore>,
    /// The URL the store is registered under in a session (`dks3-<n>://bucket`).
    store_url: Url,
    /// For display: `s3://bucket/prefix/` and the endpoint, never credentials.
    shown: String,
    infer_rows: usize,
    /// The record-object client's settings, and the client once made.
    settings: ClientSettings,
    aws: tokio::sync::OnceCell<aws_sdk_s3::Client>,
    /// Record ids per collection prefix, with when they were listed.
    ids: parking_lot::Mutex<HashMap<String, Listed>>,
    /// A store's own Parquet readers (HDFS); `None`: DataFusion's, over `store`.
    parquet: Option<Arc<dyn ParquetReaders>>,
}

/// Parquet readers of a store that reads better than through its `ObjectStore` (HDFS: one
/// open file per scanned file). Its stores keep modification times precise enough for
/// DataFusion's footer and statistics caches.
pub(crate) trait ParquetReaders: Send + Sync + std::fmt::Debug {
    /// The reader factory of one scan.
    fn factory(&self) -> Arc<dyn datafusion::datasource::physical_plan::ParquetFileReaderFactory>;

    /// The store's footer cache, kept across statements: each statement lists its table
    /// afresh and infers the schema from the footers, which this cache then answers (and the
    /// scan's readers too) unless a file changed.
    fn footers(&self) -> Arc<datafusion::execution::cache::cache_manager::FileMetadataCache>;
}

impl Bucket {
    fn err(&self, e: Error) -> Error {
        e.with_backend(self.kind)
    }

    /// `s3://bucket/key` (`hdfs://host:port/path`), for messages.
    fn url_of(&self, key: &str) -> String {
        format!("{}://{}/{key}", self.kind, self.bucket)
    }

    fn connection_error(&self, doing: String, e: object_store::Error) -> Error {
        self.err(Error::new(
            crate::ErrorKind::Connection,
            format!("{doing}: {e}"),
        ))
    }
}

/// Datasets under one bucket prefix.
pub struct S3Backend {
    b: Arc<Bucket>,
    /// The format of tables made by CREATE TABLE.
    new_format: Format,
    /// Does CREATE TABLE make record collections?
    new_records: bool,
    /// CREATE TABLE makes single-object tables (`layout=object`).
    new_objects: bool,
    /// Tables by name, as last listed.
    tables: RwLock<BTreeMap<String, Entry>>,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.b.shown)
            .finish()
    }
}

fn percent_decoded(s: &str) -> String {
    // URL user info: %XX escapes only (`+` and `&` are themselves, unlike in a query).
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// An object store that is not S3 (HDFS), holding datasets under `prefix` of it: what
/// [`S3Backend::over_store`] needs.
#[cfg(feature = "hdfs")]
pub(crate) struct StoreSpec {
    /// The backend's name and URL scheme (`hdfs`).
    pub kind: &'static str,
    /// The URL authority (`host:port`).
    pub authority: String,
    /// The path prefix, empty or ending with `/`, without a leading `/`.
    pub prefix: String,
    pub store: Arc<dyn ObjectStore>,
    /// For display, never credentials.
    pub shown: String,
    pub infer_rows: usize,
    /// The format of tables made by CREATE TABLE.
    pub new_format: Format,
    /// The store's own Parquet readers.
    pub parquet: Option<Arc<dyn ParquetReaders>>,
}

impl S3Backend {
    fn err(&self, e: Error) -> Error {
        e.with_backend(self.b.kind)
    }

    /// Datasets (a file is a table, a directory of files is a table) in another object
    /// store, with the S3 backend's table naming, reads and writes. Record collections
    /// (`format=records`) and single-object tables with DML (`layout=object`) need S3's
    /// conditional requests and are refused there.
    #[cfg(feature = "hdfs")]
    pub(crate) fn over_store(spec: StoreSpec) -> Result<S3Backend> {
        static N: AtomicU64 = AtomicU64::new(0);
        let store_url = Url::parse(&format!(
            "dk{}-{}://{}",
            spec.kind,
            N.fetch_add(1, Ordering::Relaxed),
            spec.authority
        ))
        .map_err(|e| {
            Error::config(format!("'{}' is not a URL authority: {e}", spec.authority))
                .with_backend(spec.kind)
        })?;
        Ok(S3Backend {
            b: Arc::new(Bucket {
                kind: spec.kind,
                bucket: spec.authority,
                prefix: spec.prefix,
                store: spec.store,
                store_url,
                shown: spec.shown,
                infer_rows: spec.infer_rows,
                settings: ClientSettings::unused(),
                aws: tokio::sync::OnceCell::new(),
                ids: parking_lot::Mutex::new(HashMap::new()),
                parquet: spec.parquet,
            }),
            new_format: spec.new_format,
            new_records: false,
            new_objects: false,
            tables: RwLock::new(BTreeMap::new()),
        })
    }

    pub fn from_url(url: &Url, options: &UrlOptions) -> Result<S3Backend> {
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                Error::config("an s3:// URL needs a bucket: s3://bucket/prefix/")
                    .with_backend(BACKEND)
            })?
            .to_string();
        let mut prefix = url.path().trim_start_matches('/').to_string();
        if prefix.split('/').any(|p| p == ".." || p == ".") {
            return Err(Error::config(format!(
                "the prefix '{prefix}' must not contain '.' or '..' segments"
            ))
            .with_backend(BACKEND));
        }
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let duration = |name: &str, default: u64| -> Result<Duration> {
            Ok(options
                .duration(name)?
                .unwrap_or(Duration::from_secs(default)))
        };
        let retries = options
            .integer("retries")?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .unwrap_or(10);
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: retries,
            retry_timeout: duration("retry_timeout", 180)?,
        };
        let client = ClientOptions::new()
            .with_timeout(duration("timeout", 30)?)
            .with_connect_timeout(duration("connect_timeout", 5)?);
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_retry(retry)
            .with_client_options(client);
        let mut keys = None;
        if !url.username().is_empty() {
            let secret =
                SecretString::from(url.password().map(percent_decoded).unwrap_or_default());
            b = b
                .with_access_key_id(percent_decoded(url.username()))
                .with_secret_access_key(secret.expose_secret());
            keys = Some((percent_decoded(url.username()), secret));
        }
        let region = options
            .text("region")?
            .or_else(|| std::env::var("AWS_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        b = b.with_region(&region);
        let endpoint = options.text("endpoint")?;
        if let Some(e) = &endpoint {
            let parsed = Url::parse(e).map_err(|err| {
                Error::config(format!("endpoint '{e}' is not a URL: {err}")).with_backend(BACKEND)
            })?;
            b = b
                .with_endpoint(e.trim_end_matches('/'))
                .with_allow_http(parsed.scheme() == "http");
        }
        let path_style = options.bool("path_style")?.unwrap_or(endpoint.is_some());
        b = b.with_virtual_hosted_style_request(!path_style);
        let store = b.build().map_err(|e| {
            Error::config(format!(
                "cannot set up the S3 client for bucket '{bucket}': {e}"
            ))
            .with_backend(BACKEND)
        })?;
        static N: AtomicU64 = AtomicU64::new(0);
        let store_url = Url::parse(&format!(
            "dks3-{}://{bucket}",
            N.fetch_add(1, Ordering::Relaxed)
        ))
        .map_err(|e| Error::config(format!("bucket name '{bucket}': {e}")).with_backend(BACKEND))?;
        let shown = match &endpoint {
            Some(e) => format!("s3://{bucket}/{prefix} (endpoint {e})"),
            None => format!("s3://{bucket}/{prefix} (region {region})"),
        };
        let infer_rows = options
            .integer("infer_rows")?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .unwrap_or(1000);
        let (new_format, new_records) = match options.text("format")?.as_deref() {
            None => (Format::Parquet, false),
            Some("records") => (Format::NdJson, true),
            Some(f) => (f.parse::<Format>()?, false),
        };
        let new_objects = options.text("layout")?.as_deref() == Some("object");
        let settings = ClientSettings {
            region: region.clone(),
            endpoint: endpoint.clone(),
            path_style,
            keys,
            retries: u32::try_from(retries).unwrap_or(u32::MAX),
            timeout: duration("timeout", 30)?,
            connect_timeout: duration("connect_timeout", 5)?,
            max_workers: options
                .integer("max_workers")?
                .map(|n| usize::try_from(n).unwrap_or(64))
                .unwrap_or(64),
            list_cache: duration("list_cache", 5)?,
        };
        Ok(S3Backend {
            b: Arc::new(Bucket {
                kind: BACKEND,
                bucket,
                prefix,
                store: Arc::new(store),
                store_url,
                shown,
                infer_rows,
                settings,
                aws: tokio::sync::OnceCell::new(),
                ids: parking_lot::Mutex::new(HashMap::new()),
                parquet: None,
            }),
            new_format,
            new_records,
            new_objects,
            tables: RwLock::new(BTreeMap::new()),
        })
    }

    /// Lists the prefix again: objects and sub-prefixes holding data objects.
    pub async fn refresh(&self) -> Result<()> {
        let b = &self.b;
        let at = (!b.prefix.is_empty()).then(|| StorePath::from(b.prefix.as_str()));
        let listed = b
            .store
            .list_with_delimiter(at.as_ref())
            .await
            .map_err(|e| b.connection_error(format!("cannot list {}", b.shown), e))?;
        let mut tables = BTreeMap::new();
        for o in &listed.objects {
            let key = o.location.as_ref();
            if let Some((name, format, compression)) = detect(key) {
                tables.insert(
                    name,
                    Entry::Object {
                        key: key.to_string(),
                        format,
                        compression,
                    },
                );
            }
        }
        for p in &listed.common_prefixes {
            let Some(name) = p.filename().map(str::to_string) else {
                continue;
            };
            if name.starts_with('.') || name.starts_with('_') || tables.contains_key(&name) {
                continue;
            }
            // A table made here says what it is in its sidecar; otherwise the first data
            // object below the prefix (Hive partitions included) gives the format.
            let dir = format!("{}/", p.as_ref());
            if let Some(sidecar) = dataset::read_sidecar(b, &dir).await? {
                let entry = if sidecar.format == dataset::RECORDS {
                    Some(Entry::Records { prefix: dir })
                } else {
                    sidecar
                        .format
                        .parse::<Format>()
                        .ok()
                        .map(|format| Entry::Dir {
                            prefix: dir,
                            format,
                            compression: Compression::None,
                        })
                };
                if let Some(e) = entry {
                    tables.insert(name.clone(), e);
                    continue;
                }
            }
            let mut below = b.store.list(Some(p));
            while let Some(item) = below.next().await {
                let o = item.map_err(|e| {
                    b.connection_error(format!("cannot list {}", b.url_of(&format!("{p}/"))), e)
                })?;
                if let Some((_, format, compression)) = detect(o.location.as_ref()) {
                    tables.insert(
                        name.clone(),
                        Entry::Dir {
                            prefix: format!("{}/", p.as_ref()),
                            format,
                            compression,
                        },
                    );
                    break;
                }
            }
        }
        *self.tables.write() = tables;
        Ok(())
    }

    /// Refuses names that could leave the prefix or are not one key segment.
    fn check_name(&self, name: &str) -> Result<()> {
        if name.is_empty()
            || name.contains('/')
            || name.contains('\\')
            || name.starts_with('.')
            || name.starts_with('_')
            || name.contains("..")
            || name.chars().any(char::is_control)
            || name.contains('%')
        {
            return Err(self.err(Error::query(format!(
                "'{name}' is not a table name here: names under {} are one key segment, \
                 without '/', '\\', '%', '..', control characters or a leading '.' or '_'",
                self.b.shown
            ))));
        }
        Ok(())
    }

    /// The entry of table `name`, listing again when it is not known.
    async fn find(&self, name: &str) -> Result<Option<Entry>> {
        self.check_name(name)?;
        if let Some(e) = self.tables.read().get(name) {
            return Ok(Some(e.clone()));
        }
        self.refresh().await?;
        Ok(self.tables.read().get(name).cloned())
    }

    /// Opens the record collection at `prefix` (its sidecar gives columns and key).
    async fn records(&self, name: &str, prefix: &str) -> Result<S3Records> {
        let sidecar = dataset::read_sidecar(&self.b, prefix)
            .await?
            .ok_or_else(|| {
                self.err(Error::not_found(format!(
                    "the record collection '{name}' lost its description {}{}",
                    self.b.url_of(prefix),
                    dataset::SIDECAR
                )))
            })?;
        let schema = sidecar.schema().map_err(|e| self.err(e))?;
        Ok(S3Records::new(
            self.b.clone(),
            name,
            prefix.to_string(),
            schema,
            sidecar.key,
        ))
    }

    fn dataset(&self, name: &str, entry: Entry) -> S3Dataset {
        S3Dataset::new(self.b.clone(), name, entry)
    }
}

/// A data object's table name, format and compression, from its key's last segment.
fn detect(key: &str) -> Option<(String, Format, Compression)> {
    let name = key.rsplit('/').next()?;
    format::detect(std::path::Path::new(name))
}

#[async_trait]
impl Backend for S3Backend {
    fn kind(&self) -> &str {
        self.b.kind
    }

    fn location(&self) -> String {
        self.b.shown.clone()
    }

    fn schema_names(&self) -> Vec<String> {
        vec![SCHEMA.to_string()]
    }

    fn collection_names(&self, schema: &str) -> Vec<String> {
        if schema != SCHEMA {
            return vec![];
        }
        self.tables.read().keys().cloned().collect()
    }

    fn object_store(&self) -> Option<(Url, Arc<dyn ObjectStore>)> {
        let url = Url::parse(&format!("{}://{}", self.b.kind, self.b.bucket)).ok()?;
        Some((url, self.b.store.clone()))
    }

    async fn open(&self, schema: &str, name: &str) -> Result<Option<Arc<dyn Database>>> {
        if schema != SCHEMA {
            return Ok(None);
        }
        let Some(entry) = self.find(name).await? else {
            return Ok(None);
        };
        if let Entry::Records { prefix } = &entry {
            if self.b.kind != BACKEND {
                return Err(self.err(Error::unsupported(format!(
                    "'{name}' is an S3 record collection ({}): those need S3; attach with \
                     layout=kv for records here",
                    self.b.url_of(prefix)
                ))));
            }
            return Ok(Some(Arc::new(self.records(name, prefix).await?)));
        }
        if let Entry::Object {
            key,
            format,
            compression,
        } = &entry
            && self.b.kind == BACKEND
        {
            let db = object::open(self.b.clone(), name, key, *format, *compression).await?;
            return Ok(Some(Arc::new(db)));
        }
        let mut ds = self.dataset(name, entry);
        ds.load().await?;
        Ok(Some(Arc::new(ds)))
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
                "the {} backend has one schema, '{SCHEMA}'",
                self.b.kind
            ))));
        }
        if let Some(entry) = self.find(name).await? {
            if if_not_exists && let Some(db) = self.open(schema, name).await? {
                return Ok(db);
            }
            let at = match &entry {
                Entry::Object { key, .. } => self.b.url_of(key),
                Entry::Dir { prefix, .. } | Entry::Records { prefix } => self.b.url_of(prefix),
            };
            return Err(self.err(Error::already_exists(format!(
                "table '{name}' exists: {at}"
            ))));
        }
        let prefix = format!("{}{name}/", self.b.prefix);
        if spec.record_ids || self.new_records {
            // A record collection: the sidecar declares its columns and key.
            let columns = dataset::writing_schema(&spec.schema);
            if let Some(k) = &spec.key
                && columns.field_with_name(k).is_err()
            {
                return Err(self.err(Error::query(format!(
                    "the key '{k}' of '{name}' is not one of its columns"
                ))));
            }
            let mut sidecar = dataset::Sidecar::of(Format::NdJson, &columns);
            sidecar.format = dataset::RECORDS.to_string();
            sidecar.key = spec.key.clone();
            dataset::write_sidecar(&self.b, name, &prefix, &sidecar).await?;
            self.tables.write().insert(
                name.to_string(),
                Entry::Records {
                    prefix: prefix.clone(),
                },
            );
            return Ok(Arc::new(S3Records::new(
                self.b.clone(),
                name,
                prefix,
                columns,
                spec.key,
            )));
        }
        if self.new_objects {
            let key = format!(
                "{}{}",
                self.b.prefix,
                format::file_name(name, self.new_format, Compression::None)
            );
            let db = object::create(
                self.b.clone(),
                name,
                &key,
                self.new_format,
                Compression::None,
                spec.schema,
                spec.key.as_deref(),
            )
            .await?;
            self.tables.write().insert(
                name.to_string(),
                Entry::Object {
                    key,
                    format: self.new_format,
                    compression: Compression::None,
                },
            );
            return Ok(Arc::new(db));
        }
        if spec.key.is_some() {
            return Err(self.err(Error::unsupported(format!(
                "tables under a prefix have no keys: create '{name}' without PRIMARY KEY, or \
                 attach with layout=object for single-object tables with keys, or with \
                 format=records for record collections"
            ))));
        }
        let entry = Entry::Dir {
            prefix,
            format: self.new_format,
            compression: Compression::None,
        };
        let ds = S3Dataset::create(self.b.clone(), name, entry.clone(), spec.schema).await?;
        self.tables.write().insert(name.to_string(), entry);
        Ok(Arc::new(ds))
    }

    async fn drop_collection(&self, schema: &str, name: &str, if_exists: bool) -> Result<bool> {
        if schema != SCHEMA {
            return Ok(false);
        }
        let Some(entry) = self.find(name).await? else {
            return crate::database::drop_missing(
                self.b.kind,
                name,
                &format!("under {}", self.b.shown),
                if_exists,
            );
        };
        let b = &self.b;
        let keys: Vec<StorePath> = match &entry {
            Entry::Object { key, format, .. } => {
                let mut keys = vec![StorePath::from(key.as_str())];
                if *format != Format::Parquet {
                    keys.push(StorePath::from(object::sidecar_key(key)));
                }
                keys
            }
            Entry::Dir { prefix, .. } | Entry::Records { prefix } => {
                // `prefix/name/`: the trailing '/' keeps `name2/` and `name.parquet` out.
                if !prefix.starts_with(&b.prefix) || !prefix.ends_with(&format!("/{name}/")) {
                    return Err(self.err(Error::query(format!(
                        "refusing to delete {}: not a table under {}",
                        b.url_of(prefix),
                        b.shown
                    ))));
                }
                let at = StorePath::from(prefix.as_str());
                b.store
                    .list(Some(&at))
                    .map_ok(|o| o.location)
                    .try_collect()
                    .await
                    .map_err(|e| {
                        b.connection_error(format!("cannot list {}", b.url_of(prefix)), e)
                    })?
            }
        };
        let mut deleted = b
            .store
            .delete_stream(futures::stream::iter(keys.into_iter().map(Ok)).boxed());
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    self.tables.write().remove(name);
                    return Err(b.connection_error(
                        format!("DROP TABLE {name}: deleting its objects failed part-way"),
                        e,
                    ));
                }
            }
        }
        self.tables.write().remove(name);
        if let Entry::Records { prefix } = &entry {
            b.ids.lock().remove(prefix);
        }
        Ok(true)
    }

    async fn sql_table(
        &self,
        schema: &str,
        name: &str,
        location: Location,
    ) -> Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        if schema != SCHEMA {
            return Ok(None);
        }
        let Some(entry) = self.find(name).await? else {
            return Ok(None);
        };
        if matches!(entry, Entry::Records { .. }) {
            // The generic table over the record collection (crate::table::DatabaseTable).
            return Ok(None);
        }
        if let Entry::Object { key, format, .. } = &entry
            && *format != Format::Parquet
            && object::has_sidecar(&self.b, key).await?
        {
            // A text object written here: its sidecar types its columns and says how NULL
            // is written, which DataFusion's text readers do not take; it reads through its
            // record store (the generic table over `open`), like the file backend's files.
            return Ok(None);
        }
        let ds = self.dataset(name, entry);
        Ok(Some(Arc::new(S3Table::new(ds, location).await?)))
    }
}

/// The record store behind an S3 single-object table, for DELETE/UPDATE/TRUNCATE
/// ([`crate::dml`]); None when `provider` is not an S3 dataset table.
pub(crate) fn dml_table(
    provider: &dyn std::any::Any,
) -> datafusion::error::Result<Option<crate::table::DatabaseTable>> {
    let Some(table) = provider.downcast_ref::<S3Table>() else {
        return Ok(None);
    };
    table.dml_writer().map(Some)
}
