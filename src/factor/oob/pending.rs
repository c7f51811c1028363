//! Logins parked while an out-of-band factor runs. A parked login is a
//! future waiting on a `watch` channel — no thread, no polling — so tens of
//! thousands can wait at once for a few hundred bytes each.
//!
//! At most one transaction per user. A second login of the same user from the
//! same NAS and station (the NAS retrying with a new packet, or the user
//! clicking Connect again) joins the transaction already running instead of
//! sending another push; from anywhere else it is refused. Whoever answers
//! (HTTP callback, ntfy reply, Twilio callback, a poll) calls
//! [`PendingTable::resolve`]; the first answer wins and the transaction is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{Answer, Channel};

/// Hard cap so a flood of logins cannot exhaust memory.
const MAX_PENDING: usize = 500_000;

/// What identifies "the same login attempt" for joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinKey {
    /// The NAS's client name.
    pub client: Arc<str>,
    /// Calling-Station-Id, if any.
    pub station: Option<String>,
}

struct Entry {
    user: String,
    join: JoinKey,
    channel: Channel,
    /// Keyed hash of the PIN the call asks for (`[phone] pin`), if it does.
    pin_hash: Option<String>,
    answer: watch::Sender<Option<Answer>>,
}

#[derive(Default)]
struct Inner {
    by_txn: HashMap<String, Entry>,
    by_user: HashMap<String, String>,
}

/// The table of parked logins of this node.
#[derive(Default)]
pub struct PendingTable {
    inner: Mutex<Inner>,
}

/// The outcome of [`PendingTable::park`].
pub enum Park {
    /// A new transaction: the caller starts the factor, then waits.
    New(Parked),
    /// The same attempt is already waiting: wait for its answer.
    Joined(Joined),
    /// The user has a transaction running from elsewhere, or the table is full.
    Busy,
}

/// A transaction this request owns. Dropping it (timeout, cancelled request)
/// ends the transaction as [`Answer::TimedOut`] for anyone who joined.
pub struct Parked {
    /// Transaction id, 128 random bits as hex.
    pub txn: String,
    table: Arc<PendingTable>,
    answer: watch::Receiver<Option<Answer>>,
}

/// A wait on somebody else's transaction.
pub struct Joined {
    /// The channel the running transaction uses.
    pub channel: Channel,
    answer: watch::Receiver<Option<Answer>>,
}

/// Why [`PendingTable::resolve`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No such transaction: never existed, already answered, or timed out.
    #[error("unknown or finished transaction")]
    Unknown,
}

impl PendingTable {
    /// An empty table.
    pub fn new() -> Arc<PendingTable> {
        Arc::new(PendingTable::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks a login of `user` on `channel`.
    pub fn park(self: &Arc<Self>, user: &str, join: JoinKey, channel: Channel) -> Park {
        let mut inner = self.lock();
        if let Some(txn) = inner.by_user.get(user) {
            let entry = &inner.by_txn[txn];
            return if entry.join == join {
                Park::Joined(Joined {
                    channel: entry.channel,
                    answer: entry.answer.subscribe(),
                })
            } else {
                Park::Busy
            };
        }
        if inner.by_txn.len() >= MAX_PENDING {
            return Park::Busy;
        }
        let txn = hex::encode(rand::random::<[u8; 16]>());
        let (sender, receiver) = watch::channel(None);
        inner.by_user.insert(user.to_string(), txn.clone());
        inner.by_txn.insert(
            txn.clone(),
            Entry {
                user: user.to_string(),
                join,
                channel,
                pin_hash: None,
                answer: sender,
            },
        );
        Park::New(Parked {
            txn,
            table: self.clone(),
            answer: receiver,
        })
    }

    /// The user a running transaction belongs to (to check a signed token).
    pub fn user_of(&self, txn: &str) -> Option<String> {
        self.lock().by_txn.get(txn).map(|e| e.user.clone())
    }

    /// Records that the call of transaction `txn` asks for the PIN whose
    /// keyed hash is `hash`: the answer is then judged against it, and it
    /// goes with the transaction. Set before the call is placed, so the
    /// keypress cannot arrive first. False if `txn` is not running.
    pub fn expect_pin(&self, txn: &str, hash: String) -> bool {
        match self.lock().by_txn.get_mut(txn) {
            Some(entry) => {
                entry.pin_hash = Some(hash);
                true
            }
            None => false,
        }
    }

    /// The user and expected PIN hash of a running transaction whose call
    /// asks for a PIN; `None` for any other (or no) transaction.
    pub fn expected_pin(&self, txn: &str) -> Option<(String, String)> {
        let inner = self.lock();
        let entry = inner.by_txn.get(txn)?;
        Some((entry.user.clone(), entry.pin_hash.clone()?))
    }

    /// The user and the login (NAS, station) of a running transaction, for a
    /// confirmation page that says who is signing in where.
    pub fn describe(&self, txn: &str) -> Option<(String, JoinKey)> {
        self.lock()
            .by_txn
            .get(txn)
            .map(|e| (e.user.clone(), e.join.clone()))
    }

    /// Ends a transaction with `answer`; the first answer wins.
    pub fn resolve(&self, txn: &str, answer: Answer) -> Result<(), ResolveError> {
        let entry = {
            let mut inner = self.lock();
            let entry = inner.by_txn.remove(txn).ok_or(ResolveError::Unknown)?;
            inner.by_user.remove(&entry.user);
            entry
        };
        // Receivers keep the value after the sender is gone.
        entry.answer.send_replace(Some(answer));
        Ok(())
    }

    /// Transactions waiting now (the `rampart_oob_pending` gauge).
    pub fn len(&self) -> usize {
        self.lock().by_txn.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn wait(answer: &mut watch::Receiver<Option<Answer>>, limit: Duration) -> Answer {
    let waited = tokio::time::timeout(limit, async {
        loop {
            if let Some(answer) = *answer.borrow_and_update() {
                return answer;
            }
            if answer.changed().await.is_err() {
                return answer.borrow().unwrap_or(Answer::TimedOut);
            }
        }
    });
    waited.await.unwrap_or(Answer::TimedOut)
}

impl Parked {
    /// Waits for the answer, at most `limit`.
    pub async fn wait(mut self, limit: Duration) -> Answer {
        wait(&mut self.answer, limit).await
        // Drop ends the transaction if nobody answered.
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        let _ = self.table.resolve(&self.txn, Answer::TimedOut);
    }
}

impl Joined {
    /// Waits for the running transaction's answer, at most `limit`.
    pub async fn wait(mut self, limit: Duration) -> Answer {
        wait(&mut self.answer, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(station: &str) -> JoinKey {
        JoinKey {
            client: Arc::from("vpn"),
            station: Some(station.to_string()),
        }
    }

    #[tokio::test]
    async fn answer_reaches_owner_and_joiner_once() {
        let table = PendingTable::new();
        let Park::New(parked) = table.park("alice", key("a"), Channel::Push) else {
            panic!("first park must be new");
        };
        let Park::Joined(joined) = table.park("alice", key("a"), Channel::Push) else {
            panic!("same station must join");
        };
        assert!(matches!(
            table.park("alice", key("b"), Channel::Push),
            Park::Busy
        ));
        assert_eq!(table.user_of(&parked.txn).as_deref(), Some("alice"));
        assert_eq!(table.expected_pin(&parked.txn), None);
        assert!(table.expect_pin(&parked.txn, "h".into()));
        assert_eq!(
            table.expected_pin(&parked.txn),
            Some(("alice".into(), "h".into()))
        );
        assert!(!table.expect_pin("0123", "h".into()));
        let txn = parked.txn.clone();
        let owner = tokio::spawn(parked.wait(Duration::from_secs(5)));
        let joiner = tokio::spawn(joined.wait(Duration::from_secs(5)));
        table.resolve(&txn, Answer::Approved).unwrap();
        assert_eq!(owner.await.unwrap(), Answer::Approved);
        assert_eq!(joiner.await.unwrap(), Answer::Approved);
        // Single use: a second answer (a replayed token) finds nothing.
        assert_eq!(
            table.resolve(&txn, Answer::Approved),
            Err(ResolveError::Unknown)
        );
        assert!(table.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_frees_the_user_and_tells_joiners() {
        let table = PendingTable::new();
        let Park::New(parked) = table.park("bob", key("a"), Channel::Phone) else {
            panic!()
        };
        let Park::Joined(joined) = table.park("bob", key("a"), Channel::Phone) else {
            panic!()
        };
        let txn = parked.txn.clone();
        let joiner = tokio::spawn(joined.wait(Duration::from_secs(600)));
        assert_eq!(parked.wait(Duration::from_secs(50)).await, Answer::TimedOut);
        assert_eq!(joiner.await.unwrap(), Answer::TimedOut);
        assert_eq!(
            table.resolve(&txn, Answer::Approved),
            Err(ResolveError::Unknown)
        );
        assert!(matches!(
            table.park("bob", key("b"), Channel::Push),
            Park::New(_)
        ));
    }
}
