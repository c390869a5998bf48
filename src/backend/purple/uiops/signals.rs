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
    Accounts,
}

/// Every signal we handle, with the handler of its type (libpurple's
/// `conversation-signals.dox`, `blist-signals.dox`, `account-signals.dox`).
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
    // SAFETY: as above.
    let accounts = unsafe { ffi::purple_accounts_get_handle() };
    for (instance, name, handler) in SIGNALS {
        let instance = match instance {
            Instance::Conversations => convs,
            Instance::Blist => blist,
            Instance::Jabber if jabber.is_null() => continue,
            Instance::Jabber => jabber as *mut c_void,
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
        return;
    }
    let key = (account, conversation.name.clone());
    let first = state::with(|s| {
        s.last_joined.insert(account, conversation.name.clone());
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
