//! Bulk TOTP enrollment for the PostgreSQL store (`rampart enroll import`):
//! one transaction for the whole set (all or nothing), filled with two
//! statements per chunk whose rows come from arrays (`UNNEST`), so a hundred
//! thousand users take a few dozen round trips and stay far below
//! PostgreSQL's 65 535 bound parameters per statement.

use std::collections::HashMap;

use super::{PostgresStore, db};
use crate::store::StoreError;

/// Rows per statement.
const CHUNK: usize = 5000;

impl PostgresStore {
    /// See [`crate::store::Store::import_totp`].
    pub(super) async fn import_totp_batched(
        &self,
        seeds: &[(String, Vec<u8>)],
        now: i64,
    ) -> Result<(), StoreError> {
        // One upsert may not touch a row twice ("ON CONFLICT DO UPDATE command
        // cannot affect row a second time"); SQLite's chunked upsert lets the
        // later line win, so keep the last seed of a repeated name.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(seeds.len());
        for (index, (name, _)) in seeds.iter().enumerate() {
            last.insert(name.as_str(), index);
        }
        let unique: Vec<&(String, Vec<u8>)> = seeds
            .iter()
            .enumerate()
            .filter(|(index, (name, _))| last.get(name.as_str()) == Some(index))
            .map(|(_, seed)| seed)
            .collect();

        let mut tx = self.begin().await?;
        for chunk in unique.chunks(CHUNK) {
            let names: Vec<&str> = chunk.iter().map(|(name, _)| name.as_str()).collect();
            let sealed: Vec<&[u8]> = chunk.iter().map(|(_, sealed)| sealed.as_slice()).collect();
            // Account rows first: the totp row references them.
            sqlx::query(
                "INSERT INTO accounts (name, created_at) \
                 SELECT name, $2 FROM UNNEST($1::text[]) AS name \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&names)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            // Same upsert as `set_totp`: a new seed starts a new step history.
            sqlx::query(
                "INSERT INTO totp (name, sealed_secret, last_step, created_at) \
                 SELECT name, sealed, NULL, $3 FROM UNNEST($1::text[], $2::bytea[]) AS s (name, sealed) \
                 ON CONFLICT (name) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
                 last_step = NULL, created_at = excluded.created_at",
            )
            .bind(&names)
            .bind(&sealed)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        // An error above returned early and dropped `tx`, which rolls back.
        tx.commit().await.map_err(db)
    }
}
