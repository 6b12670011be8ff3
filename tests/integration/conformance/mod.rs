//! The conformance suite: scenarios generic over "a fresh collection of backend X".
//!
//! A backend joins by implementing [`Fixture`] in one small file and invoking
//! `backend_suite!` there (see `crate::suite`), which expands, among others, to
//! `all_scenarios!(conformance_suite; fixture)`: one `#[tokio::test]` per scenario. A backend
//! that lacks a capability (`Database::capabilities`) must return `ErrorKind::Unsupported` from
//! it; scenarios that depend on one read the declared capabilities and check for exactly that
//! instead of skipping.

pub mod scenarios;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::Schema;
use dataknobs::{Backend, CollectionSpec, Database, Engine, FieldType};

use crate::common::unique_name;

/// How to get a backend for a test run.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A backend object (a new one per call or a shared one: collection names are unique).
    async fn backend(&self) -> Arc<dyn Backend>;
}

/// A fresh, empty collection keyed by `id` (STRING), attached to an engine.
pub struct Env {
    pub engine: Engine,
    pub backend: Arc<dyn Backend>,
    /// The attached name (`b`).
    pub attached: String,
    /// The collection name.
    pub name: String,
    /// The SQL name of the collection: `b.<schema>.<name>`.
    pub table: String,
    pub db: Arc<dyn Database>,
}

impl Env {
    /// Runs SQL and returns the rows as display strings, in result order.
    pub async fn sql_rows(&self, sql: &str) -> Vec<String> {
        let batches = self
            .engine
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("SQL failed: {sql}\n{e}"));
        crate::common::rows(&batches)
    }

    /// Runs SQL expecting an error; returns its message.
    pub async fn sql_err(&self, sql: &str) -> String {
        match self.engine.execute(sql).await {
            Ok(b) => panic!("expected an error from {sql}, got {} batches", b.len()),
            Err(e) => e.to_string(),
        }
    }

    /// Another fresh collection in the same backend with the given schema and key.
    pub async fn new_collection(
        &self,
        schema: Schema,
        key: Option<&str>,
    ) -> (String, Arc<dyn Database>) {
        let name = unique_name("c");
        let db = self
            .backend
            .create_collection(
                &self.backend.default_schema(),
                &name,
                CollectionSpec {
                    schema: Arc::new(schema),
                    key: key.map(str::to_string),
                    record_ids: true,
                },
                false,
            )
            .await
            .expect("create collection");
        (
            format!(
                "{}.{}.{}",
                self.attached,
                self.backend.default_schema(),
                name
            ),
            db,
        )
    }
}

/// A fresh collection of the fixture's backend keyed by `id`.
pub async fn fresh(fixture: &dyn Fixture) -> Env {
    let backend = fixture.backend().await;
    let engine = Engine::new();
    let attached = "b".to_string();
    engine
        .attach_backend(&attached, backend.clone())
        .expect("attach");
    let name = unique_name("conf");
    let schema = Schema::new(vec![
        FieldType::String.arrow_field("id").with_nullable(false),
    ]);
    let db = backend
        .create_collection(
            &backend.default_schema(),
            &name,
            CollectionSpec {
                schema: Arc::new(schema),
                key: Some("id".into()),
                record_ids: true,
            },
            false,
        )
        .await
        .expect("create collection");
    let table = format!("{attached}.{}.{name}", backend.default_schema());
    Env {
        engine,
        backend,
        attached,
        name,
        table,
        db,
    }
}

/// Expands to one test per scenario for a fixture.
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let fixture = $fixture;
                $crate::conformance::scenarios::$scenario(&fixture).await;
            }
        )*
    };
}
