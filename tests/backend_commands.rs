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

#[tokio::test]
async fn slash_commands_do_what_they_say_and_nothing_else_reaches_the_channel() {
    let irc = Ngircd::start();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    c.ok("hello", json!({})).await;
    let mut bob = IrcPeer::connect(irc.port, "bob").await;
    bob.send("JOIN #sapphire").await;
    bob.expect(" 366 ").await;
    let alice = add_irc_account(&mut c, irc.port, "alice").await;
    c.ok("chat.join", json!({"account": alice, "name": "#sapphire"}))
        .await;
    c.event_op("chat.joined", json!({"conversation": chat("#sapphire")}))
        .await;
    bob.expect("JOIN").await;

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
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    c.ok("hello", json!({})).await;
    let mut bob = IrcPeer::connect(irc.port, "bob").await;
    bob.send("JOIN #nohash").await;
    bob.expect(" 366 ").await;
    let alice = add_irc_account(&mut c, irc.port, "alice").await;

    // "nohash" is "#nohash" on IRC.
    let r = c
        .ok("chat.join", json!({"account": alice, "name": "nohash"}))
        .await;
    assert_eq!(r["name"], "#nohash");
    c.event_op("chat.joined", json!({"conversation": chat("#nohash")}))
        .await;
    bob.expect("JOIN").await;

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
