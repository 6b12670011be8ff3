//! dataknobs' session settings, kept in DataFusion's session config (a `ConfigExtension`), so
//! they travel with the session — to every table provider, the DML rule and, later, to
//! distributed executors — instead of living in engine-side flags.
//!
//! `SET dataknobs.pushdown = false;` (or [`crate::Engine::set_pushdown`]) turns pushdown off
//! for the session: every filter, limit and sort is then evaluated by DataFusion. Results are
//! identical either way; the differential test checks that.

use datafusion::common::config::{ConfigExtension, ConfigOptions};
use datafusion::common::extensions_options;

extensions_options! {
    /// The `dataknobs.*` session settings.
    pub struct DataknobsOptions {
        /// Push filters, limits and sorts into backends (results are identical either way).
        pub pushdown: bool, default = true
        /// How deeply expressions may nest (operators, function calls, CASE, subqueries);
        /// deeper input is refused with an error rather than risking the stack.
        pub max_expression_depth: usize, default = 256
    }
}

impl ConfigExtension for DataknobsOptions {
    const PREFIX: &'static str = "dataknobs";
}

/// Is pushdown on in this session config (on when the extension is absent)?
pub fn pushdown(config: &ConfigOptions) -> bool {
    config
        .extensions
        .get::<DataknobsOptions>()
        .is_none_or(|o| o.pushdown)
}

/// The session's expression depth limit.
pub fn max_expression_depth(config: &ConfigOptions) -> usize {
    config
        .extensions
        .get::<DataknobsOptions>()
        .map_or(256, |o| o.max_expression_depth)
}
