//! Request headers the proxy's checks read: tokens, and whether a request
//! comes from the site's own pages (`Origin`).

use hyper::header::{self, HeaderMap};

use crate::proxy::state::Shared;

pub(crate) fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn has_token(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// `https://host[:port]` with the default port dropped, lower-case.
pub(crate) fn normalise_origin(o: &str) -> String {
    let o = o.trim().to_ascii_lowercase();
    o.strip_suffix(":443").map(str::to_owned).unwrap_or(o)
}

/// True when `Origin` is the proxy's own origin (or a configured one).
pub(crate) fn origin_allowed(shared: &Shared, h: &HeaderMap) -> bool {
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
    // No origin configured: the request's own, `https://` + its Host, if
    // the certificate is valid for that host. A browser only talks to a
    // host whose certificate it accepted, so a page elsewhere cannot make
    // it send a Host (and Origin) of its choosing (DNS rebinding ends at
    // the certificate check).
    let Some(host) = header_str(h, header::HOST) else {
        return false;
    };
    normalise_origin(&format!("https://{host}")) == origin
        && shared.certificate_covers(host_name(host))
}

/// The host part of a `Host` header value: without the port, IPv6 without
/// its brackets.
pub(crate) fn host_name(host: &str) -> &str {
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Why a state-changing request is refused as possibly cross-site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrossSite {
    /// Not `Content-Type: application/json`: what an HTML form can send
    /// (`text/plain`, urlencoded, multipart) without a CORS preflight.
    NotJson,
    /// A foreign `Origin`, or no `Origin` and no `Sec-Fetch-Site:
    /// same-origin`.
    NotSameOrigin,
}

/// The CSRF rule for `POST /api/*`: the body is declared JSON (a cross-site
/// page can only send that after a CORS preflight, which the proxy never
/// grants), and the request says it comes from the site's own pages: an
/// allowed `Origin`, or, without `Origin`, `Sec-Fetch-Site: same-origin`. A
/// `Sec-Fetch-Site` other than `same-origin` is refused whatever the
/// `Origin` says.
pub(crate) fn same_site_json(shared: &Shared, h: &HeaderMap) -> Result<(), CrossSite> {
    let json = header_str(h, header::CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(CrossSite::NotJson);
    }
    let fetch_site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let same = match (h.contains_key(header::ORIGIN), fetch_site) {
        (_, Some(site)) if !site.eq_ignore_ascii_case("same-origin") => false,
        (true, _) => origin_allowed(shared, h),
        (false, site) => site.is_some(),
    };
    if same {
        Ok(())
    } else {
        Err(CrossSite::NotSameOrigin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("chat.example:8443"), "chat.example");
        assert_eq!(host_name("chat.example"), "chat.example");
        assert_eq!(host_name("[::1]:443"), "::1");
        assert_eq!(host_name("127.0.0.1:1"), "127.0.0.1");
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
