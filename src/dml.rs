//! DELETE, UPDATE and TRUNCATE on backend tables: planned from the statement's whole WHERE,
//! written only when the plan executes.
//!
//! DataFusion hands `TableProvider::delete_from` / `update` what its optimizer left of the
//! WHERE (a subquery has become a join elsewhere, `1 = 0` an empty relation), and calls them
//! while it builds the physical plan. So the engine takes DML over before the optimizer runs:
//!
//! 1. [`DmlRule`] (the last analyzer rule) replaces a `Dml` node whose target is a dataknobs
//!    table by a [`DmlNode`]. When every part of the WHERE translates into the query model and
//!    the backend evaluates it exactly, the node carries that filter (the *native* form: one
//!    `DELETE … WHERE …` in the backend). Otherwise the node's input is a query DataFusion
//!    plans and optimizes like any other: the target's rows that satisfy the WHERE
//!    (subqueries, constant folding and NULL logic included), each with its record id and, for
//!    UPDATE, its new values. The rows are then changed by id ([`Database::delete_ids`],
//!    [`Database::update_ids`]). A backend without row ids refuses such a statement before
//!    anything is written.
//! 2. [`DmlPlanner`] turns the node into a [`DmlExec`], which writes when it is executed and
//!    returns the count. EXPLAIN shows it; a plan that is built and dropped writes nothing.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DFSchemaRef};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::Alias;
use datafusion::logical_expr::logical_plan::dml::{DmlStatement, WriteOp};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Expr, Extension, Filter, LogicalPlan, Projection, SubqueryAlias, TableScan, TableScanBuilder,
    UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    Partitioning, PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

use crate::database::{Database, FilterSupport, StoreDefault};
use crate::error::Error;
use crate::pushdown::{expr_to_filter, strip_qualifiers};
use crate::query::{FilterExpr, ROW_ID};
use crate::table::{BackendRegistry, DatabaseTable, Location, dml_table};

/// Which statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum DmlOp {
    Delete,
    Update,
    Truncate,
}

impl fmt::Display for DmlOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DmlOp::Delete => "DELETE",
            DmlOp::Update => "UPDATE",
            DmlOp::Truncate => "TRUNCATE",
        })
    }
}

/// A DELETE/UPDATE the backend runs itself: its filter (None: every row) and, for UPDATE, the
/// assignments (column, DataFusion expression over the row).
#[derive(Debug, Clone)]
pub struct NativeDml {
    pub filter: Option<FilterExpr>,
    pub assignments: Vec<(String, Expr)>,
}

/// How the rows to change are found.
#[derive(Debug, Clone)]
pub enum DmlMode {
    /// The backend evaluates the filter itself (None: every row). For UPDATE, the assignments
    /// (column, DataFusion expression over the row) go with it.
    Native {
        filter: Option<FilterExpr>,
        assignments: Vec<(String, Expr)>,
    },
    /// The input plan yields the rows to change: their record id ([`ROW_ID`]) and, for
    /// UPDATE, the new value of each changed column (named as the column).
    ById { input: Arc<LogicalPlan> },
}

/// The logical node of one DELETE/UPDATE/TRUNCATE on a dataknobs table.
#[derive(Debug, Clone)]
pub struct DmlNode {
    op: DmlOp,
    location: Location,
    mode: DmlMode,
    /// The collection as opened for planning (reused when executing in this process).
    db: Arc<dyn Database>,
    schema: DFSchemaRef,
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl DmlNode {
    fn new(op: DmlOp, location: Location, mode: DmlMode, db: Arc<dyn Database>) -> DfResult<Self> {
        let schema = Arc::new(DFSchema::try_from(count_schema().as_ref().clone())?);
        Ok(DmlNode {
            op,
            location,
            mode,
            db,
            schema,
        })
    }

    /// What EXPLAIN shows (and what identifies the node).
    fn describe(&self) -> String {
        let mut s = format!("DataknobsDml: {} table={}", self.op, self.location);
        match &self.mode {
            DmlMode::Native {
                filter,
                assignments,
            } => {
                s.push_str(" mode=native");
                if !assignments.is_empty() {
                    let sets: Vec<String> = assignments
                        .iter()
                        .map(|(c, e)| format!("{c} = {e}"))
                        .collect();
                    s.push_str(&format!(" set=[{}]", sets.join(", ")));
                }
                if let Some(f) = filter {
                    s.push_str(&format!(" filter=[{f}]"));
                }
            }
            DmlMode::ById { .. } => s.push_str(" mode=by_row_id"),
        }
        s
    }
}

impl PartialEq for DmlNode {
    fn eq(&self, other: &Self) -> bool {
        self.describe() == other.describe()
            && UserDefinedLogicalNodeCore::inputs(self) == UserDefinedLogicalNodeCore::inputs(other)
    }
}

impl Eq for DmlNode {}

impl Hash for DmlNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.describe().hash(state);
        UserDefinedLogicalNodeCore::inputs(self).hash(state);
    }
}

impl PartialOrd for DmlNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.describe().partial_cmp(&other.describe())
    }
}

impl UserDefinedLogicalNodeCore for DmlNode {
    fn name(&self) -> &str {
        "DataknobsDml"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        match &self.mode {
            DmlMode::ById { input } => vec![input.as_ref()],
            DmlMode::Native { .. } => vec![],
        }
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.describe())
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DfResult<Self> {
        let mut node = self.clone();
        if let DmlMode::ById { input } = &mut node.mode {
            let new = inputs
                .pop()
                .ok_or_else(|| DataFusionError::Internal("DataknobsDml takes one input".into()))?;
            *input = Arc::new(new);
        }
        Ok(node)
    }
}

/// The analyzer rule that takes DELETE/UPDATE/TRUNCATE on dataknobs tables over (see the
/// module docs). Runs after DataFusion's own analyzer rules (type coercion included).
#[derive(Debug, Default)]
pub struct DmlRule;

impl AnalyzerRule for DmlRule {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let pushdown = crate::options::pushdown(config);
        plan.transform_up(|p| match p {
            LogicalPlan::Dml(dml) => rewrite(dml, pushdown),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "dataknobs_dml"
    }
}

fn rewrite(dml: DmlStatement, pushdown: bool) -> DfResult<Transformed<LogicalPlan>> {
    let op = match dml.op {
        WriteOp::Delete => DmlOp::Delete,
        WriteOp::Update => DmlOp::Update,
        WriteOp::Truncate => DmlOp::Truncate,
        WriteOp::Insert(_) => return insert_with_store_rules(dml),
        _ => return Ok(Transformed::no(LogicalPlan::Dml(dml))),
    };
    let Ok(provider) = source_as_provider(&dml.target) else {
        return Ok(Transformed::no(LogicalPlan::Dml(dml)));
    };
    let Some(table) = dml_table(&provider)? else {
        return Ok(Transformed::no(LogicalPlan::Dml(dml)));
    };
    let db = table.database().clone();
    let location = table.location().clone();
    let mode = match op {
        DmlOp::Truncate => DmlMode::Native {
            filter: None,
            assignments: vec![],
        },
        DmlOp::Delete | DmlOp::Update => plan_mode(op, &dml, &table, pushdown)?,
    };
    let node = DmlNode::new(op, location, mode, db)?;
    Ok(Transformed::yes(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    })))
}

/// An INSERT into a table whose store fills some columns itself or assigns values by its own
/// rules: the columns the statement left out (marked by [`crate::table::defaults`]) are taken
/// out of its input, so the store fills them; a value given for a column only the store writes
/// is refused; numbers cast to an integer column are rounded as the store rounds them.
fn insert_with_store_rules(dml: DmlStatement) -> DfResult<Transformed<LogicalPlan>> {
    let unchanged = |dml| Ok(Transformed::no(LogicalPlan::Dml(dml)));
    let Ok(provider) = source_as_provider(&dml.target) else {
        return unchanged(dml);
    };
    // A table that refuses DELETE/UPDATE (an S3 prefix table) may still take INSERTs.
    let Ok(Some(table)) = dml_table(&provider) else {
        return unchanged(dml);
    };
    let kinds: HashMap<String, StoreDefault> =
        table.database().store_defaults().into_iter().collect();
    let assigns = table.database().assigns_values();
    if kinds.is_empty() && !assigns {
        return unchanged(dml);
    }
    let input_schema = dml.input.schema().clone();
    let LogicalPlan::Projection(p) = dml.input.as_ref() else {
        // Values straight from the source: none is a marker, none is cast.
        for field in input_schema.fields() {
            if let Some(kind) = kinds.get(field.name())
                && let Some(e) =
                    crate::table::defaults::refuse_value(table.location(), field.name(), *kind)
            {
                return Err(e.into());
            }
        }
        return unchanged(dml);
    };
    let (exprs, mut source) = (p.expr.clone(), p.input.clone());
    let mut changed = false;
    // `INSERT … VALUES`: DataFusion casts each value to its column's type in the VALUES rows.
    if assigns && let LogicalPlan::Values(v) = source.as_ref() {
        let empty = DFSchema::empty();
        let mut values = Vec::with_capacity(v.values.len());
        for row in &v.values {
            let mut out = Vec::with_capacity(row.len());
            for e in row {
                let r = round_into_integer(e.clone(), &empty)?;
                changed |= r.transformed;
                out.push(r.data);
            }
            values.push(out);
        }
        if changed {
            source = Arc::new(LogicalPlan::Values(datafusion::logical_expr::Values {
                schema: v.schema.clone(),
                values,
            }));
        }
    }
    let mut kept = Vec::new();
    for (i, field) in input_schema.fields().iter().enumerate() {
        let Some(e) = exprs.get(i) else { continue };
        if crate::table::defaults::is_marker(e) {
            changed = true;
            continue;
        }
        if let Some(kind) = kinds.get(field.name())
            && let Some(e) =
                crate::table::defaults::refuse_value(table.location(), field.name(), *kind)
        {
            return Err(e.into());
        }
        let e = if assigns {
            let rounded = round_into_integer(e.clone(), source.schema())?;
            changed |= rounded.transformed;
            rounded.data
        } else {
            e.clone()
        };
        kept.push(e);
    }
    if !changed {
        return unchanged(dml);
    }
    if kept.is_empty() {
        return Err(Error::unsupported(format!(
            "INSERT into {} gives no column a value; name at least one column",
            table.location()
        ))
        .into());
    }
    let input = LogicalPlan::Projection(Projection::try_new(kept, source)?);
    Ok(Transformed::yes(LogicalPlan::Dml(DmlStatement::new(
        dml.table_name,
        dml.target,
        dml.op,
        Arc::new(input),
    ))))
}

/// `CAST(x AS <integer>)` (as DataFusion plans an INSERT's value for an integer column) with
/// `x` rounded first the way PostgreSQL assigns it: a decimal half away from zero, a float half
/// to even (DataFusion's cast truncates: 2.5 became 2 where PostgreSQL stores 3).
fn round_into_integer(e: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    use datafusion::logical_expr::{Cast, ExprSchemable, lit, when};
    let (inner, alias) = match e {
        Expr::Alias(Alias {
            expr,
            relation,
            name,
            metadata,
        }) => (*expr, Some((relation, name, metadata))),
        other => (other, None),
    };
    let rebuild = |e: Expr, alias: Option<(_, _, _)>| match alias {
        Some((relation, name, metadata)) => Expr::Alias(Alias {
            expr: Box::new(e),
            relation,
            name,
            metadata,
        }),
        None => e,
    };
    let Expr::Cast(Cast { expr: x, field }) = inner else {
        return Ok(Transformed::no(rebuild(inner, alias)));
    };
    let to_integer = field.data_type().is_integer();
    let from = x.get_type(schema)?;
    let round = datafusion::functions::math::round();
    let trunc = datafusion::functions::math::trunc();
    let abs = datafusion::functions::math::abs();
    let rounded = match from {
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..)
            if to_integer =>
        {
            round.call(vec![*x])
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 if to_integer => {
            // Widening to f64 is exact; the arithmetic below is then in one type.
            let x = datafusion::logical_expr::cast(*x, DataType::Float64);
            let half = abs
                .call(vec![x.clone() - trunc.call(vec![x.clone()])])
                .eq(lit(0.5f64));
            when(half, lit(2f64) * round.call(vec![x.clone() / lit(2f64)]))
                .otherwise(round.call(vec![x]))?
        }
        _ => {
            return Ok(Transformed::no(rebuild(
                Expr::Cast(Cast { expr: x, field }),
                alias,
            )));
        }
    };
    Ok(Transformed::yes(rebuild(
        Expr::Cast(Cast {
            expr: Box::new(rounded),
            field,
        }),
        alias,
    )))
}

/// The parts of a DELETE/UPDATE input: `[Projection] → [Limit] → [Filter] → [SubqueryAlias] →
/// TableScan` (DataFusion's SQL planner builds no other shape for a single-table statement).
struct Shape<'a> {
    projection: Option<&'a Projection>,
    other: bool,
    filter: Option<&'a Filter>,
    scan: &'a TableScan,
}

fn shape(input: &LogicalPlan) -> Option<Shape<'_>> {
    let mut projection = None;
    let mut filter = None;
    let mut other = false;
    let mut node = input;
    loop {
        match node {
            LogicalPlan::Projection(p) if projection.is_none() && filter.is_none() => {
                projection = Some(p);
                node = p.input.as_ref();
            }
            LogicalPlan::Filter(f) if filter.is_none() => {
                filter = Some(f);
                node = f.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => node = a.input.as_ref(),
            LogicalPlan::TableScan(scan) => {
                return Some(Shape {
                    projection,
                    other,
                    filter,
                    scan,
                });
            }
            LogicalPlan::Limit(l) if filter.is_none() => {
                other = true;
                node = l.input.as_ref();
            }
            _ => return None,
        }
    }
}

/// The changed columns of an UPDATE: DataFusion's projection lists every column, unchanged
/// ones as a plain reference to themselves.
fn assignments(projection: Option<&Projection>, db: &dyn Database) -> Vec<(String, Expr)> {
    let Some(p) = projection else {
        return vec![];
    };
    let schema = db.schema();
    let assigns = db.assigns_values();
    p.expr
        .iter()
        .filter_map(|e| match e {
            Expr::Alias(Alias { expr, name, .. }) => match expr.as_ref() {
                Expr::Column(c) if &c.name == name => None,
                inner => {
                    let mut value = inner;
                    // A store that assigns by its own rules gets the value as the statement
                    // computes it, not cast to the column's Arrow type by DataFusion (which
                    // truncates 2.5 into an int where PostgreSQL rounds, and cuts a string to
                    // varchar(n) where PostgreSQL refuses it).
                    if assigns && let Ok(target) = schema.field_with_name(name) {
                        while let Expr::Cast(cast) = value
                            && cast.field.data_type() == target.data_type()
                        {
                            value = &cast.expr;
                        }
                    }
                    Some((name.clone(), value.clone()))
                }
            },
            _ => None,
        })
        .collect()
}

fn unsupported(op: DmlOp, table: &DatabaseTable, why: &str) -> DataFusionError {
    Error::unsupported(format!("{op} on {}: {why}", table.location()))
        .with_backend(table.database().backend_name().to_string())
        .into_datafusion()
}

fn plan_mode(
    op: DmlOp,
    dml: &DmlStatement,
    table: &DatabaseTable,
    pushdown: bool,
) -> DfResult<DmlMode> {
    let input = dml.input.as_ref();
    let shape = shape(input).ok_or_else(|| {
        unsupported(
            op,
            table,
            "this form of the statement is not supported (UPDATE … FROM, joins)",
        )
    })?;
    let db = table.database();
    let sets = assignments(shape.projection, db.as_ref());
    // Native: every conjunct of the WHERE is evaluated exactly by the backend, and nothing
    // else (a LIMIT) narrows the rows.
    if pushdown && !shape.other && (op != DmlOp::Update || db.native_update()) {
        let schema = db.schema();
        let conjuncts = shape
            .filter
            .map(|f| split_conjunction(&f.predicate))
            .unwrap_or_default();
        let translated: Option<Vec<FilterExpr>> = conjuncts
            .iter()
            .map(|c| {
                expr_to_filter(&strip_qualifiers(c), &schema)
                    .filter(|t| db.filter_support(t) == FilterSupport::Exact)
            })
            .collect();
        let assignments_plain = sets.iter().all(|(_, e)| {
            !e.exists(|x| {
                Ok(matches!(
                    x,
                    Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
                ))
            })
            .unwrap_or(true)
        });
        if let Some(mut parts) = translated
            && assignments_plain
        {
            let filter = match parts.len() {
                0 => None,
                1 => parts.pop(),
                _ => Some(FilterExpr::And(parts)),
            };
            let assignments = sets
                .iter()
                .map(|(c, e)| (c.clone(), strip_qualifiers(e)))
                .collect();
            return Ok(DmlMode::Native {
                filter,
                assignments,
            });
        }
    }
    if !db.supports_row_ids() {
        return Err(unsupported(
            op,
            table,
            "the WHERE cannot be evaluated by the backend and the table has no row ids to \
             change the rows DataFusion selects; use simple column comparisons",
        ));
    }
    if db.schema().field_with_name(ROW_ID).is_ok() {
        return Err(unsupported(
            op,
            table,
            &format!("the table has a column named {ROW_ID}, which dataknobs reserves"),
        ));
    }
    let by_id = by_id_input(input, shape.scan, table, &sets)?;
    Ok(DmlMode::ById {
        input: Arc::new(by_id),
    })
}

/// The statement's input with its table scan reading record ids too, topped by a projection
/// of the id and (UPDATE) the new values of the changed columns.
fn by_id_input(
    input: &LogicalPlan,
    scan: &TableScan,
    table: &DatabaseTable,
    sets: &[(String, Expr)],
) -> DfResult<LogicalPlan> {
    let with_ids = provider_as_source(Arc::new(table.clone().with_row_ids()));
    // Rebuild the chain bottom-up with the new scan; drop DataFusion's UPDATE projection.
    let rebuilt = input
        .clone()
        .transform_up(|p| match p {
            LogicalPlan::TableScan(s) if s.table_name == scan.table_name => {
                let new = TableScanBuilder::new(s.table_name.clone(), with_ids.clone()).build()?;
                let new_schema = new.projected_schema.clone();
                let plan = LogicalPlan::TableScan(new);
                // The statement was type-checked against the table as queries see it (a file
                // table read by DataFusion may give Utf8View where the record store gives
                // Utf8): cast the row-id scan's columns back to those types.
                let same = s.projected_schema.fields().iter().all(|f| {
                    new_schema
                        .field_with_unqualified_name(f.name())
                        .is_ok_and(|n| n.data_type() == f.data_type())
                });
                if same {
                    return Ok(Transformed::yes(plan));
                }
                let mut exprs = Vec::with_capacity(s.projected_schema.fields().len() + 1);
                for f in s.projected_schema.fields() {
                    let (q, nf) = new_schema.qualified_field_with_unqualified_name(f.name())?;
                    let c = Expr::Column(datafusion::common::Column::from((q, nf)));
                    exprs.push(if nf.data_type() == f.data_type() {
                        c
                    } else {
                        Expr::Cast(datafusion::logical_expr::Cast::new(
                            Box::new(c),
                            f.data_type().clone(),
                        ))
                        .alias(f.name())
                    });
                }
                let (q, idf) = new_schema.qualified_field_with_unqualified_name(ROW_ID)?;
                exprs.push(Expr::Column(datafusion::common::Column::from((q, idf))));
                let projected =
                    LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(plan))?);
                Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
                    SubqueryAlias::try_new(Arc::new(projected), s.table_name.clone())?,
                )))
            }
            LogicalPlan::Projection(p) => Ok(Transformed::yes(p.input.as_ref().clone())),
            LogicalPlan::Filter(f) => Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
                f.predicate,
                f.input,
            )?))),
            LogicalPlan::SubqueryAlias(a) => Ok(Transformed::yes(LogicalPlan::SubqueryAlias(
                SubqueryAlias::try_new(a.input, a.alias)?,
            ))),
            other => {
                let exprs = other.expressions();
                let inputs = other.inputs().into_iter().cloned().collect();
                Ok(Transformed::yes(other.with_new_exprs(exprs, inputs)?))
            }
        })?
        .data;
    let id = {
        let schema = rebuilt.schema();
        let (qualifier, field) = schema.qualified_field_with_unqualified_name(ROW_ID)?;
        Expr::Column(datafusion::common::Column::from((qualifier, field)))
    };
    let mut exprs = vec![id.alias(ROW_ID)];
    for (c, e) in sets {
        exprs.push(e.clone().alias(c));
    }
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(rebuilt),
    )?))
}

/// Plans [`DmlNode`]s into [`DmlExec`]s.
#[derive(Debug, Default)]
pub struct DmlPlanner;

#[async_trait]
impl ExtensionPlanner for DmlPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<DmlNode>() else {
            return Ok(None);
        };
        let input = match (&node.mode, physical_inputs.first()) {
            (DmlMode::ById { .. }, Some(p)) => Some(p.clone()),
            (DmlMode::ById { .. }, None) => {
                return Err(DataFusionError::Internal(
                    "DataknobsDml by row id without its input".into(),
                ));
            }
            (DmlMode::Native { .. }, _) => None,
        };
        let native = match &node.mode {
            DmlMode::Native {
                filter,
                assignments,
            } => Some(NativeDml {
                filter: filter.clone(),
                assignments: assignments.clone(),
            }),
            DmlMode::ById { .. } => None,
        };
        Ok(Some(Arc::new(DmlExec::new(
            node.op,
            native,
            input,
            node.db.clone(),
            node.describe(),
        ))))
    }
}

/// Writes when executed: deletes or updates the rows, then yields one row, `count`.
#[derive(Debug)]
pub struct DmlExec {
    op: DmlOp,
    /// The native form (filter, assignments), or None: by row id from `input`.
    native: Option<NativeDml>,
    input: Option<Arc<dyn ExecutionPlan>>,
    db: Arc<dyn Database>,
    description: String,
    properties: Arc<PlanProperties>,
}

impl DmlExec {
    fn new(
        op: DmlOp,
        native: Option<NativeDml>,
        input: Option<Arc<dyn ExecutionPlan>>,
        db: Arc<dyn Database>,
        description: String,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        DmlExec {
            op,
            native,
            input,
            db,
            description,
            properties,
        }
    }
}

impl DisplayAs for DmlExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl ExecutionPlan for DmlExec {
    fn name(&self) -> &str {
        "DataknobsDmlExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.input.iter().collect()
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        self.input
            .iter()
            .map(|_| Distribution::SinglePartition)
            .collect()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.input.iter().map(|_| false).collect()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match (self.input.is_some(), children.pop(), children.is_empty()) {
            (false, None, _) => Ok(self),
            (true, Some(child), true) => Ok(Arc::new(DmlExec::new(
                self.op,
                self.native.clone(),
                Some(child),
                self.db.clone(),
                self.description.clone(),
            ))),
            _ => Err(DataFusionError::Internal(
                "DataknobsDmlExec: wrong number of children".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "DataknobsDmlExec has one partition, not {partition}"
            )));
        }
        // The registry check keeps a plan from running in a session without dataknobs.
        BackendRegistry::of(&context)?;
        let input = match &self.input {
            Some(p) if p.output_partitioning().partition_count() > 1 => {
                let merged: Arc<dyn ExecutionPlan> =
                    Arc::new(CoalescePartitionsExec::new(p.clone()));
                Some(merged.execute(0, context)?)
            }
            Some(p) => Some(p.execute(0, context)?),
            None => None,
        };
        let op = self.op;
        let db = self.db.clone();
        let native = self.native.clone();
        let fut = async move {
            let n = match (op, native, input) {
                (DmlOp::Truncate, _, _) => db.clear().await?,
                (DmlOp::Delete, Some(n), _) => db.delete_where(n.filter.as_ref()).await?,
                (DmlOp::Update, Some(n), _) => {
                    if n.assignments.is_empty() {
                        count_matching(db.as_ref(), n.filter).await?
                    } else {
                        db.update_where(&n.assignments, n.filter.as_ref()).await?
                    }
                }
                (DmlOp::Delete, None, Some(stream)) => {
                    let (ids, _) = collect_rows(stream).await?;
                    db.delete_ids(&ids).await?
                }
                (DmlOp::Update, None, Some(stream)) => {
                    let (ids, values) = collect_rows(stream).await?;
                    if values.num_columns() == 0 {
                        ids.len() as u64
                    } else {
                        db.update_ids(&ids, values).await?
                    }
                }
                (_, None, None) => {
                    return Err(Error::internal("DataknobsDmlExec without its input"));
                }
            };
            let batch =
                RecordBatch::try_new(count_schema(), vec![Arc::new(UInt64Array::from(vec![n]))])?;
            crate::Result::Ok(batch)
        };
        let stream =
            futures::stream::once(async move { fut.await.map_err(Error::into_datafusion) });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            stream.boxed(),
        )))
    }
}

/// `UPDATE t SET c = c WHERE …` changes nothing but reports the matching rows, as PostgreSQL.
async fn count_matching(db: &dyn Database, filter: Option<FilterExpr>) -> crate::Result<u64> {
    let query = crate::query::Query {
        filters: filter.into_iter().collect(),
        ..Default::default()
    };
    db.count(Some(&query)).await
}

/// All rows of the by-id input: their ids, and the other columns (new values) as one batch.
/// The whole selection is held in memory (ids plus the changed columns of the matching rows)
/// before anything is written, so that a failing WHERE writes nothing.
async fn collect_rows(
    mut stream: SendableRecordBatchStream,
) -> crate::Result<(Vec<String>, RecordBatch)> {
    let schema = stream.schema();
    let id_idx = schema.index_of(ROW_ID)?;
    let value_fields: Vec<_> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != id_idx)
        .map(|(_, f)| f.clone())
        .collect();
    let mut ids = Vec::new();
    let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); value_fields.len()];
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let id_col = cast(batch.column(id_idx), &DataType::Utf8)?;
        let id_col = id_col
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::internal("row ids are not text"))?;
        if id_col.null_count() > 0 {
            return Err(Error::internal("a scan returned a NULL row id"));
        }
        ids.extend(id_col.iter().flatten().map(str::to_string));
        let mut j = 0;
        for (i, c) in batch.columns().iter().enumerate() {
            if i != id_idx {
                columns[j].push(c.clone());
                j += 1;
            }
        }
    }
    let values_schema = Arc::new(Schema::new(value_fields));
    let mut arrays = Vec::with_capacity(columns.len());
    for (parts, field) in columns.iter().zip(values_schema.fields()) {
        arrays.push(if parts.is_empty() {
            datafusion::arrow::array::new_empty_array(field.data_type())
        } else {
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            concat(&refs)?
        });
    }
    let values = RecordBatch::try_new_with_options(
        values_schema,
        arrays,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(ids.len())),
    )?;
    Ok((ids, values))
}
