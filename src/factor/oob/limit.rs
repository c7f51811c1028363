//! Per-user limit on pushes and calls: push-fatigue protection. A sliding
//! window of send times per user, in memory (each node limits what it sends).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `max` sends per user in any `window`.
pub struct SendLimit {
    max: usize,
    window: Duration,
    sent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SendLimit {
    /// A limit of `max` per `window`.
    pub fn new(max: u32, window: Duration) -> SendLimit {
        SendLimit {
            max: max.max(1) as usize,
            window,
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this limit is `max` per `window` (a reload keeps the history then).
    pub fn is(&self, max: u32, window: Duration) -> bool {
        self.max == max.max(1) as usize && self.window == window
    }

    /// Records a send for `user` and returns true, or returns false (and
    /// records nothing) when the user already had `max` in the window.
    pub fn try_send(&self, user: &str, now: Instant) -> bool {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        if sent.len() > 10_000 {
            let window = self.window;
            sent.retain(|_, times| times.back().is_some_and(|t| now - *t < window));
        }
        let times = sent.entry(user.to_string()).or_default();
        while times.front().is_some_and(|t| now - *t >= self.window) {
            times.pop_front();
        }
        if times.len() >= self.max {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_user_and_slides() {
        let limit = SendLimit::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(limit.try_send("a", t0));
        assert!(limit.try_send("a", t0 + Duration::from_secs(10)));
        assert!(!limit.try_send("a", t0 + Duration::from_secs(20)));
        assert!(limit.try_send("b", t0 + Duration::from_secs(20)));
        assert!(limit.try_send("a", t0 + Duration::from_secs(61)));
        assert!(!limit.try_send("a", t0 + Duration::from_secs(62)));
    }
}
