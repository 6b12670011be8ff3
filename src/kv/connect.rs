//! Connectors and connection managers (the seed's `BackendConnectorBase`, `ConnectionMode`,
//! `ConnectorManagerFactory`, `SingleConnectorManager` and `PooledConnectorManager`).
//!
//! A [`Connector`] is one connection to a store (connect, disconnect, is_connected), made
//! from a [`ConnectorConfig`] (host, port, username, password, db). A [`ConnectorManager`]
//! hands out [`Lease`]s on connected connectors:
//!
//! * [`ConnectionMode::Single`]: one connection shared by every caller at once (a Redis
//!   connection multiplexes their commands); when a caller reports it broken
//!   ([`Lease::mark_broken`]), the next call connects again.
//! * [`ConnectionMode::Pooled`]: a pool (bb8) of at most [`PoolSettings::max_connections`];
//!   a caller waits at most [`PoolSettings::connection_timeout`] for one, and connections
//!   idle longer than [`PoolSettings::idle_timeout`] are closed. A broken connection is
//!   dropped when its lease ends.

use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::error::{Error, ErrorKind, Result};

/// Where and as whom a connector connects. `Debug` never shows the password.
#[derive(Clone)]
pub struct ConnectorConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// The database: a number for Redis, a name elsewhere.
    pub db: Option<String>,
    /// The longest connecting (and authenticating) may take.
    pub connect_timeout: Duration,
    /// The longest one request may wait for its answer (None: no limit); on a Redis scan's
    /// own connection, the longest wait for the next bytes of a reply.
    pub response_timeout: Option<Duration>,
    /// A name the server shows for this client's connections (Redis `CLIENT SETNAME`).
    pub client_name: Option<String>,
    /// TLS (`rediss://`); None: plain TCP.
    pub tls: Option<TlsSettings>,
}

/// How a TLS connection checks the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Check the server's certificate and name (off: any certificate is accepted).
    pub verify: bool,
    /// A PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl ConnectorConfig {
    /// A configuration for `host:port` with no credentials, database 0/default, a 5 s
    /// connect timeout and a 60 s response timeout.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ConnectorConfig {
            host: host.into(),
            port,
            username: None,
            password: None,
            db: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Some(Duration::from_secs(60)),
            client_name: None,
            tls: None,
        }
    }
}

impl Debug for ConnectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("db", &self.db)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("client_name", &self.client_name)
            .field("tls", &self.tls)
            .finish()
    }
}

/// One connection to a store.
#[async_trait]
pub trait Connector: Debug + Send + Sync + Sized + 'static {
    /// What requests go through once connected; cheap to clone (a handle on the connection).
    type Client: Clone + Send + Sync + 'static;

    /// A connector for `config`, not connected yet; a configuration error when `config`
    /// cannot work (e.g. a Redis db that is not a number).
    fn new(config: ConnectorConfig) -> Result<Self>;

    /// Its configuration.
    fn config(&self) -> &ConnectorConfig;

    /// Connects (and authenticates); an error says what failed and where.
    async fn connect(&mut self) -> Result<()>;

    /// Closes the connection (clients already handed out keep it until they are dropped).
    async fn disconnect(&mut self) -> Result<()>;

    /// Does the server answer on this connection now (a round trip)?
    async fn is_connected(&mut self) -> bool;

    /// The connected client; an error when not connected.
    fn client(&self) -> Result<Self::Client>;
}

/// How a manager holds connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionMode {
    /// One connection shared by every caller.
    #[default]
    Single,
    /// A pool of connections, each used by one caller at a time.
    Pooled,
}

impl std::str::FromStr for ConnectionMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "single" => Ok(ConnectionMode::Single),
            "pooled" | "pool" => Ok(ConnectionMode::Pooled),
            other => Err(Error::config(format!(
                "unknown connection mode '{other}': single or pooled"
            ))),
        }
    }
}

/// The settings of a pooled manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// The most connections open at once (at least 1).
    pub max_connections: u32,
    /// The longest a caller waits for a connection.
    pub connection_timeout: Duration,
    /// Connections unused for longer are closed (None: kept).
    pub idle_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            connection_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// Builds the manager for a connector type, a configuration and a mode (the seed's
/// `ConnectorManagerFactory.create_manager`).
pub struct ConnectorManagerFactory;

impl ConnectorManagerFactory {
    /// A manager of `C` connections to `config`. Nothing connects before the first
    /// [`ConnectorManager::get`]; `pool` is used in [`ConnectionMode::Pooled`] only.
    pub fn create_manager<C: Connector>(
        config: ConnectorConfig,
        mode: ConnectionMode,
        pool: PoolSettings,
    ) -> Result<ConnectorManager<C>> {
        // A configuration that cannot work fails here, not on first use.
        C::new(config.clone())?;
        Ok(match mode {
            ConnectionMode::Single => ConnectorManager::Single(SingleConnectorManager::new(config)),
            ConnectionMode::Pooled => {
                ConnectorManager::Pooled(PooledConnectorManager::new(config, pool)?)
            }
        })
    }
}

/// A manager of connections of one connector type (see the module documentation).
#[derive(Debug)]
pub enum ConnectorManager<C: Connector> {
    Single(SingleConnectorManager<C>),
    Pooled(PooledConnectorManager<C>),
}

impl<C: Connector> ConnectorManager<C> {
    /// A connected connector to use for a while.
    pub async fn get(&self) -> Result<Lease<C>> {
        match self {
            ConnectorManager::Single(m) => m.get().await,
            ConnectorManager::Pooled(m) => m.get().await,
        }
    }

    pub fn mode(&self) -> ConnectionMode {
        match self {
            ConnectorManager::Single(_) => ConnectionMode::Single,
            ConnectorManager::Pooled(_) => ConnectionMode::Pooled,
        }
    }

    /// The configuration connections are made from.
    pub fn config(&self) -> &ConnectorConfig {
        match self {
            ConnectorManager::Single(m) => &m.config,
            ConnectorManager::Pooled(m) => &m.config,
        }
    }

    /// Connections open now (for a pool: in use and idle).
    pub fn connections(&self) -> usize {
        match self {
            ConnectorManager::Single(m) => usize::from(m.slot.lock().is_some()),
            ConnectorManager::Pooled(m) => m.pool.state().connections as usize,
        }
    }

    /// Closes the connections not in use now (the shared one, the pool's idle ones).
    pub async fn close(&self) {
        match self {
            ConnectorManager::Single(m) => {
                let conn = m.slot.lock().take();
                if let Some(conn) = conn {
                    // Leases still out keep their handle; the connector's own goes now.
                    if let Ok(mut c) = Arc::try_unwrap(conn) {
                        let _ = c.disconnect().await;
                    }
                }
            }
            ConnectorManager::Pooled(m) => {
                // Take every idle connection out of the pool and close it.
                let idle = m.pool.state().idle_connections;
                for _ in 0..idle {
                    let got = tokio::time::timeout(Duration::from_millis(50), m.pool.get()).await;
                    if let Ok(Ok(mut lease)) = got {
                        lease.broken = true;
                        let _ = lease.conn.disconnect().await;
                    }
                }
            }
        }
    }
}

/// A connected connector, lent by a manager until dropped.
pub struct Lease<C: Connector> {
    inner: LeaseInner<C>,
}

enum LeaseInner<C: Connector> {
    Shared {
        conn: Arc<C>,
        client: C::Client,
        slot: Arc<parking_lot::Mutex<Option<Arc<C>>>>,
    },
    Pooled(bb8::PooledConnection<'static, PoolAdapter<C>>),
}

impl<C: Connector> Lease<C> {
    /// The client to send requests with.
    pub fn client(&self) -> C::Client {
        match &self.inner {
            LeaseInner::Shared { client, .. } => client.clone(),
            LeaseInner::Pooled(p) => p.client.clone(),
        }
    }

    /// The connector.
    pub fn connector(&self) -> &C {
        match &self.inner {
            LeaseInner::Shared { conn, .. } => conn,
            LeaseInner::Pooled(p) => &p.conn,
        }
    }

    /// Reports the connection broken (it dropped, or timed out): the manager does not hand
    /// it out again, and the next [`ConnectorManager::get`] connects anew.
    pub fn mark_broken(&mut self) {
        match &mut self.inner {
            LeaseInner::Shared { conn, slot, .. } => {
                let mut slot = slot.lock();
                if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, conn)) {
                    *slot = None;
                }
            }
            LeaseInner::Pooled(p) => p.broken = true,
        }
    }
}

impl<C: Connector> Debug for Lease<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("connector", self.connector())
            .finish()
    }
}

/// Connects a new connector within the configured timeout.
async fn connect_new<C: Connector>(config: &ConnectorConfig) -> Result<C> {
    let mut conn = C::new(config.clone())?;
    match tokio::time::timeout(config.connect_timeout, conn.connect()).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "connecting to {}:{} took longer than {:?} (connect_timeout); is the \
                     server up and reachable?",
                    config.host, config.port, config.connect_timeout
                ),
            ));
        }
    }
    Ok(conn)
}

/// One connection shared by every caller (the seed's `SingleConnectorManager`).
pub struct SingleConnectorManager<C: Connector> {
    config: ConnectorConfig,
    slot: Arc<parking_lot::Mutex<Option<Arc<C>>>>,
    /// Only one caller connects at a time; the others wait and share its connection.
    connecting: tokio::sync::Mutex<()>,
}

impl<C: Connector> Debug for SingleConnectorManager<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleConnectorManager")
            .field("config", &self.config)
            .field("connected", &self.slot.lock().is_some())
            .finish()
    }
}

impl<C: Connector> SingleConnectorManager<C> {
    pub fn new(config: ConnectorConfig) -> Self {
        SingleConnectorManager {
            config,
            slot: Arc::new(parking_lot::Mutex::new(None)),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn lease(&self, conn: Arc<C>) -> Result<Lease<C>> {
        let client = conn.client()?;
        Ok(Lease {
            inner: LeaseInner::Shared {
                conn,
                client,
                slot: self.slot.clone(),
            },
        })
    }

    /// The shared connection, connected first when there is none (or it was reported
    /// broken).
    pub async fn get(&self) -> Result<Lease<C>> {
        if let Some(conn) = self.slot.lock().clone() {
            return self.lease(conn);
        }
        let _one = self.connecting.lock().await;
        if let Some(conn) = self.slot.lock().clone() {
            return self.lease(conn);
        }
        let conn = Arc::new(connect_new::<C>(&self.config).await?);
        *self.slot.lock() = Some(conn.clone());
        self.lease(conn)
    }
}

/// A pool of connections (the seed's `PooledConnectorManager`), on bb8.
pub struct PooledConnectorManager<C: Connector> {
    config: ConnectorConfig,
    settings: PoolSettings,
    pool: bb8::Pool<PoolAdapter<C>>,
    /// The last error connecting, for the message when a caller times out waiting.
    last_error: Arc<parking_lot::Mutex<Option<(ErrorKind, String)>>>,
    /// One permit per open connection (max_connections in all), taken before connecting:
    /// the connect in `get` and bb8's own never open more than max_connections at once.
    slots: Arc<tokio::sync::Semaphore>,
}

impl<C: Connector> Debug for PooledConnectorManager<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.pool.state();
        f.debug_struct("PooledConnectorManager")
            .field("config", &self.config)
            .field("settings", &self.settings)
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .finish()
    }
}

impl<C: Connector> PooledConnectorManager<C> {
    pub fn new(config: ConnectorConfig, settings: PoolSettings) -> Result<Self> {
        if settings.max_connections == 0 {
            return Err(Error::config("max_connections must be at least 1"));
        }
        if settings.connection_timeout.is_zero() {
            return Err(Error::config("connection_timeout must be more than 0"));
        }
        let last_error = Arc::new(parking_lot::Mutex::new(None));
        let slots = Arc::new(tokio::sync::Semaphore::new(
            settings.max_connections as usize,
        ));
        // The reaper looks for idle connections often enough to close them soon after
        // idle_timeout (bb8 checks every 30 s by default).
        let reaper = settings
            .idle_timeout
            .map(|t| (t / 4).clamp(Duration::from_millis(50), Duration::from_secs(30)))
            .unwrap_or(Duration::from_secs(30));
        let pool = bb8::Pool::builder()
            .max_size(settings.max_connections)
            .min_idle(None)
            .connection_timeout(settings.connection_timeout)
            .idle_timeout(settings.idle_timeout)
            .max_lifetime(None)
            .reaper_rate(reaper)
            // A connection is checked when a request on it fails, not before each use.
            .test_on_check_out(false)
            // A failed connect (a wrong password, a refused port) is the caller's error at
            // once, not after connection_timeout of retries.
            .retry_connection(false)
            .error_sink(Box::new(LastError(last_error.clone())))
            .build_unchecked(PoolAdapter {
                config: config.clone(),
                last_error: last_error.clone(),
                slots: slots.clone(),
                _c: std::marker::PhantomData,
            });
        Ok(PooledConnectorManager {
            config,
            settings,
            pool,
            last_error,
            slots,
        })
    }

    /// A connection of the pool, waiting at most `connection_timeout` for one.
    pub async fn get(&self) -> Result<Lease<C>> {
        // No idle connection and room for one: connect here, so that the caller gets its
        // own connect error at once (bb8 connects in the background and would let it wait
        // out connection_timeout). Should the pool fill meanwhile, this one is dropped.
        let state = self.pool.state();
        if state.idle_connections == 0
            && state.connections < self.settings.max_connections
            && let Ok(slot) = self.slots.clone().try_acquire_owned()
        {
            let conn = connect_new::<C>(&self.config).await?;
            let client = conn.client()?;
            let _ = self.pool.add(Pooled {
                conn,
                client,
                broken: false,
                _slot: Some(slot),
            });
        }
        match self.pool.get_owned().await {
            Ok(p) => Ok(Lease {
                inner: LeaseInner::Pooled(p),
            }),
            Err(bb8::RunError::User(e)) => Err(e),
            Err(bb8::RunError::TimedOut) => {
                let state = self.pool.state();
                let why = match self.last_error.lock().take() {
                    Some((_, e)) if state.connections < self.settings.max_connections => {
                        format!("connecting failed: {e}")
                    }
                    _ => format!(
                        "all {} connections (max_connections) were in use",
                        self.settings.max_connections
                    ),
                };
                Err(Error::new(
                    ErrorKind::Connection,
                    format!(
                        "no connection to {}:{} within {:?} (connection_timeout): {why}",
                        self.config.host, self.config.port, self.settings.connection_timeout
                    ),
                ))
            }
        }
    }

    /// The pool's settings.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }
}

/// A pooled connector with its client and whether a caller found it broken.
pub struct Pooled<C: Connector> {
    conn: C,
    client: C::Client,
    broken: bool,
    /// Given back when the connection is dropped.
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// bb8's view of a connector type.
pub struct PoolAdapter<C> {
    config: ConnectorConfig,
    last_error: Arc<parking_lot::Mutex<Option<(ErrorKind, String)>>>,
    slots: Arc<tokio::sync::Semaphore>,
    _c: std::marker::PhantomData<fn() -> C>,
}

impl<C: Connector> bb8::ManageConnection for PoolAdapter<C> {
    type Connection = Pooled<C>;
    type Error = Error;

    async fn connect(&self) -> Result<Pooled<C>> {
        // Every slot taken: max_connections are open (or being opened by `get`); the
        // waiter gets the next one given back.
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            Error::new(
                ErrorKind::Connection,
                "all max_connections connections are open",
            )
        })?;
        let conn = match connect_new::<C>(&self.config).await {
            Ok(c) => c,
            Err(e) => {
                *self.last_error.lock() = Some((e.kind(), e.message().to_string()));
                return Err(e);
            }
        };
        let client = conn.client()?;
        Ok(Pooled {
            conn,
            client,
            broken: false,
            _slot: Some(slot),
        })
    }

    async fn is_valid(&self, conn: &mut Pooled<C>) -> Result<()> {
        if conn.conn.is_connected().await {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Connection,
                "the connection does not answer",
            ))
        }
    }

    fn has_broken(&self, conn: &mut Pooled<C>) -> bool {
        conn.broken
    }
}

/// Keeps the last connection error bb8 reports.
#[derive(Clone)]
struct LastError(Arc<parking_lot::Mutex<Option<(ErrorKind, String)>>>);

impl Debug for LastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LastError")
    }
}

impl bb8::ErrorSink<Error> for LastError {
    fn sink(&self, e: Error) {
        *self.0.lock() = Some((e.kind(), e.message().to_string()));
    }
    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<Error>> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A connector that counts connections (open ones and all made), and fails to connect
    /// to port 1.
    #[derive(Debug)]
    struct Counting {
        config: ConnectorConfig,
        up: bool,
    }

    static OPEN: AtomicUsize = AtomicUsize::new(0);

    #[async_trait]
    impl Connector for Counting {
        type Client = u16;
        fn new(config: ConnectorConfig) -> Result<Self> {
            if config.host.is_empty() {
                return Err(Error::config("no host"));
            }
            Ok(Counting { config, up: false })
        }
        fn config(&self) -> &ConnectorConfig {
            &self.config
        }
        async fn connect(&mut self) -> Result<()> {
            if self.config.port == 1 {
                return Err(Error::new(ErrorKind::Connection, "refused on port 1"));
            }
            self.up = true;
            OPEN.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn disconnect(&mut self) -> Result<()> {
            if std::mem::take(&mut self.up) {
                OPEN.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(())
        }
        async fn is_connected(&mut self) -> bool {
            self.up
        }
        fn client(&self) -> Result<u16> {
            if self.up {
                Ok(self.config.port)
            } else {
                Err(Error::new(ErrorKind::Connection, "not connected"))
            }
        }
    }

    #[test]
    fn a_bad_configuration_fails_when_the_manager_is_made() {
        let err = ConnectorManagerFactory::create_manager::<Counting>(
            ConnectorConfig::new("", 5),
            ConnectionMode::Single,
            PoolSettings::default(),
        )
        .expect_err("no host");
        assert_eq!(err.kind(), ErrorKind::Config);
        let err = ConnectorManagerFactory::create_manager::<Counting>(
            ConnectorConfig::new("h", 5),
            ConnectionMode::Pooled,
            PoolSettings {
                max_connections: 0,
                ..PoolSettings::default()
            },
        )
        .expect_err("no connections");
        assert!(err.to_string().contains("max_connections"), "{err}");
        assert_eq!(
            "Pooled"
                .to_lowercase()
                .parse::<ConnectionMode>()
                .expect("mode"),
            ConnectionMode::Pooled
        );
        assert!("many".parse::<ConnectionMode>().is_err());
    }

    #[test]
    fn the_password_is_not_in_debug() {
        let mut c = ConnectorConfig::new("h", 1);
        c.password = Some(SecretString::from("hunter2".to_string()));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("***"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn single_shares_one_connection_and_reconnects_when_broken() {
        let m = ConnectorManagerFactory::create_manager::<Counting>(
            ConnectorConfig::new("h", 7),
            ConnectionMode::Single,
            PoolSettings::default(),
        )
        .expect("manager");
        assert_eq!(m.connections(), 0);
        let a = m.get().await.expect("a");
        let mut b = m.get().await.expect("b");
        assert_eq!(m.connections(), 1);
        assert!(std::ptr::eq(a.connector(), b.connector()));
        b.mark_broken();
        assert_eq!(m.connections(), 0);
        let c = m.get().await.expect("c");
        assert!(!std::ptr::eq(a.connector(), c.connector()));
        assert_eq!(c.client(), 7);
    }

    #[tokio::test]
    async fn pooled_waits_at_most_connection_timeout_and_says_why() {
        let m = ConnectorManagerFactory::create_manager::<Counting>(
            ConnectorConfig::new("h", 8),
            ConnectionMode::Pooled,
            PoolSettings {
                max_connections: 2,
                connection_timeout: Duration::from_millis(200),
                idle_timeout: None,
            },
        )
        .expect("manager");
        let a = m.get().await.expect("a");
        let b = m.get().await.expect("b");
        assert!(!std::ptr::eq(a.connector(), b.connector()));
        let started = std::time::Instant::now();
        let err = m.get().await.expect_err("all in use");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(err.kind(), ErrorKind::Connection);
        assert!(err.to_string().contains("max_connections"), "{err}");
        drop(a);
        m.get().await.expect("one came back");

        let refused = ConnectorManagerFactory::create_manager::<Counting>(
            ConnectorConfig::new("h", 1),
            ConnectionMode::Pooled,
            PoolSettings {
                max_connections: 2,
                connection_timeout: Duration::from_millis(300),
                idle_timeout: None,
            },
        )
        .expect("manager");
        let err = refused.get().await.expect_err("refused");
        assert!(err.to_string().contains("refused on port 1"), "{err}");
    }
}
