//! An account whose sign-on crashed or wedged the backend twice in a row is
//! restored disabled, with a message saying why (issue #10): every start
//! after a `kill -9` during a sign-on counts a strike; a sign-on that
//! finished counts none.
mod backend_support;

use backend_support::*;
use serde_json::{json, Value};
use tokio::net::TcpListener;

fn account(snapshot: &Value, id: i64) -> &Value {
    snapshot["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .expect("the account is in the snapshot")
}

/// Starts the backend again; a client and its `hello` reply.
async fn restart(backend: &mut Backend) -> (Client, Value) {
    backend.restart();
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({})).await;
    (c, hello)
}

#[tokio::test]
async fn two_sign_ons_that_killed_the_backend_disable_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    let r = c
        .ok(
            "account.add",
            json!({"protocol": "prpl-irc", "username": "wedge@127.0.0.1",
                   "options": {"port": port}}),
        )
        .await;
    let id = r["account"]["id"].as_i64().unwrap();
    // The sign-on is under way (recorded before libpurple connects).
    let _first = next_connection(&listener).await;
    drop(c);
    backend.kill9();

    // First strike: restored enabled, it signs on again.
    let (c, hello) = restart(&mut backend).await;
    assert_eq!(account(&hello, id)["enabled"], true, "{hello}");
    let _second = next_connection(&listener).await;
    drop(c);
    backend.kill9();

    // Second strike in a row: disabled, with the reason, and the backend
    // serves requests.
    let (mut c, hello) = restart(&mut backend).await;
    let a = account(&hello, id);
    assert_eq!(a["enabled"], false, "{hello}");
    assert_eq!(a["status"], "error", "{hello}");
    let msg = a["message"].as_str().unwrap();
    assert!(msg.contains("twice in a row"), "{msg}");
    c.ok("ping", json!({})).await;
    // The stored copy says disabled too: a restart keeps it so.
    drop(c);
    backend.terminate();
    let (mut c, hello) = restart(&mut backend).await;
    assert_eq!(account(&hello, id)["enabled"], false, "{hello}");

    // The user enables it again: it signs on (two new tries).
    c.ok(
        "account.set_enabled",
        json!({"account": id, "enabled": true}),
    )
    .await;
    let _third = next_connection(&listener).await;
    c.account_status(id, "connecting").await;
}

#[tokio::test]
async fn crashes_after_a_finished_sign_on_count_no_strike() {
    let dir = tempfile::tempdir().unwrap();
    let ircd = Ngircd::start();
    let mut backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    c.ok("hello", json!({})).await;
    let id = add_irc_account(&mut c, ircd.port, "steady").await;
    // Killed twice, each time after the sign-on finished (two strikes
    // would disable it). Two kills only: ngircd throttles a host that
    // reconnects quickly, and waiting for that is the server's time.
    drop(c);
    backend.kill9();
    backend.restart();
    let mut c = backend.connect().await;
    // It may sign on before this client says hello.
    hello_when_ready(&mut c, id, None).await;
    drop(c);
    backend.kill9();
    let (_c, hello) = restart(&mut backend).await;
    let a = account(&hello, id);
    assert_eq!(a["enabled"], true, "{hello}");
    assert_ne!(a["status"], "error", "{hello}");
}
