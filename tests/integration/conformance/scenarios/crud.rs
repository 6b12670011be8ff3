//! CRUD and batch operations.

use dataknobs::{ErrorKind, Operand, Operator, Query, Record, SortOrder, Value};

use super::helpers::{
    PEOPLE, assert_partial_write_consistent, assert_refused, is_null_or_missing, people_where,
    person, search_ids, search_ids_ordered, seed_people, snapshot, sql_int, sql_strings,
    sql_values, strings,
};
use crate::conformance::{Fixture, fresh};

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
    if !env.db.capabilities().schema_growth {
        // No schema growth: an update bringing a field the collection lacks is refused with
        // Unsupported, and the record and the columns stay as they were.
        env.db.create(Record::new().with_id("a")).await.unwrap();
        env.db.create(Record::new().with_id("b")).await.unwrap();
        let before = snapshot(&env).await;
        let grown = env
            .db
            .update("b", Record::new().with_id("b").with("color", "red"))
            .await;
        assert_refused(&env, &before, "update with a new field", grown).await;
        assert!(env.db.schema().field_with_name("color").is_err());
        return;
    }
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
    if !env.db.capabilities().atomic_batches {
        // Not all or nothing: records written before the duplicate may stay. The error is still
        // reported (above); `a` is stored at most once, as one of the two records given for it;
        // the count, a search and SQL agree.
        assert_partial_write_consistent(&env, 0, &[("a", &["x", "z"]), ("b", &["y"])]).await;
        return;
    }
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
    if env.db.capabilities().atomic_batches {
        assert_eq!(env.db.count(None).await.unwrap(), 1);
        assert!(!env.db.exists("n1").await.unwrap());
    } else {
        // Not all or nothing: `n1` may have been written before the clash was found. The error
        // is still reported (above), the count, a search and SQL agree, and the existing
        // record is not replaced (below).
        assert_partial_write_consistent(&env, 1, &[("n1", &["new"])]).await;
    }
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
