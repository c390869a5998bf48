//! A refused request changes nothing: every parameter is checked before
//! libpurple is touched, and a change whose durable copy cannot be written
//! is refused (the reply is an error, libpurple keeps nothing).
mod backend_support;

use backend_support::*;
use serde_json::{json, Value};

fn code(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "{v}");
    v["error"]["code"].as_str().unwrap()
}

fn irc(user: &str) -> Value {
    json!({"protocol": "prpl-irc", "username": user, "enabled": false,
        "options": {"port": 6999}})
}

/// Before the fix the account was created (and leaked: never added to
/// libpurple's list, so not visible here) before `alias` was checked; the
/// protocol cannot see that leak, so this test guards the order of checks
/// and the reply. `NewAccount` frees an account that is never added.
#[tokio::test]
async fn a_bad_alias_creates_no_account() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    let mut bad = irc("a@127.0.0.1");
    bad["alias"] = json!(5);
    let r = c.request("account.add", bad).await;
    assert_eq!(code(&r), "bad_request");
    // Nothing was left in libpurple: the same account can be added now.
    let r = c.ok("account.add", irc("a@127.0.0.1")).await;
    assert_eq!(r["account"]["username"], "a@127.0.0.1");
    let hello = c.ok("hello", json!({})).await;
    assert_eq!(hello["accounts"].as_array().unwrap().len(), 1, "{hello}");
}

#[tokio::test]
async fn a_refused_update_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    let r = c.ok("account.add", irc("b@127.0.0.1")).await;
    let id = r["account"]["id"].clone();
    let r = c
        .request(
            "account.update",
            json!({"account": id, "options": {"port": 7000}, "alias": 5}),
        )
        .await;
    assert_eq!(code(&r), "bad_request");
    let r = c
        .request(
            "account.update",
            json!({"account": id, "options": {"port": 7000}, "password": ["x"]}),
        )
        .await;
    assert_eq!(code(&r), "bad_request");
    let r = c.ok("account.update", json!({"account": id})).await;
    assert_eq!(r["account"]["options"]["port"], 6999, "{r}");
}

#[tokio::test]
async fn an_account_whose_durable_copy_cannot_be_written_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    let db = rusqlite::Connection::open(backend.state.join("sapphire.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON accounts
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    )
    .unwrap();
    let r = c.request("account.add", irc("c@127.0.0.1")).await;
    assert_eq!(code(&r), "internal");
    let hello = c.ok("hello", json!({})).await;
    assert_eq!(hello["accounts"], json!([]), "{hello}");

    db.execute_batch("DROP TRIGGER refuse").unwrap();
    let r = c.ok("account.add", irc("c@127.0.0.1")).await;
    let id = r["account"]["id"].clone();

    // A removal that cannot be stored is refused and the account stays.
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE UPDATE ON accounts
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
    )
    .unwrap();
    let r = c.request("account.remove", json!({"account": id})).await;
    assert_eq!(code(&r), "internal");
    let r = c
        .request(
            "account.set_enabled",
            json!({"account": id, "enabled": false}),
        )
        .await;
    assert_eq!(code(&r), "internal");
    db.execute_batch("DROP TRIGGER refuse").unwrap();
    c.ok("account.update", json!({"account": id})).await;
}
