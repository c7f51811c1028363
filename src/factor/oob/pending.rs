//! Logins parked while an out-of-band factor runs. A parked login is a
//! future waiting on a `oneshot` channel — no thread, no polling — so tens of
//! thousands can wait at once for a few hundred bytes each (`benches/hold.sh`).
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

use tokio::sync::oneshot;

use super::{Answer, Channel};

/// Hard cap so a flood of logins cannot exhaust memory.
const MAX_PENDING: usize = 500_000;

/// A transaction id: 128 random bits, written as 32 lowercase hex digits in
/// URLs and tokens, kept as a number here (one word pair per table entry
/// instead of a string in each of the two maps).
type TxnId = u128;

fn render(id: TxnId) -> String {
    format!("{id:032x}")
}

fn parse(txn: &str) -> Option<TxnId> {
    let lowercase_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if txn.len() != 32 || !txn.bytes().all(lowercase_hex) {
        return None;
    }
    TxnId::from_str_radix(txn, 16).ok()
}

/// What identifies "the same login attempt" for joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinKey {
    /// The NAS's client name.
    pub client: Arc<str>,
    /// Calling-Station-Id, if any.
    pub station: Option<String>,
}

struct Entry {
    /// Shared with the `by_user` key.
    user: Arc<str>,
    join: JoinKey,
    channel: Channel,
    /// Keyed hash of the PIN the call asks for (`[phone] pin`), if it does.
    pin_hash: Option<String>,
    /// The login that started the transaction.
    owner: oneshot::Sender<Answer>,
    /// Logins that joined it (usually none).
    joiners: Vec<oneshot::Sender<Answer>>,
}

#[derive(Default)]
struct Inner {
    by_txn: HashMap<TxnId, Entry>,
    by_user: HashMap<Arc<str>, TxnId>,
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
    id: TxnId,
    table: Arc<PendingTable>,
    answer: oneshot::Receiver<Answer>,
}

/// A wait on somebody else's transaction.
pub struct Joined {
    /// The channel the running transaction uses.
    pub channel: Channel,
    answer: oneshot::Receiver<Answer>,
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
        if let Some(id) = inner.by_user.get(user).copied() {
            let Some(entry) = inner.by_txn.get_mut(&id) else {
                // Both maps change together under this lock, so this cannot
                // happen; if it did, the stale entry must not block the user.
                inner.by_user.remove(user);
                return self.park_new(inner, user, join, channel);
            };
            if entry.join != join {
                return Park::Busy;
            }
            let (sender, answer) = oneshot::channel();
            entry.joiners.push(sender);
            return Park::Joined(Joined {
                channel: entry.channel,
                answer,
            });
        }
        self.park_new(inner, user, join, channel)
    }

    /// Starts a transaction for `user`, who has none, under the table's lock.
    fn park_new(
        self: &Arc<Self>,
        mut inner: std::sync::MutexGuard<'_, Inner>,
        user: &str,
        join: JoinKey,
        channel: Channel,
    ) -> Park {
        if inner.by_txn.len() >= MAX_PENDING {
            return Park::Busy;
        }
        let id = loop {
            let id: TxnId = rand::random();
            if !inner.by_txn.contains_key(&id) {
                break id;
            }
        };
        let (owner, answer) = oneshot::channel();
        let user: Arc<str> = Arc::from(user);
        inner.by_user.insert(user.clone(), id);
        inner.by_txn.insert(
            id,
            Entry {
                user,
                join,
                channel,
                pin_hash: None,
                owner,
                joiners: Vec::new(),
            },
        );
        Park::New(Parked {
            id,
            table: self.clone(),
            answer,
        })
    }

    /// The user a running transaction belongs to (to check a signed token).
    pub fn user_of(&self, txn: &str) -> Option<String> {
        let id = parse(txn)?;
        self.lock().by_txn.get(&id).map(|e| e.user.to_string())
    }

    /// Records that the call of transaction `txn` asks for the PIN whose
    /// keyed hash is `hash`: the answer is then judged against it, and it
    /// goes with the transaction. Set before the call is placed, so the
    /// keypress cannot arrive first. False if `txn` is not running.
    pub fn expect_pin(&self, txn: &str, hash: String) -> bool {
        let Some(id) = parse(txn) else {
            return false;
        };
        match self.lock().by_txn.get_mut(&id) {
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
        let id = parse(txn)?;
        let inner = self.lock();
        let entry = inner.by_txn.get(&id)?;
        Some((entry.user.to_string(), entry.pin_hash.clone()?))
    }

    /// The user and the login (NAS, station) of a running transaction, for a
    /// confirmation page that says who is signing in where.
    pub fn describe(&self, txn: &str) -> Option<(String, JoinKey)> {
        let id = parse(txn)?;
        self.lock()
            .by_txn
            .get(&id)
            .map(|e| (e.user.to_string(), e.join.clone()))
    }

    /// Ends a transaction with `answer`; the first answer wins.
    pub fn resolve(&self, txn: &str, answer: Answer) -> Result<(), ResolveError> {
        self.resolve_id(parse(txn).ok_or(ResolveError::Unknown)?, answer)
    }

    fn resolve_id(&self, id: TxnId, answer: Answer) -> Result<(), ResolveError> {
        let entry = {
            let mut inner = self.lock();
            let entry = inner.by_txn.remove(&id).ok_or(ResolveError::Unknown)?;
            inner.by_user.remove(&entry.user);
            entry
        };
        // A login that already gave up (its request was cancelled) is gone:
        // nothing to tell it.
        let _ = entry.owner.send(answer);
        for joiner in entry.joiners {
            let _ = joiner.send(answer);
        }
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

/// The answer, or [`Answer::TimedOut`] after `limit` (or if the transaction
/// went away unanswered).
async fn wait(answer: &mut oneshot::Receiver<Answer>, limit: Duration) -> Answer {
    match tokio::time::timeout(limit, answer).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) | Err(_) => Answer::TimedOut,
    }
}

impl Parked {
    /// The transaction id as it appears in URLs and tokens.
    pub fn txn(&self) -> String {
        render(self.id)
    }

    /// Waits for the answer, at most `limit`.
    pub async fn wait(mut self, limit: Duration) -> Answer {
        wait(&mut self.answer, limit).await
        // Drop ends the transaction if nobody answered.
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        let _ = self.table.resolve_id(self.id, Answer::TimedOut);
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
        assert_eq!(table.user_of(&parked.txn()).as_deref(), Some("alice"));
        assert_eq!(table.expected_pin(&parked.txn()), None);
        assert!(table.expect_pin(&parked.txn(), "h".into()));
        assert_eq!(
            table.expected_pin(&parked.txn()),
            Some(("alice".into(), "h".into()))
        );
        assert!(!table.expect_pin("0123", "h".into()));
        let txn = parked.txn();
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
        let txn = parked.txn();
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
