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
    // guessing is slowed down: strangers are limited, even with the right
    // password
    guess_until_limited(&attacker, "alice", "guess", "alice-pw").await;
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
    guess_until_limited(&nosy, "bob", "guess", "bob-pw").await;
    // and a known browser that guesses wrong is limited on its own
    guess_until_limited(&own, "alice", "wrong", "alice-pw").await;
}

/// `client` signs in as `user` with `wrong` five times, refused each time
/// (401); then even the `right` password is refused as too many (429).
async fn guess_until_limited(client: &Client, user: &str, wrong: &str, right: &str) {
    for _ in 0..5 {
        let r = client.login(user, wrong).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = client.login(user, right).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Reads until the server closes; the bytes read and how long it took.
async fn read_until_closed<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    limit: std::time::Duration,
) -> (Vec<u8>, std::time::Duration) {
    use tokio::io::AsyncReadExt;
    let t = std::time::Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), r.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, t.elapsed()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "connection still open after {limit:?}: {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

#[tokio::test]
async fn slow_bodies_and_idle_keep_alive_connections_are_cut() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    let p = Proxy::start(ProxyOptions {
        config_toml: "header_timeout_secs = 2\nrequest_timeout_secs = 2\n".into(),
        ..ProxyOptions::default()
    });
    let c = p.client();
    // a body that trickles in, one byte every 300 ms, would take 30 s
    let s = c.tls().await.unwrap();
    let (mut r, mut w) = tokio::io::split(s);
    let head = format!(
        "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:{0}\r\nOrigin: https://127.0.0.1:{0}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        p.port
    );
    w.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if w.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let (answer, took) = read_until_closed(&mut r, Duration::from_secs(10)).await;
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");

    // a keep-alive connection that goes quiet after one request
    let mut s = c.tls().await.unwrap();
    let req = format!(
        "GET /api/session HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        p.port
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let (answer, took) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    assert!(
        took < Duration::from_secs(6),
        "idle connection kept {took:?}"
    );
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    use tokio::io::AsyncWriteExt;
    let p = Proxy::start(ProxyOptions {
        config_toml: "max_connections = 6\nmax_connections_per_address = 3\n".into(),
        ..ProxyOptions::default()
    });
    let attacker = p.client().from("127.0.0.3");
    // slow loris from one address: TLS, then half a request line, repeatedly
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        match attacker.tls().await {
            Ok(mut s) => {
                if s.write_all(b"GET / HT").await.is_ok() {
                    held.push(s);
                }
            }
            Err(_) => refused += 1,
        }
    }
    // the accepted ones stay open (within the header deadline)...
    assert!(held.len() <= 3, "{} held", held.len());
    assert!(refused >= 5, "{refused} refused");
    // ...but everyone else is served
    let other = p.client().from("127.0.0.4");
    for _ in 0..3 {
        assert_eq!(
            other.request("GET", "/", None, &[]).await.status,
            StatusCode::OK
        );
    }
    drop(held);
}

#[tokio::test]
async fn new_handshakes_per_address_are_rate_limited() {
    let p = Proxy::start(ProxyOptions {
        config_toml: "handshake_burst_per_address = 5\nhandshakes_per_second_per_address = 1\n"
            .into(),
        ..ProxyOptions::default()
    });
    let flood = p.client().from("127.0.0.5");
    let mut ok = 0;
    for _ in 0..20 {
        if flood.tls().await.is_ok() {
            ok += 1;
        }
    }
    // the burst, and what refilled meanwhile (one a second)
    assert!((5..=8).contains(&ok), "{ok} handshakes from one address");
    // another address is not affected
    let other = p.client().from("127.0.0.6");
    for _ in 0..5 {
        assert!(other.tls().await.is_ok());
    }
}

#[tokio::test]
async fn accept_errors_are_logged_once_in_a_while() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("accounts.json");
    add_user(&accounts, "alice", "alice-pw");
    let config = dir.path().join("proxy.toml");
    // connections that never start TLS stay for a minute
    std::fs::write(&config, "header_timeout_secs = 60\n").unwrap();
    let mut cmd = std::process::Command::new(PROXY);
    cmd.args(["--listen", "127.0.0.1:0", "--launcher", "systemd"])
        .args(["--config", config.to_str().unwrap()])
        .args(["--accounts", accounts.to_str().unwrap()])
        .args(["--state-dir", dir.path().join("state").to_str().unwrap()])
        .args(["--backend-dir", dir.path().join("run").to_str().unwrap()])
        .env("RUST_LOG", "sapphire=warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, warnings) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("accept failed") {
                let _ = tx.send((Instant::now(), line));
            }
        }
    });
    let port = listening_port(&mut child, Duration::from_secs(20));
    // more connections than the proxy has file descriptors: the rest wait
    // in the listen backlog, and every accept fails with EMFILE
    let _held: Vec<_> = (0..80)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let (first, line) = warnings.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(line.contains("0 more failures"), "{line}");
    let (second, line) = warnings.recv_timeout(Duration::from_secs(20)).unwrap();
    // once in ten seconds, with the count of what was not logged
    assert!(
        second - first >= Duration::from_secs(9),
        "{:?} apart",
        second - first
    );
    let more: u64 = line
        .rsplit_once(" more failures")
        .and_then(|(head, _)| head.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"));
    assert!(more >= 10, "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn without_a_configured_origin_only_hosts_the_certificate_names_are_trusted() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let p = Proxy::start(ProxyOptions::default());
    let alice = p.client().signed_in("alice", "alice-pw").await;
    // A page on a host the certificate does not name (DNS rebinding: the
    // attacker's name pointed at the proxy) sends its own Host and Origin.
    let evil = [("host", "evil.example"), ("origin", "https://evil.example")];
    let r = p
        .client()
        .request("POST", "/api/login", Some(LOGIN), &evil)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"]["code"], "cross_site");
    let r = alice
        .request("POST", "/api/logout", Some("{}"), &evil)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut req = "wss://evil.example/ws".into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert("cookie", alice.cookie.as_deref().unwrap().parse().unwrap());
    h.insert("origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::client_async(req, alice.tls().await.unwrap())
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(ws_status(refused), StatusCode::FORBIDDEN);
    // the names it does hold work, by name or address
    for host in ["localhost", "127.0.0.1"] {
        let hp = format!("{host}:{}", p.port);
        let origin = format!("https://{hp}");
        let r = p
            .client()
            .request(
                "POST",
                "/api/login",
                Some(LOGIN),
                &[("host", &hp), ("origin", &origin)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{host}");
    }
    let mut ws = alice.websocket(Some(&alice.origin())).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap();
    assert!(ws.next().await.unwrap().is_ok());
}

#[tokio::test]
async fn a_flood_from_many_addresses_leaves_known_browsers_signing_in() {
    use std::time::{Duration, Instant};
    let p = Proxy::start(ProxyOptions::default());
    // alice's browser has signed in before; one quiet sign-in is the yardstick
    let own = p.client().signed_in("alice", "alice-pw").await;
    let t = Instant::now();
    assert_eq!(own.login("alice", "alice-pw").await.status, StatusCode::OK);
    let quiet = t.elapsed();
    // 40 wrong passwords at once, each from its own address, for names that
    // are not limited yet: every one would cost a hash
    let flood: Vec<_> = (0..40)
        .map(|i| {
            let c = p.client().from(&format!("127.0.3.{}", i + 1));
            tokio::spawn(async move {
                let r = c.login(&format!("guess{i}"), "wrong").await;
                (r.status, r.headers.get("retry-after").cloned())
            })
        })
        .collect();
    let t = Instant::now();
    let r = own.login("alice", "alice-pw").await;
    let during = t.elapsed();
    assert_eq!(r.status, StatusCode::OK);
    let mut busy = 0;
    for f in flood {
        match f.await.unwrap() {
            (StatusCode::UNAUTHORIZED, _) => {}
            (StatusCode::SERVICE_UNAVAILABLE, retry) => {
                assert!(retry.is_some());
                busy += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    // what could not be hashed soon was answered at once, not queued
    assert!(busy > 0, "every flood attempt was queued for a hash");
    // and the known browser went ahead of the queue: a few hashes' time,
    // not forty
    assert!(
        during < quiet * 8 + Duration::from_millis(500),
        "sign-in took {during:?} during the flood, {quiet:?} quiet"
    );
}
