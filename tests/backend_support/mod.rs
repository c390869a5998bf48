//! Harness for the backend's integration tests: real `sapphire-backend`
//! processes, real `ngircd`/`prosody` on loopback, a real WebSocket client
//! over the backend's Unix socket, and a raw IRC client as the other person.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub const BACKEND: &str = env!("CARGO_BIN_EXE_sapphire-backend");

/// Generous timeout for anything that crosses a real server (ngircd
/// throttles clients to a few commands per second).
pub const WAIT: Duration = Duration::from_secs(20);

#[path = "../support/net.rs"]
mod net;
pub use net::free_port;
use net::wait_tcp;

/// A backend on a new state directory (removed when the `TempDir` is
/// dropped: keep it as long as the backend) and a client that has said
/// `hello`.
pub async fn fresh_backend() -> (tempfile::TempDir, Backend, Client) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(dir.path());
    let mut c = backend.connect().await;
    c.ok("hello", json!({})).await;
    (dir, backend, c)
}

/// A process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private ngircd on a free loopback port.
pub struct Ngircd {
    pub port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Ngircd {
    pub fn start() -> Ngircd {
        Ngircd::start_on(free_port())
    }

    /// Starts on a given port (e.g. to restart a server that was stopped).
    pub fn start_on(port: u16) -> Ngircd {
        let dir = tempfile::tempdir().unwrap();
        let motd = dir.path().join("motd");
        std::fs::write(&motd, "test server\n").unwrap();
        let conf = dir.path().join("ngircd.conf");
        std::fs::write(
            &conf,
            format!(
                "[Global]\nName = irc.test\nInfo = Sapphire test\nListen = 127.0.0.1\n\
                 Ports = {port}\nMotdFile = {}\nPidFile = {}\n\
                 [Limits]\nMaxNickLength = 20\nPingTimeout = 120\nPongTimeout = 60\n\
                 [Options]\nPAM = no\nIdent = no\nDNS = no\n",
                motd.display(),
                dir.path().join("pid").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/ngircd")
            .args(["--nodaemon", "--config"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ngircd (Debian package ngircd) must be installed");
        let mut proc = Proc(child);
        wait_tcp(port, &mut proc.0, "ngircd", Duration::from_secs(15));
        Ngircd {
            port,
            _proc: proc,
            _dir: dir,
        }
    }
}

/// A private prosody (XMPP) on a free loopback port, STARTTLS required,
/// with a self-signed certificate for `localhost` and a MUC component at
/// `conference.localhost`.
pub struct Prosody {
    pub port: u16,
    proc: Option<Proc>,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prosody {
    /// Starts prosody with the given `(user, password)` accounts.
    pub fn start(users: &[(&str, &str)]) -> Prosody {
        Prosody::start_with(users, "")
    }

    /// Like [`Prosody::start`], with extra lines for the MUC component
    /// (e.g. `muc_room_default_persistent = true`: rooms, and their
    /// history, stay when everyone has left).
    pub fn start_with(users: &[(&str, &str)], muc: &str) -> Prosody {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(d.join("localhost.crt"), cert.cert.pem()).unwrap();
        std::fs::write(d.join("localhost.key"), cert.key_pair.serialize_pem()).unwrap();
        std::fs::create_dir(d.join("data")).unwrap();
        let conf = d.join("prosody.cfg.lua");
        std::fs::write(
            &conf,
            format!(
                r#"-- Test server: runs as the current user, foreground, loopback only.
prosody_user = "root"
prosody_group = "root"
run_as_root = true
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
certificates = "{d}"
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "presence"; "message"; "iq"; "offline"; }}
modules_disabled = {{ "s2s"; "admin_shell"; }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
log = {{ error = "*console" }}
authentication = "internal_plain"
c2s_require_encryption = true
ssl = {{ key = "{d}/localhost.key"; certificate = "{d}/localhost.crt"; }}
VirtualHost "localhost"
Component "conference.localhost" "muc"
{muc}
"#,
                d = d.display()
            ),
        )
        .unwrap();
        for (user, password) in users {
            let status = Command::new("prosodyctl")
                .arg("--config")
                .arg(&conf)
                .args(["register", user, "localhost", password])
                .stdout(Stdio::null())
                .status()
                .expect("prosodyctl (Debian package prosody) must be installed");
            assert!(status.success(), "prosodyctl register {user} failed");
        }
        let mut p = Prosody {
            port,
            proc: None,
            conf,
            _dir: dir,
        };
        p.restart();
        p
    }

    /// Stops the server (its rooms are not persistent: they are gone).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Starts it again (after [`Prosody::stop`]) on the same port, with
    /// the same accounts and offline messages.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("prosody")
            .arg("--config")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prosody must be installed");
        let mut proc = Proc(child);
        wait_tcp(self.port, &mut proc.0, "prosody", Duration::from_secs(15));
        self.proc = Some(proc);
    }
}

/// A running `sapphire-backend`.
pub struct Backend {
    pub sock: PathBuf,
    pub state: PathBuf,
    pub proc: Option<Proc>,
    /// Extra command-line arguments (kept across restarts).
    pub args: Vec<String>,
}

impl Backend {
    /// Starts a backend in `dir` (socket `dir/backend.sock`, state
    /// `dir/state`) and waits until its socket accepts connections.
    pub fn start(dir: &Path) -> Backend {
        Backend::start_with_args(dir, &[])
    }

    /// Like [`Backend::start`], with extra command-line arguments.
    pub fn start_with_args(dir: &Path, args: &[&str]) -> Backend {
        let sock = dir.join("backend.sock");
        let state = dir.join("state");
        let mut b = Backend {
            sock,
            state,
            proc: None,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        b.restart();
        b
    }

    /// Whether the process is still running (false once it crashed).
    pub fn alive(&mut self) -> bool {
        match &mut self.proc {
            Some(p) => p.0.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// The backend's stderr (its log and anything GLib prints), kept
    /// across restarts next to the socket.
    pub fn log_path(&self) -> PathBuf {
        self.sock.with_file_name("backend.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap()
    }

    pub fn restart(&mut self) {
        let child = Command::new(BACKEND)
            .arg("--listen")
            .arg(&self.sock)
            .arg("--state-dir")
            .arg(&self.state)
            .args(&self.args)
            .env("RUST_LOG", "sapphire=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(self.log_file()))
            .spawn()
            .unwrap();
        let mut proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.sock).is_ok() {
                break;
            }
            if let Ok(Some(status)) = proc.0.try_wait() {
                panic!("sapphire-backend exited early: {status}");
            }
            assert!(Instant::now() < deadline, "backend did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.proc = Some(proc);
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.0.kill().unwrap();
            p.0.wait().unwrap();
        }
    }

    /// SIGTERM; returns the exit status and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut p = self.proc.take().expect("running");
        let start = Instant::now();
        unsafe { libc::kill(p.0.id() as i32, libc::SIGTERM) };
        let deadline = start + Duration::from_secs(10);
        loop {
            if let Some(status) = p.0.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(Instant::now() < deadline, "backend ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub async fn connect(&self) -> Client {
        Client::connect(&self.sock).await
    }
}

/// A WebSocket client of the backend.
pub struct Client {
    pub ws: WebSocketStream<UnixStream>,
    next_id: u64,
    /// Events received but not yet consumed, in order.
    pub events: VecDeque<Value>,
    /// Every event seq seen, in order.
    pub seen: Vec<u64>,
}

#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Closed(Option<u16>),
}

impl Client {
    pub async fn connect(sock: &Path) -> Client {
        let stream = UnixStream::connect(sock).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async("ws://backend/anything", stream)
            .await
            .unwrap();
        Client {
            ws,
            next_id: 1,
            events: VecDeque::new(),
            seen: Vec::new(),
        }
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.to_owned())).await.unwrap();
    }

    /// The next JSON frame (or the close), within `WAIT`.
    pub async fn frame(&mut self) -> Frame {
        loop {
            let Ok(msg) = tokio::time::timeout(WAIT, self.ws.next()).await else {
                panic!(
                    "timed out waiting for a frame; unconsumed events: {:?}",
                    self.events
                );
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("backend sent invalid JSON");
                    if let Some(seq) = v.get("seq").and_then(Value::as_u64) {
                        if v.get("re").is_none() {
                            self.seen.push(seq);
                        }
                    }
                    return Frame::Json(v);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Frame::Closed(frame.map(|f: CloseFrame| u16::from(f.code)))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Frame::Closed(None),
            }
        }
    }

    /// Sends a request; returns its reply. Events that arrive meanwhile are
    /// kept in `events`.
    pub async fn request(&mut self, op: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = params;
        req["id"] = json!(id);
        req["op"] = json!(op);
        self.send_raw(&req.to_string()).await;
        self.reply_to(json!(id)).await
    }

    pub async fn reply_to(&mut self, id: Value) -> Value {
        loop {
            match self.frame().await {
                Frame::Json(v) if v.get("re") == Some(&id) => return v,
                Frame::Json(v) if v.get("re").is_some() => panic!("reply to another request: {v}"),
                Frame::Json(v) => self.events.push_back(v),
                Frame::Closed(code) => panic!("closed ({code:?}) while waiting for reply {id}"),
            }
        }
    }

    /// A request that must succeed; returns the reply.
    pub async fn ok(&mut self, op: &str, params: Value) -> Value {
        let r = self.request(op, params.clone()).await;
        assert_eq!(r["ok"], json!(true), "{op} {params} failed: {r}");
        r
    }

    /// Like [`Client::event`], but `None` if none came within `limit`.
    pub async fn event_within(
        &mut self,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.remove(i);
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert!(v.get("re").is_none(), "unexpected reply {v}");
                    if pred(&v) {
                        return Some(v);
                    }
                    self.events.push_back(v);
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("connection ended: {other:?}"),
            }
        }
    }

    /// Waits for the first event matching `pred` (earlier ones are kept).
    pub async fn event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.remove(i).unwrap();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "no event: {what}; got {:?}",
                self.events
            );
            match tokio::time::timeout(WAIT, self.frame()).await {
                Ok(Frame::Json(v)) => {
                    if v.get("re").is_some() {
                        panic!("unexpected reply {v}");
                    }
                    if pred(&v) {
                        return v;
                    }
                    self.events.push_back(v);
                }
                Ok(Frame::Closed(c)) => panic!("closed ({c:?}) waiting for {what}"),
                Err(_) => panic!("no event: {what}"),
            }
        }
    }

    /// Waits for an event with `op` whose fields include `fields`.
    pub async fn event_op(&mut self, op: &str, fields: Value) -> Value {
        let what = format!("{op} {fields}");
        self.event(&what, |e| e["op"] == op && contains(e, &fields))
            .await
    }

    /// Waits until `account` has `status` (an `account.status` event).
    pub async fn account_status(&mut self, account: i64, status: &str) -> Value {
        self.event_op(
            "account.status",
            json!({"account": account, "status": status}),
        )
        .await
    }
}

/// Reads events (those already queued first) until one with
/// `seq >= upto` arrived; returns them all.
pub async fn events_until(c: &mut Client, upto: u64) -> Vec<Value> {
    let mut out: Vec<Value> = c.events.drain(..).collect();
    while out.last().and_then(|e| e["seq"].as_u64()).unwrap_or(0) < upto {
        match c.frame().await {
            Frame::Json(v) if v.get("re").is_none() => out.push(v),
            Frame::Json(v) => panic!("unexpected reply {v}"),
            Frame::Closed(code) => panic!("closed {code:?}"),
        }
    }
    out
}

/// Whether `v` contains every field of `pattern` (recursively for objects).
pub fn contains(v: &Value, pattern: &Value) -> bool {
    match (v, pattern) {
        (Value::Object(v), Value::Object(p)) => p
            .iter()
            .all(|(k, pv)| v.get(k).is_some_and(|vv| contains(vv, pv))),
        _ => v == pattern,
    }
}

/// The other person on IRC: a raw IRC client speaking to ngircd.
pub struct IrcPeer {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    pub nick: String,
}

impl IrcPeer {
    pub async fn connect(port: u16, nick: &str) -> IrcPeer {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (r, w) = stream.into_split();
        let mut peer = IrcPeer {
            reader: BufReader::new(r),
            writer: w,
            nick: nick.to_owned(),
        };
        peer.send(&format!("NICK {nick}")).await;
        peer.send(&format!("USER {nick} 0 * :{nick}")).await;
        peer.expect(" 001 ").await;
        peer
    }

    /// Connects as `nick` and joins `channel` (until the end of its names
    /// list).
    pub async fn in_channel(port: u16, nick: &str, channel: &str) -> IrcPeer {
        let mut peer = IrcPeer::connect(port, nick).await;
        peer.join(channel).await;
        peer
    }

    /// Joins `channel` and waits for the end of its names list.
    pub async fn join(&mut self, channel: &str) {
        self.send(&format!("JOIN {channel}")).await;
        self.expect(" 366 ").await;
    }

    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Sends raw bytes (for invalid UTF-8 and control characters).
    pub async fn send_bytes(&mut self, line: &[u8]) {
        self.writer.write_all(line).await.unwrap();
        self.writer.write_all(b"\r\n").await.unwrap();
    }

    /// Reads lines until one contains `needle`; answers PINGs.
    pub async fn expect(&mut self, needle: &str) -> String {
        self.expect_within(needle, WAIT)
            .await
            .unwrap_or_else(|| panic!("IRC peer: no line with {needle:?}"))
    }

    /// Every line (PINGs answered and left out) up to and including the
    /// first that contains `needle`.
    pub async fn lines_until(&mut self, needle: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut raw = Vec::new();
            let n = tokio::time::timeout(WAIT, self.reader.read_until(b'\n', &mut raw))
                .await
                .unwrap_or_else(|_| panic!("IRC peer: no line with {needle:?} in {lines:?}"))
                .unwrap();
            assert!(n > 0, "IRC server closed the connection");
            let line = String::from_utf8_lossy(&raw).into_owned();
            if let Some(rest) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {}", rest.trim_end())).await;
                continue;
            }
            let done = line.contains(needle);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Like `expect`, but gives up (`None`) after `limit`.
    pub async fn expect_within(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let mut line = String::new();
            let left = deadline.saturating_duration_since(Instant::now());
            let mut raw = Vec::new();
            let Ok(n) = tokio::time::timeout(left, self.reader.read_until(b'\n', &mut raw)).await
            else {
                return None;
            };
            let n = n.unwrap();
            assert!(n > 0, "IRC server closed the connection");
            line.push_str(&String::from_utf8_lossy(&raw));
            if let Some(rest) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {}", rest.trim_end())).await;
                continue;
            }
            if line.contains(needle) {
                return Some(line);
            }
        }
    }
}

/// Adds an IRC account for `nick` on the local ngircd and waits until it
/// is connected; returns the account id.
pub async fn add_irc_account(c: &mut Client, port: u16, nick: &str) -> i64 {
    let r = c
        .ok(
            "account.add",
            json!({"protocol": "prpl-irc", "username": format!("{nick}@127.0.0.1"),
                   "options": {"port": port}}),
        )
        .await;
    let id = r["account"]["id"].as_i64().unwrap();
    c.account_status(id, "connected").await;
    id
}

/// Waits for the backend's next connection to `listener` (a scripted
/// server in the test: kept open and silent, the account stays
/// `connecting`).
pub async fn next_connection(listener: &tokio::net::TcpListener) -> TcpStream {
    let (s, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .expect("the backend connected")
        .unwrap();
    s
}

/// Says `hello` and waits until `account` is connected and, if given,
/// `joined` is a joined chat: from the snapshot when that happened before
/// this client came (after a restart the backend signs on by itself), else
/// from the events. Returns the `hello` reply.
pub async fn hello_when_ready(c: &mut Client, account: i64, joined: Option<&str>) -> Value {
    let hello = c.ok("hello", json!({})).await;
    let connected = hello["accounts"].as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x["id"] == account && x["status"] == "connected")
    });
    if !connected {
        c.account_status(account, "connected").await;
    }
    if let Some(name) = joined {
        let in_snapshot = hello["chats"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["account"] == account && x["conversation"] == chat(name))
        });
        if !in_snapshot {
            c.event_op(
                "chat.joined",
                json!({"account": account, "conversation": chat(name)}),
            )
            .await;
        }
    }
    hello
}

/// The texts of `account`'s history of `conversation` (up to 500, oldest
/// first), without system lines.
pub async fn history_texts(c: &mut Client, account: i64, conversation: Value) -> Vec<String> {
    let r = c
        .ok(
            "history",
            json!({"account": account, "conversation": conversation, "limit": 500}),
        )
        .await;
    r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] != "system")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

pub fn chat(name: &str) -> Value {
    json!({"kind": "chat", "name": name})
}

pub fn im(name: &str) -> Value {
    json!({"kind": "im", "name": name})
}

pub async fn add_xmpp(c: &mut Client, port: u16, user: &str, password: &str) -> i64 {
    let r = c
        .ok(
            "account.add",
            json!({"protocol": "prpl-jabber", "username": format!("{user}@localhost/sapphire"),
                   "password": password,
                   "options": {"connect_server": "localhost", "port": port}}),
        )
        .await;
    r["account"]["id"].as_i64().unwrap()
}

/// Waits for the certificate prompt (a `request.open` with an Accept
/// action).
pub async fn certificate_prompt(c: &mut Client) -> Value {
    c.event("certificate prompt", |e| {
        e["op"] == "request.open"
            && e["actions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["label"] == "Accept"))
    })
    .await
}

/// Adds the XMPP accounts `first` and `second` (user, password) on the
/// prosody at `port` and waits until both are connected: the first one's
/// certificate prompt is accepted, the second asks none (the certificate
/// is remembered). Returns their ids.
pub async fn add_xmpp_pair(
    c: &mut Client,
    port: u16,
    first: (&str, &str),
    second: (&str, &str),
) -> (i64, i64) {
    let a = add_xmpp(c, port, first.0, first.1).await;
    accept_certificate(c, a).await;
    let b = add_xmpp(c, port, second.0, second.1).await;
    c.account_status(b, "connected").await;
    (a, b)
}

/// Accepts the certificate prompt and waits until `account` is connected.
pub async fn accept_certificate(c: &mut Client, account: i64) {
    let prompt = certificate_prompt(c).await;
    let accept = action_id(&prompt, "Accept");
    c.ok(
        "request.answer",
        json!({"request": prompt["request"], "action": accept}),
    )
    .await;
    c.account_status(account, "connected").await;
}

/// The fields of a `fields` prompt, all groups in order.
pub fn form_fields(form: &Value) -> Vec<&Value> {
    form["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["fields"].as_array().unwrap())
        .collect()
}

/// Waits for the first `notice` with `fields` and asserts that its
/// `primary` says `text`; returns the notice.
pub async fn notice_saying(c: &mut Client, fields: Value, text: &str) -> Value {
    let notice = c.event_op("notice", fields).await;
    assert!(
        notice["primary"].as_str().is_some_and(|p| p.contains(text)),
        "{notice}"
    );
    notice
}

pub fn action_id(prompt: &Value, label: &str) -> Value {
    prompt["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["label"] == label)
        .unwrap_or_else(|| panic!("no action {label} in {prompt}"))["id"]
        .clone()
}

/// `owner` asks to join MUC `room`, which does not exist yet: libpurple
/// asks how to configure the new room (a prompt), answered with the
/// action labelled `choice`.
pub async fn new_room(c: &mut Client, owner: i64, room: &str, choice: &str) {
    c.ok("chat.join", json!({"account": owner, "name": room}))
        .await;
    let prompt = c
        .event_op("request.open", json!({"kind": "action", "account": owner}))
        .await;
    c.ok(
        "request.answer",
        json!({"request": prompt["request"], "action": action_id(&prompt, choice)}),
    )
    .await;
}

/// `owner` creates MUC `room` with the default configuration and waits
/// until joined.
pub async fn create_room(c: &mut Client, owner: i64, room: &str) {
    new_room(c, owner, room, "Accept Defaults").await;
    c.event_op(
        "chat.joined",
        json!({"account": owner, "conversation": chat(room)}),
    )
    .await;
}

/// `account` joins an existing MUC `room`. The room is unlocked once the
/// server has applied its owner's configuration; until then joining
/// fails, so this retries.
pub async fn join_room(c: &mut Client, account: i64, room: &str) {
    for attempt in 0.. {
        assert!(attempt < 50, "account {account} could not join {room}");
        c.ok("chat.join", json!({"account": account, "name": room}))
            .await;
        let e = c
            .event("joined or failed to", |e| {
                (e["op"] == "chat.joined" && e["account"] == account)
                    || (e["op"] == "notice"
                        && e["primary"]
                            .as_str()
                            .is_some_and(|p| p.contains("Error joining chat")))
            })
            .await;
        if e["op"] == "chat.joined" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Where Debian's inspircd is unpacked for the tests: it conflicts with
/// ngircd as an installed package, so the harness downloads its .deb
/// (`apt-get download`, once, into `$SAPPHIRE_TEST_CACHE` or
/// `/var/cache/sapphire-test`) and runs it from the unpacked tree; its
/// libraries are ordinary packages (`scripts/apt-packages-test`). `Err`
/// says why it cannot be had (the test then skips, saying so).
pub fn inspircd_root() -> Result<PathBuf, String> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cache = std::env::var_os("SAPPHIRE_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/sapphire-test"));
    let root = cache.join("inspircd-root");
    let binary = root.join("usr/sbin/inspircd");
    if binary.exists() {
        return Ok(root);
    }
    std::fs::create_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let work = tempfile::tempdir_in(&cache).map_err(|e| e.to_string())?;
    let out = Command::new("apt-get")
        .args(["download", "inspircd"])
        .current_dir(work.path())
        .output()
        .map_err(|e| format!("apt-get: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "apt-get download inspircd failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let deb = std::fs::read_dir(work.path())
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download inspircd left no .deb")?;
    let unpacked = work.path().join("root");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .map_err(|e| format!("dpkg-deb: {e}"))?;
    if !status.success() {
        return Err("dpkg-deb -x inspircd failed".into());
    }
    // Atomic: another test process may be doing the same.
    if std::fs::rename(&unpacked, &root).is_err() && !binary.exists() {
        return Err(format!("cannot move inspircd to {}", root.display()));
    }
    Ok(root)
}

/// A private inspircd (Debian's, unpacked) on a free loopback port, with
/// `m_chanhistory` (channel mode `+H`: history replayed on join, as plain
/// PRIVMSGs to clients without IRCv3 server-time) and `m_connectban` (a
/// per-address reconnect throttle: the `threshold`th connection within a
/// short time gets a 2 s Z-line, closed before registration).
pub struct Inspircd {
    pub port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
    /// The last octet of the loopback address the next
    /// [`Inspircd::stranger_connects`] comes from (127.0.0.2 on).
    strangers: std::sync::atomic::AtomicU8,
}

impl Inspircd {
    /// `None` (after printing why) when the package cannot be fetched.
    pub fn start(connectban_threshold: u32) -> Option<Inspircd> {
        Inspircd::start_with(connectban_threshold, false)
    }

    /// With `lookups`, the server looks up each client's host name and says
    /// so in server notices before registration (as most servers do).
    pub fn start_with(connectban_threshold: u32, lookups: bool) -> Option<Inspircd> {
        let resolve = if lookups { "yes" } else { "no" };
        let root = match inspircd_root() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("SKIP: inspircd is not available: {e}");
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let port = free_port();
        std::fs::write(dir.path().join("motd"), "inspircd test server\n").unwrap();
        let conf = dir.path().join("inspircd.conf");
        // connectban: the `threshold`-th connection from one address (in
        // an hour, Z-lined ones not counted) gets it a Z-line of 2 s. That
        // ban does end, but inspircd 3.15 may cache it for 24 h: see
        // `Inspircd::stranger_connects` and tests/backend_inspircd.rs.
        std::fs::write(
            &conf,
            format!(
                r#"<config format="xml">
<server name="irc.inspircd.test" description="Sapphire test" network="Test">
<admin name="Test" nick="test" email="test@example.org">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect allow="*" timeout="60" threshold="1000" pingfreq="120" sendq="262144" recvq="8192" localmax="1000" globalmax="1000" useident="no" resolvehostnames="{resolve}" limit="5000" modes="">
<files motd="{d}/motd">
<pid file="{d}/pid">
<path configdir="{d}" datadir="{d}" logdir="{d}" moduledir="{m}">
<dns server="127.0.0.1" timeout="1">
<options defaultmodes="not">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="debug" target="{d}/ircd.log">
<module name="chanhistory">
<chanhistory maxlines="50" notice="no" bots="yes" prefixmsg="no">
<module name="connectban">
<connectban threshold="{connectban_threshold}" duration="2s" banduration="2s" bootwait="0" splitwait="0" ipv4cidr="32" banmessage="Reconnecting too fast">
"#,
                m = root.join("usr/lib/inspircd/modules").display()
            ),
        )
        .unwrap();
        let child = Command::new(root.join("usr/sbin/inspircd"))
            .arg("--config")
            .arg(&conf)
            .args(["--nofork", "--runasroot"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("inspircd starts");
        let mut proc = Proc(child);
        wait_tcp(port, &mut proc.0, "inspircd", Duration::from_secs(15));
        Some(Inspircd {
            port,
            _proc: proc,
            _dir: dir,
            strangers: std::sync::atomic::AtomicU8::new(2),
        })
    }

    /// The server's log (`ircd.log` in its directory, debug level: it
    /// shows Z-lines and ban-cache hits).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("ircd.log")).unwrap_or_default()
    }

    /// Another user of the server connects, from a loopback address no
    /// connection came from before (127.0.0.2, .3, ...), says QUIT and is
    /// gone; returns once the server has closed it. Each address is used
    /// once, so it has no ban-cache entry and the server checks it against
    /// its Z-lines, which is what makes inspircd 3.15 remove Z-lines that
    /// are over: see `a_reconnect_throttle_is_an_error_then_a_retry_signs_on`.
    pub async fn stranger_connects(&self) {
        let n = self
            .strangers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(n < 255, "out of loopback addresses");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, n], 0)))
            .unwrap();
        let mut s = socket
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], self.port)))
            .await
            .expect("a stranger connects");
        let _ = s.write_all(b"QUIT\r\n").await;
        let mut rest = Vec::new();
        tokio::time::timeout(
            WAIT,
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut rest),
        )
        .await
        .expect("the server closes a stranger's connection after QUIT")
        .ok();
    }
}
