//! SQL logic tests: every `tests/slt/*.slt` file, run against an [`Engine`] whose default
//! backend is the backend under test.
//!
//! The `.slt` files use unqualified table names, so the same files serve every backend: a
//! backend's test module calls [`run_all`] (through `backend_suite!`) with a closure that builds
//! an engine whose default backend is that backend (memory: [`Engine::new`]). Each file runs on a fresh engine. Every
//! record of every file runs (a failure does not stop the file); the test fails at the end with
//! the list of failures as `file:line` and message.
//!
//! Rendering of results (what the expected lines in the files are compared with):
//! - `NULL` for null, `(empty)` for the empty string, `true`/`false` for booleans;
//! - floats: `f64` rounded to 12 significant digits and printed in Rust's shortest form (`2`,
//!   `0.3`, `1.5`), `f32` in its own shortest form, `NaN`, `Infinity`, `-Infinity`;
//! - everything else as Arrow/DataFusion displays it (decimals keep their scale: `12.50`;
//!   timestamps `2024-01-02T03:04:05`; binary as lower-case hex).
//!
//! Column types: `I` integers, `R` floats and decimals, `T` everything else. Column types are
//! checked (`query IT` must match the result's columns).
//!
//! Statements (CREATE/INSERT/DELETE/UPDATE/DROP/SET…) report `StatementComplete(count)`, so
//! `statement count N` checks the affected row count.
//!
//! Every `statement error` / `query error` names the error it expects (a regex for the
//! meaningful part of the message, covering each backend's wording): a file with a bare one,
//! which would pass on any error, is refused with a panic naming the file and line.

use std::future::Future;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use dataknobs::Engine;
use sqllogictest::{
    DBOutput, DefaultColumnType, ExpectedError, QueryExpect, Record, Runner, StatementExpect,
};

/// The label every engine gets, so files can say `skipif dataknobs` / `onlyif dataknobs`.
pub const ENGINE_LABEL: &str = "dataknobs";

/// An [`Engine`] as a sqllogictest database.
pub struct SltEngine {
    engine: Engine,
    /// The backend under test (`memory`, `postgres`, …): a label for `skipif`/`onlyif`.
    backend: String,
}

impl SltEngine {
    pub fn new(engine: Engine, backend: impl Into<String>) -> Self {
        Self {
            engine,
            backend: backend.into(),
        }
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for SltEngine {
    type Error = dataknobs::Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, dataknobs::Error> {
        // What `Engine::execute` does, keeping the plan's schema so an empty result still has
        // column types.
        let df = self.engine.sql(sql).await?;
        let schema = df.schema().as_arrow().clone();
        let batches = df.collect().await?;
        self.engine.sync().await?;
        Ok(to_output(sql, &schema, &batches))
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        &self.backend
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await
    }
}

/// The leading keyword of a statement (after whitespace, comments and opening parentheses),
/// upper-cased.
fn first_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map(|(_, after)| after).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map(|(_, after)| after).unwrap_or("");
        } else {
            break;
        }
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

const STATEMENT_KEYWORDS: &[&str] = &[
    "CREATE", "INSERT", "DELETE", "UPDATE", "DROP", "SET", "ALTER", "TRUNCATE",
];

fn to_output(sql: &str, schema: &Schema, batches: &[RecordBatch]) -> DBOutput<DefaultColumnType> {
    if STATEMENT_KEYWORDS.contains(&first_keyword(sql).as_str())
        && let Some(count) = statement_count(schema, batches)
    {
        return DBOutput::StatementComplete(count);
    }
    let types = schema
        .fields()
        .iter()
        .map(|f| column_type(f.data_type()))
        .collect();
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<String>> = batch
            .columns()
            .iter()
            .map(|c| render_column(c.as_ref()))
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[r].clone()).collect());
        }
    }
    DBOutput::Rows { types, rows }
}

/// The row count of a statement's result: a single UInt64 column named `count` (DataFusion's
/// and dataknobs' DML/DDL result), or no columns at all (DDL DataFusion answers with nothing).
fn statement_count(schema: &Schema, batches: &[RecordBatch]) -> Option<u64> {
    if schema.fields().is_empty() {
        return Some(0);
    }
    if schema.fields().len() != 1 || !is_count_field(schema.field(0)) {
        return None;
    }
    let mut total = 0;
    for b in batches {
        let counts = b
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>();
        total += counts.iter().flatten().sum::<u64>();
    }
    Some(total)
}

fn is_count_field(f: &datafusion::arrow::datatypes::Field) -> bool {
    f.name() == "count" && f.data_type() == &DataType::UInt64
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => DefaultColumnType::FloatingPoint,
        DataType::Dictionary(_, value) => column_type(value),
        _ => DefaultColumnType::Text,
    }
}

/// Every cell of a column as text (see the module docs for the format).
fn render_column(array: &dyn Array) -> Vec<String> {
    let n = array.len();
    match array.data_type() {
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        "NULL".into()
                    } else {
                        format_f64(a.value(i))
                    }
                })
                .collect()
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            (0..n)
                .map(|i| {
                    if a.is_null(i) {
                        "NULL".into()
                    } else {
                        format_f32(a.value(i))
                    }
                })
                .collect()
        }
        DataType::Dictionary(..) => {
            let values =
                datafusion::arrow::compute::cast(array, dictionary_value_type(array.data_type()));
            match values {
                Ok(v) => render_column(v.as_ref()),
                Err(e) => vec![format!("<cannot display: {e}>"); n],
            }
        }
        _ => {
            let options = FormatOptions::default().with_null("NULL");
            match ArrayFormatter::try_new(array, &options) {
                Ok(f) => (0..n)
                    .map(|i| {
                        if array.is_null(i) {
                            return "NULL".to_string();
                        }
                        let s = f.value(i).to_string();
                        if s.is_empty() {
                            "(empty)".to_string()
                        } else {
                            s
                        }
                    })
                    .collect(),
                Err(e) => vec![format!("<cannot display: {e}>"); n],
            }
        }
    }
}

fn dictionary_value_type(t: &DataType) -> &DataType {
    match t {
        DataType::Dictionary(_, v) => v,
        other => other,
    }
}

fn format_special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else if v == 0.0 {
        // -0 is shown as such: a backend that turns 0 into -0 (or back) must be caught.
        Some(if v.is_sign_negative() { "-0" } else { "0" }.into())
    } else {
        None
    }
}

/// `f64` rounded to 12 significant digits, so `0.1 + 0.2` shows as `0.3` on every platform and
/// backend (a backend that sums in another order may differ in the last bits).
fn format_f64(v: f64) -> String {
    if let Some(s) = format_special(v) {
        return s;
    }
    let rounded: f64 = format!("{v:.11e}").parse().unwrap_or(v);
    if rounded.abs() >= 1e16 || rounded.abs() < 1e-6 {
        format!("{rounded:e}")
    } else {
        format!("{rounded}")
    }
}

fn format_f32(v: f32) -> String {
    if let Some(s) = format_special(v as f64) {
        return s;
    }
    format!("{v}")
}

/// The `.slt` files, sorted by name.
pub fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}

/// The records (as `file:line: kind`) that expect an error without saying which: a bare
/// `statement error` or `query error` passes on any error (a typo, a missing table), so every
/// error record must name the message it expects (an inline regex or a `----` block).
fn bare_error_records(records: &[Record<DefaultColumnType>]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Statement {
                loc,
                expected: StatementExpect::Error(ExpectedError::Empty),
                ..
            } => Some(format!("{loc}: statement error")),
            Record::Query {
                loc,
                expected: QueryExpect::Error(ExpectedError::Empty),
                ..
            } => Some(format!("{loc}: query error")),
            _ => None,
        })
        .collect()
}

/// Runs one file on the engine `make_engine` builds; returns its failures (`file:line` and
/// message each). Every record runs, even after a failure.
pub async fn run_file<F, Fut>(backend: &str, path: &Path, make_engine: F) -> Vec<String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Engine>,
{
    let records = match sqllogictest::parse_file::<DefaultColumnType>(path) {
        Ok(r) => r,
        Err(e) => return vec![format!("{}: cannot parse: {e}", path.display())],
    };
    let bare = bare_error_records(&records);
    assert!(
        bare.is_empty(),
        "{}: `statement error` / `query error` without the expected message (a regex for the \
         error the record is about; a bare one accepts any error):\n{}",
        path.display(),
        bare.join("\n")
    );
    // The runner makes a connection when the first record runs, and one more for each named
    // `connection`: each is a fresh engine (a separate session).
    let mut runner = Runner::new(|| {
        let engine = make_engine();
        let backend = backend.to_string();
        async move { Ok::<_, dataknobs::Error>(SltEngine::new(engine.await, backend)) }
    });
    runner.add_label(ENGINE_LABEL);
    runner.add_label(backend);
    runner.with_column_validator(sqllogictest::strict_column_validator);
    let mut failures = Vec::new();
    for record in records {
        if let Record::Halt { .. } = record {
            break;
        }
        if let Err(e) = runner.run_async(record).await {
            failures.push(format!("{}: {}", e.location(), e.kind().display(false)));
        }
    }
    runner.shutdown_async().await;
    failures
}

/// Runs every `.slt` file, each on a fresh engine from `make_engine` (whose default backend is
/// the backend under test, named `backend` for `skipif`/`onlyif`), and panics at the end listing
/// every failure.
pub async fn run_all<F, Fut>(backend: &str, make_engine: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Engine>,
{
    let mut failures = Vec::new();
    let files = slt_files();
    for path in &files {
        let f = run_file(backend, path, &make_engine).await;
        eprintln!(
            "slt [{backend}] {}: {}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            if f.is_empty() {
                "ok".to_string()
            } else {
                format!("{} failure(s)", f.len())
            }
        );
        failures.extend(f);
    }
    if !failures.is_empty() {
        panic!(
            "{} sqllogictest failure(s) on backend '{backend}' in {} file(s):\n\n{}",
            failures.len(),
            files.len(),
            failures.join("\n")
        );
    }
}

/// The files on the memory backend with filter/limit pushdown off: the engine evaluates every
/// WHERE itself, so a difference from `memory::slt` (pushdown on) is a pushdown bug.
#[tokio::test]
async fn slt_memory_no_pushdown() {
    run_all("memory", || async {
        let engine = Engine::new();
        engine.set_pushdown(false);
        engine
    })
    .await;
}

#[test]
fn a_bare_error_record_is_refused() {
    let script = "statement ok\nCREATE TABLE t (a INT)\n\n\
                  statement error\nSELEC 1\n\n\
                  statement error (?i)syntax\nSELEC 1\n\n\
                  query error\nSELECT nope FROM t\n\n\
                  query error nope\nSELECT nope FROM t\n\n\
                  statement error\nSELECT 'unterminated\n----\nthe whole message\n\n";
    let records =
        sqllogictest::parse_with_name::<DefaultColumnType>(script, "x.slt").expect("parse");
    assert_eq!(
        bare_error_records(&records),
        ["x.slt:4: statement error", "x.slt:10: query error"]
    );
}

#[test]
fn renders_floats_stably() {
    assert_eq!(format_f64(0.1 + 0.2), "0.3");
    assert_eq!(format_f64(2.0), "2");
    assert_eq!(format_f64(-0.0), "-0");
    assert_eq!(format_f64(0.0), "0");
    assert_eq!(format_f64(1.5e-7), "1.5e-7");
    assert_eq!(format_f64(0.000015), "0.000015");
    assert_eq!(format_f64(1e100), "1e100");
    assert_eq!(format_f64(-123456.5), "-123456.5");
    assert_eq!(format_f64(f64::NAN), "NaN");
    assert_eq!(format_f32(1.1), "1.1");
    assert_eq!(first_keyword("  -- x\n /* y */ ( insert into t"), "INSERT");
}
