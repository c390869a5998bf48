//! libpurple on its own thread.
//!
//! One dedicated thread owns libpurple and GLib's default main context for
//! the life of the process (it acquires the context before any libpurple
//! call, so work queued from other threads always runs there). Other threads
//! hand it owned closures with [`invoke`]; libpurple pointers never leave it.
//! Events go the other way through the [`Hub`].

mod dns;
mod eventloop;
pub mod ffi;
mod glue;
mod ops;
mod request;
mod uiops;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::oneshot;

use super::config::BackendConfig;
use super::hub::Hub;
use super::protocol::{OpError, OpResult};
use super::watchdog::{Heartbeat, BEAT_EVERY};
use glue::cstring;
pub use ops::OPS;

/// How long a request waits for the purple thread.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The UI id libpurple knows us by (accounts are enabled per UI).
pub const UI_ID: &str = "sapphire";

static HUB: OnceLock<Arc<Hub>> = OnceLock::new();
static CONFIG: OnceLock<BackendConfig> = OnceLock::new();

/// The backend's configuration (which protocols users may add).
fn config() -> &'static BackendConfig {
    CONFIG.get_or_init(BackendConfig::default)
}

/// The hub, for code on the purple thread.
fn hub() -> &'static Arc<Hub> {
    HUB.get().expect("hub is set before libpurple starts")
}

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

type Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on the purple thread, soon. Safe to call from any thread.
pub fn invoke<F: FnOnce() + Send + 'static>(f: F) {
    unsafe extern "C" fn run(data: ffi::gpointer) -> ffi::gboolean {
        // SAFETY: `data` is the `Option<Job>` boxed below; GLib calls this
        // once, then the destroy notify frees the box.
        let slot = unsafe { &mut *(data as *mut Option<Job>) };
        if let Some(job) = slot.take() {
            job();
        }
        ffi::GFALSE
    }
    unsafe extern "C" fn free(data: ffi::gpointer) {
        // SAFETY: created by Box::into_raw below, freed exactly once here.
        drop(unsafe { Box::from_raw(data as *mut Option<Job>) });
    }
    let slot: Box<Option<Job>> = Box::new(Some(Box::new(f)));
    // SAFETY: an idle source attached to the default context only ever
    // dispatches on the thread iterating that context (the purple thread,
    // which owns it); g_source_attach is thread-safe and wakes it up.
    unsafe {
        let source = ffi::g_idle_source_new();
        ffi::g_source_set_priority(source, ffi::G_PRIORITY_DEFAULT);
        ffi::g_source_set_callback(
            source,
            Some(run),
            Box::into_raw(slot) as ffi::gpointer,
            Some(free),
        );
        ffi::g_source_attach(source, ffi::g_main_context_default());
        ffi::g_source_unref(source);
    }
}

/// Handle used by the async side to run operations on the purple thread.
#[derive(Clone)]
pub struct Purple {
    _private: (),
}

impl Purple {
    /// Runs `f` on the purple thread and returns its result, or
    /// [`PurpleError::Stalled`] if it has not run within [`CALL_TIMEOUT`]
    /// (it may still run later: callers answer `unavailable`, and the
    /// watchdog restarts a backend whose purple thread stays stuck).
    pub async fn call<R, F>(&self, f: F) -> Result<R, PurpleError>
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
    pub async fn op(&self, op: String, params: serde_json::Map<String, Value>) -> OpResult {
        self.call(move || ops::dispatch(&op, &params))
            .await
            .map_err(|e| OpError::new("unavailable", e.to_string()))?
    }

    /// Signs off, saves libpurple's state and stops the purple thread.
    pub async fn shutdown(&self) {
        let _ = self
            .call(|| {
                // Deferred to an idle callback (this closure): never from a
                // libpurple signal handler.
                // SAFETY: on the purple thread, after init.
                unsafe { ffi::purple_core_quit() };
                MAIN_LOOP.with(|l| {
                    if let Some(l) = l.get() {
                        // SAFETY: the loop pointer lives for the thread.
                        unsafe { ffi::g_main_loop_quit(*l) };
                    }
                });
            })
            .await;
    }
}

thread_local! {
    static MAIN_LOOP: std::cell::OnceCell<*mut ffi::GMainLoop> = const { std::cell::OnceCell::new() };
}

/// Starts the purple thread: libpurple's files live in `user_dir`. Returns
/// once libpurple is initialised, with the thread's join handle.
pub fn start(
    hub: Arc<Hub>,
    user_dir: PathBuf,
    config: BackendConfig,
    heartbeat: Arc<Heartbeat>,
) -> Result<(Purple, std::thread::JoinHandle<()>), PurpleError> {
    let _ = HUB.set(hub);
    let _ = CONFIG.set(config);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("purple".into())
        .spawn(move || {
            // SAFETY: this thread becomes the owner of the default context
            // before any libpurple call and keeps it until it exits.
            let ctx = unsafe { ffi::g_main_context_default() };
            if unsafe { ffi::g_main_context_acquire(ctx) } == ffi::GFALSE {
                let _ = ready_tx.send(Err(PurpleError::Init));
                return;
            }
            match unsafe { init(&user_dir) } {
                Ok(()) => {}
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            }
            beat_from_main_loop(heartbeat);
            let main_loop = unsafe { ffi::g_main_loop_new(ctx, ffi::GFALSE) };
            MAIN_LOOP.with(|l| {
                let _ = l.set(main_loop);
            });
            let _ = ready_tx.send(Ok(()));
            unsafe { ffi::g_main_loop_run(main_loop) };
            tracing::debug!("purple main loop ended");
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((Purple { _private: () }, thread)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(PurpleError::Gone),
    }
}

/// Initialises libpurple (on the purple thread).
unsafe fn init(user_dir: &std::path::Path) -> Result<(), PurpleError> {
    let dir = cstring(&user_dir.to_string_lossy());
    unsafe {
        ffi::purple_debug_set_enabled(ffi::GFALSE);
        ffi::purple_util_set_user_dir(dir.as_ptr());
        eventloop::install();
        uiops::install_core();
        let t0 = std::time::Instant::now();
        if ffi::purple_core_init(glue::UI_ID_C.as_ptr()) == ffi::GFALSE {
            return Err(PurpleError::Init);
        }
        let t1 = std::time::Instant::now();
        ffi::purple_set_blist(ffi::purple_blist_new());
        ffi::purple_blist_load();
        ffi::purple_prefs_load();
        uiops::connect_signals();
        ops::startup();
        tracing::debug!(core_init = ?(t1 - t0), rest = ?t1.elapsed(), "libpurple started");
    }
    Ok(())
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
