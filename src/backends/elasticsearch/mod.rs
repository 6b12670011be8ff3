//! The Elasticsearch/OpenSearch backend (issue 13), being built: so far an index's mapping as an
//! Arrow schema ([`mapping`]). Next: the client (flavour and version from `GET /`, headers both
//! servers accept), scans (point-in-time + `search_after`, sliced), the `bool`-query pushdown,
//! `_bulk` writes, and the record API. Research notes: `docs/notes/elasticsearch.md`.

pub mod mapping;
