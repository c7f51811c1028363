//! [`Live`]: a value replaced whole when the configuration is reloaded
//! (SIGHUP). Readers take the current value with [`Live::load`] and keep that
//! `Arc` for as long as they need it, so work that started on the old value
//! finishes on it while new work sees the new one: the RADIUS listener loads
//! the client table and the pipeline once per datagram, and a login parked
//! for a push keeps the pipeline it started with.
//!
//! A `RwLock<Arc<T>>` rather than the `arc-swap` crate: a read is one
//! uncontended read lock and an `Arc` clone (tens of nanoseconds, next to the
//! microseconds a datagram costs), writes happen once per reload, and it is
//! one dependency fewer.

use std::sync::{Arc, RwLock};

/// The current value of something a reload replaces.
pub struct Live<T: ?Sized> {
    current: RwLock<Arc<T>>,
}

impl<T: ?Sized> Live<T> {
    /// Starts with `value`.
    pub fn new(value: Arc<T>) -> Live<T> {
        Live {
            current: RwLock::new(value),
        }
    }

    /// The current value.
    pub fn load(&self) -> Arc<T> {
        // A poisoned lock still holds a whole Arc: a panic cannot leave it half-written.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the value; returns the previous one (readers that loaded it keep it).
    pub fn store(&self, value: Arc<T>) -> Arc<T> {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *current, value)
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Live").field(&self.load()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_what_they_loaded() {
        let live = Live::new(Arc::new(1));
        let before = live.load();
        let old = live.store(Arc::new(2));
        assert_eq!((*before, *old, *live.load()), (1, 1, 2));
    }
}
