//! Hostile or broken input from clients: an error reply each, the
//! connection stays; oversized frames close with 1009.
mod backend_support;

use backend_support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn raw(c: &mut Client, text: &str) -> Value {
    c.send_raw(text).await;
    match c.frame().await {
        Frame::Json(v) => v,
        Frame::Closed(code) => panic!("closed {code:?} after {text}"),
    }
}

fn code(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "{v}");
    v["error"]["code"].as_str().unwrap()
}

#[tokio::test]
async fn bad_requests_get_error_replies_and_the_connection_stays() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;

    let r = raw(&mut c, "this is not json").await;
    assert_eq!(r["re"], Value::Null);
    assert_eq!(code(&r), "bad_json");
    assert!(r["error"]["message"].as_str().unwrap().contains("JSON"));
    assert_eq!(code(&raw(&mut c, "[1, 2, 3]").await), "bad_request");
    assert_eq!(code(&raw(&mut c, r#"{"op": "ping"}"#).await), "bad_request");
    assert_eq!(
        code(&raw(&mut c, r#"{"id": [1], "op": "ping"}"#).await),
        "bad_request"
    );
    let r = raw(&mut c, r#"{"id": "x1"}"#).await;
    assert_eq!(r["re"], "x1");
    assert_eq!(code(&r), "bad_request");
    let r = raw(&mut c, r#"{"id": 7, "op": 5}"#).await;
    assert_eq!((r["re"].clone(), code(&r)), (json!(7), "bad_request"));

    let unknown = c.request("no.such.op", json!({})).await;
    assert_eq!(code(&unknown), "unknown_op");
    let r = c.request("history", json!({})).await;
    assert_eq!(code(&r), "bad_request");
    assert_eq!(r["error"]["message"], "'account' is required");
    let r = c
        .request(
            "history",
            json!({"account": "one", "conversation": chat("#x")}),
        )
        .await;
    assert_eq!(r["error"]["message"], "'account' must be an integer");
    let r = c
        .request(
            "history",
            json!({"account": 1, "conversation": {"kind": "group", "name": "x"}}),
        )
        .await;
    assert_eq!(code(&r), "bad_request");
    let r = c
        .request(
            "history",
            json!({"account": 1, "conversation": chat("#x"), "limit": 100000}),
        )
        .await;
    assert_eq!(code(&r), "bad_request");
    let r = c.request("search", json!({"query": 12})).await;
    assert_eq!(code(&r), "bad_request");
    // FTS5 syntax in a query is just text.
    let r = c
        .ok("search", json!({"query": "\"unbalanced AND ( OR *"}))
        .await;
    assert_eq!(r["messages"], json!([]));
    let r = c
        .request(
            "account.add",
            json!({"protocol": "prpl-nope", "username": "a"}),
        )
        .await;
    assert_eq!(code(&r), "no_such_protocol");
    let r = c
        .request(
            "account.add",
            json!({"protocol": "prpl-irc", "username": "a@127.0.0.1", "options": {"port": "many"}}),
        )
        .await;
    assert_eq!(code(&r), "bad_option");
    let r = c
        .request(
            "account.add",
            json!({"protocol": "prpl-irc", "username": "a@127.0.0.1", "options": {"nosuch": 1}}),
        )
        .await;
    assert_eq!(code(&r), "bad_option");
    let r = c
        .request(
            "account.add",
            json!({"protocol": "prpl-irc", "username": "a\u{0}b"}),
        )
        .await;
    assert_eq!(code(&r), "bad_request");
    let r = c
        .request(
            "conversation.send",
            json!({"account": 99, "conversation": chat("#x"), "text": "hi"}),
        )
        .await;
    assert_eq!(code(&r), "no_such_account");
    let r = c
        .request("request.answer", json!({"request": 12345, "action": 0}))
        .await;
    assert_eq!(code(&r), "no_such_request");
    let r = c
        .request(
            "mark_read",
            json!({"account": 1, "conversation": chat("#x"), "seq": 0}),
        )
        .await;
    assert_eq!(code(&r), "no_such_conversation");

    // A binary frame gets an error reply too.
    c.ws.send(Message::Binary(vec![1, 2, 3])).await.unwrap();
    match c.frame().await {
        Frame::Json(v) => assert_eq!(code(&v), "bad_request"),
        Frame::Closed(code) => panic!("closed {code:?}"),
    }

    // hello: since in the future, then twice.
    let r = c.request("hello", json!({"since": 1_000_000})).await;
    assert_eq!(code(&r), "bad_since");
    c.ok("hello", json!({"since": 0})).await;
    let r = c.request("hello", json!({})).await;
    assert_eq!(code(&r), "already_subscribed");

    // After all that, the connection still works.
    c.ok("ping", json!({})).await;
    c.ok("protocols", json!({})).await;
}

#[tokio::test]
async fn frames_over_one_mib_close_with_1009_and_others_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut other = backend.connect().await;
    other.ok("hello", json!({})).await;

    // Just under the limit is accepted (and refused politely: too long).
    let mut c = backend.connect().await;
    let text = "x".repeat((1 << 20) - 200);
    let r = c
        .request(
            "conversation.send",
            json!({"account": 1, "conversation": chat("#x"), "text": text}),
        )
        .await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["code"], "too_long", "{r}");

    let big = format!(
        r#"{{"id": 1, "op": "ping", "pad": "{}"}}"#,
        "y".repeat(1 << 20)
    );
    // The backend may close before the client has written it all: a write
    // error here is expected; the close frame is still readable.
    let _ = c.ws.send(Message::Text(big)).await;
    match c.frame().await {
        Frame::Closed(code) => assert_eq!(code, Some(1009)),
        Frame::Json(v) => panic!("expected close, got {v}"),
    }
    other.ok("ping", json!({})).await;
}

#[tokio::test]
async fn a_client_closing_gets_the_close_echoed() {
    let (_dir, _backend, mut c) = fresh_backend().await;
    c.ws.close(None).await.unwrap();
    // A proper closing handshake: the backend answers with a close frame.
    let echo = tokio::time::timeout(WAIT, c.ws.next()).await.unwrap();
    assert!(
        matches!(echo, Some(Ok(Message::Close(_)))),
        "no close echoed: {echo:?}"
    );
}
