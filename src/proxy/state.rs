//! What every connection shares: configuration, certificate, accounts (hot
//! reloaded), sessions, sign-in limits, the launcher and the open relays.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use hyper::header::{self, HeaderMap};
use rustls::ServerConfig;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::admission::Admission;
use super::config::{Config, LauncherKind};
use super::error::{io_err, ProxyError};
use super::hashing::Hashing;
use super::launcher::{Launcher, Spawner};
use super::limits::SignInLimits;
use super::relay::frames::{Close, SESSION_ENDED};
use super::relay::registry::Registry;
use crate::accounts::Accounts;
use crate::session::{self, Session, Sessions};

/// Identity of a file version, to notice when sapphire-ctl rewrote it.
type FileId = Option<(u64, u64, i64, i64, u64)>;

fn file_id(path: &Path) -> FileId {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) config: Config,
    tls: RwLock<Arc<ServerConfig>>,
    /// The names the served certificate covers (for the default origin rule).
    cert_names: RwLock<Vec<String>>,
    tls_files: (PathBuf, PathBuf),
    accounts: Mutex<(Arc<Accounts>, FileId)>,
    pub(crate) sessions: Sessions,
    pub(crate) limits: SignInLimits,
    /// Per-address connection caps, checked before the TLS handshake.
    pub(crate) admission: Arc<Admission>,
    /// Slots for argon2, known browsers first.
    pub(crate) hashing: Arc<Hashing>,
    pub(crate) launcher: Launcher,
    /// Client connections being served (not counting relays).
    pub(crate) connections: AtomicUsize,
    pub(crate) relays: Arc<Registry>,
    /// The runtime relays run on: the one the proxy was made in (new
    /// connections are served on the edge runtime, see `edge`).
    pub(crate) relay_runtime: tokio::runtime::Handle,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Shared {
    /// Loads the certificate (generating one if none is configured), the
    /// accounts and the session key; prepares the launcher.
    pub(crate) fn open(config: Config) -> Result<Shared, ProxyError> {
        std::fs::create_dir_all(&config.state_dir)
            .map_err(io_err(format!("creating {}", config.state_dir.display())))?;
        let tls_files = match &config.tls {
            Some(pair) => pair.clone(),
            None => generated_certificate(&config.state_dir)?,
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
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let accounts_id = file_id(&config.accounts);
        let cert_names = crate::tls::certificate_names(&tls_files.0);
        if config.origins.is_empty() && cert_names.is_empty() {
            warn!(
                "the certificate {} names no host (subjectAltName): set `origin`, or every \
                 sign-in and WebSocket will be refused as cross-site",
                tls_files.0.display()
            );
        }
        Ok(Shared {
            tls: RwLock::new(tls),
            cert_names: RwLock::new(cert_names),
            tls_files,
            accounts: Mutex::new((Arc::new(accounts), accounts_id)),
            sessions,
            limits: SignInLimits::new(),
            admission: Admission::new(&config),
            // Half the cores at most (one on two cores): a flood of wrong
            // passwords from many addresses then leaves the other half to
            // relaying (benches/load: relay p99 3x its quiet value with one
            // slot per core on 2 cores). Argon2 runs on the blocking pool,
            // never on the reactor.
            hashing: Hashing::new((cores / 2).max(1)),
            launcher,
            connections: AtomicUsize::new(0),
            relays: Arc::new(Registry::default()),
            relay_runtime: tokio::runtime::Handle::current(),
            shutdown: watch::channel(false).0,
            config,
        })
    }

    /// The certificate new connections get.
    pub(crate) fn tls_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.tls.read().unwrap())
    }

    /// True when the served certificate is valid for `host` (no port).
    pub(crate) fn certificate_covers(&self, host: &str) -> bool {
        crate::tls::covers(&self.cert_names.read().unwrap(), host)
    }

    /// The accounts, re-read when the file changed on disk (sapphire-ctl
    /// writes take effect at the next request: a password change or a
    /// disabled user ends sessions at once).
    pub(crate) fn accounts(&self) -> Arc<Accounts> {
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
            self.relays
                .end(SESSION_ENDED, |s| !session_holds(&accounts, s));
        }
        accounts
    }

    /// Ends the relays opened with this session (logout).
    pub(crate) fn session_revoked(&self, session: &Session) {
        self.relays.end(SESSION_ENDED, |s| s.id == session.id);
    }

    /// Ends every relay with `close`.
    pub(crate) fn end_all_relays(&self, close: Close) {
        self.relays.end(close, |_| true);
    }

    /// The session carried by the request's cookie, signature-checked.
    pub(crate) fn session_of(&self, headers: &HeaderMap) -> Option<Session> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session::cookie_value)
            .and_then(|t| self.sessions.verify(t))
    }

    /// A session that is still good: signed, not expired or revoked, and its
    /// user exists, is enabled, and has not changed password since.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Option<Session> {
        let s = self.session_of(headers)?;
        session_holds(&self.accounts(), &s).then_some(s)
    }

    /// True while a session that [`Shared::authenticate`] accepted earlier
    /// still holds: not expired or revoked since, and its user still
    /// exists, is enabled and has the same password.
    pub(crate) fn still_holds(&self, s: &Session) -> bool {
        self.sessions.still_valid(s) && session_holds(&self.accounts(), s)
    }

    /// With no certificate configured, makes the generated one again when
    /// it is about to expire, and serves the new one.
    pub(crate) fn renew_generated_certificate(&self) {
        if self.config.tls.is_some() {
            return;
        }
        let (cert, key) = &self.tls_files;
        match crate::tls::ensure_self_signed(cert, key, &own_names()) {
            Ok(true) => {
                warn!("the generated certificate was about to expire: made a new one");
                self.reload();
            }
            Ok(false) => {}
            Err(e) => error!("could not renew the generated certificate: {e}"),
        }
    }

    /// SIGHUP: the certificate and the accounts are read again.
    pub(crate) fn reload(&self) {
        match crate::tls::server_config(&self.tls_files.0, &self.tls_files.1) {
            Ok(c) => {
                *self.tls.write().unwrap() = c;
                *self.cert_names.write().unwrap() =
                    crate::tls::certificate_names(&self.tls_files.0);
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

    /// Connections and relays still open.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst) + self.relays.len()
    }

    pub(crate) fn status_line(&self) -> String {
        format!(
            "{} connections, {} WebSockets, {} users connected, {} backends supervised",
            self.connections.load(Ordering::Relaxed),
            self.relays.len(),
            self.relays.users(),
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

/// The self-signed pair in the state directory, made on first use.
fn generated_certificate(state_dir: &Path) -> Result<(PathBuf, PathBuf), ProxyError> {
    let pair = (state_dir.join("tls.crt"), state_dir.join("tls.key"));
    let made = crate::tls::ensure_self_signed(&pair.0, &pair.1, &own_names())?;
    let fingerprint = crate::tls::fingerprint(&pair.0)?;
    if made {
        warn!(
            "no TLS certificate configured: generated a self-signed one at {} (SHA-256 {fingerprint})",
            pair.0.display(),
        );
    } else {
        info!(
            "using the generated certificate {} (SHA-256 {fingerprint})",
            pair.0.display(),
        );
    }
    Ok(pair)
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

/// Counts one in a counter for as long as it lives.
pub(crate) struct CountGuard<'a>(&'a AtomicUsize);

impl<'a> CountGuard<'a> {
    pub(crate) fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        CountGuard(c)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
