//! Binary COPY → Arrow. PostgreSQL sends one tuple per CopyData message; [`CopyReader`] copies
//! them back to back into one buffer, records where every field starts, and after
//! [`SUB_ROWS`] tuples (or [`SUB_BYTES`] bytes) decodes the sub-batch a column at a time, so
//! each column's type is matched once per sub-batch rather than once per value. Batches are
//! cut at [`BATCH_ROWS`] rows (or [`BATCH_BYTES`] of input for very wide rows).
//!
//! The reader is synchronous and knows nothing of the connection: the scan feeds it the
//! chunks of the COPY stream and sends on the batches it returns.

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;

use super::BACKEND;
use super::decoder::{ColumnDecoder, FieldRef, Tuples};
use super::types::PgColumn;
use crate::error::{Error, ErrorKind, Result};

/// Rows per Arrow batch.
pub(super) const BATCH_ROWS: usize = 8192;
/// The first batch handed on early, when the stream has nothing more for now; each early
/// batch after it is twice as large (up to [`BATCH_ROWS`]). A small result reaches the reader
/// while the server still sends (the reader converts a part while the rest arrives); a large
/// scan soon gets full batches.
const FIRST_EARLY_ROWS: usize = 256;

/// When a stream that has nothing more for now hands on the rows it holds: from
/// [`FIRST_EARLY_ROWS`], then twice as many each time, up to [`BATCH_ROWS`].
pub(super) struct EarlyCut(usize);

impl Default for EarlyCut {
    fn default() -> Self {
        EarlyCut(FIRST_EARLY_ROWS)
    }
}

impl EarlyCut {
    /// Whether `rows` held rows go on now (the next cut then takes twice as many).
    pub(super) fn take(&mut self, rows: usize) -> bool {
        if rows < self.0 {
            return false;
        }
        self.0 = (self.0 * 2).min(BATCH_ROWS);
        true
    }
}
/// Input bytes after which a batch is cut even if it has fewer rows.
const BATCH_BYTES: usize = 64 << 20;
/// Tuples decoded together, a column at a time.
const SUB_ROWS: usize = 512;
/// Bytes of tuples after which a sub-batch is decoded even if it has fewer rows.
const SUB_BYTES: usize = 256 << 10;
/// The signature opening every binary COPY stream.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

enum Step {
    Row,
    End,
    Incomplete,
}

/// Decodes one binary COPY stream of `columns` into batches of `schema`.
pub struct CopyReader<'a> {
    columns: &'a [PgColumn],
    schema: SchemaRef,
    table: &'a str,
    decoders: Vec<ColumnDecoder>,
    tuples: Tuples,
    /// Bytes at the start of `tuples.buf` that hold complete, parsed tuples.
    parsed: usize,
    header: bool,
    ended: bool,
    batch_rows: usize,
    batch_bytes: usize,
    early: EarlyCut,
}

impl<'a> CopyReader<'a> {
    pub fn new(columns: &'a [PgColumn], schema: SchemaRef, table: &'a str) -> Self {
        CopyReader {
            columns,
            schema,
            table,
            decoders: columns
                .iter()
                .map(|c| ColumnDecoder::new(&c.kind, BATCH_ROWS))
                .collect(),
            tuples: Tuples {
                buf: Vec::with_capacity(SUB_BYTES + (SUB_BYTES >> 2)),
                fields: Vec::with_capacity(SUB_ROWS * columns.len()),
                ncols: columns.len(),
                rows: 0,
            },
            parsed: 0,
            header: false,
            ended: false,
            batch_rows: 0,
            batch_bytes: 0,
            early: EarlyCut::default(),
        }
    }

    /// The stream has nothing more for now: the rows decoded so far go to `out` as a batch
    /// if there are at least as many as the next early batch takes (256, then twice as many
    /// each time, up to [`BATCH_ROWS`]).
    pub fn flush_early(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.ended || !self.early.take(self.batch_rows + self.tuples.rows) {
            return Ok(());
        }
        self.decode(out)?;
        if self.batch_rows > 0 {
            out.push(self.finish_batch()?);
        }
        Ok(())
    }

    /// Takes the next chunk of the stream (any split of it); full batches go to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.ended {
            return if chunk.is_empty() {
                Ok(())
            } else {
                Err(malformed(
                    self.table,
                    "data after the end of the COPY stream".into(),
                ))
            };
        }
        self.tuples.buf.extend_from_slice(chunk);
        if !self.header && !self.read_header()? {
            return Ok(());
        }
        loop {
            match self.next_tuple()? {
                Step::Row => {
                    let limit = SUB_ROWS.min(BATCH_ROWS - self.batch_rows);
                    if self.tuples.rows >= limit || self.parsed >= SUB_BYTES {
                        self.decode(out)?;
                    }
                }
                Step::End => {
                    self.ended = true;
                    if self.parsed != self.tuples.buf.len() {
                        return Err(malformed(
                            self.table,
                            "data after the end of the COPY stream".into(),
                        ));
                    }
                    return Ok(());
                }
                Step::Incomplete => return Ok(()),
            }
        }
    }

    /// The end of the stream: the last batch goes to `out`. A stream without its end marker
    /// is an error (the connection broke, or the server stopped sending).
    pub fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if !self.ended {
            return Err(Error::new(
                ErrorKind::Connection,
                format!("reading {}: the COPY stream ended early", self.table),
            )
            .with_backend(BACKEND));
        }
        self.decode(out)?;
        if self.batch_rows > 0 {
            out.push(self.finish_batch()?);
        }
        Ok(())
    }

    /// Reads the header once it is all there; false: not yet.
    fn read_header(&mut self) -> Result<bool> {
        let b = &self.tuples.buf;
        if b.len() < 19 {
            return Ok(false);
        }
        if &b[..11] != SIGNATURE {
            return Err(malformed(self.table, "unexpected COPY header".into()));
        }
        let ext = i32::from_be_bytes([b[15], b[16], b[17], b[18]]);
        let Ok(ext) = usize::try_from(ext) else {
            return Err(malformed(
                self.table,
                format!("bad COPY header extension length {ext}"),
            ));
        };
        if b.len() < 19 + ext {
            return Ok(false);
        }
        self.tuples.buf.drain(..19 + ext);
        self.header = true;
        Ok(true)
    }

    /// Parses the tuple at `parsed`, recording its fields, if all of it is there.
    fn next_tuple(&mut self) -> Result<Step> {
        let table = self.table;
        let t = &mut self.tuples;
        let buf = t.buf.as_slice();
        let mut p = self.parsed;
        let Some(h) = buf.get(p..p + 2) else {
            return Ok(Step::Incomplete);
        };
        let n = i16::from_be_bytes([h[0], h[1]]);
        p += 2;
        if n == -1 {
            self.parsed = p;
            return Ok(Step::End);
        }
        if usize::try_from(n).ok() != Some(t.ncols) {
            let msg = format!("expected {} fields in a tuple, got {n}", t.ncols);
            return Err(malformed(table, msg));
        }
        let mark = t.fields.len();
        for _ in 0..t.ncols {
            let Some(l) = buf.get(p..p + 4) else {
                t.fields.truncate(mark);
                return Ok(Step::Incomplete);
            };
            let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
            p += 4;
            let start = p;
            if len >= 0 {
                p += len as usize;
                if p > buf.len() {
                    t.fields.truncate(mark);
                    return Ok(Step::Incomplete);
                }
            } else if len != -1 {
                return Err(malformed(table, format!("bad field length {len}")));
            }
            t.fields.push(FieldRef { start, len });
        }
        t.rows += 1;
        self.parsed = p;
        Ok(Step::Row)
    }

    /// Decodes the parsed tuples into the column decoders and keeps only the unparsed rest.
    fn decode(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.tuples.rows == 0 {
            return Ok(());
        }
        for (i, (d, c)) in self.decoders.iter_mut().zip(self.columns).enumerate() {
            d.append_column(&self.tuples, i, &c.kind)
                .map_err(|m| column_error(self.table, &c.name, &m))?;
        }
        self.batch_rows += self.tuples.rows;
        self.batch_bytes += self.parsed;
        self.tuples.buf.drain(..self.parsed);
        self.tuples.fields.clear();
        self.tuples.rows = 0;
        self.parsed = 0;
        if self.batch_rows >= BATCH_ROWS || self.batch_bytes >= BATCH_BYTES {
            out.push(self.finish_batch()?);
        }
        Ok(())
    }

    fn finish_batch(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(&mut self.batch_rows);
        self.batch_bytes = 0;
        finish_batch(
            &mut self.decoders,
            &self.schema,
            rows,
            self.columns,
            self.table,
        )
    }
}

fn malformed(table: &str, msg: String) -> Error {
    Error::internal(format!("reading {table}: {msg}")).with_backend(BACKEND)
}

fn column_error(table: &str, column: &str, msg: &str) -> Error {
    Error::type_error(format!("reading {table}, column '{column}': {msg}")).with_backend(BACKEND)
}

/// The batch of the `rows` rows the decoders hold (they are reset for the next one).
pub(super) fn finish_batch(
    decoders: &mut [ColumnDecoder],
    schema: &SchemaRef,
    rows: usize,
    columns: &[PgColumn],
    table: &str,
) -> Result<RecordBatch> {
    let mut arrays = Vec::with_capacity(decoders.len());
    for (d, c) in decoders.iter_mut().zip(columns) {
        arrays.push(d.finish().map_err(|m| column_error(table, &c.name, &m))?);
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::{BufMut, BytesMut};
    use datafusion::arrow::array::{
        Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int16Array,
        Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::Schema;

    use super::*;
    use crate::backends::postgres::encoder::ColumnEncoder;
    use crate::backends::postgres::types::Kind;

    fn col(name: &str, kind: Kind, type_name: &str) -> PgColumn {
        PgColumn {
            name: name.into(),
            kind,
            type_name: type_name.into(),
            not_null: false,
            nondeterministic: false,
            store_default: None,
        }
    }

    fn columns() -> Vec<PgColumn> {
        vec![
            col("b", Kind::Bool, "boolean"),
            col("s", Kind::Int2, "smallint"),
            col("i", Kind::Int4, "integer"),
            col("l", Kind::Int8, "bigint"),
            col("f", Kind::Float8, "double precision"),
            col("n", Kind::Numeric(Some((15, 2))), "numeric(15,2)"),
            col("t", Kind::Text, "text"),
            col("d", Kind::Date, "date"),
            col("ts", Kind::Timestamptz, "timestamp with time zone"),
            col("a", Kind::Array(Box::new(Kind::Int4)), "integer[]"),
        ]
    }

    fn schema(columns: &[PgColumn]) -> SchemaRef {
        Arc::new(Schema::new(
            columns.iter().map(|c| c.arrow_field()).collect::<Vec<_>>(),
        ))
    }

    /// `rows` rows of every column kind, NULLs in every column at some rows (the arrays are
    /// what the decoder must give back).
    fn arrays(rows: usize) -> Vec<ArrayRef> {
        let null = |r: usize, k: usize| r % (7 + k) == 3;
        let r = 0..rows;
        let list = {
            let mut b = datafusion::arrow::array::ListBuilder::new(
                datafusion::arrow::array::Int32Builder::new(),
            );
            for r in r.clone() {
                if null(r, 9) {
                    b.append_null();
                } else {
                    for e in 0..(r % 4) {
                        b.values().append_value((r * 10 + e) as i32);
                    }
                    b.append(true);
                }
            }
            b.finish()
        };
        vec![
            Arc::new(BooleanArray::from_iter(
                r.clone().map(|r| (!null(r, 0)).then_some(r % 2 == 0)),
            )),
            Arc::new(Int16Array::from_iter(
                r.clone().map(|r| (!null(r, 1)).then_some(r as i16 - 300)),
            )),
            Arc::new(Int32Array::from_iter(
                r.clone().map(|r| (!null(r, 2)).then_some(r as i32 * -7)),
            )),
            Arc::new(Int64Array::from_iter(
                r.clone()
                    .map(|r| (!null(r, 3)).then_some(r as i64 * 1_000_000_007)),
            )),
            Arc::new(Float64Array::from_iter(
                r.clone().map(|r| (!null(r, 4)).then_some(r as f64 / 3.0)),
            )),
            Arc::new(
                Decimal128Array::from_iter(
                    r.clone()
                        .map(|r| (!null(r, 5)).then_some(r as i128 * 1234 - 99_999)),
                )
                .with_precision_and_scale(15, 2)
                .unwrap(),
            ),
            Arc::new(StringArray::from_iter(r.clone().map(|r| {
                (!null(r, 6)).then(|| format!("row {r} ü \"'\\ {}", "x".repeat(r % 50)))
            }))),
            Arc::new(Date32Array::from_iter(
                r.clone()
                    .map(|r| (!null(r, 7)).then_some(r as i32 - 11_000)),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    r.clone()
                        .map(|r| (!null(r, 8)).then_some(r as i64 * 86_400_000_123 - 5)),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(list),
        ]
    }

    /// The binary COPY stream PostgreSQL would send for `arrays`.
    fn stream(columns: &[PgColumn], arrays: &[ArrayRef]) -> Vec<u8> {
        let enc: Vec<ColumnEncoder> = arrays
            .iter()
            .zip(columns)
            .map(|(a, c)| ColumnEncoder::new(a, &c.kind, &c.name).unwrap())
            .collect();
        let mut out = BytesMut::new();
        out.put_slice(b"PGCOPY\n\xff\r\n\0");
        out.put_i32(0);
        out.put_i32(4); // a header extension, which readers skip
        out.put_u32(0xdead_beef);
        for r in 0..arrays[0].len() {
            out.put_i16(columns.len() as i16);
            for e in &enc {
                e.encode(r, &mut out).unwrap();
            }
        }
        out.put_i16(-1);
        out.to_vec()
    }

    fn read(columns: &[PgColumn], chunks: &[&[u8]]) -> Result<Vec<RecordBatch>> {
        let mut reader = CopyReader::new(columns, schema(columns), "t");
        let mut out = Vec::new();
        for c in chunks {
            reader.feed(c, &mut out)?;
        }
        reader.finish(&mut out)?;
        Ok(out)
    }

    fn chunked(data: &[u8], size: usize) -> Vec<&[u8]> {
        data.chunks(size).collect()
    }

    #[test]
    fn every_kind_and_null_comes_back_exactly() {
        let columns = columns();
        let expected = arrays(1000);
        let data = stream(&columns, &expected);
        let batches = read(&columns, &[&data]).unwrap();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 1000);
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(batch.column(i).as_ref(), want.as_ref(), "column {i}");
        }
        assert!(batch.column(6).null_count() > 0);
    }

    #[test]
    fn any_split_of_the_stream_reads_the_same() {
        let columns = columns();
        let data = stream(&columns, &arrays(700));
        let whole = read(&columns, &[&data]).unwrap();
        let whole = concat_batches(&schema(&columns), &whole).unwrap();
        for size in (1..40).chain([97, 331, 1000, 4096, 65_537]) {
            let parts = read(&columns, &chunked(&data, size)).unwrap();
            let parts = concat_batches(&schema(&columns), &parts).unwrap();
            assert_eq!(parts, whole, "chunks of {size} bytes");
        }
    }

    #[test]
    fn early_batches_start_small_and_double_up_to_batch_rows() {
        let columns = columns();
        let rows = 3 * BATCH_ROWS;
        let expected = arrays(rows);
        let data = stream(&columns, &expected);
        let mut reader = CopyReader::new(&columns, schema(&columns), "t");
        let mut out = Vec::new();
        // As a scan would: after each chunk the stream has nothing more for now.
        for c in chunked(&data, 1500) {
            reader.feed(c, &mut out).unwrap();
            reader.flush_early(&mut out).unwrap();
        }
        reader.finish(&mut out).unwrap();
        let sizes: Vec<usize> = out.iter().map(|b| b.num_rows()).collect();
        assert!(sizes.len() > 5, "early batches: {sizes:?}");
        // Each early batch is at least its threshold (256, 512, …) and at most a chunk's
        // worth of rows over it; none exceeds BATCH_ROWS.
        let mut threshold = FIRST_EARLY_ROWS;
        for &n in &sizes[..sizes.len() - 1] {
            assert!(
                n >= threshold && n <= threshold + 100,
                "{n} for {threshold}: {sizes:?}"
            );
            threshold = (threshold * 2).min(BATCH_ROWS);
        }
        assert!(sizes.iter().all(|&n| n <= BATCH_ROWS), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), rows);
        let all = concat_batches(&schema(&columns), &out).unwrap();
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(all.column(i).as_ref(), want.as_ref(), "column {i}");
        }
        // Fewer rows than the threshold: nothing is handed on early.
        let mut reader = CopyReader::new(&columns, schema(&columns), "t");
        let mut out = Vec::new();
        reader.feed(&data[..3000], &mut out).unwrap();
        reader.flush_early(&mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn batches_are_cut_at_batch_rows_across_sub_batches() {
        let columns = columns();
        let rows = 2 * BATCH_ROWS + 777;
        let expected = arrays(rows);
        let data = stream(&columns, &expected);
        let batches = read(&columns, &chunked(&data, 8191)).unwrap();
        let sizes: Vec<usize> = batches.iter().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, vec![BATCH_ROWS, BATCH_ROWS, 777]);
        let all = concat_batches(&schema(&columns), &batches).unwrap();
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(all.column(i).as_ref(), want.as_ref(), "column {i}");
        }
    }

    #[test]
    fn no_columns_still_counts_rows() {
        let mut data = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        for _ in 0..600 {
            data.extend_from_slice(&0i16.to_be_bytes());
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        let batches = read(&[], &chunked(&data, 3)).unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 600);
    }

    #[test]
    fn broken_streams_are_clear_errors() {
        let columns = columns();
        let data = stream(&columns, &arrays(50));
        // Cut anywhere before the end marker: "ended early", never a partial success.
        for cut in [0, 5, 19, 30, data.len() / 2, data.len() - 1] {
            let err = read(&columns, &[&data[..cut]]).unwrap_err().to_string();
            assert!(err.contains("ended early"), "cut at {cut}: {err}");
        }
        let mut bad = data.clone();
        bad[0] = b'X';
        let err = read(&columns, &[&bad]).unwrap_err().to_string();
        assert!(err.contains("unexpected COPY header"), "{err}");
        let mut extra = data.clone();
        extra.extend_from_slice(b"\0\x01");
        let err = read(&columns, &[&extra]).unwrap_err().to_string();
        assert!(err.contains("data after the end"), "{err}");
        let err = read(&columns, &[&data, b"x"]).unwrap_err().to_string();
        assert!(err.contains("data after the end"), "{err}");
        // A tuple with the wrong number of fields (first tuple after the 23-byte header).
        let mut fields = data.clone();
        fields[23..25].copy_from_slice(&3i16.to_be_bytes());
        let err = read(&columns, &[&fields]).unwrap_err().to_string();
        assert!(err.contains("expected 10 fields"), "{err}");
        // A negative length other than -1.
        let mut len = data.clone();
        len[25..29].copy_from_slice(&(-5i32).to_be_bytes());
        let err = read(&columns, &[&len]).unwrap_err().to_string();
        assert!(err.contains("bad field length -5"), "{err}");
        // A bool field with two bytes: the error names the column.
        let one = [col("flag", Kind::Bool, "boolean")];
        let mut two = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        two.extend_from_slice(&[0, 1, 0, 0, 0, 2, 1, 1, 0xff, 0xff]);
        let err = read(&one, &[&two]).unwrap_err().to_string();
        assert!(err.contains("column 'flag'"), "{err}");
    }

    #[test]
    fn invalid_utf8_names_the_column() {
        let one = [col("name", Kind::Text, "text")];
        let mut data = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        data.extend_from_slice(&[0, 1, 0, 0, 0, 2, 0xc3, 0x28, 0xff, 0xff]);
        let err = read(&one, &[&data]).unwrap_err().to_string();
        assert!(
            err.contains("column 'name'") && err.contains("UTF-8"),
            "{err}"
        );
    }
}
