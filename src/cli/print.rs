//! Prints results as they stream: CSV, TSV, JSON and NDJSON with Arrow's writers, Markdown
//! and vertical blocks row by row, and the aligned table from at most `max_rows` rows (the
//! rest are counted, never held). Memory stays at one batch whatever the result's size.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use super::args::Format;
use crate::error::{Error, Result};

/// What was printed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Printed {
    /// Rows in the result.
    pub rows: u64,
    /// Rows shown (fewer than `rows` when the table format's cap cut it).
    pub shown: u64,
    /// The reader went away (`| head`): nothing more should be printed.
    pub broken: bool,
}

/// Prints a result stream in `format`; the table format shows at most `max_rows` rows (0:
/// all). `progress` counts rows as they arrive (for a spinner).
pub async fn print_stream(
    out: &mut dyn Write,
    stream: SendableRecordBatchStream,
    format: Format,
    max_rows: usize,
    progress: &AtomicU64,
) -> Result<Printed> {
    let mut printed = Printed::default();
    match write_stream(out, stream, format, max_rows, progress, &mut printed).await {
        Err(e) if is_broken_pipe(&e) => {
            printed.broken = true;
            Ok(printed)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(printed),
    }
}

/// Did writing fail because the reader closed the pipe?
pub fn is_broken_pipe(e: &Error) -> bool {
    use std::error::Error as _;
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::BrokenPipe;
        }
        src = s.source();
    }
    e.to_string().contains("Broken pipe")
}

/// A column title for users: DataFusion names an unnamed expression after its plan
/// (`Int64(42)`, `count(Int64(1))`, `Utf8("a")`); the literal's own text reads better (`42`,
/// `count(1)`, `'a'`), as in psql and duckdb.
pub fn display_name(name: &str) -> String {
    static LITERAL: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"\b(?:U?Int(?:8|16|32|64)|Float(?:16|32|64)|Decimal(?:32|64|128|256)\(\d+,\s*-?\d+\)|Boolean)\(([^()"]*)\)|\b(?:Utf8View|LargeUtf8|Utf8)\("((?:[^"\\]|\\.)*)"\)"#,
        )
        .ok()
    });
    match LITERAL.as_ref() {
        Some(re) if name.contains('(') => re
            .replace_all(name, |c: &regex::Captures<'_>| match (c.get(1), c.get(2)) {
                (Some(v), _) => v.as_str().to_string(),
                (_, Some(s)) => format!("'{}'", s.as_str().replace('\'', "''")),
                _ => c[0].to_string(),
            })
            .into_owned(),
        _ => name.to_string(),
    }
}

/// The schema with display names (see [`display_name`]).
pub fn display_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| {
                Arc::new(Field::new(
                    display_name(f.name()),
                    f.data_type().clone(),
                    f.is_nullable(),
                ))
            })
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

fn io(e: std::io::Error) -> Error {
    Error::io("writing output", e)
}

fn cells(options: &FormatOptions<'_>, columns: &[ArrayRef]) -> Result<Vec<Vec<String>>> {
    let formatters = columns
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rows = columns.first().map_or(0, |c| c.len());
    Ok((0..rows)
        .map(|r| formatters.iter().map(|f| f.value(r).to_string()).collect())
        .collect())
}

async fn write_stream(
    out: &mut dyn Write,
    mut stream: SendableRecordBatchStream,
    format: Format,
    max_rows: usize,
    progress: &AtomicU64,
    printed: &mut Printed,
) -> Result<()> {
    let schema = display_schema(&stream.schema());
    if schema.fields().is_empty() {
        // DDL, SET, CREATE VIEW: nothing to show, but the plan still runs to its end.
        while let Some(b) = stream.next().await {
            b?;
        }
        return Ok(());
    }
    let rename = |b: RecordBatch| -> Result<RecordBatch> {
        progress.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
        Ok(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?)
    };
    let text = FormatOptions::default().with_null("");
    let explain = format == Format::Table && is_explain(&schema);
    match format {
        Format::Table => {
            let mut shown: Vec<RecordBatch> = Vec::new();
            while let Some(b) = stream.next().await {
                let b = rename(b?)?;
                printed.rows += b.num_rows() as u64;
                let room = if max_rows == 0 {
                    b.num_rows()
                } else {
                    (max_rows as u64).saturating_sub(printed.shown) as usize
                };
                let take = room.min(b.num_rows());
                if take > 0 {
                    let b = b.slice(0, take);
                    shown.push(if explain { wrap_plans(&b)? } else { b });
                    printed.shown += take as u64;
                }
            }
            if shown.is_empty() {
                shown.push(RecordBatch::new_empty(schema.clone()));
            }
            let table = pretty_format_batches(&shown)?;
            writeln!(out, "{table}").map_err(io)?;
        }
        Format::Csv | Format::Tsv => {
            let delimiter = if format == Format::Tsv { b'\t' } else { b',' };
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .with_delimiter(delimiter)
                .build(&mut *out);
            let mut any = false;
            while let Some(b) = stream.next().await {
                let b = rename(b?)?;
                printed.rows += b.num_rows() as u64;
                w.write(&b)?;
                any = true;
            }
            if !any {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
        }
        Format::Json | Format::Ndjson => {
            let builder = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .with_encoder_factory(Arc::new(crate::record::FloatsAsText));
            if format == Format::Json {
                let mut w =
                    builder.build::<_, datafusion::arrow::json::writer::JsonArray>(&mut *out);
                while let Some(b) = stream.next().await {
                    let b = rename(b?)?;
                    printed.rows += b.num_rows() as u64;
                    w.write(&b)?;
                }
                w.finish()?;
                drop(w);
                writeln!(out).map_err(io)?;
            } else {
                let mut w =
                    builder.build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut *out);
                while let Some(b) = stream.next().await {
                    let b = rename(b?)?;
                    printed.rows += b.num_rows() as u64;
                    w.write(&b)?;
                }
                w.finish()?;
            }
        }
        Format::Markdown => {
            let esc = |s: &str| s.replace('|', "\\|").replace('\n', "<br>");
            let names: Vec<String> = schema.fields().iter().map(|f| esc(f.name())).collect();
            writeln!(out, "| {} |", names.join(" | ")).map_err(io)?;
            let rule: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| {
                    if f.data_type().is_numeric() {
                        "---:".to_string()
                    } else {
                        "---".to_string()
                    }
                })
                .collect();
            writeln!(out, "|{}|", rule.join("|")).map_err(io)?;
            while let Some(b) = stream.next().await {
                let b = rename(b?)?;
                printed.rows += b.num_rows() as u64;
                for row in cells(&text, b.columns())? {
                    let row: Vec<String> = row.iter().map(|c| esc(c)).collect();
                    writeln!(out, "| {} |", row.join(" | ")).map_err(io)?;
                }
            }
        }
        Format::Vertical => {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
            while let Some(b) = stream.next().await {
                let b = rename(b?)?;
                for row in cells(&text, b.columns())? {
                    printed.rows += 1;
                    writeln!(
                        out,
                        "-[ RECORD {} ]{}",
                        printed.rows,
                        "-".repeat(width.saturating_sub(8).max(4))
                    )
                    .map_err(io)?;
                    for (n, v) in names.iter().zip(row) {
                        writeln!(out, "{n:<width$} | {v}").map_err(io)?;
                    }
                }
            }
            if printed.rows == 0 {
                writeln!(out, "(0 rows)").map_err(io)?;
            }
        }
    }
    if format != Format::Table {
        printed.shown = printed.rows;
    }
    out.flush().map_err(io)
}

/// Width of an EXPLAIN plan line in the table format.
const PLAN_WIDTH: usize = 110;

/// EXPLAIN's result: `plan_type`, `plan`.
fn is_explain(schema: &Schema) -> bool {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names == ["plan_type", "plan"]
}

/// The batch with each plan line folded at [`PLAN_WIDTH`] (scan nodes that say what they
/// pushed and the request they send run to hundreds of characters).
fn wrap_plans(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::StringArray;
    let options = FormatOptions::default().with_null("");
    let plans: Vec<String> = cells(&options, &batch.columns()[1..2])?
        .into_iter()
        .map(|r| {
            r[0].lines()
                .map(|l| fold_line(l, PLAN_WIDTH))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let column: ArrayRef = Arc::new(StringArray::from(plans));
    let schema = Arc::new(Schema::new(vec![
        batch.schema().field(0).clone(),
        Field::new("plan", datafusion::arrow::datatypes::DataType::Utf8, true),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![batch.column(0).clone(), column],
    )?)
}

/// One line folded at `width` characters, at a space or after a comma where it can, each
/// continuation indented four spaces deeper than the line.
pub fn fold_line(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let indent = line.len() - line.trim_start().len();
    let pad = " ".repeat(indent + 4);
    let mut out = String::new();
    let mut rest: &str = line;
    let mut first = true;
    while !rest.is_empty() {
        let room = if first {
            width
        } else {
            width.saturating_sub(pad.len()).max(20)
        };
        let chars: Vec<(usize, char)> = rest.char_indices().collect();
        if chars.len() <= room {
            if !first {
                out.push('\n');
                out.push_str(&pad);
            }
            out.push_str(rest);
            break;
        }
        let limit = chars[room].0;
        // The last space or comma before the limit (not in the indentation).
        let cut = rest[..limit]
            .rfind([' ', ','])
            .filter(|&i| i > indent + 8)
            .map(|i| i + 1)
            .unwrap_or(limit);
        if !first {
            out.push('\n');
            out.push_str(&pad);
        }
        out.push_str(rest[..cut].trim_end());
        rest = rest[cut..].trim_start();
        first = false;
    }
    out
}

/// Collapses an error message to one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The rows of a small result, as text cells (for `\d` and friends).
pub fn text_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null("");
    let mut out = Vec::new();
    for b in batches {
        out.extend(cells(&options, b.columns())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::display_name;

    #[test]
    fn long_plan_lines_fold_at_spaces_and_commas() {
        let line = format!("  DataknobsScan: {}", "pushed=[a > 1], ".repeat(20));
        let folded = super::fold_line(&line, 60);
        assert!(folded.lines().count() > 1, "{folded}");
        for l in folded.lines() {
            assert!(l.chars().count() <= 60, "{l}");
        }
        assert!(
            folded.lines().skip(1).all(|l| l.starts_with("      ")),
            "{folded}"
        );
        assert_eq!(
            folded.split_whitespace().collect::<String>(),
            line.split_whitespace().collect::<String>()
        );
        assert_eq!(super::fold_line("short", 60), "short");
    }

    #[test]
    fn literal_column_names_read_as_written() {
        assert_eq!(display_name("Int64(42)"), "42");
        assert_eq!(display_name("count(Int64(1))"), "count(1)");
        assert_eq!(display_name("Utf8(\"abc\")"), "'abc'");
        assert_eq!(display_name("Utf8(\"it's\")"), "'it''s'");
        assert_eq!(display_name("Int64(1) + Int64(2)"), "1 + 2");
        assert_eq!(display_name("Decimal128(3, 2)(1.50)"), "1.50");
        assert_eq!(display_name("price"), "price");
        assert_eq!(display_name("Int64Col"), "Int64Col");
    }
}
