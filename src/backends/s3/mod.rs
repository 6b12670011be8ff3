//! The S3 backend (issue 14, in progress): Parquet / CSV / TSV / JSON / NDJSON datasets under a
//! bucket prefix, as tables, read through DataFusion's listing tables over `object_store`'s
//! Amazon S3 client (projection, row-group pruning and predicate pushdown for Parquet, range
//! reads coalesced).
//!
//! URL: `s3://[ACCESS_KEY:SECRET@]bucket[/prefix/][?region=…&endpoint=…&path_style=…]`.
//! Credentials come from the URL's user info, else the usual `AWS_*` environment variables.
//! Tables follow the file backend's naming rule: under the prefix, the object
//! `lineitem.parquet` is the table `lineitem`, and a sub-prefix `events/` holding data objects
//! is the table `events`. Nothing outside the prefix is listed or read: table names with `/`,
//! `..` or a leading `.` are refused.
//!
//! Each backend registers its store in a session under a URL of its own
//! (`dks3-<n>://bucket`), when a scan is planned, so two attachments of one bucket with
//! different endpoints or credentials never share a client. Not yet here: writes (INSERT,
//! CREATE TABLE AS, DROP), the record-object store of the seed's S3Database, retries tuning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use parking_lot::RwLock;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::backends::file::format::{self, Compression, Format};
use crate::config::{BackendKind, OptionKind, OptionSpec, UrlOptions};
use crate::database::{Backend, CollectionSpec, Database, Location};
use crate::error::{Error, Result};

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
}

/// Datasets under one bucket prefix.
pub struct S3Backend {
    bucket: String,
    /// The key prefix, empty or ending with `/`.
    prefix: String,
    store: Arc<dyn ObjectStore>,
    /// The URL the store is registered under in a session (`dks3-<n>://bucket`).
    store_url: Url,
    /// For display: `s3://bucket/prefix/` and the endpoint, never credentials.
    shown: String,
    infer_rows: usize,
    /// Tables by name, as last listed.
    tables: RwLock<BTreeMap<String, Entry>>,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("location", &self.shown)
            .finish()
    }
}

fn percent_decoded(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl S3Backend {
    fn err(&self, e: Error) -> Error {
        e.with_backend(BACKEND)
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
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        if !url.username().is_empty() {
            let secret =
                SecretString::from(url.password().map(percent_decoded).unwrap_or_default());
            b = b
                .with_access_key_id(percent_decoded(url.username()))
                .with_secret_access_key(secret.expose_secret());
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
        Ok(S3Backend {
            bucket,
            prefix,
            store: Arc::new(store),
            store_url,
            shown,
            infer_rows,
            tables: RwLock::new(BTreeMap::new()),
        })
    }

    /// Lists the prefix again: objects and sub-prefixes holding data objects.
    pub async fn refresh(&self) -> Result<()> {
        let at = (!self.prefix.is_empty()).then(|| StorePath::from(self.prefix.as_str()));
        let listed = self
            .store
            .list_with_delimiter(at.as_ref())
            .await
            .map_err(|e| {
                self.err(Error::new(
                    crate::ErrorKind::Connection,
                    format!("cannot list {}: {e}", self.shown),
                ))
            })?;
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
            // The format of the first data object below it (Hive partitions included).
            let mut below = self.store.list(Some(p));
            use futures::StreamExt;
            while let Some(item) = below.next().await {
                let o = item.map_err(|e| {
                    self.err(Error::new(
                        crate::ErrorKind::Connection,
                        format!("cannot list s3://{}/{p}/: {e}", self.bucket),
                    ))
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

    /// The entry of table `name`, listing again when it is not known.
    async fn find(&self, name: &str) -> Result<Option<Entry>> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') || name.contains("..") {
            return Err(self.err(Error::query(format!(
                "'{name}' is not a table name here: names under {} have no '/', '..' or leading '.'",
                self.shown
            ))));
        }
        if let Some(e) = self.tables.read().get(name) {
            return Ok(Some(e.clone()));
        }
        self.refresh().await?;
        Ok(self.tables.read().get(name).cloned())
    }

    /// A session whose runtime knows this backend's store.
    fn register_in(&self, runtime: &datafusion::execution::runtime_env::RuntimeEnv) {
        runtime.register_object_store(&self.store_url, self.store.clone());
    }

    async fn listing_table(&self, entry: &Entry) -> Result<ListingTable> {
        let (key, format, compression, is_dir) = match entry {
            Entry::Object {
                key,
                format,
                compression,
            } => (key, *format, *compression, false),
            Entry::Dir {
                prefix,
                format,
                compression,
            } => (prefix, *format, *compression, true),
        };
        let url_text = format!("{}/{key}", self.store_url.as_str().trim_end_matches('/'));
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
        let ctx = SessionContext::new();
        self.register_in(ctx.runtime_env().as_ref());
        let state = ctx.state();
        let options = crate::backends::file::listing_options(
            format,
            compression,
            self.infer_rows,
            None,
            &state,
            &url,
            is_dir,
        )
        .await
        .map_err(|e| self.err(e.into()))?;
        let schema = options.infer_schema(&state, &url).await.map_err(|e| {
            self.err(Error::query(format!(
                "cannot read the schema of s3://{}/{key}: {e}",
                self.bucket
            )))
        })?;
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        ListingTable::try_new(config).map_err(|e| self.err(e.into()))
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
        BACKEND
    }

    fn location(&self) -> String {
        self.shown.clone()
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

    async fn open(&self, schema: &str, name: &str) -> Result<Option<Arc<dyn Database>>> {
        if schema != SCHEMA || self.find(name).await?.is_none() {
            return Ok(None);
        }
        Err(self.err(Error::unsupported(format!(
            "'{name}' is a dataset under {}: read it with SQL (the record API on S3 record \
             objects is not built yet)",
            self.shown
        ))))
    }

    async fn create_collection(
        &self,
        _schema: &str,
        name: &str,
        _spec: CollectionSpec,
        _if_not_exists: bool,
    ) -> Result<Arc<dyn Database>> {
        Err(self.err(Error::unsupported(format!(
            "CREATE TABLE {name} on S3 is not supported yet (datasets are read-only for now)"
        ))))
    }

    async fn drop_collection(&self, _schema: &str, name: &str, _if_exists: bool) -> Result<bool> {
        Err(self.err(Error::unsupported(format!(
            "DROP TABLE {name} on S3 is not supported yet (datasets are read-only for now)"
        ))))
    }

    async fn sql_table(
        &self,
        schema: &str,
        name: &str,
        _location: Location,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        if schema != SCHEMA {
            return Ok(None);
        }
        let Some(entry) = self.find(name).await? else {
            return Ok(None);
        };
        let listing = self.listing_table(&entry).await?;
        Ok(Some(Arc::new(S3Table {
            listing,
            store: self.store.clone(),
            store_url: self.store_url.clone(),
        })))
    }
}

/// A dataset's listing table, registering its store in the session that scans it.
#[derive(Debug)]
struct S3Table {
    listing: ListingTable,
    store: Arc<dyn ObjectStore>,
    store_url: Url,
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
            .register_object_store(&self.store_url, self.store.clone());
        self.listing.scan(state, projection, filters, limit).await
    }
}
