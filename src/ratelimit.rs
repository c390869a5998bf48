//! Rate limiting of sign-in attempts, per client address and per user name.
//!
//! Each key has a token bucket: a login attempt takes a token before its
//! password is hashed (so concurrent attempts cannot slip past the limit),
//! and a successful one gets it back; with no token left, further attempts
//! are refused (HTTP 429) without hashing anything until the bucket refills. Buckets that
//! have refilled completely are forgotten, and the map is bounded so a flood
//! of distinct keys cannot exhaust memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once per limiter.
const MAX_KEYS: usize = 100_000;

#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Attempts allowed in a burst.
    pub burst: u32,
    /// Time for one token to come back.
    pub refill: Duration,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Limiter<K> {
    policy: Policy,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(policy: Policy) -> Self {
        Limiter {
            policy,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let gained = now.duration_since(b.at).as_secs_f64() / self.policy.refill.as_secs_f64();
        (b.tokens + gained).min(self.policy.burst as f64)
    }

    /// `Some(wait)` when `key` is currently blocked.
    pub fn blocked(&self, key: &K) -> Option<Duration> {
        let now = Instant::now();
        let buckets = self.buckets.lock().unwrap();
        let b = buckets.get(key)?;
        let tokens = self.refilled(b, now);
        if tokens >= 1.0 {
            None
        } else {
            Some(self.policy.refill.mul_f64(1.0 - tokens))
        }
    }

    /// Gives back a token taken by [`Limiter::charge`] (the attempt it was
    /// charged for succeeded).
    pub fn refund(&self, key: &K) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        if let Some(b) = buckets.get_mut(key) {
            b.tokens = (self.refilled(b, now) + 1.0).min(self.policy.burst as f64);
            b.at = now;
        }
    }

    /// Takes a token for `key` if it has one; else says how long until it
    /// does (one lock: concurrent callers cannot both take the last token).
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        if let Some(b) = buckets.get(key) {
            let tokens = self.refilled(b, now);
            if tokens < 1.0 {
                return Err(self.policy.refill.mul_f64(1.0 - tokens));
            }
        }
        self.charge_in(&mut buckets, key, now);
        Ok(())
    }

    /// Takes a token for one attempt by `key` (before its outcome is known;
    /// [`Limiter::refund`] gives it back if it succeeds).
    pub fn charge(&self, key: &K) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        self.charge_in(&mut buckets, key, now);
    }

    fn charge_in(&self, buckets: &mut HashMap<K, Bucket>, key: &K, now: Instant) {
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            let burst = self.policy.burst as f64;
            buckets.retain(|_, b| self.refilled(b, now) < burst);
            if buckets.len() >= MAX_KEYS {
                // Still full of active attackers: forget the lot rather than
                // grow without bound. The per-user limiter still holds.
                buckets.clear();
            }
        }
        let tokens = match buckets.get(key) {
            Some(b) => self.refilled(b, now),
            None => self.policy.burst as f64,
        };
        buckets.insert(
            key.clone(),
            Bucket {
                tokens: (tokens - 1.0).max(0.0),
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_burst_and_refills() {
        let l = Limiter::new(Policy {
            burst: 3,
            refill: Duration::from_millis(200),
        });
        for _ in 0..3 {
            assert!(l.blocked(&"k").is_none());
            l.charge(&"k");
        }
        let wait = l.blocked(&"k").expect("blocked after the burst");
        assert!(wait <= Duration::from_millis(200));
        assert!(l.blocked(&"other").is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.blocked(&"k").is_none());
    }

    #[test]
    fn take_charges_only_when_a_token_is_left() {
        let l = Limiter::new(Policy {
            burst: 2,
            refill: Duration::from_secs(60),
        });
        assert!(l.take(&"k").is_ok());
        assert!(l.take(&"k").is_ok());
        assert!(l.take(&"k").is_err());
        l.refund(&"k");
        assert!(l.take(&"k").is_ok());
        assert!(l.take(&"other").is_ok());
    }

    #[test]
    fn refunds_give_a_token_back() {
        let l = Limiter::new(Policy {
            burst: 1,
            refill: Duration::from_secs(60),
        });
        l.charge(&"k");
        assert!(l.blocked(&"k").is_some());
        l.refund(&"k");
        assert!(l.blocked(&"k").is_none());
        l.refund(&"k"); // never above the burst
        l.charge(&"k");
        assert!(l.blocked(&"k").is_some());
    }
}
