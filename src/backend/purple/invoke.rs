//! Queuing work for the purple thread from any thread.

use super::ffi;

type Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on the purple thread, soon. Safe to call from any thread.
pub(crate) fn invoke<F: FnOnce() + Send + 'static>(f: F) {
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
    // An idle source attached to the default context only ever dispatches
    // on the thread iterating that context (the purple thread, which owns
    // it); g_source_attach is thread-safe and wakes it up.
    // SAFETY: a new source, ours.
    let source = unsafe { ffi::g_idle_source_new() };
    // SAFETY: our live source.
    unsafe { ffi::g_source_set_priority(source, ffi::G_PRIORITY_DEFAULT) };
    // SAFETY: our live source; `run` and `free` own the box from here.
    unsafe {
        ffi::g_source_set_callback(
            source,
            Some(run),
            Box::into_raw(slot) as ffi::gpointer,
            Some(free),
        )
    };
    // SAFETY: GLib's default context lives for the process.
    let ctx = unsafe { ffi::g_main_context_default() };
    // SAFETY: our source and that context; attaching is thread-safe.
    unsafe { ffi::g_source_attach(source, ctx) };
    // SAFETY: the context holds its own reference now.
    unsafe { ffi::g_source_unref(source) };
}
