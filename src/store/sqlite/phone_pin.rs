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

#[cfg(test)]
mod tests {
    use crate::store::Store;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn pin_hash_set_replace_clear_and_delete() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        assert_eq!(s.phone_pin_hash("alice").await.unwrap(), None);
        assert!(!s.clear_phone_pin("alice").await.unwrap());
        // A directory user without an account row gets one.
        s.set_phone_pin("alice", "h1", 10).await.unwrap();
        assert!(s.user("alice").await.unwrap().is_some());
        assert_eq!(
            s.phone_pin_hash("alice").await.unwrap().as_deref(),
            Some("h1")
        );
        s.set_phone_pin("alice", "h2", 11).await.unwrap();
        assert_eq!(
            s.phone_pin_hash("alice").await.unwrap().as_deref(),
            Some("h2")
        );
        assert!(s.clear_phone_pin("alice").await.unwrap());
        assert!(!s.clear_phone_pin("alice").await.unwrap());
        assert_eq!(s.phone_pin_hash("alice").await.unwrap(), None);
        // Deleting the user takes the PIN with the account row.
        s.set_phone_pin("alice", "h3", 12).await.unwrap();
        s.delete_user("alice").await.unwrap();
        assert_eq!(s.phone_pin_hash("alice").await.unwrap(), None);
    }
}
