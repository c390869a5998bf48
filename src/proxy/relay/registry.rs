//! The open relays: the one place that knows which WebSockets are open, for
//! which session, and how to end them from outside (sign-out, password
//! change, disable, shutdown).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::info;

use super::frames::Close;
use crate::session::Session;

/// Every open relay, by id.
#[derive(Default)]
pub(crate) struct Registry {
    relays: Mutex<HashMap<u64, Entry>>,
    next_id: AtomicU64,
}

struct Entry {
    session: Session,
    stop: watch::Sender<Option<Close>>,
}

impl Registry {
    /// Registers a relay for `session`. It stays registered (counted, and
    /// reachable by [`Registry::end`]) until the guard is dropped, whatever
    /// path the relay's task takes out.
    pub(crate) fn register(self: &Arc<Self>, session: Session) -> RelayGuard {
        let (stop_tx, stop) = watch::channel(None);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.relays.lock().unwrap().insert(
            id,
            Entry {
                session: session.clone(),
                stop: stop_tx,
            },
        );
        RelayGuard {
            registry: Arc::clone(self),
            id,
            session,
            stop,
        }
    }

    /// Tells every relay whose session matches to close with `close`.
    pub(crate) fn end(&self, close: Close, matches: impl Fn(&Session) -> bool) {
        for e in self.relays.lock().unwrap().values() {
            if matches(&e.session) {
                info!(user = %e.session.user, "ending WebSocket relay: {}", close.reason);
                e.stop.send_replace(Some(close));
            }
        }
    }

    /// Open relays.
    pub(crate) fn len(&self) -> usize {
        self.relays.lock().unwrap().len()
    }

    /// Users with at least one open relay.
    pub(crate) fn users(&self) -> usize {
        let relays = self.relays.lock().unwrap();
        relays
            .values()
            .map(|e| &e.session.user)
            .collect::<HashSet<_>>()
            .len()
    }
}

/// A registered relay; dropping it unregisters the relay.
pub(crate) struct RelayGuard {
    registry: Arc<Registry>,
    id: u64,
    session: Session,
    stop: watch::Receiver<Option<Close>>,
}

impl RelayGuard {
    pub(crate) fn session(&self) -> &Session {
        &self.session
    }

    /// Where the relay learns that it must stop, and why.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<Option<Close>> {
        self.stop.clone()
    }

    /// Asks this relay to close with `close`.
    pub(crate) fn end(&self, close: Close) {
        if let Some(e) = self.registry.relays.lock().unwrap().get(&self.id) {
            e.stop.send_replace(Some(close));
        }
    }
}

impl Drop for RelayGuard {
    fn drop(&mut self) {
        self.registry.relays.lock().unwrap().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::super::frames::{GOING_AWAY, SESSION_ENDED};
    use super::*;
    use crate::username::Username;

    fn session(user: &str, id: u8) -> Session {
        Session {
            user: Username::parse(user).unwrap(),
            expires: u64::MAX,
            password_stamp: [0; 8],
            id: [id; 16],
        }
    }

    #[test]
    fn dropping_the_guard_unregisters_on_every_path() {
        let r = Arc::new(Registry::default());
        let a1 = r.register(session("alice", 1));
        let a2 = r.register(session("alice", 2));
        let b = r.register(session("bob", 3));
        assert_eq!((r.len(), r.users()), (3, 2));
        drop(a1);
        assert_eq!((r.len(), r.users()), (2, 2));
        // A task that gives up early (the upgraded connection was not the
        // expected type, say) or panics still drops its guard.
        let r2 = Arc::clone(&r);
        let early = std::thread::spawn(move || {
            let _g = r2.register(session("carol", 4));
            panic!("relay task failed");
        });
        assert!(early.join().is_err());
        assert_eq!((r.len(), r.users()), (2, 2));
        drop((a2, b));
        assert_eq!((r.len(), r.users()), (0, 0));
    }

    #[test]
    fn end_reaches_matching_relays_only() {
        let r = Arc::new(Registry::default());
        let a = r.register(session("alice", 1));
        let b = r.register(session("bob", 2));
        r.end(SESSION_ENDED, |s| s.user.as_str() == "alice");
        assert!(a.stop_signal().borrow().is_some());
        assert!(b.stop_signal().borrow().is_none());
        b.end(GOING_AWAY);
        assert_eq!(*b.stop_signal().borrow(), Some(GOING_AWAY));
    }
}
