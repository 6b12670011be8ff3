//! The HDFS backend (issue 16). `hdfs://host:port/path` attaches the directory `path`:
//!
//! * default (`layout=files`): the file backend's table naming over HDFS — a Parquet, CSV,
//!   TSV, JSON or NDJSON file is a table, a directory of data files is a table (Hive
//!   partitions become columns) — read by DataFusion through `object_store`
//!   (`hdfs-native-object-store`, no JVM), with projection, row-group pruning and predicate
//!   pushdown for Parquet. INSERT writes a new file (a hidden temporary file renamed into
//!   place, so each is visible complete or not at all), CREATE TABLE makes a directory with a
//!   sidecar of its columns, DROP TABLE deletes it, and `COPY … TO 'hdfs://host:port/…'`
//!   exports. It shares the S3 backend's dataset code ([`crate::backends::s3`]).
//! * `layout=kv`: the HDFS key-value store ([`crate::kv::hdfs`]) — `path` is its base
//!   directory (default `/volnux`), each schema directory a table with a `key` column plus
//!   the records' fields ([`crate::kv::table`]), `key = …` / `key IN (…)` read those files
//!   directly.
//!
//! The user is the process's (`HADOOP_USER_NAME`, else the OS user): a user name in the URL
//! must be that one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::backends::file::format::Format;
use crate::backends::s3::{S3Backend, StoreSpec};
use crate::config::{BackendKind, OptionKind, OptionSpec, UrlOptions};
use crate::database::Backend;
use crate::error::{Error, Result};
use crate::kv::hdfs::{DEFAULT_BASE, HdfsKeyValueStore, authority, check_user};
use crate::kv::table::{KvBackend, KvSettings};
use crate::kv::{ConnectionMode, ConnectorConfig, PoolSettings};

pub const BACKEND: &str = "hdfs";

/// The `hdfs://` backend kind.
#[derive(Debug)]
pub struct HdfsKind;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "layout",
        OptionKind::Choice(&["files", "kv"]),
        "files: data files and directories of them are tables; kv: the key-value store's \
         records (one JSON file per record, a directory per schema) are tables",
    )
    .default("files"),
    OptionSpec::new(
        "format",
        OptionKind::Choice(&["parquet", "csv", "tsv", "ndjson", "json"]),
        "files: the format of tables made by CREATE TABLE",
    )
    .default("parquet"),
    OptionSpec::new(
        "infer_rows",
        OptionKind::Integer {
            min: 1,
            max: 10_000_000,
        },
        "files: rows read to infer the schema of CSV and JSON files",
    )
    .default("1000"),
    OptionSpec::new(
        "mode",
        OptionKind::Choice(&["single", "pooled"]),
        "kv: single: one namenode connection shared by all queries; pooled: a pool of them",
    )
    .default("single"),
    OptionSpec::new(
        "max_connections",
        OptionKind::Integer {
            min: 1,
            max: 10_000,
        },
        "kv, pooled: the most connections open at once",
    )
    .default("10"),
    OptionSpec::new(
        "connection_timeout",
        OptionKind::Duration,
        "kv, pooled: the longest a query waits for a free connection",
    )
    .default("30s"),
    OptionSpec::new(
        "idle_timeout",
        OptionKind::Duration,
        "kv, pooled: connections unused this long are closed (0: never)",
    )
    .default("10m"),
    OptionSpec::new(
        "connect_timeout",
        OptionKind::Duration,
        "the longest connecting to the namenode may take",
    )
    .default("10s"),
    OptionSpec::new(
        "sample",
        OptionKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        "kv: records read to infer the columns of a schema that no CREATE TABLE declared",
    )
    .default("1000"),
    OptionSpec::new(
        "scan_batch",
        OptionKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        "kv: records per batch of a scan",
    )
    .default("1024"),
    OptionSpec::new(
        "write_batch",
        OptionKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        "kv: rows INSERT writes per request batch",
    )
    .default("1000"),
];

fn bad(m: String) -> Error {
    Error::config(m).with_backend(BACKEND)
}

/// The namenode's host and port (default 9000, as the examples; 8020 is Hadoop's).
fn namenode(url: &Url) -> Result<(String, u16)> {
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("an hdfs:// URL needs the namenode: hdfs://host:port/path".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((host, url.port().unwrap_or(9000)))
}

fn user(url: &Url) -> Result<Option<String>> {
    if url.password().is_some() {
        return Err(bad(
            "HDFS with simple authentication takes no password: hdfs://user@host:port/path".into(),
        ));
    }
    Ok((!url.username().is_empty()).then(|| {
        percent_encoding::percent_decode_str(url.username())
            .decode_utf8_lossy()
            .into_owned()
    }))
}

/// The key-value store's settings from an `hdfs://…?layout=kv` URL: connector, mode, pool,
/// table settings and base directory.
pub fn kv_settings_from_url(
    url: &Url,
    options: &UrlOptions,
) -> Result<(
    ConnectorConfig,
    ConnectionMode,
    PoolSettings,
    KvSettings,
    String,
)> {
    let (host, port) = namenode(url)?;
    let mut config = ConnectorConfig::new(host, port);
    config.username = user(url)?;
    let duration = |name: &str, default: u64| -> Result<Duration> {
        Ok(options
            .duration(name)?
            .unwrap_or(Duration::from_secs(default)))
    };
    config.connect_timeout = duration("connect_timeout", 10)?;
    let (mode, pool) = crate::kv::table::manager_options(options)?;
    let table = KvSettings::from_options(options, String::new(), 1024)?;
    let path = percent_encoding::percent_decode_str(url.path())
        .decode_utf8_lossy()
        .into_owned();
    let base = if path.trim_matches('/').is_empty() {
        DEFAULT_BASE.to_string()
    } else {
        path
    };
    Ok((config, mode, pool, table, base))
}

/// Opens the datasets under `url`'s directory.
fn files_backend(url: &Url, options: &UrlOptions) -> Result<S3Backend> {
    let (host, port) = namenode(url)?;
    if let Some(u) = user(url)? {
        check_user(&u)?;
    }
    let raw = url.path();
    if raw.contains('%') {
        return Err(bad(format!(
            "the path '{raw}' must not contain '%' escapes: write it as it is"
        )));
    }
    let mut prefix = raw.trim_start_matches('/').to_string();
    if prefix.split('/').any(|p| p == ".." || p == ".") {
        return Err(bad(format!(
            "the path '{raw}' must not contain '.' or '..' components"
        )));
    }
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let authority = authority(&host, port);
    let client = crate::kv::hdfs::client_builder()
        .with_url(format!("hdfs://{authority}"))
        .build()
        .map_err(|e| bad(format!("cannot set up an HDFS client for {authority}: {e}")))?;
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(
        hdfs_native_object_store::HdfsObjectStore::new(client.clone()),
    );
    let parquet = crate::backends::hdfs_parquet::HdfsParquet::new(client, store.clone());
    let new_format = match options.text("format")?.as_deref() {
        None => Format::Parquet,
        Some(f) => f.parse::<Format>()?,
    };
    let infer_rows = options
        .integer("infer_rows")?
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .unwrap_or(1000);
    S3Backend::over_store(StoreSpec {
        kind: BACKEND,
        shown: format!("hdfs://{authority}/{prefix}"),
        authority,
        prefix,
        store,
        infer_rows,
        new_format,
        parquet: Some(Arc::new(parquet)),
    })
}

#[async_trait]
impl BackendKind for HdfsKind {
    fn name(&self) -> &'static str {
        BACKEND
    }
    fn schemes(&self) -> &'static [&'static str] {
        &["hdfs"]
    }
    fn description(&self) -> &'static str {
        "HDFS: Parquet/CSV/JSON files and directories as tables, or (layout=kv) the key-value \
         store's JSON records"
    }
    fn persistent(&self) -> bool {
        true
    }
    fn example_url(&self) -> &'static str {
        "hdfs://127.0.0.1:9000/warehouse"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    async fn open(&self, url: &Url, options: &UrlOptions) -> Result<Arc<dyn Backend>> {
        if options.text("layout")?.as_deref() == Some("kv") {
            let (config, mode, pool, table, base) = kv_settings_from_url(url, options)?;
            let store = HdfsKeyValueStore::connect(config, mode, pool, &base).await?;
            return Ok(Arc::new(KvBackend::open(Arc::new(store), table).await?));
        }
        let backend = files_backend(url, options)?;
        let connect = options
            .duration("connect_timeout")?
            .unwrap_or(Duration::from_secs(10));
        match tokio::time::timeout(connect, backend.refresh()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::new(
                    crate::ErrorKind::Connection,
                    format!(
                        "listing {} took longer than {connect:?} (connect_timeout); is the \
                         namenode up and reachable?",
                        backend.location()
                    ),
                )
                .with_backend(BACKEND));
            }
        }
        Ok(Arc::new(backend))
    }
}
