//! Schema growth.

use dataknobs::{Field, FieldType, Operand, Operator, Query, Record, Value};

use super::helpers::{
    assert_refused, is_null_or_missing, micros, search_ids, snapshot, sql_int, sql_strings,
    sql_values,
};
use crate::conformance::{Fixture, fresh};

pub async fn a_new_field_adds_a_nullable_column_visible_in_sql(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    if !env.db.capabilities().schema_growth {
        // No schema growth: a field the collection lacks (a fresh one has only `id`) is refused
        // with Unsupported by create and by update, and neither a column nor a record appears.
        env.db.create(Record::new().with_id("a")).await.unwrap();
        let before = snapshot(&env).await;
        let grown = env
            .db
            .create(Record::new().with_id("b").with("extra", "x"))
            .await;
        assert_refused(&env, &before, "create with a new field", grown).await;
        let grown = env.db.update("a", Record::new().with("extra", "y")).await;
        assert_refused(&env, &before, "update with a new field", grown).await;
        assert!(env.db.schema().field_with_name("extra").is_err());
        let sql = format!("SELECT COUNT(*) FROM {}", env.table);
        assert_eq!(sql_int(&env, &sql).await, 1);
        return;
    }
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
    if !env.db.capabilities().schema_growth {
        // No schema growth: new fields of any type are refused with Unsupported, in a single
        // create and inside a batch (whose records all bring new fields, so the outcome does not
        // depend on `atomic_batches`), and no column or record appears.
        env.db.create(Record::new().with_id("a")).await.unwrap();
        let before = snapshot(&env).await;
        let mut r = Record::new().with_id("b").with("n", 5).with("ratio", 0.5);
        r.set_field(Field::typed("seen_at", micros(1_000_000), FieldType::DateTime).unwrap());
        let grown = env.db.create(r).await;
        assert_refused(&env, &before, "create with new typed fields", grown).await;
        let grown = env
            .db
            .batch_create(vec![
                Record::new().with_id("c").with("flag", false),
                Record::new().with_id("d").with("flag", true),
            ])
            .await;
        assert_refused(&env, &before, "batch_create with a new field", grown).await;
        let schema = env.db.schema();
        for col in ["n", "ratio", "seen_at", "flag"] {
            assert!(schema.field_with_name(col).is_err(), "column {col}");
        }
        return;
    }
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
