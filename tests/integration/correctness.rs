//! Answers that must be what the source database gives, on every backend, with pushdown on
//! and off: regexes with backslashes, deep expressions, values stored as given.

use tokio_postgres::NoTls;

use crate::common::rows;
use crate::postgres::{fresh_schema, url, url_with};
use dataknobs::Engine;

/// The `id`s (ascending) `cond` selects from `table`, with the pushdown setting given.
async fn ids(engine: &Engine, table: &str, cond: &str, pushdown: bool) -> Vec<i32> {
    engine
        .execute(&format!("SET dataknobs.pushdown = {pushdown}"))
        .await
        .expect("set pushdown");
    let b = engine
        .execute(&format!("SELECT id FROM {table} WHERE {cond} ORDER BY id"))
        .await
        .unwrap_or_else(|e| panic!("WHERE {cond} (pushdown {pushdown}): {e}"));
    rows(&b)
        .iter()
        .map(|r| {
            r.trim_matches(|c| c == '|' || c == ' ')
                .parse()
                .expect("id")
        })
        .collect()
}

/// Regex matches whose pattern has a backslash select what PostgreSQL selects (DataFusion's
/// simplifier used to turn them into a LIKE that read the backslash as LIKE's escape).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regexes_with_a_backslash_match_as_in_postgresql() {
    let schema = fresh_schema().await;
    let (client, conn) = tokio_postgres::connect(&url(), NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
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
    client
        .batch_execute(&format!(
            "CREATE TABLE \"{schema}\".r (id int PRIMARY KEY, s text); \
             INSERT INTO \"{schema}\".r VALUES {rows_sql}"
        ))
        .await
        .expect("setup");
    let engine = Engine::new();
    engine
        .attach("pg", &url_with(&format!("schema={schema}")))
        .await
        .expect("attach");
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
    let mut problems = Vec::new();
    for (cond, native_cond) in cases {
        let want: Vec<i32> = client
            .query(
                &format!("SELECT id FROM \"{schema}\".r WHERE {native_cond} ORDER BY id"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("native {native_cond}: {e}"))
            .iter()
            .map(|r| r.get(0))
            .collect();
        for table in ["pg.r", "mem"] {
            for pushdown in [true, false] {
                let got = ids(&engine, table, cond, pushdown).await;
                if got != want {
                    problems.push(format!(
                        "{table} WHERE {cond} (pushdown {pushdown}): {got:?}, PostgreSQL {want:?}"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
