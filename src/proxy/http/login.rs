//! Sign-in and sign-out.

use std::net::IpAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use tracing::{info, warn};

use super::response::{error, json, Body};
use crate::accounts::{self, MAX_PASSWORD_LEN};
use crate::proxy::hashing::Class;
use crate::proxy::limits::Payer;
use crate::proxy::state::Shared;
use crate::session::{self, Device};
use crate::username::Username;

/// Largest accepted request body (the login form), in bytes.
const MAX_BODY: usize = 8 * 1024;

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

pub(crate) async fn login(
    shared: &Arc<Shared>,
    ip: IpAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let device = device_of(shared, req.headers());
    // The body has its own deadline (hyper's covers the headers only): a
    // client trickling bytes does not keep the connection.
    let collect = Limited::new(req.into_body(), MAX_BODY).collect();
    let Ok(body) = tokio::time::timeout(shared.config.request_timeout, collect).await else {
        let mut resp = error(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "The request body took too long to arrive.",
        );
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    };
    let body = match body {
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
    // Charge the attempt before hashing, so that concurrent attempts cannot
    // slip past the limit; a successful (or never hashed) one gets it back.
    let payer = Payer::of(device.as_ref(), &form.username, ip);
    if let Err(wait) = shared.limits.charge(&payer) {
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
    let name_key: String = form.username.chars().take(64).collect();
    let refund = || shared.limits.refund(&payer);

    // Bounded hashing (see `proxy::hashing`): known browsers first; a
    // stranger who would wait long is answered at once.
    let class = if payer.known_device() {
        Class::Known
    } else {
        Class::Stranger
    };
    let Some(permit) = shared.hashing.acquire(class).await else {
        refund();
        let mut resp = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "Too many sign-ins at once; try again shortly.",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
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
            // The session cookie first (clients that keep one take the first).
            resp.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
            );
            // This browser is now known for this user (a fresh token each time).
            let device = session::set_device_cookie(&shared.sessions.mint_device(&user));
            resp.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_str(&device).expect("cookie is ASCII"),
            );
            resp
        }
        _ => {
            warn!(
                %ip,
                user = %name_key.escape_debug(),
                known_device = payer.known_device(),
                "failed sign-in"
            );
            error(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "Wrong user name or password.",
            )
        }
    }
}

/// The request's device token, signature-checked.
fn device_of(shared: &Shared, headers: &HeaderMap) -> Option<Device> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| session::named_cookie(v, session::DEVICE_COOKIE_NAME))
        .and_then(|t| shared.sessions.verify_device(t))
}

pub(crate) async fn logout(shared: &Arc<Shared>, req: &Request<Incoming>) -> Response<Body> {
    if let Some(s) = shared.session_of(req.headers()) {
        // In memory at once (the session is refused from now on), then on
        // disk on a blocking thread: the write fsyncs.
        shared.sessions.mark_revoked(&s);
        shared.session_revoked(&s);
        info!(user = %s.user, "signed out");
        let persist = Arc::clone(shared);
        match tokio::task::spawn_blocking(move || persist.sessions.persist_revocations()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(user = %s.user, "could not persist the logout: {e}"),
            Err(e) => warn!(user = %s.user, "could not persist the logout: {e}"),
        }
    }
    let mut resp = json(StatusCode::OK, &serde_json::json!({}));
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&session::clear_cookie()).expect("ASCII"),
    );
    resp
}
