//! Bad input.

use dataknobs::{ErrorKind, Field, FieldType, Operand, Operator, Query, SortOrder, Value};

use super::helpers::{PEOPLE, micros, seed_people};
use crate::conformance::{Fixture, fresh};

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
