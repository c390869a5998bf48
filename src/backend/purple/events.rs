//! Emitting events from the purple thread (through the hub).

use super::state;
use crate::backend::event::{ConvRef, Event};
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

/// How much older than now a message's time must be to count as replayed.
pub(crate) const DELAYED_AFTER_S: i64 = 60;

/// Whether a message libpurple delivers is replayed history (`delayed`,
/// with its original time as `sent`): libpurple flagged it
/// `PURPLE_MESSAGE_DELAYED`, or its time (`mtime`, seconds) is more than
/// [`DELAYED_AFTER_S`] before `now` — XMPP offline messages carry their
/// `<delay>` stamp as the time without the flag (issue #13).
pub(crate) fn delayed(flagged: bool, mtime: i64, now: i64) -> bool {
    flagged || (mtime > 0 && now.saturating_sub(mtime) > DELAYED_AFTER_S)
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

/// Runs `send` for a line that was announced with `queued: true` (its
/// `message` event is `queued`): libpurple's echo of it is not a new
/// message but a `message.sent` naming `queued` (see `take_queued_echo`);
/// a send that fails (the chat was left, the account went offline)
/// reports the error instead.
pub(crate) fn send_queued(
    account: i64,
    conversation: ConvRef,
    queued: u64,
    send: impl FnOnce() -> bool,
) {
    let outer = state::with(|s| s.queued_echo.replace(queued));
    let sent = send();
    let unclaimed = state::with(|s| std::mem::replace(&mut s.queued_echo, outer));
    if unclaimed.is_some() {
        // No echo came back: still say what happened to the line.
        emit(Event::MessageSent {
            account,
            conversation,
            message: queued,
            error: (!sent).then(|| "not sent: not in this conversation any more".to_owned()),
        });
    }
}

/// Called by `write_conv` for an outgoing message: the `seq` of the
/// queued message this echo belongs to, if a queued line is being sent.
pub(crate) fn take_queued_echo() -> Option<u64> {
    state::with(|s| s.queued_echo.take())
}

/// Called by `write_conv` for an outgoing message.
pub(crate) fn note_outgoing(seq: u64) {
    state::with(|s| {
        if let Some(slot) = s.outgoing.as_mut() {
            *slot = Some(seq);
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn old_message_times_are_delayed() {
        let now = 1_700_000_000;
        assert!(super::delayed(true, now, now));
        assert!(!super::delayed(false, now, now));
        assert!(!super::delayed(false, now - 60, now));
        assert!(super::delayed(false, now - 61, now));
        assert!(!super::delayed(false, now + 5, now)); // a fast clock
        assert!(!super::delayed(false, 0, now)); // no time at all
    }
}
