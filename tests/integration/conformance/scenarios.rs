//! The scenarios. Each takes a [`Fixture`], makes its own fresh collection with
//! [`fresh`], and asserts on results. Add a scenario here and to `all_scenarios!` below.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use dataknobs::{
    Database, ErrorKind, Field, FieldType, Filter, FilterExpr, Operand, Operator, Query, Record,
    SortOrder, SortSpec, Value, batch_to_records,
};

use super::{Env, Fixture, fresh};

/// Lists every scenario once; backends expand it through `conformance_suite!`.
#[macro_export]
macro_rules! all_scenarios {
    ($suite:path; $fixture:expr) => {
        $suite!($fixture;
            create_then_read_returns_the_same_fields,
            create_generates_an_id_when_none_is_given,
            create_with_duplicate_id_is_already_exists_and_changes_nothing,
            read_missing_id_is_none,
            update_replaces_fields,
            update_missing_id_is_false,
            delete_removes_and_reports,
            filter_eq_on_integers,
            create_uses_the_key_field_as_id,
            record_id_disagreeing_with_key_field_is_rejected,
            exists_tracks_create_and_delete,
            delete_then_recreate_the_same_id,
            update_replaces_the_whole_record,
            update_can_add_a_new_field,
            upsert_inserts_when_missing,
            upsert_replaces_when_present,
            batch_create_returns_ids_in_order,
            batch_read_gives_none_for_missing_ids_in_order,
            batch_update_reports_a_flag_per_record,
            batch_delete_reports_a_flag_per_id,
            batch_create_with_duplicate_ids_creates_nothing,
            batch_create_colliding_with_an_existing_id_creates_nothing,
            count_with_and_without_query,
            clear_returns_the_count_and_empties,
            large_batch_is_complete_and_queryable,
            filter_eq_null_matches_nothing,
            filter_ne_excludes_nulls,
            filter_range_operators,
            filter_in_with_null_matches_only_non_null_values,
            filter_not_in_with_null_in_list_matches_nothing,
            filter_exists_and_not_exists_cover_null_and_missing,
            filter_operators_parsed_from_seed_strings,
            filter_in_and_not_in_on_strings,
            filter_string_comparisons,
            empty_string_is_not_null,
            like_percent_and_underscore,
            like_escaped_wildcards_match_literally,
            like_is_case_sensitive_and_counts_characters,
            regex_is_unanchored_and_case_sensitive,
            filters_combine_with_and_or_not,
            numeric_filters_mix_integers_and_floats,
            filter_on_boolean_and_datetime_columns,
            filter_on_the_id_column,
            sort_multi_key_with_default_null_placement,
            sort_nulls_placement_can_be_overridden,
            sort_on_floats_and_strings,
            limit_and_offset_page_through_sorted_results,
            offset_beyond_the_end_and_limit_zero_are_empty,
            limit_without_sort_returns_that_many_distinct_rows,
            projection_returns_only_the_requested_fields,
            projection_with_filter_and_sort_on_other_fields,
            every_field_type_round_trips,
            typed_nulls_round_trip_and_fix_column_types,
            integer_and_float_extremes_round_trip,
            datetimes_round_trip_with_microseconds,
            json_values_round_trip,
            binary_values_round_trip,
            long_text_round_trips,
            values_are_converted_to_the_column_type,
            wrong_value_type_is_a_type_error_and_changes_nothing,
            special_characters_in_values_round_trip,
            special_characters_in_ids,
            ids_are_exact_case_sensitive_strings,
            field_names_needing_quotes,
            sql_select_where_order_by_matches_record_api,
            sql_aggregates_follow_null_semantics,
            sql_group_by,
            sql_insert_is_visible_to_the_record_api,
            sql_insert_of_a_duplicate_key_inserts_nothing,
            sql_delete_is_visible_to_the_record_api,
            sql_update_is_visible_to_the_record_api,
            sql_update_with_a_bad_value_changes_nothing,
            sql_null_semantics_match_the_record_api,
            sql_sees_records_created_through_the_api_immediately,
            unknown_operator_string_is_rejected,
            filter_on_an_unknown_field_is_a_query_error,
            filter_value_of_the_wrong_type_is_a_type_error,
            sort_or_project_on_an_unknown_field_is_a_query_error,
            malformed_filters_are_rejected,
            a_new_field_adds_a_nullable_column_visible_in_sql,
            new_fields_take_their_value_types,
            concurrent_creates_from_many_tasks,
            concurrent_creates_of_the_same_id_have_one_winner,
            concurrent_upserts_of_the_same_id_leave_one_record,
            read_and_search_return_the_same_record,
            untyped_null_does_not_fix_a_column_type,
            datetimes_are_stored_with_microsecond_precision,
            sql_update_of_the_key_moves_the_record,
            the_collection_is_listed_under_its_attached_name,
            an_integer_key_sorts_and_filters_as_numbers,
            a_collection_without_a_key_still_gives_ids,
            declared_capabilities_match_behaviour,
        );
    };
}

fn person(id: &str, name: &str, age: Option<i64>) -> Record {
    Record::new()
        .with_id(id)
        .with("name", name)
        .with("age", Value::from(age))
}

pub async fn create_then_read_returns_the_same_fields(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let id = env.db.create(person("p1", "Ada", Some(36))).await.unwrap();
    assert_eq!(id, "p1");
    let r = env.db.read("p1").await.unwrap().expect("record p1");
    assert_eq!(r.id(), Some("p1"));
    assert_eq!(r.get("name"), Some(&Value::from("Ada")));
    assert_eq!(r.get("age"), Some(&Value::Int(36)));
}

pub async fn create_generates_an_id_when_none_is_given(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let a = env
        .db
        .create(Record::new().with("name", "x"))
        .await
        .unwrap();
    let b = env
        .db
        .create(Record::new().with("name", "y"))
        .await
        .unwrap();
    assert_ne!(a, b);
    assert!(!a.is_empty());
    assert_eq!(
        env.db.read(&a).await.unwrap().unwrap().get("name"),
        Some(&Value::from("x"))
    );
}

pub async fn create_with_duplicate_id_is_already_exists_and_changes_nothing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db.create(person("d", "first", Some(1))).await.unwrap();
    let e = env
        .db
        .create(person("d", "second", Some(2)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("'d'"), "error names the id: {e}");
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    assert_eq!(
        env.db.read("d").await.unwrap().unwrap().get("name"),
        Some(&Value::from("first"))
    );
}

pub async fn read_missing_id_is_none(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    assert!(env.db.read("nope").await.unwrap().is_none());
    assert!(!env.db.exists("nope").await.unwrap());
}

pub async fn update_replaces_fields(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db.create(person("u", "old", Some(1))).await.unwrap();
    assert!(
        env.db
            .update("u", person("u", "new", Some(2)))
            .await
            .unwrap()
    );
    let r = env.db.read("u").await.unwrap().unwrap();
    assert_eq!(r.get("name"), Some(&Value::from("new")));
    assert_eq!(r.get("age"), Some(&Value::Int(2)));
    assert_eq!(env.db.count(None).await.unwrap(), 1);
}

pub async fn update_missing_id_is_false(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    assert!(
        !env.db
            .update("ghost", person("ghost", "x", None))
            .await
            .unwrap()
    );
    assert_eq!(env.db.count(None).await.unwrap(), 0);
}

pub async fn delete_removes_and_reports(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db.create(person("a", "x", None)).await.unwrap();
    assert!(env.db.delete("a").await.unwrap());
    assert!(!env.db.delete("a").await.unwrap());
    assert!(env.db.read("a").await.unwrap().is_none());
    assert_eq!(env.db.count(None).await.unwrap(), 0);
}

pub async fn filter_eq_on_integers(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    for (i, age) in [Some(30), Some(40), None, Some(30)].into_iter().enumerate() {
        env.db
            .create(person(&format!("p{i}"), "n", age))
            .await
            .unwrap();
    }
    let q = Query::new()
        .filter("age", Operator::Eq, 30)
        .unwrap()
        .sort("id", SortOrder::Asc);
    let ids: Vec<_> = env
        .db
        .search(&q)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["p0", "p3"]);
    // SQL over the same data agrees.
    let rows = env
        .sql_rows(&format!(
            "SELECT id FROM {} WHERE age = 30 ORDER BY id",
            env.table
        ))
        .await;
    assert_eq!(rows, ["| p0 |", "| p3 |"]);
}

// =============================================================================================
// Helpers
// =============================================================================================

/// People used by the filter scenarios: (id, name, age). `e` is created without an `age` field
/// at all (missing), `d` with an explicit NULL age.
const PEOPLE: [(&str, &str, Option<i64>); 5] = [
    ("a", "alice", Some(10)),
    ("b", "bob", Some(20)),
    ("c", "carol", Some(30)),
    ("d", "dave", None),
    ("e", "eve", None),
];

async fn seed_people(env: &Env) {
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
fn people_where(pred: impl Fn(&str, Option<i64>) -> Option<bool>) -> Vec<String> {
    PEOPLE
        .iter()
        .filter(|(_, name, age)| pred(name, *age) == Some(true))
        .map(|(id, _, _)| id.to_string())
        .collect()
}

/// SQL `x IN (list)`: unknown when x is NULL, or when no element matches and one is NULL.
fn in3<T: PartialEq>(x: Option<T>, list: &[Option<T>]) -> Option<bool> {
    let x = x?;
    if list.iter().any(|v| v.as_ref() == Some(&x)) {
        Some(true)
    } else if list.iter().any(Option::is_none) {
        None
    } else {
        Some(false)
    }
}

fn not3(x: Option<bool>) -> Option<bool> {
    x.map(|b| !b)
}

fn or3(x: Option<bool>, y: Option<bool>) -> Option<bool> {
    match (x, y) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn and3(x: Option<bool>, y: Option<bool>) -> Option<bool> {
    match (x, y) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// SQL ordering of two nullable keys for one sort key.
fn sql_order<T: Ord>(a: &Option<T>, b: &Option<T>, desc: bool, nulls_first: bool) -> Ordering {
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
fn sql_like(value: &str, pattern: &str) -> bool {
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
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL list of nullable integers: `10, NULL`.
fn sql_int_list(list: &[Option<i64>]) -> String {
    list.iter()
        .map(|v| v.map_or("NULL".to_string(), |i| i.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn int_values(list: &[Option<i64>]) -> Vec<Value> {
    list.iter().map(|v| Value::from(*v)).collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn ids_of(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.id().expect("a searched record has an id").to_string())
        .collect()
}

/// The ids a query finds, sorted (for queries whose order is unspecified).
async fn search_ids(env: &Env, q: &Query) -> Vec<String> {
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
async fn search_ids_ordered(env: &Env, q: &Query) -> Vec<String> {
    ids_of(
        &env.db
            .search(q)
            .await
            .unwrap_or_else(|e| panic!("search {q}: {e}")),
    )
}

/// Runs SQL and returns each row as its values.
async fn sql_values(env: &Env, sql: &str) -> Vec<Vec<Value>> {
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
async fn sql_strings(env: &Env, sql: &str) -> Vec<String> {
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
async fn sql_int(env: &Env, sql: &str) -> i64 {
    match &sql_values(env, sql).await[..] {
        [row] => match &row[..] {
            [Value::Int(n)] => *n,
            other => panic!("expected one integer from {sql}, got {other:?}"),
        },
        other => panic!("expected one row from {sql}, got {other:?}"),
    }
}

fn is_null_or_missing(r: &Record, field: &str) -> bool {
    r.get(field).is_none_or(Value::is_null)
}

fn micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("timestamp in range")
}

// =============================================================================================
// CRUD and batch operations
// =============================================================================================

pub async fn create_uses_the_key_field_as_id(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let id = env
        .db
        .create(Record::new().with("id", "k1").with("name", "keyed"))
        .await
        .unwrap();
    assert_eq!(id, "k1");
    let r = env.db.read("k1").await.unwrap().expect("record k1");
    assert_eq!(r.id(), Some("k1"));
    assert_eq!(r.get("id"), Some(&Value::from("k1")));
    assert_eq!(r.get("name"), Some(&Value::from("keyed")));
    // The id is also the key column in SQL.
    assert_eq!(
        sql_strings(
            &env,
            &format!("SELECT name FROM {} WHERE id = 'k1'", env.table)
        )
        .await,
        ["keyed"]
    );
}

pub async fn record_id_disagreeing_with_key_field_is_rejected(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let r = Record::new().with_id("a").with("id", "b").with("name", "x");
    assert!(
        env.db.create(r).await.is_err(),
        "record id 'a' with key field 'b' must be rejected"
    );
    assert_eq!(env.db.count(None).await.unwrap(), 0);
    assert!(!env.db.exists("a").await.unwrap());
    assert!(!env.db.exists("b").await.unwrap());
    // An update whose key field names another id is rejected too, and changes nothing.
    env.db.create(person("a", "kept", Some(1))).await.unwrap();
    let r = Record::new().with("id", "b").with("name", "moved");
    assert!(
        env.db.update("a", r).await.is_err(),
        "update of 'a' with key field 'b'"
    );
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    assert!(!env.db.exists("b").await.unwrap());
    assert_eq!(
        env.db.read("a").await.unwrap().unwrap().get("name"),
        Some(&Value::from("kept"))
    );
}

pub async fn exists_tracks_create_and_delete(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    assert!(!env.db.exists("x").await.unwrap());
    env.db.create(person("x", "n", Some(1))).await.unwrap();
    assert!(env.db.exists("x").await.unwrap());
    assert!(!env.db.exists("X").await.unwrap(), "ids are case-sensitive");
    assert!(env.db.delete("x").await.unwrap());
    assert!(!env.db.exists("x").await.unwrap());
}

pub async fn delete_then_recreate_the_same_id(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db.create(person("r", "first", Some(1))).await.unwrap();
    // Force the first version through a full scan before deleting it.
    assert_eq!(env.db.search(&Query::new()).await.unwrap().len(), 1);
    assert!(env.db.delete("r").await.unwrap());
    env.db.create(person("r", "second", Some(2))).await.unwrap();
    let r = env.db.read("r").await.unwrap().unwrap();
    assert_eq!(r.get("name"), Some(&Value::from("second")));
    assert_eq!(r.get("age"), Some(&Value::Int(2)));
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    assert_eq!(
        sql_values(&env, &format!("SELECT name, age FROM {}", env.table)).await,
        vec![vec![Value::from("second"), Value::Int(2)]]
    );
}

pub async fn update_replaces_the_whole_record(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db.create(person("u", "old", Some(5))).await.unwrap();
    assert!(
        env.db
            .update("u", Record::new().with("name", "new"))
            .await
            .unwrap()
    );
    let r = env.db.read("u").await.unwrap().unwrap();
    assert_eq!(r.id(), Some("u"));
    assert_eq!(r.get("name"), Some(&Value::from("new")));
    assert!(
        is_null_or_missing(&r, "age"),
        "a field left out of an update is gone: {r:?}"
    );
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    let q = Query::new()
        .filter("age", Operator::NotExists, Operand::None)
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["u"]);
}

pub async fn update_can_add_a_new_field(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db.create(person("a", "x", Some(1))).await.unwrap();
    env.db.create(person("b", "y", Some(2))).await.unwrap();
    assert!(
        env.db
            .update("b", person("b", "y", Some(2)).with("color", "red"))
            .await
            .unwrap()
    );
    assert_eq!(
        env.db.read("b").await.unwrap().unwrap().get("color"),
        Some(&Value::from("red"))
    );
    assert_eq!(
        sql_values(
            &env,
            &format!("SELECT id, color FROM {} ORDER BY id", env.table)
        )
        .await,
        vec![
            vec![Value::from("a"), Value::Null],
            vec![Value::from("b"), Value::from("red")]
        ]
    );
}

pub async fn upsert_inserts_when_missing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let id = env
        .db
        .upsert("u1", Record::new().with("name", "fresh"))
        .await
        .unwrap();
    assert_eq!(id, "u1");
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    let r = env.db.read("u1").await.unwrap().expect("upserted record");
    assert_eq!(r.id(), Some("u1"));
    assert_eq!(r.get("name"), Some(&Value::from("fresh")));
}

pub async fn upsert_replaces_when_present(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db
        .create(person("u1", "before", Some(1)))
        .await
        .unwrap();
    env.db
        .create(person("other", "untouched", Some(9)))
        .await
        .unwrap();
    let id = env
        .db
        .upsert("u1", person("u1", "after", Some(2)))
        .await
        .unwrap();
    assert_eq!(id, "u1");
    assert_eq!(env.db.count(None).await.unwrap(), 2);
    let r = env.db.read("u1").await.unwrap().unwrap();
    assert_eq!(r.get("name"), Some(&Value::from("after")));
    assert_eq!(r.get("age"), Some(&Value::Int(2)));
    let o = env.db.read("other").await.unwrap().unwrap();
    assert_eq!(o.get("name"), Some(&Value::from("untouched")));
    assert_eq!(
        sql_int(
            &env,
            &format!("SELECT COUNT(*) FROM {} WHERE name = 'before'", env.table)
        )
        .await,
        0
    );
}

pub async fn batch_create_returns_ids_in_order(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let ids = env
        .db
        .batch_create(vec![
            person("x1", "one", Some(1)),
            Record::new().with("name", "two").with("age", 2),
            person("x3", "three", Some(3)),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], "x1");
    assert_eq!(ids[2], "x3");
    assert!(
        !ids[1].is_empty() && ids[1] != "x1" && ids[1] != "x3",
        "generated id {:?}",
        ids[1]
    );
    for (id, name) in ids.iter().zip(["one", "two", "three"]) {
        let r = env
            .db
            .read(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("record {id}"));
        assert_eq!(r.get("name"), Some(&Value::from(name)));
    }
    assert_eq!(env.db.count(None).await.unwrap(), 3);
}

pub async fn batch_read_gives_none_for_missing_ids_in_order(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db
        .batch_create(vec![person("a", "x", Some(1)), person("b", "y", Some(2))])
        .await
        .unwrap();
    let asked = strings(&["b", "missing", "a", "b"]);
    let got = env.db.batch_read(&asked).await.unwrap();
    assert_eq!(got.len(), 4);
    let names: Vec<Option<Value>> = got
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|r| r.get("name").cloned().unwrap_or_default())
        })
        .collect();
    assert_eq!(
        names,
        [
            Some(Value::from("y")),
            None,
            Some(Value::from("x")),
            Some(Value::from("y"))
        ]
    );
    assert_eq!(got[0].as_ref().unwrap().id(), Some("b"));
    assert_eq!(got[2].as_ref().unwrap().id(), Some("a"));
    assert!(env.db.batch_read(&[]).await.unwrap().is_empty());
}

pub async fn batch_update_reports_a_flag_per_record(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db
        .batch_create(vec![person("a", "x", Some(1)), person("b", "y", Some(2))])
        .await
        .unwrap();
    let flags = env
        .db
        .batch_update(vec![
            ("a".into(), person("a", "x2", Some(10))),
            ("ghost".into(), person("ghost", "g", Some(0))),
            ("b".into(), person("b", "y2", Some(20))),
        ])
        .await
        .unwrap();
    assert_eq!(flags, [true, false, true]);
    assert_eq!(
        env.db.count(None).await.unwrap(),
        2,
        "a missing id is not created"
    );
    assert!(!env.db.exists("ghost").await.unwrap());
    assert_eq!(
        env.db.read("a").await.unwrap().unwrap().get("age"),
        Some(&Value::Int(10))
    );
    assert_eq!(
        env.db.read("b").await.unwrap().unwrap().get("name"),
        Some(&Value::from("y2"))
    );
}

pub async fn batch_delete_reports_a_flag_per_id(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db
        .batch_create(vec![
            person("a", "x", Some(1)),
            person("b", "y", Some(2)),
            person("c", "z", Some(3)),
        ])
        .await
        .unwrap();
    let flags = env
        .db
        .batch_delete(&strings(&["a", "nope", "c", "a"]))
        .await
        .unwrap();
    assert_eq!(flags, [true, false, true, false]);
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    assert_eq!(search_ids(&env, &Query::new()).await, ["b"]);
}

pub async fn batch_create_with_duplicate_ids_creates_nothing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let e = env
        .db
        .batch_create(vec![
            person("a", "x", Some(1)),
            person("b", "y", Some(2)),
            person("a", "z", Some(3)),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(env.db.count(None).await.unwrap(), 0);
    assert!(env.db.read("a").await.unwrap().is_none());
    assert!(env.db.read("b").await.unwrap().is_none());
    assert_eq!(
        sql_int(&env, &format!("SELECT COUNT(*) FROM {}", env.table)).await,
        0
    );
}

pub async fn batch_create_colliding_with_an_existing_id_creates_nothing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db
        .create(person("a", "original", Some(1)))
        .await
        .unwrap();
    let e = env
        .db
        .batch_create(vec![
            person("n1", "new", Some(2)),
            person("a", "clash", Some(3)),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    assert!(!env.db.exists("n1").await.unwrap());
    assert_eq!(
        env.db.read("a").await.unwrap().unwrap().get("name"),
        Some(&Value::from("original"))
    );
}

pub async fn count_with_and_without_query(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    assert_eq!(env.db.count(None).await.unwrap(), 0);
    seed_people(&env).await;
    assert_eq!(env.db.count(None).await.unwrap(), PEOPLE.len() as u64);
    assert_eq!(
        env.db.count(Some(&Query::new())).await.unwrap(),
        PEOPLE.len() as u64
    );
    let q = Query::new().filter("age", Operator::Gt, 15).unwrap();
    let expected = people_where(|_, a| a.map(|a| a > 15)).len() as u64;
    assert_eq!(env.db.count(Some(&q)).await.unwrap(), expected);
    let q = Query::new()
        .filter("age", Operator::NotExists, Operand::None)
        .unwrap();
    let expected = people_where(|_, a| Some(a.is_none())).len() as u64;
    assert_eq!(env.db.count(Some(&q)).await.unwrap(), expected);
    let q = Query::new().filter("name", Operator::Eq, "nobody").unwrap();
    assert_eq!(env.db.count(Some(&q)).await.unwrap(), 0);
}

pub async fn clear_returns_the_count_and_empties(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    assert_eq!(env.db.clear().await.unwrap(), PEOPLE.len() as u64);
    assert_eq!(env.db.count(None).await.unwrap(), 0);
    assert!(env.db.search(&Query::new()).await.unwrap().is_empty());
    assert!(env.db.read("a").await.unwrap().is_none());
    assert_eq!(
        sql_int(&env, &format!("SELECT COUNT(*) FROM {}", env.table)).await,
        0
    );
    assert_eq!(
        env.db.clear().await.unwrap(),
        0,
        "clearing an empty collection clears nothing"
    );
    // The collection stays usable, the same ids can be created again.
    env.db.create(person("a", "again", Some(1))).await.unwrap();
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    assert_eq!(
        env.db.read("a").await.unwrap().unwrap().get("name"),
        Some(&Value::from("again"))
    );
}

pub async fn large_batch_is_complete_and_queryable(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    const N: i64 = 3000;
    let records: Vec<Record> = (0..N)
        .map(|i| Record::new().with_id(format!("r{i:05}")).with("n", i))
        .collect();
    let ids = env.db.batch_create(records).await.unwrap();
    assert_eq!(ids.len(), N as usize);
    assert_eq!(env.db.count(None).await.unwrap(), N as u64);
    let q = Query::new().filter("n", Operator::Lt, 1000).unwrap();
    assert_eq!(env.db.count(Some(&q)).await.unwrap(), 1000);
    let top = Query::new().sort("n", SortOrder::Desc).limit(1);
    assert_eq!(
        search_ids_ordered(&env, &top).await,
        [format!("r{:05}", N - 1)]
    );
    assert_eq!(
        env.db.read("r01234").await.unwrap().unwrap().get("n"),
        Some(&Value::Int(1234))
    );
    let sum: i64 = (0..N).sum();
    assert_eq!(
        sql_int(&env, &format!("SELECT SUM(n) FROM {}", env.table)).await,
        sum
    );
}

// =============================================================================================
// Operators and SQL NULL semantics
// =============================================================================================

pub async fn filter_eq_null_matches_nothing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    for field in ["age", "name"] {
        let q = Query::new()
            .filter(field, Operator::Eq, Value::Null)
            .unwrap();
        assert!(
            search_ids(&env, &q).await.is_empty(),
            "{field} = NULL matched rows"
        );
        let q = Query::new()
            .filter(field, Operator::Ne, Value::Null)
            .unwrap();
        assert!(
            search_ids(&env, &q).await.is_empty(),
            "{field} != NULL matched rows"
        );
    }
    assert_eq!(
        sql_int(
            &env,
            &format!("SELECT COUNT(*) FROM {} WHERE age = NULL", env.table)
        )
        .await,
        0
    );
}

pub async fn filter_ne_excludes_nulls(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new().filter("age", Operator::Ne, 20).unwrap();
    let expected = people_where(|_, a| a.map(|a| a != 20));
    assert_eq!(expected, ["a", "c"]);
    assert_eq!(search_ids(&env, &q).await, expected);
    let sql = format!("SELECT id FROM {} WHERE age <> 20 ORDER BY id", env.table);
    assert_eq!(sql_strings(&env, &sql).await, expected);
    let q = Query::new().filter("name", Operator::Ne, "bob").unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        people_where(|n, _| Some(n != "bob"))
    );
}

pub async fn filter_range_operators(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    type Cmp = fn(i64, i64) -> bool;
    let cases: [(Operator, &str, Cmp); 4] = [
        (Operator::Gt, ">", |a, b| a > b),
        (Operator::Ge, ">=", |a, b| a >= b),
        (Operator::Lt, "<", |a, b| a < b),
        (Operator::Le, "<=", |a, b| a <= b),
    ];
    for (op, sym, cmp) in cases {
        for bound in [5, 10, 20, 25, 30, 35] {
            let q = Query::new().filter("age", op, bound).unwrap();
            let expected = people_where(|_, a| a.map(|a| cmp(a, bound)));
            assert_eq!(search_ids(&env, &q).await, expected, "age {sym} {bound}");
            let sql = format!(
                "SELECT id FROM {} WHERE age {sym} {bound} ORDER BY id",
                env.table
            );
            assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
        }
    }
}

pub async fn filter_in_with_null_matches_only_non_null_values(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let lists: [&[Option<i64>]; 4] = [
        &[Some(10), Some(30)],
        &[Some(10), None],
        &[None],
        &[Some(99), Some(20), Some(20)],
    ];
    for list in lists {
        let q = Query::new()
            .filter("age", Operator::In, int_values(list))
            .unwrap();
        let expected = people_where(|_, a| in3(a, list));
        assert_eq!(search_ids(&env, &q).await, expected, "age IN {list:?}");
        let sql = format!(
            "SELECT id FROM {} WHERE age IN ({}) ORDER BY id",
            env.table,
            sql_int_list(list)
        );
        assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
    }
    // Spelled out: IN (10, NULL) is just the row with 10.
    let q = Query::new()
        .filter("age", Operator::In, vec![Value::Int(10), Value::Null])
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a"]);
}

pub async fn filter_not_in_with_null_in_list_matches_nothing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let lists: [&[Option<i64>]; 4] = [
        &[Some(10)],
        &[Some(10), Some(30), Some(77)],
        &[Some(10), None],
        &[None],
    ];
    for list in lists {
        let q = Query::new()
            .filter("age", Operator::NotIn, int_values(list))
            .unwrap();
        let expected = people_where(|_, a| not3(in3(a, list)));
        assert_eq!(search_ids(&env, &q).await, expected, "age NOT IN {list:?}");
        let sql = format!(
            "SELECT id FROM {} WHERE age NOT IN ({}) ORDER BY id",
            env.table,
            sql_int_list(list)
        );
        assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
    }
    let q = Query::new()
        .filter("age", Operator::NotIn, vec![Value::Int(10), Value::Null])
        .unwrap();
    assert!(
        search_ids(&env, &q).await.is_empty(),
        "NOT IN with a NULL element matches nothing"
    );
    let q = Query::new()
        .filter("age", Operator::NotIn, vec![10])
        .unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        ["b", "c"],
        "NOT IN excludes NULL ages"
    );
}

pub async fn filter_exists_and_not_exists_cover_null_and_missing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new()
        .filter("age", Operator::Exists, Operand::None)
        .unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        people_where(|_, a| Some(a.is_some()))
    );
    assert_eq!(search_ids(&env, &q).await, ["a", "b", "c"]);
    let q = Query::new()
        .filter("age", Operator::NotExists, Operand::None)
        .unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        ["d", "e"],
        "explicit NULL and missing field"
    );
    let q = Query::new()
        .filter("name", Operator::NotExists, Operand::None)
        .unwrap();
    assert!(search_ids(&env, &q).await.is_empty());
    let sql = format!("SELECT id FROM {} WHERE age IS NULL ORDER BY id", env.table);
    assert_eq!(sql_strings(&env, &sql).await, ["d", "e"]);
    let sql = format!(
        "SELECT id FROM {} WHERE age IS NOT NULL ORDER BY id",
        env.table
    );
    assert_eq!(sql_strings(&env, &sql).await, ["a", "b", "c"]);
}

pub async fn filter_operators_parsed_from_seed_strings(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    type Pred = Box<dyn Fn(Option<i64>) -> Option<bool>>;
    fn p(f: impl Fn(Option<i64>) -> Option<bool> + 'static) -> Pred {
        Box::new(f)
    }
    let cases: Vec<(&str, Operand, Pred)> = vec![
        ("=", 20.into(), p(|a: Option<i64>| a.map(|a| a == 20))),
        ("==", 20.into(), p(|a: Option<i64>| a.map(|a| a == 20))),
        ("!=", 20.into(), p(|a: Option<i64>| a.map(|a| a != 20))),
        ("<>", 20.into(), p(|a: Option<i64>| a.map(|a| a != 20))),
        (">", 20.into(), p(|a: Option<i64>| a.map(|a| a > 20))),
        (">=", 25.into(), p(|a: Option<i64>| a.map(|a| a >= 25))),
        ("<", 20.into(), p(|a: Option<i64>| a.map(|a| a < 20))),
        ("<=", 20.into(), p(|a: Option<i64>| a.map(|a| a <= 20))),
        (
            "IN",
            vec![10, 30].into(),
            p(|a: Option<i64>| in3(a, &[Some(10), Some(30)])),
        ),
        (
            "in",
            vec![20].into(),
            p(|a: Option<i64>| in3(a, &[Some(20)])),
        ),
        (
            "NOT IN",
            vec![10].into(),
            p(|a: Option<i64>| not3(in3(a, &[Some(10)]))),
        ),
        (
            "not  in",
            vec![10, 20].into(),
            p(|a: Option<i64>| not3(in3(a, &[Some(10), Some(20)]))),
        ),
        (
            "EXISTS",
            Operand::None,
            p(|a: Option<i64>| Some(a.is_some())),
        ),
        (
            "NOT EXISTS",
            Operand::None,
            p(|a: Option<i64>| Some(a.is_none())),
        ),
        (
            "not exists",
            Operand::None,
            p(|a: Option<i64>| Some(a.is_none())),
        ),
    ];
    for (op, operand, pred) in cases {
        let q = Query::new()
            .try_filter("age", op, operand)
            .unwrap_or_else(|e| panic!("operator {op:?}: {e}"));
        assert_eq!(
            search_ids(&env, &q).await,
            people_where(|_, a| pred(a)),
            "age {op}"
        );
    }
    let q = Query::new().try_filter("age", ">=", 25).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["c"]);
    let q = Query::new().try_filter("name", "LIKE", "%o%").unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        people_where(|n, _| Some(n.contains('o')))
    );
    let q = Query::new().try_filter("name", "REGEX", "^[ab]").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a", "b"]);
}

pub async fn filter_in_and_not_in_on_strings(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let names = [Some("apple"), Some("banana"), Some("cherry"), None];
    for (i, n) in names.iter().enumerate() {
        env.db
            .create(
                Record::new()
                    .with_id(format!("s{i}"))
                    .with("name", Value::from(*n)),
            )
            .await
            .unwrap();
    }
    env.db
        .create(Record::new().with_id("s4").with("age", 1))
        .await
        .unwrap(); // no name at all
    let mut all: Vec<(String, Option<&str>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("s{i}"), *n))
        .collect();
    all.push(("s4".into(), None));
    let lists: [&[Option<&str>]; 4] = [
        &[Some("apple"), Some("cherry"), Some("zzz")],
        &[Some("banana"), None],
        &[Some("apple")],
        &[Some("apple"), None],
    ];
    for list in lists {
        let values: Vec<Value> = list.iter().map(|v| Value::from(*v)).collect();
        let sql_list = list
            .iter()
            .map(|v| v.map_or("NULL".to_string(), lit))
            .collect::<Vec<_>>()
            .join(", ");
        for negated in [false, true] {
            let expected: Vec<String> = all
                .iter()
                .filter(|(_, n)| {
                    let r = in3(*n, list);
                    (if negated { not3(r) } else { r }) == Some(true)
                })
                .map(|(id, _)| id.clone())
                .collect();
            let op = if negated {
                Operator::NotIn
            } else {
                Operator::In
            };
            let q = Query::new().filter("name", op, values.clone()).unwrap();
            assert_eq!(search_ids(&env, &q).await, expected, "name {op} {list:?}");
            let sql = format!(
                "SELECT id FROM {} WHERE name {} ({sql_list}) ORDER BY id",
                env.table,
                if negated { "NOT IN" } else { "IN" }
            );
            assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
        }
    }
}

pub async fn filter_string_comparisons(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    type Cmp = fn(&str, &str) -> bool;
    let cases: [(Operator, Cmp); 6] = [
        (Operator::Eq, |a, b| a == b),
        (Operator::Ne, |a, b| a != b),
        (Operator::Gt, |a, b| a > b),
        (Operator::Ge, |a, b| a >= b),
        (Operator::Lt, |a, b| a < b),
        (Operator::Le, |a, b| a <= b),
    ];
    for (op, cmp) in cases {
        for bound in ["bob", "c", "dave", "zed", "a"] {
            let q = Query::new().filter("name", op, bound).unwrap();
            let expected = people_where(|n, _| Some(cmp(n, bound)));
            assert_eq!(search_ids(&env, &q).await, expected, "name {op} {bound:?}");
        }
    }
}

pub async fn empty_string_is_not_null(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db
        .create(Record::new().with_id("x").with("name", "x"))
        .await
        .unwrap();
    env.db
        .create(Record::new().with_id("empty").with("name", ""))
        .await
        .unwrap();
    env.db
        .create(Record::new().with_id("null").with("name", Value::Null))
        .await
        .unwrap();
    assert_eq!(
        env.db.read("empty").await.unwrap().unwrap().get("name"),
        Some(&Value::from(""))
    );
    let q = Query::new().filter("name", Operator::Eq, "").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["empty"]);
    let q = Query::new()
        .filter("name", Operator::Exists, Operand::None)
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["empty", "x"]);
    let q = Query::new()
        .filter("name", Operator::NotExists, Operand::None)
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["null"]);
    let sql = format!("SELECT id FROM {} WHERE name = '' ORDER BY id", env.table);
    assert_eq!(sql_strings(&env, &sql).await, ["empty"]);
    let sql = format!("SELECT COUNT(name) FROM {}", env.table);
    assert_eq!(sql_int(&env, &sql).await, 2);
}

/// Names for the LIKE and REGEX scenarios (`None` is NULL).
const PATTERN_NAMES: [Option<&str>; 12] = [
    Some("a%b"),
    Some("axb"),
    Some("a_b"),
    Some("ab"),
    Some("abc"),
    Some("a\\b"),
    Some("A%B"),
    Some("\u{1F600}x"),
    Some("\u{e9}x"),
    Some(""),
    Some("xa%bx"),
    None,
];

async fn seed_pattern_names(env: &Env) -> Vec<(String, Option<&'static str>)> {
    let mut rows = Vec::new();
    for (i, n) in PATTERN_NAMES.iter().enumerate() {
        let id = format!("l{i:02}");
        env.db
            .create(
                Record::new()
                    .with_id(id.clone())
                    .with("name", Value::from(*n)),
            )
            .await
            .unwrap();
        rows.push((id, *n));
    }
    rows
}

async fn check_like(env: &Env, rows: &[(String, Option<&str>)], pattern: &str) -> Vec<String> {
    let expected: Vec<String> = rows
        .iter()
        .filter(|(_, n)| n.is_some_and(|n| sql_like(n, pattern)))
        .map(|(id, _)| id.clone())
        .collect();
    let q = Query::new()
        .filter("name", Operator::Like, pattern)
        .unwrap();
    assert_eq!(
        search_ids(env, &q).await,
        expected,
        "record API: name LIKE {pattern:?}"
    );
    let sql = format!(
        "SELECT id FROM {} WHERE name LIKE {} ORDER BY id",
        env.table,
        lit(pattern)
    );
    assert_eq!(sql_strings(env, &sql).await, expected, "{sql}");
    expected
}

/// The names of the rows with these ids.
fn names_of(rows: &[(String, Option<&'static str>)], ids: &[String]) -> Vec<&'static str> {
    ids.iter()
        .map(|id| {
            rows.iter()
                .find(|(i, _)| i == id)
                .and_then(|(_, n)| *n)
                .unwrap()
        })
        .collect()
}

pub async fn like_percent_and_underscore(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let rows = seed_pattern_names(&env).await;
    for p in [
        "a%", "%b", "a_b", "%", "", "_", "__", "a%b", "%x%", "abc", "a%c", "%%b%",
    ] {
        check_like(&env, &rows, p).await;
    }
    // Spot checks that pin the matcher itself.
    let got = check_like(&env, &rows, "a_b").await;
    assert_eq!(names_of(&rows, &got), ["a%b", "axb", "a_b", "a\\b"]);
    let got = check_like(&env, &rows, "%").await;
    assert_eq!(
        got.len(),
        PATTERN_NAMES.len() - 1,
        "% matches every non-NULL value, even ''"
    );
    // NOT LIKE leaves NULL out as well.
    let like = Filter::new("name", Operator::Like, "a%").unwrap();
    let q = Query::new().where_expr(FilterExpr::Not(Box::new(FilterExpr::Cond(like))));
    let expected: Vec<String> = rows
        .iter()
        .filter(|(_, n)| n.is_some_and(|n| !sql_like(n, "a%")))
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(search_ids(&env, &q).await, expected);
    let sql = format!(
        "SELECT id FROM {} WHERE name NOT LIKE 'a%' ORDER BY id",
        env.table
    );
    assert_eq!(sql_strings(&env, &sql).await, expected);
    // A NULL pattern matches nothing.
    let q = Query::new()
        .filter("name", Operator::Like, Value::Null)
        .unwrap();
    assert!(search_ids(&env, &q).await.is_empty());
}

pub async fn like_escaped_wildcards_match_literally(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let rows = seed_pattern_names(&env).await;
    let got = check_like(&env, &rows, "a\\%b").await;
    assert_eq!(names_of(&rows, &got), ["a%b"]);
    let got = check_like(&env, &rows, "a\\_b").await;
    assert_eq!(names_of(&rows, &got), ["a_b"]);
    let got = check_like(&env, &rows, "a\\\\b").await;
    assert_eq!(names_of(&rows, &got), ["a\\b"]);
    let got = check_like(&env, &rows, "%\\%%").await;
    assert_eq!(names_of(&rows, &got), ["a%b", "A%B", "xa%bx"]);
    check_like(&env, &rows, "\\%").await;
}

pub async fn like_is_case_sensitive_and_counts_characters(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let rows = seed_pattern_names(&env).await;
    let got = check_like(&env, &rows, "A%").await;
    assert_eq!(names_of(&rows, &got), ["A%B"]);
    // `_` is one character, even when it takes several bytes in UTF-8.
    let got = check_like(&env, &rows, "_x").await;
    assert_eq!(names_of(&rows, &got), ["\u{1F600}x", "\u{e9}x"]);
    check_like(&env, &rows, "\u{e9}%").await;
    check_like(&env, &rows, "A_B").await;
}

pub async fn regex_is_unanchored_and_case_sensitive(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let rows = seed_pattern_names(&env).await;
    for p in [
        "^a.b$",
        "b$",
        "x",
        "^A",
        "^(ab|abc)$",
        "%",
        "^$",
        "[0-9]",
        "^.x$",
        "B",
    ] {
        let re = regex::Regex::new(p).unwrap();
        let expected: Vec<String> = rows
            .iter()
            .filter(|(_, n)| n.is_some_and(|n| re.is_match(n)))
            .map(|(id, _)| id.clone())
            .collect();
        let q = Query::new().filter("name", Operator::Regex, p).unwrap();
        assert_eq!(search_ids(&env, &q).await, expected, "name REGEX {p:?}");
        let sql = format!(
            "SELECT id FROM {} WHERE name ~ {} ORDER BY id",
            env.table,
            lit(p)
        );
        assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
    }
    let q = Query::new().filter("name", Operator::Regex, "x").unwrap();
    let got = search_ids(&env, &q).await;
    assert_eq!(
        names_of(&rows, &got),
        ["axb", "\u{1F600}x", "\u{e9}x", "xa%bx"]
    );
}

pub async fn filters_combine_with_and_or_not(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let cond = |f: &str, op: Operator, v: Operand| FilterExpr::Cond(Filter::new(f, op, v).unwrap());
    // NOT (age > 15): NOT of unknown stays unknown, so NULL ages are not returned.
    let q = Query::new().where_expr(FilterExpr::Not(Box::new(cond(
        "age",
        Operator::Gt,
        15.into(),
    ))));
    let expected = people_where(|_, a| not3(a.map(|a| a > 15)));
    assert_eq!(expected, ["a"]);
    assert_eq!(search_ids(&env, &q).await, expected);
    // age < 15 OR name = 'dave'.
    let q = Query::new().where_expr(FilterExpr::Or(vec![
        cond("age", Operator::Lt, 15.into()),
        cond("name", Operator::Eq, "dave".into()),
    ]));
    let expected = people_where(|n, a| or3(a.map(|a| a < 15), Some(n == "dave")));
    assert_eq!(search_ids(&env, &q).await, expected);
    // Two filters are AND-ed.
    let q = Query::new()
        .filter("age", Operator::Ge, 10)
        .unwrap()
        .filter("name", Operator::Ne, "bob")
        .unwrap();
    let expected = people_where(|n, a| and3(a.map(|a| a >= 10), Some(n != "bob")));
    assert_eq!(search_ids(&env, &q).await, expected);
    // NOT (age IN (10, NULL)): unknown for every non-10 row, false for 10.
    let q = Query::new().where_expr(FilterExpr::Not(Box::new(cond(
        "age",
        Operator::In,
        vec![Value::Int(10), Value::Null].into(),
    ))));
    assert!(search_ids(&env, &q).await.is_empty());
    // The SQL engine agrees.
    let sql = format!(
        "SELECT id FROM {} WHERE NOT (age > 15) OR name = 'eve' ORDER BY id",
        env.table
    );
    let expected = people_where(|n, a| or3(not3(a.map(|a| a > 15)), Some(n == "eve")));
    assert_eq!(sql_strings(&env, &sql).await, expected);
}

pub async fn numeric_filters_mix_integers_and_floats(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new().filter("age", Operator::Gt, 15.5).unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        people_where(|_, a| a.map(|a| a as f64 > 15.5))
    );
    let q = Query::new()
        .filter("age", Operator::In, vec![10.0, 20.5])
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a"]);
    // A FLOAT column compared with integers.
    let scores = [
        ("a", Some(1.5)),
        ("b", Some(2.0)),
        ("c", Some(2.5)),
        ("d", None),
    ];
    for (id, s) in scores {
        let mut r = env.db.read(id).await.unwrap().unwrap();
        r.set_field(Field::typed("score", Value::from(s), FieldType::Float).unwrap());
        assert!(env.db.update(id, r).await.unwrap());
    }
    let q = Query::new().filter("score", Operator::Ge, 2).unwrap();
    let expected: Vec<String> = scores
        .iter()
        .filter(|(_, s)| s.is_some_and(|s| s >= 2.0))
        .map(|(id, _)| id.to_string())
        .collect();
    assert_eq!(search_ids(&env, &q).await, expected);
    let q = Query::new().filter("score", Operator::Eq, 2).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["b"]);
    let q = Query::new().filter("score", Operator::Lt, 2.25).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a", "b"]);
}

pub async fn filter_on_boolean_and_datetime_columns(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let t0 = micros(1_685_620_800_000_001); // 2023-06-01T12:00:00.000001Z
    let t1 = micros(1_709_251_200_000_000); // 2024-03-01T00:00:00Z
    let t2 = micros(1_709_251_200_000_001); // one microsecond later
    let rows = [
        ("p", Some(true), Some(t0)),
        ("q", Some(false), Some(t1)),
        ("r", None, Some(t2)),
        ("s", Some(true), None),
    ];
    for (id, flag, at) in rows {
        let mut r = Record::new().with_id(id);
        r.set_field(Field::typed("flag", Value::from(flag), FieldType::Boolean).unwrap());
        r.set_field(Field::typed("at", Value::from(at), FieldType::DateTime).unwrap());
        env.db.create(r).await.unwrap();
    }
    let q = Query::new().filter("flag", Operator::Eq, true).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["p", "s"]);
    let q = Query::new().filter("flag", Operator::Ne, true).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["q"], "!= true excludes NULL");
    let q = Query::new().filter("at", Operator::Gt, t1).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["r"], "microseconds count");
    let q = Query::new().filter("at", Operator::Eq, t2).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["r"]);
    let q = Query::new()
        .filter("at", Operator::Ge, "2024-01-01T00:00:00Z")
        .unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        ["q", "r"],
        "RFC 3339 string against a DATETIME"
    );
    let q = Query::new()
        .filter("at", Operator::Lt, "2024-03-01 00:00:00")
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["p"]);
    let q = Query::new()
        .filter("at", Operator::NotExists, Operand::None)
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["s"]);
    let sql = format!("SELECT id FROM {} WHERE flag ORDER BY id", env.table);
    assert_eq!(sql_strings(&env, &sql).await, ["p", "s"]);
    let sql = format!(
        "SELECT id FROM {} WHERE at > TIMESTAMP '2024-03-01T00:00:00Z' ORDER BY id",
        env.table
    );
    assert_eq!(sql_strings(&env, &sql).await, ["r"]);
}

pub async fn filter_on_the_id_column(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new().filter("id", Operator::Eq, "b").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["b"]);
    let q = Query::new()
        .filter("id", Operator::In, vec!["a", "c", "zz"])
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a", "c"]);
    let q = Query::new().filter("id", Operator::Ne, "a").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["b", "c", "d", "e"]);
    let q = Query::new().filter("id", Operator::Gt, "c").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["d", "e"]);
}

// =============================================================================================
// Sorting, paging, projection
// =============================================================================================

/// (id, grp, score) with NULLs in both sort keys and a tie (r1, r8).
const SORT_ROWS: [(&str, Option<&str>, Option<i64>); 8] = [
    ("r1", Some("x"), Some(3)),
    ("r2", Some("x"), None),
    ("r3", Some("x"), Some(1)),
    ("r4", Some("y"), Some(2)),
    ("r5", Some("y"), None),
    ("r6", None, Some(5)),
    ("r7", None, None),
    ("r8", Some("x"), Some(3)),
];

async fn seed_sort_rows(env: &Env) {
    for (id, grp, score) in SORT_ROWS {
        env.db
            .create(
                Record::new()
                    .with_id(id)
                    .with("grp", Value::from(grp))
                    .with("score", Value::from(score)),
            )
            .await
            .unwrap();
    }
}

/// SORT_ROWS ordered by (grp, score, id) with the given directions and NULL placements.
fn sorted_sort_rows(grp: (bool, bool), score: (bool, bool)) -> Vec<String> {
    let mut rows = SORT_ROWS.to_vec();
    rows.sort_by(|a, b| {
        sql_order(&a.1, &b.1, grp.0, grp.1)
            .then(sql_order(&a.2, &b.2, score.0, score.1))
            .then(a.0.cmp(b.0))
    });
    rows.into_iter().map(|r| r.0.to_string()).collect()
}

pub async fn sort_multi_key_with_default_null_placement(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_sort_rows(&env).await;
    // Defaults: ASC puts NULLs last, DESC puts them first.
    let q = Query::new()
        .sort("grp", SortOrder::Asc)
        .sort("score", SortOrder::Desc)
        .sort("id", SortOrder::Asc);
    let expected = sorted_sort_rows((false, false), (true, true));
    assert_eq!(expected, ["r2", "r1", "r8", "r3", "r5", "r4", "r7", "r6"]);
    assert_eq!(search_ids_ordered(&env, &q).await, expected);
    let sql = format!(
        "SELECT id FROM {} ORDER BY grp ASC, score DESC, id ASC",
        env.table
    );
    assert_eq!(sql_strings(&env, &sql).await, expected);
    let q = Query::new()
        .sort("grp", SortOrder::Desc)
        .sort("score", SortOrder::Asc)
        .sort("id", SortOrder::Desc);
    let mut expected = SORT_ROWS.to_vec();
    expected.sort_by(|a, b| {
        sql_order(&a.1, &b.1, true, true)
            .then(sql_order(&a.2, &b.2, false, false))
            .then(b.0.cmp(a.0))
    });
    let expected: Vec<String> = expected.into_iter().map(|r| r.0.to_string()).collect();
    assert_eq!(search_ids_ordered(&env, &q).await, expected);
    let sql = format!(
        "SELECT id FROM {} ORDER BY grp DESC, score ASC, id DESC",
        env.table
    );
    assert_eq!(sql_strings(&env, &sql).await, expected);
}

pub async fn sort_nulls_placement_can_be_overridden(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_sort_rows(&env).await;
    let mut q = Query::new();
    q.sort.push(SortSpec {
        field: "score".into(),
        order: SortOrder::Asc,
        nulls_first: true,
    });
    q = q.sort("id", SortOrder::Asc);
    let mut expected = SORT_ROWS.to_vec();
    expected.sort_by(|a, b| sql_order(&a.2, &b.2, false, true).then(a.0.cmp(b.0)));
    let expected: Vec<String> = expected.into_iter().map(|r| r.0.to_string()).collect();
    assert_eq!(&expected[..3], ["r2", "r5", "r7"]);
    assert_eq!(search_ids_ordered(&env, &q).await, expected);
    let sql = format!(
        "SELECT id FROM {} ORDER BY score ASC NULLS FIRST, id",
        env.table
    );
    assert_eq!(sql_strings(&env, &sql).await, expected);

    let mut q = Query::new();
    q.sort.push(SortSpec {
        field: "grp".into(),
        order: SortOrder::Desc,
        nulls_first: false,
    });
    q = q.sort("id", SortOrder::Asc);
    let expected = {
        let mut v = SORT_ROWS.to_vec();
        v.sort_by(|a, b| sql_order(&a.1, &b.1, true, false).then(a.0.cmp(b.0)));
        v.into_iter().map(|r| r.0.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(&expected[expected.len() - 2..], ["r6", "r7"]);
    assert_eq!(search_ids_ordered(&env, &q).await, expected);
    let sql = format!(
        "SELECT id FROM {} ORDER BY grp DESC NULLS LAST, id",
        env.table
    );
    assert_eq!(sql_strings(&env, &sql).await, expected);
}

pub async fn sort_on_floats_and_strings(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let rows = [
        ("f1", "pear", Some(2.5)),
        ("f2", "apple", Some(-1.0)),
        ("f3", "fig", None),
        ("f4", "kiwi", Some(10.25)),
        ("f5", "banana", Some(0.0)),
    ];
    for (id, name, f) in rows {
        env.db
            .create(
                Record::new()
                    .with_id(id)
                    .with("name", name)
                    .with("f", Value::from(f)),
            )
            .await
            .unwrap();
    }
    let q = Query::new().sort("f", SortOrder::Desc);
    let mut expected = rows.to_vec();
    expected.sort_by(|a, b| match (a.2, b.2) {
        (None, None) => Ordering::Equal,
        (None, _) => Ordering::Less,
        (_, None) => Ordering::Greater,
        (Some(x), Some(y)) => y.total_cmp(&x),
    });
    let expected: Vec<String> = expected.iter().map(|r| r.0.to_string()).collect();
    assert_eq!(expected, ["f3", "f4", "f1", "f5", "f2"]);
    assert_eq!(search_ids_ordered(&env, &q).await, expected);
    let q = Query::new().sort("name", SortOrder::Asc);
    let mut by_name = rows.to_vec();
    by_name.sort_by_key(|r| r.1);
    let by_name: Vec<String> = by_name.iter().map(|r| r.0.to_string()).collect();
    assert_eq!(search_ids_ordered(&env, &q).await, by_name);
    let q = Query::new().sort("name", SortOrder::Desc);
    let rev: Vec<String> = by_name.iter().rev().cloned().collect();
    assert_eq!(search_ids_ordered(&env, &q).await, rev);
}

/// Ten records r0..r9 whose `n` runs opposite to the id.
async fn seed_ten(env: &Env) -> Vec<String> {
    for i in 0..10i64 {
        env.db
            .create(Record::new().with_id(format!("r{i}")).with("n", 9 - i))
            .await
            .unwrap();
    }
    // Ordered by n ascending.
    (0..10).rev().map(|i| format!("r{i}")).collect()
}

fn page(all: &[String], offset: usize, limit: Option<usize>) -> Vec<String> {
    all.iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .cloned()
        .collect()
}

pub async fn limit_and_offset_page_through_sorted_results(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let by_n = seed_ten(&env).await;
    for (offset, limit) in [
        (0, Some(3)),
        (2, Some(3)),
        (8, Some(5)),
        (7, None),
        (0, Some(10)),
        (9, Some(1)),
    ] {
        let mut q = Query::new().sort("n", SortOrder::Asc).offset(offset);
        if let Some(l) = limit {
            q = q.limit(l);
        }
        assert_eq!(
            search_ids_ordered(&env, &q).await,
            page(&by_n, offset, limit),
            "offset {offset} limit {limit:?}"
        );
    }
    // Pages put together are the whole result, each row once.
    let mut all = Vec::new();
    for p in 0..4 {
        let q = Query::new()
            .sort("n", SortOrder::Asc)
            .offset(p * 3)
            .limit(3);
        all.extend(search_ids_ordered(&env, &q).await);
    }
    assert_eq!(all, by_n);
    let sql = format!("SELECT id FROM {} ORDER BY n LIMIT 3 OFFSET 2", env.table);
    assert_eq!(sql_strings(&env, &sql).await, page(&by_n, 2, Some(3)));
}

pub async fn offset_beyond_the_end_and_limit_zero_are_empty(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_ten(&env).await;
    for offset in [10, 11, 1000] {
        let q = Query::new().sort("n", SortOrder::Asc).offset(offset);
        assert!(
            search_ids_ordered(&env, &q).await.is_empty(),
            "offset {offset}"
        );
        let q = Query::new()
            .sort("n", SortOrder::Asc)
            .offset(offset)
            .limit(5);
        assert!(
            search_ids_ordered(&env, &q).await.is_empty(),
            "offset {offset} limit 5"
        );
    }
    let q = Query::new().sort("n", SortOrder::Asc).limit(0);
    assert!(search_ids_ordered(&env, &q).await.is_empty(), "limit 0");
    let q = Query::new().limit(0);
    assert!(
        search_ids_ordered(&env, &q).await.is_empty(),
        "limit 0 without sort"
    );
    let sql = format!("SELECT id FROM {} ORDER BY n OFFSET 50", env.table);
    assert!(sql_strings(&env, &sql).await.is_empty());
}

pub async fn limit_without_sort_returns_that_many_distinct_rows(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let all = seed_ten(&env).await;
    for limit in [1, 4, 10, 25] {
        let got = search_ids(&env, &Query::new().limit(limit)).await;
        assert_eq!(got.len(), limit.min(10), "limit {limit}");
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), got.len());
        assert!(got.iter().all(|id| all.contains(id)));
    }
    let q = Query::new().filter("n", Operator::Ge, 5).unwrap().limit(3);
    let got = env.db.search(&q).await.unwrap();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|r| matches!(r.get("n"), Some(Value::Int(n)) if *n >= 5))
    );
    let q = Query::new().offset(4);
    assert_eq!(
        search_ids(&env, &q).await.len(),
        6,
        "offset without sort skips that many"
    );
}

pub async fn projection_returns_only_the_requested_fields(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new().project(["name"]).sort("id", SortOrder::Asc);
    let got = env.db.search(&q).await.unwrap();
    assert_eq!(got.len(), PEOPLE.len());
    for r in &got {
        assert_eq!(r.names().collect::<Vec<_>>(), ["name"], "{r:?}");
    }
    let names: Vec<Value> = got.iter().map(|r| r.get("name").unwrap().clone()).collect();
    let expected: Vec<Value> = PEOPLE.iter().map(|p| Value::from(p.1)).collect();
    assert_eq!(names, expected);

    let q = Query::new()
        .project(["age", "id"])
        .sort("id", SortOrder::Asc);
    let got = env.db.search(&q).await.unwrap();
    for (r, (id, _, age)) in got.iter().zip(PEOPLE) {
        assert_eq!(
            r.names().collect::<Vec<_>>(),
            ["age", "id"],
            "fields in the asked order"
        );
        assert_eq!(r.get("id"), Some(&Value::from(id)));
        assert_eq!(r.get("age"), Some(&Value::from(age)));
        assert_eq!(r.id(), Some(id));
    }
}

pub async fn projection_with_filter_and_sort_on_other_fields(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new()
        .filter("age", Operator::Ge, 20)
        .unwrap()
        .sort("age", SortOrder::Desc)
        .project(["name"]);
    let got = env.db.search(&q).await.unwrap();
    let names: Vec<Value> = got
        .iter()
        .map(|r| r.get("name").cloned().unwrap())
        .collect();
    assert_eq!(names, [Value::from("carol"), Value::from("bob")]);
    assert!(got.iter().all(|r| r.len() == 1));
    // An empty projection still counts rows.
    let q = Query::new()
        .filter("age", Operator::Exists, Operand::None)
        .unwrap();
    assert_eq!(
        env.db
            .count(Some(&q.project(Vec::<String>::new())))
            .await
            .unwrap(),
        3
    );
}

// =============================================================================================
// Field types
// =============================================================================================

fn all_types() -> Vec<(&'static str, FieldType, Value)> {
    vec![
        ("s", FieldType::String, Value::from("plain \u{fc} 'q'")),
        ("i", FieldType::Integer, Value::Int(-42)),
        ("f", FieldType::Float, Value::Float(3.25)),
        ("b", FieldType::Boolean, Value::Bool(true)),
        (
            "d",
            FieldType::DateTime,
            Value::DateTime(micros(1_700_000_000_123_456)),
        ),
        (
            "j",
            FieldType::Json,
            Value::Json(serde_json::json!({"k": [1, "x", null], "n": {"m": true, "f": 1.5}})),
        ),
        (
            "bin",
            FieldType::Binary,
            Value::Binary(vec![0, 1, 127, 128, 255]),
        ),
        ("t", FieldType::Text, Value::from("long\ntext \u{1F600}")),
    ]
}

fn check_all_types(r: &Record, expected: &[(&str, FieldType, Value)], when: &str) {
    for (name, ty, v) in expected {
        let f = r
            .field(name)
            .unwrap_or_else(|| panic!("{when}: field {name} missing in {r:?}"));
        assert_eq!(&f.value, v, "{when}: value of {name}");
        assert_eq!(f.field_type, *ty, "{when}: type of {name}");
    }
}

pub async fn every_field_type_round_trips(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let expected = all_types();
    let mut r = Record::new().with_id("all");
    for (name, ty, v) in &expected {
        r.set_field(Field::typed(*name, v.clone(), *ty).unwrap());
    }
    env.db.create(r).await.unwrap();
    let schema = env.db.schema();
    for (name, ty, _) in &expected {
        let col = schema
            .field_with_name(name)
            .unwrap_or_else(|_| panic!("column {name}"));
        assert_eq!(FieldType::from_arrow(col), *ty, "column type of {name}");
        assert!(col.is_nullable(), "a grown column is nullable: {name}");
    }
    check_all_types(
        &env.db.read("all").await.unwrap().unwrap(),
        &expected,
        "read",
    );
    let found = env.db.search(&Query::new()).await.unwrap();
    assert_eq!(found.len(), 1);
    check_all_types(&found[0], &expected, "search");
    check_all_types(
        &env.db.read("all").await.unwrap().unwrap(),
        &expected,
        "read after scan",
    );
    let rows = sql_values(
        &env,
        &format!("SELECT i, f, b, s, d, bin, t FROM {}", env.table),
    )
    .await;
    let want: Vec<Value> = ["i", "f", "b", "s", "d", "bin", "t"]
        .iter()
        .map(|n| expected.iter().find(|e| e.0 == *n).unwrap().2.clone())
        .collect();
    assert_eq!(rows, vec![want]);
    let Value::DateTime(d) = &expected[4].2 else {
        unreachable!()
    };
    let exact = d.to_rfc3339_opts(SecondsFormat::Micros, true);
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE d = {}",
        env.table,
        lit(&exact)
    );
    assert_eq!(sql_int(&env, &sql).await, 1, "{sql}");
    let off_by_one =
        (*d + chrono::Duration::microseconds(1)).to_rfc3339_opts(SecondsFormat::Micros, true);
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE d = {}",
        env.table,
        lit(&off_by_one)
    );
    assert_eq!(sql_int(&env, &sql).await, 0, "{sql}");
}

pub async fn typed_nulls_round_trip_and_fix_column_types(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let types = all_types();
    // A first record holding only typed NULLs makes the columns with those types.
    let mut r = Record::new().with_id("nulls");
    for (name, ty, _) in &types {
        r.set_field(Field::typed(*name, Value::Null, *ty).unwrap());
    }
    env.db.create(r).await.unwrap();
    let schema = env.db.schema();
    for (name, ty, _) in &types {
        assert_eq!(
            FieldType::from_arrow(schema.field_with_name(name).unwrap()),
            *ty,
            "{name}"
        );
    }
    let mut full = Record::new().with_id("full");
    for (name, ty, v) in &types {
        full.set_field(Field::typed(*name, v.clone(), *ty).unwrap());
    }
    env.db.create(full).await.unwrap();
    for when in ["before scan", "after scan"] {
        let n = env.db.read("nulls").await.unwrap().unwrap();
        for (name, _, _) in &types {
            assert!(
                is_null_or_missing(&n, name),
                "{when}: {name} should be NULL in {n:?}"
            );
        }
        check_all_types(&env.db.read("full").await.unwrap().unwrap(), &types, when);
        assert_eq!(env.db.search(&Query::new()).await.unwrap().len(), 2);
    }
    for (name, _, _) in &types {
        let q = Query::new()
            .filter(name, Operator::NotExists, Operand::None)
            .unwrap();
        assert_eq!(search_ids(&env, &q).await, ["nulls"], "{name} NOT EXISTS");
    }
}

pub async fn integer_and_float_extremes_round_trip(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let ints = [i64::MAX, i64::MIN, 0, -1, 1 << 53, (1 << 53) + 1];
    let floats = [
        0.1,
        -2.5e-300,
        f64::MAX,
        f64::MIN_POSITIVE,
        -0.0,
        0.1 + 0.2,
        1e15 + 0.5,
    ];
    for (k, i) in ints.iter().enumerate() {
        env.db
            .create(
                Record::new()
                    .with_id(format!("i{k}"))
                    .with("n", *i)
                    .with("x", 1.0),
            )
            .await
            .unwrap();
    }
    for (k, f) in floats.iter().enumerate() {
        env.db
            .create(
                Record::new()
                    .with_id(format!("f{k}"))
                    .with("n", 0)
                    .with("x", *f),
            )
            .await
            .unwrap();
    }
    env.db.search(&Query::new()).await.unwrap();
    for (k, i) in ints.iter().enumerate() {
        let r = env.db.read(&format!("i{k}")).await.unwrap().unwrap();
        assert_eq!(r.get("n"), Some(&Value::Int(*i)), "integer {i}");
    }
    for (k, f) in floats.iter().enumerate() {
        let r = env.db.read(&format!("f{k}")).await.unwrap().unwrap();
        match r.get("x") {
            Some(Value::Float(g)) => assert!(
                g.to_bits() == f.to_bits() || *g == *f,
                "float {f:e} came back as {g:e}"
            ),
            other => panic!("float {f:e} came back as {other:?}"),
        }
    }
    let q = Query::new().filter("n", Operator::Eq, i64::MAX).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["i0"]);
    let q = Query::new()
        .filter("n", Operator::Eq, (1i64 << 53) + 1)
        .unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        ["i5"],
        "no rounding through f64"
    );
    assert_eq!(
        sql_int(&env, &format!("SELECT MIN(n) FROM {}", env.table)).await,
        i64::MIN
    );
    assert_eq!(
        sql_int(&env, &format!("SELECT MAX(n) FROM {}", env.table)).await,
        i64::MAX
    );
}

pub async fn datetimes_round_trip_with_microseconds(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let times = [
        micros(0),
        micros(-14_182_940_000_001), // 1969-07-20T20:17:39.999999Z
        micros(1_700_000_000_000_001),
        micros(253_402_300_799_999_999), // 9999-12-31T23:59:59.999999Z
        micros(951_782_400_500_000),     // 2000-02-29T00:00:00.5Z
    ];
    for (k, t) in times.iter().enumerate() {
        let mut r = Record::new().with_id(format!("t{k}"));
        r.set_field(Field::typed("at", *t, FieldType::DateTime).unwrap());
        env.db.create(r).await.unwrap();
    }
    for when in ["before scan", "after scan"] {
        for (k, t) in times.iter().enumerate() {
            let r = env.db.read(&format!("t{k}")).await.unwrap().unwrap();
            assert_eq!(r.get("at"), Some(&Value::DateTime(*t)), "{when}: {t}");
        }
        env.db.search(&Query::new()).await.unwrap();
    }
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by_key(|k| times[*k]);
    let expected: Vec<String> = order.iter().map(|k| format!("t{k}")).collect();
    let q = Query::new().sort("at", SortOrder::Asc);
    assert_eq!(search_ids_ordered(&env, &q).await, expected);
    let q = Query::new().filter("at", Operator::Lt, micros(0)).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["t1"]);
}

pub async fn json_values_round_trip(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let docs = [
        serde_json::json!({"a": 1, "b": [true, null, "x"], "c": {"d": 1.5, "e": "\u{fc}\u{1F600}"}}),
        serde_json::json!({}),
        serde_json::json!({"quote": "it's \"q\" \\ ;--", "nested": [[1, 2], {"k": null}]}),
        serde_json::json!({"big": i64::MAX, "neg": -7, "arr": []}),
    ];
    for (k, d) in docs.iter().enumerate() {
        let mut r = Record::new().with_id(format!("j{k}"));
        r.set_field(Field::typed("doc", d.clone(), FieldType::Json).unwrap());
        env.db.create(r).await.unwrap();
    }
    for when in ["before scan", "after scan"] {
        for (k, d) in docs.iter().enumerate() {
            let r = env.db.read(&format!("j{k}")).await.unwrap().unwrap();
            let f = r.field("doc").unwrap();
            assert_eq!(f.value, Value::Json(d.clone()), "{when}: j{k}");
            assert_eq!(f.field_type, FieldType::Json);
        }
        env.db.search(&Query::new()).await.unwrap();
    }
}

pub async fn binary_values_round_trip(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let blobs: [Vec<u8>; 4] = [
        (0..=255).collect(),
        vec![],
        vec![0; 17],
        b"\xff\xfe not utf-8 \x00 ' \" \\".to_vec(),
    ];
    for (k, b) in blobs.iter().enumerate() {
        let mut r = Record::new().with_id(format!("b{k}"));
        r.set_field(Field::typed("blob", b.clone(), FieldType::Binary).unwrap());
        env.db.create(r).await.unwrap();
    }
    for when in ["before scan", "after scan"] {
        for (k, b) in blobs.iter().enumerate() {
            let r = env.db.read(&format!("b{k}")).await.unwrap().unwrap();
            assert_eq!(
                r.get("blob"),
                Some(&Value::Binary(b.clone())),
                "{when}: b{k}"
            );
        }
        env.db.search(&Query::new()).await.unwrap();
    }
    let q = Query::new()
        .filter("blob", Operator::Exists, Operand::None)
        .unwrap();
    assert_eq!(
        search_ids(&env, &q).await.len(),
        blobs.len(),
        "an empty blob is not NULL"
    );
    let q = Query::new()
        .filter("blob", Operator::Eq, Value::Binary(blobs[3].clone()))
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["b3"]);
    let hex: String = blobs[3].iter().map(|b| format!("{b:02x}")).collect();
    let sql = format!("SELECT id FROM {} WHERE blob = X'{hex}'", env.table);
    assert_eq!(sql_strings(&env, &sql).await, ["b3"]);
    let sql = format!("SELECT COUNT(*) FROM {} WHERE blob IS NOT NULL", env.table);
    assert_eq!(sql_int(&env, &sql).await, blobs.len() as i64);
}

pub async fn long_text_round_trips(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let line = "l\u{ed}nea con 'comillas', \"dobles\", \\barra; -- 100% _x_ \u{1F600}\n";
    let text: String = line.repeat(2000);
    let mut r = Record::new().with_id("long");
    r.set_field(Field::typed("body", text.clone(), FieldType::Text).unwrap());
    env.db.create(r).await.unwrap();
    env.db.search(&Query::new()).await.unwrap();
    let r = env.db.read("long").await.unwrap().unwrap();
    let f = r.field("body").unwrap();
    assert_eq!(f.field_type, FieldType::Text);
    assert_eq!(f.value, Value::String(text.clone()));
    let sql = format!("SELECT character_length(body) FROM {}", env.table);
    assert_eq!(sql_int(&env, &sql).await, text.chars().count() as i64);
    let q = Query::new()
        .filter("body", Operator::Like, "%\u{1F600}\n")
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["long"]);
}

pub async fn values_are_converted_to_the_column_type(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let mut proto = Record::new().with_id("proto");
    proto.set_field(Field::typed("i", 1, FieldType::Integer).unwrap());
    proto.set_field(Field::typed("f", 1.5, FieldType::Float).unwrap());
    proto.set_field(Field::typed("b", true, FieldType::Boolean).unwrap());
    proto.set_field(Field::typed("d", micros(0), FieldType::DateTime).unwrap());
    proto.set_field(Field::typed("s", "x", FieldType::String).unwrap());
    env.db.create(proto).await.unwrap();
    let r = Record::new()
        .with_id("conv")
        .with("i", "42")
        .with("f", 3)
        .with("b", "false")
        .with("d", "2024-01-02T03:04:05.000006Z")
        .with("s", 7);
    env.db.create(r).await.unwrap();
    let expected = [
        ("i", Value::Int(42)),
        ("f", Value::Float(3.0)),
        ("b", Value::Bool(false)),
        ("d", Value::DateTime(micros(1_704_164_645_000_006))),
        ("s", Value::from("7")),
    ];
    for when in ["before scan", "after scan"] {
        let got = env.db.read("conv").await.unwrap().unwrap();
        for (name, v) in &expected {
            assert_eq!(got.get(name), Some(v), "{when}: {name}");
        }
        env.db.search(&Query::new()).await.unwrap();
    }
    // Stored as numbers: SQL arithmetic and record-API comparisons work on them.
    let sql = format!("SELECT i + 1 FROM {} WHERE id = 'conv'", env.table);
    assert_eq!(sql_int(&env, &sql).await, 43);
    let q = Query::new().filter("i", Operator::Gt, 40).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["conv"]);
    // A whole float fits an INTEGER column; a fraction does not.
    env.db
        .create(Record::new().with_id("whole").with("i", 5.0))
        .await
        .unwrap();
    assert_eq!(
        env.db.read("whole").await.unwrap().unwrap().get("i"),
        Some(&Value::Int(5))
    );
    let e = env
        .db
        .create(Record::new().with_id("frac").with("i", 5.5))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Type, "{e}");
    assert!(!env.db.exists("frac").await.unwrap());
}

pub async fn wrong_value_type_is_a_type_error_and_changes_nothing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let n = env.db.count(None).await.unwrap();
    let bad = || Record::new().with("name", "bad").with("age", "abc");
    let e = env.db.create(bad().with_id("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Type, "create: {e}");
    assert!(env.db.read("x").await.unwrap().is_none());
    let e = env.db.update("a", bad()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Type, "update: {e}");
    let e = env.db.upsert("a", bad()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Type, "upsert existing: {e}");
    let e = env.db.upsert("y", bad()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Type, "upsert new: {e}");
    let e = env
        .db
        .batch_create(vec![person("ok1", "fine", Some(1)), bad().with_id("z")])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Type, "batch_create: {e}");
    assert_eq!(env.db.count(None).await.unwrap(), n);
    for id in ["x", "y", "z", "ok1"] {
        assert!(!env.db.exists(id).await.unwrap(), "{id} must not exist");
    }
    let a = env.db.read("a").await.unwrap().unwrap();
    assert_eq!(a.get("name"), Some(&Value::from("alice")));
    assert_eq!(a.get("age"), Some(&Value::Int(10)));
    let sql = format!("SELECT COUNT(*) FROM {} WHERE name = 'bad'", env.table);
    assert_eq!(sql_int(&env, &sql).await, 0);
}

// =============================================================================================
// Unicode, quotes and identifiers
// =============================================================================================

const TRICKY: [&str; 14] = [
    "it's",
    "say \"hi\"",
    "back\\slash",
    "semi;colon",
    "dash--dash",
    "100%",
    "under_score",
    "emoji \u{1F600}\u{1F389}",
    "\u{fc}n\u{ef}c\u{f8}d\u{e9} \u{4e2d}\u{6587}",
    "'; DROP TABLE x; --",
    "tab\tnew\nline",
    "  padded  ",
    "a/b/../c",
    "$1 ? :x @y",
];

pub async fn special_characters_in_values_round_trip(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    for (k, v) in TRICKY.iter().enumerate() {
        env.db
            .create(Record::new().with_id(format!("v{k:02}")).with("name", *v))
            .await
            .unwrap();
    }
    for when in ["before scan", "after scan"] {
        for (k, v) in TRICKY.iter().enumerate() {
            let r = env.db.read(&format!("v{k:02}")).await.unwrap().unwrap();
            assert_eq!(r.get("name"), Some(&Value::from(*v)), "{when}");
        }
        env.db.search(&Query::new()).await.unwrap();
    }
    for (k, v) in TRICKY.iter().enumerate() {
        let id = format!("v{k:02}");
        let q = Query::new().filter("name", Operator::Eq, *v).unwrap();
        assert_eq!(
            search_ids(&env, &q).await,
            std::slice::from_ref(&id),
            "record API: name = {v:?}"
        );
        let sql = format!("SELECT id FROM {} WHERE name = {}", env.table, lit(v));
        assert_eq!(
            sql_strings(&env, &sql).await,
            std::slice::from_ref(&id),
            "{sql}"
        );
        let sql = format!("SELECT name FROM {} WHERE id = {}", env.table, lit(&id));
        assert_eq!(sql_strings(&env, &sql).await, [v.to_string()], "{sql}");
    }
    let q = Query::new()
        .filter("name", Operator::In, TRICKY.to_vec())
        .unwrap();
    assert_eq!(env.db.count(Some(&q)).await.unwrap(), TRICKY.len() as u64);
}

pub async fn special_characters_in_ids(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let ids: Vec<String> = TRICKY
        .iter()
        .map(|s| s.to_string())
        .chain(["../escape".to_string()])
        .collect();
    for (k, id) in ids.iter().enumerate() {
        let got = env
            .db
            .create(Record::new().with_id(id.clone()).with("k", k as i64))
            .await
            .unwrap();
        assert_eq!(&got, id);
    }
    assert_eq!(env.db.count(None).await.unwrap(), ids.len() as u64);
    for (k, id) in ids.iter().enumerate() {
        let r = env
            .db
            .read(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("read {id:?}"));
        assert_eq!(r.id(), Some(id.as_str()));
        assert_eq!(r.get("k"), Some(&Value::Int(k as i64)), "{id:?}");
        assert!(env.db.exists(id).await.unwrap());
        let sql = format!("SELECT k FROM {} WHERE id = {}", env.table, lit(id));
        assert_eq!(sql_int(&env, &sql).await, k as i64, "{sql}");
    }
    let mut found = search_ids(&env, &Query::new()).await;
    found.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(found, want);
    let read = env.db.batch_read(&ids).await.unwrap();
    assert!(read.iter().all(Option::is_some));
    // Update and delete work through the same ids.
    assert!(
        env.db
            .update("it's", Record::new().with("k", 100))
            .await
            .unwrap()
    );
    assert_eq!(
        env.db.read("it's").await.unwrap().unwrap().get("k"),
        Some(&Value::Int(100))
    );
    assert!(env.db.delete("'; DROP TABLE x; --").await.unwrap());
    assert!(env.db.delete("../escape").await.unwrap());
    assert_eq!(env.db.count(None).await.unwrap(), ids.len() as u64 - 2);
    assert!(env.db.read("back\\slash").await.unwrap().is_some());
}

pub async fn ids_are_exact_case_sensitive_strings(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let ids = ["007", "7", "A", "a", " a", "a ", "1e3", "1000"];
    for id in ids {
        env.db
            .create(Record::new().with_id(id).with("name", format!("<{id}>")))
            .await
            .unwrap();
    }
    assert_eq!(env.db.count(None).await.unwrap(), ids.len() as u64);
    for id in ids {
        let r = env
            .db
            .read(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("read {id:?}"));
        assert_eq!(r.id(), Some(id));
        assert_eq!(r.get("name"), Some(&Value::from(format!("<{id}>"))));
    }
    for missing in ["07", "0007", "b", "A ", "1E3"] {
        assert!(env.db.read(missing).await.unwrap().is_none(), "{missing:?}");
    }
    assert!(env.db.delete("A").await.unwrap());
    assert!(env.db.exists("a").await.unwrap());
    let q = Query::new().filter("id", Operator::Eq, "007").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["007"]);
}

pub async fn field_names_needing_quotes(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let names = ["Mixed Case", "na\u{ef}ve", "with-dash", "select"];
    for (k, id) in ["q1", "q2"].iter().enumerate() {
        let mut r = Record::new().with_id(*id);
        for (j, n) in names.iter().enumerate() {
            r.set(*n, (k * 10 + j) as i64);
        }
        env.db.create(r).await.unwrap();
    }
    let r = env.db.read("q2").await.unwrap().unwrap();
    for (j, n) in names.iter().enumerate() {
        assert_eq!(r.get(n), Some(&Value::Int(10 + j as i64)), "{n}");
    }
    for (j, n) in names.iter().enumerate() {
        let q = Query::new().filter(n, Operator::Eq, 10 + j as i64).unwrap();
        assert_eq!(search_ids(&env, &q).await, ["q2"], "{n}");
        let q = Query::new().sort(n, SortOrder::Desc);
        assert_eq!(
            search_ids_ordered(&env, &q).await,
            ["q2", "q1"],
            "sort by {n}"
        );
    }
    let cols = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {cols} FROM {} ORDER BY id", env.table);
    let rows = sql_values(&env, &sql).await;
    let want: Vec<Vec<Value>> = (0..2)
        .map(|k| {
            (0..names.len())
                .map(|j| Value::Int((k * 10 + j) as i64))
                .collect()
        })
        .collect();
    assert_eq!(rows, want);
    let q = Query::new()
        .project(["Mixed Case"])
        .sort("id", SortOrder::Asc);
    let got = env.db.search(&q).await.unwrap();
    assert_eq!(got[0].names().collect::<Vec<_>>(), ["Mixed Case"]);
}

// =============================================================================================
// SQL over the same data
// =============================================================================================

pub async fn sql_select_where_order_by_matches_record_api(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let sql = format!(
        "SELECT id, age FROM {} WHERE age >= 20 ORDER BY age DESC, id",
        env.table
    );
    let mut want: Vec<(&str, i64)> = PEOPLE
        .iter()
        .filter_map(|(id, _, a)| a.filter(|a| *a >= 20).map(|a| (*id, a)))
        .collect();
    want.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    let want_rows: Vec<Vec<Value>> = want
        .iter()
        .map(|(id, a)| vec![Value::from(*id), Value::Int(*a)])
        .collect();
    assert_eq!(sql_values(&env, &sql).await, want_rows);
    let q = Query::new()
        .filter("age", Operator::Ge, 20)
        .unwrap()
        .sort("age", SortOrder::Desc)
        .sort("id", SortOrder::Asc);
    let api: Vec<String> = search_ids_ordered(&env, &q).await;
    let ids: Vec<String> = want.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(api, ids);
    // Plain env.sql_rows display agrees too.
    let rows = env
        .sql_rows(&format!(
            "SELECT id FROM {} WHERE name = 'carol'",
            env.table
        ))
        .await;
    assert_eq!(rows, ["| c  |"]);
}

pub async fn sql_aggregates_follow_null_semantics(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let ages: Vec<i64> = PEOPLE.iter().filter_map(|p| p.2).collect();
    let sum: i64 = ages.iter().sum();
    let sql = format!(
        "SELECT COUNT(*), COUNT(age), SUM(age), MIN(age), MAX(age), AVG(age), MIN(name), MAX(name) FROM {}",
        env.table
    );
    let rows = sql_values(&env, &sql).await;
    assert_eq!(
        rows,
        vec![vec![
            Value::Int(PEOPLE.len() as i64),
            Value::Int(ages.len() as i64),
            Value::Int(sum),
            Value::Int(*ages.iter().min().unwrap()),
            Value::Int(*ages.iter().max().unwrap()),
            Value::Float(sum as f64 / ages.len() as f64),
            Value::from(PEOPLE.iter().map(|p| p.1).min().unwrap()),
            Value::from(PEOPLE.iter().map(|p| p.1).max().unwrap()),
        ]]
    );
    // Aggregates over no rows: COUNT is 0, SUM is NULL.
    let sql = format!(
        "SELECT COUNT(*), SUM(age) FROM {} WHERE age > 1000",
        env.table
    );
    assert_eq!(
        sql_values(&env, &sql).await,
        vec![vec![Value::Int(0), Value::Null]]
    );
}

pub async fn sql_group_by(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_sort_rows(&env).await;
    let mut groups: BTreeMap<Option<&str>, (i64, Option<i64>)> = BTreeMap::new();
    for (_, g, s) in SORT_ROWS {
        let e = groups.entry(g).or_insert((0, None));
        e.0 += 1;
        if let Some(s) = s {
            e.1 = Some(e.1.unwrap_or(0) + s);
        }
    }
    // ORDER BY grp puts the NULL group last.
    let mut want: Vec<Vec<Value>> = groups
        .iter()
        .filter(|(g, _)| g.is_some())
        .map(|(g, (n, s))| vec![Value::from(*g), Value::Int(*n), Value::from(*s)])
        .collect();
    let (n, s) = groups[&None];
    want.push(vec![Value::Null, Value::Int(n), Value::from(s)]);
    let sql = format!(
        "SELECT grp, COUNT(*), SUM(score) FROM {} GROUP BY grp ORDER BY grp",
        env.table
    );
    assert_eq!(sql_values(&env, &sql).await, want);
    let sql = format!(
        "SELECT grp FROM {} GROUP BY grp HAVING COUNT(score) >= 2 ORDER BY grp",
        env.table
    );
    let want: Vec<String> = SORT_ROWS
        .iter()
        .filter_map(|r| r.1)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|g| {
            SORT_ROWS
                .iter()
                .filter(|r| r.1 == Some(g) && r.2.is_some())
                .count()
                >= 2
        })
        .map(str::to_string)
        .collect();
    assert_eq!(sql_strings(&env, &sql).await, want);
}

pub async fn sql_insert_is_visible_to_the_record_api(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let sql = format!(
        "INSERT INTO {} (id, name, age) VALUES ('s1', 'O''Brien', 7), ('s2', 'x', NULL)",
        env.table
    );
    assert_eq!(sql_int(&env, &sql).await, 2);
    let r = env
        .db
        .read("s1")
        .await
        .unwrap()
        .expect("row inserted by SQL");
    assert_eq!(r.id(), Some("s1"));
    assert_eq!(r.get("name"), Some(&Value::from("O'Brien")));
    assert_eq!(r.get("age"), Some(&Value::Int(7)));
    assert!(is_null_or_missing(
        &env.db.read("s2").await.unwrap().unwrap(),
        "age"
    ));
    assert_eq!(env.db.count(None).await.unwrap(), PEOPLE.len() as u64 + 2);
    let q = Query::new().filter("age", Operator::Lt, 10).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["s1"]);
    // Rows inserted by SQL can be updated and deleted through the record API.
    assert!(
        env.db
            .update("s1", person("s1", "changed", Some(8)))
            .await
            .unwrap()
    );
    assert!(env.db.delete("s2").await.unwrap());
    let sql = format!(
        "SELECT name, age FROM {} WHERE id IN ('s1', 's2')",
        env.table
    );
    assert_eq!(
        sql_values(&env, &sql).await,
        vec![vec![Value::from("changed"), Value::Int(8)]]
    );
}

pub async fn sql_insert_of_a_duplicate_key_inserts_nothing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let n = env.db.count(None).await.unwrap();
    let sql = format!(
        "INSERT INTO {} (id, name, age) VALUES ('n1', 'new', 1), ('a', 'clash', 2)",
        env.table
    );
    let msg = env.sql_err(&sql).await;
    assert!(msg.contains("'a'"), "the error names the key: {msg}");
    let sql = format!(
        "INSERT INTO {} (id, name, age) VALUES ('n2', 'p', 1), ('n2', 'q', 2)",
        env.table
    );
    env.sql_err(&sql).await;
    assert_eq!(env.db.count(None).await.unwrap(), n);
    assert!(!env.db.exists("n1").await.unwrap());
    assert!(!env.db.exists("n2").await.unwrap());
    assert_eq!(
        env.db.read("a").await.unwrap().unwrap().get("name"),
        Some(&Value::from("alice"))
    );
}

pub async fn sql_delete_is_visible_to_the_record_api(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let gone = people_where(|_, a| a.map(|a| a < 25));
    let sql = format!("DELETE FROM {} WHERE age < 25", env.table);
    assert_eq!(sql_int(&env, &sql).await, gone.len() as i64);
    for id in &gone {
        assert!(!env.db.exists(id).await.unwrap(), "{id} deleted by SQL");
        assert!(env.db.read(id).await.unwrap().is_none());
    }
    assert_eq!(
        env.db.count(None).await.unwrap(),
        (PEOPLE.len() - gone.len()) as u64
    );
    let sql = format!("DELETE FROM {} WHERE age IS NULL", env.table);
    assert_eq!(sql_int(&env, &sql).await, 2);
    assert_eq!(search_ids(&env, &Query::new()).await, ["c"]);
    // A deleted id can be created again.
    env.db.create(person("a", "back", Some(1))).await.unwrap();
    assert_eq!(env.db.count(None).await.unwrap(), 2);
}

pub async fn sql_update_is_visible_to_the_record_api(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let sql = format!("UPDATE {} SET age = age + 1 WHERE name = 'bob'", env.table);
    assert_eq!(sql_int(&env, &sql).await, 1);
    for (id, _, age) in PEOPLE {
        let want = if id == "b" { age.map(|a| a + 1) } else { age };
        let r = env.db.read(id).await.unwrap().unwrap();
        assert_eq!(
            r.get("age").cloned().unwrap_or_default(),
            Value::from(want),
            "{id}"
        );
    }
    // Every row; NULL + 1 stays NULL.
    let sql = format!("UPDATE {} SET age = age + 1", env.table);
    assert_eq!(sql_int(&env, &sql).await, PEOPLE.len() as i64);
    for (id, _, age) in PEOPLE {
        let want = age.map(|a| if id == "b" { a + 2 } else { a + 1 });
        let r = env.db.read(id).await.unwrap().unwrap();
        assert_eq!(
            r.get("age").cloned().unwrap_or_default(),
            Value::from(want),
            "{id}"
        );
    }
    let sql = format!("UPDATE {} SET name = 'it''s' WHERE id = 'c'", env.table);
    assert_eq!(sql_int(&env, &sql).await, 1);
    let q = Query::new().filter("name", Operator::Eq, "it's").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["c"]);
    let sql = format!("UPDATE {} SET age = 0 WHERE name = 'nobody'", env.table);
    assert_eq!(sql_int(&env, &sql).await, 0);
    assert_eq!(env.db.count(None).await.unwrap(), PEOPLE.len() as u64);
}

pub async fn sql_update_with_a_bad_value_changes_nothing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    env.sql_err(&format!(
        "UPDATE {} SET age = 'abc' WHERE id = 'a'",
        env.table
    ))
    .await;
    env.sql_err(&format!("UPDATE {} SET nope = 1", env.table))
        .await;
    for (id, name, age) in PEOPLE {
        let r = env.db.read(id).await.unwrap().unwrap();
        assert_eq!(
            r.get("age").cloned().unwrap_or_default(),
            Value::from(age),
            "{id}"
        );
        assert_eq!(r.get("name"), Some(&Value::from(name)));
    }
}

pub async fn sql_null_semantics_match_the_record_api(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    type Pred = fn(Option<i64>) -> Option<bool>;
    let cases: [(&str, Filter, Pred); 7] = [
        (
            "age = NULL",
            Filter::new("age", Operator::Eq, Value::Null).unwrap(),
            |_| None,
        ),
        (
            "age <> 20",
            Filter::new("age", Operator::Ne, 20).unwrap(),
            |a| a.map(|a| a != 20),
        ),
        (
            "age IN (10, NULL)",
            Filter::new("age", Operator::In, vec![Value::Int(10), Value::Null]).unwrap(),
            |a| in3(a, &[Some(10), None]),
        ),
        (
            "age NOT IN (10, NULL)",
            Filter::new("age", Operator::NotIn, vec![Value::Int(10), Value::Null]).unwrap(),
            |a| not3(in3(a, &[Some(10), None])),
        ),
        (
            "age NOT IN (10, 20)",
            Filter::new("age", Operator::NotIn, vec![10, 20]).unwrap(),
            |a| not3(in3(a, &[Some(10), Some(20)])),
        ),
        (
            "age IS NULL",
            Filter::new("age", Operator::NotExists, Operand::None).unwrap(),
            |a| Some(a.is_none()),
        ),
        (
            "age IS NOT NULL",
            Filter::new("age", Operator::Exists, Operand::None).unwrap(),
            |a| Some(a.is_some()),
        ),
    ];
    for (clause, filter, pred) in cases {
        let expected = people_where(|_, a| pred(a));
        let q = Query::new().where_expr(FilterExpr::Cond(filter));
        assert_eq!(search_ids(&env, &q).await, expected, "record API: {clause}");
        let sql = format!("SELECT id FROM {} WHERE {clause} ORDER BY id", env.table);
        assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
    }
}

pub async fn sql_sees_records_created_through_the_api_immediately(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    for i in 0..5i64 {
        env.db
            .create(person(&format!("p{i}"), "n", Some(i)))
            .await
            .unwrap();
        let sql = format!("SELECT COUNT(*) FROM {}", env.table);
        assert_eq!(sql_int(&env, &sql).await, i + 1, "after create {i}");
    }
    assert!(env.db.delete("p0").await.unwrap());
    assert!(
        env.db
            .update("p1", person("p1", "m", Some(100)))
            .await
            .unwrap()
    );
    let sql = format!("SELECT id, age FROM {} WHERE name = 'm'", env.table);
    assert_eq!(
        sql_values(&env, &sql).await,
        vec![vec![Value::from("p1"), Value::Int(100)]]
    );
    let sql = format!("SELECT SUM(age) FROM {}", env.table);
    assert_eq!(sql_int(&env, &sql).await, 100 + 2 + 3 + 4);
}

// =============================================================================================
// Bad input
// =============================================================================================

pub async fn unknown_operator_string_is_rejected(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    for op in ["=~=", "", "LIKEE", "=>", "BETWEEN", "IS"] {
        let e = Query::new().try_filter("age", op, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Query, "operator {op:?}: {e}");
        assert!(
            e.to_string().contains(&format!("'{op}'")),
            "error names the operator: {e}"
        );
    }
    assert_eq!(env.db.count(None).await.unwrap(), PEOPLE.len() as u64);
}

pub async fn filter_on_an_unknown_field_is_a_query_error(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new().filter("nope", Operator::Eq, 1).unwrap();
    let e = env.db.search(&q).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.to_string().contains("nope"), "error names the field: {e}");
    let e = env.db.count(Some(&q)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    let q = Query::new()
        .filter("nope", Operator::Exists, Operand::None)
        .unwrap();
    assert_eq!(
        env.db.search(&q).await.unwrap_err().kind(),
        ErrorKind::Query
    );
    assert_eq!(env.db.count(None).await.unwrap(), PEOPLE.len() as u64);
}

pub async fn filter_value_of_the_wrong_type_is_a_type_error(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let mut r = env.db.read("a").await.unwrap().unwrap();
    r.set_field(Field::typed("at", micros(0), FieldType::DateTime).unwrap());
    env.db.update("a", r).await.unwrap();
    let cases = [
        Query::new().filter("age", Operator::Gt, "abc").unwrap(),
        Query::new().filter("age", Operator::Eq, true).unwrap(),
        Query::new()
            .filter("age", Operator::In, vec![Value::Int(1), Value::from("x")])
            .unwrap(),
        Query::new().filter("age", Operator::Like, "1%").unwrap(),
        Query::new().filter("name", Operator::Gt, 5).unwrap(),
        Query::new()
            .filter("at", Operator::Lt, "not a date")
            .unwrap(),
    ];
    for q in &cases {
        let e = env.db.search(q).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Type, "{q}: {e}");
        let e = env.db.count(Some(q)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Type, "count {q}: {e}");
    }
    assert_eq!(env.db.count(None).await.unwrap(), PEOPLE.len() as u64);
}

pub async fn sort_or_project_on_an_unknown_field_is_a_query_error(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let e = env
        .db
        .search(&Query::new().sort("nope", SortOrder::Asc))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    let e = env
        .db
        .search(&Query::new().project(["name", "nope"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.to_string().contains("nope"), "{e}");
}

pub async fn malformed_filters_are_rejected(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let e = Query::new()
        .try_filter("name", "REGEX", "(unclosed")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    let e = Query::new().filter("age", Operator::In, 5).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "IN needs a list: {e}");
    let e = Query::new()
        .filter("age", Operator::Eq, vec![1, 2])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "= takes one value: {e}");
    let e = Query::new().filter("name", Operator::Like, 5).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Query, "LIKE needs a string: {e}");
    assert_eq!(env.db.count(None).await.unwrap(), PEOPLE.len() as u64);
}

// =============================================================================================
// Schema growth
// =============================================================================================

pub async fn a_new_field_adds_a_nullable_column_visible_in_sql(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db
        .create(Record::new().with_id("a").with("name", "old"))
        .await
        .unwrap();
    env.db.search(&Query::new()).await.unwrap();
    assert!(env.db.schema().field_with_name("extra").is_err());
    env.db
        .create(
            Record::new()
                .with_id("b")
                .with("name", "new")
                .with("extra", "x"),
        )
        .await
        .unwrap();
    let schema = env.db.schema();
    let col = schema.field_with_name("extra").expect("the new column");
    assert!(col.is_nullable());
    assert_eq!(FieldType::from_arrow(col), FieldType::String);
    let sql = format!("SELECT id, extra FROM {} ORDER BY id", env.table);
    assert_eq!(
        sql_values(&env, &sql).await,
        vec![
            vec![Value::from("a"), Value::Null],
            vec![Value::from("b"), Value::from("x")]
        ]
    );
    let sql = format!("SELECT COUNT(*) FROM {} WHERE extra IS NULL", env.table);
    assert_eq!(sql_int(&env, &sql).await, 1);
    let q = Query::new()
        .filter("extra", Operator::NotExists, Operand::None)
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a"]);
    assert!(is_null_or_missing(
        &env.db.read("a").await.unwrap().unwrap(),
        "extra"
    ));
    // Old rows can get the new field later.
    assert!(
        env.db
            .update("a", Record::new().with("name", "old").with("extra", "y"))
            .await
            .unwrap()
    );
    let sql = format!("SELECT extra FROM {} ORDER BY id", env.table);
    assert_eq!(sql_strings(&env, &sql).await, ["y", "x"]);
}

pub async fn new_fields_take_their_value_types(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db
        .create(Record::new().with_id("a").with("name", "x"))
        .await
        .unwrap();
    let mut r = Record::new()
        .with_id("b")
        .with("name", "y")
        .with("n", 5)
        .with("ratio", 0.5);
    r.set_field(Field::typed("seen_at", micros(1_000_000), FieldType::DateTime).unwrap());
    env.db.create(r).await.unwrap();
    // Growth inside one batch: the second record adds a column the first lacks.
    env.db
        .batch_create(vec![
            Record::new().with_id("c").with("name", "z"),
            Record::new().with_id("d").with("flag", true),
        ])
        .await
        .unwrap();
    let schema = env.db.schema();
    for (col, ty) in [
        ("n", FieldType::Integer),
        ("ratio", FieldType::Float),
        ("seen_at", FieldType::DateTime),
        ("flag", FieldType::Boolean),
    ] {
        let f = schema
            .field_with_name(col)
            .unwrap_or_else(|_| panic!("column {col}"));
        assert_eq!(FieldType::from_arrow(f), ty, "{col}");
        assert!(f.is_nullable(), "{col}");
    }
    let sql = format!(
        "SELECT SUM(n), COUNT(ratio), COUNT(flag), COUNT(*) FROM {}",
        env.table
    );
    assert_eq!(
        sql_values(&env, &sql).await,
        vec![vec![
            Value::Int(5),
            Value::Int(1),
            Value::Int(1),
            Value::Int(4)
        ]]
    );
    let q = Query::new().filter("flag", Operator::Eq, true).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["d"]);
    let q = Query::new()
        .filter("n", Operator::NotExists, Operand::None)
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a", "c", "d"]);
}

// =============================================================================================
// Concurrency
// =============================================================================================

pub async fn concurrent_creates_from_many_tasks(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    const TASKS: i64 = 8;
    const PER_TASK: i64 = 50;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let db: Arc<dyn Database> = env.db.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..PER_TASK {
                let r = Record::new().with("task", t).with("i", i);
                ids.push(db.create(r).await.expect("concurrent create"));
            }
            ids
        }));
    }
    let mut all = HashSet::new();
    for h in handles {
        for id in h.await.unwrap() {
            assert!(all.insert(id.clone()), "id {id} returned twice");
        }
    }
    assert_eq!(all.len(), (TASKS * PER_TASK) as usize);
    assert_eq!(env.db.count(None).await.unwrap(), (TASKS * PER_TASK) as u64);
    let sql = format!("SELECT COUNT(DISTINCT id) FROM {}", env.table);
    assert_eq!(sql_int(&env, &sql).await, TASKS * PER_TASK);
    for t in 0..TASKS {
        let q = Query::new().filter("task", Operator::Eq, t).unwrap();
        assert_eq!(
            env.db.count(Some(&q)).await.unwrap(),
            PER_TASK as u64,
            "task {t}"
        );
    }
    let found: HashSet<String> = ids_of(&env.db.search(&Query::new()).await.unwrap())
        .into_iter()
        .collect();
    assert_eq!(found, all);
}

pub async fn concurrent_creates_of_the_same_id_have_one_winner(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let mut handles = Vec::new();
    for t in 0..8i64 {
        let db = env.db.clone();
        handles.push(tokio::spawn(async move {
            (
                t,
                db.create(Record::new().with_id("same").with("t", t)).await,
            )
        }));
    }
    let mut winners = Vec::new();
    for h in handles {
        let (t, res) = h.await.unwrap();
        match res {
            Ok(id) => {
                assert_eq!(id, "same");
                winners.push(t);
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins: {winners:?}");
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    let r = env.db.read("same").await.unwrap().unwrap();
    assert_eq!(r.get("t"), Some(&Value::Int(winners[0])));
}

pub async fn concurrent_upserts_of_the_same_id_leave_one_record(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let mut handles = Vec::new();
    for t in 0..8i64 {
        let db = env.db.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..20i64 {
                db.upsert("hot", Record::new().with("v", t * 100 + i))
                    .await
                    .expect("concurrent upsert");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    let v = match env.db.read("hot").await.unwrap().unwrap().get("v") {
        Some(Value::Int(v)) => *v,
        other => panic!("v = {other:?}"),
    };
    assert!(
        (0..8).any(|t| v == t * 100 + 19),
        "the last write of some task wins, got {v}"
    );
}

// =============================================================================================
// Consistency of stored values
// =============================================================================================

pub async fn read_and_search_return_the_same_record(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db.create(person("full", "x", Some(1))).await.unwrap();
    env.db
        .create(Record::new().with_id("sparse").with("name", "y"))
        .await
        .unwrap();
    // Read first (nothing has scanned the collection yet), then search, then read again.
    let read_before = env.db.read("sparse").await.unwrap().unwrap();
    let q = Query::new().filter("id", Operator::Eq, "sparse").unwrap();
    let searched = env.db.search(&q).await.unwrap();
    assert_eq!(searched.len(), 1);
    let read_after = env.db.read("sparse").await.unwrap().unwrap();
    assert_eq!(
        read_after.to_json(),
        searched[0].to_json(),
        "read after a scan vs search"
    );
    assert_eq!(
        read_before.to_json(),
        read_after.to_json(),
        "the same record read twice with no change in between"
    );
    assert_eq!(read_before.id(), Some("sparse"));
}

pub async fn untyped_null_does_not_fix_a_column_type(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    // `age` first appears as an untyped NULL (Value::Null has no type of its own) ...
    env.db.create(person("a", "x", None)).await.unwrap();
    // ... and then with an integer: the column is INTEGER, as infer_schema types a column by
    // its first non-null value.
    env.db.create(person("b", "y", Some(30))).await.unwrap();
    env.db.create(person("c", "z", Some(4))).await.unwrap();
    let schema = env.db.schema();
    let col = schema.field_with_name("age").expect("an age column");
    assert_eq!(
        FieldType::from_arrow(col),
        FieldType::Integer,
        "type of age"
    );
    assert_eq!(
        env.db.read("b").await.unwrap().unwrap().get("age"),
        Some(&Value::Int(30))
    );
    let q = Query::new().filter("age", Operator::Gt, 5).unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        ["b"],
        "age > 5 compares numbers"
    );
    let q = Query::new().sort("age", SortOrder::Asc);
    assert_eq!(
        search_ids_ordered(&env, &q).await,
        ["c", "b", "a"],
        "numeric order, NULL last"
    );
    let sql = format!("SELECT SUM(age) FROM {}", env.table);
    assert_eq!(sql_int(&env, &sql).await, 34);
}

pub async fn datetimes_are_stored_with_microsecond_precision(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    // 1_700_000_000.123456001 s: below half a microsecond, so truncating and rounding agree.
    let precise = DateTime::from_timestamp(1_700_000_000, 123_456_001).unwrap();
    let stored = micros(1_700_000_000_123_456);
    let mut r = Record::new().with_id("t");
    r.set_field(Field::typed("at", precise, FieldType::DateTime).unwrap());
    env.db.create(r).await.unwrap();
    let before = env.db.read("t").await.unwrap().unwrap();
    assert_eq!(
        before.get("at"),
        Some(&Value::DateTime(stored)),
        "read before any scan"
    );
    let found = env.db.search(&Query::new()).await.unwrap();
    assert_eq!(found[0].get("at"), Some(&Value::DateTime(stored)), "search");
    let after = env.db.read("t").await.unwrap().unwrap();
    assert_eq!(
        after.get("at"),
        Some(&Value::DateTime(stored)),
        "read after a scan"
    );
    let q = Query::new().filter("at", Operator::Eq, stored).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["t"]);
}

pub async fn sql_update_of_the_key_moves_the_record(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let sql = format!("UPDATE {} SET id = 'z' WHERE id = 'a'", env.table);
    assert_eq!(sql_int(&env, &sql).await, 1);
    assert!(!env.db.exists("a").await.unwrap());
    let r = env.db.read("z").await.unwrap().expect("record moved to z");
    assert_eq!(r.id(), Some("z"));
    assert_eq!(r.get("name"), Some(&Value::from("alice")));
    assert_eq!(env.db.count(None).await.unwrap(), PEOPLE.len() as u64);
    // Moving onto an existing key fails and changes nothing.
    let msg = env
        .sql_err(&format!("UPDATE {} SET id = 'b' WHERE id = 'c'", env.table))
        .await;
    assert!(msg.contains("'b'"), "the error names the key: {msg}");
    assert_eq!(
        env.db.read("b").await.unwrap().unwrap().get("name"),
        Some(&Value::from("bob"))
    );
    assert_eq!(
        env.db.read("c").await.unwrap().unwrap().get("name"),
        Some(&Value::from("carol"))
    );
    assert_eq!(env.db.count(None).await.unwrap(), PEOPLE.len() as u64);
    // The record API works on the new id.
    assert!(env.db.delete("z").await.unwrap());
    assert_eq!(env.db.count(None).await.unwrap(), PEOPLE.len() as u64 - 1);
}

// =============================================================================================
// Other collection shapes
// =============================================================================================

pub async fn the_collection_is_listed_under_its_attached_name(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let schema = env.backend.default_schema();
    assert!(
        env.backend.collection_names(&schema).contains(&env.name),
        "{} not listed in {schema}",
        env.name
    );
    assert_eq!(env.table, format!("{}.{schema}.{}", env.attached, env.name));
    assert_eq!(env.db.collection_name(), env.name);
    assert_eq!(env.db.key_column().as_deref(), Some("id"));
    let opened = env
        .backend
        .open(&schema, &env.name)
        .await
        .unwrap()
        .expect("open");
    env.db.create(person("a", "x", Some(1))).await.unwrap();
    assert_eq!(
        opened.count(None).await.unwrap(),
        1,
        "another handle sees the record"
    );
    let db = env.engine.database(&env.table).await.unwrap();
    assert_eq!(
        db.read("a").await.unwrap().unwrap().get("name"),
        Some(&Value::from("x"))
    );
}

pub async fn an_integer_key_sorts_and_filters_as_numbers(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let schema = datafusion::arrow::datatypes::Schema::new(vec![
        FieldType::Integer.arrow_field("id").with_nullable(false),
        FieldType::String.arrow_field("name"),
    ]);
    let (table, db) = env.new_collection(schema, Some("id")).await;
    assert_eq!(
        db.create(Record::new().with("id", 10).with("name", "ten"))
            .await
            .unwrap(),
        "10"
    );
    assert_eq!(
        db.create(Record::new().with_id("8").with("name", "eight"))
            .await
            .unwrap(),
        "8"
    );
    assert_eq!(
        db.create(Record::new().with("id", 9).with("name", "nine"))
            .await
            .unwrap(),
        "9"
    );
    let e = db
        .create(Record::new().with_id("abc").with("name", "bad"))
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Type,
        "a non-numeric id for an INTEGER key: {e}"
    );
    let e = db
        .create(Record::new().with("id", 9).with("name", "again"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(db.count(None).await.unwrap(), 3);
    let r = db.read("8").await.unwrap().expect("record 8");
    assert_eq!(r.id(), Some("8"));
    assert_eq!(r.get("id"), Some(&Value::Int(8)));
    let q = Query::new().sort("id", SortOrder::Asc);
    let ids: Vec<String> = ids_of(&db.search(&q).await.unwrap());
    assert_eq!(ids, ["8", "9", "10"], "numeric, not text, order");
    let q = Query::new().filter("id", Operator::Gt, 8).unwrap();
    assert_eq!(db.count(Some(&q)).await.unwrap(), 2);
    let sql = format!("SELECT name FROM {table} WHERE id = 10");
    assert_eq!(sql_strings(&env, &sql).await, ["ten"]);
    assert!(db.delete("9").await.unwrap());
    assert!(!db.exists("9").await.unwrap());
}

pub async fn a_collection_without_a_key_still_gives_ids(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let schema =
        datafusion::arrow::datatypes::Schema::new(vec![FieldType::String.arrow_field("name")]);
    let (table, db) = env.new_collection(schema, None).await;
    assert_eq!(db.key_column(), None);
    let a = db.create(Record::new().with("name", "x")).await.unwrap();
    let b = db.create(Record::new().with("name", "y")).await.unwrap();
    assert!(!a.is_empty() && a != b, "ids {a:?} and {b:?}");
    assert_eq!(
        db.read(&a).await.unwrap().unwrap().get("name"),
        Some(&Value::from("x"))
    );
    assert_eq!(
        db.read(&b).await.unwrap().unwrap().get("name"),
        Some(&Value::from("y"))
    );
    assert_eq!(db.count(None).await.unwrap(), 2);
    let sql = format!("SELECT name FROM {table} ORDER BY name");
    assert_eq!(sql_strings(&env, &sql).await, ["x", "y"]);
    assert!(
        db.update(&a, Record::new().with("name", "x2"))
            .await
            .unwrap()
    );
    assert_eq!(
        db.read(&a).await.unwrap().unwrap().get("name"),
        Some(&Value::from("x2"))
    );
    assert!(db.delete(&b).await.unwrap());
    assert_eq!(sql_strings(&env, &sql).await, ["x2"]);
}

// =============================================================================================
// Capabilities
// =============================================================================================

/// What a collection declares it can do is what it does; what it declares it cannot do is a
/// clear `Unsupported` error that changes nothing.
pub async fn declared_capabilities_match_behaviour(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let caps = env.db.capabilities();
    env.db
        .batch_create(vec![
            person("a", "Ada", Some(36)),
            person("b", "Bob", Some(50)),
        ])
        .await
        .expect("seed");
    // Row ids: a DELETE whose WHERE has a subquery selects its rows in DataFusion.
    let stmt = format!(
        "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE age > 40)",
        t = env.table
    );
    let done = env.engine.execute(&stmt).await;
    if caps.row_ids {
        let batches = done.unwrap_or_else(|e| panic!("row ids declared, but {stmt}: {e}"));
        assert_eq!(crate::common::rows(&batches), vec!["| 1     |".to_string()]);
        assert_eq!(env.db.count(None).await.unwrap(), 1);
    } else {
        let e = done.expect_err("no row ids declared: the statement must be refused");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert_eq!(env.db.count(None).await.unwrap(), 2, "nothing deleted");
    }
    // Schema growth: a record with a new field.
    let grown = env
        .db
        .create(person("c", "Cy", Some(20)).with("nickname", "c"))
        .await;
    if caps.schema_growth {
        grown.unwrap_or_else(|e| panic!("schema growth declared, but: {e}"));
        assert!(env.db.schema().field_with_name("nickname").is_ok());
    } else {
        let e = grown.expect_err("no schema growth declared: a new field must be refused");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    }
    // Native DML: a simple WHERE runs in the store (EXPLAIN says mode=native).
    let explain = env
        .sql_rows(&format!(
            "EXPLAIN DELETE FROM {} WHERE age > 100",
            env.table
        ))
        .await
        .join("\n");
    assert_eq!(
        explain.contains("mode=native"),
        caps.native_dml,
        "native DML declared {}: {explain}",
        caps.native_dml
    );
}
