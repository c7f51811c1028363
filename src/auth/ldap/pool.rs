//! Connections to the directory: two bounded pools of connections reused
//! across requests, filled from the servers in [`Servers`] order. Each pool
//! serves at most `pool_size` operations at once; more wait for a slot.
//!
//! - The **service** pool holds connections bound once as the service account
//!   (`bind_dn`); every search runs on one of them, so a login costs no TCP and
//!   TLS handshake and no service bind. Searches share these connections, up
//!   to [`SEARCHES_PER_CONNECTION`] outstanding on each (LDAP is asynchronous:
//!   RFC 4511 §4.1.1, responses are matched to requests by messageID), so
//!   `pool_size` searches at once need only a few connections. Measured with
//!   the raw search+bind client against slapd at 64 logins in flight: 4 shared
//!   search connections gave 20–30 % more logins per second than 32 or 64
//!   exclusive ones, and slapd spent ~20 % less CPU per login, since it reads
//!   and answers several requests per wake-up.
//! - The **bind** pool holds connections used only for user binds. Bind state is
//!   per connection (RFC 4511 §4.2.1), so a connection is held by one request at
//!   a time and every use starts with a fresh bind; a user's identity left on an
//!   idle connection is never used, because nothing runs on a bind connection
//!   before the request's own bind.
//!
//! Failover: a new connection goes to the first server that answers; an idle
//! connection to a worse server than one now due for a retry is dropped, so
//! traffic returns to the preferred server once it is back. Each operation, and
//! getting a connection (failover included), is bounded by `timeout_ms`.
//!
//! Metrics: `rampart_ldap_connections{server,pool}` (open connections),
//! `rampart_ldap_connections_busy{pool}` (searches or binds running now; at
//! `rampart_ldap_pool_size{pool}` the pool is saturated and requests queue),
//! `rampart_ldap_errors_total{server,kind}` (`connect`, `refused`, `timeout`,
//! `broken`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapResult, Scope, SearchOptions, StdStream};
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::{timeout, timeout_at};
use tracing::debug;

use super::config::server_address;
use super::entry::{Entry, Found};
use super::servers::Servers;
use crate::auth::PrimaryError;
use crate::secret::Secret;

/// Searches outstanding on one service connection before another is opened
/// (up to `pool_size / SEARCHES_PER_CONNECTION`, rounded up).
pub const SEARCHES_PER_CONNECTION: usize = 8;

/// Idle connections older than this are closed rather than reused: servers and
/// firewalls drop idle LDAP connections (AD's MaxConnIdleTime is 900 s), and a
/// silently dropped one would cost a whole operation timeout to notice.
const IDLE_MAX: Duration = Duration::from_secs(60);

/// An operation that did not complete: the connection is not reused.
#[derive(Debug)]
pub enum OpError {
    /// No answer within `timeout_ms`.
    Timeout,
    /// The connection broke, or the server said it is busy or unavailable.
    Broken(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Timeout => f.write_str("no answer in time"),
            OpError::Broken(why) => f.write_str(why),
        }
    }
}

/// Why a new connection could not be used.
enum OpenError {
    /// Network, TLS or server trouble: try the next server.
    Unreachable(String),
    /// The server refused the service account: the same on every server.
    Refused(String),
}

/// Which connections a pool holds.
enum Kind {
    /// Bound as the service account.
    Service {
        dn: String,
        password: Secret<String>,
    },
    /// For user binds.
    Bind,
}

/// An open connection, counted in `rampart_ldap_connections` while it lives.
struct Conn {
    ldap: Ldap,
    /// Set when ldap3's connection task ends (socket closed or failed).
    closed: Arc<AtomicBool>,
    open: metrics::Gauge,
}

impl Conn {
    fn new(ldap: Ldap, closed: Arc<AtomicBool>, url: &str, pool: &'static str) -> Conn {
        let open = metrics::gauge!("rampart_ldap_connections", "server" => url.to_string(), "pool" => pool);
        open.increment(1.0);
        Conn { ldap, closed, open }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

/// A search or bind running for a request, counted in `rampart_ldap_connections_busy`.
struct Busy(metrics::Gauge);

impl Busy {
    fn new(pool: &'static str) -> Busy {
        let gauge = metrics::gauge!("rampart_ldap_connections_busy", "pool" => pool);
        gauge.increment(1.0);
        Busy(gauge)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Counts a failure of `server` (`rampart_ldap_errors_total{server,kind}`).
fn count_error(server: &str, kind: &'static str) {
    metrics::counter!("rampart_ldap_errors_total", "server" => server.to_string(), "kind" => kind)
        .increment(1);
}

/// A pooled connection: idle in the bind pool; in the service pool, open
/// and possibly in use by several searches.
struct Idle {
    ldap: Arc<Conn>,
    server: usize,
    /// Last handed out.
    since: Instant,
}

struct PoolState {
    connections: Vec<Idle>,
    /// Service connections being opened, counted against the limit.
    opening: usize,
}

/// What [`Pool::take`] found.
enum Take {
    /// A connection to use (shared: still listed for other searches).
    Use(Arc<Conn>, usize),
    /// Open a new connection (a shared one holds a place in `opening`).
    Open,
    /// Service connections are all still being opened: wait for one.
    Wait,
}

/// A place in `opening` taken by [`Pool::take`]; given back on drop if the
/// opening did not get to report.
struct Opening<'a> {
    pool: &'a Pool,
    done: bool,
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pool.opened(None);
        }
    }
}

/// A bounded set of connections of one kind.
pub struct Pool {
    kind: Kind,
    state: Mutex<PoolState>,
    slots: Semaphore,
    size: usize,
    /// Connections kept: one per slot for binds, fewer for shared searches.
    connections: usize,
    /// Woken when a service connection finished opening (or failed to).
    opened: Notify,
}

impl Pool {
    fn new(kind: Kind, size: usize) -> Pool {
        let name = match kind {
            Kind::Service { .. } => "service",
            Kind::Bind => "bind",
        };
        metrics::gauge!("rampart_ldap_pool_size", "pool" => name).set(size as f64);
        let connections = match kind {
            Kind::Service { .. } => size.div_ceil(SEARCHES_PER_CONNECTION),
            Kind::Bind => size,
        };
        Pool {
            kind,
            state: Mutex::new(PoolState {
                connections: Vec::with_capacity(connections),
                opening: 0,
            }),
            slots: Semaphore::new(size),
            size,
            connections,
            opened: Notify::new(),
        }
    }

    /// Service connections carry several searches at once; a bind connection
    /// carries one request's bind (bind state is per connection).
    fn shared(&self) -> bool {
        matches!(self.kind, Kind::Service { .. })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Service { .. } => "service",
            Kind::Bind => "bind",
        }
    }

    /// A connection for one operation, or the word to open one. Closed and
    /// stale connections, and those on a server worse than `preferred`, are
    /// dropped first.
    fn take(&self, now: Instant, preferred: usize) -> Take {
        let mut state = self.lock();
        let usable = |c: &Idle| {
            !c.ldap.is_closed() && now.duration_since(c.since) <= IDLE_MAX && c.server <= preferred
        };
        if !self.shared() {
            while let Some(idle) = state.connections.pop() {
                if usable(&idle) {
                    return Take::Use(idle.ldap, idle.server);
                }
            }
            return Take::Open;
        }
        state.connections.retain(usable);
        let room = state.connections.len() + state.opening < self.connections;
        // The list holds one reference, each search in flight one more.
        let least_busy = state
            .connections
            .iter_mut()
            .min_by_key(|c| Arc::strong_count(&c.ldap));
        match least_busy {
            Some(c) if !room || Arc::strong_count(&c.ldap) <= SEARCHES_PER_CONNECTION => {
                c.since = now;
                Take::Use(Arc::clone(&c.ldap), c.server)
            }
            _ if room => {
                state.opening += 1;
                Take::Open
            }
            // Nothing listed and no room: every place is being opened.
            _ => Take::Wait,
        }
    }

    /// The end of an opening that [`Pool::take`] asked for: a shared
    /// connection is listed for other searches, and searches waiting for one
    /// look again.
    fn opened(&self, conn: Option<(&Arc<Conn>, usize)>) {
        if !self.shared() {
            return;
        }
        let mut state = self.lock();
        state.opening -= 1;
        if let Some((ldap, server)) = conn {
            state.connections.push(Idle {
                ldap: Arc::clone(ldap),
                server,
                since: Instant::now(),
            });
        }
        drop(state);
        self.opened.notify_waiters();
    }

    /// No further search goes to `ldap` (it failed); searches on it finish.
    fn forget(&self, ldap: &Arc<Conn>) {
        self.lock()
            .connections
            .retain(|c| !Arc::ptr_eq(&c.ldap, ldap));
    }
}

/// How to reach the directory.
pub struct Settings {
    /// Server URLs in order of preference.
    pub urls: Vec<String>,
    /// rustls configuration when TLS is used.
    pub tls: Option<Arc<ClientConfig>>,
    /// Upgrade `ldap://` with StartTLS.
    pub starttls: bool,
    /// One new connection: TCP, TLS handshake, service bind.
    pub connect_timeout: Duration,
    /// Each operation, and getting a connection.
    pub timeout: Duration,
    /// Connections per pool.
    pub pool_size: usize,
    /// Service account, for search then bind.
    pub service: Option<(String, Secret<String>)>,
}

/// The directory servers and the connection pools.
pub struct Directory {
    servers: Servers,
    tls: Option<Arc<ClientConfig>>,
    starttls: bool,
    connect_timeout: Duration,
    timeout: Duration,
    service: Option<Pool>,
    bind: Pool,
}

/// A connection held by one request; returned to its pool by [`Lease::release`],
/// closed when dropped without it.
pub struct Lease<'d> {
    directory: &'d Directory,
    pool: &'d Pool,
    ldap: Arc<Conn>,
    server: usize,
    reused: bool,
    _busy: Busy,
    _slot: SemaphorePermit<'d>,
}

fn unavailable(message: impl Into<String>) -> PrimaryError {
    PrimaryError::DirectoryUnavailable(message.into())
}

impl Directory {
    /// Servers and pools for `settings`; connects lazily.
    pub fn new(settings: Settings) -> Directory {
        // Every series at zero from the start (see app::families).
        for url in &settings.urls {
            for pool in ["service", "bind"] {
                metrics::gauge!("rampart_ldap_connections", "server" => url.clone(), "pool" => pool)
                    .increment(0.0);
            }
            for kind in ["connect", "refused", "timeout", "broken"] {
                metrics::counter!("rampart_ldap_errors_total", "server" => url.clone(), "kind" => kind)
                    .increment(0);
            }
        }
        for pool in ["service", "bind"] {
            metrics::gauge!("rampart_ldap_connections_busy", "pool" => pool).increment(0.0);
        }
        Directory {
            servers: Servers::new(settings.urls),
            tls: settings.tls,
            starttls: settings.starttls,
            connect_timeout: settings.connect_timeout,
            timeout: settings.timeout,
            service: settings.service.map(|(dn, password)| {
                Pool::new(Kind::Service { dn, password }, settings.pool_size)
            }),
            bind: Pool::new(Kind::Bind, settings.pool_size),
        }
    }

    /// Runs a search on a service-account connection; a broken pooled
    /// connection is replaced and the search tried once more.
    pub async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        size_limit: i32,
    ) -> Result<Found, PrimaryError> {
        let pool = self
            .service
            .as_ref()
            .ok_or_else(|| unavailable("no service account configured"))?;
        let mut last = None;
        for _ in 0..2 {
            let mut lease = self.acquire(pool).await?;
            match lease.search(base, scope, filter, attrs, size_limit).await {
                Ok(found) => {
                    debug!(server = %lease.url(), base, filter, rc = found.rc, entries = found.entries.len(), "LDAP search");
                    lease.release();
                    return Ok(found);
                }
                Err(error) => last = Some(error),
            }
        }
        Err(unavailable(format!(
            "search failed: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// Binds as `dn` on a bind connection and hands back the connection, still
    /// bound, for reads as that user. Tried once more on a broken connection.
    pub async fn bind(
        &self,
        dn: &str,
        password: &Secret<String>,
    ) -> Result<(LdapResult, Lease<'_>), PrimaryError> {
        let mut last = None;
        for _ in 0..2 {
            let mut lease = self.acquire(&self.bind).await?;
            match lease.bind(dn, password).await {
                Ok(result) => return Ok((result, lease)),
                Err(error) => last = Some(error),
            }
        }
        Err(unavailable(format!(
            "bind failed: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// Readiness (`/readyz`): some directory server answers now — on an
    /// idle pooled connection or a new one (TCP, TLS and the service bind),
    /// one read of the root DSE within `timeout_ms` each. An open connection
    /// alone proves nothing: a hung server (stopped, deadlocked) still has
    /// the kernel accept and keep its connections. Any result, even a
    /// refusal, is an answer; a timeout drops the connection like a login's.
    /// Without a service account the read runs on a bind connection, maybe
    /// still bound as the last user: it asks for no attributes, and its
    /// result decides nothing but readiness.
    pub async fn probe(&self) -> Result<(), PrimaryError> {
        let pool = self.service.as_ref().unwrap_or(&self.bind);
        let mut lease = self.acquire(pool).await?;
        match lease
            .search("", Scope::Base, "(objectClass=*)", &[], 1)
            .await
        {
            Ok(_) => {
                lease.release();
                Ok(())
            }
            Err(error) => Err(unavailable(format!("root DSE read failed: {error}"))),
        }
    }

    /// A connection from `pool`: an idle one, or a new one from the first
    /// server that answers, within `timeout`.
    async fn acquire<'d>(&'d self, pool: &'d Pool) -> Result<Lease<'d>, PrimaryError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let slot = match timeout_at(deadline, pool.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            _ => {
                return Err(unavailable(format!(
                    "all {} {} connections stayed busy",
                    pool.size,
                    pool.name()
                )));
            }
        };
        let order = loop {
            let now = Instant::now();
            let order = self.servers.order(now);
            let preferred = order.first().copied().unwrap_or(usize::MAX);
            // Registered before looking, so an opening that ends in between still wakes us.
            let opened = pool.opened.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            match pool.take(now, preferred) {
                Take::Use(ldap, server) => {
                    return Ok(Lease {
                        directory: self,
                        pool,
                        ldap,
                        server,
                        reused: true,
                        _busy: Busy::new(pool.name()),
                        _slot: slot,
                    });
                }
                Take::Open => break order,
                Take::Wait => {
                    if timeout_at(deadline, opened).await.is_err() {
                        return Err(unavailable("no directory connection opened in time"));
                    }
                }
            }
        };
        // Gives the place back however this ends, also if the request is dropped.
        let mut opening = Opening { pool, done: false };
        let opened = self.open_any(pool, &order, deadline).await;
        opening.done = true;
        match opened {
            Ok((conn, server)) => {
                let ldap = Arc::new(conn);
                pool.opened(Some((&ldap, server)));
                Ok(Lease {
                    directory: self,
                    pool,
                    ldap,
                    server,
                    reused: false,
                    _busy: Busy::new(pool.name()),
                    _slot: slot,
                })
            }
            Err(error) => {
                pool.opened(None);
                Err(error)
            }
        }
    }

    /// A new connection for `pool` from the first server in `order` that
    /// answers before `deadline`.
    async fn open_any(
        &self,
        pool: &Pool,
        order: &[usize],
        deadline: tokio::time::Instant,
    ) -> Result<(Conn, usize), PrimaryError> {
        let mut errors = Vec::new();
        for &server in order {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let url = self.servers.url(server);
            match timeout(self.connect_timeout.min(left), self.open(server, pool)).await {
                Ok(Ok((ldap, closed))) => {
                    self.servers.succeeded(server);
                    debug!(server = %url, pool = pool.name(), "LDAP connection opened");
                    return Ok((Conn::new(ldap, closed, url, pool.name()), server));
                }
                Ok(Err(OpenError::Refused(why))) => {
                    count_error(url, "refused");
                    return Err(unavailable(why));
                }
                Ok(Err(OpenError::Unreachable(why))) => {
                    count_error(url, "connect");
                    self.servers.failed(server, &why);
                    errors.push(format!("{url}: {why}"));
                }
                Err(_) => {
                    count_error(url, "connect");
                    self.servers.failed(server, "no connection in time");
                    errors.push(format!("{url}: no connection in time"));
                }
            }
        }
        Err(unavailable(if errors.is_empty() {
            "no directory server answered in time".to_string()
        } else {
            format!("no directory server answered: {}", errors.join("; "))
        }))
    }

    /// A new connection to `server`, bound as the service account for that pool.
    async fn open(&self, server: usize, pool: &Pool) -> Result<(Ldap, Arc<AtomicBool>), OpenError> {
        let url = self.servers.url(server).to_string();
        // Our own TCP connection, for TCP_NODELAY: ldap3 leaves Nagle on, and a
        // request written right after the TLS handshake then waits for the
        // server's delayed ACK: measured 45 ms per new ldaps:// connection
        // against slapd, 1.6 ms with it off.
        let (host, port) = server_address(&url).map_err(OpenError::Unreachable)?;
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| OpenError::Unreachable(format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let tcp = tcp
            .into_std()
            .map_err(|e| OpenError::Unreachable(format!("connect: {e}")))?;
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_starttls(self.starttls)
            .set_std_stream(StdStream::Tcp(tcp));
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &url)
            .await
            .map_err(|e| OpenError::Unreachable(e.to_string()))?;
        let shown = url.clone();
        let closed = Arc::new(AtomicBool::new(false));
        let ended = Arc::clone(&closed);
        tokio::spawn(async move {
            if let Err(error) = conn.drive().await {
                debug!(server = %shown, %error, "LDAP connection closed");
            }
            ended.store(true, Ordering::Relaxed);
        });
        if let Kind::Service { dn, password } = &pool.kind {
            let result = timeout(self.timeout, ldap.simple_bind(dn, password.expose())).await;
            match result {
                Err(_) => {
                    return Err(OpenError::Unreachable(
                        "service bind: no answer in time".into(),
                    ));
                }
                Ok(Err(e)) => return Err(OpenError::Unreachable(format!("service bind: {e}"))),
                Ok(Ok(r)) if r.rc == 0 => {}
                Ok(Ok(r)) if matches!(r.rc, 51 | 52) => {
                    return Err(OpenError::Unreachable(format!("service bind: {}", r.text)));
                }
                Ok(Ok(r)) => {
                    return Err(OpenError::Refused(format!(
                        "the directory refused the service account {dn} (result {}: {})",
                        r.rc,
                        r.text.trim_end_matches('\0')
                    )));
                }
            }
        }
        Ok((ldap, closed))
    }
}

/// Where reads run: on a service-account connection, or on the connection the
/// user has just bound on (direct bind: with the user's own access rights).
pub enum Reader<'a, 'd> {
    /// Service pool, with its retry.
    Service(&'a Directory),
    /// The user's connection; a failure is final.
    User(&'a mut Lease<'d>),
}

impl Reader<'_, '_> {
    /// A search as [`Lease::search`].
    pub async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        size_limit: i32,
    ) -> Result<Found, PrimaryError> {
        match self {
            Reader::Service(directory) => {
                directory
                    .search(base, scope, filter, attrs, size_limit)
                    .await
            }
            Reader::User(lease) => {
                let found = lease
                    .search(base, scope, filter, attrs, size_limit)
                    .await
                    .map_err(|e| unavailable(format!("search as the user failed: {e}")))?;
                debug!(server = %lease.url(), base, filter, rc = found.rc, entries = found.entries.len(), "LDAP search as the user");
                Ok(found)
            }
        }
    }
}

impl Lease<'_> {
    /// The server's URL, for logs.
    pub fn url(&self) -> &str {
        self.directory.servers.url(self.server)
    }

    /// Puts the connection back for the next request (a shared one never
    /// left the pool).
    pub fn release(self) {
        let Lease {
            pool,
            ldap,
            server,
            _slot: slot,
            ..
        } = self;
        if !pool.shared() {
            pool.lock().connections.push(Idle {
                ldap,
                server,
                since: Instant::now(),
            });
        }
        // The slot is freed after the connection is back.
        drop(slot);
    }

    /// Marks the server failed if this connection was new (a pooled one may
    /// just have gone stale), and turns the error into an [`OpError`].
    fn broken(&self, error: OpError) -> OpError {
        let kind = match error {
            OpError::Timeout => "timeout",
            OpError::Broken(_) => "broken",
        };
        count_error(self.url(), kind);
        // Not dropped at once: other searches may still be waiting on it.
        self.pool.forget(&self.ldap);
        if self.reused {
            debug!(server = %self.url(), %error, "pooled LDAP connection failed (gone stale?)");
        } else {
            self.directory
                .servers
                .failed(self.server, &error.to_string());
        }
        error
    }

    /// A simple bind (RFC 4511 §4.2). Result codes, including 49, are results;
    /// only a broken connection, a timeout, or busy/unavailable are errors.
    pub async fn bind(
        &mut self,
        dn: &str,
        password: &Secret<String>,
    ) -> Result<LdapResult, OpError> {
        let mut ldap = self.ldap.ldap.clone();
        let result = timeout(
            self.directory.timeout,
            ldap.simple_bind(dn, password.expose()),
        )
        .await;
        match result {
            Err(_) => Err(self.broken(OpError::Timeout)),
            Ok(Err(e)) => Err(self.broken(OpError::Broken(e.to_string()))),
            Ok(Ok(r)) if matches!(r.rc, 51 | 52) => Err(self.broken(OpError::Broken(format!(
                "server busy or unavailable: {}",
                r.text
            )))),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// A search returning at most `size_limit` entries (0 = server's limit).
    pub async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        size_limit: i32,
    ) -> Result<Found, OpError> {
        let attrs = if attrs.is_empty() {
            // RFC 4511 §4.5.1.8: "1.1" asks for no attributes, just the DNs.
            vec!["1.1".to_string()]
        } else {
            attrs.to_vec()
        };
        let mut ldap = self.ldap.ldap.clone();
        let search = ldap
            .with_search_options(SearchOptions::new().sizelimit(size_limit))
            .search(base, scope, filter, attrs);
        match timeout(self.directory.timeout, search).await {
            Err(_) => Err(self.broken(OpError::Timeout)),
            Ok(Err(e)) => Err(self.broken(OpError::Broken(e.to_string()))),
            Ok(Ok(result)) if matches!(result.1.rc, 51 | 52) => Err(self.broken(OpError::Broken(
                format!("server busy or unavailable: {}", result.1.text),
            ))),
            Ok(Ok(ldap3::SearchResult(entries, result))) => Ok(Found {
                entries: entries.into_iter().filter_map(Entry::parse).collect(),
                rc: result.rc,
                text: result.text,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(urls: &[&str]) -> Directory {
        Directory::new(Settings {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            tls: None,
            starttls: false,
            connect_timeout: Duration::from_millis(200),
            timeout: Duration::from_millis(500),
            pool_size: 2,
            service: None,
        })
    }

    #[tokio::test]
    async fn nothing_listening_is_unavailable_quickly() {
        // A port that refuses: bind one, learn it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("ldap://127.0.0.1:{port}");
        let dir = directory(&[&url, &url]);
        let started = Instant::now();
        let error = match dir.bind("cn=x", &Secret::new("pw".into())).await {
            Err(error) => error,
            Ok(_) => panic!("bound to nothing"),
        };
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(
            matches!(error, PrimaryError::DirectoryUnavailable(_)),
            "{error}"
        );
        assert!(error.to_string().contains(&url), "{error}");
    }
}
