//! `buddy.add`, `buddy.remove`.

use serde_json::json;

use super::super::{events, view};
use super::{check_text, param_account};
use crate::backend::event::Event;
use crate::backend::protocol::{OpError, OpResult, Params};

pub(super) fn add(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let name = p.str("name")?;
    check_text(name, "name", 1024)?;
    let alias = p.opt_str("alias")?;
    let group = p.opt_str("group")?.unwrap_or("Buddies");
    if account.find_buddy(name).is_some() {
        return Err(OpError::new("buddy_exists", "already in the buddy list"));
    }
    let info = account
        .add_buddy(name, alias, group)
        .and_then(view::buddy_info)
        .ok_or_else(|| OpError::internal("the buddy could not be added"))?;
    events::emit(Event::BuddyAdded(info.clone()));
    Ok(json!({"buddy": info}))
}

pub(super) fn remove(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let name = p.str("name")?;
    let buddy = account
        .find_buddy(name)
        .ok_or_else(|| OpError::new("no_such_buddy", "not in the buddy list"))?;
    let stored = buddy.name();
    account.remove_buddy(buddy);
    events::emit(Event::BuddyRemoved {
        account: account.id(),
        name: stored,
    });
    Ok(json!({}))
}
