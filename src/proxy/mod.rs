//! `sapphire-proxy`: the public TLS edge. It accepts connections (from
//! systemd's sockets or its own), terminates TLS, serves the HTTP API and the
//! web client, and relays each signed-in user's WebSocket to their backend.

pub mod config;
pub mod demo;
pub mod http;
pub mod launcher;
pub mod relay;
pub mod web;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

use crate::accounts::Accounts;
use crate::ratelimit::{Limiter, Policy};
use crate::session::{self, Session, Sessions};
use crate::username::Username;
use config::{Config, LauncherKind};
use launcher::{Launcher, Spawner};

/// Failed sign-ins allowed per client address: a burst of 20, then one
/// every 6 s.
pub const IP_POLICY: Policy = Policy {
    burst: 20,
    refill: Duration::from_secs(6),
};
/// Failed sign-ins allowed per user name: a burst of 5, then one every 20 s.
pub const USER_POLICY: Policy = Policy {
    burst: 5,
    refill: Duration::from_secs(20),
};
/// Connections beyond `max_connections` still get a 503 answer, up to this
/// many more; past that they are closed at once.
const OVERFLOW_ANSWERED: usize = 1024;
/// How long shutdown waits for connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Accounts(#[from] crate::accounts::AccountsError),
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProxyError {
    let what = what.into();
    move |source| ProxyError::Io { what, source }
}

/// Identity of a file version, to notice when sapphire-ctl rewrote it.
type FileId = Option<(u64, u64, i64, i64, u64)>;

fn file_id(path: &std::path::Path) -> FileId {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

/// State shared by every connection.
pub struct Shared {
    pub config: Config,
    tls: RwLock<Arc<ServerConfig>>,
    tls_files: (PathBuf, PathBuf),
    accounts: Mutex<(Arc<Accounts>, FileId)>,
    pub sessions: Sessions,
    pub ip_limiter: Limiter<IpAddr>,
    pub user_limiter: Limiter<String>,
    pub hashing: Arc<Semaphore>,
    pub login_queue: AtomicUsize,
    pub launcher: Launcher,
    connections: AtomicUsize,
    websockets: AtomicUsize,
    users: Mutex<HashMap<Username, usize>>,
    relays: Mutex<HashMap<u64, RelayHandle>>,
    next_relay: AtomicU64,
    shutdown: watch::Sender<bool>,
}

/// What the proxy knows of an open relay, to end it from outside.
struct RelayHandle {
    session: Session,
    stop: watch::Sender<Option<relay::Close>>,
}

impl Shared {
    /// The accounts, re-read when the file changed on disk (sapphire-ctl
    /// writes take effect at the next request: a password change or a
    /// disabled user ends sessions at once).
    pub fn accounts(&self) -> Arc<Accounts> {
        let path = &self.config.accounts;
        let id = file_id(path);
        let (accounts, reloaded) = {
            let mut cur = self.accounts.lock().unwrap();
            let mut reloaded = false;
            if id != cur.1 {
                match Accounts::load(path) {
                    Ok(a) => {
                        info!("accounts reloaded: {} users", a.users.len());
                        *cur = (Arc::new(a), id);
                        reloaded = true;
                    }
                    Err(e) => {
                        error!("keeping the previous accounts: {e}");
                        cur.1 = id;
                    }
                }
            }
            (Arc::clone(&cur.0), reloaded)
        };
        if reloaded {
            // Open WebSockets of users whose sessions no longer hold end now,
            // not at their next reconnection.
            self.end_relays(relay::SESSION_ENDED, |s| !session_holds(&accounts, s));
        }
        accounts
    }

    /// Tells every relay whose session matches to close with `close`.
    fn end_relays(&self, close: relay::Close, matches: impl Fn(&Session) -> bool) {
        for h in self.relays.lock().unwrap().values() {
            if matches(&h.session) {
                info!(user = %h.session.user, "ending WebSocket relay: {}", close.reason);
                h.stop.send_replace(Some(close));
            }
        }
    }

    /// Ends the relays opened with this session (logout).
    pub fn session_revoked(&self, session: &Session) {
        self.end_relays(relay::SESSION_ENDED, |s| s.id == session.id);
    }

    /// The session carried by the request's cookie, signature-checked.
    pub fn session_of(&self, headers: &HeaderMap) -> Option<Session> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session::cookie_value)
            .and_then(|t| self.sessions.verify(t))
    }

    /// A session that is still good: signed, not expired or revoked, and its
    /// user exists, is enabled, and has not changed password since.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Session> {
        let s = self.session_of(headers)?;
        session_holds(&self.accounts(), &s).then_some(s)
    }

    fn reload(&self) {
        match crate::tls::server_config(&self.tls_files.0, &self.tls_files.1) {
            Ok(c) => {
                *self.tls.write().unwrap() = c;
                info!(
                    "TLS certificate reloaded from {}",
                    self.tls_files.0.display()
                );
            }
            Err(e) => error!("keeping the previous TLS certificate: {e}"),
        }
        self.accounts.lock().unwrap().1 = None;
        self.accounts();
    }

    fn status_line(&self) -> String {
        format!(
            "{} connections, {} WebSockets, {} users connected, {} backends supervised",
            self.connections.load(Ordering::Relaxed),
            self.websockets.load(Ordering::Relaxed),
            self.users.lock().unwrap().len(),
            self.launcher.running()
        )
    }
}

/// True when the session's user exists, is enabled, and has the password the
/// session was opened with.
fn session_holds(accounts: &Accounts, s: &Session) -> bool {
    accounts
        .get(&s.user)
        .is_some_and(|a| !a.disabled && a.password_stamp() == s.password_stamp)
}

/// The listening sockets: systemd's if it passed any, else our own.
fn listeners(config: &Config) -> Result<Vec<std::net::TcpListener>, ProxyError> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = Vec::new();
    for i in 0..fds.len() {
        match fds.take_tcp_listener(i) {
            Ok(Some(l)) => out.push(l),
            Ok(None) => {}
            Err(e) => warn!("ignoring passed socket {i}: {e}"),
        }
    }
    if !out.is_empty() {
        info!("using {} socket(s) passed by systemd", out.len());
        return Ok(out);
    }
    for addr in &config.listen {
        let l =
            std::net::TcpListener::bind(addr).map_err(io_err(format!("listening on {addr}")))?;
        out.push(l);
    }
    Ok(out)
}

/// Host names for a generated certificate.
fn own_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() && h != "localhost" {
            names.insert(0, h.to_string());
        }
    }
    names
}

/// A proxy ready to serve: sockets bound, certificate and accounts loaded.
pub struct Proxy {
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
}

impl Proxy {
    pub fn new(config: Config) -> Result<Proxy, ProxyError> {
        std::fs::create_dir_all(&config.state_dir)
            .map_err(io_err(format!("creating {}", config.state_dir.display())))?;
        let tls_files = match &config.tls {
            Some(pair) => pair.clone(),
            None => {
                let pair = (
                    config.state_dir.join("tls.crt"),
                    config.state_dir.join("tls.key"),
                );
                if crate::tls::ensure_self_signed(&pair.0, &pair.1, &own_names())? {
                    warn!(
                        "no TLS certificate configured: generated a self-signed one at {} (SHA-256 {})",
                        pair.0.display(),
                        crate::tls::fingerprint(&pair.0)?
                    );
                } else {
                    info!(
                        "using the generated certificate {} (SHA-256 {})",
                        pair.0.display(),
                        crate::tls::fingerprint(&pair.0)?
                    );
                }
                pair
            }
        };
        let tls = crate::tls::server_config(&tls_files.0, &tls_files.1)?;
        let accounts = Accounts::load(&config.accounts)?;
        if accounts.users.is_empty() {
            warn!(
                "no users in {}: add one with `sapphire-ctl user add NAME`",
                config.accounts.display()
            );
        }
        let sessions = Sessions::open(&config.state_dir, config.session_ttl)?;
        let launcher = match config.launcher {
            LauncherKind::Systemd => Launcher::Systemd {
                backend_dir: config.backend_dir.clone(),
            },
            LauncherKind::Spawn => Launcher::Spawn(Arc::new(
                Spawner::new(
                    config.backend_bin.clone(),
                    config.backend_dir.clone(),
                    config.backend_state_dir.clone(),
                )
                .map_err(io_err("preparing the backend directories"))?,
            )),
        };
        let listeners = listeners(&config)?
            .into_iter()
            .map(|l| {
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_err("preparing the listening sockets"))?;
        // A hashing slot per core: logins never take all the CPU time from
        // relaying (argon2 also runs on the blocking pool, not the reactor).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let accounts_id = file_id(&config.accounts);
        let shared = Arc::new(Shared {
            tls: RwLock::new(tls),
            tls_files,
            accounts: Mutex::new((Arc::new(accounts), accounts_id)),
            sessions,
            ip_limiter: Limiter::new(IP_POLICY),
            user_limiter: Limiter::new(USER_POLICY),
            // Half the cores at most (one on two cores): a flood of wrong
            // passwords from many addresses then leaves the other half to
            // relaying (benches/load: relay p99 3x its quiet value with one
            // slot per core on 2 cores).
            hashing: Arc::new(Semaphore::new((cores / 2).max(1))),
            login_queue: AtomicUsize::new(0),
            launcher,
            connections: AtomicUsize::new(0),
            websockets: AtomicUsize::new(0),
            users: Mutex::new(HashMap::new()),
            relays: Mutex::new(HashMap::new()),
            next_relay: AtomicU64::new(0),
            shutdown: watch::channel(false).0,
            config,
        });
        Ok(Proxy { shared, listeners })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until SIGTERM or SIGINT, then closes WebSockets with 1001,
    /// stops supervised backends and returns.
    pub async fn run(self) -> Result<(), ProxyError> {
        self.run_with(|| {}).await
    }

    /// Like [`Proxy::run`]; calls `ready` once the signal handlers are in
    /// place and the listeners accept (the demo prints its credentials then).
    pub async fn run_with(self, ready: impl FnOnce()) -> Result<(), ProxyError> {
        let shared = self.shared;
        let mut term = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;
        let mut hup = signal(SignalKind::hangup()).map_err(io_err("SIGHUP handler"))?;
        let mut accept_tasks = Vec::new();
        for l in self.listeners {
            info!(
                "listening on https://{}",
                l.local_addr().map_err(io_err("local address"))?
            );
            accept_tasks.push(tokio::spawn(accept_loop(Arc::clone(&shared), l)));
        }
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
        loop {
            tokio::select! {
                _ = accounts_tick.tick() => {
                    shared.accounts();
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
        shared.end_relays(relay::GOING_AWAY, |_| true);
        for t in accept_tasks {
            let _ = t.await;
        }
        let drained = async {
            while shared.connections.load(Ordering::SeqCst)
                + shared.websockets.load(Ordering::SeqCst)
                > 0
            {
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
        info!("stopped");
        Ok(())
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut stop = shared.shutdown.subscribe();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let open =
            shared.connections.load(Ordering::Relaxed) + shared.websockets.load(Ordering::Relaxed);
        if open >= shared.config.max_connections + OVERFLOW_ANSWERED {
            drop(stream);
            continue;
        }
        let over = open >= shared.config.max_connections;
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(Arc::clone(&shared), stream, peer, over));
    }
}

/// Resolves once the shutdown flag is set (at once if it already is).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Decrements a counter when dropped.
struct CountGuard<'a>(&'a AtomicUsize);

impl<'a> CountGuard<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        CountGuard(c)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, over: bool) {
    let _count = CountGuard::new(&shared.connections);
    let tls_config = Arc::clone(&shared.tls.read().unwrap());
    let acceptor = TlsAcceptor::from(tls_config);
    let tls =
        match tokio::time::timeout(shared.config.header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
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
        http::handle(Arc::clone(&svc_shared), peer, over, req)
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

/// Relays an upgraded browser connection to the backend until either side
/// closes, or until the proxy ends it: at shutdown (both sides get a close
/// frame with 1001) or when its session ends (1008).
pub(crate) async fn relay_upgraded(
    shared: Arc<Shared>,
    session: Session,
    upgraded: hyper::upgrade::Upgraded,
    backend: UnixStream,
    backend_leftover: Vec<u8>,
) {
    let user = session.user.clone();
    let _count = CountGuard::new(&shared.websockets);
    let (stop_tx, stop) = watch::channel(None);
    let relay_id = shared.next_relay.fetch_add(1, Ordering::Relaxed);
    shared.relays.lock().unwrap().insert(
        relay_id,
        RelayHandle {
            session,
            stop: stop_tx,
        },
    );
    // Opened while shutting down or after the session ended: close at once.
    if *shared.shutdown.borrow() {
        shared.end_relays(relay::GOING_AWAY, |_| true);
    }
    *shared
        .users
        .lock()
        .unwrap()
        .entry(user.clone())
        .or_insert(0) += 1;
    info!(%user, "WebSocket relay open");
    // Unwrap hyper's wrapper to relay straight between the TLS stream and the
    // Unix socket; bytes hyper had already read go first.
    // (Copy the leftover bytes out: the `Bytes` would keep hyper's whole read
    // buffer alive for the life of the relay.)
    let (browser, browser_leftover) = match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
        Ok(parts) => (parts.io.into_inner(), parts.read_buf.to_vec()),
        Err(_) => {
            error!(%user, "unexpected upgraded connection type");
            return;
        }
    };
    relay_streams(
        &shared,
        browser,
        browser_leftover,
        backend,
        backend_leftover,
        stop,
    )
    .await;
    shared.relays.lock().unwrap().remove(&relay_id);
    {
        let mut users = shared.users.lock().unwrap();
        if let Some(n) = users.get_mut(&user) {
            *n -= 1;
            if *n == 0 {
                users.remove(&user);
            }
        }
    }
    info!(%user, "WebSocket relay closed");
}

async fn relay_streams(
    shared: &Shared,
    browser: TlsStream<TcpStream>,
    browser_leftover: Vec<u8>,
    mut backend: UnixStream,
    backend_leftover: Vec<u8>,
    stop: watch::Receiver<Option<relay::Close>>,
) {
    use tokio::io::AsyncWriteExt;
    let max = shared.config.max_frame_bytes;
    let (browser_r, mut browser_w) = tokio::io::split(browser);
    if !browser_leftover.is_empty() && backend.write_all(&browser_leftover).await.is_err() {
        return;
    }
    if !backend_leftover.is_empty() && browser_w.write_all(&backend_leftover).await.is_err() {
        return;
    }
    // Leftovers are whole frames in practice, but if they ended mid-frame
    // the trackers would be misaligned: count them in.
    let (backend_r, backend_w) = backend.into_split();
    let up = relay::pump(
        browser_r,
        backend_w,
        max,
        true,
        stop.clone(),
        &browser_leftover,
    );
    let down = relay::pump(backend_r, browser_w, max, false, stop, &backend_leftover);
    tokio::pin!(up, down);
    // When one direction ends, the other gets a moment to finish.
    let linger = Duration::from_secs(5);
    tokio::select! {
        end = &mut up => {
            debug!("browser to backend ended: {end:?}");
            let _ = tokio::time::timeout(linger, down).await;
        }
        end = &mut down => {
            debug!("backend to browser ended: {end:?}");
            let _ = tokio::time::timeout(linger, up).await;
        }
    }
}
