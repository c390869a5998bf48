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
    match header_str(h, header::HOST) {
        Some(host) => normalise_origin(&format!("https://{host}")) == origin,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
