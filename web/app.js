// Sapphire's web client. Plain JavaScript modules, no build step:
//
//   store.js     the state, and how protocol events change it (pure)
//   format.js    nick colours, IRC formatting, links, times, rows (pure)
//   input.js     Tab completion and input history (pure)
//   settings.js  this browser's settings
//   notify.js    which messages notify, notification texts, mentions (pure)
//   notifications.js  service worker, push subscription, desktop notifications
//   conn.js      the WebSocket to the backend (resume by seq)
//   messages.js  the message list (windowed)
//   convlist.js  the conversation and buddy lists
//   composer.js  drafts, completion, history, sending
//   dialogs.js, prompts.js, accounts.js   the dialogs and the accounts page
//
// This file signs in and out, routes events to the store and carries out
// the effects the store returns, and renders. Text from IM networks is
// always inserted as text nodes (dom.js), never as HTML.

import { Connection } from './conn.js';
import { $, h, clear, setText, show } from './dom.js';
import { fmtDate, fmtTime } from './format.js';
import {
  RANK_PREFIX, accountLabel, addMessage, applyConversationsPage, applyEvent, applyHello, createState, currentConv, getConv, hiddenFromJson,
  hiddenToJson, hide, memberRank, protocolName, resetState, sortedMembers, stepConv, totalUnread, unhide,
} from './store.js';
import { applySettings, bindSettingsForm, loadSettings, saveSettings } from './settings.js';
import { MessageView, announceText, nickClass, setRichText } from './messages.js';
import { ConvList } from './convlist.js';
import { Composer } from './composer.js';
import { bindDialogs, confirmDialog, dropToasts, errText, toast } from './dialogs.js';
import { Prompts } from './prompts.js';
import { bindAccounts } from './accounts.js';
import { levelFor, mergeMentions, ownLevel, recentMentions } from './notify.js';
import {
  bindNotificationSettings, notifyMessage, startServiceWorker, stopPush, syncPush, takeOpenRequest,
} from './notifications.js';

const PAGE = 50;

// Everything the client keeps lives in these objects; a sign-out resets
// them all (resetAll), so nothing of one session leaks into the next.
const state = createState();
const app = {
  conn: null,
  settings: loadSettings(localStorage),
  loginBlockedUntil: 0,
  loginTimer: null,
  markTimer: null,
  bannerTimer: null,
  renderQueued: false,
  memberFilter: '',
  // A notification's click that opened this tab: the message to show after the first hello.
  pendingOpen: takeOpenRequest(),
  fetchedMentions: [], // the backend's `mentions` list, when the Mentions page was opened
};
applySettings(app.settings);

const ctx = {
  state,
  conn: () => app.conn,
  settings: () => app.settings,
  errText,
  render: () => render(),
  scheduleRender: () => scheduleRender(),
  openConv: (key) => openConv(key),
  openIm: (account, name) => openIm(account, name),
  loadMoreConvs: () => loadMoreConvs(),
  openMessage: (m) => openResult(m),
  setView: (view) => setView(view),
  loadOlder: (e) => loadHistory(e, true),
  onScrollBottom: () => markReadSoon(),
  onSent: () => {
    view.follow();
    scheduleRender();
  },
};
const view = new MessageView(ctx);
const list = new ConvList(ctx);
const composer = new Composer(ctx);
const prompts = new Prompts(ctx);
bindDialogs(ctx);
const renderAccounts = bindAccounts(ctx);

// ---------------------------------------------------------------- storage

const hiddenKey = () => `sapphire.closed.${state.user}`;

function loadHidden() {
  try {
    hiddenFromJson(state, JSON.parse(localStorage.getItem(hiddenKey()) || '[]'));
  } catch (_) {
    hiddenFromJson(state, []);
  }
}

function saveHidden() {
  try {
    localStorage.setItem(hiddenKey(), JSON.stringify(hiddenToJson(state)));
  } catch (_) { /* storage disabled: closed for this tab only */ }
}

// Unsent drafts survive a reload of this tab (sessionStorage: not other tabs, not after closing it).
const draftsKey = () => `sapphire.drafts.${state.user}`;

function loadDrafts() {
  try {
    const list = JSON.parse(sessionStorage.getItem(draftsKey()) || '[]');
    state.drafts = new Map(list.filter((d) => Array.isArray(d) && typeof d[0] === 'string' && typeof d[1] === 'string'));
  } catch (_) { /* none */ }
}

window.addEventListener('pagehide', () => {
  if (!state.user) return;
  try {
    sessionStorage.setItem(draftsKey(), JSON.stringify([...state.drafts.entries()]));
  } catch (_) { /* storage disabled */ }
});

// Closed in another tab of this browser.
window.addEventListener('storage', (ev) => {
  if (state.user && ev.key === hiddenKey()) {
    loadHidden();
    scheduleRender();
  } else if (ev.key === 'sapphire.settings') {
    app.settings = loadSettings(localStorage);
    applySettings(app.settings);
    scheduleRender();
  }
});

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

function loginCountdown() {
  clearInterval(app.loginTimer);
  const tick = () => {
    const left = Math.ceil((app.loginBlockedUntil - Date.now()) / 1000);
    const btn = $('login-submit');
    if (left > 0) {
      btn.disabled = true;
      setText(btn, `Sign in (wait ${left} s)`);
    } else {
      clearInterval(app.loginTimer);
      btn.disabled = false;
      setText(btn, 'Sign in');
    }
  };
  tick();
  app.loginTimer = setInterval(tick, 1000);
}

/** Signed out: every piece of state of the session goes. */
function resetAll() {
  if (app.conn) {
    app.conn.stop();
    app.conn = null;
  }
  resetState(state);
  clearTimeout(app.markTimer);
  app.memberFilter = '';
  $('member-filter').value = '';
  view.reset();
  list.reset();
  composer.reset();
  prompts.reset();
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
}

function showLogin(message = '') {
  resetAll();
  document.body.classList.remove('signed-in');
  show($('app-view'), false);
  show($('login-view'), true);
  setText($('login-error'), message);
  document.title = 'Sapphire';
  $('username').focus();
}

function showApp(user) {
  state.user = user;
  loadHidden();
  loadDrafts();
  document.body.classList.add('signed-in');
  show($('login-view'), false);
  show($('app-view'), true);
  setText($('who'), user);
  app.conn = new Connection({ hello: onHello, event: onEvent, status: onConnStatus });
  app.conn.start();
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
  if (Date.now() < app.loginBlockedUntil) return;
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
    app.loginBlockedUntil = Date.now() + secs * 1000;
    setText($('login-error'), msg || `Too many failed sign-ins. Try again in ${secs} seconds.`);
    loginCountdown();
  } else {
    setText($('login-error'), msg || `Sign-in failed (HTTP ${res.status}). Try again later.`);
  }
});

$('logout').addEventListener('click', async () => {
  // No more notifications of this user on this browser (a shared computer):
  // the push subscription goes (the backend is told, or learns it from the
  // push service's 410) and the setting is off until turned on again.
  if (app.settings.notifications) {
    app.settings = { ...app.settings, notifications: false };
    saveSettings(localStorage, app.settings);
    await stopPush(app.conn);
  }
  // Stop the connection first: the proxy closes the session's WebSockets
  // (1008) on logout, and that is not a "session ended" surprise here.
  if (app.conn) {
    app.conn.stop();
    app.conn = null;
  }
  try {
    sessionStorage.removeItem('sapphire.current');
    sessionStorage.removeItem(draftsKey());
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
  const fx = applyHello(state, reply, { resumed });
  prompts.sync();
  if (!resumed) view.reset();
  effects(fx);
  const cur = currentConv(state);
  if (cur && !cur.loaded) loadHistory(cur);
  render();
  // After a reload, come back to the conversation this tab was showing.
  if (app.pendingOpen) {
    const m = app.pendingOpen;
    app.pendingOpen = null;
    openResult(m);
  } else if (!resumed && !state.current) {
    const saved = sessionStorage.getItem('sapphire.current');
    if (saved && state.convs.has(saved) && !state.hidden.has(saved)) openConv(saved);
  }
  if (app.settings.notifications && app.conn) syncPush(app.conn);
}

/** Fetches the next page of older conversations (the snapshot has the newest). */
async function loadMoreConvs() {
  if (!state.convsNext || state.convsLoading || !app.conn) return;
  state.convsLoading = true;
  render();
  try {
    const reply = await app.conn.request('conversations.list', { before: state.convsNext });
    effects(applyConversationsPage(state, reply));
  } catch (err) {
    state.convsLoading = false;
    toast(errText(err), 'error', 'Cannot load more conversations');
  }
  render();
}

function onEvent(ev, { replayed }) {
  // A prompt while the Join dialog waits for the server (an XMPP room to
  // configure, a password): the prompt needs the screen; the join goes on
  // and its chat still opens once joined.
  if (ev.op === 'request.open' && !replayed && state.pendingJoin && $('dlg-join').open) $('dlg-join').close();
  effects(applyEvent(state, ev, { replayed }));
  scheduleRender();
}

/** Carries out what the store asked for. */
function effects(fx) {
  for (const f of fx) {
    if (f.type === 'newMessage' && f.live && f.message.direction === 'in') {
      notifyMessage(ctx, state.convs.get(f.key), f.message);
    }
    if (f.type === 'toast') toast(f.text, f.level, f.title, f.tag);
    else if (f.type === 'dropToasts') dropToasts(f.tag);
    else if (f.type === 'open') {
      if ($('dlg-join').open) $('dlg-join').close();
      openConv(f.key);
    } else if (f.type === 'joinFailed') {
      const text = `Could not join ${f.name}: ${f.message}`;
      if ($('dlg-join').open) {
        setText($('join-status'), '');
        setText($('join-error'), text);
      } else toast(text, 'error');
    }
    else if (f.type === 'requestClosed') prompts.closed(f.id);
    else if (f.type === 'typing') setTimeout(scheduleRender, f.ms);
    else if (f.type === 'hiddenChanged') saveHidden();
    else if (f.type === 'notifyChanged' && state.view === 'settings') showNotify();
    else if (f.type === 'newMessage' && f.key === state.current) {
      markReadSoon();
      // Only new messages are announced (not history, not the whole list).
      if (f.live && f.message.direction !== 'out' && state.view === 'conv') {
        setText($('announce'), announceText(state.convs.get(f.key), f.message));
      }
    }
  }
}

async function loadHistory(e, older = false) {
  if (e.loading || (older && !e.hasMore)) return;
  e.loading = true;
  const params = { account: e.account, conversation: { kind: e.kind, name: e.name }, limit: PAGE };
  if (older && e.messages.length) params.before = e.messages[0].seq;
  try {
    const r = await app.conn.request('history', params);
    if (older && e.key === state.current) view.prepended();
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

function markReadSoon() {
  clearTimeout(app.markTimer);
  app.markTimer = setTimeout(markRead, 30);
}

function markRead() {
  const e = currentConv(state);
  const conn = app.conn;
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
  if (unhide(state, key)) saveHidden();
  state.current = key;
  try { sessionStorage.setItem('sapphire.current', key); } catch (_) { /* storage disabled */ }
  state.view = 'conv';
  state.narrowMain = true;
  composer.switchTo(e);
  if (changed) {
    closeMembers();
    view.open(e);
  }
  if (!e.loaded) loadHistory(e);
  render();
  markReadSoon();
  $('compose').focus();
}

function openIm(account, name) {
  const existing = [...state.convs.values()].find((c) => c.account === account && c.kind === 'im'
    && c.name.toLowerCase() === name.toLowerCase());
  const e = existing || getConv(state, account, { kind: 'im', name });
  openConv(e.key);
}

function setView(v) {
  state.view = v;
  state.narrowMain = v !== 'welcome';
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

/** Closes the open conversation (leaving the chat first); it comes back with the next message. */
async function closeConv() {
  const e = currentConv(state);
  if (!e) return;
  if (e.kind === 'chat' && e.joined) {
    if (!(await confirmDialog('Close chat', `Leave ${e.name} and close it?`, 'Leave and close'))) return;
    try {
      await app.conn.request('chat.leave', { account: e.account, name: e.name });
    } catch (err) {
      toast(`Could not leave: ${errText(err)}`, 'error');
      return;
    }
  }
  hide(state, e.key);
  saveHidden();
  render();
  (document.querySelector('.conv-item button') || $('search-input')).focus();
}

document.addEventListener('keydown', (ev) => {
  if (!state.user || document.querySelector('dialog[open]')) return;
  const k = ev.key;
  if ((ev.ctrlKey || ev.metaKey) && k.toLowerCase() === 'k') {
    ev.preventDefault();
    $('search-input').focus();
    $('search-input').select();
  } else if (ev.altKey && (k === 'ArrowUp' || k === 'ArrowDown')) {
    // Alt+Up/Down: previous/next conversation; with Shift: the next one with unread messages.
    ev.preventDefault();
    const key = stepConv(state, k === 'ArrowUp' ? -1 : 1, ev.shiftKey);
    if (key) openConv(key);
  } else if (k === 'Escape') {
    if (!$('members').hidden) closeMembers();
    else if (state.narrowMain) goBack();
  }
});

// ---------------------------------------------------------------- render

// A timer rather than requestAnimationFrame: a tab in the background gets
// no animation frames, yet its title (the unread count) must stay current.
function scheduleRender() {
  if (app.renderQueued) return;
  app.renderQueued = true;
  setTimeout(() => {
    app.renderQueued = false;
    render();
  }, 16);
}

function render() {
  if (!state.user) return;
  document.body.classList.toggle('narrow-main', state.narrowMain);
  renderBanner();
  list.render();
  renderSidebarButtons();
  show($('welcome'), state.view === 'welcome');
  show($('search-view'), state.view === 'search');
  show($('accounts-view'), state.view === 'accounts');
  show($('settings-view'), state.view === 'settings');
  show($('mentions-view'), state.view === 'mentions');
  if (state.view === 'mentions') renderMentions();
  show($('conv-view'), state.view === 'conv');
  if (state.view === 'accounts') renderAccounts();
  if (state.view === 'conv') renderConv();
  setText($('welcome-text'), state.accounts.size === 0
    ? 'Add an IM account (IRC, XMPP, …) to get started.'
    : 'Pick a conversation, join a chat or send a new message.');
  const total = totalUnread(state);
  document.title = total ? `(${total}) Sapphire` : 'Sapphire';
  // Back (on a phone) says how much is waiting elsewhere.
  const others = totalUnread(state, state.view === 'conv' ? state.current : null);
  for (const b of document.querySelectorAll('[data-back] .badge')) {
    setText(b, others ? String(others) : '');
    show(b, others > 0);
  }
  prompts.maybeShow();
}

function renderBanner() {
  const s = state.conn;
  const banner = $('conn-banner');
  clearTimeout(app.bannerTimer);
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
    app.bannerTimer = setTimeout(renderBanner, 1000);
  }
}

$('conn-retry').addEventListener('click', () => app.conn && app.conn.retryNow());

function renderSidebarButtons() {
  const mentions = [...state.convs.values()].reduce((sum, e) => sum + e.mentions, 0);
  setText($('mentions-count'), mentions ? String(mentions) : '');
  show($('mentions-count'), mentions > 0);
  const n = state.requests.size;
  show($('btn-requests'), n > 0);
  setText($('requests-count'), n ? String(n) : '');
  const bad = [...state.accounts.values()].some((a) => a.status === 'error');
  show($('accounts-alert'), bad);
}

function renderConv() {
  const e = currentConv(state);
  if (!e) return;
  const acct = state.accounts.get(e.account);
  setText($('conv-name'), e.name);
  $('conv-name').title = `${accountLabel(state, e.account)} (${acct ? protocolName(state, acct.protocol) : '?'})`;
  const topic = e.kind === 'chat' ? (e.joined ? e.topic || '' : 'You are not in this chat.') : imSubtitle(e);
  if ($('conv-topic').dataset.text !== topic) {
    $('conv-topic').dataset.text = topic;
    setRichText($('conv-topic'), topic);
    $('conv-topic').title = topic;
  }
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
  composer.setEnabled(canSend, canSend ? `Message ${e.name}` : 'Rejoin the chat to send messages');
  renderLevel(e);
  const t = e.typing && e.typing.until > Date.now() ? e.typing : null;
  setText($('typing'), t ? `${e.name} ${t.state === 'typing' ? 'is typing…' : 'stopped typing.'}` : '');
  view.render(e);
}

function imSubtitle(e) {
  const b = state.buddies.get(e.key);
  if (!b) return `Private conversation on ${accountLabel(state, e.account)}`;
  const st = b.online ? (b.status && b.status !== 'available' ? b.status : 'online') : 'offline';
  return b.message ? `${st} — ${b.message}` : st;
}

// ---------------------------------------------------------------- notifications

const LEVEL_TEXT = { all: 'every message', mentions: 'mentions only', none: 'never' };

/** The conversation's "Notify" menu: its own level, and what "Default" means here. */
function renderLevel(e) {
  const sel = $('conv-level');
  const own = ownLevel(state.notify, e.account, e.kind, e.name);
  const others = { ...state.notify, levels: state.notify.levels.filter((l) => !(l.account === e.account
    && l.conversation && l.conversation.kind === e.kind && l.conversation.name === e.name)) };
  const dflt = `Default (${LEVEL_TEXT[levelFor(others, e.account, e.kind, e.name)]})`;
  const opt = sel.querySelector('option[value="default"]');
  if (opt.textContent !== dflt) opt.textContent = dflt;
  if (document.activeElement !== sel || sel.dataset.key !== e.key) sel.value = own;
  sel.dataset.key = e.key;
}

$('conv-level').addEventListener('change', async () => {
  const e = currentConv(state);
  if (!e || !app.conn) return;
  try {
    await app.conn.request('notify.set', { account: e.account, conversation: { kind: e.kind, name: e.name },
      level: $('conv-level').value });
  } catch (err) {
    toast(`Could not change notifications: ${errText(err)}`, 'error');
    renderLevel(e);
  }
});

function renderMentions() {
  const mentions = mergeMentions(app.fetchedMentions, recentMentions(state.convs.values()));
  const clock = app.settings.clock;
  const sig = JSON.stringify([mentions.map((m) => m.seq), clock]);
  const ul = $('mentions-list');
  show($('mentions-empty'), mentions.length === 0);
  if (ul.dataset.sig === sig) return;
  ul.dataset.sig = sig;
  ul.replaceChildren(...mentions.map((m) => resultItem(m, clock)));
}

// One found or mentioning message in a list (Mentions, Search): where, who,
// when, and the line as the conversation shows it (a /me line as "* who …").
function resultItem(m, clock) {
  const who = m.alias || m.sender;
  return h('li', { class: 'result' },
    h('button', { type: 'button', class: 'conv-btn', onclick: () => openResult(m) },
      h('span', { class: 'result-head' },
        h('strong', null, m.conversation.name), ' · ', who, ' · ',
        h('time', { datetime: new Date(m.time).toISOString() }, `${fmtDate(m.time)} ${fmtTime(m.time, clock)}`)),
      h('span', { class: 'text' }, m.action ? `* ${who} ${m.text}` : m.text)));
}

// The backend's list (every conversation, also what is not loaded here),
// fetched when the page opens; live mentions join it from the loaded messages.
async function fetchMentions() {
  if (!app.conn) return;
  try {
    const r = await app.conn.request('mentions', { limit: 50 });
    app.fetchedMentions = r.messages;
  } catch (err) {
    if (err.code !== 'offline' && err.code !== 'disconnected') toast(`Could not load mentions: ${errText(err)}`, 'error');
  }
  scheduleRender();
}

$('btn-mentions').addEventListener('click', () => {
  setView('mentions');
  fetchMentions();
});
$('mentions-close').addEventListener('click', () => setView(state.current ? 'conv' : 'welcome'));

const showNotify = bindNotificationSettings(ctx, (s) => {
  app.settings = s;
  saveSettings(localStorage, s);
});

startServiceWorker((m) => openResult(m));

// ---------------------------------------------------------------- members

function renderMembers(e) {
  const members = sortedMembers(e, app.memberFilter);
  const sig = JSON.stringify([e.key, members.map((m) => [m.name, m.alias, m.flags])]);
  const ul = $('member-list');
  if (ul.dataset.sig === sig) return;
  ul.dataset.sig = sig;
  ul.replaceChildren(...members.map((m) => {
    const r = memberRank(m);
    const away = (m.flags || []).includes('away');
    const label = m.alias && m.alias !== m.name ? `${m.alias} (${m.name})` : m.name;
    return h('li', { class: `member${away ? ' away' : ''}` },
      h('button', { type: 'button', class: 'member-btn', title: `Private conversation with ${m.name}`,
        onclick: () => openIm(e.account, m.name) },
      h('span', { class: 'role', title: (m.flags || []).join(', ') || null }, RANK_PREFIX[r]),
      h('span', { class: nickClass(m.name) }, label)));
  }));
  show($('member-none'), members.length === 0);
}

function closeMembers() {
  show($('members'), false);
  $('btn-members').setAttribute('aria-expanded', 'false');
}

$('btn-members').addEventListener('click', () => {
  const open = $('members').hidden;
  show($('members'), open);
  $('btn-members').setAttribute('aria-expanded', String(open));
  if (open) {
    renderMembers(currentConv(state));
    $('member-filter').focus();
  }
});
$('members-close').addEventListener('click', closeMembers);
$('member-filter').addEventListener('input', () => {
  app.memberFilter = $('member-filter').value;
  const e = currentConv(state);
  if (e) renderMembers(e);
});

// ---------------------------------------------------------------- conversation actions

$('btn-leave').addEventListener('click', async () => {
  const e = currentConv(state);
  if (!e) return;
  try {
    await app.conn.request('chat.leave', { account: e.account, name: e.name });
  } catch (err) {
    toast(`Could not leave: ${errText(err)}`, 'error');
  }
});

$('btn-rejoin').addEventListener('click', async () => {
  const e = currentConv(state);
  if (!e) return;
  try {
    await app.conn.request('chat.join', { account: e.account, name: e.name });
  } catch (err) {
    toast(`Could not join: ${errText(err)}`, 'error');
  }
});

$('btn-close').addEventListener('click', closeConv);

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
    const r = await app.conn.request('search', { query: q, limit: 100 });
    setText($('search-title'), r.messages.length
      ? `${r.messages.length}${r.messages.length === 100 ? '+' : ''} results for “${q}”`
      : `No messages contain “${q}”`);
    const clock = app.settings.clock;
    for (const m of r.messages) {
      ul.appendChild(resultItem(m, clock));
    }
  } catch (err) {
    setText($('search-title'), `Search failed: ${errText(err)}`);
  }
});

$('search-close').addEventListener('click', () => setView(state.current ? 'conv' : 'welcome'));

async function openResult(m) {
  const e = getConv(state, m.account, m.conversation);
  openConv(e.key);
  for (let i = 0; i < 40 && !e.seqs.has(m.seq); i++) {
    while (e.loading) await new Promise((r) => setTimeout(r, 50));
    if (e.seqs.has(m.seq) || (e.loaded && !e.hasMore)) break;
    await loadHistory(e, e.loaded);
  }
  render();
  const el = view.reveal(e, m.seq);
  if (el) {
    el.scrollIntoView({ block: 'center' });
    el.classList.add('found');
    setTimeout(() => el.classList.remove('found'), 6000);
  }
}

// ---------------------------------------------------------------- accounts and settings

$('btn-accounts').addEventListener('click', () => setView('accounts'));
$('welcome-accounts').addEventListener('click', () => setView('accounts'));
$('accounts-close').addEventListener('click', () => setView(state.current ? 'conv' : 'welcome'));

const showSettings = bindSettingsForm($('settings-form'), () => app.settings, (s) => {
  app.settings = s;
  saveSettings(localStorage, s);
  applySettings(s);
  render();
});
$('btn-settings').addEventListener('click', () => {
  showSettings();
  showNotify();
  setView('settings');
  $('set-theme').focus();
});
$('settings-close').addEventListener('click', () => setView(state.current ? 'conv' : 'welcome'));

// ---------------------------------------------------------------- phone

// The on-screen keyboard shrinks the visual viewport, not the layout one:
// the app follows the visual viewport so the composer and the newest
// message stay in view (the message list keeps itself at the bottom).
if (window.visualViewport) {
  const fit = () => document.documentElement.style.setProperty('--app-height', `${Math.round(window.visualViewport.height)}px`);
  window.visualViewport.addEventListener('resize', fit);
  fit();
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
