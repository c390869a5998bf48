//! libpurple on its own thread.
//!
//! One dedicated thread owns libpurple and GLib's default main context for
//! the life of the process (it acquires the context before any libpurple
//! call, so work queued from other threads always runs there). Other threads
//! hand it owned closures with [`invoke`]; libpurple pointers never leave it.
//! Events go the other way through the [`Hub`].

// Layers, bottom first; a module imports only from the ones above it
// (docs/architecture.md):
mod accounts;
mod commands;
mod eventloop;
mod events;
pub(crate) mod ffi;
mod glue;
mod handles;
mod history;
mod invoke;
mod requests;
pub(crate) mod sending;
mod state;
mod uiops;
mod view;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::oneshot;

use super::config::BackendConfig;
use super::hub::Hub;
use super::protocol::{OpError, OpResult};
use super::watchdog::{Heartbeat, BEAT_EVERY};

pub(crate) use commands::is_op;
use invoke::invoke;

/// How long a request waits for the purple thread.
pub(crate) const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Errors starting libpurple.
#[derive(Debug, thiserror::Error)]
pub enum PurpleError {
    #[error("libpurple core initialisation failed")]
    Init,
    #[error("the libpurple thread is gone")]
    Gone,
    #[error("libpurple did not answer in time (a plugin is busy or stuck); try again")]
    Stalled,
    #[error("cannot start the libpurple thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// Handle used by the async side to run operations on the purple thread.
#[derive(Clone)]
pub(crate) struct Purple {
    _private: (),
}

impl Purple {
    /// Runs `f` on the purple thread and returns its result, or
    /// [`PurpleError::Stalled`] if it has not run within [`CALL_TIMEOUT`]
    /// (it may still run later: callers answer `unavailable`, and the
    /// watchdog restarts a backend whose purple thread stays stuck).
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R, PurpleError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        invoke(move || {
            let _ = tx.send(f());
        });
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(r) => r.map_err(|_| PurpleError::Gone),
            Err(_) => Err(PurpleError::Stalled),
        }
    }

    /// Runs protocol operation `op` with `params` on the purple thread.
    pub(crate) async fn op(&self, op: String, params: serde_json::Map<String, Value>) -> OpResult {
        self.call(move || commands::dispatch(&op, &params))
            .await
            .map_err(|e| OpError::new("unavailable", e.to_string()))?
    }

    /// Signs off, saves libpurple's state and stops the purple thread.
    pub(crate) async fn shutdown(&self) {
        let _ = self
            .call(|| {
                // Chats left from here on are left for a restart.
                state::with(|s| s.shutting_down = true);
                // A clean stop is no sign-on's fault (no strike at start).
                if let Err(e) = state::hub().signons_interrupted() {
                    tracing::error!("cannot record the sign-ons as interrupted: {e}");
                }
                // Deferred to an idle callback (this closure): never from a
                // libpurple signal handler.
                // SAFETY: on the purple thread, after init.
                unsafe { ffi::purple_core_quit() };
                if let Some(l) = state::with(|s| s.main_loop) {
                    // SAFETY: the loop lives for the thread.
                    unsafe { ffi::g_main_loop_quit(l.as_ptr()) };
                }
            })
            .await;
    }
}

/// Starts the purple thread: libpurple's files live in `user_dir`. Returns
/// once libpurple is initialised, with the thread's join handle.
pub(crate) fn start(
    hub: Arc<Hub>,
    user_dir: PathBuf,
    config: BackendConfig,
    heartbeat: Arc<Heartbeat>,
) -> Result<(Purple, std::thread::JoinHandle<()>), PurpleError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("purple".into())
        .spawn(move || {
            state::install(state::PurpleState::new(hub, config));
            // This thread becomes the owner of the default context before
            // any libpurple call and keeps it until it exits.
            // SAFETY: GLib's default context lives for the process.
            let ctx = unsafe { ffi::g_main_context_default() };
            // SAFETY: as above.
            if unsafe { ffi::g_main_context_acquire(ctx) } == ffi::GFALSE {
                let _ = ready_tx.send(Err(PurpleError::Init));
                return;
            }
            if let Err(e) = init(&user_dir) {
                let _ = ready_tx.send(Err(e));
                return;
            }
            beat_from_main_loop(heartbeat);
            // SAFETY: a new loop on the context this thread owns.
            let main_loop = unsafe { ffi::g_main_loop_new(ctx, ffi::GFALSE) };
            state::with(|s| s.main_loop = std::ptr::NonNull::new(main_loop));
            let _ = ready_tx.send(Ok(()));
            // SAFETY: our loop, run on its owner thread until quit.
            unsafe { ffi::g_main_loop_run(main_loop) };
            tracing::debug!("purple main loop ended");
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((Purple { _private: () }, thread)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(PurpleError::Gone),
    }
}

/// Initialises libpurple (on the purple thread, once).
fn init(user_dir: &std::path::Path) -> Result<(), PurpleError> {
    let dir = glue::cstring(&user_dir.to_string_lossy());
    // SAFETY: libpurple's global debug switch, before init.
    unsafe { ffi::purple_debug_set_enabled(ffi::GFALSE) };
    // SAFETY: a valid C string; libpurple copies it.
    unsafe { ffi::purple_util_set_user_dir(dir.as_ptr()) };
    eventloop::install();
    uiops::install_core();
    let t0 = std::time::Instant::now();
    // SAFETY: once, on the thread that owns the main context, with every
    // UI-ops struct installed.
    if unsafe { ffi::purple_core_init(glue::UI_ID_C.as_ptr()) } == ffi::GFALSE {
        return Err(PurpleError::Init);
    }
    let t1 = std::time::Instant::now();
    // SAFETY: core initialised; libpurple owns the new buddy list.
    let blist = unsafe { ffi::purple_blist_new() };
    // SAFETY: as above.
    unsafe { ffi::purple_set_blist(blist) };
    // SAFETY: core initialised.
    unsafe { ffi::purple_blist_load() };
    // SAFETY: core initialised.
    unsafe { ffi::purple_prefs_load() };
    uiops::connect_signals();
    load_plugins();
    accounts::startup();
    tracing::debug!(core_init = ?(t1 - t0), rest = ?t1.elapsed(), "libpurple started");
    Ok(())
}

/// Loads the general plugins `backend.toml` names (`plugins`), before
/// accounts sign on. A plugin that is missing or fails is logged and
/// skipped: the backend runs without it.
fn load_plugins() {
    for id in state::with(|s| s.config.plugins.clone()) {
        match handles::Protocol::load_general(&id) {
            Ok(()) => tracing::info!(plugin = %id, "plugin loaded"),
            Err(why) => tracing::warn!(plugin = %id, "plugin not loaded: {why}"),
        }
    }
}

/// Beats `heartbeat` from a GLib timeout on the purple thread's main loop,
/// for the life of the process (see [`super::watchdog`]).
fn beat_from_main_loop(heartbeat: Arc<Heartbeat>) {
    unsafe extern "C" fn beat(data: ffi::gpointer) -> ffi::gboolean {
        // SAFETY: `data` is the `Heartbeat` leaked below, alive forever.
        let heartbeat = unsafe { &*(data as *const Heartbeat) };
        heartbeat.beat();
        ffi::GTRUE
    }
    heartbeat.beat();
    let data = Arc::into_raw(heartbeat) as ffi::gpointer;
    // SAFETY: on the purple thread, which owns the default context; the
    // Arc is leaked on purpose (the timeout lives as long as the process).
    unsafe { ffi::g_timeout_add(BEAT_EVERY.as_millis() as ffi::guint, Some(beat), data) };
}
