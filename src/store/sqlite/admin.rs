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
        let row = sqlx::query(
            "UPDATE app_passwords SET last_used = ?3 WHERE name = ?1 AND hash = ?2 RETURNING label",
        )
        .bind(name)
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await
        .map_err(db)?;
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

    pub(super) async fn take_invitation(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        // One statement: of two racing redemptions, one gets the row.
        let row = sqlx::query(
            "DELETE FROM invitations WHERE hash = ?1 AND expires_at >= ?2 RETURNING name",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await
        .map_err(db)?;
        row.map(|row| row.try_get("name").map_err(db)).transpose()
    }

    pub(super) async fn insert_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for event in events {
            sqlx::query(
                "INSERT INTO audit (time, name, client, station, outcome, reason, factor, duration_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(event.time)
            .bind(&event.user)
            .bind(&event.client)
            .bind(&event.station)
            .bind(&event.outcome)
            .bind(&event.reason)
            .bind(&event.factor)
            .bind(event.duration_ms)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
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

#[cfg(test)]
mod tests {
    use crate::store::sqlite::SqliteStore;
    use crate::store::{AuditEvent, Store, StoreError};

    #[tokio::test]
    async fn app_passwords_are_named_used_and_revoked() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        s.add_app_password("alice", "outlook", "h1", 10)
            .await
            .unwrap();
        s.add_app_password("alice", "phone-mail", "h2", 11)
            .await
            .unwrap();
        assert!(matches!(
            s.add_app_password("alice", "outlook", "h3", 12).await,
            Err(StoreError::AlreadyExists(_))
        ));
        assert_eq!(
            s.use_app_password("alice", "h1", 20)
                .await
                .unwrap()
                .as_deref(),
            Some("outlook")
        );
        // Another user's hash is not this user's password.
        assert_eq!(s.use_app_password("bob", "h1", 20).await.unwrap(), None);
        let list = s.app_passwords("alice").await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            (list[0].label.as_str(), list[0].last_used),
            ("outlook", Some(20))
        );
        assert_eq!(list[1].last_used, None);
        assert_eq!(
            s.revoke_app_password("alice", Some("outlook"))
                .await
                .unwrap(),
            1
        );
        assert_eq!(s.use_app_password("alice", "h1", 21).await.unwrap(), None);
        assert_eq!(s.revoke_app_password("alice", None).await.unwrap(), 1);
        assert!(s.app_passwords("alice").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn invitations_are_single_use_and_expire() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        s.create_invitation("t1", "alice", 100, 1).await.unwrap();
        s.create_invitation("t2", "bob", 100, 1).await.unwrap();
        assert_eq!(
            s.redeem_invitation("t1", 50).await.unwrap().as_deref(),
            Some("alice")
        );
        assert_eq!(s.redeem_invitation("t1", 50).await.unwrap(), None);
        assert_eq!(s.redeem_invitation("t2", 101).await.unwrap(), None);
        assert_eq!(s.redeem_invitation("nope", 1).await.unwrap(), None);
    }

    #[tokio::test]
    async fn audit_is_queried_by_user_and_time_newest_first() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        let event = |time, user: &str, outcome: &str| AuditEvent {
            time,
            user: user.into(),
            client: "vpn".into(),
            station: None,
            outcome: outcome.into(),
            reason: "ok".into(),
            factor: "totp".into(),
            duration_ms: 3,
        };
        s.record_audit(&[
            event(10, "alice", "accept"),
            event(20, "bob", "reject"),
            event(30, "alice", "reject"),
        ])
        .await
        .unwrap();
        let alice = s.audit(Some("alice"), 0, 100, 10).await.unwrap();
        assert_eq!(
            alice.iter().map(|e| e.time).collect::<Vec<_>>(),
            vec![30, 10]
        );
        let window = s.audit(None, 15, 25, 10).await.unwrap();
        assert_eq!(window, vec![event(20, "bob", "reject")]);
        assert_eq!(s.audit(None, 0, 100, 1).await.unwrap().len(), 1);
    }
}
