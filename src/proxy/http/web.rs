//! The web client's static files, embedded in the binary (nothing is
//! fetched from elsewhere at run time).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::Response;

use super::response::Body;

pub(crate) struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
}

macro_rules! assets {
    ($($path:literal => $file:literal, $ty:literal;)*) => {
        /// The asset served at `path`, if any.
        pub(crate) fn asset(path: &str) -> Option<Asset> {
            match path {
                $($path => Some(Asset {
                    bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file)),
                    content_type: $ty,
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
    "/app.css" => "app.css", "text/css; charset=utf-8";
    "/manifest.webmanifest" => "manifest.webmanifest", "application/manifest+json";
    "/icon.svg" => "icon.svg", "image/svg+xml";
    "/icon-192.png" => "icon-192.png", "image/png";
    "/icon-512.png" => "icon-512.png", "image/png";
}

impl Asset {
    pub(crate) fn response(&self) -> Response<Body> {
        let mut resp = Response::new(Full::new(Bytes::from_static(self.bytes)));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}
