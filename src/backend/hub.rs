//! The hub: the one place every event goes through.
//!
//! [`Hub::emit`] gives an event the next `seq`, commits it to the store and
//! only then hands it to every subscribed client's bounded queue. The hub also
//! folds events into the live state a `hello` snapshot shows (accounts,
//! pending requests, joined chats with topic and members), so a snapshot and
//! its `last_seq` always agree.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, Notify};

use super::store::{self, Store, StoreError};

/// Queue of serialized events for one client.
pub type EventTx = mpsc::Sender<Arc<str>>;

/// How a client is told it fell behind (its queue overflowed).
#[derive(Clone, Default)]
pub struct Kick(Arc<Notify>);

impl Kick {
    pub fn kick(&self) {
        self.0.notify_one();
    }
    pub async fn kicked(&self) {
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
    /// The last `status.set` (null until one happened this run).
    status: Option<Value>,
}

struct Inner {
    store: Store,
    last_seq: u64,
    clients: HashMap<u64, Client>,
    state: LiveState,
    status: String,
}

pub struct Hub {
    db_path: PathBuf,
    inner: Mutex<Inner>,
    /// Signalled when the status line may have changed.
    status_notify: Notify,
}

/// What `hello` gets back from [`Hub::subscribe`].
pub struct Subscription {
    pub last_seq: u64,
    pub snapshot: Value,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Hub {
    /// Opens the store at `db_path` and closes what a previous run left
    /// open (chats, requests, connected accounts) with events.
    pub fn open(db_path: &Path) -> Result<Arc<Hub>, StoreError> {
        let store = Store::open(db_path)?;
        let last_seq = store.last_seq()?;
        let leftovers = store.leftovers()?;
        let hub = Arc::new(Hub {
            db_path: db_path.to_owned(),
            inner: Mutex::new(Inner {
                store,
                last_seq,
                clients: HashMap::new(),
                state: LiveState::default(),
                status: String::new(),
            }),
            status_notify: Notify::new(),
        });
        for (account, name) in leftovers.chats {
            hub.emit(json!({"op": "chat.left", "account": account,
                "conversation": {"kind": "chat", "name": name}, "reason": "restart"}))?;
        }
        for id in leftovers.requests {
            hub.emit(json!({"op": "request.close", "request": id, "reason": "restart"}))?;
        }
        for account in leftovers.accounts {
            hub.emit(json!({"op": "account.status", "account": account,
                "status": "disconnected", "message": "backend restarted"}))?;
        }
        Ok(hub)
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half
        // written in a way that matters more than stopping would.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Emits `event` (an object with `op`); returns its `seq`.
    pub fn emit(&self, event: Value) -> Result<u64, StoreError> {
        self.emit_with(|_| event)
    }

    /// Emits the event built by `make`, which is given the event's `seq`
    /// (used as the id of requests).
    pub fn emit_with(&self, make: impl FnOnce(u64) -> Value) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let seq = inner.last_seq + 1;
        let time = now_ms();
        let mut event = match make(seq) {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("op".into(), json!("notice"));
                m.insert("text".into(), other);
                m
            }
        };
        event.insert("seq".into(), json!(seq));
        event.insert("time".into(), json!(time));
        let body: Arc<str> = inner.store.persist(seq, time, &event)?.into();
        inner.last_seq = seq;
        inner.state.apply(&event);
        if event
            .get("op")
            .and_then(Value::as_str)
            .is_some_and(|op| op.starts_with("account."))
        {
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
        }
        Ok(seq)
    }

    /// Subscribes a client: events after the returned `last_seq` go to `tx`.
    pub fn subscribe(&self, id: u64, tx: EventTx, kick: Kick) -> Result<Subscription, StoreError> {
        let mut inner = self.lock();
        let reader = store::Reader::open(&self.db_path)?;
        let conversations = reader.conversations()?;
        let snapshot = inner.state.snapshot(conversations);
        inner.clients.insert(id, Client { tx, kick });
        self.status_notify.notify_one();
        Ok(Subscription {
            last_seq: inner.last_seq,
            snapshot,
        })
    }

    pub fn unsubscribe(&self, id: u64) {
        self.lock().clients.remove(&id);
        self.status_notify.notify_one();
    }

    /// Waits until the status line may have changed.
    pub async fn status_maybe_changed(&self) {
        self.status_notify.notified().await
    }

    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq
    }

    pub fn client_count(&self) -> usize {
        self.lock().clients.len()
    }

    /// Replaces the known accounts (at start-up, from libpurple).
    pub fn set_accounts(&self, accounts: Vec<Value>) {
        let mut inner = self.lock();
        inner.state.accounts = accounts
            .into_iter()
            .filter_map(|a| Some((a.get("id")?.as_i64()?, a)))
            .collect();
    }

    /// Replaces the known buddies (at start-up, from libpurple's list).
    pub fn set_buddies(&self, buddies: Vec<Value>) {
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
    pub fn status_line(&self) -> String {
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
    pub fn status_changed(&self) -> Option<String> {
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
    /// before (ids are never reused: history refers to them).
    pub fn next_account_id(&self, used: i64) -> i64 {
        let inner = self.lock();
        let stored = inner
            .store
            .meta_get("next_account_id")
            .ok()
            .flatten()
            .unwrap_or(1);
        let id = stored.max(used + 1);
        if let Err(e) = inner.store.meta_set("next_account_id", id + 1) {
            tracing::error!("cannot store the account counter: {e}");
        }
        id
    }

    /// See [`Store::account_save`].
    pub fn account_save(&self, id: i64, config: &Value) {
        if let Err(e) = self.lock().store.account_save(id, config) {
            tracing::error!("cannot store account {id}: {e}");
        }
    }

    /// See [`Store::account_remove`].
    pub fn account_remove(&self, id: i64) {
        if let Err(e) = self.lock().store.account_remove(id) {
            tracing::error!("cannot store account removal {id}: {e}");
        }
    }

    /// See [`Store::account_configs`].
    pub fn account_configs(&self) -> Vec<(i64, Value, bool)> {
        self.lock().store.account_configs().unwrap_or_else(|e| {
            tracing::error!("cannot read accounts: {e}");
            Vec::new()
        })
    }

    /// The stored configuration of account `id`, if any.
    pub fn account_config(&self, id: i64) -> Option<Value> {
        self.account_configs()
            .into_iter()
            .find(|(i, _, removed)| *i == id && !removed)
            .map(|(_, c, _)| c)
    }

    /// See [`Store::autojoin_add`].
    pub fn autojoin_add(&self, account: i64, name: &str, fields: &Map<String, Value>) {
        if let Err(e) = self.lock().store.autojoin_add(account, name, fields) {
            tracing::error!("cannot store autojoin: {e}");
        }
    }

    /// See [`Store::autojoin_add_if_absent`].
    pub fn autojoin_add_if_absent(&self, account: i64, name: &str) {
        if let Err(e) = self.lock().store.autojoin_add_if_absent(account, name) {
            tracing::error!("cannot store autojoin: {e}");
        }
    }

    /// See [`Store::autojoin_remove`]; whether it was remembered.
    pub fn autojoin_remove(&self, account: i64, name: &str) -> bool {
        self.lock()
            .store
            .autojoin_remove(account, name)
            .unwrap_or_else(|e| {
                tracing::error!("cannot store autojoin: {e}");
                false
            })
    }

    /// See [`Store::autojoin_list`].
    pub fn autojoin_list(&self, account: i64) -> Vec<(String, Map<String, Value>)> {
        self.lock()
            .store
            .autojoin_list(account)
            .unwrap_or_else(|e| {
                tracing::error!("cannot read autojoin: {e}");
                Vec::new()
            })
    }
}

impl LiveState {
    fn apply(&mut self, e: &Map<String, Value>) {
        let op = e.get("op").and_then(Value::as_str).unwrap_or("");
        let account = e.get("account").and_then(Value::as_i64);
        let chat_key = || -> Option<(i64, String)> {
            let key = store::conv_key(e)?;
            Some((key.account, key.name))
        };
        match op {
            "account.added" | "account.updated" => {
                if let Some(a) = e.get("info") {
                    if let Some(id) = a.get("id").and_then(Value::as_i64) {
                        let mut a = a.clone();
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
            }
            "account.removed" => {
                if let Some(id) = account {
                    self.accounts.remove(&id);
                    self.chats.retain(|k, _| k.0 != id);
                    self.buddies.retain(|k, _| k.0 != id);
                }
            }
            "account.status" => {
                if let Some(a) = account.and_then(|id| self.accounts.get_mut(&id)) {
                    a["status"] = e.get("status").cloned().unwrap_or(Value::Null);
                    match e.get("message") {
                        Some(m) => a["message"] = m.clone(),
                        None => {
                            if let Some(o) = a.as_object_mut() {
                                o.remove("message");
                            }
                        }
                    }
                }
            }
            "request.open" => {
                if let Some(id) = e.get("request").and_then(Value::as_i64) {
                    let mut r = e.clone();
                    r.remove("seq");
                    r.remove("op");
                    self.requests.insert(id, Value::Object(r));
                }
            }
            "request.close" => {
                if let Some(id) = e.get("request").and_then(Value::as_i64) {
                    self.requests.remove(&id);
                }
            }
            "chat.joined" => {
                if let Some(k) = chat_key() {
                    self.chats.insert(k, ChatState::default());
                }
            }
            "chat.left" => {
                if let Some(k) = chat_key() {
                    self.chats.remove(&k);
                }
            }
            "chat.topic" => {
                if let Some(c) = chat_key().and_then(|k| self.chats.get_mut(&k)) {
                    c.topic = e.get("topic").cloned();
                }
            }
            "chat.members" => {
                if let Some(c) = chat_key().and_then(|k| self.chats.get_mut(&k)) {
                    for m in e
                        .get("removed")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(n) = m.as_str() {
                            c.members.remove(n);
                        }
                    }
                    for r in e
                        .get("renamed")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let (Some(from), Some(to)) = (
                            r.get("from").and_then(Value::as_str),
                            r.get("to").and_then(Value::as_str),
                        ) {
                            let mut m = c.members.remove(from).unwrap_or_else(|| json!({}));
                            m["name"] = json!(to);
                            c.members.insert(to.to_owned(), m);
                        }
                    }
                    for key in ["added", "updated"] {
                        for m in e.get(key).and_then(Value::as_array).into_iter().flatten() {
                            if let Some(n) = m.get("name").and_then(Value::as_str) {
                                c.members.insert(n.to_owned(), m.clone());
                            }
                        }
                    }
                }
            }
            "buddy.added" | "buddy.presence" => {
                if let (Some(id), Some(name)) = (account, e.get("name").and_then(Value::as_str)) {
                    let mut b = e.clone();
                    b.remove("seq");
                    b.remove("op");
                    b.remove("time");
                    let entry = self
                        .buddies
                        .entry((id, name.to_owned()))
                        .or_insert_with(|| json!({}));
                    for (k, v) in b {
                        entry[k.as_str()] = v;
                    }
                }
            }
            "status" => {
                self.status = Some(json!({
                    "status": e.get("status").cloned().unwrap_or(Value::Null),
                    "message": e.get("message").cloned().unwrap_or(Value::Null),
                }));
            }
            "buddy.removed" => {
                if let (Some(id), Some(name)) = (account, e.get("name").and_then(Value::as_str)) {
                    self.buddies.remove(&(id, name.to_owned()));
                }
            }
            _ => {}
        }
    }

    fn snapshot(&self, conversations: Vec<Value>) -> Value {
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
        json!({
            "accounts": self.accounts.values().cloned().collect::<Vec<_>>(),
            "conversations": conversations,
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

    /// While other threads emit, a subscriber that replays `(since,
    /// last_seq]` from the store and then reads its queue sees every event
    /// after `since` exactly once, in order.
    #[test]
    fn subscribe_during_emits_is_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::open(&dir.path().join("db")).unwrap();
        for i in 0..50 {
            hub.emit(json!({"op": "notice", "text": format!("before {i}")}))
                .unwrap();
        }
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let hub = hub.clone();
                std::thread::spawn(move || {
                    for i in 0..300 {
                        hub.emit(json!({"op": "notice", "text": format!("{w}/{i}")}))
                            .unwrap();
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (tx, mut rx) = mpsc::channel(10_000);
        let since = 20;
        let sub = hub.subscribe(1, tx, Kick::default()).unwrap();
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
        hub.subscribe(1, slow_tx, kick.clone()).unwrap();
        hub.subscribe(2, ok_tx, Kick::default()).unwrap();
        for i in 0..5 {
            hub.emit(json!({"op": "notice", "text": i})).unwrap();
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
            hub.emit(json!({"op": "chat.joined", "account": 1,
                "conversation": {"kind": "chat", "name": "#a"}}))
                .unwrap();
            hub.emit_with(|seq| json!({"op": "request.open", "request": seq, "kind": "action"}))
                .unwrap();
            hub.emit(json!({"op": "account.status", "account": 1, "status": "connected"}))
                .unwrap();
        }
        let hub = Hub::open(&path).unwrap();
        let reader = store::Reader::open(&path).unwrap();
        let ops: Vec<Value> = reader
            .events(3, 100, 100)
            .unwrap()
            .into_iter()
            .map(|(_, b)| serde_json::from_str(&b).unwrap())
            .collect();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0]["op"], "chat.left");
        assert_eq!(ops[1]["op"], "request.close");
        assert_eq!(ops[1]["request"], 2);
        assert_eq!(ops[2]["status"], "disconnected");
        drop(hub);
        // Nothing left open the second time.
        let hub = Hub::open(&path).unwrap();
        assert_eq!(hub.last_seq(), 6);
    }
}
