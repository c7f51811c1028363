//! The PostgreSQL backend of [`Store`], for several rampart nodes sharing one
//! database: a TOTP step claimed, a recovery or SMS code consumed, a lockout
//! set at one node holds at every other, because each of those is one SQL
//! statement that PostgreSQL makes atomic across connections (a compare-and-
//! set `UPDATE`, a `DELETE`, an `INSERT ... ON CONFLICT DO UPDATE`; under READ
//! COMMITTED a second writer of the same row waits for the first and
//! re-checks its `WHERE` against the committed row, PostgreSQL docs §13.2.1).
//!
//! Owns the connection pool (sized and bounded in time by `[store]`, see
//! [`connect`]) and the embedded migrations in `migrations/postgres`, which
//! mirror the SQLite ones column for column. Every operation of the request
//! path is bounded by `timeout_ms` (bulk import, the full user listing and
//! audit pruning are not): while the server is unreachable calls fail with
//! [`StoreError::Backend`] (the pipeline answers `store_unavailable`) and the
//! pool reconnects by itself once it is back. This file holds the pool, the
//! migrations and the [`Store`] impl, which bounds each call and dispatches:
//! users to `accounts`, TOTP, recovery codes and lockout to `login` (its
//! statements in `sql`), out-of-band enrollment to `devices`, the call PIN
//! to `phone_pin`, app passwords, invitations and audit to `admin`, bulk
//! import to `import`.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPool;
use sqlx::{PgTransaction, Row, SqlSafeStr};

use crate::store::{
    AppPasswordSummary, AuditEvent, DeviceKind, LoginState, OutOfBandEnrollment, Store,
    StoreConfig, StoreError, TotpRecord, UserSummary,
};

mod accounts;
mod admin;
pub mod connect;
mod devices;
mod import;
mod login;
mod phone_pin;
mod sql;
#[cfg(test)]
mod tests;

/// Why a PostgreSQL operation failed besides what sqlx reports.
#[derive(Debug, thiserror::Error)]
pub enum PgStoreError {
    /// The operation (connecting included) took longer than `timeout_ms`.
    #[error("PostgreSQL did not answer within {0:?}")]
    TimedOut(Duration),
    /// `[store] password_file` could not be read.
    #[error("store.password_file: {0}")]
    PasswordFile(String),
    /// The configuration selects SQLite, not PostgreSQL.
    #[error("store.url is not set")]
    NoUrl,
}

/// The schema, embedded at build time like the SQLite one (see
/// `sqlite::migrator`): same versions and descriptions, PostgreSQL types.
/// sqlx's PostgreSQL migrator holds an advisory lock while it runs, so two
/// nodes starting at once on an empty database migrate it once.
fn migrator() -> Migrator {
    let migration = |version, description, sql: &'static str| {
        Migration::new(
            version,
            Cow::Borrowed(description),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(
            1,
            "init",
            include_str!("../../migrations/postgres/0001_init.sql"),
        ),
        migration(
            2,
            "out of band",
            include_str!("../../migrations/postgres/0002_out_of_band.sql"),
        ),
        migration(
            3,
            "portal admin",
            include_str!("../../migrations/postgres/0003_portal_admin.sql"),
        ),
        migration(
            4,
            "phone pin",
            include_str!("../../migrations/postgres/0004_phone_pin.sql"),
        ),
        migration(
            5,
            "health",
            include_str!("../../migrations/postgres/0005_health.sql"),
        ),
    ])
}

/// A [`Store`] in a PostgreSQL database shared by every node.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Bound on every operation (bulk import excepted).
    timeout: Duration,
}

/// Wraps a backend error. sqlx's PostgreSQL errors carry the server's
/// message (which names constraints, not values; the `DETAIL` that would
/// quote a key is not part of it), never bound values.
fn db<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// Counts stored as PostgreSQL integers, clamped into `u32` for display.
fn count(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// PostgreSQL `text` cannot hold U+0000, so no stored name contains one: a
/// name that does is known to be absent, without asking the server (which
/// would refuse the parameter).
fn storable(name: &str) -> bool {
    !name.contains('\0')
}

impl PostgresStore {
    /// Connects with the `[store]` settings (`url`, `password_file`, TLS,
    /// pool) and applies pending migrations. Fails if the server cannot be
    /// reached within `timeout_ms`.
    pub async fn open(config: &StoreConfig) -> Result<PostgresStore, StoreError> {
        let options = connect::options(config)?;
        Self::open_with(options, config.pool_size(), config.timeout()).await
    }

    /// Connects with explicit options (tests, benchmarks) and migrates.
    pub async fn open_with(
        options: sqlx::postgres::PgConnectOptions,
        pool_size: u32,
        timeout: Duration,
    ) -> Result<PostgresStore, StoreError> {
        let pool = connect::pool(pool_size, timeout)
            .connect_with(options)
            .await
            .map_err(db)?;
        migrator().run(&pool).await.map_err(db)?;
        Ok(PostgresStore { pool, timeout })
    }

    /// One enrolled TOTP seed, `(user, sealed seed)`, if any: every node must
    /// seal with the same key file, and `app::open_store` checks that this
    /// node's key opens what the others sealed before serving.
    pub async fn any_sealed_seed(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.bounded(async {
            let row = sqlx::query("SELECT name, sealed_secret FROM totp LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
            row.map(|row| {
                Ok((
                    row.try_get("name").map_err(db)?,
                    row.try_get("sealed_secret").map_err(db)?,
                ))
            })
            .transpose()
        })
        .await
    }

    /// The connection pool, for tests that inspect the database directly.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `op` within the store's timeout. A timed-out operation is
    /// dropped; sqlx rolls back an open transaction and tests the connection
    /// before reusing it.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(db(PgStoreError::TimedOut(self.timeout))),
        }
    }

    async fn begin(&self) -> Result<PgTransaction<'static>, StoreError> {
        self.pool.begin().await.map_err(db)
    }
}

/// Creates the account row for factor enrolment of a user not yet known here
/// (e.g. a directory user); a no-op when it exists.
async fn ensure_account(
    tx: &mut PgTransaction<'static>,
    name: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO accounts (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Locks the user's account row until the transaction ends, so that
/// multi-statement changes of one user (replacing the recovery-code set)
/// serialise across nodes as SQLite's single writer serialises them.
async fn lock_account(tx: &mut PgTransaction<'static>, name: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT 1 FROM accounts WHERE name = $1 FOR UPDATE")
        .bind(name)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn add_user(&self, name: &str, password_hash: &str, now: i64) -> Result<(), StoreError> {
        self.bounded(self.insert_user(name, password_hash, now))
            .await
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        self.bounded(self.update_password(name, password_hash))
            .await
    }

    async fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        if !storable(name) {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        self.bounded(self.delete_user_rows(name)).await
    }

    async fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        // Not bounded by `timeout_ms`: an administrator's listing (and the
        // import's check of who is enrolled) may read a hundred thousand rows.
        self.read_users().await
    }

    async fn user(&self, name: &str) -> Result<Option<UserSummary>, StoreError> {
        if !storable(name) {
            return Ok(None);
        }
        self.bounded(self.read_user(name)).await
    }

    async fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        if !storable(name) {
            return Ok(None);
        }
        self.bounded(self.read_password_hash(name)).await
    }

    async fn set_totp(&self, name: &str, sealed_secret: &[u8], now: i64) -> Result<(), StoreError> {
        self.bounded(self.write_totp(name, sealed_secret, now))
            .await
    }

    async fn import_totp(&self, seeds: &[(String, Vec<u8>)], now: i64) -> Result<(), StoreError> {
        // Not bounded by `timeout_ms`: a hundred thousand seeds take seconds.
        self.import_totp_batched(seeds, now).await
    }

    async fn totp(&self, name: &str) -> Result<Option<TotpRecord>, StoreError> {
        if !storable(name) {
            return Ok(None);
        }
        self.bounded(self.read_totp(name)).await
    }

    async fn login_state(&self, name: &str, now: i64) -> Result<LoginState, StoreError> {
        if !storable(name) {
            // Still a round trip, so `/readyz` and callers see an unreachable server.
            return self
                .bounded(async {
                    sqlx::query("SELECT 1")
                        .execute(&self.pool)
                        .await
                        .map_err(db)?;
                    Ok(LoginState::default())
                })
                .await;
        }
        self.bounded(self.read_login_state(name, now)).await
    }

    async fn remove_totp(&self, name: &str) -> Result<bool, StoreError> {
        if !storable(name) {
            return Ok(false);
        }
        self.bounded(self.delete_totp(name)).await
    }

    async fn claim_totp_step(&self, name: &str, step: i64) -> Result<bool, StoreError> {
        if !storable(name) {
            return Ok(false);
        }
        // Compare-and-set in one statement: of racing claims for the same
        // step (from any node), the first to commit changes the row; the
        // others wait for it, re-check `last_step < $2`, and match nothing.
        self.bounded(self.claim_step(name, step)).await
    }

    async fn claim_totp_login(
        &self,
        name: &str,
        step: i64,
        success_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        if !storable(name) {
            return Ok(false);
        }
        self.bounded(self.claim_login_step(name, step, success_at))
            .await
    }

    async fn replace_recovery_codes(
        &self,
        name: &str,
        hashes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        self.bounded(self.write_recovery_codes(name, hashes, now))
            .await
    }

    async fn consume_recovery_code(&self, name: &str, hash: &str) -> Result<bool, StoreError> {
        if !storable(name) {
            return Ok(false);
        }
        // The DELETE is the check: only one racing caller can remove the row.
        self.bounded(self.take_recovery_code(name, hash)).await
    }

    async fn record_failure(
        &self,
        name: &str,
        now: i64,
        max_failures: u32,
        lock_secs: i64,
    ) -> Result<Option<i64>, StoreError> {
        if !storable(name) {
            // No account can have this name, so there is nothing to protect.
            return Ok(None);
        }
        // A threshold of 0 behaves as 1 (see the SQLite store).
        let max = i64::from(max_failures.max(1));
        let until = now.saturating_add(lock_secs);
        self.bounded(self.count_failure(name, max, until, now))
            .await
    }

    async fn record_success(&self, name: &str, now: i64) -> Result<(), StoreError> {
        if !storable(name) {
            return Ok(());
        }
        self.bounded(self.note_success(name, now)).await
    }

    async fn add_device(
        &self,
        name: &str,
        kind: DeviceKind,
        label: &str,
        sealed_target: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        self.bounded(self.add_device_tx(name, kind, label, sealed_target, now))
            .await
    }

    async fn remove_device(
        &self,
        name: &str,
        kind: DeviceKind,
        label: &str,
    ) -> Result<bool, StoreError> {
        self.bounded(self.remove_device_row(name, kind, label))
            .await
    }

    async fn out_of_band(&self, name: &str) -> Result<OutOfBandEnrollment, StoreError> {
        if !storable(name) {
            return Ok(OutOfBandEnrollment::default());
        }
        self.bounded(self.read_out_of_band(name)).await
    }

    async fn set_preferred_factor(
        &self,
        name: &str,
        factor: Option<&str>,
    ) -> Result<(), StoreError> {
        if !storable(name) {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        self.bounded(self.write_preferred_factor(name, factor))
            .await
    }

    async fn put_sms_code(
        &self,
        name: &str,
        hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.bounded(self.write_sms_code(name, hash, expires_at))
            .await
    }

    async fn take_sms_code(&self, name: &str, hash: &str, now: i64) -> Result<bool, StoreError> {
        if !storable(name) {
            return Ok(false);
        }
        self.bounded(self.consume_sms_code(name, hash, now)).await
    }

    async fn set_phone_pin(&self, name: &str, hash: &str, now: i64) -> Result<(), StoreError> {
        self.bounded(self.write_phone_pin(name, hash, now)).await
    }

    async fn phone_pin_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        if !storable(name) {
            return Ok(None);
        }
        self.bounded(self.read_phone_pin(name)).await
    }

    async fn clear_phone_pin(&self, name: &str) -> Result<bool, StoreError> {
        if !storable(name) {
            return Ok(false);
        }
        self.bounded(self.delete_phone_pin(name)).await
    }

    async fn lock_user(&self, name: &str, until: i64) -> Result<(), StoreError> {
        self.bounded(self.write_lock(name, until)).await
    }

    async fn add_app_password(
        &self,
        name: &str,
        label: &str,
        hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.bounded(self.insert_app_password(name, label, hash, now))
            .await
    }

    async fn app_passwords(&self, name: &str) -> Result<Vec<AppPasswordSummary>, StoreError> {
        if !storable(name) {
            return Ok(Vec::new());
        }
        self.bounded(self.read_app_passwords(name)).await
    }

    async fn revoke_app_password(
        &self,
        name: &str,
        label: Option<&str>,
    ) -> Result<u64, StoreError> {
        if !storable(name) {
            return Ok(0);
        }
        self.bounded(self.delete_app_passwords(name, label)).await
    }

    async fn use_app_password(
        &self,
        name: &str,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        if !storable(name) {
            return Ok(None);
        }
        self.bounded(self.touch_app_password(name, hash, now)).await
    }

    async fn create_invitation(
        &self,
        hash: &str,
        name: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.bounded(self.insert_invitation(hash, name, expires_at, now))
            .await
    }

    async fn redeem_invitation(&self, hash: &str, now: i64) -> Result<Option<String>, StoreError> {
        if !storable(hash) {
            return Ok(None);
        }
        self.bounded(self.take_invitation(hash, now)).await
    }

    async fn invited_users(&self, now: i64) -> Result<Vec<String>, StoreError> {
        self.bounded(self.live_invitations(now)).await
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.bounded(self.insert_audit(events)).await
    }

    async fn prune_audit(&self, before: i64) -> Result<u64, StoreError> {
        // Not bounded by `timeout_ms`: a day of decisions can be millions of
        // rows, and the background pruner has no one waiting on it.
        self.delete_audit_before(before).await
    }

    async fn audit(
        &self,
        name: Option<&str>,
        since: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if name.is_some_and(|n| !storable(n)) {
            return Ok(Vec::new());
        }
        self.bounded(self.read_audit(name, since, until, limit))
            .await
    }

    async fn unlock(&self, name: &str) -> Result<bool, StoreError> {
        if !storable(name) {
            return Ok(false);
        }
        self.bounded(self.delete_lock(name)).await
    }

    async fn purge_lockouts(&self, now: i64, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::PURGE_LOCKOUTS)
            .bind(now)
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn probe(&self, node: &str, now: i64) -> Result<(), StoreError> {
        let write = sqlx::query(sql::HEARTBEAT)
            .bind(node)
            .bind(now)
            .execute(&self.pool);
        self.bounded(async { write.await.map(|_| ()).map_err(db) })
            .await
    }
}
