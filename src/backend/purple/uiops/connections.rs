//! Connection UI ops: account status, reconnection, connection notices.

use std::ffi::c_char;

use super::super::handles::{self, Connection};
use super::super::{accounts, events, ffi, glue, history};
use crate::backend::event::{Event, Notice};

/// The Sapphire id of a connection's account.
fn account_id(gc: Option<Connection>) -> Option<i64> {
    gc?.account().map(handles::Account::id)
}

/// # Safety
/// `gc` is what libpurple passed the callback: NULL or its live connection.
unsafe fn conn(gc: *mut ffi::PurpleConnection) -> Option<Connection> {
    // SAFETY: the caller's contract.
    unsafe { Connection::from_ptr(gc) }
}

unsafe extern "C" fn connect_progress(
    gc: *mut ffi::PurpleConnection,
    _text: *const c_char,
    _step: usize,
    _count: usize,
) {
    if let Some(id) = account_id(
        // SAFETY: the callback's own connection.
        unsafe { conn(gc) },
    ) {
        if events::last_status(id).as_deref() != Some("connecting") {
            events::emit_status(id, "connecting", None);
            accounts::watch_signon(id);
        }
    }
}

unsafe extern "C" fn connected(gc: *mut ffi::PurpleConnection) {
    if let Some(id) = account_id(
        // SAFETY: the callback's own connection.
        unsafe { conn(gc) },
    ) {
        accounts::reset_reconnect(id);
        // Offline messages and room history replayed from here on are
        // matched afresh against the store.
        history::reset_account(id);
        events::emit_status(id, "connected", None);
        accounts::note_nick(id);
        accounts::autojoin(id);
    }
}

unsafe extern "C" fn disconnected(gc: *mut ffi::PurpleConnection) {
    if let Some(id) = account_id(
        // SAFETY: the callback's own connection.
        unsafe { conn(gc) },
    ) {
        accounts::signon_finished(id);
        if events::last_status(id).as_deref() != Some("error") {
            events::emit_status(id, "disconnected", None);
        }
    }
}

unsafe extern "C" fn report_disconnect_reason(
    gc: *mut ffi::PurpleConnection,
    reason: ffi::PurpleConnectionError,
    text: *const c_char,
) {
    if let Some(id) = account_id(
        // SAFETY: the callback's own connection.
        unsafe { conn(gc) },
    ) {
        // SAFETY: NULL or a valid string for the call.
        let msg = unsafe { glue::string(text) };
        accounts::unwatch_signon(id);
        events::emit_status(id, "error", Some(msg));
        if !handles::error_is_fatal(reason) {
            accounts::schedule_reconnect(id);
        }
    }
}

unsafe extern "C" fn notice(gc: *mut ffi::PurpleConnection, text: *const c_char) {
    events::emit(Event::Notice(Notice {
        level: "info",
        account: account_id(
            // SAFETY: the callback's own connection.
            unsafe { conn(gc) },
        ),
        // SAFETY: NULL or a valid string for the call.
        text: Some(unsafe { glue::string(text) }),
        ..Notice::default()
    }));
}

static mut CONN_OPS: ffi::PurpleConnectionUiOps = ffi::PurpleConnectionUiOps {
    connect_progress: Some(connect_progress),
    connected: Some(connected),
    disconnected: Some(disconnected),
    notice: Some(notice),
    report_disconnect: None,
    network_connected: None,
    network_disconnected: None,
    report_disconnect_reason: Some(report_disconnect_reason),
    _purple_reserved1: None,
    _purple_reserved2: None,
    _purple_reserved3: None,
};

pub(super) fn install() {
    let ops = &raw mut CONN_OPS;
    // SAFETY: a static that lives for the process; libpurple only reads it.
    unsafe { ffi::purple_connections_set_ui_ops(ops) };
}
