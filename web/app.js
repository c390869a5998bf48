// Sapphire's web client. Plain JavaScript modules, no build step.
//
// State comes from the backend: the `hello` reply is a snapshot (accounts,
// conversations with unread counts, joined chats with topic and members,
// buddies, open prompts) and every later event updates it. Text from IM
// networks is always inserted with textContent (see dom.js), never as HTML.

import { Connection } from '/conn.js';
import { $, h, clear, setText, show, fmtTime, fmtDate, fmtFull } from '/dom.js';

const PAGE = 50;
const TYPING_SHOW_MS = 15000;

const state = {
  user: null,
  accounts: new Map(), // id -> account
  convs: new Map(), // key -> conversation
  buddies: new Map(), // key -> buddy
  requests: new Map(), // id -> request
  protocols: null, // [{id, name, ...}] once fetched
  current: null, // key of the open conversation
  view: 'welcome', // welcome | conv | search | accounts
  narrowMain: false, // on a phone: the main pane is shown instead of the list
  conn: 'connecting',
  connInfo: {},
  status: null,
  pendingJoin: null, // {account, name} to open when joined
  dismissedRequests: new Set(),
};

let conn = null;

// ---------------------------------------------------------------- helpers

const convKey = (account, kind, name) => JSON.stringify([account, kind, name]);

function protocolName(id) {
  const p = state.protocols && state.protocols.find((x) => x.id === id);
  if (p) return p.name;
  const known = { 'prpl-irc': 'IRC', 'prpl-jabber': 'XMPP', 'prpl-simple': 'SIMPLE', 'prpl-zephyr': 'Zephyr',
    'prpl-novell': 'GroupWise', 'prpl-bonjour': 'Bonjour', 'prpl-gg': 'Gadu-Gadu', 'prpl-meanwhile': 'Sametime' };
  return known[id] || id.replace(/^prpl-/, '');
}

function accountLabel(id) {
  const a = state.accounts.get(id);
  if (!a) return `account ${id}`;
  return a.alias || a.username;
}

function conv(account, conversation, create = true) {
  const key = convKey(account, conversation.kind, conversation.name);
  let e = state.convs.get(key);
  if (!e && create) {
    e = {
      key, account, kind: conversation.kind, name: conversation.name,
      unread: 0, read_seq: 0, last_seq: 0,
      messages: [], seqs: new Set(),
      loaded: false, loading: false, hasMore: true,
      joined: false, topic: null, members: new Map(),
      typing: null, created: Date.now(), marking: 0,
    };
    state.convs.set(key, e);
  }
  return e;
}

function addMessage(e, m) {
  if (e.seqs.has(m.seq)) return false;
  e.seqs.add(m.seq);
  const msg = {
    seq: m.seq, time: m.time, sender: m.sender, alias: m.alias, text: m.text,
    direction: m.direction, truncated: m.truncated, delayed: m.delayed,
  };
  const list = e.messages;
  if (list.length === 0 || list[list.length - 1].seq < m.seq) list.push(msg);
  else {
    let i = list.length;
    while (i > 0 && list[i - 1].seq > m.seq) i--;
    list.splice(i, 0, msg);
  }
  return true;
}

function recountUnread(e) {
  if (e.read_seq >= e.last_seq) {
    e.unread = 0;
    return;
  }
  // Exact when the loaded messages reach back to the read marker.
  if (e.messages.length && e.messages[0].seq <= e.read_seq + 1) {
    e.unread = e.messages.filter((m) => m.direction === 'in' && m.seq > e.read_seq).length;
  } else if (!e.hasMore && e.loaded) {
    e.unread = e.messages.filter((m) => m.direction === 'in' && m.seq > e.read_seq).length;
  }
}

function currentConv() {
  return state.current ? state.convs.get(state.current) : null;
}

/** A passing message; `tag` lets a later event take it away (e.g. an account's error once it connects). */
function toast(text, level = 'info', title = null, tag = null) {
  const box = $('toasts');
  if (tag) dropToasts(tag);
  const close = h('button', { type: 'button', class: 'link small', 'aria-label': 'Dismiss' }, 'Dismiss');
  const el = h('div', { class: `toast ${level}`, role: level === 'error' ? 'alert' : 'status', dataset: tag ? { tag } : null },
    title ? h('strong', null, title) : null, h('span', { class: 'pre' }, text), close);
  close.addEventListener('click', () => el.remove());
  box.appendChild(el);
  while (box.children.length > 5) box.firstChild.remove();
  setTimeout(() => el.remove(), level === 'error' ? 30000 : 8000);
}

function dropToasts(tag) {
  for (const el of [...$('toasts').children]) if (el.dataset.tag === tag) el.remove();
}

function errText(err) {
  return (err && err.message) || String(err);
}

// ---------------------------------------------------------------- sign in

async function api(path, body) {
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  let data = {};
  try { data = await res.json(); } catch (_) { /* empty body */ }
  return { res, data };
}

let loginBlockedUntil = 0;
let loginTimer = null;

function loginCountdown() {
  clearInterval(loginTimer);
  const tick = () => {
    const left = Math.ceil((loginBlockedUntil - Date.now()) / 1000);
    const btn = $('login-submit');
    if (left > 0) {
      btn.disabled = true;
      setText(btn, `Sign in (wait ${left} s)`);
    } else {
      clearInterval(loginTimer);
      btn.disabled = false;
      setText(btn, 'Sign in');
    }
  };
  tick();
  loginTimer = setInterval(tick, 1000);
}

function showLogin(message = '') {
  if (conn) {
    conn.stop();
    conn = null;
  }
  resetState();
  state.user = null;
  document.body.classList.remove('signed-in');
  show($('app-view'), false);
  show($('login-view'), true);
  setText($('login-error'), message);
  document.title = 'Sapphire';
  $('username').focus();
}

function showApp(user) {
  state.user = user;
  document.body.classList.add('signed-in');
  show($('login-view'), false);
  show($('app-view'), true);
  setText($('who'), user);
  conn = new Connection({ hello: onHello, event: onEvent, status: onConnStatus });
  conn.start();
  render();
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = $('username').value.trim();
  const password = $('password').value;
  if (!user || !password) {
    setText($('login-error'), 'Enter your user name and password.');
    return;
  }
  if (Date.now() < loginBlockedUntil) return;
  setText($('login-error'), '');
  const btn = $('login-submit');
  btn.disabled = true;
  setText(btn, 'Signing in…');
  let result;
  try {
    result = await api('/api/login', { username: user, password });
  } catch (_) {
    btn.disabled = false;
    setText(btn, 'Sign in');
    setText($('login-error'), 'Cannot reach the Sapphire server. Check your connection and try again.');
    return;
  }
  const { res, data } = result;
  btn.disabled = false;
  setText(btn, 'Sign in');
  if (res.ok) {
    $('password').value = '';
    showApp(data.username);
    return;
  }
  const msg = data.error && data.error.message;
  if (res.status === 401) {
    setText($('login-error'), msg || 'Wrong user name or password.');
    $('password').select();
  } else if (res.status === 429) {
    const secs = parseInt(res.headers.get('Retry-After') || '30', 10) || 30;
    loginBlockedUntil = Date.now() + secs * 1000;
    setText($('login-error'), msg || `Too many failed sign-ins. Try again in ${secs} seconds.`);
    loginCountdown();
  } else {
    setText($('login-error'), msg || `Sign-in failed (HTTP ${res.status}). Try again later.`);
  }
});

$('logout').addEventListener('click', async () => {
  // Stop the connection first: the proxy closes the session's WebSockets
  // (1008) on logout, and that is not a "session ended" surprise here.
  if (conn) {
    conn.stop();
    conn = null;
  }
  try {
    sessionStorage.removeItem('sapphire.current');
    // Tell this browser's other tabs (they share the cookie that is going),
    // before the proxy closes their connections.
    localStorage.setItem('sapphire.signed-out', String(Date.now()));
  } catch (_) { /* storage disabled */ }
  try { await api('/api/logout', {}); } catch (_) { /* signed out locally anyway */ }
  showLogin('You are signed out.');
});

// Why the session ended, as far as this tab can tell: a sign-out in another
// tab of this browser a moment ago, or something else (another device, an
// expired session, a password change).
function sessionEndedMessage() {
  try {
    const at = Number(localStorage.getItem('sapphire.signed-out') || 0);
    if (Date.now() - at < 10000) return 'You signed out in another tab.';
  } catch (_) { /* storage disabled */ }
  return 'Your session has ended. Please sign in again.';
}

// Signed out in another tab of this browser.
window.addEventListener('storage', (ev) => {
  if (ev.key === 'sapphire.signed-out' && state.user) showLogin('You signed out in another tab.');
});

// Signed out elsewhere (another device, an expired session, a password
// change): the open WebSocket may live on, so check when the tab comes back.
async function checkSession() {
  if (!state.user) return;
  try {
    const res = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store' });
    if (res.status === 401 && state.user) showLogin(sessionEndedMessage());
  } catch (_) { /* offline: the connection handles it */ }
}
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') checkSession();
});
setInterval(checkSession, 5 * 60 * 1000);

function resetState() {
  state.accounts.clear();
  state.convs.clear();
  state.buddies.clear();
  state.requests.clear();
  state.current = null;
  state.view = 'welcome';
  state.narrowMain = false;
  state.dismissedRequests.clear();
  msgEls = new Map();
  msgElsKey = null;
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
}

// ---------------------------------------------------------------- protocol

function onConnStatus(s, info) {
  state.conn = s;
  state.connInfo = info;
  if (s === 'signed-out') {
    showLogin(sessionEndedMessage());
    return;
  }
  renderBanner();
}

function onHello(reply, { resumed }) {
  state.accounts = new Map((reply.accounts || []).map((a) => [a.id, a]));
  state.buddies = new Map((reply.buddies || []).map((b) => [convKey(b.account, 'im', b.name), b]));
  state.requests = new Map((reply.requests || []).map((r) => [r.request, r]));
  if (shownRequest !== null && !state.requests.has(shownRequest)) {
    // Answered or closed while this tab was away.
    shownRequest = null;
    $('dlg-request').close();
  }
  for (const e of state.convs.values()) {
    e.joined = false;
    e.members = new Map();
    e.topic = null;
    if (!resumed) {
      e.messages = [];
      e.seqs = new Set();
      e.loaded = false;
      e.hasMore = true;
    }
  }
  if (!resumed) {
    msgEls = new Map();
    msgElsKey = null;
  }
  for (const c of reply.conversations || []) {
    const e = conv(c.account, c.conversation);
    e.unread = c.unread;
    e.read_seq = c.read_seq;
    e.last_seq = c.last_seq;
  }
  for (const c of reply.chats || []) {
    const e = conv(c.account, c.conversation);
    e.joined = true;
    e.topic = c.topic;
    e.members = new Map((c.members || []).map((m) => [m.name, m]));
  }
  // Conversations of removed accounts go away.
  for (const [k, e] of state.convs) {
    if (!state.accounts.has(e.account)) state.convs.delete(k);
  }
  if (state.current && !state.convs.has(state.current)) {
    state.current = null;
    if (state.view === 'conv') state.view = 'welcome';
  }
  const cur = currentConv();
  if (cur && !cur.loaded) loadHistory(cur);
  render();
  // After a reload, come back to the conversation this tab was showing.
  if (!resumed && !state.current) {
    const saved = sessionStorage.getItem('sapphire.current');
    if (saved && state.convs.has(saved)) openConv(saved);
  }
}

function onEvent(ev, { replayed }) {
  const e = ev.conversation && typeof ev.account === 'number' ? conv(ev.account, ev.conversation, ev.op === 'message' || ev.op === 'chat.joined' || ev.op === 'typing') : null;
  if (ev.op === 'message') {
    // Replayed messages (missed while disconnected) fill the gap in the
    // loaded history; the snapshot already counted them.
    addMessage(e, ev);
    if (!replayed) {
      e.last_seq = Math.max(e.last_seq, ev.seq);
      if (ev.direction === 'in' && ev.seq > e.read_seq) e.unread++;
      if (ev.direction === 'in' && e.typing && e.kind === 'im') e.typing = null;
    }
    if (e.key === state.current) markReadSoon();
    scheduleRender();
    return;
  }
  if (replayed) return; // the snapshot already reflects it
  switch (ev.op) {
    case 'read':
      if (e) {
        e.read_seq = Math.max(e.read_seq, ev.read_seq);
        recountUnread(e);
      }
      break;
    case 'account.added':
    case 'account.updated': {
      const old = state.accounts.get(ev.account) || {};
      const info = { ...ev.info };
      if (ev.op === 'account.updated' || old.status) {
        if (old.status) info.status = old.status;
        if (old.message) info.message = old.message;
      }
      state.accounts.set(ev.account, info);
      break;
    }
    case 'account.removed':
      dropToasts(`account-${ev.account}`);
      state.accounts.delete(ev.account);
      for (const [k, c] of state.convs) if (c.account === ev.account) state.convs.delete(k);
      for (const [k, b] of state.buddies) if (b.account === ev.account) state.buddies.delete(k);
      if (state.current && !state.convs.has(state.current)) {
        state.current = null;
        if (state.view === 'conv') state.view = 'welcome';
      }
      break;
    case 'account.status': {
      const a = state.accounts.get(ev.account);
      if (a) {
        a.status = ev.status;
        if (ev.message) a.message = ev.message;
        else delete a.message;
        if (ev.status === 'error' && ev.message) {
          toast(ev.message, 'error', `${accountLabel(ev.account)}: connection error`, `account-${ev.account}`);
        } else if (ev.status === 'connected') dropToasts(`account-${ev.account}`);
      }
      break;
    }
    case 'chat.joined':
      e.joined = true;
      e.members = new Map();
      e.topic = null;
      if (state.pendingJoin && state.pendingJoin.account === ev.account
          && state.pendingJoin.name.toLowerCase() === ev.conversation.name.toLowerCase()) {
        state.pendingJoin = null;
        openConv(e.key);
      }
      break;
    case 'chat.left':
      if (e) {
        e.joined = false;
        e.members = new Map();
      }
      break;
    case 'chat.topic':
      if (e) e.topic = ev.topic;
      break;
    case 'chat.members':
      if (e) applyMembers(e, ev);
      break;
    case 'buddy.added':
    case 'buddy.presence': {
      const k = convKey(ev.account, 'im', ev.name);
      const b = { ...(state.buddies.get(k) || {}), ...ev };
      delete b.op; delete b.seq; delete b.time;
      state.buddies.set(k, b);
      break;
    }
    case 'buddy.removed':
      state.buddies.delete(convKey(ev.account, 'im', ev.name));
      break;
    case 'request.open': {
      const r = { ...ev };
      delete r.op; delete r.seq;
      state.requests.set(r.request, r);
      break;
    }
    case 'request.close':
      state.requests.delete(ev.request);
      if (shownRequest === ev.request) {
        shownRequest = null;
        $('dlg-request').close();
      }
      break;
    case 'typing':
      if (e) {
        e.typing = ev.state === 'none' ? null : { state: ev.state, until: Date.now() + TYPING_SHOW_MS };
        if (e.typing) setTimeout(scheduleRender, TYPING_SHOW_MS + 50);
      }
      break;
    case 'notice': {
      const added = ev.kind === 'added_you' && ev.who
        ? `${ev.alias || ev.who} added you to their buddy list.${ev.message ? `\n${ev.message}` : ''}` : null;
      const text = [added, ev.primary, ev.secondary, ev.text, ev.uri].filter(Boolean).join('\n');
      if (text) toast(text, ev.level === 'error' ? 'error' : ev.level === 'warning' ? 'warning' : 'info',
        ev.title || (typeof ev.account === 'number' ? accountLabel(ev.account) : null));
      break;
    }
    case 'status':
      state.status = { status: ev.status, message: ev.message };
      break;
    default:
      break;
  }
  scheduleRender();
}

function applyMembers(e, ev) {
  for (const n of ev.removed || []) e.members.delete(n);
  for (const r of ev.renamed || []) {
    const m = e.members.get(r.from) || { flags: [] };
    e.members.delete(r.from);
    e.members.set(r.to, { ...m, name: r.to });
  }
  for (const m of ev.added || []) e.members.set(m.name, m);
  for (const m of ev.updated || []) e.members.set(m.name, m);
}

async function loadHistory(e, older = false) {
  if (e.loading || (older && !e.hasMore)) return;
  e.loading = true;
  const params = { account: e.account, conversation: { kind: e.kind, name: e.name }, limit: PAGE };
  if (older && e.messages.length) params.before = e.messages[0].seq;
  try {
    const r = await conn.request('history', params);
    if (older) keepScrollOnPrepend = true;
    for (const m of r.messages) addMessage(e, m);
    e.hasMore = r.messages.length === PAGE;
    e.loaded = true;
  } catch (err) {
    if (err.code !== 'offline' && err.code !== 'disconnected') toast(`Could not load history: ${errText(err)}`, 'error');
  } finally {
    e.loading = false;
  }
  if (e.key === state.current) markReadSoon();
  scheduleRender();
}

let markTimer = null;
function markReadSoon() {
  clearTimeout(markTimer);
  markTimer = setTimeout(markRead, 30);
}

function markRead() {
  const e = currentConv();
  if (!e || state.view !== 'conv' || !conn || !conn.ready) return;
  if (document.visibilityState !== 'visible' || !document.hasFocus()) return;
  if (!e.messages.length) return;
  const seq = e.messages[e.messages.length - 1].seq;
  if (seq <= e.read_seq || seq <= e.marking) return;
  e.marking = seq;
  conn.request('mark_read', { account: e.account, conversation: { kind: e.kind, name: e.name }, seq })
    .catch(() => { e.marking = 0; });
}

window.addEventListener('focus', markReadSoon);
document.addEventListener('visibilitychange', markReadSoon);

// ---------------------------------------------------------------- navigation

function openConv(key) {
  const e = state.convs.get(key);
  if (!e) return;
  const changed = state.current !== key;
  state.current = key;
  try { sessionStorage.setItem('sapphire.current', key); } catch (_) { /* storage disabled */ }
  state.view = 'conv';
  state.narrowMain = true;
  setText($('compose-error'), '');
  if (changed) {
    $('compose').value = '';
    closeMembers();
  }
  if (!e.loaded) loadHistory(e);
  render();
  markReadSoon();
  $('compose').focus();
}

function setView(view) {
  state.view = view;
  state.narrowMain = view !== 'welcome';
  render();
}

function goBack() {
  state.narrowMain = false;
  if (state.view !== 'conv') state.view = state.current ? 'conv' : 'welcome';
  render();
  const cur = document.querySelector('.conv-item.current button') || $('search-input');
  cur.focus();
}

for (const b of document.querySelectorAll('[data-back]')) b.addEventListener('click', goBack);

function orderedConvs() {
  return [...state.convs.values()].sort((a, b) => {
    const la = a.last_seq || 0;
    const lb = b.last_seq || 0;
    if (la !== lb) return lb - la;
    return b.created - a.created;
  });
}

document.addEventListener('keydown', (ev) => {
  if (!state.user) return;
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'k') {
    ev.preventDefault();
    $('search-input').focus();
    $('search-input').select();
  } else if (ev.altKey && (ev.key === 'ArrowUp' || ev.key === 'ArrowDown')) {
    ev.preventDefault();
    const list = orderedConvs();
    if (!list.length) return;
    let i = list.findIndex((c) => c.key === state.current);
    i = ev.key === 'ArrowUp' ? (i <= 0 ? list.length - 1 : i - 1) : (i + 1) % list.length;
    openConv(list[i].key);
  } else if (ev.key === 'Escape' && !document.querySelector('dialog[open]')) {
    if (!$('members').hidden) closeMembers();
    else if (state.narrowMain) goBack();
  }
});

// ---------------------------------------------------------------- render

// A timer rather than requestAnimationFrame: a tab in the background gets
// no animation frames, yet its title (the unread count) must stay current.
let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    render();
  }, 16);
}

function render() {
  if (!state.user) return;
  document.body.classList.toggle('narrow-main', state.narrowMain);
  renderBanner();
  renderConvList();
  renderBuddies();
  renderSidebarButtons();
  show($('welcome'), state.view === 'welcome');
  show($('search-view'), state.view === 'search');
  show($('accounts-view'), state.view === 'accounts');
  show($('conv-view'), state.view === 'conv');
  if (state.view === 'accounts') renderAccounts();
  if (state.view === 'conv') renderConv();
  setText($('welcome-text'), state.accounts.size === 0
    ? 'Add an IM account (IRC, XMPP, …) to get started.'
    : 'Pick a conversation, join a chat or send a new message.');
  let total = 0;
  for (const c of state.convs.values()) total += c.unread;
  document.title = total ? `(${total}) Sapphire` : 'Sapphire';
  maybeShowRequest();
}

let bannerTimer = null;
function renderBanner() {
  const s = state.conn;
  const banner = $('conn-banner');
  clearTimeout(bannerTimer);
  if (s === 'open' || !state.user) {
    show(banner, false);
    document.body.classList.remove('offline');
    return;
  }
  document.body.classList.add('offline');
  show(banner, true);
  if (s === 'connecting') {
    setText($('conn-text'), state.connInfo.attempt ? 'Reconnecting…' : 'Connecting…');
    show($('conn-retry'), false);
  } else if (s === 'waiting') {
    const left = Math.max(0, Math.ceil((state.connInfo.retryAt - Date.now()) / 1000));
    setText($('conn-text'), `Connection lost. Reconnecting in ${left} s…`);
    show($('conn-retry'), true);
    bannerTimer = setTimeout(renderBanner, 1000);
  }
}

$('conn-retry').addEventListener('click', () => conn && conn.retryNow());

function renderConvList() {
  const ul = $('conv-list');
  clear(ul);
  const list = orderedConvs();
  show($('conv-empty'), list.length === 0);
  const multi = state.accounts.size > 1;
  for (const e of list) {
    const label = e.unread ? `${e.name}, ${e.unread} unread` : e.name;
    const btn = h('button', { type: 'button', class: 'conv-btn', 'aria-label': label,
      'aria-current': e.key === state.current && state.view === 'conv' ? 'true' : null,
      onclick: () => openConv(e.key) },
    h('span', { class: `kind ${e.kind}`, 'aria-hidden': 'true' }, e.kind === 'chat' ? '#' : '@'),
    h('span', { class: 'conv-name' }, e.kind === 'chat' ? e.name.replace(/^#/, '') : e.name),
    multi ? h('span', { class: 'conv-acct' }, accountLabel(e.account)) : null,
    e.kind === 'chat' && !e.joined ? h('span', { class: 'conv-acct' }, '(left)') : null,
    e.unread ? h('span', { class: 'badge unread', 'aria-hidden': 'true' }, String(e.unread)) : null);
    ul.appendChild(h('li', { class: `conv-item${e.key === state.current ? ' current' : ''}${e.unread ? ' has-unread' : ''}`,
      dataset: { name: e.name } }, btn));
  }
}

function renderBuddies() {
  const ul = $('buddy-list');
  clear(ul);
  const list = [...state.buddies.values()].sort((a, b) =>
    (b.online - a.online) || (a.alias || a.name).localeCompare(b.alias || b.name));
  show($('buddy-empty'), list.length === 0);
  for (const b of list) {
    const presence = !b.online ? 'offline' : (b.status && b.status !== 'available' ? 'away' : 'online');
    ul.appendChild(h('li', { class: 'buddy' },
      h('button', { type: 'button', class: 'conv-btn', onclick: () => openIm(b.account, b.name) },
        h('span', { class: `dot ${presence}`, role: 'img', 'aria-label': presence }),
        h('span', { class: 'conv-name' }, b.alias || b.name),
        b.message ? h('span', { class: 'conv-acct' }, b.message) : null)));
  }
}

function renderSidebarButtons() {
  const n = state.requests.size;
  show($('btn-requests'), n > 0);
  setText($('requests-count'), n ? String(n) : '');
  const bad = [...state.accounts.values()].some((a) => a.status === 'error');
  show($('accounts-alert'), bad);
}

// Message elements of the open conversation, by seq.
let msgEls = new Map();
let msgElsKey = null;
let keepScrollOnPrepend = false;

const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;

/**
 * Message text as text nodes, with http(s) URLs as links. Nothing is parsed
 * as HTML; a link's href is the URL as the URL parser reads it, and only
 * http: and https: are ever linked.
 */
function richText(text) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    let url = match[0].replace(/[.,;:!?)\]]+$/, '');
    let href = null;
    try {
      const u = new URL(url);
      if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
    } catch (_) { /* not a URL after all */ }
    if (!href) continue;
    if (match.index > last) out.push(text.slice(last, match.index));
    out.push(h('a', { href, target: '_blank', rel: 'noopener noreferrer' }, url));
    last = match.index + url.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function messageEl(m) {
  const today = new Date().toDateString() === new Date(m.time).toDateString();
  const when = today ? fmtTime(m.time) : `${fmtDate(m.time)} ${fmtTime(m.time)}`;
  return h('li', { class: `msg ${m.direction}`, dataset: { seq: String(m.seq) } },
    h('time', { datetime: new Date(m.time).toISOString(), title: fmtFull(m.time) }, when),
    m.direction === 'system' ? null : h('span', { class: 'sender' }, m.alias || m.sender),
    h('span', { class: 'text' }, richText(m.text)),
    m.truncated ? h('span', { class: 'muted' }, ' (cut: too long)') : null,
    m.delayed ? h('span', { class: 'muted' }, ' (delayed)') : null);
}

function renderConv() {
  const e = currentConv();
  if (!e) return;
  const acct = state.accounts.get(e.account);
  setText($('conv-name'), e.name);
  $('conv-name').title = `${accountLabel(e.account)} (${acct ? protocolName(acct.protocol) : '?'})`;
  const topic = e.kind === 'chat' ? (e.joined ? e.topic || '' : 'You are not in this chat.') : imSubtitle(e);
  setText($('conv-topic'), topic);
  show($('btn-members'), e.kind === 'chat' && e.joined);
  setText($('member-count'), e.members.size ? `(${e.members.size})` : '');
  show($('btn-topic'), e.kind === 'chat' && e.joined);
  show($('btn-leave'), e.kind === 'chat' && e.joined);
  show($('btn-rejoin'), e.kind === 'chat' && !e.joined);
  const buddy = e.kind === 'im' ? state.buddies.get(e.key) : null;
  show($('btn-buddy'), e.kind === 'im');
  setText($('btn-buddy'), buddy ? 'Remove buddy' : 'Add buddy');
  if (e.kind === 'chat' && !$('members').hidden) renderMembers(e);
  const canSend = e.kind === 'im' || e.joined;
  $('compose').disabled = !canSend;
  $('send').disabled = !canSend;
  $('compose').placeholder = canSend ? `Message ${e.name}` : 'Rejoin the chat to send messages';

  // Typing.
  const t = e.typing && e.typing.until > Date.now() ? e.typing : null;
  setText($('typing'), t ? `${e.name} ${t.state === 'typing' ? 'is typing…' : 'stopped typing.'}` : '');

  // Messages, keeping existing elements.
  const scroller = $('scroller');
  const list = $('messages');
  if (msgElsKey !== e.key) {
    clear(list);
    msgEls = new Map();
    msgElsKey = e.key;
    stickToBottom = true;
  }
  const atBottom = stickToBottom;
  const oldHeight = scroller.scrollHeight;
  const oldTop = scroller.scrollTop;
  let cursor = list.firstChild;
  for (const m of e.messages) {
    let el = msgEls.get(m.seq);
    if (!el) {
      el = messageEl(m);
      msgEls.set(m.seq, el);
    }
    if (el === cursor) cursor = cursor.nextSibling;
    else list.insertBefore(el, cursor);
  }
  show($('btn-older'), e.loaded && e.hasMore);
  $('btn-older').disabled = e.loading;
  show($('history-start'), e.loaded && !e.hasMore);
  if (keepScrollOnPrepend) {
    keepScrollOnPrepend = false;
    scroller.scrollTop = oldTop + (scroller.scrollHeight - oldHeight);
  } else if (atBottom) {
    scroller.scrollTop = scroller.scrollHeight;
  }
}

function imSubtitle(e) {
  const b = state.buddies.get(e.key);
  if (!b) return `Private conversation on ${accountLabel(e.account)}`;
  const st = b.online ? (b.status && b.status !== 'available' ? b.status : 'online') : 'offline';
  return b.message ? `${st} — ${b.message}` : st;
}

let stickToBottom = true;
$('scroller').addEventListener('scroll', () => {
  const s = $('scroller');
  stickToBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  const e = currentConv();
  if (e && s.scrollTop < 60 && e.loaded && e.hasMore && !e.loading) loadHistory(e, true);
});
$('btn-older').addEventListener('click', () => {
  const e = currentConv();
  if (e) loadHistory(e, true);
});

function renderMembers(e) {
  const ul = $('member-list');
  clear(ul);
  const rank = (m) => {
    const f = m.flags || [];
    if (f.includes('founder')) return 0;
    if (f.includes('op')) return 1;
    if (f.includes('halfop')) return 2;
    if (f.includes('voice')) return 3;
    return 4;
  };
  const prefix = ['~', '@', '%', '+', ''];
  const members = [...e.members.values()].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  for (const m of members) {
    const r = rank(m);
    const away = (m.flags || []).includes('away');
    ul.appendChild(h('li', { class: `member${away ? ' away' : ''}` },
      h('span', { class: 'role', title: (m.flags || []).join(', ') }, prefix[r]),
      h('span', null, m.alias && m.alias !== m.name ? `${m.alias} (${m.name})` : m.name)));
  }
}

function closeMembers() {
  show($('members'), false);
  $('btn-members').setAttribute('aria-expanded', 'false');
}

$('btn-members').addEventListener('click', () => {
  const open = $('members').hidden;
  show($('members'), open);
  $('btn-members').setAttribute('aria-expanded', String(open));
  if (open) renderMembers(currentConv());
});
$('members-close').addEventListener('click', closeMembers);

// ---------------------------------------------------------------- composer

let typingSent = { key: null, state: 'none', at: 0 };
let pausedTimer = null;

function sendTyping(e, st) {
  if (!e || e.kind !== 'im' || !conn || !conn.ready) return;
  const now = Date.now();
  if (typingSent.key === e.key && typingSent.state === st && (st !== 'typing' || now - typingSent.at < 4000)) return;
  typingSent = { key: e.key, state: st, at: now };
  conn.request('typing', { account: e.account, conversation: { kind: 'im', name: e.name }, state: st }).catch(() => {});
}

$('compose').addEventListener('input', () => {
  const e = currentConv();
  if (!e || e.kind !== 'im') return;
  clearTimeout(pausedTimer);
  if ($('compose').value) {
    sendTyping(e, 'typing');
    pausedTimer = setTimeout(() => sendTyping(e, 'paused'), 5000);
  } else {
    sendTyping(e, 'none');
  }
});

$('compose').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $('composer').requestSubmit();
  }
});

$('composer').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const e = currentConv();
  const box = $('compose');
  const text = box.value;
  if (!e || !text.trim()) return;
  setText($('compose-error'), '');
  $('send').disabled = true;
  try {
    await conn.request('conversation.send', { account: e.account, conversation: { kind: e.kind, name: e.name }, text });
    if (box.value === text) box.value = '';
    clearTimeout(pausedTimer);
    typingSent = { key: e.key, state: 'none', at: Date.now() };
    stickToBottom = true;
    scheduleRender();
  } catch (err) {
    const msg = err.code === 'disconnected'
      ? 'The connection dropped while sending; check whether the message arrived before sending it again.'
      : errText(err);
    setText($('compose-error'), `Not sent: ${msg}`);
  } finally {
    $('send').disabled = false;
    box.focus();
  }
});

// ---------------------------------------------------------------- chats and IMs

function fillAccountSelect(sel, onlyConnected = false) {
  clear(sel);
  const list = [...state.accounts.values()].filter((a) => !onlyConnected || a.status === 'connected');
  const all = list.length ? list : [...state.accounts.values()];
  for (const a of all) {
    sel.appendChild(h('option', { value: String(a.id) },
      `${a.alias || a.username} (${protocolName(a.protocol)}${a.status === 'connected' ? '' : `, ${a.status}`})`));
  }
  return all.length;
}

function openDialog(id, setup) {
  const d = $(id);
  for (const el of d.querySelectorAll('.error')) setText(el, '');
  if (setup) setup(d);
  d.showModal();
}

for (const d of document.querySelectorAll('dialog')) {
  for (const b of d.querySelectorAll('[data-close]')) b.addEventListener('click', () => d.close());
  // A prompt that came while this dialog was open shows once it closes.
  d.addEventListener('close', () => setTimeout(scheduleRender, 0));
}

function needAccount() {
  if (state.accounts.size) return false;
  toast('Add an IM account first.', 'warning');
  setView('accounts');
  return true;
}

$('btn-join').addEventListener('click', () => {
  if (needAccount()) return;
  openDialog('dlg-join', () => {
    fillAccountSelect($('join-account'), true);
    $('join-name').value = '';
    $('join-password').value = '';
  });
});

$('join-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const account = Number($('join-account').value);
  const name = $('join-name').value.trim();
  if (!name) return;
  const existing = [...state.convs.values()].find((c) => c.account === account && c.kind === 'chat'
    && c.joined && c.name.toLowerCase() === name.toLowerCase());
  if (existing) {
    $('dlg-join').close();
    openConv(existing.key);
    return;
  }
  try {
    state.pendingJoin = { account, name };
    const params = { account, name };
    const password = $('join-password').value;
    if (password) params.fields = { password };
    await conn.request('chat.join', params);
    $('dlg-join').close(); // the chat opens once the server confirms (chat.joined)
  } catch (err) {
    state.pendingJoin = null;
    setText($('join-error'), errText(err));
  }
});

function openIm(account, name) {
  const existing = [...state.convs.values()].find((c) => c.account === account && c.kind === 'im'
    && c.name.toLowerCase() === name.toLowerCase());
  const e = existing || conv(account, { kind: 'im', name });
  openConv(e.key);
}

$('btn-im').addEventListener('click', () => {
  if (needAccount()) return;
  openDialog('dlg-im', () => {
    fillAccountSelect($('im-account'), true);
    $('im-name').value = '';
  });
});

$('im-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = $('im-name').value.trim();
  if (!name) return;
  $('dlg-im').close();
  openIm(Number($('im-account').value), name);
});

$('btn-leave').addEventListener('click', async () => {
  const e = currentConv();
  if (!e) return;
  try {
    await conn.request('chat.leave', { account: e.account, name: e.name });
  } catch (err) {
    toast(`Could not leave: ${errText(err)}`, 'error');
  }
});

$('btn-rejoin').addEventListener('click', async () => {
  const e = currentConv();
  if (!e) return;
  try {
    await conn.request('chat.join', { account: e.account, name: e.name });
  } catch (err) {
    toast(`Could not join: ${errText(err)}`, 'error');
  }
});

$('btn-topic').addEventListener('click', () => {
  const e = currentConv();
  if (!e) return;
  openDialog('dlg-topic', () => { $('topic-input').value = e.topic || ''; });
});

$('topic-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const e = currentConv();
  if (!e) return;
  try {
    await conn.request('chat.topic', { account: e.account, name: e.name, topic: $('topic-input').value });
    $('dlg-topic').close();
  } catch (err) {
    setText($('topic-error'), errText(err));
  }
});

// ---------------------------------------------------------------- buddies

$('btn-add-buddy').addEventListener('click', () => {
  if (needAccount()) return;
  openDialog('dlg-buddy', () => {
    fillAccountSelect($('buddy-account'));
    $('buddy-name').value = '';
    $('buddy-alias').value = '';
  });
});

$('btn-buddy').addEventListener('click', async () => {
  const e = currentConv();
  if (!e || e.kind !== 'im') return;
  if (state.buddies.has(e.key)) {
    if (!(await confirmDialog('Remove buddy', `Remove ${e.name} from your buddy list?`, 'Remove'))) return;
    try {
      await conn.request('buddy.remove', { account: e.account, name: e.name });
    } catch (err) {
      toast(errText(err), 'error');
    }
  } else {
    openDialog('dlg-buddy', () => {
      fillAccountSelect($('buddy-account'));
      $('buddy-account').value = String(e.account);
      $('buddy-name').value = e.name;
      $('buddy-alias').value = '';
    });
  }
});

$('buddy-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const params = { account: Number($('buddy-account').value), name: $('buddy-name').value.trim() };
  const alias = $('buddy-alias').value.trim();
  if (alias) params.alias = alias;
  if (!params.name) return;
  try {
    await conn.request('buddy.add', params);
    $('dlg-buddy').close();
  } catch (err) {
    setText($('buddy-error'), errText(err));
  }
});

function confirmDialog(title, text, yes) {
  const d = $('dlg-confirm');
  setText($('confirm-title'), title);
  setText($('confirm-text'), text);
  setText($('confirm-yes'), yes);
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'yes'), { once: true });
  });
}

// ---------------------------------------------------------------- search

$('search-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const q = $('search-input').value.trim();
  if (!q) return;
  const ul = $('search-results');
  clear(ul);
  setText($('search-title'), `Searching for “${q}”…`);
  setView('search');
  try {
    const r = await conn.request('search', { query: q, limit: 100 });
    setText($('search-title'), r.messages.length
      ? `${r.messages.length}${r.messages.length === 100 ? '+' : ''} results for “${q}”`
      : `No messages contain “${q}”`);
    for (const m of r.messages) {
      ul.appendChild(h('li', { class: 'result' },
        h('button', { type: 'button', class: 'conv-btn', onclick: () => openResult(m) },
          h('span', { class: 'result-head' },
            h('strong', null, m.conversation.name), ' · ', m.alias || m.sender, ' · ',
            h('time', { datetime: new Date(m.time).toISOString() }, `${fmtDate(m.time)} ${fmtTime(m.time)}`)),
          h('span', { class: 'text' }, m.text))));
    }
  } catch (err) {
    setText($('search-title'), `Search failed: ${errText(err)}`);
  }
});

$('search-close').addEventListener('click', () => {
  setView(state.current ? 'conv' : 'welcome');
});

async function openResult(m) {
  const e = conv(m.account, m.conversation);
  openConv(e.key);
  for (let i = 0; i < 40 && !e.seqs.has(m.seq); i++) {
    while (e.loading) await new Promise((r) => setTimeout(r, 50));
    if (e.seqs.has(m.seq) || (e.loaded && !e.hasMore)) break;
    await loadHistory(e, e.loaded);
  }
  render();
  const el = msgEls.get(m.seq);
  if (el) {
    el.scrollIntoView({ block: 'center' });
    el.classList.add('found');
    setTimeout(() => el.classList.remove('found'), 6000);
  }
}

// ---------------------------------------------------------------- accounts

$('btn-accounts').addEventListener('click', () => setView('accounts'));
$('welcome-accounts').addEventListener('click', () => setView('accounts'));
$('accounts-close').addEventListener('click', () => setView(state.current ? 'conv' : 'welcome'));

async function ensureProtocols() {
  if (!state.protocols) {
    const r = await conn.request('protocols');
    state.protocols = r.protocols.slice().sort((a, b) => a.name.localeCompare(b.name));
  }
  return state.protocols;
}

function renderAccounts() {
  const ul = $('account-list');
  clear(ul);
  const list = [...state.accounts.values()].sort((a, b) => a.id - b.id);
  show($('account-empty'), list.length === 0);
  for (const a of list) {
    const status = a.enabled ? (a.status || 'disconnected') : 'disabled';
    ul.appendChild(h('li', { class: 'account', dataset: { id: String(a.id) } },
      h('div', { class: 'account-main' },
        h('strong', null, a.alias || a.username),
        h('span', { class: 'muted' }, ` ${protocolName(a.protocol)}${a.alias ? ` · ${a.username}` : ''}`),
        h('span', { class: `pill ${status}` }, status),
        a.message ? h('p', { class: 'account-msg' }, a.message) : null),
      h('div', { class: 'account-tools' },
        h('button', { type: 'button', onclick: () => setEnabled(a, !a.enabled) }, a.enabled ? 'Disable' : 'Enable'),
        h('button', { type: 'button', onclick: () => openAccountForm(a) }, 'Edit'),
        h('button', { type: 'button', class: 'danger', onclick: () => removeAccount(a) }, 'Remove'))));
  }
  if (state.status) {
    $('status-select').value = state.status.status;
  }
}

async function setEnabled(a, enabled) {
  try {
    await conn.request('account.set_enabled', { account: a.id, enabled });
  } catch (err) {
    toast(errText(err), 'error');
  }
}

async function removeAccount(a) {
  if (!(await confirmDialog('Remove account',
    `Remove ${a.username} (${protocolName(a.protocol)})? Its history stays searchable until you delete it on the server.`, 'Remove'))) return;
  try {
    await conn.request('account.remove', { account: a.id });
  } catch (err) {
    toast(errText(err), 'error');
  }
}

$('btn-add-account').addEventListener('click', () => openAccountForm(null));

let editing = null; // account being edited, or null when adding

async function openAccountForm(account) {
  editing = account;
  let protocols;
  try {
    protocols = await ensureProtocols();
  } catch (err) {
    toast(`Could not list the networks: ${errText(err)}`, 'error');
    return;
  }
  const sel = $('acc-protocol');
  clear(sel);
  if (!account) sel.appendChild(h('option', { value: '' }, 'Choose a network…'));
  for (const p of protocols) sel.appendChild(h('option', { value: p.id }, p.name));
  sel.disabled = !!account;
  setText($('account-form-title'), account ? `Edit ${account.username}` : 'Add account');
  setText($('account-submit'), account ? 'Save' : 'Add');
  sel.value = account ? account.protocol : '';
  buildAccountFields();
  openDialog('dlg-account');
  (account ? $('acc-fields').querySelector('input:not([disabled])') : sel)?.focus();
}

$('acc-protocol').addEventListener('change', buildAccountFields);

function field(label, input, hint) {
  return h('label', null, label, input, hint ? h('span', { class: 'hint' }, hint) : null);
}

function buildAccountFields() {
  const p = (state.protocols || []).find((x) => x.id === $('acc-protocol').value);
  const fields = $('acc-fields');
  const opts = $('acc-options');
  clear(fields);
  clear(opts);
  show($('acc-advanced'), !!(p && p.options.length));
  $('acc-advanced').open = false;
  if (!p) return;
  const a = editing;
  // The user name is split by the protocol (e.g. IRC: nick @ server).
  let rest = a ? a.username : '';
  const parts = [];
  for (let i = p.user_splits.length - 1; i >= 0; i--) {
    const s = p.user_splits[i];
    const at = rest.lastIndexOf(s.separator);
    if (a && at >= 0) {
      parts[i] = rest.slice(at + 1);
      rest = rest.slice(0, at);
    } else parts[i] = a ? '' : s.default;
  }
  fields.appendChild(field('User name', h('input', { id: 'acc-username', name: 'username', required: true,
    autocapitalize: 'none', spellcheck: 'false', maxlength: 1024, value: rest, disabled: !!a })));
  p.user_splits.forEach((s, i) => {
    fields.appendChild(field(s.text, h('input', { id: `acc-split-${i}`, dataset: { sep: s.separator, def: s.default },
      autocapitalize: 'none', spellcheck: 'false', maxlength: 1024, value: parts[i] || '', placeholder: s.default, disabled: !!a })));
  });
  if (p.password !== 'none') {
    fields.appendChild(field(p.password === 'required' && !a ? 'Password' : 'Password (optional)',
      h('input', { id: 'acc-password', type: 'password', autocomplete: 'new-password', maxlength: 4096,
        required: p.password === 'required' && !a }),
      a ? 'Leave empty to keep the current password.' : null));
  }
  fields.appendChild(field('Alias (optional)', h('input', { id: 'acc-alias', maxlength: 1024, value: a && a.alias ? a.alias : '' })));
  for (const o of p.options) {
    const cur = a && a.options && o.setting in a.options ? a.options[o.setting] : o.default;
    const id = `opt-${o.setting}`;
    let input;
    if (o.type === 'bool') {
      input = h('input', { id, type: 'checkbox', checked: !!cur, dataset: { setting: o.setting, type: o.type } });
      opts.appendChild(h('label', { class: 'check' }, input, o.text));
      continue;
    } else if (o.type === 'int') {
      input = h('input', { id, type: 'number', step: '1', value: String(cur), dataset: { setting: o.setting, type: o.type } });
    } else if (o.type === 'list') {
      input = h('select', { id, dataset: { setting: o.setting, type: o.type } },
        (o.choices || []).map((c) => h('option', { value: c.value, selected: c.value === cur }, c.label)));
    } else {
      input = h('input', { id, type: o.masked ? 'password' : 'text', value: cur || '', maxlength: 4096,
        dataset: { setting: o.setting, type: o.type } });
    }
    opts.appendChild(field(o.text, input));
  }
}

$('account-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const p = (state.protocols || []).find((x) => x.id === $('acc-protocol').value);
  if (!p) {
    setText($('account-error'), 'Choose a network.');
    return;
  }
  const a = editing;
  const options = {};
  for (const o of p.options) {
    const el = $(`opt-${o.setting}`);
    let v;
    if (o.type === 'bool') v = el.checked;
    else if (o.type === 'int') {
      v = Number(el.value);
      if (!Number.isInteger(v)) {
        setText($('account-error'), `${o.text}: enter a whole number.`);
        return;
      }
    } else v = el.value;
    const base = a && a.options && o.setting in a.options ? a.options[o.setting] : o.default;
    if (v !== base) options[o.setting] = v;
  }
  const password = $('acc-password') ? $('acc-password').value : '';
  const alias = $('acc-alias').value.trim();
  let params;
  let op;
  if (a) {
    op = 'account.update';
    params = { account: a.id, options };
    if (password) params.password = password;
    if (alias !== (a.alias || '')) params.alias = alias;
  } else {
    let username = $('acc-username').value.trim();
    if (!username) {
      setText($('account-error'), 'Enter a user name.');
      return;
    }
    p.user_splits.forEach((s, i) => {
      const v = $(`acc-split-${i}`).value.trim() || s.default;
      if (v) username += s.separator + v; // an empty optional part (e.g. XMPP resource) is left out
    });
    if (p.password === 'required' && !password) {
      setText($('account-error'), 'This network needs a password.');
      return;
    }
    op = 'account.add';
    params = { protocol: p.id, username, options };
    if (password) params.password = password;
    if (alias) params.alias = alias;
  }
  $('account-submit').disabled = true;
  try {
    await conn.request(op, params);
    $('dlg-account').close();
    setView('accounts');
  } catch (err) {
    setText($('account-error'), errText(err));
  } finally {
    $('account-submit').disabled = false;
  }
});

$('status-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const params = { status: $('status-select').value };
  const msg = $('status-message').value.trim();
  if (msg) params.message = msg;
  try {
    await conn.request('status.set', params);
    setText($('status-result'), 'Status set.');
  } catch (err) {
    setText($('status-result'), `Could not set the status: ${errText(err)}`);
  }
});

// ---------------------------------------------------------------- prompts (requests)

let shownRequest = null;

$('btn-requests').addEventListener('click', () => {
  state.dismissedRequests.clear();
  maybeShowRequest();
});

function maybeShowRequest() {
  if (shownRequest !== null || document.querySelector('dialog[open]')) return;
  const next = [...state.requests.values()].sort((a, b) => a.request - b.request)
    .find((r) => !state.dismissedRequests.has(r.request));
  if (next) showRequest(next);
}

// Escape dismisses the prompt for now (the Prompts button brings it back).
// Only 'cancel' means the person dismissed it: the 'close' event comes
// later, as a task, possibly after the dialog already shows the next prompt.
$('dlg-request').addEventListener('cancel', () => {
  if (shownRequest !== null) state.dismissedRequests.add(shownRequest);
  shownRequest = null;
});
$('dlg-request').addEventListener('close', () => setTimeout(scheduleRender, 0));

function showRequest(r) {
  shownRequest = r.request;
  const title = r.title || (r.kind === 'file' ? 'Choose a file' : r.kind === 'folder' ? 'Choose a folder' : 'Question');
  setText($('request-title'), title);
  setText($('request-account'), typeof r.account === 'number'
    ? `${accountLabel(r.account)}${r.who ? ` · ${r.who}` : ''}` : (r.who || ''));
  setText($('request-primary'), r.primary && r.primary !== title ? r.primary : '');
  setText($('request-secondary'), [r.secondary, r.message].filter(Boolean).join('\n'));
  setText($('request-error'), '');
  const body = $('request-body');
  const actions = $('request-actions');
  clear(body);
  clear(actions);
  const more = state.requests.size - 1;
  setText($('request-more'), more > 0 ? `${more} more prompt${more > 1 ? 's' : ''} waiting.` : '');
  let collect = () => ({});
  if (r.kind === 'input' || r.kind === 'file' || r.kind === 'folder') {
    const def = r.kind === 'input' ? r.default_value : r.kind === 'file' ? r.filename : r.dirname;
    const input = r.multiline
      ? h('textarea', { id: 'request-value', rows: 4 })
      : h('input', { id: 'request-value', type: r.masked ? 'password' : 'text' });
    input.value = def || '';
    body.appendChild(field(r.kind === 'input' ? 'Answer' : 'Path on the server', input));
    collect = () => ({ value: input.value });
  } else if (r.kind === 'choice') {
    const group = h('fieldset', { class: 'choices' }, h('legend', null, 'Choose one'));
    for (const c of r.choices || []) {
      group.appendChild(h('label', { class: 'check' },
        h('input', { type: 'radio', name: 'request-choice', value: String(c.value), checked: c.value === r.default }), c.label));
    }
    body.appendChild(group);
    collect = () => {
      const sel = group.querySelector('input:checked');
      return sel ? { value: Number(sel.value) } : null;
    };
  } else if (r.kind === 'fields') {
    const getters = [];
    for (const g of r.groups || []) {
      const fs = h('fieldset', { class: 'grid' }, g.title ? h('legend', null, g.title) : null);
      for (const f of g.fields || []) {
        if (f.visible === false) continue;
        const label = `${f.label || f.id}${f.required ? ' *' : ''}`;
        let input = null;
        if (f.type === 'string') {
          input = f.multiline ? h('textarea', { rows: 3 }) : h('input', { type: f.masked ? 'password' : 'text' });
          input.value = f.value || '';
          getters.push(() => [f.id, input.value]);
        } else if (f.type === 'integer') {
          input = h('input', { type: 'number', step: '1', value: String(f.value ?? 0) });
          getters.push(() => [f.id, parseInt(input.value, 10) || 0]);
        } else if (f.type === 'boolean') {
          const cb = h('input', { type: 'checkbox', checked: !!f.value, dataset: { field: f.id } });
          fs.appendChild(h('label', { class: 'check' }, cb, label));
          getters.push(() => [f.id, cb.checked]);
          continue;
        } else if (f.type === 'choice') {
          input = h('select', null, (f.choices || []).map((c, i) => h('option', { value: String(i), selected: i === f.value }, c)));
          getters.push(() => [f.id, Number(input.value)]);
        } else if (f.type === 'list') {
          input = h('select', { multiple: f.multi }, (f.items || []).map((it) =>
            h('option', { value: it, selected: (f.selected || []).includes(it) }, it)));
          getters.push(() => [f.id, [...input.selectedOptions].map((o) => o.value)]);
        } else if (f.type === 'label') {
          fs.appendChild(h('p', null, f.label || ''));
          continue;
        } else {
          fs.appendChild(h('p', { class: 'muted' }, `${label}: (cannot be shown here)`));
          continue;
        }
        input.dataset.field = f.id;
        fs.appendChild(field(label, input));
      }
      body.appendChild(fs);
    }
    collect = () => ({ fields: Object.fromEntries(getters.map((g) => g())) });
  }
  const isAction = r.kind === 'action';
  for (const a of r.actions || []) {
    const primary = isAction ? a.id === r.default_action : a.id === 0;
    const b = h('button', { type: 'button', class: primary ? 'primary' : null }, a.label);
    b.addEventListener('click', async () => {
      let params = { request: r.request, action: a.id };
      if (!isAction && a.id === 0) {
        const extra = collect();
        if (extra === null) {
          setText($('request-error'), 'Choose one of the options.');
          return;
        }
        params = { ...params, ...extra };
      }
      for (const x of actions.querySelectorAll('button')) x.disabled = true;
      try {
        await conn.request('request.answer', params);
        state.requests.delete(r.request);
        if (shownRequest === r.request) {
          shownRequest = null;
          $('dlg-request').close();
        }
      } catch (err) {
        setText($('request-error'), errText(err));
        if (err.code === 'no_such_request') {
          state.requests.delete(r.request);
          shownRequest = null;
          $('dlg-request').close();
        }
      } finally {
        for (const x of actions.querySelectorAll('button')) x.disabled = false;
      }
    });
    actions.appendChild(b);
  }
  $('request-form').onsubmit = (ev) => {
    ev.preventDefault();
    actions.querySelector('.primary')?.click();
  };
  $('dlg-request').showModal();
}

// ---------------------------------------------------------------- start

(async () => {
  try {
    const { res, data } = await api('/api/session');
    if (res.ok) showApp(data.username);
    else showLogin();
  } catch (_) {
    showLogin('Cannot reach the Sapphire server.');
  }
})();
