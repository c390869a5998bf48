//! What a signed-in user may configure: which protocols, which account
//! options. Pure rules, no libpurple; the purple layer asks them before it
//! hands anything to a plugin.
//!
//! # Why
//! A client is the user's browser, and the user's browser may be an
//! attacker's. libpurple plugins declare options that run programs or read
//! and write files (zephyr's `use_tzc` + `tzc_command` fork and exec a
//! command line at sign-on). None of that belongs in a web chat, so an
//! option is **refused** (`bad_option`) when
//!
//! 1. it is on the explicit deny-list below ([`DENIED`], per protocol), or
//! 2. one of the words of its setting name (split at `_`, `-`, `.`, `:` and
//!    lower/upper-case boundaries, compared case-insensitively) is in
//!    [`DENIED_WORDS`] (`command`, `cmd`, `exec`, `program`, `path`, `file`,
//!    `dir`, `socket`, `script`, `shell`, `plugin`, …), unless the option is
//!    on the short list of options checked by hand and known to be harmless
//!    ([`ALLOWED_EXCEPTIONS`]).
//!
//! The rule also covers third-party plugins nobody has read. Refused options
//! are not offered in `protocols`, are never applied from a request, and are
//! removed from accounts at start-up (an older version may have stored one).
//!
//! # Secrets
//! An option is **secret** when the plugin marks it masked (a password
//! field, such as pidgin-sipe's `email_password`), or when its name says it
//! is one ([`option_secret`]): one of its words is in [`SECRET_WORDS`]
//! (`password`, `passwd`, `pass`, `pwd`, `token`, `secret`, `key`,
//! `cookie`, `credential`, …), or its lower-cased name contains one of
//! [`SECRET_PARTS`] (`password`, `passwd`, `token`, `secret`, `apikey`) —
//! purple-discord's `token` is its login token but not marked masked. A
//! secret may be set like any other option, but its value never leaves the
//! backend: every account object shows [`secret_marker`] instead
//! (`{"set": true}`, or `{"set": false}` when empty), and stored events
//! written by older versions are scrubbed at start ([`scrub_account`]).
//!
//! The admin may further limit the protocols users can add with
//! `protocols = [...]` in `backend.toml` ([`super::config`]).

/// Options refused by name, per protocol id: they run a program or read or
/// write files in the backend's home.
pub(crate) const DENIED: &[(&str, &str)] = &[
    ("prpl-zephyr", "use_tzc"),
    ("prpl-zephyr", "tzc_command"),
    ("prpl-zephyr", "write_anyone"),
    ("prpl-zephyr", "write_zsubs"),
    ("prpl-zephyr", "read_anyone"),
    ("prpl-zephyr", "read_zsubs"),
];

/// Words that make an option name a program, a command or a path.
pub(crate) const DENIED_WORDS: &[&str] = &[
    "command",
    "commands",
    "cmd",
    "exec",
    "executable",
    "program",
    "prog",
    "binary",
    "script",
    "shell",
    "spawn",
    "launch",
    "helper",
    "path",
    "file",
    "filename",
    "dir",
    "directory",
    "folder",
    "socket",
    "plugin",
    "tzc",
];

/// Options whose names contain a denied word but which were read in the
/// plugin's source and name no program or local path.
pub(crate) const ALLOWED_EXCEPTIONS: &[(&str, &str)] = &[
    // Gadu-Gadu: receive file transfers over HTTP (a network feature).
    ("prpl-gg", "http_file_transfers"),
];

/// Why an option is refused, or `None` if a client may set it.
pub(crate) fn option_refused(protocol: &str, setting: &str) -> Option<&'static str> {
    if DENIED.iter().any(|&(p, s)| p == protocol && s == setting) {
        return Some("runs a program or uses local files");
    }
    if ALLOWED_EXCEPTIONS
        .iter()
        .any(|&(p, s)| p == protocol && s == setting)
    {
        return None;
    }
    if words(setting).any(|w| DENIED_WORDS.contains(&w.as_str())) {
        return Some("names a program, a command or a local path");
    }
    None
}

/// The lower-case words of an option name (`tzc_command` → `tzc`,
/// `command`; `BinaryPath` → `binary`, `path`).
fn words(setting: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in setting.chars() {
        if !ch.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        cur.extend(ch.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter()
}

/// Words that make an option a secret (see the module docs).
pub(crate) const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pass",
    "pwd",
    "pw",
    "token",
    "secret",
    "key",
    "apikey",
    "cookie",
    "credential",
    "credentials",
];

/// Parts of a name that make it a secret even inside a longer word
/// (`emailpassword`, `authtoken`, `clientsecret`).
pub(crate) const SECRET_PARTS: &[&str] = &["password", "passwd", "token", "secret", "apikey"];

/// Whether an option's value must never leave the backend: the plugin
/// marks it `masked`, or its name says it is a secret.
pub(crate) fn option_secret(setting: &str, masked: bool) -> bool {
    if masked {
        return true;
    }
    let lower = setting.to_lowercase();
    SECRET_PARTS.iter().any(|p| lower.contains(p))
        || words(setting).any(|w| SECRET_WORDS.contains(&w.as_str()))
}

/// What clients see instead of a secret option's value: whether it is set.
pub(crate) fn secret_marker(value: &serde_json::Value) -> serde_json::Value {
    let set = match value {
        serde_json::Value::Null => false,
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Object(o) => o.get("set").and_then(|v| v.as_bool()).unwrap_or(true),
        _ => true,
    };
    serde_json::json!({ "set": set })
}

/// Replaces every secret in an account object's `options` by
/// [`secret_marker`]; `masked(protocol, setting)` says what the plugin
/// marks masked. Returns whether anything changed.
pub(crate) fn scrub_account(
    info: &mut serde_json::Value,
    masked: impl Fn(&str, &str) -> bool,
) -> bool {
    let protocol = info["protocol"].as_str().unwrap_or_default().to_owned();
    let Some(options) = info.get_mut("options").and_then(|o| o.as_object_mut()) else {
        return false;
    };
    let mut changed = false;
    for (setting, value) in options.iter_mut() {
        if option_secret(setting, masked(&protocol, setting)) {
            let marker = secret_marker(value);
            if *value != marker {
                *value = marker;
                changed = true;
            }
        }
    }
    changed
}

/// Protocols users may not add unless the admin names them in
/// `protocols`: zephyr's sign-on blocks libpurple's thread (and with it every
/// account and request of the user) for 10 s at each attempt on a host
/// without a Zephyr host manager, which is every host Sapphire runs on
/// outside a campus that still uses it.
pub const OFF_BY_DEFAULT: &[&str] = &["prpl-zephyr"];

/// The admin's limit on protocols (`None`: every installed protocol but
/// [`OFF_BY_DEFAULT`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolAllowList(pub Option<Vec<String>>);

impl ProtocolAllowList {
    pub fn allows(&self, protocol: &str) -> bool {
        match &self.0 {
            None => !OFF_BY_DEFAULT.contains(&protocol),
            Some(list) => list.iter().any(|p| p == protocol),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zephyr_program_and_file_options_are_refused() {
        for s in [
            "use_tzc",
            "tzc_command",
            "write_anyone",
            "write_zsubs",
            "read_anyone",
            "read_zsubs",
        ] {
            assert!(option_refused("prpl-zephyr", s).is_some(), "{s}");
        }
        assert!(option_refused("prpl-zephyr", "realm").is_none());
        assert!(option_refused("prpl-zephyr", "exposure_level").is_none());
    }

    #[test]
    fn names_that_say_program_or_path_are_refused_for_any_plugin() {
        for s in [
            "helper_command",
            "exec",
            "BinaryPath",
            "socket-path",
            "log.dir",
            "cert_file",
            "startupScript",
            "x:cmd",
        ] {
            assert!(option_refused("prpl-thirdparty", s).is_some(), "{s}");
        }
    }

    #[test]
    fn ordinary_network_options_are_allowed() {
        for (p, s) in [
            ("prpl-irc", "server"),
            ("prpl-irc", "port"),
            ("prpl-irc", "encoding"),
            ("prpl-irc", "ratelimit-interval"),
            ("prpl-irc", "quitmsg"),
            ("prpl-jabber", "connect_server"),
            ("prpl-jabber", "ft_proxies"),
            ("prpl-jabber", "bosh_url"),
            ("prpl-jabber", "custom_smileys"),
            ("prpl-gg", "http_file_transfers"),
            ("prpl-simple", "useproxy"),
            ("prpl-thirdparty", "profile"),
            ("prpl-thirdparty", "directoryless"),
        ] {
            assert_eq!(option_refused(p, s), None, "{p} {s}");
        }
    }

    #[test]
    fn words_split_at_separators_and_case() {
        let w: Vec<String> = words("tzc_command").collect();
        assert_eq!(w, ["tzc", "command"]);
        let w: Vec<String> = words("BinaryPath").collect();
        assert_eq!(w, ["binary", "path"]);
        let w: Vec<String> = words("ratelimit-interval").collect();
        assert_eq!(w, ["ratelimit", "interval"]);
    }

    #[test]
    fn secrets_by_mask_or_name() {
        for s in [
            "password",
            "email_password",
            "emailPassword",
            "nickserv_pass",
            "token",
            "auth-token",
            "authtoken",
            "client_secret",
            "api_key",
            "apikey",
            "session.cookie",
            "passwd",
        ] {
            assert!(option_secret(s, false), "{s}");
        }
        for s in [
            "server",
            "port",
            "keepalive",
            "hotkeys",
            "passive",
            "auth_plain_in_clear",
            "connect_server",
            "ratelimit-burst",
        ] {
            assert!(!option_secret(s, false), "{s}");
        }
        assert!(option_secret("server", true));
    }

    #[test]
    fn account_objects_are_scrubbed() {
        let mut a = serde_json::json!({
            "id": 1, "protocol": "prpl-sipe",
            "options": {"email_password": "hunter2", "server": "s", "token": "",
                        "secret_word_masked": "x", "opaque": "y"},
        });
        assert!(scrub_account(&mut a, |p, s| p == "prpl-sipe" && s == "opaque"));
        assert_eq!(
            a["options"],
            serde_json::json!({"email_password": {"set": true}, "server": "s",
                "token": {"set": false}, "secret_word_masked": {"set": true},
                "opaque": {"set": true}})
        );
        // Idempotent: a scrubbed object stays as it is.
        assert!(!scrub_account(&mut a, |p, s| p == "prpl-sipe" && s == "opaque"));
        assert!(!a.to_string().contains("hunter2"));
    }

    #[test]
    fn allow_list_of_protocols() {
        assert!(ProtocolAllowList(None).allows("prpl-irc"));
        assert!(!ProtocolAllowList(None).allows("prpl-zephyr"));
        let z = ProtocolAllowList(Some(vec!["prpl-zephyr".into()]));
        assert!(z.allows("prpl-zephyr"));
        let l = ProtocolAllowList(Some(vec!["prpl-irc".into()]));
        assert!(l.allows("prpl-irc"));
        assert!(!l.allows("prpl-zephyr"));
    }
}
