//! Batched reads of the login state. Each login's first store access reads
//! lockout, failure count, last login and TOTP enrollment. One query per login
//! costs two thread hand-offs through sqlx's connection thread; on a busy
//! 2-core host those hops, not the query, set the latency. Reads are therefore
//! queued to one task that answers everything waiting with one
//! `… FROM (VALUES …)` query. A read is idempotent: duplicates share a row.

use std::collections::HashMap;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::store::{LoginState, StoreError, TotpRecord};

/// Names read in one query at most.
const MAX_BATCH: usize = 256;

struct Read {
    name: String,
    now: i64,
    reply: oneshot::Sender<Result<LoginState, StoreError>>,
}

/// Handle to the read task.
#[derive(Debug, Clone)]
pub(super) struct StateReader {
    sender: mpsc::UnboundedSender<Read>,
}

impl StateReader {
    /// Starts the task reading through `pool`.
    pub(super) fn start(pool: SqlitePool) -> StateReader {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, receiver));
        StateReader { sender }
    }

    /// The login state of `name` at unix time `now`.
    pub(super) async fn read(&self, name: &str, now: i64) -> Result<LoginState, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Read {
                name: name.to_string(),
                now,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("login state reader stopped".into())
}

async fn run(pool: SqlitePool, mut receiver: mpsc::UnboundedReceiver<Read>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(read) => batch.push(read),
                Err(_) => break,
            }
        }
        match fetch(&pool, &batch).await {
            Ok(rows) => {
                for read in batch {
                    let state = rows
                        .get(&read.name)
                        .map(|row| to_state(row, read.now))
                        .unwrap_or_else(|| Ok(LoginState::default()));
                    let _ = read.reply.send(state);
                }
            }
            Err(error) => {
                let message = error.to_string();
                for read in batch {
                    let _ = read
                        .reply
                        .send(Err(StoreError::Backend(message.clone().into())));
                }
            }
        }
    }
}

async fn fetch(
    pool: &SqlitePool,
    batch: &[Read],
) -> Result<HashMap<String, SqliteRow>, sqlx::Error> {
    let values = vec!["(?)"; batch.len()].join(", ");
    let sql = format!(
        "SELECT q.column1 AS name, t.sealed_secret, t.last_step, l.failures, l.locked_until, \
         a.last_login, a.name IS NOT NULL AS has_account \
         FROM (VALUES {values}) AS q \
         LEFT JOIN totp AS t ON t.name = q.column1 \
         LEFT JOIN lockouts AS l ON l.name = q.column1 \
         LEFT JOIN accounts AS a ON a.name = q.column1"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for read in batch {
        query = query.bind(read.name.as_str());
    }
    let rows = query.fetch_all(pool).await?;
    let mut by_name = HashMap::with_capacity(rows.len());
    for row in rows {
        by_name.insert(row.try_get::<String, _>("name")?, row);
    }
    Ok(by_name)
}

fn to_state(row: &SqliteRow, now: i64) -> Result<LoginState, StoreError> {
    let db = |e: sqlx::Error| StoreError::Backend(Box::new(e));
    let sealed: Option<Vec<u8>> = row.try_get("sealed_secret").map_err(db)?;
    let locked_until: Option<i64> = row.try_get("locked_until").map_err(db)?;
    let failures: Option<i64> = row.try_get("failures").map_err(db)?;
    Ok(LoginState {
        locked_until: locked_until.filter(|until| *until > now),
        failures: failures.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
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
