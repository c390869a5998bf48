//! The one place that decides what a Sapphire user name may be.
//!
//! A user name becomes a systemd instance name (`sapphire-backend@NAME`), a
//! file name (`NAME.sock`, a state directory) and a key in the accounts file.
//! Every component validates names through [`Username::parse`]; nothing else
//! constructs a `Username`.

use std::fmt;

/// Longest accepted user name, in bytes (same as Linux user names).
pub const MAX_LEN: usize = 32;

/// A validated user name: `^[a-z_][a-z0-9_-]{0,31}$`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

/// Why a user name was refused. The message is meant for people.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsernameError {
    #[error("user name is empty")]
    Empty,
    #[error("user name is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("user name must start with a lower-case letter or '_'")]
    BadFirst,
    #[error("user name may contain only a-z, 0-9, '_' and '-'")]
    BadChar,
}

impl Username {
    /// Validates `s` against `^[a-z_][a-z0-9_-]{0,31}$`.
    pub fn parse(s: &str) -> Result<Self, UsernameError> {
        let bytes = s.as_bytes();
        let first = *bytes.first().ok_or(UsernameError::Empty)?;
        if bytes.len() > MAX_LEN {
            return Err(UsernameError::TooLong);
        }
        if !(first.is_ascii_lowercase() || first == b'_') {
            return Err(UsernameError::BadFirst);
        }
        if !bytes[1..]
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(UsernameError::BadChar);
        }
        Ok(Username(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Username {
    type Err = UsernameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Username::parse(s)
    }
}

impl serde::Serialize for Username {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Username::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["alice", "_svc", "a", "bob-2", "x_y-z9", &"a".repeat(32)] {
            assert_eq!(Username::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_hostile_names() {
        let long = "a".repeat(300);
        let cases: &[(&str, UsernameError)] = &[
            ("", UsernameError::Empty),
            ("../x", UsernameError::BadFirst),
            ("a.service", UsernameError::BadChar),
            ("a/b", UsernameError::BadChar),
            ("Alice", UsernameError::BadFirst),
            ("al ice", UsernameError::BadChar),
            ("a\0b", UsernameError::BadChar),
            ("-a", UsernameError::BadFirst),
            ("9a", UsernameError::BadFirst),
            ("a@b", UsernameError::BadChar),
            ("é", UsernameError::BadFirst),
            (&long, UsernameError::TooLong),
        ];
        for (bad, why) in cases {
            assert_eq!(Username::parse(bad).unwrap_err(), *why, "{bad:?}");
        }
        assert!(Username::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<Username>("\"../etc\"").is_err());
        assert_eq!(
            serde_json::from_str::<Username>("\"ok\"").unwrap().as_str(),
            "ok"
        );
    }
}
