//! The phone-call PIN in PostgreSQL: one nullable column of `accounts`
//! (`migrations/postgres/0004_phone_pin.sql`) holding the PIN's keyed hash.
//! Setting it is one upsert, which also creates the account row of a
//! directory user.

use sqlx::Row;

use super::{PostgresStore, db};
use crate::store::StoreError;

impl PostgresStore {
    pub(super) async fn write_phone_pin(
        &self,
        name: &str,
        hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO accounts (name, created_at, phone_pin_hash) VALUES ($1, $3, $2) \
             ON CONFLICT (name) DO UPDATE SET phone_pin_hash = excluded.phone_pin_hash",
        )
        .bind(name)
        .bind(hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    pub(super) async fn read_phone_pin(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT phone_pin_hash FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row {
            Some(row) => row.try_get("phone_pin_hash").map_err(db),
            None => Ok(None),
        }
    }

    pub(super) async fn delete_phone_pin(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE accounts SET phone_pin_hash = NULL \
             WHERE name = $1 AND phone_pin_hash IS NOT NULL",
        )
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}
