//! The Redis backend (issue 15): `redis://[user[:password]@]host[:port][/db]` attaches one
//! Redis database; each hash in it is a table (see [`crate::kv::table`]: a `key` column
//! plus the record's JSON fields, or the columns a `CREATE TABLE` declared). The password
//! comes from the URL or, when the URL has none, from `REDIS_PASSWORD`. `rediss://` connects
//! over TLS (the server's certificate checked against the system's CAs, or `ca_file`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use url::Url;

use crate::config::{BackendKind, OptionKind, OptionSpec, UrlOptions};
use crate::database::Backend;
use crate::error::{Error, Result};
use crate::kv::table::{KvBackend, KvSettings};
use crate::kv::{ConnectionMode, ConnectorConfig, PoolSettings, RedisKeyValueStore, TlsSettings};

pub const BACKEND: &str = "redis";

/// The `redis://` backend kind.
#[derive(Debug)]
pub struct RedisKind;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new(
        "prefix",
        OptionKind::Text,
        "a namespace in a shared database: table t is the hash <prefix>t, and only hashes \
         starting with the prefix are tables",
    ),
    OptionSpec::new(
        "mode",
        OptionKind::Choice(&["single", "pooled"]),
        "single: one connection shared by all queries (commands multiplexed); pooled: a pool \
         of connections",
    )
    .default("single"),
    OptionSpec::new(
        "max_connections",
        OptionKind::Integer {
            min: 1,
            max: 10_000,
        },
        "pooled: the most connections open at once",
    )
    .default("10"),
    OptionSpec::new(
        "connection_timeout",
        OptionKind::Duration,
        "pooled: the longest a query waits for a free connection",
    )
    .default("30s"),
    OptionSpec::new(
        "idle_timeout",
        OptionKind::Duration,
        "pooled: connections unused this long are closed (0: never)",
    )
    .default("10m"),
    OptionSpec::new(
        "connect_timeout",
        OptionKind::Duration,
        "the longest connecting and authenticating may take",
    )
    .default("5s"),
    OptionSpec::new(
        "timeout",
        OptionKind::Duration,
        "the longest one command may wait for its answer (0: no limit)",
    )
    .default("60s"),
    OptionSpec::new(
        "sample",
        OptionKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        "records read to infer the columns of a hash that no CREATE TABLE declared",
    )
    .default("1000"),
    OptionSpec::new(
        "scan_batch",
        OptionKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        "fields asked for per HSCAN (its COUNT)",
    )
    .default("4096"),
    OptionSpec::new(
        "write_batch",
        OptionKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        "rows INSERT writes per request (a pipeline of HSETNX)",
    )
    .default("1000"),
    OptionSpec::new(
        "verify_tls",
        OptionKind::Bool,
        "check the server's TLS certificate and name (rediss://)",
    )
    .default("true"),
    OptionSpec::new(
        "ca_file",
        OptionKind::Text,
        "a PEM file of CA certificates to trust (rediss://)",
    ),
];

fn percent_decoded(s: &str) -> String {
    // URL user info: %XX escapes only (`+` and `&` are themselves, unlike in a query).
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The connection settings, pool settings and table settings of a `redis://` URL.
pub fn settings_from_url(
    url: &Url,
    options: &UrlOptions,
) -> Result<(ConnectorConfig, ConnectionMode, PoolSettings, KvSettings)> {
    let bad = |m: String| Error::config(m).with_backend(BACKEND);
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            bad("a redis:// URL needs a host: redis://host:port/db (rediss:// for TLS)".into())
        })?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port().unwrap_or(6379);
    let db = url.path().trim_matches('/').to_string();
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(bad(format!(
            "'{db}' is not a Redis database number: redis://host:port/<number>, e.g. /0"
        )));
    }
    let mut config = ConnectorConfig::new(host, port);
    config.db = (!db.is_empty()).then_some(db);
    if !url.username().is_empty() {
        config.username = Some(percent_decoded(url.username()));
    }
    config.password = match url.password() {
        Some(p) => Some(SecretString::from(percent_decoded(p))),
        None => std::env::var("REDIS_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(SecretString::from),
    };
    let duration = |name: &str, default: u64| -> Result<Duration> {
        Ok(options
            .duration(name)?
            .unwrap_or(Duration::from_secs(default)))
    };
    let verify = options.bool("verify_tls")?;
    let ca_file = options.text("ca_file")?;
    config.tls = match url.scheme() {
        "rediss" => Some(TlsSettings {
            verify: verify.unwrap_or(true),
            ca_file: ca_file.map(std::path::PathBuf::from),
        }),
        _ if options.is_set("verify_tls") || ca_file.is_some() => {
            return Err(bad(
                "verify_tls and ca_file are TLS settings: use a rediss:// URL for TLS".into(),
            ));
        }
        _ => None,
    };
    config.connect_timeout = duration("connect_timeout", 5)?;
    let timeout = duration("timeout", 60)?;
    config.response_timeout = (!timeout.is_zero()).then_some(timeout);
    let (mode, pool) = crate::kv::table::manager_options(options)?;
    let table =
        KvSettings::from_options(options, options.text("prefix")?.unwrap_or_default(), 4096)?;
    Ok((config, mode, pool, table))
}

#[async_trait]
impl BackendKind for RedisKind {
    fn name(&self) -> &'static str {
        BACKEND
    }
    fn schemes(&self) -> &'static [&'static str] {
        &["redis", "rediss"]
    }
    fn description(&self) -> &'static str {
        "Redis hashes as tables: one hash per table, the field its key, the value a JSON record"
    }
    fn persistent(&self) -> bool {
        true
    }
    fn example_url(&self) -> &'static str {
        "redis://127.0.0.1:6379/0"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    async fn open(&self, url: &Url, options: &UrlOptions) -> Result<Arc<dyn Backend>> {
        let (config, mode, pool, table) = settings_from_url(url, options)?;
        let store = RedisKeyValueStore::connect(config, mode, pool).await?;
        Ok(Arc::new(KvBackend::open(Arc::new(store), table).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn parse(url: &str) -> Result<(ConnectorConfig, ConnectionMode, PoolSettings, KvSettings)> {
        let u = Url::parse(url).expect("url");
        let options = UrlOptions::parse(BACKEND, &u, OPTIONS)?;
        settings_from_url(&u, &options)
    }

    #[test]
    fn a_url_gives_host_port_db_credentials_and_options() {
        let (c, mode, pool, table) = parse(
            "redis://app:p%40ss@cache.local:6380/3?mode=pooled&max_connections=4&\
             idle_timeout=0&scan_batch=100",
        )
        .expect("parse");
        assert_eq!((c.host.as_str(), c.port), ("cache.local", 6380));
        assert_eq!(c.db.as_deref(), Some("3"));
        assert_eq!(c.username.as_deref(), Some("app"));
        assert_eq!(
            c.password.as_ref().map(|p| p.expose_secret().to_string()),
            Some("p@ss".to_string())
        );
        assert_eq!(mode, ConnectionMode::Pooled);
        assert_eq!(pool.max_connections, 4);
        assert_eq!(pool.idle_timeout, None);
        assert_eq!(table.scan_batch, 100);
        let (c, mode, ..) = parse("redis://localhost").expect("parse");
        assert_eq!(
            (c.port, c.db.clone(), mode),
            (6379, None, ConnectionMode::Single)
        );
    }

    #[test]
    fn a_password_keeps_plus_and_ampersand() {
        let (c, ..) = parse("redis://u:p+s%25s&x@h:1/0").expect("parse");
        assert_eq!(
            c.password.as_ref().map(|p| p.expose_secret().to_string()),
            Some("p+s%s&x".to_string())
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let err = parse("redis://h:1/zero").expect_err("db");
        assert!(err.to_string().contains("database number"), "{err}");
        let err = parse("redis://h:1/0?mode=many").expect_err("mode");
        assert!(err.to_string().contains("mode"), "{err}");
        let err = parse("redis://h:1/0?pool=3").expect_err("unknown");
        assert!(err.to_string().contains("unknown"), "{err}");
    }
}
