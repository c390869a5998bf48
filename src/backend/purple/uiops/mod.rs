//! libpurple's UI operations and signal handlers: how what happens in
//! libpurple becomes protocol events. One file per family; each installs
//! its static ops struct (UI-ops structs must live for the process).
//!
//! Callbacks wrap the pointers libpurple passes them in handles
//! (`from_ptr`) and go through the bottom layers (`view`, `events`,
//! `state`, `accounts`); they never call `commands`.

mod connections;
mod conversations;
mod dns;
mod notify;
mod request;
mod signals;

use super::ffi;

pub(crate) use signals::connect as connect_signals;

unsafe extern "C" fn ui_init() {
    conversations::install();
    connections::install();
    notify::install();
    request::install();
    dns::install();
}

static mut CORE_OPS: ffi::PurpleCoreUiOps = ffi::PurpleCoreUiOps {
    ui_prefs_init: None,
    debug_ui_init: None,
    ui_init: Some(ui_init),
    quit: None,
    get_ui_info: None,
    _purple_reserved1: None,
    _purple_reserved2: None,
    _purple_reserved3: None,
};

/// Installs the core UI ops (before `purple_core_init`, which calls
/// `ui_init`, which installs the others). Purple thread only.
pub(crate) fn install_core() {
    let ops = &raw mut CORE_OPS;
    // SAFETY: a static that lives for the process; libpurple only reads it.
    unsafe { ffi::purple_core_set_ui_ops(ops) };
}
