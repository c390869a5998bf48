//! Notification UI ops: every notification becomes a `notice` event.

use std::ffi::{c_char, c_void};

use super::super::handles::{Account, Connection};
use super::super::{events, ffi, glue};
use crate::backend::event::{Event, Notice};
use crate::backend::protocol::clean_incoming;

/// A C string argument, cleaned (`None` for NULL).
///
/// # Safety
/// `p` is NULL or a valid C string.
unsafe fn text(p: *const c_char) -> Option<String> {
    // SAFETY: the caller's contract.
    unsafe { glue::opt_string(p) }.map(|s| clean_incoming(s).0)
}

/// # Safety
/// The strings are NULL or valid C strings.
unsafe fn titled(
    level: &'static str,
    title: *const c_char,
    primary: *const c_char,
    secondary: *const c_char,
) -> Notice {
    Notice {
        level,
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        title: unsafe { text(title) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        primary: unsafe { text(primary) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        secondary: unsafe { text(secondary) },
        ..Notice::default()
    }
}

unsafe extern "C" fn notify_message(
    kind: ffi::PurpleNotifyMsgType,
    title: *const c_char,
    primary: *const c_char,
    secondary: *const c_char,
) -> *mut c_void {
    let level = match kind {
        ffi::PURPLE_NOTIFY_MSG_ERROR => "error",
        ffi::PURPLE_NOTIFY_MSG_WARNING => "warning",
        _ => "info",
    };
    if level == "error" && super::super::state::with(|s| std::mem::take(&mut s.quiet_error)) {
        return std::ptr::null_mut(); // reported as chat.join_failed
    }
    // SAFETY: libpurple's string arguments, NULL or valid for the call.
    events::emit(Event::Notice(unsafe {
        titled(level, title, primary, secondary)
    }));
    std::ptr::null_mut()
}

unsafe extern "C" fn notify_formatted(
    title: *const c_char,
    primary: *const c_char,
    secondary: *const c_char,
    body: *const c_char,
) -> *mut c_void {
    // SAFETY: libpurple's string arguments, NULL or valid for the call.
    let mut n = unsafe { titled("info", title, primary, secondary) };
    // SAFETY: NULL or valid markup for the call.
    n.text = Some(clean_incoming(unsafe { glue::markup_to_text(body) }).0);
    events::emit(Event::Notice(n));
    std::ptr::null_mut()
}

unsafe extern "C" fn notify_userinfo(
    gc: *mut ffi::PurpleConnection,
    who: *const c_char,
    info: *mut ffi::PurpleNotifyUserInfo,
) -> *mut c_void {
    // SAFETY: live user info for the call; returns a new g_malloc'd string.
    let raw = unsafe { ffi::purple_notify_user_info_get_text_with_newline(info, c"\n".as_ptr()) };
    // SAFETY: ours to free.
    let markup = unsafe { glue::take_gstring(raw) }.unwrap_or_default();
    let markup = glue::cstring(&markup);
    // SAFETY: a valid C string.
    let plain = unsafe { glue::markup_to_text(markup.as_ptr()) };
    // SAFETY: libpurple passes NULL or its live connection.
    let account = unsafe { Connection::from_ptr(gc) }.and_then(Connection::account);
    events::emit(Event::Notice(Notice {
        level: "info",
        kind: Some("userinfo"),
        account: account.map(Account::id),
        // SAFETY: NULL or a valid string for the call.
        who: Some(unsafe { glue::string(who) }),
        text: Some(clean_incoming(plain).0),
        ..Notice::default()
    }));
    std::ptr::null_mut()
}

unsafe extern "C" fn notify_uri(uri: *const c_char) -> *mut c_void {
    events::emit(Event::Notice(Notice {
        level: "info",
        kind: Some("uri"),
        // SAFETY: NULL or a valid string for the call.
        uri: Some(unsafe { glue::string(uri) }),
        ..Notice::default()
    }));
    std::ptr::null_mut()
}

static mut NOTIFY_OPS: ffi::PurpleNotifyUiOps = ffi::PurpleNotifyUiOps {
    notify_message: Some(notify_message),
    notify_email: None,
    notify_emails: None,
    notify_formatted: Some(notify_formatted),
    notify_searchresults: None,
    notify_searchresults_new_rows: None,
    notify_userinfo: Some(notify_userinfo),
    notify_uri: Some(notify_uri),
    close_notify: None,
    _purple_reserved1: None,
    _purple_reserved2: None,
    _purple_reserved3: None,
    _purple_reserved4: None,
};

pub(super) fn install() {
    let ops = &raw mut NOTIFY_OPS;
    // SAFETY: a static that lives for the process; libpurple only reads it.
    unsafe { ffi::purple_notify_set_ui_ops(ops) };
}
