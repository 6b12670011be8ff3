//! Pushdown, in one place: DataFusion [`Expr`] → the [`Query`](crate::Query) model, and the
//! Exact / Inexact / Unsupported answer for each filter.
//!
//! Data flow: DataFusion asks the table provider which filters it can take
//! ([`classify`]); each filter is translated by [`expr_to_filter`] and the backend answers for
//! the translation ([`Database::filter_support`]). Filters that are not `Exact` stay in a
//! `FilterExec` above the scan. Renderers turn the `Query` into the native request: [`eval`]
//! turns it back into a DataFusion expression (the memory backend evaluates it with
//! DataFusion's own kernels, which makes it exact by construction).

pub mod eval;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{InList, Like};
use datafusion::logical_expr::{
    BinaryExpr, Cast, Expr, Operator as DfOp, TableProviderFilterPushDown,
};

use crate::database::{Database, FilterSupport};
use crate::query::{Filter, FilterExpr, Operand, Operator};
use crate::record::{Decimal, Value};

/// Translates a DataFusion filter into the query model, or None if it has no exact
/// translation (then DataFusion evaluates it).
pub fn expr_to_filter(expr: &Expr, schema: &Schema) -> Option<FilterExpr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            DfOp::And | DfOp::Or => {
                let mut parts = Vec::new();
                for side in [left, right] {
                    match (expr_to_filter(side, schema)?, op) {
                        (FilterExpr::And(v), DfOp::And) | (FilterExpr::Or(v), DfOp::Or) => {
                            parts.extend(v)
                        }
                        (f, _) => parts.push(f),
                    }
                }
                Some(if *op == DfOp::And {
                    FilterExpr::And(parts)
                } else {
                    FilterExpr::Or(parts)
                })
            }
            DfOp::Eq | DfOp::NotEq | DfOp::Lt | DfOp::LtEq | DfOp::Gt | DfOp::GtEq => {
                let op = match op {
                    DfOp::Eq => Operator::Eq,
                    DfOp::NotEq => Operator::Ne,
                    DfOp::Lt => Operator::Lt,
                    DfOp::LtEq => Operator::Le,
                    DfOp::Gt => Operator::Gt,
                    _ => Operator::Ge,
                };
                if let (Some(field), Some(v)) = (column_of(left, schema), literal_of(right)) {
                    return cond(field, op, Operand::One(v));
                }
                if let (Some(v), Some(field)) = (literal_of(left), column_of(right, schema)) {
                    return cond(field, op.flipped()?, Operand::One(v));
                }
                None
            }
            DfOp::RegexMatch | DfOp::RegexNotMatch => {
                let field = column_of(left, schema)?;
                let regex = match literal_of(right)? {
                    v @ Value::String(_) => cond(field, Operator::Regex, Operand::One(v))?,
                    _ => return None,
                };
                Some(if *op == DfOp::RegexNotMatch {
                    FilterExpr::Not(Box::new(regex))
                } else {
                    regex
                })
            }
            _ => None,
        },
        Expr::Not(inner) => Some(FilterExpr::Not(Box::new(expr_to_filter(inner, schema)?))),
        Expr::IsNull(inner) => cond(
            column_of(inner, schema)?,
            Operator::NotExists,
            Operand::None,
        ),
        Expr::IsNotNull(inner) => cond(column_of(inner, schema)?, Operator::Exists, Operand::None),
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let field = column_of(expr, schema)?;
            if list.is_empty() {
                return None;
            }
            let values = list.iter().map(literal_of).collect::<Option<Vec<_>>>()?;
            let op = if *negated {
                Operator::NotIn
            } else {
                Operator::In
            };
            cond(field, op, Operand::List(values))
        }
        Expr::Like(Like {
            negated,
            expr,
            pattern,
            escape_char,
            case_insensitive,
        }) => {
            if *case_insensitive || !matches!(escape_char, None | Some('\\')) {
                return None;
            }
            let field = column_of(expr, schema)?;
            let pattern = match literal_of(pattern)? {
                v @ Value::String(_) => v,
                _ => return None,
            };
            let like = cond(field, Operator::Like, Operand::One(pattern))?;
            Some(if *negated {
                FilterExpr::Not(Box::new(like))
            } else {
                like
            })
        }
        Expr::ScalarFunction(f) => {
            let op = crate::fulltext::operator(f.func.name())?;
            let (field, text) = match f.args.as_slice() {
                [text] if op == Operator::QueryString => {
                    (crate::fulltext::ALL_FIELDS.to_string(), text)
                }
                [col, text] => (column_of(col, schema)?, text),
                _ => return None,
            };
            match literal_of(text)? {
                v @ Value::String(_) => cond(field, op, Operand::One(v)),
                _ => None,
            }
        }
        Expr::Literal(ScalarValue::Boolean(b), _) => Some(FilterExpr::Const(*b)),
        Expr::Literal(ScalarValue::Null, _) => Some(FilterExpr::Const(None)),
        Expr::Column(c) => {
            let f = schema.field_with_name(&c.name).ok()?;
            if f.data_type() == &DataType::Boolean {
                cond(
                    c.name.clone(),
                    Operator::Eq,
                    Operand::One(Value::Bool(true)),
                )
            } else {
                None
            }
        }
        _ => None,
    }
}

fn cond(field: String, op: Operator, operand: Operand) -> Option<FilterExpr> {
    Filter::new(field, op, operand).ok().map(FilterExpr::Cond)
}

/// The column an expression reads, looking through casts that lose nothing.
fn column_of(expr: &Expr, schema: &Schema) -> Option<String> {
    match expr {
        Expr::Column(c) => schema.field_with_name(&c.name).ok().map(|_| c.name.clone()),
        Expr::Cast(Cast { expr, field }) => {
            let name = column_of(expr, schema)?;
            let from = schema.field_with_name(&name).ok()?.data_type();
            lossless_cast(from, field.data_type()).then_some(name)
        }
        _ => None,
    }
}

/// Is every value of `from` exactly representable in `to`, with the same order?
fn lossless_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to {
        return true;
    }
    // Integers and decimals widen into a decimal with as many integer digits and no fewer
    // fraction digits.
    let integer_digits = |t: &DataType| -> Option<i16> {
        Some(match t {
            Int8 | UInt8 => 3,
            Int16 | UInt16 => 5,
            Int32 | UInt32 => 10,
            Int64 => 19,
            UInt64 => 20,
            Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => {
                i16::from(*p) - i16::from(*s)
            }
            _ => return None,
        })
    };
    let scale = |t: &DataType| match t {
        Decimal32(_, s) | Decimal64(_, s) | Decimal128(_, s) | Decimal256(_, s) => i16::from(*s),
        _ => 0,
    };
    if let (Some(have), Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s)) =
        (integer_digits(from), to)
    {
        return i16::from(*p) - i16::from(*s) >= have && i16::from(*s) >= scale(from);
    }
    matches!(
        (from, to),
        (Int8, Int16 | Int32 | Int64 | Float32 | Float64)
            | (Int16, Int32 | Int64 | Float32 | Float64)
            | (Int32, Int64 | Float64)
            | (
                UInt8,
                Int16 | Int32 | Int64 | UInt16 | UInt32 | UInt64 | Float32 | Float64
            )
            | (UInt16, Int32 | Int64 | UInt32 | UInt64 | Float32 | Float64)
            | (UInt32, Int64 | UInt64 | Float64)
            | (Float32, Float64)
            | (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View)
    )
}

/// A literal as a [`Value`], if it converts exactly.
pub fn literal_of(expr: &Expr) -> Option<Value> {
    match expr {
        Expr::Literal(s, _) => scalar_to_value(s),
        // A cast of a literal is a literal of the target type (DataFusion usually folds these).
        Expr::Cast(Cast { expr, field }) => match expr.as_ref() {
            Expr::Literal(s, _) => scalar_to_value(&s.cast_to(field.data_type()).ok()?),
            _ => None,
        },
        _ => None,
    }
}

/// A scalar as a [`Value`], if it converts exactly.
pub fn scalar_to_value(s: &ScalarValue) -> Option<Value> {
    use ScalarValue as S;
    if s.is_null() {
        return Some(Value::Null);
    }
    Some(match s {
        S::Boolean(Some(b)) => Value::Bool(*b),
        S::Int8(Some(v)) => Value::Int(i64::from(*v)),
        S::Int16(Some(v)) => Value::Int(i64::from(*v)),
        S::Int32(Some(v)) => Value::Int(i64::from(*v)),
        S::Int64(Some(v)) => Value::Int(*v),
        S::UInt8(Some(v)) => Value::Int(i64::from(*v)),
        S::UInt16(Some(v)) => Value::Int(i64::from(*v)),
        S::UInt32(Some(v)) => Value::Int(i64::from(*v)),
        S::UInt64(Some(v)) => Value::Int(i64::try_from(*v).ok()?),
        S::Float32(Some(v)) => Value::Float(f64::from(*v)),
        S::Float64(Some(v)) => Value::Float(*v),
        S::Utf8(Some(v)) | S::LargeUtf8(Some(v)) | S::Utf8View(Some(v)) => Value::String(v.clone()),
        S::Binary(Some(v)) | S::LargeBinary(Some(v)) | S::BinaryView(Some(v)) => {
            Value::Binary(v.clone())
        }
        S::Date32(Some(d)) => Value::Date(
            chrono::DateTime::UNIX_EPOCH
                .date_naive()
                .checked_add_signed(chrono::TimeDelta::try_days(i64::from(*d))?)?,
        ),
        S::Decimal32(Some(v), _, s) => Value::Decimal(Decimal::new(i128::from(*v), *s)),
        S::Decimal64(Some(v), _, s) => Value::Decimal(Decimal::new(i128::from(*v), *s)),
        S::Decimal128(Some(v), _, s) => Value::Decimal(Decimal::new(*v, *s)),
        S::Decimal256(Some(v), _, s) => Value::Decimal(Decimal::new(v.to_i128()?, *s)),
        S::TimestampSecond(Some(v), _) => Value::DateTime(chrono::DateTime::from_timestamp(*v, 0)?),
        S::TimestampMillisecond(Some(v), _) => {
            Value::DateTime(chrono::DateTime::from_timestamp_millis(*v)?)
        }
        S::TimestampMicrosecond(Some(v), _) => {
            Value::DateTime(chrono::DateTime::from_timestamp_micros(*v)?)
        }
        S::TimestampNanosecond(Some(v), _) => {
            Value::DateTime(chrono::DateTime::from_timestamp_nanos(*v))
        }
        _ => return None,
    })
}

/// Answers DataFusion's `supports_filters_pushdown` for a backend collection.
pub fn classify(
    filters: &[&Expr],
    db: &dyn Database,
    pushdown_enabled: bool,
) -> Vec<TableProviderFilterPushDown> {
    let schema = db.schema();
    filters
        .iter()
        .map(|e| {
            if !pushdown_enabled {
                return TableProviderFilterPushDown::Unsupported;
            }
            match expr_to_filter(e, &schema) {
                None => TableProviderFilterPushDown::Unsupported,
                Some(f) => match db.filter_support(&f) {
                    FilterSupport::Exact => TableProviderFilterPushDown::Exact,
                    FilterSupport::Inexact => TableProviderFilterPushDown::Inexact,
                    FilterSupport::Unsupported => TableProviderFilterPushDown::Unsupported,
                },
            }
        })
        .collect()
}

/// Drops table qualifiers (`t.a` → `a`) so expressions match a collection's unqualified
/// columns.
pub fn strip_qualifiers(e: &Expr) -> Expr {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    e.clone()
        .transform(|e| match e {
            Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
                datafusion::common::Column::new_unqualified(c.name),
            ))),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::prelude::{cast, col, lit};
    use std::ops::Not;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
        ])
    }

    #[test]
    fn comparisons_with_literals_on_either_side() {
        let s = schema();
        let f = expr_to_filter(&lit(5i32).lt(col("a")), &s).unwrap();
        assert_eq!(f.to_string(), "a > 5");
        let f = expr_to_filter(&col("a").gt_eq(lit(5i64)).and(col("s").is_null()), &s).unwrap();
        assert_eq!(f.to_string(), "(a >= 5 AND s NOT EXISTS)");
        let f = expr_to_filter(&col("a").eq(lit(1)).or(col("b")).not(), &s).unwrap();
        assert_eq!(f.to_string(), "NOT (a = 1 OR b = true)");
    }

    #[test]
    fn only_lossless_casts_are_looked_through() {
        let s = schema();
        let widened = cast(col("a"), DataType::Int64).eq(lit(3i64));
        assert!(expr_to_filter(&widened, &s).is_some());
        let to_text = cast(col("a"), DataType::Utf8).eq(lit("3"));
        assert!(expr_to_filter(&to_text, &s).is_none());
        let cast_literal = col("a").eq(cast(lit("7"), DataType::Int32));
        assert_eq!(
            expr_to_filter(&cast_literal, &s).unwrap().to_string(),
            "a = 7"
        );
    }

    #[test]
    fn like_in_and_untranslatable() {
        let s = schema();
        let f = expr_to_filter(&col("s").not_like(lit("a\\%%")), &s).unwrap();
        assert_eq!(f.to_string(), "NOT s LIKE 'a\\%%'");
        let f = expr_to_filter(
            &col("a").in_list(vec![lit(1), lit(ScalarValue::Int32(None))], true),
            &s,
        )
        .unwrap();
        assert_eq!(f.to_string(), "a NOT IN (1, NULL)");
        assert!(expr_to_filter(&col("s").ilike(lit("x")), &s).is_none());
        assert!(expr_to_filter(&(col("a") + lit(1)).eq(lit(2)), &s).is_none());
        assert!(expr_to_filter(&col("nope").eq(lit(2)), &s).is_none());
    }

    #[test]
    fn decimals_and_dates_are_exact_values() {
        let d = |v: i128, p: u8, s: i8| scalar_to_value(&ScalarValue::Decimal128(Some(v), p, s));
        assert_eq!(d(500, 15, 2).unwrap().to_string(), "5.00");
        assert_eq!(d(-5, 3, 3).unwrap().to_string(), "-0.005");
        assert_eq!(d(0, 5, 2).unwrap().to_string(), "0.00");
        assert_eq!(d(12, 5, -2).unwrap().to_string(), "1200");
        let big = d(i128::MAX, 38, 10).unwrap();
        assert_eq!(big.to_string(), "17014118346046923173168730371.5884105727");
        assert_eq!(
            eval::value_to_scalar(&big),
            ScalarValue::Decimal128(Some(i128::MAX), 38, 10)
        );
        assert_eq!(
            eval::value_to_scalar(&d(-5, 3, 3).unwrap()),
            ScalarValue::Decimal128(Some(-5), 3, 3)
        );
        let date = scalar_to_value(&ScalarValue::Date32(Some(-719_162))).unwrap();
        assert_eq!(date.to_string(), "DATE '0001-01-01'");
        assert_eq!(
            eval::value_to_scalar(&date),
            ScalarValue::Date32(Some(-719_162))
        );

        let s = Schema::new(vec![
            Field::new("q", DataType::Decimal128(15, 2), true),
            Field::new("i", DataType::Int32, true),
        ]);
        // Widening casts are looked through; narrowing ones are not.
        let wide = cast(col("q"), DataType::Decimal128(16, 3)).eq(lit(ScalarValue::Decimal128(
            Some(1005),
            16,
            3,
        )));
        assert_eq!(expr_to_filter(&wide, &s).unwrap().to_string(), "q = 1.005");
        let narrow = cast(col("q"), DataType::Decimal128(15, 1)).eq(lit(ScalarValue::Decimal128(
            Some(15),
            15,
            1,
        )));
        assert!(expr_to_filter(&narrow, &s).is_none());
        let int = cast(col("i"), DataType::Decimal128(11, 1)).lt(lit(ScalarValue::Decimal128(
            Some(55),
            11,
            1,
        )));
        assert_eq!(expr_to_filter(&int, &s).unwrap().to_string(), "i < 5.5");
        let too_small = cast(col("i"), DataType::Decimal128(10, 1));
        assert!(expr_to_filter(&too_small.eq(lit(1)), &s).is_none());
    }
}
