//! The record API on a JSON / NDJSON file: 100k creates (batches of 1000) then searches with
//! two filters (age > x AND city = y). Prints JSON lines; benches/file_records.sh runs the
//! Python seed (`dataknobs-data`, its FileDatabase) on the same workload and prints ratios.

use std::time::Instant;

use dataknobs::backends::file::{FileDatabase, Format};
use dataknobs::{Database, Query, Record};

const BATCH: usize = 1000;
const CITIES: [&str; 8] = [
    "Paris", "Oslo", "Lima", "Quito", "Rome", "Kyiv", "Baku", "Doha",
];

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let records: usize = if full { 100_000 } else { 2_000 };
    let searches: usize = if full {
        std::env::var("SEARCHES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000)
    } else {
        10
    };
    let dir = tempfile::tempdir().expect("temp dir");
    for format in [Format::Json, Format::NdJson] {
        let path = dir.path().join(format!("people.{}", format.extension()));
        let db = FileDatabase::open(path, Some(format), None).expect("open");
        let start = Instant::now();
        for b in 0..records / BATCH {
            let batch: Vec<Record> = (0..BATCH)
                .map(|i| {
                    let n = b * BATCH + i;
                    Record::new()
                        .with("name", format!("person {n}"))
                        .with("age", (n % 90) as i64)
                        .with("city", CITIES[n % CITIES.len()])
                })
                .collect();
            db.batch_create(batch).await.expect("create");
        }
        let create_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut found = 0usize;
        for i in 0..searches {
            let q = Query::new()
                .try_filter("age", ">", (i % 80) as i64)
                .expect("filter")
                .try_filter("city", "=", CITIES[i % CITIES.len()])
                .expect("filter");
            found += db.search(&q).await.expect("search").len();
        }
        let search_s = start.elapsed().as_secs_f64();
        assert!(found > 0);
        println!(
            "{{\"engine\":\"dataknobs\",\"format\":\"{format}\",\"creates_per_s\":{:.0},\"search_ms\":{:.3}}}",
            records as f64 / create_s,
            search_s * 1000.0 / searches as f64
        );
    }
}
