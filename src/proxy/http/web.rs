//! The web client's static files, embedded in the binary (nothing is
//! fetched from elsewhere at run time).
//!
//! Caching (decision, `docs/proxy.md`): every file is served with
//! `Cache-Control: no-cache` and a strong `ETag` (SHA-256 of the file, per
//! encoding), and a matching `If-None-Match` gets `304` without a body. Files
//! are not fingerprinted: the ES modules import each other by plain relative
//! names, and rewriting every import (and the manifest's and service
//! worker's references) to hashed names at build time would buy only the
//! revalidation requests of a reload, which are a few hundred bytes each
//! and carry no body. Bodies are precompressed at build time (`build.rs`:
//! brotli and gzip) and chosen from `Accept-Encoding`, with
//! `Vary: Accept-Encoding`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use super::response::Body;

pub(crate) struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    compressed: Compressed,
}

/// A file's precompressed copies (absent when compression does not pay)
/// and the hex SHA-256 prefix its ETags are made of.
struct Compressed {
    etag: &'static str,
    gzip: Option<&'static [u8]>,
    br: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// A content coding the proxy can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Br,
    Gzip,
    Identity,
}

impl Coding {
    fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Br => "-br",
            Coding::Gzip => "-gz",
            Coding::Identity => "",
        }
    }
}

/// The q-value `Accept-Encoding` gives `coding` (`*` counts for codings
/// not named; identity is acceptable unless refused).
fn quality(accept: &str, coding: &str) -> f32 {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q;
        }
        if name == "*" {
            star = Some(q);
        }
    }
    match (star, coding) {
        (Some(q), _) => q,
        (None, "identity") => 1.0,
        (None, _) => 0.0,
    }
}

/// The coding to send: brotli, then gzip, when the client takes it (ties
/// go to the smaller, brotli), else identity.
fn choose(accept: Option<&str>, has_br: bool, has_gzip: bool) -> Coding {
    let Some(accept) = accept else {
        return Coding::Identity;
    };
    let br = if has_br { quality(accept, "br") } else { 0.0 };
    let gz = if has_gzip {
        quality(accept, "gzip")
    } else {
        0.0
    };
    if br > 0.0 && br >= gz {
        Coding::Br
    } else if gz > 0.0 {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// Whether `If-None-Match` lists `etag` (weak comparison, RFC 9110 13.1.2).
fn none_match(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

macro_rules! assets {
    ($($path:literal => $file:literal, $ty:literal;)*) => {
        /// The asset served at `path`, if any.
        pub(crate) fn asset(path: &str) -> Option<Asset> {
            match path {
                $($path => Some(Asset {
                    bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file)),
                    content_type: $ty,
                    compressed: compressed($file),
                }),)*
                _ => None,
            }
        }
    };
}

assets! {
    "/" => "index.html", "text/html; charset=utf-8";
    "/index.html" => "index.html", "text/html; charset=utf-8";
    "/app.js" => "app.js", "text/javascript; charset=utf-8";
    "/conn.js" => "conn.js", "text/javascript; charset=utf-8";
    "/dom.js" => "dom.js", "text/javascript; charset=utf-8";
    "/accounts.js" => "accounts.js", "text/javascript; charset=utf-8";
    "/commands.js" => "commands.js", "text/javascript; charset=utf-8";
    "/composer.js" => "composer.js", "text/javascript; charset=utf-8";
    "/convlist.js" => "convlist.js", "text/javascript; charset=utf-8";
    "/dialogs.js" => "dialogs.js", "text/javascript; charset=utf-8";
    "/format.js" => "format.js", "text/javascript; charset=utf-8";
    "/input.js" => "input.js", "text/javascript; charset=utf-8";
    "/messages.js" => "messages.js", "text/javascript; charset=utf-8";
    "/prompts.js" => "prompts.js", "text/javascript; charset=utf-8";
    "/settings.js" => "settings.js", "text/javascript; charset=utf-8";
    "/store.js" => "store.js", "text/javascript; charset=utf-8";
    "/notify.js" => "notify.js", "text/javascript; charset=utf-8";
    "/notifications.js" => "notifications.js", "text/javascript; charset=utf-8";
    // The service worker: at the root so its scope is the whole app
    // (no Service-Worker-Allowed header needed).
    "/sw.js" => "sw.js", "text/javascript; charset=utf-8";
    "/app.css" => "app.css", "text/css; charset=utf-8";
    "/manifest.webmanifest" => "manifest.webmanifest", "application/manifest+json";
    "/icon.svg" => "icon.svg", "image/svg+xml";
    "/icon-192.png" => "icon-192.png", "image/png";
    "/icon-512.png" => "icon-512.png", "image/png";
}

impl Asset {
    /// The answer to a GET (or HEAD) with the request's `headers`: the
    /// body in the best coding the client accepts, or `304` if its cached
    /// copy (`If-None-Match`) is current.
    pub(crate) fn response(&self, headers: &HeaderMap) -> Response<Body> {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let c = &self.compressed;
        let coding = choose(
            text(header::ACCEPT_ENCODING),
            c.br.is_some(),
            c.gzip.is_some(),
        );
        let body = match coding {
            Coding::Br => c.br.unwrap_or(self.bytes),
            Coding::Gzip => c.gzip.unwrap_or(self.bytes),
            Coding::Identity => self.bytes,
        };
        let etag = (!c.etag.is_empty()).then(|| format!("\"{}{}\"", c.etag, coding.etag_suffix()));
        let fresh = match (&etag, text(header::IF_NONE_MATCH)) {
            (Some(etag), Some(inm)) => none_match(inm, etag),
            _ => false,
        };
        let mut resp = if fresh {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            Response::new(Full::new(Bytes::from_static(body)))
        };
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if c.br.is_some() || c.gzip.is_some() {
            h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        match coding {
            Coding::Br => {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            }
            Coding::Gzip => {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Coding::Identity => {}
        }
        if let Some(v) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
            h.insert(header::ETAG, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_picks_brotli_then_gzip_then_identity() {
        assert_eq!(
            choose(Some("gzip, deflate, br, zstd"), true, true),
            Coding::Br
        );
        assert_eq!(choose(Some("gzip, deflate"), true, true), Coding::Gzip);
        assert_eq!(choose(Some("br;q=0, gzip"), true, true), Coding::Gzip);
        assert_eq!(choose(Some("br;q=0.5, gzip"), true, true), Coding::Gzip);
        assert_eq!(choose(Some("*"), true, true), Coding::Br);
        assert_eq!(choose(Some("br"), false, true), Coding::Identity);
        assert_eq!(choose(Some("identity"), true, true), Coding::Identity);
        assert_eq!(choose(None, true, true), Coding::Identity);
        assert_eq!(choose(Some(""), true, true), Coding::Identity);
    }

    #[test]
    fn if_none_match_compares_weakly_and_lists() {
        assert!(none_match("\"a\"", "\"a\""));
        assert!(none_match("\"x\", W/\"a\"", "\"a\""));
        assert!(none_match("*", "\"a\""));
        assert!(!none_match("\"a-br\"", "\"a\""));
    }

    #[test]
    fn every_listed_file_has_an_etag_and_text_is_compressed() {
        for path in ["/", "/app.js", "/app.css", "/store.js", "/icon-512.png"] {
            let a = asset(path).unwrap();
            assert_eq!(a.compressed.etag.len(), 32, "{path}");
            if !path.ends_with(".png") {
                assert!(
                    a.compressed.br.is_some() && a.compressed.gzip.is_some(),
                    "{path}"
                );
            }
        }
    }
}
