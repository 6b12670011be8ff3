//! The PostgreSQL backend: every table and view of every schema of a database as a SQL table.
//!
//! - Connections: one deadpool pool per attached database (connections are checked before
//!   reuse, so the pool recovers after a server restart); TLS through rustls with `sslmode`
//!   `disable`, `prefer`, `require`, `verify-ca` or `verify-full`.
//! - Scans: `COPY (SELECT … WHERE …) TO STDOUT (FORMAT binary)` decoded straight into Arrow
//!   builders ([`types`]), split into ctid page ranges read in one exported snapshot.
//! - Filters are rendered once by [`sql`]; writes stream through binary `COPY … FROM STDIN`
//!   inside one transaction.
//!
//! URL: `postgres://user[:password]@host[:port]/database?sslmode=…&sslrootcert=FILE&
//! pool_size=N&unknown_types=text|error&schema=NAME&connect_timeout=SECONDS`. The password may
//! also come from [`PgOptions::password`] or the `PGPASSWORD` environment variable.

mod decode;
mod decoder;
mod encoder;
mod numeric;
mod records;
mod relation;
mod scan;
pub mod sql;
pub mod table;
pub mod types;
mod wire;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use parking_lot::{Mutex, RwLock};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::{BackendKind, OptionKind, OptionSpec, UrlOptions};
use crate::database::{Backend, CollectionSpec, Database};
use crate::error::{Error, ErrorKind, Result};
use table::PgTable;
use types::{Kind, PgColumn};

const BACKEND: &str = "postgres";

/// TLS modes (libpq's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Connection options beyond the URL.
#[derive(Default, Clone)]
pub struct PgOptions {
    /// The password, when it is not in the URL (else `PGPASSWORD`).
    pub password: Option<SecretString>,
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptions")
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Parsed settings (never printed with the password).
#[derive(Clone)]
struct Settings {
    host: String,
    host_is_path: bool,
    port: u16,
    user: String,
    password: Option<SecretString>,
    dbname: String,
    sslmode: SslMode,
    sslrootcert: Option<String>,
    pool_size: usize,
    unknown_as_text: bool,
    schema: Option<String>,
    connect_timeout: Duration,
}

/// The PostgreSQL backend's URL options (libpq's names where they exist).
pub const PG_OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "sslmode",
        OptionKind::Choice(&["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
        "TLS: require encrypts without checking the certificate (as libpq); verify-full checks it and the host name",
    )
    .default("prefer"),
    OptionSpec::new("sslrootcert", OptionKind::Text, "a PEM file of CA certificates to trust"),
    OptionSpec::new(
        "pool_size",
        OptionKind::Integer { min: 2, max: 1000 },
        "connections in the pool",
    )
    .default("16"),
    OptionSpec::new(
        "unknown_types",
        OptionKind::Choice(&["text", "error"]),
        "columns of types dataknobs cannot map: read as their output text, or refuse",
    )
    .default("error"),
    OptionSpec::new("schema", OptionKind::Text, "the default schema (`pg.t`); default: current_schema()"),
    OptionSpec::new("host", OptionKind::Text, "the host, or a socket directory when it starts with /"),
    OptionSpec::new(
        "port",
        OptionKind::Integer { min: 1, max: 65535 },
        "the port (else the URL's, else 5432)",
    ),
    OptionSpec::new("user", OptionKind::Text, "the user (else the URL's, PGUSER or USER)"),
    OptionSpec::new("dbname", OptionKind::Text, "the database (else the URL's path)"),
    OptionSpec::new(
        "connect_timeout",
        OptionKind::Duration,
        "how long to wait for a connection (seconds, or 500ms, 1m, …)",
    )
    .default("10"),
    OptionSpec::new("application_name", OptionKind::Text, "accepted for libpq compatibility; ignored"),
    OptionSpec::new(
        "password",
        OptionKind::Text,
        "use postgres://user:password@host/db, the password option or PGPASSWORD",
    )
    .secret(),
];

/// The PostgreSQL backend kind: `postgres://user@host:5432/db?…`.
#[derive(Debug)]
pub struct PgKind;

#[async_trait::async_trait]
impl BackendKind for PgKind {
    fn name(&self) -> &'static str {
        BACKEND
    }
    fn schemes(&self) -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }
    fn description(&self) -> &'static str {
        "a PostgreSQL database: every table and view of every schema (postgres://user@host:5432/db?sslmode=prefer)"
    }
    fn persistent(&self) -> bool {
        true
    }
    fn example_url(&self) -> &'static str {
        "postgres://user@localhost:5432/db"
    }
    fn options(&self) -> &'static [OptionSpec] {
        PG_OPTIONS
    }
    async fn open(&self, url: &Url, _options: &UrlOptions) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(
            PgBackend::connect(url, PgOptions::default()).await?,
        ))
    }
}

fn parse_url(url: &Url, options: &PgOptions) -> Result<Settings> {
    let bad = |m: String| Error::config(m).with_backend(BACKEND);
    let mut s = Settings {
        host: url.host_str().unwrap_or("localhost").to_string(),
        host_is_path: false,
        port: url.port().unwrap_or(5432),
        user: percent(url.username()),
        password: url.password().map(|p| SecretString::from(percent(p))),
        dbname: percent(url.path().trim_start_matches('/')),
        sslmode: SslMode::Prefer,
        sslrootcert: None,
        pool_size: 16,
        unknown_as_text: false,
        schema: None,
        connect_timeout: Duration::from_secs(10),
    };
    if s.host.starts_with('[') {
        s.host = s.host.trim_matches(|c| c == '[' || c == ']').to_string();
    }
    let o = UrlOptions::parse(BACKEND, url, PG_OPTIONS)?;
    if let Some(v) = o.text("sslmode")? {
        s.sslmode = match v.as_str() {
            "disable" => SslMode::Disable,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => SslMode::Prefer,
        };
    }
    s.sslrootcert = o.text("sslrootcert")?;
    if let Some(n) = o.integer("pool_size")? {
        s.pool_size = usize::try_from(n).unwrap_or(16);
    }
    s.unknown_as_text = o.text("unknown_types")?.as_deref() == Some("text");
    s.schema = o.text("schema")?;
    if let Some(v) = o.text("host")? {
        s.host_is_path = v.starts_with('/');
        s.host = v;
    }
    if let Some(v) = o.text("user")? {
        s.user = v;
    }
    if let Some(v) = o.text("dbname")? {
        s.dbname = v;
    }
    if let Some(p) = o.integer("port")? {
        s.port = u16::try_from(p).map_err(|_| bad(format!("port {p} is out of range")))?;
    }
    if let Some(t) = o.duration("connect_timeout")? {
        s.connect_timeout = t.max(Duration::from_secs(1));
    }
    if s.user.is_empty() {
        s.user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "postgres".into());
    }
    if s.dbname.is_empty() {
        s.dbname = s.user.clone();
    }
    if s.password.is_none() {
        s.password = options
            .password
            .clone()
            .or_else(|| std::env::var("PGPASSWORD").ok().map(SecretString::from));
    }
    Ok(s)
}

/// A URL component (user, password, database) percent-decoded as in RFC 3986: `%2B` is `+`
/// and a `+` stays a `+` (it means a space only in form-encoded query strings).
fn percent(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A certificate verifier that accepts any certificate (libpq's `require`/`prefer`:
/// encryption without authentication of the server).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(s: &Settings) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("TLS setup failed: {e}")).with_backend(BACKEND))?;
    match s.sslmode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let mut roots = rustls::RootCertStore::empty();
            if let Some(path) = &s.sslrootcert {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::io(format!("cannot read sslrootcert '{path}'"), e).with_backend(BACKEND)
                })?;
                let mut added = 0;
                for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                    let cert: rustls::pki_types::CertificateDer<'static> = cert.map_err(|e| {
                        Error::config(format!(
                            "sslrootcert '{path}' is not a PEM certificate file: {e}"
                        ))
                        .with_backend(BACKEND)
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::config(format!("sslrootcert '{path}': {e}")).with_backend(BACKEND)
                    })?;
                    added += 1;
                }
                if added == 0 {
                    return Err(Error::config(format!(
                        "sslrootcert '{path}' holds no certificate"
                    ))
                    .with_backend(BACKEND));
                }
            } else {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            // verify-ca checks the chain but not the host name; rustls always checks both,
            // so verify-ca is as strict as verify-full here (documented).
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
    }
}

/// Turns a tokio-postgres error into a one-line dataknobs error.
/// PostgreSQL's own report of an error, kept as the source of ours (what `pg_error` read
/// from the server: SQLSTATE, message, detail).
#[derive(Debug)]
struct ServerError {
    code: String,
    message: String,
    detail: Option<String>,
}

impl ServerError {
    fn of(db: &tokio_postgres::error::DbError) -> Self {
        ServerError {
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
        }
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The same words as the message of the error it is the source of, so Display does
        // not repeat them.
        write!(f, "{} [{}]", self.message, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, " ({})", d.replace('\n', " "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {}

pub(crate) fn pg_error(context: &str, e: &tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let kind = match code {
            "28P01" | "28000" => ErrorKind::Config,
            "3D000" | "42P01" | "3F000" => ErrorKind::NotFound,
            "23505" | "42P07" => ErrorKind::AlreadyExists,
            "57P01" | "57P02" | "57P03" | "08006" | "08003" => ErrorKind::Connection,
            "22P02" | "22003" | "22008" | "42804" | "23502" => ErrorKind::Type,
            _ => ErrorKind::Query,
        };
        let hint = match code {
            "28P01" => "; check the password (URL, password option or PGPASSWORD)",
            "3D000" => "; check the database name in the URL",
            "57P01" => {
                "; the connection was terminated by the server (the statement was rolled back)"
            }
            _ => "",
        };
        let detail = db
            .detail()
            .map(|d| format!(" ({})", d.replace('\n', " ")))
            .unwrap_or_default();
        if code == "23505"
            && let Some(d) = db.detail()
            && let Some(rest) = d.strip_prefix("Key (")
            && let Some((cols, rest)) = rest.split_once(")=(")
            && let Some((vals, _)) = rest.rsplit_once(") already exists")
        {
            return Error::new(
                kind,
                format!("{context}: a row with {cols} '{vals}' exists already [{code}]"),
            )
            .with_backend(BACKEND)
            .with_code(code)
            .with_source(ServerError::of(db));
        }
        return Error::new(
            kind,
            format!("{context}: {} [{code}]{detail}{hint}", db.message()),
        )
        .with_backend(BACKEND)
        .with_code(code)
        .with_source(ServerError::of(db));
    }
    let mut msg = e.to_string();
    let kind = if msg.contains("error serializing parameter") {
        ErrorKind::Type
    } else {
        ErrorKind::Connection
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    let text = msg.replace('\n', " ");
    Error::new(kind, format!("{context}: {text}"))
        .with_backend(BACKEND)
        .with_source(text)
}

/// Shared state of an attached database.
pub(crate) struct Inner {
    pub pool: Pool,
    location: String,
    pub unknown_as_text: bool,
    pub pool_size: usize,
    default_schema: String,
    cache: RwLock<BTreeMap<String, Vec<String>>>,
    /// Exported snapshots shared by the partitions of one scan, by scan id.
    pub snapshots: Mutex<HashMap<u64, Arc<table::SharedSnapshot>>>,
}

/// How long a pooled connection may sit unused before it is checked again before reuse (the
/// server or a proxy may have closed it meanwhile without the client noticing).
const IDLE_CHECK: Duration = Duration::from_secs(10);

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBackend")
            .field("location", &self.location)
            .finish()
    }
}

impl Inner {
    /// A pooled connection, with a clear error.
    pub async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => pg_error(
                &format!("cannot connect to PostgreSQL at {}", self.location),
                &e,
            ),
            deadpool_postgres::PoolError::Timeout(_) => Error::new(
                ErrorKind::Connection,
                format!(
                    "timed out waiting for a connection to {} (pool of {}); raise ?pool_size=",
                    self.location, self.pool_size
                ),
            )
            .with_backend(BACKEND),
            other => Error::new(
                ErrorKind::Connection,
                format!("cannot connect to PostgreSQL at {}: {other}", self.location),
            )
            .with_backend(BACKEND),
        })
    }

    /// Reloads the schema → tables cache.
    pub async fn refresh(&self) -> Result<()> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','v','m','p','f') \
                 AND n.nspname NOT IN ('pg_catalog','information_schema','pg_toast') \
                 AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
                 UNION ALL SELECT n.nspname::text, NULL FROM pg_namespace n \
                 WHERE n.nspname NOT IN ('pg_catalog','information_schema','pg_toast') \
                 AND n.nspname NOT LIKE 'pg\\_%'",
                &[],
            )
            .await
            .map_err(|e| pg_error("cannot list PostgreSQL tables", &e))?;
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in rows {
            let schema: String = r.get(0);
            let table: Option<String> = r.get(1);
            let e = map.entry(schema).or_default();
            if let Some(t) = table {
                e.push(t);
            }
        }
        for v in map.values_mut() {
            v.sort();
        }
        *self.cache.write() = map;
        Ok(())
    }

    fn remember(&self, schema: &str, name: &str, present: bool) {
        let mut cache = self.cache.write();
        let list = cache.entry(schema.to_string()).or_default();
        match (list.binary_search_by(|n| n.as_str().cmp(name)), present) {
            (Err(i), true) => list.insert(i, name.to_string()),
            (Ok(i), false) => {
                list.remove(i);
            }
            _ => {}
        }
    }

    /// Reads a relation's columns; None if it does not exist.
    pub async fn describe(&self, schema: &str, name: &str) -> Result<Option<table::Relation>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.relkind::text, \
                   (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8, \
                   a.attname::text, a.attnotnull, format_type(a.atttypid, a.atttypmod), \
                   (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END)::int8, \
                   (CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END)::int4, \
                   t.typtype::text, t.typcategory::text, t.typelem::int8, \
                   COALESCE(et.typtype::text, ''), \
                   COALESCE((SELECT true FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary \
                     AND i.indnatts = 1 AND i.indkey[0] = a.attnum), false), \
                   COALESCE((SELECT NOT co.collisdeterministic FROM pg_collation co \
                     WHERE co.oid = a.attcollation), false), \
                   a.atthasdef, a.attidentity::text, a.attgenerated::text \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A' \
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','v','m','p','f') \
                 ORDER BY a.attnum",
                &[&schema, &name],
            )
            .await
            .map_err(|e| pg_error(&format!("cannot read the columns of {schema}.{name}"), &e))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut columns = Vec::with_capacity(rows.len());
        let mut key = None;
        let mut relkind = String::new();
        let mut pages = 0i64;
        let mut rowid = false;
        for r in rows {
            relkind = r.get(0);
            pages = r.get(1);
            let name: String = r.get(2);
            let not_null: bool = r.get(3);
            let type_name: String = r.get(4);
            let oid: i64 = r.get(5);
            let typmod: i32 = r.get(6);
            let typtype: String = r.get(7);
            let category: String = r.get(8);
            let elem: i64 = r.get(9);
            let elem_typtype: String = r.get(10);
            let is_pk: bool = r.get(11);
            let nondeterministic: bool = r.get(12);
            let has_default: bool = r.get(13);
            let identity: String = r.get(14);
            let generated: String = r.get(15);
            let store_default = if !generated.is_empty() {
                Some(crate::database::StoreDefault::Generated)
            } else if identity == "a" {
                Some(crate::database::StoreDefault::Always)
            } else if identity == "d" || has_default {
                Some(crate::database::StoreDefault::Default)
            } else {
                None
            };
            let kind = if typtype == "e" {
                Kind::Enum
            } else if category == "A" && elem != 0 {
                let e = if elem_typtype == "e" {
                    Kind::Enum
                } else {
                    Kind::from_oid(elem as u32, typmod)
                };
                Kind::Array(Box::new(e))
            } else {
                Kind::from_oid(oid as u32, typmod)
            };
            if is_pk {
                key = Some(name.clone());
            }
            if name == table::ROWID {
                rowid = true;
                continue;
            }
            columns.push(PgColumn {
                name,
                kind,
                type_name,
                not_null,
                nondeterministic,
                store_default,
            });
        }
        self.remember(schema, name, true);
        Ok(Some(table::Relation {
            schema: schema.to_string(),
            name: name.to_string(),
            columns,
            key,
            relkind,
            pages: pages.max(0) as u64,
            rowid,
        }))
    }
}

/// An attached PostgreSQL database.
#[derive(Clone)]
pub struct PgBackend {
    inner: Arc<Inner>,
}

impl fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl PgBackend {
    /// Connects (checking the credentials and the database) and reads the list of tables.
    pub async fn connect(url: &Url, options: PgOptions) -> Result<PgBackend> {
        let s = parse_url(url, &options)?;
        let mut cfg = tokio_postgres::Config::new();
        if s.host_is_path {
            cfg.host_path(&s.host);
        } else {
            cfg.host(&s.host);
        }
        cfg.port(s.port)
            .user(&s.user)
            .dbname(&s.dbname)
            .application_name("dataknobs")
            .connect_timeout(s.connect_timeout)
            .keepalives(true);
        if let Some(p) = &s.password {
            cfg.password(p.expose_secret().as_bytes());
        }
        cfg.ssl_mode(match s.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let location = format!("{}:{}/{} as {}", s.host, s.port, s.dbname, s.user);
        // A connection in steady use is handed out as it is (a closed one never is); one idle
        // longer than IDLE_CHECK is checked with an empty query first (pre_recycle below), so
        // a single-record call costs its own round trip only.
        let mc = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if s.sslmode == SslMode::Disable {
            Manager::from_config(cfg, tokio_postgres::NoTls, mc)
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(&s)?);
            Manager::from_config(cfg, tls, mc)
        };
        let pool = Pool::builder(manager)
            .max_size(s.pool_size)
            .wait_timeout(Some(Duration::from_secs(60)))
            .create_timeout(Some(s.connect_timeout + Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .pre_recycle(deadpool_postgres::Hook::async_fn(|client, metrics| {
                Box::pin(async move {
                    if metrics.last_used() < IDLE_CHECK {
                        return Ok(());
                    }
                    client
                        .simple_query("")
                        .await
                        .map(|_| ())
                        .map_err(deadpool_postgres::HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| {
                Error::config(format!("cannot create the connection pool: {e}"))
                    .with_backend(BACKEND)
            })?;
        let mut inner = Inner {
            pool,
            location,
            unknown_as_text: s.unknown_as_text,
            pool_size: s.pool_size,
            default_schema: "public".into(),
            cache: RwLock::new(BTreeMap::new()),
            snapshots: Mutex::new(HashMap::new()),
        };
        let client = inner.client().await?;
        let row = client
            .query_one("SELECT COALESCE(current_schema(), 'public')::text", &[])
            .await
            .map_err(|e| pg_error("cannot read the current schema", &e))?;
        inner.default_schema = s.schema.clone().unwrap_or_else(|| row.get(0));
        drop(client);
        let backend = PgBackend {
            inner: Arc::new(inner),
        };
        backend.inner.refresh().await?;
        Ok(backend)
    }

    /// Re-reads the list of schemas and tables (after DDL made outside dataknobs).
    pub async fn refresh(&self) -> Result<()> {
        self.inner.refresh().await
    }

    /// Runs SQL directly in PostgreSQL (no result rows); returns the affected row count.
    pub async fn execute_native(&self, sql: &str) -> Result<u64> {
        let client = self.inner.client().await?;
        client
            .execute(sql, &[])
            .await
            .map_err(|e| pg_error("PostgreSQL statement failed", &e))
    }
}

#[async_trait]
impl Backend for PgBackend {
    fn kind(&self) -> &str {
        BACKEND
    }

    fn location(&self) -> String {
        format!("postgres://{}", self.inner.location)
    }

    fn default_schema(&self) -> String {
        self.inner.default_schema.clone()
    }

    fn schema_names(&self) -> Vec<String> {
        self.inner.cache.read().keys().cloned().collect()
    }

    fn collection_names(&self, schema: &str) -> Vec<String> {
        self.inner
            .cache
            .read()
            .get(schema)
            .cloned()
            .unwrap_or_default()
    }

    async fn open(&self, schema: &str, name: &str) -> Result<Option<Arc<dyn Database>>> {
        match self.inner.describe(schema, name).await? {
            Some(rel) => Ok(Some(Arc::new(PgTable::new(self.inner.clone(), rel)))),
            None => {
                self.inner.remember(schema, name, false);
                Ok(None)
            }
        }
    }

    async fn create_collection(
        &self,
        schema: &str,
        name: &str,
        spec: CollectionSpec,
        if_not_exists: bool,
    ) -> Result<Arc<dyn Database>> {
        sql::check_ident(schema)?;
        sql::check_ident(name)?;
        let mut cols = Vec::new();
        for f in spec.schema.fields() {
            sql::check_ident(f.name())?;
            let ty = types::pg_type_for(f)?;
            let mut c = format!("{} {ty}", sql::ident(f.name()));
            if !f.is_nullable() {
                c.push_str(" NOT NULL");
            }
            cols.push(c);
        }
        match &spec.key {
            Some(k) => cols.push(format!("PRIMARY KEY ({})", sql::ident(k))),
            // Rows of a keyless record collection get stable record ids from a hidden
            // identity column (not part of the SQL schema dataknobs shows).
            None if spec.record_ids => cols.push(format!(
                "{} bigint GENERATED ALWAYS AS IDENTITY",
                sql::ident(table::ROWID)
            )),
            None => {}
        }
        let stmt = format!(
            "CREATE TABLE {}{} ({})",
            if if_not_exists { "IF NOT EXISTS " } else { "" },
            sql::qualified(schema, name),
            cols.join(", ")
        );
        let client = self.inner.client().await?;
        client
            .execute(&stmt, &[])
            .await
            .map_err(|e| pg_error(&format!("cannot create table {schema}.{name}"), &e))?;
        drop(client);
        self.inner.remember(schema, name, true);
        self.open(schema, name).await?.ok_or_else(|| {
            Error::internal(format!(
                "table {schema}.{name} vanished right after CREATE TABLE"
            ))
            .with_backend(BACKEND)
        })
    }

    async fn drop_collection(&self, schema: &str, name: &str, if_exists: bool) -> Result<bool> {
        let client = self.inner.client().await?;
        let kind: Option<String> = client
            .query_opt(
                "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &name],
            )
            .await
            .map_err(|e| pg_error("cannot look up the table", &e))?
            .map(|r| r.get(0));
        let Some(kind) = kind else {
            self.inner.remember(schema, name, false);
            return crate::database::drop_missing(
                BACKEND,
                &format!("{schema}.{name}"),
                "in PostgreSQL",
                if_exists,
            );
        };
        let what = match kind.as_str() {
            "v" => "VIEW",
            "m" => "MATERIALIZED VIEW",
            "f" => "FOREIGN TABLE",
            _ => "TABLE",
        };
        client
            .execute(
                &format!("DROP {what} {}", sql::qualified(schema, name)),
                &[],
            )
            .await
            .map_err(|e| pg_error(&format!("cannot drop {schema}.{name}"), &e))?;
        self.inner.remember(schema, name, false);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(u: &str) -> Result<Settings> {
        parse_url(&Url::parse(u).unwrap(), &PgOptions::default())
    }

    #[test]
    fn url_options_are_typed_and_checked() {
        let s = parse(
            "postgres://u:p%2Bq+r@h:6543/db?sslmode=require&pool_size=4&connect_timeout=500ms&schema=x&unknown_types=text",
        )
        .unwrap();
        assert_eq!((s.host.as_str(), s.port, s.user.as_str()), ("h", 6543, "u"));
        assert_eq!(s.password.as_ref().unwrap().expose_secret(), "p+q+r");
        assert_eq!(s.sslmode, SslMode::Require);
        assert_eq!(s.pool_size, 4);
        assert_eq!(
            s.connect_timeout,
            Duration::from_secs(1),
            "at least a second"
        );
        assert_eq!(s.schema.as_deref(), Some("x"));
        assert!(s.unknown_as_text);
        let d = parse("postgres://u@h/db").unwrap();
        assert_eq!(
            (d.sslmode, d.pool_size, d.connect_timeout),
            (SslMode::Prefer, 16, Duration::from_secs(10))
        );
        for (url, words) in [
            (
                "postgres://h/db?pool_size=1",
                "'pool_size' takes a whole number from 2 to 1000",
            ),
            (
                "postgres://h/db?sslmode=maybe",
                "one of disable, allow, prefer",
            ),
            (
                "postgres://h/db?nope=1",
                "unknown postgres URL option 'nope'; known: sslmode",
            ),
            (
                "postgres://h/db?password=hunter2",
                "do not put the password in the URL query",
            ),
            (
                "postgres://h/db?connect_timeout=soon",
                "'connect_timeout' takes a duration",
            ),
        ] {
            let e = parse(url).err().unwrap().to_string();
            assert!(e.contains(words), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
