//! The record API of a PostgreSQL table: ids (the key column, the hidden row id or the row
//! address), schema growth for new record fields, and the keyless paths.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;

use super::relation::{ROWID, Relation};
use super::sql::{self, Params};
use super::table::PgTable;
use super::types::Kind;
use super::write::set_list;
use super::{BACKEND, pg_error};
use crate::database::Partition;
use crate::error::{Error, Result};
use crate::query::{Filter, FilterExpr, Operator, Query};
use crate::record::{Record, Value, batch_to_records, infer_schema, records_to_batch};

impl PgTable {
    pub(super) fn key(&self) -> Result<String> {
        self.rel().key.clone().ok_or_else(|| {
            Error::unsupported(format!(
                "table {} has no single-column primary key, so records cannot be addressed by id; \
                 add one (ALTER TABLE … ADD PRIMARY KEY) or use SQL",
                self.name()
            ))
            .with_backend(BACKEND)
        })
    }

    /// A record id as a value of the key column's type.
    pub(super) fn id_value(&self, id: &str) -> Result<Value> {
        let key = self.key()?;
        self.key_value(&self.rel(), &key, id)
    }

    /// [`Self::id_value`] with the relation and key column already looked up (a batch's loop).
    fn key_value(&self, rel: &Relation, key: &str, id: &str) -> Result<Value> {
        let col = rel.columns.iter().find(|c| c.name == key);
        Ok(match col.map(|c| &c.kind) {
            Some(Kind::Int2 | Kind::Int4 | Kind::Int8) => match id.trim().parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => {
                    return Err(Error::type_error(format!(
                        "id '{id}' is not an integer, but the key column '{key}' of {} is",
                        self.name()
                    ))
                    .with_backend(BACKEND));
                }
            },
            _ => Value::String(id.to_string()),
        })
    }

    /// Adds columns for record fields the table does not have yet.
    pub(super) async fn grow(&self, records: &[Record]) -> Result<()> {
        let rel = self.rel();
        let inferred = infer_schema(records);
        let mut adds = Vec::new();
        for f in inferred.fields() {
            if rel.columns.iter().any(|c| &c.name == f.name()) {
                continue;
            }
            // A field that is only ever an untyped NULL does not decide a column type.
            let typed = records
                .iter()
                .any(|r| r.field(f.name()).is_some_and(|x| x.has_type()));
            if !typed {
                continue;
            }
            sql::check_ident(f.name())?;
            adds.push(format!(
                "ADD COLUMN IF NOT EXISTS {} {}",
                sql::ident(f.name()),
                super::types::pg_type_for(f)?
            ));
        }
        if adds.is_empty() {
            return Ok(());
        }
        let client = self.inner.client().await?;
        client
            .batch_execute(&format!(
                "ALTER TABLE {} {}",
                rel.qualified(),
                adds.join(", ")
            ))
            .await
            .map_err(|e| pg_error(&format!("cannot add columns to {}", self.name()), &e))?;
        drop(client);
        self.reload().await
    }

    pub(super) async fn reload(&self) -> Result<()> {
        let rel = self.rel();
        let fresh = self
            .inner
            .describe(&rel.schema, &rel.name)
            .await?
            .ok_or_else(|| Error::not_found(format!("table {} vanished", self.name())))?;
        *self.rel.write() = Arc::new(fresh);
        Ok(())
    }

    /// Records → one batch of the table's schema, with ids in the key column.
    pub(super) fn to_batch(&self, records: Vec<Record>) -> Result<(RecordBatch, Vec<String>)> {
        let rel = self.rel();
        let (rows, ids) = self.prepare_rows(&rel, records)?;
        let batch = records_to_batch(&rows, &rel.arrow_schema())?;
        Ok((batch, ids))
    }

    /// The records with their ids settled (given, from the key field, or generated) and set
    /// in the key field as the key column's type, fields that only hold an untyped NULL
    /// dropped; and the ids, in order. Converting them to the column types is left to
    /// [`records_to_batch`], so that a large batch can be converted a part at a time.
    pub(super) fn prepare_rows(
        &self,
        rel: &Relation,
        records: Vec<Record>,
    ) -> Result<(Vec<Record>, Vec<String>)> {
        let key = self.key()?;
        let mut ids = Vec::with_capacity(records.len());
        let mut rows = Vec::with_capacity(records.len());
        for mut r in records {
            let id = match (r.id(), r.get(&key)) {
                (Some(id), Some(v)) if !v.is_null() && v.to_text() != id => {
                    return Err(Error::query(format!(
                        "record id '{id}' disagrees with its key field {key} = {v} in {}",
                        self.name()
                    ))
                    .with_backend(BACKEND));
                }
                (Some(id), _) => id.to_string(),
                (None, Some(v)) if !v.is_null() => v.to_text(),
                _ => crate::record::new_record_id(),
            };
            strip_untyped_fields(&mut r, rel);
            let v = self.key_value(rel, &key, &id)?;
            r.set(key.as_str(), v);
            ids.push(id);
            rows.push(r);
        }
        Ok((rows, ids))
    }

    pub(super) fn key_filter(&self, id: &str) -> Result<FilterExpr> {
        let key = self.key()?;
        Ok(FilterExpr::Cond(Filter {
            field: key,
            op: Operator::Eq,
            operand: crate::query::Operand::One(self.id_value(id)?),
        }))
    }

    /// The SQL condition selecting the row of a keyless table by id: dataknobs' hidden row id
    /// when the table has one, else the row address (ctid).
    pub(super) fn row_ref(&self, id: &str) -> Result<String> {
        if self.rel().rowid {
            let n: i64 = id.trim().parse().map_err(|_| {
                Error::query(format!("'{id}' is not a record id of {}", self.name()))
                    .with_backend(BACKEND)
            })?;
            Ok(format!("\"{ROWID}\" = {n}"))
        } else {
            Ok(format!("ctid = {}", tid(id)?))
        }
    }

    /// Records of a table without a primary key get dataknobs' hidden row id (tables it
    /// created) or their row address (ctid: valid until the row is updated) as id.
    pub(super) async fn keyless_create(&self, records: Vec<Record>) -> Result<Vec<String>> {
        let rel = self.rel();
        let batch = records_to_batch(&strip_untyped(records, &rel), &rel.arrow_schema())?;
        let rows = batch_to_records(&batch, None)?;
        let names: Vec<String> = rel.columns.iter().map(|c| sql::ident(&c.name)).collect();
        let mut client = self.inner.client().await?;
        let txn = client
            .transaction()
            .await
            .map_err(|e| pg_error("cannot start a transaction", &e))?;
        let mut ids = Vec::with_capacity(rows.len());
        for r in rows {
            let mut params = Params::default();
            let mut vals = Vec::new();
            for c in &rel.columns {
                params.values.push(sql::Param::One(
                    r.get(&c.name).cloned().unwrap_or(Value::Null),
                ));
                vals.push(format!("${}", params.values.len()));
            }
            let stmt = format!(
                "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
                rel.qualified(),
                names.join(", "),
                vals.join(", "),
                if rel.rowid {
                    "\"_dk_rowid\"::text"
                } else {
                    "ctid::text"
                }
            );
            let row = txn
                .query_one(&stmt, &params.refs())
                .await
                .map_err(|e| pg_error(&format!("cannot create a record in {}", self.name()), &e))?;
            ids.push(row.get::<_, String>(0));
        }
        txn.commit()
            .await
            .map_err(|e| pg_error("COMMIT failed; no record was created", &e))?;
        Ok(ids)
    }

    pub(super) async fn keyless_read(&self, id: &str) -> Result<Option<Record>> {
        let mut plan = self.plan(&Query::new())?;
        plan.where_sql.push(self.row_ref(id)?);
        let stream = self.copy_stream(&plan, Partition::ALL).await?;
        use futures::TryStreamExt;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(Error::from)?;
        for b in &batches {
            if let Some(mut r) = batch_to_records(b, None)?.into_iter().next() {
                r.set_id(id);
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    pub(super) async fn keyless_update(&self, id: &str, record: Record) -> Result<bool> {
        self.grow(std::slice::from_ref(&record)).await?;
        let rel = self.rel();
        let batch = records_to_batch(&strip_untyped(vec![record], &rel), &rel.arrow_schema())?;
        let mut params = Params::default();
        let sets = set_list(&rel, &batch, None, &mut params)?;
        let stmt = format!(
            "UPDATE {} SET {} WHERE {}",
            rel.qualified(),
            sets.join(", "),
            self.row_ref(id)?
        );
        Ok(self.run(&stmt, &params, "update").await? > 0)
    }
}

/// A keyless record id (a row address) as a tid literal.
pub(super) fn tid(id: &str) -> Result<String> {
    let bad = || {
        Error::query(format!(
            "'{id}' is not a record id of a table without a primary key (expected a row address like (0,1))"
        ))
        .with_backend(BACKEND)
    };
    let inner = id
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (block, off) = inner.split_once(',').ok_or_else(bad)?;
    let block: u32 = block.trim().parse().map_err(|_| bad())?;
    let off: u16 = off.trim().parse().map_err(|_| bad())?;
    Ok(format!("'({block},{off})'::tid"))
}

/// Drops untyped NULL fields that are not columns (they do not create one).
pub(super) fn strip_untyped(records: Vec<Record>, rel: &Relation) -> Vec<Record> {
    records
        .into_iter()
        .map(|mut r| {
            strip_untyped_fields(&mut r, rel);
            r
        })
        .collect()
}

/// Drops a record's untyped NULL fields that are not columns.
pub(super) fn strip_untyped_fields(r: &mut Record, rel: &Relation) {
    let absent: Vec<String> = r
        .fields()
        .iter()
        .filter(|f| !f.has_type() && !rel.columns.iter().any(|c| c.name == f.name))
        .map(|f| f.name.clone())
        .collect();
    for n in absent {
        r.remove(&n);
    }
}
