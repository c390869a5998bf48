//! libpurple signal handlers: chats joined and left, topics, typing and
//! buddy presence. Each handler has the C type of its signal, and
//! [`connect`] registers each through a [`Handler`] variant of that type:
//! no function pointer of another type is ever cast.

use std::ffi::{c_char, c_void, CStr};

use super::super::handles::{Account, Buddy, Connection, Conversation, XmlNode};
use super::super::{accounts, events, ffi, glue, history, state, view};
use crate::backend::event::{ConvRef, Event, Notice};
use crate::backend::protocol::clean_incoming;

type ConvFn = unsafe extern "C" fn(*mut ffi::PurpleConversation);
type ConvUpdatedFn = unsafe extern "C" fn(*mut ffi::PurpleConversation, ffi::PurpleConvUpdateType);
type ConvWhoTextFn =
    unsafe extern "C" fn(*mut ffi::PurpleConversation, *const c_char, *const c_char);
type AccountNameFn = unsafe extern "C" fn(*mut ffi::PurpleAccount, *const c_char);
type BuddyFn = unsafe extern "C" fn(*mut ffi::PurpleBuddy);
type JabberMessageFn = unsafe extern "C" fn(
    *mut ffi::PurpleConnection,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    *mut ffi::xmlnode,
) -> ffi::gboolean;
type ReceivingFn = unsafe extern "C" fn(
    *mut ffi::PurpleAccount,
    *mut *mut c_char,
    *mut *mut c_char,
    *mut ffi::PurpleConversation,
    *mut ffi::PurpleMessageFlags,
) -> ffi::gboolean;
type ConnTextFn = unsafe extern "C" fn(*mut ffi::PurpleConnection, *mut *mut c_char);
type AccountFn = unsafe extern "C" fn(*mut ffi::PurpleAccount);
type Generic = unsafe extern "C" fn();

/// A signal handler, by the arguments its signal passes.
#[derive(Clone, Copy)]
enum Handler {
    Conv(ConvFn),
    ConvUpdated(ConvUpdatedFn),
    ConvWhoText(ConvWhoTextFn),
    AccountName(AccountNameFn),
    Buddy(BuddyFn),
    JabberMessage(JabberMessageFn),
    Receiving(ReceivingFn),
    ConnText(ConnTextFn),
    Account(AccountFn),
}

impl Handler {
    /// As libpurple's generic callback type (C's `PURPLE_CALLBACK`).
    ///
    /// Each arm casts a function pointer to the generic function pointer
    /// type, as PURPLE_CALLBACK does in C; libpurple calls it back with the
    /// signal's arguments, which are the ones the variant's type names
    /// (`SIGNALS` pairs each signal with its variant).
    fn generic(self) -> ffi::PurpleCallback {
        let f = match self {
            // SAFETY: see above (function pointer to function pointer).
            Handler::Conv(f) => unsafe { std::mem::transmute::<ConvFn, Generic>(f) },
            // SAFETY: as above.
            Handler::ConvUpdated(f) => unsafe { std::mem::transmute::<ConvUpdatedFn, Generic>(f) },
            // SAFETY: as above.
            Handler::ConvWhoText(f) => unsafe { std::mem::transmute::<ConvWhoTextFn, Generic>(f) },
            // SAFETY: as above.
            Handler::AccountName(f) => unsafe { std::mem::transmute::<AccountNameFn, Generic>(f) },
            // SAFETY: as above.
            Handler::Buddy(f) => unsafe { std::mem::transmute::<BuddyFn, Generic>(f) },
            // SAFETY: as above.
            Handler::JabberMessage(f) => unsafe {
                std::mem::transmute::<JabberMessageFn, Generic>(f)
            },
            // SAFETY: as above.
            Handler::Receiving(f) => unsafe { std::mem::transmute::<ReceivingFn, Generic>(f) },
            // SAFETY: as above.
            Handler::ConnText(f) => unsafe { std::mem::transmute::<ConnTextFn, Generic>(f) },
            // SAFETY: as above.
            Handler::Account(f) => unsafe { std::mem::transmute::<AccountFn, Generic>(f) },
        };
        Some(f)
    }
}

/// Which object emits a signal.
#[derive(Clone, Copy)]
enum Instance {
    Conversations,
    Blist,
    /// The XMPP protocol plugin (its own signals), when loaded.
    Jabber,
    /// The IRC protocol plugin (its own signals, if it is installed).
    Irc,
    Accounts,
}

/// Every signal we handle, with the handler of its type (libpurple's
/// `conversation-signals.dox`, `blist-signals.dox`, `account-signals.dox`,
/// and the IRC plugin's `irc-receiving-text`).
const SIGNALS: &[(Instance, &CStr, Handler)] = &[
    (
        Instance::Accounts,
        c"account-connecting",
        Handler::Account(account_connecting),
    ),
    (
        Instance::Conversations,
        c"chat-joined",
        Handler::Conv(on_chat_joined),
    ),
    (
        Instance::Conversations,
        c"chat-left",
        Handler::Conv(on_chat_left),
    ),
    (
        Instance::Conversations,
        c"conversation-updated",
        Handler::ConvUpdated(conversation_updated),
    ),
    (
        Instance::Conversations,
        c"chat-topic-changed",
        Handler::ConvWhoText(chat_topic_changed),
    ),
    (
        Instance::Conversations,
        c"buddy-typing",
        Handler::AccountName(buddy_typing),
    ),
    (
        Instance::Conversations,
        c"buddy-typed",
        Handler::AccountName(buddy_typed),
    ),
    (
        Instance::Conversations,
        c"buddy-typing-stopped",
        Handler::AccountName(buddy_typing_stopped),
    ),
    (
        Instance::Conversations,
        c"receiving-im-msg",
        Handler::Receiving(receiving_msg),
    ),
    (
        Instance::Conversations,
        c"receiving-chat-msg",
        Handler::Receiving(receiving_msg),
    ),
    (
        Instance::Irc,
        c"irc-receiving-text",
        Handler::ConnText(irc_receiving_text),
    ),
    (
        Instance::Blist,
        c"buddy-status-changed",
        Handler::Buddy(buddy_status_changed),
    ),
    (
        Instance::Blist,
        c"buddy-signed-on",
        Handler::Buddy(buddy_status_changed),
    ),
    (
        Instance::Blist,
        c"buddy-signed-off",
        Handler::Buddy(buddy_status_changed),
    ),
    (
        Instance::Jabber,
        c"jabber-receiving-message",
        Handler::JabberMessage(jabber_receiving_message),
    ),
];

/// Connects the signal handlers (after `purple_core_init`; purple thread).
pub(crate) fn connect() {
    static HANDLE: u8 = 0;
    // SAFETY: libpurple's static handles for its subsystems (core is up).
    let convs = unsafe { ffi::purple_conversations_get_handle() };
    // SAFETY: as above.
    let blist = unsafe { ffi::purple_blist_get_handle() };
    // SAFETY: core is up; NULL when the plugin is not loaded.
    let jabber = unsafe { ffi::purple_plugins_find_with_id(c"prpl-jabber".as_ptr()) };
    // SAFETY: a static C string; NULL or a plugin loaded for the process.
    let irc = unsafe { ffi::purple_find_prpl(c"prpl-irc".as_ptr()) }.cast::<c_void>();
    // SAFETY: as above.
    let accounts = unsafe { ffi::purple_accounts_get_handle() };
    for (instance, name, handler) in SIGNALS {
        let instance = match instance {
            Instance::Conversations => convs,
            Instance::Blist => blist,
            Instance::Jabber if jabber.is_null() => continue,
            Instance::Jabber => jabber as *mut c_void,
            Instance::Irc if irc.is_null() => continue,
            Instance::Irc => irc,
            Instance::Accounts => accounts,
        };
        // SAFETY: a registered signal of `instance`, a handler of its type
        // (see SIGNALS) and a static handle that outlives the connection.
        unsafe {
            ffi::purple_signal_connect(
                instance,
                name.as_ptr(),
                &HANDLE as *const u8 as *mut c_void,
                handler.generic(),
                std::ptr::null_mut(),
            )
        };
    }
}

/// libpurple is about to sign `account` on (before the plugin's login
/// runs): the attempt is recorded durably (see `accounts::SIGNON_STRIKES`).
unsafe extern "C" fn account_connecting(account: *mut ffi::PurpleAccount) {
    // SAFETY: libpurple passes NULL or its live account.
    if let Some(account) = unsafe { Account::from_ptr(account) } {
        accounts::signon_started(account.id());
    }
}

/// Emits `chat.joined` (once) and the topic if it is already known.
fn chat_joined(conv: Conversation) {
    let Some((account, conversation)) = view::conv_ref(conv) else {
        return;
    };
    if accounts::joined_abandoned(account, &conversation.name) {
        tracing::debug!(account, "joined an abandoned room");
        return;
    }
    tracing::debug!(account, "chat joined");
    let key = (account, conversation.name.clone());
    let first = state::with(|s| {
        s.last_joined.insert(account, conversation.name.clone());
        s.pending_joins
            .retain(|(a, n)| !(*a == account && n.eq_ignore_ascii_case(&key.1)));
        s.joined.insert(key)
    });
    if !first {
        return;
    }
    let irc = conv
        .account()
        .is_some_and(|a| a.protocol_id() == "prpl-irc");
    history::joined(account, &conversation, irc);
    events::emit(Event::ChatJoined {
        account,
        conversation: conversation.clone(),
    });
    // However it was joined (chat.join, an accepted invitation), it is
    // joined again on the next sign-on until the user leaves it.
    if let Err(e) = state::hub().autojoin_add_if_absent(account, &conversation.name) {
        tracing::error!(account, "cannot store autojoin: {e}");
    }
    // The topic may already be known (set before the signal).
    if let Some(topic) = conv.topic() {
        events::emit(Event::ChatTopic {
            account,
            conversation,
            topic: clean_incoming(topic).0,
            by: None,
        });
    }
}

/// Emits `chat.left` if clients were told the chat is joined.
pub(super) fn chat_left(conv: Conversation) {
    let Some((account, conversation)) = view::conv_ref(conv) else {
        return;
    };
    let key = (account, conversation.name.clone());
    let (was_joined, stopping) = state::with(|s| (s.joined.remove(&key), s.shutting_down));
    if was_joined {
        events::emit(Event::ChatLeft {
            account,
            conversation,
            // The backend stops (SIGTERM): the chat is rejoined when it
            // starts again, as after a kill (the hub's leftovers).
            reason: stopping.then_some("restart"),
        });
    }
}

unsafe extern "C" fn on_chat_joined(conv: *mut ffi::PurpleConversation) {
    // SAFETY: libpurple passes NULL or its live conversation.
    let conv = unsafe { Conversation::from_ptr(conv) };
    if let Some(conv) = conv {
        chat_joined(conv);
    }
}

unsafe extern "C" fn on_chat_left(conv: *mut ffi::PurpleConversation) {
    // SAFETY: libpurple passes NULL or its live conversation.
    let conv = unsafe { Conversation::from_ptr(conv) };
    if let Some(conv) = conv {
        chat_left(conv);
    }
}

unsafe extern "C" fn conversation_updated(
    conv: *mut ffi::PurpleConversation,
    kind: ffi::PurpleConvUpdateType,
) {
    // A chat is marked "left" without the chat-left signal when its
    // account disconnects.
    if kind == ffi::PURPLE_CONV_UPDATE_CHATLEFT {
        // SAFETY: libpurple passes NULL or its live conversation.
        if let Some(conv) = unsafe { Conversation::from_ptr(conv) } {
            chat_left(conv);
        }
    }
}

unsafe extern "C" fn chat_topic_changed(
    conv: *mut ffi::PurpleConversation,
    who: *const c_char,
    topic: *const c_char,
) {
    // SAFETY: libpurple passes NULL or its live conversation.
    let conv = unsafe { Conversation::from_ptr(conv) };
    let Some((account, conversation)) = conv.and_then(view::conv_ref) else {
        return;
    };
    let key = (account, conversation.name.clone());
    let joined = state::with(|s| {
        s.topic_pending
            .remove(&(account, conversation.name.to_lowercase()));
        s.joined.contains(&key)
    });
    if !joined {
        return; // sent with chat.joined
    }
    events::emit(Event::ChatTopic {
        account,
        conversation,
        // SAFETY: NULL or a valid string for the call.
        topic: clean_incoming(unsafe { glue::string(topic) }).0,
        // SAFETY: as above.
        by: unsafe { glue::opt_string(who) },
    });
}

/// # Safety
/// `account` and `name` are what libpurple passed a typing signal handler.
unsafe fn typing(account: *mut ffi::PurpleAccount, name: *const c_char, state: &'static str) {
    // SAFETY: libpurple passes its live account to these handlers.
    let Some(account) = (unsafe { Account::from_ptr(account) }) else {
        return;
    };
    // SAFETY: NULL or a valid string for the call.
    let name = unsafe { glue::string(name) };
    events::emit(Event::Typing {
        account: account.id(),
        conversation: ConvRef::im(account.normalize(&name)),
        state,
    });
}

unsafe extern "C" fn buddy_typing(account: *mut ffi::PurpleAccount, name: *const c_char) {
    // SAFETY: the handler's own arguments.
    unsafe { typing(account, name, "typing") }
}

unsafe extern "C" fn buddy_typed(account: *mut ffi::PurpleAccount, name: *const c_char) {
    // SAFETY: the handler's own arguments.
    unsafe { typing(account, name, "paused") }
}

unsafe extern "C" fn buddy_typing_stopped(account: *mut ffi::PurpleAccount, name: *const c_char) {
    // SAFETY: the handler's own arguments.
    unsafe { typing(account, name, "none") }
}

unsafe extern "C" fn buddy_status_changed(buddy: *mut ffi::PurpleBuddy) {
    // SAFETY: libpurple passes its live buddy to these handlers.
    let Some(buddy) = (unsafe { Buddy::from_ptr(buddy) }) else {
        return;
    };
    if let Some(info) = view::buddy_info(buddy) {
        events::emit(Event::BuddyPresence(info));
    }
}

/// Every `<message>` the XMPP plugin receives. libpurple drops an error
/// reply without a body, so a topic change the room refused (prosody's
/// error carries neither our `<subject>` nor a body) would vanish: an
/// error without a body from a room whose topic the user is changing
/// becomes a `notice` (level `error`, `who` the room) with the server's
/// reason.
unsafe extern "C" fn jabber_receiving_message(
    gc: *mut ffi::PurpleConnection,
    kind: *const c_char,
    _id: *const c_char,
    from: *const c_char,
    _to: *const c_char,
    message: *mut ffi::xmlnode,
) -> ffi::gboolean {
    // SAFETY: the signal's arguments: NULL or valid strings for the call.
    if unsafe { glue::opt_string(kind) }.as_deref() != Some("error") {
        return ffi::GFALSE;
    }
    // SAFETY: the message being received, live for the call.
    let Some(msg) = (unsafe { XmlNode::from_ptr(message) }) else {
        return ffi::GFALSE;
    };
    if msg.child("body").is_some() {
        return ffi::GFALSE;
    }
    // SAFETY: the callback's own connection.
    let Some(account) = (unsafe { Connection::from_ptr(gc) }).and_then(Connection::account) else {
        return ffi::GFALSE;
    };
    // SAFETY: as above.
    let from = unsafe { glue::string(from) };
    let room = from.split('/').next().unwrap_or_default().to_owned();
    if !state::with(|s| s.topic_pending.remove(&(account.id(), room.to_lowercase()))) {
        return ffi::GFALSE;
    }
    let reason = msg.child("error").and_then(|e| {
        e.child_ns("text", "urn:ietf:params:xml:ns:xmpp-stanzas")
            .and_then(XmlNode::text)
            .or_else(|| e.first_element().map(XmlNode::name))
    });
    events::emit(Event::Notice(Notice {
        level: "error",
        account: Some(account.id()),
        title: Some("Topic not changed".into()),
        primary: Some(format!("The server refused to change the topic of {room}.")),
        secondary: reason.map(|r| clean_incoming(r).0),
        who: Some(room),
        ..Notice::default()
    }));
    ffi::GFALSE
}
/// Drops the message libpurple makes of a CTCP request (VERSION, PING,
/// TIME, …) the line being handled carried: the IRC plugin has already
/// answered the ones it answers (VERSION and PING, with a NOTICE), and the
/// message ("Received CTCP 'VERSION' …") would open an unread private
/// conversation from a stranger. Logged, not shown (`docs/irc.md`).
unsafe extern "C" fn receiving_msg(
    account: *mut ffi::PurpleAccount,
    _sender: *mut *mut c_char,
    _message: *mut *mut c_char,
    _conv: *mut ffi::PurpleConversation,
    _flags: *mut ffi::PurpleMessageFlags,
) -> ffi::gboolean {
    // SAFETY: libpurple passes its live account.
    let irc = unsafe { Account::from_ptr(account) }.is_some_and(|a| a.protocol_id() == "prpl-irc");
    // (Only IRC messages come from within an IRC line's handling, where
    // the flag is set and reset.)
    if irc && state::with(|s| s.ctcp_line.take()).is_some() {
        return ffi::GTRUE;
    }
    ffi::GFALSE
}

/// Every raw line the IRC plugin receives, before the plugin handles it: a
/// CTCP request is marked so its message is dropped (`receiving_msg`); a
/// numeric refusing a join becomes `chat.join_failed` (see
/// `backend::irc`), and the plugin's own error pop-up for it is not
/// repeated as a notice.
unsafe extern "C" fn irc_receiving_text(gc: *mut ffi::PurpleConnection, text: *mut *mut c_char) {
    state::with(|s| {
        s.quiet_error = false;
        s.ctcp_line = None;
    });
    if text.is_null() {
        return;
    }
    // SAFETY: libpurple passes a valid pointer to its line pointer.
    let raw = unsafe { *text };
    // SAFETY: the line, NULL or a valid C string for the call.
    let line = unsafe { glue::string(raw) };
    if let Some(request) = crate::backend::irc::ctcp_request(&line) {
        let from: String = line[1..]
            .split(['!', ' '])
            .next()
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_graphic)
            .take(64)
            .collect();
        tracing::info!(%from, "CTCP {request} request: answered as libpurple does, not shown");
        state::with(|s| s.ctcp_line = Some(request));
        return;
    }
    let Some(refusal) = crate::backend::irc::join_refusal(&line) else {
        return;
    };
    let channel = refusal.channel;
    // SAFETY: libpurple passes its live connection.
    let Some(account) = (unsafe { Connection::from_ptr(gc) }).and_then(|c| c.account()) else {
        return;
    };
    let id = account.id();
    let key = (id, account.normalize(&channel));
    let (joined, asked) = state::with(|s| {
        let joined = s
            .joined
            .iter()
            .any(|(a, n)| *a == id && n.eq_ignore_ascii_case(&channel));
        (joined, s.pending_joins.remove(&key))
    });
    if joined {
        return; // e.g. a 477 about a channel we are in
    }
    state::with(|s| s.quiet_error = refusal.libpurple_notifies);
    // A join the user asked for and the server refused is not remembered
    // (a rejoin after a reconnection that fails stays remembered).
    if asked {
        if let Err(e) = state::hub().autojoin_remove(id, &channel) {
            tracing::error!(account = id, "cannot forget the chat: {e}");
        }
    }
    events::emit(Event::ChatJoinFailed {
        account: id,
        conversation: ConvRef::chat(channel),
        message: clean_incoming(refusal.reason).0,
    });
}
