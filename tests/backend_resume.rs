//! Several clients, resume by `seq`, slow clients, crash and shutdown.
mod backend_support;

use backend_support::*;
use serde_json::{json, Value};

/// A client, an IRC account joined to `#r`, and the IRC peer `bob` there.
async fn setup(backend: &Backend, irc: &Ngircd) -> (Client, i64, IrcPeer) {
    let mut c = backend.connect().await;
    c.ok("hello", json!({})).await;
    let mut bob = IrcPeer::connect(irc.port, "bob").await;
    bob.send("JOIN #r").await;
    bob.expect(" 366 ").await;
    let alice = add_irc_account(&mut c, irc.port, "alice").await;
    c.ok("chat.join", json!({"account": alice, "name": "#r"}))
        .await;
    c.event_op("chat.joined", json!({"conversation": chat("#r")}))
        .await;
    bob.expect("JOIN").await;
    (c, alice, bob)
}

async fn say(c: &mut Client, account: i64, text: &str) -> u64 {
    let r = c
        .ok(
            "conversation.send",
            json!({"account": account, "conversation": chat("#r"), "text": text}),
        )
        .await;
    r["seq"].as_u64().unwrap()
}

fn assert_contiguous(seqs: &[u64]) {
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "gap or repeat in {seqs:?}");
    }
}

fn texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.get("op").is_none_or(|op| op == "message") && e["direction"] != "system")
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn two_clients_see_the_same_events_and_resume_is_exactly_once_in_order() {
    let irc = Ngircd::start();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let (mut a, alice, mut bob) = setup(&backend, &irc).await;

    let mut b = backend.connect().await;
    let hello = b.ok("hello", json!({})).await;
    let start = hello["last_seq"].as_u64().unwrap();

    let mut last = 0;
    for i in 0..3 {
        last = say(&mut a, alice, &format!("first {i}")).await;
    }
    let seen_b = events_until(&mut b, last).await;
    assert_eq!(texts(&seen_b), ["first 0", "first 1", "first 2"]);
    let resume_from = seen_b.last().unwrap()["seq"].as_u64().unwrap();
    assert_eq!(seen_b[0]["seq"].as_u64().unwrap(), start + 1);
    drop(b);

    // While b is away: our own messages, bob's, a topic change.
    for i in 0..3 {
        say(&mut a, alice, &format!("second {i}")).await;
    }
    bob.send("PRIVMSG #r :from bob").await;
    a.event_op("message", json!({"text": "from bob"})).await;
    bob.send("TOPIC #r :while away").await;
    let topic = a
        .event_op("chat.topic", json!({"topic": "while away"}))
        .await;
    let away_last = topic["seq"].as_u64().unwrap();

    // b resumes: everything after resume_from, in order, once; then live.
    let mut b = backend.connect().await;
    let hello = b.ok("hello", json!({"since": resume_from})).await;
    assert!(hello["last_seq"].as_u64().unwrap() >= away_last);
    let live = say(&mut a, alice, "live again").await;
    let replayed = events_until(&mut b, live).await;
    let seqs: Vec<u64> = replayed
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs[0], resume_from + 1);
    assert_eq!(*seqs.last().unwrap(), live);
    assert_contiguous(&seqs);
    assert_eq!(
        texts(&replayed),
        ["second 0", "second 1", "second 2", "from bob", "live again"]
    );

    // a, connected all along, saw every event once, in order.
    let all_a = events_until(&mut a, live).await;
    let mut seqs_a = a.seen.clone();
    seqs_a.dedup();
    assert_eq!(seqs_a, a.seen, "a saw an event twice");
    assert_contiguous(&a.seen);
    assert!(all_a.iter().any(|e| e["text"] == "live again"));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_1008_and_resumes_without_loss() {
    let irc = Ngircd::start();
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let (mut a, alice, _bob) = setup(&backend, &irc).await;
    let first = say(&mut a, alice, "mark me").await;

    // `slow` subscribes, then stops reading.
    let mut slow = backend.connect().await;
    let hello = slow.ok("hello", json!({})).await;
    let slow_start = hello["last_seq"].as_u64().unwrap();

    // Thousands of events from another client (read markers are cheap).
    // `a` keeps reading and is not affected.
    let n = 5000;
    let mut last = 0;
    for chunk in 0..(n / 100) {
        for i in 0..100 {
            let id = 1_000_000 + chunk * 100 + i;
            a.send_raw(
                &json!({"id": id, "op": "mark_read", "account": alice,
                        "conversation": chat("#r"), "seq": first})
                .to_string(),
            )
            .await;
        }
        for i in 0..100 {
            let r = a.reply_to(json!(1_000_000 + chunk * 100 + i)).await;
            assert_eq!(r["ok"], true, "{r}");
            last = r["seq"].as_u64().unwrap();
        }
        a.events.clear();
    }

    // The slow client gets what was queued, then a 1008 close.
    let mut got = Vec::new();
    let code = loop {
        match slow.frame().await {
            Frame::Json(v) => got.push(v["seq"].as_u64().unwrap()),
            Frame::Closed(code) => break code,
        }
    };
    assert_eq!(code, Some(1008));
    assert!((got.len() as u64) < n, "slow client was not cut off");
    assert_eq!(got[0], slow_start + 1);
    assert_contiguous(&got);

    // It resumes from what it saw and gets the rest exactly once.
    let mut slow = backend.connect().await;
    let resume = *got.last().unwrap();
    slow.ok("hello", json!({"since": resume})).await;
    let rest = events_until(&mut slow, last).await;
    let seqs: Vec<u64> = rest.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs[0], resume + 1);
    assert_eq!(*seqs.last().unwrap(), last);
    assert_contiguous(&seqs);
}

#[tokio::test]
async fn kill_9_and_restart_keeps_events_history_and_search() {
    let irc = Ngircd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(dir.path());
    let (mut a, alice, mut bob) = setup(&backend, &irc).await;
    bob.send("PRIVMSG #r :durable incoming words").await;
    a.event_op("message", json!({"text": "durable incoming words"}))
        .await;
    let sent = say(&mut a, alice, "acknowledged outgoing words").await;
    drop(a);

    backend.kill9();
    backend.restart();

    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({"since": 0})).await;
    let last = hello["last_seq"].as_u64().unwrap();
    assert!(last > sent);
    let events = events_until(&mut c, last).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs[0], 1);
    assert_contiguous(&seqs);
    let t = texts(&events);
    assert!(t.contains(&"durable incoming words".to_owned()), "{t:?}");
    assert!(
        t.contains(&"acknowledged outgoing words".to_owned()),
        "{t:?}"
    );
    // The restart told clients the chat is no longer joined.
    assert!(events.iter().any(|e| e["op"] == "chat.left"
        && e["conversation"] == chat("#r")
        && e["reason"] == "restart"));

    let h = c
        .ok(
            "history",
            json!({"account": alice, "conversation": chat("#r")}),
        )
        .await;
    let ht = texts(h["messages"].as_array().unwrap());
    assert_eq!(
        ht,
        ["durable incoming words", "acknowledged outgoing words"]
    );
    let s = c.ok("search", json!({"query": "acknowledged words"})).await;
    assert_eq!(s["messages"][0]["seq"].as_u64(), Some(sent));
    let s = c.ok("search", json!({"query": "incoming"})).await;
    assert_eq!(s["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(dir.path());
    let mut a = backend.connect().await;
    a.ok("hello", json!({})).await;
    let mut b = backend.connect().await;
    b.ok("ping", json!({})).await;
    let (status, took) = backend.terminate();
    assert!(status.success(), "{status}");
    assert!(took.as_secs() < 5, "took {took:?}");
    for c in [&mut a, &mut b] {
        match c.frame().await {
            Frame::Closed(code) => assert_eq!(code, Some(1001)),
            Frame::Json(v) => panic!("unexpected {v}"),
        }
    }
    assert!(!backend.sock.exists(), "socket file left behind");
}

#[tokio::test]
async fn after_a_clean_restart_accounts_sign_on_again_and_rejoin_their_chats() {
    let irc = Ngircd::start();
    let (_dir, mut backend, mut c) = fresh_backend().await;
    let alice = add_irc_account(&mut c, irc.port, "alice").await;
    for chan in ["#kept", "#dropped"] {
        c.ok("chat.join", json!({"account": alice, "name": chan}))
            .await;
        c.event_op("chat.joined", json!({"conversation": chat(chan)}))
            .await;
    }
    c.ok("chat.leave", json!({"account": alice, "name": "#dropped"}))
        .await;
    drop(c);
    // Signed on and in chats, it still stops cleanly and in time.
    let (status, took) = backend.terminate();
    assert!(status.success());
    assert!(took.as_secs() < 5, "took {took:?}");

    backend.restart();
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({"since": 0})).await;
    assert_eq!(hello["accounts"][0]["id"], alice, "{hello}");
    let last = hello["last_seq"].as_u64().unwrap();
    // Clients were told the chat was left for a restart (not by the user).
    c.event_op(
        "chat.left",
        json!({"account": alice, "conversation": chat("#kept"), "reason": "restart"}),
    )
    .await;
    // The chat joined before is joined again; the one left is not.
    let rejoined = c
        .event("a chat joined after the restart", |e| {
            e["op"] == "chat.joined" && e["seq"].as_u64().unwrap() > last
        })
        .await;
    assert_eq!(rejoined["conversation"], chat("#kept"));
    let r = c
        .request("chat.leave", json!({"account": alice, "name": "#dropped"}))
        .await;
    assert_eq!(r["error"]["code"], "not_joined");
}

#[tokio::test]
async fn kill_9_right_after_adding_or_removing_an_account_keeps_that() {
    let irc = Ngircd::start();
    let (_dir, mut backend, mut c) = fresh_backend().await;
    let alice = add_irc_account(&mut c, irc.port, "alice").await;
    // libpurple writes accounts.xml 5 s after a change; kill before that.
    backend.kill9();
    backend.restart();
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({})).await;
    let account = &hello["accounts"][0];
    assert_eq!(account["id"], alice, "{hello}");
    assert_eq!(account["username"], "alice@127.0.0.1");
    assert_eq!(account["options"]["port"], irc.port);
    // It may have signed on before the hello (then the snapshot says so).
    if account["status"] != "connected" {
        c.account_status(alice, "connected").await;
    }

    // A removal right before a crash stays removed too.
    c.ok("account.remove", json!({"account": alice})).await;
    backend.kill9();
    backend.restart();
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({})).await;
    assert_eq!(hello["accounts"], json!([]), "{hello}");
}
