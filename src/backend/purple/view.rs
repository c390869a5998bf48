//! What clients see of libpurple's objects: the JSON of accounts,
//! protocols, buddies, conversations and chat members (`docs/protocol.md`,
//! "Objects"). Reads handles; changes nothing.

use serde_json::{json, Map, Value};

use super::events;
use super::handles::{Account, Buddy, ChatBuddy, Conversation, OptionKind, OptionValue, Protocol};
use crate::backend::event::{BuddyInfo, ConvRef, Member};
use crate::backend::policy;

/// The account's options a client may set, with their real values (refused
/// options left out). **Holds secrets**: for the durable copy only; clients
/// get [`account_json`], which replaces them.
pub(crate) fn options_of(account: Account) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(protocol) = account.protocol() else {
        return out;
    };
    let protocol_id = account.protocol_id();
    for opt in protocol.options() {
        let key = opt.setting();
        if policy::option_refused(&protocol_id, &key).is_some() {
            continue;
        }
        let v = match account.option_value(opt) {
            Some(OptionValue::Bool(b)) => json!(b),
            Some(OptionValue::Int(i)) => json!(i),
            Some(OptionValue::Str(s)) => json!(s),
            None => continue,
        };
        out.insert(key, v);
    }
    out
}

/// The host an account connects to, as a certificate names it: XMPP's
/// `connect_server` when set, otherwise the server part of the user name
/// (`nick@server` on IRC, `user@domain/resource` on XMPP).
pub(crate) fn connect_host(account: Account) -> String {
    let explicit = account
        .protocol()
        .and_then(|p| p.option("connect_server"))
        .and_then(|o| account.option_value(o));
    if let Some(OptionValue::Str(s)) = explicit {
        if !s.is_empty() {
            return s;
        }
    }
    host_of_username(&account.username()).to_owned()
}

/// The nick an IRC account asks for: its user name before the `@`.
pub(crate) fn irc_nick(account: Account) -> String {
    let username = account.username();
    username
        .split_once('@')
        .map_or(username.as_str(), |(n, _)| n)
        .to_owned()
}

/// The conversation of an IRC account's server: one IM named after the
/// host it connects to, holding the server's notices and Sapphire's own
/// lines about the connection, all `system` (never unread, never a
/// mention).
pub(crate) fn server_conversation(account: Account) -> ConvRef {
    ConvRef::im(connect_host(account))
}

/// Whether an IRC IM conversation is the server's: its name has a `.`,
/// which a nick cannot have (RFC 2812 §2.3.1), so the "person" is a server
/// (its notices, e.g. `*** Looking up your hostname`).
pub(crate) fn is_irc_server_name(name: &str) -> bool {
    name.contains('.')
}

/// `user@host/resource` → `host` (the whole name without an `@`).
fn host_of_username(username: &str) -> &str {
    let after = username.rsplit_once('@').map_or(username, |(_, h)| h);
    after.split('/').next().unwrap_or(after)
}

/// Whether the account's plugin marks `setting` masked.
fn masked(account: Account, setting: &str) -> bool {
    account
        .protocol()
        .and_then(|p| p.option(setting))
        .is_some_and(|o| o.masked())
}

/// Whether installed protocol `protocol` marks `setting` masked.
pub(crate) fn protocol_masks(protocol: &str, setting: &str) -> bool {
    Protocol::find(protocol)
        .and_then(|p| p.option(setting))
        .is_some_and(|o| o.masked())
}

/// The account object, secrets replaced by `{"set": …}`
/// ([`policy::scrub_account`]).
pub(crate) fn account_json(account: Account) -> Value {
    let id = account.id();
    let mut a = json!({
        "id": id,
        "protocol": account.protocol_id(),
        "username": account.username(),
        "enabled": account.enabled(),
        "status": events::last_status(id).unwrap_or_else(|| "disconnected".into()),
        "options": options_of(account),
    });
    if let Some(alias) = account.alias() {
        a["alias"] = json!(alias);
    }
    // The nick the server gave when the one asked for was taken.
    if let Some(nick) = super::state::with(|s| s.nicks.get(&id).cloned()) {
        a["nick"] = json!(nick);
    }
    if account.protocol_id() == "prpl-irc" {
        // Sapphire's own pace for the account's lines (`backend::pacing`),
        // so a client can say how long a paste will take before sending.
        let pace = super::state::pace(id);
        a["pacing"] = json!({
            "burst": pace.burst,
            "interval_ms": pace.interval.as_millis() as u64,
        });
        // libpurple's own interval is always 0 (Sapphire paces): show the
        // pace these two options set, so that editing them means it.
        if let Some(o) = a["options"].as_object_mut() {
            o.insert("ratelimit-burst".into(), json!(pace.burst));
            o.insert("ratelimit-interval".into(), json!(pace.interval.as_secs()));
        }
    }
    policy::scrub_account(&mut a, |_, setting| masked(account, setting));
    a
}

/// The buddy object (with presence).
pub(crate) fn buddy_info(buddy: Buddy) -> Option<BuddyInfo> {
    let account = buddy.account()?;
    let presence = buddy.presence();
    Some(BuddyInfo {
        account: account.id(),
        name: buddy.name(),
        alias: buddy.alias(),
        online: presence.online,
        status: presence.status,
        message: presence.message,
    })
}

/// A conversation's account id and `{kind, name}`.
pub(crate) fn conv_ref(conv: Conversation) -> Option<(i64, ConvRef)> {
    let (account, kind, name) = conv.key()?;
    Some((account.id(), ConvRef { kind, name }))
}

/// A chat member.
pub(crate) fn member(cb: ChatBuddy) -> Member {
    let (name, alias, flags) = cb.describe();
    Member { name, alias, flags }
}

/// One protocol as `protocols` lists it.
pub(crate) fn protocol_json(protocol: Protocol) -> Value {
    let protocol_id = protocol.id();
    let splits: Vec<Value> = protocol
        .user_splits()
        .into_iter()
        .map(|split| {
            json!({
                "text": split.text(),
                "default": split.default_value(),
                "separator": split.separator().to_string(),
            })
        })
        .collect();
    let mut options = Vec::new();
    for opt in protocol.options() {
        let setting = opt.setting();
        if policy::option_refused(&protocol_id, &setting).is_some() {
            continue; // never offered (see backend::policy)
        }
        let mut o = json!({
            "setting": setting,
            "text": opt.text(),
            "masked": opt.masked(),
            "secret": policy::option_secret(&setting, opt.masked()),
        });
        match opt.kind() {
            OptionKind::Bool => {
                o["type"] = json!("bool");
                o["default"] = json!(opt.default_bool());
            }
            OptionKind::Int => {
                o["type"] = json!("int");
                o["default"] = json!(opt.default_int());
            }
            OptionKind::Str => {
                o["type"] = json!("string");
                o["default"] = json!(opt.default_string());
            }
            OptionKind::List => {
                o["type"] = json!("list");
                o["default"] = json!(opt.default_string());
                let choices: Vec<Value> = opt
                    .choices()
                    .into_iter()
                    .map(|(label, value)| json!({"label": label, "value": value}))
                    .collect();
                o["choices"] = json!(choices);
            }
            OptionKind::Other => continue,
        }
        options.push(o);
    }
    let flags = protocol.flags();
    use super::ffi::{OPT_PROTO_CHAT_TOPIC, OPT_PROTO_NO_PASSWORD, OPT_PROTO_PASSWORD_OPTIONAL};
    json!({
        "id": protocol_id,
        "name": protocol.name(),
        "user_splits": splits,
        "options": options,
        "password": if flags & OPT_PROTO_NO_PASSWORD != 0 { "none" }
            else if flags & OPT_PROTO_PASSWORD_OPTIONAL != 0 { "optional" }
            else { "required" },
        "chat_topic": flags & OPT_PROTO_CHAT_TOPIC != 0,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_names_have_dots_nicks_do_not() {
        assert!(super::is_irc_server_name("irc.libera.chat"));
        assert!(!super::is_irc_server_name("alice"));
        assert!(!super::is_irc_server_name("[m]bob"));
    }

    #[test]
    fn the_host_of_a_user_name() {
        assert_eq!(
            super::host_of_username("alice@localhost/sapphire"),
            "localhost"
        );
        assert_eq!(
            super::host_of_username("nick@irc.example.org"),
            "irc.example.org"
        );
        assert_eq!(super::host_of_username("bare"), "bare");
    }
}
