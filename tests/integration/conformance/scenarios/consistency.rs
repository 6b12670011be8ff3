//! Consistency of stored values.

use chrono::DateTime;
use dataknobs::{Field, FieldType, Operator, Query, Record, SortOrder, Value};

use super::helpers::{
    PEOPLE, assert_dml_refused, micros, no_dml, person, search_ids, search_ids_ordered,
    seed_people, sql_int,
};
use crate::conformance::{Fixture, fresh};

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
    if no_dml(&env) {
        let sql = format!("UPDATE {} SET id = 'z' WHERE id = 'a'", env.table);
        assert_dml_refused(&env, &sql).await;
        return;
    }
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
