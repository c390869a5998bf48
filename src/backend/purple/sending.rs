//! What the user typed, sent as they meant it (purple thread only).
//!
//! * Text that starts with `/` is a command for the conversation, run
//!   through libpurple's command table (`/me`, `/msg`, `/query`, `/join`,
//!   `/part`, `/topic`, `/nick`, `/whois`, `/kick`, `/mode`, `/invite` … as
//!   the protocol plugin registers them). An unknown command is refused and
//!   **nothing reaches the network**. `//text` sends `/text` as text.
//!   `/me` for protocols whose plugin lacks it (XMPP: Pidgin's UI registers
//!   it, not libpurple) is sent as text with its `/me ` prefix (XEP-0245).
//! * On IRC a long message is split at words into lines that fit 512 bytes
//!   ([`pacing::split_message`]), and lines go out through a per-account
//!   token bucket instead of libpurple's one-second queue
//!   (`docs/irc.md`): a burst at once, then a steady rate, each line handed
//!   to the network the moment its token is there.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use serde_json::{json, Value};

use super::handles::{self, Account, CmdResult, Conversation};
use super::{events, ffi, glue, state};
use crate::backend::event::{ConvRef, Direction, Event, Message};
use crate::backend::pacing::{self, TokenBucket};
use crate::backend::protocol::{ConvKind, OpError, OpResult};

const IRC: &str = "prpl-irc";

/// One account's paced lines.
pub(crate) struct SendQueue {
    bucket: TokenBucket,
    lines: VecDeque<Line>,
    /// A drain timer is pending.
    armed: bool,
}

/// A line waiting for its token.
struct Line {
    kind: ConvKind,
    name: String,
    text: String,
    /// The `seq` of its `message` event with `queued: true`, once emitted
    /// (a line that goes at once has none: its echo is its event).
    seq: Option<u64>,
}

/// Runs `conversation.send`'s text.
pub(crate) fn send(account: Account, kind: ConvKind, name: &str, text: &str) -> OpResult {
    if let Some(literal) = text.strip_prefix("//") {
        return send_message(account, kind, name, &format!("/{literal}"));
    }
    match text.strip_prefix('/') {
        Some(cmdline) if !cmdline.is_empty() && !cmdline.starts_with(' ') => {
            command(account, kind, name, cmdline)
        }
        _ => send_message(account, kind, name, text),
    }
}

fn conversation(account: Account, kind: ConvKind, name: &str) -> Result<Conversation, OpError> {
    match kind {
        ConvKind::Im => account
            .im(name)
            .ok_or_else(|| OpError::internal("cannot open the conversation")),
        ConvKind::Chat => account
            .find_conversation(ConvKind::Chat, name)
            .filter(|c| c.is_joined_chat())
            .ok_or_else(|| OpError::new("not_joined", "not in this chat")),
    }
}

fn conversation_keys(account: Account) -> HashSet<(ConvKind, String)> {
    handles::all_conversations()
        .into_iter()
        .filter_map(|c| c.key())
        .filter(|(a, ..)| a.id() == account.id())
        .map(|(_, k, n)| (k, n))
        .collect()
}

fn command(account: Account, kind: ConvKind, name: &str, cmdline: &str) -> OpResult {
    let word = cmdline.split(' ').next().unwrap_or("").to_owned();
    let conv = conversation(account, kind, name)?;
    // libpurple's IRC commands accept missing arguments and then do
    // nothing: check them against the usage in the command's help
    // ("kick <nick> [message]: …") so the user learns why.
    let help = glue::markup_str_to_text(&conv.command_help(&word).join(" "));
    let given = cmdline.split_whitespace().count().saturating_sub(1);
    // libpurple's usage for /query names a message that it does not need.
    let required = match word.to_ascii_lowercase().as_str() {
        "query" => 1,
        _ => required_args(&help),
    };
    if given < required {
        return Err(OpError::new("bad_command", help));
    }
    let before = conversation_keys(account);
    let markup = glue::text_to_markup(cmdline);
    let markup = markup.to_string_lossy();
    let (result, seq) = events::capture_outgoing(|| conv.run_command(cmdline, &markup));
    let result = match result {
        CmdResult::NotFound if word.eq_ignore_ascii_case("me") => {
            // Sent as text: XMPP clients show "/me …" as an action.
            return send_message(account, kind, name, &format!("/{cmdline}"));
        }
        r => r,
    };
    match result {
        CmdResult::Ok => {
            let mut reply = json!({"command": word.to_lowercase()});
            if let Some(seq) = seq {
                reply["seq"] = json!(seq);
            }
            let opened: Vec<Value> = conversation_keys(account)
                .difference(&before)
                .map(|(k, n)| json!({"kind": k.as_str(), "name": n}))
                .collect();
            if let Some(first) = opened.into_iter().next() {
                reply["opened"] = first;
            }
            kick(account);
            Ok(reply)
        }
        CmdResult::NotFound | CmdResult::NotHere => Err(OpError::new(
            "unknown_command",
            format!(
                "unknown command '/{word}' here: nothing was sent. To send it as text, start with '//'"
            ),
        )),
        CmdResult::WrongArgs => {
            let help = conv.command_help(&word).join(" ");
            Err(OpError::new(
                "bad_command",
                if help.is_empty() {
                    format!("wrong arguments for '/{word}'")
                } else {
                    glue::markup_str_to_text(&help)
                },
            ))
        }
        CmdResult::Failed(message) => Err(OpError::new(
            "bad_command",
            message.unwrap_or_else(|| format!("'/{word}' failed")),
        )),
    }
}

/// How many `<required>` arguments the usage part of a help text names
/// (the part before its first `:`).
fn required_args(help: &str) -> usize {
    let usage = help.split(':').next().unwrap_or("");
    usage.matches('<').count()
}

/// The commands available in a conversation, with their help, sorted.
pub(crate) fn commands(account: Account, kind: ConvKind, name: &str) -> OpResult {
    let conv = conversation(account, kind, name)?;
    let mut names = conv.command_names();
    names.sort();
    names.dedup();
    if !names.iter().any(|n| n == "me") {
        names.push("me".into());
    }
    let list: Vec<Value> = names
        .into_iter()
        .map(|n| {
            let help = glue::markup_str_to_text(&conv.command_help(&n).join(" "));
            json!({"name": n, "help": help})
        })
        .collect();
    Ok(json!({"commands": list}))
}

fn send_message(account: Account, kind: ConvKind, name: &str, text: &str) -> OpResult {
    let conv = conversation(account, kind, name)?;
    if account.protocol_id() != IRC {
        let markup = glue::text_to_markup(text);
        let (sent, seq) = events::capture_outgoing(|| match kind {
            ConvKind::Im => conv.send_im(&markup),
            ConvKind::Chat => conv.send_chat(&markup),
        });
        if !sent {
            return Err(OpError::new("not_joined", "not in this chat"));
        }
        // `null`: some protocols echo sent chat messages from the server.
        return Ok(json!({"seq": seq.map_or(Value::Null, Value::from)}));
    }
    super::accounts::connected(account)?;
    let lines = pacing::split_message(text, pacing::irc_text_limit(name));
    if lines.is_empty() {
        return Err(OpError::bad_request("'text' has nothing to send"));
    }
    let id = account.id();
    let now = Instant::now();
    let pace = state::pace(id);
    state::with(|s| {
        let q = s.send_queues.entry(id).or_insert_with(|| SendQueue {
            bucket: TokenBucket::new(pace.burst, pace.interval, now),
            lines: VecDeque::new(),
            armed: false,
        });
        // The account's options may have changed the pace since.
        q.bucket.set_pace(pace, now);
        for line in &lines {
            q.lines.push_back(Line {
                kind,
                name: name.to_owned(),
                text: line.clone(),
                seq: None,
            });
        }
    });
    let seq = drain(id);
    announce_queued(account, id);
    let (waiting, eta) = state::with(|s| {
        let q = s.send_queues.get_mut(&id);
        match q {
            Some(q) => {
                let n = q.lines.len();
                (n, q.bucket.time_for(n as u32, Instant::now()))
            }
            None => (0, std::time::Duration::ZERO),
        }
    });
    Ok(json!({
        "seq": seq.map_or(Value::Null, Value::from),
        "lines": lines.len(),
        "queued": waiting,
        "delivered_in_ms": eta.as_millis() as u64,
    }))
}

/// Sends what the bucket allows now; arms a timer for the rest. Returns the
/// `seq` of the first line sent.
fn drain(id: i64) -> Option<u64> {
    let mut first = None;
    loop {
        let next = state::with(|s| {
            let q = s.send_queues.get_mut(&id)?;
            if q.lines.is_empty() {
                return None;
            }
            if q.bucket.try_take(Instant::now()) {
                q.lines.pop_front().map(Ok)
            } else {
                Some(Err(q.bucket.next_at(Instant::now())))
            }
        });
        match next {
            None => break,
            Some(Ok(line)) => {
                let Ok(account) = super::accounts::find(id) else {
                    state::with(|s| s.send_queues.remove(&id));
                    break;
                };
                if account.connected().is_none() {
                    // libpurple would drop the lines without a word: this
                    // one and the rest are reported not sent.
                    state::with(|s| {
                        if let Some(q) = s.send_queues.get_mut(&id) {
                            q.lines.push_front(line);
                        }
                    });
                    fail_all(id, "not sent: the account went offline");
                    break;
                }
                // A line that waited for the pace is checked again: if
                // the history cannot keep it now, it and the rest of the
                // queue are dropped, never sent (and reported so).
                if let Err(e) = state::hub().writable(line.text.len()) {
                    let dropped = state::with(|s| {
                        let q = s.send_queues.get_mut(&id)?;
                        q.lines.push_front(line);
                        Some(q.lines.len())
                    });
                    tracing::error!(
                        account = id,
                        "cannot store outgoing lines ({e}): {} not sent",
                        dropped.unwrap_or(1)
                    );
                    fail_all(id, "not sent: the history cannot be stored (disk full?)");
                    break;
                }
                let markup = glue::text_to_markup(&line.text);
                let send = || {
                    account
                        .find_conversation(line.kind, &line.name)
                        .is_some_and(|c| match line.kind {
                            ConvKind::Im => c.send_im(&markup),
                            ConvKind::Chat => c.send_chat(&markup),
                        })
                };
                match line.seq {
                    None => {
                        let (_, seq) = events::capture_outgoing(send);
                        first = first.or(seq);
                    }
                    Some(queued) => {
                        let conversation = ConvRef {
                            kind: line.kind,
                            name: line.name.clone(),
                        };
                        events::send_queued(id, conversation, queued, send);
                    }
                }
                kick(account);
            }
            Some(Err(at)) => {
                arm(id, at);
                break;
            }
        }
    }
    first
}

/// Emits a `message` event with `queued: true` for each line of the
/// account's queue that has none yet (the lines the pace holds back), in
/// order, so every client shows them at once as waiting.
fn announce_queued(account: Account, id: i64) {
    let waiting: Vec<(usize, ConvKind, String, String)> = state::with(|s| {
        s.send_queues.get(&id).map_or_else(Vec::new, |q| {
            q.lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l.seq.is_none())
                .map(|(i, l)| (i, l.kind, l.name.clone(), l.text.clone()))
                .collect()
        })
    });
    if waiting.is_empty() {
        return;
    }
    // The names libpurple's own echo of the line would carry: in a chat
    // the IRC plugin writes our lines under the connection's display name
    // (the nick); for an IM `purple_conversation_write` passes the
    // conversation's name as `who` and our alias (the account's, else the
    // nick) as the alias.
    let nick = account
        .connection()
        .and_then(|gc| gc.display_name())
        .unwrap_or_else(|| account.username());
    let im_alias = account.alias().unwrap_or_else(|| nick.clone());
    let mut seqs = Vec::new();
    for (i, kind, name, text) in waiting {
        let (sender, alias) = match kind {
            ConvKind::Chat => (nick.clone(), None),
            ConvKind::Im => (name.clone(), Some(im_alias.clone()).filter(|a| *a != name)),
        };
        let seq = events::emit(Event::Message(Message {
            alias,
            queued: true,
            ..Message::plain(id, ConvRef { kind, name }, sender, text, Direction::Out)
        }));
        if let Some(seq) = seq {
            seqs.push((i, seq));
        }
    }
    state::with(|s| {
        if let Some(q) = s.send_queues.get_mut(&id) {
            for (i, seq) in seqs {
                if let Some(line) = q.lines.get_mut(i) {
                    line.seq = Some(seq);
                }
            }
        }
    });
}

fn arm(id: i64, at: Instant) {
    let already = state::with(|s| {
        s.send_queues
            .get_mut(&id)
            .map(|q| std::mem::replace(&mut q.armed, true))
            .unwrap_or(true)
    });
    if already {
        return;
    }
    unsafe extern "C" fn fire(data: ffi::gpointer) -> ffi::gboolean {
        let id = data as usize as i64;
        state::with(|s| {
            if let Some(q) = s.send_queues.get_mut(&id) {
                q.armed = false;
            }
        });
        drain(id);
        ffi::GFALSE
    }
    let ms = at.saturating_duration_since(Instant::now()).as_millis() as ffi::guint + 1;
    // SAFETY: on the purple thread; the data is a plain account id.
    unsafe { ffi::g_timeout_add(ms, Some(fire), id as usize as ffi::gpointer) };
}

/// Hands the IRC plugin's queue to the network now.
fn kick(account: Account) {
    if account.protocol_id() == IRC {
        if let Some(gc) = account.connection() {
            gc.kick_irc_send_queue();
        }
    }
}

/// Forgets the queue of a removed account; its queued lines are reported
/// as not sent.
pub(crate) fn forget(id: i64) {
    fail_all(id, "not sent: the account was removed");
}

/// Empties an account's queue, reporting each announced line not sent.
fn fail_all(id: i64, why: &str) {
    let lines = state::with(|s| s.send_queues.remove(&id)).map(|q| q.lines);
    for line in lines.into_iter().flatten() {
        if let Some(message) = line.seq {
            events::emit(Event::MessageSent {
                account: id,
                conversation: ConvRef {
                    kind: line.kind,
                    name: line.name,
                },
                message,
                error: Some(why.to_owned()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn required_arguments_come_from_the_usage() {
        assert_eq!(
            super::required_args("kick <nick> [message]:  Remove someone"),
            1
        );
        assert_eq!(
            super::required_args("msg <nick> <message>:  Send a message"),
            2
        );
        assert_eq!(super::required_args("part [room] [message]:  Leave"), 0);
        assert_eq!(super::required_args(""), 0);
    }
}
