//! Notification levels and highlight words: backend state, synced to
//! every client, kept across restarts, and highlight words make mentions.
mod backend_support;

use backend_support::*;
use serde_json::json;

#[tokio::test]
async fn levels_sync_persist_and_highlights_mark_mentions() {
    let irc = Ngircd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(dir.path());
    let mut a = backend.connect().await;
    let hello = a.ok("hello", json!({})).await;
    assert_eq!(hello["notify"], json!({"levels": [], "highlights": []}));
    let mut b = backend.connect().await;
    b.ok("hello", json!({})).await;

    let alice = add_irc_account(&mut a, irc.port, "alice").await;
    // Defaults: chats notify on mentions, IMs on everything.
    let g = a
        .ok(
            "notify.get",
            json!({"account": alice, "conversation": chat("#x")}),
        )
        .await;
    assert_eq!(g["level"], "mentions");
    let g = a
        .ok(
            "notify.get",
            json!({"account": alice, "conversation": {"kind": "im", "name": "bob"}}),
        )
        .await;
    assert_eq!(g["level"], "all");

    // A level set by one client is an event every client sees.
    a.ok(
        "notify.set",
        json!({"account": alice, "conversation": chat("#sapphire"), "level": "none"}),
    )
    .await;
    let e = b.event_op("notify.changed", json!({})).await;
    assert_eq!(
        e["levels"],
        json!([{"account": alice, "conversation": chat("#sapphire"), "level": "none"}])
    );
    a.ok(
        "notify.set",
        json!({"highlights": ["Sapphire", "sapphire", "rust"]}),
    )
    .await;
    let e = b
        .event("highlights", |e| {
            e["op"] == "notify.changed" && !e["highlights"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(e["highlights"], json!(["Sapphire", "rust"]));

    // Bad input gets precise errors.
    let r = a.request("notify.set", json!({"level": "loud"})).await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    let r = a
        .request(
            "notify.set",
            json!({"conversation": chat("#a"), "level": "all"}),
        )
        .await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    let r = a.request("notify.set", json!({})).await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");

    // A highlight word is a mention; a longer word containing it is not.
    let mut bob = IrcPeer::connect(irc.port, "bob").await;
    bob.send("JOIN #sapphire").await;
    bob.expect(" 366 ").await;
    a.ok("chat.join", json!({"account": alice, "name": "#sapphire"}))
        .await;
    a.event_op("chat.joined", json!({"conversation": chat("#sapphire")}))
        .await;
    bob.expect("JOIN").await;
    bob.send("PRIVMSG #sapphire :rustacean talk").await;
    let m = a
        .event_op("message", json!({"text": "rustacean talk"}))
        .await;
    assert_eq!(m["mention"], serde_json::Value::Null, "{m}");
    bob.send("PRIVMSG #sapphire :I like Rust.").await;
    let m = a.event_op("message", json!({"text": "I like Rust."})).await;
    assert_eq!(m["mention"], true, "{m}");
    // Mentions are kept: the Mentions list and the history say so.
    let r = a.ok("mentions", json!({"limit": 5})).await;
    let texts: Vec<&str> = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["I like Rust."]);
    assert_eq!(r["messages"][0]["seq"], m["seq"]);
    let h = a
        .ok(
            "history",
            json!({"account": alice, "conversation": chat("#sapphire"), "limit": 2}),
        )
        .await;
    assert_eq!(h["messages"][1]["mention"], true, "{h}");
    assert_eq!(h["messages"][0].get("mention"), None, "{h}");

    // Everything survives a restart and is in the next snapshot.
    drop(a);
    drop(b);
    backend.terminate();
    backend.restart();
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({})).await;
    assert_eq!(hello["notify"]["highlights"], json!(["Sapphire", "rust"]));
    // The unread mention is counted in the snapshot.
    let conv = hello["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conversation"] == chat("#sapphire"))
        .unwrap()
        .clone();
    assert_eq!(
        (conv["unread"].as_i64(), conv["mentions"].as_i64()),
        (Some(2), Some(1)),
        "{conv}"
    );
    assert_eq!(
        hello["notify"]["levels"],
        json!([{"account": alice, "conversation": chat("#sapphire"), "level": "none"}])
    );
    // "default" removes a setting.
    c.ok(
        "notify.set",
        json!({"account": alice, "conversation": chat("#sapphire"), "level": "default"}),
    )
    .await;
    let g = c
        .ok(
            "notify.get",
            json!({"account": alice, "conversation": chat("#sapphire")}),
        )
        .await;
    assert_eq!(g["level"], "mentions");
    assert_eq!(g["levels"], json!([]));
}
