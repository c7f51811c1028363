//! The phone-call PIN in SQLite: one nullable column of `accounts`
//! (`migrations/sqlite/0004_phone_pin.sql`) holding the PIN's keyed hash.

use sqlx::Row;

use super::{SqliteStore, db, ensure_account};
use crate::store::StoreError;

impl SqliteStore {
    pub(super) async fn write_phone_pin(
        &self,
        name: &str,
        hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        ensure_account(&mut tx, name, now).await?;
        sqlx::query("UPDATE accounts SET phone_pin_hash = ?2 WHERE name = ?1")
            .bind(name)
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    pub(super) async fn read_phone_pin(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT phone_pin_hash FROM accounts WHERE name = ?1")
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
             WHERE name = ?1 AND phone_pin_hash IS NOT NULL",
        )
        .bind(name)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}
