//! One index (or alias, or pattern) as a [`Database`].
//!
//! Tables dataknobs created (`CREATE TABLE`, the record API) keep their columns, types, key
//! and order in the mapping's `_meta`; their documents hold one value per field, so every
//! filter the mapping can answer is pushed exactly. Other indexes show `_id`, `_score` and
//! their mapped fields (see [`super::mapping`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use elasticsearch::http::Method;
use futures::TryStreamExt;
use parking_lot::RwLock;
use serde_json::{Value as Json, json};

use super::client::{EsClient, path_part, server_error};
use super::decode::{Decoder, Hit, column_specs};
use super::dsl::{Dsl, Fields};
use super::mapping::{self, EsField, ID_COLUMN, Managed, SCORE_COLUMN};
use super::scan::{self, Paging, ScanRequest, Target};
use super::write::{Action, BulkWriter, batch_docs};
use super::{BACKEND, EsBackend, EsSettings};
use crate::database::{Capabilities, Database, FilterSupport, Partition};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{FilterExpr, Query, ROW_ID, SortSpec};
use crate::record::{FieldType, Record, batch_to_records, records_to_batch};

struct Layout {
    schema: SchemaRef,
    fields: Fields,
    managed: Option<Managed>,
}

/// An index as a collection.
pub struct EsTable {
    client: EsClient,
    settings: EsSettings,
    paging: Paging,
    /// The index, alias or pattern the table names (with the backend's prefix).
    name: String,
    /// The table's name as SQL sees it (without the prefix).
    table: String,
    indexes: Vec<Target>,
    layout: RwLock<Arc<Layout>>,
    single_valued: bool,
    /// Whether the last whole scan fitted in one page (see `ScanRequest::fit_one_page`).
    fit_one_page: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for EsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsTable")
            .field("index", &self.name)
            .finish()
    }
}

fn layout_of(mapping: &Json) -> Result<Layout> {
    let managed = mapping::managed(mapping);
    let es_fields: Vec<EsField> = match &managed {
        Some(_) => {
            let (index, m) = mapping
                .as_object()
                .and_then(|o| o.iter().next())
                .ok_or_else(|| Error::internal("empty mapping"))?;
            let mut fields = mapping::index_fields(index, m)?;
            // Declared `_id` / `_score` columns: the metadata fields.
            fields.extend(
                mapping::table_fields(mapping)?
                    .into_iter()
                    .filter(|f| f.name == ID_COLUMN || f.name == SCORE_COLUMN),
            );
            fields
        }
        None => mapping::table_fields(mapping)?,
    };
    let by_name: HashMap<String, EsField> =
        es_fields.into_iter().map(|f| (f.name.clone(), f)).collect();
    let schema = match &managed {
        Some(m) => Arc::new(Schema::new(m.columns.clone())),
        None => {
            let fields = mapping::table_fields(mapping)?;
            mapping::arrow_schema(&fields)
        }
    };
    let fields = schema
        .fields()
        .iter()
        .filter_map(|f| {
            let mut e = by_name.get(f.name())?.clone();
            // A managed string column never given a long value: its keyword sub-field holds
            // every value, so ranges, LIKE and sorts on it are exact.
            if let Some(m) = &managed
                && matches!(e.kind, mapping::EsKind::Text { .. })
                && e.search.terms.is_some()
                && !m.long_text.contains(f.name())
            {
                e.search.max_len = None;
                e.search.ranges = true;
                e.search.sort = e.search.terms.clone();
            }
            if let DataType::Timestamp(unit, _) = f.data_type()
                && e.es_type == "long"
            {
                e.search.epoch_nanos = Some(match unit {
                    TimeUnit::Second => 1_000_000_000,
                    TimeUnit::Millisecond => 1_000_000,
                    TimeUnit::Microsecond => 1_000,
                    TimeUnit::Nanosecond => 1,
                });
            }
            Some((f.name().clone(), e))
        })
        .collect();
    Ok(Layout {
        schema,
        fields,
        managed,
    })
}

impl EsTable {
    pub(super) async fn open(
        backend: &EsBackend,
        table: &str,
        name: &str,
        mapping: &Json,
    ) -> Result<EsTable> {
        let layout = layout_of(mapping).map_err(|e| e.context(&format!("table '{name}'")))?;
        let settings = backend
            .client
            .request(
                Method::Get,
                &format!(
                    "/{}/_settings?filter_path=*.settings.index.number_of_shards",
                    path_part(name)
                ),
                None,
                &format!("reading the settings of '{name}'"),
            )
            .await?;
        let mut indexes: Vec<Target> = mapping
            .as_object()
            .map(|o| {
                o.keys()
                    .map(|index| Target {
                        index: index.clone(),
                        shards: settings
                            .get(index)
                            .and_then(|s| s.pointer("/settings/index/number_of_shards"))
                            .and_then(|n| {
                                n.as_str()
                                    .and_then(|s| s.parse().ok())
                                    .or(n.as_u64().map(|u| u as usize))
                            })
                            .unwrap_or(1),
                    })
                    .collect()
            })
            .unwrap_or_default();
        indexes.sort_by(|a, b| a.index.cmp(&b.index));
        let single_valued = layout.managed.is_some() || backend.settings.single_valued;
        Ok(EsTable {
            client: backend.client.clone(),
            settings: backend.settings.clone(),
            paging: backend.paging(),
            name: name.to_string(),
            table: table.to_string(),
            indexes,
            layout: RwLock::new(Arc::new(layout)),
            single_valued,
            fit_one_page: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        })
    }

    fn layout(&self) -> Arc<Layout> {
        self.layout.read().clone()
    }

    fn dsl_support(&self, e: &FilterExpr) -> FilterSupport {
        let l = self.layout();
        Dsl::new(&l.fields, self.single_valued).support(e)
    }

    /// The one concrete index writes go to.
    fn write_index(&self) -> Result<&str> {
        match self.indexes.as_slice() {
            [one] => Ok(&one.index),
            _ => Err(Error::unsupported(format!(
                "'{}' names {} indexes; write to one index at a time",
                self.name,
                self.indexes.len()
            ))
            .with_backend(BACKEND)),
        }
    }

    fn key(&self) -> Option<String> {
        self.layout().managed.as_ref().and_then(|m| m.key.clone())
    }

    /// The scan request for a query.
    fn request(&self, query: &Query) -> Result<ScanRequest> {
        let l = self.layout();
        let dsl = Dsl::new(&l.fields, self.single_valued);
        let mut names: Vec<String> = match &query.fields {
            Some(f) => f.clone(),
            None => l.schema.fields().iter().map(|f| f.name().clone()).collect(),
        };
        // A sort done here (beyond one request's window) needs its keys: read them too and
        // drop them after sorting.
        let wanted = names.len() + usize::from(query.row_ids);
        let fits = query
            .limit
            .is_some_and(|n| n + query.offset.unwrap_or(0) <= scan::PAGE_SIZE);
        if !fits {
            for s in &query.sort {
                if !names.contains(&s.field) {
                    names.push(s.field.clone());
                }
            }
        }
        let mut out_fields = Vec::with_capacity(names.len() + 1);
        for n in &names {
            let f = l.schema.field_with_name(n).map_err(|_| {
                Error::query(format!("no column '{n}' in '{}'", self.name)).with_backend(BACKEND)
            })?;
            out_fields.push(f.clone());
        }
        if query.row_ids {
            // The row id comes right after the asked-for columns.
            out_fields.insert(wanted - 1, Field::new(ROW_ID, DataType::Utf8, false));
        }
        let schema = Arc::new(Schema::new(out_fields));
        let doc_value_dates: Vec<String> = names
            .iter()
            .filter(|n| {
                l.fields
                    .get(*n)
                    .is_some_and(|f| f.search.date_format.is_some())
            })
            .cloned()
            .collect();
        let scored = super::dsl::has_fulltext(&query.filters);
        let mut columns = column_specs(&schema, &doc_value_dates, query.row_ids.then_some(ROW_ID));
        if !scored {
            // No full-text condition: no relevance, `_score` reads NULL.
            for c in &mut columns {
                if matches!(c.from, super::decode::From::Score) {
                    c.from = super::decode::From::Null;
                }
            }
        }
        for c in &mut columns {
            c.epoch = l
                .fields
                .get(&c.name)
                .is_some_and(|f| f.search.epoch_nanos.is_some());
        }
        let source: Vec<&String> = names
            .iter()
            .filter(|n| *n != ID_COLUMN && *n != SCORE_COLUMN && !doc_value_dates.contains(n))
            .collect();
        let q = dsl.query(&query.filters).ok_or_else(|| {
            Error::internal(format!(
                "a scan of '{}' got a filter it cannot send: {}",
                self.name,
                query
                    .filters
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ))
            .with_backend(BACKEND)
        })?;
        let mut body = serde_json::Map::new();
        body.insert("query".into(), q);
        // Filtering `_source` makes the server parse and rewrite every document: it halved
        // the scan rate (docs/notes/elasticsearch.md §8). Whole documents are cheaper unless
        // the scan reads less than half of the columns.
        let stored = l
            .schema
            .fields()
            .iter()
            .filter(|f| f.name() != ID_COLUMN && f.name() != SCORE_COLUMN)
            .count();
        body.insert(
            "_source".into(),
            if source.is_empty() {
                json!(false)
            } else if source.len() * 2 >= stored {
                json!(true)
            } else {
                json!(source)
            },
        );
        if !doc_value_dates.is_empty() {
            body.insert(
                "docvalue_fields".into(),
                Json::Array(
                    doc_value_dates
                        .iter()
                        .map(|d| json!({"field": d, "format": "strict_date_optional_time_nanos"}))
                        .collect(),
                ),
            );
        }
        if scored && names.iter().any(|n| n == SCORE_COLUMN) {
            // Scores of hits sorted by something else (`_doc` in a paged scan).
            body.insert("track_scores".into(), json!(true));
        }
        let sorted = !query.sort.is_empty();
        if sorted {
            let s = dsl.sort(&query.sort).ok_or_else(|| {
                Error::internal(format!(
                    "a scan of '{}' got a sort it cannot send",
                    self.name
                ))
                .with_backend(BACKEND)
            })?;
            body.insert("sort".into(), s);
        }
        Ok(ScanRequest {
            table: format!("'{}'", self.name),
            target: self.name.clone(),
            indexes: self.indexes.clone(),
            body,
            sorted,
            sort: query.sort.clone(),
            output: wanted,
            limit: query.limit,
            offset: query.offset.unwrap_or(0),
            paging: self.paging,
            schema,
            columns,
            fit_one_page: self.fit_one_page.clone(),
        })
    }

    /// Makes writes visible when the `refresh` option says so.
    async fn refresh(&self, index: &str) -> Result<()> {
        if !self.settings.refresh {
            return Ok(());
        }
        self.client
            .request(
                Method::Post,
                &format!("/{}/_refresh", path_part(index)),
                None,
                &format!("refreshing index '{index}'"),
            )
            .await?;
        Ok(())
    }

    /// Waits for a bulk write and makes it visible when the `refresh` option says so: with
    /// `refresh=true` on the request when it was the only one, else one `_refresh` after it
    /// (also after a failure: what was written is visible).
    async fn finish_bulk(&self, w: BulkWriter, index: &str) -> Result<super::write::Outcome> {
        let outcome = w.finish_refreshing(self.settings.refresh).await;
        if !matches!(outcome, Ok((_, true))) {
            let _ = self.refresh(index).await;
        }
        outcome.map(|(o, _)| o)
    }

    fn refresh_param(&self) -> &'static str {
        if self.settings.refresh {
            "?refresh=true"
        } else {
            ""
        }
    }

    /// Writes a stream of rows with `action`; ids from the key column or `_id`.
    async fn write_stream(
        &self,
        mut data: SendableRecordBatchStream,
        action: Action,
    ) -> Result<u64> {
        let index = self.write_index()?.to_string();
        let input = data.schema();
        let key = self.key();
        let id_col = match &key {
            Some(k) if input.index_of(k).is_ok() => Some(k.clone()),
            _ if input.index_of(ID_COLUMN).is_ok() => Some(ID_COLUMN.to_string()),
            _ => None,
        };
        // A key given as `_id`: index (create or replace) makes a retried load idempotent;
        // a table's own key refuses duplicates, as SQL does.
        let action = match (action, &key, &id_col) {
            (Action::Create, None, Some(_)) => Action::Index,
            (a, _, _) => a,
        };
        let mut w = BulkWriter::new(
            self.client.clone(),
            &index,
            action,
            self.settings.bulk_docs,
            self.settings.bulk_in_flight,
        );
        let mut failure: Option<Error> = None;
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            let batch = match data.try_next().await {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(Error::from(e));
                    break;
                }
            };
            // A table's own key: duplicates (in the statement or with stored rows) are found
            // before the batch is written.
            if action == Action::Create
                && let (Some(k), Some(col)) = (&key, &id_col)
                && let Err(e) = self.check_new_keys(&batch, k, col, &mut seen).await
            {
                failure = Some(e);
                break;
            }
            if let Err(e) = self.push_batch(&mut w, &batch, id_col.as_deref()).await {
                failure = Some(e);
                break;
            }
        }
        let written_before = w.written_so_far();
        let outcome = self.finish_bulk(w, &index).await;
        if let Some(e) = failure {
            let written = outcome
                .as_ref()
                .map(|o| o.written)
                .unwrap_or(written_before);
            let tail = if written == 0 {
                "; no rows were inserted".to_string()
            } else {
                format!("; {written} rows were inserted before, not undone")
            };
            return Err(
                Error::new(e.kind(), format!("{}{tail}", e.message())).with_backend(BACKEND)
            );
        }
        outcome?.check("INSERT", &self.table)
    }

    /// Timestamps for date fields with a custom `format`: epoch milliseconds when the format
    /// takes them, ISO 8601 text when it takes that; otherwise a clear error (dataknobs does
    /// not write arbitrary date patterns).
    fn dates_for_writing(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let l = self.layout();
        let mut columns = batch.columns().to_vec();
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut changed = false;
        for (i, f) in batch.schema().fields().iter().enumerate() {
            let Some(format) = l
                .fields
                .get(f.name())
                .and_then(|e| e.search.date_format.clone())
            else {
                continue;
            };
            if !matches!(
                f.data_type(),
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            ) {
                continue;
            }
            let formats: Vec<&str> = format.split("||").map(str::trim).collect();
            if formats.contains(&"epoch_millis") {
                let ms = datafusion::arrow::compute::cast(
                    &columns[i],
                    &DataType::Timestamp(TimeUnit::Millisecond, None),
                )
                .and_then(|a| datafusion::arrow::compute::cast(&a, &DataType::Int64))
                .map_err(|e| Error::internal(e.to_string()))?;
                columns[i] = ms;
                fields[i] = Field::new(f.name(), DataType::Int64, true);
                changed = true;
            } else if !formats.iter().any(|f| {
                matches!(
                    *f,
                    "strict_date_optional_time"
                        | "date_optional_time"
                        | "strict_date_optional_time_nanos"
                )
            }) {
                return Err(Error::unsupported(format!(
                    "column '{}' of '{}' is a date field with the format '{format}', which \
                     dataknobs cannot write (it writes epoch_millis or ISO 8601); add one of \
                     those to the field's format, or write the index another way",
                    f.name(),
                    self.table
                ))
                .with_backend(BACKEND));
            }
        }
        if !changed {
            return Ok(batch.clone());
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| Error::internal(format!("cannot prepare dates for writing: {e}")))
    }

    /// Notes, before writing `batch`, the string columns that get a value too long for their
    /// keyword sub-field (see [`mapping::Managed::long_text`]).
    async fn note_long_text(&self, batch: &RecordBatch) -> Result<()> {
        let l = self.layout();
        let Some(m) = &l.managed else { return Ok(()) };
        let mut long = Vec::new();
        for (i, f) in batch.schema().fields().iter().enumerate() {
            if m.long_text.contains(f.name()) || !l.fields.contains_key(f.name()) {
                continue;
            }
            let col = batch.column(i);
            let text = match datafusion::arrow::compute::cast(col, &DataType::Utf8) {
                Ok(t)
                    if matches!(
                        col.data_type(),
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    ) =>
                {
                    t
                }
                _ => continue,
            };
            let Some(text) = text
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
            else {
                continue;
            };
            if text.iter().flatten().any(|v| {
                v.len() > mapping::MAX_KEYWORD_CHARS
                    && v.chars().count() > mapping::MAX_KEYWORD_CHARS
            }) {
                long.push(f.name().clone());
            }
        }
        if long.is_empty() {
            return Ok(());
        }
        let mut all = m.long_text.clone();
        all.extend(long);
        let index = self.write_index()?.to_string();
        let body = json!({"_meta": mapping::meta_json(&m.columns, m.key.as_deref(), &all)});
        self.client
            .request(
                Method::Put,
                &format!("/{}/_mapping", path_part(&index)),
                Some(&body),
                &format!("noting long text values in '{}'", self.table),
            )
            .await?;
        self.reload().await
    }

    /// Re-reads the mapping.
    async fn reload(&self) -> Result<()> {
        let index = self.write_index()?.to_string();
        let mapping = self
            .client
            .request(
                Method::Get,
                &format!("/{}/_mapping", path_part(&index)),
                None,
                &format!("reading the mapping of '{index}'"),
            )
            .await?;
        *self.layout.write() = Arc::new(layout_of(&mapping)?);
        Ok(())
    }

    /// Refuses a batch whose key values are NULL, repeat one of the statement, or exist.
    async fn check_new_keys(
        &self,
        batch: &RecordBatch,
        key: &str,
        col: &str,
        seen: &mut std::collections::HashSet<String>,
    ) -> Result<()> {
        let i = batch
            .schema()
            .index_of(col)
            .map_err(|_| Error::internal("no key column in the rows"))?;
        let texts = super::write::column_texts(batch.column(i))?;
        let mut ids = Vec::with_capacity(texts.len());
        for text in texts {
            let Some(id) = text else {
                return Err(Error::query(format!(
                    "key column '{key}' of '{}' cannot be NULL",
                    self.table
                ))
                .with_backend(BACKEND));
            };
            if !seen.insert(id.clone()) {
                return Err(Error::already_exists(format!(
                    "duplicate key '{id}' in column '{key}' of '{}'",
                    self.table
                ))
                .with_backend(BACKEND));
            }
            ids.push(id);
        }
        let index = self.write_index()?;
        let reply = self
            .client
            .request(
                Method::Post,
                &format!("/{}/_mget?_source=false", path_part(index)),
                Some(&json!({"ids": ids})),
                &format!("checking keys of '{}'", self.table),
            )
            .await?;
        if let Some(found) = reply
            .get("docs")
            .and_then(Json::as_array)
            .and_then(|d| d.iter().find(|d| d.get("found") == Some(&json!(true))))
        {
            let id = found.get("_id").and_then(Json::as_str).unwrap_or("");
            return Err(Error::already_exists(format!(
                "duplicate key '{id}' in column '{key}' of '{}'",
                self.table
            ))
            .with_backend(BACKEND));
        }
        Ok(())
    }

    async fn push_batch(
        &self,
        w: &mut BulkWriter,
        batch: &RecordBatch,
        id_col: Option<&str>,
    ) -> Result<()> {
        self.note_long_text(batch).await?;
        let skip: Vec<&str> = vec![ID_COLUMN, SCORE_COLUMN];
        if let Ok(i) = batch.schema().index_of(SCORE_COLUMN)
            && batch.column(i).null_count() != batch.num_rows()
        {
            return Err(Error::query(format!(
                "_score is computed by the server; leave it out of the INSERT into '{}'",
                self.name
            ))
            .with_backend(BACKEND));
        }
        let batch = &self.dates_for_writing(batch)?;
        let (docs, ids) = batch_docs(batch, id_col, &skip, self.layout().managed.is_some())?;
        for (doc, id) in docs.iter().zip(ids.iter()) {
            // A NULL `_id`: the server picks one.
            if id_col.is_some() && id.is_none() && id_col != Some(ID_COLUMN) {
                return Err(Error::query(format!(
                    "a row to write into '{}' has a NULL {}; document ids cannot be NULL",
                    self.name,
                    id_col.unwrap_or(ID_COLUMN)
                ))
                .with_backend(BACKEND));
            }
            w.push(id.as_deref(), Some(doc)).await?;
        }
        Ok(())
    }

    /// Adds columns for fields of `records` the table lacks (tables dataknobs created).
    async fn grow(&self, records: &[Record]) -> Result<()> {
        let l = self.layout();
        let Some(managed) = &l.managed else {
            // Other indexes: a field the mapping lacks is refused below by the strictness of
            // the server's mapping, or mapped dynamically by it.
            return Ok(());
        };
        let mut new: Vec<Field> = Vec::new();
        for r in records {
            for f in r.fields() {
                if l.schema.field_with_name(&f.name).is_err()
                    && !new.iter().any(|n| n.name() == &f.name)
                {
                    let ty = if f.has_type() {
                        f.field_type
                    } else {
                        // An untyped NULL does not decide a column's type.
                        match f.value.field_type() {
                            Some(t) => t,
                            None => continue,
                        }
                    };
                    new.push(ty.arrow_field(&f.name).with_nullable(true));
                }
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let index = self.write_index()?.to_string();
        let body = mapping::grow_body(managed, &new)?;
        self.client
            .request(
                Method::Put,
                &format!("/{}/_mapping", path_part(&index)),
                Some(&body),
                &format!("adding columns to '{index}'"),
            )
            .await?;
        let mapping = self
            .client
            .request(
                Method::Get,
                &format!("/{}/_mapping", path_part(&index)),
                None,
                &format!("reading the mapping of '{index}'"),
            )
            .await?;
        *self.layout.write() = Arc::new(layout_of(&mapping)?);
        Ok(())
    }

    /// Records as documents (through a batch of the table's schema: values are checked and
    /// converted to the column types), with their ids.
    fn record_docs(&self, records: Vec<Record>) -> Result<(Vec<Bytes>, Vec<String>, RecordBatch)> {
        let l = self.layout();
        let key = self.key();
        let mut ids = Vec::with_capacity(records.len());
        let mut rows = Vec::with_capacity(records.len());
        for mut r in records {
            let id = match (r.id().map(str::to_string), &key) {
                (Some(id), _) => id,
                (None, Some(k)) => match r.get(k) {
                    Some(v) if !v.is_null() => v.to_text(),
                    _ => crate::record::new_record_id(),
                },
                (None, None) => crate::record::new_record_id(),
            };
            if let Some(k) = &key {
                match r.get(k) {
                    Some(v) if !v.is_null() && v.to_text() != id => {
                        return Err(Error::query(format!(
                            "record '{id}' has key field {k} = {v}, which names another record"
                        ))
                        .with_backend(BACKEND));
                    }
                    _ => r.set(k.clone(), crate::record::Value::String(id.clone())),
                }
            }
            ids.push(id);
            rows.push(r);
        }
        let mut schema_fields: Vec<Field> = l
            .schema
            .fields()
            .iter()
            .filter(|f| f.name() != ID_COLUMN && f.name() != SCORE_COLUMN)
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        if l.managed.is_none() {
            // Fields of other indexes the mapping does not list yet: written as given.
            for r in &rows {
                for f in r.fields() {
                    if !schema_fields.iter().any(|s| s.name() == &f.name) {
                        let ty = f.value.field_type().unwrap_or(FieldType::String);
                        schema_fields.push(ty.arrow_field(&f.name).with_nullable(true));
                    }
                }
            }
        }
        for r in &mut rows {
            // A NULL for a field the table lacks stores nothing.
            let absent: Vec<String> = r
                .fields()
                .iter()
                .filter(|f| f.value.is_null() && !schema_fields.iter().any(|s| s.name() == &f.name))
                .map(|f| f.name.clone())
                .collect();
            for n in absent {
                r.remove(&n);
            }
        }
        for r in &rows {
            for f in r.fields() {
                if !schema_fields.iter().any(|s| s.name() == &f.name) {
                    return Err(Error::unsupported(format!(
                        "field '{}' is not a column of '{}'",
                        f.name, self.name
                    ))
                    .with_backend(BACKEND));
                }
            }
        }
        let batch = records_to_batch(&rows, &Arc::new(Schema::new(schema_fields)))?;
        let (docs, _) = batch_docs(&batch, None, &[], l.managed.is_some())?;
        Ok((docs, ids, batch))
    }

    async fn bulk_records(
        &self,
        records: Vec<Record>,
        action: Action,
    ) -> Result<(Vec<String>, super::write::Outcome)> {
        let index = self.write_index()?.to_string();
        self.grow(&records).await?;
        let (docs, ids, batch) = self.record_docs(records)?;
        self.note_long_text(&batch).await?;
        let mut w = BulkWriter::new(
            self.client.clone(),
            &index,
            action,
            self.settings.bulk_docs,
            self.settings.bulk_in_flight,
        );
        for (d, id) in docs.iter().zip(&ids) {
            w.push(Some(id), Some(d)).await?;
        }
        let outcome = self.finish_bulk(w, &index).await?;
        Ok((ids, outcome))
    }

    async fn get_doc(&self, id: &str) -> Result<Option<(Hit, u64, u64)>> {
        let index = self.write_index()?;
        let reply = self
            .client
            .send(
                Method::Get,
                &format!("/{}/_doc/{}", path_part(index), path_part(id)),
                None,
                false,
            )
            .await?;
        if reply.status == 404 {
            let j: Json = serde_json::from_slice(&reply.body).unwrap_or(Json::Null);
            if j.get("found") == Some(&json!(false)) {
                return Ok(None);
            }
            return Err(server_error(
                &format!("reading record '{id}' of '{}'", self.name),
                &reply,
            ));
        }
        if !reply.ok() {
            return Err(server_error(
                &format!("reading record '{id}' of '{}'", self.name),
                &reply,
            ));
        }
        let j = reply.json("a document")?;
        let seq = j.get("_seq_no").and_then(Json::as_u64).unwrap_or(0);
        let term = j.get("_primary_term").and_then(Json::as_u64).unwrap_or(0);
        let hit: Hit = serde_json::from_value(j).map_err(|e| {
            Error::internal(format!("cannot read document '{id}': {e}")).with_backend(BACKEND)
        })?;
        Ok(Some((hit, seq, term)))
    }

    /// Gives record `from` the id `to` with `changes` applied: create `to`, delete `from`.
    async fn move_doc(
        &self,
        index: &str,
        from: &str,
        to: &str,
        changes: serde_json::Map<String, Json>,
    ) -> Result<bool> {
        let Some((hit, _, _)) = self.get_doc(from).await? else {
            return Ok(false);
        };
        let mut source = hit.source.unwrap_or_default();
        source.extend(changes);
        let body =
            Bytes::from(serde_json::to_vec(&source).map_err(|e| Error::internal(e.to_string()))?);
        let path = format!(
            "/{}/_create/{}{}",
            path_part(index),
            path_part(to),
            self.refresh_param()
        );
        let reply = self
            .client
            .send(Method::Put, &path, Some(body), false)
            .await?;
        if reply.status == 409 {
            return Err(Error::already_exists(format!(
                "UPDATE of {} failed: a row with id '{to}' exists already",
                self.table
            ))
            .with_backend(BACKEND));
        }
        if !reply.ok() {
            return Err(server_error(
                &format!("moving record '{from}' to '{to}'"),
                &reply,
            ));
        }
        self.delete(from).await
    }

    /// The `_count` request for `query`, or None when the server cannot count it exactly
    /// (a filter it cannot answer exactly, a limit or an offset).
    fn count_request(&self, query: Option<&Query>) -> Result<Option<(String, Json)>> {
        let filter = query.and_then(Query::filter_expr);
        let exact = filter
            .as_ref()
            .is_none_or(|f| self.dsl_support(f) == FilterSupport::Exact);
        let plain = query.is_none_or(|q| q.limit.is_none() && q.offset.is_none());
        if !exact || !plain {
            return Ok(None);
        }
        let l = self.layout();
        let dsl = Dsl::new(&l.fields, self.single_valued);
        let q = dsl
            .query(&filter.into_iter().collect::<Vec<_>>())
            .ok_or_else(|| Error::internal("count: untranslatable filter"))?;
        Ok(Some((
            format!("/{}/_count", path_part(&self.name)),
            json!({"query": q}),
        )))
    }

    fn hit_to_record(&self, hit: &Hit) -> Result<Record> {
        let l = self.layout();
        let schema = l.schema.clone();
        let mut specs = column_specs(&schema, &[], None);
        for c in &mut specs {
            c.epoch = l
                .fields
                .get(&c.name)
                .is_some_and(|f| f.search.epoch_nanos.is_some());
        }
        let mut d = Decoder::new(schema, specs);
        d.push(hit)?;
        let batch = d.finish()?;
        let key = self.key_column();
        let mut recs = batch_to_records(&batch, key.as_deref())?;
        let mut r = recs
            .pop()
            .ok_or_else(|| Error::internal("a document decoded to no row"))?;
        r.set_id(hit.id.clone());
        Ok(r)
    }
}

#[async_trait]
impl Database for EsTable {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn collection_name(&self) -> &str {
        &self.table
    }

    fn schema(&self) -> SchemaRef {
        self.layout().schema.clone()
    }

    fn key_column(&self) -> Option<String> {
        let l = self.layout();
        match &l.managed {
            Some(m) => m.key.clone(),
            None => Some(ID_COLUMN.to_string()),
        }
    }

    fn native_update(&self) -> bool {
        false
    }

    async fn create(&self, record: Record) -> Result<String> {
        let (ids, outcome) = self.bulk_records(vec![record], Action::Create).await?;
        outcome.check("create", &self.name)?;
        ids.into_iter()
            .next()
            .ok_or_else(|| Error::internal("create returned no id"))
    }

    async fn read(&self, id: &str) -> Result<Option<Record>> {
        match self.get_doc(id).await? {
            Some((hit, _, _)) => Ok(Some(self.hit_to_record(&hit)?)),
            None => Ok(None),
        }
    }

    async fn update(&self, id: &str, record: Record) -> Result<bool> {
        self.grow(std::slice::from_ref(&record)).await?;
        let Some((_, seq, term)) = self.get_doc(id).await? else {
            return Ok(false);
        };
        let (docs, _, batch) = self.record_docs(vec![record.with_id(id)])?;
        self.note_long_text(&batch).await?;
        let index = self.write_index()?;
        let path = format!(
            "/{}/_doc/{}?if_seq_no={seq}&if_primary_term={term}{}",
            path_part(index),
            path_part(id),
            if self.settings.refresh {
                "&refresh=true"
            } else {
                ""
            }
        );
        let reply = self
            .client
            .send(Method::Put, &path, docs.into_iter().next(), false)
            .await?;
        if reply.status == 409 {
            return Err(Error::query(format!(
                "record '{id}' of '{}' changed while it was being updated; try again",
                self.name
            ))
            .with_backend(BACKEND));
        }
        if !reply.ok() {
            return Err(server_error(
                &format!("updating record '{id}' of '{}'", self.name),
                &reply,
            ));
        }
        Ok(true)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let index = self.write_index()?;
        let path = format!(
            "/{}/_doc/{}{}",
            path_part(index),
            path_part(id),
            self.refresh_param()
        );
        let reply = self.client.send(Method::Delete, &path, None, false).await?;
        if reply.status == 404 {
            return Ok(false);
        }
        if !reply.ok() {
            return Err(server_error(
                &format!("deleting record '{id}' of '{}'", self.name),
                &reply,
            ));
        }
        Ok(true)
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        let index = self.write_index()?;
        let reply = self
            .client
            .send(
                Method::Head,
                &format!("/{}/_doc/{}", path_part(index), path_part(id)),
                None,
                false,
            )
            .await?;
        Ok(reply.ok())
    }

    async fn upsert(&self, id: &str, record: Record) -> Result<String> {
        let (ids, outcome) = self
            .bulk_records(vec![record.with_id(id)], Action::Index)
            .await?;
        outcome.check("upsert", &self.name)?;
        ids.into_iter()
            .next()
            .ok_or_else(|| Error::internal("upsert returned no id"))
    }

    async fn count(&self, query: Option<&Query>) -> Result<u64> {
        let Some((path, body)) = self.count_request(query)? else {
            return crate::local::count(self, query).await;
        };
        let reply = self
            .client
            .request(
                Method::Post,
                &path,
                Some(&body),
                &format!("counting '{}'", self.name),
            )
            .await?;
        reply
            .get("count")
            .and_then(Json::as_u64)
            .ok_or_else(|| Error::internal("a _count reply without count").with_backend(BACKEND))
    }

    fn describe_count(&self, query: Option<&Query>) -> String {
        match self.count_request(query) {
            Ok(Some((path, body))) => format!("POST {path} {body}"),
            Ok(None) => "(counted from a scan)".to_string(),
            Err(e) => format!("(cannot plan: {e})"),
        }
    }

    async fn clear(&self) -> Result<u64> {
        self.delete_where(None).await
    }

    async fn batch_create(&self, records: Vec<Record>) -> Result<Vec<String>> {
        if records.is_empty() {
            return Ok(vec![]);
        }
        let (ids, outcome) = self.bulk_records(records, Action::Create).await?;
        outcome.check("batch_create", &self.name)?;
        Ok(ids)
    }

    async fn batch_delete(&self, ids: &[String]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.delete(id).await?);
        }
        Ok(out)
    }

    fn filter_support(&self, filter: &FilterExpr) -> FilterSupport {
        self.dsl_support(filter)
    }

    fn sort_support(&self, sort: &[SortSpec]) -> bool {
        let l = self.layout();
        Dsl::new(&l.fields, self.single_valued).sort(sort).is_some()
    }

    async fn scan_partitions(&self, query: &Query, target: usize) -> usize {
        if query.limit.is_some() || query.offset.is_some() || !query.sort.is_empty() {
            return 1;
        }
        match self.request(query) {
            Ok(r) => r.partitions(target),
            Err(_) => 1,
        }
    }

    async fn scan(&self, query: &Query, partition: Partition) -> Result<SendableRecordBatchStream> {
        let req = self.request(query)?;
        Ok(scan::stream(self.client.clone(), req, partition))
    }

    fn describe_scan(&self, query: &Query) -> String {
        match self.request(query) {
            Ok(r) => r.describe(),
            Err(e) => format!("(cannot plan: {e})"),
        }
    }

    async fn insert(&self, data: SendableRecordBatchStream) -> Result<u64> {
        self.write_stream(data, Action::Create).await
    }

    async fn delete_where(&self, filter: Option<&FilterExpr>) -> Result<u64> {
        let index = self.write_index()?.to_string();
        let l = self.layout();
        let dsl = Dsl::new(&l.fields, self.single_valued);
        if let Some(f) = filter
            && dsl.support(f) != FilterSupport::Exact
        {
            return Err(Error::unsupported(format!(
                "DELETE from '{}': the condition {f} cannot be evaluated exactly by the server",
                self.name
            ))
            .with_backend(BACKEND));
        }
        let q = dsl
            .query(&filter.cloned().into_iter().collect::<Vec<_>>())
            .ok_or_else(|| Error::internal("delete: untranslatable filter"))?;
        let path = format!(
            "/{}/_delete_by_query?refresh={}",
            path_part(&index),
            self.settings.refresh
        );
        let reply = self
            .client
            .request(
                Method::Post,
                &path,
                Some(&json!({"query": q})),
                &format!("DELETE from '{index}'"),
            )
            .await?;
        let deleted = reply.get("deleted").and_then(Json::as_u64).unwrap_or(0);
        if let Some(f) = reply
            .get("failures")
            .and_then(Json::as_array)
            .filter(|f| !f.is_empty())
        {
            return Err(Error::new(
                ErrorKind::Query,
                format!(
                    "DELETE from '{index}': {} documents were deleted, then it failed: {}",
                    deleted, f[0]
                ),
            )
            .with_backend(BACKEND));
        }
        Ok(deleted)
    }

    fn capabilities(&self) -> Capabilities {
        let managed = self.layout().managed.is_some();
        Capabilities {
            atomic_batches: false,
            schema_growth: managed,
            native_dml: true,
            row_ids: self.supports_row_ids(),
            exact_sort: self.single_valued,
            key_lookup: self.indexes.len() == 1,
            native_count: true,
        }
    }

    fn supports_row_ids(&self) -> bool {
        self.indexes.len() == 1
    }

    async fn delete_ids(&self, ids: &[String]) -> Result<u64> {
        let index = self.write_index()?.to_string();
        let mut w = BulkWriter::new(
            self.client.clone(),
            &index,
            Action::Delete,
            self.settings.bulk_docs,
            self.settings.bulk_in_flight,
        );
        for id in ids {
            w.push(Some(id), None).await?;
        }
        let outcome = self.finish_bulk(w, &index).await?;
        outcome.check("DELETE", &index)
    }

    async fn update_ids(&self, ids: &[String], values: RecordBatch) -> Result<u64> {
        let index = self.write_index()?.to_string();
        if values.num_rows() != ids.len() {
            return Err(Error::internal(
                "update_ids: one row of values per id expected",
            ));
        }
        self.note_long_text(&values).await?;
        let values = self.dates_for_writing(&values)?;
        let (docs, _) = batch_docs(&values, None, &[], self.layout().managed.is_some())?;
        // NULLs are left out of the documents: set them explicitly.
        let schema = values.schema();
        let mut w = BulkWriter::new(
            self.client.clone(),
            &index,
            Action::Update,
            self.settings.bulk_docs,
            self.settings.bulk_in_flight,
        );
        // New key values: such a row moves to a new document id.
        let new_keys: Option<Vec<Option<String>>> = match self.key() {
            Some(k) => match schema.index_of(&k) {
                Ok(ki) => Some(super::write::column_texts(values.column(ki))?),
                Err(_) => None,
            },
            None => None,
        };
        let mut moved = 0u64;
        for (row, (id, doc)) in ids.iter().zip(docs.iter()).enumerate() {
            let mut obj: serde_json::Map<String, Json> = serde_json::from_slice(doc)
                .map_err(|e| Error::internal(format!("bad update document: {e}")))?;
            for (c, f) in schema.fields().iter().enumerate() {
                if values.column(c).is_null(row) {
                    obj.insert(f.name().clone(), Json::Null);
                }
            }
            if let Some(keys) = &new_keys {
                match &keys[row] {
                    None => {
                        return Err(Error::query(format!(
                            "UPDATE of '{}' sets the key of record '{id}' to NULL",
                            self.table
                        ))
                        .with_backend(BACKEND));
                    }
                    Some(k) if k != id => {
                        if self.move_doc(&index, id, k, obj).await? {
                            moved += 1;
                        }
                        continue;
                    }
                    _ => {}
                }
            }
            let bytes = serde_json::to_vec(&obj).map_err(|e| Error::internal(e.to_string()))?;
            w.push(Some(id), Some(&bytes)).await?;
        }
        let mut outcome = self.finish_bulk(w, &index).await?;
        outcome.written += moved;
        outcome.check("UPDATE", &index)
    }
}
