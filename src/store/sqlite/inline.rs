//! The login hot path on SQLite, run inline on the calling thread with
//! rusqlite: the login-state read and the TOTP replay claim.
//!
//! sqlx runs each SQLite connection on its own thread and hands every query and
//! every row across a channel. Measured under load on 2 cores, those context
//! switches, not the SQL, bounded logins with TOTP at ~3 500/s (README,
//! Benchmarks). These two statements take tens of microseconds, so running them
//! directly — like taking a mutex — costs far less than a hand-off, and keeps
//! the tokio worker busy for no longer than tokio's guidance for work between
//! awaits. Everything else in the store stays on sqlx.
//!
//! Same file, WAL mode, same pragmas as the sqlx pool; writes still serialise
//! in SQLite, and the claim is one compare-and-set UPDATE (RFC 6238 §5.2).
//!
//! Reads and writes share one connection. In WAL mode a connection drops its
//! whole page cache when it starts a read after another connection wrote, and
//! on this path something writes for almost every login (the TOTP claim):
//! separate reader connections re-read every B-tree page of every lookup from
//! the file (measured with `strace -c`: 14 `pread` per TOTP login; 0.6 with
//! one connection). The statements take microseconds, so serialising them
//! behind one mutex costs less than the re-reads did.
//!
//! TOTP claims are group-committed. A commit in WAL mode costs far more than
//! the UPDATE inside it (file locks, a WAL frame, the wal-index), and while
//! one worker thread holds the connection for it, the other blocks on the
//! mutex instead of serving requests. So a claim joins a queue, and one task
//! at a time commits everything queued in one transaction, in arrival order:
//! under load a commit carries the claims that arrived during the previous
//! one; alone, a claim commits at once as before. Each claim is still a
//! compare-and-set executed on its own, so of two claims of one step in one
//! batch only the first wins, and no answer is sent before its commit.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::store::{
    DeviceKind, DeviceRecord, LoginState, OutOfBandEnrollment, StoreError, TotpRecord,
};

fn db(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// Connections for the hot path.
pub(super) struct InlineDb {
    /// Reads and writes (see the module doc).
    connection: Mutex<Connection>,
    /// How long a write may wait for SQLite's write lock, retrying asynchronously.
    busy: Duration,
    /// TOTP claims waiting for the next group commit.
    claims: Mutex<ClaimQueue>,
    /// Group commits so far (claims per commit = claims / this).
    claim_commits: AtomicU64,
}

/// One TOTP claim waiting for its commit.
struct Claim {
    name: String,
    step: i64,
    /// Record the login's success in the same transaction if the claim wins.
    success_at: Option<i64>,
    won: oneshot::Sender<Result<bool, StoreError>>,
}

#[derive(Default)]
struct ClaimQueue {
    waiting: Vec<Claim>,
    /// A commit task is running and will take `waiting` when it is done.
    committing: bool,
}

/// Ends a commit task however it ends (also a panic, or the runtime
/// shutting down): the next claim starts a new one, and claims left queued
/// get an error instead of waiting forever.
struct CommitDone<'a> {
    queue: &'a Mutex<ClaimQueue>,
    /// Ended normally: the queue was found empty and handed back already.
    finished: bool,
}

impl Drop for CommitDone<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.committing = false;
            queue.waiting.clear();
        }
    }
}

/// Runs `batch`'s claims in one transaction; whether each won, in order.
fn commit_claims(connection: &mut Connection, batch: &[Claim]) -> rusqlite::Result<Vec<bool>> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut won = Vec::with_capacity(batch.len());
    {
        let mut claim = tx.prepare_cached(super::sql::CLAIM_STEP)?;
        let mut reset = tx.prepare_cached(super::sql::RESET_FAILURES)?;
        let mut last_login = tx.prepare_cached(super::sql::SET_LAST_LOGIN)?;
        for entry in batch {
            let claimed = claim.execute(params![entry.name, entry.step])? == 1;
            if let (true, Some(now)) = (claimed, entry.success_at) {
                reset.execute(params![entry.name, now])?;
                last_login.execute(params![entry.name, now])?;
            }
            won.push(claimed);
        }
    }
    tx.commit()?;
    Ok(won)
}

impl std::fmt::Debug for InlineDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InlineDb")
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db)?;
    // No blocking busy handler: a locked database is retried with an async
    // sleep (see `retry`), never by sleeping on a tokio worker thread, where it
    // could wait on a transaction that needs that very worker to finish.
    connection.busy_timeout(Duration::ZERO).map_err(db)?;
    // The sqlx pool set WAL on the file already; these are per connection.
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(db)?;
    connection
        .pragma_update(None, "foreign_keys", "ON")
        .map_err(db)?;
    Ok(connection)
}

fn read_state(connection: &Connection, name: &str, now: i64) -> rusqlite::Result<LoginState> {
    let mut statement = connection.prepare_cached(super::sql::LOGIN_STATE)?;
    statement
        .query_row(params![name], |row| {
            let sealed: Option<Vec<u8>> = row.get(0)?;
            let last_step: Option<i64> = row.get(1)?;
            let failures: Option<i64> = row.get(2)?;
            let locked_until: Option<i64> = row.get(3)?;
            Ok(LoginState {
                locked_until: locked_until.filter(|until| *until > now),
                failures: failures.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
                last_login: row.get(4)?,
                has_account: row.get(5)?,
                totp: sealed.map(|sealed_secret| TotpRecord {
                    sealed_secret,
                    last_step,
                }),
            })
        })
        .optional()
        .map(Option::unwrap_or_default)
}

impl InlineDb {
    /// Opens the hot-path connections on an existing, migrated database.
    pub(super) fn open(path: &Path, busy: Duration) -> Result<InlineDb, StoreError> {
        Ok(InlineDb {
            connection: Mutex::new(connect(path)?),
            busy,
            claims: Mutex::new(ClaimQueue::default()),
            claim_commits: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `op` on the connection; while SQLite reports the database
    /// busy or locked, releases the connection, sleeps (async) and tries again,
    /// for at most `busy`.
    async fn write<T>(
        &self,
        mut op: impl FnMut(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.busy;
        let mut pause = Duration::from_micros(100);
        loop {
            let result = op(&mut self.lock());
            match result {
                Err(rusqlite::Error::SqliteFailure(error, _))
                    if matches!(
                        error.code,
                        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
                    ) && Instant::now() < deadline =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                other => return other.map_err(db),
            }
        }
    }

    /// Runs a read; a busy database (WAL readers are blocked only during
    /// rare recovery) is waited out with async sleeps.
    async fn read<T>(
        &self,
        query: impl Fn(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + self.busy;
        loop {
            let result = query(&self.lock());
            match result {
                Err(rusqlite::Error::SqliteFailure(error, _))
                    if matches!(
                        error.code,
                        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
                    ) && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                other => return other.map_err(db),
            }
        }
    }

    /// Lockout, failures, last login and TOTP enrollment in one query.
    pub(super) async fn login_state(&self, name: &str, now: i64) -> Result<LoginState, StoreError> {
        self.read(|connection| read_state(connection, name, now))
            .await
    }

    /// The preferred factor and devices: read for every login without a
    /// typed code (push, phone, RD Gateway), so it is on the hot path too.
    pub(super) async fn out_of_band(&self, name: &str) -> Result<OutOfBandEnrollment, StoreError> {
        self.read(|connection| {
            let preferred = connection
                .prepare_cached(super::sql::PREFERRED_FACTOR)?
                .query_row(params![name], |row| row.get::<_, Option<String>>(0))
                .optional()?
                .flatten();
            let mut statement = connection.prepare_cached(super::sql::DEVICES)?;
            let rows = statement.query_map(params![name], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            let mut devices = Vec::new();
            for row in rows {
                let (kind, label, sealed_target, created_at) = row?;
                // A kind this version does not know (a newer one wrote it) is skipped.
                if let Some(kind) = DeviceKind::parse(&kind) {
                    devices.push(DeviceRecord {
                        kind,
                        label,
                        sealed_target,
                        created_at,
                    });
                }
            }
            Ok(OutOfBandEnrollment { preferred, devices })
        })
        .await
    }

    /// Compare-and-set of the last accepted step: true only if `step` is newer.
    pub(super) async fn claim(self: &Arc<Self>, name: &str, step: i64) -> Result<bool, StoreError> {
        self.claim_login(name, step, None).await
    }

    /// [`InlineDb::claim`] and, if it wins and `success_at` is given,
    /// [`InlineDb::record_success`], in one transaction shared with the
    /// claims queued meanwhile (group commit, see the module doc).
    pub(super) async fn claim_login(
        self: &Arc<Self>,
        name: &str,
        step: i64,
        success_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let (won, answer) = oneshot::channel();
        let start_commit = {
            let mut queue = self.claims.lock().unwrap_or_else(|p| p.into_inner());
            queue.waiting.push(Claim {
                name: name.to_string(),
                step,
                success_at,
                won,
            });
            !std::mem::replace(&mut queue.committing, true)
        };
        if start_commit {
            // A task of its own, not this request's future: a request that is
            // dropped mid-wait must not take the other claims with it.
            tokio::spawn(Arc::clone(self).commit_queued());
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the TOTP claim was not committed".into(),
            ))
        })
    }

    /// Commits queued claims, a batch per transaction, until none are left.
    async fn commit_queued(self: Arc<Self>) {
        let mut done = CommitDone {
            queue: &self.claims,
            finished: false,
        };
        loop {
            let batch = {
                let mut queue = self.claims.lock().unwrap_or_else(|p| p.into_inner());
                if queue.waiting.is_empty() {
                    // Under the lock: a claim queued after this starts a new task.
                    queue.committing = false;
                    done.finished = true;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let result = self
                .write(|connection| commit_claims(connection, &batch))
                .await;
            self.claim_commits.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(won) => {
                    for (claim, won) in batch.into_iter().zip(won) {
                        let _ = claim.won.send(Ok(won));
                    }
                }
                Err(error) => {
                    let why = error.to_string();
                    for claim in batch {
                        let _ = claim.won.send(Err(StoreError::Backend(why.clone().into())));
                    }
                }
            }
            // Let this worker serve requests before the next batch.
            tokio::task::yield_now().await;
        }
    }

    /// Single use: deletes the matching code hash; true if this call removed it.
    pub(super) async fn consume_recovery_code(
        &self,
        name: &str,
        hash: &str,
    ) -> Result<bool, StoreError> {
        self.write(|connection| {
            let mut statement = connection.prepare_cached(super::sql::CONSUME_RECOVERY_CODE)?;
            Ok(statement.execute(params![name, hash])? == 1)
        })
        .await
    }

    /// One more consecutive failure; locks at the threshold (same upsert as
    /// the sqlx path, see `SqliteStore::record_failure`).
    pub(super) async fn record_failure(
        &self,
        name: &str,
        max: i64,
        until: i64,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.write(|connection| {
            // Explicit transaction: see `RECORD_FAILURE` on why autocommit
            // would lose the commit's error.
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let locked = tx.prepare_cached(super::sql::RECORD_FAILURE)?.query_row(
                params![name, max, until, now],
                |row| {
                    let failures: i64 = row.get(0)?;
                    let locked_until: Option<i64> = row.get(1)?;
                    Ok(if failures == 0 { locked_until } else { None })
                },
            )?;
            tx.commit()?;
            Ok(locked)
        })
        .await
    }

    /// A successful login: failures reset, an expired lock cleared, last_login set.
    pub(super) async fn record_success(&self, name: &str, now: i64) -> Result<(), StoreError> {
        self.write(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(super::sql::RESET_FAILURES)?
                .execute(params![name, now])?;
            tx.prepare_cached(super::sql::SET_LAST_LOGIN)?
                .execute(params![name, now])?;
            tx.commit()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::InlineDb;
    use crate::store::{SqliteStore, Store};

    /// Claims queued while a commit runs share the next one; each is still
    /// decided on its own, in arrival order.
    #[tokio::test(flavor = "current_thread")]
    async fn claims_queued_together_share_one_commit_and_are_each_decided() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = SqliteStore::open(&path).await.unwrap();
        for i in 0..100 {
            store
                .set_totp(&format!("u{i}"), b"sealed", 1)
                .await
                .unwrap();
        }
        store.add_user("u0", "hash", 1).await.unwrap();
        store.record_failure("u0", 10, 5, 60).await.unwrap();
        let db = Arc::new(InlineDb::open(&path, std::time::Duration::from_secs(5)).unwrap());
        // On one thread every task queues its claim before the commit task
        // runs. u0 claims step 7 twice: only the first wins.
        let mut tasks = Vec::new();
        for (name, step) in (0..100)
            .map(|i| (format!("u{i}"), 7))
            .chain([("u0".to_string(), 7), ("nobody".to_string(), 7)])
        {
            let db = Arc::clone(&db);
            tasks.push(tokio::spawn(async move {
                db.claim_login(&name, step, Some(500)).await.unwrap()
            }));
        }
        let mut won = Vec::new();
        for task in tasks {
            won.push(task.await.unwrap());
        }
        assert!(
            won[..100].iter().all(|w| *w),
            "every user's first claim wins"
        );
        assert_eq!(
            &won[100..],
            &[false, false],
            "the replay and the unenrolled lose"
        );
        assert_eq!(
            db.claim_commits.load(Ordering::Relaxed),
            1,
            "one commit for all"
        );
        // The winners' success was recorded in that commit.
        let state = store.login_state("u0", 500).await.unwrap();
        assert_eq!((state.failures, state.last_login), (0, Some(500)));
        assert_eq!(state.totp.unwrap().last_step, Some(7));
        // A later claim, alone, commits on its own.
        assert!(db.claim_login("u1", 8, None).await.unwrap());
        assert_eq!(db.claim_commits.load(Ordering::Relaxed), 2);
    }

    /// A commit that fails answers every claim of its batch with an error,
    /// and the next claim commits again.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_commit_fails_its_batch_and_the_next_claim_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.set_totp("alice", b"sealed", 1).await.unwrap();
        let db = Arc::new(InlineDb::open(&path, std::time::Duration::from_millis(50)).unwrap());
        // Another connection holds the write lock past the busy budget.
        let blocker = rusqlite::Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let error = db.claim_login("alice", 3, None).await.unwrap_err();
        assert!(error.to_string().contains("locked"), "{error}");
        blocker.execute_batch("ROLLBACK").unwrap();
        assert!(db.claim_login("alice", 3, None).await.unwrap());
    }

    #[tokio::test]
    async fn sees_what_sqlx_wrote_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).await.unwrap();
        store.set_totp("alice", b"sealed", 1).await.unwrap();
        store.record_failure("alice", 100, 5, 60).await.unwrap();
        let state = store.login_state("alice", 100).await.unwrap();
        assert_eq!(state.failures, 1);
        assert!(store.claim_totp_step("alice", 5).await.unwrap());
        // And sqlx sees the claim.
        assert_eq!(
            store.totp("alice").await.unwrap().unwrap().last_step,
            Some(5)
        );
        store.remove_totp("alice").await.unwrap();
        assert!(
            store
                .login_state("alice", 100)
                .await
                .unwrap()
                .totp
                .is_none()
        );
        assert!(!store.claim_totp_step("alice", 6).await.unwrap(), "no TOTP");
    }
}
