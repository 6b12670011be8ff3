//! PostgreSQL-specific tests beyond the shared suites: type mapping, unmappable types, round
//! trips, pushdown equivalence, quoting, atomic inserts, faults (terminated backend, server
//! restart), connection errors and the record API. Each test works in its own PostgreSQL
//! schema. `server_restart_between_queries` restarts the server: it takes the write side of
//! [`SERVER`], every other test here the read side, so it never runs beside them.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{self as adt, DataType, IntervalUnit, TimeUnit};
use datafusion::arrow::util::display::array_value_to_string;
use dataknobs::backends::postgres::{PgBackend, PgOptions};
use dataknobs::{Engine, ErrorKind, Operator, Query, Record, Value};
use tokio_postgres::{Client, NoTls};

use crate::common::{ids_where, rows, same_ids_as_postgresql, sorted_rows, unique_name};
use crate::postgres::{fresh_schema, url, url_with};

/// Held for reading by every test here, for writing by the one that restarts the server.
static SERVER: LazyLock<tokio::sync::RwLock<()>> = LazyLock::new(|| tokio::sync::RwLock::new(()));

/// A direct connection (fixtures dataknobs SQL cannot make), in UTC.
async fn native() -> Client {
    let (client, conn) = tokio_postgres::connect(&url(), NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is not reachable: {e}", url()));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .batch_execute("SET TimeZone = 'UTC'")
        .await
        .expect("set timezone");
    client
}

/// An engine with PostgreSQL attached as `pg` (the default backend) in `schema`.
async fn engine_for(schema: &str, extra: &str) -> Engine {
    let engine = Engine::new();
    let opts = if extra.is_empty() {
        format!("schema={schema}")
    } else {
        format!("schema={schema}&{extra}")
    };
    engine
        .attach("pg", &url_with(&opts))
        .await
        .expect("attach postgres");
    engine.set_default_backend("pg").expect("default");
    engine
}

/// `"schema"."name"` for native SQL.
fn q(schema: &str, name: &str) -> String {
    format!("{}.{}", qi(schema), qi(name))
}

/// A quoted identifier (the same rule in PostgreSQL and DataFusion).
fn qi(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal ('' doubled).
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn one(batches: &[RecordBatch]) -> RecordBatch {
    assert!(!batches.is_empty(), "no batches");
    concat_batches(&batches[0].schema(), batches).expect("concat")
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", b.schema()))
}

/// Every value of a column as display text ("NULL" for null).
fn texts(b: &RecordBatch, name: &str) -> Vec<String> {
    let a = col(b, name);
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                "NULL".to_string()
            } else {
                array_value_to_string(a, i).expect("display")
            }
        })
        .collect()
}

/// All text of all batches (EXPLAIN output).
fn all_text(batches: &[RecordBatch]) -> String {
    let mut out = String::new();
    for b in batches {
        for c in b.columns() {
            for i in 0..c.len() {
                out.push_str(&array_value_to_string(c, i).unwrap_or_default());
                out.push('\n');
            }
        }
    }
    out
}

async fn count(engine: &Engine, table: &str) -> i64 {
    let b = one(&engine
        .execute(&format!("SELECT count(*) AS n FROM {table}"))
        .await
        .expect("count"));
    b.column(0).as_primitive::<adt::Int64Type>().value(0)
}

async fn native_count(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("native count")
        .get(0)
}

fn days(y: i32, m: u32, d: u32) -> i32 {
    (NaiveDate::from_ymd_opt(y, m, d).unwrap() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
}

fn micros(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_micro_opt(h, mi, s, us)
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

fn rfc3339_micros(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .timestamp_micros()
}

// ------------------------------------------------------------------ 1. type mapping

const TYPES_COLUMNS: &str = "id int PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, f4 real, \
    f8 double precision, n152 numeric(15,2), n405 numeric(40,5), n numeric, t text, \
    vc varchar(10), c5 char(5), b boolean, d date, tm time, ts timestamp, tstz timestamptz, \
    iv interval, u uuid, bin bytea, j json, jb jsonb, e {MOOD}, ia int[], ta text[]";

const TYPES_ROWS: &str = r#"
(1, -32768, -2147483648, -9223372036854775808, -1.5, -2.5e300, -1234567890123.45,
 -123456789012345678901234567890.12345, -1.5, 'héllo ü€', 'abc', 'ab', true, '1969-07-20',
 '00:00:00', '1969-07-20 20:17:40.123456', '1999-12-31 23:59:59.999999-08',
 '1 year 2 months 3 days 04:05:06.789', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '\x00ff10',
 '{"a": [1, 2]}', '{"b": 1, "a": 2}', 'happy', '{1,NULL,3}', '{"x",NULL,"y z"}'),
(2, 32767, 2147483647, 9223372036854775807, '-0', 'NaN', 0.01, 0.00001, 0.01, '',
 'ten chars!', 'abcde', false, '2100-01-01', '23:59:59.999999', '2040-02-29 12:00:00',
 '2040-01-01 00:00:00+05:30', '-1 days -00:00:01', '00000000-0000-0000-0000-000000000000', '',
 '[]', '{}', 'sad', '{}', '{}'),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(4, 0, 0, 0, 'Infinity', '-0', 9999999999999.99, -0.00001, 'NaN', E'line1\nline2\t"q"\\',
 NULL, '', NULL, '0001-01-01', '12:00:00.5', '1900-06-15 12:00:00', '1900-06-15 12:00:00+01',
 '0.000003 seconds', NULL, '\x', '"s"', 'null', NULL, '{NULL}', '{""}')
"#;

/// Creates the enum and the all-types table `name` in `schema` natively, with four rows.
async fn create_types_table(client: &Client, schema: &str, name: &str, with_rows: bool) {
    let mood = q(schema, "mood");
    client
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE TYPE {mood} AS ENUM ('sad', 'ok', 'happy'); \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ))
        .await
        .expect("create enum");
    let cols = TYPES_COLUMNS.replace("{MOOD}", &mood);
    client
        .batch_execute(&format!("CREATE TABLE {} ({cols})", q(schema, name)))
        .await
        .expect("create types table");
    if with_rows {
        client
            .batch_execute(&format!(
                "INSERT INTO {} VALUES {TYPES_ROWS}",
                q(schema, name)
            ))
            .await
            .expect("insert types rows");
    }
}

/// Each row of a table as PostgreSQL prints it (`t::text`), by id.
async fn native_rows(client: &Client, table: &str) -> Vec<String> {
    client
        .query(&format!("SELECT x::text FROM {table} x ORDER BY id"), &[])
        .await
        .expect("native rows")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_mapping_of_select_star() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    create_types_table(&client, &schema, "types", true).await;
    let engine = engine_for(&schema, "").await;
    let b = one(&engine
        .execute("SELECT * FROM pg.types ORDER BY id")
        .await
        .expect("select *"));
    let s = b.schema();
    let ty = |n: &str| s.field_with_name(n).expect(n).data_type().clone();
    let list = |t: DataType| DataType::List(Arc::new(adt::Field::new("item", t, true)));
    let expected = [
        ("i2", DataType::Int16),
        ("i4", DataType::Int32),
        ("i8", DataType::Int64),
        ("f4", DataType::Float32),
        ("f8", DataType::Float64),
        ("n152", DataType::Decimal128(15, 2)),
        ("n405", DataType::Decimal256(40, 5)),
        ("n", DataType::Float64),
        ("t", DataType::Utf8),
        ("vc", DataType::Utf8),
        ("c5", DataType::Utf8),
        ("b", DataType::Boolean),
        ("d", DataType::Date32),
        ("tm", DataType::Time64(TimeUnit::Microsecond)),
        ("ts", DataType::Timestamp(TimeUnit::Microsecond, None)),
        (
            "tstz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        ("iv", DataType::Interval(IntervalUnit::MonthDayNano)),
        ("u", DataType::Utf8),
        ("bin", DataType::Binary),
        ("j", DataType::Utf8),
        ("jb", DataType::Utf8),
        ("e", DataType::Utf8),
        ("ia", list(DataType::Int32)),
        ("ta", list(DataType::Utf8)),
    ];
    for (n, t) in &expected {
        assert_eq!(&ty(n), t, "Arrow type of column {n}");
    }
    assert_eq!(b.num_rows(), 4);

    let i2 = col(&b, "i2").as_primitive::<adt::Int16Type>();
    assert_eq!((i2.value(0), i2.value(1), i2.value(3)), (-32768, 32767, 0));
    let i4 = col(&b, "i4").as_primitive::<adt::Int32Type>();
    assert_eq!((i4.value(0), i4.value(1)), (i32::MIN, i32::MAX));
    let i8 = col(&b, "i8").as_primitive::<adt::Int64Type>();
    assert_eq!((i8.value(0), i8.value(1)), (i64::MIN, i64::MAX));
    let f4 = col(&b, "f4").as_primitive::<adt::Float32Type>();
    assert_eq!(f4.value(0), -1.5);
    assert!(
        f4.value(1) == 0.0 && f4.value(1).is_sign_negative(),
        "real '-0'"
    );
    assert_eq!(f4.value(3), f32::INFINITY);
    let f8 = col(&b, "f8").as_primitive::<adt::Float64Type>();
    assert_eq!(f8.value(0), -2.5e300);
    assert!(f8.value(1).is_nan());
    assert!(
        f8.value(3) == 0.0 && f8.value(3).is_sign_negative(),
        "float8 '-0'"
    );
    let n = col(&b, "n").as_primitive::<adt::Float64Type>();
    assert_eq!((n.value(0), n.value(1)), (-1.5, 0.01));
    assert!(n.value(3).is_nan(), "numeric 'NaN' as Float64");
    assert_eq!(
        texts(&b, "t"),
        ["héllo ü€", "", "NULL", "line1\nline2\t\"q\"\\"]
    );
    assert_eq!(texts(&b, "vc"), ["abc", "ten chars!", "NULL", "NULL"]);
    // char(n) is read as its text, trailing blanks removed (PostgreSQL's `c5::text`), since
    // PostgreSQL compares char(n) ignoring them.
    let c5 = col(&b, "c5").as_string::<i32>();
    assert_eq!((c5.value(0), c5.value(1), c5.value(3)), ("ab", "abcde", ""));
    assert_eq!(texts(&b, "b"), ["true", "false", "NULL", "NULL"]);
    let d = col(&b, "d").as_primitive::<adt::Date32Type>();
    assert_eq!(d.value(0), days(1969, 7, 20));
    assert_eq!(d.value(1), days(2100, 1, 1));
    assert_eq!(d.value(3), days(1, 1, 1));
    let tm = col(&b, "tm").as_primitive::<adt::Time64MicrosecondType>();
    assert_eq!(
        (tm.value(0), tm.value(1), tm.value(3)),
        (0, 86_399_999_999, 43_200_500_000)
    );
    let ts = col(&b, "ts").as_primitive::<adt::TimestampMicrosecondType>();
    assert_eq!(ts.value(0), micros(1969, 7, 20, 20, 17, 40, 123_456));
    assert_eq!(ts.value(1), micros(2040, 2, 29, 12, 0, 0, 0));
    assert_eq!(ts.value(3), micros(1900, 6, 15, 12, 0, 0, 0));
    // timestamptz: the UTC instant, whatever offset it was written with.
    let tz = col(&b, "tstz").as_primitive::<adt::TimestampMicrosecondType>();
    assert_eq!(
        tz.value(0),
        rfc3339_micros("1999-12-31T23:59:59.999999-08:00")
    );
    assert_eq!(tz.value(0), micros(2000, 1, 1, 7, 59, 59, 999_999));
    assert_eq!(tz.value(1), micros(2039, 12, 31, 18, 30, 0, 0));
    assert_eq!(tz.value(3), micros(1900, 6, 15, 11, 0, 0, 0));
    let iv = col(&b, "iv").as_primitive::<adt::IntervalMonthDayNanoType>();
    assert_eq!(
        iv.value(0),
        adt::IntervalMonthDayNano::new(14, 3, 14_706_789_000_000)
    );
    assert_eq!(
        iv.value(1),
        adt::IntervalMonthDayNano::new(0, -1, -1_000_000_000)
    );
    assert_eq!(iv.value(3), adt::IntervalMonthDayNano::new(0, 0, 3_000));
    assert_eq!(
        texts(&b, "u"),
        [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "00000000-0000-0000-0000-000000000000",
            "NULL",
            "NULL"
        ]
    );
    let bin = col(&b, "bin").as_binary::<i32>();
    assert_eq!(bin.value(0), &[0u8, 0xff, 0x10][..]);
    assert_eq!(bin.value(1), &[] as &[u8]);
    assert!(bin.is_null(2));
    assert_eq!(bin.value(3), &[] as &[u8]);
    assert_eq!(texts(&b, "j"), [r#"{"a": [1, 2]}"#, "[]", "NULL", r#""s""#]);
    assert_eq!(
        texts(&b, "jb"),
        [r#"{"a": 2, "b": 1}"#, "{}", "NULL", "null"]
    );
    assert_eq!(texts(&b, "e"), ["happy", "sad", "NULL", "NULL"]);
    let ia = col(&b, "ia").as_list::<i32>();
    let first = ia.value(0);
    let first = first.as_primitive::<adt::Int32Type>();
    assert_eq!(first.len(), 3);
    assert_eq!(
        (first.value(0), first.is_null(1), first.value(2)),
        (1, true, 3)
    );
    assert_eq!(ia.value(1).len(), 0);
    assert!(ia.is_null(2));
    assert_eq!((ia.value(3).len(), ia.value(3).is_null(0)), (1, true));
    let ta = col(&b, "ta").as_list::<i32>();
    let first = ta.value(0);
    let first = first.as_string::<i32>();
    assert_eq!(
        (first.value(0), first.is_null(1), first.value(2)),
        ("x", true, "y z")
    );
    assert_eq!(ta.value(1).len(), 0);
    assert!(ta.is_null(2));
    assert_eq!(ta.value(3).as_string::<i32>().value(0), "");
    // NULLs everywhere in row 3.
    for f in s.fields() {
        if f.name() != "id" {
            assert!(col(&b, f.name()).is_null(2), "row 3, column {}", f.name());
        }
    }

    // Decimals, dates and timestamps print exactly as psql prints them.
    let pg: Vec<Vec<Option<String>>> = client
        .query(
            &format!(
                "SELECT n152::text, n405::text, d::text, ts::text FROM {} ORDER BY id",
                q(&schema, "types")
            ),
            &[],
        )
        .await
        .expect("native text")
        .iter()
        .map(|r| (0..4).map(|i| r.get::<_, Option<String>>(i)).collect())
        .collect();
    for (k, name) in ["n152", "n405", "d", "ts"].iter().enumerate() {
        let ours = texts(&b, name);
        for (row, pg_row) in pg.iter().enumerate() {
            let theirs = pg_row[k].clone().unwrap_or_else(|| "NULL".into());
            assert_eq!(
                ours[row].replace('T', " "),
                theirs,
                "column {name}, row {}",
                row + 1
            );
        }
    }
}

/// numeric(40,5) is Decimal256: values with more than 38 digits must read (and write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal256_beyond_38_digits() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "wide");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int, v numeric(40,5)); \
             INSERT INTO {t} VALUES (1, -12345678901234567890123456789012345.12345), \
             (2, 99999999999999999999999999999999999.99999)"
        ))
        .await
        .expect("fixture");
    let engine = engine_for(&schema, "").await;
    let b = one(&engine
        .execute("SELECT id, v FROM pg.wide ORDER BY id")
        .await
        .expect("reading 40-digit numerics"));
    assert_eq!(
        texts(&b, "v"),
        [
            "-12345678901234567890123456789012345.12345",
            "99999999999999999999999999999999999.99999"
        ]
    );
    engine
        .execute("CREATE TABLE pg.wide2 AS SELECT * FROM pg.wide")
        .await
        .expect("writing 40-digit numerics");
    assert_eq!(
        native_rows(&client, &q(&schema, "wide2")).await,
        native_rows(&client, &t).await
    );
}

// ------------------------------------------------------------------ 2. unmappable types

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmappable_types_error_or_read_as_text() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "odd");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int, name text, addr inet, pt point, addrs inet[]); \
             INSERT INTO {t} VALUES (1, 'one', '10.0.0.0/8', '(1,2)', '{{192.168.0.1/24,NULL}}'), \
             (2, 'two', NULL, NULL, NULL)"
        ))
        .await
        .expect("fixture");
    let engine = engine_for(&schema, "").await;
    for (sql, column, pg_type) in [
        ("SELECT * FROM pg.odd", "addr", "inet"),
        ("SELECT pt FROM pg.odd", "pt", "point"),
        ("SELECT id, addrs FROM pg.odd", "addrs", "inet[]"),
    ] {
        let e = engine
            .execute(sql)
            .await
            .expect_err("an unmappable column must be an error")
            .to_string();
        assert!(
            e.contains(&format!("'{column}'")) && e.contains(pg_type),
            "{sql}: error should name column {column} and type {pg_type}: {e}"
        );
        assert!(!e.contains('\n'), "one line: {e}");
        assert!(
            e.contains("unknown_types=text"),
            "error should tell how to read it: {e}"
        );
    }
    // The other columns still work, filters included.
    assert_eq!(
        sorted_rows(
            &engine
                .execute("SELECT id, name FROM pg.odd WHERE id > 1")
                .await
                .expect("mapped columns")
        ),
        ["| 2  | two  |"]
    );
    assert_eq!(count(&engine, "pg.odd").await, 2);

    let engine = engine_for(&schema, "unknown_types=text").await;
    let b = one(&engine
        .execute("SELECT * FROM pg.odd ORDER BY id")
        .await
        .expect("unknown_types=text"));
    assert_eq!(col(&b, "addr").data_type(), &DataType::Utf8);
    assert_eq!(col(&b, "pt").data_type(), &DataType::Utf8);
    assert_eq!(texts(&b, "addr"), ["10.0.0.0/8", "NULL"]);
    assert_eq!(texts(&b, "pt"), ["(1,2)", "NULL"]);
    assert_eq!(texts(&b, "addrs"), ["[192.168.0.1/24, ]", "NULL"]);
    let addrs = col(&b, "addrs").as_list::<i32>();
    assert!(addrs.value(0).is_null(1));
    // A filter on the text form (evaluated by DataFusion).
    assert_eq!(
        rows(
            &engine
                .execute("SELECT id FROM pg.odd WHERE addr = '10.0.0.0/8'")
                .await
                .expect("filter on text form")
        ),
        ["| 1  |"]
    );
}

/// `unknown_types=text` should give the text PostgreSQL prints (the type's output function).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_types_as_text_match_psql_output() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "hosts");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int, addr inet, addrs inet[]); \
             INSERT INTO {t} VALUES (1, '10.0.0.1', '{{10.0.0.2}}')"
        ))
        .await
        .expect("fixture");
    let psql: Vec<String> = client
        .query_one(
            &format!("SELECT format('%s', addr), format('%s', addrs) FROM {t}"),
            &[],
        )
        .await
        .map(|r| vec![r.get(0), r.get(1)])
        .expect("native");
    assert_eq!(psql, ["10.0.0.1", "{10.0.0.2}"]);
    let engine = engine_for(&schema, "unknown_types=text").await;
    let b = one(&engine
        .execute("SELECT addr, addrs FROM pg.hosts")
        .await
        .expect("unknown_types=text"));
    assert_eq!(texts(&b, "addr"), ["10.0.0.1"]);
    assert_eq!(texts(&b, "addrs"), ["[10.0.0.2]"]);
    assert_eq!(
        rows(
            &engine
                .execute("SELECT id FROM pg.hosts WHERE addr = '10.0.0.1'")
                .await
                .expect("filter")
        ),
        ["| 1  |"]
    );
}

// ------------------------------------------------------------------ 3. round trips

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_ctas_and_insert_from_memory() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    create_types_table(&client, &schema, "t1", true).await;
    let engine = engine_for(&schema, "").await;
    let original = native_rows(&client, &q(&schema, "t1")).await;
    assert_eq!(original.len(), 4);

    // CTAS inside PostgreSQL, through dataknobs.
    engine
        .execute("CREATE TABLE pg.t2 AS SELECT * FROM pg.t1")
        .await
        .expect("CTAS");
    assert_eq!(native_rows(&client, &q(&schema, "t2")).await, original);
    let types = |t: String| {
        let client = &client;
        async move {
            client
                .query(
                    "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                     WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped \
                     ORDER BY attnum",
                    &[&t],
                )
                .await
                .expect("column types")
                .iter()
                .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        types(q(&schema, "t2")).await,
        types(q(&schema, "t1")).await,
        "CTAS keeps the PostgreSQL column types"
    );

    // Through the memory backend and back.
    engine
        .execute("CREATE TABLE memory.rt_src AS SELECT * FROM pg.t1")
        .await
        .expect("copy to memory");
    create_types_table(&client, &schema, "t3", false).await;
    engine
        .execute("INSERT INTO pg.t3 SELECT * FROM memory.rt_src")
        .await
        .expect("INSERT … SELECT from memory");
    assert_eq!(native_rows(&client, &q(&schema, "t3")).await, original);

    // Values written from DataFusion literals.
    create_types_table(&client, &schema, "t4", false).await;
    engine
        .execute(
            "INSERT INTO pg.t4 (id, i2, n152, n405, f4, n, ts, tstz, d, tm, iv, bin, ta, ia, u, e, jb, c5) \
             VALUES (1, -5, -0.01, 12.5, 0.25, -7.125, TIMESTAMP '1960-01-01 00:00:00', \
             TIMESTAMP '2050-06-01 12:00:00Z', DATE '1950-03-04', TIME '12:34:56.5', \
             INTERVAL '1 month 2 days 3 seconds', X'00FF', make_array('a', NULL), \
             make_array(1, NULL), 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'ok', '{\"k\": 1}', 'ab')",
        )
        .await
        .expect("insert literals");
    let r = client
        .query_one(
            &format!(
                "SELECT i2::text, n152::text, n405::text, f4::text, n::text, ts::text, tstz::text, \
                 d::text, tm::text, iv::text, bin::text, ta::text, ia::text, u::text, e::text, \
                 jb::text, c5::text || '|' FROM {}",
                q(&schema, "t4")
            ),
            &[],
        )
        .await
        .expect("read back");
    let got: Vec<String> = (0..17).map(|i| r.get::<_, String>(i)).collect();
    assert_eq!(
        got,
        [
            "-5",
            "-0.01",
            "12.50000",
            "0.25",
            "-7.125",
            "1960-01-01 00:00:00",
            "2050-06-01 12:00:00+00",
            "1950-03-04",
            "12:34:56.5",
            "1 mon 2 days 00:00:03",
            "\\x00ff",
            "{a,NULL}",
            "{1,NULL}",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "ok",
            "{\"k\": 1}",
            "ab|"
        ]
    );
}

// ------------------------------------------------------------------ 4. pushdown

/// Runs `SELECT * FROM table WHERE cond ORDER BY id` with pushdown on and off and compares;
/// returns how many conditions were sent to PostgreSQL.
async fn same_with_and_without_pushdown(
    engine: &Engine,
    table: &str,
    conditions: &[&str],
) -> usize {
    let mut pushed = 0;
    for cond in conditions {
        let sql = format!("SELECT * FROM {table} WHERE {cond} ORDER BY id");
        let explain = all_text(
            &engine
                .execute(&format!("EXPLAIN {sql}"))
                .await
                .unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}")),
        );
        if explain.contains(" WHERE ") {
            pushed += 1;
        }
        let on = rows(
            &engine
                .execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        );
        engine
            .execute("SET dataknobs.pushdown = false")
            .await
            .expect("pushdown off");
        let off = engine.execute(&sql).await;
        engine
            .execute("SET dataknobs.pushdown = true")
            .await
            .expect("pushdown on");
        let off = rows(&off.unwrap_or_else(|e| panic!("{sql} (no pushdown): {e}")));
        assert_eq!(on, off, "pushdown changes the result of WHERE {cond}");
    }
    pushed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_explain_and_equivalence() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "pd");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int, a int, s text, c char(5), ci text COLLATE \"en-US-x-icu\", \
             f float8, r real, tz timestamptz, v varchar(20))"
        ))
        .await
        .expect("create");
    let strings = [
        "a", "B", "b", "A", "é", "e", "Ω", "ü€", "x_1", "x%2", r"x\%3", "xy", "x", "", "Zed",
        "zed", "ab", "ab ", "Ab", "E",
    ];
    let floats = [
        "'-0'",
        "'0'",
        "'NaN'",
        "1.5",
        "-1.5",
        "NULL",
        "'Infinity'",
        "'-Infinity'",
        "5",
        "0.1",
    ];
    let stamps = [
        "'1999-12-31 23:00:00-08'",
        "'2000-01-01 07:00:00+00'",
        "'1969-07-20 20:17:40+00'",
        "'2040-01-01 00:00:00+05:30'",
        "NULL",
        "'2000-01-01 06:59:59.999999Z'",
        "'2038-01-19 03:14:08Z'",
    ];
    let mut values = Vec::new();
    for (i, s) in strings.iter().enumerate() {
        values.push(format!(
            "({i}, {i}, {s}, {s}, {s}, {f}, {f}, {tz}, {s})",
            s = lit(s),
            f = floats[i % floats.len()],
            tz = stamps[i % stamps.len()]
        ));
    }
    values.push("(100, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)".into());
    client
        .batch_execute(&format!("INSERT INTO {t} VALUES {}", values.join(", ")))
        .await
        .expect("insert");
    let engine = engine_for(&schema, "").await;

    let explain = all_text(
        &engine
            .execute("EXPLAIN SELECT id FROM pg.pd WHERE a > 5 AND s LIKE 'x%' LIMIT 3")
            .await
            .expect("explain"),
    );
    assert!(explain.contains("COPY (SELECT"), "{explain}");
    assert!(explain.contains(" WHERE "), "{explain}");
    assert!(explain.contains(r#""s" COLLATE "C" LIKE"#), "{explain}");
    assert!(explain.contains(r#""a" > "#), "{explain}");
    let explain = all_text(
        &engine
            .execute("EXPLAIN SELECT id FROM pg.pd WHERE ci < 'B' AND s >= 'a'")
            .await
            .expect("explain"),
    );
    assert!(
        explain.contains(r#""ci" COLLATE "C" <"#) && explain.contains(r#""s" COLLATE "C" >="#),
        "text ranges are compared in byte order: {explain}"
    );
    // char(n) is compared as its text (trailing blanks removed, as it is read).
    let explain = all_text(
        &engine
            .execute("EXPLAIN SELECT id FROM pg.pd WHERE c = 'ab'")
            .await
            .expect("explain"),
    );
    assert!(
        explain.contains(r#"("c"::text) COLLATE "C" ="#),
        "char(n) compared as text: {explain}"
    );

    let conditions = [
        "c = 'ab'",
        "c = 'ab '",
        "c < 'b'",
        "c LIKE 'a%b'",
        "c IN ('ab', 'x')",
        "c <> ''",
        "a > 5 AND s LIKE 'x%'",
        "s < 'B'",
        "s > 'a'",
        "s >= 'é'",
        "s < 'Z'",
        "s BETWEEN 'A' AND 'b'",
        "s = ''",
        "s <> 'a'",
        "ci < 'B'",
        "ci > 'a'",
        "ci >= 'Zed'",
        "ci <= 'e'",
        "ci LIKE 'z%'",
        "ci = 'E'",
        "c = 'ab'",
        "c = 'ab   '",
        "c < 'b'",
        "c LIKE 'ab%'",
        "c LIKE 'ab _'",
        "s LIKE 'x_%'",
        r"s LIKE 'x\_%'",
        r"s LIKE '%\%%'",
        r"s LIKE 'x\\%'",
        "s LIKE '_'",
        "s NOT LIKE '%a%'",
        "s ILIKE 'A%'",
        "v LIKE '%ü%'",
        "v = 'ab '",
        "v > 'B' OR a IN (1, 2)",
        "f = 0.0",
        "f = -0.0",
        "f < 0.0",
        "f <= 0.0",
        "f > 0",
        "f >= -0.0",
        "f <> 0.0",
        "f = CAST('NaN' AS DOUBLE)",
        "f < CAST('NaN' AS DOUBLE)",
        "f > 1.0",
        "f IN (0.0, 1.5)",
        "f NOT IN (-0.0, 5.0)",
        "f IS NULL",
        "NOT (f > 0)",
        "r < 0.0",
        "r = -0.0",
        "r > 0.1",
        "r = 0.1",
        "tz > '2000-01-01T00:00:00Z'",
        "tz = '1999-12-31T23:00:00-08:00'",
        "tz = '2000-01-01T07:00:00Z'",
        "tz < TIMESTAMP '2000-01-01 07:00:00'",
        "tz BETWEEN '1969-01-01T00:00:00Z' AND '2039-12-31T18:30:00Z'",
        "tz <= '2040-01-01T00:00:00+05:30'",
        "tz >= '2038-01-19T03:14:08Z'",
    ];
    let pushed = same_with_and_without_pushdown(&engine, "pg.pd", &conditions).await;
    assert!(
        pushed >= conditions.len() / 2,
        "only {pushed} of {} conditions were pushed",
        conditions.len()
    );
    // The byte order is what matters: 'B' < 'a' in byte order but not in en-US.
    assert_eq!(
        rows(
            &engine
                .execute("SELECT ci FROM pg.pd WHERE ci < 'B' ORDER BY ci")
                .await
                .expect("ci < 'B'")
        ),
        ["|    |", "| A  |", "| Ab |"]
    );
    // LIMIT with pushed filters.
    let limited = engine
        .execute("SELECT id FROM pg.pd WHERE a > 5 AND s LIKE 'x%' ORDER BY id LIMIT 3")
        .await
        .expect("limit");
    assert_eq!(rows(&limited), ["| 8  |", "| 9  |", "| 10 |"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_equivalence_over_all_types() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    create_types_table(&client, &schema, "types", true).await;
    let engine = engine_for(&schema, "").await;
    let conditions = [
        "i2 > 2.5",
        "i2 = 0",
        "i4 = -2147483648",
        "i4 IN (0, 2147483647)",
        "i8 < 0",
        "i8 >= 9223372036854775807",
        "f4 > 0.0",
        "f4 = -0.0",
        "f4 = CAST('Infinity' AS REAL)",
        "f8 < -1e300",
        "f8 = CAST('NaN' AS DOUBLE)",
        "f8 <> -0.0",
        "n152 > 0",
        "n152 = 0.01",
        "n152 IS NULL",
        "n405 < 0",
        "n > 0",
        "t LIKE '%ü%'",
        "t > 'h'",
        "vc LIKE 'ten%'",
        "c5 = 'ab'",
        "c5 > 'a'",
        "b",
        "NOT b",
        "b IS NOT TRUE",
        "d > '2000-01-01'",
        "d = DATE '1969-07-20'",
        "d < DATE '0100-01-01'",
        "tm > '12:00:00'",
        "ts > '1970-01-01T00:00:00'",
        "ts < TIMESTAMP '1969-07-20 20:17:40.123457'",
        "ts = TIMESTAMP '1900-06-15 12:00:00'",
        "tstz > '2000-01-01T07:59:59.999998Z'",
        "tstz = '1999-12-31T23:59:59.999999-08:00'",
        "tstz < '1901-01-01T00:00:00Z'",
        "iv > INTERVAL '1 day'",
        "u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        "u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
        "u > 'a'",
        "e < 'ok'",
        "e = 'happy'",
        "e LIKE 's%'",
        "bin = X'00FF10'",
        "bin > X'00'",
        "j LIKE '%a%'",
        "jb = '{}'",
        "array_has(ia, 1)",
        "cardinality(ta) = 0",
    ];
    let pushed = same_with_and_without_pushdown(&engine, "pg.types", &conditions).await;
    assert!(pushed >= 20, "only {pushed} conditions were pushed");
}

/// The physical plan of `sql` with its scan's request, as text.
async fn explain(engine: &Engine, sql: &str) -> String {
    all_text(
        &engine
            .execute(&format!("EXPLAIN {sql}"))
            .await
            .unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}")),
    )
}

/// `sql` with pushdown on and off: the rows, in order, must be the same.
async fn same_order_on_and_off(engine: &Engine, sql: &str) -> Vec<String> {
    let on = rows(
        &engine
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}")),
    );
    engine.set_pushdown(false);
    let off = engine.execute(sql).await;
    engine.set_pushdown(true);
    let off = rows(&off.unwrap_or_else(|e| panic!("{sql} (no pushdown): {e}")));
    assert_eq!(on, off, "pushdown changes the result of {sql}");
    on
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_by_limit_reaches_postgres() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    create_types_table(&client, &schema, "types", true).await;
    let engine = engine_for(&schema, "").await;

    // Every column PostgreSQL orders exactly as DataFusion does, both directions and both NULL
    // placements: sorted and limited by PostgreSQL, the same rows in the same order.
    let sortable = [
        "i2", "i4", "i8", "n152", "n405", "t", "vc", "b", "d", "tm", "ts", "tstz", "u", "bin", "e",
    ];
    for c in sortable {
        for dir in ["ASC", "DESC"] {
            for nulls in ["NULLS FIRST", "NULLS LAST"] {
                let sql =
                    format!("SELECT id, {c} FROM pg.types ORDER BY {c} {dir} {nulls}, id LIMIT 3");
                let plan = explain(&engine, &sql).await;
                assert!(
                    plan.contains(&format!("{dir} {nulls}, \"id\" ASC NULLS LAST LIMIT 3")),
                    "ORDER BY {c} not sent: {plan}"
                );
                assert!(!plan.contains("SortExec"), "sorted again locally: {plan}");
                // (A value with a newline prints as two lines.)
                let got = same_order_on_and_off(&engine, &sql).await;
                assert!(got.len() >= 3, "{sql}: {got:?}");
            }
        }
    }
    // Ordered differently by PostgreSQL (floats: -0 ties with 0; intervals, unconstrained
    // numeric): sorted by DataFusion.
    for c in ["f4", "f8", "iv", "n"] {
        let sql = format!("SELECT id, {c} FROM pg.types ORDER BY {c} DESC, id LIMIT 2");
        let plan = explain(&engine, &sql).await;
        assert!(plan.contains("SortExec"), "ORDER BY {c} was pushed: {plan}");
        assert!(
            !plan.contains("ORDER BY"),
            "ORDER BY {c} was pushed: {plan}"
        );
        same_order_on_and_off(&engine, &sql).await;
    }

    // A table large enough to be scanned in several partitions: the sorted scan is one
    // partition, and the answer is PostgreSQL's own top 5 in byte order.
    let big = q(&schema, "big");
    client
        .batch_execute(&format!(
            "CREATE TABLE {big} AS SELECT g AS id, md5(g::text) AS s, (g::bigint * 7919) % 100003 AS k, \
             chr(65 + g % 58)::\"char\" AS ch FROM generate_series(1, 300000) g; ANALYZE {big}"
        ))
        .await
        .expect("create big");
    let plain = explain(&engine, "SELECT id FROM pg.big").await;
    assert!(
        plain.contains("partitions=2")
            || plain.contains("partitions=3")
            || plain.contains("partitions=4"),
        "the big table is not split (the test needs it split): {plain}"
    );
    let sql = "SELECT id, s FROM pg.big ORDER BY s DESC LIMIT 5 OFFSET 2";
    let plan = explain(&engine, sql).await;
    assert!(
        plan.contains(r#"ORDER BY "s" COLLATE "C" DESC NULLS FIRST LIMIT 7"#),
        "{plan}"
    );
    assert!(plan.contains("partitions=1"), "{plan}");
    let got = same_order_on_and_off(&engine, sql).await;
    let native: Vec<String> = client
        .query(
            &format!("SELECT id, s FROM {big} ORDER BY s COLLATE \"C\" DESC LIMIT 5 OFFSET 2"),
            &[],
        )
        .await
        .expect("native top 5")
        .iter()
        .map(|r| format!("{} {}", r.get::<_, i32>(0), r.get::<_, String>(1)))
        .collect();
    let got: Vec<String> = got
        .iter()
        .map(|r| {
            r.split('|')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(got, native);

    // A limit applied before the sort stays before it: the sort is not pushed into a limited
    // scan (that would return the global top 10 instead of 10 rows sorted).
    let sql = "SELECT k FROM (SELECT k FROM pg.big LIMIT 10) ORDER BY k";
    let plan = explain(&engine, sql).await;
    assert!(plan.contains("SortExec"), "{plan}");
    assert!(
        plan.contains("LIMIT 10") && !plan.contains("ORDER BY"),
        "{plan}"
    );
    let ks: Vec<i64> = rows(&engine.execute(sql).await.expect("limited then sorted"))
        .iter()
        .map(|r| r.trim_matches(|c| c == '|' || c == ' ').parse().expect("k"))
        .collect();
    assert_eq!(ks.len(), 10);
    assert!(ks.windows(2).all(|w| w[0] <= w[1]), "not sorted: {ks:?}");
    // A filter DataFusion keeps (a float comparison PostgreSQL would answer differently is not
    // involved here: a regex with a flag) blocks the sort, and the result is still right.
    same_order_on_and_off(
        &engine,
        "SELECT id FROM pg.big WHERE s ~ '(?i)^ABC' ORDER BY s, id LIMIT 4",
    )
    .await;
    // "char" takes no collation: ranges and sorts on it cast to text first.
    let sql = "SELECT id, ch FROM pg.big WHERE ch > 'x' ORDER BY ch DESC, id LIMIT 3";
    let plan = explain(&engine, sql).await;
    assert!(plan.contains(r#"("ch"::text) COLLATE "C""#), "{plan}");
    same_order_on_and_off(&engine, sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_filters_on_large_tables_run_as_one_select() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "wide");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} AS SELECT g AS id, ((g % 1000)::numeric / 7)::numeric(12,2) AS amount, \
             md5(g::text) || CASE WHEN g % 11 = 0 THEN ' ü€' ELSE '' END AS s, \
             DATE '2000-01-01' + (g % 5000) AS d, \
             TIMESTAMPTZ '2001-02-03 04:05:06.789+02' + g * INTERVAL '1 second' AS tz, \
             g % 3 = 0 AS flag, md5(g::text)::uuid AS u, decode(md5(g::text), 'hex') AS raw, \
             ARRAY[g, NULL, -g] AS ints, \
             CASE WHEN g % 7 = 0 THEN NULL ELSE g * 0.5 END AS half \
             FROM generate_series(1, 250000) g; ANALYZE {t}"
        ))
        .await
        .expect("create wide");
    let engine = engine_for(&schema, "").await;

    // About 0.1% of the rows: PostgreSQL's estimate says selective, so one plain SELECT.
    let selective = "SELECT * FROM pg.wide WHERE id % 1000 = 7 OR id < 40";
    let sql = "SELECT * FROM pg.wide WHERE id < 300";
    let plan = explain(&engine, sql).await;
    assert!(
        plan.contains("(rows; PostgreSQL may use parallel workers)")
            && plan.contains("partitions=1"),
        "a selective scan should be one SELECT: {plan}"
    );
    assert!(!plan.contains("COPY ("), "{plan}");
    let got = same_order_on_and_off(&engine, &format!("{sql} ORDER BY id")).await;
    assert_eq!(got.len(), 299);
    // Every type decoded from rows must equal what COPY decodes (pushdown off reads the
    // whole table through COPY partitions and filters in DataFusion).
    same_order_on_and_off(&engine, &format!("{selective} ORDER BY id")).await;
    let n = count(&engine, "pg.wide WHERE id < 300").await;
    assert_eq!(n, 299);

    // Most of the table: COPY in ctid partitions.
    let plan = explain(&engine, "SELECT id FROM pg.wide WHERE id > 10").await;
    assert!(
        plan.contains("COPY (") && !plan.contains("partitions=1"),
        "{plan}"
    );
    let n = count(&engine, "pg.wide WHERE id > 10").await;
    assert_eq!(n, 249_990);
}

// ------------------------------------------------------------------ 5. quoting

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_values_match_memory() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE {} (x int); INSERT INTO {0} VALUES (1)",
            q(&schema, "canary")
        ))
        .await
        .expect("canary");
    let engine = engine_for(&schema, "").await;
    let tag = unique_name("").trim_start_matches('_').to_string();
    let tables = [
        r#"na"me; DROP"#,
        "it's",
        r"a\b",
        "ü€",
        "x--y",
        "p%_q",
        "canary\"; DROP TABLE canary; --",
    ];
    let c1 = r#"c"o'l\1 ;--"#;
    let c2 = "n%_ü€";
    let values = [
        "it's",
        r#"say "hi""#,
        r"back\slash",
        "semi;colon",
        "dash--dash",
        "100%",
        "under_score",
        "ü€",
        "'; DROP TABLE canary; --",
        r"\'",
        "",
        r"%_\",
        "$1",
        "E'x'",
    ];
    let insert_values = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("({}, {i})", lit(v)))
        .collect::<Vec<_>>()
        .join(", ");
    for base in tables {
        let name = format!("{base}_{tag}");
        let mut results: Vec<Vec<Vec<String>>> = Vec::new();
        for backend in ["memory", "pg"] {
            let t = format!("{backend}.{}", qi(&name));
            let (a, b) = (qi(c1), qi(c2));
            let stmts = [
                format!("CREATE TABLE {t} ({a} TEXT, {b} BIGINT)"),
                format!("INSERT INTO {t} VALUES {insert_values}"),
                format!("SELECT * FROM {t}"),
                format!("SELECT {b} FROM {t} WHERE {a} = 'it''s'"),
                format!(r"SELECT {b} FROM {t} WHERE {a} LIKE '%\%%'"),
                format!(r"SELECT {b} FROM {t} WHERE {a} LIKE '%\_%'"),
                format!(r"SELECT {b} FROM {t} WHERE {a} LIKE '%\\%'"),
                format!("SELECT {b} FROM {t} WHERE {a} LIKE '%--%'"),
                format!("SELECT {b} FROM {t} WHERE {a} > 'back' AND {a} < 'z'"),
                format!(
                    "SELECT {b} FROM {t} WHERE {a} IN ('semi;colon', '''; DROP TABLE canary; --', '$1')"
                ),
                format!("SELECT {b} FROM {t} WHERE {a} = {}", lit(r#"say "hi""#)),
                format!("UPDATE {t} SET {a} = {a} || ';--''\"' WHERE {b} = 2"),
                format!("UPDATE {t} SET {a} = 'x''y' WHERE {a} = 'E''x'''"),
                format!("DELETE FROM {t} WHERE {a} = 'semi;colon' OR {a} = '\\'''"),
                format!("SELECT * FROM {t}"),
            ];
            let mut out = Vec::new();
            for s in &stmts {
                let batches = engine
                    .execute(s)
                    .await
                    .unwrap_or_else(|e| panic!("{backend}: {s}: {e}"));
                out.push(sorted_rows(&batches));
            }
            // The record API on the same table: a new column with a hostile name too.
            let db = engine
                .database(&t)
                .await
                .unwrap_or_else(|e| panic!("database({t}): {e}"));
            db.create(
                Record::new()
                    .with(c1, "rec'ord\\;--")
                    .with(c2, 99i64)
                    .with("new'col\"; --", "v\"'"),
            )
            .await
            .unwrap_or_else(|e| panic!("{backend}: record create: {e}"));
            let found = db
                .search(
                    &Query::new()
                        .filter(c1, Operator::Eq, "rec'ord\\;--")
                        .unwrap(),
                )
                .await
                .unwrap_or_else(|e| panic!("{backend}: record search: {e}"));
            let mut found: Vec<String> = found
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.set_id("");
                    r.to_json().to_string()
                })
                .collect();
            found.sort();
            out.push(found);
            out.push(sorted_rows(
                &engine
                    .execute(&format!("SELECT * FROM {t}"))
                    .await
                    .unwrap_or_else(|e| panic!("{backend}: select after create: {e}")),
            ));
            results.push(out);
        }
        assert_eq!(
            results[0], results[1],
            "table {name:?}: PostgreSQL differs from memory"
        );
        assert!(
            results[1][2].len() == values.len(),
            "all rows inserted into {name:?}"
        );
    }
    // Nothing was dropped: the canary and every table are there.
    assert_eq!(native_count(&client, &q(&schema, "canary")).await, 1);
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&schema],
        )
        .await
        .expect("tables")
        .get(0);
    assert_eq!(n, tables.len() as i64 + 1);
}

// ------------------------------------------------------------------ 6. atomic inserts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_insert_inserts_nothing() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE {} (id bigint NOT NULL, v int CHECK (v < 1000000), s smallint); \
             CREATE TABLE {} (id bigint PRIMARY KEY, v int); \
             CREATE DOMAIN {} AS int NOT NULL; CREATE TABLE {} (id bigint, v {2})",
            q(&schema, "chk"),
            q(&schema, "uniq"),
            q(&schema, "nn_int"),
            q(&schema, "dom")
        ))
        .await
        .expect("fixture");
    let engine = engine_for(&schema, "").await;
    engine
        .execute("CREATE TABLE pg.nn (id BIGINT NOT NULL, v BIGINT)")
        .await
        .expect("create");
    // Failing rows come late: earlier COPY chunks (1 MiB) have already been sent.
    let cases = [
        (
            "pg.nn",
            "INSERT INTO pg.nn SELECT CASE WHEN value = 150000 THEN NULL ELSE value END AS id, \
             value AS v FROM range(200000)",
            "null",
        ),
        (
            "pg.chk",
            "INSERT INTO pg.chk SELECT value AS id, \
             CASE WHEN value = 150000 THEN 2000000 ELSE value END AS v, 1 AS s FROM range(200000)",
            "check constraint",
        ),
        (
            "pg.chk",
            "INSERT INTO pg.chk SELECT value AS id, 1 AS v, \
             CASE WHEN value = 150000 THEN 40000 ELSE 1 END AS s FROM range(200000)",
            "40000",
        ),
        (
            "pg.chk",
            "INSERT INTO pg.chk SELECT CASE WHEN value = 150000 THEN NULL ELSE value END AS id, \
             1 AS v, 1 AS s FROM range(200000)",
            "null",
        ),
        (
            "pg.uniq",
            "INSERT INTO pg.uniq SELECT CASE WHEN value = 150000 THEN 7 ELSE value END AS id, \
             1 AS v FROM range(200000)",
            "exists already",
        ),
        (
            "pg.dom",
            "INSERT INTO pg.dom SELECT value AS id, \
             CASE WHEN value = 150000 THEN NULL ELSE 1 END AS v FROM range(200000)",
            "does not allow null values",
        ),
    ];
    for (table, sql, why) in cases {
        let e = engine
            .execute(sql)
            .await
            .expect_err(&format!("{sql} must fail"));
        let msg = e.to_string();
        eprintln!("{sql}\n  -> {msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(
            msg.to_lowercase().contains(why),
            "{sql}: the error should be about {why:?}: {msg}"
        );
        assert_eq!(count(&engine, table).await, 0, "{sql} left rows: {msg}");
    }
    // The table still works afterwards.
    engine
        .execute("INSERT INTO pg.chk SELECT value AS id, 1 AS v, 1 AS s FROM range(10)")
        .await
        .expect("insert after failures");
    assert_eq!(count(&engine, "pg.chk").await, 10);
    assert_eq!(native_count(&client, &q(&schema, "chk")).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminated_copy_fails_and_inserts_nothing() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let engine = Arc::new(engine_for(&schema, "").await);
    let big = unique_name("big");
    engine
        .execute(&format!("CREATE TABLE pg.{big} (id BIGINT, s VARCHAR)"))
        .await
        .expect("create");
    let src = unique_name("src");
    engine
        .execute(&format!(
            "CREATE TABLE memory.{src} AS SELECT value AS id, \
             concat('x', repeat('-', 40), CAST(value AS VARCHAR)) AS s FROM range(1000000)"
        ))
        .await
        .expect("source");
    let insert = {
        let engine = engine.clone();
        let sql = format!("INSERT INTO pg.{big} SELECT * FROM memory.{src}");
        tokio::spawn(async move { engine.execute(&sql).await })
    };
    let pattern = format!("COPY %{big}%");
    let start = Instant::now();
    let mut killed = false;
    while start.elapsed() < Duration::from_secs(60) && !insert.is_finished() {
        let pids = client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
                &[&pattern],
            )
            .await
            .expect("pg_stat_activity");
        if let Some(r) = pids.first() {
            let pid: i32 = r.get(0);
            let ok: bool = client
                .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .expect("terminate")
                .get(0);
            assert!(ok, "pg_terminate_backend({pid})");
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let result = tokio::time::timeout(Duration::from_secs(60), insert)
        .await
        .expect("the INSERT must end after its backend is terminated")
        .expect("join");
    assert!(
        killed,
        "the COPY never showed up in pg_stat_activity (finished first: {result:?})"
    );
    let e = result.expect_err("an INSERT whose backend was terminated must fail");
    let msg = e.to_string();
    eprintln!("terminated INSERT: {msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.contains(&big), "the error names the table: {msg}");
    assert_eq!(native_count(&client, &q(&schema, &big)).await, 0);
    assert_eq!(count(&engine, &format!("pg.{big}")).await, 0);
}

// ------------------------------------------------------------------ 7. server restart

/// The Debian cluster (version, name) of the server under test: the one `pg_lsclusters` lists
/// with the server's own data directory.
async fn cluster_of_test_server() -> (String, String) {
    let dir: String = native()
        .await
        .query_one("SHOW data_directory", &[])
        .await
        .expect("show data_directory")
        .get(0);
    let out = std::process::Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .expect("pg_lsclusters (Debian's postgresql-common) must run here");
    assert!(
        out.status.success(),
        "pg_lsclusters failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    // Ver Cluster Port Status Owner Data-directory Log-file
    let found: Vec<(String, String)> = listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 6 && f[5] == dir)
        .map(|f| (f[0].to_string(), f[1].to_string()))
        .collect();
    match <[_; 1]>::try_from(found) {
        Ok([one]) => one,
        Err(found) => panic!(
            "not one cluster with data directory {dir} ({found:?}) in pg_lsclusters:\n{listing}"
        ),
    }
}

/// The pool must replace connections the restart closed: the next query succeeds, no retry.
/// It restarts the server, so it must not run beside the other PostgreSQL tests:
/// scripts/test.sh runs it alone, after the suite (`--ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts PostgreSQL; scripts/test.sh runs it alone after the other tests"]
async fn server_restart_between_queries() {
    let _g = SERVER.write().await;
    let schema = fresh_schema().await;
    let engine = engine_for(&schema, "").await;
    engine
        .execute("CREATE TABLE pg.r (id BIGINT, s VARCHAR)")
        .await
        .expect("create");
    engine
        .execute("INSERT INTO pg.r VALUES (1, 'a'), (2, 'b')")
        .await
        .expect("insert");
    // Several pooled connections exist before the restart.
    let mut handles = Vec::new();
    let engine = Arc::new(engine);
    for _ in 0..4 {
        let e = engine.clone();
        handles.push(tokio::spawn(async move {
            e.execute("SELECT * FROM pg.r WHERE id > 0").await
        }));
    }
    for h in handles {
        assert_eq!(h.await.expect("join").expect("query").len(), 1);
    }
    let (version, cluster) = cluster_of_test_server().await;
    let out = std::process::Command::new("pg_ctlcluster")
        .args(["-m", "fast", &version, &cluster, "restart"])
        .output()
        .expect("pg_ctlcluster");
    assert!(
        out.status.success(),
        "restart of cluster {version}/{cluster} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sorted_rows(
            &engine
                .execute("SELECT * FROM pg.r ORDER BY id")
                .await
                .expect("the first query after a restart must succeed")
        ),
        ["| 1  | a |", "| 2  | b |"]
    );
    engine
        .execute("INSERT INTO pg.r VALUES (3, 'c')")
        .await
        .expect("insert after restart");
    let db = engine.database("pg.r").await.expect("record api");
    assert_eq!(db.count(None).await.expect("count"), 3);
}

// ------------------------------------------------------------------ 8. connection errors

fn assert_clean(e: &dataknobs::Error, secret: &str, must_contain: &[&str]) {
    let shown = e.to_string();
    let debug = format!("{e:?}");
    assert!(!shown.contains('\n'), "one line: {shown}");
    assert!(!shown.contains(secret), "secret in the error: {shown}");
    assert!(!debug.contains(secret), "secret in Debug: {debug}");
    for m in must_contain {
        assert!(shown.contains(m), "'{m}' not in: {shown}");
    }
}

async fn attach_err(url: &str) -> dataknobs::Error {
    let engine = Engine::new();
    let started = Instant::now();
    let e = engine
        .attach("x", url)
        .await
        .expect_err(&format!("attaching {url} must fail"));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{url}: took {:?}",
        started.elapsed()
    );
    assert!(engine.backend("x").is_none());
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_are_clear_and_secret_free() {
    let _g = SERVER.read().await;
    let secret = "sekret-Pw-4711";
    let client = native().await;
    let e = attach_err(&format!(
        "postgres://u:{secret}@nonexistent.invalid/db?connect_timeout=5"
    ))
    .await;
    assert_clean(&e, secret, &["nonexistent.invalid"]);
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");

    // Server-side refusals (trust auth accepts any password here, so: a role that may not
    // log in and a role that does not exist).
    let role = unique_name("dk_nologin");
    client
        .batch_execute(&format!("CREATE ROLE {role} NOLOGIN PASSWORD '{secret}'"))
        .await
        .expect("role");
    let e = attach_err(&format!("postgres://{role}:{secret}@127.0.0.1:5432/test")).await;
    assert_clean(&e, secret, &["not permitted to log in"]);
    client
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .expect("drop role");
    let e = attach_err(&format!(
        "postgres://no_such_role_dk:{secret}@127.0.0.1:5432/test"
    ))
    .await;
    assert_clean(&e, secret, &["no_such_role_dk"]);

    let e = attach_err("postgres://postgres@127.0.0.1:5432/no_such_db_dk").await;
    assert_clean(&e, secret, &["no_such_db_dk"]);
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // Nothing listening.
    let e = attach_err(&format!(
        "postgres://postgres:{secret}@127.0.0.1:1/test?connect_timeout=3"
    ))
    .await;
    assert_clean(&e, secret, &["127.0.0.1"]);

    // A password in a query parameter is refused without echoing it.
    let e = attach_err(&format!(
        "postgres://postgres@127.0.0.1:5432/test?password={secret}"
    ))
    .await;
    assert_clean(&e, secret, &["password"]);

    // A working connection with a password: location(), Debug and query errors hide it.
    let u = url::Url::parse(&url()).expect("url");
    let with_pw = format!(
        "postgres://{}:{secret}@{}:{}{}",
        if u.username().is_empty() {
            "postgres"
        } else {
            u.username()
        },
        u.host_str().unwrap_or("127.0.0.1"),
        u.port().unwrap_or(5432),
        u.path()
    );
    let engine = Engine::new();
    engine.attach("pg", &with_pw).await.expect("attach");
    let backend = engine.backend("pg").expect("backend");
    assert!(
        !backend.location().contains(secret),
        "{}",
        backend.location()
    );
    assert!(!format!("{backend:?}").contains(secret));
    assert!(!format!("{engine:?}").contains(secret));
    let e = engine
        .execute("SELECT * FROM pg.no_such_table_dk")
        .await
        .expect_err("missing table");
    assert_clean(&e, secret, &["no_such_table_dk"]);
    let direct = PgBackend::connect(
        &url::Url::parse(&with_pw).expect("url"),
        PgOptions::default(),
    )
    .await
    .expect("connect");
    assert!(!format!("{direct:?}").contains(secret));
}

/// A password holding `+`, `%`, `@`, `:`, `/` and a space, percent-encoded in the URL as RFC
/// 3986 says, reaches the server unchanged: members of `dk_pw_users` must authenticate with
/// scram (scripts/services.sh puts that line first in pg_hba.conf), so a wrong password is
/// refused with SQLSTATE 28P01 and the right one connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_passwords_reach_the_server_unchanged() {
    let _g = SERVER.read().await;
    let client = native().await;
    let role = unique_name("dk_pw");
    let password = "a+b%2B@c:d/e f";
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD {} IN ROLE dk_pw_users",
            lit(password)
        ))
        .await
        .expect("role (does scripts/services.sh create dk_pw_users?)");
    let encoded = "a+b%252B%40c%3Ad%2Fe%20f";
    let u = url::Url::parse(&url()).expect("url");
    let at = |pw: &str| {
        format!(
            "postgres://{role}:{pw}@{}:{}{}",
            u.host_str().unwrap_or("127.0.0.1"),
            u.port().unwrap_or(5432),
            u.path()
        )
    };
    // The server checks passwords for this role: a near miss is refused…
    for wrong in ["a%20b%252B%40c%3Ad%2Fe%20f", "a+b%2B%40c%3Ad%2Fe%20f"] {
        let e = attach_err(&at(wrong)).await;
        assert_eq!(e.code(), Some("28P01"), "{e}");
        assert!(!e.to_string().contains(password), "{e}");
        assert!(
            std::error::Error::source(&e).is_some(),
            "the server's error is kept as the source: {e}"
        );
    }
    // …and the exact one connects and reads a table it was granted.
    let schema = fresh_schema().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (x int); INSERT INTO {t} VALUES (7); \
             GRANT USAGE ON SCHEMA {s} TO {role}; GRANT SELECT ON {t} TO {role}",
            t = q(&schema, "t"),
            s = qi(&schema),
        ))
        .await
        .expect("table");
    let engine = Engine::new();
    let with_schema = format!("{}?schema={schema}", at(encoded));
    engine.attach("pg", &with_schema).await.expect("attach");
    let batches = engine.execute("SELECT x FROM pg.t").await.expect("query");
    assert_eq!(rows(&batches), vec!["| 7 |".to_string()]);
    let who = engine.backend("pg").expect("backend").location();
    assert!(!who.contains(password), "{who}");
    drop(engine);
    client
        .batch_execute(&format!(
            "REVOKE ALL ON {t} FROM {role}; REVOKE ALL ON SCHEMA {s} FROM {role}; DROP ROLE {role}",
            t = q(&schema, "t"),
            s = qi(&schema),
        ))
        .await
        .expect("drop role");
}

/// `sslmode=require` is encrypted against a server with TLS, fails cleanly against one
/// without; `verify-full` refuses the self-signed certificate. The test server must have TLS
/// on (scripts/services.sh sets it up): without it, this is a failure, not a skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let ssl: String = client
        .query_one("SHOW ssl", &[])
        .await
        .expect("show ssl")
        .get(0);
    client
        .batch_execute(&format!(
            "CREATE VIEW {} AS SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            q(&schema, "myssl")
        ))
        .await
        .expect("view");
    let encrypted = |extra: &'static str| {
        let schema = schema.clone();
        async move {
            let engine = engine_for(&schema, extra).await;
            let b = engine
                .execute("SELECT ssl FROM pg.myssl")
                .await
                .expect("pg_stat_ssl");
            rows(&b)
        }
    };
    assert_eq!(
        ssl, "on",
        "the test server has ssl = {ssl}: TLS must be on (scripts/services.sh sets it up)"
    );
    assert_eq!(encrypted("sslmode=disable").await, ["| false |"]);
    assert_eq!(encrypted("sslmode=require").await, ["| true |"]);
    let e = attach_err(&url_with("sslmode=verify-full&connect_timeout=5")).await;
    assert_clean(&e, "\u{0}", &["certificate"]);

    // A server that answers the SSLRequest with 'N' (no TLS).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let fake = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut req = [0u8; 8];
            if sock.read_exact(&mut req).await.is_ok() {
                let _ = sock.write_all(b"N").await;
                let mut rest = [0u8; 256];
                let _ = sock.read(&mut rest).await;
            }
        }
    });
    let e = attach_err(&format!(
        "postgres://postgres:sekret@127.0.0.1:{port}/test?sslmode=require&connect_timeout=5"
    ))
    .await;
    assert_clean(&e, "sekret", &["TLS"]);
    fake.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_dropped_between_planning_and_scan() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let name = unique_name("gone");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int, s text); INSERT INTO {t} VALUES (1, 'a')",
            t = q(&schema, &name)
        ))
        .await
        .expect("fixture");
    let engine = engine_for(&schema, "").await;
    let df = engine
        .sql(&format!("SELECT * FROM pg.{name} WHERE id > 0"))
        .await
        .expect("plan");
    client
        .batch_execute(&format!("DROP TABLE {}", q(&schema, &name)))
        .await
        .expect("drop");
    let e = df.collect().await.expect_err("scanning a dropped table");
    let msg = e.to_string();
    assert!(msg.contains(&name), "error should name the table: {msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    // And planning it again says so too.
    let e = engine
        .execute(&format!("SELECT * FROM pg.{name}"))
        .await
        .expect_err("dropped table");
    assert!(e.to_string().contains(&name), "{e}");
}

// ------------------------------------------------------------------ 9. record API

/// A single `create` is an INSERT each connection prepares once: a table of the same name
/// made again with other column types must get a statement of its own (its parameters are
/// typed when prepared), and a single create stores what a batch stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_creates_follow_a_table_remade_with_other_types() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    // Few pooled connections, so the second table meets the first one's prepared statement.
    let engine = engine_for(&schema, "pool_size=2").await;
    engine
        .execute("CREATE TABLE pg.t (id TEXT PRIMARY KEY, v BIGINT, d DATE, n NUMERIC(6,2))")
        .await
        .expect("create");
    let db = engine.database("pg.t").await.expect("database");
    db.create(
        Record::new()
            .with_id("a")
            .with("v", 7i64)
            .with("d", "2024-02-29")
            .with("n", 1.25),
    )
    .await
    .expect("create");
    db.batch_create(vec![
        Record::new()
            .with_id("b")
            .with("v", 7i64)
            .with("d", "2024-02-29")
            .with("n", 1.25),
    ])
    .await
    .expect("batch");
    let rows = |t: String| {
        let client = &client;
        async move {
            client
                .query(
                    &format!("SELECT id, v::text, d::text, n::text FROM {t} ORDER BY id"),
                    &[],
                )
                .await
                .expect("native select")
                .iter()
                .map(|r| {
                    (1..4)
                        .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        rows(q(&schema, "t")).await,
        ["7|2024-02-29|1.25", "7|2024-02-29|1.25"],
        "a single create stores what a batch does"
    );

    engine.execute("DROP TABLE pg.t").await.expect("drop");
    engine
        .execute("CREATE TABLE pg.t (id TEXT PRIMARY KEY, v TEXT, d TEXT, n TEXT)")
        .await
        .expect("create again");
    let db = engine.database("pg.t").await.expect("database");
    // Eight bytes of text would read as a bigint under the first table's statement.
    db.create(
        Record::new()
            .with_id("a")
            .with("v", "abcdefgh")
            .with("d", "d")
            .with("n", "n"),
    )
    .await
    .expect("create in the new table");
    assert_eq!(rows(q(&schema, "t")).await, ["abcdefgh|d|n"]);
    let e = db
        .create(Record::new().with_id("a").with("v", "x"))
        .await
        .expect_err("a taken id");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert!(e.to_string().contains("'a'"), "names the id: {e}");
}

/// A large `batch_create` is converted and sent a part at a time (the server ingests the first
/// rows while the rest are converted): every record arrives once and in full; a bad value far
/// into the batch is a type error naming its row, and nothing of the batch is kept, nor of a
/// batch with a repeated id in its last part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_are_sent_in_parts_all_or_nothing() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let engine = engine_for(&schema, "").await;
    engine
        .execute("CREATE TABLE pg.big (id TEXT PRIMARY KEY, name TEXT, age BIGINT)")
        .await
        .expect("create");
    let db = engine.database("pg.big").await.expect("database");
    let person = |i: usize| {
        Record::new()
            .with_id(format!("p{i:05}"))
            .with("name", format!("person {i}"))
            .with("age", (i % 90) as i64)
    };
    let ids = db
        .batch_create((0..7000).map(person).collect())
        .await
        .expect("batch_create");
    assert_eq!(ids.len(), 7000);
    assert_eq!(ids[6999], "p06999");
    let native_rows = |sql: String| {
        let client = &client;
        async move {
            let row = client.query_one(&sql, &[]).await.expect("native query");
            (row.get::<_, i64>(0), row.get::<_, Option<i64>>(1))
        }
    };
    let table = q(&schema, "big");
    assert_eq!(
        native_rows(format!(
            "SELECT count(*), sum(age + length(name))::bigint FROM {table} \
             WHERE id = 'p' || lpad(substr(name, 8), 5, '0')"
        ))
        .await,
        (
            7000,
            Some(
                (0..7000usize)
                    .map(|i| (i % 90 + format!("person {i}").len()) as i64)
                    .sum()
            )
        ),
        "every record stored once, in full, under its own id"
    );

    // A bad value in the fourth part: refused, naming its row; nothing of the batch kept.
    let mut bad: Vec<Record> = (10_000..18_000).map(person).collect();
    bad[6500] = Record::new()
        .with_id("bad")
        .with("name", "bad")
        .with("age", "abc");
    let e = db.batch_create(bad).await.expect_err("a text age");
    assert_eq!(e.kind(), ErrorKind::Type, "{e}");
    assert!(e.to_string().contains("row 6501"), "names the row: {e}");
    // A repeated id in the last part: refused by the server after the first parts were sent.
    let mut dup: Vec<Record> = (20_000..26_000).map(person).collect();
    dup[5999] = person(20_001);
    let e = db.batch_create(dup).await.expect_err("a repeated id");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(
        native_rows(format!("SELECT count(*), max(age) FROM {table}")).await,
        (7000, Some(89)),
        "the refused batches left nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_api_on_postgres() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let engine = engine_for(&schema, "").await;
    engine
        .execute("CREATE TABLE pg.people (id TEXT PRIMARY KEY, name TEXT, age BIGINT)")
        .await
        .expect("create");
    let db = engine.database("pg.people").await.expect("database");
    assert_eq!(db.key_column().as_deref(), Some("id"));

    let id = db
        .create(Record::new().with("name", "Ann").with("age", 31i64))
        .await
        .expect("create");
    assert!(!id.is_empty());
    db.create(
        Record::new()
            .with_id("bob")
            .with("name", "Bob")
            .with("age", 40i64),
    )
    .await
    .expect("create with id");
    let e = db
        .create(Record::new().with_id("bob").with("name", "Bob2"))
        .await
        .expect_err("duplicate id");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");

    let ann = db.read(&id).await.expect("read").expect("ann exists");
    assert_eq!(ann.get("name"), Some(&Value::String("Ann".into())));
    assert_eq!(ann.get("age"), Some(&Value::Int(31)));
    assert!(db.read("nobody").await.expect("read").is_none());
    assert!(db.exists("bob").await.expect("exists"));
    assert!(!db.exists("nobody").await.expect("exists"));

    // Visible to SQL as typed columns.
    let b = one(&engine
        .execute("SELECT id, name, age FROM pg.people ORDER BY age")
        .await
        .expect("sql"));
    assert_eq!(col(&b, "age").data_type(), &DataType::Int64);
    assert_eq!(texts(&b, "name"), ["Ann", "Bob"]);
    assert_eq!(texts(&b, "id"), [id.as_str(), "bob"]);
    let native_age: i64 = client
        .query_one(
            &format!("SELECT age FROM {} WHERE id = 'bob'", q(&schema, "people")),
            &[],
        )
        .await
        .expect("native")
        .get(0);
    assert_eq!(native_age, 40);

    assert!(
        db.update(
            "bob",
            Record::new().with("name", "Robert").with("age", 41i64)
        )
        .await
        .expect("update")
    );
    assert!(
        !db.update("nobody", Record::new().with("name", "x"))
            .await
            .expect("update missing")
    );
    let bob = db.read("bob").await.expect("read").expect("bob");
    assert_eq!(bob.get("name"), Some(&Value::String("Robert".into())));
    assert_eq!(bob.get("age"), Some(&Value::Int(41)));

    // Upsert: replaces an existing record, creates a missing one.
    db.upsert(
        "bob",
        Record::new().with("name", "Bobby").with("age", 42i64),
    )
    .await
    .expect("upsert existing");
    db.upsert("cy", Record::new().with("name", "Cy").with("age", 7i64))
        .await
        .expect("upsert new");
    let bob = db.read("bob").await.expect("read").expect("bob");
    assert_eq!(bob.get("name"), Some(&Value::String("Bobby".into())));
    assert_eq!(bob.get("age"), Some(&Value::Int(42)));
    assert_eq!(count(&engine, "pg.people").await, 3);
    // Upsert replaces: fields left out become NULL.
    db.upsert("cy", Record::new().with("name", "Cyrus"))
        .await
        .expect("upsert without age");
    assert_eq!(
        rows(
            &engine
                .execute("SELECT name, age FROM pg.people WHERE id = 'cy'")
                .await
                .expect("sql")
        ),
        ["| Cyrus |     |"]
    );

    let ids = db
        .batch_create(
            (0..50)
                .map(|i| {
                    Record::new()
                        .with_id(format!("b{i:02}"))
                        .with("name", format!("n{i}"))
                        .with("age", i as i64)
                })
                .collect(),
        )
        .await
        .expect("batch_create");
    assert_eq!(ids.len(), 50);
    assert_eq!(ids[7], "b07");
    assert_eq!(db.count(None).await.expect("count"), 53);
    let q20 = Query::new().filter("age", Operator::Lt, 20i64).unwrap();
    assert_eq!(db.count(Some(&q20)).await.expect("count filtered"), 20);
    let found = db
        .search(
            &Query::new()
                .filter("age", Operator::Ge, 40i64)
                .unwrap()
                .sort("age", dataknobs::SortOrder::Desc)
                .limit(3),
        )
        .await
        .expect("search");
    let ages: Vec<Value> = found
        .iter()
        .map(|r| r.get("age").cloned().unwrap())
        .collect();
    assert_eq!(ages, [Value::Int(49), Value::Int(48), Value::Int(47)]);
    let found = db
        .search(&Query::new().filter("name", Operator::Like, "B%").unwrap())
        .await
        .expect("search like");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id(), Some("bob"));

    assert!(db.delete("bob").await.expect("delete"));
    assert!(!db.delete("bob").await.expect("delete again"));
    assert!(!db.exists("bob").await.expect("exists"));
    assert_eq!(db.count(None).await.expect("count"), 52);
    // SQL sees the API's writes and vice versa.
    engine
        .execute("INSERT INTO pg.people VALUES ('sql1', 'From SQL', 5)")
        .await
        .expect("sql insert");
    let r = db.read("sql1").await.expect("read").expect("sql1");
    assert_eq!(r.get("name"), Some(&Value::String("From SQL".into())));

    assert_eq!(db.clear().await.expect("clear"), 53);
    assert_eq!(db.count(None).await.expect("count"), 0);
    assert_eq!(native_count(&client, &q(&schema, "people")).await, 0);
}

/// `cond` through dataknobs on `pg.<table>`, pushed and not, selects the ids PostgreSQL
/// selects natively with `native_cond` on `native_table` (quoted); the table has an int `id`
/// column.
async fn matches_native(
    engine: &Engine,
    client: &Client,
    (table, native_table): (&str, &str),
    cond: &str,
    native_cond: &str,
) {
    let table = format!("pg.{table}");
    same_ids_as_postgresql(
        engine,
        client,
        native_table,
        &[&table],
        &[(cond, native_cond)],
    )
    .await;
}

/// char(n) reads as its text (trailing blanks removed) and every comparison on it answers as
/// PostgreSQL does on `c::text`, pushed or not: TPC-H's `n_name = 'GERMANY'` on char(25).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn char_n_answers_as_its_text() {
    let _server = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "nation");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, c char(10), v varchar(10)); \
             INSERT INTO {t} VALUES (1, 'GERMANY', 'GERMANY'), (2, 'FRANCE  ', 'FRANCE  '), \
             (3, 'A  B', 'A  B'), (4, '', ''), (5, NULL, NULL), (6, ' LEAD', ' LEAD'), \
             (7, 'GERMANY ', 'x')"
        ))
        .await
        .expect("fixture");
    let engine = engine_for(&schema, "").await;
    // (dataknobs SQL on `c`, the same statement natively on `c::text`)
    let cases = [
        ("c = 'GERMANY'", "c::text = 'GERMANY'"),
        ("c = 'GERMANY '", "c::text = 'GERMANY '"),
        ("c IN ('FRANCE', 'A  B')", "c::text IN ('FRANCE', 'A  B')"),
        ("c < 'B'", "c::text COLLATE \"C\" < 'B'"),
        ("c >= 'FRANCE'", "c::text COLLATE \"C\" >= 'FRANCE'"),
        ("c LIKE '%Y'", "c::text LIKE '%Y'"),
        ("c LIKE '% '", "c::text LIKE '% '"),
        ("c = ''", "c::text = ''"),
        ("c <> 'GERMANY'", "c::text <> 'GERMANY'"),
        ("c = v", "c::text = v::text"),
        ("length(c) = 7", "length(c::text) = 7"),
        ("c IS NULL", "c IS NULL"),
    ];
    for (dk, pg) in cases {
        matches_native(&engine, &client, ("nation", &t), dk, pg).await;
    }
    engine
        .execute("SET dataknobs.pushdown = true")
        .await
        .expect("set");
    // The values as PostgreSQL's cast to text gives them, and the order and grouping of them.
    let want: Vec<String> = client
        .query(
            &format!(
                "SELECT coalesce(c::text, 'NULL') FROM {t} ORDER BY c::text COLLATE \"C\" NULLS LAST, id"
            ),
            &[],
        )
        .await
        .expect("native order")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let sql = "SELECT c FROM pg.nation ORDER BY c, id";
    let plan = explain(&engine, sql).await;
    assert!(plan.contains("ORDER BY"), "ORDER BY char(n) pushed: {plan}");
    let b = one(&engine.execute(sql).await.expect("order"));
    assert_eq!(texts(&b, "c"), want);
    let b = one(&engine
        .execute("SELECT c, count(*) AS n FROM pg.nation GROUP BY c ORDER BY c")
        .await
        .expect("group"));
    let germany = texts(&b, "c").iter().position(|c| c == "GERMANY");
    let n = col(&b, "n").as_primitive::<adt::Int64Type>();
    assert_eq!(
        germany.map(|i| n.value(i)),
        Some(2),
        "'GERMANY' and 'GERMANY ' are one group"
    );
}

/// A filter value holding a NUL byte (which PostgreSQL text cannot hold) is answered by the
/// engine: `s <> chr(0)` keeps every non-NULL row, pushed or not, instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_a_filter_value_is_answered_by_the_engine() {
    let _server = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "nul");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, s text); \
             INSERT INTO {t} VALUES (1, 'a'), (2, ''), (3, NULL), (4, 'b')"
        ))
        .await
        .expect("fixture");
    let engine = engine_for(&schema, "").await;
    for (cond, want) in [
        ("s <> chr(0)", vec!["1", "2", "4"]),
        ("s = chr(0)", vec![]),
        ("s IN ('a', chr(0))", vec!["1"]),
        ("s NOT IN ('a', concat('x', chr(0)))", vec!["2", "4"]),
        ("s LIKE concat('%', chr(0))", vec![]),
    ] {
        for pushdown in [true, false] {
            let got = ids_where(&engine, "pg.nul", cond, pushdown).await;
            assert_eq!(got, want, "WHERE {cond} (pushdown {pushdown})");
        }
    }
}

/// The one-byte `"char"` type reads as psql shows it: the empty value as '' (its binary form is
/// a NUL byte), and `ch = ''` answers alike pushed or not, as PostgreSQL does on `ch::text`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_char_reads_as_its_text() {
    let _server = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "onechar");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, ch \"char\"); \
             INSERT INTO {t} VALUES (1, 'a'), (2, ''), (3, NULL), (4, 'z')"
        ))
        .await
        .expect("fixture");
    let engine = engine_for(&schema, "").await;
    let b = one(&engine
        .execute("SELECT id, ch, length(ch) AS n FROM pg.onechar ORDER BY id")
        .await
        .expect("select"));
    assert_eq!(texts(&b, "ch"), ["a", "", "NULL", "z"]);
    assert_eq!(texts(&b, "n"), ["1", "0", "NULL", "1"]);
    for (cond, native_cond) in [
        ("ch = ''", "ch::text = ''"),
        ("ch <> ''", "ch::text <> ''"),
        ("ch IN ('', 'z')", "ch::text IN ('', 'z')"),
        ("ch < 'b'", "ch::text COLLATE \"C\" < 'b'"),
    ] {
        matches_native(&engine, &client, ("onechar", &t), cond, native_cond).await;
    }
}

/// A NaN stored with its sign bit set (`-('NaN'::float8)`) is one NaN, above every number, as
/// PostgreSQL holds it: pushed or not, `x < 0`, `x = 'NaN'`, `x > 1e307` and `x <> 1` answer as
/// PostgreSQL does, for double precision and real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_nan_is_the_one_nan() {
    let _server = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "nans");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, x float8, r real); \
             INSERT INTO {t} VALUES (1, -('NaN'::float8), -('NaN'::real)), (2, 'NaN', 'NaN'), \
             (3, -1, -1), (4, 1, 1), (5, NULL, NULL), (6, '-Infinity', '-Infinity')"
        ))
        .await
        .expect("fixture");
    let engine = engine_for(&schema, "").await;
    for c in ["x", "r"] {
        for cond in [
            format!("{c} < 0"),
            format!("{c} = 'NaN'"),
            format!("{c} > 1e307"),
            format!("{c} <> 1"),
            format!("{c} >= '-Infinity'"),
        ] {
            matches_native(&engine, &client, ("nans", &t), &cond, &cond).await;
        }
    }
}

/// Under a nondeterministic collation (ICU, case-insensitive) PostgreSQL's `=` is not byte
/// equality; DataFusion's is. Equality, `<>`, `IN` and `NOT IN` are sent as `COLLATE "C"`, so
/// the answer is the engine's, pushed or not, and equals PostgreSQL's on `ci COLLATE "C"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nondeterministic_collations_compare_bytes() {
    let _server = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "nd");
    let coll = q(&schema, "nd_ci");
    client
        .batch_execute(&format!(
            "CREATE COLLATION {coll} (provider = icu, locale = 'und-u-ks-level2', deterministic = false); \
             CREATE TABLE {t} (id int PRIMARY KEY, ci text COLLATE {coll}, v varchar(10) COLLATE {coll}); \
             INSERT INTO {t} VALUES (1, 'abc', 'abc'), (2, 'ABC', 'ABC'), (3, 'Abc', 'x'), \
             (4, 'x', 'X'), (5, NULL, NULL)"
        ))
        .await
        .expect("fixture (PostgreSQL built with ICU)");
    let engine = engine_for(&schema, "").await;
    for c in ["ci", "v"] {
        for (cond, native_cond) in [
            (format!("{c} = 'abc'"), format!("{c} COLLATE \"C\" = 'abc'")),
            (
                format!("{c} <> 'abc'"),
                format!("{c} COLLATE \"C\" <> 'abc'"),
            ),
            (
                format!("{c} IN ('abc', 'x')"),
                format!("{c} COLLATE \"C\" IN ('abc', 'x')"),
            ),
            (
                format!("{c} NOT IN ('abc', 'X')"),
                format!("{c} COLLATE \"C\" NOT IN ('abc', 'X')"),
            ),
        ] {
            let plan = explain(&engine, &format!("SELECT id FROM pg.nd WHERE {cond}")).await;
            assert!(plan.contains(r#"COLLATE "C""#), "{cond}: {plan}");
            matches_native(&engine, &client, ("nd", &t), &cond, &native_cond).await;
        }
    }
}

/// Filters on dates and timestamps before 1 AD reach PostgreSQL with their year (spelled with
/// BC) and answer as PostgreSQL does, pushed or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_before_1_ad_are_pushed_with_their_year() {
    let _server = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "bc");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, ts timestamptz, tn timestamp, d date); \
             INSERT INTO {t} VALUES \
             (1, '0100-01-01 00:00:00+00 BC', '0100-01-01 00:00:00 BC', '0100-01-01 BC'), \
             (2, '0028-08-11 08:00:00+00 BC', '0028-08-11 08:00:00 BC', '0028-08-11 BC'), \
             (3, '0001-06-01 00:00:00+00 BC', '0001-06-01 00:00:00 BC', '0001-06-01 BC'), \
             (4, '2020-01-01 00:00:00+00', '2020-01-01 00:00:00', '2020-01-01'), \
             (5, NULL, NULL, NULL)"
        ))
        .await
        .expect("fixture");
    let engine = engine_for(&schema, "").await;
    let cut = "to_timestamp_seconds(-63000000000)";
    let native_cut = "to_timestamp(-63000000000)";
    for (cond, native_cond) in [
        (format!("ts < {cut}"), format!("ts < {native_cut}")),
        (format!("ts >= {cut}"), format!("ts >= {native_cut}")),
        (
            "tn <= to_timestamp_micros(-63000000000000000)".to_string(),
            format!("tn <= ({native_cut} AT TIME ZONE 'UTC')"),
        ),
        (
            format!("d < CAST({cut} AS DATE)"),
            format!("d < ({native_cut} AT TIME ZONE 'UTC')::date"),
        ),
        (
            "d = CAST(to_timestamp_seconds(-62154086400) AS DATE)".to_string(),
            "d = (to_timestamp(-62154086400) AT TIME ZONE 'UTC')::date".to_string(),
        ),
    ] {
        let plan = explain(&engine, &format!("SELECT id FROM pg.bc WHERE {cond}")).await;
        assert!(plan.contains(" BC'"), "{cond} pushed with its era: {plan}");
        matches_native(&engine, &client, ("bc", &t), &cond, &native_cond).await;
    }
}

/// `count(*)` with a WHERE PostgreSQL answers exactly is one `SELECT count(*)` there (EXPLAIN
/// shows it), and counts what the native statement and the scan path count; a WHERE it cannot
/// answer keeps the rows path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_star_is_counted_by_postgres() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let t = q(&schema, "cnt");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int, a int, s text); \
             INSERT INTO {t} SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE g % 5 END, 's' || (g % 3) \
             FROM generate_series(1, 1000) g"
        ))
        .await
        .expect("fixture");
    let engine = engine_for(&schema, "").await;
    for (cond, native_cond) in [
        ("TRUE", "TRUE"),
        ("a > 2", "a > 2"),
        ("a IS NULL OR s = 's1'", "a IS NULL OR s = 's1'"),
        ("NOT (a = 1)", "NOT (a = 1)"),
        (
            "s LIKE 's%' AND id BETWEEN 10 AND 500",
            "s LIKE 's%' AND id BETWEEN 10 AND 500",
        ),
    ] {
        let sql = format!("SELECT count(*) FROM cnt WHERE {cond}");
        let plan = explain(&engine, &sql).await;
        assert!(plan.contains("DataknobsCountExec"), "{sql}: {plan}");
        assert!(
            plan.contains(&format!("request=SELECT count(*) FROM {t}")),
            "{sql}: {plan}"
        );
        let want: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM {t} WHERE {native_cond}"),
                &[],
            )
            .await
            .expect("native count")
            .get(0);
        let got = rows(&engine.execute(&sql).await.expect("count"));
        assert!(
            got[0].contains(&format!(" {want} ")),
            "{sql}: {got:?} vs {want}"
        );
        engine
            .execute("SET dataknobs.pushdown = false")
            .await
            .expect("pushdown off");
        let off = rows(&engine.execute(&sql).await.expect("count without pushdown"));
        engine
            .execute("SET dataknobs.pushdown = true")
            .await
            .expect("pushdown on");
        assert_eq!(got, off, "{sql}");
    }
    // A WHERE PostgreSQL cannot answer exactly: counted from the rows.
    let plan = explain(&engine, "SELECT count(*) FROM cnt WHERE s ~ '(?i)S1'").await;
    assert!(!plan.contains("DataknobsCountExec"), "{plan}");
}

// ------------------------------------------------------------------ 8. cancellation

/// A statement dropped while PostgreSQL is still working (a cancelled query in the prompt)
/// cancels the server's query too, before its first row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_scan_cancels_the_server_query() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    let view = unique_name("slow");
    client
        .batch_execute(&format!(
            "CREATE VIEW {} AS SELECT pg_sleep(60)::text AS x",
            q(&schema, &view)
        ))
        .await
        .expect("create the slow view");
    let engine = Arc::new(engine_for(&schema, "").await);
    let task = {
        let engine = engine.clone();
        let sql = format!("SELECT * FROM pg.{view}");
        tokio::spawn(async move { engine.execute(&sql).await })
    };
    let pattern = format!("%{view}%");
    let active = || async {
        client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active' \
                 AND pid <> pg_backend_pid()",
                &[&pattern],
            )
            .await
            .expect("pg_stat_activity")
            .len()
    };
    let start = Instant::now();
    while active().await == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the query never showed up in pg_stat_activity"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let start = Instant::now();
    while active().await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the server still runs the query 10 s after the statement was dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A record search is one prepared COPY kept per connection (at most 100 statements each):
/// repeating it, more distinct searches than the cache holds (230 on two connections), and the same search after the
/// table was dropped and made again under its name all read what PostgreSQL holds now. The
/// results are large enough to arrive in several early batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_searches_read_the_table_as_it_is_now() {
    let _g = SERVER.read().await;
    let schema = fresh_schema().await;
    let client = native().await;
    // At most two connections (searches one after another use one of them): each sees more
    // distinct searches than it keeps prepared.
    let engine = engine_for(&schema, "pool_size=2").await;
    engine
        .execute("CREATE TABLE pg.people (id TEXT PRIMARY KEY, name TEXT, age BIGINT)")
        .await
        .expect("create");
    let db = engine.database("pg.people").await.expect("database");
    db.batch_create(
        (0..3000)
            .map(|i| {
                Record::new()
                    .with_id(format!("p{i:04}"))
                    .with("name", format!("person {i}"))
                    .with("age", (i % 90) as i64)
            })
            .collect(),
    )
    .await
    .expect("batch_create");
    let table = q(&schema, "people");
    let native_ids = |age: i64| {
        let (client, table) = (&client, &table);
        async move {
            let mut ids: Vec<String> = client
                .query(&format!("SELECT id FROM {table} WHERE age > {age}"), &[])
                .await
                .expect("native query")
                .iter()
                .map(|r| r.get(0))
                .collect();
            ids.sort();
            ids
        }
    };
    let found_ids = |age: i64| {
        let db = &db;
        async move {
            let found = db
                .search(&Query::new().filter("age", Operator::Gt, age).unwrap())
                .await
                .unwrap_or_else(|e| panic!("search age > {age}: {e}"));
            let mut ids: Vec<String> = found
                .iter()
                .map(|r| r.id().expect("an id").to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    let want = native_ids(10).await;
    assert_eq!(want.len(), 2626);
    for _ in 0..3 {
        assert_eq!(found_ids(10).await, want);
    }
    // More distinct searches than one connection keeps prepared.
    for age in -135..95 {
        assert_eq!(found_ids(age).await, native_ids(age).await, "age > {age}");
    }
    // The same search after the table was dropped and made again under the same name, with
    // other rows: the statement prepared before reads the new table.
    client
        .batch_execute(&format!(
            "DROP TABLE {table}; CREATE TABLE {table} (id TEXT PRIMARY KEY, name TEXT, age BIGINT); \
             INSERT INTO {table} SELECT 'n' || i, 'new ' || i, i FROM generate_series(1, 40) i"
        ))
        .await
        .expect("re-create natively");
    let want = native_ids(10).await;
    assert_eq!(want.len(), 30);
    assert_eq!(found_ids(10).await, want);
}
