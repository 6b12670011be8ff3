//! Writes to PostgreSQL store what PostgreSQL itself stores for the same statement, or fail as
//! it fails (leaving the table unchanged). Each case creates two identical tables in a fresh
//! schema with native DDL (so lengths, defaults, identity and generated columns are
//! PostgreSQL's own): the statement runs through dataknobs on one and natively on the other;
//! the outcome (count or failure) and the rows stored (read natively, as PostgreSQL's text)
//! must be the same.

use tokio_postgres::Client;

use crate::common::unique_name;
use crate::dml::{native, native_rows};
use crate::postgres::{engine_in, fresh_schema};
use dataknobs::Engine;

/// Every row of `table` (quoted, qualified) as PostgreSQL's text, columns joined by `|`.
async fn stored(client: &Client, table: &str) -> Vec<String> {
    native_rows(client, &format!("SELECT * FROM {table} ORDER BY 1")).await
}

/// What a statement did: the count it reported, or that it failed.
#[derive(Debug, PartialEq)]
enum Did {
    Count(u64),
    Failed,
}

struct Fixture {
    engine: Engine,
    client: Client,
    schema: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let schema = fresh_schema().await;
        Fixture {
            engine: engine_in(&schema).await,
            client: native().await,
            schema,
        }
    }

    /// Creates the twin tables from `ddl` (`{t}` = the table) and runs `setup` natively on
    /// both, then `statement` through dataknobs on one and natively on the other. Returns a
    /// description of every difference (empty: the same).
    async fn compare(&self, ddl: &str, setup: &[&str], statement: &str) -> Vec<String> {
        let name = unique_name("w");
        let ours = format!("\"{}\".\"{name}_dk\"", self.schema);
        let theirs = format!("\"{}\".\"{name}_pg\"", self.schema);
        for table in [&ours, &theirs] {
            for sql in std::iter::once(&ddl).chain(setup) {
                let sql = sql.replace("{t}", table);
                self.client
                    .batch_execute(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("setup `{sql}`: {e}"));
            }
        }
        let want = match self
            .client
            .execute(&statement.replace("{t}", &theirs), &[])
            .await
        {
            Ok(n) => Did::Count(n),
            Err(_) => Did::Failed,
        };
        let ours_sql = statement.replace("{t}", &format!("pg.\"{name}_dk\""));
        let (got, error) = match self.engine.execute(&ours_sql).await {
            Ok(b) => {
                let n = b
                    .iter()
                    .find(|b| b.num_rows() > 0)
                    .and_then(|b| b.column_by_name("count").cloned())
                    .map(|c| {
                        datafusion::arrow::util::display::array_value_to_string(&c, 0)
                            .unwrap_or_default()
                    })
                    .and_then(|s| s.parse().ok());
                match n {
                    Some(n) => (Did::Count(n), String::new()),
                    None => (Did::Failed, "no count".into()),
                }
            }
            Err(e) => (Did::Failed, e.to_string()),
        };
        let mut problems = Vec::new();
        if got != want {
            problems.push(format!(
                "`{statement}`: PostgreSQL {want:?}, dataknobs {got:?} {error}"
            ));
        }
        let (a, b) = (
            stored(&self.client, &ours).await,
            stored(&self.client, &theirs).await,
        );
        if a != b {
            problems.push(format!(
                "`{statement}`: rows stored by PostgreSQL {b:?}, through dataknobs {a:?}"
            ));
        }
        problems
    }

    /// Runs every statement on fresh twin tables, with pushdown on and off; panics listing
    /// all differences.
    async fn all_match(&self, ddl: &str, setup: &[&str], statements: &[&str]) {
        let mut problems = Vec::new();
        for pushdown in [true, false] {
            self.engine
                .execute(&format!("SET dataknobs.pushdown = {pushdown}"))
                .await
                .expect("set pushdown");
            for s in statements {
                for p in self.compare(ddl, setup, s).await {
                    problems.push(format!("(pushdown {pushdown}) {p}"));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "{} difference(s) from PostgreSQL:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}

/// UPDATE values reach PostgreSQL so that its own assignment rules apply (a value too long for
/// varchar(n)/char(n) is an error, not a truncation), and an expression means what it means
/// in SQL (`a / 2` on integers is integer division even when the target is float8). The same
/// statements run with a WHERE PostgreSQL evaluates (one UPDATE statement) and one only
/// DataFusion can (rows chosen by id, values computed by the engine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_values_follow_postgresql_assignment_rules() {
    let f = Fixture::new().await;
    let ddl = "CREATE TABLE {t} (id int PRIMARY KEY, s varchar(3), c char(2), x float8, \
               a int, n numeric(5,2))";
    let setup = ["INSERT INTO {t} VALUES (1, 'ab', 'x', 0, 1, 1.5), (2, 'cd', 'y', 0, 3, 2)"];
    let mut statements = Vec::new();
    for (set, _) in [
        ("s = 'toolong'", ()),
        ("s = 'abc'", ()),
        ("s = 'ab   '", ()),
        ("c = 'xyz'", ()),
        ("c = 'xy  '", ()),
        ("x = a / 2", ()),
        ("x = a / 2 + 1", ()),
        ("a = a * 2", ()),
        ("s = s || 'toolong'", ()),
        ("n = n * 2", ()),
        ("n = 999.999", ()),
    ] {
        statements.push(format!("UPDATE {{t}} SET {set}"));
        statements.push(format!("UPDATE {{t}} SET {set} WHERE id = 1"));
        // Not something PostgreSQL is asked to evaluate: the engine selects the rows.
        statements.push(format!(
            "UPDATE {{t}} SET {set} WHERE id IN (SELECT 1 UNION ALL SELECT 2)"
        ));
    }
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    f.all_match(ddl, &setup, &statements).await;
}

/// The same without a primary key (rows addressed another way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_values_without_a_key_follow_postgresql_assignment_rules() {
    let f = Fixture::new().await;
    let ddl = "CREATE TABLE {t} (id int, s varchar(3), c char(2), x float8, a int)";
    let setup = ["INSERT INTO {t} VALUES (1, 'ab', 'x', 0, 1), (2, 'cd', 'y', 0, 3)"];
    let statements = [
        "UPDATE {t} SET s = 'toolong'",
        "UPDATE {t} SET c = 'xyz' WHERE id = 2",
        "UPDATE {t} SET x = a / 2",
        "UPDATE {t} SET s = 'toolong' WHERE id IN (SELECT 1)",
        "UPDATE {t} SET x = a / 2 WHERE id IN (SELECT 1 UNION ALL SELECT 2)",
    ];
    f.all_match(ddl, &setup, &statements).await;
}

/// Columns an INSERT leaves out get the table's own defaults (DEFAULT expressions, serial and
/// identity sequences, generated columns); a value for a generated or GENERATED ALWAYS
/// identity column is refused as PostgreSQL refuses it, with nothing inserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_leaves_omitted_columns_to_postgresql() {
    let f = Fixture::new().await;
    let ddl = "CREATE TABLE {t} (id int, s text, d int DEFAULT 5, nn int NOT NULL DEFAULT 7, \
               ts timestamptz DEFAULT '2020-01-02 03:04:05+00', seq serial, \
               ident int GENERATED BY DEFAULT AS IDENTITY, \
               g int GENERATED ALWAYS AS (id * 2) STORED)";
    let setup = ["INSERT INTO {t} (id, s) VALUES (0, 'first')"];
    let statements = [
        "INSERT INTO {t} (id, s) VALUES (1, 'x')",
        "INSERT INTO {t} (id, s, d) VALUES (1, 'x', NULL)",
        "INSERT INTO {t} (id, d, nn) VALUES (1, 2, 3), (2, 4, 6)",
        "INSERT INTO {t} (id, ident) VALUES (1, 10)",
        "INSERT INTO {t} (s, id) SELECT 'z', 3",
        "INSERT INTO {t} (id, nn) VALUES (1, NULL)",
        "INSERT INTO {t} (id, g) VALUES (1, 2)",
        "INSERT INTO {t} VALUES (1, 'a', 1, 1, '2021-01-01 00:00:00+00', 1, 1, 2)",
    ];
    f.all_match(ddl, &setup, &statements).await;

    let ddl = "CREATE TABLE {t} (id int GENERATED ALWAYS AS IDENTITY, s text)";
    let statements = [
        "INSERT INTO {t} (s) VALUES ('a'), ('b')",
        "INSERT INTO {t} (id, s) VALUES (5, 'a')",
    ];
    f.all_match(ddl, &[], &statements).await;

    // The refusal names the column and what to do.
    f.client
        .batch_execute(&format!(
            "CREATE TABLE \"{}\".gen (id int, g int GENERATED ALWAYS AS (id * 2) STORED)",
            f.schema
        ))
        .await
        .expect("create");
    let e = f
        .engine
        .execute("INSERT INTO pg.gen (id, g) VALUES (1, 2)")
        .await
        .expect_err("a value for a generated column")
        .to_string();
    assert!(
        e.contains("'g'") && e.contains("generated") && e.contains("leave the column out"),
        "{e}"
    );
    let e = f
        .engine
        .execute("INSERT INTO pg.gen VALUES (1, 2)")
        .await
        .expect_err("a value for a generated column")
        .to_string();
    assert!(e.contains("'g'"), "{e}");
    f.engine
        .execute("INSERT INTO pg.gen (id) VALUES (4)")
        .await
        .expect("insert without the generated column");
    assert_eq!(
        stored(&f.client, &format!("\"{}\".gen", f.schema)).await,
        vec!["4|8".to_string()]
    );
}

/// SQL decimal literals are exact decimals (as in PostgreSQL and DuckDB), so `1.005` stored in
/// numeric(5,2) rounds to 1.01 as PostgreSQL rounds it, and `a + 1.5` on an int column is
/// computed and assigned as PostgreSQL does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_literals_are_exact() {
    let f = Fixture::new().await;
    let ddl = "CREATE TABLE {t} (id int PRIMARY KEY, n numeric(5,2), a int, x float8)";
    let setup = ["INSERT INTO {t} VALUES (1, 0, 1, 0), (2, 0, 2, 0)"];
    let statements = [
        "INSERT INTO {t} VALUES (3, 1.005, 0, 0)",
        "INSERT INTO {t} (id, n) VALUES (3, 2.675), (4, -1.005)",
        "INSERT INTO {t} (id, n) VALUES (3, 1234.565)",
        "UPDATE {t} SET n = 1.005",
        "UPDATE {t} SET n = 0.125 WHERE id = 1",
        "UPDATE {t} SET a = a + 1.5",
        "UPDATE {t} SET a = 2.5 WHERE id = 2",
        "UPDATE {t} SET x = 0.1 + 0.2",
        "UPDATE {t} SET n = n + 0.005 WHERE id IN (SELECT 1)",
    ];
    f.all_match(ddl, &setup, &statements).await;
    let b = f
        .engine
        .execute("SELECT 0.1 + 0.2 = 0.3 AS exact, 1.005 * 1000 AS scaled")
        .await
        .expect("select");
    assert_eq!(
        crate::common::rows(&b),
        vec!["| true  | 1005.000 |".to_string()]
    );
}

/// UPDATE and DELETE whose WHERE compares numeric and date columns (now pushed to PostgreSQL)
/// change exactly the rows PostgreSQL changes; integer columns assigned a decimal result are
/// rounded as PostgreSQL rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_filtered_on_decimals_and_dates_match_postgresql() {
    let f = Fixture::new().await;
    let ddl = "CREATE TABLE {t} (id int PRIMARY KEY, n numeric(10,2), a int, d date)";
    let setup = [
        "INSERT INTO {t} VALUES (1, 2, 1, '2024-01-01'), (2, 3.5, 2, '1999-12-31'), \
                  (3, NULL, 3, NULL), (4, -2.005, -4, '0010-05-05 BC')",
    ];
    let statements = [
        "UPDATE {t} SET a = a + 1.5 WHERE n = 2",
        "UPDATE {t} SET a = a + 1.5",
        "UPDATE {t} SET n = n / 3 WHERE n BETWEEN 1 AND 3.5",
        "UPDATE {t} SET n = 0 WHERE n IN (2, 3.50) AND d < DATE '2020-01-01'",
        "UPDATE {t} SET a = 0 WHERE d < DATE '0001-01-01'",
        "DELETE FROM {t} WHERE n < 2.5",
        "DELETE FROM {t} WHERE n <> 3.5 OR d = DATE '1999-12-31'",
        "DELETE FROM {t} WHERE a < 1.5",
    ];
    f.all_match(ddl, &setup, &statements).await;
}

/// `IN` lists longer than PostgreSQL's 65,535 bind parameters (NULLs and `NOT IN` included)
/// delete and update exactly what PostgreSQL does: a list is one array parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_with_seventy_thousand_in_items_match_postgresql() {
    let f = Fixture::new().await;
    let ddl = "CREATE TABLE {t} (id int PRIMARY KEY, s text, n numeric(8,1))";
    // Few rows (the lists reach far beyond them): the test is about the statement's size.
    let setup = ["INSERT INTO {t} SELECT g, 's' || g, g / 10.0 FROM generate_series(1, 3000) g"];
    let ids = |from: i32, step: usize| {
        (from..from + 140_000)
            .step_by(step)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let texts = (1..=70_000)
        .map(|i| format!("'s{}'", i * 2))
        .collect::<Vec<_>>()
        .join(", ");
    let statements = [
        format!("DELETE FROM {{t}} WHERE id IN ({})", ids(1, 2)),
        format!("DELETE FROM {{t}} WHERE id NOT IN ({})", ids(2, 2)),
        format!("DELETE FROM {{t}} WHERE id NOT IN ({}, NULL)", ids(2, 2)),
        format!("UPDATE {{t}} SET s = 'x' WHERE s IN ({texts})"),
        format!(
            "UPDATE {{t}} SET s = 'y' WHERE n IN ({}) OR id IN ({})",
            (0..70_000)
                .map(|i| format!("{}.5", i * 3))
                .collect::<Vec<_>>()
                .join(", "),
            ids(5, 2)
        ),
    ];
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    f.all_match(ddl, &setup, &statements).await;
}

/// Numbers inserted into integer columns are rounded as PostgreSQL assigns them: numerics half
/// away from zero, floats half to even (DataFusion's cast truncated 2.5 to 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserted_numbers_round_into_integers_as_in_postgresql() {
    let f = Fixture::new().await;
    let ddl = "CREATE TABLE {t} (id int, a int, s smallint, b bigint)";
    let setup = ["INSERT INTO {t} VALUES (1, 1, 3, 5), (2, -3, -1, 7)"];
    let statements = [
        "INSERT INTO {t} VALUES (10, 2.5, -2.5, 3.5)",
        "INSERT INTO {t} VALUES (11, 0.5, -0.5, 1.49999), (12, -1.5, 2.4999, -0.5)",
        "INSERT INTO {t} VALUES (13, CAST(2.5 AS DOUBLE PRECISION), \
         CAST(3.5 AS DOUBLE PRECISION), CAST(-2.5 AS DOUBLE PRECISION))",
        "INSERT INTO {t} VALUES (14, CAST(0.5 AS REAL), CAST(-1.5 AS REAL), CAST(1e15 AS DOUBLE PRECISION))",
        "INSERT INTO {t} SELECT id + 20, a + 0.5, s * 1.5, CAST(b AS DOUBLE PRECISION) / 2 FROM {t}",
        "INSERT INTO {t} (id, a) SELECT id + 30, CAST(a AS DOUBLE PRECISION) * 2.5 FROM {t}",
        "INSERT INTO {t} VALUES (15, 2147483647.5, 0, 0)",
        "INSERT INTO {t} VALUES (16, 1, 32767.4, 0)",
    ];
    f.all_match(ddl, &setup, &statements).await;
}
