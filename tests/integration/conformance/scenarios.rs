//! The scenarios. Each takes a [`Fixture`], makes its own fresh collection with
//! [`fresh`], and asserts on results. Add a scenario here and to `all_scenarios!` below.

use dataknobs::{ErrorKind, Operator, Query, Record, SortOrder, Value};

use super::{Fixture, fresh};

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
