//! Columns a store fills itself when an INSERT leaves them out (PostgreSQL's DEFAULT,
//! identity and generated columns).
//!
//! DataFusion's INSERT planner asks the table for each omitted column's default
//! ([`TableProvider::get_column_default`](datafusion::catalog::TableProvider)). For such a
//! column a [`DatabaseTable`](super::DatabaseTable) answers with a marker: a call of
//! [`StoreDefaultMarker`], which never evaluates. [`crate::dml::DmlRule`] then takes the
//! marked columns out of the INSERT's input, so the rows reach the store without them and the
//! store fills them by its own rules (a sequence, `now()`, a generated expression). It also
//! refuses a value given for a column only the store may write.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::database::{Database, Location, StoreDefault};

/// Stands for "the store's own value" of one column in an INSERT's input.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StoreDefaultMarker {
    table: String,
    column: String,
    data_type: DataType,
    signature: Signature,
}

impl ScalarUDFImpl for StoreDefaultMarker {
    fn name(&self) -> &str {
        "dataknobs_store_default"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.data_type.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(DataFusionError::Plan(format!(
            "the default of column '{}' of {} is computed by the backend when a row is \
             inserted without it; it has no value anywhere else",
            self.column, self.table
        )))
    }
}

/// The marker expression for every column `db` fills itself, by column name.
pub(super) fn markers(db: &dyn Database, location: &Location) -> HashMap<String, Expr> {
    let schema = db.schema();
    db.store_defaults()
        .into_iter()
        .filter_map(|(column, _)| {
            let data_type = schema.field_with_name(&column).ok()?.data_type().clone();
            let marker = StoreDefaultMarker {
                table: location.to_string(),
                column: column.clone(),
                data_type,
                signature: Signature::nullary(Volatility::Volatile),
            };
            let udf = Arc::new(ScalarUDF::new_from_impl(marker));
            Some((
                column,
                Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![])),
            ))
        })
        .collect()
}

/// Is `e` (under aliases and casts) a store-default marker?
pub fn is_marker(e: &Expr) -> bool {
    match e {
        Expr::Alias(a) => is_marker(&a.expr),
        Expr::Cast(c) => is_marker(&c.expr),
        Expr::TryCast(c) => is_marker(&c.expr),
        Expr::ScalarFunction(f) => {
            let any: &dyn std::any::Any = f.func.inner().as_ref();
            any.is::<StoreDefaultMarker>()
        }
        _ => false,
    }
}

/// The error for a value an INSERT gives to a column only the store writes, or None when
/// `kind` allows one.
pub fn refuse_value(table: &Location, column: &str, kind: StoreDefault) -> Option<crate::Error> {
    let why = match kind {
        StoreDefault::Default => return None,
        StoreDefault::Always => "it is an identity column GENERATED ALWAYS",
        StoreDefault::Generated => "it is a generated column (GENERATED ALWAYS AS … STORED)",
    };
    Some(crate::Error::query(format!(
        "cannot insert a value into column '{column}' of {table}: {why}, which the database \
         fills itself; leave the column out of the INSERT's column list"
    )))
}
