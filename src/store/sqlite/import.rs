//! Bulk TOTP enrollment for the SQLite store: what `rampart enroll import`
//! writes when a site migrates tens of thousands of seeds at once. One
//! `BEGIN IMMEDIATE` transaction for the whole set (all or nothing, and one
//! WAL sync instead of one per user), filled with multi-row statements so a
//! hundred thousand users take a few hundred statements, not two hundred
//! thousand round trips to the database thread.

use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteStore, db};
use crate::store::StoreError;

/// Rows per statement. Each row binds at most three values, so a chunk stays
/// far below SQLite's limit on bound parameters (32 766 since 3.32).
const CHUNK: usize = 1000;

impl SqliteStore {
    /// See [`crate::store::Store::import_totp`].
    pub(super) async fn import_totp_batched(
        &self,
        seeds: &[(String, Vec<u8>)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for chunk in seeds.chunks(CHUNK) {
            // Account rows first: the totp row references them.
            let mut accounts =
                QueryBuilder::<Sqlite>::new("INSERT INTO accounts (name, created_at) ");
            accounts.push_values(chunk, |mut row, (name, _)| {
                row.push_bind(name.as_str()).push_bind(now);
            });
            accounts.push(" ON CONFLICT (name) DO NOTHING");
            accounts.build().execute(&mut *tx).await.map_err(db)?;

            // Same upsert as `set_totp`: a new seed starts a new step history.
            let mut totp = QueryBuilder::<Sqlite>::new(
                "INSERT INTO totp (name, sealed_secret, last_step, created_at) ",
            );
            totp.push_values(chunk, |mut row, (name, sealed)| {
                row.push_bind(name.as_str())
                    .push_bind(sealed.as_slice())
                    .push("NULL")
                    .push_bind(now);
            });
            totp.push(
                " ON CONFLICT (name) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
                 last_step = NULL, created_at = excluded.created_at",
            );
            totp.build().execute(&mut *tx).await.map_err(db)?;
        }
        // An error above returned early and dropped `tx`, which rolls back.
        tx.commit().await.map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{SqliteStore, Store, StoreError};

    fn seeds(range: std::ops::Range<usize>) -> Vec<(String, Vec<u8>)> {
        range
            .map(|i| (format!("user{i:05}"), format!("sealed-{i}").into_bytes()))
            .collect()
    }

    async fn count(s: &SqliteStore, table: &str) -> i64 {
        let sql = match table {
            "accounts" => "SELECT COUNT(*) FROM accounts",
            _ => "SELECT COUNT(*) FROM totp",
        };
        sqlx::query_scalar(sql).fetch_one(&s.pool).await.unwrap()
    }

    #[tokio::test]
    async fn a_failing_write_rolls_back_the_whole_import() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        s.set_totp("user00000", b"kept", 1).await.unwrap();
        // Fail on a row in the second chunk, after a whole chunk was written.
        sqlx::query(
            "CREATE TRIGGER fail_import BEFORE INSERT ON totp \
             WHEN NEW.name = 'user01500' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .execute(&s.pool)
        .await
        .unwrap();

        let err = s.import_totp(&seeds(0..2_000), 9).await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)));
        let msg = err.to_string();
        assert!(
            !msg.contains("user0") && !msg.contains("sealed-"),
            "no bound values in the error: {msg}"
        );
        assert_eq!(count(&s, "accounts").await, 1, "no account rows added");
        assert_eq!(count(&s, "totp").await, 1, "no seeds added");
        let kept = s.totp("user00000").await.unwrap().unwrap();
        assert_eq!(kept.sealed_secret, b"kept", "existing seed not replaced");

        // The store stays usable: without the failure the same import succeeds.
        sqlx::query("DROP TRIGGER fail_import")
            .execute(&s.pool)
            .await
            .unwrap();
        s.import_totp(&seeds(0..2_000), 9).await.unwrap();
        assert_eq!(count(&s, "totp").await, 2_000);
    }
}
