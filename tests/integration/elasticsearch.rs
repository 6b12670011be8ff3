//! The Elasticsearch/OpenSearch backend against the real OpenSearch node started by
//! scripts/services.sh (DK_TEST_OPENSEARCH_URL): the conformance suite, the .slt files and the
//! differential test, plus the backend's own scenarios. Every engine gets its own index prefix
//! (`dkt_<unique>_`), so tests run in parallel; scripts/opensearch.sh deletes `dkt_*` indexes
//! of earlier runs.

use std::sync::Arc;

use async_trait::async_trait;
use dataknobs::{Backend, DatabaseFactory, Engine};

use crate::common::unique_name;
use crate::conformance::Fixture;

/// `es+http://…` for the test node.
pub fn url() -> String {
    let http = crate::opensearch::url();
    format!("es+{http}")
}

/// The test node's URL with a fresh index prefix and extra options.
pub fn url_with_prefix(options: &str) -> (String, String) {
    let prefix = format!("{}_", unique_name("dkt"));
    let mut u = format!("{}/?index_prefix={prefix}", url().trim_end_matches('/'));
    if !options.is_empty() {
        u.push('&');
        u.push_str(options);
    }
    (u, prefix)
}

/// A backend with a fresh index prefix.
pub async fn backend() -> Arc<dyn Backend> {
    let (u, _) = url_with_prefix("");
    DatabaseFactory::with_builtin()
        .open(&u)
        .await
        .unwrap_or_else(|e| panic!("OpenSearch at {} is not reachable: {e}", url()))
}

/// An engine whose default backend is the test node (attached as `es`, fresh prefix).
pub async fn engine() -> Engine {
    let engine = Engine::new();
    let (u, _) = url_with_prefix("");
    engine.attach("es", &u).await.expect("attach opensearch");
    engine.set_default_backend("es").expect("default");
    engine
}

pub struct EsFixture;

#[async_trait]
impl Fixture for EsFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        backend().await
    }
}

crate::backend_suite! {
    fixture: EsFixture,
    name: "elasticsearch",
    engine: engine,
    differential: {
        rows: 300,
        share: Some(0.6),
    },
}
