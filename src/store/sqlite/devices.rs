//! Out-of-band enrollment in SQLite: devices (push targets, phone numbers),
//! the preferred factor, outstanding SMS codes, and the lock a denied push
//! sets, through sqlx. File stores read devices inline instead (a push login
//! reads them on every request: `inline.rs`); the store conformance suite
//! runs on both paths.

use sqlx::Row;

use super::{SqliteStore, db, ensure_account};
use crate::store::{DeviceKind, DeviceRecord, OutOfBandEnrollment, StoreError};

impl SqliteStore {
    pub(super) async fn add_device_tx(
        &self,
        name: &str,
        kind: DeviceKind,
        label: &str,
        sealed_target: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        ensure_account(&mut tx, name, now).await?;
        sqlx::query(
            "INSERT INTO devices (name, kind, label, sealed_target, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (name, kind, label) DO UPDATE SET \
             sealed_target = excluded.sealed_target, created_at = excluded.created_at",
        )
        .bind(name)
        .bind(kind.as_str())
        .bind(label)
        .bind(sealed_target)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    pub(super) async fn remove_device_row(
        &self,
        name: &str,
        kind: DeviceKind,
        label: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM devices WHERE name = ?1 AND kind = ?2 AND label = ?3")
            .bind(name)
            .bind(kind.as_str())
            .bind(label)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn read_out_of_band(
        &self,
        name: &str,
    ) -> Result<OutOfBandEnrollment, StoreError> {
        if let Some(inline) = &self.inline {
            return inline.out_of_band(name).await;
        }
        let preferred = sqlx::query(super::sql::PREFERRED_FACTOR)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .map(|row| row.try_get::<Option<String>, _>("preferred_factor"))
            .transpose()
            .map_err(db)?
            .flatten();
        let rows = sqlx::query(super::sql::DEVICES)
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut devices = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: String = row.try_get("kind").map_err(db)?;
            // A kind this version does not know (written by a newer one) is skipped.
            let Some(kind) = DeviceKind::parse(&kind) else {
                continue;
            };
            devices.push(DeviceRecord {
                kind,
                label: row.try_get("label").map_err(db)?,
                sealed_target: row.try_get("sealed_target").map_err(db)?,
                created_at: row.try_get("created_at").map_err(db)?,
            });
        }
        Ok(OutOfBandEnrollment { preferred, devices })
    }

    pub(super) async fn write_preferred_factor(
        &self,
        name: &str,
        factor: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE accounts SET preferred_factor = ?2 WHERE name = ?1")
            .bind(name)
            .bind(factor)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }

    pub(super) async fn write_sms_code(
        &self,
        name: &str,
        hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sms_codes (name, hash, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, expires_at = excluded.expires_at",
        )
        .bind(name)
        .bind(hash)
        .bind(expires_at)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }

    pub(super) async fn consume_sms_code(
        &self,
        name: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        // One statement: of two racing requests with the same code, one deletes.
        let done =
            sqlx::query("DELETE FROM sms_codes WHERE name = ?1 AND hash = ?2 AND expires_at >= ?3")
                .bind(name)
                .bind(hash)
                .bind(now)
                .execute(&self.writer)
                .await
                .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    pub(super) async fn write_lock(&self, name: &str, until: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO lockouts (name, failures, locked_until) VALUES (?1, 0, ?2) \
             ON CONFLICT (name) DO UPDATE SET failures = 0, \
             locked_until = MAX(COALESCE(locked_until, 0), excluded.locked_until)",
        )
        .bind(name)
        .bind(until)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }
}
