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
}

/// What the backend was configured with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    pub protocols: ProtocolAllowList,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("{0}: key 'protocols': {1}")]
    Protocols(PathBuf, String),
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
        Ok(BackendConfig {
            protocols: ProtocolAllowList(file.protocols),
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
        assert!(c.protocols.allows("prpl-zephyr"));
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
    fn an_explicit_file_must_exist() {
        let e = BackendConfig::load(Some(Path::new("/nonexistent/backend.toml"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/backend.toml"));
    }
}
