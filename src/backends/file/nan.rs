//! Parquet statistics and NaN.
//!
//! Parquet writers leave NaN out of a float column's min/max statistics (the format's rule),
//! but DataFusion orders floats totally: NaN above every number and a NaN with the sign bit set
//! below every number. Statistics that skip NaN therefore lie to DataFusion 55: over a Parquet
//! file holding 1.5, 2.5 and NaN, `SELECT max(f)` was answered from the statistics as 2.5
//! (the engine gives NaN), and `WHERE f > 3` pruned the row group holding the NaN.
//!
//! Two physical optimizer rules keep every answer what the engine computes from the values, for
//! every Parquet scan (file tables, URL tables, later object stores):
//! - [`ParquetFloatStatsRule`] (the first rule) drops the min, max and sum statistics of float
//!   columns from the scan's table, file-group and file statistics, so no optimizer answers an
//!   aggregate or prunes a file from them;
//! - [`ParquetNanRule`] (the last physical optimizer rule, after DataFusion has pushed filters
//!   and dynamic filters into the scan) turns off row-group statistics and page-index pruning
//!   for a Parquet scan whose predicate reads a float column. Bloom filters stay on (they answer
//!   equality of exact bit patterns, as the engine compares).
//!
//! Scans whose predicates read no float column keep all of Parquet's pruning.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

/// `stats` (over `schema`'s columns) without the bounds and sums of float columns.
fn strip(stats: &Statistics, schema: &Schema) -> Statistics {
    let mut stats = stats.clone();
    for (c, f) in stats.column_statistics.iter_mut().zip(schema.fields()) {
        if is_float(f.data_type()) {
            *c = ColumnStatistics {
                max_value: Precision::Absent,
                min_value: Precision::Absent,
                sum_value: Precision::Absent,
                ..c.clone()
            };
        }
    }
    stats
}

/// A Parquet scan without the float columns' min/max/sum statistics; None for other plans.
fn without_float_bounds(exec: &DataSourceExec) -> Option<Arc<dyn ExecutionPlan>> {
    let (conf, _) = exec.downcast_to_file_source::<ParquetSource>()?;
    let schema = Arc::clone(conf.file_source.table_schema().table_schema());
    if !schema.fields().iter().any(|f| is_float(f.data_type())) {
        return None;
    }
    let groups = conf
        .file_groups
        .iter()
        .map(|g| {
            let mut g = g.clone();
            let stats = g.statistics_mut().map(|s| strip(s, &schema));
            let files = g
                .into_inner()
                .into_iter()
                .map(|mut file| {
                    if let Some(s) = &file.statistics {
                        file.statistics = Some(Arc::new(strip(s, &schema)));
                    }
                    file
                })
                .collect::<Vec<_>>();
            let group = FileGroup::new(files);
            match stats {
                Some(s) => group.with_statistics(Arc::new(s)),
                None => group,
            }
        })
        .collect::<Vec<_>>();
    let stats = strip(&conf.statistics(), &schema);
    let conf = FileScanConfigBuilder::from(conf.clone())
        .with_file_groups(groups)
        .with_statistics(stats)
        .build();
    Some(DataSourceExec::from_data_source(conf))
}

/// `plan` with every Parquet scan replaced by `f`'s answer for it (None: unchanged).
fn map_parquet_scans(
    plan: Arc<dyn ExecutionPlan>,
    f: fn(&DataSourceExec) -> Option<Arc<dyn ExecutionPlan>>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let replaced = node
            .downcast_ref::<DataSourceExec>()
            .filter(|exec| exec.downcast_to_file_source::<ParquetSource>().is_some())
            .and_then(f);
        Ok(match replaced {
            Some(new) => Transformed::yes(new),
            None => Transformed::no(node),
        })
    })
    .map(|t| t.data)
}

/// Drops float columns' bounds from Parquet scans' statistics (see the module documentation).
/// Runs first, before any rule reads statistics.
#[derive(Debug, Default)]
pub struct ParquetFloatStatsRule;

impl PhysicalOptimizerRule for ParquetFloatStatsRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        map_parquet_scans(plan, without_float_bounds)
    }

    fn name(&self) -> &str {
        "dataknobs_parquet_float_stats"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The scan with statistics pruning off, if its predicate reads a float column.
fn without_float_pruning(exec: &DataSourceExec) -> Option<Arc<dyn ExecutionPlan>> {
    let (conf, source) = exec.downcast_to_file_source::<ParquetSource>()?;
    let predicate = source.filter()?;
    let schema = source.table_schema().table_schema();
    let reads_float = collect_columns(&predicate).iter().any(|c| {
        schema
            .field_with_name(c.name())
            .is_ok_and(|f| is_float(f.data_type()))
    });
    let options = source.table_parquet_options();
    if !reads_float || (!options.global.pruning && !options.global.enable_page_index) {
        return None;
    }
    let mut options = options.clone();
    options.global.pruning = false;
    options.global.enable_page_index = false;
    let source = source.clone().with_table_parquet_options(options);
    let conf = FileScanConfigBuilder::from(conf.clone())
        .with_source(Arc::new(source))
        .build();
    Some(DataSourceExec::from_data_source(conf))
}

/// Turns off statistics pruning in Parquet scans whose predicate reads a float column (see
/// the module documentation).
#[derive(Debug, Default)]
pub struct ParquetNanRule;

impl PhysicalOptimizerRule for ParquetNanRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        map_parquet_scans(plan, without_float_pruning)
    }

    fn name(&self) -> &str {
        "dataknobs_parquet_nan"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
