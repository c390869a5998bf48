//! The purple thread's state: one [`PurpleState`], owned by that thread.
//!
//! Everything the purple layer remembers between callbacks lives here
//! (statuses already told, joined chats, reconnection attempts, open
//! requests, DNS queries in flight, the hub and the configuration). It is
//! reached only through [`with`], which panics with a clear message when
//! called from another thread or before the thread started (instead of
//! silently seeing empty state).
//!
//! Rule: never call libpurple inside [`with`]: libpurple may call back
//! into code that needs the state. Copy what you need out, then act.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::c_int;
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

use super::ffi;
use super::handles::{DnsCallbacks, FieldsCb, IntCb, RequestFields, StringCb, UnitCb};
use crate::backend::config::BackendConfig;
use crate::backend::hub::Hub;

/// How an open request is answered.
#[derive(Clone, Copy)]
pub(crate) enum Pending {
    /// Input, file and folder requests: OK with a string, or cancel.
    Text {
        ok: Option<StringCb>,
        cancel: Option<StringCb>,
    },
    Choice {
        ok: Option<IntCb>,
        cancel: Option<IntCb>,
        default: c_int,
    },
    /// Actions are in [`PendingRequest::actions`].
    Action,
    Fields {
        ok: Option<FieldsCb>,
        cancel: Option<FieldsCb>,
        fields: RequestFields,
    },
    /// A contact asks to see our presence (account UI ops).
    Authorize {
        allow: Option<UnitCb>,
        deny: Option<UnitCb>,
    },
}

/// A request libpurple opened and no one has closed.
pub(crate) struct PendingRequest {
    /// libpurple's request type (`None` for account requests).
    pub(crate) kind: Option<ffi::PurpleRequestType>,
    pub(crate) pending: Pending,
    /// For action requests: one callback per action.
    pub(crate) actions: Vec<Option<IntCb>>,
    /// Valid values for choice requests.
    pub(crate) values: Vec<c_int>,
    pub(crate) answered: bool,
}

/// A DNS query in flight: its generation (a query pointer may be reused
/// after it is destroyed) and its callbacks.
pub(crate) struct DnsEntry {
    pub(crate) generation: u64,
    pub(crate) callbacks: DnsCallbacks,
}

pub(crate) struct PurpleState {
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: BackendConfig,
    /// Last status emitted per account, to drop repeats.
    pub(crate) statuses: HashMap<i64, String>,
    /// Chats we told clients are joined.
    pub(crate) joined: HashSet<(i64, String)>,
    /// Chats `chat.join` asked for that the server has not confirmed yet
    /// (account, normalised name): a refusal forgets them.
    pub(crate) pending_joins: HashSet<(i64, String)>,
    /// The IRC line being handled refused a join that `chat.join_failed`
    /// reported: libpurple's error pop-up for it is not a `notice`.
    pub(crate) quiet_error: bool,
    /// The IRC line being handled is this CTCP request: the message
    /// libpurple makes of it is dropped.
    pub(crate) ctcp_line: Option<String>,
    /// Reconnection attempts since the last successful sign-on.
    pub(crate) attempts: HashMap<i64, u32>,
    /// Sign-on attempts being watched: account → the attempt's number
    /// (`accounts::watch_signon`).
    pub(crate) signons: HashMap<i64, u64>,
    pub(crate) next_signon: u64,
    /// Open requests by id (the `seq` of their `request.open`).
    pub(crate) requests: HashMap<i64, PendingRequest>,
    /// DNS queries in flight, by query key.
    pub(crate) dns: HashMap<usize, DnsEntry>,
    pub(crate) next_dns: u64,
    /// While a send runs: the `seq` of the outgoing message it produced
    /// (see `events::capture_outgoing`).
    pub(crate) outgoing: Option<Option<u64>>,
    /// While a queued line is being sent: the `seq` of its `queued`
    /// message event (see `events::send_queued`).
    pub(crate) queued_echo: Option<u64>,
    /// The purple thread's main loop (GLib), once it exists.
    pub(crate) main_loop: Option<NonNull<ffi::GMainLoop>>,
    /// Paced outgoing lines per account (IRC), see `sending`.
    pub(crate) send_queues: HashMap<i64, crate::backend::purple::sending::SendQueue>,
    /// Each IRC account's pace, from its stored options
    /// (`accounts::take_over_irc_pacing`).
    pub(crate) paces: HashMap<i64, crate::backend::pacing::Pace>,
    /// History replays in progress (dedup), see `history`.
    pub(crate) replays: super::history::Replays,
    /// Remembered chats being rejoined at sign-on (account, lower-cased
    /// name), until an explicit `chat.join` of the same name: such a join
    /// must never create the room (`accounts::vanished_room`).
    pub(crate) rejoining: HashSet<(i64, String)>,
    /// The chat each account joined last (the XMPP plugin asks how to
    /// configure a room it just created right after joining it).
    pub(crate) last_joined: HashMap<i64, String>,
    /// Rooms found gone at a rejoin and left (`accounts::vanished_room`),
    /// until the user joins them again.
    pub(crate) abandoned: HashSet<(i64, String)>,
    /// The backend is stopping (SIGTERM): chats it leaves are left for a
    /// restart (`chat.left` with `reason: "restart"`).
    pub(crate) shutting_down: bool,
    /// IRC accounts signed on with another nick than the one asked for
    /// (taken): the nick they got (`accounts::note_nick`).
    pub(crate) nicks: HashMap<i64, String>,
    /// Chats whose topic the user asked to change, until the server
    /// confirms (a topic change) or refuses (an XMPP error).
    pub(crate) topic_pending: HashSet<(i64, String)>,
}

impl PurpleState {
    pub(crate) fn new(hub: Arc<Hub>, config: BackendConfig) -> PurpleState {
        PurpleState {
            hub,
            config,
            statuses: HashMap::new(),
            joined: HashSet::new(),
            pending_joins: HashSet::new(),
            quiet_error: false,
            ctcp_line: None,
            attempts: HashMap::new(),
            signons: HashMap::new(),
            next_signon: 1,
            requests: HashMap::new(),
            dns: HashMap::new(),
            next_dns: 1,
            outgoing: None,
            queued_echo: None,
            main_loop: None,
            send_queues: HashMap::new(),
            paces: HashMap::new(),
            replays: HashMap::new(),
            rejoining: HashSet::new(),
            last_joined: HashMap::new(),
            abandoned: HashSet::new(),
            shutting_down: false,
            nicks: HashMap::new(),
            topic_pending: HashSet::new(),
        }
    }
}

static PURPLE_THREAD: OnceLock<ThreadId> = OnceLock::new();

thread_local! {
    static STATE: RefCell<Option<PurpleState>> = const { RefCell::new(None) };
}

/// Makes the current thread the purple thread, owning `state`.
pub(crate) fn install(state: PurpleState) {
    let me = std::thread::current().id();
    let owner = *PURPLE_THREAD.get_or_init(|| me);
    assert_eq!(owner, me, "a second purple thread was started");
    STATE.with(|s| *s.borrow_mut() = Some(state));
}

/// Runs `f` with the purple thread's state.
///
/// # Panics
/// Off the purple thread, before [`install`], or when called from inside
/// another `with` (libpurple must not be called inside `f`).
pub(crate) fn with<R>(f: impl FnOnce(&mut PurpleState) -> R) -> R {
    let me = std::thread::current().id();
    match PURPLE_THREAD.get() {
        Some(owner) if *owner == me => {}
        Some(_) => panic!("PurpleState used off the purple thread ({me:?})"),
        None => panic!("PurpleState used before the purple thread started"),
    }
    STATE.with(|s| {
        let mut s = s
            .try_borrow_mut()
            .expect("PurpleState is already borrowed: libpurple called inside state::with");
        f(s.as_mut().expect("the purple thread's state is installed"))
    })
}

/// The hub (a clone, so it can be used outside [`with`]).
pub(crate) fn hub() -> Arc<Hub> {
    with(|s| s.hub.clone())
}

/// Whether the admin allows accounts for `protocol` (`backend.toml`).
pub(crate) fn protocol_allowed(protocol: &str) -> bool {
    with(|s| s.config.protocols.allows(protocol))
}

/// The pace of an IRC account (`accounts::take_over_irc_pacing` sets it).
pub(crate) fn pace(id: i64) -> crate::backend::pacing::Pace {
    with(|s| s.paces.get(&id).copied()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn off_the_purple_thread_is_a_clear_panic() {
        let r = std::thread::spawn(|| super::with(|_| ())).join();
        let msg = r.unwrap_err();
        let msg = msg
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap();
        assert!(msg.contains("PurpleState"), "{msg}");
    }
}
