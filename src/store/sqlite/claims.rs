//! Group commit for TOTP replay claims. Every accepted code needs a write (the
//! RFC 6238 §5.2 replay guard), and SQLite has one writer: one UPDATE per login
//! costs a round trip to sqlx's connection thread each (~250 µs here, capping
//! logins near 4 000/s whatever the CPU). Claims are therefore queued to one
//! task that applies everything waiting in a single `UPDATE … FROM (VALUES …)
//! RETURNING` statement; each caller learns whether its own claim won.
//!
//! Atomicity is unchanged: the statement only moves `last_step` forward
//! (compare-and-set per row), and a batch holds at most one claim per user, so
//! of two concurrent claims for the same step exactly one wins.

use std::collections::HashSet;

use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

/// Claims applied in one statement at most (two bound values each; SQLite's
/// default limit is 32 766 variables).
const MAX_BATCH: usize = 256;

struct Claim {
    name: String,
    step: i64,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// Handle to the claim task.
#[derive(Debug, Clone)]
pub(super) struct ClaimQueue {
    sender: mpsc::UnboundedSender<Claim>,
}

impl ClaimQueue {
    /// Starts the task writing through `writer`.
    pub(super) fn start(writer: SqlitePool) -> ClaimQueue {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(writer, receiver));
        ClaimQueue { sender }
    }

    /// Claims `step` for `name`: true only if it is newer than every step
    /// accepted before for that user.
    pub(super) async fn claim(&self, name: &str, step: i64) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Claim {
                name: name.to_string(),
                step,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("TOTP claim writer stopped".into())
}

async fn run(writer: SqlitePool, mut receiver: mpsc::UnboundedReceiver<Claim>) {
    let mut deferred: Vec<Claim> = Vec::new();
    loop {
        let mut batch: Vec<Claim> = Vec::new();
        let mut names = HashSet::new();
        let mut later = Vec::new();
        // Claims deferred from the last batch (same user twice) go first.
        for claim in deferred
            .drain(..)
            .chain(std::iter::from_fn(|| receiver.try_recv().ok()))
        {
            if batch.len() < MAX_BATCH && names.insert(claim.name.clone()) {
                batch.push(claim);
            } else {
                later.push(claim);
            }
        }
        deferred = later;
        if batch.is_empty() {
            match receiver.recv().await {
                Some(claim) => {
                    deferred.push(claim);
                    continue;
                }
                None => return,
            }
        }
        match apply(&writer, &batch).await {
            Ok(won) => {
                for claim in batch {
                    let _ = claim.reply.send(Ok(won.contains(&claim.name)));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for claim in batch {
                    let _ = claim
                        .reply
                        .send(Err(StoreError::Backend(message.clone().into())));
                }
            }
        }
    }
}

/// One statement for the whole batch; returns the names whose claim won.
async fn apply(writer: &SqlitePool, batch: &[Claim]) -> Result<HashSet<String>, sqlx::Error> {
    let values = vec!["(?, ?)"; batch.len()].join(", ");
    let sql = format!(
        "UPDATE totp SET last_step = claims.column2 \
         FROM (VALUES {values}) AS claims \
         WHERE totp.name = claims.column1 \
         AND (totp.last_step IS NULL OR totp.last_step < claims.column2) \
         RETURNING totp.name"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for claim in batch {
        query = query.bind(claim.name.as_str()).bind(claim.step);
    }
    let rows = query.fetch_all(writer).await?;
    rows.iter().map(|row| row.try_get::<String, _>(0)).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::{SqliteStore, Store};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_of_many_users_are_batched_and_each_decided_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let users: Vec<String> = (0..300).map(|i| format!("user{i}")).collect();
        for user in &users {
            store.set_totp(user, b"sealed", 1).await.unwrap();
        }
        // Every user claims step 10 twice and step 9 once, all at the same time.
        let mut tasks = Vec::new();
        for user in &users {
            for step in [10, 10, 9] {
                let (store, user) = (store.clone(), user.clone());
                tasks.push(tokio::spawn(async move {
                    (
                        user.clone(),
                        step,
                        store.claim_totp_step(&user, step).await.unwrap(),
                    )
                }));
            }
        }
        let mut wins = std::collections::HashMap::new();
        for task in tasks {
            let (user, step, won) = task.await.unwrap();
            if won {
                wins.entry(user).or_insert_with(Vec::new).push(step);
            }
        }
        for user in &users {
            let won = wins.get(user).cloned().unwrap_or_default();
            // Step 10 is claimed exactly once; step 9 only if it came first.
            assert_eq!(
                won.iter().filter(|s| **s == 10).count(),
                1,
                "{user}: {won:?}"
            );
            assert!(won.len() <= 2, "{user}: {won:?}");
            assert_eq!(
                store
                    .login_state(user, 0)
                    .await
                    .unwrap()
                    .totp
                    .unwrap()
                    .last_step,
                Some(10)
            );
        }
    }
}
