//! The SQLite backend of [`Store`]: owns the database file (created 0600,
//! WAL journal, foreign keys on, synchronous NORMAL), its connection pool, and
//! the embedded schema migrations in `migrations/sqlite`. Race-sensitive
//! operations are single SQL statements (SQLite serialises writers, so each is
//! atomic); multi-statement changes run in `BEGIN IMMEDIATE` transactions so
//! they take the write lock up front and wait on `busy_timeout` instead of
//! failing with a lock-upgrade error under contention. Bulk TOTP import, one
//! transaction of multi-row statements, lives in [`import`].

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlSafeStr, SqlitePool, SqliteTransaction};

use crate::store::health::StoreHealth;
use crate::store::{
    AppPasswordSummary, AuditEvent, DeviceKind, LoginState, OutOfBandEnrollment, Store, StoreError,
    TotpRecord, UserSummary,
};

mod admin;
mod devices;
mod files;
mod import;
mod inline;
mod marker;
mod phone_pin;
mod sql;
mod watch;

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Writers serialise anyway; a few connections let reads proceed in parallel
/// under WAL without starving a 2-core host of threads (one per connection).
const POOL_SIZE: u32 = 4;

/// The schema, embedded at build time so the binary needs no migrations
/// directory at run time. Built by hand rather than with `sqlx::migrate!`
/// because that macro needs sqlx's `macros` feature, which the crate does
/// not enable; version and description follow the `migrate!` naming rules
/// (`0001_init.sql` → 1, "init") and the checksum is computed the same way,
/// so switching to the macro later is seamless.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            Cow::Borrowed("init"),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0001_init.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("out of band"),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0002_out_of_band.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            Cow::Borrowed("portal admin"),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0003_portal_admin.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            Cow::Borrowed("phone pin"),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0004_phone_pin.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            Cow::Borrowed("health"),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0005_health.sql").into_sql_str(),
            false,
        ),
    ])
}

/// A [`Store`] kept in one SQLite database file (or in memory, for tests).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Readers: WAL lets them run in parallel with the writer.
    pool: SqlitePool,
    /// The one writer connection. SQLite allows one writer at a time; queuing
    /// writes here, in the async pool, avoids SQLite's busy handler, which
    /// sleeps in steps of milliseconds when writers collide (measured: p50
    /// 17 ms at 64 concurrent logins with 16 writing connections).
    writer: SqlitePool,
    /// The login hot path on its own connections (file databases only; an
    /// in-memory database lives in the single sqlx connection).
    inline: Option<Arc<inline::InlineDb>>,
    /// The database file as opened (file databases only), for the probe.
    files: Option<Arc<files::DbFiles>>,
}

pub use files::FileFault;
pub use marker::ServingMarker;

/// Wraps a backend error. sqlx/SQLite messages name tables and constraints,
/// never bound values, so no secret reaches the message.
fn db<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// Counts stored as SQLite integers, clamped into `u32` for display.
fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// The summary query, as a macro so `concat!` can build the two variants as
/// `&'static str` (what sqlx accepts as SQL without an injection audit).
macro_rules! summary_select {
    () => {
        "\
    SELECT a.name, \
           a.password_hash IS NOT NULL AS local_password, \
           EXISTS (SELECT 1 FROM totp t WHERE t.name = a.name) AS has_totp, \
           (SELECT COUNT(*) FROM recovery_codes r WHERE r.name = a.name) AS codes_left, \
           COALESCE(l.failures, 0) AS failures, \
           l.locked_until, \
           a.last_login, \
           a.created_at \
    FROM accounts a LEFT JOIN lockouts l ON l.name = a.name"
    };
}

fn summary(row: &SqliteRow) -> Result<UserSummary, StoreError> {
    Ok(UserSummary {
        name: row.try_get("name").map_err(db)?,
        local_password: row.try_get::<i64, _>("local_password").map_err(db)? != 0,
        totp: row.try_get::<i64, _>("has_totp").map_err(db)? != 0,
        recovery_codes_left: count(row.try_get("codes_left").map_err(db)?),
        failures: count(row.try_get("failures").map_err(db)?),
        locked_until: row.try_get("locked_until").map_err(db)?,
        last_login: row.try_get("last_login").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

impl SqliteStore {
    /// Opens (creating if needed, with parent directories) the database at
    /// `path` and applies pending migrations. A new file is created with mode
    /// 0600 (SQLite gives its `-wal`/`-shm` files the same mode) because it
    /// holds password hashes and sealed seeds.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .await
                .map_err(db)?;
        }
        // Pre-create so the mode is right from the first byte; an existing
        // file is left as the administrator set it.
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(db(e)),
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL, WAL's usual setting: a commit survives a crash of
            // rampart but is fsynced only at checkpoints. FULL costs one fsync
            // per login (measured 1.6 ms here, serialising logins at ~600/s).
            // What NORMAL risks is narrow: after a power loss, a TOTP step
            // claimed in the last moments could be claimed again — but the
            // code expires within 90 s, less than a reboot takes.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .after_release(|connection, _| Box::pin(usable_after_release(connection)))
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .after_release(|connection, _| Box::pin(usable_after_release(connection)))
            .connect_with(options)
            .await
            .map_err(db)?;
        let mut store = Self::migrated(pool, writer).await?;
        store.inline = Some(Arc::new(inline::InlineDb::open(path, BUSY_TIMEOUT)?));
        store.files = Some(Arc::new(files::DbFiles::new(path).map_err(db)?));
        Ok(store)
    }

    /// An empty private in-memory database, for tests and benchmarks.
    pub async fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        // Each in-memory connection is its own database, so the pool must
        // hold exactly one connection and never retire it.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db)?;
        Self::migrated(pool.clone(), pool).await
    }

    async fn migrated(pool: SqlitePool, writer: SqlitePool) -> Result<SqliteStore, StoreError> {
        migrator().run(&writer).await.map_err(db)?;
        Ok(SqliteStore {
            pool,
            writer,
            inline: None,
            files: None,
        })
    }

    /// Starts a transaction holding the write lock from the start, so it can
    /// wait for other writers rather than fail on a read-to-write upgrade.
    async fn write_tx(&self) -> Result<SqliteTransaction<'static>, StoreError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }
}

/// Whether a connection handed back to the pool can serve the next caller.
/// A COMMIT that fails (disk full, read-only file) can leave sqlx counting an
/// open transaction that SQLite already rolled back; every later
/// `BEGIN IMMEDIATE` on that connection then fails ("non-zero transaction
/// depth") until a restart. Such a connection is closed instead, and the pool
/// opens a fresh one. The ping first lets the rollback a dropped transaction
/// queued reach the connection before its state is read.
async fn usable_after_release(
    connection: &mut sqlx::SqliteConnection,
) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    connection.ping().await?;
    Ok(!connection.is_in_transaction())
}

/// Creates the account row for factor enrolment of a user not yet known here
/// (e.g. a directory user); a no-op when it exists.
async fn ensure_account(
    tx: &mut SqliteTransaction<'static>,
    name: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO accounts (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_user(&self, name: &str, password_hash: &str, now: i64) -> Result<(), StoreError> {
        // One statement: insert, or give the password to an existing
        // password-less account; zero rows changed means a local user exists.
        let done = sqlx::query(
            "INSERT INTO accounts (name, password_hash, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash \
             WHERE accounts.password_hash IS NULL",
        )
        .bind(name)
        .bind(password_hash)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(name.to_owned()));
        }
        Ok(())
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE accounts SET password_hash = ?2 WHERE name = ?1 AND password_hash IS NOT NULL",
        )
        .bind(name)
        .bind(password_hash)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }

    async fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let mut removed = 0;
        // Factor tables explicitly, not only via ON DELETE CASCADE, so the
        // result does not hinge on the foreign_keys pragma; lockouts has no FK.
        for sql in [
            "DELETE FROM totp WHERE name = ?1",
            "DELETE FROM recovery_codes WHERE name = ?1",
            "DELETE FROM devices WHERE name = ?1",
            "DELETE FROM sms_codes WHERE name = ?1",
            "DELETE FROM app_passwords WHERE name = ?1",
            "DELETE FROM invitations WHERE name = ?1",
            "DELETE FROM lockouts WHERE name = ?1",
            "DELETE FROM accounts WHERE name = ?1",
        ] {
            removed += sqlx::query(sql)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
        }
        if removed == 0 {
            // Nothing changed; dropping the transaction rolls it back.
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        tx.commit().await.map_err(db)
    }

    async fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        sqlx::query(concat!(summary_select!(), " ORDER BY a.name"))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(summary)
            .collect()
    }

    async fn user(&self, name: &str) -> Result<Option<UserSummary>, StoreError> {
        sqlx::query(concat!(summary_select!(), " WHERE a.name = ?1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(summary)
            .transpose()
    }

    async fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM accounts WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row {
            Some(row) => row.try_get("password_hash").map_err(db),
            None => Ok(None),
        }
    }

    async fn set_totp(&self, name: &str, sealed_secret: &[u8], now: i64) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        ensure_account(&mut tx, name, now).await?;
        // A new seed starts a new step history: steps of the old seed must
        // not block the first codes of the new one.
        sqlx::query(
            "INSERT INTO totp (name, sealed_secret, last_step, created_at) VALUES (?1, ?2, NULL, ?3) \
             ON CONFLICT (name) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
             last_step = NULL, created_at = excluded.created_at",
        )
        .bind(name)
        .bind(sealed_secret)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn import_totp(&self, seeds: &[(String, Vec<u8>)], now: i64) -> Result<(), StoreError> {
        self.import_totp_batched(seeds, now).await
    }

    async fn totp(&self, name: &str) -> Result<Option<TotpRecord>, StoreError> {
        let row = sqlx::query("SELECT sealed_secret, last_step FROM totp WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|row| {
            Ok(TotpRecord {
                sealed_secret: row.try_get("sealed_secret").map_err(db)?,
                last_step: row.try_get("last_step").map_err(db)?,
            })
        })
        .transpose()
    }

    async fn login_state(&self, name: &str, now: i64) -> Result<LoginState, StoreError> {
        if let Some(inline) = &self.inline {
            return inline.login_state(name, now).await;
        }
        let row = sqlx::query(sql::LOGIN_STATE)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let sealed: Option<Vec<u8>> = row.try_get("sealed_secret").map_err(db)?;
        let locked_until: Option<i64> = row.try_get("locked_until").map_err(db)?;
        let failures: Option<i64> = row.try_get("failures").map_err(db)?;
        Ok(LoginState {
            locked_until: locked_until.filter(|until| *until > now),
            failures: failures.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
            last_login: row.try_get("last_login").map_err(db)?,
            has_account: row.try_get("has_account").map_err(db)?,
            totp: match sealed {
                Some(sealed_secret) => Some(TotpRecord {
                    sealed_secret,
                    last_step: row.try_get("last_step").map_err(db)?,
                }),
                None => None,
            },
        })
    }

    async fn remove_totp(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM totp WHERE name = ?1")
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    async fn claim_totp_login(
        &self,
        name: &str,
        step: i64,
        success_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        match &self.inline {
            Some(inline) => inline.claim_login(name, step, success_at).await,
            None => super::claim_then_record(self, name, step, success_at).await,
        }
    }

    async fn claim_totp_step(&self, name: &str, step: i64) -> Result<bool, StoreError> {
        // Compare-and-set in one statement: of racing claims for the same
        // step, the first to commit changes the row and the rest match nothing.
        if let Some(inline) = &self.inline {
            return inline.claim(name, step).await;
        }
        let done = sqlx::query(sql::CLAIM_STEP)
            .bind(name)
            .bind(step)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(
        &self,
        name: &str,
        hashes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        ensure_account(&mut tx, name, now).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE name = ?1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for hash in hashes {
            // A duplicate hash in the input is one code, not an error.
            sqlx::query(
                "INSERT INTO recovery_codes (name, hash, created_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name, hash) DO NOTHING",
            )
            .bind(name)
            .bind(hash.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn consume_recovery_code(&self, name: &str, hash: &str) -> Result<bool, StoreError> {
        // The DELETE is the check: only one racing caller can remove the row.
        if let Some(inline) = &self.inline {
            return inline.consume_recovery_code(name, hash).await;
        }
        let done = sqlx::query(sql::CONSUME_RECOVERY_CODE)
            .bind(name)
            .bind(hash)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_failure(
        &self,
        name: &str,
        now: i64,
        max_failures: u32,
        lock_secs: i64,
    ) -> Result<Option<i64>, StoreError> {
        // A threshold of 0 would never be "reached" by counting up from 1;
        // treat it as 1 rather than silently disabling lockout.
        let max = i64::from(max_failures.max(1));
        let until = now.saturating_add(lock_secs);
        if let Some(inline) = &self.inline {
            return inline.record_failure(name, max, until, now).await;
        }
        // Increment, threshold test and lock in one upsert, so concurrent
        // failures can neither be lost nor each trigger the lock. The count
        // is reset to 0 exactly when this call locked, which is how we know.
        // An explicit transaction, so a failed commit is an error here.
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(sql::RECORD_FAILURE)
            .bind(name)
            .bind(max)
            .bind(until)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let failures: i64 = row.try_get("failures").map_err(db)?;
        if failures == 0 {
            Ok(row.try_get("locked_until").map_err(db)?)
        } else {
            Ok(None)
        }
    }

    async fn record_success(&self, name: &str, now: i64) -> Result<(), StoreError> {
        // One transaction: a single commit (one WAL sync) on the login path.
        if let Some(inline) = &self.inline {
            return inline.record_success(name, now).await;
        }
        let mut tx = self.write_tx().await?;
        // An expired lock is cleared too so summaries stop showing it; an
        // active one is kept in case a caller reports success while locked.
        sqlx::query(sql::RESET_FAILURES)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(sql::SET_LAST_LOGIN)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn add_device(
        &self,
        name: &str,
        kind: DeviceKind,
        label: &str,
        sealed_target: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        self.add_device_tx(name, kind, label, sealed_target, now)
            .await
    }

    async fn remove_device(
        &self,
        name: &str,
        kind: DeviceKind,
        label: &str,
    ) -> Result<bool, StoreError> {
        self.remove_device_row(name, kind, label).await
    }

    async fn out_of_band(&self, name: &str) -> Result<OutOfBandEnrollment, StoreError> {
        self.read_out_of_band(name).await
    }

    async fn set_preferred_factor(
        &self,
        name: &str,
        factor: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write_preferred_factor(name, factor).await
    }

    async fn put_sms_code(
        &self,
        name: &str,
        hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.write_sms_code(name, hash, expires_at).await
    }

    async fn take_sms_code(&self, name: &str, hash: &str, now: i64) -> Result<bool, StoreError> {
        self.consume_sms_code(name, hash, now).await
    }

    async fn set_phone_pin(&self, name: &str, hash: &str, now: i64) -> Result<(), StoreError> {
        self.write_phone_pin(name, hash, now).await
    }

    async fn phone_pin_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.read_phone_pin(name).await
    }

    async fn clear_phone_pin(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_phone_pin(name).await
    }

    async fn lock_user(&self, name: &str, until: i64) -> Result<(), StoreError> {
        self.write_lock(name, until).await
    }

    async fn add_app_password(
        &self,
        name: &str,
        label: &str,
        hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.insert_app_password(name, label, hash, now).await
    }

    async fn app_passwords(&self, name: &str) -> Result<Vec<AppPasswordSummary>, StoreError> {
        self.read_app_passwords(name).await
    }

    async fn revoke_app_password(
        &self,
        name: &str,
        label: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.delete_app_passwords(name, label).await
    }

    async fn use_app_password(
        &self,
        name: &str,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        self.touch_app_password(name, hash, now).await
    }

    async fn create_invitation(
        &self,
        hash: &str,
        name: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.insert_invitation(hash, name, expires_at, now).await
    }

    async fn redeem_invitation(&self, hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        self.take_invitation(hash, now).await
    }

    async fn invited_users(&self, now: i64) -> Result<Vec<String>, StoreError> {
        self.live_invitations(now).await
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.insert_audit(events).await
    }

    async fn prune_audit(&self, before: i64) -> Result<u64, StoreError> {
        self.delete_audit_before(before).await
    }

    async fn audit(
        &self,
        name: Option<&str>,
        since: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.read_audit(name, since, until, limit).await
    }

    async fn unlock(&self, name: &str) -> Result<bool, StoreError> {
        // Deleting the row clears both fields; RETURNING yields the old
        // values, so the answer and the change are one atomic statement. In a
        // transaction, so a failed commit is not taken for a success.
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("DELETE FROM lockouts WHERE name = ?1 RETURNING locked_until")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        match row {
            Some(row) => Ok(row
                .try_get::<Option<i64>, _>("locked_until")
                .map_err(db)?
                .is_some()),
            None => Ok(false),
        }
    }

    async fn purge_lockouts(&self, now: i64, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::PURGE_LOCKOUTS)
            .bind(now)
            .bind(before)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    fn watch_files(&self, health: Arc<StoreHealth>) -> std::io::Result<()> {
        match &self.files {
            Some(files) => watch::spawn(files.clone(), health),
            None => Ok(()),
        }
    }

    async fn probe(&self, node: &str, now: i64) -> Result<(), StoreError> {
        // The files first: SQLite must not touch a frozen wal-index (SIGBUS).
        if let Some(files) = &self.files {
            files.check().map_err(db)?;
        }
        sqlx::query(sql::HEARTBEAT)
            .bind(node)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    fn codes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// A transaction that SQLite ended while sqlx still counts it open (what
    /// a failed COMMIT on a full disk leaves) must not break the writer:
    /// every later write used to fail with "non-zero transaction depth".
    #[tokio::test]
    async fn a_transaction_left_open_in_sqlx_does_not_break_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).await.unwrap();
        {
            let mut tx = store.write_tx().await.unwrap();
            sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
        }
        store.set_totp("alice", b"sealed", 1).await.unwrap();
        store.add_user("bob", HASH, 1).await.unwrap();
        store.delete_user("bob").await.unwrap();
        assert!(store.totp("alice").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn totp_debug_hides_secret() {
        let t = TotpRecord {
            sealed_secret: vec![0xAB; 5],
            last_step: Some(3),
        };
        let d = format!("{t:?}");
        assert!(d.contains("sealed_secret_len: 5"), "{d}");
        assert!(!d.contains("171"), "{d}");
    }

    #[tokio::test]
    async fn file_db_persists_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/rampart.db");
        {
            let s = SqliteStore::open(&path).await.unwrap();
            s.add_user("alice", HASH, 1).await.unwrap();
            s.set_totp("alice", b"sealed", 2).await.unwrap();
            assert!(s.claim_totp_step("alice", 9).await.unwrap());
            s.replace_recovery_codes("alice", &codes(&["h1"]), 3)
                .await
                .unwrap();
            s.record_failure("alice", 4, 1, 60).await.unwrap();

            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&s.pool)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&s.pool)
                .await
                .unwrap();
            assert_eq!(fk, 1);
            s.pool.close().await;
        }
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);

        // Reopening runs migrations again (a no-op) and keeps the data.
        let s = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            s.password_hash("alice").await.unwrap().as_deref(),
            Some(HASH)
        );
        let t = s.totp("alice").await.unwrap().unwrap();
        assert_eq!(t.sealed_secret, b"sealed");
        assert_eq!(t.last_step, Some(9));
        assert!(!s.claim_totp_step("alice", 9).await.unwrap());
        assert_eq!(
            s.login_state("alice", 5).await.unwrap().locked_until,
            Some(64)
        );
        assert!(s.consume_recovery_code("alice", "h1").await.unwrap());
    }

    #[tokio::test]
    async fn factor_writes_are_transactional() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        // Make the second statement of set_totp / replace_recovery_codes
        // fail after the account row was already inserted.
        sqlx::query(
            "CREATE TRIGGER fail_totp BEFORE INSERT ON totp \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        sqlx::query(
            "CREATE TRIGGER fail_codes BEFORE INSERT ON recovery_codes \
             WHEN NEW.hash = 'bad' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .execute(&s.pool)
        .await
        .unwrap();

        let err = s.set_totp("alice", b"sealed-secret", 1).await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)));
        // Error text carries no bound values.
        let msg = err.to_string();
        assert!(
            !msg.contains("alice") && !msg.contains("sealed-secret"),
            "{msg}"
        );
        assert_eq!(
            s.user("alice").await.unwrap(),
            None,
            "account insert rolled back"
        );

        s.replace_recovery_codes("bob", &codes(&["h1"]), 1)
            .await
            .unwrap();
        assert!(
            s.replace_recovery_codes("bob", &codes(&["n1", "bad"]), 2)
                .await
                .is_err()
        );
        // The old set survives the failed replacement, the partial new one does not.
        assert!(!s.consume_recovery_code("bob", "n1").await.unwrap());
        assert!(s.consume_recovery_code("bob", "h1").await.unwrap());
        assert!(
            s.replace_recovery_codes("carol", &codes(&["bad"]), 1)
                .await
                .is_err()
        );
        assert_eq!(s.user("carol").await.unwrap(), None);

        // Without the injected failure both rows appear together.
        sqlx::query("DROP TRIGGER fail_totp")
            .execute(&s.pool)
            .await
            .unwrap();
        s.set_totp("alice", b"sealed", 1).await.unwrap();
        let accounts: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE name = 'alice'")
                .fetch_one(&s.pool)
                .await
                .unwrap();
        let totps: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM totp WHERE name = 'alice'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!((accounts, totps), (1, 1));
    }

    #[tokio::test]
    async fn cascade_backs_up_explicit_deletes() {
        // Foreign keys are on, so removing an account row directly also
        // removes its factors (defence in depth for manual maintenance).
        let s = SqliteStore::open_in_memory().await.unwrap();
        s.set_totp("alice", b"sealed", 1).await.unwrap();
        s.replace_recovery_codes("alice", &codes(&["h1"]), 1)
            .await
            .unwrap();
        sqlx::query("DELETE FROM accounts WHERE name = 'alice'")
            .execute(&s.pool)
            .await
            .unwrap();
        assert!(s.totp("alice").await.unwrap().is_none());
        assert!(!s.consume_recovery_code("alice", "h1").await.unwrap());
    }
}
