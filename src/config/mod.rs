//! Backend URLs and the [`DatabaseFactory`]: one registry from URL scheme to backend
//! constructor, so adding a backend is one `register` call (no dispatch to edit elsewhere).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use url::Url;

use crate::backends::memory::MemoryBackend;
use crate::database::Backend;
use crate::error::{Error, ErrorKind, Result};

/// Builds a backend from its URL.
pub type Constructor = Arc<
    dyn Fn(Url) -> Pin<Box<dyn Future<Output = Result<Arc<dyn Backend>>> + Send>> + Send + Sync,
>;

/// What the factory knows about a backend kind (the seed's `get_backend_info`).
#[derive(Clone)]
pub struct BackendInfo {
    pub name: String,
    pub description: String,
    pub persistent: bool,
    pub schemes: Vec<String>,
    pub example_url: String,
    constructor: Constructor,
}

impl std::fmt::Debug for BackendInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendInfo")
            .field("name", &self.name)
            .field("schemes", &self.schemes)
            .finish()
    }
}

/// The registry of backend kinds.
#[derive(Debug, Clone)]
pub struct DatabaseFactory {
    kinds: BTreeMap<String, BackendInfo>,
}

impl Default for DatabaseFactory {
    fn default() -> Self {
        Self::with_builtin()
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
        f.register(
            "memory",
            "in-memory Arrow tables; optionally saved to a JSON file (memory:///path/file.json)",
            false,
            &["memory"],
            "memory://",
            Arc::new(|url: Url| {
                Box::pin(async move {
                    let path = url.path();
                    let backend: Arc<dyn Backend> = if path.is_empty() || path == "/" {
                        Arc::new(MemoryBackend::new())
                    } else {
                        let file = url.to_file_path().map_err(|_| {
                            Error::config(format!("'{url}' does not name a local file; use memory:///absolute/path.json"))
                        })?;
                        Arc::new(MemoryBackend::with_file(file)?)
                    };
                    Ok(backend)
                })
            }),
        );
        f.register(
            "file",
            "a directory of JSON, NDJSON, CSV, TSV and Parquet files (file:///dir?format=parquet)",
            true,
            &["file"],
            "file:///path/to/dir",
            Arc::new(|url: Url| {
                Box::pin(async move {
                    let backend: Arc<dyn Backend> =
                        Arc::new(crate::backends::file::FileBackend::from_url(&url)?);
                    Ok(backend)
                })
            }),
        );
        #[cfg(feature = "postgres")]
        f.register(
            "postgres",
            "a PostgreSQL database: every table and view of every schema (postgres://user@host:5432/db?sslmode=prefer)",
            true,
            &["postgres", "postgresql"],
            "postgres://user@localhost:5432/db",
            Arc::new(|url: Url| {
                Box::pin(async move {
                    let backend: Arc<dyn Backend> = Arc::new(
                        crate::backends::postgres::PgBackend::connect(
                            &url,
                            crate::backends::postgres::PgOptions::default(),
                        )
                        .await?,
                    );
                    Ok(backend)
                })
            }),
        );
        f
    }

    /// Registers (or replaces) a backend kind.
    pub fn register(
        &mut self,
        name: &str,
        description: &str,
        persistent: bool,
        schemes: &[&str],
        example_url: &str,
        constructor: Constructor,
    ) {
        self.kinds.insert(
            name.to_string(),
            BackendInfo {
                name: name.to_string(),
                description: description.to_string(),
                persistent,
                schemes: schemes.iter().map(|s| s.to_string()).collect(),
                example_url: example_url.to_string(),
                constructor,
            },
        );
    }

    /// The registered backend kinds.
    pub fn available(&self) -> Vec<String> {
        self.kinds.keys().cloned().collect()
    }

    /// Information about a kind.
    pub fn info(&self, name: &str) -> Option<&BackendInfo> {
        self.kinds.get(name)
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
        let info = self
            .kinds
            .values()
            .find(|k| k.schemes.contains(&scheme))
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .kinds
                    .values()
                    .flat_map(|k| k.schemes.iter().map(|s| format!("{s}://")))
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
        (info.constructor)(parsed).await
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
}
