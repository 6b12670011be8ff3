//! Answers that must be what the source database gives, on every backend, with pushdown on
//! and off: regexes with backslashes, deep expressions, values stored as given.

use tokio_postgres::Client;

use crate::common::{rows, same_ids_as_postgresql};
use crate::dml::native;
use crate::postgres::{engine_in, fresh_schema};
use dataknobs::Engine;

/// A fresh PostgreSQL schema with `setup` run in it natively (`{s}` stands for the quoted
/// schema), a native client, and an engine with that schema attached as `pg` (memory stays
/// the default backend). Returns the quoted schema too.
async fn postgres_fixture(setup: &str) -> (String, Client, Engine) {
    let schema = fresh_schema().await;
    let quoted = format!("\"{schema}\"");
    let client = native().await;
    client
        .batch_execute(&setup.replace("{s}", &quoted))
        .await
        .unwrap_or_else(|e| panic!("setup `{setup}`: {e}"));
    (quoted, client, engine_in(&schema).await)
}

/// Regex matches whose pattern has a backslash select what PostgreSQL selects (DataFusion's
/// simplifier used to turn them into a LIKE that read the backslash as LIKE's escape).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regexes_with_a_backslash_match_as_in_postgresql() {
    let values = [
        (1, r"a\c"),
        (2, "ab%"),
        (3, "ac"),
        (4, "b"),
        (5, r"x\\y"),
        (6, "A\\C"),
    ];
    let rows_sql = values
        .iter()
        .map(|(id, s)| format!("({id}, '{s}')"))
        .collect::<Vec<_>>()
        .join(", ");
    let (schema, client, engine) = postgres_fixture(&format!(
        "CREATE TABLE {{s}}.r (id int PRIMARY KEY, s text); INSERT INTO {{s}}.r VALUES {rows_sql}"
    ))
    .await;
    engine
        .execute("CREATE TABLE mem (id INT, s VARCHAR)")
        .await
        .expect("create memory table");
    engine
        .execute(&format!("INSERT INTO mem VALUES {rows_sql}"))
        .await
        .expect("fill memory table");
    // (dataknobs condition, PostgreSQL condition): PostgreSQL's regexes are POSIX ones, where
    // `\\` is also one backslash.
    let cases = [
        (r"s ~ '\\'", r"s ~ '\\'"),
        (r"s ~ 'a\\c'", r"s ~ 'a\\c'"),
        (r"s !~ 'a\\c'", r"s !~ 'a\\c'"),
        (r"s ~* 'A\\C'", r"s ~* 'A\\C'"),
        (r"s !~* 'a\\c'", r"s !~* 'a\\c'"),
        (r"s ~ '^a\\c$'", r"s ~ '^a\\c$'"),
        (r"s ~ '\\\\'", r"s ~ '\\\\'"),
        (r"s ~ 'a\\c|b'", r"s ~ 'a\\c|b'"),
        (r"regexp_like(s, 'a\\c')", r"s ~ 'a\\c'"),
        (r"s ~ 'a\.c'", r"s ~ 'a\.c'"),
    ];
    let native_table = format!("{schema}.r");
    same_ids_as_postgresql(&engine, &client, &native_table, &["pg.r", "mem"], &cases).await;
}

/// Deeply nested input is an error naming the limit — never a stack overflow that aborts the
/// process — on memory and PostgreSQL tables, with pushdown on and off; input at the limit
/// still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_expressions_are_an_error_not_a_crash() {
    let (_, _client, engine) = postgres_fixture(
        "CREATE TABLE {s}.d (id int PRIMARY KEY, x int); \
         INSERT INTO {s}.d SELECT g, g FROM generate_series(1, 20) g",
    )
    .await;
    engine
        .execute("CREATE TABLE mem AS SELECT CAST(value AS INT) AS id, CAST(value AS INT) AS x FROM generate_series(1, 20)")
        .await
        .expect("memory table");

    let sum = vec!["1"; 8000].join(" + ");
    let e = engine
        .execute(&format!("SELECT {sum}"))
        .await
        .expect_err("8000 terms")
        .to_string();
    assert!(e.contains("nested too deeply") && e.contains("256"), "{e}");

    let deep_and = (0..3000)
        .map(|i| format!("x > -{i}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    // Within the limit: the same shape, fewer terms.
    let ok_and = (0..200)
        .map(|i| format!("x > -{i}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    for table in ["mem", "pg.d"] {
        for pushdown in [true, false] {
            engine
                .execute(&format!("SET dataknobs.pushdown = {pushdown}"))
                .await
                .expect("set");
            let e = engine
                .execute(&format!("SELECT id FROM {table} WHERE {deep_and}"))
                .await
                .expect_err("3000 ANDs")
                .to_string();
            assert!(e.contains("nested too deeply"), "{table}: {e}");
            let b = engine
                .execute(&format!("SELECT count(*) AS n FROM {table} WHERE {ok_and}"))
                .await
                .unwrap_or_else(|e| panic!("{table} (pushdown {pushdown}), 200 ANDs: {e}"));
            assert_eq!(rows(&b), vec!["| 20 |".to_string()], "{table}");
        }
    }

    // CASE nested past the parser's own limit: a nesting message, not a bare parser error.
    let mut case = "1".to_string();
    for _ in 0..500 {
        case = format!("CASE WHEN x > 0 THEN {case} ELSE 0 END");
    }
    let e = engine
        .execute(&format!("SELECT {case} FROM mem"))
        .await
        .expect_err("500 nested CASE")
        .to_string();
    assert!(e.contains("nested too deeply"), "{e}");

    // The limit is a session setting.
    engine
        .execute("SET dataknobs.max_expression_depth = 10")
        .await
        .expect("set limit");
    let e = engine
        .execute(&format!("SELECT {}", vec!["1"; 20].join(" + ")))
        .await
        .expect_err("20 terms over a limit of 10")
        .to_string();
    assert!(e.contains("limit: 10"), "{e}");
    engine
        .execute("SET dataknobs.max_expression_depth = 256")
        .await
        .expect("reset limit");

    // Plans built with the DataFrame API are measured too (DataFusion's own DataFrame
    // methods walk expressions before any rule sees them: kept to a depth they survive).
    use datafusion::prelude::{col, lit};
    let mut deep = col("x").gt(lit(0));
    for i in 1..400 {
        deep = deep.and(col("x").gt(lit(-i)));
    }
    let df = engine.table("mem").await.expect("table");
    let e = match df.filter(deep) {
        Ok(df) => df.collect().await.expect_err("400 ANDs").to_string(),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("nested too deeply"), "{e}");
}

/// Decimal literals are exact decimals, yet a float column compared or combined with one is
/// still compared as floats (NaN and ±infinity included, as in PostgreSQL), and numbers in
/// scientific notation are floats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_literals_meet_floats_as_in_postgresql() {
    let values = "(1, 'NaN'), (2, 'Infinity'), (3, '-Infinity'), (4, 1.5), (5, 1.25), (6, NULL)";
    let (schema, client, engine) = postgres_fixture(&format!(
        "CREATE TABLE {{s}}.f (id int PRIMARY KEY, f float8); INSERT INTO {{s}}.f VALUES {values}"
    ))
    .await;
    engine
        .execute(
            "CREATE TABLE mem AS SELECT * FROM (VALUES (1, CAST('NaN' AS DOUBLE)), \
             (2, CAST('inf' AS DOUBLE)), (3, CAST('-inf' AS DOUBLE)), (4, 1.5e0), (5, 1.25e0), \
             (6, CAST(NULL AS DOUBLE))) AS v(id, f)",
        )
        .await
        .expect("memory table");
    let cases = [
        "f >= 1.25",
        "f < 1.5",
        "f = 1.25",
        "f <> 1.5",
        "f IN (1.5, 2.5)",
        "f NOT IN (1.5)",
        "f BETWEEN 1.0 AND 2.0",
        "f * 2.0 > 2.75",
        "-1.5 < f",
        "coalesce(f, 1.5) > 1.4",
        "CASE WHEN f > 1 THEN f ELSE 0.5 END > 1",
        "CASE WHEN f > 1 THEN 2.5 ELSE f END = 2.5",
        "greatest(f, 0.5) = 1.25",
        "least(f, 2.5) < 2",
        "nullif(f, 1.25) IS NULL",
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|c| (*c, *c)).collect();
    let native_table = format!("{schema}.f");
    same_ids_as_postgresql(&engine, &client, &native_table, &["pg.f", "mem"], &cases).await;
    let b = engine
        .execute(
            "SELECT arrow_typeof(1.005) AS d, arrow_typeof(1e10) AS e, arrow_typeof(2.5E-3) AS e2, \
             1e308 * 10 AS big",
        )
        .await
        .expect("types");
    assert_eq!(
        rows(&b),
        vec!["| Decimal128(4, 3) | Float64 | Float64 | inf |".to_string()]
    );
}

/// A NULL for a NOT NULL column is refused naming the column (DataFusion names its position).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_null_violations_name_the_column() {
    let (_, _client, engine) = postgres_fixture("CREATE TABLE {s}.t (a int, b int NOT NULL)").await;
    engine
        .execute("CREATE TABLE t (a INT, b INT NOT NULL)")
        .await
        .expect("memory table");
    engine
        .execute("CREATE TABLE s AS VALUES (1, CAST(NULL AS INT))")
        .await
        .expect("source");
    for table in ["t", "pg.t"] {
        for insert in [
            "INSERT INTO {table} SELECT * FROM s",
            "INSERT INTO {table} VALUES (1, 2), (3, NULL)",
            "INSERT INTO {table} (b, a) VALUES (NULL, 1)",
            "INSERT INTO {table} (b) VALUES (CASE WHEN true THEN NULL END)",
        ] {
            let insert = insert.replace("{table}", table);
            let e = engine
                .execute(&insert)
                .await
                .expect_err("NULL into NOT NULL")
                .to_string();
            assert!(
                e.contains("column 'b'") && e.contains("NOT NULL"),
                "{insert}: {e}"
            );
        }
        let b = engine
            .execute(&format!("SELECT count(*) AS n FROM {table}"))
            .await
            .expect("count");
        assert_eq!(rows(&b), vec!["| 0 |".to_string()], "{table}");
    }
}

/// `memory://name.json` (a host, no path) is refused with the right spelling, as
/// `memory://host/x` is; `memory://` and `memory:///abs/path.json` work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_urls_with_a_host_are_refused() {
    let engine = Engine::new();
    for url in ["memory://relative.json", "memory://host/x.json"] {
        let e = engine
            .attach("m", url)
            .await
            .expect_err("a host in a memory URL")
            .to_string();
        assert!(e.contains("memory:///"), "{url}: {e}");
    }
    engine.attach("m1", "memory://").await.expect("memory://");
    let dir = tempfile::tempdir().expect("dir");
    engine
        .attach("m2", &format!("memory://{}/db.json", dir.path().display()))
        .await
        .expect("memory:///abs/path");
}

/// Comparisons, `IN` and `BETWEEN` on numeric and date columns are pushed to PostgreSQL (no
/// `FilterExec` left, the native request shows them) and select exactly what PostgreSQL and the
/// engine select, with pushdown on and off, on PostgreSQL and memory tables — integers meeting
/// decimals, scales the column does not have and dates before 1 AD included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimals_and_dates_are_pushed_and_compare_as_in_postgresql() {
    let values = "(1, 5, 5, DATE '2024-01-01'), (2, 4.99, 4, DATE '1999-12-31'), \
                  (3, 5.01, 6, DATE '0044-03-15 BC'), (4, -1.5, -2, DATE '9999-12-31'), \
                  (5, 0, 0, DATE '1998-11-01'), (6, NULL, NULL, NULL), \
                  (7, 1234567890123.45, 2147483647, DATE '0001-01-01'), (8, 1.25, 2, DATE '2000-02-29')";
    let (schema, client, engine) = postgres_fixture(&format!(
        "CREATE TABLE {{s}}.n (id int PRIMARY KEY, q numeric(15,2), i int, d date); \
         INSERT INTO {{s}}.n VALUES {values}"
    ))
    .await;
    engine
        .execute("CREATE TABLE mem (id INT, q DECIMAL(15,2), i INT, d DATE)")
        .await
        .expect("create memory table");
    engine
        .execute("INSERT INTO mem SELECT * FROM pg.n")
        .await
        .expect("fill memory table");
    let cases = [
        ("q < 5", "q < 5"),
        ("q <= 5.00", "q <= 5.00"),
        ("q = 5", "q = 5"),
        ("q = 5.0", "q = 5.0"),
        ("q <> 5", "q <> 5"),
        ("q > -1.5", "q > -1.5"),
        ("q = 1.005", "q = 1.005"),
        ("q < 99999999999999999999.5", "q < 99999999999999999999.5"),
        ("q IN (1.25, 5, 7.125)", "q IN (1.25, 5, 7.125)"),
        ("q NOT IN (1.25, 5)", "q NOT IN (1.25, 5)"),
        ("q BETWEEN 1.25 AND 5", "q BETWEEN 1.25 AND 5"),
        ("q NOT BETWEEN 1.25 AND 5", "q NOT BETWEEN 1.25 AND 5"),
        ("i < 5.5", "i < 5.5"),
        ("i IN (2, 2.5, 6.0)", "i IN (2, 2.5, 6.0)"),
        ("i >= 2147483646.5", "i >= 2147483646.5"),
        ("d = DATE '2024-01-01'", "d = DATE '2024-01-01'"),
        ("d < DATE '0001-01-01'", "d < DATE '0001-01-01'"),
        (
            "d BETWEEN DATE '1999-12-31' AND DATE '2024-01-01'",
            "d BETWEEN DATE '1999-12-31' AND DATE '2024-01-01'",
        ),
        (
            "d IN (DATE '2000-02-29', DATE '9999-12-31')",
            "d IN (DATE '2000-02-29', DATE '9999-12-31')",
        ),
        ("d > '2000-01-01'", "d > '2000-01-01'"),
        (
            "d >= DATE '1998-11-01' AND q < 5",
            "d >= DATE '1998-11-01' AND q < 5",
        ),
    ];
    let native_table = format!("{schema}.n");
    same_ids_as_postgresql(&engine, &client, &native_table, &["pg.n", "mem"], &cases).await;

    // Pushed whole: nothing is left for the engine, and the native request carries them.
    for cond in [
        "q < 5",
        "q IN (1.25, 5)",
        "q BETWEEN 1.25 AND 5",
        "i < 5.5",
        "d >= DATE '1998-11-01' AND q < 5",
    ] {
        let b = engine
            .execute(&format!("EXPLAIN SELECT id FROM pg.n WHERE {cond}"))
            .await
            .expect("explain");
        let plan = rows(&b).join("\n");
        assert!(!plan.contains("FilterExec"), "{cond} not pushed:\n{plan}");
        assert!(
            plan.contains("::numeric") || plan.contains("::date"),
            "{cond}:\n{plan}"
        );
    }
}

/// Parquet statistics leave NaN out of a float column's min/max, while the engine orders NaN
/// above every number (and a negative NaN below): aggregates and filters over Parquet must
/// not be answered or pruned from those statistics. Same answers as a memory table holding
/// the same values, with pushdown on and off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_statistics_do_not_hide_nan() {
    let dir = crate::file::temp_dir();
    let engine = Engine::new();
    engine
        .attach("pq", &format!("file://{}?format=parquet", dir.display()))
        .await
        .expect("attach parquet directory");
    let values = "(1, 1.5e0, 1), (2, CAST('NaN' AS DOUBLE), 2), (3, -CAST('NaN' AS DOUBLE), 3), \
                  (4, 2.5e0, 4), (5, NULL, 5)";
    for t in ["pq.t", "mem"] {
        engine
            .execute(&format!("CREATE TABLE {t} (id INT, f DOUBLE, k INT)"))
            .await
            .expect("create");
        engine
            .execute(&format!("INSERT INTO {t} VALUES {values}"))
            .await
            .expect("insert");
    }
    let queries = [
        "SELECT max(f) AS hi, min(f) AS lo, count(f) AS n FROM {t}",
        "SELECT id FROM {t} WHERE f > 3",
        "SELECT id FROM {t} WHERE f < 0",
        "SELECT id FROM {t} WHERE f NOT BETWEEN -7 AND 1e10",
        "SELECT id FROM {t} WHERE f > 3 AND k > 1",
        "SELECT id FROM {t} WHERE f <> 1.5",
        "SELECT id FROM {t} ORDER BY f DESC LIMIT 1",
        "SELECT id FROM {t} ORDER BY f ASC LIMIT 1",
    ];
    for pushdown in [true, false] {
        engine.set_pushdown(pushdown);
        for q in queries {
            let got = engine.execute(&q.replace("{t}", "pq.t")).await.expect(q);
            let want = engine.execute(&q.replace("{t}", "mem")).await.expect(q);
            assert_eq!(
                crate::common::sorted_rows(&got),
                crate::common::sorted_rows(&want),
                "{q} (pushdown {pushdown})"
            );
        }
    }
}

/// Expressions the engine's own rules rewrite (decimal literals meeting floats, regexes with a
/// backslash, LIKE with another escape character) keep their names, so a query over a
/// subquery using them still finds its columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_expressions_keep_their_names() {
    let engine = Engine::new();
    engine
        .execute("CREATE TABLE t (s TEXT, f DOUBLE)")
        .await
        .expect("create");
    engine
        .execute(r"INSERT INTO t VALUES ('a\c', 1.5), ('a%', 2.0)")
        .await
        .expect("insert");
    let b = engine
        .execute(r"SELECT * FROM (SELECT s ~ 'a\\c', s LIKE 'a#%' ESCAPE '#', f * 2.5 FROM t) sub")
        .await
        .expect("query over a subquery");
    assert_eq!(
        crate::common::sorted_rows(&b),
        vec![
            "| false              | true                          | 5.0                       |",
            "| true               | false                         | 3.75                      |",
        ]
    );
}
