//! S3 record objects (the seed's S3Database): a collection is a sub-prefix holding one JSON
//! object per record, `prefix/<collection>/<id>.json`, beside the sidecar that declares its
//! columns and key. Record metadata rides along as object tags. Everything goes through
//! aws-sdk-s3 (its credential chain: the URL's keys, the environment, profiles, SSO,
//! `credential_process`, instance roles).
//!
//! Batches run in parallel, at most `max_workers` requests at a time. The list of ids is
//! cached per collection for `list_cache` and dropped by every write made here. A scan lists
//! the ids and streams the objects in, decoding them into Arrow batches of [`SCAN_BATCH`]
//! rows and evaluating the query's filters with DataFusion's kernels as each batch fills:
//! nothing waits for the whole collection.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use secrecy::{ExposeSecret, SecretString};

use super::{BACKEND, Bucket};
use crate::database::{Capabilities, Database, FilterSupport, Partition};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{FilterExpr, Query};
use crate::record::{
    Record, Value, array_to_values, batch_to_records, column_list, records_to_batch,
};
use crate::store::records as shared;

/// Rows decoded per batch of a scan.
const SCAN_BATCH: usize = 1024;

/// The fewest objects worth a scan partition of their own.
const PARTITION_OBJECTS: usize = 256;

/// Is a count of `query` the listing's length (no filter, offset or limit)?
fn counts_listing(query: Option<&Query>) -> bool {
    query.is_none_or(|q| q.filters.is_empty() && q.offset.is_none() && q.limit.is_none())
}

/// One partition of a scan over record objects, as plain data (serde): the bucket, the keys
/// of the objects it reads and the query pushed to it. It holds no credentials: whoever runs
/// it (another process, later) reaches the bucket through an attachment of its own.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordScanPart {
    pub bucket: String,
    pub keys: Vec<String>,
    pub query: Query,
    /// GETs in flight: the attachment's `max_workers` shared by the scan's partitions.
    pub workers: usize,
}

/// How the record-object client is made (from the attach URL).
pub(super) struct ClientSettings {
    pub(super) region: String,
    pub(super) endpoint: Option<String>,
    pub(super) path_style: bool,
    pub(super) keys: Option<(String, SecretString)>,
    pub(super) retries: u32,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) max_workers: usize,
    pub(super) list_cache: Duration,
}

impl ClientSettings {
    /// Settings for a bucket that never makes record-object requests (another object store).
    #[cfg(feature = "hdfs")]
    pub(super) fn unused() -> ClientSettings {
        ClientSettings {
            region: String::new(),
            endpoint: None,
            path_style: true,
            keys: None,
            retries: 0,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_workers: 64,
            list_cache: Duration::ZERO,
        }
    }
}

/// The client, made on first use (loading the AWS configuration is async).
pub(super) async fn client(b: &Bucket) -> Result<&Client> {
    b.aws
        .get_or_try_init(|| async {
            let s = &b.settings;
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https();
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(s.region.clone()))
                .http_client(http);
            if let Some((key, secret)) = &s.keys {
                loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                    key.clone(),
                    secret.expose_secret().to_string(),
                    None,
                    None,
                    "dataknobs-url",
                ));
            }
            let shared = loader.load().await;
            let mut conf = aws_sdk_s3::config::Builder::from(&shared)
                .force_path_style(s.path_style)
                // Only what S3-compatible servers (MinIO, Ceph, Garage) all take.
                .request_checksum_calculation(
                    aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                )
                .response_checksum_validation(
                    aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                )
                .retry_config(
                    aws_sdk_s3::config::retry::RetryConfig::standard()
                        .with_max_attempts(s.retries.saturating_add(1)),
                )
                .timeout_config(
                    aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                        .operation_attempt_timeout(s.timeout)
                        .connect_timeout(s.connect_timeout)
                        .build(),
                );
            if let Some(e) = &s.endpoint {
                conf = conf.endpoint_url(e.trim_end_matches('/'));
            }
            Ok::<Client, Error>(Client::from_conf(conf.build()))
        })
        .await
}

/// Key bytes written as they are; every other byte of an id is percent-encoded, so any id
/// is one key segment that cannot leave the collection's prefix (`../x` is `..%2Fx`).
const KEY_SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

/// The key segment of record `id` (without `.json`). A leading `.` is encoded too (no
/// hidden or `..` segments), and so is the reserved sidecar name.
pub(super) fn id_to_segment(collection: &str, id: &str) -> Result<String> {
    if id.is_empty() {
        return Err(Error::query(format!(
            "an empty record id is not usable in '{collection}'"
        ))
        .with_backend(BACKEND));
    }
    let mut seg = percent_encoding::utf8_percent_encode(id, KEY_SAFE).to_string();
    if seg.starts_with('.') {
        seg = format!("%2E{}", &seg[1..]);
    }
    if seg == super::dataset::SIDECAR.trim_end_matches(".json") {
        seg = format!("%5F{}", &seg[1..]);
    }
    // S3 keys are at most 1024 bytes; leave room for the prefix.
    if seg.len() > 900 {
        return Err(Error::query(format!(
            "record id '{}…' of '{collection}' is too long for an S3 key ({} bytes encoded, \
             at most 900)",
            id.chars().take(40).collect::<String>().escape_debug(),
            seg.len()
        ))
        .with_backend(BACKEND));
    }
    Ok(seg)
}

/// The record id of a key segment (None for a segment that is not valid encoded UTF-8).
fn segment_to_id(seg: &str) -> Option<String> {
    if seg.is_empty() || seg.starts_with('_') || seg.starts_with('.') {
        return None;
    }
    percent_encoding::percent_decode_str(seg)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// An SDK error as ours: what failed (the operation, the object) and the server's answer.
fn sdk_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    doing: &str,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Error {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let kind = match status {
        Some(404) => ErrorKind::NotFound,
        Some(412) | Some(409) => ErrorKind::AlreadyExists,
        Some(400) => ErrorKind::Query,
        _ => ErrorKind::Connection,
    };
    let detail = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => match &e {
            SdkError::DispatchFailure(d) => format!("cannot reach the server: {d:?}"),
            SdkError::TimeoutError(_) => "timed out (see the timeout option)".to_string(),
            other => format!("{other}"),
        },
    };
    let status = status.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
    Error::new(kind, format!("{doing}: {detail}{status}")).with_backend(BACKEND)
}

fn status_of<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// One record collection.
pub(super) struct S3Records {
    b: Arc<Bucket>,
    name: String,
    /// `prefix/<collection>/`.
    prefix: String,
    /// The columns, as the sidecar last said (grown by records with new fields).
    schema: parking_lot::RwLock<SchemaRef>,
    key: Option<String>,
}

impl std::fmt::Debug for S3Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Records")
            .field("at", &self.b.url_of(&self.prefix))
            .finish()
    }
}

/// A record ready to be written: its id, object body and tags.
struct Prepared {
    id: String,
    body: Bytes,
    tagging: Option<String>,
}

impl S3Records {
    pub(super) fn new(
        b: Arc<Bucket>,
        name: &str,
        prefix: String,
        schema: SchemaRef,
        key: Option<String>,
    ) -> S3Records {
        S3Records {
            b,
            name: name.to_string(),
            prefix,
            schema: parking_lot::RwLock::new(schema),
            key,
        }
    }

    fn columns(&self) -> SchemaRef {
        self.schema.read().clone()
    }

    /// Adds a column for every typed field of `records` the collection lacks, to the sidecar
    /// first (a conditional PUT over the version read, again if another writer got there
    /// first), then here. Untyped NULLs say nothing about a type and add nothing.
    async fn grow_for(&self, records: &[Record]) -> Result<()> {
        let schema = self.columns();
        let new_fields = shared::new_fields(&schema, records, &self.name)
            .map_err(|e| e.with_backend(BACKEND))?;
        if new_fields.is_empty() {
            return Ok(());
        }
        let client = client(&self.b).await?;
        let key = format!("{}{}", self.prefix, super::dataset::SIDECAR);
        for _ in 0..20 {
            let got = client
                .get_object()
                .bucket(&self.b.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("reading {}", self.b.url_of(&key)), e))?;
            let etag = got.e_tag().unwrap_or_default().to_string();
            let body = got.body.collect().await.map_err(|e| {
                Error::new(
                    ErrorKind::Connection,
                    format!("reading {}: {e}", self.b.url_of(&key)),
                )
                .with_backend(BACKEND)
            })?;
            let mut sidecar: super::dataset::Sidecar = serde_json::from_slice(&body.into_bytes())
                .map_err(|e| {
                Error::query(format!(
                    "{} is not a table description: {e}",
                    self.b.url_of(&key)
                ))
                .with_backend(BACKEND)
            })?;
            let current = sidecar.schema()?;
            let grown = shared::grown(&current, &new_fields);
            if grown.fields().len() == current.fields().len() {
                *self.schema.write() = grown;
                return Ok(());
            }
            sidecar.set_columns(&grown);
            let body = serde_json::to_vec_pretty(&sidecar)
                .map_err(|e| Error::internal(format!("encoding the table description: {e}")))?;
            match client
                .put_object()
                .bucket(&self.b.bucket)
                .key(&key)
                .content_type("application/json")
                .if_match(&etag)
                .body(ByteStream::from(body))
                .send()
                .await
            {
                Ok(_) => {
                    *self.schema.write() = grown;
                    return Ok(());
                }
                Err(e) if matches!(status_of(&e), Some(412) | Some(409)) => continue,
                Err(e) => {
                    return Err(sdk_error(&format!("writing {}", self.b.url_of(&key)), e));
                }
            }
        }
        Err(Error::new(
            ErrorKind::Connection,
            format!(
                "adding columns to '{}': {} kept changing under 20 attempts",
                self.name,
                self.b.url_of(&key)
            ),
        )
        .with_backend(BACKEND))
    }

    fn object_key(&self, id: &str) -> Result<String> {
        Ok(format!(
            "{}{}.json",
            self.prefix,
            id_to_segment(&self.name, id)?
        ))
    }

    /// The record id of `key` when it is a record of this collection (`prefix/<segment>.json`).
    fn id_of_key(&self, key: &str) -> Option<String> {
        key.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_suffix(".json"))
            .filter(|seg| !seg.contains('/'))
            .and_then(segment_to_id)
    }

    fn shown(&self, id: &str) -> String {
        match self.object_key(id) {
            Ok(k) => self.b.url_of(&k),
            Err(_) => format!("record '{}' of {}", id.escape_debug(), self.name),
        }
    }

    fn workers(&self) -> usize {
        self.b.settings.max_workers.max(1)
    }

    fn forget_ids(&self) {
        self.b.ids.lock().remove(&self.prefix);
    }

    /// The record ids, in key order (cached for `list_cache`).
    async fn ids(&self) -> Result<Arc<Vec<String>>> {
        let ttl = self.b.settings.list_cache;
        if let Some((at, ids)) = self.b.ids.lock().get(&self.prefix)
            && at.elapsed() < ttl
        {
            return Ok(ids.clone());
        }
        let client = client(&self.b).await?;
        let mut pages = client
            .list_objects_v2()
            .bucket(&self.b.bucket)
            .prefix(&self.prefix)
            .into_paginator()
            .send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| sdk_error(&format!("listing {}", self.b.url_of(&self.prefix)), e))?;
            for o in page.contents() {
                if let Some(id) = o.key().and_then(|k| self.id_of_key(k)) {
                    ids.push(id);
                }
            }
        }
        let ids = Arc::new(ids);
        if !ttl.is_zero() {
            self.b
                .ids
                .lock()
                .insert(self.prefix.clone(), (Instant::now(), ids.clone()));
        }
        Ok(ids)
    }

    /// The id of a record to write: `forced` (update), its own, its key field's, or new.
    fn id_of(&self, record: &mut Record, forced: Option<&str>) -> Result<String> {
        shared::record_id(record, self.key.as_deref(), forced, &self.name)
    }

    /// Checks and encodes records (all of them before anything is written).
    fn prepare(&self, records: Vec<Record>, forced: Option<&[String]>) -> Result<Vec<Prepared>> {
        let schema = self.columns();
        let mut ids = Vec::with_capacity(records.len());
        let mut tags = Vec::with_capacity(records.len());
        let mut rows = Vec::with_capacity(records.len());
        for (i, mut r) in records.into_iter().enumerate() {
            shared::fit_columns(
                &schema,
                &mut r,
                &self.name,
                " and S3 record collections keep the columns they were created with",
            )
            .map_err(|e| e.with_backend(BACKEND))?;
            let id = self.id_of(&mut r, forced.and_then(|f| f.get(i)).map(String::as_str))?;
            id_to_segment(&self.name, &id)?;
            tags.push(tagging(&self.name, &r.metadata)?);
            ids.push(id);
            rows.push(r);
        }
        let batch =
            records_to_batch(&rows, &schema).map_err(|e| e.with_backend(BACKEND.to_string()))?;
        let bodies = crate::record::json_objects(&batch)?;
        Ok(ids
            .into_iter()
            .zip(bodies)
            .zip(tags)
            .map(|((id, body), tagging)| Prepared { id, body, tagging })
            .collect())
    }

    /// PUTs one record; with `only_new`, fails with AlreadyExists if the id is taken; with
    /// `only_if`, only over that version (ETag) of the object.
    async fn put(&self, p: &Prepared, only_new: bool, only_if: Option<&str>) -> Result<()> {
        let client = client(&self.b).await?;
        let key = self.object_key(&p.id)?;
        let mut req = client
            .put_object()
            .bucket(&self.b.bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(p.body.clone()));
        if let Some(t) = &p.tagging {
            req = req.tagging(t);
        }
        if only_new {
            req = req.if_none_match("*");
        }
        if let Some(etag) = only_if {
            req = req.if_match(etag);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if only_new && matches!(status_of(&e), Some(412) | Some(409)) => {
                Err(Error::already_exists(format!(
                    "a record with id '{}' exists in '{}'",
                    p.id, self.name
                ))
                .with_backend(BACKEND))
            }
            Err(e) => Err(sdk_error(&format!("writing {}", self.shown(&p.id)), e)),
        }
    }

    /// The ETag of record `id`'s object, or None when there is none.
    async fn head(&self, id: &str) -> Result<Option<String>> {
        let client = client(&self.b).await?;
        let key = self.object_key(id)?;
        match client
            .head_object()
            .bucket(&self.b.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(h) => Ok(Some(h.e_tag().unwrap_or_default().to_string())),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(sdk_error(&format!("reading {}", self.shown(id)), e)),
        }
    }

    /// The object body and ETag of record `id`, and its tags when it has any.
    async fn get(&self, id: &str, with_tags: bool) -> Result<Option<Fetched>> {
        let client = client(&self.b).await?;
        let key = self.object_key(id)?;
        let got = match client
            .get_object()
            .bucket(&self.b.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(got) => got,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(sdk_error(&format!("reading {}", self.shown(id)), e)),
        };
        let etag = got.e_tag().map(str::to_string);
        let tag_count = got.tag_count().unwrap_or(0);
        let body = got.body.collect().await.map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                format!("reading {}: {e}", self.shown(id)),
            )
            .with_backend(BACKEND)
        })?;
        let mut metadata = BTreeMap::new();
        if with_tags && tag_count > 0 {
            let tags = client
                .get_object_tagging()
                .bucket(&self.b.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("reading the tags of {}", self.shown(id)), e))?;
            for t in tags.tag_set() {
                metadata.insert(t.key().to_string(), tag_value(t.value()));
            }
        }
        Ok(Some(Fetched {
            body: body.into_bytes(),
            etag,
            metadata,
        }))
    }

    /// Decodes objects' bodies into one batch of the collection's columns (naming the object
    /// that does not fit).
    fn decode(&self, ids: &[String], bodies: &[Bytes]) -> Result<RecordBatch> {
        let schema = self.columns();
        match crate::record::decode_json_objects(&schema, bodies) {
            Ok(b) => Ok(b),
            Err(e) => {
                for (id, body) in ids.iter().zip(bodies) {
                    if let Err(one) =
                        crate::record::decode_json_objects(&schema, std::slice::from_ref(body))
                    {
                        return Err(Error::query(format!(
                            "{} is not a record of '{}' ({}): {}",
                            self.shown(id),
                            self.name,
                            column_list(&schema),
                            one.message()
                        ))
                        .with_backend(BACKEND));
                    }
                }
                Err(e.with_backend(BACKEND.to_string()))
            }
        }
    }

    fn to_record(&self, id: &str, fetched: Fetched) -> Result<Record> {
        let batch = self.decode(&[id.to_string()], std::slice::from_ref(&fetched.body))?;
        let mut records = batch_to_records(&batch, None)?;
        let mut r = records.pop().ok_or_else(|| {
            Error::query(format!("{} holds no record", self.shown(id))).with_backend(BACKEND)
        })?;
        r.set_id(id);
        r.metadata = fetched.metadata;
        Ok(r)
    }

    /// Deletes objects; true for each that existed (an id given twice: true once).
    async fn delete_many(&self, ids: &[String]) -> Result<Vec<bool>> {
        let client = client(&self.b).await?;
        let mut seen = HashSet::new();
        let firsts: Vec<bool> = ids.iter().map(|id| seen.insert(id.as_str())).collect();
        let out: Result<Vec<bool>> = futures::stream::iter(ids.iter().cloned().zip(firsts).map(
            |(id, first)| async move {
                if !first || self.head(&id).await?.is_none() {
                    return Ok(false);
                }
                let key = self.object_key(&id)?;
                client
                    .delete_object()
                    .bucket(&self.b.bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| sdk_error(&format!("deleting {}", self.shown(&id)), e))?;
                Ok::<bool, Error>(true)
            },
        ))
        .buffered(self.workers())
        .try_collect()
        .await;
        self.forget_ids();
        out
    }

    /// Writes new records in parallel; on failure, removes the ones this call wrote.
    async fn create_all(&self, prepared: Vec<Prepared>, undo_on_error: bool) -> Result<()> {
        let mut seen = HashSet::new();
        for p in &prepared {
            if !seen.insert(p.id.as_str()) {
                let text = if undo_on_error {
                    format!(
                        "INSERT into {} failed; nothing was inserted: a row with id '{}' exists \
                         already (twice in this statement)",
                        self.name, p.id
                    )
                } else {
                    format!(
                        "the id '{}' appears twice in one batch for '{}'",
                        p.id, self.name
                    )
                };
                return Err(Error::already_exists(text).with_backend(BACKEND));
            }
        }
        let ids: Vec<String> = prepared.iter().map(|p| p.id.clone()).collect();
        let results: Vec<Result<()>> = futures::stream::iter(
            prepared
                .into_iter()
                .map(|p| async move { self.put(&p, true, None).await }),
        )
        .buffered(self.workers())
        .collect()
        .await;
        self.forget_ids();
        let first_error = results.iter().position(|r| r.is_err());
        let Some(at) = first_error else {
            return Ok(());
        };
        if undo_on_error {
            let written: Vec<String> = ids
                .into_iter()
                .zip(&results)
                .filter(|(_, r)| r.is_ok())
                .map(|(id, _)| id)
                .collect();
            if let Err(e) = self.delete_many(&written).await {
                tracing::warn!("removing the records of a failed write: {e}");
            }
        }
        let err = results.into_iter().nth(at).unwrap_or(Ok(()));
        err.map_err(|e| {
            if undo_on_error && e.kind() == ErrorKind::AlreadyExists {
                let id = ids_at(&e);
                Error::already_exists(format!(
                    "INSERT into {} failed; nothing was inserted: a row with id '{id}' exists \
                     already",
                    self.name
                ))
                .with_backend(BACKEND)
            } else {
                e.with_backend(BACKEND.to_string())
            }
        })
    }
}

/// The id in an "a record with id '…' exists" message.
fn ids_at(e: &Error) -> String {
    e.message()
        .split("id '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_default()
        .to_string()
}

struct Fetched {
    body: Bytes,
    etag: Option<String>,
    metadata: BTreeMap<String, serde_json::Value>,
}

/// Record metadata as an S3 `Tagging` header: at most 10 entries, keys up to 128 and values
/// up to 256 characters of letters, digits, spaces and `+ - = . _ : / @` (S3's rules).
/// Strings are stored as they are, numbers and booleans as their JSON text.
fn tagging(
    collection: &str,
    metadata: &BTreeMap<String, serde_json::Value>,
) -> Result<Option<String>> {
    if metadata.is_empty() {
        return Ok(None);
    }
    let refuse = |why: String| {
        Err(Error::query(format!(
            "record metadata for '{collection}' is kept as S3 object tags and {why}"
        ))
        .with_backend(BACKEND))
    };
    if metadata.len() > 10 {
        return refuse(format!("S3 allows 10 per object, not {}", metadata.len()));
    }
    let allowed = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c))
    };
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in metadata {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return refuse(format!(
                    "'{k}' is {other}: only strings, numbers and booleans fit"
                ));
            }
        };
        if k.is_empty() || k.chars().count() > 128 || !allowed(k) {
            return refuse(format!(
                "the key '{k}' is not 1 to 128 letters, digits, spaces or + - = . _ : / @"
            ));
        }
        if text.chars().count() > 256 || !allowed(&text) {
            return refuse(format!(
                "the value of '{k}' is not up to 256 letters, digits, spaces or + - = . _ : / @"
            ));
        }
        out.append_pair(k, &text);
    }
    Ok(Some(out.finish()))
}

/// A tag's value as metadata: numbers and booleans back as such, anything else a string.
fn tag_value(v: &str) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(j @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => j,
        _ => serde_json::Value::String(v.to_string()),
    }
}

#[async_trait]
impl Database for S3Records {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn collection_name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> SchemaRef {
        self.columns()
    }

    fn key_column(&self) -> Option<String> {
        self.key.clone()
    }

    async fn create(&self, record: Record) -> Result<String> {
        self.grow_for(std::slice::from_ref(&record)).await?;
        let mut p = self.prepare(vec![record], None)?;
        let p = p
            .pop()
            .ok_or_else(|| Error::internal("no record prepared"))?;
        self.put(&p, true, None).await?;
        self.forget_ids();
        Ok(p.id)
    }

    async fn read(&self, id: &str) -> Result<Option<Record>> {
        match self.get(id, true).await? {
            None => Ok(None),
            Some(f) => self.to_record(id, f).map(Some),
        }
    }

    async fn update(&self, id: &str, record: Record) -> Result<bool> {
        self.grow_for(std::slice::from_ref(&record)).await?;
        let mut p = self.prepare(vec![record], Some(&[id.to_string()]))?;
        let p = p
            .pop()
            .ok_or_else(|| Error::internal("no record prepared"))?;
        let Some(etag) = self.head(id).await? else {
            return Ok(false);
        };
        match self.put(&p, false, Some(&etag)).await {
            Ok(()) => Ok(true),
            // Deleted or replaced meanwhile: this update did not happen.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        Ok(self
            .delete_many(&[id.to_string()])
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.head(id).await?.is_some())
    }

    async fn upsert(&self, id: &str, record: Record) -> Result<String> {
        // One PUT: creates or replaces; concurrent upserts leave one of them whole.
        self.grow_for(std::slice::from_ref(&record)).await?;
        let mut p = self.prepare(vec![record], Some(&[id.to_string()]))?;
        let p = p
            .pop()
            .ok_or_else(|| Error::internal("no record prepared"))?;
        self.put(&p, false, None).await?;
        self.forget_ids();
        Ok(p.id)
    }

    async fn delete_where(&self, filter: Option<&FilterExpr>) -> Result<u64> {
        let ids = shared::matching_ids(self, filter).await?;
        self.delete_ids(&ids).await
    }

    async fn update_where(
        &self,
        assignments: &[(String, datafusion::logical_expr::Expr)],
        filter: Option<&FilterExpr>,
    ) -> Result<u64> {
        shared::update_by_ids(self, assignments, filter).await
    }

    async fn clear(&self) -> Result<u64> {
        self.forget_ids();
        let ids = self.ids().await?;
        let deleted = self.delete_many(&ids).await?;
        Ok(deleted.iter().filter(|d| **d).count() as u64)
    }

    async fn batch_create(&self, records: Vec<Record>) -> Result<Vec<String>> {
        self.grow_for(&records).await?;
        let prepared = self.prepare(records, None)?;
        let ids = prepared.iter().map(|p| p.id.clone()).collect();
        self.create_all(prepared, false).await?;
        Ok(ids)
    }

    async fn batch_read(&self, ids: &[String]) -> Result<Vec<Option<Record>>> {
        futures::stream::iter(
            ids.iter()
                .cloned()
                .map(|id| async move { self.read(&id).await }),
        )
        .buffered(self.workers())
        .try_collect()
        .await
    }

    async fn batch_update(&self, updates: Vec<(String, Record)>) -> Result<Vec<bool>> {
        let records: Vec<Record> = updates.iter().map(|(_, r)| r.clone()).collect();
        self.grow_for(&records).await?;
        futures::stream::iter(
            updates
                .into_iter()
                .map(|(id, r)| async move { self.update(&id, r).await }),
        )
        .buffered(self.workers())
        .try_collect()
        .await
    }

    async fn batch_delete(&self, ids: &[String]) -> Result<Vec<bool>> {
        self.delete_many(ids).await
    }

    fn filter_support(&self, filter: &FilterExpr) -> FilterSupport {
        // Evaluated by DataFusion's kernels on the decoded batches: exact.
        shared::exact_on_columns(&self.columns(), filter)
    }

    fn describe_scan(&self, query: &Query) -> String {
        format!(
            "LIST {} then GET each object ({} at a time), {query} evaluated per {SCAN_BATCH} records",
            self.b.url_of(&self.prefix),
            self.workers()
        )
    }

    async fn scan_partitions(&self, query: &Query, target: usize) -> usize {
        // An offset or a limit is one sequence; otherwise a partition per PARTITION_OBJECTS ids.
        if query.offset.is_some() || query.limit.is_some() || !query.sort.is_empty() {
            return 1;
        }
        match self.ids().await {
            Ok(ids) => target.clamp(1, ids.len().div_ceil(PARTITION_OBJECTS).max(1)),
            Err(_) => 1,
        }
    }

    async fn count(&self, query: Option<&Query>) -> Result<u64> {
        // All records: the listing (no object is read).
        if counts_listing(query) {
            Ok(self.ids().await?.len() as u64)
        } else {
            crate::local::count(self, query).await
        }
    }

    fn describe_count(&self, query: Option<&Query>) -> String {
        match query {
            Some(q) if !counts_listing(query) => format!("count of {}", self.describe_scan(q)),
            _ => format!("LIST {} (count of keys)", self.b.url_of(&self.prefix)),
        }
    }

    async fn scan(&self, query: &Query, partition: Partition) -> Result<SendableRecordBatchStream> {
        let part = self.scan_part(query, partition).await?;
        self.run_part(part)
    }

    async fn insert(&self, data: SendableRecordBatchStream) -> Result<u64> {
        // Every row checked and encoded before the first PUT; a failed PUT removes the rows
        // this statement wrote.
        let batches: Vec<RecordBatch> = data.try_collect().await.map_err(Error::from)?;
        let mut prepared = Vec::new();
        let schema = self.columns();
        for batch in &batches {
            let batch = crate::store::chunks::adapt_batch(&schema, batch)?;
            let bodies = crate::record::json_objects(&batch)?;
            let ids: Vec<String> = match &self.key {
                Some(k) => {
                    let i = schema.index_of(k).map_err(|_| {
                        Error::internal(format!("key column '{k}' is not a column"))
                    })?;
                    let values = array_to_values(schema.field(i), batch.column(i))?;
                    values
                        .iter()
                        .map(|v| {
                            if v.is_null() {
                                Err(Error::query(format!(
                                    "INSERT into {}: a row gives NULL to column '{k}', which \
                                     is NOT NULL",
                                    self.name
                                )))
                            } else {
                                Ok(v.to_text())
                            }
                        })
                        .collect::<Result<_>>()?
                }
                None => (0..batch.num_rows())
                    .map(|_| crate::record::new_record_id())
                    .collect(),
            };
            for (id, body) in ids.into_iter().zip(bodies) {
                id_to_segment(&self.name, &id)?;
                prepared.push(Prepared {
                    id,
                    body,
                    tagging: None,
                });
            }
        }
        let n = prepared.len() as u64;
        self.create_all(prepared, true).await?;
        Ok(n)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_batches: false,
            schema_growth: true,
            native_dml: true,
            row_ids: true,
            exact_sort: false,
            key_lookup: true,
            native_count: false,
        }
    }

    fn supports_row_ids(&self) -> bool {
        true
    }

    async fn delete_ids(&self, ids: &[String]) -> Result<u64> {
        let deleted = self.delete_many(ids).await?;
        Ok(deleted.iter().filter(|d| **d).count() as u64)
    }

    async fn update_ids(&self, ids: &[String], values: RecordBatch) -> Result<u64> {
        let (names, rows) = shared::changes(&values)?;
        if let Some(k) = &self.key
            && names.contains(k)
        {
            // A key change must not land on a record that exists (or on another row's new
            // key): checked for every row before anything is written.
            let mut seen = HashSet::new();
            for (id, r) in ids.iter().zip(&rows) {
                let new_id = r.get(k).map(Value::to_text).unwrap_or_default();
                let clash = new_id != *id
                    && (!seen.insert(new_id.clone())
                        || (!ids.contains(&new_id) && self.head(&new_id).await?.is_some()));
                if clash {
                    return Err(Error::already_exists(format!(
                        "UPDATE of {} failed: a row with id '{new_id}' exists already",
                        self.name
                    ))
                    .with_backend(BACKEND));
                }
            }
        }
        let names = &names;
        let changed: Vec<bool> =
            futures::stream::iter(ids.iter().cloned().zip(rows).map(|(id, changes)| {
                async move {
                    let id = &id;
                    let Some(fetched) = self.get(id, true).await? else {
                        return Ok(false);
                    };
                    let etag = fetched.etag.clone();
                    let mut record = self.to_record(id, fetched)?;
                    for n in names {
                        record.set(n.clone(), changes.get(n).cloned().unwrap_or(Value::Null));
                    }
                    // A changed key moves the record to its new id.
                    let new_id = match &self.key {
                        Some(k) if names.contains(k) => {
                            record.get(k).map(Value::to_text).unwrap_or_default()
                        }
                        _ => id.clone(),
                    };
                    record.set_id(new_id.clone());
                    let mut p = self.prepare(vec![record], Some(std::slice::from_ref(&new_id)))?;
                    let p = p
                        .pop()
                        .ok_or_else(|| Error::internal("no record prepared"))?;
                    if new_id == *id {
                        match self.put(&p, false, etag.as_deref()).await {
                            Ok(()) => Ok(true),
                            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                            Err(e) => Err(e),
                        }
                    } else {
                        self.put(&p, true, None).await?;
                        self.delete_many(std::slice::from_ref(id)).await?;
                        Ok::<bool, Error>(true)
                    }
                }
            }))
            .buffered(self.workers())
            .try_collect()
            .await?;
        self.forget_ids();
        Ok(changed.iter().filter(|c| **c).count() as u64)
    }
}

impl S3Records {
    /// Partition `partition` of a scan of `query`: its share of one listing (every partition
    /// of a scan splits the same list of ids).
    async fn scan_part(&self, query: &Query, partition: Partition) -> Result<RecordScanPart> {
        let ids = partition
            .shared::<Arc<Vec<String>>>()
            .get_or_try_init(|| self.ids())
            .await?
            .clone();
        let (n, count) = (ids.len(), partition.count.max(1));
        let index = partition.index.min(count - 1);
        let keys = ids[n * index / count..n * (index + 1) / count]
            .iter()
            .map(|id| self.object_key(id))
            .collect::<Result<_>>()?;
        Ok(RecordScanPart {
            bucket: self.b.bucket.clone(),
            keys,
            query: query.clone(),
            workers: self.workers().div_ceil(count),
        })
    }

    /// The rows of one scan partition: its objects fetched `max_workers` at a time, decoded
    /// and filtered [`SCAN_BATCH`] at a time as they arrive.
    fn run_part(&self, part: RecordScanPart) -> Result<SendableRecordBatchStream> {
        if part.bucket != self.b.bucket {
            return Err(Error::query(format!(
                "a scan of bucket '{}' cannot run on {}",
                part.bucket,
                self.b.url_of(&self.prefix)
            ))
            .with_backend(BACKEND));
        }
        // Only keys of this collection: `prefix/<segment>.json`.
        let ids = part
            .keys
            .iter()
            .map(|k| {
                self.id_of_key(k).ok_or_else(|| {
                    Error::query(format!(
                        "{} is not a record of {}",
                        self.b.url_of(k),
                        self.b.url_of(&self.prefix)
                    ))
                    .with_backend(BACKEND)
                })
            })
            .collect::<Result<Vec<String>>>()?;
        let query = &part.query;
        let schema = self.columns();
        let predicate = crate::pushdown::eval::compile_predicate(&query.filters, &schema)?;
        let shape = shared::ScanShape::of(&schema, query, &self.name)?;
        let out_schema = shape.schema.clone();
        let (skip, limit) = shared::offset_and_limit(query);
        let this = Arc::new(S3Records::new(
            self.b.clone(),
            &self.name,
            self.prefix.clone(),
            schema.clone(),
            self.key.clone(),
        ));
        let workers = part.workers.max(1);
        let chunks = ids
            .chunks(SCAN_BATCH)
            .map(<[String]>::to_vec)
            .collect::<Vec<_>>();
        // Objects stream in `workers` at a time across chunk boundaries; each full chunk is
        // decoded and filtered as soon as its last object arrives.
        let fetches = {
            let this = this.clone();
            futures::stream::iter(chunks.into_iter().flat_map(|c| {
                let n = c.len();
                c.into_iter()
                    .enumerate()
                    .map(move |(i, id)| (i + 1 == n, id))
            }))
            .map(move |(last, id)| {
                let this = this.clone();
                async move {
                    let f = this.get(&id, false).await?;
                    Ok::<_, Error>((last, id, f))
                }
            })
            .buffered(workers)
        };
        let stream = fetches
            .scan(
                (Vec::<String>::new(), Vec::<Bytes>::new()),
                |(ids, bodies), item| {
                    let out = match item {
                        Err(e) => Some(Err(e)),
                        Ok((last, id, fetched)) => {
                            // Deleted since the listing: skipped.
                            if let Some(f) = fetched {
                                ids.push(id);
                                bodies.push(f.body);
                            }
                            if last {
                                Some(Ok((std::mem::take(ids), std::mem::take(bodies))))
                            } else {
                                Some(Ok((Vec::new(), Vec::new())))
                            }
                        }
                    };
                    futures::future::ready(out)
                },
            )
            .try_filter(|(ids, _)| futures::future::ready(!ids.is_empty()))
            .map(move |chunk| {
                let (ids, bodies) = chunk?;
                let batch = this.decode(&ids, &bodies)?;
                shape.apply(&batch, ids, predicate.as_ref())
            })
            .boxed();
        let limited = shared::skip_and_limit(stream, skip, limit);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            out_schema,
            limited.map_err(|e| e.into_datafusion()),
        )))
    }
}
