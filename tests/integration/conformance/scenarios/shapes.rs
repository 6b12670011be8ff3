//! Other collection shapes.

use dataknobs::{ErrorKind, FieldType, Operator, Query, Record, SortOrder, Value};

use super::helpers::{ids_of, person, sql_strings};
use crate::conformance::{Fixture, fresh};

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
