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

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

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
    pub(super) async fn claim(&self, name: &str, step: i64) -> Result<bool, StoreError> {
        self.write(|connection| {
            let mut statement = connection.prepare_cached(super::sql::CLAIM_STEP)?;
            Ok(statement.execute(params![name, step])? == 1)
        })
        .await
    }

    /// [`InlineDb::claim`] and, if it wins and `success_at` is given,
    /// [`InlineDb::record_success`], in one transaction: one commit per TOTP
    /// login instead of two.
    pub(super) async fn claim_login(
        &self,
        name: &str,
        step: i64,
        success_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.write(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let claimed = tx
                .prepare_cached(super::sql::CLAIM_STEP)?
                .execute(params![name, step])?
                == 1;
            if let (true, Some(now)) = (claimed, success_at) {
                tx.prepare_cached(super::sql::RESET_FAILURES)?
                    .execute(params![name, now])?;
                tx.prepare_cached(super::sql::SET_LAST_LOGIN)?
                    .execute(params![name, now])?;
            }
            tx.commit()?;
            Ok(claimed)
        })
        .await
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
    ) -> Result<Option<i64>, StoreError> {
        self.write(|connection| {
            let mut statement = connection.prepare_cached(super::sql::RECORD_FAILURE)?;
            statement.query_row(params![name, max, until], |row| {
                let failures: i64 = row.get(0)?;
                let locked_until: Option<i64> = row.get(1)?;
                Ok(if failures == 0 { locked_until } else { None })
            })
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
    use crate::store::{SqliteStore, Store};

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
