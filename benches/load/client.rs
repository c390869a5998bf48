//! Clients: TLS (rustls, TLS 1.3 with one cipher suite so the proxy and
//! nginx negotiate the same), WebSocket (tokio-tungstenite), and a minimal
//! HTTP/1.1 request for the login API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Ws = WebSocketStream<Box<dyn Io>>;

/// Where a WebSocket client connects.
#[derive(Clone)]
pub enum Target {
    /// Straight to a Unix socket (the floor).
    Direct(PathBuf),
    /// `wss://localhost:port/ws` with an optional session cookie.
    Tls { port: u16, cookie: Option<String> },
}

/// TLS 1.3 with TLS13_AES_128_GCM_SHA256 only (X25519 is the first group).
pub fn tls_config(root: CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("bench certificate");
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TCP connection to the proxy on loopback; from an IPv6 `src` it goes
/// to the proxy's address in the benchmark's namespace (`netns`).
pub async fn tcp(port: u16, src: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let (sock, server) = match src {
        Some(IpAddr::V6(_)) => (TcpSocket::new_v6()?, IpAddr::V6(crate::netns::V6_SERVER)),
        _ => (TcpSocket::new_v4()?, IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let s = sock.connect(SocketAddr::new(server, port)).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

pub async fn tls(
    port: u16,
    cfg: &Arc<ClientConfig>,
    src: Option<IpAddr>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let s = tcp(port, src).await?;
    TlsConnector::from(Arc::clone(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), s)
        .await
}

/// Where the next relay client connects from: each its own address in
/// 127.1.0.0/16, as users come from their own addresses (the proxy limits
/// connections and handshakes per address).
fn relay_source() -> IpAddr {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % (250 * 250);
    IpAddr::V4(Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250) as u8 + 1))
}

pub async fn ws_connect(target: &Target, cfg: &Arc<ClientConfig>) -> Result<Ws> {
    let conf = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    match target {
        Target::Direct(path) => {
            let s = UnixStream::connect(path).await?;
            let (ws, _) = tokio_tungstenite::client_async_with_config(
                "ws://localhost/ws",
                Box::new(s) as Box<dyn Io>,
                Some(conf),
            )
            .await?;
            Ok(ws)
        }
        Target::Tls { port, cookie } => {
            let s = tls(*port, cfg, Some(relay_source())).await?;
            let mut req = format!("wss://localhost:{port}/ws").into_client_request()?;
            let h = req.headers_mut();
            h.insert("origin", format!("https://localhost:{port}").parse()?);
            if let Some(c) = cookie {
                h.insert("cookie", c.parse()?);
            }
            let (ws, _) = tokio_tungstenite::client_async_with_config(
                req,
                Box::new(s) as Box<dyn Io>,
                Some(conf),
            )
            .await?;
            Ok(ws)
        }
    }
}

/// Opens `n` WebSockets, at most `parallel` handshakes at a time.
pub async fn connect_many(
    target: &Target,
    cfg: &Arc<ClientConfig>,
    n: usize,
    parallel: usize,
) -> Result<Vec<Ws>> {
    let results: Vec<Result<Ws>> = futures_util::stream::iter(0..n)
        .map(|_| async move {
            let mut last = None;
            for _ in 0..3 {
                match tokio::time::timeout(Duration::from_secs(20), ws_connect(target, cfg)).await {
                    Ok(Ok(ws)) => return Ok(ws),
                    Ok(Err(e)) => last = Some(e),
                    Err(_) => last = Some(anyhow!("timed out")),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(last.unwrap())
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut out = Vec::with_capacity(n);
    for r in results {
        out.push(r.context("opening a WebSocket")?);
    }
    Ok(out)
}

/// One round trip of a binary message; errors if anything else comes back.
pub async fn echo_once(ws: &mut Ws, payload: &[u8]) -> Result<()> {
    ws.send(Message::Binary(payload.to_vec())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.len() == payload.len() => return Ok(()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => bail!("unexpected message: {:?}", m.len()),
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed"),
        }
    }
}

/// The answer to a small HTTP/1.1 request over TLS.
pub struct HttpAnswer {
    pub status: u16,
    /// The first cookie set (the session's), `name=value`.
    pub set_cookie: Option<String>,
    /// The device cookie set, `name=value`, if any.
    pub device_cookie: Option<String>,
}

/// `POST /api/login` on a new TLS connection (from `src` if given).
pub async fn login(
    port: u16,
    cfg: &Arc<ClientConfig>,
    src: Option<IpAddr>,
    user: &str,
    password: &str,
) -> Result<HttpAnswer> {
    login_with(port, cfg, src, user, password, None).await
}

/// Like [`login`], sending `cookie` (e.g. a device cookie: a browser that
/// signed in before).
pub async fn login_with(
    port: u16,
    cfg: &Arc<ClientConfig>,
    src: Option<IpAddr>,
    user: &str,
    password: &str,
    cookie: Option<&str>,
) -> Result<HttpAnswer> {
    let body = json!({"username": user, "password": password}).to_string();
    let mut s = tls(port, cfg, src).await?;
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /api/login HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: https://localhost:{port}\r\n\
         {cookie}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP answer"))?;
    let mut cookies = text.lines().filter_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("set-cookie")
            .then(|| v.trim().split(';').next().unwrap_or("").to_string())
    });
    let set_cookie = cookies.next();
    let device_cookie = cookies.find(|c| c.starts_with("__Host-sapphire-device="));
    Ok(HttpAnswer {
        status,
        set_cookie,
        device_cookie,
    })
}

/// A client of the Sapphire protocol (JSON requests with ids, events).
pub struct Chat {
    pub ws: Ws,
    next_id: u64,
    pub events: std::collections::VecDeque<Value>,
}

impl Chat {
    pub fn new(ws: Ws) -> Chat {
        Chat {
            ws,
            next_id: 1,
            events: Default::default(),
        }
    }

    async fn frame(&mut self, limit: Duration) -> Result<Value> {
        loop {
            match tokio::time::timeout(limit, self.ws.next()).await {
                Err(_) => bail!("no frame within {limit:?}"),
                Ok(Some(Ok(Message::Text(t)))) => return Ok(serde_json::from_str(&t)?),
                Ok(Some(Ok(Message::Close(c)))) => bail!("closed: {c:?}"),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => return Err(e.into()),
                Ok(None) => bail!("closed"),
            }
        }
    }

    /// Sends a request without waiting; returns its id.
    pub async fn send(&mut self, op: &str, mut params: Value) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        params["id"] = json!(id);
        params["op"] = json!(op);
        self.ws.send(Message::Text(params.to_string())).await?;
        Ok(id)
    }

    pub async fn reply(&mut self, id: u64, limit: Duration) -> Result<Value> {
        loop {
            let v = self.frame(limit).await?;
            if v.get("re") == Some(&json!(id)) {
                if v["ok"] != json!(true) {
                    bail!("request {id} failed: {v}");
                }
                return Ok(v);
            }
            if v.get("re").is_none() {
                self.events.push_back(v);
            }
        }
    }

    pub async fn request(&mut self, op: &str, params: Value, limit: Duration) -> Result<Value> {
        let id = self.send(op, params).await?;
        self.reply(id, limit).await
    }

    pub async fn event(&mut self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        if let Some(i) = self.events.iter().position(&pred) {
            return Ok(self.events.remove(i).unwrap());
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self.frame(left).await?;
            if v.get("re").is_some() {
                continue;
            }
            if pred(&v) {
                return Ok(v);
            }
            self.events.push_back(v);
        }
    }
}
