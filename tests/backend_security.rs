//! A signed-in user can neither run programs through plugin options nor
//! crash their backend (issue #10): the request shapes an audit used,
//! replayed against the real backend.
mod backend_support;

use backend_support::*;
use serde_json::{json, Value};

fn code(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "{v}");
    v["error"]["code"].as_str().unwrap()
}

/// zephyr's `use_tzc` + `tzc_command` fork and exec a command line at
/// sign-on: refused, never offered, and nothing runs.
#[tokio::test]
async fn plugin_options_that_run_programs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pwned");
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;

    let protocols = c.ok("protocols", json!({})).await;
    let zephyr = protocols["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "prpl-zephyr");
    if let Some(z) = zephyr {
        let settings: Vec<&str> = z["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["setting"].as_str().unwrap())
            .collect();
        assert!(!settings.contains(&"tzc_command"), "{settings:?}");
        assert!(!settings.contains(&"use_tzc"), "{settings:?}");
    }

    let cmd = format!("/bin/sh -c touch${{IFS}}{} %s", out.display());
    let r = c
        .request(
            "account.add",
            json!({"protocol": "prpl-zephyr", "username": "x",
                   "options": {"use_tzc": true, "tzc_command": cmd}}),
        )
        .await;
    assert_eq!(code(&r), "bad_option", "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("use_tzc") || msg.contains("tzc_command"),
        "{msg}"
    );
    // Alone, each one is refused as well, by name.
    let r = c
        .request(
            "account.add",
            json!({"protocol": "prpl-zephyr", "username": "y",
                   "options": {"tzc_command": cmd}}),
        )
        .await;
    assert_eq!(code(&r), "bad_option");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tzc_command"));

    // Nothing was created, and no account exists.
    let hello = c.ok("hello", json!({"since": 0})).await;
    assert_eq!(hello["accounts"], json!([]), "{hello}");
    assert!(!out.exists(), "the command ran");

    // account.update cannot set it either.
    let a = c
        .ok(
            "account.add",
            json!({"protocol": "prpl-irc", "username": "u@127.0.0.1", "enabled": false}),
        )
        .await;
    let id = a["account"]["id"].as_i64().unwrap();
    let r = c
        .request(
            "account.update",
            json!({"account": id, "options": {"helper_command": "/bin/true"}}),
        )
        .await;
    assert_eq!(code(&r), "bad_option");
}

/// An option already in libpurple's files (stored by an older version)
/// is removed at start, before anything signs on.
#[tokio::test]
async fn a_stored_program_option_is_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pwned");
    let purple = dir.path().join("state/purple");
    std::fs::create_dir_all(&purple).unwrap();
    let cmd = format!("/bin/sh -c touch${{IFS}}{} %s", out.display());
    std::fs::write(
        purple.join("accounts.xml"),
        format!(
            "<?xml version='1.0' encoding='UTF-8' ?>\n<account version='1.0'>\n<account>\n\
             <protocol>prpl-zephyr</protocol>\n<name>x</name>\n\
             <settings>\n<setting name='use_tzc' type='bool'>1</setting>\n\
             <setting name='tzc_command' type='string'>{cmd}</setting>\n</settings>\n\
             <settings ui='sapphire'>\n<setting name='id' type='int'>1</setting>\n\
             <setting name='auto-login' type='bool'>1</setting>\n</settings>\n\
             </account>\n</account>\n"
        ),
    )
    .unwrap();
    let mut backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    let hello = c.ok("hello", json!({"since": 0})).await;
    assert_eq!(hello["accounts"][0]["protocol"], "prpl-zephyr", "{hello}");
    assert!(hello["accounts"][0]["options"].get("tzc_command").is_none());
    // The purple thread still answers (a tzc sign-on would block it) and
    // the command never ran.
    c.ok("protocols", json!({})).await;
    assert!(backend.alive());
    assert!(!out.exists(), "the command ran");
}

/// The admin limits the protocols users may add (`backend.toml`).
#[tokio::test]
async fn the_admin_limits_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("backend.toml");
    std::fs::write(&conf, "protocols = [\"prpl-irc\"]\n").unwrap();
    let backend = Backend::start_with_args(dir.path(), &["--config", conf.to_str().unwrap()]);
    let mut c = backend.connect().await;
    let protocols = c.ok("protocols", json!({})).await;
    let ids: Vec<&str> = protocols["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["prpl-irc"]);
    let r = c
        .request(
            "account.add",
            json!({"protocol": "prpl-jabber", "username": "a@example.org"}),
        )
        .await;
    assert_eq!(code(&r), "protocol_not_allowed");
}

/// A bad configuration file stops the backend with a message naming the key.
#[test]
fn a_bad_config_key_is_an_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("backend.toml");
    std::fs::write(&conf, "protocol = [\"prpl-irc\"]\n").unwrap();
    let out = std::process::Command::new(BACKEND)
        .arg("--listen")
        .arg(dir.path().join("s.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("protocol"), "{err}");
}

/// `account.remove` while a fatal connection error's deferred disconnect is
/// pending (an IRC nick with a space: INVALID_SETTINGS) used to free the
/// account under libpurple's timeout: SIGSEGV. Two clients race add and
/// remove: one adds, the other removes the id that add will get, both sent
/// at once so that the purple thread runs them back to back.
#[tokio::test]
async fn removing_a_fatally_failing_account_does_not_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(dir.path());
    let mut a = backend.connect().await;
    let mut b = backend.connect().await;
    let mut next_id = 1;
    let mut raced = 0;
    for round in 0..30 {
        let username = format!("bad nick{round}@127.0.0.1");
        a.send_raw(
            &json!({"id": "add", "op": "account.add", "protocol": "prpl-irc",
                    "username": username})
            .to_string(),
        )
        .await;
        b.send_raw(&json!({"id": "rm", "op": "account.remove", "account": next_id}).to_string())
            .await;
        let added = a.reply_to(json!("add")).await;
        assert_eq!(added["ok"], true, "{added}");
        let id = added["account"]["id"].as_i64().unwrap();
        let removed = b.reply_to(json!("rm")).await;
        if removed["ok"] == true {
            raced += 1;
        } else {
            // The remove ran first: remove it now, right after its error.
            assert_eq!(removed["error"]["code"], "no_such_account", "{removed}");
            a.ok("account.remove", json!({"account": id})).await;
        }
        next_id = id + 1;
        assert!(backend.alive(), "backend died: {}", backend.log());
    }
    assert!(
        raced > 0,
        "no round removed the account right after adding it"
    );
    // Still alive and answering, with no account left.
    let hello = b.ok("hello", json!({"since": 0})).await;
    assert_eq!(hello["accounts"], json!([]), "{hello}");
    assert!(backend.alive(), "backend died: {}", backend.log());
    // And after a restart (the start-up restore path) as well.
    backend.terminate();
    backend.restart();
    let mut c = backend.connect().await;
    c.ok("protocols", json!({})).await;
    assert!(backend.alive());
}
