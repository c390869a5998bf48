//! What you type does what you meant (issue #12): slash commands through
//! libpurple's command table, actions both ways, `//` escapes, unknown
//! commands send nothing, long lines split at words, `#` added on join —
//! checked on the network side with a real ngircd and a raw IRC peer.
mod backend_support;

use backend_support::*;
use serde_json::{json, Value};

fn code(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "{v}");
    v["error"]["code"].as_str().unwrap()
}

async fn send(c: &mut Client, account: i64, conv: Value, text: &str) -> Value {
    c.request(
        "conversation.send",
        json!({"account": account, "conversation": conv, "text": text}),
    )
    .await
}

/// The next channel line bob sees is `marker`: nothing else reached the
/// channel since the last check.
async fn channel_is_quiet_until(c: &mut Client, bob: &mut IrcPeer, alice: i64, marker: &str) {
    let r = send(c, alice, chat("#sapphire"), marker).await;
    assert_eq!(r["ok"], true, "{r}");
    let line = bob.expect("PRIVMSG #sapphire").await.trim_end().to_owned();
    assert!(
        line.ends_with(&format!(":{marker}")),
        "the channel got: {line}"
    );
}

/// `alice` joins `name` (`channel` on IRC), and `bob`, who is in it, sees
/// her come; returns the `chat.join` reply.
async fn join_seen_by(
    c: &mut Client,
    bob: &mut IrcPeer,
    alice: i64,
    name: &str,
    channel: &str,
) -> Value {
    let r = c
        .ok("chat.join", json!({"account": alice, "name": name}))
        .await;
    c.event_op("chat.joined", json!({"conversation": chat(channel)}))
        .await;
    bob.expect("JOIN").await;
    r
}

#[tokio::test]
async fn slash_commands_do_what_they_say_and_nothing_else_reaches_the_channel() {
    let irc = Ngircd::start();
    let (_dir, _backend, mut c) = fresh_backend().await;
    let mut bob = IrcPeer::in_channel(irc.port, "bob", "#sapphire").await;
    let alice = add_irc_account(&mut c, irc.port, "alice").await;
    join_seen_by(&mut c, &mut bob, alice, "#sapphire", "#sapphire").await;

    // /me: a CTCP ACTION on the wire, an action in the history.
    let r = send(&mut c, alice, chat("#sapphire"), "/me waves").await;
    assert_eq!(r["ok"], true, "{r}");
    let line = bob.expect("PRIVMSG #sapphire").await.trim_end().to_owned();
    // (IrcPeer shows control characters stripped: on the wire it is
    // "\x01ACTION waves\x01".)
    assert!(
        line.trim_end().ends_with(":ACTION waves") || line.contains("\u{1}ACTION waves"),
        "{line:?}"
    );
    let m = c
        .event_op("message", json!({"direction": "out", "action": true}))
        .await;
    assert_eq!(m["text"], "waves", "{m}");

    // An incoming action is flagged and loses its prefix.
    bob.send("PRIVMSG #sapphire :\u{1}ACTION dances\u{1}").await;
    let m = c
        .event_op("message", json!({"direction": "in", "sender": "bob"}))
        .await;
    assert_eq!(
        (m["text"].clone(), m["action"].clone()),
        (json!("dances"), json!(true)),
        "{m}"
    );

    // /msg goes to bob alone, never to the channel.
    let r = send(&mut c, alice, chat("#sapphire"), "/msg bob IDENTIFY secret").await;
    assert_eq!(r["ok"], true, "{r}");
    let line = bob.expect("PRIVMSG bob").await.trim_end().to_owned();
    assert!(line.ends_with(":IDENTIFY secret"), "{line}");
    channel_is_quiet_until(&mut c, &mut bob, alice, "after msg").await;

    // An unknown command is refused and sends nothing.
    let r = send(&mut c, alice, chat("#sapphire"), "/nosuch thing").await;
    assert_eq!(code(&r), "unknown_command");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("/nosuch") && msg.contains("//"), "{msg}");
    channel_is_quiet_until(&mut c, &mut bob, alice, "after nosuch").await;

    // Wrong arguments: libpurple's help, nothing sent.
    for t in ["/kick", "/msg bob", "/me"] {
        let r = send(&mut c, alice, chat("#sapphire"), t).await;
        assert_eq!(code(&r), "bad_command", "{t}: {r}");
        let help = r["error"]["message"].as_str().unwrap();
        assert!(help.contains('<'), "{t}: the help shows the usage: {help}");
    }
    channel_is_quiet_until(&mut c, &mut bob, alice, "after kick").await;

    // `//` sends the text with one slash.
    let r = send(&mut c, alice, chat("#sapphire"), "//etc/motd is where").await;
    assert_eq!(r["ok"], true, "{r}");
    let line = bob.expect("PRIVMSG #sapphire").await.trim_end().to_owned();
    assert!(line.ends_with(":/etc/motd is where"), "{line}");

    // /topic sets the topic.
    let r = send(
        &mut c,
        alice,
        chat("#sapphire"),
        "/topic Typed, not clicked",
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let line = bob.expect("TOPIC #sapphire").await.trim_end().to_owned();
    assert!(line.ends_with(":Typed, not clicked"), "{line}");

    // /query opens a conversation and says which.
    let r = send(&mut c, alice, chat("#sapphire"), "/query bob").await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["opened"], json!({"kind": "im", "name": "bob"}), "{r}");

    // /nick changes the nick on the server.
    let r = send(&mut c, alice, chat("#sapphire"), "/nick alicia").await;
    assert_eq!(r["ok"], true, "{r}");
    let line = bob.expect("NICK").await.trim_end().to_owned();
    assert!(
        line.starts_with(":alice!") && line.ends_with("alicia"),
        "{line}"
    );

    // The commands available here, with help, for completion.
    let list = c
        .ok(
            "commands",
            json!({"account": alice, "conversation": chat("#sapphire")}),
        )
        .await;
    let names: Vec<&str> = list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in [
        "me", "msg", "query", "join", "part", "topic", "nick", "whois", "kick",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let me = list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "me")
        .unwrap();
    assert!(!me["help"].as_str().unwrap().is_empty(), "{me}");
}

#[tokio::test]
async fn long_lines_are_split_at_words_and_join_adds_the_hash() {
    let irc = Ngircd::start();
    let (_dir, _backend, mut c) = fresh_backend().await;
    let mut bob = IrcPeer::in_channel(irc.port, "bob", "#nohash").await;
    let alice = add_irc_account(&mut c, irc.port, "alice").await;

    // "nohash" is "#nohash" on IRC.
    let r = join_seen_by(&mut c, &mut bob, alice, "nohash", "#nohash").await;
    assert_eq!(r["name"], "#nohash");

    // 1,401 characters: cut at words into lines the server keeps whole.
    let words: Vec<String> = (0..300).map(|i| format!("w{i:03}")).collect();
    let mut text = words.join(" ");
    text.truncate(1401);
    let text = text.trim_end().to_owned();
    let r = send(&mut c, alice, chat("#nohash"), &text).await;
    assert_eq!(r["ok"], true, "{r}");
    let lines = r["lines"].as_u64().unwrap();
    assert!(lines >= 4, "{r}");
    let mut got = Vec::new();
    for _ in 0..lines {
        let line = bob.expect("PRIVMSG #nohash").await.trim_end().to_owned();
        let body = line.split_once(" :").unwrap().1.to_owned();
        assert!(line.len() <= 510, "{} bytes: {line}", line.len());
        got.push(body);
    }
    assert_eq!(got.join(" "), text, "words lost or cut");
}

/// The body of a `PRIVMSG` line.
fn body(line: &str) -> String {
    line.trim_end().split_once(" :").unwrap().1.to_owned()
}

#[tokio::test]
async fn a_paste_shows_queued_lines_then_sent_and_arrives_whole_in_order() {
    let irc = Ngircd::start();
    let (_dir, _backend, mut c) = fresh_backend().await;
    let mut bob = IrcPeer::in_channel(irc.port, "bob", "#paste").await;
    let alice = add_irc_account(&mut c, irc.port, "alice").await;
    // The account object tells clients the pace.
    let a = c.event_op("account.added", json!({"account": alice})).await;
    assert_eq!(
        a["info"]["pacing"],
        json!({"burst": 10, "interval_ms": 2000}),
        "{a}"
    );
    join_seen_by(&mut c, &mut bob, alice, "#paste", "#paste").await;

    // A burst of 5 lines goes at once: nothing waits.
    let burst: Vec<String> = (1..=5).map(|i| format!("burst {i}")).collect();
    let r = send(&mut c, alice, chat("#paste"), &burst.join("\n")).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        (r["lines"].clone(), r["queued"].clone()),
        (json!(5), json!(0))
    );
    assert_eq!(r["delivered_in_ms"], 0, "{r}");
    for want in &burst {
        let m = c
            .event_op("message", json!({"direction": "out", "text": want}))
            .await;
        assert!(m.get("queued").is_none(), "sent at once: {m}");
        assert_eq!(body(&bob.expect("PRIVMSG #paste").await), *want);
    }

    // A private line that goes at once, for comparison below.
    let r = send(
        &mut c,
        alice,
        json!({"kind": "im", "name": "bob"}),
        "direct",
    )
    .await;
    assert!(r["seq"].is_u64(), "{r}");
    let direct = c
        .event_op("message", json!({"direction": "out", "text": "direct"}))
        .await;

    // A 20-line paste with a long line: what the pace holds back is shown
    // as queued at once, then each is sent, in order.
    let long = (0..120)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut paste: Vec<String> = (1..=19).map(|i| format!("line {i:02}")).collect();
    paste.insert(9, long.clone());
    let r = send(&mut c, alice, chat("#paste"), &paste.join("\n")).await;
    assert_eq!(r["ok"], true, "{r}");
    let lines = r["lines"].as_u64().unwrap() as usize;
    let queued = r["queued"].as_u64().unwrap() as usize;
    assert!(lines > 20, "the long line was split: {r}");
    // (the burst of 10 minus the 5 just spent goes at once)
    assert!(
        queued > 0 && queued + 10 >= lines,
        "the pace holds the rest back: {r}"
    );
    assert!(r["delivered_in_ms"].as_u64().unwrap() > 0, "{r}");
    // A private line now waits behind the paste, shown with the names its
    // echo would have had.
    let r = send(
        &mut c,
        alice,
        json!({"kind": "im", "name": "bob"}),
        "waiting",
    )
    .await;
    assert!(r["queued"].as_u64() >= Some(1), "{r}");
    let waiting_im = c
        .event_op("message", json!({"direction": "out", "text": "waiting"}))
        .await;
    assert_eq!(waiting_im["queued"], true, "{waiting_im}");
    assert_eq!(
        (&waiting_im["sender"], &waiting_im["alias"]),
        (&direct["sender"], &direct["alias"]),
        "{direct} {waiting_im}"
    );

    // Its message events, in order: the first go at once, the rest queued.
    let mut texts = Vec::new();
    let mut waiting = Vec::new();
    let mut sender = None;
    for i in 0..lines {
        let m = c
            .event("an outgoing line", |e| {
                e["op"] == "message"
                    && e["direction"] == "out"
                    && e["conversation"] == chat("#paste")
                    && !e["text"].as_str().unwrap().starts_with("burst")
            })
            .await;
        texts.push(m["text"].as_str().unwrap().to_owned());
        let s = m["sender"].as_str().unwrap().to_owned();
        assert_eq!(sender.get_or_insert(s.clone()), &s, "one sender: {m}");
        if i < lines - queued {
            assert!(m.get("queued").is_none(), "{m}");
        } else {
            assert_eq!(m["queued"], true, "{m}");
            waiting.push(m["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(texts.join(" "), paste.join(" "), "split at words, in order");
    assert_eq!(texts.concat().matches("word").count(), 120);

    // The history says so too, while the last line waits.
    let h = c
        .ok(
            "history",
            json!({"account": alice, "conversation": chat("#paste"), "limit": 1}),
        )
        .await;
    assert_eq!(h["messages"][0]["queued"], true, "{h}");

    // The raw IRC peer gets every line whole, in order; each queued line
    // gets its `message.sent` in order.
    let mut got = Vec::new();
    for _ in 0..lines {
        let line = bob.expect("PRIVMSG #paste").await;
        assert!(line.trim_end().len() <= 510, "{line}");
        got.push(body(&line));
    }
    assert_eq!(got, texts);
    waiting.push(waiting_im["seq"].as_u64().unwrap());
    for want in &waiting {
        let e = c.event_op("message.sent", json!({})).await;
        assert_eq!(e["message"].as_u64(), Some(*want), "{e}");
        assert!(e.get("error").is_none(), "{e}");
    }
    let line = bob.expect("PRIVMSG bob").await;
    assert_eq!(body(&line), "waiting");
    let h = c
        .ok(
            "history",
            json!({"account": alice, "conversation": chat("#paste"), "limit": 1}),
        )
        .await;
    assert!(h["messages"][0].get("queued").is_none(), "{h}");

    // Lines still queued when the account goes offline are reported not
    // sent (libpurple would drop them without a word).
    let r = send(&mut c, alice, chat("#paste"), "late one\nlate two").await;
    assert_eq!(r["queued"], 2, "the pace is spent: {r}");
    let mut late = Vec::new();
    for _ in 0..2 {
        let m = c
            .event_op("message", json!({"direction": "out", "queued": true}))
            .await;
        late.push(m["seq"].as_u64().unwrap());
    }
    c.ok(
        "account.set_enabled",
        json!({"account": alice, "enabled": false}),
    )
    .await;
    for want in late {
        let e = c.event_op("message.sent", json!({"message": want})).await;
        let why = e["error"].as_str().unwrap_or_default();
        assert!(why.contains("offline"), "{e}");
    }
}

#[tokio::test]
async fn ctcp_requests_are_answered_not_shown_and_refused_joins_say_why() {
    let irc = Ngircd::start();
    let (_dir, _backend, mut c) = fresh_backend().await;
    let mut bob = IrcPeer::connect(irc.port, "bob").await;
    let alice = add_irc_account(&mut c, irc.port, "alice").await;

    // A stranger's CTCP VERSION: libpurple answers it, nobody sees it.
    bob.send("PRIVMSG alice :\u{1}VERSION\u{1}").await;
    let reply = bob.expect("NOTICE bob").await;
    assert!(reply.contains("VERSION"), "{reply}");
    bob.send("PRIVMSG alice :\u{1}TIME\u{1}").await;
    bob.send("PRIVMSG alice :after the probes").await;
    let m = c
        .event_op("message", json!({"direction": "in", "sender": "bob"}))
        .await;
    assert_eq!(m["text"], "after the probes", "the CTCP was shown: {m}");

    // Joins the server refuses answer chat.join_failed with its reason,
    // once (no second error notice), and are not remembered.
    bob.join("#club").await;
    bob.send("MODE #club +i").await;
    bob.expect("MODE #club").await;
    bob.join("#locked").await;
    bob.send("MODE #locked +k sesame").await;
    bob.expect("MODE #locked").await;
    for (name, mode) in [("#club", "+i"), ("#locked", "+k")] {
        let r = c
            .ok("chat.join", json!({"account": alice, "name": name}))
            .await;
        assert_eq!(r["name"], name);
        let e = c
            .event_op("chat.join_failed", json!({"conversation": chat(name)}))
            .await;
        let why = e["message"].as_str().unwrap();
        assert!(why.contains(mode), "{name}: {e}");
    }
    // The right key joins.
    c.ok(
        "chat.join",
        json!({"account": alice, "name": "#locked", "fields": {"password": "sesame"}}),
    )
    .await;
    c.event_op("chat.joined", json!({"conversation": chat("#locked")}))
        .await;
    let notices: Vec<&Value> = c.events.iter().filter(|e| e["op"] == "notice").collect();
    assert!(
        notices.is_empty(),
        "the refusal was told twice: {notices:?}"
    );
    // The pace is the account's: its options set the burst and interval
    // (libpurple's own queue stays off), at once.
    let r = c
        .ok(
            "account.update",
            json!({"account": alice, "options": {"ratelimit-burst": 2, "ratelimit-interval": 1}}),
        )
        .await;
    assert_eq!(
        r["account"]["pacing"],
        json!({"burst": 2, "interval_ms": 1000}),
        "{r}"
    );
    assert_eq!(r["account"]["options"]["ratelimit-interval"], 1, "{r}");
    let r = send(&mut c, alice, chat("#locked"), "p1\np2\np3\np4").await;
    assert_eq!(
        (r["queued"].clone(), r["delivered_in_ms"].clone()),
        (json!(2), json!(2000)),
        "{r}"
    );
    for want in ["p1", "p2", "p3", "p4"] {
        assert_eq!(body(&bob.expect("PRIVMSG #locked").await), want);
    }

    // Not remembered: leaving it finds nothing to forget.
    let r = c
        .request("chat.leave", json!({"account": alice, "name": "#club"}))
        .await;
    assert_eq!(code(&r), "not_joined", "the refused chat was remembered");
}
