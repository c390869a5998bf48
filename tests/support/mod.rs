//! Shared harness for the proxy's integration tests: starts the real
//! binaries on loopback, speaks real TLS, HTTP/1.1 and WebSocket to them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

pub const PROXY: &str = env!("CARGO_BIN_EXE_sapphire-proxy");
pub const CTL: &str = env!("CARGO_BIN_EXE_sapphire-ctl");

/// The echo fixture (`examples/echo_backend.rs`), built by `cargo test`.
pub fn echo_backend() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/<test> -> target/debug/examples/echo_backend
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/echo_backend");
    assert!(
        p.exists(),
        "{} missing: plain `cargo test` builds it",
        p.display()
    );
    p
}

/// Reads `child`'s stdout until the proxy's `listening on https://ADDR/`
/// line and returns ADDR's port; the rest of its stdout is passed on to
/// ours (so the proxy never blocks on a full pipe). Panics if the proxy
/// exits first or takes longer than `limit`.
pub fn listening_port(child: &mut Child, limit: Duration) -> u16 {
    let out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            if let Some(addr) = line.strip_prefix("listening on https://") {
                let addr: std::net::SocketAddr = addr.trim_end_matches('/').parse().unwrap();
                let _ = tx.send(addr.port());
            }
        }
    });
    match rx.recv_timeout(limit) {
        Ok(port) => port,
        Err(e) => {
            let status = child.try_wait().ok().flatten();
            panic!("proxy did not say where it listens ({e}); exit status {status:?}")
        }
    }
}

/// Runs sapphire-ctl with `args` against `accounts`, feeding `stdin`.
pub fn ctl(accounts: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(CTL)
        .arg("--accounts")
        .arg(accounts)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        // ctl may refuse before reading its input
        let _ = input.write_all(s.as_bytes());
    }
    drop(input);
    child.wait_with_output().unwrap()
}

pub fn add_user(accounts: &Path, name: &str, password: &str) {
    let out = ctl(
        accounts,
        &["user", "add", name, "--password-stdin"],
        Some(&format!("{password}\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running proxy with its own state in a temp dir.
pub struct Proxy {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub child: Child,
    pub extra_args: Vec<String>,
}

pub struct ProxyOptions {
    /// `--launcher`: "spawn" (with the echo fixture) or "systemd".
    pub launcher: &'static str,
    pub config_toml: String,
    pub extra_args: Vec<String>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            launcher: "spawn",
            config_toml: String::new(),
            extra_args: Vec::new(),
        }
    }
}

impl Proxy {
    pub fn accounts(&self) -> PathBuf {
        self.dir.path().join("accounts.json")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn backend_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }
    pub fn cert(&self) -> PathBuf {
        self.state().join("tls.crt")
    }

    /// Starts a proxy with users `alice` (password `alice-pw`) and `bob`.
    pub fn start(opts: ProxyOptions) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let accounts = dir.path().join("accounts.json");
        add_user(&accounts, "alice", "alice-pw");
        add_user(&accounts, "bob", "bob-pw");
        let config = dir.path().join("proxy.toml");
        std::fs::write(&config, &opts.config_toml).unwrap();
        let mut extra = vec![
            "--config".to_string(),
            config.display().to_string(),
            "--accounts".into(),
            accounts.display().to_string(),
            "--state-dir".into(),
            dir.path().join("state").display().to_string(),
            "--backend-dir".into(),
            dir.path().join("run").display().to_string(),
            "--launcher".into(),
            opts.launcher.into(),
            "--backend-bin".into(),
            echo_backend().display().to_string(),
        ];
        extra.extend(opts.extra_args);
        let mut p = Proxy {
            dir,
            port: 0,
            child: Command::new("true").spawn().unwrap(),
            extra_args: extra,
        };
        p.spawn();
        p
    }

    /// (Re)starts the proxy process on the same state. It listens on port 0
    /// and the port it bound is read from its stdout (a restart gets a new
    /// port: move clients over with [`Client::at`]).
    pub fn spawn(&mut self) {
        let _ = self.child.wait();
        self.child = Command::new(PROXY)
            .args(["--listen", "127.0.0.1:0"])
            .args(&self.extra_args)
            .env("RUST_LOG", "sapphire=debug")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        self.port = listening_port(&mut self.child, Duration::from_secs(20));
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM and wait; returns the exit status and how long it took.
    pub fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        let t = Instant::now();
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        (status, t.elapsed())
    }

    pub fn client(&self) -> Client {
        Client::new(self.port, &self.cert())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A TLS client that trusts one certificate, as a browser would after the
/// user accepted it.
#[derive(Clone)]
pub struct Client {
    pub port: u16,
    connector: TlsConnector,
    pub cookie: Option<String>,
    /// Local address to connect from (any of 127.0.0.0/8), if not the default.
    pub source: Option<std::net::Ipv4Addr>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub fn connector_for(cert: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

impl Client {
    pub fn new(port: u16, cert: &Path) -> Client {
        Client {
            port,
            connector: connector_for(cert),
            cookie: None,
            source: None,
        }
    }

    /// The same client, connecting from `source` (e.g. 127.0.0.2: another
    /// client address for the proxy).
    pub fn from(mut self, source: &str) -> Client {
        self.source = Some(source.parse().unwrap());
        self
    }

    /// A TCP connection to the proxy from our source address.
    pub async fn tcp(&self) -> std::io::Result<TcpStream> {
        let to = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        match self.source {
            None => TcpStream::connect(to).await,
            Some(src) => {
                let s = tokio::net::TcpSocket::new_v4()?;
                s.bind((src, 0).into())?;
                s.connect(to).await
            }
        }
    }

    /// The same client (certificate, cookie) for a proxy on `port`.
    pub fn at(mut self, port: u16) -> Client {
        self.port = port;
        self
    }

    /// The page's origin, as a browser that opened `https://localhost:PORT/`
    /// has it (the name the client checks the certificate against).
    pub fn origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub async fn tls(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = self.tcp().await?;
        let name = ServerName::try_from("localhost").unwrap();
        self.connector.connect(name, tcp).await
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let stream = self.tls().await.expect("TLS connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder().method(method).uri(path);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        // What the web client's fetch() sends: JSON, and (a browser adds it
        // to every POST) its page's Origin; a caller's own value wins.
        let given = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        if !given("host") {
            req = req.header("host", format!("localhost:{}", self.port));
        }
        if body.is_some() && !given("content-type") {
            req = req.header("content-type", "application/json");
        }
        if method == "POST" && !given("origin") {
            req = req.header("origin", self.origin());
        }
        // An empty value means "do not send this header at all".
        for (k, v) in headers.iter().filter(|(_, v)| !v.is_empty()) {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn login(&self, user: &str, password: &str) -> Reply {
        let body = serde_json::json!({ "username": user, "password": password }).to_string();
        self.request("POST", "/api/login", Some(&body), &[]).await
    }

    /// Signs in and keeps the session cookie.
    pub async fn signed_in(mut self, user: &str, password: &str) -> Client {
        let r = self.login(user, password).await;
        assert_eq!(r.status, StatusCode::OK, "login {user}: {:?}", r.body);
        // Every cookie set (the session's and the device's), as a browser
        // keeps them.
        let cookies: Vec<&str> = r
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap())
            .collect();
        self.cookie = Some(cookies.join("; "));
        self
    }

    /// Opens /ws with our cookie and the given Origin (None: none sent).
    pub async fn websocket(
        &self,
        origin: Option<&str>,
    ) -> Result<WebSocketStream<TlsStream<TcpStream>>, tokio_tungstenite::tungstenite::Error> {
        let mut req = format!("wss://localhost:{}/ws", self.port)
            .into_client_request()
            .unwrap();
        if let Some(c) = &self.cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        let stream = self.tls().await?;
        tokio_tungstenite::client_async(req, stream)
            .await
            .map(|(ws, _)| ws)
    }
}

/// Status of a refused WebSocket handshake.
pub fn ws_status(err: tokio_tungstenite::tungstenite::Error) -> StatusCode {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => resp.status(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}
