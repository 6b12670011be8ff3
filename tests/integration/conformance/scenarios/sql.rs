//! SQL over the same data.

use std::collections::BTreeMap;

use dataknobs::{Filter, FilterExpr, Operand, Operator, Query, SortOrder, Value};

use super::helpers::{
    PEOPLE, assert_dml_refused, assert_partial_write_consistent, in3, is_null_or_missing, no_dml,
    not3, people_where, person, search_ids, search_ids_ordered, seed_people, sql_int, sql_strings,
    sql_values,
};
use super::sorting::{SORT_ROWS, seed_sort_rows};
use crate::conformance::{Fixture, fresh};

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
    if env.db.capabilities().atomic_batches {
        assert_eq!(env.db.count(None).await.unwrap(), n);
        assert!(!env.db.exists("n1").await.unwrap());
        assert!(!env.db.exists("n2").await.unwrap());
    } else {
        // Not all or nothing: rows before the failing one may have been inserted. Both errors
        // are still reported (above), `n2` is stored at most once, the count, a search and SQL
        // agree, and the existing row is not replaced (below).
        assert_partial_write_consistent(&env, n, &[("n1", &["new"]), ("n2", &["p", "q"])]).await;
    }
    assert_eq!(
        env.db.read("a").await.unwrap().unwrap().get("name"),
        Some(&Value::from("alice"))
    );
}

pub async fn sql_delete_is_visible_to_the_record_api(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    if no_dml(&env) {
        let sql = format!("DELETE FROM {} WHERE age < 25", env.table);
        assert_dml_refused(&env, &sql).await;
        return;
    }
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
    if no_dml(&env) {
        let sql = format!("UPDATE {} SET age = age + 1 WHERE name = 'bob'", env.table);
        assert_dml_refused(&env, &sql).await;
        return;
    }
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

/// Needs no capability branch: both statements fail before any row is written (a type error on
/// the one matching row, an unknown column when planning), so nothing may change on any backend,
/// with or without `atomic_batches`, native DML or row ids (then the error may be Unsupported).
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
