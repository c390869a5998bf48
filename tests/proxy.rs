//! sapphire-proxy end to end: the real binary over real TLS on loopback,
//! with the echo fixture (or nothing) behind it.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::StatusCode;
use support::*;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn login_sets_a_strict_host_cookie_and_session_answers() {
    let p = Proxy::start(ProxyOptions::default());
    let c = p.client();
    let r = c.login("alice", "alice-pw").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["username"], "alice");
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-"), "{cookie}");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.split("; ").any(|f| f == flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");

    assert_eq!(
        c.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let c = c.signed_in("alice", "alice-pw").await;
    let s = c.request("GET", "/api/session", None, &[]).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.json()["username"], "alice");

    // logout ends this session for good, even if the cookie is replayed
    let out = c.request("POST", "/api/logout", Some("{}"), &[]).await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        c.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn wrong_password_unknown_and_disabled_users_look_the_same() {
    let p = Proxy::start(ProxyOptions::default());
    let out = ctl(&p.accounts(), &["user", "disable", "bob"], None);
    assert!(out.status.success());
    let c = p.client();
    let known = c.login("alice", "nope").await;
    let unknown = c.login("mallory", "nope").await;
    let disabled = c.login("bob", "bob-pw").await;
    let invalid = c.login("../etc/passwd", "nope").await;
    for r in [&known, &unknown, &disabled, &invalid] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body, known.body);
        assert!(r.headers.get("set-cookie").is_none());
    }
    assert_eq!(known.json()["error"]["code"], "bad_credentials");
}

#[tokio::test]
async fn unknown_users_cost_the_same_time_as_known_ones() {
    let p = Proxy::start(ProxyOptions::default());
    let c = p.client();
    // Warm up (first dummy hash, TLS).
    c.login("zed", "x").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    // Alternate, with distinct names so no per-user limit is reached; stay
    // under the per-address burst.
    for i in 0..7 {
        let t = Instant::now();
        c.login("alice", &format!("wrong{i}")).await;
        known.push(t.elapsed());
        let t = Instant::now();
        c.login(&format!("ghost{i}"), "wrong").await;
        unknown.push(t.elapsed());
    }
    known.sort();
    unknown.sort();
    let ratio = known[3].as_secs_f64() / unknown[3].as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "median known {:?} vs unknown {:?}",
        known[3],
        unknown[3]
    );
    // And both actually hash (argon2id m=19456 takes milliseconds, a map
    // lookup does not).
    assert!(unknown[3] > Duration::from_millis(5), "{:?}", unknown[3]);
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_per_user_and_per_address() {
    let p = Proxy::start(ProxyOptions::default());
    let c = p.client();
    // The address bucket refills from the first charge on.
    let t = Instant::now();
    // A burst of 5 for alice's name, then a token every 20 s: on a slow
    // machine (argon2 in a debug build) a few more may pass first.
    let mut alice_failures = 0;
    let limited = loop {
        let r = c.login("alice", "bad").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        alice_failures += 1;
        assert!(alice_failures <= 10, "alice never limited");
    };
    let refilled = (t.elapsed().as_secs() / 20) as usize;
    assert!(
        (5..=5 + refilled).contains(&alice_failures),
        "{alice_failures} failures before the limit, {refilled} tokens refilled"
    );
    assert_eq!(limited.json()["error"]["code"], "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=21).contains(&retry), "{retry}");
    // Now the right password from this unknown browser is refused too,
    // before it is checked (as long as no token came back meanwhile).
    let asked = Instant::now();
    let right = c.login("alice", "alice-pw").await;
    if asked.elapsed() < Duration::from_secs(retry) {
        assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    }
    // another user is not affected by alice's limit
    assert_eq!(c.login("bob", "bob-pw").await.status, StatusCode::OK);
    // the address limit: many names from one address. A token comes back
    // every 6 s, so on a slow machine it may take a few more than the burst.
    let mut failures = 0;
    let limited = loop {
        let r = c.login(&format!("nobody{failures}"), "bad").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        failures += 1;
        assert!(failures <= 80, "never limited after {failures} failures");
    };
    // 20 in the burst (alice's attempts count too) plus what refilled
    // meanwhile
    let refilled = (t.elapsed().as_secs() / 6) as usize + 1;
    let charged = failures + alice_failures;
    assert!(
        charged >= 20 && charged <= 20 + refilled,
        "{failures} + {alice_failures}"
    );
    assert_eq!(limited.json()["error"]["code"], "rate_limited");
    assert_eq!(
        c.login("bob", "bob-pw").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn sessions_survive_a_restart_and_die_with_password_change_or_disable() {
    let mut p = Proxy::start(ProxyOptions::default());
    let alice = p.client().signed_in("alice", "alice-pw").await;
    let bob = p.client().signed_in("bob", "bob-pw").await;
    let (status, _) = p.stop();
    assert!(status.success());
    p.spawn();
    let (alice, bob) = (alice.at(p.port), bob.at(p.port));
    assert_eq!(
        alice.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::OK
    );

    let out = ctl(
        &p.accounts(),
        &["user", "passwd", "alice", "--password-stdin"],
        Some("new-pw\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        alice.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        p.client().login("alice", "alice-pw").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        p.client().login("alice", "new-pw").await.status,
        StatusCode::OK
    );

    assert!(ctl(&p.accounts(), &["user", "disable", "bob"], None)
        .status
        .success());
    assert_eq!(
        bob.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(bob.websocket(Some(&bob.origin())).await.is_err());
    assert!(ctl(&p.accounts(), &["user", "enable", "bob"], None)
        .status
        .success());
    // re-enabling does not bring the old sessions back (#11): bob signs in again
    assert_eq!(
        bob.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let bob = p.client().signed_in("bob", "bob-pw").await;
    assert_eq!(
        bob.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::OK
    );
    assert!(ctl(&p.accounts(), &["user", "del", "bob"], None)
        .status
        .success());
    assert_eq!(
        bob.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn websocket_needs_a_session_and_our_own_origin() {
    let p = Proxy::start(ProxyOptions::default());
    let anon = p.client();
    assert_eq!(
        ws_status(anon.websocket(Some(&anon.origin())).await.unwrap_err()),
        StatusCode::UNAUTHORIZED
    );
    let c = p.client().signed_in("alice", "alice-pw").await;
    for bad in [
        Some("https://evil.example"),
        Some("http://127.0.0.1"),
        None,
        Some("null"),
    ] {
        let err = c.websocket(bad).await.unwrap_err();
        assert_eq!(ws_status(err), StatusCode::FORBIDDEN, "{bad:?}");
    }
    let mut ws = c.websocket(Some(&c.origin())).await.expect("own origin");
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));
}

#[tokio::test]
async fn relays_text_and_binary_both_ways_up_to_one_mebibyte() {
    let p = Proxy::start(ProxyOptions::default());
    let c = p.client().signed_in("alice", "alice-pw").await;
    let mut ws = c.websocket(Some(&c.origin())).await.unwrap();
    for size in [0usize, 1, 125, 126, 65_535, 65_536, 200_000, 1 << 20] {
        let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text(text),
            "text {size}"
        );
        let bin: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        ws.send(Message::binary(bin.clone())).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(bin),
            "binary {size}"
        );
    }
    // two clients of one user, and another user, at once
    let mut ws2 = c.websocket(Some(&c.origin())).await.unwrap();
    let b = p.client().signed_in("bob", "bob-pw").await;
    let mut wsb = b.websocket(Some(&b.origin())).await.unwrap();
    ws2.send(Message::text("pid")).await.unwrap();
    wsb.send(Message::text("pid")).await.unwrap();
    let pa = ws2.next().await.unwrap().unwrap().into_text().unwrap();
    let pb = wsb.next().await.unwrap().unwrap().into_text().unwrap();
    assert_ne!(pa, pb, "each user has their own backend");
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn backend_unreachable_gives_503() {
    let p = Proxy::start(ProxyOptions {
        launcher: "systemd",
        ..ProxyOptions::default()
    });
    let c = p.client().signed_in("alice", "alice-pw").await;
    let err = c.websocket(Some(&c.origin())).await.unwrap_err();
    assert_eq!(ws_status(err), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn spawn_launcher_restarts_a_killed_backend() {
    let p = Proxy::start(ProxyOptions::default());
    let c = p.client().signed_in("alice", "alice-pw").await;
    let mut ws = c.websocket(Some(&c.origin())).await.unwrap();
    let first = backend_pid(&mut ws).await;
    unsafe { libc::kill(first, libc::SIGKILL) };
    // the relay ends with the backend
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap();
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    // the supervisor brings a new one up without any request
    let pid_file = p.state().join("backends/alice/pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        if now != first && std::path::Path::new(&format!("/proc/{now}")).exists() {
            break;
        }
        assert!(Instant::now() < deadline, "backend not restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ws = c.websocket(Some(&c.origin())).await.unwrap();
    let second = backend_pid(&mut ws).await;
    assert_ne!(first, second);
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_stops_backends() {
    let mut p = Proxy::start(ProxyOptions::default());
    let c = p.client().signed_in("alice", "alice-pw").await;
    let mut ws = c.websocket(Some(&c.origin())).await.unwrap();
    let backend = backend_pid(&mut ws).await;
    p.signal(libc::SIGTERM);
    match tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    let t = Instant::now();
    let status = p.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(t.elapsed() < Duration::from_secs(8));
    assert!(
        !std::path::Path::new(&format!("/proc/{backend}")).exists() || {
            // a zombie is gone once reaped by its parent, which exited
            std::fs::read_to_string(format!("/proc/{backend}/status"))
                .map_or(true, |s| s.contains("State:\tZ"))
        }
    );
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let cert_dir = tempfile::tempdir().unwrap();
    let (crt, key) = (cert_dir.path().join("a.crt"), cert_dir.path().join("a.key"));
    sapphire::tls::ensure_self_signed(&crt, &key, &["localhost".into()]).unwrap();
    let p = Proxy::start(ProxyOptions {
        extra_args: vec![
            "--tls-cert".into(),
            crt.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ],
        ..ProxyOptions::default()
    });
    let old = Client::new(p.port, &crt)
        .signed_in("alice", "alice-pw")
        .await;
    let mut ws = old.websocket(Some(&old.origin())).await.unwrap();
    // a new pair under the same names
    let (crt2, key2) = (cert_dir.path().join("b.crt"), cert_dir.path().join("b.key"));
    sapphire::tls::ensure_self_signed(&crt2, &key2, &["localhost".into()]).unwrap();
    std::fs::copy(&crt2, &crt).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    p.signal(libc::SIGHUP);
    let new = Client::new(p.port, &crt2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while new.tls().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "new certificate not served after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // clients that trust only the old certificate are now refused
    assert!(old.tls().await.is_err(), "old certificate still served");
    assert!(Client::new(p.port, &crt2).tls().await.is_ok());
    // the open WebSocket still works
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
    // the session signed before the reload is still good
    let mut again = new.clone();
    again.cookie = old.cookie.clone();
    assert_eq!(
        again.request("GET", "/api/session", None, &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn web_client_is_served_with_strict_headers() {
    let p = Proxy::start(ProxyOptions::default());
    let c = p.client();
    let r = c.request("GET", "/", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert!(std::str::from_utf8(&r.body)
        .unwrap()
        .contains("<form id=\"login\""));
    let js = c.request("GET", "/app.js", None, &[]).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(
        c.request("GET", "/nope", None, &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.request("GET", "/api/login", None, &[]).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn bad_requests_get_clear_answers() {
    let p = Proxy::start(ProxyOptions::default());
    let c = p.client();
    let json = c
        .request("POST", "/api/login", Some("{not json"), &[])
        .await;
    assert_eq!(json.status, StatusCode::BAD_REQUEST);
    assert_eq!(json.json()["error"]["code"], "bad_request");
    let missing = c
        .request("POST", "/api/login", Some(r#"{"username":"alice"}"#), &[])
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let big = format!(
        r#"{{"username":"alice","password":"{}"}}"#,
        "x".repeat(20_000)
    );
    assert_eq!(
        c.request("POST", "/api/login", Some(&big), &[])
            .await
            .status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    for name in [
        "../x",
        "a.service",
        &"a".repeat(300),
        "a\u{0}b",
        "Alice",
        "",
    ] {
        let r = c.login(name, "whatever").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name:?}");
    }
    // not a WebSocket request on /ws
    let c2 = p.client().signed_in("bob", "bob-pw").await;
    assert_eq!(
        c2.request("GET", "/ws", None, &[]).await.status,
        StatusCode::BAD_REQUEST
    );

    // malformed HTTP over TLS
    let port = p.port;
    let cert = p.cert();
    let raw = |bytes: Vec<u8>| {
        let cert = cert.clone();
        async move {
            let c = Client::new(port, &cert);
            let mut s = c.tls().await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            s.write_all(&bytes).await.unwrap();
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    let garbage = raw(b"\x01\x02 nonsense\r\n\r\n".to_vec()).await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");
    let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..400 {
        huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(100)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let answer = raw(huge).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");

    // TLS garbage: plain HTTP and random bytes on the TLS port
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0][..],
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(junk).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    }
    // still serving
    assert_eq!(c.login("alice", "alice-pw").await.status, StatusCode::OK);
}

#[tokio::test]
async fn slow_clients_time_out_and_connections_are_capped() {
    let p = Proxy::start(ProxyOptions {
        config_toml: "header_timeout_secs = 1\nmax_connections = 3\n".into(),
        ..ProxyOptions::default()
    });
    let c = p.client();
    // slow loris: half a request line, then nothing
    let mut slow = c.tls().await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    slow.write_all(b"GET / HT").await.unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "slow client kept for {:?}",
        t.elapsed()
    );
    // a TCP client that never starts TLS is dropped too
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let _ = idle.read(&mut [0u8; 16]);
    assert!(t.elapsed() < Duration::from_secs(8));

    // cap: 3 open connections, the 4th gets 503
    let a = c.clone().signed_in("alice", "alice-pw").await;
    // The sign-in connection may take a moment to be counted out.
    let open = || async {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match a.websocket(Some(&a.origin())).await {
                Ok(ws) => return ws,
                Err(e) if Instant::now() < deadline => {
                    assert_eq!(ws_status(e), StatusCode::SERVICE_UNAVAILABLE);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    let _w1 = open().await;
    let _w2 = open().await;
    let _w3 = open().await;
    let r = c.request("GET", "/", None, &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"]["code"], "busy");
    drop((_w1, _w2));
    // Room again once the proxy has seen the two relays close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = c.request("GET", "/", None, &[]).await.status;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "closed relays still counted");
    }
}

#[tokio::test]
async fn socket_activation_uses_the_passed_sockets_tls_and_plain_http() {
    use std::os::unix::io::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("accounts.json");
    add_user(&accounts, "alice", "alice-pw");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fd = listener.as_raw_fd();
    // A second one named `http`, as sapphire-proxy-http.socket passes it.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    let plain_fd = plain.as_raw_fd();
    let mut cmd = std::process::Command::new(PROXY);
    cmd.args(["--accounts", accounts.to_str().unwrap()])
        .args(["--state-dir", dir.path().join("state").to_str().unwrap()])
        .args(["--backend-dir", dir.path().join("run").to_str().unwrap()])
        .args(["--backend-bin", echo_backend().to_str().unwrap()])
        .args(["--launcher", "spawn", "--config", "/dev/null"])
        // would fail if used: the passed socket must win
        .args(["--listen", "192.0.2.1:1"]);
    unsafe {
        cmd.pre_exec(move || {
            // systemd's protocol: fds from 3, LISTEN_PID is the service's
            // pid. Out of the way first, so that neither overwrites the other.
            let high = [
                libc::fcntl(fd, libc::F_DUPFD, 10),
                libc::fcntl(plain_fd, libc::F_DUPFD, 10),
            ];
            for (target, from) in [(3, high[0]), (4, high[1])] {
                if from < 0 || libc::dup2(from, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Set in the child itself (LISTEN_PID must be its own pid); no
            // Command::env above, so exec passes this environment on.
            let pid = format!("{}\0", libc::getpid());
            libc::setenv(c"LISTEN_PID".as_ptr(), pid.as_ptr().cast(), 1);
            libc::setenv(c"LISTEN_FDS".as_ptr(), c"2".as_ptr(), 1);
            libc::setenv(
                c"LISTEN_FDNAMES".as_ptr(),
                c"sapphire-proxy.socket:http".as_ptr(),
                1,
            );
            Ok(())
        });
    }
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    drop((listener, plain));
    // It announces the socket it serves once it accepts on it.
    assert_eq!(listening_port(&mut child, Duration::from_secs(20)), port);
    let c = Client::new(port, &dir.path().join("state/tls.crt"));
    assert_eq!(c.login("alice", "alice-pw").await.status, StatusCode::OK);
    // The one named `http` speaks plain HTTP: a redirect to the TLS port.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", plain_port)).unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 301"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("location: https://localhost:{port}/x\r\n")),
        "{answer}"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn demo_prints_credentials_that_work_and_reuses_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let mut child = std::process::Command::new(PROXY)
            .args(["--demo", "--port", "0"])
            .args(["--state-dir", dir.path().to_str().unwrap()])
            .args(["--backend-bin", echo_backend().to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 256];
        while !text.contains("password: ")
            || !text[text.find("password: ").unwrap()..].contains('\n')
        {
            let n = out.read(&mut buf).unwrap();
            assert!(n > 0, "demo exited early: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        (child, text)
    };
    let line = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_owned()
    };
    let (mut child, text) = run();
    // port 0: the kernel's choice, announced on the listening line too
    let port = line(&text, "listening on https://127.0.0.1:")
        .trim_end_matches('/')
        .parse::<u16>()
        .unwrap();
    assert_eq!(line(&text, "url: "), format!("https://127.0.0.1:{port}/"));
    assert_eq!(line(&text, "user: "), "demo");
    let password = line(&text, "password: ");
    assert!(password.len() >= 16);
    let c = Client::new(port, &dir.path().join("tls.crt"))
        .signed_in("demo", &password)
        .await;
    let mut ws = c.websocket(Some(&c.origin())).await.unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    drop(ws);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());

    let (mut child, text) = run();
    assert_eq!(
        line(&text, "password: "),
        password,
        "second run reuses the state"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// Asks the echo fixture behind `ws` for its process id.
async fn backend_pid(ws: &mut Ws) -> i32 {
    ws.send(Message::text("pid")).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    reply.into_text().unwrap().parse().unwrap()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Waits for the server to close `ws` and returns the close code.
async fn close_code(ws: &mut Ws) -> CloseCode {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn open_websockets_end_with_their_session() {
    let p = Proxy::start(ProxyOptions::default());
    // logout from one tab ends that session's WebSockets, not others'
    let alice = p.client().signed_in("alice", "alice-pw").await;
    let other_device = p.client().signed_in("alice", "alice-pw").await;
    let mut ws = alice.websocket(Some(&alice.origin())).await.unwrap();
    let mut ws_other = other_device
        .websocket(Some(&other_device.origin()))
        .await
        .unwrap();
    let out = alice.request("POST", "/api/logout", Some("{}"), &[]).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(close_code(&mut ws).await, CloseCode::Policy);
    ws_other.send(Message::text("still on")).await.unwrap();
    assert_eq!(
        ws_other.next().await.unwrap().unwrap(),
        Message::text("still on")
    );

    // a password change ends every session of the user, without any request
    let ctl_out = ctl(
        &p.accounts(),
        &["user", "passwd", "alice", "--password-stdin"],
        Some("changed\n"),
    );
    assert!(ctl_out.status.success());
    assert_eq!(close_code(&mut ws_other).await, CloseCode::Policy);

    // so does disabling a user
    let bob = p.client().signed_in("bob", "bob-pw").await;
    let mut ws_bob = bob.websocket(Some(&bob.origin())).await.unwrap();
    assert!(ctl(&p.accounts(), &["user", "disable", "bob"], None)
        .status
        .success());
    assert_eq!(close_code(&mut ws_bob).await, CloseCode::Policy);
    // and the reconnection is refused
    assert_eq!(
        ws_status(bob.websocket(Some(&bob.origin())).await.unwrap_err()),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn concurrent_attempts_cannot_slip_past_the_limit() {
    let p = Proxy::start(ProxyOptions::default());
    let c = p.client();
    // 30 wrong passwords for alice at once: only the burst of 5 gets hashed
    let attempts = (0..30).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.login("alice", "wrong").await.status })
    });
    let mut unauthorized = 0;
    for a in attempts {
        match a.await.unwrap() {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(unauthorized <= 6, "{unauthorized} attempts were checked");
    assert!(unauthorized >= 1);
    // and a success gives its charge back: bob can keep signing in
    for _ in 0..8 {
        assert_eq!(c.login("bob", "bob-pw").await.status, StatusCode::OK);
    }
}

/// Static files (issue #15): precompressed brotli and gzip bodies chosen
/// from `Accept-Encoding` that decode to the files themselves, strong
/// ETags per encoding, `no-cache` with 304 for a current copy, and the
/// security headers on every answer, 304s included.
#[tokio::test]
async fn web_files_are_compressed_and_revalidated() {
    use std::io::Read;
    let p = Proxy::start(ProxyOptions::default());
    let c = p.client();
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    for (path, file) in [
        ("/", "index.html"),
        ("/app.js", "app.js"),
        ("/store.js", "store.js"),
        ("/app.css", "app.css"),
    ] {
        let original = std::fs::read(web.join(file)).unwrap();
        let plain = c.request("GET", path, None, &[]).await;
        assert_eq!(plain.status, StatusCode::OK, "{path}");
        assert!(plain.headers.get("content-encoding").is_none(), "{path}");
        assert_eq!(&plain.body[..], &original[..], "{path}");
        assert_eq!(plain.headers["cache-control"], "no-cache", "{path}");
        assert_eq!(plain.headers["vary"], "Accept-Encoding", "{path}");
        let etag = plain.headers["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");

        let br = c
            .request(
                "GET",
                path,
                None,
                &[("accept-encoding", "gzip, deflate, br, zstd")],
            )
            .await;
        assert_eq!(br.headers["content-encoding"], "br", "{path}");
        assert!(
            br.body.len() < original.len() / 2,
            "{path}: {}",
            br.body.len()
        );
        let mut decoded = Vec::new();
        brotli::Decompressor::new(&br.body[..], 4096)
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, original, "{path}");
        let br_etag = br.headers["etag"].to_str().unwrap().to_owned();
        assert_ne!(br_etag, etag, "one strong ETag per encoding");

        let gz = c
            .request("GET", path, None, &[("accept-encoding", "gzip")])
            .await;
        assert_eq!(gz.headers["content-encoding"], "gzip", "{path}");
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&gz.body[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, original, "{path}");

        // A reload: the cached copy is current.
        let again = c
            .request(
                "GET",
                path,
                None,
                &[("accept-encoding", "gzip, br"), ("if-none-match", &br_etag)],
            )
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.headers["etag"].to_str().unwrap(), br_etag);
        assert_eq!(again.headers["cache-control"], "no-cache");
        let csp = again.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert_eq!(again.headers["x-content-type-options"], "nosniff");
        // Another version's tag gets the file.
        let stale = c
            .request("GET", path, None, &[("if-none-match", "\"0123\"")])
            .await;
        assert_eq!(stale.status, StatusCode::OK, "{path}");
        assert_eq!(&stale.body[..], &original[..]);
    }
    // PNGs do not compress: sent as they are, whatever the client takes.
    let png = c
        .request(
            "GET",
            "/icon-192.png",
            None,
            &[("accept-encoding", "br, gzip")],
        )
        .await;
    assert_eq!(png.status, StatusCode::OK);
    assert!(png.headers.get("content-encoding").is_none());
    assert_eq!(
        &png.body[..],
        &std::fs::read(web.join("icon-192.png")).unwrap()[..]
    );
}
