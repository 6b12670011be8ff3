//! DELETE and UPDATE on backend tables against PostgreSQL itself as the reference.
//!
//! Every case in [`CASES`] runs its setup and its statement twice: through dataknobs on the
//! backend under test, and natively on PostgreSQL in a fresh schema. The count dataknobs
//! reports must equal the rows PostgreSQL says it affected, and the rows left in `t` must be
//! the same (compared as text, NULL as "NULL"). Each backend's test runs every case on a
//! fresh engine (a fresh directory, a fresh PostgreSQL schema) and lists all differing cases
//! in one failure message.
//!
//! The behaviour tests check that planning a write does not perform it: `EXPLAIN DELETE`,
//! `EXPLAIN UPDATE`, `EXPLAIN TRUNCATE`, and a physical plan built and dropped without being
//! executed must leave the table as it was; executing the statement then does change it.

use std::future::Future;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::array_value_to_string;
use dataknobs::Engine;
use dataknobs::backends::file::Format;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::common::unique_name;

/// `(name, setup statements, statement under test)`.
type Case = (&'static str, &'static [&'static str], &'static str);

/// `t` holds NULLs in `v` and `w`; `s` holds one id; `s2` holds the same id and a NULL (so
/// `NOT IN (SELECT id FROM s2)` matches nothing, as in PostgreSQL).
const STD: &[&str] = &[
    "CREATE TABLE t (id INT, v INT, w TEXT)",
    "INSERT INTO t (id, v, w) VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 3, 'c'), (4, NULL, 'd'), (5, NULL, NULL)",
    "CREATE TABLE s (id INT)",
    "INSERT INTO s (id) VALUES (2)",
    "CREATE TABLE s2 (id INT)",
    "INSERT INTO s2 (id) VALUES (2), (NULL)",
];

/// [`STD`] with a primary key on `t` (PostgreSQL computes some UPDATEs by key).
const KEYED: &[&str] = &[
    "CREATE TABLE t (id INT PRIMARY KEY, v INT, w TEXT)",
    STD[1],
    STD[2],
    STD[3],
    STD[4],
    STD[5],
];

/// What is compared after each statement (NULLs sort last in both systems).
const ROWS_SQL: &str = "SELECT id, v, w FROM t ORDER BY id, v, w";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // DELETE: conditions the optimizer folds or rewrites before the provider sees them.
    ("delete_in_subquery", STD, "DELETE FROM t WHERE id IN (SELECT id FROM s)"),
    ("delete_in_subquery_with_null", STD, "DELETE FROM t WHERE id IN (SELECT id FROM s2)"),
    ("delete_in_subquery_expr", STD, "DELETE FROM t WHERE id IN (SELECT id + 1 FROM s)"),
    ("delete_one_eq_zero", STD, "DELETE FROM t WHERE 1 = 0"),
    ("delete_false", STD, "DELETE FROM t WHERE false"),
    ("delete_where_null", STD, "DELETE FROM t WHERE NULL"),
    ("delete_eq_null", STD, "DELETE FROM t WHERE v = NULL"),
    ("delete_not_in_subquery", STD, "DELETE FROM t WHERE id NOT IN (SELECT id FROM s)"),
    ("delete_not_in_subquery_with_null", STD, "DELETE FROM t WHERE id NOT IN (SELECT id FROM s2)"),
    ("delete_exists_correlated", STD, "DELETE FROM t WHERE EXISTS (SELECT 1 FROM s WHERE s.id = t.id)"),
    ("delete_not_exists_correlated", STD, "DELETE FROM t WHERE NOT EXISTS (SELECT 1 FROM s WHERE s.id = t.id)"),
    ("delete_gt5_and_false", STD, "DELETE FROM t WHERE v > 5 AND false"),
    ("delete_gt1_and_false", STD, "DELETE FROM t WHERE v > 1 AND false"),
    ("delete_gt1_or_false", STD, "DELETE FROM t WHERE v > 1 OR false"),
    ("delete_and_in_subquery", STD, "DELETE FROM t WHERE v > 1 AND id IN (SELECT id FROM s)"),
    ("delete_in_subquery_or", STD, "DELETE FROM t WHERE id IN (SELECT id FROM s) OR v = 3"),
    ("delete_scalar_subquery_self", STD, "DELETE FROM t WHERE v > (SELECT avg(v) FROM t)"),
    ("delete_scalar_subquery_other", STD, "DELETE FROM t WHERE id = (SELECT max(id) FROM s)"),
    ("delete_is_null", STD, "DELETE FROM t WHERE v IS NULL"),
    ("delete_is_not_null", STD, "DELETE FROM t WHERE v IS NOT NULL"),
    ("delete_not_eq_with_nulls", STD, "DELETE FROM t WHERE NOT (v = 2)"),
    ("delete_in_list_with_null", STD, "DELETE FROM t WHERE v IN (1, NULL)"),
    ("delete_not_in_list_with_null", STD, "DELETE FROM t WHERE v NOT IN (1, NULL)"),
    ("delete_not_in_list", STD, "DELETE FROM t WHERE v NOT IN (1, 2)"),
    ("delete_or_null", STD, "DELETE FROM t WHERE v = 1 OR NULL"),
    ("delete_coalesce", STD, "DELETE FROM t WHERE coalesce(v, 0) = 0"),
    // A repeated expression becomes a common subexpression (`__common_expr_N`) in the plan.
    ("delete_repeated_coalesce", STD, "DELETE FROM t WHERE coalesce(v, 0) = 0 OR coalesce(v, 0) > 2"),
    ("update_repeated_coalesce", STD, "UPDATE t SET w = 'c' WHERE coalesce(v, 0) = 0 OR coalesce(v, 0) > 2"),
    ("delete_text_is_null", STD, "DELETE FROM t WHERE w IS NULL"),
    ("delete_simple", STD, "DELETE FROM t WHERE v > 1"),
    ("delete_no_where", STD, "DELETE FROM t"),
    // UPDATE.
    ("update_in_subquery", STD, "UPDATE t SET v = 10 WHERE id IN (SELECT id FROM s)"),
    ("update_one_eq_zero", STD, "UPDATE t SET v = 10 WHERE 1 = 0"),
    ("update_false", STD, "UPDATE t SET v = 10 WHERE false"),
    ("update_eq_null", STD, "UPDATE t SET v = 10 WHERE v = NULL"),
    ("update_not_in_subquery", STD, "UPDATE t SET v = 10 WHERE id NOT IN (SELECT id FROM s)"),
    ("update_not_in_subquery_with_null", STD, "UPDATE t SET v = 10 WHERE id NOT IN (SELECT id FROM s2)"),
    ("update_exists_correlated", STD, "UPDATE t SET v = 10 WHERE EXISTS (SELECT 1 FROM s WHERE s.id = t.id)"),
    ("update_not_exists_correlated", STD, "UPDATE t SET v = 10 WHERE NOT EXISTS (SELECT 1 FROM s WHERE s.id = t.id)"),
    ("update_gt5_and_false", STD, "UPDATE t SET v = 10 WHERE v > 5 AND false"),
    ("update_and_in_subquery", STD, "UPDATE t SET v = 10 WHERE v > 1 AND id IN (SELECT id FROM s)"),
    ("update_scalar_subquery_self", STD, "UPDATE t SET v = 0 WHERE v > (SELECT avg(v) FROM t)"),
    ("update_not_eq_with_nulls", STD, "UPDATE t SET w = 'z' WHERE NOT (v = 2)"),
    ("update_not_in_list_with_null", STD, "UPDATE t SET v = 0 WHERE v NOT IN (1, NULL)"),
    ("update_is_null", STD, "UPDATE t SET v = 0 WHERE v IS NULL"),
    ("update_expression", STD, "UPDATE t SET v = v * 2 + id WHERE v < 3"),
    ("update_several_columns", STD, "UPDATE t SET v = id * 100, w = 'x' WHERE id >= 4"),
    ("update_set_null", STD, "UPDATE t SET v = NULL, w = NULL WHERE id = 1"),
    ("update_set_scalar_subquery", STD, "UPDATE t SET v = (SELECT max(id) FROM s) WHERE v IS NULL"),
    ("update_no_where", STD, "UPDATE t SET v = 0"),
    ("update_text_concat", STD, "UPDATE t SET w = w || 'x' WHERE id < 3"),
    // With a primary key.
    ("keyed_delete_in_subquery", KEYED, "DELETE FROM t WHERE id IN (SELECT id FROM s)"),
    ("keyed_delete_one_eq_zero", KEYED, "DELETE FROM t WHERE 1 = 0"),
    ("keyed_update_in_subquery", KEYED, "UPDATE t SET v = 10 WHERE id IN (SELECT id FROM s)"),
    ("keyed_update_set_scalar_subquery", KEYED, "UPDATE t SET v = (SELECT max(id) FROM s) WHERE v IS NULL"),
    ("keyed_update_expression", KEYED, "UPDATE t SET v = v * 2 + id, w = upper(w) WHERE v < 3"),
];

/// What one side did: the reported count (or the error), the rows of `t` before and after.
struct Outcome {
    count: Result<String, String>,
    before: Vec<String>,
    after: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// The reference: PostgreSQL itself.

/// A direct connection to the test server.
pub async fn native() -> Client {
    let url = crate::postgres::url();
    let (client, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is not reachable: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Text rows of a native query (NULL as "NULL", columns joined by `|`).
pub async fn native_rows(client: &Client, sql: &str) -> Vec<String> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL refused `{sql}`: {e}"));
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

/// Runs a case on PostgreSQL in a fresh schema (dropped afterwards). A case PostgreSQL
/// refuses is a broken case: panics.
async fn reference(client: &Client, setup: &[&str], statement: &str) -> Outcome {
    let schema = unique_name("dk_dmlref");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{schema}\"; SET search_path TO \"{schema}\""
        ))
        .await
        .expect("reference schema");
    for sql in setup {
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL refused setup `{sql}`: {e}"));
    }
    let before = native_rows(client, ROWS_SQL).await;
    let messages = client
        .simple_query(statement)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL refused `{statement}`: {e}"));
    let count = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(n.to_string()),
            _ => None,
        })
        .expect("command complete");
    let after = native_rows(client, ROWS_SQL).await;
    client
        .batch_execute(&format!(
            "SET search_path TO public; DROP SCHEMA \"{schema}\" CASCADE"
        ))
        .await
        .expect("drop reference schema");
    Outcome {
        count: Ok(count),
        before,
        after,
    }
}

// ---------------------------------------------------------------------------------------
// dataknobs.

fn cell(a: &dyn Array, i: usize) -> String {
    if a.is_null(i) {
        "NULL".to_string()
    } else {
        array_value_to_string(a, i).unwrap_or_else(|e| format!("<{e}>"))
    }
}

/// Rows as text (NULL as "NULL", columns joined by `|`).
fn text_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| cell(c.as_ref(), i))
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out
}

/// The `count` a DML statement returns (one row, one UInt64 column named `count`).
fn dml_count(batches: &[RecordBatch]) -> Result<String, String> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let b = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| "no result row".to_string())?;
    let col = b
        .column_by_name("count")
        .ok_or_else(|| format!("no `count` column in {:?}", b.schema()))?;
    if rows != 1 {
        return Err(format!("{rows} result rows: {:?}", text_rows(batches)));
    }
    Ok(cell(col.as_ref(), 0))
}

async fn engine_rows(engine: &Engine) -> Vec<String> {
    match engine.execute(ROWS_SQL).await {
        Ok(b) => text_rows(&b),
        Err(e) => vec![format!("<reading t failed: {e}>")],
    }
}

/// Runs a case through dataknobs. Err: the setup failed.
async fn through_engine(
    engine: &Engine,
    setup: &[&str],
    statement: &str,
) -> Result<Outcome, String> {
    for sql in setup {
        engine
            .execute(sql)
            .await
            .map_err(|e| format!("setup `{sql}` failed: {e}"))?;
    }
    let before = engine_rows(engine).await;
    let count = match engine.execute(statement).await {
        Ok(b) => dml_count(&b),
        Err(e) => Err(format!("error: {e}")),
    };
    let after = engine_rows(engine).await;
    Ok(Outcome {
        count,
        before,
        after,
    })
}

/// Runs every case on fresh engines from `make` and compares each with PostgreSQL; panics
/// listing every differing case.
async fn run_cases<F, Fut>(backend: &str, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Engine>,
{
    let client = native().await;
    let mut failures = Vec::new();
    for &(name, setup, statement) in CASES {
        let want = reference(&client, setup, statement).await;
        let engine = make().await;
        let got = match through_engine(&engine, setup, statement).await {
            Ok(got) => got,
            Err(e) => {
                eprintln!("[{backend}] {name}: SETUP FAILED");
                failures.push(format!("{name}: `{statement}`\n    {e}"));
                continue;
            }
        };
        let mut problems = Vec::new();
        if got.before != want.before {
            problems.push(format!(
                "rows after setup: expected {:?}, got {:?}",
                want.before, got.before
            ));
        }
        let want_count = want.count.as_ref().expect("reference count");
        match &got.count {
            Ok(n) if n == want_count => {}
            Ok(n) => problems.push(format!("count: expected {want_count}, got {n}")),
            Err(e) if got.after == got.before => problems.push(format!(
                "REFUSED (rows unchanged), expected count {want_count}: {e}"
            )),
            Err(e) => problems.push(format!(
                "ERROR and the rows changed, expected count {want_count}: {e}"
            )),
        }
        if got.after != want.after {
            problems.push(format!(
                "rows: expected {:?}, got {:?}",
                want.after, got.after
            ));
        }
        if problems.is_empty() {
            eprintln!("[{backend}] {name}: ok");
        } else {
            eprintln!("[{backend}] {name}: MISMATCH");
            failures.push(format!(
                "{name}: `{statement}`\n    {}",
                problems.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{backend}: {} of {} DML cases differ from PostgreSQL:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cases() {
    run_cases("memory", || async { Engine::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_json_cases() {
    run_cases("file-json", || {
        crate::file::engine_with_default(Format::Json)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_ndjson_cases() {
    run_cases("file-ndjson", || {
        crate::file::engine_with_default(Format::NdJson)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_csv_cases() {
    run_cases("file-csv", || crate::file::engine_with_default(Format::Csv)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_tsv_cases() {
    run_cases("file-tsv", || crate::file::engine_with_default(Format::Tsv)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_parquet_cases() {
    run_cases("file-parquet", || {
        crate::file::engine_with_default(Format::Parquet)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cases() {
    run_cases("postgres", crate::postgres::engine_in_fresh_schema).await;
}

/// The reference gives PostgreSQL's known answers (so a green case means "as PostgreSQL").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_gives_postgresql_answers() {
    let client = native().await;
    let expected: &[(&str, &str, &[&str])] = &[
        (
            "delete_one_eq_zero",
            "0",
            &["1|1|a", "2|2|b", "3|3|c", "4|NULL|d", "5|NULL|NULL"],
        ),
        (
            "delete_false",
            "0",
            &["1|1|a", "2|2|b", "3|3|c", "4|NULL|d", "5|NULL|NULL"],
        ),
        (
            "delete_eq_null",
            "0",
            &["1|1|a", "2|2|b", "3|3|c", "4|NULL|d", "5|NULL|NULL"],
        ),
        (
            "delete_in_subquery",
            "1",
            &["1|1|a", "3|3|c", "4|NULL|d", "5|NULL|NULL"],
        ),
        ("delete_not_in_subquery", "4", &["2|2|b"]),
        (
            "delete_not_in_subquery_with_null",
            "0",
            &["1|1|a", "2|2|b", "3|3|c", "4|NULL|d", "5|NULL|NULL"],
        ),
        (
            "delete_not_in_list_with_null",
            "0",
            &["1|1|a", "2|2|b", "3|3|c", "4|NULL|d", "5|NULL|NULL"],
        ),
        (
            "delete_in_list_with_null",
            "1",
            &["2|2|b", "3|3|c", "4|NULL|d", "5|NULL|NULL"],
        ),
        (
            "delete_not_eq_with_nulls",
            "2",
            &["2|2|b", "4|NULL|d", "5|NULL|NULL"],
        ),
        (
            "delete_scalar_subquery_self",
            "1",
            &["1|1|a", "2|2|b", "4|NULL|d", "5|NULL|NULL"],
        ),
        ("delete_no_where", "5", &[]),
        (
            "update_one_eq_zero",
            "0",
            &["1|1|a", "2|2|b", "3|3|c", "4|NULL|d", "5|NULL|NULL"],
        ),
        (
            "update_in_subquery",
            "1",
            &["1|1|a", "2|10|b", "3|3|c", "4|NULL|d", "5|NULL|NULL"],
        ),
        (
            "update_expression",
            "2",
            &["1|3|a", "2|6|b", "3|3|c", "4|NULL|d", "5|NULL|NULL"],
        ),
        (
            "update_set_scalar_subquery",
            "2",
            &["1|1|a", "2|2|b", "3|3|c", "4|2|d", "5|2|NULL"],
        ),
    ];
    for &(name, count, rows) in expected {
        let &(_, setup, statement) = CASES
            .iter()
            .find(|c| c.0 == name)
            .unwrap_or_else(|| panic!("no case {name}"));
        let got = reference(&client, setup, statement).await;
        eprintln!(
            "reference {name}: `{statement}` -> PostgreSQL count {}, rows {:?}",
            got.count.as_ref().unwrap(),
            got.after
        );
        assert_eq!(got.count.as_deref(), Ok(count), "{name}: count");
        assert_eq!(got.after, rows, "{name}: rows");
    }
}

// ---------------------------------------------------------------------------------------
// Planning a write must not perform it.

const T_ONLY: &[&str] = &[STD[0], STD[1]];
const ORIGINAL: &[&str] = &["1|1|a", "2|2|b", "3|3|c", "4|NULL|d", "5|NULL|NULL"];

/// `(statement, count when executed (None: not checked), rows after executing)`.
const WRITES: &[(&str, Option<&str>, &[&str])] = &[
    (
        "DELETE FROM t WHERE v > 1",
        Some("2"),
        &["1|1|a", "4|NULL|d", "5|NULL|NULL"],
    ),
    (
        "UPDATE t SET v = 0 WHERE v > 1",
        Some("2"),
        &["1|1|a", "2|0|b", "3|0|c", "4|NULL|d", "5|NULL|NULL"],
    ),
    // PostgreSQL reports 0 for TRUNCATE; DataFusion's convention is the rows removed.
    ("TRUNCATE t", None, &[]),
];

async fn fresh_t<F, Fut>(make: &F) -> Engine
where
    F: Fn() -> Fut,
    Fut: Future<Output = Engine>,
{
    let engine = make().await;
    for sql in T_ONLY {
        engine
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("setup `{sql}`: {e}"));
    }
    assert_eq!(engine_rows(&engine).await, ORIGINAL, "rows after setup");
    engine
}

/// EXPLAIN of each write leaves `t` as it was.
async fn explain_writes_nothing<F, Fut>(backend: &str, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Engine>,
{
    let mut failures = Vec::new();
    for &(statement, _, _) in WRITES {
        let engine = fresh_t(&make).await;
        let sql = format!("EXPLAIN {statement}");
        let result = engine.execute(&sql).await;
        let after = engine_rows(&engine).await;
        if after != ORIGINAL {
            failures.push(format!(
                "`{sql}` changed the table: rows {after:?} (result: {:?})",
                result
                    .as_ref()
                    .map(|b| text_rows(b))
                    .map_err(|e| e.to_string())
            ));
        } else if let Err(e) = result {
            // PostgreSQL has no EXPLAIN TRUNCATE: only DELETE and UPDATE must explain.
            if statement.starts_with("TRUNCATE") {
                eprintln!("[{backend}] `{sql}` refused (table unchanged): {e}");
            } else {
                failures.push(format!("`{sql}` failed: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{backend}: EXPLAIN wrote:\n{}",
        failures.join("\n")
    );
}

/// A physical plan of each write, built and dropped, leaves `t` as it was; executing the
/// statement then performs it.
async fn dropped_plan_writes_nothing<F, Fut>(backend: &str, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Engine>,
{
    let mut failures = Vec::new();
    for &(statement, count, rows) in WRITES {
        let engine = fresh_t(&make).await;
        match engine.sql(statement).await {
            Ok(df) => match df.create_physical_plan().await {
                Ok(plan) => drop(plan),
                Err(e) => failures.push(format!("`{statement}`: building the plan failed: {e}")),
            },
            Err(e) => failures.push(format!("`{statement}`: planning failed: {e}")),
        }
        let after = engine_rows(&engine).await;
        if after != ORIGINAL {
            failures.push(format!(
                "`{statement}`: a plan built and dropped changed the table: rows {after:?}"
            ));
            continue;
        }
        match engine.execute(statement).await {
            Ok(b) => {
                let got = dml_count(&b);
                if let Some(want) = count
                    && got.as_deref() != Ok(want)
                {
                    failures.push(format!(
                        "`{statement}` executed: count expected {want}, got {got:?}"
                    ));
                }
            }
            Err(e) => failures.push(format!("`{statement}` executed: error: {e}")),
        }
        let after = engine_rows(&engine).await;
        if after != rows {
            failures.push(format!(
                "`{statement}` executed: rows expected {rows:?}, got {after:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{backend}: planning vs executing writes:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_explain_writes_nothing() {
    explain_writes_nothing("memory", || async { Engine::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_dropped_plan_writes_nothing() {
    dropped_plan_writes_nothing("memory", || async { Engine::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_json_explain_writes_nothing() {
    explain_writes_nothing("file-json", || {
        crate::file::engine_with_default(Format::Json)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_json_dropped_plan_writes_nothing() {
    dropped_plan_writes_nothing("file-json", || {
        crate::file::engine_with_default(Format::Json)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_explain_writes_nothing() {
    explain_writes_nothing("postgres", crate::postgres::engine_in_fresh_schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dropped_plan_writes_nothing() {
    dropped_plan_writes_nothing("postgres", crate::postgres::engine_in_fresh_schema).await;
}
