//! Backend URLs and the [`DatabaseFactory`] (the seed's factory with `backend_info`): one
//! registry of [`BackendKind`]s, each declaring its name, URL schemes, description, whether
//! it keeps data, and its URL options ([`OptionSpec`]: name, type, required, default, secret,
//! doc). URL options are checked by one parser ([`UrlOptions`]) before a backend opens, so an
//! unknown or malformed option is the same clear error for every backend.
//!
//! Adding a backend kind: implement [`BackendKind`] in the backend's folder and add one
//! `f.register(Arc::new(TheKind))` line to [`DatabaseFactory::with_builtin`].

pub mod file;
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
    /// The cargo feature that compiles it in (None: always there, or a user's kind).
    pub feature: Option<String>,
    pub schemes: Vec<String>,
    pub example_url: String,
    /// Settings [`DatabaseFactory::create`] needs.
    pub required: Vec<String>,
    /// Settings it may take (the URL's parts and the kind's options).
    pub optional: Vec<String>,
    pub options: Vec<OptionSpec>,
}

impl BackendInfo {
    fn of(kind: &dyn BackendKind) -> Self {
        let feature = BUILTIN_FEATURES
            .iter()
            .find(|(n, _)| *n == kind.name())
            .map(|(_, f)| f.to_string());
        let mut required = vec![];
        let mut optional = vec!["url".to_string()];
        let parts = url_parts(kind.name());
        if parts.required.is_some() {
            required.extend(parts.required.map(str::to_string));
        }
        optional.extend(parts.optional.iter().map(|p| p.to_string()));
        for o in kind.options() {
            if o.required {
                required.push(o.name.to_string());
            } else if !o.secret {
                optional.push(o.name.to_string());
            }
        }
        BackendInfo {
            name: kind.name().to_string(),
            description: kind.description().to_string(),
            persistent: kind.persistent(),
            feature,
            schemes: kind.schemes().iter().map(|s| s.to_string()).collect(),
            example_url: kind.example_url().to_string(),
            required,
            optional,
            options: kind.options().to_vec(),
        }
    }
}

/// The built-in kinds behind a cargo feature, with their URL schemes: a build without the
/// feature says which one to turn on.
const BUILTIN_FEATURES: &[(&str, &str)] = &[
    ("postgres", "postgres"),
    ("elasticsearch", "elasticsearch"),
    ("s3", "s3"),
    ("redis", "redis"),
    ("hdfs", "hdfs"),
];
const BUILTIN_SCHEMES: &[(&str, &str)] = &[
    ("postgres", "postgres"),
    ("postgresql", "postgres"),
    ("es+http", "elasticsearch"),
    ("es+https", "elasticsearch"),
    ("elasticsearch", "elasticsearch"),
    ("s3", "s3"),
    ("redis", "redis"),
    ("rediss", "redis"),
    ("hdfs", "hdfs"),
];

/// The settings (beside `url` and the kind's options) that build a kind's URL in
/// [`DatabaseFactory::create`].
struct UrlParts {
    /// The setting that must be there when no `url` is.
    required: Option<&'static str>,
    optional: &'static [&'static str],
}

fn url_parts(kind: &str) -> UrlParts {
    match kind {
        "memory" => UrlParts {
            required: None,
            optional: &["path"],
        },
        "file" => UrlParts {
            required: Some("path"),
            optional: &[],
        },
        "s3" => UrlParts {
            required: Some("bucket"),
            optional: &["prefix"],
        },
        "postgres" => UrlParts {
            required: None,
            optional: &["host", "port", "user", "password", "database"],
        },
        "redis" => UrlParts {
            required: None,
            optional: &["host", "port", "user", "password", "db"],
        },
        _ => UrlParts {
            required: None,
            optional: &["host", "port", "user", "password", "path"],
        },
    }
}

/// Settings that are parts of the URL, not options.
const PART_KEYS: &[&str] = &[
    "url", "kind", "host", "port", "user", "password", "path", "database", "db", "bucket", "prefix",
];

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

    /// Registers a user's backend kind under its name (the seed's `register_backend`).
    pub fn register_backend(&mut self, kind: Arc<dyn BackendKind>) {
        self.register(kind);
    }

    /// The registered backend kinds.
    pub fn available(&self) -> Vec<String> {
        self.kinds.keys().cloned().collect()
    }

    /// The registered backend kinds (the seed's `get_available_backends`).
    pub fn available_backends(&self) -> Vec<String> {
        self.available()
    }

    /// Information about a kind.
    pub fn info(&self, name: &str) -> Option<BackendInfo> {
        self.kinds.get(name).map(|k| BackendInfo::of(k.as_ref()))
    }

    /// Information about one kind (the seed's `get_backend_info`); an error that says what
    /// to do for a kind this build lacks.
    pub fn backend_info(&self, name: &str) -> Result<BackendInfo> {
        Ok(BackendInfo::of(self.kind(name)?.as_ref()))
    }

    /// Information about every kind, by name.
    pub fn backend_infos(&self) -> Vec<BackendInfo> {
        self.kinds
            .values()
            .map(|k| BackendInfo::of(k.as_ref()))
            .collect()
    }

    /// Is this kind available in this build?
    pub fn is_available(&self, name: &str) -> bool {
        self.kinds.contains_key(name)
    }

    fn kind(&self, name: &str) -> Result<&Arc<dyn BackendKind>> {
        self.kinds
            .get(name)
            .ok_or_else(|| self.missing_kind(name, None))
    }

    /// The error for a kind (or URL scheme) this factory lacks.
    fn missing_kind(&self, name: &str, scheme: Option<&str>) -> Error {
        let feature = BUILTIN_FEATURES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .or_else(|| {
                scheme.and_then(|s| {
                    BUILTIN_SCHEMES
                        .iter()
                        .find(|(sc, _)| *sc == s)
                        .map(|(_, f)| *f)
                })
            });
        let message = match feature {
            Some(f) => format!(
                "the {f} backend is not in this build; rebuild with `cargo build --features {f}`"
            ),
            None => format!(
                "unknown backend '{name}'; this build has: {}",
                self.available().join(", ")
            ),
        };
        Error::new(ErrorKind::BackendUnavailable, message)
    }

    /// Opens a backend of `kind` from settings (the seed's `create(backend, **config)`):
    /// `url`, or the URL's parts (`host`, `port`, `user`, `password`, `database`, `path`,
    /// `bucket`, `prefix`, `db` as the kind takes them), and any of the kind's options
    /// (`backend_info(kind).options`), as text: `"8"` is a number where the option is one.
    pub async fn create(
        &self,
        kind: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Backend>> {
        let k = self.kind(kind)?;
        let url = self.url_from(k.as_ref(), settings)?;
        self.open(url.as_str()).await
    }

    /// Like [`DatabaseFactory::create`], the kind named by the settings' `kind` or read from
    /// their `url`'s scheme.
    pub async fn create_from(
        &self,
        settings: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn Backend>> {
        match settings.get("kind") {
            Some(kind) => self.create(kind, settings).await,
            None => {
                let url = settings.get("url").ok_or_else(|| {
                    Error::config("a backend needs a url or a kind (e.g. kind = \"file\")")
                })?;
                let scheme = url.split("://").next().unwrap_or("");
                let kind = self
                    .kinds
                    .values()
                    .find(|k| k.schemes().contains(&scheme))
                    .ok_or_else(|| self.missing_kind(scheme, Some(scheme)))?;
                let url = self.url_from(kind.as_ref(), settings)?;
                self.open(url.as_str()).await
            }
        }
    }

    /// The URL the settings describe for `kind`.
    fn url_from(&self, kind: &dyn BackendKind, settings: &BTreeMap<String, String>) -> Result<Url> {
        let name = kind.name();
        let bad = |m: String| Error::config(m).with_backend(name.to_string());
        let mut url = match settings.get("url") {
            Some(u) => Url::parse(u).map_err(|e| {
                bad(format!(
                    "invalid url '{}': {e}; expected e.g. {}",
                    redact_url(u),
                    kind.example_url()
                ))
            })?,
            None => {
                let parts = url_parts(name);
                if let Some(r) = parts.required
                    && !settings.contains_key(r)
                {
                    return Err(bad(format!(
                        "the {name} backend needs '{r}' (or a url such as {})",
                        kind.example_url()
                    )));
                }
                let example = Url::parse(kind.example_url())
                    .map_err(|e| bad(format!("bad example URL: {e}")))?;
                let scheme = kind.schemes().first().copied().unwrap_or(name);
                let text = match name {
                    "memory" => match settings.get("path") {
                        Some(p) => format!("memory://{}", absolute(p)?),
                        None => "memory://".to_string(),
                    },
                    "file" => format!("file://{}", absolute(&settings["path"])?),
                    "s3" => format!(
                        "s3://{}/{}",
                        settings["bucket"],
                        settings
                            .get("prefix")
                            .map(|p| p.trim_start_matches('/'))
                            .unwrap_or("")
                    ),
                    _ => {
                        let host = settings
                            .get("host")
                            .map(String::as_str)
                            .or(example.host_str())
                            .unwrap_or("localhost");
                        let port = settings
                            .get("port")
                            .cloned()
                            .or_else(|| example.port().map(|p| p.to_string()));
                        let path = settings
                            .get("database")
                            .or_else(|| settings.get("db"))
                            .or_else(|| settings.get("path"))
                            .map(|p| p.trim_start_matches('/').to_string())
                            .unwrap_or_default();
                        match port {
                            Some(p) => format!("{scheme}://{host}:{p}/{path}"),
                            None => format!("{scheme}://{host}/{path}"),
                        }
                    }
                };
                Url::parse(&text)
                    .map_err(|e| bad(format!("cannot build a URL from the settings: {e}")))?
            }
        };
        if let Some(user) = settings.get("user")
            && url.set_username(user).is_err()
        {
            return Err(bad("this kind of URL cannot carry a user".into()));
        }
        if let Some(password) = settings.get("password")
            && url.set_password(Some(password)).is_err()
        {
            return Err(bad("this kind of URL cannot carry a password".into()));
        }
        let options: Vec<(&String, &String)> = settings
            .iter()
            .filter(|(k, _)| !PART_KEYS.contains(&k.as_str()))
            .collect();
        if !options.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in options {
                q.append_pair(k, v);
            }
        }
        Ok(url)
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
                if BUILTIN_SCHEMES.iter().any(|(s, _)| *s == scheme) {
                    return self.missing_kind(&scheme, Some(&scheme));
                }
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

/// An absolute local path for a file URL (a relative one is taken from the working folder).
fn absolute(path: &str) -> Result<String> {
    let p = std::path::Path::new(path);
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("cannot read the working folder", e))?
            .join(p)
    };
    Ok(full.to_string_lossy().into_owned())
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
                && at > start + 3
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
        // An '@' before the scheme's "://" (not a URL) is left alone, without a panic.
        assert_eq!(
            redact_url("git@github.com:o/r','https://github.com/o/r"),
            "git@github.com:o/r','https://github.com/o/r"
        );
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
        let info = DatabaseFactory::with_builtin().backend_infos();
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
