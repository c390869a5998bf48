//! The public edge under attack (issue #11): each test reproduces one
//! finding against the real binary over real TLS on loopback.

mod support;

use hyper::StatusCode;
use support::*;

const LOGIN: &str = r#"{"username":"alice","password":"alice-pw"}"#;

#[tokio::test]
async fn cross_site_sign_in_and_sign_out_are_refused() {
    let p = Proxy::start(ProxyOptions::default());
    let c = p.client();
    let own = c.origin();
    // What a cross-site HTML form or fetch() can send without a preflight,
    // and JSON from a foreign page.
    let refused: &[&[(&str, &str)]] = &[
        &[
            ("content-type", "text/plain"),
            ("origin", "https://evil.example"),
        ],
        &[
            ("content-type", "text/plain"),
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "https://evil.example"),
        ],
        // right type and our Origin, but not sent as JSON
        &[("content-type", "text/plain"), ("origin", &own)],
        &[("content-type", "multipart/form-data; boundary=x")],
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        // no Origin and no fetch metadata: nothing says it is ours
        &[("origin", "")],
        &[("origin", ""), ("sec-fetch-site", "cross-site")],
        &[("origin", ""), ("sec-fetch-site", "same-site")],
        // a same-origin claim does not whitewash a foreign Origin
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "same-origin"),
        ],
    ];
    for headers in refused {
        let r = c.request("POST", "/api/login", Some(LOGIN), headers).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(r.json()["error"]["code"], "cross_site", "{headers:?}");
        assert!(r.headers.get("set-cookie").is_none(), "{headers:?}");
    }
    // what the web client sends: JSON with its Origin; or fetch metadata
    // alone; a charset parameter is fine
    for headers in [
        &[][..],
        &[("origin", ""), ("sec-fetch-site", "same-origin")][..],
        &[("content-type", "application/json; charset=utf-8")][..],
    ] {
        let r = c.request("POST", "/api/login", Some(LOGIN), headers).await;
        assert_eq!(r.status, StatusCode::OK, "{headers:?}");
    }

    // logout: a cross-site one leaves the session alone
    let alice = p.client().signed_in("alice", "alice-pw").await;
    for headers in [
        &[
            ("content-type", "text/plain"),
            ("origin", "https://evil.example"),
        ][..],
        &[("origin", "https://evil.example")][..],
        &[("origin", ""), ("sec-fetch-site", "cross-site")][..],
    ] {
        let r = alice
            .request("POST", "/api/logout", Some("{}"), headers)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(r.headers.get("set-cookie").is_none());
    }
    assert_eq!(
        alice.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::OK
    );
    let out = alice.request("POST", "/api/logout", Some("{}"), &[]).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        alice.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}
