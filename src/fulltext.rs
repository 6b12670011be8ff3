//! Full-text search in SQL: `match(col, 'text')`, `match_phrase(col, 'text')`,
//! `query_string('query')` and `query_string(col, 'query')`.
//!
//! They are boolean functions DataFusion knows by name, so that they type-check and reach
//! [`crate::pushdown`], which turns them into [`Operator::Match`](crate::query::Operator) and
//! friends. A search backend (Elasticsearch/OpenSearch) answers them; anywhere else —
//! another backend, a computed column, pushdown turned off — evaluating one is a clear
//! error, never a silent FALSE.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::query::Operator;

/// One full-text function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FullText {
    name: &'static str,
    signature: Signature,
}

impl FullText {
    fn new(name: &'static str, arities: &[usize]) -> Self {
        let sigs = arities.iter().map(|n| TypeSignature::String(*n)).collect();
        FullText {
            name,
            signature: Signature::one_of(sigs, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FullText {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(DataFusionError::Execution(format!(
            "{}() is a full-text search that only an Elasticsearch/OpenSearch table can answer: \
             use it in the WHERE clause of a query on such a table, on a text column, with \
             a constant search text (it is not evaluated on other backends, in computed \
             expressions, or with dataknobs.pushdown = false)",
            self.name
        )))
    }
}

/// The functions, to register in a session.
pub fn functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::new_from_impl(FullText::new("match", &[2]))),
        Arc::new(ScalarUDF::new_from_impl(FullText::new(
            "match_phrase",
            &[2],
        ))),
        Arc::new(ScalarUDF::new_from_impl(FullText::new(
            "query_string",
            &[1, 2],
        ))),
    ]
}

/// The operator a full-text function stands for.
pub fn operator(function: &str) -> Option<Operator> {
    Some(match function {
        "match" => Operator::Match,
        "match_phrase" => Operator::MatchPhrase,
        "query_string" => Operator::QueryString,
        _ => return None,
    })
}

/// The field a `query_string` without a column searches: every field.
pub const ALL_FIELDS: &str = "*";
