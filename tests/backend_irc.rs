//! The backend against a real IRC server (ngircd on loopback).
mod backend_support;

use backend_support::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn irc_sign_on_join_topic_members_receive_send_history_search() {
    let irc = Ngircd::start();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({})).await;
    assert_eq!(hello["protocol"], 2);
    assert!(hello["accounts"].as_array().unwrap().is_empty());

    // The other person is already in the channel, with a topic.
    let mut bob = IrcPeer::connect(irc.port, "bob").await;
    bob.send("JOIN #sapphire").await;
    bob.expect(" 366 ").await;
    bob.send("TOPIC #sapphire :Welcome to the test").await;
    bob.expect("TOPIC").await;

    let alice = add_irc_account(&mut c, irc.port, "alice").await;
    c.ok("chat.join", json!({"account": alice, "name": "#sapphire"}))
        .await;
    c.event_op(
        "chat.joined",
        json!({"account": alice, "conversation": chat("#sapphire")}),
    )
    .await;
    c.event_op(
        "chat.topic",
        json!({"conversation": chat("#sapphire"), "topic": "Welcome to the test"}),
    )
    .await;
    c.event("members include bob", |e| {
        e["op"] == "chat.members"
            && e["added"]
                .as_array()
                .is_some_and(|a| a.iter().any(|m| m["name"] == "bob"))
    })
    .await;
    bob.expect("JOIN").await; // bob sees alice join

    // Receive.
    bob.send("PRIVMSG #sapphire :hello <alice> & welcome").await;
    let m = c
        .event_op(
            "message",
            json!({"conversation": chat("#sapphire"), "direction": "in"}),
        )
        .await;
    assert_eq!(m["sender"], "bob", "{m}");
    assert_eq!(m["text"], "hello <alice> & welcome");
    assert_eq!(m["mention"], true, "alice is named: {m}");
    let in_seq = m["seq"].as_u64().unwrap();

    // Send.
    let r = c
        .ok(
            "conversation.send",
            json!({"account": alice, "conversation": chat("#sapphire"), "text": "hi bob, 1 < 2"}),
        )
        .await;
    let out_seq = r["seq"].as_u64().expect("reply carries the message seq");
    let line = bob.expect("PRIVMSG #sapphire").await;
    assert!(line.contains(":hi bob, 1 < 2"), "{line}");
    let m = c
        .event_op(
            "message",
            json!({"direction": "out", "text": "hi bob, 1 < 2"}),
        )
        .await;
    assert_eq!(m["seq"].as_u64(), Some(out_seq));

    // Hostile text: invalid UTF-8 and control characters arrive as a
    // message with valid text, and are stored and searchable.
    bob.send_bytes(b"PRIVMSG #sapphire :broken \xff\xfe\x07 bytes \x1b[31m here")
        .await;
    let m = c
        .event("hostile message", |e| {
            e["op"] == "message" && e["text"].as_str().is_some_and(|t| t.contains("broken"))
        })
        .await;
    let t = m["text"].as_str().unwrap();
    assert!(t.contains("bytes") && t.contains("here"), "{t}");
    assert_eq!(m["mention"], Value::Null, "not a mention: {m}");
    let s = c.ok("search", json!({"query": "broken"})).await;
    assert_eq!(s["messages"][0]["seq"], m["seq"]);
    let hostile_seq = m["seq"].as_u64().unwrap();

    // Topic changes (ours reach the server) and membership changes.
    c.ok(
        "chat.topic",
        json!({"account": alice, "name": "#sapphire", "topic": "Set by alice"}),
    )
    .await;
    let line = bob.expect("TOPIC #sapphire").await;
    assert!(line.contains(":Set by alice"), "{line}");
    c.event_op("chat.topic", json!({"topic": "Set by alice"}))
        .await;
    bob.send("TOPIC #sapphire :New topic").await;
    c.event_op("chat.topic", json!({"topic": "New topic", "by": "bob"}))
        .await;
    bob.send("PART #sapphire :bye").await;
    c.event("bob removed", |e| {
        e["op"] == "chat.members"
            && e["removed"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("bob")))
    })
    .await;

    // A private message opens an IM conversation.
    bob.send("PRIVMSG alice :psst").await;
    let m = c
        .event_op(
            "message",
            json!({"conversation": {"kind": "im"}, "text": "psst"}),
        )
        .await;
    assert_eq!(m["sender"], "bob");

    // History, search, unread and read markers.
    let h = c
        .ok(
            "history",
            json!({"account": alice, "conversation": chat("#sapphire"), "limit": 50}),
        )
        .await;
    let texts: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] != "system")
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[..2], ["hello <alice> & welcome", "hi bob, 1 < 2"]);
    let s = c.ok("search", json!({"query": "hello"})).await;
    let found: Vec<u64> = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(found, [in_seq]);

    // A second client sees the snapshot: account connected, chat with
    // topic and members, unread count.
    let mut c2 = backend.connect().await;
    let hello = c2.ok("hello", json!({})).await;
    let acc = &hello["accounts"][0];
    assert_eq!(acc["status"], "connected");
    assert_eq!(acc["protocol"], "prpl-irc");
    let ch = hello["chats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation"]["name"] == "#sapphire")
        .expect("joined chat in snapshot");
    assert_eq!(ch["topic"], "New topic");
    assert!(ch["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "alice"));
    let conv = |hello: &Value| {
        hello["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["conversation"]["name"] == "#sapphire")
            .cloned()
            .unwrap()
    };
    assert_eq!(conv(&hello)["unread"], 2);
    c2.ok(
        "mark_read",
        json!({"account": alice, "conversation": chat("#sapphire"), "seq": hostile_seq}),
    )
    .await;
    // Both clients see the read marker.
    for client in [&mut c, &mut c2] {
        client
            .event_op(
                "read",
                json!({"conversation": chat("#sapphire"), "read_seq": hostile_seq}),
            )
            .await;
    }
    let mut c3 = backend.connect().await;
    let hello = c3.ok("hello", json!({})).await;
    assert_eq!(conv(&hello)["unread"], 0);

    // Leaving.
    c.ok("chat.leave", json!({"account": alice, "name": "#sapphire"}))
        .await;
    c.event_op("chat.left", json!({"conversation": chat("#sapphire")}))
        .await;
    let r = c
        .request(
            "conversation.send",
            json!({"account": alice, "conversation": chat("#sapphire"), "text": "x"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "not_joined");

    // Away status reaches the server: bob is told alice is away.
    c.ok(
        "status.set",
        json!({"status": "away", "message": "gone fishing"}),
    )
    .await;
    c.event_op("status", json!({"status": "away"})).await;
    let mut c4 = backend.connect().await;
    let hello = c4.ok("hello", json!({})).await;
    assert_eq!(
        hello["status"],
        json!({"status": "away", "message": "gone fishing"})
    );
    // (ngircd throttles alice's commands: her AWAY may take a while.)
    let mut away = None;
    for _ in 0..20 {
        bob.send("PRIVMSG alice :are you there?").await;
        away = bob
            .expect_within(" 301 ", Duration::from_millis(1000))
            .await;
        if away.is_some() {
            break;
        }
    }
    let line = away.expect("bob is never told alice is away");
    assert!(line.contains("gone fishing"), "{line}");
}

#[tokio::test]
async fn protocols_lists_plugins_with_their_options() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    let r = c.ok("protocols", json!({})).await;
    let protocols = r["protocols"].as_array().unwrap();
    let irc = protocols
        .iter()
        .find(|p| p["id"] == "prpl-irc")
        .expect("IRC plugin");
    let port = irc["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["setting"] == "port")
        .expect("port option");
    assert_eq!(port["type"], "int");
    assert_eq!(port["default"], 6667);
    assert!(protocols.iter().any(|p| p["id"] == "prpl-jabber"));
    assert_eq!(irc["user_splits"][0]["separator"], "@");
    // only string options say whether they are masked; asking libpurple
    // about the others fills the admin's log with GLib criticals
    assert_eq!(port["masked"], false);
    let log = backend.log();
    assert!(!log.contains("CRITICAL"), "{log}");
}

#[tokio::test]
async fn when_the_server_goes_away_the_account_reconnects_by_itself() {
    let irc = Ngircd::start();
    let port = irc.port;
    let (_dir, _backend, mut c) = fresh_backend().await;
    let alice = add_irc_account(&mut c, port, "alice").await;
    c.ok("chat.join", json!({"account": alice, "name": "#back"}))
        .await;
    c.event_op("chat.joined", json!({"conversation": chat("#back")}))
        .await;

    drop(irc); // the server dies
    let e = c
        .event("account error", |e| {
            e["op"] == "account.status"
                && e["account"] == alice
                && (e["status"] == "error" || e["status"] == "disconnected")
        })
        .await;
    assert!(
        e["status"] == "disconnected" || e["message"].is_string(),
        "{e}"
    );

    c.event_op("chat.left", json!({"conversation": chat("#back")}))
        .await;

    let _irc = Ngircd::start_on(port); // and comes back
    c.account_status(alice, "connected").await;
    // and the chat is joined again.
    c.event_op("chat.joined", json!({"conversation": chat("#back")}))
        .await;
}

#[tokio::test]
async fn a_nick_taken_at_sign_on_is_shown_with_the_nick_we_got() {
    let irc = Ngircd::start();
    let (_dir, backend, mut c) = fresh_backend().await;
    // Someone else has "carol" already.
    let _other = IrcPeer::connect(irc.port, "carol").await;
    let carol = add_irc_account(&mut c, irc.port, "carol").await;
    let updated = c
        .event_op(
            "account.updated",
            json!({"account": carol, "info": {"nick": "carol1"}}),
        )
        .await;
    assert_eq!(updated["info"]["username"], "carol@127.0.0.1");
    let line = c
        .event_op(
            "message",
            json!({"account": carol, "conversation": {"kind": "im", "name": "127.0.0.1"},
                   "direction": "system"}),
        )
        .await;
    assert!(line["text"].as_str().unwrap().contains("carol1"), "{line}");
    let hello = backend.connect().await.ok("hello", json!({})).await;
    assert_eq!(hello["accounts"][0]["nick"], "carol1", "{hello}");
    assert_eq!(hello["conversations"][0]["unread"], 0, "{hello}");
}

/// `hello` carries the newest `hello_conversations` conversations (2
/// here, 500 by default) and a cursor; `conversations.list` pages through
/// the rest, newest first, each exactly once (issue #10: a snapshot that
/// strangers grow past the frame limit locks the user out).
#[tokio::test]
async fn hello_carries_the_newest_conversations_and_a_cursor_to_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("backend.toml");
    std::fs::write(&conf, "hello_conversations = 2\n").unwrap();
    let irc = Ngircd::start();
    let backend = Backend::start_with_args(dir.path(), &["--config", conf.to_str().unwrap()]);
    let mut c = backend.connect().await;
    c.ok("hello", json!({})).await;
    let id = add_irc_account(&mut c, irc.port, "pager").await;
    let nicks = ["p0", "p1", "p2", "p3", "p4"];
    for n in nicks {
        c.ok(
            "conversation.send",
            json!({"account": id, "conversation": {"kind": "im", "name": n}, "text": "hi"}),
        )
        .await;
        c.event_op(
            "message",
            json!({"conversation": {"kind": "im", "name": n}, "direction": "out"}),
        )
        .await;
    }
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({})).await;
    let names = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["conversation"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut seen = names(&hello["conversations"]);
    assert_eq!(seen, ["p4", "p3"], "{hello}");
    let mut next = hello["conversations_next"].clone();
    while let Some(cursor) = next.as_str() {
        let page = c
            .ok("conversations.list", json!({"before": cursor, "limit": 2}))
            .await;
        seen.extend(names(&page["conversations"]));
        next = page["next"].clone();
    }
    assert_eq!(seen, ["p4", "p3", "p2", "p1", "p0"]);
    let r = c
        .request("conversations.list", json!({"before": "nonsense"}))
        .await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    // Without a cursor: from the newest.
    let all = c.ok("conversations.list", json!({})).await;
    assert_eq!(names(&all["conversations"]).len(), 5);
    assert_eq!(all["next"], serde_json::Value::Null);
}
