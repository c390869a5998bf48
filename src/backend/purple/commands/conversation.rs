//! `conversation.send`, `typing`.

use serde_json::{json, Value};

use super::super::{accounts, events, ffi, glue};
use super::{check_text, param_account};
use crate::backend::protocol::{ConvKind, OpError, OpResult, Params, MAX_TEXT};

pub(super) fn send(p: &Params) -> OpResult {
    let (kind, name) = p.conversation()?;
    let text = p.str("text")?;
    check_text(text, "text", MAX_TEXT)?;
    let account = param_account(p)?;
    accounts::connected(account)?;
    let markup = glue::text_to_markup(text);
    let (sent, seq) = events::capture_outgoing(|| match kind {
        ConvKind::Im => account.im(name).is_some_and(|c| c.send_im(&markup)),
        ConvKind::Chat => account
            .find_conversation(ConvKind::Chat, name)
            .is_some_and(|c| c.send_chat(&markup)),
    });
    if !sent {
        return Err(match kind {
            ConvKind::Chat => OpError::new("not_joined", "not in this chat"),
            ConvKind::Im => OpError::internal("cannot open the conversation"),
        });
    }
    // `null`: some protocols echo sent chat messages from the server instead.
    Ok(json!({"seq": seq.map_or(Value::Null, Value::from)}))
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
