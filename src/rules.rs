//! Logical rewrites the engine adds to DataFusion's analyzer.
//!
//! [`LikeEscapeRule`]: DataFusion evaluates `LIKE … ESCAPE 'c'` only when `c` is a backslash.
//! A literal pattern with another escape character is rewritten into the same pattern with
//! backslash escapes (`'a#%%' ESCAPE '#'` → `'a\%%'`), which DataFusion and every backend
//! evaluate, and which the pushdown translator then sends to the backend.
//!
//! [`RegexBackslashRule`]: DataFusion 55's expression simplifier turns a regex match with a
//! literal pattern into `LIKE` (`s ~ 'a\\c'` → `s LIKE '%a\c%'`) without escaping the
//! backslash, which LIKE then reads as its escape character: `s ~ '\\'` matched `ab%`,
//! and `s ~ 'a\\c'` did not match `a\c` (upstream: `is_safe_for_like` in
//! datafusion-optimizer's `simplify_expressions/regex.rs` lets `\` through). A pattern with
//! a backslash is prefixed with an empty group `()`, which matches the same strings and which
//! the simplifier leaves alone, so the regex is evaluated (or pushed) as a regex.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::Like;
use datafusion::logical_expr::expr::{Between, InList};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

/// Runs before DataFusion's type coercion: a decimal literal (`1.25`, exact since the session
/// parses decimal literals as decimals) compared with, or combined with, a float expression
/// becomes a float literal, so the float side is not cast to a decimal — which fails on NaN
/// and ±infinity ("Cannot cast to Decimal128(30, 15). Overflowing on NaN") and is not what
/// PostgreSQL or DuckDB do (they compare a float with a numeric as floats).
#[derive(Debug, Default)]
pub struct FloatMeetsDecimalRule;

impl AnalyzerRule for FloatMeetsDecimalRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            let inputs = p.inputs();
            let Some(first) = inputs.first() else {
                return Ok(Transformed::no(p));
            };
            let mut schema: DFSchema = first.schema().as_ref().clone();
            for other in &inputs[1..] {
                schema.merge(other.schema());
            }
            let names = NamePreserver::new(&p);
            p.map_expressions(|e| {
                let name = names.save(&e);
                Ok(e.transform_up(|e| float_literals(e, &schema))?
                    .update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "dataknobs_float_meets_decimal"
    }
}

fn is_float(e: &Expr, schema: &DFSchema) -> bool {
    matches!(
        e.get_type(schema),
        Ok(DataType::Float16 | DataType::Float32 | DataType::Float64)
    )
}

/// A decimal literal (possibly negated) as the float literal of the same text.
fn as_float(e: &Expr) -> Option<Expr> {
    match e {
        Expr::Literal(v @ ScalarValue::Decimal128(Some(_), _, _), meta) => {
            let f: f64 = v.to_string().parse().ok()?;
            Some(Expr::Literal(ScalarValue::Float64(Some(f)), meta.clone()))
        }
        Expr::Negative(inner) => as_float(inner).map(|x| Expr::Negative(Box::new(x))),
        _ => None,
    }
}

fn float_literals(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    Ok(match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom
                    | Operator::Plus
                    | Operator::Minus
                    | Operator::Multiply
                    | Operator::Divide
                    | Operator::Modulo
            ) =>
        {
            if is_float(&left, schema)
                && let Some(r) = as_float(&right)
            {
                Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(left, op, Box::new(r))))
            } else if is_float(&right, schema)
                && let Some(l) = as_float(&left)
            {
                Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, right)))
            } else {
                Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }))
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) if is_float(&expr, schema) && list.iter().any(|x| as_float(x).is_some()) => {
            let list = list
                .into_iter()
                .map(|x| as_float(&x).unwrap_or(x))
                .collect();
            Transformed::yes(Expr::InList(InList {
                expr,
                list,
                negated,
            }))
        }
        // coalesce(f, 1.5), nullif, greatest, least: one float argument makes the others
        // floats (PostgreSQL resolves them to double precision).
        Expr::ScalarFunction(mut f)
            if matches!(f.name(), "coalesce" | "nullif" | "greatest" | "least")
                && f.args.iter().any(|a| is_float(a, schema))
                && f.args.iter().any(|a| as_float(a).is_some()) =>
        {
            f.args = f
                .args
                .into_iter()
                .map(|a| as_float(&a).unwrap_or(a))
                .collect();
            Transformed::yes(Expr::ScalarFunction(f))
        }
        // CASE … THEN f ELSE 0.5 END: results of one type, a float when one branch is.
        Expr::Case(mut c)
            if c.when_then_expr.iter().any(|(_, t)| is_float(t, schema))
                || c.else_expr.as_ref().is_some_and(|e| is_float(e, schema)) =>
        {
            let mut changed = false;
            for (_, then) in c.when_then_expr.iter_mut() {
                if let Some(x) = as_float(then) {
                    **then = x;
                    changed = true;
                }
            }
            if let Some(e) = c.else_expr.as_mut()
                && let Some(x) = as_float(e)
            {
                **e = x;
                changed = true;
            }
            if changed {
                Transformed::yes(Expr::Case(c))
            } else {
                Transformed::no(Expr::Case(c))
            }
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) if is_float(&expr, schema) => {
            let low = as_float(&low).map(Box::new).unwrap_or(low);
            let high = as_float(&high).map(Box::new).unwrap_or(high);
            Transformed::yes(Expr::Between(Between {
                expr,
                negated,
                low,
                high,
            }))
        }
        other => Transformed::no(other),
    })
}

/// `plan` with `f` applied to every expression of every node, subqueries included.
fn rewrite_expressions(
    plan: LogicalPlan,
    f: fn(Expr) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|p| {
        // A rewritten expression keeps its name: parents refer to it by name.
        let names = NamePreserver::new(&p);
        p.map_expressions(|e| {
            let name = names.save(&e);
            Ok(e.transform_up(f)?.update_data(|e| name.restore(e)))
        })
    })
    .map(|t| t.data)
}

/// Keeps regex matches whose pattern has a backslash from being rewritten into LIKE.
#[derive(Debug, Default)]
pub struct RegexBackslashRule;

impl AnalyzerRule for RegexBackslashRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, guard_regex)
    }

    fn name(&self) -> &str {
        "dataknobs_regex_backslash"
    }
}

fn guard_regex(e: Expr) -> Result<Transformed<Expr>> {
    match &e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(
                op,
                Operator::RegexMatch
                    | Operator::RegexIMatch
                    | Operator::RegexNotMatch
                    | Operator::RegexNotIMatch
            ) =>
        {
            match guard_pattern(right) {
                Some(pattern) => Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                    left: left.clone(),
                    op: *op,
                    right: Box::new(pattern),
                }))),
                None => Ok(Transformed::no(e)),
            }
        }
        // The simplifier turns regexp_like(s, p) into `s ~ p` first.
        Expr::ScalarFunction(f) if f.name() == "regexp_like" && f.args.len() >= 2 => {
            match guard_pattern(&f.args[1]) {
                Some(pattern) => {
                    let mut f = f.clone();
                    f.args[1] = pattern;
                    Ok(Transformed::yes(Expr::ScalarFunction(f)))
                }
                None => Ok(Transformed::no(e)),
            }
        }
        _ => Ok(Transformed::no(e)),
    }
}

/// A literal pattern (possibly under a cast) with a backslash, prefixed with `()`; None when
/// it needs no guard or is not a valid regex (left for DataFusion to report as it was).
fn guard_pattern(pattern: &Expr) -> Option<Expr> {
    map_string_literal(pattern, &|text| {
        (text.contains('\\') && !text.starts_with("()") && regex::Regex::new(text).is_ok())
            .then(|| format!("(){text}"))
    })
}

/// A string literal (possibly under the casts type coercion adds) with its text replaced by
/// `f`'s answer, of the same string type; None if it is not one or `f` gives None.
fn map_string_literal(e: &Expr, f: &dyn Fn(&str) -> Option<String>) -> Option<Expr> {
    match e {
        Expr::Literal(lit, meta) => {
            let new = match lit {
                ScalarValue::Utf8(Some(t)) => ScalarValue::Utf8(Some(f(t)?)),
                ScalarValue::LargeUtf8(Some(t)) => ScalarValue::LargeUtf8(Some(f(t)?)),
                ScalarValue::Utf8View(Some(t)) => ScalarValue::Utf8View(Some(f(t)?)),
                _ => return None,
            };
            Some(Expr::Literal(new, meta.clone()))
        }
        Expr::Cast(Cast { expr, field }) => Some(Expr::Cast(Cast {
            expr: Box::new(map_string_literal(expr, f)?),
            field: field.clone(),
        })),
        _ => None,
    }
}

/// Rewrites `LIKE` patterns with a non-backslash escape character into backslash form.
#[derive(Debug, Default)]
pub struct LikeEscapeRule;

impl AnalyzerRule for LikeEscapeRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        rewrite_expressions(plan, rewrite_like)
    }

    fn name(&self) -> &str {
        "dataknobs_like_escape"
    }
}

fn rewrite_like(e: Expr) -> Result<Transformed<Expr>> {
    let Expr::Like(like) = &e else {
        return Ok(Transformed::no(e));
    };
    let Some(escape) = like.escape_char.filter(|c| *c != '\\') else {
        return Ok(Transformed::no(e));
    };
    let Some(pattern) = rewrite_pattern(&like.pattern, escape) else {
        return Ok(Transformed::no(e));
    };
    Ok(Transformed::yes(Expr::Like(Like {
        negated: like.negated,
        expr: like.expr.clone(),
        pattern: Box::new(pattern),
        escape_char: None,
        case_insensitive: like.case_insensitive,
    })))
}

/// The pattern expression (a string literal, possibly under a cast that type coercion added)
/// with backslash escapes, or None if it is not a literal.
fn rewrite_pattern(pattern: &Expr, escape: char) -> Option<Expr> {
    map_string_literal(pattern, &|text| to_backslash_escapes(text, escape))
}

/// The same pattern with `\` as the escape character, or None if it ends in a lone escape
/// (left for DataFusion to report).
pub fn to_backslash_escapes(pattern: &str, escape: char) -> Option<String> {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            let next = chars.next()?;
            out.push('\\');
            out.push(next);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::to_backslash_escapes;

    #[test]
    fn escapes_become_backslashes() {
        assert_eq!(to_backslash_escapes("a#%%", '#').as_deref(), Some("a\\%%"));
        assert_eq!(to_backslash_escapes("a#_b", '#').as_deref(), Some("a\\_b"));
        assert_eq!(
            to_backslash_escapes("a##b\\c", '#').as_deref(),
            Some("a\\#b\\\\c")
        );
        assert_eq!(to_backslash_escapes("abc#", '#'), None);
    }
}

/// DataFusion plans `INSERT … VALUES` with the target's nullability on the VALUES, so a NULL
/// for a NOT NULL column fails while the VALUES is built, naming its position
/// ("Column 'column2' is declared as non-nullable"). VALUES under an INSERT are made nullable
/// here, so the NULL reaches the insert's own NOT NULL check, which names the table's column.
#[derive(Debug, Default)]
pub struct NullableInsertValuesRule;

impl AnalyzerRule for NullableInsertValuesRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        use datafusion::logical_expr::{DmlStatement, Values, WriteOp};
        let LogicalPlan::Dml(DmlStatement {
            op: WriteOp::Insert(_),
            ..
        }) = &plan
        else {
            return Ok(plan);
        };
        plan.transform_up(|p| match p {
            LogicalPlan::Values(Values { schema, values })
                if schema.fields().iter().any(|f| !f.is_nullable()) =>
            {
                let fields = schema
                    .iter()
                    .map(|(q, f)| {
                        (
                            q.cloned(),
                            std::sync::Arc::new(f.as_ref().clone().with_nullable(true)),
                        )
                    })
                    .collect::<Vec<_>>();
                let schema = DFSchema::new_with_metadata(fields, schema.metadata().clone())?;
                Ok(Transformed::yes(LogicalPlan::Values(Values {
                    schema: std::sync::Arc::new(schema),
                    values,
                })))
            }
            LogicalPlan::Dml(_) => Ok(Transformed::no(p)),
            other => other.recompute_schema().map(Transformed::yes),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "dataknobs_nullable_insert_values"
    }
}
