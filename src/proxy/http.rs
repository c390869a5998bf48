//! The proxy's HTTP surface: the web client's files, the login API and the
//! WebSocket upgrade that hands a connection to the relay.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use sha1_smol::Sha1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tracing::{info, warn};

use super::{web, Shared};
use crate::accounts::{self, MAX_PASSWORD_LEN};
use crate::session;
use crate::username::Username;

pub type Body = Full<Bytes>;

/// Largest accepted request body (the login form), in bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// Largest backend handshake response, in bytes.
const MAX_BACKEND_HANDSHAKE: usize = 8 * 1024;
const BACKEND_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most login attempts waiting for a hashing slot before new ones get 503.
const MAX_LOGIN_QUEUE: usize = 256;

/// Serves one request.
pub async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    over_capacity: bool,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let mut resp = if over_capacity {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "The server has too many connections; try again shortly.",
        )
    } else {
        route(&shared, peer, req).await
    };
    security_headers(resp.headers_mut());
    Ok(resp)
}

async fn route(shared: &Arc<Shared>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::POST, "/api/login") => login(shared, peer.ip(), req).await,
        (&Method::POST, "/api/logout") => logout(shared, &req),
        (&Method::GET, "/api/session") => match shared.authenticate(req.headers()) {
            Some(s) => json(StatusCode::OK, &serde_json::json!({ "username": s.user })),
            None => not_signed_in(),
        },
        (&Method::GET, "/ws") => websocket(shared, req).await,
        (_, "/api/login" | "/api/logout" | "/api/session" | "/ws") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed here.",
        ),
        (&Method::GET | &Method::HEAD, p) => match web::asset(p) {
            Some(asset) => asset.response(),
            None => error(StatusCode::NOT_FOUND, "not_found", "No such page."),
        },
        _ => error(StatusCode::NOT_FOUND, "not_found", "No such page."),
    }
}

pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": { "code": code, "message": message } }),
    )
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn not_signed_in() -> Response<Body> {
    error(
        StatusCode::UNAUTHORIZED,
        "not_signed_in",
        "You are not signed in.",
    )
}

/// Headers every response carries. The CSP allows no inline script and
/// nothing from other origins.
fn security_headers(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(h, "strict-transport-security", "max-age=31536000");
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(shared: &Arc<Shared>, ip: IpAddr, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "The request body is too large.",
            )
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request body could not be read.",
            )
        }
    };
    let form: LoginForm = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Send JSON: {\"username\": \"...\", \"password\": \"...\"}.",
            )
        }
    };
    // Rate-limit key for the name: what was typed, bounded.
    let name_key: String = form.username.chars().take(64).collect();
    let blocked = [
        shared.ip_limiter.blocked(&ip),
        shared.user_limiter.blocked(&name_key),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(wait) = blocked {
        let secs = wait.as_secs() + 1;
        let mut resp = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &format!("Too many failed sign-ins. Try again in {secs} seconds."),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }

    // Charge the attempt before hashing, so that concurrent attempts cannot
    // slip past the limit; a successful (or never hashed) one gets it back.
    shared.ip_limiter.fail(&ip);
    shared.user_limiter.fail(&name_key);
    let refund = || {
        shared.ip_limiter.refund(&ip);
        shared.user_limiter.refund(&name_key);
    };

    // Bounded hashing: a few slots (see `Shared::hashing`); a bounded queue
    // behind them.
    if shared.login_queue.fetch_add(1, Ordering::SeqCst) >= MAX_LOGIN_QUEUE {
        shared.login_queue.fetch_sub(1, Ordering::SeqCst);
        refund();
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "Too many sign-ins at once; try again shortly.",
        );
    }
    let permit = shared.hashing.clone().acquire_owned().await;
    shared.login_queue.fetch_sub(1, Ordering::SeqCst);
    let Ok(permit) = permit else {
        refund();
        return error(StatusCode::SERVICE_UNAVAILABLE, "busy", "Shutting down.");
    };

    // Unknown users, invalid names and disabled users are verified against
    // a hash too, so every failure costs the same time and gets the same answer.
    let user = Username::parse(&form.username).ok();
    let account = user
        .as_ref()
        .and_then(|u| shared.accounts().get(u).cloned());
    let hash = account
        .as_ref()
        .map(|a| a.hash.clone())
        .unwrap_or_else(|| accounts::dummy_hash().to_owned());
    let password = form.password;
    let matched = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        password.len() <= MAX_PASSWORD_LEN && accounts::verify_password(&hash, &password)
    })
    .await
    .unwrap_or(false);

    match (user, account) {
        (Some(user), Some(account)) if matched && !account.disabled => {
            refund();
            let token = shared.sessions.mint(&user, account.password_stamp());
            info!(%user, %ip, "signed in");
            let mut resp = json(StatusCode::OK, &serde_json::json!({ "username": user }));
            let cookie = session::set_cookie(&token, shared.sessions.ttl());
            resp.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
            );
            resp
        }
        _ => {
            warn!(%ip, user = %name_key.escape_debug(), "failed sign-in");
            error(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "Wrong user name or password.",
            )
        }
    }
}

fn logout(shared: &Arc<Shared>, req: &Request<Incoming>) -> Response<Body> {
    if let Some(s) = shared.session_of(req.headers()) {
        if let Err(e) = shared.sessions.revoke(&s) {
            warn!(user = %s.user, "could not persist the logout: {e}");
        }
        shared.session_revoked(&s);
        info!(user = %s.user, "signed out");
    }
    let mut resp = json(StatusCode::OK, &serde_json::json!({}));
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&session::clear_cookie()).expect("ASCII"),
    );
    resp
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// `https://host[:port]` with the default port dropped, lower-case.
fn normalise_origin(o: &str) -> String {
    let o = o.trim().to_ascii_lowercase();
    o.strip_suffix(":443").map(str::to_owned).unwrap_or(o)
}

/// True when `Origin` is the proxy's own origin (or a configured one).
fn origin_allowed(shared: &Shared, h: &HeaderMap) -> bool {
    let Some(origin) = header_str(h, header::ORIGIN) else {
        return false;
    };
    let origin = normalise_origin(origin);
    if !shared.config.origins.is_empty() {
        return shared
            .config
            .origins
            .iter()
            .any(|o| normalise_origin(o) == origin);
    }
    match header_str(h, header::HOST) {
        Some(host) => normalise_origin(&format!("https://{host}")) == origin,
        None => false,
    }
}

/// The `Sec-WebSocket-Accept` value for a key (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes())
}

async fn websocket(shared: &Arc<Shared>, mut req: Request<Incoming>) -> Response<Body> {
    let h = req.headers();
    let key = header_str(h, header::SEC_WEBSOCKET_KEY).map(str::to_owned);
    let is_upgrade =
        has_token(h, header::CONNECTION, "upgrade") && has_token(h, header::UPGRADE, "websocket");
    let Some(key) = key.filter(|k| k.len() <= 64 && is_upgrade) else {
        return error(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            "Expected a WebSocket upgrade.",
        );
    };
    if header_str(h, header::SEC_WEBSOCKET_VERSION) != Some("13") {
        let mut resp = error(
            StatusCode::UPGRADE_REQUIRED,
            "bad_websocket_version",
            "Only WebSocket version 13 is supported.",
        );
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    let Some(session) = shared.authenticate(h) else {
        return not_signed_in();
    };
    if !origin_allowed(shared, h) {
        warn!(user = %session.user, origin = ?header_str(h, header::ORIGIN), "WebSocket from a foreign origin refused");
        return error(
            StatusCode::FORBIDDEN,
            "bad_origin",
            "WebSocket connections are only accepted from this site's own pages.",
        );
    }
    let protocol = header_str(h, header::SEC_WEBSOCKET_PROTOCOL).map(str::to_owned);
    let user = session.user.clone();

    let backend = match shared.launcher.connect(&user).await {
        Ok(s) => s,
        Err(e) => {
            warn!(%user, "backend unreachable: {e}");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "backend_unavailable",
                "Your chat backend is not reachable right now; try again shortly.",
            );
        }
    };
    let (backend, leftover, chosen_protocol) =
        match backend_handshake(backend, &key, protocol.as_deref()).await {
            Ok(x) => x,
            Err(e) => {
                warn!(%user, "backend WebSocket handshake failed: {e}");
                return error(
                    StatusCode::BAD_GATEWAY,
                    "backend_failed",
                    "Your chat backend did not answer properly; try again shortly.",
                );
            }
        };

    let on_upgrade = hyper::upgrade::on(&mut req);
    let shared2 = Arc::clone(shared);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                super::relay_upgraded(shared2, session, upgraded, backend, leftover).await
            }
            Err(e) => warn!(%user, "WebSocket upgrade failed: {e}"),
        }
    });

    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let rh = resp.headers_mut();
    rh.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    rh.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    rh.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept_key(&key)).expect("base64"),
    );
    if let Some(p) = chosen_protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        rh.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    resp
}

#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("answer over {MAX_BACKEND_HANDSHAKE} bytes")]
    TooLong,
    #[error("unexpected answer: {0}")]
    Bad(String),
}

/// Opens the WebSocket on the backend's socket with the browser's key, no
/// extensions (so frames pass through unchanged), and the browser's
/// subprotocols. Returns the stream, bytes read past the handshake, and the
/// subprotocol the backend chose.
async fn backend_handshake(
    mut s: UnixStream,
    key: &str,
    protocol: Option<&str>,
) -> Result<(UnixStream, Vec<u8>, Option<String>), HandshakeError> {
    let mut request = format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(p) = protocol {
        request.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        s.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 1024];
        loop {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Err(HandshakeError::Bad("connection closed".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let leftover = buf.split_off(end + 4);
                return Ok((buf, leftover));
            }
            if buf.len() > MAX_BACKEND_HANDSHAKE {
                return Err(HandshakeError::TooLong);
            }
        }
    };
    let (head, leftover) = tokio::time::timeout(BACKEND_HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| HandshakeError::Timeout)??;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed
        .parse(&head)
        .map_err(|e| HandshakeError::Bad(e.to_string()))?;
    if parsed.code != Some(101) {
        return Err(HandshakeError::Bad(format!("status {:?}", parsed.code)));
    }
    let get = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    if get("sec-websocket-accept") != Some(accept_key(key).as_str()) {
        return Err(HandshakeError::Bad("wrong Sec-WebSocket-Accept".into()));
    }
    if get("sec-websocket-extensions").is_some() {
        return Err(HandshakeError::Bad(
            "backend negotiated an extension".into(),
        ));
    }
    let chosen = get("sec-websocket-protocol").map(str::to_owned);
    Ok((s, leftover, chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn origins_normalise_default_port() {
        assert_eq!(
            normalise_origin("https://Chat.Example:443"),
            "https://chat.example"
        );
        assert_eq!(
            normalise_origin("https://127.0.0.1:8443"),
            "https://127.0.0.1:8443"
        );
    }
}
