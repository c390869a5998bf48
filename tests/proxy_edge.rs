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

/// A backend socket the test answers itself, to hold the proxy in the
/// window between its backend connect and the 101 to the browser.
struct HeldBackend {
    listener: tokio::net::UnixListener,
}

impl HeldBackend {
    fn bind(p: &Proxy, user: &str) -> HeldBackend {
        std::fs::create_dir_all(p.backend_dir()).unwrap();
        let path = p.backend_dir().join(format!("{user}.sock"));
        let _ = std::fs::remove_file(&path);
        HeldBackend {
            listener: tokio::net::UnixListener::bind(path).unwrap(),
        }
    }

    /// Accepts the proxy's connection and reads its handshake request;
    /// returns the stream and the `Sec-WebSocket-Key`, without answering.
    async fn accept_handshake(&self) -> (tokio::net::UnixStream, String) {
        use tokio::io::AsyncReadExt;
        let (mut s, _) = self.listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).await.unwrap(), 1, "proxy hung up");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_owned())
            })
            .expect("key in the handshake");
        (s, key)
    }
}

/// Answers a held handshake with a proper 101.
async fn answer_101(s: &mut tokio::net::UnixStream, key: &str) {
    use base64::Engine;
    use tokio::io::AsyncWriteExt;
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    s.write_all(answer.as_bytes()).await.unwrap();
}

#[tokio::test]
async fn a_session_ended_while_the_backend_is_reached_opens_no_relay() {
    use futures_util::StreamExt;
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;

    let p = Proxy::start(ProxyOptions {
        launcher: "systemd",
        ..ProxyOptions::default()
    });
    let alice_backend = HeldBackend::bind(&p, "alice");
    let bob_backend = HeldBackend::bind(&p, "bob");
    // Each way a session ends, landing while the proxy waits for the
    // backend's handshake answer.
    for how in ["logout", "passwd", "disable"] {
        let (user, password, backend) = match how {
            "disable" => ("bob", "bob-pw", &bob_backend),
            "passwd" => ("alice", "alice-pw", &alice_backend),
            _ => ("alice", "alice-pw", &alice_backend),
        };
        let c = p.client().signed_in(user, password).await;
        let opening = {
            let c = c.clone();
            tokio::spawn(async move { c.websocket(Some(&c.origin())).await })
        };
        let (mut held, key) = backend.accept_handshake().await;
        match how {
            "logout" => {
                let out = c.request("POST", "/api/logout", Some("{}"), &[]).await;
                assert_eq!(out.status, StatusCode::OK);
            }
            "passwd" => assert!(ctl(
                &p.accounts(),
                &["user", "passwd", "alice", "--password-stdin"],
                Some("alice-pw2\n"),
            )
            .status
            .success()),
            _ => assert!(ctl(&p.accounts(), &["user", "disable", "bob"], None)
                .status
                .success()),
        }
        answer_101(&mut held, &key).await;
        // No relay: the upgrade is refused, or (at worst) the relay is
        // closed at once as the session's; never left open.
        match opening.await.unwrap() {
            Err(e) => assert_eq!(ws_status(e), StatusCode::UNAUTHORIZED, "{how}"),
            Ok(mut ws) => {
                let end = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
                    .await
                    .unwrap_or_else(|_| panic!("{how}: relay left open"));
                match end {
                    Some(Ok(Message::Close(Some(f)))) => {
                        assert_eq!(f.code, CloseCode::Policy, "{how}")
                    }
                    other => panic!("{how}: {other:?}"),
                }
            }
        }
        // and the backend's side is let go
        let mut rest = Vec::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            held.read_to_end(&mut rest),
        )
        .await
        .unwrap_or_else(|_| panic!("{how}: backend connection kept"));
        assert!(n.is_ok(), "{how}");
        if how == "passwd" {
            // the next round signs in with the new password
            assert!(ctl(
                &p.accounts(),
                &["user", "passwd", "alice", "--password-stdin"],
                Some("alice-pw\n"),
            )
            .status
            .success());
        }
    }
}

#[tokio::test]
async fn guessing_cannot_lock_a_user_out_of_their_own_browser() {
    let p = Proxy::start(ProxyOptions::default());
    // alice has signed in from this browser before
    let own = p.client().signed_in("alice", "alice-pw").await;
    let out = own.request("POST", "/api/logout", Some("{}"), &[]).await;
    assert_eq!(out.status, StatusCode::OK);
    // someone else keeps guessing her password
    let attacker = p.client();
    for _ in 0..5 {
        let r = attacker.login("alice", "guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // guessing is slowed down: strangers are limited, even with the right
    // password
    let r = attacker.login("alice", "alice-pw").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        p.client().login("alice", "alice-pw").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // a forged device cookie counts for nothing
    let mut forged = p.client();
    forged.cookie = Some("__Host-sapphire-device=AAAA.BBBB".into());
    assert_eq!(
        forged.login("alice", "alice-pw").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // but alice's own browser still gets in, again and again
    for _ in 0..3 {
        let r = own.login("alice", "alice-pw").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    // a device cookie for alice does not help guessing bob's password
    let nosy = own.clone();
    for _ in 0..5 {
        assert_eq!(
            nosy.login("bob", "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        nosy.login("bob", "bob-pw").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // and a known browser that guesses wrong is limited on its own
    for _ in 0..5 {
        assert_eq!(
            own.login("alice", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        own.login("alice", "alice-pw").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}
