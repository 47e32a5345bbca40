//! Counted places (requests in flight, open streams), taken without waiting: a request
//! that finds none is refused at once (503 `overloaded`), so nothing here ever queues.
//! An atomic counter, where a semaphore would lock a mutex on every release (measured:
//! the per-caller share and the global slot are taken and given back on every request).
//! Shutdown waits for every place to come back with [`Slots::all_free`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// A fixed number of places.
pub struct Slots {
    capacity: usize,
    taken: AtomicUsize,
    /// Set by [`Slots::all_free`]: only then do releases notify.
    draining: AtomicBool,
    freed: Notify,
}

/// One place, given back on drop.
pub struct Slot(Arc<Slots>);

impl Slots {
    /// `capacity` places (at least one).
    pub fn new(capacity: usize) -> Arc<Slots> {
        Arc::new(Slots {
            capacity: capacity.max(1),
            taken: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            freed: Notify::new(),
        })
    }

    /// A place, or `None` when all are taken.
    pub fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let mut n = self.taken.load(Ordering::Relaxed);
        loop {
            if n >= self.capacity {
                return None;
            }
            match self
                .taken
                .compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Some(Slot(self.clone())),
                Err(now) => n = now,
            }
        }
    }

    /// Places taken now.
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }

    /// Waits until every place has been given back.
    pub async fn all_free(&self) {
        self.draining.store(true, Ordering::SeqCst);
        loop {
            let notified = self.freed.notified();
            if self.taken.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let before = self.0.taken.fetch_sub(1, Ordering::SeqCst);
        if before == 1 && self.0.draining.load(Ordering::SeqCst) {
            self.0.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn places_are_counted_and_given_back() {
        let s = Slots::new(2);
        let a = s.try_take().unwrap();
        let b = s.try_take().unwrap();
        assert!(s.try_take().is_none(), "full");
        assert_eq!(s.taken(), 2);
        drop(a);
        let c = s.try_take().unwrap();
        drop((b, c));
        assert_eq!(s.taken(), 0);
        assert_eq!(Slots::new(0).capacity, 1);
    }

    #[test]
    fn all_free_waits_for_the_last_place() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let s = Slots::new(4);
        let held = s.try_take().unwrap();
        rt.block_on(async {
            let wait = tokio::spawn({
                let s = s.clone();
                async move { s.all_free().await }
            });
            tokio::task::yield_now().await;
            assert!(!wait.is_finished(), "a place is still taken");
            drop(held);
            wait.await.unwrap();
        });
        rt.block_on(s.all_free()); // nothing taken: at once
    }
}
