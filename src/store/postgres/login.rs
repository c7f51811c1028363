//! The login path in PostgreSQL: TOTP enrollment, the login-state read,
//! the RFC 6238 §5.2 replay claim, recovery codes, failure counting and
//! lockout. Each race-sensitive operation is one statement (see `sql.rs`);
//! replacing the recovery-code set locks the account row so that two nodes
//! regenerating codes at once leave one whole set.

use sqlx::Row;

use super::{PostgresStore, count, db, ensure_account, lock_account, sql};
use crate::store::{LoginState, StoreError, TotpRecord};

impl PostgresStore {
    pub(super) async fn write_totp(
        &self,
        name: &str,
        sealed_secret: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        ensure_account(&mut tx, name, now).await?;
        // A new seed starts a new step history.
        sqlx::query(
            "INSERT INTO totp (name, sealed_secret, last_step, created_at) VALUES ($1, $2, NULL, $3) \
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

    pub(super) async fn read_totp(&self, name: &str) -> Result<Option<TotpRecord>, StoreError> {
        let row = sqlx::query("SELECT sealed_secret, last_step FROM totp WHERE name = $1")
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

    pub(super) async fn delete_totp(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM totp WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn claim_step(&self, name: &str, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::CLAIM_STEP)
            .bind(name)
            .bind(step)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn claim_login_step(
        &self,
        name: &str,
        step: i64,
        success_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let claimed: i64 = sqlx::query_scalar(sql::CLAIM_LOGIN)
            .bind(name)
            .bind(step)
            .bind(success_at)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(claimed == 1)
    }

    pub(super) async fn write_recovery_codes(
        &self,
        name: &str,
        hashes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        ensure_account(&mut tx, name, now).await?;
        lock_account(&mut tx, name).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // A duplicate hash in the input is one code, not an error.
        sqlx::query(
            "INSERT INTO recovery_codes (name, hash, created_at) \
             SELECT $1, hash, $3 FROM UNNEST($2::text[]) AS hash \
             ON CONFLICT (name, hash) DO NOTHING",
        )
        .bind(name)
        .bind(hashes)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    pub(super) async fn take_recovery_code(
        &self,
        name: &str,
        hash: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::CONSUME_RECOVERY_CODE)
            .bind(name)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn note_success(&self, name: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(sql::RECORD_SUCCESS)
            .bind(name)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    pub(super) async fn delete_lock(&self, name: &str) -> Result<bool, StoreError> {
        // Deleting the row clears both fields; RETURNING yields the old
        // values, so the answer and the change are one atomic statement.
        let row = sqlx::query("DELETE FROM lockouts WHERE name = $1 RETURNING locked_until")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row {
            Some(row) => Ok(row
                .try_get::<Option<i64>, _>("locked_until")
                .map_err(db)?
                .is_some()),
            None => Ok(false),
        }
    }

    pub(super) async fn read_login_state(
        &self,
        name: &str,
        now: i64,
    ) -> Result<LoginState, StoreError> {
        let row = sqlx::query(sql::LOGIN_STATE)
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let sealed: Option<Vec<u8>> = row.try_get("sealed_secret").map_err(db)?;
        let locked_until: Option<i64> = row.try_get("locked_until").map_err(db)?;
        let failures: Option<i32> = row.try_get("failures").map_err(db)?;
        Ok(LoginState {
            locked_until: locked_until.filter(|until| *until > now),
            failures: count(i64::from(failures.unwrap_or(0))),
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

    /// One more failure; `Some(locked_until)` when this one reached `max`.
    pub(super) async fn count_failure(
        &self,
        name: &str,
        max: i64,
        until: i64,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(sql::RECORD_FAILURE)
            .bind(name)
            .bind(max)
            .bind(until)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        // The count is reset to 0 exactly when this call locked.
        let failures: i32 = row.try_get("failures").map_err(db)?;
        if failures == 0 {
            Ok(row.try_get("locked_until").map_err(db)?)
        } else {
            Ok(None)
        }
    }
}
