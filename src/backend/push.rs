//! Web Push, first part: the backend's VAPID key pair (RFC 8292) and the
//! push subscriptions of the user's browsers, with the endpoint checks
//! that keep a subscription from making the backend reach inside the host
//! or its network (SSRF). Delivery (RFC 8291 encryption, the POST,
//! retries) is `push_delivery`.
//!
//! * The key pair is a PKCS#8 P-256 key in `state/vapid.pk8` (mode 0600),
//!   created on first use with ring; only the public point leaves it.
//! * Subscriptions are rows of `push_subscriptions` in `sapphire.db`,
//!   one per endpoint.
//! * An endpoint must be `https` and every address its host resolves to
//!   must be global, unless the backend runs with
//!   `--push-allow-private-endpoints` (for tests only).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rusqlite::params;
use serde_json::{json, Map, Value};

use super::protocol::{OpError, OpResult, Params};

static ALLOW_PRIVATE: AtomicBool = AtomicBool::new(false);

/// `--push-allow-private-endpoints`: accept endpoints on loopback and
/// private networks, and plain names that resolve there (tests only).
pub fn allow_private_endpoints(allow: bool) {
    ALLOW_PRIVATE.store(allow, Ordering::Relaxed);
}

/// `--push-ca FILE`: trusts the PEM certificates in FILE for push
/// services, besides the system's CA store (for tests). Call it before
/// the sandbox is applied.
pub fn load_push_ca(path: &Path) -> Result<usize, PushCaError> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| PushCaError(path.to_owned(), e.to_string()))?;
    if certs.is_empty() {
        return Err(PushCaError(path.to_owned(), "no certificate".to_owned()));
    }
    let n = certs.len();
    super::push_delivery::set_extra_ca(certs);
    Ok(n)
}

/// A `--push-ca` file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--push-ca {0}: {1}")]
pub struct PushCaError(PathBuf, String);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS push_subscriptions (
    endpoint TEXT PRIMARY KEY,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created INTEGER NOT NULL
);
";

/// Longest endpoint accepted (bytes).
const MAX_ENDPOINT: usize = 2048;
/// Most subscriptions per user (browsers and devices).
const MAX_SUBSCRIPTIONS: i64 = 32;

fn key_path(db_path: &Path) -> PathBuf {
    db_path.with_file_name("vapid.pk8")
}

/// The VAPID key pair, created (mode 0600) if there is none yet.
pub(crate) fn key_pair(db_path: &Path) -> Result<EcdsaKeyPair, OpError> {
    let path = key_path(db_path);
    let rng = SystemRandom::new();
    let pkcs8 = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| OpError::internal("cannot generate the VAPID key"))?;
            let tmp = path.with_extension("tmp");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| OpError::internal(format!("{}: {e}", tmp.display())))?;
            f.write_all(doc.as_ref())
                .and_then(|()| f.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| OpError::internal(format!("{}: {e}", path.display())))?;
            tracing::info!("created a VAPID key pair");
            doc.as_ref().to_vec()
        }
        Err(e) => return Err(OpError::internal(format!("{}: {e}", path.display()))),
    };
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
        .map_err(|_| OpError::internal(format!("{}: not a P-256 key", path.display())))
}

/// `push.vapid_key`: `{key}`, the public key as a base64url uncompressed
/// P-256 point (what `PushManager.subscribe`'s `applicationServerKey`
/// takes).
pub async fn vapid_key(db_path: PathBuf) -> OpResult {
    let pair = tokio::task::spawn_blocking(move || key_pair(&db_path))
        .await
        .map_err(OpError::internal)??;
    Ok(json!({"key": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}))
}

/// Whether an address is one a push service may have: not loopback,
/// private, link-local, shared, documentation, multicast or reserved.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_global_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64
                || (s[0] == 0x2002) // 6to4 (wraps any IPv4 address)
                || s[0] == 0 // ::/16: IPv4-compatible and other reserved forms
                || (s[0] == 0x2001 && s[1] < 0x0200)) // IETF protocol assignments, Teredo
        }
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared (CGNAT) 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240) // reserved
}

fn bad_endpoint(message: impl Into<String>) -> OpError {
    OpError::new("bad_endpoint", message)
}

/// Checks an endpoint's form: `https`, a host, no credentials. Returns
/// the URI, host (without brackets) and port.
fn parse_endpoint(endpoint: &str) -> Result<(hyper::Uri, String, u16), OpError> {
    if endpoint.len() > MAX_ENDPOINT {
        return Err(bad_endpoint(format!(
            "the endpoint is longer than {MAX_ENDPOINT} bytes"
        )));
    }
    let uri: hyper::Uri = endpoint
        .parse()
        .map_err(|_| bad_endpoint("the endpoint is not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad_endpoint("the endpoint must be an https:// URL"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| bad_endpoint("the endpoint has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad_endpoint("the endpoint must not carry credentials"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(443);
    Ok((uri, host, port))
}

/// The addresses of `host`, all of them global unless private endpoints
/// are allowed.
async fn vetted_addresses(host: &str, port: u16) -> Result<Vec<SocketAddr>, OpError> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| bad_endpoint(format!("cannot resolve the endpoint's host {host}: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(bad_endpoint(format!("{host} has no address")));
    }
    if !ALLOW_PRIVATE.load(Ordering::Relaxed) {
        if let Some(a) = addrs.iter().find(|a| !is_global(a.ip())) {
            return Err(bad_endpoint(format!(
                "the endpoint's host {host} is at {}, a loopback, private or otherwise non-global \
                 address; push services are on the internet (tests: --push-allow-private-endpoints)",
                a.ip()
            )));
        }
    }
    Ok(addrs)
}

/// Checks an endpoint: `https`, a host, and (unless private endpoints are
/// allowed) only global addresses. Returns the host and port.
pub async fn check_endpoint(endpoint: &str) -> Result<(String, u16), OpError> {
    let (_, host, port) = parse_endpoint(endpoint)?;
    if !ALLOW_PRIVATE.load(Ordering::Relaxed) {
        vetted_addresses(&host, port).await?;
    }
    Ok((host, port))
}

/// Where a push goes, checked again at send time: a name may resolve
/// elsewhere than it did when the browser subscribed.
pub(crate) struct Target {
    pub(crate) uri: hyper::Uri,
    pub(crate) host: String,
    /// Only these addresses may be connected to.
    pub(crate) addrs: Vec<SocketAddr>,
}

/// Parses and resolves an endpoint for sending.
pub(crate) async fn target(endpoint: &str) -> Result<Target, OpError> {
    let (uri, host, port) = parse_endpoint(endpoint)?;
    let addrs = vetted_addresses(&host, port).await?;
    Ok(Target { uri, host, addrs })
}

fn decoded_len(field: &str, value: &str) -> Result<Vec<u8>, OpError> {
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| OpError::bad_request(format!("'keys.{field}' is not base64url")))
}

/// `push.subscribe {subscription: {endpoint, keys: {p256dh, auth}}}`:
/// stores (or replaces) the subscription of that endpoint.
pub async fn subscribe(db_path: PathBuf, req: &Map<String, Value>) -> OpResult {
    let p = Params(req);
    let sub = p
        .object("subscription")?
        .ok_or_else(|| OpError::bad_request("'subscription' is required"))?;
    let sp = Params(sub);
    let endpoint = sp.str("endpoint")?.to_owned();
    let keys = sp
        .object("keys")?
        .ok_or_else(|| OpError::bad_request("'subscription.keys' is required"))?;
    let kp = Params(keys);
    let p256dh = kp.str("p256dh")?.to_owned();
    let auth = kp.str("auth")?.to_owned();
    let point = decoded_len("p256dh", &p256dh)?;
    if point.len() != 65 || point[0] != 4 {
        return Err(OpError::bad_request(
            "'keys.p256dh' must be an uncompressed P-256 point (65 bytes)",
        ));
    }
    if decoded_len("auth", &auth)?.len() != 16 {
        return Err(OpError::bad_request("'keys.auth' must be 16 bytes"));
    }
    check_endpoint(&endpoint).await?;
    tokio::task::spawn_blocking(move || -> Result<(), OpError> {
        let conn = open(&db_path)?;
        let count: i64 = conn
            .query_row(
                "SELECT count(*) FROM push_subscriptions WHERE endpoint != ?1",
                [&endpoint],
                |r| r.get(0),
            )
            .map_err(OpError::internal)?;
        if count >= MAX_SUBSCRIPTIONS {
            return Err(OpError::new(
                "too_long",
                format!("at most {MAX_SUBSCRIPTIONS} push subscriptions"),
            ));
        }
        conn.execute(
            "INSERT INTO push_subscriptions (endpoint, p256dh, auth, created)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth",
            params![endpoint, p256dh, auth, super::hub::now_ms()],
        )
        .map_err(OpError::internal)?;
        Ok(())
    })
    .await
    .map_err(OpError::internal)??;
    Ok(json!({}))
}

/// `push.unsubscribe {endpoint}`: forgets it (also when unknown).
pub async fn unsubscribe(db_path: PathBuf, req: &Map<String, Value>) -> OpResult {
    let endpoint = Params(req).str("endpoint")?.to_owned();
    tokio::task::spawn_blocking(move || remove(&db_path, &endpoint))
        .await
        .map_err(OpError::internal)??;
    Ok(json!({}))
}

/// The endpoints subscribed (never their keys).
pub fn endpoints(db_path: &Path) -> Result<Vec<String>, OpError> {
    let conn = open(db_path)?;
    let mut st = conn
        .prepare("SELECT endpoint FROM push_subscriptions ORDER BY created, endpoint")
        .map_err(OpError::internal)?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(OpError::internal)?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(OpError::internal)
}

/// A stored subscription, keys included (for delivery only: never in a
/// reply or a log).
pub(crate) struct Subscription {
    pub(crate) endpoint: String,
    pub(crate) p256dh: String,
    pub(crate) auth: String,
}

/// Every subscription, keys included.
pub(crate) fn subscriptions(db_path: &Path) -> Result<Vec<Subscription>, OpError> {
    let conn = open(db_path)?;
    let mut st = conn
        .prepare("SELECT endpoint, p256dh, auth FROM push_subscriptions ORDER BY created, endpoint")
        .map_err(OpError::internal)?;
    let rows = st
        .query_map([], |r| {
            Ok(Subscription {
                endpoint: r.get(0)?,
                p256dh: r.get(1)?,
                auth: r.get(2)?,
            })
        })
        .map_err(OpError::internal)?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(OpError::internal)
}

/// Forgets a subscription (unsubscribed, or gone at the push service).
pub(crate) fn remove(db_path: &Path, endpoint: &str) -> Result<(), OpError> {
    open(db_path)?
        .execute(
            "DELETE FROM push_subscriptions WHERE endpoint = ?1",
            [endpoint],
        )
        .map_err(OpError::internal)?;
    Ok(())
}

fn open(db_path: &Path) -> Result<rusqlite::Connection, OpError> {
    let conn = super::store::open(db_path).map_err(OpError::internal)?;
    conn.execute_batch(SCHEMA).map_err(OpError::internal)?;
    Ok(conn)
}

/// `push.list`: `{endpoints}`, the subscribed endpoints (no keys), so a
/// client can tell whether this browser is subscribed.
pub async fn list(db_path: PathBuf) -> OpResult {
    let endpoints = tokio::task::spawn_blocking(move || endpoints(&db_path))
        .await
        .map_err(OpError::internal)??;
    Ok(json!({"endpoints": endpoints}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_addresses_pass() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(!is_global(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "8.8.8.8",
            "142.250.1.1",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_global(good.parse().unwrap()), "{good}");
        }
    }

    #[tokio::test]
    async fn endpoints_must_be_https_and_global() {
        let e = check_endpoint("http://push.example/x").await.unwrap_err();
        assert_eq!(e.code, "bad_endpoint");
        let e = check_endpoint("https://127.0.0.1:8443/x")
            .await
            .unwrap_err();
        assert!(e.message.contains("127.0.0.1"), "{e}");
        let e = check_endpoint("https://[::1]/x").await.unwrap_err();
        assert!(e.message.contains("non-global"), "{e}");
        let e = check_endpoint("https://u:p@8.8.8.8/x").await.unwrap_err();
        assert!(e.message.contains("credentials"), "{e}");
        assert_eq!(
            check_endpoint("https://8.8.8.8:8443/x").await.unwrap(),
            ("8.8.8.8".to_owned(), 8443)
        );
    }

    /// At send time the same rule holds, and only the checked addresses
    /// are handed to the connection.
    #[tokio::test]
    async fn send_targets_are_checked_again() {
        let e = target("https://127.0.0.1:8443/x").await.err().unwrap();
        assert_eq!(e.code, "bad_endpoint");
        let e = target("https://[::ffff:10.0.0.1]/x").await.err().unwrap();
        assert!(e.message.contains("non-global"), "{e}");
        let t = target("https://8.8.8.8:8443/p?q").await.unwrap();
        assert_eq!(t.addrs, vec!["8.8.8.8:8443".parse().unwrap()]);
        assert_eq!((t.host.as_str(), t.uri.path()), ("8.8.8.8", "/p"));
    }
}
