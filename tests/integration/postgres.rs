//! The PostgreSQL backend against a real server (DK_TEST_POSTGRES_URL, started by
//! scripts/test.sh): the conformance suite, the .slt files and the differential test, each in
//! its own PostgreSQL schema so tests run in parallel.

use std::sync::Arc;

use async_trait::async_trait;
use dataknobs::backends::postgres::{PgBackend, PgOptions};
use dataknobs::{Backend, Engine};

use crate::common::unique_name;
use crate::conformance::Fixture;

/// The server under test. Not set outside scripts/test.sh: then the local default, and a
/// test fails (never skips) if no server answers there.
pub fn url() -> String {
    std::env::var("DK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// `url()` with extra query options.
pub fn url_with(options: &str) -> String {
    let base = url();
    if base.contains('?') {
        format!("{base}&{options}")
    } else {
        format!("{base}?{options}")
    }
}

/// A fresh PostgreSQL schema; returns its name.
pub async fn fresh_schema() -> String {
    let schema = unique_name("dk");
    let admin = PgBackend::connect(&url::Url::parse(&url()).expect("url"), PgOptions::default())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is not reachable: {e}", url()));
    admin
        .execute_native(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .expect("create schema");
    schema
}

/// A backend whose default schema is a fresh one.
pub async fn backend_in_fresh_schema() -> Arc<PgBackend> {
    let schema = fresh_schema().await;
    let u = url::Url::parse(&url_with(&format!("schema={schema}"))).expect("url");
    Arc::new(
        PgBackend::connect(&u, PgOptions::default())
            .await
            .expect("connect"),
    )
}

/// An engine whose default backend is PostgreSQL (attached as `pg`) in a fresh schema.
pub async fn engine_in_fresh_schema() -> Engine {
    let engine = engine_in(&fresh_schema().await).await;
    engine.set_default_backend("pg").expect("default");
    engine
}

/// An engine with PostgreSQL attached as `pg` in `schema` (memory stays the default backend).
pub async fn engine_in(schema: &str) -> Engine {
    let engine = Engine::new();
    engine
        .attach("pg", &url_with(&format!("schema={schema}")))
        .await
        .expect("attach postgres");
    engine
}

pub struct PgFixture;

#[async_trait]
impl Fixture for PgFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        backend_in_fresh_schema().await
    }
}

crate::backend_suite! {
    fixture: PgFixture,
    name: "postgres",
    engine: engine_in_fresh_schema,
    // PostgreSQL cannot evaluate some of the generated filters exactly as DataFusion does
    // (regular expressions with flags or \\s, IN lists of float zeros): they stay in
    // DataFusion, so the bar is 75% rather than the memory backend's 80%.
    differential: {
        rows: 300,
        share: Some(0.75),
        check: |outcome| {
            // About a third of the queries sort, most by pushable keys over a fully pushed WHERE.
            assert!(
                outcome.sort_pushed * 10 >= outcome.queries,
                "only {} of {} queries had their ORDER BY pushed to PostgreSQL",
                outcome.sort_pushed,
                outcome.queries
            );
        },
    },
}
