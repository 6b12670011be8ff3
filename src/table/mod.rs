//! The bridge from DataFusion to a [`Database`]: a [`TableProvider`] per collection, the scan
//! [`ExecutionPlan`] and the insert sink.
//!
//! Planning: DataFusion asks [`DatabaseTable::supports_filters_pushdown`]; pushed filters,
//! the projection and the limit become one [`Query`]. The scan node, [`DatabaseScanExec`],
//! holds only plain data (attached backend name, schema, collection, query, partition count)
//! — never a connection — and finds the backend in the session's [`BackendRegistry`] when it
//! executes. EXPLAIN shows the pushed query and the native request.
//!
//! Files: this one (the registry and the [`TableProvider`]), `scan.rs` (the scan node),
//! `sink.rs` (INSERT's sink and the error-context wrapper).

pub mod count;
pub mod defaults;
mod scan;
mod sink;
pub use sink::{TargetCount, WriteProgress};

pub use scan::{DatabaseScanExec, ScanSpec, as_scan};
use sink::DatabaseSink;
pub use sink::ErrorContextExec;

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Constraint, Constraints};
use datafusion::datasource::TableType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use parking_lot::RwLock;

use crate::database::{Backend, Database, FilterSupport};
use crate::error::Error;
use crate::pushdown::{classify, expr_to_filter, strip_qualifiers as strip};
use crate::query::{Query, ROW_ID};

/// The attached backends by name, stored in the session config so executing plans can find
/// their backend without holding it.
#[derive(Debug, Default)]
pub struct BackendRegistry {
    backends: RwLock<HashMap<String, Arc<dyn Backend>>>,
    /// Rows INSERTs have moved (see [`sink::WriteProgress`]).
    pub progress: sink::WriteProgress,
}

impl BackendRegistry {
    /// The registry of the session a plan executes in; an error in a session the dataknobs
    /// engine did not make.
    pub fn of(context: &datafusion::execution::TaskContext) -> DfResult<Arc<BackendRegistry>> {
        context
            .session_config()
            .get_extension::<BackendRegistry>()
            .ok_or_else(|| {
                DataFusionError::Internal("no dataknobs backend registry in this session".into())
            })
    }

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

    /// The collection a plan node executes on: the one opened while planning, in this
    /// process; else (a plan sent elsewhere, e.g. to a Ballista executor) opened again here.
    pub async fn resolve(
        &self,
        planned: Option<Arc<dyn Database>>,
        location: &Location,
    ) -> crate::Result<Arc<dyn Database>> {
        match planned {
            Some(db) => Ok(db),
            None => {
                self.open(&location.attached, &location.schema, &location.collection)
                    .await
            }
        }
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
    /// Markers for the columns the store fills itself (see [`defaults`]).
    defaults: Arc<HashMap<String, Expr>>,
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
        let defaults = Arc::new(defaults::markers(db.as_ref(), &location));
        DatabaseTable {
            db,
            location,
            constraints,
            defaults,
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

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
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
        // The input has every column but those the store fills itself (which
        // `crate::dml::DmlRule` took out of it): the sink takes the table's fields for them.
        let table_schema = self.db.schema();
        let fields = input
            .schema()
            .fields()
            .iter()
            .map(|f| {
                table_schema
                    .field_with_name(f.name())
                    .map(|t| Arc::new(t.clone()))
                    .map_err(|_| {
                        DataFusionError::Plan(format!(
                            "{} has no column '{}'",
                            self.location,
                            f.name()
                        ))
                    })
            })
            .collect::<DfResult<Vec<_>>>()?;
        let sink = DatabaseSink {
            location: self.location.clone(),
            schema: Arc::new(Schema::new_with_metadata(
                fields,
                table_schema.metadata().clone(),
            )),
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
    #[cfg(feature = "s3")]
    if let Some(t) = crate::backends::s3::dml_table(any)? {
        return Ok(Some(t));
    }
    crate::backends::file::dml_table(any)
}
