//! Accounts over their life: ids, the durable copy in the store, restoring
//! it at start-up, the admin's policy, reconnection and rejoining chats.

use serde_json::{json, Map, Value};

use super::handles::{self, Account, NewAccount, OptionValue, Protocol};
use super::{events, ffi, invoke, state, view};
use crate::backend::event::{Direction, Event, Message};
use crate::backend::pacing::Pace;
use crate::backend::policy;
use crate::backend::protocol::OpError;
use crate::backend::store::StoreError;

/// The account for `id`, or `no_such_account`.
pub(crate) fn find(id: i64) -> Result<Account, OpError> {
    Account::find(id).ok_or_else(|| OpError::new("no_such_account", format!("no account {id}")))
}

/// Its connection if signed on, or `not_connected`.
pub(crate) fn connected(account: Account) -> Result<handles::Connection, OpError> {
    account
        .connected()
        .ok_or_else(|| OpError::new("not_connected", "the account is not connected"))
}

/// A store error as a reply: the durable copy could not be written
/// (`storage_full` when the state directory has no room, else
/// `internal`).
pub(crate) fn store_failed(e: StoreError) -> OpError {
    tracing::error!("store: {e}");
    if e.is_full() {
        OpError::new(
            "storage_full",
            "the backend's disk is full: nothing was done (try again when there is room)",
        )
    } else {
        OpError::new("internal", format!("cannot store the change: {e}"))
    }
}

/// Refused if the admin does not allow `protocol` (`backend.toml`).
pub(crate) fn check_protocol_allowed(protocol: &str) -> Result<(), OpError> {
    if state::protocol_allowed(protocol) {
        return Ok(());
    }
    Err(OpError::new(
        "protocol_not_allowed",
        format!("the administrator does not allow accounts for '{protocol}' here"),
    ))
}

/// Checks `options` (setting -> value) against the protocol's declared
/// options and the policy; nothing is applied.
pub(crate) fn check_options(
    protocol: Protocol,
    options: &Map<String, Value>,
) -> Result<Vec<(String, OptionValue)>, OpError> {
    let protocol_id = protocol.id();
    let mut plan = Vec::new();
    for (key, value) in options {
        if let Some(why) = policy::option_refused(&protocol_id, key) {
            return Err(OpError::new(
                "bad_option",
                format!("option '{key}' cannot be set: it {why}"),
            ));
        }
        let opt = protocol
            .option(key)
            .ok_or_else(|| OpError::new("bad_option", format!("unknown option '{key}'")))?;
        let v = opt
            .check(value)
            .ok_or_else(|| OpError::new("bad_option", format!("bad value for option '{key}'")))?;
        plan.push((key.clone(), v));
    }
    Ok(plan)
}

/// Applies options checked by [`check_options`].
pub(crate) fn apply_options(account: Account, plan: &[(String, OptionValue)]) {
    for (key, value) in plan {
        account.set_option(key, value);
    }
}

/// A fresh id for a new account (never reused: history refers to ids).
pub(crate) fn next_id() -> Result<i64, OpError> {
    let used = Account::all()
        .into_iter()
        .map(Account::id)
        .max()
        .unwrap_or(0);
    state::hub().next_account_id(used).map_err(store_failed)
}

/// The stored configuration of `account`; for an account that has none
/// yet, what libpurple knows (without the password).
pub(crate) fn stored_config(account: Account) -> Result<Value, OpError> {
    let stored = state::hub()
        .account_config(account.id())
        .map_err(store_failed)?;
    Ok(stored.unwrap_or_else(|| {
        json!({
            "protocol": account.protocol_id(),
            "username": account.username(),
            "options": view::options_of(account),
            "enabled": account.enabled(),
        })
    }))
}

/// How many starts in a row may find an account's sign-on unfinished (the
/// backend crashed, was killed, or its watchdog restarted it while that
/// account was signing on) before the account is restored disabled.
pub(crate) const SIGNON_STRIKES: i64 = 2;

/// Why an account was restored disabled (its `account.status` message).
pub(crate) const STRUCK_MESSAGE: &str = "disabled: signing on to this account stopped the \
     backend twice in a row (it crashed or hung). Enable the account to try again.";

/// A sign-on of `id` starts (libpurple's `account-connecting`): recorded
/// durably, so that a start after a crash or a hang counts it.
pub(crate) fn signon_started(id: i64) {
    if id == 0 {
        return;
    }
    if let Err(e) = state::hub().signon_started(id) {
        tracing::error!(account = id, "cannot record the sign-on: {e}");
    }
}

/// The sign-on of `id` ended (connected, failed, or the connection went
/// away) with the backend alive: no strike.
pub(crate) fn signon_finished(id: i64) {
    if let Err(e) = state::hub().signon_finished(id) {
        tracing::error!(account = id, "cannot record the end of the sign-on: {e}");
    }
}

/// At start-up, before anything signs on: disables every account whose
/// sign-on was under way when the backend died [`SIGNON_STRIKES`] starts
/// in a row (durably: the stored copy says disabled). Returns them.
fn disable_struck() -> Vec<i64> {
    let struck = match state::hub().signon_strikes(SIGNON_STRIKES) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot read unfinished sign-ons: {e}");
            return Vec::new();
        }
    };
    let mut disabled = Vec::new();
    for id in struck {
        let Some(account) = Account::find(id) else {
            continue;
        };
        if !account.enabled() {
            continue;
        }
        tracing::warn!(
            account = id,
            "its sign-on stopped the backend {SIGNON_STRIKES} times in a row: disabled"
        );
        account.set_enabled(false);
        match stored_config(account) {
            Ok(mut config) => {
                config["enabled"] = json!(false);
                if let Err(e) = state::hub().account_save(id, &config) {
                    tracing::error!(account = id, "cannot store the account disabled: {e}");
                }
            }
            Err(e) => tracing::error!(account = id, "{}", e.message),
        }
        disabled.push(id);
    }
    disabled
}

/// After libpurple is initialised: give every account an id, tell the hub
/// what exists, and sign on the enabled accounts.
pub(crate) fn startup() {
    restore();
    let struck = disable_struck();
    for account in Account::all() {
        if account.id() == 0 {
            match next_id() {
                Ok(id) => account.set_id(id),
                Err(e) => tracing::error!("cannot give an account an id: {e}"),
            }
        }
    }
    let hub = state::hub();
    match hub.scrub_account_secrets(view::protocol_masks) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed secret option values from {n} stored events"),
        Err(e) => tracing::error!("cannot scrub secrets from stored events: {e}"),
    }
    hub.set_accounts(Account::all().into_iter().map(view::account_json).collect());
    let buddies = handles::Buddy::all()
        .into_iter()
        .filter_map(view::buddy_info)
        .filter_map(|b| serde_json::to_value(b).ok())
        .collect();
    hub.set_buddies(buddies);
    for id in struck {
        if let Some(account) = Account::find(id) {
            emit_updated(account);
            events::emit_status(id, "error", Some(STRUCK_MESSAGE.into()));
        }
    }
    handles::go_online();
}

/// Makes libpurple's accounts match the database, which is written before
/// every reply (libpurple saves `accounts.xml` up to 5 s later, so a crash
/// can lose an addition, change or removal there).
fn restore() {
    for account in Account::all() {
        enforce_policy(account);
        take_over_irc_pacing(account);
    }
    let configs = match state::hub().account_configs() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot read accounts: {e}");
            Vec::new()
        }
    };
    for (id, config, removed) in configs {
        let existing = Account::find(id);
        if removed {
            if let Some(account) = existing {
                tracing::info!(account = id, "removing an account libpurple kept");
                account.delete();
            }
            continue;
        }
        let account = match existing {
            Some(a) => a,
            None => match recreate(id, &config) {
                Some(a) => a,
                None => continue,
            },
        };
        enforce_policy(account);
        take_over_irc_pacing(account);
        let enabled = config["enabled"].as_bool().unwrap_or(true)
            && check_protocol_allowed(&account.protocol_id()).is_ok();
        if account.enabled() != enabled {
            account.set_enabled(enabled);
        }
    }
}

/// For IRC accounts: turns libpurple's own send pacing off
/// (`ratelimit-interval` 0): `purple::sending` paces IRC lines itself with
/// a token bucket and hands each to the network at once (`docs/irc.md`),
/// at the pace the account's stored options ask for (`Pace::from_options`;
/// read here, on add, update and start-up, never per line).
pub(crate) fn take_over_irc_pacing(account: Account) {
    if account.protocol_id() == "prpl-irc" {
        let pace = match stored_config(account) {
            Ok(config) => Pace::from_options(&config["options"]),
            Err(e) => {
                tracing::error!(account = account.id(), "pace: {}", e.message);
                Pace::default()
            }
        };
        state::with(|s| s.paces.insert(account.id(), pace));
        account.set_int_setting("ratelimit-interval", 0);
    }
}

/// At start-up, before anything signs on: removes every option the policy
/// refuses (an older version, or libpurple's own files, may hold one such
/// as zephyr's `use_tzc`) and disables accounts whose protocol the admin no
/// longer allows.
fn enforce_policy(account: Account) {
    let protocol_id = account.protocol_id();
    if let Some(protocol) = account.protocol() {
        for opt in protocol.options() {
            let setting = opt.setting();
            if policy::option_refused(&protocol_id, &setting).is_some() {
                account.remove_setting(&setting);
            }
        }
    }
    if check_protocol_allowed(&protocol_id).is_err() && account.enabled() {
        tracing::warn!(
            account = account.id(),
            "protocol {protocol_id} is not allowed: account disabled"
        );
        account.set_enabled(false);
    }
}

/// Re-creates an account libpurple lost from its stored configuration.
fn recreate(id: i64, config: &Value) -> Option<Account> {
    let protocol_id = config["protocol"].as_str()?;
    let username = config["username"].as_str()?;
    let Some(protocol) = Protocol::find(protocol_id) else {
        tracing::warn!(account = id, "protocol {protocol_id} is not installed");
        return None;
    };
    let account = match Account::find_by_name(username, protocol_id) {
        Some(a) => a,
        None => {
            let new = NewAccount::new(username, protocol_id)?;
            if let Some(options) = config["options"].as_object() {
                let options: Map<String, Value> = options
                    .iter()
                    .filter(|(k, _)| policy::option_refused(protocol_id, k).is_none())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                match check_options(protocol, &options) {
                    Ok(plan) => apply_options(new.account(), &plan),
                    Err(e) => tracing::warn!(account = id, "stored options: {e}"),
                }
            }
            if let Some(pw) = config["password"].as_str() {
                new.account().set_password(pw);
            }
            if let Some(alias) = config["alias"].as_str() {
                new.account().set_alias(alias);
            }
            new.add()
        }
    };
    account.set_id(id);
    tracing::info!(account = id, "account restored from the database");
    Some(account)
}

/// Delay before reconnection attempt `n` (0-based): 2 s doubling to 5 min.
pub(crate) fn reconnect_delay(n: u32) -> u32 {
    (2u32 << n.min(8)).min(300)
}

/// `delay` seconds plus up to a quarter more, in milliseconds; `r` in
/// `[0, 1)`. Many backends on one host (one address) that lost the network
/// together then do not reconnect in step into a server's throttle.
pub(crate) fn jittered_ms(delay: u32, r: f64) -> u32 {
    let base = u64::from(delay) * 1000;
    let extra = (base as f64 * 0.25 * r.clamp(0.0, 1.0)) as u64;
    (base + extra).min(u64::from(u32::MAX)) as u32
}

/// The account signed on: the next failure starts the back-off again.
pub(crate) fn reset_reconnect(id: i64) {
    signon_finished(id);
    state::with(|s| {
        s.attempts.remove(&id);
        s.signons.remove(&id);
        s.abandoned.retain(|k| k.0 != id);
    });
}

/// Reconnects an account after a non-fatal error (network trouble), with
/// exponential back-off and jitter.
pub(crate) fn schedule_reconnect(id: i64) {
    unsafe extern "C" fn fire(data: ffi::gpointer) -> ffi::gboolean {
        let id = data as usize as i64;
        if let Some(account) = Account::find(id) {
            if account.enabled() && account.connection().is_none() {
                account.connect();
            }
        }
        ffi::GFALSE
    }
    let n = state::with(|s| {
        s.signons.remove(&id);
        let n = s.attempts.entry(id).or_insert(0);
        *n += 1;
        *n - 1
    });
    let ms = jittered_ms(reconnect_delay(n), rand::random::<f64>());
    tracing::info!(account = id, "reconnecting in {ms} ms");
    // SAFETY: `fire` matches GSourceFunc and takes the id by value (no
    // pointer to free); it runs once on the purple thread (it returns
    // FALSE).
    unsafe { ffi::g_timeout_add(ms, Some(fire), id as usize as ffi::gpointer) };
}

/// An error ended `id`'s attempt: the watchdog has nothing left to do (a
/// fatal error, such as a wrong password, is not retried).
pub(crate) fn unwatch_signon(id: i64) {
    signon_finished(id);
    state::with(|s| s.signons.remove(&id));
}

/// The sign-on watchdog: called when an attempt of `id` starts
/// (`connecting`). If that attempt has not signed on within
/// `signon_timeout` (`backend.toml`), and no error ended it, the account
/// gets `account.status` `error`, its connection is closed and it is
/// retried with the back-off. This catches a server that accepts and never
/// answers, and a connection closed before registration that libpurple
/// does not report (the issue #13 throttle case).
pub(crate) fn watch_signon(id: i64) {
    unsafe extern "C" fn fire(data: ffi::gpointer) -> ffi::gboolean {
        // SAFETY: `data` is the box leaked below, given to this one-shot
        // timeout only.
        let attempt = unsafe { Box::from_raw(data as *mut (i64, u64)) };
        let (id, number) = *attempt;
        let current = state::with(|s| {
            let current = s.signons.get(&id) == Some(&number);
            if current {
                s.signons.remove(&id);
            }
            current
        });
        if !current {
            return ffi::GFALSE;
        }
        let Some(account) = Account::find(id) else {
            return ffi::GFALSE;
        };
        if !account.enabled() || account.connected().is_some() {
            return ffi::GFALSE;
        }
        let secs = state::with(|s| s.config.signon_timeout.as_secs());
        tracing::warn!(account = id, "no sign-on after {secs} s: retrying");
        signon_finished(id);
        events::emit_status(
            id,
            "error",
            Some(format!(
                "did not sign on within {secs} s (the server did not answer, \
                 or closed the connection); retrying"
            )),
        );
        account.disconnect();
        schedule_reconnect(id);
        ffi::GFALSE
    }
    let (number, timeout) = state::with(|s| {
        let number = s.next_signon;
        s.next_signon += 1;
        s.signons.insert(id, number);
        (number, s.config.signon_timeout)
    });
    let data = Box::into_raw(Box::new((id, number))) as ffi::gpointer;
    let ms = timeout.as_millis().min(u128::from(u32::MAX)) as u32;
    // SAFETY: `fire` matches GSourceFunc, runs once on the purple thread
    // (it returns FALSE) and frees `data`, which nothing else holds.
    unsafe { ffi::g_timeout_add(ms, Some(fire), data) };
}

/// After `id` signed on: joins the chats the user had joined (soon, from
/// the main loop, not inside libpurple's sign-on code).
pub(crate) fn autojoin(id: i64) {
    invoke::invoke(move || {
        let Some(gc) = Account::find(id).and_then(Account::connected) else {
            return;
        };
        let chats = match state::hub().autojoin_list(id) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(account = id, "cannot read the chats to rejoin: {e}");
                return;
            }
        };
        for (name, fields) in chats {
            state::with(|s| s.rejoining.insert((id, name.to_lowercase())));
            if !gc.join_chat(&name, &fields) {
                tracing::warn!(
                    account = id,
                    "cannot rejoin {name}: the protocol has no chats"
                );
            }
        }
    });
}

/// The user asked to join `name`: that join may create the room.
pub(crate) fn explicit_join(id: i64, name: &str) {
    let key = (id, name.to_lowercase());
    state::with(|s| {
        s.rejoining.remove(&key);
        s.abandoned.remove(&key);
    });
}

/// libpurple's title of the prompt the XMPP plugin opens when a join
/// created the room (status 201), in the C locale the backend runs in.
const CREATE_ROOM_TITLE: &str = "Create New Room";

/// Called for an action prompt of `account` titled `title`: if it is the
/// "Create New Room" prompt for a chat being rejoined at sign-on, the room
/// is gone from the server (e.g. a non-persistent room after a server
/// restart) and this join just created it. Returns that room: the prompt
/// is not shown, and [`abandon_vanished_room`] leaves it (a new room
/// nobody configured is destroyed by the server when its only occupant
/// leaves; answering the prompt either way would unlock it).
pub(crate) fn vanished_room(account: Option<i64>, title: Option<&str>) -> Option<(i64, String)> {
    let id = account?;
    if title != Some(CREATE_ROOM_TITLE) {
        return None;
    }
    tracing::debug!(account = id, "a join created a room");

    state::with(|s| {
        let name = s.last_joined.get(&id)?.clone();
        let key = (id, name.to_lowercase());
        if !s.rejoining.remove(&key) {
            return None;
        }
        s.abandoned.insert(key);
        Some((id, name))
    })
}

/// Leaves a room [`vanished_room`] found (from the main loop: the plugin
/// is still inside its join code), forgets it, and tells the user.
pub(crate) fn abandon_vanished_room(id: i64, name: String) {
    invoke::invoke(move || {
        tracing::info!(account = id, "a remembered room is gone: left, not created");
        // Left first: a client that sees the notice sees the chat left.
        leave_abandoned(id, &name);
        if let Err(e) = state::hub().autojoin_remove(id, &name) {
            tracing::error!(account = id, "cannot forget the chat: {e}");
        }
        events::emit(crate::backend::event::Event::Notice(
            crate::backend::event::Notice {
                level: "warning",
                account: Some(id),
                title: Some("Room no longer exists".into()),
                primary: Some(format!("The room {name} no longer exists on the server.")),
                secondary: Some(
                    "It was not created again and is no longer joined at sign-on;                      join it to create it."
                        .into(),
                ),
                who: Some(name.clone()),
                ..Default::default()
            },
        ));
    });
}

/// Destroys the conversation of an abandoned room, which leaves it
/// (`chat.left` if clients were told it was joined).
fn leave_abandoned(id: i64, name: &str) {
    if let Some(conv) = Account::find(id)
        .and_then(|a| a.find_conversation(crate::backend::protocol::ConvKind::Chat, name))
    {
        conv.destroy();
    }
}

/// Called when libpurple joined chat `name`: whether it is a room
/// [`vanished_room`] abandoned. The XMPP plugin makes a new conversation
/// for every presence of a room it is still leaving; each is left again
/// (from the main loop) and clients are not told it was joined.
pub(crate) fn joined_abandoned(id: i64, name: &str) -> bool {
    let key = (id, name.to_lowercase());
    if !state::with(|s| s.abandoned.contains(&key)) {
        return false;
    }
    let name = name.to_owned();
    invoke::invoke(move || leave_abandoned(id, &name));
    true
}

/// The account a certificate prompt for `host` is for: the lowest-id
/// account signing on now whose server is `host` (libpurple's prompt names
/// only the host, with no account).
pub(crate) fn certificate_account(host: &str) -> Option<Account> {
    Account::all().into_iter().find(|a| {
        a.connection().is_some()
            && a.connected().is_none()
            && view::connect_host(*a).eq_ignore_ascii_case(host)
    })
}

/// After an IRC account signed on: if the server knows it by another nick
/// than the one asked for (libpurple took `nick1` because `nick` was in
/// use), clients are told: the account object gets `nick`
/// (`account.updated`) and the server conversation a system line. When
/// the asked-for nick is back, `nick` goes away again.
pub(crate) fn note_nick(id: i64) {
    let Some(account) = Account::find(id).filter(|a| a.protocol_id() == "prpl-irc") else {
        return;
    };
    let Some(gc) = account.connected() else {
        return;
    };
    let wanted = view::irc_nick(account);
    let got = gc
        .display_name()
        .filter(|n| !n.eq_ignore_ascii_case(&wanted));
    let before = state::with(|s| match &got {
        Some(n) => s.nicks.insert(id, n.clone()),
        None => s.nicks.remove(&id),
    });
    if before == got {
        return;
    }
    emit_updated(account);
    if let Some(nick) = got {
        let server = view::server_conversation(account);
        let sender = server.name.clone();
        events::emit(Event::Message(Message::plain(
            id,
            server,
            sender,
            format!("The nick {wanted} is in use: you are {nick} on this server."),
            Direction::System,
        )));
    }
}

/// Signs `account` on with the current status (after enabling it).
pub(crate) fn sign_on(account: Account) {
    account.set_enabled(true);
    account.activate_current_status();
}

/// Forgets what the purple thread remembers of a removed account.
pub(crate) fn forget(id: i64) {
    signon_finished(id);
    state::with(|s| {
        s.joined.retain(|k| k.0 != id);
        s.statuses.remove(&id);
        s.attempts.remove(&id);
        s.signons.remove(&id);
    });
}

/// Emits `account.updated` with the account object, which it returns.
pub(crate) fn emit_updated(account: Account) -> Value {
    let info = view::account_json(account);
    events::emit(crate::backend::event::Event::AccountUpdated {
        account: account.id(),
        info: info.clone(),
    });
    info
}

#[cfg(test)]
mod tests {
    #[test]
    fn reconnect_back_off_doubles_up_to_five_minutes() {
        let d: Vec<u32> = (0..10).map(super::reconnect_delay).collect();
        assert_eq!(d, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(super::reconnect_delay(u32::MAX), 300);
    }

    #[test]
    fn jitter_adds_up_to_a_quarter() {
        assert_eq!(super::jittered_ms(2, 0.0), 2000);
        assert_eq!(super::jittered_ms(2, 0.5), 2250);
        assert_eq!(super::jittered_ms(300, 0.999_999), 374_999);
        assert_eq!(super::jittered_ms(300, 7.0), 375_000);
        assert_eq!(super::jittered_ms(300, -1.0), 300_000);
    }
}
