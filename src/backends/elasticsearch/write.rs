//! `_bulk` writes: rows as NDJSON (arrow's JSON writer), in chunks of `bulk_docs` documents
//! (or about 5 MB), with `bulk_in_flight` requests at once. A `_bulk` reply is HTTP 200 even
//! when items fail, so every item is read: the outcome is {attempted, written, failed with
//! id and reason}.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use elasticsearch::http::Method;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::BACKEND;
use super::client::{EsClient, path_part, server_error};
use crate::error::{Error, ErrorKind, Result};
use crate::record::{EXTENSION_NAME_KEY, JSON_EXTENSION};

/// About how many bytes one `_bulk` request carries at most.
const CHUNK_BYTES: usize = 5 << 20;

/// What one bulk action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create; fails for an existing `_id`.
    Create,
    /// Create or replace.
    Index,
    /// Change the given fields of an existing document.
    Update,
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Index => "index",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One failed item.
#[derive(Debug, Clone)]
pub struct Failure {
    pub id: Option<String>,
    pub status: u16,
    pub kind: String,
    pub reason: String,
}

/// The outcome of a bulk write.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub attempted: u64,
    pub written: u64,
    /// Items that found no document (updates and deletes of ids no longer present).
    pub missing: u64,
    pub failed: Vec<Failure>,
    /// Failed items beyond the first ones kept.
    pub more_failed: u64,
}

impl Outcome {
    fn add(&mut self, o: Outcome) {
        self.attempted += o.attempted;
        self.written += o.written;
        self.missing += o.missing;
        self.more_failed += o.more_failed;
        for f in o.failed {
            if self.failed.len() < 10 {
                self.failed.push(f);
            } else {
                self.more_failed += 1;
            }
        }
    }

    pub fn failed_count(&self) -> u64 {
        self.failed.len() as u64 + self.more_failed
    }

    /// Ok when no item failed, else an error saying how many were written and why the first
    /// ones failed.
    pub fn check(&self, what: &str, index: &str) -> Result<u64> {
        if self.failed.is_empty() && self.more_failed == 0 {
            return Ok(self.written);
        }
        let firsts: Vec<String> = self
            .failed
            .iter()
            .take(3)
            .map(|f| {
                format!(
                    "{}: {} {}",
                    f.id.as_deref()
                        .map(|i| format!("'{i}'"))
                        .unwrap_or("(no id)".into()),
                    f.kind,
                    f.reason
                )
            })
            .collect();
        let conflict = self.failed.iter().all(|f| f.status == 409);
        let kind = if conflict {
            ErrorKind::AlreadyExists
        } else if self.failed.iter().all(|f| f.kind.contains("parsing")) {
            ErrorKind::Type
        } else {
            ErrorKind::Query
        };
        Err(Error::new(
            kind,
            format!(
                "{what} into index '{index}': {} of {} documents failed and {} were written \
                 (not undone); first failures: {}",
                self.failed_count(),
                self.attempted,
                self.written,
                firsts.join("; ")
            ),
        )
        .with_backend(BACKEND))
    }
}

#[derive(Deserialize)]
struct BulkReply {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<Map<String, Json>>,
}

/// Sends one prepared chunk and reads every item; with `refresh`, the chunk's writes are
/// visible to searches when it answers (`refresh=true`).
async fn send_chunk(
    client: &EsClient,
    index: &str,
    body: Bytes,
    docs: u64,
    refresh: bool,
) -> Result<Outcome> {
    let path = format!(
        "/{}/_bulk?filter_path=errors,items.*._id,items.*.status,items.*.error,items.*.result{}",
        path_part(index),
        if refresh { "&refresh=true" } else { "" }
    );
    let reply = client.send(Method::Post, &path, Some(body), true).await?;
    if !reply.ok() {
        return Err(server_error(&format!("bulk write into '{index}'"), &reply));
    }
    let parsed: BulkReply = serde_json::from_slice(&reply.body).map_err(|e| {
        Error::internal(format!("cannot read the _bulk reply from '{index}': {e}"))
            .with_backend(BACKEND)
    })?;
    let mut out = Outcome {
        attempted: docs,
        ..Outcome::default()
    };
    if !parsed.errors && parsed.items.len() as u64 == docs {
        for item in &parsed.items {
            let Some(body) = item.values().next() else {
                continue;
            };
            if body.get("result").and_then(Json::as_str) == Some("not_found") {
                out.missing += 1;
            } else {
                out.written += 1;
            }
        }
        return Ok(out);
    }
    if parsed.items.len() as u64 != docs {
        return Err(Error::internal(format!(
            "the _bulk reply from '{index}' lists {} items for {docs} documents",
            parsed.items.len()
        ))
        .with_backend(BACKEND));
    }
    for item in &parsed.items {
        let Some(body) = item.values().next() else {
            continue;
        };
        let status = body.get("status").and_then(Json::as_u64).unwrap_or(0) as u16;
        let id = body.get("_id").and_then(Json::as_str).map(str::to_string);
        match body.get("error") {
            None if body.get("result").and_then(Json::as_str) == Some("not_found") => {
                out.missing += 1
            }
            None => out.written += 1,
            Some(e) => {
                let kind = e
                    .get("type")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_string();
                // An update or delete of a document that is gone: skipped, not failed.
                if status == 404 && kind == "document_missing_exception" {
                    out.missing += 1;
                    continue;
                }
                let mut reason = e
                    .get("reason")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Some(cause) = e
                    .get("caused_by")
                    .and_then(|c| c.get("reason"))
                    .and_then(Json::as_str)
                {
                    reason.push_str(": ");
                    reason.push_str(cause);
                }
                out.add(Outcome {
                    failed: vec![Failure {
                        id,
                        status,
                        kind,
                        reason,
                    }],
                    ..Outcome::default()
                });
            }
        }
    }
    Ok(out)
}

/// Builds bulk chunks and sends them, `in_flight` at once.
pub struct BulkWriter {
    client: EsClient,
    index: String,
    action: Action,
    docs_per_chunk: usize,
    in_flight: usize,
    buf: BytesMut,
    docs: u64,
    /// Requests sent so far.
    sent: usize,
    pending:
        futures::stream::FuturesUnordered<futures::future::BoxFuture<'static, Result<Outcome>>>,
    outcome: Outcome,
}

impl BulkWriter {
    pub fn new(
        client: EsClient,
        index: &str,
        action: Action,
        docs_per_chunk: usize,
        in_flight: usize,
    ) -> Self {
        BulkWriter {
            client,
            index: index.to_string(),
            action,
            docs_per_chunk: docs_per_chunk.max(1),
            in_flight: in_flight.max(1),
            buf: BytesMut::new(),
            docs: 0,
            sent: 0,
            pending: Default::default(),
            outcome: Outcome::default(),
        }
    }

    /// Adds one item: the action line for `id`, then `doc` (a JSON object on one line) unless
    /// the action is a delete.
    pub async fn push(&mut self, id: Option<&str>, doc: Option<&[u8]>) -> Result<()> {
        self.buf.put_slice(b"{\"");
        self.buf.put_slice(self.action.name().as_bytes());
        self.buf.put_slice(b"\":{");
        if let Some(id) = id {
            self.buf.put_slice(b"\"_id\":");
            let quoted = serde_json::to_string(id).map_err(|e| Error::internal(e.to_string()))?;
            self.buf.put_slice(quoted.as_bytes());
        }
        self.buf.put_slice(b"}}\n");
        if let Some(doc) = doc {
            if self.action == Action::Update {
                self.buf.put_slice(b"{\"doc\":");
                self.buf.put_slice(doc);
                self.buf.put_slice(b"}\n");
            } else {
                self.buf.put_slice(doc);
                self.buf.put_u8(b'\n');
            }
        }
        self.docs += 1;
        if self.docs as usize >= self.docs_per_chunk || self.buf.len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.send(false).await
    }

    async fn send(&mut self, refresh: bool) -> Result<()> {
        if self.docs == 0 {
            return Ok(());
        }
        let body = std::mem::take(&mut self.buf).freeze();
        let docs = std::mem::take(&mut self.docs);
        let client = self.client.clone();
        let index = self.index.clone();
        self.sent += 1;
        self.pending.push(Box::pin(async move {
            send_chunk(&client, &index, body, docs, refresh).await
        }));
        while self.pending.len() >= self.in_flight {
            self.collect_one().await?;
        }
        Ok(())
    }

    async fn collect_one(&mut self) -> Result<()> {
        if let Some(r) = self.pending.next().await {
            match r {
                Ok(o) => self.outcome.add(o),
                Err(e) => {
                    // Let the other chunks finish, then say what was written.
                    while let Some(r) = self.pending.next().await {
                        if let Ok(o) = r {
                            self.outcome.add(o);
                        }
                    }
                    return Err(Error::new(
                        e.kind(),
                        format!(
                            "{} ({} documents were written before, not undone)",
                            e.message(),
                            self.outcome.written
                        ),
                    )
                    .with_backend(BACKEND));
                }
            }
        }
        Ok(())
    }

    /// Sends what is left and waits for every request. With `refresh`, when every item went
    /// in one request, that request carries `refresh=true`: the writes are visible when it
    /// answers, with no `_refresh` after it. The flag says whether it did (otherwise the
    /// caller refreshes).
    pub async fn finish_refreshing(mut self, refresh: bool) -> Result<(Outcome, bool)> {
        let refreshed = refresh && self.sent == 0 && self.docs > 0;
        self.send(refreshed).await?;
        while !self.pending.is_empty() {
            self.collect_one().await?;
        }
        Ok((self.outcome, refreshed))
    }

    pub fn written_so_far(&self) -> u64 {
        self.outcome.written
    }
}

/// A column's values as text (document ids, keys), NULL as None.
pub fn column_texts(column: &ArrayRef) -> Result<Vec<Option<String>>> {
    let text = cast(column, &DataType::Utf8).map_err(|e| Error::internal(e.to_string()))?;
    let text = text
        .as_any()
        .downcast_ref::<datafusion::arrow::array::StringArray>()
        .ok_or_else(|| Error::internal("a column cast to text is not text"))?;
    Ok(text.iter().map(|v| v.map(str::to_string)).collect())
}

/// The documents of a batch as JSON lines, one per row (NULLs left out), and the rows' ids
/// from `id_column` (text). Columns named in `skip` are not written.
pub fn batch_docs(
    batch: &RecordBatch,
    id_column: Option<&str>,
    skip: &[&str],
    epoch_integers: bool,
) -> Result<(Vec<Bytes>, Vec<Option<String>>)> {
    let schema = batch.schema();
    let mut fields: Vec<Field> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut json_cols: Vec<usize> = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if skip.contains(&f.name().as_str()) {
            continue;
        }
        if matches!(
            f.data_type(),
            DataType::Float16 | DataType::Float32 | DataType::Float64
        ) {
            let a = cast(batch.column(i), &DataType::Float64)
                .map_err(|e| Error::internal(e.to_string()))?;
            let a = a
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Float64Array>()
                .ok_or_else(|| Error::internal("float column"))?;
            if let Some(v) = a.iter().flatten().find(|v| !v.is_finite()) {
                return Err(Error::type_error(format!(
                    "column '{}' holds {v}, which an Elasticsearch/OpenSearch number field cannot \
                     store (finite values only); write NULL instead or filter such rows out",
                    f.name()
                ))
                .with_backend(BACKEND));
            }
        }
        let is_json =
            f.metadata().get(EXTENSION_NAME_KEY).map(String::as_str) == Some(JSON_EXTENSION);
        let (f2, a) = match f.data_type() {
            // Decimals as exact text (the server parses it; `_source` keeps it).
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => {
                let a = cast(batch.column(i), &DataType::Utf8)
                    .map_err(|e| Error::internal(e.to_string()))?;
                (Field::new(f.name(), DataType::Utf8, true), a)
            }
            // Binary as base64 text (the server's binary type).
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                use base64::Engine as _;
                let a = cast(batch.column(i), &DataType::Binary)
                    .map_err(|e| Error::internal(e.to_string()))?;
                let a = a
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::BinaryArray>()
                    .ok_or_else(|| Error::internal("binary column"))?;
                let text: datafusion::arrow::array::StringArray = a
                    .iter()
                    .map(|v| v.map(|b| base64::engine::general_purpose::STANDARD.encode(b)))
                    .collect();
                (
                    Field::new(f.name(), DataType::Utf8, true),
                    Arc::new(text) as ArrayRef,
                )
            }
            // Micro- and nanosecond timestamps as integers in their unit (a `long` field:
            // `date_nanos` cannot hold dates before 1970, `date` keeps milliseconds only).
            DataType::Timestamp(
                datafusion::arrow::datatypes::TimeUnit::Microsecond
                | datafusion::arrow::datatypes::TimeUnit::Nanosecond,
                _,
            ) if epoch_integers => {
                let a = cast(batch.column(i), &DataType::Int64)
                    .map_err(|e| Error::internal(e.to_string()))?;
                (Field::new(f.name(), DataType::Int64, true), a)
            }
            _ => (f.as_ref().clone(), batch.column(i).clone()),
        };
        if is_json {
            json_cols.push(fields.len());
        }
        fields.push(f2);
        arrays.push(a);
    }
    let ids = match id_column {
        Some(c) => {
            let i = schema
                .index_of(c)
                .map_err(|_| Error::internal(format!("no id column '{c}' in the rows to write")))?;
            column_texts(batch.column(i))?
        }
        None => vec![None; batch.num_rows()],
    };
    let projected = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::internal(format!("cannot prepare rows for _bulk: {e}")))?;
    let mut out = Vec::with_capacity(batch.num_rows());
    if projected.num_columns() == 0 {
        out.resize(batch.num_rows(), Bytes::from_static(b"{}"));
        return Ok((out, ids));
    }
    let mut buf = Vec::with_capacity(batch.num_rows() * 64);
    {
        let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(&projected).map_err(|e| {
            Error::type_error(format!("cannot write rows as JSON: {e}")).with_backend(BACKEND)
        })?;
        w.finish().map_err(|e| {
            Error::type_error(format!("cannot write rows as JSON: {e}")).with_backend(BACKEND)
        })?;
    }
    let all = Bytes::from(buf);
    let mut start = 0;
    for (i, b) in all.iter().enumerate() {
        if *b == b'\n' {
            out.push(all.slice(start..i));
            start = i + 1;
        }
    }
    if start < all.len() {
        out.push(all.slice(start..));
    }
    if !json_cols.is_empty() {
        // JSON columns hold text: write the value itself, not a string.
        let names: Vec<String> = json_cols
            .iter()
            .map(|&c| projected.schema().field(c).name().clone())
            .collect();
        for line in &mut out {
            let mut obj: Map<String, Json> = serde_json::from_slice(line)
                .map_err(|e| Error::internal(format!("bad JSON row: {e}")))?;
            for n in &names {
                if let Some(Json::String(s)) = obj.get(n) {
                    let v: Json = serde_json::from_str(s).map_err(|e| {
                        Error::type_error(format!("column '{n}' holds text that is not JSON: {e}"))
                            .with_backend(BACKEND)
                    })?;
                    obj.insert(n.clone(), v);
                }
            }
            *line =
                Bytes::from(serde_json::to_vec(&obj).map_err(|e| Error::internal(e.to_string()))?);
        }
    }
    if out.len() != batch.num_rows() {
        return Err(Error::internal(format!(
            "wrote {} JSON lines for {} rows",
            out.len(),
            batch.num_rows()
        )));
    }
    Ok((out, ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    #[test]
    fn rows_become_documents_with_ids() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
            Field::new("_score", DataType::Float64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(datafusion::arrow::array::Float64Array::from(vec![
                    None, None,
                ])),
            ],
        )
        .unwrap();
        let (docs, ids) = batch_docs(&b, Some("id"), &["_score"], true).unwrap();
        assert_eq!(ids, vec![Some("a".to_string()), Some("b".to_string())]);
        assert_eq!(&docs[0][..], br#"{"id":"a","n":1}"#);
        assert_eq!(&docs[1][..], br#"{"id":"b"}"#);
    }
}
