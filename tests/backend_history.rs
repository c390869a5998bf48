//! History the server replays is stored once (issue #13): prosody replays a
//! room's recent history on every join (`delayed` with `sent`); after a
//! re-enable, a network drop (reconnect), a backend restart and a `kill -9`
//! in the middle of a replay,
//! every line is in the history exactly once, in order, and old lines are
//! neither sent to clients again nor counted unread. Offline messages keep
//! their original time. One prosody and one backend for the whole file.
mod backend_support;

use backend_support::*;
use serde_json::{json, Value};

const ROOM: &str = "history@conference.localhost";

/// The texts of `account`'s history of the room, oldest first.
async fn history(c: &mut Client, account: i64) -> Vec<String> {
    history_texts(c, account, chat(ROOM)).await
}

/// bob says `text` in the room; waits until alice has it live (so every
/// line the server replayed to alice before it has been handled). That
/// event is consumed: [`room_messages`] returns the ones before it.
async fn bob_says(c: &mut Client, bob: i64, alice: i64, text: &str) {
    say_in_room(c, bob, text, json!({"account": alice, "direction": "in"})).await;
}

/// `from` says `text` in the room; waits for the `message` event of that
/// line in the room that also has the fields of `seen` (whose copy).
async fn say_in_room(c: &mut Client, from: i64, text: &str, mut seen: Value) {
    c.ok(
        "conversation.send",
        json!({"account": from, "conversation": chat(ROOM), "text": text}),
    )
    .await;
    seen["conversation"] = chat(ROOM);
    seen["text"] = json!(text);
    c.event_op("message", seen).await;
}

/// The room messages of `account` among the events received so far
/// (consumed).
fn room_messages(c: &mut Client, account: i64) -> Vec<Value> {
    let (mine, rest): (Vec<Value>, Vec<Value>) = c.events.drain(..).partition(|e| {
        e["op"] == "message"
            && e["account"] == account
            && e["conversation"] == chat(ROOM)
            && e["direction"] != "system"
    });
    c.events = rest.into();
    mine
}

fn texts(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}

async fn set_enabled(c: &mut Client, account: i64, enabled: bool) {
    c.ok(
        "account.set_enabled",
        json!({"account": account, "enabled": enabled}),
    )
    .await;
    let status = if enabled { "connected" } else { "disconnected" };
    c.event_op(
        "account.status",
        json!({"account": account, "status": status}),
    )
    .await;
}

/// Waits until `account` has rejoined the room: by the `hello` snapshot
/// when that happened before this client came (after a restart the
/// backend signs on by itself), else by the event.
async fn rejoined(c: &mut Client, hello: &Value, account: i64) {
    let in_snapshot = hello["chats"].as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x["account"] == account && x["conversation"] == chat(ROOM))
    });
    if !in_snapshot {
        c.event_op(
            "chat.joined",
            json!({"account": account, "conversation": chat(ROOM)}),
        )
        .await;
    }
}

/// The unread count of alice's room in a fresh snapshot.
async fn unread(backend: &Backend, alice: i64) -> i64 {
    let mut other = backend.connect().await;
    let hello = other.ok("hello", json!({})).await;
    hello["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["account"] == alice && c["conversation"] == chat(ROOM))
        .expect("the room's conversation")["unread"]
        .as_i64()
        .unwrap()
}

/// Aborts every TCP connection to `port` on loopback (`ss -K`, root): the
/// clients see their connection reset, as after a network drop.
fn drop_connections_to(port: u16) {
    let out = std::process::Command::new("ss")
        .args(["-K", "dst", "127.0.0.1", "dport", "=", &port.to_string()])
        .output()
        .expect("ss (iproute2)");
    assert!(out.status.success(), "ss -K: {out:?}");
}

#[tokio::test]
async fn replayed_room_history_is_stored_once_across_reconnect_reenable_restart_and_kill_9() {
    // Persistent rooms: the room and its history stay while the backend
    // restarts (both its occupants are this backend's accounts).
    let xmpp = Prosody::start_with(
        &[("alice", "alice-pw"), ("bob", "bob-pw")],
        "muc_room_default_persistent = true",
    );
    let (_dir, mut backend, mut c) = fresh_backend().await;
    let (bob, alice) =
        add_xmpp_pair(&mut c, xmpp.port, ("bob", "bob-pw"), ("alice", "alice-pw")).await;
    create_room(&mut c, bob, ROOM).await;
    join_room(&mut c, alice, ROOM).await;
    let mut expected: Vec<String> = Vec::new();
    for t in ["one", "two", "two", "alice's name"] {
        bob_says(&mut c, bob, alice, t).await;
        expected.push(t.into());
    }
    assert_eq!(history(&mut c, alice).await, expected);
    room_messages(&mut c, alice);

    // Re-enable: the server replays the four lines; none is new.
    set_enabled(&mut c, alice, false).await;
    set_enabled(&mut c, alice, true).await;
    rejoined(&mut c, &Value::Null, alice).await;
    bob_says(&mut c, bob, alice, "after re-enable").await;
    expected.push("after re-enable".into());
    assert_eq!(texts(&room_messages(&mut c, alice)), Vec::<&str>::new());
    assert_eq!(history(&mut c, alice).await, expected);
    assert_eq!(unread(&backend, alice).await, expected.len() as i64);

    // Lines said while alice was away are new: stored once, in order,
    // delayed with the time they were said.
    set_enabled(&mut c, alice, false).await;
    let missed = ["missed 1", "missed 2", "missed 3"];
    for t in missed {
        say_in_room(&mut c, bob, t, json!({"account": bob})).await;
    }
    set_enabled(&mut c, alice, true).await;
    rejoined(&mut c, &Value::Null, alice).await;
    bob_says(&mut c, bob, alice, "back").await;
    let got = room_messages(&mut c, alice);
    assert_eq!(texts(&got), missed);
    for m in &got[..3] {
        assert_eq!(m["delayed"], true, "{m}");
        let sent = m["sent"].as_i64().expect("sent");
        assert!(sent <= m["time"].as_i64().unwrap(), "{m}");
    }
    expected.extend(missed.iter().map(|t| t.to_string()));
    expected.push("back".into());
    assert_eq!(history(&mut c, alice).await, expected);

    // A network drop: the server's end of both accounts' connections is
    // aborted (as a NAT or a server restart would); they sign on again by
    // themselves, rejoin, and the room's replay is not new.
    c.events.clear();
    drop_connections_to(xmpp.port);
    for account in [alice, bob] {
        c.event("the connection lost", |e| {
            e["op"] == "account.status" && e["account"] == account && e["status"] != "connected"
        })
        .await;
    }
    for account in [alice, bob] {
        c.account_status(account, "connected").await;
        rejoined(&mut c, &Value::Null, account).await;
    }
    bob_says(&mut c, bob, alice, "after reconnect").await;
    assert_eq!(texts(&room_messages(&mut c, alice)), Vec::<&str>::new());
    expected.push("after reconnect".into());
    assert_eq!(history(&mut c, alice).await, expected);

    // A clean restart: both accounts sign on and rejoin; nothing replayed
    // is new.
    drop(c);
    backend.terminate();
    backend.restart();
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({})).await;
    rejoined(&mut c, &hello, alice).await;
    rejoined(&mut c, &hello, bob).await;
    bob_says(&mut c, bob, alice, "after restart").await;
    assert_eq!(texts(&room_messages(&mut c, alice)), Vec::<&str>::new());
    expected.push("after restart".into());
    assert_eq!(history(&mut c, alice).await, expected);

    // kill -9 while alice's replay of new lines is being stored, then
    // start again: nothing lost, nothing doubled.
    set_enabled(&mut c, alice, false).await;
    let burst: Vec<String> = (1..=12).map(|i| format!("burst {i}")).collect();
    for t in &burst {
        c.ok(
            "conversation.send",
            json!({"account": bob, "conversation": chat(ROOM), "text": t}),
        )
        .await;
    }
    c.event_op(
        "message",
        json!({"account": bob, "conversation": chat(ROOM), "text": "burst 12"}),
    )
    .await;
    c.ok(
        "account.set_enabled",
        json!({"account": alice, "enabled": true}),
    )
    .await;
    c.event_op(
        "message",
        json!({"account": alice, "conversation": chat(ROOM), "text": "burst 1"}),
    )
    .await;
    drop(c);
    backend.kill9();
    backend.restart();
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({})).await;
    assert!(hello["last_seq"].as_u64().unwrap() > 0);
    rejoined(&mut c, &hello, alice).await;
    rejoined(&mut c, &hello, bob).await;
    bob_says(&mut c, bob, alice, "after kill").await;
    expected.extend(burst.iter().cloned());
    expected.push("after kill".into());
    assert_eq!(history(&mut c, alice).await, expected);
    // Every line counts once: alice never read the room.
    assert_eq!(unread(&backend, alice).await, expected.len() as i64);
}

#[tokio::test]
async fn an_offline_message_arrives_at_sign_on_with_its_original_time() {
    let xmpp = Prosody::start(&[("carol", "carol-pw"), ("dan", "dan-pw")]);
    let (_dir, _backend, mut c) = fresh_backend().await;
    let (dan, carol) =
        add_xmpp_pair(&mut c, xmpp.port, ("dan", "dan-pw"), ("carol", "carol-pw")).await;
    set_enabled(&mut c, carol, false).await;
    let before = now_ms();
    c.ok(
        "conversation.send",
        json!({"account": dan, "conversation": im("carol@localhost"), "text": "while you were out"}),
    )
    .await;
    c.event_op(
        "message",
        json!({"account": dan, "text": "while you were out", "direction": "out"}),
    )
    .await;
    // The message must be older than a live one can be (its stamp has
    // whole seconds; a live message is 0 or 1 s old): wait until the clock
    // is three whole seconds past the send (the stamp may be one more).
    while now_ms() / 1000 < before / 1000 + 3 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    set_enabled(&mut c, carol, true).await;
    let m = c
        .event_op(
            "message",
            json!({"account": carol, "conversation": im("dan@localhost"),
                   "text": "while you were out", "direction": "in"}),
        )
        .await;
    assert_eq!(m["delayed"], true, "{m}");
    let sent = m["sent"].as_i64().expect("sent");
    assert!(
        sent >= before - 1000 && sent < m["time"].as_i64().unwrap(),
        "{m}"
    );
    // The history keeps the original time too.
    let r = c
        .ok(
            "history",
            json!({"account": carol, "conversation": im("dan@localhost")}),
        )
        .await;
    assert_eq!(r["messages"][0]["sent"], sent);
    assert_eq!(r["messages"][0]["delayed"], true);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
