//! History dedup (issue #13): a line a server replays that is already in
//! the store is dropped before it becomes an event, so it is neither stored
//! nor sent again, nor counted unread, nor a mention. The rule
//! (`docs/protocol.md`, "History dedup"):
//!
//! * **Replayed lines with a time** (`delayed`: XMPP room history, offline
//!   messages): a duplicate is a stored line of the same conversation with
//!   the same sender and text whose original time is within
//!   [`SENT_TOLERANCE_MS`] of the replayed line's `sent` (the tolerance
//!   covers a line first seen live, stored with our arrival time, against
//!   the server's stamp of it; nearest first). libpurple 2.14 does not pass
//!   the server's message ids (XEP-0359 `stanza-id`) to the UI, so content
//!   and time are all there is.
//! * **IRC history on join** (a `+H`-style channel mode): libpurple does
//!   not negotiate IRCv3 `server-time`, so the replay arrives as ordinary
//!   live lines right after the join. For [`IRC_REPLAY_WINDOW`] after
//!   `chat.joined`, an incoming line that matches the stored tail of the
//!   channel (the newest [`IRC_REPLAY_LINES`] lines, sender and text, in
//!   order) is dropped; the first line that does not match, or a line the
//!   user sends, ends the window (everything after it is new).
//!
//! Each stored line matches at most one line of one replay (a replay's
//! state is reset at every join and sign-on), so a line said twice is kept
//! twice.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::state;
use crate::backend::event::ConvRef;
use crate::backend::store::ConvKey;

/// How far a replayed line's `sent` may be from a stored line's original
/// time for the two to be one line.
pub(crate) const SENT_TOLERANCE_MS: i64 = 120_000;

/// How long after an IRC join lines are compared with the stored tail.
pub(crate) const IRC_REPLAY_WINDOW: Duration = Duration::from_secs(30);

/// How many stored lines an IRC replay is compared with.
pub(crate) const IRC_REPLAY_LINES: usize = 100;

/// One conversation's replay in progress.
#[derive(Default)]
pub(crate) struct Replay {
    /// Stored seqs already matched by this replay.
    taken: HashSet<i64>,
    irc: Option<IrcReplay>,
}

/// The stored tail of an IRC channel, matched in order by the lines that
/// follow a join.
pub(crate) struct IrcReplay {
    until: Instant,
    lines: Vec<(String, String)>,
    next: usize,
}

impl IrcReplay {
    pub(crate) fn new(lines: Vec<(String, String)>, now: Instant) -> IrcReplay {
        IrcReplay {
            until: now + IRC_REPLAY_WINDOW,
            lines,
            next: 0,
        }
    }

    /// Whether `(sender, text)` arriving at `now` repeats a stored line;
    /// `false` ends the window for good.
    pub(crate) fn take(&mut self, sender: &str, text: &str, now: Instant) -> bool {
        if now > self.until {
            self.next = self.lines.len();
            return false;
        }
        let found = self.lines[self.next.min(self.lines.len())..]
            .iter()
            .position(|(s, t)| s == sender && t == text);
        match found {
            Some(i) => {
                self.next += i + 1;
                true
            }
            None => {
                self.next = self.lines.len();
                false
            }
        }
    }

    /// Ends the window (the user said something).
    fn end(&mut self) {
        self.next = self.lines.len();
    }
}

/// Replays in progress, by account and conversation.
pub(crate) type Replays = HashMap<(i64, ConvRef), Replay>;

/// A chat was joined: a new replay starts. For IRC, the channel's stored
/// tail is what the server's history on join may repeat.
pub(crate) fn joined(account: i64, conversation: &ConvRef, irc: bool) {
    let lines = if irc {
        match state::hub().recent_lines(&ConvKey::new(account, conversation), IRC_REPLAY_LINES) {
            Ok(lines) => Some(lines),
            Err(e) => {
                tracing::error!(account, "cannot read the channel's history: {e}");
                None
            }
        }
    } else {
        None
    };
    let replay = Replay {
        taken: HashSet::new(),
        irc: lines.map(|l| IrcReplay::new(l, Instant::now())),
    };
    state::with(|s| s.replays.insert((account, conversation.clone()), replay));
}

/// The account signed on (or went away): its replays are over.
pub(crate) fn reset_account(account: i64) {
    state::with(|s| s.replays.retain(|k, _| k.0 != account));
}

/// A line of `conversation`, about to be emitted: whether it repeats a
/// stored line and must be dropped. `sent` is its original time (Unix ms)
/// if it is `delayed`; `ours` is true for a line the user is sending now.
pub(crate) fn is_duplicate(
    account: i64,
    conversation: &ConvRef,
    sender: &str,
    text: &str,
    sent: Option<i64>,
    ours: bool,
) -> bool {
    let key = (account, conversation.clone());
    if let Some(sent) = sent {
        let taken = state::with(|s| {
            s.replays
                .get(&key)
                .map(|r| r.taken.clone())
                .unwrap_or_default()
        });
        let found = state::hub().find_duplicate(
            &ConvKey::new(account, conversation),
            (sender, text),
            sent,
            SENT_TOLERANCE_MS,
            &taken,
        );
        return match found {
            Ok(Some(seq)) => {
                state::with(|s| s.replays.entry(key).or_default().taken.insert(seq));
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::error!(account, "cannot check history for duplicates: {e}");
                false
            }
        };
    }
    state::with(|s| {
        let Some(irc) = s.replays.get_mut(&key).and_then(|r| r.irc.as_mut()) else {
            return false;
        };
        if ours {
            irc.end();
            return false;
        }
        irc.take(sender, text, Instant::now())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(l: &[(&str, &str)]) -> Vec<(String, String)> {
        l.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn an_irc_replay_drops_the_stored_tail_in_order_then_stops() {
        let t = Instant::now();
        let stored = lines(&[
            ("bob", "one"),
            ("carol", "two"),
            ("bob", "one"),
            ("bob", "three"),
        ]);
        // The server replays the last three stored lines, then two new ones.
        let mut r = IrcReplay::new(stored.clone(), t);
        assert!(r.take("carol", "two", t));
        assert!(r.take("bob", "one", t));
        assert!(r.take("bob", "three", t));
        assert!(!r.take("bob", "four", t));
        // After the first new line, nothing more is dropped (even a repeat).
        assert!(!r.take("bob", "one", t));
        // A line said twice is dropped once per stored copy.
        let mut r = IrcReplay::new(stored.clone(), t);
        assert!(r.take("bob", "one", t));
        assert!(r.take("bob", "one", t));
        assert!(!r.take("bob", "one", t));
        // Past the window, a matching line is live.
        let mut r = IrcReplay::new(stored, t);
        assert!(!r.take(
            "bob",
            "three",
            t + IRC_REPLAY_WINDOW + Duration::from_secs(1)
        ));
        // Nothing stored: nothing dropped.
        let mut r = IrcReplay::new(Vec::new(), t);
        assert!(!r.take("bob", "one", t));
    }
}
