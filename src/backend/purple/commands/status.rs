//! `status.set`: one status for every account.

use serde_json::json;

use super::super::{events, ffi, glue, handles};
use crate::backend::event::Event;
use crate::backend::protocol::{OpError, OpResult, Params};

pub(super) fn set(p: &Params) -> OpResult {
    let status = p.str("status")?;
    let primitive = match status {
        "available" => ffi::PURPLE_STATUS_AVAILABLE,
        "away" => ffi::PURPLE_STATUS_AWAY,
        "unavailable" => ffi::PURPLE_STATUS_UNAVAILABLE,
        "invisible" => ffi::PURPLE_STATUS_INVISIBLE,
        "extended_away" => ffi::PURPLE_STATUS_EXTENDED_AWAY,
        "offline" => ffi::PURPLE_STATUS_OFFLINE,
        _ => return Err(OpError::bad_request("unknown status")),
    };
    let message = p.opt_str("message")?;
    let markup = message.map(glue::text_to_markup);
    handles::set_global_status(primitive, markup.as_deref());
    events::emit(Event::Status {
        status: status.to_owned(),
        message: message.map(str::to_owned),
    });
    Ok(json!({}))
}
