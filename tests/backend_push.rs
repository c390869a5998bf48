//! Web Push subscriptions: the VAPID key, subscriptions kept across
//! restarts, and endpoints that would reach inside the host refused.
mod backend_support;

use std::os::unix::fs::PermissionsExt;

use backend_support::*;
use base64::Engine;
use serde_json::json;

fn subscription(endpoint: &str) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut point = vec![4u8];
    point.extend([7u8; 64]);
    json!({"endpoint": endpoint,
           "keys": {"p256dh": b64.encode(&point), "auth": b64.encode([1u8; 16])}})
}

#[tokio::test]
async fn loopback_endpoints_are_refused_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    let r = c
        .request(
            "push.subscribe",
            json!({"subscription": subscription("https://127.0.0.1:9/push/1")}),
        )
        .await;
    assert_eq!(r["error"]["code"], "bad_endpoint", "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("127.0.0.1") && msg.contains("non-global"),
        "{msg}"
    );
    let r = c
        .request(
            "push.subscribe",
            json!({"subscription": subscription("http://push.example/1")}),
        )
        .await;
    assert_eq!(r["error"]["code"], "bad_endpoint", "{r}");
    let r = c
        .request(
            "push.subscribe",
            json!({"subscription": {"endpoint": "https://localhost/1", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}}),
        )
        .await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    assert_eq!(c.ok("push.list", json!({})).await["endpoints"], json!([]));
}

#[tokio::test]
async fn vapid_key_and_subscriptions_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Backend::start_with_args(dir.path(), &["--push-allow-private-endpoints"]);
    let mut c = backend.connect().await;
    let key = c.ok("push.vapid_key", json!({})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let point = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&key)
        .unwrap();
    assert_eq!((point.len(), point[0]), (65, 4), "uncompressed P-256 point");
    let file = backend.state.join("vapid.pk8");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let a = "https://127.0.0.1:9/push/a";
    let b = "https://localhost:9/push/b";
    for s in [a, b, a] {
        c.ok("push.subscribe", json!({"subscription": subscription(s)}))
            .await;
    }
    c.ok("push.unsubscribe", json!({"endpoint": b})).await;
    c.ok("push.unsubscribe", json!({"endpoint": b})).await;
    let list = c.ok("push.list", json!({})).await;
    assert_eq!(list["endpoints"], json!([a]));
    assert!(!list.to_string().contains("auth"), "no keys in replies");

    drop(c);
    backend.terminate();
    backend.restart();
    let mut c = backend.connect().await;
    assert_eq!(c.ok("push.vapid_key", json!({})).await["key"], key);
    assert_eq!(c.ok("push.list", json!({})).await["endpoints"], json!([a]));
    assert!(!backend.log().contains(
        &base64::engine::general_purpose::STANDARD.encode(std::fs::read(&file).unwrap())
    ));
}
