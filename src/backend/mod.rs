//! `sapphire-backend`: one libpurple daemon per Sapphire user.
//!
//! * [`purple`]: libpurple on its own thread (bindings, UI operations,
//!   requests, DNS, the operations clients call).
//! * [`hub`]: gives every event its `seq`, stores it, then fans it out.
//! * [`store`]: SQLite (WAL): events, messages with FTS5, read markers.
//! * [`server`]: the WebSocket server on the Unix socket.
//! * [`protocol`]: shared protocol types; the protocol is `docs/protocol.md`.

pub mod hub;
pub mod protocol;
pub mod purple;
pub mod server;
pub mod store;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Where the backend listens.
pub enum Listen {
    /// Bind this path (a stale socket file there is replaced).
    Path(PathBuf),
    /// A listening Unix socket passed by systemd (LISTEN_FDS).
    Inherited(std::os::unix::net::UnixListener),
}

pub struct Config {
    pub listen: Listen,
    pub state_dir: PathBuf,
}

/// Errors that stop the backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("state directory {0}: {1}")]
    StateDir(PathBuf, std::io::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(PathBuf, std::io::Error),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("libpurple: {0}")]
    Purple(#[from] purple::PurpleError),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

/// Sets the process environment libpurple needs. Must run before any
/// thread starts (it calls `setenv`):
///
/// * `HOME`, `XDG_*`: the state directory, so nothing is written elsewhere;
/// * GStreamer: an empty plugin path and a registry file in the state dir
///   (otherwise Debian's libpurple maps ~170 libraries and uses 90 MB);
/// * `DBUS_SESSION_BUS_ADDRESS=disabled:` so no session bus is autolaunched.
pub fn prepare_env(state_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let gst = state_dir.join("gstreamer-empty");
    std::fs::create_dir_all(&gst)?;
    // SAFETY (set_var): documented precondition, no other thread yet.
    std::env::set_var("HOME", state_dir);
    std::env::set_var("XDG_CONFIG_HOME", state_dir.join("config"));
    std::env::set_var("XDG_CACHE_HOME", state_dir.join("cache"));
    std::env::set_var("XDG_DATA_HOME", state_dir.join("data"));
    std::env::set_var("GST_PLUGIN_SYSTEM_PATH_1_0", &gst);
    std::env::set_var("GST_PLUGIN_PATH_1_0", &gst);
    std::env::set_var("GST_REGISTRY_1_0", state_dir.join("gstreamer-registry.bin"));
    std::env::set_var("GST_REGISTRY_UPDATE", "no");
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", "disabled:");
    std::env::remove_var("DISPLAY");
    Ok(())
}

fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// Runs the backend until SIGTERM/SIGINT. Call [`prepare_env`] first.
pub async fn run(config: Config) -> Result<(), BackendError> {
    let state = &config.state_dir;
    let dir_err = |e| BackendError::StateDir(state.clone(), e);
    std::fs::create_dir_all(state).map_err(dir_err)?;
    let purple_dir = state.join("purple");
    std::fs::create_dir_all(&purple_dir).map_err(dir_err)?;
    // libpurple keeps IM passwords in its files: owner only.
    let _ = std::fs::set_permissions(&purple_dir, std::fs::Permissions::from_mode(0o700));

    let t0 = std::time::Instant::now();
    let hub = hub::Hub::open(&state.join("sapphire.db"))?;
    let t1 = std::time::Instant::now();
    let (purple, purple_thread) = purple::start(hub.clone(), purple_dir)?;
    tracing::debug!(
        store = ?(t1 - t0),
        libpurple = ?t1.elapsed(),
        "initialised"
    );

    let (listener, bound) = match config.listen {
        Listen::Inherited(l) => {
            l.set_nonblocking(true)
                .map_err(|e| BackendError::Listen("LISTEN_FDS".into(), e))?;
            let l = UnixListener::from_std(l)
                .map_err(|e| BackendError::Listen("LISTEN_FDS".into(), e))?;
            (l, None)
        }
        Listen::Path(path) => {
            if std::os::unix::net::UnixStream::connect(&path).is_err() {
                let _ = std::fs::remove_file(&path);
            }
            let l = UnixListener::bind(&path).map_err(|e| BackendError::Listen(path.clone(), e))?;
            (l, Some(path))
        }
    };

    let mut term = signal(SignalKind::terminate()).map_err(BackendError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(BackendError::Signal)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let ctx = Arc::new(server::Ctx {
        hub: hub.clone(),
        purple: purple.clone(),
    });
    let server = tokio::spawn(server::serve(listener, ctx, shutdown_rx));
    tracing::info!("ready");
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&hub.status_line()),
    ]);

    let status_hub = hub.clone();
    let status = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(line) = status_hub.status_changed() {
                notify(&[sd_notify::NotifyState::Status(&line)]);
            }
        }
    });

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    status.abort();
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_millis(1500), server).await;
    if tokio::time::timeout(Duration::from_secs(2), purple.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("libpurple did not stop in time");
    } else {
        let _ = tokio::task::spawn_blocking(move || purple_thread.join()).await;
    }
    if let Some(path) = bound {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
