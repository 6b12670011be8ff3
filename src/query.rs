//! The unified query model: [`Query`] holds typed filters, sort keys, limit, offset and a
//! projection. Every backend gets the same `Query` — from the record API or translated from SQL
//! by [`crate::pushdown`] — and renders it once into its native request.
//!
//! Filters follow SQL semantics: a comparison with NULL is unknown, so `x = NULL` and
//! `x != NULL` match nothing, `x NOT IN (1, NULL)` matches nothing, and `NOT` of an unknown is
//! unknown. Use `EXISTS` / `NOT EXISTS` to test for NULL (or a missing field).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::record::Value;

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    NotIn,
    /// SQL LIKE: `%` any run, `_` one character, `\` escapes the next character.
    Like,
    /// Regular expression match (Rust `regex` syntax, unanchored, case-sensitive).
    Regex,
    /// The field has a non-NULL value.
    Exists,
    /// The field is NULL or missing.
    NotExists,
    /// Full-text `match` of the text (a search server's analysed field; SQL `match(col, 'text')`).
    Match,
    /// Full-text phrase match (`match_phrase(col, 'text')`).
    MatchPhrase,
    /// A query-string query (`query_string('…')` on every field, field `*`, or
    /// `query_string(col, '…')`).
    QueryString,
}

impl Operator {
    /// All operators.
    pub const ALL: [Operator; 15] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Gt,
        Operator::Ge,
        Operator::Lt,
        Operator::Le,
        Operator::In,
        Operator::NotIn,
        Operator::Like,
        Operator::Regex,
        Operator::Exists,
        Operator::NotExists,
        Operator::Match,
        Operator::MatchPhrase,
        Operator::QueryString,
    ];

    /// The seed's spelling: `=`, `!=`, `>`, `>=`, `<`, `<=`, `IN`, `NOT IN`, `LIKE`, `REGEX`,
    /// `EXISTS`, `NOT EXISTS`.
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::Ne => "!=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::In => "IN",
            Operator::NotIn => "NOT IN",
            Operator::Like => "LIKE",
            Operator::Regex => "REGEX",
            Operator::Exists => "EXISTS",
            Operator::NotExists => "NOT EXISTS",
            Operator::Match => "MATCH",
            Operator::MatchPhrase => "MATCH_PHRASE",
            Operator::QueryString => "QUERY_STRING",
        }
    }

    /// Does this operator take a list of values?
    pub fn takes_list(self) -> bool {
        matches!(self, Operator::In | Operator::NotIn)
    }

    /// Is this a full-text search operator (evaluated only by a search server)?
    pub fn is_fulltext(self) -> bool {
        matches!(
            self,
            Operator::Match | Operator::MatchPhrase | Operator::QueryString
        )
    }

    /// Does this operator take no value?
    pub fn takes_no_value(self) -> bool {
        matches!(self, Operator::Exists | Operator::NotExists)
    }

    /// The operator with its operands swapped (`5 < x` is `x > 5`).
    pub fn flipped(self) -> Option<Operator> {
        Some(match self {
            Operator::Eq => Operator::Eq,
            Operator::Ne => Operator::Ne,
            Operator::Gt => Operator::Lt,
            Operator::Ge => Operator::Le,
            Operator::Lt => Operator::Gt,
            Operator::Le => Operator::Ge,
            _ => return None,
        })
    }
}

impl FromStr for Operator {
    type Err = Error;

    /// Parses the seed's strings and the design plan's names (`EQ`, `NOT_IN`, …), any case.
    fn from_str(s: &str) -> Result<Self> {
        let norm = s
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase();
        Ok(match norm.as_str() {
            "=" | "==" | "EQ" => Operator::Eq,
            "!=" | "<>" | "NEQ" | "NE" => Operator::Ne,
            ">" | "GT" => Operator::Gt,
            ">=" | "GTE" | "GE" => Operator::Ge,
            "<" | "LT" => Operator::Lt,
            "<=" | "LTE" | "LE" => Operator::Le,
            "IN" => Operator::In,
            "NOT IN" | "NOT_IN" => Operator::NotIn,
            "LIKE" => Operator::Like,
            "REGEX" | "~" => Operator::Regex,
            "EXISTS" => Operator::Exists,
            "NOT EXISTS" | "NOT_EXISTS" => Operator::NotExists,
            "MATCH" => Operator::Match,
            "MATCH_PHRASE" | "MATCH PHRASE" => Operator::MatchPhrase,
            "QUERY_STRING" | "QUERY STRING" => Operator::QueryString,
            _ => {
                return Err(Error::query(format!(
                    "unknown operator '{s}'; expected one of =, !=, >, >=, <, <=, IN, NOT IN, LIKE, REGEX, EXISTS, NOT EXISTS, MATCH, MATCH_PHRASE, QUERY_STRING"
                )));
            }
        })
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// The right-hand side of a filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Operand {
    /// For EXISTS / NOT EXISTS.
    None,
    One(Value),
    /// For IN / NOT IN.
    List(Vec<Value>),
}

impl<T: Into<Value>> From<T> for Operand {
    fn from(v: T) -> Self {
        Operand::One(v.into())
    }
}

impl<T: Into<Value>> From<Vec<T>> for Operand
where
    T: Clone,
{
    fn from(v: Vec<T>) -> Self {
        Operand::List(v.into_iter().map(Into::into).collect())
    }
}

/// One condition: `field op value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub field: String,
    pub op: Operator,
    pub operand: Operand,
}

impl Filter {
    /// A condition, checked for the operator's arity.
    pub fn new(
        field: impl Into<String>,
        op: Operator,
        operand: impl Into<Operand>,
    ) -> Result<Self> {
        let field = field.into();
        let operand = match (op, operand.into()) {
            (op, Operand::None) if op.takes_no_value() => Operand::None,
            (op, _) if op.takes_no_value() => Operand::None,
            (op, Operand::List(l)) if op.takes_list() => Operand::List(l),
            (op, Operand::One(v)) if op.takes_list() => {
                return Err(Error::query(format!(
                    "operator {op} on field '{field}' needs a list of values, got the single value {v}"
                )));
            }
            (op, Operand::One(v)) => {
                if matches!(
                    op,
                    Operator::Like
                        | Operator::Regex
                        | Operator::Match
                        | Operator::MatchPhrase
                        | Operator::QueryString
                ) {
                    if !matches!(v, Value::String(_) | Value::Null) {
                        return Err(Error::query(format!(
                            "operator {op} on field '{field}' needs a string pattern, got {} {v}",
                            v.kind_name()
                        )));
                    }
                    if let (Operator::Regex, Value::String(p)) = (op, &v) {
                        regex::Regex::new(p).map_err(|e| {
                            Error::query(format!(
                                "invalid regular expression for field '{field}': {e}"
                            ))
                        })?;
                    }
                }
                Operand::One(v)
            }
            (op, other) => {
                return Err(Error::query(format!(
                    "operator {op} on field '{field}' takes one value, got {other:?}"
                )));
            }
        };
        Ok(Filter { field, op, operand })
    }

    /// The single value, if any.
    pub fn value(&self) -> Option<&Value> {
        match &self.operand {
            Operand::One(v) => Some(v),
            _ => None,
        }
    }

    /// The list of values, if any.
    pub fn values(&self) -> &[Value] {
        match &self.operand {
            Operand::List(l) => l,
            _ => &[],
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", quote_ident(&self.field), self.op)?;
        match &self.operand {
            Operand::None => Ok(()),
            Operand::One(v) => write!(f, " {v}"),
            Operand::List(l) => {
                f.write_str(" (")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Quotes an identifier for display when it is not a plain lower-case name.
pub fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A boolean combination of conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FilterExpr {
    Cond(Filter),
    And(Vec<FilterExpr>),
    Or(Vec<FilterExpr>),
    Not(Box<FilterExpr>),
    /// A constant: TRUE, FALSE or NULL (unknown). DataFusion's simplifier leaves these behind,
    /// e.g. `x = NULL OR y = 1` becomes `NULL OR y = 1`.
    Const(Option<bool>),
}

impl FilterExpr {
    /// Every field the expression reads.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit(&mut |f| out.push(f.field.as_str()));
        out
    }

    /// Calls `f` on every condition.
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Filter)) {
        match self {
            FilterExpr::Cond(c) => f(c),
            FilterExpr::And(v) | FilterExpr::Or(v) => v.iter().for_each(|e| e.visit(f)),
            FilterExpr::Not(e) => e.visit(f),
            FilterExpr::Const(_) => {}
        }
    }
}

impl From<Filter> for FilterExpr {
    fn from(f: Filter) -> Self {
        FilterExpr::Cond(f)
    }
}

impl fmt::Display for FilterExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterExpr::Cond(c) => write!(f, "{c}"),
            FilterExpr::And(v) | FilterExpr::Or(v) => {
                let sep = if matches!(self, FilterExpr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                f.write_str("(")?;
                for (i, e) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(")")
            }
            FilterExpr::Not(e) => write!(f, "NOT {e}"),
            FilterExpr::Const(Some(true)) => f.write_str("TRUE"),
            FilterExpr::Const(Some(false)) => f.write_str("FALSE"),
            FilterExpr::Const(None) => f.write_str("NULL"),
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl FromStr for SortOrder {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ASC" => Ok(SortOrder::Asc),
            "DESC" => Ok(SortOrder::Desc),
            _ => Err(Error::query(format!(
                "unknown sort order '{s}'; expected ASC or DESC"
            ))),
        }
    }
}

/// One sort key. NULLs sort last for ASC and first for DESC unless set otherwise (the
/// PostgreSQL and DataFusion default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortSpec {
    pub field: String,
    pub order: SortOrder,
    pub nulls_first: bool,
}

impl SortSpec {
    pub fn new(field: impl Into<String>, order: SortOrder) -> Self {
        SortSpec {
            field: field.into(),
            order,
            nulls_first: order == SortOrder::Desc,
        }
    }
}

impl fmt::Display for SortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} NULLS {}",
            quote_ident(&self.field),
            if self.order == SortOrder::Asc {
                "ASC"
            } else {
                "DESC"
            },
            if self.nulls_first { "FIRST" } else { "LAST" }
        )
    }
}

/// A query: filters (all must hold), sort keys, offset, limit and projected fields.
/// Serializable (serde), like everything in it, so a scan's query can cross process
/// boundaries (distributed execution).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Query {
    pub filters: Vec<FilterExpr>,
    pub sort: Vec<SortSpec>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    /// The fields to return, in order; None for all.
    pub fields: Option<Vec<String>>,
    /// Also return each row's record id, as a last non-NULL Utf8 column named [`ROW_ID`]
    /// (the id [`Database::delete_ids`](crate::Database::delete_ids) and
    /// [`Database::update_ids`](crate::Database::update_ids) take). Only for backends whose
    /// [`Database::supports_row_ids`](crate::Database::supports_row_ids) is true.
    pub row_ids: bool,
}

/// The name of the record-id column a scan adds when [`Query::row_ids`] is set. Reserved: a
/// collection cannot have a column of this name and be the target of a DELETE or UPDATE that
/// the backend does not evaluate itself.
pub const ROW_ID: &str = "_dk_row_id";

impl Query {
    /// An empty query: every record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `field op value`. Panics never: an invalid filter is kept as an error for
    /// [`Query::try_filter`]; this form is for literals known to be valid and returns the
    /// query unchanged plus a recorded error otherwise. Prefer [`Query::try_filter`] for
    /// user input.
    pub fn filter(self, field: &str, op: Operator, value: impl Into<Operand>) -> Result<Self> {
        let f = Filter::new(field, op, value)?;
        Ok(self.where_expr(FilterExpr::Cond(f)))
    }

    /// Adds `field op value` with the operator given as a seed string (`">="`, `"NOT IN"`, …).
    pub fn try_filter(self, field: &str, op: &str, value: impl Into<Operand>) -> Result<Self> {
        let op: Operator = op.parse()?;
        self.filter(field, op, value)
    }

    /// Adds a whole filter expression (AND-ed with the others).
    pub fn where_expr(mut self, e: FilterExpr) -> Self {
        self.filters.push(e);
        self
    }

    /// Adds a sort key.
    pub fn sort(mut self, field: &str, order: SortOrder) -> Self {
        self.sort.push(SortSpec::new(field, order));
        self
    }

    /// Sets the limit.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Sets the offset.
    pub fn offset(mut self, n: usize) -> Self {
        self.offset = Some(n);
        self
    }

    /// Selects fields.
    pub fn project<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.fields = Some(fields.into_iter().map(Into::into).collect());
        self
    }

    /// The filters as one expression (None when there are none).
    pub fn filter_expr(&self) -> Option<FilterExpr> {
        match self.filters.len() {
            0 => None,
            1 => Some(self.filters[0].clone()),
            _ => Some(FilterExpr::And(self.filters.clone())),
        }
    }
}

impl fmt::Display for Query {
    /// A compact, SQL-like rendering used in EXPLAIN output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut select: Vec<String> = match &self.fields {
            Some(fields) => fields.iter().map(|s| quote_ident(s)).collect(),
            None => vec!["*".into()],
        };
        if self.row_ids {
            select.push(ROW_ID.into());
        }
        parts.push(format!("SELECT {}", select.join(", ")));
        if !self.filters.is_empty() {
            parts.push(format!(
                "WHERE {}",
                self.filters
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ));
        }
        if !self.sort.is_empty() {
            parts.push(format!(
                "ORDER BY {}",
                self.sort
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(l) = self.limit {
            parts.push(format!("LIMIT {l}"));
        }
        if let Some(o) = self.offset {
            parts.push(format!("OFFSET {o}"));
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_parse_from_seed_strings() {
        for op in Operator::ALL {
            assert_eq!(op.symbol().parse::<Operator>().unwrap(), op);
        }
        assert_eq!("not_in".parse::<Operator>().unwrap(), Operator::NotIn);
        assert_eq!("GTE".parse::<Operator>().unwrap(), Operator::Ge);
        let e = "=~=".parse::<Operator>().unwrap_err();
        assert!(e.to_string().contains("unknown operator '=~='"), "{e}");
    }

    #[test]
    fn arity_is_checked() {
        assert!(Filter::new("a", Operator::In, 5).is_err());
        assert!(Filter::new("a", Operator::Eq, vec![1, 2]).is_err());
        assert!(Filter::new("a", Operator::Like, 3).is_err());
        assert!(Filter::new("a", Operator::Regex, "(").is_err());
        assert!(Filter::new("a", Operator::Exists, Operand::None).is_ok());
    }

    #[test]
    fn queries_round_trip_through_serde() {
        let q = Query::new()
            .try_filter("age", ">=", 25)
            .unwrap()
            .try_filter("name", "NOT IN", vec!["a", "b"])
            .unwrap()
            .try_filter("x", "EXISTS", Operand::None)
            .unwrap()
            .where_expr(FilterExpr::Or(vec![
                FilterExpr::Not(Box::new(FilterExpr::Const(None))),
                FilterExpr::Cond(
                    Filter::new("t", Operator::Eq, crate::record::Value::Float(1.5)).unwrap(),
                ),
            ]))
            .sort("age", SortOrder::Desc)
            .offset(3)
            .limit(10)
            .project(["age", "name"]);
        let mut q = q;
        q.row_ids = true;
        let json = serde_json::to_string(&q).unwrap();
        let back: Query = serde_json::from_str(&json).unwrap();
        assert_eq!(back, q);
        assert_eq!(back.to_string(), q.to_string());
    }

    #[test]
    fn display_is_sql_like() {
        let q = Query::new()
            .try_filter("age", ">=", 25)
            .unwrap()
            .try_filter("Name", "LIKE", "Jo'%")
            .unwrap()
            .sort("age", SortOrder::Desc)
            .limit(10);
        assert_eq!(
            q.to_string(),
            "SELECT * WHERE age >= 25 AND \"Name\" LIKE 'Jo''%' ORDER BY age DESC NULLS FIRST LIMIT 10"
        );
    }
}
