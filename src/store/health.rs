//! Whether the store takes writes, as the request path and `/readyz` see it.
//!
//! rampart must fail closed: a login whose failure count, used code or audit
//! row cannot be recorded is rejected with the same generic reply as any
//! other failure. Once one such write fails, every login is answered with
//! that reply without touching the store (so a wrong code and a right one
//! look the same, and a frozen SQLite file is never touched again), `/readyz`
//! says not ready, and the [`monitor`] probes the store with a real write
//! every second until one succeeds: service comes back by itself when the
//! fault ends, with no restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::Store;

/// Counter of store failures, by what was being done.
pub const STORE_ERRORS: &str = "rampart_store_errors_total";
/// Gauge: 1 while the store takes writes, 0 while rampart fails closed.
pub const STORE_WRITABLE: &str = "rampart_store_writable";

/// How often a healthy store is probed: paths other than logins (portal,
/// admin API) rely on it to stop before they touch broken files.
const PROBE_HEALTHY: Duration = Duration::from_secs(1);
/// How often a failed store is probed, for a quick recovery.
const PROBE_FAILED: Duration = Duration::from_secs(1);
/// Failure counts of names untouched this long are forgotten (once their
/// lock is over), so a spray of invented names leaves no rows behind.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// How often old lockout rows are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// A check cheap enough for every login, that a store installs when it
/// has one (SQLite: may its memory-mapped file be touched at all).
pub type Guard = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Shared by the pipeline, the audit writer, the HTTP listener and the monitor.
pub struct StoreHealth {
    writable: AtomicBool,
    /// Why the store was last found unwritable (for `/readyz`'s log line).
    cause: Mutex<Option<String>>,
    /// Asks the monitor to probe now.
    wake: Notify,
    guard: OnceLock<Guard>,
}

impl std::fmt::Debug for StoreHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHealth")
            .field("writable", &self.is_writable())
            .finish_non_exhaustive()
    }
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            writable: AtomicBool::new(true),
            cause: Mutex::new(None),
            wake: Notify::new(),
            guard: OnceLock::new(),
        }
    }
}

impl StoreHealth {
    /// A healthy store; sets the gauge.
    pub fn new() -> Arc<StoreHealth> {
        metrics::gauge!(STORE_WRITABLE).set(1.0);
        Arc::new(StoreHealth::default())
    }

    /// Whether the store took its last writes.
    pub fn is_writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    /// Installs the store's per-login check (once; later calls are ignored).
    pub fn set_guard(&self, guard: Guard) {
        let _ = self.guard.set(guard);
    }

    /// Whether a login may use the store now: it takes writes, and its
    /// per-login check passes (a failing check fails the store closed).
    pub fn admit(&self) -> bool {
        if !self.is_writable() {
            return false;
        }
        match self.guard.get().map(|guard| guard()) {
            Some(Err(cause)) => {
                self.failed("files", &cause);
                false
            }
            _ => true,
        }
    }

    /// Why the store is not writable, if it is not.
    pub fn cause(&self) -> Option<String> {
        if self.is_writable() {
            return None;
        }
        self.cause.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A write the service needed failed: count it, and fail closed until a
    /// probe succeeds. Logged at ERROR once per outage (the request path
    /// logs each failure at WARN where it happens).
    pub fn failed(&self, operation: &'static str, cause: &dyn std::fmt::Display) {
        metrics::counter!(STORE_ERRORS, "operation" => operation).increment(1);
        let cause = cause.to_string();
        let was = self.writable.swap(false, Ordering::AcqRel);
        if was {
            error!(
                operation,
                %cause,
                "store cannot be written: rejecting every login and not ready until it can"
            );
            metrics::gauge!(STORE_WRITABLE).set(0.0);
        }
        *self.cause.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause);
        self.wake.notify_one();
    }

    /// Asks the monitor to probe now (a file under the store changed).
    pub fn probe_now(&self) {
        self.wake.notify_one();
    }

    fn recovered(&self) {
        if !self.writable.swap(true, Ordering::AcqRel) {
            info!("store takes writes again: logins resume");
            metrics::gauge!(STORE_WRITABLE).set(1.0);
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Probes the store with a write (every [`PROBE_HEALTHY`], every
/// [`PROBE_FAILED`] while failed, and at once when asked), and purges old
/// lockout rows every [`PURGE_EVERY`], until `token` is cancelled. `node`
/// names this process's heartbeat row.
pub async fn monitor(
    store: Arc<dyn Store>,
    health: Arc<StoreHealth>,
    node: String,
    token: CancellationToken,
) {
    let mut purge = tokio::time::interval(PURGE_EVERY);
    loop {
        match store.probe(&node, unix_now()).await {
            Ok(()) => health.recovered(),
            Err(error) => health.failed("probe", &error),
        }
        let pause = if health.is_writable() {
            PROBE_HEALTHY
        } else {
            PROBE_FAILED
        };
        tokio::select! {
            _ = token.cancelled() => return,
            _ = health.wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = purge.tick(), if health.is_writable() => purge_lockouts(store.as_ref(), &health).await,
        }
    }
}

async fn purge_lockouts(store: &dyn Store, health: &StoreHealth) {
    let now = unix_now();
    let before = now - FAILURE_MEMORY.as_secs() as i64;
    match store.purge_lockouts(now, before).await {
        Ok(0) => {}
        Ok(rows) => info!(rows, "forgot lockout rows of names unused for a day"),
        Err(error) => {
            warn!(%error, "cannot purge old lockout rows");
            health.failed("purge_lockouts", &error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[test]
    fn one_failure_fails_closed_until_recovered() {
        let health = StoreHealth::new();
        assert!(health.is_writable());
        assert_eq!(health.cause(), None);
        health.failed("record_failure", &"disk full");
        assert!(!health.is_writable());
        assert_eq!(health.cause().as_deref(), Some("disk full"));
        health.recovered();
        assert!(health.is_writable());
        assert_eq!(health.cause(), None);
    }

    #[tokio::test]
    async fn the_monitor_recovers_a_failed_store_by_itself() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let health = StoreHealth::new();
        health.failed("record_failure", &"a moment of disk full");
        let token = CancellationToken::new();
        let task = tokio::spawn(monitor(store, health.clone(), "test".into(), token.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !health.is_writable() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(health.is_writable(), "a successful probe clears the fault");
        token.cancel();
        task.await.unwrap();
    }
}
