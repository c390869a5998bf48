//! libpurple's event loop UI operations, on GLib's default main context.

use std::ffi::c_int;

use super::ffi;

struct Watch {
    func: ffi::PurpleInputFunction,
    data: ffi::gpointer,
    fd: c_int,
}

/// A libpurple timeout: its function and data. Every timeout is registered
/// with one of these as its GLib user data, never with libpurple's own
/// data pointer, so that a plugin's direct `g_timeout_add*` is the only
/// source carrying the plugin's data (`docs/irc.md` relies on that).
struct Timeout {
    function: ffi::GSourceFunc,
    data: ffi::gpointer,
}

unsafe extern "C" fn timeout_invoke(data: ffi::gpointer) -> ffi::gboolean {
    // SAFETY: `data` is the Timeout boxed in add_timeout, alive until
    // timeout_free.
    let t = unsafe { &*(data as *const Timeout) };
    match t.function {
        // SAFETY: libpurple's callback with libpurple's data.
        Some(f) => unsafe { f(t.data) },
        None => ffi::GFALSE,
    }
}

unsafe extern "C" fn timeout_free(data: ffi::gpointer) {
    // SAFETY: created by Box::into_raw in add_timeout, freed once here.
    drop(unsafe { Box::from_raw(data as *mut Timeout) });
}

fn add_timeout(
    interval: ffi::guint,
    seconds: bool,
    function: ffi::GSourceFunc,
    data: ffi::gpointer,
) -> ffi::guint {
    let boxed = Box::into_raw(Box::new(Timeout { function, data })) as ffi::gpointer;
    if seconds {
        // SAFETY: our trampoline and box, freed by GLib through timeout_free.
        unsafe {
            ffi::g_timeout_add_seconds_full(
                ffi::G_PRIORITY_DEFAULT,
                interval,
                Some(timeout_invoke),
                boxed,
                Some(timeout_free),
            )
        }
    } else {
        // SAFETY: as above.
        unsafe {
            ffi::g_timeout_add_full(
                ffi::G_PRIORITY_DEFAULT,
                interval,
                Some(timeout_invoke),
                boxed,
                Some(timeout_free),
            )
        }
    }
}

unsafe extern "C" fn timeout_add(
    interval: ffi::guint,
    function: ffi::GSourceFunc,
    data: ffi::gpointer,
) -> ffi::guint {
    add_timeout(interval, false, function, data)
}

unsafe extern "C" fn timeout_add_seconds(
    interval: ffi::guint,
    function: ffi::GSourceFunc,
    data: ffi::gpointer,
) -> ffi::guint {
    add_timeout(interval, true, function, data)
}

unsafe extern "C" fn source_remove(handle: ffi::guint) -> ffi::gboolean {
    // SAFETY: a source id GLib gave us (GLib warns about unknown ids).
    unsafe { ffi::g_source_remove(handle) }
}

unsafe extern "C" fn io_invoke(
    _source: *mut ffi::GIOChannel,
    condition: ffi::GIOCondition,
    data: ffi::gpointer,
) -> ffi::gboolean {
    // SAFETY: `data` is the Watch boxed in input_add, alive until io_free.
    let watch = unsafe { &*(data as *const Watch) };
    let mut cond: ffi::PurpleInputCondition = 0;
    if condition & (ffi::G_IO_IN | ffi::G_IO_HUP | ffi::G_IO_ERR) != 0 {
        cond |= ffi::PURPLE_INPUT_READ;
    }
    if condition & (ffi::G_IO_OUT | ffi::G_IO_HUP | ffi::G_IO_ERR | ffi::G_IO_NVAL) != 0 {
        cond |= ffi::PURPLE_INPUT_WRITE;
    }
    if let Some(func) = watch.func {
        // SAFETY: libpurple's input function with its own data.
        unsafe { func(watch.data, watch.fd, cond) };
    }
    ffi::GTRUE
}

unsafe extern "C" fn io_free(data: ffi::gpointer) {
    // SAFETY: created by Box::into_raw in input_add, freed once here.
    drop(unsafe { Box::from_raw(data as *mut Watch) });
}

unsafe extern "C" fn input_add(
    fd: c_int,
    cond: ffi::PurpleInputCondition,
    func: ffi::PurpleInputFunction,
    user_data: ffi::gpointer,
) -> ffi::guint {
    let mut gcond: ffi::GIOCondition = 0;
    if cond & ffi::PURPLE_INPUT_READ != 0 {
        gcond |= ffi::G_IO_IN | ffi::G_IO_HUP | ffi::G_IO_ERR | ffi::G_IO_NVAL;
    }
    if cond & ffi::PURPLE_INPUT_WRITE != 0 {
        gcond |= ffi::G_IO_OUT | ffi::G_IO_HUP | ffi::G_IO_ERR | ffi::G_IO_NVAL;
    }
    let watch = Box::new(Watch {
        func,
        data: user_data,
        fd,
    });
    // SAFETY: a new channel on libpurple's descriptor (not closed by us).
    let channel = unsafe { ffi::g_io_channel_unix_new(fd) };
    // SAFETY: our channel; `io_invoke` and `io_free` own the box from here.
    let id = unsafe {
        ffi::g_io_add_watch_full(
            channel,
            ffi::G_PRIORITY_DEFAULT,
            gcond,
            Some(io_invoke),
            Box::into_raw(watch) as ffi::gpointer,
            Some(io_free),
        )
    };
    // SAFETY: the watch holds its own reference now.
    unsafe { ffi::g_io_channel_unref(channel) };
    id
}

static mut EVENTLOOP_OPS: ffi::PurpleEventLoopUiOps = ffi::PurpleEventLoopUiOps {
    timeout_add: Some(timeout_add),
    timeout_remove: Some(source_remove),
    input_add: Some(input_add),
    input_remove: Some(source_remove),
    input_get_error: None,
    timeout_add_seconds: Some(timeout_add_seconds),
    _purple_reserved2: None,
    _purple_reserved3: None,
    _purple_reserved4: None,
};

/// Installs the event loop operations (before `purple_core_init`; purple
/// thread).
pub(crate) fn install() {
    let ops = &raw mut EVENTLOOP_OPS;
    // SAFETY: the struct is static (lives for the process) and libpurple
    // only reads it.
    unsafe { ffi::purple_eventloop_set_ui_ops(ops) };
}
