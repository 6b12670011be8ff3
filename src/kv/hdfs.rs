//! The HDFS key-value store (the seed's `HDFSStoreBackend` and `HDFSConnector`): each record
//! is one JSON file, `<base>/<schema>/<key>`, under a base directory (default `/volnux`),
//! reached through `hdfs-native` (HDFS's own RPC and data-transfer protocols, no JVM).
//!
//! * **Names.** Schema and key are each one path component, percent-encoded except for
//!   `[A-Za-z0-9-_.]` (and a leading `.` is always encoded): any key, `../x` and `/abs`
//!   included, is one file inside its schema's directory, and never a path. Schema names
//!   that look like paths (`/`, `\`, `..`, `%`, a leading `.`) are refused.
//! * **Insert** writes a hidden temporary file beside the record and renames it to the
//!   record's name without overwrite: HDFS's rename refuses an existing target atomically, so
//!   of two concurrent inserts of one key exactly one succeeds, and a reader never sees a
//!   record half written.
//! * **Update, delete and compare-and-set** take a per-key lock file (created without
//!   overwrite, which is atomic on existence; a lock older than [`STALE_LOCK`] is taken as
//!   left behind by a writer that died) and then rename a complete temporary file over the
//!   record: a reader sees the old record or the new one, never a torn file.
//! * Files whose names start with `.` (temporary and lock files) are never records.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use hdfs_native::{Client, ClientBuilder, HdfsError, WriteOptions};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{
    ConnectionMode, Connector, ConnectorConfig, ConnectorManager, ConnectorManagerFactory,
    KeyValueStore, Lease, MoveConflict, PoolSettings, SCAN_BATCH, already_exists,
};
use crate::error::{Error, ErrorKind, Result};

/// A builder of hdfs-native clients whose connections outlive the caller's tokio runtime.
///
/// hdfs-native keeps DataNode connections in one process-wide cache, each registered with
/// the runtime that opened it: a connection opened on a runtime that has since shut down
/// (another engine's, a sync `Database`'s, a finished test's) fails the next read that takes
/// it from the cache ("A Tokio 1.x context was found, but it is being shutdown"). Clients of
/// this builder open their connections and run their tasks on one runtime of their own that
/// lives as long as the process; a program that also makes hdfs-native clients of its own
/// should make them with this builder.
pub fn client_builder() -> ClientBuilder {
    static IO: std::sync::LazyLock<Option<tokio::runtime::Runtime>> =
        std::sync::LazyLock::new(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("dataknobs-hdfs-io")
                .enable_all()
                .build()
                .map_err(|e| {
                    tracing::warn!(
                        "hdfs: no I/O runtime of its own ({e}); HDFS connections use the caller's"
                    )
                })
                .ok()
        });
    match IO.as_ref() {
        Some(rt) => ClientBuilder::new().with_io_runtime(rt.handle().clone()),
        None => ClientBuilder::new(),
    }
}

const KIND: &str = "hdfs";

/// The seed's default base directory.
pub const DEFAULT_BASE: &str = "/volnux";

/// Requests in flight at once in batch operations and scans.
pub const WORKERS: usize = 32;

/// Records being written at once by a batch write. Closing a file can wait 500 ms (the
/// client asks the namenode again when it has not yet heard from the datanode about the
/// block), so writes keep more in flight than reads: each costs little while it waits. It is
/// also the most record transfers (reads and writes) the process has in flight at once over
/// all its stores and calls (see `TRANSFERS`).
pub const WRITERS: usize = 128;

/// How long a writer waits for another writer's lock on a key.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// A lock file older than this was left by a writer that died: it is removed.
pub const STALE_LOCK: Duration = Duration::from_secs(60);

/// HDFS's longest path component (`dfs.namenode.fs-limits.max-component-length`).
const MAX_COMPONENT: usize = 255;

/// Kept as they are in file names; everything else is `%XX`.
const NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// The user `hdfs-native` connects as in this process: `HADOOP_USER_NAME`, else the OS user.
pub fn process_user() -> String {
    std::env::var("HADOOP_USER_NAME")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(whoami::username)
}

/// `host:port` of a namenode (`[host]:port` for an IPv6 address).
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn address(c: &ConnectorConfig) -> String {
    authority(&c.host, c.port)
}

/// Refuses a user other than the process's: hdfs-native connects as one user per process.
pub fn check_user(user: &str) -> Result<()> {
    let me = process_user();
    if user != me {
        return Err(Error::config(format!(
            "cannot connect to HDFS as '{user}': hdfs-native connects as one user per process, \
             here '{me}' (HADOOP_USER_NAME, else the OS user); start the process with \
             HADOOP_USER_NAME={user}"
        ))
        .with_backend(KIND));
    }
    Ok(())
}

fn is_missing(e: &HdfsError) -> bool {
    match e {
        HdfsError::FileNotFound(_) => true,
        HdfsError::RPCError(class, _) => class.ends_with("FileNotFoundException"),
        _ => false,
    }
}

fn broke_connection(e: &HdfsError) -> bool {
    matches!(
        e,
        HdfsError::IOError(_) | HdfsError::FatalRPCError(..) | HdfsError::DataTransferError(_)
    )
}

/// An HDFS error as ours: what failed (`doing`), where (`path`), and what to do.
pub fn hdfs_error(path: &str, doing: &str, e: &HdfsError) -> Error {
    let (kind, text) = match e {
        HdfsError::AlreadyExists(_) => (ErrorKind::AlreadyExists, "it exists".to_string()),
        e if is_missing(e) => (ErrorKind::NotFound, "no such file or directory".to_string()),
        HdfsError::RPCError(class, msg) if class.ends_with("AccessControlException") => (
            ErrorKind::Config,
            format!(
                "permission denied for HDFS user '{}': {}; the user needs rights on that path \
                 (or connect as another user with HADOOP_USER_NAME)",
                process_user(),
                msg.lines().next().unwrap_or_default()
            ),
        ),
        HdfsError::RPCError(class, msg) | HdfsError::FatalRPCError(class, msg) => (
            ErrorKind::Query,
            format!("{class}: {}", msg.lines().next().unwrap_or_default()),
        ),
        HdfsError::IOError(io) => (
            ErrorKind::Connection,
            format!("{io}; is the namenode (and its datanodes) up and reachable?"),
        ),
        other => (ErrorKind::Connection, other.to_string()),
    };
    Error::new(kind, format!("{doing} {path}: {text}")).with_backend(KIND)
}

/// One connection to a namenode (`hdfs-native`'s client). Simple authentication: the user is
/// the process's (`HADOOP_USER_NAME` or the OS user), so a configured `username` must be
/// that one.
pub struct HdfsConnector {
    config: ConnectorConfig,
    client: Option<Client>,
}

impl fmt::Debug for HdfsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HdfsConnector")
            .field("config", &self.config)
            .field("connected", &self.client.is_some())
            .finish()
    }
}

#[async_trait]
impl Connector for HdfsConnector {
    type Client = Client;

    fn new(config: ConnectorConfig) -> Result<Self> {
        if config.host.is_empty() {
            return Err(
                Error::config("an HDFS connection needs a namenode host").with_backend(KIND)
            );
        }
        if config.password.is_some() {
            return Err(Error::config(
                "HDFS with simple authentication takes no password: remove it from the URL or \
                 configuration",
            )
            .with_backend(KIND));
        }
        if let Some(user) = &config.username {
            check_user(user)?;
        }
        Ok(HdfsConnector {
            config,
            client: None,
        })
    }

    fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    async fn connect(&mut self) -> Result<()> {
        let at = format!("hdfs://{}", address(&self.config));
        let client = client_builder()
            .with_url(at.clone())
            .build()
            .map_err(|e| hdfs_error(&at, "configuring a client for", &e))?;
        // A round trip, so that an unreachable namenode is an error now.
        client
            .get_file_info("/")
            .await
            .map_err(|e| hdfs_error(&at, "connecting to", &e))?;
        self.client = Some(client);
        Ok(())
    }

    async fn disconnect(&mut self) -> Result<()> {
        self.client = None;
        Ok(())
    }

    async fn is_connected(&mut self) -> bool {
        match &self.client {
            Some(c) => c.get_file_info("/").await.is_ok(),
            None => false,
        }
    }

    fn client(&self) -> Result<Client> {
        self.client.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Connection,
                format!("not connected to hdfs://{}", address(&self.config)),
            )
            .with_backend(KIND)
        })
    }
}

/// Records as JSON files under a base directory of HDFS (see the module documentation).
pub struct HdfsKeyValueStore {
    manager: Arc<ConnectorManager<HdfsConnector>>,
    /// The base directory: absolute, without a trailing `/`.
    base: String,
    /// `hdfs://host:port/base`.
    shown: String,
}

impl fmt::Debug for HdfsKeyValueStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HdfsKeyValueStore")
            .field("at", &self.shown)
            .finish()
    }
}

/// Checks a base directory and returns it without a trailing `/` (`/` itself is allowed).
pub fn check_base(base: &str) -> Result<String> {
    let bad = |why: &str| {
        Err(Error::config(format!(
            "'{base}' is not a base directory for records: {why}"
        ))
        .with_backend(KIND))
    };
    if !base.starts_with('/') {
        return bad("it must be an absolute path, e.g. /volnux");
    }
    if base
        .split('/')
        .any(|s| s == "." || s == ".." || s.contains('%') || s.chars().any(char::is_control))
    {
        return bad("no '.' or '..' components, '%' or control characters");
    }
    let trimmed = base.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        String::new()
    } else {
        trimmed.to_string()
    })
}

/// The file name of a key: percent-encoded, a leading `.` too.
fn encode(name: &str) -> String {
    let enc = utf8_percent_encode(name, NAME).to_string();
    match enc.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => enc,
    }
}

fn decode(file: &str) -> String {
    percent_decode_str(file).decode_utf8_lossy().into_owned()
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl HdfsKeyValueStore {
    /// A store under `base` over connections made by `manager`.
    pub fn new(manager: ConnectorManager<HdfsConnector>, base: &str) -> Result<Self> {
        let base = check_base(base)?;
        let shown = format!("hdfs://{}{}", address(manager.config()), base);
        Ok(HdfsKeyValueStore {
            manager: Arc::new(manager),
            base,
            shown,
        })
    }

    /// Connects to `config`'s namenode in `mode` and checks it answers (so that an
    /// unreachable namenode is an error now, not at first use).
    pub async fn connect(
        config: ConnectorConfig,
        mode: ConnectionMode,
        pool: PoolSettings,
        base: &str,
    ) -> Result<Self> {
        let manager = ConnectorManagerFactory::create_manager::<HdfsConnector>(config, mode, pool)?;
        let store = HdfsKeyValueStore::new(manager, base)?;
        drop(store.lease().await?);
        Ok(store)
    }

    /// The connection manager.
    pub fn manager(&self) -> &ConnectorManager<HdfsConnector> {
        &self.manager
    }

    /// The base directory (absolute, no trailing `/`; empty for `/`).
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn lease(&self) -> Result<Lease<HdfsConnector>> {
        self.manager.get().await
    }

    /// A client, and the lease to report a broken connection on.
    async fn client(&self) -> Result<(Lease<HdfsConnector>, Client)> {
        let lease = self.lease().await?;
        let client = lease.client();
        Ok((lease, client))
    }

    /// The directory of `schema`; refuses names that look like paths.
    fn dir(&self, schema: &str) -> Result<String> {
        if schema.is_empty()
            || schema.starts_with('.')
            || schema.contains('/')
            || schema.contains('\\')
            || schema.contains('%')
            || schema.contains("..")
            || schema.chars().any(char::is_control)
        {
            return Err(Error::query(format!(
                "'{schema}' is not a schema name for {}: one path component, without '/', \
                 '\\', '%', '..', control characters or a leading '.'",
                self.shown
            ))
            .with_backend(KIND));
        }
        let enc = encode(schema);
        if enc.len() > MAX_COMPONENT {
            return Err(Error::query(format!(
                "the schema name '{schema}' is too long for HDFS ({} bytes encoded, at most \
                 {MAX_COMPONENT})",
                enc.len()
            ))
            .with_backend(KIND));
        }
        Ok(format!("{}/{enc}", self.base))
    }

    /// The file of `key` in `dir`.
    fn file(&self, dir: &str, key: &str) -> Result<String> {
        let enc = encode(key);
        if key.is_empty() || enc.len() > MAX_COMPONENT {
            return Err(Error::query(format!(
                "the key '{key}' cannot name a file in {dir}: keys are 1 to {MAX_COMPONENT} \
                 bytes once percent-encoded (this one: {})",
                enc.len()
            ))
            .with_backend(KIND));
        }
        Ok(format!("{dir}/{enc}"))
    }

    fn url(&self, path: &str) -> String {
        format!("hdfs://{}{path}", address(self.manager.config()))
    }

    fn err(&self, path: &str, doing: &str, e: &HdfsError) -> Error {
        hdfs_error(&self.url(path), doing, e)
    }
}

/// Record reads and writes in flight at once in this process, over every store. Each opens a
/// datanode connection: a burst of more connections than the datanode's accept queue holds
/// (`ipc.server.listen.queue.size`, 256 by default) overflows it, and with SYN cookies the
/// kernel may then drop a new connection's first segments. hdfs-native sends a request's
/// version, op and body as separate segments, so the datanode read a torn header ("Version
/// Mismatch") and closed the connection ("Datanode connection closed while waiting for ack"):
/// eight `insert_many` calls of 128 writes each failed that way.
static TRANSFERS: Semaphore = Semaphore::const_new(WRITERS);

/// The most transfers seen in flight at once in this process (for tests).
static PEAK_TRANSFERS: AtomicUsize = AtomicUsize::new(0);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The most record reads and writes this process had in flight at once over every HDFS
/// store; never more than [`WRITERS`].
pub fn peak_transfers() -> usize {
    PEAK_TRANSFERS.load(Ordering::Relaxed)
}

/// One transfer's place among [`TRANSFERS`], given back when dropped.
struct Transfer(#[allow(dead_code)] Option<SemaphorePermit<'static>>);

impl Drop for Transfer {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn transfer() -> Transfer {
    // The semaphore is never closed: acquire cannot fail.
    let permit = TRANSFERS.acquire().await.ok();
    let now = IN_FLIGHT.fetch_add(1, Ordering::Relaxed) + 1;
    PEAK_TRANSFERS.fetch_max(now, Ordering::Relaxed);
    Transfer(permit)
}

/// Reads a whole file; None when there is none.
async fn read_file(c: &Client, path: &str) -> std::result::Result<Option<Bytes>, HdfsError> {
    let _transfer = transfer().await;
    match c.read(path).await {
        Ok(mut r) => {
            let len = r.file_length();
            r.read(len).await.map(Some)
        }
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The block size of a record file no larger than it: 1 MiB, the namenode's default
/// minimum (`dfs.namenode.fs-limits.min-block-size`).
pub const RECORD_BLOCK: u64 = 1 << 20;

/// How a record file is created. While a block is being written the namenode counts a whole
/// block of the datanode's space as taken, and the datanode reserves it too: with the default
/// 128 MiB blocks, 128 small records in flight claim 16 GiB, and a datanode with less space
/// free is refused ("could only be written to 0 of the 1 minReplication nodes"). A record
/// that fits in 1 MiB is written with 1 MiB blocks; a larger one with the server's default.
fn record_file_options(len: usize) -> WriteOptions {
    let options = WriteOptions::default().create_parent(true);
    if len as u64 <= RECORD_BLOCK {
        options.block_size(RECORD_BLOCK)
    } else {
        options
    }
}

/// The namenode refused the block size (its minimum was raised above [`RECORD_BLOCK`]).
fn is_block_size_refusal(e: &HdfsError) -> bool {
    e.to_string().contains("min-block-size")
}

/// Writes `value` to a new hidden file in `dir` and returns its path.
async fn write_temp(
    c: &Client,
    dir: &str,
    value: &Bytes,
) -> std::result::Result<String, HdfsError> {
    let _transfer = transfer().await;
    let tmp = format!("{dir}/.tmp.{}", uuid::Uuid::new_v4().simple());
    let mut w = match c.create(&tmp, record_file_options(value.len())).await {
        // A namenode whose minimum block size is above ours: its default, then.
        Err(e) if is_block_size_refusal(&e) => {
            c.create(&tmp, WriteOptions::default().create_parent(true))
                .await?
        }
        w => w?,
    };
    let written = async {
        w.write(value.clone()).await?;
        w.close().await
    }
    .await;
    if let Err(e) = written {
        let _ = c.delete(&tmp, false).await;
        return Err(e);
    }
    Ok(tmp)
}

/// Writes `value` as `path` (complete or not at all): false when `overwrite` is off and
/// `path` exists.
async fn write_file(
    c: &Client,
    dir: &str,
    path: &str,
    value: &Bytes,
    overwrite: bool,
) -> std::result::Result<bool, HdfsError> {
    let tmp = write_temp(c, dir, value).await?;
    match c.rename(&tmp, path, overwrite).await {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = c.delete(&tmp, false).await;
            match e {
                HdfsError::AlreadyExists(_) if !overwrite => Ok(false),
                e => Err(e),
            }
        }
    }
}

/// (value, file) pairs, owned (the futures of a batch must not borrow their arguments).
fn owned(
    entries: &[(String, Bytes)],
    files: &[String],
) -> impl Iterator<Item = (Bytes, String)> + use<> {
    entries
        .iter()
        .map(|(_, v)| v.clone())
        .zip(files.to_vec())
        .collect::<Vec<_>>()
        .into_iter()
}

/// A held lock on one key (its lock file); released by [`unlock`].
struct KeyLock(String);

async fn lock(store: &HdfsKeyValueStore, c: &Client, dir: &str, file: &str) -> Result<KeyLock> {
    let name = file_name(file);
    let path = format!("{dir}/.lock.{name}");
    let deadline = Instant::now() + LOCK_WAIT;
    let mut pause = Duration::from_millis(2);
    loop {
        match c
            .create(&path, WriteOptions::default().create_parent(true))
            .await
        {
            Ok(mut w) => {
                w.close()
                    .await
                    .map_err(|e| store.err(&path, "taking the lock", &e))?;
                return Ok(KeyLock(path));
            }
            Err(HdfsError::AlreadyExists(_)) => {
                if is_stale(c, &path).await && remove_stale(c, dir, name, &path).await {
                    continue;
                }
                if Instant::now() >= deadline {
                    return Err(Error::new(
                        ErrorKind::Query,
                        format!(
                            "the record {} is locked by another writer (lock file {}) for \
                             longer than {LOCK_WAIT:?}; try again, or delete the lock file if \
                             no writer is running (it is removed by itself after {STALE_LOCK:?})",
                            store.url(file),
                            store.url(&path)
                        ),
                    )
                    .with_backend(KIND));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(store.err(&path, "taking the lock", &e)),
        }
    }
}

/// Is `path` a lock file older than [`STALE_LOCK`]?
async fn is_stale(c: &Client, path: &str) -> bool {
    c.get_file_info(path).await.is_ok_and(|st| {
        now_millis().saturating_sub(st.modification_time)
            > u64::try_from(STALE_LOCK.as_millis()).unwrap_or(u64::MAX)
    })
}

/// Removes the stale lock `path` of the record file `name` in `dir`; true when it is gone.
/// One writer at a time does it, holding `.unlock.<name>` (created without overwrite), and
/// checks again that the lock is stale before deleting it: writers that all saw the stale
/// lock must not delete, one after the other, the fresh lock one of them took in its place.
/// (A guard left by a writer that died while removing is stale itself, and removed.)
async fn remove_stale(c: &Client, dir: &str, name: &str, path: &str) -> bool {
    let guard = format!("{dir}/.unlock.{name}");
    match c
        .create(&guard, WriteOptions::default().create_parent(false))
        .await
    {
        Ok(mut w) => {
            let mut removed = false;
            if w.close().await.is_ok() && is_stale(c, path).await {
                tracing::warn!("hdfs: removing the stale lock {path}");
                removed = c.delete(path, false).await.is_ok();
            }
            if let Err(e) = c.delete(&guard, false).await {
                tracing::warn!("hdfs: cannot remove {guard}: {e}");
            }
            removed
        }
        Err(HdfsError::AlreadyExists(_)) => {
            if is_stale(c, &guard).await {
                tracing::warn!("hdfs: removing the stale guard {guard}");
                let _ = c.delete(&guard, false).await;
            }
            false
        }
        Err(_) => false,
    }
}

async fn unlock(c: &Client, l: KeyLock) {
    if let Err(e) = c.delete(&l.0, false).await {
        tracing::warn!("hdfs: cannot remove the lock {}: {e}", l.0);
    }
}

/// Runs `f` holding the lock on `file`.
async fn locked<T, F, Fut>(
    store: &HdfsKeyValueStore,
    c: &Client,
    dir: &str,
    file: &str,
    f: F,
) -> Result<T>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let l = lock(store, c, dir, file).await?;
    let out = f().await;
    unlock(c, l).await;
    out
}

/// Does `dir` hold a record file (stopping at the first)?
async fn holds_records(c: &Client, dir: &str) -> std::result::Result<bool, HdfsError> {
    let files = c.list_status_iter(dir, false);
    while let Some(st) = files.next().await {
        match st {
            Ok(st) if !st.isdir && !file_name(&st.path).starts_with('.') => return Ok(true),
            Ok(_) => {}
            Err(e) if is_missing(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

impl HdfsKeyValueStore {
    /// Reports a broken connection to the manager and turns the error into ours.
    fn failed(
        &self,
        lease: &mut Lease<HdfsConnector>,
        path: &str,
        doing: &str,
        e: &HdfsError,
    ) -> Error {
        if broke_connection(e) {
            lease.mark_broken();
        }
        self.err(path, doing, e)
    }

    /// Files of `dir` that are records (not hidden), as (key, path); none when `dir` is
    /// missing.
    async fn list(&self, c: &Client, dir: &str) -> Result<Vec<(String, String)>> {
        let listed = match c.list_status(dir, false).await {
            Ok(l) => l,
            Err(e) if is_missing(&e) => return Ok(vec![]),
            Err(e) => return Err(self.err(dir, "listing", &e)),
        };
        Ok(listed
            .into_iter()
            .filter(|s| !s.isdir)
            .filter_map(|s| {
                let name = file_name(&s.path);
                (!name.starts_with('.')).then(|| (decode(name), format!("{dir}/{name}")))
            })
            .collect())
    }
}

#[async_trait]
impl KeyValueStore for HdfsKeyValueStore {
    fn kind(&self) -> &str {
        KIND
    }

    fn location(&self) -> String {
        self.shown.clone()
    }

    async fn schemas(&self) -> Result<Vec<String>> {
        let (mut lease, c) = self.client().await?;
        let base = if self.base.is_empty() {
            "/"
        } else {
            &self.base
        };
        let listed = match c.list_status(base, false).await {
            Ok(l) => l,
            Err(e) if is_missing(&e) => return Ok(vec![]),
            Err(e) => return Err(self.failed(&mut lease, base, "listing", &e)),
        };
        let dirs: Vec<String> = listed
            .into_iter()
            .filter(|s| s.isdir)
            .map(|s| file_name(&s.path).to_string())
            .filter(|n| !n.starts_with('.'))
            .collect();
        // A directory is a schema while it holds a record: not once its last record is
        // deleted, nor when a writer's lock file made it for a record it did not find.
        let base = self.base.clone();
        let held: Vec<bool> = futures::stream::iter(dirs.clone().into_iter().map(move |n| {
            let (c, path) = (c.clone(), format!("{base}/{n}"));
            async move { holds_records(&c, &path).await.map_err(|e| (path, e)) }
        }))
        .buffered(WORKERS)
        .try_collect()
        .await
        .map_err(|(path, e)| self.failed(&mut lease, &path, "listing", &e))?;
        let mut names: Vec<String> = dirs
            .iter()
            .zip(held)
            .filter(|(_, held)| *held)
            .map(|(n, _)| decode(n))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn exists(&self, schema: &str, key: &str) -> Result<bool> {
        let file = self.file(&self.dir(schema)?, key)?;
        let (mut lease, c) = self.client().await?;
        match c.get_file_info(&file).await {
            Ok(st) => Ok(!st.isdir),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(self.failed(&mut lease, &file, "looking up", &e)),
        }
    }

    async fn count(&self, schema: &str) -> Result<u64> {
        let dir = self.dir(schema)?;
        let (_lease, c) = self.client().await?;
        Ok(self.list(&c, &dir).await?.len() as u64)
    }

    async fn get_many(&self, schema: &str, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let dir = self.dir(schema)?;
        let files = keys
            .iter()
            .map(|k| self.file(&dir, k))
            .collect::<Result<Vec<_>>>()?;
        let (mut lease, c) = self.client().await?;
        let got = futures::stream::iter(files.into_iter().map(|f| {
            let c = c.clone();
            async move { read_file(&c, &f).await.map_err(|e| (f, e)) }
        }))
        .buffered(WORKERS)
        .try_collect::<Vec<_>>()
        .await;
        got.map_err(|(f, e)| self.failed(&mut lease, &f, "reading", &e))
    }

    async fn insert_many(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<()> {
        let dir = self.dir(schema)?;
        let mut seen = BTreeSet::new();
        let mut files = Vec::with_capacity(entries.len());
        for (k, _) in entries {
            if !seen.insert(k.as_str()) {
                return Err(already_exists(KIND, schema, k));
            }
            files.push(self.file(&dir, k)?);
        }
        if entries.is_empty() {
            return Ok(());
        }
        let (mut lease, c) = self.client().await?;
        // Taken keys first, so that the common refusal writes nothing at all.
        let taken = futures::stream::iter(files.clone().into_iter().map(|f| {
            let c = c.clone();
            async move {
                match c.get_file_info(&f).await {
                    Ok(_) => Ok(true),
                    Err(e) if is_missing(&e) => Ok(false),
                    Err(e) => Err((f, e)),
                }
            }
        }))
        .buffered(WORKERS)
        .try_collect::<Vec<bool>>()
        .await
        .map_err(|(f, e)| self.failed(&mut lease, &f, "looking up", &e))?;
        if let Some(i) = taken.iter().position(|t| *t) {
            return Err(already_exists(KIND, schema, &entries[i].0));
        }
        let results: Vec<std::result::Result<bool, HdfsError>> =
            futures::stream::iter(owned(entries, &files).map(|(v, f)| {
                let (c, dir) = (c.clone(), dir.clone());
                async move { write_file(&c, &dir, &f, &v, false).await }
            }))
            .buffered(WRITERS)
            .collect()
            .await;
        if results.iter().all(|r| matches!(r, Ok(true))) {
            return Ok(());
        }
        // Undo what this call wrote (only while it is still this call's record).
        let written: Vec<(String, Bytes)> = entries
            .iter()
            .zip(&results)
            .filter(|(_, r)| matches!(r, Ok(true)))
            .map(|(e, _)| e.clone())
            .collect();
        let undone = self.delete_exact(schema, &written).await;
        let mut failure = None;
        for ((k, _), (r, f)) in entries.iter().zip(results.iter().zip(&files)) {
            match r {
                Ok(false) => {
                    failure = Some(already_exists(KIND, schema, k));
                    break;
                }
                Err(e) if failure.is_none() => {
                    failure = Some(self.failed(&mut lease, f, "writing", e))
                }
                _ => {}
            }
        }
        let failure =
            failure.unwrap_or_else(|| Error::internal("an insert failed without a cause"));
        match undone {
            Ok(_) => Err(failure),
            Err(u) => Err(Error::new(
                failure.kind(),
                format!(
                    "{}; undoing the records this insert had written failed too ({}): some may \
                     remain",
                    failure.message(),
                    u.message()
                ),
            )
            .with_backend(KIND)),
        }
    }

    async fn put_new(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<Vec<bool>> {
        let dir = self.dir(schema)?;
        let files = entries
            .iter()
            .map(|(k, _)| self.file(&dir, k))
            .collect::<Result<Vec<_>>>()?;
        let (mut lease, c) = self.client().await?;
        futures::stream::iter(owned(entries, &files).map(|(v, f)| {
            let (c, dir) = (c.clone(), dir.clone());
            async move {
                write_file(&c, &dir, &f, &v, false)
                    .await
                    .map_err(|e| (f, e))
            }
        }))
        .buffered(WRITERS)
        .try_collect()
        .await
        .map_err(|(f, e)| self.failed(&mut lease, &f, "writing", &e))
    }

    async fn put_many(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<()> {
        let dir = self.dir(schema)?;
        let files = entries
            .iter()
            .map(|(k, _)| self.file(&dir, k))
            .collect::<Result<Vec<_>>>()?;
        let (_lease, c) = self.client().await?;
        futures::stream::iter(owned(entries, &files).map(|(v, f)| {
            let (c, dir) = (c.clone(), dir.clone());
            async move {
                // The slow part (writing a block) happens before the lock is taken.
                let tmp = write_temp(&c, &dir, &v)
                    .await
                    .map_err(|e| self.err(&dir, "writing a temporary file in", &e))?;
                let placed = locked(self, &c, &dir, &f, || async {
                    c.rename(&tmp, &f, true)
                        .await
                        .map_err(|e| self.err(&f, "renaming a temporary file to", &e))
                })
                .await;
                if placed.is_err() {
                    let _ = c.delete(&tmp, false).await;
                }
                placed.map(|()| true)
            }
        }))
        .buffered(WRITERS)
        .try_collect::<Vec<bool>>()
        .await?;
        Ok(())
    }

    async fn replace(
        &self,
        schema: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: Bytes,
    ) -> Result<bool> {
        let dir = self.dir(schema)?;
        let file = self.file(&dir, key)?;
        let (_lease, c) = self.client().await?;
        // The new record is complete in a temporary file before the lock is taken, so the
        // lock is held for a read and a rename only.
        let tmp = write_temp(&c, &dir, &value)
            .await
            .map_err(|e| self.err(&dir, "writing a temporary file in", &e))?;
        let placed = locked(self, &c, &dir, &file, || async {
            let current = read_file(&c, &file)
                .await
                .map_err(|e| self.err(&file, "reading", &e))?;
            match (current, expected) {
                (None, _) => Ok(false),
                (Some(cur), Some(exp)) if cur.as_ref() != exp => Ok(false),
                _ => c
                    .rename(&tmp, &file, true)
                    .await
                    .map(|()| true)
                    .map_err(|e| self.err(&file, "renaming a temporary file to", &e)),
            }
        })
        .await;
        if !matches!(placed, Ok(true)) {
            let _ = c.delete(&tmp, false).await;
        }
        placed
    }

    async fn move_many(
        &self,
        schema: &str,
        moves: &[(String, Bytes, String, Bytes)],
    ) -> Result<Option<MoveConflict>> {
        let dir = self.dir(schema)?;
        let mut keys = BTreeSet::new();
        for (old, _, new, _) in moves {
            keys.insert(old.clone());
            keys.insert(new.clone());
        }
        // Key → file, in key order (the order locks are taken in).
        let files: std::collections::BTreeMap<String, String> = keys
            .iter()
            .map(|k| Ok((k.clone(), self.file(&dir, k)?)))
            .collect::<Result<_>>()?;
        let path = |k: &str| files.get(k).cloned().unwrap_or_default();
        let (_lease, c) = self.client().await?;
        // Every key involved is locked, in one order (no two movers wait on each other).
        let mut locks = Vec::with_capacity(files.len());
        for f in files.values() {
            match lock(self, &c, &dir, f).await {
                Ok(l) => locks.push(l),
                Err(e) => {
                    for l in locks {
                        unlock(&c, l).await;
                    }
                    return Err(e);
                }
            }
        }
        let out = async {
            let olds: BTreeSet<&str> = moves.iter().map(|m| m.0.as_str()).collect();
            for (old, expected, _, _) in moves {
                let f = path(old);
                let cur = read_file(&c, &f)
                    .await
                    .map_err(|e| self.err(&f, "reading", &e))?;
                if cur.as_deref() != Some(expected.as_ref()) {
                    return Ok(Some(MoveConflict::Changed(old.clone())));
                }
            }
            for (_, _, new, _) in moves {
                if olds.contains(new.as_str()) {
                    continue;
                }
                let f = path(new);
                match c.get_file_info(&f).await {
                    Ok(_) => return Ok(Some(MoveConflict::Taken(new.clone()))),
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(self.err(&f, "looking up", &e)),
                }
            }
            // The new records complete in temporary files first; then the old ones go and
            // the new ones take their names.
            let mut temps = Vec::with_capacity(moves.len());
            for (_, _, _, value) in moves {
                match write_temp(&c, &dir, value).await {
                    Ok(t) => temps.push(t),
                    Err(e) => {
                        for t in &temps {
                            let _ = c.delete(t, false).await;
                        }
                        return Err(self.err(&dir, "writing a temporary file in", &e));
                    }
                }
            }
            let mut deleted = Vec::new();
            let mut placed = Vec::new();
            let mut failure = None;
            for (old, _, _, _) in moves {
                let f = path(old);
                match c.delete(&f, false).await {
                    Ok(_) => deleted.push(old),
                    Err(e) => {
                        failure = Some(self.err(&f, "deleting", &e));
                        break;
                    }
                }
            }
            if failure.is_none() {
                for ((_, _, new, _), t) in moves.iter().zip(&temps) {
                    let f = path(new);
                    match c.rename(t, &f, false).await {
                        Ok(()) => placed.push(f),
                        Err(e) => {
                            failure = Some(self.err(&f, "renaming a temporary file to", &e));
                            break;
                        }
                    }
                }
            }
            let Some(failure) = failure else {
                return Ok(None);
            };
            // Put back what was there before.
            let mut lost = Vec::new();
            for f in &placed {
                if c.delete(f, false).await.is_err() {
                    lost.push(f.clone());
                }
            }
            for t in &temps {
                let _ = c.delete(t, false).await;
            }
            for old in deleted {
                let (_, expected, _, _) = moves
                    .iter()
                    .find(|m| &m.0 == old)
                    .cloned()
                    .unwrap_or_default();
                let f = path(old);
                if !matches!(write_file(&c, &dir, &f, &expected, false).await, Ok(true)) {
                    lost.push(f);
                }
            }
            if lost.is_empty() {
                Err(Error::new(
                    failure.kind(),
                    format!("{}; nothing was changed", failure.message()),
                )
                .with_backend(KIND))
            } else {
                Err(Error::new(
                    failure.kind(),
                    format!(
                        "{}; restoring the records failed for {}",
                        failure.message(),
                        lost.iter()
                            .map(|f| self.url(f))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .with_backend(KIND))
            }
        }
        .await;
        for l in locks {
            unlock(&c, l).await;
        }
        out
    }

    async fn delete_many(&self, schema: &str, keys: &[String]) -> Result<Vec<bool>> {
        let dir = self.dir(schema)?;
        let files = keys
            .iter()
            .map(|k| self.file(&dir, k))
            .collect::<Result<Vec<_>>>()?;
        let (_lease, c) = self.client().await?;
        // A key given twice is deleted once: the second finds nothing.
        let mut out = Vec::with_capacity(files.len());
        let mut done = BTreeSet::new();
        let unique: Vec<String> = files
            .iter()
            .filter(|f| done.insert(f.as_str()))
            .cloned()
            .collect();
        let deleted: Vec<bool> = futures::stream::iter(unique.clone().into_iter().map(|f| {
            let (c, dir) = (c.clone(), dir.clone());
            async move {
                locked(self, &c, &dir, &f, || async {
                    match c.delete(&f, false).await {
                        Ok(d) => Ok(d),
                        Err(e) if is_missing(&e) => Ok(false),
                        Err(e) => Err(self.err(&f, "deleting", &e)),
                    }
                })
                .await
            }
        }))
        .buffered(WORKERS)
        .try_collect()
        .await?;
        let mut first = std::collections::HashMap::new();
        for (f, d) in unique.iter().zip(deleted) {
            first.insert(f.as_str(), d);
        }
        for f in &files {
            out.push(first.remove(f.as_str()).unwrap_or(false));
        }
        Ok(out)
    }

    async fn delete_exact(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<u64> {
        let dir = self.dir(schema)?;
        let files = entries
            .iter()
            .map(|(k, _)| self.file(&dir, k))
            .collect::<Result<Vec<_>>>()?;
        let (_lease, c) = self.client().await?;
        let removed: Vec<bool> = futures::stream::iter(owned(entries, &files).map(|(v, f)| {
            let (c, dir) = (c.clone(), dir.clone());
            async move {
                locked(self, &c, &dir, &f, || async {
                    let cur = read_file(&c, &f)
                        .await
                        .map_err(|e| self.err(&f, "reading", &e))?;
                    if cur.as_ref() != Some(&v) {
                        return Ok(false);
                    }
                    c.delete(&f, false)
                        .await
                        .map_err(|e| self.err(&f, "deleting", &e))
                })
                .await
            }
        }))
        .buffered(WORKERS)
        .try_collect()
        .await?;
        Ok(removed.into_iter().filter(|r| *r).count() as u64)
    }

    async fn drop_schema(&self, schema: &str) -> Result<u64> {
        let dir = self.dir(schema)?;
        let (mut lease, c) = self.client().await?;
        let n = self.list(&c, &dir).await?.len() as u64;
        match c.delete(&dir, true).await {
            Ok(_) => Ok(n),
            Err(e) if is_missing(&e) => Ok(0),
            Err(e) => Err(self.failed(&mut lease, &dir, "deleting", &e)),
        }
    }

    async fn scan(
        &self,
        schema: &str,
        batch: usize,
    ) -> Result<BoxStream<'static, Result<Vec<(String, Bytes)>>>> {
        let dir = self.dir(schema)?;
        let (_lease, c) = self.client().await?;
        let files = self.list(&c, &dir).await?;
        let batch = batch.clamp(1, SCAN_BATCH.max(batch));
        let shown = self.url("");
        let stream = futures::stream::iter(files)
            .map(move |(key, path)| {
                let c = c.clone();
                let shown = shown.clone();
                async move {
                    match read_file(&c, &path).await {
                        Ok(v) => Ok(v.map(|v| (key, v))),
                        Err(e) => Err(hdfs_error(
                            &format!("{}{path}", shown.trim_end_matches('/')),
                            "reading",
                            &e,
                        )),
                    }
                }
            })
            .buffered(WORKERS)
            // A record deleted since the listing is not there any more.
            .try_filter_map(|r| async move { Ok(r) })
            .try_chunks(batch)
            .map_err(|e| e.1);
        Ok(stream.boxed())
    }

    fn describe_scan(&self, schema: &str, batch: usize) -> String {
        let dir = self.dir(schema).unwrap_or_default();
        format!(
            "hdfs LISTSTATUS {} then one getBlockLocations + datanode read per record file \
             ({WORKERS} in flight), batches of {batch}",
            self.url(&dir)
        )
    }

    fn describe_get(&self, schema: &str, keys: &[String]) -> String {
        let dir = self.dir(schema).unwrap_or_default();
        format!(
            "hdfs direct reads of {} record file(s) in {} ({WORKERS} in flight), no listing",
            keys.len(),
            self.url(&dir)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_component_and_round_trip() {
        for k in [
            "a",
            "../escape",
            "a/b/../c",
            "%2e%2e",
            "/etc/passwd",
            ".",
            "..",
            ".x",
            "it's",
            "tab\tnl\n",
            "\u{4e2d}",
        ] {
            let e = encode(k);
            assert!(!e.contains('/'), "{k:?} -> {e}");
            assert!(!e.starts_with('.'), "{k:?} -> {e}");
            assert_ne!(e, "..");
            assert_eq!(decode(&e), k);
        }
        assert_eq!(encode("abc-_.9"), "abc-_.9");
        assert_eq!(encode("_dataknobs:tables"), "_dataknobs%3Atables");
    }

    #[test]
    fn base_paths_are_checked() {
        assert_eq!(check_base("/volnux/").unwrap(), "/volnux");
        assert_eq!(check_base("/").unwrap(), "");
        for bad in ["volnux", "/a/../b", "/a/./b", "/a%2e%2e", ""] {
            assert!(check_base(bad).is_err(), "{bad}");
        }
    }
}
