//! `SELECT count(*) FROM t [WHERE …]` answered by the backend's own count
//! ([`Database::count`]: `_count` on Elasticsearch, `SELECT count(*)` on PostgreSQL) instead of
//! reading the rows.
//!
//! [`CountPushdownRule`] (a physical optimizer rule) replaces an ungrouped aggregate whose
//! every expression is `count(*)` / `count(1)` over a dataknobs scan whose WHERE was pushed
//! completely (no filter, limit or offset left between them) with a [`CountExec`]. The count is
//! asked for when the plan executes, never while planning.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

use super::{BackendRegistry, as_scan};
use crate::database::{Database, Location};
use crate::query::Query;

/// Replaces `count(*)` over a fully pushed scan with [`CountExec`].
#[derive(Debug, Default)]
pub struct CountPushdownRule;

/// Is every aggregate expression a plain `count(*)` / `count(<constant>)`?
fn only_counts(agg: &AggregateExec) -> bool {
    !agg.aggr_expr().is_empty()
        && agg.group_expr().is_empty()
        && agg.filter_expr().iter().all(Option::is_none)
        && agg.aggr_expr().iter().all(|a| {
            a.fun().name() == "count"
                && !a.is_distinct()
                && a.expressions().iter().all(|e| {
                    e.downcast_ref::<datafusion::physical_expr::expressions::Literal>()
                        .is_some_and(|l| !l.value().is_null())
                })
        })
}

/// The scan under `plan` through nodes that keep every row (partial counts, repartitioning,
/// projections), if any.
fn scan_below(plan: &Arc<dyn ExecutionPlan>) -> Option<&super::DatabaseScanExec> {
    if let Some(scan) = as_scan(plan.as_ref()) {
        return Some(scan);
    }
    let any = plan.as_ref() as &dyn std::any::Any;
    let passes = any
        .downcast_ref::<CoalescePartitionsExec>()
        .is_some_and(|c| c.fetch().is_none())
        || any.downcast_ref::<RepartitionExec>().is_some()
        || any.downcast_ref::<ProjectionExec>().is_some()
        || plan.name() == "CooperativeExec"
        || any
            .downcast_ref::<AggregateExec>()
            .is_some_and(|a| only_counts(a) && a.limit_options().is_none());
    if !passes || plan.children().len() != 1 {
        return None;
    }
    scan_below(plan.children()[0])
}

impl PhysicalOptimizerRule for CountPushdownRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let any = node.as_ref() as &dyn std::any::Any;
            let Some(agg) = any.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            if !only_counts(agg)
                || matches!(
                    agg.mode(),
                    datafusion::physical_plan::aggregates::AggregateMode::Partial
                )
            {
                return Ok(Transformed::no(node));
            }
            let Some(scan) = scan_below(agg.input()) else {
                return Ok(Transformed::no(node));
            };
            let q = scan.query();
            if !scan.pushdown_enabled() || q.limit.is_some() || q.offset.is_some() || q.row_ids {
                return Ok(Transformed::no(node));
            }
            let count = CountExec::new(
                scan.location().clone(),
                Query {
                    filters: q.filters.clone(),
                    ..Query::new()
                },
                agg.schema(),
                scan.planned_db(),
                scan.backend_kind().to_string(),
            );
            Ok(Transformed::new(
                Arc::new(count),
                true,
                TreeNodeRecursion::Jump,
            ))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "dataknobs_count_pushdown"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// One row: the number of rows matching `query`, counted by the backend, in every column.
#[derive(Debug, Clone)]
pub struct CountExec {
    location: Location,
    query: Query,
    schema: SchemaRef,
    db: Option<Arc<dyn Database>>,
    backend_kind: String,
    properties: Arc<PlanProperties>,
}

impl CountExec {
    fn new(
        location: Location,
        query: Query,
        schema: SchemaRef,
        db: Option<Arc<dyn Database>>,
        backend_kind: String,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        CountExec {
            location,
            query,
            schema,
            db,
            backend_kind,
            properties,
        }
    }
}

impl DisplayAs for CountExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let filters: Vec<String> = self.query.filters.iter().map(ToString::to_string).collect();
        write!(
            f,
            "DataknobsCountExec: backend={} table={} filters=[{}]",
            self.backend_kind,
            self.location,
            filters.join(", ")
        )?;
        // The request the backend will send (known when the table was opened at planning).
        if let Some(db) = &self.db {
            let q = (!self.query.filters.is_empty()).then_some(&self.query);
            write!(f, " request={}", db.describe_count(q))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for CountExec {
    fn name(&self) -> &str {
        "DataknobsCountExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "DataknobsCountExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "DataknobsCountExec has one partition, not {partition}"
            )));
        }
        let registry = BackendRegistry::of(&context)?;
        let (location, query, schema, planned) = (
            self.location.clone(),
            self.query.clone(),
            self.schema.clone(),
            self.db.clone(),
        );
        let out_schema = schema.clone();
        let fut = async move {
            let db = registry.resolve(planned, &location).await?;
            let q = (!query.filters.is_empty()).then_some(&query);
            let n = db.count(q).await?;
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            let columns: Vec<ArrayRef> = (0..schema.fields().len())
                .map(|_| Arc::new(Int64Array::from(vec![n])) as ArrayRef)
                .collect();
            RecordBatch::try_new(schema, columns)
                .map_err(|e| crate::error::Error::internal(format!("count batch: {e}")))
        };
        let s = futures::stream::once(async move {
            fut.await
                .map_err(|e: crate::error::Error| e.into_datafusion())
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, s)))
    }
}
