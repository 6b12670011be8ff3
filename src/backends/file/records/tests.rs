//! Tests of the file record store: every format and compression round trip, files from other
//! tools, concurrency between handles and threads, failures that leave the file as it was.

use std::fs::{self, OpenOptions};
use std::io::Write;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Field as ArrowField;
use datafusion::arrow::record_batch::RecordBatch;

use super::*;
use crate::database::{BlockingDatabase, Database, FilterSupport};
use crate::error::ErrorKind;
use crate::query::{FilterExpr, Query};
use crate::query::{Operator, SortOrder};
use crate::record::Field;
use crate::record::Record;
use crate::record::Value;
use chrono::DateTime;
use datafusion::arrow::compute::concat_batches;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{col, lit};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;
use std::sync::atomic::Ordering;

fn all_types_record(i: i64) -> Record {
    let id = format!("r{i}");
    let mut r = Record::new().with("id", id.as_str()).with_id(id.as_str());
    let typed = |n: &str, v: Value, t: FieldType| Field::typed(n, v, t).unwrap();
    r.set_field(typed(
        "s",
        format!("s{i} ünï 中文 🎉 \"dq\" 'sq', comma\ttab").into(),
        FieldType::String,
    ));
    r.set_field(typed(
        "i",
        Value::Int(i * 1_000_000_007 - 3),
        FieldType::Integer,
    ));
    let f = match i {
        1 => f64::INFINITY,
        2 => f64::NEG_INFINITY,
        3 => 1e300,
        _ => i as f64 / 3.0,
    };
    r.set_field(typed("f", Value::Float(f), FieldType::Float));
    r.set_field(typed("b", Value::Bool(i % 2 == 0), FieldType::Boolean));
    r.set_field(typed(
        "d",
        Value::DateTime(DateTime::from_timestamp_micros(1_700_000_000_123_456 + i).unwrap()),
        FieldType::DateTime,
    ));
    r.set_field(typed(
        "j",
        Value::Json(serde_json::json!({"k": [i, "x\"y", {"ü": null}], "n": 1.5})),
        FieldType::Json,
    ));
    r.set_field(typed(
        "bin",
        Value::Binary(vec![0u8, 255, i as u8, b',', b'\n']),
        FieldType::Binary,
    ));
    r.set_field(typed(
        "t",
        Value::String(format!("line1\nline2 \"q\", 'x'\tz {i}")),
        FieldType::Text,
    ));
    r
}

fn null_record() -> Record {
    let mut r = Record::new().with("id", "nulls").with_id("nulls");
    for t in FieldType::ALL {
        let name = match t {
            FieldType::String => "s",
            FieldType::Integer => "i",
            FieldType::Float => "f",
            FieldType::Boolean => "b",
            FieldType::DateTime => "d",
            FieldType::Json => "j",
            FieldType::Binary => "bin",
            FieldType::Text => "t",
        };
        r.set_field(Field::typed(name, Value::Null, t).unwrap());
    }
    r
}

fn blocking(db: &FileDatabase) -> BlockingDatabase {
    BlockingDatabase::new(Arc::new(db.clone())).unwrap()
}

fn leftover_temp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn every_format_and_compression_round_trips_all_types() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected: Vec<Record> = (0..6).map(all_types_record).collect();
    expected.push(null_record());
    for format in Format::ALL {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let name = if format == Format::Parquet {
                format!("t-{compression:?}.parquet")
            } else {
                format::file_name("t", format, compression)
            };
            let path = dir.path().join(&name);
            let db = FileDatabase::open(&path, None, Some(compression)).unwrap();
            assert_eq!(db.format(), format);
            let b = blocking(&db);
            // One single create (tail buffer), then a batch.
            b.create(expected[0].clone()).unwrap();
            b.batch_create(expected[1..].to_vec()).unwrap();
            drop(b);
            // A fresh handle reads what the file holds.
            let again = FileDatabase::open(&path, None, Some(compression)).unwrap();
            let b2 = blocking(&again);
            assert_eq!(b2.count(None).unwrap(), expected.len() as u64, "{name}");
            for rec in &expected {
                let got = b2.read(rec.id().unwrap()).unwrap();
                assert_eq!(got.as_ref(), Some(rec), "{name}: record {:?}", rec.id());
            }
            let types: Vec<FieldType> = again
                .schema()
                .fields()
                .iter()
                .map(|f| FieldType::from_arrow(f))
                .collect();
            assert_eq!(
                types,
                vec![
                    FieldType::String,
                    FieldType::String,
                    FieldType::Integer,
                    FieldType::Float,
                    FieldType::Boolean,
                    FieldType::DateTime,
                    FieldType::Json,
                    FieldType::Binary,
                    FieldType::Text
                ],
                "{name}"
            );
            assert_eq!(again.key_column().as_deref(), Some("id"));
            // Updates go through a rewrite too.
            let mut changed = expected[2].clone();
            changed.set("s", "changed");
            assert!(b2.update("r2", changed.clone()).unwrap());
            let third = FileDatabase::open(&path, None, Some(compression)).unwrap();
            assert_eq!(
                blocking(&third).read("r2").unwrap(),
                Some(changed),
                "{name}"
            );
            assert!(leftover_temp_files(dir.path()).is_empty());
        }
    }
}

#[test]
fn text_files_are_plain_and_readable_by_other_tools() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("p.csv");
    let b = blocking(&FileDatabase::open(&csv, None, None).unwrap());
    b.create(
        Record::new()
            .with("id", "1")
            .with("name", "Ada, \"the\" first")
            .with("age", 36),
    )
    .unwrap();
    let text = fs::read_to_string(&csv).unwrap();
    assert_eq!(text, "id,name,age\n1,\"Ada, \"\"the\"\" first\",36\n");
    assert!(dir.path().join(".p.csv.schema.json").exists());

    let json = dir.path().join("p.json");
    let b = blocking(&FileDatabase::open(&json, None, None).unwrap());
    b.create(
        Record::new()
            .with("id", "1")
            .with("j", serde_json::json!({"a": [1]})),
    )
    .unwrap();
    b.create(Record::new().with("id", "2")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"id": "1", "j": {"a": [1]}}, {"id": "2", "j": null}])
    );
}

#[test]
fn create_new_writes_an_empty_file_of_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        FieldType::String.arrow_field("id").with_nullable(false),
        FieldType::Integer.arrow_field("n"),
        FieldType::Json.arrow_field("j"),
    ]));
    for (name, content) in [
        ("a.csv", Some("id,n,j\n")),
        ("a.tsv", Some("id\tn\tj\n")),
        ("a.json", Some("[]\n")),
        ("a.ndjson", Some("")),
        ("a.parquet", None),
        ("a.csv.gz", None),
    ] {
        let path = dir.path().join(name);
        let db =
            FileDatabase::create_new(&path, None, None, schema.clone(), Some("id".to_string()))
                .unwrap();
        if let Some(c) = content {
            assert_eq!(fs::read_to_string(&path).unwrap(), c, "{name}");
        }
        let again = FileDatabase::open(&path, None, None).unwrap();
        assert_eq!(again.schema().fields(), schema.fields(), "{name}");
        assert_eq!(again.key_column().as_deref(), Some("id"), "{name}");
        assert_eq!(blocking(&again).count(None).unwrap(), 0);
        drop(db);
        let e = FileDatabase::create_new(&path, None, None, schema.clone(), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{name}: {e}");
        assert!(e.to_string().contains(name), "{e}");
    }
    // Keyless collections stay keyless.
    let path = dir.path().join("k.parquet");
    FileDatabase::create_new(&path, None, None, schema.clone(), None).unwrap();
    assert_eq!(
        FileDatabase::open(&path, None, None).unwrap().key_column(),
        None
    );
    let path = dir.path().join("k.csv");
    FileDatabase::create_new(&path, None, None, schema.clone(), None).unwrap();
    assert_eq!(
        FileDatabase::open(&path, None, None).unwrap().key_column(),
        None
    );
    let e = FileDatabase::create_new(
        dir.path().join("bad.csv"),
        None,
        None,
        schema,
        Some("nope".into()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(!dir.path().join("bad.csv").exists());
}

#[tokio::test]
async fn crud_and_search_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.ndjson");
    let db = FileDatabase::open(&path, None, None).unwrap();
    assert_eq!(db.collection_name(), "people");
    assert!(
        !path.exists(),
        "a missing file is created on the first write"
    );
    assert_eq!(db.count(None).await.unwrap(), 0);
    for (id, name, age) in [("1", "Ada", 36), ("2", "Alan", 41), ("3", "Grace", 45)] {
        db.create(
            Record::new()
                .with("id", id)
                .with("name", name)
                .with("age", age),
        )
        .await
        .unwrap();
    }
    assert!(path.exists());
    let dup = db.create(Record::new().with("id", "1")).await.unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::AlreadyExists);
    assert_eq!(dup.backend(), Some("file"));
    let generated = db.create(Record::new().with("name", "Anon")).await.unwrap();
    assert_eq!(generated.len(), 36, "a UUID");
    assert!(db.exists("2").await.unwrap());
    assert_eq!(
        db.read("2").await.unwrap().unwrap().get("name"),
        Some(&Value::from("Alan"))
    );
    assert!(
        db.update("2", Record::new().with("name", "Alan T").with("age", 42))
            .await
            .unwrap()
    );
    assert!(
        !db.update("nope", Record::new().with("age", 1))
            .await
            .unwrap()
    );
    assert!(db.delete(&generated).await.unwrap());
    assert!(!db.delete(&generated).await.unwrap());
    assert_eq!(
        db.upsert("4", Record::new().with("name", "Barbara").with("age", 30))
            .await
            .unwrap(),
        "4"
    );
    assert_eq!(
        db.upsert("4", Record::new().with("name", "Barbara L").with("age", 31))
            .await
            .unwrap(),
        "4"
    );

    let q = Query::new()
        .filter("age", Operator::Ge, 35)
        .unwrap()
        .sort("age", SortOrder::Desc)
        .limit(2);
    let found = db.search(&q).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|r| r.id().unwrap()).collect();
    assert_eq!(ids, ["3", "2"]);
    let q = Query::new().filter("name", Operator::Like, "A%").unwrap();
    assert_eq!(db.count(Some(&q)).await.unwrap(), 2);
    let q = Query::new()
        .filter("id", Operator::In, vec!["1", "4"])
        .unwrap()
        .sort("id", SortOrder::Asc)
        .offset(1)
        .project(["name"]);
    let found = db.search(&q).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].get("name"), Some(&Value::from("Barbara L")));
    let bad = db
        .search(&Query::new().filter("nope", Operator::Eq, 1).unwrap())
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("nope"), "{bad}");

    // Everything is in the file.
    let again = FileDatabase::open(&path, None, None).unwrap();
    assert_eq!(again.count(None).await.unwrap(), 4);
    assert_eq!(
        again.read("4").await.unwrap().unwrap().get("age"),
        Some(&Value::Int(31))
    );
    let updates = vec![
        ("1".to_string(), Record::new().with("age", 37)),
        ("2".to_string(), Record::new().with("age", "not a number")),
    ];
    assert!(again.batch_update(updates).await.is_err());
    assert_eq!(
        again.read("1").await.unwrap().unwrap().get("age"),
        Some(&Value::Int(36)),
        "a failed batch update writes nothing"
    );
    assert_eq!(
        again.batch_delete(&["1".into(), "x".into()]).await.unwrap(),
        [true, false]
    );
    assert_eq!(again.clear().await.unwrap(), 3);
    assert_eq!(db.count(None).await.unwrap(), 0, "the other handle reloads");
}

#[tokio::test]
async fn sql_side_insert_delete_update_where_and_scan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let schema = Arc::new(Schema::new(vec![
        ArrowField::new("k", DataType::Int64, false),
        ArrowField::new("v", DataType::Utf8View, true),
    ]));
    let db = FileDatabase::create_new(&path, None, None, schema.clone(), Some("k".into())).unwrap();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(datafusion::arrow::array::Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(datafusion::arrow::array::StringViewArray::from(vec![
                Some("a"),
                None,
                Some("c"),
                Some("d"),
            ])),
        ],
    )
    .unwrap();
    let stream = |b: RecordBatch| -> SendableRecordBatchStream {
        Box::pin(RecordBatchStreamAdapter::new(
            b.schema(),
            futures::stream::iter(vec![Ok(b)]),
        ))
    };
    assert_eq!(db.insert(stream(batch.clone())).await.unwrap(), 4);
    let e = db.insert(stream(batch.slice(0, 1))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let gt2 = FilterExpr::Cond(crate::query::Filter::new("k", Operator::Gt, 2).unwrap());
    assert_eq!(db.filter_support(&gt2), FilterSupport::Exact);
    assert_eq!(
        db.update_where(&[("k".into(), col("t.k") + lit(10i64))], Some(&gt2))
            .await
            .unwrap(),
        2
    );
    let lt2 = FilterExpr::Cond(crate::query::Filter::new("k", Operator::Lt, 2).unwrap());
    assert_eq!(db.delete_where(Some(&lt2)).await.unwrap(), 1);
    let again = FileDatabase::open(&path, None, None).unwrap();
    let q = Query::new().sort("k", SortOrder::Asc);
    let batches: Vec<RecordBatch> = crate::local::scan(&again, &q)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let all = concat_batches(&batches[0].schema(), &batches).unwrap();
    let keys: Vec<i64> = all
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .values()
        .to_vec();
    assert_eq!(keys, [2, 13, 14]);
    assert_eq!(again.schema().field(1).data_type(), &DataType::Utf8View);
    assert_eq!(again.delete_where(None).await.unwrap(), 3);
    assert_eq!(db.count(None).await.unwrap(), 0);
}

#[tokio::test]
async fn two_handles_on_one_file_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["shared.csv", "shared.ndjson.gz", "shared.parquet"] {
        let path = dir.path().join(name);
        let a = FileDatabase::open(&path, None, None).unwrap();
        let b = FileDatabase::open(&path, None, None).unwrap();
        for i in 0..15 {
            a.create(Record::new().with("id", format!("a{i}")).with("n", i))
                .await
                .unwrap();
            b.create(Record::new().with("id", format!("b{i}")).with("n", i))
                .await
                .unwrap();
        }
        // Updates of the other handle's records, interleaved.
        assert!(a.update("b3", Record::new().with("n", 100)).await.unwrap());
        assert!(b.update("a3", Record::new().with("n", 200)).await.unwrap());
        assert_eq!(a.count(None).await.unwrap(), 30, "{name}");
        assert_eq!(b.count(None).await.unwrap(), 30, "{name}");
        let c = FileDatabase::open(&path, None, None).unwrap();
        assert_eq!(c.count(None).await.unwrap(), 30, "{name}");
        assert_eq!(
            c.read("b3").await.unwrap().unwrap().get("n"),
            Some(&Value::Int(100))
        );
        assert_eq!(
            c.read("a3").await.unwrap().unwrap().get("n"),
            Some(&Value::Int(200))
        );
    }
}

#[test]
fn concurrent_writers_in_threads_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.json");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                // Each thread has its own handle (its own lock file descriptor), like a
                // separate process.
                let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
                for i in 0..20 {
                    db.create(Record::new().with("id", format!("{t}-{i}")).with("t", t))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
    assert_eq!(db.count(None).unwrap(), 80);
    assert!(leftover_temp_files(dir.path()).is_empty());
}

#[test]
fn changes_by_other_programs_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ext.csv");
    let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
    db.create(Record::new().with("id", "1").with("n", 5))
        .unwrap();
    // Another program appends a row without taking the lock.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"2,6\n").unwrap();
    drop(f);
    assert_eq!(db.count(None).unwrap(), 2);
    assert_eq!(
        db.read("2").unwrap().unwrap().get("n"),
        Some(&Value::Int(6))
    );
}

#[test]
fn files_from_other_tools_are_inferred() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.csv");
    fs::write(&path, "id,name,score,ok\n7,x,1.5,true\n8,,2,false\n").unwrap();
    let db = FileDatabase::open(&path, None, None).unwrap();
    let types: Vec<FieldType> = db
        .schema()
        .fields()
        .iter()
        .map(|f| FieldType::from_arrow(f))
        .collect();
    assert_eq!(
        types,
        [
            FieldType::Integer,
            FieldType::String,
            FieldType::Float,
            FieldType::Boolean
        ]
    );
    assert_eq!(db.key_column().as_deref(), Some("id"));
    let b = blocking(&db);
    assert_eq!(
        b.read("8").unwrap().unwrap().get("name"),
        Some(&Value::Null)
    );
    b.create(Record::new().with("id", 9).with("name", "y"))
        .unwrap();
    assert!(dir.path().join(".foreign.csv.schema.json").exists());

    // No usable id column: no key, row numbers are the ids.
    let path = dir.path().join("rows.ndjson");
    fs::write(
        &path,
        "{\"b\": 1, \"a\": \"x\"}\n{\"b\": 2.5, \"a\": {\"n\": 1}}\n",
    )
    .unwrap();
    let db = FileDatabase::open(&path, None, None).unwrap();
    assert_eq!(db.key_column(), None);
    let names: Vec<&str> = vec!["b", "a"];
    let schema = db.schema();
    assert_eq!(
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        names
    );
    assert_eq!(FieldType::from_arrow(schema.field(0)), FieldType::Float);
    assert_eq!(FieldType::from_arrow(schema.field(1)), FieldType::Json);
    let r = blocking(&db).read("2").unwrap().unwrap();
    assert_eq!(r.get("a"), Some(&Value::Json(serde_json::json!({"n": 1}))));
    // Duplicate ids: no key either.
    let path = dir.path().join("dups.json");
    fs::write(&path, "[{\"id\": 1}, {\"id\": 1}]").unwrap();
    assert_eq!(
        FileDatabase::open(&path, None, None).unwrap().key_column(),
        None
    );
}

#[test]
fn corrupt_files_are_reported_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("bad.parquet", b"PAR1 this is not parquet".as_slice()),
        ("bad.csv.gz", b"not gzip".as_slice()),
        ("bad.csv.zst", b"not zstd".as_slice()),
        ("bad.json", b"[{\"a\": 1}, {\"a\": ".as_slice()),
        ("bad2.json", b"42".as_slice()),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, content).unwrap();
        let e = FileDatabase::open(&path, None, None).unwrap_err();
        assert!(
            e.to_string().contains(&path.display().to_string()),
            "{name}: {e}"
        );
        assert_eq!(e.backend(), Some("file"));
    }
    // A directory where the file should be.
    let path = dir.path().join("dir.csv");
    fs::create_dir(&path).unwrap();
    let e = FileDatabase::open(&path, None, None).unwrap_err();
    assert!(e.to_string().contains("dir.csv"), "{e}");
    let e = FileDatabase::open(dir.path().join("x.unknown"), None, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[test]
fn a_csv_row_with_the_wrong_number_of_fields_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    fs::write(&path, "id,a\n1,2\n3,4,5\n6,7\n").unwrap();
    let e = FileDatabase::open(&path, None, None).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    // The same with a sidecar (no inference pass): the reader reports it.
    let path = dir.path().join("typed.csv");
    let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
    db.create(Record::new().with("id", "1").with("a", 2))
        .unwrap();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"3,4,5\n").unwrap();
    drop(f);
    let msg = FileDatabase::open(&path, None, None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("typed.csv") && msg.contains("line 3"), "{msg}");
    assert!(
        msg.contains("schema.json"),
        "names the stale sidecar: {msg}"
    );
}

#[test]
fn json_that_conflicts_with_the_schema_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typed.ndjson");
    let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
    db.create(Record::new().with("id", "1").with("age", 30))
        .unwrap();
    db.create(Record::new().with("id", "2").with("age", 31))
        .unwrap();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"{\"id\": \"3\", \"age\": \"abc\"}\n").unwrap();
    drop(f);
    let e = db.count(None).unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Type, "{msg}");
    assert!(
        msg.contains("typed.ndjson") && msg.contains("line 3"),
        "{msg}"
    );
    assert!(msg.contains("'age'") && msg.contains("INTEGER"), "{msg}");
    // A torn last line (no newline, cut inside the object).
    let path = dir.path().join("torn.ndjson");
    fs::write(&path, "{\"id\": \"1\"}\n{\"id\": \"2\", \"na").unwrap();
    let msg = FileDatabase::open(&path, None, None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("torn.ndjson") && msg.contains("line 2 is cut off"),
        "{msg}"
    );
}

#[test]
fn a_failed_write_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["w.csv", "w.parquet", "w.json.zst"] {
        let path = dir.path().join(name);
        let db = FileDatabase::open(&path, None, None).unwrap();
        let b = blocking(&db);
        b.create(Record::new().with("id", "1").with("v", "one"))
            .unwrap();
        let before = fs::read(&path).unwrap();
        db.access
            .shared
            .fail_next_rename
            .store(true, Ordering::SeqCst);
        let e = b
            .create(Record::new().with("id", "2").with("v", "two"))
            .unwrap_err();
        assert!(e.to_string().contains(name), "{e}");
        assert_eq!(fs::read(&path).unwrap(), before, "{name}: untouched");
        assert!(
            leftover_temp_files(dir.path()).is_empty(),
            "{name}: temp removed"
        );
        // The handle reloads from the file: the failed record is not there.
        assert_eq!(b.count(None).unwrap(), 1);
        assert!(b.read("2").unwrap().is_none());
        b.create(Record::new().with("id", "2").with("v", "two"))
            .unwrap();
        assert_eq!(
            blocking(&FileDatabase::open(&path, None, None).unwrap())
                .count(None)
                .unwrap(),
            2
        );
    }
}

#[test]
fn removing_a_file_removes_its_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.tsv");
    let db = blocking(&FileDatabase::open(&path, None, None).unwrap());
    db.create(Record::new().with("id", "1")).unwrap();
    remove_file_and_sidecars(&path).unwrap();
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        db.count(None).unwrap(),
        0,
        "an open handle sees the file is gone"
    );
    remove_file_and_sidecars(&path).unwrap();
}
