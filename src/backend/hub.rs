//! The hub: the one place every event goes through.
//!
//! [`Hub::emit`] gives an event the next `seq`, commits it to the store and
//! only then hands it to every subscribed client's bounded queue. The hub also
//! folds events into the live state a `hello` snapshot shows (accounts,
//! pending requests, joined chats with topic and members), so a snapshot and
//! its `last_seq` always agree.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch, Notify};

use super::event::{ConvRef, Direction, Event, Message};
use super::protocol::ConvKind;
use super::store::{ConvKey, ConversationRow, Store, StoreError};

/// Chats to join with their join fields.
pub(crate) type AutojoinList = Vec<(String, Map<String, Value>)>;

/// Queue of serialized events for one client.
pub(crate) type EventTx = mpsc::Sender<Arc<str>>;

/// How a client is told it fell behind (its queue overflowed).
#[derive(Clone, Default)]
pub(crate) struct Kick(Arc<Notify>);

impl Kick {
    pub(crate) fn kick(&self) {
        self.0.notify_one();
    }
    pub(crate) async fn kicked(&self) {
        self.0.notified().await
    }
}

struct Client {
    tx: EventTx,
    kick: Kick,
}

#[derive(Default)]
struct ChatState {
    topic: Option<Value>,
    members: BTreeMap<String, Value>,
}

#[derive(Default)]
struct LiveState {
    accounts: BTreeMap<i64, Value>,
    requests: BTreeMap<i64, Value>,
    chats: BTreeMap<(i64, String), ChatState>,
    buddies: BTreeMap<(i64, String), Value>,
    /// Summaries of every conversation in the store, kept up to date from
    /// what each event's transaction wrote (a `hello` reads no SQL).
    conversations: HashMap<ConvKey, ConversationRow>,
    /// The last `status.set` (null until one happened this run).
    status: Option<Value>,
    /// How many conversations a snapshot carries.
    hello_conversations: usize,
}

struct Inner {
    store: Store,
    last_seq: u64,
    clients: HashMap<u64, Client>,
    state: LiveState,
    status: String,
}

pub(crate) struct Hub {
    db_path: PathBuf,
    /// The space reserve (see [`Hub::writable`]).
    reserve: PathBuf,
    inner: Mutex<Inner>,
    /// Signalled when the status line may have changed.
    status_notify: Notify,
    /// Where Web Push delivery learns of messages and read markers.
    tap: OnceLock<mpsc::Sender<Tap>>,
    /// How many clients are subscribed (for Web Push delivery).
    clients: watch::Sender<usize>,
}

/// What the hub tells Web Push delivery (`push_delivery`), in the order
/// the events were emitted.
#[derive(Debug)]
pub(crate) enum Tap {
    /// An incoming message (not a chat's history the network replayed;
    /// private messages that waited while we were offline count), and how
    /// many clients were subscribed when it was emitted.
    Incoming {
        seq: u64,
        message: Message,
        clients: usize,
    },
    /// A conversation was read up to `upto` (a `read` marker, or the
    /// user's own message there).
    Read {
        account: i64,
        conversation: ConvRef,
        upto: u64,
    },
}

/// How many taps may wait for delivery before new ones are dropped.
const TAP_QUEUE: usize = 1024;

/// What `hello` gets back from [`Hub::subscribe`].
pub(crate) struct Subscription {
    pub(crate) last_seq: u64,
    pub(crate) snapshot: Value,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Hub {
    /// Opens the store at `db_path` and closes what a previous run left
    /// open (chats, requests, connected accounts) with events.
    pub(crate) fn open(db_path: &Path) -> Result<Arc<Hub>, StoreError> {
        let store = Store::open(db_path)?;
        let last_seq = store.last_seq()?;
        let leftovers = store.leftovers()?;
        let conversations = store
            .conversations()?
            .into_iter()
            .map(|c| (c.key.clone(), c))
            .collect();
        let reserve = db_path.with_file_name(RESERVE_FILE);
        if let Err(e) = make_reserve(&reserve) {
            tracing::warn!("cannot keep a space reserve in the state directory: {e}");
        }
        let hub = Arc::new(Hub {
            db_path: db_path.to_owned(),
            reserve,
            inner: Mutex::new(Inner {
                store,
                last_seq,
                clients: HashMap::new(),
                state: LiveState {
                    conversations,
                    hello_conversations: crate::backend::config::HELLO_CONVERSATIONS,
                    ..LiveState::default()
                },
                status: String::new(),
            }),
            status_notify: Notify::new(),
            tap: OnceLock::new(),
            clients: watch::channel(0).0,
        });
        for (account, name) in leftovers.chats {
            hub.emit(Event::ChatLeft {
                account,
                conversation: ConvRef::chat(name),
                reason: Some("restart"),
            })?;
        }
        for id in leftovers.requests {
            hub.emit(Event::RequestClose {
                request: id,
                answered: None,
                reason: Some("restart"),
            })?;
        }
        for (message, account, conversation) in leftovers.queued {
            hub.emit(Event::MessageSent {
                account,
                conversation,
                message,
                error: Some("not sent: the backend restarted".into()),
            })?;
        }
        for account in leftovers.accounts {
            hub.emit(Event::AccountStatus {
                account,
                status: "disconnected".into(),
                message: Some("backend restarted".into()),
            })?;
        }
        Ok(hub)
    }

    /// Whether a request may hand `need` bytes of the user's text to the
    /// network: everything it causes must be storable first ("durable or
    /// refused", issue #10). Checks that the state directory has room
    /// (free space beyond [`MIN_FREE`] plus `need` several times over,
    /// and the space reserve in place, made again once space is back) and
    /// that the database takes a write. An error [`StoreError::is_full`]
    /// when space is short.
    ///
    /// The reserve, a file of [`RESERVE_BYTES`] kept in the state
    /// directory, covers the rest: if the disk fills between this check
    /// and the event's commit, [`Hub::emit`] deletes the reserve and
    /// commits into the room it leaves.
    pub(crate) fn writable(&self, need: usize) -> Result<(), StoreError> {
        let dir = self.reserve.parent().unwrap_or(Path::new("."));
        let want = MIN_FREE + 4 * need as u64;
        let free = free_bytes(dir)?;
        if !self.reserve.exists() {
            if free < want + RESERVE_BYTES {
                return Err(StoreError::Full(format!(
                    "{free} bytes free, the reserve is used up"
                )));
            }
            make_reserve(&self.reserve)?;
            tracing::info!("the state directory has room again: space reserve restored");
        } else if free < want {
            return Err(StoreError::Full(format!("{free} bytes free")));
        }
        self.lock().store.write_probe(now_ms())
    }

    /// Deletes the space reserve; whether there was one.
    fn release_reserve(&self) -> bool {
        match std::fs::remove_file(&self.reserve) {
            Ok(()) => {
                tracing::error!(
                    "the state directory is full: released the space reserve; \
                     sends are refused until there is room"
                );
                true
            }
            Err(_) => false,
        }
    }

    pub(crate) fn db_path(&self) -> &Path {
        &self.db_path
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half
        // written in a way that matters more than stopping would.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Emits `event`; returns its `seq`.
    pub(crate) fn emit(&self, event: Event) -> Result<u64, StoreError> {
        self.emit_with(|_| event)
    }

    /// Emits the event built by `make`, which is given the event's `seq`
    /// (used as the id of requests).
    pub(crate) fn emit_with(&self, make: impl FnOnce(u64) -> Event) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let seq = inner.last_seq + 1;
        let time = now_ms();
        let event = make(seq);
        let persisted = match inner.store.persist(seq, time, &event) {
            Err(e) if e.is_full() && self.release_reserve() => {
                // What a request let through must be kept: the reserve
                // was for this (sends are refused until it is back).
                inner.store.persist(seq, time, &event)?
            }
            r => r?,
        };
        let body: Arc<str> = persisted.body.into();
        inner.last_seq = seq;
        inner
            .state
            .apply(&event, &persisted.wire, persisted.conversation);
        if event.is_account_event() {
            self.status_notify.notify_one();
        }
        let before = inner.clients.len();
        inner
            .clients
            .retain(|_, c| match c.tx.try_send(body.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    c.kick.kick();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        if inner.clients.len() != before {
            self.status_notify.notify_one();
            self.clients.send_replace(inner.clients.len());
        }
        if let Some(tap) = self.tap.get() {
            let t = match &event {
                // Delayed chat messages are a room's history replayed;
                // delayed private ones were sent while we were offline.
                Event::Message(m)
                    if m.direction == Direction::In
                        && (!m.delayed || m.conversation.kind == ConvKind::Im) =>
                {
                    Some(Tap::Incoming {
                        seq,
                        message: m.clone(),
                        clients: inner.clients.len(),
                    })
                }
                Event::Message(m) if m.direction == Direction::Out => Some(Tap::Read {
                    account: m.account,
                    conversation: m.conversation.clone(),
                    upto: seq,
                }),
                Event::Read {
                    account,
                    conversation,
                    read_seq,
                } => Some(Tap::Read {
                    account: *account,
                    conversation: conversation.clone(),
                    upto: *read_seq,
                }),
                _ => None,
            };
            if let Some(t) = t {
                if tap.try_send(t).is_err() {
                    tracing::warn!("web push: delivery is behind; a message was not considered");
                }
            }
        }
        Ok(seq)
    }

    /// Starts telling Web Push delivery about messages (once).
    pub(crate) fn tap(&self) -> mpsc::Receiver<Tap> {
        let (tx, rx) = mpsc::channel(TAP_QUEUE);
        let _ = self.tap.set(tx);
        rx
    }

    /// The number of subscribed clients, as it changes.
    pub(crate) fn clients_watch(&self) -> watch::Receiver<usize> {
        self.clients.subscribe()
    }

    /// Subscribes a client: events after the returned `last_seq` go to `tx`.
    /// Reads no SQL (the snapshot is in memory), so the lock is held only
    /// to copy it; still, it may wait for an emit's commit: call it off the
    /// async reactor.
    pub(crate) fn subscribe(&self, id: u64, tx: EventTx, kick: Kick) -> Subscription {
        let mut inner = self.lock();
        let snapshot = inner.state.snapshot();
        inner.clients.insert(id, Client { tx, kick });
        self.status_notify.notify_one();
        self.clients.send_replace(inner.clients.len());
        Subscription {
            last_seq: inner.last_seq,
            snapshot,
        }
    }

    pub(crate) fn unsubscribe(&self, id: u64) {
        let mut inner = self.lock();
        inner.clients.remove(&id);
        self.clients.send_replace(inner.clients.len());
        drop(inner);
        self.status_notify.notify_one();
    }

    /// Waits until the status line may have changed.
    pub(crate) async fn status_maybe_changed(&self) {
        self.status_notify.notified().await
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    /// How many conversations a `hello` snapshot carries (`backend.toml`).
    pub(crate) fn set_hello_conversations(&self, n: usize) {
        self.lock().state.hello_conversations = n.max(1);
    }

    /// `conversations.list`: up to `limit` conversation summaries, newest
    /// first, after `cursor` (from a snapshot or an earlier page), and the
    /// cursor of the next page if there is one. From memory, like the
    /// snapshot.
    pub(crate) fn conversations_page(
        &self,
        cursor: Option<ConvCursor>,
        limit: usize,
    ) -> (Vec<Value>, Option<ConvCursor>) {
        self.lock().state.conversations_page(cursor, limit)
    }

    #[cfg(test)]
    fn client_count(&self) -> usize {
        self.lock().clients.len()
    }

    /// Replaces the known accounts (at start-up, from libpurple).
    pub(crate) fn set_accounts(&self, accounts: Vec<Value>) {
        let mut inner = self.lock();
        inner.state.accounts = accounts
            .into_iter()
            .filter_map(|a| Some((a.get("id")?.as_i64()?, a)))
            .collect();
    }

    /// Replaces the known buddies (at start-up, from libpurple's list).
    pub(crate) fn set_buddies(&self, buddies: Vec<Value>) {
        let mut inner = self.lock();
        inner.state.buddies = buddies
            .into_iter()
            .filter_map(|b| {
                Some((
                    (
                        b.get("account")?.as_i64()?,
                        b.get("name")?.as_str()?.to_owned(),
                    ),
                    b,
                ))
            })
            .collect();
    }

    /// One line for sd_notify's STATUS=: connected accounts and clients.
    pub(crate) fn status_line(&self) -> String {
        let inner = self.lock();
        let connected = inner
            .state
            .accounts
            .values()
            .filter(|a| a.get("status").and_then(Value::as_str) == Some("connected"))
            .count();
        format!(
            "{connected}/{} accounts connected, {} clients",
            inner.state.accounts.len(),
            inner.clients.len()
        )
    }

    /// Returns the status line if it changed since the last call.
    pub(crate) fn status_changed(&self) -> Option<String> {
        let line = self.status_line();
        let mut inner = self.lock();
        if inner.status == line {
            None
        } else {
            inner.status = line.clone();
            Some(line)
        }
    }

    /// A fresh account id, above `used` and above every id handed out
    /// before (ids are never reused: history refers to them). A store
    /// error is an error: guessing could reuse an id.
    pub(crate) fn next_account_id(&self, used: i64) -> Result<i64, StoreError> {
        let inner = self.lock();
        let stored = inner.store.meta_get("next_account_id")?.unwrap_or(1);
        let id = stored.max(used + 1);
        inner.store.meta_set("next_account_id", id + 1)?;
        Ok(id)
    }

    /// See [`Store::account_save`].
    pub(crate) fn account_save(&self, id: i64, config: &Value) -> Result<(), StoreError> {
        self.lock().store.account_save(id, config)
    }

    /// See [`Store::scrub_account_secrets`].
    pub(crate) fn scrub_account_secrets(
        &self,
        masked: impl Fn(&str, &str) -> bool,
    ) -> Result<usize, StoreError> {
        self.lock().store.scrub_account_secrets(masked)
    }

    /// See [`Store::find_duplicate`].
    pub(crate) fn find_duplicate(
        &self,
        key: &ConvKey,
        line: (&str, &str),
        sent: i64,
        tolerance_ms: i64,
        taken: &std::collections::HashSet<i64>,
    ) -> Result<Option<i64>, StoreError> {
        self.lock()
            .store
            .find_duplicate(key, line.0, line.1, sent, tolerance_ms, taken)
    }

    /// See [`Store::recent_lines`].
    pub(crate) fn recent_lines(
        &self,
        key: &ConvKey,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.lock().store.recent_lines(key, limit)
    }

    /// See [`Store::account_remove`].
    pub(crate) fn account_remove(&self, id: i64) -> Result<(), StoreError> {
        self.lock().store.account_remove(id)
    }

    /// See [`Store::account_configs`].
    pub(crate) fn account_configs(&self) -> Result<Vec<(i64, Value, bool)>, StoreError> {
        self.lock().store.account_configs()
    }

    /// The stored configuration of account `id`, if any.
    pub(crate) fn account_config(&self, id: i64) -> Result<Option<Value>, StoreError> {
        Ok(self
            .account_configs()?
            .into_iter()
            .find(|(i, _, removed)| *i == id && !removed)
            .map(|(_, c, _)| c))
    }

    /// See [`Store::autojoin_add`].
    pub(crate) fn autojoin_add(
        &self,
        account: i64,
        name: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        self.lock().store.autojoin_add(account, name, fields)
    }

    /// See [`Store::autojoin_add_if_absent`].
    pub(crate) fn autojoin_add_if_absent(
        &self,
        account: i64,
        name: &str,
    ) -> Result<(), StoreError> {
        self.lock().store.autojoin_add_if_absent(account, name)
    }

    /// See [`Store::autojoin_remove`]; whether it was remembered.
    pub(crate) fn autojoin_remove(&self, account: i64, name: &str) -> Result<bool, StoreError> {
        self.lock().store.autojoin_remove(account, name)
    }

    /// See [`Store::signon_started`].
    pub(crate) fn signon_started(&self, account: i64) -> Result<(), StoreError> {
        self.lock().store.signon_started(account)
    }

    /// See [`Store::signon_finished`].
    pub(crate) fn signon_finished(&self, account: i64) -> Result<(), StoreError> {
        self.lock().store.signon_finished(account)
    }

    /// See [`Store::signons_interrupted`].
    pub(crate) fn signons_interrupted(&self) -> Result<(), StoreError> {
        self.lock().store.signons_interrupted()
    }

    /// See [`Store::signon_strikes`].
    pub(crate) fn signon_strikes(&self, limit: i64) -> Result<Vec<i64>, StoreError> {
        self.lock().store.signon_strikes(limit)
    }

    /// See [`Store::autojoin_list`].
    pub(crate) fn autojoin_list(&self, account: i64) -> Result<AutojoinList, StoreError> {
        self.lock().store.autojoin_list(account)
    }
}

/// The space reserve's file name, next to the database.
const RESERVE_FILE: &str = "space-reserve";
/// Its size: room for the events one request causes (a 64 KiB message,
/// its full-text index and WAL pages) many times over.
pub(crate) const RESERVE_BYTES: u64 = 4 << 20;
/// Free space below which sends are refused (besides the reserve).
pub(crate) const MIN_FREE: u64 = 1 << 20;

/// Free bytes for an unprivileged writer in `dir`'s file system.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Writes the reserve file (real blocks: zeros written, then synced) if it
/// is missing or short. A partial one is removed.
fn make_reserve(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= RESERVE_BYTES) {
        return Ok(());
    }
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        let zeros = vec![0u8; 64 << 10];
        let mut left = RESERVE_BYTES;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(path);
    })
}

/// Where a page of conversations ends: conversations are ordered newest
/// first by `last_seq`, then by row id (a stable order; several can have
/// `last_seq` 0). On the wire `"<last_seq>.<id>"`, opaque to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvCursor {
    last_seq: i64,
    id: i64,
}

impl ConvCursor {
    fn of(c: &ConversationRow) -> ConvCursor {
        ConvCursor {
            last_seq: c.last_seq,
            id: c.id,
        }
    }

    /// The sort key: ascending means newest first.
    fn key(self) -> (std::cmp::Reverse<i64>, i64) {
        (std::cmp::Reverse(self.last_seq), self.id)
    }

    pub(crate) fn to_wire(self) -> String {
        format!("{}.{}", self.last_seq, self.id)
    }

    pub(crate) fn parse(s: &str) -> Option<ConvCursor> {
        let (a, b) = s.split_once('.')?;
        Some(ConvCursor {
            last_seq: a.parse().ok()?,
            id: b.parse().ok()?,
        })
    }
}

/// The wire object without the fields a snapshot does not repeat.
fn without(wire: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    let mut m = wire.clone();
    for k in keys {
        m.remove(*k);
    }
    m
}

fn member_json(m: &impl serde::Serialize) -> Value {
    serde_json::to_value(m).unwrap_or(Value::Null)
}

impl LiveState {
    fn apply(
        &mut self,
        event: &Event,
        wire: &Map<String, Value>,
        conversation: Option<ConversationRow>,
    ) {
        if let Some(c) = conversation {
            self.conversations.insert(c.key.clone(), c);
        }
        match event {
            Event::AccountAdded { info, .. } | Event::AccountUpdated { info, .. } => {
                if let Some(id) = info.get("id").and_then(Value::as_i64) {
                    let mut a = info.clone();
                    if let Some(old) = self.accounts.get(&id) {
                        for k in ["status", "message"] {
                            if let Some(v) = old.get(k) {
                                a[k] = v.clone();
                            }
                        }
                    }
                    self.accounts.insert(id, a);
                }
            }
            Event::AccountRemoved { account } => {
                let id = *account;
                self.accounts.remove(&id);
                self.chats.retain(|k, _| k.0 != id);
                self.buddies.retain(|k, _| k.0 != id);
            }
            Event::AccountStatus {
                account,
                status,
                message,
            } => {
                if let Some(a) = self.accounts.get_mut(account) {
                    a["status"] = json!(status);
                    match message {
                        Some(m) => a["message"] = json!(m),
                        None => {
                            if let Some(o) = a.as_object_mut() {
                                o.remove("message");
                            }
                        }
                    }
                }
            }
            Event::RequestOpen(r) => {
                self.requests.insert(
                    r.request as i64,
                    Value::Object(without(wire, &["seq", "op"])),
                );
            }
            Event::RequestClose { request, .. } => {
                self.requests.remove(request);
            }
            Event::ChatJoined {
                account,
                conversation,
            } => {
                self.chats
                    .insert((*account, conversation.name.clone()), ChatState::default());
            }
            Event::ChatLeft {
                account,
                conversation,
                ..
            } => {
                self.chats.remove(&(*account, conversation.name.clone()));
            }
            Event::ChatTopic {
                account,
                conversation,
                topic,
                ..
            } => {
                if let Some(c) = self.chats.get_mut(&(*account, conversation.name.clone())) {
                    c.topic = Some(json!(topic));
                }
            }
            Event::ChatMembers {
                account,
                conversation,
                added,
                removed,
                renamed,
                updated,
            } => {
                if let Some(c) = self.chats.get_mut(&(*account, conversation.name.clone())) {
                    for n in removed {
                        c.members.remove(n);
                    }
                    for r in renamed {
                        let mut m = c.members.remove(&r.from).unwrap_or_else(|| json!({}));
                        m["name"] = json!(r.to);
                        c.members.insert(r.to.clone(), m);
                    }
                    for m in added.iter().chain(updated) {
                        c.members.insert(m.name.clone(), member_json(m));
                    }
                }
            }
            Event::BuddyAdded(b) | Event::BuddyPresence(b) => {
                let entry = self
                    .buddies
                    .entry((b.account, b.name.clone()))
                    .or_insert_with(|| json!({}));
                for (k, v) in without(wire, &["seq", "op", "time"]) {
                    entry[k.as_str()] = v;
                }
            }
            Event::BuddyRemoved { account, name } => {
                self.buddies.remove(&(*account, name.clone()));
            }
            Event::Status { status, message } => {
                self.status = Some(json!({"status": status, "message": message}));
            }
            Event::Message(_)
            | Event::MessageSent { .. }
            | Event::ChatJoinFailed { .. }
            | Event::Read { .. }
            | Event::Typing { .. }
            | Event::Notice(_)
            | Event::NotifyChanged { .. } => {}
        }
    }

    /// See [`Hub::conversations_page`]: a selection (linear), then a sort
    /// of the page only.
    fn conversations_page(
        &self,
        cursor: Option<ConvCursor>,
        limit: usize,
    ) -> (Vec<Value>, Option<ConvCursor>) {
        let after = |c: &&ConversationRow| cursor.is_none_or(|k| ConvCursor::of(c).key() > k.key());
        let mut rows: Vec<&ConversationRow> = self.conversations.values().filter(after).collect();
        let more = rows.len() > limit;
        if more {
            rows.select_nth_unstable_by_key(limit, |c| ConvCursor::of(c).key());
            rows.truncate(limit);
        }
        rows.sort_unstable_by_key(|c| ConvCursor::of(c).key());
        let next = more
            .then(|| rows.last().map(|c| ConvCursor::of(c)))
            .flatten();
        (rows.iter().map(|c| c.json.clone()).collect(), next)
    }

    fn snapshot(&self) -> Value {
        let chats: Vec<Value> = self
            .chats
            .iter()
            .map(|((account, name), c)| {
                json!({
                    "account": account,
                    "conversation": {"kind": "chat", "name": name},
                    "topic": c.topic.clone().unwrap_or(Value::Null),
                    "members": c.members.values().cloned().collect::<Vec<_>>(),
                })
            })
            .collect();
        let (conversations, next) = self.conversations_page(None, self.hello_conversations);
        json!({
            "accounts": self.accounts.values().cloned().collect::<Vec<_>>(),
            "conversations": conversations,
            "conversations_next": next.map(ConvCursor::to_wire),
            "chats": chats,
            "buddies": self.buddies.values().cloned().collect::<Vec<_>>(),
            "requests": self.requests.values().cloned().collect::<Vec<_>>(),
            "status": self.status.clone().unwrap_or(Value::Null),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::event::{Action, Direction, Message, Notice, RequestDetails, RequestOpen};
    use crate::backend::store;

    fn notice(text: String) -> Event {
        Event::Notice(Notice {
            level: "info",
            text: Some(text),
            ..Notice::default()
        })
    }

    /// While other threads emit, a subscriber that replays `(since,
    /// last_seq]` from the store and then reads its queue sees every event
    /// after `since` exactly once, in order.
    #[test]
    fn subscribe_during_emits_is_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::open(&dir.path().join("db")).unwrap();
        for i in 0..50 {
            hub.emit(notice(format!("before {i}"))).unwrap();
        }
        // The writers are half-way through when the client subscribes.
        let halfway = Arc::new(std::sync::Barrier::new(3));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let hub = hub.clone();
                let halfway = halfway.clone();
                std::thread::spawn(move || {
                    for i in 0..300 {
                        if i == 150 {
                            halfway.wait();
                        }
                        hub.emit(notice(format!("{w}/{i}"))).unwrap();
                    }
                })
            })
            .collect();
        halfway.wait();
        let (tx, mut rx) = mpsc::channel(10_000);
        let since = 20;
        let sub = hub.subscribe(1, tx, Kick::default());
        assert!(
            sub.last_seq >= 350,
            "subscribed before the writers were half-way"
        );
        for w in writers {
            w.join().unwrap();
        }
        let reader = store::Reader::open(hub.db_path()).unwrap();
        let mut seqs: Vec<u64> = reader
            .events(since, sub.last_seq, 100_000)
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect();
        while let Ok(body) = rx.try_recv() {
            let v: Value = serde_json::from_str(&body).unwrap();
            seqs.push(v["seq"].as_u64().unwrap());
        }
        let expected: Vec<u64> = (since + 1..=650).collect();
        assert_eq!(seqs, expected);
        assert_eq!(hub.last_seq(), 650);
    }

    #[test]
    fn a_full_queue_kicks_the_client_and_spares_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::open(&dir.path().join("db")).unwrap();
        let (slow_tx, _slow_rx) = mpsc::channel(2);
        let (ok_tx, mut ok_rx) = mpsc::channel(100);
        let kick = Kick::default();
        hub.subscribe(1, slow_tx, kick.clone());
        hub.subscribe(2, ok_tx, Kick::default());
        for i in 0..5 {
            hub.emit(notice(i.to_string())).unwrap();
        }
        assert_eq!(hub.client_count(), 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), kick.kicked())
                .await
                .expect("slow client kicked");
        });
        let mut n = 0;
        while ok_rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 5);
    }

    #[test]
    fn a_restart_closes_what_was_left_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let hub = Hub::open(&path).unwrap();
            hub.emit(Event::ChatJoined {
                account: 1,
                conversation: ConvRef::chat("#a"),
            })
            .unwrap();
            hub.emit_with(|seq| {
                Event::RequestOpen(RequestOpen {
                    request: seq,
                    title: None,
                    primary: None,
                    secondary: None,
                    account: None,
                    who: None,
                    actions: vec![Action {
                        id: 0,
                        label: "OK".into(),
                    }],
                    details: RequestDetails::Action { default_action: 0 },
                })
            })
            .unwrap();
            hub.emit(Event::AccountStatus {
                account: 1,
                status: "connected".into(),
                message: None,
            })
            .unwrap();
            // An IRC line still waiting for the pace.
            hub.emit(Event::Message(Message {
                queued: true,
                ..Message::plain(1, ConvRef::chat("#a"), "alice", "later", Direction::Out)
            }))
            .unwrap();
        }
        let hub = Hub::open(&path).unwrap();
        let reader = store::Reader::open(&path).unwrap();
        let ops: Vec<Value> = reader
            .events(4, 100, 100)
            .unwrap()
            .into_iter()
            .map(|(_, b)| serde_json::from_str(&b).unwrap())
            .collect();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0]["op"], "chat.left");
        assert_eq!(ops[1]["op"], "request.close");
        assert_eq!(ops[1]["request"], 2);
        assert_eq!(ops[2]["op"], "message.sent");
        assert_eq!(ops[2]["message"], 4);
        assert!(ops[2]["error"].as_str().unwrap().contains("restarted"));
        assert_eq!(ops[3]["status"], "disconnected");
        drop(hub);
        // Nothing left open the second time.
        let hub = Hub::open(&path).unwrap();
        assert_eq!(hub.last_seq(), 8);
    }

    /// `hello` must not open the database or run a query while holding
    /// the lock every emit needs: the snapshot is served from memory (here
    /// the file is gone, and the snapshot is still right).
    #[test]
    fn subscribe_reads_no_sql() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let hub = Hub::open(&path).unwrap();
        let m = |text: &str, direction| {
            Event::Message(Message::plain(
                1,
                ConvRef::im("bob"),
                "bob",
                text,
                direction,
            ))
        };
        hub.emit(m("one", Direction::In)).unwrap();
        hub.emit(m("two", Direction::In)).unwrap();
        hub.emit(m("three", Direction::Out)).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (tx, _rx) = mpsc::channel(10);
        let sub = hub.subscribe(1, tx, Kick::default());
        assert_eq!(
            sub.snapshot["conversations"],
            json!([{"account": 1, "conversation": {"kind": "im", "name": "bob"},
                "last_seq": 3, "read_seq": 0, "unread": 2}])
        );
    }

    /// Web Push delivery hears of incoming messages (not a chat's replayed
    /// history; offline private messages count), of reads (markers and our
    /// own messages) and of the client count.
    #[test]
    fn the_tap_tells_delivery_what_may_notify() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::open(&dir.path().join("db")).unwrap();
        let mut rx = hub.tap();
        let clients = hub.clients_watch();
        let m = |conversation: ConvRef, text: &str, direction, delayed| {
            Event::Message(Message {
                delayed,
                ..Message::plain(1, conversation, "bob", text, direction)
            })
        };
        let (tx, _keep) = mpsc::channel(10);
        hub.subscribe(7, tx, Kick::default());
        assert_eq!(*clients.borrow(), 1);
        hub.emit(m(ConvRef::chat("#a"), "replayed", Direction::In, true))
            .unwrap();
        let live = hub
            .emit(m(ConvRef::chat("#a"), "live", Direction::In, false))
            .unwrap();
        let offline = hub
            .emit(m(ConvRef::im("bob"), "while away", Direction::In, true))
            .unwrap();
        let mine = hub
            .emit(m(ConvRef::im("bob"), "mine", Direction::Out, false))
            .unwrap();
        hub.unsubscribe(7);
        assert_eq!(*clients.borrow(), 0);
        let mut got = Vec::new();
        while let Ok(t) = rx.try_recv() {
            got.push(match t {
                Tap::Incoming {
                    seq,
                    message,
                    clients,
                } => format!("in {seq} {} {clients}", message.text),
                Tap::Read { upto, .. } => format!("read {upto}"),
            });
        }
        assert_eq!(
            got,
            [
                format!("in {live} live 1"),
                format!("in {offline} while away 1"),
                format!("read {mine}"),
            ]
        );
    }

    /// The snapshot's conversations match what the store computes, also
    /// after a restart.
    #[test]
    fn conversations_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let hub = Hub::open(&path).unwrap();
        hub.emit(Event::ChatJoined {
            account: 2,
            conversation: ConvRef::chat("#x"),
        })
        .unwrap();
        hub.emit(Event::Read {
            account: 2,
            conversation: ConvRef::chat("#x"),
            read_seq: 1,
        })
        .unwrap();
        let (tx, _rx) = mpsc::channel(10);
        let before = hub.subscribe(1, tx, Kick::default()).snapshot;
        drop(hub);
        let hub = Hub::open(&path).unwrap();
        let (tx, _rx) = mpsc::channel(10);
        let after = hub.subscribe(1, tx, Kick::default()).snapshot;
        assert_eq!(before["conversations"], after["conversations"]);
        assert_eq!(after["conversations"][0]["read_seq"], 1);
    }

    /// The snapshot carries the newest N conversations and a cursor; the
    /// pages after it hold every other one exactly once, newest first.
    #[test]
    fn conversations_come_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::open(&dir.path().join("db")).unwrap();
        hub.set_hello_conversations(500);
        for i in 0..1203 {
            hub.emit(Event::Message(Message::plain(
                1,
                ConvRef::chat(format!("#c{i}")),
                "bob",
                "hi",
                Direction::In,
            )))
            .unwrap();
        }
        let (tx, _rx) = mpsc::channel(10);
        let snap = hub.subscribe(1, tx, Kick::default()).snapshot;
        let first = snap["conversations"].as_array().unwrap();
        assert_eq!(first.len(), 500);
        assert_eq!(first[0]["conversation"]["name"], "#c1202");
        let mut names: Vec<String> = first
            .iter()
            .map(|c| c["conversation"]["name"].as_str().unwrap().to_owned())
            .collect();
        let mut cursor = ConvCursor::parse(snap["conversations_next"].as_str().unwrap());
        let mut pages = 0;
        while let Some(c) = cursor {
            let (page, next) = hub.conversations_page(Some(c), 300);
            assert!(!page.is_empty() && page.len() <= 300);
            names.extend(
                page.iter()
                    .map(|c| c["conversation"]["name"].as_str().unwrap().to_owned()),
            );
            cursor = next;
            pages += 1;
        }
        assert_eq!(pages, 3); // 300 + 300 + 103
        let expected: Vec<String> = (0..1203).rev().map(|i| format!("#c{i}")).collect();
        assert_eq!(names, expected);
        // Few enough: no cursor.
        let (all, next) = hub.conversations_page(None, 5000);
        assert_eq!((all.len(), next), (1203, None));
    }

    /// A counter that cannot be read is an error, not id 1 again.
    #[test]
    fn next_account_id_reports_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let hub = Hub::open(&path).unwrap();
        assert_eq!(hub.next_account_id(0).unwrap(), 1);
        assert_eq!(hub.next_account_id(0).unwrap(), 2);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE meta SET value = 'garbage' WHERE key = 'next_account_id'",
            [],
        )
        .unwrap();
        assert!(hub.next_account_id(0).is_err());
    }

    /// A tmpfs on `dir` (tests run as root), unmounted when dropped.
    struct Tmpfs(std::path::PathBuf);
    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }

    /// With the disk full, `writable` refuses (`is_full`), and an event
    /// that must be kept anyway (libpurple already did what it records) is
    /// committed into the room the reserve leaves; once there is room the
    /// reserve is made again.
    #[test]
    fn a_full_disk_refuses_sends_and_the_reserve_keeps_what_happened() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "cannot mount a tmpfs (this test needs root)");
        let _fs = Tmpfs(dir.path().to_owned());
        let hub = Hub::open(&dir.path().join("db")).unwrap();
        let reserve = dir.path().join(RESERVE_FILE);
        assert!(reserve.exists());
        hub.writable(100).unwrap();

        let filler = dir.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        while f
            .write_all(&[1u8; 65536])
            .and_then(|_| f.sync_all())
            .is_ok()
        {}
        let e = hub.writable(100).unwrap_err();
        assert!(e.is_full(), "{e}");
        let seq = hub.emit(notice("x".repeat(200_000))).unwrap();
        assert!(!reserve.exists(), "the reserve made the room");
        let reader = store::Reader::open(hub.db_path()).unwrap();
        assert_eq!(reader.events(seq - 1, seq, 10).unwrap().len(), 1);
        assert!(hub.writable(100).unwrap_err().is_full());

        drop(f);
        std::fs::remove_file(&filler).unwrap();
        hub.writable(100).unwrap();
        assert!(reserve.exists(), "made again");
    }

    /// A database that refuses a write for another reason is not "full".
    #[test]
    fn a_refused_write_is_not_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let hub = Hub::open(&path).unwrap();
        hub.writable(10).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE UPDATE ON meta
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
        let e = hub.writable(10).unwrap_err();
        assert!(!e.is_full(), "{e}");
    }

    /// A durable write that fails is reported to the caller.
    #[test]
    fn a_failed_account_write_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let hub = Hub::open(&path).unwrap();
        hub.account_save(1, &json!({"protocol": "prpl-irc"}))
            .unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON accounts
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
        assert!(hub
            .account_save(2, &json!({"protocol": "prpl-irc"}))
            .is_err());
        assert!(hub.account_remove(3).is_err());
        assert_eq!(hub.account_configs().unwrap().len(), 1);
    }
}
