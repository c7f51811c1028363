//! The behaviour every [`Store`] backend must show, written once against the
//! trait and run on each backend: on SQLite (a file database, which takes the
//! inline rusqlite hot path, and an in-memory one, which takes sqlx's) as one
//! test per case below, and on a real PostgreSQL by
//! `store::postgres::tests`, each case on a fresh database.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::store::{AuditEvent, DeviceKind, SqliteStore, Store, StoreError, UserSummary};

/// A conformance case: takes a fresh, empty store.
pub(crate) type Case = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

fn codes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn seeds(range: std::ops::Range<usize>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| (format!("user{i:05}"), format!("sealed-{i}").into_bytes()))
        .collect()
}

/// (accounts, enrolled TOTP seeds).
async fn counts(s: &Arc<dyn Store>) -> (usize, usize) {
    let users = s.list_users().await.unwrap();
    let totp = users.iter().filter(|u| u.totp).count();
    (users.len(), totp)
}

/// Lists the cases once: `CASES` for other backends' runners, and one
/// `#[tokio::test]` per case and SQLite flavour.
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, by name.
        pub(crate) const CASES: &[(&str, Case)] = &[$((stringify!($name), |s| Box::pin($name(s)))),*];

        mod on_sqlite_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::SqliteStore::open(&dir.path().join("rampart.db")).await.unwrap();
                    super::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }

        mod on_sqlite_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let store = super::SqliteStore::open_in_memory().await.unwrap();
                    super::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

/// Runs every case on stores made by `make` (given the case's name), each in
/// its own task; returns the names of the cases that panicked (their panic
/// messages are printed as they happen).
pub(crate) async fn run_all<F, Fut>(mut make: F) -> Vec<&'static str>
where
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let mut failed = Vec::new();
    for (name, case) in CASES {
        let store = make(name).await;
        if tokio::spawn(case(store)).await.is_err() {
            failed.push(*name);
        }
    }
    failed
}

cases!(
    add_user_and_password,
    directory_account_gets_password_later,
    list_users_is_ordered_and_complete,
    delete_user_removes_everything,
    totp_set_get_remove,
    claim_totp_step_is_monotonic,
    claim_totp_step_concurrent_exactly_one,
    claim_totp_login_records_the_success_with_the_claim,
    recovery_codes_single_use_and_replace,
    recovery_code_concurrent_exactly_one,
    lockout_cycle,
    login_state_reads_everything_in_one_query,
    unlock_clears_lock,
    record_failure_concurrent_locks_once,
    concurrent_transactions_wait_instead_of_failing,
    devices_preference_and_deletion,
    sms_codes_are_single_use_and_expire,
    lock_user_locks_and_unlock_clears,
    app_passwords_are_named_used_and_revoked,
    invitations_are_single_use_and_expire,
    audit_is_queried_by_user_and_time_newest_first,
    imports_across_chunks_and_replaces_existing_seeds,
    concurrent_claims_of_many_users_are_each_decided_once,
    concurrent_replacements_leave_one_whole_set,
    import_keeps_the_last_seed_of_a_repeated_name,
    names_with_nul_are_absent,
    devices_are_ordered_by_kind_then_label,
    phone_pin_set_replace_clear_and_delete,
    old_lockout_rows_are_purged_once_their_lock_is_over,
    probe_writes_a_heartbeat,
);

async fn add_user_and_password(s: Arc<dyn Store>) {
    s.add_user("alice", HASH, 100).await.unwrap();
    assert_eq!(
        s.password_hash("alice").await.unwrap().as_deref(),
        Some(HASH)
    );
    assert_eq!(s.password_hash("nobody").await.unwrap(), None);
    assert!(matches!(
        s.add_user("alice", "other", 101).await,
        Err(StoreError::AlreadyExists(n)) if n == "alice"
    ));
    // The failed add changed nothing.
    assert_eq!(
        s.password_hash("alice").await.unwrap().as_deref(),
        Some(HASH)
    );

    s.set_password("alice", "new").await.unwrap();
    assert_eq!(
        s.password_hash("alice").await.unwrap().as_deref(),
        Some("new")
    );
    assert!(matches!(
        s.set_password("nobody", "x").await,
        Err(StoreError::NoSuchUser(n)) if n == "nobody"
    ));

    let u = s.user("alice").await.unwrap().unwrap();
    assert_eq!(
        u,
        UserSummary {
            name: "alice".into(),
            local_password: true,
            totp: false,
            recovery_codes_left: 0,
            failures: 0,
            locked_until: None,
            last_login: None,
            created_at: 100,
        }
    );
    assert_eq!(s.user("nobody").await.unwrap(), None);
}

async fn directory_account_gets_password_later(s: Arc<dyn Store>) {
    s.set_totp("dave", b"sealed", 50).await.unwrap();
    assert_eq!(s.password_hash("dave").await.unwrap(), None);
    let u = s.user("dave").await.unwrap().unwrap();
    assert!(!u.local_password && u.totp);
    // No local password yet: set_password refuses, add_user adopts the row.
    assert!(matches!(
        s.set_password("dave", HASH).await,
        Err(StoreError::NoSuchUser(_))
    ));
    s.add_user("dave", HASH, 60).await.unwrap();
    let u = s.user("dave").await.unwrap().unwrap();
    assert!(u.local_password && u.totp);
    assert_eq!(u.created_at, 50, "existing row is kept, not recreated");
    assert!(matches!(
        s.add_user("dave", HASH, 70).await,
        Err(StoreError::AlreadyExists(_))
    ));
}

async fn list_users_is_ordered_and_complete(s: Arc<dyn Store>) {
    assert!(s.list_users().await.unwrap().is_empty());
    s.add_user("carol", HASH, 3).await.unwrap();
    s.add_user("alice", HASH, 1).await.unwrap();
    s.replace_recovery_codes("bob", &codes(&["h1", "h2", "h2"]), 2)
        .await
        .unwrap();
    s.set_totp("alice", b"sealed", 4).await.unwrap();
    s.record_failure("carol", 10, 5, 60).await.unwrap();
    s.record_success("alice", 20).await.unwrap();
    // A probed unknown name has a lockout row but is no account.
    s.record_failure("ghost", 10, 5, 60).await.unwrap();

    let users = s.list_users().await.unwrap();
    let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert!(users[0].totp && users[0].local_password);
    assert_eq!(users[0].last_login, Some(20));
    assert_eq!(users[1].recovery_codes_left, 2);
    assert!(!users[1].local_password && !users[1].totp);
    assert_eq!(users[1].created_at, 2);
    assert_eq!(users[2].failures, 1);
    assert_eq!(users[2].locked_until, None);
}

async fn delete_user_removes_everything(s: Arc<dyn Store>) {
    assert!(matches!(
        s.delete_user("alice").await,
        Err(StoreError::NoSuchUser(n)) if n == "alice"
    ));
    s.add_user("alice", HASH, 1).await.unwrap();
    s.set_totp("alice", b"sealed", 2).await.unwrap();
    s.replace_recovery_codes("alice", &codes(&["h1"]), 3)
        .await
        .unwrap();
    s.record_failure("alice", 4, 1, 60).await.unwrap();
    s.add_user("bob", HASH, 1).await.unwrap();
    s.replace_recovery_codes("bob", &codes(&["h1"]), 3)
        .await
        .unwrap();

    s.delete_user("alice").await.unwrap();
    assert_eq!(s.user("alice").await.unwrap(), None);
    assert!(s.totp("alice").await.unwrap().is_none());
    assert_eq!(s.login_state("alice", 5).await.unwrap().locked_until, None);
    assert!(matches!(
        s.delete_user("alice").await,
        Err(StoreError::NoSuchUser(_))
    ));

    s.add_user("alice", HASH, 10).await.unwrap();
    let u = s.user("alice").await.unwrap().unwrap();
    assert!(!u.totp);
    assert_eq!(u.recovery_codes_left, 0);
    assert_eq!(u.failures, 0);
    assert_eq!(u.locked_until, None);
    assert_eq!(u.created_at, 10);
    assert!(!s.consume_recovery_code("alice", "h1").await.unwrap());
    // Other users are untouched.
    assert!(s.consume_recovery_code("bob", "h1").await.unwrap());

    // Only a lockout record (probed unknown name) still counts as existing.
    s.record_failure("ghost", 1, 5, 60).await.unwrap();
    s.delete_user("ghost").await.unwrap();
    assert_eq!(s.login_state("ghost", 1).await.unwrap().locked_until, None);
    assert!(matches!(
        s.delete_user("ghost").await,
        Err(StoreError::NoSuchUser(_))
    ));
    assert_eq!(s.list_users().await.unwrap().len(), 2);
}

async fn totp_set_get_remove(s: Arc<dyn Store>) {
    assert!(s.totp("alice").await.unwrap().is_none());
    assert!(!s.remove_totp("alice").await.unwrap());
    s.set_totp("alice", &[1, 2, 3], 1).await.unwrap();
    let t = s.totp("alice").await.unwrap().unwrap();
    assert_eq!(t.sealed_secret, [1, 2, 3]);
    assert_eq!(t.last_step, None);
    assert!(s.claim_totp_step("alice", 7).await.unwrap());
    assert_eq!(s.totp("alice").await.unwrap().unwrap().last_step, Some(7));

    // Re-enrolment replaces the seed and resets the replay guard.
    s.set_totp("alice", &[9; 41], 2).await.unwrap();
    let t = s.totp("alice").await.unwrap().unwrap();
    assert_eq!(t.sealed_secret, [9; 41]);
    assert_eq!(t.last_step, None);
    assert!(s.claim_totp_step("alice", 3).await.unwrap());

    assert!(s.remove_totp("alice").await.unwrap());
    assert!(!s.remove_totp("alice").await.unwrap());
    assert!(s.totp("alice").await.unwrap().is_none());
    // The account row stays.
    assert!(s.user("alice").await.unwrap().is_some());
}

async fn claim_totp_step_is_monotonic(s: Arc<dyn Store>) {
    assert!(!s.claim_totp_step("alice", 1).await.unwrap(), "no TOTP");
    s.set_totp("alice", b"sealed", 1).await.unwrap();
    assert!(s.claim_totp_step("alice", 100).await.unwrap());
    assert!(!s.claim_totp_step("alice", 100).await.unwrap(), "replay");
    assert!(!s.claim_totp_step("alice", 99).await.unwrap(), "older");
    assert!(s.claim_totp_step("alice", 101).await.unwrap());
    assert!(s.claim_totp_step("alice", 105).await.unwrap());
    assert!(!s.claim_totp_step("alice", 102).await.unwrap());
    // Per user.
    s.set_totp("bob", b"sealed", 1).await.unwrap();
    assert!(s.claim_totp_step("bob", 100).await.unwrap());
}

async fn claim_totp_step_concurrent_exactly_one(s: Arc<dyn Store>) {
    s.set_totp("alice", b"sealed", 1).await.unwrap();
    for step in [1000, 1001] {
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let s = Arc::clone(&s);
                tokio::spawn(async move { s.claim_totp_step("alice", step).await.unwrap() })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap());
        }
        assert_eq!(wins, 1, "step {step}");
    }
    assert_eq!(
        s.totp("alice").await.unwrap().unwrap().last_step,
        Some(1001)
    );
}

async fn recovery_codes_single_use_and_replace(s: Arc<dyn Store>) {
    assert!(!s.consume_recovery_code("alice", "h1").await.unwrap());
    s.replace_recovery_codes("alice", &codes(&["h1", "h2", "h3"]), 1)
        .await
        .unwrap();
    // Created the account row.
    let u = s.user("alice").await.unwrap().unwrap();
    assert_eq!(u.recovery_codes_left, 3);
    assert!(!u.local_password);

    assert!(s.consume_recovery_code("alice", "h2").await.unwrap());
    assert!(
        !s.consume_recovery_code("alice", "h2").await.unwrap(),
        "reuse"
    );
    assert!(!s.consume_recovery_code("alice", "nope").await.unwrap());
    assert!(
        !s.consume_recovery_code("bob", "h1").await.unwrap(),
        "per user"
    );
    assert_eq!(
        s.user("alice").await.unwrap().unwrap().recovery_codes_left,
        2
    );

    s.replace_recovery_codes("alice", &codes(&["n1", "n2"]), 2)
        .await
        .unwrap();
    assert!(
        !s.consume_recovery_code("alice", "h1").await.unwrap(),
        "old set gone"
    );
    assert!(
        !s.consume_recovery_code("alice", "h3").await.unwrap(),
        "old set gone"
    );
    assert!(s.consume_recovery_code("alice", "n1").await.unwrap());

    s.replace_recovery_codes("alice", &[], 3).await.unwrap();
    assert_eq!(
        s.user("alice").await.unwrap().unwrap().recovery_codes_left,
        0
    );
}

async fn recovery_code_concurrent_exactly_one(s: Arc<dyn Store>) {
    s.replace_recovery_codes("alice", &codes(&["h1", "h2"]), 1)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.consume_recovery_code("alice", "h1").await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(
        s.user("alice").await.unwrap().unwrap().recovery_codes_left,
        1
    );
}

async fn lockout_cycle(s: Arc<dyn Store>) {
    let now = 1_000;
    assert_eq!(
        s.login_state("alice", now).await.unwrap().locked_until,
        None
    );
    // Unknown users are tracked too.
    assert_eq!(s.record_failure("alice", now, 3, 60).await.unwrap(), None);
    assert_eq!(s.record_failure("alice", now, 3, 60).await.unwrap(), None);
    assert_eq!(
        s.login_state("alice", now).await.unwrap().locked_until,
        None
    );
    assert_eq!(
        s.record_failure("alice", now + 1, 3, 60).await.unwrap(),
        Some(now + 61)
    );
    assert_eq!(
        s.login_state("alice", now + 1).await.unwrap().locked_until,
        Some(now + 61)
    );
    assert_eq!(
        s.login_state("alice", now + 60).await.unwrap().locked_until,
        Some(now + 61)
    );
    // Expiry: locked only while locked_until > now.
    assert_eq!(
        s.login_state("alice", now + 61).await.unwrap().locked_until,
        None
    );
    assert_eq!(
        s.login_state("bob", now + 1).await.unwrap().locked_until,
        None
    );

    // The count restarted at 0 when the lock was set.
    s.add_user("alice", HASH, 1).await.unwrap();
    assert_eq!(s.user("alice").await.unwrap().unwrap().failures, 0);
    assert_eq!(
        s.record_failure("alice", now + 70, 3, 60).await.unwrap(),
        None
    );
    assert_eq!(
        s.record_failure("alice", now + 70, 3, 60).await.unwrap(),
        None
    );
    assert_eq!(s.user("alice").await.unwrap().unwrap().failures, 2);

    // Success resets the count and records last_login.
    s.record_success("alice", now + 80).await.unwrap();
    let u = s.user("alice").await.unwrap().unwrap();
    assert_eq!(u.failures, 0);
    assert_eq!(u.last_login, Some(now + 80));
    assert_eq!(u.locked_until, None, "expired lock cleared on success");
    assert_eq!(
        s.record_failure("alice", now + 90, 3, 60).await.unwrap(),
        None
    );
    assert_eq!(
        s.record_failure("alice", now + 90, 3, 60).await.unwrap(),
        None
    );

    // Success for an unknown name is harmless.
    s.record_success("nobody", now).await.unwrap();
    assert_eq!(s.user("nobody").await.unwrap(), None);

    // max_failures 0 behaves as 1.
    assert_eq!(
        s.record_failure("carl", now, 0, 5).await.unwrap(),
        Some(now + 5)
    );
}

async fn login_state_reads_everything_in_one_query(s: Arc<dyn Store>) {
    let empty = s.login_state("alice", 100).await.unwrap();
    assert!(empty.totp.is_none() && empty.locked_until.is_none() && empty.failures == 0);
    s.add_user("alice", HASH, 1).await.unwrap();
    s.set_totp("alice", b"sealed", 1).await.unwrap();
    s.claim_totp_step("alice", 7).await.unwrap();
    s.record_failure("alice", 100, 2, 60).await.unwrap();
    let state = s.login_state("alice", 100).await.unwrap();
    assert_eq!(state.failures, 1);
    assert_eq!(state.totp.as_ref().unwrap().sealed_secret, b"sealed");
    assert_eq!(state.totp.unwrap().last_step, Some(7));
    s.record_failure("alice", 100, 2, 60).await.unwrap();
    assert_eq!(
        s.login_state("alice", 100).await.unwrap().locked_until,
        Some(160)
    );
    assert_eq!(
        s.login_state("alice", 161).await.unwrap().locked_until,
        None,
        "expired"
    );
    s.record_success("alice", 200).await.unwrap();
    assert_eq!(
        s.login_state("alice", 200).await.unwrap().last_login,
        Some(200)
    );
}

async fn claim_totp_login_records_the_success_with_the_claim(s: Arc<dyn Store>) {
    s.add_user("alice", HASH, 1).await.unwrap();
    s.set_totp("alice", b"sealed", 1).await.unwrap();
    s.record_failure("alice", 100, 5, 60).await.unwrap();
    // Without success_at only the step is claimed.
    assert!(s.claim_totp_login("alice", 10, None).await.unwrap());
    let state = s.login_state("alice", 100).await.unwrap();
    assert_eq!((state.failures, state.last_login), (1, None));
    assert_eq!(state.totp.unwrap().last_step, Some(10));
    // A replayed step records nothing.
    assert!(!s.claim_totp_login("alice", 10, Some(150)).await.unwrap());
    let state = s.login_state("alice", 150).await.unwrap();
    assert_eq!((state.failures, state.last_login), (1, None));
    // A winning claim resets the failures and sets last_login with it.
    assert!(s.claim_totp_login("alice", 11, Some(160)).await.unwrap());
    let state = s.login_state("alice", 160).await.unwrap();
    assert_eq!((state.failures, state.last_login), (0, Some(160)));
    assert_eq!(state.totp.unwrap().last_step, Some(11));
}

async fn unlock_clears_lock(s: Arc<dyn Store>) {
    assert!(!s.unlock("alice").await.unwrap());
    s.record_failure("alice", 100, 5, 60).await.unwrap();
    assert!(
        !s.unlock("alice").await.unwrap(),
        "failures only, not locked"
    );
    assert_eq!(
        s.record_failure("alice", 100, 1, 60).await.unwrap(),
        Some(160)
    );
    assert!(s.unlock("alice").await.unwrap());
    assert_eq!(
        s.login_state("alice", 100).await.unwrap().locked_until,
        None
    );
    assert!(!s.unlock("alice").await.unwrap());
    // After unlock the count starts from zero.
    assert_eq!(s.record_failure("alice", 101, 2, 60).await.unwrap(), None);
    assert_eq!(
        s.record_failure("alice", 101, 2, 60).await.unwrap(),
        Some(161)
    );
}

async fn record_failure_concurrent_locks_once(s: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.record_failure("alice", 100, 10, 60).await.unwrap() })
        })
        .collect();
    let mut locks = 0;
    for t in tasks {
        if let Some(until) = t.await.unwrap() {
            assert_eq!(until, 160);
            locks += 1;
        }
    }
    // 20 failures with a threshold of 10: no increment lost, two locks.
    assert_eq!(locks, 2);
    assert_eq!(
        s.login_state("alice", 100).await.unwrap().locked_until,
        Some(160)
    );
}

async fn concurrent_transactions_wait_instead_of_failing(s: Arc<dyn Store>) {
    // Multi-statement writers on every pool connection at once: with
    // BEGIN IMMEDIATE + busy_timeout they queue; none sees SQLITE_BUSY.
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let name = format!("user{}", i % 3);
                match i % 4 {
                    0 => s.set_totp(&name, b"sealed", i).await,
                    1 => s
                        .replace_recovery_codes(&name, &[format!("h{i}")], i)
                        .await
                        .map(drop),
                    2 => s.record_success(&name, i).await,
                    _ => s.record_failure(&name, i, 100, 60).await.map(drop),
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.list_users().await.unwrap().len(), 3);
}

async fn devices_preference_and_deletion(s: Arc<dyn Store>) {
    assert!(s.out_of_band("alice").await.unwrap().devices.is_empty());
    assert!(matches!(
        s.set_preferred_factor("alice", Some("push")).await,
        Err(StoreError::NoSuchUser(_))
    ));
    s.add_device("alice", DeviceKind::Phone, "primary", b"p1", 1)
        .await
        .unwrap();
    s.add_device("alice", DeviceKind::Push, "pixel", b"t1", 2)
        .await
        .unwrap();
    // Re-enrolling the same label replaces the target.
    s.add_device("alice", DeviceKind::Phone, "primary", b"p2", 3)
        .await
        .unwrap();
    s.set_preferred_factor("alice", Some("phone"))
        .await
        .unwrap();
    let oob = s.out_of_band("alice").await.unwrap();
    assert_eq!(oob.preferred.as_deref(), Some("phone"));
    let got: Vec<_> = oob
        .devices
        .iter()
        .map(|d| (d.kind, d.label.as_str(), d.sealed_target.as_slice()))
        .collect();
    assert_eq!(
        got,
        vec![
            (DeviceKind::Phone, "primary", &b"p2"[..]),
            (DeviceKind::Push, "pixel", &b"t1"[..])
        ]
    );
    assert!(
        s.remove_device("alice", DeviceKind::Push, "pixel")
            .await
            .unwrap()
    );
    assert!(
        !s.remove_device("alice", DeviceKind::Push, "pixel")
            .await
            .unwrap()
    );
    s.put_sms_code("alice", "h", 100).await.unwrap();
    s.delete_user("alice").await.unwrap();
    assert_eq!(s.out_of_band("alice").await.unwrap(), Default::default());
    assert!(!s.take_sms_code("alice", "h", 50).await.unwrap());
}

async fn sms_codes_are_single_use_and_expire(s: Arc<dyn Store>) {
    s.put_sms_code("bob", "h1", 100).await.unwrap();
    assert!(!s.take_sms_code("bob", "wrong", 50).await.unwrap());
    // A wrong code leaves the right one usable.
    assert!(s.take_sms_code("bob", "h1", 50).await.unwrap());
    assert!(!s.take_sms_code("bob", "h1", 50).await.unwrap());
    s.put_sms_code("bob", "h2", 100).await.unwrap();
    // A newer code replaces the old one.
    s.put_sms_code("bob", "h3", 100).await.unwrap();
    assert!(!s.take_sms_code("bob", "h2", 50).await.unwrap());
    assert!(!s.take_sms_code("bob", "h3", 101).await.unwrap());
}

async fn lock_user_locks_and_unlock_clears(s: Arc<dyn Store>) {
    s.lock_user("carol", 1000).await.unwrap();
    assert_eq!(
        s.login_state("carol", 10).await.unwrap().locked_until,
        Some(1000)
    );
    // A shorter lock never shortens a longer one.
    s.lock_user("carol", 500).await.unwrap();
    assert_eq!(
        s.login_state("carol", 10).await.unwrap().locked_until,
        Some(1000)
    );
    assert!(s.unlock("carol").await.unwrap());
    assert_eq!(s.login_state("carol", 10).await.unwrap().locked_until, None);
}

async fn app_passwords_are_named_used_and_revoked(s: Arc<dyn Store>) {
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

async fn invitations_are_single_use_and_expire(s: Arc<dyn Store>) {
    s.create_invitation("t1", "alice", 100, 1).await.unwrap();
    s.create_invitation("t2", "bob", 100, 1).await.unwrap();
    s.create_invitation("t3", "bob", 200, 1).await.unwrap();
    assert_eq!(s.invited_users(50).await.unwrap(), ["alice", "bob"]);
    assert_eq!(s.invited_users(150).await.unwrap(), ["bob"]);
    assert_eq!(
        s.redeem_invitation("t1", 50).await.unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(s.redeem_invitation("t1", 50).await.unwrap(), None);
    assert_eq!(s.redeem_invitation("t2", 101).await.unwrap(), None);
    assert_eq!(s.redeem_invitation("nope", 1).await.unwrap(), None);
    // Redeemed: no longer pending.
    assert_eq!(s.invited_users(50).await.unwrap(), ["bob"]);
    assert!(s.invited_users(201).await.unwrap().is_empty());
}

async fn audit_is_queried_by_user_and_time_newest_first(s: Arc<dyn Store>) {
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

async fn imports_across_chunks_and_replaces_existing_seeds(s: Arc<dyn Store>) {
    // A local user, and a directory user whose seed was used already.
    s.add_user("user00001", "$argon2id$hash", 1).await.unwrap();
    s.set_totp("user00002", b"old", 1).await.unwrap();
    assert!(s.claim_totp_step("user00002", 50).await.unwrap());

    let all = seeds(0..2_345); // three chunks, the last one partial
    s.import_totp(&all, 7).await.unwrap();

    assert_eq!(counts(&s).await, (2_345, 2_345));
    let last = s.totp("user02344").await.unwrap().unwrap();
    assert_eq!(last.sealed_secret, b"sealed-2344");
    // The local user keeps its password; the old seed and its step history are gone.
    assert_eq!(
        s.password_hash("user00001").await.unwrap().as_deref(),
        Some("$argon2id$hash")
    );
    let replaced = s.totp("user00002").await.unwrap().unwrap();
    assert_eq!(replaced.sealed_secret, b"sealed-2");
    assert_eq!(replaced.last_step, None);
    assert!(s.claim_totp_step("user00002", 10).await.unwrap());
    let summary = s.user("user00003").await.unwrap().unwrap();
    assert!(summary.totp && !summary.local_password);
    assert_eq!(summary.created_at, 7);

    s.import_totp(&[], 8).await.unwrap();
    assert_eq!(counts(&s).await, (2_345, 2_345));
}

async fn concurrent_claims_of_many_users_are_each_decided_once(store: Arc<dyn Store>) {
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
        let state = store.login_state(user, 0).await.unwrap();
        assert_eq!(state.totp.unwrap().last_step, Some(10));
        assert!(state.has_account);
    }
    let nobody = store.login_state("nobody", 0).await.unwrap();
    assert!(nobody.totp.is_none() && !nobody.has_account && nobody.failures == 0);
}

async fn concurrent_replacements_leave_one_whole_set(s: Arc<dyn Store>) {
    // Regenerating codes twice at once (two nodes, two browser tabs) leaves
    // exactly one of the new sets, never a mix or both.
    s.replace_recovery_codes("alice", &codes(&["old"]), 1)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.replace_recovery_codes("alice", &[format!("a{i}"), format!("b{i}")], 2)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        s.user("alice").await.unwrap().unwrap().recovery_codes_left,
        2
    );
    assert!(!s.consume_recovery_code("alice", "old").await.unwrap());
    let mut winners = Vec::new();
    for i in 0..8 {
        if s.consume_recovery_code("alice", &format!("a{i}"))
            .await
            .unwrap()
        {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert!(
        s.consume_recovery_code("alice", &format!("b{}", winners[0]))
            .await
            .unwrap()
    );
}

async fn import_keeps_the_last_seed_of_a_repeated_name(s: Arc<dyn Store>) {
    let seeds = vec![
        ("alice".to_string(), b"first".to_vec()),
        ("bob".to_string(), b"bob".to_vec()),
        ("alice".to_string(), b"second".to_vec()),
    ];
    s.import_totp(&seeds, 1).await.unwrap();
    assert_eq!(counts(&s).await, (2, 2));
    assert_eq!(
        s.totp("alice").await.unwrap().unwrap().sealed_secret,
        b"second"
    );
}

async fn names_with_nul_are_absent(s: Arc<dyn Store>) {
    // `/readyz` probes with such a name, and a RADIUS User-Name may carry
    // one; PostgreSQL text cannot hold U+0000, SQLite can. Either way the
    // name is unknown and nothing fails.
    let name = "\0readyz";
    let state = s.login_state(name, 10).await.unwrap();
    assert!(state.totp.is_none() && !state.has_account && state.locked_until.is_none());
    assert_eq!(s.user(name).await.unwrap(), None);
    assert_eq!(s.password_hash(name).await.unwrap(), None);
    assert!(s.totp(name).await.unwrap().is_none());
    assert!(!s.claim_totp_step(name, 1).await.unwrap());
    assert!(!s.consume_recovery_code(name, "h").await.unwrap());
    assert!(!s.take_sms_code(name, "h", 0).await.unwrap());
    assert_eq!(s.use_app_password(name, "h", 0).await.unwrap(), None);
    assert_eq!(s.redeem_invitation("t\0", 0).await.unwrap(), None);
    assert_eq!(s.record_failure(name, 10, 5, 60).await.unwrap(), None);
    s.record_success(name, 10).await.unwrap();
    assert!(!s.unlock("a\0b").await.unwrap());
    // A decision about such a name is still audited.
    let event = AuditEvent {
        time: 10,
        user: "a\0b".into(),
        client: "vpn".into(),
        station: None,
        outcome: "reject".into(),
        reason: "bad_password".into(),
        factor: "none".into(),
        duration_ms: 1,
    };
    s.record_audit(&[event]).await.unwrap();
    assert_eq!(s.audit(None, 0, 100, 10).await.unwrap().len(), 1);
}

async fn devices_are_ordered_by_kind_then_label(s: Arc<dyn Store>) {
    s.add_device("alice", DeviceKind::Push, "b", b"t2", 1)
        .await
        .unwrap();
    s.add_device("alice", DeviceKind::Phone, "a", b"p1", 2)
        .await
        .unwrap();
    s.add_device("alice", DeviceKind::Push, "B", b"t3", 3)
        .await
        .unwrap();
    s.set_preferred_factor("alice", Some("push")).await.unwrap();
    let oob = s.out_of_band("alice").await.unwrap();
    assert_eq!(oob.preferred.as_deref(), Some("push"));
    let got: Vec<_> = oob
        .devices
        .iter()
        .map(|d| (d.kind, d.label.as_str()))
        .collect();
    // Byte order (upper case first), whatever the database's locale.
    assert_eq!(
        got,
        vec![
            (DeviceKind::Phone, "a"),
            (DeviceKind::Push, "B"),
            (DeviceKind::Push, "b")
        ]
    );
    assert_eq!(s.out_of_band("nobody").await.unwrap(), Default::default());
}

async fn phone_pin_set_replace_clear_and_delete(s: Arc<dyn Store>) {
    assert_eq!(s.phone_pin_hash("alice").await.unwrap(), None);
    assert!(!s.clear_phone_pin("alice").await.unwrap());
    // A directory user without an account row gets one.
    s.set_phone_pin("alice", "h1", 10).await.unwrap();
    assert!(s.user("alice").await.unwrap().is_some());
    assert_eq!(
        s.phone_pin_hash("alice").await.unwrap().as_deref(),
        Some("h1")
    );
    s.set_phone_pin("alice", "h2", 11).await.unwrap();
    assert_eq!(
        s.phone_pin_hash("alice").await.unwrap().as_deref(),
        Some("h2")
    );
    assert!(s.clear_phone_pin("alice").await.unwrap());
    assert!(!s.clear_phone_pin("alice").await.unwrap());
    assert_eq!(s.phone_pin_hash("alice").await.unwrap(), None);
    // Deleting the user takes the PIN with the account row.
    s.set_phone_pin("alice", "h3", 12).await.unwrap();
    s.delete_user("alice").await.unwrap();
    assert_eq!(s.phone_pin_hash("alice").await.unwrap(), None);
}

/// A spray of invented names leaves rows; a day later they are gone, but
/// never a lock still running or a recent failure.
async fn old_lockout_rows_are_purged_once_their_lock_is_over(s: Arc<dyn Store>) {
    for i in 0..50 {
        s.record_failure(&format!("sprayed{i}"), 1_000, 5, 60)
            .await
            .unwrap();
    }
    // Locked at 1 000 until 1 000 + 86 400 * 2.
    assert!(
        s.record_failure("locked", 1_000, 1, 86_400 * 2)
            .await
            .unwrap()
            .is_some()
    );
    s.record_failure("recent", 90_000, 5, 60).await.unwrap();
    let purged = s.purge_lockouts(100_000, 100_000 - 86_400).await.unwrap();
    assert_eq!(
        purged, 50,
        "the sprayed names, not the lock or the recent one"
    );
    assert!(
        s.login_state("locked", 100_000)
            .await
            .unwrap()
            .locked_until
            .is_some()
    );
    assert_eq!(s.login_state("recent", 100_000).await.unwrap().failures, 1);
    assert_eq!(
        s.purge_lockouts(100_000, 100_000 - 86_400).await.unwrap(),
        0
    );
}

/// The health probe writes, and may run over and over.
async fn probe_writes_a_heartbeat(s: Arc<dyn Store>) {
    s.probe("node-a", 1).await.unwrap();
    s.probe("node-a", 2).await.unwrap();
    s.probe("node-b", 2).await.unwrap();
}
