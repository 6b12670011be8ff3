//! Streaming scans.
//!
//! - A full scan reads each concrete index in slices: one point in time (PIT) per index,
//!   shared by all partitions of one scan, `search_after` on `_doc`, pages of
//!   [`PAGE_SIZE`] hits. Each slice lies within one shard (`max` ≥ the index's shard count),
//!   where `_doc` is unique — OpenSearch before 3.3 has no `_shard_doc` tiebreaker, and paging
//!   on `_doc` across shards skips hits. The partitions of a scan take the slices round-robin.
//! - A server without PIT (Elasticsearch < 7.10, OpenSearch < 2.4), or `scan=scroll`: scroll.
//! - A sorted or small limited scan (`ORDER BY … LIMIT n`, `LIMIT n` with n + offset within
//!   the index's result window): one request with `from` and `size`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use elasticsearch::http::Method;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::BACKEND;
use super::client::{EsClient, Flavour, path_part, server_error};
use super::decode::{ColumnSpec, Decoder};
use crate::database::Partition;
use crate::error::{Error, Result};

/// Hits per page: 10,000 (the default `index.max_result_window`) read fastest in the
/// measurements of docs/notes/elasticsearch.md §8 (541k docs/s on loopback).
pub const PAGE_SIZE: usize = 10_000;
/// How long the server keeps a PIT or scroll between two pages.
const KEEP_ALIVE: &str = "2m";

/// How to page through hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    Pit,
    Scroll,
}

/// One concrete index and its shard count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub index: String,
    pub shards: usize,
}

/// Everything one scan needs (plain data; the client is passed in).
#[derive(Debug, Clone)]
pub struct ScanRequest {
    /// The table's name as the user wrote it (for errors).
    pub table: String,
    /// The alias, pattern or index the table names (for one-request scans).
    pub target: String,
    /// The concrete indexes behind it (for sliced scans).
    pub indexes: Vec<Target>,
    /// `query`, `_source`, `docvalue_fields`, `track_scores`, `sort` (when pushed).
    pub body: serde_json::Map<String, Json>,
    pub sorted: bool,
    /// The sort keys, for a sorted scan too large for one request (sorted here).
    pub sort: Vec<crate::query::SortSpec>,
    pub limit: Option<usize>,
    pub offset: usize,
    /// How many leading columns of `schema` the scan returns (the rest are sort keys read
    /// only to sort here).
    pub output: usize,
    pub paging: Paging,
    pub schema: SchemaRef,
    pub columns: Vec<ColumnSpec>,
    /// Did the table's last whole (one-partition) scan fit in one page? Then the next one
    /// first sends one plain `_search` and needs no point in time or scroll when its hits fit
    /// a page too (see [`State::probe`]).
    pub fit_one_page: Arc<AtomicBool>,
}

impl ScanRequest {
    /// Is this a single request (`from` + `size`)?
    pub fn single(&self) -> bool {
        self.limit.is_some_and(|l| l + self.offset <= PAGE_SIZE)
    }

    /// A sorted scan beyond one request's window: read in pages, sorted here.
    fn sorts_locally(&self) -> bool {
        self.sorted && !self.single()
    }

    /// The slices of a full scan: (index position, slice id, slice max). One slice per shard:
    /// a slice finer than a shard is a filter on the hash of every `_id`, which the server
    /// recomputes for every page (measured: it halved the scan rate of a one-shard index).
    fn slices(&self, _count: usize) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (i, t) in self.indexes.iter().enumerate() {
            let max = t.shards.max(1);
            for s in 0..max {
                out.push((i, s, max));
            }
        }
        out
    }

    /// How many partitions a scan can use, at most `target`: one per shard.
    pub fn partitions(&self, target: usize) -> usize {
        if self.single() {
            return 1;
        }
        let total_slices: usize = self.indexes.iter().map(|t| t.shards.max(1)).sum();
        target.max(1).min(total_slices.max(1))
    }

    /// The first page's request body, for EXPLAIN.
    pub fn describe(&self) -> String {
        let mut body = self.body.clone();
        if self.single() {
            body.insert("from".into(), json!(self.offset));
            body.insert(
                "size".into(),
                json!(self.limit.unwrap_or(PAGE_SIZE).min(PAGE_SIZE)),
            );
            return format!(
                "POST /{}/_search {}",
                path_part(&self.target),
                Json::Object(body)
            );
        }
        body.insert("size".into(), json!(self.page_size()));
        body.insert("track_total_hits".into(), json!(false));
        body.insert("sort".into(), json!(["_doc"]));
        let how = match self.paging {
            Paging::Pit => "point in time + search_after, one slice per shard",
            Paging::Scroll => "scroll",
        };
        let probe = if self.fit_one_page.load(Ordering::Relaxed) {
            " (one partition: first the same without paging, done if its hits fit a page)"
        } else {
            ""
        };
        format!(
            "POST /{}/_search ({how}) {}{probe}",
            path_part(&self.target),
            Json::Object(body)
        )
    }

    fn page_size(&self) -> usize {
        match self.limit {
            Some(l) => (l + self.offset).clamp(1, PAGE_SIZE),
            None => PAGE_SIZE,
        }
    }
}

/// The PITs of one scan, shared by its partitions; the last partition to finish closes them.
struct SharedPits {
    cell: tokio::sync::OnceCell<Vec<String>>,
    remaining: AtomicUsize,
}

/// The PITs of running scans by scan id, with when they were opened.
type PitMap = HashMap<u64, (Arc<SharedPits>, std::time::Instant)>;

static SHARED_PITS: std::sync::LazyLock<parking_lot::Mutex<PitMap>> =
    std::sync::LazyLock::new(Default::default);

fn shared_pits(partition: Partition) -> Arc<SharedPits> {
    let mut map = SHARED_PITS.lock();
    map.retain(|_, (_, since)| since.elapsed() < std::time::Duration::from_secs(120));
    map.entry(partition.scan)
        .or_insert_with(|| {
            (
                Arc::new(SharedPits {
                    cell: tokio::sync::OnceCell::new(),
                    remaining: AtomicUsize::new(partition.count),
                }),
                std::time::Instant::now(),
            )
        })
        .0
        .clone()
}

async fn open_pit(client: &EsClient, index: &str) -> Result<String> {
    let (path, key) = match client.info.flavour {
        Flavour::OpenSearch => (
            format!(
                "/{}/_search/point_in_time?keep_alive={KEEP_ALIVE}",
                path_part(index)
            ),
            "pit_id",
        ),
        Flavour::Elasticsearch => (
            format!("/{}/_pit?keep_alive={KEEP_ALIVE}", path_part(index)),
            "id",
        ),
    };
    let reply = client
        .request(
            Method::Post,
            &path,
            None,
            &format!("opening a point in time on index '{index}'"),
        )
        .await?;
    reply
        .get(key)
        .and_then(Json::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            Error::internal(format!(
                "the reply to opening a point in time on '{index}' has no {key}"
            ))
            .with_backend(BACKEND)
        })
}

/// Closes PITs (best effort: they expire anyway).
pub async fn close_pits(client: &EsClient, pits: &[String]) {
    if pits.is_empty() {
        return;
    }
    let (path, body) = match client.info.flavour {
        Flavour::OpenSearch => ("/_search/point_in_time", json!({"pit_id": pits})),
        Flavour::Elasticsearch => ("/_pit", json!({"id": pits[0]})),
    };
    if client.info.flavour == Flavour::Elasticsearch {
        for p in pits {
            let _ = client
                .request(
                    Method::Delete,
                    path,
                    Some(&json!({"id": p})),
                    "closing a point in time",
                )
                .await;
        }
    } else {
        let _ = client
            .request(Method::Delete, path, Some(&body), "closing points in time")
            .await;
    }
}

/// Sends one search request and returns the reply's bytes (decoded by [`Decoder`]).
async fn fetch(client: EsClient, path: String, body: Json, table: String) -> Result<Bytes> {
    let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|e| Error::internal(e.to_string()))?);
    let reply = client.send(Method::Post, &path, Some(bytes), false).await?;
    if !reply.ok() {
        return Err(server_error(&format!("searching {table}"), &reply));
    }
    Ok(reply.body)
}

/// The next page's request, sent while this page is decoded. It was built from a guess at
/// the cursor (the last `"sort"` and the first `"pit_id"` / `"_scroll_id"` of the reply's
/// bytes); the decoded page confirms the guess or the request is dropped and sent again.
/// Dropping it aborts the request.
struct Prefetch {
    handle: tokio::task::JoinHandle<Result<Bytes>>,
    /// The cursor it continues from: PIT id and `search_after`, or the scroll id.
    pit: Option<String>,
    after: Option<Vec<Json>>,
    scroll_id: Option<String>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Where `needle` last occurs in `hay`.
fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// At least as many as the hits in a search reply: every hit has an `"_id":` key, and the
/// text cannot occur inside a JSON string (its quotes would be escaped), only as a key of a
/// document's own object.
fn hits_at_most(page: &[u8]) -> usize {
    memchr::memmem::find_iter(page, b"\"_id\":").count()
}

/// The string value of the first `"key":"…"` in the first 4 KiB of a reply (ids are
/// base64: no escapes).
fn leading_string(page: &[u8], key: &str) -> Option<String> {
    let head = &page[..page.len().min(4096)];
    let pat = format!("\"{key}\":\"");
    let start = head.windows(pat.len()).position(|w| w == pat.as_bytes())? + pat.len();
    let len = page[start..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\')?;
    (page.get(start + len) == Some(&b'"'))
        .then(|| String::from_utf8(page[start..start + len].to_vec()).ok())
        .flatten()
}

/// The values of the last `"sort":[…]` of a reply: the last hit's, in every server's
/// layout (a document's own `sort` key comes before its hit's).
fn trailing_sort(page: &[u8]) -> Option<Vec<Json>> {
    let from = page.len().saturating_sub(64 * 1024);
    let pos = from + rfind(&page[from..], b"\"sort\":[")? + 7;
    let mut de = serde_json::Deserializer::from_slice(&page[pos..]);
    Vec::<Json>::deserialize(&mut de).ok()
}

/// Sorts rows as DataFusion does (the same Arrow kernels), then applies offset and limit.
fn sort_batches(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    sort: &[crate::query::SortSpec],
    offset: usize,
    limit: Option<usize>,
) -> Result<RecordBatch> {
    use datafusion::arrow::compute::{
        SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
    };
    let all = concat_batches(schema, batches).map_err(|e| Error::internal(e.to_string()))?;
    let columns = sort
        .iter()
        .map(|s| {
            let i = schema.index_of(&s.field).map_err(|_| {
                Error::internal(format!("sort column '{}' is not in the scan", s.field))
            })?;
            Ok(SortColumn {
                values: all.column(i).clone(),
                options: Some(SortOptions {
                    descending: s.order == crate::query::SortOrder::Desc,
                    nulls_first: s.nulls_first,
                }),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let n = all.num_rows();
    let end = limit.map_or(n, |l| (offset + l).min(n));
    let indices =
        lexsort_to_indices(&columns, Some(end)).map_err(|e| Error::internal(e.to_string()))?;
    let sorted = take_record_batch(&all, &indices).map_err(|e| Error::internal(e.to_string()))?;
    let start = offset.min(sorted.num_rows());
    Ok(sorted.slice(start, sorted.num_rows() - start))
}

/// The state of one partition's stream.
struct State {
    client: EsClient,
    req: Arc<ScanRequest>,
    decoder: Decoder,
    /// The slices left to read: (index position, slice id, slice max).
    slices: Vec<(usize, usize, usize)>,
    /// The slice being read and where it is.
    current: Option<Cursor>,
    /// The current slice's next page, in flight.
    prefetch: Option<Prefetch>,
    pits: Option<Arc<SharedPits>>,
    /// Rows still to skip (offset) and to return (limit).
    skip: usize,
    left: Option<usize>,
    done: bool,
    single_done: bool,
    /// This stream reads the whole scan: it may start with one plain `_search` of a page
    /// (the probe) and it records in `fit_one_page` whether the scan fitted one page.
    whole: bool,
    /// The probe is still to be sent.
    probe: bool,
    /// Hits read so far (for `fit_one_page`).
    hits: usize,
}

struct Cursor {
    slice: (usize, usize, usize),
    search_after: Option<Vec<Json>>,
    scroll_id: Option<String>,
    pit: Option<String>,
}

impl State {
    /// The path and body of the request for a slice's page after `after` (PIT) or of its
    /// scroll `scroll_id` (none: the first page).
    fn page_request(
        &self,
        slice: (usize, usize, usize),
        pit: Option<&str>,
        after: Option<&Vec<Json>>,
        scroll_id: Option<&str>,
    ) -> (String, Json) {
        let (idx, sid, smax) = slice;
        let mut body = self.req.body.clone();
        body.insert("size".into(), json!(self.req.page_size()));
        if smax > 1 {
            body.insert("slice".into(), json!({"id": sid, "max": smax}));
        }
        match self.req.paging {
            Paging::Pit => {
                body.insert("sort".into(), json!(["_doc"]));
                body.insert("track_total_hits".into(), json!(false));
                body.insert(
                    "pit".into(),
                    json!({"id": pit.unwrap_or_default(), "keep_alive": KEEP_ALIVE}),
                );
                if let Some(after) = after {
                    body.insert("search_after".into(), Json::Array(after.clone()));
                }
                ("/_search".to_string(), Json::Object(body))
            }
            Paging::Scroll => match scroll_id {
                None => {
                    body.insert("sort".into(), json!(["_doc"]));
                    let index = &self.req.indexes[idx].index;
                    (
                        format!("/{}/_search?scroll={KEEP_ALIVE}", path_part(index)),
                        Json::Object(body),
                    )
                }
                Some(id) => (
                    "/_search/scroll".to_string(),
                    json!({"scroll": KEEP_ALIVE, "scroll_id": id}),
                ),
            },
        }
    }

    fn spawn_fetch(&self, path: String, body: Json) -> tokio::task::JoinHandle<Result<Bytes>> {
        tokio::spawn(fetch(
            self.client.clone(),
            path,
            body,
            self.req.table.clone(),
        ))
    }

    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if self.done || self.left == Some(0) {
                self.finish().await;
                return Ok(None);
            }
            if self.req.single() {
                if self.single_done {
                    self.done = true;
                    continue;
                }
                self.single_done = true;
                let bytes = self
                    .search_target(&[
                        ("from", json!(self.req.offset)),
                        ("size", json!(self.req.limit.unwrap_or(PAGE_SIZE))),
                    ])
                    .await?;
                self.decoder
                    .push_page(&bytes, &mut 0, &mut None, &self.req.table)?;
                self.done = true;
                return self.decoder.finish().map(Some);
            }
            if self.probe {
                self.probe = false;
                if self.probe_page().await? {
                    self.done = true;
                    if self.decoder.rows() > 0 {
                        return self.decoder.finish().map(Some);
                    }
                    continue;
                }
            }
            if self.current.is_none() {
                let Some(slice) = self.slices.pop() else {
                    self.done = true;
                    continue;
                };
                let pit = match (&self.pits, self.req.paging) {
                    (Some(shared), Paging::Pit) => {
                        let client = self.client.clone();
                        let req = self.req.clone();
                        let ids = shared
                            .cell
                            .get_or_try_init(|| async move {
                                let mut ids = Vec::new();
                                for t in &req.indexes {
                                    match open_pit(&client, &t.index).await {
                                        Ok(id) => ids.push(id),
                                        Err(e) => {
                                            close_pits(&client, &ids).await;
                                            return Err(e);
                                        }
                                    }
                                }
                                Ok::<_, Error>(ids)
                            })
                            .await?;
                        ids.get(slice.0).cloned()
                    }
                    _ => None,
                };
                self.current = Some(Cursor {
                    slice,
                    search_after: None,
                    scroll_id: None,
                    pit,
                });
            }
            let Some(cur) = self.current.as_ref() else {
                continue;
            };
            let slice = cur.slice;
            // This page: the one in flight, or asked for now.
            let bytes = match self.prefetch.take() {
                Some(mut p) => (&mut p.handle)
                    .await
                    .map_err(|e| Error::internal(format!("a page request failed: {e}")))??,
                None => {
                    let (path, body) = self.page_request(
                        slice,
                        cur.pit.as_deref(),
                        cur.search_after.as_ref(),
                        cur.scroll_id.as_deref(),
                    );
                    fetch(self.client.clone(), path, body, self.req.table.clone()).await?
                }
            };
            let page_size = self.req.page_size();
            // The next page goes out before this one is decoded, unless this one is enough
            // or is the slice's last (fewer hits than a page).
            let enough = self.left.is_some_and(|l| self.skip + l <= page_size)
                || hits_at_most(&bytes) < page_size;
            if !enough {
                let guess = match self.req.paging {
                    Paging::Pit => trailing_sort(&bytes).map(|after| {
                        let pit = leading_string(&bytes, "pit_id").or_else(|| cur.pit.clone());
                        (pit, Some(after), None)
                    }),
                    Paging::Scroll => leading_string(&bytes, "_scroll_id")
                        .or_else(|| cur.scroll_id.clone())
                        .map(|id| (None, None, Some(id))),
                };
                if let Some((pit, after, scroll_id)) = guess {
                    let (path, body) = self.page_request(
                        slice,
                        pit.as_deref(),
                        after.as_ref(),
                        scroll_id.as_deref(),
                    );
                    self.prefetch = Some(Prefetch {
                        handle: self.spawn_fetch(path, body),
                        pit,
                        after,
                        scroll_id,
                    });
                }
            }
            let info =
                self.decoder
                    .push_page(&bytes, &mut self.skip, &mut self.left, &self.req.table)?;
            self.hits += info.hits;
            let last = info.hits < page_size
                || (self.req.paging == Paging::Pit && info.last_sort.is_none());
            if let Some(cur) = self.current.as_mut() {
                if let Some(id) = info.pit_id {
                    cur.pit = Some(id);
                }
                cur.search_after = info.last_sort;
                if let Some(id) = info.scroll_id {
                    cur.scroll_id = Some(id);
                }
                // A wrong guess: that request is dropped, the next round sends the right one.
                let confirmed = self
                    .prefetch
                    .as_ref()
                    .is_some_and(|p| match self.req.paging {
                        Paging::Pit => p.pit == cur.pit && p.after == cur.search_after,
                        Paging::Scroll => p.scroll_id == cur.scroll_id,
                    });
                if !confirmed || last {
                    self.prefetch = None;
                }
            }
            // The slice is done: move on (and clear its scroll).
            if last {
                self.drop_cursor().await;
            }
            if self.decoder.rows() > 0 {
                return self.decoder.finish().map(Some);
            }
        }
    }

    /// Leaves the slice being read, clearing its scroll if it has one (best effort: a scroll
    /// expires anyway).
    async fn drop_cursor(&mut self) {
        self.prefetch = None;
        if let Some(cur) = self.current.take()
            && let Some(id) = cur.scroll_id
        {
            let _ = self
                .client
                .request(
                    Method::Delete,
                    "/_search/scroll",
                    Some(&json!({"scroll_id": [id]})),
                    "clearing a scroll",
                )
                .await;
        }
    }

    /// One plain `_search` of the whole target: the scan's body with `extra` keys set.
    async fn search_target(&self, extra: &[(&str, Json)]) -> Result<Bytes> {
        let mut body = self.req.body.clone();
        for (k, v) in extra {
            body.insert((*k).into(), v.clone());
        }
        let path = format!("/{}/_search", path_part(&self.req.target));
        fetch(
            self.client.clone(),
            path,
            Json::Object(body),
            self.req.table.clone(),
        )
        .await
    }

    /// Sends the probe: one plain `_search` of a page over the whole target. When its hits
    /// fit the page they are the whole result (one request, where a point in time costs
    /// three: open, page, close) and it returns true. A full page is dropped undecoded (it
    /// came from another snapshot than the point in time the scan then opens).
    async fn probe_page(&mut self) -> Result<bool> {
        let bytes = self
            .search_target(&[
                ("size", json!(PAGE_SIZE)),
                ("sort", json!(["_doc"])),
                ("track_total_hits", json!(false)),
            ])
            .await?;
        if hits_at_most(&bytes) >= PAGE_SIZE {
            self.req.fit_one_page.store(false, Ordering::Relaxed);
            return Ok(false);
        }
        let info =
            self.decoder
                .push_page(&bytes, &mut self.skip, &mut self.left, &self.req.table)?;
        self.hits += info.hits;
        Ok(true)
    }

    /// Closes this partition's scroll and, for the last partition, the shared PITs.
    async fn finish(&mut self) {
        if self.whole && (self.left.is_none() || self.hits < PAGE_SIZE) {
            // Only a scan that read everything (or ended before a page) tells.
            self.req
                .fit_one_page
                .store(self.hits < PAGE_SIZE, Ordering::Relaxed);
        }
        self.drop_cursor().await;
        if let Some(shared) = self.pits.take()
            && shared.remaining.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(ids) = shared.cell.get()
        {
            close_pits(&self.client, ids).await;
        }
    }
}

/// Streams one partition of a scan.
pub fn stream(
    client: EsClient,
    req: ScanRequest,
    partition: Partition,
) -> SendableRecordBatchStream {
    if req.sorts_locally() {
        let full = req.schema.clone();
        let keep: Vec<usize> = (0..req.output.min(full.fields().len())).collect();
        let schema = Arc::new(
            full.project(&keep)
                .unwrap_or_else(|_| full.as_ref().clone()),
        );
        let (sort, offset, limit) = (req.sort.clone(), req.offset, req.limit);
        let mut unsorted = req;
        unsorted.sorted = false;
        unsorted.offset = 0;
        unsorted.limit = None;
        unsorted.body.remove("sort");
        let inner = stream(client, unsorted, Partition::ALL);
        let fut = async move {
            use futures::TryStreamExt;
            let batches: Vec<RecordBatch> = inner.try_collect().await?;
            let sorted = sort_batches(&full, &batches, &sort, offset, limit)
                .map_err(|e| e.into_datafusion())?;
            Ok(sorted.project(&keep)?)
        };
        let s = futures::stream::once(fut);
        return Box::pin(RecordBatchStreamAdapter::new(schema, s));
    }
    let schema = req.schema.clone();
    let req = Arc::new(req);
    let count = partition.count.max(1);
    let slices: Vec<_> = if req.single() {
        Vec::new()
    } else {
        req.slices(count)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % count == partition.index)
            .map(|(_, s)| s)
            .rev()
            .collect()
    };
    let pits = (!req.single() && req.paging == Paging::Pit).then(|| {
        if partition.count <= 1 || partition.scan == 0 {
            Arc::new(SharedPits {
                cell: tokio::sync::OnceCell::new(),
                remaining: AtomicUsize::new(1),
            })
        } else {
            shared_pits(partition)
        }
    });
    // Partitions of one scan each read a part (slices of a point in time): only a stream
    // that reads it all may answer it from one plain request.
    let whole = !req.single() && partition.count <= 1;
    let fit_one_page = req.fit_one_page.load(Ordering::Relaxed);
    let state = State {
        client,
        decoder: Decoder::new(req.schema.clone(), req.columns.clone()),
        skip: if req.single() { 0 } else { req.offset },
        left: if req.single() { None } else { req.limit },
        req,
        slices,
        current: None,
        prefetch: None,
        pits,
        done: false,
        single_done: false,
        whole,
        probe: whole && fit_one_page,
        hits: 0,
    };
    let s = futures::stream::unfold(state, |mut st| async move {
        match st.next_batch().await {
            Ok(Some(b)) => Some((Ok(b), st)),
            Ok(None) => None,
            Err(e) => {
                st.done = true;
                st.finish().await;
                Some((Err(e.into_datafusion()), st))
            }
        }
    })
    .fuse();
    Box::pin(RecordBatchStreamAdapter::new(schema, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_counted_from_above() {
        let page = br#"{"took":1,"hits":{"hits":[{"_index":"i","_id":"1","_source":{"s":"\"_id\":"}},{"_index":"i","_id":"2","_source":{"o":{"_id":3}}}]}}"#;
        // Two hits; a document's own `_id` key counts too, text inside a string does not.
        assert_eq!(hits_at_most(page), 3);
        assert_eq!(hits_at_most(br#"{"hits":{"hits":[]}}"#), 0);
    }

    #[test]
    fn the_cursor_is_guessed_from_the_reply_bytes() {
        let page = br#"{"pit_id":"abc=","took":1,"hits":{"hits":[{"_id":"1","_source":{"sort":[7]},"sort":[41]},{"_id":"2","_source":{"sort":[8]},"sort":[42,"x"]}]}}"#;
        assert_eq!(leading_string(page, "pit_id").as_deref(), Some("abc="));
        assert_eq!(leading_string(page, "_scroll_id"), None);
        assert_eq!(trailing_sort(page), Some(vec![json!(42), json!("x")]));
        assert_eq!(trailing_sort(br#"{"hits":{"hits":[]}}"#), None);
        // An escaped quote ends no id: no guess.
        assert_eq!(leading_string(br#"{"pit_id":"a\"b"}"#, "pit_id"), None);
    }
}
