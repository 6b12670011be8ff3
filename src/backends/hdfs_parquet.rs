//! Parquet files on HDFS read with one open `hdfs-native` file per scanned file.
//!
//! Through `hdfs-native-object-store`, every byte range costs two namenode calls (a file
//! status, then the block locations) before the datanode sends a byte: a Parquet scan asks for
//! one or more ranges per row group. This reader opens each file once (one call for its block
//! locations) and reads all of its ranges from the datanodes directly, coalescing nearby ranges
//! as `object_store` does. Footers come from a cache kept per namenode for all statements
//! (read through the object store on a miss): a statement infers its table's schema from them
//! and its scan reads them again, neither from the datanode while the file is unchanged.
//!
//! DataFusion asks for one row group's column chunks at a time and decodes them before asking
//! for the next. When a request is exactly some columns' chunks of one row group, the reader
//! starts fetching the same columns of the next row group in this scan's byte range while the
//! caller decodes; a different next request drops that read-ahead (at most one row group per
//! open file).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{ParquetFileMetrics, ParquetFileReaderFactory};
use datafusion::execution::cache::cache_manager::{
    DEFAULT_METADATA_CACHE_LIMIT, FileMetadataCache,
};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::errors::{ParquetError, Result as ParquetResult};
use datafusion::parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use hdfs_native::Client;
use hdfs_native::file::FileReader;
use object_store::ObjectStore;
use tokio::task::JoinHandle;

use crate::backends::s3::ParquetReaders;

/// Makes the Parquet readers of HDFS scans.
#[derive(Clone)]
pub(crate) struct HdfsParquet {
    client: Client,
    /// The same namenode as an object store, for footers.
    store: Arc<dyn ObjectStore>,
    /// Footers by path, length and modification time (HDFS keeps it in milliseconds), for
    /// every statement over this namenode.
    footers: Arc<FileMetadataCache>,
}

impl HdfsParquet {
    pub fn new(client: Client, store: Arc<dyn ObjectStore>) -> HdfsParquet {
        let footers: Arc<FileMetadataCache> =
            Arc::new(DefaultCache::new(DEFAULT_METADATA_CACHE_LIMIT).with_name("HdfsFooterCache"));
        HdfsParquet {
            client,
            store,
            footers,
        }
    }
}

impl std::fmt::Debug for HdfsParquet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HdfsParquet")
    }
}

impl ParquetReaders for HdfsParquet {
    fn factory(&self) -> Arc<dyn ParquetFileReaderFactory> {
        Arc::new(Factory {
            hdfs: self.clone(),
            footers: self.footers.clone(),
        })
    }

    fn footers(&self) -> Arc<FileMetadataCache> {
        self.footers.clone()
    }
}

struct Factory {
    hdfs: HdfsParquet,
    footers: Arc<FileMetadataCache>,
}

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HdfsParquetReaderFactory")
    }
}

impl ParquetFileReaderFactory for Factory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::error::Result<Box<dyn AsyncFileReader + Send>> {
        let metrics =
            ParquetFileMetrics::new(partition_index, file.object_meta.location.as_ref(), metrics);
        Ok(Box::new(HdfsFileReader {
            hdfs: self.hdfs.clone(),
            footers: self.footers.clone(),
            path: format!("/{}", file.object_meta.location.as_ref()),
            file,
            metadata_size_hint,
            metrics,
            open: None,
            meta: None,
            ahead: None,
        }))
    }
}

struct HdfsFileReader {
    hdfs: HdfsParquet,
    footers: Arc<FileMetadataCache>,
    /// The absolute HDFS path.
    path: String,
    file: PartitionedFile,
    metadata_size_hint: Option<usize>,
    metrics: ParquetFileMetrics,
    /// Opened on the first data read.
    open: Option<Arc<FileReader>>,
    /// The footer, once read.
    meta: Option<Arc<ParquetMetaData>>,
    /// The ranges being read ahead, and the read.
    ahead: Option<(Vec<Range<u64>>, Fetch)>,
}

/// A read of some ranges in the background.
type Fetch = JoinHandle<ParquetResult<Vec<Bytes>>>;

impl Drop for HdfsFileReader {
    fn drop(&mut self) {
        if let Some((_, read)) = self.ahead.take() {
            read.abort();
        }
    }
}

impl HdfsFileReader {
    fn error(&self, doing: &str, e: impl std::fmt::Display) -> ParquetError {
        ParquetError::General(format!("{doing} hdfs file {}: {e}", self.path))
    }

    /// The open file, checked to be the one that was listed (same length).
    async fn opened(&mut self) -> ParquetResult<Arc<FileReader>> {
        if let Some(r) = &self.open {
            return Ok(r.clone());
        }
        let r = self
            .hdfs
            .client
            .read(&self.path)
            .await
            .map_err(|e| self.error("opening", e))?;
        let listed = self.file.object_meta.size;
        if r.file_length() as u64 != listed {
            return Err(self.error(
                "reading",
                format!(
                    "it is {} bytes long now, {listed} when the table was listed: it was \
                     replaced or changed during the query; run it again",
                    r.file_length()
                ),
            ));
        }
        let r = Arc::new(r);
        self.open = Some(r.clone());
        Ok(r)
    }

    /// The file's footer, from the cache unless the file is new or changed.
    async fn footer(
        &mut self,
        options: Option<&ArrowReaderOptions>,
    ) -> ParquetResult<Arc<ParquetMetaData>> {
        let meta = &self.file.object_meta;
        let got = DFParquetMetadata::new(self.hdfs.store.as_ref(), meta)
            .with_file_metadata_cache(Some(self.footers.clone()))
            .with_metadata_size_hint(self.metadata_size_hint)
            .with_page_index_policy(options.map(|o| o.column_index_policy()))
            .fetch_metadata()
            .await
            .map_err(|e| self.error("reading the Parquet footer of", e))?;
        self.meta = Some(got.clone());
        Ok(got)
    }

    async fn read(&mut self, range: Range<u64>) -> ParquetResult<Bytes> {
        let path = self.path.clone();
        let r = self.opened().await?;
        read_range(&r, &path, range).await
    }

    /// The same columns' chunks in the next row group this scan reads, when `ranges` are
    /// exactly some columns' chunks of one row group.
    fn next_chunks(&self, ranges: &[Range<u64>]) -> Option<Vec<Range<u64>>> {
        let meta = self.meta.as_ref()?;
        let groups = meta.row_groups();
        let first = ranges.first()?;
        let rg = groups
            .iter()
            .position(|g| (0..g.num_columns()).any(|c| chunk(g, c).as_ref() == Some(first)))?;
        let cols = ranges
            .iter()
            .map(|r| {
                (0..groups[rg].num_columns()).find(|c| chunk(&groups[rg], *c).as_ref() == Some(r))
            })
            .collect::<Option<Vec<usize>>>()?;
        let next = groups.get(rg + 1)?;
        let start = chunk(next, 0)?.start;
        if let Some(range) = &self.file.range
            && !(range.start..range.end).contains(&i64::try_from(start).ok()?)
        {
            return None;
        }
        cols.iter().map(|c| chunk(next, *c)).collect()
    }

    async fn ranges(&mut self, ranges: Vec<Range<u64>>) -> ParquetResult<Vec<Bytes>> {
        let path = self.path.clone();
        let r = self.opened().await?;
        let got = match self.ahead.take() {
            Some((want, read)) if want == ranges => match read.await {
                Ok(got) => got?,
                Err(e) => return Err(self.error("reading ahead in", e)),
            },
            other => {
                if let Some((_, read)) = other {
                    read.abort();
                }
                fetch(r.clone(), path.clone(), ranges.clone()).await?
            }
        };
        if self.meta.is_none() {
            // A reader DataFusion made for decoding only (after another read the footer, e.g.
            // for bloom filters) has not seen it: the cache has. Without it, no read-ahead.
            let _ = self.footer(None).await;
        }
        if let Some(next) = self.next_chunks(&ranges) {
            self.ahead = Some((next.clone(), tokio::spawn(fetch(r, path, next))));
        }
        Ok(got)
    }
}

/// Column `c`'s chunk in row group `g`; `None` when its offsets are not a byte range.
fn chunk(g: &RowGroupMetaData, c: usize) -> Option<Range<u64>> {
    let col = g.columns().get(c)?;
    let start = col
        .dictionary_page_offset()
        .unwrap_or_else(|| col.data_page_offset());
    let start = u64::try_from(start).ok()?;
    let len = u64::try_from(col.compressed_size()).ok()?;
    Some(start..start.checked_add(len)?)
}

/// `ranges` of the open file `r`, nearby ones read together.
async fn fetch(
    r: Arc<FileReader>,
    path: String,
    ranges: Vec<Range<u64>>,
) -> ParquetResult<Vec<Bytes>> {
    object_store::coalesce_ranges(
        &ranges,
        |range| read_range(&r, &path, range),
        object_store::OBJECT_STORE_COALESCE_DEFAULT,
    )
    .await
}

/// `range` of the open file `r`; an error, never a panic, for a range past its end.
async fn read_range(r: &FileReader, path: &str, range: Range<u64>) -> ParquetResult<Bytes> {
    let len = r.file_length() as u64;
    if range.start > range.end || range.end > len {
        return Err(ParquetError::General(format!(
            "reading hdfs file {path}: bytes {}..{} asked for, the file has {len}: it is \
             truncated or not Parquet",
            range.start, range.end
        )));
    }
    let (start, n) = (
        usize::try_from(range.start).unwrap_or(usize::MAX),
        usize::try_from(range.end - range.start).unwrap_or(usize::MAX),
    );
    r.read_range(start, n)
        .await
        .map_err(|e| ParquetError::General(format!("reading hdfs file {path}: {e}")))
}

impl AsyncFileReader for HdfsFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, ParquetResult<Bytes>> {
        self.metrics
            .bytes_scanned
            .add(usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(usize::MAX));
        self.read(range).boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, ParquetResult<Vec<Bytes>>> {
        let total: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        self.metrics
            .bytes_scanned
            .add(usize::try_from(total).unwrap_or(usize::MAX));
        self.ranges(ranges).boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, ParquetResult<Arc<ParquetMetaData>>> {
        self.footer(options).boxed()
    }
}
