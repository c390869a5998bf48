//! The proxy's process-level loop: listening sockets (systemd's or its own),
//! the accept loop, one task per connection (TLS, then HTTP; or plain HTTP
//! on the optional port-80 listener, see `plain`), signals (SIGHUP reloads,
//! SIGTERM/SIGINT stop) and sd_notify.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;
use tracing::{debug, info, warn};

use super::admission::Slot;
use super::config::Config;
use super::edge::Edge;
use super::error::{io_err, ProxyError};
use super::http;
use super::plain;
use super::relay::frames::GOING_AWAY;
use super::shutdown::stopped;
use super::state::{CountGuard, Shared};

/// Connections beyond `max_connections` still get a 503 answer, up to this
/// many more; past that they are closed at once.
const OVERFLOW_ANSWERED: usize = 1024;
/// Accept errors are logged at most once per this.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);
/// Connections refused by the per-address limits are logged at most once
/// per this.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A proxy ready to serve: sockets bound, certificate and accounts loaded.
pub struct Proxy {
    shared: Arc<Shared>,
    /// Non-blocking, registered with the edge runtime when `run` starts it.
    listeners: Vec<std::net::TcpListener>,
    /// Plain HTTP (port 80): ACME http-01 and redirects to https.
    http_listeners: Vec<std::net::TcpListener>,
}

/// What an accept loop serves.
#[derive(Clone, Copy)]
enum Serve {
    Tls,
    /// Plain HTTP, redirecting to https on this port.
    Plain {
        https_port: u16,
    },
}

impl Proxy {
    pub fn new(config: Config) -> Result<Proxy, ProxyError> {
        let (listeners, http_listeners) = listeners(&config)?;
        for l in listeners.iter().chain(&http_listeners) {
            l.set_nonblocking(true)
                .map_err(io_err("preparing the listening sockets"))?;
        }
        if config
            .acme
            .as_ref()
            .is_some_and(|a| a.challenge == crate::acme::Challenge::Http01)
            && http_listeners.is_empty()
        {
            warn!(
                "acme.challenge is \"http-01\" but the proxy has no plain HTTP listener: \
                 enable sapphire-proxy-http.socket (or set listen_http), or validations will fail"
            );
        }
        let shared = Arc::new(Shared::open(config)?);
        Ok(Proxy {
            shared,
            listeners,
            http_listeners,
        })
    }

    /// The addresses actually bound (port 0 in `listen` is resolved here).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The plain HTTP addresses bound (`listen_http`).
    pub fn http_addrs(&self) -> Vec<SocketAddr> {
        self.http_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until SIGTERM or SIGINT, then closes WebSockets with 1001,
    /// stops supervised backends and returns. Once the signal handlers are
    /// in place and the listeners accept, it prints one line per listener on
    /// stdout, `listening on https://ADDR/` (the bound address: with port 0
    /// in `listen`, the port the kernel chose; `listening on http://ADDR/`
    /// for a plain HTTP one), then calls `ready` (the demo prints its
    /// credentials there).
    pub async fn run(self, ready: impl FnOnce()) -> Result<(), ProxyError> {
        let shared = self.shared;
        // New connections are served on the edge runtime, relays here.
        let edge = Edge::start().map_err(io_err("starting the edge runtime"))?;
        let mut term = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;
        let mut hup = signal(SignalKind::hangup()).map_err(io_err("SIGHUP handler"))?;
        let mut accept_tasks = Vec::new();
        let mut announce = String::new();
        let https_port = self
            .listeners
            .first()
            .and_then(|l| l.local_addr().ok())
            .map_or(443, |a| a.port());
        let all = self.listeners.into_iter().map(|l| (l, Serve::Tls)).chain(
            self.http_listeners
                .into_iter()
                .map(|l| (l, Serve::Plain { https_port })),
        );
        for (l, serve) in all {
            let addr = l.local_addr().map_err(io_err("local address"))?;
            let scheme = match serve {
                Serve::Tls => "https",
                Serve::Plain { .. } => "http",
            };
            info!("listening on {scheme}://{addr}/");
            announce.push_str(&format!("listening on {scheme}://{addr}/\n"));
            // The listener is the edge runtime's: accepting and refusing a
            // flood's connections is edge work too.
            let handle = edge.handle().clone();
            let s = Arc::clone(&shared);
            accept_tasks.push(edge.handle().spawn(async move {
                match TcpListener::from_std(l) {
                    Ok(l) => accept_loop(s, l, serve, handle).await,
                    Err(e) => warn!("cannot listen on {addr}: {e}"),
                }
            }));
        }
        // Whoever reads this may go away: a closed stdout is no reason to stop.
        let mut out = std::io::stdout();
        let _ = out
            .write_all(announce.as_bytes())
            .and_then(|()| out.flush());
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        ready();
        let mut watchdog_usec = 0;
        let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec);
        let tick = if watchdog {
            Duration::from_micros(watchdog_usec / 2)
        } else {
            Duration::from_secs(5)
        };
        let mut ticker = tokio::time::interval(tick.max(Duration::from_millis(100)));
        let notify = std::env::var_os("NOTIFY_SOCKET").is_some();
        // Notice sapphire-ctl's changes even when no request comes in.
        let mut accounts_tick = tokio::time::interval(Duration::from_secs(1));
        let mut prune_tick = tokio::time::interval(Duration::from_secs(60));
        let mut renew_tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = accounts_tick.tick() => {
                    shared.accounts();
                }
                _ = renew_tick.tick() => {
                    let s = Arc::clone(&shared);
                    tokio::task::spawn_blocking(move || s.renew_generated_certificate());
                }
                _ = prune_tick.tick() => {
                    // Revocations of expired tokens are moot: forget them.
                    if shared.sessions.prune() {
                        let s = Arc::clone(&shared);
                        tokio::task::spawn_blocking(move || {
                            if let Err(e) = s.sessions.persist_revocations() {
                                warn!("could not write the pruned revocation list: {e}");
                            }
                        });
                    }
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    info!("SIGHUP: reloading the certificate and the accounts");
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                    shared.reload();
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
                }
                _ = ticker.tick() => {
                    if notify {
                        let status = shared.status_line();
                        let mut states = vec![sd_notify::NotifyState::Status(&status)];
                        if watchdog {
                            states.push(sd_notify::NotifyState::Watchdog);
                        }
                        let _ = sd_notify::notify(false, &states);
                    }
                }
            }
        }
        info!("shutting down");
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        shared.shutdown.send_replace(true);
        shared.end_all_relays(GOING_AWAY);
        for t in accept_tasks {
            let _ = t.await;
        }
        let drained = async {
            while shared.open_connections() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            warn!(
                "some connections did not close in time: {}",
                shared.status_line()
            );
        }
        shared.launcher.shutdown().await;
        drop(edge);
        info!("stopped");
        Ok(())
    }
}

/// The name (`FileDescriptorName=`) of a socket systemd passes for plain
/// HTTP (sapphire-proxy-http.socket); every other passed socket is TLS.
const PLAIN_FD_NAME: &str = "http";

type Listeners = (Vec<std::net::TcpListener>, Vec<std::net::TcpListener>);

/// The listening sockets, TLS and plain HTTP: systemd's if it passed any,
/// else our own.
fn listeners(config: &Config) -> Result<Listeners, ProxyError> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(String::from).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let (mut tls, mut plain) = (Vec::new(), Vec::new());
    for i in 0..fds.len() {
        match fds.take_tcp_listener(i) {
            Ok(Some(l)) if names.get(i).map(String::as_str) == Some(PLAIN_FD_NAME) => plain.push(l),
            Ok(Some(l)) => tls.push(l),
            Ok(None) => {}
            Err(e) => warn!("ignoring passed socket {i}: {e}"),
        }
    }
    if !tls.is_empty() || !plain.is_empty() {
        info!(
            "using {} socket(s) passed by systemd ({} plain HTTP)",
            tls.len() + plain.len(),
            plain.len()
        );
        return Ok((tls, plain));
    }
    let bind = |addrs: &[SocketAddr], out: &mut Vec<_>| -> Result<(), ProxyError> {
        for addr in addrs {
            let l = std::net::TcpListener::bind(addr)
                .map_err(io_err(format!("listening on {addr}")))?;
            out.push(l);
        }
        Ok(())
    };
    bind(&config.listen, &mut tls)?;
    bind(&config.listen_http, &mut plain)?;
    Ok((tls, plain))
}

/// Accepts and admits (before any TLS work) on the edge runtime, then
/// registers each admitted connection with the relay runtime (whose I/O
/// driver stays responsive under a flood: the connection may become a
/// relay) and serves it on the edge.
async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    serve: Serve,
    edge: tokio::runtime::Handle,
) {
    let mut stop = shared.shutdown.subscribe();
    let mut accept_errors = Throttled::new(ACCEPT_ERROR_LOG_EVERY);
    let mut refusals = Throttled::new(REFUSAL_LOG_EVERY);
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, and
                    // say so once in a while, not ten times a second.
                    if let Some(more) = accept_errors.tick() {
                        warn!("accept failed: {e} ({more} more failures since the last warning)");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Before anything costly: this address's share.
        let slot = match shared.admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                if let Some(more) = refusals.tick() {
                    info!(%peer, "connection refused before TLS: {why:?} ({more} more refusals since the last message)");
                }
                drop(stream);
                continue;
            }
        };
        let open = shared.open_connections();
        if open >= shared.config.max_connections + OVERFLOW_ANSWERED {
            drop(stream);
            continue;
        }
        let over = open >= shared.config.max_connections;
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std().and_then(|s| {
            let _relays = shared.relay_runtime.enter();
            TcpStream::from_std(s)
        }) {
            Ok(s) => s,
            Err(e) => {
                if let Some(more) = accept_errors.tick() {
                    warn!("accepted connection unusable: {e} ({more} more failures since the last warning)");
                }
                continue;
            }
        };
        let s = Arc::clone(&shared);
        match serve {
            Serve::Tls => edge.spawn(serve_connection(s, stream, peer, over, slot)),
            Serve::Plain { https_port } => {
                edge.spawn(plain::serve(s, stream, peer, https_port, slot))
            }
        };
    }
}

/// Lets an event through at most once per period, counting the rest.
struct Throttled {
    every: Duration,
    last: Option<tokio::time::Instant>,
    suppressed: u64,
}

impl Throttled {
    fn new(every: Duration) -> Throttled {
        Throttled {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when this event is to be reported, `n` being how many were
    /// not since the last report.
    fn tick(&mut self) -> Option<u64> {
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    over: bool,
    _slot: Slot,
) {
    let _count = CountGuard::new(&shared.connections);
    let tls = match tokio::time::timeout(shared.config.header_timeout, tls_accept(&shared, stream))
        .await
    {
        Ok(Ok(Some(s))) => s,
        // an ACME validation handshake, finished: nothing to serve
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let svc_shared = Arc::clone(&shared);
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        http::routes::handle(Arc::clone(&svc_shared), peer, over, req)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_timeout)
        .max_buf_size(16 * 1024)
        .keep_alive(!over)
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut stop = shared.shutdown.subscribe();
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { debug!(%peer, "HTTP connection ended: {e}") },
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

/// The TLS handshake with the current certificate; a ClientHello offering
/// ALPN `acme-tls/1` (an ACME CA validating tls-alpn-01) gets the challenge
/// certificate the renewing client left, and nothing else.
async fn tls_accept(
    shared: &Shared,
    stream: TcpStream,
) -> std::io::Result<Option<TlsStream<TcpStream>>> {
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    let hello = start.client_hello();
    let acme_alpn = hello
        .alpn()
        .is_some_and(|mut a| a.any(|p| p == crate::acme::ACME_TLS_ALPN));
    if let (true, Some(acme)) = (acme_alpn, &shared.config.acme) {
        let name = hello.server_name().unwrap_or_default().to_string();
        let Some(config) = challenge_config(&acme.challenge_dir, &name) else {
            debug!(name, "acme-tls/1 handshake without a pending challenge");
            return Ok(None);
        };
        info!(name, "answering a tls-alpn-01 validation");
        let mut s = start.into_stream(config).await?;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut s).await;
        return Ok(None);
    }
    Ok(Some(start.into_stream(shared.tls_config()).await?))
}

fn challenge_config(dir: &std::path::Path, name: &str) -> Option<Arc<rustls::ServerConfig>> {
    #[derive(Debug)]
    struct One(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for One {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }
    }
    let key = crate::acme::alpn_challenge(dir, name)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(One(key)));
    config.alpn_protocols = vec![crate::acme::ACME_TLS_ALPN.to_vec()];
    Some(Arc::new(config))
}
