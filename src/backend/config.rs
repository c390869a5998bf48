//! The backend's configuration file, `backend.toml` (documented in
//! `docs/deploy.md`). Every key is optional; a missing file means the
//! defaults; an unknown key or a value of the wrong type is an error at
//! start that names it.
//!
//! Where it is read from, first match wins:
//! 1. `--config FILE` (then the file must exist);
//! 2. `$CREDENTIALS_DIRECTORY/backend.toml`: under systemd the unit passes
//!    `/etc/sapphire/backend.toml` with `LoadCredential=` (the sandbox makes
//!    `/etc/sapphire` itself inaccessible to backends);
//! 3. `/etc/sapphire/backend.toml` (spawn mode on a host with the package).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::policy::ProtocolAllowList;

/// The file read when nothing else is named.
pub const DEFAULT_PATH: &str = "/etc/sapphire/backend.toml";

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct File {
    /// Protocol ids users may add accounts for (default: every installed
    /// protocol).
    protocols: Option<Vec<String>>,
    /// Confine the backend with Landlock (default true; see
    /// `backend::sandbox`).
    landlock: Option<bool>,
    /// Seconds the purple thread may stall before the backend restarts
    /// (default 30, from 10 to 3600: longer than a request's deadline; see `backend::watchdog`).
    stall_limit: Option<u64>,
    /// Seconds an account may take to sign on before it is put in error and
    /// retried (default 60, from 1 to 3600; see `purple::accounts`).
    signon_timeout: Option<u64>,
    /// Ids of general (non-protocol) libpurple plugins to load at start,
    /// e.g. `core-riba-carbons` (default: none; see `purple::load_plugins`).
    plugins: Option<Vec<String>>,
    /// Conversations a `hello` snapshot carries (default 500, from 1 to
    /// 10000; the rest come with `conversations.list`).
    hello_conversations: Option<u64>,
    /// Web Push delivery (`[push]`, see [`PushConfig`]).
    push: Option<PushFile>,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct PushFile {
    subject: Option<String>,
    delay: Option<u64>,
    hide_text: Option<bool>,
    max_per_minute: Option<u32>,
    ttl: Option<u64>,
}

/// How the backend delivers Web Push (`[push]` in `backend.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// The VAPID `sub` claim: how the push service's operator reaches the
    /// admin (`mailto:` or `https:`). Default `mailto:sapphire@HOSTNAME`.
    pub subject: String,
    /// How long a connected client has to mark a message read before it is
    /// pushed anyway (default 30 s, 1 to 3600).
    pub delay: std::time::Duration,
    /// Push "New message" instead of the text (default false).
    pub hide_text: bool,
    /// Most pushes per minute; the rest are collapsed into one
    /// "N new messages" (default 10, 1 to 600).
    pub max_per_minute: u32,
    /// How long the push service keeps an undelivered push (the `TTL`
    /// header; default 86400 s, 0 to 2419200).
    pub ttl: std::time::Duration,
}

impl Default for PushConfig {
    fn default() -> PushConfig {
        PushConfig {
            subject: default_subject(),
            delay: std::time::Duration::from_secs(30),
            hide_text: false,
            max_per_minute: 10,
            ttl: std::time::Duration::from_secs(86_400),
        }
    }
}

/// `mailto:sapphire@HOSTNAME` (the admin should name a real address).
fn default_subject() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let host = if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        "localhost".to_owned()
    } else {
        host
    };
    format!("mailto:sapphire@{host}")
}

/// What the backend was configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    pub protocols: ProtocolAllowList,
    /// Whether the backend confines itself with Landlock.
    pub landlock: bool,
    /// How long the purple thread may stall before the backend restarts.
    pub stall_limit: std::time::Duration,
    /// How long an account may stay `connecting` before the backend gives
    /// up on that attempt and retries.
    pub signon_timeout: std::time::Duration,
    /// General libpurple plugins the admin wants loaded (by plugin id).
    pub plugins: Vec<String>,
    /// How many conversations (the newest) a `hello` snapshot carries.
    pub hello_conversations: usize,
    /// Web Push delivery.
    pub push: PushConfig,
}

/// The default of [`BackendConfig::hello_conversations`].
pub const HELLO_CONVERSATIONS: usize = 500;

/// The default of [`BackendConfig::signon_timeout`].
pub const SIGNON_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for BackendConfig {
    fn default() -> BackendConfig {
        BackendConfig {
            protocols: ProtocolAllowList::default(),
            landlock: true,
            stall_limit: super::watchdog::STALE,
            signon_timeout: SIGNON_TIMEOUT,
            plugins: Vec::new(),
            hello_conversations: HELLO_CONVERSATIONS,
            push: PushConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("{0}: key 'protocols': {1}")]
    Protocols(PathBuf, String),
    #[error("{0}: key 'stall_limit': {1} is out of range (10 to 3600 seconds)")]
    StallLimit(PathBuf, u64),
    #[error("{0}: key 'signon_timeout': {1} is out of range (1 to 3600 seconds)")]
    SignonTimeout(PathBuf, u64),
    #[error("{0}: key 'plugins': {1}")]
    Plugins(PathBuf, String),
    #[error("{0}: key 'hello_conversations': {1} is out of range (1 to 10000)")]
    HelloConversations(PathBuf, u64),
    #[error("{0}: key 'push.{1}': {2}")]
    Push(PathBuf, &'static str, String),
}

impl BackendConfig {
    /// Finds and reads the configuration (see the module docs).
    pub fn load(explicit: Option<&Path>) -> Result<BackendConfig, ConfigError> {
        if let Some(path) = explicit {
            return BackendConfig::read(path, true);
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let path = Path::new(&dir).join("backend.toml");
            if path.exists() {
                return BackendConfig::read(&path, true);
            }
        }
        BackendConfig::read(Path::new(DEFAULT_PATH), false)
    }

    fn read(path: &Path, required: bool) -> Result<BackendConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(BackendConfig::default())
            }
            Err(e) => return Err(ConfigError::Read(path.to_owned(), e)),
        };
        BackendConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<BackendConfig, ConfigError> {
        let file: File =
            toml::from_str(text).map_err(|e| ConfigError::Parse(path.to_owned(), e))?;
        if let Some(list) = &file.protocols {
            if let Some(bad) = list
                .iter()
                .find(|p| p.is_empty() || p.len() > 128 || p.contains(char::is_whitespace))
            {
                return Err(ConfigError::Protocols(
                    path.to_owned(),
                    format!("'{bad}' is not a protocol id (e.g. \"prpl-irc\")"),
                ));
            }
        }
        let plugins = file.plugins.unwrap_or_default();
        if let Some(bad) = plugins.iter().find(|p| {
            p.is_empty()
                || p.len() > 128
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        }) {
            return Err(ConfigError::Plugins(
                path.to_owned(),
                format!("'{bad}' is not a plugin id (e.g. \"core-riba-carbons\")"),
            ));
        }
        let stall_limit = match file.stall_limit {
            None => super::watchdog::STALE,
            Some(s) if (10..=3600).contains(&s) => std::time::Duration::from_secs(s),
            Some(s) => return Err(ConfigError::StallLimit(path.to_owned(), s)),
        };
        let signon_timeout = match file.signon_timeout {
            None => SIGNON_TIMEOUT,
            Some(s) if (1..=3600).contains(&s) => std::time::Duration::from_secs(s),
            Some(s) => return Err(ConfigError::SignonTimeout(path.to_owned(), s)),
        };
        let hello_conversations = match file.hello_conversations {
            None => HELLO_CONVERSATIONS,
            Some(n) if (1..=10_000).contains(&n) => n as usize,
            Some(n) => return Err(ConfigError::HelloConversations(path.to_owned(), n)),
        };
        let push = PushConfig::from_file(path, file.push.unwrap_or_default())?;
        Ok(BackendConfig {
            protocols: ProtocolAllowList(file.protocols),
            landlock: file.landlock.unwrap_or(true),
            stall_limit,
            signon_timeout,
            plugins,
            hello_conversations,
            push,
        })
    }
}

impl PushConfig {
    fn from_file(path: &Path, f: PushFile) -> Result<PushConfig, ConfigError> {
        let err = |key, msg: String| ConfigError::Push(path.to_owned(), key, msg);
        let d = PushConfig::default();
        let subject = match f.subject {
            None => d.subject,
            Some(s) => {
                let ok = (s.starts_with("mailto:") && s.len() > 7 && s.contains('@'))
                    || (s.starts_with("https://") && s.len() > 8);
                if !ok || s.len() > 256 || s.chars().any(|c| c.is_control() || c == '"') {
                    return Err(err(
                        "subject",
                        format!("'{s}' is not a mailto: address or an https:// URL"),
                    ));
                }
                s
            }
        };
        let delay = match f.delay {
            None => d.delay,
            Some(s) if (1..=3600).contains(&s) => std::time::Duration::from_secs(s),
            Some(s) => {
                return Err(err(
                    "delay",
                    format!("{s} is out of range (1 to 3600 seconds)"),
                ))
            }
        };
        let max_per_minute = match f.max_per_minute {
            None => d.max_per_minute,
            Some(n) if (1..=600).contains(&n) => n,
            Some(n) => {
                return Err(err(
                    "max_per_minute",
                    format!("{n} is out of range (1 to 600)"),
                ))
            }
        };
        let ttl = match f.ttl {
            None => d.ttl,
            Some(s) if s <= 2_419_200 => std::time::Duration::from_secs(s),
            Some(s) => {
                return Err(err(
                    "ttl",
                    format!("{s} is out of range (0 to 2419200 seconds)"),
                ))
            }
        };
        Ok(PushConfig {
            subject,
            delay,
            hide_text: f.hide_text.unwrap_or(d.hide_text),
            max_per_minute,
            ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let c = BackendConfig::parse(Path::new("x"), "").unwrap();
        assert_eq!(c, BackendConfig::default());
        assert!(c.protocols.allows("prpl-irc"));
        assert!(!c.protocols.allows("prpl-zephyr"));
    }

    #[test]
    fn protocols_limit_what_users_may_add() {
        let c = BackendConfig::parse(Path::new("x"), "protocols = [\"prpl-irc\"]").unwrap();
        assert!(c.protocols.allows("prpl-irc"));
        assert!(!c.protocols.allows("prpl-jabber"));
    }

    #[test]
    fn bad_keys_and_values_name_the_key() {
        let e = BackendConfig::parse(Path::new("b.toml"), "protocol = []").unwrap_err();
        assert!(e.to_string().contains("protocol"), "{e}");
        let e = BackendConfig::parse(Path::new("b.toml"), "protocols = \"prpl-irc\"").unwrap_err();
        assert!(e.to_string().contains("protocols"), "{e}");
        let e = BackendConfig::parse(Path::new("b.toml"), "protocols = [\"a b\"]").unwrap_err();
        assert!(e.to_string().contains("'protocols'"), "{e}");
    }

    #[test]
    fn stall_limit_is_bounded() {
        let c = BackendConfig::parse(Path::new("x"), "stall_limit = 10").unwrap();
        assert_eq!(c.stall_limit, std::time::Duration::from_secs(10));
        let e = BackendConfig::parse(Path::new("b.toml"), "stall_limit = 5").unwrap_err();
        assert!(e.to_string().contains("'stall_limit'"), "{e}");
    }

    #[test]
    fn signon_timeout_is_bounded() {
        let c = BackendConfig::parse(Path::new("x"), "").unwrap();
        assert_eq!(c.signon_timeout, std::time::Duration::from_secs(60));
        let c = BackendConfig::parse(Path::new("x"), "signon_timeout = 2").unwrap();
        assert_eq!(c.signon_timeout, std::time::Duration::from_secs(2));
        for bad in ["0", "3601"] {
            let text = format!("signon_timeout = {bad}");
            let e = BackendConfig::parse(Path::new("b.toml"), &text).unwrap_err();
            assert!(e.to_string().contains("'signon_timeout'"), "{e}");
        }
        let e = BackendConfig::parse(Path::new("b.toml"), "signon_timeout = \"1m\"").unwrap_err();
        assert!(e.to_string().contains("signon_timeout"), "{e}");
    }

    #[test]
    fn plugins_are_plugin_ids() {
        let c = BackendConfig::parse(Path::new("x"), "").unwrap();
        assert!(c.plugins.is_empty());
        let c = BackendConfig::parse(
            Path::new("x"),
            "plugins = [\"core-riba-carbons\", \"xep-http-file-upload\"]",
        )
        .unwrap();
        assert_eq!(c.plugins, ["core-riba-carbons", "xep-http-file-upload"]);
        for bad in ["\"\"", "\"a b\"", "\"../x\"", "\"x/y\""] {
            let text = format!("plugins = [{bad}]");
            let e = BackendConfig::parse(Path::new("b.toml"), &text).unwrap_err();
            assert!(e.to_string().contains("'plugins'"), "{text}: {e}");
        }
    }

    #[test]
    fn hello_conversations_is_bounded() {
        let c = BackendConfig::parse(Path::new("x"), "").unwrap();
        assert_eq!(c.hello_conversations, 500);
        let c = BackendConfig::parse(Path::new("x"), "hello_conversations = 2").unwrap();
        assert_eq!(c.hello_conversations, 2);
        for bad in ["0", "10001"] {
            let text = format!("hello_conversations = {bad}");
            let e = BackendConfig::parse(Path::new("b.toml"), &text).unwrap_err();
            assert!(e.to_string().contains("'hello_conversations'"), "{e}");
        }
    }

    #[test]
    fn push_settings_are_checked_and_name_the_key() {
        let c = BackendConfig::parse(Path::new("x"), "").unwrap();
        assert!(
            c.push.subject.starts_with("mailto:sapphire@"),
            "{}",
            c.push.subject
        );
        assert_eq!(c.push.delay, std::time::Duration::from_secs(30));
        let c = BackendConfig::parse(
            Path::new("x"),
            "[push]\nsubject = \"mailto:admin@example.org\"\ndelay = 2\nhide_text = true\nmax_per_minute = 3\nttl = 60\n",
        )
        .unwrap();
        assert_eq!(c.push.subject, "mailto:admin@example.org");
        assert_eq!(c.push.delay, std::time::Duration::from_secs(2));
        assert!(c.push.hide_text);
        assert_eq!(c.push.max_per_minute, 3);
        assert_eq!(c.push.ttl, std::time::Duration::from_secs(60));
        for (text, key) in [
            ("[push]\nsubject = \"admin\"", "'push.subject'"),
            ("[push]\ndelay = 0", "'push.delay'"),
            ("[push]\nmax_per_minute = 0", "'push.max_per_minute'"),
            ("[push]\nttl = 99999999", "'push.ttl'"),
            ("[push]\nloud = true", "loud"),
        ] {
            let e = BackendConfig::parse(Path::new("b.toml"), text).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }

    /// The file the package ships documents real keys: with every
    /// commented-out setting turned on, it parses.
    #[test]
    fn the_shipped_example_parses_uncommented() {
        let shipped = include_str!("../../packaging/backend.toml");
        let on: String = shipped
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = BackendConfig::parse(Path::new("backend.toml"), &on).unwrap();
        assert_eq!(c.push.subject, "mailto:admin@example.org");
        assert!(!c.protocols.allows("prpl-zephyr"));
    }

    #[test]
    fn an_explicit_file_must_exist() {
        let e = BackendConfig::load(Some(Path::new("/nonexistent/backend.toml"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/backend.toml"));
    }
}
