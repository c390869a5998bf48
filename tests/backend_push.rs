//! Web Push: the VAPID key, subscriptions kept across restarts, endpoints
//! that would reach inside the host refused, and delivery to a real push
//! service on loopback checked by an independent implementation.
mod backend_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use backend_support::*;
use base64::Engine;
use serde_json::{json, Value};

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
    let key = vapid_key(&mut c).await;
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

/// A private push service on loopback (tests/support/push_service.py): TLS
/// with a CA made here, subscriber keys of its own, and an independent
/// check of what it receives (VAPID JWT verified with `cryptography`,
/// payload decrypted with `http_ece`).
struct PushService {
    port: u16,
    /// PEM of the CA that signed its certificate (`--push-ca`).
    ca: PathBuf,
    records: PathBuf,
    subscriptions: Value,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

/// The venv with `http_ece` and `cryptography` from PyPI (made once, under
/// the target directory).
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("push-venv");
        let py = venv.join("bin/python");
        let ready = |py: &Path| {
            Command::new(py)
                .args(["-c", "import http_ece, cryptography"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ready(&py) {
            let ok = Command::new("/usr/bin/python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 -m venv (Debian package python3-venv)");
            assert!(ok.success(), "python3 -m venv failed");
            let ok = Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "http_ece==1.2.1", "cryptography"])
                .status()
                .unwrap();
            assert!(ok.success(), "pip install http_ece cryptography failed");
            assert!(ready(&py), "the venv cannot import http_ece");
        }
        py
    })
}

impl PushService {
    fn start(names: &[&str]) -> PushService {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Sapphire test push CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(d.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(d.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        let port = free_port();
        let subs = d.join("subscriptions.json");
        let records = d.join("records.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/push_service.py");
        let child = Command::new(python())
            .arg(script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--cert")
            .arg(d.join("cert.pem"))
            .arg("--key")
            .arg(d.join("key.pem"))
            .arg("--subscriptions")
            .arg(&subs)
            .arg("--records")
            .arg(&records)
            .args(names)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut proc = Proc(child);
        let deadline = Instant::now() + WAIT;
        while !subs.exists() {
            if let Ok(Some(status)) = proc.0.try_wait() {
                panic!("push_service.py exited: {status}");
            }
            assert!(Instant::now() < deadline, "push service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let subscriptions = serde_json::from_str(&std::fs::read_to_string(&subs).unwrap()).unwrap();
        PushService {
            port,
            ca: d.join("ca.pem"),
            records,
            subscriptions,
            _proc: proc,
            _dir: dir,
        }
    }

    /// A backend on `dir` with `backend_toml` that may push to this service
    /// (private endpoints allowed, its CA trusted), and a client of it that
    /// has said `hello`.
    async fn backend(&self, dir: &Path, backend_toml: &str) -> (Backend, Client) {
        let path = dir.join("backend.toml");
        std::fs::write(&path, backend_toml).unwrap();
        let backend = Backend::start_with_args(
            dir,
            &[
                "--push-allow-private-endpoints",
                "--push-ca",
                self.ca.to_str().unwrap(),
                "--config",
                path.to_str().unwrap(),
            ],
        );
        let mut c = backend.connect().await;
        c.ok("hello", json!({})).await;
        (backend, c)
    }

    /// Subscribes `c`'s user with each of `names`.
    async fn subscribe(&self, c: &mut Client, names: &[&str]) {
        for name in names {
            c.ok(
                "push.subscribe",
                json!({"subscription": self.subscription(name)}),
            )
            .await;
        }
    }

    fn endpoint(&self, name: &str) -> String {
        format!("https://localhost:{}/push/{name}", self.port)
    }

    /// What `PushSubscription.toJSON()` would give for `name`.
    fn subscription(&self, name: &str) -> Value {
        json!({"endpoint": self.endpoint(name), "keys": self.subscriptions[name]})
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.records)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until at least `n` requests were received; returns them all.
    async fn wait_records(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = self.records();
            if r.len() >= n {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{} pushes, expected {n}: {r:?}",
                r.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks one received push the way a push service and a browser would.
fn assert_valid_push(rec: &Value, service: &PushService, vapid_key: &str, subject: &str) {
    assert_eq!(rec["jwt_ok"], true, "{rec}");
    assert_eq!(rec["k"], vapid_key, "{rec}");
    let claims = &rec["claims"];
    assert_eq!(claims["aud"], format!("https://localhost:{}", service.port));
    let sub = claims["sub"].as_str().unwrap();
    assert!(sub.starts_with(subject), "sub {sub}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now && exp <= now + 24 * 3600, "exp {exp}, now {now}");
    assert_eq!(rec["content_encoding"], "aes128gcm");
    assert!(rec["ttl"].as_str().unwrap().parse::<u64>().is_ok(), "{rec}");
    assert!(rec.get("error").is_none(), "{rec}");
}

/// The backend's VAPID public key (`push.vapid_key`).
async fn vapid_key(c: &mut Client) -> String {
    c.ok("push.vapid_key", json!({})).await["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn join(c: &mut Client, bob: &mut IrcPeer, alice: i64, name: &str) {
    bob.join(name).await;
    c.ok("chat.join", json!({"account": alice, "name": name}))
        .await;
    c.event_op("chat.joined", json!({"conversation": chat(name)}))
        .await;
    bob.expect("JOIN").await;
}

async fn last_seq_of(c: &mut Client, alice: i64, conversation: Value) -> u64 {
    let h = c
        .ok(
            "history",
            json!({"account": alice, "conversation": conversation, "limit": 1}),
        )
        .await;
    h["messages"][0]["seq"].as_u64().unwrap()
}

/// Mentions reach the phone when nobody is connected, exactly once, with
/// the right content; nothing is pushed for what a connected client read,
/// what the level mutes or plain chatter; a 410 drops the subscription;
/// subscriptions keep working after a restart.
#[tokio::test]
async fn mentions_are_pushed_when_nobody_is_reading() {
    let irc = Ngircd::start();
    let service = PushService::start(&["phone", "gone1"]);
    let dir = tempfile::tempdir().unwrap();
    let subject = "mailto:admin@example.org";
    let (mut backend, mut a) = service
        .backend(dir.path(), &format!("[push]\nsubject = \"{subject}\"\n"))
        .await;
    let key = vapid_key(&mut a).await;
    service.subscribe(&mut a, &["phone", "gone1"]).await;
    let alice = add_irc_account(&mut a, irc.port, "alice").await;
    let mut bob = IrcPeer::connect(irc.port, "bob").await;
    join(&mut a, &mut bob, alice, "#sapphire").await;

    // Connected and read: not pushed.
    bob.send("PRIVMSG #sapphire :alice: are you there?").await;
    let m = a
        .event_op("message", json!({"text": "alice: are you there?"}))
        .await;
    assert_eq!(m["mention"], true, "{m}");
    a.ok(
        "mark_read",
        json!({"account": alice, "conversation": chat("#sapphire"), "seq": m["seq"]}),
    )
    .await;
    // Muted: not pushed.
    a.ok(
        "notify.set",
        json!({"account": alice, "conversation": {"kind": "im", "name": "bob"}, "level": "none"}),
    )
    .await;
    drop(a);
    bob.send("PRIVMSG alice :muted private message").await;
    // Chatter at the default level of chats (mentions): not pushed.
    bob.send("PRIVMSG #sapphire :just chatting").await;
    bob.send("PRIVMSG #sapphire :alice: ping").await;

    // Pushes go out one at a time in order, so the first ones received
    // are those of the first message that notifies.
    let recs = service.wait_records(2).await;
    let mut c = backend.connect().await;
    let seq = last_seq_of(&mut c, alice, chat("#sapphire")).await;
    // (The subscriptions are served in the order they were made, which
    // within one millisecond is by endpoint.)
    let mut first: Vec<&Value> = recs[..2].iter().collect();
    first.sort_by_key(|r| r["name"].as_str().unwrap().to_owned());
    for (rec, name, status) in [(first[0], "gone1", 410), (first[1], "phone", 201)] {
        assert_eq!(
            (rec["name"].as_str(), rec["status"].as_u64()),
            (Some(name), Some(status))
        );
        assert_valid_push(rec, &service, &key, subject);
        assert_eq!(rec["urgency"], "high");
        let p = &rec["payload"];
        assert_eq!(p["title"], "bob in #sapphire", "{p}");
        assert_eq!(p["body"], "bob: alice: ping", "{p}");
        assert_eq!(p["account"], alice);
        assert_eq!(p["conversation"], chat("#sapphire"));
        assert_eq!(p["seq"], seq);
        assert_eq!(p["mention"], true);
    }
    // The 410 dropped its subscription.
    let deadline = Instant::now() + WAIT;
    loop {
        let list = c.ok("push.list", json!({})).await;
        if list["endpoints"] == json!([service.endpoint("phone")]) {
            break;
        }
        assert!(Instant::now() < deadline, "gone1 still subscribed: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // After a restart the subscription still gets pushes.
    drop(c);
    backend.terminate();
    backend.restart();
    let mut c = backend.connect().await;
    // The account signs on and the chat is rejoined by themselves.
    hello_when_ready(&mut c, alice, Some("#sapphire")).await;
    bob.expect("JOIN").await;
    drop(c);
    bob.send("PRIVMSG #sapphire :alice: back?").await;
    let recs = service.wait_records(3).await;
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!(recs[2]["name"], "phone");
    assert_eq!(recs[2]["payload"]["body"], "bob: alice: back?");
    assert_valid_push(&recs[2], &service, &key, subject);
    let log = backend.log();
    for secret in [
        service.subscriptions["phone"]["auth"].as_str().unwrap(),
        "/push/phone",
    ] {
        assert!(!log.contains(secret), "the log shows {secret}");
    }
}

/// With a client connected that does not read, the message is pushed
/// after `[push] delay`; `hide_text` hides it; a 503 with `Retry-After`
/// is retried.
#[tokio::test]
async fn unread_messages_are_pushed_after_the_delay_and_retried() {
    let irc = Ngircd::start();
    let service = PushService::start(&["flaky1"]);
    let dir = tempfile::tempdir().unwrap();
    let (_backend, mut a) = service
        .backend(dir.path(), "[push]\ndelay = 1\nhide_text = true\n")
        .await;
    let key = vapid_key(&mut a).await;
    service.subscribe(&mut a, &["flaky1"]).await;
    let alice = add_irc_account(&mut a, irc.port, "alice").await;
    let mut bob = IrcPeer::connect(irc.port, "bob").await;
    bob.send("PRIVMSG alice :are you at your desk?").await;
    a.event_op("message", json!({"text": "are you at your desk?"}))
        .await;
    let recs = service.wait_records(2).await;
    assert_eq!(
        (recs[0]["status"].as_u64(), recs[1]["status"].as_u64()),
        (Some(503), Some(201))
    );
    let seq = last_seq_of(&mut a, alice, json!({"kind": "im", "name": "bob"})).await;
    for rec in &recs {
        assert_valid_push(rec, &service, &key, "mailto:sapphire@");
        let p = &rec["payload"];
        assert_eq!(
            (p["title"].as_str(), p["body"].as_str()),
            (Some("bob"), Some("New message"))
        );
        assert_eq!(p["seq"], seq);
        assert_eq!(p["conversation"], json!({"kind": "im", "name": "bob"}));
    }
    // The retry waited for Retry-After.
    let t = |r: &Value| r["time"].as_f64().unwrap();
    assert!(t(&recs[1]) - t(&recs[0]) >= 1.0, "{recs:?}");
}
