//! The security rule "the proxy never links libpurple", checked on the
//! binaries cargo built: the dynamic linker would load none of libpurple,
//! GLib or SQLite into sapphire-proxy or sapphire-ctl, and no libpurple code
//! is linked in statically either.

use std::process::Command;

fn needed(bin: &str) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["--dynamic", "--wide", bin])
        .output()
        .expect("readelf (binutils) is installed");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            l.split('[')
                .nth(1)
                .map(|s| s.trim_end_matches(']').to_owned())
        })
        .collect()
}

#[test]
fn proxy_and_ctl_do_not_link_libpurple() {
    for bin in [
        env!("CARGO_BIN_EXE_sapphire-proxy"),
        env!("CARGO_BIN_EXE_sapphire-ctl"),
    ] {
        let libs = needed(bin);
        assert!(
            libs.iter().any(|l| l.starts_with("libc.so")),
            "{bin}: {libs:?}"
        );
        for bad in ["libpurple", "libglib", "libgobject", "libsqlite"] {
            assert!(
                !libs.iter().any(|l| l.starts_with(bad)),
                "{bin} needs {bad}: {libs:?}"
            );
        }
        let bytes = std::fs::read(bin).unwrap();
        assert!(
            !bytes.windows(16).any(|w| w == b"purple_core_init"),
            "{bin} contains libpurple code"
        );
    }
    // the check is meaningful: the backend does link it
    let backend = needed(env!("CARGO_BIN_EXE_sapphire-backend"));
    assert!(
        backend.iter().any(|l| l.starts_with("libpurple")),
        "{backend:?}"
    );
}
