//! Supervision of the purple thread.
//!
//! libpurple runs plugin code on one thread; a plugin call that blocks
//! (a `select()` without a timeout, a synchronous DNS lookup, a deadlock)
//! stops every account and every request of the user. The purple thread
//! beats a [`Heartbeat`] once a second from its main loop; [`supervise`]
//! checks it from tokio:
//!
//! * while it is fresh, it pings systemd's watchdog (`WATCHDOG=1`, when the
//!   unit sets `WatchdogSec=`), so a wedged *tokio* side is restarted too;
//! * once it is older than [`STALE`], the backend logs why and exits at
//!   once with status 70 (`EX_SOFTWARE`): systemd (`Restart=on-failure`) or
//!   the proxy's spawn launcher starts it again. Every event was stored
//!   before it was sent, so nothing is lost.
//!
//! Requests have their own, shorter deadline ([`super::purple::CALL_TIMEOUT`]):
//! a client gets `unavailable` long before the process is restarted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the purple thread may go without a beat before the backend
/// restarts.
pub const STALE: Duration = Duration::from_secs(30);

/// How often the purple thread beats.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// When the purple thread last went round its main loop.
pub struct Heartbeat {
    start: Instant,
    /// Milliseconds since `start` of the last beat.
    last_ms: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    /// Records a beat (called on the purple thread).
    pub fn beat(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// What [`check`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    Wedged(Duration),
}

/// Whether a heartbeat of `age` means the purple thread is wedged.
pub fn check(age: Duration, stale: Duration) -> Verdict {
    if age > stale {
        Verdict::Wedged(age)
    } else {
        Verdict::Alive
    }
}

/// Watches `heartbeat` for the life of the process (see the module docs).
pub async fn supervise(heartbeat: Arc<Heartbeat>, stale: Duration) {
    let mut usec = 0;
    let systemd = sd_notify::watchdog_enabled(false, &mut usec);
    let mut tick = tokio::time::interval(BEAT_EVERY);
    loop {
        tick.tick().await;
        match check(heartbeat.age(), stale) {
            Verdict::Alive => {
                if systemd {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
            }
            Verdict::Wedged(age) => {
                tracing::error!(
                    "libpurple has not run its main loop for {} s (a plugin call is blocking): \
                     exiting so that the backend is restarted",
                    age.as_secs()
                );
                // SAFETY: _exit has no preconditions; it skips atexit
                // handlers, which could wait on the wedged thread.
                unsafe { libc::_exit(70) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_heartbeat_is_alive_and_an_old_one_wedged() {
        let hb = Heartbeat::default();
        hb.beat();
        assert_eq!(check(hb.age(), STALE), Verdict::Alive);
        assert_eq!(
            check(Duration::from_secs(31), STALE),
            Verdict::Wedged(Duration::from_secs(31))
        );
    }
}
