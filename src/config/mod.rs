//! Backend URLs and the [`DatabaseFactory`] (the seed's factory with `backend_info`): one
//! registry of [`BackendKind`]s, each declaring its name, URL schemes, description, whether
//! it keeps data, and its URL options ([`OptionSpec`]: name, type, required, default, secret,
//! doc). URL options are checked by one parser ([`UrlOptions`]) before a backend opens, so an
//! unknown or malformed option is the same clear error for every backend.
//!
//! Adding a backend kind: implement [`BackendKind`] in the backend's folder and add one
//! `f.register(Arc::new(TheKind))` line to [`DatabaseFactory::with_builtin`].

pub mod options;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use url::Url;

pub use options::{OptionKind, OptionSpec, UrlOptions};

use crate::backends::memory::MemoryBackend;
use crate::database::Backend;
use crate::error::{Error, ErrorKind, Result};

/// One kind of backend: what the factory needs to list it and to open it from a URL.
#[async_trait]
pub trait BackendKind: Send + Sync + std::fmt::Debug {
    /// The kind's name, e.g. `postgres`.
    fn name(&self) -> &'static str;
    /// The URL schemes it answers to, e.g. `postgres`, `postgresql`.
    fn schemes(&self) -> &'static [&'static str];
    /// One line for users.
    fn description(&self) -> &'static str;
    /// Does data outlive the process?
    fn persistent(&self) -> bool;
    /// A URL to show in help and errors.
    fn example_url(&self) -> &'static str;
    /// The URL query options it accepts.
    fn options(&self) -> &'static [OptionSpec] {
        &[]
    }
    /// Opens a backend; `options` are the URL's query options, already checked.
    async fn open(&self, url: &Url, options: &UrlOptions) -> Result<Arc<dyn Backend>>;
}

/// What the factory tells about a backend kind (the seed's `get_backend_info`).
#[derive(Debug, Clone, Serialize)]
pub struct BackendInfo {
    pub name: String,
    pub description: String,
    pub persistent: bool,
    pub schemes: Vec<String>,
    pub example_url: String,
    pub options: Vec<OptionSpec>,
}

impl BackendInfo {
    fn of(kind: &dyn BackendKind) -> Self {
        BackendInfo {
            name: kind.name().to_string(),
            description: kind.description().to_string(),
            persistent: kind.persistent(),
            schemes: kind.schemes().iter().map(|s| s.to_string()).collect(),
            example_url: kind.example_url().to_string(),
            options: kind.options().to_vec(),
        }
    }
}

/// The registry of backend kinds.
#[derive(Debug, Clone)]
pub struct DatabaseFactory {
    kinds: BTreeMap<String, Arc<dyn BackendKind>>,
}

impl Default for DatabaseFactory {
    fn default() -> Self {
        Self::with_builtin()
    }
}

/// The in-memory backend: `memory://` (nothing kept) or `memory:///path/file.json`.
#[derive(Debug)]
pub struct MemoryKind;

#[async_trait]
impl BackendKind for MemoryKind {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn schemes(&self) -> &'static [&'static str] {
        &["memory"]
    }
    fn description(&self) -> &'static str {
        "in-memory Arrow tables; optionally saved to a JSON file (memory:///path/file.json)"
    }
    fn persistent(&self) -> bool {
        false
    }
    fn example_url(&self) -> &'static str {
        "memory://"
    }
    async fn open(&self, url: &Url, _options: &UrlOptions) -> Result<Arc<dyn Backend>> {
        let path = url.path();
        // `memory://db.json` parses as a host named "db.json" and no path: refuse it rather
        // than silently keep nothing on disk.
        if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
            return Err(Error::config(format!(
                "'{url}' names '{host}' as a host; a memory backend is local: use memory:// \
                 (nothing saved) or memory:///absolute/path/{host} (saved to that file)"
            )));
        }
        Ok(if path.is_empty() || path == "/" {
            Arc::new(MemoryBackend::new())
        } else {
            let file = url.to_file_path().map_err(|_| {
                Error::config(format!(
                    "'{url}' does not name a local file; use memory:///absolute/path.json"
                ))
            })?;
            Arc::new(MemoryBackend::with_file(file)?)
        })
    }
}

impl DatabaseFactory {
    /// An empty factory.
    pub fn empty() -> Self {
        DatabaseFactory {
            kinds: BTreeMap::new(),
        }
    }

    /// A factory with every backend compiled into this build.
    pub fn with_builtin() -> Self {
        let mut f = Self::empty();
        f.register(Arc::new(MemoryKind));
        f.register(Arc::new(crate::backends::file::FileKind));
        #[cfg(feature = "postgres")]
        f.register(Arc::new(crate::backends::postgres::PgKind));
        #[cfg(feature = "elasticsearch")]
        f.register(Arc::new(crate::backends::elasticsearch::EsKind));
        #[cfg(feature = "s3")]
        f.register(Arc::new(crate::backends::s3::S3Kind));
        #[cfg(feature = "redis")]
        f.register(Arc::new(crate::backends::redis::RedisKind));
        #[cfg(feature = "hdfs")]
        f.register(Arc::new(crate::backends::hdfs::HdfsKind));
        f
    }

    /// Registers (or replaces) a backend kind.
    pub fn register(&mut self, kind: Arc<dyn BackendKind>) {
        self.kinds.insert(kind.name().to_string(), kind);
    }

    /// The registered backend kinds.
    pub fn available(&self) -> Vec<String> {
        self.kinds.keys().cloned().collect()
    }

    /// Information about a kind.
    pub fn info(&self, name: &str) -> Option<BackendInfo> {
        self.kinds.get(name).map(|k| BackendInfo::of(k.as_ref()))
    }

    /// Information about every kind, by name (the seed's `get_backend_info`).
    pub fn backend_info(&self) -> Vec<BackendInfo> {
        self.kinds
            .values()
            .map(|k| BackendInfo::of(k.as_ref()))
            .collect()
    }

    /// Is this kind available in this build?
    pub fn is_available(&self, name: &str) -> bool {
        self.kinds.contains_key(name)
    }

    /// Opens a backend from a URL such as `memory://`.
    pub async fn open(&self, url: &str) -> Result<Arc<dyn Backend>> {
        let parsed = Url::parse(url).map_err(|e| {
            Error::config(format!(
                "invalid backend URL '{}': {e}; expected e.g. memory://",
                redact_url(url)
            ))
        })?;
        let scheme = parsed.scheme().to_string();
        let kind = self
            .kinds
            .values()
            .find(|k| k.schemes().contains(&scheme.as_str()))
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .kinds
                    .values()
                    .flat_map(|k| k.schemes().iter().map(|s| format!("{s}://")))
                    .collect();
                Error::new(
                    ErrorKind::BackendUnavailable,
                    format!(
                        "unknown backend scheme '{scheme}://' in '{}'; this build supports: {}",
                        redact_url(url),
                        known.join(", ")
                    ),
                )
            })?;
        let options = UrlOptions::parse(kind.name(), &parsed, kind.options())?;
        kind.open(&parsed, &options).await
    }
}

/// A URL with any password replaced by `***`, for messages and EXPLAIN.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => {
            // Not a URL: hide anything between "://user:" and "@".
            if let (Some(start), Some(at)) = (url.find("://"), url.rfind('@'))
                && let Some(colon) = url[start + 3..at].find(':')
            {
                return format!("{}***{}", &url[..start + 3 + colon + 1], &url[at..]);
            }
            url.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert!(!redact_url("x://u:secret@h:bad port").contains("secret"));
        assert_eq!(redact_url("memory://"), "memory://");
    }

    #[tokio::test]
    async fn unknown_scheme_is_a_clear_error() {
        let e = DatabaseFactory::with_builtin()
            .open("nosuch://x")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BackendUnavailable);
        assert!(
            e.to_string().contains("unknown backend scheme 'nosuch://'"),
            "{e}"
        );
        assert!(e.to_string().contains("memory://"), "{e}");
    }

    #[tokio::test]
    async fn unknown_options_are_refused_for_every_kind() {
        let f = DatabaseFactory::with_builtin();
        let e = f.open("memory://?nope=1").await.unwrap_err().to_string();
        assert!(
            e.contains("unknown memory URL option 'nope'; known: none"),
            "{e}"
        );
        let dir = std::env::temp_dir();
        let e = f
            .open(&format!(
                "file://{}?format=parquet&infer_rows=x",
                dir.display()
            ))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("'infer_rows' takes a whole number"), "{e}");
    }

    #[test]
    fn backend_info_lists_kinds_and_their_options() {
        let info = DatabaseFactory::with_builtin().backend_info();
        let names: Vec<&str> = info.iter().map(|i| i.name.as_str()).collect();
        assert!(
            names.contains(&"memory") && names.contains(&"file"),
            "{names:?}"
        );
        let file = info.iter().find(|i| i.name == "file").unwrap();
        assert!(file.persistent);
        assert!(file.options.iter().any(|o| o.name == "format"));
        let json = serde_json::to_string(&info).unwrap();
        assert!(json.contains("\"example_url\""), "{json}");
    }
}
