//! Signed session tokens (the `__Host-` cookie) and their revocation.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`
//! where the payload holds a format byte, the expiry (unix seconds), the
//! user's password stamp, a random session id and the user name. Tokens are
//! stateless, so sessions survive a proxy restart as long as the signing key
//! (a file in the proxy's state directory) does. A token stops working when
//! it expires, when the user's password changes (the stamp no longer
//! matches), when the user is disabled or deleted (checked by the caller
//! against the accounts file), or after logout (its id is put on a small
//! revocation list persisted next to the key until the token would expire).
//!
//! A *device token* (the `__Host-sapphire-device` cookie, OWASP's "device
//! cookie") says that this browser signed in as a user before. It is signed
//! with the same key but has its own format byte, so neither kind of token
//! passes for the other. It grants nothing by itself: the sign-in limits use
//! it to tell the user's own browsers from everyone else (see
//! `proxy::limits`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::fsutil::{atomic_write, load_or_create_secret};
use crate::username::Username;

/// Name of the session cookie. The `__Host-` prefix makes browsers insist
/// on `Secure`, `Path=/` and no `Domain`.
pub const COOKIE_NAME: &str = "__Host-sapphire";

/// Name of the device cookie.
pub const DEVICE_COOKIE_NAME: &str = "__Host-sapphire-device";
/// How long a device token lasts (renewed at every sign-in).
pub const DEVICE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

const FORMAT: u8 = 1;
const DEVICE_FORMAT: u8 = 2;
const ID_LEN: usize = 16;
const FIXED_LEN: usize = 1 + 8 + 8 + ID_LEN;

type HmacSha256 = Hmac<Sha256>;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: Username,
    pub expires: u64,
    pub password_stamp: [u8; 8],
    pub id: [u8; ID_LEN],
}

/// What a valid device token says: this browser signed in as `user`; `id`
/// tells this browser from the user's others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub user: Username,
    pub id: [u8; ID_LEN],
}

/// Mints, checks and revokes session tokens.
pub struct Sessions {
    key: Vec<u8>,
    ttl: Duration,
    revoked_path: PathBuf,
    revoked: Mutex<HashMap<[u8; ID_LEN], u64>>,
    /// Held while the revocation list is written.
    persist_lock: Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Sessions {
    /// Uses (or creates) `<state_dir>/session.key` and
    /// `<state_dir>/revoked-sessions.json`.
    pub fn open(state_dir: &Path, ttl: Duration) -> Result<Sessions, SessionError> {
        let key_path = state_dir.join("session.key");
        let key = load_or_create_secret(&key_path, 32).map_err(|source| SessionError::Key {
            path: key_path,
            source,
        })?;
        let revoked_path = state_dir.join("revoked-sessions.json");
        let revoked: HashMap<[u8; ID_LEN], u64> = std::fs::read(&revoked_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<(String, u64)>>(&b).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(id, exp)| {
                let bytes = B64.decode(id).ok()?;
                Some((bytes.try_into().ok()?, exp))
            })
            .collect();
        Ok(Sessions {
            key,
            ttl,
            revoked_path,
            revoked: Mutex::new(revoked),
            persist_lock: Mutex::new(()),
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// A new token for `user` whose current password stamp is `stamp`.
    pub fn mint(&self, user: &Username, stamp: [u8; 8]) -> String {
        let mut id = [0u8; ID_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let expires = now() + self.ttl.as_secs();
        let mut payload = Vec::with_capacity(FIXED_LEN + user.as_str().len());
        payload.push(FORMAT);
        payload.extend_from_slice(&expires.to_be_bytes());
        payload.extend_from_slice(&stamp);
        payload.extend_from_slice(&id);
        payload.extend_from_slice(user.as_str().as_bytes());
        self.sign(&payload)
    }

    /// The payload of a token signed with our key, if it is one.
    fn signed_payload(&self, token: &str) -> Option<Vec<u8>> {
        if token.len() > 512 {
            return None;
        }
        let (payload_b64, tag_b64) = token.split_once('.')?;
        let payload = B64.decode(payload_b64).ok()?;
        let tag = B64.decode(tag_b64).ok()?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag).ok()?; // constant-time compare
        Some(payload)
    }

    fn sign(&self, payload: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(payload);
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(payload), B64.encode(tag))
    }

    /// A new device token for a browser that just signed in as `user`.
    pub fn mint_device(&self, user: &Username) -> String {
        let mut id = [0u8; ID_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let expires = now() + DEVICE_TTL.as_secs();
        let mut payload = Vec::with_capacity(1 + 8 + ID_LEN + user.as_str().len());
        payload.push(DEVICE_FORMAT);
        payload.extend_from_slice(&expires.to_be_bytes());
        payload.extend_from_slice(&id);
        payload.extend_from_slice(user.as_str().as_bytes());
        self.sign(&payload)
    }

    /// Checks a device token's signature, format and expiry.
    pub fn verify_device(&self, token: &str) -> Option<Device> {
        let payload = self.signed_payload(token)?;
        const HEAD: usize = 1 + 8 + ID_LEN;
        if payload.len() <= HEAD || payload[0] != DEVICE_FORMAT {
            return None;
        }
        let expires = u64::from_be_bytes(payload[1..9].try_into().ok()?);
        if expires <= now() {
            return None;
        }
        let id: [u8; ID_LEN] = payload[9..HEAD].try_into().ok()?;
        let user = Username::parse(std::str::from_utf8(&payload[HEAD..]).ok()?).ok()?;
        Some(Device { user, id })
    }

    /// Checks signature, format, expiry and revocation. The caller still
    /// checks the password stamp and the account's state.
    pub fn verify(&self, token: &str) -> Option<Session> {
        let payload = self.signed_payload(token)?;
        if payload.len() <= FIXED_LEN || payload[0] != FORMAT {
            return None;
        }
        let expires = u64::from_be_bytes(payload[1..9].try_into().ok()?);
        if expires <= now() {
            return None;
        }
        let password_stamp: [u8; 8] = payload[9..17].try_into().ok()?;
        let id: [u8; ID_LEN] = payload[17..FIXED_LEN].try_into().ok()?;
        let user = Username::parse(std::str::from_utf8(&payload[FIXED_LEN..]).ok()?).ok()?;
        if self.revoked.lock().unwrap().contains_key(&id) {
            return None;
        }
        Some(Session {
            user,
            expires,
            password_stamp,
            id,
        })
    }

    /// True while a session [`Sessions::verify`] returned earlier is still
    /// good as far as the token goes: not expired, not revoked since.
    pub fn still_valid(&self, session: &Session) -> bool {
        session.expires > now() && !self.revoked.lock().unwrap().contains_key(&session.id)
    }

    /// Revokes one session (logout) and persists the list.
    pub fn revoke(&self, session: &Session) -> std::io::Result<()> {
        self.mark_revoked(session);
        self.persist_revocations()
    }

    /// Revokes one session in memory (at once: `verify` refuses it from
    /// now on), dropping entries that expired; the caller persists the list
    /// with [`Sessions::persist_revocations`], off the async reactor.
    pub fn mark_revoked(&self, session: &Session) {
        let mut revoked = self.revoked.lock().unwrap();
        let t = now();
        revoked.retain(|_, exp| *exp > t);
        revoked.insert(session.id, session.expires);
    }

    /// Forgets revocations of tokens that have expired anyway; true if
    /// any were (then the list is worth persisting again).
    pub fn prune(&self) -> bool {
        let mut revoked = self.revoked.lock().unwrap();
        let before = revoked.len();
        let t = now();
        revoked.retain(|_, exp| *exp > t);
        revoked.len() != before
    }

    /// Revocations kept (not yet expired).
    pub fn revoked_count(&self) -> usize {
        self.revoked.lock().unwrap().len()
    }

    /// Writes the current revocation list (atomically, with fsyncs: this
    /// blocks). Concurrent calls are serialised; each writes the list as it
    /// is when it gets its turn, so the last write holds every revocation.
    pub fn persist_revocations(&self) -> std::io::Result<()> {
        let _turn = self.persist_lock.lock().unwrap();
        let snapshot: Vec<(String, u64)> = self
            .revoked
            .lock()
            .unwrap()
            .iter()
            .map(|(id, exp)| (B64.encode(id), *exp))
            .collect();
        let json = serde_json::to_vec(&snapshot).expect("serialise revocations");
        atomic_write(&self.revoked_path, &json, 0o600)
    }
}

/// Finds the session cookie's value in a `Cookie:` header value.
pub fn cookie_value(header: &str) -> Option<&str> {
    named_cookie(header, COOKIE_NAME)
}

/// Finds cookie `name`'s value in a `Cookie:` header value.
pub fn named_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (n, value) = part.trim().split_once('=')?;
        (n == name).then_some(value)
    })
}

/// `Set-Cookie` value that stores a device token.
pub fn set_device_cookie(token: &str) -> String {
    format!(
        "{DEVICE_COOKIE_NAME}={token}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        DEVICE_TTL.as_secs()
    )
}

/// `Set-Cookie` value that stores `token` for `ttl`.
pub fn set_cookie(token: &str, ttl: Duration) -> String {
    format!(
        "{COOKIE_NAME}={token}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        ttl.as_secs()
    )
}

/// `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Username {
        Username::parse("alice").unwrap()
    }

    #[test]
    fn token_round_trip_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sessions::open(dir.path(), Duration::from_secs(60)).unwrap();
        let t = s.mint(&alice(), [7; 8]);
        let got = s.verify(&t).unwrap();
        assert_eq!(got.user, alice());
        assert_eq!(got.password_stamp, [7; 8]);
        // flip one character of the payload
        let mut bad = t.clone().into_bytes();
        bad[3] = if bad[3] == b'A' { b'B' } else { b'A' };
        assert!(s.verify(std::str::from_utf8(&bad).unwrap()).is_none());
        assert!(s.verify("garbage").is_none());
        assert!(s.verify("").is_none());
        // another key does not accept it
        let other = tempfile::tempdir().unwrap();
        let s2 = Sessions::open(other.path(), Duration::from_secs(60)).unwrap();
        assert!(s2.verify(&t).is_none());
        // same key (restart) does
        let s3 = Sessions::open(dir.path(), Duration::from_secs(60)).unwrap();
        assert!(s3.verify(&t).is_some());
    }

    #[test]
    fn expired_and_revoked_tokens_fail() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sessions::open(dir.path(), Duration::from_secs(0)).unwrap();
        assert!(s.verify(&s.mint(&alice(), [0; 8])).is_none());
        let s = Sessions::open(dir.path(), Duration::from_secs(60)).unwrap();
        let t = s.mint(&alice(), [0; 8]);
        s.revoke(&s.verify(&t).unwrap()).unwrap();
        assert!(s.verify(&t).is_none());
        // revocation survives a restart
        let s = Sessions::open(dir.path(), Duration::from_secs(60)).unwrap();
        assert!(s.verify(&t).is_none());
        assert!(s.verify(&s.mint(&alice(), [0; 8])).is_some());
    }

    #[test]
    fn device_tokens_are_their_own_kind() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sessions::open(dir.path(), Duration::from_secs(60)).unwrap();
        let d = s.mint_device(&alice());
        let got = s.verify_device(&d).unwrap();
        assert_eq!(got.user, alice());
        assert_ne!(
            s.verify_device(&s.mint_device(&alice())).unwrap().id,
            got.id
        );
        // neither passes for the other
        assert!(s.verify(&d).is_none());
        assert!(s.verify_device(&s.mint(&alice(), [0; 8])).is_none());
        let other = tempfile::tempdir().unwrap();
        let s2 = Sessions::open(other.path(), Duration::from_secs(60)).unwrap();
        assert!(s2.verify_device(&d).is_none());
        let c = set_device_cookie(&d);
        assert_eq!(
            named_cookie(
                &format!("x=1; {}", c.split(';').next().unwrap()),
                DEVICE_COOKIE_NAME
            ),
            Some(d.as_str())
        );
    }

    #[test]
    fn expired_revocations_are_pruned_and_the_file_follows() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sessions::open(dir.path(), Duration::from_secs(60)).unwrap();
        let live = s.verify(&s.mint(&alice(), [0; 8])).unwrap();
        let mut old = live.clone();
        old.id = [9; ID_LEN];
        old.expires = now() - 1; // expired: revoking it is moot
        s.mark_revoked(&live);
        s.mark_revoked(&old);
        s.persist_revocations().unwrap();
        assert_eq!(s.revoked_count(), 2);
        assert!(s.prune());
        assert!(!s.prune());
        assert_eq!(s.revoked_count(), 1);
        s.persist_revocations().unwrap();
        let s2 = Sessions::open(dir.path(), Duration::from_secs(60)).unwrap();
        assert_eq!(s2.revoked_count(), 1);
        assert!(!s2.still_valid(&live));
    }

    #[test]
    fn cookie_parsing() {
        assert_eq!(
            cookie_value("a=b; __Host-sapphire=tok.en; c=d"),
            Some("tok.en")
        );
        assert_eq!(cookie_value("sapphire=x"), None);
        let c = set_cookie("t", Duration::from_secs(10));
        for flag in ["__Host-", "Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(flag), "{c}");
        }
    }
}
