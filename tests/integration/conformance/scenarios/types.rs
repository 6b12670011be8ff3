//! Field types.

use chrono::SecondsFormat;
use dataknobs::{ErrorKind, Field, FieldType, Operand, Operator, Query, Record, SortOrder, Value};

use super::helpers::{
    assert_partial_write_consistent, is_null_or_missing, lit, micros, person, search_ids,
    search_ids_ordered, seed_people, sql_int, sql_strings, sql_values,
};
use crate::conformance::{Fixture, fresh};

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
    if env.db.capabilities().atomic_batches {
        assert_eq!(env.db.count(None).await.unwrap(), n);
        for id in ["x", "y", "z", "ok1"] {
            assert!(!env.db.exists(id).await.unwrap(), "{id} must not exist");
        }
    } else {
        // Not all or nothing: `ok1`, before the bad record in the batch, may have been kept;
        // the count, a search and SQL agree. The bad records themselves, and the single-record
        // writes, still changed nothing (here and below).
        assert_partial_write_consistent(&env, n, &[("ok1", &["fine"])]).await;
        for id in ["x", "y", "z"] {
            assert!(!env.db.exists(id).await.unwrap(), "{id} must not exist");
        }
    }
    let a = env.db.read("a").await.unwrap().unwrap();
    assert_eq!(a.get("name"), Some(&Value::from("alice")));
    assert_eq!(a.get("age"), Some(&Value::Int(10)));
    let sql = format!("SELECT COUNT(*) FROM {} WHERE name = 'bad'", env.table);
    assert_eq!(sql_int(&env, &sql).await, 0);
}
