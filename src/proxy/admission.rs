//! Which new connections the accept loop lets in, decided before anything
//! expensive (the TLS handshake) happens: per client address (IPv6: per
//! /64), a cap on HTTP connections being served at once and a rate of new
//! handshakes. What is refused is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::Config;
use super::limits::address_key;
use crate::ratelimit::{Limiter, Policy};

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The address has `max_connections_per_address` connections open.
    TooManyConnections,
    /// The address opened its burst of handshakes and must slow down.
    TooManyHandshakes,
}

pub(crate) struct Admission {
    max_per_address: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    handshakes: Limiter<IpAddr>,
}

impl Admission {
    pub(crate) fn new(config: &Config) -> Arc<Admission> {
        Arc::new(Admission {
            max_per_address: config.max_connections_per_address,
            open: Mutex::new(HashMap::new()),
            handshakes: Limiter::new(Policy {
                burst: config.handshake_burst_per_address,
                refill: Duration::from_secs(1) / config.handshakes_per_second_per_address,
            }),
        })
    }

    /// Lets a connection from `ip` in, counted until the slot is dropped.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let key = address_key(ip);
        {
            let open = self.open.lock().unwrap();
            if open.get(&key).is_some_and(|&n| n >= self.max_per_address) {
                return Err(Refused::TooManyConnections);
            }
        }
        if self.handshakes.take(&key).is_err() {
            return Err(Refused::TooManyHandshakes);
        }
        let mut open = self.open.lock().unwrap();
        let n = open.entry(key).or_insert(0);
        if *n >= self.max_per_address {
            return Err(Refused::TooManyConnections);
        }
        *n += 1;
        Ok(Slot {
            admission: Arc::clone(self),
            key,
        })
    }
}

/// One admitted connection of an address.
pub(crate) struct Slot {
    admission: Arc<Admission>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().unwrap();
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: usize, burst: u32, per_sec: u32) -> Config {
        let args = super::super::config::Args::default();
        let mut c = Config::resolve(&args, Default::default()).unwrap();
        c.max_connections_per_address = max;
        c.handshake_burst_per_address = burst;
        c.handshakes_per_second_per_address = per_sec;
        c
    }

    #[test]
    fn caps_connections_per_address_and_per_64() {
        let a = Admission::new(&config(2, 100, 1));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let one = a.admit(ip("192.0.2.1")).unwrap();
        let _two = a.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            a.admit(ip("192.0.2.1")).err(),
            Some(Refused::TooManyConnections)
        );
        assert!(a.admit(ip("192.0.2.2")).is_ok());
        drop(one);
        assert!(a.admit(ip("192.0.2.1")).is_ok());
        let _v6 = (
            a.admit(ip("2001:db8::1")).unwrap(),
            a.admit(ip("2001:db8::2")).unwrap(),
        );
        assert_eq!(
            a.admit(ip("2001:db8::ffff")).err(),
            Some(Refused::TooManyConnections)
        );
        assert!(a.open.lock().unwrap().len() <= 3);
    }

    #[test]
    fn rates_handshakes_per_address() {
        let a = Admission::new(&config(100, 3, 1));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            drop(a.admit(ip).unwrap());
        }
        assert_eq!(a.admit(ip).err(), Some(Refused::TooManyHandshakes));
        assert!(a.admit("192.0.2.9".parse().unwrap()).is_ok());
        // dropped slots leave nothing behind
        drop(a.admit("192.0.2.10".parse().unwrap()));
        assert!(!a.open.lock().unwrap().contains_key(&ip));
    }
}
