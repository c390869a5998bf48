//! Web Push delivery: which messages are pushed, when, and the POST to
//! each of the user's push subscriptions (RFC 8030), with the payload
//! encrypted as `aes128gcm` (RFC 8291, by the `web-push-native` crate) and
//! a VAPID `Authorization` (RFC 8292: an ES256 JWT signed with ring, the
//! key of [`super::push::key_pair`]).
//!
//! # What is pushed, and when
//! The hub tells this task about every incoming message (not a chat's
//! history the network replays; private messages that waited for us while
//! we were offline do count) and every read marker ([`Tap`]). A message is pushed
//! when the conversation's level ([`super::notify`]) says it notifies: any
//! message at `all`, mentions at `mentions`, nothing at `none`.
//!
//! * No client connected: it is pushed at once.
//! * Some client connected: it waits `[push] delay` (30 s). If a client
//!   marks the conversation read up to it (`mark_read`), or the user
//!   writes there, it is dropped; otherwise it is pushed. When the last
//!   client disconnects, whatever is still waiting is pushed at once (the
//!   tab was closed without reading it).
//! * At most `[push] max_per_minute` (10) pushes go out per minute (the
//!   backend serves one user); the rest are counted and, when the minute
//!   allows, sent as one "N new messages".
//!
//! # Sending
//! Each push is one POST per subscription. The endpoint is checked again
//! at send time (`https`, and every address it resolves to global unless
//! `--push-allow-private-endpoints`) and only the addresses checked are
//! connected to. TLS is verified against the system's CA store plus
//! `--push-ca FILE`. A 404 or 410 drops the subscription; a 429, a 5xx or
//! a network error is retried (at most 5 times, after `Retry-After`
//! seconds when given, else 2, 4, 8, 16, 32 s, on a task of its own so one
//! slow push service delays nobody); anything else is logged. Keys, auth
//! secrets, tokens and endpoint paths are never logged (only the
//! endpoint's origin).

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::config::PushConfig;
use super::event::{ConvRef, Message};
use super::hub::{Hub, Tap};
use super::notify::Level;
use super::protocol::ConvKind;
use super::push::{self, Subscription, Target};

/// Longest title and body pushed (characters).
const MAX_TITLE: usize = 80;
const MAX_BODY: usize = 200;
/// How long one attempt may take (connect, TLS, request, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts after the first one, for 429, 5xx and network errors.
const RETRIES: u32 = 5;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// How long a VAPID token is valid (RFC 8292: at most 24 hours).
const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// One notification, before encryption.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notification {
    pub(crate) seq: u64,
    pub(crate) account: i64,
    pub(crate) conversation: ConvRef,
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) mention: bool,
}

impl Notification {
    /// What a message looks like as a push (`hide_text`: "New message").
    pub(crate) fn of(seq: u64, m: &Message, hide_text: bool) -> Notification {
        let who = m.alias.as_deref().unwrap_or(&m.sender);
        let title = match m.conversation.kind {
            ConvKind::Chat => format!("{} in {}", who, m.conversation.name),
            ConvKind::Im => who.to_owned(),
        };
        let body = if hide_text {
            "New message".to_owned()
        } else if m.action {
            format!("* {who} {}", m.text)
        } else {
            format!("{who}: {}", m.text)
        };
        Notification {
            seq,
            account: m.account,
            conversation: m.conversation.clone(),
            title: shorten(&title, MAX_TITLE),
            body: shorten(&body, MAX_BODY),
            mention: m.mention,
        }
    }

    /// The decrypted payload the service worker reads.
    pub(crate) fn payload(&self, count: u32) -> Value {
        let mut v = json!({
            "title": self.title,
            "body": self.body,
            "account": self.account,
            "conversation": {"kind": self.conversation.kind.as_str(), "name": self.conversation.name},
            "seq": self.seq,
            "mention": self.mention,
            "tag": format!("{}/{}/{}", self.account, self.conversation.kind.as_str(), self.conversation.name),
        });
        if count > 1 {
            v["count"] = json!(count);
        }
        v
    }

    fn urgency(&self) -> &'static str {
        if self.mention || self.conversation.kind == ConvKind::Im {
            "high"
        } else {
            "normal"
        }
    }
}

/// Largest payload before encryption: push services take 4096 bytes of
/// encrypted body (RFC 8030 section 7.2), and aes128gcm adds 86 bytes of
/// header and 17 of padding and tag.
const MAX_PAYLOAD: usize = 3900;

/// The payload's bytes; without `conversation` and `tag` when a very long
/// conversation name (an XMPP room's JID may be 3 KB) would make it too
/// big (a click then opens the app, not the conversation).
fn bounded_payload(mut v: Value) -> Vec<u8> {
    let bytes = v.to_string().into_bytes();
    if bytes.len() <= MAX_PAYLOAD {
        return bytes;
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("conversation");
        o.remove("tag");
    }
    v.to_string().into_bytes()
}

/// At most `limit` characters (whitespace runs folded), with "…" if cut.
fn shorten(s: &str, limit: usize) -> String {
    let folded: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= limit {
        return folded;
    }
    let mut out: String = folded.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Whether a message notifies at `level`.
pub(crate) fn notifies(level: Level, m: &Message) -> bool {
    match level {
        Level::All => true,
        Level::Mentions => m.mention,
        Level::None => false,
    }
}

/// The per-minute cap: sends admitted in the last minute, and what was
/// held back since.
#[derive(Debug)]
pub(crate) struct Limiter {
    per_minute: usize,
    sent: VecDeque<Instant>,
    held: u32,
    last_held: Option<Notification>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Limiter {
    pub(crate) fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute: per_minute.max(1) as usize,
            sent: VecDeque::new(),
            held: 0,
            last_held: None,
        }
    }

    fn prune(&mut self, now: Instant) {
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            self.sent.pop_front();
        }
    }

    /// A notification to send now: `Some(n)` to send it, `None` if it was
    /// held back (counted for the next summary).
    pub(crate) fn offer(&mut self, now: Instant, n: Notification) -> Option<Notification> {
        self.prune(now);
        if self.held == 0 && self.sent.len() < self.per_minute {
            self.sent.push_back(now);
            return Some(n);
        }
        self.held += 1;
        self.last_held = Some(n);
        None
    }

    /// When a summary of what was held back may go out.
    pub(crate) fn next_free(&self) -> Option<Instant> {
        if self.held == 0 {
            return None;
        }
        Some(self.sent.front().map_or_else(Instant::now, |t| *t + MINUTE))
    }

    /// The summary ("N new messages", or the one message held) and its
    /// count, if one is due.
    pub(crate) fn summary(&mut self, now: Instant) -> Option<(Notification, u32)> {
        self.prune(now);
        if self.held == 0 || self.sent.len() >= self.per_minute {
            return None;
        }
        let mut n = self.last_held.take()?;
        let count = std::mem::take(&mut self.held);
        if count > 1 {
            n.title = "Sapphire".to_owned();
            n.body = format!("{count} new messages");
        }
        self.sent.push_back(now);
        Some((n, count))
    }
}

/// Starts delivery for the hub's messages.
pub(crate) fn start(hub: &Arc<Hub>, config: PushConfig) -> tokio::task::JoinHandle<()> {
    let rx = hub.tap();
    let clients = hub.clients_watch();
    let db = hub.db_path().to_owned();
    tokio::spawn(run(rx, clients, db, Arc::new(config)))
}

struct Pending {
    due: Instant,
    n: Notification,
}

struct Worker {
    db: std::path::PathBuf,
    config: Arc<PushConfig>,
    pending: Vec<Pending>,
    ready: Vec<Notification>,
    limiter: Limiter,
    key: Option<Arc<EcdsaKeyPair>>,
}

async fn run(
    mut rx: mpsc::Receiver<Tap>,
    mut clients: watch::Receiver<usize>,
    db: std::path::PathBuf,
    config: Arc<PushConfig>,
) {
    let mut w = Worker {
        db,
        limiter: Limiter::new(config.max_per_minute),
        config,
        pending: Vec::new(),
        ready: Vec::new(),
        key: None,
    };
    loop {
        let next = w
            .pending
            .iter()
            .map(|p| p.due)
            .chain(w.limiter.next_free())
            .min();
        tokio::select! {
            t = rx.recv() => match t {
                Some(t) => w.take(t),
                None => break,
            },
            changed = clients.changed() => {
                if changed.is_err() {
                    break;
                }
                if *clients.borrow_and_update() == 0 {
                    // What the hub queued before the last client left
                    // (its read markers) counts first.
                    while let Ok(t) = rx.try_recv() {
                        w.take(t);
                    }
                    for p in std::mem::take(&mut w.pending) {
                        w.ready.push(p.n);
                    }
                }
            }
            _ = sleep_until(next), if next.is_some() => {
                let now = Instant::now();
                let (due, waiting) = std::mem::take(&mut w.pending)
                    .into_iter()
                    .partition(|p| p.due <= now);
                w.pending = waiting;
                for p in due {
                    w.ready.push(p.n);
                }
                if let Some(s) = w.limiter.summary(now) {
                    w.send(s.0, s.1).await;
                }
            }
        }
        for n in std::mem::take(&mut w.ready) {
            if let Some(n) = w.limiter.offer(Instant::now(), n) {
                w.send(n, 1).await;
            }
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

impl Worker {
    fn take(&mut self, t: Tap) {
        match t {
            Tap::Incoming {
                seq,
                message,
                clients,
            } => {
                let Some(settings) = super::notify::settings() else {
                    return;
                };
                let level = settings.level(
                    message.account,
                    message.conversation.kind.as_str(),
                    &message.conversation.name,
                );
                if !notifies(level, &message) {
                    return;
                }
                let n = Notification::of(seq, &message, self.config.hide_text);
                if clients == 0 {
                    // Nobody is reading: what waited goes first, in order
                    // (the watch on the client count may not have been
                    // seen yet).
                    self.ready
                        .extend(std::mem::take(&mut self.pending).into_iter().map(|p| p.n));
                    self.ready.push(n);
                } else {
                    self.pending.push(Pending {
                        due: Instant::now() + self.config.delay,
                        n,
                    });
                }
            }
            Tap::Read {
                account,
                conversation,
                upto,
            } => self.pending.retain(|p| {
                !(p.n.account == account && p.n.conversation == conversation && p.n.seq <= upto)
            }),
        }
    }

    async fn key(&mut self) -> Option<Arc<EcdsaKeyPair>> {
        if self.key.is_none() {
            let db = self.db.clone();
            match tokio::task::spawn_blocking(move || push::key_pair(&db)).await {
                Ok(Ok(k)) => self.key = Some(Arc::new(k)),
                Ok(Err(e)) => tracing::warn!("web push: no VAPID key: {}", e.message),
                Err(e) => tracing::warn!("web push: {e}"),
            }
        }
        self.key.clone()
    }

    /// One push to every subscription: the first attempt here, in order;
    /// retries on tasks of their own.
    async fn send(&mut self, n: Notification, count: u32) {
        let db = self.db.clone();
        let subs = match tokio::task::spawn_blocking(move || push::subscriptions(&db)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!("web push: cannot read subscriptions: {}", e.message);
                return;
            }
            Err(_) => return,
        };
        if subs.is_empty() {
            return;
        }
        let Some(key) = self.key().await else { return };
        let payload: Arc<[u8]> = bounded_payload(n.payload(count)).into();
        let job = Arc::new(Job {
            key,
            config: self.config.clone(),
            payload,
            urgency: n.urgency(),
            db: self.db.clone(),
        });
        for sub in subs {
            let sub = Arc::new(sub);
            match job.attempt(&sub).await {
                Attempt::Done => {}
                Attempt::Retry(after) => {
                    let job = job.clone();
                    tokio::spawn(async move { job.retry(sub, after).await });
                }
            }
        }
    }
}

/// One notification's delivery to the subscriptions.
struct Job {
    key: Arc<EcdsaKeyPair>,
    config: Arc<PushConfig>,
    payload: Arc<[u8]>,
    urgency: &'static str,
    db: std::path::PathBuf,
}

enum Attempt {
    Done,
    Retry(Option<Duration>),
}

impl Job {
    async fn retry(&self, sub: Arc<Subscription>, mut after: Option<Duration>) {
        for i in 0..RETRIES {
            let wait = after
                .unwrap_or(Duration::from_secs(2 << i))
                .clamp(Duration::from_secs(1), MAX_RETRY_AFTER);
            tokio::time::sleep(wait).await;
            match self.attempt(&sub).await {
                Attempt::Done => return,
                Attempt::Retry(a) => after = a,
            }
        }
        tracing::warn!(
            "web push to {}: gave up after {} attempts",
            origin_of(&sub.endpoint),
            RETRIES + 1
        );
    }

    async fn attempt(&self, sub: &Subscription) -> Attempt {
        let origin = origin_of(&sub.endpoint);
        let target = match push::target(&sub.endpoint).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("web push to {origin}: refused: {}", e.message);
                return Attempt::Done;
            }
        };
        let req = match request(
            sub,
            &target,
            &self.payload,
            &self.config,
            &self.key,
            self.urgency,
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("web push to {origin}: cannot build the request: {e}");
                return Attempt::Done;
            }
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, post(&target, req)).await {
            Err(_) => {
                tracing::info!("web push to {origin}: timed out");
                Attempt::Retry(None)
            }
            Ok(Err(e)) => {
                tracing::info!("web push to {origin}: {e}");
                Attempt::Retry(None)
            }
            Ok(Ok((status, retry_after))) => match status {
                s if (200..300).contains(&s) => {
                    tracing::debug!("web push to {origin}: {s}");
                    Attempt::Done
                }
                404 | 410 => {
                    tracing::info!("web push to {origin}: {status}, subscription dropped");
                    let db = self.db.clone();
                    let endpoint = sub.endpoint.clone();
                    let _ = tokio::task::spawn_blocking(move || push::remove(&db, &endpoint)).await;
                    Attempt::Done
                }
                429 | 500..=599 => {
                    tracing::info!("web push to {origin}: {status}, will retry");
                    Attempt::Retry(retry_after)
                }
                s => {
                    tracing::warn!("web push to {origin}: refused with {s}");
                    Attempt::Done
                }
            },
        }
    }
}

/// `https://host[:port]` of an endpoint (what logs show of it).
fn origin_of(endpoint: &str) -> String {
    match endpoint.parse::<hyper::Uri>() {
        Ok(u) => match (u.scheme_str(), u.authority()) {
            (Some(s), Some(a)) if !a.as_str().contains('@') => match a.port_u16() {
                Some(443) | None => format!("{s}://{}", a.host()),
                Some(p) => format!("{s}://{}:{p}", a.host()),
            },
            _ => "(an endpoint)".to_owned(),
        },
        Err(_) => "(an endpoint)".to_owned(),
    }
}

/// The VAPID header: `vapid t=<JWT>, k=<public key>` (RFC 8292 section 3),
/// the JWT's `aud` the endpoint's origin, `exp` 12 hours ahead.
///
/// Decision: the ES256 signature is ring's (the key is ring's already);
/// only the three-part JWT envelope is assembled here. `web-push-native`'s
/// own VAPID feature was not used: it writes `aud` as `scheme://host`,
/// dropping a non-default port (the origin RFC 8292 section 2 asks for),
/// and it brings `jwt-simple` with a second ECDSA implementation.
pub(crate) fn vapid_authorization(
    key: &EcdsaKeyPair,
    aud: &str,
    sub: &str,
    now: u64,
) -> Result<String, String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
    let claims = json!({"aud": aud, "exp": now + TOKEN_LIFETIME.as_secs(), "sub": sub});
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{claims}");
    // ECDSA_P256_SHA256_FIXED_SIGNING: r || s, the JWS form of ES256.
    let sig = key
        .sign(&SystemRandom::new(), input.as_bytes())
        .map_err(|_| "cannot sign the VAPID token".to_owned())?;
    Ok(format!(
        "vapid t={input}.{}, k={}",
        URL_SAFE_NO_PAD.encode(sig.as_ref()),
        URL_SAFE_NO_PAD.encode(key.public_key().as_ref())
    ))
}

fn request(
    sub: &Subscription,
    target: &Target,
    payload: &[u8],
    config: &PushConfig,
    key: &EcdsaKeyPair,
    urgency: &'static str,
) -> Result<http::Request<Vec<u8>>, String> {
    let b64 = |v: &str| URL_SAFE_NO_PAD.decode(v.trim_end_matches('='));
    let point = b64(&sub.p256dh).map_err(|_| "p256dh is not base64url")?;
    let ua_public = web_push_native::p256::PublicKey::from_sec1_bytes(&point)
        .map_err(|_| "p256dh is not a P-256 point")?;
    let auth = b64(&sub.auth).map_err(|_| "auth is not base64url")?;
    if auth.len() != 16 {
        return Err("auth is not 16 bytes".to_owned());
    }
    let auth = web_push_native::Auth::clone_from_slice(&auth);
    let mut req = web_push_native::WebPushBuilder::new(target.uri.clone(), ua_public, auth)
        .with_valid_duration(config.ttl)
        .build(payload.to_vec())
        .map_err(|e| e.to_string())?;
    let authority = target
        .uri
        .authority()
        .ok_or("the endpoint has no host")?
        .clone();
    let aud = match authority.port_u16() {
        Some(443) | None => format!("https://{}", authority.host()),
        Some(p) => format!("https://{}:{p}", authority.host()),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let vapid = vapid_authorization(key, &aud, &config.subject, now)?;
    let headers = req.headers_mut();
    let value = |s: &str| http::HeaderValue::from_str(s).map_err(|e| e.to_string());
    headers.insert(http::header::AUTHORIZATION, value(&vapid)?);
    headers.insert("urgency", http::HeaderValue::from_static(urgency));
    headers.insert(http::header::HOST, value(authority.as_str())?);
    // HTTP/1.1 on a connection of our own: the origin form of the target.
    let path = target
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *req.uri_mut() = path.parse().map_err(|_| "bad endpoint path")?;
    Ok(req)
}

/// The extra CA certificates of `--push-ca` (read before the sandbox).
static EXTRA_CA: OnceLock<Vec<rustls_pki_types::CertificateDer<'static>>> = OnceLock::new();
static TLS: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Remembers the certificates of `--push-ca FILE` (call before the
/// sandbox: the file may be anywhere).
pub(crate) fn set_extra_ca(certs: Vec<rustls_pki_types::CertificateDer<'static>>) {
    let _ = EXTRA_CA.set(certs);
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    if let Some(c) = TLS.get() {
        return Ok(c.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("web push: system CA store: {e}");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    let (extra, _) = roots.add_parsable_certificates(EXTRA_CA.get().cloned().unwrap_or_default());
    tracing::debug!("web push: {added} system CA certificates, {extra} from --push-ca");
    if roots.is_empty() {
        return Err("no CA certificates (system store empty, no --push-ca)".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let _ = TLS.set(config.clone());
    Ok(config)
}

/// POSTs `req` to one of the target's vetted addresses; returns the status
/// and `Retry-After` (seconds).
async fn post(
    target: &Target,
    req: http::Request<Vec<u8>>,
) -> Result<(u16, Option<Duration>), String> {
    let mut last = String::from("no address");
    let mut tcp = None;
    for addr in &target.addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("connect: {e}"),
        }
    }
    let tcp = tcp.ok_or(last)?;
    let name = rustls_pki_types::ServerName::try_from(target.host.clone())
        .map_err(|_| "the endpoint's host is not a DNS name or address".to_owned())?;
    let tls = tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let conn = tokio::spawn(conn);
    let (parts, body) = req.into_parts();
    let resp = sender
        .send_request(http::Request::from_parts(
            parts,
            Full::new(Bytes::from(body)),
        ))
        .await
        .map_err(|e| format!("HTTP: {e}"));
    conn.abort();
    let resp = resp?;
    let retry_after = resp
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Ok((resp.status().as_u16(), retry_after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::event::Direction;

    fn message(kind: ConvKind, text: &str, mention: bool) -> Message {
        let name = if kind == ConvKind::Chat {
            "#rust"
        } else {
            "bob"
        };
        let conversation = ConvRef {
            kind,
            name: name.into(),
        };
        Message {
            mention,
            ..Message::plain(3, conversation, "bob", text, Direction::In)
        }
    }

    #[test]
    fn levels_decide_and_text_is_shortened_or_hidden() {
        let m = message(ConvKind::Chat, "alice: look   here", true);
        assert!(notifies(Level::Mentions, &m));
        assert!(!notifies(Level::None, &m));
        let chatter = message(ConvKind::Chat, "hi", false);
        assert!(!notifies(Level::Mentions, &chatter));
        assert!(notifies(Level::All, &chatter));
        let n = Notification::of(9, &m, false);
        assert_eq!(n.title, "bob in #rust");
        assert_eq!(n.body, "bob: alice: look here");
        let p = n.payload(1);
        assert_eq!(p["conversation"], json!({"kind": "chat", "name": "#rust"}));
        assert_eq!(
            (p["seq"].as_u64(), p["account"].as_i64()),
            (Some(9), Some(3))
        );
        assert_eq!(Notification::of(9, &m, true).body, "New message");
        let long = message(ConvKind::Im, &"é".repeat(500), false);
        let n = Notification::of(1, &long, false);
        assert_eq!(n.title, "bob");
        assert_eq!(n.body.chars().count(), MAX_BODY);
        assert!(n.body.ends_with('…'));
        assert_eq!(n.urgency(), "high");
    }

    #[test]
    fn payloads_fit_a_push_service() {
        let mut m = message(ConvKind::Chat, &"x".repeat(300), true);
        m.conversation.name = format!("#{}", "é".repeat(1500));
        let n = Notification::of(1, &m, false);
        let p = bounded_payload(n.payload(1));
        assert!(p.len() <= MAX_PAYLOAD, "{}", p.len());
        let v: Value = serde_json::from_slice(&p).unwrap();
        assert!(v.get("conversation").is_none() && v["seq"] == 1 && v["title"].is_string());
        let short = message(ConvKind::Chat, "hi", false);
        let v: Value = serde_json::from_slice(&bounded_payload(
            Notification::of(2, &short, false).payload(1),
        ))
        .unwrap();
        assert_eq!(v["conversation"]["name"], "#rust");
    }

    #[test]
    fn the_cap_collapses_the_rest_into_one_summary() {
        let m = message(ConvKind::Im, "x", false);
        let n = |seq| Notification::of(seq, &m, false);
        let mut l = Limiter::new(2);
        let t0 = Instant::now();
        assert!(l.offer(t0, n(1)).is_some());
        assert!(l.offer(t0, n(2)).is_some());
        assert!(l.offer(t0, n(3)).is_none());
        assert!(l.offer(t0, n(4)).is_none());
        assert_eq!(l.next_free(), Some(t0 + MINUTE));
        assert!(l.summary(t0 + Duration::from_secs(30)).is_none());
        // Held back means held back: a later message does not overtake.
        assert!(l.offer(t0 + Duration::from_secs(59), n(5)).is_none());
        let (s, count) = l.summary(t0 + MINUTE).unwrap();
        assert_eq!(count, 3);
        assert_eq!((s.body.as_str(), s.seq), ("3 new messages", 5));
        assert_eq!(l.next_free(), None);
        // One held message is sent as itself.
        let t1 = t0 + MINUTE;
        assert!(l.offer(t1, n(6)).is_some());
        assert!(l.offer(t1, n(7)).is_none());
        let (s, count) = l.summary(t1 + MINUTE).unwrap();
        assert_eq!((count, s.seq, s.body.as_str()), (1, 7, "bob: x"));
    }

    #[test]
    fn origins_hide_the_path_and_keep_odd_ports() {
        assert_eq!(
            origin_of("https://fcm.googleapis.com/fcm/send/secret"),
            "https://fcm.googleapis.com"
        );
        assert_eq!(
            origin_of("https://localhost:8443/p/secret"),
            "https://localhost:8443"
        );
        assert_eq!(origin_of("nonsense with spaces"), "(an endpoint)");
    }
}
