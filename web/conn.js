// The WebSocket connection to the user's backend (through the proxy at /ws).
//
// * Every request gets an id and exactly one reply; `request()` returns a
//   promise for it (rejected with {code, message} on an error reply or when
//   the connection drops before the reply).
// * After `hello`, every event carries a `seq`. The connection remembers the
//   last one and, after any disconnection, reconnects by itself with
//   exponential backoff and resumes with `hello {since}`: the backend replays
//   what was missed, in order. Events at or below the last seen seq are
//   dropped, so nothing is ever delivered twice.
// * A ping every 25 s detects a dead network path that never closes.

const PING_EVERY = 25000;
const PING_TIMEOUT = 10000;
const BACKOFF_MIN = 500;
const BACKOFF_MAX = 30000;

export class ProtocolError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

export class Connection {
  /**
   * handlers: {
   *   hello(reply, {resumed}) — the hello reply (snapshot + last_seq);
   *   event(ev, {replayed}) — one event, in seq order, never twice;
   *   status(state, info) — 'connecting' | 'open' | 'waiting' | 'signed-out';
   * }
   */
  constructor(handlers) {
    this.h = handlers;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.lastSeq = 0; // last event seq delivered
    this.helloSeq = 0; // last_seq of the current hello (events <= it are replays)
    this.ready = false;
    this.stopped = true;
    this.attempt = 0;
    this.timer = null;
    this.pingTimer = null;
    this.retryAt = 0;
    this.onOnline = () => this.retryNow();
    this.onVisible = () => {
      if (document.visibilityState === 'visible' && !this.ws) this.retryNow();
    };
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.open();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onVisible);
    clearTimeout(this.timer);
    clearInterval(this.pingTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'signed out');
    }
    this.failPending('stopped', 'Signed out.');
    this.ready = false;
    this.lastSeq = 0;
  }

  /** Reconnects at once (user asked, or the network came back). */
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    this.open();
  }

  open() {
    if (this.stopped) return;
    this.ready = false;
    this.h.status('connecting', { attempt: this.attempt });
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
    this.ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      opened = true;
      this.hello(this.lastSeq > 0 ? this.lastSeq : undefined);
    });
    ws.addEventListener('message', (ev) => {
      if (this.ws !== ws) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (_) {
        console.warn('backend sent invalid JSON');
        return;
      }
      this.onMessage(msg);
    });
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      clearInterval(this.pingTimer);
      this.failPending('disconnected', 'The connection was lost before the answer came.');
      this.scheduleRetry(ev.code, opened);
    });
  }

  hello(since) {
    const params = since === undefined ? {} : { since };
    this.send('hello', params).then((reply) => {
      this.helloSeq = reply.last_seq;
      const resumed = since !== undefined;
      if (!resumed) this.lastSeq = reply.last_seq;
      this.ready = true;
      this.attempt = 0;
      this.h.hello(reply, { resumed });
      this.h.status('open', {});
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.ping(), PING_EVERY);
    }, (err) => {
      if (err.code === 'bad_since') {
        // The backend's history was reset: start from scratch.
        this.lastSeq = 0;
        this.hello(undefined);
      } else if (this.ws) {
        this.ws.close(4000, 'hello failed');
      }
    });
  }

  ping() {
    const ws = this.ws;
    if (!ws || !this.ready) return;
    const t = setTimeout(() => {
      if (this.ws === ws) ws.close(4001, 'no answer to ping');
    }, PING_TIMEOUT);
    this.send('ping', {}).then(() => clearTimeout(t), () => clearTimeout(t));
  }

  async scheduleRetry(code, opened) {
    if (this.stopped) return;
    // A refused upgrade looks like a plain close to scripts: ask whether
    // the session is still valid before trying again.
    try {
      const res = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store' });
      if (res.status === 401) {
        this.h.status('signed-out', {});
        return;
      }
    } catch (_) {
      // Network down: keep trying.
    }
    if (this.stopped || this.ws) return;
    const delay = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this.attempt);
    const jittered = Math.round(delay / 2 + Math.random() * delay / 2);
    this.attempt = Math.min(this.attempt + 1, 16);
    this.retryAt = Date.now() + jittered;
    this.h.status('waiting', { code, opened, retryAt: this.retryAt });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), jittered);
  }

  onMessage(msg) {
    if (msg.re !== undefined && msg.re !== null) {
      const p = this.pending.get(msg.re);
      if (!p) return;
      this.pending.delete(msg.re);
      if (msg.ok) p.resolve(msg);
      else p.reject(new ProtocolError(msg.error?.code || 'error', msg.error?.message));
      return;
    }
    if (msg.re === null && msg.ok === false) {
      console.warn('backend error', msg.error);
      return;
    }
    if (typeof msg.seq !== 'number' || typeof msg.op !== 'string') return;
    if (msg.seq <= this.lastSeq) return; // already delivered: never twice
    this.lastSeq = msg.seq;
    this.h.event(msg, { replayed: msg.seq <= this.helloSeq });
  }

  send(op, params) {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new ProtocolError('offline', 'Not connected to your Sapphire server; try again in a moment.'));
        return;
      }
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ ...params, id, op }));
    });
  }

  /** A request once connected (after hello). */
  request(op, params = {}) {
    if (!this.ready) {
      return Promise.reject(new ProtocolError('offline', 'Not connected to your Sapphire server; try again in a moment.'));
    }
    return this.send(op, params);
  }

  failPending(code, message) {
    const pending = this.pending;
    this.pending = new Map();
    for (const p of pending.values()) p.reject(new ProtocolError(code, message));
  }
}
