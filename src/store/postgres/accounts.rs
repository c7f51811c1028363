//! Accounts in PostgreSQL: local users and their password hashes, the
//! administrator's summaries, and deleting a user with everything of theirs.
//! The SQLite statements (`sqlite.rs`) with `$n` parameters; adding a user
//! is one upsert, so two nodes adding the same name cannot both succeed.

use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PostgresStore, count, db};
use crate::store::{StoreError, UserSummary};

/// The summary query (see `sqlite::summary_select`), PostgreSQL types:
/// booleans are `bool`, `COUNT` is `bigint`, `failures` is `integer`.
macro_rules! summary_select {
    () => {
        "\
    SELECT a.name, \
           a.password_hash IS NOT NULL AS local_password, \
           EXISTS (SELECT 1 FROM totp t WHERE t.name = a.name) AS has_totp, \
           (SELECT COUNT(*) FROM recovery_codes r WHERE r.name = a.name) AS codes_left, \
           COALESCE(l.failures, 0) AS failures, \
           l.locked_until, \
           a.last_login, \
           a.created_at \
    FROM accounts a LEFT JOIN lockouts l ON l.name = a.name"
    };
}

fn summary(row: &PgRow) -> Result<UserSummary, StoreError> {
    Ok(UserSummary {
        name: row.try_get("name").map_err(db)?,
        local_password: row.try_get("local_password").map_err(db)?,
        totp: row.try_get("has_totp").map_err(db)?,
        recovery_codes_left: count(row.try_get("codes_left").map_err(db)?),
        failures: count(i64::from(row.try_get::<i32, _>("failures").map_err(db)?)),
        locked_until: row.try_get("locked_until").map_err(db)?,
        last_login: row.try_get("last_login").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

impl PostgresStore {
    pub(super) async fn insert_user(
        &self,
        name: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        // One statement: insert, or give the password to an existing
        // password-less account; zero rows changed means a local user exists.
        let done = sqlx::query(
            "INSERT INTO accounts AS a (name, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash \
             WHERE a.password_hash IS NULL",
        )
        .bind(name)
        .bind(password_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::AlreadyExists(name.to_owned()));
        }
        Ok(())
    }

    pub(super) async fn update_password(
        &self,
        name: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE accounts SET password_hash = $2 WHERE name = $1 AND password_hash IS NOT NULL",
        )
        .bind(name)
        .bind(password_hash)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        Ok(())
    }

    pub(super) async fn delete_user_rows(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let mut removed = 0;
        // Factor tables explicitly, as in SQLite; lockouts has no FK.
        for sql in [
            "DELETE FROM totp WHERE name = $1",
            "DELETE FROM recovery_codes WHERE name = $1",
            "DELETE FROM devices WHERE name = $1",
            "DELETE FROM sms_codes WHERE name = $1",
            "DELETE FROM app_passwords WHERE name = $1",
            "DELETE FROM invitations WHERE name = $1",
            "DELETE FROM lockouts WHERE name = $1",
            "DELETE FROM accounts WHERE name = $1",
        ] {
            removed += sqlx::query(sql)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected();
        }
        if removed == 0 {
            // Nothing changed; dropping the transaction rolls it back.
            return Err(StoreError::NoSuchUser(name.to_owned()));
        }
        tx.commit().await.map_err(db)
    }

    pub(super) async fn read_user(&self, name: &str) -> Result<Option<UserSummary>, StoreError> {
        sqlx::query(concat!(summary_select!(), " WHERE a.name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(summary)
            .transpose()
    }

    pub(super) async fn read_password_hash(
        &self,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row {
            Some(row) => row.try_get("password_hash").map_err(db),
            None => Ok(None),
        }
    }

    pub(super) async fn read_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        // Byte order, as SQLite's BINARY collation, whatever the database locale.
        sqlx::query(concat!(summary_select!(), " ORDER BY a.name COLLATE \"C\""))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(summary)
            .collect()
    }
}
