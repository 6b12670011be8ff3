//! What `describe` found about a PostgreSQL table: its columns, key, kind, size, and how its
//! rows are addressed by record id.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};

use super::sql::{self, Columns};
use super::types::PgColumn;

/// What `describe` found.
#[derive(Debug, Clone)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    pub columns: Vec<PgColumn>,
    pub key: Option<String>,
    /// `r` table, `v` view, `m` materialized view, `p` partitioned table, `f` foreign table.
    pub relkind: String,
    pub pages: u64,
    /// The table has dataknobs' hidden row id column (tables created without a key).
    pub rowid: bool,
}

/// The hidden identity column that gives rows of a keyless dataknobs table stable ids.
pub const ROWID: &str = "_dk_rowid";

/// How rows of a table are addressed by record id: the SQL naming the id in the table, the
/// PostgreSQL type an id (text) is cast to, and whether it can address rows at all.
pub(super) struct RowIdSql {
    pub(super) column: String,
    pub(super) type_name: String,
}

impl Relation {
    /// The row id: the primary key, dataknobs' hidden row id, or the row address (ctid) of a
    /// plain table; None where none is unique (views, partitioned tables without a key).
    pub(super) fn row_id(&self) -> Option<RowIdSql> {
        if let Some(key) = &self.key {
            let c = self.columns.iter().find(|c| &c.name == key)?;
            return Some(RowIdSql {
                column: sql::ident(key),
                type_name: c.type_name.clone(),
            });
        }
        if self.rowid {
            return Some(RowIdSql {
                column: sql::ident(ROWID),
                type_name: "bigint".into(),
            });
        }
        (self.relkind == "r").then(|| RowIdSql {
            column: "ctid".into(),
            type_name: "tid".into(),
        })
    }

    pub(super) fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(PgColumn::arrow_field)
                .collect::<Vec<_>>(),
        ))
    }

    pub(super) fn by_name(&self) -> Columns<'_> {
        self.columns.iter().map(|c| (c.name.as_str(), c)).collect()
    }

    pub(super) fn qualified(&self) -> String {
        sql::qualified(&self.schema, &self.name)
    }
}
