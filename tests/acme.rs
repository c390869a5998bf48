//! ACME against the host's real pebble (Debian's `pebble`) on loopback:
//! `sapphire-ctl cert renew` gets a certificate through the running proxy
//! (tls-alpn-01 on the proxy's own port; http-01 on its plain HTTP
//! listener), the proxy serves it after SIGHUP and open WebSockets stay
//! open; a wrong directory URL leaves the certificate in place and shows in
//! `cert status`. The plain HTTP listener serves challenges and redirects
//! everything else to https. Pebble tests are skipped (with a message)
//! when pebble is not installed, except on CI.

mod support;

#[path = "support/net.rs"]
#[allow(dead_code)]
mod net;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::ServerName;
use support::*;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const DOMAIN: &str = "chat.sapphire.test";

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Pebble {
    _pebble: Kill,
    _dns: Kill,
    port: u16,
    mgmt: u16,
    /// The certificate of pebble's own HTTPS listener (acme.directory_ca).
    ca: PathBuf,
}

fn have_pebble() -> bool {
    Path::new("/usr/bin/pebble").exists() && Path::new("/usr/bin/pebble-challtestsrv").exists()
}

/// A pebble test's directory and the proxy's first certificate in it;
/// `None` (saying so) when the test is skipped: pebble is not installed,
/// which is an error on CI.
fn pebble_test() -> Option<(tempfile::TempDir, StartCert)> {
    if !have_pebble() {
        assert!(
            std::env::var_os("CI").is_none(),
            "pebble is missing on CI (scripts/apt-packages-test lists it)"
        );
        eprintln!("SKIPPED: Debian's pebble is not installed (apt-get install pebble)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let start = StartCert::new(dir.path());
    Some((dir, start))
}

/// The certificate the proxy starts with: self-signed for localhost and
/// `DOMAIN`, in `tls_dir` (where `cert renew` writes the new one).
struct StartCert {
    tls_dir: PathBuf,
    crt: PathBuf,
    key: PathBuf,
}

impl StartCert {
    fn new(dir: &Path) -> StartCert {
        let tls_dir = dir.join("tls");
        std::fs::create_dir_all(&tls_dir).unwrap();
        let (crt, key) = (tls_dir.join("tls.crt"), tls_dir.join("tls.key"));
        sapphire::tls::ensure_self_signed(&crt, &key, &["localhost".into(), DOMAIN.into()])
            .unwrap();
        StartCert { tls_dir, crt, key }
    }

    /// The proxy with `config_toml`, serving this certificate.
    fn proxy(&self, config_toml: String) -> Proxy {
        Proxy::start(ProxyOptions {
            config_toml,
            extra_args: vec![
                "--tls-cert".into(),
                self.crt.display().to_string(),
                "--tls-key".into(),
                self.key.display().to_string(),
            ],
            ..ProxyOptions::default()
        })
    }
}

/// pebble validating on `tls_port` (tls-alpn-01) and `http_port` (http-01)
/// of 127.0.0.1, `DOMAIN` resolved by pebble-challtestsrv to 127.0.0.1.
/// pebble cannot bind port 0: its ports are picked free, and another
/// process may take one before it binds (seen in a fresh-clone run), so a
/// start that exits before listening is tried again with other ports.
fn pebble(dir: &Path, tls_port: u16, http_port: u16) -> Pebble {
    let mut last = String::new();
    for _ in 0..3 {
        match try_pebble(dir, tls_port, http_port) {
            Ok(p) => return p,
            Err(e) => last = e,
        }
    }
    panic!("pebble did not start in 3 tries: {last}");
}

fn try_pebble(dir: &Path, tls_port: u16, http_port: u16) -> Result<Pebble, String> {
    let ca = dir.join("pebble-https.crt");
    let key = dir.join("pebble-https.key");
    sapphire::tls::ensure_self_signed(&ca, &key, &["localhost".into(), "127.0.0.1".into()])
        .unwrap();
    let (port, mgmt, dns, dns_mgmt) = (
        net::free_port(),
        net::free_port(),
        net::free_port(),
        net::free_port(),
    );
    let mut dns_child = Command::new("/usr/bin/pebble-challtestsrv")
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .args(["-dns01", &format!("127.0.0.1:{dns}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    net::listening(
        dns_mgmt,
        &mut dns_child,
        "pebble-challtestsrv",
        Duration::from_secs(20),
    )?;
    let dns_child = Kill(dns_child);
    let config = dir.join("pebble.json");
    std::fs::write(
        &config,
        serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": ca,
            "privateKey": key,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }})
        .to_string(),
    )
    .unwrap();
    let mut child = Command::new("/usr/bin/pebble")
        .arg("-config")
        .arg(&config)
        .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_VA_ALWAYS_VALID", "0")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ready =
        net::listening(port, &mut child, "pebble", Duration::from_secs(20)).and_then(|()| {
            net::listening(
                mgmt,
                &mut child,
                "pebble management",
                Duration::from_secs(20),
            )
        });
    let child = Kill(child);
    ready?;
    Ok(Pebble {
        _pebble: child,
        _dns: dns_child,
        port,
        mgmt,
        ca,
    })
}

/// pebble's issuing root, from its management interface.
async fn pebble_root(p: &Pebble, out: &Path) {
    let tcp = TcpStream::connect(("127.0.0.1", p.mgmt)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector_for(&p.ca).connect(name, tcp).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET /roots/0 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8(buf).unwrap();
    let body = &text[text.find("-----BEGIN").expect(&text)..];
    std::fs::write(out, body).unwrap();
}

/// A TLS handshake with the proxy for `DOMAIN`, trusting only `root`.
async fn handshake(port: u16, root: &Path) -> std::io::Result<()> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from(DOMAIN).unwrap();
    connector_for(root).connect(name, tcp).await.map(drop)
}

/// Waits (10 s at most) until the proxy on `port` serves a certificate
/// from `root` (pebble's).
async fn wait_served(port: u16, root: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while handshake(port, root).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "pebble's certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port`; the whole answer.
fn plain_http(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn ctl_cert(args: &[&str]) -> std::process::Output {
    Command::new(CTL)
        .args(["cert"])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn tls_alpn_01_certificate_from_pebble_replaces_the_old_one_without_dropping_websockets() {
    let Some((dir, start)) = pebble_test() else {
        return;
    };
    let (tls_dir, crt) = (&start.tls_dir, &start.crt);
    let challenges = dir.path().join("acme");
    let old_cert = dir.path().join("old.crt");
    std::fs::copy(crt, &old_cert).unwrap();
    let placeholder_ca = dir.path().join("placeholder-ca.crt");
    std::fs::copy(crt, &placeholder_ca).unwrap();
    let proxy_toml = |directory: &str, ca: &Path| {
        format!(
            "[acme]\ndomains = [\"{DOMAIN}\"]\ncontact = \"mailto:admin@sapphire.test\"\n\
             directory = \"{directory}\"\ndirectory_ca = \"{}\"\nchallenge_dir = \"{}\"\n",
            ca.display(),
            challenges.display()
        )
    };
    let p = start.proxy(proxy_toml("https://127.0.0.1:1/dir", &placeholder_ca));
    let peb = pebble(dir.path(), p.port, 5002);
    let root = dir.path().join("pebble-root.pem");
    let state = dir.path().join("acme-state");
    let run_ctl = |directory: &str, extra: &[&str]| {
        let cfg = dir.path().join("ctl.toml");
        std::fs::write(&cfg, proxy_toml(directory, &peb.ca)).unwrap();
        let mut args = vec![
            "--config",
            cfg.to_str().unwrap(),
            "--tls-dir",
            tls_dir.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let directory = format!("https://127.0.0.1:{}/dir", peb.port);

    // A WebSocket opened on the old certificate.
    let old = Client::new(p.port, &old_cert)
        .signed_in("alice", "alice-pw")
        .await;
    let mut ws = old.websocket(Some(&old.origin())).await.unwrap();

    // A wrong directory: a clear error, the old certificate stays.
    let bad = format!("https://127.0.0.1:{}/no-such-directory", peb.port);
    let pid = p.child.id().to_string();
    let args = run_ctl(&bad, &[]);
    let mut renew: Vec<&str> = vec!["renew", "--proxy-pid", &pid];
    renew.extend(args.iter().map(String::as_str));
    let out = ctl_cert(&renew);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("acme.directory"), "{err}");
    assert_eq!(
        std::fs::read(crt).unwrap(),
        std::fs::read(&old_cert).unwrap()
    );
    let mut status: Vec<&str> = vec!["status"];
    status.extend(args.iter().map(String::as_str));
    let st = ctl_cert(&status);
    let st = format!(
        "{}{}",
        String::from_utf8_lossy(&st.stdout),
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(
        st.contains("last error: ") && st.contains("acme.directory"),
        "{st}"
    );
    assert!(st.contains("next attempt not before"), "{st}");
    // Without --force the back-off holds.
    let out = ctl_cert(&renew);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("next attempt"));

    // The right directory: pebble validates through the proxy's port.
    let args = run_ctl(&directory, &[]);
    let mut renew: Vec<&str> = vec!["renew", "--proxy-pid", &pid];
    renew.extend(args.iter().map(String::as_str));
    let out = ctl_cert(&renew);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    pebble_root(&peb, &root).await;
    // The proxy reloads on SIGHUP (sent by ctl): wait for the new certificate.
    wait_served(p.port, &root).await;
    // Clients trusting only the old certificate are refused now.
    assert!(old.tls().await.is_err());
    // The WebSocket opened before still relays.
    ws.send(Message::text("after renewal")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("after renewal")
    );
    let mut status: Vec<&str> = vec!["status"];
    status.extend(args.iter().map(String::as_str));
    let st = String::from_utf8_lossy(&ctl_cert(&status).stdout).to_string();
    assert!(st.contains("Pebble"), "{st}");
    assert!(st.contains(&format!("names: {DOMAIN}")), "{st}");
    assert!(!st.contains("last error"), "{st}");
    // Not due again: nothing is done without --force.
    let out = ctl_cert(&renew);
    assert!(String::from_utf8_lossy(&out.stdout).contains("renewal due"));
}

#[test]
fn a_bad_acme_value_stops_the_proxy_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("proxy.toml");
    for (toml, key) in [
        ("[acme]\ndomains = [\"*.example.org\"]\n", "acme.domains"),
        (
            "[acme]\ndomains = [\"a.example.org\"]\nchallenge = \"dns-01\"\n",
            "acme.challenge",
        ),
        (
            "[acme]\ndomains = [\"a.example.org\"]\ndirectory = \"http://ca/dir\"\n",
            "acme.directory",
        ),
        ("[acme]\ndomain = [\"a.example.org\"]\n", "domain"),
    ] {
        std::fs::write(&cfg, toml).unwrap();
        let out = Command::new(PROXY)
            .arg("--config")
            .arg(&cfg)
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path().join("state"))
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{toml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{toml}: {err}");
        let out = Command::new(CTL)
            .args(["cert", "status", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{toml}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(key), "{toml}");
    }
}

#[tokio::test]
async fn acme_tls_alpn_without_a_pending_challenge_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = Proxy::start(ProxyOptions {
        config_toml: format!(
            "[acme]\ndomains = [\"{DOMAIN}\"]\nchallenge_dir = \"{}\"\n",
            dir.path().display()
        ),
        ..ProxyOptions::default()
    });
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(p.cert()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", p.port)).await.unwrap();
    let name = ServerName::try_from(DOMAIN).unwrap();
    let r = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await;
    assert!(r.is_err(), "an acme-tls/1 handshake got a certificate");
    // ordinary clients are served as before
    assert!(p.client().tls().await.is_ok());
}

#[tokio::test]
async fn plain_http_serves_challenges_and_redirects_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
    std::fs::create_dir_all(dir.path().join("http-01")).unwrap();
    std::fs::write(dir.path().join("http-01").join(token), "LoqX.thumbprint").unwrap();
    let http = net::free_port();
    let p = Proxy::start(ProxyOptions {
        config_toml: format!(
            "listen_http = [\"127.0.0.1:{http}\"]\n[acme]\ndomains = [\"{DOMAIN}\"]\n\
             challenge = \"http-01\"\nchallenge_dir = \"{}\"\n",
            dir.path().display()
        ),
        ..ProxyOptions::default()
    });
    let get = |path: &str| {
        plain_http(
            http,
            &format!("GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n"),
        )
    };
    // The pending challenge, exactly as the client wrote it.
    let ok = get(&format!("/.well-known/acme-challenge/{token}"));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nLoqX.thumbprint"), "{ok}");
    // No such challenge, or a token that could leave the directory.
    for path in [
        "/.well-known/acme-challenge/MissingTokenMissingTokenMissing",
        "/.well-known/acme-challenge/..%2F..%2Fetc%2Fpasswd",
    ] {
        let nf = get(path);
        assert!(nf.starts_with("HTTP/1.1 404"), "{path}: {nf}");
    }
    // Everything else goes to the same place on https, nothing is served.
    let r = get("/ws?since=3");
    assert!(r.starts_with("HTTP/1.1 301"), "{r}");
    assert!(
        r.to_ascii_lowercase().contains(&format!(
            "\r\nlocation: https://{DOMAIN}:{}/ws?since=3\r\n",
            p.port
        )),
        "{r}"
    );
    let post = plain_http(
        http,
        &format!(
            "POST /api/login HTTP/1.1\r\nHost: {DOMAIN}:80\r\nContent-Length: 2\r\n\
             Connection: close\r\n\r\n{{}}"
        ),
    );
    assert!(post.starts_with("HTTP/1.1 308"), "{post}");
    assert!(!post.contains("__Host-"), "{post}");
    let no_host = plain_http(http, "GET / HTTP/1.0\r\n\r\n");
    assert!(
        no_host.starts_with("HTTP/1.0 400") || no_host.starts_with("HTTP/1.1 400"),
        "{no_host}"
    );
    // The HTTPS side is untouched.
    assert!(p.client().tls().await.is_ok());
}

#[tokio::test]
async fn http_01_certificate_from_pebble_through_the_plain_listener() {
    let Some((dir, start)) = pebble_test() else {
        return;
    };
    let (tls_dir, crt) = (&start.tls_dir, &start.crt);
    let challenges = dir.path().join("acme");
    let http = net::free_port();
    let acme = |directory: &str, ca: &Path| {
        format!(
            "listen_http = [\"127.0.0.1:{http}\"]\n[acme]\ndomains = [\"{DOMAIN}\"]\n\
             directory = \"{directory}\"\ndirectory_ca = \"{}\"\nchallenge = \"http-01\"\n\
             challenge_dir = \"{}\"\n",
            ca.display(),
            challenges.display()
        )
    };
    let p = start.proxy(acme("https://127.0.0.1:1/dir", crt));
    // tls-alpn-01 aimed at a closed port: only http-01 can succeed.
    let peb = pebble(dir.path(), net::free_port(), http);
    let cfg = dir.path().join("ctl.toml");
    std::fs::write(
        &cfg,
        acme(&format!("https://127.0.0.1:{}/dir", peb.port), &peb.ca),
    )
    .unwrap();
    let pid = p.child.id().to_string();
    let out = ctl_cert(&[
        "renew",
        "--proxy-pid",
        &pid,
        "--config",
        cfg.to_str().unwrap(),
        "--tls-dir",
        tls_dir.to_str().unwrap(),
        "--state-dir",
        dir.path().join("state").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let root = dir.path().join("pebble-root.pem");
    pebble_root(&peb, &root).await;
    wait_served(p.port, &root).await;
    // The challenge file is gone once the order is done.
    let left: Vec<_> = std::fs::read_dir(challenges.join("http-01"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn http_01_without_a_plain_listener_is_warned_about_at_start() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("proxy.toml");
    std::fs::write(
        &cfg,
        format!("[acme]\ndomains = [\"{DOMAIN}\"]\nchallenge = \"http-01\"\n"),
    )
    .unwrap();
    let mut child = Command::new(PROXY)
        .arg("--config")
        .arg(&cfg)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--launcher",
            "spawn",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .arg("--accounts")
        .arg(dir.path().join("accounts.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It still starts (tls-alpn-01 or certbot may be used meanwhile).
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines
        .next()
        .unwrap()
        .unwrap()
        .starts_with("listening on https://"));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("acme.challenge is \"http-01\" but the proxy has no plain HTTP listener"),
        "{err}"
    );
}
