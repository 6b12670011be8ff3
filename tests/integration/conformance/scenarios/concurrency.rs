//! Concurrency.

use std::collections::HashSet;
use std::sync::Arc;

use dataknobs::{Database, ErrorKind, Operator, Query, Record, Value};

use super::helpers::{ids_of, sql_int};
use crate::conformance::{Fixture, fresh};

pub async fn concurrent_creates_from_many_tasks(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    const TASKS: i64 = 8;
    const PER_TASK: i64 = 50;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let db: Arc<dyn Database> = env.db.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..PER_TASK {
                let r = Record::new().with("task", t).with("i", i);
                ids.push(db.create(r).await.expect("concurrent create"));
            }
            ids
        }));
    }
    let mut all = HashSet::new();
    for h in handles {
        for id in h.await.unwrap() {
            assert!(all.insert(id.clone()), "id {id} returned twice");
        }
    }
    assert_eq!(all.len(), (TASKS * PER_TASK) as usize);
    assert_eq!(env.db.count(None).await.unwrap(), (TASKS * PER_TASK) as u64);
    let sql = format!("SELECT COUNT(DISTINCT id) FROM {}", env.table);
    assert_eq!(sql_int(&env, &sql).await, TASKS * PER_TASK);
    for t in 0..TASKS {
        let q = Query::new().filter("task", Operator::Eq, t).unwrap();
        assert_eq!(
            env.db.count(Some(&q)).await.unwrap(),
            PER_TASK as u64,
            "task {t}"
        );
    }
    let found: HashSet<String> = ids_of(&env.db.search(&Query::new()).await.unwrap())
        .into_iter()
        .collect();
    assert_eq!(found, all);
}

pub async fn concurrent_creates_of_the_same_id_have_one_winner(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let mut handles = Vec::new();
    for t in 0..8i64 {
        let db = env.db.clone();
        handles.push(tokio::spawn(async move {
            (
                t,
                db.create(Record::new().with_id("same").with("t", t)).await,
            )
        }));
    }
    let mut winners = Vec::new();
    for h in handles {
        let (t, res) = h.await.unwrap();
        match res {
            Ok(id) => {
                assert_eq!(id, "same");
                winners.push(t);
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins: {winners:?}");
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    let r = env.db.read("same").await.unwrap().unwrap();
    assert_eq!(r.get("t"), Some(&Value::Int(winners[0])));
}

pub async fn concurrent_upserts_of_the_same_id_leave_one_record(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let mut handles = Vec::new();
    for t in 0..8i64 {
        let db = env.db.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..20i64 {
                db.upsert("hot", Record::new().with("v", t * 100 + i))
                    .await
                    .expect("concurrent upsert");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(env.db.count(None).await.unwrap(), 1);
    let v = match env.db.read("hot").await.unwrap().unwrap().get("v") {
        Some(Value::Int(v)) => *v,
        other => panic!("v = {other:?}"),
    };
    assert!(
        (0..8).any(|t| v == t * 100 + 19),
        "the last write of some task wins, got {v}"
    );
}
