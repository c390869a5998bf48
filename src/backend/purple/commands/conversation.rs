//! `conversation.send`, `typing`.

use serde_json::json;

use super::super::{accounts, ffi, sending, state};
use super::{check_text, param_account};
use crate::backend::protocol::{ConvKind, OpError, OpResult, Params, MAX_TEXT};

/// `conversation.send`: text, or a `/command` (see `purple::sending`).
pub(super) fn send(p: &Params) -> OpResult {
    let (kind, name) = p.conversation()?;
    let text = p.str("text")?;
    check_text(text, "text", MAX_TEXT)?;
    let account = param_account(p)?;
    accounts::connected(account)?;
    // Durable or refused: nothing reaches the network that the history
    // could not keep (`storage_full` / `internal`, nothing sent).
    state::hub()
        .writable(text.len())
        .map_err(accounts::store_failed)?;
    sending::send(account, kind, name, text)
}

/// `commands`: what `/` offers in a conversation, for completion.
pub(super) fn commands(p: &Params) -> OpResult {
    let (kind, name) = p.conversation()?;
    let account = param_account(p)?;
    accounts::connected(account)?;
    sending::commands(account, kind, name)
}

pub(super) fn typing(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let (kind, name) = p.conversation()?;
    if kind != ConvKind::Im {
        return Err(OpError::new("unsupported", "typing is for IMs"));
    }
    let state = match p.str("state")? {
        "typing" => ffi::PURPLE_TYPING,
        "paused" => ffi::PURPLE_TYPED,
        "none" => ffi::PURPLE_NOT_TYPING,
        _ => return Err(OpError::bad_request("state must be typing, paused or none")),
    };
    accounts::connected(account)?.send_typing(name, state);
    Ok(json!({}))
}
