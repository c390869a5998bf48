//! Durable or refused (issue #10): with the state directory on a real full
//! file system (a small tmpfs, filled), `conversation.send` answers
//! `storage_full` and nothing reaches IRC; once space is back, sending
//! works again and the history has exactly what was sent. Needs root (to
//! mount the tmpfs), as the rest of the suite does.
mod backend_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use backend_support::*;
use serde_json::json;

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "cannot mount a tmpfs (this test needs root)");
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 64 << 10];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|_| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
            break;
        }
    }
}

#[tokio::test]
async fn a_send_the_history_cannot_keep_is_refused_and_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    // Mounted before the backend starts, dropped (unmounted) after it.
    let _fs = Tmpfs::mount(&dir.path().join("state"), "24m");
    let ircd = Ngircd::start();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    c.ok("hello", json!({})).await;
    let mut peer = IrcPeer::connect(ircd.port, "watcher").await;
    let id = add_irc_account(&mut c, ircd.port, "keeper").await;
    let conv = json!({"kind": "im", "name": "watcher"});
    let send = |text: &str| json!({"account": id, "conversation": conv, "text": text});

    c.ok("conversation.send", send("before")).await;
    peer.expect("PRIVMSG watcher :before").await;

    let filler = backend.state.join("filler");
    fill(&filler);
    let refused = [
        ("conversation.send", send("while full")),
        ("conversation.send", send("/me while full")),
        ("chat.join", json!({"account": id, "name": "#whilefull"})),
        (
            "status.set",
            json!({"status": "away", "message": "while full"}),
        ),
    ];
    for (op, params) in refused {
        let r = c.request(op, params).await;
        assert_eq!(r["ok"], false, "{op}: {r}");
        assert_eq!(r["error"]["code"], "storage_full", "{op}: {r}");
    }

    // Space is back: the backend sends again, and nothing sent while full
    // reached the server before it (IRC keeps the order).
    std::fs::remove_file(&filler).unwrap();
    c.ok("conversation.send", send("after")).await;
    let lines = peer.lines_until("PRIVMSG watcher :after").await;
    assert!(
        !lines.iter().any(|l| l.contains("while full")),
        "sent while full: {lines:?}"
    );
    // The refused join never happened either: joining now is the first.
    c.ok("chat.join", json!({"account": id, "name": "#whilefull"}))
        .await;
    c.event_op("chat.joined", json!({"conversation": chat("#whilefull")}))
        .await;
    let h = c
        .ok("history", json!({"account": id, "conversation": conv}))
        .await;
    let texts: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["before", "after"], "{h}");
}
