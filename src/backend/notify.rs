//! Notification settings: levels per conversation (and per account, and
//! for everything) and the user's highlight words. They are backend state,
//! kept in `sapphire.db` (tables `notify_levels`, `notify_highlights`) and
//! synced to every client like read markers: `notify.set` emits a
//! `notify.changed` event carrying the whole new settings, and the `hello`
//! snapshot carries them as `notify`.
//!
//! Levels: `all` (every incoming message), `mentions` (messages naming
//! the nick or a highlight word), `none` (mute). Without a setting, chats
//! are `mentions` and IMs `all`. The most specific setting wins:
//! conversation, then account, then the global one, then the default.
//!
//! The settings live in one process-wide [`Settings`] ([`init`] at
//! start-up): the libpurple thread asks [`highlighted`] whether an incoming
//! chat message names a highlight word.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock, RwLock};

use rusqlite::{params, Connection};
use serde_json::{json, Map, Value};

use super::event::Event;
use super::hub::Hub;
use super::protocol::{OpError, OpResult, Params};
use super::store::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_levels (
    account INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    level TEXT NOT NULL,
    PRIMARY KEY (account, kind, name)
);
CREATE TABLE IF NOT EXISTS notify_highlights (word TEXT PRIMARY KEY);
";

/// Most highlight words a user may have.
pub(crate) const MAX_HIGHLIGHTS: usize = 64;
/// Longest highlight word (bytes).
pub(crate) const MAX_HIGHLIGHT_LEN: usize = 128;
/// Most level settings kept (conversations, accounts and the global one).
pub(crate) const MAX_LEVELS: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    All,
    Mentions,
    None,
}

impl Level {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::All => "all",
            Level::Mentions => "mentions",
            Level::None => "none",
        }
    }
    fn parse(s: &str) -> Option<Level> {
        match s {
            "all" => Some(Level::All),
            "mentions" => Some(Level::Mentions),
            "none" => Some(Level::None),
            _ => None,
        }
    }
}

/// Where a level applies. Account 0 (ids start at 1) with an empty kind
/// and name is the global setting; an empty kind and name, the account's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Scope {
    account: i64,
    kind: String,
    name: String,
}

#[derive(Default)]
struct State {
    levels: BTreeMap<Scope, Level>,
    highlights: Vec<String>,
}

/// The settings and the connection that keeps them.
pub(crate) struct Settings {
    conn: Mutex<Connection>,
    state: RwLock<State>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Opens the settings stored in the database at `db_path` (once per
/// process; later calls return the first).
pub(crate) fn init(db_path: &Path) -> Result<&'static Settings, StoreError> {
    if let Some(s) = SETTINGS.get() {
        return Ok(s);
    }
    let s = Settings::open(db_path)?;
    Ok(SETTINGS.get_or_init(|| s))
}

/// The settings, once [`init`] ran.
pub(crate) fn settings() -> Option<&'static Settings> {
    SETTINGS.get()
}

/// Whether `text` contains one of the user's highlight words (as a whole
/// word, ignoring case). False before [`init`].
pub(crate) fn highlighted(text: &str) -> bool {
    settings().is_some_and(|s| s.highlighted(text))
}

fn read_err(e: rusqlite::Error) -> StoreError {
    StoreError::from(e)
}

impl Settings {
    pub(crate) fn open(db_path: &Path) -> Result<Settings, StoreError> {
        let conn = super::store::open(db_path)?;
        conn.execute_batch(&format!("BEGIN;{SCHEMA}COMMIT;"))
            .map_err(read_err)?;
        let mut state = State::default();
        {
            let mut st = conn
                .prepare("SELECT account, kind, name, level FROM notify_levels")
                .map_err(read_err)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        Scope {
                            account: r.get(0)?,
                            kind: r.get(1)?,
                            name: r.get(2)?,
                        },
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(read_err)?;
            for row in rows {
                let (scope, level) = row.map_err(read_err)?;
                if let Some(level) = Level::parse(&level) {
                    state.levels.insert(scope, level);
                }
            }
            let mut st = conn
                .prepare("SELECT word FROM notify_highlights ORDER BY word")
                .map_err(read_err)?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(read_err)?;
            for row in rows {
                state.highlights.push(row.map_err(read_err)?);
            }
        }
        Ok(Settings {
            conn: Mutex::new(conn),
            state: RwLock::new(state),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The level that applies to a conversation (`kind` "im" or "chat").
    pub(crate) fn level(&self, account: i64, kind: &str, name: &str) -> Level {
        let state = self.read();
        let find = |account: i64, kind: &str, name: &str| {
            state
                .levels
                .get(&Scope {
                    account,
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                })
                .copied()
        };
        find(account, kind, name)
            .or_else(|| find(account, "", ""))
            .or_else(|| find(0, "", ""))
            .unwrap_or(if kind == "im" {
                Level::All
            } else {
                Level::Mentions
            })
    }

    pub(crate) fn highlighted(&self, text: &str) -> bool {
        let state = self.read();
        if state.highlights.is_empty() {
            return false;
        }
        let text = text.to_lowercase();
        state
            .highlights
            .iter()
            .any(|w| contains_word(&text, &w.to_lowercase()))
    }

    /// Everything, as `notify.get`, the event and the snapshot show it.
    pub(crate) fn to_json(&self) -> Value {
        let state = self.read();
        let levels: Vec<Value> = state
            .levels
            .iter()
            .map(|(s, l)| {
                let mut v = json!({"level": l.as_str()});
                if s.account != 0 {
                    v["account"] = json!(s.account);
                }
                if !s.kind.is_empty() {
                    v["conversation"] = json!({"kind": s.kind, "name": s.name});
                }
                v
            })
            .collect();
        json!({"levels": levels, "highlights": state.highlights})
    }

    fn set_level(&self, scope: Scope, level: Option<Level>) -> Result<(), OpError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match level {
            Some(level) => {
                if !state.levels.contains_key(&scope) && state.levels.len() >= MAX_LEVELS {
                    return Err(OpError::new(
                        "too_long",
                        format!("at most {MAX_LEVELS} notification levels"),
                    ));
                }
                conn.execute(
                    "INSERT INTO notify_levels (account, kind, name, level) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (account, kind, name) DO UPDATE SET level = excluded.level",
                    params![scope.account, scope.kind, scope.name, level.as_str()],
                )
                .map_err(OpError::internal)?;
                state.levels.insert(scope, level);
            }
            None => {
                conn.execute(
                    "DELETE FROM notify_levels WHERE account = ?1 AND kind = ?2 AND name = ?3",
                    params![scope.account, scope.kind, scope.name],
                )
                .map_err(OpError::internal)?;
                state.levels.remove(&scope);
            }
        }
        Ok(())
    }

    fn set_highlights(&self, words: Vec<String>) -> Result<(), OpError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction().map_err(OpError::internal)?;
        tx.execute("DELETE FROM notify_highlights", [])
            .map_err(OpError::internal)?;
        for w in &words {
            tx.execute(
                "INSERT OR IGNORE INTO notify_highlights (word) VALUES (?1)",
                [w],
            )
            .map_err(OpError::internal)?;
        }
        tx.commit().map_err(OpError::internal)?;
        state.highlights = words;
        Ok(())
    }
}

/// Whether `needle` occurs in `text` with no letter or digit right before
/// or after it (both already lower-cased).
fn contains_word(text: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let word_char = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut start = 0;
    while let Some(i) = text[start..].find(needle) {
        let at = start + i;
        let end = at + needle.len();
        if !word_char(text[..at].chars().next_back()) && !word_char(text[end..].chars().next()) {
            return true;
        }
        start = at + text[at..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

fn settings_or_err() -> Result<&'static Settings, OpError> {
    settings().ok_or_else(|| OpError::internal("notification settings not loaded"))
}

/// `notify.get`: every setting; with `account` and `conversation`, also
/// `level`, the one that applies there.
pub(crate) fn get(req: &Map<String, Value>) -> OpResult {
    let s = settings_or_err()?;
    let p = Params(req);
    let mut v = s.to_json();
    if p.opt("conversation").is_some() {
        let account = p.i64("account")?;
        let (kind, name) = p.conversation()?;
        v["level"] = json!(s.level(account, kind.as_str(), name).as_str());
    }
    Ok(v)
}

/// `notify.set {account?, conversation?, level}` (`level` `"default"`
/// removes the setting) and/or `{highlights: [word]}`; emits
/// `notify.changed` with the whole settings.
pub(crate) async fn set(hub: &std::sync::Arc<Hub>, req: &Map<String, Value>) -> OpResult {
    let s = settings_or_err()?;
    let p = Params(req);
    let level = match p.opt_str("level")? {
        None => None,
        Some("default") => Some(None),
        Some(l) => Some(Some(Level::parse(l).ok_or_else(|| {
            OpError::bad_request("'level' must be 'all', 'mentions', 'none' or 'default'")
        })?)),
    };
    let highlights = match p.opt("highlights") {
        None => None,
        Some(Value::Array(a)) => {
            if a.len() > MAX_HIGHLIGHTS {
                return Err(OpError::new(
                    "too_long",
                    format!("at most {MAX_HIGHLIGHTS} highlight words"),
                ));
            }
            let mut words: Vec<String> = Vec::new();
            for w in a {
                let w = w
                    .as_str()
                    .ok_or_else(|| OpError::bad_request("'highlights' must be strings"))?
                    .trim();
                if w.is_empty() || w.len() > MAX_HIGHLIGHT_LEN || w.chars().any(char::is_control) {
                    return Err(OpError::bad_request(format!(
                        "a highlight word must be 1 to {MAX_HIGHLIGHT_LEN} bytes without control characters"
                    )));
                }
                if !words.iter().any(|x| x.to_lowercase() == w.to_lowercase()) {
                    words.push(w.to_owned());
                }
            }
            Some(words)
        }
        Some(_) => {
            return Err(OpError::bad_request(
                "'highlights' must be an array of strings",
            ))
        }
    };
    if level.is_none() && highlights.is_none() {
        return Err(OpError::bad_request("'level' or 'highlights' is required"));
    }
    let scope = if level.is_some() {
        let account = match p.opt("account") {
            None => 0,
            Some(_) => {
                let a = p.i64("account")?;
                if a <= 0 {
                    return Err(OpError::new("no_such_account", "no such account"));
                }
                a
            }
        };
        match p.opt("conversation") {
            None => Some(Scope {
                account,
                kind: String::new(),
                name: String::new(),
            }),
            Some(_) => {
                if account == 0 {
                    return Err(OpError::bad_request(
                        "'account' is required with 'conversation'",
                    ));
                }
                let (kind, name) = p.conversation()?;
                Some(Scope {
                    account,
                    kind: kind.as_str().to_owned(),
                    name: name.to_owned(),
                })
            }
        }
    } else {
        None
    };
    let hub = hub.clone();
    tokio::task::spawn_blocking(move || {
        if let (Some(scope), Some(level)) = (scope, level) {
            s.set_level(scope, level)?;
        }
        if let Some(words) = highlights {
            s.set_highlights(words)?;
        }
        let v = s.to_json();
        hub.emit(Event::NotifyChanged {
            levels: v["levels"].clone(),
            highlights: v["highlights"].clone(),
        })
        .map_err(OpError::internal)
    })
    .await
    .map_err(OpError::internal)??;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_whole_words_only() {
        assert!(contains_word("hey sapphire!", "sapphire"));
        assert!(contains_word("sapphire", "sapphire"));
        assert!(!contains_word("sapphires", "sapphire"));
        assert!(!contains_word("xsapphire", "sapphire"));
        assert!(contains_word("é sapphire é", "sapphire"));
        assert!(contains_word("aaa, aa", "aa"));
        assert!(!contains_word("anything", ""));
    }

    #[test]
    fn most_specific_level_wins_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let s = Settings::open(&db).unwrap();
        assert_eq!(s.level(1, "chat", "#a"), Level::Mentions);
        assert_eq!(s.level(1, "im", "bob"), Level::All);
        let scope = |account: i64, kind: &str, name: &str| Scope {
            account,
            kind: kind.into(),
            name: name.into(),
        };
        s.set_level(scope(0, "", ""), Some(Level::None)).unwrap();
        s.set_level(scope(1, "", ""), Some(Level::All)).unwrap();
        s.set_level(scope(1, "chat", "#a"), Some(Level::Mentions))
            .unwrap();
        assert_eq!(s.level(1, "chat", "#a"), Level::Mentions);
        assert_eq!(s.level(1, "chat", "#b"), Level::All);
        assert_eq!(s.level(2, "im", "bob"), Level::None);
        s.set_highlights(vec!["Ruby".into()]).unwrap();
        drop(s);
        let s = Settings::open(&db).unwrap();
        assert_eq!(s.level(1, "chat", "#b"), Level::All);
        assert!(s.highlighted("I like ruby."));
        assert!(!s.highlighted("rubygems"));
        s.set_level(scope(1, "", ""), None).unwrap();
        assert_eq!(s.level(1, "chat", "#b"), Level::None);
        let v = s.to_json();
        assert_eq!(v["highlights"], json!(["Ruby"]));
        assert_eq!(v["levels"].as_array().unwrap().len(), 2);
    }
}
