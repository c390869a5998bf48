//! Slots for argon2: a few at a time (half the cores), on blocking threads,
//! never on the reactor. Sign-ins from known browsers (device cookie) are
//! served ahead of everyone else's; a stranger's attempt that could not be
//! hashed soon is answered "busy" at once instead of queued, so that a flood
//! from many addresses neither builds a queue nor delays the real users.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Who is waiting for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A browser that signed in as this user before.
    Known,
    Stranger,
}

/// Most known-browser sign-ins waiting; beyond, "busy".
const MAX_KNOWN_WAITING: usize = 256;
/// A stranger's attempt is turned away when the hashes queued ahead of it
/// would take longer than this.
const MAX_STRANGER_WAIT: Duration = Duration::from_millis(500);
/// Starting estimate of one hash, before any was timed.
const FIRST_ESTIMATE: Duration = Duration::from_millis(50);

pub(crate) struct Hashing {
    slots: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    free: usize,
    known: VecDeque<oneshot::Sender<Slot>>,
    strangers: VecDeque<oneshot::Sender<Slot>>,
    /// Moving average of a hash's duration.
    estimate: Duration,
}

/// Permission to hash; handed to the next waiter when dropped.
pub(crate) struct Slot {
    hashing: Option<Arc<Hashing>>,
    since: Instant,
}

impl Hashing {
    pub(crate) fn new(slots: usize) -> Arc<Hashing> {
        Arc::new(Hashing {
            slots: slots.max(1),
            inner: Mutex::new(Inner {
                free: slots.max(1),
                known: VecDeque::new(),
                strangers: VecDeque::new(),
                estimate: FIRST_ESTIMATE,
            }),
        })
    }

    /// Waits for a slot; `None` when the attempt is to be answered "busy".
    pub(crate) async fn acquire(self: &Arc<Self>, class: Class) -> Option<Slot> {
        let rx = {
            let mut inner = self.inner.lock().unwrap();
            if inner.free > 0 && inner.known.is_empty() && inner.strangers.is_empty() {
                inner.free -= 1;
                return Some(self.slot());
            }
            let (tx, rx) = oneshot::channel();
            match class {
                Class::Known => {
                    if inner.known.len() >= MAX_KNOWN_WAITING {
                        return None;
                    }
                    inner.known.push_back(tx);
                }
                Class::Stranger => {
                    let ahead = (inner.known.len() + inner.strangers.len() + 1) as u32;
                    let wait = inner.estimate * ahead / self.slots as u32;
                    if wait > MAX_STRANGER_WAIT {
                        return None;
                    }
                    inner.strangers.push_back(tx);
                }
            }
            rx
        };
        rx.await.ok()
    }

    fn slot(self: &Arc<Self>) -> Slot {
        Slot {
            hashing: Some(Arc::clone(self)),
            since: Instant::now(),
        }
    }

    /// A slot came back: to the next waiter (known browsers first) that is
    /// still there, else to the free count.
    fn release(self: &Arc<Self>, took: Duration) {
        let mut inner = self.inner.lock().unwrap();
        // a moving average over about the last 8 hashes
        inner.estimate = (inner.estimate * 7 + took) / 8;
        loop {
            let next = match inner.known.pop_front() {
                Some(tx) => tx,
                None => match inner.strangers.pop_front() {
                    Some(tx) => tx,
                    None => {
                        inner.free += 1;
                        return;
                    }
                },
            };
            match next.send(self.slot()) {
                Ok(()) => return,
                // that waiter gave up (its client went away): the next one
                Err(mut unused) => {
                    unused.hashing = None;
                }
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(h) = self.hashing.take() {
            h.release(self.since.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn known_browsers_go_first_and_strangers_are_not_queued_for_long() {
        let h = Hashing::new(1);
        let first = h.acquire(Class::Stranger).await.unwrap();
        // strangers queue while the wait stays short (estimate 50 ms: 10)
        let mut strangers = Vec::new();
        for _ in 0..10 {
            let h = Arc::clone(&h);
            strangers.push(tokio::spawn(async move {
                h.acquire(Class::Stranger).await.map(|s| {
                    drop(s);
                    Class::Stranger
                })
            }));
        }
        let order = Arc::new(Mutex::new(Vec::new()));
        // wait until all ten are queued
        while h.inner.lock().unwrap().strangers.len() < 10 {
            tokio::task::yield_now().await;
        }
        // the next stranger is turned away at once
        assert!(h.acquire(Class::Stranger).await.is_none());
        // a known browser still queues, and is served before the strangers
        let known = {
            let (h, order) = (Arc::clone(&h), Arc::clone(&order));
            tokio::spawn(async move {
                let s = h.acquire(Class::Known).await.unwrap();
                order
                    .lock()
                    .unwrap()
                    .push(h.inner.lock().unwrap().strangers.len());
                drop(s);
            })
        };
        while h.inner.lock().unwrap().known.is_empty() {
            tokio::task::yield_now().await;
        }
        drop(first);
        known.await.unwrap();
        assert_eq!(*order.lock().unwrap(), [10], "known went first");
        for s in strangers {
            assert_eq!(s.await.unwrap(), Some(Class::Stranger));
        }
        assert_eq!(h.inner.lock().unwrap().free, 1);
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_does_not_keep_the_slot() {
        let h = Hashing::new(1);
        let first = h.acquire(Class::Known).await.unwrap();
        let gone = {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.acquire(Class::Known).await.is_some() })
        };
        while h.inner.lock().unwrap().known.is_empty() {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        drop(first);
        assert_eq!(h.inner.lock().unwrap().free, 1);
        assert!(h.acquire(Class::Stranger).await.is_some());
    }
}
