//! sapphire-ctl, run as an admin would, against a temporary accounts file.

mod support;

use std::os::unix::fs::PermissionsExt;
use support::ctl;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn add_list_passwd_disable_enable_del() {
    let dir = tempfile::tempdir().unwrap();
    let acc = dir.path().join("accounts.json");
    let add = ctl(
        &acc,
        &["user", "add", "alice", "--password-stdin"],
        Some("s3cret\n"),
    );
    assert!(add.status.success(), "{}", stderr(&add));
    assert_eq!(
        std::fs::metadata(&acc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&acc).unwrap()).unwrap();
    let hash = json["users"]["alice"]["hash"].as_str().unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!std::fs::read_to_string(&acc).unwrap().contains("s3cret"));

    assert!(ctl(
        &acc,
        &["user", "add", "bob", "--password-stdin"],
        Some("pw")
    )
    .status
    .success());
    let list = ctl(&acc, &["user", "list"], None);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "alice\tenabled\nbob\tenabled\n"
    );

    let dup = ctl(
        &acc,
        &["user", "add", "alice", "--password-stdin"],
        Some("x\n"),
    );
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));

    assert!(ctl(&acc, &["user", "disable", "bob"], None)
        .status
        .success());
    let list = ctl(&acc, &["user", "list"], None);
    assert!(String::from_utf8_lossy(&list.stdout).contains("bob\tdisabled"));
    assert!(ctl(&acc, &["user", "enable", "bob"], None).status.success());

    // the admin made the file readable by the proxy's group: ctl keeps that
    std::fs::set_permissions(&acc, std::fs::Permissions::from_mode(0o640)).unwrap();
    let pw = ctl(
        &acc,
        &["user", "passwd", "alice", "--password-stdin"],
        Some("n3w\r\n"),
    );
    assert!(pw.status.success(), "{}", stderr(&pw));
    assert_eq!(
        std::fs::metadata(&acc).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&acc).unwrap()).unwrap();
    let new_hash = json["users"]["alice"]["hash"].as_str().unwrap();
    assert!(sapphire::accounts::verify_password(new_hash, "n3w"));

    assert!(ctl(&acc, &["user", "del", "bob"], None).status.success());
    let list = ctl(&acc, &["user", "list"], None);
    assert_eq!(String::from_utf8_lossy(&list.stdout), "alice\tenabled\n");
    for cmd in ["del", "disable", "enable"] {
        let o = ctl(&acc, &["user", cmd, "bob"], None);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("no such user: bob"),
            "{cmd}: {}",
            stderr(&o)
        );
    }
    let o = ctl(
        &acc,
        &["user", "passwd", "bob", "--password-stdin"],
        Some("x\n"),
    );
    assert!(stderr(&o).contains("no such user"), "{}", stderr(&o));
}

#[test]
fn refuses_bad_names_and_passwords_without_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let acc = dir.path().join("accounts.json");
    for name in [
        "../x",
        "a.service",
        &"a".repeat(300),
        "a\u{1}b",
        "Root",
        "",
        "9lives",
    ] {
        let o = ctl(
            &acc,
            &["user", "add", name, "--password-stdin"],
            Some("pw\n"),
        );
        assert!(!o.status.success(), "{name:?}");
        assert!(
            stderr(&o).contains("invalid user name"),
            "{name:?}: {}",
            stderr(&o)
        );
    }
    let empty = ctl(
        &acc,
        &["user", "add", "alice", "--password-stdin"],
        Some("\n"),
    );
    assert!(!empty.status.success());
    assert!(
        stderr(&empty).contains("password is empty"),
        "{}",
        stderr(&empty)
    );
    let nothing = ctl(&acc, &["user", "add", "alice", "--password-stdin"], None);
    assert!(!nothing.status.success());
    // no terminal and no --password-stdin: a clear refusal, no hang
    let tty = ctl(&acc, &["user", "add", "alice"], Some("pw\n"));
    assert!(!tty.status.success());
    assert!(
        stderr(&tty).contains("--password-stdin"),
        "{}",
        stderr(&tty)
    );
    assert!(!acc.exists(), "nothing may be written on bad input");
}

#[test]
fn refuses_a_corrupt_accounts_file() {
    let dir = tempfile::tempdir().unwrap();
    let acc = dir.path().join("accounts.json");
    std::fs::write(&acc, "{ this is not json").unwrap();
    let o = ctl(
        &acc,
        &["user", "add", "alice", "--password-stdin"],
        Some("pw\n"),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a valid accounts file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&acc).unwrap(), "{ this is not json");
}

#[test]
fn concurrent_writers_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let acc = dir.path().join("accounts.json");
    let names: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
    std::thread::scope(|s| {
        for n in &names {
            let acc = &acc;
            s.spawn(move || {
                let o = ctl(acc, &["user", "add", n, "--password-stdin"], Some("pw\n"));
                assert!(o.status.success(), "{}", stderr(&o));
            });
        }
    });
    let list = String::from_utf8(ctl(&acc, &["user", "list"], None).stdout).unwrap();
    for n in &names {
        assert!(list.contains(&format!("{n}\tenabled")), "{n} lost: {list}");
    }
    // no temporary or stray files besides the lock
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["accounts.json", "accounts.json.lock"]);
}
