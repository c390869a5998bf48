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

/// How much older than now a message's time must be to count as replayed,
/// for a protocol that may pass a server's clock as the time of live
/// messages.
pub(crate) const DELAYED_AFTER_S: i64 = 60;

/// The same for XMPP and IRC, whose plugins give every live message the
/// local time of its arrival (`time(NULL)` while parsing it, written in the
/// same call: 0 or 1 s old), so only a server's stamp (XMPP `<delay>`) can
/// make it older.
pub(crate) const LOCAL_TIME_DELAYED_AFTER_S: i64 = 2;

/// The threshold of [`delayed`] for `protocol`.
pub(crate) fn delayed_after(protocol: &str) -> i64 {
    match protocol {
        "prpl-jabber" | "prpl-irc" => LOCAL_TIME_DELAYED_AFTER_S,
        _ => DELAYED_AFTER_S,
    }
}

/// Whether a message libpurple delivers is replayed history (`delayed`,
/// with its original time as `sent`): libpurple flagged it
/// `PURPLE_MESSAGE_DELAYED`, or its time (`mtime`, seconds) is at least
/// `after` seconds ([`delayed_after`]) before `now` — XMPP offline messages
/// carry their `<delay>` stamp as the time without the flag (issue #13).
pub(crate) fn delayed(flagged: bool, mtime: i64, now: i64, after: i64) -> bool {
    flagged || (mtime > 0 && now.saturating_sub(mtime) >= after)
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
        use super::{delayed, delayed_after};
        let now = 1_700_000_000;
        let other = delayed_after("prpl-other");
        assert!(delayed(true, now, now, other));
        assert!(!delayed(false, now, now, other));
        assert!(!delayed(false, now - 59, now, other));
        assert!(delayed(false, now - 60, now, other));
        assert!(!delayed(false, now + 5, now, other)); // a fast clock
        assert!(!delayed(false, 0, now, other)); // no time at all
                                                 // XMPP: a live message is 0 or 1 s old (a second boundary).
        let xmpp = delayed_after("prpl-jabber");
        assert!(!delayed(false, now - 1, now, xmpp));
        assert!(delayed(false, now - 2, now, xmpp));
    }
}
