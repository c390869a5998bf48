//! libpurple UI operations and signal handlers that turn what happens in
//! libpurple into protocol events (purple thread only).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_void};

use serde_json::{json, Value};

use super::ops::{account_id, conv_json, conv_key_name};
use super::{dns, ffi, glue, hub, request};
use crate::backend::protocol::clean_incoming;

thread_local! {
    /// Last status emitted per account, to drop repeats.
    static STATUS: RefCell<HashMap<i64, String>> = RefCell::new(HashMap::new());
    /// Chats we told clients are joined.
    static JOINED: RefCell<HashSet<(i64, String)>> = RefCell::new(HashSet::new());
}

/// Emits an event, logging (not propagating) a store failure: a callback
/// from libpurple has nobody to return an error to.
pub fn emit(event: Value) -> Option<u64> {
    match hub().emit(event) {
        Ok(seq) => Some(seq),
        Err(e) => {
            tracing::error!("cannot store event: {e}");
            None
        }
    }
}

pub fn emit_status(account: i64, status: &str, message: Option<String>) {
    let changed = STATUS.with(|s| {
        let mut s = s.borrow_mut();
        if s.get(&account).map(String::as_str) == Some(status) && message.is_none() {
            false
        } else {
            s.insert(account, status.to_owned());
            true
        }
    });
    if changed {
        let mut e = json!({"op": "account.status", "account": account, "status": status});
        if let Some(m) = message {
            e["message"] = json!(m);
        }
        emit(e);
    }
}

pub fn last_status(account: i64) -> Option<String> {
    STATUS.with(|s| s.borrow().get(&account).cloned())
}

// ---- core -------------------------------------------------------------

unsafe extern "C" fn ui_init() {
    unsafe {
        ffi::purple_conversations_set_ui_ops(std::ptr::addr_of_mut!(CONV_OPS));
        ffi::purple_connections_set_ui_ops(std::ptr::addr_of_mut!(CONN_OPS));
        ffi::purple_notify_set_ui_ops(std::ptr::addr_of_mut!(NOTIFY_OPS));
        request::install();
        dns::install();
    }
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

/// # Safety
/// Purple thread only, before `purple_core_init`.
pub unsafe fn install_core() {
    unsafe { ffi::purple_core_set_ui_ops(std::ptr::addr_of_mut!(CORE_OPS)) };
}

// ---- conversations ----------------------------------------------------

unsafe extern "C" fn write_conv(
    conv: *mut ffi::PurpleConversation,
    name: *const c_char,
    alias: *const c_char,
    message: *const c_char,
    flags: ffi::PurpleMessageFlags,
    mtime: ffi::time_t,
) {
    if flags & ffi::PURPLE_MESSAGE_INVISIBLE != 0 {
        return;
    }
    let Some((account, conversation)) = (unsafe { conv_json(conv) }) else {
        return;
    };
    let system =
        ffi::PURPLE_MESSAGE_SYSTEM | ffi::PURPLE_MESSAGE_ERROR | ffi::PURPLE_MESSAGE_NOTIFY;
    let direction = if flags & system != 0 {
        "system"
    } else if flags & ffi::PURPLE_MESSAGE_SEND != 0 {
        "out"
    } else {
        "in"
    };
    let (text, truncated) = clean_incoming(unsafe { glue::markup_to_text(message) });
    let sender = unsafe { glue::string(name) };
    // A highlight word of the user's counts as a mention in chats.
    let highlight = direction == "in"
        && conversation["kind"] == "chat"
        && crate::backend::notify::highlighted(&text);
    let mut e = json!({
        "op": "message",
        "account": account,
        "conversation": conversation,
        "sender": sender,
        "text": text,
        "direction": direction,
    });
    if let Some(alias) = unsafe { glue::opt_string(alias) } {
        if alias != sender && !alias.is_empty() {
            e["alias"] = json!(alias);
        }
    }
    if truncated {
        e["truncated"] = json!(true);
    }
    if (flags & ffi::PURPLE_MESSAGE_NICK != 0 || highlight) && direction == "in" {
        // Someone said our name (or a highlight word) in a chat.
        e["mention"] = json!(true);
    }
    if flags & ffi::PURPLE_MESSAGE_DELAYED != 0 {
        // Server-replayed history: when it was originally sent.
        e["delayed"] = json!(true);
        e["sent"] = json!(mtime.saturating_mul(1000));
    }
    if let Some(seq) = emit(e) {
        if direction == "out" {
            super::ops::LAST_OUT.with(|l| l.set(seq));
        }
    }
}

unsafe fn member_json(cb: *mut ffi::PurpleConvChatBuddy) -> Value {
    let cb = unsafe { &*cb };
    let flags = cb.flags;
    let mut roles = Vec::new();
    for (bit, name) in [
        (ffi::PURPLE_CBFLAGS_FOUNDER, "founder"),
        (ffi::PURPLE_CBFLAGS_OP, "op"),
        (ffi::PURPLE_CBFLAGS_HALFOP, "halfop"),
        (ffi::PURPLE_CBFLAGS_VOICE, "voice"),
        (ffi::PURPLE_CBFLAGS_TYPING, "typing"),
        (ffi::PURPLE_CBFLAGS_AWAY, "away"),
    ] {
        if flags & bit != 0 {
            roles.push(name);
        }
    }
    let mut m = json!({"name": unsafe { glue::string(cb.name) }, "flags": roles});
    if let Some(alias) = unsafe { glue::opt_string(cb.alias) } {
        m["alias"] = json!(alias);
    }
    m
}

fn members_event(conv: *mut ffi::PurpleConversation, field: &str, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    let Some((account, conversation)) = (unsafe { conv_json(conv) }) else {
        return;
    };
    emit(json!({"op": "chat.members", "account": account,
        "conversation": conversation, field: items}));
}

unsafe extern "C" fn chat_add_users(
    conv: *mut ffi::PurpleConversation,
    cbuddies: *mut ffi::GList,
    _new_arrivals: ffi::gboolean,
) {
    let items = unsafe { glue::glist::<ffi::PurpleConvChatBuddy>(cbuddies) }
        .into_iter()
        .map(|cb| unsafe { member_json(cb) })
        .collect();
    members_event(conv, "added", items);
}

unsafe extern "C" fn chat_remove_users(conv: *mut ffi::PurpleConversation, users: *mut ffi::GList) {
    let items = unsafe { glue::glist::<c_char>(users) }
        .into_iter()
        .map(|n| json!(unsafe { glue::string(n) }))
        .collect();
    members_event(conv, "removed", items);
}

unsafe extern "C" fn chat_rename_user(
    conv: *mut ffi::PurpleConversation,
    old_name: *const c_char,
    new_name: *const c_char,
    _new_alias: *const c_char,
) {
    let item =
        json!({"from": unsafe { glue::string(old_name) }, "to": unsafe { glue::string(new_name) }});
    members_event(conv, "renamed", vec![item]);
}

unsafe extern "C" fn chat_update_user(conv: *mut ffi::PurpleConversation, user: *const c_char) {
    let chat = unsafe { ffi::purple_conversation_get_chat_data(conv) };
    if chat.is_null() {
        return;
    }
    let cb = unsafe { ffi::purple_conv_chat_cb_find(chat, user) };
    if cb.is_null() {
        return;
    }
    members_event(conv, "updated", vec![unsafe { member_json(cb) }]);
}

unsafe extern "C" fn destroy_conversation(conv: *mut ffi::PurpleConversation) {
    if unsafe { ffi::purple_conversation_get_type(conv) } == ffi::PURPLE_CONV_TYPE_CHAT {
        unsafe { chat_left(conv as *mut c_void) };
    }
}

static mut CONV_OPS: ffi::PurpleConversationUiOps = ffi::PurpleConversationUiOps {
    create_conversation: None,
    destroy_conversation: Some(destroy_conversation),
    write_chat: None,
    write_im: None,
    write_conv: Some(write_conv),
    chat_add_users: Some(chat_add_users),
    chat_rename_user: Some(chat_rename_user),
    chat_remove_users: Some(chat_remove_users),
    chat_update_user: Some(chat_update_user),
    present: None,
    has_focus: None,
    custom_smiley_add: None,
    custom_smiley_write: None,
    custom_smiley_close: None,
    send_confirm: None,
    _purple_reserved1: None,
    _purple_reserved2: None,
    _purple_reserved3: None,
    _purple_reserved4: None,
};

// ---- connections ------------------------------------------------------

unsafe fn gc_account(gc: *mut ffi::PurpleConnection) -> Option<i64> {
    let account = unsafe { ffi::purple_connection_get_account(gc) };
    (!account.is_null()).then(|| unsafe { account_id(account) })
}

unsafe extern "C" fn connect_progress(
    gc: *mut ffi::PurpleConnection,
    _text: *const c_char,
    _step: usize,
    _count: usize,
) {
    if let Some(id) = unsafe { gc_account(gc) } {
        if last_status(id).as_deref() != Some("connecting") {
            emit_status(id, "connecting", None);
        }
    }
}

unsafe extern "C" fn connected(gc: *mut ffi::PurpleConnection) {
    if let Some(id) = unsafe { gc_account(gc) } {
        super::ops::reset_reconnect(id);
        emit_status(id, "connected", None);
        super::ops::autojoin(id);
    }
}

unsafe extern "C" fn disconnected(gc: *mut ffi::PurpleConnection) {
    if let Some(id) = unsafe { gc_account(gc) } {
        if last_status(id).as_deref() != Some("error") {
            emit_status(id, "disconnected", None);
        }
    }
}

unsafe extern "C" fn report_disconnect_reason(
    gc: *mut ffi::PurpleConnection,
    reason: ffi::PurpleConnectionError,
    text: *const c_char,
) {
    if let Some(id) = unsafe { gc_account(gc) } {
        let fatal = unsafe { ffi::purple_connection_error_is_fatal(reason) } != ffi::GFALSE;
        let msg = unsafe { glue::string(text) };
        emit_status(id, "error", Some(msg));
        if !fatal {
            super::ops::schedule_reconnect(id);
        }
    }
}

unsafe extern "C" fn conn_notice(gc: *mut ffi::PurpleConnection, text: *const c_char) {
    let account = unsafe { gc_account(gc) };
    emit(json!({"op": "notice", "account": account, "level": "info",
        "text": unsafe { glue::string(text) }}));
}

static mut CONN_OPS: ffi::PurpleConnectionUiOps = ffi::PurpleConnectionUiOps {
    connect_progress: Some(connect_progress),
    connected: Some(connected),
    disconnected: Some(disconnected),
    notice: Some(conn_notice),
    report_disconnect: None,
    network_connected: None,
    network_disconnected: None,
    report_disconnect_reason: Some(report_disconnect_reason),
    _purple_reserved1: None,
    _purple_reserved2: None,
    _purple_reserved3: None,
};

// ---- notifications ----------------------------------------------------

fn notice(level: &str, title: *const c_char, primary: *const c_char, secondary: *const c_char) {
    let mut e = json!({"op": "notice", "level": level});
    for (k, p) in [
        ("title", title),
        ("primary", primary),
        ("secondary", secondary),
    ] {
        if let Some(s) = unsafe { glue::opt_string(p) } {
            e[k] = json!(clean_incoming(s).0);
        }
    }
    emit(e);
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
    notice(level, title, primary, secondary);
    std::ptr::null_mut()
}

unsafe extern "C" fn notify_formatted(
    title: *const c_char,
    primary: *const c_char,
    secondary: *const c_char,
    text: *const c_char,
) -> *mut c_void {
    let mut e = json!({"op": "notice", "level": "info"});
    for (k, p) in [
        ("title", title),
        ("primary", primary),
        ("secondary", secondary),
    ] {
        if let Some(s) = unsafe { glue::opt_string(p) } {
            e[k] = json!(clean_incoming(s).0);
        }
    }
    e["text"] = json!(clean_incoming(unsafe { glue::markup_to_text(text) }).0);
    emit(e);
    std::ptr::null_mut()
}

unsafe extern "C" fn notify_userinfo(
    gc: *mut ffi::PurpleConnection,
    who: *const c_char,
    info: *mut ffi::PurpleNotifyUserInfo,
) -> *mut c_void {
    let text = unsafe {
        glue::take_gstring(ffi::purple_notify_user_info_get_text_with_newline(
            info,
            c"\n".as_ptr(),
        ))
    }
    .unwrap_or_default();
    let text = unsafe { glue::markup_to_text(glue::cstring(&text).as_ptr()) };
    emit(json!({"op": "notice", "level": "info", "kind": "userinfo",
        "account": unsafe { gc_account(gc) }, "who": unsafe { glue::string(who) },
        "text": clean_incoming(text).0}));
    std::ptr::null_mut()
}

unsafe extern "C" fn notify_uri(uri: *const c_char) -> *mut c_void {
    emit(
        json!({"op": "notice", "level": "info", "kind": "uri", "uri": unsafe { glue::string(uri) }}),
    );
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

// ---- signals ----------------------------------------------------------

unsafe extern "C" fn chat_joined(conv: *mut c_void) {
    let conv = conv as *mut ffi::PurpleConversation;
    let Some((account, conversation)) = (unsafe { conv_json(conv) }) else {
        return;
    };
    let name = conv_key_name(&conversation);
    let new = JOINED.with(|j| j.borrow_mut().insert((account, name)));
    if new {
        emit(json!({"op": "chat.joined", "account": account, "conversation": conversation}));
        // However it was joined (chat.join, an accepted invitation), it is
        // joined again on the next sign-on until the user leaves it.
        hub().autojoin_add_if_absent(account, &conv_key_name(&conversation));
        // The topic may already be known (set before the signal).
        let chat = unsafe { ffi::purple_conversation_get_chat_data(conv) };
        if !chat.is_null() {
            if let Some(topic) = unsafe { glue::opt_string(ffi::purple_conv_chat_get_topic(chat)) }
            {
                emit(json!({"op": "chat.topic", "account": account,
                    "conversation": conversation, "topic": clean_incoming(topic).0}));
            }
        }
    }
}

unsafe extern "C" fn chat_left(conv: *mut c_void) {
    let conv = conv as *mut ffi::PurpleConversation;
    let Some((account, conversation)) = (unsafe { conv_json(conv) }) else {
        return;
    };
    let name = conv_key_name(&conversation);
    if JOINED.with(|j| j.borrow_mut().remove(&(account, name))) {
        emit(json!({"op": "chat.left", "account": account, "conversation": conversation}));
    }
}

unsafe extern "C" fn conversation_updated(conv: *mut c_void, kind: ffi::PurpleConvUpdateType) {
    // A chat is marked "left" without the chat-left signal when its
    // account disconnects.
    if kind == ffi::PURPLE_CONV_UPDATE_CHATLEFT {
        unsafe { chat_left(conv) };
    }
}

/// Forgets the joined chats of an account (it was removed).
pub fn forget_account(account: i64) {
    JOINED.with(|j| j.borrow_mut().retain(|k| k.0 != account));
    STATUS.with(|s| s.borrow_mut().remove(&account));
}

unsafe extern "C" fn chat_topic_changed(
    conv: *mut c_void,
    who: *const c_char,
    topic: *const c_char,
) {
    let conv = conv as *mut ffi::PurpleConversation;
    let Some((account, conversation)) = (unsafe { conv_json(conv) }) else {
        return;
    };
    if !JOINED.with(|j| {
        j.borrow()
            .contains(&(account, conv_key_name(&conversation)))
    }) {
        return; // sent with chat.joined
    }
    let mut e = json!({"op": "chat.topic", "account": account, "conversation": conversation,
        "topic": clean_incoming(unsafe { glue::string(topic) }).0});
    if let Some(who) = unsafe { glue::opt_string(who) } {
        e["by"] = json!(who);
    }
    emit(e);
}

unsafe fn typing(account: *mut c_void, name: *const c_char, state: &str) {
    let account = account as *mut ffi::PurpleAccount;
    let id = unsafe { account_id(account) };
    let normalized = unsafe { glue::string(ffi::purple_normalize(account, name)) };
    emit(json!({"op": "typing", "account": id,
        "conversation": {"kind": "im", "name": normalized}, "state": state}));
}

unsafe extern "C" fn buddy_typing(account: *mut c_void, name: *const c_char) {
    unsafe { typing(account, name, "typing") }
}

unsafe extern "C" fn buddy_typed(account: *mut c_void, name: *const c_char) {
    unsafe { typing(account, name, "paused") }
}

unsafe extern "C" fn buddy_typing_stopped(account: *mut c_void, name: *const c_char) {
    unsafe { typing(account, name, "none") }
}

unsafe extern "C" fn buddy_status_changed(buddy: *mut c_void) {
    let buddy = buddy as *mut ffi::PurpleBuddy;
    if let Some(mut e) = unsafe { super::ops::buddy_json(buddy) } {
        e["op"] = json!("buddy.presence");
        emit(e);
    }
}

fn signal(instance: *mut c_void, name: &std::ffi::CStr, cb: *const ()) {
    static HANDLE: u8 = 0;
    // SAFETY: `cb` is an `unsafe extern "C" fn` whose parameters match the
    // signal's; libpurple calls it through a generic function pointer.
    unsafe {
        let cb: ffi::PurpleCallback =
            Some(std::mem::transmute::<*const (), unsafe extern "C" fn()>(cb));
        ffi::purple_signal_connect(
            instance,
            name.as_ptr(),
            &HANDLE as *const u8 as *mut c_void,
            cb,
            std::ptr::null_mut(),
        );
    }
}

/// Connects the signal handlers (after `purple_core_init`).
///
/// # Safety
/// Purple thread only.
pub unsafe fn connect_signals() {
    let convs = unsafe { ffi::purple_conversations_get_handle() };
    signal(convs, c"chat-joined", chat_joined as *const ());
    signal(convs, c"chat-left", chat_left as *const ());
    signal(
        convs,
        c"conversation-updated",
        conversation_updated as *const (),
    );
    signal(
        convs,
        c"chat-topic-changed",
        chat_topic_changed as *const (),
    );
    signal(convs, c"buddy-typing", buddy_typing as *const ());
    signal(convs, c"buddy-typed", buddy_typed as *const ());
    signal(
        convs,
        c"buddy-typing-stopped",
        buddy_typing_stopped as *const (),
    );
    let blist = unsafe { ffi::purple_blist_get_handle() };
    signal(
        blist,
        c"buddy-status-changed",
        buddy_status_changed as *const (),
    );
    signal(blist, c"buddy-signed-on", buddy_status_changed as *const ());
    signal(
        blist,
        c"buddy-signed-off",
        buddy_status_changed as *const (),
    );
}
