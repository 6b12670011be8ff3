//! Filters as query DSL: a [`FilterExpr`] becomes a `bool` query in filter context that
//! matches exactly the documents where the SQL condition is TRUE — or a superset of them
//! (`Inexact`), or nothing is pushed (`Unsupported`).
//!
//! SQL's three-valued logic: `NOT c` keeps the rows where `c` is FALSE, not those where it is
//! not TRUE. So each condition is translated twice, [`when_true`] and [`when_false`]: `x = 1`
//! is FALSE only where `x` has a value other than 1 (`exists x AND NOT term x 1`); `x IS NULL
//! OR x = v` keeps both branches. A NULL operand matches nothing either way.
//!
//! Exactness per field comes from the mapping ([`Search`]): terms and ranges only on fields
//! indexed as `_source` holds them (a keyword without normalizer, numbers, booleans, dates;
//! a text field through its exact `keyword` multi-field), equality with strings longer than
//! `ignore_above` not at all. An index dataknobs did not create may hold several values in one
//! field: a term query then matches a document where *any* value matches, while SQL reads the
//! first value — so positive conditions are pushed `Inexact` (DataFusion checks again) and
//! negated ones not at all.

use std::collections::HashMap;

use serde_json::{Value as Json, json};

use super::mapping::{EsField, EsKind, Search};
use crate::database::FilterSupport;
use crate::query::{Filter, FilterExpr, Operator, SortOrder, SortSpec};
use crate::record::Value;

/// The fields of a table by column name.
pub type Fields = HashMap<String, EsField>;

/// A query that matches nothing / everything.
pub fn match_none() -> Json {
    json!({"match_none": {}})
}
pub fn match_all() -> Json {
    json!({"match_all": {}})
}

fn not(q: Json) -> Json {
    json!({"bool": {"must_not": [q]}})
}

fn and(mut qs: Vec<Json>) -> Json {
    if qs.len() == 1 {
        return qs.pop().unwrap_or_else(match_all);
    }
    json!({"bool": {"filter": qs}})
}

fn or(mut qs: Vec<Json>) -> Json {
    if qs.len() == 1 {
        return qs.pop().unwrap_or_else(match_none);
    }
    json!({"bool": {"should": qs, "minimum_should_match": 1}})
}

/// A value as the server takes it for a field of `kind`; None when the comparison would not
/// mean the same (a string against a number field, a fraction against an integer field).
fn term_value(field: &EsField, v: &Value) -> Option<Json> {
    match (&field.kind, v) {
        (EsKind::Keyword | EsKind::Text { .. }, Value::String(s)) => Some(json!(s)),
        (EsKind::Integer, Value::Int(i)) => Some(json!(i)),
        (EsKind::Integer, Value::Decimal(d))
            if d.scale <= 0 || d.unscaled % 10i128.pow(d.scale as u32) == 0 =>
        {
            let i = if d.scale <= 0 {
                d.unscaled
                    .checked_mul(10i128.checked_pow((-d.scale) as u32)?)?
            } else {
                d.unscaled / 10i128.pow(d.scale as u32)
            };
            i64::try_from(i).ok().map(|i| json!(i))
        }
        (EsKind::Double, Value::Float(f)) if f.is_finite() => Some(json!(f)),
        (EsKind::Double, Value::Int(i)) if i.unsigned_abs() <= 1 << 53 => Some(json!(i)),
        (EsKind::Boolean, Value::Bool(b)) => Some(json!(b)),
        (EsKind::Integer, Value::DateTime(t)) => {
            let per = field.search.epoch_nanos?;
            let n = t.timestamp_nanos_opt()?;
            (n % per == 0).then(|| json!(n / per))
        }
        (EsKind::Date { nanos: false }, Value::DateTime(t)) => Some(json!(t.timestamp_millis())),
        (EsKind::Date { nanos: false }, Value::Date(d)) => {
            let t = d.and_hms_opt(0, 0, 0)?.and_utc();
            Some(json!(t.timestamp_millis()))
        }
        _ => None,
    }
}

/// Is a date value a whole number of milliseconds (else its comparison is not pushed)?
fn whole_millis(v: &Value) -> bool {
    match v {
        Value::DateTime(t) => t.timestamp_subsec_nanos() % 1_000_000 == 0,
        _ => true,
    }
}

/// One comparison's query: what matches where the condition is TRUE (exact), or a superset
/// of it (`false`), or None.
fn positive(field: &EsField, f: &Filter) -> Option<(Json, bool)> {
    let s = &field.search;
    // Ranges and LIKE on a keyword field with `ignore_above`: values too long to be indexed
    // there are not found, so the query also takes every document whose value is long (the
    // analysed field has it, the keyword field does not): a superset, checked again.
    if s.max_len.is_some()
        && s.exists
        && matches!(
            f.op,
            Operator::Gt
                | Operator::Ge
                | Operator::Lt
                | Operator::Le
                | Operator::Like
                | Operator::Regex
        )
        && let Some(t) = &s.terms
    {
        let mut relaxed = field.clone();
        relaxed.search.max_len = None;
        relaxed.search.ranges = true;
        let q = positive_exact(&relaxed, f)?;
        let long = json!({"bool": {
            "filter": [{"exists": {"field": field.name}}],
            "must_not": [{"exists": {"field": t}}],
        }});
        return Some((or(vec![q, long]), false));
    }
    positive_exact(field, f).map(|q| (q, true))
}

fn positive_exact(field: &EsField, f: &Filter) -> Option<Json> {
    let s: &Search = &field.search;
    let is_date = matches!(field.kind, EsKind::Date { .. });
    let with_format = |mut q: Json| {
        if is_date && let Some(o) = q.as_object_mut() {
            o.insert("format".into(), json!("epoch_millis"));
        }
        q
    };
    let fits = |v: &Value| match (v, s.max_len) {
        (Value::String(t), Some(n)) => t.chars().count() <= n,
        _ => true,
    };
    match f.op {
        Operator::Exists => s.exists.then(|| json!({"exists": {"field": field.name}})),
        Operator::NotExists => s
            .exists
            .then(|| not(json!({"exists": {"field": field.name}}))),
        Operator::Eq => {
            let t = s.terms.as_ref()?;
            let v = f.value()?;
            if v.is_null() {
                return Some(match_none());
            }
            if !fits(v) || !(whole_millis(v) || s.epoch_nanos.is_some()) {
                return None;
            }
            let jv = term_value(field, v)?;
            Some(if is_date {
                json!({"range": {t: with_format(json!({"gte": jv, "lte": jv}))}})
            } else {
                json!({"term": {t: {"value": jv}}})
            })
        }
        Operator::In => {
            let t = s.terms.as_ref()?;
            let mut vals = Vec::new();
            for v in f.values() {
                if v.is_null() {
                    continue;
                }
                if !fits(v) || !(whole_millis(v) || s.epoch_nanos.is_some()) {
                    return None;
                }
                vals.push(term_value(field, v)?);
            }
            if vals.is_empty() {
                return Some(match_none());
            }
            Some(if is_date {
                or(vals
                    .into_iter()
                    .map(|jv| json!({"range": {t: with_format(json!({"gte": jv, "lte": jv}))}}))
                    .collect())
            } else {
                json!({"terms": {t: vals}})
            })
        }
        Operator::Gt | Operator::Ge | Operator::Lt | Operator::Le => {
            if !s.ranges {
                return None;
            }
            let t = s.terms.as_ref()?;
            let v = f.value()?;
            if v.is_null() {
                return Some(match_none());
            }
            if !(whole_millis(v) || s.epoch_nanos.is_some()) {
                return None;
            }
            let jv = term_value(field, v)?;
            let key = match f.op {
                Operator::Gt => "gt",
                Operator::Ge => "gte",
                Operator::Lt => "lt",
                _ => "lte",
            };
            Some(json!({"range": {t: with_format(json!({key: jv}))}}))
        }
        Operator::Like => {
            // Needs an exact, fully indexed string field (not `_id`).
            if !matches!(field.kind, EsKind::Keyword | EsKind::Text { .. }) || !s.ranges {
                return None;
            }
            let t = s.terms.as_ref()?;
            let Value::String(p) = f.value()? else {
                return Some(match_none());
            };
            Some(like_query(t, p)?)
        }
        Operator::Regex => {
            if !matches!(field.kind, EsKind::Keyword | EsKind::Text { .. }) || !s.ranges {
                return None;
            }
            let t = s.terms.as_ref()?;
            let Value::String(p) = f.value()? else {
                return Some(match_none());
            };
            let r = lucene_regex(p)?;
            Some(json!({"regexp": {t: {"value": r, "flags": "NONE"}}}))
        }
        // `Ne`, `NotIn`: negations (see `when_false`).
        _ => None,
    }
}

/// SQL LIKE (`%`, `_`, `\` escapes) as a term, prefix or wildcard query on an exact field.
fn like_query(field: &str, pattern: &str) -> Option<Json> {
    // Pieces: literal text and wildcards.
    let mut literal = String::new();
    let mut wildcard = String::new();
    let mut has_wild = false;
    let mut prefix_only = true;
    let mut after_wild = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let n = chars.next()?;
                if after_wild {
                    prefix_only = false;
                }
                literal.push(n);
                push_escaped(&mut wildcard, n);
            }
            '%' => {
                has_wild = true;
                after_wild = true;
                wildcard.push('*');
            }
            '_' => {
                has_wild = true;
                after_wild = true;
                prefix_only = false;
                wildcard.push('?');
            }
            c => {
                if after_wild {
                    prefix_only = false;
                }
                literal.push(c);
                push_escaped(&mut wildcard, c);
            }
        }
    }
    if !has_wild {
        return Some(json!({"term": {field: {"value": literal}}}));
    }
    if prefix_only && pattern.ends_with('%') && !pattern.ends_with("\\%") {
        // `abc%` (and `abc%%`): a prefix.
        if literal.is_empty() {
            return Some(json!({"exists": {"field": field}}));
        }
        return Some(json!({"prefix": {field: {"value": literal}}}));
    }
    Some(json!({"wildcard": {field: {"value": wildcard}}}))
}

/// A Rust regex (unanchored, as DataFusion's `~` matches) as a Lucene regexp (anchored to the
/// whole value), for the subset that means the same: literals, `.` (not a newline, as in
/// Rust), classes of literals and ranges, groups, `|`, greedy quantifiers, `^` first and `$`
/// last. Flags, `\d \w \s \b`, lazy quantifiers and look-around are not translated.
pub fn lucene_regex(p: &str) -> Option<String> {
    if p.len() > 500 {
        return None;
    }
    let mut chars: Vec<char> = p.chars().collect();
    let anchored_start = chars.first() == Some(&'^');
    if anchored_start {
        chars.remove(0);
    }
    // A final unescaped `$`.
    let anchored_end = chars.last() == Some(&'$') && {
        let backslashes = chars[..chars.len() - 1]
            .iter()
            .rev()
            .take_while(|c| **c == '\\')
            .count();
        backslashes % 2 == 0
    };
    if anchored_end {
        chars.pop();
    }
    let mut out = String::new();
    let mut top_level_or = false;
    let mut i = 0;
    let mut depth = 0i32;
    let mut prev_quantifiable = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let n = *chars.get(i + 1)?;
                // Only escaped punctuation: a literal character.
                if n.is_alphanumeric() || n.is_whitespace() {
                    return None;
                }
                push_lucene_literal(&mut out, n);
                i += 2;
                prev_quantifiable = true;
                continue;
            }
            '.' => {
                out.push_str("[^\n]");
                prev_quantifiable = true;
            }
            '(' => {
                // `()`: Lucene and Rust may disagree on empty groups.
                if matches!(chars.get(i + 1), Some(')')) {
                    return None;
                }
                if chars.get(i + 1) == Some(&'?') {
                    // Only the non-capturing group `(?:`.
                    if chars.get(i + 2) != Some(&':') {
                        return None;
                    }
                    i += 2;
                }
                depth += 1;
                out.push('(');
                prev_quantifiable = false;
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
                out.push(')');
                prev_quantifiable = true;
            }
            '|' => {
                // No empty alternative (`a|`, `|a`, `(|a)`, `a||b`).
                let before = if i == 0 { None } else { chars.get(i - 1) };
                if matches!(before, None | Some('(' | '|' | ':'))
                    || matches!(chars.get(i + 1), None | Some('|' | ')'))
                {
                    return None;
                }
                top_level_or |= depth == 0;
                out.push('|');
                prev_quantifiable = false;
            }
            '*' | '+' | '?' => {
                if !prev_quantifiable {
                    return None;
                }
                // Lazy or possessive forms.
                if matches!(chars.get(i + 1), Some('?' | '+')) {
                    return None;
                }
                out.push(c);
                prev_quantifiable = false;
            }
            '{' => {
                if !prev_quantifiable {
                    return None;
                }
                let close = chars[i..].iter().position(|c| *c == '}')? + i;
                let body: String = chars[i + 1..close].iter().collect();
                // Small counts only: `.{20}` after the leading `.*` would make the server's
                // automaton blow up (`too_complex_to_determinize`).
                let ok = !body.is_empty()
                    && body.chars().all(|c| c.is_ascii_digit() || c == ',')
                    && body.matches(',').count() <= 1
                    && !body.starts_with(',')
                    && body
                        .split(',')
                        .all(|n| n.is_empty() || n.parse::<u32>().is_ok_and(|n| n <= 8));
                if !ok || matches!(chars.get(close + 1), Some('?' | '+')) {
                    return None;
                }
                out.push('{');
                out.push_str(&body);
                out.push('}');
                i = close + 1;
                prev_quantifiable = false;
                continue;
            }
            '[' => {
                let (class, end) = lucene_class(&chars, i)?;
                out.push_str(&class);
                i = end;
                prev_quantifiable = true;
                continue;
            }
            '^' | '$' => return None,
            c => {
                push_lucene_literal(&mut out, c);
                prev_quantifiable = true;
            }
        }
        i += 1;
    }
    if depth != 0 {
        return None;
    }
    // `^a|b` is `(^a)|b`: an anchor applies to one alternative only.
    if top_level_or && (anchored_start || anchored_end) {
        return None;
    }
    let whole = anchored_start && anchored_end;
    if !out.is_empty() && !whole {
        out = format!("({out})");
    }
    Some(format!(
        "{}{out}{}",
        if anchored_start { "" } else { ".*" },
        if anchored_end { "" } else { ".*" }
    ))
}

/// A bracket class of literals and ranges starting at `chars[start]` (`[`), as a Lucene
/// class, and the position after its `]`. Nested classes, set operations (`&&`, `--`, `~~`),
/// `\d`-style escapes and a `-` that is neither first, last nor in a range are refused.
fn lucene_class(chars: &[char], start: usize) -> Option<(String, usize)> {
    // One class member: a literal or an escaped punctuation character.
    fn member(chars: &[char], j: usize, edge: bool) -> Option<(char, usize)> {
        match *chars.get(j)? {
            '\\' => {
                let n = *chars.get(j + 1)?;
                (!n.is_alphanumeric() && !n.is_whitespace()).then_some((n, j + 2))
            }
            '[' | '&' | '~' | '^' => None,
            '-' if !edge => None,
            c => Some((c, j + 1)),
        }
    }
    fn push(out: &mut String, c: char) {
        if !c.is_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    let mut j = start + 1;
    let mut out = String::from("[");
    if chars.get(j) == Some(&'^') {
        out.push('^');
        j += 1;
    }
    let mut first = true;
    loop {
        if chars.get(j) == Some(&']') && !first {
            return Some((out + "]", j + 1));
        }
        let last = chars.get(j + 1) == Some(&']');
        let (a, k) = member(chars, j, first || last)?;
        if chars.get(k) == Some(&'-') && chars.get(k + 1).is_some_and(|c| *c != ']') {
            let (b, m) = member(chars, k + 1, false)?;
            if a > b {
                return None;
            }
            push(&mut out, a);
            out.push('-');
            push(&mut out, b);
            j = m;
        } else {
            push(&mut out, a);
            j = k;
        }
        first = false;
    }
}

fn push_lucene_literal(out: &mut String, c: char) {
    if c.is_alphanumeric() || c == '_' || c == ' ' {
        out.push(c);
    } else if c == '\n' {
        out.push('\n');
    } else {
        out.push('\\');
        out.push(c);
    }
}

fn push_escaped(out: &mut String, c: char) {
    if matches!(c, '*' | '?' | '\\') {
        out.push('\\');
    }
    out.push(c);
}

/// Translation context: the fields and whether a field may hold several values.
pub struct Dsl<'a> {
    pub fields: &'a Fields,
    /// Every field holds at most one value (indexes dataknobs created).
    pub single_valued: bool,
    /// Set when a translation matched a superset of the rows.
    pub superset: std::cell::Cell<bool>,
}

impl<'a> Dsl<'a> {
    pub fn new(fields: &'a Fields, single_valued: bool) -> Self {
        Dsl {
            fields,
            single_valued,
            superset: std::cell::Cell::new(false),
        }
    }
}

impl Dsl<'_> {
    /// A full-text condition's query (TRUE where it matches, FALSE elsewhere: never NULL).
    fn fulltext(&self, c: &Filter) -> Option<Json> {
        let Some(Value::String(text)) = c.value() else {
            return Some(match_none());
        };
        let function = match c.op {
            Operator::Match => "match",
            Operator::MatchPhrase => "match_phrase",
            _ => "query_string",
        };
        if c.field == crate::fulltext::ALL_FIELDS {
            return (c.op == Operator::QueryString).then(|| fulltext_query(function, None, text));
        }
        let field = self.fields.get(&c.field)?;
        let on = field.search.fulltext.as_ref()?;
        Some(fulltext_query(function, Some(on), text))
    }

    /// The query matching the documents where `e` is TRUE, or None.
    pub fn when_true(&self, e: &FilterExpr) -> Option<Json> {
        match e {
            FilterExpr::Const(Some(true)) => Some(match_all()),
            FilterExpr::Const(_) => Some(match_none()),
            FilterExpr::And(v) => Some(and(v
                .iter()
                .map(|x| self.when_true(x))
                .collect::<Option<Vec<_>>>()?)),
            FilterExpr::Or(v) => Some(or(v
                .iter()
                .map(|x| self.when_true(x))
                .collect::<Option<Vec<_>>>()?)),
            FilterExpr::Not(x) => self.when_false(x),
            FilterExpr::Cond(c) if c.op.is_fulltext() => self.fulltext(c),
            FilterExpr::Cond(c) => {
                let field = self.fields.get(&c.field)?;
                match c.op {
                    Operator::Ne => self.when_false(&FilterExpr::Cond(Filter {
                        op: Operator::Eq,
                        ..c.clone()
                    })),
                    Operator::NotIn => self.when_false(&FilterExpr::Cond(Filter {
                        op: Operator::In,
                        ..c.clone()
                    })),
                    _ => {
                        let (q, exact) = positive(field, c)?;
                        if !exact {
                            self.superset.set(true);
                        }
                        Some(q)
                    }
                }
            }
        }
    }

    /// The query matching the documents where `e` is FALSE (not NULL), or None.
    pub fn when_false(&self, e: &FilterExpr) -> Option<Json> {
        match e {
            FilterExpr::Const(Some(false)) => Some(match_all()),
            FilterExpr::Const(_) => Some(match_none()),
            // NOT (a AND b) is FALSE where a or b is FALSE …
            FilterExpr::And(v) => Some(or(v
                .iter()
                .map(|x| self.when_false(x))
                .collect::<Option<Vec<_>>>()?)),
            FilterExpr::Or(v) => Some(and(v
                .iter()
                .map(|x| self.when_false(x))
                .collect::<Option<Vec<_>>>()?)),
            FilterExpr::Not(x) => self.when_true(x),
            FilterExpr::Cond(c) if c.op.is_fulltext() => self.fulltext(c).map(not),
            FilterExpr::Cond(c) => {
                let field = self.fields.get(&c.field)?;
                match c.op {
                    Operator::Exists => positive_exact(
                        field,
                        &Filter {
                            op: Operator::NotExists,
                            ..c.clone()
                        },
                    ),
                    Operator::NotExists => positive_exact(
                        field,
                        &Filter {
                            op: Operator::Exists,
                            ..c.clone()
                        },
                    ),
                    Operator::Ne => self.when_true(&FilterExpr::Cond(Filter {
                        op: Operator::Eq,
                        ..c.clone()
                    })),
                    Operator::NotIn => self.when_true(&FilterExpr::Cond(Filter {
                        op: Operator::In,
                        ..c.clone()
                    })),
                    // `x IN (1, NULL)` is never FALSE.
                    Operator::In if c.values().iter().any(Value::is_null) => Some(match_none()),
                    _ => {
                        if c.value().is_some_and(Value::is_null) {
                            return Some(match_none());
                        }
                        // A superset cannot be negated.
                        let (q, true) = positive(field, c)? else {
                            return None;
                        };
                        if !field.search.exists {
                            return None;
                        }
                        Some(and(vec![json!({"exists": {"field": field.name}}), not(q)]))
                    }
                }
            }
        }
    }

    /// How exactly `e` can be pushed.
    pub fn support(&self, e: &FilterExpr) -> FilterSupport {
        self.superset.set(false);
        if self.when_true(e).is_none() {
            return FilterSupport::Unsupported;
        }
        // Full-text conditions are the server's verdict: exact, or (mixed with conditions
        // that would need checking again) not pushed — DataFusion cannot evaluate them.
        let mut fulltext = 0;
        let mut other = 0;
        e.visit(&mut |c| {
            if c.op.is_fulltext() {
                fulltext += 1
            } else {
                other += 1
            }
        });
        if fulltext > 0 {
            let exact = !self.superset.get() && (self.single_valued || other == 0);
            return if exact {
                FilterSupport::Exact
            } else {
                FilterSupport::Unsupported
            };
        }
        if self.single_valued {
            return if self.superset.get() {
                FilterSupport::Inexact
            } else {
                FilterSupport::Exact
            };
        }
        // Several values per field: "any value matches" is a superset of "the first value
        // matches" for positive conditions; negations are not pushed.
        if positive_only(e) {
            FilterSupport::Inexact
        } else {
            FilterSupport::Unsupported
        }
    }

    /// The query for a list of (pushed) filters, all of which must hold; None when one of them
    /// cannot be translated.
    pub fn query(&self, filters: &[FilterExpr]) -> Option<Json> {
        if filters.is_empty() {
            return Some(match_all());
        }
        // Full-text conditions of the top-level AND score the hits (query context); the rest
        // only filter.
        let mut must = Vec::new();
        let mut filter = Vec::new();
        for f in filters {
            let parts: Vec<&FilterExpr> = match f {
                FilterExpr::And(v) => v.iter().collect(),
                other => vec![other],
            };
            for p in parts {
                let q = self.when_true(p)?;
                if matches!(p, FilterExpr::Cond(c) if c.op.is_fulltext()) {
                    must.push(q);
                } else {
                    filter.push(q);
                }
            }
        }
        let mut b = serde_json::Map::new();
        if !must.is_empty() {
            b.insert("must".into(), Json::Array(must));
        }
        if !filter.is_empty() {
            b.insert("filter".into(), Json::Array(filter));
        }
        Some(json!({"bool": b}))
    }

    /// The `sort` for `ORDER BY`, with NULLs placed as DataFusion places them; None when a key
    /// is not sortable exactly.
    pub fn sort(&self, sort: &[SortSpec]) -> Option<Json> {
        if !self.single_valued && !sort.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for s in sort {
            let f = self.fields.get(&s.field)?;
            let on = f.search.sort.as_ref()?;
            out.push(json!({on: {
                "order": if s.order == SortOrder::Asc { "asc" } else { "desc" },
                "missing": if s.nulls_first { "_first" } else { "_last" },
            }}));
        }
        Some(Json::Array(out))
    }
}

/// Does any condition of the filters search full text (then hits have a relevance score)?
pub fn has_fulltext(filters: &[FilterExpr]) -> bool {
    let mut found = false;
    for f in filters {
        f.visit(&mut |c| found |= c.op.is_fulltext());
    }
    found
}

/// Does `e` only test for values being there (no negation, no NOT EXISTS)?
fn positive_only(e: &FilterExpr) -> bool {
    match e {
        FilterExpr::Cond(c) => {
            !matches!(c.op, Operator::Ne | Operator::NotIn | Operator::NotExists)
        }
        FilterExpr::And(v) | FilterExpr::Or(v) => v.iter().all(positive_only),
        FilterExpr::Not(_) => false,
        FilterExpr::Const(_) => true,
    }
}

/// A full-text predicate (`match`, `match_phrase`, `query_string`) as its query.
pub fn fulltext_query(function: &str, field: Option<&str>, text: &str) -> Json {
    match (function, field) {
        ("match_phrase", Some(f)) => json!({"match_phrase": {f: {"query": text}}}),
        ("query_string", Some(f)) => {
            json!({"query_string": {"query": text, "default_field": f}})
        }
        ("query_string", None) => json!({"query_string": {"query": text}}),
        (_, Some(f)) => json!({"match": {f: {"query": text}}}),
        (_, None) => json!({"query_string": {"query": text}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::elasticsearch::mapping::index_fields;
    use crate::query::Operand;

    fn fields() -> Fields {
        let m = json!({"mappings": {"properties": {
            "k": {"type": "keyword"},
            "n": {"type": "long"},
            "t": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 5}}},
            "lc": {"type": "keyword", "normalizer": "lowercase"},
            "f": {"type": "float"},
        }}});
        index_fields("i", &m)
            .unwrap()
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect()
    }

    fn cond(field: &str, op: Operator, v: impl Into<Operand>) -> FilterExpr {
        FilterExpr::Cond(Filter::new(field, op, v).unwrap())
    }

    #[test]
    fn negation_keeps_sql_null_semantics() {
        let f = fields();
        let d = Dsl::new(&f, true);
        let q = d.when_true(&cond("n", Operator::Ne, 3i64)).unwrap();
        assert_eq!(
            q,
            json!({"bool": {"filter": [{"exists": {"field": "n"}}, {"bool": {"must_not": [{"term": {"n": {"value": 3}}}]}}]}})
        );
        // x IS NULL OR x = 1 keeps both branches.
        let e = FilterExpr::Or(vec![
            cond("n", Operator::NotExists, Operand::None),
            cond("n", Operator::Eq, 1i64),
        ]);
        let q = d.when_true(&e).unwrap().to_string();
        assert!(
            q.contains("should") && q.contains("must_not") && q.contains("\"term\""),
            "{q}"
        );
        assert_eq!(d.support(&e), FilterSupport::Exact);
        // NOT IN with a NULL is never true.
        let e = cond("n", Operator::NotIn, vec![Value::Int(1), Value::Null]);
        assert_eq!(d.when_true(&e).unwrap(), match_none());
    }

    #[test]
    fn exactness_follows_the_mapping() {
        let f = fields();
        let d = Dsl::new(&f, true);
        // text: equality through its keyword field, only for values within ignore_above.
        assert_eq!(
            d.when_true(&cond("t", Operator::Eq, "abc")).unwrap(),
            json!({"term": {"t.keyword": {"value": "abc"}}})
        );
        assert!(d.when_true(&cond("t", Operator::Eq, "abcdef")).is_none());
        // Ranges on it also take the documents whose value is too long for the keyword field.
        assert_eq!(
            d.support(&cond("t", Operator::Gt, "a")),
            FilterSupport::Inexact
        );
        assert_eq!(
            d.support(&cond("t", Operator::Le, "a")),
            FilterSupport::Inexact
        );
        assert!(
            d.when_true(&FilterExpr::Not(Box::new(cond("t", Operator::Gt, "a"))))
                .is_none()
        );
        // normalizer, float: not exact.
        assert!(d.when_true(&cond("lc", Operator::Eq, "a")).is_none());
        assert!(d.when_true(&cond("f", Operator::Gt, 1.5)).is_none());
        assert!(
            d.when_true(&cond("f", Operator::Exists, Operand::None))
                .is_some()
        );
        // integers do not meet fractions.
        assert!(d.when_true(&cond("n", Operator::Eq, 1.5)).is_none());
        // several values per field: positive inexact, negation unsupported.
        let m = Dsl::new(&f, false);
        assert_eq!(
            m.support(&cond("k", Operator::Eq, "a")),
            FilterSupport::Inexact
        );
        assert_eq!(
            m.support(&cond("k", Operator::Ne, "a")),
            FilterSupport::Unsupported
        );
    }

    #[test]
    fn regexes_become_anchored_lucene_regexps_or_nothing() {
        assert_eq!(lucene_regex("^a").unwrap(), "(a).*");
        assert_eq!(lucene_regex("b$").unwrap(), ".*(b)");
        assert_eq!(lucene_regex("^$").unwrap(), "");
        assert_eq!(lucene_regex("").unwrap(), ".*.*");
        assert_eq!(lucene_regex("[0-9]").unwrap(), ".*([0-9]).*");
        assert_eq!(lucene_regex("a.b").unwrap(), ".*(a[^\n]b).*");
        assert_eq!(lucene_regex("a|b").unwrap(), ".*(a|b).*");
        assert_eq!(lucene_regex("^(ab|c)+x{2,3}$").unwrap(), "(ab|c)+x{2,3}");
        assert_eq!(lucene_regex("a\\.b@").unwrap(), ".*(a\\.b\\@).*");
        assert_eq!(lucene_regex("[-a#]").unwrap(), ".*([\\-a\\#]).*");
        assert_eq!(lucene_regex("[a-c-]").unwrap(), ".*([a-c\\-]).*");
        assert_eq!(lucene_regex("[]a]").unwrap(), ".*([\\]a]).*");
        for refused in [
            "(?i)abc",
            "^\\s",
            "\\d+",
            "a*?",
            "a^b",
            "(?=a)",
            "[[:alpha:]]",
            "a{,2}",
            "^a|b",
            "a|b$",
            "a|",
            "(|a)",
            "a()",
            "[a-c-e]",
            "[a&&b]",
            "x.{20}",
            "[z-a]",
        ] {
            assert!(lucene_regex(refused).is_none(), "{refused}");
        }
    }

    #[test]
    fn like_becomes_term_prefix_or_wildcard() {
        assert_eq!(
            like_query("k", "abc").unwrap(),
            json!({"term": {"k": {"value": "abc"}}})
        );
        assert_eq!(
            like_query("k", "ab%").unwrap(),
            json!({"prefix": {"k": {"value": "ab"}}})
        );
        assert_eq!(
            like_query("k", "a_c%").unwrap(),
            json!({"wildcard": {"k": {"value": "a?c*"}}})
        );
        assert_eq!(
            like_query("k", "a*\\%%").unwrap(),
            json!({"prefix": {"k": {"value": "a*%"}}})
        );
        assert_eq!(
            like_query("k", "%a*b").unwrap(),
            json!({"wildcard": {"k": {"value": "*a\\*b"}}})
        );
        assert_eq!(
            like_query("k", "%").unwrap(),
            json!({"exists": {"field": "k"}})
        );
    }
}
