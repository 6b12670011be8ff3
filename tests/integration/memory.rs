//! The memory backend: runs the whole conformance suite, plus memory-only tests.

use std::sync::Arc;

use async_trait::async_trait;
use dataknobs::{Backend, MemoryBackend};

use crate::conformance::Fixture;

pub struct MemoryFixture;

#[async_trait]
impl Fixture for MemoryFixture {
    async fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(MemoryBackend::new())
    }
}

mod conformance {
    use super::MemoryFixture;
    crate::all_scenarios!(crate::conformance_suite; MemoryFixture);
}
