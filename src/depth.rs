//! Deeply nested input is an error, never a stack overflow.
//!
//! DataFusion's planner and optimizer walk expressions recursively (most walks grow the stack
//! on demand, some — displaying an expression, evaluating one — do not), and so do the
//! pushdown translators. A statement like `SELECT 1+1+…` with thousands of terms, or a WHERE
//! with thousands of AND-ed comparisons, used to abort the process. Two guards:
//!
//! - SQL: [`parse`] parses a statement and measures how deeply its expressions nest before
//!   anything else walks them (a long statement is parsed and measured on a thread with a
//!   large stack). Deeper than `dataknobs.max_expression_depth` (default 256) is an error
//!   naming the limit. The parser's own recursion limit
//!   (`datafusion.sql_parser.recursion_limit`) gets the same kind of message. The same walk
//!   keeps numbers in scientific notation floats.
//! - Plans built with the DataFrame API: [`DepthLimitRule`] (an analyzer rule) measures every
//!   expression with DataFusion's stack-growing tree walk.

use std::ops::ControlFlow;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion, TreeNodeVisitor};
use datafusion::error::Result as DfResult;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::parser::{CopyToSource, Statement};
use datafusion::sql::sqlparser::ast::{
    CastKind, DataType as SqlType, Expr as SqlExpr, Value as SqlValue, VisitMut, VisitorMut,
};

use crate::error::{Error, Result};

/// Statements longer than this are parsed and measured on a thread with [`BIG_STACK`].
const LONG_SQL: usize = 1024;
const BIG_STACK: usize = 256 << 20;

fn too_deep(limit: usize) -> Error {
    Error::query(format!(
        "expression nested too deeply (limit: {limit} levels); simplify the statement (e.g. \
         an IN list instead of many OR-ed comparisons) or raise the limit with \
         SET dataknobs.max_expression_depth = N"
    ))
}

/// Parses one SQL statement with the session's dialect and checks its nesting depth.
pub fn parse(state: &SessionState, sql: &str) -> Result<Statement> {
    let limit = crate::options::max_expression_depth(state.config_options());
    let run = || -> Result<Statement> {
        let dialect = state.config_options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).map_err(|e| {
            let parser = state.config_options().sql_parser.recursion_limit;
            let nesting = Error::query(format!(
                "expression nested too deeply for the SQL parser (limit: {parser} levels of \
                 nesting); simplify the statement or raise the limit with \
                 SET datafusion.sql_parser.recursion_limit = N"
            ));
            if e.to_string()
                .to_lowercase()
                .contains("recursion limit exceeded")
            {
                return nesting;
            }
            // The parser sometimes reports its recursion limit as a syntax error further on
            // (e.g. deeply nested CASE): if the statement parses with a far higher limit
            // (the parser grows its stack as it recurses), nesting was the problem.
            let mut generous = state.clone();
            if let Ok(n) =
                datafusion::common::config::ConfigNonZeroUsize::try_new(parser.get().max(4096))
            {
                generous
                    .config_mut()
                    .options_mut()
                    .sql_parser
                    .recursion_limit = n;
            }
            match generous.sql_to_statement(sql, &dialect) {
                Ok(_) => nesting,
                Err(_) => Error::from(e),
            }
        })?;
        let mut statement = statement;
        prepare_statement(&mut statement, limit)?;
        Ok(statement)
    };
    if sql.len() <= LONG_SQL {
        return run();
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("dataknobs-parse".into())
            .stack_size(BIG_STACK)
            .spawn_scoped(s, run)
            .map_err(|e| Error::internal(format!("cannot start the parser thread: {e}")))?
            .join()
            .map_err(|_| Error::internal("the SQL parser thread panicked"))?
    })
}

/// One walk over a parsed statement's expressions that
/// - counts their nesting and breaks as soon as it passes the limit (so the walk itself never
///   goes deeper than the limit);
/// - keeps numbers in scientific notation floats: SQL numbers with a decimal point are exact
///   decimals in a dataknobs session (`datafusion.sql_parser.parse_float_as_decimal`), as in
///   PostgreSQL and DuckDB, while `1e10` and `2.5E-3` stay floats, as in DuckDB (DataFusion
///   would make them decimals with a negative scale, and fail beyond 1e38). Such a number
///   becomes `CAST('1e10' AS DOUBLE PRECISION)`.
struct Prepare {
    depth: usize,
    limit: usize,
}

impl VisitorMut for Prepare {
    type Break = ();

    fn pre_visit_expr(&mut self, _expr: &mut SqlExpr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > self.limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn post_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<()> {
        self.depth -= 1;
        if let SqlExpr::Value(v) = expr
            && let SqlValue::Number(n, _) = &v.value
            && n.contains(['e', 'E'])
        {
            let text = SqlValue::SingleQuotedString(n.clone()).with_empty_span();
            *expr = SqlExpr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(SqlExpr::Value(text)),
                data_type: SqlType::DoublePrecision,
                array: false,
                format: None,
            };
        }
        ControlFlow::Continue(())
    }
}

/// Runs [`Prepare`] over every SQL part of `statement`; an error if it nests too deeply.
fn prepare_statement(statement: &mut Statement, limit: usize) -> Result<()> {
    let mut v = Prepare { depth: 0, limit };
    let flow = match statement {
        Statement::Statement(s) => s.visit(&mut v),
        Statement::Explain(e) => return prepare_statement(&mut e.statement, limit),
        Statement::CopyTo(c) => match &mut c.source {
            CopyToSource::Query(q) => q.visit(&mut v),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        Statement::CreateExternalTable(_) | Statement::Reset(_) => ControlFlow::Continue(()),
    };
    match flow {
        ControlFlow::Break(()) => Err(too_deep(limit)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Refuses plans with expressions nested deeper than `dataknobs.max_expression_depth` (plans
/// from the DataFrame API; SQL is measured by [`parse`] before it is planned).
#[derive(Debug, Default)]
pub struct DepthLimitRule;

struct ExprDepth {
    depth: usize,
    limit: usize,
}

impl<'n> TreeNodeVisitor<'n> for ExprDepth {
    type Node = Expr;

    fn f_down(&mut self, _node: &'n Expr) -> DfResult<TreeNodeRecursion> {
        self.depth += 1;
        if self.depth > self.limit {
            return Err(too_deep(self.limit).into());
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn f_up(&mut self, _node: &'n Expr) -> DfResult<TreeNodeRecursion> {
        self.depth -= 1;
        Ok(TreeNodeRecursion::Continue)
    }
}

impl AnalyzerRule for DepthLimitRule {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let limit = crate::options::max_expression_depth(config);
        plan.apply_with_subqueries(|p| {
            p.apply_expressions(|e| {
                e.visit(&mut ExprDepth { depth: 0, limit })?;
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "dataknobs_depth_limit"
    }
}
