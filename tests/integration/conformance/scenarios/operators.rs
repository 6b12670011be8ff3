//! Operators and SQL NULL semantics.

use dataknobs::{Field, FieldType, Filter, FilterExpr, Operand, Operator, Query, Record, Value};

use super::helpers::{
    and3, in3, int_values, lit, micros, not3, or3, people_where, search_ids, seed_people, sql_int,
    sql_int_list, sql_like, sql_strings,
};
use crate::conformance::{Env, Fixture, fresh};

pub async fn filter_eq_null_matches_nothing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    for field in ["age", "name"] {
        let q = Query::new()
            .filter(field, Operator::Eq, Value::Null)
            .unwrap();
        assert!(
            search_ids(&env, &q).await.is_empty(),
            "{field} = NULL matched rows"
        );
        let q = Query::new()
            .filter(field, Operator::Ne, Value::Null)
            .unwrap();
        assert!(
            search_ids(&env, &q).await.is_empty(),
            "{field} != NULL matched rows"
        );
    }
    assert_eq!(
        sql_int(
            &env,
            &format!("SELECT COUNT(*) FROM {} WHERE age = NULL", env.table)
        )
        .await,
        0
    );
}

pub async fn filter_ne_excludes_nulls(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new().filter("age", Operator::Ne, 20).unwrap();
    let expected = people_where(|_, a| a.map(|a| a != 20));
    assert_eq!(expected, ["a", "c"]);
    assert_eq!(search_ids(&env, &q).await, expected);
    let sql = format!("SELECT id FROM {} WHERE age <> 20 ORDER BY id", env.table);
    assert_eq!(sql_strings(&env, &sql).await, expected);
    let q = Query::new().filter("name", Operator::Ne, "bob").unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        people_where(|n, _| Some(n != "bob"))
    );
}

pub async fn filter_range_operators(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    type Cmp = fn(i64, i64) -> bool;
    let cases: [(Operator, &str, Cmp); 4] = [
        (Operator::Gt, ">", |a, b| a > b),
        (Operator::Ge, ">=", |a, b| a >= b),
        (Operator::Lt, "<", |a, b| a < b),
        (Operator::Le, "<=", |a, b| a <= b),
    ];
    for (op, sym, cmp) in cases {
        for bound in [5, 10, 20, 25, 30, 35] {
            let q = Query::new().filter("age", op, bound).unwrap();
            let expected = people_where(|_, a| a.map(|a| cmp(a, bound)));
            assert_eq!(search_ids(&env, &q).await, expected, "age {sym} {bound}");
            let sql = format!(
                "SELECT id FROM {} WHERE age {sym} {bound} ORDER BY id",
                env.table
            );
            assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
        }
    }
}

pub async fn filter_in_with_null_matches_only_non_null_values(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let lists: [&[Option<i64>]; 4] = [
        &[Some(10), Some(30)],
        &[Some(10), None],
        &[None],
        &[Some(99), Some(20), Some(20)],
    ];
    for list in lists {
        let q = Query::new()
            .filter("age", Operator::In, int_values(list))
            .unwrap();
        let expected = people_where(|_, a| in3(a, list));
        assert_eq!(search_ids(&env, &q).await, expected, "age IN {list:?}");
        let sql = format!(
            "SELECT id FROM {} WHERE age IN ({}) ORDER BY id",
            env.table,
            sql_int_list(list)
        );
        assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
    }
    // Spelled out: IN (10, NULL) is just the row with 10.
    let q = Query::new()
        .filter("age", Operator::In, vec![Value::Int(10), Value::Null])
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a"]);
}

pub async fn filter_not_in_with_null_in_list_matches_nothing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let lists: [&[Option<i64>]; 4] = [
        &[Some(10)],
        &[Some(10), Some(30), Some(77)],
        &[Some(10), None],
        &[None],
    ];
    for list in lists {
        let q = Query::new()
            .filter("age", Operator::NotIn, int_values(list))
            .unwrap();
        let expected = people_where(|_, a| not3(in3(a, list)));
        assert_eq!(search_ids(&env, &q).await, expected, "age NOT IN {list:?}");
        let sql = format!(
            "SELECT id FROM {} WHERE age NOT IN ({}) ORDER BY id",
            env.table,
            sql_int_list(list)
        );
        assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
    }
    let q = Query::new()
        .filter("age", Operator::NotIn, vec![Value::Int(10), Value::Null])
        .unwrap();
    assert!(
        search_ids(&env, &q).await.is_empty(),
        "NOT IN with a NULL element matches nothing"
    );
    let q = Query::new()
        .filter("age", Operator::NotIn, vec![10])
        .unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        ["b", "c"],
        "NOT IN excludes NULL ages"
    );
}

pub async fn filter_exists_and_not_exists_cover_null_and_missing(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new()
        .filter("age", Operator::Exists, Operand::None)
        .unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        people_where(|_, a| Some(a.is_some()))
    );
    assert_eq!(search_ids(&env, &q).await, ["a", "b", "c"]);
    let q = Query::new()
        .filter("age", Operator::NotExists, Operand::None)
        .unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        ["d", "e"],
        "explicit NULL and missing field"
    );
    let q = Query::new()
        .filter("name", Operator::NotExists, Operand::None)
        .unwrap();
    assert!(search_ids(&env, &q).await.is_empty());
    let sql = format!("SELECT id FROM {} WHERE age IS NULL ORDER BY id", env.table);
    assert_eq!(sql_strings(&env, &sql).await, ["d", "e"]);
    let sql = format!(
        "SELECT id FROM {} WHERE age IS NOT NULL ORDER BY id",
        env.table
    );
    assert_eq!(sql_strings(&env, &sql).await, ["a", "b", "c"]);
}

pub async fn filter_operators_parsed_from_seed_strings(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    type Pred = Box<dyn Fn(Option<i64>) -> Option<bool>>;
    fn p(f: impl Fn(Option<i64>) -> Option<bool> + 'static) -> Pred {
        Box::new(f)
    }
    let cases: Vec<(&str, Operand, Pred)> = vec![
        ("=", 20.into(), p(|a: Option<i64>| a.map(|a| a == 20))),
        ("==", 20.into(), p(|a: Option<i64>| a.map(|a| a == 20))),
        ("!=", 20.into(), p(|a: Option<i64>| a.map(|a| a != 20))),
        ("<>", 20.into(), p(|a: Option<i64>| a.map(|a| a != 20))),
        (">", 20.into(), p(|a: Option<i64>| a.map(|a| a > 20))),
        (">=", 25.into(), p(|a: Option<i64>| a.map(|a| a >= 25))),
        ("<", 20.into(), p(|a: Option<i64>| a.map(|a| a < 20))),
        ("<=", 20.into(), p(|a: Option<i64>| a.map(|a| a <= 20))),
        (
            "IN",
            vec![10, 30].into(),
            p(|a: Option<i64>| in3(a, &[Some(10), Some(30)])),
        ),
        (
            "in",
            vec![20].into(),
            p(|a: Option<i64>| in3(a, &[Some(20)])),
        ),
        (
            "NOT IN",
            vec![10].into(),
            p(|a: Option<i64>| not3(in3(a, &[Some(10)]))),
        ),
        (
            "not  in",
            vec![10, 20].into(),
            p(|a: Option<i64>| not3(in3(a, &[Some(10), Some(20)]))),
        ),
        (
            "EXISTS",
            Operand::None,
            p(|a: Option<i64>| Some(a.is_some())),
        ),
        (
            "NOT EXISTS",
            Operand::None,
            p(|a: Option<i64>| Some(a.is_none())),
        ),
        (
            "not exists",
            Operand::None,
            p(|a: Option<i64>| Some(a.is_none())),
        ),
    ];
    for (op, operand, pred) in cases {
        let q = Query::new()
            .try_filter("age", op, operand)
            .unwrap_or_else(|e| panic!("operator {op:?}: {e}"));
        assert_eq!(
            search_ids(&env, &q).await,
            people_where(|_, a| pred(a)),
            "age {op}"
        );
    }
    let q = Query::new().try_filter("age", ">=", 25).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["c"]);
    let q = Query::new().try_filter("name", "LIKE", "%o%").unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        people_where(|n, _| Some(n.contains('o')))
    );
    let q = Query::new().try_filter("name", "REGEX", "^[ab]").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a", "b"]);
}

pub async fn filter_in_and_not_in_on_strings(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let names = [Some("apple"), Some("banana"), Some("cherry"), None];
    for (i, n) in names.iter().enumerate() {
        env.db
            .create(
                Record::new()
                    .with_id(format!("s{i}"))
                    .with("name", Value::from(*n)),
            )
            .await
            .unwrap();
    }
    env.db
        .create(Record::new().with_id("s4").with("age", 1))
        .await
        .unwrap(); // no name at all
    let mut all: Vec<(String, Option<&str>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("s{i}"), *n))
        .collect();
    all.push(("s4".into(), None));
    let lists: [&[Option<&str>]; 4] = [
        &[Some("apple"), Some("cherry"), Some("zzz")],
        &[Some("banana"), None],
        &[Some("apple")],
        &[Some("apple"), None],
    ];
    for list in lists {
        let values: Vec<Value> = list.iter().map(|v| Value::from(*v)).collect();
        let sql_list = list
            .iter()
            .map(|v| v.map_or("NULL".to_string(), lit))
            .collect::<Vec<_>>()
            .join(", ");
        for negated in [false, true] {
            let expected: Vec<String> = all
                .iter()
                .filter(|(_, n)| {
                    let r = in3(*n, list);
                    (if negated { not3(r) } else { r }) == Some(true)
                })
                .map(|(id, _)| id.clone())
                .collect();
            let op = if negated {
                Operator::NotIn
            } else {
                Operator::In
            };
            let q = Query::new().filter("name", op, values.clone()).unwrap();
            assert_eq!(search_ids(&env, &q).await, expected, "name {op} {list:?}");
            let sql = format!(
                "SELECT id FROM {} WHERE name {} ({sql_list}) ORDER BY id",
                env.table,
                if negated { "NOT IN" } else { "IN" }
            );
            assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
        }
    }
}

pub async fn filter_string_comparisons(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    type Cmp = fn(&str, &str) -> bool;
    let cases: [(Operator, Cmp); 6] = [
        (Operator::Eq, |a, b| a == b),
        (Operator::Ne, |a, b| a != b),
        (Operator::Gt, |a, b| a > b),
        (Operator::Ge, |a, b| a >= b),
        (Operator::Lt, |a, b| a < b),
        (Operator::Le, |a, b| a <= b),
    ];
    for (op, cmp) in cases {
        for bound in ["bob", "c", "dave", "zed", "a"] {
            let q = Query::new().filter("name", op, bound).unwrap();
            let expected = people_where(|n, _| Some(cmp(n, bound)));
            assert_eq!(search_ids(&env, &q).await, expected, "name {op} {bound:?}");
        }
    }
}

pub async fn empty_string_is_not_null(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    env.db
        .create(Record::new().with_id("x").with("name", "x"))
        .await
        .unwrap();
    env.db
        .create(Record::new().with_id("empty").with("name", ""))
        .await
        .unwrap();
    env.db
        .create(Record::new().with_id("null").with("name", Value::Null))
        .await
        .unwrap();
    assert_eq!(
        env.db.read("empty").await.unwrap().unwrap().get("name"),
        Some(&Value::from(""))
    );
    let q = Query::new().filter("name", Operator::Eq, "").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["empty"]);
    let q = Query::new()
        .filter("name", Operator::Exists, Operand::None)
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["empty", "x"]);
    let q = Query::new()
        .filter("name", Operator::NotExists, Operand::None)
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["null"]);
    let sql = format!("SELECT id FROM {} WHERE name = '' ORDER BY id", env.table);
    assert_eq!(sql_strings(&env, &sql).await, ["empty"]);
    let sql = format!("SELECT COUNT(name) FROM {}", env.table);
    assert_eq!(sql_int(&env, &sql).await, 2);
}

/// Names for the LIKE and REGEX scenarios (`None` is NULL).
const PATTERN_NAMES: [Option<&str>; 12] = [
    Some("a%b"),
    Some("axb"),
    Some("a_b"),
    Some("ab"),
    Some("abc"),
    Some("a\\b"),
    Some("A%B"),
    Some("\u{1F600}x"),
    Some("\u{e9}x"),
    Some(""),
    Some("xa%bx"),
    None,
];

async fn seed_pattern_names(env: &Env) -> Vec<(String, Option<&'static str>)> {
    let mut rows = Vec::new();
    for (i, n) in PATTERN_NAMES.iter().enumerate() {
        let id = format!("l{i:02}");
        env.db
            .create(
                Record::new()
                    .with_id(id.clone())
                    .with("name", Value::from(*n)),
            )
            .await
            .unwrap();
        rows.push((id, *n));
    }
    rows
}

async fn check_like(env: &Env, rows: &[(String, Option<&str>)], pattern: &str) -> Vec<String> {
    let expected: Vec<String> = rows
        .iter()
        .filter(|(_, n)| n.is_some_and(|n| sql_like(n, pattern)))
        .map(|(id, _)| id.clone())
        .collect();
    let q = Query::new()
        .filter("name", Operator::Like, pattern)
        .unwrap();
    assert_eq!(
        search_ids(env, &q).await,
        expected,
        "record API: name LIKE {pattern:?}"
    );
    let sql = format!(
        "SELECT id FROM {} WHERE name LIKE {} ORDER BY id",
        env.table,
        lit(pattern)
    );
    assert_eq!(sql_strings(env, &sql).await, expected, "{sql}");
    expected
}

/// The names of the rows with these ids.
fn names_of(rows: &[(String, Option<&'static str>)], ids: &[String]) -> Vec<&'static str> {
    ids.iter()
        .map(|id| {
            rows.iter()
                .find(|(i, _)| i == id)
                .and_then(|(_, n)| *n)
                .unwrap()
        })
        .collect()
}

pub async fn like_percent_and_underscore(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let rows = seed_pattern_names(&env).await;
    for p in [
        "a%", "%b", "a_b", "%", "", "_", "__", "a%b", "%x%", "abc", "a%c", "%%b%",
    ] {
        check_like(&env, &rows, p).await;
    }
    // Spot checks that pin the matcher itself.
    let got = check_like(&env, &rows, "a_b").await;
    assert_eq!(names_of(&rows, &got), ["a%b", "axb", "a_b", "a\\b"]);
    let got = check_like(&env, &rows, "%").await;
    assert_eq!(
        got.len(),
        PATTERN_NAMES.len() - 1,
        "% matches every non-NULL value, even ''"
    );
    // NOT LIKE leaves NULL out as well.
    let like = Filter::new("name", Operator::Like, "a%").unwrap();
    let q = Query::new().where_expr(FilterExpr::Not(Box::new(FilterExpr::Cond(like))));
    let expected: Vec<String> = rows
        .iter()
        .filter(|(_, n)| n.is_some_and(|n| !sql_like(n, "a%")))
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(search_ids(&env, &q).await, expected);
    let sql = format!(
        "SELECT id FROM {} WHERE name NOT LIKE 'a%' ORDER BY id",
        env.table
    );
    assert_eq!(sql_strings(&env, &sql).await, expected);
    // A NULL pattern matches nothing.
    let q = Query::new()
        .filter("name", Operator::Like, Value::Null)
        .unwrap();
    assert!(search_ids(&env, &q).await.is_empty());
}

pub async fn like_escaped_wildcards_match_literally(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let rows = seed_pattern_names(&env).await;
    let got = check_like(&env, &rows, "a\\%b").await;
    assert_eq!(names_of(&rows, &got), ["a%b"]);
    let got = check_like(&env, &rows, "a\\_b").await;
    assert_eq!(names_of(&rows, &got), ["a_b"]);
    let got = check_like(&env, &rows, "a\\\\b").await;
    assert_eq!(names_of(&rows, &got), ["a\\b"]);
    let got = check_like(&env, &rows, "%\\%%").await;
    assert_eq!(names_of(&rows, &got), ["a%b", "A%B", "xa%bx"]);
    check_like(&env, &rows, "\\%").await;
}

pub async fn like_is_case_sensitive_and_counts_characters(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let rows = seed_pattern_names(&env).await;
    let got = check_like(&env, &rows, "A%").await;
    assert_eq!(names_of(&rows, &got), ["A%B"]);
    // `_` is one character, even when it takes several bytes in UTF-8.
    let got = check_like(&env, &rows, "_x").await;
    assert_eq!(names_of(&rows, &got), ["\u{1F600}x", "\u{e9}x"]);
    check_like(&env, &rows, "\u{e9}%").await;
    check_like(&env, &rows, "A_B").await;
}

pub async fn regex_is_unanchored_and_case_sensitive(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let rows = seed_pattern_names(&env).await;
    for p in [
        "^a.b$",
        "b$",
        "x",
        "^A",
        "^(ab|abc)$",
        "%",
        "^$",
        "[0-9]",
        "^.x$",
        "B",
    ] {
        let re = regex::Regex::new(p).unwrap();
        let expected: Vec<String> = rows
            .iter()
            .filter(|(_, n)| n.is_some_and(|n| re.is_match(n)))
            .map(|(id, _)| id.clone())
            .collect();
        let q = Query::new().filter("name", Operator::Regex, p).unwrap();
        assert_eq!(search_ids(&env, &q).await, expected, "name REGEX {p:?}");
        let sql = format!(
            "SELECT id FROM {} WHERE name ~ {} ORDER BY id",
            env.table,
            lit(p)
        );
        assert_eq!(sql_strings(&env, &sql).await, expected, "{sql}");
    }
    let q = Query::new().filter("name", Operator::Regex, "x").unwrap();
    let got = search_ids(&env, &q).await;
    assert_eq!(
        names_of(&rows, &got),
        ["axb", "\u{1F600}x", "\u{e9}x", "xa%bx"]
    );
}

pub async fn filters_combine_with_and_or_not(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let cond = |f: &str, op: Operator, v: Operand| FilterExpr::Cond(Filter::new(f, op, v).unwrap());
    // NOT (age > 15): NOT of unknown stays unknown, so NULL ages are not returned.
    let q = Query::new().where_expr(FilterExpr::Not(Box::new(cond(
        "age",
        Operator::Gt,
        15.into(),
    ))));
    let expected = people_where(|_, a| not3(a.map(|a| a > 15)));
    assert_eq!(expected, ["a"]);
    assert_eq!(search_ids(&env, &q).await, expected);
    // age < 15 OR name = 'dave'.
    let q = Query::new().where_expr(FilterExpr::Or(vec![
        cond("age", Operator::Lt, 15.into()),
        cond("name", Operator::Eq, "dave".into()),
    ]));
    let expected = people_where(|n, a| or3(a.map(|a| a < 15), Some(n == "dave")));
    assert_eq!(search_ids(&env, &q).await, expected);
    // Two filters are AND-ed.
    let q = Query::new()
        .filter("age", Operator::Ge, 10)
        .unwrap()
        .filter("name", Operator::Ne, "bob")
        .unwrap();
    let expected = people_where(|n, a| and3(a.map(|a| a >= 10), Some(n != "bob")));
    assert_eq!(search_ids(&env, &q).await, expected);
    // NOT (age IN (10, NULL)): unknown for every non-10 row, false for 10.
    let q = Query::new().where_expr(FilterExpr::Not(Box::new(cond(
        "age",
        Operator::In,
        vec![Value::Int(10), Value::Null].into(),
    ))));
    assert!(search_ids(&env, &q).await.is_empty());
    // The SQL engine agrees.
    let sql = format!(
        "SELECT id FROM {} WHERE NOT (age > 15) OR name = 'eve' ORDER BY id",
        env.table
    );
    let expected = people_where(|n, a| or3(not3(a.map(|a| a > 15)), Some(n == "eve")));
    assert_eq!(sql_strings(&env, &sql).await, expected);
}

pub async fn numeric_filters_mix_integers_and_floats(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new().filter("age", Operator::Gt, 15.5).unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        people_where(|_, a| a.map(|a| a as f64 > 15.5))
    );
    let q = Query::new()
        .filter("age", Operator::In, vec![10.0, 20.5])
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a"]);
    // A FLOAT column compared with integers.
    let scores = [
        ("a", Some(1.5)),
        ("b", Some(2.0)),
        ("c", Some(2.5)),
        ("d", None),
    ];
    for (id, s) in scores {
        let mut r = env.db.read(id).await.unwrap().unwrap();
        r.set_field(Field::typed("score", Value::from(s), FieldType::Float).unwrap());
        assert!(env.db.update(id, r).await.unwrap());
    }
    let q = Query::new().filter("score", Operator::Ge, 2).unwrap();
    let expected: Vec<String> = scores
        .iter()
        .filter(|(_, s)| s.is_some_and(|s| s >= 2.0))
        .map(|(id, _)| id.to_string())
        .collect();
    assert_eq!(search_ids(&env, &q).await, expected);
    let q = Query::new().filter("score", Operator::Eq, 2).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["b"]);
    let q = Query::new().filter("score", Operator::Lt, 2.25).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a", "b"]);
}

pub async fn filter_on_boolean_and_datetime_columns(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let t0 = micros(1_685_620_800_000_001); // 2023-06-01T12:00:00.000001Z
    let t1 = micros(1_709_251_200_000_000); // 2024-03-01T00:00:00Z
    let t2 = micros(1_709_251_200_000_001); // one microsecond later
    let rows = [
        ("p", Some(true), Some(t0)),
        ("q", Some(false), Some(t1)),
        ("r", None, Some(t2)),
        ("s", Some(true), None),
    ];
    for (id, flag, at) in rows {
        let mut r = Record::new().with_id(id);
        r.set_field(Field::typed("flag", Value::from(flag), FieldType::Boolean).unwrap());
        r.set_field(Field::typed("at", Value::from(at), FieldType::DateTime).unwrap());
        env.db.create(r).await.unwrap();
    }
    let q = Query::new().filter("flag", Operator::Eq, true).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["p", "s"]);
    let q = Query::new().filter("flag", Operator::Ne, true).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["q"], "!= true excludes NULL");
    let q = Query::new().filter("at", Operator::Gt, t1).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["r"], "microseconds count");
    let q = Query::new().filter("at", Operator::Eq, t2).unwrap();
    assert_eq!(search_ids(&env, &q).await, ["r"]);
    let q = Query::new()
        .filter("at", Operator::Ge, "2024-01-01T00:00:00Z")
        .unwrap();
    assert_eq!(
        search_ids(&env, &q).await,
        ["q", "r"],
        "RFC 3339 string against a DATETIME"
    );
    let q = Query::new()
        .filter("at", Operator::Lt, "2024-03-01 00:00:00")
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["p"]);
    let q = Query::new()
        .filter("at", Operator::NotExists, Operand::None)
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["s"]);
    let sql = format!("SELECT id FROM {} WHERE flag ORDER BY id", env.table);
    assert_eq!(sql_strings(&env, &sql).await, ["p", "s"]);
    let sql = format!(
        "SELECT id FROM {} WHERE at > TIMESTAMP '2024-03-01T00:00:00Z' ORDER BY id",
        env.table
    );
    assert_eq!(sql_strings(&env, &sql).await, ["r"]);
}

pub async fn filter_on_the_id_column(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    seed_people(&env).await;
    let q = Query::new().filter("id", Operator::Eq, "b").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["b"]);
    let q = Query::new()
        .filter("id", Operator::In, vec!["a", "c", "zz"])
        .unwrap();
    assert_eq!(search_ids(&env, &q).await, ["a", "c"]);
    let q = Query::new().filter("id", Operator::Ne, "a").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["b", "c", "d", "e"]);
    let q = Query::new().filter("id", Operator::Gt, "c").unwrap();
    assert_eq!(search_ids(&env, &q).await, ["d", "e"]);
}
