//! Helpers shared by the scenarios: seed data, three-valued logic, SQL and search shortcuts.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use dataknobs::{ErrorKind, Query, Record, Value, batch_to_records};

use crate::conformance::Env;

pub(super) fn person(id: &str, name: &str, age: Option<i64>) -> Record {
    Record::new()
        .with_id(id)
        .with("name", name)
        .with("age", Value::from(age))
}

/// People used by the filter scenarios: (id, name, age). `e` is created without an `age` field
/// at all (missing), `d` with an explicit NULL age.
pub(super) const PEOPLE: [(&str, &str, Option<i64>); 5] = [
    ("a", "alice", Some(10)),
    ("b", "bob", Some(20)),
    ("c", "carol", Some(30)),
    ("d", "dave", None),
    ("e", "eve", None),
];

pub(super) async fn seed_people(env: &Env) {
    for (id, name, age) in PEOPLE {
        let r = if id == "e" {
            Record::new().with_id(id).with("name", name)
        } else {
            person(id, name, age)
        };
        env.db.create(r).await.unwrap();
    }
}

/// The ids of PEOPLE for which a SQL predicate is TRUE (FALSE and unknown are dropped).
pub(super) fn people_where(pred: impl Fn(&str, Option<i64>) -> Option<bool>) -> Vec<String> {
    PEOPLE
        .iter()
        .filter(|(_, name, age)| pred(name, *age) == Some(true))
        .map(|(id, _, _)| id.to_string())
        .collect()
}

/// SQL `x IN (list)`: unknown when x is NULL, or when no element matches and one is NULL.
pub(super) fn in3<T: PartialEq>(x: Option<T>, list: &[Option<T>]) -> Option<bool> {
    let x = x?;
    if list.iter().any(|v| v.as_ref() == Some(&x)) {
        Some(true)
    } else if list.iter().any(Option::is_none) {
        None
    } else {
        Some(false)
    }
}

pub(super) fn not3(x: Option<bool>) -> Option<bool> {
    x.map(|b| !b)
}

pub(super) fn or3(x: Option<bool>, y: Option<bool>) -> Option<bool> {
    match (x, y) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

pub(super) fn and3(x: Option<bool>, y: Option<bool>) -> Option<bool> {
    match (x, y) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// SQL ordering of two nullable keys for one sort key.
pub(super) fn sql_order<T: Ord>(
    a: &Option<T>,
    b: &Option<T>,
    desc: bool,
    nulls_first: bool,
) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => {
            if nulls_first {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        }
        (Some(_), None) => {
            if nulls_first {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (Some(x), Some(y)) => {
            if desc {
                y.cmp(x)
            } else {
                x.cmp(y)
            }
        }
    }
}

/// SQL LIKE: `%` any run, `_` exactly one character, `\` escapes the next character.
pub(super) fn sql_like(value: &str, pattern: &str) -> bool {
    enum Tok {
        Lit(char),
        One,
        Any,
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        toks.push(match c {
            '\\' => Tok::Lit(it.next().expect("pattern must not end in a lone backslash")),
            '%' => Tok::Any,
            '_' => Tok::One,
            c => Tok::Lit(c),
        });
    }
    fn m(v: &[char], t: &[Tok]) -> bool {
        match t.first() {
            None => v.is_empty(),
            Some(Tok::Any) => (0..=v.len()).any(|i| m(&v[i..], &t[1..])),
            Some(Tok::One) => !v.is_empty() && m(&v[1..], &t[1..]),
            Some(Tok::Lit(c)) => v.first() == Some(c) && m(&v[1..], &t[1..]),
        }
    }
    m(&value.chars().collect::<Vec<_>>(), &toks)
}

/// A SQL string literal.
pub(super) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL list of nullable integers: `10, NULL`.
pub(super) fn sql_int_list(list: &[Option<i64>]) -> String {
    list.iter()
        .map(|v| v.map_or("NULL".to_string(), |i| i.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn int_values(list: &[Option<i64>]) -> Vec<Value> {
    list.iter().map(|v| Value::from(*v)).collect()
}

pub(super) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub(super) fn ids_of(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.id().expect("a searched record has an id").to_string())
        .collect()
}

/// The ids a query finds, sorted (for queries whose order is unspecified).
pub(super) async fn search_ids(env: &Env, q: &Query) -> Vec<String> {
    let mut ids = ids_of(
        &env.db
            .search(q)
            .await
            .unwrap_or_else(|e| panic!("search {q}: {e}")),
    );
    ids.sort();
    ids
}

/// The ids a query finds, in result order.
pub(super) async fn search_ids_ordered(env: &Env, q: &Query) -> Vec<String> {
    ids_of(
        &env.db
            .search(q)
            .await
            .unwrap_or_else(|e| panic!("search {q}: {e}")),
    )
}

/// Runs SQL and returns each row as its values.
pub(super) async fn sql_values(env: &Env, sql: &str) -> Vec<Vec<Value>> {
    let batches = env
        .engine
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("SQL failed: {sql}\n{e}"));
    let mut out = Vec::new();
    for b in &batches {
        for r in batch_to_records(b, None).unwrap() {
            out.push(r.fields().iter().map(|f| f.value.clone()).collect());
        }
    }
    out
}

/// Runs SQL returning one text column (e.g. ids) and returns it, in result order.
pub(super) async fn sql_strings(env: &Env, sql: &str) -> Vec<String> {
    sql_values(env, sql)
        .await
        .into_iter()
        .map(|row| match &row[..] {
            [Value::String(s)] => s.clone(),
            other => panic!("expected one text value per row from {sql}, got {other:?}"),
        })
        .collect()
}

/// Runs SQL returning one integer (COUNT(*), a DML row count, …).
pub(super) async fn sql_int(env: &Env, sql: &str) -> i64 {
    match &sql_values(env, sql).await[..] {
        [row] => match &row[..] {
            [Value::Int(n)] => *n,
            other => panic!("expected one integer from {sql}, got {other:?}"),
        },
        other => panic!("expected one row from {sql}, got {other:?}"),
    }
}

pub(super) fn is_null_or_missing(r: &Record, field: &str) -> bool {
    r.get(field).is_none_or(Value::is_null)
}

pub(super) fn micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("timestamp in range")
}

// Capabilities: what a scenario checks when the collection lacks one (see `Capabilities`).

/// Every record of the collection as JSON text, sorted: compared before and after a write that
/// must change nothing.
pub(super) async fn snapshot(env: &Env) -> Vec<String> {
    let mut all: Vec<String> = env
        .db
        .search(&Query::new())
        .await
        .unwrap_or_else(|e| panic!("search for a snapshot: {e}"))
        .iter()
        .map(|r| r.to_json().to_string())
        .collect();
    all.sort();
    all
}

/// A write the collection declares it cannot do: `result` is an `Unsupported` error and the
/// collection still holds exactly `before` (a [`snapshot`]).
pub(super) async fn assert_refused<T: std::fmt::Debug>(
    env: &Env,
    before: &[String],
    what: &str,
    result: dataknobs::Result<T>,
) {
    match result {
        Ok(v) => panic!("{what}: expected an Unsupported error, got {v:?}"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "{what}: {e}"),
    }
    assert_eq!(
        snapshot(env).await,
        before,
        "{what}: a refused write changed the collection"
    );
}

/// After a failed write that is not all or nothing (no `atomic_batches`): of the records it
/// tried to create, given as (id, the `name`s it was given with), some may have been kept. Each
/// kept id is stored once, with one of its names; the count, a full search and SQL `COUNT(*)`
/// agree on `existing` (the records from before) plus the kept ones.
pub(super) async fn assert_partial_write_consistent(
    env: &Env,
    existing: u64,
    tried: &[(&str, &[&str])],
) {
    let mut kept = 0;
    for (id, names) in tried {
        if let Some(r) = env.db.read(id).await.unwrap() {
            kept += 1;
            let name = r.get("name").cloned().unwrap_or_default();
            assert!(
                names.iter().any(|n| name == Value::from(*n)),
                "kept record {id} has name {name:?}, not one of {names:?}"
            );
        }
    }
    let count = env.db.count(None).await.unwrap();
    assert_eq!(count, existing + kept, "count after a partial write");
    let mut ids = ids_of(&env.db.search(&Query::new()).await.unwrap());
    assert_eq!(ids.len() as u64, count, "search after a partial write");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, count, "an id stored twice: {ids:?}");
    let sql = format!("SELECT COUNT(*) FROM {}", env.table);
    assert_eq!(sql_int(env, &sql).await, count as i64, "{sql}");
}

/// Neither native DML nor row ids: the store can change no rows that a DELETE or UPDATE selects
/// (see `declared_capabilities_match_behaviour` for either one alone).
pub(super) fn no_dml(env: &Env) -> bool {
    let caps = env.db.capabilities();
    !caps.native_dml && !caps.row_ids
}

/// Without DML ([`no_dml`]): the statement is refused with Unsupported and changes nothing.
pub(super) async fn assert_dml_refused(env: &Env, sql: &str) {
    let before = snapshot(env).await;
    let result = env.engine.execute(sql).await;
    assert_refused(env, &before, sql, result).await;
}
