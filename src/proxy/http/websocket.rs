//! `GET /ws`: checks the upgrade, the session and the origin, opens the
//! backend's side, registers the relay and hands the connection over.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tracing::{info, warn};

use super::headers::{has_token, header_str, origin_allowed};
use super::response::{error, not_signed_in, Body};
use crate::proxy::relay::frames::GOING_AWAY;
use crate::proxy::relay::{bridge, handshake};
use crate::proxy::state::Shared;

pub(crate) async fn websocket(shared: &Arc<Shared>, mut req: Request<Incoming>) -> Response<Body> {
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
        match handshake::backend_handshake(backend, &key, protocol.as_deref()).await {
            Ok(x) => x,
            Err(e) => {
                warn!(%user, "backend WebSocket handshake failed: {e}");
                return backend_failed();
            }
        };

    // The backend's connect and handshake can take seconds (a backend being
    // started): the session may have ended meanwhile. Register first, so
    // that from here on a sign-out, a password change, a disable or a
    // shutdown reaches this relay, then check again what may have happened
    // before.
    let guard = shared.relays.register(session);
    if !shared.still_holds(guard.session()) {
        info!(%user, "session ended while the backend was being reached");
        return not_signed_in();
    }
    if *shared.shutdown.borrow() {
        guard.end(GOING_AWAY);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let max_frame = shared.config.max_frame_bytes;
    // The relay runs on the relay runtime (this request is served on the
    // edge's): the backend's socket, connected here, moves over with it.
    let backend = match backend.into_std() {
        Ok(s) => s,
        Err(e) => {
            warn!(%user, "backend socket: {e}");
            return backend_failed();
        }
    };
    shared.relay_runtime.spawn(async move {
        let backend = match tokio::net::UnixStream::from_std(backend) {
            Ok(s) => s,
            Err(e) => return warn!(%user, "backend socket: {e}"),
        };
        match on_upgrade.await {
            Ok(upgraded) => bridge::relay(guard, upgraded, backend, leftover, max_frame).await,
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
        HeaderValue::from_str(&handshake::accept_key(&key)).expect("base64"),
    );
    if let Some(p) = chosen_protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        rh.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    resp
}

fn backend_failed() -> Response<Body> {
    error(
        StatusCode::BAD_GATEWAY,
        "backend_failed",
        "Your chat backend did not answer properly; try again shortly.",
    )
}
