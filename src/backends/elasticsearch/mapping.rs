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
//! meeting text becomes text without an exact keyword field; any other difference makes the
//! field text (what each document holds; numbers and booleans as their JSON text), never
//! pushed. So one odd index behind an alias never breaks the whole table.

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
    /// How the server can search and sort the field (nothing for a field it cannot).
    pub search: Search,
}

/// What the server's index of one field can answer exactly (see `dsl`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Search {
    /// The field to send term / terms / range / prefix / wildcard queries to (the field itself,
    /// or a text field's exact `keyword` multi-field); None when they would not match exactly
    /// what `_source` holds (not indexed, a normalizer, a `null_value`, a lossy type).
    pub terms: Option<String>,
    /// Values longer than this many characters are not indexed in `terms` (`ignore_above`):
    /// only equality with shorter values is exact.
    pub max_len: Option<usize>,
    /// Are ranges by the server's order the same as DataFusion's (bytes for strings, numbers)?
    pub ranges: bool,
    /// Does an `exists` query on the field match exactly the documents with a non-NULL value?
    pub exists: bool,
    /// The field with doc values to sort on (the `terms` field), when sorting is exact.
    pub sort: Option<String>,
    /// The analyzed field full-text queries (`match`, `match_phrase`) go to.
    pub fulltext: Option<String>,
    /// A date field's custom `format` (None for the default, which dataknobs parses itself).
    pub date_format: Option<String>,
    /// A `long` field holding a micro- or nanosecond timestamp column (tables dataknobs
    /// created): nanoseconds per stored unit.
    pub epoch_nanos: Option<i64>,
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

/// What the index of a field (mapping `props`) answers exactly.
fn search_of(es_type: &str, kind: &EsKind, props: &Json, path: &str) -> Search {
    let indexed = |p: &Json| p.get("index").and_then(Json::as_bool) != Some(false);
    let doc_values = |p: &Json| p.get("doc_values").and_then(Json::as_bool) != Some(false);
    let plain = |p: &Json| p.get("null_value").is_none() && p.get("normalizer").is_none();
    let max_len = |p: &Json| {
        p.get("ignore_above")
            .and_then(Json::as_u64)
            .map(|n| n as usize)
    };
    // The first analyzed text multi-field, for full-text queries on a keyword.
    let text_sub = props
        .get("fields")
        .and_then(Json::as_object)
        .and_then(|fields| {
            fields
                .iter()
                .find(|(_, sub)| sub.get("type").and_then(Json::as_str) == Some("text"))
        })
        .map(|(name, _)| format!("{path}.{name}"));
    let exact = |p: &Json| {
        let ok = indexed(p) && plain(p);
        Search {
            terms: ok.then(|| path.to_string()),
            max_len: max_len(p),
            ranges: ok && max_len(p).is_none(),
            exists: indexed(p) && p.get("null_value").is_none() && max_len(p).is_none(),
            sort: (ok && doc_values(p) && max_len(p).is_none()).then(|| path.to_string()),
            fulltext: text_sub.clone(),
            date_format: None,
            epoch_nanos: None,
        }
    };
    match kind {
        EsKind::Keyword if matches!(es_type, "keyword" | "constant_keyword") => exact(props),
        EsKind::Text { keyword } => {
            let sub = keyword.as_ref().and_then(|k| {
                let leaf = k.rsplit('.').next().unwrap_or(k);
                props
                    .get("fields")
                    .and_then(|f| f.get(leaf))
                    .map(|p| (k, p))
            });
            let mut s = match sub {
                Some((k, p)) if indexed(p) && plain(p) => Search {
                    terms: Some(k.clone()),
                    max_len: max_len(p),
                    ranges: max_len(p).is_none(),
                    exists: false,
                    sort: (doc_values(p) && max_len(p).is_none()).then(|| k.clone()),
                    fulltext: None,
                    date_format: None,
                    epoch_nanos: None,
                },
                _ => Search::default(),
            };
            // A text field's `exists` matches documents with a value (even an empty one).
            s.exists = indexed(props) && props.get("null_value").is_none();
            s.fulltext = indexed(props).then(|| path.to_string());
            s
        }
        EsKind::Integer | EsKind::Double | EsKind::Boolean => exact(props),
        EsKind::Date { .. } => {
            let mut s = exact(props);
            s.date_format = props
                .get("format")
                .and_then(Json::as_str)
                .filter(|f| *f != "strict_date_optional_time||epoch_millis")
                .map(str::to_string);
            s
        }
        // Indexed less precisely than `_source` holds (float), by another order (ip,
        // version), or not indexed for terms at all: only `exists` is exact.
        EsKind::LossyFloat | EsKind::Keyword => Search {
            exists: indexed(props) && props.get("null_value").is_none(),
            ..Search::default()
        },
        EsKind::Binary | EsKind::Json => Search::default(),
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
            (Some(t), _) => {
                let kind = kind_of(t, props, &path);
                let search = search_of(t, &kind, props, &path);
                out.push(EsField {
                    name: path.clone(),
                    es_type: t.to_string(),
                    kind,
                    search,
                })
            }
            // An object without sub-fields yet, or a disabled object: its JSON.
            (None, None) => out.push(EsField {
                name: path,
                es_type: "object".into(),
                kind: EsKind::Json,
                search: Search::default(),
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
fn widen(a: &EsField, b: &EsField) -> Result<EsField> {
    if a == b {
        return Ok(a.clone());
    }
    let same_name = |es_type: &str, kind: EsKind| EsField {
        name: a.name.clone(),
        es_type: es_type.to_string(),
        kind,
        search: Search::default(),
    };
    // Indexes that search a field differently: nothing about it is pushed.
    let agreed = |mut f: EsField| {
        if a.search != b.search {
            f.search = Search::default();
        }
        f
    };
    widen_kinds(a, b, same_name).map(agreed)
}

fn widen_kinds(
    a: &EsField,
    b: &EsField,
    same_name: impl Fn(&str, EsKind) -> EsField,
) -> Result<EsField> {
    match (&a.kind, &b.kind) {
        (EsKind::Integer, EsKind::Integer) => {
            match (integer_rank(&a.es_type), integer_rank(&b.es_type)) {
                (Some(x), Some(y)) => Ok(if x >= y { a.clone() } else { b.clone() }),
                _ => Ok(same_name("keyword", EsKind::Keyword)),
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
        // Any other difference: the field reads as text (what each document holds, numbers
        // and booleans as their JSON text) and nothing about it is pushed.
        _ => Ok(same_name("keyword", EsKind::Keyword)),
    }
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
                    let w = widen(&merged[i].0, &f)?;
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
            search: Search {
                terms: Some(ID_COLUMN.into()),
                exists: true,
                ..Search::default()
            },
        },
        EsField {
            name: SCORE_COLUMN.into(),
            es_type: "_score".into(),
            kind: EsKind::LossyFloat,
            search: Search::default(),
        },
    ];
    out.extend(merged.into_iter().map(|(f, _)| f));
    Ok(out)
}

/// The Arrow schema of `fields`. Every column is nullable, `_id` too: a document always has
/// one, but an INSERT may leave it out to let the server choose.
pub fn arrow_schema(fields: &[EsField]) -> Arc<Schema> {
    Arc::new(Schema::new(
        fields.iter().map(|f| f.arrow_field()).collect::<Vec<_>>(),
    ))
}

/// The longest string (in characters) the keyword sub-field of a string column indexes.
pub const MAX_KEYWORD_CHARS: usize = 8191;

/// The key under `_meta` where dataknobs describes a table it created.
pub const META_KEY: &str = "dataknobs";

/// A table dataknobs created: its columns (names, Arrow types, nullability, in order) and key.
#[derive(Debug, Clone)]
pub struct Managed {
    pub columns: Vec<Field>,
    pub key: Option<String>,
    /// String columns that were given a value longer than [`MAX_KEYWORD_CHARS`] (not in the
    /// keyword sub-field): ranges, LIKE and sorts on them are not exact. Writers through
    /// dataknobs add a column here before they write such a value.
    pub long_text: Vec<String>,
}

/// The `_meta` object of a managed table.
pub fn meta_json(columns: &[Field], key: Option<&str>, long_text: &[String]) -> Json {
    serde_json::json!({META_KEY: {"columns": meta_columns(columns), "key": key, "long_text": long_text}})
}

/// The mapping property for a column of Arrow type `f` (strings: keyword with a `text`
/// sub-field for full-text search).
pub fn es_property(f: &Field) -> Result<Json> {
    let json_ext = f.metadata().get(EXTENSION_NAME_KEY).map(String::as_str) == Some(JSON_EXTENSION);
    Ok(match f.data_type() {
        _ if json_ext => serde_json::json!({"type": "object", "enabled": false}),
        // Text for full-text search, with an exact keyword sub-field for `=`, ranges, LIKE and
        // sorting. Lucene cannot index a term over 32,766 bytes: longer values (over 8,191
        // characters) are kept in `_source` and the text field, not in the keyword field.
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => serde_json::json!({
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": MAX_KEYWORD_CHARS}}
        }),
        DataType::Int8 => serde_json::json!({"type": "byte"}),
        DataType::Int16 | DataType::UInt8 => serde_json::json!({"type": "short"}),
        DataType::Int32 | DataType::UInt16 => serde_json::json!({"type": "integer"}),
        DataType::Int64 | DataType::UInt32 => serde_json::json!({"type": "long"}),
        DataType::UInt64 => serde_json::json!({"type": "unsigned_long"}),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            serde_json::json!({"type": "double"})
        }
        // Kept exactly in `_source` as text; compared by the server as a double, so not pushed.
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => {
            serde_json::json!({"type": "double"})
        }
        DataType::Boolean => serde_json::json!({"type": "boolean"}),
        DataType::Timestamp(TimeUnit::Second | TimeUnit::Millisecond, _)
        | DataType::Date32
        | DataType::Date64 => {
            serde_json::json!({"type": "date"})
        }
        // `date` keeps milliseconds, `date_nanos` only dates from 1970: the integer in the
        // column's unit (see `Search::epoch_nanos`).
        DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, _) => {
            serde_json::json!({"type": "long"})
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            serde_json::json!({"type": "binary"})
        }
        other => {
            return Err(Error::unsupported(format!(
                "column '{}' has type {other}, which an Elasticsearch/OpenSearch index cannot hold; \
                 cast it to text, a number, a boolean or a timestamp",
                f.name()
            )));
        }
    })
}

fn meta_columns(fields: &[Field]) -> Json {
    Json::Array(
        fields
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name(),
                    "type": f.data_type().to_string(),
                    "nullable": f.is_nullable(),
                    "metadata": f.metadata(),
                })
            })
            .collect(),
    )
}

/// The mapping (`properties` and `_meta`) for `fields` with `key`.
pub fn mapping_for(fields: &[Field], key: Option<&str>) -> Result<Json> {
    let mut props = serde_json::Map::new();
    for f in fields {
        // Declared metadata columns are read from each hit, not stored: `_id` (text) the
        // document id, `_score` (double) the relevance of a full-text search.
        match (f.name().as_str(), f.data_type()) {
            (ID_COLUMN, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
            | (SCORE_COLUMN, DataType::Float64) => continue,
            (ID_COLUMN | SCORE_COLUMN, t) => {
                return Err(Error::query(format!(
                    "column '{}' is the document's {}: declare it as {}, not {t}",
                    f.name(),
                    if f.name() == ID_COLUMN {
                        "id"
                    } else {
                        "relevance score"
                    },
                    if f.name() == ID_COLUMN {
                        "TEXT"
                    } else {
                        "DOUBLE"
                    },
                )));
            }
            _ => {}
        }
        // Dotted names are object paths to the server; keep columns flat.
        if f.name().contains('.') || f.name().is_empty() {
            return Err(Error::query(format!(
                "column name '{}' cannot be an index field name (no dots, not empty)",
                f.name()
            )));
        }
        props.insert(f.name().clone(), es_property(f)?);
    }
    Ok(serde_json::json!({
        "dynamic": "strict",
        "_meta": meta_json(fields, key, &[]),
        "properties": props,
    }))
}

/// The body of `PUT /<index>` for a new table.
pub fn create_body(spec: &crate::database::CollectionSpec) -> Result<Json> {
    let fields: Vec<Field> = spec
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    Ok(serde_json::json!({"mappings": mapping_for(&fields, spec.key.as_deref())?}))
}

/// The table dataknobs created, when `response` (a `_mapping` reply) is one index with
/// dataknobs' `_meta`.
pub fn managed(response: &Json) -> Option<Managed> {
    let obj = response.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (_, m) = obj.iter().next()?;
    let meta = m.get("mappings")?.get("_meta")?.get(META_KEY)?;
    let mut columns = Vec::new();
    for c in meta.get("columns")?.as_array()? {
        let name = c.get("name")?.as_str()?;
        let ty: DataType = c.get("type")?.as_str()?.parse().ok()?;
        let mut f = Field::new(
            name,
            ty,
            c.get("nullable").and_then(Json::as_bool).unwrap_or(true),
        );
        if let Some(m) = c.get("metadata").and_then(Json::as_object) {
            f = f.with_metadata(
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect(),
            );
        }
        columns.push(f);
    }
    Some(Managed {
        columns,
        key: meta.get("key").and_then(Json::as_str).map(str::to_string),
        long_text: meta
            .get("long_text")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The `PUT /<index>/_mapping` body adding `new` columns to a managed table.
pub fn grow_body(existing: &Managed, new: &[Field]) -> Result<Json> {
    let mut all: Vec<Field> = existing.columns.clone();
    all.extend(new.iter().cloned());
    mapping_for(&all, existing.key.as_deref())?;
    let mut props = serde_json::Map::new();
    for f in new {
        props.insert(f.name().clone(), es_property(f)?);
    }
    Ok(serde_json::json!({
        "_meta": meta_json(&all, existing.key.as_deref(), &existing.long_text),
        "properties": props,
    }))
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
        // `_id` is nullable in the schema so that an INSERT may leave it out.
        assert!(schema.field(0).is_nullable());
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

        // Any other conflict: text, not pushed.
        let mixed = json!({
            "a": mapping(json!({ "v": { "type": "keyword" } })),
            "b": mapping(json!({ "v": { "type": "long" } }))
        });
        let fields = table_fields(&mixed).unwrap();
        let v = fields.iter().find(|f| f.name == "v").unwrap();
        assert_eq!(v.arrow_type(), DataType::Utf8);
        assert_eq!(v.search, Search::default());
        let reserved = json!({ "a": mapping(json!({ "_score": { "type": "long" } })) });
        assert!(table_fields(&reserved).is_err());
        assert!(table_fields(&json!({ "a": {} })).is_err());
    }
}
