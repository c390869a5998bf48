//! Secret account options never leave the backend (issue #13, item 4):
//! account objects show `{"set": …}` instead, and events an older version
//! stored with a secret in them are scrubbed at start.
mod backend_support;

use backend_support::*;
use serde_json::{json, Value};

/// No installed plugin declares a secret option, so the old database is
/// made by hand: the stored `account.added` gets what an older version
/// would have written for a plugin with a `token` option.
#[tokio::test]
async fn secrets_in_an_old_database_are_scrubbed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    let r = c
        .ok(
            "account.add",
            json!({"protocol": "prpl-irc", "username": "s@127.0.0.1", "enabled": false,
                "password": "pw-hunter2", "options": {"port": 6999}}),
        )
        .await;
    assert!(!r.to_string().contains("hunter2"), "{r}");
    let id = r["account"]["id"].as_i64().unwrap();
    drop(c);
    backend.terminate();

    let db = rusqlite::Connection::open(backend.state.join("sapphire.db")).unwrap();
    let (seq, body): (i64, String) = db
        .query_row(
            "SELECT seq, body FROM events WHERE op = 'account.added'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let mut wire: Value = serde_json::from_str(&body).unwrap();
    wire["info"]["options"]["token"] = json!("tok-hunter2");
    wire["info"]["options"]["email_password"] = json!("mail-hunter2");
    db.execute(
        "UPDATE events SET body = ?1 WHERE seq = ?2",
        rusqlite::params![wire.to_string(), seq],
    )
    .unwrap();
    drop(db);

    backend.restart();
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({"since": 0})).await;
    assert!(!hello.to_string().contains("hunter2"), "{hello}");
    let last = hello["last_seq"].as_u64().unwrap();
    let events = events_until(&mut c, last).await;
    let added = events
        .iter()
        .find(|e| e["op"] == "account.added" && e["account"] == id)
        .expect("account.added replayed");
    assert_eq!(added["info"]["options"]["token"], json!({"set": true}));
    assert_eq!(
        added["info"]["options"]["email_password"],
        json!({"set": true})
    );
    assert_eq!(added["info"]["options"]["port"], 6999);
    for e in &events {
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
    let db = rusqlite::Connection::open(backend.state.join("sapphire.db")).unwrap();
    let leaked: i64 = db
        .query_row(
            "SELECT count(*) FROM events WHERE body LIKE '%hunter2%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leaked, 0);
    assert!(!backend.log().contains("hunter2"));
}
