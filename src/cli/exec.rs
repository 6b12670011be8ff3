//! Runs SQL text: splits it into statements and runs each in order, printing results.

use std::io::Write;
use std::time::Instant;

use futures::TryStreamExt;

use super::args::Format;
use super::print;
use super::split::split_statements;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Runs every statement of `sql`, printing each result to `out`. Stops at the first error.
/// `timing` adds a row count and elapsed time after each result (the REPL).
pub async fn run_script(
    engine: &Engine,
    sql: &str,
    format: Format,
    out: &mut dyn Write,
    timing: bool,
) -> Result<()> {
    for stmt in split_statements(sql) {
        let start = Instant::now();
        let df = engine.sql(&stmt).await?;
        let schema = df.schema().as_arrow().clone();
        let batches: Vec<_> = df
            .execute_stream()
            .await?
            .try_collect()
            .await
            .map_err(Error::from)?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        print::print_batches(out, &schema, &batches, format)?;
        engine.sync().await?;
        if timing {
            let _ = writeln!(
                out,
                "{rows} row(s) in {:.3}s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
