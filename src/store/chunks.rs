//! The storage of one collection held in this process as Arrow data (the memory backend's
//! collections, the file backend's record store between reads and writes of its file).
//!
//! Rows live in immutable Arrow chunks (`Arc<Chunk>`), each with a keep-mask for deleted rows,
//! so a scan reads Arrow directly and never rebuilds the table. Records created one at a time
//! land in a small row buffer (the tail) that becomes a chunk at the next scan or when it is
//! full. Scans work on a snapshot of the chunk list, so readers never block writers for long
//! and always see a consistent state. The schema only grows (new record fields become new
//! nullable columns); a chunk older than a column reads it as NULL.

use datafusion::common::{HashMap, HashSet};
use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBufferBuilder, StringArray, UInt32Array, new_null_array,
};
use datafusion::arrow::compute::{
    CastOptions, and, cast_with_options, concat_batches, filter_record_batch, take,
    take_record_batch,
};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::util::display::FormatOptions;

use crate::error::{Error, Result};
use crate::record::{
    FieldType, Record, Value, batch_to_records, column_list, records_to_batch, values_to_array,
    values_to_array_at,
};

/// Rows per tail flush and per compacted chunk.
pub(crate) const TAIL_LIMIT: usize = 8192;
const COMPACT_TARGET_ROWS: usize = 131_072;
const MAX_CHUNKS_BEFORE_COMPACT: usize = 256;

#[derive(Debug, Clone)]
pub struct Chunk {
    /// Columns are a prefix of the collection schema at the time the chunk was made.
    pub batch: RecordBatch,
    /// None: all rows alive.
    pub keep: Option<BooleanArray>,
    pub live: usize,
    pub ids: Arc<Vec<String>>,
}

impl Chunk {
    /// The ids of the rows not deleted, in row order.
    pub fn live_ids(&self) -> impl Iterator<Item = &String> {
        let keep = self.keep.as_ref();
        self.ids
            .iter()
            .enumerate()
            .filter(move |(r, _)| keep.is_none_or(|k| k.value(*r)))
            .map(|(_, id)| id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    Chunk(usize, usize),
    Tail(usize),
}

#[derive(Debug)]
pub struct State {
    pub schema: SchemaRef,
    pub key: Option<usize>,
    pub chunks: Vec<Arc<Chunk>>,
    tail: Vec<Option<(String, Record)>>,
    tail_live: usize,
    index: HashMap<String, Loc>,
    next_rowid: u64,
    /// Bumped by every change, so a save can skip unchanged collections.
    pub version: u64,
}

/// Versions come from one process-wide counter, so a dropped and re-created collection never
/// repeats an earlier version.
fn next_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn cast_opts() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

impl State {
    pub fn new(schema: SchemaRef, key: Option<usize>) -> Self {
        State {
            schema,
            key,
            chunks: Vec::new(),
            tail: Vec::new(),
            tail_live: 0,
            index: HashMap::new(),
            next_rowid: 1,
            version: next_version(),
        }
    }

    pub fn key_name(&self) -> Option<String> {
        self.key.map(|k| self.schema.field(k).name().clone())
    }

    /// Are there rows in the tail buffer?
    pub fn has_pending(&self) -> bool {
        !self.tail.is_empty()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    fn new_rowid(&mut self) -> String {
        let id = self.next_rowid;
        self.next_rowid += 1;
        id.to_string()
    }

    /// Converts a record to the collection's types, growing the schema for new fields, and
    /// returns its id. Nothing is stored yet. `forced_id` is the id of an update or upsert.
    fn prepare(
        &mut self,
        collection: &str,
        mut record: Record,
        forced_id: Option<&str>,
    ) -> Result<(String, Record, Option<SchemaRef>)> {
        // Determine the id.
        let id = match self.key {
            Some(k) => {
                let schema = self.schema.clone();
                let key_name = schema.field(k).name();
                let from_field = record
                    .get(key_name)
                    .filter(|v| !v.is_null())
                    .map(Value::to_text);
                let given = forced_id
                    .map(str::to_string)
                    .or_else(|| record.id().map(str::to_string));
                let id = match (given, from_field) {
                    (Some(a), Some(b)) if a != b => {
                        return Err(key_disagrees(&a, key_name, &b, collection));
                    }
                    (Some(a), _) => a,
                    (None, Some(b)) => b,
                    (None, None) => crate::record::new_record_id(),
                };
                if record.get(key_name).is_none_or(Value::is_null) {
                    record.set(key_name.as_str(), Value::String(id.clone()));
                }
                id
            }
            None => match forced_id.or(record.id()) {
                Some(id) => id.to_string(),
                None => self.new_rowid(),
            },
        };
        // Grow the schema for new fields; convert values to column types, in place (a value
        // already of its column's type is not copied).
        let mut new_fields: Vec<ArrowField> = Vec::new();
        let mut untyped_new = false;
        for f in record.fields_mut() {
            match self.schema.fields().find(&f.name) {
                Some((_, col)) => {
                    let ty = FieldType::from_arrow(col);
                    let converted = f.value.convert_ref(ty).map_err(|e| {
                        Error::type_error(format!(
                            "field '{}' of '{collection}' is {ty}: {}",
                            f.name,
                            e.message()
                        ))
                    })?;
                    if let Cow::Owned(v) = converted {
                        f.value = v;
                    }
                    if !f.value.is_null() && col.data_type() != &ty.arrow_type() {
                        // A narrower SQL type (SMALLINT, DATE, DECIMAL, …): check the cast now.
                        values_to_array(col, [&f.value].into_iter())?;
                    }
                    f.set_type(ty);
                }
                // An untyped NULL says nothing about the column's type: add no column.
                None if !f.has_type() => untyped_new = true,
                None => {
                    if f.name.is_empty() {
                        return Err(Error::query(format!(
                            "a field of a record for '{collection}' has an empty name"
                        )));
                    }
                    new_fields.push(f.field_type.arrow_field(&f.name));
                }
            }
        }
        if untyped_new {
            let schema = &self.schema;
            record.retain_fields(|f| f.has_type() || schema.fields().find(&f.name).is_some());
        }
        for field in self.schema.fields() {
            if !field.is_nullable() && record.get(field.name()).is_none_or(Value::is_null) {
                return Err(Error::type_error(format!(
                    "column '{}' of '{collection}' is NOT NULL but the record has no value for it",
                    field.name()
                )));
            }
        }
        let grown = if new_fields.is_empty() {
            None
        } else {
            let mut fields: Vec<ArrowField> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.extend(new_fields);
            Some(Arc::new(Schema::new_with_metadata(
                fields,
                self.schema.metadata().clone(),
            )))
        };
        Ok((id, record, grown))
    }

    pub fn create(&mut self, collection: &str, record: Record) -> Result<String> {
        let (id, rec, grown) = self.prepare(collection, record, None)?;
        if self.index.contains_key(&id) {
            return Err(id_exists(&id, collection));
        }
        self.commit_prepared(id.clone(), rec, grown);
        Ok(id)
    }

    fn commit_prepared(&mut self, id: String, rec: Record, grown: Option<SchemaRef>) {
        self.version = next_version();
        if let Some(s) = grown {
            self.flush();
            self.schema = s;
        }
        self.index.insert(id.clone(), Loc::Tail(self.tail.len()));
        self.tail.push(Some((id, rec)));
        self.tail_live += 1;
        if self.tail.len() >= TAIL_LIMIT {
            self.flush();
        }
    }

    pub fn create_many(&mut self, collection: &str, records: Vec<Record>) -> Result<Vec<String>> {
        if records.len() >= TAIL_LIMIT
            && let Some(k) = self.columnar_fits(&records)
        {
            return self.create_columns(collection, records, k);
        }
        // Validate all first: all or nothing.
        let mut seen = HashSet::new();
        let mut prepared = Vec::with_capacity(records.len());
        let saved_schema = self.schema.clone();
        let saved_rowid = self.next_rowid;
        let result = (|| {
            for r in records {
                let (id, rec, grown) = self.prepare(collection, r, None)?;
                if self.index.contains_key(&id) || !seen.insert(id.clone()) {
                    return Err(id_exists(&id, collection));
                }
                if let Some(g) = grown {
                    // Later records see the grown schema; the chunk flush happens at commit.
                    self.schema = g;
                }
                prepared.push((id, rec));
            }
            Ok(())
        })();
        let final_schema = self.schema.clone();
        self.schema = saved_schema;
        if let Err(e) = result {
            self.next_rowid = saved_rowid;
            return Err(e);
        }
        let grown = (final_schema != self.schema).then_some(final_schema);
        if prepared.len() < TAIL_LIMIT {
            let mut ids = Vec::with_capacity(prepared.len());
            let mut grown = grown;
            for (id, rec) in prepared {
                ids.push(id.clone());
                self.commit_prepared(id, rec, grown.take());
            }
            return Ok(ids);
        }
        // A large batch becomes chunks directly (built before any is stored: all or none),
        // not rows of the tail buffer turned into chunks 8192 at a time.
        let schema = grown.clone().unwrap_or_else(|| self.schema.clone());
        let mut built = Vec::with_capacity(prepared.len().div_ceil(COMPACT_TARGET_ROWS));
        let mut rows = prepared.into_iter().peekable();
        while rows.peek().is_some() {
            let (ids, records): (Vec<String>, Vec<Record>) =
                rows.by_ref().take(COMPACT_TARGET_ROWS).unzip();
            match records_to_batch(&records, &schema) {
                Ok(batch) => built.push((batch, ids)),
                Err(e) => {
                    self.next_rowid = saved_rowid;
                    return Err(e);
                }
            }
        }
        self.version = next_version();
        self.flush();
        if let Some(s) = grown {
            self.schema = s;
        }
        let mut all = Vec::with_capacity(built.iter().map(|(_, ids)| ids.len()).sum());
        for (batch, ids) in built {
            all.extend(ids.iter().cloned());
            self.push_chunk(batch, ids);
        }
        self.compact_if_many();
        Ok(all)
    }

    /// Can a batch be stored column by column ([`Self::create_columns`])? Yes (the key
    /// column's index) when the collection has a text key column, no record brings a field
    /// the schema lacks (nothing to grow), and every record's key field, when it has one, is
    /// text (the id is then the key value as it is).
    fn columnar_fits(&self, records: &[Record]) -> Option<usize> {
        let fields = self.schema.fields();
        let k = self.key?;
        // Keyless collections number their rows: the record-by-record path checks those.
        if fields[k].data_type() != &DataType::Utf8 {
            return None;
        }
        let key = fields[k].name().as_str();
        let fits = records.iter().all(|r| {
            r.fields().iter().all(|f| {
                if f.name == key {
                    return matches!(f.value, Value::Null | Value::String(_));
                }
                !f.name.is_empty() && (fields.find(&f.name).is_some() || !f.has_type())
            })
        });
        fits.then_some(k)
    }

    /// A large batch with nothing to grow (see [`Self::columnar_fits`]) stored as chunks built
    /// column by column from the records, without converting each record first: all or
    /// nothing, as [`Self::create_many`]. `k`: the key column.
    fn create_columns(
        &mut self,
        collection: &str,
        records: Vec<Record>,
        k: usize,
    ) -> Result<Vec<String>> {
        let key = self.schema.field(k).name().clone();
        // The ids, checked for repeats among the given ones and against the stored rows. A
        // generated id (122 random bits) repeats no other.
        let mut given: HashSet<&str> = HashSet::new();
        let mut ids = Vec::with_capacity(records.len());
        for r in &records {
            let from_field = match r.get(&key) {
                Some(Value::String(s)) => Some(s.as_str()),
                _ => None,
            };
            let id = match (r.id(), from_field) {
                (Some(a), Some(b)) if a != b => {
                    return Err(key_disagrees(a, &key, b, collection));
                }
                (Some(a), _) | (None, Some(a)) => {
                    if !given.insert(a) || self.index.contains_key(a) {
                        return Err(id_exists(a, collection));
                    }
                    a.to_string()
                }
                (None, None) => crate::record::new_record_id(),
            };
            ids.push(id);
        }
        drop(given);
        let null = Value::Null;
        let mut built = Vec::with_capacity(records.len().div_ceil(COMPACT_TARGET_ROWS));
        for (n, (rows, chunk_ids)) in records
            .chunks(COMPACT_TARGET_ROWS)
            .zip(ids.chunks(COMPACT_TARGET_ROWS))
            .enumerate()
        {
            let mut columns = Vec::with_capacity(self.schema.fields().len());
            for (c, col) in self.schema.fields().iter().enumerate() {
                if c == k {
                    columns.push(Arc::new(StringArray::from_iter_values(chunk_ids)) as ArrayRef);
                    continue;
                }
                // Records usually list their fields in one order: look where the last had it.
                let name = col.name();
                let mut hint = 0;
                let values = rows.iter().map(|r| {
                    let fields = r.fields();
                    match fields.get(hint) {
                        Some(f) if f.name == *name => &f.value,
                        _ => match fields.iter().position(|f| f.name == *name) {
                            Some(i) => {
                                hint = i;
                                &fields[i].value
                            }
                            None => &null,
                        },
                    }
                });
                let array = values_to_array_at(col, values, n * COMPACT_TARGET_ROWS)
                    .map_err(|e| Error::type_error(format!("'{collection}': {}", e.message())))?;
                if !col.is_nullable() && array.null_count() > 0 {
                    return Err(Error::type_error(format!(
                        "column '{}' of '{collection}' is NOT NULL but a record has no value for it",
                        col.name()
                    )));
                }
                columns.push(array);
            }
            let batch = RecordBatch::try_new_with_options(
                self.schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(rows.len())),
            )?;
            built.push((batch, chunk_ids.to_vec()));
        }
        drop(records);
        self.version = next_version();
        self.flush();
        for (batch, chunk_ids) in built {
            self.push_chunk(batch, chunk_ids);
        }
        self.compact_if_many();
        Ok(ids)
    }

    pub fn read(&self, id: &str) -> Result<Option<Record>> {
        match self.index.get(id) {
            None => Ok(None),
            Some(Loc::Tail(i)) => match self.tail.get(*i).and_then(Option::as_ref) {
                None => Ok(None),
                Some((_, r)) => {
                    // The same shape a stored row has: every column, in schema order.
                    let batch = records_to_batch(std::slice::from_ref(r), &self.schema)?;
                    Ok(batch_to_records(&batch, None)?.pop().map(|mut r| {
                        r.set_id(id);
                        r
                    }))
                }
            },
            Some(Loc::Chunk(c, row)) => {
                let chunk = &self.chunks[*c];
                let batch = self.adapt(&chunk.batch)?.slice(*row, 1);
                let mut recs = batch_to_records(&batch, None)?;
                Ok(recs.pop().map(|mut r| {
                    r.set_id(id);
                    r
                }))
            }
        }
    }

    pub fn delete(&mut self, id: &str) -> bool {
        self.version = next_version();
        match self.index.remove(id) {
            None => false,
            Some(Loc::Tail(i)) => {
                self.tail[i] = None;
                self.tail_live -= 1;
                true
            }
            Some(Loc::Chunk(c, row)) => {
                self.mark_deleted(c, &[row]);
                true
            }
        }
    }

    pub fn update(&mut self, collection: &str, id: &str, record: Record) -> Result<bool> {
        if !self.index.contains_key(id) {
            return Ok(false);
        }
        let (new_id, rec, grown) = self.prepare(collection, record, Some(id))?;
        self.delete(id);
        self.commit_prepared(new_id, rec, grown);
        Ok(true)
    }

    pub fn clear(&mut self) -> u64 {
        self.version = next_version();
        let n = self.index.len() as u64;
        self.chunks.clear();
        self.tail.clear();
        self.tail_live = 0;
        self.index.clear();
        n
    }

    fn mark_deleted(&mut self, c: usize, rows: &[usize]) {
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        let n = chunk.batch.num_rows();
        let mut b = BooleanBufferBuilder::new(n);
        match &chunk.keep {
            Some(k) => b.append_buffer(k.values()),
            None => b.append_n(n, true),
        }
        for &r in rows {
            if b.get_bit(r) {
                b.set_bit(r, false);
                chunk.live -= 1;
            }
        }
        chunk.keep = Some(BooleanArray::new(b.finish(), None));
    }

    /// Turns the tail into a chunk.
    pub fn flush(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let rows: Vec<(String, Record)> = std::mem::take(&mut self.tail)
            .into_iter()
            .flatten()
            .collect();
        self.tail_live = 0;
        if rows.is_empty() {
            return;
        }
        let (ids, records): (Vec<String>, Vec<Record>) = rows.into_iter().unzip();
        // Values were converted when prepared, so this only fails on a bug.
        match records_to_batch(&records, &self.schema) {
            Ok(batch) => self.push_chunk(batch, ids),
            Err(e) => {
                tracing::error!("chunk store: tail flush failed, keeping rows in the buffer: {e}");
                self.tail = ids.into_iter().zip(records).map(Some).collect();
                self.tail_live = self.tail.len();
                for (i, slot) in self.tail.iter().enumerate() {
                    if let Some((id, _)) = slot {
                        self.index.insert(id.clone(), Loc::Tail(i));
                    }
                }
                return;
            }
        }
        self.compact_if_many();
    }

    fn compact_if_many(&mut self) {
        if self.chunks.len() > MAX_CHUNKS_BEFORE_COMPACT
            && let Err(e) = self.compact()
        {
            tracing::error!("chunk store: compaction failed: {e}");
        }
    }

    fn push_chunk(&mut self, batch: RecordBatch, ids: Vec<String>) {
        let c = self.chunks.len();
        for (row, id) in ids.iter().enumerate() {
            let loc = Loc::Chunk(c, row);
            // One lookup; the key is copied only for a row not indexed yet (rows of the tail
            // buffer are).
            *self.index.entry_ref(id.as_str()).or_insert(loc) = loc;
        }
        let live = batch.num_rows();
        self.chunks.push(Arc::new(Chunk {
            batch,
            keep: None,
            live,
            ids: Arc::new(ids),
        }));
    }

    /// Adds rows read back from a persisted file, with their ids.
    pub fn insert_loaded(&mut self, batch: RecordBatch, ids: Vec<String>) -> Result<()> {
        if ids.len() != batch.num_rows() {
            return Err(Error::config(format!(
                "{} ids for {} rows",
                ids.len(),
                batch.num_rows()
            )));
        }
        if let Some(max) = ids.iter().filter_map(|i| i.parse::<u64>().ok()).max() {
            self.next_rowid = self.next_rowid.max(max + 1);
        }
        if batch.num_rows() > 0 {
            self.push_chunk(batch, ids);
        }
        Ok(())
    }

    /// Rewrites all chunks into few large ones without deleted rows.
    pub fn compact(&mut self) -> Result<()> {
        let mut batches = Vec::new();
        let mut ids = Vec::new();
        for chunk in &self.chunks {
            let b = self.adapt(&chunk.batch)?;
            ids.extend(chunk.live_ids().cloned());
            batches.push(match &chunk.keep {
                None => b,
                Some(k) => filter_record_batch(&b, k)?,
            });
        }
        let all = concat_batches(&self.schema, &batches)?;
        self.chunks.clear();
        let mut offset = 0;
        while offset < all.num_rows() {
            let len = COMPACT_TARGET_ROWS.min(all.num_rows() - offset);
            let chunk_ids = ids[offset..offset + len].to_vec();
            self.push_chunk(all.slice(offset, len), chunk_ids);
            offset += len;
        }
        Ok(())
    }

    /// A chunk's batch widened to the current schema (missing columns are NULL).
    pub fn adapt(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        adapt_batch(&self.schema, batch)
    }

    /// Appends batches of the collection's schema (SQL INSERT): all rows or none.
    pub fn insert_batches(&mut self, collection: &str, batches: Vec<RecordBatch>) -> Result<u64> {
        self.flush();
        self.version = next_version();
        let mut prepared = Vec::with_capacity(batches.len());
        let mut seen: HashSet<String> = HashSet::new();
        let mut rowid = self.next_rowid;
        for batch in batches {
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = conform_batch(&self.schema, &batch, collection)?;
            let ids: Vec<String> = match self.key {
                Some(k) => {
                    let key_name = self.schema.field(k).name();
                    let col = batch.column(k);
                    if col.null_count() > 0 {
                        return Err(Error::type_error(format!(
                            "key column '{key_name}' of '{collection}' cannot be NULL"
                        )));
                    }
                    let text = cast_with_options(col, &DataType::Utf8, &cast_opts())?;
                    let values = crate::record::array_to_values(
                        &ArrowField::new(key_name, DataType::Utf8, true),
                        &text,
                    )?;
                    let mut ids = Vec::with_capacity(values.len());
                    for v in values {
                        let id = v.to_text();
                        if self.index.contains_key(&id) || !seen.insert(id.clone()) {
                            return Err(Error::already_exists(format!(
                                "duplicate key '{id}' in column '{key_name}' of '{collection}'; no rows were inserted"
                            )));
                        }
                        ids.push(id);
                    }
                    ids
                }
                None => (0..batch.num_rows())
                    .map(|_| {
                        let id = rowid.to_string();
                        rowid += 1;
                        id
                    })
                    .collect(),
            };
            prepared.push((batch, ids));
        }
        self.next_rowid = rowid;
        let mut n = 0u64;
        for (batch, ids) in prepared {
            n += batch.num_rows() as u64;
            self.push_chunk(batch, ids);
        }
        if self.chunks.len() > MAX_CHUNKS_BEFORE_COMPACT {
            self.compact()?;
        }
        Ok(n)
    }

    /// Live rows of chunk `c` matching `mask` (true = match), as row numbers.
    fn matching_rows(chunk: &Chunk, mask: Option<&BooleanArray>) -> Vec<usize> {
        let n = chunk.batch.num_rows();
        (0..n)
            .filter(|&r| chunk.keep.as_ref().is_none_or(|k| k.value(r)))
            .filter(|&r| mask.is_none_or(|m| m.is_valid(r) && m.value(r)))
            .collect()
    }

    pub fn delete_where(
        &mut self,
        predicate: Option<&Arc<dyn datafusion::physical_expr::PhysicalExpr>>,
    ) -> Result<u64> {
        self.flush();
        let mut plan = Vec::new();
        for (c, chunk) in self.chunks.iter().enumerate() {
            if chunk.live == 0 {
                continue;
            }
            let mask = match predicate {
                Some(p) => Some(crate::pushdown::eval::evaluate_mask(
                    p,
                    &self.adapt(&chunk.batch)?,
                )?),
                None => None,
            };
            let rows = Self::matching_rows(chunk, mask.as_ref());
            if !rows.is_empty() {
                plan.push((c, rows));
            }
        }
        let mut n = 0;
        for (c, rows) in plan {
            for &r in &rows {
                self.index.remove(&self.chunks[c].ids[r]);
            }
            n += rows.len() as u64;
            self.mark_deleted(c, &rows);
        }
        Ok(n)
    }

    pub fn update_where(
        &mut self,
        collection: &str,
        assignments: &[(usize, Arc<dyn datafusion::physical_expr::PhysicalExpr>)],
        predicate: Option<&Arc<dyn datafusion::physical_expr::PhysicalExpr>>,
    ) -> Result<u64> {
        self.flush();
        self.version = next_version();
        // Compute every new row first; apply only when all succeed.
        let mut plan: Vec<(usize, Vec<usize>, RecordBatch)> = Vec::new();
        for (c, chunk) in self.chunks.iter().enumerate() {
            if chunk.live == 0 {
                continue;
            }
            let full = self.adapt(&chunk.batch)?;
            let mask = match predicate {
                Some(p) => Some(crate::pushdown::eval::evaluate_mask(p, &full)?),
                None => None,
            };
            let rows = Self::matching_rows(chunk, mask.as_ref());
            if rows.is_empty() {
                continue;
            }
            let mut sel = BooleanBufferBuilder::new(full.num_rows());
            sel.append_n(full.num_rows(), false);
            for &r in &rows {
                sel.set_bit(r, true);
            }
            let matched = filter_record_batch(&full, &BooleanArray::new(sel.finish(), None))?;
            let mut columns: Vec<ArrayRef> = matched.columns().to_vec();
            for (col, expr) in assignments {
                let v = expr.evaluate(&matched)?.into_array(matched.num_rows())?;
                columns[*col] =
                    conform_column(self.schema.field(*col), &v, collection, Write::Update)?;
            }
            let new_batch = RecordBatch::try_new(self.schema.clone(), columns)?;
            plan.push((c, rows, new_batch));
        }
        self.apply_updates(collection, plan)
    }

    /// Deletes the rows with these ids (skipping absent ones); returns how many.
    pub fn delete_ids(&mut self, ids: &[String]) -> u64 {
        ids.iter().filter(|id| self.delete(id)).count() as u64
    }

    /// Sets the columns of `values` (named as table columns, one row per id) on the rows with
    /// these ids, all or none. Absent ids are skipped; a repeated id is updated once (its first
    /// row). Returns how many rows changed.
    pub fn update_ids(
        &mut self,
        collection: &str,
        ids: &[String],
        values: &RecordBatch,
    ) -> Result<u64> {
        self.flush();
        self.version = next_version();
        let mut targets = Vec::with_capacity(values.num_columns());
        for field in values.schema().fields() {
            let idx = self.schema.index_of(field.name()).map_err(|_| {
                Error::query(format!(
                    "UPDATE: '{collection}' has no column '{}' (columns: {})",
                    field.name(),
                    column_list(&self.schema)
                ))
            })?;
            targets.push(idx);
        }
        // Rows per chunk, with the row of `values` that holds their new values.
        let mut by_chunk: std::collections::BTreeMap<usize, Vec<(usize, u32)>> = Default::default();
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, id) in ids.iter().enumerate() {
            if !seen.insert(id.as_str()) {
                continue;
            }
            if let Some(Loc::Chunk(c, r)) = self.index.get(id.as_str()) {
                by_chunk.entry(*c).or_default().push((*r, i as u32));
            }
        }
        let mut plan: Vec<(usize, Vec<usize>, RecordBatch)> = Vec::with_capacity(by_chunk.len());
        for (c, mut rows) in by_chunk {
            rows.sort_unstable();
            let full = self.adapt(&self.chunks[c].batch)?;
            let row_idx = UInt32Array::from_iter_values(rows.iter().map(|(r, _)| *r as u32));
            let val_idx = UInt32Array::from_iter_values(rows.iter().map(|(_, i)| *i));
            let matched = take_record_batch(&full, &row_idx)?;
            let mut columns: Vec<ArrayRef> = matched.columns().to_vec();
            for (j, &col) in targets.iter().enumerate() {
                let v = take(values.column(j).as_ref(), &val_idx, None)?;
                let field = self.schema.field(col);
                columns[col] = conform_column(field, &v, collection, Write::Update)?;
            }
            let new_batch = RecordBatch::try_new(self.schema.clone(), columns)?;
            plan.push((c, rows.into_iter().map(|(r, _)| r).collect(), new_batch));
        }
        self.apply_updates(collection, plan)
    }

    /// Replaces rows (chunk, row numbers) by new full rows, all or none: new keys must be
    /// unique among themselves and against the rows left alone.
    fn apply_updates(
        &mut self,
        collection: &str,
        plan: Vec<(usize, Vec<usize>, RecordBatch)>,
    ) -> Result<u64> {
        // New ids (key column may change): unique among themselves and against untouched rows.
        let mut touched: HashSet<&str> = HashSet::new();
        for (c, rows, _) in &plan {
            let ids = &self.chunks[*c].ids;
            touched.extend(rows.iter().map(|&r| ids[r].as_str()));
        }
        let mut new_ids: Vec<Vec<String>> = Vec::with_capacity(plan.len());
        let mut seen: HashSet<String> = HashSet::new();
        for (c, rows, batch) in &plan {
            let ids: Vec<String> = match self.key {
                Some(k) => {
                    let text = cast_with_options(batch.column(k), &DataType::Utf8, &cast_opts())?;
                    let vals = crate::record::array_to_values(
                        &ArrowField::new("k", DataType::Utf8, true),
                        &text,
                    )?;
                    let mut ids = Vec::with_capacity(vals.len());
                    for v in vals {
                        if v.is_null() {
                            return Err(Error::type_error(format!(
                                "UPDATE would set the key of '{collection}' to NULL"
                            )));
                        }
                        let id = v.to_text();
                        if (self.index.contains_key(&id) && !touched.contains(id.as_str()))
                            || !seen.insert(id.clone())
                        {
                            return Err(Error::already_exists(format!(
                                "UPDATE would create duplicate key '{id}' in '{collection}'; nothing was changed"
                            )));
                        }
                        ids.push(id);
                    }
                    ids
                }
                None => rows
                    .iter()
                    .map(|&r| self.chunks[*c].ids[r].clone())
                    .collect(),
            };
            new_ids.push(ids);
        }
        drop(touched);
        let mut n = 0u64;
        for ((c, rows, _), _) in plan.iter().zip(&new_ids) {
            for &r in rows {
                self.index.remove(&self.chunks[*c].ids[r]);
            }
            self.mark_deleted(*c, rows);
        }
        for ((_, rows, batch), ids) in plan.into_iter().zip(new_ids) {
            n += rows.len() as u64;
            self.push_chunk(batch, ids);
        }
        Ok(n)
    }
}

fn id_exists(id: &str, collection: &str) -> Error {
    Error::already_exists(format!("a record with id '{id}' exists in '{collection}'"))
}

fn key_disagrees(id: &str, key: &str, value: &str, collection: &str) -> Error {
    Error::query(format!(
        "record id '{id}' disagrees with its key field '{key}' = '{value}' in '{collection}'"
    ))
}

/// Widens a batch whose columns are a prefix of `schema` to all of it.
pub(crate) fn adapt_batch(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
    if batch.num_columns() == schema.fields().len() {
        if batch.schema_ref() == schema {
            return Ok(batch.clone());
        }
        return Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            batch.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?);
    }
    let mut cols = batch.columns().to_vec();
    for f in schema.fields().iter().skip(cols.len()) {
        cols.push(new_null_array(f.data_type(), batch.num_rows()));
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// Which statement a column's new values come from (for the error message).
#[derive(Clone, Copy)]
enum Write {
    Insert,
    Update,
}

/// New values for a column, cast to its type with Arrow's checked casts; NULL in a NOT NULL
/// column is an error.
fn conform_column(
    field: &datafusion::arrow::datatypes::Field,
    values: &ArrayRef,
    collection: &str,
    write: Write,
) -> Result<ArrayRef> {
    let name = field.name();
    let values = if values.data_type() == field.data_type() {
        values.clone()
    } else {
        cast_with_options(values, field.data_type(), &cast_opts()).map_err(|e| {
            Error::type_error(match write {
                Write::Insert => {
                    format!(
                        "column '{name}' of '{collection}' ({}): {e}",
                        field.data_type()
                    )
                }
                Write::Update => format!("UPDATE of column '{name}' of '{collection}': {e}"),
            })
        })?
    };
    if !field.is_nullable() && values.null_count() > 0 {
        return Err(Error::type_error(match write {
            Write::Insert => format!(
                "column '{name}' of '{collection}' is NOT NULL; the inserted rows hold NULL there"
            ),
            Write::Update => {
                format!("UPDATE would set NOT NULL column '{name}' of '{collection}' to NULL")
            }
        }));
    }
    Ok(values)
}

/// Makes an incoming batch match the table schema exactly (by position, with checked casts and
/// NOT NULL checks).
fn conform_batch(schema: &SchemaRef, batch: &RecordBatch, collection: &str) -> Result<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(Error::query(format!(
            "INSERT into '{collection}' got {} columns, the table has {} ({})",
            batch.num_columns(),
            schema.fields().len(),
            column_list(schema)
        )));
    }
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        cols.push(conform_column(field, col, collection, Write::Insert)?);
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        cols,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// The rows of a chunk that are alive and match `predicate`, projected.
pub(crate) fn scan_chunk(
    schema: &SchemaRef,
    chunk: &Chunk,
    offset: usize,
    len: usize,
    predicate: Option<&Arc<dyn datafusion::physical_expr::PhysicalExpr>>,
    projection: &[usize],
) -> Result<RecordBatch> {
    scan_chunk_rows(schema, chunk, offset, len, predicate, projection, false)
}

/// [`scan_chunk`], with the rows' record ids as a last Utf8 column named
/// [`ROW_ID`](crate::query::ROW_ID) when `with_ids` is set.
pub(crate) fn scan_chunk_rows(
    schema: &SchemaRef,
    chunk: &Chunk,
    offset: usize,
    len: usize,
    predicate: Option<&Arc<dyn datafusion::physical_expr::PhysicalExpr>>,
    projection: &[usize],
    with_ids: bool,
) -> Result<RecordBatch> {
    let full = adapt_batch(schema, &chunk.batch.slice(offset, len))?;
    let keep = chunk.keep.as_ref().map(|k| k.slice(offset, len));
    let mask = match (predicate, keep) {
        (None, k) => k,
        (Some(p), None) => Some(crate::pushdown::eval::evaluate_mask(p, &full)?),
        (Some(p), Some(k)) => Some(and(&k, &crate::pushdown::eval::evaluate_mask(p, &full)?)?),
    };
    let mut projected = full.project(projection)?;
    if with_ids {
        let ids = StringArray::from_iter_values(chunk.ids[offset..offset + len].iter());
        let mut fields: Vec<_> = projected.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(row_id_field()));
        let mut columns = projected.columns().to_vec();
        columns.push(Arc::new(ids));
        projected = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(len)),
        )?;
    }
    Ok(match mask {
        None => projected,
        Some(m) => filter_record_batch(&projected, &m)?,
    })
}

/// The record-id column a scan adds for [`Query::row_ids`](crate::query::Query::row_ids).
pub(crate) fn row_id_field() -> ArrowField {
    ArrowField::new(crate::query::ROW_ID, DataType::Utf8, false)
}
