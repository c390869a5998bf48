//! Who pays for a sign-in attempt. Attempts are charged before their hash is
//! computed (so concurrent ones cannot slip past) and refunded when they
//! succeed.
//!
//! * A browser that signed in as the typed user before (it shows a valid
//!   device token for that user, see `session::Device`) is charged to its
//!   own bucket only. Guessing from elsewhere can therefore never lock the
//!   user out of their own browsers, and a stolen device token buys no more
//!   guesses than the per-user limit does.
//! * Everyone else is charged to their address (IPv6 by /64: one host has a
//!   whole /64 to pick from) and to the typed name.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::ratelimit::{Limiter, Policy};
use crate::session::Device;

/// Attempts per client address (IPv6: per /64): a burst of 20, then one
/// every 6 s.
pub(crate) const ADDRESS_POLICY: Policy = Policy {
    burst: 20,
    refill: Duration::from_secs(6),
};
/// Attempts per typed user name from unknown browsers: a burst of 5, then
/// one every 20 s.
pub(crate) const NAME_POLICY: Policy = Policy {
    burst: 5,
    refill: Duration::from_secs(20),
};
/// Attempts per known browser (device token): the same as per name.
pub(crate) const DEVICE_POLICY: Policy = NAME_POLICY;

/// The buckets an attempt is charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payer {
    /// A browser that signed in as this user before.
    Device([u8; 16]),
    /// Anyone else: their address (or /64) and the typed name.
    Stranger { address: IpAddr, name: String },
}

impl Payer {
    /// Who pays for an attempt to sign in as `typed` from `ip`, by a browser
    /// that showed `device` (already signature-checked).
    pub(crate) fn of(device: Option<&Device>, typed: &str, ip: IpAddr) -> Payer {
        match device {
            Some(d) if d.user.as_str() == typed => Payer::Device(d.id),
            _ => Payer::Stranger {
                address: address_key(ip),
                // what was typed, bounded
                name: typed.chars().take(64).collect(),
            },
        }
    }

    pub(crate) fn known_device(&self) -> bool {
        matches!(self, Payer::Device(_))
    }
}

/// The key an address is limited by: IPv4 (also IPv4-mapped IPv6) as is,
/// other IPv6 addresses by their /64.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

pub(crate) struct SignInLimits {
    by_address: Limiter<IpAddr>,
    by_name: Limiter<String>,
    by_device: Limiter<[u8; 16]>,
}

impl SignInLimits {
    pub(crate) fn new() -> SignInLimits {
        SignInLimits {
            by_address: Limiter::new(ADDRESS_POLICY),
            by_name: Limiter::new(NAME_POLICY),
            by_device: Limiter::new(DEVICE_POLICY),
        }
    }

    /// Charges one attempt to `payer`, or says how long it must wait.
    pub(crate) fn charge(&self, payer: &Payer) -> Result<(), Duration> {
        match payer {
            Payer::Device(id) => {
                if let Some(wait) = self.by_device.blocked(id) {
                    return Err(wait);
                }
                self.by_device.charge(id);
            }
            Payer::Stranger { address, name } => {
                let blocked = [self.by_address.blocked(address), self.by_name.blocked(name)]
                    .into_iter()
                    .flatten()
                    .max();
                if let Some(wait) = blocked {
                    return Err(wait);
                }
                self.by_address.charge(address);
                self.by_name.charge(name);
            }
        }
        Ok(())
    }

    /// Gives back what [`SignInLimits::charge`] took (the attempt succeeded,
    /// or was never checked).
    pub(crate) fn refund(&self, payer: &Payer) {
        match payer {
            Payer::Device(id) => self.by_device.refund(id),
            Payer::Stranger { address, name } => {
                self.by_address.refund(address);
                self.by_name.refund(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::username::Username;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_is_limited_by_its_64() {
        assert_eq!(address_key(ip("2001:db8:1:2::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            address_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(address_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
        // a /64's addresses share one bucket
        let l = SignInLimits::new();
        for i in 0..ADDRESS_POLICY.burst {
            let from = ip(&format!("2001:db8::{:x}", i + 1));
            l.charge(&Payer::of(None, &format!("n{i}"), from)).unwrap();
        }
        let next = Payer::of(None, "other", ip("2001:db8::ffff:1"));
        assert!(l.charge(&next).is_err());
        let elsewhere = Payer::of(None, "other", ip("2001:db8:0:1::1"));
        assert!(l.charge(&elsewhere).is_ok());
    }

    #[test]
    fn a_known_device_is_not_locked_out_by_strangers() {
        let l = SignInLimits::new();
        let alice = Device {
            user: Username::parse("alice").unwrap(),
            id: [1; 16],
        };
        let attacker = ip("198.51.100.1");
        for _ in 0..NAME_POLICY.burst {
            l.charge(&Payer::of(None, "alice", attacker)).unwrap();
        }
        // strangers are locked out of the name, from any address
        assert!(l
            .charge(&Payer::of(None, "alice", ip("203.0.113.9")))
            .is_err());
        // alice's own browser is not, even from the attacker's address
        let own = Payer::of(Some(&alice), "alice", attacker);
        assert!(own.known_device());
        assert!(l.charge(&own).is_ok());
        // a device token for alice does not help guessing bob's password
        assert!(!Payer::of(Some(&alice), "bob", attacker).known_device());
        // and a device has its own limit
        for _ in 1..DEVICE_POLICY.burst {
            l.charge(&own).unwrap();
        }
        assert!(l.charge(&own).is_err());
        l.refund(&own);
        assert!(l.charge(&own).is_ok());
    }
}
