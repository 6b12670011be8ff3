//! The Elasticsearch/OpenSearch backend: every index and alias as a table.
//!
//! - [`client`]: the HTTP client (the `elasticsearch` crate's transport), the server's flavour
//!   and version from `GET /`, error replies as clear errors.
//! - [`mapping`]: an index's mapping as an Arrow schema, and a mapping for a new table.
//! - [`dsl`]: filters as `bool` queries, exact or `Inexact` or not pushed.
//! - [`decode`]: hits into Arrow. [`scan`]: PIT + `search_after` slices, scroll, one-request
//!   sorted scans. [`write`]: `_bulk` in chunks with several requests in flight.
//! - `table`: one index as a [`Database`] (SQL side and the record API).
//!
//! Research and measurements: docs/notes/elasticsearch.md.

pub mod client;
pub mod decode;
pub mod dsl;
pub mod mapping;
pub mod scan;
mod table;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use elasticsearch::http::Method;
use parking_lot::RwLock;
use secrecy::SecretString;
use serde_json::Value as Json;
use url::Url;

pub use table::EsTable;

use crate::config::{BackendKind, OptionKind, OptionSpec, UrlOptions};
use crate::database::{Backend, CollectionSpec, Database, drop_missing};
use crate::error::{Error, ErrorKind, Result};
use client::{ClientSettings, EsClient, path_part};
use scan::Paging;

/// The backend's name in errors, EXPLAIN and `backend_info`.
pub const BACKEND: &str = "elasticsearch";

/// URL options.
pub const ES_OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "refresh",
        OptionKind::Bool,
        "make writes visible to searches when a statement or record call ends (one _refresh per INSERT; refresh=true on record calls)",
    )
    .default("true"),
    OptionSpec::new(
        "bulk_docs",
        OptionKind::Integer { min: 1, max: 100_000 },
        "documents per _bulk request",
    )
    .default("5000"),
    OptionSpec::new(
        "bulk_in_flight",
        OptionKind::Integer { min: 1, max: 64 },
        "_bulk requests sent at once",
    )
    .default("2"),
    OptionSpec::new(
        "scan",
        OptionKind::Choice(&["auto", "pit", "scroll"]),
        "how full scans page: point in time + search_after (auto, when the server has it) or scroll",
    )
    .default("auto"),
    OptionSpec::new(
        "single_valued",
        OptionKind::Bool,
        "promise that no document holds several values in one field, so negated filters and sorts are pushed for indexes dataknobs did not create",
    )
    .default("false"),
    OptionSpec::new(
        "index_prefix",
        OptionKind::Text,
        "table t is index <prefix>t, and only indexes starting with the prefix are listed (a namespace in a shared cluster)",
    ),
    OptionSpec::new(
        "verify_tls",
        OptionKind::Bool,
        "check the server's TLS certificate (es+https)",
    )
    .default("true"),
    OptionSpec::new("ca_file", OptionKind::Text, "a PEM file of CA certificates to trust (es+https)"),
    OptionSpec::new(
        "api_key_env",
        OptionKind::Text,
        "the environment variable holding the API key (base64 of id:key, sent as `Authorization: ApiKey …`); keys never go in the URL",
    )
    .default("DK_ES_API_KEY"),
    OptionSpec::new(
        "timeout",
        OptionKind::Duration,
        "how long one request may take (seconds, or 500ms, 1m, …)",
    )
    .default("60"),
    OptionSpec::new(
        "compress",
        OptionKind::Bool,
        "ask for gzip-compressed replies (worth it over slow links; off doubles scan speed on a LAN)",
    )
    .default("false"),
];

/// Backend settings from the URL.
#[derive(Debug, Clone)]
pub struct EsSettings {
    pub refresh: bool,
    pub bulk_docs: usize,
    pub bulk_in_flight: usize,
    pub paging: Option<Paging>,
    pub single_valued: bool,
    pub prefix: String,
}

/// `es+http://`, `es+https://`, `opensearch+http(s)://`, `elasticsearch+http(s)://`.
#[derive(Debug)]
pub struct EsKind;

#[async_trait]
impl BackendKind for EsKind {
    fn name(&self) -> &'static str {
        BACKEND
    }
    fn schemes(&self) -> &'static [&'static str] {
        &[
            "es+http",
            "es+https",
            "opensearch+http",
            "opensearch+https",
            "elasticsearch+http",
            "elasticsearch+https",
        ]
    }
    fn description(&self) -> &'static str {
        "an Elasticsearch 8/9 or OpenSearch 2/3 cluster: every index and alias as a table (es+http://host:9200, es+https://user:password@host:9200)"
    }
    fn persistent(&self) -> bool {
        true
    }
    fn example_url(&self) -> &'static str {
        "es+http://127.0.0.1:9200"
    }
    fn options(&self) -> &'static [OptionSpec] {
        ES_OPTIONS
    }
    async fn open(&self, url: &Url, options: &UrlOptions) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(EsBackend::connect(url, options).await?))
    }
}

fn percent_decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// An Elasticsearch or OpenSearch cluster.
pub struct EsBackend {
    pub(crate) client: EsClient,
    pub(crate) settings: EsSettings,
    /// Index and alias names (hidden ones, starting with `.`, left out), refreshed on DDL.
    names: RwLock<Vec<String>>,
}

impl std::fmt::Debug for EsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsBackend")
            .field("client", &self.client)
            .finish()
    }
}

impl EsBackend {
    /// Connects to the server a URL names.
    pub async fn connect(url: &Url, options: &UrlOptions) -> Result<EsBackend> {
        let scheme = url.scheme();
        let tls = scheme.ends_with("https");
        let host = url.host_str().ok_or_else(|| {
            Error::config(format!(
                "'{}' names no host; e.g. es+http://127.0.0.1:9200",
                crate::config::redact_url(url.as_str())
            ))
            .with_backend(BACKEND)
        })?;
        let mut http = Url::parse(&format!(
            "{}://{}:{}",
            if tls { "https" } else { "http" },
            if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            },
            url.port().unwrap_or(9200)
        ))
        .map_err(|e| Error::config(format!("bad host in the URL: {e}")).with_backend(BACKEND))?;
        let path = url.path().trim_end_matches('/');
        if !path.is_empty() {
            http.set_path(path);
        }
        let user = (!url.username().is_empty()).then(|| percent_decoded(url.username()));
        let password = url
            .password()
            .map(|p| SecretString::from(percent_decoded(p)));
        let key_var = options
            .text("api_key_env")?
            .unwrap_or_else(|| "DK_ES_API_KEY".to_string());
        let api_key = std::env::var(&key_var)
            .ok()
            .filter(|k| !k.is_empty())
            .map(SecretString::from);
        let bool_opt = |name: &str, default: bool| -> Result<bool> {
            Ok(options.bool(name)?.unwrap_or(default))
        };
        let settings = ClientSettings {
            url: http,
            user,
            password,
            api_key,
            verify_tls: bool_opt("verify_tls", true)?,
            ca_file: options.text("ca_file")?.map(std::path::PathBuf::from),
            timeout: options
                .duration("timeout")?
                .unwrap_or(Duration::from_secs(60)),
            compress: bool_opt("compress", false)?,
        };
        let client = EsClient::connect(&settings).await?;
        let paging = match options.text("scan")?.as_deref() {
            Some("pit") => {
                if !client.info.has_pit() {
                    return Err(Error::config(format!(
                        "scan=pit: {} has no point-in-time searches; use scan=scroll or scan=auto",
                        client.info
                    ))
                    .with_backend(BACKEND));
                }
                Some(Paging::Pit)
            }
            Some("scroll") => Some(Paging::Scroll),
            _ => None,
        };
        let settings = EsSettings {
            refresh: bool_opt("refresh", true)?,
            bulk_docs: options.integer("bulk_docs")?.unwrap_or(5000) as usize,
            bulk_in_flight: options.integer("bulk_in_flight")?.unwrap_or(2) as usize,
            paging,
            single_valued: bool_opt("single_valued", false)?,
            prefix: options.text("index_prefix")?.unwrap_or_default(),
        };
        if !settings.prefix.is_empty() {
            Self::check_name(&format!("{}x", settings.prefix))?;
        }
        let backend = EsBackend {
            client,
            settings,
            names: RwLock::new(Vec::new()),
        };
        backend.refresh_names().await?;
        Ok(backend)
    }

    /// The server (flavour and version).
    pub fn server(&self) -> client::ServerInfo {
        self.client.info
    }

    /// How full scans page.
    pub(crate) fn paging(&self) -> Paging {
        self.settings
            .paging
            .unwrap_or(if self.client.info.has_pit() {
                Paging::Pit
            } else {
                Paging::Scroll
            })
    }

    /// Re-reads the index and alias names.
    pub async fn refresh_names(&self) -> Result<()> {
        let reply = self
            .client
            .request(Method::Get, "/_alias", None, "listing indexes and aliases")
            .await?;
        let mut names = Vec::new();
        if let Some(obj) = reply.as_object() {
            for (index, v) in obj {
                names.push(index.clone());
                if let Some(aliases) = v.get("aliases").and_then(Json::as_object) {
                    names.extend(aliases.keys().cloned());
                }
            }
        }
        names.retain(|n| !n.starts_with('.'));
        let prefix = &self.settings.prefix;
        let mut names: Vec<String> = names
            .into_iter()
            .filter_map(|n| n.strip_prefix(prefix.as_str()).map(str::to_string))
            .filter(|n| !n.is_empty())
            .collect();
        names.sort();
        names.dedup();
        *self.names.write() = names;
        Ok(())
    }

    /// The index a table name stands for.
    fn index_name(&self, table: &str) -> String {
        format!("{}{table}", self.settings.prefix)
    }

    fn check_name(name: &str) -> Result<()> {
        let bad = name.is_empty()
            || name.starts_with(['-', '_', '+'])
            || name == "."
            || name == ".."
            || name.len() > 255
            || name.chars().any(|c| {
                c.is_ascii_uppercase()
                    || matches!(
                        c,
                        '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
                    )
            });
        if bad {
            return Err(Error::query(format!(
                "'{name}' cannot be an index name: use lower case letters, digits, '-', '_' and '.', \
                 not starting with '-', '_' or '+'"
            ))
            .with_backend(BACKEND));
        }
        Ok(())
    }
}

#[async_trait]
impl Backend for EsBackend {
    fn kind(&self) -> &str {
        BACKEND
    }

    fn location(&self) -> String {
        format!("{} ({})", self.client.url(), self.client.info)
    }

    fn schema_names(&self) -> Vec<String> {
        vec![self.default_schema()]
    }

    fn collection_names(&self, schema: &str) -> Vec<String> {
        if schema != self.default_schema() {
            return Vec::new();
        }
        self.names.read().clone()
    }

    async fn open(&self, schema: &str, name: &str) -> Result<Option<Arc<dyn Database>>> {
        if schema != self.default_schema() {
            return Ok(None);
        }
        let table_name = name;
        let name = &self.index_name(name);
        let reply = self
            .client
            .send(
                Method::Get,
                &format!("/{}/_mapping", path_part(name)),
                None,
                false,
            )
            .await?;
        if reply.status == 404 {
            return Ok(None);
        }
        if !reply.ok() {
            return Err(client::server_error(
                &format!("reading the mapping of '{name}'"),
                &reply,
            ));
        }
        let mapping = reply.json("the mapping")?;
        if mapping.as_object().is_none_or(|m| m.is_empty()) {
            // A pattern that matches no index.
            return Ok(None);
        }
        let opened = EsTable::open(self, table_name, name, &mapping).await?;
        Ok(Some(Arc::new(opened)))
    }

    async fn create_collection(
        &self,
        schema: &str,
        name: &str,
        spec: CollectionSpec,
        if_not_exists: bool,
    ) -> Result<Arc<dyn Database>> {
        if schema != self.default_schema() {
            return Err(Error::not_found(format!(
                "schema '{schema}' does not exist: an Elasticsearch/OpenSearch cluster has one, '{}'",
                self.default_schema()
            ))
            .with_backend(BACKEND));
        }
        let table = name;
        let name = &self.index_name(name);
        Self::check_name(name)?;
        let body = mapping::create_body(&spec)?;
        let reply = self
            .client
            .send(
                Method::Put,
                &format!("/{}", path_part(name)),
                Some(bytes::Bytes::from(body.to_string())),
                false,
            )
            .await?;
        if !reply.ok() {
            let e = client::server_error(&format!("cannot create index '{name}'"), &reply);
            if e.kind() == ErrorKind::AlreadyExists
                || reply.body.windows(14).any(|w| w == b"already_exists")
            {
                if if_not_exists {
                    return self.open(schema, table).await?.ok_or_else(|| {
                        Error::internal(format!("index '{name}' exists but cannot be opened"))
                    });
                }
                return Err(
                    Error::already_exists(format!("table '{name}' already exists"))
                        .with_backend(BACKEND),
                );
            }
            return Err(e);
        }
        self.refresh_names().await?;
        self.open(schema, table).await?.ok_or_else(|| {
            Error::internal(format!(
                "index '{name}' vanished right after it was created"
            ))
            .with_backend(BACKEND)
        })
    }

    async fn drop_collection(&self, schema: &str, name: &str, if_exists: bool) -> Result<bool> {
        let full = format!("{schema}.{name}");
        if schema != self.default_schema() {
            return drop_missing(BACKEND, &full, "", if_exists);
        }
        // Only a concrete index is dropped: never an alias or a pattern (which would delete
        // every index it matches).
        let name = &self.index_name(name);
        if name.contains(['*', ',']) {
            return Err(Error::query(format!(
                "DROP TABLE takes one index name, not a pattern or list: '{name}'"
            ))
            .with_backend(BACKEND));
        }
        let reply = self
            .client
            .send(
                Method::Get,
                &format!("/_alias/{}", path_part(name)),
                None,
                false,
            )
            .await?;
        if reply.ok()
            && reply
                .json("aliases")?
                .as_object()
                .is_some_and(|o| !o.is_empty() && !o.contains_key(name))
        {
            return Err(Error::query(format!(
                "'{name}' is an alias; drop the indexes behind it one by one"
            ))
            .with_backend(BACKEND));
        }
        let reply = self
            .client
            .send(
                Method::Delete,
                &format!("/{}", path_part(name)),
                None,
                false,
            )
            .await?;
        if reply.status == 404 {
            return drop_missing(BACKEND, &full, "in the cluster", if_exists);
        }
        if !reply.ok() {
            return Err(client::server_error(
                &format!("cannot delete index '{name}'"),
                &reply,
            ));
        }
        self.refresh_names().await?;
        Ok(true)
    }
}
