//! `account.add`, `account.remove`, `account.set_enabled`,
//! `account.update`.
//!
//! Each validates every parameter first, then writes the durable copy
//! (the store), and only then changes libpurple: a refused request or a
//! failed write leaves both as they were.

use serde_json::{json, Value};

use super::super::handles::{Account, NewAccount, Protocol};
use super::super::{accounts, events, sending, state, view};
use super::{check_text, param_account};
use crate::backend::event::Event;
use crate::backend::protocol::{OpError, OpResult, Params};

pub(super) fn add(p: &Params) -> OpResult {
    let protocol_id = p.str("protocol")?;
    let username = p.str("username")?;
    check_text(username, "username", 1024)?;
    let password = p.opt_str("password")?;
    let alias = p.opt_str("alias")?;
    let options = p.object("options")?;
    let enabled = match p.opt("enabled") {
        None => true,
        Some(_) => p.bool("enabled")?,
    };
    accounts::check_protocol_allowed(protocol_id)?;
    let protocol = Protocol::find(protocol_id)
        .ok_or_else(|| OpError::new("no_such_protocol", format!("no protocol '{protocol_id}'")))?;
    if Account::find_by_name(username, protocol_id).is_some() {
        return Err(OpError::new(
            "account_exists",
            "this account already exists",
        ));
    }
    let plan = match options {
        Some(o) => accounts::check_options(protocol, o)?,
        None => Vec::new(),
    };

    let id = accounts::next_id()?;
    let mut config = json!({
        "protocol": protocol_id,
        "username": username,
        "options": options.cloned().unwrap_or_default(),
        "enabled": enabled,
    });
    if let Some(pw) = password {
        config["password"] = json!(pw);
    }
    if let Some(alias) = alias {
        config["alias"] = json!(alias);
    }
    state::hub()
        .account_save(id, &config)
        .map_err(accounts::store_failed)?;

    let new = NewAccount::new(username, protocol_id)
        .ok_or_else(|| OpError::internal("libpurple could not create the account"))?;
    let account = new.account();
    accounts::apply_options(account, &plan);
    if let Some(pw) = password {
        account.set_password(pw);
    }
    if let Some(alias) = alias {
        account.set_alias(alias);
    }
    account.set_id(id);
    accounts::take_over_irc_pacing(account);
    let account = new.add();
    let mut info = view::account_json(account);
    info["enabled"] = json!(enabled);
    events::emit(Event::AccountAdded {
        account: id,
        info: info.clone(),
    });
    if enabled {
        accounts::sign_on(account);
    }
    Ok(json!({"account": info}))
}

pub(super) fn remove(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let id = account.id();
    state::hub()
        .account_remove(id)
        .map_err(accounts::store_failed)?;
    account.delete();
    accounts::forget(id);
    sending::forget(id);
    events::emit(Event::AccountRemoved { account: id });
    Ok(json!({}))
}

pub(super) fn set_enabled(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let enabled = p.bool("enabled")?;
    if enabled {
        accounts::check_protocol_allowed(&account.protocol_id())?;
    }
    let mut config = accounts::stored_config(account)?;
    config["enabled"] = json!(enabled);
    state::hub()
        .account_save(account.id(), &config)
        .map_err(accounts::store_failed)?;
    if enabled {
        accounts::sign_on(account);
    } else {
        account.set_enabled(false);
    }
    Ok(json!({"account": accounts::emit_updated(account)}))
}

pub(super) fn update(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let options = p.object("options")?;
    let password = p.opt_str("password")?;
    let alias = p.opt_str("alias")?;
    let plan = match options {
        Some(o) => {
            let protocol = account.protocol().ok_or_else(|| {
                OpError::new("no_such_protocol", "the account's protocol is not loaded")
            })?;
            accounts::check_options(protocol, o)?
        }
        None => Vec::new(),
    };

    let mut config = accounts::stored_config(account)?;
    if let Some(options) = options {
        if !config["options"].is_object() {
            config["options"] = json!({});
        }
        for (k, v) in options {
            config["options"][k.as_str()] = v.clone();
        }
    }
    if let Some(pw) = password {
        config["password"] = Value::from(pw);
    }
    if let Some(alias) = alias {
        config["alias"] = Value::from(alias);
    }
    state::hub()
        .account_save(account.id(), &config)
        .map_err(accounts::store_failed)?;

    accounts::apply_options(account, &plan);
    if let Some(pw) = password {
        account.set_password(pw);
    }
    if let Some(alias) = alias {
        account.set_alias(alias);
    }
    // The options may set libpurple's own pacing back on, or change ours.
    accounts::take_over_irc_pacing(account);
    Ok(json!({"account": accounts::emit_updated(account)}))
}
