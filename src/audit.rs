//! The audit log in the store: every decision becomes one row, written off
//! the request path by one background task in batches (one transaction per
//! batch), so a busy gateway pays a channel send per login, not a write. Rows
//! older than the retention are pruned once an hour. The log line on the
//! `rampart::audit` target stays the real-time record; this table is what the
//! admin API queries by user and time. A batch the store refuses is kept and
//! written again (up to [`RETRY_KEEP`] rows) and fails the store closed
//! ([`StoreHealth`]): no login is decided while its audit row cannot be kept.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::store::health::StoreHealth;
use crate::store::{AuditEvent, Store};

/// Events waiting to be written; beyond this, new ones are dropped and counted
/// (the store is down or far behind; the log line still has them).
const QUEUE: usize = 65_536;
/// Rows per transaction.
const BATCH: usize = 512;
/// After the first row of a batch, how long the writer gathers more before
/// it writes. Without it a busy gateway wrote a transaction (and woke the
/// store's thread) for almost every login: measured ~1 wake-up per login at
/// 10 000 logins/s, a tenth of a core. Rows reach the table this much later.
const GATHER: Duration = Duration::from_millis(100);
/// Rows of failed batches kept for the next attempt; older ones are dropped
/// and counted (they are in the log).
const RETRY_KEEP: usize = 8 * BATCH;
/// How often a failed batch is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Hands decisions to the writer task.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<AuditEvent>,
}

impl AuditLog {
    /// Starts the writer; it flushes what is queued and stops when `token`
    /// is cancelled and every [`AuditLog`] handle is dropped.
    pub fn spawn(
        store: Arc<dyn Store>,
        retention: Duration,
        token: CancellationToken,
        health: Arc<StoreHealth>,
    ) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let writer = Writer { store, health };
        let task = tokio::spawn(write(writer, receiver, retention, token));
        (AuditLog { sender }, task)
    }

    /// Queues one decision; never waits.
    pub fn record(&self, event: AuditEvent) {
        if self.sender.try_send(event).is_err() {
            metrics::counter!("rampart_audit_dropped_total").increment(1);
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The store and its health, for the writer task.
struct Writer {
    store: Arc<dyn Store>,
    health: Arc<StoreHealth>,
}

async fn write(
    writer: Writer,
    mut receiver: mpsc::Receiver<AuditEvent>,
    retention: Duration,
    token: CancellationToken,
) {
    let mut prune = tokio::time::interval(Duration::from_secs(3600));
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            received = receiver.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
                let closed = gather(&mut receiver, &mut batch).await;
                writer.flush(&mut batch).await;
                if closed {
                    return;
                }
            }
            // Rows kept from a failed batch: try again without waiting for new ones.
            _ = tokio::time::sleep(RETRY_EVERY), if !batch.is_empty() => {
                writer.flush(&mut batch).await;
            }
            _ = prune.tick() => {
                let before = unix_now() - retention.as_secs() as i64;
                if let Err(error) = writer.store.prune_audit(before).await {
                    warn!(%error, "cannot prune the audit log");
                }
            }
            _ = token.cancelled() => {
                // Shutting down: write what is queued, then stop.
                while let Ok(event) = receiver.try_recv() {
                    batch.push(event);
                    if batch.len() >= BATCH {
                        writer.flush(&mut batch).await;
                    }
                }
                writer.flush(&mut batch).await;
                return;
            }
        }
    }
}

/// Adds what arrives within [`GATHER`] (up to [`BATCH`] rows) to `batch`;
/// true when every sender is gone.
async fn gather(receiver: &mut mpsc::Receiver<AuditEvent>, batch: &mut Vec<AuditEvent>) -> bool {
    let deadline = tokio::time::Instant::now() + GATHER;
    while batch.len() < BATCH {
        let room = BATCH - batch.len();
        match tokio::time::timeout_at(deadline, receiver.recv_many(batch, room)).await {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    false
}

impl Writer {
    /// Writes `batch`; on failure keeps its newest [`RETRY_KEEP`] rows for
    /// the next attempt and fails the store closed.
    async fn flush(&self, batch: &mut Vec<AuditEvent>) {
        if batch.is_empty() {
            return;
        }
        let Err(error) = self.store.record_audit(batch).await else {
            batch.clear();
            return;
        };
        warn!(%error, rows = batch.len(), "cannot write audit rows (kept for a retry; they are in the log)");
        self.health.failed("audit", &error);
        if batch.len() > RETRY_KEEP {
            let excess = batch.len() - RETRY_KEEP;
            batch.drain(..excess);
            metrics::counter!("rampart_audit_dropped_total").increment(excess as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn queued_events_reach_the_store_and_shutdown_flushes() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let token = CancellationToken::new();
        let (log, task) = AuditLog::spawn(
            store.clone(),
            Duration::from_secs(86_400),
            token.clone(),
            StoreHealth::new(),
        );
        let now = unix_now();
        for i in 0..1000 {
            log.record(AuditEvent {
                time: now,
                user: format!("u{i}"),
                client: "vpn".into(),
                station: None,
                outcome: "accept".into(),
                reason: "ok".into(),
                factor: "totp".into(),
                duration_ms: 1,
            });
        }
        token.cancel();
        task.await.unwrap();
        assert_eq!(
            store.audit(None, 0, i64::MAX, 5000).await.unwrap().len(),
            1000
        );
        // Old rows go.
        store.prune_audit(now + 1).await.unwrap();
        assert!(store.audit(None, 0, i64::MAX, 10).await.unwrap().is_empty());
    }
}
