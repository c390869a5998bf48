//! Emitting events from the purple thread (through the hub).

use super::state;
use crate::backend::event::Event;
use crate::backend::store::StoreError;

/// Emits an event, logging (not propagating) a store failure: a callback
/// from libpurple has nobody to return an error to.
pub(crate) fn emit(event: Event) -> Option<u64> {
    match state::hub().emit(event) {
        Ok(seq) => Some(seq),
        Err(e) => {
            tracing::error!("cannot store event: {e}");
            None
        }
    }
}

/// Emits the event built from its `seq` (requests use it as their id).
pub(crate) fn emit_with(make: impl FnOnce(u64) -> Event) -> Result<u64, StoreError> {
    state::hub().emit_with(make)
}

/// Emits `account.status` unless it repeats the last one (a message always
/// goes out).
pub(crate) fn emit_status(account: i64, status: &str, message: Option<String>) {
    let changed = state::with(|s| {
        if s.statuses.get(&account).map(String::as_str) == Some(status) && message.is_none() {
            false
        } else {
            s.statuses.insert(account, status.to_owned());
            true
        }
    });
    if changed {
        emit(Event::AccountStatus {
            account,
            status: status.to_owned(),
            message,
        });
    }
}

/// The last status emitted for `account`.
pub(crate) fn last_status(account: i64) -> Option<String> {
    state::with(|s| s.statuses.get(&account).cloned())
}

/// Runs `send` and returns the `seq` of the outgoing `message` event it
/// produced (libpurple writes it back through `write_conv` during the
/// send), or `None` if the protocol echoes it later.
pub(crate) fn capture_outgoing<R>(send: impl FnOnce() -> R) -> (R, Option<u64>) {
    let outer = state::with(|s| s.outgoing.replace(None));
    let r = send();
    let seq = state::with(|s| std::mem::replace(&mut s.outgoing, outer)).flatten();
    (r, seq)
}

/// Called by `write_conv` for an outgoing message.
pub(crate) fn note_outgoing(seq: u64) {
    state::with(|s| {
        if let Some(slot) = s.outgoing.as_mut() {
            *slot = Some(seq);
        }
    });
}
