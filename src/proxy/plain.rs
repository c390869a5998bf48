//! The optional plain-HTTP listener (port 80: `sapphire-proxy-http.socket`
//! under systemd, `listen_http` otherwise). It answers exactly two things:
//! ACME http-01 validations (`/.well-known/acme-challenge/<token>`, read
//! from the challenge directory the renewing client writes) and, for every
//! other request, a redirect to the same path on https. No sign-in, no
//! WebSocket, no web client is ever served without TLS.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::admission::Slot;
use super::http::headers::{header_str, host_name};
use super::http::response::{error, Body};
use super::shutdown::stopped;
use super::state::{CountGuard, Shared};

/// Where an ACME CA fetches http-01 key authorizations (RFC 8555 §8.3).
pub(crate) const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Serves one plain HTTP connection: one request, then close.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    https_port: u16,
    _slot: Slot,
) {
    let _count = CountGuard::new(&shared.connections);
    let svc_shared = Arc::clone(&shared);
    let service = service_fn(move |req: Request<Incoming>| {
        let resp = answer(&svc_shared, peer, https_port, &req);
        async move { Ok::<_, std::convert::Infallible>(resp) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_timeout)
        .max_buf_size(16 * 1024)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let mut stop = shared.shutdown.subscribe();
    tokio::select! {
        r = conn => if let Err(e) = r { debug!(%peer, "plain HTTP connection ended: {e}") },
        _ = stopped(&mut stop) => {}
    }
}

fn answer(
    shared: &Shared,
    peer: SocketAddr,
    https_port: u16,
    req: &Request<Incoming>,
) -> Response<Body> {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    if let Some(token) = req.uri().path().strip_prefix(CHALLENGE_PREFIX) {
        if !get {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This method is not allowed here.",
            );
        }
        let found = shared
            .config
            .acme
            .as_ref()
            .and_then(|a| crate::acme::http_challenge(&a.challenge_dir, token));
        return match found {
            Some(key_authorization) => {
                info!(%peer, "answering an http-01 validation");
                let mut resp = Response::new(Full::new(Bytes::from(key_authorization)));
                let h = resp.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
            None => {
                debug!(%peer, "http-01 request without a pending challenge");
                error(StatusCode::NOT_FOUND, "not_found", "No such challenge.")
            }
        };
    }
    let target = header_str(req.headers(), header::HOST).and_then(|h| {
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        redirect_target(h, pq, https_port)
    });
    match target.and_then(|t| HeaderValue::from_str(&t).ok()) {
        Some(location) => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            // 301 for GET and HEAD (what every client follows), 308 for the
            // rest so that a method and its body are not silently changed.
            *resp.status_mut() = if get {
                StatusCode::MOVED_PERMANENTLY
            } else {
                StatusCode::PERMANENT_REDIRECT
            };
            resp.headers_mut().insert(header::LOCATION, location);
            resp
        }
        None => error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "This site is served over HTTPS only; the request names no valid host.",
        ),
    }
}

/// `https://HOST[:PORT]/path?query` for a request to `host` (a `Host`
/// header), or `None` when it is not a DNS name or an IP address. The
/// host is the request's own: a redirect can only send a client where it
/// already meant to go.
fn redirect_target(host: &str, path_and_query: &str, https_port: u16) -> Option<String> {
    let name = host_name(host).to_ascii_lowercase();
    let authority = if host.starts_with('[') {
        name.parse::<Ipv6Addr>().ok()?;
        format!("[{name}]")
    } else if crate::acme::valid_domain(&name) {
        name
    } else {
        return None;
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let pq = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    Some(format!("https://{authority}{port}{pq}"))
}

#[cfg(test)]
mod tests {
    use super::redirect_target;

    #[test]
    fn redirects_keep_host_and_path_and_drop_the_http_port() {
        let r = |h, p, port| redirect_target(h, p, port);
        assert_eq!(
            r("Chat.Example.org", "/a?b=c", 443).as_deref(),
            Some("https://chat.example.org/a?b=c")
        );
        assert_eq!(
            r("chat.example.org:80", "/", 8443).as_deref(),
            Some("https://chat.example.org:8443/")
        );
        assert_eq!(r("[::1]:80", "/x", 443).as_deref(), Some("https://[::1]/x"));
        assert_eq!(
            r("10.0.0.1", "*", 443).as_deref(),
            Some("https://10.0.0.1/")
        );
        for bad in ["", "evil.example/x", "a b", "user@host", "[zz]"] {
            assert_eq!(r(bad, "/", 443), None, "{bad}");
        }
    }
}
