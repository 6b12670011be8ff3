//! Helpers shared by the integration tests.

use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;

/// A name no other test in this process (or a parallel process) uses.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}_{}_{}_{n}",
        std::process::id(),
        nanos() % 1_000_000
    )
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Rows as sorted display strings, for order-insensitive comparison.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = rows(batches);
    rows.sort();
    rows
}

/// Rows as display strings, in order.
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches)
        .map(|t| t.to_string())
        .unwrap_or_default();
    text.lines()
        .skip(3)
        .filter(|l| l.starts_with('|'))
        .map(|l| l.to_string())
        .collect()
}

/// Rows as `a|b|c`: the cells of [`rows`] without padding (a NULL is an empty cell).
pub fn compact_rows(batches: &[RecordBatch]) -> Vec<String> {
    rows(batches)
        .iter()
        .map(|r| {
            r.trim_matches(|c| c == '|' || c == ' ')
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// The ids (as text, ascending) `SELECT id FROM {table} WHERE {cond}` gives through dataknobs
/// with pushdown on or off.
pub async fn ids_where(
    engine: &dataknobs::Engine,
    table: &str,
    cond: &str,
    pushdown: bool,
) -> Vec<String> {
    engine
        .execute(&format!("SET dataknobs.pushdown = {pushdown}"))
        .await
        .expect("set pushdown");
    let b = engine
        .execute(&format!("SELECT id FROM {table} WHERE {cond} ORDER BY id"))
        .await
        .unwrap_or_else(|e| panic!("{table} WHERE {cond} (pushdown {pushdown}): {e}"));
    rows(&b)
        .iter()
        .map(|r| r.trim_matches(|c| c == '|' || c == ' ').to_string())
        .collect()
}

/// Each `(condition, native condition)` selects, from every table in `tables` with pushdown
/// on and off, the ids PostgreSQL selects natively from `native_table` (its `id` column is an
/// int); panics listing every difference. Leaves pushdown on.
pub async fn same_ids_as_postgresql(
    engine: &dataknobs::Engine,
    client: &tokio_postgres::Client,
    native_table: &str,
    tables: &[&str],
    cases: &[(&str, &str)],
) {
    let mut problems = Vec::new();
    for (cond, native_cond) in cases {
        let want: Vec<String> = client
            .query(
                &format!("SELECT id FROM {native_table} WHERE {native_cond} ORDER BY id"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("native WHERE {native_cond}: {e}"))
            .iter()
            .map(|r| r.get::<_, i32>(0).to_string())
            .collect();
        for table in tables {
            for pushdown in [true, false] {
                let got = ids_where(engine, table, cond, pushdown).await;
                if got != want {
                    problems.push(format!(
                        "{table} WHERE {cond} (pushdown {pushdown}; natively {native_cond}): \
                         {got:?}, PostgreSQL {want:?}"
                    ));
                }
            }
        }
    }
    engine
        .execute("SET dataknobs.pushdown = true")
        .await
        .expect("set pushdown");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One raw HTTP/1.0 request to a search node at `base` (`http://host:port`), for fixtures
/// dataknobs does not make: the status and the body. NDJSON for `_bulk` paths, else JSON.
pub async fn raw_http(base: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut sock = tokio::net::TcpStream::connect(&host)
        .await
        .unwrap_or_else(|e| panic!("no search node at {base} ({e}); run scripts/services.sh"));
    let content_type = if path.contains("_bulk") {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw).await.expect("read reply");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// `batch` as the bytes of a Parquet file written with `props`.
pub fn parquet_of(batch: &RecordBatch, props: Option<WriterProperties>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), props).expect("parquet writer");
    w.write(batch).expect("write parquet");
    w.close().expect("close parquet");
    out
}
