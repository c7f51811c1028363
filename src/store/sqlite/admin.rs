//! App passwords, invitations and the audit log in SQLite. Off the TOTP hot
//! path (audit rows arrive in batches from a background writer), so sqlx.

use sqlx::Row;

use super::{SqliteStore, db, ensure_account};
use crate::store::{AppPasswordSummary, AuditEvent, StoreError};

impl SqliteStore {
    pub(super) async fn insert_app_password(
        &self,
        name: &str,
        label: &str,
        hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        ensure_account(&mut tx, name, now).await?;
        let done = sqlx::query(
            "INSERT INTO app_passwords (name, label, hash, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name, label) DO NOTHING",
        )
        .bind(name)
        .bind(label)
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(format!("{name}/{label}")));
        }
        tx.commit().await.map_err(db)
    }

    pub(super) async fn read_app_passwords(
        &self,
        name: &str,
    ) -> Result<Vec<AppPasswordSummary>, StoreError> {
        sqlx::query(
            "SELECT label, created_at, last_used FROM app_passwords WHERE name = ?1 ORDER BY label",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(|row| {
            Ok(AppPasswordSummary {
                label: row.try_get("label").map_err(db)?,
                created_at: row.try_get("created_at").map_err(db)?,
                last_used: row.try_get("last_used").map_err(db)?,
            })
        })
        .collect()
    }

    pub(super) async fn delete_app_passwords(
        &self,
        name: &str,
        label: Option<&str>,
    ) -> Result<u64, StoreError> {
        let query = match label {
            Some(label) => sqlx::query("DELETE FROM app_passwords WHERE name = ?1 AND label = ?2")
                .bind(name)
                .bind(label),
            None => sqlx::query("DELETE FROM app_passwords WHERE name = ?1").bind(name),
        };
        Ok(query
            .execute(&self.writer)
            .await
            .map_err(db)?
            .rows_affected())
    }

    pub(super) async fn touch_app_password(
        &self,
        name: &str,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        // RETURNING statements run in a transaction: in autocommit the commit
        // happens after the row is returned, and its failure would be lost.
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "UPDATE app_passwords SET last_used = ?3 WHERE name = ?1 AND hash = ?2 RETURNING label",
        )
        .bind(name)
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.map(|row| row.try_get("label").map_err(db)).transpose()
    }

    pub(super) async fn insert_invitation(
        &self,
        hash: &str,
        name: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        // Expired invitations are cleared as new ones are made.
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM invitations WHERE expires_at < ?1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO invitations (hash, name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(hash)
        .bind(name)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    pub(super) async fn live_invitations(&self, now: i64) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT DISTINCT name FROM invitations WHERE expires_at >= ?1 ORDER BY name",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }

    pub(super) async fn take_invitation(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        // One statement: of two racing redemptions, one gets the row. In a
        // transaction, so a failed commit never passes for a redemption.
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "DELETE FROM invitations WHERE hash = ?1 AND expires_at >= ?2 RETURNING name",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        row.map(|row| row.try_get("name").map_err(db)).transpose()
    }

    pub(super) async fn insert_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        // One multi-row INSERT per chunk: sqlx hands every statement to the
        // connection's thread and back, so a statement per row cost a
        // thread wake-up per row. 8 parameters a row stays far below
        // SQLITE_MAX_VARIABLE_NUMBER (32 766).
        let mut tx = self.write_tx().await?;
        for chunk in events.chunks(1000) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO audit (time, name, client, station, outcome, reason, factor, duration_ms) ",
            );
            insert.push_values(chunk, |mut row, event| {
                row.push_bind(event.time)
                    .push_bind(&event.user)
                    .push_bind(&event.client)
                    .push_bind(&event.station)
                    .push_bind(&event.outcome)
                    .push_bind(&event.reason)
                    .push_bind(&event.factor)
                    .push_bind(event.duration_ms);
            });
            insert.build().execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    pub(super) async fn delete_audit_before(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit WHERE time < ?1")
            .bind(before)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    pub(super) async fn read_audit(
        &self,
        name: Option<&str>,
        since: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        sqlx::query(
            "SELECT time, name, client, station, outcome, reason, factor, duration_ms FROM audit \
             WHERE (?1 IS NULL OR name = ?1) AND time >= ?2 AND time <= ?3 \
             ORDER BY time DESC, id DESC LIMIT ?4",
        )
        .bind(name)
        .bind(since)
        .bind(until)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(|row| {
            Ok(AuditEvent {
                time: row.try_get("time").map_err(db)?,
                user: row.try_get("name").map_err(db)?,
                client: row.try_get("client").map_err(db)?,
                station: row.try_get("station").map_err(db)?,
                outcome: row.try_get("outcome").map_err(db)?,
                reason: row.try_get("reason").map_err(db)?,
                factor: row.try_get("factor").map_err(db)?,
                duration_ms: row.try_get("duration_ms").map_err(db)?,
            })
        })
        .collect()
    }
}
