//! An index's mapping as an Arrow schema.
//!
//! Each mapped field is a column; objects are flattened into dotted column names (`user.name`,
//! queried as `"user.name"`), so every leaf keeps its own type and its own pushdown. Nested
//! fields (arrays of objects with their own documents) are one JSON text column. Two metadata
//! columns come first: `_id` (text, never NULL) and `_score` (double; NULL unless a full-text
//! predicate scored the hit).
//!
//! | mapping type | Arrow type | pushdown kind |
//! |---|---|---|
//! | keyword, constant_keyword, wildcard, version | Utf8 | exact terms |
//! | text (with a `keyword` multi-field: its name is kept) | Utf8 | via the keyword field only |
//! | match_only_text, search_as_you_type | Utf8 | none |
//! | long / integer / short / byte | Int64 / Int32 / Int16 / Int8 | exact |
//! | unsigned_long | Decimal128(20, 0) | exact |
//! | double | Float64 | exact |
//! | float, half_float, scaled_float | Float64 (the value in `_source`) | none (indexed rounded) |
//! | boolean | Boolean | exact |
//! | date / date_nanos | Timestamp(ms / ns, UTC) | exact ranges |
//! | ip | Utf8 | exact terms |
//! | binary | Binary (base64 in `_source`) | none |
//! | nested, flattened, geo_*, range types, others | Utf8 holding JSON | none |
//!
//! Indexes behind one alias or pattern whose mappings differ are merged by a widening rule:
//! integer types widen to the widest, an integer meeting a double becomes a double, keyword
//! meeting text becomes text without an exact keyword field; any other difference is an error
//! naming the field and both types.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::record::{EXTENSION_NAME_KEY, JSON_EXTENSION};

/// How a field's values are stored and compared by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EsKind {
    /// Exact terms: keyword and its relatives, ip.
    Keyword,
    /// Analyzed text; `keyword` names an exact multi-field (`title.keyword`) when there is one.
    Text {
        keyword: Option<String>,
    },
    /// long, integer, short, byte, unsigned_long.
    Integer,
    /// double.
    Double,
    /// float, half_float, scaled_float: indexed with less precision than `_source` holds.
    LossyFloat,
    Boolean,
    /// date (milliseconds) or date_nanos.
    Date {
        nanos: bool,
    },
    Binary,
    /// Read as JSON text; never pushed.
    Json,
}

/// One column read from an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsField {
    /// The column name: the field's dotted path.
    pub name: String,
    /// The mapping type as the server names it (`keyword`, `long`, …).
    pub es_type: String,
    pub kind: EsKind,
}

/// The metadata columns every index table has, first.
pub const ID_COLUMN: &str = "_id";
pub const SCORE_COLUMN: &str = "_score";

impl EsField {
    /// The Arrow type values of this field are read as.
    pub fn arrow_type(&self) -> DataType {
        match (self.es_type.as_str(), &self.kind) {
            ("long", _) => DataType::Int64,
            ("integer", _) => DataType::Int32,
            ("short", _) => DataType::Int16,
            ("byte", _) => DataType::Int8,
            ("unsigned_long", _) => DataType::Decimal128(20, 0),
            (_, EsKind::Double | EsKind::LossyFloat) => DataType::Float64,
            (_, EsKind::Boolean) => DataType::Boolean,
            (_, EsKind::Date { nanos: false }) => {
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
            }
            (_, EsKind::Date { nanos: true }) => {
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
            }
            (_, EsKind::Binary) => DataType::Binary,
            _ => DataType::Utf8,
        }
    }

    /// The Arrow field (nullable: any document may lack any field).
    pub fn arrow_field(&self) -> Field {
        let f = Field::new(&self.name, self.arrow_type(), true);
        if self.kind == EsKind::Json {
            f.with_metadata([(EXTENSION_NAME_KEY.to_string(), JSON_EXTENSION.to_string())].into())
        } else {
            f
        }
    }
}

fn kind_of(es_type: &str, props: &Json, path: &str) -> EsKind {
    match es_type {
        "keyword" | "constant_keyword" | "wildcard" | "version" | "ip" => EsKind::Keyword,
        "text" => EsKind::Text {
            keyword: props
                .get("fields")
                .and_then(Json::as_object)
                .and_then(|fields| {
                    fields.iter().find(|(_, sub)| {
                        sub.get("type").and_then(Json::as_str) == Some("keyword")
                            // A normalizer (e.g. lowercase) changes what `=` means.
                            && sub.get("normalizer").is_none()
                    })
                })
                .map(|(name, _)| format!("{path}.{name}")),
        },
        "long" | "integer" | "short" | "byte" | "unsigned_long" => EsKind::Integer,
        "double" => EsKind::Double,
        "float" | "half_float" | "scaled_float" => EsKind::LossyFloat,
        "boolean" => EsKind::Boolean,
        "date" => EsKind::Date { nanos: false },
        "date_nanos" => EsKind::Date { nanos: true },
        "binary" => EsKind::Binary,
        _ => EsKind::Json,
    }
}

/// The fields of one index's `properties`, flattened (objects into dotted names), in name
/// order (as servers list them).
fn collect(properties: &serde_json::Map<String, Json>, prefix: &str, out: &mut Vec<EsField>) {
    for (name, props) in properties {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let es_type = props.get("type").and_then(Json::as_str);
        match (es_type, props.get("properties").and_then(Json::as_object)) {
            // An object (no type, or "object") with sub-fields: flattened.
            (None | Some("object"), Some(sub)) => collect(sub, &path, out),
            (Some(t), _) => out.push(EsField {
                name: path.clone(),
                es_type: t.to_string(),
                kind: kind_of(t, props, &path),
            }),
            // An object without sub-fields yet, or a disabled object: its JSON.
            (None, None) => out.push(EsField {
                name: path,
                es_type: "object".into(),
                kind: EsKind::Json,
            }),
        }
    }
}

/// The fields of one index from its mapping (`{"mappings": {"properties": …}}`, the value of
/// one index in a `GET /idx/_mapping` response).
pub fn index_fields(index: &str, mapping: &Json) -> Result<Vec<EsField>> {
    let mappings = mapping.get("mappings").ok_or_else(|| {
        Error::query(format!(
            "the mapping of index '{index}' has no \"mappings\" object"
        ))
    })?;
    let mut out = Vec::new();
    if let Some(props) = mappings.get("properties").and_then(Json::as_object) {
        collect(props, "", &mut out);
    }
    Ok(out)
}

/// The wider of two integer mapping types.
fn integer_rank(t: &str) -> Option<u8> {
    Some(match t {
        "byte" => 1,
        "short" => 2,
        "integer" => 3,
        "long" => 4,
        _ => return None,
    })
}

/// `a` and `b` (the same field in two indexes) as one field, or why not.
fn widen(a: &EsField, b: &EsField, (ia, ib): (&str, &str)) -> Result<EsField> {
    if a == b {
        return Ok(a.clone());
    }
    let same_name = |es_type: &str, kind: EsKind| EsField {
        name: a.name.clone(),
        es_type: es_type.to_string(),
        kind,
    };
    match (&a.kind, &b.kind) {
        (EsKind::Integer, EsKind::Integer) => {
            match (integer_rank(&a.es_type), integer_rank(&b.es_type)) {
                (Some(x), Some(y)) => Ok(if x >= y { a.clone() } else { b.clone() }),
                _ => Err(conflict(a, b, ia, ib)),
            }
        }
        (EsKind::Integer | EsKind::Double, EsKind::Integer | EsKind::Double)
            if a.es_type != "unsigned_long" && b.es_type != "unsigned_long" =>
        {
            // A long beyond 2^53 loses digits as a double; the comparison is not pushed.
            Ok(same_name("double", EsKind::LossyFloat))
        }
        (EsKind::Keyword | EsKind::Text { .. }, EsKind::Keyword | EsKind::Text { .. }) => {
            Ok(same_name("text", EsKind::Text { keyword: None }))
        }
        (EsKind::Date { nanos: x }, EsKind::Date { nanos: y }) => {
            let nanos = *x || *y;
            Ok(same_name(
                if nanos { "date_nanos" } else { "date" },
                EsKind::Date { nanos },
            ))
        }
        _ => Err(conflict(a, b, ia, ib)),
    }
}

fn conflict(a: &EsField, b: &EsField, ia: &str, ib: &str) -> Error {
    Error::query(format!(
        "field '{}' is {} in index '{ia}' but {} in index '{ib}'; query the indexes one at a \
         time, or reindex one of them with the other's mapping",
        a.name, a.es_type, b.es_type
    ))
}

/// The table's columns for a `GET /<target>/_mapping` response (one or more indexes):
/// `_id`, `_score`, then the fields of all indexes merged by the widening rule, in name order
/// of first appearance (indexes by name).
pub fn table_fields(response: &Json) -> Result<Vec<EsField>> {
    let indexes = response
        .as_object()
        .ok_or_else(|| Error::query("a _mapping response that is not a JSON object"))?;
    let mut merged: Vec<(EsField, String)> = Vec::new();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for (index, mapping) in indexes {
        for f in index_fields(index, mapping)? {
            if f.name == ID_COLUMN || f.name == SCORE_COLUMN {
                return Err(Error::query(format!(
                    "index '{index}' maps a field named '{}', which is the name of a metadata \
                     column",
                    f.name
                )));
            }
            match at.get(&f.name) {
                Some(&i) => {
                    let (prev, first) = &merged[i];
                    let w = widen(prev, &f, (first, index))?;
                    merged[i].0 = w;
                }
                None => {
                    at.insert(f.name.clone(), merged.len());
                    merged.push((f, index.clone()));
                }
            }
        }
    }
    let mut out = vec![
        EsField {
            name: ID_COLUMN.into(),
            es_type: "_id".into(),
            kind: EsKind::Keyword,
        },
        EsField {
            name: SCORE_COLUMN.into(),
            es_type: "_score".into(),
            kind: EsKind::LossyFloat,
        },
    ];
    out.extend(merged.into_iter().map(|(f, _)| f));
    Ok(out)
}

/// The Arrow schema of `fields` (`_id` is the one non-nullable column).
pub fn arrow_schema(fields: &[EsField]) -> Arc<Schema> {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|f| {
                let field = f.arrow_field();
                if f.name == ID_COLUMN {
                    field.with_nullable(false)
                } else {
                    field
                }
            })
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(props: Json) -> Json {
        json!({ "mappings": { "properties": props } })
    }

    #[test]
    fn every_type_maps_and_objects_flatten() {
        let resp = json!({ "logs": mapping(json!({
            "host": { "type": "keyword" },
            "msg": { "type": "text", "fields": { "raw": { "type": "keyword" } } },
            "lower": { "type": "text", "fields": { "k": { "type": "keyword", "normalizer": "lc" } } },
            "n": { "type": "long" }, "i": { "type": "integer" }, "s": { "type": "short" },
            "b": { "type": "byte" }, "u": { "type": "unsigned_long" },
            "d": { "type": "double" }, "f": { "type": "float" },
            "ok": { "type": "boolean" }, "at": { "type": "date" }, "ns": { "type": "date_nanos" },
            "ip": { "type": "ip" }, "blob": { "type": "binary" },
            "user": { "properties": { "name": { "type": "keyword" },
                                      "geo": { "properties": { "lat": { "type": "double" } } } } },
            "tags": { "type": "nested", "properties": { "k": { "type": "keyword" } } },
            "empty": { "type": "object" },
            "loc": { "type": "geo_point" }
        })) });
        let fields = table_fields(&resp).unwrap();
        let schema = arrow_schema(&fields);
        let got: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect();
        assert_eq!(
            got,
            [
                "_id:Utf8",
                "_score:Float64",
                "at:Timestamp(ms, \"UTC\")",
                "b:Int8",
                "blob:Binary",
                "d:Float64",
                "empty:Utf8",
                "f:Float64",
                "host:Utf8",
                "i:Int32",
                "ip:Utf8",
                "loc:Utf8",
                "lower:Utf8",
                "msg:Utf8",
                "n:Int64",
                "ns:Timestamp(ns, \"UTC\")",
                "ok:Boolean",
                "s:Int16",
                "tags:Utf8",
                "u:Decimal128(20, 0)",
                "user.geo.lat:Float64",
                "user.name:Utf8",
            ]
        );
        assert!(!schema.field(0).is_nullable());
        let kind = |n: &str| fields.iter().find(|f| f.name == n).unwrap().kind.clone();
        assert_eq!(
            kind("msg"),
            EsKind::Text {
                keyword: Some("msg.raw".into())
            }
        );
        // A normalized keyword sub-field is not an exact stand-in for `=`.
        assert_eq!(kind("lower"), EsKind::Text { keyword: None });
        assert_eq!(kind("f"), EsKind::LossyFloat);
        assert_eq!(kind("tags"), EsKind::Json);
        assert_eq!(
            schema
                .field_with_name("tags")
                .unwrap()
                .metadata()
                .get(EXTENSION_NAME_KEY),
            Some(&JSON_EXTENSION.to_string())
        );
    }

    #[test]
    fn indexes_behind_one_alias_widen_or_conflict() {
        let resp = json!({
            "a": mapping(json!({ "n": { "type": "integer" }, "x": { "type": "long" },
                                 "k": { "type": "keyword" }, "t": { "type": "date" } })),
            "b": mapping(json!({ "n": { "type": "long" }, "x": { "type": "double" },
                                 "k": { "type": "text" }, "t": { "type": "date_nanos" },
                                 "only_b": { "type": "boolean" } }))
        });
        let fields = table_fields(&resp).unwrap();
        let ty = |n: &str| fields.iter().find(|f| f.name == n).unwrap().arrow_type();
        assert_eq!(ty("n"), DataType::Int64);
        assert_eq!(ty("x"), DataType::Float64);
        assert_eq!(ty("k"), DataType::Utf8);
        assert_eq!(
            ty("t"),
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
        );
        assert_eq!(ty("only_b"), DataType::Boolean);
        assert_eq!(
            fields.iter().find(|f| f.name == "k").unwrap().kind,
            EsKind::Text { keyword: None }
        );

        let bad = json!({
            "a": mapping(json!({ "v": { "type": "keyword" } })),
            "b": mapping(json!({ "v": { "type": "long" } }))
        });
        let e = table_fields(&bad).unwrap_err().to_string();
        assert!(
            e.contains("'v'") && e.contains("keyword") && e.contains("long") && e.contains("'b'"),
            "{e}"
        );
        let reserved = json!({ "a": mapping(json!({ "_score": { "type": "long" } })) });
        assert!(table_fields(&reserved).is_err());
        assert!(table_fields(&json!({ "a": {} })).is_err());
    }
}
