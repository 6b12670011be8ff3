//! Helpers shared by the integration tests.

use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

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
