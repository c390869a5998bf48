//! Which request goes where, and what every answer gets on top.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tracing::warn;

use super::headers::{header_str, same_site_json, CrossSite};
use super::response::{error, json, not_signed_in, security_headers, Body};
use super::{login, web, websocket};
use crate::proxy::state::Shared;

/// Serves one request.
pub(crate) async fn handle(
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
    if req.method() == Method::POST && path.starts_with("/api/") {
        if let Err(why) = same_site_json(shared, req.headers()) {
            let h = req.headers();
            warn!(
                %peer, %path,
                origin = ?header_str(h, hyper::header::ORIGIN),
                content_type = ?header_str(h, hyper::header::CONTENT_TYPE),
                "cross-site request refused ({why:?})"
            );
            return error(
                StatusCode::FORBIDDEN,
                "cross_site",
                match why {
                    CrossSite::NotJson => "Send this request as application/json.",
                    CrossSite::NotSameOrigin => {
                        "This request is only accepted from this site's own pages."
                    }
                },
            );
        }
    }
    match (req.method(), path.as_str()) {
        (&Method::POST, "/api/login") => login::login(shared, peer.ip(), req).await,
        (&Method::POST, "/api/logout") => login::logout(shared, &req).await,
        (&Method::GET, "/api/session") => match shared.authenticate(req.headers()) {
            Some(s) => json(StatusCode::OK, &serde_json::json!({ "username": s.user })),
            None => not_signed_in(),
        },
        (&Method::GET, "/ws") => websocket::websocket(shared, req).await,
        (_, "/api/login" | "/api/logout" | "/api/session" | "/ws") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed here.",
        ),
        (&Method::GET | &Method::HEAD, p) => match web::asset(p) {
            Some(asset) => asset.response(req.headers()),
            None => error(StatusCode::NOT_FOUND, "not_found", "No such page."),
        },
        _ => error(StatusCode::NOT_FOUND, "not_found", "No such page."),
    }
}
