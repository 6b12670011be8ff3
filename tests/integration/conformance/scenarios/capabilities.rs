//! Capabilities.

use dataknobs::ErrorKind;

use super::helpers::person;
use crate::conformance::{Fixture, fresh};

/// What a collection declares it can do is what it does; what it declares it cannot do is a
/// clear `Unsupported` error that changes nothing.
pub async fn declared_capabilities_match_behaviour(fx: &dyn Fixture) {
    let env = fresh(fx).await;
    let caps = env.db.capabilities();
    env.db
        .batch_create(vec![
            person("a", "Ada", Some(36)),
            person("b", "Bob", Some(50)),
        ])
        .await
        .expect("seed");
    // Row ids: a DELETE whose WHERE has a subquery selects its rows in DataFusion.
    let stmt = format!(
        "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE age > 40)",
        t = env.table
    );
    let done = env.engine.execute(&stmt).await;
    if caps.row_ids {
        let batches = done.unwrap_or_else(|e| panic!("row ids declared, but {stmt}: {e}"));
        assert_eq!(crate::common::rows(&batches), vec!["| 1     |".to_string()]);
        assert_eq!(env.db.count(None).await.unwrap(), 1);
    } else {
        let e = done.expect_err("no row ids declared: the statement must be refused");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert_eq!(env.db.count(None).await.unwrap(), 2, "nothing deleted");
    }
    // Schema growth: a record with a new field.
    let grown = env
        .db
        .create(person("c", "Cy", Some(20)).with("nickname", "c"))
        .await;
    if caps.schema_growth {
        grown.unwrap_or_else(|e| panic!("schema growth declared, but: {e}"));
        assert!(env.db.schema().field_with_name("nickname").is_ok());
    } else {
        let e = grown.expect_err("no schema growth declared: a new field must be refused");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    }
    // Native DML: a simple WHERE runs in the store (EXPLAIN says mode=native).
    let explain = env
        .sql_rows(&format!(
            "EXPLAIN DELETE FROM {} WHERE age > 100",
            env.table
        ))
        .await
        .join("\n");
    assert_eq!(
        explain.contains("mode=native"),
        caps.native_dml,
        "native DML declared {}: {explain}",
        caps.native_dml
    );
}
