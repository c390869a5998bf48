//! The accounts file: who may sign in, with which password.
//!
//! Format (JSON, default `/etc/sapphire/accounts.json`):
//!
//! ```json
//! {
//!   "version": 1,
//!   "users": {
//!     "alice": { "hash": "$argon2id$v=19$m=19456,t=2,p=1$...", "disabled": false }
//!   }
//! }
//! ```
//!
//! Hashes are argon2id PHC strings. New hashes use m=19456 KiB, t=2, p=1:
//! OWASP's minimum recommendation for argon2id, which costs about 30–60 ms
//! and 19 MiB per login on the reference machine. Verification reads the
//! parameters from each PHC string, so raising them later needs no migration.
//!
//! Writers (`sapphire-ctl`) hold an exclusive lock on `<file>.lock` for the
//! whole read-modify-write and replace the file atomically, so concurrent
//! runs never lose an update; the file keeps its mode and ownership.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil::{atomic_write, LockFile};
use crate::username::Username;

/// Default location of the accounts file.
pub const DEFAULT_PATH: &str = "/etc/sapphire/accounts.json";

/// Argon2id memory cost for new hashes, in KiB.
pub const ARGON2_M_KIB: u32 = 19_456;
/// Argon2id iterations for new hashes.
pub const ARGON2_T: u32 = 2;
/// Argon2id parallelism for new hashes.
pub const ARGON2_P: u32 = 1;

/// Longest password accepted anywhere, in bytes. Longer input is refused
/// before hashing so nobody can make the server hash megabytes.
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a valid accounts file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: unsupported accounts file version {version} (this Sapphire knows version 1)")]
    Version { path: PathBuf, version: u32 },
    #[error("user {0} already exists")]
    Exists(Username),
    #[error("no such user: {0}")]
    NoSuchUser(Username),
    #[error("the password is empty")]
    EmptyPassword,
    #[error("the password is longer than {MAX_PASSWORD_LEN} bytes")]
    PasswordTooLong,
    #[error("could not hash the password: {0}")]
    Hash(String),
}

/// One user's entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    /// argon2id PHC string.
    pub hash: String,
    #[serde(default)]
    pub disabled: bool,
    /// Bumped each time the user is disabled, so that sessions opened
    /// before stay dead after `enable` (absent while 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Account {
    /// A short fingerprint of the password hash and the generation.
    /// Sessions carry it, so a password change (a new hash, new salt) or a
    /// disable invalidates them for good.
    pub fn password_stamp(&self) -> [u8; 8] {
        let mut sha = Sha256::new();
        sha.update(self.hash.as_bytes());
        if self.generation != 0 {
            sha.update(b"\0");
            sha.update(self.generation.to_be_bytes());
        }
        let digest = sha.finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        out
    }
}

/// The whole accounts file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Accounts {
    pub version: u32,
    #[serde(default)]
    pub users: BTreeMap<Username, Account>,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            version: 1,
            users: BTreeMap::new(),
        }
    }
}

impl Accounts {
    /// Reads the file. A missing file is an empty set of accounts.
    pub fn load(path: &Path) -> Result<Accounts, AccountsError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Accounts::default()),
            Err(source) => {
                return Err(AccountsError::Io {
                    path: path.into(),
                    source,
                })
            }
        };
        let accounts: Accounts =
            serde_json::from_slice(&bytes).map_err(|source| AccountsError::Parse {
                path: path.into(),
                source,
            })?;
        if accounts.version != 1 {
            return Err(AccountsError::Version {
                path: path.into(),
                version: accounts.version,
            });
        }
        Ok(accounts)
    }

    /// Locks the file, loads it, applies `change`, and writes it back
    /// atomically if `change` succeeded.
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut Accounts) -> Result<T, AccountsError>,
    ) -> Result<T, AccountsError> {
        let io_err = |source| AccountsError::Io {
            path: path.into(),
            source,
        };
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let _lock = LockFile::acquire(Path::new(&lock_path)).map_err(io_err)?;
        let mut accounts = Accounts::load(path)?;
        let out = change(&mut accounts)?;
        let mut json = serde_json::to_vec_pretty(&accounts).expect("accounts serialise");
        json.push(b'\n');
        atomic_write(path, &json, 0o600).map_err(io_err)?;
        Ok(out)
    }

    pub fn get(&self, user: &Username) -> Option<&Account> {
        self.users.get(user)
    }

    pub fn add(&mut self, user: Username, password: &str) -> Result<(), AccountsError> {
        if self.users.contains_key(&user) {
            return Err(AccountsError::Exists(user));
        }
        let hash = hash_password(password)?;
        self.users.insert(
            user,
            Account {
                hash,
                disabled: false,
                generation: 0,
            },
        );
        Ok(())
    }

    pub fn set_password(&mut self, user: &Username, password: &str) -> Result<(), AccountsError> {
        let hash = hash_password(password)?;
        self.get_mut(user)?.hash = hash;
        Ok(())
    }

    pub fn set_disabled(&mut self, user: &Username, disabled: bool) -> Result<(), AccountsError> {
        let account = self.get_mut(user)?;
        if disabled && !account.disabled {
            account.generation += 1;
        }
        account.disabled = disabled;
        Ok(())
    }

    pub fn remove(&mut self, user: &Username) -> Result<Account, AccountsError> {
        self.users
            .remove(user)
            .ok_or_else(|| AccountsError::NoSuchUser(user.clone()))
    }

    fn get_mut(&mut self, user: &Username) -> Result<&mut Account, AccountsError> {
        self.users
            .get_mut(user)
            .ok_or_else(|| AccountsError::NoSuchUser(user.clone()))
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).expect("valid argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a candidate password's shape: not empty, not huge.
pub fn check_password_shape(password: &str) -> Result<(), AccountsError> {
    if password.is_empty() {
        return Err(AccountsError::EmptyPassword);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AccountsError::PasswordTooLong);
    }
    Ok(())
}

/// Hashes a password with argon2id and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, AccountsError> {
    check_password_shape(password)?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountsError::Hash(e.to_string()))
}

/// Verifies `password` against a PHC string. Malformed hashes never match.
pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password with the current parameters. Logins for
/// unknown users are verified against it so that they cost the same time as
/// logins for known users.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut pw = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut pw);
        hash_password(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            pw,
        ))
        .expect("dummy hash")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    #[test]
    fn hash_uses_documented_parameters_and_verifies() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn refuses_empty_and_huge_passwords() {
        assert!(matches!(
            hash_password(""),
            Err(AccountsError::EmptyPassword)
        ));
        assert!(matches!(
            hash_password(&"x".repeat(MAX_PASSWORD_LEN + 1)),
            Err(AccountsError::PasswordTooLong)
        ));
    }

    #[test]
    fn update_round_trips_and_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.json");
        assert!(Accounts::load(&path).unwrap().users.is_empty());
        Accounts::update(&path, |a| a.add(u("alice"), "pw")).unwrap();
        let err = Accounts::update(&path, |a| a.add(u("alice"), "pw2")).unwrap_err();
        assert!(matches!(err, AccountsError::Exists(_)));
        let loaded = Accounts::load(&path).unwrap();
        let alice = loaded.get(&u("alice")).unwrap();
        assert!(verify_password(&alice.hash, "pw"));
        assert!(!alice.disabled);
    }

    #[test]
    fn disable_changes_the_stamp_for_good() {
        let mut a = Accounts::default();
        a.add(u("bob"), "one").unwrap();
        let before = a.get(&u("bob")).unwrap().password_stamp();
        a.set_disabled(&u("bob"), false).unwrap();
        assert_eq!(before, a.get(&u("bob")).unwrap().password_stamp());
        a.set_disabled(&u("bob"), true).unwrap();
        a.set_disabled(&u("bob"), true).unwrap();
        let disabled = a.get(&u("bob")).unwrap().password_stamp();
        assert_ne!(before, disabled);
        a.set_disabled(&u("bob"), false).unwrap();
        let enabled = a.get(&u("bob")).unwrap().password_stamp();
        assert_ne!(before, enabled);
        assert_eq!(disabled, enabled);
    }

    #[test]
    fn password_change_changes_stamp() {
        let mut a = Accounts::default();
        a.add(u("bob"), "one").unwrap();
        let before = a.get(&u("bob")).unwrap().password_stamp();
        a.set_password(&u("bob"), "one").unwrap();
        assert_ne!(before, a.get(&u("bob")).unwrap().password_stamp());
    }

    #[test]
    fn hostile_file_contents_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.json");
        std::fs::write(&path, r#"{"version":1,"users":{"../etc":{"hash":"x"}}}"#).unwrap();
        assert!(matches!(
            Accounts::load(&path),
            Err(AccountsError::Parse { .. })
        ));
        std::fs::write(&path, r#"{"version":7,"users":{}}"#).unwrap();
        assert!(matches!(
            Accounts::load(&path),
            Err(AccountsError::Version { version: 7, .. })
        ));
    }
}
