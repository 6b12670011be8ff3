//! Renders the query model back into DataFusion expressions, so a backend that filters locally
//! (memory, files) evaluates filters with DataFusion's own kernels and type coercion — exactly
//! what SQL would have computed — and checks record-API filters against the schema first.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, Operator as DfOp, binary_expr, lit};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::query::{Filter, FilterExpr, Operand, Operator};
use crate::record::{FieldType, Value};

/// A DataFusion literal for a value.
pub fn value_to_scalar(v: &Value) -> ScalarValue {
    match v {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Int(i) => ScalarValue::Int64(Some(*i)),
        Value::Float(f) => ScalarValue::Float64(Some(*f)),
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Json(j) => ScalarValue::Utf8(Some(j.to_string())),
        Value::Binary(b) => ScalarValue::Binary(Some(b.clone())),
        Value::Decimal(d) => {
            // The smallest precision that holds the digits (Arrow requires scale ≤ precision).
            let precision = d.digits().max(u8::try_from(d.scale).unwrap_or(0)).min(38);
            ScalarValue::Decimal128(Some(d.unscaled), precision, d.scale)
        }
        Value::Date(d) => ScalarValue::Date32(
            i32::try_from(
                d.signed_duration_since(chrono::DateTime::UNIX_EPOCH.date_naive())
                    .num_days(),
            )
            .ok(),
        ),
        Value::DateTime(d) => {
            if d.timestamp_subsec_nanos() % 1000 != 0
                && let Some(ns) = d.timestamp_nanos_opt()
            {
                return ScalarValue::TimestampNanosecond(Some(ns), Some("UTC".into()));
            }
            ScalarValue::TimestampMicrosecond(Some(d.timestamp_micros()), Some("UTC".into()))
        }
    }
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// A filter expression as a DataFusion expression over unqualified columns.
pub fn to_df_expr(f: &FilterExpr) -> Expr {
    to_expr(f, None)
}

/// [`to_df_expr`] with the columns' types known: a midnight datetime compared with a DATE
/// column becomes a DATE literal, so the column is not cast to a timestamp (which fails for
/// dates outside 1677–2262, the range of nanosecond timestamps).
pub fn to_df_expr_over(f: &FilterExpr, schema: &Schema) -> Expr {
    to_expr(f, Some(schema))
}

fn to_expr(f: &FilterExpr, schema: Option<&Schema>) -> Expr {
    match f {
        FilterExpr::Cond(c) => cond_to_expr(c, schema),
        FilterExpr::And(v) => v
            .iter()
            .map(|e| to_expr(e, schema))
            .reduce(Expr::and)
            .unwrap_or_else(|| lit(true)),
        FilterExpr::Or(v) => v
            .iter()
            .map(|e| to_expr(e, schema))
            .reduce(Expr::or)
            .unwrap_or_else(|| lit(false)),
        FilterExpr::Not(e) => datafusion::logical_expr::not(to_expr(e, schema)),
        FilterExpr::Const(b) => lit(ScalarValue::Boolean(*b)),
    }
}

/// The literal for `v` compared with a column of type `ty` (when known).
fn scalar_for(v: &Value, ty: Option<&DataType>) -> ScalarValue {
    if let (Value::DateTime(d), Some(DataType::Date32)) = (v, ty)
        && let Some(Ok(days)) = crate::record::whole_epoch_days(d).map(i32::try_from)
    {
        return ScalarValue::Date32(Some(days));
    }
    value_to_scalar(v)
}

fn cond_to_expr(f: &Filter, schema: Option<&Schema>) -> Expr {
    let c = column(&f.field);
    let ty = schema
        .and_then(|s| s.field_with_name(&f.field).ok())
        .map(|fl| fl.data_type());
    let one = || match &f.operand {
        Operand::One(v) => lit(scalar_for(v, ty)),
        _ => lit(ScalarValue::Null),
    };
    let list = || {
        f.values()
            .iter()
            .map(|v| lit(scalar_for(v, ty)))
            .collect::<Vec<_>>()
    };
    match f.op {
        Operator::Eq => c.eq(one()),
        Operator::Ne => c.not_eq(one()),
        Operator::Gt => c.gt(one()),
        Operator::Ge => c.gt_eq(one()),
        Operator::Lt => c.lt(one()),
        Operator::Le => c.lt_eq(one()),
        Operator::In => c.in_list(list(), false),
        Operator::NotIn => c.in_list(list(), true),
        Operator::Like => c.like(one()),
        Operator::Regex => binary_expr(c, DfOp::RegexMatch, one()),
        Operator::Exists => c.is_not_null(),
        Operator::NotExists => c.is_null(),
        // Only a search server answers these: evaluating the function is the error.
        Operator::Match | Operator::MatchPhrase | Operator::QueryString => {
            let name = match f.op {
                Operator::Match => "match",
                Operator::MatchPhrase => "match_phrase",
                _ => "query_string",
            };
            let udf = crate::fulltext::functions()
                .into_iter()
                .find(|u| u.name() == name)
                .map(|u| u.as_ref().clone());
            match udf {
                Some(u) if f.field == crate::fulltext::ALL_FIELDS => u.call(vec![one()]),
                Some(u) => u.call(vec![c, one()]),
                None => lit(ScalarValue::Null),
            }
        }
    }
}

/// Checks a record-API filter against the schema: the field exists and each value fits the
/// column's type. SQL filters are typed by DataFusion already and pass trivially.
pub fn check_filter(f: &FilterExpr, schema: &Schema, collection: &str) -> Result<()> {
    let mut result = Ok(());
    f.visit(&mut |c| {
        if result.is_ok() {
            result = check_cond(c, schema, collection);
        }
    });
    result
}

fn check_cond(c: &Filter, schema: &Schema, collection: &str) -> Result<()> {
    let field = schema.field_with_name(&c.field).map_err(|_| {
        Error::query(format!(
            "unknown field '{}' in filter on '{collection}' (fields: {})",
            c.field,
            crate::record::column_list(schema)
        ))
    })?;
    let ty = FieldType::from_arrow(field);
    let textual = matches!(
        field.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if matches!(c.op, Operator::Like | Operator::Regex) && !textual {
        return Err(Error::type_error(format!(
            "filter {c}: {} needs a text column, but '{}' is {ty}",
            c.op, c.field
        )));
    }
    let values: Vec<&Value> = match &c.operand {
        Operand::None => vec![],
        Operand::One(v) => vec![v],
        Operand::List(l) => l.iter().collect(),
    };
    for v in values {
        let ok = match (v, ty) {
            (Value::Null, _) => true,
            (
                Value::Int(_) | Value::Float(_) | Value::Decimal(_),
                FieldType::Integer | FieldType::Float,
            ) => true,
            (Value::Date(_), FieldType::DateTime) => true,
            (Value::String(_), FieldType::String | FieldType::Text | FieldType::Json) => true,
            (Value::Json(_), FieldType::Json) => true,
            (Value::Bool(_), FieldType::Boolean) => true,
            (Value::DateTime(_), FieldType::DateTime) => true,
            (Value::String(s), FieldType::DateTime) => crate::record::parse_datetime(s).is_some(),
            (Value::Binary(_), FieldType::Binary) => true,
            _ => false,
        };
        if !ok {
            return Err(Error::type_error(format!(
                "filter {c}: value {v} ({}) does not fit column '{}' of type {ty}",
                v.kind_name(),
                c.field
            )));
        }
    }
    Ok(())
}

/// Record-API values compared with a DATETIME column may be strings: turn them into datetimes.
pub fn normalize_filter(f: &FilterExpr, schema: &Schema) -> FilterExpr {
    match f {
        FilterExpr::Cond(c) => {
            let is_dt = schema
                .field_with_name(&c.field)
                .map(|fl| FieldType::from_arrow(fl) == FieldType::DateTime)
                .unwrap_or(false);
            if !is_dt {
                return f.clone();
            }
            let fix = |v: &Value| match v {
                Value::String(s) => crate::record::parse_datetime(s)
                    .map(Value::DateTime)
                    .unwrap_or_else(|| v.clone()),
                other => other.clone(),
            };
            let operand = match &c.operand {
                Operand::One(v) => Operand::One(fix(v)),
                Operand::List(l) => Operand::List(l.iter().map(fix).collect()),
                Operand::None => Operand::None,
            };
            FilterExpr::Cond(Filter {
                field: c.field.clone(),
                op: c.op,
                operand,
            })
        }
        FilterExpr::And(v) => {
            FilterExpr::And(v.iter().map(|e| normalize_filter(e, schema)).collect())
        }
        FilterExpr::Or(v) => {
            FilterExpr::Or(v.iter().map(|e| normalize_filter(e, schema)).collect())
        }
        FilterExpr::Not(e) => FilterExpr::Not(Box::new(normalize_filter(e, schema))),
        FilterExpr::Const(b) => FilterExpr::Const(*b),
    }
}

static PLANNER: LazyLock<SessionState> = LazyLock::new(|| SessionContext::new().state());

/// Compiles filters (AND-ed) into a physical predicate over `schema`, with DataFusion's type
/// coercion. None when there are no filters.
pub fn compile_predicate(
    filters: &[FilterExpr],
    schema: &Schema,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    let Some(expr) = filters
        .iter()
        .map(|f| to_df_expr_over(f, schema))
        .reduce(Expr::and)
    else {
        return Ok(None);
    };
    compile_expr(expr, schema).map(Some)
}

/// Compiles any expression over `schema` (used for UPDATE assignments too).
pub fn compile_expr(expr: Expr, schema: &Schema) -> Result<Arc<dyn PhysicalExpr>> {
    let df_schema = DFSchema::try_from(schema.clone())?;
    Ok(PLANNER.create_physical_expr(expr, &df_schema)?)
}

/// Evaluates a compiled predicate: true rows are kept; false and NULL are dropped.
pub fn evaluate_mask(
    predicate: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
) -> Result<BooleanArray> {
    let value = predicate.evaluate(batch)?;
    let array = value.into_array(batch.num_rows())?;
    let mask = array
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| {
            Error::internal(format!(
                "filter evaluated to {} instead of boolean",
                array.data_type()
            ))
        })?;
    Ok(mask.clone())
}
