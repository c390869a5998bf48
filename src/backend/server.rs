//! The WebSocket server on the backend's Unix socket.
//!
//! Each connection has a reader (requests, in order, one reply each) and a
//! writer (replies and, after `hello`, the replay then live events from a
//! bounded queue). A client whose queue overflows is closed with 1008 and
//! resumes with `hello {since}`; it never slows the others or libpurple.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::event::{ConvRef, Event};
use super::hub::{Hub, Kick};
use super::protocol::{
    self, reply_err, reply_ok, OpError, OpResult, Params, CLIENT_QUEUE, MAX_FRAME,
};
use super::purple::Purple;
use super::store::{self, ConvKey};

/// Everything a connection needs.
pub struct Ctx {
    pub hub: Arc<Hub>,
    pub purple: Purple,
}

static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
const SHUTDOWN_CLOSE_TIMEOUT: Duration = Duration::from_millis(800);

enum Out {
    Text(String),
    /// The `hello` reply, then replay of `(since, upto]`, then live events.
    Hello {
        reply: String,
        since: Option<u64>,
        upto: u64,
    },
    Close(u16, &'static str),
}

/// Accepts connections until `shutdown` becomes true, then waits (briefly)
/// for every connection to be closed with 1001.
pub async fn serve(listener: UnixListener, ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move { connection(stream, ctx, shutdown).await });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_CLOSE_TIMEOUT + Duration::from_millis(200), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}

async fn connection(stream: UnixStream, ctx: Arc<Ctx>, shutdown: watch::Receiver<bool>) {
    let config = WebSocketConfig {
        max_message_size: Some(MAX_FRAME),
        max_frame_size: Some(MAX_FRAME),
        // A client that sends pings and never reads would otherwise grow
        // tungstenite's write buffer with pongs without bound: past this
        // the connection fails and is dropped.
        max_write_buffer_size: MAX_WRITE_BUFFER,
        ..Default::default()
    };
    let (stream, pending) = PendingBytes::wrap(stream);
    // Any path is accepted: the proxy decides who gets here.
    let ws = match tokio_tungstenite::accept_async_with_config(stream, Some(config)).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!("WebSocket handshake failed: {e}");
            return;
        }
    };
    let id = NEXT_CLIENT.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(client = id, "client connected");
    let (sink, mut source) = ws.split();
    let (out_tx, out_rx) = mpsc::channel::<Out>(64);
    let (event_tx, event_rx) = mpsc::channel::<Arc<str>>(CLIENT_QUEUE);
    let kick = Kick::default();
    let writer = tokio::spawn(writer(
        sink,
        out_rx,
        event_rx,
        kick.clone(),
        shutdown,
        ctx.hub.clone(),
    ));
    let mut client = Client {
        id,
        subscribed: false,
        event_tx: Some(event_tx),
        kick,
    };
    pending.reset();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let next = tokio::select! {
            next = source.next() => next,
            _ = tick.tick() => {
                if pending.older_than(INCOMPLETE_MESSAGE_DEADLINE) {
                    tracing::debug!(client = id, "incomplete message for too long");
                    let _ = out_tx.send(Out::Close(1008, "message not completed in time")).await;
                    break;
                }
                continue;
            }
        };
        // A whole frame arrived (a data message, its last fragment, or a
        // control frame): whatever was read so far is accounted for.
        pending.reset();
        let out = match next {
            Some(Ok(Message::Text(text))) => handle(&ctx, &mut client, &text).await,
            Some(Ok(Message::Binary(_))) => Out::Text(reply_err(
                &Value::Null,
                &OpError::bad_request("binary frames are not accepted; send JSON text"),
            )),
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue, // ping/pong are answered by tungstenite
            Some(Err(WsError::Capacity(_))) => Out::Close(1009, "message too big"),
            Some(Err(WsError::Protocol(
                tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ))) => break,
            Some(Err(WsError::Protocol(e))) => {
                tracing::debug!(client = id, "protocol error: {e}");
                Out::Close(1002, "WebSocket protocol error")
            }
            Some(Err(WsError::Utf8)) => Out::Close(1007, "text frame is not UTF-8"),
            Some(Err(e)) => {
                tracing::debug!(client = id, "read failed: {e}");
                break;
            }
        };
        let closing = matches!(out, Out::Close(..));
        if out_tx.send(out).await.is_err() || closing {
            break;
        }
    }
    drop(out_tx);
    ctx.hub.unsubscribe(id);
    let _ = writer.await;
    tracing::debug!(client = id, "client gone");
}

/// Largest amount of outgoing data buffered for one client (bytes).
const MAX_WRITE_BUFFER: usize = 4 * MAX_FRAME;

/// How long a client may take to finish a message it started (a frame
/// sent byte by byte, or a fragmented message without its last fragment)
/// before it is closed with 1008: otherwise each such connection would hold
/// up to a megabyte for as long as it likes.
const INCOMPLETE_MESSAGE_DEADLINE: Duration = Duration::from_secs(10);

/// A stream that remembers when bytes arrived that have not yet made up a
/// whole frame (the connection loop resets it after each frame).
struct PendingBytes<S> {
    inner: S,
    since: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// The connection loop's view of [`PendingBytes`].
#[derive(Clone)]
struct Pending(Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl<S> PendingBytes<S> {
    fn wrap(inner: S) -> (PendingBytes<S>, Pending) {
        let since = Arc::new(std::sync::Mutex::new(None));
        (
            PendingBytes {
                inner,
                since: since.clone(),
            },
            Pending(since),
        )
    }
}

impl Pending {
    fn reset(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    fn older_than(&self, limit: Duration) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() > limit)
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for PendingBytes<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
            since.get_or_insert_with(std::time::Instant::now);
        }
        r
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for PendingBytes<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Client {
    id: u64,
    subscribed: bool,
    event_tx: Option<mpsc::Sender<Arc<str>>>,
    kick: Kick,
}

enum Stop {
    Gone,
    Close(u16, &'static str),
}

type Sink = futures_util::stream::SplitSink<WebSocketStream<PendingBytes<UnixStream>>, Message>;

async fn send(
    sink: &mut Sink,
    text: String,
    kick: &Kick,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
    tokio::select! {
        r = sink.send(Message::Text(text)) => r.map_err(|e| {
            tracing::debug!("send failed: {e}");
            Stop::Gone
        }),
        _ = kick.kicked() => Err(Stop::Close(1008, "too slow: resume with hello {since}")),
        _ = shutdown.changed() => Err(Stop::Close(1001, "backend shutting down")),
    }
}

async fn writer(
    mut sink: Sink,
    mut out_rx: mpsc::Receiver<Out>,
    mut event_rx: mpsc::Receiver<Arc<str>>,
    kick: Kick,
    mut shutdown: watch::Receiver<bool>,
    hub: Arc<Hub>,
) {
    let mut subscribed = false;
    let stop = if *shutdown.borrow() {
        Stop::Close(1001, "backend shutting down")
    } else {
        loop {
            let r = tokio::select! {
                biased;
                _ = kick.kicked() => Err(Stop::Close(1008, "too slow: resume with hello {since}")),
                _ = shutdown.changed() => Err(Stop::Close(1001, "backend shutting down")),
                out = out_rx.recv() => match out {
                    None => Err(Stop::Gone),
                    Some(Out::Text(t)) => send(&mut sink, t, &kick, &mut shutdown).await,
                    Some(Out::Close(code, reason)) => Err(Stop::Close(code, reason)),
                    Some(Out::Hello { reply, since, upto }) => {
                        let r = match send(&mut sink, reply, &kick, &mut shutdown).await {
                            Ok(()) => match since {
                                Some(since) => replay(&mut sink, &hub, since, upto, &kick, &mut shutdown).await,
                                None => Ok(()),
                            },
                            Err(e) => Err(e),
                        };
                        subscribed = true;
                        r
                    }
                },
                ev = event_rx.recv(), if subscribed => match ev {
                    Some(ev) => send(&mut sink, ev.to_string(), &kick, &mut shutdown).await,
                    // The hub dropped us: the queue overflowed.
                    None => Err(Stop::Close(1008, "too slow: resume with hello {since}")),
                },
            };
            if let Err(stop) = r {
                break stop;
            }
        }
    };
    match &stop {
        Stop::Close(code, reason) => tracing::debug!("closing a client: {code} {reason}"),
        Stop::Gone => tracing::debug!("a client's socket failed or closed"),
    }
    if let Stop::Close(code, reason) = stop {
        let limit = if code == 1001 {
            SHUTDOWN_CLOSE_TIMEOUT
        } else {
            CLOSE_TIMEOUT
        };
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(limit, async {
            let _ = sink.send(Message::Close(Some(frame))).await;
            let _ = sink.flush().await;
        })
        .await;
    } else {
        // The client closed (or went away): flush the close reply
        // tungstenite queued, if the socket still takes it.
        let _ = tokio::time::timeout(SHUTDOWN_CLOSE_TIMEOUT, sink.close()).await;
    }
}

/// Sends stored events `(since, upto]` in order.
async fn replay(
    sink: &mut Sink,
    hub: &Hub,
    since: u64,
    upto: u64,
    kick: &Kick,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
    let path = hub.db_path().to_owned();
    let mut reader = match tokio::task::spawn_blocking(move || store::Reader::open(&path)).await {
        Ok(Ok(r)) => r,
        _ => return Err(Stop::Close(1011, "cannot read history")),
    };
    let mut after = since;
    while after < upto {
        let (r, batch) = tokio::task::spawn_blocking(move || {
            let batch = reader.events(after, upto, 256);
            (reader, batch)
        })
        .await
        .map_err(|_| Stop::Close(1011, "cannot read history"))?;
        reader = r;
        let batch = batch.map_err(|_| Stop::Close(1011, "cannot read history"))?;
        if batch.is_empty() {
            break;
        }
        for (seq, body) in batch {
            send(sink, body, kick, shutdown).await?;
            after = seq;
        }
    }
    Ok(())
}

/// Longest request id accepted (bytes).
const MAX_ID_LEN: usize = 256;

/// Handles one request frame; always produces exactly one reply.
async fn handle(ctx: &Ctx, client: &mut Client, text: &str) -> Out {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Out::Text(reply_err(
                &Value::Null,
                &OpError::new("bad_json", format!("invalid JSON: {e}")),
            ))
        }
    };
    let Value::Object(req) = value else {
        return Out::Text(reply_err(
            &Value::Null,
            &OpError::bad_request("a request must be a JSON object"),
        ));
    };
    let id = match req.get("id") {
        // Integers that JSON numbers hold exactly (serde_json reads larger
        // ones as floats, which would be echoed rounded).
        Some(id @ Value::Number(n)) if n.is_i64() || n.is_u64() => id.clone(),
        Some(id @ Value::String(s)) if s.len() <= MAX_ID_LEN => id.clone(),
        _ => {
            return Out::Text(reply_err(
                &Value::Null,
                &OpError::bad_request(format!(
                    "'id' (an integer of 64 bits or a string of at most {MAX_ID_LEN} bytes) is required"
                )),
            ))
        }
    };
    let op = match req.get("op") {
        Some(Value::String(op)) => op.clone(),
        _ => {
            return Out::Text(reply_err(
                &id,
                &OpError::bad_request("'op' (a string) is required"),
            ))
        }
    };
    if op == "hello" {
        return match hello(ctx, client, &req).await {
            Ok((reply, since, upto)) => Out::Hello {
                reply: reply_ok(&id, reply),
                since,
                upto,
            },
            Err(e) => Out::Text(reply_err(&id, &e)),
        };
    }
    let result = match op.as_str() {
        "ping" => Ok(json!({})),
        "history" => history(ctx, &req).await,
        "search" => search(ctx, &req).await,
        "mentions" => mentions(ctx, &req).await,
        "conversations.list" => conversations_list(ctx, &req).await,
        "mark_read" => mark_read(ctx, &req).await,
        "notify.get" => super::notify::get(&req),
        "notify.set" => super::notify::set(&ctx.hub, &req).await,
        "push.vapid_key" => super::push::vapid_key(ctx.hub.db_path().to_owned()).await,
        "push.subscribe" => super::push::subscribe(ctx.hub.db_path().to_owned(), &req).await,
        "push.unsubscribe" => super::push::unsubscribe(ctx.hub.db_path().to_owned(), &req).await,
        "push.list" => super::push::list(ctx.hub.db_path().to_owned()).await,
        op if super::purple::is_op(op) => ctx.purple.op(op.to_owned(), req).await,
        _ => Err(OpError::new("unknown_op", format!("unknown op '{op}'"))),
    };
    Out::Text(match result {
        Ok(v) => reply_ok(&id, v),
        Err(e) => reply_err(&id, &e),
    })
}

async fn hello(
    ctx: &Ctx,
    client: &mut Client,
    req: &Map<String, Value>,
) -> Result<(Value, Option<u64>, u64), OpError> {
    let p = Params(req);
    let since = p.opt_u64("since")?;
    if client.subscribed {
        return Err(OpError::new(
            "already_subscribed",
            "hello was already sent on this connection",
        ));
    }
    if let Some(since) = since {
        let last = ctx.hub.last_seq();
        if since > last {
            return Err(OpError::new(
                "bad_since",
                format!("since {since} is after the last event {last}"),
            ));
        }
    }
    let tx = client
        .event_tx
        .take()
        .ok_or_else(|| OpError::internal("no event queue"))?;
    // The hub's lock may be held by an emit's commit: wait for it on a
    // blocking thread, not on the reactor.
    let (hub, id, kick) = (ctx.hub.clone(), client.id, client.kick.clone());
    let sub = tokio::task::spawn_blocking(move || hub.subscribe(id, tx, kick))
        .await
        .map_err(OpError::internal)?;
    client.subscribed = true;
    let mut reply = json!({
        "protocol": protocol::PROTOCOL_VERSION,
        "server": concat!("sapphire-backend ", env!("CARGO_PKG_VERSION")),
        "last_seq": sub.last_seq,
    });
    if let (Value::Object(r), Value::Object(s)) = (&mut reply, sub.snapshot) {
        r.extend(s);
    }
    // Read after subscribing: a change racing with it is also in the
    // events that follow, and applying it twice is harmless.
    if let Some(n) = super::notify::settings() {
        reply["notify"] = n.to_json();
    }
    Ok((reply, since, sub.last_seq))
}

fn conv_key(p: &Params) -> Result<ConvKey, OpError> {
    let account = p.i64("account")?;
    let (kind, name) = p.conversation()?;
    Ok(ConvKey {
        account,
        kind: kind.as_str().to_owned(),
        name: name.to_owned(),
    })
}

fn limit(p: &Params) -> Result<usize, OpError> {
    let limit = p.opt_u64("limit")?.unwrap_or(50);
    if limit == 0 || limit > 500 {
        return Err(OpError::bad_request("'limit' must be between 1 and 500"));
    }
    Ok(limit as usize)
}

async fn read_db<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&store::Reader) -> Result<T, store::StoreError> + Send + 'static,
) -> Result<T, OpError> {
    let path = ctx.hub.db_path().to_owned();
    tokio::task::spawn_blocking(move || {
        let reader = store::Reader::open(&path)?;
        f(&reader)
    })
    .await
    .map_err(OpError::internal)?
    .map_err(OpError::internal)
}

async fn history(ctx: &Ctx, req: &Map<String, Value>) -> OpResult {
    let p = Params(req);
    let key = conv_key(&p)?;
    let before = p.opt_u64("before")?;
    let limit = limit(&p)?;
    let messages = read_db(ctx, move |r| r.history(&key, before, limit)).await?;
    Ok(json!({"messages": messages}))
}

/// `conversations.list {before?, limit?}`: the conversations after a
/// snapshot's or page's cursor (`conversations_next` / `next`).
async fn conversations_list(ctx: &Ctx, req: &Map<String, Value>) -> OpResult {
    let p = Params(req);
    let cursor =
        match p.opt_str("before")? {
            None => None,
            Some(s) => Some(super::hub::ConvCursor::parse(s).ok_or_else(|| {
                OpError::bad_request("'before' is not a cursor from this backend")
            })?),
        };
    let limit = match p.opt_u64("limit")?.unwrap_or(500) {
        n @ 1..=1000 => n as usize,
        _ => return Err(OpError::bad_request("'limit' must be between 1 and 1000")),
    };
    let hub = ctx.hub.clone();
    let (conversations, next) =
        tokio::task::spawn_blocking(move || hub.conversations_page(cursor, limit))
            .await
            .map_err(OpError::internal)?;
    Ok(json!({
        "conversations": conversations,
        "next": next.map(super::hub::ConvCursor::to_wire),
    }))
}

async fn search(ctx: &Ctx, req: &Map<String, Value>) -> OpResult {
    let p = Params(req);
    let query = p.str("query")?.to_owned();
    if query.len() > 1024 {
        return Err(OpError::new(
            "too_long",
            "'query' is longer than 1024 bytes",
        ));
    }
    if query.contains('\0') {
        return Err(OpError::bad_request("'query' contains NUL"));
    }
    let limit = limit(&p)?;
    let messages = read_db(ctx, move |r| r.search(&query, limit)).await?;
    Ok(json!({"messages": messages}))
}

async fn mentions(ctx: &Ctx, req: &Map<String, Value>) -> OpResult {
    let limit = limit(&Params(req))?;
    let messages = read_db(ctx, move |r| r.mentions(limit)).await?;
    Ok(json!({"messages": messages}))
}

async fn mark_read(ctx: &Ctx, req: &Map<String, Value>) -> OpResult {
    let p = Params(req);
    let key = conv_key(&p)?;
    let (kind, name) = p.conversation()?;
    let name = name.to_owned();
    let seq = p.u64("seq")?;
    if seq > ctx.hub.last_seq() {
        return Err(OpError::new("bad_seq", "'seq' is after the last event"));
    }
    let k = key.clone();
    if !read_db(ctx, move |r| r.conversation_exists(&k)).await? {
        return Err(OpError::new("no_such_conversation", "no such conversation"));
    }
    let hub = ctx.hub.clone();
    let event = Event::Read {
        account: key.account,
        conversation: ConvRef { kind, name },
        read_seq: seq,
    };
    let seq = tokio::task::spawn_blocking(move || hub.emit(event))
        .await
        .map_err(OpError::internal)?
        .map_err(OpError::internal)?;
    Ok(json!({"seq": seq}))
}
