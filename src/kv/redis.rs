//! The Redis key-value store (the seed's `RedisStoreBackend` and `RedisConnector`): one
//! Redis hash per schema, the record's key its field, the record's JSON its value.
//!
//! Writes that must not race are single commands or Lua scripts, which Redis runs whole:
//! insert is `HSETNX` (a batch: one script that checks every key, then writes them all),
//! update checks `HEXISTS` and writes in one script, a compare-and-set compares the old
//! value in the script. Reads of many keys are one `HMGET` (several, pipelined, for very
//! many keys). A scan's first request is `HSCAN 0` with the hash's `HLEN` and `MEMORY
//! USAGE`: a hash of one batch is done; a small one ([`WholeHash`]) is read by one `HGETALL`
//! (a third of `HSCAN`'s server time); a larger one walks `HSCAN`, asking for the next batch
//! while the caller decodes the last one, and drops the keys `HSCAN` may return twice.
//!
//! Commands go through a [`ConnectorManager`]: one multiplexed connection shared by every
//! caller ([`ConnectionMode::Single`]) or a pool. A command that fails because the
//! connection dropped marks it broken, so the next call connects again; a read is retried
//! once on a fresh connection at once.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, RedisConnectionInfo, RedisError, Value};
use secrecy::ExposeSecret;

use super::connect::{
    ConnectionMode, Connector, ConnectorConfig, ConnectorManager, ConnectorManagerFactory,
    PoolSettings,
};
use super::resp::{Hello, MAX_RESERVE, OwnConn};
use super::{KeyValueStore, MoveConflict, already_exists};
use crate::error::{Error, ErrorKind, Result};

const KIND: &str = "redis";

/// Keys per `HMGET` and field-value pairs per `HSET` (a pipeline carries as many as needed).
const KEYS_PER_COMMAND: usize = 4096;

/// Inserts every pair `ARGV[i], ARGV[i+1]` into hash `KEYS[1]` unless one of the fields
/// exists: then writes nothing and returns that field.
const INSERT_ALL: &str = r"
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then return ARGV[i] end
end
local n = #ARGV
for i = 1, n, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, n)))
end
return false
";

/// Sets field `ARGV[1]` of hash `KEYS[1]` to `ARGV[2]` only when it exists; 1 when written.
const REPLACE: &str = r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
";

/// Sets field `ARGV[1]` of hash `KEYS[1]` to `ARGV[2]` only while it holds `ARGV[3]`.
const COMPARE_AND_SET: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[3] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
";

/// Deletes hash `KEYS[1]` (refusing a key of another type) and returns how many fields it had.
const DROP: &str = r"
local n = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
";

/// Moves fields of hash `KEYS[1]`: `ARGV` holds (old, expected, new, value) quadruples.
/// Unless every old field holds its expected value and every new field is free or moving,
/// writes nothing and returns `c:<old>` or `t:<new>`.
const MOVE: &str = r"
local n = #ARGV
local olds = {}
for i = 1, n, 4 do olds[ARGV[i]] = true end
for i = 1, n, 4 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then return 'c:' .. ARGV[i] end
  if not olds[ARGV[i + 2]] and redis.call('HEXISTS', KEYS[1], ARGV[i + 2]) == 1 then
    return 't:' .. ARGV[i + 2]
  end
end
for i = 1, n, 4 do redis.call('HDEL', KEYS[1], ARGV[i]) end
for i = 1, n, 4 do redis.call('HSET', KEYS[1], ARGV[i + 2], ARGV[i + 3]) end
return false
";

static MOVE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(MOVE));
/// Deletes each field `ARGV[i]` of hash `KEYS[1]` only while it holds `ARGV[i+1]`; returns
/// how many.
const DELETE_EXACT: &str = r"
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
";

static DELETE_EXACT_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(DELETE_EXACT));
static INSERT_ALL_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(INSERT_ALL));
static REPLACE_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(REPLACE));
static CAS_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(COMPARE_AND_SET));
static DROP_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(DROP));

/// `redis://host:port/db`, for messages (never the password).
fn shown(config: &ConnectorConfig) -> String {
    let user = config
        .username
        .as_ref()
        .map(|u| format!(" as user '{u}'"))
        .unwrap_or_default();
    format!(
        "{}://{}:{}/{}{user}",
        if config.tls.is_some() {
            "rediss"
        } else {
            "redis"
        },
        config.host,
        config.port,
        config.db.as_deref().unwrap_or("0")
    )
}

/// Did a TLS handshake fail on the server's certificate?
fn tls_refused(text: &str) -> bool {
    [
        "UnknownIssuer",
        "invalid peer certificate",
        "NotValidForName",
        "BadSignature",
    ]
    .iter()
    .any(|n| text.contains(n))
}

/// Did the connection break (so that it must not be used again)?
fn connection_broke(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        // A reply that does not convert is the caller's problem, not the connection's.
        || (e.is_unrecoverable_error() && e.kind() != redis::ErrorKind::Parse)
}

/// A Redis error as ours: what failed (`doing`), where (`at`), and what to do.
pub fn redis_error(at: &str, doing: &str, e: &RedisError) -> Error {
    // A pipeline's failure carries the command's error code in its text only.
    let text = e.to_string();
    let code = e
        .code()
        .or_else(|| {
            ["WRONGTYPE", "NOPERM", "WRONGPASS", "NOAUTH"]
                .into_iter()
                .find(|c| text.contains(c))
        })
        .unwrap_or_default();
    let (kind, hint) = if text.contains("DB index is out of range") {
        (
            ErrorKind::Config,
            "; the server has fewer databases (its `databases` setting)",
        )
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(code, "WRONGPASS" | "NOAUTH")
    {
        (
            ErrorKind::Config,
            "; check the user name and password (in the URL, or REDIS_PASSWORD)",
        )
    } else if code == "NOPERM" {
        (
            ErrorKind::Config,
            "; the user's ACL does not allow this command or key",
        )
    } else if code == "WRONGTYPE" {
        (
            ErrorKind::Type,
            "; the key holds another kind of value than a hash of records",
        )
    } else if tls_refused(&text) {
        (
            ErrorKind::Connection,
            "; the server's TLS certificate is not trusted: give its CA with \
             ca_file=<PEM file>, or turn checking off with verify_tls=false",
        )
    } else if e.is_connection_refusal() {
        (
            ErrorKind::Connection,
            "; is the Redis server running there?",
        )
    } else if e.is_timeout() {
        (
            ErrorKind::Connection,
            "; the server did not answer in time (response timeout)",
        )
    } else if connection_broke(e) {
        (
            ErrorKind::Connection,
            "; the connection dropped (the next call connects again)",
        )
    } else {
        (ErrorKind::Query, "")
    };
    Error::new(kind, format!("{doing} at {at}: {e}{hint}")).with_backend(KIND)
}

/// The database number of `config` (0 when none is given).
fn db_number(config: &ConnectorConfig) -> Result<i64> {
    match config.db.as_deref() {
        None | Some("") => Ok(0),
        Some(d) => d.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            Error::config(format!(
                "the Redis database '{d}' is not a number (redis://host:port/<db>, e.g. /0)"
            ))
            .with_backend(KIND)
        }),
    }
}

/// One connection to a Redis server (the seed's `RedisConnector`): a multiplexed
/// connection, which carries the commands of many callers at once.
pub struct RedisConnector {
    config: ConnectorConfig,
    db: i64,
    conn: Option<MultiplexedConnection>,
}

impl std::fmt::Debug for RedisConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnector")
            .field("at", &shown(&self.config))
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

#[async_trait]
impl Connector for RedisConnector {
    type Client = MultiplexedConnection;

    fn new(config: ConnectorConfig) -> Result<Self> {
        let db = db_number(&config)?;
        if config.host.is_empty() {
            return Err(Error::config("a Redis connection needs a host").with_backend(KIND));
        }
        if let (Some(user), None) = (&config.username, &config.password) {
            return Err(Error::config(format!(
                "the Redis user '{user}' is given without a password (Redis authenticates a \
                 user only with one): put it in the URL (redis://{user}:PASSWORD@host) or in \
                 REDIS_PASSWORD"
            ))
            .with_backend(KIND));
        }
        Ok(RedisConnector {
            config,
            db,
            conn: None,
        })
    }

    fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    async fn connect(&mut self) -> Result<()> {
        let c = &self.config;
        let mut settings = RedisConnectionInfo::default().set_db(self.db);
        if let Some(u) = &c.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &c.password {
            settings = settings.set_password(p.expose_secret());
        }
        let addr = match &c.tls {
            None => ConnectionAddr::Tcp(c.host.clone(), c.port),
            Some(tls) => ConnectionAddr::TcpTls {
                host: c.host.clone(),
                port: c.port,
                insecure: !tls.verify,
                tls_params: None,
            },
        };
        let info = redis::IntoConnectionInfo::into_connection_info(addr)
            .map(|i| i.set_redis_settings(settings))
            .map_err(|e| redis_error(&shown(c), "configuring the connection", &e))?;
        let client = match c.tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
            None => redis::Client::open(info),
            Some(ca) => {
                let pem = std::fs::read(ca).map_err(|e| {
                    Error::config(format!(
                        "cannot read the CA file {} (option ca_file): {e}",
                        ca.display()
                    ))
                    .with_backend(KIND)
                })?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
        }
        .map_err(|e| redis_error(&shown(c), "configuring the connection", &e))?;
        let conf = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(c.connect_timeout))
            .set_response_timeout(c.response_timeout);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&conf)
            .await
            .map_err(|e| redis_error(&shown(c), "connecting", &e))?;
        if let Some(name) = &c.client_name {
            redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(name)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| redis_error(&shown(c), "naming the connection", &e))?;
        }
        self.conn = Some(conn);
        Ok(())
    }

    async fn disconnect(&mut self) -> Result<()> {
        self.conn = None;
        Ok(())
    }

    async fn is_connected(&mut self) -> bool {
        match &mut self.conn {
            Some(c) => redis::cmd("PING").query_async::<String>(c).await.is_ok(),
            None => false,
        }
    }

    fn client(&self) -> Result<MultiplexedConnection> {
        self.conn.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Connection,
                format!("not connected to {}", shown(&self.config)),
            )
            .with_backend(KIND)
        })
    }
}

/// Records in Redis hashes, one per schema.
#[derive(Debug)]
pub struct RedisKeyValueStore {
    manager: Arc<ConnectorManager<RedisConnector>>,
    shown: String,
    whole: WholeHash,
    /// The scans' own connections (plain TCP only; None over TLS).
    own: Option<Arc<OwnConns>>,
}

impl RedisKeyValueStore {
    /// A store over connections made by `manager`.
    pub fn new(manager: ConnectorManager<RedisConnector>) -> Self {
        let shown = shown(manager.config());
        let config = manager.config();
        let own = match (&config.tls, db_number(config)) {
            (None, Ok(db)) => Some(Arc::new(OwnConns {
                config: config.clone(),
                db,
                idle: parking_lot::Mutex::new(Vec::new()),
            })),
            _ => None,
        };
        RedisKeyValueStore {
            manager: Arc::new(manager),
            shown,
            whole: WholeHash::default(),
            own,
        }
    }

    /// Sets how large a hash a scan reads by one `HGETALL` (default: 32,768 fields and
    /// 16 MiB); larger ones are read by `HSCAN`, batch by batch.
    pub fn with_whole_hash(mut self, whole: WholeHash) -> Self {
        self.whole = whole;
        self
    }

    /// Connects to `config` in `mode` and checks the server answers (so that a wrong
    /// password or an unreachable server is an error now, not at first use).
    pub async fn connect(
        config: ConnectorConfig,
        mode: ConnectionMode,
        pool: PoolSettings,
    ) -> Result<Self> {
        let manager =
            ConnectorManagerFactory::create_manager::<RedisConnector>(config, mode, pool)?;
        let store = RedisKeyValueStore::new(manager);
        store
            .run("checking the connection", true, |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await?;
        Ok(store)
    }

    /// The connection manager.
    pub fn manager(&self) -> &ConnectorManager<RedisConnector> {
        &self.manager
    }

    /// Runs `f` on a connection (see [`send_on`]).
    async fn run<T, F, Fut>(&self, doing: &str, idempotent: bool, f: F) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        send_on(&self.manager, &self.shown, None, doing, idempotent, f).await
    }

    /// Every key of the database that holds a hash.
    async fn hash_keys(&self) -> Result<Vec<String>> {
        let mut cursor: u64 = 0;
        let mut out = HashSet::new();
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run("listing hashes", true, |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(1000)
                        .arg("TYPE")
                        .arg("hash")
                        .query_async(&mut c)
                        .await
                })
                .await?;
            out.extend(
                keys.into_iter()
                    .map(|k| String::from_utf8_lossy(&k).into_owned()),
            );
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut names: Vec<String> = out.into_iter().collect();
        names.sort();
        Ok(names)
    }
}

/// One `HSCAN` reply: the next cursor and the (field, value) pairs.
fn hscan_reply(v: Value) -> std::result::Result<(u64, Vec<(String, Bytes)>), String> {
    let Value::Array(mut parts) = v else {
        return Err(format!("HSCAN answered {v:?}"));
    };
    if parts.len() != 2 {
        return Err(format!("HSCAN answered {} parts, not 2", parts.len()));
    }
    let items = parts.pop().unwrap_or(Value::Nil);
    let cursor = match parts.pop() {
        Some(Value::BulkString(b)) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok()),
        Some(Value::Int(i)) => u64::try_from(i).ok(),
        _ => None,
    }
    .ok_or("HSCAN answered no cursor")?;
    Ok((cursor, field_values("HSCAN", items)?))
}

/// A field name as text, or an error saying it is not.
fn field_name(b: &[u8]) -> std::result::Result<String, String> {
    std::str::from_utf8(b).map(str::to_owned).map_err(|_| {
        format!(
            "a field name is not UTF-8 ({}); dataknobs reads hashes whose field names are text",
            String::from_utf8_lossy(b).escape_debug()
        )
    })
}

/// The (field, value) pairs of an `HSCAN` or `HGETALL` reply (`command` names it in errors):
/// a flat array (RESP2) or a map (RESP3).
fn field_values(command: &str, items: Value) -> std::result::Result<Vec<(String, Bytes)>, String> {
    let items = match items {
        Value::Array(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => return Err(format!("{command} answered {other:?} for the fields")),
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let key = match k {
            Value::BulkString(b) => field_name(&b)?,
            Value::SimpleString(s) => s,
            other => return Err(format!("{command} answered {other:?} for a field")),
        };
        let value = match v {
            Value::BulkString(b) => Bytes::from(b),
            Value::SimpleString(s) => Bytes::from(s),
            other => return Err(format!("{command} answered {other:?} for a value")),
        };
        out.push((key, value));
    }
    Ok(out)
}

#[async_trait]
impl KeyValueStore for RedisKeyValueStore {
    fn kind(&self) -> &str {
        KIND
    }

    fn location(&self) -> String {
        self.shown.clone()
    }

    async fn schemas(&self) -> Result<Vec<String>> {
        self.hash_keys().await
    }

    async fn exists(&self, schema: &str, key: &str) -> Result<bool> {
        let doing = format!("HEXISTS {schema} {key}");
        self.run(&doing, true, |mut c| async move {
            redis::cmd("HEXISTS")
                .arg(schema)
                .arg(key)
                .query_async::<bool>(&mut c)
                .await
        })
        .await
    }

    async fn count(&self, schema: &str) -> Result<u64> {
        let doing = format!("HLEN {schema}");
        self.run(&doing, true, |mut c| async move {
            redis::cmd("HLEN")
                .arg(schema)
                .query_async::<u64>(&mut c)
                .await
        })
        .await
    }

    async fn get_many(&self, schema: &str, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if let [key] = keys {
            let doing = format!("HGET {schema} {key}");
            let got: Option<Vec<u8>> = self
                .run(&doing, true, |mut c| async move {
                    redis::cmd("HGET")
                        .arg(schema)
                        .arg(key)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            return Ok(vec![got.map(Bytes::from)]);
        }
        let doing = format!("HMGET {schema} ({} keys)", keys.len());
        let mut pipe = redis::pipe();
        for chunk in keys.chunks(KEYS_PER_COMMAND) {
            pipe.cmd("HMGET").arg(schema).arg(chunk);
        }
        let pipe = &pipe;
        let replies: Vec<Vec<Option<Vec<u8>>>> = self
            .run(&doing, true, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        let out: Vec<Option<Bytes>> = replies
            .into_iter()
            .flatten()
            .map(|v| v.map(Bytes::from))
            .collect();
        if out.len() != keys.len() {
            return Err(Error::internal(format!(
                "{doing} answered {} values for {} keys",
                out.len(),
                keys.len()
            )));
        }
        Ok(out)
    }

    async fn insert_many(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<()> {
        let mut seen = HashSet::with_capacity(entries.len());
        for (k, _) in entries {
            if !seen.insert(k.as_str()) {
                return Err(already_exists(KIND, schema, k));
            }
        }
        match entries {
            [] => Ok(()),
            [(key, value)] => {
                let doing = format!("HSETNX {schema} {key}");
                let written: bool = self
                    .run(&doing, false, |mut c| async move {
                        redis::cmd("HSETNX")
                            .arg(schema)
                            .arg(key)
                            .arg(value.as_ref())
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                if written {
                    Ok(())
                } else {
                    Err(already_exists(KIND, schema, key))
                }
            }
            _ => {
                let doing = format!("inserting {} records into hash {schema}", entries.len());
                let taken: Option<String> = self
                    .run(&doing, false, |mut c| async move {
                        let mut call = INSERT_ALL_SCRIPT.key(schema);
                        for (k, v) in entries {
                            call.arg(k).arg(v.as_ref());
                        }
                        call.invoke_async(&mut c).await
                    })
                    .await?;
                match taken {
                    None => Ok(()),
                    Some(k) => Err(already_exists(KIND, schema, &k)),
                }
            }
        }
    }

    async fn put_new(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<Vec<bool>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let doing = format!("HSETNX {schema} ({} records)", entries.len());
        let mut pipe = redis::pipe();
        for (k, v) in entries {
            pipe.cmd("HSETNX").arg(schema).arg(k).arg(v.as_ref());
        }
        let pipe = &pipe;
        let set: Vec<i64> = self
            .run(&doing, false, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        Ok(set.into_iter().map(|n| n == 1).collect())
    }

    async fn put_many(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let doing = format!("HSET {schema} ({} records)", entries.len());
        let mut pipe = redis::pipe();
        for chunk in entries.chunks(KEYS_PER_COMMAND) {
            let cmd = pipe.cmd("HSET").arg(schema);
            for (k, v) in chunk {
                cmd.arg(k).arg(v.as_ref());
            }
            cmd.ignore();
        }
        let pipe = &pipe;
        // Setting the same values again is harmless: retried when the connection drops.
        self.run(&doing, true, |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    async fn replace(
        &self,
        schema: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: Bytes,
    ) -> Result<bool> {
        let doing = format!("updating {key} of hash {schema}");
        let value = &value;
        let written: i64 = self
            .run(&doing, false, |mut c| async move {
                match expected {
                    None => {
                        REPLACE_SCRIPT
                            .key(schema)
                            .arg(key)
                            .arg(value.as_ref())
                            .invoke_async(&mut c)
                            .await
                    }
                    Some(old) => {
                        CAS_SCRIPT
                            .key(schema)
                            .arg(key)
                            .arg(value.as_ref())
                            .arg(old)
                            .invoke_async(&mut c)
                            .await
                    }
                }
            })
            .await?;
        Ok(written == 1)
    }

    async fn move_many(
        &self,
        schema: &str,
        moves: &[(String, Bytes, String, Bytes)],
    ) -> Result<Option<MoveConflict>> {
        if moves.is_empty() {
            return Ok(None);
        }
        let doing = format!("moving {} records of hash {schema}", moves.len());
        let conflict: Option<String> = self
            .run(&doing, false, |mut c| async move {
                let mut call = MOVE_SCRIPT.key(schema);
                for (old, expected, new, value) in moves {
                    call.arg(old)
                        .arg(expected.as_ref())
                        .arg(new)
                        .arg(value.as_ref());
                }
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(conflict.map(|c| match c.split_once(':') {
            Some(("t", k)) => MoveConflict::Taken(k.to_string()),
            Some((_, k)) => MoveConflict::Changed(k.to_string()),
            None => MoveConflict::Changed(c),
        }))
    }

    async fn delete_many(&self, schema: &str, keys: &[String]) -> Result<Vec<bool>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let doing = format!("HDEL {schema} ({} keys)", keys.len());
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("HDEL").arg(schema).arg(k);
        }
        let pipe = &pipe;
        let deleted: Vec<i64> = self
            .run(&doing, false, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        Ok(deleted.into_iter().map(|n| n > 0).collect())
    }

    async fn delete_exact(&self, schema: &str, entries: &[(String, Bytes)]) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        let doing = format!("removing {} records of hash {schema}", entries.len());
        // Deleting what still holds our value twice is harmless: retried on a new connection.
        self.run(&doing, true, |mut c| async move {
            let mut call = DELETE_EXACT_SCRIPT.key(schema);
            for (k, v) in entries {
                call.arg(k).arg(v.as_ref());
            }
            call.invoke_async::<u64>(&mut c).await
        })
        .await
    }

    async fn drop_schema(&self, schema: &str) -> Result<u64> {
        let doing = format!("deleting hash {schema}");
        self.run(&doing, false, |mut c| async move {
            DROP_SCRIPT.key(schema).invoke_async::<u64>(&mut c).await
        })
        .await
    }

    async fn scan(
        &self,
        schema: &str,
        batch: usize,
    ) -> Result<BoxStream<'static, Result<Vec<(String, Bytes)>>>> {
        let count = batch.max(1);
        // A connection now, so that an unreachable server fails the call itself: over plain
        // TCP one of the scans' own (an idle one, whose failure comes in the stream after one
        // retry on a new connection, or a new one), else one of the manager's.
        let (first, own) = match &self.own {
            Some(pool) => {
                let conn = pool.take().await.map_err(|e| {
                    redis_error(&self.shown, &format!("connecting to scan {schema}"), &e)
                })?;
                (None, Some(conn))
            }
            None => (Some(self.manager.get().await?), None),
        };
        let manager = self.manager.clone();
        let schema = schema.to_string();
        let at = self.shown.clone();
        let whole = self.whole;
        let pool = self.own.clone();
        // The next batch is asked for while the caller works on the last one.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<(String, Bytes)>>>(2);
        tokio::spawn(async move {
            let mut scan = Scan {
                manager,
                first,
                pool,
                own,
                schema,
                at,
                count,
            };
            // The first batch, with the hash's size: a hash that fits one batch is one
            // request; a small one is read whole by one HGETALL (a third of HSCAN's server
            // time), a large one batch by batch.
            let (mut cursor, items, size) = match scan.first_batch().await {
                Ok(v) => v,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if cursor != 0 && whole.allows(size) {
                // HGETALL has the first batch's fields again (and any written since).
                let sent: HashSet<String> = items.iter().map(|(k, _)| k.clone()).collect();
                if tx.send(Ok(items)).await.is_err() {
                    return; // The reader stopped.
                }
                if let Err(e) = scan.rest_whole(&sent, &tx).await {
                    let _ = tx.send(Err(e)).await;
                }
                return;
            }
            // HSCAN may return a field twice (while Redis resizes the hash).
            let mut seen: HashSet<String> = HashSet::new();
            let mut items = items;
            loop {
                if cursor != 0 {
                    items.retain(|(k, _)| seen.insert(k.clone()));
                }
                if !items.is_empty() && tx.send(Ok(items)).await.is_err() {
                    return; // The reader stopped.
                }
                if cursor == 0 {
                    return;
                }
                match scan.hscan(cursor).await {
                    Ok((next, got)) => {
                        cursor = next;
                        items = got;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(tokio_stream_of(rx))
    }

    fn describe_scan(&self, schema: &str, batch: usize) -> String {
        format!(
            "HSCAN {schema} 0 COUNT {batch} with HLEN and MEMORY USAGE; the rest by one HGETALL \
             when the hash has at most {} fields and {} bytes, else HSCAN {schema} <cursor> \
             COUNT {batch} until the cursor is 0 (the next batch requested while the last one \
             is decoded){} at {}",
            self.whole.fields,
            self.whole.bytes,
            if self.own.is_some() {
                ", on a connection of the scan's own"
            } else {
                ""
            },
            self.shown
        )
    }

    fn describe_get(&self, schema: &str, keys: &[String]) -> String {
        if let [key] = keys {
            return format!("HGET {schema} {key} at {}", self.shown);
        }
        let shown: Vec<&str> = keys.iter().take(5).map(String::as_str).collect();
        let more = if keys.len() > 5 { " …" } else { "" };
        format!(
            "HMGET {schema} {}{more} ({} keys, one round trip) at {}",
            shown.join(" "),
            keys.len(),
            self.shown
        )
    }
}

/// How large a hash a scan reads whole, by one `HGETALL`, instead of batch by batch: Redis
/// sends it with a third of `HSCAN`'s server time, but blocks other clients while it does
/// (≈ 0.3 µs per field) and the reply is held whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeHash {
    /// At most this many fields.
    pub fields: u64,
    /// At most this many bytes (`MEMORY USAGE … SAMPLES 5`, an estimate).
    pub bytes: u64,
}

impl Default for WholeHash {
    fn default() -> Self {
        WholeHash {
            fields: 32_768,
            bytes: 16 << 20,
        }
    }
}

impl WholeHash {
    /// Whether a hash of `size` (fields, bytes; None where the server did not tell) is read
    /// whole.
    fn allows(&self, size: (Option<u64>, Option<u64>)) -> bool {
        matches!(size, (Some(n), Some(b)) if n <= self.fields && b <= self.bytes)
    }
}

/// The scans' own connections (plain TCP): idle ones are kept for the next scan.
struct OwnConns {
    config: ConnectorConfig,
    db: i64,
    idle: parking_lot::Mutex<Vec<OwnConn>>,
}

/// Idle own connections kept (more scans at once open more, closed when done).
const IDLE_OWN: usize = 2;

impl std::fmt::Debug for OwnConns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnConns")
            .field("idle", &self.idle.lock().len())
            .finish()
    }
}

impl OwnConns {
    /// A new connection.
    async fn open(&self) -> redis::RedisResult<OwnConn> {
        let c = &self.config;
        let hello = Hello {
            username: c.username.as_deref(),
            password: c.password.as_ref().map(|p| p.expose_secret()),
            db: self.db,
            client_name: c.client_name.as_deref(),
        };
        OwnConn::connect(
            &c.host,
            c.port,
            c.connect_timeout,
            c.response_timeout,
            hello,
        )
        .await
    }

    /// An idle connection, or a new one.
    async fn take(&self) -> redis::RedisResult<OwnConn> {
        let idle = self.idle.lock().pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.open().await,
        }
    }

    /// Keeps `conn` for the next scan when every reply it was asked for was read.
    fn give_back(&self, conn: OwnConn) {
        if conn.is_settled() {
            let mut idle = self.idle.lock();
            if idle.len() < IDLE_OWN {
                idle.push(conn);
            }
        }
    }
}

/// The requests of one scan: over plain TCP on a connection of its own ([`OwnConn`], whose
/// replies are read without copying), else on the scan's first connection of the manager or
/// a new one. A request is retried once on a new connection when the connection broke (a
/// read, and an HSCAN cursor is the server's state only); a streamed HGETALL only while none
/// of its pairs were handed on.
struct Scan {
    manager: Arc<ConnectorManager<RedisConnector>>,
    first: Option<super::connect::Lease<RedisConnector>>,
    /// Where own connections come from (None: the manager's are used).
    pool: Option<Arc<OwnConns>>,
    own: Option<OwnConn>,
    schema: String,
    at: String,
    count: usize,
}

impl Drop for Scan {
    fn drop(&mut self) {
        if let (Some(pool), Some(conn)) = (&self.pool, self.own.take()) {
            pool.give_back(conn);
        }
    }
}

/// A read of a reply on an own connection.
type OwnRead<T> = for<'c> fn(&'c mut OwnConn) -> BoxFuture<'c, redis::RedisResult<T>>;

impl Scan {
    /// Runs `f` on the scan's first connection, then on new ones; every request of a scan is
    /// a read, retried once when its connection broke.
    async fn send<T, F, Fut>(&mut self, doing: &str, f: F) -> Result<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        send_on(&self.manager, &self.at, self.first.take(), doing, true, f).await
    }

    /// The scan's own connection, opened when it has none.
    async fn own_conn(&mut self, doing: &str) -> Result<&mut OwnConn> {
        if self.own.is_none() {
            let Some(pool) = &self.pool else {
                return Err(Error::internal(format!(
                    "{doing} at {}: no connection of the scan's own",
                    self.at
                ))
                .with_backend(KIND));
            };
            let conn = pool
                .open()
                .await
                .map_err(|e| redis_error(&self.at, doing, &e))?;
            self.own = Some(conn);
        }
        self.own.as_mut().ok_or_else(|| {
            Error::internal(format!("{doing} at {}: the connection went away", self.at))
                .with_backend(KIND)
        })
    }

    /// Sends `packed` on the own connection and reads its replies with `read`; retried once
    /// on a new connection when the connection broke. A failed connection is dropped.
    async fn own_call<T>(&mut self, doing: &str, packed: &[u8], read: OwnRead<T>) -> Result<T> {
        let mut retried = false;
        loop {
            let conn = self.own_conn(doing).await?;
            let got = match conn.send(packed).await {
                Ok(()) => read(conn).await,
                Err(e) => Err(e),
            };
            match got {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.own = None;
                    if retried || !connection_broke(&e) {
                        return Err(redis_error(&self.at, doing, &e));
                    }
                    tracing::debug!("redis: {doing}: {e}; retrying on a new connection");
                    retried = true;
                }
            }
        }
    }

    /// A reply's pairs, or an error naming the request (a Type error for a field name that
    /// is not text).
    fn reply_error(&self, doing: &str, m: String) -> Error {
        let kind = if m.starts_with("a field name") {
            ErrorKind::Type
        } else {
            ErrorKind::Internal
        };
        Error::new(kind, format!("{doing} at {}: {m}", self.at)).with_backend(KIND)
    }

    /// Pairs of an own connection's reply with their field names as text.
    fn text_pairs(&self, doing: &str, pairs: Vec<(Bytes, Bytes)>) -> Result<Vec<(String, Bytes)>> {
        pairs
            .into_iter()
            .map(|(k, v)| Ok((field_name(&k).map_err(|m| self.reply_error(doing, m))?, v)))
            .collect()
    }

    /// `HSCAN 0` with `HLEN` and `MEMORY USAGE` in one round trip: the next cursor, the
    /// first pairs and the hash's size (None where the server refused to tell, e.g. an ACL
    /// without MEMORY).
    async fn first_batch(
        &mut self,
    ) -> Result<(u64, Vec<(String, Bytes)>, (Option<u64>, Option<u64>))> {
        let doing = format!("HSCAN {} 0", self.schema);
        let (schema, count) = (self.schema.clone(), self.count);
        let mut pipe = redis::pipe();
        pipe.cmd("HSCAN")
            .arg(&schema)
            .arg(0)
            .arg("COUNT")
            .arg(count)
            .cmd("HLEN")
            .arg(&schema)
            .cmd("MEMORY")
            .arg("USAGE")
            .arg(&schema)
            .arg("SAMPLES")
            .arg(5)
            .ignore_errors();
        if self.pool.is_some() {
            let (cursor, pairs, size) = self
                .own_call(&doing, &pipe.get_packed_pipeline(), read_first_batch)
                .await?;
            return Ok((cursor, self.text_pairs(&doing, pairs)?, size));
        }
        let replies: Vec<redis::RedisResult<Value>> = self
            .send(&doing, |mut c| {
                let pipe = pipe.clone();
                async move { pipe.query_async(&mut c).await }
            })
            .await?;
        let mut replies = replies.into_iter();
        let scanned = replies
            .next()
            .unwrap_or_else(|| Ok(Value::Nil))
            .map_err(|e| redis_error(&self.at, &doing, &e))?;
        let (cursor, items) = hscan_reply(scanned).map_err(|m| self.reply_error(&doing, m))?;
        let number = |r: Option<redis::RedisResult<Value>>| match r {
            Some(Ok(Value::Int(n))) => u64::try_from(n).ok(),
            _ => None,
        };
        let fields = number(replies.next());
        let bytes = number(replies.next());
        Ok((cursor, items, (fields, bytes)))
    }

    /// The pairs of `HSCAN <cursor>`, with the next cursor.
    async fn hscan(&mut self, cursor: u64) -> Result<(u64, Vec<(String, Bytes)>)> {
        let doing = format!("HSCAN {} {cursor}", self.schema);
        let (schema, count) = (&self.schema.clone(), self.count);
        if self.pool.is_some() {
            let packed = redis::cmd("HSCAN")
                .arg(schema)
                .arg(cursor)
                .arg("COUNT")
                .arg(count)
                .get_packed_command();
            let (next, pairs) = self.own_call(&doing, &packed, read_next_batch).await?;
            return Ok((next, self.text_pairs(&doing, pairs)?));
        }
        let v: Value = self
            .send(&doing, |mut c| async move {
                redis::cmd("HSCAN")
                    .arg(schema)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(count)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        hscan_reply(v).map_err(|m| self.reply_error(&doing, m))
    }

    /// Every pair of the hash but those of `skip`, by one `HGETALL`, sent to `tx` in batches
    /// of the scan's size (on an own connection as the reply arrives). Ok also when the
    /// reader stopped.
    async fn rest_whole(&mut self, skip: &HashSet<String>, tx: &ScanSender) -> Result<()> {
        let doing = format!("HGETALL {}", self.schema);
        let count = self.count;
        if self.pool.is_none() {
            let schema = &self.schema.clone();
            let v: Value = self
                .send(&doing, |mut c| async move {
                    redis::cmd("HGETALL").arg(schema).query_async(&mut c).await
                })
                .await?;
            let rest = field_values("HGETALL", v).map_err(|m| self.reply_error(&doing, m))?;
            let mut rest = rest.into_iter().filter(|(k, _)| !skip.contains(k));
            loop {
                let next: Vec<_> = rest.by_ref().take(count).collect();
                if next.is_empty() || tx.send(Ok(next)).await.is_err() {
                    return Ok(());
                }
            }
        }
        let packed = redis::cmd("HGETALL").arg(&self.schema).get_packed_command();
        let mut retried = false;
        loop {
            let mut handed_on = false;
            let conn = self.own_conn(&doing).await?;
            match stream_pairs(conn, &packed, skip, count, tx, &mut handed_on).await {
                Ok(()) => return Ok(()),
                Err(Streamed::Key(m)) => {
                    self.own = None;
                    return Err(self.reply_error(&doing, m));
                }
                Err(Streamed::Redis(e)) => {
                    self.own = None;
                    if retried || handed_on || !connection_broke(&e) {
                        return Err(redis_error(&self.at, &doing, &e));
                    }
                    tracing::debug!("redis: {doing}: {e}; retrying on a new connection");
                    retried = true;
                }
            }
        }
    }
}

type ScanSender = tokio::sync::mpsc::Sender<Result<Vec<(String, Bytes)>>>;

/// How a streamed reply failed.
enum Streamed {
    Redis(redis::RedisError),
    /// A field name that is not text.
    Key(String),
}

impl From<redis::RedisError> for Streamed {
    fn from(e: redis::RedisError) -> Self {
        Streamed::Redis(e)
    }
}

/// Sends `packed` (an HGETALL) on `conn` and hands its pairs, less `skip`, to `tx` in
/// batches of `count` as they are read; `handed_on` tells whether any batch went. Returns
/// when the reply was read (the connection is settled) or the reader stopped (it is not).
async fn stream_pairs(
    conn: &mut OwnConn,
    packed: &[u8],
    skip: &HashSet<String>,
    count: usize,
    tx: &ScanSender,
    handed_on: &mut bool,
) -> std::result::Result<(), Streamed> {
    conn.send(packed).await?;
    let n = conn.array_len().await?;
    if n % 2 != 0 {
        return Err(conn
            .unreadable("an odd number of elements for field-value pairs")
            .into());
    }
    let mut batch = Vec::with_capacity(count.min(n / 2).min(MAX_RESERVE));
    for _ in 0..n / 2 {
        let key = conn.element().await?;
        let value = conn.element().await?;
        let key = field_name(&key).map_err(Streamed::Key)?;
        if skip.contains(&key) {
            continue;
        }
        batch.push((key, value));
        if batch.len() >= count {
            *handed_on = true;
            let full = std::mem::replace(&mut batch, Vec::with_capacity(count.min(MAX_RESERVE)));
            if tx.send(Ok(full)).await.is_err() {
                return Ok(()); // The reader stopped.
            }
        }
    }
    conn.settled();
    if !batch.is_empty() {
        *handed_on = true;
        let _ = tx.send(Ok(batch)).await;
    }
    Ok(())
}

/// The next cursor and the pairs of an own connection's HSCAN reply.
type OwnPairs = (u64, Vec<(Bytes, Bytes)>);

/// Pairs of an own connection's reply, the next cursor and the hash's size.
type OwnBatch = (u64, Vec<(Bytes, Bytes)>, (Option<u64>, Option<u64>));

/// The replies of the first request (HSCAN 0, HLEN, MEMORY USAGE) on an own connection.
fn read_first_batch(c: &mut OwnConn) -> BoxFuture<'_, redis::RedisResult<OwnBatch>> {
    Box::pin(async move {
        let (cursor, pairs) = read_hscan(c).await?;
        // A refused size (an ACL without MEMORY) is unknown; a broken connection an error.
        let number = |r: redis::RedisResult<Value>| match r {
            Ok(Value::Int(n)) => Ok(u64::try_from(n).ok()),
            Err(e) if connection_broke(&e) => Err(e),
            _ => Ok(None),
        };
        let fields = number(c.value().await)?;
        let bytes = number(c.value().await)?;
        c.settled();
        Ok((cursor, pairs, (fields, bytes)))
    })
}

/// The reply of a later HSCAN on an own connection.
fn read_next_batch(c: &mut OwnConn) -> BoxFuture<'_, redis::RedisResult<OwnPairs>> {
    Box::pin(async move {
        let got = read_hscan(c).await?;
        c.settled();
        Ok(got)
    })
}

/// An `HSCAN` reply read on an own connection: the next cursor and the pairs.
async fn read_hscan(c: &mut OwnConn) -> redis::RedisResult<OwnPairs> {
    if c.array_len().await? != 2 {
        return Err(c.unreadable("an HSCAN reply of other than 2 parts"));
    }
    let cursor = c.element().await?;
    let Some(cursor) = std::str::from_utf8(&cursor)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Err(c.unreadable("an HSCAN cursor that is not a number"));
    };
    let n = c.array_len().await?;
    if n % 2 != 0 {
        return Err(c.unreadable("an odd number of elements for field-value pairs"));
    }
    let mut pairs = Vec::with_capacity((n / 2).min(MAX_RESERVE));
    for _ in 0..n / 2 {
        let key = c.element().await?;
        pairs.push((key, c.element().await?));
    }
    Ok((cursor, pairs))
}

/// Runs `f` on `first` or a new connection of `manager`. When the connection broke, it is
/// reported to the manager (the next call connects again) and, for an `idempotent` request,
/// `f` runs once more on a new connection. Errors name `doing` and `at`.
async fn send_on<T, F, Fut>(
    manager: &ConnectorManager<RedisConnector>,
    at: &str,
    first: Option<super::connect::Lease<RedisConnector>>,
    doing: &str,
    idempotent: bool,
    f: F,
) -> Result<T>
where
    F: Fn(MultiplexedConnection) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let mut lease = match first {
        Some(l) => l,
        None => manager.get().await?,
    };
    match f(lease.client()).await {
        Ok(v) => Ok(v),
        Err(e) if connection_broke(&e) => {
            lease.mark_broken();
            drop(lease);
            if !idempotent {
                return Err(redis_error(at, doing, &e));
            }
            tracing::debug!("redis: {doing}: {e}; retrying on a new connection");
            let mut lease = manager.get().await?;
            f(lease.client()).await.map_err(|e| {
                if connection_broke(&e) {
                    lease.mark_broken();
                }
                redis_error(at, doing, &e)
            })
        }
        Err(e) => Err(redis_error(at, doing, &e)),
    }
}

/// A stream of what a channel receives.
fn tokio_stream_of<T: Send + 'static>(rx: tokio::sync::mpsc::Receiver<T>) -> BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) }).boxed()
}
