//! `chat.join`, `chat.leave`, `chat.topic`, `chat.invite`.

use serde_json::{json, Map};

use super::super::handles::{Account, Conversation};
use super::super::{accounts, state};
use super::{check_text, param_account};
use crate::backend::protocol::{ConvKind, OpError, OpResult, Params};

fn unsupported(what: &str) -> OpError {
    OpError::new("unsupported", format!("this protocol {what}"))
}

pub(super) fn join(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let name = p.str("name")?;
    check_text(name, "name", 1024)?;
    let empty = Map::new();
    let fields = p.object("fields")?.unwrap_or(&empty);
    if fields.values().any(|v| !v.is_string()) {
        return Err(OpError::bad_request("chat fields must be strings"));
    }
    // IRC channel names start with one of these; "sapphire" means
    // "#sapphire" (as in The Lounge and every IRC client).
    let name = if account.protocol_id() == "prpl-irc" && !name.starts_with(['#', '&', '+', '!']) {
        format!("#{name}")
    } else {
        name.to_owned()
    };
    let gc = accounts::connected(account)?;
    // Asked for: this join may create the room.
    accounts::explicit_join(account.id(), &name);
    let pending = (account.id(), account.normalize(&name));
    state::with(|s| s.pending_joins.insert(pending.clone()));
    if !gc.join_chat(&name, fields) {
        state::with(|s| s.pending_joins.remove(&pending));
        return Err(unsupported("has no chats"));
    }
    // Joined again whenever the account signs on, until chat.leave.
    state::hub()
        .autojoin_add(account.id(), &name, fields)
        .map_err(accounts::store_failed)?;
    Ok(json!({"name": name}))
}

fn find_chat(p: &Params) -> Result<(Account, Conversation), OpError> {
    let account = param_account(p)?;
    let conv = account
        .find_conversation(ConvKind::Chat, p.str("name")?)
        .ok_or_else(|| OpError::new("not_joined", "not in this chat"))?;
    Ok((account, conv))
}

/// Leaves a chat and stops rejoining it. Also succeeds for a remembered
/// chat that is not joined right now (e.g. while disconnected).
pub(super) fn leave(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let forgotten = state::hub()
        .autojoin_remove(account.id(), p.str("name")?)
        .map_err(accounts::store_failed)?;
    match find_chat(p) {
        // Destroying a chat conversation leaves the chat (and emits
        // chat.left).
        Ok((_, conv)) => conv.destroy(),
        Err(_) if forgotten => {}
        Err(e) => return Err(e),
    }
    Ok(json!({}))
}

pub(super) fn topic(p: &Params) -> OpResult {
    let (account, conv) = find_chat(p)?;
    let topic = p.str("topic")?;
    if topic.len() > 4096 || topic.contains('\0') {
        return Err(OpError::bad_request("bad topic"));
    }
    let gc = accounts::connected(account)?;
    // An XMPP room answers a refused change with a bare error
    // (`uiops::signals::jabber_receiving_message` tells the user).
    let name = conv.name().to_lowercase();
    state::with(|s| s.topic_pending.insert((account.id(), name)));
    if !gc.set_chat_topic(conv, topic) {
        return Err(unsupported("cannot set topics"));
    }
    Ok(json!({}))
}

pub(super) fn invite(p: &Params) -> OpResult {
    let (account, conv) = find_chat(p)?;
    let who = p.str("who")?;
    check_text(who, "who", 1024)?;
    let message = p.opt_str("message")?.unwrap_or("");
    if message.len() > 4096 || message.contains('\0') {
        return Err(OpError::bad_request("bad message"));
    }
    accounts::connected(account)?.chat_invite(conv, who, message);
    Ok(json!({}))
}
