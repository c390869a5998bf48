//! Conversation UI ops: messages and chat members.

use std::ffi::c_char;

use super::super::handles::Conversation;
use super::super::{events, ffi, glue, history, state, view};
use super::signals;
use crate::backend::event::{Direction, Event, Member, Message, Renamed};
use crate::backend::protocol::{clean_incoming, ConvKind};

/// A C string argument of a callback.
///
/// # Safety
/// `p` is NULL or a valid C string.
unsafe fn arg(p: *const c_char) -> String {
    // SAFETY: the caller's contract.
    unsafe { glue::string(p) }
}

/// # Safety
/// As for [`arg`].
unsafe fn opt_arg(p: *const c_char) -> Option<String> {
    // SAFETY: the caller's contract.
    unsafe { glue::opt_string(p) }
}

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
    // SAFETY: libpurple passes NULL or its live conversation.
    let conv = unsafe { Conversation::from_ptr(conv) };
    let Some((account, conversation)) = conv.and_then(view::conv_ref) else {
        return;
    };
    let system =
        ffi::PURPLE_MESSAGE_SYSTEM | ffi::PURPLE_MESSAGE_ERROR | ffi::PURPLE_MESSAGE_NOTIFY;
    // An IRC server's notices go to the account's one server
    // conversation, as quiet system lines.
    let server = conv
        .and_then(Conversation::account)
        .filter(|a| a.protocol_id() == "prpl-irc")
        .filter(|_| {
            conversation.kind == ConvKind::Im && view::is_irc_server_name(&conversation.name)
        })
        .map(view::server_conversation);
    let conversation = server.clone().unwrap_or(conversation);
    let direction = if server.is_some() || flags & system != 0 {
        Direction::System
    } else if flags & ffi::PURPLE_MESSAGE_SEND != 0 {
        Direction::Out
    } else {
        Direction::In
    };
    // SAFETY: NULL or the message markup, valid for the call.
    let (text, truncated) = clean_incoming(unsafe { glue::markup_to_text(message) });
    // SAFETY: libpurple's string arguments, NULL or valid for the call.
    let sender = unsafe { arg(name) };
    // SAFETY: libpurple's string arguments, NULL or valid for the call.
    let alias = unsafe { opt_arg(alias) }.filter(|a| *a != sender && !a.is_empty());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let after = conv
        .and_then(Conversation::account)
        .map_or(events::DELAYED_AFTER_S, |a| {
            events::delayed_after(&a.protocol_id())
        });
    let delayed = events::delayed(flags & ffi::PURPLE_MESSAGE_DELAYED != 0, mtime, now, after);
    // libpurple writes actions (IRC's CTCP ACTION both ways, XMPP's
    // XEP-0245) as text starting with "/me ".
    let (text, action) = match text.strip_prefix("/me ") {
        Some(rest) if direction != Direction::System => (rest.to_owned(), true),
        _ => (text, false),
    };
    let sent = delayed.then(|| mtime.saturating_mul(1000));
    // A replayed line already in the history is not stored again, nor
    // counted unread, nor a mention (`history`). The user's own line being
    // sent now is never one.
    let ours = direction == Direction::Out && state::with(|s| s.outgoing.is_some());
    if direction != Direction::System
        && history::is_duplicate(account, &conversation, &sender, &text, sent, ours)
    {
        tracing::debug!(account, "replayed line already stored: dropped");
        return;
    }
    // A highlight word of the user's counts as a mention in chats.
    let highlight = direction == Direction::In
        && conversation.kind == ConvKind::Chat
        && crate::backend::notify::highlighted(&text);
    if direction == Direction::Out {
        if let Some(queued) = events::take_queued_echo() {
            // A paced line leaving the queue: clients already have its
            // message (`queued: true`); now it is on its way.
            events::emit(Event::MessageSent {
                account,
                conversation,
                message: queued,
                error: None,
            });
            return;
        }
    }
    let seq = events::emit(Event::Message(Message {
        account,
        conversation,
        sender,
        alias,
        text,
        direction,
        truncated,
        // Someone said our name (or a highlight word) in a chat.
        mention: (flags & ffi::PURPLE_MESSAGE_NICK != 0 || highlight) && direction == Direction::In,
        action,
        // Server-replayed history: when it was originally sent.
        delayed,
        sent,
        queued: false,
    }));
    if let (Some(seq), Direction::Out) = (seq, direction) {
        events::note_outgoing(seq);
    }
}

/// Emits one `chat.members` change.
fn members(conv: Option<Conversation>, change: impl FnOnce(&mut MembersChange)) {
    let Some((account, conversation)) = conv.and_then(view::conv_ref) else {
        return;
    };
    let mut c = MembersChange::default();
    change(&mut c);
    if c.added.is_empty() && c.removed.is_empty() && c.renamed.is_empty() && c.updated.is_empty() {
        return;
    }
    events::emit(Event::ChatMembers {
        account,
        conversation,
        added: c.added,
        removed: c.removed,
        renamed: c.renamed,
        updated: c.updated,
    });
}

#[derive(Default)]
struct MembersChange {
    added: Vec<Member>,
    removed: Vec<String>,
    renamed: Vec<Renamed>,
    updated: Vec<Member>,
}

unsafe extern "C" fn chat_add_users(
    conv: *mut ffi::PurpleConversation,
    cbuddies: *mut ffi::GList,
    _new_arrivals: ffi::gboolean,
) {
    // SAFETY: a valid GList of the chat's members for the call.
    let list = unsafe { glue::glist::<ffi::PurpleConvChatBuddy>(cbuddies) };
    // SAFETY: libpurple passes NULL or its live conversation.
    let conv = unsafe { Conversation::from_ptr(conv) };
    members(conv, |c| {
        c.added = list
            .into_iter()
            // SAFETY: members of the list are live chat buddies.
            .filter_map(|cb| unsafe { super::super::handles::ChatBuddy::from_ptr(cb) })
            .map(view::member)
            .collect();
    });
}

unsafe extern "C" fn chat_remove_users(conv: *mut ffi::PurpleConversation, users: *mut ffi::GList) {
    // SAFETY: a valid GList of names for the call.
    let names = unsafe { glue::glist_strings(users) };
    // SAFETY: libpurple passes NULL or its live conversation.
    let conv = unsafe { Conversation::from_ptr(conv) };
    members(conv, |c| c.removed = names);
}

unsafe extern "C" fn chat_rename_user(
    conv: *mut ffi::PurpleConversation,
    old_name: *const c_char,
    new_name: *const c_char,
    _new_alias: *const c_char,
) {
    // SAFETY: libpurple passes NULL or its live conversation.
    let conv = unsafe { Conversation::from_ptr(conv) };
    let item = Renamed {
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        from: unsafe { arg(old_name) },
        // SAFETY: libpurple's string arguments, NULL or valid for the call.
        to: unsafe { arg(new_name) },
    };
    members(conv, |c| c.renamed = vec![item]);
}

unsafe extern "C" fn chat_update_user(conv: *mut ffi::PurpleConversation, user: *const c_char) {
    // SAFETY: libpurple passes NULL or its live conversation.
    let conv = unsafe { Conversation::from_ptr(conv) };
    // SAFETY: libpurple's string arguments, NULL or valid for the call.
    let Some(member) = conv.and_then(|c| c.member(&unsafe { arg(user) })) else {
        return;
    };
    members(conv, |c| c.updated = vec![view::member(member)]);
}

unsafe extern "C" fn destroy_conversation(conv: *mut ffi::PurpleConversation) {
    // SAFETY: libpurple passes NULL or its live conversation.
    let conv = unsafe { Conversation::from_ptr(conv) };
    if let Some(conv) = conv.filter(|c| c.kind() == Some(ConvKind::Chat)) {
        signals::chat_left(conv);
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

pub(super) fn install() {
    let ops = &raw mut CONV_OPS;
    // SAFETY: a static that lives for the process; libpurple only reads it.
    unsafe { ffi::purple_conversations_set_ui_ops(ops) };
}
