//! The directory servers in order of preference, each with its health: a
//! server that fails is skipped for 1 s, then 2, 4, ... up to 60 s, and tried
//! again after. When every server is in back-off, the one whose back-off ends
//! first is tried anyway, so a directory that comes back is noticed on the next
//! login. Health changes are logged (warn when a server fails, info when it
//! answers again).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// First back-off after a failure; doubles per consecutive failure.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Longest back-off.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Health {
    failures: u32,
    retry_at: Option<Instant>,
}

struct Server {
    url: String,
    health: Mutex<Health>,
}

/// The servers and their health.
pub struct Servers {
    list: Vec<Server>,
}

fn backoff(failures: u32) -> Duration {
    let doubled = BACKOFF_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(BACKOFF_MAX)
}

impl Servers {
    /// Servers in order of preference, all healthy.
    pub fn new(urls: Vec<String>) -> Servers {
        Servers {
            list: urls
                .into_iter()
                .map(|url| Server {
                    url,
                    health: Mutex::new(Health::default()),
                })
                .collect(),
        }
    }

    /// The URL of a server.
    pub fn url(&self, server: usize) -> &str {
        &self.list[server].url
    }

    fn health(&self, server: usize) -> std::sync::MutexGuard<'_, Health> {
        self.list[server]
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Servers to try now, best first.
    pub fn order(&self, now: Instant) -> Vec<usize> {
        let mut ready = Vec::new();
        let mut soonest: Option<(Instant, usize)> = None;
        for i in 0..self.list.len() {
            match self.health(i).retry_at {
                Some(at) if at > now => {
                    if soonest.is_none_or(|(best, _)| at < best) {
                        soonest = Some((at, i));
                    }
                }
                _ => ready.push(i),
            }
        }
        if ready.is_empty() {
            ready.extend(soonest.map(|(_, i)| i));
        }
        ready
    }

    /// Records a failure; the first one of an outage starts a back-off, and
    /// failures seen by other requests during that back-off do not extend it.
    pub fn failed(&self, server: usize, why: &str) {
        let now = Instant::now();
        let mut health = self.health(server);
        if health.retry_at.is_some_and(|at| at > now) {
            return;
        }
        health.failures = health.failures.saturating_add(1);
        let wait = backoff(health.failures);
        health.retry_at = Some(now + wait);
        warn!(
            server = %self.list[server].url,
            error = why,
            failures = health.failures,
            retry_in_secs = wait.as_secs(),
            "LDAP server failed; using the next server until the back-off ends"
        );
    }

    /// Records a working connection; ends any back-off.
    pub fn succeeded(&self, server: usize) {
        let mut health = self.health(server);
        if health.failures > 0 {
            info!(server = %self.list[server].url, "LDAP server is answering again");
        }
        *health = Health::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn back_off_doubles_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn failed_servers_are_skipped_until_their_back_off_ends() {
        let dir = Servers::new(urls(&["ldap://a", "ldap://b", "ldap://c"]));
        let now = Instant::now();
        assert_eq!(dir.order(now), [0, 1, 2]);
        dir.failed(0, "refused");
        assert_eq!(dir.order(Instant::now()), [1, 2]);
        // A second failure during the same back-off does not extend it.
        dir.failed(0, "refused");
        assert_eq!(dir.health(0).failures, 1);
        assert_eq!(
            dir.order(Instant::now() + Duration::from_millis(1100)),
            [0, 1, 2]
        );
        dir.succeeded(0);
        assert_eq!(dir.health(0).failures, 0);
    }

    #[test]
    fn when_all_are_down_the_soonest_is_tried() {
        let dir = Servers::new(urls(&["ldap://a", "ldap://b"]));
        dir.failed(0, "refused");
        dir.failed(1, "refused");
        let now = Instant::now();
        dir.health(0).retry_at = Some(now + Duration::from_secs(5));
        assert_eq!(dir.order(now), [1]);
    }
}
