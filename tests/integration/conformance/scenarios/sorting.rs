//! Sorting, paging, projection.

use std::cmp::Ordering;
use std::collections::HashSet;

use dataknobs::{Operand, Operator, Query, Record, SortOrder, SortSpec, Value};

use super::helpers::{PEOPLE, search_ids, search_ids_ordered, seed_people, sql_order, sql_strings};
use crate::conformance::{Env, Fixture, fresh};

/// (id, grp, score) with NULLs in both sort keys and a tie (r1, r8).
pub(super) const SORT_ROWS: [(&str, Option<&str>, Option<i64>); 8] = [
    ("r1", Some("x"), Some(3)),
    ("r2", Some("x"), None),
    ("r3", Some("x"), Some(1)),
    ("r4", Some("y"), Some(2)),
    ("r5", Some("y"), None),
    ("r6", None, Some(5)),
    ("r7", None, None),
    ("r8", Some("x"), Some(3)),
];

pub(super) async fn seed_sort_rows(env: &Env) {
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
