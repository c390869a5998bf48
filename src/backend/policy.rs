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
