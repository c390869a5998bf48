//! Durable state: one SQLite database (WAL) in the state directory.
//!
//! * `events`: every event ever emitted, by `seq`, as the JSON sent to
//!   clients. Written (committed) before the event is sent to anyone.
//! * `conversations` + `messages` + `messages_fts` (FTS5): the message
//!   history per conversation, with full-text search and read markers.
//! * `open_chats`, `open_requests`, `account_status`: what clients were
//!   told is open, so a restart can tell them it is closed.
//! * `accounts`: account configurations, re-applied to libpurple at
//!   start-up (libpurple saves its own copy up to 5 s late).
//! * `autojoin`: chats to join whenever their account signs on.
//! * `signons`: accounts whose sign-on is under way (`pending`) and how
//!   many starts in a row found one left over (`strikes`): a sign-on that
//!   crashed or wedged the backend (issue #10).
//!
//! WAL with `synchronous=NORMAL`: a committed transaction survives the
//! process being killed (`kill -9`); only a power loss may drop the last
//! transactions.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

use super::event::{ConvRef, Event};
use super::policy;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("bad stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the state directory is full ({0})")]
    Full(String),
    #[error("cannot check the state directory: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Whether the write failed for lack of space (SQLite's `SQLITE_FULL`,
    /// which it also reports for `ENOSPC`, or a space check).
    pub(crate) fn is_full(&self) -> bool {
        match self {
            StoreError::Full(_) => true,
            StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Io(e) => e.raw_os_error() == Some(libc::ENOSPC),
            _ => false,
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    op TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    account INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    read_seq INTEGER NOT NULL DEFAULT 0,
    unread INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account, kind, name)
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    conversation INTEGER NOT NULL REFERENCES conversations(id),
    time INTEGER NOT NULL,
    sender TEXT NOT NULL,
    alias TEXT,
    text TEXT NOT NULL,
    direction TEXT NOT NULL,
    action INTEGER NOT NULL DEFAULT 0,
    queued INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation, seq);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5 (
    text, content='messages', content_rowid='seq'
);
CREATE TABLE IF NOT EXISTS open_chats (
    account INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY (account, name)
);
CREATE TABLE IF NOT EXISTS open_requests (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS account_status (account INTEGER PRIMARY KEY, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    config TEXT NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS autojoin (
    account INTEGER NOT NULL,
    name TEXT NOT NULL COLLATE NOCASE,
    fields TEXT NOT NULL,
    PRIMARY KEY (account, name)
);
CREATE TABLE IF NOT EXISTS signons (
    account INTEGER PRIMARY KEY,
    pending INTEGER NOT NULL DEFAULT 0,
    strikes INTEGER NOT NULL DEFAULT 0
);
";

/// Identifies a conversation: an account, a kind (`im`/`chat`) and a name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ConvKey {
    pub account: i64,
    pub kind: String,
    pub name: String,
}

impl ConvKey {
    pub(crate) fn new(account: i64, conversation: &ConvRef) -> ConvKey {
        ConvKey {
            account,
            kind: conversation.kind.as_str().to_owned(),
            name: conversation.name.clone(),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({"kind": self.kind, "name": self.name})
    }
}

/// Opens (creating if needed) the database at `path`.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // One transaction: one commit instead of one per table. Every
    // statement is idempotent, so new tables appear in old databases.
    conn.execute_batch(&format!("BEGIN;{SCHEMA}COMMIT;"))?;
    migrate(&conn)?;
    Ok(conn)
}

/// Columns added to `messages` after version 1's first schema, added to
/// older databases (idempotent):
///
/// * `messages.mention`, `conversations.mentions`: whether an incoming
///   message was a mention, and how many unread ones a conversation has
///   (the snapshot's `mentions`, history's `mention`); 0 for what was
///   stored before.
/// * `messages.sent`: the original time (Unix ms) of a replayed
///   (`delayed`) message; NULL for a live one, whose original time is
///   `time`. History dedup ([`Store::find_duplicate`]) matches on
///   `coalesce(sent, time)`, indexed by `messages_by_original_time`.
/// * `action`, `queued`, `error` (issue #12): a `/me` action; an outgoing
///   line still waiting for the pace; why it was never sent (set by
///   `message.sent`).
const MESSAGE_COLUMNS: &[(&str, &str)] = &[
    ("sent", "INTEGER"),
    ("action", "INTEGER NOT NULL DEFAULT 0"),
    ("queued", "INTEGER NOT NULL DEFAULT 0"),
    ("error", "TEXT"),
];

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let have = {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('messages')")?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
        names.collect::<rusqlite::Result<Vec<String>>>()?
    };
    for (name, decl) in MESSAGE_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE messages ADD COLUMN {name} {decl}"))?;
        }
    }
    for (table, column) in [("messages", "mention"), ("conversations", "mentions")] {
        let has: bool = conn.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !has {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
            ))?;
        }
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS messages_by_original_time
         ON messages (conversation, coalesce(sent, time))",
    )?;
    Ok(())
}

/// The writer side, owned by the hub.
pub(crate) struct Store {
    conn: Connection,
}

impl Store {
    pub(crate) fn open(path: &Path) -> Result<Store> {
        Ok(Store { conn: open(path)? })
    }

    pub(crate) fn last_seq(&self) -> Result<u64> {
        let seq: Option<i64> = self
            .conn
            .query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
        Ok(seq.unwrap_or(0) as u64)
    }

    pub(crate) fn meta_get(&self, key: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub(crate) fn meta_set(&self, key: &str, value: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Replaces secret option values in every stored `account.added` and
    /// `account.updated` event ([`policy::scrub_account`]; older versions
    /// stored them as sent). Idempotent and cheap (account events are few),
    /// so it runs at every start, once the plugins' `masked` flags are
    /// known. Returns how many events changed.
    pub(crate) fn scrub_account_secrets(
        &mut self,
        masked: impl Fn(&str, &str) -> bool,
    ) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let rows: Vec<(i64, String)> = {
            let mut stmt = tx.prepare(
                "SELECT seq, body FROM events WHERE op IN ('account.added', 'account.updated')",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut changed = 0;
        for (seq, body) in rows {
            let mut wire: Value = serde_json::from_str(&body)?;
            if policy::scrub_account(&mut wire["info"], &masked) {
                tx.execute(
                    "UPDATE events SET body = ?1 WHERE seq = ?2",
                    params![serde_json::to_string(&wire)?, seq],
                )?;
                changed += 1;
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Persists one event (and what it implies) in one transaction; returns
    /// the JSON sent to clients and, for an event that changed a
    /// conversation, its summary row (see [`Store::conversations`]).
    pub(crate) fn persist(&mut self, seq: u64, time: i64, event: &Event) -> Result<Persisted> {
        let wire = event.to_wire(seq, time);
        let body = serde_json::to_string(&wire)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO events (seq, time, op, body) VALUES (?1, ?2, ?3, ?4)",
            params![seq as i64, time, event.op(), body],
        )?;
        let mut conversation = None;
        match event {
            Event::Message(m) => {
                let key = ConvKey::new(m.account, &m.conversation);
                let direction = m.direction.as_str();
                let conv = upsert_conversation(&tx, &key)?;
                let sent = m.sent.filter(|_| m.delayed);
                let mention = i64::from(direction == "in" && m.mention);
                tx.execute(
                    "INSERT INTO messages
                       (seq, conversation, time, sender, alias, text, direction, sent, mention,
                        action, queued)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        seq as i64, conv, time, m.sender, m.alias, m.text, direction, sent,
                        mention, m.action, m.queued
                    ],
                )?;
                tx.execute(
                    "INSERT INTO messages_fts (rowid, text) VALUES (?1, ?2)",
                    params![seq as i64, m.text],
                )?;
                let unread = i64::from(direction == "in");
                tx.execute(
                    "UPDATE conversations SET last_seq = ?2, unread = unread + ?3,
                       mentions = mentions + ?4 WHERE id = ?1",
                    params![conv, seq as i64, unread, mention],
                )?;
                conversation = Some(conversation_row(&tx, conv)?);
            }
            Event::MessageSent { message, error, .. } => {
                tx.execute(
                    "UPDATE messages SET queued = 0, error = ?2 WHERE seq = ?1",
                    params![*message as i64, error],
                )?;
            }
            Event::Read {
                account,
                conversation: c,
                read_seq,
            } => {
                let key = ConvKey::new(*account, c);
                let conv = upsert_conversation(&tx, &key)?;
                tx.execute(
                    "UPDATE conversations SET read_seq = max(read_seq, ?2) WHERE id = ?1",
                    params![conv, *read_seq as i64],
                )?;
                tx.execute(
                    "UPDATE conversations SET unread = (SELECT count(*) FROM messages
                       WHERE conversation = ?1 AND direction = 'in'
                         AND seq > conversations.read_seq),
                       mentions = (SELECT count(*) FROM messages
                       WHERE conversation = ?1 AND mention = 1
                         AND seq > conversations.read_seq)
                     WHERE id = ?1",
                    params![conv],
                )?;
                conversation = Some(conversation_row(&tx, conv)?);
            }
            Event::ChatJoined {
                account,
                conversation: c,
            } => {
                let key = ConvKey::new(*account, c);
                let conv = upsert_conversation(&tx, &key)?;
                tx.execute(
                    "INSERT OR IGNORE INTO open_chats (account, name) VALUES (?1, ?2)",
                    params![key.account, key.name],
                )?;
                conversation = Some(conversation_row(&tx, conv)?);
            }
            Event::ChatLeft {
                account,
                conversation: c,
                ..
            } => {
                tx.execute(
                    "DELETE FROM open_chats WHERE account = ?1 AND name = ?2",
                    params![account, c.name],
                )?;
            }
            Event::RequestOpen(r) => {
                tx.execute(
                    "INSERT OR IGNORE INTO open_requests (id) VALUES (?1)",
                    [r.request as i64],
                )?;
            }
            Event::RequestClose { request, .. } => {
                tx.execute("DELETE FROM open_requests WHERE id = ?1", [request])?;
            }
            Event::AccountStatus {
                account, status, ..
            } => {
                tx.execute(
                    "INSERT INTO account_status (account, status) VALUES (?1, ?2)
                     ON CONFLICT (account) DO UPDATE SET status = excluded.status",
                    params![account, status],
                )?;
            }
            Event::AccountRemoved { account } => {
                tx.execute("DELETE FROM autojoin WHERE account = ?1", [account])?;
                tx.execute("DELETE FROM account_status WHERE account = ?1", [account])?;
                tx.execute("DELETE FROM open_chats WHERE account = ?1", [account])?;
            }
            _ => {}
        }
        tx.commit()?;
        Ok(Persisted {
            wire,
            body,
            conversation,
        })
    }

    /// Every conversation with its unread count and read marker (the
    /// snapshot's `conversations`), with its row id.
    pub(crate) fn conversations(&self) -> Result<Vec<ConversationRow>> {
        let mut stmt = self.conn.prepare("SELECT id FROM conversations")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(ids
            .into_iter()
            .map(|id| conversation_row(&self.conn, id))
            .collect::<rusqlite::Result<_>>()?)
    }

    /// History dedup: the stored message of conversation `key` from
    /// `sender` with exactly `text` whose original time
    /// (`coalesce(sent, time)`) is within `tolerance_ms` of `sent`, nearest
    /// first, skipping the seqs in `taken` (each stored line matches at most
    /// one line of a replay). `None` when the line is new.
    pub(crate) fn find_duplicate(
        &self,
        key: &ConvKey,
        sender: &str,
        text: &str,
        sent: i64,
        tolerance_ms: i64,
        taken: &std::collections::HashSet<i64>,
    ) -> Result<Option<i64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.seq FROM messages m JOIN conversations c ON c.id = m.conversation
             WHERE c.account = ?1 AND c.kind = ?2 AND c.name = ?3
               AND coalesce(m.sent, m.time) BETWEEN ?4 AND ?5
               AND m.sender = ?6 AND m.text = ?7 AND m.direction != 'system'
             ORDER BY abs(coalesce(m.sent, m.time) - ?8), m.seq",
        )?;
        let rows = stmt.query_map(
            params![
                key.account,
                key.kind,
                key.name,
                sent.saturating_sub(tolerance_ms),
                sent.saturating_add(tolerance_ms),
                sender,
                text,
                sent
            ],
            |r| r.get::<_, i64>(0),
        )?;
        for seq in rows {
            let seq = seq?;
            if !taken.contains(&seq) {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    /// The newest `limit` messages (not system lines) of conversation
    /// `key` as `(sender, text)`, oldest first: what a server's history on
    /// join may repeat (IRC dedup by content, `purple::history`).
    pub(crate) fn recent_lines(
        &self,
        key: &ConvKey,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.sender, m.text FROM messages m JOIN conversations c ON c.id = m.conversation
             WHERE c.account = ?1 AND c.kind = ?2 AND c.name = ?3 AND m.direction != 'system'
             ORDER BY m.seq DESC LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![key.account, key.kind, key.name, limit as i64],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )?;
        let mut out: Vec<(String, String)> = rows.collect::<rusqlite::Result<_>>()?;
        out.reverse();
        Ok(out)
    }

    /// Stores an account's configuration (protocol, username, password,
    /// alias, options, enabled): the durable copy of what libpurple saves
    /// with a delay, replayed into libpurple at start-up.
    pub(crate) fn account_save(&self, id: i64, config: &Value) -> Result<()> {
        self.conn.execute(
            "INSERT INTO accounts (id, config, removed) VALUES (?1, ?2, 0)
             ON CONFLICT (id) DO UPDATE SET config = excluded.config, removed = 0",
            params![id, serde_json::to_string(config)?],
        )?;
        Ok(())
    }

    /// Marks an account removed (kept as a tombstone so a start-up can
    /// remove it from libpurple if libpurple had not saved the removal).
    pub(crate) fn account_remove(&self, id: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO accounts (id, config, removed) VALUES (?1, '{}', 1)
             ON CONFLICT (id) DO UPDATE SET config = '{}', removed = 1",
            [id],
        )?;
        Ok(())
    }

    /// Every stored account: `(id, config, removed)`.
    pub(crate) fn account_configs(&self) -> Result<Vec<(i64, Value, bool)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, config, removed FROM accounts ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, config, removed) = row?;
            out.push((id, serde_json::from_str(&config)?, removed));
        }
        Ok(out)
    }

    /// Remembers a chat to join whenever `account` signs on.
    pub(crate) fn autojoin_add(
        &self,
        account: i64,
        name: &str,
        fields: &Map<String, Value>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO autojoin (account, name, fields) VALUES (?1, ?2, ?3)
             ON CONFLICT (account, name) DO UPDATE SET fields = excluded.fields",
            params![account, name, serde_json::to_string(fields)?],
        )?;
        Ok(())
    }

    /// Remembers a chat joined some other way (e.g. an accepted
    /// invitation), keeping the fields of a chat already remembered.
    pub(crate) fn autojoin_add_if_absent(&self, account: i64, name: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO autojoin (account, name, fields) VALUES (?1, ?2, '{}')",
            params![account, name],
        )?;
        Ok(())
    }

    /// Forgets a chat (the user left it). Names compare case-insensitively.
    pub(crate) fn autojoin_remove(&self, account: i64, name: &str) -> Result<bool> {
        let n = self.conn.execute(
            "DELETE FROM autojoin WHERE account = ?1 AND name = ?2",
            params![account, name],
        )?;
        Ok(n > 0)
    }

    /// Chats to join when `account` signs on, with their join fields.
    pub(crate) fn autojoin_list(&self, account: i64) -> Result<Vec<(String, Map<String, Value>)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, fields FROM autojoin WHERE account = ?1 ORDER BY name")?;
        let rows = stmt.query_map([account], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, fields) = row?;
            out.push((name, serde_json::from_str(&fields)?));
        }
        Ok(out)
    }

    /// Commits a small write (a `meta` row): fails as the next event's
    /// commit would if the database cannot be written at all.
    pub(crate) fn write_probe(&self, value: i64) -> Result<()> {
        self.meta_set("write_probe", value)
    }

    /// A sign-on of `account` starts: if the process dies before
    /// [`Store::signon_finished`], the next start counts a strike.
    pub(crate) fn signon_started(&self, account: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO signons (account, pending) VALUES (?1, 1)
             ON CONFLICT (account) DO UPDATE SET pending = 1",
            [account],
        )?;
        Ok(())
    }

    /// The sign-on of `account` ended (signed on, or an error the backend
    /// survived): no strike, and earlier strikes are forgiven.
    pub(crate) fn signon_finished(&self, account: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM signons WHERE account = ?1", [account])?;
        Ok(())
    }

    /// At a clean shutdown: sign-ons still under way were not the cause.
    pub(crate) fn signons_interrupted(&self) -> Result<()> {
        self.conn
            .execute("UPDATE signons SET pending = 0 WHERE pending = 1", [])?;
        Ok(())
    }

    /// At start-up: every sign-on a previous run left under way counts a
    /// strike for its account. Returns the accounts with at least
    /// `limit` strikes in a row, whose count starts again (the caller
    /// disables them: enabling one again gives it `limit` new tries).
    pub(crate) fn signon_strikes(&mut self, limit: i64) -> Result<Vec<i64>> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE signons SET strikes = strikes + 1, pending = 0 WHERE pending = 1",
            [],
        )?;
        let mut out = Vec::new();
        {
            let mut stmt = tx.prepare("SELECT account FROM signons WHERE strikes >= ?1")?;
            for row in stmt.query_map([limit], |r| r.get::<_, i64>(0))? {
                out.push(row?);
            }
        }
        tx.execute("DELETE FROM signons WHERE strikes >= ?1", [limit])?;
        tx.commit()?;
        Ok(out)
    }

    /// Chats, requests and account states a previous run left open.
    pub(crate) fn leftovers(&self) -> Result<Leftovers> {
        let mut chats = Vec::new();
        let mut stmt = self.conn.prepare("SELECT account, name FROM open_chats")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            chats.push(row?);
        }
        let mut requests = Vec::new();
        let mut stmt = self.conn.prepare("SELECT id FROM open_requests")?;
        for row in stmt.query_map([], |r| r.get::<_, i64>(0))? {
            requests.push(row?);
        }
        let mut accounts = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT account FROM account_status WHERE status != 'disconnected'")?;
        for row in stmt.query_map([], |r| r.get::<_, i64>(0))? {
            accounts.push(row?);
        }
        let mut queued = Vec::new();
        let mut stmt = self.conn.prepare(
            "SELECT m.seq, c.account, c.kind, c.name FROM messages m
             JOIN conversations c ON c.id = m.conversation WHERE m.queued != 0 ORDER BY m.seq",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })? {
            let (seq, account, kind, name) = row?;
            let conversation = match kind.as_str() {
                "chat" => ConvRef::chat(name),
                _ => ConvRef::im(name),
            };
            queued.push((seq as u64, account, conversation));
        }
        Ok(Leftovers {
            chats,
            requests,
            accounts,
            queued,
        })
    }
}

/// What a previous run left open (see [`Store::leftovers`]).
pub(crate) struct Leftovers {
    pub chats: Vec<(i64, String)>,
    pub requests: Vec<i64>,
    pub accounts: Vec<i64>,
    /// Outgoing lines that were still queued: `(seq, account, conversation)`.
    pub queued: Vec<(u64, i64, ConvRef)>,
}

/// What [`Store::persist`] wrote.
pub(crate) struct Persisted {
    /// The event as sent to clients (with `seq` and `time`).
    pub wire: Map<String, Value>,
    /// `wire` serialised.
    pub body: String,
    /// The summary of the conversation the event changed, if any.
    pub conversation: Option<ConversationRow>,
}

/// One conversation's summary: its row id, key and the JSON the snapshot
/// shows (`{account, conversation, last_seq, read_seq, unread,
/// mentions?}`; `mentions` only when some unread message is a mention).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConversationRow {
    pub id: i64,
    pub key: ConvKey,
    pub last_seq: i64,
    pub json: Value,
}

fn conversation_row(conn: &Connection, id: i64) -> rusqlite::Result<ConversationRow> {
    conn.query_row(
        "SELECT account, kind, name, last_seq, read_seq, unread, mentions FROM conversations WHERE id = ?1",
        [id],
        |r| {
            let key = ConvKey {
                account: r.get(0)?,
                kind: r.get(1)?,
                name: r.get(2)?,
            };
            let last_seq: i64 = r.get(3)?;
            let mut json = json!({
                "account": key.account,
                "conversation": key.to_json(),
                "last_seq": last_seq,
                "read_seq": r.get::<_, i64>(4)?,
                "unread": r.get::<_, i64>(5)?,
            });
            let mentions: i64 = r.get(6)?;
            if mentions > 0 {
                json["mentions"] = mentions.into();
            }
            Ok(ConversationRow {
                id,
                key,
                last_seq,
                json,
            })
        },
    )
}

fn upsert_conversation(conn: &Connection, key: &ConvKey) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT OR IGNORE INTO conversations (account, kind, name) VALUES (?1, ?2, ?3)",
        params![key.account, key.kind, key.name],
    )?;
    conn.query_row(
        "SELECT id FROM conversations WHERE account = ?1 AND kind = ?2 AND name = ?3",
        params![key.account, key.kind, key.name],
        |r| r.get(0),
    )
}

/// The columns of a stored message that `message_row` and `with_state`
/// read, in their order (`m` is `messages`, `c` its `conversations` row).
macro_rules! message_columns {
    () => {
        "m.seq, m.time, c.account, c.kind, c.name, m.sender, m.alias, m.text, m.direction,
         m.sent, m.mention, m.action, m.queued, m.error"
    };
}

/// Read-only queries, used from any thread with its own connection.
pub(crate) struct Reader {
    conn: Connection,
}

impl Reader {
    /// Opens a reader on a database the hub has already created.
    pub(crate) fn open(path: &Path) -> Result<Reader> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Reader { conn })
    }

    /// Events with `after < seq <= upto`, at most `limit`, in order.
    pub(crate) fn events(&self, after: u64, upto: u64, limit: usize) -> Result<Vec<(u64, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, body FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![after as i64, upto as i64, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(crate) fn conversation_exists(&self, key: &ConvKey) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM conversations WHERE account = ?1 AND kind = ?2 AND name = ?3",
                params![key.account, key.kind, key.name],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Messages of one conversation with `seq < before`, newest `limit` of
    /// them, returned oldest first.
    pub(crate) fn history(
        &self,
        key: &ConvKey,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Value>> {
        let before = before.map(|b| b as i64).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m JOIN conversations c ON c.id = m.conversation
             WHERE c.account = ?1 AND c.kind = ?2 AND c.name = ?3 AND m.seq < ?4
             ORDER BY m.seq DESC LIMIT ?5",
        ))?;
        let rows = stmt.query_map(
            params![key.account, key.kind, key.name, before, limit as i64],
            stored_message,
        )?;
        let mut out: Vec<Value> = rows.collect::<rusqlite::Result<_>>()?;
        out.reverse();
        Ok(out)
    }

    /// The newest `limit` incoming mentions across every conversation,
    /// newest first (the client's Mentions list).
    pub(crate) fn mentions(&self, limit: usize) -> Result<Vec<Value>> {
        let mut stmt = self.conn.prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m JOIN conversations c ON c.id = m.conversation
             WHERE m.mention = 1
             ORDER BY m.seq DESC LIMIT ?1",
        ))?;
        let rows = stmt.query_map(params![limit as i64], stored_message)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Full-text search over all messages, newest first. Every word of
    /// `query` must occur (each is matched as a quoted FTS5 string, so
    /// query syntax cannot be injected).
    pub(crate) fn search(&self, query: &str, limit: usize) -> Result<Vec<Value>> {
        let terms: Vec<String> = query
            .split_whitespace()
            .filter(|w| w.chars().any(char::is_alphanumeric))
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let fts = terms.join(" ");
        let mut stmt = self.conn.prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages_fts f
             JOIN messages m ON m.seq = f.rowid
             JOIN conversations c ON c.id = m.conversation
             WHERE messages_fts MATCH ?1
             ORDER BY m.seq DESC LIMIT ?2",
        ))?;
        let rows = stmt.query_map(params![fts, limit as i64], stored_message)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A stored message (a row of `message_columns!()`) as history, mentions
/// and search return it: the `message` event that brought it, with what a
/// later `message.sent` said.
fn stored_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    with_state(message_row(r)?, r)
}

/// A stored message (a row of `message_columns!()`) as the JSON of the
/// `message` event that brought it.
fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    let mut m = json!({
        "seq": r.get::<_, i64>(0)?,
        "time": r.get::<_, i64>(1)?,
        "account": r.get::<_, i64>(2)?,
        "conversation": {"kind": r.get::<_, String>(3)?, "name": r.get::<_, String>(4)?},
        "sender": r.get::<_, String>(5)?,
        "text": r.get::<_, String>(7)?,
        "direction": r.get::<_, String>(8)?,
    });
    if let Some(alias) = r.get::<_, Option<String>>(6)? {
        m["alias"] = Value::String(alias);
    }
    if let Some(sent) = r.get::<_, Option<i64>>(9)? {
        m["delayed"] = Value::Bool(true);
        m["sent"] = sent.into();
    }
    if r.get::<_, bool>(10)? {
        m["mention"] = Value::Bool(true);
    }
    Ok(m)
}

/// Adds a stored message's `action`, `queued` and `error` (the last
/// columns of `message_columns!()`) to its JSON, as the `message` event and
/// a later `message.sent` said.
fn with_state(mut m: Value, r: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    if r.get::<_, bool>(11)? {
        m["action"] = Value::Bool(true);
    }
    if r.get::<_, bool>(12)? {
        m["queued"] = Value::Bool(true);
    }
    if let Some(error) = r.get::<_, Option<String>>(13)? {
        m["error"] = Value::String(error);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::event::{Direction, Message};

    fn msg(account: i64, name: &str, text: &str, direction: Direction) -> Event {
        Event::Message(Message::plain(
            account,
            ConvRef::chat(name),
            "bob",
            text,
            direction,
        ))
    }

    /// History dedup's lookup: same conversation, sender and text, an
    /// original time within the tolerance, nearest first, each stored line
    /// taken at most once; `recent_lines` is the stored tail, oldest first.
    #[test]
    fn duplicates_are_found_by_content_and_original_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        // Live at 10 000 ms, then a replay of it stamped 9 000 ms.
        store
            .persist(1, 10_000, &msg(1, "#a", "hi", Direction::In))
            .unwrap();
        let mut replayed = msg(1, "#a", "hi", Direction::In);
        if let Event::Message(m) = &mut replayed {
            m.delayed = true;
            m.sent = Some(500_000);
        }
        store.persist(2, 600_000, &replayed).unwrap();
        store
            .persist(3, 700_000, &msg(1, "#a", "system", Direction::System))
            .unwrap();
        let key = ConvKey::new(1, &ConvRef::chat("#a"));
        let none = std::collections::HashSet::new();
        let find = |sent, taken: &std::collections::HashSet<i64>| {
            store
                .find_duplicate(&key, "bob", "hi", sent, 120_000, taken)
                .unwrap()
        };
        assert_eq!(find(9_000, &none), Some(1));
        assert_eq!(find(500_000, &none), Some(2), "the stored sent time counts");
        assert_eq!(find(490_000, &none), Some(2));
        assert_eq!(find(300_000, &none), None, "too far from both");
        assert_eq!(find(9_000, &[1].into()), None, "each line matches once");
        let other = ConvKey::new(1, &ConvRef::chat("#b"));
        assert_eq!(
            store
                .find_duplicate(&other, "bob", "hi", 9_000, 120_000, &none)
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .find_duplicate(&key, "bob", "system", 700_000, 120_000, &none)
                .unwrap(),
            None,
            "system lines are not history"
        );
        assert_eq!(
            store.recent_lines(&key, 10).unwrap(),
            [
                ("bob".to_owned(), "hi".to_owned()),
                ("bob".into(), "hi".into())
            ]
        );
        assert_eq!(store.recent_lines(&key, 1).unwrap().len(), 1);
    }

    fn conv(store: &Store, name: &str) -> Value {
        store
            .conversations()
            .unwrap()
            .into_iter()
            .find(|c| c.key.name == name)
            .unwrap()
            .json
    }

    #[test]
    fn stored_account_secrets_are_scrubbed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = Store::open(&path).unwrap();
        let info = json!({"id": 1, "protocol": "prpl-x",
            "options": {"token": "hunter2", "opaque": "swordfish", "server": "s"}});
        store
            .persist(
                1,
                10,
                &Event::AccountAdded {
                    account: 1,
                    info: info.clone(),
                },
            )
            .unwrap();
        store
            .persist(2, 11, &Event::AccountUpdated { account: 1, info })
            .unwrap();
        store
            .persist(3, 12, &msg(1, "#a", "my token is hunter2", Direction::In))
            .unwrap();
        let masked = |p: &str, s: &str| p == "prpl-x" && s == "opaque";
        assert_eq!(store.scrub_account_secrets(masked).unwrap(), 2);
        assert_eq!(store.scrub_account_secrets(masked).unwrap(), 0);
        let events = Reader::open(&path).unwrap().events(0, 10, 10).unwrap();
        assert_eq!(events.len(), 3);
        for (_, body) in &events[..2] {
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                v["info"]["options"],
                json!({"token": {"set": true}, "opaque": {"set": true}, "server": "s"})
            );
        }
        // Messages are the user's words, not account settings: untouched.
        assert!(events[2].1.contains("hunter2"));
    }

    /// A mention in a /me line is an action in the Mentions list too, as
    /// in history and search.
    #[test]
    fn mentions_keep_their_action_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = Store::open(&path).unwrap();
        let Event::Message(mut m) = msg(1, "#a", "waves at alice", Direction::In) else {
            unreachable!()
        };
        m.mention = true;
        m.action = true;
        store.persist(1, 10, &Event::Message(m)).unwrap();
        let reader = Reader::open(&path).unwrap();
        let listed = reader.mentions(10).unwrap();
        assert_eq!(listed[0]["action"], true, "{listed:?}");
        assert_eq!(reader.search("waves", 10).unwrap()[0]["action"], true);
    }

    /// Mentions are kept: the conversation counts its unread ones (the
    /// snapshot's badge), history and search flag them, a read resets.
    #[test]
    fn mentions_are_counted_and_kept_in_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = Store::open(&path).unwrap();
        let mention = |text: &str| {
            let Event::Message(mut m) = msg(1, "#a", text, Direction::In) else {
                unreachable!()
            };
            m.mention = true;
            Event::Message(m)
        };
        store.persist(1, 10, &mention("alice: one")).unwrap();
        store
            .persist(2, 11, &msg(1, "#a", "chatter", Direction::In))
            .unwrap();
        let p = store.persist(3, 12, &mention("alice: two")).unwrap();
        assert_eq!(p.conversation.unwrap().json["mentions"], 2);
        let reader = Reader::open(&path).unwrap();
        let key = ConvKey {
            account: 1,
            kind: "chat".into(),
            name: "#a".into(),
        };
        let flags: Vec<Value> = reader
            .history(&key, None, 10)
            .unwrap()
            .iter()
            .map(|m| m["mention"].clone())
            .collect();
        assert_eq!(flags, [json!(true), Value::Null, json!(true)]);
        assert_eq!(reader.search("two", 10).unwrap()[0]["mention"], true);
        let m = reader.mentions(10).unwrap();
        let texts: Vec<&str> = m.iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["alice: two", "alice: one"]);
        assert_eq!(m[0]["conversation"], json!({"kind": "chat", "name": "#a"}));
        assert_eq!(reader.mentions(1).unwrap().len(), 1);
        let read = |seq| Event::Read {
            account: 1,
            conversation: ConvRef::chat("#a"),
            read_seq: seq,
        };
        let p = store.persist(4, 13, &read(1)).unwrap();
        assert_eq!(p.conversation.unwrap().json["mentions"], 1);
        let p = store.persist(5, 14, &read(3)).unwrap();
        assert!(p.conversation.unwrap().json.get("mentions").is_none());
        drop(store);
        // The counts survive a reopen (and the columns a second migration).
        let store = Store::open(&path).unwrap();
        assert_eq!(store.conversations().unwrap()[0].json["unread"], 0);
    }

    #[test]
    fn an_old_database_gets_the_sending_state_and_queued_lines_are_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE messages (seq INTEGER PRIMARY KEY, conversation INTEGER NOT NULL,
               time INTEGER NOT NULL, sender TEXT NOT NULL, alias TEXT, text TEXT NOT NULL,
               direction TEXT NOT NULL)",
        )
        .unwrap();
        drop(old);
        let mut store = Store::open(&path).unwrap();
        let Event::Message(mut m) = msg(1, "#a", "waiting", Direction::Out) else {
            unreachable!()
        };
        m.queued = true;
        store.persist(1, 10, &Event::Message(m.clone())).unwrap();
        m.queued = false;
        m.text = "gone".into();
        store.persist(2, 11, &Event::Message(m)).unwrap();
        let key = ConvKey::new(1, &ConvRef::chat("#a"));
        let reader = Reader::open(&path).unwrap();
        let h = reader.history(&key, None, 10).unwrap();
        assert_eq!(h[0]["queued"], true, "{h:?}");
        assert!(h[1].get("queued").is_none(), "{h:?}");
        let left = store.leftovers().unwrap().queued;
        assert_eq!(left, [(1, 1, ConvRef::chat("#a"))]);
        let sent = Event::MessageSent {
            account: 1,
            conversation: ConvRef::chat("#a"),
            message: 1,
            error: Some("not sent".into()),
        };
        store.persist(3, 12, &sent).unwrap();
        let h = reader.history(&key, None, 10).unwrap();
        assert!(h[0].get("queued").is_none(), "{h:?}");
        assert_eq!(h[0]["error"], "not sent");
        assert!(store.leftovers().unwrap().queued.is_empty());
    }

    #[test]
    fn messages_history_search_and_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = Store::open(&path).unwrap();
        let p = store
            .persist(1, 10, &msg(1, "#a", "hello world", Direction::In))
            .unwrap();
        assert_eq!(p.conversation.unwrap().json["unread"], 1);
        store
            .persist(2, 11, &msg(1, "#a", "my reply", Direction::Out))
            .unwrap();
        store
            .persist(3, 12, &msg(1, "#b", "another world", Direction::In))
            .unwrap();
        store
            .persist(4, 13, &msg(1, "#a", "quote \" and * (", Direction::In))
            .unwrap();
        store
            .persist(
                5,
                13,
                &msg(1, "#b", "this or that and so on", Direction::In),
            )
            .unwrap();
        assert_eq!(store.last_seq().unwrap(), 5);

        let reader = Reader::open(&path).unwrap();
        let key = ConvKey {
            account: 1,
            kind: "chat".into(),
            name: "#a".into(),
        };
        let h = reader.history(&key, None, 10).unwrap();
        let seqs: Vec<i64> = h.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 4]);
        let h = reader.history(&key, Some(4), 1).unwrap();
        assert_eq!(h[0]["text"], "my reply");

        let s = reader.search("world", 10).unwrap();
        let seqs: Vec<i64> = s.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, [3, 1]);
        assert_eq!(reader.search("quote\" * (", 10).unwrap().len(), 1);
        // FTS5 operators are words like any other: only the message that
        // holds both "and" and "or" matches.
        let s = reader.search("\" * ( AND OR", 10).unwrap();
        let seqs: Vec<i64> = s.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, [5]);
        assert!(reader.search("   ", 10).unwrap().is_empty());

        assert_eq!(conv(&store, "#a")["unread"], 2);
        let read = Event::Read {
            account: 1,
            conversation: ConvRef::chat("#a"),
            read_seq: 2,
        };
        let p = store.persist(6, 14, &read).unwrap();
        let a = conv(&store, "#a");
        assert_eq!(p.conversation.unwrap().json, a);
        assert_eq!(a["unread"], 1);
        assert_eq!(a["read_seq"], 2);

        let ev = reader.events(1, 4, 100).unwrap();
        assert_eq!(ev.iter().map(|e| e.0).collect::<Vec<_>>(), [2, 3, 4]);
    }
}
