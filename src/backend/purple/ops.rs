//! Protocol operations that act on libpurple (purple thread only).

use std::cell::Cell;
use std::ffi::{c_char, c_int};

use serde_json::{json, Map, Value};

use super::glue::{cstring, glist, string, text_to_markup, UI_ID_C};
use super::{ffi, hub, request, uiops};
use crate::backend::policy;
use crate::backend::protocol::{ConvKind, OpError, OpResult, Params, MAX_TEXT};

const ID_KEY: &std::ffi::CStr = c"id";

thread_local! {
    /// `seq` of the last outgoing message event (set by write_conv).
    pub static LAST_OUT: Cell<u64> = const { Cell::new(0) };
}

/// The Sapphire id of a libpurple account (0 if it has none yet).
///
/// # Safety
/// `account` is a live PurpleAccount.
pub unsafe fn account_id(account: *mut ffi::PurpleAccount) -> i64 {
    unsafe { ffi::purple_account_get_ui_int(account, UI_ID_C.as_ptr(), ID_KEY.as_ptr(), 0) as i64 }
}

fn all_accounts() -> Vec<*mut ffi::PurpleAccount> {
    unsafe { glist(ffi::purple_accounts_get_all()) }
}

fn find_account(id: i64) -> Result<*mut ffi::PurpleAccount, OpError> {
    all_accounts()
        .into_iter()
        .find(|a| unsafe { account_id(*a) } == id)
        .ok_or_else(|| OpError::new("no_such_account", format!("no account {id}")))
}

fn param_account(p: &Params) -> Result<*mut ffi::PurpleAccount, OpError> {
    find_account(p.i64("account")?)
}

fn connection(account: *mut ffi::PurpleAccount) -> Result<*mut ffi::PurpleConnection, OpError> {
    let gc = unsafe { ffi::purple_account_get_connection(account) };
    if gc.is_null() || unsafe { ffi::purple_connection_get_state(gc) } != ffi::PURPLE_CONNECTED {
        return Err(OpError::new(
            "not_connected",
            "the account is not connected",
        ));
    }
    Ok(gc)
}

unsafe fn prpl_info(plugin: *mut ffi::PurplePlugin) -> *mut ffi::PurplePluginProtocolInfo {
    unsafe {
        if plugin.is_null() || (*plugin).info.is_null() {
            return std::ptr::null_mut();
        }
        (*(*plugin).info).extra_info as *mut ffi::PurplePluginProtocolInfo
    }
}

/// `{kind, name}` of a conversation with its account id. IM names are
/// normalised by the protocol (e.g. bare JIDs, lower-case IRC nicks).
///
/// # Safety
/// `conv` is a live PurpleConversation.
pub unsafe fn conv_json(conv: *mut ffi::PurpleConversation) -> Option<(i64, Value)> {
    unsafe {
        let account = ffi::purple_conversation_get_account(conv);
        if account.is_null() {
            return None;
        }
        let name = ffi::purple_conversation_get_name(conv);
        let (kind, name) = match ffi::purple_conversation_get_type(conv) {
            ffi::PURPLE_CONV_TYPE_IM => ("im", string(ffi::purple_normalize(account, name))),
            ffi::PURPLE_CONV_TYPE_CHAT => ("chat", string(name)),
            _ => return None,
        };
        Some((account_id(account), json!({"kind": kind, "name": name})))
    }
}

pub fn conv_key_name(conversation: &Value) -> String {
    conversation["name"].as_str().unwrap_or("").to_owned()
}

unsafe fn options_of(account: *mut ffi::PurpleAccount) -> Map<String, Value> {
    let mut out = Map::new();
    unsafe {
        let plugin = ffi::purple_find_prpl(ffi::purple_account_get_protocol_id(account));
        let info = prpl_info(plugin);
        if info.is_null() {
            return out;
        }
        let protocol = string(ffi::purple_account_get_protocol_id(account));
        for opt in glist::<ffi::PurpleAccountOption>((*info).protocol_options) {
            let setting = ffi::purple_account_option_get_setting(opt);
            let key = string(setting);
            if policy::option_refused(&protocol, &key).is_some() {
                continue;
            }
            let v = match ffi::purple_account_option_get_type(opt) {
                ffi::PURPLE_PREF_BOOLEAN => json!(
                    ffi::purple_account_get_bool(
                        account,
                        setting,
                        ffi::purple_account_option_get_default_bool(opt)
                    ) != 0
                ),
                ffi::PURPLE_PREF_INT => {
                    json!(ffi::purple_account_get_int(
                        account,
                        setting,
                        ffi::purple_account_option_get_default_int(opt)
                    ))
                }
                ffi::PURPLE_PREF_STRING => {
                    let def = ffi::purple_account_option_get_default_string(opt);
                    json!(string(ffi::purple_account_get_string(
                        account, setting, def
                    )))
                }
                ffi::PURPLE_PREF_STRING_LIST => {
                    let def = ffi::purple_account_option_get_default_list_value(opt);
                    json!(string(ffi::purple_account_get_string(
                        account, setting, def
                    )))
                }
                _ => continue,
            };
            out.insert(key, v);
        }
    }
    out
}

/// The account object clients see.
///
/// # Safety
/// `account` is a live PurpleAccount.
pub unsafe fn account_json(account: *mut ffi::PurpleAccount) -> Value {
    unsafe {
        let id = account_id(account);
        let mut a = json!({
            "id": id,
            "protocol": string(ffi::purple_account_get_protocol_id(account)),
            "username": string(ffi::purple_account_get_username(account)),
            "enabled": ffi::purple_account_get_enabled(account, UI_ID_C.as_ptr()) != 0,
            "status": uiops::last_status(id).unwrap_or_else(|| "disconnected".into()),
            "options": options_of(account),
        });
        if let Some(alias) = super::glue::opt_string(ffi::purple_account_get_alias(account)) {
            a["alias"] = json!(alias);
        }
        a
    }
}

/// The buddy object clients see (with presence).
///
/// # Safety
/// `buddy` is a live PurpleBuddy.
pub unsafe fn buddy_json(buddy: *mut ffi::PurpleBuddy) -> Option<Value> {
    unsafe {
        let account = ffi::purple_buddy_get_account(buddy);
        if account.is_null() {
            return None;
        }
        let presence = ffi::purple_buddy_get_presence(buddy);
        let status = if presence.is_null() {
            std::ptr::null_mut()
        } else {
            ffi::purple_presence_get_active_status(presence)
        };
        let mut b = json!({
            "account": account_id(account),
            "name": string(ffi::purple_buddy_get_name(buddy)),
            "alias": string(ffi::purple_buddy_get_alias(buddy)),
            "online": !status.is_null() && ffi::purple_status_is_online(status) != 0,
            "status": if status.is_null() { Value::Null } else { json!(string(ffi::purple_status_get_id(status))) },
        });
        if !status.is_null() {
            if let Some(m) = super::glue::opt_string(ffi::purple_status_get_attr_string(
                status,
                c"message".as_ptr(),
            )) {
                b["message"] = json!(m);
            }
        }
        Some(b)
    }
}

/// After libpurple is initialised: give every account an id, tell the hub
/// what exists, and sign on the enabled accounts.
///
/// # Safety
/// Purple thread only, once.
pub unsafe fn startup() {
    unsafe {
        restore_accounts();
        for account in all_accounts() {
            if account_id(account) == 0 {
                assign_id(account);
            }
        }
        hub().set_accounts(
            all_accounts()
                .into_iter()
                .map(|a| account_json(a))
                .collect(),
        );
        let buddies = glist_s::<ffi::PurpleBuddy>(ffi::purple_blist_get_buddies());
        hub().set_buddies(buddies.into_iter().filter_map(|b| buddy_json(b)).collect());
        ffi::purple_network_force_online();
        ffi::purple_savedstatus_activate(ffi::purple_savedstatus_get_startup());
        ffi::purple_accounts_restore_current_statuses();
    }
}

/// Makes libpurple's accounts match the database, which is written before
/// every reply (libpurple saves `accounts.xml` up to 5 s later, so a crash
/// can lose an addition, change or removal there).
unsafe fn restore_accounts() {
    for account in all_accounts() {
        unsafe { enforce_policy(account) };
    }
    for (id, config, removed) in hub().account_configs() {
        let existing = all_accounts()
            .into_iter()
            .find(|a| unsafe { account_id(*a) } == id);
        unsafe {
            if removed {
                if let Some(account) = existing {
                    tracing::info!(account = id, "removing an account libpurple kept");
                    delete_account(account);
                }
                continue;
            }
            let account = match existing {
                Some(a) => a,
                None => match recreate_account(id, &config) {
                    Some(a) => a,
                    None => continue,
                },
            };
            enforce_policy(account);
            let enabled = config["enabled"].as_bool().unwrap_or(true)
                && check_protocol_allowed(account).is_ok();
            if (ffi::purple_account_get_enabled(account, UI_ID_C.as_ptr()) != 0) != enabled {
                ffi::purple_account_set_enabled(account, UI_ID_C.as_ptr(), enabled.into());
            }
        }
    }
}

/// Refused if the admin does not allow the account's protocol
/// (`backend.toml`).
fn check_protocol_allowed(account: *mut ffi::PurpleAccount) -> Result<(), OpError> {
    let protocol = unsafe { string(ffi::purple_account_get_protocol_id(account)) };
    if super::config().protocols.allows(&protocol) {
        return Ok(());
    }
    Err(OpError::new(
        "protocol_not_allowed",
        format!("the administrator does not allow accounts for '{protocol}' here"),
    ))
}

/// At start-up, before anything signs on: removes every option the policy
/// refuses (an older version, or libpurple's own files, may hold one such
/// as zephyr's `use_tzc`) and disables accounts whose protocol the admin no
/// longer allows.
///
/// # Safety
/// Purple thread; `account` is live.
unsafe fn enforce_policy(account: *mut ffi::PurpleAccount) {
    let id = unsafe { account_id(account) };
    let protocol = unsafe { string(ffi::purple_account_get_protocol_id(account)) };
    let info = unsafe {
        prpl_info(ffi::purple_find_prpl(ffi::purple_account_get_protocol_id(
            account,
        )))
    };
    if !info.is_null() {
        for opt in unsafe { glist::<ffi::PurpleAccountOption>((*info).protocol_options) } {
            let setting_ptr = unsafe { ffi::purple_account_option_get_setting(opt) };
            let setting = unsafe { string(setting_ptr) };
            if policy::option_refused(&protocol, &setting).is_some() {
                unsafe { ffi::purple_account_remove_setting(account, setting_ptr) };
            }
        }
    }
    if check_protocol_allowed(account).is_err()
        && unsafe { ffi::purple_account_get_enabled(account, UI_ID_C.as_ptr()) } != 0
    {
        tracing::warn!(
            account = id,
            "protocol {protocol} is not allowed: account disabled"
        );
        unsafe { ffi::purple_account_set_enabled(account, UI_ID_C.as_ptr(), ffi::GFALSE) };
    }
}

unsafe fn recreate_account(id: i64, config: &Value) -> Option<*mut ffi::PurpleAccount> {
    let protocol = config["protocol"].as_str()?;
    let username = config["username"].as_str()?;
    let cproto = cstring(protocol);
    let cuser = cstring(username);
    unsafe {
        let info = prpl_info(ffi::purple_find_prpl(cproto.as_ptr()));
        if info.is_null() {
            tracing::warn!(account = id, "protocol {protocol} is not installed");
            return None;
        }
        let mut account = ffi::purple_accounts_find(cuser.as_ptr(), cproto.as_ptr());
        if account.is_null() {
            account = ffi::purple_account_new(cuser.as_ptr(), cproto.as_ptr());
            if let Some(options) = config["options"].as_object() {
                let options: Map<String, Value> = options
                    .iter()
                    .filter(|(k, _)| policy::option_refused(protocol, k).is_none())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Err(e) = apply_options(account, info, &options) {
                    tracing::warn!(account = id, "stored options: {e}");
                }
            }
            if let Some(pw) = config["password"].as_str() {
                let pw = cstring(pw);
                ffi::purple_account_set_remember_password(account, ffi::GTRUE);
                ffi::purple_account_set_password(account, pw.as_ptr());
            }
            if let Some(alias) = config["alias"].as_str() {
                let alias = cstring(alias);
                ffi::purple_account_set_alias(account, alias.as_ptr());
            }
            ffi::purple_accounts_add(account);
        }
        ffi::purple_account_set_ui_int(account, UI_ID_C.as_ptr(), ID_KEY.as_ptr(), id as c_int);
        tracing::info!(account = id, "account restored from the database");
        Some(account)
    }
}

/// The stored configuration of `account`; for an account that has none yet,
/// what libpurple knows (without the password).
fn stored_config(account: *mut ffi::PurpleAccount) -> Value {
    let id = unsafe { account_id(account) };
    hub().account_config(id).unwrap_or_else(|| unsafe {
        json!({
            "protocol": string(ffi::purple_account_get_protocol_id(account)),
            "username": string(ffi::purple_account_get_username(account)),
            "options": options_of(account),
            "enabled": ffi::purple_account_get_enabled(account, UI_ID_C.as_ptr()) != 0,
        })
    })
}

unsafe fn glist_s<T>(list: *mut ffi::GSList) -> Vec<*mut T> {
    let mut out = Vec::new();
    let mut l = list;
    while !l.is_null() {
        unsafe {
            out.push((*l).data as *mut T);
            l = (*l).next;
        }
    }
    unsafe { ffi::g_slist_free(list) };
    out
}

unsafe fn assign_id(account: *mut ffi::PurpleAccount) -> i64 {
    let used = all_accounts()
        .into_iter()
        .map(|a| unsafe { account_id(a) })
        .max()
        .unwrap_or(0);
    let id = hub().next_account_id(used);
    unsafe {
        ffi::purple_account_set_ui_int(account, UI_ID_C.as_ptr(), ID_KEY.as_ptr(), id as c_int)
    };
    id
}

thread_local! {
    /// Reconnection attempts since the last successful sign-on.
    static ATTEMPTS: std::cell::RefCell<std::collections::HashMap<i64, u32>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The account signed on: the next failure starts the back-off again.
pub fn reset_reconnect(id: i64) {
    ATTEMPTS.with(|a| a.borrow_mut().remove(&id));
}

/// Delay before reconnection attempt `n` (0-based): 2 s doubling to 5 min.
pub fn reconnect_delay(n: u32) -> u32 {
    (2u32 << n.min(8)).min(300)
}

/// Reconnects an account after a non-fatal error (network trouble), with
/// exponential back-off.
pub fn schedule_reconnect(id: i64) {
    unsafe extern "C" fn fire(data: ffi::gpointer) -> ffi::gboolean {
        let id = data as usize as i64;
        if let Ok(account) = find_account(id) {
            unsafe {
                let enabled = ffi::purple_account_get_enabled(account, UI_ID_C.as_ptr()) != 0;
                let gc = ffi::purple_account_get_connection(account);
                if enabled && gc.is_null() {
                    ffi::purple_account_connect(account);
                }
            }
        }
        ffi::GFALSE
    }
    let n = ATTEMPTS.with(|a| {
        let mut a = a.borrow_mut();
        let n = a.entry(id).or_insert(0);
        *n += 1;
        *n - 1
    });
    let delay = reconnect_delay(n);
    tracing::info!(account = id, "reconnecting in {delay} s");
    unsafe { ffi::g_timeout_add_seconds(delay, Some(fire), id as usize as ffi::gpointer) };
}

pub fn dispatch(op: &str, params: &Map<String, Value>) -> OpResult {
    let p = Params(params);
    match op {
        "protocols" => protocols(),
        "account.add" => account_add(&p),
        "account.remove" => account_remove(&p),
        "account.set_enabled" => account_set_enabled(&p),
        "account.update" => account_update(&p),
        "status.set" => status_set(&p),
        "buddy.add" => buddy_add(&p),
        "buddy.remove" => buddy_remove(&p),
        "conversation.send" => conversation_send(&p),
        "chat.join" => chat_join(&p),
        "chat.leave" => chat_leave(&p),
        "chat.topic" => chat_topic(&p),
        "chat.invite" => chat_invite(&p),
        "typing" => typing(&p),
        "request.answer" => request::answer(&p),
        _ => Err(OpError::new("unknown_op", format!("unknown op '{op}'"))),
    }
}

/// The ops `dispatch` handles.
pub const OPS: &[&str] = &[
    "protocols",
    "account.add",
    "account.remove",
    "account.set_enabled",
    "account.update",
    "status.set",
    "buddy.add",
    "buddy.remove",
    "conversation.send",
    "chat.join",
    "chat.leave",
    "chat.topic",
    "chat.invite",
    "typing",
    "request.answer",
];

fn protocols() -> OpResult {
    let mut out = Vec::new();
    for plugin in unsafe { glist::<ffi::PurplePlugin>(ffi::purple_plugins_get_protocols()) } {
        unsafe {
            let info = prpl_info(plugin);
            if info.is_null() {
                continue;
            }
            let protocol_id = string(ffi::purple_plugin_get_id(plugin));
            if !super::config().protocols.allows(&protocol_id) {
                continue;
            }
            let mut splits = Vec::new();
            for split in glist::<ffi::PurpleAccountUserSplit>((*info).user_splits) {
                splits.push(json!({
                    "text": string(ffi::purple_account_user_split_get_text(split)),
                    "default": string(ffi::purple_account_user_split_get_default_value(split)),
                    "separator": (ffi::purple_account_user_split_get_separator(split) as u8 as char).to_string(),
                }));
            }
            let mut options = Vec::new();
            for opt in glist::<ffi::PurpleAccountOption>((*info).protocol_options) {
                let setting = string(ffi::purple_account_option_get_setting(opt));
                if policy::option_refused(&protocol_id, &setting).is_some() {
                    continue; // never offered (see backend::policy)
                }
                let mut o = json!({
                    "setting": setting,
                    "text": string(ffi::purple_account_option_get_text(opt)),
                    "masked": false,
                });
                match ffi::purple_account_option_get_type(opt) {
                    ffi::PURPLE_PREF_BOOLEAN => {
                        o["type"] = json!("bool");
                        o["default"] = json!(ffi::purple_account_option_get_default_bool(opt) != 0);
                    }
                    ffi::PURPLE_PREF_INT => {
                        o["type"] = json!("int");
                        o["default"] = json!(ffi::purple_account_option_get_default_int(opt));
                    }
                    ffi::PURPLE_PREF_STRING => {
                        o["type"] = json!("string");
                        // Only string options have a mask flag: libpurple
                        // asserts (g_critical) when asked about the others.
                        o["masked"] = json!(ffi::purple_account_option_get_masked(opt) != 0);
                        o["default"] =
                            json!(string(ffi::purple_account_option_get_default_string(opt)));
                    }
                    ffi::PURPLE_PREF_STRING_LIST => {
                        o["type"] = json!("list");
                        o["default"] = json!(string(
                            ffi::purple_account_option_get_default_list_value(opt)
                        ));
                        let choices: Vec<Value> = glist::<ffi::PurpleKeyValuePair>(ffi::purple_account_option_get_list(opt))
                            .into_iter()
                            .map(|kv| json!({"label": string((*kv).key), "value": string((*kv).value as *const c_char)}))
                            .collect();
                        o["choices"] = json!(choices);
                    }
                    _ => continue,
                }
                options.push(o);
            }
            let flags = (*info).options;
            out.push(json!({
                "id": protocol_id,
                "name": string(ffi::purple_plugin_get_name(plugin)),
                "user_splits": splits,
                "options": options,
                "password": if flags & ffi::OPT_PROTO_NO_PASSWORD != 0 { "none" }
                    else if flags & ffi::OPT_PROTO_PASSWORD_OPTIONAL != 0 { "optional" }
                    else { "required" },
                "chat_topic": flags & ffi::OPT_PROTO_CHAT_TOPIC != 0,
            }));
        }
    }
    Ok(json!({"protocols": out}))
}

/// Applies `options` (setting -> value) to an account, type-checked
/// against the protocol's declared options. Validates all before setting.
unsafe fn apply_options(
    account: *mut ffi::PurpleAccount,
    info: *mut ffi::PurplePluginProtocolInfo,
    options: &Map<String, Value>,
) -> Result<(), OpError> {
    let declared = unsafe { glist::<ffi::PurpleAccountOption>((*info).protocol_options) };
    let protocol = unsafe { string(ffi::purple_account_get_protocol_id(account)) };
    let mut todo = Vec::new();
    for (key, value) in options {
        if let Some(why) = policy::option_refused(&protocol, key) {
            return Err(OpError::new(
                "bad_option",
                format!("option '{key}' cannot be set: it {why}"),
            ));
        }
        let opt = declared
            .iter()
            .copied()
            .find(|o| unsafe { string(ffi::purple_account_option_get_setting(*o)) } == *key)
            .ok_or_else(|| OpError::new("bad_option", format!("unknown option '{key}'")))?;
        let bad = || OpError::new("bad_option", format!("bad value for option '{key}'"));
        let kind = unsafe { ffi::purple_account_option_get_type(opt) };
        match kind {
            ffi::PURPLE_PREF_BOOLEAN if value.is_boolean() => {}
            ffi::PURPLE_PREF_INT if value.as_i64().is_some_and(|v| c_int::try_from(v).is_ok()) => {}
            ffi::PURPLE_PREF_STRING | ffi::PURPLE_PREF_STRING_LIST
                if value
                    .as_str()
                    .is_some_and(|s| s.len() <= 4096 && !s.contains('\0')) => {}
            _ => return Err(bad()),
        }
        todo.push((cstring(key), kind, value.clone()));
    }
    for (key, kind, value) in todo {
        unsafe {
            match kind {
                ffi::PURPLE_PREF_BOOLEAN => ffi::purple_account_set_bool(
                    account,
                    key.as_ptr(),
                    value.as_bool().unwrap_or(false).into(),
                ),
                ffi::PURPLE_PREF_INT => ffi::purple_account_set_int(
                    account,
                    key.as_ptr(),
                    value.as_i64().unwrap_or(0) as c_int,
                ),
                _ => {
                    let v = cstring(value.as_str().unwrap_or(""));
                    ffi::purple_account_set_string(account, key.as_ptr(), v.as_ptr())
                }
            }
        }
    }
    Ok(())
}

fn check_text(s: &str, what: &str, max: usize) -> Result<(), OpError> {
    if s.is_empty() {
        return Err(OpError::bad_request(format!("'{what}' is empty")));
    }
    if s.len() > max {
        return Err(OpError::new(
            "too_long",
            format!("'{what}' is longer than {max} bytes"),
        ));
    }
    if s.contains('\0') {
        return Err(OpError::bad_request(format!("'{what}' contains NUL")));
    }
    Ok(())
}

fn account_add(p: &Params) -> OpResult {
    let protocol = p.str("protocol")?;
    let username = p.str("username")?;
    check_text(username, "username", 1024)?;
    let password = p.opt_str("password")?;
    let options = p.object("options")?;
    let enabled = match p.opt("enabled") {
        None => true,
        Some(_) => p.bool("enabled")?,
    };
    if !super::config().protocols.allows(protocol) {
        return Err(OpError::new(
            "protocol_not_allowed",
            format!("the administrator does not allow accounts for '{protocol}' here"),
        ));
    }
    let cproto = cstring(protocol);
    let cuser = cstring(username);
    unsafe {
        let plugin = ffi::purple_find_prpl(cproto.as_ptr());
        let info = prpl_info(plugin);
        if info.is_null() {
            return Err(OpError::new(
                "no_such_protocol",
                format!("no protocol '{protocol}'"),
            ));
        }
        if !ffi::purple_accounts_find(cuser.as_ptr(), cproto.as_ptr()).is_null() {
            return Err(OpError::new(
                "account_exists",
                "this account already exists",
            ));
        }
        let account = ffi::purple_account_new(cuser.as_ptr(), cproto.as_ptr());
        if let Some(options) = options {
            if let Err(e) = apply_options(account, info, options) {
                ffi::purple_account_destroy(account);
                return Err(e);
            }
        }
        if let Some(pw) = password {
            let pw = cstring(pw);
            ffi::purple_account_set_remember_password(account, ffi::GTRUE);
            ffi::purple_account_set_password(account, pw.as_ptr());
        }
        if let Some(alias) = p.opt_str("alias")? {
            let alias = cstring(alias);
            ffi::purple_account_set_alias(account, alias.as_ptr());
        }
        ffi::purple_accounts_add(account);
        let id = assign_id(account);
        let mut config = json!({
            "protocol": protocol,
            "username": username,
            "options": options.cloned().unwrap_or_default(),
            "enabled": enabled,
        });
        if let Some(pw) = password {
            config["password"] = json!(pw);
        }
        if let Some(alias) = p.opt_str("alias")? {
            config["alias"] = json!(alias);
        }
        hub().account_save(id, &config);
        let mut info_json = account_json(account);
        info_json["enabled"] = json!(enabled);
        uiops::emit(json!({"op": "account.added", "account": id, "info": info_json}));
        if enabled {
            ffi::purple_account_set_enabled(account, UI_ID_C.as_ptr(), ffi::GTRUE);
            let status = ffi::purple_savedstatus_get_current();
            if !status.is_null() {
                ffi::purple_savedstatus_activate_for_account(status, account);
            }
        }
        Ok(json!({"account": info_json}))
    }
}

/// Deletes an account, first closing its connection if it has one.
///
/// A fatal connection error (`INVALID_SETTINGS`, a wrong password) leaves
/// the connection in place with `wants_to_die` set and a zero-delay
/// `purple_connection_disconnect_cb` timeout holding the account pointer;
/// `purple_accounts_delete` then skips the disconnect (disabling returns
/// early for a connection that wants to die) and frees the account, and the
/// timeout reads freed memory. Disconnecting first destroys the connection,
/// which removes that timeout.
///
/// # Safety
/// Purple thread; `account` is live and is freed by this call.
unsafe fn delete_account(account: *mut ffi::PurpleAccount) {
    unsafe {
        if !ffi::purple_account_get_connection(account).is_null() {
            ffi::purple_account_disconnect(account);
        }
        ffi::purple_accounts_delete(account);
    }
}

fn account_remove(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let id = unsafe { account_id(account) };
    hub().account_remove(id);
    unsafe { delete_account(account) };
    uiops::forget_account(id);
    uiops::emit(json!({"op": "account.removed", "account": id}));
    Ok(json!({}))
}

fn emit_updated(account: *mut ffi::PurpleAccount) -> Value {
    let info = unsafe { account_json(account) };
    let id = unsafe { account_id(account) };
    uiops::emit(json!({"op": "account.updated", "account": id, "info": info}));
    info
}

fn account_set_enabled(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let enabled = p.bool("enabled")?;
    if enabled {
        check_protocol_allowed(account)?;
    }
    let mut config = stored_config(account);
    config["enabled"] = json!(enabled);
    hub().account_save(unsafe { account_id(account) }, &config);
    unsafe {
        ffi::purple_account_set_enabled(account, UI_ID_C.as_ptr(), enabled.into());
        if enabled {
            let status = ffi::purple_savedstatus_get_current();
            if !status.is_null() {
                ffi::purple_savedstatus_activate_for_account(status, account);
            }
        }
    }
    Ok(json!({"account": emit_updated(account)}))
}

fn account_update(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let mut config = stored_config(account);
    unsafe {
        let plugin = ffi::purple_find_prpl(ffi::purple_account_get_protocol_id(account));
        let info = prpl_info(plugin);
        if let Some(options) = p.object("options")? {
            if info.is_null() {
                return Err(OpError::new(
                    "no_such_protocol",
                    "the account's protocol is not loaded",
                ));
            }
            apply_options(account, info, options)?;
            if !config["options"].is_object() {
                config["options"] = json!({});
            }
            for (k, v) in options {
                config["options"][k.as_str()] = v.clone();
            }
        }
        if let Some(pw) = p.opt_str("password")? {
            config["password"] = json!(pw);
            let pw = cstring(pw);
            ffi::purple_account_set_remember_password(account, ffi::GTRUE);
            ffi::purple_account_set_password(account, pw.as_ptr());
        }
        if let Some(alias) = p.opt_str("alias")? {
            config["alias"] = json!(alias);
            let alias = cstring(alias);
            ffi::purple_account_set_alias(account, alias.as_ptr());
        }
    }
    hub().account_save(unsafe { account_id(account) }, &config);
    Ok(json!({"account": emit_updated(account)}))
}

fn status_set(p: &Params) -> OpResult {
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
    unsafe {
        let saved = ffi::purple_savedstatus_new(std::ptr::null(), primitive);
        if let Some(m) = message {
            let m = text_to_markup(m);
            ffi::purple_savedstatus_set_message(saved, m.as_ptr());
        }
        ffi::purple_savedstatus_activate(saved);
    }
    uiops::emit(json!({"op": "status", "status": status, "message": message}));
    Ok(json!({}))
}

fn buddy_add(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let name = p.str("name")?;
    check_text(name, "name", 1024)?;
    let cname = cstring(name);
    let alias = p.opt_str("alias")?.map(cstring);
    let group = cstring(p.opt_str("group")?.unwrap_or("Buddies"));
    unsafe {
        if !ffi::purple_find_buddy(account, cname.as_ptr()).is_null() {
            return Err(OpError::new("buddy_exists", "already in the buddy list"));
        }
        let mut g = ffi::purple_find_group(group.as_ptr());
        if g.is_null() {
            g = ffi::purple_group_new(group.as_ptr());
            ffi::purple_blist_add_group(g, std::ptr::null_mut());
        }
        let buddy = ffi::purple_buddy_new(
            account,
            cname.as_ptr(),
            alias.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
        );
        ffi::purple_blist_add_buddy(buddy, std::ptr::null_mut(), g, std::ptr::null_mut());
        ffi::purple_account_add_buddy(account, buddy);
        let mut b = buddy_json(buddy).unwrap_or_else(|| json!({}));
        b["op"] = json!("buddy.added");
        uiops::emit(b.clone());
        if let Some(o) = b.as_object_mut() {
            o.remove("op");
        }
        Ok(json!({"buddy": b}))
    }
}

fn buddy_remove(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let name = p.str("name")?;
    let cname = cstring(name);
    unsafe {
        let buddy = ffi::purple_find_buddy(account, cname.as_ptr());
        if buddy.is_null() {
            return Err(OpError::new("no_such_buddy", "not in the buddy list"));
        }
        let id = account_id(account);
        let stored = string(ffi::purple_buddy_get_name(buddy));
        ffi::purple_account_remove_buddy(account, buddy, ffi::purple_buddy_get_group(buddy));
        ffi::purple_blist_remove_buddy(buddy);
        uiops::emit(json!({"op": "buddy.removed", "account": id, "name": stored}));
    }
    Ok(json!({}))
}

fn conversation_send(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let (kind, name) = p.conversation()?;
    let text = p.str("text")?;
    check_text(text, "text", MAX_TEXT)?;
    connection(account)?;
    let cname = cstring(name);
    let markup = text_to_markup(text);
    let before = LAST_OUT.with(Cell::get);
    unsafe {
        match kind {
            ConvKind::Im => {
                let mut conv = ffi::purple_find_conversation_with_account(
                    ffi::PURPLE_CONV_TYPE_IM,
                    cname.as_ptr(),
                    account,
                );
                if conv.is_null() {
                    conv = ffi::purple_conversation_new(
                        ffi::PURPLE_CONV_TYPE_IM,
                        account,
                        cname.as_ptr(),
                    );
                }
                ffi::purple_conv_im_send(
                    ffi::purple_conversation_get_im_data(conv),
                    markup.as_ptr(),
                );
            }
            ConvKind::Chat => {
                let conv = ffi::purple_find_conversation_with_account(
                    ffi::PURPLE_CONV_TYPE_CHAT,
                    cname.as_ptr(),
                    account,
                );
                let chat = if conv.is_null() {
                    std::ptr::null_mut()
                } else {
                    ffi::purple_conversation_get_chat_data(conv)
                };
                if chat.is_null() || ffi::purple_conv_chat_has_left(chat) != 0 {
                    return Err(OpError::new("not_joined", "not in this chat"));
                }
                ffi::purple_conv_chat_send(chat, markup.as_ptr());
            }
        }
    }
    let after = LAST_OUT.with(Cell::get);
    if after == before {
        // Some protocols echo sent chat messages from the server instead.
        return Ok(json!({"seq": Value::Null}));
    }
    Ok(json!({"seq": after}))
}

fn chat_join(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let name = p.str("name")?;
    check_text(name, "name", 1024)?;
    let empty = Map::new();
    let fields = p.object("fields")?.unwrap_or(&empty);
    if fields.values().any(|v| !v.is_string()) {
        return Err(OpError::bad_request("chat fields must be strings"));
    }
    let gc = connection(account)?;
    unsafe { join(gc, name, fields)? };
    // Joined again whenever the account signs on, until chat.leave.
    hub().autojoin_add(unsafe { account_id(account) }, name, fields);
    Ok(json!({}))
}

/// Asks the server to join chat `name` with protocol `fields`.
unsafe fn join(
    gc: *mut ffi::PurpleConnection,
    name: &str,
    fields: &Map<String, Value>,
) -> Result<(), OpError> {
    let cname = cstring(name);
    unsafe {
        let info = prpl_info(ffi::purple_connection_get_prpl(gc));
        if info.is_null() {
            return Err(OpError::new("unsupported", "this protocol has no chats"));
        }
        let Some(defaults) = (*info).chat_info_defaults else {
            return Err(OpError::new("unsupported", "this protocol has no chats"));
        };
        let mut table = defaults(gc, cname.as_ptr());
        if table.is_null() {
            table = ffi::g_hash_table_new_full(
                Some(ffi::g_str_hash),
                Some(ffi::g_str_equal),
                Some(ffi::g_free),
                Some(ffi::g_free),
            );
        }
        for (k, v) in fields {
            let k = cstring(k);
            let v = cstring(v.as_str().unwrap_or(""));
            ffi::g_hash_table_replace(
                table,
                ffi::g_strdup(k.as_ptr()) as ffi::gpointer,
                ffi::g_strdup(v.as_ptr()) as ffi::gpointer,
            );
        }
        ffi::serv_join_chat(gc, table);
        ffi::g_hash_table_destroy(table);
    }
    Ok(())
}

/// After `id` signed on: joins the chats the user had joined (soon, from
/// the main loop, not inside libpurple's sign-on code).
pub fn autojoin(id: i64) {
    super::invoke(move || {
        let Ok(account) = find_account(id) else {
            return;
        };
        let Ok(gc) = connection(account) else {
            return;
        };
        for (name, fields) in hub().autojoin_list(id) {
            if let Err(e) = unsafe { join(gc, &name, &fields) } {
                tracing::warn!(account = id, "cannot rejoin {name}: {e}");
            }
        }
    });
}

fn find_chat(
    p: &Params,
) -> Result<(*mut ffi::PurpleAccount, *mut ffi::PurpleConversation), OpError> {
    let account = param_account(p)?;
    let name = p.str("name")?;
    let cname = cstring(name);
    let conv = unsafe {
        ffi::purple_find_conversation_with_account(
            ffi::PURPLE_CONV_TYPE_CHAT,
            cname.as_ptr(),
            account,
        )
    };
    if conv.is_null() {
        return Err(OpError::new("not_joined", "not in this chat"));
    }
    Ok((account, conv))
}

/// Leaves a chat and stops rejoining it. Also succeeds for a remembered
/// chat that is not joined right now (e.g. while disconnected).
fn chat_leave(p: &Params) -> OpResult {
    let account = param_account(p)?;
    let forgotten = hub().autojoin_remove(unsafe { account_id(account) }, p.str("name")?);
    match find_chat(p) {
        // Destroying a chat conversation leaves the chat (and emits
        // chat.left).
        Ok((_, conv)) => unsafe { ffi::purple_conversation_destroy(conv) },
        Err(_) if forgotten => {}
        Err(e) => return Err(e),
    }
    Ok(json!({}))
}

fn chat_topic(p: &Params) -> OpResult {
    let (account, conv) = find_chat(p)?;
    let topic = p.str("topic")?;
    if topic.len() > 4096 || topic.contains('\0') {
        return Err(OpError::bad_request("bad topic"));
    }
    let gc = connection(account)?;
    unsafe {
        let info = prpl_info(ffi::purple_connection_get_prpl(gc));
        let Some(set) = info.as_ref().and_then(|i| i.set_chat_topic) else {
            return Err(OpError::new(
                "unsupported",
                "this protocol cannot set topics",
            ));
        };
        let chat = ffi::purple_conversation_get_chat_data(conv);
        let t = cstring(topic);
        set(gc, ffi::purple_conv_chat_get_id(chat), t.as_ptr());
    }
    Ok(json!({}))
}

fn chat_invite(p: &Params) -> OpResult {
    let (account, conv) = find_chat(p)?;
    let who = p.str("who")?;
    check_text(who, "who", 1024)?;
    let message = p.opt_str("message")?.unwrap_or("");
    if message.len() > 4096 || message.contains('\0') {
        return Err(OpError::bad_request("bad message"));
    }
    let gc = connection(account)?;
    let who = cstring(who);
    let message = cstring(message);
    unsafe {
        let chat = ffi::purple_conversation_get_chat_data(conv);
        ffi::serv_chat_invite(
            gc,
            ffi::purple_conv_chat_get_id(chat),
            message.as_ptr(),
            who.as_ptr(),
        );
    }
    Ok(json!({}))
}

fn typing(p: &Params) -> OpResult {
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
    let gc = connection(account)?;
    let cname = cstring(name);
    unsafe { ffi::serv_send_typing(gc, cname.as_ptr(), state) };
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reconnect_back_off_doubles_up_to_five_minutes() {
        let d: Vec<u32> = (0..10).map(super::reconnect_delay).collect();
        assert_eq!(d, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(super::reconnect_delay(u32::MAX), 300);
    }
}
