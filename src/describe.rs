//! What the engine tells about its tables, in SQL's words: the tables of every attached
//! backend once each (`SHOW TABLES`, the REPL's `\d`) and a table's columns with SQL types,
//! nullability and key (`DESCRIBE t`, `SHOW COLUMNS FROM t`, `\d t`). DataFusion's own
//! answers list each table under every name the engine's catalog gives it and show Arrow type
//! names (`Utf8View`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::common::{Constraint, TableReference};
use datafusion::logical_expr::TableType;

use crate::catalog::BackendSchema;
use crate::engine::{Engine, user_names};
use crate::error::{Error, Result};

/// The SQL name of an Arrow type (PostgreSQL's where it has one, DuckDB's otherwise).
pub fn sql_type(t: &DataType) -> String {
    use DataType as D;
    match t {
        D::Null => "NULL".into(),
        D::Boolean => "BOOLEAN".into(),
        D::Int8 => "TINYINT".into(),
        D::Int16 => "SMALLINT".into(),
        D::Int32 => "INTEGER".into(),
        D::Int64 => "BIGINT".into(),
        D::UInt8 => "UTINYINT".into(),
        D::UInt16 => "USMALLINT".into(),
        D::UInt32 => "UINTEGER".into(),
        D::UInt64 => "UBIGINT".into(),
        D::Float16 | D::Float32 => "REAL".into(),
        D::Float64 => "DOUBLE PRECISION".into(),
        D::Utf8 | D::LargeUtf8 | D::Utf8View => "TEXT".into(),
        D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => "BYTEA".into(),
        D::Date32 | D::Date64 => "DATE".into(),
        D::Time32(_) | D::Time64(_) => "TIME".into(),
        D::Timestamp(unit, tz) => {
            let precision = match unit {
                TimeUnit::Second => "(0)",
                TimeUnit::Millisecond => "(3)",
                TimeUnit::Microsecond => "",
                TimeUnit::Nanosecond => "(9)",
            };
            if tz.is_some() {
                format!("TIMESTAMP{precision} WITH TIME ZONE")
            } else {
                format!("TIMESTAMP{precision}")
            }
        }
        D::Duration(_) | D::Interval(_) => "INTERVAL".into(),
        D::Decimal32(p, s) | D::Decimal64(p, s) => format!("DECIMAL({p},{s})"),
        D::Decimal128(p, s) | D::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        D::List(f) | D::LargeList(f) | D::ListView(f) | D::LargeListView(f) => {
            format!("{}[]", sql_type(f.data_type()))
        }
        D::FixedSizeList(f, n) => format!("{}[{n}]", sql_type(f.data_type())),
        D::Struct(fields) => format!(
            "STRUCT({})",
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), sql_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        D::Map(entries, _) => match entries.data_type() {
            D::Struct(kv) if kv.len() == 2 => format!(
                "MAP({}, {})",
                sql_type(kv[0].data_type()),
                sql_type(kv[1].data_type())
            ),
            other => format!("MAP({other})"),
        },
        D::Dictionary(_, v) => sql_type(v),
        D::RunEndEncoded(_, v) => sql_type(v.data_type()),
        other => other.to_string(),
    }
}

fn text_batch(names: &[&str], columns: Vec<Vec<String>>) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    Ok(RecordBatch::try_new(schema, arrays)?)
}

fn table_type_name(t: TableType) -> &'static str {
    match t {
        TableType::Base => "table",
        TableType::View => "view",
        TableType::Temporary => "temporary",
    }
}

impl Engine {
    /// The tables of every attached backend (or of one): `backend`, `schema`, `name`,
    /// `type`, each table once.
    pub async fn list_tables(&self, backend: Option<&str>) -> Result<RecordBatch> {
        let mut names: Vec<String> = self.backends().into_iter().map(|(n, _)| n).collect();
        if let Some(b) = backend {
            if !names.iter().any(|n| n == b) {
                return Err(Error::not_found(format!(
                    "no backend is attached as '{b}'; attached: {}",
                    names.join(", ")
                )));
            }
            names.retain(|n| n == b);
        }
        names.sort();
        let mut cols: [Vec<String>; 4] = Default::default();
        for name in names {
            let Some(catalog) = self.context().catalog(&name) else {
                continue;
            };
            let mut schemas = catalog.schema_names();
            schemas.sort();
            for s in schemas {
                let Some(schema) = catalog.schema(&s) else {
                    continue;
                };
                let any: &dyn std::any::Any = schema.as_ref();
                let backend_schema = any.downcast_ref::<BackendSchema>();
                let mut tables = schema.table_names();
                tables.sort();
                for t in tables {
                    let kind = match backend_schema {
                        Some(bs) if !bs.has_overlay(&t) => "table",
                        _ => match schema.table(&t).await {
                            Ok(Some(p)) => table_type_name(p.table_type()),
                            _ => "table",
                        },
                    };
                    cols[0].push(name.clone());
                    cols[1].push(s.clone());
                    cols[2].push(t);
                    cols[3].push(kind.to_string());
                }
            }
        }
        let [a, b, c, d] = cols;
        text_batch(&["backend", "schema", "name", "type"], vec![a, b, c, d])
    }

    /// A table's columns: `column_name`, `column_type` (SQL), `null` (`YES`/`NO`), `key`
    /// (`PRI` for the primary key).
    pub async fn describe(&self, table: &str) -> Result<RecordBatch> {
        let reference = TableReference::parse_str(table);
        let provider = self
            .context()
            .table_provider(reference)
            .await
            .map_err(|e| Error::from(e).map_message(user_names))?;
        describe_provider(provider.as_ref())
    }
}

fn describe_provider(provider: &dyn TableProvider) -> Result<RecordBatch> {
    let schema = provider.schema();
    let key: Vec<usize> = provider
        .constraints()
        .and_then(|c| {
            c.iter().find_map(|c| match c {
                Constraint::PrimaryKey(cols) => Some(cols.clone()),
                Constraint::Unique(_) => None,
            })
        })
        .unwrap_or_default();
    let mut cols: [Vec<String>; 4] = Default::default();
    for (i, f) in schema.fields().iter().enumerate() {
        let is_key = key.contains(&i);
        cols[0].push(f.name().clone());
        cols[1].push(sql_type(f.data_type()));
        cols[2].push(
            if f.is_nullable() && !is_key {
                "YES"
            } else {
                "NO"
            }
            .to_string(),
        );
        cols[3].push(if is_key { "PRI" } else { "" }.to_string());
    }
    let [a, b, c, d] = cols;
    text_batch(
        &["column_name", "column_type", "null", "key"],
        vec![a, b, c, d],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(b: &RecordBatch) -> Vec<Vec<String>> {
        (0..b.num_rows())
            .map(|r| {
                b.columns()
                    .iter()
                    .map(|c| {
                        c.as_any()
                            .downcast_ref::<StringArray>()
                            .map(|s| s.value(r).to_string())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn sql_names_for_arrow_types() {
        assert_eq!(sql_type(&DataType::Utf8View), "TEXT");
        assert_eq!(sql_type(&DataType::Int64), "BIGINT");
        assert_eq!(
            sql_type(&DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            )),
            "TIMESTAMP WITH TIME ZONE"
        );
        assert_eq!(sql_type(&DataType::Decimal128(10, 2)), "DECIMAL(10,2)");
        assert_eq!(
            sql_type(&DataType::List(Arc::new(Field::new(
                "item",
                DataType::Int32,
                true
            )))),
            "INTEGER[]"
        );
    }

    #[tokio::test]
    async fn tables_once_and_keys_not_null() {
        let e = Engine::new();
        e.execute("CREATE TABLE d_t (id INT PRIMARY KEY, name TEXT)")
            .await
            .unwrap();
        e.execute("CREATE VIEW d_v AS SELECT name FROM d_t")
            .await
            .unwrap();
        let t = e.list_tables(None).await.unwrap();
        let rows = texts(&t);
        assert_eq!(
            rows,
            vec![
                vec!["memory", "public", "d_t", "table"],
                vec!["memory", "public", "d_v", "view"],
            ]
        );
        let d = e.describe("d_t").await.unwrap();
        assert_eq!(
            texts(&d),
            vec![
                vec!["id", "INTEGER", "NO", "PRI"],
                vec!["name", "TEXT", "YES", ""],
            ]
        );
        let missing = e.describe("nope").await.unwrap_err().to_string();
        assert!(missing.contains("'nope'"), "{missing}");
        assert!(!missing.contains("dataknobs."), "{missing}");
    }
}
