//! Reaching a user's backend: connect to its Unix socket, starting the
//! backend first when the proxy supervises backends itself.
//!
//! * `systemd`: `<backend-dir>/<user>.sock` belongs to
//!   `sapphire-backend@<user>.socket`; connecting starts the service. The
//!   proxy only connects: it never starts units.
//! * `spawn` (no systemd: a laptop, CI, the demo): the proxy runs
//!   `sapphire-backend --listen <backend-dir>/<user>.sock --state-dir
//!   <backend-state-dir>/<user>` on first use, restarts it with backoff when
//!   it dies ("resurrect instances"), and stops it at shutdown.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UnixStream;
use tokio::process::Command;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::shutdown::stopped;
use crate::username::Username;

/// How long a connection waits for a freshly spawned backend's socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Restart delays grow from the first to the last, and reset once a backend
/// has stayed up for `STABLE_AFTER`.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// Grace period between SIGTERM and SIGKILL at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub(crate) enum LaunchError {
    #[error("backend socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("backend did not start listening on {path} within {secs} s")]
    StartTimeout { path: PathBuf, secs: u64 },
    #[error("socket path {0} is too long for a Unix socket (108 bytes)")]
    PathTooLong(PathBuf),
}

pub(crate) enum Launcher {
    Systemd { backend_dir: PathBuf },
    Spawn(Arc<Spawner>),
}

impl Launcher {
    pub(crate) fn socket_path(&self, user: &Username) -> PathBuf {
        match self {
            Launcher::Systemd { backend_dir } => socket_path(backend_dir, user),
            Launcher::Spawn(s) => socket_path(&s.backend_dir, user),
        }
    }

    /// A connection to `user`'s backend.
    pub(crate) async fn connect(&self, user: &Username) -> Result<UnixStream, LaunchError> {
        let path = self.socket_path(user);
        if path.as_os_str().len() >= 108 {
            return Err(LaunchError::PathTooLong(path));
        }
        match self {
            Launcher::Systemd { .. } => UnixStream::connect(&path)
                .await
                .map_err(|source| LaunchError::Connect { path, source }),
            Launcher::Spawn(s) => s.connect(user, &path).await,
        }
    }

    /// Number of backends the proxy is supervising (spawn launcher only).
    pub(crate) fn running(&self) -> usize {
        match self {
            Launcher::Systemd { .. } => 0,
            Launcher::Spawn(s) => s.instances.lock().unwrap().len(),
        }
    }

    /// Stops supervised backends (spawn launcher); returns when they exited.
    pub(crate) async fn shutdown(&self) {
        if let Launcher::Spawn(s) = self {
            s.shutdown().await;
        }
    }
}

fn socket_path(dir: &Path, user: &Username) -> PathBuf {
    dir.join(format!("{user}.sock"))
}

/// The spawn launcher's state.
pub(crate) struct Spawner {
    bin: PathBuf,
    backend_dir: PathBuf,
    state_root: PathBuf,
    instances: Mutex<HashMap<Username, Instance>>,
    stopping: watch::Sender<bool>,
}

struct Instance {
    /// Bumped every time a new child is listening; waiters watch it.
    started: watch::Receiver<u64>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Spawner {
    pub(crate) fn new(
        bin: PathBuf,
        backend_dir: PathBuf,
        state_root: PathBuf,
    ) -> io::Result<Spawner> {
        std::fs::create_dir_all(&backend_dir)?;
        std::fs::create_dir_all(&state_root)?;
        for dir in [&backend_dir, &state_root] {
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
        Ok(Spawner {
            bin,
            backend_dir,
            state_root,
            instances: Mutex::new(HashMap::new()),
            stopping: watch::channel(false).0,
        })
    }

    async fn connect(
        self: &Arc<Self>,
        user: &Username,
        path: &Path,
    ) -> Result<UnixStream, LaunchError> {
        let mut started = self.ensure(user);
        let deadline = Instant::now() + START_TIMEOUT;
        let timeout = || LaunchError::StartTimeout {
            path: path.into(),
            secs: START_TIMEOUT.as_secs(),
        };
        loop {
            if *started.borrow_and_update() > 0 {
                // Fails only if the child died since: then wait for its restart.
                if let Ok(s) = UnixStream::connect(path).await {
                    return Ok(s);
                }
            }
            if Instant::now() >= deadline {
                return Err(timeout());
            }
            let poll = tokio::time::timeout(Duration::from_millis(200), started.changed());
            if let Ok(Err(_)) = poll.await {
                // The supervisor ended: the proxy is stopping.
                return Err(timeout());
            }
        }
    }

    /// Starts the user's supervisor unless it runs already.
    fn ensure(self: &Arc<Self>, user: &Username) -> watch::Receiver<u64> {
        let mut instances = self.instances.lock().unwrap();
        if let Some(i) = instances.get(user) {
            if !i.supervisor.is_finished() {
                return i.started.clone();
            }
        }
        let (tx, rx) = watch::channel(0u64);
        let me = Arc::clone(self);
        let who = user.clone();
        let supervisor = tokio::spawn(async move { me.supervise(who, tx).await });
        instances.insert(
            user.clone(),
            Instance {
                started: rx.clone(),
                supervisor,
            },
        );
        rx
    }

    async fn supervise(self: Arc<Self>, user: Username, started: watch::Sender<u64>) {
        let sock = socket_path(&self.backend_dir, &user);
        let state = self.state_root.join(user.as_str());
        let mut stopping = self.stopping.subscribe();
        let mut backoff = BACKOFF_FIRST;
        let mut generation = 0u64;
        while !*stopping.borrow() {
            if let Err(e) = std::fs::create_dir_all(&state) {
                error!(%user, "cannot create backend state dir {}: {e}", state.display());
            }
            // A socket file left by a dead child must not accept connections
            // meant for the new one.
            let _ = std::fs::remove_file(&sock);
            let spawned = Command::new(&self.bin)
                .arg("--listen")
                .arg(&sock)
                .arg("--state-dir")
                .arg(&state)
                .env_remove("LISTEN_FDS")
                .env_remove("LISTEN_PID")
                .env_remove("NOTIFY_SOCKET")
                .kill_on_drop(true)
                .spawn();
            let mut child = match spawned {
                Ok(c) => c,
                Err(e) => {
                    error!(%user, "cannot start {}: {e}", self.bin.display());
                    if sleep_or_stop(&mut stopping, backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let pid = child.id().unwrap_or(0);
            info!(%user, pid, "backend started");
            let since = Instant::now();
            // Announce the child once its socket accepts connections.
            let listening = async {
                while UnixStream::connect(&sock).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            tokio::pin!(listening);
            let mut announced = false;
            let status = loop {
                tokio::select! {
                    _ = &mut listening, if !announced => {
                        announced = true;
                        generation += 1;
                        started.send_replace(generation);
                    }
                    s = child.wait() => break s,
                    _ = stopped(&mut stopping) => {
                        stop_child(&mut child, &user).await;
                        let _ = std::fs::remove_file(&sock);
                        return;
                    }
                }
            };
            match status {
                Ok(s) => warn!(%user, pid, "backend exited ({s}); restarting in {backoff:?}"),
                Err(e) => warn!(%user, pid, "waiting for backend: {e}"),
            }
            if since.elapsed() >= STABLE_AFTER {
                backoff = BACKOFF_FIRST;
            }
            if sleep_or_stop(&mut stopping, backoff).await {
                break;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        let _ = std::fs::remove_file(&sock);
    }

    async fn shutdown(&self) {
        self.stopping.send_replace(true);
        let supervisors: Vec<_> = self
            .instances
            .lock()
            .unwrap()
            .drain()
            .map(|(_, i)| i.supervisor)
            .collect();
        for s in supervisors {
            let _ = s.await;
        }
    }
}

/// Sleeps `d`; true if the launcher began stopping meanwhile.
async fn sleep_or_stop(stopping: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        biased;
        _ = stopped(stopping) => true,
        _ = tokio::time::sleep(d) => false,
    }
}

async fn stop_child(child: &mut tokio::process::Child, user: &Username) {
    if let Some(pid) = child.id() {
        // SAFETY: kill has no memory-safety preconditions; `pid` is our child.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(_) => info!(%user, pid, "backend stopped"),
            Err(_) => {
                warn!(%user, pid, "backend ignored SIGTERM for {STOP_GRACE:?}; killing it");
                let _ = child.kill().await;
            }
        }
    }
}
