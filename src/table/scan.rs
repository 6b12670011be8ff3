//! The scan node: one backend collection read with a pushed [`Query`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SortOrderPushdownResult,
};
use futures::{StreamExt, TryStreamExt};

use super::BackendRegistry;
use crate::database::{Database, Location, Partition};
use crate::error::Error;
use crate::query::{Query, SortOrder, SortSpec};

/// The plain data of a [`DatabaseScanExec`] ([`DatabaseScanExec::spec`]), serializable with
/// serde: which collection, the pushed query, how many partitions, the native request shown
/// by EXPLAIN. No connection and no secret.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScanSpec {
    pub location: Location,
    pub backend_kind: String,
    pub query: Query,
    pub partitions: usize,
    pub scan_id: u64,
    pub description: String,
}

/// Scans one backend collection with a pushed [`Query`].
#[derive(Debug, Clone)]
pub struct DatabaseScanExec {
    location: Location,
    backend_kind: String,
    query: Query,
    schema: SchemaRef,
    description: String,
    properties: Arc<PlanProperties>,
    /// Shared by this scan's partitions (see [`Partition::scan`]).
    scan_id: u64,
    /// The collection as opened for planning: a sort or a limit DataFusion pushes later
    /// ([`ExecutionPlan::try_pushdown_sort`], [`ExecutionPlan::with_fetch`]) is checked and
    /// the native request re-rendered with it, and execution in this process reuses it
    /// (saving PostgreSQL a catalog query per partition). Not part of the plan's data: a plan
    /// sent elsewhere opens the collection from that session's [`BackendRegistry`].
    planner: Option<Arc<dyn Database>>,
    /// May DataFusion push a sort or a limit into this scan (`dataknobs.pushdown`)?
    pushdown: bool,
}

impl DatabaseScanExec {
    pub fn new(
        location: Location,
        backend_kind: String,
        query: Query,
        schema: SchemaRef,
        partitions: usize,
        description: String,
    ) -> Self {
        DatabaseScanExec {
            location,
            backend_kind,
            query,
            properties: Self::plan_properties(&schema, partitions, None),
            schema,
            description,
            scan_id: uuid::Uuid::new_v4().as_u64_pair().0 | 1,
            planner: None,
            pushdown: false,
        }
    }

    /// The collection opened for planning (see the field), and whether DataFusion may push a
    /// sort or a limit into this scan after planning.
    pub fn with_planner(mut self, db: Arc<dyn Database>, pushdown: bool) -> Self {
        self.planner = Some(db);
        self.pushdown = pushdown;
        self
    }

    fn plan_properties(
        schema: &SchemaRef,
        partitions: usize,
        ordering: Option<LexOrdering>,
    ) -> Arc<PlanProperties> {
        let eq = match ordering {
            Some(o) => EquivalenceProperties::new_with_orderings(schema.clone(), [o]),
            None => EquivalenceProperties::new(schema.clone()),
        };
        Arc::new(PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(partitions.max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ))
    }

    /// The same scan with another query (a pushed sort or limit): re-described by the
    /// backend, the same scan id.
    fn replanned(
        &self,
        db: &Arc<dyn Database>,
        query: Query,
        partitions: usize,
        ordering: Option<LexOrdering>,
    ) -> Self {
        DatabaseScanExec {
            description: db.describe_scan(&query),
            properties: Self::plan_properties(&self.schema, partitions, ordering),
            query,
            ..self.clone()
        }
    }

    /// The query's sort as DataFusion's ordering of this scan's output, if every key is an
    /// output column.
    fn sort_specs(&self, order: &[PhysicalSortExpr]) -> Option<Vec<SortSpec>> {
        order
            .iter()
            .map(|e| {
                let col = e.expr.downcast_ref::<PhysicalColumn>()?;
                let field = self.schema.fields().get(col.index())?;
                (field.name() == col.name()).then(|| SortSpec {
                    field: field.name().clone(),
                    order: if e.options.descending {
                        SortOrder::Desc
                    } else {
                        SortOrder::Asc
                    },
                    nulls_first: e.options.nulls_first,
                })
            })
            .collect()
    }

    /// The query sent to the backend.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The scan as plain, serializable data (everything but the Arrow schema, which plan
    /// serializers carry themselves), for shipping the plan to another process.
    pub fn spec(&self) -> ScanSpec {
        ScanSpec {
            location: self.location.clone(),
            backend_kind: self.backend_kind.clone(),
            query: self.query.clone(),
            partitions: self.properties.partitioning.partition_count(),
            scan_id: self.scan_id,
            description: self.description.clone(),
        }
    }

    /// Rebuilds a scan from its [`ScanSpec`] and output schema. It finds its backend in the
    /// executing session's [`BackendRegistry`]; a sort already pushed is kept in the query,
    /// but DataFusion is not told the output order (it sorts again if it needs to).
    pub fn from_spec(spec: ScanSpec, schema: SchemaRef) -> Self {
        let mut exec = DatabaseScanExec::new(
            spec.location,
            spec.backend_kind,
            spec.query,
            schema,
            spec.partitions,
            spec.description,
        );
        exec.scan_id = spec.scan_id;
        exec
    }

    /// Where the scanned collection lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// May DataFusion push work into this scan (`dataknobs.pushdown`)?
    pub fn pushdown_enabled(&self) -> bool {
        self.pushdown && self.planner.is_some()
    }

    /// The collection as opened while planning (in this process).
    pub fn planned_db(&self) -> Option<Arc<dyn Database>> {
        self.planner.clone()
    }

    /// The backend kind, e.g. `postgres`.
    pub fn backend_kind(&self) -> &str {
        &self.backend_kind
    }
}

impl DisplayAs for DatabaseScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let filters = self
            .query
            .filters
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        let projection = self.query.fields.clone().unwrap_or_default();
        match t {
            DisplayFormatType::TreeRender => {
                writeln!(f, "backend={}", self.backend_kind)?;
                writeln!(f, "table={}", self.location)?;
                writeln!(f, "filters=[{}]", filters.join(", "))?;
                write!(f, "request={}", self.description)
            }
            _ => {
                write!(
                    f,
                    "DataknobsScanExec: backend={} table={} partitions={} projection=[{}] filters=[{}]",
                    self.backend_kind,
                    self.location,
                    self.properties.partitioning.partition_count(),
                    projection.join(", "),
                    filters.join(", ")
                )?;
                if !self.query.sort.is_empty() {
                    let sort: Vec<String> =
                        self.query.sort.iter().map(ToString::to_string).collect();
                    write!(f, " sort=[{}]", sort.join(", "))?;
                }
                if let Some(l) = self.query.limit {
                    write!(f, " limit={l}")?;
                }
                write!(f, " request=[{}]", self.description)
            }
        }
    }
}

impl ExecutionPlan for DatabaseScanExec {
    fn name(&self) -> &str {
        "DataknobsScanExec"
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
                "DataknobsScanExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let count = self.properties.partitioning.partition_count();
        if partition >= count {
            return Err(DataFusionError::Internal(format!(
                "DataknobsScanExec: partition {partition} of {count}"
            )));
        }
        let registry = BackendRegistry::of(&context)?;
        let location = self.location.clone();
        let query = self.query.clone();
        let schema = self.schema.clone();
        let scan_id = self.scan_id;
        let planned = self.planner.clone();
        let fut = async move {
            let db = registry.resolve(planned, &location).await?;
            let stream = db
                .scan(
                    &query,
                    Partition {
                        index: partition,
                        count,
                        scan: scan_id,
                    },
                )
                .await?;
            crate::Result::Ok(stream.map_err(|e| e))
        };
        let stream =
            futures::stream::once(async move { fut.await.map_err(Error::into_datafusion) })
                .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.boxed(),
        )))
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }

    fn fetch(&self) -> Option<usize> {
        self.query.limit
    }

    /// A limit DataFusion pushes into the scan: each partition returns at most `limit` rows
    /// (the backend applies the query's limit per partition).
    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        let db = self.planner.as_ref().filter(|_| self.pushdown)?;
        let limit = limit?;
        if self.query.offset.is_some() {
            return None;
        }
        let mut query = self.query.clone();
        query.limit = Some(query.limit.map_or(limit, |l| l.min(limit)));
        let ordering = self.properties.output_ordering().cloned();
        let partitions = self.properties.partitioning.partition_count();
        Some(Arc::new(self.replanned(db, query, partitions, ordering)))
    }

    /// `ORDER BY` reaches the backend when it orders exactly as DataFusion would (see
    /// [`Database::sort_support`]); the sorted scan is one partition, and a following
    /// [`ExecutionPlan::with_fetch`] turns `ORDER BY … LIMIT n` into one native top-n request.
    fn try_pushdown_sort(
        &self,
        order: &[PhysicalSortExpr],
    ) -> DfResult<SortOrderPushdownResult<Arc<dyn ExecutionPlan>>> {
        let Some(db) = self.planner.as_ref().filter(|_| self.pushdown) else {
            return Ok(SortOrderPushdownResult::Unsupported);
        };
        // A limit or offset already applied before the sort cannot move after it.
        if order.is_empty()
            || self.query.limit.is_some()
            || self.query.offset.is_some()
            || !self.query.sort.is_empty()
        {
            return Ok(SortOrderPushdownResult::Unsupported);
        }
        let Some(sort) = self.sort_specs(order) else {
            return Ok(SortOrderPushdownResult::Unsupported);
        };
        if !db.sort_support(&sort) {
            return Ok(SortOrderPushdownResult::Unsupported);
        }
        let Some(ordering) = LexOrdering::new(order.iter().cloned()) else {
            return Ok(SortOrderPushdownResult::Unsupported);
        };
        let mut query = self.query.clone();
        query.sort = sort;
        Ok(SortOrderPushdownResult::Exact {
            inner: Arc::new(self.replanned(db, query, 1, Some(ordering))),
        })
    }
}

/// For downcasting in tests and tools.
pub fn as_scan(plan: &dyn ExecutionPlan) -> Option<&DatabaseScanExec> {
    (plan as &dyn Any).downcast_ref::<DatabaseScanExec>()
}
