//! Errors from reading a Parquet file name the file.
//!
//! The Parquet reader reports a broken data page ("EOF: eof decoding byte array") without the
//! file it was decoding. [`ParquetFileNamesRule`], the last physical optimizer rule, wraps every
//! Parquet scan (file tables, URL tables, object stores) in an [`ErrorContextExec`] whose
//! errors name the files of the failing partition. It runs last so that DataFusion's own rules
//! (projection, limit, filter and dynamic-filter pushdown) see the bare scan.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::{FileScanConfig, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

use crate::table::ErrorContextExec;

/// How many file names one error lists at most.
const NAMES_SHOWN: usize = 4;

/// Wraps Parquet scans so that their errors name the file (see the module documentation).
#[derive(Debug, Default)]
pub struct ParquetFileNamesRule;

impl PhysicalOptimizerRule for ParquetFileNamesRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            // Already named (an object store's scan names its dataset), or named here.
            if node.downcast_ref::<ErrorContextExec>().is_some() {
                return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
            }
            let Some(names) = node
                .downcast_ref::<DataSourceExec>()
                .and_then(|exec| exec.downcast_to_file_source::<ParquetSource>())
                .map(|(conf, _)| partition_names(conf))
            else {
                return Ok(Transformed::no(node));
            };
            let context = format!("reading {}", summary(&names.concat()));
            let partitions = names
                .iter()
                .map(|n| format!("reading {}", summary(n)))
                .collect();
            let wrapped: Arc<dyn ExecutionPlan> =
                Arc::new(ErrorContextExec::per_partition(node, context, partitions));
            Ok(Transformed::new(wrapped, true, TreeNodeRecursion::Jump))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "dataknobs_parquet_file_names"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The files each partition of a scan reads, as paths (local files) or URLs. A large file
/// split into byte ranges appears once per range ([`summary`] names it once).
fn partition_names(conf: &FileScanConfig) -> Vec<Vec<String>> {
    let store = conf.object_store_url.as_str().trim_end_matches('/');
    conf.file_groups
        .iter()
        .map(|group| {
            group
                .files()
                .iter()
                .map(|file| {
                    let location = file.object_meta.location.as_ref();
                    if store == "file:" || store == "file://" {
                        format!("/{location}")
                    } else {
                        format!("{store}/{location}")
                    }
                })
                .collect()
        })
        .collect()
}

/// `'a'`, `'a', 'b'`, or `one of 'a', 'b', … (9 files)`.
fn summary(names: &[String]) -> String {
    let mut unique: Vec<&String> = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    let quoted: Vec<String> = unique
        .iter()
        .take(NAMES_SHOWN)
        .map(|n| format!("'{n}'"))
        .collect();
    match unique.len() {
        0 => "a Parquet scan".to_string(),
        1 => quoted.concat(),
        n if n <= NAMES_SHOWN => format!("one of {}", quoted.join(", ")),
        n => format!("one of {}, … ({n} files)", quoted.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summaries() {
        let names = |n: usize| {
            (0..n)
                .map(|i| format!("/d/{i}.parquet"))
                .collect::<Vec<_>>()
        };
        assert_eq!(summary(&names(0)), "a Parquet scan");
        assert_eq!(summary(&names(1)), "'/d/0.parquet'");
        assert_eq!(summary(&names(2)), "one of '/d/0.parquet', '/d/1.parquet'");
        let mut twice = names(1);
        twice.extend(names(1));
        assert_eq!(summary(&twice), "'/d/0.parquet'");
        assert!(summary(&names(9)).ends_with("'/d/3.parquet', … (9 files)"));
    }
}
