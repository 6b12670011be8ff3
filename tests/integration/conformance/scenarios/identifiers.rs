//! Unicode, quotes and identifiers.

use dataknobs::{Operator, Query, Record, SortOrder, Value};

use super::helpers::{lit, search_ids, search_ids_ordered, sql_int, sql_strings, sql_values};
use crate::conformance::{Fixture, fresh};

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
