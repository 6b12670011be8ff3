//! The HTTP client: one [`elasticsearch::Elasticsearch`] transport, raw requests with the
//! headers both Elasticsearch and OpenSearch accept, the server's flavour and version from
//! `GET /`, and error replies turned into dataknobs errors that say what failed.
//!
//! Secrets: the crate's `Debug` impls print credentials, so the transport lives in
//! [`EsClient`], whose `Debug` shows only the redacted URL and the flavour.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use elasticsearch::Elasticsearch;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::CertificateValidation;
use elasticsearch::http::Method;
use elasticsearch::http::headers::{ACCEPT, ACCEPT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value as Json;
use url::Url;

use super::BACKEND;
use crate::error::{Error, ErrorKind, Result};

/// Which server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Elasticsearch,
    OpenSearch,
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavour::Elasticsearch => "Elasticsearch",
            Flavour::OpenSearch => "OpenSearch",
        })
    }
}

/// The server's flavour and version (`major.minor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo {
    pub flavour: Flavour,
    pub major: u32,
    pub minor: u32,
}

/// "8.19.0" (or "3.0.0-beta1") as (major, minor); 0 for what is not a number.
fn version_parts(number: &str) -> (u32, u32) {
    let mut parts = number
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

impl ServerInfo {
    /// Does the server have point-in-time searches (ES 7.10+, OpenSearch 2.4+)?
    pub fn has_pit(&self) -> bool {
        match self.flavour {
            Flavour::Elasticsearch => (self.major, self.minor) >= (7, 10),
            Flavour::OpenSearch => (self.major, self.minor) >= (2, 4),
        }
    }

    /// Reads `GET /`'s reply (and, for servers that do not serve `GET /`, the
    /// `X-elastic-product` header).
    pub fn from_root(body: &Json, product_header: Option<&str>) -> Result<ServerInfo> {
        // (`version_parts` below reads "8.19.0" as (8, 19).)
        let version = body.get("version");
        let number = version.and_then(|v| v.get("number")).and_then(Json::as_str);
        let distribution = version
            .and_then(|v| v.get("distribution"))
            .and_then(Json::as_str);
        let flavour = match (distribution, product_header) {
            (Some(d), _) if d.eq_ignore_ascii_case("opensearch") => Flavour::OpenSearch,
            (_, Some(p)) if p.eq_ignore_ascii_case("elasticsearch") => Flavour::Elasticsearch,
            (None, _) if body.get("tagline").is_some() || number.is_some() => {
                Flavour::Elasticsearch
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Connection,
                    "the server's reply to GET / is not from Elasticsearch or OpenSearch (no version.number)",
                )
                .with_backend(BACKEND));
            }
        };
        let (major, minor) = version_parts(number.unwrap_or("0.0"));
        Ok(ServerInfo {
            flavour,
            major,
            minor,
        })
    }
}

impl fmt::Display for ServerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}.{}", self.flavour, self.major, self.minor)
    }
}

/// How to reach a server.
pub struct ClientSettings {
    /// `http(s)://host:port` (with a path prefix when the server sits behind one), no user info.
    pub url: Url,
    pub user: Option<String>,
    pub password: Option<SecretString>,
    pub api_key: Option<SecretString>,
    /// Check the server's TLS certificate (off only on request).
    pub verify_tls: bool,
    /// A PEM file of CA certificates to trust as well.
    pub ca_file: Option<std::path::PathBuf>,
    pub timeout: Duration,
    /// Ask for gzip-compressed replies (worth it only over slow links).
    pub compress: bool,
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("url", &self.url.as_str())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("verify_tls", &self.verify_tls)
            .finish()
    }
}

/// A reply: status and body.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (an error naming `what` when it is not JSON).
    pub fn json(&self, what: &str) -> Result<Json> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                format!(
                    "{what}: the server's reply is not JSON ({e}): {}",
                    preview(&self.body)
                ),
            )
            .with_backend(BACKEND)
        })
    }
}

fn preview(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(300)]);
    s.into_owned()
}

/// The client. Cheap to clone (the transport is shared).
#[derive(Clone)]
pub struct EsClient {
    es: Elasticsearch,
    /// The URL without credentials, for display.
    shown: String,
    pub info: ServerInfo,
}

impl fmt::Debug for EsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EsClient")
            .field("url", &self.shown)
            .field("server", &self.info.to_string())
            .finish()
    }
}

/// Characters to percent-encode in an index name put into a path.
const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*')
    .remove(b',');

/// An index name (or pattern, or comma list) for a request path.
pub fn path_part(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, PATH).to_string()
}

impl EsClient {
    /// Builds the transport and asks the server who it is.
    pub async fn connect(s: &ClientSettings) -> Result<EsClient> {
        let mut b = TransportBuilder::new(SingleNodeConnectionPool::new(s.url.clone()))
            .enable_meta_header(false)
            .disable_proxy()
            .timeout(s.timeout);
        if !s.compress {
            b = b.header(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        if let Some(key) = &s.api_key {
            b = b.auth(Credentials::EncodedApiKey(key.expose_secret().to_string()));
        } else if let Some(user) = &s.user {
            let pass = s
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_string())
                .unwrap_or_default();
            b = b.auth(Credentials::Basic(user.clone(), pass));
        }
        if !s.verify_tls {
            b = b.cert_validation(CertificateValidation::None);
        } else if let Some(ca) = &s.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::io(
                    format!("cannot read the CA file {} (option ca_file)", ca.display()),
                    e,
                )
            })?;
            let cert = elasticsearch::cert::Certificate::from_pem(&pem).map_err(|e| {
                Error::config(format!(
                    "{} is not a PEM certificate (option ca_file): {e}",
                    ca.display()
                ))
                .with_backend(BACKEND)
            })?;
            b = b.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = b.build().map_err(|e| {
            Error::config(format!("cannot set up the HTTP client for {}: {e}", s.url))
                .with_backend(BACKEND)
        })?;
        let mut client = EsClient {
            es: Elasticsearch::new(transport),
            shown: s.url.to_string(),
            info: ServerInfo {
                flavour: Flavour::OpenSearch,
                major: 0,
                minor: 0,
            },
        };
        let resp = client
            .raw(Method::Get, "/", None, false)
            .await
            .map_err(|e| e.context(&format!("cannot reach {}", client.shown)))?;
        if resp.0.status == 401 || resp.0.status == 403 {
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "{} refused the credentials (HTTP {}): check the user and password in the URL, \
                     or the API key (in the variable named by option api_key_env, DK_ES_API_KEY by default)",
                    client.shown, resp.0.status
                ),
            )
            .with_backend(BACKEND));
        }
        let body = if resp.0.ok() {
            resp.0.json("GET /")?
        } else {
            Json::Null
        };
        client.info = ServerInfo::from_root(&body, resp.1.as_deref()).map_err(|e| {
            e.context(&format!(
                "{} answered GET / with HTTP {}: {}",
                client.shown,
                resp.0.status,
                preview(&resp.0.body)
            ))
        })?;
        if client.info.major == 0 {
            // `GET /` said who answers but not which version (a node without the rest-root
            // module answers 405): ask the node itself.
            if let Ok((r, _)) = client
                .raw(
                    Method::Get,
                    "/_nodes/_local?filter_path=nodes.*.version",
                    None,
                    false,
                )
                .await
                && r.ok()
                && let Some(v) = r.json("node info").ok().and_then(|j| {
                    j.get("nodes")?
                        .as_object()?
                        .values()
                        .next()?
                        .get("version")?
                        .as_str()
                        .map(str::to_string)
                })
            {
                (client.info.major, client.info.minor) = version_parts(&v);
            }
        }
        Ok(client)
    }

    /// The server's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// Sends one request; the reply comes back whatever its status (and the
    /// `X-elastic-product` header).
    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        ndjson: bool,
    ) -> Result<(Reply, Option<String>)> {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(if ndjson {
                "application/x-ndjson"
            } else {
                "application/json"
            }),
        );
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let no_query: Option<&[(&str, &str)]> = None;
        let resp = self
            .es
            .transport()
            .send(method, path, h, no_query, body, None)
            .await
            .map_err(|e| {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                let hint = if msg.contains("certificate") {
                    "the server's TLS certificate is not trusted: give its CA with the option \
                     ca_file=<PEM file>, or turn checking off with verify_tls=false"
                } else {
                    "is the server up and the URL right?"
                };
                Error::new(
                    ErrorKind::Connection,
                    format!(
                        "{} {path} to {} {what}: {msg}; {hint}",
                        method_name(method),
                        self.shown
                    ),
                )
                .with_backend(BACKEND)
            })?;
        let status = resp.status_code().as_u16();
        let product = resp
            .headers()
            .get("x-elastic-product")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.bytes().await.map_err(|e| {
            Error::new(
                ErrorKind::Connection,
                format!(
                    "reading the reply to {path} from {} failed: {e}",
                    self.shown
                ),
            )
            .with_backend(BACKEND)
        })?;
        Ok((Reply { status, body }, product))
    }

    /// Sends a request and returns the reply whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        ndjson: bool,
    ) -> Result<Reply> {
        Ok(self.raw(method, path, body, ndjson).await?.0)
    }

    /// Sends a JSON request; a non-2xx reply is an error saying `what` failed and why.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Json>,
        what: &str,
    ) -> Result<Json> {
        let bytes = match body {
            Some(b) => Some(Bytes::from(serde_json::to_vec(b).map_err(|e| {
                Error::internal(format!("cannot serialise a request body: {e}"))
            })?)),
            None => None,
        };
        let reply = self.send(method, path, bytes, false).await?;
        if !reply.ok() {
            return Err(server_error(what, &reply));
        }
        reply.json(what)
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

/// A non-2xx reply as an error: `what` failed, the server's error type and reason.
pub fn server_error(what: &str, reply: &Reply) -> Error {
    let parsed: Option<Json> = serde_json::from_slice(&reply.body).ok();
    let err = parsed.as_ref().and_then(|j| j.get("error"));
    let root = err
        .and_then(|e| e.get("root_cause"))
        .and_then(|r| r.get(0))
        .or(err);
    let ty = root
        .and_then(|e| e.get("type"))
        .and_then(Json::as_str)
        .unwrap_or("");
    let reason = root
        .and_then(|e| e.get("reason"))
        .and_then(Json::as_str)
        .map(str::to_string)
        .or_else(|| err.and_then(Json::as_str).map(str::to_string))
        .unwrap_or_else(|| preview(&reply.body));
    let kind = match (reply.status, ty) {
        (404, _) | (_, "index_not_found_exception") => ErrorKind::NotFound,
        (_, "resource_already_exists_exception") => ErrorKind::AlreadyExists,
        (401 | 403, _) => ErrorKind::Connection,
        (400, "mapper_parsing_exception" | "document_parsing_exception") => ErrorKind::Type,
        (400, _) => ErrorKind::Query,
        (409, _) => ErrorKind::Query,
        (s, _) if s >= 500 => ErrorKind::BackendUnavailable,
        _ => ErrorKind::Query,
    };
    let ty = if ty.is_empty() {
        String::new()
    } else {
        format!(" {ty}:")
    };
    Error::new(kind, format!("{what}: HTTP {}{ty} {reason}", reply.status))
        .with_backend(BACKEND)
        .with_code(reply.status.to_string())
}

impl Error {
    /// The same error with `context` put in front of its message.
    pub(crate) fn context(self, context: &str) -> Error {
        let mut e = Error::new(self.kind(), format!("{context}: {}", self.message()));
        if let Some(b) = self.backend() {
            e = e.with_backend(b.to_string());
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flavour_and_version_come_from_get_root() {
        let os = json!({"version": {"distribution": "opensearch", "number": "2.19.6"}});
        let i = ServerInfo::from_root(&os, None).unwrap();
        assert_eq!((i.flavour, i.major, i.minor), (Flavour::OpenSearch, 2, 19));
        assert!(i.has_pit());
        let es = json!({"version": {"number": "8.19.0", "build_flavor": "default"}, "tagline": "You Know, for Search"});
        let i = ServerInfo::from_root(&es, None).unwrap();
        assert_eq!(
            (i.flavour, i.major, i.minor),
            (Flavour::Elasticsearch, 8, 19)
        );
        let i = ServerInfo::from_root(&Json::Null, Some("Elasticsearch")).unwrap();
        assert_eq!(i.flavour, Flavour::Elasticsearch);
        let old = json!({"version": {"distribution": "opensearch", "number": "2.3.0"}});
        assert!(!ServerInfo::from_root(&old, None).unwrap().has_pit());
        assert!(ServerInfo::from_root(&json!({"hello": 1}), None).is_err());
    }

    #[test]
    fn server_errors_name_type_and_reason() {
        let r = Reply {
            status: 404,
            body: Bytes::from_static(
                br#"{"error":{"root_cause":[{"type":"index_not_found_exception","reason":"no such index [x]"}],"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}"#,
            ),
        };
        let e = server_error("reading x", &r);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("no such index [x]"), "{e}");
        assert!(e.message().starts_with("reading x: HTTP 404"), "{e}");
    }

    #[test]
    fn index_names_are_encoded_in_paths() {
        assert_eq!(path_part("logs-2024.01"), "logs-2024.01");
        assert_eq!(path_part("a b/c"), "a%20b%2Fc");
        assert_eq!(path_part("logs-*"), "logs-*");
    }
}
