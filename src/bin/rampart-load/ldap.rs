//! The raw ceiling of the LDAP path, with no RADIUS in between: per login one
//! search for the user's DN as the service account (on a small pool of
//! long-lived, multiplexed connections) and one simple bind as the user (on a
//! pool of bind connections; a bind changes the connection's identity, so a
//! bind connection serves one login at a time), exactly the search-then-bind
//! that an LDAP primary backend and FreeRADIUS's rlm_ldap both do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, ldap_escape};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::report::{Outcome, Tally, Window};
use crate::users::NumberFormat;

/// RFC 4511 §4.1.9 resultCode invalidCredentials.
const INVALID_CREDENTIALS: u32 = 49;

/// What the LDAP run needs.
pub struct Plan {
    /// `ldap://HOST:PORT`.
    pub url: String,
    /// Search base.
    pub base_dn: String,
    /// Service account.
    pub bind_dn: String,
    /// Service account password.
    pub bind_password: String,
    /// Filter with `{user}`.
    pub filter: String,
    /// User names by number.
    pub users: NumberFormat,
    /// Number of user index 0.
    pub first: u64,
    /// How many users, taken round-robin.
    pub user_count: usize,
    /// Passwords by number.
    pub passwords: NumberFormat,
    /// The answer every login should get.
    pub expect: Outcome,
    /// Per operation.
    pub timeout: Duration,
    /// When to send and what to count.
    pub window: Window,
}

async fn connect(plan: &Plan) -> Result<Ldap, LdapError> {
    let settings = LdapConnSettings::new().set_conn_timeout(plan.timeout);
    let (conn, ldap) = LdapConnAsync::with_settings(settings, &plan.url).await?;
    ldap3::drive!(conn);
    Ok(ldap)
}

async fn service_connection(plan: &Plan) -> Result<Ldap, LdapError> {
    let mut ldap = connect(plan).await?;
    ldap.with_timeout(plan.timeout)
        .simple_bind(&plan.bind_dn, &plan.bind_password)
        .await?
        .success()?;
    Ok(ldap)
}

/// One login: search as the service account, then bind as the user.
async fn login(plan: &Plan, search: &mut Ldap, bind: &mut Ldap, number: u64) -> Outcome {
    let user = plan.users.render(number);
    let filter = plan.filter.replace("{user}", &ldap_escape(user.as_str()));
    let found = search
        .with_timeout(plan.timeout)
        .search(&plan.base_dn, Scope::Subtree, &filter, vec!["1.1"])
        .await
        .and_then(|result| result.success());
    let mut entries = match found {
        Ok((entries, _)) => entries,
        Err(LdapError::Timeout { .. }) => return Outcome::Timeout,
        Err(_) => return Outcome::BadReply,
    };
    if entries.len() != 1 {
        return Outcome::Reject; // no such user (or an ambiguous filter)
    }
    let dn = SearchEntry::construct(entries.swap_remove(0)).dn;
    let password = plan.passwords.render(number);
    match bind
        .with_timeout(plan.timeout)
        .simple_bind(&dn, &password)
        .await
    {
        Ok(result) if result.rc == 0 => Outcome::Accept,
        Ok(result) if result.rc == INVALID_CREDENTIALS => Outcome::Reject,
        Ok(_) => Outcome::BadReply,
        Err(LdapError::Timeout { .. }) => Outcome::Timeout,
        Err(_) => Outcome::BadReply,
    }
}

/// Runs the load; returns the merged tally.
pub async fn run(
    plan: Plan,
    concurrency: usize,
    search_conns: usize,
    bind_conns: usize,
) -> Result<Tally, LdapError> {
    let mut searchers = Vec::new();
    for _ in 0..search_conns.max(1) {
        searchers.push(service_connection(&plan).await?);
    }
    let mut binders = Vec::new();
    for _ in 0..bind_conns.max(1) {
        binders.push(Arc::new(Mutex::new(connect(&plan).await?)));
    }
    let plan = Arc::new(plan);
    let next_user = Arc::new(AtomicUsize::new(0));
    let budget = Arc::new(AtomicU64::new(plan.window.requests.unwrap_or(u64::MAX)));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency.max(1) {
        // Clones of one `Ldap` multiplex over its connection.
        let mut search = searchers[worker % searchers.len()].clone();
        let bind = Arc::clone(&binders[worker % binders.len()]);
        let (plan, next_user, budget) = (
            Arc::clone(&plan),
            Arc::clone(&next_user),
            Arc::clone(&budget),
        );
        tasks.spawn(async move {
            let mut tally = Tally::default();
            tokio::time::sleep_until(plan.window.start).await;
            while Instant::now() < plan.window.end {
                if plan.window.requests.is_some()
                    && budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                        .is_err()
                {
                    break;
                }
                let index = next_user.fetch_add(1, Ordering::Relaxed) % plan.user_count.max(1);
                let number = plan.first + index as u64;
                let sent = Instant::now();
                tally.sent += 1;
                let outcome = {
                    let mut bind = bind.lock().await;
                    login(&plan, &mut search, &mut bind, number).await
                };
                tally.record(&plan.window, sent, outcome, plan.expect);
            }
            tally
        });
    }
    let mut total = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(tally) = joined {
            total.merge(tally);
        }
    }
    Ok(total)
}
