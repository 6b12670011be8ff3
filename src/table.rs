//! The bridge from DataFusion to a [`Database`]: a [`TableProvider`] per collection, the scan
//! [`ExecutionPlan`] and the insert sink.
//!
//! Planning: DataFusion asks [`DatabaseTable::supports_filters_pushdown`]; pushed filters,
//! the projection and the limit become one [`Query`]. The scan node, [`DatabaseScanExec`],
//! holds only plain data (attached backend name, schema, collection, query, partition count)
//! — never a connection — and finds the backend in the session's [`BackendRegistry`] when it
//! executes. EXPLAIN shows the pushed query and the native request.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Constraint, Constraints};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SortOrderPushdownResult,
};
use futures::{StreamExt, TryStreamExt};
use parking_lot::RwLock;

use crate::database::{Backend, Database, FilterSupport, Partition};
use crate::error::Error;
use crate::pushdown::{classify, expr_to_filter, strip_qualifiers as strip};
use crate::query::{Query, ROW_ID, SortOrder, SortSpec};

/// The attached backends by name, stored in the session config so executing plans can find
/// their backend without holding it.
#[derive(Debug, Default)]
pub struct BackendRegistry {
    backends: RwLock<HashMap<String, Arc<dyn Backend>>>,
}

impl BackendRegistry {
    pub fn insert(&self, name: &str, backend: Arc<dyn Backend>) {
        self.backends.write().insert(name.to_string(), backend);
    }

    pub fn remove(&self, name: &str) -> Option<Arc<dyn Backend>> {
        self.backends.write().remove(name)
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Backend>> {
        self.backends.read().get(name).cloned()
    }

    /// Names and backends, sorted by name.
    pub fn list(&self) -> Vec<(String, Arc<dyn Backend>)> {
        let mut v: Vec<_> = self
            .backends
            .read()
            .iter()
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Opens `attached.schema.collection`, with a clear error when anything is missing.
    pub async fn open(
        &self,
        attached: &str,
        schema: &str,
        collection: &str,
    ) -> crate::Result<Arc<dyn Database>> {
        let backend = self.get(attached).ok_or_else(|| {
            Error::new(
                crate::ErrorKind::BackendUnavailable,
                format!("no backend is attached as '{attached}'"),
            )
        })?;
        backend.open(schema, collection).await?.ok_or_else(|| {
            Error::not_found(format!(
                "table '{attached}.{schema}.{collection}' does not exist (was it dropped?)"
            ))
            .with_backend(backend.kind().to_string())
        })
    }
}

pub use crate::database::Location;

/// A backend collection as a DataFusion table.
#[derive(Debug, Clone)]
pub struct DatabaseTable {
    db: Arc<dyn Database>,
    location: Location,
    constraints: Option<Constraints>,
    /// Does the table have the extra record-id column [`ROW_ID`] (last)? Only the tables
    /// [`crate::dml`] builds to select the rows of a DELETE/UPDATE have it.
    row_ids: bool,
}

impl DatabaseTable {
    pub fn new(db: Arc<dyn Database>, location: Location) -> Self {
        let constraints = db.key_column().and_then(|k| {
            db.schema()
                .index_of(&k)
                .ok()
                .map(|i| Constraints::new_unverified(vec![Constraint::PrimaryKey(vec![i])]))
        });
        DatabaseTable {
            db,
            location,
            constraints,
            row_ids: false,
        }
    }

    /// The same table with each row's record id as an extra last column, [`ROW_ID`].
    pub fn with_row_ids(mut self) -> Self {
        self.row_ids = true;
        self
    }

    /// The collection.
    pub fn database(&self) -> &Arc<dyn Database> {
        &self.db
    }

    /// Where the collection lives.
    pub fn location(&self) -> &Location {
        &self.location
    }
}

#[async_trait]
impl TableProvider for DatabaseTable {
    fn schema(&self) -> SchemaRef {
        let schema = self.db.schema();
        if !self.row_ids {
            return schema;
        }
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(ROW_ID, DataType::Utf8, false)));
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.constraints.as_ref()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // The session is not known here: answer as with pushdown on. With
        // `dataknobs.pushdown = false`, `scan` pushes nothing and filters everything itself.
        let stripped: Vec<Expr> = filters.iter().map(|e| strip(e)).collect();
        let refs: Vec<&Expr> = stripped.iter().collect();
        Ok(classify(&refs, self.db.as_ref(), true))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let pushdown = crate::options::pushdown(state.config_options());
        let schema = self.db.schema();
        let columns = schema.fields().len();
        let mut query = Query::new();
        query.row_ids = self.row_ids;
        // Filters the backend does not evaluate exactly are applied here again. DataFusion may
        // rewrite a filter after asking about it, so never assume what reaches us is pushable.
        let mut residual: Vec<Expr> = Vec::new();
        for f in filters {
            let stripped = strip(f);
            let translated = if pushdown {
                expr_to_filter(&stripped, &schema)
            } else {
                None
            };
            match translated.map(|t| (self.db.filter_support(&t), t)) {
                Some((FilterSupport::Exact, t)) => query.filters.push(t),
                Some((FilterSupport::Inexact, t)) => {
                    query.filters.push(t);
                    residual.push(stripped);
                }
                _ => residual.push(stripped),
            }
        }
        if residual.is_empty() && pushdown {
            query.limit = limit;
        }
        // Indices into this provider's schema (the table's columns, then the row id if any).
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema().fields().len()).collect(),
        };
        let mut scanned: Vec<usize> = wanted.iter().copied().filter(|&i| i < columns).collect();
        for e in &residual {
            for c in e.column_refs() {
                if let Ok(i) = schema.index_of(&c.name)
                    && !scanned.contains(&i)
                {
                    scanned.push(i);
                }
            }
        }
        query.fields = Some(
            scanned
                .iter()
                .map(|&i| schema.field(i).name().clone())
                .collect(),
        );
        // What the backend returns: the scanned columns, then the row id when asked for.
        let mut scanned_schema = schema.project(&scanned)?;
        let mut layout = scanned.clone();
        if self.row_ids {
            let mut fields: Vec<_> = scanned_schema.fields().iter().cloned().collect();
            fields.push(Arc::new(Field::new(ROW_ID, DataType::Utf8, false)));
            scanned_schema = Schema::new(fields);
            layout.push(columns);
        }
        let scanned_schema = Arc::new(scanned_schema);
        let partitions = self
            .db
            .scan_partitions(&query, state.config().target_partitions())
            .await
            .max(1);
        let description = self.db.describe_scan(&query);
        let exec = DatabaseScanExec::new(
            self.location.clone(),
            self.db.backend_name().to_string(),
            query,
            scanned_schema.clone(),
            partitions,
            description,
        );
        let mut plan: Arc<dyn ExecutionPlan> =
            Arc::new(exec.with_planner(self.db.clone(), pushdown));
        let filtered = !residual.is_empty();
        if let Some(predicate) = residual.into_iter().reduce(Expr::and) {
            let df_schema =
                datafusion::common::DFSchema::try_from(scanned_schema.as_ref().clone())?;
            let predicate = state.create_physical_expr(predicate, &df_schema)?;
            plan = Arc::new(FilterExec::try_new(predicate, plan)?);
        }
        if layout != wanted {
            let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = wanted
                .iter()
                .map(|i| {
                    let pos = layout.iter().position(|l| l == i).ok_or_else(|| {
                        DataFusionError::Internal(format!("column {i} was not scanned"))
                    })?;
                    let name = scanned_schema.field(pos).name().clone();
                    Ok((
                        Arc::new(PhysicalColumn::new(&name, pos)) as Arc<dyn PhysicalExpr>,
                        name,
                    ))
                })
                .collect::<DfResult<_>>()?;
            plan = Arc::new(ProjectionExec::try_new(exprs, plan)?);
        }
        if filtered && let Some(l) = limit {
            plan = Arc::new(GlobalLimitExec::new(
                Arc::new(CoalescePartitionsExec::new(plan)),
                0,
                Some(l),
            ));
        }
        Ok(plan)
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(Error::unsupported(format!(
                "{insert_op} into {} is not supported; use INSERT INTO … (append)",
                self.location
            ))
            .with_backend(self.db.backend_name().to_string())
            .into());
        }
        let sink = DatabaseSink {
            location: self.location.clone(),
            schema: self.db.schema(),
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    // DELETE, UPDATE and TRUNCATE never reach these hooks: `crate::dml::DmlRule` plans them
    // before DataFusion's optimizer, and they write when executed. Reaching one means the
    // session lacks that rule; refuse rather than write while planning.
    async fn delete_from(
        &self,
        _state: &dyn Session,
        _filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(self.not_planned("DELETE"))
    }

    async fn update(
        &self,
        _state: &dyn Session,
        _assignments: Vec<(String, Expr)>,
        _filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(self.not_planned("UPDATE"))
    }

    async fn truncate(&self, _state: &dyn Session) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(self.not_planned("TRUNCATE"))
    }
}

impl DatabaseTable {
    fn not_planned(&self, what: &str) -> DataFusionError {
        Error::internal(format!(
            "{what} on {} must be planned by the dataknobs engine (its DML rule is missing \
             from this session); nothing was changed",
            self.location
        ))
        .into_datafusion()
    }
}

/// The writable [`DatabaseTable`] behind a dataknobs table provider (the table itself, or a
/// file table's record store), for DELETE/UPDATE/TRUNCATE; None for other providers.
pub fn dml_table(provider: &Arc<dyn TableProvider>) -> DfResult<Option<DatabaseTable>> {
    let any: &dyn Any = provider.as_ref();
    if let Some(t) = any.downcast_ref::<DatabaseTable>() {
        return Ok(Some(t.clone()));
    }
    crate::backends::file::dml_table(any)
}

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
        let registry = context
            .session_config()
            .get_extension::<BackendRegistry>()
            .ok_or_else(|| {
                DataFusionError::Internal("no dataknobs backend registry in this session".into())
            })?;
        let location = self.location.clone();
        let query = self.query.clone();
        let schema = self.schema.clone();
        let scan_id = self.scan_id;
        let planned = self.planner.clone();
        let fut = async move {
            // The collection opened while planning, in this process; else (a plan sent
            // elsewhere) it is opened again from the registry.
            let db = match planned {
                Some(db) => db,
                None => {
                    registry
                        .open(&location.attached, &location.schema, &location.collection)
                        .await?
                }
            };
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

/// Streams inserted rows into a backend collection.
#[derive(Debug)]
struct DatabaseSink {
    location: Location,
    schema: SchemaRef,
}

impl DisplayAs for DatabaseSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DataknobsSink: table={}", self.location)
    }
}

#[async_trait]
impl DataSink for DatabaseSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let registry = context
            .session_config()
            .get_extension::<BackendRegistry>()
            .ok_or_else(|| {
                DataFusionError::Internal("no dataknobs backend registry in this session".into())
            })?;
        let db = registry
            .open(
                &self.location.attached,
                &self.location.schema,
                &self.location.collection,
            )
            .await?;
        Ok(db.insert(data).await?)
    }
}

/// Wraps a plan so that errors from its streams say what was being done (e.g. which file was
/// being read): DataFusion's file readers report the line but not the file.
#[derive(Debug)]
pub struct ErrorContextExec {
    inner: Arc<dyn ExecutionPlan>,
    context: String,
}

impl ErrorContextExec {
    pub fn new(inner: Arc<dyn ExecutionPlan>, context: String) -> Self {
        ErrorContextExec { inner, context }
    }
}

impl DisplayAs for ErrorContextExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::TreeRender => write!(f, "{}", self.context),
            _ => write!(f, "ErrorContextExec: {}", self.context),
        }
    }
}

impl ExecutionPlan for ErrorContextExec {
    fn name(&self) -> &str {
        "ErrorContextExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.inner]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(inner), true) => Ok(Arc::new(ErrorContextExec::new(inner, self.context.clone()))),
            _ => Err(DataFusionError::Internal(
                "ErrorContextExec takes one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let what = self.context.clone();
        let stream = self
            .inner
            .execute(partition, context)
            .map_err(|e| DataFusionError::Context(what.clone(), Box::new(e)))?;
        let schema = stream.schema();
        let mapped = stream.map_err(move |e| DataFusionError::Context(what.clone(), Box::new(e)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, mapped)))
    }
}

/// For downcasting in tests and tools.
pub fn as_scan(plan: &dyn ExecutionPlan) -> Option<&DatabaseScanExec> {
    (plan as &dyn Any).downcast_ref::<DatabaseScanExec>()
}
