//! Reading IRC lines the backend looks at itself (pure logic, no
//! libpurple): the numerics that refuse a join, and CTCP requests (which
//! are answered by libpurple but not shown).
//!
//! libpurple's IRC plugin reports most refused joins as a global error
//! pop-up (`purple_notify_error`: 403, 473, 474, 477) and some not at all
//! (471, 475 reach no conversation and only its debug log), so the
//! backend reads the raw line (the plugin's `irc-receiving-text` signal)
//! and answers the join itself with `chat.join_failed` (`docs/irc.md`).

/// Numerics that mean "you cannot join that channel": no such channel
/// (403), too many channels (405), temporarily unavailable (437), full
/// (471), invite only (473), banned (474), wrong key (475), registered
/// nicks only (477), TLS only (489).
const JOIN_REFUSALS: &[&str] = &[
    "403", "405", "437", "471", "473", "474", "475", "477", "489",
];

/// Of [`JOIN_REFUSALS`], those libpurple 2.14 also reports as an error
/// pop-up (`irc_msg_nochan`, `irc_msg_unavailable`, `irc_msg_inviteonly`,
/// `irc_msg_banned`, `irc_msg_regonly`); the others only reach its debug
/// log.
const LIBPURPLE_POPS_UP: &[&str] = &["403", "437", "473", "474", "477"];

/// A join the server refused.
#[derive(Debug, PartialEq, Eq)]
pub struct JoinRefusal {
    pub channel: String,
    /// The server's reason, with the numeric.
    pub reason: String,
    /// libpurple shows its own error notification for it too.
    pub libpurple_notifies: bool,
}

/// A refused join in a raw server line
/// (`:server 473 me #chan :Cannot join channel (+i)`).
pub fn join_refusal(line: &str) -> Option<JoinRefusal> {
    let line = line.trim_end_matches(['\r', '\n']);
    let rest = line.strip_prefix(':')?;
    let (_prefix, rest) = rest.split_once(' ')?;
    let (numeric, rest) = rest.split_once(' ')?;
    if !JOIN_REFUSALS.contains(&numeric) {
        return None;
    }
    let (_me, rest) = rest.split_once(' ')?;
    let (channel, reason) = match rest.split_once(' ') {
        Some((c, r)) => (c, r.strip_prefix(':').unwrap_or(r)),
        None => (rest, ""),
    };
    if !channel.starts_with(['#', '&', '+', '!']) {
        return None;
    }
    let reason = if reason.is_empty() {
        format!("cannot join {channel} (IRC {numeric})")
    } else {
        format!("{reason} ({numeric})")
    };
    Some(JoinRefusal {
        channel: channel.to_owned(),
        reason,
        libpurple_notifies: LIBPURPLE_POPS_UP.contains(&numeric),
    })
}

/// The CTCP request (`VERSION`, `PING`, `TIME`, …) in a raw `PRIVMSG`
/// line, if it is one: a body between `\x01`, other than `ACTION` (an
/// action is a message) and `DCC` (libpurple's own file offers). libpurple
/// answers VERSION and PING itself with a `NOTICE`, then turns the request
/// into a message "Received CTCP 'VERSION' (to alice) from bob".
pub fn ctcp_request(line: &str) -> Option<String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let rest = line.strip_prefix(':')?;
    let (_prefix, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("PRIVMSG ")?;
    let (_target, body) = rest.split_once(" :")?;
    let body = body.strip_prefix('\u{1}')?;
    let word: String = body
        .split([' ', '\u{1}'])
        .next()
        .unwrap_or("")
        .chars()
        .take(32)
        .collect();
    if word.is_empty() || word == "ACTION" || word == "DCC" {
        return None;
    }
    Some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(channel: &str, reason: &str, notifies: bool) -> Option<JoinRefusal> {
        Some(JoinRefusal {
            channel: channel.into(),
            reason: reason.into(),
            libpurple_notifies: notifies,
        })
    }

    #[test]
    fn refused_joins_name_the_channel_and_the_reason() {
        assert_eq!(
            join_refusal(":irc.local 473 alice #club :Cannot join channel (+i)\r\n"),
            refusal("#club", "Cannot join channel (+i) (473)", true)
        );
        assert_eq!(
            join_refusal(":irc.local 475 alice #k :Cannot join channel (+k)"),
            refusal("#k", "Cannot join channel (+k) (475)", false)
        );
        assert_eq!(
            join_refusal(":s 403 alice #x"),
            refusal("#x", "cannot join #x (IRC 403)", true)
        );
    }

    #[test]
    fn other_lines_are_not_refusals() {
        for l in [
            ":s 366 alice #x :End of NAMES list",
            ":bob!b@h PRIVMSG #x :473 alice #y :no",
            ":s 401 alice bob :No such nick",
            ":s 403 alice",
            "PING :s",
            "",
        ] {
            assert_eq!(join_refusal(l), None, "{l}");
        }
    }

    #[test]
    fn ctcp_requests_are_recognised() {
        let r = |l: &str| ctcp_request(l);
        assert_eq!(
            r(":bob!b@h PRIVMSG alice :\u{1}VERSION\u{1}").as_deref(),
            Some("VERSION")
        );
        assert_eq!(
            r(":bob!b@h PRIVMSG #c :\u{1}PING 123\u{1}\r\n").as_deref(),
            Some("PING")
        );
        assert_eq!(r(":bob!b@h PRIVMSG alice :\u{1}ACTION waves\u{1}"), None);
        assert_eq!(
            r(":bob!b@h PRIVMSG alice :\u{1}DCC SEND f 1 2 3\u{1}"),
            None
        );
        assert_eq!(r(":bob!b@h PRIVMSG alice :hello \u{1}VERSION\u{1}"), None);
        assert_eq!(r(":bob!b@h NOTICE alice :\u{1}VERSION x\u{1}"), None);
    }
}
